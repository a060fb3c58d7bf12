/*
 * echo_server (bench/README.md): a TCP echo server written the way a user
 * would write it with weft's streams: a handler task per connection reads up
 * to 64 KiB and writes back what it read (then drains, as asyncio code
 * awaits writer.drain()), until end of stream.
 *
 * tls_echo_server: the same handler over TLS (serve.c makes the context);
 * the handler does not change, as asyncio code does not change with ssl=.
 *
 *   weft-bench echo_server WORKERS PORT
 *   weft-bench tls_echo_server WORKERS PORT CERT KEY
 *
 * Load them as bench/README.md, "Server workloads" and "TLS server
 * workloads", describes.
 */
#include "bench.h"

#include <stdlib.h>

#define READ_MAX (64 * 1024)

static void echo_handler(weft_stream_t *s, void *arg) {
  (void)arg;
  char *buf = malloc(READ_MAX);
  if (!buf)
    return; /* the server closes the connection */
  for (;;) {
    int n = weft_stream_read(s, buf, READ_MAX);
    if (n <= 0)
      break; /* end of stream, reset, or shutdown's cancellation */
    if (weft_stream_write(s, buf, (size_t)n) != 0 ||
        weft_stream_drain(s) != 0)
      break;
  }
  free(buf);
}

int bench_echo_server(unsigned workers, int port) {
  return bench_serve("echo_server", workers, port, echo_handler, NULL);
}

int bench_tls_echo_server(unsigned workers, int port,
                          const bench_tls_files_t *tls) {
  return bench_serve("tls_echo_server", workers, port, echo_handler, tls);
}
