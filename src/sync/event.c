/*
 * weft_event: asyncio.Event, safe across workers and from foreign threads.
 *
 * Protocol. A flag word and a FIFO wait queue under a spinlock.
 *  1. wait() reads the flag (acquire); if set it returns at once. Otherwise
 *     it takes the spinlock, re-reads the flag, and links a waiter only while
 *     the flag is still clear, then calls weft__wait().
 *  2. set() takes the spinlock, sets the flag (release) and claims every
 *     linked waiter (wait.c handshake); it completes them after unlocking.
 *     Since waiters link and set() drains under the same lock, no waiter can
 *     link after a set() it missed: it either sees the flag or is drained.
 *  3. clear() only stores 0: waiters claimed by an earlier set() stay woken,
 *     and later wait() calls wait for the next set().
 *  4. A waiter whose task has a cancellation pending is passed by: set()
 *     leaves it linked (waitq.h), and it unlinks itself and returns
 *     WEFT_ECANCELED. One claimed before its cancel() returned returns 0
 *     (weft__wait lets the claim win; the request stays pending).
 */
#include "waitnote.h"
#include "alloc.h"
#include "list.h"
#include "record.h"
#include "report.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "timer.h"
#include "wait_int.h"
#include "waitq.h"

#include <stdlib.h>

typedef struct event {
  atomic_int set;           /* 1 while set */
  weft__spinlock_t wq_lock; /* guards waiters */
  weft__list_t waiters;     /* weft__waiter_t, FIFO; zero = empty */
} event_t;

_Static_assert(sizeof(event_t) <= sizeof(weft_event_t),
               "weft_event_t too small");
_Static_assert(_Alignof(event_t) <= _Alignof(weft_event_t),
               "weft_event_t under-aligned");

static event_t *impl(const weft_event_t *e) {
  return (event_t *)(uintptr_t)e;
}

int weft_event_init(weft_event_t *pe) {
  if (!pe)
    return WEFT_EINVAL;
  event_t *e = impl(pe);
  atomic_init(&e->set, 0);
  atomic_init(&e->wq_lock.locked, 0);
  weft__list_init(&e->waiters);
  return 0;
}

int weft_event_destroy(weft_event_t *pe) {
  if (!pe)
    return WEFT_EINVAL;
  event_t *e = impl(pe);
  weft__spin_lock(&e->wq_lock);
  int busy = !weft__waitq_empty(&e->waiters);
  weft__spin_unlock(&e->wq_lock);
  return busy ? WEFT_EBUSY : 0;
}

int weft_event_new(weft_event_t **out) {
  if (!out)
    return WEFT_EINVAL;
  weft_event_t *e = weft__malloc(sizeof(*e));
  if (!e)
    return WEFT_ENOMEM;
  weft_event_init(e);
  *out = e;
  return 0;
}

int weft_event_free(weft_event_t *e) {
  return e ? weft__free_destroyed(e, weft_event_destroy(e)) : 0;
}

int weft_event_set(weft_event_t *pe) {
  if (!pe)
    return WEFT_EINVAL;
  event_t *e = impl(pe);
  weft__list_t claimed;
  weft__list_init(&claimed);
  weft__spin_lock(&e->wq_lock);
  /* release: a task that reads 1 (wait's fast path, is_set) sees the
   * setter's earlier writes. */
  atomic_store_explicit(&e->set, 1, memory_order_release);
  weft__waitq_claim_n(&e->waiters, &claimed, SIZE_MAX, NULL);
  weft__spin_unlock(&e->wq_lock);
  weft__waitq_complete_all(&claimed);
  return 0;
}

int weft_event_clear(weft_event_t *pe) {
  if (!pe)
    return WEFT_EINVAL;
  /* relaxed: clearing publishes nothing; waiters re-check under the lock. */
  atomic_store_explicit(&impl(pe)->set, 0, memory_order_relaxed);
  return 0;
}

int weft_event_is_set(const weft_event_t *pe) {
  if (!pe)
    return WEFT_EINVAL;
  /* acquire: pairs with set()'s release store. */
  return atomic_load_explicit(&impl(pe)->set, memory_order_acquire);
}

int weft_event_wait(weft_event_t *pe) {
  if (!pe)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return weft__report_misuse(NULL, "weft_event_wait", WEFT_ENOTTASK,
                               "called outside a task");
  event_t *e = impl(pe);
  /* acquire: pairs with set()'s release store. */
  if (atomic_load_explicit(&e->set, memory_order_acquire)) {
    weft__coop_tick();
    return 0;
  }
  weft__waiter_t wt;
  weft__spin_lock(&e->wq_lock);
  /* relaxed: the spinlock orders it against set(). */
  if (atomic_load_explicit(&e->set, memory_order_relaxed)) {
    weft__spin_unlock(&e->wq_lock);
    return 0;
  }
  weft__waitq_ready(&e->waiters);
  weft__waiter_prepare(&wt, self, NULL);
  weft__list_push_back(&e->waiters, &wt.link);
  weft__spin_unlock(&e->wq_lock);
  weft__wait_note(self, WEFT_WAIT_EVENT, e);
  return weft__wait(&wt, &e->wq_lock, WEFT__NO_DEADLINE, 0);
}
