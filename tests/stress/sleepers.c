/*
 * stress_sleepers: 100,000 tasks sleeping at the same time, each for 50-150
 * ms at a time, on 2 workers: every one completes, the count is exact, and
 * no sleep ends early.
 *
 * All are alive at once by construction: main waits until every task has
 * started, then raises a flag; a task finishes only after a sleep that began
 * once it has seen the flag, so none can finish before the last one started.
 */
#include "harness.h"

/* ThreadSanitizer gives every live fiber a thread slot (8k at most). */
#define N_SLEEPERS HARNESS_SIZE(100000, 4000, 100000)
#define WORKERS 2

typedef struct sleepers {
  weft_queue_t *done;   /* the last task puts one item */
  atomic_int all_started; /* main saw every task start */
  atomic_long started;
  atomic_long alive;
  atomic_long peak_alive;
  atomic_long finished;
  atomic_long sleeps;
  atomic_long early; /* sleeps that ended before their time */
} sleepers_t;

static sleepers_t sl;

static void *sleeper(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  long alive, peak, n;
  int rc, last = 0;

  atomic_fetch_add(&sl.started, 1);
  alive = atomic_fetch_add(&sl.alive, 1) + 1;
  peak = atomic_load(&sl.peak_alive);
  while (alive > peak &&
         !atomic_compare_exchange_weak(&sl.peak_alive, &peak, alive)) {
  }
  while (!last) {
    uint64_t ms = harness_rand_range(&rng, 50, 150);
    uint64_t t0;

    last = atomic_load(&sl.all_started);
    t0 = weft_time_ms();
    rc = weft_sleep(ms);
    CHECK_OK(rc);
    if (weft_time_ms() - t0 < ms)
      atomic_fetch_add(&sl.early, 1);
    atomic_fetch_add(&sl.sleeps, 1);
  }
  atomic_fetch_sub(&sl.alive, 1);
  n = atomic_fetch_add(&sl.finished, 1) + 1;
  if (n == N_SLEEPERS)
    CHECK_OK(weft_queue_put(sl.done, &sl));
  return NULL;
}

static void *sleepers_main(void *arg) {
  void *item = NULL;
  long i;

  (void)arg;
  CHECK_OK(weft_queue_new(0, &sl.done));
  for (i = 0; i < N_SLEEPERS; i++)
    CHECK_OK(weft_spawn(sleeper, (void *)(uintptr_t)(i * 7919 + 1), NULL));
  HARNESS_WAIT_UNTIL(atomic_load(&sl.started) >= N_SLEEPERS,
                     60000.0 * HARNESS_SLOWDOWN);
  CHECK_EQ(atomic_load(&sl.started), N_SLEEPERS);
  CHECK_EQ(atomic_load(&sl.finished), 0);
  atomic_store(&sl.all_started, 1);
  CHECK_OK(weft_queue_get(sl.done, &item));
  CHECK(item == &sl);
  return NULL;
}

static void test_100k_sleepers(void **state) {
  double t0, ms;

  (void)state;
  memset(&sl, 0, sizeof sl);
  t0 = harness_now_ms();
  run_in_weft(sleepers_main, NULL, WORKERS);
  ms = harness_now_ms() - t0;
  print_message("%d sleepers: %ld sleeps, peak %ld alive, %.0f ms\n",
                N_SLEEPERS, atomic_load(&sl.sleeps),
                atomic_load(&sl.peak_alive), ms);
  assert_int_equal(atomic_load(&sl.finished), N_SLEEPERS);
  assert_int_equal(atomic_load(&sl.peak_alive), N_SLEEPERS);
  assert_int_equal(atomic_load(&sl.alive), 0);
  assert_true(atomic_load(&sl.sleeps) >= (long)N_SLEEPERS);
  assert_int_equal(atomic_load(&sl.early), 0);
  assert_int_equal(weft_queue_free(sl.done), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_100k_sleepers),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
