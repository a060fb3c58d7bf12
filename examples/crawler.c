/*
 * crawler.c: a parallel web crawler on every core, the command-line front
 * of the crawl engine (crawl.h, crawl.c).
 *
 *     crawler [--workers N] [--concurrency C] [--per-host H] [--max-pages K]
 *             [--timeout MS] [--retries R] [--max-redirects N] [--any-host]
 *             [--no-keep-alive] [--ca-file FILE] [--insecure]
 *             [--log FILE] [--quiet] URL...
 *
 * It fetches every http:// and https:// page reachable from the URLs given,
 * on the hosts of those URLs (--any-host: on any host), each at most once,
 * with at most C requests in flight (default 64) and at most H per host
 * (default 32), over HTTP/1.1 keep-alive connections (--no-keep-alive: one
 * connection per request, with "Connection: close"), one pool per scheme,
 * host and port. Each request has MS milliseconds to
 * complete (default 10000); transient failures are retried R times (default
 * 2) with exponential backoff, redirects are followed up to N hops (default
 * 5), and the crawl stops admitting URLs after K (default 0: no limit).
 * N workers (default 0: one per core) share the work.
 * crawl.h says exactly what is retried and what each error kind means.
 *
 * https: the server's certificate is verified against the system's CA
 * store, or against the CAs of --ca-file (PEM: a private CA, such as
 * examples/mkcert.sh's ca.pem for a site started with its server.pem), and
 * must name the host. A URL whose server fails that is reported as error
 * "tls-verify", with OpenSSL's reason for the first one. --insecure turns
 * verification off (anyone on the path could then read and change the
 * traffic; for throw-away test certificates only). All https connections
 * share one TLS context, whose session cache resumes each host's session
 * on its later connections. Redirects between http and https are followed
 * both ways; a seed's site that moves from http://name/ to https://name/
 * (default ports) is followed without --any-host. SSLKEYLOGFILE=FILE in the
 * environment appends the connections' secrets to FILE, for Wireshark.
 *
 * While it runs it shows progress: on a terminal, one line rewritten four
 * times a second (pages done, requests in flight, errors, and URLs
 * finished per second over the last interval); otherwise one plain line a
 * second. --quiet turns that off.
 * At the end it prints a summary on stdout: pages by HTTP status, errors by
 * kind with the first URL that failed so, bytes received, elapsed time,
 * pages/s, connections opened and reused, TLS handshakes and how many of
 * them resumed a session, and for each worker the fetch
 * tasks it finished and its scheduler counters (weft_worker_stats()).
 * --log FILE writes one line per URL: its status or error kind, and the URL.
 *
 * Exit status: 0 when the crawl ran to its end, whatever the pages
 * answered; 130 after SIGINT (Ctrl-C) and 143 after SIGTERM, which stop the
 * crawl cleanly: requests in flight are cancelled (their connections
 * aborted), nothing more is fetched, and the summary is still printed. A
 * second signal ends the process at once. 2 for a usage error (including a
 * URL that is not an absolute http:// or https:// URL), 1 for any other
 * failure (a --ca-file that cannot be read included).
 *
 * Signals: the main task installs a handler for SIGINT and SIGTERM
 * (weft_signal_add_handler(), asyncio's loop.add_signal_handler()) before
 * the crawl starts. The handler runs as a task: on the first signal it sets
 * the crawl's stop event, on which the crawl's stop watcher task waits; on
 * the second it exits.
 */
#define _POSIX_C_SOURCE 200809L /* isatty */

#include "crawl.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct options {
  unsigned workers;     /* --workers: 0 = one per core */
  int quiet;            /* --quiet */
  const char *log_path; /* --log */
  crawl_config_t crawl; /* the rest */
} options_t;

/* What the progress callback remembers between two calls. */
typedef struct progress {
  int tty;             /* stdout is a terminal: rewrite one line */
  uint64_t last_pages; /* pages at the previous call */
  uint64_t last_ms;    /* elapsed_ms at the previous call */
  int shown;           /* a progress line was printed */
} progress_t;

/* Runs on a task of the crawl, never concurrently with itself. */
static void show_progress(const crawl_stats_t *s, void *arg) {
  progress_t *p = arg;
  uint64_t dt = s->elapsed_ms - p->last_ms;
  double rate =
      dt ? (double)(s->pages + s->errors - p->last_pages) * 1000.0 / (double)dt
         : 0.0;
  p->last_pages = s->pages + s->errors;
  p->last_ms = s->elapsed_ms;
  if (p->tty)
    printf("\r%9" PRIu64 " pages %6" PRIu64 " in flight %6" PRIu64
           " errors %9.0f pages/s ",
           s->pages, s->in_flight, s->errors, rate);
  else
    printf("progress: %" PRIu64 " pages, %" PRIu64 " in flight, %" PRIu64
           " errors, %.0f pages/s\n",
           s->pages, s->in_flight, s->errors, rate);
  fflush(stdout);
  p->shown = 1;
}

/* The main task's argument and result. */
typedef struct job {
  options_t *o;        /* the options */
  crawl_stats_t stats; /* what the crawl did */
  int rc;              /* crawl_run()'s result */
  struct stopper *st;  /* the signal handlers' state */
} job_t;

/* The stop signals' handler state. */
typedef struct stopper {
  weft_event_t *stop; /* set on the first signal */
  atomic_int signal;  /* the first signal's number, 0 if none */
} stopper_t;

/* SIGINT and SIGTERM: runs as a task of its own for each signal. */
static void on_stop_signal(int sig, void *arg) {
  stopper_t *st = arg;
  int none = 0;
  if (atomic_compare_exchange_strong(&st->signal, &none, sig)) {
    weft_event_set(st->stop);
  } else {
    static const char msg[] = "\ncrawler: second signal, exiting now\n";
    ssize_t ignored = write(2, msg, sizeof(msg) - 1);
    (void)ignored;
    _exit(128 + sig);
  }
}

static void *crawler_main(void *arg) {
  job_t *j = arg;
  if ((j->rc = weft_signal_add_handler(SIGINT, on_stop_signal, j->st)) != 0 ||
      (j->rc = weft_signal_add_handler(SIGTERM, on_stop_signal, j->st)) != 0)
    return NULL;
  j->rc = crawl_run(&j->o->crawl, &j->stats);
  return NULL;
}

/* With --ca-file or --insecure, the client context of every https
 * connection (one, so that its session cache resumes each host's
 * sessions), made before the crawl so that a bad file stops it at once:
 * asyncio's ssl.create_default_context(cafile=...) with ALPN http/1.1, or
 * with --insecure check_hostname False and CERT_NONE. Without them the
 * crawl makes the default one when it first meets an https URL. Returns 0,
 * or 1 after saying why on stderr. */
static int make_tls(crawl_config_t *cfg, weft_tls_ctx_t **out) {
  *out = NULL;
  if (!cfg->ca_file && !cfg->insecure_no_verify)
    return 0;
  weft_tls_opts_t to;
  weft_tls_opts_init(&to);
  to.ca_file = cfg->ca_file;
  to.insecure_no_verify = cfg->insecure_no_verify;
  to.alpn = "http/1.1";
  int rc = weft_tls_ctx_new(&to, out);
  if (rc != 0) {
    char why[256];
    if (weft_tls_error_string(why, sizeof(why)) <= 0)
      why[0] = '\0';
    fprintf(stderr, "crawler: TLS context: %s%s%s%s\n", weft_strerror(rc),
            why[0] ? " (" : "", why, why[0] ? ")" : "");
    return 1;
  }
  if (cfg->insecure_no_verify)
    fprintf(stderr, "crawler: --insecure: https servers' certificates are "
                    "not verified\n");
  cfg->tls = *out;
  return 0;
}

static void print_summary(const crawl_stats_t *s) {
  double secs = (double)s->elapsed_ms / 1000.0;
  printf("%s: %" PRIu64 " pages, %" PRIu64 " errors in %.3f s: %.1f pages/s, "
         "%" PRIu64 " bytes\n",
         s->interrupted ? "Interrupted" : "Crawled", s->pages, s->errors, secs,
         secs > 0 ? (double)s->pages / secs : 0.0, s->bytes);
  for (int i = 0; i < CRAWL_STATUS_MAX; i++) {
    if (s->status[i])
      printf("status %d: %" PRIu64 "\n", i, s->status[i]);
  }
  for (int k = 0; k < CRAWL_ERR_COUNT; k++) {
    if (s->error[k])
      printf("error %s: %" PRIu64 " (first: %s%s%s)\n",
             crawl_err_name((crawl_err_t)k), s->error[k],
             s->first_error_url[k], s->first_error_reason[k][0] ? ": " : "",
             s->first_error_reason[k]);
  }
  if (s->cancelled)
    printf("cancelled: %" PRIu64 "\n", s->cancelled);
  printf("urls: %" PRIu64 " admitted, %" PRIu64 " links found, %" PRIu64
         " redirects followed, %" PRIu64 " not followed, %" PRIu64 " retries\n",
         s->admitted, s->links, s->redirects, s->skipped, s->retries);
  printf("connections: %" PRIu64 " opened, %" PRIu64 " reused\n", s->connects,
         s->reuses);
  if (s->tls_handshakes)
    printf("tls: %" PRIu64 " handshakes, %" PRIu64 " resumed\n",
           s->tls_handshakes, s->tls_resumed);
  for (unsigned w = 0; w < s->workers; w++)
    printf("worker %u: %" PRIu64 " fetches, %" PRIu64 " tasks run, %" PRIu64
           " spawned, %" PRIu64 " stolen\n",
           w, s->worker[w].fetches, s->worker[w].tasks_run,
           s->worker[w].spawned, s->worker[w].stolen);
}

static int usage(void) {
  fprintf(stderr,
          "usage: crawler [--workers N] [--concurrency C] [--per-host H] "
          "[--max-pages K]\n"
          "               [--timeout MS] [--retries R] [--max-redirects N] "
          "[--any-host]\n"
          "               [--no-keep-alive] [--ca-file FILE] [--insecure]\n"
          "               [--log FILE] [--quiet] URL...\n");
  return 2;
}

/* Parse a decimal count in [min, max]; false if s is not one. */
static int parse_count(const char *s, unsigned long min, unsigned long max,
                       unsigned long *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min ||
      v > max)
    return 0;
  *out = v;
  return 1;
}

int main(int argc, char **argv) {
  options_t o = {0};
  crawl_config_init(&o.crawl);
  const char **seeds = calloc((size_t)argc, sizeof(*seeds));
  if (!seeds)
    return 1;
  size_t nseeds = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    unsigned long v = 0;
    int has_value = i + 1 < argc;
#define NUM(name, min, max)                                                    \
  (strcmp(a, name) == 0 && has_value && parse_count(argv[++i], min, max, &v))
    if (strcmp(a, "--quiet") == 0)
      o.quiet = 1;
    else if (strcmp(a, "--any-host") == 0)
      o.crawl.any_host = 1;
    else if (strcmp(a, "--no-keep-alive") == 0)
      o.crawl.no_keep_alive = 1;
    else if (strcmp(a, "--insecure") == 0)
      o.crawl.insecure_no_verify = 1;
    else if (strcmp(a, "--ca-file") == 0 && has_value)
      o.crawl.ca_file = argv[++i];
    else if (strcmp(a, "--log") == 0 && has_value)
      o.log_path = argv[++i];
    else if (NUM("--workers", 0, 1024))
      o.workers = (unsigned)v;
    else if (NUM("--concurrency", 1, 100000))
      o.crawl.concurrency = (unsigned)v;
    else if (NUM("--per-host", 1, 100000))
      o.crawl.per_host = (unsigned)v;
    else if (NUM("--max-pages", 0, (unsigned long)SIZE_MAX))
      o.crawl.max_pages = v;
    else if (NUM("--timeout", 1, 86400000))
      o.crawl.timeout_ms = (unsigned)v;
    else if (NUM("--retries", 0, 100))
      o.crawl.retries = (unsigned)v;
    else if (NUM("--max-redirects", 0, 100))
      o.crawl.max_redirects = (unsigned)v;
    else if (a[0] == '-' && a[1] == '-')
      return free(seeds), usage();
    else
      seeds[nseeds++] = a;
#undef NUM
  }
  if (nseeds == 0)
    return free(seeds), usage();
  weft_tls_ctx_t *tls;
  if (make_tls(&o.crawl, &tls) != 0)
    return free(seeds), 1;
  o.crawl.seeds = seeds;
  o.crawl.nseeds = nseeds;

  FILE *log = NULL;
  if (o.log_path) {
    log = fopen(o.log_path, "w");
    if (!log) {
      fprintf(stderr, "crawler: %s: %s\n", o.log_path, strerror(errno));
      weft_tls_ctx_free(tls);
      free(seeds);
      return 1;
    }
    o.crawl.log = log;
  }
  progress_t prog = {.tty = isatty(STDOUT_FILENO)};
  if (!o.quiet) {
    o.crawl.progress = show_progress;
    o.crawl.progress_arg = &prog;
    o.crawl.progress_ms = prog.tty ? 250 : 1000;
  }

  static weft_event_t stop = WEFT_EVENT_INITIALIZER;
  static stopper_t st;
  st.stop = &stop;
  o.crawl.stop = &stop;

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = o.workers;
  job_t job = {.o = &o, .st = &st};
  int rc = weft_run(crawler_main, &job, &cfg, NULL);

  if (prog.tty && prog.shown)
    printf("\n");
  int status = 0;
  if (rc != 0) {
    fprintf(stderr, "crawler: weft_run: %s\n", weft_strerror(rc));
    status = 1;
  } else if (job.rc == WEFT_EINVAL) {
    fprintf(stderr,
            "crawler: every URL must be an absolute http:// or https:// URL\n");
    status = usage();
  } else {
    if (job.rc != 0)
      fprintf(stderr, "crawler: %s\n", weft_strerror(job.rc));
    print_summary(&job.stats);
    /* Only the signal handler sets the stop event. */
    int sig = atomic_load(&st.signal);
    status = job.rc != 0 ? 1 : job.stats.interrupted && sig ? 128 + sig : 0;
  }
  crawl_stats_destroy(&job.stats);
  if (log && fclose(log) != 0 && status == 0)
    status = 1;
  weft_tls_ctx_free(tls);
  free(seeds);
  return status;
}
