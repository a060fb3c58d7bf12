/*
 * The test harness shared by tests/api and tests/stress.
 *
 * Test bodies run inside weft_run(), on worker threads and on coroutine
 * stacks. cmocka's assert_*() report a failure by longjmp()ing to the test
 * runner, which is not safe from a coroutine on a worker thread, so the code
 * that runs inside tasks uses the CHECK*() macros instead:
 *
 *  1. A failing CHECK records "file:line: expression (values)" into a global
 *     (the first failure is kept, later ones are counted and the first few
 *     printed to stderr at once, so that a test which then hangs until its
 *     CTest TIMEOUT still says why) and execution goes on.
 *  2. run_in_weft() runs a body as the main task of a fresh runtime, asserts
 *     that weft_run() returned 0 and that the body ran, and then fails the
 *     cmocka test with the recorded message if any CHECK failed.
 *  3. Code that calls weft_run() itself calls harness_reset() before and
 *     harness_assert_clean() after.
 *
 * Everything here is static so that each test executable gets its own copy;
 * functions are static inline so that unused ones draw no warning.
 */
#ifndef WEFT_TESTS_HARNESS_H
#define WEFT_TESTS_HARNESS_H

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weft.h>

/* Sizes of the heavy tests: sanitizer builds run 5-20x slower and TSan keeps
 * a large state per fiber, so they may use smaller but still meaningful
 * sizes. Normal builds always use the first value. */
#if defined(WEFT_SANITIZE_THREAD)
#define HARNESS_SIZE(normal, tsan, asan) (tsan)
#define HARNESS_SLOWDOWN 8
#elif defined(WEFT_SANITIZE_ADDRESS)
#define HARNESS_SIZE(normal, tsan, asan) (asan)
#define HARNESS_SLOWDOWN 4
#else
#define HARNESS_SIZE(normal, tsan, asan) (normal)
#define HARNESS_SLOWDOWN 1
#endif

/* ---- failure recording (usable from any thread and any task) ---------- */

static atomic_int harness_failures;
static pthread_mutex_t harness_mutex = PTHREAD_MUTEX_INITIALIZER;
static char harness_first[1024];

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void harness_fail(const char *file, int line, const char *fmt,
                                ...) {
  char msg[768];
  va_list ap;
  int n;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  n = atomic_fetch_add(&harness_failures, 1);
  pthread_mutex_lock(&harness_mutex);
  if (n == 0)
    snprintf(harness_first, sizeof harness_first, "%s:%d: CHECK failed: %s",
             file, line, msg);
  if (n < 10)
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, msg);
  pthread_mutex_unlock(&harness_mutex);
}

/* Record a failure if cond is false; never leaves the calling task. */
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      harness_fail(__FILE__, __LINE__, "%s", #cond);                           \
  } while (0)

/* CHECK(a == b) for integers, printing both values. */
#define CHECK_EQ(a, b)                                                         \
  do {                                                                         \
    long long check_a_ = (long long)(a);                                       \
    long long check_b_ = (long long)(b);                                       \
    if (check_a_ != check_b_)                                                  \
      harness_fail(__FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, #b,      \
                   check_a_, check_b_);                                        \
  } while (0)

/* CHECK(a <= b) for integers, printing both values. */
#define CHECK_LE(a, b)                                                         \
  do {                                                                         \
    long long check_a_ = (long long)(a);                                       \
    long long check_b_ = (long long)(b);                                       \
    if (!(check_a_ <= check_b_))                                               \
      harness_fail(__FILE__, __LINE__, "%s <= %s (%lld vs %lld)", #a, #b,      \
                   check_a_, check_b_);                                        \
  } while (0)

/* CHECK that a weft call returned the expected code, naming both. */
#define CHECK_RC(expr, expected)                                               \
  do {                                                                         \
    int check_rc_ = (int)(expr);                                               \
    int check_want_ = (int)(expected);                                         \
    if (check_rc_ != check_want_)                                              \
      harness_fail(__FILE__, __LINE__, "%s returned %d (%s), expected %d (%s)", \
                   #expr, check_rc_, weft_err_name(check_rc_), check_want_,    \
                   weft_err_name(check_want_));                                \
  } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, 0)

/* Forget earlier failures (call before a weft_run() of your own). */
static inline void harness_reset(void) {
  pthread_mutex_lock(&harness_mutex);
  atomic_store(&harness_failures, 0);
  harness_first[0] = '\0';
  pthread_mutex_unlock(&harness_mutex);
}

/* Fail the current cmocka test if any CHECK failed since harness_reset().
 * Call on the test's own thread, outside weft_run(). */
static inline void harness_assert_clean(void) {
  int n = atomic_load(&harness_failures);

  if (n != 0) {
    char copy[sizeof harness_first];

    pthread_mutex_lock(&harness_mutex);
    memcpy(copy, harness_first, sizeof copy);
    pthread_mutex_unlock(&harness_mutex);
    fail_msg("%d CHECK failure(s) inside the runtime; first: %s", n, copy);
  }
}

/* ---- running a body inside a runtime ----------------------------------- */

typedef struct harness_main {
  weft_task_fn fn;  /* the body */
  void *arg;        /* its argument */
  atomic_int ran;   /* set once the body started, as a task */
} harness_main_t;

static inline void *harness_main_task(void *p) {
  harness_main_t *m = p;

  CHECK(weft_task_current() != NULL);
  atomic_store(&m->ran, 1);
  return m->fn(m->arg);
}

/* Run fn(arg) as the main task of a runtime configured by cfg (NULL for the
 * defaults), assert that weft_run() returned 0, that fn ran and that no
 * CHECK failed; return fn's result. */
static inline void *run_in_weft_cfg(weft_task_fn fn, void *arg,
                                    const weft_config_t *cfg) {
  harness_main_t m;
  void *result = NULL;
  int rc;

  m.fn = fn;
  m.arg = arg;
  atomic_init(&m.ran, 0);
  harness_reset();
  rc = weft_run(harness_main_task, &m, cfg, &result);
  harness_assert_clean();
  if (rc != 0)
    fail_msg("weft_run returned %d (%s)", rc, weft_err_name(rc));
  assert_int_equal(atomic_load(&m.ran), 1);
  return result;
}

/* run_in_weft_cfg() with the default configuration and `workers` workers. */
static inline void *run_in_weft(weft_task_fn fn, void *arg, unsigned workers) {
  weft_config_t cfg;

  weft_config_init(&cfg);
  cfg.workers = workers;
  return run_in_weft_cfg(fn, arg, &cfg);
}

/* run_in_weft_cfg() in deterministic mode (one worker, no LIFO slot). */
static inline void *run_in_weft_deterministic(weft_task_fn fn, void *arg) {
  weft_config_t cfg;

  weft_config_init(&cfg);
  cfg.deterministic = 1;
  return run_in_weft_cfg(fn, arg, &cfg);
}

/* ---- small utilities ---------------------------------------------------- */

/* Milliseconds of CLOCK_MONOTONIC, independent of the runtime's clock. */
static inline double harness_now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Burn CPU for about us microseconds without suspending. */
static inline void harness_spin_us(double us) {
  double end = harness_now_ms() + us / 1e3;

  while (harness_now_ms() < end) {
  }
}

/* splitmix64: a pseudo-random generator whose state a task keeps in a local
 * variable (never in thread-local storage, which changes under a task). */
static inline uint64_t harness_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A uniformly distributed integer in [lo, hi]. */
static inline uint64_t harness_rand_range(uint64_t *state, uint64_t lo,
                                          uint64_t hi) {
  return lo + harness_rand(state) % (hi - lo + 1);
}

/* An append-only log of short strings, safe from any task: the ordering
 * tests compare it with the trace asyncio prints. */
#define HARNESS_LOG_MAX 256
typedef struct harness_log {
  pthread_mutex_t mutex;
  size_t n;
  char lines[HARNESS_LOG_MAX][48];
} harness_log_t;

static inline void harness_log_init(harness_log_t *log) {
  pthread_mutex_init(&log->mutex, NULL);
  log->n = 0;
}

static inline void harness_log_destroy(harness_log_t *log) {
  pthread_mutex_destroy(&log->mutex);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline void harness_log(harness_log_t *log, const char *fmt, ...) {
  va_list ap;

  pthread_mutex_lock(&log->mutex);
  if (log->n < HARNESS_LOG_MAX) {
    va_start(ap, fmt);
    vsnprintf(log->lines[log->n], sizeof log->lines[0], fmt, ap);
    va_end(ap);
  }
  log->n++;
  pthread_mutex_unlock(&log->mutex);
}

/* cmocka-assert that log holds exactly the n lines of want (on the test's
 * own thread, after weft_run() returned); prints both on a mismatch. */
static inline void harness_log_expect(harness_log_t *log,
                                      const char *const *want, size_t n) {
  size_t i;
  int same = log->n == n;

  for (i = 0; same && i < n; i++)
    same = strcmp(log->lines[i], want[i]) == 0;
  if (!same) {
    fprintf(stderr, "%-4s %-34s %s\n", "#", "expected", "got");
    for (i = 0; i < n || i < log->n; i++)
      fprintf(stderr, "%-4zu %-34s %s\n", i, i < n ? want[i] : "-",
              i < log->n && i < HARNESS_LOG_MAX ? log->lines[i] : "-");
    fail_msg("the order differs from asyncio's (%zu lines, expected %zu)",
             log->n, n);
  }
}

#define HARNESS_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- placing tasks on workers -------------------------------------------- */

/* Spawn fn(arg) pinned to worker `pin`. */
static inline int harness_spawn_pinned(weft_task_fn fn, void *arg, int pin,
                                       weft_task_t **out) {
  weft_spawn_opts_t o;
  weft_spawn_opts_init(&o);
  o.pin = pin;
  return weft_spawn_ex(&o, fn, arg, out);
}

/* Spawn the i-th helper of a race on a worker other than 0 (round robin
 * over 1..workers-1), so that a driver pinned to worker 0 and the helper
 * really run in parallel. Needs 2 workers or more. */
static inline int harness_spawn_elsewhere(weft_task_fn fn, void *arg, int i,
                                          weft_task_t **out) {
  return harness_spawn_pinned(fn, arg, 1 + i % (weft_worker_count() - 1),
                              out);
}

/* Race a cancellation of t against a grant to it (grant(arg): a release, a
 * set, a notify; it checks its own result). The i-th round of a race picks
 * one of four orders, so that both outcomes and the photo finish between
 * them all happen: grant then cancel, cancel then grant, cancel, yield,
 * grant, and cancel, spin 0..15 us, grant. */
static inline void harness_race_cancel(int i, weft_task_t *t,
                                       void (*grant)(void *), void *arg) {
  switch (i % 4) {
  case 0:
    grant(arg);
    weft_task_cancel(t);
    break;
  case 1:
    weft_task_cancel(t);
    grant(arg);
    break;
  case 2:
    weft_task_cancel(t);
    CHECK_OK(weft_yield());
    grant(arg);
    break;
  default:
    weft_task_cancel(t);
    harness_spin_us((double)(i % 16));
    grant(arg);
    break;
  }
}

/* Run fn(arg) as a task pinned to worker 0 and await it (a race driver). */
static inline void harness_run_on_worker0(weft_task_fn fn, void *arg) {
  weft_task_t *t;
  CHECK_OK(harness_spawn_pinned(fn, arg, 0, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
}

#endif /* WEFT_TESTS_HARNESS_H */
