/*
 * Run queue: the slow paths (overflow, steal). The protocol is at the top of
 * runq.h.
 */
#include "sched/runq.h"

#include "record.h"
#include "sched/inject.h"

#include <string.h>

void weft__runq_init(weft__runq_t *q) {
  atomic_init(&q->head, 0);
  atomic_init(&q->tail, 0);
  memset(q->buf, 0, sizeof(q->buf));
}

int weft__runq_push_overflow(weft__runq_t *q, struct weft_task *t,
                             struct weft__inject *inj) {
  const uint32_t half = WEFT_RUNQ_CAPACITY / 2;
  /* acquire: as in pop. */
  uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  uint32_t steal = weft__runq_steal_of(h), real = weft__runq_real_of(h);
  /* relaxed: owner-written. */
  uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
  if (steal != real) {
    /* A thief is copying out [STEAL, REAL): it frees room when done, but it
     * may have been preempted mid-copy, and waiting for it would stall the
     * owner (and every task queued behind it). t alone goes to the inject
     * queue instead, where any worker takes it. */
    t->next = NULL;
    weft__inject_push_batch(inj, t, t, 1);
    return 0;
  }
  if (tail - real < half)
    return -1; /* not full any more: pops made room (only the owner pops
                  here, so this cannot happen, but stay correct) */
  uint64_t nh = weft__runq_pack(real + half, real + half);
  /* acq_rel: claims `half` slots against thieves. */
  if (!atomic_compare_exchange_strong_explicit(&q->head, &h, nh,
                                               memory_order_acq_rel,
                                               memory_order_acquire))
    return -1; /* a thief claimed tasks since: there is room now */
  /* Link the claimed tasks, oldest first, then t, into one batch. */
  struct weft_task *first = q->buf[real & WEFT__RUNQ_MASK];
  struct weft_task *prev = first;
  for (uint32_t i = 1; i < half; i++) {
    struct weft_task *cur = q->buf[(real + i) & WEFT__RUNQ_MASK];
    prev->next = cur;
    prev = cur;
  }
  prev->next = t;
  t->next = NULL;
  weft__inject_push_batch(inj, first, t, half + 1);
  return 0;
}

struct weft_task *weft__runq_steal_into(weft__runq_t *src, weft__runq_t *dst,
                                        uint32_t *moved) {
  *moved = 0;
  /* relaxed: only the thief (dst's owner) writes dst->tail. */
  uint32_t dst_tail = atomic_load_explicit(&dst->tail, memory_order_relaxed);
  /* acquire: dst's own thieves may have released slots. */
  uint64_t dh = atomic_load_explicit(&dst->head, memory_order_acquire);
  if (dst_tail - weft__runq_steal_of(dh) > WEFT_RUNQ_CAPACITY / 2)
    return NULL; /* our own ring has no room for half of another */

  /* acquire: pairs with the owner's and other thieves' releases of head. */
  uint64_t prev = atomic_load_explicit(&src->head, memory_order_acquire);
  uint32_t first, n;
  for (;;) {
    uint32_t steal = weft__runq_steal_of(prev), real = weft__runq_real_of(prev);
    if (steal != real)
      return NULL; /* another thief is active */
    /* acquire: pairs with the owner's release of tail, so the slots below it
     * are written. */
    uint32_t tail = atomic_load_explicit(&src->tail, memory_order_acquire);
    n = tail - real;
    n -= n / 2;
    if (n == 0 || n > WEFT_RUNQ_CAPACITY / 2)
      return NULL; /* empty, or a stale read of a wrapped index */
    uint64_t nh = weft__runq_pack(steal, real + n);
    /* acq_rel: claims [real, real + n) against the owner and other thieves. */
    if (atomic_compare_exchange_weak_explicit(&src->head, &prev, nh,
                                              memory_order_acq_rel,
                                              memory_order_acquire)) {
      first = real;
      break;
    }
  }
  for (uint32_t i = 0; i < n; i++)
    dst->buf[(dst_tail + i) & WEFT__RUNQ_MASK] =
        src->buf[(first + i) & WEFT__RUNQ_MASK];
  /* Release the claimed slots: STEAL catches up with REAL. */
  prev = atomic_load_explicit(&src->head, memory_order_acquire);
  for (;;) {
    uint32_t real = weft__runq_real_of(prev);
    uint64_t nh = weft__runq_pack(real, real);
    /* acq_rel: release orders our slot reads before the owner may reuse the
     * slots (its push acquires head). */
    if (atomic_compare_exchange_weak_explicit(&src->head, &prev, nh,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      break;
  }
  *moved = n;
  /* Run the newest stolen task now; publish the rest in our ring. */
  n--;
  struct weft_task *ret = dst->buf[(dst_tail + n) & WEFT__RUNQ_MASK];
  if (n > 0)
    /* release: publishes the copied slots to our own consumers. */
    atomic_store_explicit(&dst->tail, dst_tail + n, memory_order_release);
  return ret;
}
