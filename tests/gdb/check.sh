#!/bin/sh
# tests/gdb/check.sh PROGRAM MODE: run tests/gdb/parked.c's PROGRAM under
# gdb in batch mode, stop it at gdbt_checkpoint (every task but main
# parked), run `info weft-tasks` and `weft-bt` on every task
# (tests/gdb/check.py), let it finish, and check the text:
#  - each named task is listed with the right state, the submitted one
#    (weft_runtime_submit: not in a worker's pool) too;
#  - the backtrace of each parked task names the function it blocks in and
#    its body, and reaches the stack's first frame; main's (running) names
#    gdbt_checkpoint; the never-run task has no saved context;
#  - the thread's registers are the same after the weft-bt calls, and the
#    program then runs to its end and prints "parked: ok".
# MODE: "source" loads tools/gdb/weft-gdb.py with -x (a program linked with
# libweft.a); "autoload" lets gdb load the build tree's
# libweft.so.X.Y.Z-gdb.py beside the library (a program linked with
# libweft.so), trusting only that directory: LIBDIR is then the third
# argument.
# Exit status: 0 pass, 1 fail, 77 (CTest's SKIP_RETURN_CODE) without gdb
# or with a gdb that has no Python.
set -u
prog=$1
mode=$2
here=$(cd "$(dirname "$0")" && pwd)
ext=$here/../../tools/gdb/weft-gdb.py

if ! command -v gdb >/dev/null 2>&1; then
  echo "SKIP: gdb is not installed (scripts/setup.sh installs it)"
  exit 77
fi
if ! gdb -nx -batch -ex 'python print("py ok")' 2>/dev/null | grep -q 'py ok'; then
  echo "SKIP: this gdb has no Python support"
  exit 77
fi

case $mode in
source) load="-x $ext" ;;
autoload)
  libdir=$3
  ls "$libdir"/libweft.so.*-gdb.py >/dev/null 2>&1 || {
    echo "FAIL: no libweft.so.*-gdb.py in $libdir"
    exit 1
  }
  load="" ;;
*)
  echo "usage: $0 PROGRAM source|autoload [LIBDIR]" >&2
  exit 2 ;;
esac

# LeakSanitizer cannot run under ptrace (it aborts at exit under gdb): off
# for the program in ASan builds; the other ASan checks stay on.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS

out=$(mktemp "${TMPDIR:-/tmp}/weft-gdb-check.XXXXXX")
trap 'rm -f "$out"' EXIT
if [ "$mode" = autoload ]; then
  # -nx: no ~/.gdbinit. Only the build tree's library directory is trusted.
  timeout 120 gdb -nx -batch \
    -iex "set auto-load safe-path $libdir" \
    -ex 'break gdbt_checkpoint' -ex run -x "$here/check.py" -ex continue \
    "$prog" >"$out" 2>&1
else
  timeout 120 gdb -nx -batch $load \
    -ex 'break gdbt_checkpoint' -ex run -x "$here/check.py" -ex continue \
    "$prog" >"$out" 2>&1
fi
rc=$?
cat "$out"
echo "---- gdb exited with $rc"

fail=0
need() { # need DESCRIPTION EXTENDED-REGEX [SECTION]
  if [ $# -ge 3 ]; then
    text=$(awk -v s="==== weft-bt $3" '
      $0 == s { on = 1; next } /^====/ { on = 0 } on' "$out")
  else
    text=$(cat "$out")
  fi
  if printf '%s\n' "$text" | grep -Eq "$2"; then
    echo "ok: $1"
  else
    echo "FAIL: $1 (no match for /$2/)"
    fail=1
  fi
}

need "a runtime is listed" '^weft runtime 0 at 0x[0-9a-f]+: 1 worker, 7 tasks$'
need "main is running on worker 0" '^ +[0-9]+ +gdb-main +running +S +0 '
for t in gdb-sleeper gdb-locker gdb-eventer gdb-awaiter; do
  need "$t is waiting, with a saved stack pointer" \
    "^ +[0-9]+ +$t +waiting +[-J] +- +0 +0x[0-9a-f]+ +[0-9]+ B "
done
need "the submitted task is waiting, in no worker's pool" \
  '^ +[0-9]+ +foreign +waiting +- +- +- +0x[0-9a-f]+ +[0-9]+ B '
need "the unnamed task is new (never run)" '^ +[0-9]+ +task-[0-9]+ +new +S '
# The task dump's wait notes (record.h), named from weft_wait_kind_t.
need "the sleeper's wait is named" ' gdb-sleeper .* wait_kind=WEFT_WAIT_SLEEP '
need "the locker waits on its lock" \
  ' gdb-locker .* wait_kind=WEFT_WAIT_LOCK .*wait_obj=0x[0-9a-f]+'

need "sleeper's backtrace: gdbt_sleep_forever" ' in gdbt_sleep_forever ' gdb-sleeper
need "sleeper's backtrace: weft_sleep" ' in weft_sleep ' gdb-sleeper
need "sleeper's backtrace: its body" ' in sleeper_body ' gdb-sleeper
# The first frame of a task stack: the assembly switches' trampoline, or
# ctx_ucontext.c's entry in a WEFT_CTX=ucontext build.
need "sleeper's backtrace reaches the stack's first frame" \
  ' in (weft__ctx_trampoline|ucontext_entry) ' gdb-sleeper
need "locker's backtrace: gdbt_wait_lock" ' in gdbt_wait_lock ' gdb-locker
need "locker's backtrace: its body" ' in locker_body ' gdb-locker
need "eventer's backtrace: gdbt_wait_event" ' in gdbt_wait_event ' gdb-eventer
need "eventer's backtrace: weft_event_wait" ' in weft_event_wait ' gdb-eventer
need "awaiter's backtrace: gdbt_await_task" ' in gdbt_await_task ' gdb-awaiter
need "awaiter's backtrace: weft_task_await" ' in weft_task_await ' gdb-awaiter
need "submitted task's backtrace: gdbt_foreign_wait" ' in gdbt_foreign_wait ' foreign
need "submitted task's backtrace: its body" ' in foreign_body ' foreign
need "main's backtrace (running): gdbt_checkpoint" '^#0 +gdbt_checkpoint ' gdb-main
need "main's backtrace (running): async_main" ' in async_main ' gdb-main
need "the new task has no saved context" 'has no saved context \(never run\)'
need "an ambiguous id is refused" '^ambiguous: .*2 tasks have id 0 \(records 0x[0-9a-f]+, 0x[0-9a-f]+\): give the RECORD address instead$'
for f in gdbt_checkpoint gdbt_sleep_forever gdbt_wait_lock gdbt_wait_event \
  gdbt_await_task gdbt_foreign_wait; do
  need "weft-bt all shows $f" "(^#0 +| in )$f " all
done
need "weft-bt all: the new task too" 'has no saved context \(never run\)' all
need "registers and frame restored" '^==== registers kept: yes, frame async_main$'
need "the program then finished cleanly" '^parked: ok$'
need "and exited 0" 'exited normally'
if grep -q 'weft-bt failed\|Python Exception' "$out"; then
  echo "FAIL: a command failed"
  fail=1
fi
[ $fail -eq 0 ] && echo "gdb check: all passed ($mode)"
exit $fail
