/*
 * weft/metrics.h: snapshots of the workers' counters and gauges, and the
 * Prometheus text writer. The reading side of sched/metrics.h's protocol
 * (every value a relaxed load of an owner-written atomic; busy time under
 * its sequence lock).
 *
 * Lifetime: a task of rt reads rt's workers freely (they outlive every
 * task). Any other caller holds weft__registry.mu while it reads and
 * checks that rt is still linked (registry.h: the worker array of a linked
 * runtime stays allocated), else WEFT_ESTATE. Nothing here allocates, so
 * nothing here can fail for lack of memory.
 */
#include "registry.h"
#include "sched/metrics.h"
#include "sched/runq.h"
#include "sched/runtime.h"
#include "sched/worker.h"
#include "stack.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Resolve rt and make its workers safe to read: *locked tells whether the
 * registry lock was taken (release with leave()). */
static int enter_rt(weft_runtime_t **rt, int *locked) {
  weft__worker_t *self = weft__worker_current();
  *locked = 0;
  if (!*rt) {
    if (!self || !self->own.current)
      return WEFT_ENOTTASK;
    *rt = self->own.rt;
  }
  if (self && self->own.current && self->own.rt == *rt)
    return 0; /* a task of rt: its workers outlive it */
  pthread_mutex_lock(&weft__registry.mu);
  if (!weft__list_linked(&(*rt)->reg_link)) {
    pthread_mutex_unlock(&weft__registry.mu);
    return WEFT_ESTATE;
  }
  *locked = 1;
  return 0;
}

static void leave(int locked) {
  if (locked)
    pthread_mutex_unlock(&weft__registry.mu);
}

static uint64_t load(atomic_uint_fast64_t *c) {
  /* relaxed: a statistic (protocol in sched/metrics.h). */
  return atomic_load_explicit(c, memory_order_relaxed);
}

/* Busy time of m as of now (sequence lock, reader side). */
static uint64_t busy_of(weft__wmetrics_t *m) {
  uint64_t busy, since;
  for (;;) {
    /* acquire: pairs with the owner's release of the even sequence, so
     * the values read next are at least that write's. */
    unsigned s1 = atomic_load_explicit(&m->busy_seq, memory_order_acquire);
    /* acquire: pairs with the owner's release stores of the values, so
     * that the re-read of the sequence below cannot be older than a value
     * read here (a write that overlapped these loads changes it). */
    busy = atomic_load_explicit(&m->busy_ns, memory_order_acquire);
    since = atomic_load_explicit(&m->busy_since, memory_order_acquire);
    /* relaxed: ordered after the loads above by their acquire. */
    unsigned s2 = atomic_load_explicit(&m->busy_seq, memory_order_relaxed);
    if (s1 == s2 && !(s1 & 1u))
      break;
  }
  if (since) {
    uint64_t now = weft__metrics_clock();
    busy += now > since ? now - since : 0;
  }
  return busy;
}

/* Add worker v's figures to *o. */
static void add_worker(weft__worker_t *v, weft_worker_metrics_t *o) {
  weft__counters_t *c = &v->remote.stats;
  weft__wmetrics_t *m = &v->remote.m;
  o->polls += load(&c->v[WEFT__C_RUN]);
  o->tasks_spawned += load(&v->remote.spawned);
  o->tasks_finished += load(&v->remote.finished);
  o->steal_ops += load(&c->v[WEFT__C_STEALS]);
  o->steal_tasks += load(&c->v[WEFT__C_STOLEN]);
  o->overflows += load(&m->overflows);
  o->lifo_runs += load(&c->v[WEFT__C_LIFO]);
  o->inject_pops += load(&c->v[WEFT__C_INJECT]);
  uint64_t pops = load(&c->v[WEFT__C_INBOX]);
  o->inbox_pops += pops;
  o->parks += load(&c->v[WEFT__C_PARKS]);
  o->unparks += load(&c->v[WEFT__C_WAKEUPS]);
  o->io_polls += load(&c->v[WEFT__C_POLLS]);
  o->busy_ns += busy_of(m);
  o->timers_pending += load(&m->timers);
  o->stacks_cached += load(&m->stacks_cached);
  /* relaxed: a hint; the slot's task may be taken at any moment. */
  int slot = atomic_load_explicit(&v->own.lifo, memory_order_relaxed) != NULL;
  o->local_queue_depth +=
      weft__runq_len(&v->remote.runq) + (uint64_t)slot + load(&m->own_len);
  /* Pops were read first: pushes read now are at least as many. */
  uint64_t pushes = load(&v->remote.inbox_pushed);
  o->inbox_depth += pushes > pops ? pushes - pops : 0;
  uint64_t n = 0;
  for (unsigned i = 0; i < WEFT_METRICS_POLL_BUCKETS; i++) {
    uint64_t b = load(&m->poll_hist[i]);
    o->poll_time_buckets[i] += b;
    n += b;
  }
  o->poll_time_count += n;
  o->poll_time_sum_ns += load(&m->poll_ns_sum);
}

/* Copy min(size, have) bytes of src to out and zero the rest of size. */
static int copy_out(void *out, size_t size, const void *src, size_t have) {
  size_t n = size < have ? size : have;
  memcpy(out, src, n);
  if (size > n)
    memset((char *)out + n, 0, size - n);
  return (int)n;
}

static void read_worker(weft_runtime_t *rt, unsigned index,
                        weft_worker_metrics_t *o) {
  memset(o, 0, sizeof(*o));
  if (index == WEFT_METRICS_ALL_WORKERS) {
    for (unsigned i = 0; i < rt->nworkers; i++)
      add_worker(&rt->workers[i], o);
  } else {
    add_worker(&rt->workers[index], o);
  }
}

int weft_metrics_worker(weft_runtime_t *rt, unsigned index,
                        weft_worker_metrics_t *out, size_t size) {
  if (!out || size == 0)
    return WEFT_EINVAL;
  int locked;
  int rc = enter_rt(&rt, &locked);
  if (rc)
    return rc;
  if (index != WEFT_METRICS_ALL_WORKERS && index >= rt->nworkers) {
    leave(locked);
    return WEFT_EINVAL;
  }
  weft_worker_metrics_t m;
  read_worker(rt, index, &m);
  leave(locked);
  return copy_out(out, size, &m, sizeof(m));
}

static void read_runtime(weft_runtime_t *rt, weft_runtime_metrics_t *o) {
  memset(o, 0, sizeof(*o));
  o->workers = rt->nworkers;
  uint64_t now = weft__metrics_clock();
  uint64_t t0 = load(&rt->workers[0].remote.m.started_ns);
  o->uptime_ns = now > t0 ? now - t0 : 0;
  uint64_t finished = 0, spawned = 1; /* main */
  /* Finished first: every task counted finished was counted spawned
   * before, so spawned >= finished up to the tasks finishing meanwhile. */
  for (unsigned i = 0; i < rt->nworkers; i++)
    finished += load(&rt->workers[i].remote.finished);
  for (unsigned i = 0; i < rt->nworkers; i++)
    spawned += load(&rt->workers[i].remote.spawned);
  spawned += load(&rt->foreign.spawned);
  o->tasks_spawned = spawned;
  o->tasks_finished = finished;
  o->tasks_alive = spawned > finished ? spawned - finished : 0;
  /* relaxed: a hint, written under the inject queue's lock. */
  o->inject_depth = atomic_load_explicit(&rt->inject.len, memory_order_relaxed);
  pthread_mutex_lock(&rt->stacks.mu);
  o->stacks_pooled = rt->stacks.nfree;
  o->stacks_pooled_trimmed = rt->stacks.ntrimmed;
  pthread_mutex_unlock(&rt->stacks.mu);
  o->stack_size = rt->stacks.size;
}

int weft_metrics_runtime(weft_runtime_t *rt, weft_runtime_metrics_t *out,
                         size_t size) {
  if (!out || size == 0)
    return WEFT_EINVAL;
  int locked;
  int rc = enter_rt(&rt, &locked);
  if (rc)
    return rc;
  weft_runtime_metrics_t m;
  read_runtime(rt, &m);
  leave(locked);
  return copy_out(out, size, &m, sizeof(m));
}

uint64_t weft_metrics_poll_bucket_le(unsigned i) {
  if (i >= WEFT_METRICS_POLL_BUCKETS)
    return 0;
  if (i == WEFT_METRICS_POLL_BUCKETS - 1)
    return UINT64_MAX;
  return (uint64_t)1 << (10 + i);
}

/* ------------------------------------------------------------------------ */
/* Prometheus text format                                                    */

/* An appender that writes what fits and counts everything. */
typedef struct out {
  char *buf;
  size_t len;  /* capacity */
  size_t need; /* bytes of the whole text so far */
} out_t;

static void put(out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...) {
  char tmp[160];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n <= 0)
    return;
  size_t k = (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1;
  if (o->need < o->len) {
    size_t room = o->len - o->need;
    memcpy(o->buf + o->need, tmp, k < room ? k : room);
  }
  o->need += k;
}

static void family(out_t *o, const char *name, const char *type,
                   const char *help) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Nanoseconds as seconds, exactly (no floating point rounding). */
static void put_seconds(out_t *o, uint64_t ns) {
  put(o, "%" PRIu64 ".%09" PRIu64, ns / 1000000000u, ns % 1000000000u);
}

typedef struct wfield {
  const char *name, *type, *help;
  size_t off;  /* in weft_worker_metrics_t */
  int seconds; /* the value is ns, written as seconds */
} wfield_t;

#define WF(n, t, f, s, h) {n, t, h, offsetof(weft_worker_metrics_t, f), s}
static const wfield_t wfields[] = {
    WF("weft_worker_polls_total", "counter", polls, 0,
       "Task resumptions (polls) on the worker."),
    WF("weft_worker_tasks_spawned_total", "counter", tasks_spawned, 0,
       "Tasks created by tasks running on the worker."),
    WF("weft_worker_tasks_finished_total", "counter", tasks_finished, 0,
       "Tasks that completed on the worker."),
    WF("weft_worker_steal_operations_total", "counter", steal_ops, 0,
       "Successful steal operations by the worker."),
    WF("weft_worker_steal_tasks_total", "counter", steal_tasks, 0,
       "Tasks the worker took from other workers."),
    WF("weft_worker_overflows_total", "counter", overflows, 0,
       "Times the worker's ring was full and half of it moved to the inject "
       "queue."),
    WF("weft_worker_lifo_runs_total", "counter", lifo_runs, 0,
       "Resumptions from the worker's LIFO slot."),
    WF("weft_worker_inject_pops_total", "counter", inject_pops, 0,
       "Tasks the worker took from the inject queue."),
    WF("weft_worker_inbox_pops_total", "counter", inbox_pops, 0,
       "Tasks the worker took from its inbox."),
    WF("weft_worker_parks_total", "counter", parks, 0,
       "Times the worker blocked in its event loop."),
    WF("weft_worker_unparks_total", "counter", unparks, 0,
       "Wake-ups sent to the worker."),
    WF("weft_worker_io_polls_total", "counter", io_polls, 0,
       "Non-blocking polls of the worker's event loop."),
    WF("weft_worker_busy_seconds_total", "counter", busy_ns, 1,
       "Time the worker was not parked (running tasks, polling, searching)."),
    WF("weft_worker_timers_pending", "gauge", timers_pending, 0,
       "Timers pending on the worker's wheel."),
    WF("weft_worker_stacks_cached", "gauge", stacks_cached, 0,
       "Free task stacks in the worker's own cache."),
    WF("weft_worker_local_queue_depth", "gauge", local_queue_depth, 0,
       "Ready tasks in the worker's ring, LIFO slot and own FIFO."),
    WF("weft_worker_inbox_depth", "gauge", inbox_depth, 0,
       "Tasks routed to the worker and not yet taken."),
};
#undef WF

/* One runtime-wide sample: its family header, then "NAME VALUE". */
static void scalar(out_t *o, const char *name, const char *type,
                   const char *help, uint64_t v) {
  family(o, name, type, help);
  put(o, "%s %" PRIu64 "\n", name, v);
}

static void write_all(weft_runtime_t *rt, out_t *o) {
  weft_runtime_metrics_t r;
  read_runtime(rt, &r);
  scalar(o, "weft_workers", "gauge", "Worker threads of the runtime.",
         r.workers);
  family(o, "weft_uptime_seconds", "gauge", "Time since the runtime started.");
  put(o, "weft_uptime_seconds ");
  put_seconds(o, r.uptime_ns);
  put(o, "\n");
  scalar(o, "weft_tasks_alive", "gauge", "Tasks spawned and not yet finished.",
         r.tasks_alive);
  scalar(o, "weft_tasks_spawned_total", "counter",
         "Tasks created (main, spawned, submitted).", r.tasks_spawned);
  scalar(o, "weft_tasks_finished_total", "counter", "Tasks that completed.",
         r.tasks_finished);
  scalar(o, "weft_inject_queue_depth", "gauge",
         "Tasks in the runtime's global inject queue.", r.inject_depth);
  scalar(o, "weft_stacks_pooled", "gauge",
         "Free task stacks in the runtime-wide pool.", r.stacks_pooled);
  scalar(o, "weft_stacks_pooled_trimmed", "gauge",
         "Pooled stacks whose pages were given back to the kernel.",
         r.stacks_pooled_trimmed);
  scalar(o, "weft_stack_size_bytes", "gauge",
         "Address space of one task stack.", r.stack_size);

  weft_worker_metrics_t m;
  for (size_t f = 0; f < sizeof(wfields) / sizeof(wfields[0]); f++) {
    const wfield_t *d = &wfields[f];
    family(o, d->name, d->type, d->help);
    for (unsigned i = 0; i < rt->nworkers; i++) {
      read_worker(rt, i, &m);
      uint64_t v;
      memcpy(&v, (const char *)&m + d->off, sizeof(v));
      put(o, "%s{worker=\"%u\"} ", d->name, i);
      if (d->seconds)
        put_seconds(o, v);
      else
        put(o, "%" PRIu64, v);
      put(o, "\n");
    }
  }

  family(o, "weft_poll_time_seconds", "histogram",
         "Time a task ran between two suspensions (sampled polls).");
  for (unsigned i = 0; i < rt->nworkers; i++) {
    read_worker(rt, i, &m); /* buckets, sum and count from one read */
    uint64_t cum = 0;
    for (unsigned b = 0; b < WEFT_METRICS_POLL_BUCKETS; b++) {
      cum += m.poll_time_buckets[b];
      put(o, "weft_poll_time_seconds_bucket{worker=\"%u\",le=\"", i);
      if (b == WEFT_METRICS_POLL_BUCKETS - 1)
        put(o, "+Inf");
      else
        put_seconds(o, weft_metrics_poll_bucket_le(b));
      put(o, "\"} %" PRIu64 "\n", cum);
    }
    put(o, "weft_poll_time_seconds_sum{worker=\"%u\"} ", i);
    put_seconds(o, m.poll_time_sum_ns);
    put(o, "\nweft_poll_time_seconds_count{worker=\"%u\"} %" PRIu64 "\n", i,
        m.poll_time_count);
  }
}

long weft_metrics_write_prometheus(weft_runtime_t *rt, char *buf,
                                   size_t len) {
  if (!buf && len > 0)
    return WEFT_EINVAL;
  int locked;
  int rc = enter_rt(&rt, &locked);
  if (rc)
    return rc;
  out_t o = {buf, len, 0};
  write_all(rt, &o);
  leave(locked);
  if (len > 0)
    buf[o.need < len ? o.need : len - 1] = '\0';
  return (long)o.need;
}
