/*
 * api_sendfile: weft_stream_sendfile() (weft/file.h) on loopback TCP (the
 * zero-copy path) and on Unix sockets (the copying path), against a plain
 * socket the test reads itself, and over TLS to a weft server (the copying
 * path through the encryption; a throw-away certificate from the openssl
 * command, skipped without it or without TLS): exact bytes (what was written
 * before and after, offset and count, end of file), the wait for a full socket
 * buffer (the file is far larger than both socket buffers and the peer reads
 * only once the call is known to be blocked), WEFT_EBUSY for writes, write_eof
 * and a second sendfile meanwhile, cancellation while blocked (the peer
 * gets exactly *sent bytes of the file, then what is written next), the
 * stream closed by another task and reset by the peer while blocked, and
 * every argument and file error, and a stream or file of another runtime.
 *
 * "Blocked" is known from the stream refusing a write with WEFT_EBUSY and
 * the kernel's send queue being non-empty, never from a sleep.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define FILE_SIZE ((size_t)4 * 1024 * 1024)
#define SMALL_BUF 16384 /* SO_SNDBUF / SO_RCVBUF of the tests' sockets */

static char dir[80];        /* scratch directory */
static char data_path[300]; /* the file, FILE_SIZE bytes */
static char *content;       /* its bytes */

/* ---- a plain peer ------------------------------------------------------- */

typedef struct peer {
  int lfd;          /* listening socket */
  int unix_;        /* AF_UNIX */
  int port;         /* TCP port */
  char path[100];   /* Unix path (fits a sockaddr_un) */
  int fd;           /* accepted connection */
  pthread_t reader; /* reads fd to its end into buf */
  char *buf;        /* what the peer received */
  size_t len;       /* its length */
  int rerr;         /* the reader's errno, 0 at a clean end */
} peer_t;

static void peer_listen(peer_t *p, int unix_) {
  int one = 1, small = SMALL_BUF;
  memset(p, 0, sizeof *p);
  p->unix_ = unix_;
  p->lfd = socket(unix_ ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(p->lfd >= 0);
  setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  /* Inherited by the accepted socket: a small receive window. */
  CHECK_OK(setsockopt(p->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small));
  if (unix_) {
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    snprintf(p->path, sizeof p->path, "%s/s", dir);
    unlink(p->path);
    CHECK(strlen(p->path) < sizeof un.sun_path);
    memcpy(un.sun_path, p->path, strlen(p->path) + 1);
    CHECK_OK(bind(p->lfd, (struct sockaddr *)&un, sizeof un));
  } else {
    struct sockaddr_in in;
    socklen_t l = sizeof in;
    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(p->lfd, (struct sockaddr *)&in, sizeof in));
    CHECK_OK(getsockname(p->lfd, (struct sockaddr *)&in, &l));
    p->port = ntohs(in.sin_port);
  }
  CHECK_OK(listen(p->lfd, 4));
}

/* Connect a weft stream to p (from a task) and accept it. */
static weft_stream_t *peer_connect(peer_t *p) {
  weft_stream_t *s = NULL;
  int small = SMALL_BUF;
  if (p->unix_)
    CHECK_OK(weft_open_unix_connection(p->path, NULL, &s));
  else
    CHECK_OK(weft_open_connection("127.0.0.1", p->port, NULL, &s));
  CHECK(s != NULL);
  /* The connection is queued on the listener: accept does not block. */
  p->fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
  CHECK(p->fd >= 0);
  CHECK_OK(setsockopt(weft_stream_fileno(s), SOL_SOCKET, SO_SNDBUF, &small,
                      sizeof small));
  return s;
}

static void *reader_main(void *arg) {
  peer_t *p = arg;
  size_t cap = FILE_SIZE * 2 + 4096;
  p->buf = malloc(cap);
  for (;;) {
    ssize_t n = p->buf ? read(p->fd, p->buf + p->len, cap - p->len) : -1;
    if (n > 0) {
      p->len += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    p->rerr = n < 0 ? errno : 0;
    return NULL;
  }
}

static void peer_start_reading(peer_t *p) {
  CHECK_OK(pthread_create(&p->reader, NULL, reader_main, p));
}

/* Join the reader (the stream must be closed) and clean up. */
static void peer_finish(peer_t *p) {
  pthread_join(p->reader, NULL);
  close(p->fd);
  close(p->lfd);
  if (p->unix_)
    unlink(p->path);
}

/* Bytes the kernel holds in the stream's send queue (TCP: not yet
 * acknowledged; Unix: not yet read). */
static int outq(weft_stream_t *s) {
  int n = 0;
  if (ioctl(weft_stream_fileno(s), SIOCOUTQ, &n) != 0)
    return -1;
  return n;
}

/* Wait, from a task, until cond holds (yielding the worker). */
#define TASK_WAIT(cond)                                                        \
  do {                                                                         \
    double t0_ = harness_now_ms();                                             \
    while (!(cond) && harness_now_ms() - t0_ < HARNESS_WAIT_MS)                \
      weft_sleep(1);                                                           \
    CHECK(cond);                                                               \
  } while (0)

/* ---- a sendfile in a task ----------------------------------------------- */

typedef struct job {
  weft_stream_t *s;
  weft_file_t *f;
  int64_t off;
  size_t count;
  size_t sent;
  int rc;
  atomic_int done;
} job_t;

static void *job_main(void *arg) {
  job_t *j = arg;
  j->rc = weft_stream_sendfile(j->s, j->f, j->off, j->count, &j->sent);
  atomic_store(&j->done, 1);
  return NULL;
}

static weft_task_t *job_start(job_t *j, weft_stream_t *s, weft_file_t *f,
                              int64_t off, size_t count) {
  weft_task_t *t = NULL;
  memset(j, 0, sizeof *j);
  j->s = s;
  j->f = f;
  j->off = off;
  j->count = count;
  j->rc = 1;
  atomic_init(&j->done, 0);
  CHECK_OK(weft_spawn(job_main, j, &t));
  return t;
}

/* The job is inside the call, blocked on a peer that does not read: the
 * stream refuses writes and the kernel holds bytes for the peer. */
static void wait_blocked(job_t *j) {
  TASK_WAIT(weft_stream_write(j->s, "", 0) == WEFT_EBUSY && outq(j->s) > 0);
  CHECK(!atomic_load(&j->done));
}

/* ---- the data path ------------------------------------------------------ */

static void *roundtrip_body(void *arg) {
  int unix_ = (int)(intptr_t)arg;
  peer_t p;
  weft_file_t *f = NULL, *f2 = NULL;
  job_t j;
  size_t sent = 7;

  peer_listen(&p, unix_);
  weft_stream_t *s = peer_connect(&p);
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &f));
  CHECK_OK(weft_stream_write(s, "HEAD", 4)); /* goes first */

  /* From offset 1000 to the end: the peer does not read yet, so the call
   * must wait for a full socket buffer. */
  weft_task_t *t = job_start(&j, s, f, 1000, 0);
  wait_blocked(&j);
  CHECK_RC(weft_stream_write(s, "x", 1), WEFT_EBUSY);
  {
    weft_iovec_t v = {"x", 1};
    CHECK_RC(weft_stream_writev(s, &v, 1), WEFT_EBUSY);
  }
  CHECK_RC(weft_stream_write_eof(s), WEFT_EBUSY);
  CHECK_RC(weft_stream_sendfile(s, f, 0, 10, &sent), WEFT_EBUSY);
  CHECK_EQ(sent, 0);
  peer_start_reading(&p);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(j.rc);
  CHECK_EQ(j.sent, FILE_SIZE - 1000);

  /* offset and count; a count past the end; an offset past the end; the
   * handle's own position untouched; a second handle closed meanwhile. */
  CHECK_OK(weft_stream_sendfile(s, f, 5, 100, &sent));
  CHECK_EQ(sent, 100);
  CHECK_OK(weft_stream_sendfile(s, f, (int64_t)FILE_SIZE - 10, 1000, &sent));
  CHECK_EQ(sent, 10);
  CHECK_OK(weft_stream_sendfile(s, f, (int64_t)FILE_SIZE + 10, 0, &sent));
  CHECK_EQ(sent, 0);
  CHECK_OK(weft_stream_sendfile(s, f, 0, 0, NULL));
  {
    int64_t pos = -1;
    CHECK_OK(weft_file_seek(f, 0, SEEK_CUR, &pos));
    CHECK_EQ(pos, 0);
  }
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &f2));
  CHECK_OK(weft_stream_sendfile(s, f2, 7, 3, &sent));
  CHECK_EQ(sent, 3);
  CHECK_OK(weft_file_close(f2));
  CHECK_RC(weft_stream_sendfile(s, f2, 7, 3, &sent), WEFT_EBADF);
  CHECK_OK(weft_file_free(f2));

  CHECK_OK(weft_stream_write(s, "TAIL", 4));
  CHECK_OK(weft_stream_close(s));
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));
  CHECK_OK(weft_file_free(f));
  peer_finish(&p);

  /* HEAD, file[1000:], file[5:105], file[-10:], the whole file, file[7:10],
   * TAIL. */
  size_t want = 4 + (FILE_SIZE - 1000) + 100 + 10 + FILE_SIZE + 3 + 4;
  CHECK_EQ(p.rerr, 0);
  CHECK_EQ(p.len, want);
  if (p.len == want) {
    const char *b = p.buf;
    CHECK(memcmp(b, "HEAD", 4) == 0);
    b += 4;
    CHECK(memcmp(b, content + 1000, FILE_SIZE - 1000) == 0);
    b += FILE_SIZE - 1000;
    CHECK(memcmp(b, content + 5, 100) == 0);
    b += 100;
    CHECK(memcmp(b, content + FILE_SIZE - 10, 10) == 0);
    b += 10;
    CHECK(memcmp(b, content, FILE_SIZE) == 0);
    b += FILE_SIZE;
    CHECK(memcmp(b, content + 7, 3) == 0);
    b += 3;
    CHECK(memcmp(b, "TAIL", 4) == 0);
  }
  free(p.buf);
  return NULL;
}

static void test_roundtrip_tcp(void **state) {
  (void)state;
  run_in_weft(roundtrip_body, (void *)(intptr_t)0, 2);
}

static void test_roundtrip_unix(void **state) {
  (void)state;
  run_in_weft(roundtrip_body, (void *)(intptr_t)1, 2);
}

/* ---- TLS (the copying path through the encryption) --------------------- */

static char cert_path[120], key_path[120]; /* a throw-away certificate */
static int have_cert;                      /* openssl made them */

typedef struct tls_sink {
  weft_event_t done; /* set once the handler has read to the end */
  char *buf;         /* what the server received */
  size_t len;
  int rc; /* the last read's result: 0 at a clean end */
} tls_sink_t;

static void tls_sink_handler(weft_stream_t *s, void *arg) {
  tls_sink_t *k = arg;
  size_t cap = FILE_SIZE + 4096;
  int n = WEFT_ENOMEM;
  k->buf = malloc(cap);
  CHECK(k->buf != NULL);
  CHECK_EQ(weft_stream_is_tls(s), 1);
  while (k->buf && k->len < cap &&
         (n = weft_stream_read(s, k->buf + k->len, cap - k->len)) > 0)
    k->len += (size_t)n;
  k->rc = k->len < cap ? n : 0;
  CHECK_OK(weft_event_set(&k->done));
}

static void *tls_body(void *arg) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *sctx = NULL, *cctx = NULL;
  weft_server_opts_t so;
  weft_stream_opts_t co;
  weft_server_t *srv = NULL;
  weft_stream_t *s = NULL;
  weft_file_t *f = NULL;
  tls_sink_t k;
  size_t sent = 0;
  (void)arg;

  memset(&k, 0, sizeof k);
  CHECK_OK(weft_event_init(&k.done));
  weft_tls_opts_init(&o);
  o.server = 1;
  o.cert_file = cert_path;
  o.key_file = key_path;
  CHECK_OK(weft_tls_ctx_new(&o, &sctx));
  weft_tls_opts_init(&o);
  o.insecure_no_verify = 1; /* a throw-away certificate */
  CHECK_OK(weft_tls_ctx_new(&o, &cctx));
  weft_server_opts_init(&so);
  so.workers = 1;
  so.stream.tls.ctx = sctx;
  CHECK_OK(weft_start_server(tls_sink_handler, &k, "127.0.0.1", 0, &so, &srv));
  weft_stream_opts_init(&co);
  co.tls.ctx = cctx;
  CHECK_OK(weft_open_connection("127.0.0.1", weft_server_port(srv), &co, &s));
  CHECK_EQ(weft_stream_is_tls(s), 1);
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &f));
  CHECK_OK(weft_stream_write(s, "HEAD", 4));
  CHECK_OK(weft_stream_sendfile(s, f, 3, 0, &sent));
  CHECK_EQ(sent, FILE_SIZE - 3);
  CHECK_OK(weft_stream_write(s, "TAIL", 4));
  CHECK_OK(weft_stream_close(s));
  CHECK_OK(weft_event_wait(&k.done));
  CHECK_OK(k.rc);
  CHECK_EQ(k.len, 4 + FILE_SIZE - 3 + 4);
  if (k.len == 4 + FILE_SIZE - 3 + 4) {
    CHECK(memcmp(k.buf, "HEAD", 4) == 0);
    CHECK(memcmp(k.buf + 4, content + 3, FILE_SIZE - 3) == 0);
    CHECK(memcmp(k.buf + 4 + FILE_SIZE - 3, "TAIL", 4) == 0);
  }
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));
  CHECK_OK(weft_file_free(f));
  CHECK_OK(weft_server_close(srv));
  CHECK_OK(weft_server_wait_closed(srv));
  CHECK_OK(weft_server_free(srv));
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  weft_event_destroy(&k.done);
  free(k.buf);
  return NULL;
}

static void test_roundtrip_tls(void **state) {
  (void)state;
  if (!weft_tls_available() || !have_cert)
    skip();
  run_in_weft(tls_body, NULL, 2);
}

/* ---- cancellation ------------------------------------------------------- */

static void *cancel_body(void *arg) {
  int unix_ = (int)(intptr_t)arg;
  peer_t p;
  weft_file_t *f = NULL;
  job_t j;

  peer_listen(&p, unix_);
  weft_stream_t *s = peer_connect(&p);
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &f));
  weft_task_t *t = job_start(&j, s, f, 0, 0);
  wait_blocked(&j);
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_RC(j.rc, WEFT_ECANCELED);
  CHECK(j.sent > 0 && j.sent < FILE_SIZE);
  /* The stream goes on: the next bytes follow the file's first j.sent. */
  CHECK_OK(weft_stream_write(s, "TAIL", 4));
  peer_start_reading(&p);
  CHECK_OK(weft_stream_close(s));
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));
  CHECK_OK(weft_file_free(f));
  peer_finish(&p);
  CHECK_EQ(p.len, j.sent + 4);
  if (p.len == j.sent + 4) {
    CHECK(memcmp(p.buf, content, j.sent) == 0);
    CHECK(memcmp(p.buf + j.sent, "TAIL", 4) == 0);
  }
  free(p.buf);
  return NULL;
}

static void test_cancel_tcp(void **state) {
  (void)state;
  run_in_weft(cancel_body, (void *)(intptr_t)0, 2);
}

static void test_cancel_unix(void **state) {
  (void)state;
  run_in_weft(cancel_body, (void *)(intptr_t)1, 2);
}

/* ---- the stream stops while the call is blocked ------------------------- */

static void *stopped_body(void *arg) {
  int how = (int)(intptr_t)arg; /* 0 close, 1 abort, 2 the peer's reset */
  peer_t p;
  weft_file_t *f = NULL;
  job_t j;

  peer_listen(&p, 0);
  weft_stream_t *s = peer_connect(&p);
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &f));
  weft_task_t *t = job_start(&j, s, f, 0, 0);
  wait_blocked(&j);
  if (how == 0) {
    CHECK_OK(weft_stream_close(s));
  } else if (how == 1) {
    CHECK_OK(weft_stream_abort(s));
  } else {
    struct linger lg = {1, 0};
    CHECK_OK(setsockopt(p.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(p.fd); /* RST */
    p.fd = -1;
  }
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  if (how < 2)
    CHECK_RC(j.rc, WEFT_EPIPE);
  else
    CHECK(j.rc == WEFT_ECONNRESET || j.rc == WEFT_EPIPE);
  CHECK(j.sent < FILE_SIZE);
  if (how == 2) {
    /* The error is the stream's: later writes get it too. */
    CHECK(weft_stream_write(s, "x", 1) < 0);
    CHECK_OK(weft_stream_close(s));
  }
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_RC(weft_stream_sendfile(s, f, 0, 1, NULL),
           how == 2 ? j.rc : WEFT_EPIPE);
  CHECK_OK(weft_stream_free(s));
  CHECK_OK(weft_file_free(f));
  if (p.fd >= 0) {
    peer_start_reading(&p);
    peer_finish(&p);
    free(p.buf);
  } else {
    close(p.lfd);
  }
  return NULL;
}

static void test_stream_stops(void **state) {
  (void)state;
  for (intptr_t how = 0; how < 3; how++)
    run_in_weft(stopped_body, (void *)how, 2);
}

/* ---- another runtime ---------------------------------------------------- */

typedef struct other {
  weft_stream_t *s; /* of the first runtime */
  weft_file_t *f;   /* of the first runtime */
} other_t;

/* In a second runtime: its own stream with the first's file, and the
 * first's stream with its own file, are both refused. */
static void *other_main(void *arg) {
  other_t *o = arg;
  peer_t p;
  weft_file_t *mine = NULL;
  size_t sent = 7;

  peer_listen(&p, 0);
  weft_stream_t *s = peer_connect(&p);
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &mine));
  CHECK_RC(weft_stream_sendfile(o->s, mine, 0, 0, &sent), WEFT_EOTHER_RUNTIME);
  CHECK_EQ(sent, 0);
  CHECK_RC(weft_stream_sendfile(s, o->f, 0, 0, &sent), WEFT_EOTHER_RUNTIME);
  CHECK_OK(weft_stream_sendfile(s, mine, 0, 10, &sent)); /* its own: fine */
  CHECK_EQ(sent, 10);
  CHECK_OK(weft_stream_free(s));
  CHECK_OK(weft_file_free(mine));
  peer_start_reading(&p);
  peer_finish(&p);
  CHECK_EQ(p.len, 10);
  free(p.buf);
  return NULL;
}

static void *other_thread(void *arg) {
  CHECK_OK(weft_run(other_main, arg, NULL, NULL));
  return NULL;
}

static void *join_thread(void *arg) {
  pthread_join(*(pthread_t *)arg, NULL);
  return NULL;
}

static void *other_body(void *arg) {
  peer_t p;
  other_t o;
  pthread_t th;
  size_t sent = 0;
  (void)arg;

  peer_listen(&p, 0);
  o.s = peer_connect(&p);
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &o.f));
  CHECK_EQ(pthread_create(&th, NULL, other_thread, &o), 0);
  CHECK_OK(weft_to_thread(join_thread, &th, NULL));      /* not on a worker */
  CHECK_OK(weft_stream_sendfile(o.s, o.f, 0, 5, &sent)); /* still usable */
  CHECK_EQ(sent, 5);
  CHECK_OK(weft_stream_free(o.s));
  CHECK_OK(weft_file_free(o.f));
  peer_start_reading(&p);
  peer_finish(&p);
  CHECK_EQ(p.len, 5);
  free(p.buf);
  return NULL;
}

static void test_other_runtime(void **state) {
  (void)state;
  run_in_weft(other_body, NULL, 2);
}

/* ---- errors ------------------------------------------------------------- */

static void *self_cancel_main(void *arg) {
  job_t *j = arg;
  CHECK_EQ(weft_task_cancel(weft_task_current()), 1);
  j->rc = weft_stream_sendfile(j->s, j->f, 0, 0, &j->sent);
  return NULL;
}

static void *errors_body(void *arg) {
  peer_t p;
  weft_file_t *f = NULL, *wo = NULL, *d = NULL, *fifo = NULL;
  size_t sent = 7;
  char path[300];
  (void)arg;

  peer_listen(&p, 0);
  weft_stream_t *s = peer_connect(&p);
  CHECK_OK(weft_file_open(data_path, O_RDONLY, 0, &f));

  CHECK_RC(weft_stream_sendfile(NULL, f, 0, 0, &sent), WEFT_EINVAL);
  CHECK_EQ(sent, 0);
  CHECK_RC(weft_stream_sendfile(s, NULL, 0, 0, &sent), WEFT_EINVAL);
  CHECK_RC(weft_stream_sendfile(s, f, -1, 0, &sent), WEFT_EINVAL);
  CHECK_RC(weft_stream_sendfile(s, f, INT64_MAX, 1, &sent), WEFT_EINVAL);
  CHECK_RC(weft_stream_sendfile(s, f, 1, (size_t)INT64_MAX, &sent),
           WEFT_EINVAL);

  /* A file opened for writing only: the kernel's EBADF. */
  snprintf(path, sizeof path, "%s/wo", dir);
  CHECK_OK(weft_file_open(path, O_WRONLY | O_CREAT, 0600, &wo));
  CHECK_OK(weft_file_write(wo, "abc", 3, NULL));
  CHECK_RC(weft_stream_sendfile(s, wo, 0, 0, &sent), WEFT_EBADF);
  CHECK_EQ(sent, 0);
  CHECK_OK(weft_file_free(wo));
  CHECK_OK(weft_fs_unlink(path));
  /* A directory. */
  CHECK_OK(weft_file_open(dir, O_RDONLY | O_DIRECTORY, 0, &d));
  CHECK_RC(weft_stream_sendfile(s, d, 0, 0, &sent), WEFT_EISDIR);
  CHECK_OK(weft_file_free(d));
  /* A FIFO has no offsets (the copying path's pread). */
  snprintf(path, sizeof path, "%s/fifo", dir);
  CHECK_OK(mkfifo(path, 0600));
  CHECK_OK(weft_file_open(path, O_RDWR, 0, &fifo));
  CHECK_RC(weft_stream_sendfile(s, fifo, 0, 0, &sent), WEFT_ESPIPE);
  CHECK_OK(weft_file_free(fifo));
  CHECK_OK(weft_fs_unlink(path));

  /* A cancellation pending at the start: nothing happens. */
  {
    job_t j;
    weft_task_t *t = NULL;
    memset(&j, 0, sizeof j);
    j.s = s;
    j.f = f;
    CHECK_OK(weft_spawn(self_cancel_main, &j, &t));
    weft_task_await(t, NULL);
    weft_task_unref(t);
    CHECK_RC(j.rc, WEFT_ECANCELED);
    CHECK_EQ(j.sent, 0);
  }

  /* After write_eof and after close: WEFT_EPIPE. */
  CHECK_OK(weft_stream_write_eof(s));
  CHECK_RC(weft_stream_sendfile(s, f, 0, 0, &sent), WEFT_EPIPE);
  CHECK_OK(weft_stream_close(s));
  CHECK_RC(weft_stream_sendfile(s, f, 0, 0, &sent), WEFT_EPIPE);
  CHECK_EQ(sent, 0);
  CHECK_OK(weft_stream_free(s));
  CHECK_OK(weft_file_free(f));
  peer_start_reading(&p);
  peer_finish(&p);
  CHECK_EQ(p.len, 0); /* nothing of the file went out */
  free(p.buf);
  return NULL;
}

static void test_errors(void **state) {
  char buf[64];
  size_t sent = 7;
  (void)state;
  CHECK_RC(weft_stream_sendfile((weft_stream_t *)buf, (weft_file_t *)buf, 0, 0,
                                &sent),
           WEFT_ENOTTASK);
  CHECK_EQ(sent, 0);
  run_in_weft(errors_body, NULL, 2);
  harness_assert_clean();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_tcp),
      cmocka_unit_test(test_roundtrip_unix),
      cmocka_unit_test(test_roundtrip_tls),
      cmocka_unit_test(test_cancel_tcp),
      cmocka_unit_test(test_cancel_unix),
      cmocka_unit_test(test_stream_stops),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_other_runtime),
  };
  const char *tmp = getenv("TMPDIR");
  int rc;
  uint64_t seed = 42;
  FILE *fp;

  signal(SIGPIPE, SIG_IGN);
  snprintf(dir, sizeof dir, "%s/weft-sendfile.XXXXXX", tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(data_path, sizeof data_path, "%s/data", dir);
  content = malloc(FILE_SIZE);
  if (!content)
    return 1;
  for (size_t i = 0; i < FILE_SIZE; i++)
    content[i] = (char)harness_rand(&seed);
  fp = fopen(data_path, "wb");
  if (!fp || fwrite(content, 1, FILE_SIZE, fp) != FILE_SIZE || fclose(fp)) {
    perror(data_path);
    return 1;
  }
  snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
  snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
  {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -subj /CN=localhost -days 1 -keyout %s -out %s "
             ">/dev/null 2>&1",
             key_path, cert_path);
    have_cert = system(cmd) == 0;
  }
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(cert_path);
  unlink(key_path);
  unlink(data_path);
  {
    char p[300];
    snprintf(p, sizeof p, "%s/s", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/fifo", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/wo", dir);
    unlink(p);
  }
  rmdir(dir);
  free(content);
  return rc;
}
