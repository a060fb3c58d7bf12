/*
 * weft datagrams: asyncio's loop.create_datagram_endpoint() for UDP over
 * IPv4 and IPv6, and a UDP server with one SO_REUSEPORT socket per worker.
 *
 * An endpoint is a UDP socket with a queue of received datagrams and a
 * queue of datagrams waiting to be sent. Its libuv handle lives on one
 * worker's loop, the endpoint's *home*: the worker the opening task ran on
 * (for a server, the worker of the slot). Every call below that needs a
 * task moves the calling task there for the call (a suspension that is not
 * a cancellation point); an unpinned task stays there afterwards, a pinned
 * task goes back to its pin before the call returns. So any task of the
 * runtime may use any endpoint, from any worker, without locks of its own.
 *
 * Receiving. weft_udp_recv() suspends until a datagram is there and returns
 * it with its sender's address. Any number of tasks may receive from one
 * endpoint at once (a server's receiving tasks): each datagram goes to one
 * of them, in the order they started waiting. Reading starts at the first
 * receive: until then datagrams wait in the kernel's socket buffer. weft
 * keeps up to `queue_max` received datagrams nobody has asked for yet, then
 * stops reading the socket until a receiver takes one (the kernel then
 * drops what overflows its buffer, as UDP does). A datagram never lands
 * silently cut: when it is longer than the receiver's buffer, the receiver
 * either gets its first bytes with a truncation flag and the full length
 * (weft_udp_recv() with an info), or WEFT_EMSGSIZE with the datagram left
 * in the queue (without an info).
 *
 * Sending. weft_udp_send() never suspends (asyncio's sendto() is
 * synchronous): the kernel normally takes the datagram at once (one system
 * call, no copy); when its buffer is full, weft copies the datagram into
 * the endpoint's send queue and libuv sends it when the socket is writable.
 * weft_udp_drain() waits while that queue is above its high-water mark.
 *
 * Every function below needs a task (WEFT_ENOTTASK otherwise), except
 * weft_udp_opts_init(), weft_udp_server_opts_init(), weft_udp_sockname(),
 * weft_udp_peername(), weft_udp_fileno(), weft_udp_using_recvmmsg(),
 * weft_udp_is_closing(), weft_udp_server_port(),
 * weft_udp_server_endpoints() and weft_udp_server_endpoint(), which may be
 * called from anywhere while the object exists. After weft_udp_close()
 * every call that needs a task returns WEFT_EBADF, except
 * weft_udp_drain(), weft_udp_close() and weft_udp_free().
 *
 * Endpoints and servers belong to their runtime: whatever the program has
 * not freed when weft_run() returns is closed and freed by it. A call that
 * needs a task returns WEFT_EOTHER_RUNTIME, doing nothing, when the calling
 * task belongs to another runtime than the object's.
 */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#include "common.h"

#include <sys/socket.h>

WEFT_BEGIN_DECLS

/* A UDP endpoint (asyncio: the DatagramTransport/DatagramProtocol pair). */
typedef struct weft_udp weft_udp_t;

/* A UDP server: one endpoint per worker, each with its receiving tasks. */
typedef struct weft_udp_server weft_udp_server_t;

/* The most datagrams one recvmmsg() call reads (libuv 1.44's limit). */
#define WEFT_UDP_BATCH_MAX 20u
/* Received datagrams kept for receivers by default (see queue_max). */
#define WEFT_UDP_QUEUE_MAX_DEFAULT 256u
/* The send queue's default water marks (asyncio's, as for streams). */
#define WEFT_UDP_HIGH_WATER_DEFAULT ((size_t)64 * 1024)
#define WEFT_UDP_LOW_WATER_DEFAULT ((size_t)16 * 1024)

/* Options of an endpoint (asyncio: create_datagram_endpoint's arguments).
 * Initialise with weft_udp_opts_init(). */
typedef struct weft_udp_opts {
  /* Local address (asyncio: local_addr): an IPv4 or IPv6 literal or a name,
   * and a port (0 = any free port). NULL = the wildcard address of the
   * family (0.0.0.0, or :: with family AF_INET6). With local_host NULL,
   * local_port 0 and a remote address the socket is bound by connecting, as
   * asyncio does; otherwise it is bound to this address. */
  const char *local_host;
  int local_port;
  /* Peer (asyncio: remote_addr): NULL = not connected. A connected
   * endpoint sends to the peer only and receives from it only. */
  const char *remote_host;
  int remote_port;
  /* AF_UNSPEC (the default: the family of the first resolved address),
   * AF_INET or AF_INET6. */
  int family;
  /* SO_REUSEADDR (asyncio: reuse_address, which it refuses for UDP since
   * 3.8 for its effect on unicast; here it is the caller's choice). */
  int reuse_address;
  /* SO_REUSEPORT (asyncio: reuse_port): several sockets bound to one port,
   * among which the kernel spreads datagrams by sender. */
  int reuse_port;
  /* IPv6 sockets only: 1 = IPV6_V6ONLY (IPv6 only), 0 (the default) = dual
   * stack (IPv4 senders appear as ::ffff:a.b.c.d). Set either way, so the
   * system's default (net.ipv6.bindv6only) does not matter. */
  int ipv6_only;
  /* SO_BROADCAST (asyncio: allow_broadcast): needed to send to a broadcast
   * address, which otherwise fails with WEFT_EACCES. */
  int allow_broadcast;
  /* Unicast TTL / hop limit 1..255; 0 (the default) = the system's. */
  int ttl;
  /* Multicast TTL / hop limit 1..255; 0 (the default) = the system's (1). */
  int multicast_ttl;
  /* Multicast loopback: 1 (the default, the system's) = this host's
   * members of a group also get what this endpoint sends to it; 0 = off. */
  int multicast_loop;
  /* Datagrams read per system call: 1 (the default for endpoints) reads with
   * recvmsg(); 2..WEFT_UDP_BATCH_MAX read with recvmmsg() through libuv's
   * UV_UDP_RECVMMSG (a 64 KiB slot per datagram of the batch); 0 = the
   * default (servers: 16). */
  unsigned recv_batch;
  /* Received datagrams kept for receivers before reading pauses; 0 =
   * WEFT_UDP_QUEUE_MAX_DEFAULT. A batch being read is always kept whole, so
   * the queue may pass it by up to recv_batch - 1. */
  unsigned queue_max;
  /* Send-queue water marks in bytes (asyncio's set_write_buffer_limits);
   * 0 = the defaults. low_water must not exceed high_water. */
  size_t high_water;
  size_t low_water;
} weft_udp_opts_t;

/* What weft_udp_recv() reports besides the bytes. */
typedef struct weft_udp_info {
  struct sockaddr_storage addr; /* the sender (sockaddr_in or _in6) */
  socklen_t addrlen;            /* its length */
  size_t size;                  /* the datagram's full length */
  int truncated; /* 1: size exceeded the buffer; only cap bytes were copied
                    and the rest is gone */
} weft_udp_info_t;

/* Fill opts with the defaults. Never fails; opts NULL is ignored. */
WEFT_EXTERN void weft_udp_opts_init(weft_udp_opts_t *opts);

/* asyncio's loop.create_datagram_endpoint(): resolve the local and remote
 * addresses (names go through libuv's resolver thread pool, literals do
 * not), create the socket with the options, bind and connect it, and store
 * the endpoint in *out (free it with weft_udp_free()). The remote address
 * used is the first of the local address's family. Its home is the worker
 * the calling task runs on.
 *
 * Errors: WEFT_EINVAL (opts or out NULL, a port outside 0..65535, a family
 * other than AF_UNSPEC/AF_INET/AF_INET6, a TTL outside 0..255, recv_batch
 * above WEFT_UDP_BATCH_MAX, low_water above high_water), the resolver's
 * codes (WEFT_EAI_NONAME...), WEFT_EAFNOSUPPORT (no address of the family,
 * or no remote address of the local one's family), the socket's errors
 * (WEFT_EADDRINUSE, WEFT_EADDRNOTAVAIL, WEFT_EACCES, WEFT_ENETUNREACH,
 * WEFT_EMFILE...), WEFT_ENOMEM, WEFT_ECANCELED (while resolving a name:
 * nothing is left behind), WEFT_ENOTTASK. Suspends only to resolve a
 * name. */
WEFT_EXTERN int weft_udp_open(const weft_udp_opts_t *opts, weft_udp_t **out);

/* ---- receiving ---------------------------------------------------------- */

/* Receive one datagram: wait until one is there, copy up to cap bytes of it
 * into buf and return the number of bytes copied (0 for an empty datagram).
 * With info, the sender's address and the datagram's full length are stored
 * there, and a datagram longer than cap is consumed with info->truncated
 * set. Without info (NULL), a datagram longer than cap is not consumed:
 * WEFT_EMSGSIZE, and the next receive gets it.
 *
 * Errors: WEFT_EMSGSIZE (above), the socket's pending error, reported once
 * after the datagrams received before it (a connected endpoint whose peer
 * has no socket on its port gets WEFT_ECONNREFUSED from the ICMP error),
 * WEFT_ENOBUFS (a datagram arrived when its copy could not be allocated and
 * was dropped; reported once), WEFT_EBADF (closed, also for receivers
 * waiting when it is closed), WEFT_EINVAL (u NULL, buf NULL with cap > 0),
 * WEFT_ECANCELED (nothing was consumed: the datagram goes to the next
 * receiver), WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. Suspends unless a
 * datagram or an error is already there; cancellable. */
WEFT_EXTERN int weft_udp_recv(weft_udp_t *u, void *buf, size_t cap,
                              weft_udp_info_t *info);

/* ---- sending ------------------------------------------------------------ */

/* asyncio's transport.sendto(data, addr): send len bytes as one datagram to
 * addr (a sockaddr_in or sockaddr_in6; its length is taken from its
 * family), or to the peer of a connected endpoint when addr is NULL. A
 * connected endpoint accepts only its peer's address. Returns 0 once the
 * kernel has the datagram or it is queued (see above); a queued datagram's
 * error is reported by weft_udp_drain().
 *
 * Errors: WEFT_EINVAL (u NULL, data NULL with len > 0), WEFT_EAFNOSUPPORT
 * (addr of another family than AF_INET/AF_INET6), WEFT_ENOTCONN (addr NULL
 * on an unconnected endpoint), WEFT_EISCONN (addr other than the peer of a
 * connected one), WEFT_EMSGSIZE (longer than a datagram may be), WEFT_EACCES
 * (a broadcast address without allow_broadcast), WEFT_ECONNREFUSED (a
 * connected endpoint's pending ICMP error), WEFT_ENETUNREACH and the
 * kernel's other errors, WEFT_ENOMEM (the datagram had to be queued and
 * could not be copied: it was not sent), WEFT_EBADF (closed),
 * WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. May move the task to the endpoint's
 * home (not a cancellation point). */
WEFT_EXTERN int weft_udp_send(weft_udp_t *u, const void *data, size_t len,
                              const struct sockaddr *addr);

/* Wait while the send queue holds more than high_water bytes, until it is
 * back at or below low_water (asyncio's pause_writing / resume_writing).
 * Returns 0, or the error of a queued datagram the kernel refused since the
 * last drain (reported once; the datagram is gone), WEFT_EINVAL,
 * WEFT_ECANCELED (the queue stays queued), WEFT_EOTHER_RUNTIME,
 * WEFT_ENOTTASK. Suspends only while above the mark; cancellable. Any
 * number of tasks may drain at once. */
WEFT_EXTERN int weft_udp_drain(weft_udp_t *u);

/* ---- options after opening ---------------------------------------------- */

/* Join (leave) the multicast group `group` (an IPv4 or IPv6 literal) on the
 * interface whose address is `iface` (NULL = the system's choice).
 * Errors: WEFT_EINVAL (u or group NULL, not an address), the kernel's
 * (WEFT_EADDRINUSE when already joined, WEFT_EADDRNOTAVAIL when not joined,
 * WEFT_EAFNOSUPPORT for a group of the other family...),
 * WEFT_EBADF, WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. May move the task (not a
 * cancellation point). */
WEFT_EXTERN int weft_udp_join_group(weft_udp_t *u, const char *group,
                                    const char *iface);
WEFT_EXTERN int weft_udp_leave_group(weft_udp_t *u, const char *group,
                                     const char *iface);

/* Set SO_BROADCAST (on 0/1), the unicast TTL (1..255), the multicast TTL
 * (0..255), multicast loopback (on 0/1), or the interface multicast is sent
 * from (an address of the endpoint's family; NULL = the system's choice).
 * Errors: WEFT_EINVAL (u NULL, a value out of range, not an address), the
 * kernel's, WEFT_EBADF, WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. May move the
 * task (not a cancellation point). */
WEFT_EXTERN int weft_udp_set_broadcast(weft_udp_t *u, int on);
WEFT_EXTERN int weft_udp_set_ttl(weft_udp_t *u, int ttl);
WEFT_EXTERN int weft_udp_set_multicast_ttl(weft_udp_t *u, int ttl);
WEFT_EXTERN int weft_udp_set_multicast_loop(weft_udp_t *u, int on);
WEFT_EXTERN int weft_udp_set_multicast_interface(weft_udp_t *u,
                                                 const char *iface);

/* ---- addresses and state ------------------------------------------------ */

/* get_extra_info('sockname' / 'peername'): the bound or the peer's address,
 * copied into *addr with its length in *len (len may be NULL). Recorded at
 * open. Errors: WEFT_EINVAL (u or addr NULL), WEFT_ENOTCONN (peername of an
 * unconnected endpoint). Callable from anywhere. */
WEFT_EXTERN int weft_udp_sockname(const weft_udp_t *u,
                                  struct sockaddr_storage *addr,
                                  socklen_t *len);
WEFT_EXTERN int weft_udp_peername(const weft_udp_t *u,
                                  struct sockaddr_storage *addr,
                                  socklen_t *len);

/* The bound port (> 0), or WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_udp_port(const weft_udp_t *u);

/* The socket's descriptor (get_extra_info('socket')), for options weft does
 * not wrap; the endpoint keeps owning it. WEFT_EBADF once closed,
 * WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_udp_fileno(const weft_udp_t *u);

/* 1 if reading uses recvmmsg() (recv_batch above 1 and the kernel has
 * it), 0 if not, WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_udp_using_recvmmsg(const weft_udp_t *u);

/* transport.is_closing(): 1 once closed, else 0; WEFT_EINVAL. Callable
 * from anywhere. */
WEFT_EXTERN int weft_udp_is_closing(const weft_udp_t *u);

/* ---- closing ------------------------------------------------------------ */

/* transport.close(): stop receiving (waiting receivers get WEFT_EBADF, the
 * received datagrams nobody took are dropped), send what is queued, then
 * close the socket. Returns 0 (also when already closed), WEFT_EINVAL,
 * WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. Does not wait. */
WEFT_EXTERN int weft_udp_close(weft_udp_t *u);

/* Release an endpoint from weft_udp_open(): close it as weft_udp_close()
 * would if it is still open, and free it once the socket is closed. It must
 * not be used afterwards, and no other task may be inside a call on it.
 * Endpoints of a server are the server's: WEFT_EPERM (nothing done) for
 * those. Returns 0, WEFT_EPERM, WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK; NULL is
 * ignored (0). May move the task (not a cancellation point). */
WEFT_EXTERN int weft_udp_free(weft_udp_t *u);

/* ---- a server on every worker ------------------------------------------- */

/* A receiving task's body: it runs as a task pinned to the endpoint's
 * worker and should loop on weft_udp_recv() / weft_udp_send() until
 * weft_udp_recv() fails (WEFT_EBADF when the server is closed,
 * WEFT_ECANCELED at the runtime's shutdown), then return. arg is the
 * pointer given to weft_udp_server_start(). */
typedef void (*weft_udp_handler_fn)(weft_udp_t *u, void *arg);

/* Options of a UDP server. Initialise with weft_udp_server_opts_init(). */
typedef struct weft_udp_server_opts {
  /* Options of each endpoint. The local address is where the server binds
   * (local_port 0: the first endpoint picks the port, the others share it);
   * reuse_port is always set; a remote address is refused (WEFT_EINVAL);
   * recv_batch 0 means 16. */
  weft_udp_opts_t udp;
  /* Workers with an endpoint: workers 0..workers-1; 0 (the default) = every
   * worker. */
  unsigned workers;
  /* Receiving tasks per endpoint (like a DNS server's); 0 = 1. */
  unsigned tasks;
} weft_udp_server_opts_t;

/* Fill opts with the defaults. Never fails; opts NULL is ignored. */
WEFT_EXTERN void weft_udp_server_opts_init(weft_udp_server_opts_t *opts);

/* Start a UDP server: one SO_REUSEPORT endpoint per worker (the kernel
 * spreads datagrams among them by sender), each read with recvmmsg()
 * batches and served by opts->tasks tasks pinned to its worker, each
 * running handler(endpoint, arg). Every socket is bound before anything
 * runs, so a bind error is returned with nothing started. Store the server
 * in *out (free it with weft_udp_server_free()).
 *
 * Errors: those of weft_udp_open(), WEFT_EINVAL (handler or out NULL, a
 * remote address, workers above the runtime's), WEFT_ENOMEM,
 * WEFT_ERUNTIME_SHUTDOWN, WEFT_ECANCELED (while resolving), WEFT_ENOTTASK.
 * Suspends to resolve a name and to visit each worker. */
WEFT_EXTERN int weft_udp_server_start(weft_udp_handler_fn handler, void *arg,
                                      const weft_udp_server_opts_t *opts,
                                      weft_udp_server_t **out);

/* The server's port, or WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_udp_server_port(const weft_udp_server_t *srv);

/* Number of endpoints (one per serving worker), or WEFT_EINVAL. Callable
 * from anywhere. */
WEFT_EXTERN int weft_udp_server_endpoints(const weft_udp_server_t *srv);

/* Endpoint i (0-based, on worker i), or NULL (srv NULL, i out of range).
 * Owned by the server: usable for sending, not to be freed. Callable from
 * anywhere. */
WEFT_EXTERN weft_udp_t *weft_udp_server_endpoint(const weft_udp_server_t *srv,
                                                 unsigned i);

/* Close every endpoint (their receiving tasks' weft_udp_recv() returns
 * WEFT_EBADF) and wait until every receiving task has returned. Returns 0
 * (also when already closed), WEFT_EINVAL, WEFT_ECANCELED (the close is
 * done; the tasks are cancelled too and finish on their own),
 * WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. Suspends until the tasks return. */
WEFT_EXTERN int weft_udp_server_close(weft_udp_server_t *srv);

/* Close the server as weft_udp_server_close() (waiting for its tasks
 * without a cancellation point) and free it with its endpoints. Returns 0
 * (NULL is ignored), WEFT_EOTHER_RUNTIME, WEFT_ENOTTASK. Suspends until
 * the tasks return. */
WEFT_EXTERN int weft_udp_server_free(weft_udp_server_t *srv);

WEFT_END_DECLS

#endif /* WEFT_UDP_H */
