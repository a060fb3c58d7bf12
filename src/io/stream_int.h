/*
 * The stream record, shared by stream.c (buffers, reading, writing,
 * closing), connect.c (clients) and server.c (accepted connections).
 *
 * Every field below "owner" is touched only on the home worker's thread
 * (io/home.c protocol); the few fields readable from anywhere are atomics or
 * written once before the stream is handed to the program.
 */
#ifndef WEFT_IO_STREAM_INT_H
#define WEFT_IO_STREAM_INT_H

#include "io/io.h"
#include "list.h"
#include "record.h"

#include <sys/socket.h>
#include <uv.h>

/* A task inside a reading call (stream.c). Lives on its stack. */
typedef struct weft__reader {
  weft_task_t *task; /* the reading task */
  int fired;         /* set by the callback that satisfied it */
  size_t need;       /* wake once this many bytes are buffered */
  char *dbuf;        /* read straight into this buffer, or NULL */
  size_t dlen;       /* its size */
  size_t dgot;       /* bytes read into it so far */
  int exact;         /* fill dbuf completely before waking */
} weft__reader_t;

struct weft__server_slot;
struct weft__tls;

struct weft_stream {
  weft__io_obj_t obj; /* home worker, io.objs link, reap */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;         /* the handle, on home's loop */
  int is_pipe; /* Unix socket (uv_pipe_t) rather than TCP */

  /* --- readable from anywhere --- */
  atomic_int closing_flag;          /* mirror of `closing` */
  atomic_int fd;                    /* descriptor, -1 once closing */
  struct sockaddr_storage sockname; /* written before the stream is handed */
  struct sockaddr_storage peername; /*   out, constant afterwards */
  int socklen, peerlen;
  struct weft__server_slot *slot; /* accepting listener, NULL for clients */
  int owned; /* a process's pipe (process.c): the process frees it */

  /* --- owner: connecting (connect.c) --- */
  uv_connect_t connect_req;
  weft_task_t *connect_task; /* the task waiting, or NULL */
  int connect_done;          /* the connect callback ran */
  int connect_status;        /* its status */

  /* --- owner: reading --- */
  size_t limit; /* asyncio's limit */
  size_t rmax;  /* buffer size at which reading pauses */
  char *rbuf;   /* read buffer, rpos..rpos+rlen buffered */
  size_t rcap, rpos, rlen;
  int reading;            /* uv_read_start in effect */
  int eof;                /* end of stream or a read error received */
  int rerr;               /* that error, 0 for a clean end */
  weft__reader_t *reader; /* the task in a reading call, or NULL */
  int rnomem;             /* no memory for the read buffer: the waiting
                             reader gets WEFT_ENOMEM, the next read tries
                             again (nothing is lost: the bytes stay in the
                             socket) */
  int skip_line;          /* dropping the rest of an over-long line (stream.c
                             reading step 5): nothing buffered meanwhile */

  /* --- owner: writing --- */
  size_t wqueued;   /* bytes in write requests not yet completed */
  size_t high, low; /* water marks */
  int wpaused;      /* over high: drain() waits until <= low */
  int werr;         /* first write error; sticky */
  int shut;         /* write_eof() requested */
  uv_shutdown_t shutdown_req;
  weft__list_t drainers; /* weft__io_waiter_t in drain() */
  int sending;           /* weft_stream_sendfile() runs: writes, write_eof()
                            and a second sendfile get WEFT_EBUSY */
  weft__list_t senders;  /* the sendfile task waiting (sendfile.c): woken
                            when the queue empties, a write fails, the
                            socket turns writable, or the stream closes */

  /* --- owner: closing --- */
  int closing;          /* close/abort requested or the library closed it */
  int flush_close;      /* close() waits for the write queue to empty */
  int handle_closing;   /* uv_close called */
  int closed;           /* its close callback ran */
  int free_on_close;    /* nobody holds the stream: free it when closed */
  weft__list_t closers; /* weft__io_waiter_t in wait_closed() */

  /* --- TLS (tls.c): NULL for plaintext; set on home before the stream is
   * handed out, or by start_tls; `tls_ready` is published (release) once
   * the handshake completed and read (acquire) by the anywhere-callable
   * accessors. --- */
  struct weft__tls *tls;
  atomic_int tls_ready;
  int handles_open; /* libuv handles of the stream not yet closed */

  /* --- owner: server connections (server.c) --- */
  weft__list_t conn_link;              /* in the slot's connection list */
  void (*on_closed)(weft_stream_t *s); /* run by the close callback */
};

/* A new stream with an initialised (unconnected) handle on home's loop,
 * registered in home's io.objs; call on home's thread. NULL on ENOMEM. */
weft_stream_t *weft__stream_alloc(weft__worker_t *home, int is_pipe,
                                  const weft_stream_opts_t *opts);

/* A connected or accepted stream goes live: addresses recorded, options
 * set, reading started. Returns 0 or a libuv error. Home's thread. */
int weft__stream_start(weft_stream_t *s, const weft_stream_opts_t *opts);

/* Close (abort: discard queued data). Home's thread; idempotent. */
void weft__stream_close(weft_stream_t *s, int abort);

/* Nobody will use s again: close it gracefully if still open and free it
 * once closed. Home's thread. */
void weft__stream_release(weft_stream_t *s);

/* For tls.c (home's thread). The plaintext side: where the next decrypted
 * bytes go (the waiting reader's own buffer when stream.c's reading step 2
 * allows, else the read buffer's free tail; len 0 = the buffer is full),
 * and the bookkeeping once n bytes landed there. */
void weft__stream_space(weft_stream_t *s, char **base, size_t *len);
void weft__stream_landed(weft_stream_t *s, const char *base, size_t n);
/* Wake the stream's reader if its condition holds (callback context). */
void weft__stream_wake_reader(weft_stream_t *s);
/* Stop reading the socket. */
void weft__stream_stop_reading(weft_stream_t *s);
/* Queue ciphertext (or any bytes) on the socket as write() does: a direct
 * write first, then a copy of the rest. 0 or the (sticky) write error. */
int weft__stream_raw_write(weft_stream_t *s, const uv_buf_t *bufs,
                           unsigned nbufs, size_t total);
/* After a write error was recorded in werr: wake drain() and let a pending
 * close go on. */
void weft__stream_write_progress(weft_stream_t *s);
/* Close the socket now (abort), discarding what is queued. */
void weft__stream_close_now(weft_stream_t *s);
/* One more libuv handle of s (a TLS timer) closes with it: call from its
 * close callback. */
void weft__stream_handle_closed(weft_stream_t *s);
/* write() and writev() on home, without the `sending` check (sendfile.c's
 * copying path writes through it): plaintext to the socket, or through
 * TLS. 0 or an error, as weft_stream_write(). */
int weft__stream_send_home(weft_stream_t *s, const uv_buf_t *bufs,
                           unsigned nbufs, size_t total);
/* The common prologue of a stream call: validate, find the task, move it
 * home (weft__io_leave ends it). */
int weft__stream_begin(weft_stream_t *s, weft_task_t **tp);

#endif /* WEFT_IO_STREAM_INT_H */
