#!/bin/bash
# Run every netns test driver (BUILD_DIR/tests/netns/test_*) inside a fresh
# network namespace of its own (unshare -n); each test case in a driver
# unshares yet another one, so the host's XFRM state is never touched.
# Exits non-zero when any driver fails or cannot run.
#
#   bash tests/netns/run.sh BUILD_DIR
set -u

build=${1:?usage: run.sh BUILD_DIR}
dir="$build/tests/netns"

if ! unshare -n true 2>/dev/null; then
	echo "netns: cannot create a network namespace (needs root or CAP_SYS_ADMIN)" >&2
	exit 1
fi
if ! command -v ip >/dev/null; then
	echo "netns: ip(8) from iproute2 is needed to check the kernel's state" >&2
	exit 1
fi

shopt -s nullglob
drivers=("$dir"/test_*)
if [ ${#drivers[@]} -eq 0 ]; then
	echo "netns: no test drivers in $dir" >&2
	exit 1
fi

failed=0
for t in "${drivers[@]}"; do
	[ -x "$t" ] || continue
	echo "== $t"
	if ! unshare -n "$t"; then
		echo "netns: FAILED: $t" >&2
		failed=$((failed + 1))
	fi
done
if [ "$failed" -ne 0 ]; then
	echo "netns: $failed driver(s) failed" >&2
	exit 1
fi
echo "netns: all drivers passed"
