#!/bin/sh
# echo_test.sh SERVER CLIENT [TLS]: start echo_server on a free port, run
# echo_client against it, check both outputs, stop the server with SIGTERM
# and check that it exits 0 after printing its per-worker counts.
# TLS 1 (weft built with TLS) runs the same over TLS afterwards, with a CA
# and a server certificate made at start by examples/mkcert.sh: a client
# that trusts the CA (--ca-file) is echoed; one that does not, and one that
# expects another name, fail with their own reasons, and the server counts
# their two failed handshakes.
# ECHO_TEST_SLOW=N multiplies the waits for the server's start (10 s) and
# exit (20 s): tests/valgrind runs both programs under memcheck.
set -u
slow=${ECHO_TEST_SLOW:-1}
server=$1
client=$2
tls=${3:-0}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
pid=
# On any exit: stop a server still running, remove the files.
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT

# start NAME ARGS...: start echo_server with ARGS, its output in
# $dir/NAME.out and .err; sets pid and port, or exits 1.
start() {
  name=$1
  shift
  "$server" --port 0 --workers 2 "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
  pid=$!
  port=
  i=0
  while [ $i -lt $((100 * slow)) ]; do
    port=$(sed -n 's/^Serving on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$dir/$name.out")
    [ -n "$port" ] && break
    if ! kill -0 $pid 2>/dev/null; then break; fi
    sleep 0.1
    i=$((i + 1))
  done
  if [ -z "$port" ]; then
    echo "echo_server did not start"; cat "$dir/$name.out" "$dir/$name.err"
    exit 1
  fi
}

# stop NAME: SIGTERM, then it must exit 0 within 20 s (times ECHO_TEST_SLOW);
# sets fail if not.
stop() {
  kill -TERM $pid
  i=0
  while kill -0 $pid 2>/dev/null && [ $i -lt $((200 * slow)) ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 $pid 2>/dev/null; then
    echo "echo_server did not exit on SIGTERM"; exit 1
  fi
  wait $pid || { echo "echo_server exited with $?"; fail=1; }
  pid=
}

# connections NAME: the server's accepted connections, all workers.
connections() {
  sed -n 's/^worker [0-9]*: \([0-9]*\) connections$/\1/p' "$dir/$1.out" |
    awk '{s+=$1} END {print s}'
}

fail=0
start server
"$client" --port "$port" "Hello World!" >"$dir/client.out" || fail=1
printf "Send: 'Hello World!'\nReceived: 'Hello World!'\nClose the connection\n" >"$dir/want"
if ! cmp -s "$dir/want" "$dir/client.out"; then
  echo "unexpected client output:"; cat "$dir/client.out"; fail=1
fi
# A second client, with a message asyncio's repr() quotes differently.
"$client" --port "$port" "it's" >"$dir/client2.out" || fail=1
grep -qx "Received: \"it's\"" "$dir/client2.out" || { cat "$dir/client2.out"; fail=1; }
stop server
echo "--- echo_client --port $port 'Hello World!'"
cat "$dir/client.out"
echo "--- echo_client --port $port \"it's\""
cat "$dir/client2.out"
echo "--- echo_server --port 0 --workers 2 (stopped with SIGTERM)"
cat "$dir/server.out"
cat "$dir/server.err" >&2
grep -q "^Received 'Hello World!' from ('127.0.0.1', [0-9]*)$" "$dir/server.out" || fail=1
grep -q "^Close the connection$" "$dir/server.out" || fail=1
grep -q "^worker 0: [0-9]* connections$" "$dir/server.out" || fail=1
grep -q "^worker 1: [0-9]* connections$" "$dir/server.out" || fail=1
total=$(connections server)
[ "$total" = 2 ] || { echo "expected 2 connections in all, got $total"; fail=1; }

[ "$tls" = 1 ] || exit $fail

# ---- the same over TLS -------------------------------------------------------
sh "$here/mkcert.sh" "$dir/certs" || exit 1
start tls --tls-cert "$dir/certs/server.pem" --tls-key "$dir/certs/server.key"
"$client" --port "$port" --tls --ca-file "$dir/certs/ca.pem" "Hello TLS!" \
  >"$dir/tls-client.out" || fail=1
printf "Send: 'Hello TLS!'\nReceived: 'Hello TLS!'\nClose the connection\n" >"$dir/want"
if ! grep -q '^TLS: TLSv1\.[23] [A-Z0-9_-]*$' "$dir/tls-client.out" ||
  ! sed 1d "$dir/tls-client.out" | cmp -s "$dir/want" -; then
  echo "unexpected client output over TLS:"; cat "$dir/tls-client.out"; fail=1
fi
# Without the CA, the system's store does not trust the certificate.
if "$client" --port "$port" --tls "x" >"$dir/untrusted.out" \
  2>"$dir/untrusted.err"; then
  echo "a client that does not trust the CA got through"; fail=1
fi
grep -q "cannot connect to 127.0.0.1:$port: TLS certificate from an unknown CA" \
  "$dir/untrusted.err" || { cat "$dir/untrusted.err"; fail=1; }
# The right CA, but a name the certificate does not have.
if "$client" --port "$port" --tls --ca-file "$dir/certs/ca.pem" \
  --server-name wrong.weft.invalid "x" >"$dir/wrongname.out" \
  2>"$dir/wrongname.err"; then
  echo "a client expecting another name got through"; fail=1
fi
grep -q "TLS certificate is for another name" "$dir/wrongname.err" ||
  { cat "$dir/wrongname.err"; fail=1; }
stop tls
echo "--- echo_client --port $port --tls --ca-file ca.pem 'Hello TLS!'"
cat "$dir/tls-client.out"
echo "--- echo_client --port $port --tls 'x' (the CA not trusted)"
cat "$dir/untrusted.err"
echo "--- echo_server --port 0 --workers 2 --tls-cert server.pem --tls-key server.key"
cat "$dir/tls.out"
cat "$dir/tls.err" >&2
grep -q "^Received 'Hello TLS!' from ('127.0.0.1', [0-9]*)$" "$dir/tls.out" || fail=1
grep -q "^TLS handshakes failed: 2$" "$dir/tls.out" || fail=1
total=$(connections tls)
[ "$total" = 3 ] || { echo "expected 3 TLS connections in all, got $total"; fail=1; }
exit $fail
