/*
 * mutex_contended: 8 tasks each do 1,000,000 times lock / increment a plain
 * shared counter / unlock on one weft_lock_t; wait for all. The counter must
 * end at 8,000,000 (mutual exclusion). Metric: ns_per_cs, the time from the
 * first spawn to the last completion divided by the 8,000,000 critical
 * sections.
 *
 * weft's lock is FIFO-fair: a release with waiters hands the lock to the
 * oldest one, so under contention each critical section includes a hand-over
 * to a parked task (no barging), as with asyncio.Lock.
 */
#include "bench.h"

#define WORKLOAD "mutex_contended"
#define TASKS 8u
#define ITERS 1000000u

struct mutex_contended {
  weft_lock_t lock;    /* the contended lock */
  uint64_t counter;    /* guarded by lock, deliberately not atomic */
  uint64_t elapsed_ns; /* first spawn to last completion */
};

static void *locker(void *arg) {
  struct mutex_contended *st = arg;
  for (unsigned i = 0; i < ITERS; i++) {
    int rc = weft_lock_acquire(&st->lock);
    if (rc != 0) {
      bench_fail(WORKLOAD, "weft_lock_acquire: %s", weft_strerror(rc));
      return weft_task_fail(rc);
    }
    st->counter++;
    rc = weft_lock_release(&st->lock);
    if (rc != 0) {
      bench_fail(WORKLOAD, "weft_lock_release: %s", weft_strerror(rc));
      return weft_task_fail(rc);
    }
  }
  return NULL;
}

static void *mutex_contended_main(void *arg) {
  struct mutex_contended *st = arg;
  weft_task_t *tasks[TASKS] = {NULL};
  int rc = 0;
  unsigned n = 0;
  uint64_t t0 = bench_now_ns();
  for (; n < TASKS && rc == 0; n++)
    rc = weft_spawn(locker, st, &tasks[n]);
  if (rc != 0) {
    n--;
    bench_fail(WORKLOAD, "weft_spawn: %s", weft_strerror(rc));
  }
  int grc = weft_gather(tasks, n, NULL);
  st->elapsed_ns = bench_now_ns() - t0;
  if (grc != 0 && rc == 0) {
    rc = grc;
    bench_fail(WORKLOAD, "weft_gather: %s", weft_strerror(rc));
  }
  for (unsigned i = 0; i < n; i++)
    weft_task_unref(tasks[i]);
  return rc != 0 ? weft_task_fail(rc) : NULL;
}

int bench_mutex_contended(unsigned workers) {
  static struct mutex_contended st = {WEFT_LOCK_INITIALIZER, 0, 0};
  int rc = bench_run(WORKLOAD, workers, mutex_contended_main, &st);
  if (rc != 0)
    return rc;
  if (st.counter != (uint64_t)TASKS * ITERS)
    return bench_fail(WORKLOAD, "counter %llu, expected %llu",
                      (unsigned long long)st.counter,
                      (unsigned long long)TASKS * ITERS);
  rc = weft_lock_destroy(&st.lock);
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_lock_destroy: %s", weft_strerror(rc));
  bench_result(WORKLOAD, workers, "ns_per_cs=%.1f critical_sections=%llu",
               (double)st.elapsed_ns / ((double)TASKS * ITERS),
               (unsigned long long)TASKS * ITERS);
  return 0;
}
