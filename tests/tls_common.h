/*
 * Helpers shared by the TLS tests (api/tls.c, api/tls_hostile.c,
 * api/tls_load.c, interop/tls.c): the certificate set of the executable,
 * contexts made from it, servers and clients on 127.0.0.1, a byte pattern
 * for checksummed transfers, and raw OpenSSL peers (blocking, on plain
 * threads) for what a weft peer never does: closing without close_notify,
 * stopping mid-handshake, sending garbage.
 *
 * Static like harness.h: each test executable gets its own copy. Include
 * after harness.h.
 */
#ifndef WEFT_TESTS_TLS_COMMON_H
#define WEFT_TESTS_TLS_COMMON_H

#include "harness.h"
#include "tls_certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <weft/tls.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* The executable's certificates: made by the cmocka group setup. */
static tls_certs_t *certs;

static inline int tls_group_setup(void **state) {
  (void)state;
  return tls_certs_make(NULL, &certs) == 0 ? 0 : -1;
}

static inline int tls_group_teardown(void **state) {
  (void)state;
  tls_certs_free(certs);
  certs = NULL;
  return 0;
}

/* ---- contexts --------------------------------------------------------- */

/* A server context presenting identity id (its chain file and key), with
 * opts' other fields (NULL: the defaults). */
static inline weft_tls_ctx_t *server_ctx_ex(tls_cert_id_t id,
                                            const weft_tls_opts_t *opts) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *ctx = NULL;

  if (opts != NULL)
    o = *opts;
  else
    weft_tls_opts_init(&o);
  o.server = 1;
  o.cert_file = tls_certs_chain_file(certs, id);
  o.key_file = tls_certs_key_file(certs, id);
  CHECK_OK(weft_tls_ctx_new(&o, &ctx));
  CHECK(ctx != NULL);
  return ctx;
}

static inline weft_tls_ctx_t *server_ctx(tls_cert_id_t id) {
  return server_ctx_ex(id, NULL);
}

/* A client context trusting the test root CA, with opts' other fields. */
static inline weft_tls_ctx_t *client_ctx_ex(const weft_tls_opts_t *opts) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *ctx = NULL;

  if (opts != NULL)
    o = *opts;
  else
    weft_tls_opts_init(&o);
  o.server = 0;
  if (o.ca_file == NULL && o.ca_dir == NULL && o.ca_pem == NULL)
    o.ca_file = tls_certs_cert_file(certs, TLS_CERT_CA);
  CHECK_OK(weft_tls_ctx_new(&o, &ctx));
  CHECK(ctx != NULL);
  return ctx;
}

static inline weft_tls_ctx_t *client_ctx(void) { return client_ctx_ex(NULL); }

/* ---- servers and clients ------------------------------------------------ */

/* A TLS server on 127.0.0.1, ephemeral port, `workers` listeners (0 = all),
 * handshake timeout hs_ms (0 = the default). */
static inline weft_server_t *tls_start(weft_server_handler_fn fn, void *arg,
                                       weft_tls_ctx_t *ctx, unsigned workers,
                                       uint64_t hs_ms) {
  weft_server_opts_t so;
  weft_server_t *srv = NULL;

  weft_server_opts_init(&so);
  so.workers = workers;
  so.stream.tls.ctx = ctx;
  so.stream.tls.handshake_timeout_ms = hs_ms;
  CHECK_OK(weft_start_server(fn, arg, "127.0.0.1", 0, &so, &srv));
  CHECK(srv != NULL);
  return srv;
}

/* Connect to srv over TLS with ctx, checking the name sni (NULL: the
 * connect address 127.0.0.1, an IP literal); returns the call's result. */
static inline int tls_connect_rc(weft_server_t *srv, weft_tls_ctx_t *ctx,
                                 const char *sni, weft_stream_t **out) {
  weft_stream_opts_t o;

  weft_stream_opts_init(&o);
  o.tls.ctx = ctx;
  o.tls.server_hostname = sni;
  *out = NULL;
  return weft_open_connection("127.0.0.1", weft_server_port(srv), &o, out);
}

/* tls_connect_rc() that must succeed (server name "localhost"). */
static inline weft_stream_t *tls_connect(weft_server_t *srv,
                                         weft_tls_ctx_t *ctx) {
  weft_stream_t *s = NULL;

  CHECK_OK(tls_connect_rc(srv, ctx, "localhost", &s));
  CHECK(s != NULL);
  return s;
}

static inline void stop(weft_server_t *srv) {
  CHECK_OK(weft_server_close(srv));
  CHECK_OK(weft_server_abort_clients(srv));
  CHECK_OK(weft_server_wait_closed(srv));
  CHECK_OK(weft_server_free(srv));
}

/* The calling task's last TLS failure must have a reason (containing want,
 * if not NULL). */
static inline void check_tls_reason(const char *want) {
  char buf[512];
  int n = weft_tls_error_string(buf, sizeof buf);

  CHECK(n > 0);
  CHECK(strlen(buf) > 0);
  if (want != NULL && strstr(buf, want) == NULL)
    harness_fail(__FILE__, __LINE__, "TLS reason \"%s\" lacks \"%s\"", buf,
                 want);
}

/* The echo handler: echo until end of stream or an error. */
static inline void echo_handler(weft_stream_t *s, void *arg) {
  char buf[4096];
  int n;

  if (arg != NULL)
    atomic_fetch_add((atomic_int *)arg, 1);
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0) {
    if (weft_stream_write(s, buf, (size_t)n) != 0 || weft_stream_drain(s) != 0)
      break;
  }
}

/* One echo round trip of `msg` on s. */
static inline void echo_once(weft_stream_t *s, const char *msg) {
  char buf[256];
  size_t n = strlen(msg);

  CHECK(n <= sizeof buf);
  CHECK_OK(weft_stream_write(s, msg, n));
  CHECK_OK(weft_stream_drain(s));
  CHECK_RC(weft_stream_readexactly(s, buf, n, NULL), 0);
  CHECK(memcmp(buf, msg, n) == 0);
}

/* A serial number as text, in any case, with or without colons or leading
 * zeros, as a number. */
static inline uint64_t serial_value(const char *hex) {
  uint64_t v = 0;

  for (; *hex; hex++) {
    int d;
    if (*hex == ':')
      continue;
    if (*hex >= '0' && *hex <= '9')
      d = *hex - '0';
    else if (*hex >= 'a' && *hex <= 'f')
      d = *hex - 'a' + 10;
    else if (*hex >= 'A' && *hex <= 'F')
      d = *hex - 'A' + 10;
    else
      return 0;
    v = v * 16 + (uint64_t)d;
  }
  return v;
}

static inline int has_san(const weft_tls_cert_t *c, const char *want) {
  for (size_t i = 0; i < c->nsan; i++)
    if (c->san[i] != NULL && strcmp(c->san[i], want) == 0)
      return 1;
  return 0;
}

/* The peer certificate of s is identity id's, decoded right. */
static inline void check_peer_cert(weft_stream_t *s, tls_cert_id_t id) {
  weft_tls_cert_t *c = NULL;
  const unsigned char *der, *p;
  size_t der_len;
  int64_t nb, na;
  X509 *x;

  CHECK_OK(weft_stream_tls_peer_cert(s, &c));
  CHECK(c != NULL);
  if (c == NULL)
    return;
  CHECK(c->subject != NULL && strstr(c->subject, "CN=localhost") != NULL);
  CHECK(c->subject != NULL && strstr(c->subject, "O=" TLS_CERTS_ORG) != NULL);
  if (id == TLS_CERT_CHAINED)
    CHECK(c->issuer != NULL &&
          strstr(c->issuer, "CN=weft test intermediate CA") != NULL);
  else
    CHECK(c->issuer != NULL &&
          strstr(c->issuer, "CN=" TLS_CERTS_CA_CN) != NULL);
  CHECK(c->serial != NULL);
  if (c->serial != NULL)
    CHECK(serial_value(c->serial) == serial_value(tls_certs_serial(certs, id)));
  CHECK_EQ(c->nsan, 3);
  CHECK(has_san(c, "DNS:localhost"));
  CHECK(has_san(c, "IP:127.0.0.1"));
  CHECK(has_san(c, "IP:::1") || has_san(c, "IP:0:0:0:0:0:0:0:1"));
  tls_certs_validity(certs, id, &nb, &na);
  CHECK_EQ(c->not_before, nb);
  CHECK_EQ(c->not_after, na);
  der = tls_certs_cert_der(certs, id, &der_len);
  CHECK_EQ(c->der_len, der_len);
  CHECK(c->der != NULL && c->der_len == der_len &&
        memcmp(c->der, der, der_len) == 0);
  p = c->der;
  x = c->der != NULL ? d2i_X509(NULL, &p, (long)c->der_len) : NULL;
  CHECK(x != NULL);
  if (x != NULL) {
    CHECK_EQ(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    X509_free(x);
  }
  weft_tls_cert_free(c);
}

/* ---- a byte pattern for checksummed transfers ----------------------------
 * The bytes of splitmix64 from a seed, generated in any chunking: writer
 * and reader each keep one pat_t with the same seed. */
typedef struct pat {
  uint64_t state;
  uint64_t word;
  unsigned left; /* bytes of word not yet used */
  uint64_t count;
} pat_t;

static inline void pat_init(pat_t *p, uint64_t seed) {
  p->state = seed;
  p->word = 0;
  p->left = 0;
  p->count = 0;
}

static inline unsigned char pat_byte(pat_t *p) {
  unsigned char b;

  if (p->left == 0) {
    p->word = harness_rand(&p->state);
    p->left = 8;
  }
  b = (unsigned char)(p->word & 0xff);
  p->word >>= 8;
  p->left--;
  p->count++;
  return b;
}

static inline void pat_fill(pat_t *p, void *buf, size_t n) {
  unsigned char *b = buf;

  for (size_t i = 0; i < n; i++)
    b[i] = pat_byte(p);
}

/* 1 if buf holds the pattern's next n bytes. */
static inline int pat_check(pat_t *p, const void *buf, size_t n) {
  const unsigned char *b = buf;
  int ok = 1;

  for (size_t i = 0; i < n; i++)
    ok &= b[i] == pat_byte(p);
  return ok;
}

/* ---- raw sockets and raw OpenSSL peers (blocking, not weft) ------------- */

/* A blocking TCP socket connected to 127.0.0.1:port, with 10 s receive and
 * send timeouts so that a plain thread never hangs for good; -1 on
 * failure. */
static inline int raw_connect(int port) {
  struct sockaddr_in a;
  struct timeval tv = {10 * HARNESS_SLOWDOWN, 0};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;

  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A listening socket on 127.0.0.1, ephemeral port (in *port); -1 on
 * failure. */
static inline int raw_listen(int *port) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

/* Wait up to ms for fd to become readable (1), or not (0). */
static inline int raw_readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};

  return poll(&p, 1, ms) == 1;
}

/* Read from fd until end of stream, an error or its timeout; returns the
 * bytes read. */
static inline size_t raw_drain(int fd) {
  char buf[4096];
  size_t total = 0;
  ssize_t n;

  while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
    total += (size_t)n;
  return total;
}

/* An OpenSSL context for a raw peer: a server presenting identity id, or
 * a client (id < 0) trusting the test CA. */
static inline SSL_CTX *raw_ssl_ctx(int id) {
  SSL_CTX *ctx =
      SSL_CTX_new(id >= 0 ? TLS_server_method() : TLS_client_method());

  if (ctx == NULL)
    return NULL;
  if (id >= 0) {
    if (SSL_CTX_use_certificate_chain_file(
            ctx, tls_certs_chain_file(certs, (tls_cert_id_t)id)) != 1 ||
        SSL_CTX_use_PrivateKey_file(
            ctx, tls_certs_key_file(certs, (tls_cert_id_t)id),
            SSL_FILETYPE_PEM) != 1) {
      SSL_CTX_free(ctx);
      return NULL;
    }
  } else {
    if (SSL_CTX_load_verify_locations(
            ctx, tls_certs_cert_file(certs, TLS_CERT_CA), NULL) != 1) {
      SSL_CTX_free(ctx);
      return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  }
  return ctx;
}

/* A raw OpenSSL server on a plain thread: accepts one connection, runs the
 * handshake, then script(ssl, fd, arg); closes the socket (without
 * SSL_shutdown: the script sends close_notify if it wants one). */
typedef struct raw_server {
  int lfd;
  int port;
  SSL_CTX *ctx;
  void (*script)(SSL *ssl, int fd, void *arg);
  void *arg;
  atomic_int handshake_ok; /* 1: the handshake completed */
  atomic_int done;
  pthread_t thread;
} raw_server_t;

static inline void *raw_server_main(void *p) {
  raw_server_t *r = p;
  struct timeval tv = {10 * HARNESS_SLOWDOWN, 0};
  SSL *ssl;
  int fd;

  if (!raw_readable(r->lfd, (int)HARNESS_WAIT_MS)) {
    atomic_store(&r->done, 1);
    return NULL;
  }
  fd = accept(r->lfd, NULL, NULL);
  if (fd < 0) {
    atomic_store(&r->done, 1);
    return NULL;
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ssl = SSL_new(r->ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1) {
    atomic_store(&r->handshake_ok, 1);
    r->script(ssl, fd, r->arg);
  }
  SSL_free(ssl);
  close(fd);
  ERR_clear_error();
  atomic_store(&r->done, 1);
  return NULL;
}

/* Start a raw server presenting identity id. Returns 0 or -1. */
static inline int raw_server_start(raw_server_t *r, tls_cert_id_t id,
                                   void (*script)(SSL *, int, void *),
                                   void *arg) {
  memset(r, 0, sizeof *r);
  r->script = script;
  r->arg = arg;
  r->ctx = raw_ssl_ctx((int)id);
  r->lfd = r->ctx != NULL ? raw_listen(&r->port) : -1;
  if (r->lfd < 0 || pthread_create(&r->thread, NULL, raw_server_main, r) != 0) {
    if (r->lfd >= 0)
      close(r->lfd);
    SSL_CTX_free(r->ctx);
    return -1;
  }
  return 0;
}

/* Wait for the raw server's thread (from a task: through the thread pool,
 * so the worker keeps running) and free it. */
static inline void *raw_server_join_fn(void *p) {
  raw_server_t *r = p;
  pthread_join(r->thread, NULL);
  return NULL;
}

static inline void raw_server_join(raw_server_t *r) {
  if (weft_task_current() != NULL)
    CHECK_OK(weft_to_thread(raw_server_join_fn, r, NULL));
  else
    pthread_join(r->thread, NULL);
  close(r->lfd);
  SSL_CTX_free(r->ctx);
}

/* A raw OpenSSL client connection (blocking; call it through
 * weft_to_thread() from a task). */
typedef struct raw_client {
  int port;
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
} raw_client_t;

/* Connect and handshake; 0 or -1. */
static inline int raw_client_open(raw_client_t *c, int port) {
  c->port = port;
  c->ssl = NULL;
  c->ctx = raw_ssl_ctx(-1);
  c->fd = c->ctx != NULL ? raw_connect(port) : -1;
  if (c->fd < 0)
    return -1;
  c->ssl = SSL_new(c->ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_tlsext_host_name(c->ssl, "localhost");
  SSL_set1_host(c->ssl, "localhost");
  if (SSL_connect(c->ssl) != 1) {
    ERR_clear_error();
    return -1;
  }
  return 0;
}

static inline void raw_client_close(raw_client_t *c) {
  if (c->ssl != NULL)
    SSL_free(c->ssl);
  if (c->fd >= 0)
    close(c->fd);
  SSL_CTX_free(c->ctx);
  ERR_clear_error();
  c->ssl = NULL;
  c->fd = -1;
  c->ctx = NULL;
}

#endif /* WEFT_TESTS_TLS_COMMON_H */
