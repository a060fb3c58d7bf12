/*
 * echo_server.c: the seed's asyncio echo server, on every worker.
 *
 *     async def handle_echo(reader, writer):
 *         data = await reader.read(100)
 *         message = data.decode()
 *         addr = writer.get_extra_info('peername')
 *
 *         print(f"Received {message!r} from {addr!r}")
 *
 *         writer.write(data)
 *         await writer.drain()
 *
 *         print("Close the connection")
 *         writer.close()
 *
 *     async def server_main():
 *         server = await asyncio.start_server(
 *             handle_echo, '127.0.0.1', 8888)
 *
 *         addr = server.sockets[0].getsockname()
 *         print(f'Serving on {addr}')
 *
 *         async with server:
 *             await server.serve_forever()
 *
 * The handler echoes every message until the client closes its side (the
 * seed's handler is the first iteration of that loop), printing the seed's
 * lines unless --quiet. Every worker accepts connections on its own
 * SO_REUSEPORT listener, and each handler runs as a task of its own.
 *
 *     echo_server [--host H] [--port P] [--workers N] [--quiet]
 *
 * Prints "Serving on H:P" once listening (--port 0 picks a free port). On
 * SIGINT or SIGTERM it closes the server, closes the clients (their
 * handlers read end of stream and finish), waits for them, prints how many
 * connections each worker accepted, frees everything and exits 0.
 *
 * The main task waits for SIGINT and SIGTERM with a signal watcher
 * (weft/signal.h), created before "Serving on" is printed, so that a signal
 * sent as soon as the line shows is counted.
 */
#include <weft.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
  const char *host;
  int port;
  unsigned workers;
  int quiet;
} options_t;

/* Python's repr() of a short str, close enough for ASCII and UTF-8. */
static void py_repr(char *out, size_t cap, const char *s, size_t n) {
  char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
  size_t o = 0;
  out[o++] = q;
  for (size_t i = 0; i < n && o + 6 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\\' || c == (unsigned char)q) {
      out[o++] = '\\';
      out[o++] = (char)c;
    } else if (c == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else if (c == '\r') {
      out[o++] = '\\';
      out[o++] = 'r';
    } else if (c == '\t') {
      out[o++] = '\\';
      out[o++] = 't';
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o++] = q;
  out[o] = 0;
}

/* Python's repr() of a peername tuple. */
static void addr_repr(char *out, size_t cap, const weft_stream_t *s) {
  struct sockaddr_storage ss;
  char host[128];
  int port;
  if (weft_stream_peername(s, &ss, NULL) != 0 ||
      weft_addr_format((struct sockaddr *)&ss, host, sizeof(host), &port) !=
          0) {
    snprintf(out, cap, "None");
  } else if (ss.ss_family == AF_INET6) {
    snprintf(out, cap, "('%s', %d, 0, 0)", host, port);
  } else if (port >= 0) {
    snprintf(out, cap, "('%s', %d)", host, port);
  } else {
    snprintf(out, cap, "'%s'", host);
  }
}

static void handle_echo(weft_stream_t *stream, void *arg) {
  const options_t *o = arg;
  char data[100], msg[4 * sizeof(data) + 8], addr[200];
  addr_repr(addr, sizeof(addr), stream);
  for (;;) {
    int n = weft_stream_read(stream, data, sizeof(data));
    if (n <= 0)
      break; /* end of stream, an error, or shutdown */
    if (!o->quiet) {
      py_repr(msg, sizeof(msg), data, (size_t)n);
      printf("Received %s from %s\n", msg, addr);
    }
    if (weft_stream_write(stream, data, (size_t)n) != 0 ||
        weft_stream_drain(stream) != 0)
      break;
  }
  if (!o->quiet)
    printf("Close the connection\n");
  weft_stream_close(stream); /* the server frees it when we return */
}

static void *server_main(void *arg) {
  options_t *o = arg;
  static const int stop_signals[] = {SIGINT, SIGTERM};
  weft_signal_t *signals;
  int rc = weft_signal_new(stop_signals, 2, &signals);
  if (rc != 0) {
    fprintf(stderr, "echo_server: cannot watch signals: %s\n",
            weft_strerror(rc));
    return weft_task_fail(rc);
  }
  weft_server_opts_t so;
  weft_server_opts_init(&so);
  so.workers = o->workers;
  weft_server_t *server;
  rc = weft_start_server(handle_echo, o, o->host, o->port, &so, &server);
  if (rc != 0) {
    fprintf(stderr, "echo_server: cannot listen on %s:%d: %s\n", o->host,
            o->port, weft_strerror(rc));
    weft_signal_free(signals);
    return weft_task_fail(rc);
  }
  struct sockaddr_storage ss;
  char host[128];
  int port;
  weft_server_sockname(server, &ss, NULL);
  weft_addr_format((struct sockaddr *)&ss, host, sizeof(host), &port);
  printf("Serving on %s:%d\n", host, port);

  int sig = 0;
  rc = weft_signal_wait(signals, WEFT_NO_TIMEOUT, &sig); /* serve until one */
  if (!o->quiet && rc == 0)
    printf("Signal %d: shutting down\n", sig);
  weft_signal_free(signals);
  weft_server_close(server);
  weft_server_close_clients(server);
  weft_server_wait_closed(server);
  int workers = weft_worker_count();
  for (int i = 0; i < workers; i++) {
    long n = weft_server_accepted(server, (unsigned)i);
    if (n >= 0)
      printf("worker %d: %ld connections\n", i, n);
  }
  weft_server_free(server);
  return NULL;
}

static int usage(void) {
  fprintf(stderr, "usage: echo_server [--host H] [--port P] [--workers N] "
                  "[--quiet]\n");
  return 2;
}

int main(int argc, char **argv) {
  options_t o = {.host = "127.0.0.1", .port = 8888};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quiet") == 0)
      o.quiet = 1;
    else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      o.host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      o.port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
      o.workers = (unsigned)atoi(argv[++i]);
    else
      return usage();
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* "Serving on" must show at once */

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = o.workers;
  int rc = weft_run(server_main, &o, &cfg, NULL);
  return rc == 0 ? 0 : 1;
}
