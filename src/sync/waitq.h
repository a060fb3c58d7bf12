/*
 * Helpers shared by the synchronisation primitives (src/sync/): a FIFO wait
 * queue of weft__waiter_t guarded by a spinlock, and the wait.c handshake
 * applied to several waiters at once.
 *
 * Protocol (wait.c): a waker unlinks and claims waiters under the queue's
 * spinlock, collecting them on a list of its own stack; after unlocking it
 * completes them one by one, taking each off its list before completing it,
 * because a completed waiter may vanish with its task's stack frame.
 *
 * Cancelled waiters (wait.c "Cancellation"): every waker here passes by a
 * waiter whose task has a cancellation pending (weft__waiter_skip) and
 * leaves it linked; its own wait unlinks it and returns WEFT_ECANCELED. So
 * an item, permit, lock or notification goes to the next waiter instead
 * (or stays with the primitive), never to a task whose cancel() returned.
 * Such a waiter stays in the queue until its task runs, so "the queue is
 * empty" and "nobody can be woken" differ: wakers ask weft__waitq_first.
 *
 * The primitives may be zero-initialised (static INITIALIZER macros), so a
 * wait queue whose head is all zeros is empty; weft__waitq_ready() turns it
 * into a proper circular list under the lock before first use.
 */
#ifndef WEFT_SYNC_WAITQ_H
#define WEFT_SYNC_WAITQ_H

#include "list.h"
#include "record.h"
#include "sched/worker.h"
#include "wait_int.h"

/* Make a zero-initialised queue head usable. Under the queue's lock. */
static inline void weft__waitq_ready(weft__list_t *q) {
  if (q->next == NULL)
    weft__list_init(q);
}

/* 1 if q (ready or still zero) holds no waiter. Under the queue's lock. */
static inline int weft__waitq_empty(const weft__list_t *q) {
  return q->next == NULL || weft__list_empty(q);
}

/* The oldest waiter of q that may be woken (not passed by as cancelled,
 * see above), or NULL. Under the queue's lock. */
static inline weft__waiter_t *weft__waitq_first(weft__list_t *q) {
  if (weft__waitq_empty(q))
    return NULL;
  for (weft__list_t *n = q->next; n != q; n = n->next) {
    weft__waiter_t *w = weft__container_of(n, weft__waiter_t, link);
    if (!weft__waiter_skip(w))
      return w;
  }
  return NULL;
}

/* Prepare a waiter on the calling task's stack, for a cancellable wait (an
 * uncancellable one sets w->cancellable = 0 before linking). */
static inline void weft__waiter_prepare(weft__waiter_t *w, weft_task_t *task,
                                        void *item) {
  w->task = task;
  w->item = item;
  w->cancellable = 1;
  atomic_init(&w->fired, 0);
}

/* Claim w (unlinking it from its queue) with payload item, and collect it on
 * the waker's list `claimed`. Under the queue's lock. */
static inline void weft__waitq_claim_to(weft__list_t *claimed,
                                        weft__waiter_t *w, void *item) {
  w->item = item;
  weft__waiter_claim(w);
  weft__list_push_back(claimed, &w->link);
}

/* Claim up to n waiters of q that may be woken, oldest first, each with
 * payload item; returns how many. Under the queue's lock. */
static inline size_t weft__waitq_claim_n(weft__list_t *q,
                                         weft__list_t *claimed, size_t n,
                                         void *item) {
  size_t k = 0;
  if (weft__waitq_empty(q))
    return 0;
  /* One pass: cancelled waiters stay linked and are stepped over once. */
  for (weft__list_t *i = q->next, *next; k < n && i != q; i = next) {
    next = i->next; /* claiming unlinks i */
    weft__waiter_t *w = weft__container_of(i, weft__waiter_t, link);
    if (weft__waiter_skip(w))
      continue;
    weft__waitq_claim_to(claimed, w, item);
    k++;
  }
  return k;
}

/* Complete every claimed waiter (after the queue's lock was released). */
static inline void weft__waitq_complete_all(weft__list_t *claimed) {
  weft__list_t *n;
  while ((n = weft__list_pop_front(claimed)) != NULL) {
    weft__waiter_t *w = weft__container_of(n, weft__waiter_t, link);
    weft__waiter_complete(w, w->task);
  }
}

#endif /* WEFT_SYNC_WAITQ_H */
