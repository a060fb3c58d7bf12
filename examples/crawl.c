/*
 * crawl.c: the crawl engine of examples/crawler.c and weft-bench's `crawl`
 * workload. crawl.h describes the protocol (frontier, dispatcher, fetch
 * tasks, stop) and what is retried; this file is organised as:
 *
 *   URLs          uriparser: parse, resolve, normalise, canonical form
 *   local frontier  64 visited shards, each an open-addressing set under a
 *                 mutex, a weft_queue and an outstanding count (its own
 *                 protocol comment below)
 *   hosts         one entry per origin (scheme, host, port): Semaphore,
 *                 idle connections (TLS ones for https), politeness time,
 *                 robots.txt rules; scope (domains)
 *   HTTP          one request/response exchange with http_parser; gzip and
 *                 deflate bodies inflated with zlib as they arrive
 *   admission     scope checks, then the frontier's admit()
 *   links         libxml2's HTML parser in SAX mode: <a href>, <base href>
 *   politeness    pace(), robots.txt per host, JSONL, save_dir
 *   tasks         fetch task, progress reporter, stop watcher, dispatcher
 *
 * Locks. The visited shards, the host table, each host's idle pool,
 * politeness time and robots rules (host_t.mu), the first-error record,
 * the log and the JSONL file are guarded by pthread mutexes held for a few
 * hundred nanoseconds and never across a suspension point: an OS mutex is
 * cheaper than a weft_lock for that, and it is not a cancellation point,
 * so a cancelled task never has to unwind from inside a lookup. Two
 * exceptions: the task that creates the crawl's first https host makes the
 * default TLS context under the host table's lock (make_tls(), once, tens
 * of milliseconds), so that no https host exists without it; and a host's
 * robots.txt is fetched under its weft_lock (host_t.robots_lock, a task
 * lock: it is held across the fetch, and the host's other tasks wait on it
 * instead of fetching it again). Rules a task has read are never freed
 * before the crawl ends (host_t.robots_old), so reading them needs no lock.
 * The compiled include/exclude patterns and the seeds' domains are written
 * before any task starts and only read after.
 */
#define _POSIX_C_SOURCE 200809L

#include "crawl.h"
#include "robots.h"

#include <http_parser.h>
#include <libxml/HTMLparser.h>
#include <uriparser/Uri.h>
#include <zlib.h>

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <regex.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest canonical URL the crawler follows. */
#define URL_MAX 2048
/* The read buffer of one exchange (on the fetch task's stack). */
#define READ_BUF 16384
/* Shards of the visited set: a power of two. */
#define VISITED_SHARDS 64
/* The longest header value kept (Content-Type, Location). */
#define HEADER_MAX URL_MAX
/* Buckets of the host table: a power of two. */
#define HOST_BUCKETS 256
/* The longest backoff between two attempts. */
#define BACKOFF_CAP_MS 5000u

/* ------------------------------------------------------------------------ */
/* Counters                                                                  */

/* The live counters: updated by every fetch task with relaxed atomics and
 * read by the progress reporter and at the end. */
typedef struct counters {
  atomic_uint_fast64_t admitted, pages, errors, cancelled, in_flight, queued;
  atomic_uint_fast64_t retries, redirects, links, skipped, connects, reuses;
  atomic_uint_fast64_t bytes, tls_handshakes, tls_resumed;
  atomic_uint_fast64_t robots_fetches, robots_denied, decoded, saved;
  atomic_uint_fast64_t status[CRAWL_STATUS_MAX];
  atomic_uint_fast64_t error[CRAWL_ERR_COUNT];
} counters_t;

static void count(atomic_uint_fast64_t *c, uint64_t n) {
  atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t load(const atomic_uint_fast64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Engine state                                                              */

typedef struct conn conn_t;
typedef struct crawl crawl_t;

/* One idle keep-alive connection in a host's pool. */
struct conn {
  weft_stream_t *stream; /* the connection */
  unsigned home;         /* the worker whose loop owns it */
  conn_t *next;          /* next idle connection of the same home */
};

/* One origin the crawl talks to: scheme, host and port, so that http and
 * https connections to one host are pooled apart. Lives until the crawl
 * ends. */
typedef struct host {
  struct host *next;    /* next entry of its host-table bucket */
  char *name;           /* what weft_open_connection() resolves, and the
                           name the server's certificate must have */
  int port;             /* TCP port */
  bool tls;             /* https: TLS over the connections */
  weft_tls_ctx_t *ctx;  /* https: the crawl's client context, or NULL */
  int ctx_rc;           /* https: why ctx is NULL */
  char *origin;         /* the key: "http[s]://" authority, as in the URL */
  size_t origin_len;    /* strlen(origin) */
  const char *authority; /* the Host header: name[:port], in origin */
  weft_semaphore_t sem; /* per_host permits */
  pthread_mutex_t mu;   /* guards idle, nidle, next_ms, robots* */
  conn_t **idle;        /* idle connections, one stack per home worker */
  unsigned nidle;       /* idle connections in all */
  /* Politeness (delay_ms, Crawl-delay): the weft_time_ms() before which
   * no request to this host may start: the last start plus the delay, set
   * under mu by each request as it starts (pace()). */
  uint64_t next_ms;
  /* robots.txt (cfg.robots): the rules in force, until robots_until; those
   * they replaced wait in robots_old until the crawl ends (a task may still
   * be reading them). robots_lock is held by the task fetching it, so that
   * the others wait for that one fetch instead of making their own. */
  robots_t *robots;
  struct robots_link *robots_old; /* replaced rules, freed at the end */
  uint64_t robots_until;   /* weft_time_ms() when robots expires */
  unsigned crawl_delay_ms; /* robots.txt's Crawl-delay (capped) */
  weft_lock_t robots_lock; /* held while fetching robots.txt */
} host_t;

/* Replaced robots rules (host_t.robots_old). */
typedef struct robots_link {
  struct robots_link *next;
  robots_t *r;
} robots_link_t;

/* One URL taken from the frontier, to the end of its fetch task. */
typedef struct item {
  struct crawl *c;    /* the crawl it belongs to */
  const char *url;    /* canonical URL: ci.url, owned by the frontier */
  const char *target; /* request target: points into url */
  host_t *host;       /* where to send it */
  unsigned hops;      /* redirects followed to get here: ci.hops */
  unsigned depth;     /* links followed from a seed: ci.depth */
  crawl_item_t ci;    /* as take() gave it, for done() */
} item_t;

/* One slot of a visited shard. */
typedef struct slot {
  uint64_t hash; /* the key's hash; 0 only in empty slots */
  char *key;     /* the canonical URL, or NULL */
} slot_t;

/* One shard of the visited set, padded to its own cache lines. */
typedef struct shard {
  alignas(64) pthread_mutex_t mu; /* guards the rest */
  slot_t *slots;                  /* cap slots, open addressing */
  size_t cap;                     /* a power of two, or 0 */
  size_t len;                     /* keys stored */
} shard_t;

struct crawl {
  crawl_config_t cfg;               /* a copy of the caller's */
  counters_t n;                     /* the live counters */
  crawl_frontier_t fr;              /* the caller's frontier or our own */
  bool own_fr;                      /* fr is ours: closed by crawl_free() */
  pthread_mutex_t hosts_mu;         /* guards hosts */
  host_t *hosts[HOST_BUCKETS];      /* the host table */
  weft_semaphore_t global;          /* concurrency permits */
  weft_taskgroup_t group;           /* fetch tasks and helpers */
  atomic_int stopping;              /* stop was requested */
  unsigned workers;                 /* weft_worker_count() */
  atomic_uint_fast64_t *fetches;    /* fetch tasks finished, per worker */
  uint64_t start_ms;                /* weft_time_ms() at the start */
  /* The client context of every https connection: the caller's, or made by
   * make_tls() at the start (ca_file, insecure_no_verify) or when the first
   * https host is created (loading the system's CA store takes ~30 ms, which
   * a plain-http crawl does not pay). Written once, under hosts_mu, before
   * any https host exists; each host keeps a copy (host_t.ctx). */
  weft_tls_ctx_t *tls;
  int tls_rc;    /* why tls is NULL after tls_tried (WEFT_ENOSYS: no TLS) */
  bool tls_tried; /* make_tls() ran */
  bool own_tls;  /* crawl_run() made tls (and frees it) */
  regex_t *include, *exclude; /* cfg's patterns, compiled */
  size_t ninclude, nexclude;  /* how many compiled */
  char **seed_domains;        /* CRAWL_SCOPE_DOMAIN: the seeds' domains */
  size_t nseed_domains;
  const char *agent;          /* cfg.user_agent or "weft-crawler" */
  pthread_mutex_t report_mu; /* guards first_error, first_reason, cfg.log,
                                cfg.jsonl */
  char first_error[CRAWL_ERR_COUNT][256];  /* first failed URL per kind */
  char first_reason[CRAWL_ERR_COUNT][256]; /* and what failed, for TLS */
};

void crawl_config_init(crawl_config_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->concurrency = 64;
  cfg->per_host = 32;
  cfg->timeout_ms = 10000;
  cfg->retries = 2;
  cfg->backoff_ms = 100;
  cfg->max_redirects = 5;
  cfg->max_body = (size_t)8 << 20;
  cfg->progress_ms = 250;
  cfg->max_depth = -1;
  cfg->robots_ttl_ms = 24u * 3600u * 1000u;
  cfg->robots_retry_ms = 60000;
  cfg->max_delay_ms = 30000;
}

const char *crawl_err_name(crawl_err_t kind) {
  static const char *const names[CRAWL_ERR_COUNT] = {
      "timeout",   "refused",  "reset", "dns", "parse",
      "redirects", "toolarge", "tls-verify", "tls", "other"};
  return (unsigned)kind < CRAWL_ERR_COUNT ? names[kind] : "?";
}

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 0x100000001b3u;
  }
  h ^= h >> 29; /* the shard index comes from the top bits */
  h *= 0xbf58476d1ce4e5b9u;
  h ^= h >> 32;
  return h ? h : 1;
}

/* ------------------------------------------------------------------------ */
/* URLs                                                                      */

static size_t range_len(const UriTextRangeA *r) {
  return r->first ? (size_t)(r->afterLast - r->first) : 0;
}

static bool range_is(const UriTextRangeA *r, const char *s) {
  size_t n = strlen(s);
  return range_len(r) == n && strncasecmp(r->first, s, n) == 0;
}

/* Append n bytes to out[*len] (cap URL_MAX); false if they do not fit. */
static bool put(char *out, size_t *len, const char *s, size_t n) {
  if (*len + n >= URL_MAX)
    return false;
  memcpy(out + *len, s, n);
  *len += n;
  out[*len] = '\0';
  return true;
}

/* The canonical form of an absolute http:// or https:// URI that
 * uriNormalizeSyntaxA() has normalised: the scheme in lower case, "://",
 * host, ":" port unless it is the scheme's default (80, 443), "/" path,
 * "?" query if any; no user info, no fragment. Writes it to out (URL_MAX
 * bytes) and the offsets of the authority and of the target (so
 * out[0..target_at) is the origin). false for another scheme, no host,
 * user info, a bad port, or a URL that is too long. */
static bool canonical(const UriUriA *u, char *out, size_t *authority_at,
                      size_t *target_at) {
  bool https = range_is(&u->scheme, "https");
  if ((!https && !range_is(&u->scheme, "http")) ||
      range_len(&u->hostText) == 0 || u->userInfo.first != NULL)
    return false;
  size_t len = 0;
  out[0] = '\0';
  if (https)
    put(out, &len, "https://", 8);
  else
    put(out, &len, "http://", 7);
  *authority_at = len;
  bool brackets = u->hostData.ip6 != NULL || u->hostData.ipFuture.first;
  if ((brackets && !put(out, &len, "[", 1)) ||
      !put(out, &len, u->hostText.first, range_len(&u->hostText)) ||
      (brackets && !put(out, &len, "]", 1)))
    return false;
  size_t plen = range_len(&u->portText);
  if (plen > 0) {
    /* The grammar makes the port all digits; written back without leading
     * zeros (by hand: snprintf was a tenth of a link's resolution). */
    unsigned long p = 0;
    if (plen > 5)
      return false;
    for (size_t i = 0; i < plen; i++) {
      unsigned d = (unsigned char)u->portText.first[i] - '0';
      if (d > 9)
        return false;
      p = p * 10 + d;
    }
    if (p == 0 || p > 65535)
      return false;
    char port[8], *e = port + sizeof(port), *s = e;
    for (unsigned long q = p; q > 0; q /= 10)
      *--s = (char)('0' + q % 10);
    *--s = ':';
    if (p != (https ? 443u : 80u) && !put(out, &len, s, (size_t)(e - s)))
      return false;
  }
  *target_at = len;
  if (u->pathHead == NULL && !put(out, &len, "/", 1))
    return false;
  for (const UriPathSegmentA *seg = u->pathHead; seg; seg = seg->next) {
    if (!put(out, &len, "/", 1) ||
        !put(out, &len, seg->text.first ? seg->text.first : "",
             range_len(&seg->text)))
      return false;
  }
  if (u->query.first != NULL &&
      (!put(out, &len, "?", 1) ||
       !put(out, &len, u->query.first, range_len(&u->query))))
    return false;
  return true;
}

/* A bump allocator for uriparser. One resolve() allocates a few hundred
 * bytes in a dozen blocks (a path segment each, copies of what
 * normalisation rewrote) and frees them all before it returns, and
 * follow_links() keeps the page's parsed URL for the length of one page:
 * so their blocks come from a buffer on the caller's stack, freeing one
 * is a no-op, and only what does not fit goes to malloc() (and back to
 * free()). malloc() and free() were a third of a link's resolution. Each
 * block starts with its size, for realloc. */
typedef union uri_block {
  size_t size;
  max_align_t align;
} uri_block_t;

typedef struct uri_mem {
  UriMemoryManager mm; /* first: uriparser hands &mm back */
  size_t used;         /* entries of buf handed out */
  uri_block_t buf[4096 / sizeof(uri_block_t)];
} uri_mem_t;

static bool uri_mem_owns(const uri_mem_t *m, const void *p) {
  return (const char *)p >= (const char *)m->buf &&
         (const char *)p < (const char *)m->buf + sizeof(m->buf);
}

static void *uri_mem_malloc(UriMemoryManager *mm, size_t n) {
  uri_mem_t *m = (uri_mem_t *)mm;
  size_t blocks = 1 + (n + sizeof(uri_block_t) - 1) / sizeof(uri_block_t);
  uri_block_t *b;
  if (n <= sizeof(m->buf) &&
      blocks <= sizeof(m->buf) / sizeof(uri_block_t) - m->used) {
    b = m->buf + m->used;
    m->used += blocks;
  } else if (n > SIZE_MAX - sizeof(*b) || !(b = malloc(sizeof(*b) + n))) {
    return NULL;
  }
  b->size = n;
  return b + 1;
}

static void uri_mem_free(UriMemoryManager *mm, void *p) {
  if (p && !uri_mem_owns((uri_mem_t *)mm, p))
    free((uri_block_t *)p - 1);
}

static void *uri_mem_calloc(UriMemoryManager *mm, size_t k, size_t n) {
  if (n && k > SIZE_MAX / n)
    return NULL;
  void *p = uri_mem_malloc(mm, k * n);
  if (p)
    memset(p, 0, k * n);
  return p;
}

static void *uri_mem_realloc(UriMemoryManager *mm, void *p, size_t n) {
  void *q = uri_mem_malloc(mm, n);
  if (q && p) {
    size_t old = ((uri_block_t *)p - 1)->size;
    memcpy(q, p, old < n ? old : n);
    uri_mem_free(mm, p);
  }
  return q;
}

static void *uri_mem_reallocarray(UriMemoryManager *mm, void *p, size_t k,
                                  size_t n) {
  if (n && k > SIZE_MAX / n)
    return NULL;
  return uri_mem_realloc(mm, p, k * n);
}

static void uri_mem_init(uri_mem_t *m) {
  m->mm = (UriMemoryManager){.malloc = uri_mem_malloc,
                             .calloc = uri_mem_calloc,
                             .realloc = uri_mem_realloc,
                             .reallocarray = uri_mem_reallocarray,
                             .free = uri_mem_free};
  m->used = 0;
}

/* Resolve the reference [ref, ref + n) against base (NULL: ref must be
 * absolute), normalise it, and write its canonical form (see canonical()).
 * false if it does not parse or is not a crawlable http(s):// URL. */
static bool resolve(const UriUriA *base, const char *ref, size_t n, char *out,
                    size_t *authority_at, size_t *target_at) {
  uri_mem_t m;
  uri_mem_init(&m);
  UriUriA rel, abs;
  if (uriParseSingleUriExMmA(&rel, ref, ref + n, NULL, &m.mm) != URI_SUCCESS)
    return false;
  /* The mask (unsigned)-1 normalises every component, as
   * uriNormalizeSyntaxA() does; URI_RESOLVE_STRICTLY is uriAddBaseUriA()'s. */
  bool ok = false;
  if (base == NULL) {
    ok = rel.scheme.first != NULL &&
         uriNormalizeSyntaxExMmA(&rel, (unsigned)-1, &m.mm) == URI_SUCCESS &&
         canonical(&rel, out, authority_at, target_at);
  } else if (uriAddBaseUriExMmA(&abs, &rel, base, URI_RESOLVE_STRICTLY,
                                &m.mm) == URI_SUCCESS) {
    ok = uriNormalizeSyntaxExMmA(&abs, (unsigned)-1, &m.mm) == URI_SUCCESS &&
         canonical(&abs, out, authority_at, target_at);
    uriFreeUriMembersMmA(&abs, &m.mm);
  }
  uriFreeUriMembersMmA(&rel, &m.mm);
  return ok;
}

/* ------------------------------------------------------------------------ */
/* Local frontier                                                            */

/* The process-local frontier (crawl_frontier_local_new()): the visited set,
 * 64 shards of open addressing, each under a pthread mutex held for a few
 * hundred nanoseconds and never across a suspension point; an unbounded
 * weft_queue of local_node_t; and two counters. `outstanding` counts the
 * URLs admitted and not yet done(): admit() raises it before the node is
 * queued, done() lowers it, and the call that brings it to zero shuts the
 * queue down, so that take() then returns WEFT_EOF. A URL is only admitted
 * from a task working on an item not yet done (or before the dispatcher
 * starts: the seeds), so the count cannot reach zero while more can come.
 * stop() sets `stopped` and shuts the queue down: take() returns
 * WEFT_ECANCELED from then on. */

/* A queued URL. */
typedef struct local_node {
  const char *url; /* owned by the visited set */
  unsigned depth, hops;
} local_node_t;

typedef struct local_frontier {
  shard_t visited[VISITED_SHARDS];  /* every URL ever admitted or refused */
  weft_queue_t *queue;              /* local_node_t * waiting for take() */
  size_t max_pages;                 /* admissions at most; 0: no limit */
  atomic_uint_fast64_t admitted;    /* URLs admitted */
  atomic_uint_fast64_t outstanding; /* admitted and not yet done() */
  atomic_int stopped;               /* stop() was called */
} local_frontier_t;

static int shard_grow(shard_t *s) {
  size_t cap = s->cap ? s->cap * 2 : 64;
  slot_t *slots = calloc(cap, sizeof(*slots));
  if (!slots)
    return WEFT_ENOMEM;
  for (size_t i = 0; i < s->cap; i++) {
    if (!s->slots[i].key)
      continue;
    size_t j = s->slots[i].hash & (cap - 1);
    while (slots[j].key)
      j = (j + 1) & (cap - 1);
    slots[j] = s->slots[i];
  }
  free(s->slots);
  s->slots = slots;
  s->cap = cap;
  return 0;
}

/* Insert url[0..n) unless present. Returns 1 and the stored copy in *key
 * if it was new, 0 if it was there, WEFT_ENOMEM. Never suspends. */
static int visited_insert(local_frontier_t *f, const char *url, size_t n,
                          const char **key) {
  uint64_t h = hash_bytes(url, n);
  shard_t *s = &f->visited[h >> (64 - 6)];
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  if ((s->len + 1) * 10 > s->cap * 7 && (rc = shard_grow(s)) != 0)
    goto out;
  size_t j = h & (s->cap - 1);
  for (; s->slots[j].key; j = (j + 1) & (s->cap - 1)) {
    if (s->slots[j].hash == h && strncmp(s->slots[j].key, url, n) == 0 &&
        s->slots[j].key[n] == '\0')
      goto out; /* rc 0: seen before */
  }
  char *copy = malloc(n + 1);
  if (!copy) {
    rc = WEFT_ENOMEM;
    goto out;
  }
  memcpy(copy, url, n);
  copy[n] = '\0';
  s->slots[j].hash = h;
  s->slots[j].key = copy;
  s->len++;
  *key = copy;
  rc = 1;
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int local_admit(void *self, const char *url, size_t n, unsigned depth,
                       unsigned hops, int *verdict) {
  local_frontier_t *f = self;
  *verdict = CRAWL_ADMIT_SEEN;
  const char *key;
  int rc = visited_insert(f, url, n, &key);
  if (rc <= 0)
    return rc;
  if (f->max_pages) {
    uint_fast64_t a = load(&f->admitted);
    do {
      if (a >= f->max_pages) {
        *verdict = CRAWL_ADMIT_FULL;
        return 0;
      }
    } while (!atomic_compare_exchange_weak_explicit(
        &f->admitted, &a, a + 1, memory_order_relaxed, memory_order_relaxed));
  } else {
    count(&f->admitted, 1);
  }
  local_node_t *node = malloc(sizeof(*node));
  if (!node)
    return WEFT_ENOMEM;
  node->url = key;
  node->depth = depth;
  node->hops = hops;
  /* relaxed: the caller's own item keeps the count above zero meanwhile. */
  atomic_fetch_add_explicit(&f->outstanding, 1, memory_order_relaxed);
  rc = weft_queue_try_put(f->queue, node);
  if (rc != 0) {
    /* Shut down (stopped) or out of memory: the node never existed. */
    atomic_fetch_sub_explicit(&f->outstanding, 1, memory_order_relaxed);
    free(node);
    return rc == WEFT_EQUEUE_SHUTDOWN ? 0 : rc;
  }
  *verdict = CRAWL_ADMIT_NEW;
  return 0;
}

static int local_take(void *self, crawl_item_t *out) {
  local_frontier_t *f = self;
  void *p;
  int rc = atomic_load_explicit(&f->stopped, memory_order_relaxed)
               ? WEFT_ECANCELED
               : weft_queue_get(f->queue, &p);
  if (rc == WEFT_EQUEUE_SHUTDOWN)
    /* relaxed: stop() sets it before it shuts the queue, whose lock
     * orders the two. */
    rc = atomic_load_explicit(&f->stopped, memory_order_relaxed)
             ? WEFT_ECANCELED
             : WEFT_EOF;
  if (rc != 0)
    return rc;
  local_node_t *node = p;
  out->url = node->url;
  out->depth = node->depth;
  out->hops = node->hops;
  out->lease = NULL;
  free(node);
  return 0;
}

static int local_done(void *self, const crawl_item_t *it,
                      const crawl_outcome_t *o) {
  local_frontier_t *f = self;
  (void)it;
  (void)o;
  /* acq_rel: the call that reaches zero has seen every other item's
   * admissions, so no node can be put after it shuts the queue. */
  if (atomic_fetch_sub_explicit(&f->outstanding, 1, memory_order_acq_rel) ==
      1)
    weft_queue_shutdown(f->queue, 0);
  return 0;
}

static void local_stop(void *self) {
  local_frontier_t *f = self;
  /* relaxed: see local_take(). */
  atomic_store_explicit(&f->stopped, 1, memory_order_relaxed);
  weft_queue_shutdown(f->queue, 0);
}

static void local_close(void *self) {
  local_frontier_t *f = self;
  if (!f)
    return;
  for (size_t i = 0; i < VISITED_SHARDS; i++) {
    shard_t *s = &f->visited[i];
    for (size_t j = 0; j < s->cap; j++)
      free(s->slots[j].key);
    free(s->slots);
    pthread_mutex_destroy(&s->mu);
  }
  if (f->queue) {
    void *p;
    while (weft_queue_try_get(f->queue, &p) == 0)
      free(p);
    weft_queue_free(f->queue);
  }
  free(f);
}

static const crawl_frontier_ops_t local_ops = {
    .admit = local_admit,
    .take = local_take,
    .done = local_done,
    .stop = local_stop,
    .close = local_close,
};

int crawl_frontier_local_new(size_t max_pages, crawl_frontier_t *out) {
  local_frontier_t *f = calloc(1, sizeof(*f));
  if (!f)
    return WEFT_ENOMEM;
  for (size_t i = 0; i < VISITED_SHARDS; i++)
    pthread_mutex_init(&f->visited[i].mu, NULL);
  f->max_pages = max_pages;
  int rc = weft_queue_new(0, &f->queue);
  if (rc != 0) {
    local_close(f);
    return rc;
  }
  out->ops = &local_ops;
  out->self = f;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Hosts                                                                     */

static int make_tls(crawl_t *c);

/* Find the host of the origin origin[0..n) ("http://name", "https://name:port",
 * IPv6 names in brackets; as canonical() writes it), creating it if
 * `create`. NULL if absent (and not created) or out of memory. Never
 * suspends. */
static host_t *host_get(crawl_t *c, const char *origin, size_t n,
                        bool create) {
  uint64_t h = hash_bytes(origin, n);
  host_t **bucket = &c->hosts[h & (HOST_BUCKETS - 1)];
  pthread_mutex_lock(&c->hosts_mu);
  host_t *e = *bucket;
  while (e && (e->origin_len != n || memcmp(e->origin, origin, n)))
    e = e->next;
  if (e || !create)
    goto out;
  e = calloc(1, sizeof(*e));
  if (!e)
    goto out;
  e->origin = malloc(n + 1);
  e->name = malloc(n + 1);
  e->idle = calloc(c->workers, sizeof(*e->idle));
  if (!e->origin || !e->name || !e->idle) {
    free(e->origin);
    free(e->name);
    free(e->idle);
    free(e);
    e = NULL;
    goto out;
  }
  memcpy(e->origin, origin, n);
  e->origin[n] = '\0';
  e->origin_len = n;
  e->tls = n > 5 && origin[4] == 's'; /* "https://" */
  if (e->tls) {
    if (!c->tls_tried)
      make_tls(c); /* the first https host: under hosts_mu, once */
    e->ctx = c->tls;
    e->ctx_rc = c->tls_rc;
  }
  e->authority = e->origin + (e->tls ? 8 : 7);
  /* Split name and port; the canonical form left out the default port. */
  const char *authority = e->authority, *end = e->origin + n, *colon = NULL;
  const char *name = authority, *name_end;
  if (*authority == '[') {
    name = authority + 1;
    name_end = memchr(authority, ']', (size_t)(end - authority));
    colon = name_end + 1 < end ? name_end + 1 : NULL;
  } else {
    colon = memchr(authority, ':', (size_t)(end - authority));
    name_end = colon ? colon : end;
  }
  memcpy(e->name, name, (size_t)(name_end - name));
  e->name[name_end - name] = '\0';
  e->port = colon ? atoi(colon + 1) : e->tls ? 443 : 80;
  weft_semaphore_init(&e->sem, c->cfg.per_host);
  pthread_mutex_init(&e->mu, NULL);
  weft_lock_init(&e->robots_lock);
  e->next = *bucket;
  *bucket = e;
out:
  pthread_mutex_unlock(&c->hosts_mu);
  return e;
}

/* Whether name[0..n) (without the port) is name_or_domain itself or one of
 * its subdomains, case-insensitively. */
static bool name_under(const char *name, size_t n, const char *domain) {
  size_t d = strlen(domain);
  if (d == 0 || d > n)
    return false;
  return strncasecmp(name + n - d, domain, d) == 0 &&
         (d == n || name[n - d - 1] == '.');
}

/* The domain of a host name for CRAWL_SCOPE_DOMAIN: the name minus its
 * first label when it has three labels or more, else the name; an IP
 * address (a literal in brackets, or all digits and dots) is its own
 * domain. Written to out[cap]; false if it does not fit. */
static bool domain_of(const char *name, size_t n, char *out, size_t cap) {
  const char *dot = memchr(name, '.', n);
  size_t dots = 0;
  bool numeric = true;
  for (size_t i = 0; i < n; i++) {
    dots += name[i] == '.';
    numeric = numeric && ((name[i] >= '0' && name[i] <= '9') || name[i] == '.');
  }
  if (n > 0 && name[0] != '[' && !numeric && dots >= 2) {
    n -= (size_t)(dot + 1 - name);
    name = dot + 1;
  }
  if (n >= cap)
    return false;
  memcpy(out, name, n);
  out[n] = '\0';
  return true;
}

/* Whether the host of authority[0..n) (name[:port]) is in the scope's
 * domains: cfg.domains, and with CRAWL_SCOPE_DOMAIN the seeds' domains. */
static bool name_in_scope(const crawl_t *c, const char *authority, size_t n) {
  if (c->cfg.ndomains == 0 && c->nseed_domains == 0)
    return false;
  size_t len = n;
  if (authority[0] == '[') {
    const char *b = memchr(authority, ']', n);
    len = b ? (size_t)(b + 1 - authority) : n;
  } else {
    const char *colon = memchr(authority, ':', n);
    if (colon)
      len = (size_t)(colon - authority);
  }
  for (size_t i = 0; i < c->cfg.ndomains; i++)
    if (c->cfg.domains[i] && name_under(authority, len, c->cfg.domains[i]))
      return true;
  for (size_t i = 0; i < c->nseed_domains; i++)
    if (name_under(authority, len, c->seed_domains[i]))
      return true;
  return false;
}

/* The host of origin[0..n) if the crawl follows it, creating it then: any
 * host with any_host; else one already known (the seeds', and what they
 * let in), or the same name on the other scheme's default port when both
 * ports are their scheme's default, so that a site moving between
 * http://name/ and https://name/ is followed (but http://name:8080/ and
 * https://name/ are two sites). NULL if not followed or out of memory.
 * Never suspends. */
static host_t *host_followed(crawl_t *c, const char *origin, size_t n) {
  bool any = c->cfg.any_host || c->cfg.scope == CRAWL_SCOPE_ANY;
  host_t *h = host_get(c, origin, n, any);
  if (h || any)
    return h;
  bool tls = n > 5 && origin[4] == 's';
  const char *authority = origin + (tls ? 8 : 7);
  size_t alen = n - (size_t)(authority - origin);
  if (name_in_scope(c, authority, alen))
    return host_get(c, origin, n, true);
  const char *bracket = memchr(authority, ']', alen);
  const char *after = bracket ? bracket + 1 : authority;
  if (memchr(after, ':', alen - (size_t)(after - authority)) != NULL)
    return NULL; /* an explicit port: not a default one */
  char twin[URL_MAX + 1];
  size_t tlen = 0;
  if (!put(twin, &tlen, tls ? "http://" : "https://", tls ? 7 : 8) ||
      !put(twin, &tlen, authority, alen) || !host_get(c, twin, tlen, false))
    return NULL;
  return host_get(c, origin, n, true);
}

/* Take an idle connection of h, preferably one whose home is the current
 * worker (no move per call), or NULL. Never suspends. */
static conn_t *pool_take(crawl_t *c, host_t *h) {
  conn_t *k = NULL;
  int w = weft_worker_index();
  pthread_mutex_lock(&h->mu);
  if (h->nidle > 0) {
    unsigned i = w >= 0 ? (unsigned)w : 0;
    for (unsigned tried = 0; tried < c->workers && !h->idle[i]; tried++)
      i = (i + 1) % c->workers;
    k = h->idle[i];
    h->idle[i] = k->next;
    h->nidle--;
  }
  pthread_mutex_unlock(&h->mu);
  return k;
}

static void pool_put(host_t *h, conn_t *k) {
  pthread_mutex_lock(&h->mu);
  k->next = h->idle[k->home];
  h->idle[k->home] = k;
  h->nidle++;
  pthread_mutex_unlock(&h->mu);
}

/* Close a connection at once (its state is unknown) and free it. */
static void conn_discard(conn_t *k) {
  weft_stream_abort(k->stream);
  weft_stream_free(k->stream);
  free(k);
}

/* Close a connection whose exchange ended cleanly but that is not reused
 * (the server said Connection: close): gracefully, so that a TLS peer gets
 * close_notify, without waiting; and free it. */
static void conn_close(conn_t *k) {
  weft_stream_close(k->stream);
  weft_stream_free(k->stream);
  free(k);
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                      */

/* Content-Encoding of a response. */
enum { ENC_IDENTITY, ENC_GZIP, ENC_DEFLATE, ENC_OTHER };

/* One response, as far as the crawler cares. */
typedef struct response {
  int status;      /* the status code */
  bool html;       /* Content-Type is text/html */
  bool want_body;  /* a 2xx HTML body: kept for link extraction (any 2xx
                      body with save_dir or force_body) */
  bool force_body; /* set before the exchange: keep any 2xx body (robots) */
  bool cut_body;   /* set before the exchange: a body over the limit is cut
                      there (robots.txt's 500 KiB), not a failure */
  int encoding;    /* ENC_*: Content-Encoding */
  char *location;  /* the Location header, or NULL */
  char *body;      /* the body (decoded) if want_body, else NULL */
  size_t body_len; /* bytes in body */
  size_t body_cap; /* bytes allocated for body */
  uint64_t bytes;  /* bytes received, headers and body */
  char ctype[64];  /* Content-Type (cut at 63 bytes), "" if none */
  z_stream z;      /* the decoder of a gzip or deflate body */
  bool z_live;     /* z is initialised */
  bool z_end;      /* z reached the end of the compressed stream */
} response_t;

static void response_clear(response_t *r) {
  bool force = r->force_body, cut = r->cut_body;
  free(r->location);
  free(r->body);
  if (r->z_live)
    inflateEnd(&r->z);
  memset(r, 0, sizeof(*r));
  r->force_body = force;
  r->cut_body = cut;
}

/* The state of one exchange, reachable from the parser's callbacks. */
typedef struct exchange {
  http_parser parser;     /* HTTP_RESPONSE */
  crawl_t *c;             /* the crawl */
  response_t *r;          /* what is being filled */
  char field[16];         /* the current header name (prefix) */
  size_t field_len;       /* its length, saturated at sizeof(field) */
  bool in_value;          /* the last callback was a header value */
  int capture;            /* 1 Content-Type, 2 Location, 3 Content-Encoding,
                             0 none */
  char value[HEADER_MAX]; /* the captured value so far */
  size_t value_len;       /* its length */
  bool complete;          /* on_message_complete ran */
  bool keep_alive;        /* http_should_keep_alive() at completion */
  bool too_large;         /* the body went over max_body */
  bool bad_encoding;      /* a gzip or deflate body that does not decode */
  bool no_memory;         /* a body allocation failed */
} exchange_t;

static void header_done(exchange_t *x) {
  if (x->capture == 1) {
    x->r->html =
        x->value_len >= 9 && strncasecmp(x->value, "text/html", 9) == 0;
    size_t n = x->value_len < sizeof(x->r->ctype) - 1
                   ? x->value_len
                   : sizeof(x->r->ctype) - 1;
    memcpy(x->r->ctype, x->value, n);
    x->r->ctype[n] = '\0';
  } else if (x->capture == 3) {
    /* One coding (what we asked for); "x-gzip" is gzip (RFC 9110). */
    const char *v = x->value;
    size_t n = x->value_len;
    if ((n == 4 && strncasecmp(v, "gzip", 4) == 0) ||
        (n == 6 && strncasecmp(v, "x-gzip", 6) == 0))
      x->r->encoding = ENC_GZIP;
    else if (n == 7 && strncasecmp(v, "deflate", 7) == 0)
      x->r->encoding = ENC_DEFLATE;
    else if (!(n == 8 && strncasecmp(v, "identity", 8) == 0) && n > 0)
      x->r->encoding = ENC_OTHER;
  } else if (x->capture == 2) {
    free(x->r->location);
    x->r->location = malloc(x->value_len + 1);
    if (x->r->location) {
      memcpy(x->r->location, x->value, x->value_len);
      x->r->location[x->value_len] = '\0';
    }
  }
  x->capture = 0;
  x->value_len = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  exchange_t *x = p->data;
  if (x->in_value) {
    header_done(x);
    x->field_len = 0;
    x->in_value = false;
  }
  /* Saturates at sizeof(field): longer names match none we want. */
  for (size_t i = 0; i < n && x->field_len < sizeof(x->field); i++)
    x->field[x->field_len++] = at[i];
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  exchange_t *x = p->data;
  if (!x->in_value) {
    x->in_value = true;
    x->value_len = 0;
    if (x->field_len == 12 && strncasecmp(x->field, "content-type", 12) == 0)
      x->capture = 1;
    else if (x->field_len == 8 && strncasecmp(x->field, "location", 8) == 0)
      x->capture = 2;
    else if (x->field_len == 16 &&
             strncasecmp(x->field, "content-encoding", 16) == 0)
      x->capture = 3;
    else
      x->capture = 0;
  }
  if (x->capture) {
    size_t room = sizeof(x->value) - 1 - x->value_len;
    if (n > room)
      n = room; /* a Location this long fails canonical() anyway */
    memcpy(x->value + x->value_len, at, n);
    x->value_len += n;
  }
  return 0;
}

static int on_headers_complete(http_parser *p) {
  exchange_t *x = p->data;
  if (x->in_value)
    header_done(x);
  x->in_value = false;
  x->r->status = p->status_code;
  x->r->want_body =
      (x->r->html || x->r->force_body || x->c->cfg.save_dir) &&
      p->status_code / 100 == 2 && x->r->encoding != ENC_OTHER;
  return 0;
}

/* Make room for at least n more bytes (and a NUL) in r->body. */
static bool body_reserve(response_t *r, size_t n) {
  if (r->body_len + n + 1 <= r->body_cap)
    return true;
  size_t cap = r->body_cap ? r->body_cap : 8192;
  while (cap < r->body_len + n + 1)
    cap *= 2;
  char *b = realloc(r->body, cap);
  if (!b)
    return false;
  r->body = b;
  r->body_cap = cap;
  return true;
}

/* Decode a gzip or deflate chunk into r->body, at most limit bytes in
 * all: past it, the body is cut (cut_body) or fails as too large, without
 * decoding the rest (a gzip bomb costs limit bytes, no more). Returns 0
 * or -1 (x's flags say why). */
static int inflate_body(exchange_t *x, const char *at, size_t n,
                        size_t limit) {
  response_t *r = x->r;
  if (!r->z_live) {
    /* gzip: 16 + 15 (a gzip wrapper); deflate: RFC 9110 says zlib's
     * wrapper, which some servers leave out: then raw deflate (-15). */
    int bits = 15 + 16;
    if (r->encoding == ENC_DEFLATE) {
      unsigned char b0 = (unsigned char)at[0];
      unsigned char b1 = n > 1 ? (unsigned char)at[1] : 0;
      bits = (b0 & 0x0f) == 8 && (b0 * 256u + b1) % 31 == 0 ? 15 : -15;
    }
    memset(&r->z, 0, sizeof(r->z));
    if (inflateInit2(&r->z, bits) != Z_OK) {
      x->no_memory = true;
      return -1;
    }
    r->z_live = true;
  }
  r->z.next_in = (Bytef *)(uintptr_t)at;
  r->z.avail_in = (uInt)n;
  /* Until the input is used up and the output not full (inflate() may
   * hold output back when it fills the buffer), or the stream ends. */
  while (!r->z_end) {
    if (r->body_len >= limit) {
      if (r->cut_body)
        return 0;
      x->too_large = true;
      return -1;
    }
    size_t room = limit - r->body_len + 1; /* one more: to see it overflow */
    if (room > 65536)
      room = 65536;
    if (!body_reserve(r, room)) {
      x->no_memory = true;
      return -1;
    }
    r->z.next_out = (Bytef *)r->body + r->body_len;
    r->z.avail_out = (uInt)room;
    int zr = inflate(&r->z, Z_NO_FLUSH);
    r->body_len += room - r->z.avail_out;
    if (r->body_len > limit) {
      r->body_len = limit;
      r->body[limit] = '\0';
      if (r->cut_body)
        return 0;
      x->too_large = true;
      return -1;
    }
    r->body[r->body_len] = '\0';
    if (zr == Z_STREAM_END) {
      r->z_end = true; /* what follows the stream is ignored */
    } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
      x->bad_encoding = true;
      return -1;
    } else if (r->z.avail_out > 0) {
      break; /* all of this chunk is decoded: wait for the next */
    }
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  exchange_t *x = p->data;
  response_t *r = x->r;
  if (!r->want_body || n == 0)
    return 0;
  size_t limit = r->cut_body && x->c->cfg.max_body > ROBOTS_MAX_BYTES
                     ? ROBOTS_MAX_BYTES
                     : x->c->cfg.max_body;
  if (r->encoding == ENC_GZIP || r->encoding == ENC_DEFLATE)
    return inflate_body(x, at, n, limit);
  if (r->body_len + n > limit) {
    if (r->cut_body) {
      n = limit - r->body_len;
      if (n == 0)
        return 0;
    } else {
      x->too_large = true;
      return -1;
    }
  }
  if (!body_reserve(r, n)) {
    x->no_memory = true;
    return -1;
  }
  memcpy(r->body + r->body_len, at, n);
  r->body_len += n;
  r->body[r->body_len] = '\0';
  return 0;
}

static int on_message_complete(http_parser *p) {
  exchange_t *x = p->data;
  x->complete = true;
  x->keep_alive = http_should_keep_alive(p) != 0;
  /* Stop at the end of this response: bytes after it (a response nobody
   * asked for) make the connection unfit for reuse. */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* An error code of our own for "the peer closed before the response was
 * complete"; classified as a reset. */
#define ERR_EARLY_EOF WEFT_EOF
/* http_parser rejected the response. */
#define ERR_PARSE WEFT_EIO
/* The body went over max_body. */
#define ERR_TOOLARGE WEFT_EMSGSIZE

/* Send the request for it on connection k and read the response into *r.
 * Returns 0 (and *reusable), or an error; *got_bytes says whether anything
 * of the response arrived. Suspends. */
static int exchange_on(crawl_t *c, const item_t *it, conn_t *k, response_t *r,
                       bool *reusable, bool *got_bytes) {
  /* Pieces copied one after the other: snprintf() cost more than the rest
   * of the request's handling in this function. */
  const char *parts[] = {"GET ",
                         it->target,
                         " HTTP/1.1\r\nHost: ",
                         it->host->authority,
                         "\r\nUser-Agent: ",
                         c->agent,
                         "/",
                         weft_version_string(),
                         "\r\nAccept: text/html, */*;q=0.5\r\n"
                         "Accept-Encoding: gzip, deflate\r\n",
                         c->cfg.no_keep_alive ? "Connection: close\r\n" : "",
                         "\r\n"};
  char req[URL_MAX + 512];
  size_t len = 0;
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
    size_t n = strlen(parts[i]);
    if (n >= sizeof(req) - len)
      return WEFT_EINVAL;
    memcpy(req + len, parts[i], n);
    len += n;
  }
  int rc = weft_stream_write(k->stream, req, len);
  if (rc == 0)
    rc = weft_stream_drain(k->stream);
  if (rc != 0)
    return rc;

  exchange_t x;
  memset(&x, 0, sizeof(x));
  http_parser_init(&x.parser, HTTP_RESPONSE);
  x.parser.data = &x;
  x.c = c;
  x.r = r;
  char buf[READ_BUF];
  bool leftover = false, eof = false;
  while (!x.complete) {
    int n = weft_stream_read(k->stream, buf, sizeof(buf));
    if (n < 0)
      return n;
    if (n > 0) {
      *got_bytes = true;
      count(&c->n.bytes, (uint64_t)n);
      r->bytes += (uint64_t)n;
    } else {
      eof = true;
    }
    size_t used =
        http_parser_execute(&x.parser, &parser_settings, buf, (size_t)n);
    enum http_errno e = HTTP_PARSER_ERRNO(&x.parser);
    if (x.too_large)
      return ERR_TOOLARGE;
    if (x.bad_encoding)
      return ERR_PARSE;
    if (x.no_memory)
      return WEFT_ENOMEM;
    if (e != HPE_OK && e != HPE_PAUSED)
      return ERR_PARSE;
    if (x.complete) {
      leftover = used < (size_t)n;
      break;
    }
    if (eof)
      return *got_bytes ? ERR_EARLY_EOF : WEFT_ECONNRESET;
  }
  *reusable = x.keep_alive && !leftover && !eof;
  return 0;
}

/* The peer closed or reset the connection: over TLS, a close without
 * close_notify is WEFT_ETLS_TRUNCATED (a response it cut short is never
 * taken for a complete one: it fails as ERR_EARLY_EOF would). */
static bool is_closed(int rc) {
  return rc == WEFT_ECONNRESET || rc == WEFT_EPIPE || rc == ERR_EARLY_EOF ||
         rc == WEFT_ECONNABORTED || rc == WEFT_ETLS_TRUNCATED;
}

static bool is_stale_failure(int rc) { return is_closed(rc); }

/* Open a connection to h for k: TCP, and for https TLS with the crawl's
 * context (verification as it says; SNI and the name check use h->name;
 * the context's cache resumes the host's last session). Counts the
 * handshake. Returns 0 or weft_open_connection()'s error. Suspends. */
static int conn_open(crawl_t *c, host_t *h, conn_t *k) {
  weft_stream_opts_t so;
  weft_stream_opts_init(&so);
  if (h->tls) {
    if (!h->ctx)
      return h->ctx_rc; /* no context: built without TLS, or no memory */
    so.tls.ctx = h->ctx;
  }
  int rc = weft_open_connection(h->name, h->port, &so, &k->stream);
  if (rc != 0)
    return rc;
  count(&c->n.connects, 1);
  weft_tls_info_t info;
  if (h->tls && weft_stream_tls_info(k->stream, &info) == 0) {
    count(&c->n.tls_handshakes, 1);
    if (info.resumed)
      count(&c->n.tls_resumed, 1);
  }
  return 0;
}

/* One attempt: a GET of it on a pooled or new connection, under a timeout
 * scope. Returns 0 with *r filled, or an error (WEFT_ETIMEDOUT when the
 * scope expired, WEFT_ECANCELED when the task was cancelled). The connection
 * goes back to the pool only after a clean, complete, keep-alive response;
 * on any failure it is aborted. Suspends. */
static int attempt(crawl_t *c, const item_t *it, response_t *r) {
  weft_timeout_t scope;
  int rc = weft_timeout_enter(&scope, c->cfg.timeout_ms);
  if (rc != 0)
    return rc;
  for (int fresh_tries = 0;; fresh_tries++) {
    conn_t *k = fresh_tries == 0 ? pool_take(c, it->host) : NULL;
    bool reused = k != NULL;
    while (k && weft_stream_at_eof(k->stream) != 0) {
      conn_discard(k); /* closed by the server while idle */
      k = pool_take(c, it->host);
    }
    reused = k != NULL;
    if (!k) {
      k = malloc(sizeof(*k));
      if (!k) {
        rc = WEFT_ENOMEM;
        break;
      }
      int w = weft_worker_index();
      k->home = w >= 0 ? (unsigned)w : 0; /* no suspension before the call */
      rc = conn_open(c, it->host, k);
      if (rc != 0) {
        free(k);
        break;
      }
    } else {
      count(&c->n.reuses, 1);
    }
    bool reusable = false, got_bytes = false;
    rc = exchange_on(c, it, k, r, &reusable, &got_bytes);
    if (rc == 0 && reusable) {
      pool_put(it->host, k);
      break;
    }
    if (rc == 0) {
      conn_close(k);
      break;
    }
    conn_discard(k);
    /* A pooled connection the server closed meanwhile: try a fresh one,
     * once, within the same deadline. */
    if (!(reused && !got_bytes && is_stale_failure(rc) && fresh_tries == 0))
      break;
    response_clear(r);
  }
  return weft_timeout_exit(&scope, rc);
}

static crawl_err_t classify(int rc) {
  if (rc == WEFT_ETIMEDOUT)
    return CRAWL_ERR_TIMEOUT;
  if (rc == WEFT_ECONNREFUSED)
    return CRAWL_ERR_REFUSED;
  if (is_closed(rc))
    return CRAWL_ERR_RESET;
  if (rc == WEFT_ETLS_CERT_UNTRUSTED || rc == WEFT_ETLS_CERT_SELF_SIGNED ||
      rc == WEFT_ETLS_CERT_EXPIRED || rc == WEFT_ETLS_CERT_HOSTNAME ||
      rc == WEFT_ETLS_CERT_INVALID)
    return CRAWL_ERR_TLS_VERIFY;
  if (rc == WEFT_ETLS || rc == WEFT_ETLS_PEER_ALERT ||
      rc == WEFT_ETLS_CERT_REQUIRED || rc == WEFT_ETLS_VERSION ||
      rc == WEFT_ETLS_CONFIG || rc == WEFT_ETLS_ALPN || rc == WEFT_ENOSYS)
    return CRAWL_ERR_TLS;
  if (rc <= -3000 && rc >= -3014) /* libuv's UV_EAI_* range */
    return CRAWL_ERR_DNS;
  if (rc == ERR_PARSE)
    return CRAWL_ERR_PARSE;
  if (rc == ERR_TOOLARGE)
    return CRAWL_ERR_TOOLARGE;
  return CRAWL_ERR_OTHER;
}

static bool transient(int rc) {
  return rc == WEFT_ETIMEDOUT || rc == WEFT_ECONNREFUSED || is_closed(rc) ||
         rc == WEFT_EAI_AGAIN;
}

/* ------------------------------------------------------------------------ */
/* Admission and links                                                       */

/* Admit url (canonical, with the target offset canonical() gave: its
 * origin is url[0..target_at)) to the frontier unless its host is not
 * followed, or the frontier refuses it (seen before, max_pages). Returns 1
 * admitted, 0 not, or the frontier's error (WEFT_ENOMEM). May suspend if
 * the frontier does (the local one never does). */
static int admit(crawl_t *c, const char *url, size_t target_at, unsigned depth,
                 unsigned hops) {
  /* Seeds (depth 0, no hop) are exempt from depth and patterns. */
  bool seed = depth == 0 && hops == 0;
  bool out = !seed && c->cfg.max_depth >= 0 &&
             depth > (unsigned)c->cfg.max_depth;
  for (size_t i = 0; !out && !seed && i < c->nexclude; i++)
    out = regexec(&c->exclude[i], url, 0, NULL, 0) == 0;
  if (!out && !seed && c->ninclude > 0) {
    out = true;
    for (size_t i = 0; out && i < c->ninclude; i++)
      out = regexec(&c->include[i], url, 0, NULL, 0) != 0;
  }
  host_t *h = out ? NULL : host_followed(c, url, target_at);
  if (!h) {
    count(&c->n.skipped, 1);
    return 0;
  }
  int verdict;
  int rc = c->fr.ops->admit(c->fr.self, url, strlen(url), depth, hops,
                            &verdict);
  if (rc < 0)
    return rc;
  if (verdict == CRAWL_ADMIT_FULL)
    count(&c->n.skipped, 1);
  if (verdict != CRAWL_ADMIT_NEW)
    return 0;
  count(&c->n.admitted, 1);
  count(&c->n.queued, 1);
  return 1;
}

/* An item taken from the frontier is finished with: tell the frontier
 * (the local one's last done() ends the dispatcher's loop). Never
 * suspends with the local frontier. */
static void item_done(crawl_t *c, item_t *it, const crawl_outcome_t *o) {
  c->fr.ops->done(c->fr.self, &it->ci, o);
  free(it);
}

/* An outcome for an item cut short by stop. */
static const crawl_outcome_t cancelled_outcome = {
    .status = 0, .error = -1, .cancelled = 1, .bytes = 0};

/* What the SAX handler keeps of one page: every <a href> value and the
 * first <base href>, copied (libxml2 frees the attributes when the handler
 * returns), each NUL-terminated, one after another in buf. */
typedef struct links {
  char *buf;       /* the hrefs, one after another */
  size_t len, cap; /* bytes of buf used and allocated */
  size_t n;        /* hrefs of <a> in buf, in document order */
  char *base;      /* the first <base href>, or NULL */
  bool no_memory;  /* a copy failed: the page's remaining links are lost */
} links_t;

static void links_add(links_t *l, const char *v) {
  size_t n = strlen(v) + 1;
  if (l->cap - l->len < n) {
    size_t cap = l->cap ? l->cap : 2048;
    while (cap - l->len < n)
      cap *= 2;
    char *b = realloc(l->buf, cap);
    if (!b) {
      l->no_memory = true;
      return;
    }
    l->buf = b;
    l->cap = cap;
  }
  memcpy(l->buf + l->len, v, n);
  l->len += n;
  l->n++;
}

/* SAX startElement: libxml2's HTML parser lower-cases element and attribute
 * names, decodes entities in attribute values, drops a repeated attribute
 * (the first one counts, as in HTML5) and gives NULL for an attribute
 * without a value, which HTML5 reads as "" (a link to the page itself).
 * The first <base> with an href counts, wherever it is. */
static void on_start_element(void *ud, const xmlChar *name,
                             const xmlChar **atts) {
  links_t *l = ud;
  bool a = name[0] == 'a' && name[1] == '\0';
  if (!atts || l->no_memory ||
      (!a && (l->base || strcmp((const char *)name, "base") != 0)))
    return;
  for (size_t i = 0; atts[i]; i += 2) {
    if (strcmp((const char *)atts[i], "href") != 0)
      continue;
    const char *v = atts[i + 1] ? (const char *)atts[i + 1] : "";
    if (a) {
      links_add(l, v);
    } else if (!(l->base = strdup(v))) {
      l->no_memory = true;
    }
    return;
  }
}

/* The error and warning handlers: libxml2 must never print, whatever the
 * page. HTML_PARSE_NOERROR and NOWARNING already clear them (a cleared
 * handler drops the report); these no-ops are put back afterwards so that
 * no path can fall back to libxml2's default, which writes to stderr. */
static void quiet(void *ctx, const char *msg, ...) {
  (void)ctx;
  (void)msg;
}

/* Only startElement: no characters handler (text is scanned, not copied
 * out), no tree. initialized 0 makes it a SAX1 handler, the kind the HTML
 * parser calls. */
static const htmlSAXHandler link_sax = {
    .startElement = on_start_element,
    .warning = quiet,
    .error = quiet,
    .fatalError = quiet,
};

/* NOERROR and NOWARNING: no report at all; NONET: never fetch anything;
 * IGNORE_ENC: a <meta charset> never switches the input to an iconv
 * converter (pages are read as UTF-8, as the crawler always read them, and
 * a converter's errors go to libxml2's generic channel, stderr);
 * NOIMPLIED: no made-up <html> and <body> events (about 1% less work). */
#define LINK_PARSE_OPTIONS                                                     \
  (HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |              \
   HTML_PARSE_IGNORE_ENC | HTML_PARSE_NOIMPLIED)

/* Collect the <a href> values and the first <base href> of an HTML body
 * with libxml2's HTML parser in SAX mode (docs/design.md §6 says why this
 * parser and how it differs from HTML5). The pull parser
 * (htmlParseDocument), not the push one: htmlParseChunk stops at the end
 * of the root element and drops whatever follows </html>, which HTML5 and
 * browsers still read. A parser context per call: a pool of reused ones
 * (tasks move between workers, so not one per thread) saved 1.2% of the
 * crawl's instructions and no measurable CPU time. Never suspends, so the
 * context is only ever used by the thread that made it. */
static void find_links(const response_t *r, links_t *l) {
  if (r->body_len == 0 || r->body_len > INT_MAX)
    return;
  /* libxml2 2.9 takes a NUL byte for the end of the input (in a value, and
   * wherever a tag or text begins), and loses the rest of the page; HTML5
   * ignores it in text and reads it as U+FFFD in a name or value. DEL
   * stands in for it: plain text to libxml2, and not a URI character, so
   * that an href holding one is skipped as one holding U+FFFD was. */
  char *end = r->body + r->body_len;
  for (char *p = memchr(r->body, '\0', r->body_len); p;
       p = memchr(p + 1, '\0', (size_t)(end - p - 1)))
    *p = '\x7f';
  htmlParserCtxtPtr ctxt =
      htmlCreateMemoryParserCtxt(r->body, (int)r->body_len);
  if (!ctxt) {
    l->no_memory = true;
    return;
  }
  *ctxt->sax = link_sax;
  ctxt->userData = l;
  htmlCtxtUseOptions(ctxt, LINK_PARSE_OPTIONS);
  ctxt->sax->warning = quiet; /* cleared by the options: see quiet() */
  ctxt->sax->error = quiet;
  htmlParseDocument(ctxt);
  htmlFreeParserCtxt(ctxt);
}

/* Resolve every <a href> of an HTML body against the page's URL (or its
 * <base href>) and admit what qualifies. Never suspends. */
static size_t follow_links(crawl_t *c, const item_t *it, const response_t *r) {
  links_t l = {0};
  find_links(r, &l);

  uri_mem_t m; /* the page's URL and its <base>, for the whole loop */
  uri_mem_init(&m);
  UriUriA page, base_ref, base_abs;
  /* afterLast given: the Mm variant of uriparser 0.9.7 refuses NULL. */
  bool have_page =
      uriParseSingleUriExMmA(&page, it->url, it->url + strlen(it->url), NULL,
                             &m.mm) == URI_SUCCESS;
  const UriUriA *base = have_page ? &page : NULL;
  bool have_ref = false, have_abs = false;
  if (l.base && have_page &&
      uriParseSingleUriExMmA(&base_ref, l.base, l.base + strlen(l.base), NULL,
                             &m.mm) == URI_SUCCESS) {
    have_ref = true;
    if (uriAddBaseUriExMmA(&base_abs, &base_ref, &page, URI_RESOLVE_STRICTLY,
                           &m.mm) == URI_SUCCESS) {
      have_abs = true;
      base = &base_abs;
    }
  }
  count(&c->n.links, l.n);
  char url[URL_MAX];
  const char *href = l.buf;
  for (size_t i = 0; base && i < l.n; i++) {
    size_t n = strlen(href), authority_at, target_at;
    bool ok = resolve(base, href, n, url, &authority_at, &target_at);
    href += n + 1;
    if (!ok) {
      count(&c->n.skipped, 1);
      continue;
    }
    if (admit(c, url, target_at, it->depth + 1, 0) < 0)
      break; /* out of memory: the rest of the page is lost */
  }
  if (have_abs)
    uriFreeUriMembersMmA(&base_abs, &m.mm);
  if (have_ref)
    uriFreeUriMembersMmA(&base_ref, &m.mm);
  if (have_page)
    uriFreeUriMembersMmA(&page, &m.mm);
  free(l.base);
  free(l.buf);
  return l.n;
}

/* ------------------------------------------------------------------------ */
/* Tasks                                                                     */

/* Log what became of it; for a failure of kind err_kind (-1: none), keep
 * its URL and `reason` (NULL: none) if it is the first of its kind. */
static void report(crawl_t *c, const item_t *it, const char *what,
                   int err_kind, const char *reason) {
  if (!c->cfg.log && err_kind < 0)
    return;
  pthread_mutex_lock(&c->report_mu);
  if (err_kind >= 0 && c->first_error[err_kind][0] == '\0') {
    snprintf(c->first_error[err_kind], sizeof(c->first_error[err_kind]), "%s",
             it->url);
    snprintf(c->first_reason[err_kind], sizeof(c->first_reason[err_kind]),
             "%s", reason ? reason : "");
  }
  if (c->cfg.log)
    fprintf(c->cfg.log, "%s %s\n", what, it->url);
  pthread_mutex_unlock(&c->report_mu);
}

/* it failed with rc (0: no error code, as for too many redirects). */
static void fail(crawl_t *c, const item_t *it, crawl_err_t kind, int rc) {
  count(&c->n.errors, 1);
  count(&c->n.error[kind], 1);
  /* The handshake failed in this task: weft's words for the code, then
   * OpenSSL's, with the certificate check's result ("certificate verify
   * failed: ..."). */
  char reason[256], why[200];
  bool tls = kind == CRAWL_ERR_TLS_VERIFY || kind == CRAWL_ERR_TLS;
  if (tls) {
    if (weft_tls_error_string(why, sizeof(why)) <= 0)
      why[0] = '\0';
    snprintf(reason, sizeof(reason), "%s%s%.200s", weft_strerror(rc),
             why[0] ? ": " : "", why);
  }
  report(c, it, crawl_err_name(kind), (int)kind, tls ? reason : NULL);
}

/* xorshift64 for the backoff jitter. */
static uint64_t next_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* ------------------------------------------------------------------------ */
/* Politeness, robots.txt, output                                            */

/* Wait until a request to h may start: at least max(delay_ms, its
 * Crawl-delay) after the previous one did. The time of the last start is
 * taken under h->mu by the task that starts, when it starts (not when it
 * reserved a slot), so that a task resumed late cannot bring its request
 * closer to the next one; a task that finds it too early sleeps until then
 * and checks again, holding nothing but its permits, so other hosts' tasks
 * go on. Returns 0, or WEFT_ECANCELED. Costs one branch with no delay and
 * no robots. */
static int pace(crawl_t *c, host_t *h) {
  if (c->cfg.delay_ms == 0 && !c->cfg.robots)
    return 0;
  for (;;) {
    pthread_mutex_lock(&h->mu);
    unsigned d = c->cfg.delay_ms > h->crawl_delay_ms ? c->cfg.delay_ms
                                                     : h->crawl_delay_ms;
    uint64_t now = weft_time_ms(), t = h->next_ms;
    bool go = d == 0 || now >= t;
    if (go)
      h->next_ms = now + d;
    pthread_mutex_unlock(&h->mu);
    if (go)
      return 0;
    int rc = weft_sleep(t - now);
    if (rc != 0)
      return rc;
  }
}

/* Fetch h's /robots.txt (one attempt per hop, paced, under a per_host
 * permit of the host asked) and make its rules for our agent: the file's
 * for a 2xx, allow-all for a 4xx, disallow-all for a 5xx, a 429 or no
 * answer. Redirects are followed, up to ROBOTS_HOPS of them, to any host
 * (RFC 9309 §2.3.1.2); one more, or a Location that does not resolve,
 * counts as a 4xx (robots.txt unavailable). *ttl_ms is how long the rules
 * hold. Returns 0, WEFT_ECANCELED or WEFT_ENOMEM. Suspends. */
#define ROBOTS_HOPS 5
static int robots_fetch(crawl_t *c, host_t *h, robots_t **out,
                        unsigned *ttl_ms) {
  char url[URL_MAX], next[URL_MAX];
  int n = snprintf(url, sizeof(url), "%s/robots.txt", h->origin);
  if (n < 0 || (size_t)n >= sizeof(url))
    return robots_new_all(1, out); /* cannot be: origins are shorter */
  size_t target_at = h->origin_len;
  host_t *on = h;
  response_t r = {0};
  r.force_body = true;
  r.cut_body = true;
  int rc;
  for (unsigned hop = 0;; hop++) {
    item_t ri = {.c = c, .url = url, .target = url + target_at, .host = on};
    rc = weft_semaphore_acquire(&on->sem);
    if (rc != 0)
      break;
    rc = pace(c, on);
    if (rc == 0)
      rc = attempt(c, &ri, &r);
    weft_semaphore_release(&on->sem);
    count(&c->n.robots_fetches, 1);
    bool redirect = rc == 0 && r.location &&
                    (r.status == 301 || r.status == 302 || r.status == 303 ||
                     r.status == 307 || r.status == 308);
    if (!redirect || hop >= ROBOTS_HOPS)
      break;
    UriUriA base;
    size_t authority_at, next_at;
    bool ok = uriParseSingleUriA(&base, url, NULL) == URI_SUCCESS;
    if (ok) {
      ok = resolve(&base, r.location, strlen(r.location), next,
                   &authority_at, &next_at);
      uriFreeUriMembersA(&base);
    }
    host_t *nh = ok ? host_get(c, next, next_at, true) : NULL;
    if (!nh)
      break; /* unresolvable (or no memory): as a 4xx */
    memcpy(url, next, strlen(next) + 1);
    target_at = next_at;
    on = nh;
    response_clear(&r);
  }
  if (rc == WEFT_ECANCELED || rc == WEFT_ENOMEM) {
    response_clear(&r);
    return rc;
  }
  *ttl_ms = c->cfg.robots_ttl_ms;
  if (rc != 0 || r.status >= 500 || r.status == 429) {
    *ttl_ms = c->cfg.robots_retry_ms;
    rc = robots_new_all(0, out);
  } else if (r.status / 100 != 2) {
    rc = robots_new_all(1, out);
  } else {
    rc = robots_parse(r.body ? r.body : "", r.body ? r.body_len : 0, c->agent,
                      out);
  }
  response_clear(&r);
  return rc;
}

/* The robots rules in force for h into *out, fetching them first if they
 * are missing or expired (one task fetches, the others wait for it).
 * Returns 0, WEFT_ECANCELED or WEFT_ENOMEM. Suspends. */
static int host_robots(crawl_t *c, host_t *h, const robots_t **out) {
  pthread_mutex_lock(&h->mu);
  robots_t *r = h->robots;
  bool fresh = r && weft_time_ms() < h->robots_until;
  pthread_mutex_unlock(&h->mu);
  if (fresh) {
    *out = r;
    return 0;
  }
  int rc = weft_lock_acquire(&h->robots_lock);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&h->mu);
  r = h->robots;
  fresh = r && weft_time_ms() < h->robots_until;
  pthread_mutex_unlock(&h->mu);
  if (!fresh) {
    robots_t *nr = NULL;
    unsigned ttl = 0;
    robots_link_t *old = malloc(sizeof(*old));
    rc = old ? robots_fetch(c, h, &nr, &ttl) : WEFT_ENOMEM;
    if (rc == 0) {
      pthread_mutex_lock(&h->mu);
      old->r = h->robots; /* readers may still hold it: freed at the end */
      old->next = h->robots_old;
      h->robots_old = old;
      old = NULL;
      h->robots = r = nr;
      h->robots_until = weft_time_ms() + ttl;
      h->crawl_delay_ms = robots_crawl_delay_ms(nr, c->cfg.max_delay_ms);
      pthread_mutex_unlock(&h->mu);
    }
    free(old);
  }
  weft_lock_release(&h->robots_lock);
  *out = r;
  return rc;
}

/* Append s as a JSON string (quoted; ", \ and control characters escaped,
 * bytes over 0x7e as \u00XX, that is read as Latin-1, so that the line is
 * valid JSON whatever a server sent). */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p > 0x7e)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

/* One JSONL line for it (cfg.jsonl). error: NULL, an error kind's name,
 * "robots" or "cancelled". */
static void jsonl_write(crawl_t *c, const item_t *it, const char *final_url,
                        const crawl_outcome_t *o, const response_t *r,
                        size_t links, uint64_t ms, const char *error) {
  FILE *f = c->cfg.jsonl;
  pthread_mutex_lock(&c->report_mu);
  fputs("{\"url\":", f);
  json_str(f, it->url);
  fputs(",\"final_url\":", f);
  json_str(f, final_url);
  fprintf(f, ",\"status\":%d,\"content_type\":", o->status);
  if (r && r->ctype[0])
    json_str(f, r->ctype);
  else
    fputs("null", f);
  fprintf(f,
          ",\"bytes\":%" PRIu64 ",\"body_bytes\":%zu,\"links\":%zu"
          ",\"fetch_ms\":%" PRIu64 ",\"depth\":%u,\"error\":",
          o->bytes, r && r->want_body ? r->body_len : (size_t)0, links, ms,
          it->depth);
  if (error)
    json_str(f, error);
  else
    fputs("null", f);
  fputs("}\n", f);
  pthread_mutex_unlock(&c->report_mu);
}

/* Save a 2xx body to save_dir (crawl.h: the file's name). Suspends. */
static __attribute__((noinline)) void save_body(crawl_t *c, const item_t *it,
                                                const response_t *r) {
  /* Plain FNV-1a, so that a name can be computed elsewhere. */
  uint64_t h = 0xcbf29ce484222325u;
  for (const char *p = it->url; *p; p++) {
    h ^= (unsigned char)*p;
    h *= 0x100000001b3u;
  }
  char path[4096];
  int n = snprintf(path, sizeof(path), "%s/%016" PRIx64, c->cfg.save_dir, h);
  if (n < 0 || (size_t)n >= sizeof(path))
    return;
  weft_file_t *f;
  if (weft_file_open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &f) != 0)
    return;
  int rc = r->body_len ? weft_file_write(f, r->body, r->body_len, NULL) : 0;
  if (weft_file_close(f) == 0 && rc == 0)
    count(&c->n.saved, 1);
  weft_file_free(f);
}

static void finish(crawl_t *c, const item_t *it, int rc, response_t *rp,
                   crawl_outcome_t *o, uint64_t start);

/* Fetch one URL, with retries; count and log the outcome (also into *o);
 * admit what it links to. Returns WEFT_ECANCELED if the fetch was cut
 * short. */
static int fetch(crawl_t *c, const item_t *it, crawl_outcome_t *o) {
  response_t r = {0};
  o->status = 0;
  o->error = -1;
  o->cancelled = 0;
  o->denied = 0;
  o->bytes = 0;
  uint64_t start = c->cfg.jsonl ? weft_time_ms() : 0;
  uint64_t seed = hash_bytes(it->url, strlen(it->url));
  int rc = 0;
  if (c->cfg.robots) {
    const robots_t *rules = NULL;
    rc = host_robots(c, it->host, &rules);
    if (rc == 0 && !robots_allowed(rules, it->target, strlen(it->target))) {
      o->denied = 1;
      count(&c->n.robots_denied, 1);
      report(c, it, "robots", -1, NULL);
      if (c->cfg.jsonl)
        jsonl_write(c, it, it->url, o, NULL, 0, weft_time_ms() - start,
                    "robots");
      return 0;
    }
  }
  for (unsigned n = 0; rc == 0; n++) {
    rc = weft_semaphore_acquire(&it->host->sem);
    if (rc != 0)
      break;
    rc = pace(c, it->host);
    if (rc == 0)
      rc = attempt(c, it, &r);
    weft_semaphore_release(&it->host->sem);
    bool again;
    if (rc == 0)
      again = r.status == 502 || r.status == 503 || r.status == 504;
    else
      again = transient(rc);
    if (!again || n >= c->cfg.retries ||
        atomic_load_explicit(&c->stopping, memory_order_relaxed))
      break;
    response_clear(&r);
    count(&c->n.retries, 1);
    uint64_t delay = (uint64_t)c->cfg.backoff_ms << (n < 16 ? n : 16);
    if (delay > BACKOFF_CAP_MS)
      delay = BACKOFF_CAP_MS;
    /* +-25%: retries of many URLs that failed together spread out. */
    delay = delay * 3 / 4 + next_rand(&seed) % (delay / 2 + 1);
    rc = weft_sleep(delay);
    if (rc != 0)
      break;
  }
  finish(c, it, rc, &r, o, start);
  response_clear(&r);
  return rc;
}

/* What fetch() does once the attempts are over (rc: the last one's
 * result): count and log the outcome into *o, follow the redirect or the
 * links, save the body, write the JSONL line. Out of line: its buffers
 * (URLs, paths) then never sit on the stack under attempt()'s 16 KiB read
 * buffer, which is what a crawl's hundreds of fetch tasks' stacks are made
 * of (peak RSS). May suspend (save_dir). */
static __attribute__((noinline)) void finish(crawl_t *c, const item_t *it,
                                             int rc, response_t *rp,
                                             crawl_outcome_t *o,
                                             uint64_t start) {
  /* A shallow copy, read only (find_links() rewrites NUL bytes inside the
   * body, not the pointers): rp keeps owning what it points to. */
  response_t r = *rp;
  o->bytes = r.bytes;
  char url[URL_MAX]; /* a redirect's target */
  const char *final_url = it->url;
  size_t links = 0;
  if (rc == WEFT_ECANCELED) {
    count(&c->n.cancelled, 1);
    report(c, it, "cancelled", -1, NULL);
    o->cancelled = 1;
  } else if (rc != 0) {
    o->error = (int)classify(rc);
    fail(c, it, classify(rc), rc);
  } else {
    o->status = r.status;
    if (r.encoding == ENC_GZIP || r.encoding == ENC_DEFLATE)
      count(&c->n.decoded, 1);
    count(&c->n.pages, 1);
    count(&c->n.status[r.status > 0 && r.status < CRAWL_STATUS_MAX ? r.status
                                                                   : 0],
          1);
    if (c->cfg.log) {
      char what[16];
      snprintf(what, sizeof(what), "%d", r.status);
      report(c, it, what, -1, NULL);
    }
    bool redirect = r.status == 301 || r.status == 302 || r.status == 303 ||
                    r.status == 307 || r.status == 308;
    if (redirect && r.location) {
      size_t authority_at, target_at;
      UriUriA page;
      if (it->hops >= c->cfg.max_redirects) {
        o->error = CRAWL_ERR_REDIRECTS;
        fail(c, it, CRAWL_ERR_REDIRECTS, 0);
      } else if (uriParseSingleUriA(&page, it->url, NULL) == URI_SUCCESS) {
        if (resolve(&page, r.location, strlen(r.location), url, &authority_at,
                    &target_at)) {
          final_url = url;
          if (admit(c, url, target_at, it->depth, it->hops + 1) == 1)
            count(&c->n.redirects, 1);
        } else {
          count(&c->n.skipped, 1);
        }
        uriFreeUriMembersA(&page);
      }
    } else if (r.want_body) {
      if (c->cfg.save_dir)
        save_body(c, it, &r); /* first: find_links() rewrites NUL bytes */
      if (r.html && r.body)
        links = follow_links(c, it, &r);
    }
  }
  if (c->cfg.jsonl)
    jsonl_write(c, it, final_url, o, rc == 0 ? &r : NULL, links,
                weft_time_ms() - start,
                o->cancelled  ? "cancelled"
                : o->error >= 0 ? crawl_err_name((crawl_err_t)o->error)
                                : NULL);
}

static void *fetch_task(void *arg) {
  item_t *it = arg;
  crawl_t *c = it->c;
  crawl_outcome_t o;
  count(&c->n.in_flight, 1);
  fetch(c, it, &o);
  int w = weft_worker_index();
  if (w >= 0 && (unsigned)w < c->workers)
    count(&c->fetches[w], 1);
  atomic_fetch_sub_explicit(&c->n.in_flight, 1, memory_order_relaxed);
  weft_semaphore_release(&c->global);
  item_done(c, it, &o); /* last: the crawl may end as soon as it returns */
  return NULL;
}

static void snapshot(const crawl_t *c, crawl_stats_t *s) {
  const counters_t *n = &c->n;
  s->admitted = load(&n->admitted);
  s->pages = load(&n->pages);
  s->errors = load(&n->errors);
  s->cancelled = load(&n->cancelled);
  s->in_flight = load(&n->in_flight);
  /* Signed: another process may take what this one admitted. */
  int64_t queued = (int64_t)load(&n->queued);
  s->queued = queued > 0 ? (uint64_t)queued : 0;
  s->retries = load(&n->retries);
  s->redirects = load(&n->redirects);
  s->links = load(&n->links);
  s->skipped = load(&n->skipped);
  s->connects = load(&n->connects);
  s->reuses = load(&n->reuses);
  s->bytes = load(&n->bytes);
  s->tls_handshakes = load(&n->tls_handshakes);
  s->tls_resumed = load(&n->tls_resumed);
  s->robots_fetches = load(&n->robots_fetches);
  s->robots_denied = load(&n->robots_denied);
  s->decoded = load(&n->decoded);
  s->saved = load(&n->saved);
  for (size_t i = 0; i < CRAWL_STATUS_MAX; i++)
    s->status[i] = load(&n->status[i]);
  for (size_t i = 0; i < CRAWL_ERR_COUNT; i++)
    s->error[i] = load(&n->error[i]);
  s->elapsed_ms = weft_time_ms() - c->start_ms;
  s->interrupted = atomic_load_explicit(&c->stopping, memory_order_relaxed);
}

static void *progress_task(void *arg) {
  crawl_t *c = arg;
  crawl_stats_t *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  while (weft_sleep(c->cfg.progress_ms) == 0) {
    snapshot(c, s);
    c->cfg.progress(s, c->cfg.progress_arg);
  }
  free(s);
  return NULL;
}

static void *stop_task(void *arg) {
  crawl_t *c = arg;
  if (weft_event_wait(c->cfg.stop) == 0) {
    atomic_store_explicit(&c->stopping, 1, memory_order_relaxed);
    c->fr.ops->stop(c->fr.self); /* ends the dispatcher's take() */
    weft_taskgroup_cancel(&c->group); /* fetch tasks, helpers, this one */
  }
  return NULL;
}

static void crawl_free(crawl_t *c) {
  for (size_t b = 0; b < HOST_BUCKETS; b++) {
    while (c->hosts[b]) {
      host_t *h = c->hosts[b];
      c->hosts[b] = h->next;
      for (unsigned w = 0; w < c->workers; w++) {
        while (h->idle[w]) {
          conn_t *k = h->idle[w];
          h->idle[w] = k->next;
          weft_stream_close(k->stream);
          weft_stream_free(k->stream);
          free(k);
        }
      }
      weft_semaphore_destroy(&h->sem);
      pthread_mutex_destroy(&h->mu);
      weft_lock_destroy(&h->robots_lock);
      robots_free(h->robots);
      while (h->robots_old) {
        robots_link_t *l = h->robots_old;
        h->robots_old = l->next;
        robots_free(l->r);
        free(l);
      }
      free(h->idle);
      free(h->origin);
      free(h->name);
      free(h);
    }
  }
  if (c->own_fr)
    c->fr.ops->close(c->fr.self);
  for (size_t i = 0; i < c->ninclude; i++)
    regfree(&c->include[i]);
  for (size_t i = 0; i < c->nexclude; i++)
    regfree(&c->exclude[i]);
  free(c->include);
  free(c->exclude);
  for (size_t i = 0; i < c->nseed_domains; i++)
    free(c->seed_domains[i]);
  free(c->seed_domains);
  weft_semaphore_destroy(&c->global);
  pthread_mutex_destroy(&c->hosts_mu);
  pthread_mutex_destroy(&c->report_mu);
  if (c->own_tls)
    weft_tls_ctx_free(c->tls);
  free(c->fetches);
  free(c);
}

static int fill_stats(crawl_t *c, crawl_stats_t *stats) {
  snapshot(c, stats);
  stats->queued = 0;
  memcpy(stats->first_error_url, c->first_error, sizeof(c->first_error));
  memcpy(stats->first_error_reason, c->first_reason,
         sizeof(c->first_reason));
  stats->workers = 0;
  stats->worker = calloc(c->workers, sizeof(*stats->worker));
  if (!stats->worker)
    return WEFT_ENOMEM;
  stats->workers = c->workers;
  for (unsigned w = 0; w < c->workers; w++) {
    weft_worker_stats_t ws;
    crawl_worker_stats_t *o = &stats->worker[w];
    o->fetches = load(&c->fetches[w]);
    if (weft_worker_stats(w, &ws) == 0) {
      o->tasks_run = ws.tasks_run;
      o->spawned = ws.tasks_spawned;
      o->stolen = ws.stolen;
    }
  }
  return 0;
}

/* Set c->tls, the one client context of the crawl's https connections (so
 * that its session cache resumes each host's sessions): the caller's, or
 * one made from ca_file and insecure_no_verify, offering ALPN http/1.1.
 * Returns 0, or weft_tls_ctx_new()'s error, also kept in c->tls_rc
 * (WEFT_ENOSYS in a library without TLS). Never suspends; called once,
 * before any https host exists (see crawl_t.tls). */
static int make_tls(crawl_t *c) {
  c->tls_tried = true;
  if (c->cfg.tls) {
    c->tls = c->cfg.tls;
    return 0;
  }
  weft_tls_opts_t to;
  weft_tls_opts_init(&to);
  to.ca_file = c->cfg.ca_file;
  to.insecure_no_verify = c->cfg.insecure_no_verify;
  to.alpn = "http/1.1";
  c->tls_rc = weft_tls_ctx_new(&to, &c->tls);
  c->own_tls = c->tls_rc == 0;
  if (c->tls_rc != 0)
    c->tls = NULL;
  return c->tls_rc;
}

/* Check and compile what the scope, politeness and output options say:
 * the user agent token, the include and exclude patterns, save_dir.
 * Returns 0, WEFT_EINVAL, WEFT_ENOMEM, or weft_fs_stat()'s error for
 * save_dir (WEFT_ENOENT...; WEFT_ENOTDIR if it is not a directory).
 * Suspends (save_dir). */
static int setup_scope(crawl_t *c) {
  const crawl_config_t *cfg = &c->cfg;
  c->agent = cfg->user_agent ? cfg->user_agent : "weft-crawler";
  size_t alen = strlen(c->agent);
  if (alen == 0 || alen > 64 || cfg->scope > CRAWL_SCOPE_ANY ||
      (cfg->ndomains && !cfg->domains) || (cfg->ninclude && !cfg->include) ||
      (cfg->nexclude && !cfg->exclude))
    return WEFT_EINVAL;
  for (size_t i = 0; i < alen; i++) {
    char ch = c->agent[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          ch == '_' || ch == '-'))
      return WEFT_EINVAL; /* RFC 9309's product token */
  }
  if (cfg->ninclude && !(c->include = calloc(cfg->ninclude, sizeof(regex_t))))
    return WEFT_ENOMEM;
  if (cfg->nexclude && !(c->exclude = calloc(cfg->nexclude, sizeof(regex_t))))
    return WEFT_ENOMEM;
  for (; c->ninclude < cfg->ninclude; c->ninclude++)
    if (!cfg->include[c->ninclude] ||
        regcomp(&c->include[c->ninclude], cfg->include[c->ninclude],
                REG_EXTENDED | REG_NOSUB) != 0)
      return WEFT_EINVAL;
  for (; c->nexclude < cfg->nexclude; c->nexclude++)
    if (!cfg->exclude[c->nexclude] ||
        regcomp(&c->exclude[c->nexclude], cfg->exclude[c->nexclude],
                REG_EXTENDED | REG_NOSUB) != 0)
      return WEFT_EINVAL;
  if (cfg->save_dir) {
    struct stat st;
    int rc = weft_fs_stat(cfg->save_dir, &st);
    if (rc != 0)
      return rc;
    if (!S_ISDIR(st.st_mode))
      return WEFT_ENOTDIR;
  }
  return 0;
}

int crawl_run(const crawl_config_t *cfg, crawl_stats_t *stats) {
  memset(stats, 0, sizeof(*stats));
  if (!cfg || cfg->nseeds == 0 || cfg->concurrency == 0 || cfg->per_host == 0 ||
      cfg->timeout_ms == 0 || (cfg->progress && cfg->progress_ms == 0))
    return WEFT_EINVAL;
  int nworkers = weft_worker_count();
  if (nworkers < 0)
    return nworkers;
  /* libxml2 wants its global state set up once before threads parse at
   * the same time: here, before any fetch task exists. Idempotent, and
   * serialised by libxml2's own lock should two crawls start together. */
  xmlInitParser();
  crawl_t *c = calloc(1, sizeof(*c));
  if (!c)
    return WEFT_ENOMEM;
  c->cfg = *cfg;
  c->workers = (unsigned)nworkers;
  c->start_ms = weft_time_ms();
  pthread_mutex_init(&c->hosts_mu, NULL);
  pthread_mutex_init(&c->report_mu, NULL);
  weft_semaphore_init(&c->global, cfg->concurrency);
  c->fetches = calloc(c->workers, sizeof(*c->fetches));
  int rc = c->fetches ? 0 : WEFT_ENOMEM;
  if (rc == 0 && cfg->frontier) {
    c->fr = *cfg->frontier;
    if (!c->fr.ops || !c->fr.ops->admit || !c->fr.ops->take ||
        !c->fr.ops->done || !c->fr.ops->stop)
      rc = WEFT_EINVAL;
  } else if (rc == 0) {
    rc = crawl_frontier_local_new(cfg->max_pages, &c->fr);
    c->own_fr = rc == 0;
  }
  /* A context asked for explicitly is made now, so that a bad ca_file
   * fails the crawl at once; the default one when it is first needed. */
  if (rc == 0 && (cfg->tls || cfg->ca_file || cfg->insecure_no_verify))
    rc = make_tls(c);
  if (rc != 0) {
    crawl_free(c);
    return rc;
  }

  if (rc == 0)
    rc = setup_scope(c);
  if (rc != 0) {
    crawl_free(c);
    return rc;
  }

  /* Seeds: every one must be a crawlable URL; their hosts are the ones
   * followed unless any_host. */
  for (size_t i = 0; i < cfg->nseeds; i++) {
    char url[URL_MAX];
    size_t authority_at, target_at;
    if (!cfg->seeds[i] || !resolve(NULL, cfg->seeds[i], strlen(cfg->seeds[i]),
                                   url, &authority_at, &target_at)) {
      crawl_free(c);
      return WEFT_EINVAL;
    }
    if (!host_get(c, url, target_at, true)) {
      crawl_free(c);
      return WEFT_ENOMEM;
    }
    if (c->cfg.scope == CRAWL_SCOPE_DOMAIN) {
      char **d = realloc(c->seed_domains,
                         (c->nseed_domains + 1) * sizeof(*d));
      char dom[URL_MAX];
      const char *auth = url + authority_at, *end = url + target_at;
      const char *colon = auth[0] == '[' ? memchr(auth, ']', (size_t)(end - auth))
                                         : memchr(auth, ':', (size_t)(end - auth));
      if (auth[0] == '[' && colon)
        colon++;
      size_t nlen = (size_t)((colon ? colon : end) - auth);
      if (d)
        c->seed_domains = d;
      if (!d || !domain_of(auth, nlen, dom, sizeof(dom)) ||
          !(d[c->nseed_domains] = strdup(dom))) {
        crawl_free(c);
        return WEFT_ENOMEM;
      }
      c->nseed_domains++;
    }
    if ((rc = admit(c, url, target_at, 0, 0)) < 0) {
      crawl_free(c);
      return rc;
    }
  }

  rc = weft_taskgroup_init(&c->group);
  if (rc != 0) {
    crawl_free(c);
    return rc;
  }
  if (cfg->stop)
    rc = weft_taskgroup_spawn(&c->group, stop_task, c, NULL);
  if (rc == 0 && cfg->progress)
    rc = weft_taskgroup_spawn(&c->group, progress_task, c, NULL);
  int result = rc;

  /* The dispatcher. Seeds can all be duplicates of one another, never
   * zero, so the local frontier holds at least one item here. */
  while (result == 0) {
    crawl_item_t ci;
    rc = c->fr.ops->take(c->fr.self, &ci);
    if (rc == WEFT_EOF)
      break; /* every admitted item is done */
    if (rc != 0) {
      /* WEFT_ECANCELED after stop: the crawl ran. Else the caller was
       * cancelled (stop as for `stop`), or the frontier failed. */
      if (!(rc == WEFT_ECANCELED &&
            atomic_load_explicit(&c->stopping, memory_order_relaxed)))
        result = rc;
      break;
    }
    /* Signed arithmetic: see snapshot(). */
    atomic_fetch_sub_explicit(&c->n.queued, 1, memory_order_relaxed);
    item_t *it = malloc(sizeof(*it));
    if (it) {
      it->c = c;
      it->ci = ci;
      it->url = ci.url;
      it->hops = ci.hops;
      it->depth = ci.depth;
      /* The canonical form: "scheme://authority/target". */
      const char *auth = strstr(ci.url, "://");
      const char *slash = auth ? strchr(auth + 3, '/') : NULL;
      it->target = slash;
      it->host = slash ? host_get(c, ci.url, (size_t)(slash - ci.url), true)
                       : NULL;
    }
    if (!it || !it->host) {
      /* Out of memory, or a frontier that hands out a URL that is not
       * canonical: failed for good. */
      crawl_outcome_t o = {.status = 0, .error = CRAWL_ERR_OTHER};
      count(&c->n.errors, 1);
      count(&c->n.error[CRAWL_ERR_OTHER], 1);
      c->fr.ops->done(c->fr.self, &ci, &o);
      free(it);
      continue;
    }
    if (atomic_load_explicit(&c->stopping, memory_order_relaxed)) {
      count(&c->n.cancelled, 1);
      item_done(c, it, &cancelled_outcome);
      continue;
    }
    rc = weft_semaphore_acquire(&c->global);
    if (rc == 0) {
      rc = weft_taskgroup_spawn(&c->group, fetch_task, it, NULL);
      if (rc != 0)
        weft_semaphore_release(&c->global);
    }
    if (rc != 0) {
      count(&c->n.cancelled, 1);
      item_done(c, it, &cancelled_outcome);
      if (rc != WEFT_ETASKGROUP_SHUTDOWN) /* stop cancelled the group */
        result = rc;
    }
  }
  if (result != 0) {
    atomic_store_explicit(&c->stopping, 1, memory_order_relaxed);
    c->fr.ops->stop(c->fr.self);
  }
  /* Ends the helpers, and on an early stop the fetch tasks in flight. */
  weft_taskgroup_cancel(&c->group);
  rc = weft_taskgroup_wait(&c->group);
  if (result == 0 && rc != 0 && rc != WEFT_ECANCELED)
    result = rc;
  weft_taskgroup_destroy(&c->group);
  /* After an early stop, what the local frontier still holds was never
   * dispatched (it drops it when it is closed). A shared frontier keeps
   * such URLs for the other crawlers: not counted here. */
  if (c->own_fr) {
    int64_t left = (int64_t)load(&c->n.queued);
    if (left > 0)
      count(&c->n.cancelled, (uint64_t)left);
  }
  rc = fill_stats(c, stats);
  if (result == 0)
    result = rc;
  crawl_free(c);
  return result;
}

void crawl_stats_destroy(crawl_stats_t *stats) {
  free(stats->worker);
  stats->worker = NULL;
  stats->workers = 0;
}
