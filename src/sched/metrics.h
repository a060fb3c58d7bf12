/*
 * The workers' metrics beyond the plain event counters (worker.h,
 * weft__counters_t): busy time, the poll-time histogram and the gauges
 * (depths and sizes) that weft_metrics_worker() (src/metrics.c) reads.
 *
 * Protocol (one writer, any number of readers, nobody waits):
 *  - Every field of weft__wmetrics_t is written by its worker's thread
 *    only (relaxed load + relaxed store, no read-modify-write), except
 *    `inbox_pushed` (worker.h, next to the inbox): every producer counts
 *    its push with a relaxed fetch_add. Readers load relaxed: each value
 *    is a statistic; no two are promised to be from the same instant.
 *  - Busy time is the time the worker was not parked (Tokio's
 *    busy_duration): `busy_ns` holds the busy time up to `busy_since`,
 *    and `busy_since` is the clock when the worker last unparked, 0 while
 *    it is parked. The pair changes only at a park and an unpark, under a
 *    sequence lock (`busy_seq`, odd while the owner writes): a reader
 *    retries until it reads an even, unchanged sequence around both
 *    values, so it never counts an interval twice or not at all. The
 *    owner never blocks inside the write, so a reader retries at most a
 *    few times.
 *  - The poll-time histogram is sampled: one poll in about
 *    cfg.metrics_poll_sample (the countdown `left` in weft__wsample_t,
 *    owner-only, jittered) is timed, so an unsampled task switch reads no
 *    clock at all; a sampled one reads it once at its start and once at
 *    its end, and a switch that ends one sampled poll and begins the next
 *    reads it once for both. `poll_ns_sum` and the buckets hold the
 *    sampled polls only; their count is the sum of the buckets.
 */
#ifndef WEFT_SCHED_METRICS_H
#define WEFT_SCHED_METRICS_H

#include "weft.h"

#include "compiler.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* The gauges and the busy time and histogram of one worker; in the part of
 * the worker other threads read (worker.h, weft__worker_remote_t). */
typedef struct weft__wmetrics {
  atomic_uint_fast64_t overflows;     /* ring overflows to the inject queue */
  atomic_uint_fast64_t own_len;       /* tasks in the owner-only FIFO */
  atomic_uint_fast64_t timers;        /* timers on the worker's wheel */
  atomic_uint_fast64_t stacks_cached; /* free stacks in its cache */
  atomic_uint busy_seq;               /* sequence lock of the next two */
  atomic_uint_fast64_t busy_ns;       /* busy time up to busy_since */
  atomic_uint_fast64_t busy_since;    /* clock at the last unpark; 0 parked */
  atomic_uint_fast64_t started_ns;    /* clock when weft_run set it up */
  atomic_uint_fast64_t poll_ns_sum;   /* sampled polls: total ns */
  atomic_uint_fast64_t poll_hist[WEFT_METRICS_POLL_BUCKETS];
} weft__wmetrics_t;

/* Owner-only sampling state (worker.h, weft__worker_own_t). */
typedef struct weft__wsample {
  uint32_t left;   /* polls until the next sampled one (1 while sampling) */
  uint32_t period; /* cfg.metrics_poll_sample, >= 1 */
  uint32_t rng;    /* xorshift state for the jitter */
  uint64_t start;  /* clock at the start of the sampled poll, or 0 */
} weft__wsample_t;

/* The metrics clock: CLOCK_MONOTONIC in nanoseconds (vDSO, no system call
 * on Linux). Never 0 (0 means "none" in busy_since and start). The one
 * helper that times task runs in the worker loop, for whoever else needs a
 * timestamp there. */
static inline uint64_t weft__metrics_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) | 1u;
}

/* An owner-only counter: relaxed load and store (one writer, so no RMW). */
static inline void weft__metric_add(atomic_uint_fast64_t *c, uint64_t n) {
  /* relaxed: a statistic with one writer (protocol above). */
  atomic_store_explicit(
      c, atomic_load_explicit(c, memory_order_relaxed) + n,
      memory_order_relaxed);
}

static inline void weft__metric_set(atomic_uint_fast64_t *c, uint64_t v) {
  /* relaxed: a gauge with one writer (protocol above). */
  atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Histogram bucket of a poll of ns nanoseconds: 0 below 2^10 ns, i in
 * [2^(9+i), 2^(10+i)) ns, the last one everything from 2^(9+last) up. */
static inline unsigned weft__metrics_bucket(uint64_t ns) {
  if (ns < (1u << 10))
    return 0;
  unsigned b = (unsigned)(63 - __builtin_clzll(ns)) - 9u;
  return b < WEFT_METRICS_POLL_BUCKETS ? b : WEFT_METRICS_POLL_BUCKETS - 1u;
}

/* Slow paths (sched/metrics.c). */
void weft__metrics_sample_tick(weft__wmetrics_t *m, weft__wsample_t *s);
void weft__metrics_sample_end(weft__wmetrics_t *m, weft__wsample_t *s,
                              uint64_t now);
void weft__metrics_init(weft__wmetrics_t *m, weft__wsample_t *s,
                        unsigned period, unsigned index);
/* The worker stops being busy (parks, or leaves its loop) / starts again. */
void weft__metrics_park(weft__wmetrics_t *m);
void weft__metrics_unpark(weft__wmetrics_t *m);

/* At every task resumption (worker.c, tick): the sampling countdown. */
static inline void weft__metrics_poll_tick(weft__wmetrics_t *m,
                                           weft__wsample_t *s) {
  if (WEFT__UNLIKELY(--s->left == 0))
    weft__metrics_sample_tick(m, s);
}

/* When the running task has switched back to the scheduler (switch.c):
 * ends a sampled poll. */
static inline void weft__metrics_poll_done(weft__wmetrics_t *m,
                                           weft__wsample_t *s) {
  if (WEFT__UNLIKELY(s->start != 0))
    weft__metrics_sample_end(m, s, weft__metrics_clock());
}

#endif /* WEFT_SCHED_METRICS_H */
