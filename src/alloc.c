/*
 * The library's allocator (alloc.h) and weft_replace_allocator.
 *
 * Protocol: the four function pointers are plain globals, written only by
 * weft_replace_allocator while no runtime exists (the caller guarantees that
 * no other weft call runs concurrently, as with libuv's
 * uv_replace_allocator), and read by every thread afterwards. A thread that
 * reads them is a worker started by weft_run, or a thread the program
 * started or synchronised with after the replacement, so thread creation or
 * the program's own synchronisation orders the write before the reads.
 * `runtimes` counts runtime structs alive; it is atomic because the last
 * weft_runtime_unref may run on any thread.
 */
#include "alloc.h"

#include "weft/alloc.h"
#include "weft/error.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static weft_malloc_func g_malloc = malloc;
static weft_realloc_func g_realloc = realloc;
static weft_calloc_func g_calloc = calloc;
static weft_free_func g_free = free;

static atomic_uint runtimes;

void weft__alloc_runtime_born(void) {
  /* relaxed: a count; replacement is ordered by the caller (see above). */
  atomic_fetch_add_explicit(&runtimes, 1, memory_order_relaxed);
}

void weft__alloc_runtime_gone(void) {
  /* relaxed: as above. */
  atomic_fetch_sub_explicit(&runtimes, 1, memory_order_relaxed);
}

int weft_replace_allocator(weft_malloc_func malloc_func,
                           weft_realloc_func realloc_func,
                           weft_calloc_func calloc_func,
                           weft_free_func free_func) {
  if (!malloc_func || !realloc_func || !calloc_func || !free_func)
    return WEFT_EINVAL;
  /* relaxed: as above. */
  if (atomic_load_explicit(&runtimes, memory_order_relaxed) != 0)
    return WEFT_EBUSY;
  g_malloc = malloc_func;
  g_realloc = realloc_func;
  g_calloc = calloc_func;
  g_free = free_func;
  return 0;
}

void *weft__malloc(size_t size) { return g_malloc(size); }

void *weft__calloc(size_t count, size_t size) { return g_calloc(count, size); }

void *weft__realloc(void *ptr, size_t size) { return g_realloc(ptr, size); }

void weft__free(void *ptr) {
  if (ptr)
    g_free(ptr);
}

char *weft__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = weft__malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* The block returned is preceded by the pointer weft__malloc returned: at
 * least sizeof(void *) bytes and up to align - 1 more of slack come first. */
void *weft__aligned_alloc(size_t align, size_t size) {
  if (align < sizeof(void *))
    align = sizeof(void *);
  size_t extra = align - 1 + sizeof(void *);
  if (size > SIZE_MAX - extra)
    return NULL;
  char *raw = weft__malloc(size + extra);
  if (!raw)
    return NULL;
  uintptr_t p =
      ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
  ((void **)p)[-1] = raw;
  return (void *)p;
}

void weft__aligned_free(void *ptr) {
  if (ptr)
    weft__free(((void **)ptr)[-1]);
}
