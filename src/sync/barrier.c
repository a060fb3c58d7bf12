/*
 * weft_barrier: asyncio.Barrier, cyclic, safe across workers.
 *
 * Protocol. Everything is under one spinlock: the count of waiting tasks,
 * the broken flag, a cycle number and the FIFO wait queue.
 *  1. wait() on a broken barrier fails at once. Otherwise, if its arrival
 *     completes the cycle (linked waiters that may be released + 1 ==
 *     parties; take_live counts them and sets them aside in one pass), the
 *     arriving task claims every such waiter, giving each its index in
 *     arrival order (queue position) as payload, starts the next cycle
 *     (count = 0, cycle + 1), unlocks, completes the waiters (wait.c
 *     handshake) and returns parties - 1 without suspending. Otherwise it
 *     links a waiter, counts itself and remembers the cycle number, then
 *     calls weft__wait().
 *  2. reset() and abort() claim every waiter that may be released (step 4)
 *     with payload WEFT_EBROKEN, set count = 0, advance the cycle, and set
 *     broken to 0 or 1 respectively.
 *  3. A waiter cancelled before it was claimed has unlinked itself
 *     (weft__wait, under the lock) and un-counts itself afterwards, under
 *     the lock again, but only if the cycle is still the one it joined: a
 *     release, reset or abort that ran in between (and found it already gone
 *     from the queue) has zeroed the count itself. So count is an upper
 *     bound of the linked waiters that may be released (step 4), exact
 *     except in that window and while a cancelled waiter is linked, and an
 *     arrival that finds count + 1 >= parties counts the queue itself
 *     before it releases anyone (at most once per cycle without
 *     cancellations: O(1) per arrival). Because indices are assigned at the
 *     release from queue positions, the released tasks always get
 *     0..parties-1 exactly once, even when waiters left the cycle.
 *  4. A waiter whose task has a cancellation pending does not count and is
 *     not claimed (waitq.h): an arrival that would complete the cycle only
 *     with it links and waits instead, and a release, reset or abort passes
 *     it by (it stays linked until it unlinks itself and returns
 *     WEFT_ECANCELED; its cycle has moved on, so it un-counts nothing). A
 *     waiter claimed before its cancel() returned returns its index (or
 *     WEFT_EBROKEN): the claim wins and the request stays pending.
 *
 * Payloads travel in weft__waiter_t.item as an intptr_t: an index >= 0 or
 * a negative error code.
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

typedef struct barrier {
  weft__spinlock_t lock; /* guards every field below */
  unsigned parties;      /* set at init */
  unsigned count;        /* waiters of this cycle, an upper bound (step 3) */
  int broken;            /* 1 after abort(), until reset() */
  unsigned cycle;        /* advanced by every release, reset and abort */
  weft__list_t waiters;  /* weft__waiter_t, in arrival order */
} barrier_t;

_Static_assert(sizeof(barrier_t) <= sizeof(weft_barrier_t),
               "weft_barrier_t too small");
_Static_assert(_Alignof(barrier_t) <= _Alignof(weft_barrier_t),
               "weft_barrier_t under-aligned");

static barrier_t *impl(const weft_barrier_t *b) {
  return (barrier_t *)(uintptr_t)b;
}

#define PAYLOAD(v) ((void *)(intptr_t)(v))

int weft_barrier_init(weft_barrier_t *pb, unsigned parties) {
  if (!pb || parties == 0 || parties > (unsigned)INT32_MAX)
    return WEFT_EINVAL;
  barrier_t *b = impl(pb);
  atomic_init(&b->lock.locked, 0);
  b->parties = parties;
  b->count = 0;
  b->broken = 0;
  b->cycle = 0;
  weft__list_init(&b->waiters);
  return 0;
}

int weft_barrier_destroy(weft_barrier_t *pb) {
  if (!pb)
    return WEFT_EINVAL;
  barrier_t *b = impl(pb);
  weft__spin_lock(&b->lock);
  int busy = !weft__list_empty(&b->waiters);
  weft__spin_unlock(&b->lock);
  return busy ? WEFT_EBUSY : 0;
}

int weft_barrier_new(unsigned parties, weft_barrier_t **out) {
  if (!out || parties == 0 || parties > (unsigned)INT32_MAX)
    return WEFT_EINVAL;
  weft_barrier_t *b = weft__malloc(sizeof(*b));
  if (!b)
    return WEFT_ENOMEM;
  weft_barrier_init(b, parties);
  *out = b;
  return 0;
}

int weft_barrier_free(weft_barrier_t *b) {
  return b ? weft__free_destroyed(b, weft_barrier_destroy(b)) : 0;
}

/* The number of linked waiters that are not passed by as cancelled (step
 * 3). Under the lock. */
static unsigned linked(barrier_t *b) {
  unsigned n = 0;
  for (weft__list_t *i = b->waiters.next; i != &b->waiters; i = i->next)
    n += !weft__waiter_skip(weft__container_of(i, weft__waiter_t, link));
  return n;
}

/* Claim every waiter: with its queue position (release) or err. Under the
 * lock; starts a new cycle. */
/* Move the waiters that may be released (step 4) from the queue to `live`,
 * in arrival order; returns how many. Each waiter's cancellation is read
 * once, so the count and the set agree although cancel() does not take the
 * lock. The moved waiters cannot notice: they detach only under the lock.
 * Under the lock. */
static unsigned take_live(barrier_t *b, weft__list_t *live) {
  unsigned n = 0;
  weft__list_init(live);
  for (weft__list_t *i = b->waiters.next, *next; i != &b->waiters; i = next) {
    next = i->next;
    if (weft__waiter_skip(weft__container_of(i, weft__waiter_t, link)))
      continue;
    weft__list_remove(i);
    weft__list_push_back(live, i);
    n++;
  }
  return n;
}

/* Claim every waiter of `live` (from take_live): with its position
 * (release) or err. Under the lock; starts a new cycle. */
static void drain(barrier_t *b, weft__list_t *live, weft__list_t *claimed,
                  int err) {
  intptr_t index = 0;
  while (!weft__list_empty(live)) /* claiming unlinks it from live */
    weft__waitq_claim_to(claimed,
                         weft__container_of(live->next, weft__waiter_t, link),
                         PAYLOAD(err ? err : index++));
  b->count = 0;
  b->cycle++;
}

int weft_barrier_wait(weft_barrier_t *pb) {
  if (!pb)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return weft__report_misuse(NULL, "weft_barrier_wait", WEFT_ENOTTASK,
                               "called outside a task");
  barrier_t *b = impl(pb);
  weft__list_t claimed;
  weft__list_init(&claimed);
  weft__spin_lock(&b->lock);
  if (b->broken) {
    weft__spin_unlock(&b->lock);
    return WEFT_EBROKEN;
  }
  if (b->count + 1 >= b->parties) {
    weft__list_t live, *n;
    if (take_live(b, &live) + 1 == b->parties) {
      drain(b, &live, &claimed, 0);
      weft__spin_unlock(&b->lock);
      weft__waitq_complete_all(&claimed);
      weft__coop_tick();
      return (int)b->parties - 1;
    }
    while ((n = weft__list_pop_front(&live)) != NULL) /* not yet: back */
      weft__list_push_back(&b->waiters, n);
  }
  weft__waiter_t wt;
  weft__waiter_prepare(&wt, self, NULL);
  weft__list_push_back(&b->waiters, &wt.link);
  b->count++;
  unsigned cycle = b->cycle;
  weft__spin_unlock(&b->lock);

  weft__wait_note(self, WEFT_WAIT_BARRIER, b);
  int rc = weft__wait(&wt, &b->lock, WEFT__NO_DEADLINE, 0);
  if (rc != 0) {
    /* Step 3. */
    weft__spin_lock(&b->lock);
    if (b->cycle == cycle)
      b->count--;
    weft__spin_unlock(&b->lock);
    return rc;
  }
  return (int)(intptr_t)wt.item;
}

static int drain_all(weft_barrier_t *pb, int broken) {
  if (!pb)
    return WEFT_EINVAL;
  barrier_t *b = impl(pb);
  weft__list_t claimed;
  weft__list_init(&claimed);
  weft__list_t live;
  weft__spin_lock(&b->lock);
  take_live(b, &live);
  drain(b, &live, &claimed, WEFT_EBROKEN);
  b->broken = broken;
  weft__spin_unlock(&b->lock);
  weft__waitq_complete_all(&claimed);
  return 0;
}

int weft_barrier_reset(weft_barrier_t *b) { return drain_all(b, 0); }

int weft_barrier_abort(weft_barrier_t *b) { return drain_all(b, 1); }

int weft_barrier_parties(const weft_barrier_t *pb) {
  if (!pb)
    return WEFT_EINVAL;
  return (int)impl(pb)->parties; /* constant after init */
}

int weft_barrier_n_waiting(const weft_barrier_t *pb) {
  if (!pb)
    return WEFT_EINVAL;
  barrier_t *b = impl(pb);
  weft__spin_lock(&b->lock);
  int n = (int)linked(b); /* exact, unlike count; cancelled ones left */
  weft__spin_unlock(&b->lock);
  return n;
}

int weft_barrier_broken(const weft_barrier_t *pb) {
  if (!pb)
    return WEFT_EINVAL;
  barrier_t *b = impl(pb);
  weft__spin_lock(&b->lock);
  int broken = b->broken;
  weft__spin_unlock(&b->lock);
  return broken;
}
