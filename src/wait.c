/*
 * The one suspension primitive: every blocking operation (await, sleep,
 * queue get/put, and later I/O) registers a waiter and/or a timer and calls
 * weft__wait(); the first trigger wins and the rest are undone.
 *
 * Waiter handshake (the waker never touches a waiter after its task may have
 * returned from the wait, so a waiter can live on the waiting task's stack):
 *  1. The waiting task links the waiter into a queue under the queue's lock.
 *  2. A waker, under the same lock, unlinks it and stores fired = 1 (claim).
 *  3. The waker unlocks, wakes the task, then stores fired = 2 (release). That
 *     store is its last access to the waiter.
 *  4. The task returns from the wait only when fired == 2, or after it has
 *     unlinked the waiter itself under the lock (cancel, timeout). If it finds
 *     fired == 1 it spins until 2: the waker is between steps 2 and 3.
 * A timer is simpler: it fires on the worker that owns it, and the task is
 * routed back to that worker before it looks (time.c).
 *
 * Cancellation: the CANCEL bit of the state word is consumed by the wait that
 * returns WEFT_ECANCELED. If the waiter fired while the cancellation was being
 * delivered, the event wins (no item or wake-up is lost) and the request is
 * re-posted for the next suspension point. During shutdown every wait returns
 * WEFT_ECANCELED at once, so shutdown cannot hang.
 */
#include "core.h"

#include <errno.h>

int weft__wait_check_cancel(weft_task_t *t) {
  if (weft__state_take_cancel(&t->state))
    return 1;
  /* relaxed: a flag; once set it stays set. */
  return atomic_load_explicit(&t->rt->shutdown, memory_order_relaxed) != 0;
}

void weft__cancel_restore(weft_task_t *t) {
  /* relaxed: the task itself re-posts its own request. */
  atomic_fetch_or_explicit(&t->state, WEFT__ST_CANCEL, memory_order_relaxed);
}

weft_task_t *weft__waiter_claim(weft__waiter_t *w) {
  weft__list_remove(&w->link);
  /* relaxed: the lock release orders it; the task re-checks under the lock. */
  atomic_store_explicit(&w->fired, 1, memory_order_relaxed);
  return w->task;
}

void weft__waiter_complete(weft__waiter_t *w, weft_task_t *task) {
  weft__task_wake(task);
  /* release: the handed-over item and the waker's writes are visible to the
   * task that acquires fired == 2; nothing touches w after this. */
  atomic_store_explicit(&w->fired, 2, memory_order_release);
}

static void spin_until_done(weft__waiter_t *w) {
  unsigned spins = 0;
  /* acquire: pairs with the release of fired = 2. */
  while (atomic_load_explicit(&w->fired, memory_order_acquire) != 2) {
    if (++spins < 64)
      weft__cpu_relax();
    else
      sched_yield();
  }
}

int weft__waiter_detach(weft__waiter_t *w, weft__spinlock_t *lock) {
  weft__spin_lock(lock);
  /* relaxed: the lock orders it against the claim. */
  if (atomic_load_explicit(&w->fired, memory_order_relaxed) == 0) {
    weft__list_remove(&w->link);
    weft__spin_unlock(lock);
    return 0;
  }
  weft__spin_unlock(lock);
  spin_until_done(w);
  return 1;
}

void weft__park(weft_task_t *t) {
  weft__task_switch_out(t, WEFT__AFTER_PARK);
}

int weft__wait(weft__waiter_t *w, weft__spinlock_t *lock, uint64_t deadline,
               int uncancellable) {
  weft_task_t *t = weft__task_current();
  weft__timer_t tm;
  weft__worker_t *tw = NULL;
  int rc = 0;
  if (deadline != WEFT__NO_DEADLINE) {
    tw = weft__worker_current();
    weft__timer_init(&tm, deadline, t);
    rc = weft__timer_add_checked(tw, &tm);
    if (rc == 0)
      t->route = tw; /* resume here to remove the timer (time.c) */
  }
  while (rc == 0) {
    if (w) {
      /* acquire: pairs with the waker's release of fired = 2. */
      int f = atomic_load_explicit(&w->fired, memory_order_acquire);
      if (f == 2)
        break;
      if (f == 1) {
        spin_until_done(w);
        break;
      }
    }
    if (tw && tm.fired)
      rc = WEFT_ETIMEDOUT;
    else if (!uncancellable && weft__wait_check_cancel(t))
      rc = WEFT_ECANCELED;
    else
      weft__park(t);
  }
  if (rc != 0 && w && weft__waiter_detach(w, lock)) {
    /* The event won the race: deliver it, keep the request pending. */
    if (rc == WEFT_ECANCELED)
      weft__cancel_restore(t);
    rc = 0;
  }
  if (tw) {
    weft__timer_remove(tw, &tm); /* we run on tw: the route guarantees it */
    t->route = t->pin;
  }
  return rc;
}

int weft_sleep(uint64_t ms) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (ms == 0)
    return weft_yield();
  if (ms > UINT64_MAX / 2000000)
    ms = UINT64_MAX / 2000000;
  int rc = weft__wait(NULL, NULL, weft__now_ns() + ms * 1000000u, 0);
  return rc == WEFT_ETIMEDOUT ? 0 : rc;
}

int weft_yield(void) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  weft__task_switch_out(t, WEFT__AFTER_YIELD);
  return 0;
}

uint64_t weft_time_ms(void) {
  return weft__task_current() ? weft__now_ns() / 1000000u : 0;
}
