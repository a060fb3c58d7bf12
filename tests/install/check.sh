#!/usr/bin/env bash
# tests/install/check.sh PREFIX: check a weft installed into PREFIX (by
# `cmake --install BUILD --prefix PREFIX`) the way a user consumes it.
#
#  1. The headers, libweft.so (with the SONAME of include/weft/version.h's
#     ABI policy, exporting weft_* symbols only), libweft.a, weft.pc and the
#     CMake package are installed, and the version installed is the one
#     the source tree's CMakeLists.txt states (project(weft VERSION ...)).
#  2. consumer.c builds with `cc $(pkg-config --cflags --libs weft)` and runs,
#     and links statically with `pkg-config --static --libs weft`.
#  3. The CMake project beside this script finds the package with
#     find_package(weft) (CMAKE_PREFIX_PATH=PREFIX), and both of its programs,
#     linked with weft::weft and weft::weft_static, run.
#  4. The gdb extension is installed where gdb looks for libweft.so's
#     script (DATADIR/gdb/auto-load/REALPATH-OF-LIBWEFT.so.X.Y.Z-gdb.py) and
#     is tools/gdb/weft-gdb.py; with gdb installed, gdb auto-loads it for the
#     pkg-config consumer (that directory added to its auto-load paths) and
#     `info weft-tasks` and `weft-bt` work there (with the library's debug
#     information; told and skipped without it).
#
# Exits non-zero on the first failure. Uses $CC (default cc).
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PREFIX" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=$(cd "$1" && pwd)
cc=${CC:-cc}

work=$(mktemp -d "${TMPDIR:-/tmp}/weft-install-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
  echo "install check: FAIL: $*" >&2
  exit 1
}
step() { echo "== install check: $*"; }

# 1. What was installed.
step "installed files under $prefix"
pc=$(find "$prefix" -path '*/pkgconfig/weft.pc' | head -n 1)
[[ -n $pc ]] || fail "no pkgconfig/weft.pc under $prefix"
PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
pkg-config --exists --print-errors weft || fail "pkg-config cannot use $pc"
version=$(pkg-config --modversion weft)
libdir=$(pkg-config --variable=libdir weft)
includedir=$(pkg-config --variable=includedir weft)
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] ||
  fail "weft.pc: bad version '$version'"
major=${BASH_REMATCH[1]}
minor=${BASH_REMATCH[2]}
# The version this source tree builds, from its CMakeLists.txt.
want_version=$(sed -n 's/^project(weft VERSION \([0-9.]*\).*/\1/p' \
  "$here/../../CMakeLists.txt")
[[ -n $want_version ]] ||
  fail "no 'project(weft VERSION X.Y.Z' line in $here/../../CMakeLists.txt"
[[ $version == "$want_version" ]] ||
  fail "weft.pc says version $version, CMakeLists.txt $want_version"
for dir in "$libdir" "$includedir"; do
  case $(realpath -m "$dir")/ in
  "$(realpath "$prefix")"/*) ;;
  *) fail "weft.pc: $dir is not under $prefix" ;;
  esac
done
[[ -f $includedir/weft.h ]] || fail "$includedir/weft.h missing"
for h in "$here"/../../include/weft/*.h; do
  [[ -f $includedir/weft/$(basename "$h") ]] ||
    fail "$includedir/weft/$(basename "$h") missing"
done
[[ -f $libdir/libweft.a ]] || fail "$libdir/libweft.a missing"
[[ -e $libdir/libweft.so ]] || fail "$libdir/libweft.so (namelink) missing"
cmakedir=$(find "$prefix" -name weftConfig.cmake -printf '%h\n' | head -n 1)
[[ -n $cmakedir ]] || fail "no weftConfig.cmake under $prefix"
for f in weftConfigVersion.cmake weftTargets.cmake weftStaticTargets.cmake; do
  [[ -f $cmakedir/$f ]] || fail "$cmakedir/$f missing"
done
echo "weft $version: headers in $includedir, libraries in $libdir"

# The SONAME follows the ABI policy of include/weft/version.h:
# libweft.so.MAJOR, or libweft.so.0.MINOR while MAJOR is 0.
step "SONAME and exported symbols of libweft.so"
so=$(readlink -f "$libdir/libweft.so")
soname=$(readelf -d -W "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[[ -n $soname ]] || fail "$so has no SONAME"
if [[ $major == 0 ]]; then
  want_soname=libweft.so.0.$minor
else
  want_soname=libweft.so.$major
fi
[[ $soname == "$want_soname" ]] ||
  fail "$so: SONAME is $soname, expected $want_soname"
[[ -e $libdir/$soname ]] || fail "$libdir/$soname (the SONAME link) missing"
echo "SONAME $soname"

# Defined global/weak dynamic symbols (readelf --dyn-syms: Num Value Size
# Type Bind Vis Ndx Name). The symbol-less ABS markers some linkers add
# (_edata, _end, __bss_start) and _init/_fini are not API, so not counted.
exported=$(readelf --dyn-syms -W "$so" |
  awk '$5 == "GLOBAL" || $5 == "WEAK" {
         if ($7 == "UND") next
         name = $8; sub(/@.*/, "", name)
         if (name ~ /^(_init|_fini|_edata|_end|__bss_start)$/) next
         print name
       }' | sort -u)
[[ -n $exported ]] || fail "$so exports no symbol at all"
stray=$(grep -v '^weft_' <<<"$exported" || true)
internal=$(grep '^weft__' <<<"$exported" || true)
if [[ -n $stray || -n $internal ]]; then
  echo "symbols exported by $so that are not public weft_* API:" >&2
  printf '%s\n%s\n' "$stray" "$internal" | sed '/^$/d; s/^/  /' >&2
  fail "libweft.so exports non-API symbols (missing -fvisibility=hidden or .hidden in assembly?)"
fi
for sym in weft_run weft_spawn weft_task_await weft_version_string; do
  grep -qx "$sym" <<<"$exported" || fail "$so does not export $sym"
done
echo "$(wc -l <<<"$exported") symbols exported, all weft_*"

# Not fatal: internal symbols of the static library should be weft__*, so
# that linking libweft.a cannot clash with the program's own names.
pollution=$(nm -g --defined-only "$libdir/libweft.a" 2>/dev/null |
  awk 'NF == 3 { print $3 }' | grep -v '^weft_' | sort -u || true)
if [[ -n $pollution ]]; then
  echo "warning: libweft.a defines global symbols outside the weft_ namespace:" \
    "$(tr '\n' ' ' <<<"$pollution")" >&2
fi

run_consumer() { # run_consumer NAME BINARY
  local out
  out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$2") ||
    fail "$1 exited with status $?"
  echo "$1: $out"
  [[ $out == "consumer ok weft $version" ]] ||
    fail "$1 printed '$out', expected 'consumer ok weft $version'"
}

# 2. pkg-config.
step "pkg-config: $cc consumer.c \$(pkg-config --cflags --libs weft)"
read -ra cflags <<<"$(pkg-config --cflags weft)"
read -ra libs <<<"$(pkg-config --libs weft)"
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$work/consumer_pc" \
  "$here/consumer.c" "${cflags[@]}" "${libs[@]}" ||
  fail "building consumer.c with pkg-config failed"
readelf -d -W "$work/consumer_pc" | grep -q "(NEEDED).*\[$soname\]" ||
  fail "consumer_pc does not depend on $soname"
run_consumer consumer_pc "$work/consumer_pc"

step "pkg-config: static link with \$(pkg-config --static --libs weft)"
read -ra slibs <<<"$(pkg-config --static --libs weft)"
for i in "${!slibs[@]}"; do
  [[ ${slibs[i]} == -lweft ]] && slibs[i]=$libdir/libweft.a
done
"$cc" -std=c11 -o "$work/consumer_pc_static" "$here/consumer.c" \
  "${cflags[@]}" "${slibs[@]}" ||
  fail "linking consumer.c with libweft.a and pkg-config --static failed"
if readelf -d -W "$work/consumer_pc_static" | grep -q '(NEEDED).*libweft'; then
  fail "consumer_pc_static depends on libweft.so"
fi
run_consumer consumer_pc_static "$work/consumer_pc_static"

# 3. find_package(weft).
step "CMake: find_package(weft $major.$minor) with CMAKE_PREFIX_PATH=$prefix"
cmake -S "$here" -B "$work/cmake" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DWEFT_REQUIRE_VERSION="$major.$minor" \
  -DCMAKE_C_COMPILER="$cc" >"$work/cmake.log" 2>&1 || {
  cat "$work/cmake.log" >&2
  fail "configuring tests/install with find_package(weft) failed"
}
weft_dir=$(sed -n 's/^weft_DIR:PATH=//p' "$work/cmake/CMakeCache.txt")
[[ $weft_dir -ef $cmakedir ]] ||
  fail "find_package(weft) used $weft_dir, not $cmakedir"
cmake --build "$work/cmake" -j "$(nproc)" >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  fail "building tests/install with weft::weft failed"
}
run_consumer consumer "$work/cmake/consumer"
run_consumer consumer_static "$work/cmake/consumer_static"

# 4. The gdb extension.
step "gdb extension: DATADIR/gdb/auto-load$(realpath "$so")-gdb.py"
# (Found by name: the path under auto-load is LIBDIR as installed, which is
# the real path unless the prefix has symbolic links; gdb's run below says
# whether it is found.)
gdbpy=$(find "$prefix" -path "*/gdb/auto-load/*" \
  -name "$(basename "$(realpath "$so")")-gdb.py" | head -n 1)
[[ -n $gdbpy ]] ||
  fail "no gdb/auto-load$(realpath "$so")-gdb.py under $prefix"
cmp -s "$gdbpy" "$here/../../tools/gdb/weft-gdb.py" ||
  fail "$gdbpy differs from tools/gdb/weft-gdb.py"
autoload=${gdbpy%%/gdb/auto-load/*}/gdb/auto-load
echo "installed: $gdbpy"
if ! command -v gdb >/dev/null 2>&1; then
  echo "gdb not installed: auto-load not checked"
elif ! readelf -S -W "$so" | grep -q '\.debug_info'; then
  echo "$so has no debug information: auto-load not checked"
else
  # Stopped in square(), the task consumer.c's main task awaits: two tasks
  # (main cannot have ended); weft-bt of the running one (its id depends on
  # the worker main runs on) shows square.
  out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    timeout 120 gdb -nx -batch \
    -iex "add-auto-load-scripts-directory $autoload" \
    -iex "add-auto-load-safe-path $autoload" \
    -ex 'break square' -ex run -ex 'info weft-tasks' \
    -ex 'python [gdb.execute("weft-bt " + l.split()[0]) for l in
      gdb.execute("info weft-tasks", to_string=True).splitlines()
      if " running " in l]' \
    -ex continue "$work/consumer_pc" 2>&1) || true
  grep -Eq '^weft runtime 0 at 0x[0-9a-f]+: [0-9]+ workers?, 2 tasks$' \
    <<<"$out" && grep -Eq '^#0 .*square \(' <<<"$out" &&
    grep -q "consumer ok weft $version" <<<"$out" || {
    echo "$out" >&2
    fail "gdb did not auto-load $gdbpy, or its commands failed"
  }
  echo "gdb auto-loaded it: info weft-tasks and weft-bt work"
fi

echo "install check: all passed (weft $version in $prefix)"
