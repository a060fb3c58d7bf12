#!/usr/bin/env bash
# bench/crawl.sh: the crawl workload side by side in one run: weft
# (weft-bench crawl, 1 and 2 workers), Go's net/http crawler
# (crawl_go/main.go, GOMAXPROCS 1 and 2), a Scrapy spider
# (crawl_scrapy.py), examples/crawler as one process, and 1, 2 and 3
# examples/crawler processes sharing one Redis frontier (--redis), each
# crawling a fresh examples/site from /page/0, interleaved REPS times.
#
#   bash bench/crawl.sh [BUILD_DIR [MODE...]]
#
# BUILD_DIR (default build) holds bench/weft-bench, examples/site and
# examples/crawler (a Release or RelWithDebInfo build, not a sanitizer one).
# MODEs (default all): weft1 weft2 go1 go2 scrapy crawler redis1 redis2
# redis3. Environment: REPS (3), CONC (256: requests in flight in all, and
# per host), TIMEOUT_MS (1000), PAGES (10000: the site's size), HANGS
# (0: the site's hang share; its slow pages are always off), WORKERS (1:
# --workers of each examples/crawler process), CRAWL_OUT (scratch folder,
# default /tmp/weft-crawl-bench). The redis modes split CONC between the
# processes (each gets CONC/N), so every mode keeps CONC requests in
# flight; they need redis-server and a crawler that has --redis, and are
# skipped with a message otherwise. Scrapy gets SCRAPY_TIMEOUT_MS (30000)
# instead of TIMEOUT_MS: on one thread it falls behind with 256 requests in
# flight, and at 1 s about a tenth of its requests time out while their
# responses wait in its queue, which shrinks the crawl (bench/README.md).
# Go needs golang-go and golang-golang-x-net-dev, Scrapy python3-scrapy
# (run by /usr/bin/python3); a mode whose tools are missing is skipped the
# same way.
#
# Each run prints one line in weft-bench's format, with the site's view
# appended (requests it served, its CPU µs per page):
#
#   RESULT crawl <peer> <threads> pages_per_s=... cpu_us_per_page=...
#          pages=... errors=... timeouts=... wall_ms=... mode=... rep=...
#          site_requests=... site_cpu_us_per_page=...
#          [redis_cpu_us_per_page=...]  (redis modes: redis-server's CPU)
#
# weft-bench, Go and Scrapy time their own crawl and read their own CPU
# time (getrusage; Scrapy's includes its children); examples/crawler runs
# are timed from the start of the processes to the end of the last, and
# their CPU is the processes' user + system time (bash's `times`), so
# their start-up counts too. The raw lines are kept in CRAWL_OUT/raw-*.txt;
# the table at the end shows the medians.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build}"
[ $# -gt 0 ] && shift
all_modes="weft1 weft2 go1 go2 scrapy crawler redis1 redis2 redis3"
modes="${*:-$all_modes}"
REPS="${REPS:-3}" CONC="${CONC:-256}" TIMEOUT_MS="${TIMEOUT_MS:-1000}"
PAGES="${PAGES:-10000}" HANGS="${HANGS:-0}" WORKERS="${WORKERS:-1}"
SCRAPY_TIMEOUT_MS="${SCRAPY_TIMEOUT_MS:-30000}"
out="${CRAWL_OUT:-/tmp/weft-crawl-bench}"
py=/usr/bin/python3

for m in $modes; do
  case " $all_modes " in *" $m "*) ;; *) sed -n '2,29p' "$0"; exit 2 ;; esac
done
for f in bench/weft-bench examples/site examples/crawler; do
  [ -x "$build/$f" ] || { echo "crawl.sh: no $build/$f (build it first)"; sed -n '2,29p' "$0"; exit 2; }
done
if grep -q 'WEFT_SANITIZE:STRING=[a-z]' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "crawl.sh: $build is a sanitizer build; benchmark a normal one"; exit 2
fi
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$out/raw-$stamp.txt"
tmp="$out/tmp.$$"
mkdir -p "$tmp"
: >"$raw"

skip=" "
skip_mode() { # skip_mode MODE WHY
  case "$skip" in *" $1 "*) return ;; esac
  skip="$skip$1 "
  echo "skipping $1: $2"
}
has_mode() { case " $modes " in *" $1 "*) return 0 ;; esac; return 1; }

# Go: built offline against Debian's golang-golang-x-net-dev.
if has_mode go1 || has_mode go2; then
  if ! (cd "$here/crawl_go" && GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= \
    GOCACHE="${GOCACHE:-$out/gocache}" go build -o "$out/crawl_go" .) >"$tmp/go-build" 2>&1; then
    cat "$tmp/go-build"
    skip_mode go1 "go build failed (apt-get install golang-go golang-golang-x-net-dev)"
    skip_mode go2 "go build failed"
  fi
fi
if has_mode scrapy && [ ! -f "$here/crawl_scrapy.py" ]; then
  skip_mode scrapy "no bench/crawl_scrapy.py"
elif has_mode scrapy && ! "$py" -c 'import scrapy' 2>/dev/null; then
  skip_mode scrapy "no scrapy for $py (apt-get install python3-scrapy)"
fi
redis_pid=
redis_port=
if has_mode redis1 || has_mode redis2 || has_mode redis3; then
  why=
  if ! "$build/examples/crawler" --help 2>&1 | grep -q -- '--redis'; then
    why="examples/crawler has no --redis yet"
  elif ! command -v redis-server >/dev/null; then
    why="no redis-server (apt-get install redis-server)"
  fi
  if [ -z "$why" ]; then
    redis_port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
      --daemonize no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do
      grep -q 'Ready to accept' "$tmp/redis.log" && break
      sleep 0.1
    done
    grep -q 'Ready to accept' "$tmp/redis.log" || { why="redis-server did not start: $(tail -1 "$tmp/redis.log")"; }
  fi
  if [ -n "$why" ]; then
    for m in redis1 redis2 redis3; do skip_mode "$m" "$why"; done
  fi
fi

site_pid=
cleanup() {
  [ -n "$site_pid" ] && kill "$site_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# cpu_ticks PID: utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# secs "1m2.345s" -> 62.345
secs() { echo "$1" | awk -F'[ms]' '{ print $1 * 60 + $2 }'; }

# procs N REDIS_URL: N examples/crawler processes (one without REDIS_URL
# empty); prints a RESULT line measured from outside.
procs() {
  local n=$1 url=$2 c=$((CONC / $1)) i pages=0 errors=0 timeouts=0 rc=0
  local t0 t1 peer=crawler
  [ -n "$url" ] && peer=crawler-redis
  t0=$(date +%s%N)
  (
    pids=()
    for i in $(seq "$n"); do
      "$build/examples/crawler" ${url:+--redis "$url"} --workers "$WORKERS" \
        --concurrency "$c" --per-host "$c" --timeout "$TIMEOUT_MS" --retries 0 \
        --quiet "$seed" >"$tmp/crawler.$i" 2>&1 &
      pids+=($!)
    done
    st=0
    # wait PID, not wait -n: a process that ended before the call is still
    # waited for by its PID.
    for p in "${pids[@]}"; do wait "$p" || { echo "crawler exited with status $?" >>"$tmp/crawler.1"; st=1; }; done
    times >"$tmp/times" # not in a pipeline: a forked subshell has no children
    exit $st
  ) || rc=1
  t1=$(date +%s%N)
  for i in $(seq "$n"); do
    local p e t
    p=$(sed -n 's/^Crawled: \([0-9]*\) pages, \([0-9]*\) errors.*/\1/p' "$tmp/crawler.$i" | head -1)
    e=$(sed -n 's/^Crawled: \([0-9]*\) pages, \([0-9]*\) errors.*/\2/p' "$tmp/crawler.$i" | head -1)
    t=$(sed -n 's/^error timeout: \([0-9]*\).*/\1/p' "$tmp/crawler.$i" | head -1)
    pages=$((pages + ${p:-0})) errors=$((errors + ${e:-0})) timeouts=$((timeouts + ${t:-0}))
  done
  if [ "$rc" != 0 ] || [ "$pages" = 0 ]; then
    echo "crawl.sh: $n crawler process(es) failed or fetched nothing:" >&2
    tail -n 5 "$tmp"/crawler.* >&2
    return 1
  fi
  read -r u s < <(tail -1 "$tmp/times")
  local cpu_us wall_us
  cpu_us=$(awk -v u="$(secs "$u")" -v s="$(secs "$s")" 'BEGIN { printf "%.0f", (u + s) * 1e6 }')
  wall_us=$(((t1 - t0) / 1000))
  awk -v peer="$peer" -v n="$n" -v w="$WORKERS" -v p="$pages" -v e="$errors" -v t="$timeouts" \
    -v cpu="$cpu_us" -v wall="$wall_us" 'BEGIN {
      printf "RESULT crawl %s %dx%d pages_per_s=%.0f cpu_us_per_page=%.1f pages=%d errors=%d timeouts=%d wall_ms=%d\n",
        peer, n, w, p / (wall / 1e6), cpu / p, p, e, t, wall / 1000 }'
}

# run MODE REP: start a site, crawl it, stop it; print the RESULT line.
run() {
  local mode=$1 rep=$2 line c0 c1 req
  build_site_args=(--port 0 --pages "$PAGES" --no-slow --hang-share "$HANGS" --quiet)
  "$build/examples/site" "${build_site_args[@]}" >"$tmp/site" 2>&1 &
  site_pid=$!
  for _ in $(seq 100); do grep -q '^Serving on' "$tmp/site" && break; sleep 0.05; done
  port=$(sed -n 's/^Serving on .*:\([0-9]*\)$/\1/p' "$tmp/site")
  if [ -z "$port" ]; then
    echo "crawl.sh: site did not start:" >&2; cat "$tmp/site" >&2
    kill "$site_pid" 2>/dev/null; site_pid=; return 1
  fi
  seed="http://127.0.0.1:$port/page/0"
  c0=$(cpu_ticks "$site_pid")
  local r0=0 r1=0
  [ -n "$redis_pid" ] && r0=$(cpu_ticks "$redis_pid")
  case "$mode" in
    weft1) line=$("$build/bench/weft-bench" crawl 1 "$port") ;;
    weft2) line=$("$build/bench/weft-bench" crawl 2 "$port") ;;
    go1) line=$("$out/crawl_go" -c "$CONC" -timeout-ms "$TIMEOUT_MS" 1 "$port") ;;
    go2) line=$("$out/crawl_go" -c "$CONC" -timeout-ms "$TIMEOUT_MS" 2 "$port") ;;
    scrapy) line=$("$py" "$here/crawl_scrapy.py" --concurrency "$CONC" \
      --timeout-ms "$SCRAPY_TIMEOUT_MS" "$port") ;;
    crawler) line=$(procs 1 "") ;;
    redis[123]) line=$(procs "${mode#redis}" "redis://127.0.0.1:$redis_port/crawlbench-$stamp-$mode-$rep") ;;
  esac
  local st=$?
  c1=$(cpu_ticks "$site_pid")
  [ -n "$redis_pid" ] && r1=$(cpu_ticks "$redis_pid")
  kill -TERM "$site_pid" 2>/dev/null
  wait "$site_pid" 2>/dev/null
  site_pid=
  req=$(awk '/^worker [0-9]*: [0-9]* requests/ { n += $3 } END { print n + 0 }' "$tmp/site")
  line=$(echo "$line" | grep '^RESULT' | tail -1)
  if [ "$st" != 0 ] || [ -z "$line" ]; then
    echo "run $rep $mode: FAILED (status $st)"
    return 1
  fi
  local pages
  pages=$(echo "$line" | sed -n 's/.* pages=\([0-9]*\).*/\1/p')
  line="$line mode=$mode rep=$rep site_requests=$req site_cpu_us_per_page=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v p="${pages:-0}" 'BEGIN { printf "%.1f", p ? t * 1e6 / hz / p : 0 }')"
  case "$mode" in
    redis*) line="$line redis_cpu_us_per_page=$(awk -v t=$((r1 - r0)) -v hz="$hz" -v p="${pages:-0}" 'BEGIN { printf "%.1f", p ? t * 1e6 / hz / p : 0 }')" ;;
  esac
  echo "$line" >>"$raw"
  echo "$line"
}

echo "uptime: $(uptime)"
echo "reps=$REPS conc=$CONC timeout_ms=$TIMEOUT_MS scrapy_timeout_ms=$SCRAPY_TIMEOUT_MS pages=$PAGES hang_share=$HANGS crawler_workers=$WORKERS"
echo "raw lines: $raw"
failed=0
for r in $(seq "$REPS"); do
  for m in $modes; do
    case "$skip" in *" $m "*) continue ;; esac
    run "$m" "$r" || failed=1
  done
done
echo "uptime: $(uptime)"

label() {
  case "$1" in
    weft1) echo "weft (weft-bench crawl), 1 worker" ;;
    weft2) echo "weft (weft-bench crawl), 2 workers" ;;
    go1) echo "Go net/http, GOMAXPROCS 1" ;;
    go2) echo "Go net/http, GOMAXPROCS 2" ;;
    scrapy) echo "Scrapy" ;;
    crawler) echo "examples/crawler, 1 process, no Redis" ;;
    redis1) echo "examples/crawler --redis, 1 process" ;;
    redis2) echo "examples/crawler --redis, 2 processes" ;;
    redis3) echo "examples/crawler --redis, 3 processes" ;;
  esac
}
echo
echo "Medians of $REPS runs (crawler CPU: user + system of the crawler's processes)."
echo
echo "| crawler | pages/s | crawler CPU µs/page | pages | errors | site CPU µs/page | Redis CPU µs/page |"
echo "|---|---|---|---|---|---|---|"
for m in $modes; do
  awk -v m="$m" -v label="$(label "$m")" '
    function val(k,   i, kv) { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2); return "" }
    function med(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
    val("mode") == m { k++; r[k] = val("pages_per_s"); c[k] = val("cpu_us_per_page"); p[k] = val("pages"); e[k] = val("errors"); s[k] = val("site_cpu_us_per_page"); d[k] = val("redis_cpu_us_per_page") }
    END { if (k) printf "| %s | %.0f | %.1f | %d | %d | %.1f | %s |\n", label, med(r, k), med(c, k), med(p, k), med(e, k), med(s, k), d[1] == "" ? "–" : sprintf("%.1f", med(d, k)) }' "$raw"
done
# Every crawler must fetch what the others fetch: the site counts it.
awk '
  function val(k,   i) { for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2); return "" }
  { m = val("mode"); r = val("site_requests"); p = val("pages")
    if (!(m in seen)) { seen[m] = 1; order[++n] = m }
    if (ref == "") { ref = r; refm = m }
    if (r != ref) { printf "NOTE: %s rep %s: the site served %s requests, %s rep 1 %s\n", m, val("rep"), r, refm, ref; bad = 1 }
    if (p != r) printf "NOTE: %s rep %s: %s pages, but the site served %s requests\n", m, val("rep"), p, r }
  END { if (n && !bad) printf "every run made the site serve %s requests\n", ref }' "$raw"
exit "$failed"
