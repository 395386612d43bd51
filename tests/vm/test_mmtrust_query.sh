#!/bin/bash
# The CSCF's question over a real tunnel: with partner A's authenticated
# CHILD_SA up, `inbound` from A's range to our CSCF address answers
# protected: true and keeps P-Asserted-Identity, with the kernel's SPIs;
# without dst, or to a local address outside [local] cscf (our tunnel
# address: the kernel delivers cleartext there), it strips; a foreign SPI strips; the
# tunnel closed by the partner strips (unprotected) until charon brings it
# back; subscribers see sa-down and sa-up.  Asked through mmtrustctl query,
# which uses libmmtrust.
. "$(dirname "$0")/mmtrust_lib.sh"
mm_init mmtrust_query

A=ims.partner-a.example GW_A=198.51.100.10 NET_A=192.0.2.0/24 SIP_A=192.0.2.10
export MMTRUST_QUERY_SOCKET=$MM_TMP/query.sock
q() { ctl --json query "$@"; }

vm_step "certificates, namespaces, charons"
certs() {
	mm_pki_ca home-ca "mmtrust VM home CA" &&
		mm_pki_cert home home-ca $HOME_ID &&
		mm_pki_ca partner-ca "mmtrust VM partner CA" &&
		mm_pki_cert peer-a partner-ca $A
}
require "CAs and certificates made with pki" certs
require "namespaces $MM and $PEER joined by veth" mm_topology $GW_A
check "partner A's network" mm_partner_net $NET_A $GW_A $SIP_A
mm_peer_conn partner-a $GW_A $A peer-a $NET_A 101 aes128gcm16
require "the partner's charon configuration" mm_peer_prepare peer-a
require "our charon's configuration" mm_strongswan_conf "$MM"
require "both charons answer" mm_charons_start
require "mmtrustd answers on its admin socket" mm_daemon_start
require "mmtrustd connected to our charon" wait_for 20 mm_ike_connected

vm_step "before the partner exists"
out=$(q inbound $SIP_A --dst $CSCF)
check "unknown source: strip" [ "$(jq -r .pai <<<"$out")" = strip ]
check "unknown source: reason" [ "$(jq -r .reason <<<"$out")" = unknown-source ]

# A subscriber from the start: it must see the tunnel come and go.
vm_spawn "$MM_TMP/events.out" "$MMTRUSTCTL" --json query watch
WATCH=$VM_PID
require "the subscription is live" wait_for 10 grep -q '"subscribed": true' "$MM_TMP/events.out"

vm_step "partner A with agreement, tunnel up"
expect_exit 0 "partner add $A" ctl partner add $A --kind ims --agreement yes \
	--range $NET_A --gateway $GW_A --ca "$PKI/partner-ca.pem"
RA=$(mm_reqid $A)
require "tunnel to $A up within 60 s" wait_for 60 mm_tunnel_up $A
in_a=$(sa_spis "$MM" $GW_A $TUN "$RA")
out_a=$(sa_spis "$MM" $TUN $GW_A "$RA")

out=$(q inbound $SIP_A --dst $CSCF)
echo "inbound $SIP_A: $out"
check "protected: true over the authenticated SA" [ "$(jq -r .protected <<<"$out")" = true ]
check "keep P-Asserted-Identity" [ "$(jq -r .pai <<<"$out")" = keep ]
check "reason protected" [ "$(jq -r .reason <<<"$out")" = protected ]
check "the answer names the partner" [ "$(jq -r .partner <<<"$out")" = $A ]
check "the answer's remote identity is the partner's domain" [ "$(jq -r .sa.remote_id <<<"$out")" = $A ]
check "the answer's inbound SPI is the kernel's inbound SA" [ "$(jq -r .sa.spi_in <<<"$out")" = "$in_a" ]
check "the answer's outbound SPI is the kernel's outbound SA" [ "$(jq -r .sa.spi_out <<<"$out")" = "$out_a" ]

out=$(q inbound $SIP_A --dst $CSCF --spi "$in_a")
check "with the SA's own SPI: keep" [ "$(jq -r .pai <<<"$out")" = keep ]
out=$(q inbound $SIP_A --dst $CSCF --spi 0x0badc0de)
check "with another SPI: strip" [ "$(jq -r .pai <<<"$out")" = strip ]
check "with another SPI: reason spi-mismatch" [ "$(jq -r .reason <<<"$out")" = spi-mismatch ]
out=$(q inbound $SIP_A)
check "without dst: not protected" [ "$(jq -r .protected <<<"$out")" = false ]
check "without dst: strip, reason dst-not-given" \
	[ "$(jq -r '.pai + " " + .reason' <<<"$out")" = "strip dst-not-given" ]
# Our tunnel address is local but outside [local] cscf: the in-policy does
# not cover it, and cleartext from A's range is delivered there.
out=$(q inbound $SIP_A --dst $TUN)
check "dst outside [local] cscf: not protected" [ "$(jq -r .protected <<<"$out")" = false ]
check "dst outside [local] cscf: strip, reason dst-not-cscf" \
	[ "$(jq -r '.pai + " " + .reason' <<<"$out")" = "strip dst-not-cscf" ]

out=$(ctl query spi "$in_a")
contains "$out" "in SA of partner $A" "spi names the partner and direction"

out=$(q outbound $A)
check "outbound to $A: trusted" [ "$(jq -r .trusted <<<"$out")" = true ]
check "outbound to $A: keep" [ "$(jq -r .pai <<<"$out")" = keep ]

vm_step "the partner drops its connection and closes the tunnel"
# Without its connection the partner refuses our re-initiation: the tunnel
# stays down until the partner loads it again.
vici_call "$MM_TMP/$PEER.vici" unload-conn '{"name": "partner-a"}' >/dev/null 2>&1
swan "$PEER" --terminate --ike partner-a >/dev/null 2>&1
stripped() { [ "$(q inbound $SIP_A --dst $CSCF | jq -r .reason)" = unprotected ]; }
if wait_for 30 stripped; then
	pass "tunnel closed: inbound answers strip (unprotected)"
else
	fail "inbound still '$(q inbound $SIP_A --dst $CSCF | jq -c '{pai,reason}')' after the partner closed the tunnel"
fi
out=$(q outbound $A)
check "outbound to $A while down: not trusted, strip" [ "$(jq -r .pai <<<"$out")" = strip ]

vm_step "the partner loads its connection again; our traffic brings the tunnel up"
ip netns exec "$PEER" swanctl --load-all --noprompt --uri "$(uri "$PEER")" >/dev/null 2>&1
# Traffic hits our out policy with no SA: the kernel's ACQUIRE makes
# mmtrustd ask charon to initiate.
kept() {
	ip netns exec "$MM" ping -c 1 -W 1 -I $CSCF $SIP_A >/dev/null 2>&1
	[ "$(q inbound $SIP_A --dst $CSCF | jq -r .pai)" = keep ]
}
check "tunnel back after traffic (acquire -> initiate): keep again" wait_for 60 kept
check "the acquire was logged" mm_log_has "acquire: traffic for partner $A"

vm_step "events"
check "subscriber saw sa-up $A" wait_for 5 grep -q "\"sa-up\", \"partner\": \"$A\"" "$MM_TMP/events.out"
check "subscriber saw sa-down $A" grep -q "\"sa-down\", \"partner\": \"$A\"" "$MM_TMP/events.out"
check "subscriber saw partner-added $A" grep -q "\"partner-added\", \"partner\": \"$A\"" "$MM_TMP/events.out"
vm_stop "$WATCH"

vm_finish
