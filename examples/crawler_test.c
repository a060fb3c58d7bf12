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
 *
 * Over https (a library built with TLS; a CA and a server certificate for
 * 127.0.0.1 are made at start by examples/mkcert.sh, with the openssl
 * command):
 * 3. https_crawl_matches_model: as 1, with site serving https and the
 *    crawler trusting the CA (--ca-file); also every connection opened was
 *    a TLS handshake.
 * 4. https_sessions_resume: a crawl of 20 pages, one connection per request
 *    (--no-keep-alive --concurrency 1): the first handshake is a full one,
 *    and every later one resumes the session the first one got (the
 *    summary's count of weft_tls_info_t.resumed).
 * 5. redirect_http_to_https: a plain-http server of the test's own answers
 *    every request with a 301 to the https site; the crawl started there
 *    follows it and matches the model as in 3.
 * 6. redirect_https_to_http: `openssl s_server -HTTP` (a real https server)
 *    answers with a 301 to a plain-http site; the crawl started there
 *    follows it and matches the model as in 1.
 * 7. same_site_http_to_https: with site on port 443 and the redirector on
 *    port 80 (skipped where those ports cannot be had), a crawl of
 *    http://127.0.0.1/ follows the move to https://127.0.0.1/ without
 *    --any-host, and matches the model as in 3.
 * 8. tls_verify_failure: the crawler without --ca-file does not trust the
 *    site's certificate: the URL fails as "tls-verify", with the reason
 *    (an unknown CA), and nothing else happens.
 *
 * Every process a test starts is killed if the test fails (teardown).
 */
#define _DEFAULT_SOURCE /* wait4 */

#include "site_model.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
static char ca_pem[128], cert_pem[128], key_pem[128]; /* mkcert.sh's */
static int have_certs; /* mkcert.sh made them */

/* The processes the running test started and has not reaped: killed and
 * reaped by the teardown if the test fails half-way. */
static pid_t children[8];

static void child_add(pid_t pid) {
  for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
    if (children[i] == 0) {
      children[i] = pid;
      return;
    }
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  fail_msg("too many children");
}

static void child_reaped(pid_t pid) {
  for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++)
    if (children[i] == pid)
      children[i] = 0;
}

static int kill_children(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(children) / sizeof(children[0]); i++) {
    if (children[i] > 0) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
      children[i] = 0;
    }
  }
  return 0;
}

/* The https tests: skipped in a library built without TLS; with TLS they
 * need mkcert.sh's certificates (the openssl command: scripts/setup.sh). */
#define NEED_TLS()                                                             \
  do {                                                                         \
    if (!CRAWLER_TEST_TLS)                                                     \
      skip();                                                                  \
    if (!have_certs)                                                           \
      fail_msg("examples/mkcert.sh failed: no certificates");                  \
  } while (0)

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

/* Start site with the given extra arguments (NULL-terminated) on port
 * s->port (0: a free one), over https if tls (with mkcert.sh's
 * certificate), and wait for its "Serving on 127.0.0.1:P" line. */
static void site_start(site_t *s, int tls, ...) {
  const char *argv[32];
  size_t n = 0;
  char port[16];
  snprintf(port, sizeof(port), "%d", s->port);
  argv[n++] = site_exe;
  argv[n++] = "--port";
  argv[n++] = port;
  argv[n++] = "--workers";
  argv[n++] = "2";
  argv[n++] = "--quiet";
  if (tls) {
    argv[n++] = "--tls-cert";
    argv[n++] = cert_pem;
    argv[n++] = "--tls-key";
    argv[n++] = key_pem;
  }
  va_list ap;
  va_start(ap, tls);
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
  child_add(s->pid);
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
    fail_msg("site did not start"); /* the teardown kills it */
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
  child_reaped(s->pid);
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
  child_add(pid);
  int status = 0, signalled = 0;
  uint64_t limit = sigint_ms ? CRAWL_BOUND_MS : bound_ms;
  struct rusage ru;
  for (;;) {
    pid_t got = wait4(pid, &status, WNOHANG, &ru);
    assert_true(got >= 0);
    if (got == pid) {
      child_reaped(pid);
      break;
    }
    uint64_t t = now_ms() - start;
    if (sigint_ms && !signalled && t >= sigint_ms &&
        in_flight_seen(out_path)) {
      kill(pid, SIGINT);
      signalled = 1;
      limit = t + bound_ms;
    }
    if (t > limit) {
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

/* The site the model-checked crawls run against, and what it reaches. */
typedef struct model {
  site_model_t m;
  site_reach_t reach;
} model_t;

static void model_init(model_t *mo) {
  site_params_t p;
  site_params_init(&p);
  p.pages = pages;
  p.seed = SEED;
  p.slow_ms = SLOW_MS;
  p.hang_share = HANG_SHARE;
  p.error_share = ERROR_SHARE;
  assert_int_equal(site_model_init(&mo->m, &p), 0);
  assert_int_equal(site_reach_compute(&mo->m, &mo->reach), 0);
  /* The site must exercise every path the test checks. */
  assert_true(mo->reach.by_kind[SITE_HANG] > 0);
  assert_true(mo->reach.by_kind[SITE_ERROR_500] > 0);
  assert_true(mo->reach.by_kind[SITE_NOT_FOUND] > 0);
  assert_true(mo->reach.by_kind[SITE_REDIRECT] > 0);
}

/* Start site serving the model's pages (https if tls). */
static void model_site_start(site_t *site, int tls) {
  char pages_arg[16], hang_arg[16], error_arg[16], seed_arg[16], slow_arg[16];
  snprintf(pages_arg, sizeof(pages_arg), "%u", pages);
  snprintf(seed_arg, sizeof(seed_arg), "%u", SEED);
  snprintf(slow_arg, sizeof(slow_arg), "%u", SLOW_MS);
  snprintf(hang_arg, sizeof(hang_arg), "%g", HANG_SHARE);
  snprintf(error_arg, sizeof(error_arg), "%g", ERROR_SHARE);
  site_start(site, tls, "--pages", pages_arg, "--seed", seed_arg, "--slow-ms",
             slow_arg, "--hang-share", hang_arg, "--error-share", error_arg,
             (const char *)NULL);
}

/* Crawl from seed_url with the model-checked crawl's options (plus `extra`,
 * NULL-terminated, before the URL), the summary in name.out and the log in
 * name.log under dir. */
static run_t model_crawl(const char *name, const char *seed_url,
                         const char *const *extra, char *out_path,
                         char *log_path) {
  snprintf(out_path, 128, "%s/%s.out", dir, name);
  snprintf(log_path, 128, "%s/%s.log", dir, name);
  char timeout_arg[16];
  snprintf(timeout_arg, sizeof(timeout_arg), "%u", TIMEOUT_MS);
  const char *args[32] = {"--workers",  "2",  "--concurrency", "32",
                          "--per-host", "16", "--timeout",     timeout_arg,
                          "--retries",  "1",  "--log",         log_path};
  size_t n = 12;
  while (extra && *extra && n < 30)
    args[n++] = *extra++;
  args[n++] = seed_url;
  args[n] = NULL;
  run_t r = crawler_run(args, out_path, 0, CRAWL_BOUND_MS);
  print_file(out_path);
  printf("crawler: exit %d after %" PRIu64 " ms, peak RSS %ld kB\n", r.status,
         r.wall_ms, r.maxrss_kb);
  return r;
}

/* Check a finished crawl against the model: the log names root_url once,
 * answered 301 (the crawl's start, on the site or elsewhere), and every
 * page the model reaches exactly once under base + its canonical path, with
 * its status (or "timeout" for a hung page), and nothing else; the summary
 * counts 200s, redirects, 404s, 500s and timeouts as the model does, and no
 * other error. */
static void check_crawl(const model_t *mo, const run_t *r,
                        const char *out_path, const char *log_path,
                        const char *base, const char *root_url) {
  const site_model_t *m = &mo->m;
  const site_reach_t *reach = &mo->reach;
  assert_int_equal(r->status, 0);
  if (rss_limit_kb > 0)
    assert_true(r->maxrss_kb < rss_limit_kb);

  /* The log: every reachable page once, with its status. */
  unsigned char *got = calloc(reach->universe, 1);
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
    if (sp && strcmp(sp + 1, root_url) == 0) {
      roots++;
      if (strncmp(line, "301 ", 4) != 0) {
        print_message("%s answered %s\n", root_url, line);
        bad++;
      }
      continue;
    }
    if (!sp || strncmp(sp + 1, base, blen) != 0) {
      print_message("unexpected log line: %s\n", line);
      bad++;
      continue;
    }
    *sp = '\0';
    const char *what = line, *path = sp + 1 + blen;
    unsigned long long n = 0;
    char want_path[SITE_PATH_MAX];
    if (sscanf(path, "/page/%llu", &n) != 1 || n >= reach->universe ||
        site_page_path(m, n, want_path, sizeof(want_path)) == 0 ||
        strcmp(path, want_path) != 0 || !reach->seen[n]) {
      print_message("fetched a page the model does not reach: %s\n", path);
      bad++;
      continue;
    }
    if (got[n]++) {
      print_message("fetched twice: %s\n", path);
      bad++;
    }
    char want[16];
    int status = site_page_status(m, n);
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
  for (size_t n = 0; n < reach->universe; n++) {
    if (reach->seen[n] && !got[n]) {
      if (missing++ < 10)
        print_message("never fetched: page %zu\n", n);
    }
  }
  free(got);
  assert_int_equal(bad, 0);
  assert_int_equal(missing, 0);
  assert_int_equal(roots, 1);
  assert_int_equal(lines, reach->total + 1);

  /* The summary agrees with the model. */
  assert_true(file_has_prefix(out_path, "Crawled: "));
  assert_int_equal(summary_value(out_path, "status 200"),
                   reach->by_kind[SITE_OK] + reach->by_kind[SITE_SLOW]);
  assert_int_equal(summary_value(out_path, "status 301") +
                       summary_value(out_path, "status 302"),
                   reach->by_kind[SITE_REDIRECT] + 1);
  assert_int_equal(summary_value(out_path, "status 404"),
                   reach->by_kind[SITE_NOT_FOUND]);
  assert_int_equal(summary_value(out_path, "status 500"),
                   reach->by_kind[SITE_ERROR_500]);
  assert_int_equal(summary_value(out_path, "error timeout"),
                   reach->by_kind[SITE_HANG]);
  const char *others[] = {"error refused",   "error reset",    "error dns",
                          "error parse",     "error redirects", "error toolarge",
                          "error tls-verify", "error tls",      "error other",
                          "cancelled"};
  for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
    assert_int_equal(summary_value(out_path, others[i]), 0);
  /* A hung page costs two timeouts and a backoff; the rest is quick. */
  assert_true(r->wall_ms < CRAWL_BOUND_MS);
}

static void crawl_matches_model(void **state) {
  (void)state;
  model_t mo;
  model_init(&mo);
  site_t site = {0};
  model_site_start(&site, 0);
  char base[64], seed_url[80], out_path[128], log_path[128];
  snprintf(base, sizeof(base), "http://127.0.0.1:%d", site.port);
  snprintf(seed_url, sizeof(seed_url), "%s/", base);
  run_t r = model_crawl("crawl", seed_url, NULL, out_path, log_path);
  site_stop(&site);
  check_crawl(&mo, &r, out_path, log_path, base, seed_url);
  /* Plain http: no TLS line. */
  assert_int_equal(summary_value(out_path, "tls"), 0);
  site_reach_free(&mo.reach);
}

static void https_crawl_matches_model(void **state) {
  (void)state;
  NEED_TLS();
  model_t mo;
  model_init(&mo);
  site_t site = {0};
  model_site_start(&site, 1);
  char base[64], seed_url[80], out_path[128], log_path[128];
  snprintf(base, sizeof(base), "https://127.0.0.1:%d", site.port);
  snprintf(seed_url, sizeof(seed_url), "%s/", base);
  const char *extra[] = {"--ca-file", ca_pem, NULL};
  run_t r = model_crawl("https", seed_url, extra, out_path, log_path);
  site_stop(&site);
  check_crawl(&mo, &r, out_path, log_path, base, seed_url);
  /* Every connection was TLS ("tls: N handshakes, M resumed"). */
  uint64_t opened = summary_value(out_path, "connections");
  assert_true(opened > 0);
  assert_int_equal(summary_value(out_path, "tls"), opened);
  site_reach_free(&mo.reach);
}

/* The number before `word` in the summary line starting "<prefix>:", or
 * -1: "tls: 20 handshakes, 19 resumed" gives 19 for ("tls", "resumed"). */
static long long summary_field(const char *path, const char *prefix,
                               const char *word) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[1024];
  long long v = -1;
  size_t n = strlen(prefix);
  while (v < 0 && fgets(line, sizeof(line), f)) {
    if (strncmp(line, prefix, n) != 0 || line[n] != ':')
      continue;
    const char *p = line + n + 1;
    while (*p) {
      char *end;
      long long x = strtoll(p, &end, 10);
      if (end == p) {
        p++;
        continue;
      }
      while (*end == ' ')
        end++;
      if (strncmp(end, word, strlen(word)) == 0) {
        v = x;
        break;
      }
      p = end;
    }
  }
  fclose(f);
  return v;
}

static void https_sessions_resume(void **state) {
  (void)state;
  NEED_TLS();
  site_t site = {0};
  site_start(&site, 1, "--pages", "100", "--hang-share", "0", "--slow-share",
             "0", (const char *)NULL);
  char seed_url[80], out_path[128];
  snprintf(seed_url, sizeof(seed_url), "https://127.0.0.1:%d/page/0",
           site.port);
  snprintf(out_path, sizeof(out_path), "%s/resume.out", dir);
  const char *args[] = {"--workers",       "2",        "--concurrency",
                        "1",               "--max-pages", "20",
                        "--no-keep-alive", "--ca-file", ca_pem,
                        "--quiet",         seed_url,   NULL};
  run_t r = crawler_run(args, out_path, 0, CRAWL_BOUND_MS);
  site_stop(&site);
  print_file(out_path);
  assert_int_equal(r.status, 0);
  assert_int_equal(summary_value(out_path, "urls"), 20); /* admitted */
  assert_int_equal(summary_field(out_path, "Crawled", "pages"), 20);
  assert_int_equal(summary_field(out_path, "Crawled", "errors"), 0);
  /* A connection per request, each a handshake; every one after the first
   * resumed the session the previous one was given. */
  assert_int_equal(summary_field(out_path, "connections", "opened"), 20);
  assert_int_equal(summary_field(out_path, "connections", "reused"), 0);
  assert_int_equal(summary_field(out_path, "tls", "handshakes"), 20);
  assert_int_equal(summary_field(out_path, "tls", "resumed"), 19);
}

/* A listening socket on 127.0.0.1:port (0: a free port), or -1 if that
 * port cannot be had (in use, or privileged for a user without the right). */
static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A plain-http server that answers every request with a 301 to `location`
 * and closes: a child process, listening on 127.0.0.1:*port (0: a free
 * one, written back to *port). */
static pid_t redirector_start(const char *location, int *port) {
  int fd = listen_on(*port);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  socklen_t len = sizeof(a);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  char resp[512];
  int n = snprintf(resp, sizeof(resp),
                   "HTTP/1.1 301 Moved Permanently\r\nLocation: %s\r\n"
                   "Content-Length: 0\r\nConnection: close\r\n\r\n",
                   location);
  assert_true(n > 0 && (size_t)n < sizeof(resp));
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (;;) {
      int c = accept(fd, NULL, NULL);
      if (c < 0)
        _exit(errno == EINTR ? 0 : 1);
      /* The request's head, then the answer; then read to the client's
       * end, so that closing never resets the answer away. */
      char buf[4096];
      size_t got = 0;
      ssize_t k;
      while (got < sizeof(buf) - 1 &&
             (k = read(c, buf + got, sizeof(buf) - 1 - got)) > 0) {
        got += (size_t)k;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n"))
          break;
      }
      ssize_t w = write(c, resp, (size_t)n);
      (void)w;
      shutdown(c, SHUT_WR);
      while (read(c, buf, sizeof(buf)) > 0)
        ;
      close(c);
    }
  }
  close(fd);
  child_add(pid);
  return pid;
}

static void child_stop(pid_t pid) {
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  child_reaped(pid);
}

static void redirect_http_to_https(void **state) {
  (void)state;
  NEED_TLS();
  model_t mo;
  model_init(&mo);
  site_t site = {0};
  model_site_start(&site, 1);
  char base[64], target[80], seed_url[80], out_path[128], log_path[128];
  snprintf(base, sizeof(base), "https://127.0.0.1:%d", site.port);
  snprintf(target, sizeof(target), "%s/page/0", base);
  int rport = 0;
  pid_t redirector = redirector_start(target, &rport);
  snprintf(seed_url, sizeof(seed_url), "http://127.0.0.1:%d/", rport);
  /* --any-host: the redirector and the site are on two ports. */
  const char *extra[] = {"--ca-file", ca_pem, "--any-host", NULL};
  run_t r = model_crawl("tohttps", seed_url, extra, out_path, log_path);
  child_stop(redirector);
  site_stop(&site);
  check_crawl(&mo, &r, out_path, log_path, base, seed_url);
  assert_true(summary_value(out_path, "tls") > 0);
  site_reach_free(&mo.reach);
}

/* `openssl s_server -HTTP` on a free port, in dir, with mkcert.sh's
 * certificate: it answers "GET /NAME" with the file dir/NAME as it is (a
 * whole HTTP response). Its output goes to dir/s_server.out, where its
 * "ACCEPT [::]:PORT" line says the port. Returns its pid, sets *port. */
static pid_t s_server_start(int *port) {
  char out_path[160];
  snprintf(out_path, sizeof(out_path), "%s/s_server.out", dir);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (!freopen(out_path, "w", stdout) || dup2(1, 2) < 0 || chdir(dir) != 0)
      _exit(127);
    execlp("openssl", "openssl", "s_server", "-accept", "0", "-cert",
           cert_pem, "-key", key_pem, "-HTTP", (char *)NULL);
    _exit(127);
  }
  child_add(pid);
  *port = 0;
  char line[256];
  uint64_t start = now_ms();
  while (*port == 0 && now_ms() - start < 20000) {
    FILE *f = fopen(out_path, "r");
    while (f && *port == 0 && fgets(line, sizeof(line), f)) {
      char *colon = strrchr(line, ':');
      if (strncmp(line, "ACCEPT", 6) == 0 && colon)
        *port = atoi(colon + 1);
    }
    if (f)
      fclose(f);
    if (*port == 0) {
      if (waitpid(pid, NULL, WNOHANG) == pid) {
        child_reaped(pid);
        print_file(out_path);
        fail_msg("openssl s_server exited");
      }
      sleep_ms(10);
    }
  }
  if (*port == 0)
    fail_msg("openssl s_server did not start");
  return pid;
}

static void redirect_https_to_http(void **state) {
  (void)state;
  NEED_TLS();
  model_t mo;
  model_init(&mo);
  site_t site = {0};
  model_site_start(&site, 0);
  char base[64], seed_url[80], out_path[128], log_path[128], path[160];
  snprintf(base, sizeof(base), "http://127.0.0.1:%d", site.port);
  snprintf(path, sizeof(path), "%s/moved", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f,
          "HTTP/1.1 301 Moved Permanently\r\nLocation: %s/page/0\r\n"
          "Content-Length: 0\r\nConnection: close\r\n\r\n",
          base);
  assert_int_equal(fclose(f), 0);
  int sport;
  pid_t s_server = s_server_start(&sport);
  snprintf(seed_url, sizeof(seed_url), "https://127.0.0.1:%d/moved", sport);
  const char *extra[] = {"--ca-file", ca_pem, "--any-host", NULL};
  run_t r = model_crawl("tohttp", seed_url, extra, out_path, log_path);
  child_stop(s_server);
  site_stop(&site);
  unlink(path);
  check_crawl(&mo, &r, out_path, log_path, base, seed_url);
  /* One TLS connection: s_server's. */
  assert_int_equal(summary_value(out_path, "tls"), 1);
  site_reach_free(&mo.reach);
}

/* A site on the default ports moving from http://127.0.0.1/ to
 * https://127.0.0.1/ is followed without --any-host (crawl.h: the other
 * scheme's default port counts as the same site). Needs ports 80 and 443:
 * skipped where they are taken or privileged. */
static void same_site_http_to_https(void **state) {
  (void)state;
  NEED_TLS();
  int fd80 = listen_on(80), fd443 = listen_on(443);
  if (fd80 >= 0)
    close(fd80);
  if (fd443 >= 0)
    close(fd443);
  if (fd80 < 0 || fd443 < 0) {
    print_message("skipped: ports 80 and 443 are not available\n");
    skip();
  }
  model_t mo;
  model_init(&mo);
  site_t site = {.port = 443};
  model_site_start(&site, 1);
  int rport = 80;
  pid_t redirector = redirector_start("https://127.0.0.1/page/0", &rport);
  char out_path[128], log_path[128];
  const char *extra[] = {"--ca-file", ca_pem, NULL}; /* no --any-host */
  run_t r = model_crawl("samesite", "http://127.0.0.1/", extra, out_path,
                        log_path);
  child_stop(redirector);
  site_stop(&site);
  /* The site's links name https://127.0.0.1:443/...: canonical without the
   * port. */
  check_crawl(&mo, &r, out_path, log_path, "https://127.0.0.1",
              "http://127.0.0.1/");
  site_reach_free(&mo.reach);
}

static void tls_verify_failure(void **state) {
  (void)state;
  NEED_TLS();
  site_t site = {0};
  site_start(&site, 1, "--pages", "50", (const char *)NULL);
  char seed_url[80], out_path[128], log_path[128], want[256];
  snprintf(seed_url, sizeof(seed_url), "https://127.0.0.1:%d/", site.port);
  snprintf(out_path, sizeof(out_path), "%s/verify.out", dir);
  snprintf(log_path, sizeof(log_path), "%s/verify.log", dir);
  /* No --ca-file: the system's CA store does not know mkcert.sh's CA. */
  const char *args[] = {"--workers", "2",      "--retries", "2", "--log",
                        log_path,    "--quiet", seed_url,   NULL};
  run_t r = crawler_run(args, out_path, 0, CRAWL_BOUND_MS);
  site_stop(&site);
  print_file(out_path);
  assert_int_equal(r.status, 0); /* the crawl ran; the URL failed */
  assert_int_equal(summary_field(out_path, "Crawled", "pages"), 0);
  assert_int_equal(summary_field(out_path, "Crawled", "errors"), 1);
  snprintf(want, sizeof(want),
           "error tls-verify: 1 (first: %s: TLS certificate from an unknown "
           "CA: certificate verify failed",
           seed_url);
  assert_true(file_has_prefix(out_path, want));
  /* Not retried (a certificate does not heal), no other error. */
  assert_int_equal(summary_field(out_path, "urls", "retries"), 0);
  const char *others[] = {"error timeout", "error refused", "error reset",
                          "error tls",     "error other"};
  for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
    assert_int_equal(summary_value(out_path, others[i]), 0);
  snprintf(want, sizeof(want), "tls-verify %s\n", seed_url);
  FILE *f = fopen(log_path, "r");
  assert_non_null(f);
  char line[256];
  assert_non_null(fgets(line, sizeof(line), f));
  assert_string_equal(line, want);
  assert_null(fgets(line, sizeof(line), f));
  fclose(f);
}

static void sigint_stops_cleanly(void **state) {
  (void)state;
  site_t site = {0};
  site_start(&site, 0, "--pages", "2000", "--slow-share", "0.8",
             "--slow-ms", "5000", (const char *)NULL);
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
  if (CRAWLER_TEST_TLS) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s/certs'", MKCERT_SH, dir);
    have_certs = system(cmd) == 0;
    snprintf(ca_pem, sizeof(ca_pem), "%s/certs/ca.pem", dir);
    snprintf(cert_pem, sizeof(cert_pem), "%s/certs/server.pem", dir);
    snprintf(key_pem, sizeof(key_pem), "%s/certs/server.key", dir);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(crawl_matches_model, kill_children),
      cmocka_unit_test_teardown(sigint_stops_cleanly, kill_children),
      cmocka_unit_test_teardown(https_crawl_matches_model, kill_children),
      cmocka_unit_test_teardown(https_sessions_resume, kill_children),
      cmocka_unit_test_teardown(redirect_http_to_https, kill_children),
      cmocka_unit_test_teardown(redirect_https_to_http, kill_children),
      cmocka_unit_test_teardown(same_site_http_to_https, kill_children),
      cmocka_unit_test_teardown(tls_verify_failure, kill_children),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  /* What the tests left in dir: their outputs, logs and certificates. */
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "crawler_test: could not remove %s\n", dir);
  return failed;
}
