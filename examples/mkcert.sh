#!/bin/sh
# examples/mkcert.sh DIR: make a throw-away private CA and a server
# certificate it signs, for the examples' TLS options, their tests and the
# demo, with the openssl command (Debian's `openssl` package). Writes into
# DIR (created if missing; existing files of these names are replaced):
#
#   ca.pem      the root CA ("weft examples CA"): what clients trust
#               (--ca-file ca.pem)
#   ca.key      its private key
#   server.pem  the server's certificate, signed by the CA, for DNS:localhost,
#               IP:127.0.0.1 and IP:::1 (--tls-cert server.pem)
#   server.key  its private key (--tls-key server.key)
#
# Keys are EC P-256, unencrypted, readable by the owner only; both
# certificates are valid from now for 30 days. Prints nothing; exit status 0,
# or 1 with openssl's messages on stderr.
set -eu
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: mkcert.sh DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
umask 077
log="$dir/mkcert.log"
ext="$dir/server.ext"
printf '%s\n' "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth" \
  "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >"$ext"
if ! {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 30 \
    -subj "/O=weft examples/CN=weft examples CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$dir/server.key" -out "$dir/server.csr" \
      -subj "/O=weft examples/CN=localhost" &&
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" \
      -CAkey "$dir/ca.key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom |
        tr -d ' \n')" -days 30 -extfile "$ext" -out "$dir/server.pem"
} >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log" "$ext" "$dir/server.csr"
  echo "mkcert.sh: openssl failed" >&2
  exit 1
fi
rm -f "$log" "$ext" "$dir/server.csr"
chmod 644 "$dir/ca.pem" "$dir/server.pem"
