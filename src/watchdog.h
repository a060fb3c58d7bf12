/*
 * The watchdog (watchdog.c, protocol at its top): one thread per runtime
 * whose configuration asks for it, which reports a task that runs longer
 * than the threshold without suspending, with a backtrace sampled from its
 * worker thread by a signal.
 */
#ifndef WEFT_WATCHDOG_H
#define WEFT_WATCHDOG_H

#include "weft.h"

typedef struct weft__watchdog weft__watchdog_t;

/* Resolve the watchdog's part of cfg in place (runtime.c's
 * resolve_config): the environment (WEFT_DEBUG, WEFT_WATCHDOG_MS), debug
 * mode's default threshold and the signal. WEFT_EINVAL for a bad field. */
int weft__watchdog_config(weft_config_t *cfg);

/* Allocate rt's watchdog into rt->watchdog if rt->cfg.watchdog_ms is
 * nonzero (else leave it NULL), and install the sampling signal's
 * handler. Before any worker thread is created: the handler reads
 * rt->watchdog on the workers' threads. 0 or WEFT_ENOMEM / a sigaction
 * error. */
int weft__watchdog_init(weft_runtime_t *rt);

/* Start the watchdog thread, from the thread that runs worker 0, once
 * every worker thread exists. Failing to start it is not fatal: the
 * runtime runs unwatched (a line on stderr says so). */
void weft__watchdog_start(weft_runtime_t *rt);

/* Stop and join the watchdog thread and free rt->watchdog: after every
 * worker has left its run loop, before any worker thread is joined. NULL
 * watchdog: nothing. */
void weft__watchdog_stop(weft_runtime_t *rt);

#endif /* WEFT_WATCHDOG_H */
