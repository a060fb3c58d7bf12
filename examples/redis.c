/*
 * redis.c: the Redis client of redis.h.
 *
 * Cross-thread protocol. A client has one conn_t per worker. Everything in
 * a conn_t below `mu` (state, last_err, closing, the output buffer, the
 * FIFO of waiters and each waiter's state, reply and err) is read and
 * written only under `mu`, a pthread mutex that is never held across a
 * suspension point. The tasks involved:
 *
 *  - callers, on any worker: under mu, append the formatted command to
 *    `out` and their waiter to the FIFO (one critical section, so the FIFO
 *    is in the order of the bytes), then set `wake` and wait on their
 *    waiter's event. When they wake (reply, failure or cancellation) they
 *    look at the waiter's state under mu: DONE means the reply or error is
 *    theirs and nobody else touches the waiter any more (whoever set DONE
 *    also set the event while holding mu, so that set has returned); still
 *    QUEUED means they were cancelled first: they mark it ABANDONED and
 *    leave it to the manager, which frees it when its reply comes or the
 *    connection fails.
 *  - the manager, pinned to the conn's worker: connects, reads and parses
 *    replies and pops the FIFO's head for each one, under mu; on a broken
 *    connection it fails every waiter in the FIFO (under mu), drops `out`,
 *    and reconnects with backoff.
 *  - the writer, one per live connection, pinned beside its manager: waits
 *    on `wake`, clears it, then under mu swaps `out` with its own buffer,
 *    and writes that buffer with one weft_stream_write(). The manager owns
 *    the stream: it cancels and awaits the writer before freeing it.
 *
 * `wake` is cleared by the writer before it takes the buffer, and callers
 * set it after appending, so an append is never left unseen: either the
 * writer's swap takes it, or the caller's set comes after the clear.
 */
#define _POSIX_C_SOURCE 200809L

#include "redis.h"

#include <hiredis/read.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W_QUEUED, W_DONE, W_ABANDONED };

typedef struct waiter {
  struct waiter *next;
  weft_event_t done;  /* set once state is DONE */
  redisReply *reply;  /* the reply, once DONE (may be NULL on failure) */
  int err;            /* 0, REDIS_ESERVER... once DONE */
  int state;          /* W_* */
  int internal;       /* sent by the manager (SELECT): no caller waits */
} waiter_t;

enum { C_CONNECTING, C_UP, C_DOWN, C_CLOSED };

typedef struct conn {
  redis_client_t *client;
  unsigned index;
  weft_task_t *manager;
  weft_event_t wake; /* set by callers when `out` has data */
  unsigned seed;     /* jitter; the manager's only */
  pthread_mutex_t mu;
  /* under mu */
  int state;
  int last_err;  /* what callers get while C_DOWN */
  int closing;
  char *out;
  size_t outlen, outcap;
  waiter_t *head, *tail;
} conn_t;

struct redis_client {
  char host[256];
  int port;
  redis_opts_t opts;
  atomic_int connected; /* statistic only: relaxed */
  unsigned nconn;       /* connections with a manager task */
  unsigned nalloc;      /* conn_t initialised */
  conn_t conn[];
};

/* ---- URLs ------------------------------------------------------------- */

int redis_url_parse(const char *url, redis_url_t *out) {
  if (!url || !out)
    return WEFT_EINVAL;
  memset(out, 0, sizeof *out);
  const char *p = url;
  if (strncmp(p, "redis://", 8) == 0)
    p += 8;
  else if (strstr(p, "://"))
    return WEFT_EINVAL;
  const char *end = p + strcspn(p, "/");
  if (memchr(p, '@', (size_t)(end - p)))
    return WEFT_EINVAL; /* user:password@ is not supported */
  const char *hs = p, *he, *colon = NULL;
  if (*p == '[') {
    hs = p + 1;
    he = memchr(hs, ']', (size_t)(end - hs));
    if (!he)
      return WEFT_EINVAL;
    if (he + 1 < end) {
      if (he[1] != ':')
        return WEFT_EINVAL;
      colon = he + 1;
    }
  } else {
    colon = memchr(p, ':', (size_t)(end - p));
    he = colon ? colon : end;
  }
  size_t hl = (size_t)(he - hs);
  if (hl >= sizeof out->host)
    return WEFT_ENAMETOOLONG;
  if (hl == 0)
    strcpy(out->host, "127.0.0.1");
  else
    memcpy(out->host, hs, hl);
  out->port = 6379;
  if (colon) {
    const char *ps = colon + 1;
    if (ps == end)
      return WEFT_EINVAL;
    long v = 0;
    for (const char *q = ps; q < end; q++) {
      if (*q < '0' || *q > '9')
        return WEFT_EINVAL;
      v = v * 10 + (*q - '0');
      if (v > 65535)
        return WEFT_EINVAL;
    }
    if (v == 0)
      return WEFT_EINVAL;
    out->port = (int)v;
  }
  if (*end == '/') {
    size_t pl = strlen(end + 1);
    if (pl >= sizeof out->path)
      return WEFT_ENAMETOOLONG;
    memcpy(out->path, end + 1, pl);
  }
  return 0;
}

/* ---- errors ----------------------------------------------------------- */

const char *redis_strerror(int err) {
  switch (err) {
  case REDIS_ESERVER:
    return "Redis server replied with an error";
  case REDIS_EPROTO:
    return "Redis protocol error";
  case REDIS_ENOSCRIPT:
    return "Redis script not in the server's cache";
  default:
    return weft_strerror(err);
  }
}

void redis_reply_free(redisReply *r) {
  if (r)
    freeReplyObject(r);
}

/* ---- waiters ---------------------------------------------------------- */

/* Under c->mu: finish w with err (reply NULL), or free it if nobody waits.
 * Freed waiters are chained into *dead to be freed after unlocking. */
static void waiter_finish(waiter_t *w, redisReply *reply, int err,
                          waiter_t **dead) {
  if (w->state == W_ABANDONED || w->internal) {
    redis_reply_free(reply);
    w->next = *dead;
    *dead = w;
    return;
  }
  w->reply = reply;
  w->err = err;
  w->state = W_DONE;
  weft_event_set(&w->done);
}

static void waiters_free(waiter_t *dead) {
  while (dead) {
    waiter_t *n = dead->next;
    weft_event_destroy(&dead->done);
    free(dead);
    dead = n;
  }
}

/* Under c->mu: fail every waiter of the FIFO with err and drop `out`. */
static void conn_fail_all(conn_t *c, int err, waiter_t **dead) {
  waiter_t *w = c->head;
  c->head = c->tail = NULL;
  while (w) {
    waiter_t *n = w->next;
    waiter_finish(w, NULL, err, dead);
    w = n;
  }
  c->outlen = 0;
}

/* Under c->mu: append n bytes to out. */
static int out_append(conn_t *c, const char *p, size_t n) {
  if (c->outlen + n > c->outcap) {
    size_t cap = c->outcap ? c->outcap : 4096;
    while (cap < c->outlen + n)
      cap *= 2;
    char *o = realloc(c->out, cap);
    if (!o)
      return WEFT_ENOMEM;
    c->out = o;
    c->outcap = cap;
  }
  memcpy(c->out + c->outlen, p, n);
  c->outlen += n;
  return 0;
}

/* ---- the writer ------------------------------------------------------- */

typedef struct writer_arg {
  conn_t *c;
  weft_stream_t *s;
} writer_arg_t;

static void *writer_main(void *arg) {
  writer_arg_t *wa = arg;
  conn_t *c = wa->c;
  char *buf = NULL;
  size_t cap = 0;
  for (;;) {
    if (weft_event_wait(&c->wake) != 0)
      break; /* cancelled by the manager */
    weft_event_clear(&c->wake);
    pthread_mutex_lock(&c->mu);
    char *o = c->out;
    size_t n = c->outlen, ocap = c->outcap;
    c->out = buf;
    c->outcap = cap;
    c->outlen = 0;
    pthread_mutex_unlock(&c->mu);
    buf = o;
    cap = ocap;
    if (n == 0)
      continue;
    if (weft_stream_write(wa->s, buf, n) != 0 ||
        weft_stream_drain(wa->s) == WEFT_ECANCELED) {
      weft_stream_abort(wa->s); /* the manager's read sees it */
      break;
    }
  }
  free(buf);
  return NULL;
}

/* ---- the manager ------------------------------------------------------ */

/* Read and dispatch replies until the connection fails; returns why. */
static int conn_read_loop(conn_t *c, weft_stream_t *s) {
  redisReader *r = redisReaderCreate();
  if (!r)
    return WEFT_ENOMEM;
  char buf[16384];
  int rc;
  for (;;) {
    int n = weft_stream_read(s, buf, sizeof buf);
    if (n <= 0) {
      rc = n == 0 ? WEFT_ECONNRESET : n;
      break;
    }
    if (redisReaderFeed(r, buf, (size_t)n) != REDIS_OK) {
      rc = REDIS_EPROTO;
      break;
    }
    rc = 0;
    for (;;) {
      void *rep = NULL;
      if (redisReaderGetReply(r, &rep) != REDIS_OK) {
        rc = REDIS_EPROTO;
        break;
      }
      if (!rep)
        break;
      redisReply *reply = rep;
      waiter_t *dead = NULL;
      pthread_mutex_lock(&c->mu);
      waiter_t *w = c->head;
      if (w) {
        c->head = w->next;
        if (!c->head)
          c->tail = NULL;
        int err = 0;
        if (reply->type == REDIS_REPLY_ERROR)
          err = strncmp(reply->str, "NOSCRIPT", 8) == 0 ? REDIS_ENOSCRIPT
                                                        : REDIS_ESERVER;
        if (w->internal && err)
          rc = err; /* SELECT failed: reset, the on_state hook says why */
        waiter_finish(w, reply, err, &dead);
      }
      pthread_mutex_unlock(&c->mu);
      waiters_free(dead);
      if (!w) {
        redis_reply_free(reply);
        rc = REDIS_EPROTO; /* a reply nobody asked for */
      }
      if (rc)
        break;
    }
    if (rc)
      break;
  }
  redisReaderFree(r);
  return rc;
}

static int conn_closing(conn_t *c) {
  pthread_mutex_lock(&c->mu);
  int v = c->closing;
  pthread_mutex_unlock(&c->mu);
  return v;
}

/* Set the state to DOWN (or CLOSED) with err for new callers, and fail
 * what is queued with fail_err. */
static void conn_down(conn_t *c, int err, int fail_err) {
  waiter_t *dead = NULL;
  pthread_mutex_lock(&c->mu);
  c->state = c->closing ? C_CLOSED : C_DOWN;
  c->last_err = c->closing ? WEFT_ECANCELED : err;
  conn_fail_all(c, c->closing ? WEFT_ECANCELED : fail_err, &dead);
  pthread_mutex_unlock(&c->mu);
  waiters_free(dead);
}

static unsigned jitter(conn_t *c, unsigned ms) {
  /* +-25% so that the processes of a crawl do not reconnect in step */
  c->seed = c->seed * 1103515245u + 12345u;
  unsigned span = ms / 2 + 1;
  return ms - ms / 4 + (c->seed >> 8) % span;
}

static void *manager_main(void *arg) {
  conn_t *c = arg;
  redis_client_t *cl = c->client;
  unsigned backoff = cl->opts.backoff_ms;
  int reported_down = 0;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    int closing = c->closing;
    if (!closing)
      c->state = C_CONNECTING;
    pthread_mutex_unlock(&c->mu);
    if (closing)
      break;
    weft_stream_t *s = NULL;
    weft_timeout_t scope;
    int rc = weft_timeout_enter(&scope, cl->opts.connect_timeout_ms);
    if (rc == 0)
      rc = weft_timeout_exit(&scope,
                             weft_open_connection(cl->host, cl->port, NULL, &s));
    if (rc == 0) {
      waiter_t *sel = NULL;
      if (cl->opts.db) {
        char db[16];
        int dl = snprintf(db, sizeof db, "%d", cl->opts.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, (size_t)dl};
        char *cmd = NULL;
        int len = redisFormatCommandArgv(&cmd, 2, argv, lens);
        sel = calloc(1, sizeof *sel);
        if (len < 0 || !sel) {
          free(sel);
          free(cmd);
          rc = WEFT_ENOMEM;
        } else {
          weft_event_init(&sel->done);
          sel->internal = 1;
          pthread_mutex_lock(&c->mu);
          /* SELECT goes first: prepend it to what callers queued */
          size_t old = c->outlen;
          if (out_append(c, cmd, (size_t)len) == 0) {
            memmove(c->out + len, c->out, old);
            memcpy(c->out, cmd, (size_t)len);
            sel->next = c->head;
            c->head = sel;
            if (!c->tail)
              c->tail = sel;
          } else {
            rc = WEFT_ENOMEM;
          }
          pthread_mutex_unlock(&c->mu);
          free(cmd);
          if (rc) {
            weft_event_destroy(&sel->done);
            free(sel);
          }
        }
      }
    }
    if (rc == 0) {
      pthread_mutex_lock(&c->mu);
      c->state = C_UP;
      pthread_mutex_unlock(&c->mu);
      /* relaxed: a statistic */
      atomic_fetch_add_explicit(&cl->connected, 1, memory_order_relaxed);
      if (reported_down && cl->opts.on_state)
        cl->opts.on_state(1, 0, cl->opts.on_state_arg);
      reported_down = 0;
      backoff = cl->opts.backoff_ms;
      weft_event_set(&c->wake); /* send what was queued while connecting */
      writer_arg_t wa = {c, s};
      weft_spawn_opts_t so;
      weft_spawn_opts_init(&so);
      so.name = "redis-writer";
      so.pin = (int)c->index;
      weft_task_t *wt = NULL;
      rc = weft_spawn_ex(writer_main, &wa, &so, &wt);
      if (rc == 0)
        rc = conn_read_loop(c, s);
      conn_down(c, WEFT_ENOTCONN, WEFT_ECONNRESET);
      atomic_fetch_sub_explicit(&cl->connected, 1, memory_order_relaxed);
      weft_stream_abort(s);
      if (wt) {
        weft_task_cancel(wt);
        weft_task_await(wt, NULL); /* waits for it even if cancelled */
        weft_task_unref(wt);
      }
      weft_stream_free(s);
      if (conn_closing(c))
        break;
      if (!reported_down && cl->opts.on_state)
        cl->opts.on_state(0, rc, cl->opts.on_state_arg);
      reported_down = 1;
      continue; /* reconnect at once after a break; back off on failures */
    }
    if (s)
      weft_stream_free(s);
    conn_down(c, rc, rc);
    if (conn_closing(c))
      break;
    if (!reported_down && cl->opts.on_state)
      cl->opts.on_state(0, rc, cl->opts.on_state_arg);
    reported_down = 1;
    if (weft_sleep(jitter(c, backoff)) == WEFT_ECANCELED && conn_closing(c))
      break;
    backoff = backoff > cl->opts.backoff_max_ms / 2 ? cl->opts.backoff_max_ms
                                                     : backoff * 2;
  }
  conn_down(c, WEFT_ECANCELED, WEFT_ECANCELED);
  return NULL;
}

/* ---- the client ------------------------------------------------------- */

void redis_opts_init(redis_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof *opts);
  opts->backoff_ms = 50;
  opts->backoff_max_ms = 2000;
  opts->connect_timeout_ms = 5000;
}

int redis_client_new(const char *host, int port, const redis_opts_t *opts,
                     redis_client_t **out) {
  if (!host || !out || port <= 0 || port > 65535 || (opts && opts->db < 0))
    return WEFT_EINVAL;
  *out = NULL;
  int nw = weft_worker_count();
  if (nw < 0)
    return nw;
  if (strlen(host) >= sizeof ((redis_client_t *)0)->host)
    return WEFT_ENAMETOOLONG;
  redis_client_t *cl =
      calloc(1, sizeof *cl + (size_t)nw * sizeof(conn_t));
  if (!cl)
    return WEFT_ENOMEM;
  strcpy(cl->host, host);
  cl->port = port;
  if (opts)
    cl->opts = *opts;
  else
    redis_opts_init(&cl->opts);
  if (!cl->opts.backoff_ms)
    cl->opts.backoff_ms = 50;
  if (cl->opts.backoff_max_ms < cl->opts.backoff_ms)
    cl->opts.backoff_max_ms = cl->opts.backoff_ms;
  if (!cl->opts.connect_timeout_ms)
    cl->opts.connect_timeout_ms = 5000;
  atomic_init(&cl->connected, 0);
  cl->nconn = cl->nalloc = (unsigned)nw;
  for (unsigned i = 0; i < cl->nalloc; i++) {
    conn_t *c = &cl->conn[i];
    c->client = cl;
    c->index = i;
    c->seed = (unsigned)weft_time_ms() ^ (i * 2654435761u) ^
              (unsigned)(uintptr_t)cl;
    pthread_mutex_init(&c->mu, NULL);
    weft_event_init(&c->wake);
    c->state = C_CONNECTING;
    c->last_err = WEFT_ENOTCONN;
  }
  for (unsigned i = 0; i < cl->nconn; i++) {
    weft_spawn_opts_t so;
    weft_spawn_opts_init(&so);
    so.name = "redis-conn";
    so.pin = (int)i;
    int rc = weft_spawn_ex(manager_main, &cl->conn[i], &so, &cl->conn[i].manager);
    if (rc != 0) {
      cl->nconn = i; /* free what was started */
      redis_client_free(cl);
      return rc;
    }
  }
  *out = cl;
  return 0;
}

int redis_client_new_url(const char *url, const redis_opts_t *opts,
                         redis_client_t **out) {
  redis_url_t u;
  int rc = redis_url_parse(url, &u);
  if (rc)
    return rc;
  redis_opts_t o;
  if (opts)
    o = *opts;
  else
    redis_opts_init(&o);
  o.db = 0;
  if (u.path[0]) {
    char *end;
    long db = strtol(u.path, &end, 10);
    if (*end || db < 0 || db > INT_MAX)
      return WEFT_EINVAL;
    o.db = (int)db;
  }
  return redis_client_new(u.host, u.port, &o, out);
}

void redis_client_free(redis_client_t *cl) {
  if (!cl)
    return;
  for (unsigned i = 0; i < cl->nconn; i++) {
    conn_t *c = &cl->conn[i];
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    pthread_mutex_unlock(&c->mu);
    weft_task_cancel(c->manager);
  }
  for (unsigned i = 0; i < cl->nconn; i++) {
    conn_t *c = &cl->conn[i];
    weft_task_await(c->manager, NULL);
    weft_task_unref(c->manager);
  }
  /* the partly built client of a failed redis_client_new() too */
  for (unsigned i = 0; i < cl->nalloc; i++) {
    conn_t *c = &cl->conn[i];
    waiter_t *dead = NULL;
    pthread_mutex_lock(&c->mu);
    conn_fail_all(c, WEFT_ECANCELED, &dead);
    pthread_mutex_unlock(&c->mu);
    waiters_free(dead);
    free(c->out);
    weft_event_destroy(&c->wake);
    pthread_mutex_destroy(&c->mu);
  }
  free(cl);
}

int redis_client_connected(redis_client_t *cl) {
  if (!cl)
    return WEFT_EINVAL;
  return atomic_load_explicit(&cl->connected, memory_order_relaxed);
}

/* ---- commands --------------------------------------------------------- */

int redis_commandv(redis_client_t *cl, redisReply **reply, int argc,
                   const char *const *argv, const size_t *argvlen) {
  if (reply)
    *reply = NULL;
  if (!cl || argc < 1 || !argv)
    return WEFT_EINVAL;
  int wi = weft_worker_index();
  if (wi < 0)
    return wi;
  for (int i = 0; i < argc; i++)
    if (!argv[i])
      return WEFT_EINVAL;
  char *cmd = NULL;
  /* hiredis's prototype lacks the inner const */
  int len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, argvlen);
  if (len < 0)
    return WEFT_ENOMEM;
  waiter_t *w = calloc(1, sizeof *w);
  if (!w) {
    free(cmd);
    return WEFT_ENOMEM;
  }
  weft_event_init(&w->done);
  conn_t *c = &cl->conn[(unsigned)wi % cl->nconn];
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  if (c->state == C_DOWN || c->state == C_CLOSED)
    rc = c->last_err;
  else
    rc = out_append(c, cmd, (size_t)len);
  if (rc == 0) {
    if (c->tail)
      c->tail->next = w;
    else
      c->head = w;
    c->tail = w;
  }
  pthread_mutex_unlock(&c->mu);
  free(cmd);
  if (rc) {
    weft_event_destroy(&w->done);
    free(w);
    return rc;
  }
  weft_event_set(&c->wake);
  int wrc = weft_event_wait(&w->done);
  redisReply *r = NULL;
  int abandoned = 0;
  pthread_mutex_lock(&c->mu);
  if (w->state == W_DONE) {
    r = w->reply;
    rc = w->err;
  } else {
    w->state = W_ABANDONED; /* the manager frees it */
    abandoned = 1;
    rc = wrc ? wrc : WEFT_ECANCELED;
  }
  pthread_mutex_unlock(&c->mu);
  if (abandoned)
    return rc;
  weft_event_destroy(&w->done);
  free(w);
  if (wrc == WEFT_ECANCELED) {
    redis_reply_free(r); /* cancelled: the result is not ours to give */
    return WEFT_ECANCELED;
  }
  if (rc && rc != REDIS_ESERVER && rc != REDIS_ENOSCRIPT) {
    redis_reply_free(r);
    r = NULL;
  }
  if (reply)
    *reply = r;
  else
    redis_reply_free(r);
  return rc;
}

int redis_command(redis_client_t *cl, redisReply **reply, const char *arg0,
                  ...) {
  const char *argv[64];
  int argc = 0;
  if (!arg0) {
    if (reply)
      *reply = NULL;
    return WEFT_EINVAL;
  }
  va_list ap;
  va_start(ap, arg0);
  for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
    if (argc == 64) {
      va_end(ap);
      if (reply)
        *reply = NULL;
      return WEFT_E2BIG;
    }
    argv[argc++] = a;
  }
  va_end(ap);
  return redis_commandv(cl, reply, argc, argv, NULL);
}

/* ---- scripts ---------------------------------------------------------- */

void redis_script_init(redis_script_t *s, const char *src) {
  s->src = src;
  pthread_mutex_init(&s->mu, NULL);
  s->sha[0] = '\0';
}

void redis_script_destroy(redis_script_t *s) {
  if (s)
    pthread_mutex_destroy(&s->mu);
}

int redis_eval(redis_client_t *cl, redis_script_t *s, redisReply **reply,
               int nkeys, int argc, const char *const *argv,
               const size_t *argvlen) {
  if (reply)
    *reply = NULL;
  if (!cl || !s || !s->src || nkeys < 0 || argc < nkeys || argc < 0 ||
      (argc && !argv) || argc > 1000)
    return WEFT_EINVAL;
  char sha[41];
  pthread_mutex_lock(&s->mu);
  memcpy(sha, s->sha, sizeof sha);
  pthread_mutex_unlock(&s->mu);
  int rc;
  if (!sha[0]) {
    redisReply *r = NULL;
    rc = redis_command(cl, &r, "SCRIPT", "LOAD", s->src, NULL);
    if (rc) {
      if (reply)
        *reply = r;
      else
        redis_reply_free(r);
      return rc;
    }
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
      redis_reply_free(r);
      return REDIS_EPROTO;
    }
    memcpy(sha, r->str, 40);
    sha[40] = '\0';
    redis_reply_free(r);
    pthread_mutex_lock(&s->mu);
    memcpy(s->sha, sha, sizeof sha);
    pthread_mutex_unlock(&s->mu);
  }
  const char **av = malloc(((size_t)argc + 3) * sizeof *av);
  size_t *al = malloc(((size_t)argc + 3) * sizeof *al);
  if (!av || !al) {
    free(av);
    free(al);
    return WEFT_ENOMEM;
  }
  char nk[16];
  snprintf(nk, sizeof nk, "%d", nkeys);
  av[0] = "EVALSHA";
  al[0] = 7;
  av[1] = sha;
  al[1] = 40;
  av[2] = nk;
  al[2] = strlen(nk);
  for (int i = 0; i < argc; i++) {
    av[i + 3] = argv[i];
    al[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
  }
  redisReply *r = NULL;
  rc = redis_commandv(cl, &r, argc + 3, av, al);
  if (rc == REDIS_ENOSCRIPT) {
    /* the server lost its script cache (flush, restart): EVAL loads it */
    redis_reply_free(r);
    r = NULL;
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = s->src;
    al[1] = strlen(s->src);
    rc = redis_commandv(cl, &r, argc + 3, av, al);
  }
  free(av);
  free(al);
  if (reply)
    *reply = r;
  else
    redis_reply_free(r);
  return rc;
}
