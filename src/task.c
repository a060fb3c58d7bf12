/*
 * Tasks: records, spawn, completion (the outcome published, the joiners
 * woken: a record kind's steps, record.h), await, cancel, gather, and the
 * small accessors. The switch into and out of a task is sched/switch.c's.
 *
 * Task lifetime (cross-thread protocol; the record pool's own is record.c's,
 * whose steps 1-3 this keeps the numbers of):
 *  1. A record comes from the spawning worker's pool (record.c step 1) and
 *     holds one reference while the task has not completed plus one per
 *     handle.
 *  2. The last reference dropped gives the record back: to its kind's
 *     release hook (main, foreign), else to its home's pool (record.c
 *     step 2), whose shutdown walk cancels every task a worker spawned.
 *  3. COMPLETE is set after result and status are final. An awaiter sets
 *     JOINED (under joinq_lock) before linking and backs off if COMPLETE was
 *     already set; the completer drains the queue under the lock only if it
 *     saw JOINED, so no waiter links after the drain (task_state.h).
 *  4. In ASan builds a free record is poisoned (record.c step 3); the
 *     public entry points that only read the fields left readable check
 *     `freed` themselves (asan_check_live).
 */
#include "waitnote.h"
#include "alloc.h"
#include "compiler.h"
#include "list.h"
#include "record.h"
#include "report.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "stack.h"
#include "task_int.h"
#include "task_state.h"
#include "timer.h"
#include "wait_int.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(WEFT_SANITIZE_THREAD)
#include <sanitizer/tsan_interface.h>
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

static const weft__task_kind_t weft__task_kind_spawned;

/* A handle used after its record was freed, in a function that touches
 * only fields left readable: read a poisoned one, so that ASan reports the
 * misuse here, with the caller's stack. (A record already reused by a new
 * task cannot be told from a live one.) */
#if defined(WEFT_SANITIZE_ADDRESS)
static void asan_check_live(const weft_task_t *t) {
  /* relaxed: freed is 1 only on a record nobody may use. */
  if (atomic_load_explicit(&t->freed, memory_order_relaxed))
    (void)*(const volatile char *)&t->result;
}
#else
#define asan_check_live(t) ((void)0)
#endif

/* Debug mode: the runtime's flag for a handle's caller, found without
 * reading the record (which may be free, and poisoned in ASan builds): the
 * calling worker's runtime, else the environment. */
static const weft_config_t *caller_cfg(void) {
  weft__worker_t *w = weft__worker_current();
  return w ? &w->own.rt->cfg : NULL;
}

static int debug_on(const weft_config_t *cfg) {
  return cfg ? cfg->debug : weft__debug_env();
}

/* Debug mode: a handle used after its record went back to its pool (after
 * its last weft_task_unref()): report it and return 1, so that the call
 * returns WEFT_EINVAL instead of touching a record that may already be
 * another task's. Only a record not yet reused can be told apart: a reused
 * one looks like a live task. */
static int debug_freed(const weft_task_t *t, const char *what) {
  /* relaxed: freed is 1 only on a record nobody may use (record.c). */
  if (WEFT__LIKELY(!atomic_load_explicit(&t->freed, memory_order_relaxed)))
    return 0;
  const weft_config_t *cfg = caller_cfg();
  if (!debug_on(cfg))
    return 0;
  weft__report_misuse(cfg, what, WEFT_EINVAL,
                      "on a task handle already released (its last "
                      "reference was dropped)");
  return 1;
}

/* Debug mode: a failed task whose status nobody read loses its last
 * reference (asyncio's "Task exception was never retrieved"). Cancelled
 * tasks are not reported (asyncio does not report them either), nor the
 * main task (weft_run returns its status) or submitted ones (their future
 * holds the status). */
static void report_unretrieved(weft_task_t *t, const char *name) {
  weft_watchdog_report_t r;
  memset(&r, 0, sizeof(r));
  r.kind = WEFT_REPORT_UNRETRIEVED;
  r.task_id = t->id;
  r.task_name = name;
  r.worker = -1;
  r.status = t->status;
  char head[256];
  snprintf(head, sizeof(head),
           "weft: debug: task '%s' (id %llu) failed with %s (%s) and its "
           "status was never read (await, result, gather or a task group)",
           name, (unsigned long long)t->id, weft_err_name(t->status),
           weft_strerror(t->status));
  weft__report_emit(&t->rt->cfg, &r, head);
}

/* The last reference was dropped: the record goes back, by its kind's hook
 * or to its home worker's pool. */
static const char *name_of(weft_task_t *t);

static void record_release(weft_task_t *t) {
  weft_runtime_t *rt = t->rt;
  if (WEFT__UNLIKELY(rt->cfg.debug) && !t->kind->release && t->status != 0 &&
      t->status != WEFT_ECANCELED &&
      /* relaxed: ordered by the last reference's acq_rel drop. */
      !atomic_load_explicit(&t->status_read, memory_order_relaxed))
    report_unretrieved(t, name_of(t));
  if (rt->cfg.max_tasks)
    /* relaxed: a counter; the limit is approximate under races. */
    atomic_fetch_sub_explicit(&rt->live, 1, memory_order_relaxed);
  if (t->kind->release) {
    t->kind->release(t); /* main, foreign: not pooled */
    return;
  }
  weft__worker_t *home = t->home;
  weft__record_free(&home->records, &home->remote.remote_free, t,
                    weft__worker_current() == home);
}

static void copy_name(char *dst, const char *src) {
  size_t n = strlen(src);
  if (n > WEFT_TASK_NAME_MAX)
    n = WEFT_TASK_NAME_MAX;
  memcpy(dst, src, n);
  dst[n] = 0;
}

/* Names: a task spawned without one gets "task-ID", written into the record
 * the first time somebody asks (formatting it at every spawn cost a tenth
 * of the spawn path). The first reader claims name_state 0 -> 1, writes,
 * and publishes 2; concurrent readers wait for 2.
 *
 * Renames (weft_task_set_name, from any thread) use a sequence lock on
 * name_seq, after settling name_state at 2:
 *  1. The renamer takes the lock by a CAS from an even value s to s + 1
 *     (renamers exclude one another), stores the new name word by word
 *     (relaxed atomics, zero-padded) and releases with s + 2.
 *  2. weft_task_name_copy reads s1 (acquire), the words (relaxed), then s2
 *     after an acquire fence; the copy is one whole name if s1 == s2 and
 *     s1 is even, and is retried otherwise.
 *  weft_task_name() returns a pointer into the record instead: its bytes
 *  are one whole name unless a rename runs while they are read, which the
 *  API documents (read another task's name with the copy). */
static const char *name_of(weft_task_t *t) {
  /* acquire: pairs with the release of 2 below; the name bytes are valid. */
  int st = atomic_load_explicit(&t->name_state, memory_order_acquire);
  if (WEFT__LIKELY(st == 2))
    return t->name;
  /* acquire (C11 wants success at least as strong as failure): on
   * failure, as above, if another reader published meanwhile. */
  if (st == 0 && atomic_compare_exchange_strong_explicit(
                     &t->name_state, &st, 1, memory_order_acquire,
                     memory_order_acquire)) {
    weft__task_default_name(t->name, t->id);
    /* release: publishes the name to readers that acquire 2. */
    atomic_store_explicit(&t->name_state, 2, memory_order_release);
    return t->name;
  }
  /* acquire: as above. */
  while (atomic_load_explicit(&t->name_state, memory_order_acquire) != 2)
    weft__cpu_relax();
  return t->name;
}

/* The record is initialised: make it a task that dumpers may claim
 * (dump.c protocol) and the scheduler may run. */
static void task_publish_new(weft_task_t *t, uint64_t parent_id,
                             uint64_t born_ms) {
  t->parent_id = parent_id;
  t->born_ms = (uint32_t)born_ms; /* low 32 bits (record.h) */
  t->wait_kind = WEFT_WAIT_NONE;
  /* release: a dumper that acquires the state word (or a later value of
   * it) sees every field written at the spawn. */
  atomic_store_explicit(&t->state, WEFT__ST_SCHEDULED, memory_order_release);
}

static void task_init(weft_task_t *t, weft_runtime_t *rt, weft_task_fn fn,
                      void *arg, unsigned refs) {
  /* state stays COMPLETE until task_publish_new() (dump.c protocol). */
  atomic_store_explicit(&t->refs, refs, memory_order_relaxed);
  atomic_store_explicit(&t->cancels, 0, memory_order_relaxed);
  atomic_store_explicit(&t->freed, 0, memory_order_relaxed);
  t->next = NULL;
  t->route = NULL;
  t->pin = NULL;
  t->stack = NULL;
  t->started = 0;
  t->check_canary = 0;
  t->fn = fn;
  t->arg = arg;
  t->result = NULL;
  t->status = 0;
  t->yield_mark = 0;
  t->local = NULL;
  t->scope = NULL;
  t->scope_deadline = WEFT__NO_DEADLINE;
  t->rt = rt;
  t->kind = &weft__task_kind_spawned;
  t->always_start = 0;
  /* relaxed: the record is not yet shared. */
  atomic_store_explicit(&t->status_read, 0, memory_order_relaxed);
  t->discard = NULL;
}

/* Wake every waiter of a completed task (wait.c handshake: claim under the
 * lock, complete after it). */
static void wake_joiners(weft_task_t *t) {
  weft__list_t claimed, *n;
  weft__list_init(&claimed);
  weft__spin_lock(&t->joinq_lock);
  while (!weft__list_empty(&t->joinq)) {
    weft__waiter_t *wt =
        weft__container_of(t->joinq.next, weft__waiter_t, link);
    weft__waiter_claim(wt); /* unlinks it */
    weft__list_push_back(&claimed, &wt->link);
  }
  weft__spin_unlock(&t->joinq_lock);
  while ((n = weft__list_pop_front(&claimed))) {
    weft__waiter_t *wt = weft__container_of(n, weft__waiter_t, link);
    weft__waiter_complete(wt, wt->task);
  }
}

static inline void publish(weft_task_t *t) {
  /* relaxed: cancels is only compared; the task's own writes are ordered
   * by program order on this thread after the switch. */
  if (t->status == 0 &&
      atomic_load_explicit(&t->cancels, memory_order_relaxed) > 0)
    t->status = WEFT_ECANCELED;
  if (t->status != 0)
    t->result = NULL;
  /* The body never ran (cancelled before its first run, or no stack): the
   * spawner's discard releases what arg owns, before COMPLETE makes the
   * outcome visible (weft_spawn_opts_t). */
  if (WEFT__UNLIKELY(!t->started) && t->discard)
    t->discard(t->arg);
  /* acq_rel: result and status are published with COMPLETE; acquire sees
   * an awaiter's JOINED (task_state.h). */
  unsigned old = atomic_fetch_or_explicit(&t->state, WEFT__ST_COMPLETE,
                                          memory_order_acq_rel);
  if (old & WEFT__ST_JOINED)
    wake_joiners(t);
}

static inline void drop_own_ref(weft_task_t *t) {
  /* The task's own reference. When it is the only one left (a detached
   * task), nobody can take another (a reference is made from an existing
   * one), so the decrement's read-modify-write is skipped. acquire: pairs
   * with the acq_rel drop of the last other handle. */
  if (atomic_load_explicit(&t->refs, memory_order_acquire) == 1)
    record_release(t);
  else
    weft_task_unref(t);
}

void weft__task_publish(weft_task_t *t) { publish(t); }

void weft__task_drop_own_ref(weft_task_t *t) { drop_own_ref(t); }

/* A spawned task: publish, count, drop its reference (inline here: this is
 * every spawned task's completion). */
static void spawned_complete(weft__worker_t *w, weft_task_t *t) {
  publish(t);
  weft__count_finished(w);
  drop_own_ref(t);
}

static const weft__task_kind_t weft__task_kind_spawned = {
    .complete = spawned_complete, .release = NULL, .done_via_sched = 0};

/* ------------------------------------------------------------------------ */
/* Spawning                                                                  */

void weft_spawn_opts_init(weft_spawn_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->pin = -1;
}

static int spawn(const weft_spawn_opts_t *opts, weft_task_fn fn, void *arg,
                 weft_task_t **out, int always_start) {
  if (!fn)
    return WEFT_EINVAL;
  weft__worker_t *w = weft__worker_current();
  if (!w || !w->own.current)
    return WEFT_ENOTTASK;
  weft_runtime_t *rt = w->own.rt;
  if (opts && (opts->pin < -1 || (opts->pin >= 0 &&
                                   (unsigned)opts->pin >= rt->nworkers)))
    return WEFT_EINVAL;
  /* relaxed: a flag; spawns racing with shutdown are cancelled by the
   * shutdown walk of the record slabs (task.c). */
  if (atomic_load_explicit(&rt->shutdown, memory_order_relaxed))
    return WEFT_ERUNTIME_SHUTDOWN;
  if (rt->cfg.max_tasks &&
      atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed) >=
          rt->cfg.max_tasks) {
    atomic_fetch_sub_explicit(&rt->live, 1, memory_order_relaxed);
    return WEFT_ENOMEM;
  }
  /* A task that must run (it cleans up after its spawner) takes its stack
   * now: without one it would finish unrun (weft__task_run), so the lack of
   * memory is this call's error, which its caller handles. */
  weft__stack_t *stack = NULL;
  if (always_start)
    stack = weft__stack_alloc(&rt->stacks, &w->stacks);
  weft_task_t *t =
      always_start && !stack ? NULL : weft__record_alloc(&w->records, w);
  if (!t) {
    if (stack)
      weft__stack_release(&rt->stacks, &w->stacks, stack);
    if (rt->cfg.max_tasks)
      atomic_fetch_sub_explicit(&rt->live, 1, memory_order_relaxed);
    return WEFT_ENOMEM;
  }
  task_init(t, rt, fn, arg, out ? 2u : 1u);
  t->always_start = (uint8_t)always_start;
  t->stack = stack;
  t->discard = opts ? opts->discard : NULL;
  t->local = w->own.current->local; /* contextvars: a copy of the parent's */
  uint64_t seq = atomic_load_explicit(&w->remote.spawned, memory_order_relaxed);
  t->id = seq * rt->nworkers + w->own.index + 1;
  if (opts && opts->name) {
    copy_name(t->name, opts->name);
    /* relaxed: the scheduling push below publishes the record. */
    atomic_store_explicit(&t->name_state, 2, memory_order_relaxed);
  } else {
    /* relaxed: as above. */
    atomic_store_explicit(&t->name_state, 0, memory_order_relaxed);
  }
  if (opts && opts->pin >= 0)
    t->route = t->pin = &rt->workers[opts->pin];
  /* release: pairs with the quiescence check's acquire loads. */
  atomic_store_explicit(&w->remote.spawned, seq + 1, memory_order_release);
  weft__count(w, WEFT__C_SPAWNED);
  if (out)
    *out = t;
  task_publish_new(t, w->own.current->id, w->own.loop.time);
  weft__sched_schedule(t, 1);
  return 0;
}

int weft_spawn_ex(weft_task_fn fn, void *arg, const weft_spawn_opts_t *opts,
                  weft_task_t **out) {
  return spawn(opts, fn, arg, out, 0);
}

int weft__spawn_always(const weft_spawn_opts_t *opts, weft_task_fn fn,
                       void *arg, weft_task_t **out) {
  return spawn(opts, fn, arg, out, 1);
}

int weft_spawn(weft_task_fn fn, void *arg, weft_task_t **out) {
  return spawn(NULL, fn, arg, out, 0);
}

weft_task_t *weft__task_new_main(weft_runtime_t *rt, weft_task_fn fn,
                                 void *arg, const weft__task_kind_t *kind) {
  weft_task_t *t = weft__aligned_alloc(64, sizeof(weft_task_t));
  if (!t)
    return NULL;
  memset(t, 0, sizeof(*t));
  weft__record_once(t, NULL);
  task_init(t, rt, fn, arg, 2u);
  t->kind = kind;
  copy_name(t->name, "main");
  atomic_store_explicit(&t->name_state, 2, memory_order_relaxed);
  task_publish_new(t, 0, uv_hrtime() / 1000000u);
  if (rt->cfg.max_tasks)
    atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed);
  return t;
}

void weft__task_unref_main(weft_task_t *t) {
#if defined(WEFT_SANITIZE_THREAD)
  if (t->tsan_fiber)
    __tsan_destroy_fiber(t->tsan_fiber);
#endif
  weft__aligned_free(t);
}

/* ------------------------------------------------------------------------ */
/* Handles                                                                   */

weft_task_t *weft_task_ref(weft_task_t *t) {
  if (t) {
    if (debug_freed(t, "weft_task_ref"))
      return NULL;
    asan_check_live(t);
    /* relaxed: the caller already holds a reference. */
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
  }
  return t;
}

void weft_task_unref(weft_task_t *t) {
  if (!t)
    return;
  if (debug_freed(t, "weft_task_unref"))
    return;
  asan_check_live(t);
  /* acq_rel: the last dropper sees every other holder's accesses. */
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
    return;
  /* The last reference, dropped by a handle. Before completion the task
   * still holds its own, so this one was dropped twice: in debug mode, put
   * it back and report instead of freeing a running task's record.
   * acquire: pairs with the release that set COMPLETE. */
  if (WEFT__UNLIKELY(!(atomic_load_explicit(&t->state, memory_order_acquire) &
                       WEFT__ST_COMPLETE)) &&
      t->rt->cfg.debug) {
    /* relaxed: as weft_task_ref; the caller's (bad) reference is back. */
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    weft__report_misuse(&t->rt->cfg, "weft_task_unref", WEFT_EINVAL,
                        "dropped more references than it took (the task "
                        "still runs and holds its own)");
    return;
  }
  record_release(t);
}

static int is_complete(const weft_task_t *t) {
  /* acquire: pairs with the release that set COMPLETE (result, status). */
  return (atomic_load_explicit(&t->state, memory_order_acquire) &
          WEFT__ST_COMPLETE) != 0;
}

static int collect(const weft_task_t *t, void **result) {
  if (result)
    *result = t->result;
  return weft__task_status_read(t);
}

int weft_task_done(const weft_task_t *t) {
  if (!t || debug_freed(t, "weft_task_done"))
    return WEFT_EINVAL;
  asan_check_live(t);
  return is_complete(t);
}

int weft_task_result(const weft_task_t *t, void **result) {
  if (!t || debug_freed(t, "weft_task_result"))
    return WEFT_EINVAL;
  asan_check_live(t);
  if (!is_complete(t))
    return WEFT_EAGAIN;
  return collect(t, result);
}

/* Link a waiter on t's join queue; returns 0 if t is already complete. */
static int join_link(weft_task_t *t, weft__waiter_t *wt, weft_task_t *self) {
  wt->task = self;
  atomic_init(&wt->fired, 0);
  wt->item = NULL;
  wt->cancellable = 0; /* a completion wakes every joiner (none is passed by) */
  weft__spin_lock(&t->joinq_lock);
  /* acq_rel: announces the waiter to the completer, and acquires result and
   * status if COMPLETE is already set (task_state.h, JOINED). */
  if (atomic_fetch_or_explicit(&t->state, WEFT__ST_JOINED,
                               memory_order_acq_rel) &
      WEFT__ST_COMPLETE) {
    weft__spin_unlock(&t->joinq_lock);
    return 0;
  }
  weft__list_push_back(&t->joinq, &wt->link);
  weft__spin_unlock(&t->joinq_lock);
  return 1;
}

/* Await t without being cancellable (cleanup paths). */
static void await_uncancellable(weft_task_t *t, weft_task_t *self) {
  weft__waiter_t wt;
  if (join_link(t, &wt, self)) {
    weft__wait_note(self, WEFT_WAIT_TASK, t);
    weft__wait(&wt, &t->joinq_lock, WEFT__NO_DEADLINE, 1);
  }
}

/* await t until deadline. Cancelling the caller cancels t too (asyncio's
 * Task.cancel() cancels the future its task waits on) and the caller then
 * gets t's outcome, unless `shield`: then the caller returns WEFT_ECANCELED
 * at once and t runs on (asyncio.shield). */
static int await_until(weft_task_t *t, uint64_t deadline, void **result,
                       int shield, const char *what) {
  if (!t || debug_freed(t, what))
    return WEFT_EINVAL;
  asan_check_live(t);
  weft_task_t *self = weft__task_current();
  if (!self)
    return weft__report_misuse(NULL, what, WEFT_ENOTTASK,
                               "called outside a task");
  if (t == self)
    return WEFT_EDEADLK;
  if (result)
    *result = NULL;
  if (is_complete(t)) {
    weft__coop_tick();
    return collect(t, result);
  }
  weft__waiter_t wt;
  if (join_link(t, &wt, self)) {
  weft__wait_note(self, WEFT_WAIT_TASK, t);
    int rc = weft__wait(&wt, &t->joinq_lock, deadline, 0);
    if (rc == WEFT_ETIMEDOUT) {
      /* asyncio.wait_for: cancel the awaited task and wait for it. */
      weft_task_cancel(t);
      await_uncancellable(t, self);
      return t->status == WEFT_ECANCELED ? WEFT_ETIMEDOUT : collect(t, result);
    }
    if (rc == WEFT_ECANCELED && !shield) {
      weft_task_cancel(t);
      await_uncancellable(t, self);
      /* t handled the cancellation and finished otherwise: its outcome
       * (the caller's cancellation was delivered, through t). */
      return t->status == WEFT_ECANCELED ? WEFT_ECANCELED : collect(t, result);
    }
    if (rc != 0)
      return rc;
  }
  return collect(t, result);
}

int weft_task_await(weft_task_t *t, void **result) {
  return await_until(t, WEFT__NO_DEADLINE, result, 0, "weft_task_await");
}

int weft_task_shield(weft_task_t *t, void **result) {
  return await_until(t, WEFT__NO_DEADLINE, result, 1, "weft_task_shield");
}

int weft_task_wait_for(weft_task_t *t, uint64_t timeout_ms, void **result) {
  if (!weft__task_current())
    return t ? weft__report_misuse(NULL, "weft_task_wait_for", WEFT_ENOTTASK,
                                   "called outside a task")
             : WEFT_EINVAL;
  uint64_t deadline = timeout_ms == WEFT_NO_TIMEOUT
                          ? WEFT__NO_DEADLINE
                          : weft__deadline_after_ms(timeout_ms);
  return await_until(t, deadline, result, 0, "weft_task_wait_for");
}

int weft_task_cancel(weft_task_t *t) {
  if (!t || debug_freed(t, "weft_task_cancel"))
    return WEFT_EINVAL;
  asan_check_live(t);
  /* A worker of t's runtime wakes from its run loop, which the runtime's
   * exit handshake waits for (runtime.c step 5). Any other thread's wake
   * could outlive weft_run: it goes through foreign.c's lock (step 1). */
  weft__worker_t *w = weft__worker_current();
  if (WEFT__LIKELY(w && w->own.rt == t->rt))
    return weft__task_cancel_unguarded(t, 1);
  weft__foreign_t *fo = &t->rt->foreign;
  /* Held across the wake (foreign.c protocol step 7); no wake once
   * submissions are closed. */
  pthread_mutex_lock(&fo->mu);
  int rc = weft__task_cancel_unguarded(t, !fo->closed);
  pthread_mutex_unlock(&fo->mu);
  return rc;
}

int weft_task_cancelling(void) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  return atomic_load_explicit(&t->cancels, memory_order_relaxed);
}

void *weft_task_fail(int err) {
  weft_task_t *t = weft__task_current();
  if (t && err < 0)
    t->status = err;
  return NULL;
}

weft_task_t *weft_task_current(void) { return weft__task_current(); }

const char *weft_task_name(const weft_task_t *t) {
  if (!t)
    t = weft__task_current();
  /* The record is the library's: writing its lazily formatted default name
   * is no change visible through the const API. */
  return t ? name_of((weft_task_t *)(uintptr_t)t) : NULL;
}

enum { NAME_WORDS = (WEFT_TASK_NAME_MAX + 1) / 8 };

int weft_task_set_name(weft_task_t *t, const char *name) {
  if (!name)
    return WEFT_EINVAL;
  if (!t)
    t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  (void)name_of(t); /* settle name_state at 2 before overwriting */
  union {
    char c[WEFT_TASK_NAME_MAX + 1];
    uint64_t w[NAME_WORDS];
  } n;
  memset(&n, 0, sizeof(n));
  copy_name(n.c, name);
  /* Step 1. relaxed: the CAS below does the ordering. */
  unsigned s = atomic_load_explicit(&t->name_seq, memory_order_relaxed);
  for (;;) {
    /* acquire: the previous renamer's words are ours to overwrite. */
    if (!(s & 1u) && atomic_compare_exchange_weak_explicit(
                         &t->name_seq, &s, s + 1u, memory_order_acquire,
                         memory_order_relaxed))
      break;
    weft__cpu_relax();
    s = atomic_load_explicit(&t->name_seq, memory_order_relaxed);
  }
  /* release fence: a reader that loads any word stored below also sees the
   * odd value (or a later one) when it re-reads name_seq. */
  atomic_thread_fence(memory_order_release);
  for (int i = 0; i < NAME_WORDS; i++)
    __atomic_store_n(&t->name_words[i], n.w[i], __ATOMIC_RELAXED);
  /* release: the words are visible to a reader that acquires s + 2. */
  atomic_store_explicit(&t->name_seq, s + 2u, memory_order_release);
  return 0;
}

int weft_task_name_copy(const weft_task_t *ct, char *buf, size_t size) {
  if (!buf && size > 0)
    return WEFT_EINVAL;
  weft_task_t *t = (weft_task_t *)(uintptr_t)ct;
  if (!t)
    t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  (void)name_of(t); /* a default name is formatted once, before any copy */
  union {
    char c[WEFT_TASK_NAME_MAX + 1];
    uint64_t w[NAME_WORDS];
  } n;
  /* Step 2. */
  for (unsigned spins = 0;; spins++) {
    /* acquire: pairs with the renamer's release of an even value. */
    unsigned s1 = atomic_load_explicit(&t->name_seq, memory_order_acquire);
    if (!(s1 & 1u)) {
      for (int i = 0; i < NAME_WORDS; i++)
        n.w[i] = __atomic_load_n(&t->name_words[i], __ATOMIC_RELAXED);
      /* acquire fence: the word loads above happen before the re-read. */
      atomic_thread_fence(memory_order_acquire);
      if (atomic_load_explicit(&t->name_seq, memory_order_relaxed) == s1)
        break;
    }
    if (spins < 64)
      weft__cpu_relax();
    else
      sched_yield(); /* a renamer was preempted inside its write */
  }
  n.c[WEFT_TASK_NAME_MAX] = 0;
  size_t len = strlen(n.c);
  if (size > 0) {
    size_t k = len < size - 1 ? len : size - 1;
    memcpy(buf, n.c, k);
    buf[k] = 0;
  }
  return (int)len;
}

int weft_task_set_local(void *value) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  t->local = value;
  return 0;
}

void *weft_task_local(void) {
  weft_task_t *t = weft__task_current();
  return t ? t->local : NULL;
}

/* ------------------------------------------------------------------------ */
/* gather                                                                    */

int weft__tasks_check(weft_task_t *const *tasks, size_t n,
                      weft_task_t **self) {
  if (n > 0 && !tasks)
    return WEFT_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!tasks[i])
      return WEFT_EINVAL;
  *self = weft__task_current();
  if (!*self)
    return WEFT_ENOTTASK;
  for (size_t i = 0; i < n; i++)
    if (tasks[i] == *self)
      return WEFT_EDEADLK;
  return 0;
}

int weft__tasks_wait(weft_task_t *const *tasks, size_t n, weft_task_t *self,
                     uint64_t deadline, int (*ready)(void *arg), void *arg) {
  weft__waiter_t local_wt[8];
  unsigned char local_linked[8];
  weft__waiter_t *wt = local_wt;
  unsigned char *linked = local_linked;
  if (n > 8) {
    wt = weft__malloc(n * sizeof(*wt));
    linked = weft__malloc(n);
    if (!wt || !linked) {
      weft__free(wt);
      weft__free(linked);
      return WEFT_ENOMEM;
    }
  }
  for (size_t i = 0; i < n; i++)
    linked[i] = (unsigned char)join_link(tasks[i], &wt[i], self);

  int rc = 0;
  weft__waitctx_t c;
  weft__wait_note(self, WEFT_WAIT_TASKS, n ? tasks[0] : NULL);
  weft__wait_begin(&c, self, deadline);
  while (!ready(arg) && (rc = weft__wait_poll(&c, 0)) == 0)
    weft__park(self);
  weft__wait_end(&c);

  for (size_t i = 0; i < n; i++)
    if (linked[i])
      weft__waiter_detach(&wt[i], &tasks[i]->joinq_lock);
  if (n > 8) {
    weft__free(wt);
    weft__free(linked);
  }
  return rc;
}

typedef struct gather_cond {
  weft_task_t *const *tasks;
  size_t n;
  int all;    /* gather_all: wait for every task even after a failure */
  int failed; /* set when ready: the first failed status in order, or 0 */
} gather_cond_t;

/* All complete, or (gather) one has failed. */
static int gather_ready(void *arg) {
  gather_cond_t *g = arg;
  size_t pending = 0;
  g->failed = 0;
  for (size_t i = 0; i < g->n; i++) {
    if (!is_complete(g->tasks[i]))
      pending++;
    else if (!g->all && g->tasks[i]->status != 0 && !g->failed)
      g->failed = weft__task_status_read(g->tasks[i]);
  }
  return g->failed != 0 || pending == 0;
}

static int gather(weft_task_t *const *tasks, size_t n, void **results,
                  int *statuses, int all) {
  weft_task_t *self;
  int err = weft__tasks_check(tasks, n, &self);
  if (err)
    return err;

  gather_cond_t g = {tasks, n, all, 0};
  /* No deadline of our own: 0 (ready) or WEFT_ECANCELED. */
  int rc =
      weft__tasks_wait(tasks, n, self, WEFT__NO_DEADLINE, gather_ready, &g);
  if (rc == WEFT_ENOMEM)
    return rc;
  if (rc == WEFT_ECANCELED) {
    /* asyncio: cancelling gather cancels the children it still waits for. */
    for (size_t i = 0; i < n; i++)
      weft_task_cancel(tasks[i]);
    for (size_t i = 0; i < n; i++)
      await_uncancellable(tasks[i], self);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    int done = is_complete(tasks[i]);
    if (results)
      results[i] = done ? tasks[i]->result : NULL;
    if (statuses)
      statuses[i] = done ? weft__task_status_read(tasks[i]) : WEFT_EAGAIN;
  }
  return g.failed;
}

int weft_gather(weft_task_t *const *tasks, size_t n, void **results) {
  return gather(tasks, n, results, NULL, 0);
}

int weft_gather_all(weft_task_t *const *tasks, size_t n, void **results,
                    int *statuses) {
  return gather(tasks, n, results, statuses, 1);
}

/* ------------------------------------------------------------------------ */
/* Records of tasks submitted from outside (foreign.c)                      */

weft_task_t *weft__task_new_foreign(weft_runtime_t *rt, weft_task_fn fn,
                                    void *arg, size_t size,
                                    const weft__task_kind_t *kind) {
  weft_task_t *t = weft__aligned_alloc(64, size);
  if (!t)
    return NULL;
  memset(t, 0, size);
  weft__record_once(t, NULL);
  task_init(t, rt, fn, arg, 1u);
  t->kind = kind;
  copy_name(t->name, "foreign");
  /* relaxed: the scheduling push publishes the record. */
  atomic_store_explicit(&t->name_state, 2, memory_order_relaxed);
  task_publish_new(t, 0, uv_hrtime() / 1000000u);
  return t;
}

void weft__task_free_foreign(weft_task_t *t) {
#if defined(WEFT_SANITIZE_THREAD)
  if (t->tsan_fiber)
    __tsan_destroy_fiber(t->tsan_fiber);
#endif
  weft__aligned_free(t);
}

/* ------------------------------------------------------------------------ */
/* Join waiters for several tasks (waitset.c, taskgroup.c)                   */

int weft__task_join_link(weft_task_t *t, weft__waiter_t *wt,
                         weft_task_t *waiter) {
  return join_link(t, wt, waiter);
}
