/*
 * The task state word: one atomic word with named bits, changed only by the
 * transition functions below (in the spirit of tokio's task/state.rs).
 *
 * Bits:
 *   SCHEDULED  the scheduler owns the task: it is in exactly one run queue,
 *              LIFO slot, inbox or inject queue, or running on a worker. Only
 *              the thread that sets SCHEDULED (spawn, wake) may enqueue it.
 *   NOTIFIED   a wake arrived while SCHEDULED (typically while the task was
 *              running or saving its context): the worker re-queues the task
 *              instead of parking it.
 *   CANCEL     a cancellation request waits to be delivered at the task's
 *              current or next suspension point.
 *   COMPLETE   the body returned; result and status are final (published by
 *              the release that sets this bit).
 *   JOINED     some task linked a waiter on the join queue (set under the
 *              queue's lock before linking). The completer takes that lock
 *              only if its own fetch_or(COMPLETE) saw JOINED: both are RMWs
 *              on this word, so either the awaiter sees COMPLETE and does not
 *              link, or the completer sees JOINED and drains the queue.
 *
 * Protocol (the "one runner" invariant of docs/design.md):
 *  1. A task suspends in two phases: it switches to its worker's scheduler
 *     context first; only then does the worker call weft__state_park(), which
 *     clears SCHEDULED unless NOTIFIED is set. So a task is never made
 *     runnable while its registers are still being saved.
 *  2. weft__state_wake() sets SCHEDULED on a parked task and tells the caller
 *     to enqueue it; on a SCHEDULED task it only sets NOTIFIED. Exactly one
 *     waker therefore enqueues a parked task, however many race.
 *  3. Yielding and running need no transition: the task stays SCHEDULED.
 */
#ifndef WEFT_TASK_STATE_H
#define WEFT_TASK_STATE_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

enum {
  WEFT__ST_SCHEDULED = 1u << 0,
  WEFT__ST_NOTIFIED = 1u << 1,
  WEFT__ST_CANCEL = 1u << 2,
  WEFT__ST_COMPLETE = 1u << 3,
  WEFT__ST_JOINED = 1u << 4,
  /* Task dumps (dump.c, protocol at its top). RUNNING: a worker runs the
   * task (its stack is live); set by the worker before it resumes the task
   * (weft__state_run), cleared once its registers are saved (park, yield),
   * never cleared after the task finished. DUMPING: a dumper is reading the
   * record and, if RUNNING was clear, the saved stack; a worker that finds
   * it set when it claims the task waits until it is clear. The index + 1
   * of the running worker is kept in the bits from WEFT__ST_WORKER_SHIFT
   * while RUNNING is set (0 otherwise). */
  WEFT__ST_RUNNING = 1u << 5,
  WEFT__ST_DUMPING = 1u << 6
};
#define WEFT__ST_WORKER_SHIFT 16u
#define WEFT__ST_RUN_MASK (WEFT__ST_RUNNING | (0xffffu << WEFT__ST_WORKER_SHIFT))

/* Returns 1 if the caller must enqueue the task (it was parked). */
static inline int weft__state_wake(atomic_uint *st) {
  /* relaxed: the CAS below does the ordering. */
  unsigned old = atomic_load_explicit(st, memory_order_relaxed);
  unsigned nw;
  do {
    if (old & WEFT__ST_COMPLETE)
      return 0;
    if (old & WEFT__ST_SCHEDULED) {
      if (old & WEFT__ST_NOTIFIED)
        return 0;
      nw = old | WEFT__ST_NOTIFIED;
    } else {
      nw = old | WEFT__ST_SCHEDULED;
    }
    /* acq_rel: release publishes the waker's writes (fired flags, handed-over
     * items) to whoever runs the task next; acquire orders them after the
     * park that made the task idle. */
  } while (!atomic_compare_exchange_weak_explicit(
      st, &old, nw, memory_order_acq_rel, memory_order_relaxed));
  return !(old & WEFT__ST_SCHEDULED);
}

/* Called by the worker after the task switched away to wait. Returns 1 if
 * the task was parked, 0 if a wake arrived meanwhile (NOTIFIED consumed) and
 * the worker must re-queue it. */
static inline int weft__state_park(atomic_uint *st) {
  unsigned old = atomic_load_explicit(st, memory_order_relaxed);
  unsigned nw;
  do {
    if (old & WEFT__ST_NOTIFIED)
      nw = old & ~(unsigned)(WEFT__ST_NOTIFIED | WEFT__ST_RUN_MASK);
    else
      nw = old & ~(unsigned)(WEFT__ST_SCHEDULED | WEFT__ST_RUN_MASK);
    /* acq_rel: release makes the task's saved context visible to the waker
     * that will enqueue it; acquire pairs with a racing waker's release. */
  } while (!atomic_compare_exchange_weak_explicit(
      st, &old, nw, memory_order_acq_rel, memory_order_relaxed));
  return !(old & WEFT__ST_NOTIFIED);
}

/* Spin until no dumper holds the record (DUMPING clear). */
static inline void weft__state_dump_wait(atomic_uint *st) {
  unsigned spins = 0;
  /* acquire: pairs with the dumper's release of DUMPING: its reads of the
   * record and stack happen before what the caller does next. */
  while (atomic_load_explicit(st, memory_order_acquire) & WEFT__ST_DUMPING)
    if (++spins > 64)
      sched_yield(); /* the dumper copies one task: a few microseconds */
}

/* Task dumps (dump.c protocol): the worker with index `worker` is about to
 * resume (or first run) t. Waits out a dumper that is reading t's stack. */
static inline void weft__state_run(atomic_uint *st, unsigned worker) {
  /* acq_rel: acquire pairs with a dumper's release of DUMPING (its reads of
   * the stack happen before the task writes it again); release continues
   * the spawn's release sequence for dumpers reading a running task. The
   * old value is not used: x86 then needs one `lock or`, not a CAS loop. */
  atomic_fetch_or_explicit(
      st, WEFT__ST_RUNNING | ((worker + 1u) << WEFT__ST_WORKER_SHIFT),
      memory_order_acq_rel);
  /* acquire: a load after the RMW reads its value or a later one. So it
   * sees DUMPING if a dumper claimed the record before the RMW and still
   * holds it; if that dumper has released it since, the load reads from
   * the release and synchronises with it. A dumper that claims after the
   * RMW saw RUNNING and reads nothing the task writes; seeing its bit
   * here only costs a wait of one task's copy. */
  if (__builtin_expect((atomic_load_explicit(st, memory_order_acquire) &
                        WEFT__ST_DUMPING) != 0,
                       0))
    weft__state_dump_wait(st);
}

/* The task finished (scheduler context, before its completion): take
 * DUMPING for good, waiting out a dumper that holds the record, so that no
 * dumper reads it from now until a spawn reuses it (which overwrites the
 * word). The task's COMPLETE comes later (task_publish). */
static inline void weft__state_done_wait(atomic_uint *st) {
  /* relaxed: the CAS below orders. */
  unsigned old = atomic_load_explicit(st, memory_order_relaxed);
  for (;;) {
    if (old & WEFT__ST_DUMPING) {
      weft__state_dump_wait(st);
      old = atomic_load_explicit(st, memory_order_relaxed);
      continue;
    }
    /* acquire: as in weft__state_dump_wait, for a dumper that held it
     * before. */
    if (atomic_compare_exchange_weak_explicit(st, &old,
                                              old | WEFT__ST_DUMPING,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return;
  }
}

/* The task yielded (its registers are saved): it is no longer running. */
static inline void weft__state_unrun(atomic_uint *st) {
  /* release: the saved context and stack are visible to a dumper that
   * acquires the cleared bit. */
  atomic_fetch_and_explicit(st, ~(unsigned)WEFT__ST_RUN_MASK,
                            memory_order_release);
}

/* Post a cancellation request. Returns 0 if the task already completed. */
static inline int weft__state_cancel(atomic_uint *st) {
  /* acq_rel: the request is ordered with the task's own transitions. */
  unsigned old = atomic_fetch_or_explicit(st, WEFT__ST_CANCEL,
                                          memory_order_acq_rel);
  return !(old & WEFT__ST_COMPLETE);
}

/* 1 if a cancellation request is pending (not consumed). A waker reads it
 * under a wait queue's lock to skip a cancelled waiter (wait.c); only the
 * task itself consumes the bit, and a waiting task only after it has
 * unlinked its waiter, so a waker that can still see the waiter sees the bit
 * of any weft_task_cancel() that returned before it looked. */
static inline int weft__state_cancel_pending(const atomic_uint *st) {
  /* relaxed: reading the bit needs no order; coherence gives the waker the
   * request of a cancel() that happens-before it. */
  return (atomic_load_explicit(st, memory_order_relaxed) &
          WEFT__ST_CANCEL) != 0;
}

/* Consume a pending cancellation request; returns 1 if there was one. */
static inline int weft__state_take_cancel(atomic_uint *st) {
  /* relaxed check first: the common case has no request. */
  if (!(atomic_load_explicit(st, memory_order_relaxed) & WEFT__ST_CANCEL))
    return 0;
  /* acquire: pairs with the canceller's fetch_or. */
  return (atomic_fetch_and_explicit(st, ~(unsigned)WEFT__ST_CANCEL,
                                    memory_order_acquire) &
          WEFT__ST_CANCEL) != 0;
}

#endif /* WEFT_TASK_STATE_H */
