/*
 * ping_pong: two tasks pass an integer back and forth over two queues of
 * capacity 1, 1,000,000 round trips: the pinger sends a, the ponger answers
 * b = a + 1, which the pinger sends back. The final value must be 1,000,000.
 * Metric: ns_per_roundtrip, from the first spawn to the last completion.
 *
 * The integers travel as (void *)(uintptr_t) values; the first one is 0,
 * i.e. a NULL item, which a queue of pointers must carry like any other.
 */
#include "bench.h"

#define WORKLOAD "ping_pong"
#define ROUNDTRIPS 1000000u

struct ping_pong {
  weft_queue_t *to_pong; /* pinger -> ponger, capacity 1 */
  weft_queue_t *to_ping; /* ponger -> pinger, capacity 1 */
  uintptr_t final;       /* the last value the pinger received */
  uint64_t elapsed_ns;   /* first spawn to last completion */
};

static void *pinger(void *arg) {
  struct ping_pong *st = arg;
  uintptr_t a = 0;
  for (unsigned i = 0; i < ROUNDTRIPS; i++) {
    void *item;
    int rc = weft_queue_put(st->to_pong, (void *)a);
    if (rc == 0)
      rc = weft_queue_get(st->to_ping, &item);
    if (rc != 0) {
      bench_fail(WORKLOAD, "pinger, round trip %u: %s", i, weft_strerror(rc));
      return weft_task_fail(rc);
    }
    a = (uintptr_t)item;
  }
  st->final = a;
  return NULL;
}

static void *ponger(void *arg) {
  struct ping_pong *st = arg;
  for (unsigned i = 0; i < ROUNDTRIPS; i++) {
    void *item;
    int rc = weft_queue_get(st->to_pong, &item);
    if (rc == 0)
      rc = weft_queue_put(st->to_ping, (void *)((uintptr_t)item + 1));
    if (rc != 0) {
      bench_fail(WORKLOAD, "ponger, round trip %u: %s", i, weft_strerror(rc));
      return weft_task_fail(rc);
    }
  }
  return NULL;
}

static void *ping_pong_main(void *arg) {
  struct ping_pong *st = arg;
  weft_task_t *tasks[2] = {NULL, NULL};
  uint64_t t0 = bench_now_ns();
  int rc = weft_spawn(pinger, st, &tasks[0]);
  if (rc == 0)
    rc = weft_spawn(ponger, st, &tasks[1]);
  if (rc != 0) {
    bench_fail(WORKLOAD, "weft_spawn: %s", weft_strerror(rc));
  } else {
    rc = weft_gather(tasks, 2, NULL);
    st->elapsed_ns = bench_now_ns() - t0;
    if (rc != 0)
      bench_fail(WORKLOAD, "weft_gather: %s", weft_strerror(rc));
  }
  weft_task_unref(tasks[0]);
  weft_task_unref(tasks[1]);
  return rc != 0 ? weft_task_fail(rc) : NULL;
}

int bench_ping_pong(unsigned workers) {
  struct ping_pong st = {0};
  int rc = weft_queue_new(1, &st.to_pong);
  if (rc == 0)
    rc = weft_queue_new(1, &st.to_ping);
  if (rc != 0) {
    weft_queue_free(st.to_pong);
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  }
  rc = bench_run(WORKLOAD, workers, ping_pong_main, &st);
  weft_queue_free(st.to_pong);
  weft_queue_free(st.to_ping);
  if (rc != 0)
    return rc;
  if (st.final != ROUNDTRIPS)
    return bench_fail(WORKLOAD, "final value %lu, expected %u",
                      (unsigned long)st.final, ROUNDTRIPS);
  bench_result(WORKLOAD, workers, "ns_per_roundtrip=%.1f roundtrips=%u",
               (double)st.elapsed_ns / ROUNDTRIPS, ROUNDTRIPS);
  return 0;
}
