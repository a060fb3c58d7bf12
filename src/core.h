/*
 * weft internals: the task record, the worker and the runtime, and the
 * functions the subsystems call on one another. docs/design.md explains the
 * architecture; each structure's cross-thread protocol is at the top of the
 * file that implements it.
 *
 * Fields are grouped by who may touch them: "owner" fields only by the
 * worker's own thread, "shared" fields through atomics or under a named lock.
 */
#ifndef WEFT_CORE_H
#define WEFT_CORE_H

#include "weft.h"

#include "ctx/ctx.h"
#include "list.h"
#include "sched/idle.h"
#include "sched/inject.h"
#include "sched/runq.h"
#include "spinlock.h"
#include "stack.h"
#include "task_state.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#if defined(__GNUC__) && !defined(__clang__)
#define WEFT__NOIPA __attribute__((noinline, noipa))
#else
#define WEFT__NOIPA __attribute__((noinline))
#endif
#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

typedef struct weft__worker weft__worker_t;
typedef struct weft_runtime weft_runtime_t;

/* Ticks between fairness checks: inject queue, inbox and a non-blocking poll
 * of the loop (docs/design.md §3; Go and tokio use 61). */
#define WEFT__FAIR_TICKS 61u
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

/* ------------------------------------------------------------------------ */
/* Waiting (wait.c)                                                          */

/* One registration of a waiting task in a wait queue. Lives on the waiting
 * task's stack for the duration of one wait. */
typedef struct weft__waiter {
  weft__list_t link;  /* in the wait queue; guarded by the queue's lock */
  weft_task_t *task;  /* the waiting task */
  atomic_int fired;   /* set (release) by the waker, before it wakes task */
  void *item;         /* payload handed over by the waker (queues) */
  /* 1: a waker that checks it (src/sync/, weft__waiter_skip) passes the
   * waiter by while its task has a cancellation pending; 0 for an
   * uncancellable wait, which is always served. Set before linking. */
  int cancellable;
} weft__waiter_t;

/* Where a timer is (time.c): in no wheel, or in level `where - 1`. */
enum { WEFT__TIMER_NONE = 0, WEFT__TIMER_LEVEL0 = 1 };

/* A timer registration on one worker's wheel; owner-worker only. Lives on
 * the waiting task's stack; set up with weft__timer_init(). */
typedef struct weft__timer {
  weft__list_t link;  /* in a wheel slot */
  uint64_t deadline;  /* monotonic ns */
  uint64_t tick;      /* the 1 ms tick it fires at */
  weft_task_t *task;  /* task to wake */
  /* The task's route once the timer is gone (its route before the wait set
   * it to the timer's worker): the firing callback restores it when it
   * enqueues the parked task. */
  struct weft__worker *route_after;
  int where;          /* WEFT__TIMER_* */
  int fired;          /* 1 once the deadline passed and task was woken */
} weft__timer_t;

/* A worker's hierarchical timing wheel (time.c), owner-worker only. Level
 * 0 has WEFT__WHEEL_SLOTS slots of one tick (1 ms); each level above has 64
 * slots, each as long as the whole level below: 1.024 s, 65.5 s, 70 min,
 * 74.6 h, 199 days, 34.8 years. Six upper levels span 2^46 ms, more than
 * any deadline a uint64_t of nanoseconds can hold (< 2^45 ms). */
#define WEFT__WHEEL_BITS 10u /* log2 of level 0's slots */
#define WEFT__WHEEL_SLOTS (1u << WEFT__WHEEL_BITS)
#define WEFT__WHEEL_UP_BITS 6u /* log2 of an upper level's slots */
#define WEFT__WHEEL_UP_SLOTS (1u << WEFT__WHEEL_UP_BITS)
#define WEFT__WHEEL_UP_LEVELS 6u
#define WEFT__WHEEL_LEVELS (1u + WEFT__WHEEL_UP_LEVELS)

typedef struct weft__wheel {
  uint64_t tick;  /* next tick to process; the cursor */
  size_t len;     /* timers in all levels */
  size_t level_len[WEFT__WHEEL_LEVELS];
  uint64_t bits[WEFT__WHEEL_SLOTS / 64];      /* level 0's non-empty slots */
  uint64_t up_bits[WEFT__WHEEL_UP_LEVELS];    /* upper levels' */
  weft__list_t slot[WEFT__WHEEL_SLOTS];       /* level 0: FIFO per tick */
  weft__list_t up[WEFT__WHEEL_UP_LEVELS][WEFT__WHEEL_UP_SLOTS];
} weft__wheel_t;

/* ------------------------------------------------------------------------ */
/* Task                                                                      */

struct weft_task {
  /* --- line 0: everything a suspend/resume touches (weft_yield, the run
   * loop, weft__task_run), so that a switch costs one task cache line. --- */
  _Alignas(64) atomic_uint state; /* task_state.h; shared */
  atomic_int freed;       /* 0 while a task, 1 while free (task.c) */
  /* Link in whichever single queue holds the task (overflow batch, inject,
   * inbox, remote-free stack); only the SCHEDULED owner writes it. */
  struct weft_task *next;
  /* If set, the task must resume on this worker: pinned tasks, and tasks
   * with a timer registered there. Written by the task itself, read by
   * whoever dequeues it (ordered by the queue). */
  weft__worker_t *route;
  struct weft__worker *worker; /* worker running the task; valid while it
                                  runs (set by weft__task_run) */
  weft_runtime_t *rt;     /* owning runtime */
  /* Timeout scopes (wait.c), owner-only: the earliest deadline among the
   * scopes not yet expired (the innermost scope is `scope`, below). */
  uint64_t scope_deadline; /* monotonic ns; WEFT__NO_DEADLINE if none */
  /* Poll epoch at the last yield, truncated (worker.c); 0 = none. A
   * truncated epoch that happens to be 0 only skips one forced poll. */
  uint32_t yield_mark;
  uint16_t budget;        /* cooperative budget left (task.c) */
  uint8_t started;        /* 1 once the task has a stack and a context */
  uint8_t check_canary;   /* 1 if its stack has no guard page (stack.h) */
#if !defined(WEFT_CTX_ucontext)
  weft__ctx_t ctx;        /* saved context while not running (one word) */
#endif

  /* --- the rest: spawn, join, completion, cancellation --- */
  /* refs and cancels stay readable while the record is free in ASan builds
   * (task.c, record_poison), as state, freed and next do. */
  _Alignas(64) atomic_uint refs; /* handles + 1 while not complete */
  atomic_int cancels; /* cancellation requests not withdrawn (uncancel) */
  weft__spinlock_t joinq_lock; /* guards joinq and the COMPLETE transition */
  weft__list_t joinq;          /* weft__waiter_t of tasks awaiting this one */
#if defined(WEFT_CTX_ucontext)
  weft__ctx_t ctx;        /* saved context while not running */
#endif
  weft__stack_t *stack;   /* NULL until the task first runs */
  weft_task_fn fn;        /* body */
  void *arg;              /* its argument */
  void (*discard)(void *arg); /* called if the body never runs (task.c) */
  void *result;           /* its return value */
  int status;             /* set by weft_task_fail, 0 otherwise */
  void *local;            /* task-local storage slot */
  weft_timeout_t *scope;  /* innermost entered timeout scope (wait.c) */
  weft__worker_t *pin;    /* pinned worker or NULL */
  weft__worker_t *home;   /* worker whose pool holds the record */
  uint64_t id;            /* sequence number, for default names */
  uint8_t is_main;        /* 1 for weft_run's main task */
  uint8_t is_foreign;     /* 1 for a task submitted with weft_runtime_submit
                             (a malloc'ed record, foreign.c) */
  uint8_t always_start;   /* 1: runs even if cancelled before its first run
                             (the library's own tasks that must clean up,
                             weft__spawn_always); its stack is taken at
                             spawn, so it cannot fail to start */
#if defined(WEFT_SANITIZE_THREAD)
  void *tsan_fiber;       /* ThreadSanitizer fiber of this task */
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
  void *asan_fake_stack;  /* ASan fake-stack handle while switched out */
#endif
  /* Default names ("task-ID") are written on first read, not at spawn:
   * 0 = not yet, 1 = being written, 2 = name valid (task.c). */
  atomic_int name_state;
  /* Renames (task.c): a sequence lock, odd while weft_task_set_name writes
   * the words below, which it stores and copying readers load atomically
   * (relaxed). Never reset: it stays even between renames. */
  atomic_uint name_seq;
  union {
    char name[WEFT_TASK_NAME_MAX + 1];
    uint64_t name_words[(WEFT_TASK_NAME_MAX + 1) / 8];
  };
};

_Static_assert((WEFT_TASK_NAME_MAX + 1) % 8 == 0,
               "task names are copied in whole words");

/* ------------------------------------------------------------------------ */
/* Worker                                                                    */

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

struct weft__worker {
  /* --- shared: other workers push, steal, wake --- */
  weft__runq_t runq;                  /* local ring (runq.h) */
  _Alignas(64) _Atomic(weft_task_t *) inbox; /* MPSC stack of tasks routed
                                                here (worker.c) */
  _Atomic(weft_task_t *) remote_free; /* MPSC stack of records homed here and
                                         freed elsewhere (task.c) */
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

  /* --- owner only --- */
  _Alignas(64) weft_runtime_t *rt;
  unsigned index;                     /* 0..nworkers-1 */
  uv_thread_t thread;                 /* the worker's thread (not worker 0) */
  uv_loop_t loop;                     /* this worker's libuv loop */
  uv_timer_t timer;                   /* armed for the earliest weft timer */
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
  /* LIFO slot: filled and emptied by the owner, taken by a thief only
   * when the owner is stuck in one task (worker.c, "LIFO slot protocol"). */
  _Atomic(weft_task_t *) lifo;
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
  int searching;                      /* counted as searching (idle.h) */
  int shutdown_seen;                  /* its tasks cancelled for shutdown */
  uint32_t rng;                       /* xorshift state for victim choice */
  /* Timers (time.c): hierarchical timing wheel. */
  weft__wheel_t wheel;
  uint64_t timer_armed;               /* tick the uv timer is set for */
  /* Memory (task.c, stack.c). */
  weft__stack_cache_t stacks;
  weft_task_t *free_tasks;            /* free records homed here */
  unsigned nfree_tasks;
  void *task_slabs;                   /* record slabs allocated here */
  weft__list_t io_objs;               /* open streams and servers homed
                                         here (io/home.c) */
  weft__list_t offloads;              /* offload requests queued on this
                                         loop whose after_work has not run
                                         (io/offload.c) */
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
};

/* ------------------------------------------------------------------------ */
/* Runtime                                                                   */

#if defined(WEFT_TEST_HOOKS)
/* Test builds only (tests/CMakeLists.txt): called by a thread that is no
 * worker of the task's runtime right after it queued a task it wakes, before
 * it notifies a worker, to widen that window. */
extern void (*weft__test_hook_foreign_wake)(void);
#endif

/* Tasks submitted from any thread (foreign.c, protocol at its top). Lives
 * in the runtime struct, which outlives weft_run while handles remain. */
typedef struct weft__foreign {
  pthread_mutex_t mu;     /* guards the fields below, and is held across
                             every wake sent from outside the runtime */
  int closed;             /* 1 once main finished: submission fails */
  atomic_uint_fast64_t spawned; /* tasks submitted; written under mu, read
                                   by the quiescence check (runtime.c) */
  weft__list_t tasks;     /* records of submitted tasks not yet freed */
} weft__foreign_t;

struct weft_runtime {
  /* Read on hot paths by every worker and written (almost) never: kept
   * off the cache lines of the shared queues below, whose writes would
   * otherwise invalidate them in every worker's cache. */
  weft_config_t cfg;          /* resolved configuration */
  unsigned nworkers;
  weft__worker_t *workers;    /* nworkers, cache-line aligned */
  atomic_int shutdown;        /* main finished: cancel everything */
  atomic_int stop;            /* every task finished: workers exit */
  _Alignas(64) weft__inject_t inject; /* global queue */
  _Alignas(64) weft__idle_t idle;     /* searching/parking coordinator */
  _Alignas(64) weft__stack_pool_t stacks; /* stack slabs and free stacks */
  _Alignas(64) atomic_size_t live; /* live records, only with max_tasks */
  weft_task_t *main;          /* the main task (malloc'ed, not pooled) */
  int main_status;
  void *main_result;
  pthread_mutex_t start_mu;   /* start-up handshake */
  pthread_cond_t start_cv;
  unsigned started;           /* workers that initialised their loop */
  unsigned exited;            /* workers that left their run loop */
  int start_err;              /* first start-up error */
  atomic_uint refs;           /* handles (foreign.h) + 1 for weft_run; the
                                 last one frees this struct (foreign.c) */
  weft__foreign_t foreign;    /* submissions from any thread (foreign.c) */
};

/* ------------------------------------------------------------------------ */
/* Cross-subsystem functions                                                 */

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
 * without running it (task.c). */
int weft__task_prepare(weft__worker_t *w, weft_task_t *t);
void weft__sched_finish_switch(weft__worker_t *w);
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

/* Suspension (wait.c). All return 0 or WEFT_ECANCELED. */
#define WEFT__NO_DEADLINE UINT64_MAX
/* 1 if the task must stop waiting: a pending request (consumed) or the
 * runtime's shutdown. */
int weft__wait_check_cancel(weft_task_t *t);
/* Re-post a consumed request whose wait was satisfied anyway. */
void weft__cancel_restore(weft_task_t *t);
/* Waiter handshake (wait.c): under the queue's lock the waker unlinks the
 * waiter and claims it (fired = 1); after unlocking it wakes the task and
 * finally stores fired = 2, its last access to the waiter. */
weft_task_t *weft__waiter_claim(weft__waiter_t *w);
/* 1 if a waker must pass w by, leaving it linked: its wait is cancellable
 * and its task has a cancellation pending, so the wait will unlink it and
 * return WEFT_ECANCELED. Under the queue's lock, while w is linked. */
static inline int weft__waiter_skip(const weft__waiter_t *w) {
  return w->cancellable && weft__state_cancel_pending(&w->task->state);
}
void weft__waiter_complete(weft__waiter_t *w, weft_task_t *task);
/* Detach a waiter that is no longer wanted: returns 0 if it was still linked
 * (now unlinked), 1 if a waker had claimed it (waits for fired == 2). */
int weft__waiter_detach(weft__waiter_t *w, weft__spinlock_t *lock);
/* Park until the waiter fires (0), a cancellation (WEFT_ECANCELED, unless
 * uncancellable), or the deadline (WEFT_ETIMEDOUT). w may be NULL (a plain
 * sleep), lock guards the queue w is linked in. On any error return, w has
 * been detached; a waiter that fired wins over a cancellation or timeout. */
int weft__wait(weft__waiter_t *w, weft__spinlock_t *lock, uint64_t deadline,
               int uncancellable);
/* Park once (spurious wakes possible): callers loop on their condition. */
void weft__park(weft_task_t *t);

/* A suspension loop with deadlines, for waits that do not fit weft__wait()
 * (several waiters, I/O flags): begin, then poll before every park, then
 * end. The wait honours `deadline` (WEFT__NO_DEADLINE: none) and the
 * task's timeout scopes: a timer on the current worker is armed for the
 * earlier of the two, and the task is routed back there while it is armed.
 *   weft__waitctx_t c;
 *   weft__wait_begin(&c, t, deadline);
 *   while (!condition && (rc = weft__wait_poll(&c, uncancellable)) == 0)
 *     weft__park(t);
 *   weft__wait_end(&c);
 * weft__wait_poll() returns 0 (keep waiting), WEFT_ETIMEDOUT (deadline
 * passed) or WEFT_ECANCELED (a cancellation request, consumed; a scope that
 * expired cancels the task first). An uncancellable wait still lets scopes
 * expire: the request stays pending for the next suspension point. */
typedef struct weft__waitctx {
  weft_task_t *t;
  uint64_t deadline;         /* the caller's own deadline */
  weft__worker_t *tw;        /* worker holding tm while armed */
  weft__worker_t *route;     /* t's route before the wait */
  int armed;                 /* tm is on tw's wheel */
  weft__timer_t tm;
} weft__waitctx_t;
void weft__wait_begin(weft__waitctx_t *c, weft_task_t *t, uint64_t deadline);
int weft__wait_poll(weft__waitctx_t *c, int uncancellable);
void weft__wait_end(weft__waitctx_t *c);

/* Timers (time.c): owner worker only. */
uint64_t weft__now_ns(void);
/* ms as ns for a deadline: clamped to UINT64_MAX / 2 (some 292 years), so
 * that adding it to weft__now_ns() cannot wrap, and it stays below
 * WEFT__NO_DEADLINE. The one conversion every timeout in ms goes through. */
static inline uint64_t weft__ms_to_ns(uint64_t ms) {
  return ms > UINT64_MAX / 2000000 ? UINT64_MAX / 2 : ms * 1000000u;
}
/* The monotonic deadline ms from now (no "never" value: callers map theirs
 * to WEFT__NO_DEADLINE first). */
static inline uint64_t weft__deadline_after_ms(uint64_t ms) {
  return weft__now_ns() + weft__ms_to_ns(ms);
}
void weft__timer_init(weft__timer_t *t, uint64_t deadline, weft_task_t *task);
/* Cannot fail: the wheel needs no memory (its nodes are the callers'). */
void weft__timer_add(weft__worker_t *w, weft__timer_t *t);
void weft__timer_remove(weft__worker_t *w, weft__timer_t *t);
void weft__timers_init(weft__worker_t *w);
void weft__timers_destroy(weft__worker_t *w);
/* The wheel itself, without a clock or a uv timer (time.c uses them with
 * its worker's; the unit tests drive them with a simulated clock). Ticks
 * are milliseconds of weft__now_ns(). */
void weft__wheel_init(weft__wheel_t *wh, uint64_t now_tick);
/* An empty wheel's cursor moves on to now_tick (nothing lies between). */
void weft__wheel_restart(weft__wheel_t *wh, uint64_t now_tick);
/* Add t, due at t->deadline (ns): it fires at tick ceil(deadline / 1 ms),
 * or at the cursor if that has passed; sets t->tick. O(1). */
void weft__wheel_add(weft__wheel_t *wh, weft__timer_t *t);
/* Remove t if it is in the wheel. O(1). */
void weft__wheel_remove(weft__wheel_t *wh, weft__timer_t *t);
/* The tick by which the wheel must next be expired: the earliest timer's,
 * or (when an upper level's slot comes first) the start of that slot's
 * span, where it moves down; never later than any timer's tick. UINT64_MAX
 * if the wheel is empty. */
uint64_t weft__wheel_next(const weft__wheel_t *wh);
/* The next timer due by now_tick, taken out of the wheel (ticks in order,
 * FIFO within a slot), or NULL once there is none: the cursor is then
 * now_tick + 1. */
weft__timer_t *weft__wheel_expire(weft__wheel_t *wh, uint64_t now_tick);

/* Task records (task.c). */
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
void weft__task_finish(weft__worker_t *w, weft_task_t *t);
/* t's name without writing to t (async-signal-safe): the name itself, or
 * its default formatted into buf. */
const char *weft__task_name_peek(const weft_task_t *t,
                                 char buf[WEFT_TASK_NAME_MAX + 1]);
void weft__task_cancel_all(weft__worker_t *w);
/* weft_task_cancel() without its guard: count and post a request and, if
 * wake, wake t. Only for a worker of t's runtime, or under foreign.mu
 * (foreign.c protocol step 1); wake 0 once submissions are closed. */
int weft__task_cancel_unguarded(weft_task_t *t, int wake);
void weft__task_reclaim_remote(weft__worker_t *w);
void weft__task_free_all(weft__worker_t *w);
weft_task_t *weft__task_new_main(weft_runtime_t *rt, weft_task_fn fn,
                                 void *arg);
/* weft_spawn_ex() for the library's own tasks whose body must run to
 * release what it was handed (server acceptors and connection tasks): it
 * starts even if cancelled before its first run, and its first suspension
 * point then returns WEFT_ECANCELED. weft__task_start_cancelled() tells the
 * body, at its start, whether that happened. */
int weft__spawn_always(const weft_spawn_opts_t *opts, weft_task_fn fn,
                       void *arg, weft_task_t **out);
int weft__task_start_cancelled(const weft_task_t *t);
void weft__task_unref_main(weft_task_t *t);
/* A record for a task submitted from outside (foreign.c): malloc'ed, `size`
 * bytes (a multiple of 64, >= sizeof(weft_task_t)) with the record first;
 * one reference (held until it completes), SCHEDULED, local NULL. */
weft_task_t *weft__task_new_foreign(weft_runtime_t *rt, weft_task_fn fn,
                                    void *arg, size_t size);
void weft__task_free_foreign(weft_task_t *t);
void weft__coop_tick(void);

/* I/O (io/home.c): close and free the streams and servers still homed on
 * w; worker_close calls it on w's thread before running the loop out. */
void weft__io_worker_close(weft__worker_t *w);
/* Offload (io/offload.c): run w's loop, after its handles were closed,
 * until no pool work is out or cfg.offload_grace_ms passed. 0: nothing is
 * out (run the loop out and close it); 1: work is still running (reported
 * on stderr): the loop must be left behind, never closed nor freed. */
int weft__offload_drain(weft__worker_t *w);

/* Runtime (runtime.c). */
void weft__runtime_on_main_done(weft_runtime_t *rt, weft_task_t *main);
void weft__runtime_check_quiescent(weft_runtime_t *rt);

/* Submissions from outside (foreign.c). init: in weft_run, before main
 * exists; close: main finished (before `shutdown` is set), refuse new
 * submissions and cancel the submitted tasks; complete: a submitted task
 * finished (task.c, after COMPLETE); release: its last reference dropped;
 * spawned: the final count once `shutdown` was read set (acquire); destroy:
 * end of weft_run, frees what is left and drops weft_run's reference (may
 * free rt). */
void weft__foreign_init(weft_runtime_t *rt);
void weft__foreign_close(weft_runtime_t *rt);
void weft__foreign_complete(weft_task_t *t);
/* weft_task_cancel() from a thread that is no worker of t's runtime. */
int weft__foreign_cancel(weft_task_t *t);
void weft__foreign_release(weft_task_t *t);
uint64_t weft__foreign_spawned(weft_runtime_t *rt);
void weft__foreign_destroy(weft_runtime_t *rt);

static inline void weft__count(weft__worker_t *w, int which) {
  /* relaxed: a statistic; only this worker writes it (a load and a store,
   * no read-modify-write, is enough with one writer). */
  atomic_store_explicit(
      &w->stats.v[which],
      atomic_load_explicit(&w->stats.v[which], memory_order_relaxed) + 1,
      memory_order_relaxed);
}

/* Count on w from another thread: a counter that several threads write
 * (WEFT__C_WAKEUPS: every waker counts the wake it sends). */
static inline void weft__count_shared(weft__worker_t *w, int which) {
  /* relaxed: a statistic, but with several writers an increment must be a
   * read-modify-write, or two concurrent ones lose one. */
  atomic_fetch_add_explicit(&w->stats.v[which], 1, memory_order_relaxed);
}

#endif /* WEFT_CORE_H */
