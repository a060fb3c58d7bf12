/*
 * TLS contexts (asyncio's SSLContext) over OpenSSL 3: configuration, the
 * client session cache, the key log, and the per-task reason string of the
 * last TLS failure.
 *
 * Threading (a context is shared by every worker):
 *  1. weft_tls_ctx_new builds the whole context, OpenSSL's SSL_CTX included,
 *     before it returns it; afterwards nothing in it changes except `refs`
 *     and the session cache. OpenSSL makes SSL_new on one SSL_CTX from many
 *     threads safe (its own locks guard the SSL_CTX's shared parts).
 *  2. `refs`: the program's reference plus one per attached stream.
 *     Holders increment (relaxed: a holder already keeps it alive); the
 *     decrement that reaches zero frees (acq_rel: it sees every other
 *     holder's last use).
 *  3. The session cache is guarded by `cache_lock`: OpenSSL's new-session
 *     callback (on any worker, in a handshake or a read) stores, attach
 *     (any worker) looks up. Entries hold their own SSL_SESSION reference;
 *     a lookup takes another one under the lock, so an entry replaced
 *     meanwhile cannot free a session in use.
 *  4. The key log is one write(2) per line on an O_APPEND descriptor: lines
 *     from several workers never interleave within a line.
 *  5. The reason string of a failure lives in the failing task's record
 *     (`tls_err`, written and read only by the task itself), or in a
 *     thread-local buffer for calls outside tasks (weft_tls_ctx_new).
 */
#include "alloc.h"
#include "io/tls_int.h"
#include "record.h"
#include "sched/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALPN_MAX 255 /* one protocol name, and the whole list's length */

/* ------------------------------------------------------------------------ */
/* The reason of the last failure                                            */

static _Thread_local char thread_err[256];

void weft__tls_set_error(const char *msg) {
  weft_task_t *t = weft__task_current();
  if (!t) {
    snprintf(thread_err, sizeof(thread_err), "%s", msg);
    return;
  }
  size_t n = strlen(msg);
  char *copy = weft__malloc(n + 1);
  if (!copy)
    return; /* the code alone tells the failure */
  memcpy(copy, msg, n + 1);
  weft__free(t->stack->tls_err); /* t runs: it has a stack */
  t->stack->tls_err = copy;
}

int weft_tls_error_string(char *buf, size_t cap) {
  weft_task_t *t = weft__task_current();
  const char *msg = t ? t->stack->tls_err : thread_err;
  if (!msg)
    msg = "";
  size_t n = strlen(msg);
  if (buf && cap) {
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(buf, msg, k);
    buf[k] = 0;
  }
  return (int)n;
}

/* The verification result's code. */
static int verify_code(long vr) {
  switch (vr) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return WEFT_ETLS_CERT_EXPIRED;
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    return WEFT_ETLS_CERT_SELF_SIGNED;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    return WEFT_ETLS_CERT_UNTRUSTED;
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
  case X509_V_ERR_EMAIL_MISMATCH:
    return WEFT_ETLS_CERT_HOSTNAME;
  default:
    return WEFT_ETLS_CERT_INVALID;
  }
}

/* The code of one OpenSSL reason (ERR_GET_REASON of an ERR_LIB_SSL error). */
static int reason_code(int reason) {
  switch (reason) {
  case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
  case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    return WEFT_ETLS_CERT_REQUIRED;
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_NO_PROTOCOLS_AVAILABLE:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
  case SSL_R_UNKNOWN_PROTOCOL:
    return WEFT_ETLS_VERSION;
  case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
  case SSL_R_NO_APPLICATION_PROTOCOL:
    return WEFT_ETLS_ALPN;
  case SSL_R_UNEXPECTED_EOF_WHILE_READING:
    return WEFT_ETLS_TRUNCATED;
  default:
    if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
      return WEFT_ETLS_PEER_ALERT;
    return 0;
  }
}

int weft__tls_error(SSL *ssl, int fallback, char *msg, size_t cap) {
  size_t len = 0;
  int code = 0;
  unsigned long e;
  const char *file, *data;
  int line, flags;
  msg[0] = 0;
  /* The first error is the cause; later ones are its consequences. */
  while ((e = ERR_get_error_all(&file, &line, NULL, &data, &flags)) != 0) {
    (void)file;
    (void)line;
    if (len == 0) {
      const char *r = ERR_reason_error_string(e);
      char num[32];
      if (!r) {
        snprintf(num, sizeof(num), "error:%08lX", e);
        r = num;
      }
      int n = snprintf(msg, cap, "%s%s%s", r,
                       (flags & ERR_TXT_STRING) && data && *data ? ": " : "",
                       (flags & ERR_TXT_STRING) && data ? data : "");
      len = n > 0 ? (size_t)n : 0;
      if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
        int reason = ERR_GET_REASON(e);
        if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && ssl) {
          long vr = SSL_get_verify_result(ssl);
          if (vr != X509_V_OK) {
            code = verify_code(vr);
            snprintf(msg, cap, "certificate verify failed: %s",
                     X509_verify_cert_error_string(vr));
          } else {
            code = WEFT_ETLS_CERT_INVALID;
          }
        } else {
          code = reason_code(reason);
        }
      }
    }
  }
  if (!code)
    code = fallback;
  if (len == 0 && msg[0] == 0)
    snprintf(msg, cap, "%s", weft_strerror(code));
  return code;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

void weft_tls_opts_init(weft_tls_opts_t *opts) {
  if (opts)
    memset(opts, 0, sizeof(*opts));
}

int weft_tls_available(void) { return 1; }

/* "h2,http/1.1" -> the wire format (length-prefixed names). */
static int alpn_wire(const char *list, unsigned char **out, unsigned *outlen) {
  size_t n = strlen(list);
  if (n == 0 || n > ALPN_MAX)
    return WEFT_EINVAL;
  unsigned char *w = weft__malloc(n + 1);
  if (!w)
    return WEFT_ENOMEM;
  size_t wl = 0;
  const char *p = list;
  for (;;) {
    const char *c = strchr(p, ',');
    size_t l = c ? (size_t)(c - p) : strlen(p);
    if (l == 0 || l > ALPN_MAX) {
      weft__free(w);
      return WEFT_EINVAL;
    }
    w[wl++] = (unsigned char)l;
    memcpy(w + wl, p, l);
    wl += l;
    if (!c)
      break;
    p = c + 1;
  }
  *out = w;
  *outlen = (unsigned)wl;
  return 0;
}

/* Server: choose the first of our protocols that the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
  weft_tls_ctx_t *c = arg;
  (void)ssl;
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, c->alpn, c->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* ------------------------------------------------------------------------ */
/* Key log (SSLKEYLOGFILE)                                                   */

static void keylog_line(const SSL *ssl, const char *line) {
  weft_tls_ctx_t *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  if (!c || c->keylog_fd < 0)
    return;
  size_t n = strlen(line);
  char buf[512];
  if (n + 1 > sizeof(buf))
    return; /* longer than any NSS key-log line */
  memcpy(buf, line, n);
  buf[n] = '\n';
  ssize_t w = write(c->keylog_fd, buf, n + 1); /* step 4: one write a line */
  (void)w; /* a key log that cannot be written is not the connection's
              failure */
}

/* ------------------------------------------------------------------------ */
/* Client session cache                                                      */

static unsigned cache_slot(const char *key) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 16777619u;
  return h % WEFT__TLS_CACHE_SLOTS;
}

SSL_SESSION *weft__tls_cache_get(weft_tls_ctx_t *c, const char *key) {
  weft__tls_cache_slot_t *sl = &c->cache[cache_slot(key)];
  SSL_SESSION *sess = NULL;
  pthread_mutex_lock(&c->cache_lock);
  if (sl->key && strcmp(sl->key, key) == 0 && sl->sess &&
      SSL_SESSION_is_resumable(sl->sess)) {
    sess = sl->sess;
    SSL_SESSION_up_ref(sess); /* step 3: ours while in use */
  }
  pthread_mutex_unlock(&c->cache_lock);
  return sess;
}

void weft__tls_cache_put(weft_tls_ctx_t *c, const char *key,
                         SSL_SESSION *sess) {
  weft__tls_cache_slot_t *sl = &c->cache[cache_slot(key)];
  size_t n = strlen(key);
  char *copy = weft__malloc(n + 1);
  if (!copy) {
    SSL_SESSION_free(sess);
    return;
  }
  memcpy(copy, key, n + 1);
  pthread_mutex_lock(&c->cache_lock);
  char *oldkey = sl->key;
  SSL_SESSION *old = sl->sess;
  sl->key = copy;
  sl->sess = sess;
  pthread_mutex_unlock(&c->cache_lock);
  weft__free(oldkey);
  if (old)
    SSL_SESSION_free(old);
}

/* ------------------------------------------------------------------------ */
/* Contexts                                                                  */

static pthread_once_t ssl_index_once = PTHREAD_ONCE_INIT;
static int ssl_index = -1;

static void make_ssl_index(void) {
  ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int weft__tls_ssl_index(void) {
  pthread_once(&ssl_index_once, make_ssl_index);
  return ssl_index;
}

void weft__tls_ctx_ref(weft_tls_ctx_t *c) {
  /* relaxed: step 2, the caller holds a reference. */
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void weft__tls_ctx_unref(weft_tls_ctx_t *c) {
  /* acq_rel: step 2, the last holder sees every other's writes. */
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (unsigned i = 0; i < WEFT__TLS_CACHE_SLOTS; i++) {
    weft__free(c->cache[i].key);
    if (c->cache[i].sess)
      SSL_SESSION_free(c->cache[i].sess);
  }
  pthread_mutex_destroy(&c->cache_lock);
  SSL_CTX_free(c->ssl);
  if (c->keylog_fd >= 0)
    close(c->keylog_fd);
  weft__free(c->alpn);
  weft__free(c);
}

void weft_tls_ctx_free(weft_tls_ctx_t *ctx) {
  if (ctx)
    weft__tls_ctx_unref(ctx);
}

int weft__tls_ctx_is_server(const weft_tls_ctx_t *c) { return c->server; }

void *weft_tls_ctx_native(weft_tls_ctx_t *ctx) { return ctx ? ctx->ssl : NULL; }

/* A configuration failure: OpenSSL's reason recorded, WEFT_ETLS_CONFIG. */
static int config_error(const char *what) {
  unsigned long e = ERR_peek_last_error();
  char msg[400];
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(msg, sizeof(msg), "%s%s%s", what, r ? ": " : "", r ? r : "");
  ERR_clear_error();
  weft__tls_set_error(msg);
  return WEFT_ETLS_CONFIG;
}

/* A file the configuration names: its own errno first (ENOENT, EACCES),
 * so that a typo is not reported as a bad certificate. */
static int check_file(const char *path, int dir) {
  if (access(path, R_OK | (dir ? X_OK : 0)) == 0)
    return 0;
  int rc = -errno;
  char msg[300];
  snprintf(msg, sizeof(msg), "%s: %s", path, strerror(errno));
  weft__tls_set_error(msg);
  return rc;
}

static int mem_len(const char *pem, size_t len) {
  return (int)(len ? len : strlen(pem));
}

/* The certificate chain and key, from files or memory. */
static int load_identity(SSL_CTX *ssl, const weft_tls_opts_t *o) {
  int rc;
  if (o->cert_file) {
    if ((rc = check_file(o->cert_file, 0)) != 0)
      return rc;
    if (SSL_CTX_use_certificate_chain_file(ssl, o->cert_file) != 1)
      return config_error("certificate chain file");
  } else {
    BIO *b = BIO_new_mem_buf(o->cert_pem, mem_len(o->cert_pem, o->cert_pem_len));
    if (!b)
      return WEFT_ENOMEM;
    X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (!leaf || SSL_CTX_use_certificate(ssl, leaf) != 1) {
      X509_free(leaf);
      BIO_free(b);
      return config_error("certificate PEM");
    }
    X509_free(leaf);
    X509 *extra;
    while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
      if (SSL_CTX_add0_chain_cert(ssl, extra) != 1) {
        X509_free(extra);
        BIO_free(b);
        return config_error("certificate chain PEM");
      }
    ERR_clear_error(); /* the end of the PEM data */
    BIO_free(b);
  }
  if (o->key_file) {
    if ((rc = check_file(o->key_file, 0)) != 0)
      return rc;
    if (SSL_CTX_use_PrivateKey_file(ssl, o->key_file, SSL_FILETYPE_PEM) != 1)
      return config_error("private key file");
  } else {
    BIO *b = BIO_new_mem_buf(o->key_pem, mem_len(o->key_pem, o->key_pem_len));
    if (!b)
      return WEFT_ENOMEM;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k || SSL_CTX_use_PrivateKey(ssl, k) != 1) {
      EVP_PKEY_free(k);
      return config_error("private key PEM");
    }
    EVP_PKEY_free(k);
  }
  if (SSL_CTX_check_private_key(ssl) != 1)
    return config_error("the private key does not match the certificate");
  return 0;
}

/* The trusted certificates: 1 in *given if the options named any. */
static int load_trust(SSL_CTX *ssl, const weft_tls_opts_t *o, int *given) {
  int rc;
  *given = 0;
  if (o->ca_file || o->ca_dir) {
    if (o->ca_file && (rc = check_file(o->ca_file, 0)) != 0)
      return rc;
    if (o->ca_dir && (rc = check_file(o->ca_dir, 1)) != 0)
      return rc;
    if (SSL_CTX_load_verify_locations(ssl, o->ca_file, o->ca_dir) != 1)
      return config_error("CA file or directory");
    if (o->server && o->ca_file) {
      STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
      if (names)
        SSL_CTX_set_client_CA_list(ssl, names); /* the CAs we accept */
    }
    *given = 1;
  }
  if (o->ca_pem) {
    BIO *b = BIO_new_mem_buf(o->ca_pem, mem_len(o->ca_pem, o->ca_pem_len));
    if (!b)
      return WEFT_ENOMEM;
    X509_STORE *store = SSL_CTX_get_cert_store(ssl);
    X509 *x;
    int n = 0;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
      int ok = X509_STORE_add_cert(store, x);
      if (ok && o->server)
        SSL_CTX_add_client_CA(ssl, x);
      X509_free(x);
      if (!ok) {
        BIO_free(b);
        return config_error("CA PEM");
      }
      n++;
    }
    BIO_free(b);
    ERR_clear_error(); /* the end of the PEM data */
    if (n == 0)
      return config_error("CA PEM holds no certificate");
    *given = 1;
  }
  return 0;
}

static int version_ok(int v) {
  return v == 0 || v == WEFT_TLS_VERSION_1_2 || v == WEFT_TLS_VERSION_1_3;
}

static int configure(weft_tls_ctx_t *c, const weft_tls_opts_t *o) {
  SSL_CTX *ssl = c->ssl;
  int rc;
  int minv = o->min_version ? o->min_version : WEFT_TLS_VERSION_1_2;
  if (SSL_CTX_set_min_proto_version(ssl, minv) != 1 ||
      SSL_CTX_set_max_proto_version(ssl, o->max_version) != 1)
    return config_error("protocol versions");
  uint64_t op = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
  if (o->server)
    op |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (o->allow_truncation)
    op |= SSL_OP_IGNORE_UNEXPECTED_EOF;
  if (o->no_session_tickets)
    op |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(ssl, op);
  if (o->ciphers && SSL_CTX_set_cipher_list(ssl, o->ciphers) != 1)
    return config_error("cipher list");
  if (o->ciphersuites && SSL_CTX_set_ciphersuites(ssl, o->ciphersuites) != 1)
    return config_error("TLS 1.3 cipher suites");
  if (o->groups && SSL_CTX_set1_groups_list(ssl, o->groups) != 1)
    return config_error("groups");

  if (o->cert_file || o->cert_pem || o->key_file || o->key_pem) {
    if (!(o->cert_file || o->cert_pem) || !(o->key_file || o->key_pem))
      return WEFT_EINVAL; /* a certificate without its key, or the reverse */
    if ((rc = load_identity(ssl, o)) != 0)
      return rc;
  }
  int trust;
  if ((rc = load_trust(ssl, o, &trust)) != 0)
    return rc;

  if (o->server) {
    int mode = SSL_VERIFY_NONE;
    if (o->client_cert == WEFT_TLS_CLIENT_CERT_OPTIONAL)
      mode = SSL_VERIFY_PEER;
    else if (o->client_cert == WEFT_TLS_CLIENT_CERT_REQUIRED)
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ssl, mode, NULL);
    if (o->no_session_tickets)
      SSL_CTX_set_num_tickets(ssl, 0);
    if (o->alpn) {
      if ((rc = alpn_wire(o->alpn, &c->alpn, &c->alpn_len)) != 0)
        return rc;
      SSL_CTX_set_alpn_select_cb(ssl, alpn_select, c);
    }
  } else {
    c->verify = !o->insecure_no_verify;
    c->check_hostname = c->verify && !o->insecure_no_hostname_check;
    SSL_CTX_set_verify(ssl, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       NULL);
    if (c->verify && !trust && SSL_CTX_set_default_verify_paths(ssl) != 1)
      return config_error("the system's CA store");
    if (o->alpn) {
      unsigned char *w;
      unsigned wl;
      if ((rc = alpn_wire(o->alpn, &w, &wl)) != 0)
        return rc;
      int bad = SSL_CTX_set_alpn_protos(ssl, w, wl); /* 0 = success */
      weft__free(w);
      if (bad)
        return config_error("ALPN list");
    }
    c->tickets = !o->no_session_tickets;
    if (c->tickets)
      SSL_CTX_sess_set_new_cb(ssl, weft__tls_on_new_session);
    /* The sessions go to our cache (weft__tls_cache_put from the stream's
     * new-session callback, tls.c), not OpenSSL's internal one. */
    SSL_CTX_set_session_cache_mode(ssl, c->tickets
                                            ? SSL_SESS_CACHE_CLIENT |
                                                  SSL_SESS_CACHE_NO_INTERNAL
                                            : SSL_SESS_CACHE_OFF);
  }

  const char *keylog = o->keylog_file;
  if (!keylog) {
    const char *env = getenv("SSLKEYLOGFILE");
    if (env && *env)
      keylog = env;
  }
  if (keylog) {
    c->keylog_fd =
        open(keylog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (c->keylog_fd < 0) {
      rc = -errno;
      char msg[300];
      snprintf(msg, sizeof(msg), "key log %s: %s", keylog, strerror(errno));
      weft__tls_set_error(msg);
      return rc;
    }
    SSL_CTX_set_keylog_callback(ssl, keylog_line);
  }
  return 0;
}

int weft_tls_ctx_new(const weft_tls_opts_t *opts, weft_tls_ctx_t **out) {
  weft_tls_opts_t defaults;
  if (!out)
    return WEFT_EINVAL;
  *out = NULL;
  if (!opts) {
    weft_tls_opts_init(&defaults);
    opts = &defaults;
  }
  if (!version_ok(opts->min_version) || !version_ok(opts->max_version) ||
      (opts->max_version && opts->min_version > opts->max_version) ||
      opts->client_cert < WEFT_TLS_CLIENT_CERT_NONE ||
      opts->client_cert > WEFT_TLS_CLIENT_CERT_REQUIRED ||
      (!opts->server && opts->client_cert) ||
      (opts->server && !(opts->cert_file || opts->cert_pem)))
    return WEFT_EINVAL;
  weft_tls_ctx_t *c = weft__calloc(1, sizeof(*c));
  if (!c)
    return WEFT_ENOMEM;
  atomic_init(&c->refs, 1);
  c->keylog_fd = -1;
  c->server = opts->server != 0;
  c->allow_truncation = opts->allow_truncation != 0;
  pthread_mutex_init(&c->cache_lock, NULL);
  ERR_clear_error();
  c->ssl = SSL_CTX_new(c->server ? TLS_server_method() : TLS_client_method());
  if (!c->ssl) {
    pthread_mutex_destroy(&c->cache_lock);
    weft__free(c);
    ERR_clear_error();
    return WEFT_ENOMEM;
  }
  SSL_CTX_set_app_data(c->ssl, c);
  /* OpenSSL opens the certificate, key and CA files without O_CLOEXEC:
   * keep subprocess spawns out meanwhile (io.h, the fork guard). */
  weft__fork_guard_rdlock();
  int rc = configure(c, opts);
  weft__fork_guard_unlock();
  if (rc) {
    weft__tls_ctx_unref(c);
    return rc;
  }
  *out = c;
  return 0;
}
