/*
 * Task dumps: a snapshot of every task of every running runtime, with what
 * it waits on and, for a suspended task, its backtrace (weft/dump.h), and
 * the optional dump on a signal.
 *
 * What is recorded, and when (costs nothing until a dump is asked for):
 *  - at spawn, the parent's id and the spawn time (task.c,
 *    task_publish_new), before the release store of the state word that
 *    publishes the record;
 *  - at every suspension point, what the task waits on: a kind, an object,
 *    a deadline and the time (weft__wait_note, waitnote.h), plain stores by
 *    the task itself before it switches out;
 *  - in the state word (task_state.h), RUNNING and the running worker's
 *    index, set by the worker before it resumes the task (weft__state_run:
 *    one fetch_or per resume) and cleared once its registers are saved (the
 *    park CAS, or one fetch_and after a yield).
 *
 * Protocol (the crux: a suspended task's stack is stable only while it
 * stays suspended, and a record may be freed and reused at any time):
 *  1. Dumpers are serialised (dump_mu) and walk the registry under its
 *     mutex (registry.h): runtimes, their workers' record slabs (acquire
 *     walk, weft__record_each_slab), the main task. Slabs are freed only
 *     after the runtime left the registry.
 *  2. For each record the dumper reads `freed` (skip if free) and claims
 *     the record by a CAS that sets DUMPING in the state word, only if
 *     neither COMPLETE nor DUMPING is set. COMPLETE covers a finished task
 *     and a record not yet (or no longer) a task: record_once and a freed
 *     task leave COMPLETE, and a spawn's release store of SCHEDULED is its
 *     last write before the task is published. DUMPING set by someone else
 *     is a finishing task (step 4). The CAS acquires: the spawn's writes
 *     (immutable fields) and, if RUNNING is clear, everything the task did
 *     up to its last switch-out (released by the park CAS or the yield's
 *     fetch_and) happen before what the dumper reads.
 *  3. While the dumper holds DUMPING:
 *     - if RUNNING was clear at the claim, the task is suspended or queued,
 *       and no worker resumes it: a worker sets RUNNING first
 *       (weft__state_run, an RMW on the same word, so it is ordered with
 *       the claim) and, finding DUMPING, waits until it is clear (acquire).
 *       The dumper may read every field (the wait note, the worker it last
 *       ran on, its stack bounds) and walk the saved context on its stack.
 *     - if RUNNING was set, the task runs on the worker named in the word:
 *       its stack and wait note are live and are not read; only what the
 *       spawn wrote (id, parent, birth, home) and the name (task.c's copy
 *       protocol) are.
 *     Either way the task cannot finish meanwhile (step 4), so the record
 *     is neither freed nor reused while held. The dumper releases with a
 *     fetch_and (release) clearing DUMPING.
 *  4. A finished task's worker takes DUMPING for good before it completes
 *     the task (weft__state_done_wait: a CAS from a value without DUMPING,
 *     waiting out a dumper that holds it), and the bit stays until a spawn
 *     reuses the record and overwrites the word. So a dumper never holds a
 *     record that is being completed, freed or reused.
 *  Waiting workers wait for one task's copy and stack walk (microseconds;
 *  symbolising happens after every record was released). Nothing stops a
 *  worker otherwise: a dump of a busy runtime sees tasks at slightly
 *  different instants, which the API documents.
 *
 * Tasks submitted from outside (weft_runtime_submit) live in foreign.c's
 * list, not in the slabs: they are walked under foreign.mu, which keeps
 * them linked until their record is freed, and claimed the same way.
 *
 * The dump on a signal: the handler only write()s one byte to a pipe
 * (async-signal-safe); a dumper thread, started by weft_dump_on_signal and
 * owning nothing else, reads it and writes the dump. A thread rather than
 * io/signal.c's uv_signal on worker 0: the dump must come out even when
 * worker 0 is stuck in a task, or when no runtime runs.
 */
#include "alloc.h"
#include "backtrace.h"
#include "foreign.h"
#include "record.h"
#include "registry.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "task_state.h"
#include "timer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const state_names[] = {"?", "running", "ready",
                                          "waiting"};

static const char *const kind_names[WEFT_WAIT_KIND_COUNT] = {
    [WEFT_WAIT_NONE] = "none",
    [WEFT_WAIT_YIELD] = "yield",
    [WEFT_WAIT_SLEEP] = "sleep",
    [WEFT_WAIT_TASK] = "task",
    [WEFT_WAIT_TASKS] = "tasks",
    [WEFT_WAIT_TASKGROUP] = "taskgroup",
    [WEFT_WAIT_FUTURE] = "future",
    [WEFT_WAIT_LOCK] = "lock",
    [WEFT_WAIT_EVENT] = "event",
    [WEFT_WAIT_SEMAPHORE] = "semaphore",
    [WEFT_WAIT_CONDITION] = "condition",
    [WEFT_WAIT_BARRIER] = "barrier",
    [WEFT_WAIT_QUEUE_GET] = "queue get",
    [WEFT_WAIT_QUEUE_PUT] = "queue put",
    [WEFT_WAIT_QUEUE_JOIN] = "queue join",
    [WEFT_WAIT_STREAM_READ] = "stream read",
    [WEFT_WAIT_STREAM_WRITE] = "stream write",
    [WEFT_WAIT_STREAM_CLOSE] = "stream close",
    [WEFT_WAIT_CONNECT] = "connect",
    [WEFT_WAIT_ACCEPT] = "accept",
    [WEFT_WAIT_TLS] = "tls handshake",
    [WEFT_WAIT_DNS] = "dns",
    [WEFT_WAIT_OFFLOAD] = "offload",
    [WEFT_WAIT_FILE] = "file",
    [WEFT_WAIT_SUBPROCESS] = "subprocess",
    [WEFT_WAIT_SIGNAL] = "signal",
    [WEFT_WAIT_UDP_RECV] = "udp recv",
    [WEFT_WAIT_UDP_SEND] = "udp send",
    [WEFT_WAIT_IO] = "io",
};

const char *weft_task_run_state_name(int state) {
  return state >= WEFT_TASK_RUNNING && state <= WEFT_TASK_WAITING
             ? state_names[state]
             : "?";
}

const char *weft_wait_kind_name(int kind) {
  return kind >= 0 && kind < WEFT_WAIT_KIND_COUNT && kind_names[kind]
             ? kind_names[kind]
             : "?";
}

/* One dumper at a time (protocol step 1): DUMPING then means "finishing". */
static pthread_mutex_t dump_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct snapbuf {
  weft_task_snapshot_t *v;
  size_t n, cap;
  int oom;
  unsigned flags;
  int rt_index;
  uint64_t now_ms;
} snapbuf_t;

static weft_task_snapshot_t *snap_slot(snapbuf_t *b) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    weft_task_snapshot_t *v = weft__realloc(b->v, cap * sizeof(*v));
    if (!v) {
      b->oom = 1;
      return NULL;
    }
    b->v = v;
    b->cap = cap;
  }
  return &b->v[b->n];
}

/* ms from `then` (the low 32 bits of a loop clock, record.h) to now:
 * modulo 2^32, right for intervals under 49 days. */
static uint64_t ms_since(uint64_t now, uint32_t then) {
  return (uint32_t)((uint32_t)now - then);
}

/* Step 2: claim t (1) or not (0: free, finished, finishing). */
static int claim(weft_task_t *t, unsigned *seen) {
  /* relaxed: a hint; the CAS below decides. */
  if (atomic_load_explicit(&t->freed, memory_order_relaxed))
    return 0;
  unsigned old = atomic_load_explicit(&t->state, memory_order_relaxed);
  do {
    if (old & (WEFT__ST_COMPLETE | WEFT__ST_DUMPING))
      return 0;
    /* acquire: step 2 (the spawn's writes, the last switch-out's). */
  } while (!atomic_compare_exchange_weak_explicit(
      &t->state, &old, old | WEFT__ST_DUMPING, memory_order_acquire,
      memory_order_relaxed));
  *seen = old;
  return 1;
}

static void unclaim(weft_task_t *t) {
  /* release: the dumper's reads happen before the task runs again. */
  atomic_fetch_and_explicit(&t->state, ~(unsigned)WEFT__ST_DUMPING,
                            memory_order_release);
}

static void snap_one(snapbuf_t *b, weft_task_t *t) {
  weft_task_snapshot_t *s = snap_slot(b);
  unsigned st;
  if (!s || !claim(t, &st))
    return;
  memset(s, 0, sizeof(*s));
  s->id = t->id;
  s->parent_id = t->parent_id;
  s->has_parent = t->home != NULL; /* pooled: spawned by a task */
  (void)weft_task_name_copy(t, s->name, sizeof(s->name));
  s->home = t->home ? (int)t->home->own.index : -1;
  s->runtime = b->rt_index;
  s->age_ms = ms_since(b->now_ms, t->born_ms);
  /* relaxed: statistics of a request count; the owner and cancellers
   * change them with RMWs. */
  s->cancels = atomic_load_explicit(&t->cancels, memory_order_relaxed);
  s->cancel_pending = (st & WEFT__ST_CANCEL) != 0;
  s->wait_deadline_ms = WEFT_NO_TIMEOUT;
  s->worker = -1;
  if (st & WEFT__ST_RUNNING) {
    /* Step 3, running: nothing it writes as it runs is read. */
    s->state = WEFT_TASK_RUNNING;
    s->wait = WEFT_WAIT_NONE;
    s->worker = (int)(st >> WEFT__ST_WORKER_SHIFT) - 1;
  } else {
    s->state = (st & WEFT__ST_SCHEDULED) ? WEFT_TASK_READY : WEFT_TASK_WAITING;
    s->wait = (weft_wait_kind_t)t->wait_kind;
    if (t->started)
      s->worker = (int)t->worker->own.index;
    if (s->wait == WEFT_WAIT_NONE) {
      s->state_ms = s->age_ms;
    } else {
      s->state_ms = ms_since(b->now_ms, t->wait_since_ms);
      /* A yield notes no object nor deadline (weft__wait_note_yield): the
       * fields hold an earlier wait's. */
      if (s->wait != WEFT_WAIT_YIELD) {
        s->wait_obj = t->wait_obj;
        if (t->wait_deadline_ms) /* low 32 bits: within 24 days of now */
          s->wait_deadline_ms =
              b->now_ms + (uint64_t)(int64_t)(int32_t)(t->wait_deadline_ms -
                                                       (uint32_t)b->now_ms);
      }
    }
#if !defined(WEFT_CTX_ucontext)
    if ((b->flags & WEFT_SNAPSHOT_BACKTRACE) && t->started && t->stack) {
      const char *lo = t->stack->lo;
      int n = weft__backtrace_ctx(&t->ctx, lo, lo + t->stack->usable,
                                  s->frames, WEFT_BACKTRACE_MAX);
      s->nframes = n > 0 ? (unsigned)n : 0;
    }
#endif
  }
  unclaim(t);
  b->n++;
}

static void snap_foreign(weft_task_t *t, void *arg) {
  snapbuf_t *b = arg;
  if (!b->oom)
    snap_one(b, t);
}

static void snap_slab(weft_task_t *recs, unsigned n, void *arg) {
  snapbuf_t *b = arg;
  for (unsigned i = 0; i < n && !b->oom; i++)
    snap_one(b, &recs[i]);
}

static int cmp_id(const void *a, const void *b) {
  const weft_task_snapshot_t *x = a, *y = b;
  if (x->runtime != y->runtime)
    return x->runtime < y->runtime ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

int weft_task_snapshot(unsigned flags, weft_task_snapshot_t **out,
                       size_t *n) {
  if (!out || !n || (flags & ~WEFT_SNAPSHOT_BACKTRACE))
    return WEFT_EINVAL;
  *out = NULL;
  *n = 0;
  snapbuf_t b = {.flags = flags, .now_ms = uv_hrtime() / 1000000u};
  pthread_mutex_lock(&dump_mu);
  pthread_mutex_lock(&weft__registry.mu);
  weft__list_t *head = &weft__registry.runtimes;
  for (weft__list_t *l = head->next; l != head && !b.oom; l = l->next) {
    weft_runtime_t *rt = weft__container_of(l, weft_runtime_t, reg_link);
    if (rt->main)
      snap_one(&b, rt->main);
    for (unsigned i = 0; i < rt->nworkers && !b.oom; i++)
      weft__record_each_slab(&rt->workers[i].records, snap_slab, &b);
    weft__foreign_each(rt, snap_foreign, &b);
    b.rt_index++;
  }
  pthread_mutex_unlock(&weft__registry.mu);
  pthread_mutex_unlock(&dump_mu);
  if (b.oom) {
    weft__free(b.v);
    return WEFT_ENOMEM;
  }
  if (b.n == 0) {
    weft__free(b.v);
    return 0;
  }
  qsort(b.v, b.n, sizeof(*b.v), cmp_id);
  *out = b.v;
  *n = b.n;
  return 0;
}

void weft_task_snapshot_free(weft_task_snapshot_t *snap) { weft__free(snap); }

/* ------------------------------------------------------------------------ */
/* The text dump                                                             */

typedef struct text {
  char *p;
  size_t n, cap;
  int oom;
} text_t;

__attribute__((format(printf, 2, 3))) static void put(text_t *t,
                                                      const char *fmt, ...) {
  if (t->oom)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
    va_end(ap);
    if (k < 0) {
      t->oom = 1;
      return;
    }
    if ((size_t)k < t->cap - t->n) {
      t->n += (size_t)k;
      return;
    }
    size_t cap = (t->cap + (size_t)k + 1) * 2;
    char *p = weft__realloc(t->p, cap);
    if (!p) {
      t->oom = 1;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
}

/* Symbols of return addresses, cached: a dump of many tasks meets the same
 * few addresses many times, and a lookup may map an object file. */
#define SYM_CACHE 1024
typedef struct sym_cache {
  const void *pc[SYM_CACHE];
  char *name[SYM_CACHE];
} sym_cache_t;

static const char *sym_of(sym_cache_t *c, const void *pc, char *tmp,
                          size_t size) {
  size_t h = ((uintptr_t)pc >> 2) * 2654435761u % SYM_CACHE;
  if (c && c->pc[h] == pc && c->name[h])
    return c->name[h];
  weft__symbolize(pc, 1, tmp, size);
  if (c) {
    char *s = weft__strdup(tmp);
    if (s) {
      weft__free(c->name[h]);
      c->pc[h] = pc;
      c->name[h] = s;
    }
  }
  return tmp;
}

static void format_dump(text_t *t, const weft_task_snapshot_t *v, size_t n) {
  sym_cache_t *cache = weft__calloc(1, sizeof(*cache));
  uint64_t now_ms = uv_hrtime() / 1000000u;
  put(t, "weft task dump: %zu task(s)\n", n);
  int rt = -1;
  for (size_t i = 0; i < n; i++) {
    const weft_task_snapshot_t *s = &v[i];
    if (s->runtime != rt) {
      rt = s->runtime;
      put(t, "runtime %d:\n", rt);
    }
    put(t, "  task %llu \"%s\"", (unsigned long long)s->id, s->name);
    if (s->has_parent)
      put(t, " (parent %llu)", (unsigned long long)s->parent_id);
    put(t, ": %s", weft_task_run_state_name((int)s->state));
    if (s->state == WEFT_TASK_RUNNING) {
      put(t, " on worker %d", s->worker);
    } else if (s->wait != WEFT_WAIT_NONE) {
      put(t, "%s %s", s->state == WEFT_TASK_READY ? " after" : " on",
          weft_wait_kind_name((int)s->wait));
      if (s->wait_obj)
        put(t, " %p", s->wait_obj);
      if (s->wait_deadline_ms != WEFT_NO_TIMEOUT)
        put(t, " (deadline in %lld ms)",
            (long long)(s->wait_deadline_ms - now_ms));
      put(t, " for %llu ms", (unsigned long long)s->state_ms);
    }
    put(t, "; age %llu ms", (unsigned long long)s->age_ms);
    if (s->state != WEFT_TASK_RUNNING && s->worker >= 0)
      put(t, ", last on worker %d", s->worker);
    if (s->cancels || s->cancel_pending)
      put(t, ", cancels %d%s", s->cancels,
          s->cancel_pending ? " (pending)" : "");
    put(t, "\n");
    char tmp[320];
    for (unsigned f = 0; f < s->nframes; f++)
      put(t, "      #%u %p %s\n", f, s->frames[f],
          sym_of(cache, s->frames[f], tmp, sizeof(tmp)));
  }
  if (cache) {
    for (size_t i = 0; i < SYM_CACHE; i++)
      weft__free(cache->name[i]);
    weft__free(cache);
  }
}

/* The dump as text: 0 with *out (weft__free it) and *len, or an error. */
static int dump_text(char **out, size_t *len, size_t *ntasks) {
  weft_task_snapshot_t *v;
  size_t n;
  int rc = weft_task_snapshot(WEFT_SNAPSHOT_BACKTRACE, &v, &n);
  if (rc)
    return rc;
  text_t t = {0};
  format_dump(&t, v, n);
  weft_task_snapshot_free(v);
  if (t.oom) {
    weft__free(t.p);
    return WEFT_ENOMEM;
  }
  *out = t.p;
  *len = t.n;
  *ntasks = n;
  return 0;
}

int weft_dump_tasks(FILE *f) {
  if (!f)
    return WEFT_EINVAL;
  char *p;
  size_t len, n;
  int rc = dump_text(&p, &len, &n);
  if (rc)
    return rc;
  int bad = fwrite(p, 1, len, f) != len || fflush(f) != 0;
  weft__free(p);
  return bad ? WEFT_EIO : (int)n;
}

static int write_all(int fd, const char *p, size_t len) {
  while (len) {
    ssize_t k = write(fd, p, len);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return WEFT_EIO;
    }
    p += k;
    len -= (size_t)k;
  }
  return 0;
}

int weft_dump_tasks_fd(int fd) {
  if (fd < 0)
    return WEFT_EINVAL;
  char *p;
  size_t len, n;
  int rc = dump_text(&p, &len, &n);
  if (rc)
    return rc;
  rc = write_all(fd, p, len);
  weft__free(p);
  return rc ? rc : (int)n;
}

int weft_symbolize(const void *pc, char *buf, size_t size) {
  if (!buf && size > 0)
    return WEFT_EINVAL;
  char tmp[320];
  int k = weft__symbolize(pc, 0, tmp, sizeof(tmp));
  if (k < 0)
    return WEFT_EINVAL;
  return snprintf(buf, size, "%s", tmp);
}

/* ------------------------------------------------------------------------ */
/* The dump on a signal                                                      */

/* sig_mu guards the fields below (weft_dump_on_signal's callers). The
 * pipe is made once and kept for the life of the process, as libuv keeps
 * its signal pipe: a handler still running on another thread when the
 * signal is given back must not write into a descriptor that was closed
 * and reused. The handler reads only sig_pipe_w, the thread sig_fd. */
static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;
static int sig_no;                   /* the signal taken, 0 if none */
static struct sigaction sig_prev;    /* its previous action */
static int sig_pipe_r = -1;
static atomic_int sig_pipe_w = -1;   /* read by the handler */
static atomic_int sig_fd = -1;       /* where the thread writes the dump */
static pthread_t sig_thread;

static void on_dump_signal(int signo) {
  (void)signo;
  int saved = errno;
  /* relaxed: set once, before any handler was installed. */
  int w = atomic_load_explicit(&sig_pipe_w, memory_order_relaxed);
  if (w >= 0)
    (void)!write(w, "d", 1); /* full pipe: a dump is pending anyway */
  errno = saved;
}

static void *dump_thread(void *arg) {
  (void)arg;
  char c;
  for (;;) {
    ssize_t k = read(sig_pipe_r, &c, 1);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0 || c == 'q')
      break;
    /* relaxed: a plain value; a dump to the previous fd is no harm. */
    int fd = atomic_load_explicit(&sig_fd, memory_order_relaxed);
    if (fd >= 0)
      (void)weft_dump_tasks_fd(fd);
  }
  return NULL;
}

/* Give the signal back and stop the thread (after the dumps it owes). */
static void sig_stop_locked(void) {
  if (!sig_no)
    return;
  sigaction(sig_no, &sig_prev, NULL);
  sig_no = 0;
  /* relaxed: as in the handler. */
  int w = atomic_load_explicit(&sig_pipe_w, memory_order_relaxed);
  (void)!write(w, "q", 1);
  pthread_join(sig_thread, NULL);
}

static int sig_pipe_once(void) {
  if (sig_pipe_r >= 0)
    return 0;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return -errno;
  /* The handler's end never blocks; the thread's does. */
  fcntl(p[1], F_SETFL, fcntl(p[1], F_GETFL) | O_NONBLOCK);
  sig_pipe_r = p[0];
  /* relaxed: published to the handler by the sigaction that installs it. */
  atomic_store_explicit(&sig_pipe_w, p[1], memory_order_relaxed);
  return 0;
}

int weft_dump_on_signal(int signo, int fd) {
  if (signo < 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP ||
      signo == SIGSEGV || signo == SIGBUS || signo == SIGFPE ||
      signo == SIGILL || (signo && fd < 0))
    return WEFT_EINVAL;
  pthread_mutex_lock(&sig_mu);
  if (signo == 0 || (sig_no && sig_no != signo))
    sig_stop_locked();
  /* relaxed: read by the dumper thread when the next signal comes. */
  atomic_store_explicit(&sig_fd, signo ? fd : -1, memory_order_relaxed);
  if (signo == 0 || sig_no == signo) { /* off, or only the fd changes */
    pthread_mutex_unlock(&sig_mu);
    return 0;
  }
  int rc = sig_pipe_once();
  if (rc == 0) {
    /* The thread takes no signals: they go to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&sig_thread, NULL, dump_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  }
  if (rc == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_dump_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, &sig_prev) != 0) {
      rc = -errno;
      /* relaxed: as in the handler. */
      (void)!write(atomic_load_explicit(&sig_pipe_w, memory_order_relaxed),
                   "q", 1);
      pthread_join(sig_thread, NULL);
    } else {
      sig_no = signo;
    }
  }
  pthread_mutex_unlock(&sig_mu);
  return rc;
}
