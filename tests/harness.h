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
 * Tests never depend on timing (the suite runs under TSan on loaded 2-core
 * machines, where a worker thread can lose its core for tens of ms between
 * any two instructions):
 *
 *  4. Never assume that a fixed sleep lets another task get somewhere. Wait
 *     for the condition itself: HARNESS_WAIT(cond) polls cond (yielding, then
 *     sleeping 1 ms) until it holds or HARNESS_WAIT_MS passes; on the bound it
 *     records a CHECK failure naming cond and evaluates to 0, so the caller
 *     bails out (cancels what it started, aborts its barrier, returns). It
 *     works inside tasks and on plain threads.
 *  5. To know that a task is parked in a suspending call, poll what the
 *     primitive shows (weft_barrier_n_waiting, weft_lock_locked,
 *     weft_semaphore_value, weft_queue_size, weft_event_is_set,
 *     weft_task_done); where it shows nothing, have the task set a flag just
 *     before the call and wait for the flag with HARNESS_WAIT_PARKED(flag),
 *     which then yields and sleeps a little more. That last step is the only
 *     guess left, so a test may rely on it only where being parked or merely
 *     on the way there gives the same outcome, or where the two tasks share
 *     one worker (1-worker and deterministic runtimes, or both pinned to the
 *     same worker), where seeing the flag after a suspension proves the other
 *     task reached its call.
 *  6. A sleep may stay only where it is the behaviour under test (a timer, a
 *     timeout, a sleeper to cancel). Upper bounds on how long something took
 *     use HARNESS_PROMPT_MS (or more): they catch a lost wake-up, not
 *     slowness. Measurements of weft's speed belong to bench/.
 *  7. A failed check ends its test instead of hanging it: a watchdog runs
 *     beside every weft_run() started through run_in_weft*() or between
 *     harness_reset() and harness_assert_clean(). If weft_run() has not
 *     returned HARNESS_GRACE_MS after the first CHECK failure, or shortly
 *     before the test's CTest TIMEOUT (HARNESS_TIMEOUT_S, passed by
 *     tests/CMakeLists.txt), it prints the first failure and _exit(1)s.
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
#include <unistd.h>

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

/* How long HARNESS_WAIT() waits for a condition before it fails: far beyond
 * anything a correct run needs, even under TSan on a loaded machine. */
#define HARNESS_WAIT_MS (5000.0 * HARNESS_SLOWDOWN)

/* An upper bound for "returned promptly" (a cancelled or woken task, a
 * timeout that fired): it tells a lost wake-up from a late one, and holds
 * under TSan on a loaded 2-core machine. */
#define HARNESS_PROMPT_MS (2000.0 * HARNESS_SLOWDOWN)

/* The watchdog: how long weft_run() may go on after the first CHECK failure,
 * and the CTest TIMEOUT of this executable (tests/CMakeLists.txt passes it;
 * the watchdog fires 10 s before it). */
#define HARNESS_GRACE_MS (20000.0)
#ifndef HARNESS_TIMEOUT_S
#define HARNESS_TIMEOUT_S 120
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

/* ---- the watchdog ---------------------------------------------------------
 *
 * One thread, armed around a weft_run(): it sleeps on harness_wd_cond until
 * disarmed, and wakes every 100 ms to look at the failure count. If the
 * runtime has not returned HARNESS_GRACE_MS after the first CHECK failure
 * (a failed check left some task blocked), or 10 s before CTest would kill
 * the executable, it prints why and ends the process with _exit(1), so that
 * a hang always says why, and quickly. Arm and disarm are called from the
 * test's own thread only; harness_wd_armed is read under harness_wd_mutex. */

static pthread_mutex_t harness_wd_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t harness_wd_cond = PTHREAD_COND_INITIALIZER;
static int harness_wd_armed;       /* a watchdog thread is running */
static pthread_t harness_wd_thread;
static double harness_wd_t0 = -1.0; /* when the first one was armed */

static inline double harness_now_ms(void);

static inline void harness_wd_expire(const char *why) {
  char copy[sizeof harness_first];

  copy[0] = '\0';
  if (pthread_mutex_trylock(&harness_mutex) == 0) {
    memcpy(copy, harness_first, sizeof copy);
    pthread_mutex_unlock(&harness_mutex);
  }
  fprintf(stderr,
          "harness watchdog: weft_run() has not returned %s; %d CHECK "
          "failure(s); first: %s\n",
          why, atomic_load(&harness_failures), copy[0] ? copy : "(none)");
  fflush(stderr);
  _exit(1);
}

static inline void *harness_wd_main(void *arg) {
  double end = harness_wd_t0 + (HARNESS_TIMEOUT_S - 10) * 1e3;
  double failed_at = -1.0;

  (void)arg;
  pthread_mutex_lock(&harness_wd_mutex);
  while (harness_wd_armed) {
    struct timespec ts;
    double now = harness_now_ms();

    if (failed_at < 0 && atomic_load(&harness_failures) > 0)
      failed_at = now;
    if (failed_at >= 0 && now - failed_at > HARNESS_GRACE_MS)
      harness_wd_expire("20 s after the first CHECK failure");
    if (now > end)
      harness_wd_expire("and the test's CTest TIMEOUT is 10 s away");
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000 * 1000 * 1000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000 * 1000 * 1000;
    }
    pthread_cond_timedwait(&harness_wd_cond, &harness_wd_mutex, &ts);
  }
  pthread_mutex_unlock(&harness_wd_mutex);
  return NULL;
}

/* Stop the watchdog (no-op if none runs). */
static inline void harness_watchdog_disarm(void) {
  int armed;

  pthread_mutex_lock(&harness_wd_mutex);
  armed = harness_wd_armed;
  harness_wd_armed = 0;
  pthread_cond_signal(&harness_wd_cond);
  pthread_mutex_unlock(&harness_wd_mutex);
  if (armed)
    pthread_join(harness_wd_thread, NULL);
}

/* Start the watchdog for the weft_run() that follows. */
static inline void harness_watchdog_arm(void) {
  harness_watchdog_disarm();
  if (harness_wd_t0 < 0)
    harness_wd_t0 = harness_now_ms();
  harness_wd_armed = 1;
  if (pthread_create(&harness_wd_thread, NULL, harness_wd_main, NULL) != 0)
    harness_wd_armed = 0; /* no watchdog: CTest's TIMEOUT still applies */
}

/* Forget earlier failures and arm the watchdog (call before a weft_run() of
 * your own, and harness_assert_clean() after it). */
static inline void harness_reset(void) {
  pthread_mutex_lock(&harness_mutex);
  atomic_store(&harness_failures, 0);
  harness_first[0] = '\0';
  pthread_mutex_unlock(&harness_mutex);
  harness_watchdog_arm();
}

/* Disarm the watchdog and fail the current cmocka test if any CHECK failed
 * since harness_reset(). Call on the test's own thread, outside weft_run(). */
static inline void harness_assert_clean(void) {
  int n;

  harness_watchdog_disarm();
  n = atomic_load(&harness_failures);

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

/* ---- waiting for a condition ------------------------------------------- */

typedef struct harness_wait {
  double start;    /* harness_now_ms() when the wait began */
  double deadline; /* when it gives up */
  unsigned polls;  /* polls so far */
} harness_wait_t;

static inline harness_wait_t harness_wait_begin(double bound_ms) {
  harness_wait_t w;

  w.start = harness_now_ms();
  w.deadline = w.start + bound_ms;
  w.polls = 0;
  return w;
}

/* Let others run for a moment: in a task, yield the first few times (cheap
 * when the condition is a few scheduling steps away), then sleep 1 ms (so a
 * long wait does not burn a core that the awaited thread needs); on a plain
 * thread, nanosleep 1 ms. Returns what the suspension returned (0, or
 * WEFT_ECANCELED in a task with a cancellation pending). */
static inline int harness_pause(unsigned n) {
  struct timespec ms = {0, 1000 * 1000};

  if (weft_task_current() != NULL)
    return n < 4 ? weft_yield() : weft_sleep(1);
  nanosleep(&ms, NULL);
  return 0;
}

/* One step of a wait whose condition is still false: pause and return 1 to
 * poll again, or, once the bound has passed (or the waiting task was
 * cancelled, which a poll must not swallow silently), record a CHECK failure
 * naming the condition and return 0. */
static inline int harness_wait_step(harness_wait_t *w, const char *file,
                                    int line, const char *what) {
  double now = harness_now_ms();

  if (now >= w->deadline) {
    harness_fail(file, line, "waited %.0f ms for %s", now - w->start, what);
    return 0;
  }
  if (harness_pause(w->polls++) == WEFT_ECANCELED) {
    harness_fail(file, line, "cancelled while waiting for %s", what);
    return 0;
  }
  return 1;
}

/* Poll cond until it holds (evaluates to 1) or bound_ms has passed: then
 * record a CHECK failure and evaluate to 0, so the caller can bail out.
 * Usable in tasks and on plain threads; cond is evaluated at least once. */
#define HARNESS_WAIT_UNTIL(cond, bound_ms)                                     \
  __extension__({                                                              \
    harness_wait_t harness_w_ = harness_wait_begin(bound_ms);                  \
    int harness_ok_;                                                           \
    while (!(harness_ok_ = !!(cond)) &&                                        \
           harness_wait_step(&harness_w_, __FILE__, __LINE__, #cond)) {        \
    }                                                                          \
    harness_ok_;                                                               \
  })

/* HARNESS_WAIT_UNTIL(cond, HARNESS_WAIT_MS). */
#define HARNESS_WAIT(cond) HARNESS_WAIT_UNTIL(cond, HARNESS_WAIT_MS)

/* Wait for an atomic_int flag that a task sets just before a suspending call
 * of which the primitive shows nothing, then give it a few more scheduling
 * rounds and 2 ms to get parked there (see rule 5 at the top: only a guess,
 * except between tasks of one worker). Evaluates to 0 (a CHECK failure
 * recorded) if the flag never came. */
#define HARNESS_WAIT_PARKED(flag)                                              \
  (HARNESS_WAIT(atomic_load(&(flag)) != 0) ? (harness_settle(), 1) : 0)

static inline void harness_settle(void) {
  unsigned i;

  for (i = 0; i < 4; i++)
    (void)harness_pause(0);
  (void)harness_pause(10);
  (void)harness_pause(10);
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

/* Whether log holds exactly the n lines of want. */
static inline int harness_log_matches(const harness_log_t *log,
                                      const char *const *want, size_t n) {
  size_t i;
  int same = log->n == n;

  for (i = 0; same && i < n; i++)
    same = strcmp(log->lines[i], want[i]) == 0;
  return same;
}

/* cmocka-assert that log holds exactly the n lines of want (on the test's
 * own thread, after weft_run() returned); prints both on a mismatch. */
static inline void harness_log_expect(harness_log_t *log,
                                      const char *const *want, size_t n) {
  size_t i;

  if (!harness_log_matches(log, want, n)) {
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
  return weft_spawn_ex(fn, arg, &o, out);
}

/* Spawn the i-th helper of a race on a worker other than 0 (round robin
 * over 1..workers-1), so that a driver pinned to worker 0 and the helper
 * really run in parallel. Needs 2 workers or more. */
static inline int harness_spawn_elsewhere(weft_task_fn fn, void *arg, int i,
                                          weft_task_t **out) {
  return harness_spawn_pinned(fn, arg, 1 + i % (weft_worker_count() - 1),
                              out);
}

/* Run fn(arg) as a task pinned to worker 0 and await it (a race driver). */
static inline void harness_run_on_worker0(weft_task_fn fn, void *arg) {
  weft_task_t *t;
  CHECK_OK(harness_spawn_pinned(fn, arg, 0, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
}

/* Race a cancellation of t against a grant to it (grant(arg): a release, a
 * set, a notify; it checks its own result). The i-th round of a race picks
 * one of four orders, so that both outcomes and the photo finish between
 * them all happen: grant then cancel, cancel then grant, cancel, yield,
 * grant, and cancel, spin 0..15 us, grant. */
#define HARNESS_RACE_ORDERS 4

static inline void harness_race_cancel(int i, weft_task_t *t,
                                       void (*grant)(void *), void *arg) {
  switch (i % HARNESS_RACE_ORDERS) {
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

/* ---- cancellation racing the grant: the shared test ------------------------
 *
 * Each primitive's test_cancel_races_* (lock, semaphore, event, condition,
 * barrier) is one harness_race_t handed to harness_race_test(). A driver
 * pinned to worker 0 runs `rounds` rounds (a quarter of them on 4 workers,
 * where cross-worker wake-ups dominate); each round:
 *
 *   arm(ctx, i)        make the next wait block (take the lock, clear the
 *                      event); optional
 *   the waiter         a task pinned to another worker
 *                      (harness_spawn_elsewhere) sets a flag and calls
 *                      wait(ctx), the primitive's suspending call; what that
 *                      returns is the round's rc
 *   ready(ctx, i)      after the flag: wait until the waiter is really
 *                      parked, start other waiters; optional
 *   the race           harness_race_cancel(i, waiter, grant, ctx): the
 *                      cancellation and grant(ctx) in one of four orders
 *   finish(ctx)        let the waiter return (release a lock it needs);
 *                      optional
 *   check(ctx, rc)     after awaiting the waiter: nothing was lost (the
 *                      grant went to another waiter or stayed with the
 *                      primitive if rc is WEFT_ECANCELED, the waiter kept it
 *                      otherwise, docs/design.md §4.1 point 4); clean up
 *
 * rc == WEFT_ECANCELED counts as "cancelled", any other rc as "granted"
 * (check() tells right values from wrong ones). The counts, by order, are
 * printed after each run. When grant_is_sync is set (grant() hands over
 * before it returns, on the driver's own thread: a release, a set, a
 * notify), a grant made before the cancellation always wins, whether the
 * waiter was parked yet or not (an uncontended acquire or a wait on a set
 * event does not suspend), so the grant-first order must never give
 * "cancelled", and some cancel-first round must give "cancelled" (the waiter
 * was parked, or got to its call with the cancellation pending, before the
 * grant; only a waiter stalled between its flag and its call for the whole
 * cancel and grant escapes that, never in every round). With an asynchronous
 * grant (another task's arrival at a barrier) the outcome of each round is a
 * true race, and only the counts are printed.
 *
 * The waiter writes rc on its worker; the driver reads it after awaiting the
 * waiter, which orders the two. */
typedef struct harness_race {
  const char *what; /* names the race in the report */
  int rounds;       /* rounds on 2 workers */
  int grant_is_sync;
  void *ctx; /* passed to every callback */
  void (*arm)(void *ctx, int i);
  int (*wait)(void *ctx);
  void (*ready)(void *ctx, int i);
  void (*grant)(void *ctx);
  void (*finish)(void *ctx);
  void (*check)(void *ctx, int rc);
  /* the scaffold's own */
  atomic_int arrived;                      /* the waiter is at its call */
  int rc;                                  /* what wait() returned */
  int outcomes[HARNESS_RACE_ORDERS][2];    /* [order][cancelled] */
} harness_race_t;

#define HARNESS_RACE_NO_RC (-1000000) /* wait() has not returned */

static inline void *harness_race_waiter(void *arg) {
  harness_race_t *r = arg;

  atomic_store(&r->arrived, 1);
  r->rc = r->wait(r->ctx);
  return NULL;
}

static inline void *harness_race_driver(void *arg) {
  static const char *const order[HARNESS_RACE_ORDERS] = {
      "grant-cancel", "cancel-grant", "cancel-yield-grant",
      "cancel-spin-grant"};
  harness_race_t *r = arg;
  int n = weft_worker_count() > 2 ? r->rounds / 4 : r->rounds;
  int i, k, cancelled = 0;
  weft_task_t *t;

  memset(r->outcomes, 0, sizeof r->outcomes);
  for (i = 0; i < n; i++) {
    atomic_store(&r->arrived, 0);
    r->rc = HARNESS_RACE_NO_RC;
    if (r->arm)
      r->arm(r->ctx, i);
    CHECK_OK(harness_spawn_elsewhere(harness_race_waiter, r, i, &t));
    HARNESS_WAIT(atomic_load(&r->arrived));
    if (r->ready)
      r->ready(r->ctx, i);
    harness_race_cancel(i, t, r->grant, r->ctx);
    if (r->finish)
      r->finish(r->ctx);
    weft_task_await(t, NULL);
    weft_task_unref(t);
    CHECK(r->rc != HARNESS_RACE_NO_RC);
    r->outcomes[i % HARNESS_RACE_ORDERS][r->rc == WEFT_ECANCELED]++;
    r->check(r->ctx, r->rc);
  }
  printf("race %s, %d workers, %d rounds (granted/cancelled):", r->what,
         weft_worker_count(), n);
  for (k = 0; k < HARNESS_RACE_ORDERS; k++) {
    printf(" %s %d/%d", order[k], r->outcomes[k][0],
           r->outcomes[k][1]);
    cancelled += r->outcomes[k][1];
  }
  printf("\n");
  fflush(stdout);
  if (r->grant_is_sync) {
    CHECK_EQ(r->outcomes[0][1], 0); /* a grant made first always wins */
    CHECK(r->outcomes[0][0] > 0);
    CHECK(cancelled > 0);
  }
  return NULL;
}

static inline void *harness_race_main(void *arg) {
  harness_run_on_worker0(harness_race_driver, arg);
  return NULL;
}

/* Run the race on 2 workers, then on 4 (see above). */
static inline void harness_race_test(harness_race_t *r) {
  run_in_weft(harness_race_main, r, 2);
  run_in_weft(harness_race_main, r, 4);
}

/* Spawn fn(arg), whose body sets *started right before its one suspending
 * call, and return its handle once it did, still unfinished. For the
 * deterministic-mode tests (one worker) of a waiter passed by: a task that
 * has started runs into its wait before the spawner runs again, so the
 * window between the wait and the spawner's next step is certain. */
static inline weft_task_t *harness_spawn_waiting(weft_task_fn fn, void *arg,
                                                 atomic_int *started) {
  weft_task_t *t = NULL;

  atomic_store(started, 0);
  CHECK_OK(weft_spawn(fn, arg, &t));
  for (int i = 0; i < 100000 && !atomic_load(started); i++)
    CHECK_OK(weft_yield());
  CHECK(atomic_load(started));
  CHECK(t != NULL && weft_task_done(t) == 0);
  return t;
}

#endif /* WEFT_TESTS_HARNESS_H */
