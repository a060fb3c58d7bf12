/*
 * api_errors: error codes, names and messages (weft/error.h), the version
 * (weft/version.h), the defaults of the _init functions, and the argument
 * and context errors of the whole API: every task-only call made outside a
 * task returns WEFT_ENOTTASK, weft_run() rejects bad arguments with
 * WEFT_EINVAL and a nested call with WEFT_EBUSY.
 */
#include "harness.h"

#include <uv.h>

/* ---- codes, names, messages -------------------------------------------- */

typedef struct err_entry {
  int code;
  const char *name;
  const char *msg;
} err_entry_t;

static const err_entry_t weft_errs[] = {
#define XX(name, value, msg) {WEFT_##name, #name, msg},
    WEFT_ERRNO_MAP(XX)
#undef XX
};

static const err_entry_t uv_errs[] = {
#define XX(name, msg) {UV_##name, #name, msg},
    UV_ERRNO_MAP(XX)
#undef XX
};

static const err_entry_t *find_weft_err(int code) {
  size_t i;

  for (i = 0; i < HARNESS_COUNT(weft_errs); i++)
    if (weft_errs[i].code == code)
      return &weft_errs[i];
  return NULL;
}

static void test_every_code_named(void **state) {
  size_t i, j;

  (void)state;
  assert_true(HARNESS_COUNT(weft_errs) > 40);
  for (i = 0; i < HARNESS_COUNT(weft_errs); i++) {
    const err_entry_t *e = &weft_errs[i];

    assert_true(e->code < 0);
    assert_true(e->code > WEFT_ERRNO_MAX_);
    assert_string_equal(weft_err_name(e->code), e->name);
    assert_string_equal(weft_strerror(e->code), e->msg);
    for (j = i + 1; j < HARNESS_COUNT(weft_errs); j++)
      assert_int_not_equal(e->code, weft_errs[j].code);
  }
}

static void test_own_codes_outside_errno_ranges(void **state) {
  (void)state;
  /* The conditions without an errno counterpart live below -11000. */
  assert_true(WEFT_ENOTTASK < -11000);
  assert_true(WEFT_ERUNTIME_SHUTDOWN < -11000);
  assert_true(WEFT_ESTACKOVERFLOW < -11000);
  assert_string_equal(weft_err_name(WEFT_ENOTTASK), "ENOTTASK");
  assert_string_equal(weft_err_name(WEFT_ERUNTIME_SHUTDOWN),
                      "ERUNTIME_SHUTDOWN");
  assert_string_equal(weft_err_name(WEFT_ESTACKOVERFLOW), "ESTACKOVERFLOW");
  assert_string_equal(weft_strerror(WEFT_ENOTTASK), "called outside a weft task");
  /* Shut-down objects have codes of their own, apart from POSIX's socket
   * ESHUTDOWN; so has a call that cannot apply in an object's state. */
  assert_true(WEFT_EQUEUE_SHUTDOWN < -11000);
  assert_true(WEFT_ETASKGROUP_SHUTDOWN < -11000);
  assert_true(WEFT_ESTATE < -11000);
  assert_int_not_equal(WEFT_EQUEUE_SHUTDOWN, WEFT_ESHUTDOWN);
  assert_int_not_equal(WEFT_ETASKGROUP_SHUTDOWN, WEFT_ESHUTDOWN);
  assert_string_equal(weft_err_name(WEFT_EQUEUE_SHUTDOWN), "EQUEUE_SHUTDOWN");
  assert_string_equal(weft_strerror(WEFT_EQUEUE_SHUTDOWN),
                      "queue is shut down");
  assert_string_equal(weft_err_name(WEFT_ETASKGROUP_SHUTDOWN),
                      "ETASKGROUP_SHUTDOWN");
  assert_string_equal(weft_err_name(WEFT_ESTATE), "ESTATE");
}

static void test_libuv_values_pass_through(void **state) {
  (void)state;
  assert_int_equal(WEFT_EOF, UV_EOF);
  assert_int_equal(WEFT_ECANCELED, UV_ECANCELED);
  assert_int_equal(WEFT_EAGAIN, UV_EAGAIN);
  assert_int_equal(WEFT_ETIMEDOUT, UV_ETIMEDOUT);
  assert_int_equal(WEFT_ECONNRESET, UV_ECONNRESET);
  assert_int_equal(WEFT_EPIPE, UV_EPIPE);
  assert_int_equal(WEFT_ENOMEM, UV_ENOMEM);
  assert_int_equal(WEFT_EINVAL, UV_EINVAL);
  assert_int_equal(WEFT_EBUSY, UV_EBUSY);
  assert_int_equal(WEFT_EAI_NONAME, UV_EAI_NONAME);
  assert_int_equal(WEFT_EAI_AGAIN, UV_EAI_AGAIN);
  assert_int_equal(WEFT_EAI_FAIL, UV_EAI_FAIL);
  assert_int_equal(WEFT_ENOTSUP, UV_ENOTSUP);
  assert_int_equal(WEFT_EADDRINUSE, UV_EADDRINUSE);
}

static void test_every_weft_code_that_libuv_has_has_its_value(void **state) {
  size_t i, j;
  size_t shared = 0;

  (void)state;
  for (i = 0; i < HARNESS_COUNT(weft_errs); i++)
    for (j = 0; j < HARNESS_COUNT(uv_errs); j++)
      if (strcmp(weft_errs[i].name, uv_errs[j].name) == 0) {
        assert_int_equal(weft_errs[i].code, uv_errs[j].code);
        shared++;
      }
  assert_true(shared >= 35);
}

/* Every libuv code is named by weft too: weft's own message where weft lists
 * the code, libuv's otherwise. */
static void test_every_libuv_code_named(void **state) {
  size_t i, j;

  (void)state;
  for (i = 0; i < HARNESS_COUNT(uv_errs); i++) {
    const err_entry_t *u = &uv_errs[i];
    const err_entry_t *w = find_weft_err(u->code);
    int dup = 0;

    for (j = 0; j < HARNESS_COUNT(uv_errs); j++)
      dup |= j != i && uv_errs[j].code == u->code;
    if (dup)
      continue; /* two libuv names for one value: either may be returned */
    assert_string_equal(weft_err_name(u->code), u->name);
    if (w != NULL)
      assert_string_equal(weft_strerror(u->code), w->msg);
    else
      assert_string_equal(weft_strerror(u->code), uv_strerror(u->code));
  }
  /* A few that weft does not list itself. */
  assert_null(find_weft_err(UV_ENOTSOCK));
  assert_string_equal(weft_err_name(UV_ENOTSOCK), "ENOTSOCK");
  assert_string_equal(weft_strerror(UV_ENOTSOCK), uv_strerror(UV_ENOTSOCK));
  assert_string_equal(weft_err_name(UV_EAI_BADFLAGS), "EAI_BADFLAGS");
  assert_string_equal(weft_err_name(UV_ECHARSET), "ECHARSET");
}

/* 0 is success, not an unknown code: a test or a log line that names every
 * result names it too. */
static void test_success_code(void **state) {
  (void)state;
  assert_string_equal(weft_err_name(0), "OK");
  assert_string_equal(weft_strerror(0), "success");
}

static void test_unknown_codes(void **state) {
  static const int unknown[] = {-11999, -11500, -99999, -2000000000, 1, 77};
  size_t i;

  (void)state;
  for (i = 0; i < HARNESS_COUNT(unknown); i++) {
    char want[64];

    snprintf(want, sizeof want, "unknown error %d", unknown[i]);
    assert_string_equal(weft_err_name(unknown[i]), "UNKNOWN");
    assert_string_equal(weft_strerror(unknown[i]), want);
  }
}

/* "unknown error N" lives in a buffer per calling thread: two threads
 * formatting different codes at once never see each other's text. */
typedef struct strerror_thread {
  int base;
  int bad;
} strerror_thread_t;

static void *strerror_thread_main(void *p) {
  strerror_thread_t *t = p;
  int i;

  for (i = 0; i < 20000; i++) {
    int code = t->base - (i % 50);
    char want[64];

    snprintf(want, sizeof want, "unknown error %d", code);
    if (strcmp(weft_strerror(code), want) != 0)
      t->bad++;
  }
  return NULL;
}

static void test_unknown_message_per_thread(void **state) {
  pthread_t th[2];
  strerror_thread_t arg[2] = {{-11500, 0}, {-11700, 0}};
  int i;

  (void)state;
  for (i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, strerror_thread_main, &arg[i]),
                     0);
  for (i = 0; i < 2; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  assert_int_equal(arg[0].bad, 0);
  assert_int_equal(arg[1].bad, 0);
}

/* ---- version -------------------------------------------------------------- */

static void test_version(void **state) {
  char want[32];

  (void)state;
  assert_int_equal(weft_version(), WEFT_VERSION_HEX);
  assert_int_equal(WEFT_VERSION_HEX, (WEFT_VERSION_MAJOR << 16) |
                                         (WEFT_VERSION_MINOR << 8) |
                                         WEFT_VERSION_PATCH);
  snprintf(want, sizeof want, "%d.%d.%d", WEFT_VERSION_MAJOR,
           WEFT_VERSION_MINOR, WEFT_VERSION_PATCH);
  assert_string_equal(weft_version_string(), want);
  assert_ptr_equal(weft_version_string(), weft_version_string());
}

/* ---- defaults ------------------------------------------------------------- */

static void test_config_defaults(void **state) {
  weft_config_t cfg;
  weft_spawn_opts_t opts;

  (void)state;
  memset(&cfg, 0xa5, sizeof cfg);
  weft_config_init(&cfg);
  assert_true(cfg.stack_size == 0 || cfg.stack_size == WEFT_STACK_SIZE_DEFAULT);
  assert_true(cfg.workers <= 1024);
  assert_int_equal(cfg.guarded_stacks, WEFT_GUARDED_STACKS_DEFAULT);
  assert_int_equal(cfg.max_tasks, 0);
  assert_int_equal(cfg.deterministic, 0);
  assert_int_equal(cfg.disable_lifo, 0);
  assert_int_equal(cfg.overflow_handler, 1);

  memset(&opts, 0xa5, sizeof opts);
  weft_spawn_opts_init(&opts);
  assert_null(opts.name);
  assert_int_equal(opts.pin, -1);
}

/* ---- outside a task -------------------------------------------------------- */

static void *never_runs(void *arg) {
  atomic_int *ran = arg;

  if (ran != NULL)
    atomic_store(ran, 1);
  return NULL;
}

static void test_task_api_outside_a_task(void **state) {
  weft_task_t *t = (weft_task_t *)(uintptr_t)0x1;
  weft_spawn_opts_t opts;
  weft_worker_stats_t stats;
  atomic_int ran;

  (void)state;
  atomic_init(&ran, 0);
  assert_int_equal(weft_spawn(never_runs, &ran, &t), WEFT_ENOTTASK);
  assert_int_equal(weft_spawn(never_runs, &ran, NULL), WEFT_ENOTTASK);
  weft_spawn_opts_init(&opts);
  assert_int_equal(weft_spawn_ex(never_runs, &ran, &opts, NULL), WEFT_ENOTTASK);
  assert_int_equal(weft_spawn_ex(never_runs, &ran, NULL, NULL), WEFT_ENOTTASK);
  assert_int_equal(weft_sleep(0), WEFT_ENOTTASK);
  assert_int_equal(weft_sleep(10), WEFT_ENOTTASK);
  assert_int_equal(weft_yield(), WEFT_ENOTTASK);
  assert_int_equal(weft_worker_index(), WEFT_ENOTTASK);
  assert_int_equal(weft_worker_count(), WEFT_ENOTTASK);
  assert_int_equal(weft_worker_stats(0, &stats), WEFT_ENOTTASK);
  assert_int_equal(weft_task_uncancel(), WEFT_ENOTTASK);
  assert_int_equal(weft_task_cancelling(), WEFT_ENOTTASK);
  assert_int_equal(weft_task_set_local(&ran), WEFT_ENOTTASK);
  assert_null(weft_task_local());
  assert_null(weft_task_current());
  assert_null(weft_task_fail(WEFT_EIO));
  assert_null(weft_task_name(NULL));
  assert_int_equal(weft_task_set_name(NULL, "x"), WEFT_ENOTTASK);
  {
    char nb[8];
    assert_int_equal(weft_task_name_copy(NULL, nb, sizeof(nb)), WEFT_ENOTTASK);
  }
  assert_true(weft_time_ms() == 0);
  {
    weft_timeout_t scope;
    assert_int_equal(weft_timeout_enter(&scope, 10), WEFT_ENOTTASK);
    assert_int_equal(weft_timeout_enter_at(&scope, 10), WEFT_ENOTTASK);
    assert_int_equal(weft_timeout_exit(&scope, 0), WEFT_ENOTTASK);
    assert_int_equal(weft_timeout_reschedule(&scope, 10), WEFT_ENOTTASK);
    assert_int_equal(weft_timeout_expired(NULL), WEFT_EINVAL);
    assert_true(weft_timeout_when(NULL) == WEFT_NO_TIMEOUT);
  }
  /* NULL handles are rejected wherever a handle is required. */
  assert_int_equal(weft_task_cancel(NULL), WEFT_EINVAL);
  assert_int_equal(weft_task_done(NULL), WEFT_EINVAL);
  assert_int_equal(weft_task_result(NULL, NULL), WEFT_EINVAL);
  weft_task_unref(NULL);
  assert_int_equal(atomic_load(&ran), 0);
}

static void test_queue_outside_a_task(void **state) {
  weft_queue_t *q = NULL;
  void *item = NULL;
  int x = 0;

  (void)state;
  assert_int_equal(weft_queue_new(1, &q), 0);
  assert_non_null(q);
  assert_int_equal(weft_queue_put(q, &x), WEFT_ENOTTASK);
  assert_int_equal(weft_queue_get(q, &item), WEFT_ENOTTASK);
  assert_int_equal(weft_queue_size(q), 0);
  /* The non-suspending forms work anywhere. */
  assert_int_equal(weft_queue_try_put(q, &x), 0);
  assert_int_equal(weft_queue_try_put(q, &x), WEFT_EAGAIN);
  assert_int_equal(weft_queue_size(q), 1);
  assert_int_equal(weft_queue_try_get(q, &item), 0);
  assert_ptr_equal(item, &x);
  assert_int_equal(weft_queue_free(q), 0);
}

/* Task-only calls given real handles from a thread that is not a task, while
 * the runtime that owns the handles runs. */
typedef struct outsider {
  weft_task_t *t;
  weft_queue_t *q;
} outsider_t;

static void *outsider_thread(void *p) {
  outsider_t *o = p;
  void *result = (void *)(uintptr_t)0x77;
  weft_task_t *tasks[1];
  int status = 1;

  tasks[0] = o->t;
  CHECK_RC(weft_task_await(o->t, &result), WEFT_ENOTTASK);
  CHECK_RC(weft_task_wait_for(o->t, 10, &result), WEFT_ENOTTASK);
  CHECK_RC(weft_gather(tasks, 1, NULL), WEFT_ENOTTASK);
  CHECK_RC(weft_gather_all(tasks, 1, NULL, &status), WEFT_ENOTTASK);
  CHECK_RC(weft_queue_put(o->q, o), WEFT_ENOTTASK);
  CHECK_RC(weft_queue_get(o->q, &result), WEFT_ENOTTASK);
  CHECK_RC(weft_spawn(never_runs, NULL, NULL), WEFT_ENOTTASK);
  CHECK(weft_task_current() == NULL);
  CHECK_RC(weft_worker_index(), WEFT_ENOTTASK);
  CHECK_EQ(weft_task_done(o->t), 0);
  return NULL;
}

static void *sleep_long(void *arg) {
  (void)arg;
  CHECK_RC(weft_sleep(60 * 1000), WEFT_ECANCELED);
  return NULL;
}

static void *outsider_main(void *arg) {
  outsider_t o;
  pthread_t th;

  (void)arg;
  CHECK_OK(weft_queue_new(0, &o.q));
  CHECK_OK(weft_spawn(sleep_long, NULL, &o.t));
  /* Blocking this worker for a moment is fine: the test needs a real thread
   * that is not a task while handles are live. */
  CHECK_EQ(pthread_create(&th, NULL, outsider_thread, &o), 0);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK_EQ(weft_task_cancel(o.t), 1);
  CHECK_RC(weft_task_await(o.t, NULL), WEFT_ECANCELED);
  weft_task_unref(o.t);
  CHECK_OK(weft_queue_free(o.q));
  return NULL;
}

static void test_handles_used_from_a_foreign_thread(void **state) {
  (void)state;
  run_in_weft(outsider_main, NULL, 2);
}

/* ---- weft_run() arguments ---------------------------------------------------- */

static void test_run_rejects_bad_arguments(void **state) {
  weft_config_t cfg;
  atomic_int ran;

  (void)state;
  atomic_init(&ran, 0);
  assert_int_equal(weft_run(NULL, NULL, NULL, NULL), WEFT_EINVAL);

  weft_config_init(&cfg);
  cfg.stack_size = WEFT_STACK_SIZE_MIN - 1;
  assert_int_equal(weft_run(never_runs, &ran, &cfg, NULL), WEFT_EINVAL);
  cfg.stack_size = 1;
  assert_int_equal(weft_run(never_runs, &ran, &cfg, NULL), WEFT_EINVAL);

  weft_config_init(&cfg);
  cfg.workers = 1025;
  assert_int_equal(weft_run(never_runs, &ran, &cfg, NULL), WEFT_EINVAL);
  cfg.workers = 100000;
  assert_int_equal(weft_run(never_runs, &ran, &cfg, NULL), WEFT_EINVAL);
  assert_int_equal(atomic_load(&ran), 0);
}

static void *small_stack_child(void *arg) {
  char buf[2048];

  memset(buf, (int)(uintptr_t)arg, sizeof buf);
  CHECK_OK(weft_yield());
  return (void *)(uintptr_t)(unsigned char)buf[sizeof buf - 1];
}

static void *small_stack_main(void *arg) {
  weft_task_t *t;
  void *r = NULL;

  (void)arg;
  CHECK_OK(weft_spawn(small_stack_child, (void *)(uintptr_t)7, &t));
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)7);
  weft_task_unref(t);
  return (void *)(uintptr_t)42;
}

static void test_run_accepts_smallest_stack(void **state) {
  weft_config_t cfg;
  void *r;

  (void)state;
  weft_config_init(&cfg);
  cfg.workers = 2;
  cfg.stack_size = WEFT_STACK_SIZE_MIN;
  r = run_in_weft_cfg(small_stack_main, NULL, &cfg);
  assert_ptr_equal(r, (void *)(uintptr_t)42);
  /* Not a multiple of the page size: rounded up, not rejected. */
  cfg.stack_size = WEFT_STACK_SIZE_MIN + 1;
  r = run_in_weft_cfg(small_stack_main, NULL, &cfg);
  assert_ptr_equal(r, (void *)(uintptr_t)42);
}

static void *nested_run_main(void *arg) {
  atomic_int *inner_ran = arg;
  void *result = (void *)(uintptr_t)0x55;

  CHECK_RC(weft_run(never_runs, inner_ran, NULL, &result), WEFT_EBUSY);
  CHECK_RC(weft_run(NULL, NULL, NULL, NULL), WEFT_EINVAL);
  /* Still a working task afterwards. */
  CHECK_OK(weft_sleep(1));
  return NULL;
}

static void test_run_inside_a_task_is_busy(void **state) {
  atomic_int inner_ran;

  (void)state;
  atomic_init(&inner_ran, 0);
  run_in_weft(nested_run_main, &inner_ran, 2);
  assert_int_equal(atomic_load(&inner_ran), 0);
}

/* ---- argument errors inside a task -------------------------------------------- */

static void *inside_errors_main(void *arg) {
  weft_worker_stats_t stats;
  weft_spawn_opts_t opts;
  int n = weft_worker_count();

  (void)arg;
  CHECK_RC(weft_spawn(NULL, NULL, NULL), WEFT_EINVAL);
  weft_spawn_opts_init(&opts);
  CHECK_RC(weft_spawn_ex(NULL, NULL, &opts, NULL), WEFT_EINVAL);
  opts.pin = n;
  CHECK_RC(weft_spawn_ex(never_runs, NULL, &opts, NULL), WEFT_EINVAL);
  opts.pin = -2;
  CHECK_RC(weft_spawn_ex(never_runs, NULL, &opts, NULL), WEFT_EINVAL);
  CHECK_RC(weft_task_await(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_task_wait_for(NULL, 10, NULL), WEFT_EINVAL);
  CHECK_RC(weft_task_cancel(NULL), WEFT_EINVAL);
  CHECK_RC(weft_task_done(NULL), WEFT_EINVAL);
  CHECK_RC(weft_task_result(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_task_set_name(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_gather(NULL, 1, NULL), WEFT_EINVAL);
  CHECK_RC(weft_gather_all(NULL, 1, NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_worker_stats((unsigned)n, &stats), WEFT_EINVAL);
  CHECK_RC(weft_worker_stats(0, NULL), WEFT_EINVAL);
  CHECK_OK(weft_worker_stats(0, &stats));
  CHECK_RC(weft_queue_put(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_queue_get(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_queue_new(0, NULL), WEFT_EINVAL);
  CHECK_RC(weft_queue_try_put(NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_queue_size(NULL), WEFT_EINVAL);
  return NULL;
}

static void test_argument_errors_inside_a_task(void **state) {
  (void)state;
  run_in_weft(inside_errors_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_code_named),
      cmocka_unit_test(test_own_codes_outside_errno_ranges),
      cmocka_unit_test(test_libuv_values_pass_through),
      cmocka_unit_test(test_every_weft_code_that_libuv_has_has_its_value),
      cmocka_unit_test(test_every_libuv_code_named),
      cmocka_unit_test(test_success_code),
      cmocka_unit_test(test_unknown_codes),
      cmocka_unit_test(test_unknown_message_per_thread),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_config_defaults),
      cmocka_unit_test(test_task_api_outside_a_task),
      cmocka_unit_test(test_queue_outside_a_task),
      cmocka_unit_test(test_handles_used_from_a_foreign_thread),
      cmocka_unit_test(test_run_rejects_bad_arguments),
      cmocka_unit_test(test_run_accepts_smallest_stack),
      cmocka_unit_test(test_run_inside_a_task_is_busy),
      cmocka_unit_test(test_argument_errors_inside_a_task),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
