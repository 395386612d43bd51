# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by the test script
# The VM tier's glue for tests/lib/kamailio.sh (the shipped Kamailio
# integration, SIPp verdicts) on top of mmtrust_lib.sh (real charons, ESP):
#
#   . "$(dirname "$0")/kamailio_lib.sh"
#   mm_init kamailio_e2e; kam_vm_setup
#   kam_vm_topology                 # mm_topology + core addresses, partners,
#                                   # a stranger and a spoofer in $PEER
#
# Addresses: ours ($MM) as in mmtrust_lib.sh plus the core's on lo:
# $KAM_CORE (Kamailio's "core" socket), $KAM_UAS (our UAS), $KAM_UAC (our
# UAC); Kamailio's "mm" socket is $CSCF.  In $PEER: partner A (agreement)
# and B (no agreement), each with its gateway, range and SIP address; a
# stranger (no partner, no IPsec) and a spoofer (an address inside A's
# range that sends cleartext, see kam_vm_spoofer).

# shellcheck source=mmtrust_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/mmtrust_lib.sh"
BUILD=$MM_BUILD
# shellcheck source=../lib/kamailio.sh
. "$VM_LIB_DIR/../lib/kamailio.sh"

A=ims.partner-a.example GW_A=198.51.100.10 NET_A=192.0.2.0/25 SIP_A=192.0.2.10
B=ims.partner-b.example GW_B=198.51.100.20 NET_B=198.18.0.0/24 SIP_B=198.18.0.10
STRANGER=203.0.113.50 STRANGER_NET=203.0.113.0/24
SPOOF=192.0.2.66	# inside NET_A, on the partner's side, but not through its tunnel

# kam_vm_setup: kamailio.sh's names for $MM/$PEER; the exit hook stops
# SIPp, the probe and Kamailio, then mm_exit (dump, vm_cleanup).
kam_vm_setup() {
	KAM_NS=$MM KAM_PEER=$PEER
	kam_setup
	KAM_PROBE_PID=
	vm_keep "$KAM_LOG"
	trap 'kam_vm_exit $?' EXIT
}

kam_vm_exit() {
	local rc=$1 p
	for p in $KAM_SIPP_PIDS $KAM_PROBE_PID; do kill "$p" 2>/dev/null; done
	mm_kill "$KAM_PID"
	# What SIPp said of every call, in one artifact.
	if compgen -G "$MM_TMP/sipp.*/*" >/dev/null; then
		tail -n +1 "$MM_TMP"/sipp.*/* >"$MM_TMP/sipp-calls.log" 2>&1
		vm_keep "$MM_TMP/sipp-calls.log"
	fi
	mm_exit "$rc"
}

# kam_vm_topology: mm_topology with both gateways, our core addresses,
# the route to the stranger (source $CSCF; it is no partner, so not
# mmtrustd's: the partners' routes are, [local] routes = yes), the SIP
# addresses in $PEER.
kam_vm_topology() {
	mm_topology "$GW_A" "$GW_B" &&
		vm_batch "$MM" "addr add $KAM_CORE/32 dev lo" "addr add $KAM_UAS/32 dev lo" \
			"addr add $KAM_UAC/32 dev lo" "route add $STRANGER_NET via $GW_A src $CSCF" &&
		vm_batch "$PEER" "addr add $SIP_A/32 dev lo" "addr add $SIP_B/32 dev lo" \
			"addr add $STRANGER/32 dev lo" "addr add $SPOOF/32 dev lo"
}

# kam_vm_spoofer: in $PEER, an allow policy (no template) for $SPOOF ->
# $CSCF ahead of the partner charon's out-policy for A's range (a lower
# priority value wins): the spoofer's packets leave in cleartext.
kam_vm_spoofer() {
	ip -n "$PEER" xfrm policy add src "$SPOOF/32" dst "$CSCF/32" dir out priority 1
}

# kam_sipp_sent DIR TEXT / kam_sipp_got DIR TEXT: SIPp's message trace
# (KAM_TRACE=1) of the UAC (uac) or UAS (uas) of a call directory.
kam_trace() { cat "$1"/"$2"-pai*_messages.log 2>/dev/null; }
kam_trace_has() { kam_trace "$1" "$2" | grep -q -- "$3"; }

# kam_last_call: the directory of the last kam_call.
kam_last_call() { echo "$MM_TMP/sipp.$((KAM_CALLS - 1))"; }

# kam_probe_start DOMAIN: sip_probe.py watch from $KAM_UAC to Kamailio's
# core socket, Request-URI sip:probe@DOMAIN, a probe every 250 ms; lines
# in $KAM_PROBES.
kam_probe_start() {
	KAM_PROBES=$MM_TMP/probes.txt
	: >"$KAM_PROBES"
	vm_keep "$KAM_PROBES"
	vm_spawn "$MM_TMP/probe.out" ip netns exec "$MM" python3 "$VM_LIB_DIR/sip_probe.py" watch \
		"$KAM_UAC" "$KAM_CORE" "$1" "$KAM_LOG" "$KAM_PROBES" 250
	KAM_PROBE_PID=$VM_PID
	vm_keep "$MM_TMP/probe.out"
}
kam_probe_stop() { vm_stop "$KAM_PROBE_PID"; KAM_PROBE_PID=; }

# kam_probes_since T_US VERDICT: probes sent at or after T_US with VERDICT.
kam_probes_since() { awk -v t="$1" -v v="$2" '$1 >= t && $3 == v { n++ } END { print n + 0 }' "$KAM_PROBES"; }
kam_probe_seen() { [ "$(kam_probes_since "$1" "$2")" -gt 0 ]; }

# kam_no_esp_sa REQID: no ESP SA with that reqid in $MM but larval ones
# (SPI 0: the kernel's acquire, while traffic waits for an SA).
kam_no_esp_sa() {
	[ -z "$(ip -n "$MM" xfrm state list reqid "$1" |
		awk '$1 == "proto" && $2 == "esp" && $3 == "spi" && $4 !~ /^0x0+$/')" ]
}

# kam_vm_acq_expires SECONDS: our charon (mm_strongswan_conf) writes that
# acquire lifetime to the kernel (charon.plugins.kernel-netlink).
kam_vm_acq_expires() {
	local f=/etc/netns/$MM/strongswan.conf
	sed -i "0,/^[[:space:]]*plugins {\$/s//plugins {\n\t\tkernel-netlink {\n\t\t\txfrm_acq_expires = $1\n\t\t}/" "$f" &&
		grep -q "xfrm_acq_expires = $1\$" "$f"
}
