/*
 * weft_semaphore: asyncio.Semaphore and BoundedSemaphore, FIFO, safe across
 * workers and from foreign threads.
 *
 * Protocol. One 64-bit state word, (permits << 1) | WAITERS, and a FIFO wait
 * queue under a spinlock. Invariant: WAITERS set => permits == 0.
 *  1. Uncontended acquire: CAS permits -> permits - 1 while WAITERS is clear
 *     and permits > 0. Uncontended release: CAS permits -> permits + 1 while
 *     WAITERS is clear (and the bound allows it). No spinlock, no syscall.
 *  2. Contended acquire, under the spinlock: take a permit if one appeared
 *     meanwhile, else set WAITERS (the word is 0, so it becomes WAITERS) and
 *     link a waiter. Then weft__wait().
 *  3. A release that finds WAITERS takes the spinlock and hands its permit to
 *     the oldest waiter (claimed under the lock, wait.c handshake): permits
 *     stay 0, so nobody who arrives later can take a permit before the
 *     queue is served. If that empties the queue the word becomes 0.
 *  4. Every CAS outside the spinlock expects WAITERS clear, so a word with
 *     WAITERS set is changed only by spinlock holders, with plain stores.
 *  5. A waiter cancelled before it was claimed has unlinked itself
 *     (weft__wait); if the queue became empty and WAITERS is still set it
 *     stores 0. A release that got the spinlock in between found WAITERS set
 *     with an empty queue and stored one permit; then WAITERS is already
 *     clear and the waiter changes nothing. The released permit is never
 *     lost and never given to the cancelled waiter.
 *  6. A release passes by a waiter whose task has a cancellation pending
 *     (waitq.h): the permit goes to the oldest other waiter, or, if there is
 *     none, the word becomes one permit without WAITERS while cancelled
 *     waiters may still be linked (they take nothing; step 5 then changes
 *     nothing). So WAITERS is set whenever a waiter that may be served is
 *     linked. A waiter claimed before its cancel() returned keeps the permit
 *     (weft__wait lets the claim win; the request stays pending).
 *
 * The bound of a BoundedSemaphore is checked by every release, including a
 * hand-over (which is a release immediately followed by an acquire).
 */
#include "waitnote.h"
#include "alloc.h"
#include "compiler.h"
#include "list.h"
#include "record.h"
#include "report.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "timer.h"
#include "wait_int.h"
#include "waitq.h"

#include <stdlib.h>

#define WAITERS ((uint64_t)1)
#define ONE ((uint64_t)2)
/* Most permits an unbounded semaphore counts. */
#define PERMITS_MAX (UINT64_MAX >> 2)

typedef struct sem {
  _Atomic uint64_t state;   /* (permits << 1) | WAITERS */
  int64_t bound;            /* most permits (bounded), or -1 */
  weft__spinlock_t wq_lock; /* guards waiters and words with WAITERS set */
  weft__list_t waiters;     /* weft__waiter_t, FIFO; zero = empty */
} sema_t;

_Static_assert(sizeof(sema_t) <= sizeof(weft_semaphore_t),
               "weft_semaphore_t too small");
_Static_assert(_Alignof(sema_t) <= _Alignof(weft_semaphore_t),
               "weft_semaphore_t under-aligned");
/* The static initialisers set the first two fields. */
_Static_assert(offsetof(sema_t, state) == offsetof(weft_semaphore_t, state_),
               "state offset");
_Static_assert(offsetof(sema_t, bound) == offsetof(weft_semaphore_t, bound_),
               "bound offset");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "atomic size");

static sema_t *impl(const weft_semaphore_t *s) {
  return (sema_t *)(uintptr_t)s;
}

static int init(weft_semaphore_t *ps, unsigned value, int bounded) {
  if (!ps)
    return WEFT_EINVAL;
  sema_t *s = impl(ps);
  atomic_init(&s->state, (uint64_t)value << 1);
  s->bound = bounded ? (int64_t)value : -1;
  atomic_init(&s->wq_lock.locked, 0);
  weft__list_init(&s->waiters);
  return 0;
}

int weft_semaphore_init(weft_semaphore_t *s, unsigned value) {
  return init(s, value, 0);
}

int weft_bounded_semaphore_init(weft_semaphore_t *s, unsigned value) {
  return init(s, value, 1);
}

int weft_semaphore_destroy(weft_semaphore_t *ps) {
  if (!ps)
    return WEFT_EINVAL;
  sema_t *s = impl(ps);
  weft__spin_lock(&s->wq_lock);
  int busy = !weft__waitq_empty(&s->waiters);
  weft__spin_unlock(&s->wq_lock);
  return busy ? WEFT_EBUSY : 0;
}

static int new_sem(unsigned value, int bounded, weft_semaphore_t **out) {
  if (!out)
    return WEFT_EINVAL;
  weft_semaphore_t *s = weft__malloc(sizeof(*s));
  if (!s)
    return WEFT_ENOMEM;
  init(s, value, bounded);
  *out = s;
  return 0;
}

int weft_semaphore_new(unsigned value, weft_semaphore_t **out) {
  return new_sem(value, 0, out);
}

int weft_bounded_semaphore_new(unsigned value, weft_semaphore_t **out) {
  return new_sem(value, 1, out);
}

int weft_semaphore_free(weft_semaphore_t *s) {
  return s ? weft__free_destroyed(s, weft_semaphore_destroy(s)) : 0;
}

/* Step 1 of acquire: 0 if a permit was taken, WEFT_EAGAIN otherwise. */
static int try_fast(sema_t *s) {
  /* relaxed: the CAS does the ordering. */
  uint64_t v = atomic_load_explicit(&s->state, memory_order_relaxed);
  while (!(v & WAITERS) && v >= ONE) {
    /* acquire: the taker sees the releaser's writes. */
    if (atomic_compare_exchange_weak_explicit(&s->state, &v, v - ONE,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return 0;
  }
  return WEFT_EAGAIN;
}

/* Steps 2, 5 and 6. */
static int acquire_slow(sema_t *s, weft_task_t *self) {
  weft__waiter_t wt;
  weft__spin_lock(&s->wq_lock);
  weft__waitq_ready(&s->waiters);
  /* relaxed: the CASes below do the ordering. */
  uint64_t v = atomic_load_explicit(&s->state, memory_order_relaxed);
  for (;;) {
    if (v & WAITERS)
      break;
    if (v >= ONE) {
      /* acquire: as in try_fast. */
      if (atomic_compare_exchange_weak_explicit(&s->state, &v, v - ONE,
                                                memory_order_acquire,
                                                memory_order_relaxed)) {
        weft__spin_unlock(&s->wq_lock);
        return 0;
      }
      continue;
    }
    /* relaxed: the hand-over is ordered by the waiter handshake. */
    if (atomic_compare_exchange_weak_explicit(&s->state, &v, WAITERS,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      break;
  }
  weft__waiter_prepare(&wt, self, NULL);
  weft__list_push_back(&s->waiters, &wt.link);
  weft__spin_unlock(&s->wq_lock);

  weft__wait_note(self, WEFT_WAIT_SEMAPHORE, s);
  int rc = weft__wait(&wt, &s->wq_lock, WEFT__NO_DEADLINE, 0);
  if (rc != 0) {
    weft__spin_lock(&s->wq_lock);
    /* relaxed: only spinlock holders change a word with WAITERS (step 4). */
    if (weft__list_empty(&s->waiters) &&
        atomic_load_explicit(&s->state, memory_order_relaxed) == WAITERS)
      atomic_store_explicit(&s->state, 0, memory_order_relaxed);
    weft__spin_unlock(&s->wq_lock);
  }
  return rc;
}

int weft_semaphore_acquire(weft_semaphore_t *ps) {
  if (!ps)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return weft__report_misuse(NULL, "weft_semaphore_acquire", WEFT_ENOTTASK,
                               "called outside a task");
  weft__coop_tick();
  sema_t *s = impl(ps);
  if (WEFT__LIKELY(try_fast(s) == 0))
    return 0;
  return acquire_slow(s, self);
}

int weft_semaphore_try_acquire(weft_semaphore_t *ps) {
  if (!ps)
    return WEFT_EINVAL;
  return try_fast(impl(ps));
}

/* 1 if one more permit is within the bound when `permits` are counted. */
static int fits(const sema_t *s, uint64_t permits) {
  if (s->bound >= 0)
    return permits < (uint64_t)s->bound;
  return permits < PERMITS_MAX;
}

int weft_semaphore_release(weft_semaphore_t *ps) {
  if (!ps)
    return WEFT_EINVAL;
  sema_t *s = impl(ps);
  /* relaxed: the CAS does the ordering. */
  uint64_t v = atomic_load_explicit(&s->state, memory_order_relaxed);
  for (;;) {
    if (!(v & WAITERS)) {
      if (!fits(s, v >> 1))
        return WEFT_EOVERFLOW;
      /* release: publishes the releaser's writes to the next taker. */
      if (atomic_compare_exchange_weak_explicit(&s->state, &v, v + ONE,
                                                memory_order_release,
                                                memory_order_relaxed))
        return 0;
      continue;
    }
    /* Step 3. */
    weft__list_t claimed;
    weft__list_init(&claimed);
    weft__spin_lock(&s->wq_lock);
    /* relaxed: the spinlock orders it (step 4). */
    v = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (!(v & WAITERS)) { /* the last waiter left meanwhile */
      weft__spin_unlock(&s->wq_lock);
      continue;
    }
    if (!fits(s, 0)) {
      weft__spin_unlock(&s->wq_lock);
      return WEFT_EOVERFLOW;
    }
    weft__waiter_t *w = weft__waitq_first(&s->waiters);
    if (w) {
      weft__waitq_claim_to(&claimed, w, NULL);
      if (weft__list_empty(&s->waiters))
        /* relaxed: the claimed waiter is ordered by the handshake. */
        atomic_store_explicit(&s->state, 0, memory_order_relaxed);
    } else {
      /* Steps 5 and 6: every linked waiter is cancelled, or the last one
       * was and has not cleared WAITERS yet.
       * release: publishes the releaser's writes to the next taker. */
      atomic_store_explicit(&s->state, ONE, memory_order_release);
    }
    weft__spin_unlock(&s->wq_lock);
    weft__waitq_complete_all(&claimed);
    return 0;
  }
}

int weft_semaphore_value(const weft_semaphore_t *ps) {
  if (!ps)
    return WEFT_EINVAL;
  /* relaxed: a snapshot that may be stale at once anyway. */
  uint64_t v = atomic_load_explicit(&impl(ps)->state, memory_order_relaxed);
  uint64_t permits = v >> 1;
  return permits > (uint64_t)INT32_MAX ? INT32_MAX : (int)permits;
}
