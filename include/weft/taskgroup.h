/*
 * weft task groups: asyncio.TaskGroup.
 *
 *   weft_taskgroup_t g;                      // async with TaskGroup() as g:
 *   weft_taskgroup_init(&g);
 *   weft_taskgroup_spawn(&g, fetch, a, NULL);  //   g.create_task(fetch(a))
 *   weft_taskgroup_spawn(&g, fetch, b, NULL);  //   g.create_task(fetch(b))
 *   int rc = weft_taskgroup_wait(&g);        // (leaving the block)
 *   weft_taskgroup_destroy(&g);
 *
 * A group belongs to the task that initialised it, its owner (asyncio: the
 * task that entered the `async with`). Any task may spawn into it; only the
 * owner waits on it. weft_taskgroup_wait() is the end of the `async with`
 * block: it returns only when every task of the group has finished, whatever
 * happens meanwhile, so no task outlives its group. The owner must wait
 * before the group's memory goes away (for a group on its stack: before the
 * function returns), as leaving `async with` always does.
 *
 * Failure. The first child that fails (finishes with a status other than 0
 * and WEFT_ECANCELED) makes the group shut down: every other child is
 * cancelled, spawning is refused (WEFT_ETASKGROUP_SHUTDOWN), and the owner is
 * cancelled once, so that whatever it is waiting for inside the block
 * returns WEFT_ECANCELED and it reaches weft_taskgroup_wait() promptly. The
 * wait withdraws that one request again (weft_task_uncancel()) and returns
 * the first failure's status; weft_taskgroup_error_count() and
 * weft_taskgroup_error() list every failure (asyncio's ExceptionGroup).
 * Cancellations from elsewhere stay pending. A child that ends cancelled is
 * not a failure.
 *
 * Cancellation of the owner. If the owner is cancelled from outside the
 * group (weft_task_cancel(), a timeout scope) while it waits, or was before
 * it called weft_taskgroup_wait() after initialising the group (a
 * suspension point in the block returned WEFT_ECANCELED and the owner went
 * on to the wait: asyncio's CancelledError leaving the block), the group
 * cancels every child, waits for all of them, and returns WEFT_ECANCELED
 * (a failure's status if a child failed: failures take precedence, and the
 * cancellation then stays pending for the owner's next suspension point).
 *
 * Handles: the group keeps its own reference to every child until it has
 * finished, and to every failed child until weft_taskgroup_destroy(). The
 * `out` handle of weft_taskgroup_spawn() is the caller's, to release with
 * weft_task_unref(). While a group has children, each child that finishes
 * wakes its owner briefly (the owner's suspension points tolerate that and
 * go on waiting).
 */
#ifndef WEFT_TASKGROUP_H
#define WEFT_TASKGROUP_H

#include "common.h"
#include "task.h"

WEFT_BEGIN_DECLS

/* A task group. Opaque: use the functions below. May be embedded or live on
 * the owner's stack; must not be moved or copied while in use. */
typedef struct weft_taskgroup {
  union {
    unsigned char bytes_[128];
    void *align_;
  } opaque_;
} weft_taskgroup_t;

/* TaskGroup(): initialise *g as an empty group owned by the calling task.
 * Errors: WEFT_EINVAL (g NULL), WEFT_ENOTTASK (outside a task). Does not
 * suspend. */
WEFT_EXTERN int weft_taskgroup_init(weft_taskgroup_t *g);

/* Release g's resources: the handles of its failed children and the
 * reference to its owner. WEFT_EBUSY (nothing released) while a child has
 * not finished, a spawn into g is in progress, or the owner is inside
 * weft_taskgroup_wait(); WEFT_EINVAL if g is NULL. A group whose children
 * all finished may be destroyed without having been waited on. Does not
 * suspend; callable from any task. */
WEFT_EXTERN int weft_taskgroup_destroy(weft_taskgroup_t *g);

/* weft_taskgroup_init() on library memory, stored in *out. Errors:
 * WEFT_EINVAL (out NULL), WEFT_ENOTTASK, WEFT_ENOMEM. Does not suspend. */
WEFT_EXTERN int weft_taskgroup_new(weft_taskgroup_t **out);

/* weft_taskgroup_destroy() and free a group from weft_taskgroup_new().
 * WEFT_EBUSY as weft_taskgroup_destroy() (nothing freed); NULL is a no-op
 * returning 0. Does not suspend. */
WEFT_EXTERN int weft_taskgroup_free(weft_taskgroup_t *g);

/* tg.create_task(fn(arg)): spawn fn(arg) as a child of g (as weft_spawn()),
 * and if out is not NULL store a handle to it in *out (the caller's
 * reference). Callable by any task, also by children of g, as long as g
 * accepts tasks: from weft_taskgroup_init() until a failure or
 * weft_taskgroup_cancel() shuts it down, and until weft_taskgroup_wait() has
 * returned (spawning while the owner waits is allowed, as in asyncio).
 * Errors: WEFT_EINVAL (g or fn NULL), WEFT_ETASKGROUP_SHUTDOWN (g shut down
 * after a failure or a cancellation, or finished: asyncio's RuntimeError), and
 * weft_spawn()'s errors (WEFT_ENOTTASK, WEFT_ENOMEM, WEFT_ERUNTIME_SHUTDOWN).
 * Does not suspend. */
WEFT_EXTERN int weft_taskgroup_spawn(weft_taskgroup_t *g, weft_task_fn fn,
                                     void *arg, weft_task_t **out);

/* weft_taskgroup_spawn() with spawn options (opts NULL = defaults). Extra
 * error: WEFT_EINVAL for a pin outside 0..workers-1. */
WEFT_EXTERN int weft_taskgroup_spawn_ex(weft_taskgroup_t *g, weft_task_fn fn,
                                        void *arg,
                                        const weft_spawn_opts_t *opts,
                                        weft_task_t **out);

/* The end of `async with TaskGroup()`: wait until every child of g has
 * finished, including children spawned meanwhile; g then accepts no more
 * tasks. Returns 0 if no child failed and the owner was not cancelled; the
 * first failure's status if a child failed; WEFT_ECANCELED if the owner was
 * cancelled from outside (see the top of this file: the children are
 * cancelled and still waited for). Waiting again on a finished group
 * returns the same value at once. Errors: WEFT_EINVAL (g NULL),
 * WEFT_ENOTTASK, WEFT_EPERM (the caller is not g's owner). Suspends unless
 * every child has finished. */
WEFT_EXTERN int weft_taskgroup_wait(weft_taskgroup_t *g);

/* Shut g down without a failure: cancel every child and refuse new ones
 * (WEFT_ETASKGROUP_SHUTDOWN), as an error leaving asyncio's `async with` block
 * does. The owner is not cancelled; weft_taskgroup_wait() still waits for all
 * children and returns 0 unless a child failed or the owner was cancelled.
 * Returns 0, WEFT_EINVAL (g NULL); calling it again is harmless. Callable
 * from any task; does not suspend. */
WEFT_EXTERN int weft_taskgroup_cancel(weft_taskgroup_t *g);

/* The number of children that failed so far (the size of asyncio's
 * ExceptionGroup), or WEFT_EINVAL if g is NULL. Complete once
 * weft_taskgroup_wait() has returned. Does not suspend. */
WEFT_EXTERN int weft_taskgroup_error_count(const weft_taskgroup_t *g);

/* The idx-th failure (0 = the first, in the order they were detected):
 * store the failed task in *task (borrowed: valid until g is destroyed;
 * weft_task_ref() it to keep it longer) and its status in *status; either
 * pointer may be NULL. Returns 0, or WEFT_EINVAL (g NULL, idx out of
 * range). Does not suspend. */
WEFT_EXTERN int weft_taskgroup_error(const weft_taskgroup_t *g, size_t idx,
                                     weft_task_t **task, int *status);

WEFT_END_DECLS

#endif /* WEFT_TASKGROUP_H */
