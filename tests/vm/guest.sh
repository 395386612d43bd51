#!/bin/bash
# Stage 2 of the VM tier, PID 1 inside the guest (started by init.sh).
# Runs the test scripts named in the job file (default: every
# tests/vm/test_*.sh) one after the other, each under a deadline; writes
# per-test logs, a summary and the overall exit code to the results share
# (/run/mmvm, build/vm-results/ on the host); powers off.
# Every way out goes through poweroff: PID 1 must not return.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
R=/run/mmvm
RC=1

# shellcheck disable=SC2317 # called by the EXIT trap
finish() {
	sync
	busybox poweroff -f
}
trap finish EXIT

read -r up _ </proc/uptime
echo "$up" >"$R/boot-uptime"

# shellcheck disable=SC1091 # written by run.sh
if ! . "$R/job"; then
	echo "mmvm: cannot read the job file" >&2
	exit 1
fi
export TERM=$MMVM_TERM

export MMTRUST_VM=1 MMTRUST_REPO=$MMVM_REPO
cd "$MMVM_REPO" || exit 1

if [ ${#MMVM_TESTS[@]} -eq 0 ] && [ "$MMVM_SHELL" != 1 ]; then
	MMVM_TESTS=("$MMVM_REPO"/tests/vm/test_*.sh)
	[ -e "${MMVM_TESTS[0]}" ] || MMVM_TESTS=()
fi

ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# run_test PATH: run one test script; its output goes to logs/NAME.log
# and, once it ends, to the console. Appends one line to the summary.
run_test() {
	local t=$1 name log t0 rc dt note=
	name=${t##*/}
	log=$R/logs/$name.log
	echo "== $name"
	t0=$(ms)
	if [ ! -f "$t" ]; then
		echo "mmvm: $t: no such test script" >"$log"
		rc=127
	else
		mkdir -p "$R/artifacts/${name%.sh}"
		# timeout puts the test in a process group of its own: whatever
		# the test leaves running is ended with it.
		# A test may ask for more time than the default with a line
		# "# vm-test-timeout: SECONDS" (never less).
		local to=$MMVM_TEST_TIMEOUT own
		own=$(sed -n 's/^# vm-test-timeout: *\([0-9][0-9]*\) *$/\1/p' "$t" | head -n1)
		[ -n "$own" ] && [ "$own" -gt "$to" ] && to=$own
		MMTRUST_VM_ARTIFACTS=$R/artifacts/${name%.sh} \
			timeout -k 5 "$to" bash "$t" </dev/null >"$log" 2>&1 &
		local pid=$!
		wait "$pid"
		rc=$?
		kill -KILL -- "-$pid" 2>/dev/null
		[ "$rc" -eq 124 ] && echo "mmvm: $name: timed out after ${to}s" >>"$log"
	fi
	dt=$(($(ms) - t0))
	echo "$(<"$log")"
	# Namespaces a test left behind would confuse the next one.
	local left=() n
	for n in /run/netns/*; do [ -e "$n" ] && left+=("${n##*/}"); done
	if [ ${#left[@]} -gt 0 ]; then
		note=" (left netns: ${left[*]})"
		for n in "${left[@]}"; do ip netns delete "$n" 2>/dev/null; done
	fi
	# A test must clean up after itself: a leak fails it.
	[ -n "$note" ] && [ "$rc" -eq 0 ] && rc=1
	if [ "$rc" -eq 0 ]; then
		printf 'PASS  %-28s %3d.%01d s%s\n' "$name" $((dt / 1000)) $((dt % 1000 / 100)) "$note" >>"$R/summary"
		echo "== $name: PASS"
		return 0
	fi
	printf 'FAIL  %-28s %3d.%01d s  exit %d%s\n' "$name" $((dt / 1000)) $((dt % 1000 / 100)) "$rc" "$note" >>"$R/summary"
	echo "== $name: FAIL (exit $rc)"
	return 1
}

: >"$R/summary"
failed=0
for t in "${MMVM_TESTS[@]}"; do
	run_test "$t" || failed=$((failed + 1))
done
n=${#MMVM_TESTS[@]}
if [ "$n" -eq 0 ] && [ "$MMVM_SHELL" != 1 ]; then
	echo "mmvm: no test scripts to run" | tee -a "$R/summary"
	RC=1
elif [ "$failed" -eq 0 ]; then
	RC=0
else
	RC=1
fi
[ "$n" -gt 0 ] && echo "vm: $((n - failed)) passed, $failed failed" | tee -a "$R/summary"

if [ "$MMVM_SHELL" = 1 ]; then
	[ -n "$MMVM_STTY" ] && stty rows "${MMVM_STTY% *}" cols "${MMVM_STTY#* }" 2>/dev/null </dev/console
	echo "mmvm: guest shell; the repo is at $MMVM_REPO, results go to $R; 'exit' powers off"
	# cttyhack makes the serial line the shell's controlling terminal, so
	# that Ctrl-C and job control work.
	setsid -w busybox cttyhack /bin/bash -i
fi

echo "$RC" >"$R/rc.tmp" && mv "$R/rc.tmp" "$R/rc"
exit "$RC"
