/*
 * crawl_redis.c: the crawl frontier on Redis (crawl_redis.h).
 *
 * Cross-thread protocol. crawl.c calls admit() and done() from any task on
 * any worker, concurrently, and take() from one task (the dispatcher);
 * stop() from any task or thread.
 *  - Redis itself is the shared state; every change is one Lua script, so
 *    it is atomic with respect to every other process and task.
 *  - `seen` is a process-local cache of URLs Redis has already answered
 *    for (admitted, or seen before, or refused as full): Redis's seen set
 *    only grows, so a URL in the cache can be answered "seen" without a
 *    round trip. 64 shards, each under its own pthread mutex, never held
 *    across a suspension.
 *  - The take buffer (`buf`) is touched only by take() and close(), which
 *    crawl.h says never run concurrently with each other.
 *  - `stopped` is set once by stop() (relaxed: the event below carries the
 *    wake-up, and a late read only costs one more round trip); `stop_ev`
 *    wakes take() out of its waits.
 *  - `held` lists the items leased to this process and not yet done
 *    (take() adds, done() removes, the renewer reads), under `held_mu`,
 *    never held across a suspension.
 *  - `down` (0/1) says an outage was reported; compare-and-swap makes one
 *    task report each transition (relaxed: it orders nothing else).
 */
#define _POSIX_C_SOURCE 200809L

#include "crawl_redis.h"
#include "redis.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the scripts ---------------------------------------------------------
 * ARGV[1] is always the key prefix NAME; keys are built inside the scripts
 * (an origin's queue key depends on the URL), which a single Redis server
 * allows and Redis Cluster would not. Times are Redis's TIME in ms, one
 * clock for every process. */

#define LUA_COMMON                                                             \
  "local p = ARGV[1]\n"                                                        \
  "local S = p..':stats'\n"                                                    \
  "local function now_ms()\n"                                                  \
  "  local t = redis.call('TIME')\n"                                           \
  "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"       \
  "end\n"                                                                      \
  "local function origin(u) return string.match(u, '^[^:]+://[^/]+') or '' "   \
  "end\n"                                                                      \
  "local function schedule(h, now)\n"                                          \
  "  if redis.call('ZSCORE', p..':hosts', h) == false then\n"                  \
  "    local nx = tonumber(redis.call('HGET', p..':next', h) or '0')\n"        \
  "    redis.call('ZADD', p..':hosts', math.max(now, nx), h)\n"                \
  "  end\n"                                                                    \
  "end\n"                                                                      \
  "local function requeue(u, now)\n"                                           \
  "  local h = origin(u)\n"                                                    \
  "  redis.call('LPUSH', p..':q:'..h, u)\n"                                    \
  "  schedule(h, now)\n"                                                       \
  "  redis.call('HINCRBY', S, 'queued', 1)\n"                                  \
  "end\n"

/* admit: ARGV p, url, "depth hops", max_pages -> 0 seen, 1 new, 2 full */
static const char admit_lua[] =
    LUA_COMMON
    "local u = ARGV[2]\n"
    "if redis.call('SADD', p..':seen', u) == 0 then return 0 end\n"
    "local max = tonumber(ARGV[4])\n"
    "if max > 0 and tonumber(redis.call('HGET', S, 'admitted') or '0') >= max"
    " then return 2 end\n"
    "redis.call('HINCRBY', S, 'admitted', 1)\n"
    "redis.call('HSET', p..':meta', u, ARGV[3])\n"
    "local h = origin(u)\n"
    "redis.call('RPUSH', p..':q:'..h, u)\n"
    "redis.call('HINCRBY', S, 'queued', 1)\n"
    "schedule(h, now_ms())\n"
    "return 1\n";

/* take: ARGV p, lease_ms, n, delay_ms, owner -> {'ITEMS', url, meta, ...},
 * {'WAIT', ms} or {'DONE'}. Re-queues expired leases first. */
static const char take_lua[] =
    LUA_COMMON
    "local lease, n, delay, owner = tonumber(ARGV[2]), tonumber(ARGV[3]),"
    " tonumber(ARGV[4]), ARGV[5]\n"
    "local L = p..':leases'\n"
    "local now = now_ms()\n"
    "for _, u in ipairs(redis.call('ZRANGEBYSCORE', L, '-inf', now, 'LIMIT',"
    " 0, 100)) do\n"
    "  redis.call('ZREM', L, u)\n"
    "  redis.call('HDEL', p..':owner', u)\n"
    "  if redis.call('HEXISTS', p..':meta', u) == 1 then\n"
    "    requeue(u, now)\n"
    "    redis.call('HINCRBY', S, 'expired', 1)\n"
    "  end\n"
    "end\n"
    "local out = {'ITEMS'}\n"
    "local budget = n * 4 + 16\n"
    "while #out < 2 * n + 1 and budget > 0 do\n"
    "  budget = budget - 1\n"
    "  local hs = redis.call('ZRANGEBYSCORE', p..':hosts', '-inf', now,"
    " 'LIMIT', 0, 1)\n"
    "  if #hs == 0 then break end\n"
    "  local h = hs[1]\n"
    "  local q = p..':q:'..h\n"
    "  local u = redis.call('LPOP', q)\n"
    "  if not u then\n"
    "    redis.call('ZREM', p..':hosts', h)\n"
    "  else\n"
    "    redis.call('HINCRBY', S, 'queued', -1)\n"
    "    if redis.call('LLEN', q) == 0 then redis.call('ZREM', p..':hosts', h)\n"
    "    else redis.call('ZADD', p..':hosts', now + delay, h) end\n"
    "    if delay > 0 then redis.call('HSET', p..':next', h, now + delay) end\n"
    "    local m = redis.call('HGET', p..':meta', u)\n"
    "    if m then\n"
    "      redis.call('ZADD', L, now + lease, u)\n"
    "      redis.call('HSET', p..':owner', u, owner)\n"
    "      out[#out + 1] = u\n"
    "      out[#out + 1] = m\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #out > 1 then return out end\n"
    "if redis.call('ZCARD', p..':hosts') == 0 and redis.call('ZCARD', L) == 0"
    " then return {'DONE'} end\n"
    "local w = 100\n"
    "local fh = redis.call('ZRANGE', p..':hosts', 0, 0, 'WITHSCORES')\n"
    "if #fh == 2 then w = math.min(w, tonumber(fh[2]) - now) end\n"
    "local fl = redis.call('ZRANGE', L, 0, 0, 'WITHSCORES')\n"
    "if #fl == 2 then w = math.min(w, tonumber(fl[2]) - now) end\n"
    "if w < 1 then w = 1 end\n"
    "return {'WAIT', tostring(w)}\n";

/* done: ARGV p, url, status, error name or '', bytes, cancelled -> 1 if
 * this call finished (or released) the URL, 0 if an earlier one had. */
static const char done_lua[] =
    LUA_COMMON
    "local u = ARGV[2]\n"
    "if ARGV[6] == '1' then\n"
    "  if redis.call('ZREM', p..':leases', u) == 1 then\n"
    "    redis.call('HDEL', p..':owner', u)\n"
    "    if redis.call('HEXISTS', p..':meta', u) == 1 then\n"
    "      requeue(u, now_ms())\n"
    "      redis.call('HINCRBY', S, 'released', 1)\n"
    "      return 1\n"
    "    end\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "if redis.call('HDEL', p..':meta', u) == 0 then return 0 end\n"
    "redis.call('ZREM', p..':leases', u)\n"
    "redis.call('HDEL', p..':owner', u)\n"
    "local st = tonumber(ARGV[3])\n"
    "if st > 0 then\n"
    "  redis.call('HINCRBY', S, 'pages', 1)\n"
    "  redis.call('HINCRBY', S, 'status:'..st, 1)\n"
    "end\n"
    "if ARGV[4] ~= '' then\n"
    "  redis.call('HINCRBY', S, 'errors', 1)\n"
    "  redis.call('HINCRBY', S, 'error:'..ARGV[4], 1)\n"
    "end\n"
    "redis.call('HINCRBY', S, 'bytes', ARGV[5])\n"
    "redis.call('HINCRBY', S, 'done', 1)\n"
    "return 1\n";

/* renew: ARGV p, lease_ms, owner, url... -> leases extended. A lease that
 * expired and was re-queued (its owner entry gone) is not revived. */
static const char renew_lua[] =
    LUA_COMMON
    "local lease, owner = tonumber(ARGV[2]), ARGV[3]\n"
    "local now, n = now_ms(), 0\n"
    "for i = 4, #ARGV do\n"
    "  local u = ARGV[i]\n"
    "  if redis.call('HGET', p..':owner', u) == owner then\n"
    "    redis.call('ZADD', p..':leases', 'XX', now + lease, u)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* ---- the local seen cache ------------------------------------------------ */

#define SEEN_SHARDS 64

typedef struct seen_node {
  struct seen_node *next;
  uint64_t hash;
  char url[];
} seen_node_t;

typedef struct seen_shard {
  pthread_mutex_t mu;
  seen_node_t **b;
  size_t nb, n;
} seen_shard_t;

static uint64_t fnv(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

/* ---- the frontier -------------------------------------------------------- */

typedef struct rlink {
  struct rlink *prev, *next;
} rlink_t;

typedef struct ritem {
  rlink_t link; /* first: in `held`, under held_mu */
  unsigned depth, hops;
  char url[];
} ritem_t;

typedef struct rfront {
  redis_client_t *rc;
  char prefix[201];
  char owner[96];
  crawl_redis_opts_t o;
  redis_script_t s_admit, s_take, s_done, s_renew;
  pthread_mutex_t held_mu; /* guards held and nheld */
  rlink_t held;            /* sentinel of the URLs leased, not yet done */
  size_t nheld;
  weft_task_t *renewer;    /* renews held leases every lease_ms / 3 */
  seen_shard_t seen[SEEN_SHARDS];
  ritem_t **buf; /* take()'s batch: buf[ibuf..nbuf) are leased, not given */
  size_t nbuf, ibuf;
  atomic_int stopped;
  atomic_int down;
  weft_event_t stop_ev;
} rfront_t;

static int seen_has(rfront_t *f, const char *u, size_t n, uint64_t h) {
  seen_shard_t *s = &f->seen[h % SEEN_SHARDS];
  int found = 0;
  pthread_mutex_lock(&s->mu);
  if (s->nb)
    for (seen_node_t *e = s->b[(h / SEEN_SHARDS) % s->nb]; e; e = e->next)
      if (e->hash == h && strncmp(e->url, u, n) == 0 && e->url[n] == '\0') {
        found = 1;
        break;
      }
  pthread_mutex_unlock(&s->mu);
  return found;
}

static void seen_add(rfront_t *f, const char *u, size_t n, uint64_t h) {
  seen_shard_t *s = &f->seen[h % SEEN_SHARDS];
  seen_node_t *e = malloc(sizeof *e + n + 1);
  if (!e)
    return; /* only a cache */
  e->hash = h;
  memcpy(e->url, u, n);
  e->url[n] = '\0';
  pthread_mutex_lock(&s->mu);
  if (s->n >= s->nb) {
    size_t nb = s->nb ? s->nb * 2 : 64;
    seen_node_t **b = calloc(nb, sizeof *b);
    if (b) {
      for (size_t i = 0; i < s->nb; i++)
        for (seen_node_t *x = s->b[i], *nx; x; x = nx) {
          nx = x->next;
          size_t k = (x->hash / SEEN_SHARDS) % nb;
          x->next = b[k];
          b[k] = x;
        }
      free(s->b);
      s->b = b;
      s->nb = nb;
    }
  }
  if (!s->nb) {
    pthread_mutex_unlock(&s->mu);
    free(e);
    return;
  }
  size_t k = (h / SEEN_SHARDS) % s->nb;
  e->next = s->b[k];
  s->b[k] = e;
  s->n++;
  pthread_mutex_unlock(&s->mu);
}

static int is_conn_error(int rc) {
  return rc == WEFT_ECONNRESET || rc == WEFT_ENOTCONN ||
         rc == WEFT_ECONNREFUSED || rc == WEFT_ETIMEDOUT || rc == WEFT_EPIPE ||
         rc == WEFT_ECONNABORTED || rc == WEFT_EHOSTUNREACH ||
         rc == WEFT_ENETUNREACH || rc == WEFT_EAI_AGAIN || rc == REDIS_EPROTO;
}

/* Sleep ms, or less if stop() is called (then WEFT_ECANCELED). */
static int rf_sleep(rfront_t *f, uint64_t ms, int stoppable) {
  if (!stoppable)
    return weft_sleep(ms);
  weft_timeout_t scope;
  int rc = weft_timeout_enter(&scope, ms);
  if (rc)
    return rc;
  rc = weft_timeout_exit(&scope, weft_event_wait(&f->stop_ev));
  if (rc == 0)
    return WEFT_ECANCELED; /* stopped */
  return rc == WEFT_ETIMEDOUT ? 0 : rc;
}

static void report_down(rfront_t *f, int err) {
  int zero = 0;
  /* relaxed: one reporter per transition; nothing else is ordered */
  if (atomic_compare_exchange_strong_explicit(&f->down, &zero, 1,
                                              memory_order_relaxed,
                                              memory_order_relaxed)) {
    if (f->o.report)
      fprintf(f->o.report,
              "crawler: redis %s unreachable (%s): retrying with backoff\n",
              f->o.url, redis_strerror(err));
  }
}

static void report_up(rfront_t *f) {
  int one = 1;
  if (atomic_load_explicit(&f->down, memory_order_relaxed) &&
      atomic_compare_exchange_strong_explicit(&f->down, &one, 0,
                                              memory_order_relaxed,
                                              memory_order_relaxed) &&
      f->o.report)
    fprintf(f->o.report, "crawler: redis %s reachable again\n", f->o.url);
}

enum { UNTIL_STOP, GRACE_AFTER_STOP, ONCE };

/* Run a script, retrying connection failures with backoff (50 ms doubling
 * to 2 s). UNTIL_STOP: give up with WEFT_ECANCELED once stop() was
 * called; GRACE_AFTER_STOP: go on for 5 s after stop(), then give up with
 * the error (what is lost is a lease, which expires); ONCE: no retry. */
static int rf_eval(rfront_t *f, redis_script_t *s, int mode, int argc,
                   const char *const *argv, redisReply **reply) {
  unsigned backoff = 50;
  uint64_t give_up = 0;
  for (;;) {
    int rc = redis_eval(f->rc, s, reply, 0, argc, argv, NULL);
    if (rc == 0) {
      report_up(f);
      return 0;
    }
    if (!is_conn_error(rc) || mode == ONCE)
      return rc; /* cancelled, a script error, out of memory */
    report_down(f, rc);
    if (atomic_load_explicit(&f->stopped, memory_order_relaxed)) {
      if (mode == UNTIL_STOP)
        return WEFT_ECANCELED;
      if (!give_up)
        give_up = weft_time_ms() + 5000;
      else if (weft_time_ms() >= give_up)
        return rc;
    }
    int src = rf_sleep(f, backoff, mode == UNTIL_STOP);
    if (src == WEFT_ECANCELED && mode == UNTIL_STOP)
      return WEFT_ECANCELED;
    if (src != 0 && src != WEFT_ECANCELED)
      return src;
    backoff = backoff >= 1000 ? 2000 : backoff * 2;
  }
}

static int rf_admit(void *self, const char *url, size_t n, unsigned depth,
                    unsigned hops, int *verdict) {
  rfront_t *f = self;
  uint64_t h = fnv(url, n);
  if (seen_has(f, url, n, h)) {
    *verdict = CRAWL_ADMIT_SEEN;
    return 0;
  }
  char *u = malloc(n + 1);
  if (!u)
    return WEFT_ENOMEM;
  memcpy(u, url, n);
  u[n] = '\0';
  char meta[32], max[24];
  snprintf(meta, sizeof meta, "%u %u", depth, hops);
  snprintf(max, sizeof max, "%zu", f->o.max_pages);
  const char *argv[] = {f->prefix, u, meta, max};
  redisReply *r = NULL;
  int rc = rf_eval(f, &f->s_admit, UNTIL_STOP, 4, argv, &r);
  if (rc == 0) {
    if (r->type != REDIS_REPLY_INTEGER) {
      rc = REDIS_EPROTO;
    } else {
      *verdict = r->integer == 1   ? CRAWL_ADMIT_NEW
                 : r->integer == 2 ? CRAWL_ADMIT_FULL
                                   : CRAWL_ADMIT_SEEN;
      seen_add(f, url, n, h);
    }
  }
  redis_reply_free(r);
  free(u);
  return rc;
}

static int rf_take(void *self, crawl_item_t *out) {
  rfront_t *f = self;
  char lease[16], batch[16], delay[16];
  snprintf(lease, sizeof lease, "%u", f->o.lease_ms);
  snprintf(batch, sizeof batch, "%u", f->o.batch);
  snprintf(delay, sizeof delay, "%u", f->o.host_delay_ms);
  for (;;) {
    if (atomic_load_explicit(&f->stopped, memory_order_relaxed))
      return WEFT_ECANCELED;
    if (f->ibuf < f->nbuf) {
      ritem_t *it = f->buf[f->ibuf++];
      out->url = it->url;
      out->depth = it->depth;
      out->hops = it->hops;
      out->lease = it;
      return 0;
    }
    f->ibuf = f->nbuf = 0;
    const char *argv[] = {f->prefix, lease, batch, delay, f->owner};
    redisReply *r = NULL;
    int rc = rf_eval(f, &f->s_take, UNTIL_STOP, 5, argv, &r);
    if (rc != 0)
      return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
      redis_reply_free(r);
      return REDIS_EPROTO;
    }
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "DONE") == 0) {
      redis_reply_free(r);
      return WEFT_EOF;
    }
    if (strcmp(kind, "WAIT") == 0) {
      long ms = r->elements > 1 ? atol(r->element[1]->str) : 50;
      redis_reply_free(r);
      if (ms < 1)
        ms = 1;
      if (ms > 100)
        ms = 100;
      rc = rf_sleep(f, (uint64_t)ms, 1);
      if (rc != 0)
        return rc;
      continue;
    }
    for (size_t i = 1; i + 1 < r->elements; i += 2) {
      redisReply *u = r->element[i], *m = r->element[i + 1];
      ritem_t *it = malloc(sizeof *it + u->len + 1);
      if (!it)
        break; /* its lease expires and it comes back */
      memcpy(it->url, u->str, u->len);
      it->url[u->len] = '\0';
      it->depth = it->hops = 0;
      if (m->type == REDIS_REPLY_STRING &&
          sscanf(m->str, "%u %u", &it->depth, &it->hops) != 2)
        it->depth = it->hops = 0;
      pthread_mutex_lock(&f->held_mu);
      it->link.next = f->held.next;
      it->link.prev = &f->held;
      it->link.next->prev = &it->link;
      f->held.next = &it->link;
      f->nheld++;
      pthread_mutex_unlock(&f->held_mu);
      f->buf[f->nbuf++] = it;
    }
    redis_reply_free(r);
  }
}

static const char *const err_names[CRAWL_ERR_COUNT] = {
    "timeout", "refused", "reset", "dns", "parse", "redirects",
    "toolarge", "tls-verify", "tls", "other"};

/* Finish or release one item in Redis; frees it. */
static int rf_finish(rfront_t *f, ritem_t *it, const crawl_outcome_t *o,
                     int mode) {
  char st[16], bytes[24];
  snprintf(st, sizeof st, "%d", o ? o->status : 0);
  snprintf(bytes, sizeof bytes, "%llu",
           (unsigned long long)(o ? o->bytes : 0));
  const char *err = "";
  if (o && o->error >= 0 && o->error < CRAWL_ERR_COUNT)
    err = err_names[o->error];
  const char *argv[] = {f->prefix, it->url, st, err, bytes,
                        !o || o->cancelled ? "1" : "0"};
  int rc;
  /* Not cancellable by the caller: a fetch task cancelled just after its
   * fetch completed must still record it, or it is fetched again. */
  do
    rc = rf_eval(f, &f->s_done, mode, 6, argv, NULL);
  while (rc == WEFT_ECANCELED && mode != ONCE);
  pthread_mutex_lock(&f->held_mu);
  it->link.prev->next = it->link.next;
  it->link.next->prev = it->link.prev;
  f->nheld--;
  pthread_mutex_unlock(&f->held_mu);
  free(it);
  return rc;
}

static int rf_done(void *self, const crawl_item_t *ci,
                   const crawl_outcome_t *o) {
  return rf_finish(self, ci->lease, o, GRACE_AFTER_STOP);
}

static void rf_stop(void *self) {
  rfront_t *f = self;
  atomic_store_explicit(&f->stopped, 1, memory_order_relaxed);
  weft_event_set(&f->stop_ev);
}

static void rf_close(void *self) {
  rfront_t *f = self;
  /* What take() had leased and not handed out goes back to the queue (one
   * attempt each: if Redis is away, the leases expire instead). */
  atomic_store_explicit(&f->stopped, 1, memory_order_relaxed);
  while (f->ibuf < f->nbuf)
    rf_finish(f, f->buf[f->ibuf++], NULL, ONCE);
  weft_event_set(&f->stop_ev);
  if (f->renewer) {
    weft_task_cancel(f->renewer);
    weft_task_await(f->renewer, NULL);
    weft_task_unref(f->renewer);
  }
  redis_client_free(f->rc);
  redis_script_destroy(&f->s_renew);
  pthread_mutex_destroy(&f->held_mu);
  redis_script_destroy(&f->s_admit);
  redis_script_destroy(&f->s_take);
  redis_script_destroy(&f->s_done);
  for (int i = 0; i < SEEN_SHARDS; i++) {
    seen_shard_t *s = &f->seen[i];
    for (size_t b = 0; b < s->nb; b++)
      for (seen_node_t *e = s->b[b], *n; e; e = n) {
        n = e->next;
        free(e);
      }
    free(s->b);
    pthread_mutex_destroy(&s->mu);
  }
  weft_event_destroy(&f->stop_ev);
  free(f->buf);
  free(f);
}

/* Every lease_ms / 3, extend the leases of the URLs this process holds,
 * so that a fetch slower than a lease (a slow server, retries, a loaded
 * machine) is not handed to another process; only a process that stops
 * renewing (it died, or Redis was away longer than a lease) loses them. */
static void *renew_main(void *arg) {
  rfront_t *f = arg;
  char lease[16];
  snprintf(lease, sizeof lease, "%u", f->o.lease_ms);
  uint64_t period = f->o.lease_ms / 3 ? f->o.lease_ms / 3 : 1;
  while (rf_sleep(f, period, 1) == 0) {
    pthread_mutex_lock(&f->held_mu);
    size_t n = f->nheld;
    char **urls = malloc((n + 3) * sizeof *urls);
    size_t k = 3;
    for (rlink_t *l = f->held.next; urls && l != &f->held; l = l->next)
      if ((urls[k] = strdup(((ritem_t *)l)->url)) != NULL)
        k++;
    pthread_mutex_unlock(&f->held_mu);
    if (!urls)
      continue;
    urls[0] = f->prefix;
    urls[1] = lease;
    urls[2] = f->owner;
    if (k > 3)
      rf_eval(f, &f->s_renew, ONCE, (int)k, (const char *const *)urls, NULL);
    for (size_t i = 3; i < k; i++)
      free(urls[i]);
    free(urls);
  }
  return NULL;
}

static const crawl_frontier_ops_t redis_ops = {
    .admit = rf_admit,
    .take = rf_take,
    .done = rf_done,
    .stop = rf_stop,
    .close = rf_close,
};

void crawl_redis_opts_init(crawl_redis_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->lease_ms = 120000;
  o->batch = 8;
  o->report = stderr;
}

/* The NAME of a redis://HOST:PORT/NAME URL into u; WEFT_EINVAL if bad. */
static int parse_name(const char *url, redis_url_t *u) {
  int rc = redis_url_parse(url, u);
  if (rc)
    return rc;
  size_t n = strlen(u->path);
  if (n == 0 || n > 200)
    return WEFT_EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)u->path[i] <= ' ' || u->path[i] == 0x7f)
      return WEFT_EINVAL;
  return 0;
}

int crawl_frontier_redis_new(const crawl_redis_opts_t *o,
                             crawl_frontier_t *out) {
  if (!o || !out || !o->url || o->lease_ms == 0)
    return WEFT_EINVAL;
  redis_url_t u;
  int rc = parse_name(o->url, &u);
  if (rc)
    return rc;
  rfront_t *f = calloc(1, sizeof *f);
  if (!f)
    return WEFT_ENOMEM;
  f->o = *o;
  if (!f->o.batch)
    f->o.batch = 1;
  if (f->o.batch > 1000)
    f->o.batch = 1000;
  f->buf = calloc(f->o.batch, sizeof *f->buf);
  if (!f->buf) {
    free(f);
    return WEFT_ENOMEM;
  }
  strcpy(f->prefix, u.path);
  char host[64];
  if (gethostname(host, sizeof host) != 0)
    strcpy(host, "?");
  host[sizeof host - 1] = '\0';
  snprintf(f->owner, sizeof f->owner, "%s:%ld", host, (long)getpid());
  redis_opts_t ro;
  redis_opts_init(&ro);
  rc = redis_client_new(u.host, u.port, &ro, &f->rc);
  if (rc) {
    free(f->buf);
    free(f);
    return rc;
  }
  redis_script_init(&f->s_admit, admit_lua);
  redis_script_init(&f->s_take, take_lua);
  redis_script_init(&f->s_done, done_lua);
  redis_script_init(&f->s_renew, renew_lua);
  pthread_mutex_init(&f->held_mu, NULL);
  f->held.next = f->held.prev = &f->held;
  for (int i = 0; i < SEEN_SHARDS; i++)
    pthread_mutex_init(&f->seen[i].mu, NULL);
  atomic_init(&f->stopped, 0);
  atomic_init(&f->down, 0);
  weft_event_init(&f->stop_ev);
  weft_spawn_opts_t so;
  weft_spawn_opts_init(&so);
  so.name = "lease-renewer";
  rc = weft_spawn_ex(renew_main, f, &so, &f->renewer);
  if (rc) {
    f->renewer = NULL;
    out->ops = &redis_ops;
    out->self = f;
    rf_close(f);
    out->ops = NULL;
    out->self = NULL;
    return rc;
  }
  out->ops = &redis_ops;
  out->self = f;
  return 0;
}

/* ---- --status ------------------------------------------------------------ */

static long long field(const redisReply *h, const char *name) {
  if (!h || h->type != REDIS_REPLY_ARRAY)
    return 0;
  for (size_t i = 0; i + 1 < h->elements; i += 2)
    if (strcmp(h->element[i]->str, name) == 0)
      return atoll(h->element[i + 1]->str);
  return 0;
}

int crawl_redis_status(const char *url, FILE *out) {
  redis_url_t u;
  int rc = parse_name(url, &u);
  if (rc)
    return rc;
  redis_client_t *c = NULL;
  redis_opts_t ro;
  redis_opts_init(&ro);
  if ((rc = redis_client_new(u.host, u.port, &ro, &c)) != 0)
    return rc;
  char k_stats[280], k_leases[280], k_hosts[280], k_owner[280];
  snprintf(k_stats, sizeof k_stats, "%s:stats", u.path);
  snprintf(k_leases, sizeof k_leases, "%s:leases", u.path);
  snprintf(k_hosts, sizeof k_hosts, "%s:hosts", u.path);
  snprintf(k_owner, sizeof k_owner, "%s:owner", u.path);
  redisReply *st = NULL, *nl = NULL, *nh = NULL, *ow = NULL;
  if ((rc = redis_command(c, &st, "HGETALL", k_stats, NULL)) == 0 &&
      (rc = redis_command(c, &nl, "ZCARD", k_leases, NULL)) == 0 &&
      (rc = redis_command(c, &nh, "ZCARD", k_hosts, NULL)) == 0 &&
      (rc = redis_command(c, &ow, "HVALS", k_owner, NULL)) == 0) {
    long long leased = nl->integer, hosts = nh->integer;
    fprintf(out,
            "crawl %s on %s:%d: %lld admitted, %lld queued, %lld leased, "
            "%lld done (%lld pages, %lld errors), %lld bytes; %s\n",
            u.path, u.host, u.port, field(st, "admitted"),
            field(st, "queued"), leased, field(st, "done"),
            field(st, "pages"), field(st, "errors"), field(st, "bytes"),
            leased == 0 && hosts == 0
                ? (field(st, "admitted") ? "complete" : "empty")
                : "running");
    for (size_t i = 0; st->type == REDIS_REPLY_ARRAY && i + 1 < st->elements;
         i += 2) {
      const char *k = st->element[i]->str;
      if (strncmp(k, "status:", 7) == 0)
        fprintf(out, "status %s: %s\n", k + 7, st->element[i + 1]->str);
      else if (strncmp(k, "error:", 6) == 0)
        fprintf(out, "error %s: %s\n", k + 6, st->element[i + 1]->str);
    }
    fprintf(out, "leases expired and re-queued: %lld, released: %lld\n",
            field(st, "expired"), field(st, "released"));
    /* leases by process (few processes: a quadratic count is fine) */
    for (size_t i = 0; ow->type == REDIS_REPLY_ARRAY && i < ow->elements;
         i++) {
      size_t j = 0;
      while (j < i && strcmp(ow->element[j]->str, ow->element[i]->str) != 0)
        j++;
      if (j < i)
        continue;
      size_t n = 0;
      for (j = i; j < ow->elements; j++)
        n += strcmp(ow->element[j]->str, ow->element[i]->str) == 0;
      fprintf(out, "leases of %s: %zu\n", ow->element[i]->str, n);
    }
  }
  redis_reply_free(st);
  redis_reply_free(nl);
  redis_reply_free(nh);
  redis_reply_free(ow);
  redis_client_free(c);
  return rc;
}
