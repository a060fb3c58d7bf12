/* See migration_tu.h. */
#include "migration_tu.h"

#include <errno.h>

__attribute__((noinline)) pthread_t mig_thread_self(void) {
  return pthread_self();
}

__attribute__((noinline)) void mig_errno_set(int value) { errno = value; }
