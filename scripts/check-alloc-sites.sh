#!/usr/bin/env bash
# scripts/check-alloc-sites.sh SRC_DIR: fail if the library allocates or
# frees memory other than through its one internal allocator (src/alloc.c),
# which weft_replace_allocator() replaces and the allocation-failure sweep
# (tests/api/alloc_fail.c) relies on to reach every site. Comment lines are
# skipped. Run by CTest as unit_alloc_sites.
set -euo pipefail
src=${1:-$(dirname "${BASH_SOURCE[0]}")/../src}
pattern='(^|[^_[:alnum:]])(malloc|calloc|realloc|free|aligned_alloc|posix_memalign|strdup|strndup)[[:space:]]*\('
# FILE:LINE:TEXT, then the text without comments (whole comment lines,
# /* ... */ and // tails), then the pattern again on what is left.
hits=$(find "$src" -name '*.[ch]' ! -name 'alloc.c' -print0 |
  xargs -0 grep -nE "$pattern" |
  sed -E 's#^([^:]+:[0-9]+:)[[:space:]]*(/?\*|//).*#\1#; s#/\*([^*]|\*+[^*/])*\*+/##g; s#//.*##' |
  grep -E "$pattern" || true)
if [[ -n $hits ]]; then
  echo "check-alloc-sites: direct C-library allocation in the library (use weft__malloc and friends, src/alloc.h):"
  echo "$hits"
  exit 1
fi
echo "check-alloc-sites: every allocation in $src goes through src/alloc.c"
