/*
 * The registry of running runtimes (registry.c): every runtime between
 * the start of weft_run() and its end, in one process-wide list. It is the
 * root from which whatever looks at the whole process finds the tasks:
 * the task dump, the gdb extension (which reads `weft__registry` by name:
 * keep the name and the layout of weft__registry_t in step with
 * tools/gdb), the watchdog.
 *
 * Protocol: `mu` guards `runtimes` and every runtime's `reg_link`; a
 * runtime is linked by weft_run() once its workers are initialised and
 * unlinked once every worker has left its run loop, before its records,
 * stacks and worker array are freed, so a thread holding `mu` may read a
 * linked runtime's configuration and worker array (not what the workers do
 * with them: that is each reader's own protocol). `count` is
 * written under mu and read without it (relaxed) as a hint.
 */
#ifndef WEFT_REGISTRY_H
#define WEFT_REGISTRY_H

#include "list.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct weft_runtime weft_runtime_t;

typedef struct weft__registry {
  pthread_mutex_t mu;
  weft__list_t runtimes; /* weft_runtime_t.reg_link */
  atomic_uint count;     /* runtimes linked */
} weft__registry_t;

extern weft__registry_t weft__registry;

void weft__registry_add(weft_runtime_t *rt);
void weft__registry_remove(weft_runtime_t *rt);

#endif /* WEFT_REGISTRY_H */
