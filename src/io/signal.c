/*
 * Signals (weft/signal.h): watchers a task waits on, handlers run as tasks,
 * and weft_run()'s SIGINT that cancels the main task (runtime.c).
 *
 * Watchers and handlers. Worker 0 is the home (io/home.c protocol) of one
 * `signals_t` per runtime, created by the first call that needs it: the
 * libuv signal handles (one per signal number, on worker 0's loop), the
 * watchers and the handler table. All of it is owner-only state of worker
 * 0: tasks touch it after weft__io_enter(t, worker 0), libuv callbacks run
 * in worker 0's scheduler, never at the same time, so no lock guards it.
 *  1. A signal number's handle is started while it has users (the watchers
 *     listing it, plus one for a handler) and stopped when the last goes:
 *     libuv installs its process-wide handler at the first start in the
 *     process and sets SIG_DFL back after the last stop. Shutdown (step 5)
 *     closes the handles that remain.
 *  2. libuv's handler (signal context) writes the number to worker 0's
 *     signal pipe; on_signal runs when worker 0 runs its loop: when it
 *     parks (the pipe wakes it), and on a busy worker at its fairness poll,
 *     at least every WEFT__FAIR_TICKS resumptions (sched/worker.c). It
 *     counts the delivery in every watcher listing the number and wakes
 *     their waiting tasks, and counts it for the number's handler.
 *  3. A waiting task takes a delivery from the counts only when it runs (on
 *     worker 0), before it polls for a timeout or cancellation: a delivery
 *     that comes after the wait gave up stays counted for the next wait,
 *     and one that came before is returned even if a cancellation came
 *     too (its request stays pending). Nothing is handed to a task that
 *     might not take it, so nothing can be lost. `nwait` counts the tasks
 *     inside weft_signal_wait(), so that a watcher is never freed under one.
 *  4. Handlers run in tasks. The dispatcher, a task pinned to worker 0 and
 *     spawned with the first handler (only a task can spawn), is kicked by
 *     on_signal and spawns one task per counted delivery of a signal that
 *     still has a handler, with the handler's function, argument and the
 *     task-local value of the task that installed it.
 *  5. Shutdown: the dispatcher's wait returns WEFT_ECANCELED and it exits;
 *     handler tasks are cancelled like every task. After every task has
 *     finished, signals_reap (worker_close, runtime.c) frees the watchers
 *     and closes the handles; the struct is freed by the last close
 *     callback.
 *
 * SIGINT for weft_run (cfg.sigint_cancels_main). The handler is weft's own
 * (libuv's cannot act on a second SIGINT while worker 0 is busy), installed
 * only when SIGINT has its default disposition, for one runtime of the
 * process at a time: `sigint_cur`, under `sigint_mu`.
 *  6. The handler (signal context: only atomics, uv_async_send, sigaction
 *     and raise, all async-signal-safe) counts the SIGINT; the first one,
 *     while main has not completed, is sent to worker 0 through an async
 *     handle, whose callback cancels main. Any other one sets SIG_DFL and
 *     raises SIGINT again: blocked while the handler runs, it is delivered
 *     on return, with the default action (asyncio.Runner raises
 *     KeyboardInterrupt).
 *  7. weft_signal_* refuse SIGINT while `sigint_cur` is set (WEFT_EBUSY),
 *     and start their handle under `sigint_mu`: libuv's handler is then in
 *     place before a weft_run() could look at the disposition.
 *  8. Uninstall (weft_run, after every worker left its loop, before worker
 *     0 closes its handles): the disposition is restored if it is still
 *     ours, sigint_cur is cleared, then the uninstaller waits until no
 *     handler is running (`sigint_inflight`, seq_cst on both sides: a
 *     handler that saw sigint_cur set has its increment ordered before the
 *     clearing, so the wait sees it), so no uv_async_send can reach the
 *     async handle after it is closed.
 */
#include "waitnote.h"
#include "alloc.h"
#include "compiler.h"
#include "io/io.h"
#include "list.h"
#include "record.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "spinlock.h"
#include "task_state.h"
#include "timer.h"
#include "wait_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

/* Signal numbers 1..SIG_MAX (Linux has 64). */
#define SIG_MAX 64

/* One signal number's handler. */
typedef struct handler {
  weft_signal_fn fn; /* NULL: none */
  void *arg;         /* fn's argument */
  void *local;       /* task-local value of the task that installed it */
  uint64_t pending;  /* deliveries the dispatcher has not spawned yet */
} handler_t;

/* A runtime's signal state, owner-only on worker 0 (protocol above). */
typedef struct weft__signals {
  weft__io_obj_t obj;                /* on worker 0's io.objs (shutdown) */
  uv_signal_t h[SIG_MAX + 1];        /* signal i's handle, if inited[i] */
  unsigned char inited[SIG_MAX + 1]; /* h[i] was initialised */
  unsigned users[SIG_MAX + 1];       /* step 1: the handle runs while > 0 */
  weft__list_t watchers;             /* weft_signal_t, via link */
  handler_t handlers[SIG_MAX + 1];   /* signal i's handler */
  int dispatcher_live;               /* the dispatcher task exists */
  weft_task_t *dispatcher;           /* the dispatcher while it waits */
  int kick;                          /* set to wake the dispatcher */
  unsigned closing;                  /* close callbacks still due (reap) */
} signals_t;

struct weft_signal {
  weft__list_t link;             /* in signals_t.watchers */
  signals_t *g;                  /* set once, read anywhere */
  uint64_t mask;                 /* bit i - 1: watching signal i */
  uint64_t pending[SIG_MAX + 1]; /* deliveries not taken, per signal */
  uint64_t total;                /* their sum */
  weft__list_t waiters;          /* weft__io_waiter_t of waiting tasks */
  unsigned nwait;                /* tasks inside weft_signal_wait */
};

/* ------------------------------------------------------------------------ */
/* weft_run's SIGINT                                                         */

struct weft__sigint {
  uv_async_t async; /* on worker 0's loop: the handler's wake */
  weft_runtime_t *rt;
  atomic_uint count;     /* SIGINTs caught by the handler */
  int installed;         /* the handler is ours (weft_run's thread) */
  int delivered;         /* worker 0 cancelled main for one (its thread) */
  struct sigaction prev; /* the disposition replaced (SIG_DFL) */
};

static pthread_mutex_t sigint_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct weft__sigint *) sigint_cur; /* owner of SIGINT */
static atomic_int sigint_inflight; /* handlers running (step 8) */

static void sigint_default_now(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  raise(SIGINT); /* blocked until the handler returns, then default */
}

static void on_sigint(int sig) {
  (void)sig;
  int saved = errno;
  /* seq_cst: ordered before the load of sigint_cur (step 8). */
  atomic_fetch_add_explicit(&sigint_inflight, 1, memory_order_seq_cst);
  /* seq_cst: the other half of step 8's Dekker pair. */
  struct weft__sigint *s =
      atomic_load_explicit(&sigint_cur, memory_order_seq_cst);
  int forward = 1;
  if (s) {
    /* relaxed: a count only this handler reads. */
    unsigned n = atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    /* relaxed: a hint; the async callback re-checks on worker 0. */
    if (n == 0 &&
        !(atomic_load_explicit(&s->rt->main->state, memory_order_relaxed) &
          WEFT__ST_COMPLETE)) {
      uv_async_send(&s->async); /* async-signal-safe (libuv documents it) */
      forward = 0;
    }
  }
  if (forward)
    sigint_default_now();
  /* release: the uninstaller's load that sees 0 sees the handler done. */
  atomic_fetch_sub_explicit(&sigint_inflight, 1, memory_order_release);
  errno = saved;
}

static void on_sigint_async(uv_async_t *h) {
  struct weft__sigint *s = h->data;
  weft_task_t *m = s->rt->main;
  /* acquire: pairs with publish's release of COMPLETE. */
  if (s->delivered || (atomic_load_explicit(&m->state, memory_order_acquire) &
                       WEFT__ST_COMPLETE))
    return;
  s->delivered = 1;
  weft__task_cancel_unguarded(m, 1); /* on worker 0: a worker of main's */
}

int weft__sigint_install(weft_runtime_t *rt) {
  if (!rt->cfg.sigint_cancels_main)
    return 0;
  struct weft__sigint *s = weft__malloc(sizeof(*s));
  if (!s)
    return WEFT_ENOMEM;
  memset(s, 0, sizeof(*s));
  s->rt = rt;
  int rc = uv_async_init(&rt->workers[0].own.loop, &s->async, on_sigint_async);
  if (rc) {
    weft__free(s);
    return rc;
  }
  s->async.data = s;
  rt->sigint = s;
  pthread_mutex_lock(&sigint_mu);
  struct sigaction cur;
  /* relaxed: written under sigint_mu, which we hold. */
  if (!atomic_load_explicit(&sigint_cur, memory_order_relaxed) &&
      sigaction(SIGINT, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
      cur.sa_handler == SIG_DFL) {
    /* seq_cst: published before the handler can run (step 8's pair). */
    atomic_store_explicit(&sigint_cur, s, memory_order_seq_cst);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &s->prev) == 0)
      s->installed = 1;
    else /* seq_cst: as above */
      atomic_store_explicit(&sigint_cur, NULL, memory_order_seq_cst);
  }
  pthread_mutex_unlock(&sigint_mu);
  return 0;
}

static void sigint_close_cb(uv_handle_t *h) { (void)h; }

void weft__sigint_uninstall(weft_runtime_t *rt) {
  struct weft__sigint *s = rt->sigint;
  if (!s)
    return;
  if (s->installed) {
    pthread_mutex_lock(&sigint_mu);
    struct sigaction cur;
    if (sigaction(SIGINT, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
        cur.sa_handler == on_sigint)
      sigaction(SIGINT, &s->prev, NULL);
    /* seq_cst: step 8, before the in-flight check below. */
    atomic_store_explicit(&sigint_cur, NULL, memory_order_seq_cst);
    pthread_mutex_unlock(&sigint_mu);
    /* seq_cst: step 8's pair of the handler's increment. */
    while (atomic_load_explicit(&sigint_inflight, memory_order_seq_cst))
      weft__cpu_relax();
    s->installed = 0;
  }
  uv_close((uv_handle_t *)&s->async, sigint_close_cb);
}

int weft__sigint_finish(weft_runtime_t *rt, int status) {
  struct weft__sigint *s = rt->sigint;
  if (!s)
    return status;
  /* asyncio.Runner: KeyboardInterrupt when main ended cancelled and the
   * SIGINT's was its only request (uncancel() == 0). relaxed: main
   * finished and every worker has been joined since. */
  if (status == WEFT_ECANCELED && s->delivered &&
      atomic_load_explicit(&rt->main->cancels, memory_order_relaxed) == 1)
    status = WEFT_EINTR;
  /* A loop left behind (io/offload.c step 6) still holds the closed
   * handle: its memory stays with it. */
  if (!rt->workers[0].own.loop_abandoned)
    weft__free(s);
  rt->sigint = NULL;
  return status;
}

/* ------------------------------------------------------------------------ */
/* Signal numbers and handles                                                */

static int sig_check(int sig) {
  if (sig < 1 || sig > SIG_MAX || sig >= NSIG)
    return WEFT_EINVAL;
  switch (sig) {
  case SIGKILL: /* cannot be caught */
  case SIGSTOP:
  case SIGSEGV: /* synchronous faults; SIGSEGV reports stack overflows */
  case SIGBUS:
  case SIGFPE:
  case SIGILL:
  case SIGPIPE: /* ignored, so that writes fail with EPIPE (io/home.c) */
    return WEFT_EINVAL;
  default:
    break;
  }
  /* The C library's own real-time signals, below SIGRTMIN. */
  if (sig > 31 && sig < SIGRTMIN)
    return WEFT_EINVAL;
  return 0;
}

static void on_signal(uv_signal_t *h, int sig);

/* Step 1: one more user of sig's handle; starts it for the first. */
static int sig_ref(signals_t *g, int sig) {
  if (g->users[sig] > 0) {
    g->users[sig]++;
    return 0;
  }
  if (!g->inited[sig]) {
    int rc = uv_signal_init(&g->obj.home->own.loop, &g->h[sig]);
    if (rc)
      return rc;
    g->h[sig].data = g;
    g->inited[sig] = 1;
  }
  int rc;
  if (sig == SIGINT) {
    /* Step 7. */
    pthread_mutex_lock(&sigint_mu);
    /* relaxed: written under sigint_mu, which we hold. */
    rc = atomic_load_explicit(&sigint_cur, memory_order_relaxed)
             ? WEFT_EBUSY
             : uv_signal_start(&g->h[sig], on_signal, sig);
    pthread_mutex_unlock(&sigint_mu);
  } else {
    rc = uv_signal_start(&g->h[sig], on_signal, sig);
  }
  if (rc == 0)
    g->users[sig] = 1;
  return rc;
}

static void sig_unref(signals_t *g, int sig) {
  if (--g->users[sig] == 0)
    uv_signal_stop(&g->h[sig]);
}

static void kick_dispatcher(signals_t *g) {
  g->kick = 1;
  if (g->dispatcher)
    weft__task_wake(g->dispatcher);
}

/* Step 2, in worker 0's scheduler. */
static void on_signal(uv_signal_t *h, int sig) {
  signals_t *g = h->data;
  if (sig < 1 || sig > SIG_MAX)
    return;
  uint64_t bit = (uint64_t)1 << (sig - 1);
  for (weft__list_t *n = g->watchers.next; n != &g->watchers; n = n->next) {
    weft_signal_t *s = weft__container_of(n, weft_signal_t, link);
    if (!(s->mask & bit))
      continue;
    s->pending[sig]++;
    s->total++;
    weft__io_wake_all(&s->waiters);
  }
  handler_t *hd = &g->handlers[sig];
  if (hd->fn) {
    hd->pending++;
    kick_dispatcher(g);
  }
}

static void signals_close_cb(uv_handle_t *h) {
  signals_t *g = h->data;
  if (--g->closing == 0)
    weft__free(g);
}

/* Step 5: every task has finished; on worker 0. */
static void signals_reap(weft__io_obj_t *o) {
  signals_t *g = weft__container_of(o, signals_t, obj);
  weft__list_t *n;
  while ((n = weft__list_pop_front(&g->watchers)))
    weft__free(weft__container_of(n, weft_signal_t, link));
  g->obj.home->io.sig = NULL;
  g->closing = 1; /* held until every close is requested */
  for (int i = 1; i <= SIG_MAX; i++) {
    if (g->inited[i]) {
      g->closing++;
      uv_close((uv_handle_t *)&g->h[i], signals_close_cb);
    }
  }
  if (--g->closing == 0)
    weft__free(g);
}

/* The runtime's signal state; on worker 0. NULL without memory. */
static signals_t *signals_get(weft__worker_t *w0) {
  signals_t *g = w0->io.sig;
  if (g)
    return g;
  g = weft__malloc(sizeof(*g));
  if (!g)
    return NULL;
  memset(g, 0, sizeof(*g));
  weft__list_init(&g->watchers);
  weft__io_register(&g->obj, w0, signals_reap);
  w0->io.sig = g;
  return g;
}

/* ------------------------------------------------------------------------ */
/* Watchers                                                                  */

int weft_signal_new(const int *signums, size_t n, weft_signal_t **out) {
  if (out)
    *out = NULL;
  if (!signums || !out || n == 0)
    return WEFT_EINVAL;
  uint64_t mask = 0;
  for (size_t i = 0; i < n; i++) {
    if (sig_check(signums[i]))
      return WEFT_EINVAL;
    mask |= (uint64_t)1 << (signums[i] - 1);
  }
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft_signal_t *s = weft__malloc(sizeof(*s));
  if (!s)
    return WEFT_ENOMEM;
  memset(s, 0, sizeof(*s));
  s->mask = mask;
  weft__list_init(&s->waiters);
  weft__io_enter(t, &t->rt->workers[0]);
  int rc = 0;
  signals_t *g = signals_get(&t->rt->workers[0]);
  if (!g)
    rc = WEFT_ENOMEM;
  int sig = 1;
  for (; rc == 0 && sig <= SIG_MAX; sig++)
    if (mask & ((uint64_t)1 << (sig - 1)))
      rc = sig_ref(g, sig);
  if (rc == 0) {
    s->g = g;
    weft__list_push_back(&g->watchers, &s->link);
  } else if (g) {
    /* Undo the references taken before the one that failed (sig - 1). */
    for (int i = 1; i < sig - 1; i++)
      if (mask & ((uint64_t)1 << (i - 1)))
        sig_unref(g, i);
  }
  weft__io_leave(t);
  if (rc) {
    weft__free(s);
    return rc;
  }
  *out = s;
  return 0;
}

/* Step 3: the lowest pending signal, taken, or 0. */
static int take(weft_signal_t *s) {
  if (s->total == 0)
    return 0;
  for (int i = 1; i <= SIG_MAX; i++) {
    if (s->pending[i]) {
      s->pending[i]--;
      s->total--;
      return i;
    }
  }
  return 0;
}

/* The checks of every call on a watcher: the calling task in *self. */
static int watcher_check(const weft_signal_t *s, weft_task_t **self) {
  if (!s)
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  int rc = weft__io_check(t, &s->g->obj);
  if (rc)
    return rc;
  *self = t;
  return 0;
}

int weft_signal_wait(weft_signal_t *s, uint64_t timeout_ms, int *signum) {
  weft_task_t *t;
  int rc = watcher_check(s, &t);
  if (rc)
    return rc;
  uint64_t deadline = timeout_ms == WEFT_NO_TIMEOUT
                          ? WEFT__NO_DEADLINE
                          : weft__deadline_after_ms(timeout_ms);
  weft__io_enter(t, s->g->obj.home);
  int sig = take(s);
  int parked = 0;
  if (!sig) {
    weft__io_waiter_t w;
    w.task = t;
    w.fired = 0;
    weft__list_init(&w.link);
    weft__waitctx_t c;
    s->nwait++;
    weft__wait_note(t, WEFT_WAIT_SIGNAL, s);
    weft__wait_begin(&c, t, deadline);
    while (!(sig = take(s)) && (rc = weft__wait_poll(&c, 0)) == 0) {
      /* on_signal unlinks the waiters it wakes: link again. */
      if (!weft__list_linked(&w.link))
        weft__list_push_back(&s->waiters, &w.link);
      parked = 1;
      weft__park(t);
    }
    weft__wait_end(&c);
    if (weft__list_linked(&w.link))
      weft__list_remove(&w.link);
    s->nwait--;
  }
  weft__io_leave(t);
  if (sig) {
    if (signum)
      *signum = sig;
    if (!parked)
      weft__coop_tick(); /* a suspension point that did not suspend */
    return 0;
  }
  return rc;
}

int weft_signal_pending(weft_signal_t *s) {
  weft_task_t *t;
  int rc = watcher_check(s, &t);
  if (rc)
    return rc;
  weft__io_enter(t, s->g->obj.home);
  uint64_t n = s->total;
  weft__io_leave(t);
  return n > INT_MAX ? INT_MAX : (int)n;
}

int weft_signal_free(weft_signal_t *s) {
  if (!s)
    return 0;
  weft_task_t *t;
  int rc = watcher_check(s, &t);
  if (rc)
    return rc;
  weft__io_enter(t, s->g->obj.home);
  if (s->nwait) {
    rc = WEFT_EBUSY;
  } else {
    signals_t *g = s->g;
    weft__list_remove(&s->link);
    for (int i = 1; i <= SIG_MAX; i++)
      if (s->mask & ((uint64_t)1 << (i - 1)))
        sig_unref(g, i);
    weft__free(s);
  }
  weft__io_leave(t);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Handlers                                                                  */

/* One handler run: what its task needs, copied at spawn time. */
typedef struct handler_run {
  weft_signal_fn fn;
  void *arg;
  void *local;
  int signum;
} handler_run_t;

static void *handler_main(void *arg) {
  handler_run_t r = *(handler_run_t *)arg;
  weft__free(arg);
  weft_task_set_local(r.local);
  r.fn(r.signum, r.arg);
  return NULL;
}

static void handler_run_discard(void *arg) { weft__free(arg); }

/* Step 4: spawn a task for every counted delivery. On worker 0. */
static void dispatch(signals_t *g) {
  weft_spawn_opts_t o;
  weft_spawn_opts_init(&o);
  o.name = "signal handler";
  o.discard = handler_run_discard;
  for (int sig = 1; sig <= SIG_MAX; sig++) {
    handler_t *h = &g->handlers[sig];
    while (h->fn && h->pending) {
      h->pending--;
      handler_run_t *r = weft__malloc(sizeof(*r));
      if (!r)
        continue; /* no memory: this delivery runs no handler */
      r->fn = h->fn;
      r->arg = h->arg;
      r->local = h->local;
      r->signum = sig;
      /* Fails only at shutdown or without memory: dropped likewise. */
      if (weft_spawn_ex(handler_main, r, &o, NULL) != 0)
        weft__free(r);
    }
  }
}

static void *dispatcher_main(void *arg) {
  signals_t *g = arg;
  weft_task_t *t = weft__task_current();
  for (;;) {
    dispatch(g);
    g->kick = 0;
    g->dispatcher = t;
    /* Pinned to worker 0: its route is home already. */
    weft__wait_note(t, WEFT_WAIT_SIGNAL, g);
    int rc = weft__io_wait_flag(t, &g->kick, 0);
    g->dispatcher = NULL;
    if (rc) /* shutdown: nobody else holds its handle */
      break;
  }
  g->dispatcher_live = 0;
  return NULL;
}

static void dispatcher_discard(void *arg) {
  signals_t *g = arg;
  g->dispatcher_live = 0;
}

int weft_signal_add_handler(int signum, weft_signal_fn fn, void *arg) {
  if (!fn || sig_check(signum))
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  /* relaxed: a flag; spawning checks it again. */
  if (atomic_load_explicit(&t->rt->shutdown, memory_order_relaxed))
    return WEFT_ERUNTIME_SHUTDOWN;
  void *local = weft_task_local();
  weft__io_enter(t, &t->rt->workers[0]);
  int rc = 0;
  signals_t *g = signals_get(&t->rt->workers[0]);
  if (!g)
    rc = WEFT_ENOMEM;
  handler_t *h = g ? &g->handlers[signum] : NULL;
  if (rc == 0 && !h->fn) {
    rc = sig_ref(g, signum);
    if (rc == 0 && !g->dispatcher_live) {
      weft_spawn_opts_t o;
      weft_spawn_opts_init(&o);
      o.name = "signal dispatcher";
      o.pin = 0;
      o.discard = dispatcher_discard;
      rc = weft_spawn_ex(dispatcher_main, g, &o, NULL);
      if (rc == 0)
        g->dispatcher_live = 1;
      else
        sig_unref(g, signum);
    }
  }
  if (rc == 0) {
    h->fn = fn;
    h->arg = arg;
    h->local = local;
  }
  weft__io_leave(t);
  return rc;
}

int weft_signal_remove_handler(int signum) {
  if (sig_check(signum))
    return WEFT_EINVAL;
  weft_task_t *t = weft__task_current();
  if (!t)
    return WEFT_ENOTTASK;
  weft__io_enter(t, &t->rt->workers[0]);
  int removed = 0;
  signals_t *g = t->rt->workers[0].io.sig;
  if (g && g->handlers[signum].fn) {
    memset(&g->handlers[signum], 0, sizeof(handler_t));
    sig_unref(g, signum);
    removed = 1;
  }
  weft__io_leave(t);
  return removed;
}
