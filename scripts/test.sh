#!/usr/bin/env bash
# scripts/test.sh: everything CI checks, from a fresh Debian 12 machine.
#
#  1. scripts/setup.sh installs what is missing.
#  2. apidoc:  scripts/check-api-doc.sh: docs/api.md has an entry for every
#              public declaration of include/ and names nothing else; then
#              its --self-test (each kind of drift, made on a copy, is
#              reported). Needs no build.
#  3. normal:  build/ (RelWithDebInfo, -DWEFT_WERROR=ON), ctest (with the
#              gdb_* tests, gdb in batch mode, and the valgrind_* ones,
#              examples under memcheck: about 1 min together).
#  4. layers:  scripts/check-layers.sh build: the module graph of src/, from
#              its #include lines and from build/'s library objects (nm),
#              has no cycle outside sched/; then its --self-test (a made-up
#              cycle in each graph is reported).
#  5. install: `cmake --install build` into a temporary prefix, then
#              tests/install/check.sh on it (pkg-config and find_package
#              consumers, SONAME, exported symbols, the gdb extension
#              auto-loaded).
#  6. demo:    scripts/demo.sh (the README's main demo command) on that same
#              build/: it must exit 0, and the crawl must print its summary.
#  7. tsan:    build-tsan/ (-DWEFT_SANITIZE=thread, no benchmarks), ctest.
#  8. asan:    build-asan/ (-DWEFT_SANITIZE=address: ASan+UBSan+LSan), ctest.
#
# Every stage runs even if an earlier one failed (except the layers check,
# the install check and the demo, which need the normal build); a summary
# line per stage and a total follow (each ctest test counts one, and so do
# the apidoc, layers, install and demo stages), and the exit status is
# non-zero if anything failed.
#
# Where a sanitizer cannot start with address space randomization on (gcc
# 12's TSan fails with "unexpected memory mapping" under the high mmap
# entropy of recent kernels), its tests run under `setarch -R`. If it cannot
# run at all the stage fails, unless WEFT_ALLOW_SANITIZER_SKIP=1 marks it
# skipped instead.
#
# Environment: CC (compiler, default cc), TSAN_OPTIONS, ASAN_OPTIONS,
# UBSAN_OPTIONS (defaults below), WEFT_CTEST_JOBS (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=$(nproc)
ctest_jobs=${WEFT_CTEST_JOBS:-2}
cc=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

summary=()
total_passed=0
total_failed=0
status=0

banner() { printf '\n======== %s ========\n' "$*"; }

# verdict STAGE RC PASS_DETAIL [FAIL_DETAIL]: count a stage that is one
# result (apidoc, layers, install, demo) and record it, timed from $start.
verdict() {
  if [[ $2 -eq 0 ]]; then
    total_passed=$((total_passed + 1))
    record "$1" PASS "$3" $((SECONDS - start))
  else
    total_failed=$((total_failed + 1))
    record "$1" FAIL "${4:-see above}" $((SECONDS - start))
  fi
}

# not_built STAGE: a stage that needs the normal build, which failed.
not_built() {
  total_failed=$((total_failed + 1))
  record "$1" FAIL "not run: the normal build failed" 0
}

# record STAGE RESULT DETAIL SECONDS
record() {
  summary+=("$(printf '%-8s %-8s %s (%ss)' "$1" "$2" "$3" "$4")")
  [[ $2 == PASS || $2 == SKIPPED ]] || status=1
}

# build DIR CMAKE_ARGS...: configure and build DIR.
build() {
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWEFT_BUILD_TESTS=ON -DWEFT_BUILD_EXAMPLES=ON "$@" || return 1
  cmake --build "$dir" -j "$jobs" || return 1
}

# run_ctest DIR [WRAPPER...]: run DIR's tests (through WRAPPER, e.g.
# setarch) and add their counts to the totals; sets ctest_detail.
run_ctest() {
  local dir=$1 rc=0 line passed failed n
  shift
  (cd "$dir" && "$@" ctest -j "$ctest_jobs" --output-on-failure \
    --no-tests=error) 2>&1 | tee "$tmp/ctest.log" || rc=$?
  # "100% tests passed, 0 tests failed out of 23"
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' \
    "$tmp/ctest.log" | tail -n 1 || true)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=${BASH_REMATCH[1]}
    n=${BASH_REMATCH[2]}
    passed=$((n - failed))
  else
    passed=0
    failed=1
  fi
  if [[ $rc -ne 0 && $failed -eq 0 ]]; then
    failed=1 # ctest itself failed (no tests found, a crash...)
  fi
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  ctest_detail="ctest: $passed passed, $failed failed"
  return "$rc"
}

# sanitizer_wrapper NAME FLAGS: decide how binaries built with FLAGS can run
# here; sets wrapper=() (directly), wrapper=(setarch ARCH -R) (without ASLR),
# or returns 1 (not at all, with the reason in wrapper_error).
sanitizer_wrapper() {
  local name=$1 flags=$2
  wrapper=()
  wrapper_error=
  cat >"$tmp/probe.c" <<'EOF'
#include <pthread.h>
#include <stdlib.h>
static void *run(void *arg) { return arg; }
int main(void) {
  pthread_t t;
  void *p = malloc(16);
  if (pthread_create(&t, NULL, run, p) != 0 || pthread_join(t, NULL) != 0)
    return 1;
  free(p);
  return 0;
}
EOF
  # shellcheck disable=SC2086 # FLAGS is a list of options
  if ! "$cc" $flags -pthread -o "$tmp/probe-$name" "$tmp/probe.c" \
    >"$tmp/probe.log" 2>&1; then
    wrapper_error="cannot build with $flags: $(head -n 3 "$tmp/probe.log")"
    return 1
  fi
  # Mapping conflicts depend on where the kernel put things: try a few times.
  probe_ok() {
    local _
    for _ in 1 2 3 4 5 6 7 8; do
      "$@" "$tmp/probe-$name" >"$tmp/probe.log" 2>&1 || return 1
    done
  }
  probe_ok && return 0
  wrapper_error=$(head -n 3 "$tmp/probe.log")
  wrapper=(setarch "$(uname -m)" -R)
  if probe_ok "${wrapper[@]}"; then
    echo "$name: the sanitizer needs ASLR off here; running tests under ${wrapper[*]}"
    return 0
  fi
  wrapper_error="$wrapper_error; under setarch -R: $(head -n 3 "$tmp/probe.log")"
  wrapper=()
  return 1
}

# sanitizer_stage NAME DIR FLAGS CMAKE_ARGS...
sanitizer_stage() {
  local name=$1 dir=$2 flags=$3 start=$SECONDS
  shift 3
  banner "$name: $dir ($*)"
  if ! sanitizer_wrapper "$name" "$flags"; then
    echo "$name: sanitizer cannot run on this machine: $wrapper_error" >&2
    if [[ ${WEFT_ALLOW_SANITIZER_SKIP:-0} == 1 ]]; then
      record "$name" SKIPPED "sanitizer cannot run here" $((SECONDS - start))
    else
      total_failed=$((total_failed + 1))
      record "$name" FAIL "sanitizer cannot run here (WEFT_ALLOW_SANITIZER_SKIP=1 skips)" \
        $((SECONDS - start))
    fi
    return 0
  fi
  if ! build "$dir" "$@"; then
    total_failed=$((total_failed + 1))
    record "$name" FAIL "build failed" $((SECONDS - start))
    return 0
  fi
  if run_ctest "$dir" "${wrapper[@]}"; then
    record "$name" PASS "$ctest_detail${wrapper:+ (under setarch -R)}" \
      $((SECONDS - start))
  else
    record "$name" FAIL "$ctest_detail" $((SECONDS - start))
  fi
}

banner "setup"
bash scripts/setup.sh
echo "$(cmake --version | head -n 1), $("$cc" --version | head -n 1), $jobs cores"

# 2. docs/api.md against the headers
start=$SECONDS
banner "apidoc: scripts/check-api-doc.sh"
rc=0
bash scripts/check-api-doc.sh && bash scripts/check-api-doc.sh --self-test || rc=1
verdict apidoc $rc "docs/api.md in step with include/; self-test"

# 3. normal tree
start=$SECONDS
normal_built=0
banner "normal: build/ (-DWEFT_WERROR=ON)"
if build build -DWEFT_WERROR=ON -DWEFT_SANITIZE= -DWEFT_BUILD_BENCH=ON; then
  normal_built=1
  if run_ctest build; then
    record normal PASS "$ctest_detail" $((SECONDS - start))
  else
    record normal FAIL "$ctest_detail" $((SECONDS - start))
  fi
else
  total_failed=$((total_failed + 1))
  record normal FAIL "build failed" $((SECONDS - start))
fi

# 4. the module graph of src/
start=$SECONDS
banner "layers: scripts/check-layers.sh build"
if [[ $normal_built -eq 1 ]]; then
  rc=0
  bash scripts/check-layers.sh build &&
    bash scripts/check-layers.sh --self-test || rc=1
  verdict layers $rc "no cycle outside sched/ (includes, objects); self-test"
else
  not_built layers
fi

# 5. install check
start=$SECONDS
banner "install: cmake --install build + tests/install/check.sh"
if [[ $normal_built -eq 1 ]]; then
  rc=0
  cmake --install build --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 &&
    bash tests/install/check.sh "$tmp/prefix" || rc=1
  [[ $rc -eq 0 ]] || cat "$tmp/install.log"
  verdict install $rc "check.sh: pkg-config and find_package consumers"
else
  not_built install
fi

# 6. the main demo command
start=$SECONDS
banner "demo: scripts/demo.sh"
if [[ $normal_built -eq 1 ]]; then
  demo_rc=0
  bash scripts/demo.sh >"$tmp/demo.log" 2>&1 || demo_rc=$?
  cat "$tmp/demo.log"
  rc=0
  [[ $demo_rc -eq 0 ]] && grep -q '^Crawled: ' "$tmp/demo.log" &&
    grep -q '^tls: [1-9][0-9]* handshakes' "$tmp/demo.log" &&
    grep -q '^demo: all [0-9]* examples ran$' "$tmp/demo.log" || rc=1
  verdict demo $rc "every example ran, the https crawl printed its summary" \
    "exit status $demo_rc, see above"
else
  not_built demo
fi

# 7, 8. sanitizer trees
sanitizer_stage tsan build-tsan "-fsanitize=thread" \
  -DWEFT_SANITIZE=thread -DWEFT_WERROR=OFF -DWEFT_BUILD_BENCH=OFF
sanitizer_stage asan build-asan "-fsanitize=address,undefined" \
  -DWEFT_SANITIZE=address -DWEFT_WERROR=OFF -DWEFT_BUILD_BENCH=OFF

banner "summary"
printf '%s\n' "${summary[@]}"
echo "total: $total_passed passed, $total_failed failed"
exit "$status"
