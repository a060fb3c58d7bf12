/*
 * weft waiting on several tasks: asyncio.wait() and asyncio.as_completed().
 *
 * Neither cancels the tasks it waits for, neither on a timeout nor when the
 * waiting task is cancelled (as in asyncio): they only watch them. Both
 * take tasks that already run (spawn them first), and neither releases the
 * handles.
 */
#ifndef WEFT_WAITSET_H
#define WEFT_WAITSET_H

#include "common.h"
#include "task.h"

#include <stdint.h>

WEFT_BEGIN_DECLS

/* When weft_wait() returns (asyncio.FIRST_COMPLETED, FIRST_EXCEPTION,
 * ALL_COMPLETED). */
typedef enum weft_wait_how {
  /* As soon as one task has finished. */
  WEFT_FIRST_COMPLETED = 1,
  /* As soon as one task has failed (finished with a status other than 0 and
   * WEFT_ECANCELED: a cancelled task is no failure, as in asyncio), or when
   * all have finished. */
  WEFT_FIRST_EXCEPTION = 2,
  /* When all have finished. */
  WEFT_ALL_COMPLETED = 3
} weft_wait_how_t;

/* done, pending = await asyncio.wait(tasks, timeout=timeout_ms / 1000,
 * return_when=how): wait until the condition `how` holds or timeout_ms
 * milliseconds have passed (WEFT_NO_TIMEOUT: no timeout; 0: just look).
 * On return done[i] (if done is not NULL) is 1 for each task that has
 * finished and 0 for each still pending, and the number of finished tasks
 * is returned (it may be 0 after a timeout, which is no error: the tasks go
 * on running, as in asyncio). A task may appear more than once.
 *
 * Errors: WEFT_EINVAL (tasks NULL, n 0 (asyncio's ValueError on an empty
 * set), a NULL entry, `how` unknown), WEFT_ENOTTASK, WEFT_EDEADLK (the
 * caller is among the tasks), WEFT_ENOMEM, WEFT_ECANCELED (the caller was
 * cancelled while waiting; the tasks keep running; done[] is filled as on
 * success). Suspends unless the condition already holds. */
WEFT_EXTERN int weft_wait(weft_task_t *const *tasks, size_t n,
                          weft_wait_how_t how, uint64_t timeout_ms, int *done);

/* An asyncio.as_completed() iterator. Opaque: use the functions below. May
 * live on the stack of the task that iterates. */
typedef struct weft_as_completed {
  union {
    unsigned char bytes_[96];
    void *align_;
  } opaque_;
} weft_as_completed_t;

/* for t in asyncio.as_completed(tasks, timeout=timeout_ms / 1000): start
 * iterating over the n tasks in the order they finish. The iterator belongs
 * to the calling task, the only one that may call weft_as_completed_next()
 * on it; the timeout (WEFT_NO_TIMEOUT: none) runs from this call, as in
 * asyncio. The iterator keeps a reference to every task until destroyed.
 * Errors: WEFT_EINVAL (it NULL, tasks NULL with n > 0, a NULL entry),
 * WEFT_ENOTTASK, WEFT_EDEADLK (the caller is among the tasks), WEFT_ENOMEM.
 * n = 0 is allowed (the iteration is empty). Does not suspend. */
WEFT_EXTERN int weft_as_completed_init(weft_as_completed_t *it,
                                       weft_task_t *const *tasks, size_t n,
                                       uint64_t timeout_ms);

/* The next task to finish: wait until a task not yet returned has finished
 * and store it in *task (borrowed from the caller's array; await it, or
 * read its outcome with weft_task_result()). Tasks that finished between
 * two calls come out in the order of the array. Returns 0; WEFT_EOF once
 * every task has been returned (the end of the iteration); WEFT_ETIMEDOUT
 * when the timeout has passed and no unreturned task has finished, and at
 * every call after that (asyncio's TimeoutError; the tasks keep running);
 * WEFT_ECANCELED (the caller was cancelled; the iterator stays usable);
 * WEFT_EINVAL (it or task NULL); WEFT_EPERM (not the task that initialised
 * it); WEFT_ENOTTASK. Suspends unless a task has already finished. */
WEFT_EXTERN int weft_as_completed_next(weft_as_completed_t *it,
                                       weft_task_t **task);

/* Release the iterator (it may stop before the end). Returns 0 or
 * WEFT_EINVAL (it NULL). Does not suspend; call it from any task, never at
 * the same time as weft_as_completed_next(). The iterator watches the tasks
 * only while its owner is inside weft_as_completed_next(), so it may be
 * destroyed after its owner has ended (by another task). */
WEFT_EXTERN int weft_as_completed_destroy(weft_as_completed_t *it);

WEFT_END_DECLS

#endif /* WEFT_WAITSET_H */
