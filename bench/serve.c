/*
 * The server workloads' common part (bench/README.md, "Server workloads"):
 * listen on 127.0.0.1:PORT with every worker accepting, print READY
 * (flushed) once connections are accepted, serve until SIGTERM or SIGINT,
 * then shut down cleanly: close the server, close the clients, wait for
 * them, free everything.
 *
 * The TLS workloads (tls_echo_server, https_server) serve the same handlers
 * over TLS: a server context made from the certificate and key files, with
 * the policy of the other TLS servers they are compared with (bench/tls.sh):
 * TLS 1.3 only and no session tickets (the load never resumes), cipher
 * suites and groups at OpenSSL's defaults, everything else at weft's
 * defaults. weft runs each handshake before the handler starts.
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
  weft_tls_ctx_t *tls; /* NULL: plaintext */
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
  opts.stream.tls.ctx = sv->tls;
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
  if (sv->tls)
    fprintf(stderr, "weft-bench: %s: %ld TLS handshakes failed\n",
            sv->workload, weft_server_tls_failures(server));
  weft_server_free(server);
  if (rc == 0)
    rc = rc2;
  if (rc != 0) {
    bench_fail(sv->workload, "shutting down: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  return NULL;
}

/* The server context of the TLS workloads (see the top of this file). */
static int make_tls_ctx(const char *workload, const bench_tls_files_t *files,
                        weft_tls_ctx_t **out) {
  weft_tls_opts_t o;
  weft_tls_opts_init(&o);
  o.server = 1;
  o.cert_file = files->cert_file;
  o.key_file = files->key_file;
  o.min_version = WEFT_TLS_VERSION_1_3;
  o.max_version = WEFT_TLS_VERSION_1_3;
  o.no_session_tickets = 1;
  int rc = weft_tls_ctx_new(&o, out);
  if (rc != 0) {
    char why[256];
    if (weft_tls_error_string(why, sizeof(why)) <= 0)
      why[0] = '\0';
    return bench_fail(workload, "TLS context from %s and %s: %s (%s)%s%s",
                      files->cert_file, files->key_file, weft_strerror(rc),
                      weft_err_name(rc), why[0] ? ": " : "", why);
  }
  return 0;
}

int bench_serve(const char *workload, unsigned workers, int port,
                weft_server_handler_fn handler, const bench_tls_files_t *tls) {
  if (port < 0 || port > 65535)
    return bench_fail(workload, "port %d out of range", port);
  serve_t sv = {workload, workers, port, handler, NULL};
  if (tls && make_tls_ctx(workload, tls, &sv.tls) != 0)
    return BENCH_EXIT_FAIL;
  int rc = bench_run(workload, workers, serve_main, &sv);
  weft_tls_ctx_free(sv.tls);
  return rc;
}
