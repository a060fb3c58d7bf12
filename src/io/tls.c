/*
 * TLS streams: OpenSSL between the socket and the stream's buffers, on the
 * stream's home worker (the pattern of asyncio's sslproto and uvloop: memory
 * BIOs and a pump, no extra thread).
 *
 * Threading: owner-only, like the rest of the stream (io/home.c protocol).
 * The SSL object, its BIO, the ciphertext buffer and every field of
 * weft__tls_t are touched only on the home worker's thread: by stream calls
 * of tasks that entered it and by libuv callbacks. The fields the
 * anywhere-callable accessors read (what the handshake negotiated, the
 * peer's certificate) are written once, before `tls_ready` is published
 * with release; the accessors load it with acquire. The context is shared
 * (tls_ctx.c protocol).
 *
 * The data path:
 *  1. The BIO is weft's own (a memory BIO over the stream): OpenSSL reads
 *     ciphertext from `cin`, the buffer the socket reads into, and writes
 *     each record it makes straight to the socket through the stream's
 *     write path (a direct write first, a copy of what the kernel does not
 *     take). So the only copies are the ones OpenSSL forces: ciphertext
 *     into its record buffer, and plaintext out of it.
 *  2. Reading: every socket read lands in `cin`; the pump then runs the
 *     handshake, or decrypts with SSL_read into where stream.c says the
 *     next plaintext goes (a waiting reader's own buffer, else the read
 *     buffer): stream.c's reading rules (flow control, the passed-by
 *     cancelled reader, readline's skipping) hold unchanged on the
 *     plaintext. When the plaintext side is full the pump stops, ciphertext
 *     stays in `cin` and in OpenSSL, and once `cin` is full the socket stops
 *     being read; a reader that consumes restarts the pump.
 *  3. The socket's end or error is kept in `sock_eof`/`sock_err` and given
 *     to OpenSSL as the BIO's end: the stream's own end of stream comes
 *     from TLS (close_notify: a clean end; none: WEFT_ETLS_TRUNCATED, or a
 *     clean end with the context's allow_truncation; the socket's error,
 *     such as WEFT_ECONNRESET, once the data before it was read).
 *  4. Writing: write()/writev() hand the plaintext to SSL_write; a writev of
 *     several small buffers is gathered first, so that it makes one record
 *     and one system call. Water marks count the ciphertext queued.
 *  5. A fatal TLS error (a bad record, a failed MAC, an alert) ends the
 *     connection: the stream reads its buffered plaintext, then the error;
 *     writes fail with it; OpenSSL is not called again.
 *  6. Handshake: started by the task that opens, accepts or upgrades the
 *     stream, then driven by the pump as flights arrive; the task waits
 *     (with the handshake timeout as its deadline) until the pump reports
 *     it done or failed.
 *  7. Closing: close() queues close_notify behind the data (so the peer can
 *     tell the end from a cut), then the stream flushes and closes the
 *     socket, aborting it if the flush takes longer than the shutdown
 *     timeout. weft does not wait for the peer's close_notify (as Go and
 *     nginx, unlike asyncio). write_eof() sends close_notify and then
 *     shuts down TCP's write side; reading goes on (TLS 1.3 half-close).
 */
#include "waitnote.h"
#include "alloc.h"
#include "io/tls_int.h"
#include "record.h"
#include "sched/worker.h"
#include "timer.h"
#include "wait_int.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CIN_CAP ((size_t)32 * 1024) /* ciphertext read buffer */
#define CIN_MIN_READ ((size_t)2048) /* compact below this much room */
#define GATHER_MAX ((size_t)16 * 1024) /* one record's plaintext */
#define ERR_MAX 256

typedef struct weft__tls {
  SSL *ssl;
  weft_tls_ctx_t *ctx;
  char *cin; /* ciphertext received, cin_pos..cin_pos+cin_len not yet read
                by OpenSSL */
  size_t cin_cap, cin_pos, cin_len;
  int sock_eof;  /* the socket's end (or error) arrived */
  int sock_err;  /* that error, 0 for a clean end */
  int hs_done;   /* the handshake completed */
  int hs_err;    /* or failed with this code */
  weft_task_t *hs_task; /* the task waiting for the handshake */
  int hs_fired;  /* set when the handshake ended while it waited */
  int fatal;     /* step 5: OpenSSL is not called again */
  int sent_notify; /* close_notify queued */
  int pumping;   /* the pump runs (it can be re-entered through consume) */
  uint64_t hs_timeout_ms, sd_timeout_ms;
  int timer_inited, timer_closing;
  uv_timer_t timer; /* the shutdown timeout */
  char *cache_key;  /* client: "name:port" in the session cache */
  /* What the handshake negotiated (written before tls_ready). */
  int version, bits, resumed;
  const char *version_name, *cipher;
  char alpn[256];
  char sni[256];
  X509 *peer;
  char err[ERR_MAX]; /* the reason of the stream's TLS failure */
} weft__tls_t;

/* ------------------------------------------------------------------------ */
/* The BIO (step 1)                                                          */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len) {
  weft_stream_t *s = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  uv_buf_t u = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
  return weft__stream_raw_write(s, &u, 1, (size_t)len) ? -1 : len;
}

static int bio_read(BIO *b, char *out, int len) {
  weft_stream_t *s = BIO_get_data(b);
  weft__tls_t *t = s->tls;
  BIO_clear_retry_flags(b);
  if (len <= 0)
    return 0;
  if (t->cin_len == 0) {
    if (t->sock_eof)
      return 0; /* the end: OpenSSL tells close_notify from a cut */
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = t->cin_len < (size_t)len ? t->cin_len : (size_t)len;
  memcpy(out, t->cin + t->cin_pos, n);
  t->cin_pos += n;
  t->cin_len -= n;
  if (t->cin_len == 0)
    t->cin_pos = 0;
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  weft_stream_t *s = BIO_get_data(b);
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1; /* every record is handed to the socket as it is made */
  case BIO_CTRL_EOF:
    return s && s->tls && s->tls->sock_eof && s->tls->cin_len == 0;
  case BIO_CTRL_PENDING:
    return s && s->tls ? (long)s->tls->cin_len : 0;
  default:
    return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void make_bio_method(void) {
  BIO_METHOD *m =
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft stream");
  if (!m)
    return;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}

/* ------------------------------------------------------------------------ */
/* Attaching                                                                 */

/* OpenSSL's new-session callback (client contexts with tickets): a ticket
 * arrived (during the handshake, or after it in TLS 1.3). */
int weft__tls_on_new_session(SSL *ssl, SSL_SESSION *sess) {
  weft_stream_t *s = SSL_get_ex_data(ssl, weft__tls_ssl_index());
  if (!s || !s->tls || !s->tls->cache_key)
    return 0;
  weft__tls_cache_put(s->tls->ctx, s->tls->cache_key, sess);
  return 1; /* the cache keeps the reference */
}

static int is_ip_literal(const char *name) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name, buf) == 1 ||
         inet_pton(AF_INET6, name, buf) == 1;
}

static uint64_t timeout_or(uint64_t ms, uint64_t def) { return ms ? ms : def; }

/* Client side of attach: name, SNI, verification, the cached session. */
static int attach_client(weft_stream_t *s, weft__tls_t *t, const char *name) {
  weft_tls_ctx_t *c = t->ctx;
  SSL *ssl = t->ssl;
  SSL_set_connect_state(ssl);
  int ip = is_ip_literal(name);
  if (!ip && SSL_set_tlsext_host_name(ssl, name) != 1)
    return WEFT_EINVAL; /* over 255 bytes or the like */
  if (c->check_hostname) {
    if (ip) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1)
        return WEFT_EINVAL;
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(ssl, name) != 1)
        return WEFT_EINVAL;
    }
  }
  if (c->tickets) {
    char port[16] = "unix";
    if (s->peername.ss_family == AF_INET)
      snprintf(port, sizeof(port), "%u",
               ntohs(((struct sockaddr_in *)&s->peername)->sin_port));
    else if (s->peername.ss_family == AF_INET6)
      snprintf(port, sizeof(port), "%u",
               ntohs(((struct sockaddr_in6 *)&s->peername)->sin6_port));
    size_t n = strlen(name) + strlen(port) + 2;
    t->cache_key = weft__malloc(n);
    if (!t->cache_key)
      return WEFT_ENOMEM;
    snprintf(t->cache_key, n, "%s:%s", name, port);
    SSL_SESSION *sess = weft__tls_cache_get(c, t->cache_key);
    if (sess) {
      SSL_set_session(ssl, sess);
      SSL_SESSION_free(sess);
    }
  }
  return 0;
}

static void tls_destroy(weft__tls_t *t) {
  if (t->ssl)
    SSL_free(t->ssl); /* and the BIO */
  X509_free(t->peer);
  weft__free(t->cin);
  weft__free(t->cache_key);
  weft__tls_ctx_unref(t->ctx);
  weft__free(t);
}

int weft__tls_attach(weft_stream_t *s, const weft_stream_tls_opts_t *o,
                     const char *host) {
  weft_tls_ctx_t *c = o->ctx;
  const char *name = o->server_hostname ? o->server_hostname : host;
  if (!c->server && (!name || !*name))
    return WEFT_EINVAL; /* a client must know whom it verifies */
  pthread_once(&bio_once, make_bio_method);
  if (!bio_method)
    return WEFT_ENOMEM;
  weft__tls_t *t = weft__calloc(1, sizeof(*t));
  if (!t)
    return WEFT_ENOMEM;
  weft__tls_ctx_ref(c);
  t->ctx = c;
  t->hs_timeout_ms =
      timeout_or(o->handshake_timeout_ms, WEFT_TLS_HANDSHAKE_TIMEOUT_DEFAULT);
  t->sd_timeout_ms =
      timeout_or(o->shutdown_timeout_ms, WEFT_TLS_SHUTDOWN_TIMEOUT_DEFAULT);
  t->cin_cap = CIN_CAP;
  t->cin = weft__malloc(t->cin_cap);
  ERR_clear_error();
  t->ssl = t->cin ? SSL_new(c->ssl) : NULL;
  BIO *b = t->ssl ? BIO_new(bio_method) : NULL;
  if (!b) {
    ERR_clear_error();
    tls_destroy(t);
    return WEFT_ENOMEM;
  }
  BIO_set_data(b, s);
  SSL_set_bio(t->ssl, b, b); /* the SSL owns the BIO */
  SSL_set_ex_data(t->ssl, weft__tls_ssl_index(), s);
  int rc = 0;
  if (c->server)
    SSL_set_accept_state(t->ssl);
  else
    rc = attach_client(s, t, name);
  if (rc) {
    ERR_clear_error();
    tls_destroy(t);
    return rc;
  }
  s->tls = t;
  return 0;
}

void weft__tls_free(weft_stream_t *s) {
  if (s->tls) {
    tls_destroy(s->tls);
    s->tls = NULL;
  }
}

/* ------------------------------------------------------------------------ */
/* The pump (steps 2, 3, 5, 6)                                               */

/* A fatal error: step 5. Returns the code. */
static int fail(weft_stream_t *s, int code) {
  weft__tls_t *t = s->tls;
  t->fatal = 1;
  ERR_clear_error();
  if (!s->werr) {
    s->werr = code;
    weft__stream_write_progress(s); /* drain() returns it */
  }
  return code;
}

/* The code of a failed SSL call (ret its return value), with the reason
 * kept in t->err. */
static int ssl_failure(weft_stream_t *s, int ret) {
  weft__tls_t *t = s->tls;
  int e = SSL_get_error(t->ssl, ret);
  if (t->sock_err && (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_SSL)) {
    /* The socket failed under OpenSSL: its error is the cause. */
    snprintf(t->err, sizeof(t->err), "%s", weft_strerror(t->sock_err));
    ERR_clear_error();
    return t->sock_err;
  }
  if (s->werr && e == SSL_ERROR_SYSCALL) { /* a write failed (bio_write) */
    snprintf(t->err, sizeof(t->err), "%s", weft_strerror(s->werr));
    ERR_clear_error();
    return s->werr;
  }
  int code = weft__tls_error(t->ssl, e == SSL_ERROR_SYSCALL
                                         ? WEFT_ETLS_TRUNCATED
                                         : WEFT_ETLS,
                             t->err, sizeof(t->err));
  return code;
}

static void finish_handshake(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  SSL *ssl = t->ssl;
  const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
  const unsigned char *p;
  unsigned len;
  t->version = SSL_version(ssl);
  t->version_name = SSL_get_version(ssl);
  t->cipher = ci ? SSL_CIPHER_standard_name(ci) : "";
  if (!t->cipher)
    t->cipher = SSL_CIPHER_get_name(ci);
  t->bits = ci ? SSL_CIPHER_get_bits(ci, NULL) : 0;
  SSL_get0_alpn_selected(ssl, &p, &len);
  if (p && len < sizeof(t->alpn)) {
    memcpy(t->alpn, p, len);
    t->alpn[len] = 0;
  }
  const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sni)
    snprintf(t->sni, sizeof(t->sni), "%s", sni);
  t->resumed = SSL_session_reused(ssl);
  t->peer = SSL_get1_peer_certificate(ssl);
  t->hs_done = 1;
  /* release: the accessors read the fields above after an acquire load. */
  atomic_store_explicit(&s->tls_ready, 1, memory_order_release);
}

static void handshake_step(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl);
  if (r == 1) {
    finish_handshake(s);
    return;
  }
  if (SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_READ && !t->sock_eof) {
    ERR_clear_error();
    return; /* the next flight has not arrived */
  }
  t->hs_err = ssl_failure(s, r);
  if (t->hs_err == WEFT_ETLS_TRUNCATED && t->sock_eof && !t->sock_err)
    snprintf(t->err, sizeof(t->err),
             "the peer closed the connection during the handshake");
  fail(s, t->hs_err);
}

/* Decrypt into the stream's buffers until OpenSSL needs more ciphertext,
 * the plaintext side is full, or the end came. */
static void decrypt(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  while (!s->eof && !t->fatal) {
    char *base;
    size_t len, got = 0;
    /* Nothing to decrypt: no SSL_read that would only say so, and no read
     * buffer allocated for it (a reader restarting the pump finds this). */
    if (t->cin_len == 0 && !t->sock_eof && !SSL_has_pending(t->ssl))
      break;
    weft__stream_space(s, &base, &len);
    if (len == 0) {
      if (s->rlen == 0)
        s->rnomem = 1; /* no memory for the read buffer (stream.c) */
      break; /* full: the reader consumes first */
    }
    if (len > INT_MAX)
      len = INT_MAX;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, base, len, &got);
    if (r == 1) {
      weft__stream_landed(s, base, got);
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ && !t->sock_eof) {
      ERR_clear_error();
      break;
    }
    s->eof = 1;
    if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: a clean end */
      ERR_clear_error();
      break;
    }
    s->rerr = ssl_failure(s, r);
    fail(s, s->rerr);
  }
}

/* The handshake's task, once it is over (it may be running: a pump in task
 * context runs on the thread of whichever task called it). */
static void wake_handshake(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  if (t->hs_task && !t->hs_fired && (t->hs_done || t->hs_err)) {
    t->hs_fired = 1;
    if (t->hs_task != weft__task_current())
      weft__task_wake(t->hs_task);
  }
}

int weft__tls_pump(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  if (t->pumping)
    return 1; /* the outer pump decides about the socket */
  t->pumping = 1;
  if (!t->hs_done && !t->hs_err && !t->fatal)
    handshake_step(s);
  if (t->hs_done)
    decrypt(s);
  t->pumping = 0;
  wake_handshake(s);
  return t->sock_eof || t->fatal || s->eof;
}

void weft__tls_cipher_space(weft_stream_t *s, char **base, size_t *len) {
  weft__tls_t *t = s->tls;
  if (t->cin_len == 0)
    t->cin_pos = 0;
  size_t tail = t->cin_cap - t->cin_pos - t->cin_len;
  if (tail < CIN_MIN_READ && t->cin_pos > 0) {
    memmove(t->cin, t->cin + t->cin_pos, t->cin_len);
    t->cin_pos = 0;
    tail = t->cin_cap - t->cin_len;
  }
  *base = tail ? t->cin + t->cin_pos + t->cin_len : NULL;
  *len = tail;
}

void weft__tls_on_read(weft_stream_t *s, ssize_t nread) {
  weft__tls_t *t = s->tls;
  if (nread > 0) {
    t->cin_len += (size_t)nread;
  } else if (nread == UV_ENOBUFS) {
    weft__stream_stop_reading(s); /* cin is full: step 2 */
  } else if (nread < 0) {
    t->sock_eof = 1;
    if (nread != UV_EOF)
      t->sock_err = (int)nread;
    weft__stream_stop_reading(s);
  } else {
    return; /* EAGAIN */
  }
  if (weft__tls_pump(s))
    weft__stream_stop_reading(s);
  weft__stream_wake_reader(s);
}

/* ------------------------------------------------------------------------ */
/* Handshake (step 6)                                                        */

int weft__tls_handshake(weft_stream_t *s, weft_task_t *t0) {
  weft__tls_t *t = s->tls;
  int rc = 0;
  if (weft__tls_pump(s)) /* the first flight, or what already arrived */
    weft__stream_stop_reading(s);
  if (!t->hs_done && !t->hs_err) {
    uint64_t deadline = t->hs_timeout_ms == WEFT_NO_TIMEOUT
                            ? WEFT__NO_DEADLINE
                            : weft__deadline_after_ms(t->hs_timeout_ms);
    weft__waitctx_t c;
    t->hs_task = t0;
    t->hs_fired = 0;
    weft__wait_note(t0, WEFT_WAIT_TLS, s);
    weft__wait_begin(&c, t0, deadline);
    while (!t->hs_fired && (rc = weft__wait_poll(&c, 0)) == 0)
      weft__park(t0);
    weft__wait_end(&c);
    t->hs_task = NULL;
  }
  if (rc == 0 && t->hs_err)
    rc = t->hs_err;
  if (rc == WEFT_ETIMEDOUT)
    weft__tls_set_error("the TLS handshake timed out");
  else if (rc && rc != WEFT_ECANCELED)
    weft__tls_set_error(t->err);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Writing (step 4) and closing (step 7)                                     */

static _Thread_local char gather_buf[GATHER_MAX];

static int write_one(weft_stream_t *s, const char *p, size_t n) {
  weft__tls_t *t = s->tls;
  size_t w;
  ERR_clear_error();
  if (SSL_write_ex(t->ssl, p, n, &w) == 1)
    return 0;
  int code = ssl_failure(s, 0);
  return fail(s, code);
}

int weft__tls_write(weft_stream_t *s, const uv_buf_t *bufs, unsigned nbufs,
                    size_t total) {
  weft__tls_t *t = s->tls;
  if (t->fatal)
    return s->werr ? s->werr : WEFT_ETLS;
  if (!t->hs_done)
    return WEFT_ESTATE; /* start_tls's handshake is running */
  if (nbufs > 1 && total <= GATHER_MAX) {
    /* No suspension until SSL_write returns: the thread's buffer is ours. */
    size_t off = 0;
    for (unsigned i = 0; i < nbufs; i++) {
      memcpy(gather_buf + off, bufs[i].base, bufs[i].len);
      off += bufs[i].len;
    }
    return write_one(s, gather_buf, total);
  }
  for (unsigned i = 0; i < nbufs; i++)
    if (bufs[i].len) {
      int rc = write_one(s, bufs[i].base, bufs[i].len);
      if (rc)
        return rc;
    }
  return 0;
}

void weft__tls_on_close(weft_stream_t *s, int abort) {
  weft__tls_t *t = s->tls;
  if (!t->hs_done && !t->hs_err) {
    t->hs_err = WEFT_ECONNABORTED;
    snprintf(t->err, sizeof(t->err), "the stream was closed during the "
                                     "handshake");
    t->fatal = 1;
    wake_handshake(s);
  } else if (!abort) {
    weft__tls_close_notify(s);
  }
}

void weft__tls_close_notify(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  if (!t->hs_done || t->fatal || t->sent_notify || s->werr)
    return;
  t->sent_notify = 1;
  ERR_clear_error();
  SSL_shutdown(t->ssl); /* writes the alert through bio_write */
  ERR_clear_error();
}

static void on_timer_close(uv_handle_t *h) {
  weft__stream_handle_closed(h->data);
}

static void on_shutdown_timeout(uv_timer_t *h) {
  weft__stream_close_now(h->data);
}

void weft__tls_arm_shutdown(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  if (t->timer_inited || t->sd_timeout_ms == WEFT_NO_TIMEOUT)
    return;
  if (uv_timer_init(&s->obj.home->own.loop, &t->timer) != 0)
    return; /* the flush is then unbounded, as over TCP */
  t->timer.data = s;
  t->timer_inited = 1;
  s->handles_open++;
  /* The loop's cached time may be stale by however long this task ran
   * (a large write): the timeout counts from now. */
  uv_update_time(&s->obj.home->own.loop);
  uv_timer_start(&t->timer, on_shutdown_timeout, t->sd_timeout_ms, 0);
}

void weft__tls_close_handles(weft_stream_t *s) {
  weft__tls_t *t = s->tls;
  if (t->timer_inited && !t->timer_closing) {
    t->timer_closing = 1;
    uv_close((uv_handle_t *)&t->timer, on_timer_close);
  }
}

void weft__tls_note(weft_stream_t *s, int rc) {
  if (s->tls && s->tls->err[0] && rc <= WEFT_ETLS && rc > WEFT_ETLS - 100)
    weft__tls_set_error(s->tls->err);
}

/* ------------------------------------------------------------------------ */
/* The public calls                                                          */

int weft_stream_start_tls(weft_stream_t *s, const weft_stream_tls_opts_t *o) {
  weft_task_t *t;
  if (s && (!o || !o->ctx))
    return WEFT_EINVAL;
  int rc = weft__stream_begin(s, &t);
  if (rc)
    return rc;
  if (s->tls || s->closing)
    rc = WEFT_ESTATE;
  else if (s->reader)
    rc = WEFT_EBUSY;
  else if (!o->ctx->server && (!o->server_hostname || !*o->server_hostname))
    rc = WEFT_EINVAL;
  else
    rc = weft__tls_attach(s, o, NULL);
  if (rc == 0) {
    weft__tls_t *tl = s->tls;
    /* What arrived and was not read is TLS's (after STARTTLS the peer may
     * only speak TLS; plaintext smuggled behind the command is not taken as
     * plaintext). */
    if (s->rlen > tl->cin_cap) {
      char *nb = weft__realloc(tl->cin, s->rlen);
      if (!nb)
        rc = WEFT_ENOMEM;
      else {
        tl->cin = nb;
        tl->cin_cap = s->rlen;
      }
    }
    if (rc == 0) {
      if (s->rlen)
        memcpy(tl->cin, s->rbuf + s->rpos, s->rlen);
      tl->cin_len = s->rlen;
      s->rlen = 0;
      s->rpos = 0;
      s->skip_line = 0;
      if (s->eof) { /* the socket's end came before: TLS reports it */
        tl->sock_eof = 1;
        tl->sock_err = s->rerr;
        s->eof = 0;
        s->rerr = 0;
      }
      rc = weft__tls_handshake(s, t);
    }
    if (rc)
      weft__stream_close(s, 1); /* documented: aborted after a failure */
  }
  weft__io_leave(t);
  return rc;
}

int weft_stream_is_tls(const weft_stream_t *s) {
  if (!s)
    return WEFT_EINVAL;
  /* acquire: pairs with finish_handshake's release. */
  return atomic_load_explicit(&s->tls_ready, memory_order_acquire);
}

static const weft__tls_t *ready(const weft_stream_t *s) {
  /* acquire: pairs with finish_handshake's release. */
  return atomic_load_explicit(&s->tls_ready, memory_order_acquire) ? s->tls
                                                                   : NULL;
}

int weft_stream_tls_info(const weft_stream_t *s, weft_tls_info_t *info) {
  if (!s || !info)
    return WEFT_EINVAL;
  const weft__tls_t *t = ready(s);
  if (!t)
    return WEFT_ESTATE;
  info->version = t->version;
  info->version_name = t->version_name;
  info->cipher = t->cipher;
  info->cipher_bits = t->bits;
  info->alpn = t->alpn;
  info->server_name = t->sni;
  info->resumed = t->resumed;
  info->peer_cert = t->peer != NULL;
  return 0;
}

void *weft_stream_tls_native(weft_stream_t *s) {
  return s && s->tls ? s->tls->ssl : NULL;
}

/* ---- certificates ---- */

static char *name_string(const X509_NAME *n) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b)
    return NULL;
  X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
  char *data;
  long len = BIO_get_mem_data(b, &data);
  char *out = weft__malloc((size_t)len + 1);
  if (out) {
    memcpy(out, data, (size_t)len);
    out[len] = 0;
  }
  BIO_free(b);
  return out;
}

static char *dup_prefixed(const char *prefix, const char *v, size_t vlen) {
  size_t pl = strlen(prefix);
  char *out = weft__malloc(pl + vlen + 1);
  if (out) {
    memcpy(out, prefix, pl);
    memcpy(out + pl, v, vlen);
    out[pl + vlen] = 0;
  }
  return out;
}

static char *san_string(const GENERAL_NAME *g) {
  const ASN1_STRING *str;
  switch (g->type) {
  case GEN_DNS:
    str = g->d.dNSName;
    return dup_prefixed("DNS:", (const char *)ASN1_STRING_get0_data(str),
                        (size_t)ASN1_STRING_length(str));
  case GEN_EMAIL:
    str = g->d.rfc822Name;
    return dup_prefixed("email:", (const char *)ASN1_STRING_get0_data(str),
                        (size_t)ASN1_STRING_length(str));
  case GEN_URI:
    str = g->d.uniformResourceIdentifier;
    return dup_prefixed("URI:", (const char *)ASN1_STRING_get0_data(str),
                        (size_t)ASN1_STRING_length(str));
  case GEN_IPADD: {
    char text[INET6_ADDRSTRLEN];
    str = g->d.iPAddress;
    int l = ASN1_STRING_length(str);
    const unsigned char *a = ASN1_STRING_get0_data(str);
    if ((l != 4 && l != 16) ||
        !inet_ntop(l == 4 ? AF_INET : AF_INET6, a, text, sizeof(text)))
      return dup_prefixed("IP:", "?", 1);
    return dup_prefixed("IP:", text, strlen(text));
  }
  default:
    return dup_prefixed("other:", "", 0);
  }
}

static int64_t asn1_time(const ASN1_TIME *at) {
  struct tm tm;
  if (!at || ASN1_TIME_to_tm(at, &tm) != 1)
    return 0;
  return (int64_t)timegm(&tm);
}

void weft_tls_cert_free(weft_tls_cert_t *c) {
  if (!c)
    return;
  weft__free(c->subject);
  weft__free(c->issuer);
  weft__free(c->serial);
  for (size_t i = 0; i < c->nsan; i++)
    weft__free(c->san[i]);
  weft__free(c->san);
  weft__free(c->der);
  weft__free(c);
}

static int decode_cert(X509 *x, weft_tls_cert_t **out) {
  weft_tls_cert_t *c = weft__calloc(1, sizeof(*c));
  if (!c)
    return WEFT_ENOMEM;
  int ok = 1;
  c->subject = name_string(X509_get_subject_name(x));
  c->issuer = name_string(X509_get_issuer_name(x));
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
  char *hex = bn ? BN_bn2hex(bn) : NULL;
  if (hex) {
    c->serial = dup_prefixed("", hex, strlen(hex));
    OPENSSL_free(hex);
  }
  BN_free(bn);
  ok = c->subject && c->issuer && c->serial;
  GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
  if (gens && ok) {
    int n = sk_GENERAL_NAME_num(gens);
    c->san = weft__calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
    ok = c->san != NULL;
    for (int i = 0; ok && i < n; i++) {
      c->san[i] = san_string(sk_GENERAL_NAME_value(gens, i));
      ok = c->san[i] != NULL;
      c->nsan += ok;
    }
  }
  GENERAL_NAMES_free(gens);
  c->not_before = asn1_time(X509_get0_notBefore(x));
  c->not_after = asn1_time(X509_get0_notAfter(x));
  int dl = i2d_X509(x, NULL);
  if (ok && dl > 0) {
    c->der = weft__malloc((size_t)dl);
    unsigned char *p = c->der;
    ok = c->der && i2d_X509(x, &p) == dl;
    c->der_len = ok ? (size_t)dl : 0;
  }
  ERR_clear_error();
  if (!ok) {
    weft_tls_cert_free(c);
    return WEFT_ENOMEM;
  }
  *out = c;
  return 0;
}

int weft_stream_tls_peer_cert(const weft_stream_t *s, weft_tls_cert_t **out) {
  if (out)
    *out = NULL;
  if (!s || !out)
    return WEFT_EINVAL;
  const weft__tls_t *t = ready(s);
  if (!t)
    return WEFT_ESTATE;
  if (!t->peer)
    return WEFT_ENOENT;
  return decode_cert(t->peer, out);
}
