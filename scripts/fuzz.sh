#!/usr/bin/env bash
# Runs every fuzz target in the module for the given budget each.
# Usage: scripts/fuzz.sh DURATION (e.g. 10s)
set -euo pipefail
budget=${1:-10s}
cd "$(dirname "$0")/.."
fail=0
while read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz: $pkg $target for $budget"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" || fail=1
  done
done < <(git ls-files --cached --others --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz' | sort)
exit $fail
