/*
 * Suspension (wait.c, protocol at its top): the waiter a task links in a
 * wait queue, the waiter hand-over, and how to wait.
 *
 * Which to use:
 *  - weft__wait() with a weft__waiter_t: the task waits for one event that
 *    a waker hands over through one queue under one lock (sync/, awaiting
 *    a task, task groups, futures). Deadline, timeout scopes and
 *    cancellation are handled inside; a waiter that fired wins.
 *  - the weft__waitctx_t loop (weft__wait_begin / _poll / _end): the
 *    condition is not one waiter (gather and weft_wait link one per task;
 *    I/O waits for a flag its callback sets): the caller checks its own
 *    condition, polls for deadline and cancellation, and parks, in a loop.
 *  - weft__park(): the park step of that loop, never alone: it checks
 *    nothing, and wakes may be spurious.
 */
#ifndef WEFT_WAIT_H
#define WEFT_WAIT_H

#include "weft.h"

#include "list.h"
#include "record.h"
#include "spinlock.h"
#include "task_state.h"
#include "timer.h"

#include <stdatomic.h>
#include <stdint.h>

/* One registration of a waiting task in a wait queue. Lives on the waiting
 * task's stack for the duration of one wait. */
typedef struct weft__waiter {
  weft__list_t link;  /* in the wait queue; guarded by the queue's lock */
  weft_task_t *task;  /* the waiting task */
  atomic_int fired;   /* set (release) by the waker, before it wakes task */
  void *item;         /* payload handed over by the waker (queues) */
  /* 1: a waker that checks it (src/sync/, weft__waiter_skip) passes the
   * waiter by while its task has a cancellation pending; 0 for an
   * uncancellable wait, which is always served. Set before linking. */
  int cancellable;
} weft__waiter_t;

/* All return 0 or WEFT_ECANCELED unless said otherwise. */
/* 1 if the task must stop waiting: a pending request (consumed) or the
 * runtime's shutdown. */
int weft__wait_check_cancel(weft_task_t *t);
/* Re-post a consumed request whose wait was satisfied anyway. */
void weft__cancel_restore(weft_task_t *t);
/* Waiter handshake (wait.c): under the queue's lock the waker unlinks the
 * waiter and claims it (fired = 1); after unlocking it wakes the task and
 * finally stores fired = 2, its last access to the waiter. */
weft_task_t *weft__waiter_claim(weft__waiter_t *w);
/* 1 if a waker must pass w by, leaving it linked: its wait is cancellable
 * and its task has a cancellation pending, so the wait will unlink it and
 * return WEFT_ECANCELED. Under the queue's lock, while w is linked. */
static inline int weft__waiter_skip(const weft__waiter_t *w) {
  return w->cancellable && weft__state_cancel_pending(&w->task->state);
}
void weft__waiter_complete(weft__waiter_t *w, weft_task_t *task);
/* Detach a waiter that is no longer wanted: returns 0 if it was still linked
 * (now unlinked), 1 if a waker had claimed it (waits for fired == 2). */
int weft__waiter_detach(weft__waiter_t *w, weft__spinlock_t *lock);
/* Park until the waiter fires (0), a cancellation (WEFT_ECANCELED, unless
 * uncancellable), or the deadline (WEFT_ETIMEDOUT). w may be NULL (a plain
 * sleep), lock guards the queue w is linked in. On any error return, w has
 * been detached; a waiter that fired wins over a cancellation or timeout. */
int weft__wait(weft__waiter_t *w, weft__spinlock_t *lock, uint64_t deadline,
               int uncancellable);
/* Park once (spurious wakes possible): callers loop on their condition. */
void weft__park(weft_task_t *t);

/* A suspension loop with deadlines, for waits that do not fit weft__wait()
 * (several waiters, I/O flags): begin, then poll before every park, then
 * end. The wait honours `deadline` (WEFT__NO_DEADLINE: none) and the
 * task's timeout scopes: a timer on the current worker is armed for the
 * earlier of the two, and the task is routed back there while it is armed.
 *   weft__waitctx_t c;
 *   weft__wait_begin(&c, t, deadline);
 *   while (!condition && (rc = weft__wait_poll(&c, uncancellable)) == 0)
 *     weft__park(t);
 *   weft__wait_end(&c);
 * weft__wait_poll() returns 0 (keep waiting), WEFT_ETIMEDOUT (deadline
 * passed) or WEFT_ECANCELED (a cancellation request, consumed; a scope that
 * expired cancels the task first). An uncancellable wait still lets scopes
 * expire: the request stays pending for the next suspension point. */
typedef struct weft__waitctx {
  weft_task_t *t;
  uint64_t deadline;         /* the caller's own deadline */
  weft__worker_t *tw;        /* worker holding tm while armed */
  weft__worker_t *route;     /* t's route before the wait */
  int armed;                 /* tm is on tw's wheel */
  weft__timer_t tm;
} weft__waitctx_t;
void weft__wait_begin(weft__waitctx_t *c, weft_task_t *t, uint64_t deadline);
int weft__wait_poll(weft__waitctx_t *c, int uncancellable);
void weft__wait_end(weft__waitctx_t *c);

#endif /* WEFT_WAIT_H */
