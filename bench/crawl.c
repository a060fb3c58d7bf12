/*
 * crawl: examples/crawler's engine (examples/crawl.c) crawling the
 * synthetic site of examples/site, started separately on 127.0.0.1:PORT:
 *
 *   build/examples/site --port 8080 --no-slow --quiet &
 *   weft-bench crawl WORKERS 8080
 *
 * The crawl starts at /page/0 with 256 requests in flight (all on the one
 * host), a 1 s request timeout and no retries: the site's hung pages (0.1%)
 * then put a floor of one second under the wall time, and nothing else
 * waits (site --hang-share 0 switches them off: the crawl's own time).
 * Prints
 *
 *   RESULT crawl weft <workers> pages_per_s=... cpu_us_per_page=...
 *          peak_rss_kb=... pages=... errors=... timeouts=... wall_ms=...
 *
 * pages counts the responses received (any status), pages_per_s divides it
 * by the crawl's wall time, cpu_us_per_page divides the process's user +
 * system CPU time (getrusage) by it, peak_rss_kb is VmHWM. The run fails if
 * nothing was fetched, or if any URL failed otherwise than by a timeout (a
 * refused or reset connection, a malformed response: something is wrong
 * with the server or the client).
 */
#define _POSIX_C_SOURCE 200809L

#include "bench.h"
#include "crawl.h"

#include <inttypes.h>
#include <stdio.h>
#include <sys/resource.h>

#define CONCURRENCY 256
#define TIMEOUT_MS 1000

typedef struct crawl_bench {
  const char *seed;    /* http://127.0.0.1:PORT/page/0 */
  crawl_stats_t stats; /* what the crawl did */
  int rc;              /* crawl_run()'s result */
} crawl_bench_t;

static void *crawl_main(void *arg) {
  crawl_bench_t *b = arg;
  crawl_config_t cfg;
  crawl_config_init(&cfg);
  cfg.seeds = &b->seed;
  cfg.nseeds = 1;
  cfg.concurrency = CONCURRENCY;
  cfg.per_host = CONCURRENCY;
  cfg.timeout_ms = TIMEOUT_MS;
  cfg.retries = 0;
  b->rc = crawl_run(&cfg, &b->stats);
  return NULL;
}

static double cpu_us(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0.0;
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

int bench_crawl(unsigned workers, int port) {
  char seed[64];
  snprintf(seed, sizeof(seed), "http://127.0.0.1:%d/page/0", port);
  crawl_bench_t b = {.seed = seed};
  double cpu0 = cpu_us();
  int rc = bench_run("crawl", workers, crawl_main, &b);
  double cpu = cpu_us() - cpu0;
  if (rc != 0)
    return rc;
  const crawl_stats_t *s = &b.stats;
  if (b.rc != 0) {
    crawl_stats_destroy(&b.stats);
    return bench_fail("crawl", "crawl_run: %s", weft_strerror(b.rc));
  }
  uint64_t timeouts = s->error[CRAWL_ERR_TIMEOUT];
  if (s->pages == 0 || s->errors != timeouts) {
    rc = bench_fail("crawl",
                    "%" PRIu64 " pages, %" PRIu64 " errors of which %" PRIu64
                    " timeouts (is the site running on port %d?)",
                    s->pages, s->errors, timeouts, port);
    crawl_stats_destroy(&b.stats);
    return rc;
  }
  double secs = (double)s->elapsed_ms / 1000.0;
  bench_result("crawl", workers,
               "pages_per_s=%.0f cpu_us_per_page=%.1f peak_rss_kb=%ld "
               "pages=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64
               " wall_ms=%" PRIu64,
               secs > 0 ? (double)s->pages / secs : 0.0, cpu / (double)s->pages,
               bench_status_kb("VmHWM"), s->pages, s->errors, timeouts,
               s->elapsed_ms);
  crawl_stats_destroy(&b.stats);
  return 0;
}
