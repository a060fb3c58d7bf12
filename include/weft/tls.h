/*
 * weft TLS: asyncio's ssl= (SSLContext, open_connection(ssl=...),
 * start_server(ssl=...), StreamWriter.start_tls, get_extra_info('ssl_object'
 * | 'peercert' | 'cipher')) over OpenSSL 3.
 *
 * A context (weft_tls_ctx_t, asyncio's SSLContext) holds the configuration
 * shared by many connections: the side (client or server), the certificate
 * chain and key, the certificates trusted to verify the peer, ALPN, the
 * protocol versions, session resumption. It is immutable once made and may
 * be used by any number of streams on any worker at once.
 *
 * A stream becomes TLS by naming a context in its options
 * (weft_stream_opts_t.tls.ctx, for weft_open_connection() and, through
 * weft_server_opts_t.stream, for weft_start_server()) or later with
 * weft_stream_start_tls(). Every stream call then works on the plaintext
 * exactly as over TCP: read, readexactly, readline, readuntil, write,
 * writev, drain and the water marks, write_eof, close, abort, wait_closed,
 * cancellation and timeouts. The encryption runs on the stream's home
 * worker, between the socket and the stream's buffers (memory BIOs, no
 * extra thread).
 *
 * Secure by default: a client verifies the server's certificate chain
 * against the system's CA store (or the CAs given) and checks that it names
 * the server (the host given to weft_open_connection, or tls.server_hostname);
 * TLS 1.2 is the oldest version allowed and 1.3 is preferred; renegotiation
 * is refused; a peer that closes the connection without TLS's close_notify
 * is reported as WEFT_ETLS_TRUNCATED, not as a clean end of stream (unless
 * the context says the protocol frames itself); a handshake ends at its
 * timeout. Verification can be turned off only with the option named
 * insecure_no_verify.
 *
 * The TLS calls exist only in a library built with WEFT_TLS (the default
 * when OpenSSL 3 is found); weft_tls_available() says at run time.
 */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include "common.h"
#include "stream.h"

#include <stdint.h>

WEFT_BEGIN_DECLS

/* A TLS configuration (asyncio's SSLContext); see above. */
typedef struct weft_tls_ctx weft_tls_ctx_t;

/* Protocol versions, as on the wire. */
#define WEFT_TLS_VERSION_1_2 0x0303
#define WEFT_TLS_VERSION_1_3 0x0304

/* Server: what to ask of clients' certificates (mutual TLS). */
#define WEFT_TLS_CLIENT_CERT_NONE 0     /* do not ask (the default) */
#define WEFT_TLS_CLIENT_CERT_OPTIONAL 1 /* ask; verify one if sent */
#define WEFT_TLS_CLIENT_CERT_REQUIRED 2 /* ask; fail without a valid one */

/* Options of a context. Initialise with weft_tls_opts_init(). Strings are
 * copied or read during weft_tls_ctx_new(): they need not outlive it. */
typedef struct weft_tls_opts {
  /* 0: a client context (the default), 1: a server context. */
  int server;

  /* The certificate chain (PEM, leaf first, then intermediates) and its
   * private key (PEM, unencrypted): from files, or from memory (a *_pem
   * pointer with its length; length 0 = a NUL-terminated string). A server
   * needs one; a client gives one to present to servers that ask. */
  const char *cert_file;
  const char *key_file;
  const char *cert_pem;
  size_t cert_pem_len;
  const char *key_pem;
  size_t key_pem_len;

  /* The certificates trusted to verify the peer: a PEM file, a directory
   * of hashed certificates (c_rehash), and/or PEM in memory. None given: a
   * client trusts the system's CA store; a server that asks for client
   * certificates must be given some. */
  const char *ca_file;
  const char *ca_dir;
  const char *ca_pem;
  size_t ca_pem_len;

  /* Server: WEFT_TLS_CLIENT_CERT_NONE / _OPTIONAL / _REQUIRED. */
  int client_cert;

  /* Client: accept any certificate and any name. INSECURE: anyone on the
   * path can read and change the traffic. For tests against throw-away
   * certificates only. */
  int insecure_no_verify;
  /* Client: verify the chain but not that it names the server (asyncio's
   * check_hostname=False). Also insecure against anyone holding any
   * certificate from a trusted CA. */
  int insecure_no_hostname_check;

  /* ALPN protocols in preference order, comma-separated
   * ("h2,http/1.1"); NULL = no ALPN. A server selects the first of its
   * list that the client offers; a client offering ALPN to a server with
   * none in common fails with WEFT_ETLS_ALPN. */
  const char *alpn;

  /* Oldest and newest protocol version: 0 = WEFT_TLS_VERSION_1_2 and the
   * newest OpenSSL has (1.3). Older versions than 1.2 are refused
   * (WEFT_EINVAL). */
  int min_version;
  int max_version;

  /* OpenSSL cipher strings; NULL = OpenSSL's defaults (secure). `ciphers`
   * is the TLS 1.2 list (OpenSSL's cipher-list syntax), `ciphersuites` the
   * TLS 1.3 one, `groups` the key-exchange groups ("X25519:P-256"). */
  const char *ciphers;
  const char *ciphersuites;
  const char *groups;

  /* Session resumption: on by default. A client context caches the last
   * session (ticket) per server name and port and offers it on the next
   * connection to the same server; a server context issues tickets.
   * 1 turns both off. */
  int no_session_tickets;

  /* Append the connections' secrets in NSS key-log format (for Wireshark)
   * to this file. NULL = the file named by the SSLKEYLOGFILE environment
   * variable, when set and not empty, as Go, NSS and curl do. The secrets
   * go nowhere else. */
  const char *keylog_file;

  /* The peer's end of stream without close_notify is a clean end of stream
   * (0 bytes) rather than WEFT_ETLS_TRUNCATED. Only for protocols that
   * frame their own messages (HTTP with Content-Length or chunking), where
   * a cut cannot pass for a complete message. */
  int allow_truncation;
} weft_tls_opts_t;

/* Fill opts with the defaults (client side); opts NULL is ignored. */
WEFT_EXTERN void weft_tls_opts_init(weft_tls_opts_t *opts);

/* asyncio's ssl.create_default_context() / SSLContext(...): make a context
 * from opts (NULL = a client context with the defaults) into *out. Errors:
 * WEFT_EINVAL (out NULL, a bad version, a server without certificate or
 * key, client_cert set on a client, an ALPN list with an empty or over-long
 * name), WEFT_ENOENT / WEFT_EACCES (a file), WEFT_ETLS_CONFIG (a PEM that
 * does not parse, a key that does not match its certificate, a cipher or
 * group string OpenSSL rejects; weft_tls_error_string() says which),
 * WEFT_ENOMEM, WEFT_ENOSYS (built without TLS). Callable from anywhere. */
WEFT_EXTERN int weft_tls_ctx_new(const weft_tls_opts_t *opts,
                                 weft_tls_ctx_t **out);

/* Release the program's reference to a context. Streams using it keep it
 * alive until they are freed. NULL is ignored. Callable from anywhere. */
WEFT_EXTERN void weft_tls_ctx_free(weft_tls_ctx_t *ctx);

/* The OpenSSL SSL_CTX * behind ctx, for settings weft has no option for.
 * Change it only before the first stream uses the context. NULL when built
 * without TLS. */
WEFT_EXTERN void *weft_tls_ctx_native(weft_tls_ctx_t *ctx);

/* 1 if the library was built with TLS, else 0. */
WEFT_EXTERN int weft_tls_available(void);

/* ---- streams ------------------------------------------------------------- */

/* writer.start_tls(ctx, server_hostname=...): upgrade the plaintext stream s
 * to TLS (STARTTLS in SMTP, IMAP, PostgreSQL...) and run the handshake, as
 * the client or the server as ctx says. tls->ctx is required; the rest of
 * *tls as in weft_stream_opts_t (a client with tls->server_hostname NULL
 * verifies against nothing: it must be given, or WEFT_EINVAL).
 * Bytes already received and not yet read are taken as TLS data (as after
 * STARTTLS the peer may only send TLS); plaintext queued for writing is sent
 * before the handshake starts. Returns 0 once the handshake is done, or:
 * WEFT_ESTATE (s is TLS already, or closing), the handshake's errors (see
 * weft_open_connection), WEFT_ETIMEDOUT (the handshake timeout),
 * WEFT_ECANCELED, WEFT_EBUSY (another task is reading), WEFT_EINVAL,
 * WEFT_ENOSYS (built without TLS), WEFT_ENOTTASK. After a failure the
 * stream is aborted. Suspends. */
WEFT_EXTERN int weft_stream_start_tls(weft_stream_t *s,
                                      const weft_stream_tls_opts_t *tls);

/* get_extra_info('ssl_object') != None: 1 if s runs TLS (once its handshake
 * completed), 0 if not; WEFT_EINVAL. Callable from anywhere. */
WEFT_EXTERN int weft_stream_is_tls(const weft_stream_t *s);

/* What the handshake negotiated. Strings are static or held by the stream:
 * valid until the stream is freed. */
typedef struct weft_tls_info {
  int version;              /* WEFT_TLS_VERSION_1_2 / _1_3 */
  const char *version_name; /* "TLSv1.3" */
  const char *cipher;       /* IANA name, "TLS_AES_128_GCM_SHA256" */
  int cipher_bits;          /* secret bits of the cipher */
  const char *alpn;         /* the protocol chosen, "" for none */
  const char *server_name;  /* SNI: sent (client) or received (server);
                               "" for none */
  int resumed;              /* 1: the session was resumed */
  int peer_cert;            /* 1: the peer presented a certificate */
} weft_tls_info_t;

/* get_extra_info('cipher') and friends into *info. Returns 0, WEFT_ESTATE
 * (s is not TLS), WEFT_EINVAL. Callable from anywhere once the handshake
 * completed (the values do not change afterwards). */
WEFT_EXTERN int weft_stream_tls_info(const weft_stream_t *s,
                                     weft_tls_info_t *info);

/* A certificate, decoded (get_extra_info('peercert') plus the DER bytes). */
typedef struct weft_tls_cert {
  char *subject;        /* RFC 2253 ("CN=example.com,O=Example") */
  char *issuer;         /* RFC 2253 */
  char *serial;         /* hexadecimal */
  char **san;           /* subject alternative names: "DNS:example.com",
                           "IP:127.0.0.1", "email:...", "URI:..." */
  size_t nsan;          /* entries of san */
  int64_t not_before;   /* validity, seconds since the epoch (UTC) */
  int64_t not_after;    /* */
  unsigned char *der;   /* the certificate as sent (DER) */
  size_t der_len;       /* */
} weft_tls_cert_t;

/* The peer's certificate (the leaf), decoded into a new *out that the
 * caller frees with weft_tls_cert_free(). Returns 0, WEFT_ENOENT (the peer
 * sent none), WEFT_ESTATE (s is not TLS), WEFT_EINVAL, WEFT_ENOMEM.
 * Callable from anywhere once the handshake completed. */
WEFT_EXTERN int weft_stream_tls_peer_cert(const weft_stream_t *s,
                                          weft_tls_cert_t **out);

/* Free a certificate from weft_stream_tls_peer_cert(); NULL is ignored. */
WEFT_EXTERN void weft_tls_cert_free(weft_tls_cert_t *cert);

/* The OpenSSL SSL * of s (asyncio's ssl_object), for queries weft has no
 * call for; NULL if s is not TLS. Only read from it, from a task, and never
 * while another task is inside a call on s. */
WEFT_EXTERN void *weft_stream_tls_native(weft_stream_t *s);

/* Handshakes that failed on the server's connections so far (their
 * handlers never ran), or WEFT_EINVAL. Callable from anywhere; a
 * statistic. */
WEFT_EXTERN long weft_server_tls_failures(const weft_server_t *srv);

/* The reason behind the calling task's last TLS failure (a WEFT_ETLS_*
 * code, or WEFT_ETIMEDOUT during a handshake), as OpenSSL words it, with
 * the certificate-verification result where that was the cause:
 * "certificate verify failed: certificate has expired". Copied into
 * buf[cap] (truncated, always NUL-terminated); returns the full length, 0
 * if the task has had no TLS failure. From a task (WEFT_ENOTTASK
 * otherwise) or, for weft_tls_ctx_new() failures, from the same thread. */
WEFT_EXTERN int weft_tls_error_string(char *buf, size_t cap);

WEFT_END_DECLS

#endif /* WEFT_TLS_H */
