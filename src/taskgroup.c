/*
 * weft_taskgroup: asyncio.TaskGroup.
 *
 * A group is a spinlock over: the entries of the children not yet reaped
 * (`children`), the entries of the failed children (`errors`), the number
 * of spawns in flight, a few flags, and a wait queue that holds at most the
 * owner's waiter. An entry (heap) carries the child's body and a join
 * waiter that the owner links when it waits for that child (4).
 *
 * Protocol.
 *  1. Spawn (any task). Under the lock the spawner checks that the group
 *     accepts tasks and counts itself in `pending`. It spawns the child with
 *     the trampoline child_main() and the entry as argument, and then,
 *     under the lock, moves
 *     the entry onto `children`, drops `pending` and claims the owner's
 *     waiter if it waits for spawns in flight (completed after unlocking:
 *     wait.c handshake). If the group started shutting down meanwhile, the
 *     spawner cancels the new child itself: the sweep (5) that set
 *     `aborting` could not see it.
 *  2. The child's body returns inside child_main(). If it failed (its own
 *     status, final once the body returned, is neither 0 nor WEFT_ECANCELED)
 *     it appends its entry to `errors` under the lock; if the group was not
 *     already shutting down it sets `aborting`, and `owner_cancelled` unless
 *     the owner already waits, in the same critical section; then it sweeps
 *     (5) and cancels the owner, so that the owner reaches the wait. These
 *     are its last accesses to the group and the entry, and they happen
 *     before it completes.
 *  2'. A child that ends without running its body (cancelled before its
 *     first run, or no stack could be had: WEFT_ENOMEM) runs the entry's
 *     discard (entry_discard) on its worker, outside any task, after its
 *     status is final and before it completes. A failure there is handled
 *     as in (2), at once, so that it shuts the group down like any other.
 *     If the spawner has not yet stored the child in the entry (1), the
 *     discard only marks the entry `unrun` under the lock, and the spawner,
 *     finding the mark when it stores the child, records the failure in
 *     the same critical section as the push onto `children` and does the
 *     rest after unlocking.
 *  3. The child completes (task.c). Its entry's join waiter is linked (with
 *     the owner as the task to wake, weft__task_join_link) only by the owner
 *     in (4), when it reaches that entry, so a child finishing while the
 *     owner still runs the group's body wakes nobody: a group of thousands
 *     of children costs its owner no wake-ups until it waits. (A first
 *     version linked every waiter at spawn, waking the owner once per
 *     finishing child wherever it was.)
 *  4. weft_taskgroup_wait() (the owner) reaps `children` in list order: it
 *     links the head entry's join waiter (a child already complete needs no
 *     wait: the link's acquire shows its status) and waits on it with
 *     weft__wait() (handshake,
 *     cancellation and timeout scopes are weft__wait's), then unlinks the
 *     entry (its failure, if any, was recorded by (2) or (2') before it
 *     completed, or with the push of its entry). With `children`
 *     empty but spawns in flight it waits on the group's wait queue (1 wakes
 *     it). With both empty it sets `closed` under the lock, after which no
 *     spawn can add a child: no task outlives its group. An entry is reaped
 *     only after its child completed, so after the child's last access (2).
 *  5. Sweep (cancel every child): with `aborting` already set, take a
 *     reference to every child on `children` under the lock, cancel them
 *     after unlocking, and drop the references (a child reaped meanwhile is
 *     not freed under the canceller). Children spawned after the sweep see
 *     `aborting` in (1).
 *  6. Cancellation of the owner. When a wait of (4) returns WEFT_ECANCELED,
 *     or the owner enters the wait with more cancellation requests than it
 *     had at init (the block was cancelled before the wait), the owner
 *     sweeps and waits on uncancellably. At the end it withdraws the group's
 *     own request of (2) with weft_task_uncancel(); what remains above the
 *     count at init, or a delivery the group did not cause, is a
 *     cancellation from outside (asyncio 3.13's TaskGroup.__aexit__).
 */
#include "waitnote.h"
#include "alloc.h"
#include "list.h"
#include "record.h"
#include "report.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "sync/waitq.h"
#include "task_int.h"
#include "task_state.h"
#include "timer.h"
#include "wait_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct group group_t;

typedef struct entry {
  weft__list_t link;  /* in children; guarded by the group's lock */
  weft__list_t elink; /* in errors once failed; guarded by the lock */
  weft__waiter_t jw;  /* on task's join queue, waking the owner */
  weft_task_t *task;  /* the child: the group's reference */
  group_t *g;         /* its group */
  weft_task_fn fn;    /* the child's body */
  void *arg;          /* its argument */
  void (*discard)(void *arg); /* the spawner's, for a child that never runs */
  int linked;         /* jw is (or was) linked: written by the spawner
                         before the entry is on children, then owner-only */
  int failed;         /* on errors; guarded by the lock */
  int unrun;          /* ended unrun before the spawner stored task (2');
                         guarded by the lock */
  int status;         /* the failure's status once failed */
} entry_t;

struct group {
  weft__spinlock_t lock; /* guards everything below but owner, baseline */
  int aborting;          /* shutting down: spawns refused, children swept */
  int owner_cancelled;   /* the group cancelled its owner (2) */
  int waiting;           /* the owner is inside weft_taskgroup_wait() */
  int closed;            /* the wait found no child left: nothing more */
  int result;            /* what the wait returned, once closed */
  int baseline;          /* the owner's cancellation count at init */
  weft_task_t *owner;    /* the owner (a reference); set at init */
  size_t nchildren;      /* entries on children */
  size_t pending;        /* spawns in flight (1) */
  size_t nerrors;        /* entries on errors */
  weft__list_t children; /* entry_t of children not yet reaped */
  weft__list_t errors;   /* entry_t of failed children, in order */
  weft__list_t waitq;    /* the owner's waiter while it waits for (1) */
};

_Static_assert(sizeof(group_t) <= sizeof(weft_taskgroup_t),
               "weft_taskgroup_t too small");
_Static_assert(_Alignof(group_t) <= _Alignof(weft_taskgroup_t),
               "weft_taskgroup_t under-aligned");

static group_t *impl(const weft_taskgroup_t *g) {
  return (group_t *)(uintptr_t)g;
}

static int is_failure(int status) {
  return status != 0 && status != WEFT_ECANCELED;
}

static int cancels_of(weft_task_t *t) {
  /* relaxed: compared by the task itself with its own earlier reading;
   * cancellers only add to it. */
  return atomic_load_explicit(&t->cancels, memory_order_relaxed);
}

/* Protocol step 5: cancel every child on `children` except `skip`. */
static void sweep(group_t *g, const entry_t *skip) {
  weft_task_t *local[32];
  weft_task_t **arr = local;
  size_t cap = 32, k = 0;
  weft__list_t *n;
  for (;;) {
    weft__spin_lock(&g->lock);
    if (g->nchildren <= cap)
      break;
    size_t need = g->nchildren;
    weft__spin_unlock(&g->lock);
    weft_task_t **bigger = weft__malloc(need * sizeof(*bigger));
    if (!bigger) {
      /* No memory for the references: cancel under the lock instead (a
       * wake under a spinlock is slower for the others, never wrong). */
      weft__spin_lock(&g->lock);
      for (n = g->children.next; n != &g->children; n = n->next) {
        entry_t *e = weft__container_of(n, entry_t, link);
        if (e != skip)
          weft_task_cancel(e->task);
      }
      weft__spin_unlock(&g->lock);
      if (arr != local)
        weft__free(arr);
      return;
    }
    if (arr != local)
      weft__free(arr);
    arr = bigger;
    cap = need;
  }
  for (n = g->children.next; n != &g->children; n = n->next) {
    entry_t *e = weft__container_of(n, entry_t, link);
    if (e != skip)
      arr[k++] = weft_task_ref(e->task);
  }
  weft__spin_unlock(&g->lock);
  for (size_t i = 0; i < k; i++) {
    weft_task_cancel(arr[i]);
    weft_task_unref(arr[i]);
  }
  if (arr != local)
    weft__free(arr);
}

/* Shut the group down without cancelling its owner; sweeps once. */
static void shut_down(group_t *g) {
  weft__spin_lock(&g->lock);
  int first = !g->aborting;
  g->aborting = 1;
  weft__spin_unlock(&g->lock);
  if (first)
    sweep(g, NULL);
}

/* Protocol step 2 (in the failed child) and 2', the part under the lock
 * (held): record e's failure.
 * Returns what failure_after() must do once the lock is released. */
enum { FAIL_SWEEP = 1, FAIL_CANCEL_OWNER = 2 };
static int failure_locked(group_t *g, entry_t *e, int status) {
  e->failed = 1;
  e->status = status;
  weft__list_push_back(&g->errors, &e->elink);
  g->nerrors++;
  int first = !g->aborting;
  int cancel_owner = first && !g->waiting;
  g->aborting = 1;
  if (cancel_owner)
    g->owner_cancelled = 1;
  return (first ? FAIL_SWEEP : 0) | (cancel_owner ? FAIL_CANCEL_OWNER : 0);
}

static void failure_after(group_t *g, const entry_t *e, int what) {
  if (what & FAIL_SWEEP)
    sweep(g, e);
  if (what & FAIL_CANCEL_OWNER)
    weft_task_cancel(g->owner);
}

static void on_failure(group_t *g, entry_t *e, int status) {
  weft__spin_lock(&g->lock);
  int what = failure_locked(g, e, status);
  weft__spin_unlock(&g->lock);
  failure_after(g, e, what);
}

/* A child that ends without running its body (weft_spawn_opts_t.discard,
 * on its worker, outside any task, before it completes): protocol step 2'.
 * The entry outlives the call, as the owner reaps it only after the child
 * completed. */
static void entry_discard(void *arg) {
  entry_t *e = arg;
  group_t *g = e->g;
  weft__spin_lock(&g->lock);
  weft_task_t *t = e->task;
  if (!t)
    e->unrun = 1; /* not stored yet: the spawner looks at its status */
  weft__spin_unlock(&g->lock);
  /* t's status is final: its worker wrote it before calling this. */
  if (t && is_failure(weft__task_status_read(t)))
    on_failure(g, e, t->status);
  if (e->discard)
    e->discard(e->arg);
}

static void *child_main(void *arg) {
  entry_t *e = arg;
  void *result = e->fn(e->arg);
  /* The task's own status: only the task writes it (weft_task_fail). */
  int status = weft__task_current()->status;
  if (is_failure(status))
    on_failure(e->g, e, status);
  return result;
}

int weft_taskgroup_init(weft_taskgroup_t *pg) {
  if (!pg)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return WEFT_ENOTTASK;
  group_t *g = impl(pg);
  memset(g, 0, sizeof(*g));
  atomic_init(&g->lock.locked, 0);
  weft__list_init(&g->children);
  weft__list_init(&g->errors);
  weft__list_init(&g->waitq);
  g->owner = weft_task_ref(self);
  g->baseline = cancels_of(self);
  return 0;
}

int weft_taskgroup_destroy(weft_taskgroup_t *pg) {
  if (!pg)
    return WEFT_EINVAL;
  group_t *g = impl(pg);
  weft__list_t *n;
  weft__spin_lock(&g->lock);
  int busy = g->waiting || g->pending;
  for (n = g->children.next; !busy && n != &g->children; n = n->next)
    busy = !weft_task_done(weft__container_of(n, entry_t, link)->task);
  if (busy) {
    weft__spin_unlock(&g->lock);
    return WEFT_EBUSY;
  }
  g->closed = 1;
  weft__spin_unlock(&g->lock);
  /* Every child has completed: no trampoline and no spawn touches the
   * group any more. */
  while ((n = weft__list_pop_front(&g->children))) {
    entry_t *e = weft__container_of(n, entry_t, link);
    if (e->linked)
      weft__waiter_detach(&e->jw, &e->task->joinq_lock);
    if (!e->failed) {
      weft_task_unref(e->task);
      weft__free(e);
    }
  }
  while ((n = weft__list_pop_front(&g->errors))) {
    entry_t *e = weft__container_of(n, entry_t, elink);
    weft_task_unref(e->task);
    weft__free(e);
  }
  g->nchildren = g->nerrors = 0;
  weft_task_unref(g->owner);
  g->owner = NULL;
  return 0;
}

int weft_taskgroup_new(weft_taskgroup_t **out) {
  if (!out)
    return WEFT_EINVAL;
  if (!weft__task_current())
    return WEFT_ENOTTASK;
  weft_taskgroup_t *g = weft__malloc(sizeof(*g));
  if (!g)
    return WEFT_ENOMEM;
  weft_taskgroup_init(g);
  *out = g;
  return 0;
}

int weft_taskgroup_free(weft_taskgroup_t *g) {
  if (!g)
    return 0;
  int rc = weft_taskgroup_destroy(g);
  if (rc == 0)
    weft__free(g);
  return rc;
}

int weft_taskgroup_spawn_ex(weft_taskgroup_t *pg, weft_task_fn fn, void *arg,
                            const weft_spawn_opts_t *opts, weft_task_t **out) {
  if (!pg || !fn)
    return WEFT_EINVAL;
  if (!weft__task_current())
    return WEFT_ENOTTASK;
  group_t *g = impl(pg);
  entry_t *e = weft__malloc(sizeof(*e));
  if (!e)
    return WEFT_ENOMEM;
  weft__spin_lock(&g->lock);
  if (g->aborting || g->closed) {
    weft__spin_unlock(&g->lock);
    weft__free(e);
    return WEFT_ETASKGROUP_SHUTDOWN;
  }
  g->pending++;
  weft__spin_unlock(&g->lock);

  e->g = g;
  e->fn = fn;
  e->arg = arg;
  e->failed = 0;
  e->status = 0;
  e->linked = 0;
  e->unrun = 0;
  e->task = NULL;
  e->discard = opts ? opts->discard : NULL;
  weft_spawn_opts_t o;
  if (opts)
    o = *opts;
  else
    weft_spawn_opts_init(&o);
  /* The record's argument is the entry: its discard (step 2') hands the
   * spawner's discard the spawner's own argument. */
  o.discard = entry_discard;
  weft_task_t *t = NULL;
  int rc = weft_spawn_ex(child_main, e, &o, &t);
  if (rc == 0 && out)
    *out = weft_task_ref(t);

  weft_task_t *cancel = NULL;
  weft__list_t claimed;
  int unrun_failed = 0;
  weft__list_init(&claimed);
  weft__spin_lock(&g->lock);
  g->pending--;
  if (rc == 0) {
    e->task = t; /* under the lock: a failed child may be on errors */
    weft__list_push_back(&g->children, &e->link);
    g->nchildren++;
    if (g->aborting)
      cancel = weft_task_ref(t);
    /* Step 2': it ended unrun before this store (the discard saw no task;
     * its status was written before the discard took the lock). In the
     * same critical section as the push, so the owner never reaps it
     * unfailed. */
    if (e->unrun && is_failure(weft__task_status_read(t)))
      unrun_failed = failure_locked(g, e, t->status);
  }
  weft__waitq_claim_n(&g->waitq, &claimed, 1, NULL);
  weft__spin_unlock(&g->lock);
  weft__waitq_complete_all(&claimed);
  if (cancel) {
    weft_task_cancel(cancel);
    weft_task_unref(cancel);
  }
  failure_after(g, e, unrun_failed);
  if (rc != 0)
    weft__free(e);
  return rc;
}

int weft_taskgroup_spawn(weft_taskgroup_t *g, weft_task_fn fn, void *arg,
                         weft_task_t **out) {
  return weft_taskgroup_spawn_ex(g, fn, arg, NULL, out);
}

/* Reap the head entry of `children`, whose child has completed (so its
 * failure, if any, was recorded: step 2 or 2' happen before it completes,
 * or with the push of its entry). */
static void reap(group_t *g, entry_t *e) {
  weft__spin_lock(&g->lock);
  weft__list_remove(&e->link);
  g->nchildren--;
  int keep = e->failed;
  weft__spin_unlock(&g->lock);
  if (!keep) {
    weft_task_unref(e->task);
    weft__free(e);
  }
}

int weft_taskgroup_wait(weft_taskgroup_t *pg) {
  if (!pg)
    return WEFT_EINVAL;
  weft_task_t *self = weft__task_current();
  if (!self)
    return weft__report_misuse(NULL, "weft_taskgroup_wait", WEFT_ENOTTASK,
                               "called outside a task");
  group_t *g = impl(pg);
  if (g->owner != self)
    return WEFT_EPERM;

  weft__spin_lock(&g->lock);
  if (g->closed) {
    int rc = g->result;
    weft__spin_unlock(&g->lock);
    return rc;
  }
  g->waiting = 1;
  /* Cancelled since init (step 6): the block is being cancelled. */
  int cancelled_before = !g->aborting && cancels_of(self) > g->baseline;
  weft__spin_unlock(&g->lock);
  if (cancelled_before)
    shut_down(g);

  int uncancellable = cancelled_before;
  int consumed = 0; /* a cancellation delivered to this wait */
  for (;;) {
    weft__spin_lock(&g->lock);
    if (weft__list_empty(&g->children)) {
      if (g->pending == 0) {
        g->closed = 1;
        weft__spin_unlock(&g->lock);
        break;
      }
      weft__waiter_t gw;
      weft__waiter_prepare(&gw, self, NULL);
      gw.cancellable = !uncancellable;
      weft__list_push_back(&g->waitq, &gw.link);
      weft__spin_unlock(&g->lock);
      weft__wait_note(self, WEFT_WAIT_TASKGROUP, g);
      if (weft__wait(&gw, &g->lock, WEFT__NO_DEADLINE, uncancellable) != 0) {
        consumed = uncancellable = 1;
        shut_down(g);
      }
      continue;
    }
    entry_t *e = weft__container_of(g->children.next, entry_t, link);
    weft__spin_unlock(&g->lock);
    if (!e->linked) /* step 3: linked only now, by the waiting owner */
      e->linked = weft__task_join_link(e->task, &e->jw, self);
    weft__wait_note(self, WEFT_WAIT_TASKGROUP, g);
    if (e->linked && weft__wait(&e->jw, &e->task->joinq_lock, WEFT__NO_DEADLINE,
                                uncancellable) != 0) {
      /* Detached by weft__wait: link again, and wait on uncancellably. */
      e->linked = weft__task_join_link(e->task, &e->jw, self);
      consumed = uncancellable = 1;
      shut_down(g);
      continue;
    }
    reap(g, e);
  }

  /* Every child has completed, so every request of step 2 was posted. */
  weft__spin_lock(&g->lock);
  int own = g->owner_cancelled;
  int rc = g->nerrors > 0
               ? weft__container_of(g->errors.next, entry_t, elink)->status
               : 0;
  weft__spin_unlock(&g->lock);
  if (own)
    weft_task_uncancel();
  int outside = cancels_of(self) > g->baseline || (consumed && !own);
  if (rc == 0 && outside)
    rc = WEFT_ECANCELED;
  if (rc == WEFT_ECANCELED)
    weft__state_take_cancel(&self->state); /* this return delivers it */
  else if (outside && consumed)
    weft__cancel_restore(self); /* a failure won: deliver it next time */
  weft__spin_lock(&g->lock);
  g->result = rc;
  g->waiting = 0;
  weft__spin_unlock(&g->lock);
  return rc;
}

int weft_taskgroup_cancel(weft_taskgroup_t *pg) {
  if (!pg)
    return WEFT_EINVAL;
  shut_down(impl(pg));
  return 0;
}

int weft_taskgroup_error_count(const weft_taskgroup_t *pg) {
  if (!pg)
    return WEFT_EINVAL;
  group_t *g = impl(pg);
  weft__spin_lock(&g->lock);
  size_t n = g->nerrors;
  weft__spin_unlock(&g->lock);
  return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

int weft_taskgroup_error(const weft_taskgroup_t *pg, size_t idx,
                         weft_task_t **task, int *status) {
  if (!pg)
    return WEFT_EINVAL;
  group_t *g = impl(pg);
  weft__spin_lock(&g->lock);
  if (idx >= g->nerrors) {
    weft__spin_unlock(&g->lock);
    return WEFT_EINVAL;
  }
  weft__list_t *n = g->errors.next;
  while (idx--)
    n = n->next;
  entry_t *e = weft__container_of(n, entry_t, elink);
  if (task)
    *task = e->task;
  if (status)
    *status = e->status;
  weft__spin_unlock(&g->lock);
  return 0;
}
