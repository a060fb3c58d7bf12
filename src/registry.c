/* The registry of running runtimes: protocol in registry.h. */
#include "registry.h"

#include "sched/runtime.h"

weft__registry_t weft__registry = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .runtimes = {&weft__registry.runtimes, &weft__registry.runtimes},
    .count = 0,
};

void weft__registry_add(weft_runtime_t *rt) {
  pthread_mutex_lock(&weft__registry.mu);
  weft__list_push_back(&weft__registry.runtimes, &rt->reg_link);
  /* relaxed: a hint for readers that do not take mu; mu orders the rest. */
  atomic_fetch_add_explicit(&weft__registry.count, 1, memory_order_relaxed);
  pthread_mutex_unlock(&weft__registry.mu);
}

void weft__registry_remove(weft_runtime_t *rt) {
  pthread_mutex_lock(&weft__registry.mu);
  if (weft__list_linked(&rt->reg_link)) {
    weft__list_remove(&rt->reg_link);
    /* relaxed: as in weft__registry_add. */
    atomic_fetch_sub_explicit(&weft__registry.count, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&weft__registry.mu);
}
