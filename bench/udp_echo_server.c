/*
 * udp_echo_server (bench/README.md): a UDP echo server written the way a
 * user would write it with weft/udp.h: weft_udp_server_start() with one
 * SO_REUSEPORT endpoint per worker, read with recvmmsg() batches, and two
 * receiving tasks per endpoint that send every datagram back to its sender.
 *
 *   weft-bench udp_echo_server WORKERS PORT
 *
 * Prints READY once bound, serves until SIGTERM or SIGINT, then closes the
 * server and reports per-worker counts on stderr. Load it with
 * bench/udp_load (bench/udp.sh runs the comparison).
 */
#include "bench.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>

#define UDP_TASKS 2
#define UDP_MAX_WORKERS 1024

static atomic_long udp_echoed[UDP_MAX_WORKERS];

static void udp_echo(weft_udp_t *u, void *arg) {
  char buf[2048];
  weft_udp_info_t info;
  int w = weft_worker_index();
  long n_local = 0;
  (void)arg;
  for (;;) {
    int n = weft_udp_recv(u, buf, sizeof buf, &info);
    if (n < 0)
      break; /* closed, or the runtime's shutdown */
    if (weft_udp_send(u, buf, (size_t)n, (struct sockaddr *)&info.addr) == 0)
      n_local++;
  }
  /* relaxed: read after the server's close waited for this task. */
  atomic_fetch_add_explicit(&udp_echoed[w], n_local, memory_order_relaxed);
}

typedef struct udp_serve {
  unsigned workers;
  int port;
} udp_serve_t;

static void *udp_serve_main(void *arg) {
  udp_serve_t *sv = arg;
  static const int stop_signals[] = {SIGINT, SIGTERM};
  weft_signal_t *signals;
  int rc = weft_signal_new(stop_signals, 2, &signals);
  if (rc != 0) {
    bench_fail("udp_echo_server", "weft_signal_new: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  weft_udp_server_opts_t so;
  weft_udp_server_opts_init(&so);
  so.udp.local_host = "127.0.0.1";
  so.udp.local_port = sv->port;
  so.udp.queue_max = 1024;
  so.tasks = UDP_TASKS;
  weft_udp_server_t *server;
  rc = weft_udp_server_start(udp_echo, NULL, &so, &server);
  if (rc != 0) {
    bench_fail("udp_echo_server", "weft_udp_server_start(127.0.0.1:%d): %s",
               sv->port, weft_strerror(rc));
    weft_signal_free(signals);
    return weft_task_fail(rc);
  }
  printf("READY\n");
  fflush(stdout);
  rc = weft_signal_wait(signals, WEFT_NO_TIMEOUT, NULL);
  weft_signal_free(signals);
  int rc2 = weft_udp_server_close(server);
  for (unsigned i = 0; i < sv->workers && i < UDP_MAX_WORKERS; i++)
    fprintf(stderr, "weft-bench: udp_echo_server: worker %u echoed %ld\n", i,
            atomic_load_explicit(&udp_echoed[i], memory_order_relaxed));
  weft_udp_server_free(server);
  if (rc == 0)
    rc = rc2;
  if (rc != 0) {
    bench_fail("udp_echo_server", "shutting down: %s", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  return NULL;
}

int bench_udp_echo_server(unsigned workers, int port) {
  if (port < 0 || port > 65535)
    return bench_fail("udp_echo_server", "port %d out of range", port);
  udp_serve_t sv = {workers, port};
  return bench_run("udp_echo_server", workers, udp_serve_main, &sv);
}
