#!/bin/sh
# site_tls_test.sh SITE: examples/site over https, against `openssl
# s_client` (a TLS client nobody here wrote). Makes a CA and a server
# certificate with mkcert.sh, starts site with them on a free port, then:
#  - a client trusting the CA and offering ALPN http/1.1 verifies the
#    certificate, gets http/1.1 selected and page 0 over HTTP/1.1;
#  - a client offering only h2 is refused (no protocol in common) and the
#    site keeps serving: a third client gets its page;
#  - curl --cacert (when installed) gets two pages over one kept-alive
#    http/1.1 TLS connection, and curl without the CA is refused;
# then stops site with SIGTERM: it exits 0 and counts the failed handshakes.
set -u
site=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT

sh "$here/mkcert.sh" "$dir/certs" || exit 1
"$site" --port 0 --workers 2 --pages 50 --quiet \
  --tls-cert "$dir/certs/server.pem" --tls-key "$dir/certs/server.key" \
  >"$dir/site.out" 2>"$dir/site.err" &
pid=$!
port=
i=0
while [ $i -lt 100 ]; do
  port=$(sed -n 's/^Serving on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$dir/site.out")
  [ -n "$port" ] && break
  if ! kill -0 $pid 2>/dev/null; then break; fi
  sleep 0.1
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "site did not start"; cat "$dir/site.out" "$dir/site.err"
  exit 1
fi

# get NAME ALPN: GET /page/0 with Connection: close through s_client,
# offering ALPN; its output in $dir/NAME.out; returns s_client's status.
# -ign_eof: read until the server closes (after its response).
get() {
  printf 'GET /page/0 HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" |
    timeout 30 openssl s_client -connect "127.0.0.1:$port" \
      -CAfile "$dir/certs/ca.pem" -verify_return_error -verify_ip 127.0.0.1 \
      -alpn "$2" -ign_eof >"$dir/$1.out" 2>&1
}

fail=0
get ok http/1.1 || { echo "s_client failed"; fail=1; }
grep -q '^ALPN protocol: http/1.1$' "$dir/ok.out" || { echo "no ALPN http/1.1"; fail=1; }
grep -q 'Verify return code: 0 (ok)' "$dir/ok.out" || { echo "not verified"; fail=1; }
grep -q '^HTTP/1.1 200 OK' "$dir/ok.out" || { echo "no 200"; fail=1; }
grep -q '<title>Page 0</title>' "$dir/ok.out" || { echo "not page 0"; fail=1; }
[ $fail = 0 ] || cat "$dir/ok.out"

if get h2 h2; then
  echo "a client offering only h2 got through"; cat "$dir/h2.out"; fail=1
fi
if grep -q '^HTTP/1.1' "$dir/h2.out" ||
  ! grep -q 'alert no application protocol' "$dir/h2.out"; then
  echo "a client offering only h2 was not refused with no_application_protocol"
  cat "$dir/h2.out"; fail=1
fi
get again http/1.1 || { echo "s_client failed after the refused one"; fail=1; }
grep -q '^HTTP/1.1 200 OK' "$dir/again.out" || { cat "$dir/again.out"; fail=1; }

# curl --cacert (another client nobody here wrote): verified, ALPN
# http/1.1, two pages over one kept-alive TLS connection.
if command -v curl >/dev/null 2>&1; then
  if timeout 30 curl -sS --fail --cacert "$dir/certs/ca.pem" -o "$dir/c0.html" \
      -o "$dir/c1.html" -w '%{http_version} %{num_connects}\n' \
      "https://127.0.0.1:$port/page/0" "https://127.0.0.1:$port/page/1" \
      >"$dir/curl.out" 2>&1; then
    grep -q '<title>Page 0</title>' "$dir/c0.html" &&
      grep -q '<title>Page 1</title>' "$dir/c1.html" ||
      { echo "curl: wrong pages"; fail=1; }
    grep -q '^1.1 1$' "$dir/curl.out" && grep -q '^1.1 0$' "$dir/curl.out" ||
      { echo "curl: not http/1.1 on one reused connection"; cat "$dir/curl.out"; fail=1; }
  else
    echo "curl --cacert failed"; cat "$dir/curl.out"; fail=1
  fi
  if timeout 30 curl -sS -o /dev/null "https://127.0.0.1:$port/page/0" \
      >"$dir/curl2.out" 2>&1; then
    echo "curl without the CA got through"; fail=1
  fi
else
  echo "site_tls_test: curl not installed, its check skipped"
fi

kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then
  echo "site did not exit on SIGTERM"; exit 1
fi
wait $pid || { echo "site exited with $?"; fail=1; }
pid=
echo "--- site --tls-cert server.pem --tls-key server.key (stopped with SIGTERM)"
cat "$dir/site.out" "$dir/site.err"
echo "--- openssl s_client -alpn http/1.1: the response's head"
sed -n '/^HTTP\/1.1/,/^\r*$/p' "$dir/ok.out"
# s_client offering h2 only, and curl without the CA (when curl ran).
want=1
command -v curl >/dev/null 2>&1 && want=2
grep -q "^TLS handshakes failed: $want\$" "$dir/site.out" || fail=1
exit $fail
