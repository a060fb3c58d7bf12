/*
 * stress_cancel: cancellation storms racing wake-ups.
 *
 * Victims: getters blocked on 4 queues (unbounded and bounded), putters
 * feeding them, sleepers sleeping 0-3 ms in a loop, and waiters running
 * wait_for() on short-lived children with short timeouts. Cancellers cancel
 * random victims at random moments all along. Invariants:
 *
 *  1. Every task finishes.
 *  2. Every item whose put returned 0 is received exactly once (by a getter,
 *     or found in its queue at the end); an item whose put returned
 *     WEFT_ECANCELED is never received.
 *  3. Every status is 0 or WEFT_ECANCELED, and WEFT_ECANCELED whenever the
 *     task ended with a cancellation request it had not withdrawn.
 *  4. Delivery is one-shot: the WEFT_ECANCELED results seen by the victims
 *     never outnumber the requests that weft_task_cancel() accepted.
 *  5. After wait_for() returns, whatever it returned, the child is done.
 */
#include "harness.h"

#define N_QUEUES 4
#define N_GETTERS 16
#define N_PUTTERS 8
#define ITEMS_PER_PUTTER HARNESS_SIZE(3000, 1500, 3000)
#define N_SLEEPERS 16
#define SLEEPER_ROUNDS HARNESS_SIZE(400, 200, 400)
#define N_WAITERS 8
#define WAITER_ROUNDS HARNESS_SIZE(300, 150, 300)
#define N_CANCELLERS 4
#define N_VICTIMS (N_GETTERS + N_PUTTERS + N_SLEEPERS + N_WAITERS)
#define N_ITEMS (N_PUTTERS * ITEMS_PER_PUTTER)

typedef struct storm {
  weft_queue_t *q[N_QUEUES];
  weft_task_t *victims[N_VICTIMS];
  int final_cancelling[N_VICTIMS]; /* cancelling() as each victim ended */
  atomic_int received[N_ITEMS];    /* times each item was received */
  unsigned char put_ok[N_ITEMS];   /* written by the item's putter only */
  atomic_int stop_cancellers;
  atomic_int stop_getters;
  atomic_long requests;  /* weft_task_cancel() returned 1 */
  atomic_long delivered; /* victims saw WEFT_ECANCELED */
  atomic_long got;       /* items received by getters */
  atomic_long timeouts;  /* wait_for timed out */
  atomic_long in_time;   /* wait_for returned the child's result */
} storm_t;

static storm_t S;

typedef struct victim_arg {
  int id;        /* index in S.victims */
  uint64_t seed;
} victim_arg_t;

static victim_arg_t vargs[N_VICTIMS];

static void delivered(void) { atomic_fetch_add(&S.delivered, 1); }

static void receive(void *item) {
  uintptr_t id = (uintptr_t)item - 1;

  CHECK(id < N_ITEMS);
  if (id < N_ITEMS)
    CHECK_EQ(atomic_fetch_add(&S.received[id], 1), 0);
}

/* ---- victims ----------------------------------------------------------------- */

static void *getter(void *arg) {
  victim_arg_t *a = arg;
  weft_queue_t *q = S.q[a->id % N_QUEUES];
  void *item;
  int rc;

  while (!atomic_load(&S.stop_getters)) {
    rc = weft_queue_get(q, &item);
    if (rc == 0) {
      receive(item);
      atomic_fetch_add(&S.got, 1);
    } else {
      CHECK_RC(rc, WEFT_ECANCELED);
      delivered();
      CHECK(weft_task_uncancel() >= 0);
    }
  }
  S.final_cancelling[a->id] = weft_task_cancelling();
  return NULL;
}

static void *putter(void *arg) {
  victim_arg_t *a = arg;
  int p = a->id - N_GETTERS;
  uint64_t rng = a->seed;
  int k, rc;

  for (k = 0; k < ITEMS_PER_PUTTER; k++) {
    int id = p * ITEMS_PER_PUTTER + k;
    weft_queue_t *q = S.q[harness_rand(&rng) % N_QUEUES];

    rc = weft_queue_put(q, (void *)(uintptr_t)(id + 1));
    if (rc == 0) {
      S.put_ok[id] = 1;
    } else {
      CHECK_RC(rc, WEFT_ECANCELED);
      delivered();
    }
    if (harness_rand(&rng) % 16 == 0) {
      rc = weft_sleep(harness_rand_range(&rng, 0, 1));
      if (rc != 0) {
        CHECK_RC(rc, WEFT_ECANCELED);
        delivered();
      }
    }
  }
  S.final_cancelling[a->id] = weft_task_cancelling();
  return NULL;
}

static void *sleeper(void *arg) {
  victim_arg_t *a = arg;
  uint64_t rng = a->seed;
  int r, rc;

  for (r = 0; r < SLEEPER_ROUNDS; r++) {
    rc = weft_sleep(harness_rand_range(&rng, 0, 3));
    if (rc != 0) {
      CHECK_RC(rc, WEFT_ECANCELED);
      delivered();
      if (harness_rand(&rng) % 2)
        CHECK(weft_task_uncancel() >= 0);
    }
  }
  S.final_cancelling[a->id] = weft_task_cancelling();
  return NULL;
}

static void *short_child(void *arg) {
  uint64_t ms = (uint64_t)(uintptr_t)arg;
  int rc = weft_sleep(ms);

  /* Only wait_for cancels a child. */
  if (rc != 0)
    CHECK_RC(rc, WEFT_ECANCELED);
  return arg;
}

static void *waiter(void *arg) {
  victim_arg_t *a = arg;
  uint64_t rng = a->seed;
  int r, rc;

  for (r = 0; r < WAITER_ROUNDS; r++) {
    uint64_t child_ms = harness_rand_range(&rng, 0, 3);
    uint64_t timeout = harness_rand_range(&rng, 0, 3);
    weft_task_t *c;
    void *res = NULL;

    rc = weft_spawn(short_child, (void *)(uintptr_t)child_ms, &c);
    CHECK_OK(rc);
    if (rc != 0)
      continue;
    rc = weft_task_wait_for(c, timeout, &res);
    CHECK_EQ(weft_task_done(c), 1);
    if (rc == 0) {
      CHECK(res == (void *)(uintptr_t)child_ms);
      atomic_fetch_add(&S.in_time, 1);
    } else if (rc == WEFT_ETIMEDOUT) {
      atomic_fetch_add(&S.timeouts, 1);
    } else {
      CHECK_RC(rc, WEFT_ECANCELED);
      delivered();
      if (harness_rand(&rng) % 2)
        CHECK(weft_task_uncancel() >= 0);
    }
    weft_task_unref(c);
  }
  S.final_cancelling[a->id] = weft_task_cancelling();
  return NULL;
}

/* ---- cancellers ----------------------------------------------------------------- */

static void *canceller(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  long mine = 0;
  int rc;

  while (!atomic_load(&S.stop_cancellers)) {
    weft_task_t *v = S.victims[harness_rand(&rng) % N_VICTIMS];

    rc = weft_task_cancel(v);
    CHECK(rc == 0 || rc == 1);
    if (rc == 1)
      mine++;
    switch (harness_rand(&rng) % 4) {
    case 0:
      CHECK_OK(weft_sleep(1));
      break;
    case 1:
      harness_spin_us((double)harness_rand_range(&rng, 0, 200));
      break;
    default:
      CHECK_OK(weft_yield());
      break;
    }
  }
  atomic_fetch_add(&S.requests, mine);
  return NULL;
}

/* ---- main ------------------------------------------------------------------------- */

static int await_victim(int i) {
  int st = weft_task_await(S.victims[i], NULL);

  CHECK(st == 0 || st == WEFT_ECANCELED);
  if (S.final_cancelling[i] > 0)
    CHECK_RC(st, WEFT_ECANCELED);
  return st;
}

static void *storm_main(void *arg) {
  weft_task_t *c[N_CANCELLERS];
  int i, n = 0, rc;

  (void)arg;
  for (i = 0; i < N_QUEUES; i++)
    CHECK_OK(weft_queue_new(i == 0 ? 0 : (size_t)1 << i, &S.q[i]));
  for (i = 0; i < N_VICTIMS; i++) {
    weft_task_fn fn = i < N_GETTERS                          ? getter
                      : i < N_GETTERS + N_PUTTERS              ? putter
                      : i < N_GETTERS + N_PUTTERS + N_SLEEPERS ? sleeper
                                                               : waiter;

    vargs[i].id = i;
    vargs[i].seed = 0x5eed0000u + (uint64_t)i;
    CHECK_OK(weft_spawn(fn, &vargs[i], &S.victims[i]));
  }
  for (i = 0; i < N_CANCELLERS; i++)
    CHECK_OK(weft_spawn(canceller, (void *)(uintptr_t)(i + 1), &c[i]));

  /* Putters, sleepers and waiters end by themselves. */
  for (i = N_GETTERS; i < N_VICTIMS; i++)
    await_victim(i);
  atomic_store(&S.stop_cancellers, 1);
  CHECK_OK(weft_gather(c, N_CANCELLERS, NULL));

  /* Getters end once told to stop and woken by one more cancellation. */
  atomic_store(&S.stop_getters, 1);
  for (i = 0; i < N_GETTERS; i++) {
    rc = weft_task_cancel(S.victims[i]);
    CHECK(rc == 0 || rc == 1);
    n += rc == 1;
  }
  atomic_fetch_add(&S.requests, n);
  for (i = 0; i < N_GETTERS; i++)
    await_victim(i);
  for (i = 0; i < N_VICTIMS; i++)
    weft_task_unref(S.victims[i]);
  for (i = 0; i < N_CANCELLERS; i++)
    weft_task_unref(c[i]);
  return NULL;
}

static void run_storm(unsigned workers) {
  long put = 0, drained = 0;
  void *item;
  int i;

  memset(&S, 0, sizeof S);
  run_in_weft(storm_main, NULL, workers);

  /* Whatever is left in the queues was put and never received. */
  for (i = 0; i < N_QUEUES; i++) {
    while (weft_queue_try_get(S.q[i], &item) == 0) {
      uintptr_t id = (uintptr_t)item - 1;

      assert_true(id < N_ITEMS);
      assert_int_equal(atomic_fetch_add(&S.received[id], 1), 0);
      drained++;
    }
    assert_int_equal(weft_queue_free(S.q[i]), 0);
  }
  for (i = 0; i < N_ITEMS; i++) {
    if (atomic_load(&S.received[i]) != S.put_ok[i])
      fail_msg("item %d: put %s, received %d times", i,
               S.put_ok[i] ? "ok" : "cancelled", atomic_load(&S.received[i]));
    put += S.put_ok[i];
  }
  assert_int_equal(atomic_load(&S.got) + drained, put);
  assert_true(atomic_load(&S.delivered) <= atomic_load(&S.requests));
  print_message("%u workers: %ld cancel requests, %ld delivered; %ld of %d "
                "items put, %ld left queued; wait_for: %ld in time, %ld "
                "timed out\n",
                workers, atomic_load(&S.requests), atomic_load(&S.delivered),
                put, N_ITEMS, drained, atomic_load(&S.in_time),
                atomic_load(&S.timeouts));
  /* The storm did happen. */
  assert_true(atomic_load(&S.requests) > 0);
  assert_true(atomic_load(&S.delivered) > 0);
  assert_true(put > 0);
}

static void test_storm_2_workers(void **state) {
  (void)state;
  run_storm(2);
}

static void test_storm_4_workers(void **state) {
  (void)state;
  run_storm(4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_storm_2_workers),
      cmocka_unit_test(test_storm_4_workers),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
