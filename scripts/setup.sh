#!/usr/bin/env bash
# scripts/setup.sh: install what building and testing weft needs on Debian 12
# (bookworm), with apt-get, and only what is missing. Idempotent; prints
# nothing when everything is already installed. Run as root (or with sudo
# available) when something is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# gcc builds everything, sanitizer trees included: gcc 12's sanitizer
# runtimes are libasan8, libubsan1 and libtsan2 (normally pulled in by
# build-essential, listed so that a trimmed system gets them too).
# binutils gives readelf and nm to tests/install/check.sh and
# scripts/check-layers.sh, python3-minimal the latter its graph code.
# libssl-dev is OpenSSL 3, the library's TLS (weft/tls.h, docs/design.md
# section 6); the openssl command line tool and python3 are the peers of the
# TLS interoperability tests (openssl s_server/s_client, Python's ssl through
# asyncio, which python3-minimal lacks), curl the https client of
# examples/site_tls_test.sh.
# libhttp-parser-dev is the HTTP parser of weft-bench's http_server
# workload (docs/design.md says why this one).
# liburiparser-dev and libxml2-dev are the URL library and the HTML parser
# of examples/crawler and weft-bench's crawl workload (docs/design.md §6).
# zlib1g-dev decodes the crawler's gzip and deflate bodies and compresses
# examples/site's --gzip responses (docs/design.md §6).
# The openssl command also makes the throw-away CA and server certificate
# of examples/mkcert.sh, for the examples' TLS tests and the demo's https
# crawl (docs/design.md §6).
# gdb (with its Python) runs the gdb extension's tests (tests/gdb:
# tools/gdb/weft-gdb.py's `info weft-tasks` and `weft-bt` in batch mode).
# valgrind runs the valgrind_* tests (examples under memcheck) and ships
# valgrind/valgrind.h, with which src/stack.c registers task stacks.
# libhiredis-dev (RESP reader and command formatter) and redis-server are
# the Redis client of examples/redis.c, the crawler's --redis frontier and
# their tests (docs/design.md §6).
packages=(
  build-essential
  cmake
  pkg-config
  binutils
  python3-minimal
  python3
  libuv1-dev
  libssl-dev
  libunwind-dev   # optional: task dump backtraces (design.md §6)
  openssl
  curl
  libcmocka-dev
  libhttp-parser-dev
  liburiparser-dev
  libxml2-dev
  zlib1g-dev
  libhiredis-dev
  redis-server
  libasan8
  libubsan1
  libtsan2
  gdb
  valgrind
)

installed() {
  dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
log=$(mktemp "${TMPDIR:-/tmp}/weft-setup.XXXXXX")
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
  -o DPkg::Lock::Timeout=300)
if ! { "${apt[@]}" update &&
  "${apt[@]}" install --no-install-recommends "${missing[@]}"; } \
  </dev/null >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: apt-get failed" >&2
  exit 1
fi
