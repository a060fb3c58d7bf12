/*
 * api_foreign_hooks: calls documented "any thread" made from a thread that
 * is no worker of the runtime, racing with the end of weft_run() (issue 11,
 * defect 2). The library's objects are rebuilt for this test with
 * WEFT_TEST_HOOKS (tests/CMakeLists.txt), whose hook runs on such a thread
 * right after it queued the task it wakes and before it notifies a worker:
 * the hook waits (up to a bound) for weft_run() to return. A wake that can
 * outlive the runtime lets weft_run() return meanwhile, and then notifies a
 * worker of a freed runtime (a use-after-free under ASan, a race under
 * TSan); a guarded one keeps weft_run() from returning until the waker is
 * done, so the hook never sees it return.
 *
 * Every scenario runs with one worker: when main runs again after the
 * target task said it is about to wait, the target has parked (the worker
 * finishes a task's switch out before it runs the next one), so the
 * outside call always has to queue it.
 */
#include "harness.h"

/* The hook (src/sched/worker.c, test builds only). */
extern void (*weft__test_hook_foreign_wake)(void);

/* How long the hook waits for weft_run() to return: long enough for the
 * runtime to end behind a wake that does not hold it back; a guarded wake
 * holds it back, so the hook then always waits this long. */
#define HOOK_WAIT_MS (1500 * HARNESS_SLOWDOWN)

static atomic_int hook_armed;      /* the next outside wake is delayed */
static atomic_int hook_fired;      /* it was */
static atomic_int run_returned;    /* weft_run() has returned */
static atomic_int hook_saw_return; /* ... while the waker was inside */

static void delay_hook(void) {
  struct timespec ms = {0, 1000000};
  int i;

  if (!atomic_exchange(&hook_armed, 0))
    return;
  atomic_store(&hook_fired, 1);

  for (i = 0; i < HOOK_WAIT_MS && !atomic_load(&run_returned); i++)
    nanosleep(&ms, NULL);
  if (atomic_load(&run_returned))
    atomic_store(&hook_saw_return, 1);
}

enum how { CANCEL_WAITING, CANCEL_SLEEPING, EVENT_SET, QUEUE_PUT };

typedef struct scenario {
  enum how how;
  weft_task_t *target;   /* main keeps its reference to the end */
  weft_event_t *ev;      /* the test thread's: outlives weft_run */
  weft_queue_t *q;       /* likewise */
  pthread_t th;          /* the outside thread */
  atomic_int started;    /* th was created */
  atomic_int waiting;    /* the target is about to wait */
  atomic_int target_rc;  /* what its wait returned */
  atomic_int outside_rc; /* what the outside call returned */
} scenario_t;

static void *target_fn(void *arg) {
  scenario_t *s = arg;
  void *item = NULL;
  int rc;

  atomic_store(&s->waiting, 1);
  switch (s->how) {
  case CANCEL_SLEEPING:
    rc = weft_sleep(3600 * 1000); /* a timer: the wake goes to an inbox */
    break;
  case QUEUE_PUT:
    rc = weft_queue_get(s->q, &item);
    CHECK(rc != 0 || item == (void *)s);
    break;
  default:
    rc = weft_event_wait(s->ev); /* no route: the inject queue */
    break;
  }
  atomic_store(&s->target_rc, rc);
  return NULL;
}

static void *outside_fn(void *arg) {
  scenario_t *s = arg;
  int rc;

  switch (s->how) {
  case EVENT_SET:
    rc = weft_event_set(s->ev);
    break;
  case QUEUE_PUT:
    rc = weft_queue_try_put(s->q, s);
    break;
  default:
    rc = weft_task_cancel(s->target);
    break;
  }
  atomic_store(&s->outside_rc, rc);
  return NULL;
}

static void *scenario_main(void *arg) {
  scenario_t *s = arg;
  int i;

  CHECK_OK(weft_spawn(target_fn, s, &s->target));
  for (i = 0; i < 10000 && !atomic_load(&s->waiting); i++)
    CHECK_OK(weft_sleep(1));
  CHECK(atomic_load(&s->waiting));
  atomic_store(&hook_armed, 1);
  CHECK_OK(pthread_create(&s->th, NULL, outside_fn, s));
  atomic_store(&s->started, 1);
  /* Poll rather than await: a worker that wakes every millisecond finds the
   * target in its queue without the notify the hook holds back. */
  for (i = 0; i < 10000 && weft_task_done(s->target) != 1; i++)
    CHECK_OK(weft_sleep(1));
  CHECK_EQ(weft_task_done(s->target), 1);
  /* Return at once: weft_run may end while the outside thread is still in
   * its call. The handle is left to the runtime (valid until it ends). */
  return NULL;
}

static void run_scenario(enum how how) {
  scenario_t s;
  weft_config_t cfg;
  int rc;

  memset(&s, 0, sizeof(s));
  s.how = how;
  assert_int_equal(weft_event_new(&s.ev), 0);
  assert_int_equal(weft_queue_new(0, &s.q), 0);
  atomic_store(&hook_armed, 0);
  atomic_store(&hook_fired, 0);
  atomic_store(&run_returned, 0);
  atomic_store(&hook_saw_return, 0);
  weft__test_hook_foreign_wake = delay_hook;
  weft_config_init(&cfg);
  cfg.workers = 1;
  harness_reset();
  rc = weft_run(scenario_main, &s, &cfg, NULL);
  atomic_store(&run_returned, 1);
  if (atomic_load(&s.started))
    pthread_join(s.th, NULL);
  weft__test_hook_foreign_wake = NULL;
  harness_assert_clean();
  assert_int_equal(rc, 0);
  assert_int_equal(atomic_load(&s.started), 1);
  assert_int_equal(atomic_load(&hook_fired), 1);
  /* The heart of it: the outside call finished before weft_run returned. */
  assert_int_equal(atomic_load(&hook_saw_return), 0);
  switch (how) {
  case EVENT_SET:
  case QUEUE_PUT:
    assert_int_equal(atomic_load(&s.outside_rc), 0);
    assert_int_equal(atomic_load(&s.target_rc), 0);
    break;
  default:
    assert_int_equal(atomic_load(&s.outside_rc), 1);
    assert_int_equal(atomic_load(&s.target_rc), WEFT_ECANCELED);
    break;
  }
  assert_int_equal(weft_event_free(s.ev), 0);
  assert_int_equal(weft_queue_free(s.q), 0);
}

/* weft_task_cancel() from a plain thread, waking a task parked on an event
 * (inject queue) or asleep (its timer's inbox): the regression tests. */
static void test_cancel_waiting_outlives_run(void **state) {
  (void)state;
  run_scenario(CANCEL_WAITING);
}

static void test_cancel_sleeping_outlives_run(void **state) {
  (void)state;
  run_scenario(CANCEL_SLEEPING);
}

/* The waiter handshake already holds the woken task (and so the runtime)
 * until the waker is done: these pass before and after the fix, and keep
 * that guarantee tested. */
static void test_event_set_outlives_run(void **state) {
  (void)state;
  run_scenario(EVENT_SET);
}

static void test_queue_try_put_outlives_run(void **state) {
  (void)state;
  run_scenario(QUEUE_PUT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cancel_waiting_outlives_run),
      cmocka_unit_test(test_cancel_sleeping_outlives_run),
      cmocka_unit_test(test_event_set_outlives_run),
      cmocka_unit_test(test_queue_try_put_outlives_run),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
