/*
 * udp_echo.c: asyncio's UDP echo server and client (the documentation's
 * EchoServerProtocol and EchoClientProtocol), the server on every worker.
 *
 *     class EchoServerProtocol:
 *         def connection_made(self, transport):
 *             self.transport = transport
 *
 *         def datagram_received(self, data, addr):
 *             message = data.decode()
 *             print('Received %r from %s' % (message, addr))
 *             print('Send %r to %s' % (message, addr))
 *             self.transport.sendto(data, addr)
 *
 *     transport, protocol = await loop.create_datagram_endpoint(
 *         EchoServerProtocol, local_addr=('127.0.0.1', 9999))
 *
 *     class EchoClientProtocol:            # (abridged)
 *         def connection_made(self, transport):
 *             print('Send:', self.message)
 *             transport.sendto(self.message.encode())
 *
 *         def datagram_received(self, data, addr):
 *             print("Received:", data.decode())
 *             self.transport.close()
 *
 *     transport, protocol = await loop.create_datagram_endpoint(
 *         lambda: EchoClientProtocol(message, on_con_lost),
 *         remote_addr=('127.0.0.1', 9999))
 *
 *     udp_echo server [--host H] [--port P] [--workers N] [--tasks K] [--quiet]
 *     udp_echo client [--host H] [--port P] [--count N] MESSAGE
 *
 * The server has one SO_REUSEPORT endpoint per worker (weft_udp_server_start),
 * read with recvmmsg() batches by K receiving tasks each, and prints the
 * seed's two lines per datagram unless --quiet. It prints "Serving on H:P"
 * once bound (--port 0 picks a free port); on SIGINT or SIGTERM it closes,
 * prints how many datagrams each worker echoed and exits 0.
 *
 * The client connects its endpoint to the server, sends MESSAGE --count
 * times (1 by default), printing the seed's lines, and waits for each echo
 * for at most a second, sending again up to three times (UDP may lose a
 * datagram; asyncio's example would wait forever). It exits 0 when every
 * echo came back equal, 1 otherwise.
 */
#include <weft.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 256
#define ECHO_WAIT_MS 1000
#define ECHO_TRIES 3

typedef struct options {
  const char *host;
  int port;
  unsigned workers;
  unsigned tasks;
  int quiet;
  int count;
  const char *message;
} options_t;

/* Datagrams echoed by each worker's endpoint. */
static atomic_long echoed[MAX_WORKERS];

/* Python's str() of an (host, port) address tuple. */
static void addr_str(char *out, size_t cap, const struct sockaddr *sa) {
  char host[128];
  int port;
  if (weft_addr_format(sa, host, sizeof(host), &port) != 0)
    snprintf(out, cap, "None");
  else if (sa->sa_family == AF_INET6)
    snprintf(out, cap, "('%s', %d, 0, 0)", host, port);
  else
    snprintf(out, cap, "('%s', %d)", host, port);
}

static void echo_handler(weft_udp_t *u, void *arg) {
  const options_t *o = arg;
  char data[65536], addr[160];
  weft_udp_info_t info;
  int w = weft_worker_index();
  for (;;) {
    int n = weft_udp_recv(u, data, sizeof(data), &info);
    if (n < 0)
      break; /* closed (WEFT_EBADF) or the runtime's shutdown */
    if (!o->quiet) {
      addr_str(addr, sizeof(addr), (struct sockaddr *)&info.addr);
      printf("Received '%.*s' from %s\n", n, data, addr);
      printf("Send '%.*s' to %s\n", n, data, addr);
    }
    if (weft_udp_send(u, data, (size_t)n, (struct sockaddr *)&info.addr) == 0 &&
        w >= 0 && w < MAX_WORKERS)
      atomic_fetch_add_explicit(&echoed[w], 1, memory_order_relaxed);
  }
}

static void *server_main(void *arg) {
  options_t *o = arg;
  static const int stop_signals[] = {SIGINT, SIGTERM};
  weft_signal_t *signals;
  int rc = weft_signal_new(stop_signals, 2, &signals);
  if (rc != 0) {
    fprintf(stderr, "udp_echo: cannot watch signals: %s\n", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  weft_udp_server_opts_t so;
  weft_udp_server_opts_init(&so);
  so.udp.local_host = o->host;
  so.udp.local_port = o->port;
  so.workers = o->workers;
  so.tasks = o->tasks;
  weft_udp_server_t *server;
  rc = weft_udp_server_start(echo_handler, o, &so, &server);
  if (rc != 0) {
    fprintf(stderr, "udp_echo: cannot bind %s:%d: %s\n", o->host, o->port,
            weft_strerror(rc));
    weft_signal_free(signals);
    return weft_task_fail(rc);
  }
  if (!o->quiet)
    printf("Starting UDP server\n");
  printf("Serving on %s:%d\n", o->host, weft_udp_server_port(server));

  int sig = 0;
  rc = weft_signal_wait(signals, WEFT_NO_TIMEOUT, &sig);
  if (!o->quiet && rc == 0)
    printf("Signal %d: shutting down\n", sig);
  weft_signal_free(signals);
  weft_udp_server_close(server);
  int n = weft_udp_server_endpoints(server);
  for (int i = 0; i < n && i < MAX_WORKERS; i++)
    printf("worker %d: %ld datagrams\n", i,
           atomic_load_explicit(&echoed[i], memory_order_relaxed));
  weft_udp_server_free(server);
  return NULL;
}

/* Wait for one datagram for at most ECHO_WAIT_MS. */
static int recv_within(weft_udp_t *u, char *buf, size_t cap) {
  weft_timeout_t scope;
  int rc = weft_timeout_enter(&scope, ECHO_WAIT_MS);
  if (rc != 0)
    return rc;
  rc = weft_udp_recv(u, buf, cap, NULL);
  return weft_timeout_exit(&scope, rc);
}

static void *client_main(void *arg) {
  options_t *o = arg;
  weft_udp_opts_t uo;
  weft_udp_opts_init(&uo);
  uo.remote_host = o->host;
  uo.remote_port = o->port;
  weft_udp_t *u;
  int rc = weft_udp_open(&uo, &u);
  if (rc != 0) {
    fprintf(stderr, "udp_echo: cannot open an endpoint to %s:%d: %s\n", o->host,
            o->port, weft_strerror(rc));
    return weft_task_fail(rc);
  }
  size_t len = strlen(o->message);
  static char back[65536];
  for (int i = 0; i < o->count && rc == 0; i++) {
    printf("Send: %s\n", o->message);
    for (int t = 0; t < ECHO_TRIES; t++) {
      rc = weft_udp_send(u, o->message, len, NULL);
      if (rc == 0)
        rc = recv_within(u, back, sizeof(back));
      if (rc != WEFT_ETIMEDOUT)
        break;
    }
    if (rc >= 0) {
      printf("Received: %.*s\n", rc, back);
      rc = (size_t)rc == len && memcmp(back, o->message, len) == 0 ? 0
                                                                   : WEFT_EIO;
    } else {
      printf("Error received: %s\n", weft_strerror(rc));
    }
  }
  weft_udp_free(u);
  printf("Connection closed\n");
  return rc ? weft_task_fail(rc) : NULL;
}

static int usage(void) {
  fprintf(stderr, "usage: udp_echo server [--host H] [--port P] [--workers N] "
                  "[--tasks K] [--quiet]\n"
                  "       udp_echo client [--host H] [--port P] [--count N] "
                  "MESSAGE\n");
  return 2;
}

int main(int argc, char **argv) {
  options_t o = {.host = "127.0.0.1", .port = 9999, .count = 1};
  if (argc < 2)
    return usage();
  int server = strcmp(argv[1], "server") == 0;
  if (!server && strcmp(argv[1], "client") != 0)
    return usage();
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--quiet") == 0)
      o.quiet = 1;
    else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      o.host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      o.port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
      o.workers = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--tasks") == 0 && i + 1 < argc)
      o.tasks = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
      o.count = atoi(argv[++i]);
    else if (!server && !o.message && argv[i][0] != '-')
      o.message = argv[i];
    else
      return usage();
  }
  if (!server && (!o.message || o.count < 1))
    return usage();
  setvbuf(stdout, NULL, _IOLBF, 0); /* "Serving on" must show at once */

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = server ? o.workers : 1;
  int rc = weft_run(server ? server_main : client_main, &o, &cfg, NULL);
  return rc == 0 ? 0 : 1;
}
