/*
 * http_server (bench/README.md): an HTTP/1.1 keep-alive server answering every
 * request with 200, Content-Type: text/plain and the body "Hello, World!".
 * Requests are parsed by a real parser, Node's http_parser (Debian's
 * libhttp-parser-dev; llhttp is not packaged in Debian 12): one parser per
 * connection, fed whatever each read returns, so pipelined requests and
 * requests split across reads are handled. The responses to every request
 * completed by one read go out in one write. A request the parser rejects,
 * or one that asks to close, ends the connection after the responses.
 *
 * https_server: the same handler over TLS (serve.c makes the context).
 *
 *   weft-bench http_server WORKERS PORT
 *   weft-bench https_server WORKERS PORT CERT KEY
 *
 * Load http_server with wrk -t1 -c100 -d5s (bench/README.md, "Server
 * workloads"), https_server with tls_load (bench/tls.sh).
 */
#include "bench.h"

#include <http_parser.h>

#include <stdlib.h>
#include <string.h>

#define READ_MAX (64 * 1024)
#define OUT_MAX (64 * 1024)

static const char response[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "Hello, World!";

typedef struct conn {
  http_parser parser;
  size_t out_len;    /* bytes of responses queued in out */
  int close_after;   /* the last request asked to close */
  char in[READ_MAX];
  char out[OUT_MAX];
} conn_t;

static int on_message_complete(http_parser *p) {
  conn_t *c = p->data;
  if (c->out_len + sizeof(response) - 1 > OUT_MAX)
    return -1; /* more pipelined requests in one read than we buffer */
  memcpy(c->out + c->out_len, response, sizeof(response) - 1);
  c->out_len += sizeof(response) - 1;
  if (!http_should_keep_alive(p))
    c->close_after = 1;
  return 0;
}

static http_parser_settings settings = {
    .on_message_complete = on_message_complete,
};

static void http_handler(weft_stream_t *s, void *arg) {
  (void)arg;
  conn_t *c = malloc(sizeof(*c));
  if (!c)
    return; /* the server closes the connection */
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->close_after = 0;
  for (;;) {
    int n = weft_stream_read(s, c->in, sizeof(c->in));
    if (n <= 0)
      break; /* end of stream, reset, or shutdown's cancellation */
    c->out_len = 0;
    size_t used = http_parser_execute(&c->parser, &settings, c->in, (size_t)n);
    int bad = c->parser.http_errno != HPE_OK || used != (size_t)n;
    if (c->out_len &&
        (weft_stream_write(s, c->out, c->out_len) != 0 ||
         weft_stream_drain(s) != 0))
      break;
    if (bad || c->close_after)
      break;
  }
  free(c);
}

int bench_http_server(unsigned workers, int port) {
  return bench_serve("http_server", workers, port, http_handler, NULL);
}

int bench_https_server(unsigned workers, int port,
                       const bench_tls_files_t *tls) {
  return bench_serve("https_server", workers, port, http_handler, tls);
}
