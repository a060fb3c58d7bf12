/*
 * weft queue: asyncio.Queue of pointers, safe across all workers.
 *
 * FIFO order; maxsize 0 means unbounded. put() suspends while the queue is
 * full, get() while it is empty; waiters are served in FIFO order. Items are
 * handed over directly to a waiting getter, and no item is ever lost to a
 * cancellation: a getter cancelled before an item reached it takes nothing
 * (the item goes to the next getter or stays queued); a getter cancelled at
 * the very moment an item was handed to it returns 0 with the item, and the
 * cancellation is delivered at its next suspension point. Putters alike.
 * Items are opaque pointers; NULL is a valid item.
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include "common.h"

WEFT_BEGIN_DECLS

typedef struct weft_queue weft_queue_t;

/* asyncio.Queue(maxsize): allocate a queue in *out. WEFT_EINVAL if out is
 * NULL, WEFT_ENOMEM. Callable from anywhere (inside or outside a task). */
WEFT_EXTERN int weft_queue_new(size_t maxsize, weft_queue_t **out);

/* Free q. Items still queued are dropped (the queue does not own them).
 * WEFT_EBUSY (and nothing is freed) if tasks are waiting on q; NULL is a
 * no-op returning 0. Callable from any thread. */
WEFT_EXTERN int weft_queue_free(weft_queue_t *q);

/* await q.put(item): append item, waiting while q is full. Returns 0,
 * WEFT_ECANCELED (the item was not queued), WEFT_EINVAL (q NULL) or
 * WEFT_ENOTTASK (outside a task; use weft_queue_try_put). Suspends while
 * full. */
WEFT_EXTERN int weft_queue_put(weft_queue_t *q, void *item);

/* await q.get(): remove the oldest item into *item, waiting while q is empty.
 * Returns 0, WEFT_ECANCELED (nothing was removed), WEFT_EINVAL (q or item
 * NULL) or WEFT_ENOTTASK. Suspends while empty. */
WEFT_EXTERN int weft_queue_get(weft_queue_t *q, void **item);

/* q.put_nowait(item): 0, or WEFT_EAGAIN if q is full (asyncio.QueueFull),
 * WEFT_EINVAL if q is NULL. Never suspends; callable from any thread. */
WEFT_EXTERN int weft_queue_try_put(weft_queue_t *q, void *item);

/* q.get_nowait(): 0, or WEFT_EAGAIN if q is empty (asyncio.QueueEmpty),
 * WEFT_EINVAL if q or item is NULL. Never suspends; callable from any
 * thread. */
WEFT_EXTERN int weft_queue_try_get(weft_queue_t *q, void **item);

/* q.qsize(): the number of queued items (saturated at INT32_MAX), or
 * WEFT_EINVAL if q is NULL. Callable from any thread. */
WEFT_EXTERN int weft_queue_size(const weft_queue_t *q);

WEFT_END_DECLS

#endif /* WEFT_QUEUE_H */
