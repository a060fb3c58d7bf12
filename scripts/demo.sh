#!/usr/bin/env bash
# scripts/demo.sh: install the dependencies (scripts/setup.sh), build weft and
# its examples in build/ (RelWithDebInfo), then run the examples in order:
# hello, gather and tasks (asyncio tutorial programs ported to weft) and
# fanout (CPU-bound tasks spread over every core by work stealing).
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
  --target "${examples[@]/#/example_}"

for ex in "${examples[@]}"; do
  echo
  echo "=== examples/$ex.c (build/examples/$ex) ==="
  "build/examples/$ex"
done
echo
echo "demo: all ${#examples[@]} examples ran"
