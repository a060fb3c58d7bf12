/*
 * crawl.h: the crawl engine shared by examples/crawler.c (the command-line
 * crawler) and bench/crawl.c (weft-bench's `crawl` workload).
 *
 * crawl_run() fetches every http:// and https:// page reachable from the
 * seed URLs, at most once each, with a bounded number of requests in
 * flight, and returns what happened in a crawl_stats_t. It runs inside a
 * weft task and spreads its work over every worker of the runtime:
 *
 *  1. The frontier (crawl_frontier_ops_t below) holds the admitted URLs
 *     and the set of every URL seen. By default it is process-local: an
 *     unbounded weft_queue and a hash set sharded 64 ways, shared by every
 *     task; a URL is admitted once, when it is first inserted into the set,
 *     and only while fewer than max_pages URLs were admitted.
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
 *  4. Every URL taken is done() with the frontier when its fetch task has
 *     finished with it; the frontier's take() returns WEFT_EOF once nothing
 *     is queued or in flight (the local one counts the admitted URLs not
 *     yet done), which ends the dispatcher's loop. The dispatcher then
 *     cancels the helper tasks (progress, stop watcher), waits for the group
 *     and frees everything.
 *  5. Stopping early (`stop` set, from any thread): the watcher cancels the
 *     group, so every fetch task in flight returns WEFT_ECANCELED from its
 *     current suspension point, aborts its connection and finishes; the
 *     frontier's stop() ends the dispatcher's take(), and what is still
 *     queued is counted as cancelled. The stats are complete all the
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
 *
 * Bodies. Every request says "Accept-Encoding: gzip, deflate"; a gzip,
 * x-gzip or deflate body (zlib-wrapped or raw) is decoded as it arrives,
 * and max_body applies to the decoded size too (a gzip bomb fails as
 * CRAWL_ERR_TOOLARGE after max_body bytes of output); one that does not
 * decode fails as CRAWL_ERR_PARSE. A body in another content coding is
 * not read (no links). Chunked bodies are de-chunked by http_parser.
 *
 * Real-web options (crawl_config_t; all off by default, at no cost then):
 *  - robots: each host's /robots.txt (examples/robots.h) is fetched before
 *    its first page, once (the other tasks of that host wait for it), and
 *    cached for robots_ttl_ms; a URL it disallows is not fetched: counted
 *    in robots_denied, logged "robots <url>", done() with denied set.
 *  - delay_ms and Crawl-delay: requests to one host start at least that
 *    far apart; only that host's tasks sleep (docs/design.md §11), each
 *    holding one of the `concurrency` permits meanwhile (so keep per_host
 *    small when one host dominates a delayed crawl).
 *  - scope, domains, include, exclude, max_depth: which links and
 *    redirects are admitted (seeds always are).
 *  - jsonl: one JSON object per line for each URL done, with the keys
 *    url, final_url (a redirect's resolved target, else url), status (0
 *    if none), content_type (null if none), bytes (received for its last
 *    attempt, headers included), body_bytes (decoded body kept: 2xx HTML,
 *    or any 2xx with save_dir), links (<a href> found), fetch_ms (from
 *    its fetch task's start, robots.txt and politeness waits included),
 *    depth, error (null, an error kind's name, "robots" or "cancelled").
 *    Strings are JSON-escaped; bytes over 0x7e appear as \u00XX.
 *  - save_dir: each 2xx body, decoded, in its own file (see save_dir).
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

/* ------------------------------------------------------------------------ */
/* The frontier                                                              */

/* Where admitted URLs wait for a fetch, and the set of URLs ever seen. The
 * engine talks to it only through crawl_frontier_ops_t, so that the same
 * engine crawls from the process-local frontier (crawl_frontier_local_new(),
 * the default) or from one shared by several crawler processes (Redis:
 * examples/crawl_redis.c).
 *
 * An item's life: admit() (once per URL, ever: the frontier's seen-set
 * decides) -> queued -> take() hands it to this engine with a lease ->
 * done() (fetched, failed for good, or cancelled) releases the lease. The
 * engine calls admit() for the seeds and for every link and redirect target
 * that its scope follows; the frontier alone enforces max_pages (it must
 * count admissions globally when it is shared). The crawl is complete when
 * nothing is queued and nothing is leased anywhere: take() says so with
 * WEFT_EOF. */

/* An item handed out by take(). */
typedef struct crawl_item {
  const char *url; /* canonical absolute URL, NUL-terminated; owned by the
                      frontier and valid until done() for this item */
  unsigned depth;  /* links followed from a seed to reach it (seeds: 0; a
                      redirect target keeps its source's depth) */
  unsigned hops;   /* redirects followed to reach it (max_redirects) */
  void *lease;     /* opaque to the engine: the frontier's token for it */
} crawl_item_t;

/* What became of an item, given to done(). */
typedef struct crawl_outcome {
  int status;      /* HTTP status of the final response; 0 if none */
  int error;       /* the crawl_err_t it failed with, or -1 */
  int cancelled;   /* 1: cut short by stop, not fetched (a shared frontier
                      may hand it out again; the local one drops it) */
  int denied;      /* 1: its host's robots.txt disallows it: not fetched */
  uint64_t bytes;  /* bytes received for it, headers and bodies */
} crawl_outcome_t;

/* admit()'s verdicts. */
enum {
  CRAWL_ADMIT_SEEN = 0,     /* seen before (or the frontier is stopped) */
  CRAWL_ADMIT_NEW = 1,      /* new: queued */
  CRAWL_ADMIT_FULL = 2      /* new but max_pages were admitted: dropped
                               (and remembered as seen) */
};

typedef struct crawl_frontier_ops {
  /* Insert url[0..n) (canonical, from the engine) into the seen-set; if it
   * is new and fewer than max_pages URLs were admitted (globally), queue
   * it with depth and hops. *verdict is a CRAWL_ADMIT_* value. Returns 0
   * or a negative error (WEFT_ENOMEM...: *verdict is then undefined).
   * Called from any task, concurrently; may suspend. */
  int (*admit)(void *self, const char *url, size_t n, unsigned depth,
               unsigned hops, int *verdict);
  /* The next item to fetch, with its lease, into *out; suspends until one
   * is available. Returns 0, WEFT_EOF when the crawl is complete (nothing
   * queued, nothing leased), WEFT_ECANCELED when stop() was called or the
   * calling task was cancelled, or another negative error. Called by one
   * task at a time (the dispatcher). */
  int (*take)(void *self, crawl_item_t *out);
  /* The item's fetch is finished: releases its lease and counts it; after
   * this it is never handed out again (unless o->cancelled and the
   * frontier is shared). Any task; must not suspend for long. Returns 0 or
   * a negative error (the engine ignores it: the item is done). */
  int (*done)(void *self, const crawl_item_t *it, const crawl_outcome_t *o);
  /* The crawl stops early: take(), waiting now or called later, returns
   * WEFT_ECANCELED. From any task or thread; never suspends. */
  void (*stop)(void *self);
  /* Free the frontier and whatever is still queued. Not while another call
   * is running. crawl_run() never calls it: the frontier's owner does. */
  void (*close)(void *self);
} crawl_frontier_ops_t;

/* A frontier: its operations and their `self`. */
typedef struct crawl_frontier {
  const crawl_frontier_ops_t *ops;
  void *self;
} crawl_frontier_t;

/* Make a process-local frontier (what crawl_run() uses when the config has
 * none): a visited set sharded 64 ways and an unbounded weft_queue, which
 * admits at most max_pages URLs (0: no limit). take() returns WEFT_EOF when
 * every URL it admitted was done(). Returns 0 or WEFT_ENOMEM. */
int crawl_frontier_local_new(size_t max_pages, crawl_frontier_t *out);

/* Which hosts a crawl follows links and redirects to (crawl_config_t.scope).
 * The seeds' own hosts are always followed. */
typedef enum crawl_scope {
  CRAWL_SCOPE_HOST,   /* the seeds' origins, plus the same name under the
                         other scheme on the default ports (the default) */
  CRAWL_SCOPE_DOMAIN, /* any host in a seed's domain: the seed's host name
                         minus its first label when it has three or more
                         (www.example.com -> example.com and its
                         subdomains), else the name itself; no public
                         suffix list, so a seed a.co.uk allows *.co.uk */
  CRAWL_SCOPE_ANY     /* any host (what any_host also says) */
} crawl_scope_t;

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
  int any_host;             /* follow links to hosts other than the seeds'
                               (CRAWL_SCOPE_ANY) */
  crawl_scope_t scope;      /* which hosts are followed (CRAWL_SCOPE_HOST) */
  /* Domains followed as well, whatever the scope: a host whose name is one
   * of them or ends with "." and one of them (case-insensitive). */
  const char *const *domains;
  size_t ndomains;
  /* POSIX extended regular expressions (regcomp(REG_EXTENDED)) matched
   * against a link's or redirect's canonical URL: if any include pattern
   * is given, a URL must match one to be admitted; a URL that matches an
   * exclude pattern is not admitted. Seeds are exempt. A pattern that does
   * not compile fails crawl_run() with WEFT_EINVAL. */
  const char *const *include;
  size_t ninclude;
  const char *const *exclude;
  size_t nexclude;
  int max_depth;            /* links followed from a seed at most (0: the
                               seeds only; redirects do not count); -1, the
                               default: no limit */
  /* Politeness (all off by default). */
  const char *user_agent;   /* the product token of the User-Agent header
                               ("<token>/<weft version>") and of robots.txt
                               matching (default "weft-crawler") */
  int robots;               /* obey each host's /robots.txt (RFC 9309,
                               examples/robots.h): fetched before the host's
                               first page (up to 5 redirects followed, to
                               any host), cached robots_ttl_ms; a 4xx (or a
                               6th redirect) allows everything; a 5xx, a
                               429 or no answer disallows everything for
                               robots_retry_ms, then it is fetched again */
  unsigned robots_ttl_ms;   /* default 24 h */
  unsigned robots_retry_ms; /* default 60 s */
  unsigned delay_ms;        /* least time between the starts of two
                               requests to one host (0: none); a larger
                               robots.txt Crawl-delay wins (with robots) */
  unsigned max_delay_ms;    /* Crawl-delay is capped at this (30 s) */
  /* Output (off by default). */
  FILE *jsonl;              /* one JSON object per line for each URL done,
                               written under a lock (see crawl_run()) */
  const char *save_dir;     /* save each 2xx body (decoded) to
                               DIR/<16 hex digits of the FNV-1a 64-bit hash
                               of the canonical URL>; the directory must
                               exist (else crawl_run() fails with
                               weft_fs_stat()'s error, or WEFT_ENOTDIR); a
                               body that cannot be written is skipped (not
                               counted in saved) */
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
  /* The frontier to crawl from (the caller owns it and closes it after
   * crawl_run()); NULL: a local one made with max_pages, for this crawl.
   * With a frontier, max_pages is the frontier's (this one is ignored). */
  const crawl_frontier_t *frontier;
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
  uint64_t admitted; /* URLs this crawl admitted to the frontier */
  uint64_t pages;    /* responses received (one per URL at most) */
  uint64_t status[CRAWL_STATUS_MAX]; /* responses by status code */
  uint64_t errors;                   /* URLs that failed, all kinds */
  uint64_t error[CRAWL_ERR_COUNT];   /* URLs that failed, by kind */
  uint64_t cancelled;                /* fetches cut short by stop */
  uint64_t in_flight;  /* fetch tasks running now (snapshots only) */
  uint64_t queued;     /* URLs this crawl admitted and did not take yet
                          (snapshots only; 0 if others take them) */
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
  uint64_t robots_fetches; /* robots.txt requests (with robots) */
  uint64_t robots_denied;  /* URLs not fetched: robots.txt disallows them */
  uint64_t decoded;        /* responses whose body was gzip or deflate */
  uint64_t saved;          /* bodies written to save_dir */
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
 * not an absolute http:// or https:// URL, or a count is 0; user_agent
 * not a token of letters, "_" and "-"; an include or exclude pattern that
 * does not compile; a frontier without its operations), WEFT_ENOMEM,
 * save_dir's errors (WEFT_ENOENT, WEFT_ENOTDIR...),
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
