/*
 * tls_certs: throw-away certificates for the TLS tests, the interop scripts,
 * the demo and the benchmarks, made with libcrypto (OpenSSL 3) in C so that
 * nothing depends on the openssl command's options.
 *
 * tls_certs_make() writes a fresh set into a directory: a root CA, the
 * certificates it signs, and one of each kind of certificate that
 * verification must refuse. Every key is EC P-256. Every identity has three
 * files, named by its stem (tls_certs_stem()):
 *
 *   STEM.pem        the certificate (PEM)
 *   STEM.key        its private key (PKCS#8 PEM, unencrypted, mode 0600)
 *   STEM-chain.pem  the certificate followed by its intermediates (what a
 *                   server sends: leaf first, root CA left out)
 *
 * and the same three are kept in memory (tls_certs_cert_pem() and friends),
 * for the calls that take PEM rather than a path. The identities:
 *
 *   ca             root CA ("weft test root CA"), basicConstraints
 *                  CA:TRUE, keyUsage keyCertSign+cRLSign; valid from an
 *                  hour ago for ten years
 *   server         signed by ca; DNS:localhost, IP:127.0.0.1, IP:::1;
 *                  serverAuth; valid from an hour ago for a year
 *   wrong-host     signed by ca; DNS:wrong.weft.invalid only
 *   expired        signed by ca; localhost names; valid from 2 days ago
 *                  until 1 day ago
 *   not-yet-valid  signed by ca; localhost names; valid from 1 day ahead
 *   self-signed    localhost names, signed by its own key (no CA)
 *   other-ca       a second root CA, unrelated to ca
 *   untrusted      localhost names, signed by other-ca
 *   client         signed by ca; CN "weft test client", clientAuth;
 *                  email:client@weft.invalid (mutual TLS)
 *   inter          an intermediate CA signed by ca (pathlen 0)
 *   chained        localhost names, signed by inter: its -chain.pem is
 *                  chained + inter, the one file a server needs
 *
 * Also a directory of hashed CA certificates (c_rehash's layout: HASH.0)
 * holding the root CA, for the ca_dir option (tls_certs_ca_dir()).
 *
 * Not thread-safe per set; distinct sets may be made from several threads.
 */
#ifndef WEFT_TESTS_TLS_CERTS_H
#define WEFT_TESTS_TLS_CERTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum tls_cert_id {
  TLS_CERT_CA,
  TLS_CERT_SERVER,
  TLS_CERT_WRONG_HOST,
  TLS_CERT_EXPIRED,
  TLS_CERT_NOT_YET_VALID,
  TLS_CERT_SELF_SIGNED,
  TLS_CERT_OTHER_CA,
  TLS_CERT_UNTRUSTED,
  TLS_CERT_CLIENT,
  TLS_CERT_INTER,
  TLS_CERT_CHAINED,
  TLS_CERT_COUNT
} tls_cert_id_t;

/* Names the tests compare with what the accessors report. */
#define TLS_CERTS_ORG "weft tests"
#define TLS_CERTS_CA_CN "weft test root CA"
#define TLS_CERTS_SERVER_CN "localhost"
#define TLS_CERTS_CLIENT_CN "weft test client"
#define TLS_CERTS_CLIENT_EMAIL "client@weft.invalid"
#define TLS_CERTS_WRONG_HOST "wrong.weft.invalid"

typedef struct tls_certs tls_certs_t;

/* Make a fresh set. dir NULL: a new directory
 * $TMPDIR/weft-tls-XXXXXX (/tmp without TMPDIR), removed again by
 * tls_certs_free(). dir given: that directory (created if missing, one
 * level), whose files tls_certs_free() leaves in place. Returns 0 or -1 with
 * the reason on stderr. */
int tls_certs_make(const char *dir, tls_certs_t **out);

/* Free a set (NULL is ignored); removes its files if tls_certs_make() made
 * the directory. */
void tls_certs_free(tls_certs_t *c);

/* The directory, and the hashed CA directory in it (holds the root CA). */
const char *tls_certs_dir(const tls_certs_t *c);
const char *tls_certs_ca_dir(const tls_certs_t *c);

/* The identity's file stem ("server", "wrong-host"...). */
const char *tls_certs_stem(tls_cert_id_t id);

/* Paths of the identity's files (valid until tls_certs_free()). */
const char *tls_certs_cert_file(const tls_certs_t *c, tls_cert_id_t id);
const char *tls_certs_key_file(const tls_certs_t *c, tls_cert_id_t id);
const char *tls_certs_chain_file(const tls_certs_t *c, tls_cert_id_t id);

/* The same files' contents, NUL-terminated (valid until tls_certs_free()). */
const char *tls_certs_cert_pem(const tls_certs_t *c, tls_cert_id_t id);
const char *tls_certs_key_pem(const tls_certs_t *c, tls_cert_id_t id);
const char *tls_certs_chain_pem(const tls_certs_t *c, tls_cert_id_t id);

/* The certificate's DER bytes and their length (valid until
 * tls_certs_free()). */
const unsigned char *tls_certs_cert_der(const tls_certs_t *c, tls_cert_id_t id,
                                        size_t *len);

/* The certificate's validity, seconds since the epoch (UTC), as written
 * into it. */
void tls_certs_validity(const tls_certs_t *c, tls_cert_id_t id,
                        int64_t *not_before, int64_t *not_after);

/* The certificate's serial number as upper-case hexadecimal digits without
 * leading zeros (OpenSSL's BN_bn2hex form). */
const char *tls_certs_serial(const tls_certs_t *c, tls_cert_id_t id);

#endif /* WEFT_TESTS_TLS_CERTS_H */
