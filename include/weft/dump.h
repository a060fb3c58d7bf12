/*
 * weft task dumps: what every task of every running runtime is doing, with
 * what it waits on and, for a suspended task, its backtrace (Go's
 * SIGQUIT goroutine dump, asyncio's Task.print_stack for all tasks).
 *
 * Nothing is recorded for dumps but a few stores a task makes when it
 * suspends: a dump costs nothing until it is asked for. It may be asked for
 * from a task, from any other thread, or by a signal (weft_dump_on_signal).
 * A dump stops no worker: it holds each task's record only while it copies
 * it (and walks its stack), and a worker about to resume that task waits
 * for that one copy. docs/observability.md has a worked example.
 */
#ifndef WEFT_DUMP_H
#define WEFT_DUMP_H

#include "common.h"
#include "task.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

WEFT_BEGIN_DECLS

/* Where a task is in its life. */
typedef enum weft_task_run_state {
  WEFT_TASK_RUNNING = 1, /* a worker runs it now (`worker`) */
  WEFT_TASK_READY = 2,   /* queued to run: never ran yet, woken, yielded */
  WEFT_TASK_WAITING = 3  /* suspended until `wait` happens */
} weft_task_run_state_t;

/* What a task waits on (the suspension point it last entered). `wait_obj`
 * of a snapshot is the object named in each comment. */
typedef enum weft_wait_kind {
  WEFT_WAIT_NONE = 0,       /* never suspended yet */
  WEFT_WAIT_YIELD,          /* weft_yield() or a budget yield: ready */
  WEFT_WAIT_SLEEP,          /* weft_sleep(); the deadline says until when */
  WEFT_WAIT_TASK,           /* awaiting one task (weft_task_t *) */
  WEFT_WAIT_TASKS,          /* gather, weft_wait, as_completed (the first
                               task awaited) */
  WEFT_WAIT_TASKGROUP,      /* a task group's end (weft_taskgroup_t *) */
  WEFT_WAIT_FUTURE,         /* weft_future_wait (weft_future_t *) */
  WEFT_WAIT_LOCK,           /* weft_lock_t * */
  WEFT_WAIT_EVENT,          /* weft_event_t * */
  WEFT_WAIT_SEMAPHORE,      /* weft_semaphore_t * */
  WEFT_WAIT_CONDITION,      /* weft_cond_t * */
  WEFT_WAIT_BARRIER,        /* weft_barrier_t * */
  WEFT_WAIT_QUEUE_GET,      /* weft_queue_t * */
  WEFT_WAIT_QUEUE_PUT,      /* weft_queue_t * */
  WEFT_WAIT_QUEUE_JOIN,     /* weft_queue_t * */
  WEFT_WAIT_STREAM_READ,    /* weft_stream_t * */
  WEFT_WAIT_STREAM_WRITE,   /* weft_stream_t *: a write or drain */
  WEFT_WAIT_STREAM_CLOSE,   /* weft_stream_t * */
  WEFT_WAIT_CONNECT,        /* weft_stream_t * being connected */
  WEFT_WAIT_ACCEPT,         /* the server (weft_server_t *) */
  WEFT_WAIT_TLS,            /* a TLS handshake (weft_stream_t *) */
  WEFT_WAIT_DNS,            /* a name lookup (its request) */
  WEFT_WAIT_OFFLOAD,        /* a thread-pool job (its request) */
  WEFT_WAIT_FILE,           /* a file operation (weft_file_t * or request) */
  WEFT_WAIT_SUBPROCESS,     /* weft_process_t * */
  WEFT_WAIT_SIGNAL,         /* a signal (its watcher) */
  WEFT_WAIT_UDP_RECV,       /* weft_udp_t * */
  WEFT_WAIT_UDP_SEND,       /* weft_udp_t * */
  WEFT_WAIT_IO,             /* other I/O (its object) */
  WEFT_WAIT_KIND_COUNT      /* the number of kinds */
} weft_wait_kind_t;

/* A stable, short name for a state or a wait kind ("running", "lock", ...);
 * "?" for a value out of range. */
WEFT_EXTERN const char *weft_task_run_state_name(int state);
WEFT_EXTERN const char *weft_wait_kind_name(int kind);

/* The most frames a snapshot keeps of a backtrace. */
#define WEFT_BACKTRACE_MAX 32

/* One task, as a dump saw it. Times are milliseconds. */
typedef struct weft_task_snapshot {
  uint64_t id;             /* its number (default names are "task-ID") */
  uint64_t parent_id;      /* the task that spawned it (has_parent) */
  int has_parent;          /* 0 for the main task (whose id is 0) and
                              tasks submitted from outside */
  char name[WEFT_TASK_NAME_MAX + 1];
  weft_task_run_state_t state;
  /* What it waits on (WAITING), or waited on last (READY: woken, not yet
   * running again); WEFT_WAIT_NONE while RUNNING. */
  weft_wait_kind_t wait;
  const void *wait_obj;    /* the object waited on; NULL if none */
  uint64_t wait_deadline_ms; /* weft_time_ms() clock; WEFT_NO_TIMEOUT if
                                the wait has no deadline of its own */
  int worker;              /* RUNNING: the worker running it; else the one
                              it last ran on; -1 if it never ran */
  int home;                /* worker whose pool holds its record; -1 for
                              the main task and tasks from outside */
  int runtime;             /* which running runtime (0, 1, ... in the
                              order they started) */
  uint64_t age_ms;         /* since it was spawned */
  uint64_t state_ms;       /* since it last suspended (not RUNNING) */
  int cancels;             /* cancellation requests not withdrawn */
  int cancel_pending;      /* 1: a request waits for a suspension point */
  /* Its backtrace, innermost first: return addresses (the first frame is
   * weft's own switch), only for suspended tasks and only if the dump asked
   * for them (WEFT_SNAPSHOT_BACKTRACE) and weft can walk stacks here
   * (docs/observability.md). */
  unsigned nframes;
  void *frames[WEFT_BACKTRACE_MAX];
} weft_task_snapshot_t;

/* Flags of weft_task_snapshot(). */
#define WEFT_SNAPSHOT_BACKTRACE 1u /* walk suspended tasks' stacks */

/* Snapshot every task of every running runtime (finished tasks whose
 * handles are still held are left out; tasks submitted from outside are
 * in): *out gets a weft_malloc'ed array of *n entries (NULL if 0) which
 * weft_task_snapshot_free releases. May be called from any thread, in a
 * task or not. Tasks are copied one at a time:
 * the snapshot is no single instant of the whole runtime.
 * Errors: WEFT_EINVAL (out or n NULL, unknown flags), WEFT_ENOMEM. */
WEFT_EXTERN int weft_task_snapshot(unsigned flags, weft_task_snapshot_t **out,
                                size_t *n);
WEFT_EXTERN void weft_task_snapshot_free(weft_task_snapshot_t *snap);

/* Write a human-readable dump of every task, with backtraces, to f / fd
 * (docs/observability.md shows its format). Returns the number of tasks
 * dumped. From any thread. Errors: WEFT_EINVAL (f NULL, fd < 0),
 * WEFT_ENOMEM, WEFT_EIO (the write failed). */
WEFT_EXTERN int weft_dump_tasks(FILE *f);
WEFT_EXTERN int weft_dump_tasks_fd(int fd);

/* Symbolise a code address as "function+0xOFF (object)" into buf (always
 * NUL-terminated if size > 0); returns the length it needed, as snprintf.
 * Functions not in the dynamic symbol table are named from the object's
 * full symbol table when weft is built with libunwind, else shown as
 * "object+0xOFF" (docs/observability.md). Errors: WEFT_EINVAL (buf NULL
 * with size > 0). */
WEFT_EXTERN int weft_symbolize(const void *pc, char *buf, size_t size);

/* Dump every task to fd whenever signal signo arrives (Go's SIGQUIT dump,
 * off by default): the handler only writes a byte to a pipe, and a dumper
 * thread writes the dump. signo 0 turns it off (restoring the previous
 * handler). One signal at a time: a second call replaces the first. fd
 * stays the caller's (not closed). Process-wide; independent of weft_run.
 * Errors: WEFT_EINVAL (signo out of range or one weft cannot take:
 * SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL; fd < 0 with signo),
 * a negated errno from sigaction or thread creation. */
WEFT_EXTERN int weft_dump_on_signal(int signo, int fd);

WEFT_END_DECLS

#endif /* WEFT_DUMP_H */
