#!/bin/sh
# echo_test.sh SERVER CLIENT: start echo_server on a free port, run
# echo_client against it, check both outputs, stop the server with SIGTERM
# and check that it exits 0 after printing its per-worker counts.
set -u
server=$1
client=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$server" --port 0 --workers 2 >"$dir/server.out" 2>"$dir/server.err" &
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
  echo "echo_server did not start"; cat "$dir/server.out" "$dir/server.err"
  kill -9 $pid 2>/dev/null; exit 1
fi

fail=0
"$client" --port "$port" "Hello World!" >"$dir/client.out" || fail=1
printf "Send: 'Hello World!'\nReceived: 'Hello World!'\nClose the connection\n" >"$dir/want"
if ! cmp -s "$dir/want" "$dir/client.out"; then
  echo "unexpected client output:"; cat "$dir/client.out"; fail=1
fi
# A second client, with a message asyncio's repr() quotes differently.
"$client" --port "$port" "it's" >"$dir/client2.out" || fail=1
grep -qx "Received: \"it's\"" "$dir/client2.out" || { cat "$dir/client2.out"; fail=1; }

kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then
  echo "echo_server did not exit on SIGTERM"; kill -9 $pid; exit 1
fi
wait $pid || { echo "echo_server exited with $?"; fail=1; }
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
total=$(sed -n 's/^worker [0-9]*: \([0-9]*\) connections$/\1/p' "$dir/server.out" | awk '{s+=$1} END {print s}')
[ "$total" = 2 ] || { echo "expected 2 connections in all, got $total"; fail=1; }
exit $fail
