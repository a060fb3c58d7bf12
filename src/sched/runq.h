/*
 * The local run queue of a worker: a bounded ring of task pointers with one
 * producer (the owning worker) and many consumers (the owner and thieves),
 * where a thief takes half of the queue in one claim.
 *
 * Why not ck_ring: Concurrency Kit 0.7.1's SPMC ring has no batch steal (a
 * thief takes tasks one CAS at a time, contending with the owner's pops on
 * every one), and its ck_pr primitives are inline assembly that
 * ThreadSanitizer cannot see, so the TSan build could not check the ring. This
 * ring follows the same SPMC shape with C11 atomics and tokio's two-part head
 * (docs/design.md, "Run queue").
 *
 * Layout: `head` packs two 32-bit indices, STEAL (high) and REAL (low);
 * `tail` is written only by the owner. Slots [REAL, tail) hold queued tasks;
 * slots [STEAL, REAL) are being copied out by a thief. STEAL == REAL when no
 * steal is in progress. Indices wrap; a slot is index & (CAP - 1).
 *
 * Protocol:
 *  1. push (owner): if tail - STEAL < CAP, write slot[tail], then store
 *     tail + 1 with release (seq_cst when the owner will then look for a
 *     parked worker to wake: see weft__runq_try_push_owner_sc). Otherwise
 *     overflow: claim CAP/2 tasks by moving both STEAL and REAL forward with
 *     one CAS and hand them with the new task to the global inject queue as
 *     one batch. While a thief is active (STEAL != REAL) the claim cannot be
 *     made; the new task alone goes to the inject queue instead (as tokio
 *     does): the owner never waits for a thief, which may have been
 *     preempted mid-copy. A CAS that fails because a thief claimed tasks
 *     meanwhile is retried once more: the push then finds room, or the
 *     thief's claim, and so ends without waiting either way.
 *  2. pop (owner or thief): CAS REAL forward by one (and STEAL with it when no
 *     steal is in progress). The slot is read before the CAS; the CAS decides
 *     whether that read is ours.
 *  3. steal (thief): if STEAL != REAL another thief is active: give up. Else
 *     CAS REAL forward by half the queued tasks, keeping STEAL: the range is
 *     claimed, the owner can pop past it but cannot overwrite it (push checks
 *     tail - STEAL). Copy the range into the thief's own ring, then CAS STEAL
 *     up to REAL to release the slots.
 */
#ifndef WEFT_RUNQ_H
#define WEFT_RUNQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifndef WEFT_RUNQ_CAPACITY
#define WEFT_RUNQ_CAPACITY 256
#endif
#if (WEFT_RUNQ_CAPACITY & (WEFT_RUNQ_CAPACITY - 1)) || WEFT_RUNQ_CAPACITY < 4
#error "WEFT_RUNQ_CAPACITY must be a power of two >= 4"
#endif
#define WEFT__RUNQ_MASK (WEFT_RUNQ_CAPACITY - 1)

struct weft_task;

typedef struct weft__runq {
  /* STEAL << 32 | REAL; written by the owner and thieves. */
  _Alignas(64) _Atomic uint64_t head;
  /* Next free slot; written only by the owner, read by thieves. */
  _Alignas(64) atomic_uint tail;
  /* The slots. Plain pointers: the head/tail protocol orders every access. */
  _Alignas(64) struct weft_task *buf[WEFT_RUNQ_CAPACITY];
} weft__runq_t;

static inline uint64_t weft__runq_pack(uint32_t steal, uint32_t real) {
  return ((uint64_t)steal << 32) | real;
}
static inline uint32_t weft__runq_steal_of(uint64_t h) {
  return (uint32_t)(h >> 32);
}
static inline uint32_t weft__runq_real_of(uint64_t h) { return (uint32_t)h; }

void weft__runq_init(weft__runq_t *q);

/* Number of queued tasks (a racy snapshot when read by a non-owner). */
static inline uint32_t weft__runq_len(weft__runq_t *q) {
  /* acquire/relaxed: a snapshot; callers use it as a hint only. */
  uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
  return t - weft__runq_real_of(h);
}

static inline int weft__runq_is_empty(weft__runq_t *q) {
  return weft__runq_len(q) == 0;
}

/* Owner only: protocol step 1 without the overflow, storing tail with
 * tail_order. Use one of the two wrappers below. */
static inline int weft__runq_try_push_mo(weft__runq_t *q, struct weft_task *t,
                                         memory_order tail_order) {
  /* relaxed: only the owner writes tail. */
  uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
  /* acquire: pairs with a thief's release of STEAL, so its copy-out of the
   * slots we are about to reuse has finished. */
  uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  if (tail - weft__runq_steal_of(h) >= WEFT_RUNQ_CAPACITY)
    return 0;
  q->buf[tail & WEFT__RUNQ_MASK] = t;
  /* tail_order (release or seq_cst): publishes the slot write to consumers
   * that acquire tail; see the two callers below. */
  atomic_store_explicit(&q->tail, tail + 1, tail_order);
  return 1;
}

/* Owner only. Returns 1 if the task was queued, 0 if the ring is full (the
 * caller then calls weft__runq_push_overflow). */
static inline int weft__runq_try_push_owner(weft__runq_t *q,
                                            struct weft_task *t) {
  /* release: publishing the slot is all a consumer needs. */
  return weft__runq_try_push_mo(q, t, memory_order_release);
}

/* As weft__runq_try_push_owner, for a push after which the owner reads the
 * idle state to decide whether to wake a worker (idle.h step 2). The store
 * of tail is seq_cst so that it and that read are both in the single total
 * order with the last searcher's park transition and its seq_cst re-check
 * of the rings (idle.h step 4): either the pusher's read sees the searcher
 * parked (and wakes one), or the searcher's re-check sees the new tail.
 * With a release store, the store could still sit in the pusher's store
 * buffer when its read of the idle state is done (a StoreLoad reordering
 * that x86 allows), and both sides could miss each other. A seq_cst store
 * costs an xchg on x86 on the owner's own line; tokio instead makes the
 * read an RMW (fetch_add(0)) on the shared idle word, which every pushing
 * worker would then write. */
static inline int weft__runq_try_push_owner_sc(weft__runq_t *q,
                                               struct weft_task *t) {
  return weft__runq_try_push_mo(q, t, memory_order_seq_cst);
}

/* Whether q holds no task, read for the last searcher's re-check before it
 * parks (idle.h step 4): seq_cst, the other half of the pairing described at
 * weft__runq_try_push_owner_sc. */
static inline int weft__runq_is_empty_sc(weft__runq_t *q) {
  /* seq_cst: see above; head with it (a pop only makes the ring emptier). */
  uint64_t h = atomic_load_explicit(&q->head, memory_order_seq_cst);
  uint32_t t = atomic_load_explicit(&q->tail, memory_order_seq_cst);
  return t == weft__runq_real_of(h);
}

/* Owner only: pop the oldest task, or NULL if empty. */
static inline struct weft_task *weft__runq_pop_owner(weft__runq_t *q) {
  /* acquire: pairs with thieves' releases of head. */
  uint64_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  for (;;) {
    uint32_t steal = weft__runq_steal_of(h), real = weft__runq_real_of(h);
    /* relaxed: the owner wrote tail itself. */
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (real == tail)
      return NULL;
    uint32_t next_real = real + 1;
    uint64_t nh = steal == real ? weft__runq_pack(next_real, next_real)
                                : weft__runq_pack(steal, next_real);
    struct weft_task *t = q->buf[real & WEFT__RUNQ_MASK];
    /* acq_rel: claims the slot against thieves (acquire pairs with their
     * release; release lets push's acquire see the slot consumed). */
    if (atomic_compare_exchange_weak_explicit(&q->head, &h, nh,
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return t;
  }
}

/* Owner only: q is full; move half of it plus t to the inject queue, or t
 * alone while a thief is copying out of q (it frees room when done, but the
 * owner does not wait for it). Returns 0 if t was pushed, -1 if a thief
 * claimed tasks since q was found full (retry weft__runq_try_push_owner:
 * the retry finds room, or the claim in progress and so ends here). */
struct weft__inject;
int weft__runq_push_overflow(weft__runq_t *q, struct weft_task *t,
                             struct weft__inject *inj);

/* Thief: move about half of src's tasks into dst (owned by the caller) and
 * return one of them to run, or NULL if nothing was stolen. *moved gets the
 * number of tasks taken (including the returned one). */
struct weft_task *weft__runq_steal_into(weft__runq_t *src, weft__runq_t *dst,
                                        uint32_t *moved);

#endif /* WEFT_RUNQ_H */
