/*
 * The home worker of I/O objects (docs/design.md §2.3): moving a task to the
 * worker whose loop owns a handle, waiting there for libuv callbacks, and
 * reaping what the program left open when the runtime shuts down.
 *
 * Protocol (every stream and server operation follows it):
 *  1. The operation calls weft__io_enter(t, home): t->route = home. If t
 *     runs on another worker it switches out as a yield; its worker queues
 *     it, and the worker that next dequeues it (its own or a thief) sees the
 *     route and pushes it to home's inbox (worker.c run()). The inbox push
 *     is the only cross-thread step, and it is ordered by the inbox's
 *     seq_cst CAS / acquire exchange, so everything t did before is visible
 *     on home.
 *  2. On home, t touches the object's state and calls libuv directly: the
 *     loop is not running while a task runs, and its callbacks only run in
 *     home's scheduler context (uv_run), so the state needs no lock: it is
 *     owner-only.
 *  3. To wait, t registers itself in the object (a weft__io_waiter_t on its
 *     stack, or the task pointer) and parks with its route still on home. A
 *     callback sets the waiter's flag and calls weft__task_wake(); whoever
 *     wakes t (a callback, a canceller on another worker, a thief) sends it
 *     back to home. The waker and the waiter share home's thread, so a flag
 *     set before the wake is seen when t resumes, and t unlinks its own
 *     waiter after a cancellation without racing anybody. A waker passes
 *     by a task with a cancellation pending (weft__io_task_cancelled): it
 *     unlinks its waiter from a list without setting the flag, and a
 *     reader gets no data (stream.c), so the wait returns WEFT_ECANCELED;
 *     once weft_task_cancel() has returned, nothing is handed to the task
 *     (wait.c, "Cancellation").
 *  4. weft__io_leave(t) restores t->route = t->pin. An unpinned task stays
 *     where it is (locality for the next operation); a pinned task is moved
 *     back to its pin before the call returns.
 *  5. Shutdown: objects are linked in home's io.objs while they exist. After
 *     every task has finished, worker_close (runtime.c) calls
 *     weft__io_worker_close() on home's thread; each object's reap closes
 *     its handles and frees its memory from their close callbacks, which
 *     run when worker_close runs the loop out.
 *  6. Objects belong to their home's runtime: a task of another runtime
 *     (another weft_run() in the same process) is refused with
 *     WEFT_EOTHER_RUNTIME before it moves (weft__io_check). A hop there would put
 *     the task into a worker inbox of the other runtime, whose quiescence
 *     count does not know it, and neither runtime could finish.
 */
#include "io/io.h"
#include "list.h"
#include "record.h"
#include "sched/worker.h"
#include "task_state.h"
#include "timer.h"
#include "wait_int.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

void weft__io_register(weft__io_obj_t *o, weft__worker_t *home,
                       weft__io_reap_fn reap) {
  o->home = home;
  o->reap = reap;
  weft__list_push_back(&home->io.objs, &o->link);
}

void weft__io_unregister(weft__io_obj_t *o) {
  if (weft__list_linked(&o->link))
    weft__list_remove(&o->link);
}

void weft__io_worker_close(weft__worker_t *w) {
  weft__list_t *n;
  while ((n = weft__list_pop_front(&w->io.objs))) {
    weft__io_obj_t *o = weft__container_of(n, weft__io_obj_t, link);
    o->reap(o);
  }
}

int weft__io_check(const weft_task_t *t, const weft__io_obj_t *o) {
  return o->home->own.rt == t->rt ? 0 : WEFT_EOTHER_RUNTIME;
}

void weft__io_hop(weft_task_t *t, weft__worker_t *to) {
  t->route = to;
  /* A yield re-queues t on this worker; run() then forwards it to `to`
   * (step 1). The loop guards against nothing but keeps the contract
   * obvious: we return only on `to`. */
  while (weft__worker_current() != to)
    weft__task_switch_out(t, WEFT__AFTER_YIELD);
}

void weft__io_enter(weft_task_t *t, weft__worker_t *home) {
  if (weft__worker_current() != home)
    weft__io_hop(t, home);
  else
    t->route = home;
}

void weft__io_leave(weft_task_t *t) {
  weft__worker_t *pin = t->pin;
  t->route = pin;
  if (pin && weft__worker_current() != pin)
    weft__io_hop(t, pin);
}

int weft__io_wait_flag(weft_task_t *t, const int *flag, int uncancellable) {
  /* The flag is written on this thread by a callback or a task that ran
   * while t was parked; the switch in weft__park is a compiler barrier.
   * The wait context honours the task's timeout scopes: a scope's timer is
   * armed on this (the home) worker, and the route stays home throughout. */
  weft__waitctx_t c;
  int rc = 0;
  weft__wait_begin(&c, t, WEFT__NO_DEADLINE);
  while (!*flag && (rc = weft__wait_poll(&c, uncancellable)) == 0)
    weft__park(t);
  weft__wait_end(&c);
  return rc;
}

int weft__io_wait_in(weft__list_t *list, weft_task_t *t) {
  weft__io_waiter_t w;
  w.task = t;
  w.fired = 0;
  weft__list_push_back(list, &w.link);
  int rc = weft__io_wait_flag(t, &w.fired, 0);
  if (weft__list_linked(&w.link)) /* cancelled or timed out, not passed by */
    weft__list_remove(&w.link);
  return rc;
}

int weft__io_task_cancelled(const weft_task_t *t) {
  return weft__state_cancel_pending(&t->state);
}

void weft__io_wake_all(weft__list_t *list) {
  weft__list_t *n;
  while ((n = weft__list_pop_front(list))) {
    weft__io_waiter_t *w = weft__container_of(n, weft__io_waiter_t, link);
    /* A cancelled waiter is only unlinked: its wait returns WEFT_ECANCELED
     * (the canceller woke it). */
    if (weft__io_task_cancelled(w->task))
      continue;
    w->fired = 1;
    weft__task_wake(w->task);
  }
}

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void sigpipe_ignore_once(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) != 0)
    return;
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}

void weft__io_ignore_sigpipe(void) {
  pthread_once(&sigpipe_once, sigpipe_ignore_once);
}
