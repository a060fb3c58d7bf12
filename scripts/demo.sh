#!/usr/bin/env bash
# scripts/demo.sh: install the dependencies (scripts/setup.sh), build weft and
# its examples in build/ (RelWithDebInfo), then run the examples in order:
# hello, gather and tasks (asyncio tutorial programs ported to weft) and
# fanout (CPU-bound tasks spread over every core by work stealing), and
# finally the echo server of the asyncio streams tutorial with its client
# (examples/echo_test.sh: the server on a free port with two workers, two
# clients, then SIGTERM; then the same over TLS), and last the flagship
# pair: examples/site serving a synthetic 10,000-page site over https on
# every core, with a certificate from a private CA made at start
# (examples/mkcert.sh), crawled by examples/crawler trusting that CA, with
# 256 requests in flight (live progress, then the summary).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

examples=(hello gather tasks fanout)

bash scripts/setup.sh

log=$(mktemp "${TMPDIR:-/tmp}/weft-demo.XXXXXX")
trap 'rm -f "$log"' EXIT
quietly() { # quietly WHAT CMD...: run CMD, showing its output only on failure
  local what=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "demo: $what failed" >&2
    exit 1
  fi
}

echo "demo: building weft and its examples in build/"
quietly "cmake configure" cmake -S . -B build \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE= -DWEFT_TLS=ON
quietly "build" cmake --build build -j "$(nproc)" \
  --target "${examples[@]/#/example_}" example_echo_server example_echo_client \
  example_site example_crawler

for ex in "${examples[@]}"; do
  echo
  echo "=== examples/$ex.c (build/examples/$ex) ==="
  "build/examples/$ex"
done
echo
echo "=== examples/echo_server.c + examples/echo_client.c ==="
sh examples/echo_test.sh build/examples/echo_server build/examples/echo_client 1

echo
echo "=== examples/site.c + examples/crawler.c: a site crawled over https on every core ==="
site_out=$(mktemp "${TMPDIR:-/tmp}/weft-site.XXXXXX")
certs=$(mktemp -d "${TMPDIR:-/tmp}/weft-certs.XXXXXX")
trap 'rm -rf "$log" "$site_out" "$certs"' EXIT
echo "--- sh examples/mkcert.sh \$certs (a private CA, and a certificate for 127.0.0.1 it signs)"
sh examples/mkcert.sh "$certs"
build/examples/site --port 0 --tls-cert "$certs/server.pem" \
  --tls-key "$certs/server.key" >"$site_out" 2>&1 &
site_pid=$!
# `|| true`: the site has normally exited already, and under `set -e` a
# failing command in the EXIT trap would turn the script's status into 1.
trap 'kill "$site_pid" 2>/dev/null || true; rm -rf "$log" "$site_out" "$certs"' EXIT
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^Serving on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$site_out")
  [[ -n $port ]] && break
  sleep 0.1
done
if [[ -z $port ]]; then
  cat "$site_out" >&2
  echo "demo: site did not start" >&2
  exit 1
fi
echo "--- build/examples/site --port 0 --tls-cert \$certs/server.pem --tls-key \$certs/server.key"
cat "$site_out"
echo "--- build/examples/crawler --concurrency 256 --timeout 1000 --retries 0 --ca-file \$certs/ca.pem https://127.0.0.1:$port/"
build/examples/crawler --concurrency 256 --timeout 1000 --retries 0 \
  --ca-file "$certs/ca.pem" "https://127.0.0.1:$port/"
kill -TERM "$site_pid"
wait "$site_pid" || true
echo "--- site, stopped with SIGTERM:"
sed -n '/^Signal\|^worker\|^TLS/p' "$site_out"
echo
echo "demo: all $((${#examples[@]} + 4)) examples ran"
