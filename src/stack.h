/*
 * Task stacks: mmap'd, carved from slabs, pooled per worker.
 *
 * Layout of a stack region (size = the configured stack size):
 *
 *     lo                                         lo + size
 *     | usable stack (grows down) ... | weft__stack_t header |
 *
 * The header (free-list link, bounds, and a canary as its highest word) sits
 * at the top of the region, in the page every running task touches anyway,
 * so a pooled stack costs no memory beyond what its task used.
 *
 * Guarded stacks (the first cfg.guarded_stacks of the runtime) have a guard
 * page below lo: an overflow faults, and the runtime's SIGSEGV handler
 * reports it with the task's name. On Linux 6.13+ the guard is a guard
 * region (MADV_GUARD_INSTALL: page-table entries, no extra mapping, ~1 us);
 * older kernels get a PROT_NONE page from mprotect, which costs two kernel
 * mappings per stack, and Linux allows 65530 per process by default. Either
 * way past the budget stacks come from unguarded slabs: there the region
 * below lo is the top of the neighbouring stack, whose header ends with a
 * canary word; an overflow overwrites it first. The canary below a task's
 * stack and the task's stack pointer are checked at every switch out of an
 * unguarded stack and when the stack is released; a failed check reports the
 * overflow with the task's name and aborts.
 *
 * Pooling: each worker keeps a LIFO cache of free stacks (owner-only, warm in
 * cache and in memory); caches exchange batches with the runtime-wide pool
 * under its mutex. Free stacks past a high-water mark have their pages below
 * the header given back to the kernel (MADV_DONTNEED) by workers that have
 * stayed idle for a while (a trim timer armed at park, worker.c), so the
 * release path never makes a system call and a briefly idle worker never
 * throws away pages that the next burst of tasks would fault in again.
 *
 * In ASan builds a free stack's usable part is poisoned (release poisons,
 * alloc unpoisons), so that a pointer kept into a finished task's frames is
 * reported when used; headers stay readable for the free lists.
 *
 * Under valgrind (a build that found valgrind/valgrind.h, and a process
 * that RUNNING_ON_VALGRIND says runs under it) a stack is registered with
 * VALGRIND_STACK_REGISTER while a task has it (alloc to release), so that
 * memcheck takes a switch between stacks for a switch, not for a huge
 * push or pop on one stack, which would mark the frames in between
 * undefined or inaccessible.
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT__STACK_CANARY 0x5745465443414e52ull /* "WEFTCANR" */
#define WEFT__STACK_SLAB 64u        /* stacks per slab */
#define WEFT__STACK_CACHE_MAX 128u  /* per-worker cache high-water mark */
#define WEFT__STACK_CACHE_BATCH 32u /* stacks moved per cache exchange */

typedef struct weft__stack {
  struct weft__stack *next; /* free-list link */
  char *lo;                 /* lowest usable byte of the stack */
  size_t usable;            /* bytes from lo up to this header */
  unsigned guarded;         /* 1 if a guard page lies below lo */
  unsigned trimmed;         /* 1 if its pages were given back while free */
  unsigned vg_id;           /* valgrind's id of it while a task has it and
                               the process runs under valgrind (stack.c) */
  char *tls_err;            /* the reason of its task's last TLS failure
                               (io/tls_ctx.c), freed when the body returns:
                               only a running task has one, and a running
                               task has a stack (kept off the record, which
                               must stay 256 bytes: record.h) */
  uint64_t canary;          /* overflow sentinel for the stack above: the
                               header's highest word (keep it last) */
} weft__stack_t;
_Static_assert(offsetof(weft__stack_t, canary) + sizeof(uint64_t) ==
                   sizeof(weft__stack_t),
               "the canary is the stack header's highest word");

typedef struct weft__stack_slab {
  struct weft__stack_slab *next; /* all slabs, for unmapping */
  void *base;                    /* the mapping */
  size_t len;                    /* its length */
} weft__stack_slab_t;

typedef struct weft__stack_pool {
  pthread_mutex_t mu;         /* guards everything below */
  weft__stack_t *free;        /* runtime-wide free stacks */
  size_t nfree;               /* their number */
  size_t ntrimmed;            /* how many of them are trimmed */
  /* nfree - ntrimmed, stored (relaxed) under mu and read without it by
   * idle workers deciding whether to arm their trim timer: a hint. */
  atomic_size_t warm_hint;
  weft__stack_slab_t *slabs;  /* every slab mapped */
  size_t size;                /* region size of a stack (page multiple) */
  size_t page;                /* page size */
  size_t guarded_budget;      /* stacks that may still get a guard page */
  size_t trim_hwm;            /* free stacks kept with their pages */
  int nohugepage;             /* THP is "always": opt slabs out of it */
} weft__stack_pool_t;

/* Per-worker cache; owner-only. */
typedef struct weft__stack_cache {
  weft__stack_t *top; /* LIFO: the most recently released stack */
  unsigned n;         /* stacks in the cache */
} weft__stack_cache_t;

int weft__stack_pool_init(weft__stack_pool_t *p, size_t size,
                          size_t guarded_budget);
void weft__stack_pool_destroy(weft__stack_pool_t *p);

/* Take a stack for a task; NULL when out of memory or address space. */
weft__stack_t *weft__stack_alloc(weft__stack_pool_t *p, weft__stack_cache_t *c);

/* Return a stack (its task has switched away for good). */
void weft__stack_release(weft__stack_pool_t *p, weft__stack_cache_t *c,
                         weft__stack_t *s);

/* Give back to the kernel the pages of up to max free stacks beyond the
 * pool's high-water mark (called by idle workers, off the hot path).
 * Returns the number of stacks trimmed. */
size_t weft__stack_trim(weft__stack_pool_t *p, size_t max);

/* 1 if weft__stack_trim would find work (a racy hint; any thread). */
static inline int weft__stack_trim_wanted(weft__stack_pool_t *p) {
  /* relaxed: a hint; trimming re-checks under the pool's mutex. */
  return atomic_load_explicit(&p->warm_hint, memory_order_relaxed) >
         p->trim_hwm;
}

/* Unit tests: 0 makes new guards use mprotect, as on kernels before 6.13;
 * 1 tries MADV_GUARD_INSTALL first again (the default). */
void weft__stack_set_guard_install(int on);

/* Unit tests: while on, weft__stack_alloc() fails as if no memory could be
 * mapped (the first run of a task then ends it with WEFT_ENOMEM). */
void weft__stack_set_fail(int on);

/* Give a worker's cache back to the pool (worker exit). */
void weft__stack_cache_flush(weft__stack_pool_t *p, weft__stack_cache_t *c);

/* 1 if the stack shows an overflow given the saved stack pointer sp (NULL:
 * check the canary only). Unguarded stacks only: on a guarded stack the
 * canary word lies in the guard page and reading it faults. */
static inline int weft__stack_overflowed(const weft__stack_t *s,
                                         const void *sp) {
  if (sp && (const char *)sp < s->lo)
    return 1;
  return *(const uint64_t *)(const void *)(s->lo - sizeof(uint64_t)) !=
         WEFT__STACK_CANARY;
}

/* 1 if addr lies in the guard page below a guarded stack. */
static inline int weft__stack_in_guard(const weft__stack_t *s, size_t page,
                                       const void *addr) {
  const char *a = addr;
  return s->guarded && a < s->lo && a >= s->lo - page;
}

#endif /* WEFT_STACK_H */
