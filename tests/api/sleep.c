/*
 * api_sleep: weft_sleep() lasts at least what was asked and not wildly more,
 * sleeps run concurrently, weft_sleep(0) and weft_yield() return 0 and let
 * the other ready tasks run, and weft_time_ms() is monotonic.
 */
#include "harness.h"

/* "Not wildly more": an upper bound that catches a lost wake-up and holds
 * under TSan on a loaded 2-core machine (where a worker thread can wait for
 * a core for hundreds of ms). How late weft really is belongs to bench/ and
 * to unit_timer's lateness test on the timer wheel itself. */
#define LATE_MS HARNESS_PROMPT_MS

static void *durations_main(void *arg) {
  static const uint64_t ms[] = {1, 5, 10, 30, 100, 250};
  size_t i;

  (void)arg;
  for (i = 0; i < HARNESS_COUNT(ms); i++) {
    uint64_t w0 = weft_time_ms();
    double t0 = harness_now_ms(), elapsed;
    uint64_t welapsed;

    CHECK_OK(weft_sleep(ms[i]));
    elapsed = harness_now_ms() - t0;
    welapsed = weft_time_ms() - w0;
    /* At least ms by the runtime's own clock, and by the system's within
     * the millisecond resolution of that clock. */
    CHECK_LE(ms[i], welapsed);
    CHECK(elapsed >= (double)ms[i] - 1.0);
    CHECK(elapsed < (double)ms[i] + LATE_MS);
  }
  return NULL;
}

static void test_durations(void **state) {
  (void)state;
  run_in_weft(durations_main, NULL, 1);
  run_in_weft(durations_main, NULL, 2);
}

/* 200 tasks sleep at the same time: each counts itself in, then sleeps
 * 100 ms at a time until main, which waits until all 200 are in, says stop.
 * If a sleep blocked its worker, the first sleeper would never let the
 * others (or main) run. (A bound on the elapsed time, once "about 100 ms,
 * not 20 s", fails under TSan on a loaded machine, where spawning 200
 * fibers alone can take seconds.) */
#define N_CONCURRENT 200

static atomic_int overlap_in, overlap_stop;

static void *sleep_100(void *arg) {
  atomic_fetch_add(&overlap_in, 1);
  do
    CHECK_OK(weft_sleep(100));
  while (!atomic_load(&overlap_stop));
  return arg;
}

static void *concurrent_main(void *arg) {
  static weft_task_t *t[N_CONCURRENT];
  double t0 = harness_now_ms(), elapsed;
  size_t i;

  (void)arg;
  atomic_store(&overlap_in, 0);
  atomic_store(&overlap_stop, 0);
  for (i = 0; i < N_CONCURRENT; i++)
    CHECK_OK(weft_spawn(sleep_100, NULL, &t[i]));
  HARNESS_WAIT(atomic_load(&overlap_in) == N_CONCURRENT);
  atomic_store(&overlap_stop, 1);
  CHECK_OK(weft_gather(t, N_CONCURRENT, NULL));
  elapsed = harness_now_ms() - t0;
  CHECK(elapsed >= 99.0);
  for (i = 0; i < N_CONCURRENT; i++)
    weft_task_unref(t[i]);
  return NULL;
}

static void test_sleeps_overlap(void **state) {
  (void)state;
  run_in_weft(concurrent_main, NULL, 1);
  run_in_weft(concurrent_main, NULL, 4);
}

/* ---- sleep(0) and yield let the others run ------------------------------------- */

static void *set_flag(void *arg) {
  atomic_store((atomic_int *)arg, 1);
  return NULL;
}

static void *zero_sleep_main(void *arg) {
  atomic_int flag;
  weft_task_t *t;
  int round;

  (void)arg;
  for (round = 0; round < 2; round++) {
    atomic_init(&flag, 0);
    CHECK_OK(weft_spawn(set_flag, &flag, &t));
    /* One worker: the new task can only run while this one is suspended. */
    CHECK_EQ(atomic_load(&flag), 0);
    CHECK_OK(round == 0 ? weft_sleep(0) : weft_yield());
    CHECK_EQ(atomic_load(&flag), 1);
    CHECK_EQ(weft_task_done(t), 1);
    weft_task_unref(t);
  }
  return NULL;
}

static void test_zero_sleep_and_yield_let_others_run(void **state) {
  (void)state;
  run_in_weft(zero_sleep_main, NULL, 1);
}

/* Two tasks that yield in turns on one worker alternate strictly (which
 * one starts is up to the scheduler: outside deterministic mode a new task
 * may take the LIFO slot). */
typedef struct pingpong {
  atomic_int turn;  /* whose turn: 0 or 1, -1 before the first run */
  atomic_int bad;   /* a task found it was not its turn */
} pingpong_t;

#define PINGPONG_ROUNDS 1000

typedef struct pp_arg {
  pingpong_t *pp;
  int me;
} pp_arg_t;

static void *pingpong_task(void *arg) {
  pp_arg_t *a = arg;
  int i;

  for (i = 0; i < PINGPONG_ROUNDS; i++) {
    int turn = atomic_load(&a->pp->turn);

    if (turn != a->me && !(turn == -1 && i == 0))
      atomic_fetch_add(&a->pp->bad, 1);
    atomic_store(&a->pp->turn, 1 - a->me);
    CHECK_OK(i % 2 ? weft_yield() : weft_sleep(0));
  }
  return NULL;
}

static void *pingpong_main(void *arg) {
  pingpong_t pp;
  pp_arg_t a[2] = {{&pp, 0}, {&pp, 1}};
  weft_task_t *t[2];

  (void)arg;
  atomic_init(&pp.turn, -1);
  atomic_init(&pp.bad, 0);
  CHECK_OK(weft_spawn(pingpong_task, &a[0], &t[0]));
  CHECK_OK(weft_spawn(pingpong_task, &a[1], &t[1]));
  CHECK_OK(weft_gather(t, 2, NULL));
  CHECK_EQ(atomic_load(&pp.bad), 0);
  weft_task_unref(t[0]);
  weft_task_unref(t[1]);
  return NULL;
}

static void test_yield_alternates(void **state) {
  (void)state;
  run_in_weft(pingpong_main, NULL, 1);
}

/* Many tasks yielding in loops on several workers all finish. */
static void *yield_loop(void *arg) {
  int i;

  for (i = 0; i < 500; i++)
    CHECK_OK(weft_yield());
  return arg;
}

static void *yield_many_main(void *arg) {
  weft_task_t *t[32];
  void *res[32];
  size_t i;

  (void)arg;
  for (i = 0; i < 32; i++)
    CHECK_OK(weft_spawn(yield_loop, (void *)(uintptr_t)i, &t[i]));
  CHECK_OK(weft_gather(t, 32, res));
  for (i = 0; i < 32; i++) {
    CHECK(res[i] == (void *)(uintptr_t)i);
    weft_task_unref(t[i]);
  }
  return NULL;
}

static void test_yield_many(void **state) {
  (void)state;
  run_in_weft(yield_many_main, NULL, 3);
}

/* A task that yields in a loop does not starve a sleeper on its worker:
 * timers are polled even while tasks are always ready. */
typedef struct starve {
  atomic_int stop;
} starve_t;

static void *spin_yield_until_stop(void *arg) {
  starve_t *s = arg;

  while (!atomic_load(&s->stop))
    CHECK_OK(weft_yield());
  return NULL;
}

static void *starve_main(void *arg) {
  starve_t s;
  weft_task_t *t;
  double t0, elapsed;

  (void)arg;
  atomic_init(&s.stop, 0);
  CHECK_OK(weft_spawn(spin_yield_until_stop, &s, &t));
  t0 = harness_now_ms();
  CHECK_OK(weft_sleep(20));
  elapsed = harness_now_ms() - t0;
  CHECK(elapsed < 20.0 + LATE_MS);
  atomic_store(&s.stop, 1);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  return NULL;
}

static void test_yielding_task_does_not_starve_timers(void **state) {
  (void)state;
  run_in_weft(starve_main, NULL, 1);
}

/* ---- the clock ------------------------------------------------------------------ */

static void *clock_main(void *arg) {
  uint64_t prev = weft_time_ms(), now, start = prev;
  int i, bad = 0;

  (void)arg;
  CHECK(prev > 0);
  for (i = 0; i < 2000; i++) {
    now = weft_time_ms();
    if (now < prev)
      bad++;
    prev = now;
    if (i % 100 == 0)
      CHECK_OK(weft_sleep(1));
    else if (i % 10 == 0)
      CHECK_OK(weft_yield());
  }
  CHECK_EQ(bad, 0);
  CHECK(prev - start >= 20);
  start = weft_time_ms();
  CHECK_OK(weft_sleep(30));
  CHECK_LE(start + 30, weft_time_ms());
  return NULL;
}

static void test_clock_monotonic(void **state) {
  (void)state;
  run_in_weft(clock_main, NULL, 1);
  run_in_weft(clock_main, NULL, 3);
  assert_true(weft_time_ms() == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_sleeps_overlap),
      cmocka_unit_test(test_zero_sleep_and_yield_let_others_run),
      cmocka_unit_test(test_yield_alternates),
      cmocka_unit_test(test_yield_many),
      cmocka_unit_test(test_yielding_task_does_not_starve_timers),
      cmocka_unit_test(test_clock_monotonic),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
