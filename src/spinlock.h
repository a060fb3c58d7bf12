/*
 * A test-and-test-and-set spinlock for the short critical sections of wait
 * queues (a few pointer updates, never a suspension, never a system call).
 *
 * Protocol: lock = exchange(1, acquire) until it returns 0, spinning on a
 * relaxed load in between; unlock = store(0, release). After 64 failed spins
 * the thread calls sched_yield(), so a holder preempted by the kernel does not
 * make the waiters burn their whole time slice.
 */
#ifndef WEFT_SPINLOCK_H
#define WEFT_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>

typedef struct weft__spinlock {
  atomic_int locked; /* 1 while held */
} weft__spinlock_t;

#define WEFT__SPINLOCK_INIT {0}

static inline void weft__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ __volatile__("pause");
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static inline void weft__spin_lock(weft__spinlock_t *l) {
  unsigned spins = 0;
  /* acquire: the critical section's reads see the previous holder's writes. */
  while (atomic_exchange_explicit(&l->locked, 1, memory_order_acquire)) {
    /* relaxed: only a hint to retry the exchange, which does the ordering. */
    while (atomic_load_explicit(&l->locked, memory_order_relaxed)) {
      if (++spins < 64)
        weft__cpu_relax();
      else
        sched_yield();
    }
  }
}

static inline int weft__spin_trylock(weft__spinlock_t *l) {
  /* acquire: as in weft__spin_lock. */
  return !atomic_load_explicit(&l->locked, memory_order_relaxed) &&
         !atomic_exchange_explicit(&l->locked, 1, memory_order_acquire);
}

static inline void weft__spin_unlock(weft__spinlock_t *l) {
  /* release: publishes the critical section's writes to the next holder. */
  atomic_store_explicit(&l->locked, 0, memory_order_release);
}

#endif /* WEFT_SPINLOCK_H */
