#!/usr/bin/env bash
# crawl_redis_test.sh SITE CRAWLER REDIS_SERVER REDIS_CLI [SLOW]
#
# SLOW (default 1) multiplies the leases: the sanitizer builds run ten
# times slower on a loaded machine, where a renewal can come too late.
#
# The crawler's Redis frontier (crawl_redis.h) with several processes. A
# redis-server and examples/site (--hits: how often each page was served)
# are started on free loopback ports; a one-process crawl without Redis
# gives the reachable set. Then, each on a fresh site and key prefix:
#   A. three crawlers on one Redis: the pages served are the reachable set,
#      each served once, the slow ones too although they take longer than
#      a lease (renewed); --status says the crawl is complete;
#   B. three crawlers, one killed with SIGKILL mid-crawl: every page is
#      still served, and the pages served twice are at most the leases the
#      dead process held when it died (printed);
#   C. three crawlers stopped with SIGINT mid-crawl, then three started
#      again: every page served, and twice at most for the fetches the stop
#      cancelled (printed); --status says running, then complete;
#   D. Redis (append-only file, fsync always) killed mid-crawl and started
#      again a second later: the crawlers report it, retry, finish, and
#      every page is served exactly once. (Leases of 10 s here: an outage
#      longer than a lease lets the URLs in flight expire and be fetched
#      again, which B already covers.)
# B, C and D use --host-delay-ms 5 (politeness across processes), which
# also makes the crawl last long enough to interrupt: the crawl then
# cannot take less than (pages - 1) * 5 ms, which A' checks.
set -u
SITE=$1 CRAWLER=$2 REDIS_SERVER=$3 REDIS_CLI=$4 SLOW=${5:-1}
T=$(mktemp -d "${TMPDIR:-/tmp}/crawl_redis_test.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

SITE_ARGS=(--pages 300 --hang-share 0 --slow-ms 300 --workers 2 --quiet)
CRAWL_ARGS=(--quiet --workers 2 --timeout $((5000 * SLOW)) --lease-ms $((2000 * SLOW)))

RPORT=$(free_port)
RDIR=$T/redis
mkdir -p "$RDIR"
REDIS_URL=redis://127.0.0.1:$RPORT
RPID=
start_redis() { # extra args...
  "$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --dir "$RDIR" --save '' \
    --daemonize no --loglevel warning "$@" >/dev/null &
  RPID=$!
  PIDS+=("$RPID")
  for _ in $(seq 500); do
    "$REDIS_CLI" -p "$RPORT" ping >/dev/null 2>&1 && return 0
    sleep 0.02
  done
  fail "redis-server did not start"
}
rcli() { "$REDIS_CLI" -p "$RPORT" "$@"; }

SPID= SPORT=
start_site() { # hits-file [site args...]
  local hits=$1
  shift
  "$SITE" "${SITE_ARGS[@]}" "$@" --port 0 --hits "$hits" >"$T/site.out" &
  SPID=$!
  PIDS+=("$SPID")
  for _ in $(seq 500); do
    SPORT=$(sed -n 's/^Serving on .*:\([0-9]*\)$/\1/p' "$T/site.out")
    [ -n "$SPORT" ] && return 0
    sleep 0.02
  done
  fail "site did not start"
}
stop_site() {
  kill -TERM "$SPID"
  wait "$SPID" || fail "site exited with $?"
}

# crawler NAME OUT [args...]: one crawler in the background; pid in CPID
crawler() {
  local name=$1 out=$2
  shift 2
  "$CRAWLER" "${CRAWL_ARGS[@]}" "$@" --redis "$REDIS_URL/$name" \
    "http://127.0.0.1:$SPORT/" >"$out.out" 2>"$out.err" &
  CPID=$!
  PIDS+=("$CPID")
}
status() { "$CRAWLER" --redis "$REDIS_URL/$1" --status; }
done_count() { status "$1" 2>/dev/null | sed -n 's/.* leased, \([0-9]*\) done.*/\1/p'; }
wait_done_at_least() { # name n
  for _ in $(seq 1000); do
    local d
    d=$(done_count "$1")
    [ -n "$d" ] && [ "$d" -ge "$2" ] && return 0
    sleep 0.01
  done
  fail "$1: never reached $2 pages done"
}

# check_hits FILE MAXDUP: every page was served at least as often as in
# the reference crawl (a page may have several URLs: "?rev=N" links), and
# DUPS, the servings beyond that, is at most MAXDUP.
check_hits() {
  local f=$1 max=$2
  local missing
  missing=$(awk 'NR == FNR {want[$1] = $2; next} {got[$1] = $2}
    END {for (p in want) if (got[p] < want[p]) print p;
         for (p in got) if (!(p in want)) print p}' "$T/hits0" "$f" | head -5)
  [ -z "$missing" ] || fail "$f: pages served differ from the reference: $missing"
  DUPS=$(awk 'NR == FNR {want[$1] = $2; next} {d += $2 - want[$1]}
    END {print d + 0}' "$T/hits0" "$f")
  [ "$DUPS" -le "$max" ] || fail "$f: $DUPS servings beyond one per URL, more than $max"
}

start_redis --appendonly no

# The reachable set: one process, the local frontier.
start_site "$T/hits0"
"$CRAWLER" --quiet --log "$T/ref.log" "http://127.0.0.1:$SPORT/" >/dev/null ||
  fail "reference crawl"
stop_site
NREACH=$(grep -c . "$T/ref.log")
[ "$NREACH" -gt 200 ] || fail "reference crawl found only $NREACH URLs"
echo "reachable: $NREACH URLs"

# A. three processes; the slow pages take 2 s, longer than the 1.2 s
# leases, which their process renews meanwhile (the same pages and links:
# --slow-ms changes only the delay)
start_site "$T/hitsA" --slow-ms 2000
crawler a "$T/a1" --lease-ms $((1200 * SLOW)); A1=$CPID
crawler a "$T/a2" --lease-ms $((1200 * SLOW)); A2=$CPID
crawler a "$T/a3" --lease-ms $((1200 * SLOW)); A3=$CPID
for p in $A1 $A2 $A3; do wait "$p" || fail "A: crawler exited with $?"; done
stop_site
check_hits "$T/hitsA" 0
EXPIRED=$(rcli HGET a:stats expired)
[ -z "$EXPIRED" ] || [ "$EXPIRED" -eq 0 ] ||
  fail "A: $EXPIRED leases expired: their processes did not renew them"
status a | grep -q "; complete$" || fail "A: --status: $(status a)"
echo "A: 3 processes: $NREACH URLs, each fetched once; $(status a | head -1)"

# B. one of three killed with SIGKILL mid-crawl
start_site "$T/hitsB"
crawler b "$T/b1" --host-delay-ms 5; B1=$CPID
crawler b "$T/b2" --host-delay-ms 5; B2=$CPID
crawler b "$T/b3" --host-delay-ms 5; B3=$CPID
wait_done_at_least b 60
kill -9 "$B1"
wait "$B1" 2>/dev/null
HELD=$(rcli HVALS b:owner | grep -c ":$B1\$")
for p in $B2 $B3; do wait "$p" || fail "B: crawler exited with $?"; done
stop_site
check_hits "$T/hitsB" "$HELD"
status b | grep -q "; complete$" || fail "B: --status: $(status b)"
echo "B: SIGKILL mid-crawl: every page served; $DUPS served twice," \
  "the dead process held $HELD leases"

# C. every process stopped with SIGINT, then started again
start_site "$T/hitsC"
START=$(date +%s%N)
crawler c "$T/c1" --host-delay-ms 5; C1=$CPID
crawler c "$T/c2" --host-delay-ms 5; C2=$CPID
crawler c "$T/c3" --host-delay-ms 5; C3=$CPID
wait_done_at_least c 60
kill -INT "$C1" "$C2" "$C3"
for p in $C1 $C2 $C3; do
  wait "$p"
  rc=$?
  [ "$rc" -eq 130 ] || [ "$rc" -eq 0 ] || fail "C: stopped crawler exited with $rc"
done
CANCELLED=$(cat "$T"/c[123].out | sed -n 's/^cancelled: //p' | awk '{s += $1} END {print s + 0}')
status c | grep -q "; running$" || fail "C: --status after the stop: $(status c)"
MID=$(done_count c)
crawler c "$T/c4" --host-delay-ms 5; C4=$CPID
crawler c "$T/c5" --host-delay-ms 5; C5=$CPID
crawler c "$T/c6" --host-delay-ms 5; C6=$CPID
for p in $C4 $C5 $C6; do wait "$p" || fail "C: restarted crawler exited with $?"; done
END=$(date +%s%N)
stop_site
check_hits "$T/hitsC" "$CANCELLED"
status c | grep -q "; complete$" || fail "C: --status: $(status c)"
echo "C: stopped after $MID pages and restarted: every page served;" \
  "$DUPS served twice, $CANCELLED fetches were cancelled by the stop"
# A'. politeness across processes: one origin, 5 ms between two takes
MS=$(((END - START) / 1000000))
[ "$MS" -ge $(((NREACH - 1) * 5)) ] ||
  fail "C: $NREACH pages of one origin in $MS ms, under 5 ms apart"
echo "A': --host-delay-ms 5 over 3 processes: $NREACH pages in $MS ms"

# D. Redis killed mid-crawl and started again, with persistence
kill -TERM "$RPID"
wait "$RPID" 2>/dev/null
start_redis --appendonly yes --appendfsync always
start_site "$T/hitsD"
crawler d "$T/d1" --host-delay-ms 5 --lease-ms $((10000 * SLOW)); D1=$CPID
crawler d "$T/d2" --host-delay-ms 5 --lease-ms $((10000 * SLOW)); D2=$CPID
crawler d "$T/d3" --host-delay-ms 5 --lease-ms $((10000 * SLOW)); D3=$CPID
wait_done_at_least d 60
kill -9 "$RPID"
wait "$RPID" 2>/dev/null
sleep 1
start_redis --appendonly yes --appendfsync always
for p in $D1 $D2 $D3; do wait "$p" || fail "D: crawler exited with $?"; done
stop_site
check_hits "$T/hitsD" 0
for f in "$T"/d[123].err; do
  grep -q "unreachable" "$f" || fail "D: $f does not report the outage"
  grep -q "reachable again" "$f" || fail "D: $f does not report the return"
done
status d | grep -q "; complete$" || fail "D: --status: $(status d)"
echo "D: Redis killed and restarted mid-crawl: reported by every crawler," \
  "every page served once; $(status d | head -1)"
echo "PASS"
