/*
 * stress_steal: the scheduler with its local run queue shrunk to 4 slots
 * (this executable links the library objects built with
 * WEFT_RUNQ_CAPACITY=4), so that ring overflow into the global inject queue
 * and stealing happen all the time.
 *
 *  1. Heavy spawning on 2, 3 and 4 workers: spawners (some pinned, some
 *     not) spawn children that spawn grandchildren, some yield or sleep, some
 *     compute a little; every task runs exactly once, and the inject queue
 *     was used.
 *  2. Tasks sitting in a full worker's ring are stolen by an idle worker.
 */
#include "harness.h"

/* ThreadSanitizer gives every live fiber a thread slot (8k at most). */
#define N_TASKS HARNESS_SIZE(400000, 40000, 400000)
#define N_SPAWNERS 4
#define WINDOW HARNESS_SIZE(5000, 1000, 5000)

typedef struct ring4 {
  atomic_uchar ran[N_TASKS]; /* times each task ran */
  atomic_long spawned;
  atomic_long finished;
  atomic_long dup;           /* tasks that ran twice */
  weft_queue_t *done;
} ring4_t;

static ring4_t R;

static void task_ran(uintptr_t id) {
  long n;

  CHECK(id < N_TASKS);
  if (id < N_TASKS && atomic_fetch_add(&R.ran[id], 1) != 0)
    atomic_fetch_add(&R.dup, 1);
  n = atomic_fetch_add(&R.finished, 1) + 1;
  if (n == N_TASKS)
    CHECK_OK(weft_queue_put(R.done, &R));
}

static void *grandchild(void *arg) {
  uintptr_t id = (uintptr_t)arg;

  if (id % 5 == 0)
    CHECK_OK(weft_yield());
  task_ran(id);
  return NULL;
}

static void *child(void *arg) {
  uintptr_t id = (uintptr_t)arg;

  switch (id % 7) {
  case 0:
    CHECK_OK(weft_yield());
    break;
  case 1:
    harness_spin_us(5);
    break;
  case 2:
    CHECK_OK(weft_sleep(id % 3));
    break;
  default:
    break;
  }
  /* Grandchild ids are the upper half. */
  CHECK_OK(weft_spawn(grandchild, (void *)(id + N_TASKS / 2), NULL));
  atomic_fetch_add(&R.spawned, 1);
  task_ran(id);
  return NULL;
}

static void *spawner(void *arg) {
  uintptr_t first = (uintptr_t)arg;
  uintptr_t per = N_TASKS / 2 / N_SPAWNERS;
  uintptr_t i;

  for (i = 0; i < per; i++) {
    CHECK_OK(weft_spawn(child, (void *)(first + i), NULL));
    atomic_fetch_add(&R.spawned, 1);
    if (i % 64 == 63)
      while (atomic_load(&R.spawned) - atomic_load(&R.finished) > WINDOW)
        CHECK_OK(weft_yield());
  }
  return NULL;
}

static void *heavy_main(void *arg) {
  weft_task_t *t[N_SPAWNERS];
  weft_spawn_opts_t opts;
  weft_worker_stats_t ws;
  uint64_t inject = 0, stolen = 0, run_on[8] = {0};
  int n = weft_worker_count();
  void *item = NULL;
  int i;

  (void)arg;
  CHECK_EQ(N_TASKS % (2 * N_SPAWNERS), 0);
  CHECK_OK(weft_queue_new(0, &R.done));
  weft_spawn_opts_init(&opts);
  for (i = 0; i < N_SPAWNERS; i++) {
    /* Half pinned (one per worker, round robin), half free to move. */
    opts.pin = i % 2 ? -1 : i % n;
    CHECK_OK(weft_spawn_ex(spawner,
                           (void *)(uintptr_t)(i * (N_TASKS / 2 / N_SPAWNERS)),
                           &opts, &t[i]));
  }
  CHECK_OK(weft_queue_get(R.done, &item));
  CHECK(item == &R);
  CHECK_OK(weft_gather(t, N_SPAWNERS, NULL));
  for (i = 0; i < N_SPAWNERS; i++)
    weft_task_unref(t[i]);
  CHECK_EQ(atomic_load(&R.finished), N_TASKS);
  CHECK_EQ(atomic_load(&R.spawned), N_TASKS);
  CHECK_EQ(atomic_load(&R.dup), 0);
  for (i = 0; i < n; i++) {
    CHECK_OK(weft_worker_stats((unsigned)i, &ws));
    inject += ws.inject_pops;
    stolen += ws.stolen;
    if (i < 8)
      run_on[i] = ws.tasks_run;
  }
  /* A 4-slot ring cannot hold a spawner's burst: it spilled. */
  CHECK(inject > 0);
  for (i = 0; i < n && i < 8; i++)
    CHECK(run_on[i] > 0);
  print_message("%d workers: %llu inject pops, %llu stolen\n", n,
                (unsigned long long)inject, (unsigned long long)stolen);
  return NULL;
}

static void run_heavy(unsigned workers) {
  long i, missing = 0;

  memset(&R, 0, sizeof R);
  run_in_weft(heavy_main, NULL, workers);
  for (i = 0; i < N_TASKS; i++)
    missing += atomic_load(&R.ran[i]) != 1;
  assert_int_equal(missing, 0);
  assert_int_equal(atomic_load(&R.finished), N_TASKS);
  assert_int_equal(weft_queue_free(R.done), 0);
}

static void test_heavy_spawn_2_workers(void **state) {
  (void)state;
  run_heavy(2);
}

static void test_heavy_spawn_3_workers(void **state) {
  (void)state;
  run_heavy(3);
}

static void test_heavy_spawn_4_workers(void **state) {
  (void)state;
  run_heavy(4);
}

/* ---- an idle worker steals from a busy one's ring ---------------------------------- */

#define STEAL_ROUNDS 50

static void *busy_ms(void *arg) {
  atomic_int *ran_on = arg;
  int idx = weft_worker_index();

  if (idx >= 0 && idx < 2)
    atomic_fetch_add(&ran_on[idx], 1);
  harness_spin_us(1000);
  return NULL;
}

static void *steal_spawner(void *arg) {
  atomic_int *ran_on = arg;
  weft_task_t *t[2];
  int r;

  for (r = 0; r < STEAL_ROUNDS; r++) {
    /* Two tasks fit in the 4-slot ring, so they are not spilled to the
     * inject queue: worker 1 can only get one by stealing. */
    CHECK_OK(weft_spawn(busy_ms, ran_on, &t[0]));
    CHECK_OK(weft_spawn(busy_ms, ran_on, &t[1]));
    CHECK_OK(weft_gather(t, 2, NULL));
    weft_task_unref(t[0]);
    weft_task_unref(t[1]);
  }
  return NULL;
}

static void *small_steal_main(void *arg) {
  atomic_int *ran_on = arg;
  weft_spawn_opts_t opts;
  weft_worker_stats_t ws;
  weft_task_t *t;
  uint64_t stolen = 0, steals = 0;
  int i;

  weft_spawn_opts_init(&opts);
  opts.pin = 0;
  CHECK_OK(weft_spawn_ex(steal_spawner, ran_on, &opts, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  for (i = 0; i < 2; i++) {
    CHECK_OK(weft_worker_stats((unsigned)i, &ws));
    stolen += ws.stolen;
    steals += ws.steals;
  }
  CHECK(stolen > 0);
  CHECK(steals > 0);
  return NULL;
}

static void test_idle_worker_steals(void **state) {
  atomic_int ran_on[2];

  (void)state;
  atomic_init(&ran_on[0], 0);
  atomic_init(&ran_on[1], 0);
  run_in_weft(small_steal_main, ran_on, 2);
  assert_int_equal(atomic_load(&ran_on[0]) + atomic_load(&ran_on[1]),
                   2 * STEAL_ROUNDS);
  assert_true(atomic_load(&ran_on[1]) > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heavy_spawn_2_workers),
      cmocka_unit_test(test_heavy_spawn_3_workers),
      cmocka_unit_test(test_heavy_spawn_4_workers),
      cmocka_unit_test(test_idle_worker_steals),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
