/*
 * weft queue: asyncio.Queue, LifoQueue and PriorityQueue of pointers, safe
 * across all workers.
 *
 * FIFO order by default (LIFO or priority order with weft_queue_init_ex()
 * or weft_queue_new_ex());
 * maxsize 0 means unbounded. put() suspends while the queue is full, get()
 * while it is empty; waiters are served in FIFO order whatever the kind.
 * Items are handed over directly to a waiting getter, and no item is ever
 * lost to a cancellation: once weft_task_cancel(t) has returned (or a
 * timeout scope of t has expired), a getter t takes nothing (a later put
 * gives the item to the next getter or queues it) and returns
 * WEFT_ECANCELED; only a getter handed an item before the cancellation
 * reached it returns 0 with the item, and the cancellation is delivered at
 * its next suspension point. Putters alike: a putter cancelled before room
 * appeared puts nothing. Items are opaque pointers; NULL is a valid item.
 *
 * task_done()/join() count unfinished items as asyncio does, and shutdown()
 * is Python 3.13's Queue.shutdown(): afterwards every put fails with
 * WEFT_EQUEUE_SHUTDOWN (asyncio.QueueShutDown), and get fails with it once the
 * queue is empty (at once after an immediate shutdown, which drops the
 * queued items).
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include "common.h"

WEFT_BEGIN_DECLS

/* A queue. Opaque: use the functions below. Like the objects of
 * weft/sync.h it comes in two forms: weft_queue_init()/weft_queue_destroy()
 * on caller memory (a weft_queue_t embedded in another struct, on a stack
 * or static) and weft_queue_new()/weft_queue_free() on library memory. It
 * has no static initialiser: its store is library memory that
 * weft_queue_destroy() releases. Must not be moved or copied while in
 * use. */
typedef struct weft_queue {
  union {
    unsigned char bytes_[192];
    void *align_;
  } opaque_;
} weft_queue_t;

/* The order in which a queue gives out its items. */
typedef enum weft_queue_kind {
  WEFT_QUEUE_FIFO = 0,    /* asyncio.Queue: oldest first */
  WEFT_QUEUE_LIFO = 1,    /* asyncio.LifoQueue: newest first */
  WEFT_QUEUE_PRIORITY = 2 /* asyncio.PriorityQueue: smallest first */
} weft_queue_kind_t;

/* Order of a priority queue: negative if item a comes before item b,
 * positive if after, 0 if equal (equal items come out in FIFO order, unlike
 * heapq). Called with the queue's internal spinlock held, on whichever
 * thread puts or gets: it must be quick, must not suspend and must not call
 * into the queue. */
typedef int (*weft_queue_cmp_fn)(const void *a, const void *b, void *arg);

/* Queue options. Initialise with weft_queue_opts_init(). */
typedef struct weft_queue_opts {
  weft_queue_kind_t kind; /* WEFT_QUEUE_FIFO (the default), _LIFO, _PRIORITY */
  size_t maxsize;         /* 0 (the default) = unbounded */
  weft_queue_cmp_fn cmp;  /* required for WEFT_QUEUE_PRIORITY, else unused */
  void *cmp_arg;          /* passed to cmp */
} weft_queue_opts_t;

/* Fill opts with the defaults (FIFO, unbounded). NULL is ignored. Never
 * fails; callable from anywhere. */
WEFT_EXTERN void weft_queue_opts_init(weft_queue_opts_t *opts);

/* asyncio.Queue(maxsize): initialise *q as an empty FIFO queue (maxsize 0
 * = unbounded). WEFT_EINVAL if q is NULL. Callable from anywhere (inside or
 * outside a task). */
WEFT_EXTERN int weft_queue_init(weft_queue_t *q, size_t maxsize);

/* asyncio.Queue / LifoQueue / PriorityQueue(maxsize): weft_queue_init() as
 * opts says. WEFT_EINVAL if q or opts is NULL, the kind is unknown, or a
 * priority queue has no cmp. Callable from anywhere. */
WEFT_EXTERN int weft_queue_init_ex(weft_queue_t *q,
                                   const weft_queue_opts_t *opts);

/* Release what q holds (its store). Items still queued are dropped (the
 * queue does not own them). WEFT_EBUSY (and nothing is released) if tasks
 * are waiting on q (in put, get or join), WEFT_EINVAL if q is NULL.
 * Callable from any thread. */
WEFT_EXTERN int weft_queue_destroy(weft_queue_t *q);

/* weft_queue_init() on library memory, stored in *out. WEFT_EINVAL if out
 * is NULL, WEFT_ENOMEM. Callable from anywhere. */
WEFT_EXTERN int weft_queue_new(size_t maxsize, weft_queue_t **out);

/* weft_queue_init_ex() on library memory, stored in *out. WEFT_EINVAL if
 * opts or out is NULL or as weft_queue_init_ex(); WEFT_ENOMEM. Callable
 * from anywhere. */
WEFT_EXTERN int weft_queue_new_ex(const weft_queue_opts_t *opts,
                                  weft_queue_t **out);

/* weft_queue_destroy() and free a queue from weft_queue_new() or
 * weft_queue_new_ex(). WEFT_EBUSY (nothing freed) as weft_queue_destroy();
 * NULL is a no-op returning 0. Callable from any thread. */
WEFT_EXTERN int weft_queue_free(weft_queue_t *q);

/* await q.put(item): append item, waiting while q is full. Returns 0,
 * WEFT_ECANCELED (the item was not queued), WEFT_EQUEUE_SHUTDOWN (q is shut
 * down, or was while this task waited: the item was not queued), WEFT_EINVAL (q
 * NULL) or WEFT_ENOTTASK (outside a task; use weft_queue_try_put). Suspends
 * while full. */
WEFT_EXTERN int weft_queue_put(weft_queue_t *q, void *item);

/* await q.get(): remove the next item (oldest, newest or smallest, by kind)
 * into *item, waiting while q is empty. Returns 0, WEFT_ECANCELED (nothing
 * was removed), WEFT_EQUEUE_SHUTDOWN (q is shut down and empty), WEFT_EINVAL (q
 * or item NULL) or WEFT_ENOTTASK. Suspends while empty. */
WEFT_EXTERN int weft_queue_get(weft_queue_t *q, void **item);

/* q.put_nowait(item): 0, or WEFT_EAGAIN if q is full (asyncio.QueueFull),
 * WEFT_EQUEUE_SHUTDOWN if q is shut down, WEFT_ENOMEM if an unbounded queue
 * cannot grow, WEFT_EINVAL if q is NULL. Never suspends; callable from any
 * thread. */
WEFT_EXTERN int weft_queue_try_put(weft_queue_t *q, void *item);

/* q.get_nowait(): 0, or WEFT_EAGAIN if q is empty (asyncio.QueueEmpty),
 * WEFT_EQUEUE_SHUTDOWN if q is empty and shut down, WEFT_EINVAL if q or item is
 * NULL. Never suspends; callable from any thread. */
WEFT_EXTERN int weft_queue_try_get(weft_queue_t *q, void **item);

/* q.qsize(): the number of queued items (saturated at INT32_MAX), or
 * WEFT_EINVAL if q is NULL. Callable from any thread. */
WEFT_EXTERN int weft_queue_size(const weft_queue_t *q);

/* q.task_done(): mark one item taken from q as processed. Every successful
 * put counts one unfinished item. Returns 0, WEFT_ESTATE if no item is
 * unfinished (more items marked done than were put: asyncio's ValueError),
 * or WEFT_EINVAL if q is NULL. When the
 * count reaches 0, every task in weft_queue_join() is woken. Never suspends;
 * callable from any thread. */
WEFT_EXTERN int weft_queue_task_done(weft_queue_t *q);

/* await q.join(): wait until every item put on q has been marked done
 * (returns at once if none is unfinished). Returns 0, WEFT_ECANCELED,
 * WEFT_EINVAL (q NULL) or WEFT_ENOTTASK. Suspends while items are
 * unfinished. */
WEFT_EXTERN int weft_queue_join(weft_queue_t *q);

/* The number of unfinished items (put and not yet marked done), saturated
 * at INT32_MAX, or WEFT_EINVAL. Callable from any thread. */
WEFT_EXTERN int weft_queue_unfinished(const weft_queue_t *q);

/* q.shutdown(immediate) (Python 3.13): from now on weft_queue_put() and
 * weft_queue_try_put() fail with WEFT_EQUEUE_SHUTDOWN, and so do get and
 * try_get once q is empty. Tasks blocked in put are woken with
 * WEFT_EQUEUE_SHUTDOWN (their items are not queued), and so are tasks blocked
 * in get. If immediate is nonzero, the queued items are dropped at once (not
 * freed: the queue does not own them) and counted as done, which may wake tasks
 * in weft_queue_join(). Calling it again is harmless (an immediate call still
 * drops what is queued). Returns 0 or WEFT_EINVAL. Never suspends; callable
 * from any thread. */
WEFT_EXTERN int weft_queue_shutdown(weft_queue_t *q, int immediate);

/* 1 if q was shut down, 0 if not, WEFT_EINVAL if q is NULL. Any thread. */
WEFT_EXTERN int weft_queue_is_shutdown(const weft_queue_t *q);

WEFT_END_DECLS

#endif /* WEFT_QUEUE_H */
