/*
 * The workers' metrics, owner side: the slow paths of the poll-time
 * sampling and the busy-time sequence lock. Protocol at the top of
 * sched/metrics.h; the readers are in src/metrics.c.
 */
#include "sched/metrics.h"

/* The next sampling interval: uniform in [1, 2 * period - 1], mean period,
 * so that a workload with a period of its own (n tasks taking turns) is
 * not always sampled at the same task. */
static uint32_t next_interval(weft__wsample_t *s) {
  if (s->period <= 1)
    return 1;
  s->rng ^= s->rng << 13;
  s->rng ^= s->rng >> 17;
  s->rng ^= s->rng << 5;
  return 1u + s->rng % (2u * s->period - 1u);
}

void weft__metrics_init(weft__wmetrics_t *m, weft__wsample_t *s,
                        unsigned period, unsigned index) {
  s->period = period ? period : 1u;
  s->rng = 0x2545F491u * (index + 1u);
  s->start = 0;
  s->left = next_interval(s);
  /* relaxed: set before the worker's thread starts (thread creation
   * orders it); the worker counts as busy from here. */
  atomic_store_explicit(&m->busy_since, weft__metrics_clock(),
                        memory_order_relaxed);
  atomic_store_explicit(&m->started_ns, weft__metrics_clock(),
                        memory_order_relaxed);
}

void weft__metrics_sample_end(weft__wmetrics_t *m, weft__wsample_t *s,
                              uint64_t now) {
  uint64_t ns = now > s->start ? now - s->start : 0;
  s->start = 0;
  s->left = next_interval(s);
  weft__metric_add(&m->poll_ns_sum, ns);
  weft__metric_add(&m->poll_hist[weft__metrics_bucket(ns)], 1);
}

/* The countdown reached 0 at a resumption: either the sampled poll that
 * ran until now has just switched directly to the next task (end it), or
 * this resumption is to be sampled (begin), or both, with one clock read. */
void weft__metrics_sample_tick(weft__wmetrics_t *m, weft__wsample_t *s) {
  uint64_t now = weft__metrics_clock();
  if (s->start) {
    weft__metrics_sample_end(m, s, now);
    if (--s->left != 0)
      return; /* this resumption is the first of the next interval */
  }
  s->start = now;
  s->left = 1; /* the next resumption ends this sample */
}

/* The sequence lock's write side (protocol in metrics.h). */
static void busy_write(weft__wmetrics_t *m, uint64_t busy, uint64_t since) {
  /* relaxed: only the owner writes the sequence. */
  unsigned seq = atomic_load_explicit(&m->busy_seq, memory_order_relaxed);
  /* relaxed: the release stores below order it before the values. */
  atomic_store_explicit(&m->busy_seq, seq + 1u, memory_order_relaxed);
  /* release (no fences: TSan does not model them): a reader that acquires
   * a new value then reads the sequence odd or moved on, and retries. */
  atomic_store_explicit(&m->busy_ns, busy, memory_order_release);
  atomic_store_explicit(&m->busy_since, since, memory_order_release);
  /* release: a reader that acquires the even sequence sees both values. */
  atomic_store_explicit(&m->busy_seq, seq + 2u, memory_order_release);
}

void weft__metrics_park(weft__wmetrics_t *m) {
  /* relaxed: the owner reads its own values. */
  uint64_t since = atomic_load_explicit(&m->busy_since, memory_order_relaxed);
  uint64_t busy = atomic_load_explicit(&m->busy_ns, memory_order_relaxed);
  if (!since)
    return; /* parked already */
  uint64_t now = weft__metrics_clock();
  busy_write(m, busy + (now > since ? now - since : 0), 0);
}

void weft__metrics_unpark(weft__wmetrics_t *m) {
  /* relaxed: the owner reads its own value. */
  uint64_t busy = atomic_load_explicit(&m->busy_ns, memory_order_relaxed);
  busy_write(m, busy, weft__metrics_clock());
}
