#!/usr/bin/env bash
# bench/freeze.sh: `vzfs freeze` (issue 6) side by side with `rsync -a
# --files-from` and `cp -a --parents`, in one run.
#
#   bench/freeze.sh [path/to/vzfs]     (or VZFS=...; needs root)
#
# The spec is /usr/lib/x86_64-linux-gnu/** plus python's stdlib. Every
# command writes a fresh target (hyperfine --prepare removes it), except
# `--update` with nothing changed, which runs on an up-to-date tree. Writes
# a markdown table of medians and ratios to stdout and bench/out/freeze.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vzfs=$(readlink -f "${1:-${VZFS:-$here/../bin/vzfs}}")
runs=${BENCH_RUNS:-5}
[ "$(id -u)" = 0 ] || { echo "bench/freeze.sh: needs root (owners, device nodes)" >&2; exit 2; }
[ -x "$vzfs" ] || { echo "bench/freeze.sh: no vzfs binary at $vzfs (run make build)" >&2; exit 2; }

need=()
for p in hyperfine rsync; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

dirs=(/usr/lib/x86_64-linux-gnu /usr/lib/python3.11)
for d in "${dirs[@]}"; do [ -d "$d" ] || { echo "bench/freeze.sh: $d missing" >&2; exit 2; }; done
# Targets live on the same filesystem as /usr, so --link hard can link.
base=/var/tmp
size_kb=$(du -sk "${dirs[@]}" | awk '{s += $1} END {print s}')
avail_kb=$(df -Pk "$base" | awk 'NR == 2 {print $4}')
# Deleting a tree on a filesystem mounted with discard costs the next
# command seconds of journal work, so every prepare ends with sync.
# Four trees at most exist at once (copy, hard-linked, updated, rsync/cp),
# plus slack.
if [ "$avail_kb" -lt $(( size_kb * 4 + 1048576 )) ]; then
  echo "bench/freeze.sh: $base has $((avail_kb / 1024)) MiB free; need $((size_kb * 4 / 1024 + 1024)) MiB" >&2
  exit 2
fi

work=$(mktemp -d "$base/vzfs-bench-freeze.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT INT TERM
spec=$work/bench.spec list=$work/bench.list
printf '%s/**\n' "${dirs[@]}" > "$spec"
printf '%s\n' "${dirs[@]#/}" > "$list"
t=$work/t upd=$work/upd
"$vzfs" freeze --no-resolve "$spec" "$upd" 2>/dev/null
entries=$(find "${dirs[@]}" | wc -l)

json=$work/json
mkdir -p "$json" "$here/out"
echo "measuring ($runs runs each, $entries entries, $((size_kb / 1024)) MiB)..." >&2
hyperfine --style none --runs "$runs" --warmup 1 --export-json "$json/freeze.json" \
  --prepare "rm -rf $t; sync" \
  -n rsync "rsync -a -r --files-from=$list / $t" \
  -n cp "mkdir -p $t && cd / && cp -a --parents ${dirs[*]#/} $t" \
  -n copy "$vzfs freeze --no-resolve $spec $t 2>/dev/null" \
  -n hard "$vzfs freeze --no-resolve --link hard $spec $t 2>/dev/null" >/dev/null
hyperfine --style none --runs "$runs" --warmup 1 --export-json "$json/update.json" \
  -n update "$vzfs freeze --no-resolve --update $spec $upd 2>/dev/null" >/dev/null

python3 - "$json" "$here/out/freeze.md" "$entries" "$size_kb" <<'PY'
import json, sys, os, statistics
d, out, entries, kb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = {}
for f in ("freeze", "update"):
    for r in json.load(open(os.path.join(d, f + ".json")))["results"]:
        m[r["command"]] = statistics.median(r["times"])
def ms(s): return f"{s*1000:.0f} ms"
copy, rsync = m["copy"], m["rsync"]
rows = [("rsync -a --files-from", "rsync", ""),
        ("cp -a --parents", "cp", ""),
        ("vzfs freeze (copy)", "copy", f"<= 1.0x rsync: {'met' if copy <= rsync else '**missed**'}"),
        ("vzfs freeze --link hard", "hard", f"< 10% of copy: {'met' if m['hard'] < 0.10*copy else '**missed**'}"),
        ("vzfs freeze --update, no change", "update", f"< 5% of copy: {'met' if m['update'] < 0.05*copy else '**missed**'}")]
L = ["## freeze: a spec as a real tree (issue 6)", "",
     f"`/usr/lib/x86_64-linux-gnu/**` + `/usr/lib/python3.11/**`: {entries} entries, {kb//1024} MiB, "
     "into a fresh target on the same filesystem each run (page cache warm). Medians, side by side in one run.", "",
     "| command | median | / rsync | / vzfs copy | goal |", "|---|---|---|---|---|"]
for label, k, goal in rows:
    L.append(f"| {label} | {ms(m[k])} | {m[k]/rsync:.2f}x | {m[k]/copy*100:.1f}% | {goal} |")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
# The same numbers for bench/report (BENCHMARKS.md and the chart): one row,
# rsync the baseline; each goal on its command.
row = f"{entries} entries, {kb//1024} MiB"
T = ["# title: freeze: a spec as a real tree (issue 6)", "# baseline: rsync -a --files-from",
     "# note: `/usr/lib/x86_64-linux-gnu/**` + `/usr/lib/python3.11/**` into a fresh target on the same filesystem each run (page cache warm); `--update` on an up-to-date tree."]
for label, k, goal in rows:
    g, met = "", ""
    if goal:
        g, met = goal.split(": ")[0], ("missed" if "missed" in goal else "met")
    T.append(f"{row}\t{label}\t{m[k]}\ts\t{g}\t{met}")
open(os.path.splitext(out)[0] + ".tsv", "w").write("\n".join(T) + "\n")
PY
