#!/bin/bash
# The unit tests: bash tests/unit/run.sh TEST_BINARY...
#
# Each is a libcheck program of its own (CK_FORK=yes: every test case in a
# child); those that need PostgreSQL start a private cluster in a directory
# of their own (tests/unit/pgcluster.sh), so MM_JOBS of them run at once
# (tests/lib/parallel.sh: default the number of cores, at most 4; MM_JOBS=1
# runs them one after another, their output as it comes).
set -u
. "$(dirname "$0")/../lib/parallel.sh"
jobs=$(mm_jobs) || exit 2
run() { CK_FORK=yes "$1"; }
mm_run_tests "$jobs" run "$@"
if [ "${#MM_FAILED[@]}" -gt 0 ]; then
	echo "unit: failed: ${MM_FAILED[*]}" >&2
	exit 1
fi
