/*
 * Idle coordinator; the protocol is at the top of idle.h.
 */
#include "sched/idle.h"

#include <stdlib.h>

int weft__idle_init(weft__idle_t *idle, unsigned nworkers) {
  idle->nworkers = nworkers;
  idle->nsleepers = 0;
  idle->sleepers = calloc(nworkers, sizeof(*idle->sleepers));
  idle->listed = calloc(nworkers, sizeof(*idle->listed));
  if (!idle->sleepers || !idle->listed) {
    free(idle->sleepers);
    free(idle->listed);
    return -1;
  }
  atomic_init(&idle->state, nworkers * WEFT__IDLE_UNPARKED_ONE);
  pthread_mutex_init(&idle->mu, NULL);
  return 0;
}

void weft__idle_destroy(weft__idle_t *idle) {
  pthread_mutex_destroy(&idle->mu);
  free(idle->sleepers);
  free(idle->listed);
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

int weft__idle_pick_to_notify(weft__idle_t *idle, int force) {
  /* seq_cst: a cheap test before the lock; re-checked under it. A forced
   * notify (work pushed from outside the runtime) uses an RMW so that the
   * push before it is ordered before this read, as a fence would. */
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
