/*
 * Per-worker timers: a hashed timing wheel of 1 ms ticks and one uv_timer_t
 * armed for the earliest non-empty tick.
 *
 * Owner-only: a timer is added, fired and removed on its worker's thread. A
 * task with a timer pending sets its `route` to that worker, so whoever wakes
 * it (a canceller, a completing task) sends it back there, and it removes its
 * own timer without any cross-thread access (design-brief §2.3). When the
 * timer itself fires and enqueues the parked task, nothing is left to remove,
 * so the callback clears the route and the task may run anywhere.
 *
 * The wheel: a timer due at `deadline` (ns) belongs to tick
 * T = ceil(deadline / 1 ms) and fires once the clock has reached T ms, so
 * never early and at most 1 ms late (libuv's own timers have 1 ms
 * resolution). Ticks in [cursor, cursor + WHEEL_SLOTS) live in slot
 * T % WHEEL_SLOTS, a FIFO list (timers of one tick fire in the order they
 * were added), with a bitmap of non-empty slots; later ticks wait in the
 * unsorted `far` list, which is moved into the wheel every WHEEL_SLOTS / 2
 * ticks. Adding and removing are O(1) and touch only the neighbours in one
 * list. A binary heap, the first version, moved up to 17 entries per expiry
 * and wrote each moved entry's index into its timer node on another task's
 * stack: a cache and TLB miss per level with 100,000 sleepers.
 */
#include "core.h"

#include <stdlib.h>

#define NS_PER_TICK 1000000u
#define WHEEL_MASK (WEFT__WHEEL_SLOTS - 1u)

uint64_t weft__now_ns(void) { return uv_hrtime(); }

static uint64_t tick_of(uint64_t deadline) {
  return deadline / NS_PER_TICK + (deadline % NS_PER_TICK != 0);
}

static void slot_insert(weft__worker_t *w, weft__timer_t *t) {
  unsigned s = (unsigned)(t->tick & WHEEL_MASK);
  weft__list_push_back(&w->wheel[s], &t->link);
  w->wheel_bits[s / 64] |= (uint64_t)1 << (s % 64);
  w->wheel_len++;
  t->where = WEFT__TIMER_WHEEL;
}

static void place(weft__worker_t *w, weft__timer_t *t) {
  if (t->tick < w->wheel_tick)
    t->tick = w->wheel_tick; /* already due: the next tick processed */
  if (t->tick - w->wheel_tick < WEFT__WHEEL_SLOTS) {
    slot_insert(w, t);
  } else {
    weft__list_push_back(&w->far, &t->link);
    w->far_len++;
    if (t->tick < w->far_min)
      w->far_min = t->tick;
    t->where = WEFT__TIMER_FAR;
  }
}

/* Move the far timers that now fall inside the wheel's window into it, and
 * recompute far_min. */
static void cascade(weft__worker_t *w) {
  weft__list_t keep, *n;
  weft__list_init(&keep);
  w->far_min = UINT64_MAX;
  while ((n = weft__list_pop_front(&w->far))) {
    weft__timer_t *t = weft__container_of(n, weft__timer_t, link);
    w->far_len--;
    if (t->tick < w->wheel_tick + WEFT__WHEEL_SLOTS) {
      place(w, t);
    } else {
      weft__list_push_back(&keep, n);
      w->far_len++;
      if (t->tick < w->far_min)
        w->far_min = t->tick;
    }
  }
  while ((n = weft__list_pop_front(&keep)))
    weft__list_push_back(&w->far, n);
}

/* The earliest tick holding a timer, or UINT64_MAX. */
static uint64_t earliest(weft__worker_t *w) {
  if (w->wheel_len) {
    unsigned s = (unsigned)(w->wheel_tick & WHEEL_MASK);
    for (unsigned k = 0; k <= WEFT__WHEEL_SLOTS / 64; k++) {
      unsigned word = (s / 64 + k) % (WEFT__WHEEL_SLOTS / 64);
      uint64_t bits = w->wheel_bits[word];
      if (k == 0)
        bits &= ~(uint64_t)0 << (s % 64); /* slots before s: wrapped */
      else if (k == WEFT__WHEEL_SLOTS / 64)
        bits &= ((uint64_t)1 << (s % 64)) - 1; /* the wrapped part of s's */
      if (bits) {
        unsigned slot = word * 64 + (unsigned)__builtin_ctzll(bits);
        return w->wheel_tick + ((slot - s) & WHEEL_MASK);
      }
    }
  }
  return w->far_len ? w->far_min : UINT64_MAX;
}

static void on_timer(uv_timer_t *h);

static void arm(weft__worker_t *w) {
  uint64_t tick = earliest(w);
  if (tick == w->timer_armed)
    return;
  if (tick == UINT64_MAX) {
    uv_timer_stop(&w->timer);
    w->timer_armed = UINT64_MAX;
    return;
  }
  uint64_t due = tick * NS_PER_TICK, now = weft__now_ns();
  uint64_t ms = due > now ? (due - now + NS_PER_TICK - 1) / NS_PER_TICK : 0;
  uv_update_time(&w->loop);
  uv_timer_start(&w->timer, on_timer, ms, 0);
  w->timer_armed = tick;
}

/* Fire every timer of slot s (all of tick w->wheel_tick). Returns 1 if any. */
static int fire_slot(weft__worker_t *w, unsigned s) {
  weft__list_t *n;
  int woke = 0;
  while ((n = weft__list_pop_front(&w->wheel[s]))) {
    weft__timer_t *t = weft__container_of(n, weft__timer_t, link);
    w->wheel_len--;
    t->where = WEFT__TIMER_NONE;
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
    woke = 1;
  }
  w->wheel_bits[s / 64] &= ~((uint64_t)1 << (s % 64));
  return woke;
}

static void on_timer(uv_timer_t *h) {
  weft__worker_t *w = h->data;
  uint64_t now_tick = weft__now_ns() / NS_PER_TICK;
  int woke = 0;
  w->timer_armed = UINT64_MAX;
  if (w->wheel_len == 0 && w->wheel_tick < now_tick) {
    w->wheel_tick = now_tick; /* nothing in between: jump */
    cascade(w);
  }
  while (w->wheel_tick <= now_tick) {
    unsigned s = (unsigned)(w->wheel_tick & WHEEL_MASK);
    if (w->wheel_bits[s / 64] & ((uint64_t)1 << (s % 64)))
      woke |= fire_slot(w, s);
    w->wheel_tick++;
    if ((w->wheel_tick & (WEFT__WHEEL_SLOTS / 2 - 1)) == 0 && w->far_len)
      cascade(w);
    if (w->wheel_len == 0 && w->wheel_tick < now_tick) {
      w->wheel_tick = now_tick;
      if (w->far_len)
        cascade(w);
    }
  }
  arm(w);
  /* libuv runs due timers at the top of uv_run(UV_RUN_ONCE), before it
   * computes the poll timeout: without this, a parked worker would block in
   * the poll with the tasks just woken in its own queue. uv_stop makes that
   * one poll non-blocking (the flag is cleared when uv_run returns). */
  if (woke)
    uv_stop(&w->loop);
}

void weft__timer_init(weft__timer_t *t, uint64_t deadline, weft_task_t *task) {
  t->deadline = deadline;
  t->task = task;
  t->route_after = task ? task->pin : NULL;
  t->tick = 0;
  t->where = WEFT__TIMER_NONE;
  t->fired = 0;
}

int weft__timer_add_checked(weft__worker_t *w, weft__timer_t *t) {
  t->fired = 0;
  t->tick = tick_of(t->deadline);
  place(w, t);
  if (t->tick < w->timer_armed)
    arm(w);
  return 0;
}

void weft__timer_remove(weft__worker_t *w, weft__timer_t *t) {
  switch (t->where) {
  case WEFT__TIMER_NONE:
    return;
  case WEFT__TIMER_WHEEL: {
    unsigned s = (unsigned)(t->tick & WHEEL_MASK);
    weft__list_remove(&t->link);
    w->wheel_len--;
    if (weft__list_empty(&w->wheel[s]))
      w->wheel_bits[s / 64] &= ~((uint64_t)1 << (s % 64));
    break;
  }
  case WEFT__TIMER_FAR:
    weft__list_remove(&t->link);
    w->far_len--; /* far_min stays a lower bound: at worst an early wake */
    break;
  }
  t->where = WEFT__TIMER_NONE;
  /* The uv timer may now fire early for a removed tick; on_timer then finds
   * nothing due and re-arms, which is cheaper than re-arming here. */
}

void weft__timers_init(weft__worker_t *w) {
  uv_timer_init(&w->loop, &w->timer);
  w->timer.data = w;
  for (unsigned i = 0; i < WEFT__WHEEL_SLOTS; i++)
    weft__list_init(&w->wheel[i]);
  for (unsigned i = 0; i < WEFT__WHEEL_SLOTS / 64; i++)
    w->wheel_bits[i] = 0;
  weft__list_init(&w->far);
  w->wheel_tick = weft__now_ns() / NS_PER_TICK;
  w->wheel_len = w->far_len = 0;
  w->far_min = UINT64_MAX;
  w->timer_armed = UINT64_MAX;
}

void weft__timers_destroy(weft__worker_t *w) {
  /* Timers live on task stacks and every task has finished: nothing to
   * free. */
  w->wheel_len = w->far_len = 0;
}
