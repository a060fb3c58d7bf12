#!/bin/sh
# Compare two builds of weft-bench in one run: every in-process workload
# with 1 and 2 workers, the two builds alternating rep by rep (A, B, A, B,
# ...) so that both see the same machine, then the median of each figure
# for A and B and the ratio B / A (below 1: B is lower; whether lower is
# better depends on the figure: ns and ms, yes; speedups, no).
#
#   bench/compare.sh BUILD_A BUILD_B
#
# Use it for "before and after" of a change: build the old commit into one
# directory and the new one into another (both RelWithDebInfo with
# -DWEFT_BUILD_BENCH=ON). Environment as run-all.sh: REPS (default 3),
# WORKERS_LIST (default "1 2"), WORKLOADS (default: run-all.sh's list).
# Exits non-zero if any run failed (the others still run).
set -u

if [ $# -ne 2 ]; then
  echo "usage: bench/compare.sh BUILD_A BUILD_B" >&2
  exit 2
fi
a=$1/bench/weft-bench
b=$2/bench/weft-bench
for x in "$a" "$b"; do
  if [ ! -x "$x" ]; then
    echo "compare.sh: $x not found; build it first" >&2
    exit 2
  fi
done
reps=${REPS:-3}
workers_list=${WORKERS_LIST:-"1 2"}
workloads=${WORKLOADS:-"spawn_many yield_many ping_pong chained_spawn timers timeouts fanout_cpu idle_memory mutex_contended queue_mpmc"}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
failed=0

# one TAG BIN WORKLOAD WORKERS: run once, append "TAG WORKLOAD WORKERS k=v..."
one() {
  if out=$("$2" "$3" "$4"); then
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | head -n 1)
    if [ -n "$line" ]; then
      echo "$1 $line"
      printf '%s %s\n' "$1" "$line" >>"$tmp/all"
      return
    fi
    echo "compare.sh: $1 $3/$4: no RESULT line" >&2
  else
    echo "compare.sh: $1 $3/$4 failed" >&2
  fi
  failed=1
}

: >"$tmp/all"
for w in $workloads; do
  for n in $workers_list; do
    i=0
    while [ "$i" -lt "$reps" ]; do
      i=$((i + 1))
      one A "$a" "$w" "$n"
      one B "$b" "$w" "$n"
    done
  done
done

# Lines: "TAG RESULT <workload> weft <workers> k=v ...".
echo
echo "medians over $reps runs each (A = $1, B = $2):"
awk '
  function median(tag, key,   n, i, j, t, arr) {
    n = cnt[tag, key]
    for (i = 1; i <= n; i++) arr[i] = val[tag, key, i]
    for (i = 2; i <= n; i++)
      for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) { t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
  }
  {
    id = $3 "/" $5
    if (!(id in seen)) { seen[id] = 1; ids[++nid] = id }
    for (f = 6; f <= NF; f++) {
      split($f, kv, "=")
      k = id SUBSEP kv[1]
      if (!(k in known)) { known[k] = 1; keys[id, ++nk[id]] = kv[1] }
      val[$1, k, ++cnt[$1, k]] = kv[2] + 0
    }
  }
  END {
    printf "%-22s %-14s %14s %14s %8s\n", "workload/workers", "figure", "A", "B", "B/A"
    for (i = 1; i <= nid; i++) {
      id = ids[i]
      for (j = 1; j <= nk[id]; j++) {
        k = id SUBSEP keys[id, j]
        if (!cnt["A", k] || !cnt["B", k]) continue
        ma = median("A", k); mb = median("B", k)
        printf "%-22s %-14s %14.6g %14.6g %8s\n", id, keys[id, j], ma, mb,
               ma != 0 ? sprintf("%.2f", mb / ma) : "-"
      }
    }
  }' "$tmp/all"
exit "$failed"
