#!/bin/bash
# SIGHUP and the IKE side, with a real charon (VICI only: this kernel has no
# ESP, no tunnel comes up; what charon holds is read with swanctl):
#  1. our certificate and key renewed in place (same paths): SIGHUP rereads
#     them and charon's connection carries the new certificate;
#  2. [spd] and [ike] settings changed together: both sides restart (the
#     kernel gets the partner's policies once [spd] enabled = yes, charon
#     the certificate the new [ike] path names);
#  3. an unreadable certificate on reload: the old one stays, logged.
# charon runs in the test's network namespace with a private /run; it is
# stopped by its PID.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup ikereload
CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
VICI=$MM_TMP/charon.vici
PARTNER=ims.partner-a.example
CHPID=

mm_cleanup_hook() { mm_kill "$CHPID"; }

cat >"$MM_TMP/strongswan.conf" <<EOF
charon {
	load = random nonce x509 revocation constraints pubkey pkcs1 pkcs8 pem openssl kernel-netlink socket-default vici
	install_routes = no
	install_virtual_ip = no
	plugins {
		vici {
			socket = unix://$VICI
		}
	}
	filelog {
		charon {
			path = $MM_TMP/charon.log
			default = 1
			cfg = 2
		}
	}
}
swanctl {
	load = pem pkcs1 pkcs8 x509 pubkey openssl
}
EOF
export STRONGSWAN_CONF=$MM_TMP/strongswan.conf

# cert NAME CN: $MM_TMP/NAME.pem and NAME.key, an ECDSA certificate.
cert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$MM_TMP/$1.key" -out "$MM_TMP/$1.pem" -days 30 -subj "/CN=$2" \
		-addext "subjectAltName=DNS:$2" 2>/dev/null
}
cert one home-one.example && cert two home-two.example && cert three home-three.example ||
	fail "certificates made with openssl"
make_ca "$MM_TMP" partner-ca || fail "partner CA"
cp "$MM_TMP/one.pem" "$MM_TMP/home.pem" && cp "$MM_TMP/one.key" "$MM_TMP/home.key"

ip netns exec "$NS" sh -c 'mount -t tmpfs tmpfs /run && exec /usr/lib/ipsec/charon' \
	>"$MM_TMP/charon.out" 2>&1 &
CHPID=$!
swan() { swanctl "$@" --uri "unix://$VICI"; }
if ! wait_for 20 swan --stats >/dev/null; then
	fail "charon answers on $VICI: $(tail -n 5 "$MM_TMP/charon.out")"
	summary test_ike_reload
	exit 1
fi

conf() { # conf SPD_ENABLED CERT_BASENAME
	cat >"$MM_TMP/mmtrustd.conf" <<-EOF
		[daemon]
		store = $MM_TMP/store.db
		admin_socket = $MM_TMP/admin.sock
		query_socket = $MM_TMP/query.sock
		[local]
		cscf = 10.10.0.0/24
		tunnel = 198.51.100.1
		[spd]
		enabled = $1
		[ike]
		enabled = yes
		vici_socket = $VICI
		certificate = $MM_TMP/$2.pem
		private_key = $MM_TMP/$2.key
		dpd_delay = 0
	EOF
}
conf no home
mm_start_daemon 10 "$MM_TMP/admin.sock" answer
ike_connected() { "$CTL" --json status | jq -e '.ike.connected == true' >/dev/null; }
check "mmtrustd connected to charon" wait_for 20 ike_connected
expect_exit 0 "partner add $PARTNER" "$CTL" partner add $PARTNER --kind ims --agreement yes \
	--range 192.0.2.0/24 --gateway 198.51.100.10 --ca "$MM_TMP/partner-ca.pem"

# conn_cert CN: charon's connection for the partner authenticates us with
# the certificate of that subject.
conn_cert() { swan --list-conns 2>/dev/null | grep -A12 "^$PARTNER:" | grep -q "certs: *CN=$1"; }
check "charon's connection carries certificate one" wait_for 10 conn_cert home-one.example
swan --list-conns >"$MM_TMP/conns-1.txt" 2>&1

# --- 1. renewed in place -------------------------------------------------------
cp "$MM_TMP/two.pem" "$MM_TMP/home.pem" && cp "$MM_TMP/two.key" "$MM_TMP/home.key"
kill -HUP "$DPID"
check "SIGHUP: charon's connection carries the renewed certificate" \
	wait_for 10 conn_cert home-two.example
check "the reread is logged" grep -q "certificate or private key changed on disk" "$MM_TMP/daemon.log"
check "charon holds the renewed certificate" sh -c \
	"swanctl --list-certs --uri 'unix://$VICI' 2>/dev/null | grep -q 'subject: *\"CN=home-two.example\"'"

# --- 2. [spd] and [ike] together -----------------------------------------------
# pol_count: the policies in NS whose template carries the partner's reqid.
REQID=$("$CTL" --json partner show $PARTNER | jq -r .reqid)
pol_count() { ip -n "$NS" xfrm policy list | grep -cE "reqid $REQID( |\$)"; }
check "no policies with [spd] enabled = no" [ "$(pol_count)" -eq 0 ]
conf yes three
kill -HUP "$DPID"
check "SPD restart logged" wait_for 10 grep -q "restarting the SPD engine" "$MM_TMP/daemon.log"
check "IKE restart logged" wait_for 10 grep -q "restarting the IKE side" "$MM_TMP/daemon.log"
pol_there() { [ "$(pol_count)" -eq 2 ]; }
check "the restarted SPD engine programmed the partner's in and out policies" wait_for 10 pol_there
check "charon's connection carries the certificate of the new [ike] path" \
	wait_for 10 conn_cert home-three.example
check "mmtrustd connected to charon again" wait_for 20 ike_connected

# --- 3. an unreadable certificate on reload: the old one stays ---------------------
mv "$MM_TMP/three.pem" "$MM_TMP/three.pem.away"
kill -HUP "$DPID"
check "the unreadable certificate is logged" wait_for 10 grep -q "keeping the certificate and key read before" "$MM_TMP/daemon.log"
check "daemon still running" kill -0 "$DPID"
check "charon's connection still carries the last good certificate" conn_cert home-three.example

summary test_ike_reload
