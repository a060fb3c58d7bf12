/*
 * Idle coordinator; the protocol is at the top of idle.h.
 */
#include "alloc.h"
#include "sched/idle.h"

#include <stdlib.h>

int weft__idle_init(weft__idle_t *idle, unsigned nworkers) {
  idle->nworkers = nworkers;
  idle->nsleepers = 0;
  idle->sleepers = weft__calloc(nworkers, sizeof(*idle->sleepers));
  idle->listed = weft__calloc(nworkers, sizeof(*idle->listed));
  if (!idle->sleepers || !idle->listed) {
    weft__free(idle->sleepers);
    weft__free(idle->listed);
    return -1;
  }
  atomic_init(&idle->state, nworkers * WEFT__IDLE_UNPARKED_ONE);
  atomic_init(&idle->watching, 0);
  pthread_mutex_init(&idle->mu, NULL);
  return 0;
}

void weft__idle_destroy(weft__idle_t *idle) {
  pthread_mutex_destroy(&idle->mu);
  weft__free(idle->sleepers);
  weft__free(idle->listed);
}

int weft__idle_try_search(weft__idle_t *idle) {
  /* seq_cst: part of the total order of idle transitions (step 4). */
  unsigned s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
  if (2 * weft__idle_searching(s) >= idle->nworkers)
    return 0;
  atomic_fetch_add_explicit(&idle->state, 1, memory_order_seq_cst);
  return 1;
}

int weft__idle_end_search(weft__idle_t *idle) {
  /* seq_cst: the last searcher's re-check must follow this in the total
   * order (step 3, 4). */
  unsigned prev = atomic_fetch_sub_explicit(&idle->state, 1,
                                            memory_order_seq_cst);
  return weft__idle_searching(prev) == 1;
}

int weft__idle_park(weft__idle_t *idle, unsigned index, int was_searching) {
  pthread_mutex_lock(&idle->mu);
  unsigned dec = WEFT__IDLE_UNPARKED_ONE + (was_searching ? 1u : 0u);
  /* seq_cst: this transition and the caller's following re-check of the
   * queues are ordered against pushers' checks (step 4). */
  unsigned prev = atomic_fetch_sub_explicit(&idle->state, dec,
                                            memory_order_seq_cst);
  idle->sleepers[idle->nsleepers++] = index;
  idle->listed[index] = 1;
  pthread_mutex_unlock(&idle->mu);
  return was_searching && weft__idle_searching(prev) == 1;
}

static void remove_sleeper(weft__idle_t *idle, unsigned index) {
  for (unsigned i = 0; i < idle->nsleepers; i++) {
    if (idle->sleepers[i] == index) {
      idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
      break;
    }
  }
  idle->listed[index] = 0;
}

int weft__idle_unpark_self(weft__idle_t *idle, unsigned index) {
  int notified;
  pthread_mutex_lock(&idle->mu);
  if (idle->listed[index]) {
    remove_sleeper(idle, index);
    /* seq_cst: as in weft__idle_park. */
    atomic_fetch_add_explicit(&idle->state, WEFT__IDLE_UNPARKED_ONE,
                              memory_order_seq_cst);
    notified = 0;
  } else {
    notified = 1;
  }
  pthread_mutex_unlock(&idle->mu);
  return notified;
}

int weft__idle_try_watch(weft__idle_t *idle) {
  /* seq_cst: after the caller's seq_cst park RMW, so that it and a slot
   * filler's reads are in one total order (step 7). */
  unsigned s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
  if (weft__idle_unparked(s) == 0)
    return 0; /* everybody is parked: no slot holds a task */
  unsigned expected = 0;
  /* seq_cst: the filler reads `watching` in the same total order. */
  return atomic_compare_exchange_strong_explicit(
      &idle->watching, &expected, 1, memory_order_seq_cst,
      memory_order_seq_cst);
}

void weft__idle_unwatch(weft__idle_t *idle) {
  /* seq_cst: a filler that reads 0 after this looks at `state` and wakes a
   * parked worker if nobody searches (step 7). */
  atomic_store_explicit(&idle->watching, 0, memory_order_seq_cst);
}

int weft__idle_pick_to_notify(weft__idle_t *idle, int force) {
  /* seq_cst: a cheap test before the lock; re-checked under it. An ordinary
   * notify follows a seq_cst store of the pusher's ring tail
   * (weft__runq_try_push_owner_sc), so this load and that store are in the
   * total order with the last searcher's park RMW and its seq_cst re-check
   * of the rings: one side sees the other (step 4). A forced notify (work
   * pushed from outside the runtime, through the inject queue's mutex, not
   * a seq_cst store) uses an RMW instead, so that the push before it is
   * ordered before this read, as a fence would. */
  unsigned s = force ? atomic_fetch_add_explicit(&idle->state, 0,
                                                 memory_order_seq_cst)
                     : atomic_load_explicit(&idle->state, memory_order_seq_cst);
  if ((!force && weft__idle_searching(s) != 0) ||
      weft__idle_unparked(s) >= idle->nworkers)
    return -1;
  int picked = -1;
  pthread_mutex_lock(&idle->mu);
  s = atomic_load_explicit(&idle->state, memory_order_seq_cst);
  if ((force || weft__idle_searching(s) == 0) && idle->nsleepers > 0) {
    unsigned index = idle->sleepers[--idle->nsleepers];
    idle->listed[index] = 0;
    /* seq_cst: the woken worker is counted before it runs (step 2). */
    atomic_fetch_add_explicit(&idle->state, WEFT__IDLE_UNPARKED_ONE + 1,
                              memory_order_seq_cst);
    picked = (int)index;
  }
  pthread_mutex_unlock(&idle->mu);
  return picked;
}

int weft__idle_claim(weft__idle_t *idle, unsigned index) {
  int claimed = 0;
  pthread_mutex_lock(&idle->mu);
  if (idle->listed[index]) {
    remove_sleeper(idle, index);
    /* seq_cst: as in weft__idle_park. The woken worker finds itself off the
     * stack and believes a notifier woke it, so it is counted as searching
     * too (step 6), and stops searching like any searcher. */
    atomic_fetch_add_explicit(&idle->state, WEFT__IDLE_UNPARKED_ONE + 1,
                              memory_order_seq_cst);
    claimed = 1;
  }
  pthread_mutex_unlock(&idle->mu);
  return claimed;
}
