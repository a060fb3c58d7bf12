/*
 * Time (time.c, the wheel's design at its top): the monotonic clock,
 * deadlines in ns, and the hierarchical timing wheel as a type of its own,
 * with no worker and no runtime (as libuv's timer.c works on a heap). A
 * leaf: the workers' timers (sched/timers.c, declared in sched/worker.h)
 * expire their wheel and wake the tasks of the timers it hands back.
 */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include "weft.h"

#include "list.h"

#include <stddef.h>
#include <stdint.h>

typedef struct weft__worker weft__worker_t;

/* One tick of the wheel: 1 ms of weft__now_ns(). */
#define WEFT__TICK_NS 1000000u

/* "No deadline": every deadline in ns is below it (weft__ms_to_ns). */
#define WEFT__NO_DEADLINE UINT64_MAX

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

/* Where a timer is (time.c): in no wheel, or in level `where - 1`. */
enum { WEFT__TIMER_NONE = 0, WEFT__TIMER_LEVEL0 = 1 };

/* A timer: a node of one wheel, touched only by the wheel's owner. Lives on
 * the waiting task's stack; set up with weft__timer_init(). The wheel uses
 * link, deadline, tick and where; task, route_after and fired are its
 * owner's (sched/timers.c), which the wheel never reads. */
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

/* A hierarchical timing wheel (time.c), one thread only. Level
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

/* Ticks are milliseconds of weft__now_ns(); the wheel reads no clock
 * itself (the workers pass the clock's tick, the unit tests a simulated
 * one). */
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

/* A timer due at `deadline` (ns) that wakes `task`, in no wheel yet;
 * route_after NULL (the waiter sets it before adding the timer). */
void weft__timer_init(weft__timer_t *t, uint64_t deadline, weft_task_t *task);

#endif /* WEFT_TIMER_H */
