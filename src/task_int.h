/*
 * The task layer's internal calls (task.c): spawn and join helpers for the
 * features above it, the completion steps of the record kinds, and the
 * records of the main task and of tasks submitted from outside.
 */
#ifndef WEFT_TASK_INT_H
#define WEFT_TASK_INT_H

#include "weft.h"

#include "record.h"
#include "wait_int.h"

#include <stddef.h>
#include <stdint.h>

/* The argument checks of every call that waits for several tasks (gather,
 * wait, as_completed): WEFT_EINVAL (tasks NULL with n > 0, a NULL entry),
 * WEFT_ENOTTASK (not in a task; *self is then NULL), WEFT_EDEADLK (the
 * calling task is among them), else 0 with the calling task in *self. */
int weft__tasks_check(weft_task_t *const *tasks, size_t n,
                      weft_task_t **self);
/* The skeleton of every call that waits for several tasks at once (gather,
 * weft_wait): link a join waiter on each of tasks[0..n), then, until
 * ready(arg) holds, poll the wait context (deadline, timeout scopes,
 * cancellation) and park; detach every waiter still linked before it
 * returns (waitset.c protocol). Returns 0 once ready, WEFT_ETIMEDOUT or
 * WEFT_ECANCELED from the poll, or WEFT_ENOMEM (n > 8 and no memory for
 * the waiters; nothing linked, ready never called). Cancels nothing: what a
 * cancellation does to the tasks is the caller's. */
int weft__tasks_wait(weft_task_t *const *tasks, size_t n, weft_task_t *self,
                     uint64_t deadline, int (*ready)(void *arg), void *arg);

/* Link wt on t's join queue so that t's completion claims it and wakes
 * `waiter` (task.c protocol step 3; wait.c handshake). Returns 1 if linked
 * (detach it with weft__waiter_detach(wt, &t->joinq_lock) unless it fired),
 * 0 if t had already completed (nothing linked; t's outcome is visible). */
int weft__task_join_link(weft_task_t *t, weft__waiter_t *wt,
                         weft_task_t *waiter);
/* The completion steps a record kind's complete hook is made of
 * (record.h): publish sets the final status (WEFT_ECANCELED if a request
 * is pending), calls `discard` if the body never ran, sets COMPLETE and
 * wakes the joiners; drop_own_ref drops the reference the task held on
 * itself, releasing the record if it was the last. */
void weft__task_publish(weft_task_t *t);
void weft__task_drop_own_ref(weft_task_t *t);
/* The main task's record (runtime.c): malloc'ed, two references (its own
 * and weft_run's, weft__task_unref_main), of the given kind. */
weft_task_t *weft__task_new_main(weft_runtime_t *rt, weft_task_fn fn,
                                 void *arg, const weft__task_kind_t *kind);
/* weft_spawn_ex() for the library's own tasks whose body must run to
 * release what it was handed (server acceptors and connection tasks): it
 * starts even if cancelled before its first run, and its first suspension
 * point then returns WEFT_ECANCELED. weft__task_start_cancelled() tells the
 * body, at its start, whether that happened. */
int weft__spawn_always(const weft_spawn_opts_t *opts, weft_task_fn fn,
                       void *arg, weft_task_t **out);
void weft__task_unref_main(weft_task_t *t);
/* A record for a task submitted from outside (foreign.c): malloc'ed, `size`
 * bytes (a multiple of 64, >= sizeof(weft_task_t)) with the record first;
 * one reference (held until it completes), SCHEDULED, local NULL, of the
 * given kind. */
weft_task_t *weft__task_new_foreign(weft_runtime_t *rt, weft_task_fn fn,
                                    void *arg, size_t size,
                                    const weft__task_kind_t *kind);
void weft__task_free_foreign(weft_task_t *t);

/* t's status, for a caller that hands it to the program (await, result,
 * gather, a task group's failure): marks it as retrieved, so that debug
 * mode does not report the failure as never retrieved (task.c). */
static inline int weft__task_status_read(const weft_task_t *ct) {
  weft_task_t *t = (weft_task_t *)(uintptr_t)ct; /* the flag is the library's */
  /* relaxed: read by the dropper of the last reference, which the
   * reference count's acq_rel orders after this (the reader holds one). */
  atomic_store_explicit(&t->status_read, 1, memory_order_relaxed);
  return t->status;
}

#endif /* WEFT_TASK_INT_H */
