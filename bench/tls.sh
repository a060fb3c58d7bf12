#!/usr/bin/env bash
# bench/tls.sh: weft's TLS servers (weft-bench tls_echo_server, https_server)
# measured in the same run as the TLS comparison kit's servers: the OpenSSL
# epoll floor, Go crypto/tls and nginx (bench/README.md, "TLS server
# workloads").
#
#   bench/tls.sh [WORKLOAD ...]     build, then REPS rounds and the median table
#   bench/tls.sh build              build the kit, make its certificate
#   bench/tls.sh deps               install the kit's packages (Debian 12, root)
#   bench/tls.sh table RAWFILE      the median table of an earlier run
#
# WORKLOADs: echo64 echo4096 handshake https (default: all).
#
# The kit (run_tls.sh, tls_load, openssl_echo, go_tls, nginx's
# configuration) lives outside this repository, in ../shared/bench/tls
# beside it (TLS_KIT overrides). This script copies it to a scratch folder,
# adds the servers weft/N (weft-bench with N workers) to run_tls.sh's
# server lists, and runs that copy: weft's rows are then started, loaded,
# measured (server CPU per operation from /proc/PID/stat) and tabulated by
# exactly the code that measures the others, interleaved with them round by
# round. The kit's folder itself is never written.
#
# Environment (besides run_tls.sh's own, which pass through: REPS, SECS,
# WARMUP, ECHO_CONNS, HS_CONNS, HTTPS_CONNS, SERVERS, QUIET_MAX, DISTURB_PCT,
# RETRIES, LOAD_CPU, TLSLOAD_CIPHERSUITES, TLSLOAD_GROUPS):
#   WEFT_BUILD    the build folder holding bench/weft-bench (default: build);
#                 built first (target weft-bench) when it is a CMake build
#   WEFT_WORKERS  worker counts to run, one row each (default: "1 2")
#   TLS_KIT       the kit's folder (default: ../shared/bench/tls beside the
#                 checkout, or beside the main checkout of a git worktree)
#   TLS_OUT       scratch folder (default: ${TMPDIR:-/tmp}/weft-tls-bench):
#                 kit/ (the patched copy) and run/ (builds, certificate,
#                 results/raw-*.txt, log-*.txt, summary-*.md)
set -eu
REPO="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "bench/tls.sh: $*" >&2; exit 2; }

if [ -n "${TLS_KIT:-}" ]; then
  KIT="$TLS_KIT"
else # beside this checkout, or beside the main checkout of this worktree
  KIT="$REPO/../shared/bench/tls"
  COMMON="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  if [ ! -f "$KIT/run_tls.sh" ] && [ -n "$COMMON" ]; then
    KIT="$(dirname "$COMMON")/../shared/bench/tls"
  fi
fi
[ -f "$KIT/run_tls.sh" ] || die "no TLS kit at $KIT (set TLS_KIT to the folder holding run_tls.sh)"
KIT="$(cd "$KIT" && pwd)"
OUT="${TLS_OUT:-${TMPDIR:-/tmp}/weft-tls-bench}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
case "$OUT/" in "$KIT"/*) die "TLS_OUT must not be inside the kit ($KIT)" ;; esac

WEFT_SERVERS=""
for n in ${WEFT_WORKERS:-1 2}; do
  case "$n" in '' | *[!0-9]*) die "bad WEFT_WORKERS entry '$n'" ;; esac
  WEFT_SERVERS="$WEFT_SERVERS weft/$n"
done

if [ "${1:-}" != deps ] && [ "${1:-}" != table ]; then
  BUILD="${WEFT_BUILD:-$REPO/build}"
  [ -d "$BUILD" ] || die "no build folder $BUILD (configure one, or set WEFT_BUILD)"
  BUILD="$(cd "$BUILD" && pwd)"
  if [ -f "$BUILD/CMakeCache.txt" ]; then
    if grep -Eq '^WEFT_SANITIZE:[A-Z]+=.+' "$BUILD/CMakeCache.txt"; then
      die "$BUILD is a sanitizer build: benchmark a plain one (bench/README.md)"
    fi
    cmake --build "$BUILD" -j2 --target weft-bench >&2 || die "building weft-bench failed"
  fi
  WEFT_BENCH="$BUILD/bench/weft-bench"
  [ -x "$WEFT_BENCH" ] || die "no $WEFT_BENCH"
  BTYPE="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)"
  DESC="$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
  export WEFT_BENCH WEFT_SERVERS
  export WEFT_DESC="weft $DESC ${BTYPE:-?} ($WEFT_BENCH)"
fi

# The patched copy of the kit.
rm -rf "$OUT/kit"
mkdir -p "$OUT/kit"
cp -r "$KIT"/. "$OUT/kit"/
chmod -R u+w "$OUT/kit"
RUN="$OUT/kit/run_tls.sh"
# 1. every workload's server list gets the weft rows (after the others');
# 2. start_server learns to start weft/N: tls_echo_server for the echo and
#    handshake workloads, https_server for https, with the kit's certificate;
#    weft-bench prints READY like the kit's own servers;
# 3. the raw file's header names weft's commit and build.
awk '
  /^servers_for\(\) \{$/ { in_sf = 1 }
  in_sf && /^  esac$/ {
    print; print "  all=\"$all $WEFT_SERVERS\" # added by weft'"'"'s bench/tls.sh"; in_sf = 0; n1++; next
  }
  /^    \*\) log "unknown server \$s"; return 1 ;;$/ {
    print "    weft/*) # added by weft'"'"'s bench/tls.sh"
    print "      timeout \"$lim\" \"$WEFT_BENCH\" \"$([ \"$kind\" = https ] && echo https_server || echo tls_echo_server)\" \"${s#weft/}\" \"$PORT\" cert.pem key.pem >\"$f\" 2>>\"$LOG\" & ;;"
    n2++
  }
  /^  echo "# \$\(openssl version\) \| .*\$\(nginx -v 2>&1 \|\| true\)"$/ {
    sub(/"$/, " | $WEFT_DESC\""); n3++
  }
  { print }
  END { exit !(n1 == 1 && n2 == 1 && n3 == 1) }
' "$KIT/run_tls.sh" >"$RUN" ||
  die "$KIT/run_tls.sh is not the one this script knows how to extend: update bench/tls.sh"
chmod +x "$RUN"

TLS_OUT="$OUT/run" exec "$RUN" "$@"
