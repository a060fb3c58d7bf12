/*
 * Timeout scopes (weft/timeout.h), asyncio.timeout()/timeout_at() semantics:
 * expiry at every kind of suspension point (sleep, await, gather, queue,
 * lock, event, stream read, yield after computing past the deadline),
 * nesting three deep (only the scope that expired reports WEFT_ETIMEDOUT;
 * several expiring together: the outermost), a body that handles the
 * cancellation, a cancellation from outside that must survive the scope,
 * reschedule/when/expired, misuse, and many scoped tasks on all workers.
 */
#include "harness.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#define MS 1000000ull

static uint64_t now_ms(void) { return weft_time_ms(); }

/* ---- basics ------------------------------------------------------------ */

static void *basics_main(void *arg) {
  weft_timeout_t s;
  (void)arg;

  /* Expires during a sleep: the sleep is cut short. */
  uint64_t t0 = now_ms();
  CHECK_OK(weft_timeout_enter(&s, 50));
  CHECK(weft_timeout_when(&s) >= t0 + 50 && weft_timeout_when(&s) <= t0 + 51);
  CHECK_EQ(weft_timeout_expired(&s), 0);
  int rc = weft_sleep(5000);
  CHECK_RC(rc, WEFT_ECANCELED);
  CHECK_EQ(weft_timeout_expired(&s), 1);
  CHECK_EQ(weft_task_cancelling(), 1);
  CHECK_RC(weft_timeout_exit(&s, rc), WEFT_ETIMEDOUT);
  uint64_t dt = now_ms() - t0;
  CHECK(dt >= 50 && dt < 50 + HARNESS_PROMPT_MS);
  /* The scope's cancellation is withdrawn: nothing is pending. */
  CHECK_EQ(weft_task_cancelling(), 0);
  CHECK_OK(weft_sleep(1));
  CHECK_EQ(weft_timeout_expired(&s), 1); /* stays readable after exit */

  /* Does not expire: the body's result passes through. */
  CHECK_OK(weft_timeout_enter(&s, 5000));
  CHECK_OK(weft_sleep(5));
  CHECK_RC(weft_timeout_exit(&s, WEFT_EIO), WEFT_EIO);
  CHECK_EQ(weft_timeout_expired(&s), 0);

  /* No deadline, then one set by reschedule. */
  CHECK_OK(weft_timeout_enter(&s, WEFT_NO_TIMEOUT));
  CHECK(weft_timeout_when(&s) == WEFT_NO_TIMEOUT);
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_timeout_reschedule(&s, now_ms() + 20));
  CHECK_RC(weft_sleep(5000), WEFT_ECANCELED);
  CHECK_RC(weft_timeout_exit(&s, WEFT_ECANCELED), WEFT_ETIMEDOUT);

  /* Rescheduled later before it expires: no expiry. */
  CHECK_OK(weft_timeout_enter(&s, 20));
  CHECK_OK(weft_timeout_reschedule(&s, now_ms() + 5000));
  CHECK_OK(weft_sleep(60));
  CHECK_OK(weft_timeout_reschedule(&s, WEFT_NO_TIMEOUT));
  CHECK(weft_timeout_when(&s) == WEFT_NO_TIMEOUT);
  CHECK_OK(weft_timeout_exit(&s, 0));
  /* Rescheduling an exited or expired scope is an error. */
  CHECK_RC(weft_timeout_reschedule(&s, 10), WEFT_ESTATE);

  /* timeout_at in the past: the next suspension point is cancelled. */
  CHECK_OK(weft_timeout_enter_at(&s, now_ms() > 10 ? now_ms() - 10 : 0));
  CHECK_RC(weft_sleep(1000), WEFT_ECANCELED);
  CHECK_RC(weft_timeout_reschedule(&s, now_ms() + 100), WEFT_ESTATE);
  CHECK_RC(weft_timeout_exit(&s, WEFT_ECANCELED), WEFT_ETIMEDOUT);

  /* Computing past the deadline: noticed at the next suspension point,
   * here a yield. */
  CHECK_OK(weft_timeout_enter(&s, 10));
  harness_spin_us(30000);
  CHECK_RC(weft_yield(), WEFT_ECANCELED);
  CHECK_RC(weft_timeout_exit(&s, WEFT_ECANCELED), WEFT_ETIMEDOUT);

  /* A body that handles the cancellation and returns normally: the scope
   * still withdraws its request, and nothing stays pending. */
  CHECK_OK(weft_timeout_enter(&s, 10));
  CHECK_RC(weft_sleep(1000), WEFT_ECANCELED);
  CHECK_OK(weft_timeout_exit(&s, 0));
  CHECK_EQ(weft_task_cancelling(), 0);
  CHECK_OK(weft_sleep(1));

  /* Misuse. */
  CHECK_RC(weft_timeout_enter(NULL, 10), WEFT_EINVAL);
  CHECK_RC(weft_timeout_exit(NULL, 0), WEFT_EINVAL);
  CHECK_RC(weft_timeout_reschedule(NULL, 0), WEFT_EINVAL);
  weft_timeout_t a, b;
  CHECK_OK(weft_timeout_enter(&a, 5000));
  CHECK_OK(weft_timeout_enter(&b, 5000));
  CHECK_RC(weft_timeout_exit(&a, 0), WEFT_ESTATE); /* not the innermost */
  CHECK_OK(weft_timeout_exit(&b, 0));
  CHECK_RC(weft_timeout_exit(&b, 0), WEFT_ESTATE); /* exited already */
  CHECK_OK(weft_timeout_exit(&a, 0));
  return NULL;
}

static void test_basics(void **state) {
  (void)state;
  run_in_weft(basics_main, NULL, 1);
  run_in_weft(basics_main, NULL, 2);
}

/* ---- entering a scope twice ---------------------------------------------- */

/* Before the fix a second enter linked the scope to itself and the next
 * walk of the chain never ended: this watchdog turns that hang into a
 * failure well inside CTest's timeout. */
static void on_watchdog(int sig) {
  static const char msg[] = "timeout.c: watchdog: the test hung\n";
  (void)sig;
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  _exit(1);
}

static void *enter_twice_main(void *arg) {
  weft_timeout_t a, b;
  (void)arg;

  /* The innermost scope entered again: refused, nothing changed. */
  CHECK_OK(weft_timeout_enter(&a, 5000));
  uint64_t when = weft_timeout_when(&a);
  CHECK_RC(weft_timeout_enter(&a, 10), WEFT_EBUSY);
  CHECK_RC(weft_timeout_enter_at(&a, 0), WEFT_EBUSY);
  CHECK(weft_timeout_when(&a) == when);
  CHECK_OK(weft_sleep(20)); /* the refused 10 ms deadline did not apply */
  CHECK_EQ(weft_timeout_expired(&a), 0);

  /* An outer scope entered again from inside an inner one. */
  CHECK_OK(weft_timeout_enter(&b, 5000));
  CHECK_RC(weft_timeout_enter(&a, 10), WEFT_EBUSY);
  CHECK_RC(weft_timeout_enter(&b, 10), WEFT_EBUSY);
  CHECK_RC(weft_timeout_exit(&a, 0), WEFT_ESTATE); /* b is innermost */
  CHECK_OK(weft_timeout_exit(&b, 0));
  CHECK_OK(weft_timeout_exit(&a, 0));
  CHECK_EQ(weft_task_cancelling(), 0);

  /* Expired but not exited: still entered. */
  CHECK_OK(weft_timeout_enter(&a, 10));
  CHECK_RC(weft_sleep(5000), WEFT_ECANCELED);
  CHECK_EQ(weft_timeout_expired(&a), 1);
  CHECK_RC(weft_timeout_enter(&a, 5000), WEFT_EBUSY);
  CHECK_EQ(weft_timeout_expired(&a), 1);
  CHECK_RC(weft_timeout_exit(&a, WEFT_ECANCELED), WEFT_ETIMEDOUT);
  CHECK_EQ(weft_task_cancelling(), 0);

  /* Exited: the memory may hold a new scope (timeout.h), which works. */
  CHECK_OK(weft_timeout_enter(&a, 10));
  CHECK_EQ(weft_timeout_expired(&a), 0);
  CHECK_RC(weft_sleep(5000), WEFT_ECANCELED);
  CHECK_RC(weft_timeout_exit(&a, WEFT_ECANCELED), WEFT_ETIMEDOUT);
  CHECK_OK(weft_sleep(1));
  return NULL;
}

static void test_enter_twice(void **state) {
  (void)state;
  signal(SIGALRM, on_watchdog);
  alarm(60);
  run_in_weft(enter_twice_main, NULL, 1);
  run_in_weft(enter_twice_main, NULL, 2);
  alarm(0);
}

/* ---- nesting ------------------------------------------------------------ */

static void *nested_main(void *arg) {
  weft_timeout_t outer, middle, inner;
  (void)arg;

  /* Only the middle one expires: it alone reports the timeout; the outer
   * body goes on normally. */
  CHECK_OK(weft_timeout_enter(&outer, 5000));
  CHECK_OK(weft_timeout_enter(&middle, 40));
  CHECK_OK(weft_timeout_enter(&inner, 5000));
  int rc = weft_sleep(5000);
  CHECK_RC(rc, WEFT_ECANCELED);
  CHECK_EQ(weft_timeout_expired(&inner), 0);
  CHECK_EQ(weft_timeout_expired(&middle), 1);
  rc = weft_timeout_exit(&inner, rc);
  CHECK_RC(rc, WEFT_ECANCELED); /* passes the cancellation on */
  rc = weft_timeout_exit(&middle, rc);
  CHECK_RC(rc, WEFT_ETIMEDOUT);
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_timeout_exit(&outer, 0));
  CHECK_EQ(weft_timeout_expired(&outer), 0);

  /* Only the innermost expires. */
  CHECK_OK(weft_timeout_enter(&outer, 5000));
  CHECK_OK(weft_timeout_enter(&middle, 5000));
  CHECK_OK(weft_timeout_enter(&inner, 20));
  rc = weft_timeout_exit(&inner, weft_sleep(5000));
  CHECK_RC(rc, WEFT_ETIMEDOUT);
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_timeout_exit(&middle, 0));
  CHECK_OK(weft_timeout_exit(&outer, 0));

  /* All three expire together (one absolute deadline): the outermost
   * reports the timeout, the inner ones pass the cancellation on. */
  uint64_t when = now_ms() + 30;
  CHECK_OK(weft_timeout_enter_at(&outer, when));
  CHECK_OK(weft_timeout_enter_at(&middle, when));
  CHECK_OK(weft_timeout_enter_at(&inner, when));
  rc = weft_sleep(5000);
  CHECK_RC(rc, WEFT_ECANCELED);
  CHECK_EQ(weft_task_cancelling(), 3);
  rc = weft_timeout_exit(&inner, rc);
  CHECK_RC(rc, WEFT_ECANCELED);
  rc = weft_timeout_exit(&middle, rc);
  CHECK_RC(rc, WEFT_ECANCELED);
  rc = weft_timeout_exit(&outer, rc);
  CHECK_RC(rc, WEFT_ETIMEDOUT);
  CHECK_EQ(weft_task_cancelling(), 0);

  /* Outer expires first while the inner has a later deadline: the inner
   * scope did not expire and passes the cancellation to the outer. */
  CHECK_OK(weft_timeout_enter(&outer, 20));
  CHECK_OK(weft_timeout_enter(&inner, 5000));
  rc = weft_timeout_exit(&inner, weft_sleep(5000));
  CHECK_RC(rc, WEFT_ECANCELED);
  CHECK_RC(weft_timeout_exit(&outer, rc), WEFT_ETIMEDOUT);
  return NULL;
}

static void test_nested(void **state) {
  (void)state;
  run_in_weft(nested_main, NULL, 2);
}

/* ---- a cancellation from outside survives the scope ------------------------ */

typedef struct outside {
  atomic_int in_scope;
  atomic_int computing; /* the scope expired; the child computes */
  atomic_int exit_rc;
  atomic_int after;
} outside_t;

static void *outside_child(void *arg) {
  outside_t *o = arg;
  weft_timeout_t s;
  CHECK_OK(weft_timeout_enter(&s, 30));
  atomic_store(&o->in_scope, 1);
  /* The scope expires during this sleep (30 ms)... */
  int rc = weft_sleep(5000);
  CHECK_RC(rc, WEFT_ECANCELED);
  CHECK_EQ(weft_timeout_expired(&s), 1);
  /* ...and the parent cancels us while we compute. */
  atomic_store(&o->computing, 1);
  double deadline = harness_now_ms() + HARNESS_WAIT_MS;
  while (weft_task_cancelling() < 2 && harness_now_ms() < deadline)
    harness_spin_us(1000);
  CHECK_EQ(weft_task_cancelling(), 2);
  atomic_store(&o->exit_rc, weft_timeout_exit(&s, rc));
  /* The outside request is still counted. */
  atomic_store(&o->after, weft_task_cancelling());
  return NULL;
}

/* The child computes without suspending while it waits for the second
 * cancellation, so it runs pinned to worker 1 and the driver to worker 0. */
static void *outside_driver(void *arg) {
  outside_t o;
  weft_task_t *t;
  (void)arg;
  memset(&o, 0, sizeof o);
  CHECK_OK(harness_spawn_pinned(outside_child, &o, 1, &t));
  /* Cancel it once its scope has expired (at once if that never comes). */
  HARNESS_WAIT(atomic_load(&o.computing));
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  CHECK_RC(atomic_load(&o.exit_rc), WEFT_ECANCELED);
  CHECK_EQ(atomic_load(&o.after), 1);
  weft_task_unref(t);
  return NULL;
}

static void *outside_main(void *arg) {
  harness_run_on_worker0(outside_driver, arg);
  return NULL;
}

static void test_outside_cancel(void **state) {
  (void)state;
  run_in_weft(outside_main, NULL, 2);
}

/* ---- every kind of suspension point -------------------------------------- */

static void *forever(void *arg) {
  (void)arg;
  weft_sleep(60000);
  return NULL;
}

static void echo_handler(weft_stream_t *s, void *arg) {
  char buf[256];
  int n;
  (void)arg;
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0)
    if (weft_stream_write(s, buf, (size_t)n) != 0)
      break;
}

#define EXPECT_TIMEOUT(stmt)                                                   \
  do {                                                                         \
    weft_timeout_t s_;                                                         \
    CHECK_OK(weft_timeout_enter(&s_, 20));                                     \
    int rc_ = (stmt);                                                          \
    CHECK_RC(weft_timeout_exit(&s_, rc_), WEFT_ETIMEDOUT);                     \
  } while (0)

static void *points_main(void *arg) {
  (void)arg;
  weft_task_t *t[2];
  void *item;

  /* await and gather: the awaited tasks are cancelled with the caller. */
  CHECK_OK(weft_spawn(forever, NULL, &t[0]));
  EXPECT_TIMEOUT(weft_task_await(t[0], NULL));
  CHECK_EQ(weft_task_done(t[0]), 1);
  weft_task_unref(t[0]);
  CHECK_OK(weft_spawn(forever, NULL, &t[0]));
  CHECK_OK(weft_spawn(forever, NULL, &t[1]));
  EXPECT_TIMEOUT(weft_gather(t, 2, NULL));
  CHECK_EQ(weft_task_done(t[0]) && weft_task_done(t[1]), 1);
  weft_task_unref(t[0]);
  weft_task_unref(t[1]);

  /* wait_for inside a scope that expires first. */
  CHECK_OK(weft_spawn(forever, NULL, &t[0]));
  EXPECT_TIMEOUT(weft_task_wait_for(t[0], 5000, NULL));
  weft_task_unref(t[0]);

  /* Queue get on an empty queue, put on a full one. */
  weft_queue_t *q;
  CHECK_OK(weft_queue_new(1, &q));
  EXPECT_TIMEOUT(weft_queue_get(q, &item));
  CHECK_OK(weft_queue_put(q, NULL));
  EXPECT_TIMEOUT(weft_queue_put(q, NULL));
  CHECK_EQ(weft_queue_size(q), 1);
  CHECK_OK(weft_queue_free(q));

  /* An event never set, a semaphore at 0 (a held lock: test_lock). */
  weft_event_t ev = WEFT_EVENT_INITIALIZER;
  weft_semaphore_t sem = WEFT_SEMAPHORE_INITIALIZER(0);
  EXPECT_TIMEOUT(weft_event_wait(&ev));
  EXPECT_TIMEOUT(weft_semaphore_acquire(&sem));
  CHECK_OK(weft_event_destroy(&ev));
  CHECK_OK(weft_semaphore_destroy(&sem));

  /* Stream read with nothing to read; the stream stays usable. */
  weft_server_t *srv;
  weft_stream_t *c;
  char buf[8];
  CHECK_OK(weft_start_server(echo_handler, NULL, "127.0.0.1", 0, NULL, &srv));
  CHECK_OK(weft_open_connection("127.0.0.1", weft_server_port(srv), NULL, &c));
  EXPECT_TIMEOUT(weft_stream_read(c, buf, sizeof buf));
  CHECK_OK(weft_stream_write(c, "ok", 2));
  size_t got = 0;
  CHECK_OK(weft_stream_readexactly(c, buf, 2, &got));
  CHECK(memcmp(buf, "ok", 2) == 0);
  CHECK_OK(weft_stream_close(c));
  CHECK_OK(weft_stream_wait_closed(c));
  CHECK_OK(weft_stream_free(c));
  CHECK_OK(weft_server_close(srv));
  CHECK_OK(weft_server_wait_closed(srv));
  CHECK_OK(weft_server_free(srv));
  return NULL;
}

static void test_suspension_points(void **state) {
  (void)state;
  run_in_weft(points_main, NULL, 1);
  run_in_weft(points_main, NULL, 2);
}

/* A lock held by another task, separately: the holder must be a task. */
typedef struct held {
  weft_lock_t lock;
  atomic_int holding;
  weft_event_t release;
} held_t;

static void *holder(void *arg) {
  held_t *h = arg;
  CHECK_OK(weft_lock_acquire(&h->lock));
  atomic_store(&h->holding, 1);
  CHECK_OK(weft_event_wait(&h->release));
  CHECK_OK(weft_lock_release(&h->lock));
  return NULL;
}

static void *lock_main(void *arg) {
  held_t h = {WEFT_LOCK_INITIALIZER, 0, WEFT_EVENT_INITIALIZER};
  weft_task_t *t;
  (void)arg;
  CHECK_OK(weft_spawn(holder, &h, &t));
  HARNESS_WAIT(atomic_load(&h.holding));
  EXPECT_TIMEOUT(weft_lock_acquire(&h.lock));
  CHECK_OK(weft_event_set(&h.release));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  /* The timed-out waiter left the queue: the lock is free again. */
  CHECK_OK(weft_lock_try_acquire(&h.lock));
  CHECK_OK(weft_lock_release(&h.lock));
  CHECK_OK(weft_lock_destroy(&h.lock));
  CHECK_OK(weft_event_destroy(&h.release));
  return NULL;
}

static void test_lock(void **state) {
  (void)state;
  run_in_weft(lock_main, NULL, 2);
}

/* ---- many scoped tasks on all workers --------------------------------------- */

#define N_SCOPED HARNESS_SIZE(400, 60, 200)

typedef struct scoped {
  atomic_int timed_out;
  atomic_int completed;
} scoped_t;

static scoped_t scoped;

static void *scoped_task(void *arg) {
  uintptr_t i = (uintptr_t)arg;
  weft_timeout_t s;
  /* Half time out (20 ms scope, 60 s sleep), half do not (60 s scope, far
   * beyond any stall of a loaded machine; sleeps of a few ms with yields in
   * between). */
  int late = i % 2 == 0;
  CHECK_OK(weft_timeout_enter(&s, late ? 20 : 60000));
  int rc = 0;
  for (int k = 0; k < 3 && rc == 0; k++) {
    rc = weft_sleep(late ? 60000 : 1 + i % 3);
    if (rc == 0)
      rc = weft_yield();
  }
  rc = weft_timeout_exit(&s, rc);
  if (late) {
    CHECK_RC(rc, WEFT_ETIMEDOUT);
    atomic_fetch_add(&scoped.timed_out, 1);
  } else {
    CHECK_OK(rc);
    atomic_fetch_add(&scoped.completed, 1);
  }
  CHECK_EQ(weft_task_cancelling(), 0);
  return NULL;
}

static void *many_main(void *arg) {
  weft_task_t **t = calloc(N_SCOPED, sizeof(*t));
  (void)arg;
  CHECK(t != NULL);
  atomic_store(&scoped.timed_out, 0);
  atomic_store(&scoped.completed, 0);
  for (uintptr_t i = 0; i < N_SCOPED; i++)
    CHECK_OK(weft_spawn(scoped_task, (void *)i, &t[i]));
  CHECK_OK(weft_gather(t, N_SCOPED, NULL));
  for (size_t i = 0; i < N_SCOPED; i++)
    weft_task_unref(t[i]);
  free(t);
  CHECK_EQ(atomic_load(&scoped.timed_out), N_SCOPED / 2);
  CHECK_EQ(atomic_load(&scoped.completed), N_SCOPED / 2);
  return NULL;
}

static void test_many(void **state) {
  (void)state;
  run_in_weft(many_main, NULL, 2);
  run_in_weft(many_main, NULL, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basics),
      cmocka_unit_test(test_enter_twice),
      cmocka_unit_test(test_nested),
      cmocka_unit_test(test_outside_cancel),
      cmocka_unit_test(test_suspension_points),
      cmocka_unit_test(test_lock),
      cmocka_unit_test(test_many),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
