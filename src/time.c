/*
 * The clock and the hierarchical timing wheel: a plain structure with no
 * locks, no worker and no runtime, worked on the way libuv's timer.c works
 * on its heap. Whoever owns a wheel adds, removes and expires its timers on
 * one thread; the workers' use of theirs (a uv timer armed for
 * weft__wheel_next(), expired timers waking their tasks, the route
 * protocol) is in sched/timers.c. The wheel never touches a timer's task:
 * weft__wheel_expire() only hands the timer back.
 *
 * The wheel: a timer due at `deadline` (ns) belongs to tick
 * T = ceil(deadline / 1 ms) and fires once the clock has reached T ms, so
 * never early and at most 1 ms late (libuv's own timers have 1 ms
 * resolution). The cursor `tick` is the next tick to process. Level 0 holds
 * the ticks in [cursor, cursor + 1,024), each in slot T % 1,024, a FIFO list
 * (timers of one tick fire in the order they reached level 0: the order they
 * were added, except that one moved down from above comes after those added
 * straight to level 0 before it moved); level k >= 1 holds ticks up to
 * 2^(10+6k) ahead in 64 slots, slot (T >> (10+6(k-1))) % 64, each spanning
 * the whole level below (levels in timer.h); each level has a bitmap of its
 * non-empty slots. A timer goes to the lowest level whose reach covers
 * T - cursor, so an upper-level slot's span always lies after the cursor's
 * own span at that level, within 64 spans. When the cursor reaches the start
 * of a span, the timers of that span's slot move down, each to the level its
 * remaining distance calls for, which is lower: a timer moves at most once
 * per level it starts above level 0, and a sleep under 1,024 ms never moves.
 * Adding and removing are O(1) and touch only the neighbours in one list; a
 * move touches only the timers due within the span starting (at level 1, the
 * next 1,024 ms).
 * The cursor skips empty stretches a slot span at a time. It moves only in an
 * expiry, so it may lag the clock: a timer is then placed a level higher
 * than its distance from now calls for, which costs at most one more move
 * and an earlier re-arm, never lateness; a timer added to an empty wheel
 * first brings the cursor up to the clock. A binary heap, the first version,
 * moved up to 17 entries per expiry and wrote each moved entry's index into its
 * timer node on another task's stack: a cache and TLB miss per level with
 * 100,000 sleepers. A flat wheel with an unsorted list beyond its window,
 * the second version, walked that whole list every 512 ticks, and (a
 * defect) forgot it while a later timer sat in the window.
 */
#include "list.h"
#include "timer.h"

#include <stdint.h>
#include <uv.h>

#define MASK0 (WEFT__WHEEL_SLOTS - 1u)
#define UP_MASK (WEFT__WHEEL_UP_SLOTS - 1u)

uint64_t weft__now_ns(void) { return uv_hrtime(); }

static uint64_t tick_of(uint64_t deadline) {
  return deadline / WEFT__TICK_NS + (deadline % WEFT__TICK_NS != 0);
}

/* log2 of the span of one slot of level k >= 1 (in ticks). */
static unsigned up_shift(unsigned k) {
  return WEFT__WHEEL_BITS + WEFT__WHEEL_UP_BITS * (k - 1);
}

static void place(weft__wheel_t *wh, weft__timer_t *t) {
  if (t->tick < wh->tick)
    t->tick = wh->tick; /* already due: the next tick processed */
  uint64_t delta = t->tick - wh->tick;
  if (delta < WEFT__WHEEL_SLOTS) {
    unsigned s = (unsigned)(t->tick & MASK0);
    weft__list_push_back(&wh->slot[s], &t->link);
    wh->bits[s / 64] |= (uint64_t)1 << (s % 64);
    wh->level_len[0]++;
    t->where = WEFT__TIMER_LEVEL0;
    return;
  }
  /* The lowest level k with delta < 2^(up_shift(k) + UP_BITS). */
  unsigned msb = 63u - (unsigned)__builtin_clzll(delta);
  unsigned k = (msb - WEFT__WHEEL_BITS) / WEFT__WHEEL_UP_BITS + 1;
  if (k > WEFT__WHEEL_UP_LEVELS)
    k = WEFT__WHEEL_UP_LEVELS; /* cannot happen (timer.h); if it did, the
                                  timer would come down too early and
                                  simply be placed again */
  unsigned s = (unsigned)((t->tick >> up_shift(k)) & UP_MASK);
  weft__list_push_back(&wh->up[k - 1][s], &t->link);
  wh->up_bits[k - 1] |= (uint64_t)1 << s;
  wh->level_len[k]++;
  t->where = WEFT__TIMER_LEVEL0 + (int)k;
}

/* The cursor has just reached a multiple of level 0's span: move down the
 * slot of each level whose span starts here. Its timers all lie in
 * [cursor, cursor + span) and go to lower levels, never to a slot that is
 * moved now. */
static void cascade(weft__wheel_t *wh) {
  for (unsigned k = 1; k <= WEFT__WHEEL_UP_LEVELS; k++) {
    unsigned sh = up_shift(k);
    if (wh->tick & (((uint64_t)1 << sh) - 1))
      return; /* not a span start of level k, so of no level above */
    unsigned s = (unsigned)((wh->tick >> sh) & UP_MASK);
    if (!(wh->up_bits[k - 1] & ((uint64_t)1 << s)))
      continue;
    weft__list_t *n;
    while ((n = weft__list_pop_front(&wh->up[k - 1][s]))) {
      wh->level_len[k]--;
      place(wh, weft__container_of(n, weft__timer_t, link));
    }
    wh->up_bits[k - 1] &= ~((uint64_t)1 << s);
  }
}

/* Level 0's earliest tick, or UINT64_MAX. Level 0 holds only ticks in
 * [cursor, cursor + WEFT__WHEEL_SLOTS), so slot order from the cursor's
 * slot on is tick order. */
static uint64_t first0(const weft__wheel_t *wh) {
  if (!wh->level_len[0])
    return UINT64_MAX;
  unsigned s = (unsigned)(wh->tick & MASK0);
  for (unsigned k = 0; k <= WEFT__WHEEL_SLOTS / 64; k++) {
    unsigned word = (s / 64 + k) % (WEFT__WHEEL_SLOTS / 64);
    uint64_t bits = wh->bits[word];
    if (k == 0)
      bits &= ~(uint64_t)0 << (s % 64); /* slots before s: wrapped */
    else if (k == WEFT__WHEEL_SLOTS / 64)
      bits &= ((uint64_t)1 << (s % 64)) - 1; /* the wrapped part of s's */
    if (bits) {
      unsigned slot = word * 64 + (unsigned)__builtin_ctzll(bits);
      return wh->tick + ((slot - s) & MASK0);
    }
  }
  return UINT64_MAX; /* not reached: level_len[0] counts these slots */
}

uint64_t weft__wheel_next(const weft__wheel_t *wh) {
  uint64_t e = first0(wh);
  for (unsigned k = 1; k <= WEFT__WHEEL_UP_LEVELS; k++) {
    if (!wh->level_len[k])
      continue;
    /* The first non-empty slot after the cursor's own span, cyclically:
     * its span starts (p + 1) spans after the cursor's. */
    unsigned sh = up_shift(k);
    uint64_t span = wh->tick >> sh;
    unsigned c = (unsigned)((span + 1) & UP_MASK);
    uint64_t bits = wh->up_bits[k - 1];
    uint64_t rot = c ? bits >> c | bits << (WEFT__WHEEL_UP_SLOTS - c) : bits;
    unsigned p = (unsigned)__builtin_ctzll(rot);
    uint64_t start = (span + 1 + p) << sh;
    if (start < e)
      e = start;
  }
  return e;
}

weft__timer_t *weft__wheel_expire(weft__wheel_t *wh, uint64_t now_tick) {
  while (wh->tick <= now_tick) {
    uint64_t to; /* where the cursor goes next */
    if (wh->level_len[0]) {
      unsigned s = (unsigned)(wh->tick & MASK0);
      if (wh->bits[s / 64] & ((uint64_t)1 << (s % 64))) {
        weft__list_t *n = weft__list_pop_front(&wh->slot[s]);
        if (weft__list_empty(&wh->slot[s]))
          wh->bits[s / 64] &= ~((uint64_t)1 << (s % 64));
        wh->level_len[0]--;
        wh->len--;
        weft__timer_t *t = weft__container_of(n, weft__timer_t, link);
        t->where = WEFT__TIMER_NONE;
        return t;
      }
      /* Level 0's next timer (its slot is not the cursor's), or the next
       * span start of level 0, where upper slots may move down. */
      to = first0(wh);
      uint64_t edge = (wh->tick | MASK0) + 1;
      if (to > edge)
        to = edge;
    } else {
      /* Nothing fires before the start of the lowest non-empty level's
       * next span, where that level moves a slot down. */
      unsigned k = 1;
      while (k <= WEFT__WHEEL_UP_LEVELS && !wh->level_len[k])
        k++;
      if (k > WEFT__WHEEL_UP_LEVELS) {
        wh->tick = now_tick + 1; /* empty */
        break;
      }
      to = ((wh->tick >> up_shift(k)) + 1) << up_shift(k);
    }
    if (to > now_tick + 1)
      to = now_tick + 1;
    wh->tick = to;
    if ((to & MASK0) == 0)
      cascade(wh);
  }
  return NULL;
}

void weft__wheel_add(weft__wheel_t *wh, weft__timer_t *t) {
  t->tick = tick_of(t->deadline);
  place(wh, t);
  wh->len++;
}

void weft__wheel_remove(weft__wheel_t *wh, weft__timer_t *t) {
  if (t->where == WEFT__TIMER_NONE)
    return;
  unsigned k = (unsigned)(t->where - WEFT__TIMER_LEVEL0);
  weft__list_remove(&t->link);
  wh->level_len[k]--;
  wh->len--;
  if (k == 0) {
    unsigned s = (unsigned)(t->tick & MASK0);
    if (weft__list_empty(&wh->slot[s]))
      wh->bits[s / 64] &= ~((uint64_t)1 << (s % 64));
  } else {
    unsigned s = (unsigned)((t->tick >> up_shift(k)) & UP_MASK);
    if (weft__list_empty(&wh->up[k - 1][s]))
      wh->up_bits[k - 1] &= ~((uint64_t)1 << s);
  }
  t->where = WEFT__TIMER_NONE;
}

void weft__wheel_init(weft__wheel_t *wh, uint64_t now_tick) {
  for (unsigned i = 0; i < WEFT__WHEEL_SLOTS; i++)
    weft__list_init(&wh->slot[i]);
  for (unsigned i = 0; i < WEFT__WHEEL_SLOTS / 64; i++)
    wh->bits[i] = 0;
  for (unsigned k = 0; k < WEFT__WHEEL_UP_LEVELS; k++) {
    for (unsigned i = 0; i < WEFT__WHEEL_UP_SLOTS; i++)
      weft__list_init(&wh->up[k][i]);
    wh->up_bits[k] = 0;
  }
  for (unsigned k = 0; k < WEFT__WHEEL_LEVELS; k++)
    wh->level_len[k] = 0;
  wh->len = 0;
  wh->tick = now_tick;
}

void weft__wheel_restart(weft__wheel_t *wh, uint64_t now_tick) {
  /* Empty: no slot to move down between here and there. */
  if (wh->len == 0 && now_tick > wh->tick)
    wh->tick = now_tick;
}

void weft__timer_init(weft__timer_t *t, uint64_t deadline, weft_task_t *task) {
  t->deadline = deadline;
  t->task = task;
  t->route_after = NULL;
  t->tick = 0;
  t->where = WEFT__TIMER_NONE;
  t->fired = 0;
}
