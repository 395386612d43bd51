#!/bin/bash
# Drift fights and storms (issue 9): while someone deletes every policy in
# a tight loop, or another program keeps replacing one partner's policy
# with a foreign one, the daemon must stay bounded: repairs of a fighting
# partner back off (the others are still repaired at once), one alarm per
# fight in status (partner, evidence) raised and cleared once each in the
# log, log lines of one kind rate-limited with "suppressed N" summaries,
# and after the storm everything is in sync again within the back-off
# maximum plus the quiet period plus a few seconds.
# The daemon runs in a namespace this test creates and deletes.
#
# Bounds asserted: each storm (20 s) adds fewer than STORM_LINES lines and
# STORM_BYTES bytes of log; the whole run stays under 64 KiB.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup storm

CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
STORM_SECONDS=${STORM_SECONDS:-20}
STORM_LINES=100
STORM_BYTES=24576
BACKOFF_MAX=6
QUIET=5
# STORM_KEYS="" runs the same storms with the daemon's defaults (and on a
# daemon that does not know the keys).
STORM_KEYS=${STORM_KEYS-"repair_burst = 5
repair_window = $QUIET
repair_backoff_max = $BACKOFF_MAX"}
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $MM_TMP/query.sock
[reqid]
min = 2000
max = 19999
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
[spd]
verify_interval = 3
$STORM_KEYS
CONF

LOOP=
mm_cleanup_hook() { mm_kill "$LOOP"; }
xp() { ip netns exec "$NS" ip "$@"; }
# One line per policy (no index, no times): the kernel's content.
policies() {
	xp xfrm policy | awk '/^src/ { if (l) print l; l = $0; next } { l = l " " $0 } END { if (l) print l }' |
		tr -s ' \t' ' ' | sort
}
status() { "$CTL" --json status; }
jqe() { jq -e "$@" >/dev/null; }
in_sync() { status | jq -e '.kernel.expected > 0 and .kernel.in_sync == .kernel.expected' >/dev/null; }
log_lines() { wc -l <"$MM_TMP/daemon.log"; }
log_bytes() { wc -c <"$MM_TMP/daemon.log"; }
fight_of() { status | jq -c --arg p "$1" '[.fights[]? | select(.partner == $p)][0] // empty'; }
no_fights() { status | jq -e '(.fights // []) == [] and .kernel.in_sync == .kernel.expected' >/dev/null; }

# --- the settings: one validation (--check-config, start, reload) -------------
check_config() { ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/$1"; }
expect_exit 0 "the back-off settings pass --check-config" check_config mmtrustd.conf
for bad in "repair_backoff_max = 0" "repair_backoff_max = 3601" "repair_window = 0" \
	"repair_burst = -1" "repair_burst = 5x"; do
	printf '[spd]\n%s\n' "$bad" >"$MM_TMP/bad.conf"
	expect_exit 1 "refused: $bad" check_config bad.conf
	contains "$ERR" "spd.${bad%% *}" "the refusal of '$bad' names the key"
done
printf '[spd]\nrepair_burst = 0\n' >"$MM_TMP/off.conf"
expect_exit 0 "repair_burst = 0 (no back-off) accepted" check_config off.conf

make_ca "$MM_TMP" ca
mm_start_daemon 10 "$MM_TMP/admin.sock" answer
A=ims.a.example B=ims.b.example C=ims.c.example
"$CTL" partner add $A --kind ims --agreement yes --range 192.0.2.0/24 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca.pem" >/dev/null || fail "add a"
"$CTL" partner add $B --kind ims --agreement yes --range 203.0.113.0/24 \
	--gateway 198.51.100.20 --ca "$MM_TMP/ca.pem" >/dev/null || fail "add b"
"$CTL" partner add $C --kind ims --agreement yes --range 198.18.0.0/16 \
	--gateway 198.51.100.30 --ca "$MM_TMP/ca.pem" >/dev/null || fail "add c"
wait_for 5 in_sync || fail "partners not in sync after adding them"
policies >"$MM_TMP/want"
check "six policies of ours to defend" test "$(wc -l <"$MM_TMP/want")" -eq 6

# restored_within SECONDS: the kernel holds exactly the policies wanted.
same_policies() { diff -q "$MM_TMP/want" <(policies) >/dev/null; }
restored_within() { wait_for "$1" same_policies; }

# --- storm (a): ip xfrm policy deleteall in a tight loop ----------------------
l0=$(log_lines) b0=$(log_bytes)
(end=$((SECONDS + STORM_SECONDS)); while [ $SECONDS -lt $end ]; do
	ip -n "$NS" xfrm policy deleteall 2>/dev/null; done) &
LOOP=$!
sleep $((STORM_SECONDS / 2))
f=$(fight_of $A)
if [ -n "$f" ]; then
	pass "deleteall storm: an alarm in status for $A"
	contains "$f" '"evidence":' "the alarm carries evidence"
	contains "$(jq -r .evidence <<<"$f")" "deleted" "evidence says what the other party did (deleted)"
	check "the alarm counts repairs and a back-off" jqe '.repairs >= 5 and .backoff_s >= 1 and (.since | type == "string")' <<<"$f"
else
	fail "deleteall storm: no alarm in status for $A: $(status | jq -c '.fights')"
fi
check "status counters: a fight active, repairs counted" \
	sh -c "'$CTL' --json status | jq -e '.kernel.counters.fights_active >= 1 and .kernel.counters.fights_raised >= 1 and .kernel.counters.drift_repairs >= 5' >/dev/null"
"$CTL" status >"$MM_TMP/status.txt" 2>&1
contains "$(cat "$MM_TMP/status.txt")" "ALARM" "text status shows the alarm"
contains "$(grep ALARM "$MM_TMP/status.txt")" "$A" "text status alarm names the partner"
wait "$LOOP"
LOOP=
dl=$(($(log_lines) - l0)) db=$(($(log_bytes) - b0))
if [ "$dl" -lt $STORM_LINES ] && [ "$db" -lt $STORM_BYTES ]; then
	pass "deleteall storm of ${STORM_SECONDS}s: $dl log lines, $db bytes"
else
	fail "deleteall storm of ${STORM_SECONDS}s: $dl log lines, $db bytes (bound $STORM_LINES lines, $STORM_BYTES bytes)"
fi
grep -c "fight" "$MM_TMP/daemon.log" >/dev/null && pass "fight logged" || fail "no fight in the log"
check "one alarm raised per partner in the log" test "$(grep -c "drift fight.*$A.*raised\|drift fight: partner $A " "$MM_TMP/daemon.log")" -eq 1
check "a 'suppressed N' summary in the log" grep -q "suppressed [0-9]* similar" "$MM_TMP/daemon.log"
t0=$SECONDS
if wait_for $((BACKOFF_MAX + QUIET + 5)) no_fights; then
	pass "after the storm: in sync and the alarms cleared in $((SECONDS - t0)) s"
else
	fail "after the storm: not in sync or alarms remain after $((BACKOFF_MAX + QUIET + 5)) s: $(status | jq -c '{k: .kernel, f: .fights}')"
fi
restored_within 2 && pass "kernel policies equal those before the storm" ||
	{ fail "kernel policies differ after the storm"; diff "$MM_TMP/want" <(policies) >&2; }
check "the alarm's end is logged once, with counts" test "$(grep -c "drift fight.*$A.*over\|drift fight over: partner $A " "$MM_TMP/daemon.log")" -eq 1

# --- storm (b): another program replaces A's in policy with its own --------------
l0=$(log_lines) b0=$(log_bytes)
(end=$((SECONDS + STORM_SECONDS)); while [ $SECONDS -lt $end ]; do
	ip -n "$NS" xfrm policy deleteall src 192.0.2.0/24 dst 10.10.0.0/24 dir in 2>/dev/null
	ip -n "$NS" xfrm policy add src 192.0.2.0/24 dst 10.10.0.0/24 dir in priority 7 \
		tmpl src 198.51.100.99 dst 198.51.100.1 proto esp reqid 77 mode tunnel 2>/dev/null
	done) &
LOOP=$!
sleep $((STORM_SECONDS / 2))
f=$(fight_of $A)
if [ -n "$f" ]; then
	pass "replace storm: an alarm in status for $A"
	ev=$(jq -r .evidence <<<"$f")
	contains "$ev" "priority 7" "evidence names the replacing policy's priority"
	contains "$ev" "reqid 77" "evidence names the replacing policy's reqid"
	contains "$ev" "not ours" "evidence says the replacement is not ours"
else
	fail "replace storm: no alarm in status for $A: $(status | jq -c '.fights')"
fi
check "replace storm: $B is not in a fight" test -z "$(fight_of $B)"
# Another partner drifts once during the fight: repaired at once.
idx=$(xp -s xfrm policy list dir out dst 198.18.0.0/16 | awk '{ for (i = 1; i < NF; i++) if ($i == "index") { print $(i+1); exit } }')
xp xfrm policy delete index "$idx" dir out
if wait_for 1 sh -c "ip netns exec $NS ip xfrm policy list dir out dst 198.18.0.0/16 | grep -q 'reqid'"; then
	pass "during the fight another partner ($C) is still repaired within a second"
else
	fail "during the fight $C was not repaired within a second"
fi
check "$C raised no alarm" test -z "$(fight_of $C)"
wait "$LOOP"
LOOP=
dl=$(($(log_lines) - l0)) db=$(($(log_bytes) - b0))
if [ "$dl" -lt $STORM_LINES ] && [ "$db" -lt $STORM_BYTES ]; then
	pass "replace storm of ${STORM_SECONDS}s: $dl log lines, $db bytes"
else
	fail "replace storm of ${STORM_SECONDS}s: $dl log lines, $db bytes (bound $STORM_LINES lines, $STORM_BYTES bytes)"
fi
# The other program stopped; its last policy stays (not ours: never touched).
xp xfrm policy deleteall src 192.0.2.0/24 dst 10.10.0.0/24 dir in priority 7 2>/dev/null
xp xfrm policy list dir in src 192.0.2.0/24 | grep -q "reqid 77" &&
	xp xfrm policy delete src 192.0.2.0/24 dst 10.10.0.0/24 dir in 2>/dev/null
t0=$SECONDS
if wait_for $((BACKOFF_MAX + QUIET + 5)) no_fights; then
	pass "after the replace storm: in sync and the alarm cleared in $((SECONDS - t0)) s"
else
	fail "after the replace storm: not in sync or alarm remains: $(status | jq -c '{k: .kernel, f: .fights}')"
fi
restored_within 2 && pass "kernel policies equal those before the storms" ||
	{ fail "kernel policies differ after the replace storm"; diff "$MM_TMP/want" <(policies) >&2; }
total=$(log_bytes)
check "whole run: log under 64 KiB ($total bytes, $(log_lines) lines)" test "$total" -lt 65536
[ -n "${MM_VERBOSE:-}" ] && cat "$MM_TMP/daemon.log"
summary test_storm
