#!/bin/bash
# mmtrust end to end, revocation and CA rollover, four partners on one
# set-up (both charons, mmtrustd; the partner's charon holds all four):
#   R  its certificate is revoked by the CRL file mmtrustd loads (the
#      partner lists the file): our charon refuses it, no SA ever has R's
#      reqid, while A, signed by the same CA and listed in the same CRL
#      file but not revoked, gets its tunnel (the control);
#   U  no CRL file: its certificate names a CRL URI (http://GW_A:8080/...)
#      served by python3 -m http.server in the partner's namespace; our
#      charon (curl plugin, libstrongswan-extra-plugins) fetches it and
#      refuses the revoked certificate;
#   A  up, then a new CRL revoking A's certificate replaces the file:
#      mmtrustd loads it and re-authenticates A's IKE_SA, which fails; the
#      tunnel goes down and `protected` turns false within REVOKE_BOUND
#      (measured and printed), and stays down;
#   D  lists two CAs (a rollover): up with a certificate of the old CA, then
#      the partner switches to a certificate of the new CA and the tunnel
#      comes back; dropping the old CA (`partner set --ca NEW`) leaves the
#      tunnel as it is.
. "$(dirname "$0")/mmtrust_lib.sh"
mm_init mmtrust_revocation

A=ims.partner-a.example GW_A=198.51.100.10 NET_A=192.0.2.0/24 SIP_A=192.0.2.10
R=ims.partner-r.example GW_R=198.51.100.11 NET_R=203.0.113.0/24
U=ims.partner-u.example GW_U=198.51.100.12 NET_U=10.20.1.0/24
D=ims.partner-d.example GW_D=198.51.100.13 NET_D=10.20.2.0/24 SIP_D=10.20.2.10
HTTP_PORT=8080
CRL_URI=http://$GW_A:$HTTP_PORT/uri.crl
UP_BOUND=60		# seconds from partner add to a tunnel up
REVOKE_BOUND=15		# seconds from the CRL replaced to A down and not protected (TCG, a busy host)
CRL=$MM_TMP/crl/partner-ca.crl	# the CRL file A and R list
export MMTRUST_QUERY_SOCKET=$MM_TMP/query.sock

vm_step "certificates"
# peer-u's certificate names the CRL URI (mm_pki_cert has no such option).
cert_u() {
	pki --gen --type ecdsa --size 256 --outform pem >"$PKI/peer-u.key" &&
		pki --issue --lifetime 30 --in "$PKI/peer-u.key" --type priv \
			--cacert "$PKI/uri-ca.pem" --cakey "$PKI/uri-ca.key" \
			--dn "CN=$U" --san "$U" --crl "$CRL_URI" --outform pem >"$PKI/peer-u.pem"
}
certs() {
	mm_pki "ca|home-ca|mmtrust VM home CA" "ca|partner-ca|mmtrust VM partner CA" \
		"ca|new-ca|mmtrust VM partner new CA" "ca|uri-ca|mmtrust VM partner URI CA" \
		"cert|home|home-ca|$HOME_ID" "cert|peer-a|partner-ca|$A" "cert|peer-r|partner-ca|$R" \
		"cert|peer-d-old|partner-ca|$D" "cert|peer-d-new|new-ca|$D" &&
		cert_u && cp "$PKI/peer-d-old.pem" "$PKI/peer-d.pem" &&
		cp "$PKI/peer-d-old.key" "$PKI/peer-d.key"
}
require "CAs and certificates made with pki" certs
mkdir -p "$MM_TMP/crl" "$MM_TMP/www"
# crl CA OUT [pki --signcrl options]: a CRL of CA, written with a rename.
crl() {
	local ca=$1 out=$2
	shift 2
	pki --signcrl --cacert "$PKI/$ca.pem" --cakey "$PKI/$ca.key" --lifetime 2 \
		--reason key-compromise "$@" >"$out.tmp" && mv "$out.tmp" "$out"
}
require "a CRL of partner-ca revoking R's certificate (PEM, a file)" \
	crl partner-ca "$CRL" --cert "$PKI/peer-r.pem" --outform pem
require "a CRL of uri-ca revoking U's certificate (DER, served over HTTP)" \
	crl uri-ca "$MM_TMP/www/uri.crl" --cert "$PKI/peer-u.pem"

vm_step "namespaces, charons, HTTP, mmtrustd"
require "namespaces $MM and $PEER joined by veth" mm_topology $GW_A $GW_R $GW_U $GW_D
check "partner A's network" mm_partner_net $NET_A $GW_A $SIP_A
check "partner D's network" mm_partner_net $NET_D $GW_D $SIP_D
mm_peer_conn partner-a $GW_A $A peer-a $NET_A 101 aes128gcm16
mm_peer_conn partner-r $GW_R $R peer-r $NET_R 102 aes128gcm16
mm_peer_conn partner-u $GW_U $U peer-u $NET_U 103 aes128gcm16
mm_peer_conn partner-d $GW_D $D peer-d $NET_D 104 aes128gcm16
require "the partner's charon configuration" mm_peer_prepare peer-a peer-r peer-u peer-d
require "our charon's configuration" mm_strongswan_conf "$MM"
# Our charon fetches CRLs from URIs: the curl plugin.
require "our charon loads the curl plugin" \
	sed -i 's/^\(\s*load = .*\) vici$/\1 vici curl/' "/etc/netns/$MM/strongswan.conf"
check "curl is in the load list" grep -q 'vici curl$' "/etc/netns/$MM/strongswan.conf"
vm_spawn "$MM_TMP/http.log" ip netns exec "$PEER" python3 -m http.server $HTTP_PORT \
	--bind $GW_A --directory "$MM_TMP/www"
vm_keep "$MM_TMP/http.log"
require "both charons answer, the partner's swanctl.conf loaded" mm_charons_start
require "mmtrustd answers on its admin socket" mm_daemon_start
require "mmtrustd connected to our charon" wait_for 20 mm_ike_connected
xfrm_monitor

# --- provisioning: all four at once -----------------------------------------------
vm_step "partners A, R, U, D: add"
t0=$(now_us)
add() {
	local p=$1 net=$2 gw=$3
	shift 3
	expect_exit 0 "partner add $p $*" ctl partner add "$p" --kind ims --agreement yes \
		--range "$net" --gateway "$gw" "$@"
}
add $A $NET_A $GW_A --ca "$PKI/partner-ca.pem" --crl "$CRL"
add $R $NET_R $GW_R --ca "$PKI/partner-ca.pem" --crl "$CRL" --revocation strict
add $U $NET_U $GW_U --ca "$PKI/uri-ca.pem"
add $D $NET_D $GW_D --ca "$PKI/partner-ca.pem" --ca "$PKI/new-ca.pem"
RA=$(mm_reqid $A) RR=$(mm_reqid $R) RU=$(mm_reqid $U) RD=$(mm_reqid $D)

protected() { ctl --json query inbound "$1" --dst $CSCF | jq -r .protected; }
is_protected() { [ "$(protected "$1")" = true ]; }
not_protected() { [ "$(protected "$1")" = false ]; }
# re TEXT: TEXT as an ERE matching itself.
# shellcheck disable=SC2001
re() { sed 's/[][\.|$(){}?+*^]/\\&/g' <<<"$1"; }
# revoked_in_log DOMAIN: our charon refused DOMAIN's certificate as revoked.
revoked_in_log() { charon_log_has "$MM" "<$(re "$1")\|[0-9]+> .*certificate was revoked"; }
mm_crl_status() {
	mm_status && mm_jq '.partners[] | select(.domain == $d) | .revocation' --arg d "$1"
}

up_a=0 up_d=0
if wait_for $UP_BOUND mm_tunnel_up $A; then
	up_a=1
	pass "A (same CA and CRL file, not revoked) is up"
	vm_step "tunnel to $A up, $(secs "$(ms_since "$t0")") s after partner add"
else
	fail "tunnel to $A not up within $UP_BOUND s: $(cat "$MM_TMP/status.json")"
fi
if wait_for $UP_BOUND mm_tunnel_up $D; then
	up_d=1
	pass "D is up with a certificate of its old CA (two CAs listed)"
else
	fail "tunnel to $D not up within $UP_BOUND s: $(cat "$MM_TMP/status.json")"
fi
st=$(mm_crl_status $A)
echo "A's revocation in status: $st"
check "status: A's CRL read and loaded, mode ifuri" jq -e --arg p "$CRL" \
	'.mode == "ifuri" and .crls[0].path == $p and .crls[0].state == "ok" and .crls[0].loaded == true and .crls[0].revoked == 1' <<<"$st"
check "status: R's mode is strict" jq -e '.mode == "strict"' <<<"$(mm_crl_status $R)"
check "the log names the CRL loaded into charon" mm_log_has "CRL $(re "$CRL") loaded into charon"

# --- (a) R: revoked by the CRL file -----------------------------------------------
vm_step "R: revoked by the CRL file"
check "our charon refused R's certificate as revoked" wait_for 30 revoked_in_log $R
check "R has no tunnel in status" vm_not mm_tunnel_up $R
check "no SA with R's reqid $RR in $MM" no_sa "$MM" "$RR"
# sa_seen REQID: the XFRM monitor saw an SA (not a policy template) with it.
sa_seen() { grep -qE "spi 0x[0-9a-f]+ reqid $1( |\$)" "$MM_TMP/xfrm-monitor.log"; }
check "the monitor sees SAs (A's reqid $RA)" sa_seen "$RA"
check "no SA with R's reqid was ever installed (xfrm monitor)" vm_not sa_seen "$RR"

# --- (b) U: revoked by the CRL at the certificate's URI -------------------------------
vm_step "U: revoked by the CRL served at $CRL_URI"
fetched() { grep -q 'GET /uri.crl' "$MM_TMP/http.log"; }
check "our charon fetched $CRL_URI" wait_for 30 fetched
check "our charon refused U's certificate as revoked" wait_for 30 revoked_in_log $U
check "U has no tunnel in status" vm_not mm_tunnel_up $U
check "no SA with U's reqid was ever installed (xfrm monitor)" vm_not sa_seen "$RU"

# --- (d) D: CA rollover --------------------------------------------------------------
part_d() {
	vm_step "D: the partner switches to its new CA's certificate"
	local peer=/etc/netns/$PEER/swanctl t1 spi
	cp "$PKI/peer-d-new.pem" "$peer/x509/peer-d.pem" &&
		cp "$PKI/peer-d-new.key" "$peer/private/peer-d.key" || fail "copy D's new certificate"
	check "the partner reloads its credentials" \
		ip netns exec "$PEER" swanctl --load-creds --noprompt --uri "$(uri "$PEER")"
	check "the partner reloads its connections" \
		ip netns exec "$PEER" swanctl --load-conns --uri "$(uri "$PEER")"
	mm_tunnel $D
	spi=$(spi_hex "$T_SPI_IN")
	t1=$(now_us)
	# A new IKE_SA authenticates with the new certificate.
	swan "$PEER" --terminate --ike partner-d --force >/dev/null 2>&1
	swan "$PEER" --initiate --child partner-d --timeout 30 >/dev/null 2>&1
	if wait_for $UP_BOUND mm_tunnel_up_new $D "$spi"; then
		pass "D is up again with a certificate of the new CA"
		vm_step "D back up $(secs "$(ms_since "$t1")") s after the switch"
	else
		fail "D not up again: $(cat "$MM_TMP/status.json")"
	fi
	check "our charon trusted D's certificate through the new CA" \
		charon_log_has "$MM" "<$(re $D)\|[0-9]+> .*using trusted ca certificate \"CN=mmtrust VM partner new CA\""
	check "inbound from D's SIP address is protected" wait_for 10 is_protected $SIP_D
	# Dropping the old CA changes the connection: charon replaces it and
	# establishes the tunnel again (strongSwan 5.9 does so for every changed
	# connection), now accepting only the new CA.
	vm_step "D: the old CA dropped"
	mm_tunnel $D
	spi=$(spi_hex "$T_SPI_IN")
	local n_new
	n_new=$(grep -cE "<$(re $D)\|[0-9]+> .*using trusted ca certificate \"CN=mmtrust VM partner new CA\"" \
		"$MM_TMP/charon-$MM.log")
	t1=$(now_us)
	expect_exit 0 "partner set $D --ca NEW (the old CA dropped)" ctl partner set $D \
		--ca "$PKI/new-ca.pem"
	check "status: D lists one CA now" [ "$(ctl --json partner show $D | jq '.cas | length')" = 1 ]
	if wait_for $UP_BOUND mm_tunnel_up_new $D "$spi"; then
		pass "D is up on the new CA alone"
		vm_step "D up again $(secs "$(ms_since "$t1")") s after the old CA was dropped"
	else
		fail "D not up after the old CA was dropped: $(cat "$MM_TMP/status.json")"
	fi
	check "authenticated again through the new CA" [ "$(grep -cE "<$(re $D)\|[0-9]+> .*using trusted ca certificate \"CN=mmtrust VM partner new CA\"" \
		"$MM_TMP/charon-$MM.log")" -gt "$n_new" ]
	check "inbound from D's SIP address is protected again" wait_for 10 is_protected $SIP_D
}
if [ $up_d = 1 ]; then part_d; else fail "part D (rollover) skipped: no tunnel"; fi

# --- (c) A: revoked while its tunnel is up -------------------------------------------
part_a() {
	vm_step "A: its certificate revoked while the tunnel is up"
	check "inbound from A's SIP address is protected" wait_for 10 is_protected $SIP_A
	local t1 ms
	require "a new CRL revoking R's and A's certificates" \
		crl partner-ca "$MM_TMP/next.crl" --lastcrl "$CRL" --cert "$PKI/peer-a.pem" --outform pem
	# The bound runs from the rename that puts it in place, as a fetch job
	# would (mmtrustd polls once a second).
	t1=$(now_us)
	require "the new CRL replaces the file (rename)" mv "$MM_TMP/next.crl" "$CRL"
	echo "CRL renamed into place at $(date -u +%T.%3N) (the guest's clock, as mmtrustd's log)"
	gone() { not_protected $SIP_A && vm_not mm_tunnel_up $A; }
	if wait_for $REVOKE_BOUND gone; then
		ms=$(ms_since "$t1")
		pass "A down and not protected $(secs "$ms") s after the CRL changed (bound $REVOKE_BOUND s)"
		vm_step "A: CRL replaced -> not protected in $(secs "$ms") s"
		# Where the time went: mmtrustd's own lines (read, loaded,
		# re-authenticating, tunnel down) against the rename above.
		grep -E "CRL .* (read|loaded into charon)|re-authenticating|tunnel down: partner $(re $A)" \
			"$MM_LOG" | tail -4 | cut -c12-23,42-120
	else
		fail "A still up or protected $REVOKE_BOUND s after its revocation: $(protected $SIP_A) $(cat "$MM_TMP/status.json")"
	fi
	check "mmtrustd re-authenticated A's IKE_SA" mm_log_has "partner $(re $A): CRL .* changed; re-authenticating"
	check "our charon refused A's certificate as revoked" wait_for 20 revoked_in_log $A
	check "status: A's CRL has two entries now" \
		wait_for 5 sh -c "'$MMTRUSTCTL' --json status | jq -e '.partners[] | select(.domain == \"$A\") | .revocation.crls[0].revoked == 2' >/dev/null"
	# It stays down: every new IKE_SA is refused.
	local t2
	t2=$(now_us)
	down_for() { [ "$(ms_since "$t2")" -ge 4000 ] || { no_sa "$MM" "$RA" && return 1; }; }
	wait_for 10 down_for
	check "no SA with A's reqid 4 s later" no_sa "$MM" "$RA"
	check "A still not protected" not_protected $SIP_A
}
if [ $up_a = 1 ]; then part_a; else fail "part A (revoked while up) skipped: no tunnel"; fi

vm_step "done"
vm_finish
