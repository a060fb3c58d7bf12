/*
 * api_queue: weft_queue_* (asyncio.Queue of pointers): errors, the
 * non-suspending forms, queues on caller memory (init/destroy), FIFO order of
 * items and of waiters, maxsize 0 as unbounded, blocking put and get, free with
 * waiters, wake-ups from a thread that is not a task, and producers and
 * consumers on 4 workers with the sums checked.
 */
#include "harness.h"

#define ITEM(i) ((void *)(uintptr_t)(i))

/* ---- outside the runtime: the non-suspending forms ------------------------------ */

static void test_basics_and_errors(void **state) {
  weft_queue_t *q = NULL;
  void *item = NULL;
  uintptr_t i;

  (void)state;
  assert_int_equal(weft_queue_new(0, NULL), WEFT_EINVAL);
  assert_int_equal(weft_queue_free(NULL), 0);
  assert_int_equal(weft_queue_try_put(NULL, ITEM(1)), WEFT_EINVAL);
  assert_int_equal(weft_queue_try_get(NULL, &item), WEFT_EINVAL);
  assert_int_equal(weft_queue_size(NULL), WEFT_EINVAL);

  assert_int_equal(weft_queue_new(2, &q), 0);
  assert_non_null(q);
  assert_int_equal(weft_queue_try_get(q, NULL), WEFT_EINVAL);
  assert_int_equal(weft_queue_size(q), 0);
  assert_int_equal(weft_queue_try_get(q, &item), WEFT_EAGAIN);
  assert_int_equal(weft_queue_try_put(q, ITEM(1)), 0);
  assert_int_equal(weft_queue_try_put(q, ITEM(2)), 0);
  assert_int_equal(weft_queue_try_put(q, ITEM(3)), WEFT_EAGAIN);
  assert_int_equal(weft_queue_size(q), 2);
  assert_int_equal(weft_queue_try_get(q, &item), 0);
  assert_ptr_equal(item, ITEM(1));
  assert_int_equal(weft_queue_try_put(q, ITEM(3)), 0);
  assert_int_equal(weft_queue_try_get(q, &item), 0);
  assert_ptr_equal(item, ITEM(2));
  assert_int_equal(weft_queue_try_get(q, &item), 0);
  assert_ptr_equal(item, ITEM(3));
  assert_int_equal(weft_queue_try_get(q, &item), WEFT_EAGAIN);
  assert_int_equal(weft_queue_size(q), 0);
  /* NULL is an item like any other. */
  assert_int_equal(weft_queue_try_put(q, NULL), 0);
  item = ITEM(5);
  assert_int_equal(weft_queue_try_get(q, &item), 0);
  assert_null(item);
  /* Items still queued are dropped by free. */
  assert_int_equal(weft_queue_try_put(q, ITEM(9)), 0);
  assert_int_equal(weft_queue_free(q), 0);

  /* maxsize 0: unbounded. */
  assert_int_equal(weft_queue_new(0, &q), 0);
  for (i = 1; i <= 100000; i++)
    assert_int_equal(weft_queue_try_put(q, ITEM(i)), 0);
  assert_int_equal(weft_queue_size(q), 100000);
  for (i = 1; i <= 100000; i++) {
    assert_int_equal(weft_queue_try_get(q, &item), 0);
    if (item != ITEM(i))
      fail_msg("item %zu out of order", (size_t)i);
  }
  assert_int_equal(weft_queue_try_get(q, &item), WEFT_EAGAIN);
  assert_int_equal(weft_queue_free(q), 0);

  /* maxsize 1. */
  assert_int_equal(weft_queue_new(1, &q), 0);
  assert_int_equal(weft_queue_try_put(q, ITEM(1)), 0);
  assert_int_equal(weft_queue_try_put(q, ITEM(2)), WEFT_EAGAIN);
  assert_int_equal(weft_queue_free(q), 0);
}

/* ---- caller memory: init, init_ex, destroy
 * ---------------------------------------- */

static int cmp_uintptr(const void *a, const void *b, void *arg) {
  (void)arg;
  return (uintptr_t)a < (uintptr_t)b ? -1 : (uintptr_t)a > (uintptr_t)b;
}

static weft_queue_t static_q; /* in static storage, as sync objects may be */

static void test_init_and_destroy(void **state) {
  weft_queue_t q;
  weft_queue_opts_t o;
  void *item = NULL;
  uintptr_t i;

  (void)state;
  assert_int_equal(weft_queue_init(NULL, 0), WEFT_EINVAL);
  assert_int_equal(weft_queue_init_ex(NULL, NULL), WEFT_EINVAL);
  assert_int_equal(weft_queue_init_ex(&q, NULL), WEFT_EINVAL);
  assert_int_equal(weft_queue_destroy(NULL), WEFT_EINVAL);
  weft_queue_opts_init(&o);
  o.kind = WEFT_QUEUE_PRIORITY; /* no cmp */
  assert_int_equal(weft_queue_init_ex(&q, &o), WEFT_EINVAL);
  o.kind = (weft_queue_kind_t)7;
  assert_int_equal(weft_queue_init_ex(&q, &o), WEFT_EINVAL);

  /* FIFO with maxsize, on the stack; destroy drops what is queued and
   * releases the store (ASan's leak check would see it otherwise). */
  assert_int_equal(weft_queue_init(&q, 2), 0);
  assert_int_equal(weft_queue_try_put(&q, ITEM(1)), 0);
  assert_int_equal(weft_queue_try_put(&q, ITEM(2)), 0);
  assert_int_equal(weft_queue_try_put(&q, ITEM(3)), WEFT_EAGAIN);
  assert_int_equal(weft_queue_try_get(&q, &item), 0);
  assert_ptr_equal(item, ITEM(1));
  assert_int_equal(weft_queue_destroy(&q), 0);

  /* LIFO, unbounded: the store grows on library memory. */
  weft_queue_opts_init(&o);
  o.kind = WEFT_QUEUE_LIFO;
  assert_int_equal(weft_queue_init_ex(&q, &o), 0);
  for (i = 1; i <= 1000; i++)
    assert_int_equal(weft_queue_try_put(&q, ITEM(i)), 0);
  assert_int_equal(weft_queue_try_get(&q, &item), 0);
  assert_ptr_equal(item, ITEM(1000));
  assert_int_equal(weft_queue_destroy(&q), 0);
  /* The memory of a destroyed queue may be initialised again. */
  weft_queue_opts_init(&o);
  o.kind = WEFT_QUEUE_PRIORITY;
  o.cmp = cmp_uintptr;
  assert_int_equal(weft_queue_init_ex(&q, &o), 0);
  assert_int_equal(weft_queue_try_put(&q, ITEM(5)), 0);
  assert_int_equal(weft_queue_try_put(&q, ITEM(2)), 0);
  assert_int_equal(weft_queue_try_get(&q, &item), 0);
  assert_ptr_equal(item, ITEM(2));
  assert_int_equal(weft_queue_destroy(&q), 0);

  /* Static storage, shut down and destroyed with items queued. */
  assert_int_equal(weft_queue_init(&static_q, 0), 0);
  assert_int_equal(weft_queue_try_put(&static_q, ITEM(1)), 0);
  assert_int_equal(weft_queue_shutdown(&static_q, 0), 0);
  assert_int_equal(weft_queue_try_put(&static_q, ITEM(2)),
                   WEFT_EQUEUE_SHUTDOWN);
  assert_int_equal(weft_queue_destroy(&static_q), 0);
}

/* ---- blocking put and get ------------------------------------------------------------ */

typedef struct pc {
  weft_queue_t *q;
  atomic_int done;  /* items the producer has put */
  void *got[8];     /* what the consumer received */
} pc_t;

static void *put_three(void *arg) {
  pc_t *p = arg;
  int i;

  for (i = 1; i <= 3; i++) {
    CHECK_OK(weft_queue_put(p->q, ITEM(i)));
    atomic_store(&p->done, i);
  }
  return NULL;
}

static void *get_three(void *arg) {
  pc_t *p = arg;
  int i;

  for (i = 0; i < 3; i++)
    CHECK_OK(weft_queue_get(p->q, &p->got[i]));
  return NULL;
}

static void *blocking_main(void *arg) {
  pc_t p;
  weft_task_t *t;
  void *item;

  (void)arg;
  memset(&p, 0, sizeof p);
  /* put blocks while full. */
  CHECK_OK(weft_queue_new(1, &p.q));
  CHECK_OK(weft_spawn(put_three, &p, &t));
  HARNESS_WAIT(atomic_load(&p.done) == 1); /* then the full queue stops it */
  CHECK_EQ(atomic_load(&p.done), 1);
  CHECK_EQ(weft_queue_size(p.q), 1);
  CHECK_EQ(weft_task_done(t), 0);
  CHECK_OK(weft_queue_get(p.q, &item));
  CHECK(item == ITEM(1));
  CHECK_OK(weft_queue_get(p.q, &item));
  CHECK(item == ITEM(2));
  CHECK_OK(weft_queue_get(p.q, &item));
  CHECK(item == ITEM(3));
  CHECK_OK(weft_task_await(t, NULL));
  CHECK_EQ(atomic_load(&p.done), 3);
  CHECK_EQ(weft_queue_size(p.q), 0);
  weft_task_unref(t);

  /* get blocks while empty. */
  CHECK_OK(weft_spawn(get_three, &p, &t));
  CHECK_OK(weft_sleep(20));
  CHECK_EQ(weft_task_done(t), 0);
  CHECK_OK(weft_queue_put(p.q, ITEM(7)));
  HARNESS_WAIT(weft_queue_size(p.q) == 0); /* the getter took it */
  /* The non-suspending put works from a task too, waiting getter or not. */
  CHECK_OK(weft_queue_try_put(p.q, ITEM(8)));
  CHECK_OK(weft_queue_put(p.q, ITEM(9)));
  CHECK_OK(weft_task_await(t, NULL));
  CHECK(p.got[0] == ITEM(7));
  CHECK(p.got[1] == ITEM(8));
  CHECK(p.got[2] == ITEM(9));
  CHECK_EQ(weft_queue_size(p.q), 0);
  weft_task_unref(t);
  CHECK_OK(weft_queue_free(p.q));
  return NULL;
}

static void test_blocking_put_and_get(void **state) {
  (void)state;
  run_in_weft(blocking_main, NULL, 1);
  run_in_weft(blocking_main, NULL, 2);
}

/* ---- waiters are served in FIFO order ---------------------------------------------------- */

typedef struct waiter {
  weft_queue_t *q;
  void *item;
  atomic_int ready; /* about to get or put */
} waiter_t;

static void *get_one(void *arg) {
  waiter_t *w = arg;

  atomic_store(&w->ready, 1);
  CHECK_OK(weft_queue_get(w->q, &w->item));
  return NULL;
}

static void *put_one(void *arg) {
  waiter_t *w = arg;

  atomic_store(&w->ready, 1);
  CHECK_OK(weft_queue_put(w->q, w->item));
  return NULL;
}

static void *put_one_until_cancelled(void *arg) {
  waiter_t *w = arg;

  atomic_store(&w->ready, 1);
  CHECK_RC(weft_queue_put(w->q, w->item), WEFT_ECANCELED);
  return NULL;
}

static void *fifo_waiters_main(void *arg) {
  weft_queue_t *q;
  waiter_t w[4];
  weft_task_t *t[4];
  void *item;
  int i;

  (void)arg;
  CHECK_OK(weft_queue_new(1, &q));
  /* Getters, registered one after the other. */
  for (i = 0; i < 4; i++) {
    w[i].q = q;
    w[i].item = NULL;
    atomic_init(&w[i].ready, 0);
    CHECK_OK(weft_spawn(get_one, &w[i], &t[i]));
    HARNESS_WAIT_PARKED(w[i].ready);
  }
  for (i = 0; i < 4; i++)
    CHECK_OK(weft_queue_put(q, ITEM(100 + i)));
  CHECK_OK(weft_gather(t, 4, NULL));
  for (i = 0; i < 4; i++) {
    CHECK(w[i].item == ITEM(100 + i));
    weft_task_unref(t[i]);
  }
  /* Putters on a full queue. */
  CHECK_OK(weft_queue_put(q, ITEM(1)));
  for (i = 0; i < 4; i++) {
    w[i].q = q;
    w[i].item = ITEM(200 + i);
    atomic_init(&w[i].ready, 0);
    CHECK_OK(weft_spawn(put_one, &w[i], &t[i]));
    HARNESS_WAIT_PARKED(w[i].ready);
  }
  CHECK_EQ(weft_queue_size(q), 1);
  CHECK_OK(weft_queue_get(q, &item));
  CHECK(item == ITEM(1));
  for (i = 0; i < 4; i++) {
    CHECK_OK(weft_queue_get(q, &item));
    CHECK(item == ITEM(200 + i));
  }
  CHECK_OK(weft_gather(t, 4, NULL));
  for (i = 0; i < 4; i++)
    weft_task_unref(t[i]);
  CHECK_OK(weft_queue_free(q));
  return NULL;
}

static void test_waiters_fifo(void **state) {
  (void)state;
  run_in_weft(fifo_waiters_main, NULL, 1);
  run_in_weft(fifo_waiters_main, NULL, 3);
}

/* ---- free with waiters ---------------------------------------------------------------- */

/* The driver and the waiters are pinned to worker 0, so that seeing a
 * waiter's flag after a suspension proves that it is parked in the queue
 * (a free while it is not would free the queue under it). */
static void *free_busy_driver(void *arg) {
  weft_queue_t *q;
  waiter_t w;
  weft_task_t *t;

  (void)arg;
  CHECK_OK(weft_queue_new(0, &q));
  w.q = q;
  w.item = NULL;
  atomic_init(&w.ready, 0);
  CHECK_OK(harness_spawn_pinned(get_one, &w, 0, &t));
  HARNESS_WAIT_PARKED(w.ready);
  CHECK_RC(weft_queue_free(q), WEFT_EBUSY);
  /* Not freed: still usable. */
  CHECK_EQ(weft_queue_size(q), 0);
  CHECK_OK(weft_queue_put(q, ITEM(3)));
  CHECK_OK(weft_task_await(t, NULL));
  CHECK(w.item == ITEM(3));
  weft_task_unref(t);
  CHECK_OK(weft_queue_free(q));

  /* A blocked putter counts as a waiter too. */
  CHECK_OK(weft_queue_new(1, &q));
  CHECK_OK(weft_queue_try_put(q, ITEM(1)));
  w.q = q;
  w.item = ITEM(2);
  atomic_store(&w.ready, 0);
  CHECK_OK(harness_spawn_pinned(put_one_until_cancelled, &w, 0, &t));
  HARNESS_WAIT_PARKED(w.ready);
  CHECK_RC(weft_queue_free(q), WEFT_EBUSY);
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_EQ(weft_queue_size(q), 1);
  CHECK_OK(weft_queue_free(q));

  /* A queue on caller memory: destroy refuses the same way. */
  {
    weft_queue_t sq;
    CHECK_OK(weft_queue_init(&sq, 0));
    w.q = &sq;
    w.item = NULL;
    atomic_store(&w.ready, 0);
    CHECK_OK(harness_spawn_pinned(get_one, &w, 0, &t));
    HARNESS_WAIT_PARKED(w.ready);
    CHECK_RC(weft_queue_destroy(&sq), WEFT_EBUSY);
    CHECK_OK(weft_queue_put(&sq, ITEM(4)));
    CHECK_OK(weft_task_await(t, NULL));
    CHECK(w.item == ITEM(4));
    weft_task_unref(t);
    CHECK_OK(weft_queue_destroy(&sq));
  }
  return NULL;
}

static void *free_busy_main(void *arg) {
  harness_run_on_worker0(free_busy_driver, arg);
  return NULL;
}

static void test_free_with_waiters(void **state) {
  (void)state;
  run_in_weft(free_busy_main, NULL, 2);
}

/* ---- a thread that is not a task wakes a getter ------------------------------------------- */

#define N_FOREIGN 2000

static void *foreign_producer(void *arg) {
  weft_queue_t *q = arg;
  uintptr_t i;
  struct timespec pause = {0, 100 * 1000};

  for (i = 1; i <= N_FOREIGN; i++) {
    while (weft_queue_try_put(q, ITEM(i)) == WEFT_EAGAIN)
      nanosleep(&pause, NULL);
    if (i % 256 == 0)
      nanosleep(&pause, NULL); /* let the consumer block now and then */
  }
  return NULL;
}

static void *foreign_main(void *arg) {
  weft_queue_t *q;
  pthread_t th;
  void *item;
  uintptr_t i;
  int bad = 0;

  (void)arg;
  CHECK_OK(weft_queue_new(8, &q));
  CHECK_EQ(pthread_create(&th, NULL, foreign_producer, q), 0);
  for (i = 1; i <= N_FOREIGN; i++) {
    CHECK_OK(weft_queue_get(q, &item));
    if (item != ITEM(i))
      bad++;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK_OK(weft_queue_free(q));
  return NULL;
}

static void test_foreign_thread_wakes_getter(void **state) {
  (void)state;
  run_in_weft(foreign_main, NULL, 1);
  run_in_weft(foreign_main, NULL, 2);
}

/* ---- producers and consumers on 4 workers -------------------------------------------------- */

#define N_PRODUCERS 4
#define N_CONSUMERS 4
#define PER_PRODUCER HARNESS_SIZE(50000, 5000, 50000)

typedef struct mpmc {
  weft_queue_t *q;
  atomic_ullong sum;     /* of all items received */
  atomic_long count;     /* items received */
  atomic_int workers[8]; /* consumers saw each worker */
} mpmc_t;

typedef struct mpmc_arg {
  mpmc_t *m;
  uintptr_t base;
} mpmc_arg_t;

static void *mpmc_producer(void *arg) {
  mpmc_arg_t *a = arg;
  uintptr_t i;

  for (i = 1; i <= PER_PRODUCER; i++)
    CHECK_OK(weft_queue_put(a->m->q, ITEM(a->base + i)));
  return NULL;
}

static void *mpmc_consumer(void *arg) {
  mpmc_arg_t *a = arg;
  unsigned long long sum = 0;
  long count = 0;
  void *item;
  int idx, rc;

  for (;;) {
    rc = weft_queue_get(a->m->q, &item);
    CHECK_OK(rc);
    if (rc != 0 || item == NULL)
      break;
    sum += (uintptr_t)item;
    count++;
    idx = weft_worker_index();
    if (idx >= 0 && idx < 8)
      atomic_store(&a->m->workers[idx], 1);
  }
  atomic_fetch_add(&a->m->sum, sum);
  atomic_fetch_add(&a->m->count, count);
  return NULL;
}

static void *mpmc_main(void *arg) {
  mpmc_t *m = arg;
  mpmc_arg_t pa[N_PRODUCERS], ca[N_CONSUMERS];
  weft_task_t *p[N_PRODUCERS], *c[N_CONSUMERS];
  int i;

  CHECK_OK(weft_queue_new(16, &m->q));
  for (i = 0; i < N_CONSUMERS; i++) {
    ca[i].m = m;
    ca[i].base = 0;
    CHECK_OK(weft_spawn(mpmc_consumer, &ca[i], &c[i]));
  }
  for (i = 0; i < N_PRODUCERS; i++) {
    pa[i].m = m;
    pa[i].base = (uintptr_t)i * 1000000u;
    CHECK_OK(weft_spawn(mpmc_producer, &pa[i], &p[i]));
  }
  CHECK_OK(weft_gather(p, N_PRODUCERS, NULL));
  for (i = 0; i < N_CONSUMERS; i++)
    CHECK_OK(weft_queue_put(m->q, NULL)); /* one end marker each */
  CHECK_OK(weft_gather(c, N_CONSUMERS, NULL));
  CHECK_EQ(weft_queue_size(m->q), 0);
  for (i = 0; i < N_PRODUCERS; i++)
    weft_task_unref(p[i]);
  for (i = 0; i < N_CONSUMERS; i++)
    weft_task_unref(c[i]);
  CHECK_OK(weft_queue_free(m->q));
  return NULL;
}

static void test_producers_consumers_4_workers(void **state) {
  mpmc_t m;
  unsigned long long want = 0;
  int i, seen = 0;

  (void)state;
  memset(&m, 0, sizeof m);
  run_in_weft(mpmc_main, &m, 4);
  for (i = 0; i < N_PRODUCERS; i++) {
    unsigned long long base = (unsigned long long)i * 1000000u;
    unsigned long long n = PER_PRODUCER;

    want += base * n + n * (n + 1) / 2;
  }
  assert_int_equal(atomic_load(&m.count), (long)N_PRODUCERS * PER_PRODUCER);
  assert_true(atomic_load(&m.sum) == want);
  for (i = 0; i < 4; i++)
    seen += atomic_load(&m.workers[i]);
  assert_true(seen >= 2);
}

/* ---- a waiter cancelled before the item (or room) came takes nothing ---- */

/* Defect 9 of issue 11: the waker used to hand the item to a getter whose
 * cancel() had already returned (it was still linked until it ran). In
 * deterministic mode the cancelled task cannot run between cancel() and the
 * put, so the window is certain. */
typedef struct cq_waiter {
  weft_queue_t *q;
  void *item;
  atomic_int started;
  int rc;
} cq_waiter_t;

static void *cq_get(void *arg) {
  cq_waiter_t *w = arg;

  atomic_store(&w->started, 1);
  w->rc = weft_queue_get(w->q, &w->item);
  return NULL;
}

static void *cq_put(void *arg) {
  cq_waiter_t *w = arg;

  atomic_store(&w->started, 1);
  w->rc = weft_queue_put(w->q, w->item);
  return NULL;
}

/* Spawn fn(w) and let it reach its wait: with one worker, once it started
 * it runs into the wait before this task runs again. */
static weft_task_t *cq_spawn_waiting(weft_task_fn fn, cq_waiter_t *w) {
  w->rc = 1;
  return harness_spawn_waiting(fn, w, &w->started);
}

static void *cancelled_waiter_main(void *arg) {
  weft_queue_t *q;
  cq_waiter_t g = {0}, g2 = {0}, p = {0};
  weft_task_t *t, *t2;
  void *item = NULL;

  (void)arg;
  /* A getter cancelled before the put: the item stays in the queue. */
  CHECK_OK(weft_queue_new(0, &q));
  g.q = q;
  t = cq_spawn_waiting(cq_get, &g);
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_OK(weft_queue_put(q, ITEM(7)));
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  CHECK_RC(g.rc, WEFT_ECANCELED);
  CHECK(g.item == NULL);
  CHECK_EQ(weft_queue_size(q), 1);
  CHECK_OK(weft_queue_try_get(q, &item));
  CHECK(item == ITEM(7));
  weft_task_unref(t);

  /* Behind a cancelled getter, the next getter gets the item. */
  g.item = g2.item = NULL;
  g2.q = q;
  t = cq_spawn_waiting(cq_get, &g);
  t2 = cq_spawn_waiting(cq_get, &g2);
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_OK(weft_queue_put(q, ITEM(8)));
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  for (int i = 0; i < 100000 && !weft_task_done(t2); i++)
    CHECK_OK(weft_yield());
  CHECK(weft_task_done(t2));
  if (!weft_task_done(t2)) /* the item went astray: end the test */
    CHECK_OK(weft_queue_put(q, ITEM(9)));
  CHECK_OK(weft_task_await(t2, NULL));
  CHECK(g.item == NULL);
  CHECK(g2.item == ITEM(8));
  CHECK_EQ(weft_queue_size(q), 0);
  weft_task_unref(t);
  weft_task_unref(t2);
  CHECK_OK(weft_queue_free(q));

  /* A putter cancelled before room appeared puts nothing. */
  CHECK_OK(weft_queue_new(1, &q));
  CHECK_OK(weft_queue_try_put(q, ITEM(1)));
  p.q = q;
  p.item = ITEM(2);
  t = cq_spawn_waiting(cq_put, &p);
  CHECK_EQ(weft_task_cancel(t), 1);
  CHECK_OK(weft_queue_get(q, &item));
  CHECK(item == ITEM(1));
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  CHECK_RC(p.rc, WEFT_ECANCELED);
  CHECK_EQ(weft_queue_size(q), 0);
  CHECK_EQ(weft_queue_unfinished(q), 1);
  weft_task_unref(t);
  CHECK_OK(weft_queue_free(q));
  return NULL;
}

static void test_cancelled_waiter_takes_nothing(void **state) {
  (void)state;
  run_in_weft_deterministic(cancelled_waiter_main, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basics_and_errors),
      cmocka_unit_test(test_init_and_destroy),
      cmocka_unit_test(test_blocking_put_and_get),
      cmocka_unit_test(test_waiters_fifo),
      cmocka_unit_test(test_free_with_waiters),
      cmocka_unit_test(test_foreign_thread_wakes_getter),
      cmocka_unit_test(test_producers_consumers_4_workers),
      cmocka_unit_test(test_cancelled_waiter_takes_nothing),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
