/*
 * crawler_test.c: examples/crawler against examples/site, checked against
 * site_model.c.
 *
 *     crawler_test PATH-TO-SITE PATH-TO-CRAWLER [PAGES [RSS-LIMIT-KB]]
 *
 * 1. crawl_matches_model: starts site on a free port with a small site
 *    (PAGES pages, default 300, with more 500s and hung pages than the
 *    default and slow pages of 50 ms), runs crawler from "/" with a 400 ms
 *    request timeout and one retry, and checks, against site_reach_compute():
 *    the crawler exits 0 within a bound; its --log names every reachable
 *    page exactly once, under the page's canonical URL, with the page's
 *    status (or "timeout" for a hung page), plus "/" once; the summary
 *    counts 200s, redirects, 404s, 500s and timeouts as the model does, and
 *    no other error; and, when RSS-LIMIT-KB is given and not 0, the
 *    crawler's peak RSS stayed under it.
 * 2. sigint_stops_cleanly: starts a site whose pages are mostly slow (5 s),
 *    sends the crawler SIGINT after 600 ms, and checks that it exits 130
 *    promptly (well before any slow page would answer), that its summary
 *    says "Interrupted" and counts the cancelled fetches.
 */
#define _DEFAULT_SOURCE /* wait4 */

#include "site_model.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define SEED 7
#define SLOW_MS 50
#define TIMEOUT_MS 400
#define HANG_SHARE 0.03
#define ERROR_SHARE 0.05
#define CRAWL_BOUND_MS 30000 /* sanitizer trees included */

static const char *site_exe;
static const char *crawler_exe;
static unsigned pages = 300;
static long rss_limit_kb;
static char dir[] = "/tmp/crawler_test.XXXXXX";

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A running site: its process and port. */
typedef struct site {
  pid_t pid; /* its process */
  int port;  /* where it listens */
  FILE *out; /* its stdout, read to the end when it stops */
} site_t;

/* Start site with the given extra arguments (NULL-terminated) on a free
 * port and wait for its "Serving on 127.0.0.1:P" line. */
static void site_start(site_t *s, ...) {
  const char *argv[32];
  size_t n = 0;
  argv[n++] = site_exe;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--workers";
  argv[n++] = "2";
  argv[n++] = "--quiet";
  va_list ap;
  va_start(ap, s);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && n < 31)
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;

  int fds[2];
  assert_int_equal(pipe(fds), 0);
  s->pid = fork();
  assert_true(s->pid >= 0);
  if (s->pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execv(site_exe, (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  FILE *out = fdopen(fds[0], "r");
  assert_non_null(out);
  char line[256];
  s->port = 0;
  struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
  while (s->port == 0 && poll(&pfd, 1, 20000) == 1 &&
         fgets(line, sizeof(line), out)) {
    sscanf(line, "Serving on 127.0.0.1:%d", &s->port);
  }
  s->out = out;
  if (s->port == 0) {
    fclose(out);
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    fail_msg("site did not start");
  }
}

static void site_stop(site_t *s) {
  kill(s->pid, SIGTERM);
  char line[256];
  while (fgets(line, sizeof(line), s->out))
    ; /* its per-worker counts: not checked here */
  fclose(s->out);
  int status = 0;
  assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* A finished crawler run. */
typedef struct run {
  int status;       /* exit status, or 128 + signal if killed */
  uint64_t wall_ms; /* from fork to exit */
  long maxrss_kb;   /* peak RSS */
} run_t;

/* Whether the crawler's output (not a terminal: one "progress:" line at a
 * time, flushed) shows a request in flight. */
static int in_flight_seen(const char *out_path) {
  FILE *f = fopen(out_path, "r");
  char line[256];
  unsigned long done, flight;
  int seen = 0;

  if (!f)
    return 0;
  while (!seen && fgets(line, sizeof(line), f))
    seen = sscanf(line, "progress: %lu pages, %lu in flight", &done,
                  &flight) == 2 &&
           flight > 0;
  fclose(f);
  return seen;
}

/* Run crawler with argv (NULL-terminated, without argv[0]) and stdout to
 * out_path. If sigint_ms is not 0, send SIGINT once sigint_ms have passed
 * and the crawler shows requests in flight (so that the signal finds its
 * handler installed and work to cancel, however slow the machine), and
 * fail the test if it still runs bound_ms after the signal; otherwise (or
 * before the signal) fail the test if it runs past CRAWL_BOUND_MS (with a
 * signal) or bound_ms. */
static run_t crawler_run(const char *const *args, const char *out_path,
                         unsigned sigint_ms, uint64_t bound_ms) {
  const char *argv[32];
  size_t n = 0;
  argv[n++] = crawler_exe;
  while (*args && n < 31)
    argv[n++] = *args++;
  argv[n] = NULL;
  run_t r = {0};
  uint64_t start = now_ms();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    FILE *f = freopen(out_path, "w", stdout);
    if (!f)
      _exit(127);
    execv(crawler_exe, (char *const *)argv);
    _exit(127);
  }
  int status = 0, signalled = 0;
  uint64_t limit = sigint_ms ? CRAWL_BOUND_MS : bound_ms;
  struct rusage ru;
  for (;;) {
    pid_t got = wait4(pid, &status, WNOHANG, &ru);
    assert_true(got >= 0);
    if (got == pid)
      break;
    uint64_t t = now_ms() - start;
    if (sigint_ms && !signalled && t >= sigint_ms &&
        in_flight_seen(out_path)) {
      kill(pid, SIGINT);
      signalled = 1;
      limit = t + bound_ms;
    }
    if (t > limit) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      fail_msg("crawler still running after %" PRIu64 " ms%s", t,
               signalled ? " (SIGINT sent)" : "");
    }
    sleep_ms(5);
  }
  r.wall_ms = now_ms() - start;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.maxrss_kb = ru.ru_maxrss;
  return r;
}

/* The value of the summary line "<prefix>: <n>..." in path, 0 if absent. */
static uint64_t summary_value(const char *path, const char *prefix) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[1024];
  uint64_t v = 0;
  size_t n = strlen(prefix);
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, prefix, n) == 0 && line[n] == ':') {
      v = strtoull(line + n + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

static int file_has_prefix(const char *path, const char *prefix) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof(line), f))
    found = strncmp(line, prefix, strlen(prefix)) == 0;
  fclose(f);
  return found;
}

static void print_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  char line[1024];
  while (fgets(line, sizeof(line), f))
    fputs(line, stdout);
  fclose(f);
}

static void crawl_matches_model(void **state) {
  (void)state;
  char pages_arg[16], hang_arg[16], error_arg[16], seed_arg[16], slow_arg[16];
  snprintf(pages_arg, sizeof(pages_arg), "%u", pages);
  snprintf(seed_arg, sizeof(seed_arg), "%u", SEED);
  snprintf(slow_arg, sizeof(slow_arg), "%u", SLOW_MS);
  snprintf(hang_arg, sizeof(hang_arg), "%g", HANG_SHARE);
  snprintf(error_arg, sizeof(error_arg), "%g", ERROR_SHARE);

  site_params_t p;
  site_params_init(&p);
  p.pages = pages;
  p.seed = SEED;
  p.slow_ms = SLOW_MS;
  p.hang_share = HANG_SHARE;
  p.error_share = ERROR_SHARE;
  site_model_t m;
  assert_int_equal(site_model_init(&m, &p), 0);
  site_reach_t reach;
  assert_int_equal(site_reach_compute(&m, &reach), 0);
  /* The site must exercise every path the test checks. */
  assert_true(reach.by_kind[SITE_HANG] > 0);
  assert_true(reach.by_kind[SITE_ERROR_500] > 0);
  assert_true(reach.by_kind[SITE_NOT_FOUND] > 0);
  assert_true(reach.by_kind[SITE_REDIRECT] > 0);

  site_t site;
  site_start(&site, "--pages", pages_arg, "--seed", seed_arg, "--slow-ms",
             slow_arg, "--hang-share", hang_arg, "--error-share", error_arg,
             (const char *)NULL);
  char base[64], seed_url[80], out_path[128], log_path[128];
  snprintf(base, sizeof(base), "http://127.0.0.1:%d", site.port);
  snprintf(seed_url, sizeof(seed_url), "%s/", base);
  snprintf(out_path, sizeof(out_path), "%s/crawl.out", dir);
  snprintf(log_path, sizeof(log_path), "%s/crawl.log", dir);
  char timeout_arg[16];
  snprintf(timeout_arg, sizeof(timeout_arg), "%u", TIMEOUT_MS);
  const char *args[] = {"--workers",  "2",  "--concurrency", "32",
                        "--per-host", "16", "--timeout",     timeout_arg,
                        "--retries",  "1",  "--log",         log_path,
                        seed_url,     NULL};
  run_t r = crawler_run(args, out_path, 0, CRAWL_BOUND_MS);
  site_stop(&site);
  print_file(out_path);
  printf("crawler: exit %d after %" PRIu64 " ms, peak RSS %ld kB\n", r.status,
         r.wall_ms, r.maxrss_kb);
  assert_int_equal(r.status, 0);
  if (rss_limit_kb > 0)
    assert_true(r.maxrss_kb < rss_limit_kb);

  /* The log: every reachable page once, with its status. */
  unsigned char *got = calloc(reach.universe, 1);
  assert_non_null(got);
  FILE *f = fopen(log_path, "r");
  assert_non_null(f);
  char line[2048];
  size_t lines = 0, roots = 0, bad = 0;
  size_t blen = strlen(base);
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = '\0';
    lines++;
    char *sp = strchr(line, ' ');
    if (!sp || strncmp(sp + 1, base, blen) != 0) {
      print_message("unexpected log line: %s\n", line);
      bad++;
      continue;
    }
    *sp = '\0';
    const char *what = line, *path = sp + 1 + blen;
    if (strcmp(path, "/") == 0) {
      roots++;
      if (strcmp(what, "301") != 0) {
        print_message("/ answered %s\n", what);
        bad++;
      }
      continue;
    }
    unsigned long long n = 0;
    char want_path[SITE_PATH_MAX];
    if (sscanf(path, "/page/%llu", &n) != 1 || n >= reach.universe ||
        site_page_path(&m, n, want_path, sizeof(want_path)) == 0 ||
        strcmp(path, want_path) != 0 || !reach.seen[n]) {
      print_message("fetched a page the model does not reach: %s\n", path);
      bad++;
      continue;
    }
    if (got[n]++) {
      print_message("fetched twice: %s\n", path);
      bad++;
    }
    char want[16];
    int status = site_page_status(&m, n);
    if (status == 0)
      snprintf(want, sizeof(want), "timeout");
    else
      snprintf(want, sizeof(want), "%d", status);
    if (strcmp(what, want) != 0) {
      print_message("%s: got %s, want %s\n", path, what, want);
      bad++;
    }
  }
  fclose(f);
  size_t missing = 0;
  for (size_t n = 0; n < reach.universe; n++) {
    if (reach.seen[n] && !got[n]) {
      if (missing++ < 10)
        print_message("never fetched: page %zu\n", n);
    }
  }
  free(got);
  assert_int_equal(bad, 0);
  assert_int_equal(missing, 0);
  assert_int_equal(roots, 1);
  assert_int_equal(lines, reach.total + 1);

  /* The summary agrees with the model. */
  assert_true(file_has_prefix(out_path, "Crawled: "));
  assert_int_equal(summary_value(out_path, "status 200"),
                   reach.by_kind[SITE_OK] + reach.by_kind[SITE_SLOW]);
  assert_int_equal(summary_value(out_path, "status 301") +
                       summary_value(out_path, "status 302"),
                   reach.by_kind[SITE_REDIRECT] + 1);
  assert_int_equal(summary_value(out_path, "status 404"),
                   reach.by_kind[SITE_NOT_FOUND]);
  assert_int_equal(summary_value(out_path, "status 500"),
                   reach.by_kind[SITE_ERROR_500]);
  assert_int_equal(summary_value(out_path, "error timeout"),
                   reach.by_kind[SITE_HANG]);
  const char *others[] = {"error refused", "error reset",     "error dns",
                          "error parse",   "error redirects", "error toolarge",
                          "error other",   "cancelled"};
  for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
    assert_int_equal(summary_value(out_path, others[i]), 0);
  /* A hung page costs two timeouts and a backoff; the rest is quick. */
  assert_true(r.wall_ms < CRAWL_BOUND_MS);
  site_reach_free(&reach);
}

static void sigint_stops_cleanly(void **state) {
  (void)state;
  site_t site;
  site_start(&site, "--pages", "2000", "--slow-share", "0.8", "--slow-ms",
             "5000", (const char *)NULL);
  char seed_url[80], out_path[128];
  snprintf(seed_url, sizeof(seed_url), "http://127.0.0.1:%d/page/0", site.port);
  snprintf(out_path, sizeof(out_path), "%s/sigint.out", dir);
  const char *args[] = {"--workers",  "2",  "--concurrency", "64",
                        "--per-host", "64", "--timeout",     "20000",
                        seed_url,     NULL};
  /* Stopped within 15 s of the signal: far below the ~2 minutes the crawl
   * of 1,600 slow pages would take. */
  run_t r = crawler_run(args, out_path, 600, 15000);
  site_stop(&site);
  print_file(out_path);
  printf("crawler: exit %d after %" PRIu64 " ms\n", r.status, r.wall_ms);
  assert_int_equal(r.status, 130);
  assert_true(file_has_prefix(out_path, "Interrupted: "));
  assert_true(summary_value(out_path, "cancelled") > 0);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: crawler_test SITE CRAWLER [PAGES [RSS-KB]]\n");
    return 2;
  }
  site_exe = argv[1];
  crawler_exe = argv[2];
  if (argc > 3)
    pages = (unsigned)strtoul(argv[3], NULL, 10);
  if (argc > 4)
    rss_limit_kb = strtol(argv[4], NULL, 10);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(crawl_matches_model),
      cmocka_unit_test(sigint_stops_cleanly),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  char path[160];
  snprintf(path, sizeof(path), "%s/crawl.out", dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/crawl.log", dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/sigint.out", dir);
  unlink(path);
  rmdir(dir);
  return failed;
}
