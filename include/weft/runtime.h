/*
 * weft runtime: configuration, weft_run (asyncio.run), the runtime handle
 * (asyncio's running loop) and worker statistics.
 *
 * A runtime handle is reference counted and outlives weft_run(): after the
 * runtime has shut down, the handle is still valid (submission with
 * weft_runtime_submit(), weft/foreign.h, fails with WEFT_ERUNTIME_SHUTDOWN)
 * until its last reference is dropped. weft_runtime_ref() and
 * weft_runtime_unref() may be called from any thread.
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include "common.h"
#include "debug.h"
#include "task.h"

WEFT_BEGIN_DECLS

/* Default stack size of a task: 256 KiB of address space, of which a task
 * that stays shallow touches (and costs) one 4 KiB page. */
#define WEFT_STACK_SIZE_DEFAULT (256u * 1024u)
/* Smallest accepted stack size. */
#define WEFT_STACK_SIZE_MIN (16u * 1024u)
/* Default number of stacks that get a guard page (a guard region on Linux
 * 6.13+; before that a PROT_NONE page, two kernel mappings each, and Linux
 * allows 65530 mappings per process by default). Stacks beyond this many
 * are carved from unguarded slabs and protected by a canary instead. */
#define WEFT_GUARDED_STACKS_DEFAULT 8192u

/* Default of weft_config_t.offload_grace_ms. */
#define WEFT_OFFLOAD_GRACE_MS_DEFAULT 5000

/* Runtime configuration. Initialise with weft_config_init(), then set fields.
 * Fields may be appended in minor releases (see weft/version.h). */
typedef struct weft_config {
  /* Worker threads; 0 = uv_available_parallelism(). At most 1024. */
  unsigned workers;
  /* Stack size of every task in bytes, rounded up to the page size;
   * 0 = WEFT_STACK_SIZE_DEFAULT. Must be >= WEFT_STACK_SIZE_MIN. */
  size_t stack_size;
  /* How many task stacks get a guard page; see WEFT_GUARDED_STACKS_DEFAULT. */
  size_t guarded_stacks;
  /* Upper bound on concurrently live tasks (spawned and not yet freed);
   * spawning past it fails with WEFT_ENOMEM. 0 = no bound beyond memory. */
  size_t max_tasks;
  /* Deterministic mode: forces one worker and disables the LIFO slot, so that
   * ready tasks run in exactly asyncio's FIFO order (one "loop iteration"
   * runs the tasks that were ready when it began, then polls I/O and timers). */
  int deterministic;
  /* Disable the LIFO slot (a task woken by the running task runs next). */
  int disable_lifo;
  /* Install a SIGSEGV handler (on an alternate stack per worker) that turns a
   * fault in a guard page into a "stack overflow in task 'name'" report
   * before aborting. Default 1. The previous handler is chained for faults
   * that are not stack overflows, and restored when the runtime ends; so is
   * the alternate stack of the thread that called weft_run() (worker 0 runs
   * there and installs its own while the runtime runs). */
  int overflow_handler;
  /* How long, in ms, weft_run() waits once every task has finished for
   * functions still running on libuv's thread pool that tasks of this
   * runtime offloaded (weft_to_thread()) and abandoned when cancelled;
   * 0 = WEFT_OFFLOAD_GRACE_MS_DEFAULT (5 s), WEFT_NO_TIMEOUT = as long as
   * they take. Past it, weft_run() reports each such function on stderr, leaves
   * it running and returns as usual (main's status): see weft/offload.h
   * for what is left behind. */
  uint64_t offload_grace_ms;
  /* asyncio.run()'s SIGINT handling (Python 3.11+), default 0 (off). When
   * set, and SIGINT still has its default disposition when weft_run()
   * starts (and no other runtime of the process has taken it), the first
   * SIGINT cancels the main task: it sees WEFT_ECANCELED at its current or
   * next suspension point and may clean up; if it then ends cancelled (it
   * did not weft_task_uncancel() that request and no other cancellation is
   * pending), weft_run() returns WEFT_EINTR. A SIGINT that comes once main
   * has finished, and the second SIGINT, get the default disposition at
   * once: the process is killed by SIGINT (asyncio raises
   * KeyboardInterrupt). The signal reaches main through worker 0's loop
   * (weft/signal.h: the same latency); the second one needs no worker.
   * SIGINT is restored to its default disposition when weft_run() returns.
   * While a runtime owns SIGINT, weft/signal.h refuses it (WEFT_EBUSY). */
  int sigint_cancels_main;
  /* Metrics (weft/metrics.h): one task poll in about this many, chosen
   * with jitter, is timed for the poll-time histogram; 1 times every poll
   * (two clock reads per task switch); 0 = WEFT_METRICS_POLL_SAMPLE_DEFAULT
   * (128). At most 1 << 24. */
  unsigned metrics_poll_sample;
  /* The watchdog (weft/debug.h, docs/observability.md): a task that runs
   * watchdog_ms or longer without suspending is reported once per episode,
   * with its name, id, worker, how long so far and where it is (its worker
   * thread is sampled with a signal, not stopped). 0 = off, unless debug
   * mode is on (then WEFT_WATCHDOG_MS_DEBUG); when 0, the environment
   * variable WEFT_WATCHDOG_MS, a decimal number of ms, is used if set. A
   * report comes within watchdog_ms / 5 (+ scheduling delays) of the
   * crossing. At most 3600000 (WEFT_EINVAL beyond). */
  uint64_t watchdog_ms;
  /* Where reports go (watchdog and debug mode): NULL = stderr. */
  weft_watchdog_fn watchdog_fn;
  void *watchdog_arg;
  /* The signal the watchdog samples workers with; 0 = SIGURG (which Go's
   * runtime also uses: ignored by default, rarely used otherwise). Pick
   * another one (e.g. SIGRTMIN + n) if the program uses SIGURG; weft
   * installs its handler on first use and keeps it installed, passing
   * signals it did not ask for to the handler that was there before.
   * WEFT_EINVAL if not a valid signal, or SIGKILL, SIGSTOP, SIGSEGV,
   * SIGBUS, SIGFPE, SIGILL, SIGABRT. */
  int watchdog_signal;
  /* Debug mode (asyncio's debug mode): also on when the environment
   * variable WEFT_DEBUG is set to anything but "" or "0". Turns the
   * watchdog on and reports misuse (weft/debug.h); docs/observability.md. */
  int debug;
} weft_config_t;

/* Fill cfg with the defaults. Never fails; callable from anywhere. */
WEFT_EXTERN void weft_config_init(weft_config_t *cfg);

/* asyncio.run(main(arg)): create a runtime with cfg (NULL = defaults), run
 * main(arg) as its first task, and wait for it. When main returns, every task
 * still alive is cancelled and awaited: from then on every suspension point
 * of every task returns WEFT_ECANCELED at once, so shutdown cannot hang on a
 * task that ignores one cancellation. Then all memory, stacks, threads and
 * loops are freed.
 *
 * Returns main's status (0, or the error it failed with: see
 * weft_task_fail()), or WEFT_EINTR when main ended cancelled by a SIGINT
 * (cfg.sigint_cancels_main); main's return value is stored in *result if
 * result is not NULL. Errors of its own: WEFT_EINVAL (main NULL, or a bad
 * cfg field), WEFT_ENOMEM, WEFT_EBUSY (called from inside a task: nest runtimes by
 * spawning, not by blocking a worker), or a thread/loop creation error.
 *
 * Blocks the calling thread; must be called outside any task. Several threads
 * may each run their own runtime at the same time. */
WEFT_EXTERN int weft_run(weft_task_fn main, void *arg, const weft_config_t *cfg,
                         void **result);

/* A reference-counted handle to a runtime. */
typedef struct weft_runtime weft_runtime_t;

/* asyncio.get_running_loop(): the runtime of the calling task, or NULL
 * outside a task. The pointer is borrowed: valid while the runtime runs;
 * weft_runtime_ref() it to keep it longer or to hand it to another thread.
 * Does not suspend. */
WEFT_EXTERN weft_runtime_t *weft_runtime_current(void);

/* Add a reference to rt and return rt (NULL is returned for NULL). rt must
 * be a live handle: borrowed from weft_runtime_current() in a task of that
 * runtime, or a reference the caller holds. */
WEFT_EXTERN weft_runtime_t *weft_runtime_ref(weft_runtime_t *rt);

/* Drop a reference. The handle's memory is freed when the last reference is
 * dropped and weft_run() has returned (weft_run() holds one of its own while
 * it runs). NULL is ignored. */
WEFT_EXTERN void weft_runtime_unref(weft_runtime_t *rt);

/* Counters of one worker, read with relaxed loads (a consistent snapshot is
 * not guaranteed while the runtime runs). */
typedef struct weft_worker_stats {
  uint64_t tasks_run;   /* task resumptions on this worker (polls) */
  uint64_t tasks_spawned; /* tasks created by tasks running on this worker */
  uint64_t steals;      /* successful steal operations by this worker */
  uint64_t stolen;      /* tasks this worker took from other workers */
  uint64_t lifo_runs;   /* resumptions that came from the LIFO slot */
  uint64_t inject_pops; /* tasks taken from the global inject queue */
  uint64_t inbox_pops;  /* tasks and requests taken from this worker's inbox */
  uint64_t io_polls;    /* non-blocking polls of the loop (fairness checks
                           at least 50 us apart, and yields: design.md §3) */
  uint64_t parks;       /* times the worker blocked in its loop */
  uint64_t wakeups;     /* uv_async_send calls made to wake this worker */
} weft_worker_stats_t;

/* Number of workers of the calling task's runtime, or WEFT_ENOTTASK outside
 * a task. Does not suspend. */
WEFT_EXTERN int weft_worker_count(void);

/* Index (0..count-1) of the worker running the calling task at this instant,
 * or WEFT_ENOTTASK outside a task. A task may move to another worker at any
 * suspension point, so the value is only good until the next one. */
WEFT_EXTERN int weft_worker_index(void);

/* Copy worker `index`'s counters to *out. WEFT_ENOTTASK outside a task,
 * WEFT_EINVAL for an index out of range or out NULL. Does not suspend. */
WEFT_EXTERN int weft_worker_stats(unsigned index, weft_worker_stats_t *out);

WEFT_END_DECLS

#endif /* WEFT_RUNTIME_H */
