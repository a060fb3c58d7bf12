/*
 * weft-mkcert DIR: write the TLS test certificates (tests/tls_certs.h lists
 * them) into DIR, for the scripts that need a private CA: the demo, the
 * interop scripts, the benchmarks. DIR is created if missing (one level);
 * existing files of the same names are replaced. Prints the paths of the
 * root CA and of the server's certificate and key, one "name path" a line.
 * Exit status 0, or 1 with the reason on stderr, 2 on a usage error.
 */
#include "tls_certs.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  tls_certs_t *c;

  if (argc != 2 || argv[1][0] == '\0' || strcmp(argv[1], "--help") == 0) {
    fprintf(stderr, "usage: weft-mkcert DIR\n"
                    "writes a test root CA (ca.pem, ca.key), a server "
                    "certificate for localhost,\n127.0.0.1 and ::1 "
                    "(server.pem, server.key, server-chain.pem), a client\n"
                    "certificate (client.pem, client.key) and the "
                    "certificates verification must\nrefuse into DIR\n");
    return 2;
  }
  if (tls_certs_make(argv[1], &c) != 0)
    return 1;
  printf("ca %s\n", tls_certs_cert_file(c, TLS_CERT_CA));
  printf("cert %s\n", tls_certs_chain_file(c, TLS_CERT_SERVER));
  printf("key %s\n", tls_certs_key_file(c, TLS_CERT_SERVER));
  printf("client-cert %s\n", tls_certs_cert_file(c, TLS_CERT_CLIENT));
  printf("client-key %s\n", tls_certs_key_file(c, TLS_CERT_CLIENT));
  tls_certs_free(c);
  return 0;
}
