/*
 * Crossing into a runtime from any thread: runtime handles, submission
 * (asyncio.run_coroutine_threadsafe) and futures.
 *
 * Handle lifetime: struct weft_runtime carries `refs`, 1 for weft_run plus
 * one per weft_runtime_ref(). weft_run frees the runtime's internals when it
 * ends (workers, queues, stacks, records) and then drops its reference; the
 * struct itself, whose `foreign` part is all that submission touches once
 * `closed` is set, is freed by the last weft_runtime_unref().
 *
 * Protocol (the hazard: a thread outside the runtime sends a uv_async_send
 * to a worker, and the runtime must not close that worker's async handle
 * under it; inside the runtime, wakes are only sent from run loops, which
 * runtime.c's exit handshake waits for):
 *  1. Every operation from outside that may wake a worker holds foreign.mu
 *     throughout: submission (the record is counted, linked and pushed to
 *     the inject queue with a forced notify under the lock),
 *     weft_future_cancel (the cancellation of the future's task) and
 *     weft_task_cancel from a thread that is no worker of the task's
 *     runtime (step 7).
 *  2. When main finishes, weft__foreign_close sets `closed` under mu and
 *     cancels every submitted task still alive (they are malloc'ed, so the
 *     shutdown walk of the record slabs does not see them); only then does
 *     runtime.c store `shutdown`. Submission checks `closed` under mu, so a
 *     task is either submitted before the close (counted, then cancelled by
 *     it) or refused with WEFT_ERUNTIME_SHUTDOWN.
 *  3. The quiescence check (sched/worker.c) adds foreign.spawned to the
 *     spawned counters after reading `shutdown` with acquire: the count is final
 *     then (step 2 came first), so the runtime cannot stop while a submitted
 *     task is alive, and no task can be submitted after it stopped.
 *  4. A submitted task that finishes calls foreign_complete (its record
 *     kind's completion, after COMPLETE, before its worker counts it
 *     finished): under mu it
 *     detaches its future, so a weft_future_cancel holding mu either runs
 *     before (the task has not been counted finished, so the runtime cannot
 *     stop and its handles stay open during the wake) or finds no task.
 *  5. The future then gets status and result under its mutex (done = 1,
 *     release; threads blocked in pthread_cond_wait are woken) and, under
 *     its spinlock, the tasks waiting in weft_future_wait are claimed and
 *     woken with the wait.c waiter handshake. A waiting task may belong to
 *     another runtime: that wake is also an outside wake, and it is safe for
 *     the same reason as any waiter's: the waiting task cannot return from
 *     its wait (let alone let its runtime stop) before the waker stored
 *     fired = 2 after the wake.
 *  6. Records stay on foreign.tasks until their last reference is dropped
 *     (foreign_release, its kind's release hook, under mu);
 *     weft__foreign_destroy frees what a
 *     program left referenced when weft_run ends, as the slabs are freed.
 *  7. weft_task_cancel from outside (task.c) posts its request
 *     and wakes the task under mu. The task may then finish and let main
 *     finish, but main's weft__foreign_close (step 2) needs mu, so the
 *     runtime cannot stop, let alone free the queues and handles the wake
 *     touches, before the canceller unlocked. A canceller that finds
 *     `closed` set posts the request without waking: shutdown is under way
 *     and cancels and wakes every task itself (runtime.c step 3), and the
 *     wake could otherwise race with the end of the runtime (nothing waits
 *     for mu after step 2). Inside the runtime no lock is needed: a worker
 *     wakes from its run loop, which the exit handshake waits for.
 *  Other calls documented for any thread need no lock: the sync primitives
 *  and queues wake through the waiter handshake (wait.c), whose woken task
 *  cannot return from its wait, and so cannot let the runtime stop, before
 *  the waker's last access; ref, unref, done, result and name wake nobody.
 *
 * A future is reference counted: one reference for the submitter (dropped by
 * weft_future_free) and one for the task until it completes (dropped by step
 * 5), so either side may go first. The future holds a reference to the
 * runtime handle, whose foreign.mu weft_future_cancel locks.
 */
#include "waitnote.h"
#include "alloc.h"
#include "foreign.h"
#include "list.h"
#include "record.h"
#include "report.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "task_int.h"
#include "timer.h"
#include "wait_int.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* A submitted task's record and its link to the future. tools/gdb reads
 * `link` by name. */
typedef struct foreign_rec {
  weft_task_t task;   /* first: the block is freed as the record */
  weft__list_t link;  /* in rt->foreign.tasks; under foreign.mu */
  weft_future_t *fut; /* under foreign.mu; NULL once completed (or none) */
} foreign_rec_t;

struct weft_future {
  pthread_mutex_t mu;    /* with cv: threads waiting for done */
  pthread_cond_t cv;     /* broadcast when done is set (CLOCK_MONOTONIC) */
  weft__spinlock_t lock; /* guards waiters */
  weft__list_t waiters;  /* weft__waiter_t of tasks in weft_future_wait */
  atomic_int done;       /* 1 once status and result are final */
  int status;            /* the task's status */
  void *result;          /* the task's result */
  atomic_uint refs;      /* submitter + task until it completed */
  weft_runtime_t *rt;    /* referenced; its foreign.mu guards task */
  weft_task_t *task;     /* under rt->foreign.mu; NULL once completed */
};

/* ------------------------------------------------------------------------ */
/* Runtime side                                                              */

void weft__foreign_init(weft_runtime_t *rt) {
  weft__foreign_t *fo = &rt->foreign;
  pthread_mutex_init(&fo->mu, NULL);
  fo->closed = 0;
  atomic_init(&fo->spawned, 0);
  weft__list_init(&fo->tasks);
  atomic_init(&rt->refs, 1); /* weft_run's */
}

void weft__foreign_close(weft_runtime_t *rt) {
  weft__foreign_t *fo = &rt->foreign;
  pthread_mutex_lock(&fo->mu);
  fo->closed = 1;
  for (weft__list_t *n = fo->tasks.next; n != &fo->tasks; n = n->next) {
    foreign_rec_t *rec = weft__container_of(n, foreign_rec_t, link);
    /* A no-op on a completed one; mu is held (and this is a worker). */
    weft__task_cancel_unguarded(&rec->task, 1);
  }
  pthread_mutex_unlock(&fo->mu);
}

static void future_unref(weft_future_t *f);

static void future_complete(weft_future_t *f, int status, void *result) {
  pthread_mutex_lock(&f->mu);
  f->status = status;
  f->result = result;
  /* release: status and result are visible to whoever acquires done. */
  atomic_store_explicit(&f->done, 1, memory_order_release);
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);

  /* Tasks: done was set before this lock is taken, so a waiter either
   * linked itself before (and is claimed here) or sees done (step 5). */
  weft__list_t claimed, *n;
  weft__list_init(&claimed);
  weft__spin_lock(&f->lock);
  while (!weft__list_empty(&f->waiters)) {
    weft__waiter_t *wt =
        weft__container_of(f->waiters.next, weft__waiter_t, link);
    weft__waiter_claim(wt); /* unlinks it */
    weft__list_push_back(&claimed, &wt->link);
  }
  weft__spin_unlock(&f->lock);
  while ((n = weft__list_pop_front(&claimed))) {
    weft__waiter_t *wt = weft__container_of(n, weft__waiter_t, link);
    weft__waiter_complete(wt, wt->task);
  }
}

static void foreign_complete(weft_task_t *t) {
  foreign_rec_t *rec = (foreign_rec_t *)t;
  weft__foreign_t *fo = &t->rt->foreign;
  pthread_mutex_lock(&fo->mu);
  weft_future_t *f = rec->fut;
  rec->fut = NULL;
  if (f)
    f->task = NULL;
  pthread_mutex_unlock(&fo->mu);
  if (f) {
    future_complete(f, t->status, t->result);
    future_unref(f); /* the task's reference */
  }
}

static void foreign_release(weft_task_t *t) {
  foreign_rec_t *rec = (foreign_rec_t *)t;
  weft__foreign_t *fo = &t->rt->foreign;
  pthread_mutex_lock(&fo->mu);
  weft__list_remove(&rec->link);
  pthread_mutex_unlock(&fo->mu);
  weft__task_free_foreign(t);
}

/* A submitted task's completion: a spawned task's, with its future
 * completed before it is counted finished (protocol step 4). */
static void foreign_task_complete(weft__worker_t *w, weft_task_t *t) {
  weft__task_publish(t);
  foreign_complete(t);
  weft__count_finished(w);
  weft__task_drop_own_ref(t);
}

static const weft__task_kind_t foreign_kind = {
    .complete = foreign_task_complete,
    .release = foreign_release,
    .done_via_sched = 0};

void weft__foreign_destroy(weft_runtime_t *rt) {
  weft__foreign_t *fo = &rt->foreign;
  weft__list_t *n;
  pthread_mutex_lock(&fo->mu);
  fo->closed = 1; /* also when main never ran (start-up failure) */
  while ((n = weft__list_pop_front(&fo->tasks))) {
    /* Finished tasks whose handles the program never released. */
    foreign_rec_t *rec = weft__container_of(n, foreign_rec_t, link);
    weft__task_free_foreign(&rec->task);
  }
  pthread_mutex_unlock(&fo->mu);
  weft_runtime_unref(rt); /* weft_run's reference */
}

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */

weft_runtime_t *weft_runtime_current(void) {
  weft__worker_t *w = weft__worker_current();
  return w && w->own.current ? w->own.rt : NULL;
}

weft_runtime_t *weft_runtime_ref(weft_runtime_t *rt) {
  if (rt)
    /* relaxed: the caller already holds a reference. */
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
  return rt;
}

void weft_runtime_unref(weft_runtime_t *rt) {
  /* acq_rel: the last dropper sees every other holder's accesses. */
  if (rt &&
      atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) == 1) {
    pthread_mutex_destroy(&rt->foreign.mu);
    weft__aligned_free(rt);
    weft__alloc_runtime_gone();
  }
}

/* ------------------------------------------------------------------------ */
/* Submission                                                                */

static weft_future_t *future_new(weft_runtime_t *rt) {
  weft_future_t *f = weft__malloc(sizeof(*f));
  if (!f)
    return NULL;
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) {
    weft__free(f);
    return NULL;
  }
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (rc != 0) {
    weft__free(f);
    return NULL;
  }
  pthread_mutex_init(&f->mu, NULL);
  atomic_init(&f->lock.locked, 0);
  weft__list_init(&f->waiters);
  atomic_init(&f->done, 0);
  f->status = 0;
  f->result = NULL;
  atomic_init(&f->refs, 2); /* submitter + task */
  f->rt = weft_runtime_ref(rt);
  f->task = NULL;
  return f;
}

static void future_destroy(weft_future_t *f) {
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  weft_runtime_unref(f->rt);
  weft__free(f);
}

static void future_unref(weft_future_t *f) {
  /* acq_rel: the last dropper sees the other side's accesses. */
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
    future_destroy(f);
}

int weft_runtime_submit(weft_runtime_t *rt, weft_task_fn fn, void *arg,
                        weft_future_t **out) {
  if (out)
    *out = NULL;
  if (!rt || !fn)
    return WEFT_EINVAL;
  weft__foreign_t *fo = &rt->foreign;
  weft_future_t *f = NULL;
  if (out && !(f = future_new(rt)))
    return WEFT_ENOMEM;
  /* The record is allocated before the lock and only published under it. */
  foreign_rec_t *rec = (foreign_rec_t *)weft__task_new_foreign(
      rt, fn, arg, sizeof(foreign_rec_t), &foreign_kind);
  if (!rec) {
    if (f)
      future_destroy(f);
    return WEFT_ENOMEM;
  }
  int rc = 0;
  pthread_mutex_lock(&fo->mu);
  if (fo->closed) {
    rc = WEFT_ERUNTIME_SHUTDOWN;
  } else if (rt->cfg.max_tasks &&
             /* relaxed: a counter; the limit is approximate under races. */
             atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed) >=
                 rt->cfg.max_tasks) {
    atomic_fetch_sub_explicit(&rt->live, 1, memory_order_relaxed);
    rc = WEFT_ENOMEM;
  }
  if (rc) {
    pthread_mutex_unlock(&fo->mu);
    weft__task_free_foreign(&rec->task);
    if (f)
      future_destroy(f);
    if (rc == WEFT_ERUNTIME_SHUTDOWN) /* debug mode: say where */
      return weft__report_misuse(&rt->cfg, "weft_runtime_submit", rc,
                                 "on a runtime whose main task has "
                                 "finished");
    return rc;
  }
  rec->fut = f;
  if (f)
    f->task = &rec->task;
  weft__list_push_back(&fo->tasks, &rec->link);
  /* relaxed: written under mu only; the quiescence check reads it after
   * acquiring `shutdown` (protocol step 3). */
  atomic_store_explicit(
      &fo->spawned,
      atomic_load_explicit(&fo->spawned, memory_order_relaxed) + 1,
      memory_order_relaxed);
  /* From a thread of no runtime or of another: the inject queue and a
   * forced notify; from a worker of rt: its own run queue. */
  weft__sched_schedule(&rec->task, 0);
  pthread_mutex_unlock(&fo->mu);
  if (out)
    *out = f;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Futures                                                                   */

static int is_done(const weft_future_t *f) {
  /* acquire: pairs with the release of done (status and result). */
  return atomic_load_explicit(&f->done, memory_order_acquire);
}

static int collect(const weft_future_t *f, void **result) {
  if (result)
    *result = f->status == 0 ? f->result : NULL;
  return f->status;
}

/* In a task: suspend on the future's waiter list (protocol step 5). */
static int wait_in_task(weft_future_t *f, weft_task_t *self,
                        uint64_t timeout_ms, void **result) {
  pthread_mutex_lock(&f->rt->foreign.mu);
  int own = f->task == self;
  pthread_mutex_unlock(&f->rt->foreign.mu);
  if (own)
    return WEFT_EDEADLK;
  if (is_done(f)) {
    weft__coop_tick();
    return collect(f, result);
  }
  if (timeout_ms == 0)
    return WEFT_ETIMEDOUT;
  uint64_t deadline = timeout_ms == WEFT_NO_TIMEOUT
                          ? WEFT__NO_DEADLINE
                          : weft__deadline_after_ms(timeout_ms);
  weft__waiter_t wt;
  wt.task = self;
  atomic_init(&wt.fired, 0);
  wt.item = NULL;
  wt.cancellable = 0; /* a completion wakes every waiter (none is passed by) */
  weft__spin_lock(&f->lock);
  if (is_done(f)) {
    weft__spin_unlock(&f->lock);
    return collect(f, result);
  }
  weft__list_push_back(&f->waiters, &wt.link);
  weft__spin_unlock(&f->lock);
  weft__wait_note(self, WEFT_WAIT_FUTURE, f);
  int rc = weft__wait(&wt, &f->lock, deadline, 0);
  if (rc)
    return rc;
  return collect(f, result);
}

/* On a thread of the program's own: block on the condition variable. */
static int wait_blocking(weft_future_t *f, uint64_t timeout_ms, void **result) {
  struct timespec until;
  if (timeout_ms != WEFT_NO_TIMEOUT) {
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + weft__ms_to_ns(timeout_ms);
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
  }
  pthread_mutex_lock(&f->mu);
  while (!is_done(f)) {
    if (timeout_ms == WEFT_NO_TIMEOUT)
      pthread_cond_wait(&f->cv, &f->mu);
    else if (pthread_cond_timedwait(&f->cv, &f->mu, &until) == ETIMEDOUT)
      break;
  }
  pthread_mutex_unlock(&f->mu);
  return is_done(f) ? collect(f, result) : WEFT_ETIMEDOUT;
}

int weft_future_wait(weft_future_t *f, uint64_t timeout_ms, void **result) {
  if (result)
    *result = NULL;
  if (!f)
    return WEFT_EINVAL;
  weft__worker_t *w = weft__worker_current();
  if (w && w->own.current)
    return wait_in_task(f, w->own.current, timeout_ms, result);
  if (is_done(f))
    return collect(f, result);
  if (timeout_ms == 0)
    return WEFT_ETIMEDOUT;
  if (w)
    return WEFT_EBUSY; /* a worker's scheduler context: never block it */
  return wait_blocking(f, timeout_ms, result);
}

int weft_future_done(const weft_future_t *f) {
  if (!f)
    return WEFT_EINVAL;
  return is_done(f);
}

int weft_future_result(const weft_future_t *f, void **result) {
  if (result)
    *result = NULL;
  if (!f)
    return WEFT_EINVAL;
  if (!is_done(f))
    return WEFT_EAGAIN;
  return collect(f, result);
}

int weft_future_cancel(weft_future_t *f) {
  if (!f)
    return WEFT_EINVAL;
  weft__foreign_t *fo = &f->rt->foreign;
  int rc = 0;
  /* Held across the wake (protocol steps 1 and 4). */
  pthread_mutex_lock(&fo->mu);
  if (f->task)
    rc = weft__task_cancel_unguarded(f->task, 1);
  pthread_mutex_unlock(&fo->mu);
  return rc;
}

void weft_future_free(weft_future_t *f) {
  if (f)
    future_unref(f);
}

void weft__foreign_each(weft_runtime_t *rt, void (*fn)(weft_task_t *t,
                                                       void *arg),
                        void *arg) {
  pthread_mutex_lock(&rt->foreign.mu);
  weft__list_t *head = &rt->foreign.tasks;
  for (weft__list_t *l = head->next; l != head; l = l->next)
    fn(&weft__container_of(l, foreign_rec_t, link)->task, arg);
  pthread_mutex_unlock(&rt->foreign.mu);
}
