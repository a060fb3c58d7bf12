/*
 * crawl.h: the crawl engine shared by examples/crawler.c (the command-line
 * crawler) and bench/crawl.c (weft-bench's `crawl` workload).
 *
 * crawl_run() fetches every http:// and https:// page reachable from the
 * seed URLs, at most once each, with a bounded number of requests in
 * flight, and returns what happened in a crawl_stats_t. It runs inside a
 * weft task and spreads its work over every worker of the runtime:
 *
 *  1. The frontier is an unbounded weft_queue of admitted URLs. A URL is
 *     admitted once: when it is first inserted into the visited set (a
 *     hash set sharded 64 ways, shared by every task), and only while fewer
 *     than max_pages URLs were admitted.
 *  2. The calling task is the dispatcher: it takes a URL from the frontier,
 *     acquires a permit of the global Semaphore (`concurrency`), and spawns
 *     one fetch task for it into a task group.
 *  3. A fetch task acquires its host's Semaphore (`per_host`) for each
 *     attempt, sends one HTTP/1.1 GET on an idle keep-alive connection of
 *     that host's pool (or a new one) inside a timeout scope, parses the
 *     response with http_parser, and releases the permit. It retries
 *     transient failures with exponential backoff, admits the target of a
 *     redirect and, for a text/html body, every <a href> libxml2's HTML
 *     parser finds.
 *  4. Every admitted URL is counted as outstanding until its fetch task has
 *     finished with it; the task that brings the count to zero shuts the
 *     frontier down, which ends the dispatcher's loop. The dispatcher then
 *     cancels the helper tasks (progress, stop watcher), waits for the group
 *     and frees everything.
 *  5. Stopping early (`stop` set, from any thread): the watcher cancels the
 *     group, so every fetch task in flight returns WEFT_ECANCELED from its
 *     current suspension point, aborts its connection and finishes; the
 *     dispatcher drops what is still queued. The stats are complete all the
 *     same, with `interrupted` set.
 *
 * What is retried (up to `retries` more attempts, after backoff_ms, then
 * twice that, and so on, capped at 5 s, with +-25% jitter): a connection
 * refused, reset or closed before the response was complete, a request
 * timeout, a DNS "try again", and the statuses 502, 503 and 504. Not
 * retried: other statuses (500 included: usually a deterministic failure),
 * malformed responses, bodies over max_body, unknown hosts. A failure on a
 * reused keep-alive connection before any byte of the response came back
 * (the server closed it while idle) is retried at once on a new
 * connection without counting as an attempt.
 *
 * Hosts and https. A "host" is an origin: scheme, host name and port
 * (http://a and https://a are two, each with its own keep-alive pool and
 * per_host permits). https connections are TLS with one client context for
 * the whole crawl (crawl_config_t.tls, or one made from ca_file and
 * insecure_no_verify): the server's certificate chain is verified and must
 * name the host, and the context's session cache offers each host's last
 * session again, so that a host's later connections resume (an abbreviated
 * handshake, counted in tls_resumed). Redirects and links are followed
 * between http and https in both directions, as any other link. Without
 * any_host the hosts followed are the seeds' origins, plus the same name
 * under the other scheme when both use their default port (80, 443): a
 * site that moves from http://name/ to https://name/ is followed.
 * A certificate that fails verification (unknown CA, self-signed, expired,
 * another name, invalid) fails its URL as CRAWL_ERR_TLS_VERIFY, any other
 * handshake or TLS failure as CRAWL_ERR_TLS; neither is retried. A server
 * that closes without TLS's close_notify before its response is complete
 * counts as a reset (never as a complete response).
 */
#ifndef WEFT_EXAMPLES_CRAWL_H
#define WEFT_EXAMPLES_CRAWL_H

#include <weft.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Status codes are counted individually from 0 to CRAWL_STATUS_MAX - 1;
 * anything else a server sends lands in bucket 0. */
#define CRAWL_STATUS_MAX 600

/* Why a URL was not fetched. A URL counts under one kind, once, after its
 * last attempt. */
typedef enum crawl_err {
  CRAWL_ERR_TIMEOUT,   /* no complete response within timeout_ms */
  CRAWL_ERR_REFUSED,   /* connection refused */
  CRAWL_ERR_RESET,     /* connection reset or closed before the response */
  CRAWL_ERR_DNS,       /* the host name did not resolve */
  CRAWL_ERR_PARSE,     /* a response http_parser rejected */
  CRAWL_ERR_REDIRECTS, /* a redirect past max_redirects hops (its 3xx
                          response also counts in pages and status) */
  CRAWL_ERR_TOOLARGE,  /* a body over max_body bytes */
  CRAWL_ERR_TLS_VERIFY, /* https: the server's certificate failed
                           verification (untrusted, self-signed, expired,
                           for another name, invalid) */
  CRAWL_ERR_TLS,       /* https: any other TLS failure (a handshake the
                          server refused, no protocol version or ALPN in
                          common, a library built without TLS) */
  CRAWL_ERR_OTHER,     /* anything else (unreachable network, no memory) */
  CRAWL_ERR_COUNT
} crawl_err_t;

struct crawl_stats;

/* The configuration of a crawl. Fill with crawl_config_init(), then set. */
typedef struct crawl_config {
  const char *const *seeds; /* absolute http:// or https:// URLs to start
                               from */
  size_t nseeds;            /* how many */
  unsigned concurrency;     /* requests in flight in all (default 64) */
  unsigned per_host;        /* requests in flight per host (default 32) */
  size_t max_pages;         /* URLs fetched at most; 0 = no limit */
  unsigned timeout_ms;      /* per request, connect included (10000) */
  unsigned retries;         /* extra attempts on transient errors (2) */
  unsigned backoff_ms;      /* first retry delay (100) */
  unsigned max_redirects;   /* redirect hops followed from a URL (5) */
  size_t max_body;          /* largest body accepted, bytes (8 MiB) */
  int any_host;             /* follow links to hosts other than the seeds' */
  int no_keep_alive;        /* send "Connection: close": a connection per
                               request (politeness, tests of TLS resumption) */
  /* https: the client context of every TLS connection (weft/tls.h), shared
   * so that its session cache resumes sessions; the caller keeps it alive
   * through crawl_run(). NULL: crawl_run() makes one that verifies against
   * ca_file (NULL: the system's CA store), or not at all with
   * insecure_no_verify (INSECURE: anyone on the path can read and change
   * the traffic; for throw-away test certificates only), and offers ALPN
   * http/1.1: at the start if ca_file or insecure_no_verify is set, else
   * when the crawl first meets an https URL (loading the system's CA store
   * costs tens of milliseconds that a plain-http crawl does not pay; if it
   * fails then, the https URLs fail as CRAWL_ERR_TLS). */
  weft_tls_ctx_t *tls;
  const char *ca_file;    /* PEM file of the CAs to trust, when tls NULL */
  int insecure_no_verify; /* when tls NULL: no certificate verification */
  /* If not NULL, crawl_run() stops early once this event is set (from any
   * thread: weft_event_set() may be called from a signal thread). */
  weft_event_t *stop;
  /* If not NULL, called every progress_ms milliseconds from a task of the
   * crawl with a snapshot of the counters (workers and worker are 0/NULL).
   * It must not suspend. */
  void (*progress)(const struct crawl_stats *snapshot, void *arg);
  void *progress_arg;   /* passed to progress */
  unsigned progress_ms; /* its period (default 250) */
  /* If not NULL, one line per URL when it is done: "<status> <url>" for a
   * response, "<error-name> <url>" for a failure (crawl_err_name()),
   * "cancelled <url>" for a fetch cut short by stop. Written under a lock,
   * never across a suspension point. */
  FILE *log;
} crawl_config_t;

/* The counters of one worker at the end of the crawl. */
typedef struct crawl_worker_stats {
  uint64_t fetches;   /* fetch tasks that finished on this worker */
  uint64_t tasks_run; /* weft_worker_stats(): resumptions on this worker */
  uint64_t spawned;   /* weft_worker_stats(): tasks spawned here */
  uint64_t stolen;    /* weft_worker_stats(): tasks stolen by this worker */
} crawl_worker_stats_t;

/* What a crawl did. Counters are final once crawl_run() returns. */
typedef struct crawl_stats {
  uint64_t admitted; /* URLs admitted to the frontier */
  uint64_t pages;    /* responses received (one per URL at most) */
  uint64_t status[CRAWL_STATUS_MAX]; /* responses by status code */
  uint64_t errors;                   /* URLs that failed, all kinds */
  uint64_t error[CRAWL_ERR_COUNT];   /* URLs that failed, by kind */
  uint64_t cancelled;                /* fetches cut short by stop */
  uint64_t in_flight;  /* fetch tasks running now (snapshots only) */
  uint64_t queued;     /* admitted URLs not yet dispatched */
  uint64_t retries;    /* attempts beyond each URL's first */
  uint64_t redirects;  /* redirect targets admitted */
  uint64_t links;      /* <a href> links found in HTML bodies */
  uint64_t skipped;    /* links and redirects not followed: another scheme
                          or host, unparsable, too long, past max_pages */
  uint64_t connects;   /* connections opened */
  uint64_t reuses;     /* requests sent on a pooled keep-alive connection */
  uint64_t bytes;      /* bytes received, headers and bodies */
  uint64_t tls_handshakes; /* TLS connections opened (https) */
  uint64_t tls_resumed;    /* of which resumed a session (abbreviated
                              handshake, weft_tls_info_t.resumed) */
  uint64_t elapsed_ms; /* wall time of the crawl */
  int interrupted;     /* 1 if stop ended the crawl early */
  /* The first URL that failed with each kind ("" if none), for reports. */
  char first_error_url[CRAWL_ERR_COUNT][256];
  /* For the TLS kinds, why that URL failed, in OpenSSL's words with the
   * certificate check's result ("certificate verify failed: unable to get
   * local issuer certificate"); "" otherwise. */
  char first_error_reason[CRAWL_ERR_COUNT][256];
  unsigned workers;             /* entries of worker (0 in snapshots) */
  crawl_worker_stats_t *worker; /* per-worker counters, or NULL */
} crawl_stats_t;

/* Fill cfg with the defaults documented above (no seeds). */
void crawl_config_init(crawl_config_t *cfg);

/* Crawl as cfg says and fill *stats (free it with crawl_stats_destroy()).
 * Must be called from a task. Returns 0 when the crawl ran (whatever the
 * pages answered, and also when stopped early), or: WEFT_EINVAL (a seed is
 * not an absolute http:// or https:// URL, or a count is 0), WEFT_ENOMEM,
 * the errors of weft_tls_ctx_new() when making the TLS context (ca_file
 * missing, WEFT_ENOENT, or not PEM, WEFT_ETLS_CONFIG; WEFT_ENOSYS for
 * ca_file or insecure_no_verify in a library built without TLS),
 * WEFT_ECANCELED (the calling task was cancelled: the crawl stopped as if
 * `stop` had been set, and *stats is filled all the same). Suspends. */
int crawl_run(const crawl_config_t *cfg, crawl_stats_t *stats);

/* Release what crawl_run() allocated in stats. */
void crawl_stats_destroy(crawl_stats_t *stats);

/* A short name for an error kind: "timeout", "refused", "reset", "dns",
 * "parse", "redirects", "toolarge", "tls-verify", "tls", "other". */
const char *crawl_err_name(crawl_err_t kind);

#endif /* WEFT_EXAMPLES_CRAWL_H */
