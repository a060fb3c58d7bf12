/*
 * weft_cond: asyncio.Condition bound to a weft_lock, safe across workers.
 *
 * Protocol. A FIFO wait queue under a spinlock; the bound lock orders
 * everything else.
 *  1. wait() checks that the calling task holds the lock, links its waiter
 *     under the spinlock while still holding the lock, and only then
 *     releases the lock. A notify() must hold the lock, so it runs either
 *     before the link (and the waiter was not yet waiting: asyncio too) or
 *     after it (and sees the waiter): no notification falls in between.
 *  2. notify(n) claims the n oldest waiters under the spinlock and completes
 *     them after unlocking (wait.c handshake). A claimed waiter is no longer
 *     in the queue, so a later notify() wakes someone else.
 *  3. After weft__wait() returns, whatever it returns, the waiter re-acquires
 *     the lock with an uncancellable acquire (lock.c), so wait() always
 *     returns holding the lock, as asyncio's does. A cancellation that
 *     arrives during the re-acquisition stays pending.
 *  4. notify() passes by a waiter whose task has a cancellation pending
 *     (waitq.h; it unlinks itself and returns WEFT_ECANCELED), so the
 *     notification it would have taken goes to the next waiter (or, as in
 *     asyncio, is not given at all if nobody else waits) and notify() does
 *     not count it; one notified before its cancel() returned returns 0 (the
 *     notification wins, the request stays pending).
 */
#include "waitnote.h"
#include "alloc.h"
#include "list.h"
#include "lock.h"
#include "record.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "timer.h"
#include "wait_int.h"
#include "waitq.h"

#include <stdlib.h>

typedef struct cond {
  weft_lock_t *lock;        /* the bound lock, set at init */
  weft__spinlock_t wq_lock; /* guards waiters */
  weft__list_t waiters;     /* weft__waiter_t, FIFO */
} cond_t;

_Static_assert(sizeof(cond_t) <= sizeof(weft_cond_t), "weft_cond_t too small");
_Static_assert(_Alignof(cond_t) <= _Alignof(weft_cond_t),
               "weft_cond_t under-aligned");

static cond_t *impl(const weft_cond_t *c) { return (cond_t *)(uintptr_t)c; }

int weft_cond_init(weft_cond_t *pc, weft_lock_t *lock) {
  if (!pc || !lock)
    return WEFT_EINVAL;
  cond_t *c = impl(pc);
  c->lock = lock;
  atomic_init(&c->wq_lock.locked, 0);
  weft__list_init(&c->waiters);
  return 0;
}

int weft_cond_destroy(weft_cond_t *pc) {
  if (!pc)
    return WEFT_EINVAL;
  cond_t *c = impl(pc);
  weft__spin_lock(&c->wq_lock);
  int busy = !weft__list_empty(&c->waiters);
  weft__spin_unlock(&c->wq_lock);
  return busy ? WEFT_EBUSY : 0;
}

int weft_cond_new(weft_lock_t *lock, weft_cond_t **out) {
  if (!lock || !out)
    return WEFT_EINVAL;
  weft_cond_t *c = weft__malloc(sizeof(*c));
  if (!c)
    return WEFT_ENOMEM;
  weft_cond_init(c, lock);
  *out = c;
  return 0;
}

int weft_cond_free(weft_cond_t *c) {
  return c ? weft__free_destroyed(c, weft_cond_destroy(c)) : 0;
}

/* Steps 1, 3 and 4; the caller checked that self holds the lock. */
static int wait_locked(cond_t *c, weft_task_t *self) {
  weft__waiter_t wt;
  weft__waiter_prepare(&wt, self, NULL);
  weft__spin_lock(&c->wq_lock);
  weft__list_push_back(&c->waiters, &wt.link);
  weft__spin_unlock(&c->wq_lock);
  weft__lock_release(c->lock);
  weft__wait_note(self, WEFT_WAIT_CONDITION, c);
  int rc = weft__wait(&wt, &c->wq_lock, WEFT__NO_DEADLINE, 0);
  /* Uncancellable: cannot fail (self does not hold the lock now). */
  weft__lock_acquire(c->lock, self, 1);
  return rc;
}

/* The checks of wait and notify: a condition, called by a task that holds
 * its lock (WEFT_EINVAL, WEFT_ENOTTASK, WEFT_EPERM). */
static int held_check(weft_cond_t *pc, cond_t **c, weft_task_t **self) {
  if (!pc)
    return WEFT_EINVAL;
  *self = weft__task_current();
  if (!*self)
    return WEFT_ENOTTASK;
  *c = impl(pc);
  if (!weft__lock_held_by((*c)->lock, *self))
    return WEFT_EPERM;
  return 0;
}

int weft_cond_wait(weft_cond_t *pc) {
  cond_t *c;
  weft_task_t *self;
  int rc = held_check(pc, &c, &self);
  return rc ? rc : wait_locked(c, self);
}

int weft_cond_wait_for(weft_cond_t *pc, weft_cond_pred_fn pred, void *arg) {
  if (!pred)
    return WEFT_EINVAL;
  cond_t *c;
  weft_task_t *self;
  int rc = held_check(pc, &c, &self);
  while (rc == 0 && !pred(arg))
    rc = wait_locked(c, self);
  return rc;
}

int weft_cond_notify(weft_cond_t *pc, size_t n) {
  cond_t *c;
  weft_task_t *self;
  int rc = held_check(pc, &c, &self);
  if (rc)
    return rc;
  weft__list_t claimed;
  weft__list_init(&claimed);
  weft__spin_lock(&c->wq_lock);
  size_t k = weft__waitq_claim_n(&c->waiters, &claimed, n, NULL);
  weft__spin_unlock(&c->wq_lock);
  weft__waitq_complete_all(&claimed);
  return k > (size_t)INT32_MAX ? INT32_MAX : (int)k;
}

int weft_cond_notify_all(weft_cond_t *c) {
  return weft_cond_notify(c, SIZE_MAX);
}
