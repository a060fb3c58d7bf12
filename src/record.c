/*
 * Task records: each worker's pool of them (slabs of 64, a free list, a
 * remote-free stack), with no knowledge of tasks beyond the record: what a
 * record is used for is task.c's, the kind of a record (main, foreign:
 * not pooled) record.h's.
 *
 * Record lifetime (cross-thread protocol):
 *  1. A record is allocated from the spawning worker's free list (its
 *     "home"), which carves it from a slab of 64 (malloc'd, or cut
 *     from a 2 MiB chunk once the pool is large: slab_new), and holds one reference
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
#include <stdint.h>
#include <sys/mman.h>

#if defined(WEFT_SANITIZE_THREAD)
#include <sanitizer/tsan_interface.h>
#endif

/* tools/gdb/weft-gdb.py walks these by name (next, recs) and knows
 * TASK_SLAB: keep them in step. */
#define TASK_SLAB 64

typedef struct task_slab {
  struct task_slab *next;           /* all slabs of a worker */
  unsigned char in_chunk;           /* 1: carved from a chunk (below), not
                                       malloc'd; the record offset (64)
                                       stays what gdb assumes */
  weft_task_t recs[TASK_SLAB];      /* the records */
} task_slab_t;

/* Where slabs come from. The first CHUNK_AFTER slabs of a pool are
 * malloc'd one by one (a runtime with a few hundred tasks keeps a few pages
 * of records). Past that, slabs are carved from 2 MiB chunks mapped
 * 2 MiB-aligned with MADV_HUGEPAGE: a program that holds tens of thousands
 * of tasks at once (spawn_many queues a million before they run, idle_memory
 * and timers park 100,000) then takes one huge-page fault per 127 slabs
 * (8,128 records) instead of one fault per 16 records, which cost about
 * 60% of spawn_many with one worker (design.md §7). The pool has already
 * used CHUNK_AFTER slabs (2 MiB of records) when the first chunk comes,
 * so a chunk at most doubles what the records take. Without transparent
 * huge pages (THP "never") the madvise fails and the chunk is plain pages:
 * the same as malloc. Chunks, like slabs, live until the runtime ends. */
#define CHUNK_SIZE ((size_t)2 << 20)
#define CHUNK_AFTER 128u
#define CHUNK_SLABS ((CHUNK_SIZE - sizeof(void *)) / sizeof(task_slab_t))
_Static_assert(offsetof(task_slab_t, recs) == 64,
               "tools/gdb/weft-gdb.py reads records at slab + 64");

/* A chunk: its mapping's base (for munmap), chained from the pool. The
 * header is the chunk's first word; slabs follow at their alignment. */
typedef struct record_chunk {
  struct record_chunk *next;
} record_chunk_t;

/* Map a 2 MiB-aligned chunk: over-map by 2 MiB, then unmap the ends. */
static record_chunk_t *chunk_map(void) {
  size_t len = 2 * CHUNK_SIZE;
  char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED)
    return NULL;
  char *base = (char *)(((uintptr_t)raw + CHUNK_SIZE - 1) &
                        ~(uintptr_t)(CHUNK_SIZE - 1));
  if (base > raw)
    munmap(raw, (size_t)(base - raw));
  if (raw + len > base + CHUNK_SIZE)
    munmap(base + CHUNK_SIZE, (size_t)(raw + len - (base + CHUNK_SIZE)));
  /* Fails harmlessly where THP is off or unsupported: plain pages. */
  (void)madvise(base, CHUNK_SIZE, MADV_HUGEPAGE);
  return (record_chunk_t *)(void *)base;
}

/* A fresh slab for p: malloc'd while the pool is small, else the next one
 * of the current chunk. NULL without memory. */
static task_slab_t *slab_new(weft__record_pool_t *p) {
  if (p->nslabs < CHUNK_AFTER) {
    task_slab_t *slab = weft__aligned_alloc(64, sizeof(task_slab_t));
    if (slab) {
      slab->in_chunk = 0;
      p->nslabs++;
    }
    return slab;
  }
  if (p->chunk_left == 0) {
    record_chunk_t *c = chunk_map();
    if (!c)
      return NULL;
    c->next = p->chunks;
    p->chunks = c;
    p->chunk_left = CHUNK_SLABS;
  }
  /* Slabs are laid out from the chunk's first 64-byte boundary after the
   * header, in order. */
  char *first = (char *)p->chunks + 64;
  task_slab_t *slab =
      (task_slab_t *)(void *)(first +
                              (CHUNK_SLABS - p->chunk_left) * sizeof(task_slab_t));
  p->chunk_left--;
  p->nslabs++;
  slab->in_chunk = 1;
  return slab;
}

void weft__record_pool_init(weft__record_pool_t *p,
                            _Atomic(weft_task_t *) *remote_free) {
  p->free = NULL;
  p->nfree = 0;
  atomic_init(&p->slabs, NULL);
  p->nslabs = 0;
  p->chunks = NULL;
  p->chunk_left = 0;
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
    task_slab_t *slab = slab_new(p);
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
    if (!s->in_chunk)
      weft__aligned_free(s);
    s = next;
  }
  atomic_store_explicit(&p->slabs, NULL, memory_order_relaxed);
  for (record_chunk_t *c = p->chunks; c;) {
    record_chunk_t *next = c->next;
    munmap(c, CHUNK_SIZE);
    c = next;
  }
  p->chunks = NULL;
  p->chunk_left = 0;
  p->nslabs = 0;
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
