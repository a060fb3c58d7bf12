/*
 * Per-worker timers: a binary min-heap of (deadline, seq, timer) entries, and one uv_timer_t armed for the earliest deadline.
 *
 * Owner-only: a timer is added, fired and removed on its worker's thread. A
 * task with a timer pending sets its `route` to that worker, so whoever wakes
 * it (a canceller, a completing task) sends it back there, and it removes its
 * own timer without any cross-thread access (design-brief §2.3). When the
 * timer itself fires and enqueues the parked task, nothing is left to remove,
 * so the callback clears the route and the task may run anywhere.
 */
#include "core.h"

#include <stdlib.h>

uint64_t weft__now_ns(void) { return uv_hrtime(); }

/* Heap entries keep their keys inline: timer nodes live on 100,000
 * different task stacks, and comparing through pointers would miss the cache
 * (and the TLB) at every level of every sift. */
static int key_less(const weft__heap_entry_t *a, const weft__heap_entry_t *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(weft__worker_t *w, size_t i, weft__heap_entry_t e) {
  w->heap[i] = e;
  e.timer->index = i;
}

static void sift_up(weft__worker_t *w, size_t i) {
  weft__heap_entry_t e = w->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!key_less(&e, &w->heap[parent]))
      break;
    heap_set(w, i, w->heap[parent]);
    i = parent;
  }
  heap_set(w, i, e);
}

static void sift_down(weft__worker_t *w, size_t i) {
  weft__heap_entry_t e = w->heap[i];
  size_t n = w->heap_len;
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    const weft__heap_entry_t *best = &e;
    if (l < n && key_less(&w->heap[l], best)) {
      m = l;
      best = &w->heap[l];
    }
    if (l + 1 < n && key_less(&w->heap[l + 1], best))
      m = l + 1;
    if (m == i)
      break;
    heap_set(w, i, w->heap[m]);
    i = m;
  }
  heap_set(w, i, e);
}

static void heap_remove_at(weft__worker_t *w, size_t i) {
  w->heap[i].timer->index = SIZE_MAX;
  weft__heap_entry_t last = w->heap[--w->heap_len];
  if (i == w->heap_len)
    return;
  heap_set(w, i, last);
  if (i > 0 && key_less(&last, &w->heap[(i - 1) / 2]))
    sift_up(w, i);
  else
    sift_down(w, i);
}

static void on_timer(uv_timer_t *h);

static void arm(weft__worker_t *w) {
  if (w->heap_len == 0) {
    if (w->timer_armed) {
      uv_timer_stop(&w->timer);
      w->timer_armed = 0;
    }
    return;
  }
  uint64_t d = w->heap[0].deadline;
  if (d == w->timer_armed)
    return;
  uint64_t now = weft__now_ns();
  uint64_t ms = d > now ? (d - now + 999999) / 1000000 : 0;
  uv_update_time(&w->loop);
  uv_timer_start(&w->timer, on_timer, ms, 0);
  w->timer_armed = d;
}

static void on_timer(uv_timer_t *h) {
  weft__worker_t *w = h->data;
  uint64_t now = weft__now_ns();
  int woke = 0;
  w->timer_armed = 0;
  while (w->heap_len && w->heap[0].deadline <= now) {
    weft__timer_t *t = w->heap[0].timer;
    heap_remove_at(w, 0);
    t->fired = 1;
    weft_task_t *task = t->task;
    if (weft__state_wake(&task->state)) {
      /* We enqueue a parked task: its timer is gone from the heap, so it may
       * resume on any worker (the route only protects a pending timer). The
       * queue push publishes the route and `fired`. A task already queued
       * (woken by something else) keeps its route and comes back here. */
      task->route = task->pin;
      weft__sched_schedule(task, 1);
    }
    woke = 1;
  }
  arm(w);
  /* libuv runs due timers at the top of uv_run(UV_RUN_ONCE), before it
   * computes the poll timeout: without this, a parked worker would block in
   * the poll with the tasks just woken in its own queue. uv_stop makes that
   * one poll non-blocking (the flag is cleared when uv_run returns). */
  if (woke)
    uv_stop(&w->loop);
}

int weft__timer_add_checked(weft__worker_t *w, weft__timer_t *t) {
  if (w->heap_len == w->heap_cap) {
    size_t cap = w->heap_cap ? w->heap_cap * 2 : 1024;
    weft__heap_entry_t *h = realloc(w->heap, cap * sizeof(*h));
    if (!h)
      return WEFT_ENOMEM;
    w->heap = h;
    w->heap_cap = cap;
  }
  t->seq = w->timer_seq++;
  t->fired = 0;
  weft__heap_entry_t e = {t->deadline, t->seq, t};
  heap_set(w, w->heap_len++, e);
  sift_up(w, t->index);
  if (t->index == 0)
    arm(w);
  return 0;
}

void weft__timer_remove(weft__worker_t *w, weft__timer_t *t) {
  if (t->index == SIZE_MAX)
    return;
  heap_remove_at(w, t->index);
  /* The uv timer may now fire early for a removed deadline; on_timer then
   * finds nothing due and re-arms, which is cheaper than re-arming here. */
}

void weft__timers_init(weft__worker_t *w) {
  uv_timer_init(&w->loop, &w->timer);
  w->timer.data = w;
}

void weft__timers_destroy(weft__worker_t *w) {
  free(w->heap);
  w->heap = NULL;
  w->heap_len = w->heap_cap = 0;
}
