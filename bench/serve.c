/*
 * The server workloads' common part (bench/README.md, "Server workloads"):
 * listen on 127.0.0.1:PORT with every worker accepting, print READY
 * (flushed) once connections are accepted, serve until SIGTERM or SIGINT,
 * then shut down cleanly: close the server, close the clients, wait for
 * them, free everything.
 *
 * The main task waits for SIGINT and SIGTERM with a signal watcher
 * (weft/signal.h), created before READY is printed.
 */
#include "bench.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef struct serve {
  const char *workload;
  unsigned workers;
  int port;
  weft_server_handler_fn handler;
} serve_t;

static void *serve_main(void *arg) {
  serve_t *sv = arg;
  static const int stop_signals[] = {SIGINT, SIGTERM};
  weft_signal_t *signals;
  int rc = weft_signal_new(stop_signals, 2, &signals);
  if (rc != 0) {
    bench_fail(sv->workload, "weft_signal_new: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  weft_server_opts_t opts;
  weft_server_opts_init(&opts);
  opts.backlog = 1024;
  weft_server_t *server;
  rc = weft_start_server(sv->handler, NULL, "127.0.0.1", sv->port, &opts,
                         &server);
  if (rc != 0) {
    bench_fail(sv->workload, "weft_start_server(127.0.0.1:%d): %s", sv->port,
               weft_strerror(rc));
    weft_signal_free(signals);
    return weft_task_fail(rc);
  }
  printf("READY\n");
  fflush(stdout);
  rc = weft_signal_wait(signals, WEFT_NO_TIMEOUT, NULL); /* serve until one */
  weft_signal_free(signals);
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
  serve_t sv = {workload, workers, port, handler};
  return bench_run(workload, workers, serve_main, &sv);
}
