#!/bin/bash
# libmmtrust's in-process answers (the snapshot, policy/snapshot.h) against
# the real daemon: the files and who may read them; in-process answers
# equal the socket's for random questions across random table, tunnel and
# settings changes (snapclient compare); a tunnel going down is never kept
# in-process once a subscriber has heard it (snapclient watch); and when
# the daemon is stopped (SIGSTOP), killed, or the files are not its own,
# answers come from the socket or fail closed -- never from a snapshot
# nobody vouches for.  The tunnels are fake_charon.py's (no ESP here).
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"
SC="$BUILD/tests/integration/snapclient"
[ -x "$SC" ] || { echo "no $SC (make $SC)" >&2; exit 1; }
SEED=${SNAPSHOT_SEED:-$(date +%s)}
ROUNDS=${SNAPSHOT_ROUNDS:-12}
echo "seed $SEED (SNAPSHOT_SEED=$SEED to repeat), $ROUNDS rounds"
RANDOM=$SEED

fc_setup snapshot
SNAP=$MM_TMP/query.snap
A=ims.partner-a.example N=sip.provider-n.example S=ims.partner-s.example
X=x.extra.example
conf() {  # UNTRUSTED REQUIRE_DST
	fc_conf yes yes 2999 "10.0.0.0/24, 2001:db8:10::/64"
	printf '[query]\nuntrusted = %s\nrequire_dst = %s\n' "$1" "$2" >>"$MM_TMP/mmtrustd.conf"
}
conf strip-always no
fc_start

expect_exit 0 "add tunnel partner A (agreement)" "$CTL" partner add $A --kind ims \
	--agreement yes --range 192.0.2.0/24 --range 2001:db8:a::/48 --gateway 198.51.100.10 \
	--ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add tunnel partner N (no agreement)" "$CTL" partner add $N --kind non-ims \
	--agreement no --range 203.0.113.0/25 --gateway 198.51.100.20 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add seg partner S (agreement)" "$CTL" partner add $S --kind ims \
	--agreement yes --path seg --range 198.18.0.0/24 --gateway 198.51.100.11 \
	--ca "$MM_TMP/ca-a.pem"
in_process_keep() { [ "$("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5)" = "snapshot keep protected" ]; }
wait_for 10 in_process_keep || fail "A over its tunnel is not answered keep in-process: $("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5)"

# --- the files ------------------------------------------------------------------
check "the state file is there" test -f "$SNAP"
check "the table file is there" test -f "$SNAP.table"
contains "$(stat -c '%a %U' "$SNAP" "$SNAP.table")" "600 root" "owner-only files without query_group"
contains "$("$PY" "$QC" ask "$SOCK" '{"op":"ping"}' | jq -r .result.snapshot)" "$SNAP" \
	"ping tells where the snapshot is"
contains "$("$CTL" status)" "snapshot: $SNAP, generation" "mmtrustctl status names the snapshot"
check "status --json: the snapshot is current, 3 partners, 2 tunnels up" \
	jq -e '.snapshot | .current and .partners == 3 and .tunnels_up == 2' <<<"$("$CTL" --json status)"
contains "$("$SC" ask "$SOCK" inbound 203.0.113.5 10.0.0.5)" "snapshot strip no-agreement" \
	"N: strip, in-process"
contains "$("$SC" ask "$SOCK" inbound 10.9.9.9 10.0.0.5)" "snapshot strip unknown-source" \
	"an unknown source: strip, in-process"
contains "$("$SC" ask "$SOCK" inbound 192.0.2.10 198.51.100.1)" "snapshot strip dst-not-cscf" \
	"A to our tunnel address: strip, in-process"
contains "$("$SC" ask "$SOCK" outbound $S)" "snapshot keep seg-trusted" "outbound to S: keep"
contains "$("$SC" ask "$SOCK" inbound bogus)" "error" "a refused question is the daemon's refusal"

# A second daemon that would write the same snapshot is refused.
cat >"$MM_TMP/second.conf" <<CONF
[daemon]
store = $MM_TMP/second.db
admin_socket = $MM_TMP/second-admin.sock
query_socket = $MM_TMP/second-query.sock
query_snapshot = $SNAP
[spd]
enabled = no
tag = 4660
CONF
out=$(timeout 20 ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/second.conf" 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && pass "a second daemon on the same snapshot exits ($rc)" ||
	fail "a second daemon on the same snapshot: rc $rc"
contains "$out" "daemon.query_snapshot" "... and names query_snapshot"
check "the first daemon's snapshot is still current" in_process_keep

# --- in-process answers equal the socket's, across random changes ---------------
enabled_a=yes agreement_n=no have_x=no untrusted=strip-always require=no
for round in $(seq 1 "$ROUNDS"); do
	case $((RANDOM % 6)) in
	0) enabled_a=$([ $enabled_a = yes ] && echo no || echo yes)
	   "$CTL" partner set $A --$([ $enabled_a = yes ] && echo enable || echo disable) >/dev/null ||
		fail "partner set $A" ;;
	1) agreement_n=$([ $agreement_n = yes ] && echo no || echo yes)
	   "$CTL" partner set $N --agreement $agreement_n >/dev/null || fail "partner set $N" ;;
	2) if [ $have_x = no ]; then
		"$CTL" partner add $X --kind ims --agreement yes --range 100.64.0.0/16 \
			--range 2001:db8:c::/48 --gateway 198.51.100.30 --ca "$MM_TMP/ca-a.pem" >/dev/null ||
			fail "partner add $X"
		have_x=yes
	   else
		"$CTL" partner del $X >/dev/null || fail "partner del $X"
		have_x=no
	   fi ;;
	3) untrusted=$([ $untrusted = strip-always ] && echo strip-if-privacy-id || echo strip-always)
	   conf $untrusted $require
	   kill -HUP "$DPID" ;;
	4) require=$([ $require = no ] && echo yes || echo no)
	   conf $untrusted $require
	   kill -HUP "$DPID" ;;
	5) "$CTL" partner set $S --agreement $([ $((RANDOM % 2)) = 0 ] && echo yes || echo no) >/dev/null ||
		fail "partner set $S" ;;
	esac
	sleep 0.3
	out=$("$SC" compare "$SOCK" $((SEED + round)) 400 $A $N $S $X 2>&1)
	rc=$?
	echo "    round $round (A enabled $enabled_a, N agreement $agreement_n, X $have_x, $untrusted, require_dst $require): ${out##*$'\n'}"
	if [ $rc -ne 0 ]; then
		fail "round $round: in-process and socket answers differ"
		echo "$out" | head -20
	fi
	n_in=$(sed -n 's/.*in-process \([0-9]*\), compared \([0-9]*\).*/\1/p' <<<"$out")
	[ "${n_in:-0}" -ge 200 ] || fail "round $round: only ${n_in:-0} of 400 answers in-process"
done
pass "in-process answers equal the socket's over $ROUNDS rounds of random changes"

# Back to a known state: A enabled and up, settings plain.
conf strip-always no
kill -HUP "$DPID"
expect_exit 0 "enable A" "$CTL" partner set $A --enable
wait_for 10 in_process_keep || fail "A not back to keep in-process"

# --- a tunnel going down --------------------------------------------------------
"$SC" watch "$SOCK" 192.0.2.10 10.0.0.5 $A >"$MM_TMP/watch.out" 2>&1 &
W=$!
wait_for 5 grep -q ready "$MM_TMP/watch.out" || fail "the watcher did not start"
sleep 0.5
T0=$(date +%s%N)
"$CTL" partner set $A --disable >/dev/null || fail "disable A"
timeout 20 tail --pid="$W" -f /dev/null || { fail "the watcher never saw the sa-down"; kill "$W"; }
wait "$W"
echo "    $(tail -1 "$MM_TMP/watch.out")"
contains "$(cat "$MM_TMP/watch.out")" "after sa-down: r=0" "the watcher saw A's sa-down"
contains "$(cat "$MM_TMP/watch.out")" "pai=strip" "the first answer after the sa-down event strips"
contains "$(cat "$MM_TMP/watch.out")" "in-process), last keep" "the watcher's answers came in-process"
n=$(sed -n 's/.*asked [0-9]* (\([0-9]*\) in-process).*/\1/p' "$MM_TMP/watch.out")
[ "${n:-0}" -gt 0 ] || fail "no answer of the watcher came in-process"
expect_exit 0 "enable A" "$CTL" partner set $A --enable
wait_for 10 in_process_keep || fail "A not back to keep in-process"

# --- files that are not the daemon's (each `ask` is a new handle: it reads them) ---
chown nobody "$SNAP.table"
contains "$("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5)" "socket keep protected" \
	"a table file owned by another user is not read: the socket answers"
chown root "$SNAP.table"
chmod 666 "$SNAP.table"
contains "$("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5)" "socket keep protected" \
	"a table file others may write is not read"
chmod 600 "$SNAP.table"
chown nobody "$SNAP"
contains "$("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5)" "socket keep protected" \
	"a state file owned by another user is not read"
chown root "$SNAP"
check "the files are read again once they are the daemon's" in_process_keep

# --- the daemon paused, then killed, under a handle that stays open --------------
coproc REPL { "$SC" repl "$SOCK"; }
ask_repl() { echo "$*" >&"${REPL[1]}"; read -r -t 30 line <&"${REPL[0]}"; echo "$line"; }
contains "$(ask_repl inbound 192.0.2.10 10.0.0.5)" "0 snapshot keep protected" "a handle that stays open: in-process from the first answer (its ping finds the files)"
contains "$(ask_repl inbound 192.0.2.10 10.0.0.5)" "0 snapshot keep protected" "and the next"
kill -STOP "$DPID"
contains "$(ask_repl inbound 192.0.2.10 10.0.0.5)" "0 snapshot keep protected" \
	"daemon paused: in-process answers within the heartbeat bound (1 s)"
sleep 1.5
out=$(ask_repl inbound 192.0.2.10 10.0.0.5)
contains "$out" "strip" "paused past the bound: no in-process answer; the socket times out, strip"
[ "${out%% *}" -lt 0 ] 2>/dev/null && pass "... and says it failed ($out)" || fail "paused: $out"
kill -CONT "$DPID"
wait_for 5 in_process_keep || fail "in-process answers did not come back after SIGCONT"
wait_for 5 eval '[ "$(ask_repl inbound 192.0.2.10 10.0.0.5)" = "0 snapshot keep protected" ]' ||
	fail "the open handle did not answer in-process again after SIGCONT"
kill -KILL "$DPID"
wait "$DPID" 2>/dev/null
DPID=
sleep 1.2
out=$(ask_repl inbound 192.0.2.10 10.0.0.5)
contains "$out" "strip" "daemon killed: its last snapshot is not used past the bound; strip"
[ "${out%% *}" -lt 0 ] 2>/dev/null && pass "... and says it failed ($out)" || fail "killed: $out"
check "the killed daemon's files are still there (only a clean stop removes them)" test -f "$SNAP"
contains "$("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5)" "error" "a new handle: no daemon"

# A clean stop removes them.
rm -f "$SOCK" "$MM_TMP/admin.sock"
fc_restart() { mm_start_daemon 5 "$SOCK" answer; }
fc_restart
wait_for 10 in_process_keep || fail "in-process answers after a restart"
wait_for 10 eval '[ "$(ask_repl inbound 192.0.2.10 10.0.0.5)" = "0 snapshot keep protected" ]' ||
	fail "the handle open since before the kill answers in-process from the new daemon"
exec {REPL[1]}>&-
kill -TERM "$DPID"
wait "$DPID" 2>/dev/null
DPID=
check "a clean stop takes the state file away" test ! -e "$SNAP"
check "a clean stop takes the table file away" test ! -e "$SNAP.table"

# --- no snapshot when the configuration says so -----------------------------------
rm -f "$SOCK" "$MM_TMP/admin.sock"
conf strip-always no
sed -i 's|^\[daemon\]$|[daemon]\nquery_snapshot =|' "$MM_TMP/mmtrustd.conf"
fc_restart
wait_for 10 eval '[ "$("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5)" = "socket keep protected" ]' ||
	fail "query_snapshot empty: answers over the socket ($("$SC" ask "$SOCK" inbound 192.0.2.10 10.0.0.5))"
check "query_snapshot empty: no state file" test ! -e "$SNAP"
contains "$("$PY" "$QC" ask "$SOCK" '{"op":"ping"}' | jq -c .result.snapshot)" "null" \
	"ping says there is no snapshot"
contains "$("$CTL" status)" "snapshot: none" "mmtrustctl status says there is none"
summary snapshot
