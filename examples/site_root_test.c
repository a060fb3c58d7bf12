/*
 * site_root_test.c: examples/site --root DIR over real sockets.
 *
 *     site_root_test PATH-TO-SITE
 *
 * Builds a directory in a scratch place (files of a few types, a 3 MiB
 * file, a subdirectory with and one without index.html, symbolic links
 * that stay inside and that lead out, a FIFO, and a file outside the root
 * next to it), starts site --root on a free port and checks with a plain
 * blocking socket: 200s with exact bodies and Content-Types (the large
 * file sent by weft_stream_sendfile()), HEAD without a body, keep-alive
 * across requests and Connection: close; 403 for "..", encoded or not,
 * for links out of the root and for a FIFO and a directory without index;
 * 404 and 400. Then SIGTERM, and site must exit 0. The server is killed and
 * the directory removed whatever happened.
 */
#define _GNU_SOURCE /* mkdtemp, strcasestr */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define BIG_SIZE ((size_t)3 * 1024 * 1024 + 17)

static const char *site_path;
static pid_t server_pid = -1;
static int port;
static char top[128];  /* scratch: top/root is served, top/out is not */
static char root[160]; /* top/root */
static char *big;      /* the large file's bytes */

/* ---- the directory ------------------------------------------------------ */

static void put(const char *rel, const void *data, size_t n) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

static void mk(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  assert_int_equal(mkdir(p, 0700), 0);
}

static void link_to(const char *target, const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  assert_int_equal(symlink(target, p), 0);
}

/* rm -r top (the tree is ours: no links are followed). */
static void remove_tree(const char *dir) {
  static const char *const names[] = {
      "root/index.html", "root/a.txt",     "root/style.css",
      "root/app.js",     "root/data.json", "root/pic.png",
      "root/big.bin",    "root/good.txt",  "root/evil.txt",
      "root/evildir",    "root/fifo",      "root/sub/index.html",
      "root/sub/x.HTML", "out/secret.txt"};
  static const char *const dirs[] = {"root/sub", "root/noindex", "root", "out"};
  char p[512];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, dirs[i]);
    rmdir(p);
  }
  rmdir(dir);
}

/* ---- the server --------------------------------------------------------- */

static int start(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(top, sizeof top, "%s/weft-site-root.XXXXXX", tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(top));
  snprintf(root, sizeof root, "%s/root", top);
  mk("root");
  mk("root/sub");
  mk("root/noindex");
  mk("out");
  put("root/index.html", "<h1>home</h1>\n", 14);
  put("root/a.txt", "alpha\n", 6);
  put("root/style.css", "p{}", 3);
  put("root/app.js", "1;", 2);
  put("root/data.json", "{}", 2);
  put("root/pic.png", "\x89PNG", 4);
  put("root/sub/index.html", "<p>sub</p>", 10);
  put("root/sub/x.HTML", "X", 1);
  put("out/secret.txt", "secret\n", 7);
  big = malloc(BIG_SIZE);
  assert_non_null(big);
  for (size_t i = 0; i < BIG_SIZE; i++)
    big[i] = (char)(i * 2654435761u >> 13);
  put("root/big.bin", big, BIG_SIZE);
  link_to("a.txt", "root/good.txt");
  link_to("../out/secret.txt", "root/evil.txt");
  link_to("../out", "root/evildir");
  {
    char p[512];
    snprintf(p, sizeof p, "%s/root/fifo", top);
    assert_int_equal(mkfifo(p, 0600), 0);
  }

  int out[2];
  assert_int_equal(pipe(out), 0);
  server_pid = fork();
  assert_true(server_pid >= 0);
  if (server_pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(site_path, site_path, "--port", "0", "--workers", "2", "--quiet",
          "--root", root, (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  FILE *so = fdopen(out[0], "r");
  assert_non_null(so);
  char line[256];
  while (fgets(line, sizeof line, so))
    if (sscanf(line, "Serving on 127.0.0.1:%d", &port) == 1)
      break;
  fclose(so);
  assert_true(port > 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (server_pid > 0) {
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
  }
  remove_tree(top);
  free(big);
  return 0;
}

/* ---- a client ----------------------------------------------------------- */

typedef struct response {
  int status;
  char type[128];
  long long length; /* Content-Length, -1 if absent */
  int close;        /* Connection: close */
  char *body;       /* malloc'ed, length bytes (NULL for HEAD) */
} response_t;

static int connect_site(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  assert_true(fd >= 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void send_all(int fd, const char *s) {
  size_t n = strlen(s), off = 0;
  while (off < n) {
    ssize_t w = write(fd, s + off, n - off);
    assert_true(w > 0);
    off += (size_t)w;
  }
}

static void read_exact(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    assert_true(r > 0);
    got += (size_t)r;
  }
}

/* Read one response (the head byte by byte: nothing of the next is
 * consumed). */
static void read_response(int fd, response_t *r, int head_request) {
  char h[4096];
  size_t n = 0;
  memset(r, 0, sizeof *r);
  r->length = -1;
  while (n < 4 || memcmp(h + n - 4, "\r\n\r\n", 4) != 0) {
    assert_true(n < sizeof h - 1);
    read_exact(fd, h + n, 1);
    n++;
  }
  h[n] = '\0';
  assert_int_equal(sscanf(h, "HTTP/1.1 %d", &r->status), 1);
  const char *t = strcasestr(h, "\r\nContent-Type: ");
  if (t)
    sscanf(t + 16, "%127[^\r]", r->type);
  const char *l = strcasestr(h, "\r\nContent-Length: ");
  assert_non_null(l);
  r->length = atoll(l + 18);
  r->close = strcasestr(h, "\r\nConnection: close\r\n") != NULL;
  if (!head_request) {
    r->body = malloc((size_t)r->length + 1);
    assert_non_null(r->body);
    read_exact(fd, r->body, (size_t)r->length);
    r->body[r->length] = '\0';
  }
}

static void request(int fd, const char *method, const char *target,
                    const char *extra) {
  char q[1024];
  snprintf(q, sizeof q, "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n", method, target,
           extra ? extra : "");
  send_all(fd, q);
}

/* GET target on a connection of its own; checks status (and body, type). */
static void expect(const char *target, int status, const char *type,
                   const char *body, size_t blen) {
  response_t r;
  int fd = connect_site();
  request(fd, "GET", target, "Connection: close\r\n");
  read_response(fd, &r, 0);
  if (r.status != status)
    fail_msg("GET %s: %d, expected %d", target, r.status, status);
  if (type && strcmp(r.type, type) != 0)
    fail_msg("GET %s: type %s, expected %s", target, r.type, type);
  if (body) {
    assert_int_equal(r.length, blen);
    assert_memory_equal(r.body, body, blen);
  }
  assert_true(r.close);
  char c;
  assert_int_equal(read(fd, &c, 1), 0); /* closed after it */
  free(r.body);
  close(fd);
}

/* ---- tests -------------------------------------------------------------- */

static void test_files(void **state) {
  (void)state;
  expect("/", 200, "text/html; charset=utf-8", "<h1>home</h1>\n", 14);
  expect("/index.html", 200, "text/html; charset=utf-8", "<h1>home</h1>\n", 14);
  expect("/a.txt", 200, "text/plain; charset=utf-8", "alpha\n", 6);
  expect("/a.txt?x=1", 200, NULL, "alpha\n", 6);
  expect("/%61.txt", 200, NULL, "alpha\n", 6);
  expect("/style.css", 200, "text/css; charset=utf-8", "p{}", 3);
  expect("/app.js", 200, "text/javascript; charset=utf-8", "1;", 2);
  expect("/data.json", 200, "application/json", "{}", 2);
  expect("/pic.png", 200, "image/png", "\x89PNG", 4);
  expect("/sub/", 200, "text/html; charset=utf-8", "<p>sub</p>", 10);
  expect("/sub", 200, NULL, "<p>sub</p>", 10);
  expect("/sub/x.HTML", 200, "text/html; charset=utf-8", "X", 1);
  expect("/good.txt", 200, NULL, "alpha\n", 6); /* a link inside */
  expect("/big.bin", 200, "application/octet-stream", big, BIG_SIZE);
}

static void test_refused(void **state) {
  (void)state;
  expect("/../out/secret.txt", 403, NULL, NULL, 0);
  expect("/sub/../../out/secret.txt", 403, NULL, NULL, 0);
  expect("/%2e%2e/out/secret.txt", 403, NULL, NULL, 0);
  expect("/sub/%2E%2E/a.txt", 403, NULL, NULL, 0);
  expect("/evil.txt", 403, NULL, NULL, 0);           /* a link out */
  expect("/evildir/secret.txt", 403, NULL, NULL, 0); /* through one */
  expect("/fifo", 403, NULL, NULL, 0);
  expect("/noindex/", 403, NULL, NULL, 0);
  expect("/missing.txt", 404, NULL, NULL, 0);
  expect("/sub/missing/x", 404, NULL, NULL, 0);
  expect("/a.txt/x", 404, NULL, NULL, 0);
  expect("/a%00.txt", 400, NULL, NULL, 0);
  expect("/a%zz", 400, NULL, NULL, 0);
  expect("/a%2", 400, NULL, NULL, 0);
}

/* Keep-alive: HEAD, GETs of a small and the large file on one connection,
 * each response complete before the next. */
static void test_keep_alive(void **state) {
  (void)state;
  response_t r;
  int fd = connect_site();
  request(fd, "HEAD", "/big.bin", NULL);
  read_response(fd, &r, 1);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.length, BIG_SIZE);
  assert_false(r.close);
  request(fd, "GET", "/big.bin", NULL);
  read_response(fd, &r, 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.length, BIG_SIZE);
  assert_memory_equal(r.body, big, BIG_SIZE);
  free(r.body);
  request(fd, "GET", "/missing", NULL);
  read_response(fd, &r, 0);
  assert_int_equal(r.status, 404);
  free(r.body);
  request(fd, "GET", "/a.txt", "Connection: close\r\n");
  read_response(fd, &r, 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "alpha\n");
  assert_true(r.close);
  free(r.body);
  close(fd);
}

static void test_shutdown(void **state) {
  (void)state;
  int st;
  assert_int_equal(kill(server_pid, SIGTERM), 0);
  assert_int_equal(waitpid(server_pid, &st, 0), server_pid);
  server_pid = -1;
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: site_root_test PATH-TO-SITE\n");
    return 2;
  }
  site_path = argv[1];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_files),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_keep_alive),
      cmocka_unit_test(test_shutdown),
  };
  return cmocka_run_group_tests(tests, start, teardown);
}
