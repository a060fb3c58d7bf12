/*
 * api_event: weft_event_* (asyncio.Event): every error path, the static
 * initialiser, set/clear/is_set, waiters woken all at once on several
 * workers, set from a thread that is not a task, cancellation of a waiter,
 * and cancellation racing set() on 2 and 4 workers.
 */
#include "harness.h"

static weft_event_t static_event = WEFT_EVENT_INITIALIZER;

static void test_outside_and_errors(void **state) {
  weft_event_t *e = NULL;
  weft_event_t embedded;

  (void)state;
  assert_int_equal(weft_event_init(NULL), WEFT_EINVAL);
  assert_int_equal(weft_event_destroy(NULL), WEFT_EINVAL);
  assert_int_equal(weft_event_new(NULL), WEFT_EINVAL);
  assert_int_equal(weft_event_free(NULL), 0);
  assert_int_equal(weft_event_set(NULL), WEFT_EINVAL);
  assert_int_equal(weft_event_clear(NULL), WEFT_EINVAL);
  assert_int_equal(weft_event_is_set(NULL), WEFT_EINVAL);
  assert_int_equal(weft_event_wait(NULL), WEFT_EINVAL);

  assert_int_equal(weft_event_new(&e), 0);
  assert_int_equal(weft_event_is_set(e), 0);
  assert_int_equal(weft_event_wait(e), WEFT_ENOTTASK);
  assert_int_equal(weft_event_set(e), 0);
  assert_int_equal(weft_event_is_set(e), 1);
  assert_int_equal(weft_event_set(e), 0); /* idempotent */
  assert_int_equal(weft_event_wait(e), WEFT_ENOTTASK);
  assert_int_equal(weft_event_clear(e), 0);
  assert_int_equal(weft_event_is_set(e), 0);
  assert_int_equal(weft_event_free(e), 0);

  assert_int_equal(weft_event_init(&embedded), 0);
  assert_int_equal(weft_event_destroy(&embedded), 0);
  assert_int_equal(weft_event_is_set(&static_event), 0);
}

/* ---- waiting, waking many, clear ------------------------------------------- */

#define N_WAITERS 16

typedef struct many {
  weft_event_t *e;
  atomic_int woken;
  atomic_int arrived; /* waiters about to wait */
  int data;  /* written before set(), read by the waiters */
} many_t;

static void *wait_and_count(void *arg) {
  many_t *m = arg;

  atomic_fetch_add(&m->arrived, 1);
  CHECK_OK(weft_event_wait(m->e));
  CHECK_EQ(m->data, 42); /* set() publishes the setter's writes */
  atomic_fetch_add(&m->woken, 1);
  return NULL;
}

static void *many_main(void *arg) {
  many_t m;
  weft_task_t *t[N_WAITERS];
  int i;

  (void)arg;
  memset(&m, 0, sizeof m);
  m.e = &static_event;
  CHECK_OK(weft_event_clear(m.e));
  for (i = 0; i < N_WAITERS; i++)
    CHECK_OK(weft_spawn(wait_and_count, &m, &t[i]));
  /* All at their wait (the event shows no waiter count: the last step is
   * harness.h's settle), so destroy finds it busy. */
  if (HARNESS_WAIT(atomic_load(&m.arrived) == N_WAITERS))
    harness_settle();
  CHECK_EQ(atomic_load(&m.woken), 0);
  CHECK_RC(weft_event_destroy(m.e), WEFT_EBUSY);
  m.data = 42;
  CHECK_OK(weft_event_set(m.e));
  CHECK_OK(weft_gather(t, N_WAITERS, NULL));
  CHECK_EQ(atomic_load(&m.woken), N_WAITERS);
  for (i = 0; i < N_WAITERS; i++)
    weft_task_unref(t[i]);
  /* Set: wait returns at once, as often as asked. */
  CHECK_OK(weft_event_wait(m.e));
  CHECK_OK(weft_event_wait(m.e));
  /* Cleared: a new waiter waits for the next set. */
  CHECK_OK(weft_event_clear(m.e));
  CHECK_OK(weft_spawn(wait_and_count, &m, &t[0]));
  CHECK_OK(weft_sleep(10));
  CHECK_EQ(weft_task_done(t[0]), 0);
  CHECK_OK(weft_event_set(m.e));
  CHECK_OK(weft_task_await(t[0], NULL));
  weft_task_unref(t[0]);
  CHECK_EQ(atomic_load(&m.woken), N_WAITERS + 1);
  CHECK_OK(weft_event_clear(m.e)); /* static: reused by the next run */
  return NULL;
}

static void test_wait_set_clear(void **state) {
  (void)state;
  run_in_weft(many_main, NULL, 1);
  run_in_weft(many_main, NULL, 4);
}

/* ---- set from a thread that is not a task ---------------------------------- */

static void *foreign_setter(void *arg) {
  struct timespec pause = {0, 5 * 1000 * 1000};

  nanosleep(&pause, NULL);
  CHECK_OK(weft_event_set(arg));
  return NULL;
}

static void *foreign_main(void *arg) {
  weft_event_t *e;
  pthread_t th;
  int round;

  (void)arg;
  CHECK_OK(weft_event_new(&e));
  for (round = 0; round < 20; round++) {
    CHECK_OK(weft_event_clear(e));
    CHECK_EQ(pthread_create(&th, NULL, foreign_setter, e), 0);
    CHECK_OK(weft_event_wait(e));
    CHECK_EQ(weft_event_is_set(e), 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
  }
  CHECK_OK(weft_event_free(e));
  return NULL;
}

static void test_foreign_set(void **state) {
  (void)state;
  run_in_weft(foreign_main, NULL, 1);
  run_in_weft(foreign_main, NULL, 2);
}

/* ---- cancellation ------------------------------------------------------------ */

static void *wait_rc(void *arg) {
  return (void *)(intptr_t)weft_event_wait(arg);
}

static void *cancel_main(void *arg) {
  weft_event_t e = WEFT_EVENT_INITIALIZER;
  weft_task_t *t1, *t2;
  void *r;

  (void)arg;
  CHECK_OK(weft_spawn(wait_rc, &e, &t1));
  CHECK_OK(weft_spawn(wait_rc, &e, &t2));
  CHECK_OK(weft_sleep(5));
  CHECK_EQ(weft_task_cancel(t1), 1);
  CHECK_RC(weft_task_await(t1, NULL), WEFT_ECANCELED);
  CHECK_EQ(weft_task_done(t2), 0);
  CHECK_OK(weft_event_set(&e));
  CHECK_OK(weft_task_await(t2, &r));
  CHECK_EQ((intptr_t)r, 0);
  weft_task_unref(t1);
  weft_task_unref(t2);
  CHECK_OK(weft_event_destroy(&e));
  return NULL;
}

static void test_cancel_waiter(void **state) {
  (void)state;
  run_in_weft(cancel_main, NULL, 1);
  run_in_weft(cancel_main, NULL, 2);
}

/* harness_race_test: the waiter waits on a clear event; the grant is the
 * driver's set(). */
static void race_arm(void *ctx, int i) {
  weft_event_t *e = ctx;

  (void)i;
  CHECK_OK(weft_event_init(e));
}

static int race_wait(void *ctx) {
  weft_event_t *e = ctx;
  return weft_event_wait(e);
}

static void race_grant(void *ctx) {
  weft_event_t *e = ctx;
  CHECK_OK(weft_event_set(e));
}

static void race_check(void *ctx, int rc) {
  weft_event_t *e = ctx;

  CHECK(rc == 0 || rc == WEFT_ECANCELED);
  /* Nobody is left behind in the wait queue. */
  CHECK_OK(weft_event_destroy(e));
}

static void test_cancel_races_set(void **state) {
  weft_event_t e;
  harness_race_t race = {.what = "event set",
                         .rounds = HARNESS_SIZE(2000, 300, 800),
                         .grant_is_sync = 1,
                         .ctx = &e,
                         .arm = race_arm,
                         .wait = race_wait,
                         .grant = race_grant,
                         .check = race_check};

  (void)state;
  harness_race_test(&race);
}

/* ---- a waiter cancelled before set() is not woken by it ---- */

/* Defect 9 of issue 11: set() used to wake a waiter whose cancel() had
 * already returned, and its wait returned 0. Deterministic mode makes the
 * window certain. */
typedef struct ce_waiter {
  weft_event_t *e;
  atomic_int started;
  int rc;
} ce_waiter_t;

static void *ce_wait(void *arg) {
  ce_waiter_t *w = arg;

  atomic_store(&w->started, 1);
  w->rc = weft_event_wait(w->e);
  return NULL;
}

static weft_task_t *ce_spawn_waiting(ce_waiter_t *w) {
  w->rc = 1;
  return harness_spawn_waiting(ce_wait, w, &w->started);
}

static void *cancelled_waiter_main(void *arg) {
  weft_event_t e;
  ce_waiter_t a = {0}, b = {0};
  weft_task_t *ta, *tb;

  (void)arg;
  CHECK_OK(weft_event_init(&e));
  a.e = b.e = &e;
  ta = ce_spawn_waiting(&a);
  tb = ce_spawn_waiting(&b);
  CHECK_EQ(weft_task_cancel(ta), 1);
  CHECK_OK(weft_event_set(&e));
  CHECK_RC(weft_task_await(ta, NULL), WEFT_ECANCELED);
  CHECK_OK(weft_task_await(tb, NULL));
  CHECK_RC(a.rc, WEFT_ECANCELED);
  CHECK_RC(b.rc, 0);
  weft_task_unref(ta);
  weft_task_unref(tb);
  CHECK_OK(weft_event_destroy(&e));
  return NULL;
}

static void test_cancelled_waiter_not_woken(void **state) {
  (void)state;
  run_in_weft_deterministic(cancelled_waiter_main, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outside_and_errors),
      cmocka_unit_test(test_wait_set_clear),
      cmocka_unit_test(test_foreign_set),
      cmocka_unit_test(test_cancel_waiter),
      cmocka_unit_test(test_cancel_races_set),
      cmocka_unit_test(test_cancelled_waiter_not_woken),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
