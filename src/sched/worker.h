/*
 * The scheduler layer's interface (sched/): the worker struct, the task
 * switch and the run loop's calls, wake, and the per-worker counters.
 * Everything above the scheduler (wait.c, task.c, the features)
 * reaches the scheduler through this header; nothing here calls upward.
 *
 * Fields are grouped by who may touch them: "owner" fields only by the
 * worker's own thread, "shared" fields through atomics or under a named lock.
 */
#ifndef WEFT_SCHED_WORKER_H
#define WEFT_SCHED_WORKER_H

#include "weft.h"

#include "ctx/ctx.h"
#include "list.h"
#include "record.h"
#include "sched/metrics.h"
#include "sched/runq.h"
#include "stack.h"
#include "task_state.h"
#include "timer.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

/* Ticks between fairness checks: inject queue, inbox and a non-blocking poll
 * of the loop (docs/design.md §3; Go and tokio use 61). */
#define WEFT__FAIR_TICKS 61u
/* The gap rule (worker.c fair_poll; docs/design.md section 3): a fairness
 * check polls the loop only if its last poll is at least this old. */
#define WEFT__POLL_GAP_US 50u
/* Consecutive LIFO-slot runs before queued tasks get a turn. */
#define WEFT__LIFO_MAX 3u
/* The LIFO slot's bound (worker.c, "LIFO slot protocol"): a task in the slot
 * of a worker that has resumed no task for WEFT__SLOT_STUCK_US may be taken
 * by a searching worker; one parked worker (the watcher) wakes every
 * WEFT__SLOT_WATCH_MS while another worker is busy to look; a searcher
 * looks at the slots at most once per WEFT__SLOT_CHECK_US. */
#define WEFT__SLOT_STUCK_US 500u
#define WEFT__SLOT_WATCH_MS 1u
#define WEFT__SLOT_CHECK_US 200u
/* Immediately-completing operations before a task is made to yield. */
#define WEFT__COOP_BUDGET 128u

/* What the worker does with the task that just switched back to it. */
enum weft__after {
  WEFT__AFTER_PARK = 0,  /* wait: park unless notified */
  WEFT__AFTER_YIELD = 1, /* back of the run queue, after a poll */
  WEFT__AFTER_DONE = 2   /* finished: complete and free */
};

typedef struct weft__counters {
  atomic_uint_fast64_t v[10]; /* mirrors weft_worker_stats_t, same order */
} weft__counters_t;

enum {
  WEFT__C_RUN,
  WEFT__C_SPAWNED,
  WEFT__C_STEALS,
  WEFT__C_STOLEN,
  WEFT__C_LIFO,
  WEFT__C_INJECT,
  WEFT__C_INBOX,
  WEFT__C_POLLS,
  WEFT__C_PARKS,
  WEFT__C_WAKEUPS
};

/* The part of a worker other threads touch (Tokio's Remote/Shared): other
 * workers push to its ring and steal from it, route tasks to its inbox,
 * free its records, wake it and read its counters. Every field is an
 * atomic or a lock-free structure with its protocol in the file named, or
 * the uv_async_t, of which other threads only call uv_async_send. */
typedef struct weft__worker_remote {
  weft__runq_t runq;                  /* local ring (runq.h) */
  _Alignas(64) _Atomic(weft_task_t *) inbox; /* MPSC stack of tasks routed
                                                here (worker.c) */
  atomic_uint_fast64_t inbox_pushed;  /* pushes to inbox, by producers
                                         (relaxed RMW, on inbox's line):
                                         metrics (sched/metrics.h) */
  _Atomic(weft_task_t *) remote_free; /* MPSC stack of records homed here and
                                         freed elsewhere (record.c) */
  atomic_int parked;                  /* 1 while on the idle stack */
  uv_async_t async;                   /* the one wake-up handle; only
                                         uv_async_send from other threads */
  weft__counters_t stats;             /* written by the owner (relaxed),
                                         except WEFT__C_WAKEUPS: by wakers
                                         (weft__count_shared) */
  /* A thief's last look at this worker's LIFO slot: the low 32 bits of
   * stats.v[WEFT__C_RUN] << 32 | the time in microseconds (low 32 bits).
   * Written by thieves only (relaxed, a heuristic: worker.c). */
  _Atomic uint64_t slot_seen;
  /* Shutdown accounting (runtime.c): monotonic, owner-written. */
  atomic_uint_fast64_t spawned;       /* tasks created by this worker */
  atomic_uint_fast64_t finished;      /* tasks that completed on it */
  weft__wmetrics_t m;                 /* metrics: gauges, busy time, poll
                                         histogram (sched/metrics.h) */
} weft__worker_remote_t;

/* The worker's own state (Tokio's Core): only the worker's thread touches
 * it, with two exceptions. rt, index and thread are set before the worker
 * starts and never change, so any thread may read them; and the LIFO slot
 * `lifo`, filled and emptied by the owner, may be taken by a thief (CAS)
 * when the owner is stuck in one task (worker.c, "LIFO slot protocol"): it
 * sits here, on the owner's lines, because the owner writes it at almost
 * every spawn and wake. */
typedef struct weft__worker_own {
  weft_runtime_t *rt;
  unsigned index;                     /* 0..nworkers-1 */
  uv_thread_t thread;                 /* the worker's thread (not worker 0) */
  uv_loop_t loop;                     /* this worker's libuv loop */
  uv_timer_t trim_timer;              /* armed while parked with stacks to
                                         trim (worker.c) */
  uint64_t trim_runs;                 /* WEFT__C_RUN when it last trimmed */
  weft__ctx_t sched_ctx;              /* scheduler context */
  weft_task_t *current;               /* task running now, or NULL */
  enum weft__after after;             /* set by the task before switching */
  weft_task_t *prev;                  /* the task that switched away and
                                         whose `after` is still to be done
                                         (weft__sched_finish_switch) */
  weft_task_t *next_run;              /* taken from the queues by a task
                                         that could not switch to it
                                         directly: the scheduler runs it
                                         next (worker.c) */
  _Atomic(weft_task_t *) lifo;        /* the LIFO slot (see above) */
  uv_timer_t watch_timer;             /* armed while parked as the slot
                                         watcher (idle.h step 7) */
  uint64_t slot_check_us;             /* when this worker last looked at
                                         the others' slots (worker.c) */
  /* Tasks routed to this worker (route == this worker: an I/O operation
   * or a timer homed here, a pin) that are ready: no other worker may run
   * them, so they bypass the stealable ring (worker.c). FIFO via ->next. */
  weft_task_t *own_head, *own_tail;
  unsigned own_turn;                  /* alternates own FIFO and ring */
  unsigned lifo_streak;               /* consecutive LIFO runs */
  unsigned round_left;                /* ticks until the next fairness poll */
  uint64_t poll_epoch;                /* index + 1 + polls * nworkers */
  uint64_t last_poll_ns;              /* uv_hrtime() of its last loop poll */
  int searching;                      /* counted as searching (idle.h) */
  int shutdown_seen;                  /* its tasks cancelled for shutdown */
  uint32_t rng;                       /* xorshift state for victim choice */
  weft__wsample_t sample;             /* poll-time sampling (metrics.h) */
  int loop_abandoned;                 /* pool work outlived the grace
                                         period: the loop is never closed
                                         nor freed (runtime.c) */
#if defined(WEFT_SANITIZE_THREAD)
  void *tsan_sched;                   /* TSan fiber of the scheduler */
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
  const void *asan_stack_bottom;      /* the thread's own stack */
  size_t asan_stack_size;
#endif
  void *altstack;                     /* sigaltstack for overflow reports */
  stack_t prev_altstack;              /* the thread's own, restored when the
                                         worker closes (worker 0 runs on
                                         the caller's thread) */
} weft__worker_own_t;

/* The worker's timers (sched/timers.c): its wheel (time.c) and the one uv
 * timer armed for it. Owner only. */
typedef struct weft__worker_timers {
  weft__wheel_t wheel;
  uv_timer_t uv;                      /* armed for the earliest weft timer */
  uint64_t armed;                     /* tick the uv timer is set for */
} weft__worker_timers_t;

/* The I/O objects homed on the worker. Owner only (io/home.c protocol). */
typedef struct weft__worker_io {
  weft__list_t objs;                  /* open streams and servers homed
                                         here (io/home.c) */
  weft__list_t offloads;              /* offload requests queued on this
                                         loop whose after_work has not run
                                         (io/offload.c) */
  struct weft__signals *sig;          /* worker 0 only: the runtime's
                                         signal handles, watchers and
                                         handlers (io/signal.c); NULL
                                         until first used */
  weft__list_t fsreqs;                /* file-system requests issued on
                                         this loop whose callback is not
                                         done with them (io/file.c) */
} weft__worker_io_t;

/* A worker: the parts above, each with its rule. `remote` and `own` start
 * on cache lines of their own, so that the other threads' writes to the
 * first never invalidate the owner's lines of the second. */
/* tools/gdb/weft-gdb.py reads own.index, own.current and records.slabs by
 * name. */
struct weft__worker {
  weft__worker_remote_t remote;       /* other threads: atomics only */
  _Alignas(64) weft__worker_own_t own; /* owner (and the LIFO slot) */
  weft__worker_timers_t timers;       /* owner */
  weft__stack_cache_t stacks;         /* owner (stack.h) */
  weft__record_pool_t records;        /* owner (record.h), but for the
                                         remote-free stack it points to */
  weft__worker_io_t io;               /* owner */
};

#if defined(WEFT_TEST_HOOKS)
/* Test builds only (tests/CMakeLists.txt): called by a thread that is no
 * worker of the task's runtime right after it queued a task it wakes, before
 * it notifies a worker, to widen that window. */
extern void (*weft__test_hook_foreign_wake)(void);
#endif

/* The worker running on this thread, or NULL. Not inlinable: a task may
 * resume on another thread, and a caller must never reuse a thread-pointer
 * address computed before a switch (docs/design.md §2.6). */
weft__worker_t *weft__worker_current(void);

/* The task running on this thread, or NULL. Same caveat. */
weft_task_t *weft__task_current(void);

/* Make t runnable; t must have been SCHEDULED by the caller (spawn, wake). */
void weft__sched_schedule(weft_task_t *t, int from_task);

/* Wake t (from anywhere): enqueue it if it was parked. */
static inline void weft__task_wake(weft_task_t *t) {
  if (weft__state_wake(&t->state))
    weft__sched_schedule(t, 1);
}

/* The switch (sched/switch.c): */
/* Switch from the running task to its worker's scheduler; returns when the
 * task runs again (perhaps on another worker). Task stacks only. */
void weft__task_switch_out(weft_task_t *t, enum weft__after after);

/* Run t on worker w until it switches back (worker.c calls it). */
void weft__task_run(weft__worker_t *w, weft_task_t *t);
/* Scheduler hooks for a task switching out (worker.c): the next task to
 * switch to directly, or NULL to switch to the scheduler; and, once on the
 * next stack, the previous task's pending transition. */
weft_task_t *weft__sched_pick_direct(weft__worker_t *w, int may_start);
/* Give t (never run yet) its stack and initial context; WEFT_ECANCELED if
 * it was cancelled first (it must never start), WEFT_ENOMEM if no stack can
 * be had. Either way t is untouched, and weft__task_run() finishes it
 * without running it. */
int weft__task_prepare(weft__worker_t *w, weft_task_t *t);
void weft__sched_finish_switch(weft__worker_t *w);
/* 1 if t must not start: cancelled before its first run, or the runtime is
 * shutting down (a server's always_start task asks at its start). */
int weft__task_start_cancelled(const weft_task_t *t);
/* After t's final switch (scheduler context): release its stack, then
 * t->kind->complete(w, t). */
void weft__task_finish(weft__worker_t *w, weft_task_t *t);
/* Count one immediately-completing operation against the running task's
 * budget; at WEFT__COOP_BUDGET it yields. */
void weft__coop_tick(void);
/* Abort with a report if t's stack canary is gone (unguarded stacks). */
void weft__task_check_canary(const weft_task_t *t);
/* Report an overflow of t's stack on stderr and abort: "weft: stack
 * overflow in task 'NAME' (DETAIL)", DETAIL "guard page hit" (guard_hit,
 * the SIGSEGV handler in runtime.c) or "stack of N bytes" (a lost canary).
 * Async-signal-safe: one write(2), no stdio. */
_Noreturn void weft__task_overflow_abort(const weft_task_t *t, int guard_hit);

/* Wake every worker unconditionally (shutdown, stop). */
void weft__workers_wake_all(weft_runtime_t *rt);
/* Wake worker w if it is parked. */
void weft__worker_unpark(weft__worker_t *w);
/* Route t to w's inbox (t is SCHEDULED and owned by the caller). */
void weft__worker_inbox_push(weft__worker_t *w, weft_task_t *t);
/* The worker's run loop; returns when the runtime stops. */
void weft__worker_loop(weft__worker_t *w);
/* weft_task_cancel() without its guards: count and post a request and, if
 * wake, wake t (worker.c). Only for a worker of t's runtime, or under
 * foreign.mu (foreign.c protocol step 1); wake 0 once submissions are
 * closed. */
int weft__task_cancel_unguarded(weft_task_t *t, int wake);

/* Timers on the worker's wheel (sched/timers.c): owner worker only. An
 * expired timer wakes its task, which gets route_after back. */
/* Cannot fail: the wheel needs no memory (its nodes are the callers'). */
void weft__timer_add(weft__worker_t *w, weft__timer_t *t);
void weft__timer_remove(weft__worker_t *w, weft__timer_t *t);
void weft__timers_init(weft__worker_t *w);
void weft__timers_destroy(weft__worker_t *w);

static inline void weft__count(weft__worker_t *w, int which) {
  /* relaxed: a statistic; only this worker writes it (a load and a store,
   * no read-modify-write, is enough with one writer). */
  atomic_store_explicit(
      &w->remote.stats.v[which],
      atomic_load_explicit(&w->remote.stats.v[which], memory_order_relaxed) +
          1,
      memory_order_relaxed);
}

/* A task finished on w: counted for the quiescence check (worker.c), which
 * reads it with acquire loads. */
static inline void weft__count_finished(weft__worker_t *w) {
  /* release: single writer; pairs with the quiescence check's acquire. */
  atomic_store_explicit(
      &w->remote.finished,
      atomic_load_explicit(&w->remote.finished, memory_order_relaxed) + 1,
      memory_order_release);
}

/* Count on w from another thread: a counter that several threads write
 * (WEFT__C_WAKEUPS: every waker counts the wake it sends). */
static inline void weft__count_shared(weft__worker_t *w, int which) {
  /* relaxed: a statistic, but with several writers an increment must be a
   * read-modify-write, or two concurrent ones lose one. */
  atomic_fetch_add_explicit(&w->remote.stats.v[which], 1,
                            memory_order_relaxed);
}

#endif /* WEFT_SCHED_WORKER_H */
