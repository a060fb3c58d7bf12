/*
 * weft offload: run a blocking function on libuv's thread pool while the
 * calling task suspends (asyncio.to_thread, loop.run_in_executor(None, ...)).
 *
 * The pool is libuv's: global to the process, shared with name resolution
 * and file operations, UV_THREADPOOL_SIZE threads (4 by default, read once
 * when the pool first starts). A function that blocks for long occupies one
 * of those threads for as long: a program that offloads many long waits
 * should raise UV_THREADPOOL_SIZE before its first weft_run().
 *
 * Cancellation (asyncio's semantics): a function that has not started yet is
 * taken off the pool's queue and never runs; one that is running cannot be
 * interrupted, so the cancelled call returns WEFT_ECANCELED at once and the
 * function runs to its end on the pool, where its result is discarded
 * (weft_thread_opts_t.discard, given to weft_to_thread_ex(), frees it). The
 * runtime's shutdown waits for every such function to return: weft_run()
 * returns only after the last offloaded function of its runtime has finished,
 * as asyncio.run() waits for the default executor, but for at most
 * weft_config_t.offload_grace_ms (5 s by default) after its last task ended.
 * Past that, each function still running is reported on stderr and left
 * running, and weft_run() returns main's status; left behind on purpose
 * are the request, the worker's event loop (not closed: libuv hands the
 * request back to it when the function returns) with its descriptors and
 * the memory holding it, and the result (neither delivered nor discarded).
 * libuv joins its pool threads at a normal process exit, so a function that
 * never returns keeps exit() from completing (_exit() does not wait).
 */
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include "common.h"

WEFT_BEGIN_DECLS

/* A blocking function run on the thread pool. It runs on a pool thread, not
 * in a task: it must not call weft functions that need a task (they return
 * WEFT_ENOTTASK there); the thread-safe ones (weft_queue_try_put(),
 * weft_event_set()...) are fine. Its return value is the call's result. */
typedef void *(*weft_thread_fn)(void *arg);

/* Frees the result of a function whose caller was cancelled while it ran
 * (see weft_thread_opts_t). */
typedef void (*weft_discard_fn)(void *result);

/* Options of weft_to_thread_ex(). Initialise with weft_thread_opts_init(). */
typedef struct weft_thread_opts {
  /* For functions whose result owns memory: if the calling task is
   * cancelled while fn runs, discard(result) is called exactly once when fn
   * returns (on the worker thread that issued the call, from its event
   * loop, outside any task), so the abandoned result is not leaked. Never
   * called when the result was delivered, nor when fn never ran. NULL (the
   * default) = the abandoned result is dropped. */
  weft_discard_fn discard;
} weft_thread_opts_t;

/* Fill opts with the defaults. Never fails; opts NULL is ignored. */
WEFT_EXTERN void weft_thread_opts_init(weft_thread_opts_t *opts);

/* asyncio.to_thread(fn, arg): run fn(arg) on libuv's thread pool and suspend
 * the calling task until it returns; store its return value in *result if
 * result is not NULL (NULL is stored on any error).
 *
 * Errors: WEFT_EINVAL (fn NULL), WEFT_ENOTTASK (outside a task), WEFT_ENOMEM,
 * WEFT_ECANCELED (the task was cancelled: if fn had not started it never
 * runs; if it was running it runs to its end and its result is lost; with a
 * cancellation already pending at the call, fn is not queued at all).
 * Suspends. */
WEFT_EXTERN int weft_to_thread(weft_thread_fn fn, void *arg, void **result);

/* weft_to_thread() with options (opts NULL = the defaults, the same as
 * weft_to_thread()). Same returns and errors. Suspends. */
WEFT_EXTERN int weft_to_thread_ex(weft_thread_fn fn, void *arg,
                                  const weft_thread_opts_t *opts,
                                  void **result);

WEFT_END_DECLS

#endif /* WEFT_OFFLOAD_H */
