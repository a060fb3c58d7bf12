/*
 * spawn_many: one task spawns 1,000,000 tasks that each increment an atomic
 * counter; the last one signals completion. Metric: ns_per_task, from the
 * first spawn to the last completion.
 *
 * The tasks are detached (no handle kept): a million handles would measure
 * the benchmark's bookkeeping, not weft's spawn path.
 */
#include "bench.h"

#define WORKLOAD "spawn_many"
#define TASKS 1000000u

struct spawn_many {
  bench_latch_t latch; /* the atomic counter the tasks increment */
  uint64_t elapsed_ns; /* first spawn to last completion */
};

static void *count_task(void *arg) {
  struct spawn_many *st = arg;
  bench_latch_arrive(&st->latch, WORKLOAD);
  return NULL;
}

static void *spawner(void *arg) {
  struct spawn_many *st = arg;
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < TASKS; i++) {
    int rc = weft_spawn(count_task, st, NULL);
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

int bench_spawn_many(unsigned workers) {
  struct spawn_many st = {0};
  int rc = bench_latch_init(&st.latch, TASKS);
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  rc = bench_run(WORKLOAD, workers, spawner, &st);
  size_t count = atomic_load(&st.latch.count);
  bench_latch_destroy(&st.latch);
  if (rc != 0)
    return rc;
  if (count != TASKS)
    return bench_fail(WORKLOAD, "counter is %zu, expected %u", count, TASKS);
  bench_result(WORKLOAD, workers, "ns_per_task=%.1f tasks=%u",
               (double)st.elapsed_ns / TASKS, TASKS);
  return 0;
}
