#!/usr/bin/env bash
# scripts/check-layers.sh: fail when the module graph of src/ has a cycle
# outside sched/ (docs/design.md §1, "Layers"). Needs bash, python3 and,
# for the object graph, binutils' nm.
#
#   bash scripts/check-layers.sh BUILD_DIR [ROOT]
#       check ROOT's src/ (default: this checkout) and the library objects
#       of BUILD_DIR (a configured and built tree of ROOT)
#   bash scripts/check-layers.sh --self-test
#       make sure that a made-up cycle is reported, in each graph
#
# Modules: foo.c and its header (foo.h, or foo_int.h; timer.h is time.c's)
# are one module; every file under sched/ is the one module "sched" (its
# files call one another both ways: the run loop, the switch, the timers);
# every file under io/ is the module "io", every file under sync/ the module
# "sync", every file under ctx/ the module "ctx".
#
# Two graphs, both must be acyclic once each module is one node:
#  (a) includes: an edge from a file's module to the module of every
#      `#include "..."` it has (src/ only; public headers are no module);
#  (b) objects: an edge from an object's module to the module of the object
#      that defines each symbol it leaves undefined (`nm`), which also
#      catches calls declared in some other module's header.
# A cycle is reported with the edges that make it (the include line, or
# the symbol), and the exit status is 1; 0 when both graphs are acyclic,
# 2 on a usage error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

check() { # check SRC_DIR OBJ_DIR
  python3 - "$1" "$2" <<'PY'
import os, re, subprocess, sys
from collections import defaultdict

src, objdir = sys.argv[1], sys.argv[2]
ALIAS = {"timer": "time"}  # header name -> module of its .c

def module(rel):
    """Module of a path relative to src/ (x.c, x.h, x_int.h, x.c.o)."""
    rel = rel.replace(os.sep, "/")
    top = rel.split("/")[0]
    if top in ("sched", "io", "sync", "ctx") and "/" in rel:
        return top
    base = re.sub(r"\.(c|h|S)(\.o)?$", "", rel)
    base = re.sub(r"_int$", "", base)
    return ALIAS.get(base, base)

def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    nodes = set(edges) | {d for v in edges.values() for d in v}
    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out

def report(kind, edges, why):
    bad = 0
    for comp in cycles(edges):
        bad = 1
        print(f"check-layers: {kind} graph: cycle among {', '.join(comp)}:")
        for a in comp:
            for b in sorted(edges[a] & set(comp)):
                print(f"  {a} -> {b}: {', '.join(sorted(why[a, b])[:4])}")
    return bad

# (a) includes
inc, inc_why = defaultdict(set), defaultdict(set)
if src != "-":
    for d, _, files in os.walk(src):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(d, f)
            rel = os.path.relpath(path, src)
            m = module(rel)
            for n, line in enumerate(open(path, errors="replace"), 1):
                mm = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not mm:
                    continue
                target = mm.group(1)
                # relative to the file's directory first, then src/
                cand = [os.path.join(d, target), os.path.join(src, target)]
                hit = next((c for c in cand if os.path.isfile(c)), None)
                if hit is None:
                    continue  # a public header (include/) or a system one
                t = module(os.path.relpath(hit, src))
                if t != m:
                    inc[m].add(t)
                    inc_why[m, t].add(f"{rel}:{n} includes \"{target}\"")

# (b) objects
obj, obj_why = defaultdict(set), defaultdict(set)
if objdir != "-":
    objs = []
    for d, _, files in os.walk(objdir):
        objs += [os.path.join(d, f) for f in files if f.endswith(".o")]
    if not objs:
        print(f"check-layers: no object files under {objdir}")
        sys.exit(2)
    defs, undef = {}, defaultdict(set)
    for o in objs:
        m = module(os.path.relpath(o, objdir))
        out = subprocess.run(["nm", o], capture_output=True, text=True,
                             check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBRVW":
                defs[p[2]] = m
            elif len(p) == 2 and p[0] == "U":
                undef[m].add(p[1])
    for m, syms in undef.items():
        for s in syms:
            t = defs.get(s)
            if t is not None and t != m:
                obj[m].add(t)
                obj_why[m, t].add(s)

bad = report("include", inc, inc_why) | report("object", obj, obj_why)
if not bad:
    print(f"check-layers: no cycle outside sched/ "
          f"({len(set(inc) | {t for v in inc.values() for t in v})} modules "
          f"by includes, {len(set(obj) | {t for v in obj.values() for t in v})}"
          f" by objects)")
sys.exit(bad)
PY
}

self_test() {
  local tmp rc failures=0
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-layers.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  # Includes: src/ as it is, plus one upward include in the scheduler.
  cp -r "$here/../src" "$tmp/src"
  printf '#include "task_int.h"\n' >>"$tmp/src/sched/worker.c"
  rc=0
  check "$tmp/src" - >"$tmp/out" 2>&1 || rc=$?
  if [[ $rc -eq 1 ]] && grep -q 'include graph: cycle among .*sched' "$tmp/out" &&
    grep -q 'sched/worker.c:[0-9]* includes "task_int.h"' "$tmp/out"; then
    echo "self-test: ok: an upward include is reported"
  else
    echo "self-test: FAILED: an upward include was not reported (exit $rc):"
    cat "$tmp/out"
    failures=$((failures + 1))
  fi
  # Objects: a.o calls b.o and b.o calls a.o; then the same without the
  # call back, which must pass.
  mkdir -p "$tmp/obj" "$tmp/ok"
  printf 'int fb(int);\nint fa(int x) { return x ? fb(x - 1) : 0; }\n' >"$tmp/a.c"
  printf 'int fa(int);\nint fb(int x) { return fa(x); }\n' >"$tmp/b.c"
  printf 'int fb(int x) { return x; }\n' >"$tmp/b_ok.c"
  cc -c -o "$tmp/obj/a.c.o" "$tmp/a.c"
  cc -c -o "$tmp/obj/b.c.o" "$tmp/b.c"
  cp "$tmp/obj/a.c.o" "$tmp/ok/a.c.o"
  cc -c -o "$tmp/ok/b.c.o" "$tmp/b_ok.c"
  rc=0
  check - "$tmp/obj" >"$tmp/out" 2>&1 || rc=$?
  if [[ $rc -eq 1 ]] && grep -q 'object graph: cycle among a, b' "$tmp/out" &&
    grep -q 'a -> b: fb' "$tmp/out" && grep -q 'b -> a: fa' "$tmp/out"; then
    echo "self-test: ok: a call cycle between objects is reported"
  else
    echo "self-test: FAILED: a call cycle was not reported (exit $rc):"
    cat "$tmp/out"
    failures=$((failures + 1))
  fi
  rc=0
  check - "$tmp/ok" >"$tmp/out" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "self-test: ok: calls one way pass"
  else
    echo "self-test: FAILED: calls one way were reported (exit $rc):"
    cat "$tmp/out"
    failures=$((failures + 1))
  fi
  if [[ $failures -ne 0 ]]; then
    echo "self-test: $failures check(s) failed"
    return 1
  fi
  echo "self-test: every made-up cycle was reported"
}

case ${1:-} in
--self-test)
  self_test
  ;;
"" | -*)
  echo "usage: $0 BUILD_DIR [ROOT] | --self-test" >&2
  exit 2
  ;;
*)
  build=$1
  root=${2:-$here/..}
  objdir=$build/src/CMakeFiles/weft_objects.dir
  if [[ ! -d $objdir ]]; then
    echo "check-layers: $objdir not found: configure and build $build first" >&2
    exit 2
  fi
  check "$root/src" "$objdir"
  ;;
esac
