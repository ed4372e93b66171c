#!/usr/bin/env bash
# Benchmark `vzfs trace` (issue 4): trace overhead as a ratio to the bare
# command, side by side with bare `strace -f -o /dev/null`, `reprozip trace`
# and CARE, for `python3 -c 'import json, ssl'` and for a make/gcc build.
# Prints a markdown table of medians and ratios, and writes it to
# bench/out/trace.md.
#
# Two strace baselines: `strace -f -o /dev/null` with strace's defaults, as
# issue 4 names it, and the fair one, strace with exactly the options vzfs
# passes it (taken from the binary's debug log, so they cannot drift):
# --seccomp-bpf and the narrower trace set make that one much faster, and
# the difference to it is what vzfs itself costs (Go start-up, reading the
# log, the closure and writing the spec). The goal is judged against it.
#
#   bench/trace.sh [path/to/vzfs]
#
# Environment: RUNS (default 20). CARE runs with PROOT_NO_SECCOMP=1: with
# its seccomp mode on, CARE 2.2.1 crashes python3 here (SIGSEGV).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=$here/out
mkdir -p "$out"
runs=${RUNS:-20}

need=()
command -v strace >/dev/null || need+=(strace)
command -v reprozip >/dev/null || need+=(reprozip)
command -v care >/dev/null || need+=(care)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v jq >/dev/null || need+=(jq)
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
if ((${#need[@]})); then
	echo "installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2
fi

vzfs=${1:-${VZFS:-}}
if [[ -z $vzfs ]]; then
	vzfs=$out/vzfs
	(cd "$repo" && go build -o "$vzfs" ./cmd/vzfs)
fi

# Outside /tmp, which vzfs trace leaves out, so the project is traced
# like any other user directory.
work=$(mktemp -d /var/tmp/vzfs-bench-trace.XXXXXX)
trap 'rm -rf "$work"' EXIT
proj=$work/proj
mkdir -p "$proj"
cat >"$proj/hello.c" <<'EOF'
#include <stdio.h>
#include "msg.h"
int main(void) { puts(MSG); return 0; }
EOF
echo '#define MSG "hello"' >"$proj/msg.h"
printf 'hello: hello.o\n\tgcc -o hello hello.o\nhello.o: hello.c msg.h\n\tgcc -c -o hello.o hello.c\n' >"$proj/Makefile"
reprozip usage_report --disable >/dev/null 2>&1 || true

# The options vzfs gives strace, up to its "-o FIFO".
vzfs_strace=$({ "$vzfs" --log-level debug --log-format json trace -o "$work/probe.spec" -- true 2>&1 || true; } |
	jq -R -r 'fromjson? | select(.msg == "tracing") | .args | .[0:index("-o")] | join(" ")')
[[ -n $vzfs_strace ]] || { echo "cannot read vzfs's strace options from its debug log" >&2; exit 1; }
echo "vzfs runs strace $vzfs_strace" >&2

py="/usr/bin/python3 -c 'import json, ssl'"
mk="make -s -C $proj -B"

table=$out/trace.md
{
	echo "## vzfs trace"
	echo
	echo "Median wall time of $runs runs (hyperfine), ratio to the bare command, to \`strace -f -o /dev/null\`"
	echo "and to strace with the options vzfs gives it."
	echo
	echo "| command | tool | median | x bare | x strace -f | x strace, vzfs's options |"
	echo "|---|---|---|---|---|---|"
} >"$table"

bench() { # name, command
	local name=$1 cmd=$2 json=$work/$1.json
	local -a args=(-n bare "$cmd" -n "strace -f -o /dev/null" "strace -f -o /dev/null $cmd"
		-n "strace, vzfs's options, -o /dev/null" "strace $vzfs_strace -o /dev/null $cmd"
		-n "vzfs trace" "$vzfs trace -o $work/x.spec -- $cmd")
	local -a failed=()
	local tool line
	# A peer that cannot trace this command gets a row saying so instead
	# of a time: a failed run costs nothing and proves nothing.
	for tool in "reprozip trace|reprozip trace -d $work/rz --dont-identify-packages -w $cmd" \
		"care|env PROOT_NO_SECCOMP=1 care -o $work/care.out/ $cmd"; do
		rm -rf "$work/rz" "$work/care.out"
		if bash -c "${tool#*|}" >/dev/null 2>&1; then
			args+=(-n "${tool%%|*}" "${tool#*|}")
		else
			failed+=("${tool%%|*}")
		fi
	done
	hyperfine -N -w 3 -r "$runs" --export-json "$json" \
		--prepare "rm -rf $work/rz $work/care.out $work/x.spec" "${args[@]}" >&2
	local bare strace same
	bare=$(jq '.results[] | select(.command=="bare") | .median' "$json")
	strace=$(jq '.results[] | select(.command=="strace -f -o /dev/null") | .median' "$json")
	same=$(jq '.results[] | select(.command | startswith("strace, vzfs")) | .median' "$json")
	jq -r --arg name "$name" --argjson bare "$bare" --argjson st "$strace" --argjson same "$same" \
		'.results[] | "| \($name) | \(.command) | \(.median*1000*10|round/10) ms | \(.median/$bare*100|round/100) | \(.median/$st*100|round/100) | \(.median/$same*100|round/100) |"' \
		"$json" >>"$table"
	for tool in "${failed[@]}"; do
		echo "| $name | $tool | fails on this command | | | |" >>"$table"
	done
}

bench python "$py"
bench make "$mk"

{
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), $(strace -V | head -1)."
	echo "vzfs's strace options: $vzfs_strace."
	echo "Goal: vzfs trace at most 1.1x bare strace with the same options, and below reprozip and care."
} >>"$table"
cat "$table"
