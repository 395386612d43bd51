#!/bin/bash
# mmtrust end to end: the partner's gateway moves the tunnel away from its
# fixed address (what MOBIKE would do; our connections have mobike = no, so
# the move is made as charon's kernel side would make it: each SA deleted
# and added again with the same SPI and keys, between our tunnel address and
# another address of the partner's host, while the partner's host gives up
# its gateway address).  mmtrustd must delete the moved SAs (wrong ends),
# and at once: report the tunnel down (status, `query watch` sa-down, the
# inbound answer no longer protected), tell charon (its IKE_SA gone: no
# CHILD_SA "installed" for SAs that do not exist) and ask it to initiate
# again; when the partner is back on its gateway address the tunnel comes
# back with new SPIs, protected again, and traffic flows.  Also: neither
# charon negotiated MOBIKE.
. "$(dirname "$0")/mmtrust_lib.sh"
mm_init mmtrust_moved

A=ims.partner-a.example GW_A=198.51.100.10 NET_A=192.0.2.0/24 SIP_A=192.0.2.10
MOVED=198.51.100.20	# another address of the partner's host
UP_BOUND=60
export MMTRUST_QUERY_SOCKET=$MM_TMP/query.sock

mm_one_partner

vm_spawn "$MM_TMP/events.out" "$MMTRUSTCTL" --json query watch
vm_keep "$MM_TMP/events.out"
require "the subscription is live" wait_for 10 grep -q '"subscribed": true' "$MM_TMP/events.out"

# protected: what a CSCF hears for a message from A's SIP address to our
# CSCF address (with --dst where mmtrustctl has it).
if ctl query inbound --help 2>&1 | grep -q -- --dst; then DST=(--dst $CSCF); else DST=(); fi
protected() { ctl --json query inbound $SIP_A "${DST[@]}" | jq -r .protected; }
is_protected() { [ "$(protected)" = true ]; }
not_protected() { [ "$(protected)" = false ]; }

vm_step "A: add, tunnel up"
expect_exit 0 "partner add $A" ctl partner add $A --kind ims --agreement yes \
	--range $NET_A --gateway $GW_A --ca "$PKI/partner-ca.pem"
RA=$(mm_reqid $A)
if ! wait_for $UP_BOUND mm_tunnel_up $A; then
	fail "tunnel to $A not up within $UP_BOUND s: $(cat "$MM_TMP/status.json")"
	vm_finish
	exit 1
fi
pass "tunnel to $A up"
a_in=$(spi_hex "$T_SPI_IN") a_out=$(spi_hex "$T_SPI_OUT")
check "inbound from $SIP_A is protected" wait_for 5 is_protected
check "UDP receiver on $SIP_A" vm_udp_listen "$PEER" $SIP_A 5060 "$MM_TMP/rx-$SIP_A"
check "traffic to A flows" vm_ping "$MM" $CSCF $SIP_A 2

# re TEXT: TEXT as an ERE matching itself.
# shellcheck disable=SC2001
re() { sed 's/[][\.|$(){}?+*^]/\\&/g' <<<"$1"; }
initiations() { grep -cE "initiating IKE_SA $(re $A)\[" "$MM_TMP/charon-$MM.log"; }
inits_before=$(initiations)

# --- the move -------------------------------------------------------------------
vm_step "the partner's gateway moves to $MOVED"
# aead SRC DST SPI: the SA's "aead NAME KEY ICV_BITS" words.
aead() {
	ip -n "$MM" xfrm state get src "$1" dst "$2" proto esp spi "$3" |
		awk '$1 == "aead" { print "aead", $2, $3, $4 }'
}
# move: both SAs deleted, then added again between our tunnel address and
# $MOVED with the same SPIs, reqid and keys, in one `ip -batch` (as charon's
# kernel side updates SAs whose peer moved): mmtrustd sees the new ones only.
move() {
	local out in
	out=$(aead $TUN $GW_A "$a_out") && in=$(aead $GW_A $TUN "$a_in") &&
		[ -n "$out" ] && [ -n "$in" ] || return 1
	vm_batch "$MM" "xfrm state delete src $TUN dst $GW_A proto esp spi $a_out" \
		"xfrm state delete src $GW_A dst $TUN proto esp spi $a_in" \
		"xfrm state add src $TUN dst $MOVED proto esp spi $a_out reqid $RA mode tunnel $out" \
		"xfrm state add src $MOVED dst $TUN proto esp spi $a_in reqid $RA mode tunnel $in"
}
# $MOVED as /32: not a secondary of the gateway's /24, so it stays when the
# gateway address goes.
check "the partner's host: $MOVED added, $GW_A given up" vm_batch "$PEER" \
	"addr add $MOVED/32 dev $VM_IF" "addr del $GW_A/24 dev $VM_IF"
t0=$(now_us)
require "our SAs $a_out and $a_in moved to $MOVED" move

tunnel_down() { mm_tunnel $A && [ "$T_STATE" = down ]; }
if wait_for 5 tunnel_down; then
	pass "status: $A's tunnel down"
	vm_step "tunnel down in status $(secs "$(ms_since "$t0")") s after the move"
else
	fail "status still says $A is $T_STATE (spi $T_SPI_IN/$T_SPI_OUT) 5 s after its SAs were deleted"
fi
check "status: no SPIs" [ "$T_SPI_IN $T_SPI_OUT" = "null null" ]
check "subscribers heard sa-down $A" wait_for 5 grep -q "\"sa-down\", \"partner\": \"$A\"" "$MM_TMP/events.out"
check "inbound from $SIP_A is no longer protected" wait_for 2 not_protected
moved_gone() { ! ip -n "$MM" xfrm state list | grep -q "$MOVED"; }
check "mmtrustd deleted the moved SAs" wait_for 5 moved_gone
check "logged with the verdict (wrong-ends)" \
	mm_log_has "refused SA: spi $a_out $TUN -> $MOVED carries reqid $RA .*\(wrong-ends\)"
check "mmtrustd told charon to terminate the IKE_SA" \
	wait_for 5 mm_log_has "partner $(re $A) \(reqid $RA\): charon told to terminate IKE_SA [0-9]+; initiating again"
# list-sas shows SPIs without 0x.
old_child() { swan "$MM" --list-sas 2>/dev/null | grep -qE "${a_in#0x}|${a_out#0x}"; }
check "our charon no longer holds the CHILD_SA of the deleted SAs" wait_for 10 vm_not old_child
more_inits() { [ "$(initiations)" -gt "$inits_before" ]; }
check "our charon initiates again (asked by mmtrustd)" wait_for 10 more_inits
# The partner is away from its gateway address: no tunnel can come up.
check "still down while the partner is away" tunnel_down
check "still not protected" not_protected

# --- the partner comes back ------------------------------------------------------------
vm_step "the partner is back on $GW_A"
# (the route to our CSCF prefix went with the gateway's /24)
check "the partner's host: $GW_A back, $MOVED gone" vm_batch "$PEER" \
	"addr add $GW_A/24 dev $VM_IF" "addr del $MOVED/32 dev $VM_IF" \
	"route replace $CSCF_NET via $TUN"
t0=$(now_us)
if wait_for $UP_BOUND mm_tunnel_up_new $A "$a_in"; then
	pass "tunnel to $A up again with new SPIs"
	vm_step "tunnel back $(secs "$(ms_since "$t0")") s after the partner's return"
	check "status: remote_host is the gateway" [ "$T_RHOST" = $GW_A ]
	check "status spi_in is the kernel's inbound SA" \
		[ "$(spi_hex "$T_SPI_IN")" = "$(sa_spis "$MM" $GW_A $TUN "$RA")" ]
	check "inbound from $SIP_A is protected again" wait_for 5 is_protected
	order() { # sa-down, then a later sa-up for A
		awk -v a="$A" 'index($0, "\"sa-down\", \"partner\": \"" a "\"") { d = NR }
			index($0, "\"sa-up\", \"partner\": \"" a "\"") && d && NR > d { ok = 1 }
			END { exit !ok }' "$MM_TMP/events.out"
	}
	check "subscribers heard sa-up $A after the sa-down" wait_for 5 order
	check "traffic to A flows again" vm_ping "$MM" $CSCF $SIP_A 3
else
	fail "tunnel to $A not back within $UP_BOUND s: $(cat "$MM_TMP/status.json")"
fi

# --- MOBIKE was never offered ------------------------------------------------------------
vm_step "no MOBIKE"
check "IKE_AUTH requests are in our charon's log" grep -q "IKE_AUTH request" "$MM_TMP/charon-$MM.log"
check "IKE_AUTH requests are in the partner's charon's log" grep -q "IKE_AUTH request" "$MM_TMP/charon-$PEER.log"
check "our charon never offered MOBIKE" vm_not grep -q "MOBIKE_SUP" "$MM_TMP/charon-$MM.log"
check "the partner's charon never saw MOBIKE offered" vm_not grep -q "MOBIKE_SUP" "$MM_TMP/charon-$PEER.log"

vm_step "done"
vm_finish
