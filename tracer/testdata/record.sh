#!/bin/sh
# Re-records the strace logs the parser tests read. Run from anywhere; the
# logs name /var/tmp/vzst, which the tests use as the starting cwd.
# Needs strace and gcc. The tests expect strace 6.1's output format.
set -eu
out=$(cd "$(dirname "$0")" && pwd)
work=/var/tmp/vzst
mkdir -p "$work" && cd "$work"
cat > thr.c <<'C'
#include <pthread.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
static void *run(void *a) { (void)a; chdir("/usr"); int fd = open("share/common-licenses/GPL-3", O_RDONLY); char b[16]; int n = read(fd, b, 15); b[n>0?n:0]=0; printf("%s\n", b); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); pthread_join(t, 0); int fd = open("lib/os-release", O_RDONLY); printf("%d\n", fd>=0); return 0; }
C
gcc -O -pthread -o thr thr.c
mkdir -p 'we<i>rd dir'
echo hi > 'we<i>rd dir/f"x'
touch "$(printf 'x\303\251\ty')"
rm -f 'we<i>rd dir/created.txt'
S="strace --seccomp-bpf -f -qq -y -s 4096 -e signal=none -e trace=%file,%process,chdir,fchdir"
$S -o "$out/cd_cat.log" sh -c 'cd /etc && cat hostname; ls /nonexist; true' >/dev/null 2>&1 || true
$S -o "$out/thread.log" ./thr >/dev/null
$S -o "$out/escapes.log" sh -c 'cd "we<i>rd dir" && cat "f\"x" && cat ../x*y; echo new > created.txt; cat created.txt; foo; exit 3' >/dev/null 2>&1 || true
$S -o "$out/killed.log" sh -c 'sleep 10 & kill -9 $!; wait; env true; cd /; cd usr; cat ../etc/hostname; kill -9 $$' >/dev/null 2>&1 || true
