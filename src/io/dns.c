/*
 * Name resolution for streams and servers: address literals are converted
 * on the spot, names go through uv_getaddrinfo (libuv's thread pool) on the
 * calling task's worker.
 *
 * Threading: the request is issued and its callback runs on the worker the
 * caller entered (io/home.c protocol), so the request record is owner-only.
 * It is heap-allocated because a cancelled caller leaves before the thread
 * pool finishes: it clears `task` and tries uv_cancel; the callback, which
 * libuv always runs (with UV_EAI_CANCELED if the cancel won), then frees the
 * record and any result. worker_close runs the loop until it did, so
 * nothing leaks at shutdown.
 *
 * Reverse lookups (weft_getnameinfo) follow the same protocol with
 * uv_getnameinfo: the record is the request, the callback frees it when
 * the caller left, and the caller copies the names out of it otherwise.
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/io.h"
#include "record.h"
#include "sched/worker.h"
#include "wait_int.h"

#include <netdb.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

typedef struct gai_op {
  uv_getaddrinfo_t req;
  weft_task_t *task;    /* the waiting task, NULL once it left */
  int done;             /* the callback ran */
  int status;           /* its status */
  struct addrinfo *res; /* its result */
} gai_op_t;

static void on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  gai_op_t *op = req->data;
  if (!op->task) { /* abandoned by a cancelled caller */
    if (res)
      uv_freeaddrinfo(res);
    weft__free(op);
    return;
  }
  op->status = status;
  op->res = res;
  op->done = 1;
  weft__task_wake(op->task);
}

static int one_addr(const struct sockaddr_storage *ss,
                    struct sockaddr_storage **addrs, size_t *n) {
  *addrs = weft__malloc(sizeof(**addrs));
  if (!*addrs)
    return WEFT_ENOMEM;
  **addrs = *ss;
  *n = 1;
  return 0;
}

static int copy_list(struct addrinfo *res, int port,
                     struct sockaddr_storage **addrs, size_t *n) {
  size_t count = 0;
  for (struct addrinfo *a = res; a; a = a->ai_next)
    if (a->ai_family == AF_INET || a->ai_family == AF_INET6)
      count++;
  if (count == 0)
    return WEFT_EAI_NONAME;
  struct sockaddr_storage *v = weft__calloc(count, sizeof(*v));
  if (!v)
    return WEFT_ENOMEM;
  size_t i = 0;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      memcpy(&v[i], a->ai_addr, sizeof(struct sockaddr_in));
      ((struct sockaddr_in *)&v[i])->sin_port = htons((uint16_t)port);
      i++;
    } else if (a->ai_family == AF_INET6) {
      memcpy(&v[i], a->ai_addr, sizeof(struct sockaddr_in6));
      ((struct sockaddr_in6 *)&v[i])->sin6_port = htons((uint16_t)port);
      i++;
    }
  }
  *addrs = v;
  *n = count;
  return 0;
}

int weft__io_resolve(const char *host, int port, int passive,
                     struct sockaddr_storage **addrs, size_t *n) {
  struct sockaddr_storage ss;
  *addrs = NULL;
  *n = 0;
  if (!host) {
    if (!passive)
      return WEFT_EINVAL;
    host = "0.0.0.0";
  }
  memset(&ss, 0, sizeof(ss));
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0)
    return one_addr(&ss, addrs, n);

  weft_task_t *t = weft__task_current();
  weft__worker_t *w = weft__worker_current();
  gai_op_t *op = weft__calloc(1, sizeof(*op));
  if (!op)
    return WEFT_ENOMEM;
  op->task = t;
  op->req.data = op;
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  int rc = uv_getaddrinfo(&w->own.loop, &op->req, on_gai, host, NULL, &hints);
  if (rc) {
    weft__free(op);
    return rc;
  }
  weft__wait_note(t, WEFT_WAIT_DNS, op);
  rc = weft__io_wait_flag(t, &op->done, 0);
  if (rc) {
    op->task = NULL; /* the callback frees op */
    uv_cancel((uv_req_t *)&op->req);
    return rc;
  }
  rc = op->status;
  if (rc == 0)
    rc = copy_list(op->res, port, addrs, n);
  if (op->res)
    uv_freeaddrinfo(op->res);
  weft__free(op);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Reverse lookups (weft/stream.h)                                           */

typedef struct gni_op {
  uv_getnameinfo_t req; /* the request; its host and service fields hold
                           the result */
  weft_task_t *task;    /* the waiting task, NULL once it left */
  int done;             /* the callback ran */
  int status;           /* its status */
} gni_op_t;

static void on_gni(uv_getnameinfo_t *req, int status, const char *host,
                   const char *serv) {
  gni_op_t *op = req->data;
  (void)host; /* the same as req->host and req->service */
  (void)serv;
  if (!op->task) { /* abandoned by a cancelled caller */
    weft__free(op);
    return;
  }
  op->status = status;
  op->done = 1;
  weft__task_wake(op->task);
}

/* The flags getnameinfo(3) documents; others are refused up front. */
#define GNI_FLAGS                                                              \
  (NI_NUMERICHOST | NI_NUMERICSERV | NI_NOFQDN | NI_NAMEREQD | NI_DGRAM)

static int copy_name(const char *src, char *dst, size_t cap) {
  size_t n = strlen(src);
  if (n >= cap)
    return WEFT_ENOSPC;
  memcpy(dst, src, n + 1);
  return 0;
}

int weft_getnameinfo(const struct sockaddr *addr, int flags, char *host,
                     size_t hostcap, char *serv, size_t servcap) {
  if (host && hostcap)
    host[0] = '\0';
  if (serv && servcap)
    serv[0] = '\0';
  if (!addr || (flags & ~GNI_FLAGS) || (!host && !serv) ||
      (host && hostcap == 0) || (serv && servcap == 0))
    return WEFT_EINVAL;
  if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
    return WEFT_EAFNOSUPPORT;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  weft__worker_t *w = weft__worker_current();
  gni_op_t *op = weft__calloc(1, sizeof(*op));
  if (!op)
    return WEFT_ENOMEM;
  op->task = t;
  op->req.data = op;
  weft__io_enter(t, w);
  int rc = uv_getnameinfo(&w->own.loop, &op->req, on_gni, addr, flags);
  if (rc) {
    weft__free(op);
  } else if ((weft__wait_note(t, WEFT_WAIT_DNS, op),
              rc = weft__io_wait_flag(t, &op->done, 0)) != 0) {
    op->task = NULL; /* the callback frees op */
    uv_cancel((uv_req_t *)&op->req);
  } else {
    rc = op->status;
    if (rc == 0 && host)
      rc = copy_name(op->req.host, host, hostcap);
    if (rc == 0 && serv)
      rc = copy_name(op->req.service, serv, servcap);
    if (rc && host)
      host[0] = '\0';
    weft__free(op);
  }
  weft__io_leave(t);
  return rc;
}
