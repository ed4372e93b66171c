#!/usr/bin/env bash
# bench/learn.sh: learn mode (issue 5). The acceptance suite's `make check`
# (gcc compiling a probe that dlopens a library, converts with iconv and
# sets a locale, then running it), timed side by side in one run:
#
#   native   make check on the host
#   chroot   the learned spec frozen (vzfs freeze --no-resolve) into a plain
#            directory, `chroot DIR make check`, the project bind-mounted
#   strict   vzfs run with the learned spec
#   learn    vzfs run --learn, each run from the same unlearned spec (ldd of
#            make), restored by hyperfine --prepare
#
#   bench/learn.sh [path/to/vzfs]     (or VZFS=...; needs root, FUSE, gcc)
#
# Writes a markdown table of medians and ratios to stdout and
# bench/out/learn.md. Goals: strict <= 1.15x chroot, learn <= 1.5x chroot.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vzfs=$(readlink -f "${1:-${VZFS:-$here/../bin/vzfs}}")
runs=${BENCH_RUNS:-10}
[ "$(id -u)" = 0 ] || { echo "bench/learn.sh: needs root (vzfs run, chroot, bind mounts)" >&2; exit 2; }
[ -x "$vzfs" ] || { echo "bench/learn.sh: no vzfs binary at $vzfs (run make build)" >&2; exit 2; }

need=()
for p in hyperfine gcc make; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Outside /tmp: the sandbox has a tmpfs of its own there.
work=$(mktemp -d /var/tmp/vzfs-bench-learn.XXXXXX)
chmod 755 "$work"
proj=$work/proj root=$work/root
cleanup() {
  umount -l "$root$proj" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$proj"
cat > "$proj/Makefile" <<'EOF'
.PHONY: check
check:
	gcc -O1 -o probe probe.c -ldl
	./probe
EOF
cat > "$proj/probe.c" <<'EOF'
#include <dlfcn.h>
#include <iconv.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

int main(void) {
	void *c = dlopen("libcrypt.so.1", RTLD_NOW);
	if (!c || !dlsym(c, "crypt")) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
	iconv_t cd = iconv_open("UTF-16", "UTF-8");
	if (cd == (iconv_t)-1) { perror("iconv_open"); return 1; }
	char in[] = "h\xc3\xa9", out[16], *ip = in, *op = out;
	size_t il = strlen(in), ol = sizeof out;
	if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1) { perror("iconv"); return 1; }
	iconv_close(cd);
	if (!setlocale(LC_ALL, "C.UTF-8")) { fprintf(stderr, "setlocale\n"); return 1; }
	printf("probe ok\n");
	return 0;
}
EOF

unlearned=$work/unlearned.spec learned=$work/learned.spec scratch=$work/scratch.spec
"$vzfs" ldd -o "$unlearned" make 2>/dev/null
cp "$unlearned" "$learned"
run="$vzfs --log-level warn run --bind $proj --workdir $proj"
echo "learning the spec once..." >&2
$run --learn "$learned" -- make check >/dev/null
$run "$learned" -- make check >/dev/null || { echo "bench/learn.sh: the learned spec fails strict" >&2; exit 1; }
"$vzfs" freeze --no-resolve "$learned" "$root" 2>/dev/null
mkdir -p "$root$proj"
mount --bind "$proj" "$root$proj"
chroot "$root" make -C "$proj" check >/dev/null || { echo "bench/learn.sh: make check fails in the frozen chroot" >&2; exit 1; }
entries_before=$(grep -c . "$unlearned") entries_after=$(grep -c . "$learned")

json=$work/learn.json
mkdir -p "$here/out"
echo "measuring ($runs runs each)..." >&2
hyperfine --style none --runs "$runs" --warmup 2 --export-json "$json" \
  --prepare true --prepare true --prepare true --prepare "cp $unlearned $scratch" --prepare true \
  -n native "make -C $proj check" \
  -n chroot "chroot $root make -C $proj check" \
  -n strict "$run $learned -- make check" \
  -n learn "$run --learn $scratch -- make check" \
  -n startup "$run $learned -- make --version" >/dev/null

python3 - "$json" "$here/out/learn.md" "$entries_before" "$entries_after" <<'PY'
import json, sys, statistics
src, out, before, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = {r["command"]: statistics.median(r["times"]) for r in json.load(open(src))["results"]}
base = m["chroot"]
def ms(s): return f"{s*1000:.1f} ms"
def goal(k, lim):
    return f"<= {lim}x chroot: {'met' if m[k] <= lim * base else '**missed**'}"
rows = [("native `make check`", "native", ""),
        ("plain chroot of the frozen learned spec", "chroot", ""),
        ("`vzfs run`, learned spec (strict)", "strict", goal("strict", 1.15)),
        ("`vzfs run --learn`, from the unlearned spec", "learn", goal("learn", 1.5)),
        ("`vzfs run` of `make --version` (start-up and teardown alone)", "startup", "")]
L = ["## learn: a test suite teaches the spec (issue 5)", "",
     f"`make check` of a C project (gcc, a dlopen'd library, iconv, setlocale). The spec starts as "
     f"`vzfs ldd make` ({before} entries); learning brings it to {after}. Medians, side by side in one run.", "",
     "| run | median | / native | / chroot | / strict | goal |", "|---|---|---|---|---|---|"]
for label, k, g in rows:
    L.append(f"| {label} | {ms(m[k])} | {m[k]/m['native']:.2f}x | {m[k]/base:.2f}x | {m[k]/m['strict']:.2f}x | {g} |")
L += ["", "Every `vzfs run` mounts a fresh view, so each of its runs starts with a cold kernel cache: every path the "
      "suite touches is a FUSE lookup, and every file it opens an OPEN and a RELEASE (passthrough needs the open). "
      "The chroot's directory tree is as warm as the host's."]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
