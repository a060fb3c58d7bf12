/*
 * timeouts: many long, often-renewed timeouts, as idle-connection timeouts
 * are. 100,000 "connection" tasks each enter a 30 s timeout scope and wait
 * in weft_queue_get() on one shared unbounded queue, so that each waiting
 * task has a timer 30 s ahead on its worker's wheel; on every item it
 * receives, a task renews its scope (weft_timeout_reschedule() to now + 30 s)
 * and waits again: its timer is removed and added again 30 s ahead. A ticker
 * task sleeps 1 ms at a time all along, so that the wheel turns as it does
 * under ordinary traffic with short timers.
 *
 * Phase 1 (renew): the main task puts 1,000,000 items, 1,000 at a time (each
 * handed to a waiting connection: 1,000 of 100,000 are awake at once), and
 * waits (yielding) until a batch is consumed before the next.
 * Phase 2 (idle): every connection waits; the main task sleeps 2 s while the
 * ticker ticks.
 *
 * Metrics: ns_per_renewal = phase 1 wall time / renewals (the queue hand-off,
 * the task switch, the scope renewal and the timer's removal and re-adding,
 * and whatever the wheel spends meanwhile); cpu_ns_per_tick = the process's
 * CPU time (user + system, every thread) during phase 2 / the ticker's
 * ticks: one 1 ms sleep, plus what the wheel spends per tick on the 100,000
 * far timers; tick_max_late_us = the most one of the ticker's 1 ms sleeps
 * overran 1 ms in phase 2 (a wheel that walks its far timers holds up the
 * near ones meanwhile); ticks; renewals; tasks. Every scope must still be
 * unexpired at the end (the run takes seconds, not 30 s).
 */
#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <sys/resource.h>

#define WORKLOAD "timeouts"
#define TASKS 100000u
#define TIMEOUT_MS 30000u
#define RENEWALS 1000000u
#define BATCH 1000u
#define IDLE_MS 2000u

struct timeouts {
  weft_queue_t *q;       /* the connections' shared "traffic" */
  bench_latch_t latch;   /* counts connections and the ticker ending */
  atomic_size_t ready;   /* connections inside their scope */
  atomic_size_t renewed; /* items received and scopes renewed */
  atomic_size_t ticks;   /* the ticker's 1 ms sleeps */
  atomic_int stop;       /* the ticker stops */
  atomic_int idle;       /* phase 2 is under way */
  atomic_uint_least64_t max_late_ns; /* the ticker's, in phase 2 */
  uint64_t renew_ns;                 /* phase 1 wall time */
  uint64_t idle_cpu_ns;              /* phase 2 CPU time */
  size_t idle_ticks;                 /* phase 2 ticks */
};

/* The running workload's state; one runtime at a time in this program. */
static struct timeouts *timeouts_state;

static uint64_t cpu_ns(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
             1000000000u +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
             1000u;
}

static void *connection(void *arg) {
  (void)arg;
  struct timeouts *st = timeouts_state;
  weft_timeout_t scope;
  int rc = weft_timeout_enter(&scope, TIMEOUT_MS);
  if (rc != 0)
    bench_die(WORKLOAD, "weft_timeout_enter", rc);
  /* relaxed: a count the main task polls; nothing is published with it. */
  atomic_fetch_add_explicit(&st->ready, 1, memory_order_relaxed);
  for (;;) {
    void *item;
    rc = weft_queue_get(st->q, &item);
    if (rc != 0)
      break;
    rc = weft_timeout_reschedule(&scope, weft_time_ms() + TIMEOUT_MS);
    if (rc != 0)
      bench_die(WORKLOAD, "weft_timeout_reschedule", rc);
    /* relaxed: as ready. */
    atomic_fetch_add_explicit(&st->renewed, 1, memory_order_relaxed);
  }
  rc = weft_timeout_exit(&scope, rc);
  if (rc !=
      WEFT_EQUEUE_SHUTDOWN) /* a timeout here means a late or lost timer */
    bench_die(WORKLOAD, "weft_queue_get", rc);
  bench_latch_arrive(&st->latch, WORKLOAD);
  return NULL;
}

static void *ticker(void *arg) {
  (void)arg;
  struct timeouts *st = timeouts_state;
  /* relaxed: a flag and a count; the latch orders the end. */
  while (!atomic_load_explicit(&st->stop, memory_order_relaxed)) {
    int idle = atomic_load_explicit(&st->idle, memory_order_relaxed);
    uint64_t t0 = bench_now_ns();
    int rc = weft_sleep(1);
    if (rc != 0)
      bench_die(WORKLOAD, "weft_sleep", rc);
    uint64_t took = bench_now_ns() - t0;
    uint64_t late = took > 1000000u ? took - 1000000u : 0;
    if (idle && atomic_load_explicit(&st->idle, memory_order_relaxed) &&
        late > atomic_load_explicit(&st->max_late_ns, memory_order_relaxed))
      atomic_store_explicit(&st->max_late_ns, late, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->ticks, 1, memory_order_relaxed);
  }
  bench_latch_arrive(&st->latch, WORKLOAD);
  return NULL;
}

static void *timeouts_main(void *arg) {
  struct timeouts *st = arg;
  int rc = weft_spawn(ticker, NULL, NULL);
  for (unsigned i = 0; rc == 0 && i < TASKS; i++)
    rc = weft_spawn(connection, NULL, NULL);
  if (rc != 0) {
    bench_fail(WORKLOAD, "weft_spawn: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  /* Every connection inside its scope, then a moment to reach its get. */
  while (rc == 0 &&
         atomic_load_explicit(&st->ready, memory_order_relaxed) < TASKS)
    rc = weft_sleep(1);
  if (rc == 0)
    rc = weft_sleep(10);

  /* Phase 1: renewals. */
  uint64_t t0 = bench_now_ns();
  for (size_t sent = 0; rc == 0 && sent < RENEWALS;) {
    for (unsigned i = 0; rc == 0 && i < BATCH; i++)
      rc = weft_queue_try_put(st->q, st);
    sent += BATCH;
    while (rc == 0 &&
           atomic_load_explicit(&st->renewed, memory_order_relaxed) < sent)
      rc = weft_yield();
  }
  st->renew_ns = bench_now_ns() - t0;

  /* Phase 2: idle, the wheel turning under the ticker. */
  /* relaxed: flags and counts, read by the ticker and by us. */
  atomic_store_explicit(&st->idle, 1, memory_order_relaxed);
  size_t k0 = atomic_load_explicit(&st->ticks, memory_order_relaxed);
  uint64_t c0 = cpu_ns();
  if (rc == 0)
    rc = weft_sleep(IDLE_MS);
  st->idle_cpu_ns = cpu_ns() - c0;
  st->idle_ticks = atomic_load_explicit(&st->ticks, memory_order_relaxed) - k0;
  atomic_store_explicit(&st->idle, 0, memory_order_relaxed);

  /* relaxed: see ticker. */
  atomic_store_explicit(&st->stop, 1, memory_order_relaxed);
  int rc2 = weft_queue_shutdown(st->q, 0);
  if (rc == 0)
    rc = rc2;
  if (rc == 0)
    rc = bench_latch_wait(&st->latch);
  if (rc != 0) {
    bench_fail(WORKLOAD, "%s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  return NULL;
}

int bench_timeouts(unsigned workers) {
  struct timeouts st = {0};
  int rc = bench_latch_init(&st.latch, TASKS + 1);
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  rc = weft_queue_new(0, &st.q);
  if (rc != 0) {
    bench_latch_destroy(&st.latch);
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  }
  timeouts_state = &st;
  rc = bench_run(WORKLOAD, workers, timeouts_main, &st);
  timeouts_state = NULL;
  size_t done = atomic_load(&st.latch.count);
  size_t renewed = atomic_load(&st.renewed);
  bench_latch_destroy(&st.latch);
  weft_queue_free(st.q);
  if (rc != 0)
    return rc;
  if (done != TASKS + 1)
    return bench_fail(WORKLOAD, "%zu tasks finished, expected %u", done,
                      TASKS + 1);
  if (renewed != RENEWALS)
    return bench_fail(WORKLOAD, "%zu renewals, expected %u", renewed, RENEWALS);
  if (st.idle_ticks == 0)
    return bench_fail(WORKLOAD, "the ticker did not tick");
  bench_result(WORKLOAD, workers,
               "ns_per_renewal=%.1f cpu_ns_per_tick=%.0f "
               "tick_max_late_us=%.0f ticks=%zu renewals=%u tasks=%u",
               (double)st.renew_ns / RENEWALS,
               (double)st.idle_cpu_ns / (double)st.idle_ticks,
               (double)atomic_load(&st.max_late_ns) / 1e3, st.idle_ticks,
               RENEWALS, TASKS);
  return 0;
}
