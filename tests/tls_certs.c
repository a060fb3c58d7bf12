/*
 * tls_certs: the TLS tests' certificate fixtures (tls_certs.h says what is
 * made). libcrypto only: EC P-256 keys from EVP_PKEY_Q_keygen(), X509
 * certificates with their validity as offsets from now, extensions through
 * X509V3_EXT_conf_nid(), signed with SHA-256.
 */
#include "tls_certs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DAY (24L * 3600L)
#define HOUR 3600L
#define LOCALHOST_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"

/* What each identity is. */
typedef struct spec {
  const char *stem;
  const char *cn;
  int issuer;       /* the signing identity; -1 = self-signed */
  int ca;           /* 1: a CA */
  long from, until; /* validity, seconds from now */
  const char *san;  /* subjectAltName value, NULL for none */
  const char *eku;  /* extendedKeyUsage, NULL for none */
} spec_t;

static const spec_t specs[TLS_CERT_COUNT] = {
    [TLS_CERT_CA] = {"ca", TLS_CERTS_CA_CN, -1, 1, -HOUR, 3650 * DAY, NULL,
                     NULL},
    [TLS_CERT_SERVER] = {"server", TLS_CERTS_SERVER_CN, TLS_CERT_CA, 0, -HOUR,
                         365 * DAY, LOCALHOST_SAN, "serverAuth"},
    [TLS_CERT_WRONG_HOST] = {"wrong-host", TLS_CERTS_WRONG_HOST, TLS_CERT_CA, 0,
                             -HOUR, 365 * DAY, "DNS:" TLS_CERTS_WRONG_HOST,
                             "serverAuth"},
    [TLS_CERT_EXPIRED] = {"expired", TLS_CERTS_SERVER_CN, TLS_CERT_CA, 0,
                          -2 * DAY, -DAY, LOCALHOST_SAN, "serverAuth"},
    [TLS_CERT_NOT_YET_VALID] = {"not-yet-valid", TLS_CERTS_SERVER_CN,
                                TLS_CERT_CA, 0, DAY, 2 * DAY, LOCALHOST_SAN,
                                "serverAuth"},
    [TLS_CERT_SELF_SIGNED] = {"self-signed", TLS_CERTS_SERVER_CN, -1, 0, -HOUR,
                              365 * DAY, LOCALHOST_SAN, "serverAuth"},
    [TLS_CERT_OTHER_CA] = {"other-ca", "weft unrelated root CA", -1, 1, -HOUR,
                           3650 * DAY, NULL, NULL},
    [TLS_CERT_UNTRUSTED] = {"untrusted", TLS_CERTS_SERVER_CN, TLS_CERT_OTHER_CA,
                            0, -HOUR, 365 * DAY, LOCALHOST_SAN, "serverAuth"},
    [TLS_CERT_CLIENT] = {"client", TLS_CERTS_CLIENT_CN, TLS_CERT_CA, 0, -HOUR,
                         365 * DAY, "email:" TLS_CERTS_CLIENT_EMAIL,
                         "clientAuth"},
    [TLS_CERT_INTER] = {"inter", "weft test intermediate CA", TLS_CERT_CA, 1,
                        -HOUR, 3650 * DAY, NULL, NULL},
    [TLS_CERT_CHAINED] = {"chained", TLS_CERTS_SERVER_CN, TLS_CERT_INTER, 0,
                          -HOUR, 365 * DAY, LOCALHOST_SAN, "serverAuth"},
};

typedef struct ident {
  EVP_PKEY *key;
  X509 *cert;
  char *cert_file, *key_file, *chain_file;
  char *cert_pem, *key_pem, *chain_pem;
  unsigned char *der;
  size_t der_len;
  int64_t not_before, not_after;
  char *serial;
} ident_t;

struct tls_certs {
  char dir[3072];
  char ca_dir[3072 + 8];           /* dir + "/ca-dir" */
  char ca_dir_file[3072 + 8 + 20]; /* ca_dir + "/HASH.0" */
  int owns_dir;
  ident_t id[TLS_CERT_COUNT];
};

static int fail(const char *what) {
  unsigned long e = ERR_get_error();
  char buf[256];

  buf[0] = '\0';
  if (e != 0)
    ERR_error_string_n(e, buf, sizeof buf);
  fprintf(stderr, "tls_certs: %s failed%s%s\n", what, buf[0] ? ": " : "", buf);
  ERR_clear_error();
  return -1;
}

static char *path_join(const char *dir, const char *name, const char *suffix) {
  size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
  char *p = malloc(n);

  if (p != NULL)
    snprintf(p, n, "%s/%s%s", dir, name, suffix);
  return p;
}

/* The contents of a memory BIO as a NUL-terminated string. */
static char *bio_string(BIO *b) {
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *s;

  if (n < 0)
    return NULL;
  s = malloc((size_t)n + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, data, (size_t)n);
  s[n] = '\0';
  return s;
}

static int write_file(const char *path, const char *data, mode_t mode) {
  FILE *f;
  size_t n = strlen(data);
  int fd;

  (void)unlink(path);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
    fprintf(stderr, "tls_certs: %s: %s\n", path, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if (fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "tls_certs: writing %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509_EXTENSION *ext;
  int ok;

  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (ext == NULL)
    return fail(OBJ_nid2sn(nid));
  ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : fail("X509_add_ext");
}

/* t as seconds since the epoch (timegm() is not POSIX: count from an
 * ASN1_TIME of 0 instead). */
static int64_t asn1_time_epoch(const ASN1_TIME *t) {
  ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
  int days = 0, secs = 0;
  int ok = epoch != NULL && ASN1_TIME_diff(&days, &secs, epoch, t);

  ASN1_TIME_free(epoch);
  return ok ? (int64_t)days * DAY + secs : -1;
}

/* Make identity i (its issuer is made already: specs are in issuing order). */
static int make_ident(tls_certs_t *c, int i) {
  const spec_t *sp = &specs[i];
  ident_t *me = &c->id[i];
  ident_t *iss = sp->issuer >= 0 ? &c->id[sp->issuer] : me;
  X509_NAME *name;
  BIGNUM *bn = NULL;
  unsigned char rnd[8];
  char bc[64];
  int rc = -1;

  me->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (me->key == NULL)
    return fail("EVP_PKEY_Q_keygen");
  me->cert = X509_new();
  if (me->cert == NULL || !X509_set_version(me->cert, 2))
    return fail("X509_new");

  /* A random positive 63-bit serial, never zero. */
  if (RAND_bytes(rnd, sizeof rnd) != 1)
    return fail("RAND_bytes");
  rnd[0] = (unsigned char)((rnd[0] & 0x7f) | 0x10);
  bn = BN_bin2bn(rnd, sizeof rnd, NULL);
  if (bn == NULL ||
      BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(me->cert)) == NULL) {
    BN_free(bn);
    return fail("serial");
  }
  me->serial = BN_bn2hex(bn);
  BN_free(bn);
  if (me->serial == NULL)
    return fail("BN_bn2hex");

  if (X509_gmtime_adj(X509_getm_notBefore(me->cert), sp->from) == NULL ||
      X509_gmtime_adj(X509_getm_notAfter(me->cert), sp->until) == NULL)
    return fail("X509_gmtime_adj");
  me->not_before = asn1_time_epoch(X509_get0_notBefore(me->cert));
  me->not_after = asn1_time_epoch(X509_get0_notAfter(me->cert));

  name = X509_get_subject_name(me->cert);
  if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                  (const unsigned char *)TLS_CERTS_ORG, -1, -1,
                                  0) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                  (const unsigned char *)sp->cn, -1, -1, 0))
    return fail("X509_NAME_add_entry_by_txt");
  if (!X509_set_issuer_name(me->cert, X509_get_subject_name(iss->cert)))
    return fail("X509_set_issuer_name");
  if (!X509_set_pubkey(me->cert, me->key))
    return fail("X509_set_pubkey");

  /* An intermediate CA may sign only leaves (pathlen 0). */
  snprintf(bc, sizeof bc, "critical,CA:%s",
           !sp->ca           ? "FALSE"
           : sp->issuer >= 0 ? "TRUE,pathlen:0"
                             : "TRUE");
  if (add_ext(me->cert, iss->cert, NID_basic_constraints, bc) != 0 ||
      add_ext(me->cert, iss->cert, NID_key_usage,
              sp->ca ? "critical,keyCertSign,cRLSign"
                     : "critical,digitalSignature") != 0 ||
      add_ext(me->cert, iss->cert, NID_subject_key_identifier, "hash") != 0)
    return -1;
  /* The authority key identifier refers to the issuer's subject key
   * identifier, which a self-signed certificate has only now. */
  if (add_ext(me->cert, iss->cert, NID_authority_key_identifier,
              "keyid:always") != 0)
    return -1;
  if (sp->eku != NULL &&
      add_ext(me->cert, iss->cert, NID_ext_key_usage, sp->eku) != 0)
    return -1;
  if (sp->san != NULL &&
      add_ext(me->cert, iss->cert, NID_subject_alt_name, sp->san) != 0)
    return -1;

  if (X509_sign(me->cert, iss->key, EVP_sha256()) <= 0)
    return fail("X509_sign");

  {
    int n = i2d_X509(me->cert, NULL);
    unsigned char *p;

    if (n <= 0 || (me->der = malloc((size_t)n)) == NULL)
      return fail("i2d_X509");
    p = me->der;
    i2d_X509(me->cert, &p);
    me->der_len = (size_t)n;
  }

  /* PEM: the certificate, the key, the chain (leaf, then every issuer that
   * is not a self-signed root). */
  {
    BIO *cb = BIO_new(BIO_s_mem());
    BIO *kb = BIO_new(BIO_s_mem());
    BIO *chb = BIO_new(BIO_s_mem());
    int j;

    if (cb == NULL || kb == NULL || chb == NULL)
      goto bio_out;
    if (!PEM_write_bio_X509(cb, me->cert) ||
        !PEM_write_bio_PrivateKey(kb, me->key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509(chb, me->cert)) {
      fail("PEM_write");
      goto bio_out;
    }
    for (j = specs[i].issuer; j >= 0 && specs[j].issuer >= 0;
         j = specs[j].issuer) {
      if (!PEM_write_bio_X509(chb, c->id[j].cert)) {
        fail("PEM_write_bio_X509");
        goto bio_out;
      }
    }
    me->cert_pem = bio_string(cb);
    me->key_pem = bio_string(kb);
    me->chain_pem = bio_string(chb);
    if (me->cert_pem != NULL && me->key_pem != NULL && me->chain_pem != NULL)
      rc = 0;
  bio_out:
    BIO_free(cb);
    BIO_free(kb);
    BIO_free(chb);
  }
  if (rc != 0)
    return -1;

  me->cert_file = path_join(c->dir, sp->stem, ".pem");
  me->key_file = path_join(c->dir, sp->stem, ".key");
  me->chain_file = path_join(c->dir, sp->stem, "-chain.pem");
  if (me->cert_file == NULL || me->key_file == NULL || me->chain_file == NULL)
    return -1;
  if (write_file(me->cert_file, me->cert_pem, 0644) != 0 ||
      write_file(me->key_file, me->key_pem, 0600) != 0 ||
      write_file(me->chain_file, me->chain_pem, 0644) != 0)
    return -1;
  return 0;
}

int tls_certs_make(const char *dir, tls_certs_t **out) {
  tls_certs_t *c;
  int i;

  *out = NULL;
  c = calloc(1, sizeof *c);
  if (c == NULL)
    return -1;
  if (dir == NULL) {
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || tmp[0] == '\0')
      tmp = "/tmp";
    snprintf(c->dir, sizeof c->dir, "%s/weft-tls-XXXXXX", tmp);
    if (mkdtemp(c->dir) == NULL) {
      fprintf(stderr, "tls_certs: mkdtemp %s: %s\n", c->dir, strerror(errno));
      free(c);
      return -1;
    }
    c->owns_dir = 1;
  } else {
    if (strlen(dir) >= sizeof c->dir) {
      fprintf(stderr, "tls_certs: %s: path too long\n", dir);
      free(c);
      return -1;
    }
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    if (mkdir(c->dir, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "tls_certs: mkdir %s: %s\n", c->dir, strerror(errno));
      free(c);
      return -1;
    }
  }
  snprintf(c->ca_dir, sizeof c->ca_dir, "%s/ca-dir", c->dir);

  for (i = 0; i < TLS_CERT_COUNT; i++) {
    if (specs[i].issuer >= i) {
      fprintf(stderr, "tls_certs: %s is listed before its issuer\n",
              specs[i].stem);
      goto fail;
    }
    if (make_ident(c, i) != 0)
      goto fail;
  }

  /* The hashed CA directory: HASH.0 -> the root CA (c_rehash's layout). */
  if (mkdir(c->ca_dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "tls_certs: mkdir %s: %s\n", c->ca_dir, strerror(errno));
    goto fail;
  }
  snprintf(c->ca_dir_file, sizeof c->ca_dir_file, "%s/%08lx.0", c->ca_dir,
           X509_subject_name_hash(c->id[TLS_CERT_CA].cert));
  if (write_file(c->ca_dir_file, c->id[TLS_CERT_CA].cert_pem, 0644) != 0)
    goto fail;
  *out = c;
  return 0;

fail:
  tls_certs_free(c);
  return -1;
}

void tls_certs_free(tls_certs_t *c) {
  int i;

  if (c == NULL)
    return;
  for (i = 0; i < TLS_CERT_COUNT; i++) {
    ident_t *me = &c->id[i];

    if (c->owns_dir) {
      if (me->cert_file != NULL)
        (void)unlink(me->cert_file);
      if (me->key_file != NULL)
        (void)unlink(me->key_file);
      if (me->chain_file != NULL)
        (void)unlink(me->chain_file);
    }
    EVP_PKEY_free(me->key);
    X509_free(me->cert);
    free(me->cert_file);
    free(me->key_file);
    free(me->chain_file);
    free(me->cert_pem);
    free(me->key_pem);
    free(me->chain_pem);
    free(me->der);
    OPENSSL_free(me->serial);
  }
  if (c->owns_dir) {
    if (c->ca_dir_file[0] != '\0')
      (void)unlink(c->ca_dir_file);
    (void)rmdir(c->ca_dir);
    (void)rmdir(c->dir);
  }
  free(c);
}

const char *tls_certs_dir(const tls_certs_t *c) { return c->dir; }
const char *tls_certs_ca_dir(const tls_certs_t *c) { return c->ca_dir; }

const char *tls_certs_stem(tls_cert_id_t id) {
  return (unsigned)id < TLS_CERT_COUNT ? specs[id].stem : NULL;
}

const char *tls_certs_cert_file(const tls_certs_t *c, tls_cert_id_t id) {
  return c->id[id].cert_file;
}
const char *tls_certs_key_file(const tls_certs_t *c, tls_cert_id_t id) {
  return c->id[id].key_file;
}
const char *tls_certs_chain_file(const tls_certs_t *c, tls_cert_id_t id) {
  return c->id[id].chain_file;
}
const char *tls_certs_cert_pem(const tls_certs_t *c, tls_cert_id_t id) {
  return c->id[id].cert_pem;
}
const char *tls_certs_key_pem(const tls_certs_t *c, tls_cert_id_t id) {
  return c->id[id].key_pem;
}
const char *tls_certs_chain_pem(const tls_certs_t *c, tls_cert_id_t id) {
  return c->id[id].chain_pem;
}

const unsigned char *tls_certs_cert_der(const tls_certs_t *c, tls_cert_id_t id,
                                        size_t *len) {
  if (len != NULL)
    *len = c->id[id].der_len;
  return c->id[id].der;
}

void tls_certs_validity(const tls_certs_t *c, tls_cert_id_t id,
                        int64_t *not_before, int64_t *not_after) {
  *not_before = c->id[id].not_before;
  *not_after = c->id[id].not_after;
}

const char *tls_certs_serial(const tls_certs_t *c, tls_cert_id_t id) {
  return c->id[id].serial;
}
