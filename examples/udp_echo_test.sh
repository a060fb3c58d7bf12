#!/bin/sh
# udp_echo_test.sh UDP_ECHO: start "udp_echo server" on a free port with two
# workers, run two clients against it (one sending 50 datagrams), check
# their outputs, stop the server with SIGTERM and check that it exits 0
# after printing per-worker counts that add up to what was sent.
set -u
exe=$1
dir=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

"$exe" server --port 0 --workers 2 --tasks 2 >"$dir/server.out" 2>"$dir/server.err" &
pid=$!
port=
i=0
while [ $i -lt 100 ]; do
  port=$(sed -n 's/^Serving on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$dir/server.out")
  [ -n "$port" ] && break
  if ! kill -0 $pid 2>/dev/null; then break; fi
  sleep 0.1
  i=$((i + 1))
done
if [ -z "$port" ]; then
  echo "udp_echo server did not start"; cat "$dir/server.out" "$dir/server.err"
  exit 1
fi

fail=0
"$exe" client --port "$port" "Hello World!" >"$dir/client.out" || fail=1
printf "Send: Hello World!\nReceived: Hello World!\nConnection closed\n" >"$dir/want"
if ! cmp -s "$dir/want" "$dir/client.out"; then
  echo "unexpected client output:"; cat "$dir/client.out"; fail=1
fi
"$exe" client --port "$port" --count 50 "again" >"$dir/client2.out" || fail=1
[ "$(grep -cx 'Received: again' "$dir/client2.out")" = 50 ] || {
  echo "second client:"; cat "$dir/client2.out"; fail=1; }

kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then
  echo "udp_echo server did not exit on SIGTERM"; exit 1
fi
wait $pid || { echo "udp_echo server exited with $?"; fail=1; }
pid=
echo "--- udp_echo client --port $port 'Hello World!'"
cat "$dir/client.out"
echo "--- udp_echo server --port 0 --workers 2 --tasks 2 (stopped with SIGTERM)"
cat "$dir/server.out"
cat "$dir/server.err" >&2
grep -q "^Received 'Hello World!' from ('127.0.0.1', [0-9]*)$" "$dir/server.out" || fail=1
grep -q "^Send 'Hello World!' to ('127.0.0.1', [0-9]*)$" "$dir/server.out" || fail=1
grep -q "^worker 0: [0-9]* datagrams$" "$dir/server.out" || fail=1
grep -q "^worker 1: [0-9]* datagrams$" "$dir/server.out" || fail=1
total=$(sed -n 's/^worker [0-9]*: \([0-9]*\) datagrams$/\1/p' "$dir/server.out" | awk '{s+=$1} END {print s}')
# 51 unless a datagram was lost and sent again (loopback: practically never).
[ "$total" -ge 51 ] || { echo "expected at least 51 datagrams, got $total"; fail=1; }
exit $fail
