#!/usr/bin/env bash
# make demo: vzfs's main job end to end on the embedded example
# (examples/hello/hello.sh, a shell script that runs ls, wc, sed and tr).
#   1. vzfs ldd resolves it into a spec, statically: nothing is run;
#   2. vzfs mount serves that spec as a read-only view; chroot runs it there;
#   3. vzfs run does namespace, view, chroot and command in one step;
#   4. vzfs freeze writes the spec out as a real tree and as an OCI image.
set -euo pipefail
vzfs=$(readlink -f "${1:-bin/vzfs}")
here=$(cd "$(dirname "$0")/.." && pwd)

# Not under /tmp: inside 'vzfs run' /tmp is a fresh tmpfs.
work=$(mktemp -d /var/tmp/vzfs-demo.XXXXXX)
cleanup() {
  "$vzfs" umount "$work/view" 2>/dev/null || umount -l "$work/view" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
install -D -m 0755 "$here/examples/hello/hello.sh" "$work/app/hello.sh"
app="$work/app/hello.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
indent() { sed 's/^/    /'; }

step "1. vzfs ldd: the spec of hello.sh and the programs it runs"
"$vzfs" ldd -o "$work/hello.spec" "$app" ls wc sed tr
indent < "$work/hello.spec"
echo "    ($(grep -vc '^#' "$work/hello.spec") entries)"
echo "    why is libpcre2 there? $("$vzfs" ldd --explain --with none ls 2>&1 >/dev/null | grep -m1 'libpcre2-8.so.0	' | cut -f2)"

if [ "$(id -u)" != 0 ]; then
  step "the remaining steps mount and chroot: run 'sudo make demo' to see them"
  exit 0
fi

step "2. vzfs mount: the spec as a read-only view of the host's files, nothing copied"
mkdir -p "$work/view"
"$vzfs" mount --log-file "$work/mount.log" "$work/hello.spec" "$work/view" | indent
echo "    the view holds $(find "$work/view" | wc -l) paths; the host's /usr/bin alone has $(ls /usr/bin | wc -l)"
chroot "$work/view" "$app" | indent
if touch "$work/view/usr/bin/evil" 2>/dev/null; then echo "    a write went through!"; exit 1; fi
echo "    touch inside the view: $(touch "$work/view/usr/bin/evil" 2>&1 | sed 's/.*: //')"
"$vzfs" umount "$work/view"

step "3. vzfs run: private namespace, view, chroot and command in one step"
"$vzfs" run "$work/hello.spec" -- "$app" | indent

step "4. vzfs freeze: a real tree, then an OCI image"
"$vzfs" freeze --no-resolve "$work/hello.spec" "$work/root" 2>&1 | indent
chroot "$work/root" "$app" | indent
"$vzfs" freeze --no-resolve --mtime @0 --oci "$work/hello-oci.tar" --tag hello:demo --entrypoint "$app" "$work/hello.spec" 2>&1 | indent
echo "    $(du -h "$work/hello-oci.tar" | cut -f1) oci-archive, loadable with 'podman load' or 'skopeo copy oci-archive:...'"

printf '\n\033[1mdemo ok\033[0m\n'
