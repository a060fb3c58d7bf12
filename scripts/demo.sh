#!/usr/bin/env bash
# scripts/demo.sh: install the dependencies (scripts/setup.sh), build weft and
# its examples in build/ (RelWithDebInfo), then run the examples in order:
# hello, gather and tasks (asyncio tutorial programs ported to weft) and
# fanout (CPU-bound tasks spread over every core by work stealing), and
# finally the echo server of the asyncio streams tutorial with its client
# (examples/echo_test.sh: the server on a free port with two workers, two
# clients, then SIGTERM).
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
  --target "${examples[@]/#/example_}" example_echo_server example_echo_client

for ex in "${examples[@]}"; do
  echo
  echo "=== examples/$ex.c (build/examples/$ex) ==="
  "build/examples/$ex"
done
echo
echo "=== examples/echo_server.c + examples/echo_client.c ==="
sh examples/echo_test.sh build/examples/echo_server build/examples/echo_client
echo
echo "demo: all $((${#examples[@]} + 2)) examples ran"
