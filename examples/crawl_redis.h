/*
 * crawl_redis.h: a crawl frontier (crawl.h's crawl_frontier_ops_t) kept in
 * Redis, so that any number of crawler processes, on one machine or many,
 * share one crawl: `crawler --redis redis://HOST:PORT/NAME URL...`.
 *
 * Everything lives under keys NAME:* (docs/design.md §12 has the full
 * protocol and its Lua scripts):
 *
 *   NAME:seen    SET    every URL ever admitted (or refused by max_pages)
 *   NAME:meta    HASH   url -> "depth hops" for URLs admitted, not done
 *   NAME:q:ORIG  LIST   the queue of one origin ("http://host:port")
 *   NAME:hosts   ZSET   origins with queued URLs, scored by when their
 *                       next URL may be taken (politeness)
 *   NAME:next    HASH   origin -> the time its next URL may be taken
 *   NAME:leases  ZSET   url -> lease expiry (ms, Redis's clock)
 *   NAME:stats   HASH   admitted, queued, done, pages, errors, bytes,
 *                       status:N, error:KIND, expired, released
 *
 *   NAME:owner   HASH   url -> "host:pid" of the process leasing it
 *
 * A URL is admitted once (the seen set), at most max_pages in all; taken
 * with a lease (renewed while its fetch runs) by a Lua script that also re-queues every expired lease
 * (any process does it: a crashed process's URLs come back after lease_ms);
 * done() removes it from meta (so it is never handed out again, even when
 * it had been re-queued) and counts it; a cancelled one (the crawl was
 * stopped) goes back to its queue. The crawl is complete when no origin has
 * queued URLs and no lease is held: every process's take() then returns
 * WEFT_EOF. Restarting processes on a NAME resumes it; a complete crawl
 * stays complete (DEL NAME:* to crawl again).
 *
 * Redis going away: every call retries with exponential backoff (50 ms to
 * 2 s) until Redis answers again, reporting once on `report` when it goes
 * and once when it comes back, and losing nothing: the scripts are
 * idempotent where a retry could run one twice (admit, done, release), and
 * a take whose answer was lost only leaves leases that expire.
 */
#ifndef WEFT_EXAMPLES_CRAWL_REDIS_H
#define WEFT_EXAMPLES_CRAWL_REDIS_H

#include "crawl.h"

#include <stdio.h>

typedef struct crawl_redis_opts {
  const char *url;        /* redis://HOST:PORT/NAME (NAME required) */
  size_t max_pages;       /* URLs admitted at most, in all; 0: no limit */
  unsigned lease_ms;      /* how long a taken URL is ours without news
                             (120000): renewed every lease_ms / 3 while
                             its fetch runs, so it expires only when its
                             process died or lost Redis for that long */
  unsigned host_delay_ms; /* least time between two takes of one origin's
                             URLs, across all processes (0) */
  unsigned batch;         /* URLs taken per round trip (8) */
  FILE *report;           /* where Redis outages are reported (stderr) */
} crawl_redis_opts_t;

void crawl_redis_opts_init(crawl_redis_opts_t *o);

/* Make the Redis frontier; close it with out->ops->close(out->self) from a
 * task. Must be called from a task. Returns 0, WEFT_EINVAL (a bad URL, no
 * NAME, a NAME with spaces or longer than 200 bytes, lease_ms 0),
 * WEFT_ENOMEM. Does not wait for Redis. */
int crawl_frontier_redis_new(const crawl_redis_opts_t *o,
                             crawl_frontier_t *out);

/* Print the crawl's global progress (`crawler --redis URL --status`) on
 * out. From a task. Returns 0, WEFT_EINVAL, or the Redis client's errors
 * (one attempt: a status query does not wait for Redis). */
int crawl_redis_status(const char *url, FILE *out);

#endif /* WEFT_EXAMPLES_CRAWL_REDIS_H */
