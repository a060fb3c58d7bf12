/*
 * Clients: asyncio.open_connection and open_unix_connection.
 *
 * Threading: the calling task enters the worker it runs on, which becomes
 * the stream's home (io/home.c protocol); the resolver request, the socket
 * and its connect request all live on that loop. Each address is tried
 * with a fresh stream. A connect that fails or is cancelled abandons its
 * stream: the handle is closed, the pending connect request completes with
 * UV_ECANCELED (the stream's `connect_task` is already NULL, so nobody is
 * woken), and the close callback frees the record. The caller never waits
 * for that, so a cancellation returns at once.
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/stream_int.h"
#include "io/tls_int.h"
#include "record.h"
#include "sched/worker.h"

#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static void on_connect(uv_connect_t *req, int status) {
  weft_stream_t *s = req->data;
  s->connect_status = status;
  s->connect_done = 1;
  if (s->connect_task)
    weft__task_wake(s->connect_task);
}

static void abandon(weft_stream_t *s) {
  s->connect_task = NULL;
  s->free_on_close = 1;
  weft__stream_close(s, 1);
}

/* Connect one stream on home (the calling task's current worker). */
static int connect_one(weft_task_t *t, weft__worker_t *home,
                       const struct sockaddr *sa, const char *path,
                       const char *host, const weft_stream_opts_t *opts,
                       int *connected, weft_stream_t **out) {
  weft_stream_t *s = weft__stream_alloc(home, path != NULL, opts);
  if (!s)
    return WEFT_ENOMEM;
  s->connect_req.data = s;
  s->connect_task = t;
  int rc = 0;
  if (path)
    uv_pipe_connect(&s->connect_req, &s->u.pipe, path, on_connect);
  else
    rc = uv_tcp_connect(&s->connect_req, &s->u.tcp, sa, on_connect);
  if (rc == 0) {
    weft__wait_note(t, WEFT_WAIT_CONNECT, s);
    rc = weft__io_wait_flag(t, &s->connect_done, 0);
  }
  s->connect_task = NULL;
  if (rc == 0)
    rc = s->connect_status;
  if (rc == 0)
    rc = weft__stream_start(s, opts);
  if (rc == 0 && opts && opts->tls.ctx) {
    *connected = 1; /* a TLS failure is not retried on another address */
    rc = weft__tls_attach(s, &opts->tls, host);
    if (rc == 0)
      rc = weft__tls_handshake(s, t);
  }
  if (rc) {
    abandon(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* Connect from the calling task on its worker (its home for the stream):
 * to each address host resolves to in turn (asyncio reports the last
 * failure), or to the Unix socket at path when host is NULL. */
static int open_connection(const char *host, int port, const char *path,
                           const weft_stream_opts_t *opts,
                           weft_stream_t **out) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft__io_ignore_sigpipe();
  weft__worker_t *home = weft__worker_current();
  weft__io_enter(t, home);
  int rc;
  if (host) {
    struct sockaddr_storage *addrs;
    size_t n;
    rc = weft__io_resolve(host, port, 0, &addrs, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
      int connected = 0;
      rc = connect_one(t, home, (const struct sockaddr *)&addrs[i], NULL, host,
                       opts, &connected, out);
      if (rc == 0 || rc == WEFT_ECANCELED || connected || i + 1 == n)
        break;
      rc = 0;
    }
    weft__free(addrs);
  } else {
    int connected = 0;
    rc = connect_one(t, home, NULL, path, NULL, opts, &connected, out);
  }
  weft__io_leave(t);
  return rc;
}

int weft_open_connection(const char *host, int port,
                         const weft_stream_opts_t *opts, weft_stream_t **out) {
  if (out)
    *out = NULL;
  if (!host || !out || port < 0 || port > 65535)
    return WEFT_EINVAL;
  if (opts && opts->tls.ctx && weft__tls_ctx_is_server(opts->tls.ctx))
    return WEFT_EINVAL; /* a server context on a client */
  return open_connection(host, port, NULL, opts, out);
}

int weft_open_unix_connection(const char *path, const weft_stream_opts_t *opts,
                              weft_stream_t **out) {
  if (out)
    *out = NULL;
  if (!path || !out || !*path)
    return WEFT_EINVAL;
  if (opts && opts->tls.ctx &&
      (weft__tls_ctx_is_server(opts->tls.ctx) || !opts->tls.server_hostname))
    return WEFT_EINVAL; /* a server context, or no name to verify */
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return WEFT_ENAMETOOLONG;
  return open_connection(NULL, 0, path, opts, out);
}
