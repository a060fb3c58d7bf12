/*
 * Task records: each worker's pool of them (slabs of 64, a free list, a
 * remote-free stack), with no knowledge of tasks beyond the record: what a
 * record is used for is task.c's, the kind of a record (main, foreign:
 * not pooled) record.h's.
 *
 * Record lifetime (cross-thread protocol):
 *  1. A record is allocated from the spawning worker's free list (its
 *     "home"), which carves it from a slab of 64, and holds one reference
 *     while the task has not completed plus one per handle (task.c).
 *     `freed` is 0 while it is a task, 1 while it is free.
 *  2. The last reference dropped frees it: on home, straight back to the
 *     free list; elsewhere, pushed (release CAS) onto home's remote-free
 *     stack, which home takes whole (acquire exchange) when its free list
 *     runs dry or before it parks. Only home reuses a record and slabs are
 *     freed only when the runtime ends, so home can walk its slabs at
 *     shutdown and cancel every record whose `freed` is 0: every task it
 *     spawned (weft__record_each_live). (A registry list did this first,
 *     but linking and unlinking a record touched its neighbours, two cache
 *     misses per spawn.)
 *  3. In ASan builds a free record is poisoned (record_poison), except the
 *     fields that are read while it is free: state, freed and next (the
 *     shutdown walk, the free lists) and refs and cancels (a task the walk
 *     saw alive may complete and be freed elsewhere before its cancel
 *     reads COMPLETE, or bumps cancels). A handle used after its last
 *     reference was dropped then draws an ASan report instead of reading a
 *     recycled record; the public entry points that only read those fields
 *     check `freed` themselves (task.c, asan_check_live).
 */
#include "alloc.h"
#include "list.h"
#include "record.h"
#include "spinlock.h"

#include <stdatomic.h>
#include <stddef.h>

#if defined(WEFT_SANITIZE_THREAD)
#include <sanitizer/tsan_interface.h>
#endif

/* tools/gdb/weft-gdb.py walks these by name (next, recs) and knows
 * TASK_SLAB: keep them in step. */
#define TASK_SLAB 64

typedef struct task_slab {
  struct task_slab *next;           /* all slabs of a worker */
  weft_task_t recs[TASK_SLAB];      /* the records */
} task_slab_t;

void weft__record_pool_init(weft__record_pool_t *p,
                            _Atomic(weft_task_t *) *remote_free) {
  p->free = NULL;
  p->nfree = 0;
  atomic_init(&p->slabs, NULL);
  p->remote_free = remote_free;
}

void weft__record_once(weft_task_t *t, weft__worker_t *home) {
  /* COMPLETE until a spawn publishes the task (task.c): a dumper never
   * claims a record that is not yet, or no longer, a task (dump.c). */
  atomic_init(&t->state, WEFT__ST_COMPLETE);
  atomic_init(&t->refs, 0);
  atomic_init(&t->cancels, 0);
  atomic_init(&t->freed, 1);
  atomic_init(&t->name_state, 0);
  atomic_init(&t->name_seq, 0);
  atomic_init(&t->joinq_lock.locked, 0);
  weft__list_init(&t->joinq);
  t->home = home;
#if defined(WEFT_SANITIZE_THREAD)
  t->tsan_fiber = NULL;
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
  t->asan_fake_stack = NULL;
#endif
}

void weft__record_reclaim(weft__record_pool_t *p) {
  /* relaxed: cheap emptiness test before the exchange. */
  if (!atomic_load_explicit(p->remote_free, memory_order_relaxed))
    return;
  /* acquire: pairs with the freeing thread's release CAS. */
  weft_task_t *t =
      atomic_exchange_explicit(p->remote_free, NULL, memory_order_acquire);
  while (t) {
    weft_task_t *next = t->next;
    t->next = p->free;
    p->free = t;
    p->nfree++;
    t = next;
  }
}

weft_task_t *weft__record_alloc_slow(weft__record_pool_t *p,
                                    weft__worker_t *home) {
  weft__record_reclaim(p);
  if (!p->free) {
    task_slab_t *slab = weft__aligned_alloc(64, sizeof(task_slab_t));
    if (!slab)
      return NULL;
    /* No memset: record_once() initialises what outlives a task, and
     * task_init() the rest at every spawn (zeroing the slab first doubled
     * the writes to its fresh pages). */
    /* relaxed: the owner's own list. */
    slab->next = atomic_load_explicit(&p->slabs, memory_order_relaxed);
    for (int i = TASK_SLAB; i-- > 0;) {
      weft_task_t *t = &slab->recs[i];
      weft__record_once(t, home);
      t->next = p->free;
      p->free = t;
      weft__record_poison(t);
    }
    p->nfree += TASK_SLAB;
    /* release: the records' first initialisation (record_once) is visible
     * to a dumper that acquires the list (weft__record_each_slab). */
    atomic_store_explicit(&p->slabs, slab, memory_order_release);
  }
  weft_task_t *t = p->free;
  p->free = t->next;
  p->nfree--;
  weft__record_unpoison(t);
  return t;
}

void weft__record_free_remote(_Atomic(weft_task_t *) *remote_free,
                              weft_task_t *t) {
  weft_task_t *head = atomic_load_explicit(remote_free, memory_order_relaxed);
  do {
    t->next = head;
    /* release: everything done to the record happens before its reuse. */
  } while (!atomic_compare_exchange_weak_explicit(
      remote_free, &head, t, memory_order_release,
      memory_order_relaxed));
}

void weft__record_free_all(weft__record_pool_t *p) {
  weft__record_reclaim(p);
  /* relaxed: the runtime has ended; nothing walks the list any more. */
  task_slab_t *s = atomic_load_explicit(&p->slabs, memory_order_relaxed);
  while (s) {
    task_slab_t *next = s->next;
#if defined(WEFT_SANITIZE_THREAD)
    for (int i = 0; i < TASK_SLAB; i++)
      if (s->recs[i].tsan_fiber)
        __tsan_destroy_fiber(s->recs[i].tsan_fiber);
#endif
    weft__aligned_free(s);
    s = next;
  }
  atomic_store_explicit(&p->slabs, NULL, memory_order_relaxed);
  p->free = NULL;
}

void weft__record_each_live(weft__record_pool_t *p,
                            void (*fn)(weft_task_t *t)) {
  weft__record_reclaim(p);
  /* relaxed: the owner's own list. */
  for (task_slab_t *s = atomic_load_explicit(&p->slabs, memory_order_relaxed);
       s; s = s->next) {
    for (int i = 0; i < TASK_SLAB; i++) {
      weft_task_t *t = &s->recs[i];
      /* relaxed: only home makes a free record a task again (and home is
       * the caller); a record freed elsewhere meanwhile is a completed task,
       * which fn must take (a cancel is then a no-op). */
      if (!atomic_load_explicit(&t->freed, memory_order_relaxed))
        fn(t);
    }
  }
}

void weft__record_each_slab(weft__record_pool_t *p,
                            void (*fn)(weft_task_t *recs, unsigned n,
                                       void *arg),
                            void *arg) {
  /* acquire: pairs with the owner's release push; a slab's `next` is
   * written before its push and never again. */
  for (task_slab_t *s = atomic_load_explicit(&p->slabs, memory_order_acquire);
       s; s = s->next)
    fn(s->recs, TASK_SLAB, arg);
}
