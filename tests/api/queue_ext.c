/*
 * api_queue_ext: the asyncio.Queue extensions of weft_queue: LIFO and
 * priority kinds (order, stable ties, waiting putters), weft_queue_new_ex
 * errors, task_done/join (including cancellation of a joiner), and
 * shutdown (Python 3.13) in both modes with blocked getters, putters and
 * joiners.
 */
#include "harness.h"

#define ITEM(i) ((void *)(uintptr_t)(i))
#define VAL(p) ((uintptr_t)(p))

/* Priority: smaller value first; items are integers, priority = value / 10
 * so that ties exist (and must come out in FIFO order). */
static int by_tens(const void *a, const void *b, void *arg) {
  uintptr_t x = VAL(a) / 10, y = VAL(b) / 10;

  (void)arg;
  return x < y ? -1 : x > y;
}

static int cmp_calls;

static int by_value_counting(const void *a, const void *b, void *arg) {
  (void)arg;
  cmp_calls++;
  return VAL(a) < VAL(b) ? -1 : VAL(a) > VAL(b);
}

static void test_kinds_outside(void **state) {
  weft_queue_opts_t o;
  weft_queue_t *q;
  void *item;
  uintptr_t i;
  static const uintptr_t in[] = {31, 5, 12, 30, 7, 33, 10, 1};
  static const uintptr_t out[] = {5, 7, 1, 12, 10, 31, 30, 33};

  (void)state;
  weft_queue_opts_init(NULL); /* ignored */
  weft_queue_opts_init(&o);
  assert_int_equal(o.kind, WEFT_QUEUE_FIFO);
  assert_int_equal(o.maxsize, 0);
  assert_null(o.cmp);
  assert_int_equal(weft_queue_new_ex(NULL, &q), WEFT_EINVAL);
  assert_int_equal(weft_queue_new_ex(&o, NULL), WEFT_EINVAL);
  o.kind = WEFT_QUEUE_PRIORITY; /* no cmp */
  assert_int_equal(weft_queue_new_ex(&o, &q), WEFT_EINVAL);
  o.kind = (weft_queue_kind_t)7;
  assert_int_equal(weft_queue_new_ex(&o, &q), WEFT_EINVAL);

  /* LIFO. */
  weft_queue_opts_init(&o);
  o.kind = WEFT_QUEUE_LIFO;
  assert_int_equal(weft_queue_new_ex(&o, &q), 0);
  for (i = 1; i <= 100; i++)
    assert_int_equal(weft_queue_try_put(q, ITEM(i)), 0);
  for (i = 100; i >= 1; i--) {
    assert_int_equal(weft_queue_try_get(q, &item), 0);
    assert_int_equal(VAL(item), i);
  }
  assert_int_equal(weft_queue_try_get(q, &item), WEFT_EAGAIN);
  assert_int_equal(weft_queue_free(q), 0);

  /* Priority, bounded, stable among equal priorities. */
  o.kind = WEFT_QUEUE_PRIORITY;
  o.cmp = by_tens;
  o.maxsize = HARNESS_COUNT(in);
  assert_int_equal(weft_queue_new_ex(&o, &q), 0);
  for (i = 0; i < HARNESS_COUNT(in); i++)
    assert_int_equal(weft_queue_try_put(q, ITEM(in[i])), 0);
  assert_int_equal(weft_queue_try_put(q, ITEM(0)), WEFT_EAGAIN);
  for (i = 0; i < HARNESS_COUNT(out); i++) {
    assert_int_equal(weft_queue_try_get(q, &item), 0);
    assert_int_equal(VAL(item), out[i]);
  }
  assert_int_equal(weft_queue_free(q), 0);

  /* A large heap: sorted output, cmp_arg passed through. */
  o.cmp = by_value_counting;
  o.maxsize = 0;
  assert_int_equal(weft_queue_new_ex(&o, &q), 0);
  for (i = 0; i < 5000; i++)
    assert_int_equal(weft_queue_try_put(q, ITEM((i * 7919) % 5000)), 0);
  for (i = 0; i < 5000; i++) {
    assert_int_equal(weft_queue_try_get(q, &item), 0);
    if (VAL(item) != i)
      fail_msg("priority item %zu out of order (%zu)", (size_t)i,
               (size_t)VAL(item));
  }
  assert_true(cmp_calls > 5000);
  /* Items still queued are dropped by free. */
  assert_int_equal(weft_queue_try_put(q, ITEM(1)), 0);
  assert_int_equal(weft_queue_free(q), 0);
}

/* ---- waiting putters with LIFO and priority order ------------------------- */

static void *put_one(void *arg) {
  void **a = arg;

  CHECK_OK(weft_queue_put(a[0], a[1]));
  return NULL;
}

static void *kinds_blocking_main(void *arg) {
  weft_queue_opts_t o;
  weft_queue_t *q;
  weft_task_t *t;
  void *a[2], *item;

  (void)arg;
  /* LIFO of maxsize 2: a blocked putter's item lands on top once a get
   * frees a slot. */
  weft_queue_opts_init(&o);
  o.kind = WEFT_QUEUE_LIFO;
  o.maxsize = 2;
  CHECK_OK(weft_queue_new_ex(&o, &q));
  CHECK_OK(weft_queue_put(q, ITEM(1)));
  CHECK_OK(weft_queue_put(q, ITEM(2)));
  a[0] = q;
  a[1] = ITEM(3);
  CHECK_OK(weft_spawn(put_one, a, &t));
  CHECK_OK(weft_sleep(5));
  CHECK_EQ(weft_task_done(t), 0);
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_EQ(VAL(item), 2);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_EQ(VAL(item), 3);
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_EQ(VAL(item), 1);
  CHECK_OK(weft_queue_free(q));

  /* Priority of maxsize 2 with a blocked putter of the smallest item. */
  o.kind = WEFT_QUEUE_PRIORITY;
  o.cmp = by_tens;
  CHECK_OK(weft_queue_new_ex(&o, &q));
  CHECK_OK(weft_queue_put(q, ITEM(50)));
  CHECK_OK(weft_queue_put(q, ITEM(20)));
  a[0] = q;
  a[1] = ITEM(1);
  CHECK_OK(weft_spawn(put_one, a, &t));
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_EQ(VAL(item), 20);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_EQ(VAL(item), 1);
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_EQ(VAL(item), 50);
  CHECK_OK(weft_queue_free(q));
  return NULL;
}

static void test_kinds_blocking(void **state) {
  (void)state;
  run_in_weft(kinds_blocking_main, NULL, 1);
  run_in_weft(kinds_blocking_main, NULL, 2);
}

/* ---- task_done / join ------------------------------------------------------ */

typedef struct worker_arg {
  weft_queue_t *q;
  atomic_int processed;
} worker_arg_t;

static void *done_worker(void *arg) {
  worker_arg_t *w = arg;
  void *item;

  for (;;) {
    int rc = weft_queue_get(w->q, &item);
    if (rc != 0) {
      CHECK(rc == WEFT_EQUEUE_SHUTDOWN || rc == WEFT_ECANCELED);
      return NULL;
    }
    CHECK_OK(weft_sleep(VAL(item) % 3));
    atomic_fetch_add(&w->processed, 1);
    CHECK_OK(weft_queue_task_done(w->q));
  }
}

static void *join_rc(void *arg) {
  return (void *)(intptr_t)weft_queue_join(arg);
}

static atomic_int joining; /* join_flagged() is about to join */

static void *join_flagged(void *arg) {
  atomic_store(&joining, 1);
  return (void *)(intptr_t)weft_queue_join(arg);
}

/* A joiner counts as a waiter for free(); then it is cancelled. Runs pinned
 * to worker 0 with the joiner pinned there too, so that seeing its flag
 * after a suspension proves that it waits in join (a free while it does not
 * would free the queue under it). */
static void *join_free_busy(void *arg) {
  weft_queue_t *q = arg;
  weft_task_t *j;
  void *r;

  atomic_store(&joining, 0);
  CHECK_OK(harness_spawn_pinned(join_flagged, q, 0, &j));
  HARNESS_WAIT_PARKED(joining);
  CHECK_EQ(weft_task_done(j), 0);
  CHECK_RC(weft_queue_free(q), WEFT_EBUSY);
  CHECK_EQ(weft_task_cancel(j), 1);
  CHECK_RC(weft_task_await(j, &r), WEFT_ECANCELED);
  weft_task_unref(j);
  return NULL;
}

static void *join_main(void *arg) {
  weft_queue_t *q;
  worker_arg_t w;
  weft_task_t *t[3], *j;
  void *r;
  uintptr_t i;
  int k;

  (void)arg;
  CHECK_OK(weft_queue_new(4, &q));
  CHECK_RC(weft_queue_task_done(NULL), WEFT_EINVAL);
  CHECK_RC(weft_queue_join(NULL), WEFT_EINVAL);
  CHECK_RC(weft_queue_unfinished(NULL), WEFT_EINVAL);
  /* Nothing unfinished: join returns at once, task_done is an error. */
  CHECK_OK(weft_queue_join(q));
  CHECK_RC(weft_queue_task_done(q), WEFT_ESTATE);
  CHECK_EQ(weft_queue_unfinished(q), 0);

  memset(&w, 0, sizeof w);
  w.q = q;
  for (k = 0; k < 3; k++)
    CHECK_OK(weft_spawn(done_worker, &w, &t[k]));
  for (i = 1; i <= 60; i++)
    CHECK_OK(weft_queue_put(q, ITEM(i)));
  CHECK_OK(weft_queue_join(q));
  CHECK_EQ(atomic_load(&w.processed), 60);
  CHECK_EQ(weft_queue_unfinished(q), 0);

  /* A joiner waits while an item is unfinished, and can be cancelled. */
  CHECK_OK(weft_queue_try_put(q, ITEM(0)));
  /* A worker takes it, and marks it done. */
  HARNESS_WAIT(weft_queue_unfinished(q) == 0);
  CHECK_EQ(weft_queue_unfinished(q), 0);
  for (k = 0; k < 3; k++) {
    CHECK_EQ(weft_task_cancel(t[k]), 1);
    weft_task_await(t[k], NULL);
    weft_task_unref(t[k]);
  }
  CHECK_OK(weft_queue_try_put(q, ITEM(9)));
  CHECK_EQ(weft_queue_unfinished(q), 1);
  harness_run_on_worker0(join_free_busy, q);
  /* Another joiner is woken by the last task_done. */
  CHECK_OK(weft_spawn(join_rc, q, &j));
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_queue_get(q, &r));
  CHECK_EQ(weft_task_done(j), 0);
  CHECK_OK(weft_queue_task_done(q));
  CHECK_OK(weft_task_await(j, &r));
  CHECK_EQ((intptr_t)r, 0);
  weft_task_unref(j);
  CHECK_RC(weft_queue_join(q), 0);
  CHECK_OK(weft_queue_free(q));
  return NULL;
}

static void test_task_done_join(void **state) {
  (void)state;
  run_in_weft(join_main, NULL, 1);
  run_in_weft(join_main, NULL, 3);
}

/* ---- shutdown ---------------------------------------------------------------- */

static void *get_rc(void *arg) {
  void *item;
  int rc = weft_queue_get(arg, &item);

  return (void *)(intptr_t)(rc == 0 ? (intptr_t)VAL(item) : rc);
}

static void *put_rc(void *arg) {
  return (void *)(intptr_t)weft_queue_put(arg, ITEM(77));
}

static void *shutdown_main(void *arg) {
  weft_queue_t *q;
  weft_task_t *t[2];
  void *r, *item;
  int k;

  (void)arg;
  CHECK_RC(weft_queue_shutdown(NULL, 0), WEFT_EINVAL);
  CHECK_RC(weft_queue_is_shutdown(NULL), WEFT_EINVAL);

  /* Blocked getters are woken with WEFT_EQUEUE_SHUTDOWN. */
  CHECK_OK(weft_queue_new(2, &q));
  for (k = 0; k < 2; k++)
    CHECK_OK(weft_spawn(get_rc, q, &t[k]));
  CHECK_OK(weft_sleep(5));
  CHECK_EQ(weft_queue_is_shutdown(q), 0);
  CHECK_OK(weft_queue_shutdown(q, 0));
  CHECK_EQ(weft_queue_is_shutdown(q), 1);
  for (k = 0; k < 2; k++) {
    CHECK_OK(weft_task_await(t[k], &r));
    CHECK_RC((intptr_t)r, WEFT_EQUEUE_SHUTDOWN);
    weft_task_unref(t[k]);
  }
  CHECK_RC(weft_queue_put(q, ITEM(1)), WEFT_EQUEUE_SHUTDOWN);
  CHECK_RC(weft_queue_try_put(q, ITEM(1)), WEFT_EQUEUE_SHUTDOWN);
  CHECK_RC(weft_queue_get(q, &item), WEFT_EQUEUE_SHUTDOWN);
  CHECK_RC(weft_queue_try_get(q, &item), WEFT_EQUEUE_SHUTDOWN);
  CHECK_OK(weft_queue_shutdown(q, 0)); /* again: harmless */
  CHECK_OK(weft_queue_free(q));

  /* Not immediate: blocked putters fail, queued items drain, then get
   * fails; join waits for the drained items. */
  CHECK_OK(weft_queue_new(2, &q));
  CHECK_OK(weft_queue_put(q, ITEM(1)));
  CHECK_OK(weft_queue_put(q, ITEM(2)));
  CHECK_OK(weft_spawn(put_rc, q, &t[0]));
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_queue_shutdown(q, 0));
  CHECK_OK(weft_task_await(t[0], &r));
  CHECK_RC((intptr_t)r, WEFT_EQUEUE_SHUTDOWN);
  weft_task_unref(t[0]);
  CHECK_EQ(weft_queue_size(q), 2);
  CHECK_EQ(weft_queue_unfinished(q), 2);
  CHECK_OK(weft_spawn(join_rc, q, &t[1]));
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_EQ(VAL(item), 1);
  CHECK_OK(weft_queue_try_get(q, &item));
  CHECK_EQ(VAL(item), 2);
  CHECK_RC(weft_queue_get(q, &item), WEFT_EQUEUE_SHUTDOWN);
  CHECK_OK(weft_queue_task_done(q));
  CHECK_EQ(weft_task_done(t[1]), 0);
  CHECK_OK(weft_queue_task_done(q));
  CHECK_OK(weft_task_await(t[1], &r));
  CHECK_EQ((intptr_t)r, 0);
  weft_task_unref(t[1]);
  CHECK_OK(weft_queue_free(q));

  /* Immediate: items dropped and counted done, joiners and putters woken. */
  CHECK_OK(weft_queue_new(2, &q));
  CHECK_OK(weft_queue_put(q, ITEM(1)));
  CHECK_OK(weft_queue_put(q, ITEM(2)));
  CHECK_OK(weft_spawn(put_rc, q, &t[0]));
  CHECK_OK(weft_spawn(join_rc, q, &t[1]));
  CHECK_OK(weft_sleep(5));
  CHECK_EQ(weft_task_done(t[0]), 0);
  CHECK_EQ(weft_task_done(t[1]), 0);
  CHECK_OK(weft_queue_shutdown(q, 1));
  CHECK_OK(weft_task_await(t[0], &r));
  CHECK_RC((intptr_t)r, WEFT_EQUEUE_SHUTDOWN);
  CHECK_OK(weft_task_await(t[1], &r));
  CHECK_EQ((intptr_t)r, 0);
  weft_task_unref(t[0]);
  weft_task_unref(t[1]);
  CHECK_EQ(weft_queue_size(q), 0);
  CHECK_EQ(weft_queue_unfinished(q), 0);
  CHECK_RC(weft_queue_get(q, &item), WEFT_EQUEUE_SHUTDOWN);
  CHECK_OK(weft_queue_free(q));

  /* Immediate with some items already taken: only the dropped ones are
   * counted done. */
  CHECK_OK(weft_queue_new(0, &q));
  CHECK_OK(weft_queue_put(q, ITEM(1)));
  CHECK_OK(weft_queue_put(q, ITEM(2)));
  CHECK_OK(weft_queue_put(q, ITEM(3)));
  CHECK_OK(weft_queue_get(q, &item));
  CHECK_OK(weft_queue_shutdown(q, 1));
  CHECK_EQ(weft_queue_unfinished(q), 1);
  CHECK_OK(weft_queue_task_done(q));
  CHECK_OK(weft_queue_join(q));
  CHECK_OK(weft_queue_free(q));
  return NULL;
}

static void test_shutdown(void **state) {
  (void)state;
  run_in_weft(shutdown_main, NULL, 1);
  run_in_weft(shutdown_main, NULL, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kinds_outside),
      cmocka_unit_test(test_kinds_blocking),
      cmocka_unit_test(test_task_done_join),
      cmocka_unit_test(test_shutdown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
