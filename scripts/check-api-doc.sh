#!/usr/bin/env bash
# scripts/check-api-doc.sh: fail when docs/api.md has drifted from the public
# headers (include/weft.h, include/weft/*.h). Needs only bash, sed and a POSIX
# awk (Debian's mawk), so CI runs it before anything is built.
#
#   bash scripts/check-api-doc.sh [ROOT]     check ROOT (default: this checkout)
#   bash scripts/check-api-doc.sh --self-test
#                                            check this checkout, then make
#                                            sure that each kind of drift, made
#                                            on a copy, is reported
#
# What the headers declare (comments stripped, continuation lines joined):
#   function  every WEFT_EXTERN declaration;
#   type      every typedef name (weft_*_t, weft_*_fn);
#   tag       a struct or enum tag with no typedef (enum weft_errno);
#   constant  every #define WEFT_* (include guards aside), every enumerator,
#             and every error code of WEFT_ERRNO_MAP (WEFT_<name>);
#   field     every member of a public struct (weft_config_t.offload_grace_ms).
# Names that end in '_' (opaque_, WEFT_ERRNO_MAX_) are private by the
# headers' convention: they need no entry, but api.md may name them.
#
# What counts as an entry in api.md, always under the "## weft/X.h" section
# of the header that declares the name:
#   function, type  a "### " heading that names it, or its declaration in a
#                   code block (a prototype "int weft_x(", "typedef ... name;",
#                   "} name;", "(*name)(");
#   tag, constant   named in backticks or in a code block of that section
#                   (the constants tables, the error-code table and list);
#   field           named in the "### " entry of its struct (the one whose
#                   heading or code declaration names the struct).
#
# And the other way round: every weft_* / WEFT_* name anywhere in api.md
# (headings, code, prose, links) must be a name the headers' code contains;
# "WEFT_EAI_*" and "weft_{lock,event}_..." are prefixes, and some header name
# must start with them.
#
# Exit status: 0 when in step, 1 with one line per problem otherwise, 2 on a
# usage error.
set -euo pipefail

self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
default_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-apidoc.XXXXXX")
trap 'rm -rf "$work"' EXIT

# strip_header FILE: the file without comments, continuation lines joined,
# with the same number of lines otherwise.
strip_header() {
  awk '
    {
      line = $0; out = ""
      while (length(line) > 0) {
        if (incomment) {
          i = index(line, "*/")
          if (i == 0) { line = ""; break }
          line = substr(line, i + 2); incomment = 0
        } else {
          i = index(line, "/*")
          if (i == 0) { out = out line; line = ""; break }
          out = out substr(line, 1, i - 1) " "
          line = substr(line, i + 2); incomment = 1
        }
      }
      sub(/\/\/.*$/, "", out)
      if (out ~ /\\[ \t]*$/) { sub(/\\[ \t]*$/, " ", out); pending = pending out; next }
      print pending out; pending = ""
    }
    END { if (pending != "") print pending }
  ' "$1"
}

# header_decls FILE SECTION: one line per declaration,
# "KIND NAME SECTION PARENT" (PARENT "-" but for fields), and one line
# "known NAME" per weft_/WEFT_ identifier in the code.
header_decls() {
  strip_header "$1" | awk -v OFS='\t' -v section="$2" '
    function known_tokens(s,   t) {
      while (match(s, /[A-Za-z_][A-Za-z0-9_]*/)) {
        t = substr(s, RSTART, RLENGTH)
        if (t ~ /^(weft|WEFT)_/) print "known", t
        s = substr(s, RSTART + RLENGTH)
      }
    }
    function emit(kind, name, parent) {
      if (name ~ /_$/) return        # private by convention
      print kind, name, section, parent
    }
    # The statement that just ended at depth 0 (tokens st[1..ns]).
    function statement(   i, name, extern, paren) {
      extern = 0; paren = 0
      for (i = 1; i <= ns; i++) {
        if (st[i] == "WEFT_EXTERN") extern = 1
        if (st[i] == "(" && paren == 0) paren = i
      }
      if (st[1] == "typedef" || (ns > 1 && st[2] == "typedef")) {
        name = ""
        for (i = 1; i + 2 <= ns; i++)
          if (st[i] == "(" && st[i + 1] == "*") { name = st[i + 2]; break }
        if (name == "") name = st[ns]
        emit("type", name, "-")
        settypedef(name)
      } else if (extern && paren > 1) {
        emit("function", st[paren - 1], "-")
      } else {
        settypedef("")
      }
      ns = 0
    }
    # Emit the fields of the struct that just closed, under its typedef name
    # (or its tag when it has none), and the tag itself when untypedefed.
    function settypedef(name,   i) {
      if (pendtag == "" && nfields == 0) return
      if (name == "" && pendtag != "") emit("tag", pendtag, "-")
      for (i = 1; i <= nfields; i++)
        emit("field", fields[i], name != "" ? name : pendtag)
      nfields = 0; pendtag = ""
    }
    function token(t,   i, name) {
      if (t == "{") {
        # what opens: the last struct/union/enum keyword of this statement
        kind = "block"
        if (depth == 0) {
          for (i = ns; i >= 1; i--)
            if (st[i] == "struct" || st[i] == "union" || st[i] == "enum") {
              kind = st[i]
              if (i < ns) pendtag = st[i + 1]
              break
            }
        } else {
          for (i = nf; i >= 1; i--)
            if (ft[i] == "struct" || ft[i] == "union" || ft[i] == "enum") { kind = ft[i]; break }
        }
        stack[++depth] = kind
        nf = 0; expect_enumerator = (kind == "enum")
        return
      }
      if (t == "}") {
        if (depth == 1 && stack[1] != "enum" && nf > 0) field_end()
        if (depth == 1 && stack[1] == "enum" && nf > 0) enum_end()
        depth--; nf = 0
        return
      }
      if (depth == 0) {
        st[++ns] = t
        if (t == ";") { ns--; statement() }
        return
      }
      if (depth == 1 && stack[1] == "enum") {
        if (t == ",") { enum_end(); return }
        ft[++nf] = t
        return
      }
      if (depth == 1) {
        if (t == ";") { field_end(); return }
        ft[++nf] = t
        return
      }
      # deeper (a union inside a struct): only its closing matters
    }
    function field_end(   i, name) {
      name = ""
      for (i = 1; i + 2 <= nf; i++)
        if (ft[i] == "(" && ft[i + 1] == "*") { name = ft[i + 2]; break }
      if (name == "") {
        for (i = nf; i >= 1; i--) if (ft[i] ~ /^[A-Za-z_]/) { name = ft[i]; break }
        # "char name[32]": the identifier before the bracket
        for (i = 1; i <= nf; i++) if (ft[i] == "[") { name = ft[i - 1]; break }
      }
      if (name != "") fields[++nfields] = name
      nf = 0
    }
    function enum_end() {
      # "NAME" or "NAME = value"; a macro call (NAME "(") lists no enumerator
      if (nf >= 1 && ft[1] ~ /^WEFT_/ && (nf == 1 || ft[2] == "="))
        emit("constant", ft[1], "-")
      nf = 0
    }
    {
      known_tokens($0)
      if ($0 ~ /^[ \t]*#/) {
        if (match($0, /^[ \t]*#[ \t]*define[ \t]+[A-Za-z_][A-Za-z0-9_]*/)) {
          name = substr($0, RSTART, RLENGTH); sub(/.*[ \t]/, "", name)
          if (name ~ /^WEFT_/ && name !~ /^WEFT_[A-Z0-9_]*_H$/ && name != "WEFT_H")
            emit("constant", name, "-")
          if (name == "WEFT_ERRNO_MAP") {
            s = $0
            while (match(s, /XX\([ \t]*[A-Z0-9_]+[ \t]*,/)) {
              code = substr(s, RSTART + 3, RLENGTH - 4); gsub(/[ \t]/, "", code)
              emit("constant", "WEFT_" code, "-")
              s = substr(s, RSTART + RLENGTH)
            }
          }
        }
        next
      }
      s = $0
      gsub(/[{};,()*=\[\]]/, " & ", s)
      n = split(s, tok, /[ \t]+/)
      for (j = 1; j <= n; j++) if (tok[j] != "") token(tok[j])
    }
  '
}

# doc_entries FILE: one line per name api.md mentions,
# "FORM NAME SECTION SUBSECTION LINE", FORM one of heading, sig (declared in
# a code block), mention (in backticks or a code block), word (anywhere),
# prefix (a wildcard such as WEFT_EAI_*).
doc_entries() {
  awk -v OFS='\t' '
    function names(s, form, sub_,   t, rest, n) {
      while (match(s, /[A-Za-z_][A-Za-z0-9_]*/)) {
        t = substr(s, RSTART, RLENGTH)
        rest = substr(s, RSTART + RLENGTH)
        if (t ~ /^(weft|WEFT)_/ && substr(rest, 1, 1) ~ /[*{]/)
          print "prefix", t, section, sub_, NR
        else if (form != "word" || t ~ /^(weft|WEFT)_/ || sub_ != "")
          print form, t, section, sub_, NR
        s = rest
      }
    }
    /^```/ { incode = !incode; next }
    incode {
      line = $0
      names(line, "mention", subsec)
      names(line, "word", subsec)
      sub(/\/\*.*$/, "", line)
      if (match(line, /^[ \t]*#[ \t]*define[ \t]+[A-Za-z_][A-Za-z0-9_]*/)) {
        t = substr(line, RSTART, RLENGTH); sub(/.*[ \t]/, "", t)
        print "sig", t, section, subsec, NR
      }
      # int weft_x(  /  const char *weft_x(
      if (match(line, /^[ \t]*[A-Za-z_][A-Za-z0-9_ \t]*[ \t*]+weft_[a-z0-9_]+\(/)) {
        t = substr(line, RSTART, RLENGTH - 1); sub(/.*[ \t*]/, "", t)
        print "sig", t, section, subsec, NR
      }
      # typedef ... (*name)(  /  typedef ... name;  /  } name;
      if (match(line, /\(\*[ \t]*weft_[a-z0-9_]+[ \t]*\)/)) {
        t = substr(line, RSTART + 2, RLENGTH - 3); gsub(/[ \t]/, "", t)
        print "sig", t, section, subsec, NR
      } else if (line ~ /(^|[ \t])typedef[ \t]/ || line ~ /^[ \t]*}/) {
        if (match(line, /[A-Za-z_][A-Za-z0-9_]*[ \t]*;[ \t]*$/)) {
          t = substr(line, RSTART, RLENGTH); sub(/[ \t]*;.*/, "", t)
          print "sig", t, section, subsec, NR
        }
      }
      # an enumerator line: WEFT_X = 1,
      if (match(line, /^[ \t]*WEFT_[A-Z0-9_]+[ \t]*(=|,|$)/)) {
        t = substr(line, RSTART, RLENGTH); gsub(/[ \t=,]/, "", t)
        print "sig", t, section, subsec, NR
      }
      next
    }
    /^## / { section = substr($0, 4); subsec = ++nsub; names($0, "heading", subsec); next }
    /^### / { subsec = ++nsub; names($0, "heading", subsec); names($0, "word", subsec); next }
    {
      names($0, "word", subsec)
      s = $0
      while (match(s, /`[^`]*`/)) {
        span = substr(s, RSTART, RLENGTH)
        s = substr(s, RSTART + RLENGTH)
        names(span, "mention", subsec)
      }
    }
  ' "$1"
}

# check ROOT: print the problems, return 1 if there are any.
check() {
  local root=$1 doc=$1/docs/api.md tmp=$work/check h rc=0
  rm -rf "$tmp"
  mkdir "$tmp"
  if [[ ! -f $doc ]]; then
    echo "check-api-doc: $doc: no such file" >&2
    return 1
  fi
  : >"$tmp/decls"
  for h in "$root"/include/weft.h "$root"/include/weft/*.h; do
    [[ -f $h ]] || continue
    header_decls "$h" "weft/$(basename "$h")" >>"$tmp/decls"
  done
  if ! grep -q '^function[[:space:]]' "$tmp/decls"; then
    echo "check-api-doc: found no WEFT_EXTERN declaration under $root/include" >&2
    return 1
  fi
  doc_entries "$doc" >"$tmp/doc"
  awk -F '\t' -v doc="docs/api.md" '
    FNR == NR {
      if ($1 == "known") { known[$2] = 1; next }
      n++; kind[n] = $1; name[n] = $2; sect[n] = $3; parent[n] = $4
      known[$2] = 1
      next
    }
    {
      form = $1; t = $2; s = $3; sub_ = $4; line = $5
      if (form == "heading" || form == "sig") { entry[t, s] = 1; entrysub[t, sub_] = 1; documents[t, sub_] = 1 }
      if (form == "heading" || form == "sig" || form == "mention") named[t, s] = 1
      if (form == "word") inside[t, sub_] = 1
      if (form == "prefix") { if (!((t, line) in seenp)) { np++; ptok[np] = t; pline[np] = line; seenp[t, line] = 1 } ; next }
      if (t ~ /^(weft|WEFT)_/ && !(t in known) && !((t, line) in seenbad)) {
        seenbad[t, line] = 1
        bad[++nbad] = doc ":" line ": names " t ", which no public header declares"
      }
      if (form == "heading" || form == "sig") { nsubs[t]++; subs[t, nsubs[t]] = sub_ }
    }
    END {
      problems = 0
      for (i = 1; i <= n; i++) {
        k = kind[i]; t = name[i]; s = sect[i]
        if (k == "function" || k == "type") {
          if (!((t, s) in entry)) {
            print doc ": no entry for " k " " t " (" s "): expected a \"### " t "\" heading or its declaration in a code block under \"## " s "\""
            problems++
          }
        } else if (k == "tag" || k == "constant") {
          if (!((t, s) in named)) {
            print doc ": " k " " t " (" s ") is not named under \"## " s "\""
            problems++
          }
        } else if (k == "field") {
          p = parent[i]; found = 0
          for (j = 1; j <= nsubs[p]; j++) if ((t, subs[p, j]) in inside) found = 1
          if (!found && nsubs[p] > 0) {
            print doc ": field " t " of " p " (" s ") is not described in the entry of " p
            problems++
          }
        }
      }
      for (i = 1; i <= nbad; i++) { print bad[i]; problems++ }
      for (i = 1; i <= np; i++) {
        ok = 0
        for (t in known) if (index(t, ptok[i]) == 1) { ok = 1; break }
        if (!ok) {
          print doc ":" pline[i] ": names " ptok[i] "*, and no public header declares a name that starts so"
          problems++
        }
      }
      exit problems > 0
    }
  ' "$tmp/decls" "$tmp/doc" || rc=1
  return "$rc"
}

# self_test: the checkout must pass, and each drift, made on a copy, must be
# reported with the name it concerns.
self_test() {
  local root=$default_root tmp=$work/self failures=0 out
  mkdir -p "$tmp"
  if ! out=$(check "$root"); then
    printf '%s\n' "$out"
    echo "self-test: the checkout itself is out of step (see above)"
    return 1
  fi
  # expect_drift NAME EXPECTED MUTATION...: copy the tree, run MUTATION in the
  # copy, and require a failure whose report contains EXPECTED.
  expect_drift() {
    local what=$1 expected=$2 rc=0
    shift 2
    rm -rf "$tmp/t"
    mkdir -p "$tmp/t/docs"
    cp -R "$root/include" "$tmp/t/include"
    cp "$root/docs/api.md" "$tmp/t/docs/api.md"
    (cd "$tmp/t" && eval "$*")
    out=$(check "$tmp/t") || rc=$?
    if [[ $rc -ne 0 ]] && grep -qF -- "$expected" <<<"$out"; then
      echo "self-test: ok: $what"
    else
      echo "self-test: FAILED: $what: expected a report naming '$expected', got (exit $rc):"
      printf '%s\n' "$out" | sed 's/^/    /'
      failures=$((failures + 1))
    fi
  }
  expect_drift "a type's heading removed" "no entry for type weft_worker_stats_t" \
    "sed -i '/^### weft_worker_stats_t\$/d' docs/api.md"
  expect_drift "a function's entry removed (heading and prototype)" \
    "no entry for function weft_task_name_copy" \
    "awk '/^### /{skip = (\$0 == \"### weft_task_name_copy\")} !skip' docs/api.md >x && mv x docs/api.md"
  expect_drift "an entry for a function no header declares" \
    "names weft_nonexistent, which no public header declares" \
    "printf '\\n### weft_nonexistent\\n\\n\`\`\`c\\nint weft_nonexistent(void);\\n\`\`\`\\n' >>docs/api.md"
  expect_drift "a function added to a header" "no entry for function weft_new_call" \
    "sed -i 's/^WEFT_END_DECLS/WEFT_EXTERN int weft_new_call(void);\\nWEFT_END_DECLS/' include/weft/task.h"
  expect_drift "a macro removed from a header" "names WEFT_SENDFILE_CHUNK, which" \
    "sed -i '/^#define WEFT_SENDFILE_CHUNK/d' include/weft/file.h"
  expect_drift "a constant the docs do not name" "constant WEFT_OFFLOAD_GRACE_MS_DEFAULT" \
    "sed -i 's/WEFT_OFFLOAD_GRACE_MS_DEFAULT/WEFT_OFFLOAD_GRACE_DEFAULT/' docs/api.md"
  expect_drift "an error code the docs do not name" "constant WEFT_EOTHER_RUNTIME" \
    "sed -i 's/WEFT_EOTHER_RUNTIME/WEFT_EOTHER/g' docs/api.md"
  expect_drift "a struct field the docs do not describe" \
    "field offload_grace_ms of weft_config_t" \
    "sed -i '/^| \`int offload_grace_ms\`/d; s/offload_grace_ms/grace/g' docs/api.md"
  expect_drift "a declaration moved to another header" \
    "no entry for type weft_runtime_t (weft/foreign.h)" \
    "sed -i '/^typedef struct weft_runtime weft_runtime_t;/d' include/weft/runtime.h && sed -i 's/^WEFT_BEGIN_DECLS/WEFT_BEGIN_DECLS\\ntypedef struct weft_runtime weft_runtime_t;/' include/weft/foreign.h"
  expect_drift "a wildcard that matches nothing" "names WEFT_EZZZ_*" \
    "sed -i 's/WEFT_EAI_\\*/WEFT_EZZZ_*/' docs/api.md"
  if [[ $failures -ne 0 ]]; then
    echo "self-test: $failures check(s) failed"
    return 1
  fi
  echo "self-test: every drift was reported"
}

case ${1:-} in
--self-test)
  self_test
  ;;
-h | --help)
  sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'
  ;;
-*)
  echo "usage: $0 [ROOT | --self-test]" >&2
  exit 2
  ;;
*)
  root=${1:-$default_root}
  if check "$root"; then
    echo "check-api-doc: docs/api.md names every public declaration of $root/include, and nothing else"
  else
    echo "check-api-doc: docs/api.md is out of step with the headers (see above)" >&2
    exit 1
  fi
  ;;
esac
