#!/bin/bash
# The shipped Kamailio integration end to end over real ESP (issue 11):
# our namespace ($MM) runs charon, mmtrustd, Kamailio (examples/kamailio/,
# "mm" socket on the CSCF address, "core" socket on 10.20.0.1) and our
# core's SIPp UAS and UAC; the partners' namespace ($PEER) runs its own
# charon (policies = yes) with two partners, A (agreement) and B (no
# agreement), each with its gateway, range, CA and reqid, plus a stranger
# (no partner, no IPsec) and a spoofer (an address in A's range).
#   1. inbound from A over its tunnel: P-Asserted-Identity reaches our UAS;
#   2. inbound from B over its tunnel: stripped;
#   3. inbound from the stranger: stripped;
#   4. cleartext SIP from the spoofer (A's range, not through the tunnel):
#      the kernel drops it (XfrmInTmplMismatch rises; Kamailio never
#      answers it, our UAS gets nothing); control: the same cleartext
#      from the stranger reaches Kamailio and our UAS, stripped;
#   5. outbound to A: kept; to B: stripped;
#   6. A's tunnel torn down by the partner: once our kernel's SAs for A are
#      gone, every request to A is stripped within KAM_DOWN_BOUND_MS
#      (measured with probes through Kamailio every 250 ms); requests from
#      A cannot arrive meanwhile (case 4: the in-policy drops cleartext);
#      the partner loads its connection again, our traffic brings the
#      tunnel back: kept again, both ways;
#   7. mmtrustd stopped: everything stripped ("no answer" logged), calls
#      still routed.
# Every SIPp verdict (the UAS's exit code) has its control: the same call
# against a UAS that wants the opposite must fail.
# vm-test-timeout: 420
. "$(dirname "$0")/kamailio_lib.sh"
mm_init kamailio_e2e
kam_vm_setup
# Under TCG every program start is 20-40x slower than on the host.
KAM_CALL_SECONDS=40 KAM_START_SECONDS=90 KAM_UAC_GRACE=10
# Case 6's bound: from our kernel's SAs for A gone to every request to A
# stripped (mmtrustd sees the SA go, the snapshot Kamailio reads changes).
KAM_DOWN_BOUND_MS=${KAM_DOWN_BOUND_MS:-2000}

vm_step "certificates"
require "CAs and certificates made with pki" mm_pki "ca|home-ca|mmtrust VM home CA" \
	"ca|partner-ca|mmtrust VM partner CA" "ca|partner-b-ca|mmtrust VM partner B CA" \
	"cert|home|home-ca|$HOME_ID" "cert|peer-a|partner-ca|$A" "cert|peer-b|partner-b-ca|$B"
vm_step "namespaces, charons, mmtrustd"
require "namespaces $MM and $PEER, addresses and routes" kam_vm_topology
mm_peer_conn partner-a "$GW_A" "$A" peer-a "$NET_A" 101 aes128gcm16
mm_peer_conn partner-b "$GW_B" "$B" peer-b "$NET_B" 102 aes128gcm16
require "the partner's charon configuration" mm_peer_prepare peer-a peer-b
require "our charon's configuration" mm_strongswan_conf "$MM"
# charon sets the kernel's acquire lifetime (xfrm_acq_expires, 165 s by
# default): after one refused re-initiation, traffic brings no new acquire,
# so no new try of mmtrustd's, for that long.  10 s here (case 6).
check "our charon's xfrm_acq_expires 10 s" kam_vm_acq_expires 10
require "both charons answer, the partner's swanctl.conf loaded" mm_charons_start
require "mmtrustd answers on its admin socket" mm_daemon_start
require "mmtrustd connected to our charon" wait_for 20 mm_ike_connected
expect_exit 0 "partner add $A (agreement)" ctl partner add $A --kind ims --agreement yes \
	--range $NET_A --gateway $GW_A --ca "$PKI/partner-ca.pem"
expect_exit 0 "partner add $B (no agreement)" ctl partner add $B --kind ims --agreement no \
	--range $NET_B --gateway $GW_B --ca "$PKI/partner-b-ca.pem"
RA=$(mm_reqid $A)
RB=$(mm_reqid $B)

vm_step "Kamailio"
kam_site "$A=sip:$SIP_A:5060" "$B=sip:$SIP_B:5060"
require "Kamailio runs the shipped configuration" kam_start
require "tunnel to $A up" wait_for 90 mm_tunnel_up $A
require "tunnel to $B up" wait_for 60 mm_tunnel_up $B

vm_step "1. inbound from $A over its tunnel"
before=$(vm_sa_stats "$MM" reqid "$RA")
kam_inbound_case "partner $A with agreement, over its tunnel" "$SIP_A" kept
check "the calls from $A went through its SAs (both directions' counters rose)" \
	vm_sa_rose "$before" "$(vm_sa_stats "$MM" reqid "$RA")"

vm_step "2. inbound from $B over its tunnel"
before=$(vm_sa_stats "$MM" reqid "$RB")
kam_inbound_case "partner $B without agreement, over its tunnel" "$SIP_B" stripped
check "the calls from $B went through its SAs" vm_sa_rose "$before" "$(vm_sa_stats "$MM" reqid "$RB")"
check "the strip from $B was logged: no-agreement" \
	kam_log_has "inbound from $SIP_B to $CSCF: P-Asserted-Identity removed \\(no-agreement, partner $B\\)"

vm_step "3. inbound from a stranger"
kam_inbound_case "a source that is no partner ($STRANGER)" "$STRANGER" stripped
check "the stranger's strip was logged: unknown-source" \
	kam_log_has "inbound from $STRANGER to $CSCF: P-Asserted-Identity removed \\(unknown-source\\)"

vm_step "4. cleartext from inside $A's range, not through the tunnel"
require "the spoofer's cleartext policy in $PEER" kam_vm_spoofer
mism=$(vm_xfrm_stat "$MM" XfrmInTmplMismatch)
# The UAS would get the INVITE with its identity kept (the source is in
# A's range, A's tunnel up): it must get nothing at all.
KAM_TRACE=1 KAM_CALL_SECONDS=10 KAM_UAC_GRACE=1 kam_call kept "$MM" "$KAM_UAS" "$PEER" "$SPOOF" "$KAM_MM" "$KAM_MM"
d=$(kam_last_call)
check "the spoofer's UAC sent its INVITE" kam_trace_has "$d" uac "^INVITE sip:"
check "our kernel dropped it: XfrmInTmplMismatch rose" vm_stat_rose "$MM" XfrmInTmplMismatch "$mism"
check "Kamailio never answered it (no 100 Trying)" vm_not kam_trace_has "$d" uac "^SIP/2.0 100"
check "our UAS got nothing (no INVITE)" vm_not kam_trace_has "$d" uas "INVITE sip:"
check "our UAS did not pass" [ "$KAM_UAS_RC" -ne 0 ]
cid=$(kam_trace "$d" uac | sed -n 's/^Call-ID: *//p' | head -n1 | tr -d '\r')
check "the spoofed Call-ID is known" [ -n "$cid" ]
# (Weak alone: a keep is logged at debug level only; the missing 100 above
# is the proof that Kamailio never saw it.)
check "Kamailio's log has no line for the spoofed Call-ID" vm_not kam_log_has "${cid:-no-call-id}"
echo "spoofed INVITE: Call-ID $cid; $MM's xfrm_stat now:" $(ip netns exec "$MM" awk '$2 != 0' /proc/net/xfrm_stat)
# Control: the same cleartext from the stranger gets through the kernel.
KAM_TRACE=1 kam_call stripped "$MM" "$KAM_UAS" "$PEER" "$STRANGER" "$KAM_MM" "$KAM_MM"
d=$(kam_last_call)
check "control: the stranger's cleartext INVITE reached our UAS, stripped" [ "$KAM_UAS_RC" -eq 0 ]
check "control: Kamailio answered the stranger (100 Trying)" kam_trace_has "$d" uac "^SIP/2.0 100"
cid=$(kam_trace "$d" uac | sed -n 's/^Call-ID: *//p' | head -n1 | tr -d '\r')
check "control: Kamailio's log has the stranger's Call-ID" kam_log_has "${cid:-no-call-id}.*P-Asserted-Identity removed"

vm_step "5. outbound"
before=$(vm_sa_stats "$MM" reqid "$RA")
kam_outbound_case "to partner $A with agreement" $A "$SIP_A" kept
check "the calls to $A went through its SAs" vm_sa_rose "$before" "$(vm_sa_stats "$MM" reqid "$RA")"
kam_outbound_case "to partner $B without agreement" $B "$SIP_B" stripped
check "the outbound strip was logged: no-agreement" \
	kam_log_has "outbound to $SIP_B: P-Asserted-Identity removed \\(no-agreement, partner $B\\)"

vm_step "6. $A's tunnel torn down"
kam_probe_start $A
require "probes to $A answered kept while its tunnel is up" wait_for 30 kam_probe_seen 0 kept
check "control: no probe to $A stripped while its tunnel is up" [ "$(kam_probes_since 0 stripped)" -eq 0 ]
# Without its connection the partner refuses our re-initiation.
T_TERM=$(now_us)
vici_call "$MM_TMP/$PEER.vici" unload-conn '{"name": "partner-a"}' >/dev/null 2>&1
swan "$PEER" --terminate --ike partner-a >/dev/null 2>&1
# (Larval SAs stay: the probes' traffic to A makes the kernel acquire.)
require "our kernel's SAs for $A gone" wait_for 30 kam_no_esp_sa "$RA"
T0=$(now_us)
vm_step "SAs for $A gone"
TB=$((T0 + KAM_DOWN_BOUND_MS * 1000))
check "probes sent ${KAM_DOWN_BOUND_MS} ms after the SAs went are stripped" wait_for 30 kam_probe_seen "$TB" stripped
kam_probe_stop
last_kept=$(awk '$3 == "kept" { t = $1 } END { print (t == "" ? 0 : t) }' "$KAM_PROBES")
first_strip=$(awk -v t="$T0" '$3 == "stripped" { print $1; exit }' "$KAM_PROBES")
echo "probes: $(wc -l <"$KAM_PROBES") sent; last kept $(((last_kept - T0) / 1000)) ms," \
	"first stripped $(((${first_strip:-0} - T0) / 1000)) ms after our SAs for $A were gone;" \
	"$(kam_probes_since 0 none) without an answer; the partner's teardown began" \
	"$(((T0 - T_TERM) / 1000)) ms before the SAs were seen gone"
check "no probe sent later than ${KAM_DOWN_BOUND_MS} ms after the SAs went was kept" [ "$last_kept" -lt "$TB" ]
check "the probes' strips were logged: unprotected" \
	kam_log_has "outbound to $SIP_A: P-Asserted-Identity removed \\(unprotected"

vm_step "the partner loads its connection again; our traffic brings the tunnel back"
ip netns exec "$PEER" swanctl --load-all --noprompt --uri "$(uri "$PEER")" >/dev/null 2>&1
back() {
	ip netns exec "$MM" ping -c 1 -W 1 -I $CSCF $SIP_A >/dev/null 2>&1
	mm_tunnel_up $A
}
require "tunnel to $A back (acquire -> initiate)" wait_for 90 back
check "mmtrustd initiated on the kernel's acquire" mm_log_has "acquire: traffic for partner $A"
kam_inbound_case "$A's tunnel back" "$SIP_A" kept
kam_outbound_case "$A's tunnel back: to $A" $A "$SIP_A" kept

vm_step "7. mmtrustd stopped"
vm_stop "$MM_PID"
MM_PID=
kam_inbound_case "mmtrustd stopped: from $A" "$SIP_A" stripped
kam_outbound_case "mmtrustd stopped: to $A" $A "$SIP_A" stripped
check "a strip without an answer is logged as such" \
	kam_log_has "inbound from $SIP_A to $CSCF: no answer \\(query-[a-z-]+: .*\\): P-Asserted-Identity removed"

vm_finish
