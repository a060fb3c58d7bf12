/*
 * timers: 100,000 tasks each sleep 1 + (x >> 33) % 100 ms, x an LCG
 * (x = x * 6364136223846793005 + 1442695040888963407, seed 42, stepped once
 * per task before spawning it); wait for all. Metrics: wall_ms from the first
 * spawn to the last completion, peak_rss_kb (VmHWM of the whole run), and
 * faults_per_task: the process's page faults over the same interval per
 * task (one fresh stack page per sleeping task bounds it), and spawn_ms,
 * the part of wall_ms spent in the spawning loop (as Go's and Tokio's
 * peers report it).
 *
 * The sleep is passed as the task's argument (an integer in a pointer), and
 * the state reaches the tasks through the latch pointer stored in a static:
 * 100,000 per-task records would add to the peak RSS being measured.
 */
#include "bench.h"

#define WORKLOAD "timers"
#define TASKS 100000u

struct timers {
  bench_latch_t latch; /* counts tasks whose sleep has ended */
  uint64_t elapsed_ns; /* first spawn to last completion */
  long faults;         /* page faults over the same interval */
  uint64_t spawn_ns;   /* first spawn to the last spawn's return */
};

/* The running workload's state; one runtime at a time in this program. */
static struct timers *timers_state;

static void *sleeper(void *arg) {
  int rc = weft_sleep((uint64_t)(uintptr_t)arg);
  if (rc != 0)
    bench_die(WORKLOAD, "weft_sleep", rc);
  bench_latch_arrive(&timers_state->latch, WORKLOAD);
  return NULL;
}

static void *timers_main(void *arg) {
  struct timers *st = arg;
  uint64_t x = 42;
  long f0 = bench_minflt();
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < TASKS; i++) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    uintptr_t ms = 1 + (uintptr_t)((x >> 33) % 100);
    int rc = weft_spawn(sleeper, (void *)ms, NULL);
    if (rc != 0) {
      bench_fail(WORKLOAD, "weft_spawn #%u: %s", i, weft_strerror(rc));
      return weft_task_fail(rc);
    }
  }
  st->spawn_ns = bench_now_ns() - t0;
  int rc = bench_latch_wait(&st->latch);
  if (rc != 0) {
    bench_fail(WORKLOAD, "waiting for completion: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  st->elapsed_ns = bench_now_ns() - t0;
  st->faults = bench_minflt() - f0;
  return NULL;
}

int bench_timers(unsigned workers) {
  struct timers st = {0};
  int rc = bench_latch_init(&st.latch, TASKS);
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  timers_state = &st;
  rc = bench_run(WORKLOAD, workers, timers_main, &st);
  timers_state = NULL;
  size_t done = atomic_load(&st.latch.count);
  bench_latch_destroy(&st.latch);
  if (rc != 0)
    return rc;
  if (done != TASKS)
    return bench_fail(WORKLOAD, "%zu tasks finished, expected %u", done, TASKS);
  long hwm = bench_status_kb("VmHWM");
  if (hwm < 0)
    return bench_fail(WORKLOAD, "cannot read VmHWM from /proc/self/status");
  bench_result(WORKLOAD, workers,
               "wall_ms=%.1f spawn_ms=%.1f peak_rss_kb=%ld tasks=%u "
               "faults_per_task=%.3f",
               (double)st.elapsed_ns / 1e6, (double)st.spawn_ns / 1e6, hwm,
               TASKS, (double)st.faults / TASKS);
  return 0;
}
