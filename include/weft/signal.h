/*
 * weft signals: tasks that wait for POSIX signals, and signal handlers that
 * run as tasks (asyncio loop.add_signal_handler / remove_signal_handler).
 *
 * Delivery is once per runtime, not once per worker: each signal a runtime
 * watches has one libuv signal handle, on worker 0's loop, whichever task
 * asked for it and wherever that task runs. The process-level handler is
 * libuv's: it only writes the signal number to worker 0's loop, which
 * then, in the scheduler (never in signal context), counts the signal in
 * every watcher of it, wakes their waiting tasks and has the handler, if
 * any, run in a new task. Worker 0 runs its loop when it parks (a parked
 * worker 0 wakes at once) and, while it is busy, at least once every 61
 * task resumptions it makes; a task that runs on worker 0 without
 * suspending delays signals, as it delays every timer and stream homed
 * there (docs/design.md, "Signals"). Two runtimes that run at the same time
 * and watch the same signal each get it.
 *
 * Signal numbers: 1..64 (Linux), except SIGKILL and SIGSTOP (cannot be
 * caught), SIGSEGV, SIGBUS, SIGFPE and SIGILL (synchronous faults, which
 * cannot be handled later, in a task; SIGSEGV is also weft's stack-overflow
 * report), SIGPIPE (weft ignores it so that a write to a closed socket
 * fails with WEFT_EPIPE) and the two real-time signals below SIGRTMIN that
 * the C library keeps for its threads: all give WEFT_EINVAL. SIGINT gives
 * WEFT_EBUSY while a runtime of the process runs with
 * weft_config_t.sigint_cancels_main set and owns it (weft/runtime.h).
 * SIGCHLD is allowed, next to weft/process.h: libuv's one handler serves
 * its child watchers and weft's watchers alike, each sees every SIGCHLD,
 * and subprocesses are still reaped (their exit is not a watcher's to
 * take).
 *
 * Dispositions: while a runtime watches a signal (a watcher or a handler),
 * libuv's handler is installed for it, replacing whatever disposition it
 * had (SIG_IGN included). When the last watcher and handler of a signal in
 * the process are gone, at the latest when weft_run() returns, the
 * disposition is set back to SIG_DFL (not to the one it had before), as
 * asyncio's remove_signal_handler() does.
 */
#ifndef WEFT_SIGNAL_H
#define WEFT_SIGNAL_H

#include "common.h"

WEFT_BEGIN_DECLS

/* A signal watcher: a set of signals and, for each, how many deliveries
 * have not been taken by weft_signal_wait() yet. */
typedef struct weft_signal weft_signal_t;

/* Start watching the n signals in signums[] (duplicates are allowed):
 * from this call on, every delivery of one of them to the process is
 * counted in the watcher until a weft_signal_wait() takes it. *out is NULL
 * on failure. Errors: WEFT_EINVAL (signums or out NULL, n 0, a signal
 * number listed in the header comment), WEFT_EBUSY (SIGINT owned by
 * weft_run(): see the header comment), WEFT_ENOTTASK (outside a task),
 * WEFT_ENOMEM, or libuv's error installing the handler. The watcher
 * belongs to the calling task's runtime; one not freed is freed when the
 * runtime ends. May move the task to worker 0 (not a cancellation point). */
WEFT_EXTERN int weft_signal_new(const int *signums, size_t n,
                                weft_signal_t **out);

/* sigwait() for a task: take one pending delivery of the watcher's signals,
 * waiting for one for at most timeout_ms (WEFT_NO_TIMEOUT: no limit; 0: only
 * looks). Pending deliveries are taken lowest signal number first. Returns 0
 * with the signal's number in *signum (signum may be NULL). Errors:
 * WEFT_ETIMEDOUT, WEFT_ECANCELED, WEFT_EINVAL (s NULL), WEFT_ENOTTASK,
 * WEFT_EOTHER_RUNTIME (s belongs to another runtime). A wait that times out
 * or is cancelled takes nothing: a signal that arrives meanwhile stays
 * pending in the watcher for the next wait, and a signal that arrived
 * before the cancellation was delivered is returned (0) instead, the
 * cancellation then pending for the next suspension point. Several tasks
 * may wait on one watcher: each delivery is taken by one of them. Suspends;
 * a cancellation point. */
WEFT_EXTERN int weft_signal_wait(weft_signal_t *s, uint64_t timeout_ms,
                                 int *signum);

/* Number of deliveries pending in s (counted and not taken), or
 * WEFT_EINVAL (s NULL), WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME. May move the
 * task to worker 0 (not a cancellation point). */
WEFT_EXTERN int weft_signal_pending(weft_signal_t *s);

/* Stop watching and free s; deliveries still pending are dropped. NULL is
 * ignored (0). Errors: WEFT_EBUSY (a task is waiting on s: nothing is
 * done), WEFT_ENOTTASK, WEFT_EOTHER_RUNTIME. May move the task to worker 0
 * (not a cancellation point). */
WEFT_EXTERN int weft_signal_free(weft_signal_t *s);

/* A signal handler: runs in a task of its own, spawned for each delivery,
 * so it may suspend, and several runs of it may overlap. */
typedef void (*weft_signal_fn)(int signum, void *arg);

/* loop.add_signal_handler(signum, fn, arg): from now on, each delivery of
 * signum to the process spawns a task that runs fn(signum, arg), with the
 * task-local value (weft_task_local()) the calling task had at this call.
 * Replaces the handler signum had in this runtime. Handler tasks are
 * ordinary tasks of the runtime: its shutdown cancels them, and a delivery
 * during the shutdown runs no handler. Errors: WEFT_EINVAL (fn NULL, a
 * signal number listed in the header comment), WEFT_EBUSY (SIGINT owned by
 * weft_run()), WEFT_ENOTTASK, WEFT_ERUNTIME_SHUTDOWN, WEFT_ENOMEM, or
 * libuv's error installing the handler. May move the task to worker 0 (not
 * a cancellation point). */
WEFT_EXTERN int weft_signal_add_handler(int signum, weft_signal_fn fn,
                                        void *arg);

/* loop.remove_signal_handler(signum): remove signum's handler from this
 * runtime. Returns 1 if one was removed, 0 if there was none; deliveries
 * whose task was not spawned yet run no handler. Errors: WEFT_EINVAL (a
 * signal number listed in the header comment), WEFT_ENOTTASK. May move the
 * task to worker 0 (not a cancellation point). */
WEFT_EXTERN int weft_signal_remove_handler(int signum);

WEFT_END_DECLS

#endif /* WEFT_SIGNAL_H */
