/*
 * Waiting on several tasks at once: weft_wait() (asyncio.wait) and the
 * weft_as_completed iterator (asyncio.as_completed).
 *
 * Protocol (the wait.c handshake, one waiter per task):
 *  1. The waiting task links one join waiter per task, each waking itself
 *     (weft__task_join_link, task.c step 3): a task already complete links
 *     nothing, and one that completes later claims its waiter under its
 *     join-queue lock, wakes the waiting task, and stores fired = 2 last.
 *  2. The waiting task evaluates its condition by reading the tasks' state
 *     words (acquire of COMPLETE), then polls its wait context
 *     (weft__wait_begin/poll/end in wait.c: its own deadline, timeout
 *     scopes, cancellation) and parks. A completion between the check and
 *     the park only sets NOTIFIED (task_state.h), so no wake-up is lost;
 *     wakes for other reasons are spurious and the loop re-checks.
 *  3. Before returning, weft_wait() detaches every waiter still linked
 *     (weft__waiter_detach: unlinked under the lock, or, if a completer
 *     claimed it, waited for until fired == 2). Steps 1 to 3 for weft_wait
 *     are weft__tasks_wait (task.c), the skeleton it shares with
 *     weft_gather; only the condition differs. The iterator does the same
 *     within each weft_as_completed_next() that has to wait: its waiters
 *     (in its own allocation) are linked only while the owner is inside
 *     that call, so no completion ever wakes the owner once it has returned
 *     (it may have finished and its record been freed or reused, with the
 *     iterator still alive: destroying it before the owner ends is not
 *     required).
 * The tasks are only watched: nothing here cancels them, neither on a
 * timeout nor when the waiting task is cancelled (asyncio.wait,
 * as_completed).
 */
#include "waitnote.h"
#include "alloc.h"
#include "record.h"
#include "sched/worker.h"
#include "task_int.h"
#include "timer.h"
#include "wait_int.h"

#include <stdlib.h>
#include <string.h>

static int is_failure(const weft_task_t *t) {
  /* The caller saw t complete (acquire), so its status is final. */
  return t->status != 0 && t->status != WEFT_ECANCELED;
}

static uint64_t deadline_after(uint64_t timeout_ms) {
  if (timeout_ms == WEFT_NO_TIMEOUT)
    return WEFT__NO_DEADLINE;
  return weft__deadline_after_ms(timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* weft_wait                                                                 */

/* Whether `how` holds. *prefix counts the leading tasks known complete (and
 * not failed), which never need looking at again. */
static int satisfied(weft_task_t *const *tasks, size_t n, weft_wait_how_t how,
                     size_t *prefix) {
  size_t i;
  switch (how) {
  case WEFT_FIRST_COMPLETED:
    for (i = 0; i < n; i++)
      if (weft_task_done(tasks[i]) == 1)
        return 1;
    return 0;
  case WEFT_ALL_COMPLETED:
    while (*prefix < n && weft_task_done(tasks[*prefix]) == 1)
      ++*prefix;
    return *prefix == n;
  default: { /* WEFT_FIRST_EXCEPTION */
    while (*prefix < n && weft_task_done(tasks[*prefix]) == 1) {
      if (is_failure(tasks[*prefix]))
        return 1;
      ++*prefix;
    }
    int all = 1;
    for (i = *prefix; i < n; i++) {
      if (weft_task_done(tasks[i]) != 1)
        all = 0;
      else if (is_failure(tasks[i]))
        return 1;
    }
    return all;
  }
  }
}

typedef struct wait_cond {
  weft_task_t *const *tasks;
  size_t n;
  weft_wait_how_t how;
  size_t *prefix;
} wait_cond_t;

static int wait_ready(void *arg) {
  wait_cond_t *c = arg;
  return satisfied(c->tasks, c->n, c->how, c->prefix);
}

static int count_done(weft_task_t *const *tasks, size_t n, int *done) {
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    int d = weft_task_done(tasks[i]) == 1;
    if (done)
      done[i] = d;
    if (d && count < INT32_MAX)
      count++;
  }
  return count;
}

int weft_wait(weft_task_t *const *tasks, size_t n, weft_wait_how_t how,
              uint64_t timeout_ms, int *done) {
  if (!tasks || n == 0)
    return WEFT_EINVAL;
  if (how != WEFT_FIRST_COMPLETED && how != WEFT_FIRST_EXCEPTION &&
      how != WEFT_ALL_COMPLETED)
    return WEFT_EINVAL;
  weft_task_t *self;
  int err = weft__tasks_check(tasks, n, &self);
  if (err)
    return err;

  size_t prefix = 0;
  if (timeout_ms == 0 || satisfied(tasks, n, how, &prefix)) {
    weft__coop_tick();
    return count_done(tasks, n, done);
  }
  uint64_t deadline = deadline_after(timeout_ms);

  wait_cond_t cond = {tasks, n, how, &prefix};
  int rc = weft__tasks_wait(tasks, n, self, deadline, wait_ready, &cond);
  if (rc == WEFT_ENOMEM)
    return rc;
  int count = count_done(tasks, n, done);
  if (rc == WEFT_ETIMEDOUT)
    rc = 0; /* asyncio.wait: a timeout just returns what is done */
  return rc != 0 ? rc : count;
}

/* ------------------------------------------------------------------------ */
/* as_completed                                                              */

typedef struct as_completed {
  weft_task_t *owner;    /* the task that may call next() */
  size_t n;              /* tasks */
  size_t npend;          /* tasks not yet returned */
  uint64_t deadline;     /* monotonic ns, or WEFT__NO_DEADLINE */
  int timed_out;         /* next() returned WEFT_ETIMEDOUT: sticky */
  weft__waiter_t *wt;    /* n join waiters (one allocation with the rest) */
  weft_task_t **tasks;   /* n references, in the caller's order */
  size_t *pend;          /* npend indices not yet returned, in order */
  unsigned char *linked; /* wt[i] is on tasks[i]'s join queue (only while
                            the owner waits in next(): protocol step 3) */
} as_completed_t;

_Static_assert(sizeof(as_completed_t) <= sizeof(weft_as_completed_t),
               "weft_as_completed_t too small");
_Static_assert(_Alignof(as_completed_t) <= _Alignof(weft_as_completed_t),
               "weft_as_completed_t under-aligned");

static as_completed_t *ac_impl(weft_as_completed_t *it) {
  return (as_completed_t *)(void *)it;
}

int weft_as_completed_init(weft_as_completed_t *pit, weft_task_t *const *tasks,
                           size_t n, uint64_t timeout_ms) {
  if (!pit)
    return WEFT_EINVAL;
  weft_task_t *self;
  int err = weft__tasks_check(tasks, n, &self);
  if (err)
    return err;

  as_completed_t *it = ac_impl(pit);
  memset(it, 0, sizeof(*it));
  if (n > 0) {
    if (n > SIZE_MAX / (sizeof(weft__waiter_t) + sizeof(weft_task_t *) +
                        sizeof(size_t) + 1))
      return WEFT_ENOMEM;
    /* The waiters first: the strictest alignment. */
    char *mem = weft__malloc(n * (sizeof(weft__waiter_t) +
                                  sizeof(weft_task_t *) + sizeof(size_t) + 1));
    if (!mem)
      return WEFT_ENOMEM;
    it->wt = (weft__waiter_t *)(void *)mem;
    it->tasks = (weft_task_t **)(void *)(mem + n * sizeof(weft__waiter_t));
    it->pend = (size_t *)(void *)(it->tasks + n);
    it->linked = (unsigned char *)(it->pend + n);
  }
  it->owner = self;
  it->n = it->npend = n;
  it->deadline = deadline_after(timeout_ms);
  for (size_t i = 0; i < n; i++) {
    it->tasks[i] = weft_task_ref(tasks[i]);
    it->pend[i] = i;
    it->linked[i] = 0;
  }
  return 0;
}

/* Link a waiter on every task not yet returned (protocol step 3). */
static void link_pending(as_completed_t *it, weft_task_t *self) {
  for (size_t k = 0; k < it->npend; k++) {
    size_t i = it->pend[k];
    it->linked[i] =
        (unsigned char)weft__task_join_link(it->tasks[i], &it->wt[i], self);
  }
}

/* Detach them all again before next() returns. */
static void unlink_pending(as_completed_t *it) {
  for (size_t k = 0; k < it->npend; k++) {
    size_t i = it->pend[k];
    if (it->linked[i]) {
      weft__waiter_detach(&it->wt[i], &it->tasks[i]->joinq_lock);
      it->linked[i] = 0;
    }
  }
}

/* Position in pend of the first finished task, or npend. */
static size_t first_done(const as_completed_t *it) {
  size_t k;
  for (k = 0; k < it->npend; k++)
    if (weft_task_done(it->tasks[it->pend[k]]) == 1)
      break;
  return k;
}

int weft_as_completed_next(weft_as_completed_t *pit, weft_task_t **task) {
  if (!pit || !task)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
  as_completed_t *it = ac_impl(pit);
  if (it->owner != self)
    return WEFT_EPERM;
  if (it->npend == 0)
    return WEFT_EOF;
  if (it->timed_out)
    return WEFT_ETIMEDOUT;

  size_t k = first_done(it);
  if (k < it->npend) {
    weft__coop_tick();
  } else {
    int rc = 0;
    if (it->deadline != WEFT__NO_DEADLINE && weft__now_ns() >= it->deadline) {
      rc = WEFT_ETIMEDOUT;
    } else {
      link_pending(it, self);
      weft__waitctx_t c;
      weft__wait_note(self, WEFT_WAIT_TASKS, it->npend ? it->tasks[0] : NULL);
      weft__wait_begin(&c, self, it->deadline);
      while ((k = first_done(it)) == it->npend &&
             (rc = weft__wait_poll(&c, 0)) == 0)
        weft__park(self);
      weft__wait_end(&c);
      unlink_pending(it);
    }
    if (k == it->npend) { /* the loop stops with a task or an error */
      if (rc == WEFT_ETIMEDOUT)
        it->timed_out = 1;
      return rc;
    }
  }
  size_t i = it->pend[k];
  memmove(&it->pend[k], &it->pend[k + 1],
          (it->npend - k - 1) * sizeof(it->pend[0]));
  it->npend--;
  *task = it->tasks[i];
  return 0;
}

int weft_as_completed_destroy(weft_as_completed_t *pit) {
  if (!pit)
    return WEFT_EINVAL;
  as_completed_t *it = ac_impl(pit);
  /* No waiter is linked outside next() (protocol step 3). */
  for (size_t i = 0; i < it->n; i++)
    weft_task_unref(it->tasks[i]);
  weft__free(it->wt);
  memset(it, 0, sizeof(*it));
  return 0;
}
