/*
 * idle_memory: measure VmRSS; spawn 100,000 tasks that each block on one
 * shared event; once all are blocked, wait 200 ms and measure VmRSS again;
 * release them and wait for all. Metric: bytes_per_task =
 * (rss_parked - rss_before) / tasks, and faults_per_task: the process's
 * page faults over the same interval per task.
 *
 * The tasks block in weft_queue_get() on one unbounded queue (a parked
 * getter is exactly a task blocked on an event), a stand-in written before
 * weft had weft_event_t and kept so that figures stay comparable
 * (bench/README.md), and are released by putting one item per task. A
 * task counts itself as blocked just before its get; the main task polls
 * that count with weft_sleep(1), and the 200 ms wait that follows covers
 * the few instructions between the count and the park.
 */
#include "bench.h"

#define WORKLOAD "idle_memory"
#define TASKS 100000u

struct idle_memory {
  weft_queue_t *event;   /* the shared "event" the tasks block on */
  atomic_size_t blocked; /* tasks about to block (or blocked) on event */
  bench_latch_t latch;   /* counts released tasks that have finished */
  long rss_before_kb;    /* VmRSS before the first spawn */
  long rss_parked_kb;    /* VmRSS with every task parked */
  long faults;           /* page faults between the two readings */
};

static void *idle_task(void *arg) {
  struct idle_memory *st = arg;
  void *item;
  atomic_fetch_add_explicit(&st->blocked, 1, memory_order_relaxed);
  int rc = weft_queue_get(st->event, &item);
  if (rc != 0)
    bench_die(WORKLOAD, "weft_queue_get (blocking on the event)", rc);
  bench_latch_arrive(&st->latch, WORKLOAD);
  return NULL;
}

static void *idle_main(void *arg) {
  struct idle_memory *st = arg;
  int rc;
  st->rss_before_kb = bench_status_kb("VmRSS");
  long f0 = bench_minflt();
  for (unsigned i = 0; i < TASKS; i++) {
    rc = weft_spawn(idle_task, st, NULL);
    if (rc != 0) {
      bench_fail(WORKLOAD, "weft_spawn #%u: %s", i, weft_strerror(rc));
      return weft_task_fail(rc);
    }
  }
  while (atomic_load_explicit(&st->blocked, memory_order_relaxed) < TASKS) {
    rc = weft_sleep(1);
    if (rc != 0)
      goto fail_sleep;
  }
  rc = weft_sleep(200);
  if (rc != 0)
    goto fail_sleep;
  st->rss_parked_kb = bench_status_kb("VmRSS");
  st->faults = bench_minflt() - f0;

  for (unsigned i = 0; i < TASKS; i++) {
    rc = weft_queue_try_put(st->event, st);
    if (rc != 0) {
      bench_fail(WORKLOAD, "releasing task #%u: weft_queue_try_put: %s", i,
                 weft_strerror(rc));
      return weft_task_fail(rc);
    }
  }
  rc = bench_latch_wait(&st->latch);
  if (rc != 0) {
    bench_fail(WORKLOAD, "waiting for completion: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  return NULL;

fail_sleep:
  bench_fail(WORKLOAD, "weft_sleep: %s", weft_strerror(rc));
  return weft_task_fail(rc);
}

int bench_idle_memory(unsigned workers) {
  struct idle_memory st = {.rss_before_kb = -1, .rss_parked_kb = -1};
  atomic_init(&st.blocked, 0);
  int rc = weft_queue_new(0, &st.event);
  if (rc == 0) {
    rc = bench_latch_init(&st.latch, TASKS);
    if (rc != 0)
      weft_queue_free(st.event);
  }
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  rc = bench_run(WORKLOAD, workers, idle_main, &st);
  size_t done = atomic_load(&st.latch.count);
  bench_latch_destroy(&st.latch);
  weft_queue_free(st.event);
  if (rc != 0)
    return rc;
  if (done != TASKS)
    return bench_fail(WORKLOAD, "%zu tasks finished, expected %u", done, TASKS);
  if (st.rss_before_kb < 0 || st.rss_parked_kb < 0)
    return bench_fail(WORKLOAD, "cannot read VmRSS from /proc/self/status");
  double bytes_per_task =
      (double)(st.rss_parked_kb - st.rss_before_kb) * 1024.0 / TASKS;
  bench_result(WORKLOAD, workers,
               "bytes_per_task=%.0f rss_before_kb=%ld rss_parked_kb=%ld "
               "tasks=%u faults_per_task=%.3f",
               bytes_per_task, st.rss_before_kb, st.rss_parked_kb, TASKS,
               (double)st.faults / TASKS);
  return 0;
}
