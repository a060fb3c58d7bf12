/*
 * weft debugging aids: the watchdog, which reports a task that runs too
 * long without suspending (blocking detection), and debug mode (asyncio's
 * debug mode, PYTHONASYNCIODEBUG), which turns the watchdog on and reports
 * misuse the API can only answer with an error code. Both are configured in
 * weft_config_t (weft/runtime.h) and report through one callback, or on
 * stderr. docs/observability.md shows their output.
 */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H

#include "common.h"

#include <stddef.h>
#include <stdint.h>

WEFT_BEGIN_DECLS

/* The watchdog's threshold in debug mode when weft_config_t.watchdog_ms
 * is 0. */
#define WEFT_WATCHDOG_MS_DEBUG 100u

/* What a report is about. */
typedef enum weft_report_kind {
  /* The watchdog: a task has run watchdog_ms or longer without suspending
   * (reported once per such episode, while it still runs). */
  WEFT_REPORT_BLOCKING = 1,
  /* Debug mode: a task failed (nonzero status other than WEFT_ECANCELED)
   * and its last handle went without anybody reading its status: asyncio's
   * "Task exception was never retrieved". */
  WEFT_REPORT_UNRETRIEVED = 2,
  /* Debug mode: a call that cannot work where it was made (a suspending
   * call outside a task, a handle already released): the call still
   * returns its error; the report says where it was made. */
  WEFT_REPORT_MISUSE = 3
} weft_report_kind_t;

/* One report. Every pointer is valid only during the callback. */
typedef struct weft_watchdog_report {
  weft_report_kind_t kind;
  uint64_t task_id;      /* the task's id (its default name's N), or 0 */
  const char *task_name; /* the task's name, or "" when there is no task */
  int worker;            /* BLOCKING: the worker running it; else -1 */
  uint64_t ran_ms;       /* BLOCKING: how long it has run so far, an upper
                            bound accurate to one check period
                            (watchdog_ms / 10) */
  uint64_t threshold_ms; /* BLOCKING: the threshold it crossed */
  int status;            /* UNRETRIEVED: the task's status; MISUSE: the
                            error the call returns (WEFT_E*) */
  const char *what;      /* MISUSE: the call, e.g. "weft_sleep"; else "" */
  void *const *pcs;      /* backtrace, innermost first (BLOCKING: where
                            the task was when sampled; MISUSE: the caller
                            of `what`); may be empty */
  size_t npcs;
  const char *text;      /* the whole report as written to stderr when no
                            callback is set: a first line, then one line
                            per backtrace frame; ends with a newline */
} weft_watchdog_report_t;

/* A report callback (weft_config_t.watchdog_fn). BLOCKING reports are made
 * on the runtime's watchdog thread, which waits for the callback to return
 * before it checks the workers again; the others on the thread of the call
 * that detected them (a worker, or any thread). It must not suspend. */
typedef void (*weft_watchdog_fn)(const weft_watchdog_report_t *report,
                                 void *arg);

WEFT_END_DECLS

#endif /* WEFT_DEBUG_H */
