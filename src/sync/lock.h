/*
 * weft_lock internals shared with weft_cond (cond.c): acquisition on behalf
 * of a task, optionally uncancellable, and release by the owner.
 */
#ifndef WEFT_SYNC_LOCK_H
#define WEFT_SYNC_LOCK_H

#include "record.h"

/* 1 if task t holds l (exact for t == the calling task; see lock.c). */
int weft__lock_held_by(const weft_lock_t *l, weft_task_t *t);
/* Acquire l for self, the calling task. Returns 0, WEFT_EDEADLK (self holds
 * l), or WEFT_ECANCELED unless uncancellable. Suspends while l is held. */
int weft__lock_acquire(weft_lock_t *l, weft_task_t *self, int uncancellable);
/* Release l, which the calling task holds. Never suspends. */
void weft__lock_release(weft_lock_t *l);

#endif /* WEFT_SYNC_LOCK_H */
