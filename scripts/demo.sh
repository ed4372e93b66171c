#!/usr/bin/env bash
# make demo: the main job end to end on the embedded example.
#   1. vzfs ldd resolves a script and the programs it runs into a spec,
#      statically (nothing is executed to find the libraries);
#   2. the spec's entries, and nothing else, are copied into a fresh root;
#   3. the script runs there under chroot.
set -euo pipefail
vzfs=$(readlink -f "${1:-bin/vzfs}")
here=$(cd "$(dirname "$0")/.." && pwd)

work=$(mktemp -d /tmp/vzfs-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
install -D -m 0755 "$here/examples/hello/hello.sh" "$work/app/hello.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "vzfs ldd: the spec for hello.sh, ls, wc, sed and tr"
"$vzfs" ldd -o "$work/hello.spec" "$work/app/hello.sh" ls wc sed tr
sed 's/^/    /' "$work/hello.spec"
echo "    ($(grep -vc '^#' "$work/hello.spec") entries)"

step "why is each library there? (vzfs ldd --explain)"
"$vzfs" ldd --explain ls 2>&1 >/dev/null | grep -E 'lib(selinux|pcre)' | sed 's/^/    /' || true

step "copy exactly the spec's entries into a fresh root"
root="$work/root"
mkdir -p "$root"
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  path=${line%"/**"}
  if [ -d "$path" ] && [ ! -L "$path" ] && [ "$path" = "$line" ]; then
    mkdir -p "$root$path"   # a directory line is the directory itself
  else
    (cd "$root" && cp -a --parents "$path" .)   # from inside: coreutils 9.1 looks up the new parents relative to the cwd
  fi
done < "$work/hello.spec"
echo "    $(find "$root" | wc -l) paths, $(du -sh "$root" | cut -f1) in $root"

if [ "$(id -u)" = 0 ]; then
  step "run it: chroot $root $work/app/hello.sh"
  chroot "$root" "$work/app/hello.sh" | sed 's/^/    /'
else
  step "skipping the chroot step: it needs root (sudo make demo)"
fi
printf '\n\033[1mdemo ok\033[0m\n'
