/*
 * The one suspension primitive: every blocking operation (await, sleep,
 * queue get/put, and later I/O) registers a waiter and/or a timer and calls
 * weft__wait(); the first trigger wins and the rest are undone.
 *
 * Waiter handshake (the waker never touches a waiter after its task may have
 * returned from the wait, so a waiter can live on the waiting task's stack):
 *  1. The waiting task links the waiter into a queue under the queue's lock.
 *  2. A waker, under the same lock, unlinks it and stores fired = 1 (claim).
 *  3. The waker unlocks, wakes the task, then stores fired = 2 (release). That
 *     store is its last access to the waiter.
 *  4. The task returns from the wait only when fired == 2, or after it has
 *     unlinked the waiter itself under the lock (cancel, timeout). If it finds
 *     fired == 1 it spins until 2: the waker is between steps 2 and 3.
 * A timer is simpler: it fires on the worker that owns it, and the task is
 * routed back to that worker before it looks (sched/timers.c).
 *
 * Deadlines: a wait's own deadline (sleep, wait_for) and the task's timeout
 * scopes share one timer on the current worker (weft__wait_begin/poll/end),
 * armed for the earlier of the two; the task is routed back to that worker
 * while it is armed (sched/timers.c). A scope whose deadline passes cancels
 * its task (it adds to `cancels` and posts the CANCEL bit, as
 * weft_task_cancel() does) and weft_timeout_exit() withdraws that request
 * again. Scopes are owner-
 * only: the task enters, checks, expires and exits them itself, so a timer
 * firing on another thread only wakes it.
 *
 * Cancellation: the CANCEL bit of the state word is consumed by the wait that
 * returns WEFT_ECANCELED, and only after that wait has unlinked its waiter
 * (weft__waiter_detach returned 0): while the waiter is linked the bit stays
 * set. A waker that honours it (weft__waiter_skip, under the queue's lock:
 * the primitives of src/sync/) passes a cancellable waiter by while the bit
 * is set and leaves it linked; the cancel's wake brings the task back to
 * unlink it and return WEFT_ECANCELED. So once weft_task_cancel(t) has
 * returned, no later waker hands t an item, permit, lock or notification
 * (coherence on the state word: a waker ordered after the cancel reads the
 * bit or a later value, and the bit is cleared only after the unlink). A
 * timeout scope that expires posts the same bit from the task itself before
 * it detaches. If a waker claimed the waiter before it saw the bit (the
 * cancel had not returned yet), the event wins: no item or wake-up is lost,
 * and the request, never consumed, stays pending for the next suspension
 * point. During shutdown every wait returns WEFT_ECANCELED at once, so
 * shutdown cannot hang.
 */
#include "waitnote.h"
#include "compiler.h"
#include "list.h"
#include "record.h"
#include "report.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "task_state.h"
#include "timer.h"
#include "wait_int.h"

#include <errno.h>

int weft__wait_check_cancel(weft_task_t *t) {
  if (weft__state_take_cancel(&t->state))
    return 1;
  /* relaxed: a flag; once set it stays set. */
  return atomic_load_explicit(&t->rt->shutdown, memory_order_relaxed) != 0;
}

void weft__cancel_restore(weft_task_t *t) {
  /* relaxed: the task itself re-posts its own request. */
  atomic_fetch_or_explicit(&t->state, WEFT__ST_CANCEL, memory_order_relaxed);
}

weft_task_t *weft__waiter_claim(weft__waiter_t *w) {
  weft__list_remove(&w->link);
  /* relaxed: the lock release orders it; the task re-checks under the lock. */
  atomic_store_explicit(&w->fired, 1, memory_order_relaxed);
  return w->task;
}

void weft__waiter_complete(weft__waiter_t *w, weft_task_t *task) {
  weft__task_wake(task);
  /* release: the handed-over item and the waker's writes are visible to the
   * task that acquires fired == 2; nothing touches w after this. */
  atomic_store_explicit(&w->fired, 2, memory_order_release);
}

static void spin_until_done(weft__waiter_t *w) {
  unsigned spins = 0;
  /* acquire: pairs with the release of fired = 2. */
  while (atomic_load_explicit(&w->fired, memory_order_acquire) != 2) {
    if (++spins < 64)
      weft__cpu_relax();
    else
      sched_yield();
  }
}

int weft__waiter_detach(weft__waiter_t *w, weft__spinlock_t *lock) {
  weft__spin_lock(lock);
  /* relaxed: the lock orders it against the claim. */
  if (atomic_load_explicit(&w->fired, memory_order_relaxed) == 0) {
    weft__list_remove(&w->link);
    weft__spin_unlock(lock);
    return 0;
  }
  weft__spin_unlock(lock);
  spin_until_done(w);
  return 1;
}

void weft__park(weft_task_t *t) {
  weft__task_switch_out(t, WEFT__AFTER_PARK);
}

/* ------------------------------------------------------------------------ */
/* Timeout scopes (owner-only: only the task that entered a scope touches
 * it, and only while it runs).                                              */

enum { SCOPE_ENTERED = 1, SCOPE_EXPIRED = 2, SCOPE_EXITED = 3 };

/* Recompute t->scope_deadline: the earliest deadline of the scopes that
 * have not expired. */
static void scopes_update(weft_task_t *t) {
  uint64_t d = WEFT__NO_DEADLINE;
  for (weft_timeout_t *s = t->scope; s; s = s->outer_)
    if (s->state_ == SCOPE_ENTERED && s->deadline_ < d)
      d = s->deadline_;
  t->scope_deadline = d;
}

/* The deadlines of scopes passed at `now`: each such scope expires and
 * cancels its task, as asyncio's Timeout._on_timeout calls task.cancel(). */
static void scopes_expire(weft_task_t *t, uint64_t now) {
  for (weft_timeout_t *s = t->scope; s; s = s->outer_) {
    if (s->state_ != SCOPE_ENTERED || s->deadline_ > now)
      continue;
    s->state_ = SCOPE_EXPIRED;
    /* relaxed: the task's own count; cancellers only add to it. */
    atomic_fetch_add_explicit(&t->cancels, 1, memory_order_relaxed);
    /* The task runs: post the request without waking it. */
    weft__state_cancel(&t->state);
  }
  scopes_update(t);
}

static __attribute__((noinline)) void scopes_check_slow(weft_task_t *t) {
  uint64_t now = weft__now_ns();
  if (now >= t->scope_deadline)
    scopes_expire(t, now);
}

/* Expire the scopes whose deadline has passed: one compare without scopes. */
static inline void scopes_check(weft_task_t *t) {
  if (WEFT__UNLIKELY(t->scope_deadline != WEFT__NO_DEADLINE))
    scopes_check_slow(t);
}

static int scope_enter(weft_timeout_t *scope, uint64_t deadline) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (!scope)
    return WEFT_EINVAL;
  /* Already entered by this task and not exited (innermost or further
   * out, expired or not): linking it again would make the chain a cycle.
   * asyncio: RuntimeError("Timeout has already been entered"). The walk
   * reads only this task's own chain, never the scope's fields, which are
   * garbage before the first enter. */
  for (const weft_timeout_t *s = t->scope; s; s = s->outer_)
    if (s == scope)
      return WEFT_EBUSY;
  scope->deadline_ = deadline;
  scope->outer_ = t->scope;
  scope->task_ = t;
  scope->state_ = SCOPE_ENTERED;
  /* relaxed: the task's own count. */
  scope->cancelling_ = atomic_load_explicit(&t->cancels, memory_order_relaxed);
  t->scope = scope;
  scopes_update(t);
  return 0;
}

/* A scope's deadline for an absolute weft_time_ms() value, or "never". */
static uint64_t deadline_at_ms(uint64_t when_ms) {
  return when_ms == WEFT_NO_TIMEOUT ? WEFT__NO_DEADLINE
                                       : weft__ms_to_ns(when_ms);
}

int weft_timeout_enter(weft_timeout_t *scope, uint64_t delay_ms) {
  uint64_t d = delay_ms == WEFT_NO_TIMEOUT
                   ? WEFT__NO_DEADLINE
                   : weft__deadline_after_ms(delay_ms);
  return scope_enter(scope, d);
}

int weft_timeout_enter_at(weft_timeout_t *scope, uint64_t when_ms) {
  return scope_enter(scope, deadline_at_ms(when_ms));
}

int weft_timeout_exit(weft_timeout_t *scope, int rc) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (!scope)
    return WEFT_EINVAL;
  if (t->scope != scope)
    return WEFT_ESTATE; /* not the calling task's innermost scope */
  t->scope = scope->outer_;
  int expired = scope->state_ == SCOPE_EXPIRED;
  scope->state_ = expired ? SCOPE_EXPIRED : SCOPE_EXITED;
  scope->outer_ = NULL;
  scopes_update(t);
  if (expired && weft_task_uncancel() <= scope->cancelling_ &&
      rc == WEFT_ECANCELED)
    return WEFT_ETIMEDOUT;
  return rc;
}

int weft_timeout_reschedule(weft_timeout_t *scope, uint64_t when_ms) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  if (!scope)
    return WEFT_EINVAL;
  if (scope->state_ != SCOPE_ENTERED)
    return WEFT_ESTATE; /* never entered, expired or exited */
  if (scope->task_ != t)
    return WEFT_EPERM;
  scope->deadline_ = deadline_at_ms(when_ms);
  scopes_update(t);
  return 0;
}

int weft_timeout_expired(const weft_timeout_t *scope) {
  if (!scope)
    return WEFT_EINVAL;
  return scope->state_ == SCOPE_EXPIRED;
}

uint64_t weft_timeout_when(const weft_timeout_t *scope) {
  if (!scope || scope->deadline_ == WEFT__NO_DEADLINE)
    return WEFT_NO_TIMEOUT;
  return scope->deadline_ / 1000000u;
}

/* ------------------------------------------------------------------------ */
/* Suspension loops with deadlines                                           */

static void ctx_arm(weft__waitctx_t *c, uint64_t deadline) {
  /* The timer goes on the worker we run on; the route keeps us coming back
   * here while it is armed, so that only this worker touches its wheel. */
  c->tw = weft__worker_current();
  weft__timer_init(&c->tm, deadline, c->t);
  c->tm.route_after = c->route;
  weft__timer_add(c->tw, &c->tm);
  c->t->route = c->tw;
  c->armed = 1;
}

static uint64_t ctx_next(const weft__waitctx_t *c) {
  return c->deadline < c->t->scope_deadline ? c->deadline
                                            : c->t->scope_deadline;
}

void weft__wait_begin(weft__waitctx_t *c, weft_task_t *t, uint64_t deadline) {
  c->t = t;
  c->deadline = deadline;
  t->wait_deadline_ms = weft__wait_note_deadline(deadline); /* dumps */
  c->route = t->route;
  c->armed = 0;
  c->tw = NULL;
  scopes_check(t); /* a scope already past its deadline cancels at once */
  uint64_t d = ctx_next(c);
  if (d != WEFT__NO_DEADLINE)
    ctx_arm(c, d);
}

/* 1 if the task must stop waiting: a pending request (left pending) or the
 * runtime's shutdown. */
static int cancel_pending(weft_task_t *t) {
  /* relaxed: a flag; once set it stays set. */
  return weft__state_cancel_pending(&t->state) ||
         atomic_load_explicit(&t->rt->shutdown, memory_order_relaxed) != 0;
}

/* weft__wait_poll without consuming the request: WEFT_ECANCELED leaves the
 * CANCEL bit set for weft__wait to take once its waiter is unlinked. */
static int poll_peek(weft__waitctx_t *c, int uncancellable) {
  weft_task_t *t = c->t;
  if (c->armed && c->tm.fired) {
    /* The timer is off the wheel. The firing callback restored our route
     * if it enqueued us; if something else woke us first, we came back
     * here on the timer's route and restore it ourselves. */
    c->armed = 0;
    t->route = c->route;
    uint64_t now = weft__now_ns();
    if (now >= t->scope_deadline)
      scopes_expire(t, now);
    if (now >= c->deadline)
      return WEFT_ETIMEDOUT;
    uint64_t d = ctx_next(c);
    if (d != WEFT__NO_DEADLINE)
      ctx_arm(c, d); /* the caller's own deadline is still ahead */
  }
  if (!uncancellable && cancel_pending(t))
    return WEFT_ECANCELED;
  return 0;
}

int weft__wait_poll(weft__waitctx_t *c, int uncancellable) {
  int rc = poll_peek(c, uncancellable);
  if (rc == WEFT_ECANCELED)
    weft__state_take_cancel(&c->t->state); /* this return delivers it */
  return rc;
}

void weft__wait_end(weft__waitctx_t *c) {
  if (!c->armed)
    return;
  weft__timer_remove(c->tw, &c->tm); /* we run on tw: the route says so */
  c->t->route = c->route;
  c->armed = 0;
}

/* 0 once w fired (waiting out a claim in progress), else 1. */
static int fired(weft__waiter_t *w) {
  /* acquire: pairs with the waker's release of fired = 2. */
  int f = atomic_load_explicit(&w->fired, memory_order_acquire);
  if (f == 2)
    return 0;
  if (f == 1) {
    spin_until_done(w);
    return 0;
  }
  return 1;
}

int weft__wait(weft__waiter_t *w, weft__spinlock_t *lock, uint64_t deadline,
               int uncancellable) {
  weft_task_t *t = weft__task_current();
  int rc = 0;
  if (w && deadline == WEFT__NO_DEADLINE &&
      t->scope_deadline == WEFT__NO_DEADLINE) {
    /* No timer to arm (the common case of queues, locks, awaits). */
    while (fired(w)) {
      if (!uncancellable && cancel_pending(t)) {
        /* Unlink first, consume after: see "Cancellation" above. */
        if (!weft__waiter_detach(w, lock)) {
          weft__state_take_cancel(&t->state);
          rc = WEFT_ECANCELED;
        } /* else the event won: the request stays pending */
        break;
      }
      weft__park(t);
    }
    return rc;
  }
  weft__waitctx_t c;
  weft__wait_begin(&c, t, deadline);
  for (;;) {
    if (w && !fired(w))
      break;
    rc = w ? poll_peek(&c, uncancellable) : weft__wait_poll(&c, uncancellable);
    if (rc != 0)
      break;
    weft__park(t);
  }
  if (rc != 0 && w && weft__waiter_detach(w, lock))
    rc = 0; /* the event won the race: deliver it, the request stays */
  else if (rc == WEFT_ECANCELED && w)
    weft__state_take_cancel(&t->state); /* unlinked: this return delivers it */
  weft__wait_end(&c);
  return rc;
}

int weft_sleep(uint64_t ms) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return weft__report_misuse(NULL, "weft_sleep", WEFT_ENOTTASK,
                               "called outside a task");
  if (ms == 0)
    return weft_yield();
  weft__wait_note(t, WEFT_WAIT_SLEEP, NULL);
  int rc = weft__wait(NULL, NULL, weft__deadline_after_ms(ms), 0);
  return rc == WEFT_ETIMEDOUT ? 0 : rc;
}

int weft_yield(void) {
  weft_task_t *t = weft__task_current();
  if (!t)
    return weft__report_misuse(NULL, "weft_yield", WEFT_ENOTTASK,
                               "called outside a task");
  scopes_check(t);
  if (weft__wait_check_cancel(t))
    return WEFT_ECANCELED;
  weft__wait_note_yield(t);
  weft__task_switch_out(t, WEFT__AFTER_YIELD);
  return 0;
}

uint64_t weft_time_ms(void) {
  return weft__task_current() ? weft__now_ns() / 1000000u : 0;
}

/* Withdraw one cancellation request of the calling task (asyncio's
 * Task.uncancel); with none left, an undelivered one is dropped too. */
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
