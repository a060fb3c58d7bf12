/*
 * stress_stream_load: many concurrent connections through a server on every
 * worker, each echoing a random payload of 1 B to 1 MiB (log-uniform sizes)
 * with a checksum compared end to end. Each client writes with drain in one
 * task while it reads the echo back in another, then half-closes and
 * expects the server's end of stream. Sanitizer builds use fewer
 * connections and smaller payloads (HARNESS_SIZE).
 */
#include "harness.h"

#define NCONN HARNESS_SIZE(1000, 200, 500)
#define MAX_SHIFT HARNESS_SIZE(20, 17, 19) /* payloads up to 2^shift bytes */

typedef struct client {
  int port;
  uint64_t seed;
  size_t len;
  uint64_t sum_sent;
  uint64_t sum_got;
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

static void echo_handler(weft_stream_t *s, void *arg) {
  char buf[64 * 1024];
  int n;

  (void)arg;
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
    size_t n = sd->len - off < 32768 ? sd->len - off : 32768;
    CHECK_OK(weft_stream_write(sd->s, sd->data + off, n));
    CHECK_OK(weft_stream_drain(sd->s));
    off += n;
  }
  CHECK_OK(weft_stream_write_eof(sd->s));
  return NULL;
}

static void *client_task(void *arg) {
  client_t *c = arg;
  weft_stream_t *s = NULL;
  unsigned char *out, *in;
  weft_task_t *t;
  size_t got = 0;
  char tail[8];

  out = malloc(c->len);
  in = malloc(c->len);
  CHECK(out && in);
  if (!out || !in)
    goto done;
  for (size_t i = 0; i < c->len; i++)
    out[i] = (unsigned char)(harness_rand(&c->seed) >> 56);
  c->sum_sent = fnv(0xcbf29ce484222325ull, out, c->len);
  CHECK_OK(weft_open_connection("127.0.0.1", c->port, NULL, &s));
  if (!s)
    goto done;
  sender_t sd = {s, out, c->len};
  CHECK_OK(weft_spawn(send_task, &sd, &t));
  CHECK_OK(weft_stream_readexactly(s, in, c->len, &got));
  CHECK_EQ(got, c->len);
  c->sum_got = fnv(0xcbf29ce484222325ull, in, got);
  CHECK_RC(weft_stream_read(s, tail, sizeof tail), 0); /* server's EOF */
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_stream_close(s));
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));
  c->ok = c->sum_got == c->sum_sent;
done:
  free(out);
  free(in);
  return NULL;
}

static void *load_main(void *arg) {
  weft_server_opts_t so;
  weft_server_t *srv;
  weft_task_t **t;
  client_t *c;
  uint64_t rng = 42;
  long total = 0;
  int i, good = 0, workers = weft_worker_count();

  (void)arg;
  weft_server_opts_init(&so);
  so.backlog = 4096;
  CHECK_OK(weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &so, &srv));
  c = calloc(NCONN, sizeof *c);
  t = calloc(NCONN, sizeof *t);
  for (i = 0; i < NCONN; i++) {
    unsigned shift = (unsigned)harness_rand_range(&rng, 0, MAX_SHIFT);
    c[i].port = weft_server_port(srv);
    c[i].seed = harness_rand(&rng);
    c[i].len = (size_t)harness_rand_range(&rng, 1, (uint64_t)1 << shift);
    CHECK_OK(weft_spawn(client_task, &c[i], &t[i]));
  }
  CHECK_OK(weft_gather_all(t, NCONN, NULL, NULL));
  for (i = 0; i < NCONN; i++) {
    good += c[i].ok;
    weft_task_unref(t[i]);
  }
  CHECK_EQ(good, NCONN);
  for (i = 0; i < workers; i++)
    total += weft_server_accepted(srv, (unsigned)i);
  CHECK_EQ(total, NCONN);
  /* Every worker accepted some (SO_REUSEPORT spreads them). */
  for (i = 0; i < workers; i++)
    CHECK(weft_server_accepted(srv, (unsigned)i) > 0);
  CHECK_OK(weft_server_close(srv));
  CHECK_OK(weft_server_wait_closed(srv));
  CHECK_OK(weft_server_free(srv));
  free(c);
  free(t);
  return NULL;
}

static void test_many_connections(void **state) {
  double t0 = harness_now_ms();

  (void)state;
  run_in_weft(load_main, NULL, 2);
  fprintf(stderr, "%d connections echoed in %.0f ms\n", NCONN,
          harness_now_ms() - t0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_connections),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
