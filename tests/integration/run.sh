#!/bin/bash
# Integration tests with the real daemon: bash tests/integration/run.sh BUILD
set -u
BUILD=${1:-build}
# Every test runs $BUILD's programs (make asan gives build-asan): none there
# is an error, not a quiet fallback to another build.
for p in mmtrustd mmtrustctl; do
	[ -x "$BUILD/$p" ] || { echo "integration: no $BUILD/$p (make BUILD=$BUILD all)" >&2; exit 1; }
done
# MM_INTEGRATION_SKIP: test names (test_x.sh) not to run, space-separated;
# make asan gives the scale and timing tests, which the plain tier runs.
rc=0
for t in "$(dirname "$0")"/test_*.sh; do
	case " ${MM_INTEGRATION_SKIP:-} " in
	*" $(basename "$t") "*) echo "== $t: not in this tier (MM_INTEGRATION_SKIP)"; continue ;;
	esac
	echo "== $t"
	t0=$(date +%s)
	bash "$t" "$BUILD" || rc=1
	echo "== $t took $(($(date +%s) - t0)) s"
done
exit $rc
