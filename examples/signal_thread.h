/*
 * examples/signal_thread.h: hand SIGINT and SIGTERM to a weft program as
 * items of a weft_queue, for the programs that serve until told to stop
 * (echo_server, site, weft-bench's server workloads).
 *
 * weft has no signal API of its own yet, and a signal handler may do almost
 * nothing, so: both signals are blocked in the calling thread before the
 * runtime starts (its workers inherit the mask), and a plain thread takes
 * them with sigwait() and puts the signal number on the queue with
 * weft_queue_try_put(), which may be called from any thread. A task waits
 * for it with weft_queue_get(). Requires _POSIX_C_SOURCE >= 200809L.
 */
#ifndef WEFT_EXAMPLES_SIGNAL_THREAD_H
#define WEFT_EXAMPLES_SIGNAL_THREAD_H

#include <weft.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

typedef struct signal_thread {
  sigset_t set;        /* SIGINT and SIGTERM */
  weft_queue_t *queue; /* receives the signal number */
  pthread_t thread;
} signal_thread_t;

static void *signal_thread_main(void *arg) {
  signal_thread_t *st = arg;
  int sig = 0;
  if (sigwait(&st->set, &sig) == 0)
    weft_queue_try_put(st->queue, (void *)(intptr_t)sig);
  return NULL;
}

/* Block SIGINT and SIGTERM in the calling thread (so in every thread it
 * creates from now on, weft's workers too) and start the thread that hands
 * them to `queue`. Call before weft_run(). Returns 0 or -1. */
static inline int signal_thread_start(signal_thread_t *st,
                                      weft_queue_t *queue) {
  sigemptyset(&st->set);
  sigaddset(&st->set, SIGINT);
  sigaddset(&st->set, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &st->set, NULL) != 0)
    return -1;
  st->queue = queue;
  return pthread_create(&st->thread, NULL, signal_thread_main, st) == 0 ? 0
                                                                       : -1;
}

/* Join the thread after weft_run() returned. `signalled` 0 (the runtime
 * ended without a signal) releases it with a SIGTERM of its own. */
static inline void signal_thread_join(signal_thread_t *st, int signalled) {
  if (!signalled)
    pthread_kill(st->thread, SIGTERM);
  pthread_join(st->thread, NULL);
}

#endif /* WEFT_EXAMPLES_SIGNAL_THREAD_H */
