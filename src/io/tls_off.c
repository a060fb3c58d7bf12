/*
 * weft built without TLS (WEFT_TLS=OFF, or OpenSSL 3 not found): the TLS
 * calls of weft/tls.h report WEFT_ENOSYS, and no stream ever gets TLS
 * state, so stream.c's TLS branches (taken only when s->tls is set) never
 * reach the internal calls below.
 */
#include "io/tls_int.h"

#include <stdlib.h>
#include <string.h>

void weft_tls_opts_init(weft_tls_opts_t *opts) {
  if (opts)
    memset(opts, 0, sizeof(*opts));
}

int weft_tls_available(void) { return 0; }

int weft_tls_ctx_new(const weft_tls_opts_t *opts, weft_tls_ctx_t **out) {
  (void)opts;
  if (!out)
    return WEFT_EINVAL;
  *out = NULL;
  return WEFT_ENOSYS;
}

void weft_tls_ctx_free(weft_tls_ctx_t *ctx) { (void)ctx; }

void *weft_tls_ctx_native(weft_tls_ctx_t *ctx) {
  (void)ctx;
  return NULL;
}

int weft_stream_start_tls(weft_stream_t *s, const weft_stream_tls_opts_t *tls) {
  (void)tls;
  return s ? WEFT_ENOSYS : WEFT_EINVAL;
}

int weft_stream_is_tls(const weft_stream_t *s) { return s ? 0 : WEFT_EINVAL; }

int weft_stream_tls_info(const weft_stream_t *s, weft_tls_info_t *info) {
  return s && info ? WEFT_ESTATE : WEFT_EINVAL;
}

int weft_stream_tls_peer_cert(const weft_stream_t *s, weft_tls_cert_t **out) {
  if (out)
    *out = NULL;
  return s && out ? WEFT_ESTATE : WEFT_EINVAL;
}

void weft_tls_cert_free(weft_tls_cert_t *cert) { (void)cert; }

void *weft_stream_tls_native(weft_stream_t *s) {
  (void)s;
  return NULL;
}

int weft_tls_error_string(char *buf, size_t cap) {
  if (buf && cap)
    buf[0] = 0;
  return 0;
}

/* Unreachable without TLS state (see above). */
void weft__tls_ctx_ref(weft_tls_ctx_t *c) { (void)c; }
void weft__tls_ctx_unref(weft_tls_ctx_t *c) { (void)c; }
int weft__tls_ctx_is_server(const weft_tls_ctx_t *c) {
  (void)c;
  return 0;
}
int weft__tls_attach(weft_stream_t *s, const weft_stream_tls_opts_t *tls,
                     const char *host) {
  (void)s;
  (void)tls;
  (void)host;
  return WEFT_ENOSYS;
}
int weft__tls_handshake(weft_stream_t *s, weft_task_t *t) {
  (void)s;
  (void)t;
  return WEFT_ENOSYS;
}
void weft__tls_free(weft_stream_t *s) { (void)s; }
void weft__tls_cipher_space(weft_stream_t *s, char **base, size_t *len) {
  (void)s;
  *base = NULL;
  *len = 0;
}
void weft__tls_on_read(weft_stream_t *s, ssize_t nread) {
  (void)s;
  (void)nread;
}
int weft__tls_pump(weft_stream_t *s) {
  (void)s;
  return 0;
}
int weft__tls_write(weft_stream_t *s, const uv_buf_t *bufs, unsigned nbufs,
                    size_t total) {
  (void)s;
  (void)bufs;
  (void)nbufs;
  (void)total;
  return WEFT_ENOSYS;
}
void weft__tls_close_notify(weft_stream_t *s) { (void)s; }
void weft__tls_on_close(weft_stream_t *s, int abort) {
  (void)s;
  (void)abort;
}
void weft__tls_arm_shutdown(weft_stream_t *s) { (void)s; }
void weft__tls_close_handles(weft_stream_t *s) { (void)s; }
void weft__tls_note(weft_stream_t *s, int rc) {
  (void)s;
  (void)rc;
}
void weft__tls_set_error(const char *msg) { (void)msg; }
