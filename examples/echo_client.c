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
 *     echo_client [--host H] [--port P] MESSAGE
 *
 * A message longer than 100 bytes is read back in several reads until the
 * whole echo has arrived (asyncio's single read(100) would cut it short).
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
  int rc = weft_open_connection(o->host, o->port, NULL, &stream);
  if (rc != 0) {
    fprintf(stderr, "echo_client: cannot connect to %s:%d: %s\n", o->host,
            o->port, weft_strerror(rc));
    return weft_task_fail(rc);
  }
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

int main(int argc, char **argv) {
  options_t o = {.host = "127.0.0.1", .port = 8888};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      o.host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      o.port = atoi(argv[++i]);
    else if (!o.message)
      o.message = argv[i];
    else
      o.message = NULL, i = argc;
  }
  if (!o.message) {
    fprintf(stderr, "usage: echo_client [--host H] [--port P] MESSAGE\n");
    return 2;
  }
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 1;
  int rc = weft_run(tcp_echo_client, &o, &cfg, NULL);
  return rc == 0 ? 0 : 1;
}
