# Helpers for the tests of the shipped Kamailio integration
# (examples/kamailio/): a real Kamailio with mmtrust-edge.lua, SIPp calls
# whose UAS's exit code is the verdict.  Sourced after common.sh, by
# tests/integration/test_kamailio.sh (namespaces on this host) and by the
# VM tier through tests/vm/kamailio_lib.sh (with ESP).
#
#   kam_setup                     names, the EXIT hook for what it starts
#   kam_topology "ADDR..." "NET..."  $NS + $KAM_PEER, veth, addresses, routes
#   kam_site DOMAIN=URI...        mmtrust-site.lua for this test
#   kam_start                     Kamailio in $KAM_NS, ready
#   kam_inbound_case / kam_outbound_case   a verdict and its control
#
# Addresses (ours, in $KAM_NS): $KAM_MM the "mm" socket (in [local] cscf,
# $KAM_MM_NET), $KAM_CORE the "core" socket, $KAM_UAS our core's UAS (the
# I-CSCF stand-in, core_next_hop), $KAM_UAC our core's UAC (outbound calls),
# $KAM_TUN the link to the partners.

KAM_REPO=${KAM_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
KAM_EX=$KAM_REPO/examples/kamailio
KAM_MM=10.10.0.1 KAM_MM_NET=10.10.0.0/24 KAM_CORE=10.20.0.1 KAM_UAS=10.20.0.2 KAM_UAC=10.20.0.3
KAM_TUN=198.51.100.1 KAM_PEER_LINK=198.51.100.10
# Seconds a call may take before SIPp gives up (stretched by MM_SLOW).
KAM_CALL_SECONDS=${KAM_CALL_SECONDS:-10}
# Seconds Kamailio may take to bind its sockets; seconds a UAC may take to
# finish its call once the UAS has ended (both stretched by MM_SLOW).
KAM_START_SECONDS=${KAM_START_SECONDS:-20}
KAM_UAC_GRACE=${KAM_UAC_GRACE:-3}

# kam_setup: after mm_setup (or with KAM_NS/KAM_PEER/MM_TMP set by the
# caller): names, and the cleanup of Kamailio, SIPp and the peer namespace.
kam_setup() {
	KAM_NS=${KAM_NS:-$NS}
	KAM_PEER=${KAM_PEER:-$KAM_NS-p}
	KAM_QUERY=$MM_TMP/query.sock
	KAM_LOG=$MM_TMP/kamailio.log
	KAM_PID= KAM_SIPP_PIDS=
	mkdir -p "$MM_TMP/kam"
	# The module of a sanitizer build needs the runtime loaded first in
	# Kamailio, which is not instrumented (test_bindings.sh does the same
	# for lua5.1); leak reports are Kamailio's own at exit, not ours.
	KAM_ENV=()
	if nm -u "$BUILD/bindings/lua/mmtrust.so" 2>/dev/null | grep -q __asan_; then
		KAM_ENV=(LD_PRELOAD="$(clang -print-file-name=libclang_rt.asan-x86_64.so)"
			ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
	fi
	mm_cleanup_hook() { kam_cleanup; }
}

kam_cleanup() {
	local p
	for p in $KAM_SIPP_PIDS; do kill "$p" 2>/dev/null; done
	mm_kill "$KAM_PID"
	ip netns del "$KAM_PEER" 2>/dev/null
	return 0
}

# kam_topology "ADDR..." "NET...": $KAM_NS and $KAM_PEER joined by veth;
# our addresses on lo in $KAM_NS; in $KAM_PEER the SIP addresses ADDR on
# lo; each NET routed from us via the peer with $KAM_MM as source.
kam_topology() {
	local a n
	ip netns add "$KAM_PEER" &&
		ip -n "$KAM_NS" link add km0 type veth peer name km1 netns "$KAM_PEER" &&
		ip -n "$KAM_NS" addr add "$KAM_TUN/24" dev km0 &&
		ip -n "$KAM_PEER" addr add "$KAM_PEER_LINK/24" dev km1 || return 1
	for a in $KAM_MM $KAM_CORE $KAM_UAS $KAM_UAC; do
		ip -n "$KAM_NS" addr add "$a/32" dev lo || return 1
	done
	for a in $1; do ip -n "$KAM_PEER" addr add "$a/32" dev lo || return 1; done
	ip -n "$KAM_NS" link set lo up && ip -n "$KAM_NS" link set km0 up &&
		ip -n "$KAM_PEER" link set lo up && ip -n "$KAM_PEER" link set km1 up &&
		ip -n "$KAM_PEER" route add "$KAM_MM_NET" via "$KAM_TUN" || return 1
	for n in $2; do
		ip -n "$KAM_NS" route add "$n" via "$KAM_PEER_LINK" src "$KAM_MM" || return 1
	done
}

# kam_site DOMAIN=URI...: $MM_TMP/kam/mmtrust-site.lua, the shipped
# example's settings with this test's socket, next hops and module path,
# next to a copy of the shipped mmtrust-edge.lua (which reads the site file
# from its own directory).
kam_site() {
	local p
	cp "$KAM_EX/mmtrust-edge.lua" "$MM_TMP/kam/mmtrust-edge.lua" || return 1
	{
		echo "MMTRUST_SITE = {"
		echo "	query_socket = \"$KAM_QUERY\","
		echo "	timeout_ms = ${KAM_TIMEOUT_MS:-200},"
		echo "	core_next_hop = \"sip:$KAM_UAS:5060\","
		echo "	partners = {"
		for p in "$@"; do echo "		[\"${p%%=*}\"] = \"${p#*=}\","; done
		echo "	},"
		echo "	lua_cpath = \"$BUILD/bindings/lua/?.so\","
		echo "}"
	} >"$MM_TMP/kam/mmtrust-site.lua"
}

# kam_listening NS ADDR:PORT: a UDP socket is bound there.
kam_listening() { ip netns exec "$1" ss -Hlun "src $2" 2>/dev/null | grep -q .; }

# kam_start [EDGE_SCRIPT]: the shipped kamailio.cfg in $KAM_NS with the
# copy of mmtrust-edge.lua (or EDGE_SCRIPT, in the same directory), its log
# in $KAM_LOG, PID in $KAM_PID, shared memory $KAM_SHM_MB (64 MB unless
# set: bench/sip.sh needs more for its rates); waits for both sockets.
kam_start() {
	ip netns exec "$KAM_NS" env "${KAM_ENV[@]}" kamailio -DD -E -f "$KAM_EX/kamailio.cfg" \
		-m "${KAM_SHM_MB:-64}" -M 16 -Y "$MM_TMP/kam" -P "$MM_TMP/kam/kamailio.pid" \
		-A "MM_LISTEN=udp:$KAM_MM:5060" -A "CORE_LISTEN=udp:$KAM_CORE:5060" \
		-A "MMTRUST_EDGE=\"${1:-$MM_TMP/kam/mmtrust-edge.lua}\"" -A "EDGE_CHILDREN=2" \
		>>"$KAM_LOG" 2>&1 &
	KAM_PID=$!
	if wait_for "$KAM_START_SECONDS" kam_listening "$KAM_NS" "$KAM_MM:5060" &&
		wait_for 5 kam_listening "$KAM_NS" "$KAM_CORE:5060"; then
		pass "Kamailio started with the shipped configuration"
		return 0
	fi
	fail "Kamailio did not start: $(tail -n 15 "$KAM_LOG")"
	return 1
}

kam_stop() { mm_kill "$KAM_PID"; KAM_PID=; }

# kam_log_has ERE: a line of Kamailio's log matches.
kam_log_has() { grep -qE -- "$1" "$KAM_LOG"; }

# kam_call VERDICT UAS_NS UAS_IP UAC_NS UAC_IP TARGET DOMAIN [PRIVACY]: one
# call from a SIPp UAC at UAC_IP (port 5070) through TARGET (Kamailio's
# socket) to a SIPp UAS at UAS_IP:5060 that checks VERDICT (kept or
# stripped).  Sets KAM_UAS_RC and KAM_UAC_RC; the return status is the
# UAS's.  When the UAS has ended (its verdict is in), a UAC still waiting
# is stopped: a call the UAS refused never completes.
KAM_CALLS=0
kam_call() {
	local v=$1 uns=$2 uip=$3 cns=$4 cip=$5 target=$6 dom=$7 priv=${8:-none}
	local t=$((KAM_CALL_SECONDS * MM_SLOW)) out=$MM_TMP/sipp.$KAM_CALLS uas uac
	KAM_CALLS=$((KAM_CALLS + 1))
	mkdir -p "$out"
	# SIPp ends itself after $t s; timeout is the deadline should it not
	# (--foreground: in the test's process group, ended with it).
	(cd "$out" && exec timeout --foreground -k 5 $((t + 20)) ip netns exec "$uns" sipp -sf "$KAM_EX/sipp/uas-pai-$v.xml" \
		-i "$uip" -p 5060 -m 1 -timeout "${t}s" -timeout_error -nostdin ${KAM_TRACE:+-trace_msg} \
		-trace_err >uas.out 2>&1) &
	uas=$!
	KAM_SIPP_PIDS="$KAM_SIPP_PIDS $uas"
	wait_for 10 kam_listening "$uns" "$uip:5060" || { fail "SIPp UAS did not bind $uip:5060"; }
	(cd "$out" && exec timeout --foreground -k 5 $((t + 20)) ip netns exec "$cns" sipp -sf "$KAM_EX/sipp/uac-pai.xml" \
		-i "$cip" -p 5070 -m 1 -s bob -key domain "$dom" -key privacy "$priv" \
		-timeout "${t}s" -timeout_error -nostdin ${KAM_TRACE:+-trace_msg} -trace_err "$target:5060" >uac.out 2>&1) &
	uac=$!
	KAM_SIPP_PIDS="$KAM_SIPP_PIDS $uac"
	wait "$uas"
	KAM_UAS_RC=$?
	# The UAC finishes the call (ACK, BYE) by itself when it went through;
	# else it would wait for its timeout.  A UAS that refused the INVITE
	# never answers it: the UAC is stopped at once.
	local grace=$KAM_UAC_GRACE
	[ "$KAM_UAS_RC" -eq 0 ] || grace=0
	local deadline=$(($(date +%s) + grace * MM_SLOW))
	while kill -0 "$uac" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
	kam_end "$uac"
	wait "$uac"
	KAM_UAC_RC=$?
	KAM_SIPP_PIDS=
	return "$KAM_UAS_RC"
}

# kam_end PID: TERM, and KILL when it is still there after 5 s.
kam_end() {
	kill "$1" 2>/dev/null || return 0
	local deadline=$(($(date +%s) + 5 * MM_SLOW))
	while kill -0 "$1" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
	kill -KILL "$1" 2>/dev/null
	return 0
}

# kam_call_logs: what SIPp said of the last call (its error logs and the
# last lines of its output), and Kamailio's last lines.
kam_call_logs() {
	local d=$MM_TMP/sipp.$((KAM_CALLS - 1)) f
	for f in "$d"/*; do
		[ -f "$f" ] || continue
		echo "--- ${f##*/}"
		grep -v "^[[:space:]]*$" "$f" | tail -n ${KAM_LOG_LINES:-12}
	done
	echo "--- kamailio (last lines)"
	tail -n 8 "$KAM_LOG"
}

kam_other() { [ "$1" = kept ] && echo stripped || echo kept; }

# kam_verdict DESCRIPTION VERDICT ARGS...: the call with VERDICT passes
# (UAS and UAC exit 0: the identity as expected, the call routed), and
# the control: the same call against the opposite verdict fails.
kam_verdict() {
	local what=$1 v=$2 o
	shift 2
	o=$(kam_other "$v")
	if kam_call "$v" "$@" && [ "$KAM_UAC_RC" -eq 0 ]; then
		pass "$what: P-Asserted-Identity $v, call completed"
	else
		fail "$what: want P-Asserted-Identity $v and the call completed: UAS exit $KAM_UAS_RC, UAC exit $KAM_UAC_RC; $(kam_call_logs)"
	fi
	if kam_call "$o" "$@"; then
		fail "$what (control): a UAS that wants it $o passed too: the verdict does not look"
	else
		pass "$what (control): a UAS that wants it $o fails"
	fi
}

# kam_inbound_case DESCRIPTION SRC VERDICT: a call from SRC (in $KAM_PEER)
# to Kamailio's mm socket, on to our UAS.
kam_inbound_case() {
	kam_verdict "inbound, $1" "$3" "$KAM_NS" "$KAM_UAS" "$KAM_PEER" "$2" "$KAM_MM" "$KAM_MM"
}

# kam_outbound_case DESCRIPTION DOMAIN UAS_IP VERDICT [PRIVACY]: a call
# from our core's UAC to Kamailio's core socket for sip:bob@DOMAIN, which
# Kamailio sends to UAS_IP (its next hop in the site file) in $KAM_PEER.
kam_outbound_case() {
	kam_verdict "outbound, $1" "$4" "$KAM_PEER" "$3" "$KAM_NS" "$KAM_UAC" "$KAM_CORE" "$2" "${5:-none}"
}
