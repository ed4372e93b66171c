#!/usr/bin/env bash
# Installs what vzfs's tests and demo need on a fresh Debian machine, and
# nothing when it is all there already (so `make test` stays quick).
# Usage: scripts/deps.sh [extra-debian-package...]
set -euo pipefail

# command -> Debian package that provides it
declare -A need=(
  [strace]=strace
  [fusermount3]=fuse3
  [gcc]=gcc
  [make]=make
  [perl]=perl
  [/usr/bin/python3]=python3
  [setcap]=libcap2-bin
  [getfattr]=attr
  [setpriv]=util-linux
  [/usr/bin/time]=time
)

# Packages checked by name: static libc for the resolver's static-binary
# tests, and OCI tools the freeze tests read images back with.
packages=(libc6-dev skopeo umoci)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for pkg in "${packages[@]}" "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Some kernels ship FUSE as a module; load it if the device is missing.
if [ ! -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
  modprobe fuse 2>/dev/null || true
fi
