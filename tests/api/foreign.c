/*
 * api_foreign: runtime handles, weft_runtime_submit() from threads outside
 * the runtime, from its own tasks and from another runtime's tasks
 * (asyncio.run_coroutine_threadsafe), and futures: results checked for
 * 8 threads x 1000 submissions, waits that time out (blocking and
 * suspending), cancellation through the future, submissions racing the
 * runtime's shutdown (each one either refused with WEFT_ERUNTIME_SHUTDOWN or
 * its future completes; nothing hangs or leaks), and a handle used after
 * weft_run() returned.
 */
#include "harness.h"

#include <sched.h>

/* ---- helpers ---------------------------------------------------------------
 */

static void *join_thread(void *arg) {
  pthread_join(*(pthread_t *)arg, NULL);
  return NULL;
}

/* From a task: run fn(args[i]) on n threads of our own and wait for them
 * without blocking the worker (each join runs on libuv's pool). */
static void run_threads(void *(*fn)(void *), void **args, int n) {
  pthread_t th[16];
  int i;

  for (i = 0; i < n; i++)
    CHECK_OK(pthread_create(&th[i], NULL, fn, args[i]));
  for (i = 0; i < n; i++)
    CHECK_OK(weft_to_thread(join_thread, &th[i], NULL));
}

static void sleep_ms(int ms) {
  struct timespec ts;

  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  nanosleep(&ts, NULL);
}

static void *compute(void *arg) {
  uintptr_t x = (uintptr_t)arg;

  CHECK(weft_task_current() != NULL);
  CHECK(weft_task_local() == NULL); /* nothing to inherit */
  if (x % 3 == 0)
    CHECK_OK(weft_yield());
  return (void *)(x * 2 + 1);
}

/* ---- many threads
 * ------------------------------------------------------------ */

#define SUBMIT_THREADS 8
#define SUBMITS HARNESS_SIZE(1000, 200, 500)

typedef struct submitter {
  weft_runtime_t *rt; /* borrowed from main, which waits for us */
  uintptr_t k;        /* thread number */
  int ok;             /* results checked */
} submitter_t;

static void *submitter_thread(void *arg) {
  submitter_t *s = arg;
  weft_future_t **f = calloc(SUBMITS, sizeof(*f));
  uintptr_t i, x;
  void *r;

  CHECK(weft_runtime_current() == NULL);
  for (i = 0; i < SUBMITS; i++)
    CHECK_OK(
        weft_runtime_submit(s->rt, compute, (void *)(s->k << 20 | i), &f[i]));
  for (i = 0; i < SUBMITS; i++) {
    x = s->k << 20 | i;
    r = NULL;
    if (i % 2) {
      while (!weft_future_done(f[i]))
        sched_yield();
      CHECK_OK(weft_future_result(f[i], &r));
    } else {
      CHECK_OK(weft_future_wait(f[i], WEFT_NO_TIMEOUT, &r));
    }
    CHECK_EQ((uintptr_t)r, x * 2 + 1);
    if ((uintptr_t)r == x * 2 + 1)
      s->ok++;
    weft_future_free(f[i]);
  }
  free(f);
  return NULL;
}

static void *many_main(void *arg) {
  submitter_t s[SUBMIT_THREADS];
  void *args[SUBMIT_THREADS];
  int i;

  (void)arg;
  /* Submitted tasks start with NULL, whatever the submitter's slot. */
  CHECK_OK(weft_task_set_local(&s[0]));
  for (i = 0; i < SUBMIT_THREADS; i++) {
    s[i].rt = weft_runtime_current();
    s[i].k = (uintptr_t)i + 1;
    s[i].ok = 0;
    args[i] = &s[i];
  }
  run_threads(submitter_thread, args, SUBMIT_THREADS);
  for (i = 0; i < SUBMIT_THREADS; i++)
    CHECK_EQ(s[i].ok, SUBMITS);
  return NULL;
}

static void test_many_threads(void **state) {
  (void)state;
  run_in_weft(many_main, NULL, 2);
  run_in_weft(many_main, NULL, 4);
}

/* ---- timeouts and statuses
 * ------------------------------------------------------ */

static void *sleeper(void *arg) {
  int rc = weft_sleep((uint64_t)(uintptr_t)arg);

  return rc == 0 ? (void *)(uintptr_t)0x5 : weft_task_fail(rc);
}

/* Finishes with 0x5 once the test opens the gate: the waits that must time
 * out before it finishes do, however slow the machine. */
static atomic_int gate;

static void *gated(void *arg) {
  (void)arg;
  HARNESS_WAIT(atomic_load(&gate));
  return (void *)(uintptr_t)0x5;
}

static void *failer(void *arg) {
  (void)arg;
  CHECK_OK(weft_yield());
  return weft_task_fail(WEFT_EIO);
}

static weft_future_t *_Atomic own_future;

static void *own_waiter(void *arg) {
  weft_future_t *f;

  (void)arg;
  HARNESS_WAIT((f = atomic_load(&own_future)) != NULL);
  if (f == NULL)
    return NULL;
  CHECK_RC(weft_future_wait(f, WEFT_NO_TIMEOUT, NULL), WEFT_EDEADLK);
  return (void *)(uintptr_t)0x6;
}

static void *timeouts_thread(void *arg) {
  weft_runtime_t *rt = arg;
  weft_future_t *f;
  void *r;
  double t0;

  atomic_store(&gate, 0);
  CHECK_OK(weft_runtime_submit(rt, gated, NULL, &f));
  r = (void *)(uintptr_t)0x1;
  CHECK_RC(weft_future_wait(f, 0, &r), WEFT_ETIMEDOUT);
  CHECK(r == NULL);
  t0 = harness_now_ms();
  CHECK_RC(weft_future_wait(f, 30, &r), WEFT_ETIMEDOUT);
  CHECK(harness_now_ms() - t0 >= 25.0);
  CHECK_EQ(weft_future_done(f), 0);
  CHECK_RC(weft_future_result(f, &r), WEFT_EAGAIN);
  atomic_store(&gate, 1);
  CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, &r));
  CHECK_EQ((uintptr_t)r, 0x5);
  CHECK_EQ(weft_future_done(f), 1);
  /* As often as asked. */
  CHECK_OK(weft_future_result(f, &r));
  CHECK_EQ((uintptr_t)r, 0x5);
  CHECK_OK(weft_future_wait(f, 0, NULL));
  weft_future_free(f);
  /* A timeout that does not expire. */
  CHECK_OK(weft_runtime_submit(rt, sleeper, (void *)(uintptr_t)20, &f));
  CHECK_OK(weft_future_wait(f, 60 * 1000, &r));
  CHECK_EQ((uintptr_t)r, 0x5);
  weft_future_free(f);
  /* A failed task's status. */
  CHECK_OK(weft_runtime_submit(rt, failer, NULL, &f));
  r = (void *)(uintptr_t)0x1;
  CHECK_RC(weft_future_wait(f, WEFT_NO_TIMEOUT, &r), WEFT_EIO);
  CHECK(r == NULL);
  CHECK_RC(weft_future_result(f, NULL), WEFT_EIO);
  weft_future_free(f);
  return NULL;
}

static void *timeouts_main(void *arg) {
  weft_runtime_t *rt = weft_runtime_current();
  weft_future_t *f;
  void *r;
  void *args[1];
  double t0;

  (void)arg;
  args[0] = rt;
  run_threads(timeouts_thread, args, 1);
  /* In a task the wait suspends. */
  atomic_store(&gate, 0);
  CHECK_OK(weft_runtime_submit(rt, gated, NULL, &f));
  CHECK_RC(weft_future_wait(f, 0, &r), WEFT_ETIMEDOUT);
  t0 = harness_now_ms();
  CHECK_RC(weft_future_wait(f, 20, &r), WEFT_ETIMEDOUT);
  CHECK(harness_now_ms() - t0 >= 19.0);
  atomic_store(&gate, 1);
  CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, &r));
  CHECK_EQ((uintptr_t)r, 0x5);
  weft_future_free(f);
  /* A task that waits on its own future. */
  CHECK_OK(weft_runtime_submit(rt, own_waiter, NULL, &f));
  atomic_store(&own_future, f);
  CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, &r));
  CHECK_EQ((uintptr_t)r, 0x6);
  weft_future_free(f);
  atomic_store(&own_future, NULL);
  /* Detached: out NULL. */
  CHECK_OK(weft_runtime_submit(rt, compute, (void *)(uintptr_t)1, NULL));
  return NULL;
}

static void test_timeouts_and_status(void **state) {
  (void)state;
  run_in_weft(timeouts_main, NULL, 2);
}

/* ---- cancellation through the future
 * ------------------------------------------ */

static void *forever(void *arg) {
  atomic_int *started = arg;
  int rc;

  if (started)
    atomic_store(started, 1);
  rc = weft_sleep(3600 * 1000);
  CHECK_RC(rc, WEFT_ECANCELED);
  return (void *)(uintptr_t)0x7;
}

static void *uncanceller(void *arg) {
  atomic_int *started = arg;

  atomic_store(started, 1);
  CHECK_RC(weft_sleep(3600 * 1000), WEFT_ECANCELED);
  CHECK_EQ(weft_task_uncancel(), 0);
  return (void *)(uintptr_t)0x9;
}

static void *cancel_thread(void *arg) {
  weft_runtime_t *rt = arg;
  weft_future_t *f;
  atomic_int started;
  void *r;

  atomic_init(&started, 0);
  CHECK_OK(weft_runtime_submit(rt, forever, &started, &f));
  HARNESS_WAIT(atomic_load(&started));
  CHECK_RC(weft_future_wait(f, 10, &r), WEFT_ETIMEDOUT);
  CHECK_EQ(weft_future_cancel(f), 1);
  r = (void *)(uintptr_t)0x1;
  CHECK_RC(weft_future_wait(f, WEFT_NO_TIMEOUT, &r), WEFT_ECANCELED);
  CHECK(r == NULL);
  CHECK_EQ(weft_future_done(f), 1);
  CHECK_EQ(weft_future_cancel(f), 0); /* finished: nothing to cancel */
  weft_future_free(f);

  /* Cancelled before it even started. */
  CHECK_OK(weft_runtime_submit(rt, forever, NULL, &f));
  CHECK_EQ(weft_future_cancel(f), 1);
  CHECK_RC(weft_future_wait(f, WEFT_NO_TIMEOUT, NULL), WEFT_ECANCELED);
  weft_future_free(f);

  /* A task that handles the cancellation and finishes normally. */
  atomic_store(&started, 0);
  CHECK_OK(weft_runtime_submit(rt, uncanceller, &started, &f));
  HARNESS_WAIT(atomic_load(&started));
  CHECK_EQ(weft_future_cancel(f), 1);
  CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, &r));
  CHECK_EQ((uintptr_t)r, 0x9);
  weft_future_free(f);

  /* Freed while running: the task runs on, detached, until cancelled by
   * shutdown. */
  CHECK_OK(weft_runtime_submit(rt, forever, NULL, &f));
  weft_future_free(f);
  return NULL;
}

static atomic_int future_waiting; /* future_waiter is about to wait */

static void *future_waiter(void *arg) {
  int rc;

  atomic_store(&future_waiting, 1);
  rc = weft_future_wait(arg, WEFT_NO_TIMEOUT, NULL);

  if (rc == WEFT_ECANCELED)
    CHECK_EQ(weft_task_uncancel(), 0); /* report it as the result */
  return (void *)(intptr_t)rc;
}

static void *cancel_main(void *arg) {
  weft_runtime_t *rt = weft_runtime_current();
  weft_future_t *f;
  weft_task_t *w;
  void *r;
  void *args[1];

  (void)arg;
  args[0] = rt;
  run_threads(cancel_thread, args, 1);
  /* From a task: cancelling a task that waits on a future ends only the
   * wait; the future's task keeps running until cancelled itself. */
  CHECK_OK(weft_runtime_submit(rt, forever, NULL, &f));
  atomic_store(&future_waiting, 0);
  CHECK_OK(weft_spawn(future_waiter, f, &w));
  HARNESS_WAIT_PARKED(future_waiting);
  CHECK_EQ(weft_task_cancel(w), 1);
  CHECK_OK(weft_task_await(w, &r));
  CHECK_EQ((intptr_t)r, WEFT_ECANCELED);
  weft_task_unref(w);
  CHECK_EQ(weft_future_done(f), 0);
  CHECK_EQ(weft_future_cancel(f), 1);
  CHECK_RC(weft_future_wait(f, WEFT_NO_TIMEOUT, NULL), WEFT_ECANCELED);
  weft_future_free(f);
  return NULL;
}

static void test_cancel_via_future(void **state) {
  (void)state;
  run_in_weft(cancel_main, NULL, 2);
}

/* Cancelled before it ran: the submitted task never starts (asyncio never
 * starts a coroutine whose task was cancelled first) and its future
 * completes with WEFT_ECANCELED. "Before it ran" is made certain by
 * submitting while the runtime's only worker is held by its main task,
 * which blocks in pthread_join() until the thread has submitted and
 * cancelled. */
#define N_PRESTART 16

typedef struct prestart {
  weft_runtime_t *rt;
  weft_future_t *f[N_PRESTART];
  atomic_int started[N_PRESTART];
} prestart_t;

static void *prestart_thread(void *arg) {
  prestart_t *p = arg;

  for (int i = 0; i < N_PRESTART; i++) {
    CHECK_OK(weft_runtime_submit(p->rt, forever, &p->started[i], &p->f[i]));
    if (p->f[i]) {
      CHECK_EQ(weft_future_done(p->f[i]), 0);
      CHECK_EQ(weft_future_cancel(p->f[i]), 1);
    }
  }
  return NULL;
}

static void *prestart_main(void *arg) {
  prestart_t *p = arg;
  pthread_t th;
  void *r;

  p->rt = weft_runtime_current();
  CHECK_OK(pthread_create(&th, NULL, prestart_thread, p));
  CHECK_OK(pthread_join(th, NULL)); /* holds the only worker meanwhile */
  for (int i = 0; i < N_PRESTART; i++) {
    if (!p->f[i])
      continue;
    r = (void *)(uintptr_t)1;
    CHECK_RC(weft_future_wait(p->f[i], WEFT_NO_TIMEOUT, &r), WEFT_ECANCELED);
    CHECK(r == NULL);
    CHECK_EQ(atomic_load(&p->started[i]), 0); /* the body never ran */
    weft_future_free(p->f[i]);
  }
  return NULL;
}

static void test_cancel_before_start(void **state) {
  static prestart_t p;

  (void)state;
  memset(&p, 0, sizeof p);
  run_in_weft(prestart_main, &p, 1);
}

/* ---- submission racing shutdown ---------------------------------------------
 */

#define RACERS 8
#define RACE_FUTURES HARNESS_SIZE(3000, 300, 1000)

static atomic_int race_submitted;

typedef struct racer {
  weft_runtime_t *rt; /* referenced by the test */
  pthread_t th;
  int futures;   /* futures kept */
  int refused;   /* WEFT_ERUNTIME_SHUTDOWN seen */
  int completed; /* futures that completed with the task's result */
  int cancelled; /* futures that completed with WEFT_ECANCELED */
} racer_t;

static void *race_task(void *arg) {
  uintptr_t i = (uintptr_t)arg;

  if (i % 4 == 0) {
    int rc = weft_sleep(3600 * 1000); /* only shutdown ends it */
    return rc == 0 ? arg : weft_task_fail(rc);
  }
  if (i % 4 == 1)
    (void)weft_yield(); /* WEFT_ECANCELED once shutting down: fine */
  return arg;
}

static void *racer_thread(void *arg) {
  racer_t *s = arg;
  weft_future_t **f = calloc(RACE_FUTURES, sizeof(*f));
  uintptr_t i;
  void *r;
  int rc;

  for (i = 1;; i++) {
    /* After RACE_FUTURES futures, keep submitting detached tasks, a little
     * more slowly, until the runtime refuses. */
    int keep = s->futures < RACE_FUTURES && i % 5 != 0;
    rc = weft_runtime_submit(s->rt, race_task, (void *)i,
                             keep ? &f[s->futures] : NULL);
    if (rc == WEFT_ERUNTIME_SHUTDOWN) {
      s->refused++;
      break;
    }
    CHECK_OK(rc);
    if (rc != 0)
      break;
    atomic_fetch_add(&race_submitted, 1);
    if (keep)
      s->futures++;
    else if (s->futures >= RACE_FUTURES)
      sleep_ms(1);
  }
  /* Refused once, refused for good. */
  CHECK_RC(weft_runtime_submit(s->rt, race_task, NULL, NULL),
           WEFT_ERUNTIME_SHUTDOWN);
  for (i = 0; i < (uintptr_t)s->futures; i++) {
    r = NULL;
    rc = weft_future_wait(f[i], WEFT_NO_TIMEOUT, &r);
    if (rc == 0) {
      CHECK(r != NULL);
      s->completed++;
    } else {
      CHECK_RC(rc, WEFT_ECANCELED);
      s->cancelled++;
    }
    weft_future_free(f[i]);
  }
  free(f);
  return NULL;
}

static racer_t racers[RACERS];

static void *race_main(void *arg) {
  weft_runtime_t *rt = weft_runtime_ref(weft_runtime_current());
  int i;

  (void)arg;
  for (i = 0; i < RACERS; i++) {
    memset(&racers[i], 0, sizeof(racers[i]));
    racers[i].rt = weft_runtime_ref(rt);
    CHECK_OK(pthread_create(&racers[i].th, NULL, racer_thread, &racers[i]));
  }
  weft_runtime_unref(rt);
  /* Let the race start for real, then return while they submit. */
  HARNESS_WAIT(atomic_load(&race_submitted) >= 200);
  CHECK_OK(weft_sleep(5));
  return NULL;
}

static void test_submit_racing_shutdown(void **state) {
  weft_config_t cfg;
  int round, i, futures, done;

  (void)state;
  for (round = 0; round < 4; round++) {
    atomic_store(&race_submitted, 0);
    weft_config_init(&cfg);
    cfg.workers = 1 + (unsigned)round % 3;
    run_in_weft_cfg(race_main, NULL, &cfg);
    futures = done = 0;
    for (i = 0; i < RACERS; i++) {
      pthread_join(racers[i].th, NULL);
      assert_int_equal(racers[i].refused, 1);
      futures += racers[i].futures;
      done += racers[i].completed + racers[i].cancelled;
      /* The handle outlives the runtime: still refused, then freed. */
      assert_int_equal(weft_runtime_submit(racers[i].rt, race_task, NULL, NULL),
                       WEFT_ERUNTIME_SHUTDOWN);
      weft_runtime_unref(racers[i].rt);
    }
    harness_assert_clean();
    assert_int_equal(done, futures);
    assert_true(atomic_load(&race_submitted) >= 200);
  }
}

/* ---- the handle after weft_run, and errors ----------------------------------
 */

static weft_future_t *kept_future;

static void *handle_main(void *arg) {
  weft_runtime_t *rt = weft_runtime_current();
  weft_future_t *f;
  void *r;

  (void)arg;
  CHECK(rt != NULL);
  CHECK(weft_runtime_ref(rt) == rt);
  weft_runtime_unref(rt);
  /* From one of its own tasks. */
  CHECK_OK(weft_runtime_submit(rt, compute, (void *)(uintptr_t)10, &f));
  CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, &r));
  CHECK_EQ((uintptr_t)r, 21);
  weft_future_free(f);
  /* A future that outlives the runtime. */
  CHECK_OK(
      weft_runtime_submit(rt, compute, (void *)(uintptr_t)20, &kept_future));
  CHECK_OK(weft_future_wait(kept_future, WEFT_NO_TIMEOUT, NULL));
  return weft_runtime_ref(rt);
}

static void *limit_main(void *arg) {
  weft_future_t *f = (weft_future_t *)(uintptr_t)0x1;

  (void)arg;
  /* max_tasks = 1: main is the one. */
  CHECK_RC(weft_runtime_submit(weft_runtime_current(), compute, NULL, &f),
           WEFT_ENOMEM);
  CHECK(f == NULL);
  return NULL;
}

static void test_handle_after_run(void **state) {
  weft_future_t *f = (weft_future_t *)(uintptr_t)0x1;
  weft_runtime_t *rt;
  weft_config_t cfg;
  void *r;

  (void)state;
  assert_null(weft_runtime_current());
  assert_null(weft_runtime_ref(NULL));
  weft_runtime_unref(NULL);
  assert_int_equal(weft_runtime_submit(NULL, compute, NULL, &f), WEFT_EINVAL);
  assert_null(f);
  assert_int_equal(weft_future_wait(NULL, 0, &r), WEFT_EINVAL);
  assert_int_equal(weft_future_done(NULL), WEFT_EINVAL);
  assert_int_equal(weft_future_result(NULL, &r), WEFT_EINVAL);
  assert_int_equal(weft_future_cancel(NULL), WEFT_EINVAL);
  weft_future_free(NULL);

  rt = run_in_weft(handle_main, NULL, 2);
  assert_non_null(rt);
  assert_int_equal(weft_runtime_submit(rt, NULL, NULL, NULL), WEFT_EINVAL);
  f = (weft_future_t *)(uintptr_t)0x1;
  assert_int_equal(weft_runtime_submit(rt, compute, NULL, &f),
                   WEFT_ERUNTIME_SHUTDOWN);
  assert_null(f);
  assert_int_equal(weft_runtime_submit(rt, compute, NULL, NULL),
                   WEFT_ERUNTIME_SHUTDOWN);
  /* The future completed inside the runtime and keeps its result. */
  assert_int_equal(weft_future_done(kept_future), 1);
  assert_int_equal(weft_future_wait(kept_future, WEFT_NO_TIMEOUT, &r), 0);
  assert_ptr_equal(r, (void *)(uintptr_t)41);
  assert_int_equal(weft_future_cancel(kept_future), 0);
  /* The future holds a reference of its own: the handle goes first. */
  weft_runtime_unref(rt);
  assert_int_equal(weft_future_result(kept_future, &r), 0);
  weft_future_free(kept_future);
  kept_future = NULL;

  weft_config_init(&cfg);
  cfg.workers = 1;
  cfg.max_tasks = 1;
  run_in_weft_cfg(limit_main, NULL, &cfg);
}

/* ---- from another runtime's task
 * ---------------------------------------------- */

typedef struct other_rt {
  weft_runtime_t *rt; /* runtime B, referenced */
  atomic_int ready;   /* B's main published rt */
  weft_event_t stop;  /* set by A to end B */
  int rc;             /* B's weft_run result */
} other_rt_t;

static void *b_main(void *arg) {
  other_rt_t *o = arg;

  o->rt = weft_runtime_ref(weft_runtime_current());
  atomic_store(&o->ready, 1);
  CHECK_OK(weft_event_wait(&o->stop));
  return NULL;
}

static void *b_thread(void *arg) {
  other_rt_t *o = arg;
  weft_config_t cfg;

  weft_config_init(&cfg);
  cfg.workers = 2;
  o->rc = weft_run(b_main, o, &cfg, NULL);
  return NULL;
}

static void *cross_waiter(void *arg) {
  other_rt_t *o = arg;
  weft_future_t *f;
  uintptr_t i;
  void *r;

  for (i = 0; i < 50; i++) {
    CHECK_OK(weft_runtime_submit(o->rt, compute, (void *)i, &f));
    CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, &r)); /* A's task suspends */
    CHECK_EQ((uintptr_t)r, i * 2 + 1);
    weft_future_free(f);
  }
  return NULL;
}

static void *cross_main(void *arg) {
  other_rt_t o;
  pthread_t th;
  weft_task_t *t[4];
  weft_future_t *f;
  void *r;
  int i;

  (void)arg;
  memset(&o, 0, sizeof(o));
  CHECK_OK(weft_event_init(&o.stop));
  CHECK_OK(pthread_create(&th, NULL, b_thread, &o));
  HARNESS_WAIT(atomic_load(&o.ready));
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_spawn(cross_waiter, &o, &t[i]));
  CHECK_OK(weft_gather(t, 4, NULL));
  for (i = 0; i < 4; i++)
    weft_task_unref(t[i]);
  /* A timed suspending wait across runtimes. */
  CHECK_OK(weft_runtime_submit(o.rt, sleeper, (void *)(uintptr_t)50, &f));
  CHECK_RC(weft_future_wait(f, 5, &r), WEFT_ETIMEDOUT);
  CHECK_OK(weft_future_wait(f, WEFT_NO_TIMEOUT, &r));
  CHECK_EQ((uintptr_t)r, 0x5);
  weft_future_free(f);
  CHECK_OK(weft_event_set(&o.stop)); /* wakes B's main from A's worker */
  CHECK_OK(weft_to_thread(join_thread, &th, NULL));
  CHECK_OK(o.rc);
  CHECK_RC(weft_runtime_submit(o.rt, compute, NULL, NULL),
           WEFT_ERUNTIME_SHUTDOWN);
  weft_runtime_unref(o.rt);
  CHECK_OK(weft_event_destroy(&o.stop));
  return NULL;
}

static void test_from_another_runtime(void **state) {
  (void)state;
  run_in_weft(cross_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_threads),
      cmocka_unit_test(test_timeouts_and_status),
      cmocka_unit_test(test_cancel_via_future),
      cmocka_unit_test(test_cancel_before_start),
      cmocka_unit_test(test_submit_racing_shutdown),
      cmocka_unit_test(test_handle_after_run),
      cmocka_unit_test(test_from_another_runtime),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
