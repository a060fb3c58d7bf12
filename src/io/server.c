/*
 * Servers: asyncio.start_server / start_unix_server and asyncio.Server.
 *
 * Layout: one slot per accepting worker. A TCP slot owns a SO_REUSEPORT
 * listening socket that weft creates, binds and listens on itself (libuv
 * 1.44 has no UV_TCP_REUSEPORT) and adopts with uv_tcp_open on the slot's
 * worker; the kernel spreads incoming connections over the sockets. A Unix
 * server has a single slot, on the creating task's worker.
 *
 * Threading (io/home.c protocol): each slot is owner-only state of its
 * worker: its handle, its lists of accepted streams and its waiters. A task
 * that acts on the whole server (start, close, close_clients, wait_closed)
 * visits the slots' workers in turn with weft__io_hop. The server record's
 * own owner-only fields (`closed`, `forever`) belong to the creating
 * worker, `home`. Fields read anywhere (`serving`, `port`, addresses,
 * `accepted`) are atomics or written before the server is handed out.
 *
 * Protocol per slot:
 *  1. The listener's connection callback (scheduler context) accepts the
 *     connection into a new stream homed on the slot's worker, starts it,
 *     queues it on `ready` and wakes the slot's acceptor, a task pinned to
 *     that worker (only a task can spawn).
 *  2. The acceptor moves each ready stream to `conns` and spawns a handler
 *     task for it; the handler task calls the program's handler and then
 *     releases the stream (graceful close, freed when closed).
 *  3. A stream's close callback takes it off `conns`; when the listener is
 *     closed, the acceptor has exited and `conns` is empty, the slot is
 *     idle and its wait_closed() waiters are woken.
 *  4. Closing a slot closes its listener on its worker and wakes the
 *     acceptor, which hands out what is ready and exits. At shutdown the
 *     acceptor's wait returns WEFT_ECANCELED and it closes the listener
 *     itself.
 *
 * Lifetime: `refs` counts the program's reference (weft_server_free, or the
 * creating worker's shutdown reap), each open listener handle, each live
 * acceptor and each accepted stream not yet closed. Increments are made by
 * holders of a reference (relaxed); the decrement that reaches zero frees
 * the record (acq_rel, so it sees every other holder's writes).
 */
#include "waitnote.h"
#include "alloc.h"
#include "compiler.h"
#include "io/stream_int.h"
#include "io/tls_int.h"
#include "list.h"
#include "record.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "task_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG_DEFAULT 100 /* asyncio's start_server default */

typedef struct weft__server_slot {
  weft_server_t *srv; /* the server */
  weft__worker_t *w;  /* the worker whose loop owns the listener */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;                   /* the listener */
  int fd;                /* TCP: the socket until adopted, else -1 */
  int listening;         /* the listener is open and accepting */
  int acceptor_live;     /* the acceptor task has not exited */
  weft_task_t *acceptor; /* the acceptor while it waits, else NULL */
  int kick;              /* set to wake the acceptor */
  weft__list_t ready;    /* accepted streams without a handler yet */
  weft__list_t conns;    /* streams with a handler, not yet closed */
  weft__list_t waiters;  /* wait_closed() on this slot */
  atomic_long accepted;  /* connections accepted (statistic) */
  atomic_long tls_failures; /* handshakes that failed (statistic) */
} slot_t;

struct weft_server {
  weft__io_obj_t obj;             /* home worker, io.objs link, reap */
  atomic_uint refs;               /* see "Lifetime" */
  atomic_int serving;             /* 1 until closed */
  weft_server_handler_fn handler; /* the program's handler */
  void *arg;                      /* its argument */
  weft_stream_opts_t sopts;       /* options of accepted streams */
  int backlog;
  int is_pipe;                  /* Unix-socket server */
  char *path;                   /* its path (owned), else NULL */
  ino_t path_ino;               /* the socket file we created */
  int port;                     /* bound port, -1 for Unix */
  struct sockaddr_storage addr; /* bound address */
  int addrlen;
  int closed;           /* home owner: close() finished */
  weft__list_t forever; /* home owner: serve_forever() waiters */
  unsigned nslots;
  slot_t slots[];
};

void weft_server_opts_init(weft_server_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->backlog = BACKLOG_DEFAULT;
  weft_stream_opts_init(&opts->stream);
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                  */

static void server_ref(weft_server_t *srv) {
  /* relaxed: the caller already holds a reference. */
  atomic_fetch_add_explicit(&srv->refs, 1, memory_order_relaxed);
}

static void server_unref(weft_server_t *srv) {
  /* acq_rel: the last holder sees every other holder's writes. */
  if (atomic_fetch_sub_explicit(&srv->refs, 1, memory_order_acq_rel) != 1)
    return;
  weft__free(srv->path);
  if (srv->sopts.tls.ctx)
    weft__tls_ctx_unref(srv->sopts.tls.ctx);
  weft__free(srv);
}

static int slot_idle(const slot_t *sl) {
  return !sl->listening && !sl->acceptor_live && weft__list_empty(&sl->conns) &&
         weft__list_empty(&sl->ready);
}

static void slot_check_idle(slot_t *sl) {
  if (slot_idle(sl))
    weft__io_wake_all(&sl->waiters);
}

/* ------------------------------------------------------------------------ */
/* Accepting                                                                 */

static void kick_acceptor(slot_t *sl) {
  sl->kick = 1;
  if (sl->acceptor)
    weft__task_wake(sl->acceptor);
}

static void conn_closed(weft_stream_t *s) {
  slot_t *sl = s->slot;
  weft__list_remove(&s->conn_link);
  slot_check_idle(sl);
  server_unref(sl->srv);
}

static void on_connection(uv_stream_t *listener, int status) {
  slot_t *sl = listener->data;
  weft_server_t *srv = sl->srv;
  if (status < 0)
    return; /* EMFILE and the like: libuv keeps listening */
  weft_stream_t *s = weft__stream_alloc(sl->w, srv->is_pipe, &srv->sopts);
  if (!s) {
    /* Without memory for the stream the connection is dropped, as libuv
     * drops connections past EMFILE. It must be taken off the listener:
     * libuv holds a connection the callback did not accept in the
     * listener's accepted_fd and stops polling it until uv_accept, and
     * there is no stream to accept it into, so the listener would never
     * accept again (the peer would wait forever). */
    if (listener->accepted_fd >= 0) {
      close(listener->accepted_fd);
      listener->accepted_fd = -1;
    }
    return;
  }
  if ((srv->sopts.tls.ctx &&
       weft__tls_attach(s, &srv->sopts.tls, NULL) != 0) ||
      uv_accept(listener, &s->u.s) != 0 ||
      weft__stream_start(s, &srv->sopts) != 0) {
    /* A failed attach (no memory) must still take the connection off the
     * listener, or it would stop accepting (see above). */
    if (listener->accepted_fd >= 0) {
      close(listener->accepted_fd);
      listener->accepted_fd = -1;
    }
    s->free_on_close = 1;
    weft__stream_close(s, 1);
    return;
  }
  server_ref(srv);
  s->slot = sl;
  s->on_closed = conn_closed;
  weft__list_push_back(&sl->ready, &s->conn_link);
  /* relaxed: a statistic. */
  atomic_fetch_add_explicit(&sl->accepted, 1, memory_order_relaxed);
  kick_acceptor(sl);
}

static void *conn_main(void *arg) {
  weft_stream_t *s = arg;
  weft_server_t *srv = s->slot->srv;
  weft_task_t *t = weft__task_current();
  /* Cancelled before it ran (the shutdown): the program's handler never
   * starts, as for any task (task.h); the stream is still released. */
  int rc = 0;
  if (s->tls) { /* asyncio calls the handler once the handshake is done */
    weft__io_enter(t, s->obj.home);
    rc = weft__tls_handshake(s, t);
    weft__io_leave(t);
  }
  if (rc == 0 && !weft__task_start_cancelled(t))
    srv->handler(s, srv->arg);
  weft__io_enter(t, s->obj.home);
  if (rc) {
    /* Counted for weft_server_tls_failures(); the handler never saw it. */
    atomic_fetch_add_explicit(&s->slot->tls_failures, 1,
                              memory_order_relaxed); /* a statistic */
    weft__stream_close(s, 1);
  }
  weft__stream_release(s);
  weft__io_leave(t);
  return NULL;
}

static void on_listener_close(uv_handle_t *h) {
  slot_t *sl = h->data;
  server_unref(sl->srv);
}

/* Stop accepting on this slot; on its worker. */
static void slot_close_listener(slot_t *sl) {
  if (!sl->listening)
    return;
  sl->listening = 0;
  uv_close(&sl->u.h, on_listener_close); /* closes the descriptor now */
  kick_acceptor(sl);
  slot_check_idle(sl);
}

static void *acceptor_main(void *arg) {
  slot_t *sl = arg;
  weft_task_t *t = weft__task_current();
  weft__list_t *n;
  for (;;) {
    while ((n = weft__list_pop_front(&sl->ready))) {
      weft_stream_t *s = weft__container_of(n, weft_stream_t, conn_link);
      weft__list_push_back(&sl->conns, &s->conn_link);
      /* Always starts: it must release the stream. */
      if (weft__spawn_always(NULL, conn_main, s, NULL) != 0) /* shutdown */
        weft__stream_release(s);
    }
    if (!sl->listening)
      break;
    sl->kick = 0;
    sl->acceptor = t;
    weft__wait_note(t, WEFT_WAIT_ACCEPT, sl);
    int rc = weft__io_wait_flag(t, &sl->kick, 0);
    sl->acceptor = NULL;
    if (rc) /* shutdown (nobody else cancels the acceptor) */
      slot_close_listener(sl);
  }
  sl->acceptor_live = 0;
  slot_check_idle(sl);
  server_unref(sl->srv);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Starting                                                                  */

/* errno of the call that just failed. Out of line: its callers suspend, and
 * glibc's const __errno_location() would let an inlined read reuse an
 * address computed before a suspension point, on another thread
 * (design.md section 2.6). */
static WEFT__NOIPA int sock_err(void) { return -errno; }

/* A bound, listening, non-blocking SO_REUSEPORT socket on addr. */
static int make_listener(struct sockaddr_storage *addr, int backlog, int *out) {
  int fam = addr->ss_family;
  int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sock_err();
  int one = 1;
  socklen_t len = fam == AF_INET6 ? sizeof(struct sockaddr_in6)
                                  : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      (fam == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
      bind(fd, (struct sockaddr *)addr, len) != 0 || listen(fd, backlog) != 0) {
    int rc = sock_err();
    close(fd);
    return rc;
  }
  *out = fd;
  return 0;
}

static weft_server_t *server_new(unsigned nslots, weft_server_handler_fn fn,
                                 void *arg, const weft_server_opts_t *opts) {
  weft_server_t *srv = weft__calloc(1, sizeof(*srv) + nslots * sizeof(slot_t));
  if (!srv)
    return NULL;
  atomic_init(&srv->refs, 1);
  atomic_init(&srv->serving, 1);
  srv->handler = fn;
  srv->arg = arg;
  if (opts) {
    srv->sopts = opts->stream;
    srv->backlog = opts->backlog > 0 ? opts->backlog : BACKLOG_DEFAULT;
  } else {
    weft_stream_opts_init(&srv->sopts);
    srv->backlog = BACKLOG_DEFAULT;
  }
  srv->sopts.tls.server_hostname = NULL; /* a server's streams verify no name */
  if (srv->sopts.tls.ctx)
    weft__tls_ctx_ref(srv->sopts.tls.ctx); /* until the server is freed */
  srv->port = -1;
  srv->nslots = nslots;
  weft__list_init(&srv->forever);
  weft__list_init(&srv->obj.link);
  for (unsigned i = 0; i < nslots; i++) {
    slot_t *sl = &srv->slots[i];
    sl->srv = srv;
    sl->fd = -1;
    weft__list_init(&sl->ready);
    weft__list_init(&sl->conns);
    weft__list_init(&sl->waiters);
    atomic_init(&sl->accepted, 0);
    atomic_init(&sl->tls_failures, 0);
  }
  return srv;
}

/* asyncio's cleanup_socket=True: remove the socket file we created. */
static void unlink_path(weft_server_t *srv) {
  struct stat st;
  if (srv->is_pipe && srv->path_ino && stat(srv->path, &st) == 0 &&
      st.st_ino == srv->path_ino)
    unlink(srv->path);
  srv->path_ino = 0;
}

static void server_reap(weft__io_obj_t *o) {
  weft_server_t *srv = weft__container_of(o, weft_server_t, obj);
  unlink_path(srv);
  server_unref(srv);
}

/* On the slot's worker: adopt the listener and start its acceptor. */
static int slot_open(weft_server_t *srv, slot_t *sl) {
  weft__worker_t *w = sl->w;
  int rc;
  if (srv->is_pipe) {
    rc = uv_pipe_init(&w->own.loop, &sl->u.pipe, 0);
    if (rc)
      return rc;
    sl->u.h.data = sl;
    rc = uv_pipe_bind(&sl->u.pipe, srv->path);
    if (rc == 0) {
      struct stat st;
      if (stat(srv->path, &st) == 0)
        srv->path_ino = st.st_ino;
    }
  } else {
    rc = uv_tcp_init(&w->own.loop, &sl->u.tcp);
    if (rc)
      return rc;
    sl->u.h.data = sl;
    rc = uv_tcp_open(&sl->u.tcp, sl->fd);
    if (rc == 0)
      sl->fd = -1; /* the handle owns it now */
  }
  if (rc == 0)
    rc = uv_listen(&sl->u.s, srv->backlog, on_connection);
  server_ref(srv); /* the handle, released by on_listener_close */
  sl->listening = 1;
  if (rc) {
    slot_close_listener(sl);
    return rc;
  }
  weft_spawn_opts_t so;
  weft_spawn_opts_init(&so);
  so.pin = (int)w->own.index;
  so.name = "weft-acceptor";
  server_ref(srv); /* the acceptor, released when it exits */
  sl->acceptor_live = 1;
  rc = weft__spawn_always(&so, acceptor_main, sl, NULL); /* it cleans up */
  if (rc) {
    sl->acceptor_live = 0;
    server_unref(srv);
    slot_close_listener(sl);
  }
  return rc;
}

/* Close every listener (visiting their workers), then mark the server
 * closed on home. Not cancellable. */
static void server_close_all(weft_server_t *srv, weft_task_t *t) {
  /* relaxed: is_serving() is a hint. */
  atomic_store_explicit(&srv->serving, 0, memory_order_relaxed);
  for (unsigned i = 0; i < srv->nslots; i++) {
    slot_t *sl = &srv->slots[i];
    if (!sl->w)
      continue; /* never opened (start failed before it) */
    weft__io_hop(t, sl->w);
    slot_close_listener(sl);
  }
  weft__io_hop(t, srv->obj.home);
  srv->closed = 1;
  unlink_path(srv);
  weft__io_wake_all(&srv->forever);
}

/* Common tail of both starts: open every slot on its worker. */
static int server_open(weft_server_t *srv, weft_task_t *t,
                       weft_server_t **out) {
  int rc = 0;
  for (unsigned i = 0; i < srv->nslots && rc == 0; i++) {
    weft__io_hop(t, srv->slots[i].w);
    rc = slot_open(srv, &srv->slots[i]);
  }
  if (rc) {
    server_close_all(srv, t);
    weft__io_unregister(&srv->obj);
    for (unsigned i = 0; i < srv->nslots; i++)
      if (srv->slots[i].fd >= 0)
        close(srv->slots[i].fd);
    weft__io_leave(t);
    server_unref(srv);
    return rc;
  }
  weft__io_leave(t);
  *out = srv;
  return 0;
}

int weft_start_server(weft_server_handler_fn handler, void *arg,
                      const char *host, int port,
                      const weft_server_opts_t *opts, weft_server_t **out) {
  if (out)
    *out = NULL;
  if (!handler || !out || port < 0 || port > 65535)
    return WEFT_EINVAL;
  if (opts && opts->stream.tls.ctx &&
      !weft__tls_ctx_is_server(opts->stream.tls.ctx))
    return WEFT_EINVAL; /* a client context on a server */
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft__worker_t *home = weft__worker_current();
  weft_runtime_t *rt = home->own.rt;
  unsigned nslots = opts && opts->workers ? opts->workers : rt->nworkers;
  if (nslots > rt->nworkers)
    return WEFT_EINVAL;
  weft__io_ignore_sigpipe();
  weft__io_enter(t, home);
  struct sockaddr_storage *addrs;
  size_t n;
  int rc = weft__io_resolve(host, port, 1, &addrs, &n);
  if (rc) {
    weft__io_leave(t);
    return rc;
  }
  struct sockaddr_storage addr = addrs[0];
  weft__free(addrs);
  weft_server_t *srv = server_new(nslots, handler, arg, opts);
  if (!srv) {
    weft__io_leave(t);
    return WEFT_ENOMEM;
  }
  /* Bind every socket here (port 0: the first picks, the rest follow), so
   * that a bind error is reported before anything runs. */
  for (unsigned i = 0; i < nslots && rc == 0; i++) {
    srv->slots[i].w = &rt->workers[i];
    rc = make_listener(&addr, srv->backlog, &srv->slots[i].fd);
    if (rc == 0 && i == 0) {
      socklen_t len = sizeof(srv->addr);
      if (getsockname(srv->slots[0].fd, (struct sockaddr *)&srv->addr, &len) !=
          0)
        rc = sock_err();
      srv->addrlen = (int)len;
      srv->port = ntohs(addr.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&srv->addr)->sin6_port
                            : ((struct sockaddr_in *)&srv->addr)->sin_port);
      if (addr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)srv->port);
      else
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)srv->port);
    }
  }
  if (rc) {
    for (unsigned i = 0; i < nslots; i++)
      if (srv->slots[i].fd >= 0)
        close(srv->slots[i].fd);
    server_unref(srv);
    weft__io_leave(t);
    return rc;
  }
  weft__io_register(&srv->obj, home, server_reap);
  return server_open(srv, t, out);
}

int weft_start_unix_server(weft_server_handler_fn handler, void *arg,
                           const char *path, const weft_server_opts_t *opts,
                           weft_server_t **out) {
  if (out)
    *out = NULL;
  if (!handler || !out || !path || !*path)
    return WEFT_EINVAL;
  if (opts && opts->stream.tls.ctx &&
      !weft__tls_ctx_is_server(opts->stream.tls.ctx))
    return WEFT_EINVAL; /* a client context on a server */
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return WEFT_ENAMETOOLONG;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft__worker_t *home = weft__worker_current();
  weft__io_ignore_sigpipe();
  weft__io_enter(t, home);
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      weft__io_leave(t);
      return WEFT_EADDRINUSE;
    }
    unlink(path); /* a stale socket (asyncio does the same) */
  }
  weft_server_t *srv = server_new(1, handler, arg, opts);
  char *p = srv ? weft__strdup(path) : NULL;
  if (!p) {
    weft__free(srv);
    weft__io_leave(t);
    return WEFT_ENOMEM;
  }
  srv->path = p;
  srv->is_pipe = 1;
  srv->slots[0].w = home;
  struct sockaddr_un *un = (struct sockaddr_un *)&srv->addr;
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, strlen(path) + 1);
  srv->addrlen = (int)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
  weft__io_register(&srv->obj, home, server_reap);
  return server_open(srv, t, out);
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */

static int begin(weft_server_t *srv, weft_task_t **tp) {
  if (!srv)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &srv->obj);
  if (rc)
    return rc;
  *tp = t;
  return 0;
}

int weft_server_close(weft_server_t *srv) {
  weft_task_t *t;
  int rc = begin(srv, &t);
  if (rc)
    return rc;
  server_close_all(srv, t);
  weft__io_leave(t);
  return 0;
}

int weft_server_serve_forever(weft_server_t *srv) {
  weft_task_t *t;
  int rc = begin(srv, &t);
  if (rc)
    return rc;
  weft__io_enter(t, srv->obj.home);
  while (!srv->closed) {
    weft__wait_note(t, WEFT_WAIT_ACCEPT, srv);
    rc = weft__io_wait_in(&srv->forever, t);
    if (rc) {
      server_close_all(srv, t); /* asyncio closes the server */
      break;
    }
  }
  weft__io_leave(t);
  return rc;
}

static int clients_op(weft_server_t *srv, int abort) {
  weft_task_t *t;
  int rc = begin(srv, &t);
  if (rc)
    return rc;
  for (unsigned i = 0; i < srv->nslots; i++) {
    slot_t *sl = &srv->slots[i];
    weft__io_hop(t, sl->w);
    /* Closing only requests uv_close: the lists change in close
     * callbacks, never during this walk. */
    for (weft__list_t *n = sl->conns.next; n != &sl->conns; n = n->next)
      weft__stream_close(weft__container_of(n, weft_stream_t, conn_link),
                         abort);
    for (weft__list_t *n = sl->ready.next; n != &sl->ready; n = n->next)
      weft__stream_close(weft__container_of(n, weft_stream_t, conn_link),
                         abort);
  }
  weft__io_leave(t);
  return 0;
}

int weft_server_close_clients(weft_server_t *srv) { return clients_op(srv, 0); }

int weft_server_abort_clients(weft_server_t *srv) { return clients_op(srv, 1); }

int weft_server_wait_closed(weft_server_t *srv) {
  weft_task_t *t;
  int rc = begin(srv, &t);
  if (rc)
    return rc;
  for (unsigned i = 0; i < srv->nslots && rc == 0; i++) {
    slot_t *sl = &srv->slots[i];
    weft__io_hop(t, sl->w);
    while (!slot_idle(sl)) {
      weft__wait_note(t, WEFT_WAIT_IO, srv);
      rc = weft__io_wait_in(&sl->waiters, t);
      if (rc)
        break;
    }
  }
  weft__io_leave(t);
  return rc;
}

int weft_server_is_serving(const weft_server_t *srv) {
  if (!srv)
    return WEFT_EINVAL;
  /* relaxed: a hint about a state that only moves forward. */
  return atomic_load_explicit(&srv->serving, memory_order_relaxed);
}

int weft_server_port(const weft_server_t *srv) {
  return srv ? srv->port : WEFT_EINVAL;
}

int weft_server_sockname(const weft_server_t *srv,
                         struct sockaddr_storage *addr, int *len) {
  if (!srv || !addr)
    return WEFT_EINVAL;
  *addr = srv->addr;
  if (len)
    *len = srv->addrlen;
  return 0;
}

long weft_server_tls_failures(const weft_server_t *srv) {
  if (!srv)
    return WEFT_EINVAL;
  long n = 0;
  for (unsigned i = 0; i < srv->nslots; i++)
    /* relaxed: a statistic. */
    n += atomic_load_explicit(&srv->slots[i].tls_failures,
                              memory_order_relaxed);
  return n;
}

long weft_server_accepted(const weft_server_t *srv, unsigned worker) {
  if (!srv)
    return WEFT_EINVAL;
  for (unsigned i = 0; i < srv->nslots; i++)
    if (srv->slots[i].w && srv->slots[i].w->own.index == worker)
      /* relaxed: a statistic. */
      return atomic_load_explicit(&srv->slots[i].accepted,
                                  memory_order_relaxed);
  return WEFT_EINVAL;
}

int weft_server_free(weft_server_t *srv) {
  weft_task_t *t;
  if (!srv)
    return 0;
  int rc = begin(srv, &t);
  if (rc)
    return rc;
  server_close_all(srv, t); /* ends on home */
  weft__io_unregister(&srv->obj);
  weft__io_leave(t);
  server_unref(srv);
  return 0;
}
