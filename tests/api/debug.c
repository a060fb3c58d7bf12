/*
 * api_debug: debug mode (weft_config_t.debug, the WEFT_DEBUG environment
 * variable; weft/debug.h). Reports are captured with the config's callback,
 * or, outside any runtime, from stderr (redirected to a file).
 *
 *  - a failed task whose status nobody read is reported once when its last
 *    reference goes; not when its status was read (await, result, gather),
 *    not when it was cancelled, not outside debug mode;
 *  - a suspending call outside a task is reported with its name and a
 *    backtrace naming the caller; not outside debug mode;
 *  - a handle released twice, or used after its release, is reported and
 *    the call returns WEFT_EINVAL instead of freeing a running task's record;
 *  - a runtime handle used for a submission after its runtime ended is
 *    reported (the call still returns WEFT_ERUNTIME_SHUTDOWN);
 *  - WEFT_DEBUG=1 turns debug mode (and its 100 ms watchdog) on, "0" not.
 */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPORTS 16

typedef struct seen {
  weft_report_kind_t kind;
  char name[64];
  int status;
  char what[64];
  uint64_t threshold_ms;
  char text[2048];
} seen_t;

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static seen_t seen[MAX_REPORTS];
static int nseen;

static void capture(const weft_watchdog_report_t *r, void *arg) {
  (void)arg;
  pthread_mutex_lock(&seen_mu);
  if (nseen < MAX_REPORTS) {
    seen_t *s = &seen[nseen];
    s->kind = r->kind;
    snprintf(s->name, sizeof(s->name), "%s", r->task_name);
    s->status = r->status;
    snprintf(s->what, sizeof(s->what), "%s", r->what);
    s->threshold_ms = r->threshold_ms;
    snprintf(s->text, sizeof(s->text), "%s", r->text);
  }
  nseen++;
  pthread_mutex_unlock(&seen_mu);
}

static int count(weft_report_kind_t kind) {
  int n = 0;
  pthread_mutex_lock(&seen_mu);
  for (int i = 0; i < nseen && i < MAX_REPORTS; i++)
    n += seen[i].kind == kind;
  pthread_mutex_unlock(&seen_mu);
  return n;
}

static const seen_t *first(weft_report_kind_t kind) {
  for (int i = 0; i < nseen && i < MAX_REPORTS; i++)
    if (seen[i].kind == kind)
      return &seen[i];
  return NULL;
}

/* 1 if a report of that kind has needle in its text. */
static int any_text(weft_report_kind_t kind, const char *needle) {
  for (int i = 0; i < nseen && i < MAX_REPORTS; i++)
    if (seen[i].kind == kind && strstr(seen[i].text, needle))
      return 1;
  return 0;
}

static void print_seen(void) {
  for (int i = 0; i < nseen && i < MAX_REPORTS; i++)
    print_message("report %d (kind %d): %s", i, (int)seen[i].kind,
                  seen[i].text);
}

/* Debug mode's watchdog is not under test here (tests/api/watchdog.c): a
 * worker thread descheduled for 100 ms on a loaded machine would add a
 * report, so it gets the largest threshold, except where wd_default. */
static void run_debug_wd(weft_task_fn fn, void *arg, int debug,
                         int wd_default) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 2;
  cfg.debug = debug;
  cfg.watchdog_ms = wd_default ? 0 : 3600000;
  cfg.watchdog_fn = capture;
  pthread_mutex_lock(&seen_mu);
  nseen = 0;
  memset(seen, 0, sizeof(seen));
  pthread_mutex_unlock(&seen_mu);
  run_in_weft_cfg(fn, arg, &cfg);
  print_seen();
}

static void run_debug(weft_task_fn fn, void *arg, int debug) {
  run_debug_wd(fn, arg, debug, 0);
}

/* ---- never-retrieved failures ------------------------------------------- */

static atomic_int fail_started;

static void *fails_eio(void *arg) {
  (void)arg;
  CHECK_OK(weft_task_set_name(NULL, "doomed"));
  atomic_store(&fail_started, 1);
  return weft_task_fail(WEFT_EIO);
}

static void *sleeps_long(void *arg) {
  (void)arg;
  (void)weft_sleep(60000);
  return NULL;
}

/* How the main task treats the failed task's handle. */
enum how { DROP, AWAIT, RESULT, GATHER, DETACHED, CANCELLED };

static void *failure_main(void *arg) {
  enum how how = (enum how)(intptr_t)arg;
  weft_task_t *t = NULL;
  if (how == DETACHED) {
    atomic_store(&fail_started, 0);
    CHECK_OK(weft_spawn(fails_eio, NULL, NULL));
    /* Started, so the shutdown cannot cancel it before it fails; its own
     * reference, the only one, goes when it completes. */
    HARNESS_WAIT(atomic_load(&fail_started) == 1);
    return NULL;
  }
  if (how == CANCELLED) {
    CHECK_OK(weft_spawn(sleeps_long, NULL, &t));
    CHECK_OK(weft_yield());
    CHECK(weft_task_cancel(t) >= 0);
    HARNESS_WAIT(weft_task_done(t) == 1);
    weft_task_unref(t);
    return NULL;
  }
  CHECK_OK(weft_spawn(fails_eio, NULL, &t));
  switch (how) {
  case DROP:
    HARNESS_WAIT(weft_task_done(t) == 1); /* done is no retrieval */
    break;
  case AWAIT:
    CHECK_RC(weft_task_await(t, NULL), WEFT_EIO);
    break;
  case RESULT:
    HARNESS_WAIT(weft_task_done(t) == 1);
    CHECK_RC(weft_task_result(t, NULL), WEFT_EIO);
    break;
  case GATHER:
    CHECK_RC(weft_gather(&t, 1, NULL), WEFT_EIO);
    break;
  default:
    break;
  }
  weft_task_unref(t);
  return NULL;
}

static void test_unretrieved_failure_reported_once(void **state) {
  (void)state;
  run_debug(failure_main, (void *)(intptr_t)DROP, 1);
  assert_int_equal(nseen, 1);
  const seen_t *s = first(WEFT_REPORT_UNRETRIEVED);
  assert_non_null(s);
  assert_int_equal(s->status, WEFT_EIO);
  assert_string_equal(s->name, "doomed");
  assert_non_null(strstr(s->text, "never read"));
  assert_non_null(strstr(s->text, "failed with EIO"));
}

static void test_detached_failure_reported(void **state) {
  (void)state;
  run_debug(failure_main, (void *)(intptr_t)DETACHED, 1);
  assert_int_equal(nseen, 1);
  assert_int_equal(count(WEFT_REPORT_UNRETRIEVED), 1);
}

static void test_retrieved_failure_not_reported(void **state) {
  (void)state;
  run_debug(failure_main, (void *)(intptr_t)AWAIT, 1);
  assert_int_equal(nseen, 0);
  run_debug(failure_main, (void *)(intptr_t)RESULT, 1);
  assert_int_equal(nseen, 0);
  run_debug(failure_main, (void *)(intptr_t)GATHER, 1);
  assert_int_equal(nseen, 0);
}

static void test_cancelled_task_not_reported(void **state) {
  (void)state;
  run_debug(failure_main, (void *)(intptr_t)CANCELLED, 1);
  assert_int_equal(nseen, 0);
}

static void test_nothing_reported_outside_debug_mode(void **state) {
  (void)state;
  run_debug(failure_main, (void *)(intptr_t)DROP, 0);
  assert_int_equal(nseen, 0);
}

/* ---- handles released twice, or used after release ---------------------- */

typedef struct gate {
  weft_event_t *ev;
  atomic_int finished;
} gate_t;

static void *waits_gate(void *arg) {
  gate_t *g = arg;
  CHECK_OK(weft_event_wait(g->ev));
  atomic_store(&g->finished, 1);
  return NULL;
}

static void *double_unref_main(void *arg) {
  (void)arg;
  gate_t g;
  atomic_init(&g.finished, 0);
  CHECK_OK(weft_event_new(&g.ev));
  weft_task_t *t;
  CHECK_OK(weft_spawn(waits_gate, &g, &t));
  weft_task_unref(t);
  weft_task_unref(t); /* the bug: the task still runs and holds its own */
  CHECK_OK(weft_event_set(g.ev));
  HARNESS_WAIT(atomic_load(&g.finished) == 1);
  CHECK_OK(weft_yield());
  CHECK_OK(weft_event_free(g.ev));
  return NULL;
}

static void test_double_unref_caught(void **state) {
  (void)state;
  run_debug(double_unref_main, NULL, 1);
  assert_int_equal(nseen, 1);
  const seen_t *s = first(WEFT_REPORT_MISUSE);
  assert_non_null(s);
  assert_string_equal(s->what, "weft_task_unref");
  assert_int_equal(s->status, WEFT_EINVAL);
}

static void *returns_quickly(void *arg) {
  (void)arg;
  return NULL;
}

static void *use_after_release_main(void *arg) {
  (void)arg;
  weft_task_t *t;
  CHECK_OK(weft_spawn(returns_quickly, NULL, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t); /* the last reference: the record is free */
  /* The bugs, each caught while the record is not reused (nothing is
   * spawned meanwhile): */
  CHECK_RC(weft_task_done(t), WEFT_EINVAL);
  CHECK_RC(weft_task_await(t, NULL), WEFT_EINVAL);
  weft_task_unref(t);
  return NULL;
}

static void test_use_after_release_caught(void **state) {
  (void)state;
  run_debug(use_after_release_main, NULL, 1);
  assert_int_equal(nseen, 3);
  assert_int_equal(count(WEFT_REPORT_MISUSE), 3);
  assert_string_equal(seen[0].what, "weft_task_done");
  assert_string_equal(seen[1].what, "weft_task_await");
  assert_string_equal(seen[2].what, "weft_task_unref");
  assert_non_null(strstr(seen[0].text, "already released"));
}

/* ---- a runtime handle used after its runtime ended ------------------------ */

static weft_runtime_t *kept_rt;

static void *keeps_runtime(void *arg) {
  (void)arg;
  kept_rt = weft_runtime_ref(weft_runtime_current());
  CHECK(kept_rt != NULL);
  return NULL;
}

static void test_submit_after_end_reported(void **state) {
  (void)state;
  run_debug(keeps_runtime, NULL, 1);
  assert_int_equal(nseen, 0);
  assert_int_equal(weft_runtime_submit(kept_rt, returns_quickly, NULL, NULL),
                   WEFT_ERUNTIME_SHUTDOWN);
  weft_runtime_unref(kept_rt);
  print_seen();
  assert_int_equal(nseen, 1);
  assert_int_equal(seen[0].kind, WEFT_REPORT_MISUSE);
  assert_string_equal(seen[0].what, "weft_runtime_submit");
  assert_int_equal(seen[0].status, WEFT_ERUNTIME_SHUTDOWN);
}

/* ---- a suspending call outside a task ------------------------------------ */

/* Named in the report's backtrace (non-static, noinline; -rdynamic). */
int weft_test_debug_sleeps_outside(void);
__attribute__((noinline)) int weft_test_debug_sleeps_outside(void) {
  int rc = weft_sleep(1);
  __asm__ __volatile__("" ::: "memory"); /* no tail call: keep this frame */
  return rc;
}

/* Run weft_test_debug_sleeps_outside() with stderr sent to a file; return
 * what was written there (static buffer) and its return code in *rc. */
static const char *stderr_of_sleep_outside(int *rc) {
  static char buf[8192];
  char path[] = "/tmp/weft-debug-test-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fd, 2) == 2);
  *rc = weft_test_debug_sleeps_outside();
  fflush(stderr);
  assert_true(dup2(saved, 2) == 2);
  close(saved);
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  close(fd);
  buf[n > 0 ? n : 0] = 0;
  return buf;
}

static void test_suspending_call_outside_task_reported(void **state) {
  (void)state;
  int rc;
  setenv("WEFT_DEBUG", "1", 1);
  const char *out = stderr_of_sleep_outside(&rc);
  unsetenv("WEFT_DEBUG");
  print_message("%s", out);
  assert_int_equal(rc, WEFT_ENOTTASK);
  assert_non_null(strstr(out, "weft_sleep() called outside a task"));
  assert_non_null(strstr(out, "returns ENOTTASK"));
  assert_non_null(strstr(out, "weft_test_debug_sleeps_outside"));

  out = stderr_of_sleep_outside(&rc); /* debug mode off: silence */
  assert_int_equal(rc, WEFT_ENOTTASK);
  assert_string_equal(out, "");
}

/* ---- WEFT_DEBUG in the environment ---------------------------------------- */

void weft_test_debug_busy(double ms);
__attribute__((noinline)) void weft_test_debug_busy(double ms) {
  double end = harness_now_ms() + ms;
  while (harness_now_ms() < end)
    __asm__ __volatile__("" ::: "memory");
}

static void *env_main(void *arg) {
  (void)arg;
  CHECK_OK(weft_yield());
  weft_test_debug_busy(250); /* the debug-mode watchdog: 100 ms */
  return failure_main((void *)(intptr_t)DROP);
}

static void test_environment_turns_debug_on(void **state) {
  (void)state;
  setenv("WEFT_DEBUG", "1", 1);
  run_debug_wd(env_main, NULL, 0, 1);
  unsetenv("WEFT_DEBUG");
  assert_int_equal(count(WEFT_REPORT_UNRETRIEVED), 1);
  /* The watchdog is on, at 100 ms: the busy stretch is reported (a
   * descheduled worker could add another report, so: at least one, and
   * one names the busy function). */
  assert_true(count(WEFT_REPORT_BLOCKING) >= 1);
  assert_int_equal(first(WEFT_REPORT_BLOCKING)->threshold_ms,
                   WEFT_WATCHDOG_MS_DEBUG);
  assert_true(any_text(WEFT_REPORT_BLOCKING, "weft_test_debug_busy"));

  setenv("WEFT_DEBUG", "0", 1);
  run_debug_wd(failure_main, (void *)(intptr_t)DROP, 0, 1);
  unsetenv("WEFT_DEBUG");
  assert_int_equal(nseen, 0);
}

int main(void) {
  unsetenv("WEFT_DEBUG");
  unsetenv("WEFT_WATCHDOG_MS");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unretrieved_failure_reported_once),
      cmocka_unit_test(test_detached_failure_reported),
      cmocka_unit_test(test_retrieved_failure_not_reported),
      cmocka_unit_test(test_cancelled_task_not_reported),
      cmocka_unit_test(test_nothing_reported_outside_debug_mode),
      cmocka_unit_test(test_double_unref_caught),
      cmocka_unit_test(test_use_after_release_caught),
      cmocka_unit_test(test_submit_after_end_reported),
      cmocka_unit_test(test_suspending_call_outside_task_reported),
      cmocka_unit_test(test_environment_turns_debug_on),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
