/*
 * stress_spawn: 1,000,000 detached spawns on 2 workers, from 4 spawner
 * tasks at once; each child counts itself with an atomic, the last one
 * signals main through a weft_queue, and the count must be exact.
 *
 * The spawners keep at most WINDOW children alive (spawned, not finished) by
 * yielding, so the test measures spawn/run/free churn, not memory.
 */
#include "harness.h"

/* ThreadSanitizer gives every live fiber a thread slot (8k at most). */
#define N_SPAWNS HARNESS_SIZE(1000000, 200000, 1000000)
#define WINDOW HARNESS_SIZE(20000, 2000, 20000)
#define N_SPAWNERS 4

typedef struct spawn_state {
  weft_queue_t *done;  /* the last child puts one item */
  atomic_long spawned; /* children spawned */
  atomic_long finished; /* children that ran */
  atomic_long yielded; /* children that suspended once */
} spawn_state_t;

static spawn_state_t st;

static void child_finish(void) {
  long n = atomic_fetch_add(&st.finished, 1) + 1;

  if (n == N_SPAWNS)
    CHECK_OK(weft_queue_put(st.done, &st));
  CHECK_LE(n, N_SPAWNS);
}

static void *child_plain(void *arg) {
  (void)arg;
  child_finish();
  return NULL;
}

/* One in 8 suspends once before finishing. */
static void *child_yield(void *arg) {
  (void)arg;
  CHECK_OK(weft_yield());
  atomic_fetch_add(&st.yielded, 1);
  child_finish();
  return NULL;
}

static void *spawner(void *arg) {
  long per = (long)(uintptr_t)arg;
  long i;

  for (i = 0; i < per; i++) {
    CHECK_OK(weft_spawn(i % 8 == 7 ? child_yield : child_plain, NULL, NULL));
    atomic_fetch_add(&st.spawned, 1);
    if (i % 256 == 255)
      while (atomic_load(&st.spawned) - atomic_load(&st.finished) > WINDOW)
        CHECK_OK(weft_yield());
  }
  return NULL;
}

static void *spawn_main(void *arg) {
  weft_task_t *t[N_SPAWNERS];
  weft_worker_stats_t ws;
  uint64_t spawned_stat = 0;
  void *item = NULL;
  long per = N_SPAWNS / N_SPAWNERS;
  int i;

  (void)arg;
  CHECK_EQ(N_SPAWNS % N_SPAWNERS, 0);
  CHECK_OK(weft_queue_new(0, &st.done));
  for (i = 0; i < N_SPAWNERS; i++)
    CHECK_OK(weft_spawn(spawner, (void *)(uintptr_t)per, &t[i]));
  CHECK_OK(weft_queue_get(st.done, &item));
  CHECK(item == &st);
  CHECK_OK(weft_gather(t, N_SPAWNERS, NULL));
  for (i = 0; i < N_SPAWNERS; i++)
    weft_task_unref(t[i]);
  CHECK_EQ(atomic_load(&st.spawned), N_SPAWNS);
  CHECK_EQ(atomic_load(&st.finished), N_SPAWNS);
  CHECK_EQ(atomic_load(&st.yielded), N_SPAWNS / 8);
  for (i = 0; i < weft_worker_count(); i++) {
    CHECK_OK(weft_worker_stats((unsigned)i, &ws));
    spawned_stat += ws.tasks_spawned;
  }
  CHECK(spawned_stat >= (uint64_t)N_SPAWNS + N_SPAWNERS);
  CHECK_EQ(weft_queue_size(st.done), 0);
  /* The queue is freed after weft_run(): the last child may still be
   * returning from its put. */
  return NULL;
}

static void test_million_spawns(void **state) {
  double t0, ms;

  (void)state;
  memset(&st, 0, sizeof st);
  t0 = harness_now_ms();
  run_in_weft(spawn_main, NULL, 2);
  ms = harness_now_ms() - t0;
  assert_int_equal(atomic_load(&st.finished), N_SPAWNS);
  assert_int_equal(weft_queue_free(st.done), 0);
  print_message("%d spawns in %.0f ms (%.0f ns per spawn)\n", N_SPAWNS, ms,
                ms * 1e6 / N_SPAWNS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_million_spawns),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
