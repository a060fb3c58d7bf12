/*
 * weft_queue: asyncio.Queue of pointers, thread-safe across workers.
 *
 * Protocol: a ring buffer and two FIFO wait queues (getters, putters), all
 * under one spinlock. Items are handed over directly: a put that finds a
 * waiting getter gives the item to it (claimed under the lock, wait.c
 * handshake) instead of queueing it, and a get that frees a slot moves the
 * oldest waiting putter's item into the queue. Getters only wait while the
 * queue is empty and putters only while it is full, so FIFO order holds.
 *
 * Cancellation safety: a waiter that is cancelled while a waker claims it
 * gets the item (or has its item taken) anyway: weft__wait() lets the event
 * win and re-posts the cancellation for the next suspension point. A waiter
 * cancelled before any claim unlinks itself, so nothing is handed to it.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

struct weft_queue {
  weft__spinlock_t lock; /* guards everything below */
  void **buf;            /* ring of items */
  size_t cap;            /* allocated slots (power of two) */
  size_t head;           /* index of the oldest item */
  size_t len;            /* queued items */
  size_t maxsize;        /* 0 = unbounded */
  weft__list_t getters;  /* weft__waiter_t waiting for an item */
  weft__list_t putters;  /* weft__waiter_t with an item waiting for room */
};

int weft_queue_new(size_t maxsize, weft_queue_t **out) {
  if (!out)
    return WEFT_EINVAL;
  weft_queue_t *q = calloc(1, sizeof(*q));
  if (!q)
    return WEFT_ENOMEM;
  q->maxsize = maxsize;
  weft__list_init(&q->getters);
  weft__list_init(&q->putters);
  *out = q;
  return 0;
}

int weft_queue_free(weft_queue_t *q) {
  if (!q)
    return 0;
  weft__spin_lock(&q->lock);
  int busy = !weft__list_empty(&q->getters) || !weft__list_empty(&q->putters);
  weft__spin_unlock(&q->lock);
  if (busy)
    return WEFT_EBUSY;
  free(q->buf);
  free(q);
  return 0;
}

/* Append under the lock; WEFT_ENOMEM if the ring cannot grow. */
static int ring_push(weft_queue_t *q, void *item) {
  if (q->len == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 8;
    void **b = malloc(cap * sizeof(*b));
    if (!b)
      return WEFT_ENOMEM;
    for (size_t i = 0; i < q->len; i++)
      b[i] = q->buf[(q->head + i) & (q->cap - 1)];
    free(q->buf);
    q->buf = b;
    q->cap = cap;
    q->head = 0;
  }
  q->buf[(q->head + q->len) & (q->cap - 1)] = item;
  q->len++;
  return 0;
}

static void *ring_pop(weft_queue_t *q) {
  void *item = q->buf[q->head];
  q->head = (q->head + 1) & (q->cap - 1);
  q->len--;
  return item;
}

static weft__waiter_t *first_waiter(weft__list_t *l) {
  return weft__list_empty(l) ? NULL
                             : weft__container_of(l->next, weft__waiter_t, link);
}

/* Put without waiting. Returns 0, WEFT_EAGAIN (full) or WEFT_ENOMEM. On 0,
 * *wake may name a claimed getter the caller must complete after unlock. */
static int put_locked(weft_queue_t *q, void *item, weft__waiter_t **wake) {
  weft__waiter_t *g = first_waiter(&q->getters);
  if (g) {
    g->item = item;
    weft__waiter_claim(g);
    *wake = g;
    return 0;
  }
  if (q->maxsize && q->len >= q->maxsize)
    return WEFT_EAGAIN;
  return ring_push(q, item);
}

/* Get without waiting. Returns 0 or WEFT_EAGAIN (empty); *wake as above for
 * a putter whose item moved into the freed slot. */
static int get_locked(weft_queue_t *q, void **item, weft__waiter_t **wake) {
  if (q->len == 0)
    return WEFT_EAGAIN;
  *item = ring_pop(q);
  weft__waiter_t *p = first_waiter(&q->putters);
  if (p) {
    q->buf[(q->head + q->len) & (q->cap - 1)] = p->item; /* slot just freed */
    q->len++;
    weft__waiter_claim(p);
    *wake = p;
  }
  return 0;
}

static void complete(weft__waiter_t *w) {
  if (w)
    weft__waiter_complete(w, w->task);
}

int weft_queue_try_put(weft_queue_t *q, void *item) {
  if (!q)
    return WEFT_EINVAL;
  weft__waiter_t *wake = NULL;
  weft__spin_lock(&q->lock);
  int rc = put_locked(q, item, &wake);
  weft__spin_unlock(&q->lock);
  complete(wake);
  return rc;
}

int weft_queue_try_get(weft_queue_t *q, void **item) {
  if (!q || !item)
    return WEFT_EINVAL;
  weft__waiter_t *wake = NULL;
  weft__spin_lock(&q->lock);
  int rc = get_locked(q, item, &wake);
  weft__spin_unlock(&q->lock);
  complete(wake);
  return rc;
}

int weft_queue_put(weft_queue_t *q, void *item) {
  if (!q)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
  weft__waiter_t *wake = NULL;
  weft__spin_lock(&q->lock);
  int rc = put_locked(q, item, &wake);
  if (rc != WEFT_EAGAIN) {
    weft__spin_unlock(&q->lock);
    complete(wake);
    if (rc == 0)
      weft__coop_tick();
    return rc;
  }
  weft__waiter_t wt;
  wt.task = self;
  wt.item = item;
  atomic_init(&wt.fired, 0);
  weft__list_push_back(&q->putters, &wt.link);
  weft__spin_unlock(&q->lock);
  return weft__wait(&wt, &q->lock, WEFT__NO_DEADLINE, 0);
}

int weft_queue_get(weft_queue_t *q, void **item) {
  if (!q || !item)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
  weft__waiter_t *wake = NULL;
  weft__spin_lock(&q->lock);
  int rc = get_locked(q, item, &wake);
  if (rc == 0) {
    weft__spin_unlock(&q->lock);
    complete(wake);
    weft__coop_tick();
    return 0;
  }
  weft__waiter_t wt;
  wt.task = self;
  wt.item = NULL;
  atomic_init(&wt.fired, 0);
  weft__list_push_back(&q->getters, &wt.link);
  weft__spin_unlock(&q->lock);
  rc = weft__wait(&wt, &q->lock, WEFT__NO_DEADLINE, 0);
  if (rc == 0)
    *item = wt.item;
  return rc;
}

int weft_queue_size(const weft_queue_t *q) {
  if (!q)
    return WEFT_EINVAL;
  weft_queue_t *m = (weft_queue_t *)q;
  weft__spin_lock(&m->lock);
  size_t n = m->len;
  weft__spin_unlock(&m->lock);
  return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}
