#!/bin/bash
# The host around the tunnels (daemon/host.c, docs/operations.md "Local
# addresses and routes"), in a namespace this test creates and deletes,
# with tests/integration/fake_charon.py standing in for charon:
#  - never: a foreign route (in our table, in main, with our protocol in
#    another table) or a foreign rule is changed; a conflicting foreign
#    route in our table is replaced; a restart with an unchanged table
#    writes a route; a tunnel counts as up (protected) on a host that no
#    longer holds its local address; charon is asked to initiate while the
#    address is away;
#  - must: the routes (table, protocol, src by kind, via/dev), the rule per
#    family, a route deleted by hand back within 1 s, the tunnel address
#    leaving -> status missing, tunnels down, answers not protected at once
#    and saying why (reason tunnel-address-missing, inbound and outbound,
#    on the socket and in-process from the snapshot; never for a seg
#    partner), coming back -> initiate at once, answers protected again;
#    link down -> the same reason; link down -> missing; a CSCF address
#    missing -> status, log, no route; partner deleted -> its routes gone;
#    routes = no -> ours removed; a seeded random sequence of partner
#    changes and address flaps against a reference computed here.
# HOST_SEED (default: from the clock) repeats a run; HOST_STEPS its length.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup host
export FAKE_CHARON_LOG=$MM_TMP/charon.cmds
SEED=${HOST_SEED:-$(date +%s)}
STEPS=${HOST_STEPS:-30}
T=6770 P=77
A=ims.partner-a.example B=partner-b.example C=ims.partner-c.example
N() { ip -n "$NS" "$@"; }
conf() { # conf ROUTES [TABLE]
	fc_conf yes yes 2999 2001:db8:10::/64 "cscf_ims = 10.10.1.0/24
cscf_non_ims = 10.10.2.0/24
routes = $1
route_table = ${2:-$T}"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# ms_until LIMIT_S COMMAND...: milliseconds until COMMAND succeeds (polled
# every 10 ms), or "timeout".
ms_until() {
	local t0 lim=$1
	shift
	t0=$(now_ms)
	while ! "$@" 2>/dev/null; do
		[ $(($(now_ms) - t0)) -ge $((lim * 1000 * MM_SLOW)) ] && { echo timeout; return 1; }
		sleep 0.01
	done
	echo $(($(now_ms) - t0))
}
st() { "$CTL" --json status | jq -c "$@"; }
ask() { "$PY" "$QC" ask "$SOCK" "{\"op\":\"inbound\",\"src\":\"$1\",\"dst\":\"$2\"}"; }
protected() { ask "$1" "$2" | jq -e '.result.protected == true' >/dev/null; }
# reason_is SRC DST REASON: the socket's inbound answer gives REASON.
reason_is() { ask "$1" "$2" | jq -e ".result.reason == \"$3\"" >/dev/null; }
stripped_unprotected() {
	ask "$1" "$2" | jq -e '.result | .protected == false and .sa == null and .pai == "strip"' >/dev/null
}
# out_reason_is DOMAIN REASON: the same for outbound to DOMAIN.
out_reason_is() {
	"$PY" "$QC" ask "$SOCK" "{\"op\":\"outbound\",\"domain\":\"$1\"}" |
		jq -e ".result.reason == \"$2\" and .result.pai == \"strip\"" >/dev/null
}
# snap_says DIR ARG... EXPECTED: libmmtrust answers from the snapshot
# (not the socket) "snapshot PAI REASON".
snap_says() {
	local want=${*: -1} out
	out=$("$BUILD/tests/integration/snapclient" ask "$SOCK" "${@:1:$#-1}" 2>&1)
	[ "$out" = "$want" ] || { echo "  snapclient ${*:1:$#-1}: $out, want $want" >&2; return 1; }
}
unprotected() { ask "$1" "$2" | jq -e '.result.protected == false' >/dev/null; }
ours() { { N -4 route show table $T proto $P; N -6 route show table $T proto $P; } 2>/dev/null; }
has_route() { ours | grep -q "^$1 .*$2"; }
no_route() { ! ours | grep -q "^$1 "; }
# initiates DOMAIN: how many times charon was asked to initiate its child.
initiates() { jq -c "select(.cmd == \"initiate\" and .child == \"$1\")" "$FAKE_CHARON_LOG" 2>/dev/null | wc -l; }
all_initiates() { jq -c 'select(.cmd == "initiate")' "$FAKE_CHARON_LOG" 2>/dev/null | wc -l; }

# --- the namespace: tunnel address as a /32 beside the link's own ---------------
N link set lo up
N link add mmtun0 type veth peer name mmtun1 && N addr add 198.51.100.2/24 dev mmtun0 &&
	N addr add "$TUN/32" dev mmtun0 && N link set mmtun0 up && N link set mmtun1 up || fail "mmtun0"
N link add cscf0 type veth peer name cscf1 && N addr add 10.10.1.5/24 dev cscf0 &&
	N addr add 10.10.2.5/24 dev cscf0 && N addr add 2001:db8:10::5/64 dev cscf0 nodad &&
	N link set cscf0 up && N link set cscf1 up || fail "cscf0"
N route add 203.0.113.0/24 via 198.51.100.254 dev mmtun0 || fail "route to B's gateway net"
# Foreign entries that must never change, on a link of their own (the
# kernel flushes a link's routes when it goes down).
N link add frn0 type veth peer name frn1 && N addr add 192.168.77.1/24 dev frn0 &&
	N link set frn0 up && N link set frn1 up || fail "frn0"
N route add 10.99.0.0/24 dev frn0 table $T proto static &&
	N route add 10.40.1.0/24 dev frn0 table $T proto static &&
	N route add 10.98.0.0/24 dev frn0 proto $P &&
	N route add 10.97.0.0/24 dev frn0 table 100 proto $P &&
	N rule add pref 6000 lookup 100 || fail "foreign routes and rule"
foreign() {
	N -4 route show table all | grep -v "proto $P\|proto kernel" | grep -v "^local\|^broadcast" | sort
	N route show table 100
	N route show 10.98.0.0/24
	N rule show pref 6000
}
foreign >"$MM_TMP/foreign.before"

conf yes
# fc_start adds $TUN/24 to a mmtun0 of its own making: ours is there already.
fc_start
expect_exit 0 "add A (IMS, v4 and v6 ranges, gateway on the link)" "$CTL" partner add $A \
	--kind ims --agreement yes --range 10.20.1.0/24 --range 2001:db8:a::/48 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add B (non-IMS, gateway behind a router)" "$CTL" partner add $B \
	--kind non-ims --agreement yes --range 10.30.1.0/24 --gateway 203.0.113.7 \
	--ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add C (its range held by a foreign route in our table)" "$CTL" partner add $C \
	--kind ims --agreement yes --range 10.40.1.0/24 --gateway 198.51.100.11 \
	--ca "$MM_TMP/ca-a.pem"

# --- routes --------------------------------------------------------------------------
check "A's IPv4 route: src the IMS-facing CSCF address, on the link" \
	wait_for 5 has_route 10.20.1.0/24 "dev mmtun0 .*src 10.10.1.5"
check "A's IPv6 route: src the shared CSCF address (IPv4 gateway: device only)" \
	wait_for 5 has_route 2001:db8:a::/48 "dev mmtun0 .*src 2001:db8:10::5"
check "B's route: via the router to its gateway, src the non-IMS address" \
	wait_for 5 has_route 10.30.1.0/24 "via 198.51.100.254 dev mmtun0 .*src 10.10.2.5"
check "C's range: no route of ours (a foreign one holds it)" no_route 10.40.1.0/24
check "C's conflict is in the status" \
	sh -c "\"$CTL\" --json status | jq -e '.host.routes.conflicts | any(.range == \"10.40.1.0/24\" and .partner == \"$C\")' >/dev/null"
check "IPv4 rule: priority 6770, lookup $T, proto $P" sh -c "ip -n $NS -4 rule show pref 6770 | grep -q 'lookup $T proto $P'"
check "IPv6 rule too" sh -c "ip -n $NS -6 rule show pref 6770 | grep -q 'lookup $T proto $P'"
foreign >"$MM_TMP/foreign.after"
check "foreign routes and rules untouched" cmp -s "$MM_TMP/foreign.before" "$MM_TMP/foreign.after"
check "status: tunnel address present" sh -c "\"$CTL\" --json status | jq -e '.host.tunnel[0] | .present and .interface == \"mmtun0\"' >/dev/null"
check "status: each CSCF prefix has its address" sh -c "\"$CTL\" --json status | jq -e '[.host.cscf[] | .present] | all' >/dev/null"

# Deleted by hand: back within a second.
N route del 10.20.1.0/24 table $T
ms=$(ms_until 1 has_route 10.20.1.0/24 "src 10.10.1.5")
echo "route deleted by hand: back after $ms ms"
check "a route deleted by hand is back within 1 s ($ms ms)" [ "$ms" != timeout ]
N -6 route del 2001:db8:a::/48 table $T
ms=$(ms_until 1 has_route 2001:db8:a::/48 "src 2001:db8:10::5")
check "an IPv6 route deleted by hand is back within 1 s ($ms ms)" [ "$ms" != timeout ]
N -4 rule del pref 6770
check "the rule deleted by hand is back" wait_for 2 sh -c "ip -n $NS -4 rule show pref 6770 | grep -q 'lookup $T'"

# Restart with the table unchanged: not one route or rule event.
ours | sort >"$MM_TMP/ours.1"
mm_kill "$DPID"
DPID=
ip -n "$NS" monitor route rule >"$MM_TMP/monitor" 2>&1 &
MON=$!
mm_cleanup_hook() { mm_kill "$MON"; mm_kill "$SUB"; mm_kill "$CHARON"; }
sleep 0.2
mm_start_daemon 5 "$SOCK" answer
wait_for 5 sh -c "\"$CTL\" --json status | jq -e '.host.routes.installed == 3' >/dev/null"
sleep 1
mm_kill "$MON"
ours | sort >"$MM_TMP/ours.2"
check "restart: the same routes" cmp -s "$MM_TMP/ours.1" "$MM_TMP/ours.2"
# (The kernel's own events, link-local addresses leaving DAD, do not count.)
grep -E "table $T|proto $P|lookup $T" "$MM_TMP/monitor" >"$MM_TMP/monitor.ours"
check "restart with an unchanged table: no event of our routes or rules ($(wc -l <"$MM_TMP/monitor") events in all)" \
	[ ! -s "$MM_TMP/monitor.ours" ]
[ -s "$MM_TMP/monitor.ours" ] && sed 's/^/  monitor: /' "$MM_TMP/monitor.ours" >&2

# --- the tunnel address ----------------------------------------------------------------
check "A protected (tunnel up, SPD on)" wait_for 10 protected 10.20.1.10 10.10.1.5
check "B protected" wait_for 10 protected 10.30.1.10 10.10.2.5
ia=$(initiates $A)
# poll_until_unprotected SRC DST OUT: one connection, asking every 2 ms;
# writes the wall-clock ns of the first "protected": false into OUT
# (python's start-up, over a second on a loaded machine, is not measured).
poll_until_unprotected() {
	python3 - "$SOCK" "$1" "$2" "$3" "$MM_TMP/poller.ready" <<-'PY' &
		import json, socket, sys, time
		sock, src, dst, out, ready = sys.argv[1:]
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.connect(sock)
		f = s.makefile("rwb", buffering=0)
		req = json.dumps({"op": "inbound", "src": src, "dst": dst}).encode() + b"\n"
		open(ready, "w").close()
		deadline = time.time() + 10
		while time.time() < deadline:
		    f.write(req)
		    a = json.loads(f.readline())
		    if a.get("result", {}).get("protected") is False:
		        open(out, "w").write(str(time.time_ns()))
		        open(out + ".reason", "w").write(a["result"].get("reason", ""))
		        break
		    time.sleep(0.002)
	PY
	POLLER=$!
	wait_for 10 test -e "$MM_TMP/poller.ready"
}
# A seg partner (the security gateway protects it, no tunnel of ours):
# our tunnel address never changes its answer.
S=seg.partner-s.example
expect_exit 0 "add S (seg, IPv4 gateway)" "$CTL" partner add $S --kind ims --agreement yes \
	--range 10.50.1.0/24 --gateway 198.51.100.13 --path seg --ca "$MM_TMP/ca-a.pem"
check "S: seg-trusted" wait_for 5 reason_is 10.50.1.10 10.10.1.5 seg-trusted
a_down() { "$CTL" --json status | jq -e ".partners[] | select(.domain == \"$A\") | .tunnel.state == \"down\"" >/dev/null; }
poll_until_unprotected 10.20.1.10 10.10.1.5 "$MM_TMP/unprotected.at"
t0=$(date +%s%N)
N addr del "$TUN/32" dev mmtun0
wait "$POLLER"
ms=timeout
[ -s "$MM_TMP/unprotected.at" ] && ms=$((($(cat "$MM_TMP/unprotected.at") - t0) / 1000000))
echo "tunnel address removed: the answers say A is not protected after $ms ms"
check "tunnel address gone: A not protected within 100 ms ($ms ms)" \
	sh -c "[ '$ms' != timeout ] && [ '$ms' -lt $((100 * MM_SLOW)) ]"
check "A's tunnel down in the status" a_down
# The answers say why: no tunnel address of A's gateway's family (IPv4)
# is on the host, so no SA can be up.  The first "protected": false
# already says it (one view: the tunnel down and the address missing).
check "the first unprotected answer names the missing address ($(cat "$MM_TMP/unprotected.at.reason" 2>/dev/null))" \
	[ "$(cat "$MM_TMP/unprotected.at.reason" 2>/dev/null)" = tunnel-address-missing ]
check "socket: A inbound, reason tunnel-address-missing" reason_is 10.20.1.10 10.10.1.5 tunnel-address-missing
check "socket: B inbound (IPv4 gateway too), reason tunnel-address-missing" \
	reason_is 10.30.1.10 10.10.2.5 tunnel-address-missing
check "socket: A outbound, strip with reason tunnel-address-missing" out_reason_is $A tunnel-address-missing
check "socket: not protected, no SA, stripped" stripped_unprotected 10.20.1.10 10.10.1.5
check "snapshot: A inbound, the same answer in-process" \
	wait_for 2 snap_says inbound 10.20.1.10 10.10.1.5 "snapshot strip tunnel-address-missing"
check "snapshot: A outbound, the same" snap_says outbound $A "snapshot strip tunnel-address-missing"
check "snapshot: B inbound, the same" \
	snap_says inbound 10.30.1.10 10.10.2.5 "snapshot strip tunnel-address-missing"
check "socket: the seg partner S still seg-trusted" reason_is 10.50.1.10 10.10.1.5 seg-trusted
check "snapshot: S still keep seg-trusted" \
	snap_says inbound 10.50.1.10 10.10.1.5 "snapshot keep seg-trusted"
# The snapshot (libmmtrust's in-process answers) follows the same view.
SC="$BUILD/tests/integration/snapclient"
if [ -x "$SC" ]; then
	out=$("$SC" ask "$SOCK" inbound 10.20.1.10 10.10.1.5 2>&1)
	echo "snapshot answer after the address left: $out"
	check "snapshot: A's answer strips once the address left ($out)" [ "$(awk '{print $2}' <<<"$out")" = strip ]
else
	fail "no $SC (make $SC)"
fi
check "... and B" unprotected 10.30.1.10 10.10.2.5
check "status: the tunnel address is missing, not on this host" \
	sh -c "\"$CTL\" --json status | jq -e '.host.tunnel[0] | .present == false and .state == \"absent\" and (.reason | test(\"not an address\"))' >/dev/null"
check "status: A's tunnel down" sh -c "\"$CTL\" --json status | jq -e '.partners[] | select(.domain == \"$A\") | .tunnel.state == \"down\"' >/dev/null"
check "log: the tunnel address is missing" grep -q "tunnel address $TUN is missing" "$MM_TMP/daemon.log"
check "charon told to terminate" grep -q '"cmd": "terminate"' "$FAKE_CHARON_LOG"
sleep 0.5
check "no initiate while the address is away" [ "$(initiates $A)" -eq "$ia" ]
check "still not protected" unprotected 10.20.1.10 10.10.1.5
N addr add "$TUN/32" dev mmtun0
more_initiates() { [ "$(initiates "$1")" -gt "$2" ]; }
ms=$(ms_until 2 more_initiates $A "$ia")
echo "tunnel address back: charon asked to initiate A after $ms ms"
check "address back: charon initiates A within 200 ms ($ms ms)" \
	sh -c "[ '$ms' != timeout ] && [ '$ms' -lt $((200 * MM_SLOW)) ]"
check "address back: A protected again" wait_for 5 protected 10.20.1.10 10.10.1.5
check "address back: B protected again" wait_for 5 protected 10.30.1.10 10.10.2.5
check "address back: socket reason protected" reason_is 10.20.1.10 10.10.1.5 protected
check "address back: snapshot A inbound protected, in-process" \
	wait_for 2 snap_says inbound 10.20.1.10 10.10.1.5 "snapshot keep protected"
check "address back: snapshot A outbound protected" snap_says outbound $A "snapshot keep protected"
check "address back: snapshot B inbound protected" \
	snap_says inbound 10.30.1.10 10.10.2.5 "snapshot keep protected"
expect_exit 0 "delete S" "$CTL" partner del $S
# Never: a table change or a reload initiates the other partners' tunnels.
ia=$(all_initiates)
"$CTL" partner add d.example --kind ims --agreement yes --range 10.60.0.0/24 \
	--gateway 198.51.100.12 --ca "$MM_TMP/ca-a.pem" >/dev/null
"$CTL" partner del d.example >/dev/null
kill -HUP "$DPID"
sleep 0.5
check "a partner add, delete and a reload initiate nothing ($(all_initiates) vs $ia)" \
	[ "$(all_initiates)" -eq "$ia" ]

# Link down: missing (link-down), not protected; up again: protected.
N link set mmtun0 down
check "link down: A not protected" wait_for 2 unprotected 10.20.1.10 10.10.1.5
check "link down: status says link-down" sh -c "\"$CTL\" --json status | jq -e '.host.tunnel[0] | .present == false and .state == \"link-down\"' >/dev/null"
check "link down: the answers say the tunnel address is missing" \
	wait_for 2 reason_is 10.20.1.10 10.10.1.5 tunnel-address-missing
check "link down: the snapshot too" \
	wait_for 2 snap_says inbound 10.20.1.10 10.10.1.5 "snapshot strip tunnel-address-missing"
N link set mmtun0 up
N route add 203.0.113.0/24 via 198.51.100.254 dev mmtun0 2>/dev/null
check "link up: A protected again" wait_for 5 protected 10.20.1.10 10.10.1.5
check "link up: B's route back (its gateway reachable again)" \
	wait_for 5 has_route 10.30.1.0/24 "via 198.51.100.254"

# --- a CSCF address missing -----------------------------------------------------------------
N addr del 10.10.2.5/24 dev cscf0
check "non-IMS CSCF address gone: B's route removed" wait_for 2 no_route 10.30.1.0/24
check "status: cscf_non_ims prefix missing" sh -c "\"$CTL\" --json status | jq -e '.host.cscf[] | select(.setting == \"cscf_non_ims\") | .present == false' >/dev/null"
check "status: B's range skipped with the reason" sh -c "\"$CTL\" --json status | jq -e '.host.routes.skips | any(.partner == \"$B\" and (.reason | test(\"no CSCF address\")))' >/dev/null"
check "log: the prefix has no usable address" grep -q "CSCF prefix 10.10.2.0/24 (cscf_non_ims) has no usable address" "$MM_TMP/daemon.log"
check "A's route stays" has_route 10.20.1.0/24 "src 10.10.1.5"
N addr add 10.10.2.5/24 dev cscf0
check "non-IMS address back: B's route back" wait_for 2 has_route 10.30.1.0/24 "src 10.10.2.5"

# --- partner deld, routes = no -------------------------------------------------------------
expect_exit 0 "remove A" "$CTL" partner del $A
check "A removed: its IPv4 route gone" wait_for 2 no_route 10.20.1.0/24
check "A removed: its IPv6 route gone" no_route 2001:db8:a::/48
check "B's route stays" has_route 10.30.1.0/24 "src 10.10.2.5"
conf yes 6771
kill -HUP "$DPID"
check "route_table changed: B's route in the new table" \
	wait_for 5 sh -c "ip -n $NS route show table 6771 proto $P | grep -q '^10.30.1.0/24 .*src 10.10.2.5'"
check "route_table changed: none of ours left in the old one" \
	sh -c "[ -z \"\$(ip -n $NS route show table $T proto $P)\" ]"
check "route_table changed: the rule looks up the new table" \
	sh -c "ip -n $NS rule show pref 6770 | grep -q 'lookup 6771 proto $P' && ! ip -n $NS rule show | grep -q 'lookup $T proto $P'"
foreign >"$MM_TMP/foreign.after"
check "route_table changed: foreign routes untouched (10.40.1.0/24 stays in $T)" cmp -s "$MM_TMP/foreign.before" "$MM_TMP/foreign.after"
conf yes
kill -HUP "$DPID"
check "route_table back: B's route in $T" wait_for 5 has_route 10.30.1.0/24 "src 10.10.2.5"
conf no
kill -HUP "$DPID"
check "routes = no: ours gone" wait_for 5 sh -c "[ -z \"\$(ip -n $NS -4 route show table $T proto $P; ip -n $NS -6 route show table $T proto $P)\" ]"
check "routes = no: our rules gone" wait_for 5 sh -c "! ip -n $NS rule show | grep -q 'proto $P'; ! ip -n $NS -6 rule show | grep -q 'proto $P'"
foreign >"$MM_TMP/foreign.after"
check "routes = no: foreign routes and rules untouched" cmp -s "$MM_TMP/foreign.before" "$MM_TMP/foreign.after"
conf yes
kill -HUP "$DPID"
check "routes = yes again: B's route back" wait_for 5 has_route 10.30.1.0/24 "src 10.10.2.5"
"$CTL" partner del $B >/dev/null
"$CTL" partner del $C >/dev/null

# --- seeded random sequence against a reference -------------------------------------------
# Pool: partner i (0..7), kind by i % 2 (IMS even), range 10.50.i.0/24 and
# 2001:db8:5:i::/64, gateway on the link (198.51.100.(20+i)) for i < 4, else
# behind the router (203.0.113.(20+i)).  Flaps: the three CSCF addresses.
echo "random sequence: HOST_SEED=$SEED HOST_STEPS=$STEPS"
expected() {
	python3 - "$MM_TMP/present" "$MM_TMP/addrs" <<-'PY'
		import ipaddress, sys
		present = [l.strip() for l in open(sys.argv[1]) if l.strip()]
		addrs = set(l.strip() for l in open(sys.argv[2]) if l.strip())
		out = []
		for s in present:
		    i = int(s)
		    ims = i % 2 == 0
		    src4 = "10.10.1.5" if ims else "10.10.2.5"
		    dev = "via 198.51.100.254 dev mmtun0" if i >= 4 else "dev mmtun0"
		    if src4 in addrs:
		        out.append("10.50.%d.0/24 %s src %s" % (i, dev, src4))
		    if "2001:db8:10::5" in addrs:
		        net = ipaddress.ip_network("2001:db8:5:%d::/64" % i)
		        out.append("%s dev mmtun0 src 2001:db8:10::5" % net)
		print("\n".join(sorted(out)))
	PY
}
actual() {
	{ N -4 -j route show table $T proto $P; N -6 -j route show table $T proto $P; } |
		jq -r '.[] | "\(.dst) \(if .gateway then "via \(.gateway) " else "" end)dev \(.dev) src \(.prefsrc)"' | sort
}
matches() { [ "$(actual)" = "$(expected)" ]; }
RANDOM=$SEED
declare -A IN=() HAS=([10.10.1.5/24]=1 [10.10.2.5/24]=1 [2001:db8:10::5/64]=1)
write_state() {
	: >"$MM_TMP/present"
	for i in "${!IN[@]}"; do echo "$i" >>"$MM_TMP/present"; done
	: >"$MM_TMP/addrs"
	for a in "${!HAS[@]}"; do echo "${a%/*}" >>"$MM_TMP/addrs"; done
}
ADDRS=(10.10.1.5/24 10.10.2.5/24 2001:db8:10::5/64)
bad=0
for step in $(seq 1 "$STEPS"); do
	what=$((RANDOM % 3))
	i=$((RANDOM % 8))
	if [ $what -lt 2 ]; then
		if [ -n "${IN[$i]:-}" ]; then
			"$CTL" partner del "p$i.random.example" >/dev/null && unset "IN[$i]"
			act="remove p$i"
		else
			kind=ims; [ $((i % 2)) -eq 1 ] && kind=non-ims
			gw=198.51.100.$((20 + i)); [ $i -ge 4 ] && gw=203.0.113.$((20 + i))
			"$CTL" partner add "p$i.random.example" --kind $kind --agreement yes \
				--range 10.50.$i.0/24 --range 2001:db8:5:$i::/64 --gateway $gw \
				--ca "$MM_TMP/ca-a.pem" >/dev/null && IN[$i]=1
			act="add p$i"
		fi
	else
		a=${ADDRS[$((RANDOM % 3))]}
		if [ -n "${HAS[$a]:-}" ]; then
			N addr del "$a" dev cscf0 && unset "HAS[$a]"
			act="del $a"
		else
			case $a in *:*) N addr add "$a" dev cscf0 nodad ;; *) N addr add "$a" dev cscf0 ;; esac &&
				HAS[$a]=1
			act="add $a"
		fi
	fi
	write_state
	if ! wait_for 2 matches; then
		bad=$((bad + 1))
		echo "step $step ($act): routes differ from the reference" >&2
		diff <(expected) <(actual) | sed 's/^/  /' >&2
	fi
done
check "random sequence (seed $SEED, $STEPS steps): routes always as the reference" [ $bad -eq 0 ]
foreign >"$MM_TMP/foreign.after"
check "after the sequence: foreign routes and rules untouched" cmp -s "$MM_TMP/foreign.before" "$MM_TMP/foreign.after"
cmp -s "$MM_TMP/foreign.before" "$MM_TMP/foreign.after" || diff "$MM_TMP/foreign.before" "$MM_TMP/foreign.after" >&2
check "daemon still running" kill -0 "$DPID"

summary test_host
