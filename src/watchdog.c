/*
 * The watchdog: blocking detection (docs/design.md, "The watchdog").
 *
 * One thread per runtime whose cfg.watchdog_ms (the threshold, T) is
 * nonzero. It wakes every P = T / 10 (at least 1 ms) and looks at each
 * worker. The workers pay nothing for it: the poll sequence it needs is
 * the resumption counter every worker already bumps at each task
 * resumption (stats.v[WEFT__C_RUN], sched/worker.c tick()), and whether
 * the worker is parked (`parked`); no clock is read on the worker.
 *
 * Protocol (per worker, its slot in `slots`):
 *  1. Check (watchdog thread, every P): read the counter and `parked`
 *     (relaxed: both are hints, confirmed by step 3). A changed counter or a
 *     parked worker starts a new observation: `first_seen` = now, `since` =
 *     the previous check (the poll began after it). The same counter, not
 *     parked, at a check with now - first_seen >= T: one poll has lasted at
 *     least T (it began before first_seen), at most now - since, which is
 *     the "ran for" figure reported (an upper bound, within P of the truth).
 *  2. Ask: the watchdog moves the slot's `state` IDLE -> ASKED (release
 *     CAS) and pthread_kill()s the worker's thread with the sampling signal.
 *  3. Sample (the worker thread, in the signal handler): ASKED -> FILLING
 *     (acquire CAS; a handler that loses it does nothing but chain to the
 *     previous handler), then it records, on its own thread, what the
 *     watchdog could not read safely: the counter, the current task
 *     (`current` is owner-only), its id and name, and its backtrace
 *     (bt.h: async-signal-safe once warmed, done in weft__watchdog_init),
 *     then FILLING -> FILLED (release store). The record is read only here,
 *     on the thread running the task, so it cannot be freed meanwhile.
 *  4. Report: the watchdog waits for FILLED up to 5 ms (acquire loads),
 *     and if it is still ASKED, leaves it and looks again at the next check
 *     (TSan delivers signals only at its safe points). A sample whose
 *     counter equals the one observed in step 1 and that found a task is
 *     reported (report.c) and the counter remembered as reported: one report
 *     per episode. Either way the counter is marked as sampled, so a
 *     worker busy outside any task (a long loop callback) is asked once.
 *     FILLED -> IDLE (relaxed: only the watchdog moves the slot from
 *     FILLED, and its next IDLE -> ASKED is a release).
 *  5. A counter that changed while ASKED: the watchdog takes the ask back
 *     (CAS ASKED -> IDLE); if the handler won (FILLING), it waits for
 *     FILLED and drops the sample.
 *  6. Still ASKED a whole threshold later with the same counter (the
 *     worker thread blocks the signal, or TSan has not reached a safe
 *     point): the watchdog takes the ask back and reports the poll without
 *     a sample (no task name, id or backtrace: only the worker's thread may
 *     read them), once; if the handler won the race, its sample is used.
 *
 * Detection latency: a poll that began at S is first observed at the
 * first check after S (<= S + P) and reported at the first check at least
 * T later: by S + T + 2P (+ the signal round trip and scheduling delays),
 * i.e. within 2P = T / 5 of crossing the threshold.
 *
 * Lifetime: rt->watchdog is allocated before the worker threads are created
 * (thread creation orders it before their handler reads it) and freed only
 * after every worker has left its run loop, where it clears its
 * thread-local worker pointer, so a late signal finds no worker and only
 * chains. The handler stays installed for the life of the process (a
 * library cannot know that nobody installed a handler over it since).
 */
#include "watchdog.h"

#include "alloc.h"
#include "bt.h"
#include "record.h"
#include "report.h"
#include "sched/runtime.h"
#include "sched/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { WD_IDLE, WD_ASKED, WD_FILLING, WD_FILLED };
enum { WD_PCS = 32 };
#define WD_MAX_MS 3600000u
#define WD_WAIT_NS 5000000u /* step 4: how long a check waits for a sample */

typedef struct wd_slot {
  atomic_int state; /* WD_*: steps 2-5 */
  pthread_t thread; /* the worker's thread; set before the watchdog starts */
  /* Written by the handler between ASKED and FILLED, read by the watchdog
   * after it acquired FILLED (step 3). */
  uint64_t s_seq;
  uint64_t s_id;
  int s_task;
  int s_npcs;
  char s_name[WEFT_TASK_NAME_MAX + 1];
  void *s_pcs[WD_PCS];
  /* The watchdog thread's own (step 1). */
  uint64_t seq;
  uint64_t first_seen, since;
  uint64_t sampled_seq;
  uint64_t asked_at; /* when the pending question was sent */
  int sampled; /* sampled_seq is meaningful */
  int watching; /* seq is a task poll under observation */
} wd_slot_t;

struct weft__watchdog {
  weft_runtime_t *rt;
  uint64_t threshold_ns, period_ns;
  int sig;
  int started;
  pthread_t thread;
  pthread_mutex_t mu; /* guards stop */
  pthread_cond_t cv;  /* signalled by weft__watchdog_stop */
  int stop;
  wd_slot_t slots[];
};

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

int weft__watchdog_config(weft_config_t *cfg) {
  if (!cfg->debug)
    cfg->debug = weft__debug_env();
  if (cfg->watchdog_ms == 0) {
    const char *v = getenv("WEFT_WATCHDOG_MS");
    if (v && v[0]) {
      char *end;
      unsigned long long ms = strtoull(v, &end, 10);
      if (*end == 0 && ms <= WD_MAX_MS)
        cfg->watchdog_ms = ms;
      else
        fprintf(stderr, "weft: WEFT_WATCHDOG_MS=%s ignored (not a number of "
                        "ms up to %u)\n", v, WD_MAX_MS);
    }
  }
  if (cfg->watchdog_ms == 0 && cfg->debug)
    cfg->watchdog_ms = WEFT_WATCHDOG_MS_DEBUG;
  if (cfg->watchdog_ms > WD_MAX_MS)
    return WEFT_EINVAL;
  if (cfg->watchdog_signal == 0)
    cfg->watchdog_signal = SIGURG;
  int s = cfg->watchdog_signal;
  if (s < 1 || s >= NSIG || s == SIGKILL || s == SIGSTOP || s == SIGSEGV ||
      s == SIGBUS || s == SIGFPE || s == SIGILL || s == SIGABRT)
    return WEFT_EINVAL;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The sampling signal's handler (step 3)                                    */

static pthread_mutex_t handler_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction prev_action[NSIG]; /* written under handler_mu
                                              before installed[] is set */
static atomic_int installed[NSIG];

static void fill(wd_slot_t *s, weft__worker_t *w, const void *uctx) {
  /* relaxed: the owner's own counter, read on the owner's thread. */
  s->s_seq = atomic_load_explicit(&w->remote.stats.v[WEFT__C_RUN],
                                  memory_order_relaxed);
  weft_task_t *t = w->own.current; /* owner-only: this is the owner */
  s->s_task = t != NULL;
  s->s_npcs = 0;
  if (!t)
    return;
  s->s_id = t->id;
  char buf[WEFT_TASK_NAME_MAX + 1];
  const char *name = weft__task_name_peek(t, buf);
  size_t i = 0;
  for (; i < WEFT_TASK_NAME_MAX && name[i]; i++)
    s->s_name[i] = name[i];
  s->s_name[i] = 0;
  s->s_npcs = weft__bt_capture(s->s_pcs, WD_PCS, uctx);
}

static void chain(int sig, siginfo_t *si, void *uctx) {
  /* relaxed: installed[sig] is set after prev_action[sig] under
   * handler_mu by the thread that installed this handler, which ran
   * before any signal could reach it. */
  const struct sigaction *p = &prev_action[sig];
  if (p->sa_flags & SA_SIGINFO) {
    if (p->sa_sigaction)
      p->sa_sigaction(sig, si, uctx);
  } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN &&
             p->sa_handler) {
    p->sa_handler(sig);
  }
  /* SIG_DFL / SIG_IGN: a stray sampling signal is dropped (SIGURG's
   * default is to ignore it; any other signal a program picks is its own
   * to send). */
}

static void on_sample(int sig, siginfo_t *si, void *uctx) {
  int saved_errno = errno;
  weft__worker_t *w = weft__worker_current();
  weft__watchdog_t *wd = w ? w->own.rt->watchdog : NULL;
  int handled = 0;
  if (wd && wd->sig == sig) {
    wd_slot_t *s = &wd->slots[w->own.index];
    int exp = WD_ASKED;
    /* acquire: pairs with the watchdog's release CAS to ASKED (step 2). */
    if (atomic_compare_exchange_strong_explicit(&s->state, &exp, WD_FILLING,
                                                memory_order_acquire,
                                                memory_order_relaxed)) {
      fill(s, w, uctx);
      /* release: publishes the sample to the watchdog's acquire load. */
      atomic_store_explicit(&s->state, WD_FILLED, memory_order_release);
      handled = 1;
    }
  }
  if (!handled)
    chain(sig, si, uctx);
  errno = saved_errno;
}

static int install_handler(int sig) {
  /* relaxed: a fast path; the mutex orders the installation. */
  if (atomic_load_explicit(&installed[sig], memory_order_relaxed))
    return 0;
  int rc = 0;
  pthread_mutex_lock(&handler_mu);
  if (!atomic_load_explicit(&installed[sig], memory_order_relaxed)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sample;
    /* SA_ONSTACK: on the worker's alternate stack when it has one, not on
     * a task stack that might be nearly full; SA_RESTART: an interrupted
     * system call of the task resumes. */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &prev_action[sig]) != 0)
      rc = uv_translate_sys_error(errno);
    else
      /* relaxed: under handler_mu. */
      atomic_store_explicit(&installed[sig], 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&handler_mu);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The watchdog thread (steps 1, 2, 4, 5)                                    */

static void report_unsampled(weft__watchdog_t *wd, unsigned i, wd_slot_t *s,
                             uint64_t now) {
  uint64_t ran_ms = (now - s->since) / 1000000u;
  uint64_t thr_ms = wd->threshold_ns / 1000000u;
  weft_watchdog_report_t r;
  memset(&r, 0, sizeof(r));
  r.kind = WEFT_REPORT_BLOCKING;
  r.task_name = "";
  r.worker = (int)i;
  r.ran_ms = ran_ms;
  r.threshold_ms = thr_ms;
  char head[256];
  snprintf(head, sizeof(head),
           "weft: watchdog: worker %u has run one task for %llu ms without "
           "suspending (threshold %llu ms); not sampled: the worker did not "
           "run the handler of signal %d (blocked in that thread?)",
           i, (unsigned long long)ran_ms, (unsigned long long)thr_ms,
           wd->sig);
  weft__report_emit(&wd->rt->cfg, &r, head);
}

static void report(weft__watchdog_t *wd, unsigned i, wd_slot_t *s,
                   uint64_t now) {
  uint64_t ran_ms = (now - s->since) / 1000000u;
  uint64_t thr_ms = wd->threshold_ns / 1000000u;
  weft_watchdog_report_t r;
  memset(&r, 0, sizeof(r));
  r.kind = WEFT_REPORT_BLOCKING;
  r.task_id = s->s_id;
  r.task_name = s->s_name;
  r.worker = (int)i;
  r.ran_ms = ran_ms;
  r.threshold_ms = thr_ms;
  r.pcs = s->s_pcs;
  r.npcs = (size_t)s->s_npcs;
  char head[256];
  snprintf(head, sizeof(head),
           "weft: watchdog: task '%s' (id %llu) has run for %llu ms on "
           "worker %u without suspending (threshold %llu ms); it is at:",
           s->s_name, (unsigned long long)s->s_id,
           (unsigned long long)ran_ms, i, (unsigned long long)thr_ms);
  weft__report_emit(&wd->rt->cfg, &r, head);
}

/* Step 4's end: a FILLED sample for the poll observed (or not). */
static void take_sample(weft__watchdog_t *wd, unsigned i, wd_slot_t *s,
                        uint64_t now) {
  if (s->watching && s->s_seq == s->seq && s->s_task)
    report(wd, i, s, now);
  s->sampled = 1;
  s->sampled_seq = s->s_seq;
  /* relaxed: see step 4. */
  atomic_store_explicit(&s->state, WD_IDLE, memory_order_relaxed);
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL);
}

/* Step 5: the poll asked about is over; take the question back. */
static void withdraw(wd_slot_t *s) {
  int exp = WD_ASKED;
  /* relaxed: the handler that finds IDLE does nothing. */
  if (atomic_compare_exchange_strong_explicit(&s->state, &exp, WD_IDLE,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
    return;
  if (exp == WD_IDLE)
    return;
  /* acquire: the handler's writes are done before we reuse the slot. */
  while (atomic_load_explicit(&s->state, memory_order_acquire) != WD_FILLED)
    sleep_ns(50000);
  atomic_store_explicit(&s->state, WD_IDLE, memory_order_relaxed);
}

static void check(weft__watchdog_t *wd, unsigned i, uint64_t now,
                  uint64_t prev) {
  weft__worker_t *w = &wd->rt->workers[i];
  wd_slot_t *s = &wd->slots[i];
  /* relaxed: hints (step 1); the sample confirms. */
  uint64_t seq = atomic_load_explicit(&w->remote.stats.v[WEFT__C_RUN],
                                      memory_order_relaxed);
  int parked = atomic_load_explicit(&w->remote.parked, memory_order_relaxed);
  /* acquire: pairs with the handler's release of FILLED. */
  int st = atomic_load_explicit(&s->state, memory_order_acquire);
  if (st == WD_FILLED)
    take_sample(wd, i, s, now);
  if (parked || seq != s->seq || !s->watching) {
    if (st == WD_ASKED || st == WD_FILLING)
      withdraw(s);
    s->seq = seq;
    s->watching = !parked;
    s->first_seen = now;
    s->since = prev;
    return;
  }
  if (st == WD_ASKED && now - s->asked_at >= wd->threshold_ns) {
    /* Step 6. relaxed: as in withdraw(). */
    int ask = WD_ASKED;
    if (atomic_compare_exchange_strong_explicit(&s->state, &ask, WD_IDLE,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
      report_unsampled(wd, i, s, now);
      s->sampled = 1;
      s->sampled_seq = seq;
      return;
    }
    /* acquire: the handler won; its sample is complete once FILLED. */
    while (atomic_load_explicit(&s->state, memory_order_acquire) != WD_FILLED)
      sleep_ns(50000);
    take_sample(wd, i, s, now);
    return;
  }
  if (now - s->first_seen < wd->threshold_ns ||
      (s->sampled && s->sampled_seq == seq) || st == WD_ASKED ||
      st == WD_FILLING)
    return;
  int exp = WD_IDLE;
  /* release: pairs with the handler's acquire CAS (step 2). */
  if (!atomic_compare_exchange_strong_explicit(&s->state, &exp, WD_ASKED,
                                               memory_order_release,
                                               memory_order_relaxed))
    return;
  s->asked_at = now;
  if (pthread_kill(s->thread, wd->sig) != 0) {
    withdraw(s);
    return;
  }
  for (uint64_t waited = 0; waited < WD_WAIT_NS; waited += 100000u) {
    /* acquire: pairs with the handler's release of FILLED. */
    if (atomic_load_explicit(&s->state, memory_order_acquire) == WD_FILLED) {
      take_sample(wd, i, s, uv_hrtime());
      return;
    }
    sleep_ns(100000u);
  }
  /* Still ASKED: looked at again at the next check. */
}

static void *wd_main(void *arg) {
  weft__watchdog_t *wd = arg;
  uint64_t prev = uv_hrtime();
  pthread_mutex_lock(&wd->mu);
  while (!wd->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t at = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
                  wd->period_ns;
    ts.tv_sec = (time_t)(at / 1000000000u);
    ts.tv_nsec = (long)(at % 1000000000u);
    int rc = 0;
    while (!wd->stop && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&wd->cv, &wd->mu, &ts);
    if (wd->stop)
      break;
    pthread_mutex_unlock(&wd->mu);
    uint64_t now = uv_hrtime();
    for (unsigned i = 0; i < wd->rt->nworkers; i++)
      check(wd, i, now, prev);
    prev = now;
    pthread_mutex_lock(&wd->mu);
  }
  pthread_mutex_unlock(&wd->mu);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */

int weft__watchdog_init(weft_runtime_t *rt) {
  rt->watchdog = NULL;
  if (rt->cfg.watchdog_ms == 0)
    return 0;
  weft__bt_warm(); /* before any handler can run (bt.h) */
  int rc = install_handler(rt->cfg.watchdog_signal);
  if (rc)
    return rc;
  weft__watchdog_t *wd = weft__calloc(
      1, sizeof(*wd) + sizeof(wd_slot_t) * (size_t)rt->nworkers);
  if (!wd)
    return WEFT_ENOMEM;
  wd->rt = rt;
  wd->threshold_ns = rt->cfg.watchdog_ms * 1000000u;
  wd->period_ns = wd->threshold_ns / 10u;
  if (wd->period_ns < 1000000u)
    wd->period_ns = 1000000u;
  wd->sig = rt->cfg.watchdog_signal;
  pthread_mutex_init(&wd->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&wd->cv, &ca);
  pthread_condattr_destroy(&ca);
  for (unsigned i = 0; i < rt->nworkers; i++)
    atomic_init(&wd->slots[i].state, WD_IDLE);
  rt->watchdog = wd;
  return 0;
}

void weft__watchdog_start(weft_runtime_t *rt) {
  weft__watchdog_t *wd = rt->watchdog;
  if (!wd)
    return;
  wd->slots[0].thread = pthread_self(); /* worker 0 runs here */
  for (unsigned i = 1; i < rt->nworkers; i++)
    wd->slots[i].thread = rt->workers[i].own.thread;
  int rc = pthread_create(&wd->thread, NULL, wd_main, wd);
  if (rc != 0) {
    fprintf(stderr, "weft: watchdog thread not started (%s): the runtime "
                    "runs unwatched\n", strerror(rc));
    return;
  }
  wd->started = 1;
}

void weft__watchdog_stop(weft_runtime_t *rt) {
  weft__watchdog_t *wd = rt->watchdog;
  if (!wd)
    return;
  if (wd->started) {
    pthread_mutex_lock(&wd->mu);
    wd->stop = 1;
    pthread_cond_signal(&wd->cv);
    pthread_mutex_unlock(&wd->mu);
    pthread_join(wd->thread, NULL);
  }
  /* A sample still asked for is never answered: every worker has cleared
   * its worker pointer, so a late signal only chains. */
  pthread_mutex_destroy(&wd->mu);
  pthread_cond_destroy(&wd->cv);
  rt->watchdog = NULL;
  weft__free(wd);
}
