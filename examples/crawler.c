/*
 * crawler.c: a parallel web crawler on every core, the command-line front
 * of the crawl engine (crawl.h, crawl.c).
 *
 *     crawler [--workers N] [--concurrency C] [--per-host H] [--max-pages K]
 *             [--timeout MS] [--retries R] [--max-redirects N] [--any-host]
 *             [--no-keep-alive] [--ca-file FILE] [--insecure]
 *             [--user-agent TOKEN] [--robots] [--delay-ms MS]
 *             [--same-domain] [--allow-domain D]... [--include RE]...
 *             [--exclude RE]... [--max-depth N] [--max-body BYTES]
 *             [--jsonl FILE|-] [--save-dir DIR]
 *             [--log FILE] [--quiet]
 *             [--redis redis://HOST:PORT/NAME [--lease-ms MS]
 *              [--host-delay-ms MS]] URL...
 *     crawler --redis redis://HOST:PORT/NAME --status
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
 * On the real web (crawl.h says exactly what each does): --robots obeys
 * each host's robots.txt (RFC 9309) for the product token --user-agent
 * (default weft-crawler, also sent as "User-Agent: TOKEN/VERSION");
 * --delay-ms MS keeps requests to one host MS apart (a larger Crawl-delay
 * wins with --robots); --same-domain follows the seeds' domains (a host
 * name minus its first label), --allow-domain D also D and its subdomains;
 * --include RE and --exclude RE (POSIX extended regular expressions on the
 * canonical URL, repeatable) filter links and redirects; --max-depth N
 * follows links at most N deep; --max-body BYTES (default 8 MiB) bounds a
 * body, decoded size included. gzip and deflate bodies are decoded.
 * --jsonl FILE writes one JSON object per URL (url, final_url, status,
 * content_type, bytes, body_bytes, links, fetch_ms, depth, error); with
 * "-" it goes to stdout, and progress and summary to stderr. --save-dir
 * DIR saves each 2xx body under DIR, named by the 16 hex digits of the
 * FNV-1a 64-bit hash of the canonical URL.
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
 * Many processes: with --redis, the frontier (the URLs seen, queued and
 * leased, and the crawl's counters) is kept in Redis under keys NAME:*
 * (crawl_redis.h), and every crawler started with the same URL and NAME,
 * on any machine, works on the same crawl: each URL is fetched once in
 * all, a URL whose process died is handed out again after its lease
 * (--lease-ms, default 120000; a live process renews its leases every
 * third of that), --max-pages counts in all, and at most one URL of an origin is
 * taken per --host-delay-ms (default: --delay-ms) across the processes,
 * on top of --delay-ms within each process. Stopping
 * every process and starting them again resumes the crawl; nothing
 * finished is fetched again. If Redis goes away, the crawlers say so,
 * retry with backoff, and go on when it is back. Each process prints its
 * own summary; `crawler --redis URL --status` prints the crawl's global
 * progress (admitted, queued, leased, done, by status and error, leases
 * by process) and exits.
 *
 * Signals: the main task installs a handler for SIGINT and SIGTERM
 * (weft_signal_add_handler(), asyncio's loop.add_signal_handler()) before
 * the crawl starts. The handler runs as a task: on the first signal it sets
 * the crawl's stop event, on which the crawl's stop watcher task waits; on
 * the second it exits.
 */
#define _POSIX_C_SOURCE 200809L /* isatty, fileno */

#include "crawl.h"
#include "crawl_redis.h"
#include "redis.h"

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
  const char *jsonl_path; /* --jsonl ("-": stdout) */
  const char *redis;    /* --redis URL */
  int status;           /* --status */
  crawl_redis_opts_t ropts; /* --lease-ms, --host-delay-ms */
  crawl_config_t crawl; /* the rest */
} options_t;

/* What the progress callback remembers between two calls. */
typedef struct progress {
  FILE *out;           /* stdout, or stderr when the JSONL goes to stdout */
  int tty;             /* out is a terminal: rewrite one line */
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
    fprintf(p->out,
            "\r%9" PRIu64 " pages %6" PRIu64 " in flight %6" PRIu64
            " errors %9.0f pages/s ",
            s->pages, s->in_flight, s->errors, rate);
  else
    fprintf(p->out,
            "progress: %" PRIu64 " pages, %" PRIu64 " in flight, %" PRIu64
            " errors, %.0f pages/s\n",
            s->pages, s->in_flight, s->errors, rate);
  fflush(p->out);
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
  if (!j->o->redis) {
    j->rc = crawl_run(&j->o->crawl, &j->stats);
    return NULL;
  }
  if (j->o->status) {
    j->rc = crawl_redis_status(j->o->redis, stdout);
    return NULL;
  }
  /* The shared frontier: max_pages counts across every process. */
  crawl_frontier_t fr;
  j->o->ropts.url = j->o->redis;
  j->o->ropts.max_pages = j->o->crawl.max_pages;
  if (!j->o->ropts.host_delay_ms) /* --delay-ms holds across processes too */
    j->o->ropts.host_delay_ms = j->o->crawl.delay_ms;
  if ((j->rc = crawl_frontier_redis_new(&j->o->ropts, &fr)) != 0)
    return NULL;
  j->o->crawl.frontier = &fr;
  j->rc = crawl_run(&j->o->crawl, &j->stats);
  fr.ops->close(fr.self);
  j->o->crawl.frontier = NULL;
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

static void print_summary(FILE *out, const crawl_stats_t *s) {
  double secs = (double)s->elapsed_ms / 1000.0;
  fprintf(out, "%s: %" PRIu64 " pages, %" PRIu64 " errors in %.3f s: %.1f pages/s, "
         "%" PRIu64 " bytes\n",
         s->interrupted ? "Interrupted" : "Crawled", s->pages, s->errors, secs,
         secs > 0 ? (double)s->pages / secs : 0.0, s->bytes);
  for (int i = 0; i < CRAWL_STATUS_MAX; i++) {
    if (s->status[i])
      fprintf(out, "status %d: %" PRIu64 "\n", i, s->status[i]);
  }
  for (int k = 0; k < CRAWL_ERR_COUNT; k++) {
    if (s->error[k])
      fprintf(out, "error %s: %" PRIu64 " (first: %s%s%s)\n",
             crawl_err_name((crawl_err_t)k), s->error[k],
             s->first_error_url[k], s->first_error_reason[k][0] ? ": " : "",
             s->first_error_reason[k]);
  }
  if (s->cancelled)
    fprintf(out, "cancelled: %" PRIu64 "\n", s->cancelled);
  fprintf(out, "urls: %" PRIu64 " admitted, %" PRIu64 " links found, %" PRIu64
         " redirects followed, %" PRIu64 " not followed, %" PRIu64 " retries\n",
         s->admitted, s->links, s->redirects, s->skipped, s->retries);
  fprintf(out, "connections: %" PRIu64 " opened, %" PRIu64 " reused\n", s->connects,
         s->reuses);
  if (s->robots_fetches || s->robots_denied)
    fprintf(out, "robots: %" PRIu64 " robots.txt fetched, %" PRIu64
            " URLs disallowed\n",
            s->robots_fetches, s->robots_denied);
  if (s->decoded || s->saved)
    fprintf(out, "bodies: %" PRIu64 " decoded (gzip, deflate), %" PRIu64
            " saved\n",
            s->decoded, s->saved);
  if (s->tls_handshakes)
    fprintf(out, "tls: %" PRIu64 " handshakes, %" PRIu64 " resumed\n",
           s->tls_handshakes, s->tls_resumed);
  for (unsigned w = 0; w < s->workers; w++)
    fprintf(out, "worker %u: %" PRIu64 " fetches, %" PRIu64 " tasks run, %" PRIu64
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
          "               [--user-agent TOKEN] [--robots] [--delay-ms MS]\n"
          "               [--same-domain] [--allow-domain D]... "
          "[--include RE]... [--exclude RE]...\n"
          "               [--max-depth N] [--max-body BYTES] [--jsonl FILE|-]\n"
          "               [--save-dir DIR]\n"
          "               [--log FILE] [--quiet]\n"
          "               [--redis redis://HOST:PORT/NAME [--lease-ms MS]"
          " [--host-delay-ms MS]] URL...\n"
          "       crawler --redis redis://HOST:PORT/NAME --status\n");
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

static void free_args(const char **seeds, const char **domains,
                      const char **include, const char **exclude) {
  free(seeds);
  free(domains);
  free(include);
  free(exclude);
}

int main(int argc, char **argv) {
  options_t o = {0};
  crawl_config_init(&o.crawl);
  crawl_redis_opts_init(&o.ropts);
  const char **seeds = calloc((size_t)argc, sizeof(*seeds));
  /* --allow-domain, --include, --exclude: at most argc of each. */
  const char **domains = calloc((size_t)argc, sizeof(*domains));
  const char **include = calloc((size_t)argc, sizeof(*include));
  const char **exclude = calloc((size_t)argc, sizeof(*exclude));
  if (!seeds || !domains || !include || !exclude)
    return 1;
  o.crawl.domains = domains;
  o.crawl.include = include;
  o.crawl.exclude = exclude;
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
    else if (strcmp(a, "--jsonl") == 0 && has_value)
      o.jsonl_path = argv[++i];
    else if (strcmp(a, "--save-dir") == 0 && has_value)
      o.crawl.save_dir = argv[++i];
    else if (strcmp(a, "--user-agent") == 0 && has_value)
      o.crawl.user_agent = argv[++i];
    else if (strcmp(a, "--robots") == 0)
      o.crawl.robots = 1;
    else if (strcmp(a, "--same-domain") == 0)
      o.crawl.scope = CRAWL_SCOPE_DOMAIN;
    else if (strcmp(a, "--allow-domain") == 0 && has_value)
      domains[o.crawl.ndomains++] = argv[++i];
    else if (strcmp(a, "--include") == 0 && has_value)
      include[o.crawl.ninclude++] = argv[++i];
    else if (strcmp(a, "--exclude") == 0 && has_value)
      exclude[o.crawl.nexclude++] = argv[++i];
    else if (NUM("--delay-ms", 0, 3600000))
      o.crawl.delay_ms = (unsigned)v;
    else if (NUM("--max-depth", 0, 1000000))
      o.crawl.max_depth = (int)v;
    else if (NUM("--max-body", 1, (unsigned long)SIZE_MAX))
      o.crawl.max_body = v;
    else if (strcmp(a, "--redis") == 0 && has_value)
      o.redis = argv[++i];
    else if (strcmp(a, "--status") == 0)
      o.status = 1;
    else if (NUM("--lease-ms", 1, 86400000))
      o.ropts.lease_ms = (unsigned)v;
    else if (NUM("--host-delay-ms", 0, 86400000))
      o.ropts.host_delay_ms = (unsigned)v;
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
      return free_args(seeds, domains, include, exclude), usage();
    else
      seeds[nseeds++] = a;
#undef NUM
  }
  if (o.status && !o.redis)
    return free_args(seeds, domains, include, exclude), usage();
  if (o.status) { /* --status: print the crawl's progress, nothing else */
    o.quiet = 1;
    weft_config_t scfg;
    weft_config_init(&scfg);
    scfg.workers = 1;
    static stopper_t sst; /* the handlers need one; nothing sets it */
    static weft_event_t sstop = WEFT_EVENT_INITIALIZER;
    sst.stop = &sstop;
    job_t sj = {.o = &o, .st = &sst};
    int src = weft_run(crawler_main, &sj, &scfg, NULL);
    free_args(seeds, domains, include, exclude);
    if (src != 0 || sj.rc != 0) {
      fprintf(stderr, "crawler: --status: %s\n",
              redis_strerror(src != 0 ? src : sj.rc));
      return sj.rc == WEFT_EINVAL ? 2 : 1;
    }
    return 0;
  }
  if (nseeds == 0)
    return free_args(seeds, domains, include, exclude), usage();
  weft_tls_ctx_t *tls;
  if (make_tls(&o.crawl, &tls) != 0)
    return free_args(seeds, domains, include, exclude), 1;
  o.crawl.seeds = seeds;
  o.crawl.nseeds = nseeds;

  FILE *log = NULL, *jsonl = NULL;
  int jsonl_stdout = o.jsonl_path && strcmp(o.jsonl_path, "-") == 0;
  if (o.log_path) {
    log = fopen(o.log_path, "w");
    if (!log) {
      fprintf(stderr, "crawler: %s: %s\n", o.log_path, strerror(errno));
      weft_tls_ctx_free(tls);
      free_args(seeds, domains, include, exclude);
      return 1;
    }
    o.crawl.log = log;
  }
  if (o.jsonl_path) {
    jsonl = jsonl_stdout ? stdout : fopen(o.jsonl_path, "w");
    if (!jsonl) {
      fprintf(stderr, "crawler: %s: %s\n", o.jsonl_path, strerror(errno));
      if (log)
        fclose(log);
      weft_tls_ctx_free(tls);
      free_args(seeds, domains, include, exclude);
      return 1;
    }
    o.crawl.jsonl = jsonl;
  }
  /* The JSONL on stdout: progress and summary go to stderr. */
  FILE *out = jsonl_stdout ? stderr : stdout;
  progress_t prog = {.out = out, .tty = isatty(fileno(out))};
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
    fprintf(out, "\n");
  int status = 0;
  if (rc != 0) {
    fprintf(stderr, "crawler: weft_run: %s\n", weft_strerror(rc));
    status = 1;
  } else if (job.rc == WEFT_EINVAL) {
    fprintf(stderr,
            "crawler: every URL must be an absolute http:// or https:// URL, "
            "--user-agent a token of letters, '_' and '-', and every "
            "--include and --exclude a POSIX extended regular expression%s\n",
            o.redis ? ", and --redis redis://HOST:PORT/NAME" : "");
    status = usage();
  } else {
    if (job.rc != 0)
      fprintf(stderr, "crawler: %s\n", redis_strerror(job.rc));
    print_summary(out, &job.stats);
    /* Only the signal handler sets the stop event. */
    int sig = atomic_load(&st.signal);
    status = job.rc != 0 ? 1 : job.stats.interrupted && sig ? 128 + sig : 0;
  }
  crawl_stats_destroy(&job.stats);
  if (log && fclose(log) != 0 && status == 0)
    status = 1;
  if (jsonl && (jsonl_stdout ? fflush(jsonl) : fclose(jsonl)) != 0 &&
      status == 0)
    status = 1;
  weft_tls_ctx_free(tls);
  free_args(seeds, domains, include, exclude);
  return status;
}
