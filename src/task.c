/*
 * Tasks: records, spawn, the switch into and out of a task, completion,
 * await, cancel, gather, and the small accessors.
 *
 * Record lifetime (cross-thread protocol):
 *  1. A record is allocated from the spawning worker's free list (its
 *     "home"), which carves it from a slab of 64, and holds one reference
 *     while the task has not completed plus one per handle. `freed` is 0
 *     while it is a task, 1 while it is free.
 *  2. The last reference dropped frees it: on home, straight back to the
 *     free list; elsewhere, pushed (release CAS) onto home's remote-free
 *     stack, which home takes whole (acquire exchange) when its free list
 *     runs dry or before it parks. Only home reuses a record and slabs are
 *     freed only when the runtime ends, so home can walk its slabs at
 *     shutdown and cancel every record whose `freed` is 0: every task it
 *     spawned. (A registry list did this first, but linking and unlinking a
 *     record touched its neighbours, two cache misses per spawn.)
 *  3. COMPLETE is set after result and status are final. An awaiter sets
 *     JOINED (under joinq_lock) before linking and backs off if COMPLETE was
 *     already set; the completer drains the queue under the lock only if it
 *     saw JOINED, so no waiter links after the drain (task_state.h).
 *  4. In ASan builds a free record is poisoned (record_poison), except the
 *     fields that are read while it is free: state, freed and next (the
 *     shutdown walk, the free lists) and refs and cancels (a task the walk
 *     saw alive may complete and be freed elsewhere before its cancel
 *     reads COMPLETE, or bumps cancels). A handle used after its last
 *     reference was dropped then draws an ASan report instead of reading a
 *     recycled record; the public entry points that only read those fields
 *     check `freed` themselves (asan_check_live).
 */
#include "alloc.h"
#include "core.h"

#include <errno.h>
#include <sched.h>
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

#define TASK_SLAB 64

typedef struct task_slab {
  struct task_slab *next;           /* all slabs of a worker */
  weft_task_t recs[TASK_SLAB];      /* the records */
} task_slab_t;

/* ------------------------------------------------------------------------ */
/* Records                                                                   */

/* ASan: what of a free record stays readable (protocol step 4). The two
 * ranges are whole 8-byte granules, as poisoning needs. */
#define REC_KEEP0_END 16u /* state, freed, next */
#define REC_COLD offsetof(weft_task_t, refs)
#define REC_KEEP1_END (REC_COLD + 8u) /* refs, cancels */
_Static_assert(offsetof(weft_task_t, state) < REC_KEEP0_END &&
                   offsetof(weft_task_t, freed) < REC_KEEP0_END &&
                   offsetof(weft_task_t, next) + sizeof(void *) <=
                       REC_KEEP0_END,
               "record fields read while free: first 16 bytes");
_Static_assert(offsetof(weft_task_t, cancels) + sizeof(atomic_int) <=
                   REC_KEEP1_END && REC_COLD % 8 == 0,
               "record fields read while free: refs, cancels");

static void record_poison(weft_task_t *t) {
#if defined(WEFT_SANITIZE_ADDRESS)
  char *b = (char *)t;
  ASAN_POISON_MEMORY_REGION(b + REC_KEEP0_END, REC_COLD - REC_KEEP0_END);
  ASAN_POISON_MEMORY_REGION(b + REC_KEEP1_END,
                            sizeof(weft_task_t) - REC_KEEP1_END);
#else
  (void)t;
#endif
}

static void record_unpoison(weft_task_t *t) {
#if defined(WEFT_SANITIZE_ADDRESS)
  ASAN_UNPOISON_MEMORY_REGION(t, sizeof(weft_task_t));
#else
  (void)t;
#endif
}

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


static void record_once(weft_task_t *t, weft__worker_t *home) {
  atomic_init(&t->state, 0);
  atomic_init(&t->refs, 0);
  atomic_init(&t->cancels, 0);
  atomic_init(&t->freed, 1);
  atomic_init(&t->name_state, 0);
  atomic_init(&t->name_seq, 0);
  atomic_init(&t->joinq_lock.locked, 0);
  weft__list_init(&t->joinq);
  t->home = home;
#if defined(WEFT_SANITIZE_THREAD)
  t->tsan_fiber = NULL;
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
  t->asan_fake_stack = NULL;
#endif
}

void weft__task_reclaim_remote(weft__worker_t *w) {
  /* relaxed: cheap emptiness test before the exchange. */
  if (!atomic_load_explicit(&w->remote_free, memory_order_relaxed))
    return;
  /* acquire: pairs with the freeing thread's release CAS. */
  weft_task_t *t = atomic_exchange_explicit(&w->remote_free, NULL,
                                            memory_order_acquire);
  while (t) {
    weft_task_t *next = t->next;
    t->next = w->free_tasks;
    w->free_tasks = t;
    w->nfree_tasks++;
    t = next;
  }
}

static weft_task_t *record_alloc(weft__worker_t *w) {
  if (!w->free_tasks)
    weft__task_reclaim_remote(w);
  if (!w->free_tasks) {
    task_slab_t *slab = weft__aligned_alloc(64, sizeof(task_slab_t));
    if (!slab)
      return NULL;
    /* No memset: record_once() initialises what outlives a task, and
     * task_init() the rest at every spawn (zeroing the slab first doubled
     * the writes to its fresh pages). */
    slab->next = w->task_slabs;
    w->task_slabs = slab;
    for (int i = TASK_SLAB; i-- > 0;) {
      weft_task_t *t = &slab->recs[i];
      record_once(t, w);
      t->next = w->free_tasks;
      w->free_tasks = t;
      record_poison(t);
    }
    w->nfree_tasks += TASK_SLAB;
  }
  weft_task_t *t = w->free_tasks;
  w->free_tasks = t->next;
  w->nfree_tasks--;
  record_unpoison(t);
  return t;
}

static void record_release(weft_task_t *t) {
  weft_runtime_t *rt = t->rt;
  if (rt->cfg.max_tasks)
    /* relaxed: a counter; the limit is approximate under races. */
    atomic_fetch_sub_explicit(&rt->live, 1, memory_order_relaxed);
  if (t->is_main)
    return; /* weft_run frees it */
  if (t->is_foreign) {
    weft__foreign_release(t); /* unlinked and freed (foreign.c) */
    return;
  }
  weft__worker_t *home = t->home;
  /* relaxed: read by home's shutdown walk, which only skips the record. */
  atomic_store_explicit(&t->freed, 1, memory_order_relaxed);
  /* Before the push below: home may reuse (and unpoison) it right after. */
  record_poison(t);
  if (weft__worker_current() == home) {
    t->next = home->free_tasks;
    home->free_tasks = t;
    home->nfree_tasks++;
    return;
  }
  weft_task_t *head =
      atomic_load_explicit(&home->remote_free, memory_order_relaxed);
  do {
    t->next = head;
    /* release: everything done to the record happens before its reuse. */
  } while (!atomic_compare_exchange_weak_explicit(
      &home->remote_free, &head, t, memory_order_release,
      memory_order_relaxed));
}

void weft__task_free_all(weft__worker_t *w) {
  weft__task_reclaim_remote(w);
  task_slab_t *s = w->task_slabs;
  while (s) {
    task_slab_t *next = s->next;
#if defined(WEFT_SANITIZE_THREAD)
    for (int i = 0; i < TASK_SLAB; i++)
      if (s->recs[i].tsan_fiber)
        __tsan_destroy_fiber(s->recs[i].tsan_fiber);
#endif
    weft__aligned_free(s);
    s = next;
  }
  w->task_slabs = NULL;
  w->free_tasks = NULL;
}

void weft__task_cancel_all(weft__worker_t *w) {
  weft__task_reclaim_remote(w);
  for (task_slab_t *s = w->task_slabs; s; s = s->next) {
    for (int i = 0; i < TASK_SLAB; i++) {
      weft_task_t *t = &s->recs[i];
      /* relaxed: only home makes a free record a task again (and home is
       * the caller); a record freed elsewhere meanwhile is a completed task,
       * on which cancel is a no-op. */
      if (!atomic_load_explicit(&t->freed, memory_order_relaxed))
        weft__task_cancel_unguarded(t, 1);
    }
  }
}

/* v in decimal at dst, NUL-terminated (at most 21 bytes); returns the
 * length. No snprintf: async-signal-safe. */
static size_t put_u64(char *dst, uint64_t v) {
  char digits[20];
  size_t n = 0, i = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n)
    dst[i++] = digits[--n];
  dst[i] = 0;
  return i;
}

/* "task-N" without snprintf (async-signal-safe). */
static void default_name(char *dst, uint64_t id) {
  memcpy(dst, "task-", 5);
  put_u64(dst + 5, id);
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
    default_name(t->name, t->id);
    /* release: publishes the name to readers that acquire 2. */
    atomic_store_explicit(&t->name_state, 2, memory_order_release);
    return t->name;
  }
  /* acquire: as above. */
  while (atomic_load_explicit(&t->name_state, memory_order_acquire) != 2)
    weft__cpu_relax();
  return t->name;
}

const char *weft__task_name_peek(const weft_task_t *t,
                                 char buf[WEFT_TASK_NAME_MAX + 1]) {
  /* acquire: as in name_of. */
  if (atomic_load_explicit(&t->name_state, memory_order_acquire) == 2)
    return t->name;
  default_name(buf, t->id);
  return buf;
}

static void task_init(weft_task_t *t, weft_runtime_t *rt, weft_task_fn fn,
                      void *arg, unsigned refs) {
  atomic_store_explicit(&t->state, WEFT__ST_SCHEDULED, memory_order_relaxed);
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
  t->is_main = 0;
  t->is_foreign = 0;
  t->always_start = 0;
  t->discard = NULL;
}

/* ------------------------------------------------------------------------ */
/* Switching                                                                 */

/* Called on a task's stack right after it was switched to: if the task
 * that switched away did so directly (not through the scheduler), finish
 * its transition here (worker.c). */
static void resumed(weft_task_t *t) {
  weft__worker_t *w = t->worker; /* set by whoever switched to t */
  if (w->prev) {
    /* The scheduler's state while it finishes: no task is current, so
     * wakes it performs go to the run queue, not the LIFO slot. */
    w->current = NULL;
    weft__sched_finish_switch(w);
    w->current = t;
  }
}

static void task_entry(void *arg) {
  weft_task_t *t = arg;
#if defined(WEFT_SANITIZE_ADDRESS)
  __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
  resumed(t);
  t->result = t->fn(t->arg);
  weft__task_switch_out(t, WEFT__AFTER_DONE);
  abort(); /* a finished task is never resumed */
}

/* Make t the running task of w (both switch paths). */
static inline void enter(weft__worker_t *w, weft_task_t *t) {
  t->budget = WEFT__COOP_BUDGET;
  t->worker = w;
  w->current = t;
  /* errno does not travel with the task: code compiled by others may keep
   * errno's address across a suspension point whatever weft does
   * (design.md section 2.6), so weft promises nothing about it there. */
}

/* Suspend t. When the worker has another task ready that can run at once
 * (weft__sched_pick_direct), switch straight to it: one context switch
 * instead of two, and the scheduler's stack stays untouched. Either way
 * t's transition (`after`) is done by whoever runs next on this worker,
 * once t's registers are saved (task_state.h, two-phase suspension). */
void weft__task_switch_out(weft_task_t *t, enum weft__after after) {
  weft__worker_t *w = t->worker; /* t runs: set by enter() */
  w->after = after;
  w->prev = t;
  /* A finished task's stack is shallow (task_entry), so it may also set up
   * a first run's stack; a suspending one may be deep in its own. The main
   * task's end starts the shutdown: that goes through the scheduler. */
  int done = after == WEFT__AFTER_DONE;
  weft_task_t *n =
      done && t->is_main ? NULL : weft__sched_pick_direct(w, done);
  if (n) {
    enter(w, n);
#if defined(WEFT_SANITIZE_ADDRESS)
    __sanitizer_start_switch_fiber(
        after == WEFT__AFTER_DONE ? NULL : &t->asan_fake_stack, n->stack->lo,
        n->stack->usable);
#endif
#if defined(WEFT_SANITIZE_THREAD)
    __tsan_switch_to_fiber(n->tsan_fiber, 0);
#endif
    weft__ctx_switch(&t->ctx, &n->ctx);
  } else {
#if defined(WEFT_SANITIZE_ADDRESS)
    __sanitizer_start_switch_fiber(
        after == WEFT__AFTER_DONE ? NULL : &t->asan_fake_stack,
        w->asan_stack_bottom, w->asan_stack_size);
#endif
#if defined(WEFT_SANITIZE_THREAD)
    __tsan_switch_to_fiber(w->tsan_sched, 0);
#endif
    weft__ctx_switch(&t->ctx, &w->sched_ctx);
  }
  /* Resumed, perhaps on another worker: `w` is stale from here on. */
#if defined(WEFT_SANITIZE_ADDRESS)
  __sanitizer_finish_switch_fiber(t->asan_fake_stack, NULL, NULL);
#endif
  resumed(t);
}

/* A task cancelled before its first run (or caught by the shutdown before
 * it) never starts, as asyncio never starts a coroutine whose task was
 * cancelled first: its body would only run up to its first suspension
 * point, which returns WEFT_ECANCELED anyway. */
int weft__task_start_cancelled(const weft_task_t *t) {
  /* acquire: pairs with the canceller's fetch_or (weft__state_cancel). */
  return (atomic_load_explicit(&t->state, memory_order_acquire) &
          WEFT__ST_CANCEL) != 0 ||
         /* relaxed: a flag; once set it stays set (wait.c). */
         atomic_load_explicit(&t->rt->shutdown, memory_order_relaxed) != 0;
}

/* Give a first run its stack and context. Fails, leaving t untouched, with
 * WEFT_ECANCELED (cancelled before it ran: it must not start) or
 * WEFT_ENOMEM (no stack; never for an always_start task, whose stack was
 * taken at spawn); weft__task_run() then finishes t without running it,
 * with that status. */
int weft__task_prepare(weft__worker_t *w, weft_task_t *t) {
  if (WEFT__UNLIKELY(weft__task_start_cancelled(t)) && !t->always_start)
    return WEFT_ECANCELED;
  weft__stack_t *s = t->stack; /* taken at spawn if always_start */
  if (!s && !(s = weft__stack_alloc(&t->rt->stacks, &w->stacks)))
    return WEFT_ENOMEM;
  t->stack = s;
  t->started = 1;
  t->check_canary = !s->guarded;
  weft__ctx_make(&t->ctx, s->lo, s->usable, task_entry, t);
#if defined(WEFT_SANITIZE_THREAD)
  if (!t->tsan_fiber)
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
  return 0;
}

void weft__task_run(weft__worker_t *w, weft_task_t *t) {
  int err;
  if (WEFT__UNLIKELY(!t->started) && (err = weft__task_prepare(w, t)) != 0) {
    /* Cancelled before its first run, or no stack: the task finishes
     * without running, with that status. */
    t->status = err;
    w->after = WEFT__AFTER_DONE;
    w->prev = t;
    return;
  }
  enter(w, t);
#if defined(WEFT_SANITIZE_ADDRESS)
  void *fake = NULL;
  __sanitizer_start_switch_fiber(&fake, t->stack->lo, t->stack->usable);
#endif
#if defined(WEFT_SANITIZE_THREAD)
  __tsan_switch_to_fiber(t->tsan_fiber, 0);
#endif
  weft__ctx_switch(&w->sched_ctx, &t->ctx);
  /* Back on the scheduler, from t or from a task t switched to directly:
   * w->prev is the one that switched here. */
#if defined(WEFT_SANITIZE_ADDRESS)
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  w->current = NULL;
}

/* Stack overflow reports: the canary check here, the guard page's SIGSEGV
 * handler in runtime.c, one reporter for both. */

static size_t put_str(char *dst, const char *src) {
  size_t n = strlen(src);
  memcpy(dst, src, n);
  return n;
}

void weft__task_overflow_abort(const weft_task_t *t, int guard_hit) {
  /* Prefix, name, the longer detail (a 20-digit size) and the tail. */
  char msg[64 + WEFT_TASK_NAME_MAX], name[WEFT_TASK_NAME_MAX + 1];
  size_t n = put_str(msg, "weft: stack overflow in task '");
  n += put_str(msg + n, weft__task_name_peek(t, name));
  if (guard_hit) {
    n += put_str(msg + n, "' (guard page hit)\n");
  } else {
    n += put_str(msg + n, "' (stack of ");
    n += put_u64(msg + n, t->stack ? t->stack->usable : 0);
    n += put_str(msg + n, " bytes)\n");
  }
  (void)!write(STDERR_FILENO, msg, n);
  abort();
}

void weft__task_check_canary(const weft_task_t *t) {
#if !defined(WEFT_CTX_ucontext)
  if (weft__stack_overflowed(t->stack, t->ctx.sp))
    weft__task_overflow_abort(t, 0);
#else
  (void)t;
#endif
}

void weft__coop_tick(void) {
  weft_task_t *t = weft__task_current();
  if (t && --t->budget == 0) {
    t->budget = WEFT__COOP_BUDGET;
    weft__task_switch_out(t, WEFT__AFTER_YIELD);
  }
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

static inline void count_finished(weft__worker_t *w) {
  /* release: single writer; read by the quiescence check (runtime.c). */
  atomic_store_explicit(
      &w->finished,
      atomic_load_explicit(&w->finished, memory_order_relaxed) + 1,
      memory_order_release);
}

/* Called by the worker (scheduler context) after the task's final switch. */
void weft__task_finish(weft__worker_t *w, weft_task_t *t) {
  weft_runtime_t *rt = t->rt;
  if (t->stack) {
    if (!t->stack->guarded && weft__stack_overflowed(t->stack, NULL))
      weft__task_overflow_abort(t, 0);
    weft__stack_release(&rt->stacks, &w->stacks, t->stack);
    t->stack = NULL;
  }
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
  if (t->is_foreign)
    weft__foreign_complete(t); /* completes its future (foreign.c) */
  count_finished(w);
  if (t->is_main)
    weft__runtime_on_main_done(rt, t);
  /* The task's own reference. When it is the only one left (a detached
   * task), nobody can take another (a reference is made from an existing
   * one), so the decrement's read-modify-write is skipped. acquire: pairs
   * with the acq_rel drop of the last other handle. */
  if (atomic_load_explicit(&t->refs, memory_order_acquire) == 1)
    record_release(t);
  else
    weft_task_unref(t);
}

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
  if (!w || !w->current)
    return WEFT_ENOTTASK;
  weft_runtime_t *rt = w->rt;
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
  weft_task_t *t = always_start && !stack ? NULL : record_alloc(w);
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
  t->local = w->current->local; /* contextvars: a copy of the parent's */
  uint64_t seq = atomic_load_explicit(&w->spawned, memory_order_relaxed);
  t->id = seq * rt->nworkers + w->index + 1;
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
  atomic_store_explicit(&w->spawned, seq + 1, memory_order_release);
  weft__count(w, WEFT__C_SPAWNED);
  if (out)
    *out = t;
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
                                 void *arg) {
  weft_task_t *t = weft__aligned_alloc(64, sizeof(weft_task_t));
  if (!t)
    return NULL;
  memset(t, 0, sizeof(*t));
  record_once(t, NULL);
  task_init(t, rt, fn, arg, 2u);
  t->is_main = 1;
  copy_name(t->name, "main");
  atomic_store_explicit(&t->name_state, 2, memory_order_relaxed);
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
    asan_check_live(t);
    /* relaxed: the caller already holds a reference. */
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
  }
  return t;
}

void weft_task_unref(weft_task_t *t) {
  if (t)
    asan_check_live(t);
  /* acq_rel: the last dropper sees every other holder's accesses. */
  if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
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
  return t->status;
}

int weft_task_done(const weft_task_t *t) {
  if (!t)
    return WEFT_EINVAL;
  asan_check_live(t);
  return is_complete(t);
}

int weft_task_result(const weft_task_t *t, void **result) {
  if (!t)
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
  if (join_link(t, &wt, self))
    weft__wait(&wt, &t->joinq_lock, WEFT__NO_DEADLINE, 1);
}

/* await t until deadline. Cancelling the caller cancels t too (asyncio's
 * Task.cancel() cancels the future its task waits on) and the caller then
 * gets t's outcome, unless `shield`: then the caller returns WEFT_ECANCELED
 * at once and t runs on (asyncio.shield). */
static int await_until(weft_task_t *t, uint64_t deadline, void **result,
                       int shield) {
  if (!t)
    return WEFT_EINVAL;
  asan_check_live(t);
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
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
  return await_until(t, WEFT__NO_DEADLINE, result, 0);
}

int weft_task_shield(weft_task_t *t, void **result) {
  return await_until(t, WEFT__NO_DEADLINE, result, 1);
}

int weft_task_wait_for(weft_task_t *t, uint64_t timeout_ms, void **result) {
  if (!weft__task_current())
    return t ? WEFT_ENOTTASK : WEFT_EINVAL;
  uint64_t deadline = timeout_ms == WEFT_NO_TIMEOUT
                          ? WEFT__NO_DEADLINE
                          : weft__deadline_after_ms(timeout_ms);
  return await_until(t, deadline, result, 0);
}

/* weft_task_cancel() without asan_check_live and without foreign.c's
 * guard: the shutdown walk may cancel a record freed elsewhere since it
 * looked (step 4), and foreign.c calls it with its lock held (wake = 0: only
 * record the request, the shutdown wakes every task). */
int weft__task_cancel_unguarded(weft_task_t *t, int wake) {
  if (is_complete(t))
    return 0;
  /* relaxed: counted before the request is posted; finish reads it after
   * the task's last switch. */
  atomic_fetch_add_explicit(&t->cancels, 1, memory_order_relaxed);
  if (!weft__state_cancel(&t->state))
    return 0;
  if (wake)
    weft__task_wake(t);
  return 1;
}

int weft_task_cancel(weft_task_t *t) {
  if (!t)
    return WEFT_EINVAL;
  asan_check_live(t);
  /* A worker of t's runtime wakes from its run loop, which the runtime's
   * exit handshake waits for (runtime.c step 5). Any other thread's wake
   * could outlive weft_run: it goes through foreign.c's lock (step 1). */
  weft__worker_t *w = weft__worker_current();
  if (WEFT__LIKELY(w && w->rt == t->rt))
    return weft__task_cancel_unguarded(t, 1);
  return weft__foreign_cancel(t);
}

int weft_task_uncancel(void) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  /* relaxed: the task's own counter; cancellers only increment it. */
  int c = atomic_load_explicit(&t->cancels, memory_order_relaxed);
  while (c > 0 && !atomic_compare_exchange_weak_explicit(
                      &t->cancels, &c, c - 1, memory_order_relaxed,
                      memory_order_relaxed))
    ;
  if (c <= 1)
    weft__state_take_cancel(&t->state); /* none left: drop an undelivered one */
  return c > 0 ? c - 1 : 0;
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
      g->failed = g->tasks[i]->status;
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
      statuses[i] = done ? tasks[i]->status : WEFT_EAGAIN;
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
                                    void *arg, size_t size) {
  weft_task_t *t = weft__aligned_alloc(64, size);
  if (!t)
    return NULL;
  memset(t, 0, size);
  record_once(t, NULL);
  task_init(t, rt, fn, arg, 1u);
  t->is_foreign = 1;
  copy_name(t->name, "foreign");
  /* relaxed: the scheduling push publishes the record. */
  atomic_store_explicit(&t->name_state, 2, memory_order_relaxed);
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
