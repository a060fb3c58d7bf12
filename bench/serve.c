/*
 * The server workloads' common part (bench-spec.md, "Server workloads"):
 * listen on 127.0.0.1:PORT with every worker accepting, print READY
 * (flushed) once connections are accepted, serve until SIGTERM or SIGINT,
 * then shut down cleanly: close the server, close the clients, wait for
 * them, free everything.
 *
 * Signals reach the runtime through a weft_queue: SIGINT and SIGTERM are
 * blocked in every thread (the workers inherit the mask), and a plain thread
 * waits for them with sigwait() and hands the number to the main task with
 * weft_queue_try_put(), which may be called from any thread.
 */
#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask */

#include "bench.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef struct serve {
  const char *workload;
  unsigned workers;
  int port;
  weft_server_handler_fn handler;
  weft_queue_t *signals; /* signal numbers from the signal thread */
} serve_t;

static void *serve_main(void *arg) {
  serve_t *sv = arg;
  weft_server_opts_t opts;
  weft_server_opts_init(&opts);
  opts.backlog = 1024;
  weft_server_t *server;
  int rc = weft_start_server(sv->handler, NULL, "127.0.0.1", sv->port, &opts,
                             &server);
  if (rc != 0) {
    bench_fail(sv->workload, "weft_start_server(127.0.0.1:%d): %s", sv->port,
               weft_strerror(rc));
    return weft_task_fail(rc);
  }
  printf("READY\n");
  fflush(stdout);
  void *sig;
  rc = weft_queue_get(sv->signals, &sig); /* serve until a signal */
  int rc2 = weft_server_close(server);
  if (rc2 == 0)
    rc2 = weft_server_close_clients(server);
  if (rc2 == 0)
    rc2 = weft_server_wait_closed(server);
  for (unsigned i = 0; i < sv->workers; i++)
    fprintf(stderr, "weft-bench: %s: worker %u accepted %ld connections\n",
            sv->workload, i, weft_server_accepted(server, i));
  weft_server_free(server);
  if (rc == 0)
    rc = rc2;
  if (rc != 0) {
    bench_fail(sv->workload, "shutting down: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  return NULL;
}

typedef struct sigthread {
  sigset_t set;
  weft_queue_t *queue;
} sigthread_t;

static void *signal_thread(void *arg) {
  sigthread_t *st = arg;
  int sig = 0;
  if (sigwait(&st->set, &sig) == 0)
    weft_queue_try_put(st->queue, (void *)(intptr_t)sig);
  return NULL;
}

int bench_serve(const char *workload, unsigned workers, int port,
                weft_server_handler_fn handler) {
  if (port < 0 || port > 65535)
    return bench_fail(workload, "port %d out of range", port);
  serve_t sv = {workload, workers, port, handler, NULL};
  sigthread_t st;
  sigemptyset(&st.set);
  sigaddset(&st.set, SIGINT);
  sigaddset(&st.set, SIGTERM);
  int rc = pthread_sigmask(SIG_BLOCK, &st.set, NULL);
  if (rc != 0)
    return bench_fail(workload, "pthread_sigmask failed");
  rc = weft_queue_new(0, &sv.signals);
  if (rc != 0)
    return bench_fail(workload, "weft_queue_new: %s", weft_strerror(rc));
  st.queue = sv.signals;
  pthread_t thread;
  if (pthread_create(&thread, NULL, signal_thread, &st) != 0) {
    weft_queue_free(sv.signals);
    return bench_fail(workload, "cannot start the signal thread");
  }
  rc = bench_run(workload, workers, serve_main, &sv);
  if (rc != 0) {
    /* The runtime failed before a signal came: release the thread. */
    pthread_kill(thread, SIGTERM);
  }
  pthread_join(thread, NULL);
  weft_queue_free(sv.signals);
  return rc;
}
