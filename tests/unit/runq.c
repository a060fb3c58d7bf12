/*
 * unit_runq: the local run queue of src/sched/runq.h, white-box.
 *
 * The ring never looks inside a task except to link an overflow batch
 * through `next`, so the tests queue records of a static array and identify
 * each by its index. The single-threaded tests check the protocol steps of
 * runq.h one by one (FIFO order, capacity, overflow into the inject queue,
 * steal-half, a steal in progress, overflow during a steal) and the index
 * arithmetic, with the indices
 * started near UINT32_MAX so that they wrap; the concurrent test lets an
 * owner push and pop while thieves steal from it and from one another, and
 * checks that every task is taken exactly once (ThreadSanitizer checks the
 * orderings in the TSan build). Last, the worker counter that several
 * threads write (wakeups) loses no increment.
 */
#include "harness.h"

#include "record.h"
#include "sched/inject.h"
#include "sched/runq.h"
#include "sched/worker.h"

#include <sched.h>

#define CAP WEFT_RUNQ_CAPACITY
#define HALF (WEFT_RUNQ_CAPACITY / 2)

/* Enough records that an index modulo NRECS identifies a task in any ring. */
#define NRECS (8 * CAP)
static weft_task_t recs[NRECS];

static weft_task_t *rec(uint64_t i) { return &recs[i % NRECS]; }

static long rec_index(const weft_task_t *t) {
  return t ? (long)(t - recs) : -1;
}

/* The rings are large and aligned: keep them out of the test's stack. */
static weft__runq_t ring_a, ring_b;
static weft__inject_t inject;

static void set_indices(weft__runq_t *q, uint32_t steal, uint32_t real,
                        uint32_t tail) {
  atomic_store(&q->head, weft__runq_pack(steal, real));
  atomic_store(&q->tail, tail);
}

static void push_ok(weft__runq_t *q, uint64_t i) {
  assert_int_equal(weft__runq_try_push_owner(q, rec(i)), 1);
}

static void pop_expect(weft__runq_t *q, uint64_t i) {
  assert_int_equal(rec_index(weft__runq_pop_owner(q)), (long)(i % NRECS));
}

static void pop_expect_empty(weft__runq_t *q) {
  assert_null(weft__runq_pop_owner(q));
  assert_int_equal(weft__runq_len(q), 0);
  assert_true(weft__runq_is_empty(q));
}

static void assert_no_steal_in_progress(weft__runq_t *q) {
  uint64_t h = atomic_load(&q->head);

  assert_int_equal(weft__runq_steal_of(h), weft__runq_real_of(h));
}

/* Pop everything from the inject queue and compare with want[0..n). */
static void inject_expect(const uint64_t *want, size_t n) {
  size_t got = 0;
  weft_task_t *t = weft__inject_pop_batch(&inject, (size_t)-1, &got);
  size_t i;

  assert_int_equal(got, n);
  for (i = 0; i < n; i++) {
    assert_non_null(t);
    assert_int_equal(rec_index(t), (long)(want[i] % NRECS));
    t = t->next;
  }
  assert_null(t);
  assert_true(weft__inject_is_empty(&inject));
}

static int setup(void **state) {
  (void)state;
  weft__runq_init(&ring_a);
  weft__runq_init(&ring_b);
  assert_int_equal(weft__inject_init(&inject), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  weft__inject_destroy(&inject);
  return 0;
}

/* A FIFO model of the ring's content, by record index. */
typedef struct model {
  uint64_t items[4 * CAP];
  size_t head, tail; /* positions in items, mod 4 * CAP */
} model_t;

static size_t model_len(const model_t *m) { return m->tail - m->head; }

static uint64_t model_at(const model_t *m, size_t i) {
  return m->items[(m->head + i) % (4 * CAP)];
}

static void model_push(model_t *m, uint64_t v) {
  m->items[m->tail++ % (4 * CAP)] = v;
}

static uint64_t model_pop(model_t *m) {
  return m->items[m->head++ % (4 * CAP)];
}

/* ---- single-threaded protocol steps ------------------------------------ */

static void test_fifo(void **state) {
  uint64_t i;

  (void)state;
  pop_expect_empty(&ring_a);
  for (i = 0; i < 100; i++) {
    push_ok(&ring_a, i);
    assert_int_equal(weft__runq_len(&ring_a), i + 1);
  }
  assert_false(weft__runq_is_empty(&ring_a));
  for (i = 0; i < 100; i++)
    pop_expect(&ring_a, i);
  pop_expect_empty(&ring_a);
  /* Interleaved: still first in, first out. */
  push_ok(&ring_a, 1);
  push_ok(&ring_a, 2);
  pop_expect(&ring_a, 1);
  push_ok(&ring_a, 3);
  pop_expect(&ring_a, 2);
  pop_expect(&ring_a, 3);
  pop_expect_empty(&ring_a);
  assert_no_steal_in_progress(&ring_a);
}

static void test_capacity(void **state) {
  uint64_t i;

  (void)state;
  for (i = 0; i < CAP; i++)
    push_ok(&ring_a, i);
  assert_int_equal(weft__runq_len(&ring_a), CAP);
  /* Full: the push is refused and nothing is overwritten. */
  assert_int_equal(weft__runq_try_push_owner(&ring_a, rec(CAP)), 0);
  assert_int_equal(weft__runq_len(&ring_a), CAP);
  pop_expect(&ring_a, 0);
  /* One slot free again. */
  push_ok(&ring_a, CAP);
  assert_int_equal(weft__runq_try_push_owner(&ring_a, rec(CAP + 1)), 0);
  for (i = 1; i <= CAP; i++)
    pop_expect(&ring_a, i);
  pop_expect_empty(&ring_a);
}

static void test_overflow(void **state) {
  uint64_t want[HALF + 1];
  uint64_t i, next = 0;
  int round;

  (void)state;
  /* Twice, so that the second batch lands behind the first in FIFO order
   * and the ring's indices no longer start at 0. */
  for (round = 0; round < 2; round++) {
    uint64_t first = next;

    while (weft__runq_len(&ring_a) < CAP)
      push_ok(&ring_a, next++);
    assert_int_equal(weft__runq_try_push_owner(&ring_a, rec(next)), 0);
    assert_int_equal(weft__runq_push_overflow(&ring_a, rec(next), &inject), 0);
    assert_int_equal(atomic_load(&inject.len), HALF + 1);
    assert_int_equal(weft__runq_len(&ring_a), CAP - HALF);
    assert_no_steal_in_progress(&ring_a);
    /* The oldest half went, then the task that did not fit. */
    for (i = 0; i < HALF; i++)
      want[i] = first + i;
    want[HALF] = next;
    next++;
    inject_expect(want, HALF + 1);
    /* The newer half stays in the ring, in order, and there is room. */
    for (i = 0; i < CAP - HALF; i++)
      pop_expect(&ring_a, first + HALF + i);
    pop_expect_empty(&ring_a);
    if (round == 0) {
      /* Shift the indices so that the second round starts mid-ring. */
      push_ok(&ring_a, next++);
      push_ok(&ring_a, next++);
      pop_expect(&ring_a, next - 2);
      pop_expect(&ring_a, next - 1);
    }
  }

  /* Two overflows without draining the inject queue: the batches chain,
   * and the second one takes the survivors of the first. */
  {
    static model_t m;
    uint64_t chain[2 * (HALF + 1)];
    size_t k = 0;

    m.head = m.tail = 0;
    for (round = 0; round < 2; round++) {
      while (model_len(&m) < CAP) {
        push_ok(&ring_a, next);
        model_push(&m, next++);
      }
      for (i = 0; i < HALF; i++)
        chain[k++] = model_pop(&m);
      chain[k++] = next;
      assert_int_equal(
          weft__runq_push_overflow(&ring_a, rec(next), &inject), 0);
      next++;
    }
    assert_int_equal(atomic_load(&inject.len), 2 * (HALF + 1));
    inject_expect(chain, k);
    while (model_len(&m))
      pop_expect(&ring_a, model_pop(&m));
    pop_expect_empty(&ring_a);
  }
}

/* Steal from a ring holding n tasks: ceil(n/2) move, the newest of them is
 * returned, the others are queued in dst in order, and the rest stay. */
static void check_steal(uint32_t n, uint64_t base) {
  uint32_t moved = 12345, i, take = n - n / 2;
  weft_task_t *t;

  weft__runq_init(&ring_a);
  weft__runq_init(&ring_b);
  for (i = 0; i < n; i++)
    push_ok(&ring_a, base + i);
  t = weft__runq_steal_into(&ring_a, &ring_b, &moved);
  assert_int_equal(moved, take);
  assert_non_null(t);
  assert_int_equal(rec_index(t), (long)((base + take - 1) % NRECS));
  assert_no_steal_in_progress(&ring_a);
  assert_int_equal(weft__runq_len(&ring_b), take - 1);
  assert_int_equal(weft__runq_len(&ring_a), n - take);
  for (i = 0; i + 1 < take; i++)
    pop_expect(&ring_b, base + i);
  pop_expect_empty(&ring_b);
  for (i = take; i < n; i++)
    pop_expect(&ring_a, base + i);
  pop_expect_empty(&ring_a);
}

static void test_steal_half(void **state) {
  static const uint32_t sizes[] = {1, 2, 3, 4, 7, 8, 9, 100, CAP - 1, CAP};
  uint32_t moved = 7;
  size_t i;

  (void)state;
  /* Nothing to steal. */
  assert_null(weft__runq_steal_into(&ring_a, &ring_b, &moved));
  assert_int_equal(moved, 0);
  for (i = 0; i < HARNESS_COUNT(sizes); i++)
    check_steal(sizes[i], 10 * i);
}

/* A thief steals only into a ring with room for half of another. */
static void test_steal_dst_full(void **state) {
  uint32_t moved = 7, i;

  (void)state;
  for (i = 0; i < 10; i++)
    push_ok(&ring_a, i);
  for (i = 0; i < HALF + 1; i++)
    push_ok(&ring_b, 100 + i);
  assert_null(weft__runq_steal_into(&ring_a, &ring_b, &moved));
  assert_int_equal(moved, 0);
  assert_int_equal(weft__runq_len(&ring_a), 10);
  assert_int_equal(weft__runq_len(&ring_b), HALF + 1);
  /* Exactly half full is still acceptable. */
  pop_expect(&ring_b, 100);
  assert_non_null(weft__runq_steal_into(&ring_a, &ring_b, &moved));
  assert_int_equal(moved, 5);
}

/* While a thief copies out [STEAL, REAL), another thief is refused, the
 * owner pops past the range but cannot overwrite it, and overflow sends the
 * new task alone to the inject queue. */
static void test_steal_in_progress(void **state) {
  uint32_t moved = 7, i;
  uint64_t h;

  (void)state;
  for (i = 0; i < 10; i++)
    push_ok(&ring_a, i);
  /* A thief claimed slots 0 and 1. */
  set_indices(&ring_a, 0, 2, 10);
  assert_int_equal(weft__runq_len(&ring_a), 8);
  assert_null(weft__runq_steal_into(&ring_a, &ring_b, &moved));
  assert_int_equal(moved, 0);
  assert_int_equal(weft__runq_len(&ring_b), 0);
  assert_int_equal(weft__runq_len(&ring_a), 8);

  /* The owner pops past the claimed range and keeps STEAL where it is. */
  pop_expect(&ring_a, 2);
  h = atomic_load(&ring_a.head);
  assert_int_equal(weft__runq_steal_of(h), 0);
  assert_int_equal(weft__runq_real_of(h), 3);

  /* Pushes fill up to STEAL + CAP, not REAL + CAP. */
  for (i = 10; i < CAP; i++)
    push_ok(&ring_a, i);
  assert_int_equal(weft__runq_len(&ring_a), CAP - 3);
  assert_int_equal(weft__runq_try_push_owner(&ring_a, rec(CAP)), 0);
  /* Overflow while the thief is active: only the new task moves. */
  {
    const uint64_t want[1] = {CAP};

    assert_int_equal(weft__runq_push_overflow(&ring_a, rec(CAP), &inject), 0);
    inject_expect(want, 1);
  }
  h = atomic_load(&ring_a.head);
  assert_int_equal(weft__runq_steal_of(h), 0);
  assert_int_equal(weft__runq_real_of(h), 3);
  assert_int_equal(weft__runq_len(&ring_a), CAP - 3);
  /* The claimed slots were not overwritten. */
  assert_ptr_equal(ring_a.buf[0], rec(0));
  assert_ptr_equal(ring_a.buf[1], rec(1));

  /* The thief finishes: STEAL catches up with REAL; room again. */
  set_indices(&ring_a, 3, 3, CAP);
  push_ok(&ring_a, CAP);
  assert_int_equal(weft__runq_len(&ring_a), CAP - 2);
  assert_non_null(weft__runq_steal_into(&ring_a, &ring_b, &moved));
  assert_int_equal(moved, HALF - 1);
  assert_no_steal_in_progress(&ring_a);
}

/* The worker's push (worker.c ring_push): try the ring, else overflow,
 * until one of them takes the task. Returns the number of rounds, or -1 if
 * it had not ended after `cap` rounds (the loop once spun here). */
static int push_like_worker(weft__runq_t *q, weft_task_t *t, int cap) {
  int rounds;

  for (rounds = 1; rounds <= cap; rounds++) {
    if (weft__runq_try_push_owner(q, t) ||
        weft__runq_push_overflow(q, t, &inject) == 0)
      return rounds;
  }
  return -1;
}

/* Issue 11: a full ring whose thief has claimed slots and not finished
 * copying them out (preempted, say) used to make the owner's push spin
 * until the thief came back. Now the push ends at once, the new task in the
 * inject queue, and the claimed slots stay as they are for the thief. */
static void test_overflow_while_stealing(void **state) {
  const uint64_t want[1] = {CAP + 7};
  uint64_t h;
  uint32_t i;

  (void)state;
  for (i = 0; i < CAP; i++)
    push_ok(&ring_a, i);
  /* A thief claimed the oldest half and has not released it. */
  set_indices(&ring_a, 0, HALF, CAP);
  assert_int_equal(push_like_worker(&ring_a, rec(CAP + 7), 1000), 1);
  inject_expect(want, 1);
  h = atomic_load(&ring_a.head);
  assert_int_equal(weft__runq_steal_of(h), 0);
  assert_int_equal(weft__runq_real_of(h), HALF);
  assert_int_equal(atomic_load(&ring_a.tail), CAP);
  for (i = 0; i < HALF; i++)
    assert_ptr_equal(ring_a.buf[i], rec(i));
  /* The owner keeps going: it pops past the claim (which frees no slot
   * while the claim lasts) and overflows again without waiting. */
  pop_expect(&ring_a, HALF);
  {
    const uint64_t want2[1] = {CAP + 8};

    assert_int_equal(push_like_worker(&ring_a, rec(CAP + 8), 1000), 1);
    inject_expect(want2, 1);
  }
  /* The thief finishes: STEAL catches up with REAL, and there is room. */
  set_indices(&ring_a, HALF + 1, HALF + 1, CAP);
  assert_int_equal(push_like_worker(&ring_a, rec(CAP + 9), 1000), 1);
  assert_true(weft__inject_is_empty(&inject));
  for (i = HALF + 1; i < CAP; i++)
    pop_expect(&ring_a, i);
  pop_expect(&ring_a, CAP + 9);
  pop_expect_empty(&ring_a);
}

/* ---- index wrap-around against a model -------------------------------- */

/* Random pushes (with overflow), pops and steals on ring_a, checked
 * against the model after every operation. ring_b is the thief's ring and
 * is drained after each steal. */
static void run_model(uint64_t ops, uint64_t seed) {
  static model_t m;
  uint64_t rng = seed, next = 0, op;
  uint64_t want[HALF + 1];
  uint32_t moved;
  size_t i;

  m.head = m.tail = 0;
  for (op = 0; op < ops; op++) {
    uint64_t r = harness_rand_range(&rng, 0, 99);

    if (r < 55) {
      /* A burst of pushes, overflowing when full. */
      uint64_t n = harness_rand_range(&rng, 1, CAP / 4 + 1);
      while (n--) {
        weft_task_t *t = rec(next);
        if (weft__runq_try_push_owner(&ring_a, t)) {
          assert_true(model_len(&m) < CAP);
          model_push(&m, next);
        } else {
          assert_int_equal(model_len(&m), CAP);
          assert_int_equal(weft__runq_push_overflow(&ring_a, t, &inject), 0);
          for (i = 0; i < HALF; i++)
            want[i] = model_pop(&m);
          want[HALF] = next;
          inject_expect(want, HALF + 1);
        }
        next++;
      }
    } else if (r < 90) {
      uint64_t n = harness_rand_range(&rng, 1, CAP / 4 + 1);
      while (n--) {
        weft_task_t *t = weft__runq_pop_owner(&ring_a);
        if (model_len(&m) == 0) {
          assert_null(t);
          break;
        }
        assert_int_equal(rec_index(t), (long)(model_pop(&m) % NRECS));
      }
    } else {
      size_t len = model_len(&m), take = len - len / 2;
      weft_task_t *t = weft__runq_steal_into(&ring_a, &ring_b, &moved);

      assert_int_equal(moved, take);
      if (take == 0) {
        assert_null(t);
      } else {
        assert_int_equal(rec_index(t), (long)(model_at(&m, take - 1) % NRECS));
        for (i = 0; i + 1 < take; i++)
          pop_expect(&ring_b, model_at(&m, i));
        for (i = 0; i < take; i++)
          (void)model_pop(&m);
      }
      pop_expect_empty(&ring_b);
    }
    assert_int_equal(weft__runq_len(&ring_a), model_len(&m));
    assert_no_steal_in_progress(&ring_a);
  }
  while (model_len(&m))
    pop_expect(&ring_a, model_pop(&m));
  pop_expect_empty(&ring_a);
}

/* Many laps of the ring: the slot index wraps thousands of times. */
static void test_wrap_ring(void **state) {
  uint32_t tail0, tail1;

  (void)state;
  tail0 = atomic_load(&ring_a.tail);
  run_model(200000, 1);
  tail1 = atomic_load(&ring_a.tail);
  /* The ring went round many times. */
  assert_true((uint32_t)(tail1 - tail0) > 1000u * CAP);
}

/* 32-bit wrap of the indices themselves, in every operation. */
static void test_wrap_u32(void **state) {
  const uint32_t start = UINT32_MAX - 5;
  uint32_t moved, i;
  uint64_t want[HALF + 1];
  uint64_t h;

  (void)state;
  /* Fill across the wrap, check full, overflow across it. */
  set_indices(&ring_a, start, start, start);
  for (i = 0; i < CAP; i++)
    push_ok(&ring_a, i);
  assert_int_equal(weft__runq_len(&ring_a), CAP);
  assert_int_equal(weft__runq_try_push_owner(&ring_a, rec(CAP)), 0);
  assert_int_equal(weft__runq_push_overflow(&ring_a, rec(CAP), &inject), 0);
  for (i = 0; i < HALF; i++)
    want[i] = i;
  want[HALF] = CAP;
  inject_expect(want, HALF + 1);
  h = atomic_load(&ring_a.head);
  assert_int_equal(weft__runq_real_of(h), (uint32_t)(start + HALF));
  for (i = HALF; i < CAP; i++)
    pop_expect(&ring_a, i);
  pop_expect_empty(&ring_a);

  /* Steal a range that straddles the wrap, into a ring that wraps too. */
  set_indices(&ring_a, start, start, start);
  set_indices(&ring_b, UINT32_MAX - 1, UINT32_MAX - 1, UINT32_MAX - 1);
  for (i = 0; i < 20; i++)
    push_ok(&ring_a, i);
  assert_int_equal(rec_index(weft__runq_steal_into(&ring_a, &ring_b, &moved)),
                   9);
  assert_int_equal(moved, 10);
  assert_int_equal(weft__runq_len(&ring_b), 9);
  for (i = 0; i < 9; i++)
    pop_expect(&ring_b, i);
  pop_expect_empty(&ring_b);
  for (i = 10; i < 20; i++)
    pop_expect(&ring_a, i);
  pop_expect_empty(&ring_a);

  /* Random operations starting just below the wrap. */
  set_indices(&ring_a, start, start, start);
  set_indices(&ring_b, start - 100, start - 100, start - 100);
  run_model(20000, 2);
}

/* ---- concurrent: one owner, several thieves --------------------------- */

#define CONC_TASKS HARNESS_SIZE(400000, 100000, 200000)
#define CONC_THIEVES 3
#define CONC_ROUNDS HARNESS_SIZE(10, 4, 3)

typedef struct conc {
  weft__runq_t owner_q;              /* the victim ring */
  weft__runq_t thief_q[CONC_THIEVES]; /* each thief's own ring */
  weft_task_t *tasks;                /* CONC_TASKS records */
  atomic_int *taken;                 /* times each task was taken */
  atomic_long total;                 /* tasks taken so far */
  atomic_long steals;                /* successful steals */
  atomic_long cross_steals;          /* steals from another thief */
  atomic_long overflows;             /* overflow batches */
} conc_t;

static conc_t conc;

/* A little work per task, so that stolen batches stay queued long enough
 * for other thieves to steal from them. */
static void conc_work(void) {
  volatile unsigned x = 0;
  unsigned k;

  for (k = 0; k < 64; k++)
    x += k;
  (void)x;
}

static void conc_take(weft_task_t *t) {
  long i = (long)(t - conc.tasks);

  conc_work();

  CHECK(i >= 0 && i < CONC_TASKS);
  if (i < 0 || i >= CONC_TASKS)
    return;
  CHECK_EQ(atomic_fetch_add(&conc.taken[i], 1), 0);
  atomic_fetch_add(&conc.total, 1);
}

static int conc_finished(void) {
  return atomic_load(&conc.total) >= CONC_TASKS;
}

/* Drain some of the inject queue, as a worker does every few ticks. */
static int conc_drain_inject(size_t max) {
  size_t n = 0;
  weft_task_t *t = weft__inject_pop_batch(&inject, max, &n);
  int k = 0;

  while (t) {
    weft_task_t *next = t->next;
    conc_take(t);
    t = next;
    k++;
  }
  CHECK_EQ(k, n);
  return k;
}

static void *conc_owner(void *arg) {
  uint64_t rng = 42;
  long i = 0;

  (void)arg;
  while (i < CONC_TASKS) {
    /* Mostly short bursts; sometimes long ones that overflow the ring. */
    long burst = (long)harness_rand_range(&rng, 1, 48);
    long pops;

    if (harness_rand_range(&rng, 0, 15) == 0)
      burst = (long)harness_rand_range(&rng, CAP / 2, 2 * CAP);
    while (burst-- > 0 && i < CONC_TASKS) {
      weft_task_t *t = &conc.tasks[i++];
      conc_work(); /* "running" the task that spawns it */
      while (!weft__runq_try_push_owner(&conc.owner_q, t)) {
        if (weft__runq_push_overflow(&conc.owner_q, t, &inject) == 0) {
          atomic_fetch_add(&conc.overflows, 1);
          break;
        }
      }
    }
    pops = (long)harness_rand_range(&rng, 0, 40);
    while (pops-- > 0) {
      weft_task_t *t = weft__runq_pop_owner(&conc.owner_q);
      if (!t)
        break;
      conc_take(t);
    }
    if (harness_rand_range(&rng, 0, 60) == 0)
      (void)conc_drain_inject(16);
    /* Two cores for four threads: give the thieves their turn. */
    if (harness_rand_range(&rng, 0, 31) == 0)
      sched_yield();
  }
  while (!conc_finished()) {
    weft_task_t *t = weft__runq_pop_owner(&conc.owner_q);
    if (t)
      conc_take(t);
    else if (conc_drain_inject(64) == 0)
      sched_yield();
  }
  return NULL;
}

static void *conc_thief(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  weft__runq_t *mine = &conc.thief_q[me];
  uint64_t rng = 1000 + me;

  while (!conc_finished()) {
    weft_task_t *t = weft__runq_pop_owner(mine);
    uint32_t moved = 0;
    unsigned victim;

    if (t) {
      conc_take(t);
      continue;
    }
    /* Out of local work: usually the owner, sometimes another thief. */
    victim = (unsigned)harness_rand_range(&rng, 0, CONC_THIEVES + 1);
    if (victim >= CONC_THIEVES || victim == me) {
      t = weft__runq_steal_into(&conc.owner_q, mine, &moved);
    } else {
      t = weft__runq_steal_into(&conc.thief_q[victim], mine, &moved);
      if (t)
        atomic_fetch_add(&conc.cross_steals, 1);
    }
    if (t) {
      CHECK(moved >= 1 && moved <= HALF);
      atomic_fetch_add(&conc.steals, 1);
      conc_take(t);
    } else {
      CHECK_EQ(moved, 0);
      sched_yield();
    }
  }
  return NULL;
}

static void test_concurrent(void **state) {
  pthread_t owner, thieves[CONC_THIEVES];
  long steals = 0, cross = 0, overflows = 0;
  unsigned k;
  int round;
  long i;

  (void)state;
  harness_reset();
  conc.tasks = aligned_alloc(64, sizeof(weft_task_t) * CONC_TASKS);
  conc.taken = calloc(CONC_TASKS, sizeof(atomic_int));
  assert_non_null(conc.tasks);
  assert_non_null(conc.taken);
  for (round = 0; round < CONC_ROUNDS; round++) {
    weft__runq_init(&conc.owner_q);
    for (k = 0; k < CONC_THIEVES; k++)
      weft__runq_init(&conc.thief_q[k]);
    for (i = 0; i < CONC_TASKS; i++)
      atomic_init(&conc.taken[i], 0);
    atomic_init(&conc.total, 0);
    atomic_init(&conc.steals, 0);
    atomic_init(&conc.cross_steals, 0);
    atomic_init(&conc.overflows, 0);

    for (k = 0; k < CONC_THIEVES; k++)
      assert_int_equal(pthread_create(&thieves[k], NULL, conc_thief,
                                      (void *)(uintptr_t)k),
                       0);
    assert_int_equal(pthread_create(&owner, NULL, conc_owner, NULL), 0);
    assert_int_equal(pthread_join(owner, NULL), 0);
    for (k = 0; k < CONC_THIEVES; k++)
      assert_int_equal(pthread_join(thieves[k], NULL), 0);
    harness_assert_clean();

    assert_int_equal(atomic_load(&conc.total), CONC_TASKS);
    for (i = 0; i < CONC_TASKS; i++)
      if (atomic_load(&conc.taken[i]) != 1)
        fail_msg("round %d: task %ld taken %d times", round, i,
                 atomic_load(&conc.taken[i]));
    assert_true(weft__runq_is_empty(&conc.owner_q));
    for (k = 0; k < CONC_THIEVES; k++)
      assert_true(weft__runq_is_empty(&conc.thief_q[k]));
    assert_true(weft__inject_is_empty(&inject));
    steals += atomic_load(&conc.steals);
    cross += atomic_load(&conc.cross_steals);
    overflows += atomic_load(&conc.overflows);
  }
  /* The test exercised what it is about. */
  assert_true(steals > 0);
  print_message("unit_runq: %d x %ld tasks, %ld steals (%ld from thieves), "
                "%ld overflow batches\n",
                CONC_ROUNDS, (long)CONC_TASKS, steals, cross, overflows);
  free(conc.tasks);
  free(conc.taken);
}

/* ---- the wakeups counter: several writers ----------------------------- */

/* weft__count is owner-only (a relaxed load and store); the wakeups counter
 * is counted by every thread that wakes the worker, so it uses
 * weft__count_shared (issue 11). Several threads counting at once lose no
 * increment. */
#define COUNT_THREADS 4
#define COUNT_EACH HARNESS_SIZE(1000000, 100000, 200000)

static weft__worker_t count_worker;
static atomic_int count_ready;

static void *count_thread(void *arg) {
  long i;

  (void)arg;
  /* Start together, so that the increments overlap. */
  atomic_fetch_add(&count_ready, 1);
  while (atomic_load(&count_ready) < COUNT_THREADS)
    sched_yield();
  for (i = 0; i < COUNT_EACH; i++)
    weft__count_shared(&count_worker, WEFT__C_WAKEUPS);
  return NULL;
}

static void test_shared_counter(void **state) {
  pthread_t th[COUNT_THREADS];
  unsigned k;

  (void)state;
  for (k = 0; k < COUNT_THREADS; k++)
    assert_int_equal(pthread_create(&th[k], NULL, count_thread, NULL), 0);
  for (k = 0; k < COUNT_THREADS; k++)
    assert_int_equal(pthread_join(th[k], NULL), 0);
  assert_int_equal(atomic_load(&count_worker.remote.stats.v[WEFT__C_WAKEUPS]),
                   (uint64_t)COUNT_THREADS * COUNT_EACH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
      cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
      cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_steal_half, setup, teardown),
      cmocka_unit_test_setup_teardown(test_steal_dst_full, setup, teardown),
      cmocka_unit_test_setup_teardown(test_steal_in_progress, setup, teardown),
      cmocka_unit_test_setup_teardown(test_overflow_while_stealing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_wrap_ring, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrap_u32, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
      cmocka_unit_test(test_shared_counter),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
