/*
 * api_lock: weft_lock_* (asyncio.Lock): every error path, the static
 * initialiser and embedding, ownership, blocking hand-over, FIFO order of
 * waiters without barging (deterministic and on 3 workers), cancellation of
 * a waiter, and cancellation racing the hand-over on 2 and 4 workers.
 */
#include "harness.h"

/* ---- outside the runtime --------------------------------------------------- */

static weft_lock_t static_lock = WEFT_LOCK_INITIALIZER;

static void test_outside_and_errors(void **state) {
  weft_lock_t *l = NULL;
  weft_lock_t embedded;

  (void)state;
  assert_int_equal(weft_lock_init(NULL), WEFT_EINVAL);
  assert_int_equal(weft_lock_destroy(NULL), WEFT_EINVAL);
  assert_int_equal(weft_lock_new(NULL), WEFT_EINVAL);
  assert_int_equal(weft_lock_free(NULL), 0);
  assert_int_equal(weft_lock_acquire(NULL), WEFT_EINVAL);
  assert_int_equal(weft_lock_try_acquire(NULL), WEFT_EINVAL);
  assert_int_equal(weft_lock_release(NULL), WEFT_EINVAL);
  assert_int_equal(weft_lock_locked(NULL), WEFT_EINVAL);

  assert_int_equal(weft_lock_new(&l), 0);
  assert_non_null(l);
  assert_int_equal(weft_lock_locked(l), 0);
  /* A lock is owned by a task: nothing but locked() works outside one. */
  assert_int_equal(weft_lock_acquire(l), WEFT_ENOTTASK);
  assert_int_equal(weft_lock_try_acquire(l), WEFT_ENOTTASK);
  assert_int_equal(weft_lock_release(l), WEFT_ENOTTASK);
  assert_int_equal(weft_lock_free(l), 0);

  assert_int_equal(weft_lock_init(&embedded), 0);
  assert_int_equal(weft_lock_locked(&embedded), 0);
  assert_int_equal(weft_lock_destroy(&embedded), 0);
  assert_int_equal(weft_lock_locked(&static_lock), 0);
  assert_int_equal(weft_lock_destroy(&static_lock), 0);
}

/* ---- ownership, in one task and across tasks ------------------------------ */

typedef struct own {
  weft_lock_t *l;
  int rc_release;  /* a non-owner's release */
  int rc_try;      /* a non-owner's try_acquire */
} own_t;

static void *not_owner(void *arg) {
  own_t *o = arg;

  o->rc_release = weft_lock_release(o->l);
  o->rc_try = weft_lock_try_acquire(o->l);
  return NULL;
}

static void *ownership_main(void *arg) {
  weft_lock_t l = WEFT_LOCK_INITIALIZER;
  own_t o;
  weft_task_t *t;

  (void)arg;
  /* Releasing an unlocked lock is an error (asyncio: RuntimeError). */
  CHECK_RC(weft_lock_release(&l), WEFT_EPERM);
  CHECK_OK(weft_lock_acquire(&l));
  CHECK_EQ(weft_lock_locked(&l), 1);
  CHECK_RC(weft_lock_try_acquire(&l), WEFT_EBUSY);
  CHECK_RC(weft_lock_acquire(&l), WEFT_EDEADLK); /* not recursive */
  CHECK_RC(weft_lock_destroy(&l), WEFT_EBUSY);   /* held */
  o.l = &l;
  CHECK_OK(weft_spawn(not_owner, &o, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_RC(o.rc_release, WEFT_EPERM);
  CHECK_RC(o.rc_try, WEFT_EBUSY);
  CHECK_EQ(weft_lock_locked(&l), 1); /* the failed release changed nothing */
  CHECK_OK(weft_lock_release(&l));
  CHECK_EQ(weft_lock_locked(&l), 0);
  CHECK_RC(weft_lock_release(&l), WEFT_EPERM); /* twice */
  CHECK_OK(weft_lock_try_acquire(&l));
  CHECK_EQ(weft_lock_locked(&l), 1);
  CHECK_OK(weft_lock_release(&l));
  /* The static lock works in a task too. */
  CHECK_OK(weft_lock_acquire(&static_lock));
  CHECK_OK(weft_lock_release(&static_lock));
  CHECK_OK(weft_lock_destroy(&l));
  return NULL;
}

static void test_ownership(void **state) {
  (void)state;
  run_in_weft(ownership_main, NULL, 1);
  run_in_weft(ownership_main, NULL, 2);
}

/* ---- blocking acquire, hand-over, free with waiters ------------------------ */

typedef struct blocker {
  weft_lock_t *l;
  atomic_int trying; /* 1 just before the acquire */
  atomic_int got;   /* 1 once the lock was acquired */
  int rc;           /* acquire's result */
  int held_later;   /* 1 if the task still held it just before releasing */
} blocker_t;

static void *acquire_release(void *arg) {
  blocker_t *b = arg;

  atomic_store(&b->trying, 1);
  b->rc = weft_lock_acquire(b->l);
  if (b->rc != 0)
    return NULL;
  atomic_store(&b->got, 1);
  b->held_later = weft_lock_locked(b->l) == 1;
  CHECK_OK(weft_sleep(2)); /* held across a suspension */
  CHECK_OK(weft_lock_release(b->l));
  return NULL;
}

static void *blocking_main(void *arg) {
  weft_lock_t *l;
  blocker_t b;
  weft_task_t *t;

  (void)arg;
  CHECK_OK(weft_lock_new(&l));
  memset(&b, 0, sizeof b);
  b.l = l;
  CHECK_OK(weft_lock_acquire(l));
  CHECK_OK(weft_spawn(acquire_release, &b, &t));
  HARNESS_WAIT_PARKED(b.trying);
  CHECK_EQ(atomic_load(&b.got), 0);
  CHECK_EQ(weft_task_done(t), 0);
  CHECK_RC(weft_lock_free(l), WEFT_EBUSY);
  CHECK_OK(weft_lock_release(l));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(b.rc);
  CHECK_EQ(atomic_load(&b.got), 1);
  CHECK_EQ(b.held_later, 1);
  CHECK_EQ(weft_lock_locked(l), 0);
  CHECK_OK(weft_lock_free(l));
  return NULL;
}

static void test_blocking_handover(void **state) {
  (void)state;
  run_in_weft(blocking_main, NULL, 1);
  run_in_weft(blocking_main, NULL, 2);
}

/* ---- FIFO order of waiters, no barging ------------------------------------- */

#define N_FIFO 6

typedef struct fifo {
  weft_lock_t l;
  atomic_int next;     /* order of acquisition */
  int order[N_FIFO];   /* order[i]: when waiter i got the lock */
  atomic_int arrived;  /* waiters about to call acquire */
} fifo_t;

typedef struct fifo_arg {
  fifo_t *f;
  int i;
} fifo_arg_t;

static void *fifo_waiter(void *arg) {
  fifo_arg_t *a = arg;

  atomic_fetch_add(&a->f->arrived, 1);
  CHECK_OK(weft_lock_acquire(&a->f->l));
  a->f->order[a->i] = atomic_fetch_add(&a->f->next, 1);
  CHECK_OK(weft_lock_release(&a->f->l));
  return NULL;
}

static void *fifo_main(void *arg) {
  int deterministic = arg != NULL;
  fifo_t f;
  fifo_arg_t a[N_FIFO];
  weft_task_t *t[N_FIFO];
  int i;

  memset(&f, 0, sizeof f);
  CHECK_OK(weft_lock_init(&f.l));
  CHECK_OK(weft_lock_acquire(&f.l));
  for (i = 0; i < N_FIFO; i++) {
    a[i].f = &f;
    a[i].i = i;
    CHECK_OK(weft_spawn(fifo_waiter, &a[i], &t[i]));
    /* Deterministic mode runs the new task at the creator's next suspension,
     * in spawn order; with several workers, wait until it reached its
     * acquire (and a little more: the lock shows no waiter count). */
    if (deterministic)
      CHECK_OK(weft_yield());
    else if (HARNESS_WAIT(atomic_load(&f.arrived) == i + 1))
      harness_settle();
  }
  CHECK_EQ(atomic_load(&f.arrived), N_FIFO);
  /* Release hands the lock to waiter 0 at once: nobody can barge in. */
  CHECK_OK(weft_lock_release(&f.l));
  CHECK_RC(weft_lock_try_acquire(&f.l), WEFT_EBUSY);
  /* main queues behind all of them. */
  CHECK_OK(weft_lock_acquire(&f.l));
  CHECK_EQ(atomic_load(&f.next), N_FIFO);
  CHECK_OK(weft_lock_release(&f.l));
  CHECK_OK(weft_gather(t, N_FIFO, NULL));
  for (i = 0; i < N_FIFO; i++) {
    CHECK_EQ(f.order[i], i);
    weft_task_unref(t[i]);
  }
  CHECK_OK(weft_lock_destroy(&f.l));
  return NULL;
}

static void test_fifo_no_barging(void **state) {
  (void)state;
  run_in_weft_deterministic(fifo_main, (void *)1);
  run_in_weft(fifo_main, NULL, 3);
}

/* ---- cancelling a waiter ---------------------------------------------------- */

static void *cancel_main(void *arg) {
  weft_lock_t l = WEFT_LOCK_INITIALIZER;
  blocker_t b1, b2;
  weft_task_t *t1, *t2;

  (void)arg;
  memset(&b1, 0, sizeof b1);
  memset(&b2, 0, sizeof b2);
  b1.l = b2.l = &l;
  CHECK_OK(weft_lock_acquire(&l));
  CHECK_OK(weft_spawn(acquire_release, &b1, &t1));
  HARNESS_WAIT_PARKED(b1.trying);
  CHECK_OK(weft_spawn(acquire_release, &b2, &t2));
  HARNESS_WAIT_PARKED(b2.trying);
  /* Cancel the oldest waiter: it takes nothing, the next one is served. */
  CHECK_EQ(weft_task_cancel(t1), 1);
  CHECK_RC(weft_task_await(t1, NULL), WEFT_ECANCELED);
  CHECK_RC(b1.rc, WEFT_ECANCELED);
  CHECK_EQ(atomic_load(&b1.got), 0);
  CHECK_EQ(weft_lock_locked(&l), 1);
  CHECK_OK(weft_lock_release(&l));
  CHECK_OK(weft_task_await(t2, NULL));
  CHECK_OK(b2.rc);
  CHECK_EQ(atomic_load(&b2.got), 1);
  weft_task_unref(t1);
  weft_task_unref(t2);

  /* The only waiter cancelled: the next release leaves the lock free. */
  memset(&b1, 0, sizeof b1);
  b1.l = &l;
  CHECK_OK(weft_lock_acquire(&l));
  CHECK_OK(weft_spawn(acquire_release, &b1, &t1));
  HARNESS_WAIT_PARKED(b1.trying);
  CHECK_EQ(weft_task_cancel(t1), 1);
  CHECK_RC(weft_task_await(t1, NULL), WEFT_ECANCELED);
  weft_task_unref(t1);
  CHECK_OK(weft_lock_release(&l));
  CHECK_EQ(weft_lock_locked(&l), 0);
  CHECK_OK(weft_lock_try_acquire(&l));
  CHECK_OK(weft_lock_release(&l));

  /* A pending cancellation makes a contended acquire fail at once, but an
   * uncontended one succeeds (it does not suspend). */
  CHECK_EQ(weft_task_cancel(weft_task_current()), 1);
  CHECK_OK(weft_lock_acquire(&l));
  CHECK_OK(weft_lock_release(&l));
  CHECK_RC(weft_sleep(1), WEFT_ECANCELED);
  CHECK_EQ(weft_task_uncancel(), 0);
  CHECK_OK(weft_lock_destroy(&l));
  return NULL;
}

static void test_cancel_waiter(void **state) {
  (void)state;
  run_in_weft(cancel_main, NULL, 1);
  run_in_weft(cancel_main, NULL, 2);
}

/* ---- cancellation racing the hand-over ------------------------------------- */

/* harness_race_test: the waiter acquires the lock the driver holds; the
 * grant is the driver's release, handed over to the waiter. */
static void race_arm(void *ctx, int i) {
  weft_lock_t *l = ctx;

  (void)i;
  CHECK_OK(weft_lock_acquire(l));
}

static int race_wait(void *ctx) {
  weft_lock_t *l = ctx;
  int rc = weft_lock_acquire(l);

  if (rc == 0) {
    /* A waiter that was granted the lock holds it, cancelled or not. */
    CHECK_EQ(weft_lock_locked(l), 1);
    CHECK_OK(weft_lock_release(l));
  } else {
    CHECK_RC(rc, WEFT_ECANCELED);
  }
  return rc;
}

static void race_grant(void *ctx) {
  weft_lock_t *l = ctx;
  CHECK_OK(weft_lock_release(l));
}

static void race_check(void *ctx, int rc) {
  weft_lock_t *l = ctx;

  (void)rc;
  /* Either way the lock is free again: never handed to a waiter that left,
   * never lost. */
  CHECK_EQ(weft_lock_locked(l), 0);
}

static void test_cancel_races_grant(void **state) {
  weft_lock_t l;
  harness_race_t race = {.what = "lock release",
                         .rounds = HARNESS_SIZE(2000, 300, 800),
                         .grant_is_sync = 1,
                         .ctx = &l,
                         .arm = race_arm,
                         .wait = race_wait,
                         .grant = race_grant,
                         .check = race_check};

  (void)state;
  assert_int_equal(weft_lock_init(&l), 0);
  harness_race_test(&race);
  assert_int_equal(weft_lock_destroy(&l), 0);
}

/* ---- a waiter cancelled before the release does not get the lock ---- */

/* Defect 9 of issue 11: the release used to hand the lock to a waiter whose
 * cancel() had already returned. Deterministic mode makes the window
 * certain: the cancelled task cannot run before the release. */
typedef struct cl_waiter {
  weft_lock_t *l;
  atomic_int started;
  int rc;
} cl_waiter_t;

static void *cl_acquire(void *arg) {
  cl_waiter_t *w = arg;

  atomic_store(&w->started, 1);
  w->rc = weft_lock_acquire(w->l);
  if (w->rc == 0)
    CHECK_OK(weft_lock_release(w->l));
  return NULL;
}

static weft_task_t *cl_spawn_waiting(cl_waiter_t *w) {
  w->rc = 1;
  return harness_spawn_waiting(cl_acquire, w, &w->started);
}

static void *cancelled_waiter_main(void *arg) {
  weft_lock_t l;
  cl_waiter_t a = {0}, b = {0};
  weft_task_t *ta, *tb;

  (void)arg;
  CHECK_OK(weft_lock_init(&l));
  a.l = b.l = &l;
  /* Alone: the release leaves the lock free. */
  CHECK_OK(weft_lock_acquire(&l));
  ta = cl_spawn_waiting(&a);
  CHECK_EQ(weft_task_cancel(ta), 1);
  CHECK_OK(weft_lock_release(&l));
  CHECK_EQ(weft_lock_locked(&l), 0);
  CHECK_OK(weft_lock_try_acquire(&l)); /* nobody took it */
  CHECK_OK(weft_lock_release(&l));
  CHECK_RC(weft_task_await(ta, NULL), WEFT_ECANCELED);
  CHECK_RC(a.rc, WEFT_ECANCELED);
  weft_task_unref(ta);
  /* Behind a cancelled waiter, the next one gets it. */
  CHECK_OK(weft_lock_acquire(&l));
  ta = cl_spawn_waiting(&a);
  tb = cl_spawn_waiting(&b);
  CHECK_EQ(weft_task_cancel(ta), 1);
  CHECK_OK(weft_lock_release(&l));
  CHECK_RC(weft_task_await(ta, NULL), WEFT_ECANCELED);
  CHECK_OK(weft_task_await(tb, NULL));
  CHECK_RC(a.rc, WEFT_ECANCELED);
  CHECK_RC(b.rc, 0);
  CHECK_EQ(weft_lock_locked(&l), 0);
  weft_task_unref(ta);
  weft_task_unref(tb);
  CHECK_OK(weft_lock_destroy(&l));
  return NULL;
}

static void test_cancelled_waiter_not_granted(void **state) {
  (void)state;
  run_in_weft_deterministic(cancelled_waiter_main, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outside_and_errors),
      cmocka_unit_test(test_ownership),
      cmocka_unit_test(test_blocking_handover),
      cmocka_unit_test(test_fifo_no_barging),
      cmocka_unit_test(test_cancel_waiter),
      cmocka_unit_test(test_cancel_races_grant),
      cmocka_unit_test(test_cancelled_waiter_not_granted),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
