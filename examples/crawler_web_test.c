/*
 * crawler_web_test.c: the crawler's real-web features (robots.txt,
 * politeness, gzip and deflate, scope, JSONL) against examples/site and a
 * small server of the test's own, checked against site_model.c.
 *
 *     crawler_web_test PATH-TO-SITE PATH-TO-CRAWLER [PAGES]
 *
 * 1. robots_gzip_matches_model: site with --robots (site_model.h §5) and
 *    --gzip (every response gzip-compressed and chunked); crawler --robots
 *    --jsonl. Every page the model reaches through allowed pages is
 *    fetched once with its status; every disallowed page it links to is
 *    logged once as "robots" and never requested (the site counts such
 *    requests, and its access log lists none); robots.txt is requested
 *    once; every response was decoded; every JSONL line is a JSON object
 *    with the documented fields, one per log line, agreeing with the log
 *    and the model (status, content type, links of a 200 page, error).
 * 2. https_robots_gzip_matches_model: the same over https (a library with
 *    TLS; mkcert.sh's certificates).
 * 3. delay_per_host: --delay-ms 120: the site's access log shows six
 *    requests spread over at least 2/3 of 5 x 120 ms (the span, not each
 *    gap, is asserted: one late handler on a loaded machine shifts one
 *    stamp, not the span); then the site's robots.txt says Crawl-delay
 *    0.15 and the crawler, with --robots and no --delay-ms, spreads its
 *    page requests likewise.
 * 4. scope_and_depth: --max-depth 1 fetches exactly page 0, its links and
 *    their redirect targets (JSONL depths 0 and 1); --exclude and --include
 *    with POSIX regexes leave out the pages they refuse and what only those
 *    link to (the model's reach recomputed without them); from
 *    http://localhost:P/ the
 *    site's full-URL links to 127.0.0.1 are not followed, and are with
 *    --allow-domain 127.0.0.1 (skipped where localhost does not resolve).
 * 5. deflate_and_bomb: a server of the test's own answers with a zlib
 *    deflate body, a raw deflate body (both HTML with a link, found), and
 *    a gzip bomb (4 MiB of zeros in 4 KiB): with --max-body 1 MiB the bomb
 *    fails as "toolarge" and the rest is fetched; with --robots its
 *    robots.txt, a 404, allows everything; --save-dir keeps the decoded
 *    bodies under the FNV-1a hash of their URLs.
 * 6. robots_unavailable_and_agents: a robots.txt answered 503 disallows
 *    everything; one behind two redirects is followed and obeyed; as --user-agent OtherBot (the site's robots.txt has a
 *    group "otherbot" disallowing all) the crawler requests robots.txt and
 *    nothing else; a token with a "/" and a pattern that does not compile
 *    are usage errors, a missing --save-dir fails the crawl.
 *
 * No timing-fragile asserts: bounds are generous (design.md §10).
 */
#define _DEFAULT_SOURCE /* wait4 */

#include "site_model.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#define SEED 11
#define BOUND_MS 60000 /* a crawl's bound, sanitizer trees included */

static const char *site_exe, *crawler_exe;
static unsigned pages = 300;
static char dir[] = "/tmp/crawler_web_test.XXXXXX";
static char ca_pem[160], cert_pem[160], key_pem[160];
static int have_certs;

/* Processes started and not reaped: killed by the teardown on failure. */
static pid_t children[8];

static void child_add(pid_t pid) {
  for (size_t i = 0; i < 8; i++) {
    if (children[i] == 0) {
      children[i] = pid;
      return;
    }
  }
  kill(pid, SIGKILL);
  fail_msg("too many children");
}

static void child_reaped(pid_t pid) {
  for (size_t i = 0; i < 8; i++)
    if (children[i] == pid)
      children[i] = 0;
}

static int kill_children(void **state) {
  (void)state;
  for (size_t i = 0; i < 8; i++) {
    if (children[i] > 0) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
      children[i] = 0;
    }
  }
  return 0;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------------ */
/* Processes                                                                 */

typedef struct site {
  pid_t pid;
  int port;
  FILE *out;
  char access[200]; /* its access log */
} site_t;

/* Start site on a free port with the model's parameters and the extra
 * arguments (NULL-terminated), https if tls, an access log in dir. */
static void site_start(site_t *s, const char *name, int tls, ...) {
  const char *argv[40];
  size_t n = 0;
  snprintf(s->access, sizeof(s->access), "%s/%s.access", dir, name);
  argv[n++] = site_exe;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--workers";
  argv[n++] = "2";
  argv[n++] = "--quiet";
  argv[n++] = "--access-log";
  argv[n++] = s->access;
  if (tls) {
    argv[n++] = "--tls-cert";
    argv[n++] = cert_pem;
    argv[n++] = "--tls-key";
    argv[n++] = key_pem;
  }
  va_list ap;
  va_start(ap, tls);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && n < 39)
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
  s->out = fdopen(fds[0], "r");
  assert_non_null(s->out);
  char line[256];
  s->port = 0;
  struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
  while (s->port == 0 && poll(&pfd, 1, 20000) == 1 &&
         fgets(line, sizeof(line), s->out))
    sscanf(line, "Serving on 127.0.0.1:%d", &s->port);
  if (s->port == 0)
    fail_msg("site did not start");
}

/* Stop the site; returns its "robots violations" count (-1 if none
 * printed). */
static long site_stop(site_t *s) {
  kill(s->pid, SIGTERM);
  char line[256];
  long v = -1;
  while (fgets(line, sizeof(line), s->out))
    sscanf(line, "robots violations: %ld", &v);
  fclose(s->out);
  int status = 0;
  assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
  child_reaped(s->pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return v;
}

/* Run the crawler with args (NULL-terminated), stdout to out_path; its
 * exit status. Fails the test past BOUND_MS. */
static int crawler_run(const char *const *args, const char *out_path) {
  const char *argv[48];
  size_t n = 0;
  argv[n++] = crawler_exe;
  while (*args && n < 47)
    argv[n++] = *args++;
  argv[n] = NULL;
  uint64_t start = now_ms();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (!freopen(out_path, "w", stdout))
      _exit(127);
    execv(crawler_exe, (char *const *)argv);
    _exit(127);
  }
  child_add(pid);
  int status = 0;
  for (;;) {
    pid_t got = waitpid(pid, &status, WNOHANG);
    assert_true(got >= 0);
    if (got == pid)
      break;
    if (now_ms() - start > BOUND_MS)
      fail_msg("crawler still running after %d ms", BOUND_MS);
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  child_reaped(pid);
  FILE *f = fopen(out_path, "r");
  char line[1024];
  while (f && fgets(line, sizeof(line), f))
    fputs(line, stdout);
  if (f)
    fclose(f);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The first number after "prefix" on a line of path that starts with it,
 * or -1. */
static long long file_value(const char *path, const char *prefix) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[1024];
  long long v = -1;
  size_t n = strlen(prefix);
  while (v < 0 && fgets(line, sizeof(line), f))
    if (strncmp(line, prefix, n) == 0)
      v = strtoll(line + n, NULL, 10);
  fclose(f);
  return v;
}

/* ------------------------------------------------------------------------ */
/* JSON: a flat object of strings, numbers and null                          */

#define JSON_MAX_FIELDS 16

typedef struct json_field {
  char key[32];
  int is_string, is_null;
  char str[2048];  /* a string's decoded value (UTF-8 of \u escapes) */
  double num;      /* a number's value */
} json_field_t;

static const char *json_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
    p++;
  return p;
}

/* A JSON string at p into out[cap] (ASCII escapes kept as one byte, \u
 * of code points < 0x80 decoded, others as '?'); the end, or NULL. */
static const char *json_string(const char *p, char *out, size_t cap) {
  if (*p++ != '"')
    return NULL;
  size_t n = 0;
  for (;;) {
    unsigned char ch = (unsigned char)*p++;
    if (ch == '"')
      break;
    if (ch < 0x20)
      return NULL; /* unescaped control character: not JSON */
    if (ch == '\\') {
      char e = *p++;
      if (e == 'u') {
        unsigned v = 0;
        for (int i = 0; i < 4; i++, p++) {
          char h = *p;
          if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                (h >= 'A' && h <= 'F')))
            return NULL;
          v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 32) - 'a' + 10);
        }
        ch = v < 0x80 ? (unsigned char)v : '?';
      } else {
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *k = e ? strchr(from, e) : NULL;
        if (!k)
          return NULL;
        ch = (unsigned char)to[k - from];
      }
    }
    if (n + 1 < cap)
      out[n++] = (char)ch;
  }
  out[n] = '\0';
  return p;
}

/* Parse one line as a flat JSON object into f[JSON_MAX_FIELDS]; the
 * number of fields, or -1 if it is not one. */
static int json_parse(const char *line, json_field_t *f) {
  const char *p = json_ws(line);
  if (*p++ != '{')
    return -1;
  int n = 0;
  p = json_ws(p);
  if (*p == '}')
    return *json_ws(p + 1) == '\0' ? 0 : -1;
  for (;;) {
    if (n == JSON_MAX_FIELDS)
      return -1;
    json_field_t *x = &f[n++];
    memset(x, 0, sizeof(*x));
    p = json_string(json_ws(p), x->key, sizeof(x->key));
    if (!p)
      return -1;
    p = json_ws(p);
    if (*p++ != ':')
      return -1;
    p = json_ws(p);
    if (*p == '"') {
      x->is_string = 1;
      p = json_string(p, x->str, sizeof(x->str));
      if (!p)
        return -1;
    } else if (strncmp(p, "null", 4) == 0) {
      x->is_null = 1;
      p += 4;
    } else {
      char *end;
      if (!(*p == '-' || (*p >= '0' && *p <= '9')))
        return -1;
      x->num = strtod(p, &end);
      if (end == p)
        return -1;
      p = end;
    }
    p = json_ws(p);
    if (*p == ',') {
      p++;
      continue;
    }
    if (*p++ != '}')
      return -1;
    return *json_ws(p) == '\0' ? n : -1;
  }
}

static const json_field_t *json_get(const json_field_t *f, int n,
                                    const char *key) {
  for (int i = 0; i < n; i++)
    if (strcmp(f[i].key, key) == 0)
      return &f[i];
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* The model                                                                 */

static void model_params(site_params_t *p, int robots) {
  site_params_init(p);
  p->pages = pages;
  p->seed = SEED;
  p->slow_ms = 20;
  p->hang_share = 0; /* no timeouts: these tests are about other things */
  p->error_share = 0.05;
  p->robots = robots;
}

/* The site's arguments for model_params(). */
#define MODEL_SITE_ARGS(pages_arg)                                             \
  "--pages", pages_arg, "--seed", "11", "--slow-ms", "20", "--hang-share",     \
      "0", "--error-share", "0.05"

/* The page number of url (base + "/page/N..."), its canonical form
 * checked; -1 if it is not one. */
static long long page_of(const site_model_t *m, const char *url,
                         const char *base) {
  size_t blen = strlen(base);
  unsigned long long n;
  char want[SITE_PATH_MAX];
  if (strncmp(url, base, blen) != 0 ||
      sscanf(url + blen, "/page/%llu", &n) != 1 || n >= 2ull * m->p.pages ||
      site_page_path(m, n, want, sizeof(want)) == 0 ||
      strcmp(url + blen, want) != 0)
    return -1;
  return (long long)n;
}

/* ------------------------------------------------------------------------ */
/* 1, 2: robots and gzip against the model                                   */

static void robots_gzip_crawl(int tls) {
  site_params_t p;
  model_params(&p, 1);
  site_model_t m;
  assert_int_equal(site_model_init(&m, &p), 0);
  site_reach_t reach;
  assert_int_equal(site_reach_compute(&m, &reach), 0);
  /* The site must exercise what the test checks. */
  assert_true(reach.ndenied > 0);
  assert_true(reach.by_kind[SITE_REDIRECT] > 0);
  assert_true(reach.by_kind[SITE_NOT_FOUND] > 0);
  assert_true(reach.by_kind[SITE_ERROR_500] > 0);

  char pages_arg[16];
  snprintf(pages_arg, sizeof(pages_arg), "%u", pages);
  site_t site = {0};
  const char *name = tls ? "robots-https" : "robots-http";
  site_start(&site, name, tls, MODEL_SITE_ARGS(pages_arg), "--robots",
             "--gzip", (const char *)NULL);
  char base[64], seed[80], out[200], log[200], jsonl[200];
  snprintf(base, sizeof(base), "%s://127.0.0.1:%d", tls ? "https" : "http",
           site.port);
  snprintf(seed, sizeof(seed), "%s/", base);
  snprintf(out, sizeof(out), "%s/%s.out", dir, name);
  snprintf(log, sizeof(log), "%s/%s.log", dir, name);
  snprintf(jsonl, sizeof(jsonl), "%s/%s.jsonl", dir, name);
  const char *args[] = {"--workers", "2",       "--concurrency", "16",
                        "--per-host", "8",      "--timeout",     "5000",
                        "--retries",  "1",      "--robots",      "--log",
                        log,          "--jsonl", jsonl,          "--quiet",
                        tls ? "--ca-file" : seed, tls ? ca_pem : NULL,
                        tls ? seed : NULL,      NULL};
  int status = crawler_run(args, out);
  long violations = site_stop(&site);
  assert_int_equal(status, 0);
  assert_int_equal(violations, 0);

  /* The log: "/" once (301), each reached page once with its status, each
   * denied page once as "robots". */
  unsigned char *got = calloc(reach.universe, 1);
  assert_non_null(got);
  FILE *f = fopen(log, "r");
  assert_non_null(f);
  char line[4096];
  size_t lines = 0, roots = 0, fetched = 0, denied = 0, bad = 0;
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = '\0';
    lines++;
    char *sp = strchr(line, ' ');
    assert_non_null(sp);
    *sp = '\0';
    const char *what = line, *url = sp + 1;
    if (strcmp(url, seed) == 0) {
      roots++;
      bad += strcmp(what, "301") != 0;
      continue;
    }
    long long n = page_of(&m, url, base);
    if (n < 0 || got[n]++) {
      print_message("unexpected or repeated: %s %s\n", what, url);
      bad++;
      continue;
    }
    if (strcmp(what, "robots") == 0) {
      denied++;
      if (!reach.denied[n] || reach.seen[n]) {
        print_message("denied but allowed: %s\n", url);
        bad++;
      }
      continue;
    }
    fetched++;
    char want[16];
    snprintf(want, sizeof(want), "%d", site_page_status(&m, (uint64_t)n));
    if (!reach.seen[n] || strcmp(what, want) != 0) {
      print_message("%s: got %s, want %s%s\n", url, what, want,
                    reach.seen[n] ? "" : " (not reached)");
      bad++;
    }
  }
  fclose(f);
  assert_int_equal(bad, 0);
  assert_int_equal(roots, 1);
  assert_int_equal(fetched, reach.total);
  assert_int_equal(denied, reach.ndenied);

  /* The summary: robots.txt once, every response decoded. */
  char prefix[64];
  assert_int_equal(file_value(out, "robots: "), 1);
  snprintf(prefix, sizeof(prefix), "robots: 1 robots.txt fetched, ");
  assert_int_equal(file_value(out, prefix), (long long)reach.ndenied);
  assert_int_equal(file_value(out, "bodies: "), (long long)reach.total + 1);

  /* The access log: robots.txt once, no disallowed page. */
  f = fopen(site.access, "r");
  assert_non_null(f);
  size_t robots_txt = 0, requests = 0;
  bad = 0;
  while (fgets(line, sizeof(line), f)) {
    unsigned long long t, n;
    char path[2048];
    assert_int_equal(sscanf(line, "%llu %2047s", &t, path), 2);
    requests++;
    robots_txt += strcmp(path, "/robots.txt") == 0;
    if (sscanf(path, "/page/%llu", &n) == 1 &&
        site_page_disallowed(&m, n)) {
      print_message("disallowed page requested: %s\n", path);
      bad++;
    }
  }
  fclose(f);
  assert_int_equal(bad, 0);
  assert_int_equal(robots_txt, 1);
  /* + "/" + robots.txt (more only if a keep-alive connection closed
   * under a request, which is then sent again) */
  assert_true(requests >= reach.total + 2);

  /* The JSONL: one object per log line, with the documented fields. */
  f = fopen(jsonl, "r");
  assert_non_null(f);
  static json_field_t fl[JSON_MAX_FIELDS];
  static const char *const keys[] = {"url",   "final_url", "status",
                                     "content_type", "bytes", "links",
                                     "fetch_ms", "depth",  "error"};
  size_t objects = 0;
  bad = 0;
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = '\0';
    int nf = json_parse(line, fl);
    if (nf < 0) {
      print_message("not a JSON object: %s\n", line);
      bad++;
      continue;
    }
    objects++;
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
      if (!json_get(fl, nf, keys[k])) {
        print_message("no %s: %s\n", keys[k], line);
        bad++;
      }
    }
    const json_field_t *url = json_get(fl, nf, "url");
    const json_field_t *st = json_get(fl, nf, "status");
    const json_field_t *err = json_get(fl, nf, "error");
    const json_field_t *links = json_get(fl, nf, "links");
    const json_field_t *ct = json_get(fl, nf, "content_type");
    const json_field_t *depth = json_get(fl, nf, "depth");
    if (!url || !st || !err || !links || !ct || !depth || !url->is_string)
      continue;
    if (strcmp(url->str, seed) == 0) {
      bad += st->num != 301 || depth->num != 0;
      continue;
    }
    long long n = page_of(&m, url->str, base);
    if (n < 0) {
      bad++;
      continue;
    }
    if (reach.denied[n]) {
      if (!err->is_string || strcmp(err->str, "robots") != 0 ||
          st->num != 0) {
        print_message("denied page's line: %s\n", line);
        bad++;
      }
      continue;
    }
    int want = site_page_status(&m, (uint64_t)n);
    uint64_t targets[SITE_LINKS_MAX];
    size_t nlinks = want == 200 ? site_page_links(&m, (uint64_t)n, targets,
                                                  SITE_LINKS_MAX)
                                : 0;
    if (st->num != want || !err->is_null || links->num != (double)nlinks ||
        !ct->is_string || strcmp(ct->str, "text/html; charset=utf-8") != 0) {
      print_message("line disagrees with the model: %s\n", line);
      bad++;
    }
  }
  fclose(f);
  assert_int_equal(bad, 0);
  assert_int_equal(objects, lines);
  free(got);
  site_reach_free(&reach);
}

static void robots_gzip_matches_model(void **state) {
  (void)state;
  robots_gzip_crawl(0);
}

static void https_robots_gzip_matches_model(void **state) {
  (void)state;
  if (!have_certs) {
    print_message("no TLS in this build, or no certificates: skipped\n");
    skip();
  }
  robots_gzip_crawl(1);
}

/* ------------------------------------------------------------------------ */
/* 3: politeness                                                             */

/* The smallest gap between two consecutive page requests (paths starting
 * with "/page/") in an access log, how many there were, and the span from
 * the first to the last. */
static uint64_t smallest_gap(const char *path, size_t *count,
                             uint64_t *span) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[2048];
  uint64_t last = 0, first = 0, gap = UINT64_MAX;
  *count = 0;
  while (fgets(line, sizeof(line), f)) {
    unsigned long long t;
    char p[2048];
    assert_int_equal(sscanf(line, "%llu %2047s", &t, p), 2);
    if (strncmp(p, "/page/", 6) != 0)
      continue;
    if (*count > 0) {
      /* One line each, in the order the workers wrote them: two workers
       * may write out of order by a hair, hence the absolute difference. */
      uint64_t d = t > last ? t - last : last - t;
      if (d < gap)
        gap = d;
    }
    if (*count == 0)
      first = t;
    last = t;
    (*count)++;
  }
  fclose(f);
  *span = last > first ? last - first : 0;
  return gap;
}

static void delay_per_host(void **state) {
  (void)state;
  site_t site = {0};
  site_start(&site, "delay", 0, "--pages", "40", "--no-slow", "--hang-share",
             "0", "--error-share", "0", "--redirect-share", "0",
             (const char *)NULL);
  char seed[80], out[200];
  snprintf(seed, sizeof(seed), "http://127.0.0.1:%d/page/0", site.port);
  snprintf(out, sizeof(out), "%s/delay.out", dir);
  const char *args[] = {"--workers", "2", "--concurrency", "8",
                        "--delay-ms", "120", "--max-pages", "6",
                        "--quiet", seed, NULL};
  assert_int_equal(crawler_run(args, out), 0);
  site_stop(&site);
  /* The site stamps a request when its handler has parsed it: a loaded
   * machine (sanitizers, parallel tests) can delay one handler by more
   * than the delay, so single gaps are printed, not asserted. The span of
   * the whole sequence is: only its two ends carry such noise. Without
   * pacing it would be a few milliseconds. */
  size_t n;
  uint64_t span, gap = smallest_gap(site.access, &n, &span);
  print_message("--delay-ms 120: %zu requests over %" PRIu64
                " ms, smallest gap %" PRIu64 " ms\n", n, span, gap);
  assert_int_equal(n, 6);
  assert_true(span >= 5 * 120 * 2 / 3);

  /* Crawl-delay from robots.txt, larger than --delay-ms (0). */
  site_start(&site, "crawl-delay", 0, "--pages", "40", "--no-slow",
             "--hang-share", "0", "--error-share", "0", "--redirect-share",
             "0", "--robots", "--crawl-delay", "150", (const char *)NULL);
  snprintf(seed, sizeof(seed), "http://127.0.0.1:%d/page/0", site.port);
  const char *args2[] = {"--workers", "2", "--concurrency", "8",
                         "--robots", "--max-pages", "5", "--quiet",
                         seed, NULL};
  assert_int_equal(crawler_run(args2, out), 0);
  assert_int_equal(site_stop(&site), 0);
  gap = smallest_gap(site.access, &n, &span);
  print_message("Crawl-delay 0.15: %zu requests over %" PRIu64
                " ms, smallest gap %" PRIu64 " ms\n", n, span, gap);
  assert_true(n >= 3);
  assert_true(span >= (n - 1) * 150 * 2 / 3);
}

/* ------------------------------------------------------------------------ */
/* 4: scope                                                                  */

/* The pages a crawl from page 0 fetches when links go at most max_depth
 * deep (-1: no limit; redirects keep the depth) and pages for which
 * excluded(n) is true are never admitted: a breadth-first search, so each
 * page gets its least depth. Fills seen[universe]; returns how many. */
static size_t reach_limited(const site_model_t *m, int max_depth,
                            int (*excluded)(uint64_t), unsigned char *seen) {
  size_t universe = 2 * (size_t)m->p.pages, count = 0;
  uint64_t *queue = malloc(universe * sizeof(*queue));
  int *depth = calloc(universe, sizeof(*depth));
  assert_true(queue && depth);
  memset(seen, 0, universe);
  size_t head = 0, tail = 0;
  queue[tail++] = 0;
  seen[0] = 1;
  while (head < tail) {
    uint64_t n = queue[head++];
    count++;
    uint64_t to[SITE_LINKS_MAX];
    size_t k;
    int d = depth[n] + 1;
    if (site_page_kind(m, n) == SITE_REDIRECT) {
      to[0] = site_redirect_target(m, n);
      k = 1;
      d = depth[n];
    } else {
      k = site_page_links(m, n, to, SITE_LINKS_MAX);
    }
    if (max_depth >= 0 && d > max_depth)
      continue;
    for (size_t i = 0; i < k; i++) {
      if (seen[to[i]] || (excluded && excluded(to[i])))
        continue;
      seen[to[i]] = 1;
      depth[to[i]] = d;
      queue[tail++] = to[i];
    }
  }
  free(queue);
  free(depth);
  return count;
}

static int ends_in_5(uint64_t n) { return n % 10 == 5; }
static int is_odd(uint64_t n) { return n % 2 == 1; }

/* Compare a crawl's JSONL with seen[]: every page line is a seen page, once;
 * every seen page has a line; at most max_depth deep (-1: unchecked). */
static void check_jsonl_pages(const site_model_t *m, const char *jsonl,
                              const char *base, const unsigned char *seen,
                              size_t count, int max_depth) {
  size_t universe = 2 * (size_t)m->p.pages, lines = 0, bad = 0;
  unsigned char *got = calloc(universe, 1);
  assert_non_null(got);
  FILE *f = fopen(jsonl, "r");
  assert_non_null(f);
  static json_field_t fl[JSON_MAX_FIELDS];
  char line[4096];
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = '\0';
    int nf = json_parse(line, fl);
    assert_true(nf > 0);
    const json_field_t *url = json_get(fl, nf, "url");
    const json_field_t *depth = json_get(fl, nf, "depth");
    assert_true(url && url->is_string && depth);
    if (max_depth >= 0 && depth->num > max_depth) {
      print_message("too deep: %s\n", line);
      bad++;
    }
    long long n = page_of(m, url->str, base);
    if (n < 0)
      continue; /* "/" */
    lines++;
    if (!seen[n] || got[n]++) {
      print_message("not expected or twice: %s\n", url->str);
      bad++;
    }
  }
  fclose(f);
  free(got);
  assert_int_equal(bad, 0);
  assert_int_equal(lines, count);
}

static void scope_and_depth(void **state) {
  (void)state;
  site_params_t p;
  model_params(&p, 0);
  site_model_t m;
  assert_int_equal(site_model_init(&m, &p), 0);
  char pages_arg[16];
  snprintf(pages_arg, sizeof(pages_arg), "%u", pages);
  site_t site = {0};
  site_start(&site, "scope", 0, MODEL_SITE_ARGS(pages_arg),
             (const char *)NULL);
  char base[64], seed[80], out[200], jsonl[200];
  snprintf(base, sizeof(base), "http://127.0.0.1:%d", site.port);
  snprintf(seed, sizeof(seed), "%s/", base);
  snprintf(out, sizeof(out), "%s/scope.out", dir);
  unsigned char *seen = malloc(2 * (size_t)pages);
  assert_non_null(seen);

  /* --max-depth 1. */
  snprintf(jsonl, sizeof(jsonl), "%s/depth.jsonl", dir);
  const char *a1[] = {"--workers", "2", "--max-depth", "1", "--jsonl", jsonl,
                      "--quiet", seed, NULL};
  assert_int_equal(crawler_run(a1, out), 0);
  size_t count = reach_limited(&m, 1, NULL, seen);
  assert_true(count > 2 && count < site_count_kind(&m, SITE_OK));
  check_jsonl_pages(&m, jsonl, base, seen, count, 1);

  /* --exclude: no page whose number ends in 5, nor what only they link
   * to. */
  snprintf(jsonl, sizeof(jsonl), "%s/exclude.jsonl", dir);
  const char *a2[] = {"--workers", "2", "--exclude", "/page/[0-9]*5([?]|$)",
                      "--jsonl", jsonl, "--quiet", seed, NULL};
  assert_int_equal(crawler_run(a2, out), 0);
  count = reach_limited(&m, -1, ends_in_5, seen);
  check_jsonl_pages(&m, jsonl, base, seen, count, -1);

  /* --include: only even pages (and what they link to). */
  snprintf(jsonl, sizeof(jsonl), "%s/include.jsonl", dir);
  const char *a4[] = {"--workers", "2", "--include", "/page/[0-9]*[02468]([?]|$)",
                      "--jsonl", jsonl, "--quiet", seed, NULL};
  assert_int_equal(crawler_run(a4, out), 0);
  count = reach_limited(&m, -1, is_odd, seen);
  check_jsonl_pages(&m, jsonl, base, seen, count, -1);

  /* Hosts: from localhost, links to 127.0.0.1 only with --allow-domain. */
  struct addrinfo *ai = NULL, hints = {.ai_family = AF_INET,
                                       .ai_socktype = SOCK_STREAM};
  if (getaddrinfo("localhost", NULL, &hints, &ai) == 0) {
    freeaddrinfo(ai);
    char lseed[80];
    snprintf(lseed, sizeof(lseed), "http://localhost:%d/", site.port);
    for (int allow = 0; allow < 2; allow++) {
      snprintf(jsonl, sizeof(jsonl), "%s/hosts%d.jsonl", dir, allow);
      const char *a3[] = {"--workers", "2", "--max-pages", "300",
                          "--jsonl", jsonl, "--quiet",
                          allow ? "--allow-domain" : lseed,
                          allow ? "127.0.0.1" : NULL, allow ? lseed : NULL,
                          NULL};
      assert_int_equal(crawler_run(a3, out), 0);
      FILE *f = fopen(jsonl, "r");
      assert_non_null(f);
      char line[4096];
      size_t other = 0, local = 0;
      while (fgets(line, sizeof(line), f)) {
        other += strstr(line, "{\"url\":\"http://127.0.0.1:") == line;
        local += strstr(line, "{\"url\":\"http://localhost:") == line;
      }
      fclose(f);
      print_message("allow %d: %zu on localhost, %zu on 127.0.0.1\n", allow,
                    local, other);
      assert_true(local > 1);
      if (allow)
        assert_true(other > 0);
      else
        assert_int_equal(other, 0);
    }
  } else {
    print_message("localhost does not resolve: host scope not checked\n");
  }
  site_stop(&site);
  free(seen);
}

/* ------------------------------------------------------------------------ */
/* 5: deflate, raw deflate, a gzip bomb                                      */

/* Compress src with zlib (bits: 15 zlib, -15 raw, 31 gzip) into a new
 * buffer; its length in *n. */
static unsigned char *squeeze(const void *src, size_t len, int bits,
                              size_t *n) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, bits, 8,
                                Z_DEFAULT_STRATEGY),
                   Z_OK);
  uLong cap = deflateBound(&z, (uLong)len) + 64;
  unsigned char *out = malloc(cap);
  assert_non_null(out);
  z.next_in = (Bytef *)(uintptr_t)src;
  z.avail_in = (uInt)len;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  *n = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

typedef struct body {
  const char *path, *encoding;
  unsigned char *data;
  size_t len;
  const char *status; /* NULL: "200 OK" */
  const char *location; /* a Location header, or NULL */
} body_t;

/* A server answering GET PATH with the body of that path (404 otherwise),
 * one request per connection. */
static pid_t encoder_start(const body_t *bodies, size_t nb, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof(a);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  *port = ntohs(a.sin_port);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    for (;;) {
      int c = accept(fd, NULL, NULL);
      if (c < 0)
        _exit(1);
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
      char path[256] = "";
      sscanf(buf, "GET %255s", path);
      const body_t *b = NULL;
      for (size_t i = 0; i < nb; i++)
        if (strcmp(bodies[i].path, path) == 0)
          b = &bodies[i];
      char head[512];
      int hn = snprintf(head, sizeof(head),
                        "HTTP/1.1 %s\r\nContent-Type: text/html\r\n"
                        "%s%s%s%s%s%sContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n",
                        b ? (b->status ? b->status : "200 OK")
                          : "404 Not Found",
                        b && b->encoding ? "Content-Encoding: " : "",
                        b && b->encoding ? b->encoding : "",
                        b && b->encoding ? "\r\n" : "",
                        b && b->location ? "Location: " : "",
                        b && b->location ? b->location : "",
                        b && b->location ? "\r\n" : "", b ? b->len : 0);
      ssize_t w = write(c, head, (size_t)hn);
      for (size_t off = 0; b && w >= 0 && off < b->len; off += (size_t)w)
        w = write(c, b->data + off, b->len - off);
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

static void deflate_and_bomb(void **state) {
  (void)state;
  static const char page_z[] = "<html><body><a href=\"/raw\">raw</a>"
                               "</body></html>";
  static const char page_raw[] = "<html><body><a href=\"/plain\">p</a>"
                                 "</body></html>";
  static const char page_plain[] = "<html><body>end</body></html>";
  size_t bomb_len = (size_t)4 << 20;
  char *zeros = calloc(1, bomb_len);
  assert_non_null(zeros);
  body_t b[4] = {{"/deflate", "deflate", NULL, 0, NULL, NULL},
                 {"/raw", "deflate", NULL, 0, NULL, NULL},
                 {"/plain", NULL, (unsigned char *)page_plain,
                  sizeof(page_plain) - 1, NULL, NULL},
                 {"/bomb", "gzip", NULL, 0, NULL, NULL}};
  b[0].data = squeeze(page_z, sizeof(page_z) - 1, 15, &b[0].len);
  b[1].data = squeeze(page_raw, sizeof(page_raw) - 1, -15, &b[1].len);
  b[3].data = squeeze(zeros, bomb_len, 31, &b[3].len);
  free(zeros);
  assert_true(b[3].len < 64 * 1024);
  int port = 0;
  pid_t server = encoder_start(b, 4, &port);
  char s1[80], s2[80], out[200], log[200], save[200];
  snprintf(s1, sizeof(s1), "http://127.0.0.1:%d/deflate", port);
  snprintf(s2, sizeof(s2), "http://127.0.0.1:%d/bomb", port);
  snprintf(out, sizeof(out), "%s/deflate.out", dir);
  snprintf(log, sizeof(log), "%s/deflate.log", dir);
  snprintf(save, sizeof(save), "%s/saved", dir);
  assert_int_equal(mkdir(save, 0755), 0);
  /* --robots: the server's robots.txt is a 404, which allows all. */
  const char *args[] = {"--workers", "2", "--retries", "0", "--max-body",
                        "1048576", "--robots", "--save-dir", save, "--log",
                        log, "--quiet", s1, s2, NULL};
  int status = crawler_run(args, out);
  kill(server, SIGTERM);
  waitpid(server, NULL, 0);
  child_reaped(server);
  free(b[0].data);
  free(b[1].data);
  free(b[3].data);
  assert_int_equal(status, 0);
  FILE *f = fopen(log, "r");
  assert_non_null(f);
  char line[512];
  int seen_raw = 0, seen_plain = 0, seen_deflate = 0, toolarge = 0,
      lines = 0;
  char prefix_buf[64];
  while (fgets(line, sizeof(line), f)) {
    lines++;
    seen_deflate += strstr(line, "200 ") == line && strstr(line, "/deflate");
    seen_raw += strstr(line, "200 ") == line && strstr(line, "/raw");
    seen_plain += strstr(line, "200 ") == line && strstr(line, "/plain");
    toolarge += strstr(line, "toolarge ") == line && strstr(line, "/bomb");
  }
  fclose(f);
  assert_int_equal(seen_deflate, 1);
  assert_int_equal(seen_raw, 1);   /* the link in the zlib deflate body */
  assert_int_equal(seen_plain, 1); /* the link in the raw deflate body */
  assert_int_equal(toolarge, 1);
  assert_int_equal(lines, 4);
  assert_int_equal(file_value(out, "bodies: "), 2);
  assert_int_equal(file_value(out, "robots: "), 1);
  assert_int_equal(file_value(out, "robots: 1 robots.txt fetched, "), 0);
  /* --save-dir: /raw's body, decoded, under the FNV-1a hash of its URL;
   * three bodies saved (deflate, raw, plain). */
  char url[80], path[300];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/raw", port);
  uint64_t h = 0xcbf29ce484222325u;
  for (const char *q = url; *q; q++) {
    h ^= (unsigned char)*q;
    h *= 0x100000001b3u;
  }
  snprintf(path, sizeof(path), "%s/%016" PRIx64, save, h);
  f = fopen(path, "r");
  assert_non_null(f);
  char saved[256] = "";
  size_t got = fread(saved, 1, sizeof(saved) - 1, f);
  fclose(f);
  saved[got] = '\0';
  assert_string_equal(saved, page_raw);
  snprintf(prefix_buf, sizeof(prefix_buf), "bodies: 2 decoded (gzip, deflate), ");
  assert_int_equal(file_value(out, prefix_buf), 3);
}

/* ------------------------------------------------------------------------ */
/* 6: robots.txt unavailable, and another agent's group                      */

static void robots_unavailable_and_agents(void **state) {
  (void)state;
  static const char page[] = "<html><body>x</body></html>";
  body_t b[2] = {{"/robots.txt", NULL, (unsigned char *)"busy", 4,
                  "503 Service Unavailable", NULL},
                 {"/x", NULL, (unsigned char *)page, sizeof(page) - 1, NULL,
                  NULL}};
  int port = 0;
  pid_t server = encoder_start(b, 2, &port);
  char seed[80], out[200], log[200];
  snprintf(seed, sizeof(seed), "http://127.0.0.1:%d/x", port);
  snprintf(out, sizeof(out), "%s/unavailable.out", dir);
  snprintf(log, sizeof(log), "%s/unavailable.log", dir);
  const char *args[] = {"--workers", "2", "--robots", "--log", log,
                        "--quiet", seed, NULL};
  int status = crawler_run(args, out);
  kill(server, SIGTERM);
  waitpid(server, NULL, 0);
  child_reaped(server);
  assert_int_equal(status, 0);
  /* A 5xx robots.txt: everything disallowed. */
  assert_int_equal(file_value(out, "robots: 1 robots.txt fetched, "), 1);
  FILE *f = fopen(log, "r");
  assert_non_null(f);
  char line[256];
  assert_non_null(fgets(line, sizeof(line), f));
  assert_true(strncmp(line, "robots ", 7) == 0);
  fclose(f);

  /* A robots.txt that redirects (twice) is followed: its rules apply. */
  static const char rules[] = "User-agent: *\nDisallow: /x\n";
  body_t rb[4] = {
      {"/robots.txt", NULL, (unsigned char *)"", 0, "301 Moved", "/r1"},
      {"/r1", NULL, (unsigned char *)"", 0, "302 Found", "/r2"},
      {"/r2", NULL, (unsigned char *)rules, sizeof(rules) - 1, NULL, NULL},
      {"/y", NULL, (unsigned char *)page, sizeof(page) - 1, NULL, NULL}};
  server = encoder_start(rb, 4, &port);
  char seed_y[80];
  snprintf(seed, sizeof(seed), "http://127.0.0.1:%d/x", port);
  snprintf(seed_y, sizeof(seed_y), "http://127.0.0.1:%d/y", port);
  const char *ar[] = {"--workers", "2", "--robots", "--log", log,
                      "--quiet", seed, seed_y, NULL};
  status = crawler_run(ar, out);
  kill(server, SIGTERM);
  waitpid(server, NULL, 0);
  child_reaped(server);
  assert_int_equal(status, 0);
  assert_int_equal(file_value(out, "robots: "), 3); /* three requests */
  assert_int_equal(file_value(out, "robots: 3 robots.txt fetched, "), 1);
  assert_int_equal(file_value(out, "status 200: "), 1); /* /y */
  assert_int_equal(file_value(out, "status 404: "), -1); /* /x: never */

  /* The site's robots.txt disallows everything to "otherbot": as that
   * agent the crawler requests robots.txt and nothing else. */
  site_t site = {0};
  site_start(&site, "otherbot", 0, "--pages", "20", "--robots",
             (const char *)NULL);
  snprintf(seed, sizeof(seed), "http://127.0.0.1:%d/", site.port);
  const char *a2[] = {"--workers", "2", "--robots", "--user-agent",
                      "OtherBot", "--quiet", seed, NULL};
  assert_int_equal(crawler_run(a2, out), 0);
  assert_int_equal(site_stop(&site), 0);
  assert_int_equal(file_value(out, "robots: 1 robots.txt fetched, "), 1);
  f = fopen(site.access, "r");
  assert_non_null(f);
  size_t n = 0;
  while (fgets(line, sizeof(line), f)) {
    n++;
    assert_non_null(strstr(line, " /robots.txt"));
  }
  fclose(f);
  assert_int_equal(n, 1);
  /* A token with other characters is refused (exit 2: usage). */
  const char *a3[] = {"--user-agent", "bad/1.0", "--quiet", seed, NULL};
  assert_int_equal(crawler_run(a3, out), 2);
  /* So is a pattern that does not compile; a --save-dir that is not a
   * directory fails the crawl before it starts (exit 1). */
  const char *a4[] = {"--exclude", "(", "--quiet", seed, NULL};
  assert_int_equal(crawler_run(a4, out), 2);
  char missing[200];
  snprintf(missing, sizeof(missing), "%s/no-such-dir", dir);
  const char *a5[] = {"--save-dir", missing, "--quiet", seed, NULL};
  assert_int_equal(crawler_run(a5, out), 1);
  assert_int_equal(file_value(out, "Crawled: "), 0);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: crawler_web_test SITE CRAWLER [PAGES]\n");
    return 2;
  }
  site_exe = argv[1];
  crawler_exe = argv[2];
  if (argc > 3)
    pages = (unsigned)strtoul(argv[3], NULL, 10);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  if (CRAWLER_TEST_TLS) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s/certs' >/dev/null", MKCERT_SH,
             dir);
    have_certs = system(cmd) == 0;
    snprintf(ca_pem, sizeof(ca_pem), "%s/certs/ca.pem", dir);
    snprintf(cert_pem, sizeof(cert_pem), "%s/certs/server.pem", dir);
    snprintf(key_pem, sizeof(key_pem), "%s/certs/server.key", dir);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(robots_gzip_matches_model, kill_children),
      cmocka_unit_test_teardown(https_robots_gzip_matches_model,
                                kill_children),
      cmocka_unit_test_teardown(delay_per_host, kill_children),
      cmocka_unit_test_teardown(scope_and_depth, kill_children),
      cmocka_unit_test_teardown(deflate_and_bomb, kill_children),
      cmocka_unit_test_teardown(robots_unavailable_and_agents, kill_children),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "crawler_web_test: could not remove %s\n", dir);
  return failed;
}
