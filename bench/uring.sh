#!/usr/bin/env bash
# bench/uring.sh: could an io_uring path pay off for weft's streams? One run,
# interleaved: weft (weft-bench echo_server, 1 worker), the plain epoll floor
# and two io_uring floors (tcp_floor.c: uring waits for each completion,
# uring-batch coalesces completions), and optionally Tokio, each loaded by
# the comparison kit's closed-loop echo_load (100 connections, one message
# in flight each). Per server: messages/s, p50/p99 round trip, server CPU
# µs per message (utime + stime over the window from /proc/PID/stat), and,
# when perf is installed, system calls and context switches per message.
#
#   bash bench/uring.sh BUILD_DIR [RUNS]
#
# BUILD_DIR holds bench/weft-bench (a Release or RelWithDebInfo build with
# -DWEFT_BUILD_BENCH=ON). RUNS (default 3) rounds; the table shows medians.
# SIZES ("64 4096"), CONNS (100), SECS (4), WARM (1) may be set; TOKIO=PATH
# adds a Tokio peer binary that takes "echo_server 1 PORT" (the kit's
# peers/tokio). Needs cc, liburing-dev, and the kit's bench/echo_load.c
# beside this repository (../shared; ECHO_LOAD=PATH.c to point elsewhere).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-}"
runs="${2:-3}"
[ -x "$build/bench/weft-bench" ] || { sed -n '2,19p' "$0"; exit 2; }
SIZES="${SIZES:-64 4096}" CONNS="${CONNS:-100}" SECS="${SECS:-4}" WARM="${WARM:-1}"
load_src="${ECHO_LOAD:-$here/../../shared/bench/echo_load.c}"
[ -r "$load_src" ] || { echo "uring.sh: no load generator at $load_src (set ECHO_LOAD)"; exit 2; }
tools="${TMPDIR:-/tmp}/weft-uring-bench"
mkdir -p "$tools"
cc -O2 -o "$tools/tcp_floor" "$here/tcp_floor.c" -luring ||
  { echo "uring.sh: build failed (apt-get install liburing-dev)"; exit 1; }
cc -O2 -o "$tools/echo_load" "$load_src" || exit 1
have_perf=0
command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 && have_perf=1

names=(weft-1 epoll uring uring-batch)
[ -n "${TOKIO:-}" ] && names+=(tokio-1)
cmd() { # cmd NAME PORT -> the server's command line
  case "$1" in
    weft-1) echo "$build/bench/weft-bench echo_server 1 $2" ;;
    epoll | uring | uring-batch) echo "$tools/tcp_floor $1 echo $2" ;;
    tokio-1) echo "$TOKIO echo_server 1 $2" ;;
  esac
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"; }

out="$tools/results.$$"
: >"$out"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$out" "$tools/server.$$" "$tools/perf.$$"' EXIT
echo "uptime: $(uptime)"
echo "conns=$CONNS secs=$SECS warm=$WARM runs=$runs perf=$have_perf"
for size in $SIZES; do
  for r in $(seq "$runs"); do
    for n in "${names[@]}"; do
      port=$(free_port)
      $(cmd "$n" "$port") >"$tools/server.$$" 2>&1 &
      pid=$!
      for i in $(seq 100); do grep -q READY "$tools/server.$$" && break; sleep 0.1; done
      if ! grep -q READY "$tools/server.$$"; then
        echo "size $size run $r $n: did not start"; cat "$tools/server.$$"
        kill "$pid" 2>/dev/null; pid=; continue
      fi
      "$tools/echo_load" 127.0.0.1 "$port" "$CONNS" "$size" "$WARM" 0 >/dev/null 2>&1 # warm-up
      c0=$(cpu_s "$pid")
      pp=
      if [ "$have_perf" = 1 ]; then
        perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$pid" -o "$tools/perf.$$" -- sleep "$SECS" &
        pp=$!
      fi
      line=$("$tools/echo_load" 127.0.0.1 "$port" "$CONNS" "$size" "$SECS" 0 2>/dev/null)
      c1=$(cpu_s "$pid")
      [ -n "$pp" ] && wait "$pp"
      kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
      msgs=$(grep -o 'msgs=[0-9]*' <<<"$line" | cut -d= -f2)
      rate=$(grep -o 'msgs_per_s=[0-9.]*' <<<"$line" | cut -d= -f2)
      p50=$(grep -o 'p50_us=[0-9.]*' <<<"$line" | cut -d= -f2)
      p99=$(grep -o 'p99_us=[0-9.]*' <<<"$line" | cut -d= -f2)
      [ -n "$msgs" ] && [ "$msgs" -gt 0 ] || { echo "size $size run $r $n: load failed"; continue; }
      cpu=$(awk -v a="$c0" -v b="$c1" -v m="$msgs" 'BEGIN { printf "%.2f", (b - a) * 1e6 / m }')
      sys=- cs=-
      if [ -n "$pp" ]; then
        sys=$(awk -F, -v m="$msgs" '/raw_syscalls/ { printf "%.2f", $1 / m }' "$tools/perf.$$")
        cs=$(awk -F, -v m="$msgs" '/context-switches/ { printf "%.3f", $1 / m }' "$tools/perf.$$")
      fi
      printf 'size %-4s run %d %-11s %8s msg/s p50 %7s p99 %7s us  %6s us/msg  %5s sys/msg  %6s cs/msg\n' \
        "$size" "$r" "$n" "$rate" "$p50" "$p99" "$cpu" "$sys" "$cs"
      echo "$size $n $rate $p50 $p99 $cpu $sys $cs" >>"$out"
    done
  done
done
echo
echo "| size | server | msg/s | p50 us | p99 us | server CPU us/msg | syscalls/msg | ctx switches/msg |"
echo "|---|---|---|---|---|---|---|---|"
for size in $SIZES; do
  for n in "${names[@]}"; do
    awk -v s="$size" -v n="$n" '$1 == s && $2 == n { k++; for (f = 3; f <= 8; f++) v[f, k] = $f }
      function med(f, k,   i, j, t, a) { for (i = 1; i <= k; i++) a[i] = v[f, i]
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
      END { if (k) printf "| %s | %s | %.0f | %.0f | %.0f | %.2f | %s | %s |\n", s, n, med(3, k), med(4, k), med(5, k), med(6, k), med(7, k), med(8, k) }' "$out"
  done
done
