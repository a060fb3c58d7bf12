/*
 * api_offload: weft_to_thread() and weft_to_thread_ex() (asyncio.to_thread):
 * results from many tasks at once, the function runs outside any task,
 * pinned tasks come back to their pin, the error paths, cancellation before
 * the function started (the pool filled with blocked work first: it never
 * runs), cancellation while it runs (the call returns at once and the
 * result is discarded exactly once), and shutdown with functions still
 * running and still queued (weft_run waits for the running ones and leaks
 * nothing).
 *
 * The pool has UV_THREADPOOL_SIZE threads; main() pins it to POOL before
 * anything starts it.
 */
#include "harness.h"

#include <unistd.h>

#define POOL 4

/* A gate that blocked pool functions wait on; opened by a task. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void gate_close(void) {
  pthread_mutex_lock(&gate_mu);
  gate_open = 0;
  pthread_mutex_unlock(&gate_mu);
}

static void gate_release(void) {
  pthread_mutex_lock(&gate_mu);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
}

static void gate_wait(void) {
  pthread_mutex_lock(&gate_mu);
  while (!gate_open)
    pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
}

/* Suspend until *v reaches want (HARNESS_WAIT: a CHECK failure if it does
 * not within the bound). */
static void wait_count(atomic_int *v, int want) {
  HARNESS_WAIT(atomic_load(v) >= want);
}

/* ---- results ------------------------------------------------------------ */

/* weft_to_thread_ex() with a discard function. */
static int to_thread_discarding(weft_thread_fn fn, void *arg,
                                weft_discard_fn discard, void **result) {
  weft_thread_opts_t o;

  weft_thread_opts_init(&o);
  o.discard = discard;
  return weft_to_thread_ex(fn, arg, &o, result);
}

static void *square(void *arg) {
  uintptr_t x = (uintptr_t)arg;

  /* A pool thread, not a task. */
  CHECK(weft_task_current() == NULL);
  CHECK_RC(weft_worker_index(), WEFT_ENOTTASK);
  return (void *)(x * x);
}

#define CALLS 20

static void *offload_many(void *arg) {
  uintptr_t base = (uintptr_t)arg;
  uintptr_t i;
  void *r;

  for (i = 0; i < CALLS; i++) {
    r = NULL;
    CHECK_OK(weft_to_thread(square, (void *)(base + i), &r));
    CHECK_EQ((uintptr_t)r, (base + i) * (base + i));
  }
  return NULL;
}

static void *offload_pinned(void *arg) {
  int pin = (int)(uintptr_t)arg;
  void *r;
  int i;

  for (i = 0; i < 5; i++) {
    CHECK_OK(weft_to_thread(square, (void *)(uintptr_t)7, &r));
    CHECK_EQ((uintptr_t)r, 49);
    CHECK_EQ(weft_worker_index(), pin);
  }
  /* result NULL is allowed. */
  CHECK_OK(weft_to_thread(square, (void *)(uintptr_t)3, NULL));
  /* weft_to_thread_ex() with opts NULL or the defaults: weft_to_thread(). */
  {
    weft_thread_opts_t o;
    memset(&o, 0xff, sizeof o);
    weft_thread_opts_init(&o);
    CHECK(o.discard == NULL);
    weft_thread_opts_init(NULL); /* ignored */
    CHECK_OK(weft_to_thread_ex(square, (void *)(uintptr_t)5, NULL, &r));
    CHECK_EQ((uintptr_t)r, 25);
    CHECK_OK(weft_to_thread_ex(square, (void *)(uintptr_t)6, &o, &r));
    CHECK_EQ((uintptr_t)r, 36);
  }
  return NULL;
}

static void *results_main(void *arg) {
  weft_task_t *t[34];
  int i, n = 0;

  (void)arg;
  for (i = 0; i < 32; i++)
    CHECK_OK(weft_spawn(offload_many, (void *)(uintptr_t)(i * 1000), &t[n++]));
  CHECK_OK(
      harness_spawn_pinned(offload_pinned, (void *)(uintptr_t)0, 0, &t[n++]));
  CHECK_OK(
      harness_spawn_pinned(offload_pinned, (void *)(uintptr_t)1, 1, &t[n++]));
  CHECK_OK(weft_gather(t, (size_t)n, NULL));
  for (i = 0; i < n; i++)
    weft_task_unref(t[i]);
  return NULL;
}

static void test_results(void **state) {
  (void)state;
  run_in_weft(results_main, NULL, 2);
  run_in_weft(results_main, NULL, 3);
}

/* ---- errors ---------------------------------------------------------------
 */

static atomic_int never_ran;

static void *must_not_run(void *arg) {
  (void)arg;
  atomic_fetch_add(&never_ran, 1);
  return (void *)(uintptr_t)1;
}

static void *errors_main(void *arg) {
  void *r = (void *)(uintptr_t)0x1;

  (void)arg;
  CHECK_RC(weft_to_thread(NULL, NULL, &r), WEFT_EINVAL);
  CHECK(r == NULL);
  CHECK_RC(to_thread_discarding(NULL, NULL, free, NULL), WEFT_EINVAL);
  /* A cancellation already pending: fn is not even queued. */
  CHECK_EQ(weft_task_cancel(weft_task_current()), 1);
  r = (void *)(uintptr_t)0x1;
  CHECK_RC(weft_to_thread(must_not_run, NULL, &r), WEFT_ECANCELED);
  CHECK(r == NULL);
  CHECK_EQ(weft_task_uncancel(), 0);
  CHECK_OK(weft_to_thread(square, (void *)(uintptr_t)5, &r));
  CHECK_EQ((uintptr_t)r, 25);
  return NULL;
}

static void test_errors(void **state) {
  void *r = (void *)(uintptr_t)0x1;

  (void)state;
  atomic_store(&never_ran, 0);
  assert_int_equal(weft_to_thread(square, NULL, &r), WEFT_ENOTTASK);
  assert_null(r);
  assert_int_equal(to_thread_discarding(square, NULL, free, NULL),
                   WEFT_ENOTTASK);
  run_in_weft(errors_main, NULL, 2);
  assert_int_equal(atomic_load(&never_ran), 0);
}

/* ---- cancellation before the function started ------------------------------
 */

static atomic_int blockers_running;

static void *blocker(void *arg) {
  atomic_fetch_add(&blockers_running, 1);
  gate_wait();
  return arg;
}

static void *blocker_task(void *arg) {
  void *r = NULL;

  CHECK_OK(weft_to_thread(blocker, arg, &r));
  CHECK(r == arg);
  return NULL;
}

static void *victim_task(void *arg) {
  atomic_int *started = arg;
  void *r = (void *)(uintptr_t)0x1;
  double t0;
  int rc;

  atomic_store(started, 1);
  t0 = harness_now_ms();
  rc = weft_to_thread(must_not_run, NULL, &r);
  CHECK_RC(rc, WEFT_ECANCELED);
  CHECK(r == NULL);
  /* Returned at once, while the pool is still blocked. */
  CHECK(harness_now_ms() - t0 < 5000.0 * HARNESS_SLOWDOWN);
  return NULL;
}

static void *cancel_queued_main(void *arg) {
  weft_task_t *b[POOL], *v[3];
  atomic_int started[3];
  int i;

  (void)arg;
  for (i = 0; i < POOL; i++)
    CHECK_OK(weft_spawn(blocker_task, (void *)(uintptr_t)(i + 1), &b[i]));
  wait_count(&blockers_running, POOL); /* every pool thread is blocked */
  for (i = 0; i < 3; i++) {
    atomic_init(&started[i], 0);
    CHECK_OK(weft_spawn(victim_task, &started[i], &v[i]));
  }
  for (i = 0; i < 3; i++)
    wait_count(&started[i], 1);
  /* Their work is queued behind the blockers (or, if one is not there yet,
   * its to_thread sees the cancellation first: never run either way). */
  harness_settle();
  for (i = 0; i < 3; i++)
    CHECK_EQ(weft_task_cancel(v[i]), 1);
  for (i = 0; i < 3; i++) {
    CHECK_RC(weft_task_await(v[i], NULL), WEFT_ECANCELED);
    weft_task_unref(v[i]);
  }
  CHECK_EQ(atomic_load(&never_ran), 0);
  gate_release();
  CHECK_OK(weft_gather(b, POOL, NULL));
  for (i = 0; i < POOL; i++)
    weft_task_unref(b[i]);
  /* The pool is free again, and the cancelled work did not run on it. */
  CHECK_OK(weft_to_thread(square, (void *)(uintptr_t)6, NULL));
  CHECK_EQ(atomic_load(&never_ran), 0);
  return NULL;
}

static void test_cancel_before_start(void **state) {
  (void)state;
  atomic_store(&never_ran, 0);
  atomic_store(&blockers_running, 0);
  gate_close();
  run_in_weft(cancel_queued_main, NULL, 2);
  assert_int_equal(atomic_load(&never_ran), 0);
}

/* ---- cancellation while the function runs ---------------------------------
 */

static atomic_int slow_started, slow_finished, discarded;

static void *slow_alloc(void *arg) {
  int *p = malloc(sizeof(*p));

  atomic_fetch_add(&slow_started, 1);
  if (arg) {
    gate_wait();
  } else {
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (p)
    *p = 42;
  atomic_fetch_add(&slow_finished, 1);
  return p;
}

static void discard_result(void *result) {
  int *p = result;

  CHECK(p != NULL && *p == 42);
  atomic_fetch_add(&discarded, 1);
  free(p);
}

static void *cancel_running_task(void *arg) {
  void *r = (void *)(uintptr_t)0x1;
  double t0 = harness_now_ms();
  int rc = to_thread_discarding(slow_alloc, arg, discard_result, &r);

  CHECK_RC(rc, WEFT_ECANCELED);
  CHECK(r == NULL);
  CHECK(harness_now_ms() - t0 < 5000.0 * HARNESS_SLOWDOWN);
  /* The function still runs: nothing was discarded yet. */
  CHECK_EQ(atomic_load(&slow_finished), 0);
  CHECK_EQ(atomic_load(&discarded), 0);
  return NULL;
}

static void *cancel_running_main(void *arg) {
  weft_task_t *t;
  void *r = NULL;

  (void)arg;
  CHECK_OK(weft_spawn(cancel_running_task, (void *)(uintptr_t)1, &t));
  wait_count(&slow_started, 1);
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  gate_release();
  wait_count(&discarded, 1);
  CHECK_EQ(atomic_load(&slow_finished), 1);
  /* A delivered result is the caller's, never discarded. */
  CHECK_OK(to_thread_discarding(slow_alloc, (void *)(uintptr_t)1,
                                discard_result, &r));
  CHECK(r != NULL && *(int *)r == 42);
  free(r);
  CHECK_OK(weft_sleep(20));
  CHECK_EQ(atomic_load(&discarded), 1);
  return NULL;
}

static void test_cancel_while_running(void **state) {
  (void)state;
  atomic_store(&slow_started, 0);
  atomic_store(&slow_finished, 0);
  atomic_store(&discarded, 0);
  gate_close();
  run_in_weft(cancel_running_main, NULL, 2);
  assert_int_equal(atomic_load(&discarded), 1);
  assert_int_equal(atomic_load(&slow_finished), 2);
}

/* ---- shutdown with work running and queued ----------------------------------
 */

static atomic_int delivered;

static void *shutdown_offloader(void *arg) {
  void *r = NULL;
  int rc = to_thread_discarding(slow_alloc, arg, discard_result, &r);

  if (rc == 0) {
    /* Finished before the shutdown reached this task (a slow sanitizer
     * run): the result is ours. */
    atomic_fetch_add(&delivered, 1);
    free(r);
  } else {
    CHECK_RC(rc, WEFT_ECANCELED); /* only shutdown cancels these tasks */
    CHECK(r == NULL);
  }
  return NULL;
}

#define SHUTDOWN_EXTRA 3

static void *shutdown_main(void *arg) {
  int i;

  (void)arg;
  for (i = 0; i < POOL + SHUTDOWN_EXTRA; i++)
    CHECK_OK(weft_spawn(shutdown_offloader, NULL, NULL));
  wait_count(&slow_started, POOL); /* the pool is busy, 3 more queued */
  return NULL;                     /* while they sleep for 200 ms */
}

static void test_shutdown_with_work(void **state) {
  double t0, elapsed;
  unsigned workers;

  (void)state;
  for (workers = 1; workers <= 3; workers += 2) {
    atomic_store(&slow_started, 0);
    atomic_store(&slow_finished, 0);
    atomic_store(&discarded, 0);
    atomic_store(&delivered, 0);
    t0 = harness_now_ms();
    run_in_weft(shutdown_main, NULL, workers);
    elapsed = harness_now_ms() - t0;
    /* weft_run waited for the running functions and discarded their
     * results; each queued one was either taken off the queue (never ran)
     * or ran and was discarded too. */
    assert_true(atomic_load(&slow_started) >= POOL);
    assert_int_equal(atomic_load(&slow_finished), atomic_load(&slow_started));
    assert_int_equal(atomic_load(&discarded) + atomic_load(&delivered),
                     atomic_load(&slow_finished));
    assert_true(elapsed >= 150.0);
    assert_true(elapsed < 5000.0 * HARNESS_SLOWDOWN);
  }
}

/* ---- a function that does not return (issue 11) -------------------------
 */

static atomic_int stuck_started, stuck_returned;
static const struct timespec one_ms = {0, 1000000};

static void *stuck_fn(void *arg) {
  atomic_store(&stuck_started, 1);
  gate_wait();
  atomic_store(&stuck_returned, 1);
  return arg;
}

static void *stuck_offloader(void *arg) {
  CHECK_RC(weft_to_thread(stuck_fn, arg, NULL), WEFT_ECANCELED);
  return NULL;
}

static void *stuck_main(void *arg) {
  (void)arg;
  CHECK_OK(weft_spawn(stuck_offloader, NULL, NULL));
  wait_count(&stuck_started, 1);
  return (void *)(uintptr_t)0x5;
}

typedef struct stuck_run {
  weft_config_t cfg;
  int rc;
  void *result;
  int fn_returned_first; /* stuck_fn had returned when weft_run did */
  int early;             /* weft_run returned before the gate opened */
  atomic_int done;
} stuck_run_t;

static void *stuck_run_thread(void *arg) {
  stuck_run_t *a = arg;

  a->rc = weft_run(stuck_main, NULL, &a->cfg, &a->result);
  a->fn_returned_first = atomic_load(&stuck_returned);
  atomic_store(&a->done, 1);
  return NULL;
}

/* Runs weft_run() on a thread of its own with stderr sent to a file whose
 * text is left in out. With open_after_ms >= 0 the gate is opened that long
 * after the function started (a weft_run() that returned before is recorded
 * in a->early). If weft_run() has not returned within bound_ms, the gate is
 * opened (so that it can) and 0 is returned. */
static int stuck_run(stuck_run_t *a, int open_after_ms, int bound_ms, char *out,
                     size_t outsz) {
  pthread_t th;
  FILE *tmp = tmpfile();
  int saved, returned, i, since = 0;
  size_t n;

  assert_non_null(tmp);
  fflush(stderr);
  saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(tmp), 2) >= 0);
  atomic_store(&a->done, 0);
  harness_reset();
  assert_int_equal(pthread_create(&th, NULL, stuck_run_thread, a), 0);
  for (i = 0; i < bound_ms && !atomic_load(&a->done); i++) {
    nanosleep(&one_ms, NULL);
    if (open_after_ms >= 0 && atomic_load(&stuck_started) &&
        since++ == open_after_ms) {
      a->early = atomic_load(&a->done);
      gate_release();
    }
  }
  returned = atomic_load(&a->done);
  if (!returned)
    gate_release(); /* let it end: the test fails below, but does not hang */
  pthread_join(th, NULL);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  n = fread(out, 1, outsz - 1, tmp);
  out[n] = '\0';
  fclose(tmp);
  fputs(out, stderr); /* what was said, for the log */
  harness_assert_clean();
  return returned;
}

/* A fresh run: the gate closed, the flags reset, the default config. */
static void stuck_prepare(stuck_run_t *a) {
  memset(a, 0, sizeof(*a));
  gate_close();
  atomic_store(&stuck_started, 0);
  atomic_store(&stuck_returned, 0);
  weft_config_init(&a->cfg);
}

/* With a grace period, weft_run() reports the function, leaves it running
 * and returns main's status; the gate is opened only afterwards (the pool
 * thread then ends before the process exits: nothing for LSan). */
static void test_stuck_function_bounded(void **state) {
  stuck_run_t a;
  char out[4096];
  int i;

  (void)state;
  stuck_prepare(&a);
  assert_int_equal(a.cfg.offload_grace_ms, WEFT_OFFLOAD_GRACE_MS_DEFAULT);
  a.cfg.workers = 2;
  a.cfg.offload_grace_ms = 100;
  if (!stuck_run(&a, -1, 20000 * HARNESS_SLOWDOWN, out, sizeof(out)))
    fail_msg("weft_run did not return while an offloaded function ran");
  assert_int_equal(a.rc, 0);
  assert_ptr_equal(a.result, (void *)(uintptr_t)0x5);
  assert_int_equal(a.fn_returned_first, 0);
  assert_non_null(strstr(out, "weft: offloaded function"));
  assert_non_null(strstr(out, "still running 100 ms after"));
  /* The function returns into the loop that was left behind. */
  gate_release();
  for (i = 0; i < 10000 && !atomic_load(&stuck_returned); i++)
    nanosleep(&one_ms, NULL);
  assert_int_equal(atomic_load(&stuck_returned), 1);
}

/* A negative grace period waits as long as the function takes. */
static void test_stuck_function_unbounded(void **state) {
  stuck_run_t a;
  char out[4096];

  (void)state;
  stuck_prepare(&a);
  a.cfg.workers = 1;
  a.cfg.offload_grace_ms = WEFT_NO_TIMEOUT;
  /* The gate opens 300 ms after the function started: weft_run must not
   * have returned before, and returns after. */
  assert_int_equal(
      stuck_run(&a, 300, 20000 * HARNESS_SLOWDOWN, out, sizeof(out)), 1);
  assert_int_equal(a.early, 0);
  assert_int_equal(a.rc, 0);
  assert_int_equal(a.fn_returned_first, 1);
  assert_null(strstr(out, "weft: offloaded function"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_results),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_cancel_before_start),
      cmocka_unit_test(test_cancel_while_running),
      cmocka_unit_test(test_shutdown_with_work),
      cmocka_unit_test(test_stuck_function_bounded),
      cmocka_unit_test(test_stuck_function_unbounded),
  };

  /* Before anything starts libuv's pool, which reads it once. */
  setenv("UV_THREADPOOL_SIZE", "4", 1);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
