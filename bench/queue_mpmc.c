/*
 * queue_mpmc: 4 producers put 2,500,000 items each (10,000,000 in all)
 * through one weft_queue_t of maxsize 1,024, which 4 consumers drain; wait
 * for all. The consumers stop at the queue's shutdown (weft_queue_shutdown,
 * after the producers finished: they drain what is left, then get
 * WEFT_EQUEUE_SHUTDOWN). The count and the sum of the items received must match
 * what was put. Metric: ns_per_item, the time from the first spawn to the
 * last completion divided by 10,000,000.
 */
#include "bench.h"

#define WORKLOAD "queue_mpmc"
#define PRODUCERS 4u
#define CONSUMERS 4u
#define ITEMS 10000000u
#define PER_PRODUCER (ITEMS / PRODUCERS)
#define MAXSIZE 1024u

struct queue_mpmc {
  weft_queue_t *q;
  atomic_uint_fast64_t received; /* items taken by the consumers */
  atomic_uint_fast64_t sum;      /* their sum */
  uint64_t elapsed_ns;           /* first spawn to last completion */
};

struct producer_arg {
  struct queue_mpmc *st;
  uintptr_t base; /* first item - 1 */
};

static void *producer(void *arg) {
  struct producer_arg *a = arg;
  for (uintptr_t i = 1; i <= PER_PRODUCER; i++) {
    int rc = weft_queue_put(a->st->q, (void *)(a->base + i));
    if (rc != 0) {
      bench_fail(WORKLOAD, "weft_queue_put: %s", weft_strerror(rc));
      return weft_task_fail(rc);
    }
  }
  return NULL;
}

static void *consumer(void *arg) {
  struct queue_mpmc *st = arg;
  uint64_t n = 0, sum = 0;
  void *item;
  int rc;
  while ((rc = weft_queue_get(st->q, &item)) == 0) {
    n++;
    sum += (uintptr_t)item;
  }
  /* relaxed: read after weft_gather(), which orders the tasks' ends. */
  atomic_fetch_add_explicit(&st->received, n, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->sum, sum, memory_order_relaxed);
  if (rc != WEFT_EQUEUE_SHUTDOWN) {
    bench_fail(WORKLOAD, "weft_queue_get: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  return NULL;
}

static void *queue_mpmc_main(void *arg) {
  struct queue_mpmc *st = arg;
  static struct producer_arg pa[PRODUCERS];
  weft_task_t *p[PRODUCERS] = {NULL}, *c[CONSUMERS] = {NULL};
  int rc = 0;
  uint64_t t0 = bench_now_ns();
  for (unsigned i = 0; i < CONSUMERS && rc == 0; i++)
    rc = weft_spawn(consumer, st, &c[i]);
  for (unsigned i = 0; i < PRODUCERS && rc == 0; i++) {
    pa[i].st = st;
    pa[i].base = (uintptr_t)i * PER_PRODUCER;
    rc = weft_spawn(producer, &pa[i], &p[i]);
  }
  if (rc != 0) {
    /* Let the tasks that exist end, then report. */
    weft_queue_shutdown(st->q, 1);
    bench_fail(WORKLOAD, "weft_spawn: %s", weft_strerror(rc));
  } else {
    rc = weft_gather(p, PRODUCERS, NULL);
    weft_queue_shutdown(st->q, 0);
    int crc = weft_gather(c, CONSUMERS, NULL);
    st->elapsed_ns = bench_now_ns() - t0;
    if (rc == 0)
      rc = crc;
    if (rc != 0)
      bench_fail(WORKLOAD, "weft_gather: %s", weft_strerror(rc));
  }
  for (unsigned i = 0; i < PRODUCERS; i++)
    weft_task_unref(p[i]);
  for (unsigned i = 0; i < CONSUMERS; i++)
    weft_task_unref(c[i]);
  return rc != 0 ? weft_task_fail(rc) : NULL;
}

int bench_queue_mpmc(unsigned workers) {
  static struct queue_mpmc st;
  int rc = weft_queue_new(MAXSIZE, &st.q);
  if (rc != 0)
    return bench_fail(WORKLOAD, "weft_queue_new: %s", weft_strerror(rc));
  atomic_init(&st.received, 0);
  atomic_init(&st.sum, 0);
  rc = bench_run(WORKLOAD, workers, queue_mpmc_main, &st);
  weft_queue_free(st.q);
  if (rc != 0)
    return rc;
  uint64_t n = atomic_load(&st.received), sum = atomic_load(&st.sum);
  uint64_t want = (uint64_t)ITEMS * (ITEMS + 1) / 2;
  if (n != ITEMS || sum != want)
    return bench_fail(WORKLOAD, "received %llu items summing to %llu, "
                      "expected %u summing to %llu",
                      (unsigned long long)n, (unsigned long long)sum, ITEMS,
                      (unsigned long long)want);
  bench_result(WORKLOAD, workers, "ns_per_item=%.1f items=%u",
               (double)st.elapsed_ns / ITEMS, ITEMS);
  return 0;
}
