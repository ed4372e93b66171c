#!/usr/bin/env bash
# make bench: runs every area's benchmark script side by side with its peers
# and gathers their markdown tables into bench/out/report.md; then
# bench/report turns the numbers (bench/out/AREA.tsv, see its doc) into
# BENCHMARKS.md at the repo root and the ratio chart docs/benchmarks.svg
# (which the README shows; a copy goes to bench/out/ratios.svg).
# Usage: bench/run.sh [path/to/vzfs] [area...]   (areas: ldd trace mount ...)
# BENCH_AREA_TIMEOUT (seconds, default 2400) bounds each area.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vzfs=$(readlink -f "${1:-$here/../bin/vzfs}")
shift || true
export VZFS="$vzfs"
mkdir -p "$here/out"

areas=("$@")
if [ ${#areas[@]} -eq 0 ]; then
  for f in "$here"/*.sh; do
    [ "$(basename "$f")" = run.sh ] || [ "$(basename "$f")" = lib.sh ] || areas+=("$(basename "$f" .sh)")
  done
fi

report="$here/out/report.md"
{
  echo "# vzfs benchmarks"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), vzfs $("$vzfs" version | cut -d' ' -f2)"
} > "$report"
status=0
for a in "${areas[@]}"; do
  echo "== bench: $a" >&2
  rm -f "$here/out/$a.tsv"  # a failed area must not report old numbers
  if timeout --kill-after=30 "${BENCH_AREA_TIMEOUT:-2400}" bash "$here/$a.sh"; then
    { echo; cat "$here/out/$a.md"; } >> "$report"
  else
    echo "bench: $a failed" >&2
    { echo; echo "## $a"; echo; echo "(failed to run)"; } >> "$report"
    status=1
  fi
done
echo >&2
cat "$report"
repo=$(dirname "$here")
mkdir -p "$repo/docs"
if (cd "$repo" && go run ./bench/report -out "$here/out" -md "$repo/BENCHMARKS.md" -svg "$repo/docs/benchmarks.svg"); then
  cp "$repo/docs/benchmarks.svg" "$here/out/ratios.svg"
  echo "wrote $repo/BENCHMARKS.md and $repo/docs/benchmarks.svg" >&2
else
  status=1
fi
exit $status
