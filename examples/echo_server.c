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
 *                 [--tls-cert FILE --tls-key FILE]
 *
 * Prints "Serving on H:P" once listening (--port 0 picks a free port). On
 * SIGINT or SIGTERM it closes the server, closes the clients (their
 * handlers read end of stream and finish), waits for them, prints how many
 * connections each worker accepted, frees everything and exits 0.
 *
 * TLS (asyncio's start_server(..., ssl=context)): with --tls-cert (the
 * certificate chain, PEM, leaf first) and --tls-key (its private key, PEM)
 * every connection is TLS, on the same port; the handler runs once the
 * handshake is done and echoes the plaintext. A client whose handshake
 * fails (one that does not trust the certificate, or does not speak TLS)
 * never reaches the handler: the count of such connections is printed at
 * shutdown ("TLS handshakes failed: N"). examples/mkcert.sh makes a
 * certificate and the CA that clients then trust (echo_client --tls
 * --ca-file).
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
  const char *tls_cert;  /* --tls-cert: TLS when given, with tls_key */
  const char *tls_key;   /* --tls-key */
  weft_tls_ctx_t *tls;   /* the server context made from them, or NULL */
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
  so.stream.tls.ctx = o->tls; /* NULL: plaintext */
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
  if (o->tls)
    printf("TLS handshakes failed: %ld\n", weft_server_tls_failures(server));
  weft_server_free(server);
  return NULL;
}

/* The server's TLS context: asyncio's
 *     context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
 *     context.load_cert_chain(cert, key)
 * Returns 0, or -1 after saying why on stderr. */
static int make_tls(options_t *o) {
  weft_tls_opts_t to;
  weft_tls_opts_init(&to);
  to.server = 1;
  to.cert_file = o->tls_cert;
  to.key_file = o->tls_key;
  int rc = weft_tls_ctx_new(&to, &o->tls);
  if (rc != 0) {
    char why[256];
    if (weft_tls_error_string(why, sizeof(why)) <= 0)
      snprintf(why, sizeof(why), "%s", o->tls_cert);
    fprintf(stderr, "echo_server: TLS: %s (%s)\n", weft_strerror(rc), why);
    return -1;
  }
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: echo_server [--host H] [--port P] [--workers N] "
                  "[--quiet]\n"
                  "                   [--tls-cert FILE --tls-key FILE]\n");
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
    else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
      o.tls_cert = argv[++i];
    else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
      o.tls_key = argv[++i];
    else
      return usage();
  }
  if (!o.tls_cert != !o.tls_key) {
    fprintf(stderr, "echo_server: --tls-cert and --tls-key go together\n");
    return usage();
  }
  if (o.tls_cert && make_tls(&o) != 0)
    return 1;
  setvbuf(stdout, NULL, _IOLBF, 0); /* "Serving on" must show at once */

  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = o.workers;
  int rc = weft_run(server_main, &o, &cfg, NULL);
  weft_tls_ctx_free(o.tls);
  return rc == 0 ? 0 : 1;
}
