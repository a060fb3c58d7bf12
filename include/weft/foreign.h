/*
 * weft from other threads: submitting a task to a runtime from any thread,
 * and futures to wait for its result (asyncio.run_coroutine_threadsafe and
 * concurrent.futures.Future). The runtime handle (weft_runtime_t,
 * weft_runtime_current(), weft_runtime_ref()) is in weft/runtime.h.
 *
 *   // in a task: keep a handle for other threads
 *   weft_runtime_t *rt = weft_runtime_ref(weft_runtime_current());
 *   // on any thread:
 *   weft_future_t *f;
 *   if (weft_runtime_submit(rt, fn, arg, &f) == 0) {
 *     void *r;
 *     int status = weft_future_wait(f, WEFT_NO_TIMEOUT, &r);
 *     weft_future_free(f);
 *   }
 *   weft_runtime_unref(rt);
 *
 * Submission closes when the runtime's main task finishes (it then fails
 * with WEFT_ERUNTIME_SHUTDOWN, also once weft_run() has returned: the
 * handle outlives the runtime, see weft/runtime.h); every task submitted
 * before that is cancelled with the others at shutdown, and its future
 * completes with WEFT_ECANCELED (or with the task's own outcome if it finished
 * first), so a future never waits for a runtime that is gone.
 *
 * Every function here may be called from any thread: a thread of the
 * program's own, a worker, or a task of this or another runtime, while the
 * runtime runs and after it has ended.
 */
#ifndef WEFT_FOREIGN_H
#define WEFT_FOREIGN_H

#include "common.h"
#include "runtime.h"
#include "task.h"

WEFT_BEGIN_DECLS

/* The result of a task submitted with weft_runtime_submit(); owned by the
 * submitter, freed with weft_future_free(). */
typedef struct weft_future weft_future_t;

/* asyncio.run_coroutine_threadsafe(fn(arg), loop): create a task in rt that
 * runs fn(arg), from any thread. With out not NULL, a future for its result
 * is stored in *out (free it with weft_future_free()); with out NULL the
 * task is detached. The task is queued on rt's global queue and an idle
 * worker is woken for it. It starts with NULL task-local storage (there is
 * no parent task to inherit from) and is named "foreign".
 *
 * Errors: WEFT_EINVAL (rt or fn NULL), WEFT_ERUNTIME_SHUTDOWN (rt's main task
 * has finished, or weft_run() has returned: nothing was created), WEFT_ENOMEM
 * (no memory, or rt's max_tasks reached). Does not suspend. */
WEFT_EXTERN int weft_runtime_submit(weft_runtime_t *rt, weft_task_fn fn,
                                    void *arg, weft_future_t **out);

/* concurrent.futures.Future.result(timeout): wait until the task has
 * finished and return its status (as weft_task_await() would: 0, the error
 * it failed with, or WEFT_ECANCELED if it was cancelled, by
 * weft_future_cancel() or by its runtime's shutdown); its result is stored
 * in *result if result is not NULL (NULL on any error).
 *
 * timeout_ms WEFT_NO_TIMEOUT waits without limit, 0 only polls;
 * WEFT_ETIMEDOUT if the task has not finished in time (the task keeps
 * running).
 *
 * On a thread that is not a worker it blocks the thread (a mutex and a
 * condition variable). In a task it suspends the task instead and is a
 * cancellation point: WEFT_ECANCELED if the waiting task is cancelled (the
 * submitted task keeps running; weft_future_done() tells the two
 * cancellations apart), WEFT_EDEADLK if the calling task is the future's own
 * task. On a worker thread outside a task (a libuv or discard callback) it
 * returns WEFT_EBUSY unless timeout_ms is 0: blocking there would stop the
 * worker. WEFT_EINVAL if f is NULL. Must not run concurrently with
 * weft_future_free(f). */
WEFT_EXTERN int weft_future_wait(weft_future_t *f, uint64_t timeout_ms,
                                 void **result);

/* Future.done(): 1 if the task has finished, 0 if not, WEFT_EINVAL if f is
 * NULL. Does not suspend; any thread. */
WEFT_EXTERN int weft_future_done(const weft_future_t *f);

/* The task's status and result without waiting: as weft_future_wait(f, 0,
 * result), but WEFT_EAGAIN if it has not finished (asyncio's
 * InvalidStateError). WEFT_EINVAL if f is NULL. Any thread. */
WEFT_EXTERN int weft_future_result(const weft_future_t *f, void **result);

/* Future.cancel(): cancel the task (weft_task_cancel()). Returns 1 if a
 * request was made, 0 if the task had already finished, WEFT_EINVAL if f is
 * NULL. The future completes when the task has unwound, normally with
 * WEFT_ECANCELED; a task that had not started never starts (its future
 * completes with WEFT_ECANCELED). Does not suspend; any thread. */
WEFT_EXTERN int weft_future_cancel(weft_future_t *f);

/* Release the future. A task still running is not cancelled: it runs on,
 * detached, and its result is dropped. NULL is ignored. Any thread, but not
 * while another thread or task waits on f. */
WEFT_EXTERN void weft_future_free(weft_future_t *f);

WEFT_END_DECLS

#endif /* WEFT_FOREIGN_H */
