/*
 * yield_many: 1,000 tasks each yield 1,000 times; wait for all. Metric:
 * ns_per_yield = wall time from the first spawn to the last completion over
 * the 1,000,000 yields.
 */
#include "bench.h"

#define WORKLOAD "yield_many"
#define TASKS 1000u
#define YIELDS 1000u

struct yield_many {
  bench_latch_t latch; /* counts finished tasks */
  uint64_t elapsed_ns; /* first spawn to last completion */
};

static void *yield_task(void *arg) {
  struct yield_many *st = arg;
  for (unsigned i = 0; i < YIELDS; i++) {
    int rc = weft_yield();
    if (rc != 0)
      bench_die(WORKLOAD, "weft_yield", rc);
  }
  bench_latch_arrive(&st->latch, WORKLOAD);
  return NULL;
}

static void *yield_main(void *arg) {
  struct yield_many *st = arg;
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < TASKS; i++) {
    int rc = weft_spawn(yield_task, st, NULL);
    if (rc != 0) {
      bench_fail(WORKLOAD, "weft_spawn #%u: %s", i, weft_strerror(rc));
      return weft_task_fail(rc);
    }
  }
  int rc = bench_latch_wait(&st->latch);
  if (rc != 0) {
    bench_fail(WORKLOAD, "waiting for completion: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  st->elapsed_ns = bench_now_ns() - t0;
  return NULL;
}

int bench_yield_many(unsigned workers) {
  struct yield_many st = {0};
  int rc = bench_latch_init(&st.latch, TASKS);
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  rc = bench_run(WORKLOAD, workers, yield_main, &st);
  size_t done = atomic_load(&st.latch.count);
  bench_latch_destroy(&st.latch);
  if (rc != 0)
    return rc;
  if (done != TASKS)
    return bench_fail(WORKLOAD, "%zu tasks finished, expected %u", done, TASKS);
  unsigned long yields = (unsigned long)TASKS * YIELDS;
  bench_result(WORKLOAD, workers, "ns_per_yield=%.1f yields=%lu",
               (double)st.elapsed_ns / (double)yields, yields);
  return 0;
}
