/*
 * api_tls_hostile: a weft TLS server against peers that do not play by the
 * rules, written with plain sockets (and raw OpenSSL where a handshake is
 * needed first), each on the thread pool so that the runtime keeps running:
 *
 *  - bytes that are not TLS (an HTTP request);
 *  - a ClientHello cut in half and left open (ends at the handshake
 *    timeout);
 *  - a ClientHello dribbled one byte per 100 ms (ends at the timeout);
 *  - a record header claiming 64 KiB, and a handshake message claiming
 *    16 MiB (both end at once, with nothing allocated for them);
 *  - a full ClientHello and then a close;
 *  - a close without close_notify in the middle of the data.
 *
 * For each: the bad connection, and only it, ends; while it is pending and
 * after it, a well-behaved weft client is served; the handler never runs
 * for a failed handshake (weft_server_tls_failures() counts them); the
 * process's resident memory does not grow with the number of bad
 * connections (and the sanitizer builds check for leaks).
 */
#include "harness.h"
#include "tls_common.h"

#include <fcntl.h>

#include <openssl/bio.h>

/* The handshake timeout of the server under attack. */
#define HS_MS 400

/* A real ClientHello (for SNI localhost) made by OpenSSL into memory. */
static size_t client_hello(unsigned char *buf, size_t cap) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  int n = 0;

  if (ssl != NULL && rb != NULL && wb != NULL) {
    SSL_set_bio(ssl, rb, wb);
    rb = wb = NULL;
    SSL_set_tlsext_host_name(ssl, "localhost");
    (void)SSL_connect(ssl); /* wants to read: the hello is written */
    n = BIO_read(SSL_get_wbio(ssl), buf, (int)cap);
  }
  BIO_free(rb);
  BIO_free(wb);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return n > 0 ? (size_t)n : 0;
}

enum bad_kind {
  BAD_NOT_TLS,
  BAD_HALF_HELLO,
  BAD_DRIBBLE,
  BAD_BIG_RECORD,
  BAD_BIG_MESSAGE,
  BAD_HELLO_THEN_CLOSE,
};

typedef struct bad {
  int port;
  enum bad_kind kind;
  /* results */
  int connected;
  int ended;           /* the server closed the connection (EOF or reset) */
  double took_ms;      /* from connect to the end */
  size_t sent;         /* bytes sent */
  size_t got;          /* bytes received */
  unsigned char first; /* the first byte received */
} bad_t;

static int send_all(int fd, const void *p, size_t n) {
  const char *c = p;

  while (n > 0) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k <= 0)
      return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Read until the server ends the connection (1) or the socket's timeout
 * passes (0). */
static int wait_end(int fd, bad_t *b) {
  unsigned char buf[4096];

  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (b->got == 0)
        b->first = buf[0];
      b->got += (size_t)n;
      continue;
    }
    if (n == 0 || errno == ECONNRESET || errno == EPIPE)
      return 1;
    return 0; /* EAGAIN: the receive timeout */
  }
}

/* The bad client, run on the thread pool. */
static void *bad_client(void *arg) {
  bad_t *b = arg;
  unsigned char hello[2048];
  size_t hlen = client_hello(hello, sizeof hello);
  double t0 = harness_now_ms();
  int fd = raw_connect(b->port);

  if (fd < 0 || hlen < 100)
    return NULL;
  b->connected = 1;
  switch (b->kind) {
  case BAD_NOT_TLS: {
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (send_all(fd, req, sizeof req - 1) == 0)
      b->sent = sizeof req - 1;
    b->ended = wait_end(fd, b);
    break;
  }
  case BAD_HALF_HELLO:
    if (send_all(fd, hello, hlen / 2) == 0)
      b->sent = hlen / 2;
    b->ended = wait_end(fd, b);
    break;
  case BAD_DRIBBLE:
    /* One byte, then 100 ms in which the server may end it. */
    for (size_t i = 0; i < hlen; i++) {
      if (send(fd, hello + i, 1, MSG_NOSIGNAL) != 1) {
        b->ended = 1;
        break;
      }
      b->sent++;
      if (raw_readable(fd, 100)) {
        b->ended = wait_end(fd, b);
        break;
      }
    }
    break;
  case BAD_BIG_RECORD: {
    /* A handshake record of 65535 bytes: over TLS's 16 KiB + 2 KiB. */
    static const unsigned char hdr[] = {0x16, 0x03, 0x01, 0xff, 0xff};
    if (send_all(fd, hdr, sizeof hdr) == 0)
      b->sent = sizeof hdr;
    b->ended = wait_end(fd, b);
    break;
  }
  case BAD_BIG_MESSAGE: {
    /* A valid record holding a ClientHello header claiming 16 MiB, then
     * more records of it, as long as the server takes them. */
    unsigned char rec[5 + 16384];
    rec[0] = 0x16;
    rec[1] = 0x03;
    rec[2] = 0x01;
    rec[3] = 0x40;
    rec[4] = 0x00;
    memset(rec + 5, 0x41, sizeof rec - 5);
    rec[5] = 0x01; /* client_hello */
    rec[6] = 0xff;
    rec[7] = 0xff;
    rec[8] = 0xff; /* 16 MiB - 1 */
    for (int i = 0; i < 1100 && send_all(fd, rec, sizeof rec) == 0; i++) {
      b->sent += sizeof rec;
      rec[5] = rec[6] = rec[7] = rec[8] = 0x41;
      if (raw_readable(fd, 0))
        break;
    }
    b->ended = wait_end(fd, b);
    break;
  }
  case BAD_HELLO_THEN_CLOSE:
    if (send_all(fd, hello, hlen) == 0)
      b->sent = hlen;
    shutdown(fd, SHUT_WR);
    b->ended = wait_end(fd, b);
    break;
  }
  b->took_ms = harness_now_ms() - t0;
  close(fd);
  return NULL;
}

static void *bad_task(void *arg) {
  CHECK_OK(weft_to_thread(bad_client, arg, NULL));
  return NULL;
}

/* ---- the server under attack, and its good client ------------------------ */

typedef struct served {
  atomic_int calls;     /* handler runs */
  atomic_int truncated; /* reads that ended with WEFT_ETLS_TRUNCATED */
  atomic_int clean;     /* reads that ended with a clean end (0) */
  atomic_long got;      /* bytes read before that */
} served_t;

/* Echo; count how reads end. */
static void hostile_handler(weft_stream_t *s, void *arg) {
  served_t *sv = arg;
  char buf[4096];
  int n;

  atomic_fetch_add(&sv->calls, 1);
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0) {
    atomic_fetch_add(&sv->got, n);
    if (weft_stream_write(s, buf, (size_t)n) != 0)
      break;
  }
  if (n == WEFT_ETLS_TRUNCATED)
    atomic_fetch_add(&sv->truncated, 1);
  if (n == 0)
    atomic_fetch_add(&sv->clean, 1);
}

/* One connection of a well-behaved client: handshake, echo, close. */
static void good_round(weft_server_t *srv, weft_tls_ctx_t *cctx) {
  weft_stream_t *s = tls_connect(srv, cctx);

  if (s == NULL)
    return;
  echo_once(s, "still served");
  CHECK_OK(weft_stream_close(s));
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));
}

/* Resident set size in bytes. */
static long rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");

  if (f == NULL)
    return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

typedef struct attack {
  weft_server_t *srv;
  weft_tls_ctx_t *cctx;
  served_t *sv;
  int good;      /* good rounds so far (handler runs expected) */
  long failures; /* failed handshakes expected so far */
} attack_t;

/* Run one bad client; serve the good one while it is pending and after.
 * Returns its result. */
static bad_t run_bad(attack_t *a, enum bad_kind kind) {
  bad_t b;
  weft_task_t *t;

  memset(&b, 0, sizeof b);
  b.port = weft_server_port(a->srv);
  b.kind = kind;
  CHECK_OK(weft_spawn(bad_task, &b, &t));
  do {
    good_round(a->srv, a->cctx);
    a->good++;
  } while (!weft_task_done(t) && a->good < 10000);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  good_round(a->srv, a->cctx);
  a->good++;
  CHECK_EQ(b.connected, 1);
  printf("bad client %d: %s after %.0f ms, %zu bytes sent, %zu received\n",
         (int)kind, b.ended ? "ended by the server" : "NOT ended", b.took_ms,
         b.sent, b.got);
  return b;
}

static void expect_failure(attack_t *a, const char *what) {
  a->failures++;
  if (!HARNESS_WAIT(weft_server_tls_failures(a->srv) >= a->failures))
    harness_fail(__FILE__, __LINE__, "%s: no handshake failure counted", what);
  CHECK_EQ(weft_server_tls_failures(a->srv), a->failures);
}

/* A raw OpenSSL client that sends 7 bytes and then ends the TCP stream
 * without close_notify; it waits for the server to close. */
typedef struct truncator {
  int port;
  int handshake_ok;
  int ended;
} truncator_t;

static void *truncator(void *arg) {
  truncator_t *t = arg;
  raw_client_t rc;
  bad_t b;

  memset(&b, 0, sizeof b);
  if (raw_client_open(&rc, t->port) == 0) {
    t->handshake_ok = 1;
    if (SSL_write(rc.ssl, "partial", 7) == 7) {
      shutdown(rc.fd, SHUT_WR);
      t->ended = wait_end(rc.fd, &b);
    }
  }
  raw_client_close(&rc);
  return NULL;
}

static void *hostile_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER);
  served_t sv;
  attack_t a;
  bad_t b;

  (void)arg;
  memset(&sv, 0, sizeof sv);
  a.cctx = client_ctx();
  a.sv = &sv;
  a.good = 0;
  a.failures = 0;

  /* Servers with the default (60 s) handshake timeout: what ends these
   * connections promptly is the error, not the timer. */
  a.srv = tls_start(hostile_handler, &sv, sctx, 0, 0);
  CHECK_EQ(weft_server_tls_failures(a.srv), 0);

  b = run_bad(&a, BAD_NOT_TLS);
  CHECK_EQ(b.ended, 1);
  CHECK(b.took_ms < HARNESS_PROMPT_MS);
  CHECK(b.got == 0 || b.first == 0x15); /* nothing, or an alert record */
  expect_failure(&a, "not TLS");

  b = run_bad(&a, BAD_BIG_RECORD);
  CHECK_EQ(b.ended, 1);
  CHECK(b.took_ms < HARNESS_PROMPT_MS);
  CHECK(b.got == 0 || b.first == 0x15);
  expect_failure(&a, "a 64 KiB record");

  b = run_bad(&a, BAD_BIG_MESSAGE);
  CHECK_EQ(b.ended, 1);
  CHECK(b.took_ms < HARNESS_PROMPT_MS);
  /* Refused at its header, long before 16 MiB were taken in. */
  CHECK_LE(b.sent, 4 << 20);
  expect_failure(&a, "a 16 MiB handshake message");

  b = run_bad(&a, BAD_HELLO_THEN_CLOSE);
  CHECK_EQ(b.ended, 1);
  CHECK(b.took_ms < HARNESS_PROMPT_MS);
  expect_failure(&a, "a ClientHello, then a close");
  stop(a.srv);
  CHECK_EQ(atomic_load(&sv.calls), a.good);

  /* A short handshake timeout ends those that never finish. */
  a.failures = 0;
  a.srv = tls_start(hostile_handler, &sv, sctx, 0, HS_MS);
  b = run_bad(&a, BAD_HALF_HELLO);
  CHECK_EQ(b.ended, 1);
  CHECK(b.took_ms >= HS_MS / 2); /* the timer, not an error */
  CHECK(b.took_ms < HS_MS + HARNESS_PROMPT_MS);
  expect_failure(&a, "half a ClientHello");

  b = run_bad(&a, BAD_DRIBBLE);
  CHECK_EQ(b.ended, 1);
  CHECK(b.took_ms < HS_MS + HARNESS_PROMPT_MS);
  CHECK(b.sent < 200); /* far from the whole hello */
  expect_failure(&a, "a dribbled ClientHello");

  /* Several at once, all kinds, while the good client goes on. */
  {
    enum { N = 12 };
    bad_t bs[N];
    weft_task_t *ts[N];
    int i;

    for (i = 0; i < N; i++) {
      memset(&bs[i], 0, sizeof bs[i]);
      bs[i].port = weft_server_port(a.srv);
      bs[i].kind = (enum bad_kind)(i % 6);
      CHECK_OK(weft_spawn(bad_task, &bs[i], &ts[i]));
    }
    for (i = 0; i < 3; i++) {
      good_round(a.srv, a.cctx);
      a.good++;
    }
    CHECK_OK(weft_gather(ts, N, NULL));
    for (i = 0; i < N; i++) {
      CHECK_EQ(bs[i].ended, 1);
      weft_task_unref(ts[i]);
    }
    a.failures += N - 1;
    expect_failure(&a, "a crowd of bad clients");
  }

  /* Mid-stream, without close_notify: the handler ran (the handshake was
   * fine) and its read ends with WEFT_ETLS_TRUNCATED after the data. */
  {
    truncator_t tr = {weft_server_port(a.srv), 0, 0};

    atomic_store(&sv.truncated, 0);
    atomic_store(&sv.got, 0);
    CHECK_OK(weft_to_thread(truncator, &tr, NULL));
    CHECK_EQ(tr.handshake_ok, 1);
    CHECK_EQ(tr.ended, 1);
    a.good++; /* its handler ran */
    HARNESS_WAIT(atomic_load(&sv.truncated) == 1);
    CHECK_EQ(atomic_load(&sv.got), 7);
    good_round(a.srv, a.cctx);
    a.good++;
  }
  stop(a.srv);

  /* A server whose protocol frames itself (allow_truncation): the same
   * cut reads as a clean end. */
  {
    weft_tls_opts_t o;
    weft_tls_ctx_t *lctx;
    weft_server_t *lsrv;
    truncator_t tr = {0, 0, 0};

    weft_tls_opts_init(&o);
    o.allow_truncation = 1;
    lctx = server_ctx_ex(TLS_CERT_SERVER, &o);
    lsrv = tls_start(hostile_handler, &sv, lctx, 0, 0);
    tr.port = weft_server_port(lsrv);
    atomic_store(&sv.truncated, 0);
    atomic_store(&sv.clean, 0);
    atomic_store(&sv.got, 0);
    CHECK_OK(weft_to_thread(truncator, &tr, NULL));
    CHECK_EQ(tr.handshake_ok, 1);
    a.good++;
    HARNESS_WAIT(atomic_load(&sv.clean) == 1);
    CHECK_EQ(atomic_load(&sv.truncated), 0);
    CHECK_EQ(atomic_load(&sv.got), 7);
    stop(lsrv);
    weft_tls_ctx_free(lctx);
  }
  CHECK_EQ(atomic_load(&sv.calls), a.good);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(a.cctx);
  return NULL;
}

static void test_hostile(void **state) {
  (void)state;
  run_in_weft(hostile_main, NULL, 2);
}

/* ---- closing a server with handshakes pending -------------------------------
 */

static long accepted_total(weft_server_t *srv) {
  long n = 0;
  for (int i = 0; i < weft_worker_count(); i++)
    n += weft_server_accepted(srv, (unsigned)i);
  return n;
}

/* A bad client that the runtime's shutdown may cancel while it runs. */
static void *bad_task_at_shutdown(void *arg) {
  int rc = weft_to_thread(bad_client, arg, NULL);
  CHECK(rc == 0 || rc == WEFT_ECANCELED);
  return NULL;
}

/* Static: in the shutdown variant the clients, on the thread pool, outlive
 * the task that started them. */
#define N_PENDING 4
static bad_t pending_bad[N_PENDING];
static served_t pending_sv;

static void *pending_main(void *arg) {
  enum { N = N_PENDING };
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER);
  served_t *svp = &pending_sv;
  bad_t *b = pending_bad;
  weft_server_t *srv;
  weft_task_t *t[N];
  double t0;
  int i;

  memset(svp, 0, sizeof *svp);
  /* The default handshake timeout (60 s): only the close can end these. */
  srv = tls_start(hostile_handler, svp, sctx, 0, 0);
  for (i = 0; i < N; i++) {
    memset(&b[i], 0, sizeof b[i]);
    b[i].port = weft_server_port(srv);
    b[i].kind = BAD_HALF_HELLO;
    CHECK_OK(weft_spawn(arg != NULL ? bad_task_at_shutdown : bad_task, &b[i],
                        &t[i]));
  }
  HARNESS_WAIT(accepted_total(srv) == N);
  if (arg != NULL) {
    /* Leave them to weft_run()'s shutdown (LSan checks what it frees). */
    for (i = 0; i < N; i++)
      weft_task_unref(t[i]);
    weft_tls_ctx_free(sctx);
    return NULL;
  }
  t0 = harness_now_ms();
  stop(srv); /* close, abort the clients, wait until all are closed */
  CHECK(harness_now_ms() - t0 < HARNESS_PROMPT_MS);
  CHECK_OK(weft_gather(t, N, NULL));
  for (i = 0; i < N; i++) {
    CHECK_EQ(b[i].ended, 1);
    CHECK(b[i].took_ms < HARNESS_PROMPT_MS + HARNESS_WAIT_MS);
    weft_task_unref(t[i]);
  }
  CHECK_EQ(atomic_load(&svp->calls), 0);
  weft_tls_ctx_free(sctx);
  return NULL;
}

static void test_close_with_pending_handshakes(void **state) {
  (void)state;
  run_in_weft(pending_main, NULL, 2);
  /* And the runtime's end with them pending: weft_run() returns. (The bad
   * clients, blocked on the thread pool, end when the sockets close.) */
  run_in_weft(pending_main, (void *)1, 2);
  for (int i = 0; i < N_PENDING; i++)
    assert_int_equal(pending_bad[i].ended, 1);
  assert_int_equal(atomic_load(&pending_sv.calls), 0);
}

/* ---- memory does not grow with bad connections ------------------------------
 */

typedef struct churn {
  int port;
  int n;
  int ended; /* connections the server ended */
} churn_t;

/* n connections in turn, each sending a ClientHello with its last byte
 * flipped or a record of garbage, then its end of stream: each fails. */
static void *churn_client(void *arg) {
  churn_t *c = arg;
  unsigned char hello[2048];
  size_t hlen = client_hello(hello, sizeof hello);

  for (int i = 0; i < c->n; i++) {
    bad_t b;
    int fd = raw_connect(c->port);

    if (fd < 0)
      continue;
    memset(&b, 0, sizeof b);
    /* A proper start, then a corrupt record: parsed, then refused. */
    if (i % 2 == 0 && hlen > 0) {
      hello[hlen - 1] ^= 0xff;
      (void)send_all(fd, hello, hlen);
      hello[hlen - 1] ^= 0xff;
    } else {
      (void)send_all(fd, "\x16\x03\x01\x00\x05garbage", 12);
    }
    shutdown(fd, SHUT_WR);
    c->ended += wait_end(fd, &b);
    close(fd);
  }
  return NULL;
}

static void *memory_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  served_t sv;
  weft_server_t *srv;
  churn_t c;
  long before, after;
  int rounds = HARNESS_SIZE(600, 100, 150);

  (void)arg;
  memset(&sv, 0, sizeof sv);
  srv = tls_start(hostile_handler, &sv, sctx, 0, 0);
  /* Warm up: the allocator's arenas, OpenSSL's tables, the pools. */
  c.port = weft_server_port(srv);
  c.n = rounds / 3;
  c.ended = 0;
  CHECK_OK(weft_to_thread(churn_client, &c, NULL));
  good_round(srv, cctx);
  before = rss_bytes();
  c.n = rounds;
  c.ended = 0;
  CHECK_OK(weft_to_thread(churn_client, &c, NULL));
  CHECK_EQ(c.ended, rounds);
  good_round(srv, cctx);
  after = rss_bytes();
  printf("memory: %ld KiB resident before %d bad connections, %ld KiB after\n",
         before / 1024, rounds, after / 1024);
  /* 16 KiB a connection would be 9 MiB here: a leak of a buffer or of an
   * SSL object per connection shows. */
  CHECK(before > 0 && after > 0);
#if defined(WEFT_SANITIZE_ADDRESS) || defined(WEFT_SANITIZE_THREAD)
  /* ASan's quarantine holds freed memory back on purpose, TSan's shadow
   * grows with it: resident memory says nothing there. LeakSanitizer
   * checks for leaks instead. */
#else
  CHECK_LE(after - before, 4L << 20);
#endif
  HARNESS_WAIT(weft_server_tls_failures(srv) >= rounds / 3 + rounds);
  stop(srv);
  CHECK_EQ(atomic_load(&sv.calls), 2);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_memory_bounded(void **state) {
  (void)state;
  run_in_weft(memory_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_close_with_pending_handshakes),
      cmocka_unit_test(test_memory_bounded),
  };

  return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
