/*
 * Task stacks; the layout and pooling protocol are at the top of stack.h.
 */
#include "alloc.h"
#include "stack.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(WEFT_SANITIZE_ADDRESS)
#include <sanitizer/asan_interface.h>
#endif
#if defined(WEFT_HAVE_VALGRIND)
/* Client requests: a few no-op instructions when not under valgrind. */
#include <valgrind/valgrind.h>
#endif

/* 1 if transparent huge pages are on for every anonymous mapping
 * ("[always]"), so that stack slabs must opt out with MADV_NOHUGEPAGE. */
static int thp_always(void) {
  char buf[128];
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return strstr(buf, "[always]") != NULL;
}

int weft__stack_pool_init(weft__stack_pool_t *p, size_t size,
                          size_t guarded_budget) {
  memset(p, 0, sizeof(*p));
  p->nohugepage = thp_always();
  p->page = (size_t)sysconf(_SC_PAGESIZE);
  p->size = (size + p->page - 1) & ~(p->page - 1);
  p->guarded_budget = guarded_budget;
  p->trim_hwm = 1024;
  atomic_init(&p->warm_hint, 0);
  return -pthread_mutex_init(&p->mu, NULL);
}

void weft__stack_pool_destroy(weft__stack_pool_t *p) {
  weft__stack_slab_t *s = p->slabs;
  while (s) {
    weft__stack_slab_t *next = s->next;
#if defined(WEFT_SANITIZE_ADDRESS)
    /* Free stacks are poisoned: leave no poison behind for whatever is
     * mapped here next. */
    ASAN_UNPOISON_MEMORY_REGION(s->base, s->len);
#endif
    munmap(s->base, s->len);
    weft__free(s);
    s = next;
  }
  pthread_mutex_destroy(&p->mu);
}

/* Under p->mu, after nfree or ntrimmed changed. */
static void update_hint(weft__stack_pool_t *p) {
  /* relaxed: a hint for weft__stack_trim_wanted(). */
  atomic_store_explicit(&p->warm_hint, p->nfree - p->ntrimmed,
                        memory_order_relaxed);
}

static weft__stack_t *header_of(char *region, size_t size) {
  return (weft__stack_t *)(void *)(region + size - sizeof(weft__stack_t));
}

static void header_init(weft__stack_t *h, char *region, unsigned guarded) {
  h->next = NULL;
  h->lo = region;
  h->usable = (size_t)((char *)h - region);
  h->guarded = guarded;
  h->trimmed = 0;
  h->vg_id = 0;
  h->canary = WEFT__STACK_CANARY;
  h->tls_err = NULL;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

/* 1 while MADV_GUARD_INSTALL works, 0 once the kernel refused it. */
static atomic_int guard_install_ok = 1;

/* Make [addr, addr + len) a guard region. Linux 6.13+ installs guard
 * entries in the page tables (MADV_GUARD_INSTALL): no new mapping, no VMA
 * split, only the mmap lock's read side, about 1 us here against 4 us for
 * mprotect. Older kernels refuse it with EINVAL: fall back to mprotect, which
 * splits the mapping (two more mappings per stack, hence the budget). */
static int guard(char *addr, size_t len) {
  /* relaxed: a sticky hint; either path is correct. */
  if (atomic_load_explicit(&guard_install_ok, memory_order_relaxed)) {
    if (madvise(addr, len, MADV_GUARD_INSTALL) == 0)
      return 0;
    if (errno != EINVAL)
      return -1;
    /* relaxed: as above. */
    atomic_store_explicit(&guard_install_ok, 0, memory_order_relaxed);
  }
  return mprotect(addr, len, PROT_NONE);
}

/* Failure injection for tests (weft__stack_set_fail). */
static atomic_int fail_alloc = 0;

void weft__stack_set_fail(int on) {
  /* relaxed: a test switch; the test orders it by its own task flow. */
  atomic_store_explicit(&fail_alloc, on != 0, memory_order_relaxed);
}

void weft__stack_set_guard_install(int on) {
  /* relaxed: as above. */
  atomic_store_explicit(&guard_install_ok, on != 0, memory_order_relaxed);
}

/* Map a slab of WEFT__STACK_SLAB stacks and chain their headers. The system
 * calls run without the pool lock; only the guard budget and the slab list
 * are touched under it. */
static weft__stack_t *carve_slab(weft__stack_pool_t *p) {
  const size_t n = WEFT__STACK_SLAB;
  pthread_mutex_lock(&p->mu);
  const int guarded = p->guarded_budget >= n;
  if (guarded)
    p->guarded_budget -= n;
  pthread_mutex_unlock(&p->mu);
  const size_t stride = p->size + (guarded ? p->page : 0);
  /* Unguarded slabs start with one page whose top word is the canary of the
   * lowest stack. */
  const size_t len = n * stride + (guarded ? 0 : p->page);
  weft__stack_slab_t *slab = weft__malloc(sizeof(*slab));
  char *base = MAP_FAILED;
  if (slab)
    base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
                0);
  char *first = base;
  int ok = base != MAP_FAILED;
  /* Huge pages would make every stack of a 2 MiB run resident. Only asked
   * for when THP is on for all mappings: the call takes the mmap lock for
   * writing, stalling every other worker's page faults. */
  if (ok && p->nohugepage)
    (void)madvise(base, len, MADV_NOHUGEPAGE);
  if (ok && guarded) {
    for (size_t i = 0; ok && i < n; i++)
      ok = guard(base + i * stride, p->page) == 0;
  } else if (ok) {
    first = base + p->page;
    *(uint64_t *)(void *)(first - sizeof(uint64_t)) = WEFT__STACK_CANARY;
  }
  if (!ok) {
    if (base != MAP_FAILED)
      munmap(base, len);
    weft__free(slab);
    if (guarded) {
      pthread_mutex_lock(&p->mu);
      p->guarded_budget += n;
      pthread_mutex_unlock(&p->mu);
    }
    return NULL;
  }
  slab->base = base;
  slab->len = len;
  pthread_mutex_lock(&p->mu);
  slab->next = p->slabs;
  p->slabs = slab;
  pthread_mutex_unlock(&p->mu);

  weft__stack_t *chain = NULL;
  for (size_t i = n; i-- > 0;) {
    char *region = first + i * stride + (guarded ? p->page : 0);
    weft__stack_t *h = header_of(region, p->size);
    header_init(h, region, (unsigned)guarded);
    h->next = chain;
    chain = h;
  }
  return chain;
}

weft__stack_t *weft__stack_alloc(weft__stack_pool_t *p,
                                 weft__stack_cache_t *c) {
  /* relaxed: see weft__stack_set_fail. */
  if (__builtin_expect(
          atomic_load_explicit(&fail_alloc, memory_order_relaxed), 0))
    return NULL;
  if (!c->top) {
    pthread_mutex_lock(&p->mu);
    unsigned k = 0;
    while (p->free && k < WEFT__STACK_CACHE_BATCH) {
      weft__stack_t *s = p->free;
      p->free = s->next;
      if (s->trimmed) {
        s->trimmed = 0;
        p->ntrimmed--;
      }
      s->next = c->top;
      c->top = s;
      k++;
    }
    p->nfree -= k;
    update_hint(p);
    c->n += k;
    pthread_mutex_unlock(&p->mu);
    if (!c->top) {
      weft__stack_t *chain = carve_slab(p);
      while (chain) {
        weft__stack_t *s = chain;
        chain = s->next;
        s->next = c->top;
        c->top = s;
        c->n++;
      }
    }
    if (!c->top)
      return NULL;
  }
  weft__stack_t *s = c->top;
  c->top = s->next;
  c->n--;
  s->next = NULL;
  s->trimmed = 0;
#if defined(WEFT_SANITIZE_ADDRESS)
  ASAN_UNPOISON_MEMORY_REGION(s->lo, s->usable); /* see weft__stack_release */
#endif
#if defined(WEFT_HAVE_VALGRIND)
  if (RUNNING_ON_VALGRIND) /* stack.h: valgrind */
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->usable);
#endif
  return s;
}

void weft__stack_release(weft__stack_pool_t *p, weft__stack_cache_t *c,
                         weft__stack_t *s) {
#if defined(WEFT_HAVE_VALGRIND)
  if (RUNNING_ON_VALGRIND)
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
  /* A free stack is poisoned, so that a pointer into a finished task's
   * frames draws a report; weft__stack_alloc() unpoisons it (which also
   * clears the poison of frames that never returned). The header above
   * `usable` stays readable: the free lists link through it. */
  ASAN_POISON_MEMORY_REGION(s->lo, s->usable);
#endif
  s->next = c->top;
  c->top = s;
  if (++c->n <= WEFT__STACK_CACHE_MAX)
    return;
  /* Move a batch from the cold end of the cache (the bottom of the LIFO). */
  weft__stack_t *keep = c->top;
  for (unsigned i = 1; i < c->n - WEFT__STACK_CACHE_BATCH; i++)
    keep = keep->next;
  weft__stack_t *batch = keep->next;
  keep->next = NULL;
  c->n -= WEFT__STACK_CACHE_BATCH;
  weft__stack_t *last = batch;
  while (last->next)
    last = last->next;
  pthread_mutex_lock(&p->mu);
  last->next = p->free;
  p->free = batch;
  p->nfree += WEFT__STACK_CACHE_BATCH;
  update_hint(p);
  pthread_mutex_unlock(&p->mu);
}

size_t weft__stack_trim(weft__stack_pool_t *p, size_t max) {
  /* Trimmed stacks sit below the untrimmed ones: the pool is LIFO, so the
   * coldest stacks are deepest. Walk past trim_hwm warm ones first. */
  size_t done = 0;
  pthread_mutex_lock(&p->mu);
  if (p->nfree - p->ntrimmed <= p->trim_hwm) {
    pthread_mutex_unlock(&p->mu);
    return 0;
  }
  weft__stack_t *s = p->free;
  for (size_t i = 0; s && i < p->trim_hwm; i++)
    s = s->next;
  for (; s && done < max && p->nfree - p->ntrimmed - done > p->trim_hwm;
       s = s->next) {
    if (s->trimmed)
      continue;
    /* Give back everything below the header's page. */
    char *hdr_page = (char *)((uintptr_t)s & ~(uintptr_t)(p->page - 1));
    if (hdr_page > s->lo)
      madvise(s->lo, (size_t)(hdr_page - s->lo), MADV_DONTNEED);
    s->trimmed = 1;
    done++;
  }
  p->ntrimmed += done;
  update_hint(p);
  pthread_mutex_unlock(&p->mu);
  return done;
}

void weft__stack_cache_flush(weft__stack_pool_t *p, weft__stack_cache_t *c) {
  if (!c->top)
    return;
  pthread_mutex_lock(&p->mu);
  while (c->top) {
    weft__stack_t *s = c->top;
    c->top = s->next;
    s->next = p->free;
    p->free = s;
    p->nfree++;
  }
  update_hint(p);
  c->n = 0;
  pthread_mutex_unlock(&p->mu);
}
