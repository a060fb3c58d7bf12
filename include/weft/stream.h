/*
 * weft streams: asyncio's streams API (open_connection, start_server,
 * StreamReader, StreamWriter, Server) for TCP and Unix-domain sockets.
 *
 * A stream is a connected socket with a read buffer and a write queue. Its
 * libuv handle lives on one worker's loop, the stream's *home* worker: the
 * worker of the task that opened it, or the worker whose listener accepted
 * it. Every operation runs there: a task on another worker is moved to the
 * home worker for the call (it suspends briefly, which is not a cancellation
 * point), and it stays there afterwards unless it is pinned, in which case
 * it goes back to its pin before the call returns. So a stream may be used
 * by any task of the runtime, from any worker, without locks of your own.
 *
 * Every function below needs a task (WEFT_ENOTTASK otherwise), except
 * weft_stream_is_closing(), weft_stream_fileno(), weft_stream_sockname(),
 * weft_stream_peername(), weft_server_is_serving(), weft_server_port() and
 * weft_server_sockname(), which may be called from anywhere while the
 * stream or server exists. Several tasks may use one stream at once, with
 * two exceptions as in asyncio: one reading call at a time (a second
 * concurrent reader gets WEFT_EBUSY), and no writing while a
 * weft_stream_sendfile() (weft/file.h) runs on the stream (WEFT_EBUSY).
 *
 * Every reading call may also return WEFT_ENOMEM when the stream's read
 * buffer cannot be allocated: that call consumed nothing (readexactly
 * reports in *nread what it had moved), the bytes stay in the socket, and
 * the next reading call tries again.
 *
 * Streams and servers belong to their runtime: whatever the program has not
 * freed when weft_run() returns is closed and freed by it. A function below
 * that needs a task returns WEFT_EOTHER_RUNTIME, doing nothing, when the
 * calling task belongs to another runtime (another weft_run() in the process)
 * than the one the stream or server was created in.
 *
 * weft ignores SIGPIPE for the whole process (as Python does at start-up)
 * the first time a stream or server is created, if SIGPIPE still has its
 * default disposition: writing to a socket the peer has closed then fails
 * with WEFT_EPIPE instead of killing the process.
 */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H

#include "common.h"

#include <sys/socket.h>

WEFT_BEGIN_DECLS

/* A connected stream (asyncio: the StreamReader/StreamWriter pair). */
typedef struct weft_stream weft_stream_t;

/* A listening server (asyncio.Server). */
typedef struct weft_server weft_server_t;

/* A connection handler (asyncio: client_connected_cb). It runs as a new task
 * per accepted connection; when it returns, the stream is closed (its queued
 * data is still sent) and freed by the server, so the handler must not free
 * it. arg is the pointer given to weft_start_server(). */
typedef void (*weft_server_handler_fn)(weft_stream_t *stream, void *arg);

/* One buffer of weft_stream_writev(). */
typedef struct weft_iovec {
  const void *base; /* first byte */
  size_t len;       /* number of bytes */
} weft_iovec_t;

/* asyncio's default stream limit (streams._DEFAULT_LIMIT): the longest line
 * or chunk readline()/readuntil() return. */
#define WEFT_STREAM_LIMIT_DEFAULT ((size_t)64 * 1024)
/* asyncio's default write-buffer water marks (64 KiB, high / 4). */
#define WEFT_STREAM_HIGH_WATER_DEFAULT ((size_t)64 * 1024)
#define WEFT_STREAM_LOW_WATER_DEFAULT ((size_t)16 * 1024)

/* A TLS context (weft/tls.h). */
typedef struct weft_tls_ctx weft_tls_ctx_t;

/* asyncio's ssl=, server_hostname=, ssl_handshake_timeout= and
 * ssl_shutdown_timeout= (weft/tls.h). */
typedef struct weft_stream_tls_opts {
  /* The TLS context; NULL = plaintext (the default). A client context on
   * weft_open_connection(), a server context on weft_start_server(). */
  weft_tls_ctx_t *ctx;
  /* Client: the name sent in SNI and checked against the server's
   * certificate; NULL = the host given to weft_open_connection(). An IP
   * literal is checked against the certificate's IP addresses and not sent
   * in SNI. Ignored by servers. */
  const char *server_hostname;
  /* How long the handshake may take (asyncio: 60 s); 0 = the default,
   * WEFT_NO_TIMEOUT = no limit. The connect call (or, on a server, the
   * handshake before the handler runs) fails with WEFT_ETIMEDOUT. */
  uint64_t handshake_timeout_ms;
  /* How long closing may wait for the queued data and the peer's
   * close_notify before the connection is aborted (asyncio: 30 s); 0 = the
   * default, WEFT_NO_TIMEOUT = no limit. */
  uint64_t shutdown_timeout_ms;
} weft_stream_tls_opts_t;

/* The defaults of weft_stream_tls_opts_t (asyncio's). */
#define WEFT_TLS_HANDSHAKE_TIMEOUT_DEFAULT ((uint64_t)60000)
#define WEFT_TLS_SHUTDOWN_TIMEOUT_DEFAULT ((uint64_t)30000)

/* Options of a stream. Initialise with weft_stream_opts_init(). */
typedef struct weft_stream_opts {
  /* Read-buffer limit (asyncio: limit=); 0 = WEFT_STREAM_LIMIT_DEFAULT. */
  size_t limit;
  /* 1 (the default) sets TCP_NODELAY, as asyncio does; 0 leaves Nagle's
   * algorithm on. Ignored for Unix sockets. */
  int tcp_nodelay;
  /* TLS over the stream (weft/tls.h); tls.ctx NULL = plaintext. */
  weft_stream_tls_opts_t tls;
} weft_stream_opts_t;

/* Options of a server. Initialise with weft_server_opts_init(). */
typedef struct weft_server_opts {
  /* listen() backlog (asyncio: backlog=, default 100); 0 = 100. */
  int backlog;
  /* Number of workers that accept: listeners on workers 0..workers-1, one
   * SO_REUSEPORT socket each, among which the kernel spreads connections.
   * 0 (the default) = every worker. Unix-socket servers always have one
   * listener, on the calling task's worker. */
  unsigned workers;
  /* Options of the accepted streams. */
  weft_stream_opts_t stream;
} weft_server_opts_t;

/* Fill opts with the defaults. Never fails; opts NULL is ignored. */
WEFT_EXTERN void weft_stream_opts_init(weft_stream_opts_t *opts);
WEFT_EXTERN void weft_server_opts_init(weft_server_opts_t *opts);

/* ---- clients ------------------------------------------------------------ */

/* asyncio.open_connection(host, port): resolve host (a name, or an IPv4 or
 * IPv6 literal; names go through libuv's resolver thread pool, literals do
 * not), then try each resolved address in turn until one connects, and store
 * the new stream in *out (free it with weft_stream_free()). The stream's home
 * is the worker the calling task runs on when it calls.
 *
 * Errors: WEFT_EINVAL (host or out NULL, port outside 0..65535), the
 * resolver's codes (WEFT_EAI_NONAME, WEFT_EAI_AGAIN, WEFT_EAI_FAIL and other
 * UV_EAI_* values) when the name does not resolve, the connect error of the
 * last address tried (WEFT_ECONNREFUSED, WEFT_ENETUNREACH,
 * WEFT_EHOSTUNREACH, WEFT_ETIMEDOUT...), WEFT_ENOMEM, WEFT_ECANCELED,
 * WEFT_ENOTTASK. Suspends; cancellable at any point (also by
 * weft_task_wait_for() on a task that calls it): a cancelled connect closes
 * its socket and returns WEFT_ECANCELED, leaving nothing behind. */
WEFT_EXTERN int weft_open_connection(const char *host, int port,
                                     const weft_stream_opts_t *opts,
                                     weft_stream_t **out);

/* asyncio.open_unix_connection(path). Errors: WEFT_EINVAL,
 * WEFT_ENAMETOOLONG (path longer than a sockaddr_un holds), WEFT_ENOENT,
 * WEFT_ECONNREFUSED, WEFT_EACCES..., WEFT_ECANCELED, WEFT_ENOMEM,
 * WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_open_unix_connection(const char *path,
                                          const weft_stream_opts_t *opts,
                                          weft_stream_t **out);

/* ---- reading (asyncio.StreamReader) ----------------------------------------
 */

/* reader.read(n): wait until at least one byte is available, then copy up to
 * n bytes (at most INT_MAX) into buf. Returns the number of bytes (> 0), 0 at
 * end of stream (or when n is 0), or an error: the connection's error
 * (WEFT_ECONNRESET...) once the data received before it has been read,
 * WEFT_EBUSY (another task is reading), WEFT_EINVAL, WEFT_ECANCELED (nothing
 * was consumed: buffered data stays buffered), WEFT_ENOTTASK. Suspends
 * unless data, end of stream or an error is already there. */
WEFT_EXTERN int weft_stream_read(weft_stream_t *s, void *buf, size_t n);

/* reader.readexactly(n): read exactly n bytes into buf. Returns 0 once n
 * bytes are there. At end of stream before that, returns WEFT_EINCOMPLETE
 * (asyncio's IncompleteReadError) with the partial data in buf and its
 * length in *nread. On any other error (the connection's error,
 * WEFT_ECANCELED) the bytes already consumed are likewise in buf and counted
 * in *nread; the rest stays in the stream. nread may be NULL. Other errors:
 * WEFT_EBUSY, WEFT_EINVAL, WEFT_ENOTTASK. Suspends unless n bytes are
 * buffered. */
WEFT_EXTERN int weft_stream_readexactly(weft_stream_t *s, void *buf, size_t n,
                                        size_t *nread);

/* reader.readuntil(separator): read up to and including the first
 * occurrence of sep (seplen >= 1 bytes) into buf, storing the length in
 * *len. Returns 0 on success, or:
 *  - WEFT_ELIMIT (asyncio's LimitOverrunError): no separator within the
 *    stream's limit, or one found past it. The data stays in the stream and
 *    *len is asyncio's `consumed` (how far the data was examined, or where
 *    the separator starts).
 *  - WEFT_EINCOMPLETE (asyncio's IncompleteReadError): end of stream before
 *    a separator; everything that was buffered is consumed into buf, *len
 *    bytes.
 *  - WEFT_ENOBUFS: the result (*len bytes) does not fit in cap bytes;
 *    nothing is consumed. A buffer of limit + seplen bytes never gets it.
 *  - the connection's error, WEFT_EBUSY, WEFT_EINVAL, WEFT_ECANCELED
 *    (nothing consumed), WEFT_ENOTTASK.
 * Suspends unless the separator, the end or an error is already there. */
WEFT_EXTERN int weft_stream_readuntil(weft_stream_t *s, const void *sep,
                                      size_t seplen, void *buf, size_t cap,
                                      size_t *len);

/* reader.readline(): weft_stream_readuntil() with "\n", except that at end
 * of stream the last partial line is returned as a success (a *len of 0
 * means end of stream), and that a line over the limit is discarded whole
 * before WEFT_ELIMIT is returned (asyncio's ValueError): through its
 * separator if it was found, else everything buffered and, as it arrives,
 * the rest of the line through its separator. So one over-long line gives
 * one WEFT_ELIMIT, and the next call (readline or any other read) returns
 * the data after it; none of the line's tail is ever returned. (asyncio
 * drops only what is buffered.) Unlike readuntil's, this WEFT_ELIMIT
 * consumes the line. Suspends. */
WEFT_EXTERN int weft_stream_readline(weft_stream_t *s, void *buf, size_t cap,
                                     size_t *len);

/* reader.at_eof(): 1 if the end of stream (or an error) was received and
 * every buffered byte was read, 0 if not; WEFT_EINVAL, WEFT_ENOTTASK. May
 * move the task to the stream's home (not a cancellation point). */
WEFT_EXTERN int weft_stream_at_eof(weft_stream_t *s);

/* ---- writing (asyncio.StreamWriter) ----------------------------------------
 */

/* writer.write(data): queue n bytes. Tries a direct write first, so the
 * common case costs one write system call; what the kernel does not take is
 * copied and sent in the background. Never waits for the peer (use
 * weft_stream_drain() for flow control). Returns 0, or an error: a previous
 * write's failure (WEFT_EPIPE, WEFT_ECONNRESET...), WEFT_EPIPE after
 * weft_stream_write_eof() or close, WEFT_EBUSY while a
 * weft_stream_sendfile() runs on s (weft/file.h), WEFT_ENOMEM, WEFT_EINVAL,
 * WEFT_ENOTTASK.
 * May move the task to the stream's home (not a cancellation point). */
WEFT_EXTERN int weft_stream_write(weft_stream_t *s, const void *data, size_t n);

/* writer.writelines(): weft_stream_write() of n buffers in order, with one
 * vectored system call. Same errors. */
WEFT_EXTERN int weft_stream_writev(weft_stream_t *s, const weft_iovec_t *iov,
                                   size_t n);

/* await writer.drain(): if the write buffer went over the high-water mark,
 * wait until it is back at or below the low-water mark (asyncio's pause and
 * resume). Any number of tasks may drain at once. Returns 0, a write error
 * (WEFT_EPIPE, WEFT_ECONNRESET...), WEFT_EPIPE if the stream was aborted
 * with data still queued, WEFT_ECANCELED (the queued data stays queued),
 * WEFT_EINVAL, WEFT_ENOTTASK. Suspends when it has to wait. */
WEFT_EXTERN int weft_stream_drain(weft_stream_t *s);

/* transport.set_write_buffer_limits(high, low): drain() waits once more
 * than high bytes are queued, until at most low are. low <= high is
 * required (WEFT_EINVAL). high 0 makes drain() wait until everything was
 * handed to the kernel. */
WEFT_EXTERN int weft_stream_set_write_buffer_limits(weft_stream_t *s,
                                                    size_t high, size_t low);

/* transport.get_write_buffer_size(): the bytes queued and not yet taken by
 * the kernel, in *size. Returns 0, WEFT_EINVAL, WEFT_ENOTTASK. */
WEFT_EXTERN int weft_stream_get_write_buffer_size(weft_stream_t *s,
                                                  size_t *size);

/* writer.write_eof(): half-close. The data queued so far is sent, then the
 * write side is shut down (the peer reads end of stream); reading goes on.
 * Returns 0 (also when already done), WEFT_EPIPE (closing), a write error,
 * WEFT_EBUSY (a weft_stream_sendfile() runs on s),
 * WEFT_EINVAL, WEFT_ENOTTASK. Does not wait (not a cancellation point). */
WEFT_EXTERN int weft_stream_write_eof(weft_stream_t *s);

/* writer.can_write_eof(): 1 (TCP and Unix streams can), WEFT_EINVAL. */
WEFT_EXTERN int weft_stream_can_write_eof(weft_stream_t *s);

/* ---- closing ------------------------------------------------------------ */

/* writer.close(): stop reading, send what is queued, then close the socket
 * (asyncio flushes the same way). Reads return the data still buffered, then
 * end of stream; writes fail with WEFT_EPIPE. Returns 0 (also when already
 * closing), WEFT_EINVAL, WEFT_ENOTTASK. Does not wait. */
WEFT_EXTERN int weft_stream_close(weft_stream_t *s);

/* transport.abort(): close at once, discarding the queued data. Returns as
 * weft_stream_close(). */
WEFT_EXTERN int weft_stream_abort(weft_stream_t *s);

/* writer.is_closing(): 1 once close or abort was called or the connection
 * was closed by the library, else 0; WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_stream_is_closing(const weft_stream_t *s);

/* await writer.wait_closed(): wait until the socket is closed. After
 * weft_stream_close() that is as soon as the queued data was sent (or the
 * peer reset the connection); after weft_stream_abort() at once. Returns 0,
 * WEFT_ECANCELED (the close goes on), WEFT_EINVAL, WEFT_ENOTTASK. Suspends
 * until then. */
WEFT_EXTERN int weft_stream_wait_closed(weft_stream_t *s);

/* Release a stream from weft_open_connection()/weft_open_unix_connection():
 * closes it as weft_stream_close() would if it is still open, and frees it
 * once closed. The stream must not be used afterwards, and no other task may
 * be inside a call on it. Streams handed to a server's handler are owned
 * and freed by the server, and a process's pipes by the process
 * (weft/process.h): WEFT_EPERM (nothing done) for those. Returns 0,
 * WEFT_EPERM, WEFT_EINVAL, WEFT_ENOTTASK;
 * NULL is ignored (0). May move the task (not a cancellation point). */
WEFT_EXTERN int weft_stream_free(weft_stream_t *s);

/* ---- addresses ---------------------------------------------------------- */

/* get_extra_info('sockname' / 'peername'): the local or remote address,
 * copied into *addr (sockaddr_in, sockaddr_in6 or sockaddr_un) with its
 * length in *len (len may be NULL). Recorded when the stream connected, so
 * callable from anywhere. Returns 0, WEFT_EINVAL. */
WEFT_EXTERN int weft_stream_sockname(const weft_stream_t *s,
                                     struct sockaddr_storage *addr, int *len);
WEFT_EXTERN int weft_stream_peername(const weft_stream_t *s,
                                     struct sockaddr_storage *addr, int *len);

/* Format an address as asyncio prints it: host (IPv4/IPv6 text, or a Unix
 * path) into host[cap] and the port into *port (-1 for Unix sockets; port
 * may be NULL). Returns 0, WEFT_EINVAL, WEFT_ENOSPC (host too small),
 * WEFT_EAFNOSUPPORT. Callable from anywhere. */
WEFT_EXTERN int weft_addr_format(const struct sockaddr *addr, char *host,
                                 size_t cap, int *port);

/* loop.getnameinfo(addr, flags) (socket.getnameinfo): the host name and the
 * service name of an IPv4 or IPv6 address, through the system's resolver
 * (/etc/hosts, DNS...) on libuv's thread pool. flags are getnameinfo(3)'s
 * NI_NUMERICHOST, NI_NUMERICSERV, NI_NOFQDN, NI_NAMEREQD and NI_DGRAM
 * (<netdb.h>): without NI_NAMEREQD an address that has no name gives its
 * numeric form. The host name goes to host[hostcap] and the service (the
 * port's name in /etc/services, or its number) to serv[servcap], both
 * NUL-terminated; either buffer may be NULL (with its capacity ignored),
 * not both. NI_MAXHOST (1025) and NI_MAXSERV (32) bytes always suffice.
 *
 * Errors: WEFT_EINVAL (addr NULL, an unknown flag, both buffers NULL, a
 * capacity 0), WEFT_EAFNOSUPPORT (not AF_INET or AF_INET6), WEFT_ENOSPC (a
 * name longer than its buffer; both buffers are then empty strings),
 * WEFT_EAI_NONAME (no name, with NI_NAMEREQD), WEFT_EAI_AGAIN,
 * WEFT_EAI_FAIL and the resolver's other UV_EAI_* values, WEFT_ENOMEM,
 * WEFT_ECANCELED, WEFT_ENOTTASK. On every error both buffers hold empty
 * strings. Suspends; cancellable: a cancelled lookup returns at once, and
 * one the pool had started runs to its end there and is discarded. */
WEFT_EXTERN int weft_getnameinfo(const struct sockaddr *addr, int flags,
                                 char *host, size_t hostcap, char *serv,
                                 size_t servcap);

/* get_extra_info('socket').fileno(): the socket's descriptor, for
 * setsockopt() and the like (do not read, write or close it), or
 * WEFT_EBADF once closed; WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_stream_fileno(const weft_stream_t *s);

/* ---- servers (asyncio.start_server, asyncio.Server)
 * ----------------------------- */

/* asyncio.start_server(handler, host, port): listen on host:port (host NULL
 * = "0.0.0.0"; a name is resolved and its first address used; port 0 = an
 * ephemeral port, the same on every listener) and run handler(stream, arg)
 * as a new task for every connection. Every accepting worker has its own
 * SO_REUSEPORT listener on its own loop. The server is listening when this
 * returns; free it with weft_server_free().
 *
 * Errors: WEFT_EINVAL (handler or out NULL, port outside 0..65535, opts
 * workers above the runtime's), WEFT_EADDRINUSE, WEFT_EACCES,
 * WEFT_EADDRNOTAVAIL, resolver errors, WEFT_ENOMEM, WEFT_ERUNTIME_SHUTDOWN,
 * WEFT_ENOTTASK. Suspends (it visits each accepting worker); not
 * cancellable: it returns once every listener is open, or closed again. */
WEFT_EXTERN int weft_start_server(weft_server_handler_fn handler, void *arg,
                                  const char *host, int port,
                                  const weft_server_opts_t *opts,
                                  weft_server_t **out);

/* asyncio.start_unix_server(handler, path): as weft_start_server() on a Unix
 * socket path, with one listener on the calling task's worker. A stale
 * socket file at path is removed first, and the file is removed when the
 * server closes (asyncio's cleanup_socket=True). Errors as above, plus
 * WEFT_ENAMETOOLONG and WEFT_EADDRINUSE (path exists and is not a socket). */
WEFT_EXTERN int weft_start_unix_server(weft_server_handler_fn handler,
                                       void *arg, const char *path,
                                       const weft_server_opts_t *opts,
                                       weft_server_t **out);

/* await server.serve_forever(): wait until the server is closed. If the
 * calling task is cancelled, the server is closed (as asyncio does) and
 * WEFT_ECANCELED returned. Returns 0 once closed, WEFT_EINVAL,
 * WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_server_serve_forever(weft_server_t *srv);

/* server.close(): stop listening. Every listener is closed when this
 * returns; connections already accepted go on. Returns 0 (also when already
 * closed), WEFT_EINVAL, WEFT_ENOTTASK. Visits each accepting worker (not a
 * cancellation point). */
WEFT_EXTERN int weft_server_close(weft_server_t *srv);

/* server.close_clients() / server.abort_clients(): weft_stream_close() or
 * weft_stream_abort() on every connection still open; their handlers then
 * read end of stream and their writes fail. Returns 0, WEFT_EINVAL,
 * WEFT_ENOTTASK. Not cancellation points. */
WEFT_EXTERN int weft_server_close_clients(weft_server_t *srv);
WEFT_EXTERN int weft_server_abort_clients(weft_server_t *srv);

/* await server.wait_closed(): wait until the server is closed and every
 * connection it accepted is closed (asyncio 3.12+). Returns 0, WEFT_EINVAL,
 * WEFT_ECANCELED, WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_server_wait_closed(weft_server_t *srv);

/* server.is_serving(): 1 while listening, 0 once closed; WEFT_EINVAL.
 * Callable from anywhere. */
WEFT_EXTERN int weft_server_is_serving(const weft_server_t *srv);

/* The bound port (server.sockets[0].getsockname()[1]); -1 for a Unix
 * server; WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_server_port(const weft_server_t *srv);

/* server.sockets[0].getsockname(), as weft_stream_sockname(). */
WEFT_EXTERN int weft_server_sockname(const weft_server_t *srv,
                                     struct sockaddr_storage *addr, int *len);

/* Connections accepted by the listener of worker `worker` so far, or
 * WEFT_EINVAL (no such listener). Callable from anywhere; a statistic. */
WEFT_EXTERN long weft_server_accepted(const weft_server_t *srv,
                                      unsigned worker);

/* Release a server: closes it if needed (as weft_server_close()) and frees
 * it once its connections are gone; it must not be used afterwards. Returns
 * 0, WEFT_EINVAL, WEFT_ENOTTASK; NULL is ignored (0). Not a cancellation
 * point. */
WEFT_EXTERN int weft_server_free(weft_server_t *srv);

WEFT_END_DECLS

#endif /* WEFT_STREAM_H */
