/*
 * Datagrams: asyncio's create_datagram_endpoint() (weft/udp.h) and a UDP
 * server with one SO_REUSEPORT endpoint per worker.
 *
 * Threading (io/home.c protocol): an endpoint's state is owner-only state
 * of its home worker. Tasks touch it on home between switches (every call
 * moves there first with weft__io_enter); libuv's callbacks (alloc, recv,
 * send, close) touch it in home's scheduler context during uv_run. The two
 * never run at once, so there is no lock. Fields read from anywhere
 * (`closing_pub`, `fd`, the addresses, `mmsg`) are written before the
 * endpoint is handed out or are atomics.
 *
 * Protocol of receiving:
 *  1. Reading starts at the first receive (uv_udp_recv_start) and stays on
 *     until the queue of received datagrams holds `qmax`, then stops until
 *     a receiver takes one, or a receiver has to wait.
 *  2. libuv reads into the endpoint's one buffer (`rbuf`: one 64 KiB slot,
 *     or `batch` slots for recvmmsg). Every slot is the largest datagram
 *     size, so the kernel never truncates; the recv callback copies each
 *     datagram out before libuv reads again, so the buffer is reused.
 *  3. The callback hands a datagram to the first waiting receiver (a
 *     receiver_t on the receiving task's stack): it copies into the
 *     receiver's buffer, records the outcome, sets `fired` and wakes the
 *     task. A receiver whose task has a cancellation pending is only
 *     unlinked (its wait returns WEFT_ECANCELED, home.c step 3), so a
 *     datagram is never handed to a cancelled receiver; a receiver without
 *     an info whose buffer is too small is fired with WEFT_EMSGSIZE and
 *     the datagram is offered to the next. With no receiver left it is
 *     copied onto `queue`.
 *  4. Reading may only be stopped between recvmmsg batches: uv_udp_recv_stop
 *     inside a batch would make libuv drop the rest of the batch (it stops
 *     handing chunks out once recv_cb is NULL). So the queue limit is
 *     checked in callbacks that carry no chunk (the batch's final
 *     UV_UDP_MMSG_FREE call, a plain recvmsg, or "nothing to read").
 *
 * Protocol of sending: uv_udp_try_send first (libuv refuses it with EAGAIN
 * while anything is queued, which keeps the order); on EAGAIN the datagram
 * is copied into a send request queued with uv_udp_send. `sq_bytes` counts
 * queued bytes; above `high` the endpoint is paused and drainers wait until
 * the completions bring it to `low`.
 *
 * Closing: weft_udp_close stops reading, fires every waiting receiver with
 * WEFT_EBADF, drops the queue and closes the handle once the send queue is
 * empty (at once if it is; else from the last send callback). The memory
 * is freed by the close callback when the program freed the endpoint
 * (`free_on_close`), else by weft_udp_free later; the endpoint stays on
 * home's io.objs until it is freed. At runtime shutdown the reap frees a
 * closed endpoint, or closes an open one at once (the queued sends
 * complete with UV_ECANCELED) and lets the close callback free it.
 *
 * Server: one slot per worker, each with an endpoint homed on that worker
 * and `tasks` receiving tasks pinned there (library tasks that always
 * start, so each one ends its slot's count). The slot's counters and its
 * closer are owner-only state of the slot's worker. Closing visits each
 * slot's worker, closes the endpoint and waits there until the slot's
 * tasks have returned; only then may the endpoints be freed, since a task
 * woken with WEFT_EBADF still touches its endpoint before it returns.
 */
#include "waitnote.h"
#include "alloc.h"
#include "compiler.h"
#include "io/io.h"
#include "list.h"
#include "record.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "task_int.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define SLOT_SIZE ((size_t)64 * 1024) /* libuv's UV__UDP_DGRAM_MAXSIZE */
#define SERVER_BATCH_DEFAULT 16u

/* A received datagram nobody has asked for yet. */
typedef struct dgram {
  weft__list_t link;            /* in u->queue */
  size_t len;                   /* bytes in data */
  int partial;                  /* the kernel cut it (UV_UDP_PARTIAL) */
  struct sockaddr_storage addr; /* the sender */
  socklen_t alen;               /* its length */
  unsigned char data[];         /* the datagram */
} dgram_t;

/* A task waiting in weft_udp_recv(); on its stack. */
typedef struct receiver {
  weft__list_t link;     /* in u->receivers */
  weft_task_t *task;     /* the waiting task */
  int fired;             /* set by the callback before the wake */
  void *buf;             /* where the datagram goes */
  size_t cap;            /* its size */
  weft_udp_info_t *info; /* NULL: a datagram over cap is refused */
  int result;            /* bytes copied, or an error; valid once fired */
} receiver_t;

/* A queued datagram: libuv's request with the copy behind it. */
typedef struct send_req {
  uv_udp_send_t req;    /* libuv's request (req.handle->data: the endpoint) */
  size_t len;           /* bytes in data */
  unsigned char data[]; /* the copy */
} send_req_t;

typedef struct slot slot_t;

struct weft_udp {
  weft__io_obj_t obj;     /* home worker, io.objs link, reap */
  uv_udp_t h;             /* the handle */
  int fd;                 /* the socket (read anywhere; fixed once open) */
  int mmsg;               /* reading uses recvmmsg (read anywhere) */
  atomic_int closing_pub; /* 1 once closed (is_closing() reads anywhere) */
  int closing;            /* home owner: close was called */
  int handle_closed;      /* home owner: uv_close was called */
  int close_done;         /* home owner: the close callback ran */
  int free_on_close;      /* home owner: the close callback frees the record */
  int reading;            /* home owner: uv_udp_recv_start is in effect */
  slot_t *slot;           /* the server slot owning it, or NULL */
  int connected;          /* connected to `peer` */
  struct sockaddr_storage local; /* the bound address */
  socklen_t locallen;
  struct sockaddr_storage peer; /* the peer of a connected endpoint */
  socklen_t peerlen;
  unsigned char *rbuf;    /* libuv's read buffer (protocol step 2) */
  size_t rbuf_len;        /* its size: batch x SLOT_SIZE */
  weft__list_t queue;     /* home owner: dgram_t not yet taken */
  unsigned qlen;          /* entries on queue */
  unsigned qmax;          /* reading pauses at this many */
  weft__list_t receivers; /* home owner: receiver_t waiting */
  int rerr;               /* home owner: error for the next receive */
  size_t sq_bytes;        /* home owner: bytes in queued sends */
  size_t high, low;       /* send-queue water marks */
  int paused;             /* home owner: above high, not yet at low */
  int serr;               /* home owner: first queued-send error, for drain */
  weft__list_t drainers;  /* home owner: weft__io_waiter_t of drain */
};

struct slot {
  weft_udp_server_t *srv; /* the server */
  weft__worker_t *w;      /* the slot's worker */
  weft_udp_t *u;          /* its endpoint */
  unsigned live;          /* w owner: receiving tasks not yet returned */
  weft__list_t closers;   /* w owner: close/free waiting for live == 0 */
};

struct weft_udp_server {
  weft__io_obj_t obj;          /* home worker, io.objs link, reap */
  weft_udp_handler_fn handler; /* the program's handler */
  void *arg;                   /* its argument */
  int port;                    /* the bound port */
  unsigned tasks;              /* receiving tasks per slot */
  unsigned nslots;
  slot_t slots[];
};

/* errno of the call that just failed. Out of line: its callers suspend
 * (design.md section 2.6). */
static WEFT__NOIPA int sock_err(void) { return -errno; }

static socklen_t addr_len(int family) {
  return family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                            : (socklen_t)sizeof(struct sockaddr_in);
}

static int addr_port(const struct sockaddr_storage *ss) {
  return ntohs(ss->ss_family == AF_INET6
                   ? ((const struct sockaddr_in6 *)ss)->sin6_port
                   : ((const struct sockaddr_in *)ss)->sin_port);
}

static void set_port(struct sockaddr_storage *ss, int port) {
  if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

void weft_udp_opts_init(weft_udp_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->family = AF_UNSPEC;
  opts->multicast_loop = 1;
}

void weft_udp_server_opts_init(weft_udp_server_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  weft_udp_opts_init(&opts->udp);
}

static int opts_valid(const weft_udp_opts_t *o) {
  if (o->local_port < 0 || o->local_port > 65535 || o->remote_port < 0 ||
      o->remote_port > 65535)
    return 0;
  if (o->family != AF_UNSPEC && o->family != AF_INET && o->family != AF_INET6)
    return 0;
  if (o->ttl < 0 || o->ttl > 255 || o->multicast_ttl < 0 ||
      o->multicast_ttl > 255)
    return 0;
  if (o->recv_batch > WEFT_UDP_BATCH_MAX)
    return 0;
  size_t high = o->high_water ? o->high_water : WEFT_UDP_HIGH_WATER_DEFAULT;
  return !o->low_water || o->low_water <= high;
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                  */

static void udp_dealloc(weft_udp_t *u) {
  weft__list_t *n;
  while ((n = weft__list_pop_front(&u->queue)))
    weft__free(weft__container_of(n, dgram_t, link));
  weft__free(u->rbuf);
  weft__free(u);
}

static void on_close(uv_handle_t *h) {
  weft_udp_t *u = h->data;
  u->close_done = 1;
  /* Closed but not freed: it stays on io.objs, so that the shutdown reap
   * frees it if the program never does. */
  if (u->free_on_close) {
    weft__io_unregister(&u->obj);
    udp_dealloc(u);
  }
}

/* On home: close the handle now (queued sends complete with ECANCELED). */
static void handle_close(weft_udp_t *u) {
  if (u->handle_closed)
    return;
  u->handle_closed = 1;
  uv_close((uv_handle_t *)&u->h, on_close);
}

static void fire(receiver_t *r, int result) {
  r->result = result;
  r->fired = 1;
  weft__task_wake(r->task);
}

/* On home: stop receiving, release receivers, drop the queue, and close the
 * handle once the send queue is empty (else on_send does). */
static void udp_close(weft_udp_t *u) {
  if (u->closing)
    return;
  u->closing = 1;
  /* relaxed: is_closing() is a snapshot. */
  atomic_store_explicit(&u->closing_pub, 1, memory_order_relaxed);
  if (u->reading) {
    uv_udp_recv_stop(&u->h);
    u->reading = 0;
  }
  weft__list_t *n;
  while ((n = weft__list_pop_front(&u->receivers))) {
    receiver_t *r = weft__container_of(n, receiver_t, link);
    if (!weft__io_task_cancelled(r->task))
      fire(r, WEFT_EBADF);
  }
  while ((n = weft__list_pop_front(&u->queue)))
    weft__free(weft__container_of(n, dgram_t, link));
  u->qlen = 0;
  if (uv_udp_get_send_queue_count(&u->h) == 0)
    handle_close(u);
}

static void udp_reap(weft__io_obj_t *o) {
  weft_udp_t *u = weft__container_of(o, weft_udp_t, obj);
  /* Every task has finished: close at once (queued sends complete with
   * UV_ECANCELED) and let the close callback free the record. */
  if (u->close_done) { /* closed by the program, never freed */
    udp_dealloc(u);
    return;
  }
  u->closing = 1;
  u->free_on_close = 1;
  if (u->reading) {
    uv_udp_recv_stop(&u->h);
    u->reading = 0;
  }
  handle_close(u);
}

/* ------------------------------------------------------------------------ */
/* Receiving (protocol steps 1-4)                                            */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  weft_udp_t *u = h->data;
  (void)suggested;
  buf->base = (char *)u->rbuf;
  buf->len = u->rbuf_len;
}

static void fill_info(weft_udp_info_t *info, const struct sockaddr *addr,
                      socklen_t alen, size_t len, size_t cap, int partial) {
  if (!info)
    return;
  memset(&info->addr, 0, sizeof(info->addr));
  memcpy(&info->addr, addr, alen);
  info->addrlen = alen;
  info->size = len;
  info->truncated = partial || len > cap;
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Hand one datagram to the first receiver that can take it (step 3).
 * Returns 1 if one took it. */
static int hand_over(weft_udp_t *u, const unsigned char *data, size_t len,
                     const struct sockaddr *addr, socklen_t alen, int partial) {
  weft__list_t *n;
  while ((n = weft__list_pop_front(&u->receivers))) {
    receiver_t *r = weft__container_of(n, receiver_t, link);
    if (weft__io_task_cancelled(r->task))
      continue; /* its wait returns WEFT_ECANCELED */
    if (!r->info && len > r->cap) {
      fire(r, WEFT_EMSGSIZE);
      continue;
    }
    size_t k = min_size(len, r->cap);
    if (k)
      memcpy(r->buf, data, k);
    fill_info(r->info, addr, alen, len, r->cap, partial);
    fire(r, (int)k);
    return 1;
  }
  return 0;
}

static void maybe_pause(weft_udp_t *u) {
  if (u->reading && u->qlen >= u->qmax) {
    uv_udp_recv_stop(&u->h);
    u->reading = 0;
  }
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                    const struct sockaddr *addr, unsigned flags) {
  weft_udp_t *u = h->data;
  if (nread < 0) {
    /* A socket error (an ICMP error on a connected endpoint): given to the
     * first waiting receiver, else kept for the next receive, which reports
     * it after the datagrams queued before it. */
    weft__list_t *n;
    while ((n = weft__list_pop_front(&u->receivers))) {
      receiver_t *r = weft__container_of(n, receiver_t, link);
      if (!weft__io_task_cancelled(r->task)) {
        fire(r, (int)nread);
        return;
      }
    }
    if (!u->rerr)
      u->rerr = (int)nread;
    return;
  }
  (void)buf;
  if (!addr) { /* nothing read, or the end of a recvmmsg batch */
    maybe_pause(u);
    return;
  }
  socklen_t alen = addr_len(addr->sa_family);
  const unsigned char *data = (const unsigned char *)buf->base;
  int partial = (flags & UV_UDP_PARTIAL) != 0;
  if (!hand_over(u, data, (size_t)nread, addr, alen, partial)) {
    dgram_t *d = weft__malloc(sizeof(*d) + (size_t)nread);
    if (!d) {
      if (!u->rerr)
        u->rerr = WEFT_ENOBUFS;
    } else {
      d->len = (size_t)nread;
      d->partial = partial;
      memset(&d->addr, 0, sizeof(d->addr));
      memcpy(&d->addr, addr, alen);
      d->alen = alen;
      if (nread)
        memcpy(d->data, data, (size_t)nread);
      weft__list_push_back(&u->queue, &d->link);
      u->qlen++;
    }
  }
  if (!(flags & UV_UDP_MMSG_CHUNK))
    maybe_pause(u);
}

static int start_reading(weft_udp_t *u) {
  if (u->reading || u->closing)
    return 0;
  int rc = uv_udp_recv_start(&u->h, on_alloc, on_recv);
  if (rc == 0)
    u->reading = 1;
  return rc;
}

/* Common prologue: validate, find the task, move it home. */
static int udp_begin(weft_udp_t *u, weft_task_t **tp) {
  if (!u)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &u->obj);
  if (rc)
    return rc;
  weft__io_enter(t, u->obj.home);
  *tp = t;
  return 0;
}

int weft_udp_recv(weft_udp_t *u, void *buf, size_t cap, weft_udp_info_t *info) {
  weft_task_t *t;
  if (u && !buf && cap)
    return WEFT_EINVAL;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  if (cap > INT_MAX)
    cap = INT_MAX;
  int waited = 0;
  for (;;) {
    if (u->closing) {
      rc = WEFT_EBADF;
      break;
    }
    if (!weft__list_empty(&u->queue)) {
      dgram_t *d = weft__container_of(u->queue.next, dgram_t, link);
      if (!info && d->len > cap) {
        rc = WEFT_EMSGSIZE;
        break;
      }
      weft__list_remove(&d->link);
      u->qlen--;
      size_t k = min_size(d->len, cap);
      if (k)
        memcpy(buf, d->data, k);
      fill_info(info, (struct sockaddr *)&d->addr, d->alen, d->len, cap,
                d->partial);
      weft__free(d);
      rc = (int)k;
      if (u->qlen < u->qmax)
        (void)start_reading(u); /* a failure shows at the next wait */
      break;
    }
    if (u->rerr) {
      rc = u->rerr;
      u->rerr = 0;
      break;
    }
    rc = start_reading(u);
    if (rc)
      break;
    receiver_t r = {.task = t, .buf = buf, .cap = cap, .info = info};
    weft__list_push_back(&u->receivers, &r.link);
    weft__wait_note(t, WEFT_WAIT_UDP_RECV, u);
    rc = weft__io_wait_flag(t, &r.fired, 0);
    if (weft__list_linked(&r.link))
      weft__list_remove(&r.link);
    waited = 1;
    if (r.fired) { /* a datagram wins over a cancellation (home.c step 3) */
      rc = r.result;
      break;
    }
    if (rc)
      break;
  }
  weft__io_leave(t);
  if (!waited && rc >= 0)
    weft__coop_tick();
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */

static void on_send(uv_udp_send_t *req, int status) {
  send_req_t *sr = weft__container_of(req, send_req_t, req);
  weft_udp_t *u = req->handle->data;
  u->sq_bytes -= sr->len;
  weft__free(sr);
  if (status < 0 && status != UV_ECANCELED && !u->serr)
    u->serr = status;
  if (u->paused && u->sq_bytes <= u->low) {
    u->paused = 0;
    weft__io_wake_all(&u->drainers);
  }
  if (u->closing && uv_udp_get_send_queue_count(&u->h) == 0)
    handle_close(u);
}

static int same_addr(const struct sockaddr *a,
                     const struct sockaddr_storage *b) {
  if (a->sa_family != b->ss_family)
    return 0;
  return memcmp(a, b, addr_len(a->sa_family)) == 0;
}

int weft_udp_send(weft_udp_t *u, const void *data, size_t len,
                  const struct sockaddr *addr) {
  weft_task_t *t;
  if (u && !data && len)
    return WEFT_EINVAL;
  if (u && addr && addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
    return WEFT_EAFNOSUPPORT;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  if (u->closing) {
    rc = WEFT_EBADF;
  } else if (!addr && !u->connected) {
    rc = WEFT_ENOTCONN;
  } else if (addr && u->connected && !same_addr(addr, &u->peer)) {
    rc = WEFT_EISCONN;
  } else {
    if (u->connected)
      addr = NULL; /* libuv wants none on a connected handle */
    /* libuv keeps bufs' base non-const; try_send only reads it. */
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
    if (len > UINT_MAX) {
      rc = WEFT_EMSGSIZE;
    } else {
      rc = uv_udp_try_send(&u->h, &b, 1, addr);
      if (rc >= 0) {
        rc = 0;
      } else if (rc == UV_EAGAIN) {
        send_req_t *sr = weft__malloc(sizeof(*sr) + len);
        if (!sr) {
          rc = WEFT_ENOMEM;
        } else {
          sr->len = len;
          if (len)
            memcpy(sr->data, data, len);
          b = uv_buf_init((char *)sr->data, (unsigned)len);
          rc = uv_udp_send(&sr->req, &u->h, &b, 1, addr, on_send);
          if (rc) {
            weft__free(sr);
          } else {
            u->sq_bytes += len;
            if (u->sq_bytes > u->high)
              u->paused = 1;
          }
        }
      }
    }
  }
  weft__io_leave(t);
  return rc;
}

int weft_udp_drain(weft_udp_t *u) {
  weft_task_t *t;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  for (;;) {
    if (u->serr) {
      rc = u->serr;
      u->serr = 0;
      break;
    }
    if (!u->paused)
      break;
    weft__wait_note(t, WEFT_WAIT_UDP_SEND, u);
    rc = weft__io_wait_in(&u->drainers, t);
    if (rc)
      break;
  }
  weft__io_leave(t);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Options after opening                                                     */

static int set_opt(int fd, int level, int name, int val) {
  if (setsockopt(fd, level, name, &val, sizeof(val)) != 0)
    return sock_err();
  return 0;
}

/* On home: the option for the endpoint's family. */
static int fam_opt(weft_udp_t *u, int name4, int name6, int val) {
  if (u->local.ss_family == AF_INET6)
    return set_opt(u->fd, IPPROTO_IPV6, name6, val);
  return set_opt(u->fd, IPPROTO_IP, name4, val);
}

static int apply_ttl(weft_udp_t *u, int ttl) {
  return fam_opt(u, IP_TTL, IPV6_UNICAST_HOPS, ttl);
}

static int apply_mttl(weft_udp_t *u, int ttl) {
  return fam_opt(u, IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS, ttl);
}

static int apply_mloop(weft_udp_t *u, int on) {
  return fam_opt(u, IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP, on ? 1 : 0);
}

typedef enum { OPT_BROADCAST, OPT_TTL, OPT_MTTL, OPT_MLOOP } opt_kind_t;

static int udp_set(weft_udp_t *u, opt_kind_t k, int v) {
  weft_task_t *t;
  if (u && (((k == OPT_BROADCAST || k == OPT_MLOOP) && v != 0 && v != 1) ||
            (k == OPT_TTL && (v < 1 || v > 255)) ||
            (k == OPT_MTTL && (v < 0 || v > 255))))
    return WEFT_EINVAL;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  if (u->closing)
    rc = WEFT_EBADF;
  else if (k == OPT_BROADCAST)
    rc = set_opt(u->fd, SOL_SOCKET, SO_BROADCAST, v);
  else if (k == OPT_TTL)
    rc = apply_ttl(u, v);
  else if (k == OPT_MTTL)
    rc = apply_mttl(u, v);
  else
    rc = apply_mloop(u, v);
  weft__io_leave(t);
  return rc;
}

int weft_udp_set_broadcast(weft_udp_t *u, int on) {
  return udp_set(u, OPT_BROADCAST, on);
}

int weft_udp_set_ttl(weft_udp_t *u, int ttl) {
  return udp_set(u, OPT_TTL, ttl);
}

int weft_udp_set_multicast_ttl(weft_udp_t *u, int ttl) {
  return udp_set(u, OPT_MTTL, ttl);
}

int weft_udp_set_multicast_loop(weft_udp_t *u, int on) {
  return udp_set(u, OPT_MLOOP, on);
}

int weft_udp_set_multicast_interface(weft_udp_t *u, const char *iface) {
  weft_task_t *t;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  if (u->closing)
    rc = WEFT_EBADF;
  else if (!iface && u->local.ss_family == AF_INET6)
    /* libuv resets the IPv6 option only on sockets it bound itself. */
    rc = set_opt(u->fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, 0);
  else
    rc = uv_udp_set_multicast_interface(&u->h, iface);
  weft__io_leave(t);
  return rc;
}

static int membership(weft_udp_t *u, const char *group, const char *iface,
                      uv_membership m) {
  weft_task_t *t;
  if (u && !group)
    return WEFT_EINVAL;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  if (u->closing)
    rc = WEFT_EBADF;
  else
    rc = uv_udp_set_membership(&u->h, group, iface, m);
  weft__io_leave(t);
  return rc;
}

int weft_udp_join_group(weft_udp_t *u, const char *group, const char *iface) {
  return membership(u, group, iface, UV_JOIN_GROUP);
}

int weft_udp_leave_group(weft_udp_t *u, const char *group, const char *iface) {
  return membership(u, group, iface, UV_LEAVE_GROUP);
}

/* ------------------------------------------------------------------------ */
/* Addresses and state (callable from anywhere)                              */

static int copy_addr(const struct sockaddr_storage *src, socklen_t slen,
                     struct sockaddr_storage *addr, socklen_t *len) {
  memcpy(addr, src, sizeof(*addr));
  if (len)
    *len = slen;
  return 0;
}

int weft_udp_sockname(const weft_udp_t *u, struct sockaddr_storage *addr,
                      socklen_t *len) {
  if (!u || !addr)
    return WEFT_EINVAL;
  return copy_addr(&u->local, u->locallen, addr, len);
}

int weft_udp_peername(const weft_udp_t *u, struct sockaddr_storage *addr,
                      socklen_t *len) {
  if (!u || !addr)
    return WEFT_EINVAL;
  if (!u->connected)
    return WEFT_ENOTCONN;
  return copy_addr(&u->peer, u->peerlen, addr, len);
}

int weft_udp_port(const weft_udp_t *u) {
  if (!u)
    return WEFT_EINVAL;
  return addr_port(&u->local);
}

int weft_udp_fileno(const weft_udp_t *u) {
  if (!u)
    return WEFT_EINVAL;
  /* relaxed: a snapshot, as for streams. */
  if (atomic_load_explicit(&u->closing_pub, memory_order_relaxed))
    return WEFT_EBADF;
  return u->fd;
}

int weft_udp_using_recvmmsg(const weft_udp_t *u) {
  return u ? u->mmsg : WEFT_EINVAL;
}

int weft_udp_is_closing(const weft_udp_t *u) {
  if (!u)
    return WEFT_EINVAL;
  /* relaxed: a snapshot. */
  return atomic_load_explicit(&u->closing_pub, memory_order_relaxed);
}

int weft_udp_close(weft_udp_t *u) {
  weft_task_t *t;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  udp_close(u);
  weft__io_leave(t);
  return 0;
}

/* On home: close, and free once closed. */
static void udp_release(weft_udp_t *u) {
  udp_close(u);
  if (u->close_done) {
    weft__io_unregister(&u->obj);
    udp_dealloc(u);
  } else {
    u->free_on_close = 1;
  }
}

int weft_udp_free(weft_udp_t *u) {
  weft_task_t *t;
  if (!u)
    return 0;
  if (u->slot)
    return WEFT_EPERM;
  int rc = udp_begin(u, &t);
  if (rc)
    return rc;
  udp_release(u);
  weft__io_leave(t);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                   */

/* Resolve host:port into *out, taking the first address of `family`
 * (AF_UNSPEC: any). host NULL: the family's wildcard address. */
static int resolve_one(const char *host, int port, int passive, int family,
                       struct sockaddr_storage *out) {
  memset(out, 0, sizeof(*out));
  if (!host) {
    if (family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_any;
      a->sin6_port = htons((uint16_t)port);
    } else {
      struct sockaddr_in *a = (struct sockaddr_in *)out;
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_ANY);
      a->sin_port = htons((uint16_t)port);
    }
    return 0;
  }
  struct sockaddr_storage *addrs;
  size_t n;
  int rc = weft__io_resolve(host, port, passive, &addrs, &n);
  if (rc)
    return rc;
  rc = WEFT_EAFNOSUPPORT;
  for (size_t i = 0; i < n; i++)
    if (family == AF_UNSPEC || addrs[i].ss_family == family) {
      *out = addrs[i];
      rc = 0;
      break;
    }
  weft__free(addrs);
  return rc;
}

/* The socket with its options, bound if `bind_addr`. */
static int make_socket(const weft_udp_opts_t *o, int family,
                       const struct sockaddr_storage *bind_addr, int reuse_port,
                       int *out) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sock_err();
  int rc = 0;
  if (o->reuse_address)
    rc = set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (rc == 0 && reuse_port)
    rc = set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (rc == 0 && family == AF_INET6)
    rc = set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, o->ipv6_only ? 1 : 0);
  if (rc == 0 && o->allow_broadcast)
    rc = set_opt(fd, SOL_SOCKET, SO_BROADCAST, 1);
  if (rc == 0 && bind_addr &&
      bind(fd, (const struct sockaddr *)bind_addr, addr_len(family)) != 0)
    rc = sock_err();
  if (rc) {
    close(fd);
    return rc;
  }
  *out = fd;
  return 0;
}

/* On the calling task's worker w: wrap fd (taken over, closed on failure)
 * in an endpoint homed on w, apply the options, connect to `peer` if
 * given. */
static int udp_adopt(weft__worker_t *w, const weft_udp_opts_t *o, int fd,
                     int family, unsigned batch,
                     const struct sockaddr_storage *peer, weft_udp_t **out) {
  weft_udp_t *u = weft__calloc(1, sizeof(*u));
  unsigned char *rbuf = u ? weft__malloc(batch * SLOT_SIZE) : NULL;
  if (!rbuf) {
    weft__free(u);
    close(fd);
    return WEFT_ENOMEM;
  }
  u->rbuf = rbuf;
  u->rbuf_len = batch * SLOT_SIZE;
  u->fd = fd;
  atomic_init(&u->closing_pub, 0);
  weft__list_init(&u->queue);
  weft__list_init(&u->receivers);
  weft__list_init(&u->drainers);
  weft__list_init(&u->obj.link);
  u->qmax = o->queue_max ? o->queue_max : WEFT_UDP_QUEUE_MAX_DEFAULT;
  u->high = o->high_water ? o->high_water : WEFT_UDP_HIGH_WATER_DEFAULT;
  /* A high mark below the default low one brings the low one down. */
  u->low = o->low_water ? o->low_water : WEFT_UDP_LOW_WATER_DEFAULT;
  if (u->low > u->high)
    u->low = u->high;
  int rc = uv_udp_init_ex(&w->own.loop, &u->h,
                          batch > 1 ? UV_UDP_RECVMMSG : AF_UNSPEC);
  if (rc) {
    close(fd);
    udp_dealloc(u);
    return rc;
  }
  u->h.data = u;
  weft__io_register(&u->obj, w, udp_reap);
  rc = uv_udp_open(&u->h, fd);
  if (rc) {
    close(fd);
    u->fd = -1;
  }
  /* libuv 1.44's uv_udp_open sets SO_REUSEADDR on every socket it adopts.
   * On Linux that lets another SO_REUSEADDR socket bind the same unicast
   * port and take datagrams meant for this one (why asyncio refuses
   * reuse_address for UDP), and a connect's autobind may pick a port such
   * a socket holds. Put back the program's choice before connecting. */
  if (rc == 0)
    rc = set_opt(fd, SOL_SOCKET, SO_REUSEADDR, o->reuse_address ? 1 : 0);
  u->local.ss_family = (sa_family_t)family; /* for fam_opt until bound */
  if (rc == 0 && o->ttl)
    rc = apply_ttl(u, o->ttl);
  if (rc == 0 && o->multicast_ttl)
    rc = apply_mttl(u, o->multicast_ttl);
  if (rc == 0 && !o->multicast_loop)
    rc = apply_mloop(u, 0);
  if (rc == 0 && peer) {
    rc = uv_udp_connect(&u->h, (const struct sockaddr *)peer);
    if (rc == 0) {
      u->connected = 1;
      u->peer = *peer;
      u->peerlen = addr_len(peer->ss_family);
    }
  }
  if (rc == 0) {
    socklen_t len = sizeof(u->local);
    if (getsockname(fd, (struct sockaddr *)&u->local, &len) != 0)
      rc = sock_err();
    u->locallen = len;
  }
  if (rc) {
    u->closing = 1;
    atomic_store_explicit(&u->closing_pub, 1, memory_order_relaxed);
    u->free_on_close = 1;
    handle_close(u);
    return rc;
  }
  u->mmsg = uv_udp_using_recvmmsg(&u->h) == 1;
  *out = u;
  return 0;
}

/* The local and remote addresses of o, resolved (on the calling task's
 * worker; suspends for names). *bind_local: whether to bind. */
static int resolve_opts(const weft_udp_opts_t *o,
                        struct sockaddr_storage *local, int *bind_local,
                        struct sockaddr_storage *remote, int *has_remote) {
  int rc;
  *has_remote = o->remote_host != NULL;
  *bind_local = o->local_host || o->local_port || !o->remote_host;
  int family = o->family;
  if (*bind_local) {
    rc = resolve_one(o->local_host, o->local_port, 1, family, local);
    if (rc)
      return rc;
    family = local->ss_family;
  }
  if (*has_remote) {
    rc = resolve_one(o->remote_host, o->remote_port, 0, family, remote);
    if (rc)
      return rc;
  }
  return 0;
}

int weft_udp_open(const weft_udp_opts_t *opts, weft_udp_t **out) {
  if (out)
    *out = NULL;
  if (!opts || !out || !opts_valid(opts))
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft__worker_t *home = weft__worker_current();
  weft__io_enter(t, home);
  struct sockaddr_storage local, remote;
  int bind_local, has_remote, fd = -1;
  int rc = resolve_opts(opts, &local, &bind_local, &remote, &has_remote);
  int family = bind_local ? local.ss_family : remote.ss_family;
  if (rc == 0)
    rc = make_socket(opts, family, bind_local ? &local : NULL, opts->reuse_port,
                     &fd);
  if (rc == 0)
    rc = udp_adopt(home, opts, fd, family,
                   opts->recv_batch ? opts->recv_batch : 1,
                   has_remote ? &remote : NULL, out);
  weft__io_leave(t);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */

static void server_reap(weft__io_obj_t *o) {
  /* Every receiving task has finished; the endpoints are reaped on their
   * own workers. */
  weft__free(weft__container_of(o, weft_udp_server_t, obj));
}

static void *slot_task(void *arg) {
  slot_t *sl = arg;
  weft_task_t *t = weft__task_current();
  if (!weft__task_start_cancelled(t) && !sl->u->closing)
    sl->srv->handler(sl->u, sl->srv->arg);
  /* Pinned to the slot's worker, so this is the slot's thread. */
  if (--sl->live == 0)
    weft__io_wake_all(&sl->closers);
  return NULL;
}

/* On the slot's worker: wait until its tasks have returned. */
static int slot_wait(slot_t *sl, weft_task_t *t, int uncancellable) {
  while (sl->live) {
    weft__io_waiter_t w = {.task = t};
    weft__list_push_back(&sl->closers, &w.link);
    weft__wait_note(t, WEFT_WAIT_IO, sl);
    int rc = weft__io_wait_flag(t, &w.fired, uncancellable);
    if (weft__list_linked(&w.link))
      weft__list_remove(&w.link);
    if (rc)
      return rc;
  }
  return 0;
}

/* Visit every slot: close its endpoint, wait for its tasks; free the
 * endpoints too with `release`. */
static int server_close_all(weft_udp_server_t *srv, weft_task_t *t,
                            int release) {
  int rc = 0;
  for (unsigned i = 0; i < srv->nslots; i++) {
    slot_t *sl = &srv->slots[i];
    if (!sl->u)
      continue;
    weft__io_hop(t, sl->w);
    udp_close(sl->u);
    if (rc == 0)
      rc = slot_wait(sl, t, release);
    if (release) {
      udp_release(sl->u);
      sl->u = NULL;
    }
  }
  weft__io_hop(t, srv->obj.home);
  return rc;
}

int weft_udp_server_start(weft_udp_handler_fn handler, void *arg,
                          const weft_udp_server_opts_t *opts,
                          weft_udp_server_t **out) {
  if (out)
    *out = NULL;
  if (!handler || !out ||
      (opts && (!opts_valid(&opts->udp) || opts->udp.remote_host)))
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft__worker_t *home = weft__worker_current();
  weft_runtime_t *rt = home->own.rt;
  weft_udp_server_opts_t def;
  if (!opts) {
    weft_udp_server_opts_init(&def);
    opts = &def;
  }
  unsigned nslots = opts->workers ? opts->workers : rt->nworkers;
  if (nslots > rt->nworkers)
    return WEFT_EINVAL;
  weft_udp_opts_t uo = opts->udp;
  uo.reuse_port = 1;
  unsigned batch = uo.recv_batch ? uo.recv_batch : SERVER_BATCH_DEFAULT;
  weft__io_enter(t, home);
  struct sockaddr_storage local;
  int rc = resolve_one(uo.local_host, uo.local_port, 1, uo.family, &local);
  if (rc) {
    weft__io_leave(t);
    return rc;
  }
  weft_udp_server_t *srv =
      weft__calloc(1, sizeof(*srv) + nslots * sizeof(slot_t));
  int *fds = weft__malloc(nslots * sizeof(int));
  if (!srv || !fds) {
    weft__free(srv);
    weft__free(fds);
    weft__io_leave(t);
    return WEFT_ENOMEM;
  }
  srv->handler = handler;
  srv->arg = arg;
  srv->tasks = opts->tasks ? opts->tasks : 1;
  srv->nslots = nslots;
  weft__list_init(&srv->obj.link);
  /* Bind every socket here (port 0: the first picks, the rest follow), so
   * that a bind error is reported before anything runs. */
  unsigned made = 0;
  for (; made < nslots && rc == 0; made++) {
    rc = make_socket(&uo, local.ss_family, &local, 1, &fds[made]);
    if (rc)
      break;
    if (made == 0) {
      struct sockaddr_storage b;
      socklen_t len = sizeof(b);
      if (getsockname(fds[0], (struct sockaddr *)&b, &len) != 0)
        rc = sock_err();
      srv->port = addr_port(&b);
      set_port(&local, srv->port);
    }
  }
  if (rc) {
    for (unsigned i = 0; i < made; i++)
      close(fds[i]);
    weft__free(fds);
    weft__free(srv);
    weft__io_leave(t);
    return rc;
  }
  weft__io_register(&srv->obj, home, server_reap);
  /* Adopt each socket on its worker and start its tasks there. */
  unsigned i = 0;
  for (; i < nslots; i++) {
    slot_t *sl = &srv->slots[i];
    sl->srv = srv;
    sl->w = &rt->workers[i];
    weft__list_init(&sl->closers);
    weft__io_hop(t, sl->w);
    rc = udp_adopt(sl->w, &uo, fds[i], local.ss_family, batch, NULL, &sl->u);
    fds[i] = -1;
    if (rc)
      break;
    sl->u->slot = sl;
    weft_spawn_opts_t so;
    weft_spawn_opts_init(&so);
    so.pin = (int)i;
    so.name = "weft-udp";
    for (unsigned k = 0; k < srv->tasks && rc == 0; k++) {
      sl->live++;
      /* Always starts: it must count itself out of `live`. */
      rc = weft__spawn_always(&so, slot_task, sl, NULL);
      if (rc)
        sl->live--;
    }
    if (rc) {
      i++;
      break;
    }
  }
  for (unsigned k = i; k < nslots; k++)
    if (fds[k] >= 0)
      close(fds[k]);
  weft__free(fds);
  if (rc) {
    (void)server_close_all(srv, t, 1);
    weft__io_unregister(&srv->obj);
    weft__free(srv);
    weft__io_leave(t);
    return rc;
  }
  weft__io_hop(t, home);
  weft__io_leave(t);
  *out = srv;
  return 0;
}

int weft_udp_server_port(const weft_udp_server_t *srv) {
  return srv ? srv->port : WEFT_EINVAL;
}

int weft_udp_server_endpoints(const weft_udp_server_t *srv) {
  return srv ? (int)srv->nslots : WEFT_EINVAL;
}

weft_udp_t *weft_udp_server_endpoint(const weft_udp_server_t *srv, unsigned i) {
  if (!srv || i >= srv->nslots)
    return NULL;
  return srv->slots[i].u;
}

static int server_begin(weft_udp_server_t *srv, weft_task_t **tp) {
  if (!srv)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &srv->obj);
  if (rc)
    return rc;
  weft__io_enter(t, srv->obj.home);
  *tp = t;
  return 0;
}

int weft_udp_server_close(weft_udp_server_t *srv) {
  weft_task_t *t;
  int rc = server_begin(srv, &t);
  if (rc)
    return rc;
  rc = server_close_all(srv, t, 0);
  weft__io_leave(t);
  return rc;
}

int weft_udp_server_free(weft_udp_server_t *srv) {
  weft_task_t *t;
  if (!srv)
    return 0;
  int rc = server_begin(srv, &t);
  if (rc)
    return rc;
  (void)server_close_all(srv, t, 1);
  weft__io_unregister(&srv->obj);
  weft__free(srv);
  weft__io_leave(t);
  return 0;
}
