/*
 * stress_tls_load: 1,000 TLS handshakes at once (fewer under the
 * sanitizers) through a server on every worker, each client then echoing a
 * payload of random size with its checksum compared end to end, half-
 * closing and expecting the server's clean end of stream. Among them, bad
 * clients (garbage, or half a ClientHello left open until the server's
 * handshake timeout) end only their own connections: every good client is
 * served, the handler runs exactly once per good client, and the server
 * counts one handshake failure per bad one.
 */
#include "harness.h"
#include "tls_common.h"

#define NCONN HARNESS_SIZE(1000, 100, 250)
#define NBAD (NCONN / 10)
/* The server's handshake timeout: what ends the bad clients that stop
 * mid-hello, and far more than a good one needs even when hundreds
 * handshake at once on a loaded machine under a sanitizer. */
#define HS_MS (8000 * HARNESS_SLOWDOWN)

typedef struct client {
  weft_server_t *srv;
  weft_tls_ctx_t *ctx;
  uint64_t seed;
  int ok;
} client_t;

/* FNV-1a over a buffer, continuing from h. */
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static void load_handler(weft_stream_t *s, void *arg) {
  char buf[16 * 1024];
  int n;

  atomic_fetch_add((atomic_int *)arg, 1);
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0) {
    if (weft_stream_write(s, buf, (size_t)n) != 0 || weft_stream_drain(s) != 0)
      break;
  }
  CHECK_EQ(n, 0);
}

typedef struct sender {
  weft_stream_t *s;
  const unsigned char *data;
  size_t len;
} sender_t;

static void *send_task(void *arg) {
  sender_t *sd = arg;
  size_t off = 0;

  while (off < sd->len) {
    size_t n = sd->len - off < 16384 ? sd->len - off : 16384;
    CHECK_OK(weft_stream_write(sd->s, sd->data + off, n));
    CHECK_OK(weft_stream_drain(sd->s));
    off += n;
  }
  CHECK_OK(weft_stream_write_eof(sd->s));
  return NULL;
}

static void *client_task(void *arg) {
  client_t *c = arg;
  uint64_t st = c->seed;
  size_t len = (size_t)harness_rand_range(&st, 1, 64 * 1024), got = 0;
  unsigned char *data = malloc(len), *back = malloc(len + 1);
  weft_stream_t *s = NULL;
  sender_t sd;
  weft_task_t *t;
  int n;

  if (data == NULL || back == NULL) {
    CHECK(!"malloc");
    goto out;
  }
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char)harness_rand(&st);
  CHECK_OK(tls_connect_rc(c->srv, c->ctx, "localhost", &s));
  if (s == NULL)
    goto out;
  sd.s = s;
  sd.data = data;
  sd.len = len;
  CHECK_OK(weft_spawn(send_task, &sd, &t));
  while (got <= len && (n = weft_stream_read(s, back + got, len + 1 - got)) > 0)
    got += (size_t)n;
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  c->ok = got == len && fnv(14695981039346656037ull, back, got) ==
                            fnv(14695981039346656037ull, data, len);
  CHECK_OK(weft_stream_free(s));
out:
  free(data);
  free(back);
  return NULL;
}

/* A bad client on the thread pool: garbage (i even) or half a ClientHello
 * left open (i odd); waits until the server ends it. */
typedef struct bad {
  int port;
  int i;
  int ended;
} bad_t;

static void *bad_client(void *arg) {
  bad_t *b = arg;
  static const unsigned char hello_start[] = {
      0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03};
  char buf[256];
  int fd = raw_connect(b->port);
  ssize_t n;

  if (fd < 0)
    return NULL;
  if (b->i % 2 == 0)
    (void)send(fd, "\x00\x01garbage garbage", 17, MSG_NOSIGNAL);
  else
    (void)send(fd, hello_start, sizeof hello_start, MSG_NOSIGNAL);
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
  }
  b->ended = n == 0 || errno == ECONNRESET;
  close(fd);
  return NULL;
}

static void *bad_task(void *arg) {
  CHECK_OK(weft_to_thread(bad_client, arg, NULL));
  return NULL;
}

static void *load_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  weft_server_opts_t so;
  weft_server_t *srv = NULL;
  atomic_int calls = 0;
  client_t *c = calloc(NCONN, sizeof *c);
  bad_t *b = calloc(NBAD, sizeof *b);
  weft_task_t **t = calloc(NCONN + NBAD, sizeof *t);
  int i, nb, nc, good = 0, ended = 0;
  double t0;

  (void)arg;
  CHECK(c != NULL && b != NULL && t != NULL);
  weft_server_opts_init(&so);
  so.backlog = 4096;
  so.stream.tls.ctx = sctx;
  so.stream.tls.handshake_timeout_ms = HS_MS;
  CHECK_OK(weft_start_server(load_handler, &calls, "127.0.0.1", 0, &so, &srv));
  t0 = harness_now_ms();
  for (i = 0, nb = 0, nc = 0; i < NCONN + NBAD; i++) {
    if (i % 11 == 10 && nb < NBAD) {
      bad_t *bb = &b[nb++];
      bb->port = weft_server_port(srv);
      bb->i = nb;
      CHECK_OK(weft_spawn(bad_task, bb, &t[i]));
    } else if (nc < NCONN) {
      client_t *cc = &c[nc++];
      cc->srv = srv;
      cc->ctx = cctx;
      cc->seed = 0x9e3779b9ull * (uint64_t)(i + 1);
      CHECK_OK(weft_spawn(client_task, cc, &t[i]));
    } else {
      bad_t *bb = &b[nb++];
      bb->port = weft_server_port(srv);
      bb->i = nb;
      CHECK_OK(weft_spawn(bad_task, bb, &t[i]));
    }
  }
  CHECK_OK(weft_gather_all(t, NCONN + NBAD, NULL, NULL));
  for (i = 0; i < NCONN + NBAD; i++)
    weft_task_unref(t[i]);
  for (i = 0; i < NCONN; i++)
    good += c[i].ok;
  for (i = 0; i < NBAD; i++)
    ended += b[i].ended;
  printf("%d of %d clients served, %d of %d bad ones ended, in %.0f ms\n", good,
         NCONN, ended, NBAD, harness_now_ms() - t0);
  CHECK_EQ(good, NCONN);
  CHECK_EQ(ended, NBAD);
  HARNESS_WAIT(weft_server_tls_failures(srv) >= NBAD);
  CHECK_EQ(weft_server_tls_failures(srv), NBAD);
  stop(srv);
  CHECK_EQ(atomic_load(&calls), NCONN);
  free(c);
  free(b);
  free(t);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_load(void **state) {
  (void)state;
  run_in_weft(load_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load),
  };

  /* The bad clients block on the thread pool, half of them until the
   * server's handshake timeout: give them threads enough to run at once
   * (libuv reads this once, when the pool starts). */
  setenv("UV_THREADPOOL_SIZE", "128", 0);
  return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
