/*
 * weft synchronisation primitives: Lock, Event, Condition, Semaphore,
 * BoundedSemaphore and Barrier (asyncio's, but safe across all workers).
 *
 * In asyncio every task runs on one thread, so these primitives never race;
 * in weft tasks run in parallel on every worker, and these are what make
 * shared data safe. A task that waits on one of them is parked and costs no
 * CPU; waiters are served in FIFO order, and what a waiter is granted (the
 * lock, a permit, the event, a notification, the barrier's release) is handed
 * to it directly, so a task arriving later cannot barge in front of it.
 *
 * Cancellation: every function documented "suspends" is a cancellation point
 * and returns WEFT_ECANCELED when its task is cancelled while it waits; it then
 * took nothing (no lock, no permit) and what it was waiting for goes to the
 * next waiter. Precisely: once weft_task_cancel(t) has returned (or a timeout
 * scope of t has expired), no release, set(), notify() or barrier arrival
 * that happens after it grants t anything; t's wait returns WEFT_ECANCELED,
 * and a barrier no longer counts t as a waiting party. Only a grant made
 * before the cancellation reached t wins: the call then returns 0 holding
 * what it was given, and the cancellation is delivered at the task's next
 * suspension point. Nothing is ever lost to a cancellation.
 *
 * Memory: every type comes in two forms, as weft_queue_t (weft/queue.h)
 * and weft_taskgroup_t do. `_new`/`_free` allocate and release library
 * memory. `_init`/`_destroy` use caller memory: the public structs
 * below are opaque, padded to a fixed size, and may be embedded in other
 * structs or declared static; Lock, Event and Semaphore also have a static
 * INITIALIZER macro (an object so initialised needs no _init, and _destroy is
 * optional for it). A primitive must not be moved or copied while in use.
 * `_destroy`/`_free` return WEFT_EBUSY, and release nothing, while tasks wait
 * on the object (or, for a Lock, while it is held).
 *
 * Threads: the suspending functions need a task (WEFT_ENOTTASK outside one).
 * Each non-suspending function says whether it may be called from any thread,
 * including threads that are not workers of the runtime.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "common.h"

WEFT_BEGIN_DECLS

/* ------------------------------------------------------------------------ */
/* Lock (asyncio.Lock)                                                       */

/* A mutual-exclusion lock owned by a task. Opaque: use the functions below.
 * A task may hold it across suspension points. */
typedef struct weft_lock {
  union {
    unsigned char bytes_[48];
    void *align_;
  } opaque_;
} weft_lock_t;

/* Static initialiser of an unlocked lock: `weft_lock_t l =
 * WEFT_LOCK_INITIALIZER;`. Equivalent to weft_lock_init(). */
#define WEFT_LOCK_INITIALIZER                                                  \
  {                                                                            \
    { {0} }                                                                    \
  }

/* Initialise *l as unlocked. WEFT_EINVAL if l is NULL. Callable from any
 * thread. */
WEFT_EXTERN int weft_lock_init(weft_lock_t *l);

/* Release the resources of l (none today). WEFT_EBUSY if l is held or tasks
 * wait on it, WEFT_EINVAL if l is NULL. Callable from any thread. */
WEFT_EXTERN int weft_lock_destroy(weft_lock_t *l);

/* asyncio.Lock(): allocate an unlocked lock in *out. WEFT_EINVAL (out NULL),
 * WEFT_ENOMEM. Callable from any thread. */
WEFT_EXTERN int weft_lock_new(weft_lock_t **out);

/* Free a lock from weft_lock_new(). WEFT_EBUSY (nothing freed) if l is held
 * or tasks wait on it; NULL is a no-op returning 0. Callable from any
 * thread. */
WEFT_EXTERN int weft_lock_free(weft_lock_t *l);

/* await lock.acquire(): take l, waiting while another task holds it. Waiters
 * get the lock in FIFO order: release hands it directly to the oldest one.
 * Returns 0 (the calling task holds l), WEFT_ECANCELED (cancelled while
 * waiting: l is not held), WEFT_EDEADLK (the calling task already holds l:
 * weft locks are not recursive), WEFT_EINVAL (l NULL), WEFT_ENOTTASK.
 * Suspends while l is held (and, like every operation that completes at
 * once, may yield to other tasks now and then). */
WEFT_EXTERN int weft_lock_acquire(weft_lock_t *l);

/* Take l if it is free and nobody waits for it. Returns 0 (held),
 * WEFT_EBUSY (held by a task, the caller included, or waited for),
 * WEFT_EINVAL, WEFT_ENOTTASK (a lock is owned by a task). Never suspends. */
WEFT_EXTERN int weft_lock_try_acquire(weft_lock_t *l);

/* lock.release(): release l, handing it to the oldest waiter if any.
 * Returns 0, WEFT_EPERM if the calling task does not hold l (asyncio's
 * RuntimeError, including a release of an unlocked lock), WEFT_EINVAL,
 * WEFT_ENOTTASK. Never suspends. */
WEFT_EXTERN int weft_lock_release(weft_lock_t *l);

/* lock.locked(): 1 if some task holds l, 0 if not, WEFT_EINVAL if l is NULL.
 * The answer may be stale at once. Callable from any thread. */
WEFT_EXTERN int weft_lock_locked(const weft_lock_t *l);

/* ------------------------------------------------------------------------ */
/* Event (asyncio.Event)                                                     */

/* A flag that tasks can wait for. Opaque. */
typedef struct weft_event {
  union {
    unsigned char bytes_[32];
    void *align_;
  } opaque_;
} weft_event_t;

/* Static initialiser of a clear event. */
#define WEFT_EVENT_INITIALIZER                                                 \
  {                                                                            \
    { {0} }                                                                    \
  }

/* Initialise *e as clear. WEFT_EINVAL if e is NULL. Any thread. */
WEFT_EXTERN int weft_event_init(weft_event_t *e);

/* WEFT_EBUSY if tasks wait on e, WEFT_EINVAL if e is NULL. Any thread. */
WEFT_EXTERN int weft_event_destroy(weft_event_t *e);

/* asyncio.Event(): allocate a clear event. WEFT_EINVAL, WEFT_ENOMEM. Any
 * thread. */
WEFT_EXTERN int weft_event_new(weft_event_t **out);

/* Free an event from weft_event_new(). WEFT_EBUSY if tasks wait on it; NULL
 * is a no-op returning 0. Any thread. */
WEFT_EXTERN int weft_event_free(weft_event_t *e);

/* event.set(): set the flag and wake every waiting task. Returns 0 or
 * WEFT_EINVAL. Never suspends; callable from any thread, even one that is
 * not a worker. */
WEFT_EXTERN int weft_event_set(weft_event_t *e);

/* event.clear(): reset the flag; tasks that call weft_event_wait() afterwards
 * wait for the next weft_event_set(). Tasks already woken stay woken.
 * Returns 0 or WEFT_EINVAL. Never suspends; any thread. */
WEFT_EXTERN int weft_event_clear(weft_event_t *e);

/* event.is_set(): 1 or 0, WEFT_EINVAL if e is NULL. A task that sees 1 also
 * sees every write the setter made before weft_event_set(). Any thread. */
WEFT_EXTERN int weft_event_is_set(const weft_event_t *e);

/* await event.wait(): return once the flag is set (at once if it is).
 * Returns 0, WEFT_ECANCELED (cancelled before the event was set),
 * WEFT_EINVAL, WEFT_ENOTTASK. Suspends while the flag is clear. */
WEFT_EXTERN int weft_event_wait(weft_event_t *e);

/* ------------------------------------------------------------------------ */
/* Condition (asyncio.Condition)                                             */

/* A condition variable bound to one weft_lock_t. Opaque. */
typedef struct weft_cond {
  union {
    unsigned char bytes_[48];
    void *align_;
  } opaque_;
} weft_cond_t;

/* A predicate for weft_cond_wait_for(): nonzero when the awaited condition
 * holds. Called with the lock held. */
typedef int (*weft_cond_pred_fn)(void *arg);

/* Initialise *c bound to lock (which must outlive c). WEFT_EINVAL if c or
 * lock is NULL. Any thread. */
WEFT_EXTERN int weft_cond_init(weft_cond_t *c, weft_lock_t *lock);

/* WEFT_EBUSY if tasks wait on c, WEFT_EINVAL if c is NULL. Any thread. */
WEFT_EXTERN int weft_cond_destroy(weft_cond_t *c);

/* asyncio.Condition(lock): allocate a condition bound to lock. WEFT_EINVAL
 * (lock or out NULL), WEFT_ENOMEM. Any thread. */
WEFT_EXTERN int weft_cond_new(weft_lock_t *lock, weft_cond_t **out);

/* Free a condition from weft_cond_new(). WEFT_EBUSY if tasks wait on it; NULL
 * is a no-op returning 0. Any thread. */
WEFT_EXTERN int weft_cond_free(weft_cond_t *c);

/* await cond.wait(): atomically release the lock and wait for a
 * notification, then re-acquire the lock. The lock is held again whenever
 * this returns, whatever it returns: a cancellation while waiting for the
 * notification still re-acquires the lock before returning WEFT_ECANCELED
 * (as asyncio does), and the re-acquisition itself is not interrupted by a
 * cancellation (a request arriving then stays pending for the next
 * suspension point). Returns 0 (notified), WEFT_ECANCELED, WEFT_EPERM (the
 * calling task does not hold the lock; nothing happened), WEFT_EINVAL,
 * WEFT_ENOTTASK. Suspends. */
WEFT_EXTERN int weft_cond_wait(weft_cond_t *c);

/* await cond.wait_for(predicate): while pred(arg) is 0, weft_cond_wait().
 * Returns 0 once pred(arg) is nonzero (at once if it already is), or the
 * first error of weft_cond_wait() (the lock is held in every case but
 * WEFT_EPERM). WEFT_EINVAL if c or pred is NULL. Suspends while the
 * predicate is false. */
WEFT_EXTERN int weft_cond_wait_for(weft_cond_t *c, weft_cond_pred_fn pred,
                                   void *arg);

/* cond.notify(n): wake up to n waiting tasks (the oldest first). Returns the
 * number woken (0..n, saturated at INT32_MAX), WEFT_EPERM (the calling task
 * does not hold the lock), WEFT_EINVAL, WEFT_ENOTTASK. Never suspends. */
WEFT_EXTERN int weft_cond_notify(weft_cond_t *c, size_t n);

/* cond.notify_all(): wake every waiting task. As weft_cond_notify(). */
WEFT_EXTERN int weft_cond_notify_all(weft_cond_t *c);

/* ------------------------------------------------------------------------ */
/* Semaphore and BoundedSemaphore (asyncio.Semaphore, BoundedSemaphore)      */

/* A counting semaphore, bounded or not. Opaque (the two named fields exist
 * only so that the static initialisers can set them). */
typedef struct weft_semaphore {
  uint64_t state_;
  int64_t bound_;
  union {
    unsigned char bytes_[32];
    void *align_;
  } opaque_;
} weft_semaphore_t;

/* Static initialisers: asyncio.Semaphore(value) and
 * asyncio.BoundedSemaphore(value), value a non-negative integer constant. */
#define WEFT_SEMAPHORE_INITIALIZER(value)                                      \
  {                                                                            \
    (uint64_t)(value) << 1, -1, { {0} }                                        \
  }
#define WEFT_BOUNDED_SEMAPHORE_INITIALIZER(value)                              \
  {                                                                            \
    (uint64_t)(value) << 1, (int64_t)(value), { {0} }                          \
  }

/* Initialise *s with `value` permits, unbounded (asyncio.Semaphore) or
 * bounded by its initial value (asyncio.BoundedSemaphore). WEFT_EINVAL if s
 * is NULL. Any thread. */
WEFT_EXTERN int weft_semaphore_init(weft_semaphore_t *s, unsigned value);
WEFT_EXTERN int weft_bounded_semaphore_init(weft_semaphore_t *s,
                                            unsigned value);

/* WEFT_EBUSY if tasks wait on s, WEFT_EINVAL if s is NULL. Any thread. */
WEFT_EXTERN int weft_semaphore_destroy(weft_semaphore_t *s);

/* Allocate a semaphore (bounded or not) with `value` permits in *out.
 * WEFT_EINVAL (out NULL), WEFT_ENOMEM. Any thread. */
WEFT_EXTERN int weft_semaphore_new(unsigned value, weft_semaphore_t **out);
WEFT_EXTERN int weft_bounded_semaphore_new(unsigned value,
                                           weft_semaphore_t **out);

/* Free a semaphore from either _new. WEFT_EBUSY if tasks wait on it; NULL is
 * a no-op returning 0. Any thread. */
WEFT_EXTERN int weft_semaphore_free(weft_semaphore_t *s);

/* await sem.acquire(): take one permit, waiting while none is available.
 * Waiters are served in FIFO order and a released permit goes directly to
 * the oldest one. Returns 0, WEFT_ECANCELED (no permit taken), WEFT_EINVAL,
 * WEFT_ENOTTASK. Suspends while no permit is available. */
WEFT_EXTERN int weft_semaphore_acquire(weft_semaphore_t *s);

/* Take a permit if one is available and nobody waits. Returns 0 or
 * WEFT_EAGAIN (sem.locked()), WEFT_EINVAL. Never suspends; callable from any
 * thread (permits have no owner). */
WEFT_EXTERN int weft_semaphore_try_acquire(weft_semaphore_t *s);

/* sem.release(): return one permit, handing it to the oldest waiter if any.
 * Returns 0, WEFT_EOVERFLOW (a bounded semaphore released more often than
 * acquired, asyncio's ValueError, or an unbounded one past 2^62 permits;
 * nothing changed), WEFT_EINVAL. Never suspends; callable from any thread. */
WEFT_EXTERN int weft_semaphore_release(weft_semaphore_t *s);

/* The number of permits available now (0 while tasks wait), saturated at
 * INT32_MAX, or WEFT_EINVAL. sem.locked() is `weft_semaphore_value(s) == 0`.
 * Any thread; the answer may be stale at once. */
WEFT_EXTERN int weft_semaphore_value(const weft_semaphore_t *s);

/* ------------------------------------------------------------------------ */
/* Barrier (asyncio.Barrier)                                                 */

/* A cyclic barrier for a fixed number of parties. Opaque. */
typedef struct weft_barrier {
  union {
    unsigned char bytes_[48];
    void *align_;
  } opaque_;
} weft_barrier_t;

/* Initialise *b for `parties` tasks. WEFT_EINVAL if b is NULL, or parties is
 * 0 or above INT32_MAX. Any thread. */
WEFT_EXTERN int weft_barrier_init(weft_barrier_t *b, unsigned parties);

/* WEFT_EBUSY if tasks wait on b, WEFT_EINVAL if b is NULL. Any thread. */
WEFT_EXTERN int weft_barrier_destroy(weft_barrier_t *b);

/* asyncio.Barrier(parties): allocate a barrier. WEFT_EINVAL, WEFT_ENOMEM.
 * Any thread. */
WEFT_EXTERN int weft_barrier_new(unsigned parties, weft_barrier_t **out);

/* Free a barrier from weft_barrier_new(). WEFT_EBUSY if tasks wait on it;
 * NULL is a no-op returning 0. Any thread. */
WEFT_EXTERN int weft_barrier_free(weft_barrier_t *b);

/* await barrier.wait(): wait until `parties` tasks are waiting, then release
 * them all and return this task's index in the cycle, 0..parties-1 (the order
 * in which the released tasks arrived; the task whose arrival completes the
 * cycle gets parties-1 and does not suspend). The barrier then starts a new
 * cycle at once. A waiter cancelled before the release leaves the cycle (the
 * others keep waiting; the barrier does not break, as in asyncio) and
 * returns WEFT_ECANCELED; from the moment weft_task_cancel() returns it no
 * longer counts towards `parties`. Returns WEFT_EBROKEN (asyncio's
 * BrokenBarrierError) if the barrier is broken (weft_barrier_abort()) or
 * is reset or aborted while this task waits; WEFT_EINVAL, WEFT_ENOTTASK.
 * Suspends until the cycle completes. */
WEFT_EXTERN int weft_barrier_wait(weft_barrier_t *b);

/* barrier.reset(): wake every waiting task with WEFT_EBROKEN and return b to
 * its initial, unbroken state. Returns 0 or WEFT_EINVAL. Never suspends; any
 * thread. */
WEFT_EXTERN int weft_barrier_reset(weft_barrier_t *b);

/* barrier.abort(): break b: every waiting task, and every later
 * weft_barrier_wait() until weft_barrier_reset(), returns WEFT_EBROKEN.
 * Returns 0 or WEFT_EINVAL. Never suspends; any thread. */
WEFT_EXTERN int weft_barrier_abort(weft_barrier_t *b);

/* barrier.parties, barrier.n_waiting and barrier.broken (1 or 0), or
 * WEFT_EINVAL if b is NULL. Any thread; the last two may be stale at once. */
WEFT_EXTERN int weft_barrier_parties(const weft_barrier_t *b);
WEFT_EXTERN int weft_barrier_n_waiting(const weft_barrier_t *b);
WEFT_EXTERN int weft_barrier_broken(const weft_barrier_t *b);

WEFT_END_DECLS

#endif /* WEFT_SYNC_H */
