/*
 * unit_stack: the stack pool of src/stack.h, white-box.
 *
 * Layout (usable size, header at the top, guard page or canary below),
 * LIFO reuse through a worker cache, the batch exchange between caches and
 * the pool, trimming past the high-water mark, flushing, unmapping on
 * destroy (LeakSanitizer checks the slab records in the ASan build), and two
 * threads sharing one pool through their own caches (ThreadSanitizer checks
 * the hand-over of stacks between them in the TSan build); and, in a
 * runtime, a task whose first run finds no stack ends with WEFT_ENOMEM,
 * whether the run loop or a finishing task's direct switch sets it up.
 */
#include "harness.h"

#include "stack.h"

#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define STACK_SIZE (64u * 1024u)

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* The protection of the mapping holding addr, from /proc/self/maps, as
 * "rwxp"-style text in perms[5]; 0 if found. */
/* 1 if reading *addr kills a child process (SIGSEGV, or the abort of a
 * sanitizer's SEGV report), 0 if the child reads it and exits 0. */
/* A byte of a free stack. ASan builds poison free stacks (stack.h): check
 * that, and read past it. */
#if defined(WEFT_SANITIZE_ADDRESS)
#include <sanitizer/asan_interface.h>
static __attribute__((no_sanitize_address)) unsigned char
free_byte(const char *p) {
  assert_true(__asan_address_is_poisoned(p));
  return *(const volatile unsigned char *)p;
}
#else
static unsigned char free_byte(const char *p) { return (unsigned char)*p; }
#endif

static int read_faults(const char *addr) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    volatile char c = *(volatile const char *)addr;
    (void)c;
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static int maps_perms(const void *addr, char perms[5]) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int found = -1;

  if (!f)
    return -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char p[5];
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) != 3)
      continue;
    if ((uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
      memcpy(perms, p, 5);
      found = 0;
      break;
    }
  }
  fclose(f);
  return found;
}

/* 1 if addr lies in no mapping at all. */
static int unmapped(const void *addr) {
  unsigned char vec;
  void *pg = (void *)((uintptr_t)addr & ~(uintptr_t)(page_size() - 1));

  return mincore(pg, page_size(), &vec) == -1 && errno == ENOMEM;
}

static size_t slab_count(weft__stack_pool_t *p) {
  size_t n = 0;
  weft__stack_slab_t *s;

  for (s = p->slabs; s; s = s->next)
    n++;
  return n;
}

static int in_list(const weft__stack_t *list, const weft__stack_t *s) {
  for (; list; list = list->next)
    if (list == s)
      return 1;
  return 0;
}

/* ---- layout ------------------------------------------------------------ */

static void test_init(void **state) {
  weft__stack_pool_t p;

  (void)state;
  /* The size is rounded up to whole pages. */
  assert_int_equal(weft__stack_pool_init(&p, 20000, 0), 0);
  assert_int_equal(p.page, page_size());
  assert_int_equal(p.size % p.page, 0);
  assert_true(p.size >= 20000 && p.size < 20000 + p.page);
  assert_int_equal(p.nfree, 0);
  assert_null(p.slabs);
  weft__stack_pool_destroy(&p);
}

/* guard_perms: what /proc/self/maps must say of the guard page, or NULL. */
static void guarded_layout(const char *guard_perms) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0};
  weft__stack_t *s;
  size_t pg = page_size();
  char perms[5];

  assert_int_equal(weft__stack_pool_init(&p, STACK_SIZE, 4 * WEFT__STACK_SLAB),
                   0);
  s = weft__stack_alloc(&p, &c);
  assert_non_null(s);
  assert_int_equal(slab_count(&p), 1);
  assert_int_equal(p.guarded_budget, 3 * WEFT__STACK_SLAB);
  assert_int_equal(c.n, WEFT__STACK_SLAB - 1);
  assert_int_equal(s->guarded, 1);
  assert_null(s->next);
  /* The header is the top of the region, right above the usable bytes. */
  assert_ptr_equal((char *)s, s->lo + s->usable);
  assert_int_equal(s->usable, STACK_SIZE - sizeof(weft__stack_t));
  assert_int_equal((uintptr_t)s->lo % pg, 0);
  assert_int_equal(s->canary, WEFT__STACK_CANARY);
  /* The whole usable range is writable. */
  memset(s->lo, 0xa5, s->usable);
  assert_int_equal((unsigned char)s->lo[0], 0xa5);
  assert_int_equal((unsigned char)s->lo[s->usable - 1], 0xa5);
  assert_int_equal(s->canary, WEFT__STACK_CANARY);

  /* A PROT_NONE page right below lo, and only one. */
  assert_true(weft__stack_in_guard(s, pg, s->lo - 1));
  assert_true(weft__stack_in_guard(s, pg, s->lo - pg));
  assert_false(weft__stack_in_guard(s, pg, s->lo));
  assert_false(weft__stack_in_guard(s, pg, s->lo - pg - 1));
  assert_false(weft__stack_in_guard(s, pg, s->lo + s->usable));
  /* Reading the guard faults, whichever way it was made (MADV_GUARD_INSTALL
   * leaves the mapping rw and puts guard entries in the page tables;
   * mprotect makes a "---" mapping); the byte above it is readable. */
  assert_true(read_faults(s->lo - 1));
  assert_true(read_faults(s->lo - pg));
  assert_false(read_faults(s->lo));
  if (guard_perms) {
    assert_int_equal(maps_perms(s->lo - 1, perms), 0);
    assert_memory_equal(perms, guard_perms, 3);
  }
  assert_int_equal(maps_perms(s->lo, perms), 0);
  assert_memory_equal(perms, "rw", 2);

  /* No canary check here: weft__stack_overflowed() is for unguarded
   * stacks only (the word it reads lies in the guard page). */

  weft__stack_release(&p, &c, s);
  weft__stack_cache_flush(&p, &c);
  weft__stack_pool_destroy(&p);
}

/* Guard regions where the kernel has them (Linux 6.13+), else mprotect. */
static void test_guarded_layout(void **state) {
  (void)state;
  guarded_layout(NULL);
}

/* The mprotect guards of older kernels, forced. */
static void test_guarded_layout_mprotect(void **state) {
  (void)state;
  weft__stack_set_guard_install(0);
  guarded_layout("---");
  weft__stack_set_guard_install(1);
}

static void test_unguarded_canary(void **state) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0};
  weft__stack_t *a, *b, *lower, *upper, *lowest;
  char *first;
  uint64_t *canary;

  (void)state;
  /* A budget below one slab: every slab is unguarded. */
  assert_int_equal(
      weft__stack_pool_init(&p, STACK_SIZE, WEFT__STACK_SLAB - 1), 0);
  a = weft__stack_alloc(&p, &c);
  b = weft__stack_alloc(&p, &c);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(a->guarded, 0);
  assert_int_equal(b->guarded, 0);
  assert_int_equal(p.guarded_budget, WEFT__STACK_SLAB - 1);
  assert_int_equal(slab_count(&p), 1);
  assert_false(weft__stack_in_guard(a, p.page, a->lo - 1));
  assert_ptr_equal((char *)a, a->lo + a->usable);
  assert_int_equal(a->usable, STACK_SIZE - sizeof(weft__stack_t));

  /* Two consecutive allocations are neighbours in one mapping, and the
   * word below the upper one's lowest byte is the canary at the top of the
   * lower one's header. */
  lower = a->lo < b->lo ? a : b;
  upper = a->lo < b->lo ? b : a;
  assert_ptr_equal(upper->lo, lower->lo + p.size);
  assert_ptr_equal(upper->lo - sizeof(uint64_t), (char *)&lower->canary);
  assert_false(weft__stack_overflowed(lower, NULL));
  assert_false(weft__stack_overflowed(upper, NULL));
  /* upper overflows: its deepest frame overwrites lower's canary. */
  memset(upper->lo - sizeof(uint64_t), 0x5a, sizeof(uint64_t));
  assert_true(weft__stack_overflowed(upper, NULL));
  assert_false(weft__stack_overflowed(lower, NULL));
  lower->canary = WEFT__STACK_CANARY;
  assert_false(weft__stack_overflowed(upper, NULL));
  /* Or the saved stack pointer is below lo. */
  assert_true(weft__stack_overflowed(upper, upper->lo - 8));
  assert_false(weft__stack_overflowed(upper, upper->lo + 8));

  /* The lowest stack of the slab has its canary in the slab's first page. */
  first = (char *)p.slabs->base + p.page;
  lowest = (weft__stack_t *)(void *)(first + p.size - sizeof(weft__stack_t));
  assert_ptr_equal(lowest->lo, first);
  canary = (uint64_t *)(void *)(first - sizeof(uint64_t));
  assert_int_equal(*canary, WEFT__STACK_CANARY);
  assert_false(weft__stack_overflowed(lowest, NULL));
  *canary = 0;
  assert_true(weft__stack_overflowed(lowest, NULL));
  *canary = WEFT__STACK_CANARY;
  assert_false(weft__stack_overflowed(lowest, NULL));

  weft__stack_release(&p, &c, b);
  weft__stack_release(&p, &c, a);
  weft__stack_cache_flush(&p, &c);
  weft__stack_pool_destroy(&p);
}

/* Past the guard budget, slabs become unguarded. */
static void test_guard_budget(void **state) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0};
  weft__stack_t *s[WEFT__STACK_SLAB + 1];
  size_t i;

  (void)state;
  assert_int_equal(weft__stack_pool_init(&p, STACK_SIZE, WEFT__STACK_SLAB), 0);
  for (i = 0; i <= WEFT__STACK_SLAB; i++) {
    s[i] = weft__stack_alloc(&p, &c);
    assert_non_null(s[i]);
    assert_int_equal(s[i]->guarded, i < WEFT__STACK_SLAB ? 1u : 0u);
  }
  assert_int_equal(p.guarded_budget, 0);
  assert_int_equal(slab_count(&p), 2);
  for (i = 0; i <= WEFT__STACK_SLAB; i++)
    weft__stack_release(&p, &c, s[i]);
  weft__stack_cache_flush(&p, &c);
  weft__stack_pool_destroy(&p);
}

/* ---- pooling ----------------------------------------------------------- */

static void test_lifo_reuse(void **state) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0};
  weft__stack_t *a, *b, *x;

  (void)state;
  assert_int_equal(weft__stack_pool_init(&p, STACK_SIZE, 0), 0);
  a = weft__stack_alloc(&p, &c);
  b = weft__stack_alloc(&p, &c);
  assert_true(a != b);
  weft__stack_release(&p, &c, a);
  x = weft__stack_alloc(&p, &c);
  assert_ptr_equal(x, a); /* the warmest */
  weft__stack_release(&p, &c, x);
  weft__stack_release(&p, &c, b);
  assert_ptr_equal(weft__stack_alloc(&p, &c), b);
  assert_ptr_equal(weft__stack_alloc(&p, &c), a);
  weft__stack_release(&p, &c, a);
  weft__stack_release(&p, &c, b);
  /* Only one slab was ever mapped. */
  assert_int_equal(slab_count(&p), 1);
  assert_int_equal(c.n, WEFT__STACK_SLAB);
  weft__stack_cache_flush(&p, &c);
  weft__stack_pool_destroy(&p);
}

#define BATCH_N (WEFT__STACK_CACHE_MAX + 1)

static void test_batch_exchange(void **state) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0}, c2 = {NULL, 0};
  weft__stack_t *s[BATCH_N], *x;
  size_t i;

  (void)state;
  assert_int_equal(weft__stack_pool_init(&p, STACK_SIZE, 0), 0);
  for (i = 0; i < BATCH_N; i++) {
    s[i] = weft__stack_alloc(&p, &c);
    assert_non_null(s[i]);
  }
  /* 129 stacks: three slabs carved, 63 left in the cache. */
  assert_int_equal(slab_count(&p), 3);
  assert_int_equal(c.n, 3 * WEFT__STACK_SLAB - BATCH_N);
  weft__stack_cache_flush(&p, &c);
  assert_int_equal(c.n, 0);
  assert_null(c.top);
  assert_int_equal(p.nfree, 3 * WEFT__STACK_SLAB - BATCH_N);
  /* Take the flushed ones back out of the way, through another cache. */
  {
    weft__stack_t *spare[3 * WEFT__STACK_SLAB];
    size_t k = 0, nspare = p.nfree;
    while (k < nspare) {
      spare[k] = weft__stack_alloc(&p, &c2);
      assert_non_null(spare[k]);
      k++;
    }
    assert_int_equal(p.nfree, 0);
    assert_int_equal(slab_count(&p), 3);
    for (i = 0; i < BATCH_N; i++) {
      weft__stack_release(&p, &c, s[i]);
      if (i < WEFT__STACK_CACHE_MAX) {
        assert_int_equal(c.n, i + 1);
        assert_int_equal(p.nfree, 0);
      }
    }
    /* The 129th release moved the 32 coldest (first released) to the pool. */
    assert_int_equal(c.n, BATCH_N - WEFT__STACK_CACHE_BATCH);
    assert_int_equal(p.nfree, WEFT__STACK_CACHE_BATCH);
    for (i = 0; i < WEFT__STACK_CACHE_BATCH; i++) {
      assert_true(in_list(p.free, s[i]));
      assert_false(in_list(c.top, s[i]));
    }
    for (; i < BATCH_N; i++) {
      assert_false(in_list(p.free, s[i]));
      assert_true(in_list(c.top, s[i]));
    }
    /* The warm end stays: the next allocation is the last release. */
    assert_ptr_equal(c.top, s[BATCH_N - 1]);
    for (k = 0; k < nspare; k++)
      weft__stack_release(&p, &c2, spare[k]);
    weft__stack_cache_flush(&p, &c2);
  }
  /* An empty cache takes a whole batch from the pool in one exchange. */
  {
    weft__stack_cache_t c3 = {NULL, 0};
    size_t before = p.nfree;
    x = weft__stack_alloc(&p, &c3);
    assert_non_null(x);
    assert_int_equal(c3.n, WEFT__STACK_CACHE_BATCH - 1);
    assert_int_equal(p.nfree, before - WEFT__STACK_CACHE_BATCH);
    assert_int_equal(slab_count(&p), 3);
    weft__stack_release(&p, &c3, x);
    weft__stack_cache_flush(&p, &c3);
  }
  weft__stack_cache_flush(&p, &c);
  assert_int_equal(p.nfree, 3 * WEFT__STACK_SLAB);
  weft__stack_pool_destroy(&p);
}

static void test_trim(void **state) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0};
  weft__stack_t *s[WEFT__STACK_SLAB], *it;
  size_t i, k, trimmed = 0;

  (void)state;
  assert_int_equal(weft__stack_pool_init(&p, STACK_SIZE, 0), 0);
  for (i = 0; i < WEFT__STACK_SLAB; i++) {
    s[i] = weft__stack_alloc(&p, &c);
    assert_non_null(s[i]);
    /* Touch the whole stack, as a deep task would. */
    memset(s[i]->lo, 0x77, s[i]->usable);
  }
  for (i = 0; i < WEFT__STACK_SLAB; i++)
    weft__stack_release(&p, &c, s[i]);
  weft__stack_cache_flush(&p, &c);
  assert_int_equal(p.nfree, WEFT__STACK_SLAB);

  /* Nothing to do at or below the high-water mark. */
  p.trim_hwm = WEFT__STACK_SLAB;
  assert_int_equal(weft__stack_trim(&p, 1000), 0);
  p.trim_hwm = 4;
  /* A bounded number per call, the warm ones at the head untouched. */
  assert_int_equal(weft__stack_trim(&p, 5), 5);
  for (it = p.free, k = 0; it; it = it->next, k++) {
    if (k < 4 || k >= 9) {
      assert_int_equal(it->trimmed, 0);
      assert_int_equal(free_byte(it->lo), 0x77);
    } else {
      assert_int_equal(it->trimmed, 1);
      /* The pages below the header's page were given back: they read as
       * zeros; the header is intact. */
      assert_int_equal(free_byte(it->lo), 0);
      assert_int_equal(it->canary, WEFT__STACK_CANARY);
      assert_ptr_equal((char *)it, it->lo + it->usable);
    }
  }
  /* The next call skips the trimmed ones and trims the rest. */
  assert_int_equal(weft__stack_trim(&p, 1000), WEFT__STACK_SLAB - 9);
  assert_int_equal(weft__stack_trim(&p, 1000), 0);
  for (it = p.free, k = 0; it; it = it->next, k++) {
    assert_int_equal(it->trimmed, k < 4 ? 0u : 1u);
    trimmed += it->trimmed;
  }
  assert_int_equal(trimmed, WEFT__STACK_SLAB - 4);
  assert_int_equal(p.nfree, WEFT__STACK_SLAB);

  /* A trimmed stack is usable again, and no longer marked trimmed. */
  for (i = 0; i < WEFT__STACK_SLAB; i++) {
    s[i] = weft__stack_alloc(&p, &c);
    assert_non_null(s[i]);
    assert_int_equal(s[i]->trimmed, 0);
    memset(s[i]->lo, 0x11, s[i]->usable);
    assert_false(weft__stack_overflowed(s[i], NULL));
  }
  assert_int_equal(slab_count(&p), 1);
  for (i = 0; i < WEFT__STACK_SLAB; i++)
    weft__stack_release(&p, &c, s[i]);
  weft__stack_cache_flush(&p, &c);
  weft__stack_pool_destroy(&p);
}

static void test_flush(void **state) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0}, other = {NULL, 0};
  weft__stack_t *s;

  (void)state;
  assert_int_equal(weft__stack_pool_init(&p, STACK_SIZE, 0), 0);
  /* Flushing an empty cache is a no-op. */
  weft__stack_cache_flush(&p, &c);
  assert_int_equal(p.nfree, 0);
  s = weft__stack_alloc(&p, &c);
  assert_non_null(s);
  weft__stack_release(&p, &c, s);
  assert_int_equal(c.n, WEFT__STACK_SLAB);
  weft__stack_cache_flush(&p, &c);
  assert_int_equal(c.n, 0);
  assert_null(c.top);
  assert_int_equal(p.nfree, WEFT__STACK_SLAB);
  assert_true(in_list(p.free, s));
  /* Another cache gets the flushed stacks without a new slab. */
  assert_non_null(weft__stack_alloc(&p, &other));
  assert_int_equal(slab_count(&p), 1);
  assert_int_equal(other.n, WEFT__STACK_CACHE_BATCH - 1);
  assert_int_equal(p.nfree, WEFT__STACK_SLAB - WEFT__STACK_CACHE_BATCH);
  weft__stack_pool_destroy(&p);
}

static void test_destroy_unmaps(void **state) {
  weft__stack_pool_t p;
  weft__stack_cache_t c = {NULL, 0};
  weft__stack_t *s[3 * WEFT__STACK_SLAB];
  char *lo[3 * WEFT__STACK_SLAB];
  size_t i;

  (void)state;
  /* One guarded slab, then unguarded ones. */
  assert_int_equal(weft__stack_pool_init(&p, STACK_SIZE, WEFT__STACK_SLAB), 0);
  for (i = 0; i < 3 * WEFT__STACK_SLAB; i++) {
    s[i] = weft__stack_alloc(&p, &c);
    assert_non_null(s[i]);
    lo[i] = s[i]->lo;
    lo[i][0] = 1;
  }
  assert_int_equal(slab_count(&p), 3);
  /* Destroy with stacks still out (a runtime frees everything at once). */
  weft__stack_pool_destroy(&p);
  for (i = 0; i < 3 * WEFT__STACK_SLAB; i++)
    if (!unmapped(lo[i]))
      fail_msg("stack %zu at %p still mapped after destroy", i, (void *)lo[i]);
}

/* ---- two threads, one pool -------------------------------------------- */

#define THREAD_ROUNDS HARNESS_SIZE(20000, 10000, 10000)
#define THREAD_MAX_HELD 200

static weft__stack_pool_t shared_pool;
static atomic_int trimmer_stop;

/* lo[0..7] holds the id of the thread that holds the stack, 0 when free
 * (fresh and trimmed pages read as 0). Plain accesses: the pool's mutex
 * orders the hand-over of a stack between threads. */
static void *stack_thread(void *arg) {
  uint64_t id = (uint64_t)(uintptr_t)arg, rng = id * 7919;
  weft__stack_cache_t c = {NULL, 0};
  weft__stack_t *held[THREAD_MAX_HELD];
  long round;
  size_t i;

  for (round = 0; round < THREAD_ROUNDS; round++) {
    size_t n = (size_t)harness_rand_range(&rng, 1, THREAD_MAX_HELD);
    for (i = 0; i < n; i++) {
      uint64_t *tag;
      held[i] = weft__stack_alloc(&shared_pool, &c);
      CHECK(held[i] != NULL);
      if (!held[i]) {
        n = i;
        break;
      }
      tag = (uint64_t *)(void *)held[i]->lo;
      CHECK_EQ(*tag, 0);
      CHECK_EQ(held[i]->trimmed, 0);
      *tag = id;
      held[i]->lo[held[i]->usable - 1] = (char)id;
    }
    /* Release in a shuffled order. */
    for (i = n; i > 1; i--) {
      size_t j = (size_t)harness_rand_range(&rng, 0, i - 1);
      weft__stack_t *t = held[i - 1];
      held[i - 1] = held[j];
      held[j] = t;
    }
    for (i = 0; i < n; i++) {
      uint64_t *tag = (uint64_t *)(void *)held[i]->lo;
      CHECK_EQ(*tag, id);
      CHECK_EQ(held[i]->lo[held[i]->usable - 1], (char)id);
      CHECK_EQ(held[i]->canary, WEFT__STACK_CANARY);
      *tag = 0;
      weft__stack_release(&shared_pool, &c, held[i]);
    }
  }
  weft__stack_cache_flush(&shared_pool, &c);
  return NULL;
}

/* An idle worker trimming the pool meanwhile. */
static void *trimmer(void *arg) {
  (void)arg;
  while (!atomic_load(&trimmer_stop)) {
    (void)weft__stack_trim(&shared_pool, 8);
    sched_yield();
  }
  return NULL;
}

static void test_threads(void **state) {
  pthread_t t[2], tr;
  size_t nslabs;

  (void)state;
  harness_reset();
  assert_int_equal(
      weft__stack_pool_init(&shared_pool, STACK_SIZE, 2 * WEFT__STACK_SLAB), 0);
  shared_pool.trim_hwm = 16;
  atomic_init(&trimmer_stop, 0);
  assert_int_equal(pthread_create(&tr, NULL, trimmer, NULL), 0);
  assert_int_equal(pthread_create(&t[0], NULL, stack_thread, (void *)1), 0);
  assert_int_equal(pthread_create(&t[1], NULL, stack_thread, (void *)2), 0);
  assert_int_equal(pthread_join(t[0], NULL), 0);
  assert_int_equal(pthread_join(t[1], NULL), 0);
  atomic_store(&trimmer_stop, 1);
  assert_int_equal(pthread_join(tr, NULL), 0);
  harness_assert_clean();
  /* Every stack ever carved is back in the pool. */
  nslabs = slab_count(&shared_pool);
  assert_true(nslabs >= 2);
  assert_int_equal(shared_pool.nfree, nslabs * WEFT__STACK_SLAB);
  weft__stack_pool_destroy(&shared_pool);
}

/* ---- no stack for a first run: the task ends with WEFT_ENOMEM ------------- */

static void *never_runs(void *arg) {
  atomic_fetch_add((atomic_int *)arg, 1);
  return NULL;
}

static weft_task_t *late_child;

/* Spawns a task that cannot get a stack, then finishes: its direct switch
 * to the new task (a first run set up on the finishing stack) fails and
 * hands the task to the run loop, which ends it with WEFT_ENOMEM. */
static void *spawn_then_finish(void *arg) {
  weft__stack_set_fail(1);
  CHECK_OK(weft_spawn(never_runs, arg, &late_child));
  return NULL;
}

static void *no_stack_main(void *arg) {
  atomic_int *ran = arg;
  weft_task_t *t, *a;
  void *r = &r;

  /* The loop gives the child its first run while main awaits it. */
  weft__stack_set_fail(1);
  CHECK_OK(weft_spawn(never_runs, ran, &t));
  CHECK_RC(weft_task_await(t, &r), WEFT_ENOMEM);
  CHECK(r == NULL);
  weft_task_unref(t);
  weft__stack_set_fail(0);

  /* A finishing task picks the first run. */
  CHECK_OK(weft_spawn(spawn_then_finish, ran, &a));
  CHECK_OK(weft_task_await(a, NULL));
  CHECK_RC(weft_task_await(late_child, NULL), WEFT_ENOMEM);
  weft__stack_set_fail(0);
  weft_task_unref(late_child);
  weft_task_unref(a);
  CHECK_EQ(atomic_load(ran), 0);

  /* With stacks again, tasks run. */
  CHECK_OK(weft_spawn(never_runs, ran, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_EQ(atomic_load(ran), 1);
  return NULL;
}

static void test_first_run_without_stack(void **state) {
  unsigned workers;

  (void)state;
  for (workers = 1; workers <= 2; workers++) {
    atomic_int ran;
    atomic_init(&ran, 0);
    run_in_weft(no_stack_main, &ran, workers);
    assert_int_equal(atomic_load(&ran), 1);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init),
      cmocka_unit_test(test_guarded_layout),
      cmocka_unit_test(test_guarded_layout_mprotect),
      cmocka_unit_test(test_unguarded_canary),
      cmocka_unit_test(test_guard_budget),
      cmocka_unit_test(test_lifo_reuse),
      cmocka_unit_test(test_batch_exchange),
      cmocka_unit_test(test_trim),
      cmocka_unit_test(test_flush),
      cmocka_unit_test(test_destroy_unmaps),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_first_run_without_stack),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
