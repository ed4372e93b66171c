#!/usr/bin/env bash
# Benchmark `vzfs ldd` against libtree, an ldd loop and an lddtree loop on
# every ELF executable in /usr/bin (issue 2). Prints a markdown table of
# medians and ratios to libtree, and writes it to bench/out/ldd.md.
#
#   bench/ldd.sh [path/to/vzfs]
#
# Environment: RUNS (fast tools, default 20), LOOP_RUNS (ldd and lddtree
# loops, default 3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=$here/out
mkdir -p "$out"
runs=${RUNS:-20}
loop_runs=${LOOP_RUNS:-3}

need=()
command -v libtree >/dev/null || need+=(libtree)
command -v lddtree >/dev/null || need+=(pax-utils)
python3 -c 'import elftools' 2>/dev/null || need+=(python3-pyelftools)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v jq >/dev/null || need+=(jq)
if ((${#need[@]})); then
	echo "installing ${need[*]}" >&2
	apt-get install -y "${need[@]}" >&2
fi

vzfs=${1:-$out/vzfs-ldd}
if [[ $# -eq 0 ]]; then
	(cd "$repo" && go build -o "$vzfs" ./cmd/vzfs)
fi

# The inputs: ELF executables directly in /usr/bin, one per path.
list=$out/files.txt
: >"$list"
for f in /usr/bin/*; do
	[[ -f $f && -x $f ]] || continue
	# Names hyperfine would split or unquote are left out (none on Debian).
	[[ $f == *[[:space:]\"\'\\]* ]] && continue
	[[ $(head -c4 "$f" 2>/dev/null | od -An -c | tr -d ' ') == 177ELF ]] || continue
	echo "$f" >>"$list"
done
n=$(wc -l <"$list")
echo "$n ELF executables in /usr/bin" >&2

# The one-process tools run without a shell (-N), their output discarded by
# hyperfine: a shell and a cat(1) per run would add the same few
# milliseconds to both and make the ratio look better than it is. The
# paths have no blanks, so they pass as plain words.
all=$(tr '\n' ' ' <"$list")
hyperfine -N --warmup 3 --runs "$runs" --ignore-failure \
	--export-json "$out/ldd-fast.json" \
	-n "vzfs ldd (one process)" "$vzfs ldd --allow-missing $all" \
	-n "libtree (one process)" "libtree $all" >&2
files='$(cat '"$list"')'
hyperfine --shell=bash --warmup 0 --runs "$loop_runs" --ignore-failure \
	--export-json "$out/ldd-loops.json" \
	-n "lddtree loop" "for f in $files; do lddtree \"\$f\"; done >/dev/null 2>&1" \
	-n "ldd loop" "for f in $files; do ldd \"\$f\"; done >/dev/null 2>&1" >&2

jq -s -r --arg n "$n" '
	[.[].results[] | {name: .command, median: .median}] as $r
	| ($r[] | select(.name | startswith("libtree")) | .median) as $base
	| "Closure of \($n) ELF executables in /usr/bin (hyperfine medians):\n",
	  "| tool | median | vs libtree |",
	  "|---|---|---|",
	  ($r[] | "| \(.name) | \(.median * 1000 | round / 1000) s | \(.median / $base * 100 | round / 100)x |")
' "$out/ldd-fast.json" "$out/ldd-loops.json" | tee "$out/ldd.md"
