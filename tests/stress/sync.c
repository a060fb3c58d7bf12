/*
 * stress_sync: the synchronisation primitives under contention from tasks on
 * all workers, with cancellations. Invariants:
 *
 *  1. Lock: mutual exclusion. A plain (non-atomic) counter incremented in
 *     the critical section ends at the number of successful acquisitions,
 *     and an in-critical-section flag is never found set on entry. Some
 *     holders suspend inside the critical section; some acquirers use
 *     try_acquire; victims blocked in acquire are cancelled all along, and a
 *     victim that got the lock anyway holds it (it releases without error).
 *  2. Semaphore: permits are conserved. At most K tasks hold a permit at any
 *     time, victims are cancelled while waiting, and the value is K again at
 *     the end.
 *  3. Queue: 4 producers and 4 consumers on a bounded queue; every item is
 *     received exactly once; the consumers stop at the shutdown.
 *  4. Barrier: every cycle hands out each index 0..parties-1 exactly once.
 *  5. Condition + Event: a counter guarded by a lock and its condition
 *     reaches its target, and an event releases every task waiting for it.
 */
#include "harness.h"

#define WORKERS 4

/* ---- 1. Lock ---------------------------------------------------------------- */

#define LOCK_TASKS 16
#define LOCK_ITERS HARNESS_SIZE(20000, 1500, 5000)
#define LOCK_VICTIMS 8

typedef struct lock_stress {
  weft_lock_t l;
  long counter;          /* guarded by l, deliberately not atomic */
  int in_cs;             /* guarded by l: 1 inside the critical section */
  atomic_long acquired;  /* successful acquisitions */
  atomic_long victim_got;
  atomic_long victim_cancelled;
  atomic_int stop;
} lock_stress_t;

static lock_stress_t LS;

static void critical_section(int suspend) {
  CHECK_EQ(LS.in_cs, 0);
  LS.in_cs = 1;
  LS.counter++;
  if (suspend)
    CHECK_OK(weft_yield());
  CHECK_EQ(LS.in_cs, 1);
  LS.in_cs = 0;
  atomic_fetch_add(&LS.acquired, 1);
}

static void *lock_worker(void *arg) {
  uint64_t seed = (uintptr_t)arg;
  int i;

  for (i = 0; i < LOCK_ITERS; i++) {
    uint64_t r = harness_rand(&seed);
    if (r % 8 == 0) {
      if (weft_lock_try_acquire(&LS.l) != 0)
        continue;
    } else {
      CHECK_OK(weft_lock_acquire(&LS.l));
    }
    critical_section(r % 16 == 1);
    CHECK_OK(weft_lock_release(&LS.l));
  }
  return NULL;
}

static void *lock_victim(void *arg) {
  (void)arg;
  while (!atomic_load(&LS.stop)) {
    int rc = weft_lock_acquire(&LS.l);
    if (rc == WEFT_ECANCELED) {
      atomic_fetch_add(&LS.victim_cancelled, 1);
      continue;
    }
    CHECK_OK(rc);
    critical_section(0);
    atomic_fetch_add(&LS.victim_got, 1);
    /* Holding it even if a cancellation raced the grant. */
    CHECK_OK(weft_lock_release(&LS.l));
  }
  return NULL;
}

static void *lock_main(void *arg) {
  weft_task_t *w[LOCK_TASKS], *v[LOCK_VICTIMS];
  uint64_t seed = 42;
  int i;

  (void)arg;
  memset(&LS, 0, sizeof LS);
  CHECK_OK(weft_lock_init(&LS.l));
  for (i = 0; i < LOCK_TASKS; i++)
    CHECK_OK(weft_spawn(lock_worker, (void *)(uintptr_t)(i + 1), &w[i]));
  for (i = 0; i < LOCK_VICTIMS; i++)
    CHECK_OK(weft_spawn(lock_victim, NULL, &v[i]));
  /* Cancel victims at random moments while the workers run. */
  for (i = 0; i < 4000 / HARNESS_SLOWDOWN; i++) {
    weft_task_cancel(v[harness_rand(&seed) % LOCK_VICTIMS]);
    CHECK_OK(weft_yield());
    if (weft_task_done(w[0]) && weft_task_done(w[LOCK_TASKS - 1]))
      break;
  }
  CHECK_OK(weft_gather(w, LOCK_TASKS, NULL));
  atomic_store(&LS.stop, 1);
  weft_gather_all(v, LOCK_VICTIMS, NULL, NULL);
  for (i = 0; i < LOCK_TASKS; i++)
    weft_task_unref(w[i]);
  for (i = 0; i < LOCK_VICTIMS; i++)
    weft_task_unref(v[i]);
  CHECK_OK(weft_lock_acquire(&LS.l));
  CHECK_EQ(LS.counter, atomic_load(&LS.acquired));
  CHECK_OK(weft_lock_release(&LS.l));
  CHECK_EQ(weft_lock_locked(&LS.l), 0);
  CHECK_OK(weft_lock_destroy(&LS.l));
  fprintf(stderr,
          "lock: %ld critical sections, victims got %ld, cancelled %ld\n",
          LS.counter, atomic_load(&LS.victim_got),
          atomic_load(&LS.victim_cancelled));
  return NULL;
}

static void test_lock(void **state) {
  (void)state;
  run_in_weft(lock_main, NULL, WORKERS);
}

/* ---- 2. Semaphore ------------------------------------------------------------ */

#define SEM_PERMITS 3
#define SEM_TASKS 12
#define SEM_ITERS HARNESS_SIZE(10000, 1000, 3000)
#define SEM_VICTIMS 6

typedef struct sem_stress {
  weft_semaphore_t s;
  atomic_int holders;
  atomic_int max_holders;
  atomic_int stop;
} sem_stress_t;

static sem_stress_t SS;

static void hold_permit(int suspend) {
  int h = atomic_fetch_add(&SS.holders, 1) + 1;
  int m = atomic_load(&SS.max_holders);

  CHECK_LE(h, SEM_PERMITS);
  while (h > m && !atomic_compare_exchange_weak(&SS.max_holders, &m, h)) {
  }
  if (suspend)
    CHECK_OK(weft_yield());
  atomic_fetch_sub(&SS.holders, 1);
}

static void *sem_worker(void *arg) {
  uint64_t seed = (uintptr_t)arg;
  int i;

  for (i = 0; i < SEM_ITERS; i++) {
    uint64_t r = harness_rand(&seed);
    if (r % 8 == 0) {
      if (weft_semaphore_try_acquire(&SS.s) != 0)
        continue;
    } else {
      CHECK_OK(weft_semaphore_acquire(&SS.s));
    }
    hold_permit(r % 4 == 1);
    CHECK_OK(weft_semaphore_release(&SS.s));
  }
  return NULL;
}

static void *sem_victim(void *arg) {
  (void)arg;
  while (!atomic_load(&SS.stop)) {
    int rc = weft_semaphore_acquire(&SS.s);
    if (rc == WEFT_ECANCELED)
      continue;
    CHECK_OK(rc);
    hold_permit(0);
    CHECK_OK(weft_semaphore_release(&SS.s));
  }
  return NULL;
}

static void *sem_main(void *arg) {
  weft_task_t *w[SEM_TASKS], *v[SEM_VICTIMS];
  uint64_t seed = 7;
  int i;

  (void)arg;
  memset(&SS, 0, sizeof SS);
  CHECK_OK(weft_bounded_semaphore_init(&SS.s, SEM_PERMITS));
  for (i = 0; i < SEM_TASKS; i++)
    CHECK_OK(weft_spawn(sem_worker, (void *)(uintptr_t)(i + 1), &w[i]));
  for (i = 0; i < SEM_VICTIMS; i++)
    CHECK_OK(weft_spawn(sem_victim, NULL, &v[i]));
  for (i = 0; i < 4000 / HARNESS_SLOWDOWN; i++) {
    weft_task_cancel(v[harness_rand(&seed) % SEM_VICTIMS]);
    CHECK_OK(weft_yield());
  }
  CHECK_OK(weft_gather(w, SEM_TASKS, NULL));
  atomic_store(&SS.stop, 1);
  weft_gather_all(v, SEM_VICTIMS, NULL, NULL);
  for (i = 0; i < SEM_TASKS; i++)
    weft_task_unref(w[i]);
  for (i = 0; i < SEM_VICTIMS; i++)
    weft_task_unref(v[i]);
  CHECK_EQ(atomic_load(&SS.holders), 0);
  CHECK_EQ(weft_semaphore_value(&SS.s), SEM_PERMITS);
  CHECK_RC(weft_semaphore_release(&SS.s), WEFT_EOVERFLOW);
  CHECK_OK(weft_semaphore_destroy(&SS.s));
  fprintf(stderr, "semaphore: at most %d holders of %d permits\n",
          atomic_load(&SS.max_holders), SEM_PERMITS);
  return NULL;
}

static void test_semaphore(void **state) {
  (void)state;
  run_in_weft(sem_main, NULL, WORKERS);
}

/* ---- 3. Queue: 4 producers, 4 consumers ------------------------------------- */

#define Q_PRODUCERS 4
#define Q_CONSUMERS 4
#define Q_PER_PRODUCER HARNESS_SIZE(250000, 5000, 20000)
#define Q_ITEMS (Q_PRODUCERS * Q_PER_PRODUCER)

typedef struct queue_stress {
  weft_queue_t *q;
  atomic_uchar seen[Q_ITEMS];
  atomic_long received;
} queue_stress_t;

static queue_stress_t QS;

static void *q_producer(void *arg) {
  uintptr_t base = (uintptr_t)arg * Q_PER_PRODUCER;
  uintptr_t i;

  for (i = 0; i < Q_PER_PRODUCER; i++)
    CHECK_OK(weft_queue_put(QS.q, (void *)(base + i + 1)));
  return NULL;
}

static void *q_consumer(void *arg) {
  void *item;
  long n = 0;
  int rc;

  (void)arg;
  while ((rc = weft_queue_get(QS.q, &item)) == 0) {
    uintptr_t id = (uintptr_t)item - 1;
    CHECK(id < Q_ITEMS);
    if (id < Q_ITEMS)
      CHECK_EQ(atomic_fetch_add(&QS.seen[id], 1), 0);
    n++;
  }
  CHECK_RC(rc, WEFT_EQUEUE_SHUTDOWN);
  atomic_fetch_add(&QS.received, n);
  return NULL;
}

static void *queue_main(void *arg) {
  weft_task_t *p[Q_PRODUCERS], *c[Q_CONSUMERS];
  long i;

  (void)arg;
  CHECK_OK(weft_queue_new(64, &QS.q));
  for (i = 0; i < Q_CONSUMERS; i++)
    CHECK_OK(weft_spawn(q_consumer, NULL, &c[i]));
  for (i = 0; i < Q_PRODUCERS; i++)
    CHECK_OK(weft_spawn(q_producer, (void *)(uintptr_t)i, &p[i]));
  CHECK_OK(weft_gather(p, Q_PRODUCERS, NULL));
  CHECK_OK(weft_queue_shutdown(QS.q, 0)); /* consumers drain, then stop */
  CHECK_OK(weft_gather(c, Q_CONSUMERS, NULL));
  for (i = 0; i < Q_PRODUCERS; i++)
    weft_task_unref(p[i]);
  for (i = 0; i < Q_CONSUMERS; i++)
    weft_task_unref(c[i]);
  CHECK_EQ(atomic_load(&QS.received), Q_ITEMS);
  for (i = 0; i < Q_ITEMS; i++)
    if (atomic_load(&QS.seen[i]) != 1) {
      CHECK_EQ(atomic_load(&QS.seen[i]), 1);
      break;
    }
  CHECK_OK(weft_queue_free(QS.q));
  return NULL;
}

static void test_queue_mpmc(void **state) {
  (void)state;
  memset(&QS, 0, sizeof QS);
  run_in_weft(queue_main, NULL, WORKERS);
}

/* ---- 4. Barrier ---------------------------------------------------------------- */

#define B_PARTIES 8
#define B_CYCLES HARNESS_SIZE(20000, 300, 1000)

typedef struct barrier_stress {
  weft_barrier_t b;
  atomic_uint seen[B_CYCLES];
} barrier_stress_t;

static barrier_stress_t BS;

static void *b_party(void *arg) {
  int k, idx;

  (void)arg;
  for (k = 0; k < B_CYCLES; k++) {
    idx = weft_barrier_wait(&BS.b);
    CHECK(idx >= 0 && idx < B_PARTIES);
    if (idx < 0 || idx >= B_PARTIES)
      return NULL;
    CHECK_EQ(atomic_fetch_or(&BS.seen[k], 1u << idx) & (1u << idx), 0);
  }
  return NULL;
}

static void *barrier_main(void *arg) {
  weft_task_t *t[B_PARTIES];
  int i;

  (void)arg;
  CHECK_OK(weft_barrier_init(&BS.b, B_PARTIES));
  for (i = 0; i < B_PARTIES; i++)
    CHECK_OK(weft_spawn(b_party, NULL, &t[i]));
  CHECK_OK(weft_gather(t, B_PARTIES, NULL));
  for (i = 0; i < B_PARTIES; i++)
    weft_task_unref(t[i]);
  for (i = 0; i < B_CYCLES; i++)
    if (atomic_load(&BS.seen[i]) != (1u << B_PARTIES) - 1) {
      CHECK_EQ(atomic_load(&BS.seen[i]), (1u << B_PARTIES) - 1);
      break;
    }
  CHECK_OK(weft_barrier_destroy(&BS.b));
  return NULL;
}

static void test_barrier(void **state) {
  (void)state;
  memset(&BS, 0, sizeof BS);
  run_in_weft(barrier_main, NULL, WORKERS);
}

/* ---- 5. Condition and Event ---------------------------------------------------- */

#define CE_TASKS 16
#define CE_INCS HARNESS_SIZE(2000, 200, 500)

typedef struct ce_stress {
  weft_lock_t l;
  weft_cond_t c;
  weft_event_t go;
  long value; /* guarded by l */
  long turn;  /* guarded by l: which task increments next */
} ce_stress_t;

static ce_stress_t CE;

typedef struct ce_arg {
  long me;
} ce_arg_t;

static ce_arg_t ce_args[CE_TASKS];

static int my_turn(void *arg) {
  ce_arg_t *a = arg;
  return CE.turn == a->me;
}

/* The tasks increment value in strict round-robin order, each waiting for
 * its turn on the condition: every notify_all must reach the right task. */
static void *ce_task(void *arg) {
  ce_arg_t *a = arg;
  int i;

  CHECK_OK(weft_event_wait(&CE.go));
  for (i = 0; i < CE_INCS; i++) {
    CHECK_OK(weft_lock_acquire(&CE.l));
    CHECK_OK(weft_cond_wait_for(&CE.c, my_turn, a));
    CE.value++;
    CE.turn = (CE.turn + 1) % CE_TASKS;
    CHECK(weft_cond_notify_all(&CE.c) >= 0);
    CHECK_OK(weft_lock_release(&CE.l));
  }
  return NULL;
}

static void *ce_main(void *arg) {
  weft_task_t *t[CE_TASKS];
  int i;

  (void)arg;
  memset(&CE, 0, sizeof CE);
  CHECK_OK(weft_lock_init(&CE.l));
  CHECK_OK(weft_cond_init(&CE.c, &CE.l));
  CHECK_OK(weft_event_init(&CE.go));
  for (i = 0; i < CE_TASKS; i++) {
    ce_args[i].me = i;
    CHECK_OK(weft_spawn(ce_task, &ce_args[i], &t[i]));
  }
  CHECK_OK(weft_sleep(5));
  CHECK_OK(weft_event_set(&CE.go));
  CHECK_OK(weft_gather(t, CE_TASKS, NULL));
  for (i = 0; i < CE_TASKS; i++)
    weft_task_unref(t[i]);
  CHECK_EQ(CE.value, (long)CE_TASKS * CE_INCS);
  CHECK_OK(weft_cond_destroy(&CE.c));
  CHECK_OK(weft_lock_destroy(&CE.l));
  CHECK_OK(weft_event_destroy(&CE.go));
  return NULL;
}

static void test_cond_event(void **state) {
  (void)state;
  run_in_weft(ce_main, NULL, WORKERS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lock),
      cmocka_unit_test(test_semaphore),
      cmocka_unit_test(test_queue_mpmc),
      cmocka_unit_test(test_barrier),
      cmocka_unit_test(test_cond_event),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
