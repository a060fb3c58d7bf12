/*
 * api_watchdog: blocking detection (weft/debug.h, weft_config_t.watchdog_ms).
 *
 * A task that runs longer than the threshold without suspending is reported
 * once per episode, while it still runs, with its name, id, worker, how long
 * so far and a backtrace naming the function it is busy in. The busy
 * function below is non-static and noinline, and this executable is linked
 * with -rdynamic (tests/CMakeLists.txt), so dladdr() can name it.
 *
 * Timing: the acceptance bound (a 300 ms busy task reported within
 * 50 ms of crossing a 100 ms threshold, "ran for" between 100 and 150 ms) is
 * asserted as such in plain builds; sanitizer builds (slower, and TSan
 * delivers signals only at its own safe points) multiply the slack by
 * HARNESS_SLOWDOWN, but still require the report, once, while the task runs.
 */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORTS 16

typedef struct seen {
  weft_report_kind_t kind;
  uint64_t task_id;
  char name[64];
  int worker;
  uint64_t ran_ms;
  uint64_t threshold_ms;
  double at_ms;     /* harness_now_ms() when received */
  int task_running; /* the busy task was still in its loop */
  int names_busy;   /* the backtrace names weft_test_watchdog_busy */
  size_t npcs;
  char text[2048];
} seen_t;

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static seen_t seen[MAX_REPORTS];
static int nseen;
static atomic_int busy_running;

static void capture(const weft_watchdog_report_t *r, void *arg) {
  (void)arg;
  pthread_mutex_lock(&seen_mu);
  if (nseen < MAX_REPORTS) {
    seen_t *s = &seen[nseen];
    s->kind = r->kind;
    s->task_id = r->task_id;
    snprintf(s->name, sizeof(s->name), "%s", r->task_name);
    s->worker = r->worker;
    s->ran_ms = r->ran_ms;
    s->threshold_ms = r->threshold_ms;
    s->at_ms = harness_now_ms();
    s->task_running = atomic_load(&busy_running);
    s->names_busy = strstr(r->text, "weft_test_watchdog_busy") != NULL;
    s->npcs = r->npcs;
    snprintf(s->text, sizeof(s->text), "%s", r->text);
  }
  nseen++;
  pthread_mutex_unlock(&seen_mu);
}

static void seen_reset(void) {
  pthread_mutex_lock(&seen_mu);
  nseen = 0;
  memset(seen, 0, sizeof(seen));
  pthread_mutex_unlock(&seen_mu);
}

/* The function the backtrace must name: runs for ms without suspending. */
void weft_test_watchdog_busy(double ms);
__attribute__((noinline)) void weft_test_watchdog_busy(double ms) {
  double end = harness_now_ms() + ms;
  while (harness_now_ms() < end)
    __asm__ __volatile__("" ::: "memory");
}

typedef struct busy_plan {
  double ms;         /* each busy stretch */
  int episodes;      /* stretches, separated by a weft_yield() */
  double start_ms;   /* when the first stretch began */
  double end_ms;     /* when the last one ended */
  uint64_t id;       /* the task's id, from its default name */
} busy_plan_t;

static void *busy_main(void *arg) {
  busy_plan_t *p = arg;
  CHECK_OK(weft_task_set_name(NULL, "busy-one"));
  for (int i = 0; i < p->episodes; i++) {
    /* Each stretch is a poll of its own, which begins here. */
    CHECK_OK(weft_yield());
    if (i == 0)
      p->start_ms = harness_now_ms();
    atomic_store(&busy_running, 1);
    weft_test_watchdog_busy(p->ms);
    atomic_store(&busy_running, 0);
  }
  p->end_ms = harness_now_ms();
  return NULL;
}

static void config(weft_config_t *cfg, uint64_t ms) {
  weft_config_init(cfg);
  cfg->workers = 2;
  cfg->watchdog_ms = ms;
  cfg->watchdog_fn = capture;
  cfg->watchdog_arg = NULL;
}

static void print_seen(void) {
  for (int i = 0; i < nseen && i < MAX_REPORTS; i++)
    print_message("report %d: ran %llu ms, at +%.1f ms:\n%s", i,
                  (unsigned long long)seen[i].ran_ms, seen[i].at_ms,
                  seen[i].text);
}

/* The acceptance test: busy 300 ms, threshold 100 ms. The structure (one
 * report, while the task runs, naming the busy function, ran >= 100 ms) is
 * asserted at every attempt; the latency bound is a bound on weft's own
 * delay (two check periods, 20 ms) plus the OS's delay in running the
 * watchdog thread, which on a loaded 2-core machine can alone exceed 30 ms:
 * so up to three attempts are made and one must meet the bound. */
static int busy_attempt(void) {
  weft_config_t cfg;
  config(&cfg, 100);
  seen_reset();
  busy_plan_t p = {.ms = 300, .episodes = 1};
  run_in_weft_cfg(busy_main, &p, &cfg);
  print_seen();
  assert_int_equal(nseen, 1);
  seen_t *s = &seen[0];
  assert_int_equal(s->kind, WEFT_REPORT_BLOCKING);
  assert_string_equal(s->name, "busy-one");
  assert_true(s->worker >= 0 && s->worker < 2);
  assert_int_equal(s->threshold_ms, 100);
  assert_true(s->npcs > 0);
  assert_true(s->names_busy);
  assert_non_null(strstr(s->text, "busy-one"));
  /* Received while the task was still busy, so before it ended. */
  assert_true(s->task_running);
  assert_true(s->at_ms < p.end_ms);
  assert_true(s->ran_ms >= 100);
  assert_true(s->at_ms - p.start_ms >= 99); /* the poll began just before */
  /* "ran for" between 100 and 150 ms; received within 50 ms of the
   * crossing (start + 100 ms). */
  return s->ran_ms <= 100 + 50 * HARNESS_SLOWDOWN &&
         s->at_ms - p.start_ms <= 100 + 50 * HARNESS_SLOWDOWN;
}

static void test_busy_task_reported_once_in_time(void **state) {
  (void)state;
  int ok = 0;
  for (int i = 0; i < 3 && !ok; i++)
    ok = busy_attempt();
  assert_true(ok);
}

/* Two busy stretches separated by a suspension: two episodes, two reports,
 * of the same task. */
static void test_second_episode_reported_again(void **state) {
  (void)state;
  weft_config_t cfg;
  config(&cfg, 100);
  seen_reset();
  busy_plan_t p = {.ms = 250, .episodes = 2};
  run_in_weft_cfg(busy_main, &p, &cfg);
  print_seen();
  assert_int_equal(nseen, 2);
  assert_int_equal(seen[0].task_id, seen[1].task_id);
  assert_true(seen[0].names_busy && seen[1].names_busy);
  assert_true(seen[0].task_running && seen[1].task_running);
  assert_true(seen[1].at_ms - seen[0].at_ms >= 100);
}

/* Off by default: the same busy task, no watchdog_ms, nothing reported. */
static void test_off_by_default(void **state) {
  (void)state;
  weft_config_t cfg;
  config(&cfg, 0);
  seen_reset();
  busy_plan_t p = {.ms = 250, .episodes = 1};
  run_in_weft_cfg(busy_main, &p, &cfg);
  print_seen();
  assert_int_equal(nseen, 0);
}

/* A task that suspends often is never reported, however long it lives. */
static void *yields_often(void *arg) {
  (void)arg;
  double end = harness_now_ms() + 400;
  while (harness_now_ms() < end) {
    weft_test_watchdog_busy(2);
    CHECK_OK(weft_yield());
  }
  return NULL;
}

static void test_suspending_task_not_reported(void **state) {
  (void)state;
  weft_config_t cfg;
  /* 300 ms: polls of 2 ms must never be reported, but a worker thread
   * descheduled for 100 ms (loaded 2-core machines, sanitizers) looks like
   * a long poll; one of 300 ms does not happen there. */
  config(&cfg, 300);
  seen_reset();
  run_in_weft_cfg(yields_often, NULL, &cfg);
  print_seen();
  assert_int_equal(nseen, 0);
}

/* Several busy tasks at once, one per worker: each reported once. */
static void *busy_child(void *arg) {
  (void)arg;
  weft_test_watchdog_busy(250);
  return NULL;
}

static void *two_busy_main(void *arg) {
  (void)arg;
  weft_task_t *t[2];
  CHECK_OK(weft_spawn(busy_child, NULL, &t[0]));
  CHECK_OK(weft_spawn(busy_child, NULL, &t[1]));
  CHECK_OK(weft_gather(t, 2, NULL));
  weft_task_unref(t[0]);
  weft_task_unref(t[1]);
  return NULL;
}

static void test_each_busy_task_reported(void **state) {
  (void)state;
  weft_config_t cfg;
  config(&cfg, 100);
  cfg.workers = 3; /* main parks in gather; the two children each get one */
  seen_reset();
  run_in_weft_cfg(two_busy_main, NULL, &cfg);
  print_seen();
  /* Each child runs 250 ms in one stretch, wherever it runs: one report
   * each (two if they ran one after the other on one worker, too). */
  assert_int_equal(nseen, 2);
  assert_true(seen[0].task_id != seen[1].task_id);
  assert_true(seen[0].names_busy && seen[1].names_busy);
}

/* WEFT_WATCHDOG_MS in the environment turns it on when the field is 0. */
static void test_environment_threshold(void **state) {
  (void)state;
  weft_config_t cfg;
  config(&cfg, 0);
  seen_reset();
  setenv("WEFT_WATCHDOG_MS", "100", 1);
  busy_plan_t p = {.ms = 250, .episodes = 1};
  run_in_weft_cfg(busy_main, &p, &cfg);
  unsetenv("WEFT_WATCHDOG_MS");
  print_seen();
  assert_int_equal(nseen, 1);
  assert_int_equal(seen[0].threshold_ms, 100);
}

/* Another sampling signal works the same. */
static void test_other_signal(void **state) {
  (void)state;
  weft_config_t cfg;
  config(&cfg, 100);
  cfg.watchdog_signal = SIGRTMIN + 3;
  seen_reset();
  busy_plan_t p = {.ms = 250, .episodes = 1};
  run_in_weft_cfg(busy_main, &p, &cfg);
  print_seen();
  assert_int_equal(nseen, 1);
  assert_true(seen[0].names_busy);
}

/* A worker thread that blocks the sampling signal: the poll is still
 * reported, once, without a sample (no name, no backtrace). One worker: it
 * runs on this thread, whose mask the test sets. */
static void test_blocked_signal_reported_unsampled(void **state) {
  (void)state;
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGURG);
  assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  weft_config_t cfg;
  config(&cfg, 100);
  cfg.workers = 1;
  seen_reset();
  busy_plan_t p = {.ms = 400, .episodes = 1};
  run_in_weft_cfg(busy_main, &p, &cfg);
  assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
  print_seen();
  assert_int_equal(nseen, 1);
  assert_int_equal(seen[0].kind, WEFT_REPORT_BLOCKING);
  assert_int_equal(seen[0].npcs, 0);
  assert_int_equal(seen[0].worker, 0);
  assert_true(seen[0].task_running);
  assert_true(seen[0].ran_ms >= 100);
  assert_non_null(strstr(seen[0].text, "not sampled"));
}

static void *never_runs(void *arg) {
  (void)arg;
  return NULL;
}

static void test_bad_config(void **state) {
  (void)state;
  weft_config_t cfg;
  config(&cfg, 100);
  cfg.watchdog_signal = SIGKILL;
  assert_int_equal(weft_run(never_runs, NULL, &cfg, NULL), WEFT_EINVAL);
  cfg.watchdog_signal = SIGSEGV;
  assert_int_equal(weft_run(never_runs, NULL, &cfg, NULL), WEFT_EINVAL);
  cfg.watchdog_signal = -1;
  assert_int_equal(weft_run(never_runs, NULL, &cfg, NULL), WEFT_EINVAL);
  cfg.watchdog_signal = 0;
  cfg.watchdog_ms = 3600001;
  assert_int_equal(weft_run(never_runs, NULL, &cfg, NULL), WEFT_EINVAL);
}

int main(void) {
  unsetenv("WEFT_DEBUG");
  unsetenv("WEFT_WATCHDOG_MS");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_busy_task_reported_once_in_time),
      cmocka_unit_test(test_second_episode_reported_again),
      cmocka_unit_test(test_off_by_default),
      cmocka_unit_test(test_suspending_task_not_reported),
      cmocka_unit_test(test_each_busy_task_reported),
      cmocka_unit_test(test_environment_threshold),
      cmocka_unit_test(test_other_signal),
      cmocka_unit_test(test_blocked_signal_reported_unsampled),
      cmocka_unit_test(test_bad_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
