#!/bin/bash
# The mmtrust check's cost in Kamailio (issue 11): SIPp calls at stepped
# rates through the shipped kamailio.cfg + mmtrust-edge.lua, with the check
# and with the same configuration without it (bench/sip/edge-nocheck.lua:
# the shipped script, its two checks replaced by functions that do
# nothing), interleaved step by step in one run.  For each variant: the
# highest rate it sustains without a failed call, and Kamailio's CPU per
# transaction (utime+stime of its main process and all its children, before
# and after each run) compared at the same rate.
#
# Topology (tests/lib/kamailio.sh): a SIPp UAC at a seg partner's address
# (with agreement: the answer is keep) in the peer namespace -> Kamailio's
# "mm" socket -> a SIPp UAS (accepts every call) in our namespace, where
# mmtrustd runs and keeps its snapshot, so each request is asked about
# in-process.  Calls: INVITE/200/ACK, 100 ms, BYE/200: two transactions.
# Before the steps, three verdict calls show each variant does what it says
# (the setup fails otherwise).
#
# A step passes when the UAC's -m calls all succeeded within the step's
# time (SIPp exit 0, successful = calls, failed = 0 at both ends; a
# retransmission limit reached, an unexpected message or a receive timeout
# of 5 s all fail a call), and SIPp placed them at the asked rate (wall
# time at most 1.2x the step's seconds + 2 s).  Retransmissions are counted
# and printed, not failed on.  A failed step is tried once more; a variant
# stops at its second failed try.  Root; namespaces created and deleted.
#
#   bash bench/sip.sh [BUILD]
#   BENCH_QUICK=1: three low steps of 2 s, 2 CPU pairs (a smoke run, ~1.5 min)
#   BENCH_CPU_PAIRS=N: the interleaved pairs of the CPU comparison (5)
#   BENCH_RATES="200 400 ..." BENCH_SECONDS=N: the steps and their length
set -u
BUILD=$(realpath "${1:-build}")
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../tests/lib/common.sh"
. "$HERE/../tests/lib/kamailio.sh"
if [ -n "${BENCH_QUICK:-}" ]; then
	RATES=${BENCH_RATES:-"200 400 800"} SECS=${BENCH_SECONDS:-2}
else
	RATES=${BENCH_RATES:-"400 800 1000 1200 1400 1600 2000"} SECS=${BENCH_SECONDS:-4}
fi
# CPU: PAIRS more runs of each variant, interleaved, one step below the
# highest rate both passed; the ratio is the median of the pairs' ratios.
PAIRS=${BENCH_CPU_PAIRS:-$([ -n "${BENCH_QUICK:-}" ] && echo 2 || echo 5)}
TARGET_RATE=0.95 TARGET_CPU=1.10
# Finished transactions stay in tm's shared memory for its wait timer:
# 64 MB (the tests') runs out near 800 calls/s, which would be the limit
# of both variants instead of the check's cost.
export KAM_SHM_MB=${KAM_SHM_MB:-1024}

mm_setup bench-sip
kam_setup
CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
S=ims.partner-s.example SIP_S=198.18.0.10
setup_failed() { echo "bench/sip: setup failed: $*" >&2; exit 1; }

STRANGER=203.0.113.50
kam_topology "$SIP_S $STRANGER" "198.18.0.0/24 203.0.113.0/24" || setup_failed "namespaces"
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $KAM_QUERY
[local]
cscf = $KAM_MM_NET
tunnel = $KAM_TUN
forward = no
[ike]
enabled = no
CONF
mm_start_daemon 10 "$KAM_QUERY" answer
make_ca "$MM_TMP" ca
"$CTL" partner add $S --kind ims --agreement yes --path seg --range 198.18.0.0/24 \
	--gateway 198.51.100.11 --ca "$MM_TMP/ca.pem" >/dev/null || setup_failed "partner add"
[ "$MM_FAILS" -eq 0 ] || setup_failed "mmtrustd: $(tail -n 5 "$MM_TMP/daemon.log")"
SNAP=$("$CTL" status 2>&1 | grep -i snapshot)
kam_site "$S=sip:$SIP_S:5060" || setup_failed "site file"
cp "$HERE/sip/edge-nocheck.lua" "$MM_TMP/kam/" || setup_failed "edge-nocheck.lua"

# The variants do what they say, with the verdict UAS: with the shipped
# script a call from $SIP_S keeps its identity (the hot path below is
# keep) and one from a stranger loses it; without the check the
# stranger's is kept.
verdict_call() { # VERDICT SRC
	kam_call "$1" "$KAM_NS" "$KAM_UAS" "$KAM_PEER" "$2" "$KAM_MM" "$KAM_MM" && [ "$KAM_UAC_RC" -eq 0 ] ||
		setup_failed "a call from $2 should have P-Asserted-Identity $1: $(kam_call_logs)"
}
kam_start >/dev/null || setup_failed "Kamailio: $(tail -n 5 "$KAM_LOG")"
verdict_call kept "$SIP_S"
verdict_call stripped "$STRANGER"
kam_stop
kam_start "$MM_TMP/kam/edge-nocheck.lua" >/dev/null || setup_failed "Kamailio: $(tail -n 5 "$KAM_LOG")"
verdict_call kept "$STRANGER"
kam_stop

# tree PID: PID and all its descendants (Kamailio forks its children at
# start, none later).  cpu_ticks PID...: their utime+stime, clock ticks.
tree() {
	python3 - "$1" <<'PY'
import os, sys
parent = {}
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        s = open("/proc/%s/stat" % p).read()
    except OSError:
        continue
    parent[int(p)] = int(s[s.rindex(")") + 2:].split()[1])
tree, grew = {int(sys.argv[1])}, True
while grew:
    new = {p for p, pp in parent.items() if pp in tree} - tree
    grew = bool(new)
    tree |= new
print(" ".join(map(str, sorted(tree))))
PY
}
cpu_ticks() {
	local p s t=0
	for p; do
		s=$(<"/proc/$p/stat") || continue
		set -- ${s##*) }
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)

# sipp_stat FILE COLUMN: the last value of a SIPp -trace_stat column.
sipp_stat() {
	python3 - "$1" "$2" <<'PY'
import sys
rows = [l.rstrip("\n").split(";") for l in open(sys.argv[1]) if l.strip()]
i = rows[0].index(sys.argv[2])
print(rows[-1][i] or 0)
PY
}

# run VARIANT RATE: one step (Kamailio started for it, stopped after).
# Sets RES to "pass ok failed retrans uas_failed wall cpu_s dcpu_s procs".
RUNS=0
run() {
	local v=$1 r=$2 n=$(($2 * SECS)) d=$MM_TMP/run.$RUNS script uas rc kpids c0 c1 d0 d1 t0 t1 k
	local T=$((SECS * 3 + 10))
	RUNS=$((RUNS + 1))
	mkdir -p "$d"
	[ "$v" = with ] && script=$MM_TMP/kam/mmtrust-edge.lua || script=$MM_TMP/kam/edge-nocheck.lua
	kam_start "$script" >/dev/null || setup_failed "Kamailio ($v): $(tail -n 5 "$KAM_LOG")"
	(cd "$d" && exec ip netns exec "$KAM_NS" sipp -sf "$HERE/sip/uas.xml" -i "$KAM_UAS" -p 5060 \
		-m "$n" -timeout "$((T + 5))s" -nostdin -trace_stat -stf uas.csv -fd 1 -trace_err \
		>uas.out 2>&1) &
	uas=$!
	KAM_SIPP_PIDS=$uas
	wait_for 10 kam_listening "$KAM_NS" "$KAM_UAS:5060" || setup_failed "SIPp UAS did not bind"
	# the sockets are bound before the children are forked: let them
	# finish their start (each loads the Lua script) before measuring
	sleep 0.5
	kpids=$(tree "$KAM_PID")
	k=$(wc -w <<<"$kpids")
	c0=$(cpu_ticks $kpids) d0=$(cpu_ticks "$DPID")
	t0=$(date +%s%N)
	(cd "$d" && exec ip netns exec "$KAM_PEER" sipp -sf "$HERE/sip/uac.xml" -i "$SIP_S" -p 5070 \
		-r "$r" -m "$n" -l $((r * 5 + 100)) -recv_timeout 5000 -timeout "${T}s" -timeout_error \
		-nostdin -trace_stat -stf uac.csv -fd 1 -trace_err "$KAM_MM:5060" >uac.out 2>&1)
	rc=$?
	t1=$(date +%s%N)
	c1=$(cpu_ticks $kpids) d1=$(cpu_ticks "$DPID")
	local deadline=$(($(date +%s) + 3))
	while kill -0 "$uas" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
	kill "$uas" 2>/dev/null
	wait "$uas" 2>/dev/null
	KAM_SIPP_PIDS=
	kam_stop
	local ok=0 failed=0 retr=0 ufail=0
	if [ -s "$d/uac.csv" ]; then
		ok=$(sipp_stat "$d/uac.csv" "SuccessfulCall(C)") failed=$(sipp_stat "$d/uac.csv" "FailedCall(C)")
		retr=$(sipp_stat "$d/uac.csv" "Retransmissions(C)")
	fi
	[ -s "$d/uas.csv" ] && ufail=$(sipp_stat "$d/uas.csv" "FailedCall(C)")
	local wall=$(((t1 - t0) / 1000000)) p=fail
	[ "$rc" -eq 0 ] && [ "$ok" -eq "$n" ] && [ "$failed" -eq 0 ] && [ "$ufail" -eq 0 ] &&
		[ "$wall" -le $((SECS * 1200 + 2000)) ] && p=pass
	RES="$p $ok $failed $retr $ufail $wall $((c1 - c0)) $((d1 - d0)) $k $n"
}

# Kamailio idle (no traffic): its timers' CPU, over 2 s after its start.
kam_start "$MM_TMP/kam/edge-nocheck.lua" >/dev/null || setup_failed "Kamailio: $(tail -n 5 "$KAM_LOG")"
sleep 0.5
kpids=$(tree "$KAM_PID")
KPROCS=$(wc -w <<<"$kpids")
i0=$(cpu_ticks $kpids)
sleep 2
i1=$(cpu_ticks $kpids)
kam_stop
IDLE=$(((i1 - i0) * 1000 / HZ / 2))

echo "bench/sip: $(nproc) cores shared by Kamailio (children=2 per socket), mmtrustd, both SIPp"
echo "  instances and anything else on this machine; steps of ${SECS} s, rates: $RATES calls/s"
echo "  Kamailio: $KPROCS processes, ${KAM_SHM_MB} MB shared memory, idle ${IDLE} ms CPU/s (included in the figures below)"
echo "  ${SNAP:-snapshot: (mmtrustctl status did not say)}"
printf '%-6s %-8s %-5s %7s %6s %6s %6s %7s %9s %9s\n' rate variant step ok failed retr uasf wall_ms "kam_us/tx" "mmd_us/tx"
declare -a P; declare -A U BEST=([with]=0 [without]=0) DONE=([with]=0 [without]=0) CPU
order="without with"
for r in $RATES; do
	[ "${DONE[with]}" -eq 1 ] && [ "${DONE[without]}" -eq 1 ] && break
	for v in $order; do
		[ "${DONE[$v]}" -eq 1 ] && continue
		for try in 1 2; do
			run "$v" "$r"
			read -r p ok failed retr ufail wall c dc k n <<<"$RES"
			tx=$((ok * 2))
			us=$(python3 -c "print('%.1f' % ($c * 1e6 / $HZ / $tx) if $tx else 'nan')")
			dus=$(python3 -c "print('%.1f' % ($dc * 1e6 / $HZ / $tx) if $tx else 'nan')")
			printf '%-6s %-8s %-5s %7s %6s %6s %6s %7s %9s %9s\n' "$r" "$v" "$p" "$ok/$n" "$failed" \
				"$retr" "$ufail" "$wall" "$us" "$dus"
			[ "$p" = pass ] && break
		done
		if [ "$p" = pass ]; then
			BEST[$v]=$r CPU[$v.$r]=$us
		else
			DONE[$v]=1
		fi
	done
	# interleaved, and the order swapped at each step (drift on a shared
	# machine falls on both)
	[ "$order" = "without with" ] && order="with without" || order="without with"
done

echo
echo "highest rate without a failed call: with the check ${BEST[with]} calls/s, without ${BEST[without]} calls/s"
[ "${DONE[with]}" -eq 0 ] && echo "  (with the check: passed every step; the limit is above the last step)"
[ "${DONE[without]}" -eq 0 ] && echo "  (without: passed every step; the limit is above the last step)"
verdict() { python3 -c "import sys; print('PASS' if $1 else 'MISS')"; }
if [ "${BEST[without]}" -gt 0 ]; then
	rr=$(python3 -c "print('%.2f' % (${BEST[with]} / ${BEST[without]}))")
	echo "rate ratio with/without: ${rr}x (target >= ${TARGET_RATE}x): $(verdict "$rr >= $TARGET_RATE")"
else
	echo "rate ratio with/without: n/a (without the check no step passed)"
fi
# The CPU pairs run one step below the highest rate both passed: at that
# rate itself a run often fails (its retransmissions are extra work and
# the machine is saturated, which makes the figures noise).
common=$((BEST[with] < BEST[without] ? BEST[with] : BEST[without]))
prev=0
for r in $RATES; do [ "$r" -lt "$common" ] && prev=$r; done
[ "$prev" -gt 0 ] && common=$prev
if [ "$common" -gt 0 ] && [ "$PAIRS" -gt 0 ]; then
	echo
	echo "CPU per transaction at $common calls/s (one step below the highest both pass), $PAIRS interleaved pairs:"
	RATIOS= GOOD=
	for i in $(seq "$PAIRS"); do
		line="  pair $i:"
		[ $((i % 2)) -eq 1 ] && order="with without" || order="without with"
		for v in $order; do
			run "$v" "$common"
			read -r p ok failed retr ufail wall c dc k n <<<"$RES"
			tx=$((ok * 2))
			U[$v]=$(python3 -c "print('%.1f' % ($c * 1e6 / $HZ / $tx) if $tx else 'nan')")
			line="$line $v ${U[$v]} us ($p $ok/$n, uas failed $ufail)"
			[ "$p" = pass ] || P[$i]=fail
		done
		r=$(python3 -c "print('%.2f' % (${U[with]} / ${U[without]}))")
		RATIOS="$RATIOS $r"
		[ "${P[$i]:-}" = fail ] || GOOD="$GOOD $r"
		echo "$line: ${r}x"
	done
	# the median of the pairs where both runs passed; of all when none did
	used=${GOOD:-$RATIOS}
	cr=$(python3 -c "import statistics, sys; print('%.2f' % statistics.median(map(float, sys.argv[1:])))" $used)
	echo "Kamailio CPU per transaction with/without at $common calls/s: median ${cr}x of ($used )" \
		"$([ -n "$GOOD" ] && echo "(pairs where both passed)" || echo "(no pair passed in full: all pairs)")" \
		"(target <= ${TARGET_CPU}x): $(verdict "$cr <= $TARGET_CPU")"
else
	echo "CPU ratio: n/a (no rate passed by both, or BENCH_CPU_PAIRS=0)"
fi
echo "(kam_us/tx: Kamailio utime+stime of all its processes / transactions, 2 a call;"
echo " mmd_us/tx: mmtrustd's, near 0 when the answers come from the snapshot in-process)"
exit 0
