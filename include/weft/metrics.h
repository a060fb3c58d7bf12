/*
 * weft metrics: a cheap snapshot of a running runtime, per worker and for
 * the whole runtime (Tokio's RuntimeMetrics), and a Prometheus text-format
 * writer for it.
 *
 * Every counter is written by the worker that owns it with relaxed atomic
 * stores and read here with relaxed loads: taking a snapshot stops no one,
 * from a task of the runtime or from any other thread that holds a
 * reference to it (weft_runtime_ref()). Each value is exact as of some
 * instant during the call; different values may be from different
 * instants (a snapshot is not atomic as a whole). Counters only grow while
 * the runtime runs; gauges (depths, pending timers, pooled stacks, tasks
 * alive) go up and down.
 *
 * The structs grow by appending fields only. Callers pass sizeof(*out), so
 * a program built against an older header (a smaller struct) gets exactly
 * the fields it knows, and one built against a newer header than the
 * library gets the library's fields and zeros after them; the return value
 * says how many bytes the library filled.
 */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include "common.h"
#include "runtime.h"

#include <stddef.h>
#include <stdint.h>

WEFT_BEGIN_DECLS

/* Buckets of the poll-time histogram (how long a task ran between two
 * suspensions). Bucket 0 counts polls shorter than 2^10 ns (1.024 us);
 * bucket i, 1 <= i < WEFT_METRICS_POLL_BUCKETS - 1, polls of
 * [2^(9+i), 2^(10+i)) ns; the last bucket every poll of 2^(9+last) ns
 * (about 268 ms) or longer. weft_metrics_poll_bucket_le() gives each
 * bucket's upper bound. */
#define WEFT_METRICS_POLL_BUCKETS 20u

/* Default of weft_config_t.metrics_poll_sample: one poll in this many (on
 * average) is timed for the histogram. */
#define WEFT_METRICS_POLL_SAMPLE_DEFAULT 128u

/* One worker. Counters (c) grow; gauges (g) are current values. */
typedef struct weft_worker_metrics {
  uint64_t polls;          /* (c) task resumptions (weft_worker_stats_t
                              tasks_run) */
  uint64_t tasks_spawned;  /* (c) tasks created by tasks on this worker */
  uint64_t tasks_finished; /* (c) tasks that completed on this worker */
  uint64_t steal_ops;      /* (c) successful steal operations by it */
  uint64_t steal_tasks;    /* (c) tasks it took from other workers */
  uint64_t overflows;      /* (c) times its ring was full and half of it
                              moved to the inject queue */
  uint64_t lifo_runs;      /* (c) resumptions from the LIFO slot */
  uint64_t inject_pops;    /* (c) tasks taken from the inject queue */
  uint64_t inbox_pops;     /* (c) tasks taken from its inbox */
  uint64_t parks;          /* (c) times it blocked in its loop */
  uint64_t unparks;        /* (c) wake-ups sent to it (uv_async_send) */
  uint64_t io_polls;       /* (c) non-blocking polls of its loop (at a
                              fairness check, every 61 resumptions, once
                              the last poll is 50 us old, and before a
                              yielded task resumes: docs/design.md section
                              3); each park is a blocking one */
  uint64_t busy_ns;        /* (c) time it was not parked: running tasks,
                              polling its loop, searching for work */
  uint64_t timers_pending; /* (g) timers on its wheel (sleeps, timeouts) */
  uint64_t stacks_cached;  /* (g) free stacks in its own cache */
  uint64_t local_queue_depth; /* (g) tasks in its ring, its LIFO slot and
                                 its owner-only FIFO (tasks that must run
                                 on it) */
  uint64_t inbox_depth;    /* (g) tasks routed to it, not yet taken */
  uint64_t poll_time_count; /* (c) polls timed for the histogram (a sample:
                               weft_config_t.metrics_poll_sample) */
  uint64_t poll_time_sum_ns; /* (c) their total time */
  uint64_t poll_time_buckets[WEFT_METRICS_POLL_BUCKETS]; /* (c) their
                               histogram, not cumulative */
} weft_worker_metrics_t;

/* The whole runtime: the workers' counters summed, and its own gauges. */
typedef struct weft_runtime_metrics {
  uint64_t workers;        /* number of workers */
  uint64_t uptime_ns;      /* time since weft_run() started it */
  uint64_t tasks_alive;    /* (g) tasks spawned (main, by tasks, submitted
                              from other threads) and not yet finished */
  uint64_t tasks_spawned;  /* (c) every task created, main included */
  uint64_t tasks_finished; /* (c) every task that completed */
  uint64_t inject_depth;   /* (g) tasks in the global inject queue */
  uint64_t stacks_pooled;  /* (g) free stacks in the runtime-wide pool
                              (workers' caches not included) */
  uint64_t stacks_pooled_trimmed; /* (g) of those, the ones whose pages
                                     were given back to the kernel */
  uint64_t stack_size;     /* bytes of address space per stack */
} weft_runtime_metrics_t;

/* weft_metrics_worker()'s index for the sum over every worker (the
 * histogram too). */
#define WEFT_METRICS_ALL_WORKERS 0xffffffffu

/* Snapshot of worker `index` of rt (or, for WEFT_METRICS_ALL_WORKERS, the
 * sum over its workers) into *out, filling min(size,
 * sizeof(weft_worker_metrics_t)) bytes and zeroing the rest of size.
 * rt NULL: the calling task's runtime. Returns the number of bytes filled,
 * or WEFT_EINVAL (out NULL, size 0, index out of range), WEFT_ENOTTASK (rt
 * NULL outside a task), WEFT_ESTATE (the runtime's workers are gone:
 * weft_run() has ended or is ending). Any thread; does not suspend nor
 * wait for a worker (it may briefly take the process-wide registry lock
 * when called from outside rt's workers). */
WEFT_EXTERN int weft_metrics_worker(weft_runtime_t *rt, unsigned index,
                                    weft_worker_metrics_t *out, size_t size);

/* The runtime's own figures (weft_runtime_metrics_t; the workers' sums
 * come from weft_metrics_worker(rt, WEFT_METRICS_ALL_WORKERS, ...)). Same
 * arguments, return value and errors (no index). Also takes the stack
 * pool's lock for a moment. */
WEFT_EXTERN int weft_metrics_runtime(weft_runtime_t *rt,
                                     weft_runtime_metrics_t *out, size_t size);

/* Upper bound in nanoseconds of histogram bucket i (exclusive): 2^(10+i);
 * UINT64_MAX for the last bucket; 0 for i out of range. */
WEFT_EXTERN uint64_t weft_metrics_poll_bucket_le(unsigned i);

/* Write rt's metrics (rt NULL: the calling task's runtime) in the
 * Prometheus text exposition format (version 0.0.4) into buf: the runtime
 * gauges and counters, each worker's with a label worker="N", and the
 * poll-time histogram as weft_poll_time_seconds_bucket{le=...}, _sum and
 * _count, each family with its # HELP and # TYPE lines. Every line ends
 * with '\n'.
 *
 * Returns the length of the whole text (without a terminating NUL). When
 * that is < len, all of it was written with a NUL after it; otherwise buf
 * holds a truncated prefix (NUL-terminated when len > 0): call again with
 * a buffer of at least the returned length + 1. buf may be NULL when len
 * is 0 (to ask for the size). Does not suspend and makes no system call
 * but the clock's: safe from a task. Errors as weft_metrics_runtime(),
 * and WEFT_EINVAL for buf NULL with len > 0. */
WEFT_EXTERN long weft_metrics_write_prometheus(weft_runtime_t *rt, char *buf,
                                               size_t len);

WEFT_END_DECLS

#endif /* WEFT_METRICS_H */
