/*
 * site_http_test.c: examples/site over real sockets.
 *
 *     site_http_test PATH-TO-SITE
 *
 * Starts site on a free port with a small site (200 pages, more errors and
 * hangs than the default so that every kind shows up), checks its answers
 * with a plain blocking socket client against site_model.c's predictions:
 * statuses, bodies, redirects, HEAD, 405, 400, Connection: close, pipelined
 * and byte-by-byte requests, slow and hung pages; crawls it over HTTP with
 * the resolver of site_test_url.h and compares what it fetched with
 * site_reach_compute(); then stops it with SIGTERM while connections are
 * still open (one of them on a hung page) and checks that it exits 0 and
 * that its per-worker request counts add up to the responses received.
 *
 * The tests run in order and share the server.
 */
#define _GNU_SOURCE /* memmem */

#include "site_http_cases.h"
#include "site_model.h"
#include "site_test_url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define PAGES 200
#define SEED 5
#define SLOW_MS 100
#define HANG_WAIT_MS 300 /* how long the client waits before giving up */
#define WORKERS 2

static const char *site_path;
static pid_t server_pid;
static FILE *server_out; /* the server's stdout */
static int port;
static char base[64];
static site_model_t model;
static long responses;   /* complete responses received, all tests */
static int hung_fd = -1; /* a connection left waiting on a hung page */

/* ------------------------------------------------------------------------ */
/* A blocking HTTP/1.1 client                                                */

typedef struct client {
  int fd;
  size_t len;      /* bytes in buf */
  char buf[65536]; /* received, not yet consumed */
} client_t;

typedef struct response {
  int status;
  long content_length; /* -1 when absent */
  int close;           /* "Connection: close" */
  char location[256];
  char allow[64];
  size_t body_len;
  char body[16384];
} response_t;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_open(client_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(c->fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  c->len = 0;
}

static void client_close(client_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

static void send_bytes(client_t *c, const char *s, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
    assert_true(w > 0);
    off += (size_t)w;
  }
}

static void send_str(client_t *c, const char *s) {
  send_bytes(c, s, strlen(s));
}

/* Receive more bytes, waiting at most ms. Returns the count, 0 at end of
 * stream, -1 on timeout. */
static int fill(client_t *c, int ms) {
  struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
  int rc = poll(&pfd, 1, ms);
  if (rc == 0)
    return -1;
  assert_true(rc > 0);
  assert_true(c->len < sizeof(c->buf));
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
  if (n < 0 && errno == ECONNRESET)
    return 0;
  assert_true(n >= 0);
  c->len += (size_t)n;
  return (int)n;
}

static void consume(client_t *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

/* Case-insensitive "Name: value" lookup within the header block. */
static const char *header(const char *head, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
      const char *v = p + 3 + nl;
      while (*v == ' ')
        v++;
      return v;
    }
  }
  return NULL;
}

static void copy_header(char *dst, size_t cap, const char *v) {
  size_t n = v ? strcspn(v, "\r") : 0;
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, v ? v : "", n);
  dst[n] = 0;
}

/* Read one response (without a body for HEAD), waiting at most ms for
 * each part. Returns 0, or -1 on timeout or end of stream first. */
static int read_response(client_t *c, response_t *r, int head_request, int ms) {
  char *end;
  while (!(c->len >= 4 && (end = memmem(c->buf, c->len, "\r\n\r\n", 4)))) {
    if (fill(c, ms) <= 0)
      return -1;
  }
  size_t hlen = (size_t)(end - c->buf) + 4;
  char head[4096];
  assert_true(hlen < sizeof(head));
  memcpy(head, c->buf, hlen);
  head[hlen] = 0;
  assert_int_equal(strncmp(head, "HTTP/1.1 ", 9), 0);
  r->status = atoi(head + 9);
  const char *cl = header(head, "Content-Length");
  assert_non_null(cl); /* on every response */
  r->content_length = atol(cl);
  const char *conn = header(head, "Connection");
  r->close = conn && strncasecmp(conn, "close", 5) == 0;
  copy_header(r->location, sizeof(r->location), header(head, "Location"));
  copy_header(r->allow, sizeof(r->allow), header(head, "Allow"));
  consume(c, hlen);
  r->body_len = head_request ? 0 : (size_t)r->content_length;
  assert_true(r->body_len < sizeof(r->body));
  while (c->len < r->body_len) {
    if (fill(c, ms) <= 0)
      return -1;
  }
  memcpy(r->body, c->buf, r->body_len);
  r->body[r->body_len] = 0;
  consume(c, r->body_len);
  responses++;
  return 0;
}

/* Wait for the server to close the connection: no more bytes, then EOF. */
static void expect_eof(client_t *c) {
  assert_int_equal(c->len, 0);
  assert_int_equal(fill(c, 5000), 0);
}

static void get(client_t *c, const char *method, const char *target,
                const char *extra) {
  char req[1024];
  int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
                   method, target, base + 7, extra ? extra : "");
  assert_true(n > 0 && n < (int)sizeof(req));
  send_str(c, req);
}

/* Check a response against the model's prediction for page n. */
static void check_page(const response_t *r, uint64_t n, int head_request) {
  static char want[32768];
  assert_int_equal(r->status, site_page_status(&model, n));
  size_t len = site_page_body(&model, n, base, want, sizeof(want));
  assert_true(len > 0);
  assert_int_equal(r->content_length, (long)len);
  if (!head_request) {
    assert_int_equal(r->body_len, len);
    assert_memory_equal(r->body, want, len);
  }
  if (r->status == 301 || r->status == 302) {
    char loc[SITE_HREF_MAX];
    assert_true(site_redirect_location(&model, n, base, loc, sizeof(loc)) > 0);
    assert_string_equal(r->location, loc);
  }
}

static uint64_t first_of_kind(site_kind_t k, uint64_t after) {
  for (uint64_t n = after; n < PAGES; n++)
    if (site_page_kind(&model, n) == k)
      return n;
  fail_msg("no page of kind %s", site_kind_name(k));
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */

static int start_server(void **state) {
  (void)state;
  int out[2];
  assert_int_equal(pipe(out), 0);
  char portarg[] = "0", pages[16], seed[16], slow[16];
  snprintf(pages, sizeof(pages), "%d", PAGES);
  snprintf(seed, sizeof(seed), "%d", SEED);
  snprintf(slow, sizeof(slow), "%d", SLOW_MS);
  char workers[16];
  snprintf(workers, sizeof(workers), "%d", WORKERS);
  server_pid = fork();
  assert_true(server_pid >= 0);
  if (server_pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(site_path, site_path, "--port", portarg, "--workers", workers,
          "--pages", pages, "--seed", seed, "--slow-ms", slow, "--error-share",
          "0.05", "--hang-share", "0.03", "--redirect-share", "0.08",
          "--slow-share", "0.05", "--missing-share", "0.05", (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  server_out = fdopen(out[0], "r");
  assert_non_null(server_out);
  char line[512];
  while (fgets(line, sizeof(line), server_out)) {
    fputs(line, stdout);
    if (sscanf(line, "Serving on 127.0.0.1:%d", &port) == 1)
      break;
  }
  assert_true(port > 0);
  snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
  site_params_t p;
  site_params_init(&p);
  p.pages = PAGES;
  p.seed = SEED;
  p.slow_ms = SLOW_MS;
  p.error_share = 0.05;
  p.hang_share = 0.03;
  p.redirect_share = 0.08;
  p.slow_share = 0.05;
  p.missing_share = 0.05;
  assert_int_equal(site_model_init(&model, &p), 0);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

/* Every page but the hung ones on one keep-alive connection, then the
 * paths that are not pages. */
static void test_pages(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  client_open(c);
  char path[SITE_PATH_MAX];
  int kinds[SITE_KIND_COUNT] = {0};
  for (uint64_t n = 0; n < PAGES + 5; n++) {
    site_kind_t k = site_page_kind(&model, n);
    kinds[k]++;
    if (k == SITE_HANG)
      continue;
    site_page_path(&model, n, path, sizeof(path));
    uint64_t t0 = now_ms();
    get(c, "GET", path, NULL);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    if (k == SITE_SLOW)
      assert_true(now_ms() - t0 >= SLOW_MS - 1);
    check_page(r, n, 0);
    assert_false(r->close);
  }
  for (int k = 0; k < SITE_KIND_COUNT; k++)
    assert_true(kinds[k] > 0);

  /* "/" is a redirect to page 0's canonical URL. */
  get(c, "GET", "/", NULL);
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  assert_int_equal(r->status, 301);
  site_page_path(&model, 0, path, sizeof(path));
  assert_string_equal(r->location, path);
  /* Queries and absolute-form targets reach the same page. */
  get(c, "GET", "/page/1?utm=x&y=2", NULL);
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 1, 0);
  char target[128];
  snprintf(target, sizeof(target), "%s/page/1", base);
  get(c, "GET", target, NULL);
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 1, 0);
  /* Not pages. */
  static const char *const missing[] = {
      "/page/",      "/page/01",  "/page/1/", "/page/abc", "/page/99999999999",
      "/index.html", "/page/1/x", "/pages/1"};
  for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
    get(c, "GET", missing[i], NULL);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    assert_int_equal(r->status, 404);
    assert_true(r->content_length > 0);
    assert_null(strstr(r->body, "<a "));
  }
  client_close(c);
  free(c);
  free(r);
}

/* HEAD: GET's headers, no body; the connection goes on. */
static void test_head(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  client_open(c);
  char path[SITE_PATH_MAX];
  uint64_t ids[] = {0, first_of_kind(SITE_REDIRECT, 0),
                    first_of_kind(SITE_ERROR_500, 0), PAGES + 1};
  for (size_t i = 0; i < 4; i++) {
    site_page_path(&model, ids[i], path, sizeof(path));
    get(c, "HEAD", path, NULL);
    assert_int_equal(read_response(c, r, 1, 5000), 0);
    check_page(r, ids[i], 1);
  }
  /* Nothing followed the headers: the next response starts cleanly. */
  get(c, "GET", "/page/0", NULL);
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 0, 0);
  assert_int_equal(c->len, 0);
  client_close(c);
  free(c);
  free(r);
}

/* Other methods: 405 with Allow, and the request body is skipped. */
static void test_method_not_allowed(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  client_open(c);
  get(c, "POST", "/page/0", "Content-Length: 7\r\n");
  send_str(c, "a=1&b=2");
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  assert_int_equal(r->status, 405);
  assert_string_equal(r->allow, "GET, HEAD");
  get(c, "DELETE", "/page/3", NULL);
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  assert_int_equal(r->status, 405);
  get(c, "GET", "/page/0", NULL);
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 0, 0);
  client_close(c);
  free(c);
  free(r);
}

/* A request the parser rejects: 400, then the server closes. */
static void test_bad_request(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  static const char *const bad[] = {
      "GARBAGE\r\n\r\n", "GET /page/0 HTTP/9.9x\r\n\r\n",
      "GET /page/0 HTTP/1.1\r\nContent-Length: zz\r\n\r\n",
      "GET /page/0 HTTP/1.1\r\nBad Header Without Colon\r\n\r\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    client_open(c);
    /* A good request first: its response comes before the 400. */
    get(c, "GET", "/page/0", NULL);
    send_str(c, bad[i]);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    check_page(r, 0, 0);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    assert_int_equal(r->status, 400);
    assert_true(r->close);
    expect_eof(c);
    client_close(c);
  }
  free(c);
  free(r);
}

/* Send q, with its padding. */
static void send_raw(client_t *c, const raw_request_t *q) {
  const char *pad = q->pad ? strstr(q->req, PAD) : NULL;
  if (!pad) {
    send_bytes(c, q->req, q->len);
    return;
  }
  char *a = malloc(q->pad);
  assert_non_null(a);
  memset(a, 'a', q->pad);
  send_bytes(c, q->req, (size_t)(pad - q->req));
  send_bytes(c, a, q->pad);
  send_str(c, pad + strlen(PAD));
  free(a);
}

/* Each rejected form after a good request: the good one's page, then the
 * status with "Connection: close", then end of stream. */
static void test_rejected(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
    const raw_request_t *q = &rejected[i];
    print_message("rejected: %s\n", q->name);
    client_open(c);
    get(c, "GET", "/page/0", NULL);
    send_raw(c, q);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    check_page(r, 0, 0);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    assert_int_equal(r->status, q->status);
    assert_true(r->close);
    expect_eof(c);
    client_close(c);
  }
  free(c);
  free(r);
}

/* Each accepted form on a connection of its own, followed by a GET: both
 * are answered, in order, and the connection stays open. */
static void test_accepted(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
    const raw_request_t *q = &accepted[i];
    print_message("accepted: %s\n", q->name);
    client_open(c);
    send_raw(c, q);
    get(c, "GET", "/page/1", NULL);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    assert_int_equal(r->status, q->status);
    assert_false(r->close);
    if (q->status == 200)
      check_page(r, 0, 0);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    check_page(r, 1, 0);
    assert_false(r->close);
    client_close(c);
  }
  free(c);
  free(r);
}

/* "Connection: close" and HTTP/1.0 close after the response; HTTP/1.0 with
 * keep-alive does not. */
static void test_connection_close(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  client_open(c);
  get(c, "GET", "/page/0", "Connection: close\r\n");
  get(c, "GET", "/page/0", NULL); /* after close: never answered */
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 0, 0);
  assert_true(r->close);
  expect_eof(c);
  client_close(c);

  client_open(c);
  send_str(c, "GET /page/0 HTTP/1.0\r\n\r\n");
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 0, 0);
  expect_eof(c);
  client_close(c);

  client_open(c);
  send_str(c, "GET /page/0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 0, 0);
  assert_false(r->close);
  send_str(c, "GET /page/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  check_page(r, 1, 0);
  client_close(c);

  /* Many short connections, so that every worker accepts some. */
  for (int i = 0; i < 40; i++) {
    client_open(c);
    get(c, "GET", "/page/2", "Connection: close\r\n");
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    check_page(r, 2, 0);
    expect_eof(c);
    client_close(c);
  }
  free(c);
  free(r);
}

/* Pipelining: many requests in one write, a slow page among them, answered
 * in order; then the same requests one byte per write. */
static void test_pipelining(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  uint64_t slow = first_of_kind(SITE_SLOW, 0);
  uint64_t ids[] = {1,
                    2,
                    slow,
                    first_of_kind(SITE_REDIRECT, 0),
                    PAGES + 7,
                    0,
                    first_of_kind(SITE_ERROR_500, 0),
                    3};
  size_t nids = sizeof(ids) / sizeof(ids[0]);
  char req[8192] = "", path[SITE_PATH_MAX];
  for (size_t i = 0; i < nids; i++) {
    site_page_path(&model, ids[i], path, sizeof(path));
    size_t l = strlen(req);
    snprintf(req + l, sizeof(req) - l, "%s %s HTTP/1.1\r\nHost: x\r\n\r\n",
             i == 1 ? "HEAD" : "GET", path);
  }
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    client_open(c);
    if (!bytewise) {
      send_str(c, req);
    } else {
      for (size_t i = 0; req[i]; i++) {
        char one[2] = {req[i], 0};
        send_str(c, one);
        if (i % 64 == 0) {
          struct timespec ts = {0, 200000};
          nanosleep(&ts, NULL);
        }
      }
    }
    for (size_t i = 0; i < nids; i++) {
      assert_int_equal(read_response(c, r, i == 1, 5000), 0);
      check_page(r, ids[i], i == 1);
    }
    assert_int_equal(c->len, 0);
    client_close(c);
  }
  free(c);
  free(r);
}

/* A pipeline being built: the requests' bytes, and for each request the
 * page it asks for, whether it is HEAD, and where it ends. */
typedef struct pipeline {
  char *buf;
  size_t len, cap;
  size_t n; /* requests */
  uint64_t ids[2048];
  int head[2048];
  size_t ends[2048];
} pipeline_t;

static void pipe_add(pipeline_t *pl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(pl->buf + pl->len, pl->cap - pl->len, fmt, ap);
  va_end(ap);
  assert_true(n > 0 && (size_t)n < pl->cap - pl->len);
  pl->len += (size_t)n;
}

/* Append request number i of a mixed pipeline: GET of page id, in one of
 * the forms by i (HEAD, a long field, a chunked body with an extension
 * and a trailer, a Content-Length body, bare LF line ends, a leading empty
 * line, plain). */
static void pipe_request(pipeline_t *pl, size_t i, uint64_t id, size_t pad) {
  char path[SITE_PATH_MAX];
  site_page_path(&model, id, path, sizeof(path));
  assert_true(pl->n < sizeof(pl->ids) / sizeof(pl->ids[0]));
  pl->ids[pl->n] = id;
  pl->head[pl->n] = i % 7 == 3;
  switch (i % 7) {
  case 3:
    pipe_add(pl, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    break;
  case 1:
    pipe_add(pl, "GET %s HTTP/1.1\r\nHost: x\r\nX-Pad: ", path);
    assert_true(pad < pl->cap - pl->len);
    memset(pl->buf + pl->len, 'p', pad);
    pl->len += pad;
    pipe_add(pl, "\r\n\r\n");
    break;
  case 2:
    pipe_add(pl,
             "GET %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5;x=\"y z\"\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n",
             path);
    break;
  case 4:
    pipe_add(pl,
             "GET %s HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
             "hello world",
             path);
    break;
  case 5:
    pipe_add(pl, "GET %s HTTP/1.1\nHost: x\n\n", path);
    break;
  case 6:
    pipe_add(pl, "\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    break;
  default:
    pipe_add(pl, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    break;
  }
  pl->ends[pl->n++] = pl->len;
}

static pipeline_t *pipe_new(size_t cap) {
  pipeline_t *pl = calloc(1, sizeof(*pl));
  assert_non_null(pl);
  pl->buf = malloc(cap);
  assert_non_null(pl->buf);
  pl->cap = cap;
  return pl;
}

static void pipe_free(pipeline_t *pl) {
  free(pl->buf);
  free(pl);
}

/* Page i of the pages that answer at once (no slow or hung page). */
static uint64_t fast_page(size_t i) {
  for (uint64_t n = i % (PAGES + 10);; n = (n + 1) % (PAGES + 10)) {
    site_kind_t k = site_page_kind(&model, n);
    if (k != SITE_SLOW && k != SITE_HANG)
      return n;
  }
}

/* Read and check the responses to requests [from, to) of pl. */
static void pipe_check(client_t *c, response_t *r, const pipeline_t *pl,
                       size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    assert_int_equal(read_response(c, r, pl->head[i], 5000), 0);
    check_page(r, pl->ids[i], pl->head[i]);
    assert_false(r->close);
  }
}

/* Sends a buffer on a thread of its own, so that the test reads the
 * responses while the requests are still going out. */
typedef struct sender {
  int fd;
  const char *buf;
  size_t len;
  int ok; /* everything was sent */
} sender_t;

static void *send_all(void *arg) {
  sender_t *s = arg;
  size_t off = 0;
  while (off < s->len) {
    ssize_t w = send(s->fd, s->buf + off, s->len - off, MSG_NOSIGNAL);
    if (w <= 0)
      return NULL;
    off += (size_t)w;
  }
  s->ok = 1;
  return NULL;
}

/* 1000 GETs in one write, all answered, in order; then 2000 requests of
 * every form, a seventh of them with a field of 5,000 bytes (so that heads
 * straddle the end of the server's 16 KiB buffer), sent while the
 * responses are read. */
static void test_pipelining_many(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  pipeline_t *pl = pipe_new(64 * 1024);
  char path[SITE_PATH_MAX];
  for (size_t i = 0; i < 1000; i++) {
    pl->ids[pl->n] = fast_page(i);
    site_page_path(&model, pl->ids[pl->n], path, sizeof(path));
    pipe_add(pl, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    pl->ends[pl->n++] = pl->len;
  }
  client_open(c);
  ssize_t w = send(c->fd, pl->buf, pl->len, MSG_NOSIGNAL);
  assert_true(w > 0);
  send_bytes(c, pl->buf + w, pl->len - (size_t)w); /* if the first was short */
  pipe_check(c, r, pl, 0, pl->n);
  assert_int_equal(c->len, 0);
  client_close(c);
  pipe_free(pl);

  pl = pipe_new(4 * 1024 * 1024);
  for (size_t i = 0; i < 2000; i++)
    pipe_request(pl, i, fast_page(i * 7), 5000);
  client_open(c);
  sender_t snd = {.fd = c->fd, .buf = pl->buf, .len = pl->len};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, send_all, &snd), 0);
  pipe_check(c, r, pl, 0, pl->n);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(snd.ok);
  assert_int_equal(c->len, 0);
  client_close(c);
  pipe_free(pl);
  free(c);
  free(r);
}

/* A pipeline of every form split in two writes at every byte: the
 * responses to the requests the first write completes come first, then
 * the rest's. */
static void test_pipelining_split(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  pipeline_t *pl = pipe_new(8192);
  for (size_t i = 0; i < 8; i++)
    pipe_request(pl, i, fast_page(i * 3), 40);
  for (size_t k = 1; k < pl->len; k++) {
    client_open(c);
    send_bytes(c, pl->buf, k);
    size_t done = 0;
    while (done < pl->n && pl->ends[done] <= k)
      done++;
    pipe_check(c, r, pl, 0, done);
    send_bytes(c, pl->buf + k, pl->len - k);
    pipe_check(c, r, pl, done, pl->n);
    assert_int_equal(c->len, 0);
    client_close(c);
  }
  pipe_free(pl);
  free(c);
  free(r);
}

/* A hung page answers nothing; the requests behind it wait with it. One
 * such connection stays open for the shutdown test. */
static void test_hang(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  uint64_t hang = first_of_kind(SITE_HANG, 0);
  char path[SITE_PATH_MAX];
  site_page_path(&model, hang, path, sizeof(path));
  for (int keep = 0; keep < 2; keep++) {
    client_open(c);
    get(c, "GET", "/page/0", NULL);
    get(c, "GET", path, NULL);
    get(c, "GET", "/page/1", NULL);
    assert_int_equal(read_response(c, r, 0, 5000), 0);
    check_page(r, 0, 0);
    assert_int_equal(read_response(c, r, 0, HANG_WAIT_MS), -1);
    assert_int_equal(c->len, 0);
    if (keep) {
      hung_fd = c->fd; /* closed after the server stopped */
      c->fd = -1;
    }
    client_close(c); /* the client gives up: the handler must end */
  }
  free(c);
  free(r);
}

/* Crawl the site over HTTP from "/", following the hrefs of the bodies and
 * the Location headers as a crawler would, each URL once; what it fetched
 * must be what site_reach_compute() predicts. */
static void test_crawl(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  enum { MAX_URLS = 4 * PAGES };
  static char urls[MAX_URLS][SITE_HREF_MAX];
  size_t nurls = 0, next = 0;
  snprintf(urls[nurls++], SITE_HREF_MAX, "/");
  unsigned char fetched[2 * PAGES] = {0};
  size_t by_kind[SITE_KIND_COUNT] = {0};
  client_open(c);
  while (next < nurls) {
    const char *url = urls[next++];
    get(c, "GET", url, NULL);
    int rc = read_response(c, r, 0, HANG_WAIT_MS + (int)SLOW_MS * 4);
    long long n = -1;
    if (strcmp(url, "/") != 0) {
      assert_int_equal(strncmp(url, "/page/", 6), 0);
      n = atoll(url + 6);
      assert_true(n >= 0 && n < 2 * PAGES);
      assert_false(fetched[n]);
      fetched[n] = 1;
      char canon[SITE_PATH_MAX];
      site_page_path(&model, (uint64_t)n, canon, sizeof(canon));
      assert_string_equal(url, canon);
    }
    if (rc != 0) { /* a hang: give up on it and on the connection */
      assert_true(n >= 0);
      by_kind[SITE_HANG]++;
      assert_int_equal(site_page_kind(&model, (uint64_t)n), SITE_HANG);
      client_close(c);
      client_open(c);
      continue;
    }
    if (n >= 0) {
      check_page(r, (uint64_t)n, 0);
      by_kind[site_page_kind(&model, (uint64_t)n)]++;
    }
    /* The references this response makes. */
    char refs[SITE_LINKS_MAX + 1][SITE_HREF_MAX];
    size_t nrefs = 0;
    if (r->status == 301 || r->status == 302) {
      assert_true(strlen(r->location) < SITE_HREF_MAX);
      memcpy(refs[nrefs++], r->location, strlen(r->location) + 1);
    } else if (r->status == 200) {
      for (const char *p = strstr(r->body, "<a href=\""); p;
           p = strstr(p, "<a href=\"")) {
        p += 9;
        size_t l = strcspn(p, "\"");
        assert_true(l < SITE_HREF_MAX && nrefs <= SITE_LINKS_MAX);
        memcpy(refs[nrefs], p, l);
        refs[nrefs++][l] = 0;
      }
    }
    for (size_t i = 0; i < nrefs; i++) {
      char abs[SITE_HREF_MAX];
      assert_int_equal(site_test_resolve(base, refs[i], abs, sizeof(abs)), 0);
      size_t j;
      for (j = 0; j < nurls && strcmp(urls[j], abs) != 0; j++)
        ;
      if (j == nurls) {
        assert_true(nurls < MAX_URLS);
        snprintf(urls[nurls++], SITE_HREF_MAX, "%s", abs);
      }
    }
  }
  client_close(c);

  site_reach_t reach;
  assert_int_equal(site_reach_compute(&model, &reach), 0);
  assert_int_equal(reach.universe, 2 * PAGES);
  assert_memory_equal(reach.seen, fetched, reach.universe);
  assert_int_equal(nurls, reach.total + 1); /* and "/" */
  for (int k = 0; k < SITE_KIND_COUNT; k++)
    assert_int_equal(by_kind[k], reach.by_kind[k]);
  print_message("crawl: %zu pages (%zu ok, %zu slow, %zu redirect, %zu 404, "
                "%zu 500, %zu hang)\n",
                reach.total, by_kind[SITE_OK], by_kind[SITE_SLOW],
                by_kind[SITE_REDIRECT], by_kind[SITE_NOT_FOUND],
                by_kind[SITE_ERROR_500], by_kind[SITE_HANG]);
  site_reach_free(&reach);
  free(c);
  free(r);
}

/* SIGTERM with an idle keep-alive connection and a hung one open: exit 0
 * within the grace period, per-worker counts that add up. */
static void test_shutdown(void **state) {
  (void)state;
  client_t *c = malloc(sizeof(*c));
  response_t *r = malloc(sizeof(*r));
  assert_non_null(c);
  assert_non_null(r);
  client_open(c);
  get(c, "GET", "/page/0", NULL);
  assert_int_equal(read_response(c, r, 0, 5000), 0);
  uint64_t t0 = now_ms();
  assert_int_equal(kill(server_pid, SIGTERM), 0);
  expect_eof(c); /* the idle connection is closed */
  client_close(c);
  long requests = 0;
  int workers_seen = 0, busy_workers = 0;
  char line[512];
  while (fgets(line, sizeof(line), server_out)) {
    fputs(line, stdout);
    int w;
    long req, conns;
    if (sscanf(line, "worker %d: %ld requests, %ld connections", &w, &req,
               &conns) == 3) {
      workers_seen++;
      requests += req;
      busy_workers += req > 0 && conns > 0;
    }
  }
  int status;
  assert_int_equal(waitpid(server_pid, &status, 0), server_pid);
  server_pid = 0;
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_true(now_ms() - t0 < 10000);
  assert_int_equal(workers_seen, WORKERS);
  assert_int_equal(busy_workers, WORKERS);
  assert_int_equal(requests, responses);
  if (hung_fd >= 0) {
    char b;
    assert_int_equal(recv(hung_fd, &b, 1, 0), 0); /* closed, unanswered */
    close(hung_fd);
  }
  fclose(server_out);
  free(c);
  free(r);
}

static int teardown(void **state) {
  (void)state;
  if (server_pid > 0) { /* a test failed before the shutdown test */
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: site_http_test PATH-TO-SITE\n");
    return 2;
  }
  site_path = argv[1];
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pages),
      cmocka_unit_test(test_head),
      cmocka_unit_test(test_method_not_allowed),
      cmocka_unit_test(test_bad_request),
      cmocka_unit_test(test_rejected),
      cmocka_unit_test(test_accepted),
      cmocka_unit_test(test_connection_close),
      cmocka_unit_test(test_pipelining),
      cmocka_unit_test(test_pipelining_many),
      cmocka_unit_test(test_pipelining_split),
      cmocka_unit_test(test_hang),
      cmocka_unit_test(test_crawl),
      cmocka_unit_test(test_shutdown),
  };
  return cmocka_run_group_tests(tests, start_server, teardown);
}
