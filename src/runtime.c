/*
 * The runtime: configuration, weft_run (asyncio.run), worker threads, the
 * shutdown sequence, and the stack-overflow signal handler.
 *
 * Lifecycle:
 *  1. weft_run resolves the configuration, allocates the runtime and starts
 *     workers 1..N-1 on new threads; the calling thread becomes worker 0.
 *     Every worker initialises its own loop, async and timer handles (loop
 *     affinity), then reports in; nothing is scheduled until all have, so no
 *     uv_async_send can reach an uninitialised handle.
 *     Worker 0 also installs weft_run's SIGINT handler if asked
 *     (cfg.sigint_cancels_main, io/signal.c), and removes it in step 5
 *     once every worker has left its loop, before it closes its handles.
 *  2. The main task is pushed to the inject queue; workers run.
 *  3. When main finishes, submissions from other threads are closed and the
 *     tasks they created cancelled (foreign.c: they are not in any worker's
 *     slabs), then `shutdown` is set and every worker is woken. Each
 *     worker, on seeing it, cancels every task it spawned (task.c); from then
 *     on every suspension point returns WEFT_ECANCELED immediately; spawning
 *     fails with WEFT_ERUNTIME_SHUTDOWN, so the remaining tasks run to their end.
 *  4. A worker about to park during shutdown checks quiescence
 *     (sched/worker.c, check_quiescent): it sums every worker's `finished`
 *     counter, then (seq_cst loads, in that order) every
 *     `spawned` counter. Both only grow and finished <= spawned + 1 (main), so
 *     equality proves that between the two passes no task was alive, and none can be
 *     created afterwards. It then sets `stop` and wakes every worker.
 *  5. Workers leave their loops, wait until all have left (wake-ups are only
 *     sent from inside run loops, or from outside under foreign.c's lock
 *     while the task they wake cannot have finished, so none can reach a
 *     closing handle), and close their handles, running each loop out
 *     (offloaded functions still on the thread pool keep it running until
 *     they return, for at most cfg.offload_grace_ms: past that the loop is
 *     left behind unclosed, with the workers array that holds it, and the
 *     function is reported: io/offload.c step 6); weft_run joins the
 *     threads, frees every record, stack slab, queue and loop, and returns
 *     main's status. The runtime struct itself is freed with the last
 *     handle (foreign.c).
 *     Also in step 4: submitted tasks count in `spawned` (foreign.c).
 */
#include "alloc.h"
#include "foreign.h"
#include "io/io.h"
#include "list.h"
#include "record.h"
#include "registry.h"
#include "sched/idle.h"
#include "sched/inject.h"
#include "sched/runq.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "stack.h"
#include "task_int.h"
#include "timer.h"
#include "watchdog.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(WEFT_SANITIZE_THREAD)
#include <sanitizer/tsan_interface.h>
#endif

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

void weft_config_init(weft_config_t *cfg) {
  if (!cfg)
    return;
  memset(cfg, 0, sizeof(*cfg));
  cfg->stack_size = WEFT_STACK_SIZE_DEFAULT;
  cfg->guarded_stacks = WEFT_GUARDED_STACKS_DEFAULT;
  cfg->overflow_handler = 1;
  cfg->offload_grace_ms = WEFT_OFFLOAD_GRACE_MS_DEFAULT;
}

static int resolve_config(const weft_config_t *in, weft_config_t *out) {
  if (in)
    *out = *in;
  else
    weft_config_init(out);
  if (out->workers > 1024)
    return WEFT_EINVAL;
  if (out->stack_size == 0)
    out->stack_size = WEFT_STACK_SIZE_DEFAULT;
  if (out->stack_size < WEFT_STACK_SIZE_MIN ||
      out->stack_size > ((size_t)1 << 30))
    return WEFT_EINVAL;
  if (out->offload_grace_ms == 0)
    out->offload_grace_ms = WEFT_OFFLOAD_GRACE_MS_DEFAULT;
  if (out->metrics_poll_sample == 0)
    out->metrics_poll_sample = WEFT_METRICS_POLL_SAMPLE_DEFAULT;
  if (out->metrics_poll_sample > (1u << 24))
    return WEFT_EINVAL;
  if (out->deterministic) {
    out->workers = 1;
    out->disable_lifo = 1;
  }
  if (out->workers == 0) {
    out->workers = uv_available_parallelism();
    if (out->workers == 0)
      out->workers = 1;
    if (out->workers > 1024)
      out->workers = 1024;
  }
  return weft__watchdog_config(out); /* debug mode, watchdog, environment */
}

/* ------------------------------------------------------------------------ */
/* Stack-overflow reports                                                    */

static pthread_mutex_t segv_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned segv_users;              /* runtimes wanting the handler */
static struct sigaction segv_prev;       /* handler to chain to */
static size_t segv_page;

static void on_segv(int sig, siginfo_t *si, void *uctx) {
  weft__worker_t *w = weft__worker_current();
  weft_task_t *t = w ? w->own.current : NULL;
  if (t && t->stack && weft__stack_in_guard(t->stack, segv_page, si->si_addr))
    weft__task_overflow_abort(t, 1);
  /* Not ours: chain to the previous handler, or fault again with it. */
  if (segv_prev.sa_flags & SA_SIGINFO) {
    segv_prev.sa_sigaction(sig, si, uctx);
  } else if (segv_prev.sa_handler == SIG_DFL ||
             segv_prev.sa_handler == SIG_IGN) {
    signal(sig, SIG_DFL); /* returning re-executes the fault: default dies */
  } else {
    segv_prev.sa_handler(sig);
  }
}

static void segv_acquire(void) {
  pthread_mutex_lock(&segv_mu);
  if (segv_users++ == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    segv_page = (size_t)sysconf(_SC_PAGESIZE);
    sigaction(SIGSEGV, &sa, &segv_prev);
  }
  pthread_mutex_unlock(&segv_mu);
}

static void segv_release(void) {
  pthread_mutex_lock(&segv_mu);
  if (--segv_users == 0)
    sigaction(SIGSEGV, &segv_prev, NULL);
  pthread_mutex_unlock(&segv_mu);
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                   */

static void on_async(uv_async_t *h) { (void)h; /* waking is the point */ }

static int worker_open(weft__worker_t *w) {
  int rc = uv_loop_init(&w->own.loop);
  if (rc)
    return rc;
  w->own.loop.data = w;
  rc = uv_async_init(&w->own.loop, &w->remote.async, on_async);
  if (rc) {
    uv_loop_close(&w->own.loop);
    return rc;
  }
  w->remote.async.data = w;
  uv_timer_init(&w->own.loop, &w->own.trim_timer); /* cannot fail */
  w->own.trim_timer.data = w;
  w->own.trim_runs = UINT64_MAX; /* not trimming yet */
  uv_timer_init(&w->own.loop, &w->own.watch_timer); /* cannot fail */
  w->own.watch_timer.data = w;
  weft__timers_init(w);
#if defined(WEFT_SANITIZE_THREAD)
  w->own.tsan_sched = __tsan_get_current_fiber();
#endif
#if defined(WEFT_SANITIZE_ADDRESS)
  pthread_attr_t attr;
  void *addr;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      w->own.asan_stack_bottom = addr;
      w->own.asan_stack_size = size;
    }
    pthread_attr_destroy(&attr);
  }
#endif
  if (w->own.rt->cfg.overflow_handler) {
    size_t sz = 64 * 1024;
    w->own.altstack = weft__malloc(sz);
    if (w->own.altstack) {
      stack_t ss;
      memset(&ss, 0, sizeof(ss));
      ss.ss_sp = w->own.altstack;
      ss.ss_size = sz;
      /* Worker 0 is the caller's thread: keep its own alternate stack (if
       * any) to give it back in worker_close. */
      if (sigaltstack(&ss, &w->own.prev_altstack) != 0) {
        weft__free(w->own.altstack);
        w->own.altstack = NULL;
      }
    }
  }
  return 0;
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void worker_close(weft__worker_t *w) {
  if (w->own.altstack) {
    /* Give the thread back the alternate stack it had before (or none:
     * the saved one then carries SS_DISABLE). SS_ONSTACK is a status bit,
     * not a flag sigaltstack() accepts. */
    stack_t ss = w->own.prev_altstack;
    ss.ss_flags &= ~SS_ONSTACK;
    if (ss.ss_flags & SS_DISABLE) {
      memset(&ss, 0, sizeof(ss));
      ss.ss_flags = SS_DISABLE;
    }
    sigaltstack(&ss, NULL);
    weft__free(w->own.altstack);
    w->own.altstack = NULL;
  }
  weft__io_worker_close(w); /* streams the program did not free */
  uv_close((uv_handle_t *)&w->timers.uv, close_cb);
  uv_close((uv_handle_t *)&w->own.trim_timer, close_cb);
  uv_close((uv_handle_t *)&w->own.watch_timer, close_cb);
  uv_close((uv_handle_t *)&w->remote.async, close_cb);
  /* Pool work still out (io/offload.c step 5) is waited for, up to the
   * grace period; past it, the loop is left behind, never closed. */
  if (weft__offload_drain(w) != 0) {
    w->own.loop_abandoned = 1;
    return;
  }
  uv_run(&w->own.loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->own.loop);
}

/* Report in (lifecycle step 1) and wait until every worker did. Returns 0,
 * or the first start-up error of any worker. */
static int start_handshake(weft_runtime_t *rt, int err) {
  pthread_mutex_lock(&rt->start_mu);
  if (err && !rt->start_err)
    rt->start_err = err;
  rt->started++;
  pthread_cond_broadcast(&rt->start_cv);
  while (rt->started < rt->nworkers)
    pthread_cond_wait(&rt->start_cv, &rt->start_mu);
  err = rt->start_err;
  pthread_mutex_unlock(&rt->start_mu);
  return err;
}

/* Wait until every worker has left its run loop (lifecycle step 5): wakes
 * are sent only from inside run loops, so after this no uv_async_send can
 * reach a handle that is being closed. */
static void exit_handshake(weft_runtime_t *rt) {
  pthread_mutex_lock(&rt->start_mu);
  rt->exited++;
  pthread_cond_broadcast(&rt->start_cv);
  while (rt->exited < rt->nworkers)
    pthread_cond_wait(&rt->start_cv, &rt->start_mu);
  pthread_mutex_unlock(&rt->start_mu);
}

static void worker_thread(void *arg) {
  weft__worker_t *w = arg;
  int rc = worker_open(w);
  if (start_handshake(w->own.rt, rc) == 0)
    weft__worker_loop(w);
  exit_handshake(w->own.rt);
  if (rc == 0)
    worker_close(w);
}

/* The main task finished: its outcome is weft_run's, submissions close,
 * and the shutdown starts. */
static void on_main_done(weft_runtime_t *rt, weft_task_t *main) {
  rt->main_status = main->status;
  rt->main_result = main->result;
  weft__foreign_close(rt); /* before `shutdown`: see the quiescence check
                              (sched/worker.c) */
  /* seq_cst: the flag is ordered before the wake-ups and the quiescence
   * checks that follow it. */
  atomic_store_explicit(&rt->shutdown, 1, memory_order_seq_cst);
  weft__workers_wake_all(rt);
}

/* The main task's completion: a spawned task's, then the shutdown starts
 * (after it is counted finished, so that the quiescence checks the wake-ups
 * lead to can see every task finished). */
static void main_complete(weft__worker_t *w, weft_task_t *t) {
  weft__task_publish(t);
  weft__count_finished(w);
  on_main_done(t->rt, t);
  weft__task_drop_own_ref(t);
}

/* The main record is weft_run's (weft__task_unref_main frees it). */
static void main_release(weft_task_t *t) { (void)t; }

/* Its end goes through the scheduler: the shutdown it starts wakes the
 * workers, not a task switched to directly. */
static const weft__task_kind_t main_kind = {
    .complete = main_complete, .release = main_release, .done_via_sched = 1};

/* ------------------------------------------------------------------------ */
/* weft_run                                                                  */

/* Worker arrays holding a loop that was left behind (lifecycle step 5):
 * a pool thread still running an offloaded function will lock the loop's
 * mutex and signal its async handle when the function returns, so that
 * memory is never freed; it stays reachable from here (no leak report). */
typedef struct abandoned {
  struct abandoned *next;
  weft__worker_t *workers;
} abandoned_t;
static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static abandoned_t *abandoned_list;

static void free_workers(weft_runtime_t *rt) {
  for (unsigned i = 0; i < rt->nworkers; i++) {
    if (rt->workers[i].own.loop_abandoned) {
      abandoned_t *a = weft__malloc(sizeof(*a));
      if (a) { /* without memory it is unreachable, but still not freed */
        a->workers = rt->workers;
        pthread_mutex_lock(&abandoned_mu);
        a->next = abandoned_list;
        abandoned_list = a;
        pthread_mutex_unlock(&abandoned_mu);
      }
      return;
    }
  }
  weft__aligned_free(rt->workers);
}

static void runtime_free(weft_runtime_t *rt) {
  for (unsigned i = 0; i < rt->nworkers; i++) {
    weft__worker_t *w = &rt->workers[i];
    weft__record_free_all(&w->records);
    weft__timers_destroy(w);
    weft__stack_cache_flush(&rt->stacks, &w->stacks);
  }
  weft__stack_pool_destroy(&rt->stacks);
  weft__idle_destroy(&rt->idle);
  weft__inject_destroy(&rt->inject);
  pthread_mutex_destroy(&rt->start_mu);
  pthread_cond_destroy(&rt->start_cv);
  free_workers(rt);
  weft__foreign_destroy(rt); /* frees rt unless handles remain */
}

int weft_run(weft_task_fn main, void *arg, const weft_config_t *cfg,
             void **result) {
  if (result)
    *result = NULL;
  if (!main)
    return WEFT_EINVAL;
  if (weft__worker_current())
    return WEFT_EBUSY;
  weft_config_t c;
  int rc = resolve_config(cfg, &c);
  if (rc)
    return rc;

  /* Aligned: the struct keeps its shared queues on separate lines. */
  weft_runtime_t *rt = weft__aligned_alloc(64, sizeof(*rt));
  if (!rt)
    return WEFT_ENOMEM;
  weft__alloc_runtime_born(); /* gone when freed: below, or foreign.c */
  memset(rt, 0, sizeof(*rt));
  rt->cfg = c;
  rt->nworkers = c.workers;
  rt->workers =
      weft__aligned_alloc(64, sizeof(weft__worker_t) * rt->nworkers);
  if (!rt->workers) {
    weft__aligned_free(rt);
    weft__alloc_runtime_gone();
    return WEFT_ENOMEM;
  }
  memset(rt->workers, 0, sizeof(weft__worker_t) * rt->nworkers);
  if (weft__inject_init(&rt->inject) != 0 ||
      weft__idle_init(&rt->idle, rt->nworkers) != 0 ||
      weft__stack_pool_init(&rt->stacks, c.stack_size, c.guarded_stacks) !=
          0) {
    /* These only fail for lack of memory; the rest was zeroed. */
    weft__aligned_free(rt->workers);
    weft__aligned_free(rt);
    weft__alloc_runtime_gone();
    return WEFT_ENOMEM;
  }
  pthread_mutex_init(&rt->start_mu, NULL);
  pthread_cond_init(&rt->start_cv, NULL);
  weft__foreign_init(rt);
  for (unsigned i = 0; i < rt->nworkers; i++) {
    weft__worker_t *w = &rt->workers[i];
    weft__runq_init(&w->remote.runq);
    w->own.rt = rt;
    w->own.index = i;
    w->own.rng = 0x9E3779B9u * (i + 1);
    weft__metrics_init(&w->remote.m, &w->own.sample, c.metrics_poll_sample,
                       i);
    weft__record_pool_init(&w->records, &w->remote.remote_free);
    weft__list_init(&w->io.objs);
    weft__list_init(&w->io.offloads);
    weft__list_init(&w->io.fsreqs);
  }
  rt->main = weft__task_new_main(rt, main, arg, &main_kind);
  if (!rt->main) {
    runtime_free(rt);
    return WEFT_ENOMEM;
  }
  rc = weft__watchdog_init(rt); /* before the threads: their handler reads
                                   it (watchdog.c) */
  if (rc) {
    weft__task_unref_main(rt->main);
    runtime_free(rt);
    return rc;
  }
  weft__registry_add(rt); /* linked until every worker has stopped */
  if (c.overflow_handler)
    segv_acquire();

  unsigned started_threads = 0;
  for (unsigned i = 1; i < rt->nworkers; i++) {
    rc = uv_thread_create(&rt->workers[i].own.thread, worker_thread,
                          &rt->workers[i]);
    if (rc)
      break;
    started_threads++;
  }
  if (rc) {
    /* Let the threads that did start finish their handshake and leave. */
    pthread_mutex_lock(&rt->start_mu);
    rt->start_err = rc;
    rt->started += rt->nworkers - 1 - started_threads;
    rt->exited += rt->nworkers - 1 - started_threads;
    pthread_mutex_unlock(&rt->start_mu);
  }
  weft__worker_t *w0 = &rt->workers[0];
  int rc0 = worker_open(w0);
  int opened0 = rc0 == 0;
  if (opened0)
    rc0 = weft__sigint_install(rt); /* on worker 0's loop */
  rc = start_handshake(rt, rc0 ? rc0 : rc);
  if (rc == 0) {
    weft__watchdog_start(rt); /* every worker thread exists */
    weft__sched_schedule(rt->main, 0); /* from this (not yet worker) thread */
    weft__worker_loop(w0);
  }
  exit_handshake(rt);
  weft__watchdog_stop(rt); /* no worker runs a loop: none is sampled */
  if (opened0) {
    weft__sigint_uninstall(rt); /* before its async handle's loop closes */
    worker_close(w0);
  }
  for (unsigned i = 1; i <= started_threads; i++)
    uv_thread_join(&rt->workers[i].own.thread);
  weft__registry_remove(rt);
  if (c.overflow_handler)
    segv_release();

  if (rc == 0) {
    rc = rt->main_status;
    if (result)
      *result = rt->main_result;
  }
  rc = weft__sigint_finish(rt, rc); /* WEFT_EINTR: main ended by SIGINT */
  weft__task_unref_main(rt->main);
  runtime_free(rt);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Worker queries                                                            */

int weft_worker_count(void) {
  weft__worker_t *w = weft__worker_current();
  return w && w->own.current ? (int)w->own.rt->nworkers : WEFT_ENOTTASK;
}

int weft_worker_index(void) {
  weft__worker_t *w = weft__worker_current();
  return w && w->own.current ? (int)w->own.index : WEFT_ENOTTASK;
}

int weft_worker_stats(unsigned index, weft_worker_stats_t *out) {
  weft__worker_t *w = weft__worker_current();
  if (!w || !w->own.current)
    return WEFT_ENOTTASK;
  if (!out || index >= w->own.rt->nworkers)
    return WEFT_EINVAL;
  weft__worker_t *v = &w->own.rt->workers[index];
  uint64_t vals[10];
  for (int i = 0; i < 10; i++)
    /* relaxed: statistics, no consistency promised. */
    vals[i] = atomic_load_explicit(&v->remote.stats.v[i], memory_order_relaxed);
  _Static_assert(sizeof(weft_worker_stats_t) == sizeof(vals),
                 "stats layout mirrors the counters");
  memcpy(out, vals, sizeof(vals));
  return 0;
}
