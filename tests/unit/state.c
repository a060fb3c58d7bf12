/*
 * unit_state: the task state word of src/task_state.h, white-box.
 *
 * The single-threaded tests walk every transition of the state machine
 * (docs/design.md §2.2). The concurrent tests model the "one runner"
 * invariant: wakers race on one word while an owner thread plays the worker
 * (run, switch out, park, re-queue on NOTIFIED), and an atomic counter of
 * pending enqueues must never exceed one; ThreadSanitizer (TSan build) checks
 * that the park/wake pair orders the task's saved context before the
 * enqueuer's read of it.
 */
#include "harness.h"

#include "task_state.h"

#include <sched.h>

#define S WEFT__ST_SCHEDULED
#define N WEFT__ST_NOTIFIED
#define C WEFT__ST_CANCEL
#define DONE WEFT__ST_COMPLETE

static unsigned load(atomic_uint *st) { return atomic_load(st); }

/* ---- transitions ------------------------------------------------------- */

static void test_wake_parked(void **state) {
  atomic_uint st;

  (void)state;
  atomic_init(&st, 0);
  assert_int_equal(weft__state_wake(&st), 1);
  assert_int_equal(load(&st), S);
}

static void test_wake_scheduled(void **state) {
  atomic_uint st;

  (void)state;
  atomic_init(&st, S);
  assert_int_equal(weft__state_wake(&st), 0);
  assert_int_equal(load(&st), S | N);
  /* A second wake changes nothing. */
  assert_int_equal(weft__state_wake(&st), 0);
  assert_int_equal(load(&st), S | N);
}

static void test_park_notified(void **state) {
  atomic_uint st;

  (void)state;
  atomic_init(&st, S | N);
  /* A wake arrived while running: re-queue, stay SCHEDULED. */
  assert_int_equal(weft__state_park(&st), 0);
  assert_int_equal(load(&st), S);
  /* The next park really parks. */
  assert_int_equal(weft__state_park(&st), 1);
  assert_int_equal(load(&st), 0);
}

static void test_park_plain(void **state) {
  atomic_uint st;

  (void)state;
  atomic_init(&st, S);
  assert_int_equal(weft__state_park(&st), 1);
  assert_int_equal(load(&st), 0);
  /* Parked, woken, run, parked again. */
  assert_int_equal(weft__state_wake(&st), 1);
  assert_int_equal(weft__state_park(&st), 1);
  assert_int_equal(load(&st), 0);
}

static void test_complete_ignores_wakes(void **state) {
  atomic_uint st;

  (void)state;
  /* COMPLETE is set on the running (SCHEDULED) task... */
  atomic_init(&st, S | DONE);
  assert_int_equal(weft__state_wake(&st), 0);
  assert_int_equal(load(&st), S | DONE);
  /* ...and whatever the other bits, a wake never enqueues it again. */
  atomic_store(&st, DONE);
  assert_int_equal(weft__state_wake(&st), 0);
  assert_int_equal(load(&st), DONE);
  atomic_store(&st, DONE | C);
  assert_int_equal(weft__state_wake(&st), 0);
  assert_int_equal(load(&st), DONE | C);
}

static void test_cancel(void **state) {
  atomic_uint st;

  (void)state;
  atomic_init(&st, S);
  assert_int_equal(weft__state_take_cancel(&st), 0);
  assert_int_equal(weft__state_cancel(&st), 1);
  assert_int_equal(load(&st), S | C);
  /* Requests do not stack in the word (the count lives in `cancels`). */
  assert_int_equal(weft__state_cancel(&st), 1);
  assert_int_equal(load(&st), S | C);
  assert_int_equal(weft__state_take_cancel(&st), 1);
  assert_int_equal(load(&st), S);
  assert_int_equal(weft__state_take_cancel(&st), 0);
  assert_int_equal(load(&st), S);
}

static void test_cancel_survives_park_and_wake(void **state) {
  atomic_uint st;

  (void)state;
  atomic_init(&st, S);
  assert_int_equal(weft__state_park(&st), 1);
  /* Cancel a parked task: the bit is set, the canceller then wakes it. */
  assert_int_equal(weft__state_cancel(&st), 1);
  assert_int_equal(load(&st), C);
  assert_int_equal(weft__state_wake(&st), 1);
  assert_int_equal(load(&st), S | C);
  /* Cancel while running sets NOTIFIED through the wake, and both survive
   * a park that consumes NOTIFIED. */
  assert_int_equal(weft__state_wake(&st), 0);
  assert_int_equal(load(&st), S | N | C);
  assert_int_equal(weft__state_park(&st), 0);
  assert_int_equal(load(&st), S | C);
  assert_int_equal(weft__state_take_cancel(&st), 1);
  assert_int_equal(weft__state_park(&st), 1);
  assert_int_equal(load(&st), 0);
}

static void test_cancel_complete(void **state) {
  atomic_uint st;

  (void)state;
  atomic_init(&st, S | DONE);
  /* Too late: the caller learns the task already completed. */
  assert_int_equal(weft__state_cancel(&st), 0);
  assert_true(load(&st) & DONE);
  assert_int_equal(weft__state_wake(&st), 0);
}

/* ---- concurrent wakes against park ------------------------------------ */

#define WAKE_RUNS HARNESS_SIZE(300000, 200000, 200000)
#define WAKERS 3

typedef struct wake_race {
  atomic_uint st;        /* the state word */
  atomic_int pending;    /* enqueues not yet consumed by the owner: 0 or 1 */
  atomic_int stop;       /* set by the owner after WAKE_RUNS runs */
  atomic_long enqueues;  /* wakes that returned 1 */
  atomic_long requeues;  /* parks that returned 0 (owner re-queued) */
  atomic_long wakes;     /* wake calls in all */
  long consumed;         /* owner only: enqueues consumed */
  long saved_ctx;        /* plain: written by the running task before it
                            parks, read by the waker that enqueues it */
} wake_race_t;

static wake_race_t wr;

static void enqueue(void) {
  int old = atomic_fetch_add(&wr.pending, 1);

  /* Two enqueues of one task: two runners. */
  CHECK_EQ(old, 0);
}

static void *waker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  long last_ctx = -1;

  while (!atomic_load(&wr.stop)) {
    atomic_fetch_add(&wr.wakes, 1);
    if (weft__state_wake(&wr.st)) {
      /* We own the enqueue: the task's context must be saved and visible.
       * The owner writes saved_ctx again only after consuming the enqueue
       * below, so this plain read races with nothing. */
      long ctx = wr.saved_ctx;
      CHECK(ctx > last_ctx);
      last_ctx = ctx;
      CHECK(atomic_load(&wr.st) & S);
      atomic_fetch_add(&wr.enqueues, 1);
      enqueue();
    }
    if (harness_rand_range(&rng, 0, 7) == 0)
      sched_yield();
  }
  return NULL;
}

static void *owner(void *arg) {
  long run;

  (void)arg;
  /* The task starts SCHEDULED and running (as after spawn). */
  for (run = 0; run < WAKE_RUNS; run++) {
    /* Running: the state stays SCHEDULED whatever the wakers do. */
    CHECK(atomic_load(&wr.st) & S);
    wr.saved_ctx = run;
    if (run == WAKE_RUNS - 1)
      break;
    /* Switched out to wait: park unless a wake arrived meanwhile. */
    if (!weft__state_park(&wr.st)) {
      atomic_fetch_add(&wr.requeues, 1);
      enqueue();
    }
    /* Wait for the one enqueue and dequeue it. */
    while (atomic_load(&wr.pending) == 0)
      sched_yield();
    CHECK_EQ(atomic_exchange(&wr.pending, 0), 1);
    wr.consumed++;
  }
  atomic_store(&wr.stop, 1);
  return NULL;
}

static void test_concurrent_wake_park(void **state) {
  pthread_t o, w[WAKERS];
  unsigned k;

  (void)state;
  harness_reset();
  atomic_init(&wr.st, S);
  atomic_init(&wr.pending, 0);
  atomic_init(&wr.stop, 0);
  atomic_init(&wr.enqueues, 0);
  atomic_init(&wr.requeues, 0);
  atomic_init(&wr.wakes, 0);
  wr.consumed = 0;
  wr.saved_ctx = -1;
  for (k = 0; k < WAKERS; k++)
    assert_int_equal(
        pthread_create(&w[k], NULL, waker, (void *)(uintptr_t)(k + 1)), 0);
  assert_int_equal(pthread_create(&o, NULL, owner, NULL), 0);
  assert_int_equal(pthread_join(o, NULL), 0);
  for (k = 0; k < WAKERS; k++)
    assert_int_equal(pthread_join(w[k], NULL), 0);
  harness_assert_clean();

  /* The task ended running: SCHEDULED, nothing pending, and every enqueue
   * (by a waker or by the owner's re-queue) was consumed exactly once. */
  assert_true(atomic_load(&wr.st) & S);
  assert_int_equal(atomic_load(&wr.pending), 0);
  assert_int_equal(atomic_load(&wr.enqueues) + atomic_load(&wr.requeues),
                   wr.consumed);
  assert_int_equal(wr.consumed, WAKE_RUNS - 1);
  print_message("unit_state: %ld runs, %ld wakes, %ld enqueued by a waker, "
                "%ld re-queued after NOTIFIED\n",
                (long)WAKE_RUNS, atomic_load(&wr.wakes),
                atomic_load(&wr.enqueues), atomic_load(&wr.requeues));
}

/* ---- concurrent cancel against take_cancel ---------------------------- */

#define CANCELS HARNESS_SIZE(200000, 100000, 100000)
#define CANCELLERS 2

static atomic_uint cancel_st;
static atomic_int cancellers_done;

static void *canceller(void *arg) {
  long i;

  (void)arg;
  for (i = 0; i < CANCELS; i++)
    CHECK_EQ(weft__state_cancel(&cancel_st), 1);
  atomic_fetch_add(&cancellers_done, 1);
  return NULL;
}

static void test_concurrent_cancel(void **state) {
  pthread_t c[CANCELLERS];
  long delivered = 0;
  unsigned k;

  (void)state;
  harness_reset();
  atomic_init(&cancel_st, S);
  atomic_init(&cancellers_done, 0);
  for (k = 0; k < CANCELLERS; k++)
    assert_int_equal(pthread_create(&c[k], NULL, canceller, NULL), 0);
  while (atomic_load(&cancellers_done) < CANCELLERS) {
    delivered += weft__state_take_cancel(&cancel_st);
    /* The other bits are never disturbed. */
    CHECK_EQ(atomic_load(&cancel_st) & ~(unsigned)C, S);
  }
  for (k = 0; k < CANCELLERS; k++)
    assert_int_equal(pthread_join(c[k], NULL), 0);
  harness_assert_clean();
  /* The last request made is delivered: one is still pending or was
   * taken; none is delivered twice. */
  delivered += weft__state_take_cancel(&cancel_st);
  assert_true(delivered >= 1);
  assert_true(delivered <= (long)CANCELLERS * CANCELS);
  assert_int_equal(weft__state_take_cancel(&cancel_st), 0);
  assert_int_equal(atomic_load(&cancel_st), S);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wake_parked),
      cmocka_unit_test(test_wake_scheduled),
      cmocka_unit_test(test_park_notified),
      cmocka_unit_test(test_park_plain),
      cmocka_unit_test(test_complete_ignores_wakes),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_cancel_survives_park_and_wake),
      cmocka_unit_test(test_cancel_complete),
      cmocka_unit_test(test_concurrent_wake_park),
      cmocka_unit_test(test_concurrent_cancel),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
