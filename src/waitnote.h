/*
 * Wait descriptors (dump.c, protocol at its top): before it suspends, a
 * task notes what it waits on in its own record, with a few plain stores,
 * for task dumps to show. Every suspension point calls weft__wait_note()
 * before it links its waiter or enters its wait loop; wait.c notes the
 * deadline. A header of its own (not dump.c's) so that the features that
 * note need not depend on the dump, which walks them.
 */
#ifndef WEFT_WAITNOTE_H
#define WEFT_WAITNOTE_H

#include "weft.h"

#include "record.h"
#include "sched/worker.h"

/* t (the running task, the caller) is about to wait for `kind` on obj. */
static inline void weft__wait_note(weft_task_t *t, weft_wait_kind_t kind,
                                   const void *obj) {
  t->wait_kind = (uint8_t)kind;
  t->wait_obj = obj;
  t->wait_deadline_ms = 0; /* weft__wait_begin sets its own */
  /* t runs: t->worker is its worker; loop.time is that loop's cached
   * clock (uv_now without the call), good to a poll's staleness; its low
   * 32 bits (record.h). */
  t->wait_since_ms = (uint32_t)t->worker->own.loop.time;
}

/* t (the running task, the caller) is about to yield: only the kind and
 * the time, both on the record's first line, which the switch writes
 * anyway (record.h); a yield has no object and no deadline, and dumps
 * and tools/gdb ignore the stale ones (dump.c). weft__coop_tick stores the
 * same two fields itself. */
static inline void weft__wait_note_yield(weft_task_t *t) {
  t->wait_kind = (uint8_t)WEFT_WAIT_YIELD;
  t->wait_since_ms = (uint32_t)t->worker->own.loop.time;
}

/* The wait's own deadline (monotonic ns, WEFT__NO_DEADLINE for none) as
 * the record keeps it: the low 32 bits of the ms, 0 for none (a deadline
 * whose low bits are 0 is kept as 1: a millisecond early in a dump). */
static inline uint32_t weft__wait_note_deadline(uint64_t deadline) {
  if (deadline == WEFT__NO_DEADLINE)
    return 0;
  uint32_t ms = (uint32_t)(deadline / 1000000u);
  return ms ? ms : 1u;
}

#endif /* WEFT_WAITNOTE_H */
