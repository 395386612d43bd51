# Sourced by the tier runners (tests/integration/run.sh, tests/unit/run.sh):
# run a tier's tests some at a time, each one's output kept apart and
# printed whole as it ends.
#
# mm_jobs: the number of tests at once, from MM_JOBS (default: the number
# of cores, at most 4).  A malformed MM_JOBS is an error (exit 2).
#
# mm_run_tests JOBS RUN TEST...: RUN TEST for each TEST, JOBS at once.
# Each one's output goes to a file of its own and is printed between
# "== TEST" and "== TEST took N s" when it ends; with JOBS 1 the output
# comes as it is written.  The tests that fail are appended to the array
# MM_FAILED.  Tests still running when the runner is stopped are stopped.

MM_FAILED=()

mm_jobs() {
	local jobs=${MM_JOBS:-}

	if [ -z "$jobs" ]; then
		jobs=$(nproc 2>/dev/null || echo 1)
		[ "$jobs" -le 4 ] || jobs=4
	fi
	[[ $jobs =~ ^[1-9][0-9]{0,2}$ ]] ||
		{ echo "MM_JOBS must be a number from 1 to 999, not '$jobs'" >&2; exit 2; }
	echo "$jobs"
}

declare -A mm_test_of=() mm_start_of=() mm_log_of=()
mm_logs=

mm_stop_tests() {
	local pid

	for pid in "${!mm_test_of[@]}"; do kill "$pid" 2>/dev/null; done
	wait
	[ -z "$mm_logs" ] || rm -rf "$mm_logs"
}

# Wait for one running test, print its output whole.
mm_reap() {
	local pid rc t

	wait -n -p pid "${!mm_test_of[@]}"
	rc=$?
	t=${mm_test_of[$pid]}
	echo "== $t"
	cat "${mm_log_of[$pid]}"
	[ "$rc" -eq 0 ] || MM_FAILED+=("$t")
	echo "== $t took $(($(date +%s) - mm_start_of[$pid])) s"
	unset "mm_test_of[$pid]" "mm_start_of[$pid]" "mm_log_of[$pid]"
}

mm_run_tests() {
	local jobs=$1 run=$2 t t0 n=0
	shift 2

	if [ "$jobs" -eq 1 ]; then
		for t in "$@"; do
			echo "== $t"
			t0=$(date +%s)
			"$run" "$t" || MM_FAILED+=("$t")
			echo "== $t took $(($(date +%s) - t0)) s"
		done
		return 0
	fi
	[ -n "$mm_logs" ] || mm_logs=$(mktemp -d /tmp/mmtrust-tier-XXXXXX) || exit 1
	trap mm_stop_tests EXIT
	trap 'exit 130' INT TERM
	for t in "$@"; do
		[ "${#mm_test_of[@]}" -lt "$jobs" ] || mm_reap
		n=$((n + 1))
		"$run" "$t" >"$mm_logs/$n.log" 2>&1 </dev/null &
		mm_log_of[$!]=$mm_logs/$n.log
		mm_test_of[$!]=$t
		mm_start_of[$!]=$(date +%s)
	done
	while [ "${#mm_test_of[@]}" -gt 0 ]; do mm_reap; done
}
