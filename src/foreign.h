/*
 * Submissions from outside the runtime (foreign.c, protocol at its top).
 * The weft__foreign_t it keeps lives in the runtime struct
 * (sched/runtime.h).
 */
#ifndef WEFT_FOREIGN_INT_H
#define WEFT_FOREIGN_INT_H

#include "weft.h"

#include "record.h"

#include <stdint.h>

/* Submissions from outside (foreign.c). init: in weft_run, before main
 * exists; close: main finished (before `shutdown` is set), refuse new
 * submissions and cancel the submitted tasks; destroy: end of weft_run,
 * frees what is left and drops weft_run's reference (may free rt). A
 * submitted task's completion and release are its record kind's hooks
 * (foreign.c); the quiescence check (sched/worker.c) reads their count,
 * rt->foreign.spawned. */
void weft__foreign_init(weft_runtime_t *rt);
void weft__foreign_close(weft_runtime_t *rt);
void weft__foreign_destroy(weft_runtime_t *rt);
/* fn(t, arg) for every record of a submitted task not yet freed, under
 * foreign.mu (step 6 keeps them linked): the task dump's walk (dump.c),
 * which reads each under its own protocol. */
void weft__foreign_each(weft_runtime_t *rt, void (*fn)(weft_task_t *t,
                                                       void *arg),
                        void *arg);

#endif /* WEFT_FOREIGN_INT_H */
