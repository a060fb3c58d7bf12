/*
 * Accessors of thread-local state for the migration test, compiled in their
 * own translation unit and never inlined, so that the test's -O2 code cannot
 * cache a thread-local address across a suspension and each call reads the
 * state of the thread it runs on at that instant.
 */
#ifndef WEFT_TESTS_MIGRATION_TU_H
#define WEFT_TESTS_MIGRATION_TU_H

#include <pthread.h>

/* pthread_self() of the calling thread. */
pthread_t mig_thread_self(void);

/* Set errno of the calling thread (garbage for weft's calls to ignore). */
void mig_errno_set(int value);

#endif /* WEFT_TESTS_MIGRATION_TU_H */
