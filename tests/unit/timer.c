/*
 * White-box tests of the per-worker timing wheel (src/time.c).
 *
 * One worker record with a real libuv loop and a minimal runtime stand in
 * for a running runtime. Timers are added for parked task records; when one
 * fires, the wheel wakes its task, and as the test thread is no worker the
 * task lands in the runtime's inject queue, in firing order. So the inject
 * queue tells the order the wheel fired in, and each task's index tells which
 * timer it was.
 *
 * Checked: timers fire in tick order and FIFO within a tick; never before
 * their deadline; removed timers never fire; deadlines already past fire at
 * the next expiry; timers past the wheel's window (> 1024 ms) wait in the far
 * list and still fire on time, alone (the wheel jumps) and beside near ones.
 */
#include "core.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#define MS 1000000ull

typedef struct fixture {
  weft_runtime_t rt;
  weft__worker_t w;
  size_t n;
  weft_task_t *tasks;   /* n parked task records; index = position */
  weft__timer_t *timers;
  uint64_t *fired_at;   /* clock read right after the expiry that fired it */
  size_t *order;        /* indices in firing order */
  size_t nfired;
} fixture_t;

static fixture_t *fixture_new(size_t n) {
  fixture_t *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  f->n = n;
  f->rt.nworkers = 1;
  assert_int_equal(weft__inject_init(&f->rt.inject), 0);
  assert_int_equal(weft__idle_init(&f->rt.idle, 1), 0);
  f->w.rt = &f->rt;
  assert_int_equal(uv_loop_init(&f->w.loop), 0);
  weft__timers_init(&f->w);
  f->tasks = calloc(n, sizeof(*f->tasks));
  f->timers = calloc(n, sizeof(*f->timers));
  f->fired_at = calloc(n, sizeof(*f->fired_at));
  f->order = calloc(n, sizeof(*f->order));
  assert_true(f->tasks && f->timers && f->fired_at && f->order);
  for (size_t i = 0; i < n; i++) {
    atomic_init(&f->tasks[i].state, 0); /* parked: a wake enqueues it */
    f->tasks[i].rt = &f->rt;
  }
  return f;
}

static void fixture_free(fixture_t *f) {
  uv_close((uv_handle_t *)&f->w.timer, NULL);
  uv_run(&f->w.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->w.loop), 0);
  weft__timers_destroy(&f->w);
  weft__idle_destroy(&f->rt.idle);
  weft__inject_destroy(&f->rt.inject);
  free(f->tasks);
  free(f->timers);
  free(f->fired_at);
  free(f->order);
  free(f);
}

static void add(fixture_t *f, size_t i, uint64_t deadline) {
  weft__timer_init(&f->timers[i], deadline, &f->tasks[i]);
  assert_int_equal(weft__timer_add_checked(&f->w, &f->timers[i]), 0);
}

/* Collect what the last expiry woke. */
static void collect(fixture_t *f) {
  uint64_t now = weft__now_ns();
  size_t k;
  weft_task_t *t = weft__inject_pop_batch(&f->rt.inject, f->n, &k);
  while (t) {
    size_t i = (size_t)(t - f->tasks);
    assert_true(i < f->n);
    assert_int_equal(f->timers[i].fired, 1);
    f->fired_at[i] = now;
    f->order[f->nfired++] = i;
    atomic_store(&t->state, 0); /* parked again, for reuse */
    t = t->next;
  }
}

/* Run the loop until `want` timers fired or the wall clock passes limit. */
static void run_until(fixture_t *f, size_t want, uint64_t limit_ms) {
  uint64_t end = weft__now_ns() + limit_ms * MS;
  while (f->nfired < want && weft__now_ns() < end) {
    uv_run(&f->w.loop, UV_RUN_ONCE);
    collect(f);
  }
  assert_int_equal(f->nfired, want);
}

static uint64_t tick(uint64_t deadline) { return (deadline + MS - 1) / MS; }

static void check_order_and_lateness(fixture_t *f, size_t nfired) {
  for (size_t k = 0; k < nfired; k++) {
    size_t i = f->order[k];
    /* Never early. */
    assert_true(f->fired_at[i] >= f->timers[i].deadline);
    if (k > 0) {
      size_t p = f->order[k - 1];
      uint64_t tp = tick(f->timers[p].deadline), ti = tick(f->timers[i].deadline);
      /* Tick order; FIFO (index order, the order they were added) within a
       * tick. */
      assert_true(tp < ti || (tp == ti && p < i));
    }
  }
}

static void test_order_fifo_and_never_early(void **state) {
  (void)state;
  const size_t n = 600;
  fixture_t *f = fixture_new(n);
  uint64_t now = weft__now_ns();
  uint32_t x = 12345;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    /* Three timers share each deadline, so FIFO within a tick shows. */
    uint64_t ms = i % 3 == 0 ? 1 + (x >> 16) % 60 : 0;
    uint64_t d = ms ? now + ms * MS : f->timers[i - 1].deadline;
    add(f, i, d);
  }
  run_until(f, n, 5000);
  check_order_and_lateness(f, n);
  fixture_free(f);
}

static void test_remove(void **state) {
  (void)state;
  const size_t n = 200;
  fixture_t *f = fixture_new(n);
  uint64_t now = weft__now_ns();
  for (size_t i = 0; i < n; i++)
    add(f, i, now + (5 + i % 20) * MS);
  for (size_t i = 0; i < n; i += 2)
    weft__timer_remove(&f->w, &f->timers[i]);
  weft__timer_remove(&f->w, &f->timers[0]); /* twice: a no-op */
  run_until(f, n / 2, 5000);
  for (size_t k = 0; k < f->nfired; k++)
    assert_int_equal(f->order[k] % 2, 1);
  for (size_t i = 0; i < n; i += 2)
    assert_int_equal(f->timers[i].fired, 0);
  /* A fired timer is no longer in the wheel: removing it is a no-op. */
  weft__timer_remove(&f->w, &f->timers[1]);
  assert_int_equal(f->w.wheel_len, 0);
  /* Nothing else fires later. */
  uv_run(&f->w.loop, UV_RUN_NOWAIT);
  collect(f);
  assert_int_equal(f->nfired, n / 2);
  check_order_and_lateness(f, f->nfired);
  fixture_free(f);
}

static void test_past_deadline(void **state) {
  (void)state;
  fixture_t *f = fixture_new(3);
  uint64_t now = weft__now_ns();
  add(f, 0, now - 50 * MS);
  add(f, 1, 0);
  add(f, 2, now);
  run_until(f, 3, 1000);
  /* All due at once: they fire in the order they were added. */
  assert_int_equal(f->order[0], 0);
  assert_int_equal(f->order[1], 1);
  assert_int_equal(f->order[2], 2);
  fixture_free(f);
}

static void test_far_timers(void **state) {
  (void)state;
  fixture_t *f = fixture_new(6);
  uint64_t now = weft__now_ns();
  /* Alone past the window: the wheel is empty and jumps to them. */
  add(f, 0, now + 1300 * MS);
  assert_int_equal(f->timers[0].where, WEFT__TIMER_FAR);
  /* One far timer removed before it is due. */
  add(f, 1, now + 1400 * MS);
  weft__timer_remove(&f->w, &f->timers[1]);
  /* Near and far together; the far ones enter the wheel as it turns. */
  add(f, 2, now + 10 * MS);
  add(f, 3, now + 2100 * MS);
  add(f, 4, now + 1050 * MS);
  add(f, 5, now + 600 * MS);
  assert_int_equal(f->timers[2].where, WEFT__TIMER_WHEEL);
  run_until(f, 5, 6000);
  size_t want[5] = {2, 5, 4, 0, 3};
  for (size_t k = 0; k < 5; k++)
    assert_int_equal(f->order[k], want[k]);
  assert_int_equal(f->timers[1].fired, 0);
  check_order_and_lateness(f, 5);
  for (size_t k = 0; k < 5; k++) {
    size_t i = f->order[k];
    /* On time: within a few ms of the deadline on an idle loop (generous
     * for sanitizers and loaded CI machines). */
    assert_true(f->fired_at[i] - f->timers[i].deadline < 250 * MS);
  }
  assert_int_equal(f->w.far_len, 0);
  assert_int_equal(f->w.wheel_len, 0);
  fixture_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_fifo_and_never_early),
      cmocka_unit_test(test_remove),
      cmocka_unit_test(test_past_deadline),
      cmocka_unit_test(test_far_timers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
