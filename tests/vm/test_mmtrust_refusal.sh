#!/bin/bash
# mmtrust end to end, who is refused. One partner charon serves four
# identities on four gateway addresses; ours is driven by mmtrustd only:
#  A  ims.partner-a.example, a certificate for its domain from its CA: the
#     tunnel comes up (the control: same PKI, same charons);
#  C  claims ims.partner-c.example but its certificate's SAN is another
#     domain (ims.rogue.example): our charon must refuse it;
#  D  a certificate for its domain, but signed by a second CA (one our charon
#     does trust: it is C's CA), not the CA the partner table names: refused;
#  rogue: a connection mmtrustd did not make, loaded into our charon behind
#     its back, authenticates ims.rogue.example from A's gateway and installs
#     a CHILD_SA under A's reqid (which A's policies would accept): mmtrustd
#     must call it an identity mismatch, terminate it and delete its SAs,
#     leaving A's own SAs alone.
# For C and D, `ip xfrm monitor` runs from before they are added to the end:
# no SA with their reqid may ever appear, not only none be left.
. "$(dirname "$0")/mmtrust_lib.sh"
mm_init mmtrust_refusal

A=ims.partner-a.example GW_A=198.51.100.10 NET_A=192.0.2.0/24 SIP_A=192.0.2.10
C=ims.partner-c.example GW_C=198.51.100.12 NET_C=198.18.1.0/24
D=ims.partner-d.example GW_D=198.51.100.13 NET_D=198.18.2.0/24
ROGUE=ims.rogue.example
PARTNER_CA="mmtrust VM partner CA" OTHER_CA="mmtrust VM second CA"
UP_BOUND=60
REFUSE_BOUND=30

vm_step "certificates"
certs() {
	mm_pki "ca|home-ca|mmtrust VM home CA" "ca|partner-ca|$PARTNER_CA" "ca|other-ca|$OTHER_CA" \
		"cert|home|home-ca|$HOME_ID" "cert|peer-a|partner-ca|$A" \
		"cert|peer-rogue|other-ca|$ROGUE" "cert|peer-d|other-ca|$D"
}
require "CAs and certificates made with pki" certs

vm_step "namespaces, charons, mmtrustd"
require "namespaces $MM and $PEER joined by veth" mm_topology $GW_A $GW_C $GW_D
check "partner A's network" mm_partner_net $NET_A $GW_A $SIP_A
mm_peer_conn partner-a $GW_A $A peer-a $NET_A 101 aes128gcm16
# C lies: it claims C's domain with a certificate for another one.
mm_peer_conn partner-c $GW_C $C peer-rogue $NET_C 102 aes128gcm16
mm_peer_conn partner-d $GW_D $D peer-d $NET_D 103 aes128gcm16
# The rogue answers on A's gateway as itself, for A's range (no policies:
# the partner side's own A policies stay as they are).
mm_peer_conn rogue $GW_A $ROGUE peer-rogue $NET_A 104 aes128gcm16 no
require "the partner's charon configuration" mm_peer_prepare peer-a peer-rogue peer-d
require "our charon's configuration" mm_strongswan_conf "$MM"
require "both charons answer, the partner's swanctl.conf loaded" mm_charons_start
require "mmtrustd answers on its admin socket" mm_daemon_start
require "mmtrustd connected to our charon" wait_for 20 mm_ike_connected

# re TEXT: TEXT as an ERE matching itself.
# shellcheck disable=SC2016,SC2001
re() { sed 's/[][\.|$(){}?+*^]/\\&/g' <<<"$1"; }
# ike_log DOMAIN ERE: a line of our charon's log of an IKE_SA of that
# connection (filelog ike_name: "<NAME|N>") matches.
ike_log() { charon_log_has "$MM" "<$(re "$1")\|[0-9]+> $2"; }

vm_step "A (control): add"
expect_exit 0 "partner add $A" ctl partner add $A --kind ims --agreement yes \
	--range $NET_A --gateway $GW_A --ca "$PKI/partner-ca.pem"
RA=$(mm_reqid $A)
up_a=0
if wait_for $UP_BOUND mm_tunnel_up $A; then
	up_a=1
	pass "tunnel to $A up in status (the control)"
	mm_tunnel $A
	a_in=$(spi_hex "$T_SPI_IN") a_out=$(spi_hex "$T_SPI_OUT")
	check "status: $A's remote_id" [ "$T_RID" = $A ]
else
	fail "tunnel to $A (the control) not up within $UP_BOUND s: $(cat "$MM_TMP/status.json")"
fi

xfrm_monitor
# sa_events REQID: lines of the monitor log for SAs (not policy templates,
# whose spi is 0) with that reqid.
sa_events() {
	awk -v r="$1" '$1 == "proto" && $2 == "esp" && $3 == "spi" {
		s = $4; sub(/\(.*/, "", s)
		for (i = 4; i < NF; i++) if ($i == "reqid") { q = $(i + 1); sub(/\(.*/, "", q) }
		if (s != "0x00000000" && q == r) print
	}' "$MM_TMP/xfrm-monitor.log"
}

# --- 2. a certificate for another domain -------------------------------------------
vm_step "C (certificate for $ROGUE): add"
expect_exit 0 "partner add $C" ctl partner add $C --kind ims --agreement yes \
	--range $NET_C --gateway $GW_C --ca "$PKI/other-ca.pem"
RC=$(mm_reqid $C)
check "$C has a reqid ($RC)" grep -qE "^[0-9]+$" <<<"$RC"
check "our charon tried C" wait_for 20 ike_log $C "initiating IKE_SA"
check "C presented the certificate of $ROGUE" wait_for $REFUSE_BOUND \
	ike_log $C "received end entity cert \"CN=$(re $ROGUE)\""
if wait_for $REFUSE_BOUND ike_log $C "no trusted ECDSA public key found for '$(re $C)'"; then
	pass "our charon refused C: no trusted key for '$C'"
	grep -E "<$(re $C)\|[0-9]+> " "$MM_TMP/charon-$MM.log" | grep -E "received end entity cert|no trusted|constraint check|AUTHENTICATION_FAILED|unacceptable"
else
	fail "our charon did not log the refusal of C within $REFUSE_BOUND s"
	grep -E "<$(re $C)\|" "$MM_TMP/charon-$MM.log" | tail -n 15 >&2
fi
check "no IKE_SA of C was established" vm_not ike_log $C "IKE_SA $(re $C)\[[0-9]+\] established"
check "no SA with C's reqid $RC in $MM" no_sa "$MM" "$RC"
mm_tunnel $C
check "status: C's tunnel down" [ "$T_STATE" = down ]
check "status: C has no SPIs" [ "$T_SPI_IN $T_SPI_OUT" = "null null" ]
check "status: C's ike_state is not ESTABLISHED ($T_IKE)" [ "$T_IKE" != ESTABLISHED ]

# --- 3. a certificate from a CA that is not the partner's ---------------------------------
vm_step "D (certificate from the second CA): add"
expect_exit 0 "partner add $D" ctl partner add $D --kind ims --agreement yes \
	--range $NET_D --gateway $GW_D --ca "$PKI/partner-ca.pem"
RD=$(mm_reqid $D)
check "$D has a reqid ($RD)" grep -qE "^[0-9]+$" <<<"$RD"
check "our charon tried D" wait_for 20 ike_log $D "initiating IKE_SA"
check "D presented its certificate" wait_for $REFUSE_BOUND \
	ike_log $D "received end entity cert \"CN=$(re $D)\""
if wait_for $REFUSE_BOUND ike_log $D "constraint check failed: peer not authenticated by CA 'CN=$(re "$PARTNER_CA")'"; then
	pass "our charon refused D: not authenticated by the partner's CA"
	grep -E "<$(re $D)\|[0-9]+> " "$MM_TMP/charon-$MM.log" | grep -E "received end entity cert|no trusted|constraint check|AUTHENTICATION_FAILED|unacceptable"
else
	fail "our charon did not log D's CA constraint failure within $REFUSE_BOUND s"
	grep -E "<$(re $D)\|" "$MM_TMP/charon-$MM.log" | tail -n 15 >&2
fi
check "no IKE_SA of D was established" vm_not ike_log $D "IKE_SA $(re $D)\[[0-9]+\] established"
check "no SA with D's reqid $RD in $MM" no_sa "$MM" "$RD"
mm_tunnel $D
check "status: D's tunnel down" [ "$T_STATE" = down ]
check "status: D has no SPIs" [ "$T_SPI_IN $T_SPI_OUT" = "null null" ]

# --- identity mismatch: a CHILD_SA under A's reqid, authenticated as someone else -----
part_rogue() {
	vm_step "rogue: a connection of our own in our charon, under A's reqid"
	local rogue_conn t0
	rogue_conn=$(cat <<-EOF
		{"rogue": {"version": "2", "local_addrs": ["$TUN"], "remote_addrs": ["$GW_A"],
		  "local": {"auth": "pubkey", "id": "$HOME_ID", "certs": ["@file:$PKI/home.pem"]},
		  "remote": {"auth": "pubkey", "id": "$ROGUE", "cacerts": ["@file:$PKI/other-ca.pem"]},
		  "children": {"rogue": {"mode": "tunnel", "local_ts": ["$CSCF_NET"], "remote_ts": ["$NET_A"],
		    "policies": "no", "reqid": "$RA", "esp_proposals": ["aes128gcm16"]}}}}
		EOF
	)
	expect_exit 0 "the rogue connection loads into our charon" vici_call "$MM_VICI" load-conn "$rogue_conn"
	t0=$(now_us)
	vici_call "$MM_VICI" initiate '{"child": "rogue", "ike": "rogue", "timeout": "20000"}' \
		>"$MM_TMP/rogue-initiate.out" 2>&1
	echo "initiate rogue: $(cat "$MM_TMP/rogue-initiate.out")"
	rogue_sas() { sa_events "$RA" | grep -vE "spi ($a_in|$a_out)"; }
	check "the rogue CHILD_SA was installed under A's reqid (seen by xfrm monitor)" wait_for 10 rogue_sas
	if wait_for 20 mm_log_has "identity mismatch"; then
		pass "mmtrustd logged an identity mismatch"
		grep "identity mismatch" "$MM_LOG"
	else
		fail "no 'identity mismatch' in mmtrustd's log within 20 s"
	fi
	only_a() { [ "$(sa_spis "$MM" $GW_A $TUN "$RA") $(sa_spis "$MM" $TUN $GW_A "$RA")" = "$a_in $a_out" ]; }
	if wait_for 20 only_a; then
		pass "the rogue SAs are gone; A's own two SAs remain"
		vm_step "rogue SAs gone $(secs "$(ms_since "$t0")") s after the initiate"
	else
		fail "SAs with reqid $RA are not just A's ($a_in $a_out): $(ip -n "$MM" xfrm state list reqid "$RA" | grep spi)"
	fi
	check "the mismatch log line names $ROGUE" mm_log_has "identity mismatch.*$(re $ROGUE)"
	rogue_child_gone() { ! swan "$MM" --list-sas --ike rogue 2>/dev/null | grep -q 'INSTALLED'; }
	check "our charon no longer has the rogue CHILD_SA" wait_for 10 rogue_child_gone
	mm_tunnel $A
	check "status: A still up with its own SPIs and identity" \
		[ "$T_STATE $(spi_hex "$T_SPI_IN") $(spi_hex "$T_SPI_OUT") $T_RID" = "up $a_in $a_out $A" ]
	check "traffic to A still flows" vm_ping "$MM" $CSCF $SIP_A 2
}
if [ $up_a = 1 ]; then part_rogue; else fail "identity mismatch part skipped: no tunnel to A"; fi

# --- an SA under A's reqid between addresses that are not A's gateway and ours:
# added by hand, behind charon's back; the XFRM monitor must catch it.
vm_step "an SA with A's reqid from a stranger's address"
stranger_sa() {
	ip -n "$MM" xfrm state add src 198.51.100.99 dst $TUN proto esp spi 0x00c0ffee reqid "$RA" \
		mode tunnel aead 'rfc4106(gcm(aes))' 0x0102030405060708091011121314151617181920 128
}
require "a stranger's SA under A's reqid is added" stranger_sa
stranger_gone() { ! ip -n "$MM" xfrm state list spi 0x00c0ffee | grep -q .; }
check "mmtrustd deleted the stranger's SA" wait_for 5 stranger_gone
check "logged as refused, with the verdict" \
	mm_log_has "refused SA: spi 0x00c0ffee 198.51.100.99 -> $TUN carries reqid $RA .*\(wrong-ends\)"
mm_tunnel $A
check "status: A's tunnel still up with its own SPIs (a stranger's SA is not A's)" \
	[ "$T_STATE $(spi_hex "$T_SPI_IN")" = "up $a_in" ]
check "A's own SAs are untouched" [ -n "$(sa_spis "$MM" $GW_A $TUN "$RA")" ]

# --- the end: nothing of C or D ever reached the kernel ----------------------------------
vm_step "final checks"
check "xfrm monitor saw no SA with C's reqid $RC, ever" [ -z "$(sa_events "$RC")" ]
check "xfrm monitor saw no SA with D's reqid $RD, ever" [ -z "$(sa_events "$RD")" ]
check "no SA with C's reqid now" no_sa "$MM" "$RC"
check "no SA with D's reqid now" no_sa "$MM" "$RD"
tunnel_down() { mm_tunnel "$1" && [ "$T_STATE" = down ]; }
check "C still down in status" tunnel_down $C
check "D still down in status" tunnel_down $D

vm_step "done"
vm_finish
