#!/usr/bin/env bash
# bench/udp.sh: UDP echo, side by side in one run: weft (weft-bench
# udp_echo_server with 1 and 2 workers), the C floor (udp_floor.c: one
# thread, epoll, one recvfrom + one sendto per datagram) and Go
# (go_udp/main.go with GOMAXPROCS 1 and 2), each loaded by udp_load.c
# (closed loop, CLIENTS connected sockets with one datagram of SIZE bytes in
# flight each) and measured for packets/s and the server's CPU time per
# packet (utime + stime over the window / echoed packets).
#
#   bash bench/udp.sh BUILD_DIR [RUNS]
#
# BUILD_DIR holds bench/weft-bench (configure with -DWEFT_BUILD_BENCH=ON, a
# Release or RelWithDebInfo build). RUNS (default 3) rounds interleave the
# servers; the table shows medians. CLIENTS (64), SIZE (64), SECS (3) and
# WARM (1) may be set in the environment. Needs cc and go (golang-go). The
# load generator shares the machine's cores with the server, so packets/s
# is a ceiling set by the client; CPU per packet is the comparison.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-}"
runs="${2:-3}"
[ -x "$build/bench/weft-bench" ] || { sed -n '2,17p' "$0"; exit 2; }
CLIENTS="${CLIENTS:-64}" SIZE="${SIZE:-64}" SECS="${SECS:-3}" WARM="${WARM:-1}"
tools="${TMPDIR:-/tmp}/weft-udp-bench"
mkdir -p "$tools"
cc -O2 -o "$tools/udp_floor" "$here/udp_floor.c" || exit 1
cc -O2 -o "$tools/udp_load" "$here/udp_load.c" || exit 1
(cd "$here/go_udp" && GOPROXY=off GOFLAGS=-mod=mod \
  GOCACHE="${GOCACHE:-$tools/gocache}" go build -o "$tools/udp_echo_go" .) ||
  { echo "udp.sh: go build failed (apt-get install golang-go)"; exit 1; }

names=(weft-1 weft-2 floor go-1 go-2)
cmd() { # cmd NAME PORT -> the server's command line
  case "$1" in
    weft-1) echo "$build/bench/weft-bench udp_echo_server 1 $2" ;;
    weft-2) echo "$build/bench/weft-bench udp_echo_server 2 $2" ;;
    floor) echo "$tools/udp_floor $2" ;;
    go-1) echo "$tools/udp_echo_go 1 $2" ;;
    go-2) echo "$tools/udp_echo_go 2 $2" ;;
  esac
}
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

out="$tools/results.$$"
: >"$out"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$out" "$tools/server.$$"' EXIT
echo "uptime: $(uptime)"
echo "clients=$CLIENTS size=$SIZE secs=$SECS warm=$WARM runs=$runs"
for r in $(seq "$runs"); do
  for n in "${names[@]}"; do
    port=$(free_port)
    $(cmd "$n" "$port") >"$tools/server.$$" 2>&1 &
    pid=$!
    for i in $(seq 100); do grep -q READY "$tools/server.$$" && break; sleep 0.1; done
    if ! grep -q READY "$tools/server.$$"; then
      echo "run $r $n: did not start"; cat "$tools/server.$$"; kill "$pid" 2>/dev/null
      pid=; continue
    fi
    line=$("$tools/udp_load" --pid "$pid" 127.0.0.1 "$port" "$CLIENTS" "$SIZE" "$SECS" "$WARM")
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
    rate=$(echo "$line" | grep -o 'pkts_per_s=[0-9.]*' | cut -d= -f2)
    cpu=$(echo "$line" | grep -o 'server_cpu_us_per_pkt=[0-9.]*' | cut -d= -f2)
    p99=$(echo "$line" | grep -o 'p99_us=[0-9.]*' | cut -d= -f2)
    lost=$(echo "$line" | grep -o 'lost=[0-9]*' | cut -d= -f2)
    printf 'run %d %-7s %9s pkts/s %6s us/pkt p99 %7s us lost %s\n' "$r" "$n" "${rate:-0}" "${cpu:-?}" "${p99:-?}" "${lost:-?}"
    echo "$n ${rate:-0} ${cpu:-0} ${p99:-0} ${lost:-0}" >>"$out"
  done
done
echo
echo "| server | packets/s (median) | server CPU us/packet (median) | p99 us (median) | lost (sum) |"
echo "|---|---|---|---|---|"
for n in "${names[@]}"; do
  awk -v n="$n" '$1 == n { r[++k] = $2; c[k] = $3; p[k] = $4; l += $5 }
    function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
    END { if (k) printf "| %s | %.0f | %.2f | %.1f | %d |\n", n, med(r, k), med(c, k), med(p, k), l }' "$out"
done
