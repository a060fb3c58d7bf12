/*
 * api_signal: weft/signal.h and weft_run()'s SIGINT (cfg.sigint_cancels_main).
 * Every error path; signals raised from a task, sent from a foreign thread
 * to a runtime whose workers are all parked, and to one whose workers are
 * all busy; exactly one delivery per signal per watcher with several
 * workers (the next signal is sent only once the previous one was seen:
 * POSIX coalesces pending signals); timeouts and cancellation losing no
 * signal; handlers run as tasks, replaced and removed; two runtimes each
 * getting a signal once; SIGINT cancelling main with weft_run() returning
 * WEFT_EINTR, the second SIGINT killing the process (in a child); and every
 * disposition back to SIG_DFL once weft_run() has returned.
 */
#include "harness.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* 1 if sig has its default disposition. */
static int is_default(int sig) {
  struct sigaction sa;
  return sigaction(sig, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
         sa.sa_handler == SIG_DFL;
}

/* Every signal this file touches has its default disposition (nothing left
 * installed by a runtime that has returned). */
static void assert_defaults(void) {
  static const int sigs[] = {SIGUSR1, SIGUSR2, SIGTERM, SIGHUP, SIGINT};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    assert_int_equal(sigaction(sigs[i], NULL, &sa), 0);
    assert_false(sa.sa_flags & SA_SIGINFO);
    assert_true(sa.sa_handler == SIG_DFL);
  }
}

static void dummy_handler(int signum, void *arg) {
  (void)signum;
  (void)arg;
}

/* ---- errors ----------------------------------------------------------------
 */

static void *errors_in_task(void *arg) {
  (void)arg;
  weft_signal_t *s = NULL;
  static const int bad[] = {0,       -1,     65,     SIGKILL, SIGSTOP,
                            SIGSEGV, SIGBUS, SIGFPE, SIGILL,  SIGPIPE,
                            32,      33,     1000};
  int one = SIGUSR1;
  CHECK_RC(weft_signal_new(NULL, 1, &s), WEFT_EINVAL);
  CHECK_RC(weft_signal_new(&one, 0, &s), WEFT_EINVAL);
  CHECK_RC(weft_signal_new(&one, 1, NULL), WEFT_EINVAL);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int two[2] = {SIGUSR1, bad[i]};
    CHECK_RC(weft_signal_new(two, 2, &s), WEFT_EINVAL);
    CHECK(s == NULL);
    CHECK_RC(weft_signal_add_handler(bad[i], dummy_handler, NULL), WEFT_EINVAL);
    CHECK_RC(weft_signal_remove_handler(bad[i]), WEFT_EINVAL);
  }
  CHECK_RC(weft_signal_add_handler(SIGUSR1, NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_signal_wait(NULL, 0, NULL), WEFT_EINVAL);
  CHECK_RC(weft_signal_pending(NULL), WEFT_EINVAL);
  CHECK_OK(weft_signal_free(NULL));
  CHECK_RC(weft_signal_remove_handler(SIGUSR1), 0); /* none installed */

  /* Duplicates are fine; nothing pending; a zero timeout only looks. */
  int dup[3] = {SIGUSR1, SIGUSR1, SIGUSR2};
  CHECK_OK(weft_signal_new(dup, 3, &s));
  CHECK_RC(weft_signal_pending(s), 0);
  int sig = -1;
  CHECK_RC(weft_signal_wait(s, 0, &sig), WEFT_ETIMEDOUT);
  CHECK_EQ(sig, -1);
  CHECK_RC(weft_signal_wait(s, 5, &sig), WEFT_ETIMEDOUT);
  CHECK_OK(weft_signal_free(s));
  return NULL;
}

static void test_errors(void **state) {
  (void)state;
  int one = SIGUSR1;
  weft_signal_t *s = (weft_signal_t *)&one; /* set to NULL on failure */
  assert_int_equal(weft_signal_new(&one, 1, &s), WEFT_ENOTTASK);
  assert_null(s);
  assert_int_equal(weft_signal_new(NULL, 1, &s), WEFT_EINVAL);
  assert_int_equal(weft_signal_add_handler(SIGUSR1, dummy_handler, NULL),
                   WEFT_ENOTTASK);
  assert_int_equal(weft_signal_add_handler(SIGKILL, dummy_handler, NULL),
                   WEFT_EINVAL);
  assert_int_equal(weft_signal_remove_handler(SIGUSR1), WEFT_ENOTTASK);
  assert_int_equal(weft_signal_remove_handler(0), WEFT_EINVAL);
  assert_int_equal(weft_signal_wait(NULL, 0, NULL), WEFT_EINVAL);
  assert_int_equal(weft_signal_pending(NULL), WEFT_EINVAL);
  assert_int_equal(weft_signal_free(NULL), 0);
  run_in_weft(errors_in_task, NULL, 2);
  assert_defaults();
}

/* ---- raise from a task, kill from a task -------------------------------- */

static void *raise_in_task(void *arg) {
  (void)arg;
  int sigs[2] = {SIGUSR1, SIGUSR2};
  weft_signal_t *s;
  int sig = 0;
  CHECK_OK(weft_signal_new(sigs, 2, &s));
  CHECK_OK(raise(SIGUSR1));
  CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, &sig));
  CHECK_EQ(sig, SIGUSR1);
  CHECK_OK(kill(getpid(), SIGUSR2));
  CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, &sig));
  CHECK_EQ(sig, SIGUSR2);
  /* Counted while nobody waits, taken later, lowest number first. */
  CHECK_OK(raise(SIGUSR2));
  HARNESS_WAIT(weft_signal_pending(s) == 1);
  CHECK_OK(raise(SIGUSR1));
  HARNESS_WAIT(weft_signal_pending(s) == 2);
  CHECK_OK(weft_signal_wait(s, 0, &sig));
  CHECK_EQ(sig, SIGUSR1);
  CHECK_OK(weft_signal_wait(s, 0, &sig));
  CHECK_EQ(sig, SIGUSR2);
  CHECK_RC(weft_signal_wait(s, 0, &sig), WEFT_ETIMEDOUT);
  CHECK(!is_default(SIGUSR1) && !is_default(SIGUSR2));
  CHECK_OK(weft_signal_free(s));
  /* The last watcher of a signal gone, its default disposition is back. */
  CHECK(is_default(SIGUSR1) && is_default(SIGUSR2));
  /* A watcher left open is freed, and its handlers uninstalled, when the
   * runtime ends. */
  CHECK_OK(weft_signal_new(sigs, 2, &s));
  return NULL;
}

static void test_raise_in_task(void **state) {
  (void)state;
  run_in_weft(raise_in_task, NULL, 1);
  assert_defaults();
  run_in_weft(raise_in_task, NULL, 4);
  assert_defaults();
}

/* ---- a foreign thread: parked and busy workers -----------------------------
 */

typedef struct sender {
  atomic_int go;   /* set by the task when the signal may be sent */
  atomic_int busy; /* busy tasks running */
  atomic_int stop; /* busy tasks stop */
  int sig;
  pthread_t th;
} sender_t;

static void *sender_main(void *arg) {
  sender_t *sd = arg;
  harness_wait_t w = harness_wait_begin(HARNESS_WAIT_MS);
  while (!atomic_load(&sd->go))
    if (!harness_wait_step(&w, __FILE__, __LINE__, "sender go"))
      return NULL;
  kill(getpid(), sd->sig);
  return NULL;
}

static void *foreign_parked(void *arg) {
  (void)arg;
  sender_t sd = {.sig = SIGTERM};
  int sig = 0;
  weft_signal_t *s;
  CHECK_OK(weft_signal_new(&sd.sig, 1, &s));
  CHECK_OK(pthread_create(&sd.th, NULL, sender_main, &sd));
  /* Nothing else runs: every worker parks while this task waits. */
  atomic_store(&sd.go, 1);
  CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, &sig));
  CHECK_EQ(sig, SIGTERM);
  pthread_join(sd.th, NULL);
  CHECK_OK(weft_signal_free(s));
  return NULL;
}

static void test_foreign_thread_parked(void **state) {
  (void)state;
  run_in_weft(foreign_parked, NULL, 1);
  run_in_weft(foreign_parked, NULL, 4);
  assert_defaults();
}

static void *busy_main(void *arg) {
  sender_t *sd = arg;
  volatile uint64_t x = 1;
  atomic_fetch_add(&sd->busy, 1);
  while (!atomic_load(&sd->stop)) {
    for (int i = 0; i < 10000; i++)
      x = x * 6364136223846793005u + 1442695040888963407u;
    if (weft_yield() != 0)
      break;
  }
  return NULL;
}

static void *foreign_busy(void *arg) {
  unsigned workers = (unsigned)(uintptr_t)arg;
  sender_t sd = {.sig = SIGHUP};
  int sig = 0;
  weft_signal_t *s;
  weft_task_t *busy[8];
  CHECK_OK(weft_signal_new(&sd.sig, 1, &s));
  /* One CPU-bound task pinned to every worker, worker 0 included. */
  for (unsigned i = 0; i < workers; i++) {
    weft_spawn_opts_t o;
    weft_spawn_opts_init(&o);
    o.pin = (int)i;
    CHECK_OK(weft_spawn_ex(busy_main, &sd, &o, &busy[i]));
  }
  if (!HARNESS_WAIT(atomic_load(&sd.busy) == (int)workers))
    atomic_store(&sd.stop, 1);
  CHECK_OK(pthread_create(&sd.th, NULL, sender_main, &sd));
  atomic_store(&sd.go, 1);
  CHECK_OK(weft_signal_wait(s, (uint64_t)HARNESS_PROMPT_MS, &sig));
  CHECK_EQ(sig, SIGHUP);
  atomic_store(&sd.stop, 1);
  pthread_join(sd.th, NULL);
  CHECK_OK(weft_gather(busy, workers, NULL));
  for (unsigned i = 0; i < workers; i++)
    weft_task_unref(busy[i]);
  CHECK_OK(weft_signal_free(s));
  return NULL;
}

static void test_foreign_thread_busy(void **state) {
  (void)state;
  run_in_weft(foreign_busy, (void *)(uintptr_t)1, 1);
  run_in_weft(foreign_busy, (void *)(uintptr_t)4, 4);
  assert_defaults();
}

/* ---- once per runtime, per watcher -----------------------------------------
 */

#define ONCE_WORKERS 4
#define ONCE_ROUNDS 20

typedef struct once {
  weft_signal_t *own[ONCE_WORKERS]; /* one watcher per waiter */
  weft_signal_t *shared;            /* one watcher, ONCE_WORKERS waiters */
  atomic_int got[ONCE_WORKERS];
  atomic_int got_shared;
  atomic_int bad;
} once_t;

typedef struct once_arg {
  once_t *o;
  int i; /* index, or -1 for a waiter on the shared watcher */
} once_arg_t;

static void *once_waiter(void *arg) {
  once_arg_t *a = arg;
  weft_signal_t *s = a->i >= 0 ? a->o->own[a->i] : a->o->shared;
  for (;;) {
    int sig = 0;
    int rc = weft_signal_wait(s, WEFT_NO_TIMEOUT, &sig);
    if (rc == WEFT_ECANCELED)
      break;
    CHECK_OK(rc);
    if (sig != SIGUSR1)
      atomic_fetch_add(&a->o->bad, 1);
    atomic_fetch_add(a->i >= 0 ? &a->o->got[a->i] : &a->o->got_shared, 1);
  }
  return NULL;
}

static int once_seen(once_t *o, int round) {
  for (int i = 0; i < ONCE_WORKERS; i++)
    if (atomic_load(&o->got[i]) < round)
      return 0;
  return atomic_load(&o->got_shared) >= round;
}

static void *once_per_runtime(void *arg) {
  (void)arg;
  once_t o;
  memset(&o, 0, sizeof o);
  once_arg_t args[2 * ONCE_WORKERS];
  weft_task_t *tasks[2 * ONCE_WORKERS];
  int sig = SIGUSR1;
  for (int i = 0; i < ONCE_WORKERS; i++)
    CHECK_OK(weft_signal_new(&sig, 1, &o.own[i]));
  CHECK_OK(weft_signal_new(&sig, 1, &o.shared));
  for (int i = 0; i < 2 * ONCE_WORKERS; i++) {
    weft_spawn_opts_t so;
    weft_spawn_opts_init(&so);
    so.pin = i % ONCE_WORKERS; /* waiters on every worker */
    args[i].o = &o;
    args[i].i = i < ONCE_WORKERS ? i : -1;
    CHECK_OK(weft_spawn_ex(once_waiter, &args[i], &so, &tasks[i]));
  }
  for (int r = 1; r <= ONCE_ROUNDS; r++) {
    CHECK_OK(raise(SIGUSR1));
    if (!HARNESS_WAIT(once_seen(&o, r)))
      break;
  }
  for (int i = 0; i < 2 * ONCE_WORKERS; i++) {
    weft_task_cancel(tasks[i]);
    weft_task_await(tasks[i], NULL);
    weft_task_unref(tasks[i]);
  }
  /* Exactly one delivery per signal per watcher, none left over. */
  for (int i = 0; i < ONCE_WORKERS; i++) {
    CHECK_EQ(atomic_load(&o.got[i]), ONCE_ROUNDS);
    CHECK_RC(weft_signal_pending(o.own[i]), 0);
    CHECK_OK(weft_signal_free(o.own[i]));
  }
  CHECK_EQ(atomic_load(&o.got_shared), ONCE_ROUNDS);
  CHECK_RC(weft_signal_pending(o.shared), 0);
  CHECK_EQ(atomic_load(&o.bad), 0);
  CHECK_OK(weft_signal_free(o.shared));
  return NULL;
}

static void test_once_per_runtime(void **state) {
  (void)state;
  run_in_weft(once_per_runtime, NULL, ONCE_WORKERS);
  assert_defaults();
}

/* ---- timeout and cancellation lose nothing ------------------------------ */

typedef struct race {
  weft_signal_t *s;
  atomic_int waiting;
  atomic_int got;   /* the wait returned the signal */
  atomic_int after; /* status of the suspension point after it */
} race_t;

static void *race_waiter(void *arg) {
  race_t *r = arg;
  int sig = 0;
  atomic_store(&r->waiting, 1);
  int rc = weft_signal_wait(r->s, WEFT_NO_TIMEOUT, &sig);
  if (rc == 0) {
    CHECK_EQ(sig, SIGUSR2);
    atomic_store(&r->got, 1);
    /* The cancellation, pending or still to come, ends the next
     * suspension point. */
    atomic_store(&r->after, weft_sleep(WEFT_NO_TIMEOUT));
  } else {
    CHECK_RC(rc, WEFT_ECANCELED);
  }
  return NULL;
}

static void *no_loss(void *arg) {
  (void)arg;
  race_t r;
  memset(&r, 0, sizeof r);
  int sig = SIGUSR2;
  CHECK_OK(weft_signal_new(&sig, 1, &r.s));

  /* A timeout takes nothing; a signal after it waits for the next wait. */
  CHECK_RC(weft_signal_wait(r.s, 1, &sig), WEFT_ETIMEDOUT);
  CHECK_OK(raise(SIGUSR2));
  HARNESS_WAIT(weft_signal_pending(r.s) == 1);
  sig = 0;
  CHECK_OK(weft_signal_wait(r.s, 1, &sig));
  CHECK_EQ(sig, SIGUSR2);

  /* A cancelled wait: the signal that comes after it is kept. */
  weft_task_t *t;
  CHECK_OK(weft_spawn(race_waiter, &r, &t));
  HARNESS_WAIT_PARKED(r.waiting);
  CHECK_RC(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_EQ(atomic_load(&r.got), 0);
  CHECK_OK(raise(SIGUSR2));
  HARNESS_WAIT(weft_signal_pending(r.s) == 1);
  CHECK_OK(weft_signal_wait(r.s, 0, NULL));

  /* Signal and cancellation together: either the wait returns the signal
   * (and the next suspension point the cancellation), or it returns
   * WEFT_ECANCELED and the signal stays pending. Never neither, never
   * both. */
  int n = HARNESS_SIZE(200, 40, 80);
  int gotn = 0;
  for (int i = 0; i < n; i++) {
    memset((char *)&r + sizeof r.s, 0, sizeof r - sizeof r.s);
    CHECK_OK(weft_spawn(race_waiter, &r, &t));
    if (!HARNESS_WAIT(atomic_load(&r.waiting)))
      break;
    if (i % 2)
      weft_yield(); /* vary where the waiter is */
    CHECK_OK(raise(SIGUSR2));
    if (i % 3 == 1) /* let worker 0 poll: the signal may come first */
      weft_yield();
    else if (i % 3 == 2) /* the signal first, for sure */
      HARNESS_WAIT(atomic_load(&r.got));
    CHECK_RC(weft_task_cancel(t), 1);
    CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
    weft_task_unref(t);
    if (atomic_load(&r.got)) {
      gotn++;
      CHECK_RC(atomic_load(&r.after), WEFT_ECANCELED);
      CHECK_RC(weft_signal_pending(r.s), 0);
    } else {
      if (!HARNESS_WAIT(weft_signal_pending(r.s) == 1))
        break;
      CHECK_OK(weft_signal_wait(r.s, 0, &sig));
    }
    CHECK_RC(weft_signal_pending(r.s), 0);
  }
  CHECK(gotn >= n / 3); /* every third round, the signal came first */

  /* Freeing a watcher a task waits on is refused. On one worker, seeing
   * the flag after a suspension proves the waiter is parked in its wait
   * (harness.h rule 5). */
  if (weft_worker_count() == 1) {
    memset((char *)&r + sizeof r.s, 0, sizeof r - sizeof r.s);
    CHECK_OK(weft_spawn(race_waiter, &r, &t));
    HARNESS_WAIT_PARKED(r.waiting);
    CHECK_RC(weft_signal_free(r.s), WEFT_EBUSY);
    CHECK_RC(weft_task_cancel(t), 1);
    CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
    weft_task_unref(t);
  }
  CHECK_OK(weft_signal_free(r.s));
  return NULL;
}

static void test_timeout_cancel_no_loss(void **state) {
  (void)state;
  run_in_weft(no_loss, NULL, 1);
  run_in_weft(no_loss, NULL, 2);
  run_in_weft(no_loss, NULL, 4);
  assert_defaults();
}

/* ---- handlers
 * ---------------------------------------------------------------- */

typedef struct hctx {
  atomic_int runs;
  atomic_int bad;
  void *local; /* expected task-local value */
} hctx_t;

static void counting_handler(int signum, void *arg) {
  hctx_t *h = arg;
  if (signum != SIGUSR1 || !weft_task_current() ||
      weft_task_local() != h->local)
    atomic_fetch_add(&h->bad, 1);
  /* A handler is a task: it may suspend. */
  if (weft_sleep(1) != 0)
    atomic_fetch_add(&h->bad, 1);
  atomic_fetch_add(&h->runs, 1);
}

static void *handlers(void *arg) {
  (void)arg;
  static int marker1, marker2;
  hctx_t h1 = {.local = &marker1}, h2 = {.local = &marker2};
  weft_signal_t *s;
  int sig = SIGUSR1;
  /* A watcher keeps SIGUSR1 caught once the handlers are gone. */
  CHECK_OK(weft_signal_new(&sig, 1, &s));
  CHECK_OK(weft_task_set_local(&marker1));
  CHECK_OK(weft_signal_add_handler(SIGUSR1, counting_handler, &h1));
  CHECK_OK(weft_task_set_local(NULL));
  for (int i = 1; i <= 3; i++) {
    CHECK_OK(raise(SIGUSR1));
    CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, NULL));
    HARNESS_WAIT(atomic_load(&h1.runs) == i);
  }
  /* Replaced: the new handler runs, the old one no more. */
  CHECK_OK(weft_task_set_local(&marker2));
  CHECK_OK(weft_signal_add_handler(SIGUSR1, counting_handler, &h2));
  CHECK_OK(raise(SIGUSR1));
  CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, NULL));
  HARNESS_WAIT(atomic_load(&h2.runs) == 1);
  /* Removed: the watcher still sees the signal, no handler runs. */
  CHECK_RC(weft_signal_remove_handler(SIGUSR1), 1);
  CHECK_RC(weft_signal_remove_handler(SIGUSR1), 0);
  CHECK_OK(raise(SIGUSR1));
  CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, NULL));
  /* No moment proves that no handler task will run for it; a few
   * scheduling rounds let a wrongly spawned one show up at least
   * sometimes (the dispatcher was kicked by the callback that woke us). */
  for (int i = 0; i < 8; i++)
    (void)weft_yield();
  CHECK_EQ(atomic_load(&h1.runs), 3);
  CHECK_EQ(atomic_load(&h2.runs), 1);
  CHECK_EQ(atomic_load(&h1.bad) + atomic_load(&h2.bad), 0);
  CHECK_OK(weft_signal_free(s));
  /* A handler left installed is removed when the runtime ends. */
  CHECK_OK(weft_signal_add_handler(SIGUSR2, dummy_handler, NULL));
  return NULL;
}

static void test_handlers(void **state) {
  (void)state;
  run_in_weft(handlers, NULL, 1);
  assert_defaults();
  run_in_weft(handlers, NULL, 4);
  assert_defaults();
}

/* ---- two runtimes -----------------------------------------------------------
 */

typedef struct two {
  weft_signal_t *a; /* runtime A's watcher */
  atomic_int b_ready;
  atomic_int b_got;
  atomic_int a_got;
  int b_rc;
} two_t;

static void *two_b_main(void *arg) {
  two_t *tw = arg;
  int sig = SIGUSR1;
  weft_signal_t *s;
  CHECK_RC(weft_signal_wait(tw->a, 0, NULL), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_signal_pending(tw->a), WEFT_EOTHER_RUNTIME);
  CHECK_RC(weft_signal_free(tw->a), WEFT_EOTHER_RUNTIME);
  CHECK_OK(weft_signal_new(&sig, 1, &s));
  atomic_store(&tw->b_ready, 1);
  CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, &sig));
  CHECK_EQ(sig, SIGUSR1);
  atomic_fetch_add(&tw->b_got, 1);
  /* Wait for A to be done with its own delivery, then look again. */
  HARNESS_WAIT(atomic_load(&tw->a_got) == 1);
  CHECK_RC(weft_signal_pending(s), 0);
  CHECK_OK(weft_signal_free(s));
  return NULL;
}

static void *two_b_thread(void *arg) {
  two_t *tw = arg;
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 2;
  tw->b_rc = weft_run(two_b_main, tw, &cfg, NULL);
  return NULL;
}

static void *two_runtimes(void *arg) {
  (void)arg;
  two_t tw;
  memset(&tw, 0, sizeof tw);
  int sig = SIGUSR1;
  pthread_t th;
  CHECK_OK(weft_signal_new(&sig, 1, &tw.a));
  CHECK_OK(pthread_create(&th, NULL, two_b_thread, &tw));
  if (HARNESS_WAIT(atomic_load(&tw.b_ready))) {
    CHECK_OK(raise(SIGUSR1));
    CHECK_OK(weft_signal_wait(tw.a, WEFT_NO_TIMEOUT, &sig));
    CHECK_EQ(sig, SIGUSR1);
    atomic_store(&tw.a_got, 1);
  }
  pthread_join(th, NULL);
  CHECK_OK(tw.b_rc);
  CHECK_EQ(atomic_load(&tw.b_got), 1);
  CHECK_RC(weft_signal_pending(tw.a), 0);
  CHECK_OK(weft_signal_free(tw.a));
  return NULL;
}

static void test_two_runtimes(void **state) {
  (void)state;
  run_in_weft(two_runtimes, NULL, 2);
  assert_defaults();
}

/* ---- weft_run and SIGINT --------------------------------------------------
 */

typedef struct intr {
  int uncancel;    /* main withdraws the request and returns normally */
  int from_thread; /* SIGINT from a foreign thread, not from main */
  int no_sigint;   /* no SIGINT at all */
  int self_cancel; /* main cancels itself too: two requests */
  atomic_int cleaned;
} intr_t;

static void *sigint_main(void *arg) {
  intr_t *in = arg;
  int sig = SIGINT;
  weft_signal_t *s = NULL;
  /* Owned by weft_run: refused to the signal API. */
  CHECK_RC(weft_signal_new(&sig, 1, &s), WEFT_EBUSY);
  CHECK_RC(weft_signal_add_handler(SIGINT, dummy_handler, NULL), WEFT_EBUSY);
  /* All or nothing: SIGUSR1, taken before SIGINT failed, is let go. */
  int two[2] = {SIGUSR1, SIGINT};
  CHECK_RC(weft_signal_new(two, 2, &s), WEFT_EBUSY);
  CHECK(s == NULL);
  CHECK(is_default(SIGUSR1));
  sender_t sd = {.sig = SIGINT};
  if (in->from_thread) {
    CHECK_OK(pthread_create(&sd.th, NULL, sender_main, &sd));
    atomic_store(&sd.go, 1);
  } else if (!in->no_sigint) {
    CHECK_OK(raise(SIGINT));
  }
  if (in->self_cancel)
    CHECK_RC(weft_task_cancel(weft_task_current()), 1);
  int rc = weft_sleep(WEFT_NO_TIMEOUT);
  CHECK_RC(rc, WEFT_ECANCELED);
  if (in->from_thread)
    pthread_join(sd.th, NULL);
  int want = !in->no_sigint + in->self_cancel;
  /* The SIGINT's request may come after the own one was delivered. */
  double end = harness_now_ms() + HARNESS_WAIT_MS;
  while (weft_task_cancelling() < want && harness_now_ms() < end)
    (void)weft_yield(); /* WEFT_ECANCELED once it came */
  CHECK_EQ(weft_task_cancelling(), want);
  atomic_store(&in->cleaned, 1);
  if (in->uncancel) {
    weft_task_uncancel();
    return (void *)in;
  }
  return NULL;
}

static void test_sigint_cancels_main(void **state) {
  (void)state;
  /* 0: SIGINT from main, 1: from a thread, 2: uncancelled, 3: no SIGINT
   * but a cancellation of its own, 4: SIGINT and a cancellation of its
   * own (asyncio: uncancel() != 0, CancelledError, not KeyboardInterrupt). */
  for (int mode = 0; mode < 5; mode++) {
    intr_t in;
    memset(&in, 0, sizeof in);
    in.uncancel = mode == 2;
    in.from_thread = mode == 1;
    in.no_sigint = mode == 3;
    in.self_cancel = mode >= 3;
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.sigint_cancels_main = 1;
    void *result = NULL;
    harness_reset();
    int rc = weft_run(sigint_main, &in, &cfg, &result);
    harness_assert_clean();
    assert_int_equal(atomic_load(&in.cleaned), 1);
    if (in.uncancel) {
      assert_int_equal(rc, 0);
      assert_ptr_equal(result, &in);
    } else if (in.self_cancel) {
      assert_int_equal(rc, WEFT_ECANCELED);
      assert_null(result);
    } else {
      assert_int_equal(rc, WEFT_EINTR);
      assert_null(result);
    }
    assert_defaults();
  }
}

static void *sigint_not_owned_main(void *arg) {
  (void)arg;
  /* SIGINT was ignored when weft_run started: weft_run left it alone, and
   * the signal API may have it. */
  int sig = SIGINT;
  weft_signal_t *s;
  CHECK_OK(weft_signal_new(&sig, 1, &s));
  CHECK_OK(raise(SIGINT));
  CHECK_OK(weft_signal_wait(s, WEFT_NO_TIMEOUT, &sig));
  CHECK_EQ(sig, SIGINT);
  CHECK_OK(weft_signal_free(s));
  return NULL;
}

static void test_sigint_not_default(void **state) {
  (void)state;
  struct sigaction ign, old;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  assert_int_equal(sigaction(SIGINT, &ign, &old), 0);
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 2;
  cfg.sigint_cancels_main = 1;
  run_in_weft_cfg(sigint_not_owned_main, NULL, &cfg);
  /* The watcher's end set SIG_DFL back (weft/signal.h). */
  assert_defaults();
  assert_int_equal(sigaction(SIGINT, &old, NULL), 0);
}

static void *second_sigint_main(void *arg) {
  (void)arg;
  raise(SIGINT);
  if (weft_sleep(WEFT_NO_TIMEOUT) != WEFT_ECANCELED)
    _exit(2);
  /* Main ignores the first one and hangs: the second one kills. */
  raise(SIGINT);
  _exit(3);
}

static void *after_main_sigint_main(void *arg) {
  (void)arg;
  return NULL;
}

static int run_child(weft_task_fn fn, int raise_after) {
  pid_t pid = fork();
  if (pid == 0) {
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.workers = 1; /* no thread in the child */
    cfg.sigint_cancels_main = 1;
    int rc = weft_run(fn, NULL, &cfg, NULL);
    if (raise_after) /* SIG_DFL again: the default action */
      raise(SIGINT);
    _exit(rc == 0 ? 4 : 5);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid)
    return -1;
  return st;
}

static void test_second_sigint(void **state) {
  (void)state;
  int st = run_child(second_sigint_main, 0);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGINT);
  /* A plain run leaves SIGINT default: a SIGINT afterwards kills. */
  st = run_child(after_main_sigint_main, 1);
  assert_true(WIFSIGNALED(st));
  assert_int_equal(WTERMSIG(st), SIGINT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_raise_in_task),
      cmocka_unit_test(test_foreign_thread_parked),
      cmocka_unit_test(test_foreign_thread_busy),
      cmocka_unit_test(test_once_per_runtime),
      cmocka_unit_test(test_timeout_cancel_no_loss),
      cmocka_unit_test(test_handlers),
      cmocka_unit_test(test_two_runtimes),
      cmocka_unit_test(test_sigint_cancels_main),
      cmocka_unit_test(test_sigint_not_default),
      cmocka_unit_test(test_second_sigint),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
