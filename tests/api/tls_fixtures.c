/*
 * api_tls_fixtures: the TLS tests' certificates (tests/tls_certs.h) are what
 * they claim, checked with OpenSSL's own verifier, so that a TLS test that
 * fails on one of them fails because of weft: each chain verifies or fails
 * with the verifier's own reason (expired, not yet valid, self-signed,
 * unknown issuer), each name check passes or fails as intended, every key
 * matches its certificate, the files equal the PEM in memory, the hashed CA
 * directory works, and a set made in a temporary directory leaves nothing
 * behind.
 */
#include "harness.h"
#include "tls_certs.h"

#include <dirent.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

static X509 *load_pem(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

  BIO_free(b);
  return x;
}

/* The whole chain PEM as a stack (leaf first). */
static STACK_OF(X509) * load_chain(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  STACK_OF(X509) *sk = sk_X509_new_null();
  X509 *x;

  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
    sk_X509_push(sk, x);
  ERR_clear_error();
  BIO_free(b);
  return sk;
}

/* Verify id's chain file against the root CA (from a file or the hashed
 * directory) as a TLS client would, checking host (NULL: no name check) or
 * ip; returns the verifier's result (X509_V_OK...). */
static int verify(const tls_certs_t *c, tls_cert_id_t id, int use_dir,
                  const char *host, const char *ip, int purpose) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  STACK_OF(X509) *chain = load_chain(tls_certs_chain_pem(c, id));
  X509 *leaf = sk_X509_shift(chain);
  X509_VERIFY_PARAM *param;
  int rc;

  assert_non_null(leaf);
  if (use_dir)
    assert_int_equal(X509_STORE_load_path(store, tls_certs_ca_dir(c)), 1);
  else
    assert_int_equal(
        X509_STORE_load_file(store, tls_certs_cert_file(c, TLS_CERT_CA)), 1);
  assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
  param = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(param, purpose);
  if (host != NULL)
    X509_VERIFY_PARAM_set1_host(param, host, 0);
  if (ip != NULL)
    X509_VERIFY_PARAM_set1_ip_asc(param, ip);
  rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(leaf);
  sk_X509_pop_free(chain, X509_free);
  return rc;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;

  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  rewind(f);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static void test_chains(void **state) {
  tls_certs_t *c;
  const int server = X509_PURPOSE_SSL_SERVER;

  (void)state;
  assert_int_equal(tls_certs_make(NULL, &c), 0);
  for (int dir = 0; dir < 2; dir++) {
    assert_int_equal(verify(c, TLS_CERT_SERVER, dir, "localhost", NULL, server),
                     X509_V_OK);
    assert_int_equal(verify(c, TLS_CERT_SERVER, dir, NULL, "127.0.0.1", server),
                     X509_V_OK);
    assert_int_equal(verify(c, TLS_CERT_SERVER, dir, NULL, "::1", server),
                     X509_V_OK);
    assert_int_equal(
        verify(c, TLS_CERT_SERVER, dir, "example.com", NULL, server),
        X509_V_ERR_HOSTNAME_MISMATCH);
    assert_int_equal(verify(c, TLS_CERT_SERVER, dir, NULL, "127.0.0.2", server),
                     X509_V_ERR_IP_ADDRESS_MISMATCH);
    assert_int_equal(
        verify(c, TLS_CERT_CHAINED, dir, "localhost", NULL, server), X509_V_OK);
    assert_int_equal(
        verify(c, TLS_CERT_WRONG_HOST, dir, "localhost", NULL, server),
        X509_V_ERR_HOSTNAME_MISMATCH);
    assert_int_equal(
        verify(c, TLS_CERT_WRONG_HOST, dir, TLS_CERTS_WRONG_HOST, NULL, server),
        X509_V_OK);
    assert_int_equal(
        verify(c, TLS_CERT_EXPIRED, dir, "localhost", NULL, server),
        X509_V_ERR_CERT_HAS_EXPIRED);
    assert_int_equal(
        verify(c, TLS_CERT_NOT_YET_VALID, dir, "localhost", NULL, server),
        X509_V_ERR_CERT_NOT_YET_VALID);
    assert_int_equal(
        verify(c, TLS_CERT_SELF_SIGNED, dir, "localhost", NULL, server),
        X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
    assert_int_equal(
        verify(c, TLS_CERT_UNTRUSTED, dir, "localhost", NULL, server),
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* The client certificate is for clients only. */
    assert_int_equal(
        verify(c, TLS_CERT_CLIENT, dir, NULL, NULL, X509_PURPOSE_SSL_CLIENT),
        X509_V_OK);
    assert_int_equal(verify(c, TLS_CERT_CLIENT, dir, NULL, NULL, server),
                     X509_V_ERR_INVALID_PURPOSE);
  }
  /* The chained leaf needs its intermediate: the chain file has it, the
   * bare certificate does not. */
  {
    STACK_OF(X509) *sk = load_chain(tls_certs_chain_pem(c, TLS_CERT_CHAINED));
    assert_int_equal(sk_X509_num(sk), 2);
    sk_X509_pop_free(sk, X509_free);
    sk = load_chain(tls_certs_chain_pem(c, TLS_CERT_SERVER));
    assert_int_equal(sk_X509_num(sk), 1); /* the root is left out */
    sk_X509_pop_free(sk, X509_free);
  }
  tls_certs_free(c);
}

static void test_contents(void **state) {
  tls_certs_t *c;
  char dir[4096];
  struct stat st;

  (void)state;
  assert_int_equal(tls_certs_make(NULL, &c), 0);
  snprintf(dir, sizeof dir, "%s", tls_certs_dir(c));
  for (int i = 0; i < TLS_CERT_COUNT; i++) {
    X509 *x = load_pem(tls_certs_cert_pem(c, (tls_cert_id_t)i));
    BIO *kb = BIO_new_mem_buf(tls_certs_key_pem(c, (tls_cert_id_t)i), -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    const unsigned char *der, *p;
    size_t der_len;
    X509 *fromder;
    int64_t nb, na;
    char *file;

    assert_non_null(x);
    assert_non_null(k);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_int_equal(EVP_PKEY_get_bits(k), 256);
    der = tls_certs_cert_der(c, (tls_cert_id_t)i, &der_len);
    p = der;
    fromder = d2i_X509(NULL, &p, (long)der_len);
    assert_non_null(fromder);
    assert_int_equal(X509_cmp(x, fromder), 0);
    tls_certs_validity(c, (tls_cert_id_t)i, &nb, &na);
    assert_true(nb < na);
    {
      time_t before = (time_t)nb - 1, after = (time_t)nb + 1;
      /* notBefore lies between nb - 1 and nb + 1. */
      assert_int_equal(X509_cmp_time(X509_get0_notBefore(x), &before), 1);
      assert_int_equal(X509_cmp_time(X509_get0_notBefore(x), &after), -1);
    }
    {
      BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
      char *hex = BN_bn2hex(bn);
      assert_string_equal(hex, tls_certs_serial(c, (tls_cert_id_t)i));
      OPENSSL_free(hex);
      BN_free(bn);
    }
    /* Files equal memory; keys are private to the user. */
    file = slurp(tls_certs_cert_file(c, (tls_cert_id_t)i));
    assert_string_equal(file, tls_certs_cert_pem(c, (tls_cert_id_t)i));
    free(file);
    file = slurp(tls_certs_key_file(c, (tls_cert_id_t)i));
    assert_string_equal(file, tls_certs_key_pem(c, (tls_cert_id_t)i));
    free(file);
    file = slurp(tls_certs_chain_file(c, (tls_cert_id_t)i));
    assert_string_equal(file, tls_certs_chain_pem(c, (tls_cert_id_t)i));
    free(file);
    assert_int_equal(stat(tls_certs_key_file(c, (tls_cert_id_t)i), &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    /* CAs are CAs, leaves are not. */
    assert_int_equal(X509_check_ca(x) != 0, i == TLS_CERT_CA ||
                                                i == TLS_CERT_OTHER_CA ||
                                                i == TLS_CERT_INTER);
    EVP_PKEY_free(k);
    BIO_free(kb);
    X509_free(x);
    X509_free(fromder);
  }
  /* The expired one is in the past, the not-yet-valid one in the future. */
  {
    int64_t nb, na, now = (int64_t)time(NULL);
    tls_certs_validity(c, TLS_CERT_EXPIRED, &nb, &na);
    assert_true(na < now);
    tls_certs_validity(c, TLS_CERT_NOT_YET_VALID, &nb, &na);
    assert_true(nb > now);
    tls_certs_validity(c, TLS_CERT_SERVER, &nb, &na);
    assert_true(nb < now && now < na);
  }
  /* The client certificate's name and e-mail address. */
  {
    X509 *x = load_pem(tls_certs_cert_pem(c, TLS_CERT_CLIENT));
    assert_int_equal(X509_check_email(x, TLS_CERTS_CLIENT_EMAIL, 0, 0), 1);
    X509_free(x);
  }
  tls_certs_free(c);
  assert_int_equal(stat(dir, &st), -1); /* removed, with its files */
}

/* rm -r path (files and directories of files only). */
static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  struct dirent *e;
  char sub[4096];
  struct stat st;

  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    assert_int_equal(lstat(sub, &st), 0);
    if (S_ISDIR(st.st_mode))
      remove_tree(sub);
    else
      assert_int_equal(unlink(sub), 0);
  }
  closedir(d);
  assert_int_equal(rmdir(path), 0);
}

/* A set made into a named directory stays there; a second one replaces
 * the first's files. */
static void test_named_dir(void **state) {
  tls_certs_t *a, *b, *tmp;
  char path[4096];
  char *before, *after;
  struct stat st;

  (void)state;
  assert_int_equal(tls_certs_make(NULL, &tmp), 0);
  snprintf(path, sizeof path, "%s/sub", tls_certs_dir(tmp));
  assert_int_equal(tls_certs_make(path, &a), 0);
  before = slurp(tls_certs_cert_file(a, TLS_CERT_CA));
  assert_int_equal(tls_certs_make(path, &b), 0);
  after = slurp(tls_certs_cert_file(b, TLS_CERT_CA));
  assert_string_not_equal(before, after);
  tls_certs_free(a);
  tls_certs_free(b);
  assert_int_equal(stat(tls_certs_cert_file(tmp, TLS_CERT_CA), &st), 0);
  snprintf(path, sizeof path, "%s/sub/ca.pem", tls_certs_dir(tmp));
  assert_int_equal(stat(path, &st), 0);
  free(before);
  free(after);
  /* Clean the named directory by hand (tls_certs_free leaves it), then
   * the temporary one goes. */
  snprintf(path, sizeof path, "%s/sub", tls_certs_dir(tmp));
  remove_tree(path);
  snprintf(path, sizeof path, "%s", tls_certs_dir(tmp));
  tls_certs_free(tmp);
  assert_int_equal(stat(path, &st), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chains),
      cmocka_unit_test(test_contents),
      cmocka_unit_test(test_named_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
