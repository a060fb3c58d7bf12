/*
 * api_cond: weft_cond_* (asyncio.Condition): every error path, wait/notify
 * without the lock, notify(n) in FIFO order, notify_all, wait_for with a
 * predicate (producer/consumer on 4 workers), cancellation of a waiter (it
 * still re-acquires the lock, as in asyncio), and cancellation racing a
 * notification: a notification is never lost.
 */
#include "harness.h"

static void test_outside_and_errors(void **state) {
  weft_lock_t lock = WEFT_LOCK_INITIALIZER;
  weft_cond_t *c = NULL;
  weft_cond_t embedded;

  (void)state;
  assert_int_equal(weft_cond_init(NULL, &lock), WEFT_EINVAL);
  assert_int_equal(weft_cond_init(&embedded, NULL), WEFT_EINVAL);
  assert_int_equal(weft_cond_destroy(NULL), WEFT_EINVAL);
  assert_int_equal(weft_cond_new(NULL, &c), WEFT_EINVAL);
  assert_int_equal(weft_cond_new(&lock, NULL), WEFT_EINVAL);
  assert_int_equal(weft_cond_free(NULL), 0);
  assert_int_equal(weft_cond_wait(NULL), WEFT_EINVAL);
  assert_int_equal(weft_cond_wait_for(NULL, NULL, NULL), WEFT_EINVAL);
  assert_int_equal(weft_cond_notify(NULL, 1), WEFT_EINVAL);
  assert_int_equal(weft_cond_notify_all(NULL), WEFT_EINVAL);

  assert_int_equal(weft_cond_new(&lock, &c), 0);
  assert_int_equal(weft_cond_wait(c), WEFT_ENOTTASK);
  assert_int_equal(weft_cond_notify(c, 1), WEFT_ENOTTASK);
  assert_int_equal(weft_cond_notify_all(c), WEFT_ENOTTASK);
  assert_int_equal(weft_cond_free(c), 0);
  assert_int_equal(weft_cond_init(&embedded, &lock), 0);
  assert_int_equal(weft_cond_destroy(&embedded), 0);
}

static int always(void *arg) {
  (void)arg;
  return 1;
}

static void *not_held_main(void *arg) {
  weft_lock_t lock = WEFT_LOCK_INITIALIZER;
  weft_cond_t c;

  (void)arg;
  CHECK_OK(weft_cond_init(&c, &lock));
  CHECK_RC(weft_cond_wait(&c), WEFT_EPERM);
  CHECK_RC(weft_cond_wait_for(&c, always, NULL), WEFT_EPERM);
  CHECK_RC(weft_cond_wait_for(&c, NULL, NULL), WEFT_EINVAL);
  CHECK_RC(weft_cond_notify(&c, 1), WEFT_EPERM);
  CHECK_RC(weft_cond_notify_all(&c), WEFT_EPERM);
  CHECK_OK(weft_lock_acquire(&lock));
  CHECK_EQ(weft_cond_notify(&c, 1), 0); /* nobody waits */
  CHECK_EQ(weft_cond_notify_all(&c), 0);
  CHECK_OK(weft_cond_wait_for(&c, always, NULL)); /* true: no wait */
  CHECK_OK(weft_lock_release(&lock));
  CHECK_OK(weft_cond_destroy(&c));
  return NULL;
}

static void test_without_lock(void **state) {
  (void)state;
  run_in_weft(not_held_main, NULL, 1);
}

/* ---- notify(n) in FIFO order, notify_all ---------------------------------- */

#define N_WAITERS 6

typedef struct fifo {
  weft_lock_t lock;
  weft_cond_t c;
  atomic_int next;
  int order[N_WAITERS];
  int held[N_WAITERS]; /* the lock was held when wait returned */
  atomic_int arrived;  /* waiters holding the lock, about to wait */
} fifo_t;

typedef struct fifo_arg {
  fifo_t *f;
  int i;
} fifo_arg_t;

static void *fifo_waiter(void *arg) {
  fifo_arg_t *a = arg;
  fifo_t *f = a->f;

  CHECK_OK(weft_lock_acquire(&f->lock));
  atomic_fetch_add(&f->arrived, 1);
  CHECK_OK(weft_cond_wait(&f->c));
  f->order[a->i] = atomic_fetch_add(&f->next, 1);
  /* Holding the lock: a release succeeds only for the owner. */
  f->held[a->i] = weft_lock_release(&f->lock) == 0;
  return NULL;
}

static void *fifo_main(void *arg) {
  fifo_t f;
  fifo_arg_t a[N_WAITERS];
  weft_task_t *t[N_WAITERS];
  int i;

  (void)arg;
  memset(&f, 0, sizeof f);
  CHECK_OK(weft_lock_init(&f.lock));
  CHECK_OK(weft_cond_init(&f.c, &f.lock));
  for (i = 0; i < N_WAITERS; i++) {
    a[i].f = &f;
    a[i].i = i;
    CHECK_OK(weft_spawn(fifo_waiter, &a[i], &t[i]));
    /* It holds the lock, then waits: once main gets the lock, it waits on
     * the condition (wait releases the lock only after joining it). */
    HARNESS_WAIT(atomic_load(&f.arrived) == i + 1);
    CHECK_OK(weft_lock_acquire(&f.lock));
    CHECK_OK(weft_lock_release(&f.lock));
  }
  CHECK_RC(weft_cond_destroy(&f.c), WEFT_EBUSY);
  CHECK_OK(weft_lock_acquire(&f.lock));
  CHECK_EQ(weft_cond_notify(&f.c, 2), 2);
  CHECK_OK(weft_lock_release(&f.lock));
  /* The two oldest were woken (they re-acquire the lock in any order). */
  CHECK_OK(weft_task_await(t[0], NULL));
  CHECK_OK(weft_task_await(t[1], NULL));
  CHECK_OK(weft_sleep(5));
  CHECK_EQ(atomic_load(&f.next), 2);
  for (i = 2; i < N_WAITERS; i++)
    CHECK_EQ(weft_task_done(t[i]), 0);
  CHECK_OK(weft_lock_acquire(&f.lock));
  CHECK_EQ(weft_cond_notify(&f.c, 1), 1);
  CHECK_OK(weft_lock_release(&f.lock));
  CHECK_OK(weft_task_await(t[2], NULL));
  CHECK_EQ(f.order[2], 2);
  CHECK_OK(weft_sleep(5));
  for (i = 3; i < N_WAITERS; i++)
    CHECK_EQ(weft_task_done(t[i]), 0);
  CHECK_OK(weft_lock_acquire(&f.lock));
  CHECK_EQ(weft_cond_notify_all(&f.c), N_WAITERS - 3);
  CHECK_OK(weft_lock_release(&f.lock));
  CHECK_OK(weft_gather(t, N_WAITERS, NULL));
  for (i = 0; i < N_WAITERS; i++) {
    CHECK_EQ(f.held[i], 1);
    weft_task_unref(t[i]);
  }
  CHECK_EQ(atomic_load(&f.next), N_WAITERS);
  CHECK_OK(weft_cond_destroy(&f.c));
  CHECK_OK(weft_lock_destroy(&f.lock));
  return NULL;
}

static void test_notify_fifo(void **state) {
  (void)state;
  run_in_weft(fifo_main, NULL, 1);
  run_in_weft(fifo_main, NULL, 3);
}

/* ---- wait_for: a bounded buffer on 4 workers ------------------------------ */

#define N_ITEMS HARNESS_SIZE(20000, 2000, 5000)
#define N_PROD 3
#define N_CONS 3
#define CAPACITY 4

typedef struct buffer {
  weft_lock_t lock;
  weft_cond_t not_empty, not_full;
  int items;              /* guarded by lock */
  long produced, consumed;
  int done_producers;     /* guarded by lock */
} buffer_t;

static int has_room(void *arg) {
  buffer_t *b = arg;
  return b->items < CAPACITY;
}

static int has_item_or_done(void *arg) {
  buffer_t *b = arg;
  return b->items > 0 || b->done_producers == N_PROD;
}

static void *producer(void *arg) {
  buffer_t *b = arg;
  int i;

  for (i = 0; i < N_ITEMS; i++) {
    CHECK_OK(weft_lock_acquire(&b->lock));
    CHECK_OK(weft_cond_wait_for(&b->not_full, has_room, b));
    CHECK_LE(b->items, CAPACITY - 1);
    b->items++;
    b->produced++;
    CHECK(weft_cond_notify(&b->not_empty, 1) >= 0);
    CHECK_OK(weft_lock_release(&b->lock));
  }
  CHECK_OK(weft_lock_acquire(&b->lock));
  b->done_producers++;
  CHECK(weft_cond_notify_all(&b->not_empty) >= 0);
  CHECK_OK(weft_lock_release(&b->lock));
  return NULL;
}

static void *consumer(void *arg) {
  buffer_t *b = arg;

  for (;;) {
    CHECK_OK(weft_lock_acquire(&b->lock));
    CHECK_OK(weft_cond_wait_for(&b->not_empty, has_item_or_done, b));
    if (b->items == 0) {
      CHECK_OK(weft_lock_release(&b->lock));
      return NULL;
    }
    b->items--;
    b->consumed++;
    CHECK(weft_cond_notify(&b->not_full, 1) >= 0);
    CHECK_OK(weft_lock_release(&b->lock));
  }
}

static void *buffer_main(void *arg) {
  buffer_t b;
  weft_task_t *t[N_PROD + N_CONS];
  int i;

  (void)arg;
  memset(&b, 0, sizeof b);
  CHECK_OK(weft_lock_init(&b.lock));
  CHECK_OK(weft_cond_init(&b.not_empty, &b.lock));
  CHECK_OK(weft_cond_init(&b.not_full, &b.lock));
  for (i = 0; i < N_CONS; i++)
    CHECK_OK(weft_spawn(consumer, &b, &t[i]));
  for (i = 0; i < N_PROD; i++)
    CHECK_OK(weft_spawn(producer, &b, &t[N_CONS + i]));
  CHECK_OK(weft_gather(t, N_PROD + N_CONS, NULL));
  for (i = 0; i < N_PROD + N_CONS; i++)
    weft_task_unref(t[i]);
  CHECK_EQ(b.produced, (long)N_PROD * N_ITEMS);
  CHECK_EQ(b.consumed, (long)N_PROD * N_ITEMS);
  CHECK_EQ(b.items, 0);
  CHECK_OK(weft_cond_destroy(&b.not_empty));
  CHECK_OK(weft_cond_destroy(&b.not_full));
  CHECK_OK(weft_lock_destroy(&b.lock));
  return NULL;
}

static void test_wait_for_buffer(void **state) {
  (void)state;
  run_in_weft(buffer_main, NULL, 4);
}

/* ---- cancellation: the lock is re-acquired first ---------------------------- */

typedef struct cw {
  weft_lock_t lock;
  weft_cond_t c;
  atomic_int waiting;
  int rc;
  int held; /* the lock was held when wait returned */
} cw_t;

static void *cancel_waiter(void *arg) {
  cw_t *w = arg;

  CHECK_OK(weft_lock_acquire(&w->lock));
  atomic_store(&w->waiting, 1);
  w->rc = weft_cond_wait(&w->c);
  w->held = weft_lock_release(&w->lock) == 0;
  return NULL;
}

static void *cancel_main(void *arg) {
  cw_t w;
  weft_task_t *t;

  (void)arg;
  memset(&w, 0, sizeof w);
  CHECK_OK(weft_lock_init(&w.lock));
  CHECK_OK(weft_cond_init(&w.c, &w.lock));
  CHECK_OK(weft_spawn(cancel_waiter, &w, &t));
  /* It sets the flag holding the lock: main gets the lock once it waits. */
  HARNESS_WAIT(atomic_load(&w.waiting));
  CHECK_EQ(atomic_load(&w.waiting), 1);
  /* Cancel it while main holds the lock: it cannot return before main
   * releases, because it re-acquires the lock first. */
  CHECK_OK(weft_lock_acquire(&w.lock));
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_OK(weft_sleep(10));
  CHECK_EQ(weft_task_done(t), 0);
  /* Its notification slot is gone: nobody waits on the condition. */
  CHECK_EQ(weft_cond_notify(&w.c, 1), 0);
  CHECK_OK(weft_lock_release(&w.lock));
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_RC(w.rc, WEFT_ECANCELED);
  CHECK_EQ(w.held, 1);
  CHECK_EQ(weft_lock_locked(&w.lock), 0);
  CHECK_OK(weft_cond_destroy(&w.c));
  CHECK_OK(weft_lock_destroy(&w.lock));
  return NULL;
}

static void test_cancel_reacquires(void **state) {
  (void)state;
  run_in_weft(cancel_main, NULL, 1);
  run_in_weft(cancel_main, NULL, 2);
}

/* ---- cancellation racing notify: no notification is lost ------------------ */

/* harness_race_test: two waiters wait on the condition, the oldest (t[0],
 * the scaffold's waiter) is cancelled, and the grant is the driver's
 * notify(1), made holding the lock. Exactly one waiter gets that
 * notification: if the cancelled one did not take it, the other one did. */
typedef struct race {
  weft_lock_t lock;
  weft_cond_t c;
  atomic_int waiting;
  int rc[2];
  int held[2];
  weft_task_t *other; /* t[1] */
} race_t;

static int race_wait_k(race_t *r, int k) {
  CHECK_OK(weft_lock_acquire(&r->lock));
  atomic_fetch_add(&r->waiting, 1);
  r->rc[k] = weft_cond_wait(&r->c);
  r->held[k] = weft_lock_release(&r->lock) == 0;
  return r->rc[k];
}

static int race_wait(void *ctx) { return race_wait_k(ctx, 0); }

static void *race_other(void *ctx) {
  race_wait_k(ctx, 1);
  return NULL;
}

static void race_arm(void *ctx, int i) {
  race_t *r = ctx;

  (void)i;
  atomic_store(&r->waiting, 0);
  for (int k = 0; k < 2; k++) {
    r->rc[k] = 1;
    r->held[k] = 0;
  }
  CHECK_OK(weft_cond_init(&r->c, &r->lock));
}

/* Wait until t[k] is waiting: it counted itself and released the lock
 * (cond_wait links before it releases). Returns holding the lock. */
static void race_wait_waiting(race_t *r, int k) {
  for (;;) {
    CHECK_OK(weft_lock_acquire(&r->lock));
    if (atomic_load(&r->waiting) == k + 1)
      break;
    CHECK_OK(weft_lock_release(&r->lock));
    CHECK_OK(weft_yield());
  }
}

static void race_ready(void *ctx, int i) {
  race_t *r = ctx;

  race_wait_waiting(r, 0);
  CHECK_OK(weft_lock_release(&r->lock));
  /* t[0] is the oldest waiter; t[1] waits behind it. */
  CHECK_OK(harness_spawn_elsewhere(race_other, r, i + 1, &r->other));
  race_wait_waiting(r, 1);
  /* Still holding the lock: the race notifies one and cancels t[0]. */
}

static void race_grant(void *ctx) {
  race_t *r = ctx;
  CHECK_EQ(weft_cond_notify(&r->c, 1), 1);
}

static void race_finish(void *ctx) {
  race_t *r = ctx;
  CHECK_OK(weft_lock_release(&r->lock));
}

static void race_check(void *ctx, int rc) {
  race_t *r = ctx;

  if (rc == 0) {
    /* t[0] took the notification: t[1] needs another one. */
    CHECK_OK(weft_lock_acquire(&r->lock));
    CHECK_EQ(weft_cond_notify(&r->c, 1), 1);
    CHECK_OK(weft_lock_release(&r->lock));
  } else {
    CHECK_RC(rc, WEFT_ECANCELED);
  }
  CHECK_OK(weft_task_await(r->other, NULL));
  CHECK_OK(r->rc[1]);
  CHECK_EQ(r->held[0], 1);
  CHECK_EQ(r->held[1], 1);
  weft_task_unref(r->other);
  CHECK_EQ(weft_lock_locked(&r->lock), 0);
  CHECK_OK(weft_cond_destroy(&r->c));
}

static void test_cancel_races_notify(void **state) {
  race_t r;
  harness_race_t race = {.what = "condition notify",
                         .rounds = HARNESS_SIZE(2000, 200, 600),
                         .grant_is_sync = 1,
                         .ctx = &r,
                         .arm = race_arm,
                         .wait = race_wait,
                         .ready = race_ready,
                         .grant = race_grant,
                         .finish = race_finish,
                         .check = race_check};

  (void)state;
  memset(&r, 0, sizeof r);
  assert_int_equal(weft_lock_init(&r.lock), 0);
  harness_race_test(&race);
  assert_int_equal(weft_lock_destroy(&r.lock), 0);
}

/* ---- a waiter cancelled before notify() takes no notification ---- */

/* Defect 9 of issue 11: notify(1) used to give its notification to a waiter
 * whose cancel() had already returned (and count it), so the next waiter
 * stayed asleep. Deterministic mode makes the window certain. */
typedef struct cc_waiter {
  weft_lock_t *l;
  weft_cond_t *c;
  atomic_int started;
  atomic_int done;
  int rc;
} cc_waiter_t;

static void *cc_wait(void *arg) {
  cc_waiter_t *w = arg;

  CHECK_OK(weft_lock_acquire(w->l));
  atomic_store(&w->started, 1);
  w->rc = weft_cond_wait(w->c);
  CHECK_OK(weft_lock_release(w->l)); /* held again, whatever wait returned */
  atomic_store(&w->done, 1);
  return NULL;
}

static weft_task_t *cc_spawn_waiting(cc_waiter_t *w) {
  atomic_init(&w->done, 0);
  w->rc = 1;
  return harness_spawn_waiting(cc_wait, w, &w->started);
}

static void *cancelled_waiter_main(void *arg) {
  weft_lock_t l;
  weft_cond_t c;
  cc_waiter_t a = {0}, b = {0};
  weft_task_t *ta, *tb;

  (void)arg;
  CHECK_OK(weft_lock_init(&l));
  CHECK_OK(weft_cond_init(&c, &l));
  a.l = b.l = &l;
  a.c = b.c = &c;
  /* Alone: nobody is notified. */
  ta = cc_spawn_waiting(&a);
  CHECK_EQ(weft_task_cancel(ta), 1);
  CHECK_OK(weft_lock_acquire(&l));
  CHECK_EQ(weft_cond_notify(&c, 1), 0);
  CHECK_OK(weft_lock_release(&l));
  CHECK_RC(weft_task_await(ta, NULL), WEFT_ECANCELED);
  CHECK_RC(a.rc, WEFT_ECANCELED);
  weft_task_unref(ta);
  /* Behind a cancelled waiter, the next one gets the notification. */
  ta = cc_spawn_waiting(&a);
  tb = cc_spawn_waiting(&b);
  CHECK_EQ(weft_task_cancel(ta), 1);
  CHECK_OK(weft_lock_acquire(&l));
  CHECK_EQ(weft_cond_notify(&c, 1), 1);
  CHECK_OK(weft_lock_release(&l));
  CHECK_RC(weft_task_await(ta, NULL), WEFT_ECANCELED);
  CHECK_RC(a.rc, WEFT_ECANCELED);
  for (int i = 0; i < 100000 && !atomic_load(&b.done); i++)
    CHECK_OK(weft_yield());
  CHECK(atomic_load(&b.done));
  if (!atomic_load(&b.done)) { /* the notification was lost: end the test */
    CHECK_OK(weft_lock_acquire(&l));
    weft_cond_notify_all(&c);
    CHECK_OK(weft_lock_release(&l));
  }
  CHECK_OK(weft_task_await(tb, NULL));
  CHECK_RC(b.rc, 0);
  weft_task_unref(ta);
  weft_task_unref(tb);
  CHECK_OK(weft_cond_destroy(&c));
  CHECK_OK(weft_lock_destroy(&l));
  return NULL;
}

static void test_cancelled_waiter_not_notified(void **state) {
  (void)state;
  run_in_weft_deterministic(cancelled_waiter_main, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_outside_and_errors),
      cmocka_unit_test(test_without_lock),
      cmocka_unit_test(test_notify_fifo),
      cmocka_unit_test(test_wait_for_buffer),
      cmocka_unit_test(test_cancel_reacquires),
      cmocka_unit_test(test_cancel_races_notify),
      cmocka_unit_test(test_cancelled_waiter_not_notified),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
