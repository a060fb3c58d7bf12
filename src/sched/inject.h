/*
 * The global inject queue: tasks that overflowed a local ring and tasks
 * scheduled from threads that are not workers of the runtime.
 *
 * Protocol: a FIFO linked through weft_task.next under a pthread mutex; `len`
 * is written under the mutex and read without it as an emptiness hint, so
 * workers check the queue every 61 ticks without taking the lock when it is
 * empty. A stale hint only delays a task until the next check, never loses
 * it: pushers wake a parked worker after pushing (idle.c), and the last
 * worker to park re-checks under the lock.
 */
#ifndef WEFT_INJECT_H
#define WEFT_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct weft_task;

typedef struct weft__inject {
  pthread_mutex_t mu;      /* guards head, tail and the links */
  struct weft_task *head;  /* oldest task */
  struct weft_task *tail;  /* newest task */
  atomic_size_t len;       /* queued tasks; written under mu */
} weft__inject_t;

int weft__inject_init(weft__inject_t *q);
void weft__inject_destroy(weft__inject_t *q);

/* Append the chain first..last (n tasks, linked by next, last->next NULL). */
void weft__inject_push_batch(weft__inject_t *q, struct weft_task *first,
                             struct weft_task *last, size_t n);

static inline int weft__inject_is_empty(weft__inject_t *q) {
  /* relaxed: a hint; see the protocol above. */
  return atomic_load_explicit(&q->len, memory_order_relaxed) == 0;
}

/* Remove up to max tasks; returns the chain (oldest first) and the count in
 * *n. */
struct weft_task *weft__inject_pop_batch(weft__inject_t *q, size_t max,
                                         size_t *n);

#endif /* WEFT_INJECT_H */
