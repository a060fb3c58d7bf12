/*
 * The workers' timers: each worker's wheel (timer.h, time.c) and the one
 * uv_timer_t armed for the tick by which it must next be expired. The wheel
 * hands back expired timers; this file wakes their tasks.
 *
 * Owner-only: a timer is added, fired and removed on its worker's thread. A
 * task with a timer pending sets its `route` to that worker, so whoever wakes
 * it (a canceller, a completing task) sends it back there, and it removes its
 * own timer without any cross-thread access (docs/design.md §2.3). When the
 * timer itself fires and enqueues the parked task, nothing is left to remove,
 * so the callback clears the route and the task may run anywhere. The wheel
 * (weft__wheel_*) is a plain structure of its worker's, with no locks.
 *
 * The uv timer is armed for weft__wheel_next(): level 0's earliest tick,
 * or an upper-level span's start if that comes first (the wheel then moves
 * that slot down and is re-armed for the precise tick): never after any
 * timer's tick. Removing a timer leaves the uv timer as it is; an expiry
 * that finds nothing due re-arms it, which is cheaper than re-arming at
 * every removal.
 */
#include "record.h"
#include "sched/worker.h"
#include "task_state.h"
#include "timer.h"

#include <uv.h>

static void on_timer(uv_timer_t *h);

static void arm(weft__worker_t *w) {
  uint64_t tick = weft__wheel_next(&w->timers.wheel);
  if (tick == w->timers.armed)
    return;
  if (tick == UINT64_MAX) {
    uv_timer_stop(&w->timers.uv);
    w->timers.armed = UINT64_MAX;
    return;
  }
  uint64_t due =
      tick <= UINT64_MAX / WEFT__TICK_NS ? tick * WEFT__TICK_NS : UINT64_MAX;
  uint64_t now = weft__now_ns();
  uint64_t ms = due > now ? (due - now + WEFT__TICK_NS - 1) / WEFT__TICK_NS : 0;
  uv_update_time(&w->own.loop);
  uv_timer_start(&w->timers.uv, on_timer, ms, 0); /* libuv saturates the sum */
  w->timers.armed = tick;
}

/* Wake t's task; t is out of the wheel. */
static void fire(weft__timer_t *t) {
  t->fired = 1;
  weft_task_t *task = t->task;
  if (weft__state_wake(&task->state)) {
    /* We enqueue a parked task: its timer is gone from the wheel, so it
     * gets back the route it had before the wait (none, its pin, or the
     * home worker of an I/O operation in progress) and may resume
     * wherever that allows. The queue push publishes the route and
     * `fired`. A task already queued (woken by something else) keeps the
     * timer's route, comes back here, and restores its route itself
     * (weft__wait_poll). */
    task->route = t->route_after;
    weft__sched_schedule(task, 1);
  }
}

static void on_timer(uv_timer_t *h) {
  weft__worker_t *w = h->data;
  uint64_t now_tick = weft__now_ns() / WEFT__TICK_NS;
  int woke = 0;
  weft__timer_t *t;
  w->timers.armed = UINT64_MAX;
  while ((t = weft__wheel_expire(&w->timers.wheel, now_tick))) {
    fire(t);
    woke = 1;
  }
  arm(w);
  weft__metric_set(&w->remote.m.timers, w->timers.wheel.len); /* metrics */
  /* libuv runs due timers at the top of uv_run(UV_RUN_ONCE), before it
   * computes the poll timeout: without this, a parked worker would block in
   * the poll with the tasks just woken in its own queue. uv_stop makes that
   * one poll non-blocking (the flag is cleared when uv_run returns). */
  if (woke)
    uv_stop(&w->own.loop);
}

void weft__timer_add(weft__worker_t *w, weft__timer_t *t) {
  t->fired = 0;
  if (w->timers.wheel.len == 0) /* the cursor may be far behind: catch it up */
    weft__wheel_restart(&w->timers.wheel, weft__now_ns() / WEFT__TICK_NS);
  weft__wheel_add(&w->timers.wheel, t);
  weft__metric_set(&w->remote.m.timers, w->timers.wheel.len); /* metrics */
  if (t->tick < w->timers.armed)
    arm(w); /* else the uv timer fires first, and re-arms then */
}

void weft__timer_remove(weft__worker_t *w, weft__timer_t *t) {
  /* A timer that fired (or was never added) is not on the wheel: a task
   * may end its wait on another worker then, and must not touch w's wheel,
   * which only w's thread may (the count below included). */
  if (t->where == WEFT__TIMER_NONE)
    return;
  weft__wheel_remove(&w->timers.wheel, t);
  weft__metric_set(&w->remote.m.timers, w->timers.wheel.len); /* metrics */
  /* The uv timer may now fire early for a removed tick; on_timer then finds
   * nothing due and re-arms, which is cheaper than re-arming here. */
}

void weft__timers_init(weft__worker_t *w) {
  uv_timer_init(&w->own.loop, &w->timers.uv);
  w->timers.uv.data = w;
  weft__wheel_init(&w->timers.wheel, weft__now_ns() / WEFT__TICK_NS);
  w->timers.armed = UINT64_MAX;
}

void weft__timers_destroy(weft__worker_t *w) {
  /* Timers live on task stacks and every task has finished: nothing to
   * free. */
  w->timers.wheel.len = 0;
}
