/*
 * weft tasks: spawn (asyncio.create_task), await, gather, sleep, yield,
 * cancel and wait_for.
 *
 * A task is a stackful coroutine: its body is ordinary sequential C, and the
 * functions documented "suspends" below let other tasks run until they
 * return. A task runs on one worker thread at a time but may resume on a
 * different worker after any suspension point, so a task must not keep a
 * pointer to thread-local data (errno's address included) across one.
 *
 * errno: weft never reports through errno, and its calls' results never
 * depend on what errno held when they were called (any of them may change
 * it). weft does not carry errno across a suspension point either, and
 * could not: C libraries declare
 * errno's accessor const (glibc's __errno_location), so within one function,
 * counting what the compiler inlines into it, an optimised build may use
 * errno's address from before a suspension point after it, reading or
 * writing the previous thread's errno. What holds: errno read right after
 * the call that set it, in a function that does not suspend between any two
 * of its errno accesses (simplest: a helper that makes the call, reads
 * errno and returns it, kept out of line with __attribute__((noinline)) or
 * in another file). What does not: any errno value across a suspension
 * point, and errno touched both before and after one in the same function.
 * Keep a value you need later in a local variable.
 *
 * Every suspension point is a cancellation point and nothing else is: after
 * weft_task_cancel(t), t's current or next suspending call returns
 * WEFT_ECANCELED. Requests made before that delivery are delivered together,
 * once (asyncio raises one CancelledError however often cancel() was called);
 * weft_task_cancelling() counts them. If the operation a task was waiting for
 * completes at the same moment as the cancellation (a queue item is handed
 * to it, the awaited task finishes), the operation wins: it returns 0 and the
 * cancellation is delivered at the next suspension point, so nothing is lost.
 *
 * Handles are valid until their last reference is dropped and at most until
 * weft_run() returns; the functions that take a handle and do not suspend
 * (done, result, ref, unref, cancel, name, name_copy, set_name) may be
 * called from any thread while the runtime runs.
 *
 * Undefined behaviour, not reported in normal builds: using a handle after
 * its last reference was dropped (await, result, done, cancel, ref, unref,
 * name), dropping more references than were taken (a second unref of one
 * handle frees the record while the task may still run), unref of the
 * pointer weft_task_current() returns (borrowed), using any handle after
 * weft_run() returned, and using a pointer into a task's stack after the
 * task finished. Records and stacks are recycled, so such misuse reads
 * another task's record. In ASan builds (WEFT_SANITIZE=address) free
 * records and free stacks are poisoned, and it is reported as
 * use-after-poison, unless the record was already reused by a new task.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "common.h"

WEFT_BEGIN_DECLS

/* A reference-counted task handle. */
typedef struct weft_task weft_task_t;

/* A task body (asyncio: a coroutine function). Its return value is the task's
 * result; its status is 0 unless it calls weft_task_fail() or is cancelled
 * (see weft_task_await()). */
typedef void *(*weft_task_fn)(void *arg);

/* Longest task name kept, in bytes, without the terminating NUL; longer
 * names are truncated. */
#define WEFT_TASK_NAME_MAX 31

/* Spawn options. Initialise with weft_spawn_opts_init(). */
typedef struct weft_spawn_opts {
  /* Task name (asyncio: create_task(name=...)), copied; NULL = "task-N". */
  const char *name;
  /* Pin the task to worker `pin` (0-based) for its whole life: it is never
   * stolen and always resumes there. -1 (the default) = not pinned. */
  int pin;
  /* Called as discard(arg), exactly once, if the task ends without its body
   * having run: cancelled before its first run (weft_task_cancel(), a task
   * group, the runtime's shutdown), or no stack could be had (WEFT_ENOMEM).
   * So a task whose `arg` owns memory or resources releases them even when
   * it never starts. It runs on a worker thread, outside any task, before
   * the task's completion is visible to its awaiters: it must not suspend
   * (weft calls that need a task return WEFT_ENOTTASK there). Never called
   * once the body has started. NULL (the default) = nothing. */
  void (*discard)(void *arg);
} weft_spawn_opts_t;

/* Fill opts with the defaults. Never fails. */
WEFT_EXTERN void weft_spawn_opts_init(weft_spawn_opts_t *opts);

/* asyncio.create_task(fn(arg)): create a task that runs fn(arg) concurrently
 * with the caller and, if out is not NULL, store a handle to it in *out (one
 * reference, released with weft_task_unref()). With out NULL the task is
 * detached: it runs to completion and frees itself.
 *
 * Errors: WEFT_EINVAL (fn NULL), WEFT_ENOTTASK (called outside a task),
 * WEFT_ENOMEM (no memory, or the runtime's max_tasks reached),
 * WEFT_ERUNTIME_SHUTDOWN (the runtime is shutting down). Does not suspend: the
 * new task is only queued. Its stack is taken when it first runs; if none can
 * be mapped then, the task ends without running, with status WEFT_ENOMEM. A
 * task cancelled before it first runs (weft_task_cancel(), a task group, the
 * runtime's shutdown) never runs either, as asyncio never starts such a
 * coroutine: it ends with status WEFT_ECANCELED and gets no stack. A body
 * that never runs releases nothing: give weft_spawn_ex() a `discard`
 * function (weft_spawn_opts_t) to release what `arg` owns in that case. */
WEFT_EXTERN int weft_spawn(weft_task_fn fn, void *arg, weft_task_t **out);

/* weft_spawn() with options (opts NULL = defaults). Extra error: WEFT_EINVAL
 * for a pin outside 0..workers-1. */
WEFT_EXTERN int weft_spawn_ex(weft_task_fn fn, void *arg,
                              const weft_spawn_opts_t *opts, weft_task_t **out);

/* await task: wait until t finishes and return its status; its result is
 * stored in *result if result is not NULL (NULL is stored when the status is
 * not 0). Awaiting a finished task returns at once, as often as asked, from
 * any number of tasks. Does not release the handle.
 *
 * A task's status is:
 *  - the error passed to weft_task_fail(), if it called it;
 *  - WEFT_ECANCELED if it was cancelled (a cancellation was requested and it
 *    did not call weft_task_uncancel() afterwards), whatever it returned;
 *  - 0 otherwise.
 *
 * Cancelling the awaiting task while it waits cancels t too, as in asyncio
 * (Task.cancel() cancels what the task awaits): the awaiter then waits for t
 * to finish and gets t's outcome, which is WEFT_ECANCELED unless t handled
 * the cancellation (weft_task_uncancel()) and finished otherwise. Use
 * weft_task_shield() to wait without passing a cancellation on.
 *
 * Errors: WEFT_EINVAL (t NULL), WEFT_ENOTTASK (outside a task), WEFT_EDEADLK
 * (t is the calling task: asyncio's "Task cannot await on itself"),
 * WEFT_ECANCELED (see above). Suspends unless t has finished. */
WEFT_EXTERN int weft_task_await(weft_task_t *t, void **result);

/* await asyncio.shield(t): as weft_task_await(), except that cancelling the
 * caller does not cancel t: the caller's wait returns WEFT_ECANCELED at once
 * and t runs on (await or cancel it later through its handle). Errors as
 * weft_task_await(). Suspends unless t has finished. */
WEFT_EXTERN int weft_task_shield(weft_task_t *t, void **result);

/* asyncio.wait_for(t, timeout_ms / 1000): await t for at most timeout_ms
 * milliseconds (WEFT_NO_TIMEOUT: without limit, as weft_task_await()). On
 * timeout, t is cancelled and awaited (so it has finished
 * when this returns) and WEFT_ETIMEDOUT is returned if t ended cancelled; if
 * t handled the cancellation and finished otherwise (weft_task_uncancel(),
 * weft_task_fail()), its own status and result are returned. If the caller is
 * cancelled while waiting, t is cancelled too and awaited, as by
 * weft_task_await(), whose outcome rules apply. Suspends. */
WEFT_EXTERN int weft_task_wait_for(weft_task_t *t, uint64_t timeout_ms,
                                   void **result);

/* task.cancel(): request cancellation of t. Its current or next suspension
 * point returns WEFT_ECANCELED, whatever state t is in (running, sleeping,
 * awaiting); a t that has not started yet never starts, and finishes with
 * status WEFT_ECANCELED (see weft_spawn()). Returns 1 if a request was
 * made, 0 if t had already finished (asyncio returns False). WEFT_EINVAL if
 * t is NULL. Does not suspend. May be called from any thread while t's runtime runs: from a
 * thread that is not one of its workers (a thread of the program's own, a
 * task of another runtime) the request is made under the runtime's
 * submission lock (see foreign.h), so weft_run() cannot end, and free what
 * the wake-up touches, before the call has returned. Once main has
 * finished, the request is only recorded: the shutdown cancels and wakes
 * every task anyway. */
WEFT_EXTERN int weft_task_cancel(weft_task_t *t);

/* task.uncancel(): withdraw one cancellation request of the calling task,
 * after its suspension point returned WEFT_ECANCELED, so that it may finish
 * with status 0 or keep running normally. When no request remains, one not
 * yet delivered is withdrawn too (as in Python 3.13). Returns the number of
 * requests that remain, or WEFT_ENOTTASK outside a task. Does not suspend. */
WEFT_EXTERN int weft_task_uncancel(void);

/* task.cancelling(): the number of pending cancellation requests of the
 * calling task, or WEFT_ENOTTASK outside a task. */
WEFT_EXTERN int weft_task_cancelling(void);

/* Set the calling task's status to err (a negative code, the task's
 * "exception") and return NULL, so a task body can end with
 * `return weft_task_fail(WEFT_EIO);`. err >= 0 is ignored. Outside a task it
 * does nothing and returns NULL. */
WEFT_EXTERN void *weft_task_fail(int err);

/* task.done(): 1 if t has finished, 0 if not, WEFT_EINVAL if t is NULL. */
WEFT_EXTERN int weft_task_done(const weft_task_t *t);

/* task.result() without raising: if t has finished, its status (and *result
 * as weft_task_await() would); otherwise WEFT_EAGAIN (asyncio's
 * InvalidStateError). WEFT_EINVAL if t is NULL. Does not suspend. */
WEFT_EXTERN int weft_task_result(const weft_task_t *t, void **result);

/* asyncio.current_task(): the calling task, or NULL outside a task. The
 * returned pointer is borrowed (no reference is added). */
WEFT_EXTERN weft_task_t *weft_task_current(void);

/* Add a reference to t and return t. t must be a live handle. */
WEFT_EXTERN weft_task_t *weft_task_ref(weft_task_t *t);

/* Drop a reference. Dropping the last one of a running task detaches it: it
 * runs on and frees itself when it finishes. NULL is ignored. */
WEFT_EXTERN void weft_task_unref(weft_task_t *t);

/* task.get_name(): t's name (NULL t = the calling task); NULL outside a
 * task when t is NULL. The pointer is into t's record and valid while the
 * caller holds a reference to t; its bytes are one whole name unless
 * weft_task_set_name() renames t while they are read. So use it for the
 * calling task's own name, or where nothing renames t meanwhile; a thread
 * that may race with a rename reads the name with weft_task_name_copy(). */
WEFT_EXTERN const char *weft_task_name(const weft_task_t *t);

/* t's name (NULL t = the calling task) copied into buf, NUL-terminated and
 * truncated to size - 1 bytes. Returns the name's length (as strlen; a value
 * >= size means the copy was truncated, as with snprintf), WEFT_EINVAL (buf
 * NULL with size > 0) or WEFT_ENOTTASK (t NULL outside a task). The copy is
 * always one whole name, the old or the new one, even while another thread
 * renames t. Any thread while t's runtime runs; does not suspend. */
WEFT_EXTERN int weft_task_name_copy(const weft_task_t *t, char *buf,
                                    size_t size);

/* task.set_name(): copy name (truncated to WEFT_TASK_NAME_MAX bytes) into t's
 * name (NULL t = the calling task). WEFT_EINVAL if name is NULL, WEFT_ENOTTASK
 * if t is NULL outside a task. Any thread while t's runtime runs; renames of
 * one task from several threads are serialised (the last one wins).
 * Readers that may run meanwhile use weft_task_name_copy(). */
WEFT_EXTERN int weft_task_set_name(weft_task_t *t, const char *name);

/* Task-local storage: one pointer per task. Reads and writes the calling
 * task's slot; WEFT_ENOTTASK (set) or NULL (get) outside a task. Use it
 * instead of thread-local variables, which change under a task that moves
 * to another worker.
 *
 * A spawned task starts with a copy of its parent's value at the moment of
 * weft_spawn() (contextvars: create_task copies the current context); later
 * changes on either side do not reach the other. The pointer is copied, not
 * what it points to. The main task and tasks submitted from other threads
 * (weft_runtime_submit()) start with NULL. */
WEFT_EXTERN int weft_task_set_local(void *value);
WEFT_EXTERN void *weft_task_local(void);

/* asyncio.gather(*tasks): await all n tasks, which already run concurrently.
 * Returns 0 once all have finished with status 0, storing each result in
 * results[i] (results may be NULL). As in asyncio's default, the first
 * failure (lowest index among those found failed when the caller wakes) is
 * returned as soon as it is seen, and the other tasks keep running. If the
 * caller is cancelled while waiting, every task not yet finished is
 * cancelled and awaited, and WEFT_ECANCELED is returned (as in asyncio). When
 * it returns early on a failure, results[i] of the tasks still running is
 * NULL. Errors: WEFT_EINVAL
 * (tasks NULL with n > 0, or a NULL entry), WEFT_ENOTTASK, WEFT_EDEADLK (the
 * caller is among the tasks), WEFT_ENOMEM. Suspends unless all are done. */
WEFT_EXTERN int weft_gather(weft_task_t *const *tasks, size_t n,
                            void **results);

/* asyncio.gather(*tasks, return_exceptions=True): await all n tasks and store
 * each status in statuses[i] and each result in results[i] (either array may
 * be NULL). Returns 0 once all have finished, whatever their statuses. On
 * cancellation of the caller, as weft_gather(). Other errors as
 * weft_gather(). */
WEFT_EXTERN int weft_gather_all(weft_task_t *const *tasks, size_t n,
                                void **results, int *statuses);

/* asyncio.sleep(ms / 1000): suspend the calling task for at least ms
 * milliseconds. weft_sleep(0) is asyncio.sleep(0): the task goes to the back
 * of the run queue and runs again after the worker has polled I/O and timers.
 * Returns 0, WEFT_ECANCELED, or WEFT_ENOTTASK outside a task. Suspends. */
WEFT_EXTERN int weft_sleep(uint64_t ms);

/* Let other ready tasks run: the same as weft_sleep(0). Returns 0,
 * WEFT_ECANCELED, or WEFT_ENOTTASK outside a task. Suspends. */
WEFT_EXTERN int weft_yield(void);

/* Milliseconds of the runtime's monotonic clock (asyncio: loop.time(), in ms),
 * or 0 outside a task. Does not suspend. */
WEFT_EXTERN uint64_t weft_time_ms(void);

WEFT_END_DECLS

#endif /* WEFT_TASK_H */
