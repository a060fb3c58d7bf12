/*
 * The server workloads' common part (bench/README.md, "Server workloads"):
 * listen on 127.0.0.1:PORT with every worker accepting, print READY
 * (flushed) once connections are accepted, serve until SIGTERM or SIGINT,
 * then shut down cleanly: close the server, close the clients, wait for
 * them, free everything.
 *
 * Signals reach the runtime through a weft_queue: SIGINT and SIGTERM are
 * blocked in every thread (the workers inherit the mask), and a plain thread
 * waits for them with sigwait() and hands the number to the main task with
 * weft_queue_try_put(), which may be called from any thread
 * (examples/signal_thread.h, shared with the examples).
 */
#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask */

#include "bench.h"
#include "../examples/signal_thread.h"

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

int bench_serve(const char *workload, unsigned workers, int port,
                weft_server_handler_fn handler) {
  if (port < 0 || port > 65535)
    return bench_fail(workload, "port %d out of range", port);
  serve_t sv = {workload, workers, port, handler, NULL};
  signal_thread_t st;
  int rc = weft_queue_new(0, &sv.signals);
  if (rc != 0)
    return bench_fail(workload, "weft_queue_new: %s", weft_strerror(rc));
  if (signal_thread_start(&st, sv.signals) != 0) {
    weft_queue_free(sv.signals);
    return bench_fail(workload, "cannot start the signal thread");
  }
  rc = bench_run(workload, workers, serve_main, &sv);
  signal_thread_join(&st, rc == 0); /* rc != 0: no signal came */
  weft_queue_free(sv.signals);
  return rc;
}
