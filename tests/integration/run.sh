#!/bin/bash
# Integration tests with the real daemon: bash tests/integration/run.sh BUILD
#
# Each test is isolated (its own network namespace, /tmp/mmtrust-NAME-*
# directory and sockets, and where it needs them its own database cluster
# and mount namespace: tests/lib/common.sh), so MM_JOBS of them run at once
# (tests/lib/parallel.sh: default the number of cores, at most 4; MM_JOBS=1
# runs them one after another, their output as it comes).
#
# The tests named in ALONE measure the machine (thousands of tunnels,
# policy storms, answer-latency windows, convergence and concurrency bounds
# across three daemons): they run after the others, one at a time, with
# nothing else running beside them.
#
# MM_INTEGRATION_SKIP: test names (test_x.sh) not to run, space-separated.
# MM_INTEGRATION_ALONE=skip: the tests of ALONE are not run either (make
# asan: they run in the plain tier only, Makefile SAN_SKIP says why).
set -u
BUILD=${1:-build}
here=$(dirname "$0")
. "$here/../lib/parallel.sh"
# Every test runs $BUILD's programs (make asan gives build-asan): none there
# is an error, not a quiet fallback to another build.
for p in mmtrustd mmtrustctl; do
	[ -x "$BUILD/$p" ] || { echo "integration: no $BUILD/$p (make BUILD=$BUILD all)" >&2; exit 1; }
done
ALONE=" test_ike_many.sh test_storm.sh test_window.sh test_responsive.sh test_fleet.sh "
jobs=$(mm_jobs) || exit 2
case ${MM_INTEGRATION_ALONE:-run} in
run | skip) ;;
*) echo "integration: MM_INTEGRATION_ALONE must be run or skip, not '$MM_INTEGRATION_ALONE'" >&2; exit 2 ;;
esac

together=() alone=()
for t in "$here"/test_*.sh; do
	n=$(basename "$t")
	case " ${MM_INTEGRATION_SKIP:-} " in
	*" $n "*) echo "== $t: not in this tier (MM_INTEGRATION_SKIP)"; continue ;;
	esac
	case "$ALONE" in
	*" $n "*)
		if [ "${MM_INTEGRATION_ALONE:-run}" = skip ]; then
			echo "== $t: not in this tier (MM_INTEGRATION_ALONE=skip)"
		else
			alone+=("$t")
		fi ;;
	*) together+=("$t") ;;
	esac
done

run() { bash "$1" "$BUILD"; }
echo "== integration: ${#together[@]} tests, $jobs at a time; then ${#alone[@]} alone"
mm_run_tests "$jobs" run "${together[@]}"
mm_run_tests 1 run "${alone[@]}"
if [ "${#MM_FAILED[@]}" -gt 0 ]; then
	echo "integration: failed: ${MM_FAILED[*]}" >&2
	exit 1
fi
