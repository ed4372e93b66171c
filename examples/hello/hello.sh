#!/bin/sh
# The demo's program: a shell script, so its closure is an interpreter plus
# the libraries of everything it runs.
echo "hello from a vzfs root: $(ls / | tr '\n' ' ')"
ls -l /usr/bin | wc -l | sed 's/^/programs in \/usr\/bin: /'
