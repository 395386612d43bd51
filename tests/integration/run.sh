#!/bin/bash
# Integration tests with the real daemon: bash tests/integration/run.sh BUILD
set -u
BUILD=${1:-build}
rc=0
for t in "$(dirname "$0")"/test_*.sh; do
	echo "== $t"
	bash "$t" "$BUILD" || rc=1
done
exit $rc
