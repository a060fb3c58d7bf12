/*
 * api_barrier: weft_barrier_* (asyncio.Barrier): every error path, indices
 * 0..parties-1 once per cycle over many cycles on 4 workers, abort and
 * reset (WEFT_EBROKEN), a cancelled waiter leaving the cycle, and
 * cancellation racing the release.
 */
#include "harness.h"

static void test_outside_and_errors(void **state) {
  weft_barrier_t *b = NULL;
  weft_barrier_t embedded;

  (void)state;
  assert_int_equal(weft_barrier_init(NULL, 2), WEFT_EINVAL);
  assert_int_equal(weft_barrier_init(&embedded, 0), WEFT_EINVAL);
  assert_int_equal(weft_barrier_destroy(NULL), WEFT_EINVAL);
  assert_int_equal(weft_barrier_new(2, NULL), WEFT_EINVAL);
  assert_int_equal(weft_barrier_new(0, &b), WEFT_EINVAL);
  assert_int_equal(weft_barrier_free(NULL), 0);
  assert_int_equal(weft_barrier_wait(NULL), WEFT_EINVAL);
  assert_int_equal(weft_barrier_reset(NULL), WEFT_EINVAL);
  assert_int_equal(weft_barrier_abort(NULL), WEFT_EINVAL);
  assert_int_equal(weft_barrier_parties(NULL), WEFT_EINVAL);
  assert_int_equal(weft_barrier_n_waiting(NULL), WEFT_EINVAL);
  assert_int_equal(weft_barrier_broken(NULL), WEFT_EINVAL);

  assert_int_equal(weft_barrier_new(3, &b), 0);
  assert_int_equal(weft_barrier_parties(b), 3);
  assert_int_equal(weft_barrier_n_waiting(b), 0);
  assert_int_equal(weft_barrier_broken(b), 0);
  assert_int_equal(weft_barrier_wait(b), WEFT_ENOTTASK);
  assert_int_equal(weft_barrier_abort(b), 0);
  assert_int_equal(weft_barrier_broken(b), 1);
  assert_int_equal(weft_barrier_reset(b), 0);
  assert_int_equal(weft_barrier_broken(b), 0);
  assert_int_equal(weft_barrier_free(b), 0);
  assert_int_equal(weft_barrier_init(&embedded, 1), 0);
  assert_int_equal(weft_barrier_destroy(&embedded), 0);
}

/* ---- cycles on 4 workers ------------------------------------------------------ */

#define PARTIES 5
#define CYCLES HARNESS_SIZE(2000, 200, 500)

typedef struct cyc {
  weft_barrier_t b;
  atomic_uint seen[CYCLES]; /* bit i: index i was returned in that cycle */
  atomic_int phase[PARTIES];
} cyc_t;

typedef struct cyc_arg {
  cyc_t *c;
  int me;
} cyc_arg_t;

static void *cycler(void *arg) {
  cyc_arg_t *a = arg;
  int k, idx, j;

  for (k = 0; k < CYCLES; k++) {
    atomic_store(&a->c->phase[a->me], k);
    idx = weft_barrier_wait(&a->c->b);
    CHECK(idx >= 0 && idx < PARTIES);
    if (idx < 0 || idx >= PARTIES)
      return NULL;
    /* Nobody is still in an earlier cycle once this one is released. */
    for (j = 0; j < PARTIES; j++)
      CHECK(atomic_load(&a->c->phase[j]) >= k);
    atomic_fetch_or(&a->c->seen[k], 1u << idx);
  }
  return NULL;
}

static void *cycles_main(void *arg) {
  cyc_t *c = arg;
  cyc_arg_t a[PARTIES];
  weft_task_t *t[PARTIES];
  int i, k;

  CHECK_OK(weft_barrier_init(&c->b, PARTIES));
  for (i = 0; i < PARTIES; i++) {
    a[i].c = c;
    a[i].me = i;
    CHECK_OK(weft_spawn(cycler, &a[i], &t[i]));
  }
  CHECK_OK(weft_gather(t, PARTIES, NULL));
  for (i = 0; i < PARTIES; i++)
    weft_task_unref(t[i]);
  for (k = 0; k < CYCLES; k++)
    CHECK_EQ(atomic_load(&c->seen[k]), (1u << PARTIES) - 1);
  CHECK_EQ(weft_barrier_n_waiting(&c->b), 0);
  CHECK_OK(weft_barrier_destroy(&c->b));
  return NULL;
}

static void test_cycles(void **state) {
  static cyc_t c;

  (void)state;
  memset(&c, 0, sizeof c);
  run_in_weft(cycles_main, &c, 4);
  memset(&c, 0, sizeof c);
  run_in_weft(cycles_main, &c, 1);
}

/* ---- abort, reset, and a single party ----------------------------------------- */

static void *wait_rc(void *arg) {
  return (void *)(intptr_t)weft_barrier_wait(arg);
}

static void *abort_main(void *arg) {
  weft_barrier_t b;
  weft_task_t *t[2];
  void *r;
  int i;

  (void)arg;
  /* parties 1: never suspends, always index 0. */
  CHECK_OK(weft_barrier_init(&b, 1));
  CHECK_EQ(weft_barrier_wait(&b), 0);
  CHECK_EQ(weft_barrier_wait(&b), 0);
  CHECK_OK(weft_barrier_destroy(&b));

  CHECK_OK(weft_barrier_init(&b, 3));
  for (i = 0; i < 2; i++)
    CHECK_OK(weft_spawn(wait_rc, &b, &t[i]));
  HARNESS_WAIT(weft_barrier_n_waiting(&b) == 2); /* the abort follows anyway */
  CHECK_EQ(weft_barrier_n_waiting(&b), 2);
  CHECK_RC(weft_barrier_destroy(&b), WEFT_EBUSY);
  CHECK_OK(weft_barrier_abort(&b));
  for (i = 0; i < 2; i++) {
    CHECK_OK(weft_task_await(t[i], &r));
    CHECK_RC((intptr_t)r, WEFT_EBROKEN);
    weft_task_unref(t[i]);
  }
  CHECK_EQ(weft_barrier_broken(&b), 1);
  CHECK_EQ(weft_barrier_n_waiting(&b), 0);
  CHECK_RC(weft_barrier_wait(&b), WEFT_EBROKEN);
  CHECK_OK(weft_barrier_reset(&b));
  CHECK_EQ(weft_barrier_broken(&b), 0);

  /* reset() with waiters: they get WEFT_EBROKEN, the barrier stays usable. */
  for (i = 0; i < 2; i++)
    CHECK_OK(weft_spawn(wait_rc, &b, &t[i]));
  HARNESS_WAIT(weft_barrier_n_waiting(&b) == 2); /* the reset follows anyway */
  CHECK_OK(weft_barrier_reset(&b));
  for (i = 0; i < 2; i++) {
    CHECK_OK(weft_task_await(t[i], &r));
    CHECK_RC((intptr_t)r, WEFT_EBROKEN);
    weft_task_unref(t[i]);
  }
  CHECK_EQ(weft_barrier_broken(&b), 0);
  /* Indices follow arrival order. */
  for (i = 0; i < 2; i++) {
    CHECK_OK(weft_spawn(wait_rc, &b, &t[i]));
    if (!HARNESS_WAIT(weft_barrier_n_waiting(&b) == i + 1))
      CHECK_OK(weft_barrier_abort(&b)); /* so that nobody waits forever */
  }
  CHECK_EQ(weft_barrier_wait(&b), 2);
  for (i = 0; i < 2; i++) {
    CHECK_OK(weft_task_await(t[i], &r));
    CHECK_EQ((intptr_t)r, i);
    weft_task_unref(t[i]);
  }
  CHECK_OK(weft_barrier_destroy(&b));
  return NULL;
}

static void test_abort_reset(void **state) {
  (void)state;
  run_in_weft(abort_main, NULL, 1);
  run_in_weft(abort_main, NULL, 3);
}

/* ---- a cancelled waiter leaves the cycle ------------------------------------ */

static void *cancel_main(void *arg) {
  weft_barrier_t b;
  weft_task_t *t[4];
  void *r;
  int i, mask = 0;

  (void)arg;
  CHECK_OK(weft_barrier_init(&b, 3));
  CHECK_OK(weft_spawn(wait_rc, &b, &t[0]));
  HARNESS_WAIT(weft_barrier_n_waiting(&b) == 1);
  CHECK_OK(weft_spawn(wait_rc, &b, &t[1]));
  HARNESS_WAIT(weft_barrier_n_waiting(&b) == 2);
  CHECK_EQ(weft_barrier_n_waiting(&b), 2);
  CHECK_EQ(weft_task_cancel(t[0]), 1);
  CHECK_RC(weft_task_await(t[0], &r), WEFT_ECANCELED);
  CHECK_EQ(weft_barrier_n_waiting(&b), 1);
  CHECK_EQ(weft_barrier_broken(&b), 0);
  CHECK_OK(weft_spawn(wait_rc, &b, &t[2]));
  if (!HARNESS_WAIT(weft_barrier_n_waiting(&b) == 2))
    CHECK_OK(weft_barrier_abort(&b)); /* so that nobody waits forever */
  CHECK_EQ(weft_task_done(t[2]), 0);
  /* The third arrival completes the cycle: indices 0, 1, 2 once each. */
  CHECK_OK(weft_spawn(wait_rc, &b, &t[3]));
  for (i = 1; i < 4; i++) {
    CHECK_OK(weft_task_await(t[i], &r));
    CHECK((intptr_t)r >= 0 && (intptr_t)r < 3);
    mask |= 1 << (intptr_t)r;
  }
  CHECK_EQ(mask, 7);
  for (i = 0; i < 4; i++)
    weft_task_unref(t[i]);
  CHECK_OK(weft_barrier_destroy(&b));
  return NULL;
}

static void test_cancel_leaves_cycle(void **state) {
  (void)state;
  run_in_weft(cancel_main, NULL, 1);
  run_in_weft(cancel_main, NULL, 2);
}

/* ---- cancellation racing the release ------------------------------------------ */

/* harness_race_test: the waiter (t[0]) waits at a barrier of two; the
 * grant is a second task's arrival (t[1], started on another worker), which
 * releases it while the driver cancels it. The grant is asynchronous (t[1]
 * arrives on its own worker after its flag), so a grant-first round is a
 * true race and only the counts are reported. */
typedef struct race {
  weft_barrier_t b;
  atomic_int arrived; /* t[1] is at its call */
  int rc1;            /* t[1]'s result */
  int i;              /* the round */
  weft_task_t *other; /* t[1] */
} race_t;

static void race_arm(void *ctx, int i) {
  race_t *r = ctx;

  atomic_store(&r->arrived, 0);
  r->rc1 = 1000;
  r->i = i;
}

static int race_wait(void *ctx) {
  race_t *r = ctx;
  return weft_barrier_wait(&r->b);
}

static void *race_other(void *ctx) {
  race_t *r = ctx;

  atomic_store(&r->arrived, 1);
  r->rc1 = weft_barrier_wait(&r->b);
  return NULL;
}

static void race_grant(void *ctx) {
  race_t *r = ctx;

  double spin_end;

  CHECK_OK(harness_spawn_elsewhere(race_other, r, r->i + 1, &r->other));
  /* Spin, without suspending, until t[1] is at its call, so that a
   * cancellation that follows lands within a few hundred ns of its arrival
   * (a photo finish); bounded, then wait as usual. */
  spin_end = harness_now_ms() + 50.0;
  while (!atomic_load(&r->arrived) && harness_now_ms() < spin_end) {
  }
  HARNESS_WAIT(atomic_load(&r->arrived));
}

static void race_check(void *ctx, int rc) {
  race_t *r = ctx;

  if (rc == WEFT_ECANCELED) {
    /* t[0] left before the release: t[1] waits alone (or is about to);
     * the driver completes the cycle with it. */
    int mine = weft_barrier_wait(&r->b);
    CHECK_OK(weft_task_await(r->other, NULL));
    CHECK(mine == 0 || mine == 1);
    CHECK_EQ(r->rc1, 1 - mine);
  } else {
    /* Released with t[1] (the release wins over the cancellation). */
    CHECK(rc == 0 || rc == 1);
    CHECK_OK(weft_task_await(r->other, NULL));
    CHECK_EQ(r->rc1, 1 - rc);
  }
  weft_task_unref(r->other);
  CHECK_EQ(weft_barrier_n_waiting(&r->b), 0);
}

static void test_cancel_races_release(void **state) {
  race_t r;
  harness_race_t race = {.what = "barrier release",
                         .rounds = HARNESS_SIZE(2000, 200, 600),
                         .ctx = &r,
                         .arm = race_arm,
                         .wait = race_wait,
                         .grant = race_grant,
                         .check = race_check};

  (void)state;
  memset(&r, 0, sizeof r);
  assert_int_equal(weft_barrier_init(&r.b, 2), 0);
  harness_race_test(&race);
  assert_int_equal(weft_barrier_destroy(&r.b), 0);
}

/* ---- a waiter cancelled before the last arrival is not released ---- */

/* Defect 9 of issue 11: the arrival that completed the cycle used to count
 * and release a waiter whose cancel() had already returned. Now that waiter
 * does not count: the arrival waits for a real party. Deterministic mode
 * makes the window certain. */
typedef struct cb_waiter {
  weft_barrier_t *b;
  atomic_int started;
  int rc;
} cb_waiter_t;

static void *cb_wait(void *arg) {
  cb_waiter_t *w = arg;

  atomic_store(&w->started, 1);
  w->rc = weft_barrier_wait(w->b);
  return NULL;
}

static weft_task_t *cb_spawn_waiting(cb_waiter_t *w) {
  w->rc = 1;
  return harness_spawn_waiting(cb_wait, w, &w->started);
}

static void *cancelled_waiter_main(void *arg) {
  weft_barrier_t b;
  cb_waiter_t a = {0}, c = {0};
  weft_task_t *ta, *tc;
  int rc;

  (void)arg;
  CHECK_OK(weft_barrier_init(&b, 2));
  a.b = c.b = &b;
  ta = cb_spawn_waiting(&a);
  CHECK_EQ(weft_task_done(ta), 0);
  CHECK_EQ(weft_task_cancel(ta), 1);
  CHECK_EQ(weft_barrier_n_waiting(&b), 0); /* a cancelled waiter is gone */
  tc = cb_spawn_waiting(&c);               /* must wait for a real party */
  CHECK_RC(weft_task_await(ta, NULL), WEFT_ECANCELED);
  CHECK_RC(a.rc, WEFT_ECANCELED);
  CHECK_EQ(weft_task_done(tc), 0);
  CHECK_EQ(weft_barrier_n_waiting(&b), 1);
  if (weft_barrier_n_waiting(&b) == 1) {
    rc = weft_barrier_wait(&b);
    CHECK(rc == 0 || rc == 1);
  } else {
    weft_barrier_reset(&b); /* a failed check ends the test */
  }
  CHECK_OK(weft_task_await(tc, NULL));
  CHECK(c.rc == 0 || c.rc == 1);
  weft_task_unref(ta);
  weft_task_unref(tc);
  CHECK_OK(weft_barrier_destroy(&b));
  return NULL;
}

static void test_cancelled_waiter_not_released(void **state) {
  (void)state;
  run_in_weft_deterministic(cancelled_waiter_main, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outside_and_errors),
      cmocka_unit_test(test_cycles),
      cmocka_unit_test(test_abort_reset),
      cmocka_unit_test(test_cancel_leaves_cycle),
      cmocka_unit_test(test_cancel_races_release),
      cmocka_unit_test(test_cancelled_waiter_not_released),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
