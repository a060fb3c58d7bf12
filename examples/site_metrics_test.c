/*
 * site_metrics_test.c: examples/site's GET /metrics over a real socket.
 *
 *     site_metrics_test PATH-TO-SITE
 *
 * Starts site on a free port with 2 workers, fetches /metrics (200,
 * Content-Type text/plain version 0.0.4, Content-Length = the body), checks
 * that every line parses as the Prometheus text format (# HELP / # TYPE
 * pairs, "name{labels} value" samples of the declared family), reads a few
 * figures, fetches some pages, fetches /metrics again and checks that the
 * counters moved (polls, tasks spawned and finished: each connection is a
 * handler task) and that the histogram's _count equals its +Inf bucket.
 * HEAD /metrics has the headers and no body. Then SIGTERM, and site must
 * exit 0; it is killed whatever happened.
 */
#define _GNU_SOURCE /* strcasestr */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *site_path;
static pid_t server_pid = -1;
static int port;

static int start(void **state) {
  (void)state;
  int out[2];
  assert_int_equal(pipe(out), 0);
  server_pid = fork();
  assert_true(server_pid >= 0);
  if (server_pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execl(site_path, site_path, "--port", "0", "--workers", "2", "--quiet",
          "--pages", "50", "--no-slow", (char *)NULL);
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
  return 0;
}

/* One request with Connection: close; the whole answer, read to the end
 * of stream (malloc'ed, NUL-terminated), and its length. */
static char *fetch(const char *method, const char *path, size_t *len) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  char req[256];
  int n = snprintf(req, sizeof req,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n",
                   method, path);
  assert_int_equal(write(fd, req, (size_t)n), n);
  size_t cap = 1 << 16, got = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  for (;;) {
    if (got + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    ssize_t r = read(fd, buf + got, cap - 1 - got);
    assert_true(r >= 0);
    if (r == 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  buf[got] = '\0';
  *len = got;
  return buf;
}

typedef struct figures {
  double workers, spawned, finished, polls, hist_count, hist_inf;
  int lines;
} figures_t;

/* Parse a Prometheus text body; fail on any malformed line. */
static void parse(char *body, figures_t *f) {
  char family[128] = "", helped[128] = "";
  int hist = 0;
  memset(f, 0, sizeof *f);
  for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
    f->lines++;
    if (strncmp(line, "# HELP ", 7) == 0) {
      assert_int_equal(sscanf(line + 7, "%127s", helped), 1);
      continue;
    }
    if (strncmp(line, "# TYPE ", 7) == 0) {
      char type[32];
      assert_int_equal(sscanf(line + 7, "%127s %31s", family, type), 2);
      assert_string_equal(family, helped);
      hist = strcmp(type, "histogram") == 0;
      assert_true(hist || strcmp(type, "counter") == 0 ||
                  strcmp(type, "gauge") == 0);
      continue;
    }
    assert_true(line[0] != '#');
    char *sp = strrchr(line, ' ');
    assert_non_null(sp);
    *sp = '\0';
    char *end;
    double v = strtod(sp + 1, &end);
    assert_true(end != sp + 1 && *end == '\0');
    assert_true(strncmp(line, family, strlen(family)) == 0);
    const char *rest = line + strlen(family);
    if (!hist)
      assert_true(*rest == '\0' || strncmp(rest, "{worker=\"", 9) == 0);
    if (strcmp(line, "weft_workers") == 0)
      f->workers = v;
    else if (strcmp(line, "weft_tasks_spawned_total") == 0)
      f->spawned = v;
    else if (strcmp(line, "weft_tasks_finished_total") == 0)
      f->finished = v;
    else if (strncmp(line, "weft_worker_polls_total{", 24) == 0)
      f->polls += v;
    else if (strncmp(line, "weft_poll_time_seconds_count{", 29) == 0)
      f->hist_count += v;
    else if (strstr(line, "weft_poll_time_seconds_bucket{") == line &&
             strstr(line, "le=\"+Inf\""))
      f->hist_inf += v;
  }
}

/* Status, headers and body of a fetched answer. */
static char *split(char *resp, size_t len, long *content_length) {
  assert_true(strncmp(resp, "HTTP/1.1 200 ", 13) == 0);
  char *body = strstr(resp, "\r\n\r\n");
  assert_non_null(body);
  body[2] = '\0'; /* the headers end with their CRLF */
  body += 4;
  assert_non_null(
      strcasestr(resp, "\r\nContent-Type: text/plain; version=0.0.4"));
  char *cl = strcasestr(resp, "\r\nContent-Length: ");
  assert_non_null(cl);
  *content_length = strtol(cl + 18, NULL, 10);
  assert_int_equal((size_t)*content_length, len - (size_t)(body - resp));
  return body;
}

static void test_metrics(void **state) {
  (void)state;
  size_t len;
  long clen;
  figures_t a, b;

  char *r1 = fetch("GET", "/metrics", &len);
  char *body = split(r1, len, &clen);
  assert_true(clen > 1000);
  assert_non_null(strstr(body, "# TYPE weft_poll_time_seconds histogram\n"));
  parse(body, &a);
  free(r1);
  assert_true(a.workers == 2);
  assert_true(a.lines > 100);
  assert_true(a.spawned >= 2); /* main and this request's handler */
  assert_true(a.polls > 0);

  for (int i = 0; i < 20; i++) {
    char path[32];
    snprintf(path, sizeof path, "/page/%d", i);
    free(fetch("GET", path, &len));
  }

  char *r2 = fetch("GET", "/metrics", &len);
  body = split(r2, len, &clen);
  parse(body, &b);
  free(r2);
  /* 21 more connections, each a handler task that finished (but this
   * one's: it is writing the text). */
  assert_true(b.spawned - a.spawned >= 21);
  assert_true(b.finished - a.finished >= 20);
  assert_true(b.polls > a.polls);
  assert_true(b.hist_count == b.hist_inf);
  assert_true(b.hist_count >= a.hist_count);

  /* HEAD: the same headers, no body. */
  char *r3 = fetch("HEAD", "/metrics", &len);
  assert_true(strncmp(r3, "HTTP/1.1 200 ", 13) == 0);
  char *end = strstr(r3, "\r\n\r\n");
  assert_non_null(end);
  assert_int_equal((size_t)(end + 4 - r3), len);
  assert_non_null(strcasestr(r3, "\r\nContent-Length: "));
  free(r3);

  /* SIGTERM: a clean exit. */
  assert_int_equal(kill(server_pid, SIGTERM), 0);
  int st;
  assert_int_equal(waitpid(server_pid, &st, 0), server_pid);
  server_pid = -1;
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: site_metrics_test PATH-TO-SITE\n");
    return 2;
  }
  site_path = argv[1];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_metrics, start, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
