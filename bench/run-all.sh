#!/bin/sh
# Run every in-process workload of weft-bench with 1 and 2 workers, REPS times
# each (default 3), printing each RESULT line, then the median of every
# key=value of each workload, and fanout_cpu's speedup from 1 to 2 workers.
# Runs the context-switch micro-benchmark (weft-bench-ctx) too when built.
#
#   bench/run-all.sh [BUILD_DIR]     (default: build, relative to the repo)
#
# Environment: REPS (default 3), WORKERS_LIST (default "1 2"),
# WORKLOADS (default: all in-process workloads).
# Exits non-zero if any run failed (the others still run).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bench=$build/bench/weft-bench
ctx=$build/bench/weft-bench-ctx
reps=${REPS:-3}
workers_list=${WORKERS_LIST:-"1 2"}
workloads=${WORKLOADS:-"spawn_many yield_many ping_pong chained_spawn timers timeouts fanout_cpu idle_memory mutex_contended queue_mpmc"}

if [ ! -x "$bench" ]; then
  echo "run-all.sh: $bench not found; build it first" \
    "(cmake --build $build --target weft-bench)" >&2
  exit 2
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
failed=0

# run_reps NAME FILE CMD...: run CMD REPS times, echo its RESULT line and
# append it to FILE.
run_reps() {
  name=$1 file=$2
  shift 2
  : >"$file"
  i=0
  while [ "$i" -lt "$reps" ]; do
    i=$((i + 1))
    if out=$("$@"); then
      line=$(printf '%s\n' "$out" | grep '^RESULT ' | head -n 1)
      if [ -z "$line" ]; then
        echo "run-all.sh: $name: no RESULT line" >&2
        failed=1
        continue
      fi
      echo "$line"
      printf '%s\n' "$line" >>"$file"
    else
      echo "run-all.sh: $name: '$*' failed (exit $?)" >&2
      failed=1
    fi
  done
}

# medians FILE: "RESULT <workload> weft <workers> k=median ..." over the
# RESULT lines in FILE, keys in their order on the first line.
medians() {
  awk '
    function median(key,   n, i, j, t, a) {
      n = cnt[key]
      for (i = 1; i <= n; i++) a[i] = val[key, i]
      for (i = 2; i <= n; i++)          # insertion sort: n is tiny
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    NR == 1 { head = $2 " weft " $4; nk = 0 }
    {
      for (f = 5; f <= NF; f++) {
        split($f, kv, "=")
        if (!(kv[1] in cnt)) { keys[++nk] = kv[1]; cnt[kv[1]] = 0 }
        val[kv[1], ++cnt[kv[1]]] = kv[2] + 0
      }
    }
    END {
      if (NR == 0) exit
      line = "MEDIAN " head " runs=" NR
      for (k = 1; k <= nk; k++) line = line " " keys[k] "=" median(keys[k])
      print line
    }' "$1"
}

for w in $workloads; do
  for n in $workers_list; do
    run_reps "$w/$n" "$tmp/$w.$n" "$bench" "$w" "$n"
  done
done
if [ -x "$ctx" ]; then
  run_reps ctx_switch "$tmp/ctx_switch.1" "$ctx"
fi

echo
echo "medians over $reps runs:"
for w in $workloads; do
  for n in $workers_list; do
    if [ -s "$tmp/$w.$n" ]; then medians "$tmp/$w.$n"; fi
  done
done
if [ -s "$tmp/ctx_switch.1" ]; then medians "$tmp/ctx_switch.1"; fi

if [ -s "$tmp/fanout_cpu.1" ] && [ -s "$tmp/fanout_cpu.2" ]; then
  m1=$(medians "$tmp/fanout_cpu.1" | tr ' ' '\n' | sed -n 's/^wall_ms=//p')
  m2=$(medians "$tmp/fanout_cpu.2" | tr ' ' '\n' | sed -n 's/^wall_ms=//p')
  awk -v a="$m1" -v b="$m2" 'BEGIN { if (b > 0)
    printf "fanout_cpu speedup 1 -> 2 workers: %.2fx (median wall_ms %s -> %s)\n", a / b, a, b }'
fi
exit "$failed"
