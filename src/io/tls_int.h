/*
 * TLS inside the I/O layer: the calls stream.c, connect.c and server.c make
 * into tls.c (tls_off.c when weft is built without OpenSSL: there no stream
 * ever has TLS, and these are never reached with s->tls set).
 *
 * Every call runs on the stream's home worker (io/home.c protocol), like
 * the rest of the stream: the SSL object, its BIO and the ciphertext
 * buffer are owner-only state of that worker. See tls.c for the data path.
 */
#ifndef WEFT_IO_TLS_INT_H
#define WEFT_IO_TLS_INT_H

#include "io/stream_int.h"

#include <weft/tls.h>

/* Make s a TLS stream (before it is handed out, or in start_tls): an SSL
 * object of tls->ctx on the side the context says, with `host` as the
 * server name of a client (tls->server_hostname wins over it). 0,
 * WEFT_EINVAL (a client without a name), WEFT_ENOMEM. */
int weft__tls_attach(weft_stream_t *s, const weft_stream_tls_opts_t *tls,
                     const char *host);

/* Run the handshake of an attached stream from task t (on home, entered):
 * 0 once done, the handshake's error, WEFT_ETIMEDOUT, WEFT_ECANCELED. The
 * caller aborts the stream on failure. */
int weft__tls_handshake(weft_stream_t *s, weft_task_t *t);

/* Reference counting of contexts (any thread). */
void weft__tls_ctx_ref(weft_tls_ctx_t *c);
void weft__tls_ctx_unref(weft_tls_ctx_t *c);

/* 1 if c is a server context (any thread). */
int weft__tls_ctx_is_server(const weft_tls_ctx_t *c);

/* Release the TLS state of s (stream_destroy); no-op without TLS. */
void weft__tls_free(weft_stream_t *s);

/* The reading side, for stream.c: where the socket's next bytes go, the
 * read callback, and the pump that decrypts into the stream's buffers.
 * weft__tls_pump returns 1 when the socket must not be read now. */
void weft__tls_cipher_space(weft_stream_t *s, char **base, size_t *len);
void weft__tls_on_read(weft_stream_t *s, ssize_t nread);
int weft__tls_pump(weft_stream_t *s);

/* write()/writev() of plaintext. */
int weft__tls_write(weft_stream_t *s, const uv_buf_t *bufs, unsigned nbufs,
                    size_t total);

/* close() or abort() began: a running handshake fails
 * (WEFT_ECONNABORTED); after one, close() queues close_notify. */
void weft__tls_on_close(weft_stream_t *s, int abort);
/* Queue close_notify (once, after a completed handshake). */
void weft__tls_close_notify(weft_stream_t *s);
/* close(): the queued data has the shutdown timeout to drain. */
void weft__tls_arm_shutdown(weft_stream_t *s);
/* The socket closes: close the TLS handles too. */
void weft__tls_close_handles(weft_stream_t *s);

#if defined(WEFT__TLS)
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

/* Client session cache: direct-mapped, one session per slot (tls_ctx.c). */
#define WEFT__TLS_CACHE_SLOTS 256

typedef struct weft__tls_cache_slot {
  char *key;             /* "server_name:port" */
  SSL_SESSION *sess;     /* the last resumable session for key */
} weft__tls_cache_slot_t;

/* A context (tls_ctx.c protocol): immutable after weft_tls_ctx_new except
 * `refs` (atomic) and the session cache (its mutex). */
struct weft_tls_ctx {
  atomic_int refs;          /* the program's + one per attached stream */
  SSL_CTX *ssl;             /* OpenSSL's context */
  int server;               /* 1: server side */
  int verify;               /* client: verify the peer's chain */
  int check_hostname;       /* client: and that it names the server */
  int allow_truncation;     /* EOF without close_notify = clean end */
  int tickets;              /* client: cache and offer sessions */
  int keylog_fd;            /* key-log file, or -1 */
  unsigned char *alpn;      /* server: its ALPN list, wire format */
  unsigned alpn_len;        /* */
  pthread_mutex_t cache_lock;
  weft__tls_cache_slot_t cache[WEFT__TLS_CACHE_SLOTS];
};


/* Client session cache: the session to offer for key (a new reference, or
 * NULL), and the store of a new one (takes the reference). */
SSL_SESSION *weft__tls_cache_get(weft_tls_ctx_t *c, const char *key);
void weft__tls_cache_put(weft_tls_ctx_t *c, const char *key,
                         SSL_SESSION *sess);

/* The SSL ex_data index holding the weft_stream_t of an SSL. */
int weft__tls_ssl_index(void);

/* OpenSSL's error queue (and the verification result of ssl, if any) as
 * one line in msg[cap]; returns the weft code that names the failure.
 * `fallback` is returned when nothing more specific is known. The queue is
 * left empty. */
int weft__tls_error(SSL *ssl, int fallback, char *msg, size_t cap);

/* OpenSSL's new-session callback of client contexts (tls.c). */
int weft__tls_on_new_session(SSL *ssl, SSL_SESSION *sess);
#endif

/* A stream call ends with rc: a TLS failure's reason becomes the calling
 * task's (weft_tls_error_string). */
void weft__tls_note(weft_stream_t *s, int rc);

/* Record the reason of a TLS failure for weft_tls_error_string() in the
 * calling task (or thread, outside tasks). */
void weft__tls_set_error(const char *msg);

#endif /* WEFT_IO_TLS_INT_H */
