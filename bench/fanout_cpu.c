/*
 * fanout_cpu: one task spawns 64 tasks each computing spin(i, 12,000,000),
 * xor-ing the results under a lock; wait for all. Metrics: wall_ms from the
 * first spawn to the last completion, sink = xor % 1000 (the same on every
 * runtime, a check that the work was done).
 *
 * The lock is a pthread_mutex_t, written before weft had weft_lock_t and
 * kept so that figures stay comparable (bench/README.md). That is safe here
 * only because it is held for the xor alone, never across a suspension point
 * (a task holding a thread lock while parked could deadlock its worker).
 */
#include "bench.h"

#include <pthread.h>

#define WORKLOAD "fanout_cpu"
#define TASKS 64u
#define ITERS 12000000u

struct fanout_cpu {
  pthread_mutex_t lock; /* guards xor */
  uint64_t xor;         /* xor of every task's spin() */
  uint64_t elapsed_ns;  /* first spawn to last completion */
};

/* One task's argument. */
struct fanout_arg {
  struct fanout_cpu *st; /* the shared state */
  uint64_t index;        /* the task's index, spin()'s seed */
};

/* The spec's CPU kernel: xorshift64 from seed * 2654435761 + 1. */
static uint64_t spin(uint64_t seed, uint64_t iters) {
  uint64_t x = seed * 2654435761u + 1;
  for (uint64_t i = 0; i < iters; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

static void *spin_task(void *arg) {
  struct fanout_arg *a = arg;
  uint64_t x = spin(a->index, ITERS);
  pthread_mutex_lock(&a->st->lock);
  a->st->xor ^= x;
  pthread_mutex_unlock(&a->st->lock);
  return NULL;
}

static void *fanout_main(void *arg) {
  struct fanout_cpu *st = arg;
  struct fanout_arg args[TASKS];
  weft_task_t *tasks[TASKS];
  unsigned spawned = 0;
  int rc = 0;
  uint64_t t0 = bench_now_ns();
  for (; spawned < TASKS; spawned++) {
    args[spawned].st = st;
    args[spawned].index = spawned;
    rc = weft_spawn(spin_task, &args[spawned], &tasks[spawned]);
    if (rc != 0) {
      bench_fail(WORKLOAD, "weft_spawn #%u: %s", spawned, weft_strerror(rc));
      break;
    }
  }
  if (rc == 0) {
    rc = weft_gather(tasks, TASKS, NULL);
    st->elapsed_ns = bench_now_ns() - t0;
    if (rc != 0)
      bench_fail(WORKLOAD, "weft_gather: %s", weft_strerror(rc));
  }
  if (rc != 0) {
    /* args lives on this stack: every spawned task must end before it goes,
     * and weft_gather() returns early on an error. */
    for (unsigned i = 0; i < spawned; i++)
      weft_task_await(tasks[i], NULL);
  }
  for (unsigned i = 0; i < spawned; i++)
    weft_task_unref(tasks[i]);
  return rc != 0 ? weft_task_fail(rc) : NULL;
}

int bench_fanout_cpu(unsigned workers) {
  struct fanout_cpu st = {.xor = 0};
  int rc = pthread_mutex_init(&st.lock, NULL);
  if (rc != 0)
    return bench_fail(WORKLOAD, "pthread_mutex_init failed (%d)", rc);
  rc = bench_run(WORKLOAD, workers, fanout_main, &st);
  pthread_mutex_destroy(&st.lock);
  if (rc != 0)
    return rc;
  bench_result(WORKLOAD, workers, "wall_ms=%.1f tasks=%u iters=%u sink=%u",
               (double)st.elapsed_ns / 1e6, TASKS, ITERS,
               (unsigned)(st.xor % 1000));
  return 0;
}
