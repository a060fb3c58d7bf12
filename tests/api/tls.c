/*
 * api_tls: weft/tls.h between a weft client and a weft server on loopback,
 * with the certificates of tests/tls_certs.h:
 *
 *  - contexts: argument, file and PEM errors, with their reasons;
 *  - every stream call over TLS (read, readexactly, readline, readuntil,
 *    write, writev, drain and the water marks with a slow reader,
 *    write_eof then reading on, close with queued data delivered, abort,
 *    wait_closed, cancellation of a read or a drain with nothing lost,
 *    weft_task_wait_for), and megabytes both ways, checksummed;
 *  - start_tls after a plaintext exchange (a STARTTLS toy protocol), also
 *    with the ClientHello pipelined right behind the STARTTLS line;
 *  - what the handshake negotiated (version, cipher, ALPN, SNI, resumption)
 *    and the peer's certificate (names, validity, DER);
 *  - verification: each bad certificate fails with its own code and a
 *    reason, the insecure options accept them, chains with an
 *    intermediate, CA files, directories and PEM; mutual TLS; versions;
 *  - the key log (keylog_file and SSLKEYLOGFILE);
 *  - a peer that closes without close_notify (truncation);
 *  - handshake and shutdown timeouts; cancelling a connect mid-handshake;
 *  - a TLS stream used by tasks on other workers, and shared contexts
 *    used from every worker at once.
 */
#include "harness.h"
#include "tls_common.h"

#include <sys/stat.h>

/* ---- contexts ------------------------------------------------------------ */

/* weft_tls_ctx_new() with o, expecting rc and, for a failure, a reason. */
static void ctx_fails(const weft_tls_opts_t *o, int rc) {
  weft_tls_ctx_t *ctx = (weft_tls_ctx_t *)&ctx; /* must be left or NULLed */
  char buf[256];

  CHECK_RC(weft_tls_ctx_new(o, &ctx), rc);
  if (rc == WEFT_ETLS_CONFIG) {
    CHECK(weft_tls_error_string(buf, sizeof buf) > 0);
    CHECK(buf[0] != '\0');
  }
}

static void *ctx_errors_main(void *arg) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *ctx = NULL;
  char path[4096];
  static const char garbage[] =
      "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
      "-----END CERTIFICATE-----\n";

  (void)arg;
  CHECK_RC(weft_tls_available(), 1);
  /* Defaults: a client context, verifying against the system's store. */
  CHECK_OK(weft_tls_ctx_new(NULL, &ctx));
  CHECK(ctx != NULL);
  CHECK(weft_tls_ctx_native(ctx) != NULL);
  weft_tls_ctx_free(ctx);
  weft_tls_ctx_free(NULL);
  CHECK_RC(weft_tls_ctx_new(NULL, NULL), WEFT_EINVAL);

  /* Versions: nothing older than 1.2, nothing unknown. */
  weft_tls_opts_init(&o);
  o.min_version = 0x0302; /* TLS 1.1 */
  ctx_fails(&o, WEFT_EINVAL);
  weft_tls_opts_init(&o);
  o.max_version = 0x0301;
  ctx_fails(&o, WEFT_EINVAL);
  weft_tls_opts_init(&o);
  o.min_version = WEFT_TLS_VERSION_1_3;
  o.max_version = WEFT_TLS_VERSION_1_2;
  ctx_fails(&o, WEFT_EINVAL);
  weft_tls_opts_init(&o);
  o.min_version = 0x9999;
  ctx_fails(&o, WEFT_EINVAL);

  /* A server needs a certificate and its key. */
  weft_tls_opts_init(&o);
  o.server = 1;
  ctx_fails(&o, WEFT_EINVAL);
  o.cert_file = tls_certs_chain_file(certs, TLS_CERT_SERVER);
  ctx_fails(&o, WEFT_EINVAL);
  /* client_cert is for servers. */
  weft_tls_opts_init(&o);
  o.client_cert = WEFT_TLS_CLIENT_CERT_REQUIRED;
  ctx_fails(&o, WEFT_EINVAL);
  /* ALPN names: none empty, none over 255 bytes. */
  weft_tls_opts_init(&o);
  o.alpn = "h2,,http/1.1";
  ctx_fails(&o, WEFT_EINVAL);
  o.alpn = "h2,";
  ctx_fails(&o, WEFT_EINVAL);
  {
    static char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    o.alpn = longname;
    ctx_fails(&o, WEFT_EINVAL);
  }

  /* Files: missing, and unreadable. */
  snprintf(path, sizeof path, "%s/no-such-file.pem", tls_certs_dir(certs));
  weft_tls_opts_init(&o);
  o.server = 1;
  o.cert_file = path;
  o.key_file = tls_certs_key_file(certs, TLS_CERT_SERVER);
  ctx_fails(&o, WEFT_ENOENT);
  o.cert_file = tls_certs_chain_file(certs, TLS_CERT_SERVER);
  o.key_file = path;
  ctx_fails(&o, WEFT_ENOENT);
  weft_tls_opts_init(&o);
  o.ca_file = path;
  ctx_fails(&o, WEFT_ENOENT);
  if (geteuid() != 0) { /* root reads anything */
    snprintf(path, sizeof path, "%s/unreadable.pem", tls_certs_dir(certs));
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
      fputs(tls_certs_cert_pem(certs, TLS_CERT_CA), f);
      fclose(f);
      chmod(path, 0);
      weft_tls_opts_init(&o);
      o.ca_file = path;
      ctx_fails(&o, WEFT_EACCES);
      unlink(path);
    }
  }

  /* PEM that does not parse; a key that is not the certificate's. */
  weft_tls_opts_init(&o);
  o.server = 1;
  o.cert_pem = garbage;
  o.key_pem = tls_certs_key_pem(certs, TLS_CERT_SERVER);
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  o.cert_pem = tls_certs_cert_pem(certs, TLS_CERT_SERVER);
  o.key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  o.key_pem = tls_certs_key_pem(certs, TLS_CERT_WRONG_HOST);
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  /* The same from files: the certificate of one, the key of another. */
  weft_tls_opts_init(&o);
  o.server = 1;
  o.cert_file = tls_certs_chain_file(certs, TLS_CERT_SERVER);
  o.key_file = tls_certs_key_file(certs, TLS_CERT_CLIENT);
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  /* A file that is not PEM at all. */
  snprintf(path, sizeof path, "%s/garbage.pem", tls_certs_dir(certs));
  {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
      fputs("this is not a certificate\n", f);
      fclose(f);
    }
  }
  weft_tls_opts_init(&o);
  o.ca_file = path;
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  unlink(path);
  weft_tls_opts_init(&o);
  o.ca_pem = garbage;
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  /* Cipher and group strings OpenSSL rejects. */
  weft_tls_opts_init(&o);
  o.ciphers = "NO-SUCH-CIPHER";
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  weft_tls_opts_init(&o);
  o.ciphersuites = "TLS_NO_SUCH_SUITE";
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  weft_tls_opts_init(&o);
  o.groups = "no-such-group";
  ctx_fails(&o, WEFT_ETLS_CONFIG);

  /* A key log that cannot be opened. */
  weft_tls_opts_init(&o);
  o.keylog_file = "/nonexistent-weft-dir/keys.txt";
  ctx_fails(&o, WEFT_ENOENT);

  /* What works: PEM in memory, with and without lengths. */
  weft_tls_opts_init(&o);
  o.server = 1;
  o.cert_pem = tls_certs_chain_pem(certs, TLS_CERT_SERVER);
  o.key_pem = tls_certs_key_pem(certs, TLS_CERT_SERVER);
  CHECK_OK(weft_tls_ctx_new(&o, &ctx));
  weft_tls_ctx_free(ctx);
  o.cert_pem_len = strlen(o.cert_pem);
  o.key_pem_len = strlen(o.key_pem);
  CHECK_OK(weft_tls_ctx_new(&o, &ctx));
  weft_tls_ctx_free(ctx);
  /* A length that cuts the PEM short is a PEM that does not parse. */
  o.cert_pem_len = strlen(o.cert_pem) / 2;
  ctx_fails(&o, WEFT_ETLS_CONFIG);
  return NULL;
}

static void test_ctx_errors(void **state) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *ctx = NULL;
  char buf[256];

  (void)state;
  weft_tls_opts_init(NULL);
  memset(&o, 0x5a, sizeof o);
  weft_tls_opts_init(&o);
  assert_int_equal(o.server, 0);
  assert_null(o.cert_file);
  assert_null(o.ca_file);
  assert_null(o.alpn);
  assert_null(o.keylog_file);
  assert_int_equal(o.insecure_no_verify, 0);
  assert_int_equal(o.insecure_no_hostname_check, 0);
  assert_int_equal(o.client_cert, WEFT_TLS_CLIENT_CERT_NONE);
  assert_int_equal(o.allow_truncation, 0);
  assert_int_equal(o.no_session_tickets, 0);
  {
    weft_stream_opts_t so;
    memset(&so, 0x5a, sizeof so);
    weft_stream_opts_init(&so);
    assert_null(so.tls.ctx);
    assert_null(so.tls.server_hostname);
    assert_int_equal(so.tls.handshake_timeout_ms, 0);
    assert_int_equal(so.tls.shutdown_timeout_ms, 0);
  }
  /* Outside a task: contexts can be made, and their failures read on the
   * same thread. */
  o.server = 1;
  o.cert_pem = "garbage";
  o.key_pem = "garbage";
  assert_int_equal(weft_tls_ctx_new(&o, &ctx), WEFT_ETLS_CONFIG);
  assert_true(weft_tls_error_string(buf, sizeof buf) > 0);
  assert_true(buf[0] != '\0');
  /* Truncated into a small buffer, always terminated, full length back. */
  {
    char small[4];
    int n = weft_tls_error_string(small, sizeof small);
    assert_true(n >= (int)strlen(buf));
    assert_int_equal(strlen(small), 3);
  }
  run_in_weft(ctx_errors_main, NULL, 2);
}

/* A reader in a task of its own; `reading` is set just before it reads. */
typedef struct rd {
  weft_stream_t *s;
  char buf[16];
  size_t n;
  int rc;
  atomic_int reading;
} rd_t;

static void *read_task(void *arg) {
  rd_t *r = arg;
  atomic_store(&r->reading, 1);
  r->rc = weft_stream_read(r->s, r->buf, sizeof r->buf);
  return NULL;
}

/* ---- stream calls on a plaintext stream and bad arguments -----------------
 */

static void *not_tls_main(void *arg) {
  weft_server_t *srv;
  weft_stream_t *s;
  weft_tls_info_t info;
  weft_tls_cert_t *cert = NULL;
  weft_stream_tls_opts_t t;
  weft_tls_ctx_t *cctx = client_ctx();

  (void)arg;
  {
    weft_server_opts_t so;
    weft_server_opts_init(&so);
    CHECK_OK(weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &so, &srv));
  }
  CHECK_OK(weft_open_connection("127.0.0.1", weft_server_port(srv), NULL, &s));
  CHECK_RC(weft_stream_is_tls(s), 0);
  CHECK_RC(weft_stream_tls_info(s, &info), WEFT_ESTATE);
  CHECK_RC(weft_stream_tls_peer_cert(s, &cert), WEFT_ESTATE);
  CHECK(weft_stream_tls_native(s) == NULL);
  CHECK_RC(weft_stream_is_tls(NULL), WEFT_EINVAL);
  CHECK_RC(weft_stream_tls_info(NULL, &info), WEFT_EINVAL);
  CHECK_RC(weft_stream_tls_info(s, NULL), WEFT_EINVAL);
  CHECK_RC(weft_stream_tls_peer_cert(NULL, &cert), WEFT_EINVAL);
  CHECK_RC(weft_stream_tls_peer_cert(s, NULL), WEFT_EINVAL);
  CHECK(weft_stream_tls_native(NULL) == NULL);
  CHECK_RC(weft_server_tls_failures(NULL), WEFT_EINVAL);
  CHECK_EQ(weft_server_tls_failures(srv), 0); /* a plaintext server */
  weft_tls_cert_free(NULL);
  /* start_tls's arguments. */
  memset(&t, 0, sizeof t);
  CHECK_RC(weft_stream_start_tls(NULL, &t), WEFT_EINVAL);
  CHECK_RC(weft_stream_start_tls(s, NULL), WEFT_EINVAL);
  CHECK_RC(weft_stream_start_tls(s, &t), WEFT_EINVAL); /* no ctx */
  t.ctx = cctx;
  CHECK_RC(weft_stream_start_tls(s, &t), WEFT_EINVAL); /* no server name */
  /* Another task reading: the handshake cannot take the stream. */
  {
    rd_t r;
    weft_task_t *rt;
    memset(&r, 0, sizeof r);
    r.s = s;
    atomic_init(&r.reading, 0);
    CHECK_OK(weft_spawn(read_task, &r, &rt));
    HARNESS_WAIT_PARKED(r.reading);
    t.server_hostname = "localhost";
    {
      weft_timeout_t scope; /* bounded, should the read not be parked */
      CHECK_OK(weft_timeout_enter(&scope, (uint64_t)HARNESS_WAIT_MS));
      CHECK_RC(weft_timeout_exit(&scope, weft_stream_start_tls(s, &t)),
               WEFT_EBUSY);
    }
    CHECK_RC(weft_stream_is_tls(s), 0);
    CHECK_RC(weft_task_cancel(rt), 1);
    CHECK_RC(weft_task_await(rt, NULL), WEFT_ECANCELED);
    weft_task_unref(rt);
    t.server_hostname = NULL;
  }
  /* Still a working plaintext stream after refused calls. */
  echo_once(s, "plain");
  CHECK_OK(weft_stream_close(s));
  t.server_hostname = "localhost";
  CHECK_RC(weft_stream_start_tls(s, &t), WEFT_ESTATE); /* closing */
  CHECK_OK(weft_stream_free(s));
  stop(srv);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_not_tls(void **state) {
  weft_stream_tls_opts_t t;

  (void)state;
  /* Outside a task. */
  memset(&t, 0, sizeof t);
  assert_int_equal(weft_stream_start_tls(NULL, &t), WEFT_EINVAL);
  run_in_weft(not_tls_main, NULL, 2);
}

/* ---- every reading call over TLS ------------------------------------------
 */

typedef struct script {
  const char *data; /* what the handler sends, then it returns (closes) */
  size_t len;
  atomic_int calls;
} script_t;

static void script_handler(weft_stream_t *s, void *arg) {
  script_t *sc = arg;

  atomic_fetch_add(&sc->calls, 1);
  CHECK_RC(weft_stream_is_tls(s), 1);
  CHECK_OK(weft_stream_write(s, sc->data, sc->len));
  CHECK_OK(weft_stream_drain(s));
}

/* The same on a plaintext server; then it reads until the end. */
static void script_handler_plain(weft_stream_t *s, void *arg) {
  script_t *sc = arg;
  char buf[256];

  atomic_fetch_add(&sc->calls, 1);
  CHECK_OK(weft_stream_write(s, sc->data, sc->len));
  CHECK_OK(weft_stream_drain(s));
  while (weft_stream_read(s, buf, sizeof buf) > 0) {
  }
}

static void *readers_main(void *arg) {
  static const char text[] = "line one\nline two\r\nABCDEFGHIJ-tail";
  script_t sc = {text, sizeof text - 1, 0};
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  weft_server_t *srv;
  weft_stream_t *s;
  char buf[64];
  size_t len = 0;

  (void)arg;
  srv = tls_start(script_handler, &sc, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  CHECK_RC(weft_stream_is_tls(s), 1);
  CHECK_RC(weft_stream_readline(s, buf, sizeof buf, &len), 0);
  CHECK_EQ(len, 9);
  CHECK(memcmp(buf, "line one\n", 9) == 0);
  CHECK_RC(weft_stream_readuntil(s, "\r\n", 2, buf, sizeof buf, &len), 0);
  CHECK_EQ(len, 10);
  CHECK(memcmp(buf, "line two\r\n", 10) == 0);
  CHECK_RC(weft_stream_readexactly(s, buf, 4, &len), 0);
  CHECK(memcmp(buf, "ABCD", 4) == 0);
  CHECK_RC(weft_stream_read(s, buf, 3), 3);
  CHECK(memcmp(buf, "EFG", 3) == 0);
  CHECK_RC(weft_stream_at_eof(s), 0);
  /* The server closed with close_notify: a clean end after the data. */
  CHECK_RC(weft_stream_readexactly(s, buf, 100, &len), WEFT_EINCOMPLETE);
  CHECK_EQ(len, 8);
  CHECK(memcmp(buf, "HIJ-tail", 8) == 0);
  CHECK_RC(weft_stream_at_eof(s), 1);
  CHECK_RC(weft_stream_read(s, buf, sizeof buf), 0);
  CHECK_RC(weft_stream_readline(s, buf, sizeof buf, &len), 0);
  CHECK_EQ(len, 0);
  CHECK_RC(weft_stream_readuntil(s, "x", 1, buf, sizeof buf, &len),
           WEFT_EINCOMPLETE);
  CHECK_EQ(len, 0);
  CHECK_OK(weft_stream_free(s));

  /* asyncio's limit applies to the plaintext. */
  {
    static const char lim[] = "0123456789012345678901234567890123456789\n"
                              "short\n";
    weft_stream_opts_t o;

    sc.data = lim;
    sc.len = sizeof lim - 1;
    weft_stream_opts_init(&o);
    o.limit = 16;
    o.tls.ctx = cctx;
    o.tls.server_hostname = "localhost";
    CHECK_OK(weft_open_connection("127.0.0.1", weft_server_port(srv), &o, &s));
    CHECK_RC(weft_stream_readline(s, buf, sizeof buf, &len), WEFT_ELIMIT);
    CHECK_RC(weft_stream_readline(s, buf, sizeof buf, &len), 0);
    CHECK_EQ(len, 6);
    CHECK(memcmp(buf, "short\n", 6) == 0);
    CHECK_OK(weft_stream_free(s));
  }
  stop(srv);
  CHECK_EQ(atomic_load(&sc.calls), 2);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_readers(void **state) {
  (void)state;
  run_in_weft(readers_main, NULL, 2);
  run_in_weft_deterministic(readers_main, NULL);
}

/* ---- writev, write_eof and reading on, abort ------------------------------
 */

typedef struct half {
  atomic_int eof_rc; /* what the server's read after the client's
                        write_eof returned */
  atomic_int got;    /* bytes the server read before it */
  atomic_int calls;
} half_t;

/* Read until end of stream, then answer and return. */
static void half_handler(weft_stream_t *s, void *arg) {
  half_t *h = arg;
  char buf[256];
  int n, total = 0;

  atomic_fetch_add(&h->calls, 1);
  while ((n = weft_stream_read(s, buf + total, sizeof buf - (size_t)total)) > 0)
    total += n;
  atomic_store(&h->got, total);
  atomic_store(&h->eof_rc, n);
  if (n == 0 && total == 11 && memcmp(buf, "hello world", 11) == 0) {
    CHECK_OK(weft_stream_write(s, "after eof", 9));
    CHECK_OK(weft_stream_drain(s));
  }
}

typedef struct aborted {
  atomic_int rc; /* the server's read after the client's abort */
  atomic_int calls;
} aborted_t;

static void abort_handler(weft_stream_t *s, void *arg) {
  aborted_t *a = arg;
  char buf[64];
  int n;

  atomic_fetch_add(&a->calls, 1);
  CHECK_RC(weft_stream_readexactly(s, buf, 4, NULL), 0);
  CHECK_OK(weft_stream_write(s, "ack", 3));
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0) {
  }
  atomic_store(&a->rc, n);
}

static void *half_close_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  half_t h = {1, 0, 0};
  aborted_t a = {1, 0};
  weft_server_t *srv;
  weft_stream_t *s;
  weft_iovec_t iov[3] = {{"hello", 5}, {" ", 1}, {"world", 5}};
  char buf[64];
  size_t len;

  (void)arg;
  srv = tls_start(half_handler, &h, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  CHECK_RC(weft_stream_can_write_eof(s), 1);
  CHECK_OK(weft_stream_writev(s, iov, 3));
  CHECK_OK(weft_stream_write_eof(s));
  CHECK_OK(weft_stream_write_eof(s)); /* twice is fine */
  CHECK_RC(weft_stream_write(s, "x", 1), WEFT_EPIPE);
  /* Reading goes on after our half-close. */
  CHECK_RC(weft_stream_readexactly(s, buf, 9, &len), 0);
  CHECK(memcmp(buf, "after eof", 9) == 0);
  CHECK_RC(weft_stream_read(s, buf, sizeof buf), 0);
  CHECK_EQ(atomic_load(&h.got), 11);
  CHECK_RC(atomic_load(&h.eof_rc), 0); /* a clean end, not truncated */
  CHECK_OK(weft_stream_close(s));
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));
  stop(srv);

  /* abort: at once, no close_notify: the server's read fails, and the
   * failure is the truncation (or a reset), never a clean end. */
  srv = tls_start(abort_handler, &a, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  CHECK_OK(weft_stream_write(s, "ping", 4));
  CHECK_RC(weft_stream_readexactly(s, buf, 3, NULL), 0);
  CHECK_OK(weft_stream_write(s, "queued and dropped", 18));
  CHECK_OK(weft_stream_abort(s));
  CHECK_RC(weft_stream_is_closing(s), 1);
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_RC(weft_stream_write(s, "x", 1), WEFT_EPIPE);
  CHECK_OK(weft_stream_free(s));
  HARNESS_WAIT(atomic_load(&a.rc) != 1);
  CHECK(atomic_load(&a.rc) == WEFT_ETLS_TRUNCATED ||
        atomic_load(&a.rc) == WEFT_ECONNRESET);
  stop(srv);
  CHECK_EQ(atomic_load(&h.calls), 1);
  CHECK_EQ(atomic_load(&a.calls), 1);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_half_close_and_abort(void **state) {
  (void)state;
  run_in_weft(half_close_main, NULL, 2);
}

/* ---- record boundaries: tiny reads, split separators, odd writes ----------
 */

/* Sends "abc\r", then (after the client's go) "\ndef\n", each in its own
 * TLS record; then echoes. */
static void split_handler(weft_stream_t *s, void *arg) {
  char go[1];

  (void)arg;
  CHECK_OK(weft_stream_write(s, "abc\r", 4));
  CHECK_OK(weft_stream_drain(s));
  if (weft_stream_readexactly(s, go, 1, NULL) != 0)
    return;
  CHECK_OK(weft_stream_write(s, "\ndef\n", 5));
  CHECK_OK(weft_stream_drain(s));
  echo_handler(s, NULL);
}

/* Queue 2 MiB without draining and return: the server's close must send it
 * all, then close_notify. */
static void dump_handler(weft_stream_t *s, void *arg) {
  const size_t n = (size_t)2 << 20;
  unsigned char *buf = malloc(n);
  pat_t p;

  (void)arg;
  CHECK(buf != NULL);
  if (buf == NULL)
    return;
  pat_init(&p, 99);
  pat_fill(&p, buf, n);
  CHECK_OK(weft_stream_write(s, buf, n));
  free(buf);
}

static void *edges_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  const size_t big = (size_t)4 << 20;
  unsigned char *out = malloc(big), *back = malloc(big);
  weft_server_t *srv;
  weft_stream_t *s;
  char buf[64];
  size_t len;
  pat_t p;

  (void)arg;
  CHECK(out != NULL && back != NULL);
  srv = tls_start(split_handler, NULL, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  /* A separator split across two records: readuntil waits for the second. */
  CHECK_RC(weft_stream_readexactly(s, buf, 1, NULL), 0);
  CHECK_EQ(buf[0], 'a');
  CHECK_OK(weft_stream_write(s, "g", 1));
  CHECK_RC(weft_stream_readuntil(s, "\r\n", 2, buf, sizeof buf, &len), 0);
  CHECK(len == 4 && memcmp(buf, "bc\r\n", 4) == 0);
  CHECK_RC(weft_stream_readline(s, buf, sizeof buf, &len), 0);
  CHECK(len == 4 && memcmp(buf, "def\n", 4) == 0);
  /* Empty writes are nothing; empty buffers in a writev are skipped. */
  CHECK_OK(weft_stream_write(s, NULL, 0));
  CHECK_OK(weft_stream_writev(s, NULL, 0));
  if (out != NULL && back != NULL) {
    weft_iovec_t iov[5];
    size_t got = 0;
    int n;

    pat_init(&p, 7);
    pat_fill(&p, out, big);
    iov[0].base = out;
    iov[0].len = 0;
    iov[1].base = out;
    iov[1].len = 1;
    iov[2].base = out + 1;
    iov[2].len = 0;
    iov[3].base = out + 1;
    iov[3].len = 16385; /* one byte over a TLS record */
    iov[4].base = out + 16386;
    iov[4].len = 0;
    CHECK_OK(weft_stream_writev(s, iov, 5));
    CHECK_RC(weft_stream_readexactly(s, back, 16386, NULL), 0);
    CHECK(memcmp(back, out, 16386) == 0);
    /* One write of 4 MiB, read back a byte at a time at first (a record
     * consumed in many reads), then in odd sizes. */
    CHECK_OK(weft_stream_write(s, out, big));
    for (int i = 0; i < 20000; i++) {
      CHECK_RC(weft_stream_read(s, back + got, 1), 1);
      got++;
    }
    while (got < big &&
           (n = weft_stream_read(s, back + got,
                                 big - got < 7777 ? big - got : 7777)) > 0)
      got += (size_t)n;
    CHECK_EQ(got, big);
    CHECK(memcmp(back, out, big) == 0);
  }
  CHECK_OK(weft_stream_free(s));
  stop(srv);

  /* A handler that returns with 2 MiB queued: all of it arrives, then a
   * clean end. */
  srv = tls_start(dump_handler, NULL, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  if (back != NULL) {
    size_t got = 0;
    int n, ok = 1;

    pat_init(&p, 99);
    while ((n = weft_stream_read(s, back, 65536)) > 0) {
      ok &= pat_check(&p, back, (size_t)n);
      got += (size_t)n;
    }
    CHECK_RC(n, 0);
    CHECK_EQ(got, (size_t)2 << 20);
    CHECK_EQ(ok, 1);
  }
  CHECK_OK(weft_stream_free(s));
  stop(srv);
  free(out);
  free(back);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_record_edges(void **state) {
  (void)state;
  run_in_weft(edges_main, NULL, 2);
}

/* ---- megabytes both ways, checksummed --------------------------------------
 */

#define BULK_SEED_UP 0x75707570ull   /* client -> server */
#define BULK_SEED_DOWN 0x646f776eull /* server -> client */

static size_t bulk_size(void) {
  return (size_t)HARNESS_SIZE(8u << 20, 1u << 20, 2u << 20);
}

typedef struct bulk_writer {
  weft_stream_t *s;
  uint64_t seed;
  size_t total;
  int rc;
} bulk_writer_t;

/* Write total bytes of the pattern in chunks of varying size, alternating
 * write and writev, draining after each; then write_eof. */
static void *bulk_write_task(void *arg) {
  bulk_writer_t *w = arg;
  size_t cap = 200 * 1024, done = 0;
  unsigned char *buf = malloc(cap);
  uint64_t rnd = w->seed ^ 0x1234;
  pat_t p;
  int i = 0;

  CHECK(buf != NULL);
  if (buf == NULL)
    return NULL;
  pat_init(&p, w->seed);
  w->rc = 0;
  while (done < w->total && w->rc == 0) {
    size_t n = (size_t)harness_rand_range(&rnd, 1, cap);

    if (n > w->total - done)
      n = w->total - done;
    pat_fill(&p, buf, n);
    if (i++ % 2 == 0 || n < 3) {
      w->rc = weft_stream_write(w->s, buf, n);
    } else {
      weft_iovec_t iov[3] = {{buf, n / 3},
                             {buf + n / 3, n / 3},
                             {buf + 2 * (n / 3), n - 2 * (n / 3)}};
      w->rc = weft_stream_writev(w->s, iov, 3);
    }
    if (w->rc == 0)
      w->rc = weft_stream_drain(w->s);
    done += n;
  }
  if (w->rc == 0)
    w->rc = weft_stream_write_eof(w->s);
  free(buf);
  return NULL;
}

/* Read to end of stream checking the pattern; returns the byte count, or
 * a negative error. */
static long bulk_read(weft_stream_t *s, uint64_t seed, int *ok) {
  char *buf = malloc(64 * 1024);
  long total = 0;
  pat_t p;
  int n;

  *ok = 1;
  if (buf == NULL)
    return WEFT_ENOMEM;
  pat_init(&p, seed);
  while ((n = weft_stream_read(s, buf, 64 * 1024)) > 0) {
    *ok &= pat_check(&p, buf, (size_t)n);
    total += n;
  }
  free(buf);
  return n < 0 ? n : total;
}

typedef struct bulk_server {
  atomic_long received;
  atomic_int ok;
  atomic_int calls;
  atomic_int done; /* the handler is about to return */
} bulk_server_t;

static void bulk_handler(weft_stream_t *s, void *arg) {
  bulk_server_t *b = arg;
  bulk_writer_t w = {s, BULK_SEED_DOWN, bulk_size(), 1};
  weft_task_t *t;
  int ok;
  long got;

  atomic_fetch_add(&b->calls, 1);
  CHECK_OK(weft_spawn(bulk_write_task, &w, &t));
  got = bulk_read(s, BULK_SEED_UP, &ok);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(w.rc);
  atomic_store(&b->ok, ok);
  atomic_store(&b->received, got);
  atomic_store(&b->done, 1);
}

static void *bulk_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  bulk_server_t b = {0, 0, 0, 0};
  weft_server_t *srv;
  weft_stream_t *s;
  weft_task_t *t;
  bulk_writer_t w;
  long got;
  int ok;

  (void)arg;
  srv = tls_start(bulk_handler, &b, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  w.s = s;
  w.seed = BULK_SEED_UP;
  w.total = bulk_size();
  w.rc = 1;
  CHECK_OK(weft_spawn(bulk_write_task, &w, &t));
  got = bulk_read(s, BULK_SEED_DOWN, &ok);
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(w.rc);
  CHECK_EQ(got, (long)bulk_size());
  CHECK_EQ(ok, 1);
  CHECK_OK(weft_stream_free(s));
  /* The server may still be reading our last bytes: stop() would abort
   * it. */
  HARNESS_WAIT(atomic_load(&b.done));
  stop(srv);
  CHECK_EQ(atomic_load(&b.calls), 1);
  CHECK_EQ(atomic_load(&b.received), (long)bulk_size());
  CHECK_EQ(atomic_load(&b.ok), 1);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_bulk(void **state) {
  (void)state;
  run_in_weft(bulk_main, NULL, 2);
  run_in_weft(bulk_main, NULL, 1);
}

/* ---- drain and the water marks with a slow reader; close delivers -------- */

#define CHUNK ((size_t)64 * 1024)
#define FLOW_SEED 0x666c6f77ull

typedef struct slow {
  weft_queue_t *go; /* the handler reads once it gets an item */
  atomic_long got;  /* bytes read, pattern checked */
  atomic_int ok;
  atomic_int end_rc; /* its last read: 0 for a clean end */
  atomic_int calls;
} slow_t;

static void slow_handler(weft_stream_t *s, void *arg) {
  slow_t *sl = arg;
  char *buf = malloc(CHUNK);
  void *item;
  pat_t p;
  int n, ok = 1;
  long got = 0;

  atomic_fetch_add(&sl->calls, 1);
  if (buf == NULL || weft_queue_get(sl->go, &item) != 0) {
    free(buf);
    return;
  }
  pat_init(&p, FLOW_SEED);
  while ((n = weft_stream_read(s, buf, CHUNK)) > 0) {
    ok &= pat_check(&p, buf, (size_t)n);
    got += n;
  }
  atomic_store(&sl->ok, ok);
  atomic_store(&sl->end_rc, n);
  atomic_store(&sl->got, got);
  free(buf);
}

typedef struct drainer {
  weft_stream_t *s;
  int rc;
  atomic_int started;
} drainer_t;

static void *drain_task(void *arg) {
  drainer_t *d = arg;
  atomic_store(&d->started, 1);
  d->rc = weft_stream_drain(d->s);
  return NULL;
}

static void *flow_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  slow_t sl;
  weft_server_t *srv;
  weft_stream_t *s;
  drainer_t d[2];
  weft_task_t *t[2];
  unsigned char *chunk = malloc(CHUNK);
  size_t before, after;
  long sent = 0;
  pat_t p;
  int i, paused = 0;

  (void)arg;
  CHECK(chunk != NULL);
  memset(&sl, 0, sizeof sl);
  atomic_store(&sl.end_rc, 1);
  CHECK_OK(weft_queue_new(0, &sl.go));
  srv = tls_start(slow_handler, &sl, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  CHECK_OK(weft_stream_set_write_buffer_limits(s, 4096, 1024));
  {
    int fd = weft_stream_fileno(s), sz = 16384;
    CHECK(fd >= 0);
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz), 0);
  }
  pat_init(&p, FLOW_SEED);
  /* Write until what is queued stays put: the peer does not read. */
  for (i = 0; i < 2000 && !paused; i++) {
    size_t settled;
    pat_fill(&p, chunk, CHUNK);
    CHECK_OK(weft_stream_write(s, chunk, CHUNK));
    sent += (long)CHUNK;
    CHECK_OK(weft_stream_get_write_buffer_size(s, &before));
    if (before <= 4 * CHUNK)
      continue;
    CHECK_OK(weft_sleep(20));
    CHECK_OK(weft_stream_get_write_buffer_size(s, &settled));
    paused = settled == before;
  }
  CHECK(paused);
  for (i = 0; i < 2; i++) {
    d[i].s = s;
    d[i].rc = 1;
    atomic_init(&d[i].started, 0);
    CHECK_OK(weft_spawn(drain_task, &d[i], &t[i]));
  }
  for (i = 0; i < 2; i++)
    HARNESS_WAIT_PARKED(d[i].started);
  CHECK_EQ(weft_task_done(t[0]), 0);
  CHECK_EQ(weft_task_done(t[1]), 0);
  /* A cancelled drain loses nothing: the queue stays (it can only shrink
   * while the server's TLS layer still takes in what fits its buffer), and
   * the server gets every byte in the end (checked below). */
  CHECK_OK(weft_stream_get_write_buffer_size(s, &before));
  CHECK_RC(weft_task_cancel(t[0]), 1);
  CHECK_RC(weft_task_await(t[0], NULL), WEFT_ECANCELED);
  CHECK_RC(d[0].rc, WEFT_ECANCELED);
  CHECK_OK(weft_stream_get_write_buffer_size(s, &after));
  CHECK_LE(after, before);
  CHECK(after > 1024); /* still over the low-water mark: no drain returns */
  /* wait_for on a drain times out cleanly too. */
  {
    drainer_t d2 = {s, 1, 0};
    weft_task_t *t2;
    CHECK_OK(weft_spawn(drain_task, &d2, &t2));
    HARNESS_WAIT_PARKED(d2.started); /* started: a cancel then reaches it */
    CHECK_RC(weft_task_wait_for(t2, 20, NULL), WEFT_ETIMEDOUT);
    CHECK_RC(d2.rc, WEFT_ECANCELED);
    weft_task_unref(t2);
  }
  CHECK_OK(weft_queue_put(sl.go, (void *)1)); /* the server reads now */
  CHECK_OK(weft_task_await(t[1], NULL));
  CHECK_OK(d[1].rc);
  weft_task_unref(t[0]);
  weft_task_unref(t[1]);
  CHECK_OK(weft_stream_get_write_buffer_size(s, &after));
  CHECK_LE(after, 1024);
  /* Queue a lot more and close at once: close sends it all, then
   * close_notify; the server reads every byte and a clean end. */
  for (i = 0; i < 16; i++) {
    pat_fill(&p, chunk, CHUNK);
    CHECK_OK(weft_stream_write(s, chunk, CHUNK));
    sent += (long)CHUNK;
  }
  CHECK_OK(weft_stream_close(s));
  CHECK_RC(weft_stream_write(s, "x", 1), WEFT_EPIPE);
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));
  HARNESS_WAIT(atomic_load(&sl.end_rc) != 1);
  CHECK_RC(atomic_load(&sl.end_rc), 0);
  CHECK_EQ(atomic_load(&sl.got), sent);
  CHECK_EQ(atomic_load(&sl.ok), 1);
  stop(srv);
  CHECK_OK(weft_queue_free(sl.go));
  free(chunk);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_flow_control(void **state) {
  (void)state;
  run_in_weft(flow_main, NULL, 2);
}

/* ---- cancelling reads ---------------------------------------------------- */

typedef struct gate {
  weft_queue_t *go; /* the handler waits for an item, then sends */
  const char *data;
  size_t len;
  atomic_int sent;
} gate_t;

static void gated_handler(weft_stream_t *s, void *arg) {
  gate_t *g = arg;
  void *item;

  while (weft_queue_get(g->go, &item) == 0 && item) {
    CHECK_OK(weft_stream_write(s, g->data, g->len));
    CHECK_OK(weft_stream_drain(s));
    atomic_fetch_add(&g->sent, 1);
  }
}

static void *readexactly_task(void *arg) {
  rd_t *r = arg;
  atomic_store(&r->reading, 1);
  r->rc = weft_stream_readexactly(r->s, r->buf, 10, &r->n);
  return NULL;
}

static void *cancel_read_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  gate_t g = {NULL, "xyz", 3, 0};
  weft_server_t *srv;
  weft_task_t *t;
  char buf[16];
  size_t len;
  rd_t r;

  (void)arg;
  CHECK_OK(weft_queue_new(0, &g.go));
  srv = tls_start(gated_handler, &g, sctx, 0, 0);
  r.s = tls_connect(srv, cctx);
  atomic_init(&r.reading, 0);
  CHECK_OK(weft_spawn(read_task, &r, &t));
  HARNESS_WAIT_PARKED(r.reading);
  CHECK_EQ(weft_task_done(t), 0);
  {
    weft_timeout_t scope;
    CHECK_OK(weft_timeout_enter(&scope, (uint64_t)HARNESS_WAIT_MS));
    CHECK_RC(weft_timeout_exit(&scope, weft_stream_read(r.s, buf, sizeof buf)),
             WEFT_EBUSY);
  }
  CHECK_RC(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  CHECK_RC(r.rc, WEFT_ECANCELED);
  weft_task_unref(t);
  CHECK_OK(weft_queue_put(g.go, (void *)1));
  CHECK_RC(weft_stream_readexactly(r.s, buf, 3, &len), 0);
  CHECK(memcmp(buf, "xyz", 3) == 0);
  /* readexactly with part of its data, cancelled: the part is counted. */
  atomic_store(&r.reading, 0);
  CHECK_OK(weft_spawn(readexactly_task, &r, &t));
  HARNESS_WAIT_PARKED(r.reading);
  CHECK_OK(weft_queue_put(g.go, (void *)1));
  if (HARNESS_WAIT(atomic_load(&g.sent) == 2))
    harness_settle();
  CHECK_EQ(weft_task_done(t), 0);
  CHECK_RC(weft_task_cancel(t), 1);
  CHECK_RC(weft_task_await(t, NULL), WEFT_ECANCELED);
  CHECK_RC(r.rc, WEFT_ECANCELED);
  CHECK_EQ(r.n, 3);
  CHECK(memcmp(r.buf, "xyz", 3) == 0);
  weft_task_unref(t);
  /* wait_for on a reader: a timeout, and the stream goes on. */
  CHECK_OK(weft_spawn(read_task, &r, &t));
  CHECK_RC(weft_task_wait_for(t, 30, NULL), WEFT_ETIMEDOUT);
  weft_task_unref(t);
  CHECK_OK(weft_queue_put(g.go, (void *)1));
  CHECK_RC(weft_stream_read(r.s, buf, sizeof buf), 3);
  CHECK(memcmp(buf, "xyz", 3) == 0);
  CHECK_OK(weft_queue_put(g.go, NULL));
  CHECK_RC(weft_stream_read(r.s, buf, sizeof buf), 0);
  CHECK_OK(weft_stream_free(r.s));
  stop(srv);
  CHECK_OK(weft_queue_free(g.go));
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_cancel_read(void **state) {
  (void)state;
  run_in_weft(cancel_read_main, NULL, 2);
  run_in_weft(cancel_read_main, NULL, 1);
}

/* ---- start_tls: a STARTTLS toy protocol ------------------------------------
 *
 *   C: HELLO\n            S: HELLO you\n     (plaintext)
 *   C: STARTTLS\n         S: GO\n            (plaintext; then both start_tls)
 *   then an echo over TLS.
 * In the pipelined variant the client sends "STARTTLS\n" and its ClientHello
 * in one go without waiting for GO, and the server answers nothing in
 * plaintext: the server's buffer holds the ClientHello right behind the line
 * it read, and start_tls must take it as TLS. */

typedef struct starttls {
  weft_tls_ctx_t *sctx;
  int pipelined;
  atomic_int upgraded; /* the server's start_tls returned 0 */
  atomic_int calls;
} starttls_t;

static void starttls_handler(weft_stream_t *s, void *arg) {
  starttls_t *st = arg;
  weft_stream_tls_opts_t t;
  char line[64];
  size_t len;

  atomic_fetch_add(&st->calls, 1);
  CHECK_RC(weft_stream_is_tls(s), 0);
  CHECK_RC(weft_stream_readline(s, line, sizeof line, &len), 0);
  CHECK(len == 6 && memcmp(line, "HELLO\n", 6) == 0);
  CHECK_OK(weft_stream_write(s, "HELLO you\n", 10));
  CHECK_RC(weft_stream_readline(s, line, sizeof line, &len), 0);
  CHECK(len == 9 && memcmp(line, "STARTTLS\n", 9) == 0);
  if (!st->pipelined)
    CHECK_OK(weft_stream_write(s, "GO\n", 3)); /* queued: sent first */
  memset(&t, 0, sizeof t);
  t.ctx = st->sctx;
  t.handshake_timeout_ms = (uint64_t)HARNESS_WAIT_MS;
  if (weft_stream_start_tls(s, &t) != 0) {
    CHECK(!"the server's start_tls failed");
    return;
  }
  atomic_store(&st->upgraded, 1);
  CHECK_RC(weft_stream_is_tls(s), 1);
  CHECK_RC(weft_stream_start_tls(s, &t), WEFT_ESTATE); /* TLS already */
  echo_handler(s, NULL);
}

static void *starttls_main(void *arg) {
  starttls_t st;
  weft_tls_ctx_t *cctx = client_ctx();
  weft_stream_tls_opts_t t;
  weft_server_t *srv;
  weft_stream_t *s;
  weft_tls_info_t info;
  char line[64];
  size_t len;

  (void)arg;
  memset(&st, 0, sizeof st);
  st.sctx = server_ctx(TLS_CERT_SERVER);
  {
    weft_server_opts_t so;
    weft_server_opts_init(&so);
    CHECK_OK(
        weft_start_server(starttls_handler, &st, "127.0.0.1", 0, &so, &srv));
  }
  for (st.pipelined = 0; st.pipelined < 2; st.pipelined++) {
    atomic_store(&st.upgraded, 0);
    CHECK_OK(
        weft_open_connection("127.0.0.1", weft_server_port(srv), NULL, &s));
    CHECK_OK(weft_stream_write(s, "HELLO\n", 6));
    CHECK_RC(weft_stream_readline(s, line, sizeof line, &len), 0);
    CHECK(len == 10 && memcmp(line, "HELLO you\n", 10) == 0);
    CHECK_OK(weft_stream_write(s, "STARTTLS\n", 9));
    if (!st.pipelined) {
      CHECK_RC(weft_stream_readline(s, line, sizeof line, &len), 0);
      CHECK(len == 3 && memcmp(line, "GO\n", 3) == 0);
    }
    memset(&t, 0, sizeof t);
    t.ctx = cctx;
    t.server_hostname = "localhost";
    CHECK_OK(weft_stream_start_tls(s, &t));
    CHECK_RC(weft_stream_is_tls(s), 1);
    CHECK_OK(weft_stream_tls_info(s, &info));
    CHECK_EQ(info.version, WEFT_TLS_VERSION_1_3);
    CHECK(strcmp(info.server_name, "localhost") == 0);
    echo_once(s, "over tls");
    echo_once(s, "and again");
    CHECK_EQ(atomic_load(&st.upgraded), 1);
    CHECK_OK(weft_stream_write_eof(s));
    CHECK_RC(weft_stream_read(s, line, sizeof line), 0);
    CHECK_OK(weft_stream_free(s));
  }
  /* start_tls against a peer that answers in plaintext: a TLS error, and
   * the stream is aborted. */
  {
    script_t sc = {"NOT TLS AT ALL, SORRY\r\n\r\n", 25, 0};
    weft_server_t *plain;
    weft_server_opts_t so;
    int rc;

    weft_server_opts_init(&so);
    CHECK_OK(weft_start_server(script_handler_plain, &sc, "127.0.0.1", 0, &so,
                               &plain));
    CHECK_OK(
        weft_open_connection("127.0.0.1", weft_server_port(plain), NULL, &s));
    t.handshake_timeout_ms = (uint64_t)HARNESS_WAIT_MS;
    rc = weft_stream_start_tls(s, &t);
    CHECK(rc == WEFT_ETLS || rc == WEFT_ETLS_VERSION);
    check_tls_reason(NULL);
    CHECK_RC(weft_stream_is_closing(s), 1);
    CHECK_RC(weft_stream_is_tls(s), 0);
    {
      /* Aborted: writes fail with the abort's EPIPE or the failure's code. */
      int wrc = weft_stream_write(s, "x", 1);
      CHECK(wrc == WEFT_EPIPE || wrc == rc);
    }
    CHECK_OK(weft_stream_free(s));
    stop(plain);
  }
  stop(srv);
  CHECK_EQ(atomic_load(&st.calls), 2);
  weft_tls_ctx_free(st.sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_start_tls(void **state) {
  (void)state;
  run_in_weft(starttls_main, NULL, 2);
  run_in_weft_deterministic(starttls_main, NULL);
}

/* ---- what the handshake negotiated; the peer's certificate --------------- */

/* What the server's handler saw (written before `ready` is set). */
typedef struct seen {
  atomic_int calls;
  atomic_int ready;
  weft_tls_info_t info;
  char version_name[16], cipher[96], alpn[64], sni[64];
  int cert_rc;       /* weft_stream_tls_peer_cert() */
  char subject[256]; /* the client's certificate, if any */
  char san0[128];
} seen_t;

static void seen_reset(seen_t *sn) { atomic_store(&sn->ready, 0); }

static void copy_str(char *dst, size_t cap, const char *src) {
  CHECK(src != NULL);
  snprintf(dst, cap, "%s", src != NULL ? src : "(null)");
}

static void seen_handler(weft_stream_t *s, void *arg) {
  seen_t *sn = arg;
  weft_tls_cert_t *c = NULL;

  atomic_fetch_add(&sn->calls, 1);
  CHECK_RC(weft_stream_is_tls(s), 1);
  CHECK_OK(weft_stream_tls_info(s, &sn->info));
  copy_str(sn->version_name, sizeof sn->version_name, sn->info.version_name);
  copy_str(sn->cipher, sizeof sn->cipher, sn->info.cipher);
  copy_str(sn->alpn, sizeof sn->alpn, sn->info.alpn);
  copy_str(sn->sni, sizeof sn->sni, sn->info.server_name);
  sn->cert_rc = weft_stream_tls_peer_cert(s, &c);
  sn->subject[0] = sn->san0[0] = '\0';
  if (sn->cert_rc == 0) {
    copy_str(sn->subject, sizeof sn->subject, c->subject);
    if (c->nsan > 0)
      copy_str(sn->san0, sizeof sn->san0, c->san[0]);
    weft_tls_cert_free(c);
  }
  {
    SSL *ssl = weft_stream_tls_native(s);
    CHECK(ssl != NULL);
    if (ssl != NULL)
      CHECK_EQ(SSL_is_server(ssl), 1);
  }
  atomic_store(&sn->ready, 1);
  echo_handler(s, NULL);
}

static void check_info(const weft_tls_info_t *i, int version, const char *alpn,
                       const char *sni, int resumed) {
  CHECK_EQ(i->version, version);
  CHECK(i->version_name != NULL &&
        strcmp(i->version_name,
               version == WEFT_TLS_VERSION_1_3 ? "TLSv1.3" : "TLSv1.2") == 0);
  /* IANA names ("TLS_AES_128_GCM_SHA256",
   * "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"), not OpenSSL's. */
  CHECK(i->cipher != NULL && strncmp(i->cipher, "TLS_", 4) == 0);
  CHECK(i->cipher_bits >= 128);
  CHECK(i->alpn != NULL && strcmp(i->alpn, alpn) == 0);
  CHECK(i->server_name != NULL && strcmp(i->server_name, sni) == 0);
  CHECK_EQ(i->resumed, resumed);
}

static void *info_main(void *arg) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *sctx, *cctx, *cctx2, *cctx_noticket;
  seen_t sn;
  weft_server_t *srv;
  weft_stream_t *s;
  weft_tls_info_t info;

  (void)arg;
  memset(&sn, 0, sizeof sn);
  weft_tls_opts_init(&o);
  o.alpn = "weft/1,http/1.1";
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
  o.alpn = "http/1.1,weft/1"; /* the server's preference wins */
  cctx = client_ctx_ex(&o);
  cctx2 = client_ctx_ex(&o);
  o.no_session_tickets = 1;
  cctx_noticket = client_ctx_ex(&o);
  srv = tls_start(seen_handler, &sn, sctx, 0, 0);

  /* First connection: a full handshake. */
  seen_reset(&sn);
  s = tls_connect(srv, cctx);
  CHECK_OK(weft_stream_tls_info(s, &info));
  check_info(&info, WEFT_TLS_VERSION_1_3, "weft/1", "localhost", 0);
  CHECK_EQ(info.peer_cert, 1);
  check_peer_cert(s, TLS_CERT_SERVER);
  {
    SSL *ssl = weft_stream_tls_native(s);
    CHECK(ssl != NULL);
    if (ssl != NULL) {
      CHECK_EQ(SSL_version(ssl), TLS1_3_VERSION);
      CHECK_EQ(SSL_is_server(ssl), 0);
    }
  }
  echo_once(s, "first"); /* the session ticket comes with the data */
  if (HARNESS_WAIT(atomic_load(&sn.ready))) {
    check_info(&sn.info, WEFT_TLS_VERSION_1_3, "weft/1", "localhost", 0);
    CHECK(strcmp(sn.cipher, info.cipher) == 0);
    CHECK_EQ(sn.info.peer_cert, 0);
    CHECK_RC(sn.cert_rc, WEFT_ENOENT);
  }
  CHECK_OK(weft_stream_close(s));
  CHECK_OK(weft_stream_wait_closed(s));
  CHECK_OK(weft_stream_free(s));

  /* Second connection of the same context: resumed, on both sides. */
  seen_reset(&sn);
  s = tls_connect(srv, cctx);
  CHECK_OK(weft_stream_tls_info(s, &info));
  check_info(&info, WEFT_TLS_VERSION_1_3, "weft/1", "localhost", 1);
  echo_once(s, "second");
  if (HARNESS_WAIT(atomic_load(&sn.ready)))
    CHECK_EQ(sn.info.resumed, 1);
  CHECK_OK(weft_stream_free(s));

  /* Another context has no session; nor has one without tickets. */
  s = tls_connect(srv, cctx2);
  CHECK_OK(weft_stream_tls_info(s, &info));
  CHECK_EQ(info.resumed, 0);
  echo_once(s, "other");
  CHECK_OK(weft_stream_free(s));
  for (int i = 0; i < 2; i++) {
    s = tls_connect(srv, cctx_noticket);
    CHECK_OK(weft_stream_tls_info(s, &info));
    CHECK_EQ(info.resumed, 0);
    echo_once(s, "no tickets");
    CHECK_OK(weft_stream_free(s));
  }

  /* An IP literal: checked against the IP SANs, no SNI sent. */
  seen_reset(&sn);
  CHECK_OK(tls_connect_rc(srv, cctx2, NULL, &s));
  if (s != NULL) {
    CHECK_OK(weft_stream_tls_info(s, &info));
    CHECK(strcmp(info.server_name, "") == 0);
    echo_once(s, "by address");
    if (HARNESS_WAIT(atomic_load(&sn.ready)))
      CHECK(strcmp(sn.sni, "") == 0);
    CHECK_OK(weft_stream_free(s));
  }
  /* A name through the resolver: sent in SNI and checked. */
  {
    weft_stream_opts_t so;
    weft_stream_opts_init(&so);
    so.tls.ctx = cctx2;
    seen_reset(&sn);
    CHECK_OK(weft_open_connection("localhost", weft_server_port(srv), &so, &s));
    if (s != NULL) {
      echo_once(s, "by name");
      if (HARNESS_WAIT(atomic_load(&sn.ready)))
        CHECK(strcmp(sn.sni, "localhost") == 0);
      CHECK_OK(weft_stream_free(s));
    }
  }
  stop(srv);
  CHECK_EQ(atomic_load(&sn.calls), 7);
  weft_tls_ctx_free(sctx);

  /* TLS 1.2 when the server goes no higher; resumption works there too. */
  weft_tls_opts_init(&o);
  o.max_version = WEFT_TLS_VERSION_1_2;
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
  srv = tls_start(seen_handler, &sn, sctx, 0, 0);
  weft_tls_ctx_free(cctx2);
  cctx2 = client_ctx();
  for (int i = 0; i < 2; i++) {
    s = tls_connect(srv, cctx2);
    CHECK_OK(weft_stream_tls_info(s, &info));
    check_info(&info, WEFT_TLS_VERSION_1_2, "", "localhost", i);
    echo_once(s, "tls 1.2");
    CHECK_OK(weft_stream_free(s));
  }
  stop(srv);
  weft_tls_ctx_free(sctx);

  /* The cipher options reach OpenSSL; names are IANA's. */
  {
    static const struct {
      const char *ciphers, *ciphersuites, *groups;
      int max;
      const char *want;
    } cs[] = {
        {NULL, "TLS_CHACHA20_POLY1305_SHA256", "P-256", 0,
         "TLS_CHACHA20_POLY1305_SHA256"},
        {NULL, "TLS_AES_128_GCM_SHA256", "X25519", 0, "TLS_AES_128_GCM_SHA256"},
        {"ECDHE-ECDSA-AES128-GCM-SHA256", NULL, NULL, WEFT_TLS_VERSION_1_2,
         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
        {"ECDHE-ECDSA-CHACHA20-POLY1305", NULL, NULL, WEFT_TLS_VERSION_1_2,
         "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    };
    for (size_t k = 0; k < HARNESS_COUNT(cs); k++) {
      weft_tls_opts_init(&o);
      o.ciphers = cs[k].ciphers;
      o.ciphersuites = cs[k].ciphersuites;
      o.groups = cs[k].groups;
      o.max_version = cs[k].max;
      sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
      srv = tls_start(seen_handler, &sn, sctx, 0, 0);
      s = tls_connect(srv, cctx2);
      CHECK_OK(weft_stream_tls_info(s, &info));
      if (info.cipher == NULL || strcmp(info.cipher, cs[k].want) != 0)
        harness_fail(__FILE__, __LINE__, "cipher %s, expected %s",
                     info.cipher ? info.cipher : "(null)", cs[k].want);
      CHECK_EQ(info.cipher_bits, strstr(cs[k].want, "128") ? 128 : 256);
      echo_once(s, "cipher");
      CHECK_OK(weft_stream_free(s));
      stop(srv);
      weft_tls_ctx_free(sctx);
    }
  }

  /* ALPN: a client offering none, a server with none. */
  weft_tls_opts_init(&o);
  o.alpn = "weft/1";
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
  srv = tls_start(seen_handler, &sn, sctx, 0, 0);
  s = tls_connect(srv, cctx2);
  CHECK_OK(weft_stream_tls_info(s, &info));
  CHECK(strcmp(info.alpn, "") == 0);
  echo_once(s, "no alpn");
  CHECK_OK(weft_stream_free(s));
  stop(srv);
  weft_tls_ctx_free(sctx);
  sctx = server_ctx(TLS_CERT_SERVER);
  srv = tls_start(seen_handler, &sn, sctx, 0, 0);
  s = tls_connect(srv, cctx);
  CHECK_OK(weft_stream_tls_info(s, &info));
  CHECK(strcmp(info.alpn, "") == 0);
  echo_once(s, "no alpn on the server");
  CHECK_OK(weft_stream_free(s));
  stop(srv);
  weft_tls_ctx_free(sctx);

  /* ALPN with nothing in common: WEFT_ETLS_ALPN, the handler never runs. */
  {
    atomic_int calls = 0;
    weft_tls_opts_init(&o);
    o.alpn = "weft/2,smtp";
    sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
    srv = tls_start(echo_handler, &calls, sctx, 0, 0);
    CHECK_RC(tls_connect_rc(srv, cctx, "localhost", &s), WEFT_ETLS_ALPN);
    CHECK(s == NULL);
    check_tls_reason(NULL);
    stop(srv);
    CHECK_EQ(atomic_load(&calls), 0);
    weft_tls_ctx_free(sctx);
  }

  /* A chain with an intermediate: the leaf is the peer certificate. */
  sctx = server_ctx(TLS_CERT_CHAINED);
  srv = tls_start(echo_handler, NULL, sctx, 0, 0);
  s = tls_connect(srv, cctx2);
  check_peer_cert(s, TLS_CERT_CHAINED);
  echo_once(s, "chained");
  CHECK_OK(weft_stream_free(s));
  stop(srv);
  weft_tls_ctx_free(sctx);

  weft_tls_ctx_free(cctx);
  weft_tls_ctx_free(cctx2);
  weft_tls_ctx_free(cctx_noticket);
  return NULL;
}

static void test_info_and_peer_cert(void **state) {
  (void)state;
  run_in_weft(info_main, NULL, 2);
}

/* ---- verification ----------------------------------------------------------
 */

typedef struct verify_case {
  tls_cert_id_t id;
  const char *sni; /* NULL: by address */
  int rc;          /* with the default client context */
  const char *why; /* in the reason, NULL: anything non-empty */
} verify_case_t;

static void *verify_main(void *arg) {
  static const verify_case_t cases[] = {
      {TLS_CERT_WRONG_HOST, "localhost", WEFT_ETLS_CERT_HOSTNAME, NULL},
      {TLS_CERT_WRONG_HOST, NULL, WEFT_ETLS_CERT_HOSTNAME, NULL},
      {TLS_CERT_EXPIRED, "localhost", WEFT_ETLS_CERT_EXPIRED, "expired"},
      {TLS_CERT_NOT_YET_VALID, "localhost", WEFT_ETLS_CERT_INVALID,
       "not yet valid"},
      {TLS_CERT_UNTRUSTED, "localhost", WEFT_ETLS_CERT_UNTRUSTED, NULL},
      {TLS_CERT_SELF_SIGNED, "localhost", WEFT_ETLS_CERT_SELF_SIGNED,
       "self-signed"},
      {TLS_CERT_SERVER, "example.com", WEFT_ETLS_CERT_HOSTNAME, NULL},
  };
  atomic_int calls = 0;
  weft_tls_opts_t o;
  weft_tls_ctx_t *strict = client_ctx(), *insecure, *nohost, *system_store;
  weft_stream_t *s;
  int ok_expected = 0;
  size_t i;

  (void)arg;
  weft_tls_opts_init(&o);
  o.insecure_no_verify = 1;
  insecure = client_ctx_ex(&o);
  weft_tls_opts_init(&o);
  o.insecure_no_hostname_check = 1;
  nohost = client_ctx_ex(&o);
  CHECK_OK(weft_tls_ctx_new(NULL, &system_store));

  for (i = 0; i < HARNESS_COUNT(cases); i++) {
    const verify_case_t *vc = &cases[i];
    weft_tls_ctx_t *sctx = server_ctx(vc->id);
    weft_server_t *srv = tls_start(echo_handler, &calls, sctx, 0, 0);
    int rc;

    rc = tls_connect_rc(srv, strict, vc->sni, &s);
    if (rc != vc->rc)
      harness_fail(__FILE__, __LINE__, "%s as %s: %d (%s), expected %d (%s)",
                   tls_certs_stem(vc->id), vc->sni ? vc->sni : "127.0.0.1", rc,
                   weft_err_name(rc), vc->rc, weft_err_name(vc->rc));
    CHECK(s == NULL);
    check_tls_reason(vc->why);
    /* The system's store knows nothing of the test CAs. */
    CHECK_RC(tls_connect_rc(srv, system_store, "localhost", &s),
             vc->id == TLS_CERT_SELF_SIGNED ? WEFT_ETLS_CERT_SELF_SIGNED
                                            : WEFT_ETLS_CERT_UNTRUSTED);
    CHECK(s == NULL);
    CHECK_EQ(atomic_load(&calls), ok_expected); /* no handler for those */

    /* Insecure: anything goes. */
    CHECK_OK(tls_connect_rc(srv, insecure, vc->sni, &s));
    if (s != NULL) {
      echo_once(s, "insecure");
      CHECK_OK(weft_stream_free(s));
      ok_expected++;
    }
    /* No hostname check: only the name problems go away. */
    rc = tls_connect_rc(srv, nohost, vc->sni, &s);
    if (vc->rc == WEFT_ETLS_CERT_HOSTNAME) {
      CHECK_OK(rc);
      if (s != NULL) {
        echo_once(s, "no hostname check");
        CHECK_OK(weft_stream_free(s));
        ok_expected++;
      }
    } else {
      CHECK_RC(rc, vc->rc);
    }
    stop(srv);
    CHECK_EQ(atomic_load(&calls), ok_expected);
    weft_tls_ctx_free(sctx);
  }

  /* The name to check can differ from the address's. */
  {
    weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_WRONG_HOST);
    weft_server_t *srv = tls_start(echo_handler, NULL, sctx, 0, 0);
    CHECK_OK(tls_connect_rc(srv, strict, TLS_CERTS_WRONG_HOST, &s));
    if (s != NULL) {
      echo_once(s, "named");
      CHECK_OK(weft_stream_free(s));
    }
    stop(srv);
    weft_tls_ctx_free(sctx);
  }

  /* A leaf without its intermediate does not verify; the CAs can come
   * from a hashed directory or memory; trusting another CA is not
   * trusting ours. */
  {
    weft_tls_ctx_t *sctx, *by_dir, *by_pem, *other;
    weft_server_t *srv;

    weft_tls_opts_init(&o);
    o.server = 1;
    o.cert_file = tls_certs_cert_file(certs, TLS_CERT_CHAINED); /* no inter */
    o.key_file = tls_certs_key_file(certs, TLS_CERT_CHAINED);
    CHECK_OK(weft_tls_ctx_new(&o, &sctx));
    srv = tls_start(echo_handler, NULL, sctx, 0, 0);
    CHECK_RC(tls_connect_rc(srv, strict, "localhost", &s),
             WEFT_ETLS_CERT_UNTRUSTED);
    stop(srv);
    weft_tls_ctx_free(sctx);

    weft_tls_opts_init(&o);
    o.ca_dir = tls_certs_ca_dir(certs);
    by_dir = client_ctx_ex(&o);
    weft_tls_opts_init(&o);
    o.ca_pem = tls_certs_cert_pem(certs, TLS_CERT_CA);
    by_pem = client_ctx_ex(&o);
    weft_tls_opts_init(&o);
    o.ca_file = tls_certs_cert_file(certs, TLS_CERT_OTHER_CA);
    other = client_ctx_ex(&o);
    sctx = server_ctx(TLS_CERT_SERVER);
    srv = tls_start(echo_handler, NULL, sctx, 0, 0);
    s = tls_connect(srv, by_dir);
    echo_once(s, "ca_dir");
    CHECK_OK(weft_stream_free(s));
    s = tls_connect(srv, by_pem);
    echo_once(s, "ca_pem");
    CHECK_OK(weft_stream_free(s));
    CHECK_RC(tls_connect_rc(srv, other, "localhost", &s),
             WEFT_ETLS_CERT_UNTRUSTED);
    stop(srv);
    weft_tls_ctx_free(sctx);
    weft_tls_ctx_free(by_dir);
    weft_tls_ctx_free(by_pem);
    weft_tls_ctx_free(other);
  }
  weft_tls_ctx_free(strict);
  weft_tls_ctx_free(insecure);
  weft_tls_ctx_free(nohost);
  weft_tls_ctx_free(system_store);
  return NULL;
}

static void test_verification(void **state) {
  (void)state;
  run_in_weft(verify_main, NULL, 2);
}

/* ---- mutual TLS ------------------------------------------------------------
 */

/* What a client without an acceptable certificate gets from a server that
 * requires one: in TLS 1.3 the client's handshake ends before the server
 * has checked its certificate, so it connects (docs/api.md, "weft/tls.h")
 * and its first read fails. Returns that read's code. */
static int rejected_client(weft_server_t *srv, weft_tls_ctx_t *cctx) {
  weft_stream_t *s = NULL;
  char buf[8];
  int rc;

  CHECK_OK(tls_connect_rc(srv, cctx, "localhost", &s));
  if (s == NULL)
    return 1;
  (void)weft_stream_write(s, "hi", 2);
  rc = weft_stream_read(s, buf, sizeof buf);
  CHECK(rc < 0);
  /* The connection is over: writes fail with the same error. */
  CHECK_RC(weft_stream_write(s, "x", 1), rc);
  CHECK_OK(weft_stream_free(s));
  return rc;
}

static void *mtls_main(void *arg) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *sctx, *with_cert, *without, *wrong_cert;
  weft_server_t *srv;
  weft_stream_t *s;
  weft_tls_info_t info;
  seen_t sn;
  int rc;

  (void)arg;
  memset(&sn, 0, sizeof sn);
  weft_tls_opts_init(&o);
  o.client_cert = WEFT_TLS_CLIENT_CERT_REQUIRED;
  o.ca_file = tls_certs_cert_file(certs, TLS_CERT_CA);
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
  weft_tls_opts_init(&o);
  o.cert_file = tls_certs_cert_file(certs, TLS_CERT_CLIENT);
  o.key_file = tls_certs_key_file(certs, TLS_CERT_CLIENT);
  with_cert = client_ctx_ex(&o);
  without = client_ctx();
  weft_tls_opts_init(&o);
  o.cert_pem = tls_certs_cert_pem(certs, TLS_CERT_UNTRUSTED);
  o.key_pem = tls_certs_key_pem(certs, TLS_CERT_UNTRUSTED);
  wrong_cert = client_ctx_ex(&o);
  srv = tls_start(seen_handler, &sn, sctx, 0, 0);

  seen_reset(&sn);
  s = tls_connect(srv, with_cert);
  echo_once(s, "mutual");
  CHECK_OK(weft_stream_tls_info(s, &info));
  CHECK_EQ(info.peer_cert, 1);
  if (HARNESS_WAIT(atomic_load(&sn.ready))) {
    CHECK_EQ(sn.info.peer_cert, 1);
    CHECK_OK(sn.cert_rc);
    CHECK(strstr(sn.subject, "CN=" TLS_CERTS_CLIENT_CN) != NULL);
    CHECK(strcmp(sn.san0, "email:" TLS_CERTS_CLIENT_EMAIL) == 0);
  }
  CHECK_OK(weft_stream_free(s));

  /* No certificate: the server refuses, and its handler never runs. */
  rc = rejected_client(srv, without);
  CHECK_RC(rc, WEFT_ETLS_CERT_REQUIRED);
  check_tls_reason(NULL);
  /* A certificate from a CA the server does not trust. */
  rc = rejected_client(srv, wrong_cert);
  CHECK_RC(rc, WEFT_ETLS_PEER_ALERT);
  check_tls_reason(NULL);
  /* In TLS 1.2 the server's verdict comes within the handshake: the
   * connect itself fails, with the server's alert. */
  {
    weft_tls_ctx_t *old12;
    weft_tls_opts_init(&o);
    o.max_version = WEFT_TLS_VERSION_1_2;
    old12 = client_ctx_ex(&o);
    CHECK_RC(tls_connect_rc(srv, old12, "localhost", &s), WEFT_ETLS_PEER_ALERT);
    CHECK(s == NULL);
    check_tls_reason(NULL);
    weft_tls_ctx_free(old12);
  }
  stop(srv);
  CHECK_EQ(atomic_load(&sn.calls), 1);
  weft_tls_ctx_free(sctx);

  /* Optional: with or without, both served. */
  weft_tls_opts_init(&o);
  o.client_cert = WEFT_TLS_CLIENT_CERT_OPTIONAL;
  o.ca_file = tls_certs_cert_file(certs, TLS_CERT_CA);
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
  srv = tls_start(seen_handler, &sn, sctx, 0, 0);
  seen_reset(&sn);
  s = tls_connect(srv, without);
  echo_once(s, "optional, none");
  if (HARNESS_WAIT(atomic_load(&sn.ready))) {
    CHECK_EQ(sn.info.peer_cert, 0);
    CHECK_RC(sn.cert_rc, WEFT_ENOENT);
  }
  CHECK_OK(weft_stream_free(s));
  seen_reset(&sn);
  s = tls_connect(srv, with_cert);
  echo_once(s, "optional, given");
  if (HARNESS_WAIT(atomic_load(&sn.ready))) {
    CHECK_EQ(sn.info.peer_cert, 1);
    CHECK(strstr(sn.subject, "CN=" TLS_CERTS_CLIENT_CN) != NULL);
  }
  CHECK_OK(weft_stream_free(s));
  stop(srv);
  CHECK_EQ(atomic_load(&sn.calls), 3);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(with_cert);
  weft_tls_ctx_free(without);
  weft_tls_ctx_free(wrong_cert);
  return NULL;
}

static void test_mutual_tls(void **state) {
  (void)state;
  run_in_weft(mtls_main, NULL, 2);
}

/* ---- protocol versions -----------------------------------------------------
 */

static void *versions_main(void *arg) {
  atomic_int calls = 0;
  weft_tls_opts_t o;
  weft_tls_ctx_t *sctx, *cctx;
  weft_server_t *srv;
  weft_stream_t *s;

  (void)arg;
  weft_tls_opts_init(&o);
  o.min_version = WEFT_TLS_VERSION_1_3;
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
  weft_tls_opts_init(&o);
  o.max_version = WEFT_TLS_VERSION_1_2;
  cctx = client_ctx_ex(&o);
  srv = tls_start(echo_handler, &calls, sctx, 0, 0);
  CHECK_RC(tls_connect_rc(srv, cctx, "localhost", &s), WEFT_ETLS_VERSION);
  CHECK(s == NULL);
  check_tls_reason(NULL);
  stop(srv);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);

  weft_tls_opts_init(&o);
  o.max_version = WEFT_TLS_VERSION_1_2;
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o);
  weft_tls_opts_init(&o);
  o.min_version = WEFT_TLS_VERSION_1_3;
  cctx = client_ctx_ex(&o);
  srv = tls_start(echo_handler, &calls, sctx, 0, 0);
  CHECK_RC(tls_connect_rc(srv, cctx, "localhost", &s), WEFT_ETLS_VERSION);
  check_tls_reason(NULL);
  stop(srv);
  CHECK_EQ(atomic_load(&calls), 0);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_versions(void **state) {
  (void)state;
  run_in_weft(versions_main, NULL, 2);
}

/* ---- the key log -----------------------------------------------------------
 */

/* Lines of path with label, each "LABEL <64 hex> <hex>"; -1 if a line of
 * the file is malformed or the file is missing. */
static int keylog_count(const char *path, const char *label) {
  FILE *f = fopen(path, "r");
  char line[512];
  int n = 0;

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    char lab[64], random[80], secret[160];
    if (line[0] == '#')
      continue;
    if (sscanf(line, "%63s %79s %159s", lab, random, secret) != 3 ||
        strlen(random) != 64 ||
        strspn(random, "0123456789abcdefABCDEF") != 64 ||
        strspn(secret, "0123456789abcdefABCDEF") != strlen(secret)) {
      n = -1;
      break;
    }
    if (strcmp(lab, label) == 0)
      n++;
  }
  fclose(f);
  return n;
}

typedef struct keylog {
  char path[4096];
  int via_env; /* the contexts take the file from SSLKEYLOGFILE */
} keylog_t;

static void *keylog_main(void *arg) {
  keylog_t *k = arg;
  weft_tls_opts_t o;
  weft_tls_ctx_t *sctx, *cctx;
  weft_server_t *srv;
  weft_stream_t *s;
  int n;

  weft_tls_opts_init(&o);
  sctx = server_ctx_ex(TLS_CERT_SERVER, &o); /* (logs too via the env) */
  if (!k->via_env)
    o.keylog_file = k->path;
  cctx = client_ctx_ex(&o);
  srv = tls_start(echo_handler, NULL, sctx, 0, 0);
  for (int i = 0; i < 2; i++) {
    s = tls_connect(srv, cctx);
    echo_once(s, "logged");
    CHECK_OK(weft_stream_free(s));
  }
  stop(srv);
  n = keylog_count(k->path, "CLIENT_TRAFFIC_SECRET_0");
  /* One line a connection from the client; with the environment variable
   * the server's context logs the same secrets too. */
  if (k->via_env)
    CHECK(n == 2 || n == 4);
  else
    CHECK_EQ(n, 2);
  CHECK(keylog_count(k->path, "SERVER_HANDSHAKE_TRAFFIC_SECRET") >= 2);
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_keylog(void **state) {
  keylog_t k;

  (void)state;
  unsetenv("SSLKEYLOGFILE");
  k.via_env = 0;
  snprintf(k.path, sizeof k.path, "%s/keylog-opt.txt", tls_certs_dir(certs));
  unlink(k.path);
  run_in_weft(keylog_main, &k, 2);
  unlink(k.path);
  k.via_env = 1;
  snprintf(k.path, sizeof k.path, "%s/keylog-env.txt", tls_certs_dir(certs));
  unlink(k.path);
  setenv("SSLKEYLOGFILE", k.path, 1);
  run_in_weft(keylog_main, &k, 2);
  unsetenv("SSLKEYLOGFILE");
  unlink(k.path);
}

/* ---- truncation: a peer that closes without close_notify -------------------
 */

/* Raw server scripts: send a message, then end the TCP stream with or
 * without close_notify, then wait for the client to go. */
static void raw_truncate(SSL *ssl, int fd, void *arg) {
  (void)arg;
  SSL_write(ssl, "partial", 7);
  shutdown(fd, SHUT_WR); /* FIN, no close_notify */
  raw_drain(fd);
}

static void raw_clean(SSL *ssl, int fd, void *arg) {
  (void)arg;
  SSL_write(ssl, "complete", 8);
  SSL_shutdown(ssl); /* close_notify */
  shutdown(fd, SHUT_WR);
  raw_drain(fd);
}

/* Connect to a raw server running script; read what it sends, then return
 * what the next read returns. */
static int read_after(void (*script)(SSL *, int, void *), weft_tls_ctx_t *cctx,
                      const char *want) {
  raw_server_t r;
  weft_stream_opts_t so;
  weft_stream_t *s = NULL;
  char buf[32];
  size_t n = strlen(want);
  int rc = 1;

  if (raw_server_start(&r, TLS_CERT_SERVER, script, NULL) != 0) {
    CHECK(!"raw server");
    return 1;
  }
  weft_stream_opts_init(&so);
  so.tls.ctx = cctx;
  so.tls.server_hostname = "localhost";
  CHECK_OK(weft_open_connection("127.0.0.1", r.port, &so, &s));
  if (s != NULL) {
    CHECK_RC(weft_stream_readexactly(s, buf, n, NULL), 0);
    CHECK(memcmp(buf, want, n) == 0);
    rc = weft_stream_read(s, buf, sizeof buf);
    if (rc < 0)
      CHECK_RC(weft_stream_at_eof(s), 1);
    CHECK_OK(weft_stream_free(s));
  }
  raw_server_join(&r);
  CHECK_EQ(atomic_load(&r.handshake_ok), 1);
  return rc;
}

static void *truncation_main(void *arg) {
  weft_tls_opts_t o;
  weft_tls_ctx_t *strict = client_ctx(), *lenient;

  (void)arg;
  weft_tls_opts_init(&o);
  o.allow_truncation = 1;
  lenient = client_ctx_ex(&o);
  CHECK_RC(read_after(raw_clean, strict, "complete"), 0);
  CHECK_RC(read_after(raw_truncate, strict, "partial"), WEFT_ETLS_TRUNCATED);
  check_tls_reason(NULL);
  CHECK_RC(read_after(raw_truncate, lenient, "partial"), 0);
  CHECK_RC(read_after(raw_clean, lenient, "complete"), 0);
  weft_tls_ctx_free(strict);
  weft_tls_ctx_free(lenient);
  return NULL;
}

static void test_truncation(void **state) {
  (void)state;
  run_in_weft(truncation_main, NULL, 2);
}

/* ---- timeouts ---------------------------------------------------------------
 */

typedef struct connector {
  int port;
  weft_tls_ctx_t *ctx;
  uint64_t hs_ms;
  int rc;
  weft_stream_t *s;
  atomic_int started; /* about to connect */
} connector_t;

static void *connector_task(void *arg) {
  connector_t *c = arg;
  weft_stream_opts_t so;

  atomic_store(&c->started, 1);
  weft_stream_opts_init(&so);
  so.tls.ctx = c->ctx;
  so.tls.server_hostname = "localhost";
  so.tls.handshake_timeout_ms = c->hs_ms;
  c->rc = weft_open_connection("127.0.0.1", c->port, &so, &c->s);
  return NULL;
}

/* A raw server that completes the handshake and then does nothing until
 * *arg is set (or a bound passes). */
static void raw_silent(SSL *ssl, int fd, void *arg) {
  double end = harness_now_ms() + 3 * HARNESS_WAIT_MS;
  (void)ssl;
  (void)fd;
  struct timespec ms = {0, 1000 * 1000};

  while (!atomic_load((atomic_int *)arg) && harness_now_ms() < end)
    nanosleep(&ms, NULL);
}

static void *timeouts_main(void *arg) {
  weft_tls_ctx_t *cctx = client_ctx();
  connector_t c;
  weft_task_t *t;
  double t0, took;
  int lfd, port = 0;

  (void)arg;
  /* A listener that never answers (the kernel completes the TCP connect,
   * nobody ever sends a ServerHello). */
  lfd = raw_listen(&port);
  CHECK(lfd >= 0);
  memset(&c, 0, sizeof c);
  c.port = port;
  c.ctx = cctx;
  c.hs_ms = 200;
  CHECK_OK(weft_sleep(1)); /* a fresh loop clock for the timer */
  t0 = harness_now_ms();
  connector_task(&c);
  took = harness_now_ms() - t0;
  CHECK_RC(c.rc, WEFT_ETIMEDOUT);
  CHECK(c.s == NULL);
  CHECK(took >= 150);
  CHECK(took < 200 + HARNESS_PROMPT_MS);
  check_tls_reason(NULL);

  /* wait_for on a connect stuck in its handshake: cancelled, nothing left
   * (LSan checks the rest). */
  c.hs_ms = 0; /* the default, 60 s */
  c.rc = 1;
  atomic_store(&c.started, 0);
  CHECK_OK(weft_spawn(connector_task, &c, &t));
  HARNESS_WAIT_PARKED(c.started); /* else the cancel finds it unstarted */
  t0 = harness_now_ms();
  CHECK_RC(weft_task_wait_for(t, 100, NULL), WEFT_ETIMEDOUT);
  CHECK(harness_now_ms() - t0 < 100 + HARNESS_PROMPT_MS);
  CHECK_RC(c.rc, WEFT_ECANCELED);
  CHECK(c.s == NULL);
  weft_task_unref(t);
  close(lfd);

  /* The shutdown timeout: a peer that stops reading and never answers our
   * close_notify; close() gives up after shutdown_timeout_ms. */
  {
    atomic_int release = 0;
    raw_server_t r;
    weft_stream_opts_t so;
    weft_stream_t *s = NULL;
    static char big[256 * 1024];

    if (raw_server_start(&r, TLS_CERT_SERVER, raw_silent, &release) == 0) {
      /* Small socket buffers on both sides, so that the kernel cannot
       * take in what the client queues (its autotuning would otherwise
       * grow them to megabytes). */
      int sz = 16384;
      CHECK_EQ(setsockopt(r.lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz), 0);
      weft_stream_opts_init(&so);
      so.tls.ctx = cctx;
      so.tls.server_hostname = "localhost";
      so.tls.shutdown_timeout_ms = 300;
      CHECK_OK(weft_open_connection("127.0.0.1", r.port, &so, &s));
      if (s != NULL) {
        CHECK_EQ(setsockopt(weft_stream_fileno(s), SOL_SOCKET, SO_SNDBUF, &sz,
                            sizeof sz),
                 0);
        for (int i = 0; i < 32; i++) /* 8 MiB: more than the sockets take */
          CHECK_OK(weft_stream_write(s, big, sizeof big));
        /* No yield here: the close arms its timer right after the writes
         * left the loop's cached clock behind, and the timeout must still
         * count from now (a regression test). */
        t0 = harness_now_ms();
        CHECK_OK(weft_stream_close(s));
        CHECK_OK(weft_stream_wait_closed(s));
        took = harness_now_ms() - t0;
        printf("close with 8 MiB queued, peer not reading: closed after "
               "%.0f ms\n",
               took);
        CHECK(took >= 250);
        CHECK(took < 300 + HARNESS_PROMPT_MS);
        CHECK_OK(weft_stream_free(s));
      }
      atomic_store(&release, 1);
      raw_server_join(&r);
    } else {
      CHECK(!"raw server");
    }
  }
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_timeouts(void **state) {
  (void)state;
  run_in_weft(timeouts_main, NULL, 2);
}

/* ---- a TLS stream used from other workers; contexts shared by all ----------
 */

typedef struct hop {
  weft_server_t *srv;
  weft_tls_ctx_t *cctx;
  weft_stream_t *s;
  int opened_on;
} hop_t;

static void *open_pinned(void *arg) {
  hop_t *h = arg;
  h->s = tls_connect(h->srv, h->cctx);
  h->opened_on = weft_worker_index();
  return NULL;
}

static void *use_pinned(void *arg) {
  hop_t *h = arg;
  char buf[8];

  for (int i = 0; i < 20; i++) {
    CHECK_EQ(weft_worker_index(), 1);
    CHECK_OK(weft_stream_write(h->s, "ping", 4));
    CHECK_EQ(weft_worker_index(), 1);
    CHECK_RC(weft_stream_readexactly(h->s, buf, 4, NULL), 0);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_EQ(weft_worker_index(), 1);
    CHECK_OK(weft_stream_drain(h->s));
    CHECK_EQ(weft_worker_index(), 1);
  }
  {
    weft_tls_info_t info;
    CHECK_OK(weft_stream_tls_info(h->s, &info));
    CHECK_EQ(info.version, WEFT_TLS_VERSION_1_3);
    check_peer_cert(h->s, TLS_CERT_SERVER);
  }
  return NULL;
}

static void *use_unpinned(void *arg) {
  hop_t *h = arg;
  char buf[8];

  CHECK_OK(weft_stream_write(h->s, "pong", 4));
  CHECK_RC(weft_stream_readexactly(h->s, buf, 4, NULL), 0);
  CHECK(memcmp(buf, "pong", 4) == 0);
  CHECK_EQ(weft_worker_index(), h->opened_on);
  return NULL;
}

/* Many tasks, each with its own connection made with the one shared client
 * context, echoing with yields in between: tasks move between workers
 * (stolen) while their streams stay home. */
typedef struct crowd {
  weft_server_t *srv;
  weft_tls_ctx_t *cctx;
  atomic_int moved; /* tasks that ran on a worker other than their
                       stream's home at some call */
} crowd_t;

static void *crowd_task(void *arg) {
  crowd_t *c = arg;
  weft_stream_t *s = tls_connect(c->srv, c->cctx);
  int home = weft_worker_index(), moved = 0;
  char msg[32], buf[32];

  if (s == NULL)
    return NULL;
  for (int i = 0; i < 20; i++) {
    size_t n = (size_t)snprintf(msg, sizeof msg, "msg %d", i);
    CHECK_OK(weft_yield());
    moved |= weft_worker_index() != home;
    CHECK_OK(weft_stream_write(s, msg, n));
    CHECK_RC(weft_stream_readexactly(s, buf, n, NULL), 0);
    CHECK(memcmp(buf, msg, n) == 0);
  }
  if (moved)
    atomic_fetch_add(&c->moved, 1);
  CHECK_OK(weft_stream_free(s));
  return NULL;
}

static void *hop_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER);
  weft_spawn_opts_t o;
  weft_task_t *t;
  hop_t h;

  (void)arg;
  h.cctx = client_ctx();
  h.srv = tls_start(echo_handler, NULL, sctx, 0, 0);
  weft_spawn_opts_init(&o);
  o.pin = 0;
  CHECK_OK(weft_spawn_ex(open_pinned, &h, &o, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_EQ(h.opened_on, 0);
  o.pin = 1;
  CHECK_OK(weft_spawn_ex(use_pinned, &h, &o, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_spawn(use_unpinned, &h, &t));
  CHECK_OK(weft_task_await(t, NULL));
  weft_task_unref(t);
  CHECK_OK(weft_stream_free(h.s));

  {
    enum { N = 32 };
    crowd_t c = {h.srv, h.cctx, 0};
    weft_task_t *ts[N];
    for (int i = 0; i < N; i++)
      CHECK_OK(weft_spawn(crowd_task, &c, &ts[i]));
    CHECK_OK(weft_gather(ts, N, NULL));
    for (int i = 0; i < N; i++)
      weft_task_unref(ts[i]);
    printf("crowd: %d of %d tasks ran away from their stream's home\n",
           atomic_load(&c.moved), N);
  }
  stop(h.srv);
  weft_tls_ctx_free(h.cctx);
  weft_tls_ctx_free(sctx);
  return NULL;
}

static void test_home_worker(void **state) {
  (void)state;
  run_in_weft(hop_main, NULL, 2);
  run_in_weft(hop_main, NULL, 4);
}

/* ---- renegotiation is refused -----------------------------------------------
 */

/* A raw TLS 1.2 client that asks for a renegotiation after an echo. */
typedef struct renego {
  int port;
  int handshake_ok;
  int echo_ok;
  int renego_rc;    /* SSL_do_handshake() of the renegotiation */
  int renegotiated; /* the number of handshakes OpenSSL saw complete */
  int after;        /* what the echo after it did: 1 echoed, <= 0 failed */
} renego_t;

static void *renego_client(void *arg) {
  renego_t *r = arg;
  raw_client_t c;
  char buf[8];

  memset(&c, 0, sizeof c);
  c.fd = -1;
  c.ctx = raw_ssl_ctx(-1);
  if (c.ctx == NULL)
    return NULL;
  SSL_CTX_set_max_proto_version(c.ctx, TLS1_2_VERSION);
  c.fd = raw_connect(r->port);
  if (c.fd >= 0) {
    c.ssl = SSL_new(c.ctx);
    SSL_set_fd(c.ssl, c.fd);
    SSL_set1_host(c.ssl, "localhost");
    r->handshake_ok = SSL_connect(c.ssl) == 1;
  }
  if (r->handshake_ok) {
    r->echo_ok = SSL_write(c.ssl, "one", 3) == 3 &&
                 SSL_read(c.ssl, buf, sizeof buf) == 3;
    if (SSL_renegotiate(c.ssl) == 1) {
      r->renego_rc = SSL_do_handshake(c.ssl);
      r->after = SSL_write(c.ssl, "two", 3);
      if (r->after > 0)
        r->after = SSL_read(c.ssl, buf, sizeof buf);
      r->renegotiated = SSL_renegotiate_pending(c.ssl) == 0 && r->after > 0;
    }
  }
  raw_client_close(&c);
  return NULL;
}

typedef struct renego_seen {
  atomic_int calls;
  atomic_int end_rc;
} renego_seen_t;

static void renego_handler(weft_stream_t *s, void *arg) {
  renego_seen_t *rs = arg;
  char buf[64];
  int n;

  atomic_fetch_add(&rs->calls, 1);
  while ((n = weft_stream_read(s, buf, sizeof buf)) > 0)
    if (weft_stream_write(s, buf, (size_t)n) != 0)
      break;
  atomic_store(&rs->end_rc, n);
}

static void *renego_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER);
  renego_seen_t rs = {0, 1};
  weft_server_t *srv;
  renego_t r;

  (void)arg;
  srv = tls_start(renego_handler, &rs, sctx, 0, 0);
  memset(&r, 0, sizeof r);
  r.port = weft_server_port(srv);
  CHECK_OK(weft_to_thread(renego_client, &r, NULL));
  printf("renegotiation: handshake %d, echo %d, renegotiate %d, after %d, "
         "renegotiated %d; server's last read %d\n",
         r.handshake_ok, r.echo_ok, r.renego_rc, r.after, r.renegotiated,
         atomic_load(&rs.end_rc));
  CHECK_EQ(r.handshake_ok, 1);
  CHECK_EQ(r.echo_ok, 1);
  CHECK_EQ(r.renegotiated, 0);
  CHECK(r.renego_rc <= 0);
  /* The server's connection ends with an error, never with data from a
   * renegotiated session. */
  HARNESS_WAIT(atomic_load(&rs.end_rc) != 1);
  CHECK(atomic_load(&rs.end_rc) < 0);
  stop(srv);
  CHECK_EQ(atomic_load(&rs.calls), 1);
  weft_tls_ctx_free(sctx);
  return NULL;
}

static void test_renegotiation_refused(void **state) {
  (void)state;
  run_in_weft(renego_main, NULL, 2);
}

/* ---- Unix sockets, IPv6, contexts on the wrong side, start_tls's timeout --
 */

static void *misc_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  weft_server_opts_t so;
  weft_stream_opts_t o;
  weft_server_t *srv = NULL;
  weft_stream_t *s = NULL;
  char path[108];

  (void)arg;
  /* A Unix socket: the name to check must be given. */
  snprintf(path, sizeof path, "%s/tls.sock", tls_certs_dir(certs));
  weft_server_opts_init(&so);
  so.stream.tls.ctx = sctx;
  CHECK_OK(weft_start_unix_server(echo_handler, NULL, path, &so, &srv));
  weft_stream_opts_init(&o);
  o.tls.ctx = cctx;
  CHECK_RC(weft_open_unix_connection(path, &o, &s), WEFT_EINVAL);
  CHECK(s == NULL);
  o.tls.server_hostname = "localhost";
  CHECK_OK(weft_open_unix_connection(path, &o, &s));
  if (s != NULL) {
    CHECK_RC(weft_stream_is_tls(s), 1);
    echo_once(s, "over a unix socket");
    CHECK_OK(weft_stream_free(s));
  }
  o.tls.server_hostname = TLS_CERTS_WRONG_HOST;
  CHECK_RC(weft_open_unix_connection(path, &o, &s), WEFT_ETLS_CERT_HOSTNAME);
  stop(srv);

  /* Contexts on the wrong side. */
  weft_server_opts_init(&so);
  so.stream.tls.ctx = cctx;
  CHECK_RC(weft_start_server(echo_handler, NULL, "127.0.0.1", 0, &so, &srv),
           WEFT_EINVAL);
  srv = tls_start(echo_handler, NULL, sctx, 0, 0);
  CHECK_RC(tls_connect_rc(srv, sctx, "localhost", &s), WEFT_EINVAL);
  CHECK(s == NULL);
  stop(srv);

  /* IPv6: the certificate's IP:::1, checked by address. */
  weft_server_opts_init(&so);
  so.stream.tls.ctx = sctx;
  if (weft_start_server(echo_handler, NULL, "::1", 0, &so, &srv) == 0) {
    weft_stream_opts_init(&o);
    o.tls.ctx = cctx;
    CHECK_OK(weft_open_connection("::1", weft_server_port(srv), &o, &s));
    if (s != NULL) {
      echo_once(s, "over ipv6");
      CHECK_OK(weft_stream_free(s));
    }
    stop(srv);
  } else {
    printf("no IPv6 loopback here: the ::1 case is skipped\n");
  }

  /* start_tls with a peer that never answers: its handshake timeout. */
  {
    script_t sc = {"", 0, 0};
    weft_stream_tls_opts_t t;
    double t0;

    weft_server_opts_init(&so);
    CHECK_OK(weft_start_server(script_handler_plain, &sc, "127.0.0.1", 0, &so,
                               &srv));
    CHECK_OK(
        weft_open_connection("127.0.0.1", weft_server_port(srv), NULL, &s));
    memset(&t, 0, sizeof t);
    t.ctx = cctx;
    t.server_hostname = "localhost";
    t.handshake_timeout_ms = 200;
    CHECK_OK(weft_sleep(1)); /* a fresh loop clock for the timer */
    t0 = harness_now_ms();
    CHECK_RC(weft_stream_start_tls(s, &t), WEFT_ETIMEDOUT);
    CHECK(harness_now_ms() - t0 >= 150);
    CHECK(harness_now_ms() - t0 < 200 + HARNESS_PROMPT_MS);
    check_tls_reason(NULL);
    CHECK_RC(weft_stream_is_closing(s), 1);
    CHECK_OK(weft_stream_free(s));
    stop(srv);
  }
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  return NULL;
}

static void test_misc(void **state) {
  (void)state;
  run_in_weft(misc_main, NULL, 2);
}

/* ---- shutdown with TLS streams left open -----------------------------------
 */

/* A client stuck in its handshake (a listener that never answers) when the
 * runtime ends: static, it outlives the main task. */
static connector_t stuck;
static int stuck_lfd = -1;

static void *leave_open_main(void *arg) {
  weft_tls_ctx_t *sctx = server_ctx(TLS_CERT_SERVER), *cctx = client_ctx();
  weft_server_t *srv;
  weft_stream_t *s[3];
  int port = 0;

  (void)arg;
  stuck_lfd = raw_listen(&port);
  CHECK(stuck_lfd >= 0);
  memset(&stuck, 0, sizeof stuck);
  stuck.port = port;
  stuck.ctx = cctx;
  stuck.rc = 1;
  CHECK_OK(weft_spawn(connector_task, &stuck, NULL));
  srv = tls_start(echo_handler, NULL, sctx, 0, 0);
  for (int i = 0; i < 3; i++)
    s[i] = tls_connect(srv, cctx);
  CHECK_OK(weft_stream_write(s[0], "left", 4));
  /* The contexts are released now; the streams keep them alive. */
  weft_tls_ctx_free(sctx);
  weft_tls_ctx_free(cctx);
  echo_once(s[1], "after the context's free");
  HARNESS_WAIT(atomic_load(&stuck.started));
  return NULL; /* weft_run closes and frees the rest (LSan checks) */
}

static void test_shutdown_leaves_nothing(void **state) {
  (void)state;
  run_in_weft(leave_open_main, NULL, 2);
  /* The stuck connect was cancelled by the shutdown, leaving nothing. */
  assert_int_equal(stuck.rc, WEFT_ECANCELED);
  assert_null(stuck.s);
  close(stuck_lfd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ctx_errors),
      cmocka_unit_test(test_not_tls),
      cmocka_unit_test(test_readers),
      cmocka_unit_test(test_half_close_and_abort),
      cmocka_unit_test(test_record_edges),
      cmocka_unit_test(test_bulk),
      cmocka_unit_test(test_flow_control),
      cmocka_unit_test(test_cancel_read),
      cmocka_unit_test(test_start_tls),
      cmocka_unit_test(test_info_and_peer_cert),
      cmocka_unit_test(test_verification),
      cmocka_unit_test(test_mutual_tls),
      cmocka_unit_test(test_versions),
      cmocka_unit_test(test_keylog),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_home_worker),
      cmocka_unit_test(test_misc),
      cmocka_unit_test(test_renegotiation_refused),
      cmocka_unit_test(test_shutdown_leaves_nothing),
  };

  return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
