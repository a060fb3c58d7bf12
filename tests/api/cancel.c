/*
 * api_cancel: weft_task_cancel() in every state a task can be in (ready and
 * never started, running itself, running on another worker, sleeping,
 * awaiting another task, blocked in a queue get or put, finished), one-shot
 * delivery and the cancelling()/uncancel() counts, and wait_for() (timeout,
 * completion in time, cancellation of the caller).
 */
#include "harness.h"

/* An upper bound for "returned promptly" that holds in sanitizer builds. */
#define PROMPT_MS HARNESS_PROMPT_MS
#define LONG_SLEEP_MS (600u * 1000u)

/* ---- ready, never started ------------------------------------------------- */

typedef struct probe {
  atomic_int started;    /* the body began */
  atomic_int cancelling; /* weft_task_cancelling() at the start */
  atomic_int rc;         /* what the first suspension returned */
  double elapsed;        /* how long that suspension took */
} probe_t;

static void *probe_sleep(void *arg) {
  probe_t *p = arg;
  double t0;

  atomic_store(&p->cancelling, weft_task_cancelling());
  atomic_store(&p->started, 1);
  t0 = harness_now_ms();
  atomic_store(&p->rc, weft_sleep(LONG_SLEEP_MS));
  p->elapsed = harness_now_ms() - t0;
  return (void *)(uintptr_t)5;
}

static void *ready_main(void *arg) {
  probe_t *p = arg;
  weft_task_t *t;
  void *r = (void *)(uintptr_t)1;

  /* Pinned to this worker, which runs this task until it suspends: t
   * cannot start before the cancel, whatever the number of workers. */
  CHECK_OK(harness_spawn_pinned(probe_sleep, p, weft_worker_index(), &t));
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_EQ(atomic_load(&p->started), 0);
  CHECK_EQ(weft_task_done(t), 0);
  CHECK_RC(weft_task_await(t, &r), WEFT_ECANCELED);
  CHECK(r == NULL);
  /* As asyncio never starts a coroutine whose task was cancelled first,
   * the body never ran (before the fix it ran to its first suspension). */
  CHECK_EQ(atomic_load(&p->started), 0);
  CHECK_RC(weft_task_result(t, NULL), WEFT_ECANCELED);
  CHECK_EQ(weft_task_cancel(t), 0); /* finished */
  weft_task_unref(t);
  return NULL;
}

/* Many at once, awaited together: none of them runs. */
#define N_UNSTARTED 64

static void *ready_many_main(void *arg) {
  probe_t *p = arg; /* N_UNSTARTED probes */
  weft_task_t *t[N_UNSTARTED];
  int st[N_UNSTARTED];
  int me = weft_worker_index();

  for (int i = 0; i < N_UNSTARTED; i++)
    CHECK_OK(harness_spawn_pinned(probe_sleep, &p[i], me, &t[i]));
  for (int i = 0; i < N_UNSTARTED; i++)
    CHECK_EQ(weft_task_cancel(t[i]), 1);
  CHECK_OK(weft_gather_all(t, N_UNSTARTED, NULL, st));
  for (int i = 0; i < N_UNSTARTED; i++) {
    CHECK_RC(st[i], WEFT_ECANCELED);
    CHECK_EQ(atomic_load(&p[i].started), 0);
    weft_task_unref(t[i]);
  }
  return NULL;
}

/* A task spawned just before main returns is cancelled by the shutdown
 * before it ran: it never starts either. */
static atomic_int late_started;

static void *late_body(void *arg) {
  (void)arg;
  atomic_store(&late_started, 1);
  return NULL;
}

static void *late_main(void *arg) {
  (void)arg;
  CHECK_OK(harness_spawn_pinned(late_body, NULL, weft_worker_index(), NULL));
  return NULL; /* the shutdown cancels it before this worker picks it */
}

static void test_cancel_ready_task(void **state) {
  static probe_t p[N_UNSTARTED];
  weft_config_t cfg;

  (void)state;
  for (unsigned workers = 1; workers <= 2; workers++) {
    memset(p, 0, sizeof p);
    run_in_weft(ready_main, &p[0], workers);
    memset(p, 0, sizeof p);
    run_in_weft(ready_many_main, p, workers);
    atomic_store(&late_started, 0);
    run_in_weft(late_main, NULL, workers);
    assert_int_equal(atomic_load(&late_started), 0);
  }
  weft_config_init(&cfg);
  cfg.deterministic = 1;
  memset(p, 0, sizeof p);
  run_in_weft_cfg(ready_main, &p[0], &cfg);
}

/* A task that never runs hands its argument to its spawner's discard
 * function exactly once, and one that ran never does: a detached task's
 * malloc'ed argument is not leaked (LeakSanitizer checks it in the ASan
 * tree), in a task group too. */
static atomic_int discarded;

static void discard_arg(void *arg) {
  CHECK(weft_task_current() == NULL); /* outside any task */
  free(arg);
  atomic_fetch_add(&discarded, 1);
}

static void *owning_body(void *arg) {
  free(arg); /* the body owns its argument */
  return NULL;
}

static void *discard_main(void *arg) {
  weft_spawn_opts_t o;
  weft_task_t *t;
  weft_taskgroup_t g;

  (void)arg;
  weft_spawn_opts_init(&o);
  o.pin = weft_worker_index(); /* cannot start before the cancel below */
  o.discard = discard_arg;
  /* Cancelled before it ran: discarded once, before await sees the end. */
  CHECK_OK(weft_spawn_ex(owning_body, malloc(16), &o, &t));
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  CHECK_EQ(atomic_load(&discarded), 1);
  weft_task_unref(t);
  /* Ran: its body freed the argument, discard is not called. */
  CHECK_OK(weft_spawn_ex(owning_body, malloc(16), &o, &t));
  CHECK_OK(weft_task_await(t, NULL));
  CHECK_EQ(atomic_load(&discarded), 1);
  weft_task_unref(t);
  /* In a group, cancelled before it ran: discard gets the caller's arg. */
  weft_taskgroup_init(&g);
  CHECK_OK(weft_taskgroup_spawn_ex(&g, owning_body, malloc(16), &o, NULL));
  CHECK_OK(weft_taskgroup_cancel(&g));
  CHECK_OK(weft_taskgroup_wait(&g));
  CHECK_EQ(atomic_load(&discarded), 2);
  CHECK_OK(weft_taskgroup_destroy(&g));
  /* Detached, caught by the shutdown before it ran. */
  CHECK_OK(weft_spawn_ex(owning_body, malloc(16), &o, NULL));
  return NULL;
}

static void test_discard_never_run(void **state) {
  (void)state;
  for (unsigned workers = 1; workers <= 2; workers++) {
    atomic_store(&discarded, 0);
    run_in_weft(discard_main, NULL, workers);
    assert_int_equal(atomic_load(&discarded), 3);
  }
}

/* ---- running: itself ------------------------------------------------------- */

static void *noop(void *arg) { return arg; }

static void *self_cancel_child(void *arg) {
  weft_queue_t *q;
  weft_task_t *t;
  void *item;

  (void)arg;
  CHECK_EQ(weft_task_cancelling(), 0);
  CHECK_EQ(weft_task_cancel(weft_task_current()), 1);
  CHECK_EQ(weft_task_cancelling(), 1);
  /* Only suspension points see the request: these do not suspend. */
  CHECK_OK(weft_queue_new(0, &q));
  CHECK_OK(weft_queue_try_put(q, q));
  CHECK_OK(weft_queue_try_get(q, &item));
  CHECK_OK(weft_queue_free(q));
  CHECK_OK(weft_spawn(noop, NULL, &t));
  CHECK_EQ(weft_task_done(weft_task_current()), 0);
  /* The next suspension point delivers it, once. */
  CHECK_RC(weft_yield(), WEFT_ECANCELED);
  CHECK_OK(weft_yield());
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_sleep(1));
  CHECK_EQ(weft_task_cancelling(), 1);
  return (void *)(uintptr_t)8; /* the status is ECANCELED all the same */
}

static void *self_cancel_main(void *arg) {
  weft_task_t *t;
  void *r = (void *)(uintptr_t)1;

  (void)arg;
  CHECK_OK(weft_spawn(self_cancel_child, NULL, &t));
  CHECK_RC(weft_task_await(t, &r), WEFT_ECANCELED);
  CHECK(r == NULL);
  weft_task_unref(t);
  return NULL;
}

static void test_cancel_running_self(void **state) {
  (void)state;
  run_in_weft(self_cancel_main, NULL, 1);
  run_in_weft(self_cancel_main, NULL, 2);
}

/* ---- running: another task, on another worker ------------------------------- */

typedef struct running_pair {
  weft_task_t *victim;
  atomic_int running;   /* the victim is spinning */
  atomic_int cancelled; /* the canceller's request has been made */
  atomic_int rc;        /* the victim's next suspension */
} running_pair_t;

static void *running_victim(void *arg) {
  running_pair_t *p = arg;
  double deadline = harness_now_ms() + 10000.0 * HARNESS_SLOWDOWN;

  atomic_store(&p->running, 1);
  while (!atomic_load(&p->cancelled) && harness_now_ms() < deadline) {
  }
  CHECK(atomic_load(&p->cancelled));
  CHECK_EQ(weft_task_cancelling(), 1);
  atomic_store(&p->rc, weft_yield());
  return NULL;
}

static void *running_canceller(void *arg) {
  running_pair_t *p = arg;
  double deadline = harness_now_ms() + 10000.0 * HARNESS_SLOWDOWN;

  while (!atomic_load(&p->running) && harness_now_ms() < deadline) {
  }
  CHECK(atomic_load(&p->running));
  CHECK_EQ(weft_task_cancel(p->victim), 1);
  atomic_store(&p->cancelled, 1);
  return NULL;
}

static void *running_main(void *arg) {
  running_pair_t *p = arg;
  weft_spawn_opts_t opts;
  weft_task_t *c;

  /* Pinned to two different workers, so both spin at the same time. */
  weft_spawn_opts_init(&opts);
  opts.pin = 1;
  CHECK_OK(weft_spawn_ex(running_victim, p, &opts, &p->victim));
  opts.pin = 0;
  CHECK_OK(weft_spawn_ex(running_canceller, p, &opts, &c));
  CHECK_OK(weft_task_await(c, NULL));
  CHECK_RC(weft_task_await(p->victim, NULL), WEFT_ECANCELED);
  CHECK_RC(atomic_load(&p->rc), WEFT_ECANCELED);
  weft_task_unref(c);
  weft_task_unref(p->victim);
  return NULL;
}

static void test_cancel_running_other(void **state) {
  running_pair_t p;

  (void)state;
  memset(&p, 0, sizeof p);
  run_in_weft(running_main, &p, 2);
}

/* ---- sleeping ------------------------------------------------------------------ */

static void *sleeping_main(void *arg) {
  weft_spawn_opts_t opts;
  probe_t p[3];
  weft_task_t *t[3];
  int i;

  (void)arg;
  memset(p, 0, sizeof p);
  weft_spawn_opts_init(&opts);
  for (i = 0; i < 3; i++) {
    /* Unpinned, and pinned to this worker's neighbour and to worker 0. */
    opts.pin = i == 0 ? -1 : (i == 1 ? weft_worker_count() - 1 : 0);
    CHECK_OK(weft_spawn_ex(probe_sleep, &p[i], &opts, &t[i]));
  }
  /* Wait until each is in its sleep (the cancels below follow even if one
   * never gets there, so that the run ends). */
  for (i = 0; i < 3; i++)
    HARNESS_WAIT_PARKED(p[i].started);
  for (i = 0; i < 3; i++) {
    CHECK_EQ(atomic_load(&p[i].started), 1);
    CHECK_EQ(weft_task_done(t[i]), 0);
    CHECK_EQ(weft_task_cancel(t[i]), 1);
  }
  for (i = 0; i < 3; i++) {
    CHECK_RC(weft_task_await(t[i], NULL), WEFT_ECANCELED);
    CHECK_RC(atomic_load(&p[i].rc), WEFT_ECANCELED);
    CHECK(p[i].elapsed < PROMPT_MS);
    weft_task_unref(t[i]);
  }
  return NULL;
}

static void test_cancel_sleeping(void **state) {
  (void)state;
  run_in_weft(sleeping_main, NULL, 1);
  run_in_weft(sleeping_main, NULL, 3);
}

/* ---- awaiting another task -------------------------------------------------------- */

/* asyncio: cancelling a task that awaits another cancels the awaited one
 * too (Task.cancel() cancels its _fut_waiter), and the awaiter gets the
 * awaited task's outcome; asyncio.shield() (weft_task_shield) stops that. */

typedef struct await_pair {
  weft_task_t *awaited;
  int shield;              /* the awaiter uses weft_task_shield() */
  atomic_int waiting;      /* the awaiter is about to await */
  atomic_int rc;           /* the awaiter's await */
  atomic_int awaited_done; /* weft_task_done(awaited) just after */
  atomic_int cancelling;   /* the awaiter's weft_task_cancelling() after */
  void *result;            /* what the awaiter's await returned */
} await_pair_t;

/* The awaited tasks sleep long enough for the awaiter to be cancelled while
 * they sleep, however slow the machine (the awaiter is cancelled as soon as
 * it is parked). */
#define AWAITED_SLEEP_MS 1000

static void *sleep_300_return_42(void *arg) {
  (void)arg;
  if (weft_sleep(AWAITED_SLEEP_MS) != 0)
    return NULL; /* cancelled: the status says so */
  return (void *)(uintptr_t)42;
}

/* Handles the cancellation: withdraws it and returns 42 anyway. */
static void *sleep_swallow_return_42(void *arg) {
  (void)arg;
  int rc = weft_sleep(AWAITED_SLEEP_MS);
  if (rc == WEFT_ECANCELED)
    CHECK_EQ(weft_task_uncancel(), 0);
  else
    CHECK_OK(rc);
  return (void *)(uintptr_t)42;
}

static void *awaiter(void *arg) {
  await_pair_t *p = arg;
  void *r = (void *)(uintptr_t)1;

  atomic_store(&p->waiting, 1);
  atomic_store(&p->rc, p->shield ? weft_task_shield(p->awaited, &r)
                                 : weft_task_await(p->awaited, &r));
  atomic_store(&p->awaited_done, weft_task_done(p->awaited));
  atomic_store(&p->cancelling, weft_task_cancelling());
  p->result = r;
  return NULL;
}

/* Start `awaited` and an awaiter of it, cancel the awaiter while it waits,
 * and await the awaiter. */
static void cancel_an_awaiter(await_pair_t *p, weft_task_fn awaited,
                              int shield) {
  weft_task_t *a;

  memset(p, 0, sizeof *p);
  p->shield = shield;
  CHECK_OK(weft_spawn(awaited, NULL, &p->awaited));
  CHECK_OK(weft_spawn(awaiter, p, &a));
  HARNESS_WAIT_PARKED(p->waiting);
  CHECK_EQ(weft_task_cancel(a), 1);
  weft_task_await(a, NULL);
  weft_task_unref(a);
}

static void *awaiting_main(void *arg) {
  await_pair_t p;
  void *r = NULL;

  (void)arg;
  /* Plain await: the cancellation goes on to the awaited task, which ends
   * cancelled before the awaiter returns. */
  cancel_an_awaiter(&p, sleep_300_return_42, 0);
  CHECK_RC(atomic_load(&p.rc), WEFT_ECANCELED);
  CHECK_EQ(atomic_load(&p.awaited_done), 1);
  CHECK_RC(weft_task_await(p.awaited, &r), WEFT_ECANCELED);
  CHECK(p.result == NULL);
  weft_task_unref(p.awaited);

  /* The awaited task handles it and returns 42: the awaiter gets that, and
   * its own cancellation count shows the delivered request. */
  cancel_an_awaiter(&p, sleep_swallow_return_42, 0);
  CHECK_OK(atomic_load(&p.rc));
  CHECK(p.result == (void *)(uintptr_t)42);
  CHECK_EQ(atomic_load(&p.awaited_done), 1);
  CHECK_EQ(atomic_load(&p.cancelling), 1);
  weft_task_unref(p.awaited);

  /* Shielded: only the awaiter is cancelled; the awaited task runs on and
   * finishes with its result. */
  cancel_an_awaiter(&p, sleep_300_return_42, 1);
  CHECK_RC(atomic_load(&p.rc), WEFT_ECANCELED);
  CHECK_EQ(atomic_load(&p.awaited_done), 0);
  CHECK_EQ(weft_task_done(p.awaited), 0);
  CHECK_OK(weft_task_await(p.awaited, &r));
  CHECK(r == (void *)(uintptr_t)42);
  weft_task_unref(p.awaited);

  /* weft_task_shield() on a finished task, on itself, on NULL. */
  CHECK_OK(weft_spawn(sleep_swallow_return_42, NULL, &p.awaited));
  CHECK_OK(weft_task_await(p.awaited, NULL));
  CHECK_OK(weft_task_shield(p.awaited, &r));
  CHECK(r == (void *)(uintptr_t)42);
  CHECK_OK(weft_task_shield(p.awaited, NULL));
  weft_task_unref(p.awaited);
  /* Cancelled before it ran, it never runs (so cannot handle it). */
  CHECK_OK(harness_spawn_pinned(sleep_swallow_return_42, NULL,
                                weft_worker_index(), &p.awaited));
  CHECK_EQ(weft_task_cancel(p.awaited), 1);
  CHECK_RC(weft_task_shield(p.awaited, &r), WEFT_ECANCELED);
  CHECK(r == NULL);
  weft_task_unref(p.awaited);
  CHECK_RC(weft_task_shield(weft_task_current(), NULL), WEFT_EDEADLK);
  CHECK_RC(weft_task_shield(NULL, NULL), WEFT_EINVAL);
  return NULL;
}

static void test_cancel_awaiting(void **state) {
  (void)state;
  run_in_weft(awaiting_main, NULL, 1);
  run_in_weft(awaiting_main, NULL, 2);
}

/* ---- blocked in a queue ------------------------------------------------------------- */

typedef struct q_probe {
  weft_queue_t *q;
  atomic_int waiting; /* about to block */
  atomic_int rc;      /* what the queue call returned */
  void *item;         /* what a get received */
} q_probe_t;

static void *q_getter(void *arg) {
  q_probe_t *p = arg;

  atomic_store(&p->waiting, 1);
  atomic_store(&p->rc, weft_queue_get(p->q, &p->item));
  return NULL;
}

static void *q_putter(void *arg) {
  q_probe_t *p = arg;

  atomic_store(&p->waiting, 1);
  atomic_store(&p->rc, weft_queue_put(p->q, (void *)(uintptr_t)0xB));
  return NULL;
}

static void *queue_main(void *arg) {
  q_probe_t g1, g2, p1;
  weft_task_t *tg1, *tg2, *tp1;
  weft_queue_t *q;
  void *item = NULL;

  (void)arg;
  memset(&g1, 0, sizeof g1);
  memset(&g2, 0, sizeof g2);
  memset(&p1, 0, sizeof p1);

  /* A cancelled get removes nothing, and the next item goes to the next
   * getter. */
  CHECK_OK(weft_queue_new(1, &q));
  g1.q = g2.q = p1.q = q;
  CHECK_OK(weft_spawn(q_getter, &g1, &tg1));
  HARNESS_WAIT_PARKED(g1.waiting);
  CHECK_EQ(weft_task_cancel(tg1), 1);
  CHECK_RC(weft_task_await(tg1, NULL), WEFT_ECANCELED);
  CHECK_RC(atomic_load(&g1.rc), WEFT_ECANCELED);
  CHECK_OK(weft_spawn(q_getter, &g2, &tg2));
  HARNESS_WAIT_PARKED(g2.waiting);
  CHECK_OK(weft_queue_put(q, (void *)(uintptr_t)0xA));
  CHECK_OK(weft_task_await(tg2, NULL));
  CHECK_OK(atomic_load(&g2.rc));
  CHECK(g2.item == (void *)(uintptr_t)0xA);
  CHECK_EQ(weft_queue_size(q), 0);

  /* A cancelled put queues nothing. */
  CHECK_OK(weft_queue_try_put(q, (void *)(uintptr_t)0xC));
  CHECK_OK(weft_spawn(q_putter, &p1, &tp1));
  HARNESS_WAIT_PARKED(p1.waiting);
  CHECK_EQ(weft_task_done(tp1), 0);
  CHECK_EQ(weft_task_cancel(tp1), 1);
  CHECK_RC(weft_task_await(tp1, NULL), WEFT_ECANCELED);
  CHECK_RC(atomic_load(&p1.rc), WEFT_ECANCELED);
  CHECK_EQ(weft_queue_size(q), 1);
  CHECK_OK(weft_queue_try_get(q, &item));
  CHECK(item == (void *)(uintptr_t)0xC);
  CHECK_RC(weft_queue_try_get(q, &item), WEFT_EAGAIN);

  CHECK_OK(weft_queue_free(q));
  weft_task_unref(tg1);
  weft_task_unref(tg2);
  weft_task_unref(tp1);
  return NULL;
}

static void test_cancel_queue_waiters(void **state) {
  (void)state;
  run_in_weft(queue_main, NULL, 1);
  run_in_weft(queue_main, NULL, 2);
}

/* ---- finished ------------------------------------------------------------------- */

static void *done_main(void *arg) {
  weft_task_t *t;
  void *r = NULL;

  (void)arg;
  CHECK_OK(weft_spawn(noop, (void *)(uintptr_t)3, &t));
  CHECK_OK(weft_task_await(t, &r));
  CHECK_EQ(weft_task_cancel(t), 0);
  CHECK_EQ(weft_task_cancel(t), 0);
  r = NULL;
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)3);
  CHECK_OK(weft_task_result(t, &r));
  weft_task_unref(t);
  return NULL;
}

static void test_cancel_finished(void **state) {
  (void)state;
  run_in_weft(done_main, NULL, 2);
}

/* ---- one-shot delivery, cancelling() and uncancel() -------------------------------- */

static void *one_shot_child(void *arg) {
  atomic_store((atomic_int *)arg, 1); /* started */
  CHECK_RC(weft_sleep(LONG_SLEEP_MS), WEFT_ECANCELED);
  CHECK_EQ(weft_task_cancelling(), 1);
  /* Delivered once: later suspensions work. */
  CHECK_OK(weft_sleep(2));
  CHECK_OK(weft_yield());
  CHECK_EQ(weft_task_cancelling(), 1);
  /* A second request counts too. */
  CHECK_EQ(weft_task_cancel(weft_task_current()), 1);
  CHECK_EQ(weft_task_cancelling(), 2);
  CHECK_RC(weft_yield(), WEFT_ECANCELED);
  CHECK_OK(weft_yield());
  CHECK_EQ(weft_task_uncancel(), 1);
  CHECK_EQ(weft_task_cancelling(), 1);
  CHECK_EQ(weft_task_uncancel(), 0);
  CHECK_EQ(weft_task_cancelling(), 0);
  /* Never below zero. */
  CHECK_EQ(weft_task_uncancel(), 0);
  CHECK_OK(weft_sleep(1));
  /* All requests withdrawn: the task ends normally, with its result. */
  return (void *)(uintptr_t)77;
}

static void *not_uncancelled_child(void *arg) {
  atomic_store((atomic_int *)arg, 1); /* started */
  CHECK_RC(weft_sleep(LONG_SLEEP_MS), WEFT_ECANCELED);
  CHECK_OK(weft_sleep(1));
  return (void *)(uintptr_t)78;
}

static void *one_shot_main(void *arg) {
  weft_task_t *t, *u;
  atomic_int t_started, u_started;
  void *r = NULL;

  (void)arg;
  atomic_init(&t_started, 0);
  atomic_init(&u_started, 0);
  CHECK_EQ(weft_task_cancelling(), 0);
  CHECK_EQ(weft_task_uncancel(), 0);
  CHECK_OK(weft_spawn(one_shot_child, &t_started, &t));
  CHECK_OK(weft_spawn(not_uncancelled_child, &u_started, &u));
  /* Both in their long sleep (cancelled anyway, so that the run ends). */
  HARNESS_WAIT_PARKED(t_started);
  HARNESS_WAIT_PARKED(u_started);
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_EQ(weft_task_cancel(u), 1);
  CHECK_OK(weft_task_await(t, &r));
  CHECK(r == (void *)(uintptr_t)77);
  r = (void *)(uintptr_t)1;
  CHECK_RC(weft_task_await(u, &r), WEFT_ECANCELED);
  CHECK(r == NULL);
  weft_task_unref(t);
  weft_task_unref(u);
  return NULL;
}

static void test_one_shot_and_counts(void **state) {
  (void)state;
  run_in_weft(one_shot_main, NULL, 1);
  run_in_weft(one_shot_main, NULL, 2);
}

/* ---- wait_for ---------------------------------------------------------------------- */

typedef struct inner {
  atomic_int started; /* the inner task is about to sleep */
  atomic_int rc;      /* the inner task's sleep */
  atomic_int stubborn; /* withdraw the cancel and finish later */
} inner_t;

static void *inner_sleep_long(void *arg) {
  inner_t *in = arg;
  int rc;

  atomic_store(&in->started, 1);
  rc = weft_sleep(LONG_SLEEP_MS);

  atomic_store(&in->rc, rc);
  if (rc == WEFT_ECANCELED && atomic_load(&in->stubborn)) {
    CHECK_EQ(weft_task_uncancel(), 0);
    CHECK_OK(weft_sleep(30));
    return (void *)(uintptr_t)5;
  }
  return NULL;
}

static void *inner_quick(void *arg) {
  CHECK_OK(weft_sleep(10));
  return arg;
}

static void *inner_fail(void *arg) {
  (void)arg;
  CHECK_OK(weft_sleep(5));
  return weft_task_fail(WEFT_EIO);
}

typedef struct wait_for_probe {
  weft_task_t *inner;
  atomic_int started; /* about to call wait_for */
  atomic_int rc;      /* what wait_for returned */
  atomic_int inner_done; /* weft_task_done(inner) just after */
} wait_for_probe_t;

static void *wait_for_caller(void *arg) {
  wait_for_probe_t *p = arg;

  atomic_store(&p->started, 1);
  atomic_store(&p->rc, weft_task_wait_for(p->inner, LONG_SLEEP_MS, NULL));
  atomic_store(&p->inner_done, weft_task_done(p->inner));
  return NULL;
}

static void *wait_for_main(void *arg) {
  inner_t in;
  wait_for_probe_t p;
  weft_task_t *t, *c;
  void *r;
  double t0, elapsed;
  int rc;

  (void)arg;
  /* Timeout: ETIMEDOUT, and the inner task has finished, cancelled. */
  memset(&in, 0, sizeof in);
  CHECK_OK(weft_spawn(inner_sleep_long, &in, &t));
  HARNESS_WAIT_PARKED(in.started); /* then the timeout cancels its sleep */
  t0 = harness_now_ms();
  r = (void *)(uintptr_t)1;
  CHECK_RC(weft_task_wait_for(t, 50, &r), WEFT_ETIMEDOUT);
  elapsed = harness_now_ms() - t0;
  CHECK(elapsed >= 45.0); /* libuv's clock has 1 ms steps */
  CHECK(elapsed < 50.0 + PROMPT_MS);
  CHECK_EQ(weft_task_done(t), 1);
  CHECK_RC(atomic_load(&in.rc), WEFT_ECANCELED);
  CHECK_RC(weft_task_result(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);

  /* Timeout on a task that withdraws the cancellation and finishes later:
   * wait_for still waits for it to finish. weft/task.h says ETIMEDOUT;
   * asyncio returns the result of an inner task that swallowed the
   * cancellation. Either is accepted here, the result then being right. */
  memset(&in, 0, sizeof in);
  atomic_store(&in.stubborn, 1);
  CHECK_OK(weft_spawn(inner_sleep_long, &in, &t));
  HARNESS_WAIT_PARKED(in.started);
  t0 = harness_now_ms();
  r = NULL;
  rc = weft_task_wait_for(t, 20, &r);
  CHECK(rc == WEFT_ETIMEDOUT || (rc == 0 && r == (void *)(uintptr_t)5));
  elapsed = harness_now_ms() - t0;
  CHECK(elapsed >= 45.0); /* 20 ms, then the 30 ms sleep */
  CHECK_EQ(weft_task_done(t), 1);
  r = NULL;
  CHECK_OK(weft_task_result(t, &r));
  CHECK(r == (void *)(uintptr_t)5);
  weft_task_unref(t);

  /* Completes in time: its result. */
  CHECK_OK(weft_spawn(inner_quick, (void *)(uintptr_t)7, &t));
  r = NULL;
  CHECK_OK(weft_task_wait_for(t, 60000, &r));
  CHECK(r == (void *)(uintptr_t)7);
  /* Already finished: its result, even with a zero timeout. */
  r = NULL;
  CHECK_OK(weft_task_wait_for(t, 0, &r));
  CHECK(r == (void *)(uintptr_t)7);
  weft_task_unref(t);

  /* WEFT_NO_TIMEOUT: no limit, as weft_task_await(). */
  CHECK_OK(weft_spawn(inner_quick, (void *)(uintptr_t)8, &t));
  r = NULL;
  CHECK_OK(weft_task_wait_for(t, WEFT_NO_TIMEOUT, &r));
  CHECK(r == (void *)(uintptr_t)8);
  weft_task_unref(t);

  /* Fails in time: its status. */
  CHECK_OK(weft_spawn(inner_fail, NULL, &t));
  r = (void *)(uintptr_t)1;
  CHECK_RC(weft_task_wait_for(t, 60000, &r), WEFT_EIO);
  CHECK(r == NULL);
  weft_task_unref(t);

  /* The caller is cancelled: the inner task is cancelled and awaited too. */
  memset(&in, 0, sizeof in);
  memset(&p, 0, sizeof p);
  CHECK_OK(weft_spawn(inner_sleep_long, &in, &p.inner));
  CHECK_OK(weft_spawn(wait_for_caller, &p, &c));
  HARNESS_WAIT_PARKED(in.started);
  HARNESS_WAIT_PARKED(p.started);
  CHECK_EQ(weft_task_cancel(c), 1);
  CHECK_RC(weft_task_await(c, NULL), WEFT_ECANCELED);
  CHECK_RC(atomic_load(&p.rc), WEFT_ECANCELED);
  CHECK_EQ(atomic_load(&p.inner_done), 1);
  CHECK_RC(atomic_load(&in.rc), WEFT_ECANCELED);
  CHECK_RC(weft_task_result(p.inner, NULL), WEFT_ECANCELED);
  weft_task_unref(c);
  weft_task_unref(p.inner);
  return NULL;
}

static void test_wait_for(void **state) {
  (void)state;
  run_in_weft(wait_for_main, NULL, 1);
  run_in_weft(wait_for_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cancel_ready_task),
      cmocka_unit_test(test_discard_never_run),
      cmocka_unit_test(test_cancel_running_self),
      cmocka_unit_test(test_cancel_running_other),
      cmocka_unit_test(test_cancel_sleeping),
      cmocka_unit_test(test_cancel_awaiting),
      cmocka_unit_test(test_cancel_queue_waiters),
      cmocka_unit_test(test_cancel_finished),
      cmocka_unit_test(test_one_shot_and_counts),
      cmocka_unit_test(test_wait_for),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
