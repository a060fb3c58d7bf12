/*
 * The library's one allocator (alloc.c): every heap allocation and free of
 * weft goes through these, so that weft_replace_allocator reaches all of
 * them and the allocation-failure sweep (tests/api/alloc_fail.c) can fail
 * each in turn. Task stacks are mmap'ed (stack.c) and libuv allocates its
 * own memory; neither goes through here.
 */
#ifndef WEFT_SRC_ALLOC_H
#define WEFT_SRC_ALLOC_H

#include <stddef.h>

void *weft__malloc(size_t size);
void *weft__calloc(size_t count, size_t size);
/* Like realloc, but size 0 is not allowed (its meaning differs between C
 * libraries); ptr NULL allocates. */
void *weft__realloc(void *ptr, size_t size);
void weft__free(void *ptr);
char *weft__strdup(const char *s);

/* The `_free` of an object that has a `_destroy` (the sync objects): with
 * destroy_rc the result of destroying obj, frees obj if it is 0 and
 * returns it (an object that could not be destroyed stays as it was). */
static inline int weft__free_destroyed(void *obj, int destroy_rc) {
  if (destroy_rc == 0)
    weft__free(obj);
  return destroy_rc;
}

/* A block of size bytes aligned to align (a power of two no larger than
 * 4096), carved from a weft__malloc'ed one; free it with
 * weft__aligned_free, never weft__free. */
void *weft__aligned_alloc(size_t align, size_t size);
void weft__aligned_free(void *ptr);

/* Runtime structs alive (runtime.c allocates, foreign.c frees):
 * weft_replace_allocator refuses while there is one. */
void weft__alloc_runtime_born(void);
void weft__alloc_runtime_gone(void);

#endif /* WEFT_SRC_ALLOC_H */
