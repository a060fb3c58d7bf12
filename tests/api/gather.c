/*
 * api_gather: weft_gather() and weft_gather_all() (asyncio.gather with and
 * without return_exceptions): results in order, concurrency (the time is the
 * maximum, not the sum), the first failure returned promptly while the others
 * run on, statuses, n = 0, argument errors, a gather that includes its
 * caller, and cancellation of the gathering task.
 */
#include "harness.h"

#define PROMPT_MS (1500.0 * HARNESS_SLOWDOWN)

typedef struct job {
  uint64_t sleep_ms; /* how long to sleep first */
  int fail;          /* status to fail with, or 0 */
  uintptr_t result;  /* what to return */
  atomic_int rc;     /* what the sleep returned */
  atomic_int ran;    /* the body started */
  double start, end; /* harness_now_ms() around the sleep */
} job_t;

static void *run_job(void *arg) {
  job_t *j = arg;
  int rc;

  j->start = harness_now_ms();
  atomic_store(&j->ran, 1);
  rc = weft_sleep(j->sleep_ms);
  j->end = harness_now_ms();
  atomic_store(&j->rc, rc);
  if (rc != 0)
    return NULL;
  if (j->fail)
    return weft_task_fail(j->fail);
  return (void *)j->result;
}

static void spawn_jobs(job_t *jobs, weft_task_t **t, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    CHECK_OK(weft_spawn(run_job, &jobs[i], &t[i]));
}

static void unref_all(weft_task_t **t, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    weft_task_unref(t[i]);
}

/* ---- results in order, concurrently ------------------------------------------ */

static void *order_main(void *arg) {
  job_t jobs[5];
  weft_task_t *t[5];
  void *res[5];
  size_t i;
  double t0, elapsed;

  (void)arg;
  memset(jobs, 0, sizeof jobs);
  /* Finishing in the reverse order of the array. */
  for (i = 0; i < 5; i++) {
    jobs[i].sleep_ms = 200 - 40 * i;
    jobs[i].result = 100 + i;
  }
  t0 = harness_now_ms();
  spawn_jobs(jobs, t, 5);
  memset(res, 0, sizeof res);
  CHECK_OK(weft_gather(t, 5, res));
  elapsed = harness_now_ms() - t0;
  for (i = 0; i < 5; i++) {
    CHECK(res[i] == (void *)(uintptr_t)(100 + i));
    CHECK_EQ(weft_task_done(t[i]), 1);
  }
  /* Concurrent: every job started before job 0 (the longest, spawned
   * first) finished; run one after the other, job 1 would start only after
   * job 0 ended. (A bound on the elapsed time could not tell that on a
   * loaded machine.) */
  CHECK(elapsed >= 195.0);
  for (i = 1; i < 5; i++)
    CHECK(jobs[i].start < jobs[0].end);
  /* Gathering finished tasks again returns at once; results may be NULL. */
  CHECK_OK(weft_gather(t, 5, NULL));
  CHECK_OK(weft_gather(t, 5, res));
  CHECK(res[4] == (void *)(uintptr_t)104);
  unref_all(t, 5);
  return NULL;
}

static void test_results_in_order(void **state) {
  (void)state;
  run_in_weft(order_main, NULL, 1);
  run_in_weft(order_main, NULL, 3);
}

/* The same task twice in one gather. */
static void *duplicate_main(void *arg) {
  job_t job;
  weft_task_t *t[3];
  void *res[3] = {NULL, NULL, NULL};

  (void)arg;
  memset(&job, 0, sizeof job);
  job.sleep_ms = 10;
  job.result = 9;
  spawn_jobs(&job, t, 1);
  t[1] = t[0];
  t[2] = t[0];
  CHECK_OK(weft_gather(t, 3, res));
  CHECK(res[0] == (void *)(uintptr_t)9);
  CHECK(res[1] == (void *)(uintptr_t)9);
  CHECK(res[2] == (void *)(uintptr_t)9);
  weft_task_unref(t[0]);
  return NULL;
}

static void test_duplicate_task(void **state) {
  (void)state;
  run_in_weft(duplicate_main, NULL, 2);
}

/* ---- the first failure is returned promptly ------------------------------------------ */

static void *first_failure_main(void *arg) {
  job_t jobs[3];
  weft_task_t *t[3];
  void *res[3];
  void *r = NULL;
  double t0, elapsed;

  (void)arg;
  memset(jobs, 0, sizeof jobs);
  jobs[0].sleep_ms = 3000; /* slow, succeeds */
  jobs[0].result = 5;
  jobs[1].sleep_ms = 10; /* fast, fails */
  jobs[1].fail = WEFT_EIO;
  jobs[2].sleep_ms = 1; /* fast, succeeds */
  jobs[2].result = 6;
  t0 = harness_now_ms();
  spawn_jobs(jobs, t, 3);
  CHECK_RC(weft_gather(t, 3, res), WEFT_EIO);
  elapsed = harness_now_ms() - t0;
  CHECK(elapsed < PROMPT_MS);
  /* The slow one keeps running (not cancelled) and can be awaited. */
  CHECK_EQ(weft_task_done(t[0]), 0);
  CHECK_OK(weft_task_await(t[0], &r));
  CHECK(r == (void *)(uintptr_t)5);
  CHECK_OK(atomic_load(&jobs[0].rc));
  unref_all(t, 3);
  return NULL;
}

static void test_first_failure_returned_promptly(void **state) {
  (void)state;
  run_in_weft(first_failure_main, NULL, 2);
}

/* Several failed already: the lowest index wins. */
static void *lowest_index_main(void *arg) {
  job_t jobs[4];
  weft_task_t *t[4];

  (void)arg;
  memset(jobs, 0, sizeof jobs);
  jobs[0].result = 1;
  jobs[1].fail = WEFT_EPIPE;
  jobs[2].fail = WEFT_EIO;
  jobs[3].fail = WEFT_ENOENT;
  spawn_jobs(jobs, t, 4);
  CHECK_OK(weft_task_await(t[0], NULL));
  CHECK_RC(weft_task_await(t[1], NULL), WEFT_EPIPE);
  CHECK_RC(weft_task_await(t[2], NULL), WEFT_EIO);
  CHECK_RC(weft_task_await(t[3], NULL), WEFT_ENOENT);
  CHECK_RC(weft_gather(t, 4, NULL), WEFT_EPIPE);
  CHECK_RC(weft_gather(t + 2, 2, NULL), WEFT_EIO);
  unref_all(t, 4);
  return NULL;
}

static void test_lowest_index_failure(void **state) {
  (void)state;
  run_in_weft(lowest_index_main, NULL, 2);
}

/* ---- gather_all ---------------------------------------------------------------------- */

static void *gather_all_main(void *arg) {
  job_t jobs[5];
  weft_task_t *t[5];
  void *res[5];
  int st[5];
  size_t i;

  (void)arg;
  memset(jobs, 0, sizeof jobs);
  jobs[0].sleep_ms = 30;
  jobs[0].result = 10;
  jobs[1].sleep_ms = 5;
  jobs[1].fail = WEFT_EIO;
  jobs[2].sleep_ms = 600 * 1000; /* cancelled below */
  jobs[3].sleep_ms = 0;
  jobs[3].result = 13;
  jobs[4].sleep_ms = 15;
  jobs[4].fail = WEFT_ECONNRESET;
  spawn_jobs(jobs, t, 5);
  CHECK_EQ(weft_task_cancel(t[2]), 1);
  for (i = 0; i < 5; i++) {
    res[i] = (void *)(uintptr_t)0xdead;
    st[i] = 12345;
  }
  CHECK_OK(weft_gather_all(t, 5, res, st));
  CHECK_OK(st[0]);
  CHECK(res[0] == (void *)(uintptr_t)10);
  CHECK_RC(st[1], WEFT_EIO);
  CHECK(res[1] == NULL);
  CHECK_RC(st[2], WEFT_ECANCELED);
  CHECK(res[2] == NULL);
  CHECK_OK(st[3]);
  CHECK(res[3] == (void *)(uintptr_t)13);
  CHECK_RC(st[4], WEFT_ECONNRESET);
  CHECK(res[4] == NULL);
  for (i = 0; i < 5; i++)
    CHECK_EQ(weft_task_done(t[i]), 1);
  /* Either array may be NULL. */
  CHECK_OK(weft_gather_all(t, 5, NULL, st));
  CHECK_RC(st[1], WEFT_EIO);
  CHECK_OK(weft_gather_all(t, 5, res, NULL));
  CHECK(res[3] == (void *)(uintptr_t)13);
  CHECK_OK(weft_gather_all(t, 5, NULL, NULL));
  unref_all(t, 5);
  return NULL;
}

static void test_gather_all_statuses(void **state) {
  (void)state;
  run_in_weft(gather_all_main, NULL, 1);
  run_in_weft(gather_all_main, NULL, 2);
}

/* ---- edge cases and errors ---------------------------------------------------------------- */

static void *edge_main(void *arg) {
  job_t jobs[2];
  weft_task_t *t[3];
  int st[3];

  (void)arg;
  CHECK_OK(weft_gather(NULL, 0, NULL));
  CHECK_OK(weft_gather_all(NULL, 0, NULL, NULL));
  CHECK_RC(weft_gather(NULL, 2, NULL), WEFT_EINVAL);
  CHECK_RC(weft_gather_all(NULL, 2, NULL, NULL), WEFT_EINVAL);

  memset(jobs, 0, sizeof jobs);
  jobs[0].sleep_ms = 20;
  jobs[1].sleep_ms = 20;
  spawn_jobs(jobs, t, 2);
  t[2] = t[1];
  t[1] = NULL;
  CHECK_RC(weft_gather(t, 3, NULL), WEFT_EINVAL);
  CHECK_RC(weft_gather_all(t, 3, NULL, st), WEFT_EINVAL);
  t[1] = weft_task_current();
  CHECK_RC(weft_gather(t, 3, NULL), WEFT_EDEADLK);
  CHECK_RC(weft_gather_all(t, 3, NULL, st), WEFT_EDEADLK);
  t[1] = t[2];
  CHECK_OK(weft_gather(t, 2, NULL));
  unref_all(t, 2);
  return NULL;
}

static void test_edge_cases(void **state) {
  (void)state;
  run_in_weft(edge_main, NULL, 2);
}

/* ---- cancelling the gathering task -------------------------------------------------------- */

typedef struct gatherer {
  weft_task_t **tasks; /* what to gather */
  size_t n;
  int all;             /* gather_all instead of gather */
  atomic_int started;
  atomic_int rc;
} gatherer_t;

static void *gather_in_task(void *arg) {
  gatherer_t *g = arg;
  int st[4];

  atomic_store(&g->started, 1);
  if (g->all)
    atomic_store(&g->rc, weft_gather_all(g->tasks, g->n, NULL, st));
  else
    atomic_store(&g->rc, weft_gather(g->tasks, g->n, NULL));
  return NULL;
}

static void *cancel_gatherer_main(void *arg) {
  int all;

  (void)arg;
  for (all = 0; all <= 1; all++) {
    job_t jobs[3];
    weft_task_t *t[3], *gt;
    gatherer_t g;
    void *r = NULL;

    memset(jobs, 0, sizeof jobs);
    memset(&g, 0, sizeof g);
    jobs[0].sleep_ms = 600 * 1000;
    jobs[1].sleep_ms = 1; /* finishes before the cancel */
    jobs[1].result = 4;
    jobs[2].sleep_ms = 600 * 1000;
    spawn_jobs(jobs, t, 3);
    g.tasks = t;
    g.n = 3;
    g.all = all;
    CHECK_OK(weft_spawn(gather_in_task, &g, &gt));
    /* The gatherer waits, job 1 finished, and 0 and 2 sleep. */
    HARNESS_WAIT(weft_task_done(t[1]) && atomic_load(&jobs[0].ran) &&
                 atomic_load(&jobs[2].ran));
    HARNESS_WAIT_PARKED(g.started);
    CHECK_EQ(atomic_load(&g.started), 1);
    CHECK_EQ(weft_task_done(t[1]), 1);
    CHECK_EQ(weft_task_cancel(gt), 1);
    CHECK_RC(weft_task_await(gt, NULL), WEFT_ECANCELED);
    CHECK_RC(atomic_load(&g.rc), WEFT_ECANCELED);
    /* The unfinished children were cancelled; the finished one kept its
     * result. */
    CHECK_RC(weft_task_await(t[0], NULL), WEFT_ECANCELED);
    CHECK_RC(atomic_load(&jobs[0].rc), WEFT_ECANCELED);
    CHECK_RC(weft_task_await(t[2], NULL), WEFT_ECANCELED);
    CHECK_RC(atomic_load(&jobs[2].rc), WEFT_ECANCELED);
    CHECK_OK(weft_task_await(t[1], &r));
    CHECK(r == (void *)(uintptr_t)4);
    weft_task_unref(gt);
    unref_all(t, 3);
  }
  return NULL;
}

static void test_cancel_gathering_task(void **state) {
  (void)state;
  run_in_weft(cancel_gatherer_main, NULL, 1);
  run_in_weft(cancel_gatherer_main, NULL, 2);
}

/* ---- many children ---------------------------------------------------------------------- */

#define N_MANY 1000

static void *many_child(void *arg) {
  CHECK_OK(weft_yield());
  return arg;
}

static void *many_main(void *arg) {
  static weft_task_t *t[N_MANY];
  static void *res[N_MANY];
  size_t i;

  (void)arg;
  for (i = 0; i < N_MANY; i++)
    CHECK_OK(weft_spawn(many_child, (void *)(uintptr_t)(i * 3), &t[i]));
  CHECK_OK(weft_gather(t, N_MANY, res));
  for (i = 0; i < N_MANY; i++) {
    CHECK(res[i] == (void *)(uintptr_t)(i * 3));
    weft_task_unref(t[i]);
  }
  return NULL;
}

static void test_many_children(void **state) {
  (void)state;
  run_in_weft(many_main, NULL, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_results_in_order),
      cmocka_unit_test(test_duplicate_task),
      cmocka_unit_test(test_first_failure_returned_promptly),
      cmocka_unit_test(test_lowest_index_failure),
      cmocka_unit_test(test_gather_all_statuses),
      cmocka_unit_test(test_edge_cases),
      cmocka_unit_test(test_cancel_gathering_task),
      cmocka_unit_test(test_many_children),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
