/*
 * weft: replacing the allocator the library uses for its own memory
 * (libuv's uv_replace_allocator).
 */
#ifndef WEFT_ALLOC_H
#define WEFT_ALLOC_H

#include "common.h"

WEFT_BEGIN_DECLS

/* The C library's signatures; the functions are called from every worker
 * thread and from threads outside a runtime, so they must be thread-safe. */
typedef void *(*weft_malloc_func)(size_t size);
typedef void *(*weft_realloc_func)(void *ptr, size_t size);
typedef void *(*weft_calloc_func)(size_t count, size_t size);
typedef void (*weft_free_func)(void *ptr);

/* Make weft allocate and free all its heap memory (runtimes, task records,
 * queues, streams, futures, ...) with these functions instead of the C
 * library's. Task stacks are mapped with mmap and do not go through them;
 * nor does libuv's own memory (weft does not call uv_replace_allocator: call
 * it yourself to replace libuv's too). Aligned blocks are carved from
 * malloc'ed ones, so a replacement need only honour malloc's alignment.
 *
 * Call it before any other weft call, or while no weft runtime exists (none
 * running, no weft_runtime_t or weft_future_t handle still referenced) and no
 * object weft allocated with the previous functions is still alive (a lock,
 * queue, ... made outside a runtime): memory is always freed with the
 * functions installed at the time, which must be the ones that allocated it.
 * Returns 0, WEFT_EINVAL if any function is NULL (nothing changes), or
 * WEFT_EBUSY if a runtime exists (nothing changes). Not thread-safe against
 * concurrent weft calls, like libuv's. */
WEFT_EXTERN int weft_replace_allocator(weft_malloc_func malloc_func,
                                       weft_realloc_func realloc_func,
                                       weft_calloc_func calloc_func,
                                       weft_free_func free_func);

WEFT_END_DECLS

#endif /* WEFT_ALLOC_H */
