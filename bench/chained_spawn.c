/*
 * chained_spawn: a task spawns the next, depth 1,000,000; the last signals
 * completion. Metric: ns_per_spawn, from the first spawn (by the main task)
 * to the completion of the last task of the chain, over the depth.
 *
 * Every task of the chain counts itself on the latch; the count tells it its
 * depth, so the chain needs no per-task argument, and the task that reaches
 * the depth completes the latch instead of spawning.
 */
#include "bench.h"

#define WORKLOAD "chained_spawn"
#define DEPTH 1000000u

struct chained_spawn {
  bench_latch_t latch; /* tasks of the chain that have run */
  uint64_t elapsed_ns; /* first spawn to last completion */
};

static void *link_task(void *arg) {
  struct chained_spawn *st = arg;
  if (bench_latch_arrive(&st->latch, WORKLOAD) < DEPTH) {
    int rc = weft_spawn(link_task, st, NULL);
    if (rc != 0)
      bench_die(WORKLOAD, "weft_spawn (next link)", rc);
  }
  return NULL;
}

static void *chain_main(void *arg) {
  struct chained_spawn *st = arg;
  uint64_t t0 = bench_now_ns();
  int rc = weft_spawn(link_task, st, NULL);
  if (rc != 0) {
    bench_fail(WORKLOAD, "weft_spawn: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  rc = bench_latch_wait(&st->latch);
  if (rc != 0) {
    bench_fail(WORKLOAD, "waiting for completion: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  st->elapsed_ns = bench_now_ns() - t0;
  return NULL;
}

int bench_chained_spawn(unsigned workers) {
  struct chained_spawn st = {0};
  int rc = bench_latch_init(&st.latch, DEPTH);
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  rc = bench_run(WORKLOAD, workers, chain_main, &st);
  size_t depth = atomic_load(&st.latch.count);
  bench_latch_destroy(&st.latch);
  if (rc != 0)
    return rc;
  if (depth != DEPTH)
    return bench_fail(WORKLOAD, "chain depth %zu, expected %u", depth, DEPTH);
  bench_result(WORKLOAD, workers, "ns_per_spawn=%.1f depth=%u",
               (double)st.elapsed_ns / DEPTH, DEPTH);
  return 0;
}
