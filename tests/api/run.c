/*
 * api_run: weft_run() (asyncio.run): main's result and status, the default
 * configuration, 1..4 workers, two runtimes at once in two threads, repeated
 * runs that leave no thread, descriptor or memory behind, and shutdown with
 * tasks still alive (sleeping for an hour, blocked on a queue forever,
 * ignoring cancellation): weft_run() returns promptly and every such task
 * saw WEFT_ECANCELED.
 */
/* sigaltstack() and SS_* are XSI. */
#define _XOPEN_SOURCE 700

#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <uv.h>

static void *return_arg(void *arg) { return arg; }

static void test_returns_main_result(void **state) {
  void *r;

  (void)state;
  r = run_in_weft(return_arg, (void *)(uintptr_t)0xC0FFEE, 2);
  assert_ptr_equal(r, (void *)(uintptr_t)0xC0FFEE);
}

static void *fail_with_epipe(void *arg) {
  (void)arg;
  CHECK_OK(weft_yield());
  return weft_task_fail(WEFT_EPIPE);
}

static void test_returns_main_status(void **state) {
  void *r = (void *)(uintptr_t)0x1;

  (void)state;
  harness_reset();
  assert_int_equal(weft_run(fail_with_epipe, NULL, NULL, &r), WEFT_EPIPE);
  assert_null(r);
  harness_assert_clean();
  /* result NULL is allowed. */
  assert_int_equal(weft_run(fail_with_epipe, NULL, NULL, NULL), WEFT_EPIPE);
  harness_assert_clean();
}

static void *cancel_self_main(void *arg) {
  (void)arg;
  CHECK_EQ(weft_task_cancel(weft_task_current()), 1);
  CHECK_RC(weft_yield(), WEFT_ECANCELED);
  return (void *)(uintptr_t)0x1;
}

static void test_cancelled_main_status(void **state) {
  (void)state;
  harness_reset();
  assert_int_equal(weft_run(cancel_self_main, NULL, NULL, NULL),
                   WEFT_ECANCELED);
  harness_assert_clean();
}

static void *count_workers_main(void *arg) {
  unsigned want = (unsigned)(uintptr_t)arg;
  int idx;

  CHECK_EQ(weft_worker_count(), want);
  idx = weft_worker_index();
  CHECK(idx >= 0 && idx < (int)want);
  return (void *)(uintptr_t)weft_worker_count();
}

static void test_default_config(void **state) {
  unsigned n = uv_available_parallelism();
  weft_config_t cfg;
  void *r = NULL;

  (void)state;
  assert_true(n >= 1);
  harness_reset();
  assert_int_equal(weft_run(count_workers_main, (void *)(uintptr_t)n, NULL, &r),
                   0);
  harness_assert_clean();
  assert_ptr_equal(r, (void *)(uintptr_t)n);
  /* workers = 0 means the same. */
  weft_config_init(&cfg);
  cfg.workers = 0;
  r = run_in_weft_cfg(count_workers_main, (void *)(uintptr_t)n, &cfg);
  assert_ptr_equal(r, (void *)(uintptr_t)n);
}

static void *check_index_child(void *arg) {
  int n = (int)(uintptr_t)arg;
  int i, idx;

  for (i = 0; i < 20; i++) {
    idx = weft_worker_index();
    CHECK(idx >= 0 && idx < n);
    CHECK_EQ(weft_worker_count(), n);
    CHECK_OK(i % 2 ? weft_yield() : weft_sleep(1));
  }
  return arg;
}

static void *many_workers_main(void *arg) {
  unsigned n = (unsigned)(uintptr_t)arg;
  weft_task_t *t[16];
  void *res[16];
  size_t i;

  count_workers_main(arg);
  for (i = 0; i < 16; i++)
    CHECK_OK(weft_spawn(check_index_child, arg, &t[i]));
  CHECK_OK(weft_gather(t, 16, res));
  for (i = 0; i < 16; i++) {
    CHECK(res[i] == arg);
    weft_task_unref(t[i]);
  }
  return (void *)(uintptr_t)(n * 10);
}

static void test_one_to_four_workers(void **state) {
  unsigned n;

  (void)state;
  for (n = 1; n <= 4; n++) {
    void *r = run_in_weft(many_workers_main, (void *)(uintptr_t)n, n);
    assert_ptr_equal(r, (void *)(uintptr_t)(n * 10));
  }
}

/* ---- two runtimes at once ------------------------------------------------- */

static atomic_int twin_started[2];

typedef struct twin {
  int id;            /* 0 or 1 */
  unsigned workers;  /* this runtime's worker count */
  int rc;            /* weft_run's result */
  void *result;      /* main's result */
  int overlapped;    /* main saw the other runtime's main running */
} twin_t;

static void *twin_child(void *arg) {
  CHECK_OK(weft_sleep(2));
  return arg;
}

static void *twin_main(void *arg) {
  twin_t *tw = arg;
  weft_task_t *t[8];
  void *res[8];
  uintptr_t sum = 0;
  size_t i;

  CHECK_EQ(weft_worker_count(), tw->workers);
  atomic_store(&twin_started[tw->id], 1);
  HARNESS_WAIT(atomic_load(&twin_started[1 - tw->id]));
  tw->overlapped = atomic_load(&twin_started[1 - tw->id]);
  for (i = 0; i < 8; i++)
    CHECK_OK(weft_spawn(twin_child, (void *)(uintptr_t)(i + 1), &t[i]));
  CHECK_OK(weft_gather(t, 8, res));
  for (i = 0; i < 8; i++) {
    sum += (uintptr_t)res[i];
    weft_task_unref(t[i]);
  }
  CHECK_EQ(weft_worker_count(), tw->workers);
  return (void *)(sum * 100 + (uintptr_t)tw->id);
}

static void *twin_thread(void *p) {
  twin_t *tw = p;
  weft_config_t cfg;

  weft_config_init(&cfg);
  cfg.workers = tw->workers;
  tw->rc = weft_run(twin_main, tw, &cfg, &tw->result);
  return NULL;
}

static void test_two_runtimes_at_once(void **state) {
  twin_t tw[2] = {{0, 1, -1, NULL, 0}, {1, 3, -1, NULL, 0}};
  pthread_t th[2];
  int i;

  (void)state;
  harness_reset();
  atomic_store(&twin_started[0], 0);
  atomic_store(&twin_started[1], 0);
  for (i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, twin_thread, &tw[i]), 0);
  for (i = 0; i < 2; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  harness_assert_clean();
  for (i = 0; i < 2; i++) {
    assert_int_equal(tw[i].rc, 0);
    assert_ptr_equal(tw[i].result, (void *)(uintptr_t)(36 * 100 + i));
    assert_int_equal(tw[i].overlapped, 1);
  }
}

/* ---- repeated runs leave nothing behind ----------------------------------- */

static int count_dir_entries(const char *path) {
  DIR *d = opendir(path);
  struct dirent *e;
  int n = 0;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static void *repeat_child(void *arg) {
  weft_queue_t *q = arg;

  CHECK_OK(weft_yield());
  CHECK_OK(weft_queue_put(q, q));
  return NULL;
}

/* Returns the queue, freed by the caller once the runtime is gone (the
 * detached children may still be returning from their puts). */
static void *repeat_main(void *arg) {
  weft_queue_t *q;
  weft_task_t *t;
  void *item;
  int i;

  (void)arg;
  CHECK_OK(weft_queue_new(0, &q));
  for (i = 0; i < 10; i++)
    CHECK_OK(weft_spawn(repeat_child, q, i == 0 ? &t : NULL));
  for (i = 0; i < 10; i++) {
    CHECK_OK(weft_queue_get(q, &item));
    CHECK(item == q);
  }
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_sleep(1));
  return q;
}

static void run_repeat(unsigned workers) {
  weft_queue_t *q = run_in_weft(repeat_main, NULL, workers);

  assert_non_null(q);
  assert_int_equal(weft_queue_size(q), 0);
  assert_int_equal(weft_queue_free(q), 0);
}

static void test_repeated_runs_leave_nothing(void **state) {
  int runs = HARNESS_SIZE(100, 20, 100);
  int threads0, fds0, i;

  (void)state;
  /* Warm up whatever libc or libuv set up once per process. */
  run_repeat(2);
  threads0 = count_dir_entries("/proc/self/task");
  fds0 = count_dir_entries("/proc/self/fd");
  for (i = 0; i < runs; i++)
    run_repeat(1 + (unsigned)(i % 4));
  /* Every worker thread was joined and every loop's descriptors closed;
   * memory leaks are LeakSanitizer's to report in the ASan build. */
  assert_int_equal(count_dir_entries("/proc/self/task"), threads0);
  assert_int_equal(count_dir_entries("/proc/self/fd"), fds0);
}

/* ---- shutdown with tasks still alive ---------------------------------------- */

#define STUBBORN_ROUNDS 100

typedef struct shutdown_state {
  weft_queue_t *q;          /* nobody ever puts into it */
  weft_task_t *forever;     /* a sleeper some tasks await */
  atomic_int sleepers;      /* hour-long sleeps cut short */
  atomic_int spawn_refused; /* spawns refused with WEFT_ERUNTIME_SHUTDOWN */
  atomic_int getters;       /* queue gets cut short */
  atomic_int stubborn;      /* suspensions of tasks that ignore cancels */
  atomic_int yielders;      /* yields cut short */
  atomic_int awaiters;      /* awaits cut short */
  atomic_int pinned;        /* sleeps of pinned tasks cut short */
  atomic_int other;         /* anything else: must stay 0 */
  atomic_int started;       /* bodies that began (main waits for all) */
} shutdown_state_t;

static shutdown_state_t *shutdown_began(void *arg) {
  shutdown_state_t *s = arg;

  atomic_fetch_add(&s->started, 1);
  return s;
}

static void *shutdown_sleeper(void *arg) {
  shutdown_state_t *s = shutdown_began(arg);
  int rc = weft_sleep(3600 * 1000);

  if (rc == WEFT_ECANCELED) {
    atomic_fetch_add(&s->sleepers, 1);
    /* Nothing but shutdown cancels this task, so the runtime is shutting
     * down now and refuses new tasks. */
    rc = weft_spawn(shutdown_sleeper, s, NULL);
    if (rc == WEFT_ERUNTIME_SHUTDOWN)
      atomic_fetch_add(&s->spawn_refused, 1);
    else
      CHECK_RC(rc, WEFT_ERUNTIME_SHUTDOWN);
  } else {
    CHECK_RC(rc, WEFT_ECANCELED);
    atomic_fetch_add(&s->other, 1);
  }
  return NULL;
}

static void *shutdown_getter(void *arg) {
  shutdown_state_t *s = shutdown_began(arg);
  void *item = NULL;
  int rc;

  rc = weft_queue_get(s->q, &item);

  CHECK_RC(rc, WEFT_ECANCELED);
  atomic_fetch_add(rc == WEFT_ECANCELED ? &s->getters : &s->other, 1);
  return NULL;
}

/* Withdraws every cancellation and goes back to sleep for an hour, a fixed
 * number of times: each of those sleeps must end at once. */
static void *shutdown_stubborn(void *arg) {
  shutdown_state_t *s = shutdown_began(arg);
  int i, rc;

  for (i = 0; i < STUBBORN_ROUNDS; i++) {
    rc = weft_sleep(3600 * 1000);
    CHECK_RC(rc, WEFT_ECANCELED);
    if (rc == WEFT_ECANCELED)
      atomic_fetch_add(&s->stubborn, 1);
    CHECK(weft_task_uncancel() >= 0);
  }
  return NULL;
}

static void *shutdown_yielder(void *arg) {
  shutdown_state_t *s = shutdown_began(arg);
  int rc;

  /* Ready all the time: keeps yielding until shutdown cancels it. */
  while ((rc = weft_yield()) == 0) {
  }
  CHECK_RC(rc, WEFT_ECANCELED);
  atomic_fetch_add(&s->yielders, 1);
  /* Once shutting down, every further suspension fails at once too. */
  CHECK_RC(weft_yield(), WEFT_ECANCELED);
  CHECK_RC(weft_sleep(3600 * 1000), WEFT_ECANCELED);
  return NULL;
}

/* Awaits s->forever through a reference main took for it: main drops its
 * own before returning, and the awaiter reads the task's status after the
 * task finished. */
static void *shutdown_awaiter(void *arg) {
  shutdown_state_t *s = shutdown_began(arg);
  int rc = weft_task_await(s->forever, NULL);

  CHECK_RC(rc, WEFT_ECANCELED);
  atomic_fetch_add(rc == WEFT_ECANCELED ? &s->awaiters : &s->other, 1);
  weft_task_unref(s->forever);
  return NULL;
}

static void *shutdown_pinned(void *arg) {
  shutdown_state_t *s = shutdown_began(arg);
  int rc = weft_sleep(3600 * 1000);

  CHECK_RC(rc, WEFT_ECANCELED);
  atomic_fetch_add(rc == WEFT_ECANCELED ? &s->pinned : &s->other, 1);
  return NULL;
}

#define N_SLEEPERS 50
#define N_GETTERS 20
#define N_STUBBORN 20
#define N_YIELDERS 4
#define N_AWAITERS 10
#define N_PINNED 4

static void *shutdown_main(void *arg) {
  shutdown_state_t *s = arg;
  weft_spawn_opts_t opts;
  weft_task_t *kept;
  int i;

  CHECK_OK(weft_spawn(shutdown_sleeper, s, &s->forever));
  for (i = 1; i < N_SLEEPERS; i++)
    CHECK_OK(weft_spawn(shutdown_sleeper, s, NULL));
  for (i = 0; i < N_GETTERS; i++)
    CHECK_OK(weft_spawn(shutdown_getter, s, NULL));
  for (i = 0; i < N_STUBBORN; i++)
    CHECK_OK(weft_spawn(shutdown_stubborn, s, NULL));
  for (i = 0; i < N_YIELDERS; i++)
    CHECK_OK(weft_spawn(shutdown_yielder, s, NULL));
  for (i = 0; i < N_AWAITERS; i++) {
    weft_task_ref(s->forever); /* the awaiter's, dropped by it */
    CHECK_OK(weft_spawn(shutdown_awaiter, s, NULL));
  }
  weft_spawn_opts_init(&opts);
  for (i = 0; i < N_PINNED; i++) {
    opts.pin = i % weft_worker_count();
    CHECK_OK(weft_spawn_ex(shutdown_pinned, s, &opts, NULL));
  }
  /* A handle main never releases: weft_run frees it with its task. */
  CHECK_OK(weft_spawn(shutdown_sleeper, s, &kept));
  /* Wait until every task has begun: one that had not would never run
   * (cancelled before its first run) and miss its count below. Each
   * suspends right after it began, or is cancelled at that point; a few
   * more scheduling rounds let them get there (shutdown cancels a task on
   * its way all the same: this only makes the test mean what it says). */
  const int total = N_SLEEPERS + N_GETTERS + N_STUBBORN + N_YIELDERS +
                    N_AWAITERS + N_PINNED + 1;
  if (HARNESS_WAIT(atomic_load(&s->started) == total))
    harness_settle();
  CHECK_EQ(atomic_load(&s->started), total);
  CHECK_EQ(weft_task_done(s->forever), 0);
  CHECK_EQ(weft_task_done(kept), 0);
  weft_task_unref(s->forever);
  return (void *)(uintptr_t)0xD0;
}

static void test_shutdown_with_tasks_alive(void **state) {
  shutdown_state_t s;
  void *r;
  double t0, elapsed;
  unsigned workers;

  (void)state;
  for (workers = 1; workers <= 3; workers += 2) {
    memset(&s, 0, sizeof s);
    assert_int_equal(weft_queue_new(0, &s.q), 0);
    t0 = harness_now_ms();
    r = run_in_weft(shutdown_main, &s, workers);
    elapsed = harness_now_ms() - t0;
    assert_ptr_equal(r, (void *)(uintptr_t)0xD0);
    /* Shutdown must not wait for any of the hour-long sleeps. */
    assert_true(elapsed < 5000.0 * HARNESS_SLOWDOWN);
    assert_int_equal(atomic_load(&s.sleepers), N_SLEEPERS + 1);
    assert_int_equal(atomic_load(&s.spawn_refused), N_SLEEPERS + 1);
    assert_int_equal(atomic_load(&s.getters), N_GETTERS);
    assert_int_equal(atomic_load(&s.stubborn), N_STUBBORN * STUBBORN_ROUNDS);
    assert_int_equal(atomic_load(&s.yielders), N_YIELDERS);
    assert_int_equal(atomic_load(&s.awaiters), N_AWAITERS);
    assert_int_equal(atomic_load(&s.pinned), N_PINNED);
    assert_int_equal(atomic_load(&s.other), 0);
    /* No task waits on the queue any more. */
    assert_int_equal(weft_queue_size(s.q), 0);
    assert_int_equal(weft_queue_free(s.q), 0);
  }
}

/* main returns while tasks it spawned are still queued and never started:
 * the shutdown cancels them, so they never start (asyncio never starts a
 * cancelled task's coroutine), and weft_run() returns once all are done.
 * With several workers some may have been stolen and started before the
 * shutdown: those see WEFT_ECANCELED at their first suspension. */
static atomic_int unstarted_started;
static atomic_int unstarted_cancelled;

static void *unstarted_child(void *arg) {
  atomic_fetch_add(&unstarted_started, 1);
  int rc = weft_sleep(3600 * 1000);

  (void)arg;
  CHECK_RC(rc, WEFT_ECANCELED);
  if (rc == WEFT_ECANCELED)
    atomic_fetch_add(&unstarted_cancelled, 1);
  return NULL;
}

static void *unstarted_main(void *arg) {
  int i;

  (void)arg;
  for (i = 0; i < 1000; i++)
    CHECK_OK(weft_spawn(unstarted_child, NULL, NULL));
  return NULL;
}

static void test_shutdown_with_tasks_never_started(void **state) {
  (void)state;
  atomic_store(&unstarted_started, 0);
  atomic_store(&unstarted_cancelled, 0);
  run_in_weft(unstarted_main, NULL, 1);
  assert_int_equal(atomic_load(&unstarted_started), 0); /* main never let go */
  atomic_store(&unstarted_started, 0);
  atomic_store(&unstarted_cancelled, 0);
  run_in_weft(unstarted_main, NULL, 2);
  assert_true(atomic_load(&unstarted_started) <= 1000);
  assert_int_equal(atomic_load(&unstarted_cancelled),
                   atomic_load(&unstarted_started));
}

/* Defect 6 of issue 11: weft_run() makes the calling thread worker 0, which
 * installs its own alternate signal stack for overflow reports; it used to
 * disable it on the way out and leave the caller with none. */
static void test_caller_sigaltstack_kept(void **state) {
  static char mine[64 * 1024];
  stack_t ss, before, after;
  weft_config_t cfg;

  (void)state;
  memset(&ss, 0, sizeof(ss));
  ss.ss_sp = mine;
  ss.ss_size = sizeof(mine);
  assert_int_equal(sigaltstack(&ss, &before), 0);
  weft_config_init(&cfg);
  cfg.workers = 2;
  assert_int_equal(cfg.overflow_handler, 1);
  harness_reset();
  assert_int_equal(weft_run(return_arg, NULL, &cfg, NULL), 0);
  harness_assert_clean();
  assert_int_equal(sigaltstack(NULL, &after), 0);
  assert_ptr_equal(after.ss_sp, mine);
  assert_int_equal(after.ss_size, sizeof(mine));
  assert_int_equal(after.ss_flags & SS_DISABLE, 0);
  /* And a caller without one gets none back. */
  memset(&ss, 0, sizeof(ss));
  ss.ss_flags = SS_DISABLE;
  assert_int_equal(sigaltstack(&ss, NULL), 0);
  harness_reset();
  assert_int_equal(weft_run(return_arg, NULL, &cfg, NULL), 0);
  harness_assert_clean();
  assert_int_equal(sigaltstack(NULL, &after), 0);
  assert_int_not_equal(after.ss_flags & SS_DISABLE, 0);
  /* Leave the thread as it was before the test. */
  before.ss_flags &= ~SS_ONSTACK;
  assert_int_equal(sigaltstack(&before, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_returns_main_result),
      cmocka_unit_test(test_returns_main_status),
      cmocka_unit_test(test_cancelled_main_status),
      cmocka_unit_test(test_default_config),
      cmocka_unit_test(test_one_to_four_workers),
      cmocka_unit_test(test_two_runtimes_at_once),
      cmocka_unit_test(test_repeated_runs_leave_nothing),
      cmocka_unit_test(test_shutdown_with_tasks_alive),
      cmocka_unit_test(test_shutdown_with_tasks_never_started),
      cmocka_unit_test(test_caller_sigaltstack_kept),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
