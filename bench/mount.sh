#!/usr/bin/env bash
# bench/mount.sh: the read-only view (issue 3) side by side with a native
# chroot of / and a `bindfs -o ro` mirror of /, in one run.
#
#   bench/mount.sh [path/to/vzfs]     (or VZFS=...; needs root and /dev/fuse)
#
# Rows: warm python imports, warm and cold `ls -R /usr/lib`, sequential read
# of a 512 MiB file, 1000 execs of /usr/bin/true, and the mount time of a
# 10,000-entry spec against `rsync --files-from` copying the same entries.
# Writes a markdown table of medians and ratios to stdout and
# bench/out/mount.md. Everything it mounts is unmounted on exit, even on
# failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vzfs=$(readlink -f "${1:-${VZFS:-$here/../bin/vzfs}}")
runs=${BENCH_RUNS:-10}
[ "$(id -u)" = 0 ] || { echo "bench/mount.sh: needs root (chroot, mounts, drop_caches)" >&2; exit 2; }
[ -x "$vzfs" ] || { echo "bench/mount.sh: no vzfs binary at $vzfs (run make build)" >&2; exit 2; }

need=()
for p in hyperfine bindfs rsync; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
py=/usr/bin/python3
[ -x "$py" ] || { echo "bench/mount.sh: $py missing" >&2; exit 2; }

work=$(mktemp -d /var/tmp/vzfs-bench-mount.XXXXXX)
view=$work/view bind=$work/bindfs mnt10k=$work/m10k
mkdir -p "$view" "$bind" "$mnt10k" "$here/out"
cleanup() {
  for m in "$mnt10k" "$view"; do
    mountpoint -q "$m" 2>/dev/null && { "$vzfs" umount "$m" >/dev/null 2>&1 || umount -l "$m" || true; }
  done
  mountpoint -q "$bind" 2>/dev/null && { umount "$bind" 2>/dev/null || umount -l "$bind" || true; }
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The data file lives outside /usr/lib, so the spec lists it by itself.
big=$work/data/big.bin
mkdir -p "$work/data"
head -c 512M /dev/urandom > "$big"

# One spec for every row: the programs, python's and ls's closures, and
# /usr/lib whole (it holds python's stdlib and every library).
spec=$work/bench.spec
"$vzfs" ldd -o "$spec" $py /usr/bin/ls /usr/bin/true /bin/sh /usr/bin/cat /usr/lib/python3.11/lib-dynload/*.so
printf '%s\n' '/usr/lib/**' "$big" >> "$spec"
"$vzfs" mount --log-file "$work/vzfs.log" "$spec" "$view" >/dev/null
bindfs -o ro / "$bind"

# A 10,000-entry spec of real files and the same list for rsync.
spec10k=$work/10k.spec list10k=$work/10k.list copy=$work/copy
find /usr -xdev -type f 2>/dev/null | LC_ALL=C sort > "$work/all.list"
head -n 10000 "$work/all.list" > "$list10k"
cp "$list10k" "$spec10k"

json=$work/json
mkdir -p "$json"
hf() { # hf NAME [hyperfine args...]: one row, every command side by side
  local name=$1; shift
  hyperfine -N --style none --runs "$runs" --warmup 2 --export-json "$json/$name.json" "$@" >/dev/null 2>"$json/$name.err" ||
    hyperfine --style none --runs "$runs" --warmup 2 --export-json "$json/$name.json" "$@" >/dev/null
}
roots=(/ "$view" "$bind")
names=(native vzfs bindfs)
cmds() { # cmds SHELLSNIPPET-with-ROOT: the snippet once per root
  local s=$1 out=() i
  for i in 0 1 2; do out+=(-n "${names[$i]}" "${s//ROOT/${roots[$i]}}"); done
  printf '%s\0' "${out[@]}"
}
row() { local name=$1 snippet=$2; shift 2; mapfile -d '' -t a < <(cmds "$snippet"); hf "$name" "$@" "${a[@]}"; }

echo "measuring ($runs runs each)..." >&2
row python "chroot ROOT $py -c 'import json, ssl, sqlite3, email'"
row ls_warm "chroot ROOT /usr/bin/ls -R /usr/lib"
hyperfine --style none --runs "$(( runs < 5 ? runs : 5 ))" --export-json "$json/ls_cold.json" \
  --prepare 'sync; echo 3 > /proc/sys/vm/drop_caches' \
  -n native "chroot / /usr/bin/ls -R /usr/lib >/dev/null" \
  -n vzfs "chroot $view /usr/bin/ls -R /usr/lib >/dev/null" \
  -n bindfs "chroot $bind /usr/bin/ls -R /usr/lib >/dev/null" >/dev/null
row read "chroot ROOT /usr/bin/cat $big"
row exec "chroot ROOT /bin/sh -c 'i=0; while [ \$i -lt 1000 ]; do /usr/bin/true; i=\$((i+1)); done'"
hyperfine --style none --runs "$runs" --warmup 1 --export-json "$json/mount10k.json" \
  -n rsync --prepare "rm -rf $copy" "rsync -a --files-from=$list10k / $copy" \
  -n vzfs --prepare "$vzfs umount $mnt10k >/dev/null 2>&1 || true" "$vzfs mount $spec10k $mnt10k" >/dev/null
"$vzfs" umount "$mnt10k" >/dev/null
passthrough=$(grep -o 'passthrough": [a-z]*' "$work/vzfs.log" | head -1 | awk '{print $2}')

$py - "$json" "$here/out/mount.md" "$passthrough" <<'EOF'
import json, sys, os, statistics
d, out, pt = sys.argv[1], sys.argv[2], sys.argv[3]
def med(name):
    r = json.load(open(os.path.join(d, name + ".json")))["results"]
    return {x["command"]: statistics.median(x["times"]) for x in r}
def ms(s): return f"{s*1000:.1f} ms"
rows = [("warm `python3 -c 'import json, ssl, sqlite3, email'`", "python", "<= 1.15x native"),
        ("warm `ls -R /usr/lib`", "ls_warm", "ahead of bindfs"),
        ("cold `ls -R /usr/lib` (drop_caches)", "ls_cold", "ahead of bindfs"),
        ("sequential read, 512 MiB", "read", ">= 95% native throughput"),
        ("exec storm, 1000 x /usr/bin/true", "exec", "ahead of bindfs")]
L = ["## mount: the read-only view (issue 3)", "",
     f"Medians of hyperfine runs, side by side in one run. FUSE passthrough: {pt or 'unknown'}.", "",
     "| row | native chroot | vzfs view | bindfs -o ro | vzfs/native | bindfs/native | vzfs/bindfs | goal |",
     "|---|---|---|---|---|---|---|---|"]
for label, key, goal in rows:
    m = med(key)
    n, v, b = m["native"], m["vzfs"], m["bindfs"]
    extra = ""
    if key == "read":
        extra = f" ({512/v:.0f} MiB/s vs {512/n:.0f} native)"
    met = {"python": v <= 1.15*n, "read": n/v >= 0.95}.get(key, v < b) and v < b
    L.append(f"| {label}{extra} | {ms(n)} | {ms(v)} | {ms(b)} | {v/n:.2f}x | {b/n:.2f}x | {v/b:.2f}x | {goal}: {'met' if met else '**missed**'} |")
m = med("mount10k")
L += ["", "| 10,000-entry spec | rsync --files-from copy | vzfs mount | vzfs/rsync | goal |", "|---|---|---|---|---|",
      f"| mount vs copy | {ms(m['rsync'])} | {ms(m['vzfs'])} | {m['vzfs']/m['rsync']*100:.1f}% | < 5%: {'met' if m['vzfs'] < 0.05*m['rsync'] else '**missed**'} |"]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
# The same numbers for bench/report (BENCHMARKS.md and the chart).
T = ["# title: mount: the read-only view (issue 3)", "# baseline: native",
     f"# note: Medians of hyperfine runs, side by side in one run. FUSE passthrough: {pt or 'unknown'}."]
for label, key, goal in rows:
    m = med(key)
    n, v, b = m["native"], m["vzfs"], m["bindfs"]
    met = {"python": v <= 1.15*n, "read": n/v >= 0.95}.get(key, v < b) and v < b
    T += [f"{label}\tnative\t{n}\ts\t\t", f"{label}\tvzfs\t{v}\ts\t{goal}\t{'met' if met else 'missed'}", f"{label}\tbindfs\t{b}\ts\t\t"]
m = med("mount10k")
T += [f"10,000-entry spec: mount vs copy\trsync --files-from copy\t{m['rsync']}\ts\t\t",
      f"10,000-entry spec: mount vs copy\tvzfs\t{m['vzfs']}\ts\t< 5% of rsync\t{'met' if m['vzfs'] < 0.05*m['rsync'] else 'missed'}"]
open(os.path.splitext(out)[0] + ".tsv", "w").write("\n".join(T) + "\n")
EOF
