/*
 * weft timeout scopes: asyncio.timeout() and asyncio.timeout_at().
 *
 *   weft_timeout_t scope;
 *   weft_timeout_enter(&scope, 500);     // async with asyncio.timeout(0.5):
 *   int rc = do_work();                  //     await do_work()
 *   rc = weft_timeout_exit(&scope, rc);  // WEFT_ETIMEDOUT if it expired
 *
 * A scope puts a deadline on every suspension point of the task inside it
 * (sleep, await, gather, queue and lock waits, stream I/O, yield). When the
 * deadline passes, the scope cancels the task exactly as weft_task_cancel()
 * would, so the current or next suspension point returns WEFT_ECANCELED and
 * the task unwinds through its ordinary error paths. weft_timeout_exit()
 * then withdraws that cancellation (weft_task_uncancel()) and turns the
 * WEFT_ECANCELED the body returned into WEFT_ETIMEDOUT, unless other
 * cancellations of the task are still pending, in which case WEFT_ECANCELED
 * stays (asyncio 3.11+ semantics). Scopes nest: an inner scope that expires
 * reports WEFT_ETIMEDOUT only to itself, and when several expire together
 * the outermost of them reports it while the inner ones pass the
 * cancellation on. A deadline is noticed at suspension points, so a task
 * that computes past its deadline without suspending is cancelled at its
 * next one; it is never interrupted in between.
 *
 * A weft_timeout_t belongs to the task that entered it, usually on that
 * task's stack. Scopes must be exited in the reverse order of entering, by
 * that task, before the function that holds them returns. Times are in
 * milliseconds on the clock of weft_time_ms().
 *
 * Life cycle (asyncio's Timeout states): entering makes the scope ENTERED;
 * its deadline makes it EXPIRED; weft_timeout_exit() ends it, after which
 * expired() and when() still read it. Entering a scope that the calling
 * task has entered and not exited fails with WEFT_EBUSY (asyncio: "Timeout
 * has already been entered"). Unlike an asyncio.Timeout object, the memory
 * of an exited scope may be entered again, which starts a new scope: C has
 * no constructor, so weft_timeout_enter() plays asyncio.timeout()'s part
 * and cannot tell a fresh weft_timeout_t from an exited one (the same local
 * in a loop's next iteration). Entering a scope another task has entered
 * and not exited is undefined behaviour.
 */
#ifndef WEFT_TIMEOUT_H
#define WEFT_TIMEOUT_H

#include "common.h"

#include <stdint.h>

WEFT_BEGIN_DECLS

/* A timeout scope. Opaque: use the functions below. */
typedef struct weft_timeout {
  uint64_t deadline_;           /* monotonic ns; UINT64_MAX = none */
  struct weft_timeout *outer_;  /* the enclosing scope of the task */
  void *task_;                  /* the task that entered it */
  int state_;                   /* entered / expired / exited */
  int cancelling_;              /* the task's cancellation count at entry */
} weft_timeout_t;

/* async with asyncio.timeout(delay_ms / 1000): enter `scope` with a deadline
 * delay_ms from now (WEFT_NO_TIMEOUT: none, until rescheduled). `scope`
 * need not be initialised. Returns 0, WEFT_EINVAL (scope NULL), WEFT_EBUSY
 * (the calling task has entered `scope` and not exited it: nothing is
 * changed), WEFT_ENOTTASK. Does not suspend. */
WEFT_EXTERN int weft_timeout_enter(weft_timeout_t *scope, uint64_t delay_ms);

/* async with asyncio.timeout_at(when): enter `scope` with the absolute
 * deadline when_ms on weft_time_ms()'s clock (a past one expires at the
 * next suspension point; WEFT_NO_TIMEOUT: none). Errors as
 * weft_timeout_enter(). */
WEFT_EXTERN int weft_timeout_enter_at(weft_timeout_t *scope, uint64_t when_ms);

/* Leave `scope`, the calling task's innermost one. rc is what the body
 * returned; the result is rc, or WEFT_ETIMEDOUT when the scope expired, rc
 * is WEFT_ECANCELED and no other cancellation of the task is pending (see
 * above). An expired scope always withdraws its own cancellation, even when
 * the body handled it and rc is something else. WEFT_EINVAL (scope NULL),
 * WEFT_ESTATE (not the calling task's innermost scope: nothing is
 * changed), WEFT_ENOTTASK. Does not suspend. */
WEFT_EXTERN int weft_timeout_exit(weft_timeout_t *scope, int rc);

/* timeout.reschedule(when): move the deadline of an entered scope that has
 * not expired to when_ms (weft_time_ms() clock; WEFT_NO_TIMEOUT: none).
 * Only the task that entered it may. Returns 0, WEFT_EINVAL (scope NULL),
 * WEFT_ESTATE (not entered, already expired or exited: asyncio's
 * RuntimeError), WEFT_EPERM (another task's scope), WEFT_ENOTTASK. */
WEFT_EXTERN int weft_timeout_reschedule(weft_timeout_t *scope,
                                        uint64_t when_ms);

/* timeout.expired(): 1 once the scope's deadline cancelled its task, else
 * 0; WEFT_EINVAL if scope is NULL. Callable from anywhere. */
WEFT_EXTERN int weft_timeout_expired(const weft_timeout_t *scope);

/* timeout.when(): the deadline in weft_time_ms() milliseconds, or
 * WEFT_NO_TIMEOUT (also for NULL). Callable from anywhere. */
WEFT_EXTERN uint64_t weft_timeout_when(const weft_timeout_t *scope);

WEFT_END_DECLS

#endif /* WEFT_TIMEOUT_H */
