#!/usr/bin/env bash
# make bench: runs every area's benchmark script side by side with its peers
# and gathers their markdown tables into bench/out/report.md.
# Usage: bench/run.sh [path/to/vzfs] [area...]   (areas: ldd trace mount ...)
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
  if bash "$here/$a.sh"; then
    { echo; cat "$here/out/$a.md"; } >> "$report"
  else
    echo "bench: $a failed" >&2
    { echo; echo "## $a"; echo; echo "(failed to run)"; } >> "$report"
    status=1
  fi
done
echo >&2
cat "$report"
exit $status
