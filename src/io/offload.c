/*
 * Offload (asyncio.to_thread): a blocking function runs on libuv's thread
 * pool while the calling task suspends on the worker that queued it.
 *
 * Protocol (the home-worker protocol of io/home.c, with the thread pool as
 * the "handle"):
 *  1. The task routes itself to the worker it runs on (weft__io_enter) and
 *     queues a heap-allocated request with uv_queue_work on that worker's
 *     loop: libuv's rule is that the pool is fed from the loop's thread, and
 *     the route keeps every later step of the call on that thread.
 *  2. A pool thread runs the function and stores its result in the request;
 *     libuv hands the request back to the loop under its own mutex and
 *     uv_async_send, so the result is visible when after_work runs there.
 *  3. after_work (scheduler context, on the same worker) sets `done` and
 *     wakes the task, which the route brings back to this worker; it reads
 *     the result and frees the request. The request is owner-only: the task
 *     and the callback run on one thread and never at the same time.
 *  4. Cancellation: the wait returns WEFT_ECANCELED with `done` still 0. The
 *     task clears `task` (the request is now the callback's to free) and
 *     calls uv_cancel. If the function had not started, uv_cancel takes it
 *     off the pool's queue and after_work runs with UV_ECANCELED: the
 *     function never ran and there is nothing to discard. Otherwise the
 *     function runs to its end and after_work passes its result to the
 *     caller's discard function, exactly once, then frees the request. The
 *     task never waits for a running function: it returns at once, as
 *     asyncio's to_thread does.
 *  5. Shutdown: a pending uv_work_t is an active request of the loop, so
 *     worker_close (runtime.c) runs the loop (weft__offload_drain) until
 *     every after_work of this worker has run before it closes the loop:
 *     the runtime waits for running functions, frees abandoned requests and
 *     discards their results, and never closes a loop with work
 *     outstanding. Every task has finished by then, so only abandoned
 *     requests can be left. Every request is on its worker's `offloads`
 *     list (owner-only: queued by a task routed to the worker, unlinked by
 *     after_work on the same thread) from uv_queue_work to after_work.
 *     File-system requests (io/file.c), abandoned ones included, are on
 *     the worker's `fsreqs` list and are waited for, bounded and reported
 *     the same way.
 *  6. The wait is bounded by cfg.offload_grace_ms (a timer on the loop,
 *     unreferenced so that it alone does not keep the loop alive). Past
 *     it, each request still listed is reported on stderr and the loop is
 *     left behind: not closed, and the worker array holding it is never
 *     freed (runtime.c), so the pool thread that still runs the function
 *     finds its request (heap, never freed either) and the loop's work
 *     queue, mutex and async handle intact when the function returns and
 *     libuv hands the request back. Nothing runs that loop again:
 *     after_work never runs, the result is neither delivered nor
 *     discarded. The loop's descriptors stay open.
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/io.h"
#include "list.h"
#include "record.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "wait_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct offload_op {
  uv_work_t req;           /* the pool request; req.data is the op */
  weft__list_t link;       /* in the worker's offloads list (step 5) */
  weft_thread_fn fn;       /* the blocking function */
  void *arg;               /* its argument */
  weft_discard_fn discard; /* frees an abandoned result, or NULL */
  void *result;            /* fn's return value (written on the pool) */
  weft_task_t *task;       /* the waiting task; NULL once it left (step 4) */
  int done;                /* after_work ran (step 3) */
  int status;              /* after_work's status: 0 or UV_ECANCELED */
} offload_op_t;

static void work_cb(uv_work_t *req) {
  offload_op_t *op = req->data;
  op->result = op->fn(op->arg);
}

static void after_work_cb(uv_work_t *req, int status) {
  offload_op_t *op = req->data;
  weft__list_remove(&op->link);
  if (!op->task) { /* abandoned by a cancelled caller (step 4) */
    if (status == 0 && op->discard)
      op->discard(op->result);
    weft__free(op);
    return;
  }
  op->status = status;
  op->done = 1;
  weft__task_wake(op->task);
}

void weft_thread_opts_init(weft_thread_opts_t *opts) {
  if (opts)
    memset(opts, 0, sizeof(*opts));
}

int weft_to_thread_ex(weft_thread_fn fn, void *arg,
                      const weft_thread_opts_t *opts, void **result) {
  if (result)
    *result = NULL;
  if (!fn)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  /* A request already pending (or the runtime's shutdown): fn is not even
   * queued. */
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  offload_op_t *op = weft__malloc(sizeof(*op));
  if (!op)
    return WEFT_ENOMEM;
  op->req.data = op;
  op->fn = fn;
  op->arg = arg;
  op->discard = opts ? opts->discard : NULL;
  op->result = NULL;
  op->task = t;
  op->done = 0;
  op->status = 0;
  weft__worker_t *w = weft__worker_current();
  weft__io_enter(t, w); /* step 1: after_work wakes t on w */
  int rc = uv_queue_work(&w->own.loop, &op->req, work_cb, after_work_cb);
  if (rc) {
    weft__io_leave(t);
    weft__free(op);
    return rc;
  }
  weft__list_push_back(&w->io.offloads, &op->link);
  weft__wait_note(t, WEFT_WAIT_OFFLOAD, op);
  rc = weft__io_wait_flag(t, &op->done, 0);
  if (rc) {
    /* Step 4; t still runs on w (the route), the loop's thread. */
    op->task = NULL;
    uv_cancel((uv_req_t *)&op->req);
    weft__io_leave(t);
    return rc;
  }
  rc = op->status;
  if (rc == 0 && result)
    *result = op->result;
  weft__free(op);
  weft__io_leave(t);
  return rc;
}

int weft_to_thread(weft_thread_fn fn, void *arg, void **result) {
  return weft_to_thread_ex(fn, arg, NULL, result);
}

/* ------------------------------------------------------------------------ */
/* Shutdown (steps 5 and 6)                                                  */

static void grace_cb(uv_timer_t *h) { *(int *)h->data = 1; }

static void grace_close_cb(uv_handle_t *h) { *(int *)h->data = 2; }

int weft__offload_drain(weft__worker_t *w) {
  uint64_t grace = w->own.rt->cfg.offload_grace_ms;
  if (grace == WEFT_NO_TIMEOUT ||
      (weft__list_empty(&w->io.offloads) && weft__list_empty(&w->io.fsreqs)))
    return 0; /* uv_run(UV_RUN_DEFAULT) waits for whatever is left */
  int expired = 0;
  uv_timer_t tm;
  uv_timer_init(&w->own.loop, &tm); /* cannot fail */
  tm.data = &expired;
  uv_timer_start(&tm, grace_cb, grace, 0);
  uv_unref((uv_handle_t *)&tm); /* the work keeps the loop alive, not it */
  while (!expired && (!weft__list_empty(&w->io.offloads) ||
                      !weft__list_empty(&w->io.fsreqs)))
    uv_run(&w->own.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tm, grace_close_cb);
  /* The close completes in the next iteration; never block here. */
  while (expired != 2)
    uv_run(&w->own.loop, UV_RUN_NOWAIT);
  if (weft__list_empty(&w->io.offloads) && weft__list_empty(&w->io.fsreqs))
    return 0;
  weft__file_report(w, grace);
  for (weft__list_t *n = w->io.offloads.next; n != &w->io.offloads;
       n = n->next) {
    offload_op_t *op = weft__container_of(n, offload_op_t, link);
    fprintf(stderr,
            "weft: offloaded function 0x%" PRIxPTR " (arg %p) still running "
            "%" PRIu64 " ms after the runtime's last task ended; weft_run "
            "returns without it (its loop is left behind)\n",
            (uintptr_t)op->fn, op->arg, grace);
  }
  return 1;
}
