/*
 * The switch into and out of a task, on the scheduler's side: a task's
 * first run (its stack and context), running it, switching out (straight
 * to the next task or to the scheduler), the sanitizer fiber hooks, the
 * stack canary checks with the overflow reporter, and a finished task's
 * stack, after which the record's kind completes it (record.h). The
 * two-phase suspension it implements is task_state.h's; the policy of
 * what runs next is worker.c's.
 */
#include "alloc.h"
#include "compiler.h"
#include "ctx/ctx.h"
#include "record.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "stack.h"
#include "task_state.h"

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

/* Called on a task's stack right after it was switched to: if the task
 * that switched away did so directly (not through the scheduler), finish
 * its transition here (worker.c). */
static void resumed(weft_task_t *t) {
  weft__worker_t *w = t->worker; /* set by whoever switched to t */
  if (w->own.prev) {
    /* The scheduler's state while it finishes: no task is current, so
     * wakes it performs go to the run queue, not the LIFO slot. */
    w->own.current = NULL;
    weft__sched_finish_switch(w);
    w->own.current = t;
  }
}

static void task_entry(void *arg) {
  weft_task_t *t = arg;
#if defined(WEFT_SANITIZE_ADDRESS)
  __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
  resumed(t);
  t->result = t->fn(t->arg);
  if (t->stack->tls_err) { /* weft_tls_error_string()'s, body only */
    weft__free(t->stack->tls_err);
    t->stack->tls_err = NULL;
  }
  weft__task_switch_out(t, WEFT__AFTER_DONE);
  abort(); /* a finished task is never resumed */
}

/* Make t the running task of w (both switch paths). */
static inline void enter(weft__worker_t *w, weft_task_t *t) {
  t->budget = WEFT__COOP_BUDGET;
  t->worker = w;
  w->own.current = t;
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
  w->own.after = after;
  w->own.prev = t;
  /* A finished task's stack is shallow (task_entry), so it may also set up
   * a first run's stack; a suspending one may be deep in its own. The main
   * task's end starts the shutdown: that goes through the scheduler. */
  int done = after == WEFT__AFTER_DONE;
  weft_task_t *n = done && t->kind->done_via_sched
                       ? NULL
                       : weft__sched_pick_direct(w, done);
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
        w->own.asan_stack_bottom, w->own.asan_stack_size);
#endif
#if defined(WEFT_SANITIZE_THREAD)
    __tsan_switch_to_fiber(w->own.tsan_sched, 0);
#endif
    weft__ctx_switch(&t->ctx, &w->own.sched_ctx);
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
  s->tls_err = NULL;
  weft__metric_set(&w->remote.m.stacks_cached, w->stacks.n); /* metrics */
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
  /* Before prepare and the switch: a dumper holding t has finished with
   * its stack and fields (dump.c protocol). Again after a direct pick that
   * left t in next_run: idempotent. */
  weft__state_run(&t->state, w->own.index);
  if (WEFT__UNLIKELY(!t->started) && (err = weft__task_prepare(w, t)) != 0) {
    /* Cancelled before its first run, or no stack: the task finishes
     * without running, with that status. */
    t->status = err;
    w->own.after = WEFT__AFTER_DONE;
    w->own.prev = t;
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
  weft__ctx_switch(&w->own.sched_ctx, &t->ctx);
  /* Back on the scheduler, from t or from a task t switched to directly:
   * w->prev is the one that switched here. */
#if defined(WEFT_SANITIZE_ADDRESS)
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  w->own.current = NULL;
}

/* Stack overflow reports: the canary checks here, the guard page's SIGSEGV
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
    n += weft__put_u64(msg + n, t->stack ? t->stack->usable : 0);
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
    /* The wait note of a yield (waitnote.h, weft__wait_note_yield; stored
     * here directly: the scheduler includes nothing above it). */
    t->wait_kind = WEFT_WAIT_YIELD;
    t->wait_since_ms = (uint32_t)t->worker->own.loop.time;
    weft__task_switch_out(t, WEFT__AFTER_YIELD);
  }
}

/* Called by the worker (scheduler context) after the task's final switch:
 * the stack goes back (checked first when unguarded), then the record's
 * kind completes the task. */
void weft__task_finish(weft__worker_t *w, weft_task_t *t) {
  if (t->stack) {
    if (!t->stack->guarded && weft__stack_overflowed(t->stack, NULL))
      weft__task_overflow_abort(t, 0);
    weft__stack_release(&t->rt->stacks, &w->stacks, t->stack);
    weft__metric_set(&w->remote.m.stacks_cached, w->stacks.n); /* metrics */
    t->stack = NULL;
  }
  t->kind->complete(w, t);
}
