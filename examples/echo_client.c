/*
 * echo_client.c: the TCP echo client of the asyncio documentation.
 *
 *     async def tcp_echo_client(message):
 *         reader, writer = await asyncio.open_connection(
 *             '127.0.0.1', 8888)
 *
 *         print(f'Send: {message!r}')
 *         writer.write(message.encode())
 *         await writer.drain()
 *
 *         data = await reader.read(100)
 *         print(f'Received: {data.decode()!r}')
 *
 *         print('Close the connection')
 *         writer.close()
 *         await writer.wait_closed()
 *
 *     asyncio.run(tcp_echo_client('Hello World!'))
 *
 *     echo_client [--host H] [--port P]
 *                 [--tls [--ca-file FILE] [--server-name NAME] [--insecure]]
 *                 MESSAGE
 *
 * A message longer than 100 bytes is read back in several reads until the
 * whole echo has arrived (asyncio's single read(100) would cut it short).
 *
 * TLS (asyncio's open_connection(..., ssl=context)): --tls connects over
 * TLS, verifying the server's certificate against the system's CA store, or
 * against the CAs of --ca-file (PEM; examples/mkcert.sh's ca.pem for an
 * echo_server started with its server.pem), and checking that it names the
 * host (--server-name NAME: that name instead, also sent in SNI). Once
 * connected it prints the protocol version and cipher ("TLS: TLSv1.3
 * TLS_AES_256_GCM_SHA384"). A failed verification ends it with exit status
 * 1 and the reason ("TLS certificate from an unknown CA: certificate verify
 * failed: unable to get local issuer certificate"). --insecure turns
 * verification off: anyone on the path could then read and change the
 * traffic; it is meant for throw-away test certificates only, and says so
 * on stderr.
 */
#define _POSIX_C_SOURCE 200809L /* sigwait, pthread_sigmask */

#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
  const char *host;
  int port;
  const char *message;
  int tls;               /* --tls */
  const char *ca_file;   /* --ca-file */
  const char *tls_name;  /* --server-name */
  int insecure;          /* --insecure */
  weft_tls_ctx_t *ctx;   /* the client context, with --tls */
} options_t;

/* Python's repr() of a short str, close enough for ASCII and UTF-8. */
static void py_repr(const char *s, size_t n) {
  char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
  putchar(q);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\\' || c == (unsigned char)q)
      printf("\\%c", c);
    else if (c == '\n')
      printf("\\n");
    else if (c == '\r')
      printf("\\r");
    else if (c == '\t')
      printf("\\t");
    else if (c < 0x20 || c == 0x7f)
      printf("\\x%02x", c);
    else
      putchar(c);
  }
  putchar(q);
}

static void *tcp_echo_client(void *arg) {
  const options_t *o = arg;
  weft_stream_t *stream;
  weft_stream_opts_t so;
  weft_stream_opts_init(&so);
  so.tls.ctx = o->ctx; /* NULL: plaintext */
  so.tls.server_hostname = o->tls_name;
  int rc = weft_open_connection(o->host, o->port, &so, &stream);
  if (rc != 0) {
    char why[300] = "";
    if (o->ctx && weft_tls_error_string(why + 2, sizeof(why) - 2) > 0)
      memcpy(why, ": ", 2);
    fprintf(stderr, "echo_client: cannot connect to %s:%d: %s%s\n", o->host,
            o->port, weft_strerror(rc), why);
    return weft_task_fail(rc);
  }
  weft_tls_info_t info;
  if (o->ctx && weft_stream_tls_info(stream, &info) == 0)
    printf("TLS: %s %s\n", info.version_name, info.cipher);
  size_t len = strlen(o->message);
  printf("Send: ");
  py_repr(o->message, len);
  printf("\n");
  rc = weft_stream_write(stream, o->message, len);
  if (rc == 0)
    rc = weft_stream_drain(stream);

  char *data = malloc(len + 100);
  size_t got = 0;
  while (rc == 0 && data) {
    int n = weft_stream_read(stream, data + got, 100);
    if (n < 0)
      rc = n;
    if (n <= 0)
      break;
    got += (size_t)n;
    if (got >= len)
      break;
  }
  if (rc == 0 && data) {
    printf("Received: ");
    py_repr(data, got);
    printf("\n");
  }
  free(data);
  printf("Close the connection\n");
  weft_stream_close(stream);
  weft_stream_wait_closed(stream);
  weft_stream_free(stream);
  if (rc != 0) {
    fprintf(stderr, "echo_client: %s\n", weft_strerror(rc));
    return weft_task_fail(rc);
  }
  return NULL;
}

/* The client's TLS context: asyncio's ssl.create_default_context() (and
 * its load_verify_locations(cafile)), or, with --insecure, one with
 * check_hostname False and verify_mode CERT_NONE. Returns 0, or -1 after
 * saying why on stderr. */
static int make_tls(options_t *o) {
  weft_tls_opts_t to;
  weft_tls_opts_init(&to);
  to.ca_file = o->ca_file;
  to.insecure_no_verify = o->insecure;
  if (o->insecure)
    fprintf(stderr, "echo_client: --insecure: the server's certificate is "
                    "not verified\n");
  int rc = weft_tls_ctx_new(&to, &o->ctx);
  if (rc != 0) {
    char why[256];
    if (weft_tls_error_string(why, sizeof(why)) <= 0)
      snprintf(why, sizeof(why), "%s", o->ca_file ? o->ca_file : "defaults");
    fprintf(stderr, "echo_client: TLS: %s (%s)\n", weft_strerror(rc), why);
    return -1;
  }
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: echo_client [--host H] [--port P]\n"
                  "                   [--tls [--ca-file FILE] "
                  "[--server-name NAME] [--insecure]]\n"
                  "                   MESSAGE\n");
  return 2;
}

int main(int argc, char **argv) {
  options_t o = {.host = "127.0.0.1", .port = 8888};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      o.host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      o.port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--tls") == 0)
      o.tls = 1;
    else if (strcmp(argv[i], "--ca-file") == 0 && i + 1 < argc)
      o.ca_file = argv[++i];
    else if (strcmp(argv[i], "--server-name") == 0 && i + 1 < argc)
      o.tls_name = argv[++i];
    else if (strcmp(argv[i], "--insecure") == 0)
      o.insecure = 1;
    else if (argv[i][0] == '-' && argv[i][1] == '-')
      return usage();
    else if (!o.message)
      o.message = argv[i];
    else
      return usage();
  }
  if (!o.message)
    return usage();
  if (!o.tls && (o.ca_file || o.tls_name || o.insecure)) {
    fprintf(stderr, "echo_client: --ca-file, --server-name and --insecure "
                    "need --tls\n");
    return usage();
  }
  if (o.tls && make_tls(&o) != 0)
    return 1;
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 1;
  int rc = weft_run(tcp_echo_client, &o, &cfg, NULL);
  weft_tls_ctx_free(o.ctx);
  return rc == 0 ? 0 : 1;
}
