/*
 * weft_queue: asyncio.Queue, LifoQueue and PriorityQueue of pointers,
 * thread-safe across workers.
 *
 * Protocol: a store (a ring for FIFO, an array used as a stack for LIFO, a
 * binary heap for PRIORITY) and three FIFO wait queues (getters, putters,
 * joiners), all under one spinlock. Items are handed over directly: a put
 * that finds a waiting getter gives the item to it (claimed under the lock,
 * wait.c handshake) instead of storing it, and a get that frees a slot moves
 * the oldest waiting putter's item into the store. Getters only wait while
 * the store is empty and putters only while it is full, so the order of the
 * kind holds, and waiters are served in FIFO order.
 *
 * task_done/join: `unfinished` counts items put (stored or handed over) and
 * not yet marked done; task_done() decrements it, and the one that reaches 0
 * claims every joiner.
 *
 * Shutdown (Python 3.13): under the lock, set `shutdown`; with `immediate`,
 * drop every stored item and mark it done. Then claim every getter and every
 * putter with the SHUT payload: a getter waits only while the store is
 * empty, so it has nothing left to drain, and a putter's item is not queued.
 * Afterwards put fails, and get drains what is stored, then fails.
 *
 * Memory: the queue itself is caller memory (weft_queue_init(), the
 * opaque weft_queue_t) or library memory (weft_queue_new()); its store is
 * always library memory, grown under the lock and freed by
 * weft_queue_destroy().
 *
 * Cancellation safety: every waker passes by a waiter whose task has a
 * cancellation pending (waitq.h): put() gives the item to the next getter or
 * stores it, get() moves the next putter's item, and join/shutdown leave
 * such a waiter to unlink itself and return WEFT_ECANCELED. So once
 * cancel() has returned, a getter takes nothing and a putter puts nothing.
 * A waiter claimed before its cancel() returned gets the item (or has its
 * item taken) anyway: weft__wait() lets the event win and the request stays
 * pending for the next suspension point.
 */
#include "waitnote.h"
#include "alloc.h"
#include "list.h"
#include "record.h"
#include "report.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "timer.h"
#include "wait_int.h"
#include "waitq.h"

#include <stdlib.h>
#include <string.h>

/* One slot of the priority heap: the item and its insertion number, which
 * keeps items of equal priority in FIFO order. */
typedef struct pq_entry {
  void *item;
  uint64_t seq;
} pq_entry_t;

typedef struct queue {
  weft__spinlock_t lock;  /* guards everything below */
  weft_queue_kind_t kind; /* set at creation */
  weft_queue_cmp_fn cmp;  /* PRIORITY: item order; set at creation */
  void *cmp_arg;          /* its argument */
  void **buf;             /* FIFO ring (power-of-two cap) or LIFO stack */
  pq_entry_t *heap;       /* PRIORITY heap */
  size_t cap;             /* allocated slots of buf or heap */
  size_t head;            /* FIFO: index of the oldest item */
  size_t len;             /* stored items */
  size_t maxsize;         /* 0 = unbounded */
  uint64_t seq;           /* PRIORITY: next insertion number */
  size_t unfinished;      /* items put and not yet marked done */
  int shutdown;           /* 1 after weft_queue_shutdown() */
  weft__list_t getters;   /* weft__waiter_t waiting for an item */
  weft__list_t putters;   /* weft__waiter_t with an item waiting for room */
  weft__list_t joiners;   /* weft__waiter_t waiting for unfinished == 0 */
} queue_t;

_Static_assert(sizeof(queue_t) <= sizeof(weft_queue_t),
               "weft_queue_t too small");
_Static_assert(_Alignof(queue_t) <= _Alignof(weft_queue_t),
               "weft_queue_t under-aligned");

static queue_t *impl(const weft_queue_t *q) { return (queue_t *)(uintptr_t)q; }

/* Payload given to getters and putters woken by a shutdown. Its address is
 * private to this file, so it cannot be an item. */
static char shut_mark;
#define SHUT ((void *)&shut_mark)

void weft_queue_opts_init(weft_queue_opts_t *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof(*opts));
  opts->kind = WEFT_QUEUE_FIFO;
}

int weft_queue_init_ex(weft_queue_t *pq, const weft_queue_opts_t *opts) {
  if (!pq || !opts)
    return WEFT_EINVAL;
  if (opts->kind != WEFT_QUEUE_FIFO && opts->kind != WEFT_QUEUE_LIFO &&
      opts->kind != WEFT_QUEUE_PRIORITY)
    return WEFT_EINVAL;
  if (opts->kind == WEFT_QUEUE_PRIORITY && !opts->cmp)
    return WEFT_EINVAL;
  queue_t *q = impl(pq);
  memset(q, 0, sizeof(*q));
  atomic_init(&q->lock.locked, 0);
  q->kind = opts->kind;
  q->cmp = opts->cmp;
  q->cmp_arg = opts->cmp_arg;
  q->maxsize = opts->maxsize;
  weft__list_init(&q->getters);
  weft__list_init(&q->putters);
  weft__list_init(&q->joiners);
  return 0;
}

int weft_queue_init(weft_queue_t *q, size_t maxsize) {
  weft_queue_opts_t opts;
  weft_queue_opts_init(&opts);
  opts.maxsize = maxsize;
  return weft_queue_init_ex(q, &opts);
}

int weft_queue_destroy(weft_queue_t *pq) {
  queue_t *q = impl(pq);
  if (!q)
    return WEFT_EINVAL;
  weft__spin_lock(&q->lock);
  int busy = !weft__list_empty(&q->getters) ||
             !weft__list_empty(&q->putters) || !weft__list_empty(&q->joiners);
  weft__spin_unlock(&q->lock);
  if (busy)
    return WEFT_EBUSY;
  weft__free(q->buf);
  weft__free(q->heap);
  q->buf = NULL;
  q->heap = NULL;
  q->cap = q->len = q->head = 0;
  return 0;
}

int weft_queue_new_ex(const weft_queue_opts_t *opts, weft_queue_t **out) {
  if (!opts || !out)
    return WEFT_EINVAL;
  weft_queue_t *q = weft__malloc(sizeof(*q));
  if (!q)
    return WEFT_ENOMEM;
  int rc = weft_queue_init_ex(q, opts);
  if (rc != 0) {
    weft__free(q);
    return rc;
  }
  *out = q;
  return 0;
}

int weft_queue_new(size_t maxsize, weft_queue_t **out) {
  weft_queue_opts_t opts;
  weft_queue_opts_init(&opts);
  opts.maxsize = maxsize;
  return weft_queue_new_ex(&opts, out);
}

int weft_queue_free(weft_queue_t *q) {
  return q ? weft__free_destroyed(q, weft_queue_destroy(q)) : 0;
}

/* ---- the store (under the lock) ----------------------------------------- */

/* 1 if a before b in the heap: smaller by cmp, then older. */
static int pq_before(const queue_t *q, const pq_entry_t *a,
                     const pq_entry_t *b) {
  int c = q->cmp(a->item, b->item, q->cmp_arg);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Make room for one more item. WEFT_ENOMEM if the store cannot grow. */
static int store_reserve(queue_t *q) {
  if (q->len < q->cap)
    return 0;
  size_t cap = q->cap ? q->cap * 2 : 8;
  if (q->kind == WEFT_QUEUE_PRIORITY) {
    pq_entry_t *h = weft__realloc(q->heap, cap * sizeof(*h));
    if (!h)
      return WEFT_ENOMEM;
    q->heap = h;
  } else if (q->kind == WEFT_QUEUE_LIFO) {
    void **b = weft__realloc(q->buf, cap * sizeof(*b));
    if (!b)
      return WEFT_ENOMEM;
    q->buf = b;
  } else {
    void **b = weft__malloc(cap * sizeof(*b));
    if (!b)
      return WEFT_ENOMEM;
    for (size_t i = 0; i < q->len; i++)
      b[i] = q->buf[(q->head + i) & (q->cap - 1)];
    weft__free(q->buf);
    q->buf = b;
    q->head = 0;
  }
  q->cap = cap;
  return 0;
}

/* Store item; WEFT_ENOMEM if the store cannot grow. Cannot fail right after
 * a store_pop(), which leaves a free slot. */
static int store_push(queue_t *q, void *item) {
  int rc = store_reserve(q);
  if (rc != 0)
    return rc;
  if (q->kind == WEFT_QUEUE_FIFO) {
    q->buf[(q->head + q->len) & (q->cap - 1)] = item;
  } else if (q->kind == WEFT_QUEUE_LIFO) {
    q->buf[q->len] = item;
  } else {
    pq_entry_t e = {item, q->seq++};
    size_t i = q->len;
    while (i > 0) {
      size_t parent = (i - 1) / 2;
      if (!pq_before(q, &e, &q->heap[parent]))
        break;
      q->heap[i] = q->heap[parent];
      i = parent;
    }
    q->heap[i] = e;
  }
  q->len++;
  return 0;
}

/* Remove the next item of the kind's order; the store is not empty. */
static void *store_pop(queue_t *q) {
  void *item;
  q->len--;
  if (q->kind == WEFT_QUEUE_FIFO) {
    item = q->buf[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
  } else if (q->kind == WEFT_QUEUE_LIFO) {
    item = q->buf[q->len];
  } else {
    item = q->heap[0].item;
    pq_entry_t last = q->heap[q->len];
    size_t i = 0, n = q->len;
    for (;;) {
      size_t c = 2 * i + 1;
      if (c >= n)
        break;
      if (c + 1 < n && pq_before(q, &q->heap[c + 1], &q->heap[c]))
        c++;
      if (!pq_before(q, &q->heap[c], &last))
        break;
      q->heap[i] = q->heap[c];
      i = c;
    }
    if (n > 0)
      q->heap[i] = last;
  }
  return item;
}

/* Drop every stored item (immediate shutdown). */
static void store_clear(queue_t *q) {
  q->len = 0;
  q->head = 0;
}

/* ---- operations (under the lock) ----------------------------------------- */

/* Complete a waiter claimed by put_locked/get_locked, after the unlock. */
static void complete(weft__waiter_t *w) {
  if (w)
    weft__waiter_complete(w, w->task);
}

/* Put without waiting. Returns 0, WEFT_EAGAIN (full), WEFT_EQUEUE_SHUTDOWN or
 * WEFT_ENOMEM. On 0, *wake may name a claimed getter for the
 * caller to complete after unlock. */
static int put_locked(queue_t *q, void *item, weft__waiter_t **wake) {
  if (q->shutdown)
    return WEFT_EQUEUE_SHUTDOWN;
  weft__waiter_t *g = weft__waitq_first(&q->getters);
  if (g) {
    g->item = item;
    weft__waiter_claim(g);
    *wake = g;
  } else {
    if (q->maxsize && q->len >= q->maxsize)
      return WEFT_EAGAIN;
    int rc = store_push(q, item);
    if (rc != 0)
      return rc;
  }
  q->unfinished++;
  return 0;
}

/* Get without waiting. Returns 0, WEFT_EAGAIN (empty) or WEFT_EQUEUE_SHUTDOWN
 * (empty and shut down); a putter whose item moved into the freed slot is
 * named in *wake. */
static int get_locked(queue_t *q, void **item, weft__waiter_t **wake) {
  if (q->len == 0)
    return q->shutdown ? WEFT_EQUEUE_SHUTDOWN : WEFT_EAGAIN;
  *item = store_pop(q);
  weft__waiter_t *p = weft__waitq_first(&q->putters);
  if (p) {
    store_push(q, p->item); /* cannot fail: a slot was just freed */
    q->unfinished++;
    p->item = NULL;
    weft__waiter_claim(p);
    *wake = p;
  }
  return 0;
}

/* The four puts and gets: put_locked (put: *slot is the item) or
 * get_locked (the item lands in *slot) under the lock, and, if that would
 * block and `block` (a task's put or get), a waiter on the putters or
 * getters until a partner or the shutdown completes it. */
static int queue_op(queue_t *q, int put, void **slot, int block) {
  weft_task_t *self = NULL;
  if (block && !(self = weft__task_current()))
    return weft__report_misuse(NULL, put ? "weft_queue_put" : "weft_queue_get",
                               WEFT_ENOTTASK, "called outside a task");
  weft__waiter_t *wake = NULL;
  weft__spin_lock(&q->lock);
  int rc = put ? put_locked(q, *slot, &wake) : get_locked(q, slot, &wake);
  if (rc != WEFT_EAGAIN || !block) {
    weft__spin_unlock(&q->lock);
    complete(wake);
    if (rc == 0 && block)
      weft__coop_tick();
    return rc;
  }
  weft__waiter_t wt;
  weft__waiter_prepare(&wt, self, put ? *slot : NULL);
  weft__list_push_back(put ? &q->putters : &q->getters, &wt.link);
  weft__spin_unlock(&q->lock);
  weft__wait_note(self, put ? WEFT_WAIT_QUEUE_PUT : WEFT_WAIT_QUEUE_GET, q);
  rc = weft__wait(&wt, &q->lock, WEFT__NO_DEADLINE, 0);
  if (rc != 0)
    return rc;
  if (wt.item == SHUT)
    return WEFT_EQUEUE_SHUTDOWN;
  if (!put)
    *slot = wt.item;
  return 0;
}

/* The four entry points: check the arguments, then queue_op. */
static int queue_call(weft_queue_t *pq, int put, void **slot, int wait) {
  queue_t *q = impl(pq);
  if (!q || !slot)
    return WEFT_EINVAL;
  return queue_op(q, put, slot, wait);
}

int weft_queue_try_put(weft_queue_t *q, void *item) {
  return queue_call(q, 1, &item, 0);
}

int weft_queue_try_get(weft_queue_t *q, void **item) {
  return queue_call(q, 0, item, 0);
}

int weft_queue_put(weft_queue_t *q, void *item) {
  return queue_call(q, 1, &item, 1);
}

int weft_queue_get(weft_queue_t *q, void **item) {
  return queue_call(q, 0, item, 1);
}

/* q's item count (unfinished 0) or unfinished count (1), read under its
 * lock, as an int (INT32_MAX at most); WEFT_EINVAL if q is NULL. */
static int count_of(const weft_queue_t *pq, int unfinished) {
  queue_t *q = impl(pq);
  if (!q)
    return WEFT_EINVAL;
  weft__spin_lock(&q->lock);
  size_t n = unfinished ? q->unfinished : q->len;
  weft__spin_unlock(&q->lock);
  return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

int weft_queue_size(const weft_queue_t *q) { return count_of(q, 0); }

int weft_queue_task_done(weft_queue_t *pq) {
  queue_t *q = impl(pq);
  if (!q)
    return WEFT_EINVAL;
  weft__list_t claimed;
  weft__list_init(&claimed);
  weft__spin_lock(&q->lock);
  if (q->unfinished == 0) {
    weft__spin_unlock(&q->lock);
    return WEFT_ESTATE; /* more task_done() calls than items put */
  }
  if (--q->unfinished == 0)
    weft__waitq_claim_n(&q->joiners, &claimed, SIZE_MAX, NULL);
  weft__spin_unlock(&q->lock);
  weft__waitq_complete_all(&claimed);
  return 0;
}

int weft_queue_join(weft_queue_t *pq) {
  queue_t *q = impl(pq);
  if (!q)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
  weft__spin_lock(&q->lock);
  if (q->unfinished == 0) {
    weft__spin_unlock(&q->lock);
    weft__coop_tick();
    return 0;
  }
  weft__waiter_t wt;
  weft__waiter_prepare(&wt, self, NULL);
  weft__list_push_back(&q->joiners, &wt.link);
  weft__spin_unlock(&q->lock);
  weft__wait_note(self, WEFT_WAIT_QUEUE_JOIN, q);
  return weft__wait(&wt, &q->lock, WEFT__NO_DEADLINE, 0);
}

int weft_queue_unfinished(const weft_queue_t *q) { return count_of(q, 1); }

int weft_queue_shutdown(weft_queue_t *pq, int immediate) {
  queue_t *q = impl(pq);
  if (!q)
    return WEFT_EINVAL;
  weft__list_t claimed;
  weft__list_init(&claimed);
  weft__spin_lock(&q->lock);
  q->shutdown = 1;
  if (immediate) {
    q->unfinished -= q->len < q->unfinished ? q->len : q->unfinished;
    store_clear(q);
    if (q->unfinished == 0)
      weft__waitq_claim_n(&q->joiners, &claimed, SIZE_MAX, NULL);
  }
  weft__waitq_claim_n(&q->getters, &claimed, SIZE_MAX, SHUT);
  weft__waitq_claim_n(&q->putters, &claimed, SIZE_MAX, SHUT);
  weft__spin_unlock(&q->lock);
  weft__waitq_complete_all(&claimed);
  return 0;
}

int weft_queue_is_shutdown(const weft_queue_t *pq) {
  queue_t *q = impl(pq);
  if (!q)
    return WEFT_EINVAL;
  queue_t *m = q;
  weft__spin_lock(&m->lock);
  int s = m->shutdown;
  weft__spin_unlock(&m->lock);
  return s;
}
