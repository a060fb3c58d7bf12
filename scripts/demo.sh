#!/usr/bin/env bash
# scripts/demo.sh: install the dependencies (scripts/setup.sh), build weft and
# its examples in build/ (RelWithDebInfo), then run the examples in order:
# hello, gather and tasks (asyncio tutorial programs ported to weft) and
# fanout (CPU-bound tasks spread over every core by work stealing), and
# finally the echo server of the asyncio streams tutorial with its client
# (examples/echo_test.sh: the server on a free port with two workers, two
# clients, then SIGTERM), and last the flagship pair: examples/site serving
# a synthetic 10,000-page site on every core, crawled by examples/crawler
# with 256 requests in flight (live progress, then the summary).
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
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=
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
sh examples/echo_test.sh build/examples/echo_server build/examples/echo_client

echo
echo "=== examples/site.c + examples/crawler.c: a site crawled on every core ==="
site_out=$(mktemp "${TMPDIR:-/tmp}/weft-site.XXXXXX")
build/examples/site --port 0 >"$site_out" 2>&1 &
site_pid=$!
# `|| true`: the site has normally exited already, and under `set -e` a
# failing command in the EXIT trap would turn the script's status into 1.
trap 'kill "$site_pid" 2>/dev/null || true; rm -f "$log" "$site_out"' EXIT
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
cat "$site_out"
echo "--- build/examples/crawler --concurrency 256 --timeout 1000 --retries 0 http://127.0.0.1:$port/"
build/examples/crawler --concurrency 256 --timeout 1000 --retries 0 \
  "http://127.0.0.1:$port/"
kill -TERM "$site_pid"
wait "$site_pid" || true
echo "--- site, stopped with SIGTERM:"
sed -n '/^Signal\|^worker/p' "$site_out"
echo
echo "demo: all $((${#examples[@]} + 4)) examples ran"
