/*
 * The worker: one OS thread, one libuv loop, and the scheduling policy.
 *
 * Run loop, one tick per task resumption:
 *  1. Every WEFT__FAIR_TICKS ticks (or, in deterministic mode, once the
 *     tasks that were ready at the last poll have run), poll: move the inbox
 *     to the run queue, take one task from the inject queue, run the loop
 *     once without blocking (timers and I/O), and on shutdown cancel the
 *     tasks this worker spawned.
 *  2. Take the LIFO slot (at most WEFT__LIFO_MAX times in a row while other
 *     tasks are queued), else the head of the run queue or of the own FIFO
 *     (owner-only: ready tasks routed to this worker, which no thief may
 *     take; the two take turns when both have tasks).
 *  3. Out of local work: the inbox, then a batch from the inject queue, then
 *     (if at most half of the workers already search) steal half of another
 *     worker's ring, visiting all from a random start (idle.h protocol),
 *     then the task in the LIFO slot of a worker stuck in one task (LIFO
 *     slot protocol below).
 *  4. Nothing found: park in uv_run(UV_RUN_ONCE) until a timer, I/O, or a
 *     uv_async_send from a waker (idle.h steps 4-6), or, as the slot
 *     watcher, WEFT__SLOT_WATCH_MS (idle.h step 7).
 *
 * LIFO slot protocol (`lifo`: one task pointer; the owner fills and empties
 * it, any other worker may take its task when the owner is stuck):
 *  - Fill (owner, from the running task): an empty slot gets a release
 *    store, since only the owner ever stores a task there and a thief only
 *    CASes a task out, so nobody else can change an empty slot; release
 *    publishes the task's record to a thief's acquire CAS. A full slot is
 *    swapped (acq_rel exchange): the exchange decides against a thief's CAS
 *    whether the displaced task is still ours (NULL: a thief has it). No
 *    wake-up per fill (ping_pong would pay an eventfd write per message):
 *    the owner only makes sure that a parked worker watches (idle.h step
 *    7), which costs two seq_cst loads of lines that rarely change.
 *  - Take (owner, next_local): a relaxed load, and if it holds a task, a
 *    relaxed exchange with NULL. Relaxed: the record was written by the
 *    owner itself; the RMW alone decides against a thief's CAS, and an RMW
 *    is only paid when the slot is full.
 *  - Steal (a searching worker, steal_slot; never in deterministic mode,
 *    which has no slot and one worker): only when the thief found nothing
 *    in any ring nor the inject queue (as Go steals runnext last), at most
 *    once per WEFT__SLOT_CHECK_US per thief, and only when the owner is
 *    stuck: its run counter (stats, WEFT__C_RUN, bumped at every
 *    resumption) has not moved for WEFT__SLOT_STUCK_US while its slot held
 *    a task. The thief records what it saw in the owner's `slot_seen`
 *    (runs, time; relaxed: a heuristic, a stale pair only delays or hastens
 *    a steal by one look, and the CAS keeps it exact); a later look that
 *    finds the same run count WEFT__SLOT_STUCK_US later takes the task with
 *    a CAS (acquire: pairs with the fill's release). So an owner that keeps
 *    resuming tasks (ping_pong: a fill and a take every message) never
 *    loses its slot, and a task that the owner would run within 0.5 ms is
 *    left to it, like Go's wait before it steals runnext. (Tokio makes its
 *    slot unstealable and lets it starve behind a task that does not
 *    yield.)
 *  - The bound: a task in the slot of a worker that runs one task without
 *    suspending runs elsewhere within about 2 x WEFT__SLOT_WATCH_MS (two
 *    looks by the watcher, the first to see the run count, the second to
 *    take the task) after the owner last resumed a task, plus the time the
 *    OS takes to wake the watcher, if any worker is idle (docs/design.md
 *    §3). With every worker busy it runs when one of them runs out of work.
 *
 * Inbox protocol (MPSC, tasks only): producers push with a seq_cst CAS on
 * `inbox`; the owner takes the whole stack with an acquire exchange and
 * reverses it into FIFO order. A producer then reads `parked` (seq_cst); the
 * owner stores `parked` (seq_cst) and re-reads `inbox` (seq_cst) before
 * blocking. One of the two sees the other (Dekker), so a push
 * never sleeps unnoticed, and a busy worker is never sent a system call.
 *
 * A task that suspends switches either back to the scheduler or, when the
 * next pick can run at once, straight to that task (weft__sched_pick_direct:
 * one context switch instead of two). Whoever runs next on the worker then
 * finishes the previous task's transition (two-phase suspension,
 * task_state.h; finish_switch): PARK calls weft__state_park() and re-queues
 * the task if a wake raced with the switch; YIELD queues it at the back with
 * a mark that makes the worker poll before resuming it; DONE completes it
 * and frees its stack (never the stack it runs on: it is the next one's).
 */
#include "compiler.h"
#include "record.h"
#include "sched/idle.h"
#include "sched/inject.h"
#include "sched/runq.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "stack.h"
#include "task_state.h"

#include <errno.h>
#include <stdlib.h>

static __thread weft__worker_t *tls_worker
    __attribute__((tls_model("initial-exec")));

WEFT__NOIPA weft__worker_t *weft__worker_current(void) {
  weft__worker_t *w = tls_worker;
  /* Opaque to the optimiser: the value is re-read at every call. */
  __asm__ __volatile__("" : "+r"(w));
  return w;
}

WEFT__NOIPA weft_task_t *weft__task_current(void) {
  weft__worker_t *w = tls_worker;
  __asm__ __volatile__("" : "+r"(w));
  return w ? w->own.current : NULL;
}

#if defined(WEFT_TEST_HOOKS)
void (*weft__test_hook_foreign_wake)(void);

static void foreign_wake_hook(weft_runtime_t *rt) {
  weft__worker_t *self = weft__worker_current();
  if ((!self || self->own.rt != rt) && weft__test_hook_foreign_wake)
    weft__test_hook_foreign_wake();
}
#else
#define foreign_wake_hook(rt) ((void)0)
#endif

/* ------------------------------------------------------------------------ */
/* Waking workers                                                            */

static void send_wake(weft__worker_t *w) {
  /* Counted by the waker on the woken worker: several wakers may count at
   * once, so a read-modify-write (weft__count is owner-only). */
  weft__count_shared(w, WEFT__C_WAKEUPS);
  uv_async_send(&w->remote.async);
}

void weft__worker_unpark(weft__worker_t *w) {
  if (weft__idle_claim(&w->own.rt->idle, w->own.index))
    send_wake(w);
}

void weft__workers_wake_all(weft_runtime_t *rt) {
  for (unsigned i = 0; i < rt->nworkers; i++)
    uv_async_send(&rt->workers[i].remote.async);
}

/* Wake a parked worker to help (idle.h step 2). */
static void notify_one(weft_runtime_t *rt, int force) {
  if (rt->nworkers < 2 && !force)
    return; /* a lone worker runs what it queued itself */
  int idx = weft__idle_pick_to_notify(&rt->idle, force);
  if (idx >= 0)
    send_wake(&rt->workers[idx]);
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                    */

void weft__worker_inbox_push(weft__worker_t *w, weft_task_t *t) {
  /* relaxed: the CAS below publishes. */
  weft_task_t *head =
      atomic_load_explicit(&w->remote.inbox, memory_order_relaxed);
  do {
    t->next = head;
    /* seq_cst: publishes t to the owner's exchange (release) and is ordered
     * before the read of `parked` below (Dekker with park). */
  } while (!atomic_compare_exchange_weak_explicit(
      &w->remote.inbox, &head, t, memory_order_seq_cst, memory_order_relaxed));
  /* relaxed: a statistic (inbox depth = pushes - pops); several producers,
   * so an RMW, on the line the CAS above just took. */
  atomic_fetch_add_explicit(&w->remote.inbox_pushed, 1, memory_order_relaxed);
  foreign_wake_hook(w->own.rt);
  /* seq_cst: see above. */
  if (atomic_load_explicit(&w->remote.parked, memory_order_seq_cst))
    weft__worker_unpark(w);
}

/* weft__runq_push_overflow(), counted for the metrics. Out of line, so
 * that ring_push() stays small enough to be inlined into its callers. */
static __attribute__((noinline, cold)) int ring_overflow(weft__worker_t *w,
                                                         weft_task_t *t) {
  int rc = weft__runq_push_overflow(&w->remote.runq, t, &w->own.rt->inject);
  if (rc == 0)
    weft__metric_add(&w->remote.m.overflows, 1);
  return rc;
}

/* Push t on the own ring or, when it is full, to the inject queue (with
 * half of the ring, or alone while a thief copies out: runq.h step 1, so
 * this never waits for a thief). sc: the caller then reads the idle state
 * to decide whether to wake a worker (weft__runq_try_push_owner_sc). */
static void ring_push(weft__worker_t *w, weft_task_t *t, int sc) {
  for (;;) {
    if (sc ? weft__runq_try_push_owner_sc(&w->remote.runq, t)
           : weft__runq_try_push_owner(&w->remote.runq, t))
      return;
    /* -1: a thief claimed tasks since the ring was found full; the retry
     * finds room or that claim in progress. */
    if (ring_overflow(w, t) == 0)
      return;
  }
}

/* A task routed here (an I/O operation in progress on this worker, a
 * pending timer, a pin) can run nowhere else. With other workers around it
 * goes to the owner-only FIFO, not the ring: a thief would only take it
 * and send it back through the inbox (two read-modify-writes and perhaps
 * a wake-up for nothing). Alone, the ring keeps the exact FIFO order of
 * deterministic mode. */
static int routed_here(weft__worker_t *w, weft_task_t *t) {
  return t->route == w && w->own.rt->nworkers > 1;
}

static void own_push(weft__worker_t *w, weft_task_t *t) {
  t->next = NULL;
  if (w->own.own_tail)
    w->own.own_tail->next = t;
  else
    w->own.own_head = t;
  w->own.own_tail = t;
  weft__metric_add(&w->remote.m.own_len, 1);
}

static weft_task_t *own_pop(weft__worker_t *w) {
  weft_task_t *t = w->own.own_head;
  w->own.own_head = t->next;
  if (!w->own.own_head)
    w->own.own_tail = NULL;
  weft__metric_add(&w->remote.m.own_len, (uint64_t)-1); /* wraps: minus 1 */
  return t;
}

static void runq_push(weft__worker_t *w, weft_task_t *t) {
  if (routed_here(w, t))
    own_push(w, t);
  else
    ring_push(w, t, 0);
}

/* Queue t locally and get help if somebody is parked and nobody searches
 * (not for a task routed here: waking a worker for it would only cost an
 * eventfd write). */
static void runq_push_notify(weft__worker_t *w, weft_task_t *t) {
  if (routed_here(w, t)) {
    own_push(w, t);
    return;
  }
  ring_push(w, t, 1);
  if (!w->own.searching)
    notify_one(w->own.rt, 0);
}

/* Put t in the LIFO slot (protocol above); returns the task it displaced,
 * if any. */
static weft_task_t *slot_fill(weft__worker_t *w, weft_task_t *t) {
  /* relaxed: only the owner stores a task in the slot. */
  weft_task_t *prev = atomic_load_explicit(&w->own.lifo, memory_order_relaxed);
  if (prev)
    /* acq_rel: release publishes t; the exchange decides against a thief's
     * CAS whether prev is still ours. */
    prev = atomic_exchange_explicit(&w->own.lifo, t, memory_order_acq_rel);
  else
    /* release: publishes t's record to a thief's acquire CAS; an empty slot
     * is changed by nobody else. */
    atomic_store_explicit(&w->own.lifo, t, memory_order_release);
  if (!prev && w->own.rt->nworkers > 1 &&
      weft__idle_slot_needs_watcher(&w->own.rt->idle))
    notify_one(w->own.rt, 0); /* the woken worker parks again as the watcher */
  return prev;
}

/* Take the task in the own LIFO slot, or NULL (protocol above). */
static inline weft_task_t *slot_take(weft__worker_t *w) {
  /* relaxed: a test before paying for the exchange. */
  if (!atomic_load_explicit(&w->own.lifo, memory_order_relaxed))
    return NULL;
  /* relaxed: the owner wrote the record itself; the RMW decides against a
   * thief's CAS. */
  return atomic_exchange_explicit(&w->own.lifo, NULL, memory_order_relaxed);
}

void weft__sched_schedule(weft_task_t *t, int from_task) {
  weft__worker_t *w = weft__worker_current();
  weft_runtime_t *rt = t->rt;
  weft__worker_t *route = t->route;
  if (route && route != w) {
    weft__worker_inbox_push(route, t);
    return;
  }
  if (!w || w->own.rt != rt) {
    weft__inject_push_batch(&rt->inject, t, t, 1);
    foreign_wake_hook(rt);
    notify_one(rt, 1); /* forced: reads the idle state with a seq_cst RMW */
    return;
  }
  if (from_task && w->own.current && !rt->cfg.disable_lifo) {
    weft_task_t *prev = slot_fill(w, t);
    if (!prev)
      return;
    t = prev; /* the displaced task goes to the back of the ring */
  }
  runq_push_notify(w, t);
}

/* Take the inbox; returns the oldest entry and queues the rest locally. */
static weft_task_t *inbox_take(weft__worker_t *w) {
  /* relaxed: a cheap emptiness test before the exchange. */
  if (!atomic_load_explicit(&w->remote.inbox, memory_order_relaxed))
    return NULL;
  /* acquire: pairs with producers' release CAS. */
  weft_task_t *s =
      atomic_exchange_explicit(&w->remote.inbox, NULL, memory_order_acquire);
  weft_task_t *fifo = NULL;
  while (s) { /* reverse: the stack is newest first */
    weft_task_t *next = s->next;
    s->next = fifo;
    fifo = s;
    s = next;
  }
  if (!fifo)
    return NULL;
  weft_task_t *first = fifo;
  for (weft_task_t *t = first->next; t;) {
    weft_task_t *next = t->next;
    runq_push(w, t);
    weft__count(w, WEFT__C_INBOX);
    t = next;
  }
  weft__count(w, WEFT__C_INBOX);
  return first;
}

/* Take a batch from the inject queue (Go's globrunqget): a fair share, at
 * most half a ring. Returns one task and queues the rest. */
static weft_task_t *inject_take(weft__worker_t *w, size_t max) {
  weft_runtime_t *rt = w->own.rt;
  if (weft__inject_is_empty(&rt->inject))
    return NULL;
  size_t share =
      atomic_load_explicit(&rt->inject.len, memory_order_relaxed) /
          rt->nworkers + 1;
  if (share > max)
    share = max;
  size_t n;
  weft_task_t *first = weft__inject_pop_batch(&rt->inject, share, &n);
  if (!first)
    return NULL;
  for (weft_task_t *t = first->next; t;) {
    weft_task_t *next = t->next;
    runq_push(w, t);
    t = next;
  }
  for (size_t i = 0; i < n; i++)
    weft__count(w, WEFT__C_INJECT);
  return first;
}

static weft_task_t *steal(weft__worker_t *w) {
  weft_runtime_t *rt = w->own.rt;
  unsigned n = rt->nworkers;
  /* xorshift32: a random start spreads thieves over victims. */
  w->own.rng ^= w->own.rng << 13;
  w->own.rng ^= w->own.rng >> 17;
  w->own.rng ^= w->own.rng << 5;
  unsigned start = w->own.rng % n;
  for (unsigned i = 0; i < n; i++) {
    weft__worker_t *v = &rt->workers[(start + i) % n];
    if (v == w)
      continue;
    uint32_t moved;
    weft_task_t *t =
        weft__runq_steal_into(&v->remote.runq, &w->remote.runq, &moved);
    if (t) {
      weft__count(w, WEFT__C_STEALS);
      for (uint32_t k = 0; k < moved; k++)
        weft__count(w, WEFT__C_STOLEN);
      return t;
    }
  }
  return NULL;
}

/* Take the task in the LIFO slot of a worker stuck in one task (protocol
 * above). Called by a searcher that found nothing else. */
static weft_task_t *steal_slot(weft__worker_t *w) {
  weft_runtime_t *rt = w->own.rt;
  if (rt->cfg.disable_lifo)
    return NULL;
  uint64_t now = uv_hrtime() / 1000u;
  if (now - w->own.slot_check_us < WEFT__SLOT_CHECK_US)
    return NULL;
  w->own.slot_check_us = now;
  for (unsigned i = 1; i < rt->nworkers; i++) {
    weft__worker_t *v = &rt->workers[(w->own.index + i) % rt->nworkers];
    /* relaxed: a hint; the CAS below decides. */
    weft_task_t *t = atomic_load_explicit(&v->own.lifo, memory_order_relaxed);
    if (!t)
      continue;
    /* relaxed: the owner's progress, a hint. */
    uint32_t runs = (uint32_t)atomic_load_explicit(
        &v->remote.stats.v[WEFT__C_RUN], memory_order_relaxed);
    /* relaxed: a heuristic shared by thieves (protocol above). */
    uint64_t seen =
        atomic_load_explicit(&v->remote.slot_seen, memory_order_relaxed);
    if ((uint32_t)(seen >> 32) != runs) {
      /* relaxed: as above. */
      atomic_store_explicit(&v->remote.slot_seen,
                            (uint64_t)runs << 32 | (uint32_t)now,
                            memory_order_relaxed);
      continue;
    }
    if ((uint32_t)now - (uint32_t)seen < WEFT__SLOT_STUCK_US)
      continue;
    /* acquire: pairs with the owner's release fill: t's record is seen. */
    if (atomic_compare_exchange_strong_explicit(&v->own.lifo, &t, NULL,
                                                memory_order_acquire,
                                                memory_order_relaxed)) {
      weft__count(w, WEFT__C_STEALS);
      weft__count(w, WEFT__C_STOLEN);
      return t;
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Polling and the run loop                                                  */

static int runtime_stopping(weft_runtime_t *rt) {
  /* acquire: pairs with the release that sets stop after the last task. */
  return atomic_load_explicit(&rt->stop, memory_order_acquire);
}

/* weft_task_cancel() without task.c's asan_check_live and without
 * foreign.c's guard: the shutdown walk below may cancel a record freed
 * elsewhere since it looked (record.c step 3), and foreign.c calls it with
 * its lock held (wake = 0: only record the request, the shutdown wakes
 * every task). */
int weft__task_cancel_unguarded(weft_task_t *t, int wake) {
  /* acquire: pairs with the release that set COMPLETE. */
  if (atomic_load_explicit(&t->state, memory_order_acquire) &
      WEFT__ST_COMPLETE)
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

static void cancel_for_shutdown(weft_task_t *t) {
  weft__task_cancel_unguarded(t, 1);
}

static void check_shutdown(weft__worker_t *w) {
  /* relaxed: a flag; cancellation itself is ordered by the task state word. */
  if (!w->own.shutdown_seen &&
      atomic_load_explicit(&w->own.rt->shutdown, memory_order_relaxed)) {
    w->own.shutdown_seen = 1;
    /* Every task this worker spawned (record.c step 2). */
    weft__record_each_live(&w->records, cancel_for_shutdown);
  }
}

/* Run the loop once without blocking (timers and I/O): a new poll epoch
 * (yield_mark), counted, and timed for the gap rule (fair_poll). */
static void loop_poll(weft__worker_t *w, uint64_t now) {
  w->own.poll_epoch += w->own.rt->nworkers; /* see yield_mark() */
  w->own.last_poll_ns = now;
  weft__count(w, WEFT__C_POLLS);
  uv_run(&w->own.loop, UV_RUN_NOWAIT);
}

/* The fairness check (every WEFT__FAIR_TICKS resumptions) and the poll a
 * yielded task waits for (force). The inbox and a task of the inject queue
 * are taken at every check; the loop is polled when forced, in
 * deterministic mode (one asyncio loop iteration per round), or when the
 * last poll is WEFT__POLL_GAP_US old (the gap rule, design.md section 3):
 * a poll is an epoll_wait system call, a microsecond or more here, which
 * 61 short resumptions (yield_many, ping_pong: under 10 us) would pay
 * every few microseconds for nothing. */
static void fair_poll(weft__worker_t *w, int force) {
  weft_runtime_t *rt = w->own.rt;
  weft_task_t *t = inbox_take(w);
  if (t)
    runq_push(w, t);
  t = inject_take(w, 1);
  if (t)
    runq_push(w, t);
  uint64_t now = uv_hrtime();
  if (force || rt->cfg.deterministic ||
      now - w->own.last_poll_ns >= WEFT__POLL_GAP_US * 1000u)
    loop_poll(w, now);
  check_shutdown(w);
  if (rt->cfg.deterministic)
    w->own.round_left = weft__runq_len(&w->remote.runq);
  else
    w->own.round_left = WEFT__FAIR_TICKS;
}

/* A mark no other worker's epoch can equal: epochs start at index + 1 and
 * step by the number of workers. Marks keep the low 16 bits (the task's
 * hot line has room for no more), and a mark whose low bits are 0 is kept
 * as 1 (0 means "no mark"): after a wrap, or for a mark turned into 1, a
 * rare collision costs one extra poll; it never skips the poll a yield
 * is owed nor loses a task. */
static uint16_t yield_mark(weft__worker_t *w) {
  uint16_t m = (uint16_t)w->own.poll_epoch;
  return m ? m : 1u;
}

/* t must resume on another worker (a pin, a timer or I/O homed there). */
static inline int routed_elsewhere(weft__worker_t *w, weft_task_t *t) {
  return t->route && t->route != w;
}

/* t yielded on this worker and no poll has happened since (a mark is never
 * 0, so a task without one never matches). */
static inline int needs_poll(weft__worker_t *w, weft_task_t *t) {
  return t->yield_mark == yield_mark(w);
}

/* One tick of the run loop: a resumption, counted towards the next poll. */
static inline void tick(weft__worker_t *w) {
  if (w->own.round_left)
    w->own.round_left--;
  /* The watchdog reads this counter as the poll sequence (watchdog.c): it
   * must change at every resumption. A per-poll timestamp, if one is ever
   * taken, belongs here too. */
  weft__count(w, WEFT__C_RUN);
  /* Poll-time sampling: no clock read unless this poll is sampled, or the
   * sampled one switched directly to this one (sched/metrics.h). */
  weft__metrics_poll_tick(&w->remote.m, &w->own.sample);
}

static inline __attribute__((always_inline)) weft_task_t *
next_local(weft__worker_t *w) {
  if (w->own.round_left == 0)
    fair_poll(w, 0);
  weft_task_t *t = slot_take(w);
  if (t) {
    if (w->own.lifo_streak < WEFT__LIFO_MAX ||
        (!w->own.own_head && weft__runq_is_empty(&w->remote.runq))) {
      w->own.lifo_streak++;
      weft__count(w, WEFT__C_LIFO);
      return t;
    }
    runq_push(w, t); /* cap reached: queued tasks get their turn */
  }
  w->own.lifo_streak = 0;
  /* Both queues non-empty: take turns, so neither can starve the other. */
  if (w->own.own_head && (w->own.own_turn ^= 1u))
    return own_pop(w);
  t = weft__runq_pop_owner(&w->remote.runq);
  if (!t && w->own.own_head)
    t = own_pop(w);
  return t;
}

static weft_task_t *search(weft__worker_t *w) {
  weft_task_t *t = inbox_take(w);
  if (!t)
    t = inject_take(w, WEFT_RUNQ_CAPACITY / 2);
  if (t || w->own.rt->nworkers < 2)
    return t;
  if (!w->own.searching) {
    if (!weft__idle_try_search(&w->own.rt->idle))
      return NULL;
    w->own.searching = 1;
  }
  t = steal(w);
  if (!t)
    t = inject_take(w, WEFT_RUNQ_CAPACITY / 2);
  if (!t)
    t = steal_slot(w); /* last, as Go steals runnext */
  return t;
}

/* Found work while counted as searching (idle.h step 3): stop searching, and
 * if this was the last searcher, wake one more to continue the search. */
static void leave_search(weft__worker_t *w) {
  w->own.searching = 0;
  if (weft__idle_end_search(&w->own.rt->idle))
    notify_one(w->own.rt, 0);
}

/* The last searcher's re-check before it parks (idle.h step 4). The rings
 * are read seq_cst: the other half of weft__runq_try_push_owner_sc. */
static int work_anywhere(weft_runtime_t *rt) {
  if (!weft__inject_is_empty(&rt->inject))
    return 1;
  for (unsigned i = 0; i < rt->nworkers; i++)
    if (!weft__runq_is_empty_sc(&rt->workers[i].remote.runq))
      return 1;
  return 0;
}

/* Stack trimming (stack.h): only a worker that has stayed parked for
 * TRIM_IDLE_MS gives pages back, TRIM_BATCH stacks per timer expiry; while it
 * stays idle and there is more to trim, it continues TRIM_NEXT_MS later. A
 * worker that parks briefly between bursts of work never trims, so it never
 * discards pages that the next burst would fault in again. */
#define TRIM_IDLE_MS 100u
#define TRIM_NEXT_MS 1u
#define TRIM_BATCH 1024u

static uint64_t runs_of(weft__worker_t *w) {
  /* relaxed: only this worker writes its counters. */
  return atomic_load_explicit(&w->remote.stats.v[WEFT__C_RUN],
                              memory_order_relaxed);
}

static void on_trim_timer(uv_timer_t *h) {
  weft__worker_t *w = h->data;
  weft__stack_trim(&w->own.rt->stacks, TRIM_BATCH);
  w->own.trim_runs = runs_of(w);
}

static void trim_arm(weft__worker_t *w) {
  if (!weft__stack_trim_wanted(&w->own.rt->stacks))
    return;
  /* Trimmed at the previous park and ran nothing since: keep going. */
  uint64_t delay = w->own.trim_runs == runs_of(w) ? TRIM_NEXT_MS : TRIM_IDLE_MS;
  uv_timer_start(&w->own.trim_timer, on_trim_timer, delay, 0);
}

static void on_watch_timer(uv_timer_t *h) {
  (void)h; /* waking is the point: the loop searches, looking at slots */
}

/* The runtime's quiescence check (runtime.c lifecycle step 4): once the
 * main task finished, the runtime stops when every task spawned (and
 * submitted from outside) has finished. */
static void check_quiescent(weft_runtime_t *rt) {
  if (atomic_load_explicit(&rt->stop, memory_order_acquire))
    return;
  /* acquire: pairs with the seq_cst store of `shutdown`, which follows the
   * closing of submissions from outside, so their count read below is
   * final. Callers have seen it set already; this re-read orders it. */
  if (!atomic_load_explicit(&rt->shutdown, memory_order_acquire))
    return;
  uint64_t finished = 0, spawned = 0;
  /* seq_cst loads: every `finished` read precedes every `spawned` read in
   * the single total order (runtime.c lifecycle step 4); each also acquires the
   * owner's release increment. */
  for (unsigned i = 0; i < rt->nworkers; i++)
    finished += atomic_load_explicit(&rt->workers[i].remote.finished,
                                     memory_order_seq_cst);
  for (unsigned i = 0; i < rt->nworkers; i++)
    spawned += atomic_load_explicit(&rt->workers[i].remote.spawned,
                                    memory_order_seq_cst);
  /* relaxed: `shutdown` was acquired above, after which the count of
   * tasks submitted from outside is final (foreign.c protocol step 3). */
  spawned += atomic_load_explicit(&rt->foreign.spawned, memory_order_relaxed);
  if (finished == spawned + 1) {
    /* release: workers that see stop see every task's completion. */
    atomic_store_explicit(&rt->stop, 1, memory_order_release);
    weft__workers_wake_all(rt);
  }
}

static void park(weft__worker_t *w) {
  weft_runtime_t *rt = w->own.rt;
  if (atomic_load_explicit(&rt->shutdown, memory_order_relaxed))
    check_quiescent(rt);
  weft__record_reclaim(&w->records);
  /* seq_cst: `parked` is set before the inbox re-check below (Dekker with
   * weft__worker_inbox_push). */
  atomic_store_explicit(&w->remote.parked, 1, memory_order_seq_cst);
  int last = weft__idle_park(&rt->idle, w->own.index, w->own.searching);
  w->own.searching = 0;
  if (last && work_anywhere(rt))
    notify_one(rt, 0);
  /* idle.h step 7: parking while another worker runs, watch its slot. */
  int watch = rt->nworkers > 1 && !rt->cfg.disable_lifo &&
              weft__idle_try_watch(&rt->idle);
  /* seq_cst: ordered after the store of `parked` (Dekker with inbox push). */
  int skip =
      atomic_load_explicit(&w->remote.inbox, memory_order_seq_cst) != NULL ||
      !weft__inject_is_empty(&rt->inject) || runtime_stopping(rt) ||
      (!w->own.shutdown_seen &&
       atomic_load_explicit(&rt->shutdown, memory_order_relaxed));
  if (!skip) {
    weft__count(w, WEFT__C_PARKS);
    /* The loop's clock was last read at its last run, perhaps long ago: a
     * timer started from it could be due already, fire at the start of
     * uv_run and leave it blocking with no timer at all (libuv runs due
     * timers before it polls). */
    uv_update_time(&w->own.loop);
    trim_arm(w);
    if (watch)
      uv_timer_start(&w->own.watch_timer, on_watch_timer, WEFT__SLOT_WATCH_MS,
                     0);
    weft__metrics_park(&w->remote.m); /* busy time stops (metrics.h) */
    uv_run(&w->own.loop, UV_RUN_ONCE);
    weft__metrics_unpark(&w->remote.m);
    uv_timer_stop(&w->own.trim_timer);
    uv_timer_stop(&w->own.watch_timer);
  }
  if (watch)
    weft__idle_unwatch(&rt->idle);
  w->own.searching = weft__idle_unpark_self(&rt->idle, w->own.index);
  atomic_store_explicit(&w->remote.parked, 0, memory_order_relaxed);
  w->own.poll_epoch += w->own.rt->nworkers; /* see yield_mark() */
  if (!skip)
    w->own.last_poll_ns = uv_hrtime(); /* the park polled (gap rule) */
  check_shutdown(w);
  if (rt->cfg.deterministic)
    w->own.round_left = weft__runq_len(&w->remote.runq);
  else
    w->own.round_left = WEFT__FAIR_TICKS;
}

static inline __attribute__((always_inline)) void
after_switch(weft__worker_t *w, weft_task_t *t) {
  switch (w->own.after) {
  case WEFT__AFTER_PARK:
    if (!weft__state_park(&t->state))
      runq_push_notify(w, t); /* woken while switching: run it again */
    break;
  case WEFT__AFTER_YIELD:
    weft__state_unrun(&t->state); /* saved: dumps may walk it (dump.c) */
    if (WEFT__UNLIKELY(routed_elsewhere(w, t))) {
      /* Moving to another worker (a pin, a stream's home): straight to its
       * inbox rather than through this worker's queue. */
      weft__worker_inbox_push(t->route, t);
      break;
    }
    t->yield_mark = yield_mark(w);
    runq_push_notify(w, t);
    break;
  case WEFT__AFTER_DONE:
    weft__state_done_wait(&t->state); /* a dumper copying it (dump.c) */
    weft__task_finish(w, t);
    break;
  }
}

/* The task that just switched away (w->prev) has its registers saved:
 * complete its transition. Runs on the scheduler's stack or, after a
 * direct switch, on the next task's (sched/switch.c). */
static inline __attribute__((always_inline)) void
finish_switch(weft__worker_t *w) {
  weft_task_t *t = w->own.prev;
  w->own.prev = NULL;
  if (WEFT__UNLIKELY(t->check_canary) && w->own.after != WEFT__AFTER_DONE)
    weft__task_check_canary(t);
  after_switch(w, t);
}

void weft__sched_finish_switch(weft__worker_t *w) { finish_switch(w); }

static void run(weft__worker_t *w, weft_task_t *t) {
  if (routed_elsewhere(w, t)) {
    weft__worker_inbox_push(t->route, t); /* pinned or timer elsewhere */
    return;
  }
  if (needs_poll(w, t))
    fair_poll(w, 1); /* a yielded task resumes only after a poll */
  t->yield_mark = 0;
  tick(w);
  weft__task_run(w, t);
  weft__metrics_poll_done(&w->remote.m, &w->own.sample);
  finish_switch(w);
}

/* A task is switching out: the task to switch to directly, or NULL to go
 * through the scheduler. Picks exactly what the run loop would pick next
 * (next_local), so the order of execution is the same either way; a pick
 * the loop must handle itself (no stack yet, routed elsewhere, a yield
 * waiting for its poll; a first run, unless may_start) is left in next_run
 * for the loop. Never when a fairness poll is due: polls run on the
 * scheduler's stack. */
weft_task_t *weft__sched_pick_direct(weft__worker_t *w, int may_start) {
  if (w->own.round_left == 0 || w->own.next_run)
    return NULL;
  weft_task_t *t = next_local(w); /* round_left != 0: does not poll */
  if (!t)
    return NULL;
  if (WEFT__UNLIKELY(routed_elsewhere(w, t) || needs_poll(w, t))) {
    w->own.next_run = t; /* run() handles each of these */
    return NULL;
  }
  /* t runs here (now or from next_run): claim it first (dump.c). */
  weft__state_run(&t->state, w->own.index);
  if (WEFT__UNLIKELY(!t->started &&
                     (!may_start || weft__task_prepare(w, t) != 0))) {
    w->own.next_run = t; /* run() handles it */
    return NULL;
  }
  t->yield_mark = 0;
  tick(w);
  return t;
}

void weft__worker_loop(weft__worker_t *w) {
  weft_runtime_t *rt = w->own.rt;
  tls_worker = w;
  w->own.poll_epoch = w->own.index + 1u; /* never 0: 0 means "no mark" */
  w->own.round_left = rt->cfg.deterministic ? 0 : WEFT__FAIR_TICKS;
  while (!runtime_stopping(rt)) {
    weft_task_t *t = w->own.next_run;
    if (t)
      w->own.next_run = NULL;
    else
      t = next_local(w);
    if (!t)
      t = search(w);
    if (t) {
      if (w->own.searching)
        leave_search(w);
      run(w, t);
    } else {
      park(w);
    }
  }
  if (w->own.searching) {
    weft__idle_end_search(&rt->idle);
    w->own.searching = 0;
  }
  weft__metrics_park(&w->remote.m); /* not busy any more */
  tls_worker = NULL;
}
