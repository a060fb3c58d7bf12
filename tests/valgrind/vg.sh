#!/bin/sh
# tests/valgrind/vg.sh PROGRAM [ARGS...]: run PROGRAM under valgrind's
# memcheck as the valgrind_* tests do (tests/valgrind/CMakeLists.txt): any
# memcheck error or definite leak makes it exit 1 (--error-exitcode),
# otherwise it exits with PROGRAM's status. Suppressions: weft.supp beside
# this script, each entry with its reason. Exits 77 (CTest's skip code)
# when valgrind is not installed.
if ! command -v valgrind >/dev/null 2>&1; then
  echo "SKIP: valgrind is not installed (scripts/setup.sh installs it)"
  exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
exec valgrind --tool=memcheck --error-exitcode=1 --quiet \
  --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --track-fds=no \
  --suppressions="$here/weft.supp" "$@"
