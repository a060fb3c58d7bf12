/*
 * weft benchmarks: the helpers every workload shares.
 *
 * Each workload (defined in bench/README.md) lives
 * in its own file and exposes one entry point, bench_<workload>(workers),
 * which runs the workload under weft_run() with that many workers, prints
 * exactly one RESULT line on success and returns the process exit status (0
 * on success, 1 with a message on stderr on any error or failed check).
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <weft.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Exit status of a workload that failed or whose check did not hold. */
#define BENCH_EXIT_FAIL 1
/* Exit status for a usage error or a workload that is not implemented. */
#define BENCH_EXIT_USAGE 2

/* Nanoseconds of CLOCK_MONOTONIC (wall clock, unaffected by clock changes). */
uint64_t bench_now_ns(void);

/* The value, in kB, of a field of /proc/self/status ("VmRSS", "VmHWM"), or
 * -1 if it cannot be read. */
long bench_status_kb(const char *field);

/* Page faults of the whole process so far (getrusage's ru_minflt, every
 * thread; a huge-page fault counts one); -1 on error. */
long bench_minflt(void);

/* Print `RESULT <workload> weft <workers> <fmt...>` and a newline to stdout,
 * then flush it. fmt holds the metric and the keys: "ns_per_task=%.1f ...". */
void bench_result(const char *workload, unsigned workers, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Print `weft-bench: <workload>: <fmt...>` and a newline to stderr and
 * return BENCH_EXIT_FAIL, so that a failure path reads
 * `return bench_fail("spawn_many", "...", ...);`. */
int bench_fail(const char *workload, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Run main_fn(arg) as the main task of a runtime with `workers` workers and
 * every other setting at its default (the benchmarks measure the defaults).
 * Returns 0, or BENCH_EXIT_FAIL after reporting weft_run's error (the main
 * task's status) on stderr. */
int bench_run(const char *workload, unsigned workers, weft_task_fn main_fn,
              void *arg);

/* Report an error a task cannot return to anyone (a detached task's failed
 * weft call): print `weft-bench: <workload>: <what>: <error>` on stderr and
 * end the process at once with BENCH_EXIT_FAIL. Never returns. */
_Noreturn void bench_die(const char *workload, const char *what, int err);

/*
 * A completion latch: the stand-in for the event several workloads signal
 * ("the last one signals completion", bench/README.md), written before weft
 * had weft_event_t and kept so that figures stay comparable. Tasks
 * arrive by incrementing an atomic counter; the one whose increment reaches
 * the target puts one item on an unbounded weft_queue_t, which the waiting
 * task takes with weft_queue_get() (parked, not polling).
 */
typedef struct bench_latch {
  atomic_size_t count;  /* arrivals so far */
  size_t target;        /* arrivals that complete the latch */
  weft_queue_t *done;   /* receives one item when count reaches target */
} bench_latch_t;

/* Prepare l for `target` arrivals. 0 or a weft error (WEFT_ENOMEM).
 * Callable outside a task. */
int bench_latch_init(bench_latch_t *l, size_t target);
/* Free l's queue; l must not be waited on. */
void bench_latch_destroy(bench_latch_t *l);
/* Count one arrival; the last one wakes the waiter. Returns the number of
 * arrivals including this one. Never suspends; calls bench_die() if the
 * wake-up cannot be queued. */
size_t bench_latch_arrive(bench_latch_t *l, const char *workload);
/* Wait until the latch completes. 0 or the error of weft_queue_get(). */
int bench_latch_wait(bench_latch_t *l);

/* The in-process workloads, one per file. */
int bench_spawn_many(unsigned workers);
int bench_yield_many(unsigned workers);
int bench_ping_pong(unsigned workers);
int bench_chained_spawn(unsigned workers);
int bench_timers(unsigned workers);
int bench_timeouts(unsigned workers);
int bench_fanout_cpu(unsigned workers);
int bench_idle_memory(unsigned workers);
int bench_mutex_contended(unsigned workers);
int bench_queue_mpmc(unsigned workers);

/* The certificate chain and private key (PEM files) a TLS server workload
 * presents. */
typedef struct bench_tls_files {
  const char *cert_file;
  const char *key_file;
} bench_tls_files_t;

/* The server workloads (serve.c runs them): listen on 127.0.0.1:port, print
 * READY, serve until SIGTERM or SIGINT, shut down cleanly. Return 0 or
 * BENCH_EXIT_FAIL. With tls non-NULL every accepted connection is TLS
 * (serve.c says with which settings) and the handler runs once its
 * handshake completed; the same handler then serves plaintext and TLS. */
int bench_serve(const char *workload, unsigned workers, int port,
                weft_server_handler_fn handler, const bench_tls_files_t *tls);
int bench_echo_server(unsigned workers, int port);
int bench_udp_echo_server(unsigned workers, int port);
int bench_http_server(unsigned workers, int port);
/* The same servers over TLS: tls_echo_server and https_server. */
int bench_tls_echo_server(unsigned workers, int port,
                          const bench_tls_files_t *tls);
int bench_https_server(unsigned workers, int port,
                       const bench_tls_files_t *tls);

/* crawl (crawl.c): crawl the synthetic site of examples/site running on
 * 127.0.0.1:port with examples/crawl.c's engine, print one RESULT line.
 * Returns 0 or BENCH_EXIT_FAIL. */
int bench_crawl(unsigned workers, int port);

#endif /* WEFT_BENCH_H */
