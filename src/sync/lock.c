/*
 * weft_lock: asyncio.Lock, owned by a task, FIFO-fair, safe across workers.
 *
 * Protocol. One state word: UNLOCKED, LOCKED (held, nobody waits) or
 * CONTENDED (held, and the wait queue may be non-empty). A spinlock guards
 * only the wait queue and the transitions out of CONTENDED.
 *  1. Uncontended acquire: one CAS UNLOCKED -> LOCKED; uncontended release:
 *     one CAS LOCKED -> UNLOCKED. No spinlock, no system call.
 *  2. Contended acquire, under the spinlock: UNLOCKED -> LOCKED (the holder
 *     left meanwhile: take it), or LOCKED -> CONTENDED and link a waiter, or
 *     link behind the others when already CONTENDED. Then weft__wait().
 *  3. A release that finds CONTENDED takes the spinlock and hands the lock to
 *     the oldest waiter: it makes that task the owner and claims its waiter
 *     (wait.c handshake); the state stays CONTENDED, or becomes LOCKED if the
 *     queue is now empty. The lock is never UNLOCKED while a waiter exists,
 *     so the fast CAS of step 1 cannot barge past the queue: strict FIFO.
 *  4. The only code that changes a CONTENDED word holds the spinlock (every
 *     CAS outside it expects UNLOCKED or LOCKED), so under the spinlock a
 *     CONTENDED word may be overwritten with a plain store.
 *  5. A waiter cancelled before it was claimed has unlinked itself
 *     (weft__wait); if the queue became empty it turns CONTENDED back into
 *     LOCKED under the spinlock, so the next release is uncontended again. A
 *     release that ran in between, found the queue empty and stored UNLOCKED,
 *     wins: the waiter changes the word only if it is still CONTENDED.
 *  6. A release passes by a waiter whose task has a cancellation pending
 *     (waitq.h; never an uncancellable one, Condition's re-acquire): it
 *     hands the lock to the oldest other waiter, or, if there is none,
 *     stores UNLOCKED although cancelled waiters may still be linked (they
 *     will take nothing; step 5 then changes nothing). So the lock is never
 *     UNLOCKED while a waiter that may be served is linked. A waiter claimed
 *     before its cancel() returned owns the lock: weft__wait lets the claim
 *     win, the request stays pending, and acquire returns 0.
 *
 * Ownership: `owner` is the holding task. It is written by the acquirer after
 * its CAS, by the releaser when it hands the lock over (before the claim, so
 * the new owner reads it after its acquire of fired == 2), and cleared by the
 * owner before it releases. Relaxed accesses suffice for the release check
 * "am I the owner?": a task reads back its own last write or a later one
 * (coherence), so it sees itself only while it holds the lock.
 */
#include "waitnote.h"
#include "alloc.h"
#include "compiler.h"
#include "list.h"
#include "lock.h"
#include "record.h"
#include "report.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "timer.h"
#include "wait_int.h"
#include "waitq.h"

#include <stdlib.h>

enum { UNLOCKED = 0, LOCKED = 1, CONTENDED = 2 };

typedef struct lock {
  atomic_uint state;              /* UNLOCKED, LOCKED or CONTENDED */
  weft__spinlock_t wq_lock;       /* guards waiters and CONTENDED exits */
  _Atomic(weft_task_t *) owner;   /* holding task or NULL (see above) */
  weft__list_t waiters;           /* weft__waiter_t, FIFO; zero = empty */
} lock_t;

_Static_assert(sizeof(lock_t) <= sizeof(weft_lock_t), "weft_lock_t too small");
_Static_assert(_Alignof(lock_t) <= _Alignof(weft_lock_t),
               "weft_lock_t under-aligned");

static lock_t *impl(const weft_lock_t *l) { return (lock_t *)(uintptr_t)l; }

int weft_lock_init(weft_lock_t *pl) {
  if (!pl)
    return WEFT_EINVAL;
  lock_t *l = impl(pl);
  atomic_init(&l->state, UNLOCKED);
  atomic_init(&l->wq_lock.locked, 0);
  atomic_init(&l->owner, NULL);
  weft__list_init(&l->waiters);
  return 0;
}

int weft_lock_destroy(weft_lock_t *pl) {
  if (!pl)
    return WEFT_EINVAL;
  lock_t *l = impl(pl);
  weft__spin_lock(&l->wq_lock);
  /* relaxed: a snapshot; the caller must own the object's life anyway. */
  int busy = atomic_load_explicit(&l->state, memory_order_relaxed) != UNLOCKED ||
             !weft__waitq_empty(&l->waiters);
  weft__spin_unlock(&l->wq_lock);
  return busy ? WEFT_EBUSY : 0;
}

int weft_lock_new(weft_lock_t **out) {
  if (!out)
    return WEFT_EINVAL;
  weft_lock_t *l = weft__malloc(sizeof(*l));
  if (!l)
    return WEFT_ENOMEM;
  weft_lock_init(l);
  *out = l;
  return 0;
}

int weft_lock_free(weft_lock_t *l) {
  return l ? weft__free_destroyed(l, weft_lock_destroy(l)) : 0;
}

static void set_owner(lock_t *l, weft_task_t *t) {
  /* relaxed: see "Ownership" above. */
  atomic_store_explicit(&l->owner, t, memory_order_relaxed);
}

/* 1 if t holds l. */
int weft__lock_held_by(const weft_lock_t *pl, weft_task_t *t) {
  /* relaxed: see "Ownership" above. */
  return atomic_load_explicit(&impl(pl)->owner, memory_order_relaxed) == t;
}

static int try_fast(lock_t *l) {
  unsigned s = UNLOCKED;
  /* acquire: the critical section sees the previous holder's writes. */
  return atomic_compare_exchange_strong_explicit(
      &l->state, &s, LOCKED, memory_order_acquire, memory_order_relaxed);
}

/* Steps 2, 5 and 6 of the protocol. */
static int acquire_slow(lock_t *l, weft_task_t *self, int uncancellable) {
  weft__waiter_t wt;
  weft__spin_lock(&l->wq_lock);
  weft__waitq_ready(&l->waiters);
  /* relaxed: the CASes below do the ordering. */
  unsigned s = atomic_load_explicit(&l->state, memory_order_relaxed);
  for (;;) {
    if (s == UNLOCKED) {
      /* acquire: as in try_fast. */
      if (atomic_compare_exchange_weak_explicit(&l->state, &s, LOCKED,
                                                memory_order_acquire,
                                                memory_order_relaxed)) {
        weft__spin_unlock(&l->wq_lock);
        set_owner(l, self);
        return 0;
      }
      continue;
    }
    /* relaxed: linking the waiter is ordered by the spinlock, and the
     * hand-over by the waiter handshake. */
    if (s == LOCKED &&
        !atomic_compare_exchange_weak_explicit(&l->state, &s, CONTENDED,
                                               memory_order_relaxed,
                                               memory_order_relaxed))
      continue;
    break;
  }
  weft__waiter_prepare(&wt, self, NULL);
  wt.cancellable = !uncancellable; /* Condition's re-acquire is served */
  weft__list_push_back(&l->waiters, &wt.link);
  weft__spin_unlock(&l->wq_lock);

  weft__wait_note(self, WEFT_WAIT_LOCK, l);
  int rc = weft__wait(&wt, &l->wq_lock, WEFT__NO_DEADLINE, uncancellable);
  if (rc != 0) {
    /* Not claimed, now unlinked: step 5. */
    weft__spin_lock(&l->wq_lock);
    /* relaxed: only spinlock holders change a CONTENDED word (step 4). */
    if (weft__list_empty(&l->waiters) &&
        atomic_load_explicit(&l->state, memory_order_relaxed) == CONTENDED)
      atomic_store_explicit(&l->state, LOCKED, memory_order_relaxed);
    weft__spin_unlock(&l->wq_lock);
  }
  /* On 0 the releaser made us the owner before claiming us. */
  return rc;
}

/* Acquire on behalf of self; uncancellable for Condition's re-acquisition.
 * Returns 0, WEFT_ECANCELED or WEFT_EDEADLK. */
int weft__lock_acquire(weft_lock_t *pl, weft_task_t *self, int uncancellable) {
  lock_t *l = impl(pl);
  if (WEFT__LIKELY(try_fast(l))) {
    set_owner(l, self);
    return 0;
  }
  if (weft__lock_held_by(pl, self))
    return WEFT_EDEADLK;
  return acquire_slow(l, self, uncancellable);
}

int weft_lock_acquire(weft_lock_t *pl) {
  if (!pl)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return weft__report_misuse(NULL, "weft_lock_acquire", WEFT_ENOTTASK,
                               "called outside a task");
  /* Yield now and then before, never while, holding the lock. */
  weft__coop_tick();
  return weft__lock_acquire(pl, self, 0);
}

int weft_lock_try_acquire(weft_lock_t *pl) {
  if (!pl)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
  lock_t *l = impl(pl);
  if (!try_fast(l))
    return WEFT_EBUSY;
  set_owner(l, self);
  return 0;
}

/* Step 3: the word is (or was, a moment ago) CONTENDED. */
static void release_slow(lock_t *l) {
  weft__list_t claimed;
  weft__list_init(&claimed);
  weft__spin_lock(&l->wq_lock);
  weft__waiter_t *w = weft__waitq_first(&l->waiters);
  if (w) {
    set_owner(l, w->task);
    weft__waitq_claim_to(&claimed, w, NULL);
    if (weft__list_empty(&l->waiters))
      /* relaxed: the new owner reads the word after its acquire of
       * fired == 2, which this store precedes. */
      atomic_store_explicit(&l->state, LOCKED, memory_order_relaxed);
  } else {
    /* Every linked waiter is cancelled (step 6), or the last one was and
     * has not fixed the word yet (step 5).
     * release: publishes the critical section to the next acquirer. */
    atomic_store_explicit(&l->state, UNLOCKED, memory_order_release);
  }
  weft__spin_unlock(&l->wq_lock);
  weft__waitq_complete_all(&claimed);
}

/* Release a lock the caller holds. */
void weft__lock_release(weft_lock_t *pl) {
  lock_t *l = impl(pl);
  set_owner(l, NULL);
  unsigned s = LOCKED;
  /* release: publishes the critical section to the next acquirer. */
  if (atomic_compare_exchange_strong_explicit(&l->state, &s, UNLOCKED,
                                              memory_order_release,
                                              memory_order_relaxed))
    return;
  release_slow(l);
}

int weft_lock_release(weft_lock_t *pl) {
  if (!pl)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
  if (!weft__lock_held_by(pl, self))
    return WEFT_EPERM;
  weft__lock_release(pl);
  return 0;
}

int weft_lock_locked(const weft_lock_t *pl) {
  if (!pl)
    return WEFT_EINVAL;
  /* relaxed: a snapshot that may be stale at once anyway. */
  return atomic_load_explicit(&impl(pl)->state, memory_order_relaxed) !=
         UNLOCKED;
}
