/*
 * Global inject queue; the protocol is at the top of inject.h.
 */
#include "sched/inject.h"

#include "record.h"

int weft__inject_init(weft__inject_t *q) {
  q->head = q->tail = NULL;
  atomic_init(&q->len, 0);
  return -pthread_mutex_init(&q->mu, NULL);
}

void weft__inject_destroy(weft__inject_t *q) { pthread_mutex_destroy(&q->mu); }

void weft__inject_push_batch(weft__inject_t *q, struct weft_task *first,
                             struct weft_task *last, size_t n) {
  last->next = NULL;
  pthread_mutex_lock(&q->mu);
  if (q->tail)
    q->tail->next = first;
  else
    q->head = first;
  q->tail = last;
  /* relaxed: written under mu; readers outside it only take a hint. */
  atomic_store_explicit(&q->len,
                        atomic_load_explicit(&q->len, memory_order_relaxed) + n,
                        memory_order_relaxed);
  pthread_mutex_unlock(&q->mu);
}

struct weft_task *weft__inject_pop_batch(weft__inject_t *q, size_t max,
                                         size_t *n) {
  *n = 0;
  if (weft__inject_is_empty(q) || max == 0)
    return NULL;
  pthread_mutex_lock(&q->mu);
  struct weft_task *first = q->head, *last = NULL, *cur = first;
  size_t k = 0;
  while (cur && k < max) {
    last = cur;
    cur = cur->next;
    k++;
  }
  if (k) {
    q->head = cur;
    if (!cur)
      q->tail = NULL;
    last->next = NULL;
    /* relaxed: written under mu. */
    atomic_store_explicit(
        &q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - k,
        memory_order_relaxed);
  }
  pthread_mutex_unlock(&q->mu);
  *n = k;
  return k ? first : NULL;
}
