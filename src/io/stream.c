/*
 * Streams: the read buffer, the write queue and closing (asyncio's
 * StreamReader, StreamWriter and transport in one record).
 *
 * Threading: owner-only (io/home.c protocol). Every public call enters the
 * stream's home worker first; libuv callbacks run there too. The only
 * fields read from other threads are `closing_flag` and `fd` (relaxed
 * atomics: they are hints about a state that only moves forward) and the
 * addresses, written before the stream is handed to the program.
 *
 * Reading:
 *  1. Reading starts when the stream goes live and stays on: no
 *     uv_read_stop/uv_read_start per message. It pauses only when `rmax`
 *     bytes (2 x limit, asyncio's pause threshold, at least 4 KiB) are
 *     buffered, and resumes once a reader brings the buffer back to the
 *     limit, or when a reader must wait for more.
 *  2. A reader that finds the buffer empty offers its own buffer: the alloc
 *     callback hands it to libuv, so the kernel copies straight into the
 *     caller's memory (no second copy), and one read system call serves one
 *     message. readexactly keeps filling it until it is full without being
 *     woken per chunk.
 *  3. The reader is woken once its condition holds (`need` bytes buffered,
 *     its buffer filled, end of stream, an error, or close). Data that
 *     reached the reader first wins over a cancellation. A reader whose task
 *     has a cancellation pending is passed by (home.c step 3): its buffer is
 *     not offered to libuv and its condition does not fire it, so what
 *     arrives after cancel() returned stays buffered for the next read.
 *  4. A cancelled read consumed nothing (read, readuntil, readline); a
 *     cancelled readexactly reports the bytes already moved into the
 *     caller's buffer in *nread. Everything else stays buffered.
 *  5. readline's WEFT_ELIMIT discards the whole over-long line, also the
 *     part that has not arrived yet (asyncio drops only what is buffered,
 *     so the line's tail would come back as a line of its own). If its
 *     newline is buffered, readline consumes through it; otherwise it
 *     consumes everything buffered and sets `skip_line`. While it is set,
 *     on_read drops what arrives up to and including the next newline
 *     (nothing is buffered meanwhile, and no reader buffer is offered to
 *     libuv), then clears it. readuntil keeps asyncio's contract: its
 *     WEFT_ELIMIT leaves the data in the stream for the caller to handle.
 *
 * Writing:
 *  1. With nothing queued, write() first calls uv_try_write: usually the
 *     kernel takes everything and the write costs one system call, no
 *     allocation, no epoll_ctl. The rest is copied into one uv_write request
 *     that libuv sends when the socket is writable.
 *  2. Queued bytes over `high` pause the writer (asyncio's pause_writing):
 *     drain() then waits until the completions bring them to `low` or a
 *     write fails; every draining task is woken.
 *  3. close() stops reading and lets the queue drain before closing the
 *     handle; abort() closes at once and the discarded data turns into
 *     WEFT_EPIPE for drain() and later writes.
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/stream_int.h"
#include "io/tls_int.h"
#include "list.h"
#include "record.h"
#include "sched/worker.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define RBUF_INITIAL ((size_t)64 * 1024) /* first allocation of rbuf */
#define RBUF_MIN_READ ((size_t)4096)     /* compact or grow below this */
#define RMAX_MIN ((size_t)4096)          /* smallest pause threshold */
#define IOV_STACK 16                     /* writev buffers without malloc */

/* A queued write: the request and a copy of the bytes the kernel did not
 * take. */
typedef struct wreq {
  uv_write_t req;
  weft_stream_t *s;
  size_t len;
  char data[];
} wreq_t;

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

void weft_stream_opts_init(weft_stream_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->limit = WEFT_STREAM_LIMIT_DEFAULT;
  opts->tcp_nodelay = 1;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */

static void stream_destroy(weft_stream_t *s) {
  weft__io_unregister(&s->obj);
  weft__tls_free(s);
  weft__free(s->rbuf);
  weft__free(s);
}

static void stream_reap(weft__io_obj_t *o) {
  weft_stream_t *s = weft__container_of(o, weft_stream_t, obj);
  s->free_on_close = 1;
  if (s->closed)
    stream_destroy(s);
  else
    weft__stream_close(s, 1);
}

weft_stream_t *weft__stream_alloc(weft__worker_t *home, int is_pipe,
                                  const weft_stream_opts_t *opts) {
  weft_stream_t *s = weft__calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  int rc = is_pipe ? uv_pipe_init(&home->own.loop, &s->u.pipe, 0)
                   : uv_tcp_init(&home->own.loop, &s->u.tcp);
  if (rc) {
    weft__free(s);
    return NULL;
  }
  s->u.h.data = s;
  s->is_pipe = is_pipe;
  s->handles_open = 1;
  atomic_init(&s->tls_ready, 0);
  atomic_init(&s->closing_flag, 0);
  atomic_init(&s->fd, -1);
  s->limit = opts && opts->limit ? opts->limit : WEFT_STREAM_LIMIT_DEFAULT;
  s->rmax = s->limit > SIZE_MAX / 2 ? SIZE_MAX : 2 * s->limit;
  if (s->rmax < RMAX_MIN)
    s->rmax = RMAX_MIN;
  s->high = WEFT_STREAM_HIGH_WATER_DEFAULT;
  s->low = WEFT_STREAM_LOW_WATER_DEFAULT;
  weft__list_init(&s->drainers);
  weft__list_init(&s->senders);
  weft__list_init(&s->closers);
  weft__list_init(&s->conn_link);
  weft__list_init(&s->obj.link);
  weft__io_register(&s->obj, home, stream_reap);
  return s;
}

static void record_addr(weft_stream_t *s, int peer) {
  struct sockaddr_storage *ss = peer ? &s->peername : &s->sockname;
  int len = sizeof(*ss);
  memset(ss, 0, sizeof(*ss));
  if (!s->is_pipe) {
    int rc = peer ? uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)ss, &len)
                  : uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)ss, &len);
    if (rc)
      len = 0;
  } else {
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t n = sizeof(un->sun_path);
    un->sun_family = AF_UNIX;
    int rc = peer ? uv_pipe_getpeername(&s->u.pipe, un->sun_path, &n)
                  : uv_pipe_getsockname(&s->u.pipe, un->sun_path, &n);
    if (rc || n >= sizeof(un->sun_path))
      n = 0;
    un->sun_path[n] = 0;
    len = (int)(offsetof(struct sockaddr_un, sun_path) + n);
  }
  if (peer)
    s->peerlen = len;
  else
    s->socklen = len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

static void start_reading(weft_stream_t *s) {
  /* TLS: first decrypt what OpenSSL and the ciphertext buffer hold; 1 means
   * the socket is not to be read (its end came, or the buffer is full). */
  if (s->tls && weft__tls_pump(s))
    return;
  if (s->reading || s->eof || s->closing || s->rlen >= s->rmax)
    return;
  int rc = uv_read_start(&s->u.s, on_alloc, on_read);
  if (rc) {
    s->eof = 1;
    s->rerr = rc;
    return;
  }
  s->reading = 1;
}

static void stop_reading(weft_stream_t *s) {
  if (!s->reading)
    return;
  uv_read_stop(&s->u.s);
  s->reading = 0;
}

void weft__stream_stop_reading(weft_stream_t *s) { stop_reading(s); }

int weft__stream_start(weft_stream_t *s, const weft_stream_opts_t *opts) {
  uv_os_fd_t fd;
  if (uv_fileno(&s->u.h, &fd) == 0)
    /* relaxed: a hint for fileno(); written before the stream is handed. */
    atomic_store_explicit(&s->fd, (int)fd, memory_order_relaxed);
  record_addr(s, 0);
  record_addr(s, 1);
  if (!s->is_pipe && (!opts || opts->tcp_nodelay))
    uv_tcp_nodelay(&s->u.tcp, 1);
  start_reading(s);
  return s->eof ? s->rerr : 0;
}

static void wake_reader(weft_stream_t *s) {
  weft__reader_t *r = s->reader;
  if (r && !r->fired && !weft__io_task_cancelled(r->task)) {
    r->fired = 1;
    weft__task_wake(r->task);
  }
}

/* Every handle of s is closed (the socket, and a TLS timer if it had one). */
void weft__stream_handle_closed(weft_stream_t *s) {
  if (--s->handles_open > 0)
    return;
  s->closed = 1;
  wake_reader(s);
  weft__io_wake_all(&s->drainers);
  weft__io_wake_all(&s->senders);
  weft__io_wake_all(&s->closers);
  if (s->on_closed)
    s->on_closed(s);
  if (s->free_on_close)
    stream_destroy(s);
}

static void on_close(uv_handle_t *h) { weft__stream_handle_closed(h->data); }

static void start_handle_close(weft_stream_t *s) {
  if (s->handle_closing)
    return;
  s->handle_closing = 1;
  /* relaxed: fileno() hint; the descriptor is closed from here on. */
  atomic_store_explicit(&s->fd, -1, memory_order_relaxed);
  if (s->wqueued && !s->werr)
    s->werr = WEFT_EPIPE; /* queued data is discarded */
  s->reading = 0;
  if (s->tls)
    weft__tls_close_handles(s);
  uv_close(&s->u.h, on_close);
}

void weft__stream_close_now(weft_stream_t *s) {
  weft__stream_close(s, 1);
}

void weft__stream_close(weft_stream_t *s, int abort) {
  if (!s->closing) {
    s->closing = 1;
    /* relaxed: is_closing() is a hint, the state only moves forward. */
    atomic_store_explicit(&s->closing_flag, 1, memory_order_relaxed);
    stop_reading(s);
    wake_reader(s);
    weft__io_wake_all(&s->senders); /* a sendfile stops (sendfile.c) */
    if (s->tls)
      weft__tls_on_close(s, abort); /* close_notify behind the data */
  }
  if (s->handle_closing)
    return;
  if (abort || s->wqueued == 0 || s->werr) {
    start_handle_close(s);
  } else {
    s->flush_close = 1;
    if (s->tls)
      weft__tls_arm_shutdown(s); /* the flush ends at the shutdown timeout */
  }
}

void weft__stream_release(weft_stream_t *s) {
  weft__stream_close(s, 0);
  if (s->closed)
    stream_destroy(s);
  else
    s->free_on_close = 1;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */

static int reader_ready(const weft_stream_t *s, const weft__reader_t *r) {
  if (s->eof || s->closing || s->rnomem || s->rlen >= r->need)
    return 1;
  if (r->dbuf)
    return r->exact ? r->dgot == r->dlen : r->dgot > 0;
  return 0;
}

/* Where the next bytes of the stream go: reading steps 1 and 2. */
void weft__stream_space(weft_stream_t *s, char **base, size_t *len) {
  weft__reader_t *r = s->reader;
  if (r && r->dbuf && s->rlen == 0 && r->dgot < r->dlen && !s->skip_line &&
      (r->exact || r->dgot == 0) && !weft__io_task_cancelled(r->task)) {
    *base = r->dbuf + r->dgot;
    *len = r->dlen - r->dgot;
    return;
  }
  if (s->rlen == 0)
    s->rpos = 0;
  size_t tail = s->rcap - s->rpos - s->rlen;
  if (tail < RBUF_MIN_READ && s->rpos > 0) {
    memmove(s->rbuf, s->rbuf + s->rpos, s->rlen);
    s->rpos = 0;
    tail = s->rcap - s->rlen;
  }
  if (tail < RBUF_MIN_READ && s->rcap < s->rmax) {
    size_t cap = s->rcap ? s->rcap * 2 : RBUF_INITIAL;
    if (cap > s->rmax)
      cap = s->rmax;
    char *nb = weft__realloc(s->rbuf, cap);
    if (nb) {
      s->rbuf = nb;
      s->rcap = cap;
      tail = cap - s->rpos - s->rlen;
    }
  }
  if (tail > s->rmax - s->rlen)
    tail = s->rmax - s->rlen;
  *base = tail ? s->rbuf + s->rpos + s->rlen : NULL;
  *len = tail;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  weft_stream_t *s = h->data;
  char *base;
  size_t len;
  (void)suggested;
  if (s->tls)
    weft__tls_cipher_space(s, &base, &len);
  else
    weft__stream_space(s, &base, &len);
  buf->base = base;
  buf->len = len; /* 0 makes libuv report UV_ENOBUFS */
}

static void consume(weft_stream_t *s, size_t k);

/* Reading step 5: drop the buffered bytes (all of them the over-long line's)
 * through the first newline, or all of them if none came yet. */
static void skip_line(weft_stream_t *s) {
  const char *base = s->rbuf + s->rpos;
  const char *nl = memchr(base, '\n', s->rlen);
  if (nl) {
    s->skip_line = 0;
    consume(s, (size_t)(nl - base) + 1);
  } else {
    consume(s, s->rlen);
  }
}

void weft__stream_landed(weft_stream_t *s, const char *base, size_t n) {
  weft__reader_t *r = s->reader;
  if (r && r->dbuf && base == r->dbuf + r->dgot) {
    r->dgot += n;
  } else {
    s->rlen += n;
    if (s->skip_line)
      skip_line(s);
  }
  if (s->rlen >= s->rmax)
    stop_reading(s); /* flow control: the reader must consume first */
}

void weft__stream_wake_reader(weft_stream_t *s) {
  weft__reader_t *r = s->reader;
  if (r && reader_ready(s, r))
    wake_reader(s);
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  weft_stream_t *s = h->data;
  weft__reader_t *r = s->reader;
  if (s->tls) {
    weft__tls_on_read(s, nread);
    return;
  }
  if (nread > 0) {
    weft__stream_landed(s, buf->base, (size_t)nread);
  } else if (nread == UV_ENOBUFS) {
    stop_reading(s);
    if (s->rlen == 0) /* no memory for even one read: this read fails */
      s->rnomem = 1;
  } else if (nread < 0) {
    s->eof = 1;
    if (nread != UV_EOF)
      s->rerr = (int)nread;
    stop_reading(s);
  } else {
    return; /* EAGAIN */
  }
  if (r && reader_ready(s, r))
    wake_reader(s);
}

/* Resume reading once the buffer is back at the limit (asyncio's
 * _maybe_resume_transport). */
static void consume(weft_stream_t *s, size_t k) {
  s->rpos += k;
  s->rlen -= k;
  if (s->rlen == 0) {
    s->rpos = 0;
    if (s->rcap > RBUF_INITIAL) { /* give a grown buffer back */
      weft__free(s->rbuf);
      s->rbuf = NULL;
      s->rcap = 0;
    }
  }
  if (s->rlen <= s->limit)
    start_reading(s);
}

static size_t take(weft_stream_t *s, void *dst, size_t n) {
  if (n > s->rlen)
    n = s->rlen;
  if (n == 0)
    return 0;
  memcpy(dst, s->rbuf + s->rpos, n);
  consume(s, n);
  return n;
}

/* Wait as the stream's reader until r is ready. 0 or WEFT_ECANCELED; r's
 * dgot tells what arrived in its buffer either way. */
static int reader_wait(weft_stream_t *s, weft__reader_t *r, weft_task_t *t) {
  r->task = t;
  r->fired = 0;
  r->dgot = 0;
  s->rnomem = 0; /* a new attempt at the read buffer */
  s->reader = r;
  start_reading(s);
  weft__wait_note(t, WEFT_WAIT_STREAM_READ, s);
  int rc = reader_ready(s, r) ? 0 : weft__io_wait_flag(t, &r->fired, 0);
  s->reader = NULL;
  if (rc == 0 && s->rnomem && !r->dgot) {
    s->rnomem = 0; /* reported once; the socket still holds the bytes */
    rc = WEFT_ENOMEM;
  }
  return rc;
}

/* Common epilogue: a TLS failure's reason becomes the task's, and the task
 * leaves home. */
static void stream_leave(weft_stream_t *s, weft_task_t *t, int rc) {
  if (s->tls && rc < 0)
    weft__tls_note(s, rc);
  weft__io_leave(t);
}

/* Common prologue: validate, find the task, move it home. */
int weft__stream_begin(weft_stream_t *s, weft_task_t **tp) {
  if (!s)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &s->obj);
  if (rc)
    return rc;
  weft__io_enter(t, s->obj.home);
  *tp = t;
  return 0;
}

int weft_stream_read(weft_stream_t *s, void *buf, size_t n) {
  weft_task_t *t;
  if (s && !buf && n)
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  if (n > INT_MAX)
    n = INT_MAX;
  int waited = 0;
  if (s->reader)
    rc = WEFT_EBUSY;
  else if (n == 0)
    rc = 0;
  else
    for (;;) {
      if (s->rlen) {
        rc = (int)take(s, buf, n);
        break;
      }
      if (s->eof || s->closing) {
        rc = s->rerr;
        break;
      }
      weft__reader_t r = {.dbuf = buf, .dlen = n, .need = 1};
      rc = reader_wait(s, &r, t);
      waited = 1;
      if (r.dgot) { /* data wins over a cancellation */
        rc = (int)r.dgot;
        break;
      }
      if (rc)
        break;
    }
  stream_leave(s, t, rc);
  if (!waited && rc > 0)
    weft__coop_tick();
  return rc;
}

int weft_stream_readexactly(weft_stream_t *s, void *buf, size_t n,
                            size_t *nread) {
  weft_task_t *t;
  size_t got = 0;
  if (nread)
    *nread = 0;
  if (s && !buf && n)
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  int waited = 0;
  if (s->reader)
    rc = WEFT_EBUSY;
  else
    for (;;) {
      got += take(s, (char *)buf + got, n - got);
      if (got == n) {
        rc = 0;
        break;
      }
      if (s->eof || s->closing) {
        rc = s->rerr ? s->rerr : WEFT_EINCOMPLETE;
        break;
      }
      size_t left = n - got;
      weft__reader_t r = {.dbuf = (char *)buf + got,
                          .dlen = left,
                          .exact = 1,
                          .need = left < s->limit ? left : s->limit};
      rc = reader_wait(s, &r, t);
      waited = 1;
      got += r.dgot;
      if (rc && got < n)
        break;
    }
  if (nread)
    *nread = got;
  stream_leave(s, t, rc);
  if (!waited && rc == 0)
    weft__coop_tick();
  return rc;
}

/* asyncio's StreamReader.readuntil, on the home worker. */
static int readuntil_home(weft_stream_t *s, weft_task_t *t, const char *sep,
                          size_t seplen, void *buf, size_t cap, size_t *len,
                          int *waited) {
  size_t offset = 0, isep;
  for (;;) {
    if (s->rlen >= offset + seplen) {
      const char *base = s->rbuf + s->rpos;
      const char *p = memmem(base + offset, s->rlen - offset, sep, seplen);
      if (p) {
        isep = (size_t)(p - base);
        break;
      }
      offset = s->rlen + 1 - seplen;
      if (offset > s->limit) {
        *len = offset;
        return WEFT_ELIMIT;
      }
    }
    if (s->rlen >= s->rmax) { /* full, no separator (seplen > limit) */
      *len = offset;
      return WEFT_ELIMIT;
    }
    if (s->eof || s->closing) {
      if (s->rlen == 0 && s->rerr)
        return s->rerr;
      *len = s->rlen;
      if (s->rlen > cap)
        return WEFT_ENOBUFS;
      take(s, buf, s->rlen);
      return WEFT_EINCOMPLETE;
    }
    weft__reader_t r = {.need = s->rlen + 1};
    *waited = 1;
    int rc = reader_wait(s, &r, t);
    if (rc)
      return rc; /* cancelled: nothing consumed */
  }
  if (isep > s->limit) {
    *len = isep;
    return WEFT_ELIMIT;
  }
  *len = isep + seplen;
  if (*len > cap)
    return WEFT_ENOBUFS;
  take(s, buf, *len);
  return 0;
}

int weft_stream_readuntil(weft_stream_t *s, const void *sep, size_t seplen,
                          void *buf, size_t cap, size_t *len) {
  weft_task_t *t;
  size_t dummy;
  if (!len)
    len = &dummy;
  *len = 0;
  if (s && (!sep || seplen == 0 || (!buf && cap)))
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  int waited = 0;
  rc = s->reader ? WEFT_EBUSY
                 : readuntil_home(s, t, sep, seplen, buf, cap, len, &waited);
  stream_leave(s, t, rc);
  if (!waited && rc == 0)
    weft__coop_tick();
  return rc;
}

int weft_stream_readline(weft_stream_t *s, void *buf, size_t cap, size_t *len) {
  weft_task_t *t;
  size_t dummy;
  if (!len)
    len = &dummy;
  *len = 0;
  if (s && !buf && cap)
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  int waited = 0;
  if (s->reader) {
    rc = WEFT_EBUSY;
  } else {
    rc = readuntil_home(s, t, "\n", 1, buf, cap, len, &waited);
    if (rc == WEFT_EINCOMPLETE) {
      rc = 0; /* the last, unterminated line (or 0 bytes: the end) */
    } else if (rc == WEFT_ELIMIT) {
      /* Drop the line through its separator if it was found, else
       * everything buffered and the rest as it arrives (step 5). */
      size_t c = *len;
      if (c < s->rlen && s->rbuf[s->rpos + c] == '\n') {
        consume(s, c + 1);
      } else {
        consume(s, s->rlen);
        s->skip_line = !s->eof && !s->closing;
      }
    }
  }
  stream_leave(s, t, rc);
  if (!waited && rc == 0)
    weft__coop_tick();
  return rc;
}

int weft_stream_at_eof(weft_stream_t *s) {
  weft_task_t *t;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  rc = (s->eof || s->closing) && s->rlen == 0;
  weft__io_leave(t);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

static void wake_drainers(weft_stream_t *s) { weft__io_wake_all(&s->drainers); }

/* After bytes left the queue or a write failed. */
static void write_progress(weft_stream_t *s) {
  if (s->wpaused && (s->wqueued <= s->low || s->werr)) {
    s->wpaused = 0;
    wake_drainers(s);
  }
  if ((s->wqueued == 0 || s->werr) && !weft__list_empty(&s->senders))
    weft__io_wake_all(&s->senders); /* a sendfile waits for the queue */
  if (s->flush_close && (s->wqueued == 0 || s->werr))
    start_handle_close(s);
}

void weft__stream_write_progress(weft_stream_t *s) { write_progress(s); }

static void on_write(uv_write_t *req, int status) {
  wreq_t *wr = weft__container_of(req, wreq_t, req);
  weft_stream_t *s = wr->s;
  s->wqueued -= wr->len;
  weft__free(wr);
  if (status < 0 && status != UV_ECANCELED && !s->werr)
    s->werr = status;
  write_progress(s);
}

/* Queue bufs (total bytes): a direct write first, then a copy of the rest. */
int weft__stream_raw_write(weft_stream_t *s, const uv_buf_t *bufs,
                           unsigned nbufs, size_t total) {
  if (s->werr)
    return s->werr;
  if (s->handle_closing)
    return WEFT_EPIPE;
  if (total == 0)
    return 0;
  size_t done = 0;
  if (s->wqueued == 0) {
    int r = uv_try_write(&s->u.s, bufs, nbufs);
    if (r >= 0) {
      done = (size_t)r;
    } else if (r != UV_EAGAIN && r != UV_ENOSYS) {
      s->werr = r;
      write_progress(s);
      return r;
    }
  }
  if (done == total)
    return 0;
  size_t rest = total - done;
  wreq_t *wr = weft__malloc(sizeof(*wr) + rest);
  if (!wr) {
    if (done)
      s->werr = WEFT_ENOMEM; /* the stream lost bytes mid-message */
    return WEFT_ENOMEM;
  }
  size_t skip = done, off = 0;
  for (unsigned i = 0; i < nbufs; i++) {
    size_t l = bufs[i].len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    memcpy(wr->data + off, bufs[i].base + skip, l - skip);
    off += l - skip;
    skip = 0;
  }
  wr->s = s;
  wr->len = rest;
  uv_buf_t b;
  b.base = wr->data;
  b.len = rest;
  int r = uv_write(&wr->req, &s->u.s, &b, 1, on_write);
  if (r) {
    weft__free(wr);
    s->werr = r;
    write_progress(s);
    return r;
  }
  s->wqueued += rest;
  if (s->wqueued > s->high)
    s->wpaused = 1;
  return 0;
}

int weft__stream_send_home(weft_stream_t *s, const uv_buf_t *bufs,
                           unsigned nbufs, size_t total) {
  if (s->werr)
    return s->werr;
  if (s->closing || s->shut)
    return WEFT_EPIPE;
  if (total == 0)
    return 0;
  if (s->tls)
    return weft__tls_write(s, bufs, nbufs, total);
  return weft__stream_raw_write(s, bufs, nbufs, total);
}

int weft_stream_write(weft_stream_t *s, const void *data, size_t n) {
  weft_task_t *t;
  if (s && !data && n)
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  uv_buf_t b;
  b.base = (char *)(uintptr_t)data;
  b.len = n;
  rc = s->sending ? WEFT_EBUSY : weft__stream_send_home(s, &b, 1, n);
  stream_leave(s, t, rc);
  return rc;
}

int weft_stream_writev(weft_stream_t *s, const weft_iovec_t *iov, size_t n) {
  weft_task_t *t;
  if (s && !iov && n)
    return WEFT_EINVAL;
  if (n > UINT_MAX)
    return WEFT_EINVAL;
  uv_buf_t stackbufs[IOV_STACK];
  uv_buf_t *bufs = stackbufs;
  size_t total = 0;
  if (s && n > IOV_STACK) {
    bufs = weft__malloc(n * sizeof(*bufs));
    if (!bufs)
      return WEFT_ENOMEM;
  }
  for (size_t i = 0; s && i < n; i++) {
    if (!iov[i].base && iov[i].len) {
      if (bufs != stackbufs)
        weft__free(bufs);
      return WEFT_EINVAL;
    }
    bufs[i].base = (char *)(uintptr_t)iov[i].base;
    bufs[i].len = iov[i].len;
    total += iov[i].len;
  }
  int rc = weft__stream_begin(s, &t);
  if (rc == 0) {
    rc = s->sending ? WEFT_EBUSY
                    : weft__stream_send_home(s, bufs, (unsigned)n, total);
    stream_leave(s, t, rc);
  }
  if (bufs != stackbufs)
    weft__free(bufs);
  return rc;
}

int weft_stream_drain(weft_stream_t *s) {
  weft_task_t *t;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  for (;;) {
    if (s->werr) {
      rc = s->werr;
      break;
    }
    if (!s->wpaused) {
      rc = 0;
      break;
    }
    weft__wait_note(t, WEFT_WAIT_STREAM_WRITE, s);
    rc = weft__io_wait_in(&s->drainers, t);
    if (rc)
      break; /* cancelled: the queued data stays queued */
  }
  stream_leave(s, t, rc);
  return rc;
}

int weft_stream_set_write_buffer_limits(weft_stream_t *s, size_t high,
                                        size_t low) {
  weft_task_t *t;
  if (s && low > high)
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  s->high = high;
  s->low = low;
  if (s->wqueued > s->high)
    s->wpaused = 1;
  write_progress(s);
  weft__io_leave(t);
  return 0;
}

int weft_stream_get_write_buffer_size(weft_stream_t *s, size_t *size) {
  weft_task_t *t;
  if (s && !size)
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  *size = s->wqueued;
  weft__io_leave(t);
  return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  weft_stream_t *s = req->data;
  if (status < 0 && status != UV_ECANCELED && !s->werr) {
    s->werr = status;
    write_progress(s);
  }
}

int weft_stream_write_eof(weft_stream_t *s) {
  weft_task_t *t;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  if (s->closing)
    rc = WEFT_EPIPE;
  else if (s->werr)
    rc = s->werr;
  else if (s->sending)
    rc = WEFT_EBUSY; /* the file's bytes are not all out yet */
  else if (!s->shut) {
    if (s->tls)
      weft__tls_close_notify(s); /* TLS's end of data, then TCP's */
    s->shutdown_req.data = s;
    rc = uv_shutdown(&s->shutdown_req, &s->u.s, on_shutdown);
    if (rc == 0)
      s->shut = 1;
  }
  weft__io_leave(t);
  return rc;
}

int weft_stream_can_write_eof(weft_stream_t *s) { return s ? 1 : WEFT_EINVAL; }

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

static int close_op(weft_stream_t *s, int abort) {
  weft_task_t *t;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  weft__stream_close(s, abort);
  weft__io_leave(t);
  return 0;
}

int weft_stream_close(weft_stream_t *s) { return close_op(s, 0); }

int weft_stream_abort(weft_stream_t *s) { return close_op(s, 1); }

int weft_stream_is_closing(const weft_stream_t *s) {
  if (!s)
    return WEFT_EINVAL;
  /* relaxed: a hint about a state that only moves forward. */
  return atomic_load_explicit(&s->closing_flag, memory_order_relaxed);
}

int weft_stream_wait_closed(weft_stream_t *s) {
  weft_task_t *t;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  while (!s->closed) {
    weft__wait_note(t, WEFT_WAIT_STREAM_CLOSE, s);
    rc = weft__io_wait_in(&s->closers, t);
    if (rc)
      break;
  }
  weft__io_leave(t);
  return rc;
}

int weft_stream_free(weft_stream_t *s) {
  weft_task_t *t;
  if (!s)
    return 0;
  if (s->slot || s->owned)
    return WEFT_EPERM; /* the server or process owns and frees it */
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  weft__stream_release(s);
  weft__io_leave(t);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Addresses                                                                 */

static int copy_addr(const struct sockaddr_storage *src, int srclen,
                     struct sockaddr_storage *addr, int *len) {
  if (!addr)
    return WEFT_EINVAL;
  *addr = *src;
  if (len)
    *len = srclen;
  return 0;
}

int weft_stream_sockname(const weft_stream_t *s, struct sockaddr_storage *addr,
                         int *len) {
  return s ? copy_addr(&s->sockname, s->socklen, addr, len) : WEFT_EINVAL;
}

int weft_stream_peername(const weft_stream_t *s, struct sockaddr_storage *addr,
                         int *len) {
  return s ? copy_addr(&s->peername, s->peerlen, addr, len) : WEFT_EINVAL;
}

int weft_stream_fileno(const weft_stream_t *s) {
  if (!s)
    return WEFT_EINVAL;
  /* relaxed: a hint; see weft__stream_start. */
  int fd = atomic_load_explicit(&s->fd, memory_order_relaxed);
  return fd >= 0 ? fd : WEFT_EBADF;
}

int weft_addr_format(const struct sockaddr *addr, char *host, size_t cap,
                     int *port) {
  if (!addr || (!host && cap))
    return WEFT_EINVAL;
  char tmp[INET6_ADDRSTRLEN > 108 ? INET6_ADDRSTRLEN : 108];
  int p = -1, rc;
  switch (addr->sa_family) {
  case AF_INET: {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    rc = uv_ip4_name(in, tmp, sizeof(tmp));
    p = ntohs(in->sin_port);
    break;
  }
  case AF_INET6: {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    rc = uv_ip6_name(in6, tmp, sizeof(tmp));
    p = ntohs(in6->sin6_port);
    break;
  }
  case AF_UNIX: {
    const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
    size_t n = strnlen(un->sun_path, sizeof(un->sun_path));
    memcpy(tmp, un->sun_path, n);
    tmp[n] = 0;
    rc = 0;
    break;
  }
  default:
    return WEFT_EAFNOSUPPORT;
  }
  if (rc)
    return rc;
  size_t n = strlen(tmp);
  if (n >= cap)
    return WEFT_ENOSPC;
  memcpy(host, tmp, n + 1);
  if (port)
    *port = p;
  return 0;
}
