/*
 * api_waitset: weft_wait() (asyncio.wait) in its three modes, with and
 * without a timeout (which never cancels the tasks), the waiter cancelled,
 * every argument error, many tasks on every worker; and weft_as_completed
 * (asyncio.as_completed): completion order in deterministic mode, tasks
 * already finished, the timeout (sticky), cancellation of the iterating
 * task, the errors; and a stress loop racing completions with timeouts and
 * cancellations on 2 and 4 workers.
 */
#include "harness.h"

#define PROMPT_MS HARNESS_PROMPT_MS
#define LONG_MS (600u * 1000u)

typedef struct job {
  uint64_t sleep_ms;
  int fail;
  atomic_int rc;
  atomic_int finished; /* its sleep ended */
  atomic_int *gate;    /* if set, it waits for *gate != 0 before sleeping */
} job_t;

static void *run_job(void *arg) {
  job_t *j = arg;
  if (j->gate)
    HARNESS_WAIT(atomic_load(j->gate) != 0);
  int rc = weft_sleep(j->sleep_ms);
  atomic_store(&j->rc, rc);
  atomic_store(&j->finished, 1);
  if (rc != 0)
    return NULL;
  return j->fail ? weft_task_fail(j->fail) : (void *)(uintptr_t)1;
}

static void spawn_jobs(job_t *jobs, weft_task_t **t, size_t n) {
  for (size_t i = 0; i < n; i++)
    CHECK_OK(weft_spawn(run_job, &jobs[i], &t[i]));
}

static void finish_all(weft_task_t **t, size_t n) {
  for (size_t i = 0; i < n; i++) {
    weft_task_cancel(t[i]);
    (void)weft_task_await(t[i], NULL);
    weft_task_unref(t[i]);
  }
}

/* ---- weft_wait: the three modes ---------------------------------------- */

static void *modes_main(void *arg) {
  (void)arg;
  job_t jobs[3];
  weft_task_t *t[3];
  int done[3];
  double t0;

  /* FIRST_COMPLETED: the 10 ms one; the others keep running. */
  memset(jobs, 0, sizeof jobs);
  jobs[0].sleep_ms = LONG_MS;
  jobs[1].sleep_ms = 10;
  jobs[2].sleep_ms = LONG_MS;
  spawn_jobs(jobs, t, 3);
  t0 = harness_now_ms();
  CHECK_EQ(weft_wait(t, 3, WEFT_FIRST_COMPLETED, WEFT_NO_TIMEOUT, done), 1);
  CHECK(harness_now_ms() - t0 >= 9.0);
  CHECK(harness_now_ms() - t0 < PROMPT_MS);
  CHECK(done[0] == 0 && done[1] == 1 && done[2] == 0);
  CHECK_EQ(weft_task_done(t[0]), 0);
  /* Already satisfied: at once, without suspending. */
  CHECK_EQ(weft_wait(t, 3, WEFT_FIRST_COMPLETED, WEFT_NO_TIMEOUT, NULL), 1);
  finish_all(t, 3);

  /* FIRST_EXCEPTION: returns at the failure, not at the success. */
  memset(jobs, 0, sizeof jobs);
  jobs[0].sleep_ms = 5;
  jobs[1].sleep_ms = 40;
  jobs[1].fail = WEFT_EIO;
  jobs[1].gate = &jobs[0].finished; /* fails after the success */
  jobs[2].sleep_ms = LONG_MS;
  spawn_jobs(jobs, t, 3);
  t0 = harness_now_ms();
  CHECK_EQ(weft_wait(t, 3, WEFT_FIRST_EXCEPTION, WEFT_NO_TIMEOUT, done), 2);
  CHECK(harness_now_ms() - t0 >= 39.0);
  CHECK(done[0] == 1 && done[1] == 1 && done[2] == 0);
  CHECK_RC(weft_task_result(t[1], NULL), WEFT_EIO);
  finish_all(t, 3);

  /* FIRST_EXCEPTION: a cancelled task is no failure; without a failure it
   * is ALL_COMPLETED. */
  memset(jobs, 0, sizeof jobs);
  jobs[0].sleep_ms = LONG_MS;
  jobs[1].sleep_ms = 30;
  jobs[2].sleep_ms = 10;
  spawn_jobs(jobs, t, 3);
  CHECK_EQ(weft_task_cancel(t[0]), 1);
  t0 = harness_now_ms();
  CHECK_EQ(weft_wait(t, 3, WEFT_FIRST_EXCEPTION, WEFT_NO_TIMEOUT, done), 3);
  CHECK(harness_now_ms() - t0 >= 29.0);
  CHECK(done[0] && done[1] && done[2]);
  finish_all(t, 3);

  /* ALL_COMPLETED: the longest one, concurrently. */
  memset(jobs, 0, sizeof jobs);
  jobs[0].sleep_ms = 30;
  jobs[1].sleep_ms = 10;
  jobs[2].sleep_ms = 20;
  jobs[2].fail = WEFT_EPIPE;
  spawn_jobs(jobs, t, 3);
  t0 = harness_now_ms();
  CHECK_EQ(weft_wait(t, 3, WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT, done), 3);
  CHECK(harness_now_ms() - t0 >= 29.0);
  CHECK(harness_now_ms() - t0 < 30.0 + PROMPT_MS);
  CHECK(done[0] && done[1] && done[2]);
  /* A task twice. */
  weft_task_t *twice[2] = {t[0], t[0]};
  CHECK_EQ(weft_wait(twice, 2, WEFT_ALL_COMPLETED, 0, done), 2);
  finish_all(t, 3);
  return NULL;
}

static void test_modes(void **state) {
  (void)state;
  run_in_weft(modes_main, NULL, 1);
  run_in_weft(modes_main, NULL, 2);
  run_in_weft(modes_main, NULL, 4);
}

/* ---- timeouts: what is done, nothing cancelled --------------------------- */

static void *timeout_main(void *arg) {
  (void)arg;
  job_t jobs[2];
  weft_task_t *t[2];
  int done[2] = {-1, -1};
  atomic_int go;
  memset(jobs, 0, sizeof jobs);
  atomic_init(&go, 0);
  jobs[0].sleep_ms = 10;
  jobs[0].gate = &go; /* not done before the look below */
  jobs[1].sleep_ms = LONG_MS;
  spawn_jobs(jobs, t, 2);
  /* timeout 0: look only. */
  CHECK_EQ(weft_wait(t, 2, WEFT_ALL_COMPLETED, 0, done), 0);
  CHECK(done[0] == 0 && done[1] == 0);
  /* Then the timeout passes with job 0 done (however slowly it gets
   * there) and job 1 still sleeping. */
  atomic_store(&go, 1);
  HARNESS_WAIT(weft_task_done(t[0]));
  double t0 = harness_now_ms();
  CHECK_EQ(weft_wait(t, 2, WEFT_ALL_COMPLETED, 60, done), 1);
  double el = harness_now_ms() - t0;
  CHECK(el >= 59.0);
  CHECK(el < 60.0 + PROMPT_MS);
  CHECK(done[0] == 1 && done[1] == 0);
  CHECK_EQ(weft_task_done(t[1]), 0); /* not cancelled */
  CHECK_EQ(weft_task_cancelling(), 0);
  /* FIRST_COMPLETED with a timeout, none completes in time. */
  weft_task_t *one[1] = {t[1]};
  CHECK_EQ(weft_wait(one, 1, WEFT_FIRST_COMPLETED, 20, NULL), 0);
  CHECK_EQ(weft_task_done(t[1]), 0);
  /* A completion before the timeout ends the wait early. */
  jobs[0].sleep_ms = 10;
  weft_task_t *u;
  CHECK_OK(weft_spawn(run_job, &jobs[0], &u));
  weft_task_t *two[2] = {t[1], u};
  t0 = harness_now_ms();
  CHECK_EQ(weft_wait(two, 2, WEFT_FIRST_COMPLETED, 600000, done), 1);
  CHECK(harness_now_ms() - t0 < 10.0 + PROMPT_MS);
  CHECK(done[0] == 0 && done[1] == 1);
  weft_task_unref(u);
  finish_all(t, 2);
  return NULL;
}

static void test_timeout(void **state) {
  (void)state;
  run_in_weft(timeout_main, NULL, 1);
  run_in_weft(timeout_main, NULL, 3);
}

/* ---- the waiting task cancelled: the tasks run on ------------------------ */

typedef struct waiter_arg {
  weft_task_t **t;
  size_t n;
  atomic_int started;
  atomic_int rc;
  int done[4];
} waiter_arg_t;

static void *waiter_body(void *arg) {
  waiter_arg_t *w = arg;
  atomic_store(&w->started, 1);
  atomic_store(&w->rc, weft_wait(w->t, w->n, WEFT_ALL_COMPLETED,
                                 WEFT_NO_TIMEOUT, w->done));
  return NULL;
}

static void *cancel_main(void *arg) {
  (void)arg;
  job_t jobs[3];
  weft_task_t *t[3];
  waiter_arg_t w;
  memset(jobs, 0, sizeof jobs);
  memset(&w, 0, sizeof w);
  jobs[0].sleep_ms = 1;
  jobs[1].sleep_ms = LONG_MS;
  jobs[2].sleep_ms = LONG_MS;
  spawn_jobs(jobs, t, 3);
  w.t = t;
  w.n = 3;
  weft_task_t *wt;
  CHECK_OK(harness_spawn_pinned(waiter_body, &w, 0, &wt));
  HARNESS_WAIT(atomic_load(&w.started));
  /* Cancel once the short job has finished (a fixed sleep raced with it
   * on a loaded machine), so done[] must show exactly that one. */
  HARNESS_WAIT(weft_task_done(t[0]));
  harness_settle();
  double t0 = harness_now_ms();
  CHECK_EQ(weft_task_cancel(wt), 1);
  CHECK_RC(weft_task_await(wt, NULL), WEFT_ECANCELED);
  CHECK(harness_now_ms() - t0 < PROMPT_MS);
  CHECK_RC(atomic_load(&w.rc), WEFT_ECANCELED);
  CHECK(w.done[0] == 1 && w.done[1] == 0 && w.done[2] == 0);
  CHECK_EQ(weft_task_done(t[1]), 0);
  CHECK_EQ(weft_task_done(t[2]), 0);
  weft_task_unref(wt);
  finish_all(t, 3);
  return NULL;
}

static void test_cancel_waiter(void **state) {
  (void)state;
  run_in_weft(cancel_main, NULL, 1);
  run_in_weft(cancel_main, NULL, 2);
  run_in_weft(cancel_main, NULL, 4);
}

/* ---- errors ----------------------------------------------------------------
 */

static void *errors_main(void *arg) {
  (void)arg;
  job_t jobs[2];
  weft_task_t *t[3];
  memset(jobs, 0, sizeof jobs);
  spawn_jobs(jobs, t, 2);
  CHECK_RC(weft_wait(NULL, 2, WEFT_ALL_COMPLETED, 0, NULL), WEFT_EINVAL);
  CHECK_RC(weft_wait(t, 0, WEFT_ALL_COMPLETED, 0, NULL), WEFT_EINVAL);
  CHECK_RC(weft_wait(t, 2, (weft_wait_how_t)0, 0, NULL), WEFT_EINVAL);
  CHECK_RC(weft_wait(t, 2, (weft_wait_how_t)4, 0, NULL), WEFT_EINVAL);
  t[2] = NULL;
  CHECK_RC(weft_wait(t, 3, WEFT_ALL_COMPLETED, 0, NULL), WEFT_EINVAL);
  t[2] = weft_task_current();
  CHECK_RC(weft_wait(t, 3, WEFT_ALL_COMPLETED, 0, NULL), WEFT_EDEADLK);

  weft_as_completed_t it;
  weft_task_t *got;
  CHECK_RC(weft_as_completed_init(NULL, t, 2, 0), WEFT_EINVAL);
  CHECK_RC(weft_as_completed_init(&it, NULL, 2, 0), WEFT_EINVAL);
  CHECK_RC(weft_as_completed_init(&it, t, 3, 0), WEFT_EDEADLK);
  t[2] = NULL;
  CHECK_RC(weft_as_completed_init(&it, t, 3, 0), WEFT_EINVAL);
  CHECK_RC(weft_as_completed_next(NULL, &got), WEFT_EINVAL);
  CHECK_RC(weft_as_completed_destroy(NULL), WEFT_EINVAL);
  /* An empty iteration ends at once. */
  CHECK_OK(weft_as_completed_init(&it, NULL, 0, WEFT_NO_TIMEOUT));
  CHECK_RC(weft_as_completed_next(&it, NULL), WEFT_EINVAL);
  CHECK_RC(weft_as_completed_next(&it, &got), WEFT_EOF);
  CHECK_OK(weft_as_completed_destroy(&it));
  CHECK_EQ(weft_wait(t, 2, WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT, NULL), 2);
  finish_all(t, 2);
  return NULL;
}

typedef struct foreign_next {
  weft_as_completed_t *it;
} foreign_next_t;

static void *next_from_other(void *arg) {
  foreign_next_t *f = arg;
  weft_task_t *got;
  CHECK_RC(weft_as_completed_next(f->it, &got), WEFT_EPERM);
  return NULL;
}

static void *eperm_main(void *arg) {
  (void)arg;
  job_t job;
  weft_task_t *t;
  memset(&job, 0, sizeof job);
  job.sleep_ms = 1;
  spawn_jobs(&job, &t, 1);
  weft_as_completed_t it;
  CHECK_OK(weft_as_completed_init(&it, &t, 1, WEFT_NO_TIMEOUT));
  foreign_next_t f = {&it};
  weft_task_t *o;
  CHECK_OK(weft_spawn(next_from_other, &f, &o));
  CHECK_OK(weft_task_await(o, NULL));
  weft_task_unref(o);
  weft_task_t *got = NULL;
  CHECK_OK(weft_as_completed_next(&it, &got));
  CHECK(got == t);
  CHECK_OK(weft_as_completed_destroy(&it));
  finish_all(&t, 1);
  return NULL;
}

static void test_errors(void **state) {
  (void)state;
  weft_task_t *none[1] = {NULL};
  weft_as_completed_t it;
  assert_int_equal(weft_wait(none, 1, WEFT_ALL_COMPLETED, 0, NULL),
                   WEFT_EINVAL);
  assert_int_equal(weft_as_completed_init(&it, NULL, 0, 0), WEFT_ENOTTASK);
  run_in_weft(errors_main, NULL, 1);
  run_in_weft(eperm_main, NULL, 2);
}

/* ---- many tasks, every worker -------------------------------------------- */

static void *spin_task(void *arg) {
  harness_spin_us((double)(uintptr_t)arg);
  return NULL;
}

static void *many_main(void *arg) {
  (void)arg;
  enum { N = 200 };
  weft_task_t *t[N];
  int done[N];
  for (size_t i = 0; i < N; i++)
    CHECK_OK(harness_spawn_pinned(spin_task, (void *)(uintptr_t)(i % 50),
                                  (int)(i % (size_t)weft_worker_count()),
                                  &t[i]));
  CHECK_EQ(weft_wait(t, N, WEFT_ALL_COMPLETED, WEFT_NO_TIMEOUT, done), N);
  for (size_t i = 0; i < N; i++)
    CHECK_EQ(done[i], 1);
  for (size_t i = 0; i < N; i++)
    weft_task_unref(t[i]);
  return NULL;
}

static void test_many(void **state) {
  (void)state;
  run_in_weft(many_main, NULL, 2);
  run_in_weft(many_main, NULL, 4);
}

/* ---- as_completed -------------------------------------------------------- */

static void *order_main(void *arg) {
  (void)arg;
  job_t jobs[5];
  weft_task_t *t[5];
  static const uint64_t ms[5] = {30, 10, 20, 50, 40};
  static const int want[5] = {1, 2, 0, 4, 3};
  memset(jobs, 0, sizeof jobs);
  /* Gaps far above a sanitizer build's scheduling delays: as_completed
   * returns tasks that finished between two calls in array order. */
  for (int i = 0; i < 5; i++)
    jobs[i].sleep_ms = ms[i] * HARNESS_SLOWDOWN;
  spawn_jobs(jobs, t, 5);
  weft_as_completed_t it;
  CHECK_OK(weft_as_completed_init(&it, t, 5, WEFT_NO_TIMEOUT));
  for (int k = 0; k < 5; k++) {
    weft_task_t *got = NULL;
    CHECK_OK(weft_as_completed_next(&it, &got));
    CHECK(got == t[want[k]]);
    CHECK_EQ(weft_task_done(got), 1);
  }
  weft_task_t *got = NULL;
  CHECK_RC(weft_as_completed_next(&it, &got), WEFT_EOF);
  CHECK_RC(weft_as_completed_next(&it, &got), WEFT_EOF);
  CHECK_OK(weft_as_completed_destroy(&it));

  /* All finished already: array order, without waiting. */
  CHECK_OK(weft_as_completed_init(&it, t, 5, 0));
  for (int k = 0; k < 5; k++) {
    CHECK_OK(weft_as_completed_next(&it, &got));
    CHECK(got == t[k]);
  }
  CHECK_RC(weft_as_completed_next(&it, &got), WEFT_EOF);
  CHECK_OK(weft_as_completed_destroy(&it));
  finish_all(t, 5);
  return NULL;
}

static void test_as_completed_order(void **state) {
  (void)state;
  run_in_weft_deterministic(order_main, NULL);
}

static void *ac_timeout_main(void *arg) {
  (void)arg;
  job_t jobs[3];
  weft_task_t *t[3];
  /* The two short jobs must finish inside the timeout: wait until they
   * run, and give the timeout room for a stalled worker. */
  const uint64_t timeout = 80 * HARNESS_SLOWDOWN;
  atomic_int go;
  memset(jobs, 0, sizeof jobs);
  atomic_init(&go, 0);
  jobs[0].sleep_ms = LONG_MS;
  jobs[1].sleep_ms = 10;
  jobs[2].sleep_ms = 20;
  jobs[1].gate = jobs[2].gate = &go;
  spawn_jobs(jobs, t, 3);
  weft_as_completed_t it;
  weft_task_t *got = NULL;
  double t0 = harness_now_ms();
  CHECK_OK(weft_as_completed_init(&it, t, 3, timeout));
  atomic_store(&go, 1);
  CHECK_OK(weft_as_completed_next(&it, &got));
  CHECK(got == t[1] || got == t[2]);
  CHECK_OK(weft_as_completed_next(&it, &got));
  CHECK(got == t[1] || got == t[2]);
  CHECK_RC(weft_as_completed_next(&it, &got), WEFT_ETIMEDOUT);
  double el = harness_now_ms() - t0;
  CHECK(el >= timeout - 1.0);
  CHECK(el < timeout + PROMPT_MS);
  CHECK_RC(weft_as_completed_next(&it, &got), WEFT_ETIMEDOUT); /* sticky */
  CHECK_EQ(weft_task_done(t[0]), 0); /* not cancelled */
  CHECK_EQ(weft_task_cancelling(), 0);
  CHECK_OK(weft_as_completed_destroy(&it));
  finish_all(t, 3);
  return NULL;
}

static void test_as_completed_timeout(void **state) {
  (void)state;
  run_in_weft(ac_timeout_main, NULL, 1);
  run_in_weft(ac_timeout_main, NULL, 4);
  run_in_weft_deterministic(ac_timeout_main, NULL);
}

/* Cancelled in next(): the iterator stays usable. */
typedef struct ac_cancel {
  weft_task_t **t;
  atomic_int phase;
  atomic_int rc1;
  atomic_int rc2;
  weft_task_t *got;
} ac_cancel_t;

static void *ac_cancel_body(void *arg) {
  ac_cancel_t *a = arg;
  weft_as_completed_t it;
  CHECK_OK(weft_as_completed_init(&it, a->t, 2, WEFT_NO_TIMEOUT));
  atomic_store(&a->phase, 1);
  weft_task_t *got = NULL;
  atomic_store(&a->rc1, weft_as_completed_next(&it, &got));
  weft_task_uncancel();
  atomic_store(&a->rc2, weft_as_completed_next(&it, &got));
  a->got = got;
  CHECK_OK(weft_as_completed_destroy(&it));
  return NULL;
}

static void *ac_cancel_main(void *arg) {
  (void)arg;
  job_t jobs[2];
  weft_task_t *t[2];
  ac_cancel_t a;
  memset(jobs, 0, sizeof jobs);
  memset(&a, 0, sizeof a);
  atomic_int go;
  atomic_init(&go, 0);
  jobs[0].sleep_ms = LONG_MS;
  jobs[1].sleep_ms = 150;
  jobs[1].gate = &go; /* completes only after the cancellation */
  spawn_jobs(jobs, t, 2);
  a.t = t;
  weft_task_t *w;
  CHECK_OK(harness_spawn_pinned(ac_cancel_body, &a, 0, &w));
  HARNESS_WAIT_PARKED(a.phase);
  CHECK_EQ(weft_task_cancel(w), 1);
  atomic_store(&go, 1);
  CHECK_OK(weft_task_await(w, NULL));
  CHECK_RC(atomic_load(&a.rc1), WEFT_ECANCELED);
  CHECK_OK(atomic_load(&a.rc2));
  CHECK(a.got == t[1]);
  CHECK_EQ(weft_task_done(t[0]), 0);
  weft_task_unref(w);
  finish_all(t, 2);
  return NULL;
}

static void test_as_completed_cancel(void **state) {
  (void)state;
  run_in_weft(ac_cancel_main, NULL, 1);
  run_in_weft(ac_cancel_main, NULL, 2);
}

/* ---- an iterator that outlives its owner (issue 11) -------------------- */

typedef struct ac_orphan {
  weft_as_completed_t it; /* main's memory: outlives the owner */
  weft_event_t *ev;
  weft_task_t *t[2];
  atomic_int owner_done;
} ac_orphan_t;

static void *orphan_nap(void *arg) {
  (void)arg;
  CHECK_OK(weft_sleep(5)); /* the owner's next() has to wait for it */
  return NULL;
}

static void *orphan_wait_event(void *arg) {
  CHECK_OK(weft_event_wait(arg));
  return NULL;
}

/* Starts iterating, takes the first task out, and ends without destroying
 * the iterator while t[1] is still running. */
static void *orphan_owner(void *arg) {
  ac_orphan_t *o = arg;
  weft_task_t *got = NULL;

  CHECK_OK(weft_as_completed_init(&o->it, o->t, 2, WEFT_NO_TIMEOUT));
  CHECK_OK(weft_as_completed_next(&o->it, &got));
  CHECK(got == o->t[0]);
  atomic_store(&o->owner_done, 1);
  return NULL;
}

static void *ac_orphan_main(void *arg) {
  ac_orphan_t o;
  weft_future_t *f = NULL;
  weft_task_t *got = NULL;

  (void)arg;
  memset(&o, 0, sizeof(o));
  atomic_init(&o.owner_done, 0);
  CHECK_OK(weft_event_new(&o.ev));
  CHECK_OK(weft_spawn(orphan_nap, NULL, &o.t[0]));
  CHECK_OK(weft_spawn(orphan_wait_event, o.ev, &o.t[1]));
  /* A submitted task's record is malloc'ed and freed (not recycled) when
   * it ends, so ASan sees a late wake of it. With one worker, the owner's
   * end is complete (record freed) before main runs again. */
  CHECK_OK(weft_runtime_submit(weft_runtime_current(), orphan_owner, &o, &f));
  CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, NULL));
  weft_future_free(f);
  CHECK_EQ(atomic_load(&o.owner_done), 1);
  /* t[1] finishes now, with the owner gone: it must wake nobody. */
  CHECK_OK(weft_event_set(o.ev));
  CHECK_OK(weft_task_await(o.t[1], NULL));
  /* Another task may destroy the orphaned iterator; it never was next()'s
   * caller, so next() refuses it. */
  CHECK_RC(weft_as_completed_next(&o.it, &got), WEFT_EPERM);
  CHECK_OK(weft_as_completed_destroy(&o.it));
  weft_task_unref(o.t[0]);
  weft_task_unref(o.t[1]);
  CHECK_OK(weft_event_free(o.ev));
  return NULL;
}

static void test_as_completed_outlives_owner(void **state) {
  (void)state;
  run_in_weft(ac_orphan_main, NULL, 1);
}

/* ---- stress: completions racing timeouts and cancellations ------------- */

typedef struct round {
  weft_task_t *t[6];
  size_t n;
  int how;
  uint64_t timeout;
  int use_iter;
  atomic_int started;
} round_t;

static void *round_waiter(void *arg) {
  round_t *r = arg;
  atomic_store(&r->started, 1);
  if (!r->use_iter) {
    int done[6];
    int rc = weft_wait(r->t, r->n, (weft_wait_how_t)r->how, r->timeout, done);
    if (rc == WEFT_ECANCELED)
      return NULL;
    CHECK(rc >= 0);
    int count = 0;
    for (size_t i = 0; i < r->n; i++) {
      /* A task reported done has finished; pending ones may finish now. */
      if (done[i])
        CHECK_EQ(weft_task_done(r->t[i]), 1);
      count += done[i];
    }
    CHECK_EQ(rc, count);
    if (r->timeout == WEFT_NO_TIMEOUT) {
      if (r->how == WEFT_ALL_COMPLETED)
        CHECK_EQ(count, (int)r->n);
      else
        CHECK(count >= 1);
    }
    return NULL;
  }
  weft_as_completed_t it;
  CHECK_OK(weft_as_completed_init(&it, r->t, r->n, r->timeout));
  int seen[6] = {0, 0, 0, 0, 0, 0};
  size_t got_n = 0;
  for (;;) {
    weft_task_t *got = NULL;
    int rc = weft_as_completed_next(&it, &got);
    if (rc == WEFT_EOF || rc == WEFT_ETIMEDOUT || rc == WEFT_ECANCELED) {
      if (rc == WEFT_EOF)
        CHECK_EQ(got_n, r->n);
      if (r->timeout == WEFT_NO_TIMEOUT)
        CHECK(rc != WEFT_ETIMEDOUT);
      break;
    }
    CHECK_OK(rc);
    CHECK_EQ(weft_task_done(got), 1);
    for (size_t i = 0; i < r->n; i++)
      if (got == r->t[i])
        seen[i]++;
    got_n++;
  }
  for (size_t i = 0; i < r->n; i++)
    CHECK_LE(seen[i], 1);
  CHECK_OK(weft_as_completed_destroy(&it));
  return NULL;
}

static void *stress_main(void *arg) {
  (void)arg;
  int rounds = HARNESS_SIZE(2000, 400, 800);
  uint64_t seed = 7;
  for (int k = 0; k < rounds; k++) {
    round_t r;
    memset(&r, 0, sizeof r);
    r.n = (size_t)harness_rand_range(&seed, 1, 6);
    for (size_t i = 0; i < r.n; i++)
      CHECK_OK(harness_spawn_elsewhere(
          spin_task, (void *)(uintptr_t)harness_rand_range(&seed, 0, 150),
          (int)i + k, &r.t[i]));
    r.how = (int)harness_rand_range(&seed, 1, 3);
    uint64_t x = harness_rand_range(&seed, 0, 3);
    r.timeout = x == 3 ? WEFT_NO_TIMEOUT : x;
    r.use_iter = (int)harness_rand_range(&seed, 0, 1);
    weft_task_t *w;
    CHECK_OK(harness_spawn_pinned(round_waiter, &r, k % 2, &w));
    if (harness_rand_range(&seed, 0, 3) == 0) {
      HARNESS_WAIT(atomic_load(&r.started));
      harness_spin_us((double)(k % 64));
      weft_task_cancel(w);
    }
    (void)weft_task_await(w, NULL);
    for (size_t i = 0; i < r.n; i++) {
      (void)weft_task_await(r.t[i], NULL);
      weft_task_unref(r.t[i]);
    }
    weft_task_unref(w);
  }
  return NULL;
}

static void test_stress(void **state) {
  (void)state;
  run_in_weft(stress_main, NULL, 2);
  run_in_weft(stress_main, NULL, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_modes),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_cancel_waiter),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_as_completed_order),
      cmocka_unit_test(test_as_completed_timeout),
      cmocka_unit_test(test_as_completed_cancel),
      cmocka_unit_test(test_as_completed_outlives_owner),
      cmocka_unit_test(test_stress),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
