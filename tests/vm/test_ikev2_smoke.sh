#!/bin/bash
# IKEv2 between two charons in two namespaces, the split mmtrust relies on:
# we own the policies (added with ip xfrm, templates carrying a fixed reqid),
# charon negotiates with X.509 certificates (made here with pki, SAN dNSName
# = the peer's domain, remote.id enforced) and installs only the SAs
# (child with `policies = no` and the same reqid). Then traffic must flow
# through those SAs in both directions.
. "$(dirname "$0")/lib.sh"
vm_init ikev2_smoke

A=ike-a B=ike-b
OA=192.0.2.1 OB=192.0.2.2
IA=10.1.0.1 IB=10.2.0.1
NA=10.1.0.0/24 NB=10.2.0.0/24
DA=a.mmtrust.test DB=b.mmtrust.test WRONG=c.mmtrust.test
REQID=42
PORT=5002
PKI=$MM_TMP/pki

# Fewer plugins: pki and swanctl start in about a third of the time
# (every program start is slow under TCG).
cat >"$MM_TMP/tools.conf" <<EOF
pki { load = random pem pkcs1 pkcs8 x509 pubkey openssl }
EOF

vm_step "certificates"
mkdir -p "$PKI"
pki() { STRONGSWAN_CONF=$MM_TMP/tools.conf command pki "$@"; }
certs() {
	pki --gen --type ecdsa --size 256 --outform pem >"$PKI/ca.key" &&
		pki --self --ca --lifetime 30 --in "$PKI/ca.key" --type ecdsa \
			--dn "CN=mmtrust VM test CA" --outform pem >"$PKI/ca.pem" || return 1
	local n d
	for n in a b; do
		[ $n = a ] && d=$DA || d=$DB
		pki --gen --type ecdsa --size 256 --outform pem >"$PKI/$n.key" &&
			pki --issue --lifetime 30 --in "$PKI/$n.key" --type priv \
				--cacert "$PKI/ca.pem" --cakey "$PKI/ca.key" \
				--dn "CN=$d" --san "$d" --outform pem >"$PKI/$n.pem" || return 1
	done
}
check "a CA and two host certificates made with pki" certs
contains "$(pki --print --in "$PKI/a.pem")" "altNames:  $DA" "host certificate carries SAN $DA"

vm_step "namespaces"
check "two namespaces joined by veth" vm_netns_pair $A $B $OA/24 $OB/24
check "inner address and route in $A" vm_inner $A $IA $NB $OB
check "inner address and route in $B" vm_inner $B $IB $NA $OA

# config NS NAME HERE THERE NHERE NTHERE DOMAIN PEER_DOMAIN: the namespace's
# /etc/strongswan.conf and /etc/swanctl/, which `ip netns exec` bind-mounts.
config() {
	local ns=$1 n=$2 dir=/etc/netns/$1
	mkdir -p "$dir/swanctl/x509" "$dir/swanctl/x509ca" "$dir/swanctl/private" || return 1
	VM_DIRS+=("$dir")
	cp "$PKI/ca.pem" "$dir/swanctl/x509ca/" &&
		cp "$PKI/$n.pem" "$dir/swanctl/x509/" &&
		cp "$PKI/$n.key" "$dir/swanctl/private/" || return 1
	cat >"$dir/strongswan.conf" <<-EOF
		charon {
			# An explicit plugin list: the packaged one loads about 60.
			load = random nonce x509 revocation constraints pubkey pkcs1 pkcs8 pem openssl kdf gcm aes sha2 sha1 hmac kernel-netlink socket-default vici
			install_routes = no
			install_virtual_ip = no
			plugins {
				vici {
					socket = unix://$MM_TMP/$ns.vici
				}
			}
			filelog {
				charon {
					path = $MM_TMP/charon-$ns.log
					time_format = %T
					default = 1
					ike = 2
					cfg = 2
					flush_line = yes
				}
			}
		}
		swanctl {
			load = pem pkcs1 pkcs8 x509 pubkey openssl
		}
	EOF
	cat >"$dir/swanctl/swanctl.conf" <<-EOF
		connections {
			mm {
				version = 2
				local_addrs = $3
				remote_addrs = $4
				proposals = aes128gcm16-prfsha256-ecp256
				local {
					auth = pubkey
					certs = $n.pem
					id = $7
				}
				remote {
					auth = pubkey
					id = $8
					cacerts = ca.pem
				}
				children {
					mm {
						mode = tunnel
						local_ts = $5
						remote_ts = $6
						policies = no
						reqid = $REQID
						esp_proposals = aes128gcm16
						start_action = none
					}
				}
			}
			# The same peer, required to be another domain.
			wrong-id {
				version = 2
				local_addrs = $3
				remote_addrs = $4
				proposals = aes128gcm16-prfsha256-ecp256
				local {
					auth = pubkey
					certs = $n.pem
					id = $7
				}
				remote {
					auth = pubkey
					id = $WRONG
					cacerts = ca.pem
				}
				children {
					wrong-id {
						local_ts = $5
						remote_ts = $6
						policies = no
						reqid = $((REQID + 1))
						esp_proposals = aes128gcm16
					}
				}
			}
		}
	EOF
}
check "strongSwan configuration of $A" config $A a $OA $OB $NA $NB $DA $DB
check "strongSwan configuration of $B" config $B b $OB $OA $NB $NA $DB $DA

uri() { echo "unix://$MM_TMP/$1.vici"; }
swan() {
	local ns=$1
	shift
	ip netns exec "$ns" swanctl "$@" --uri "$(uri "$ns")"
}
charon_up() { swan "$1" --stats >/dev/null 2>&1; }

vm_step "charons"
declare -A CHARON
for ns in $A $B; do
	# ip netns exec gives charon a private mount namespace: its own /run
	# (charon.pid) on a tmpfs, the namespace's /etc files bind-mounted.
	vm_spawn "$MM_TMP/charon-$ns.out" ip netns exec "$ns" \
		sh -c 'mount -t tmpfs tmpfs /run && exec /usr/lib/ipsec/charon'
	CHARON[$ns]=$VM_PID
	vm_keep "$MM_TMP/charon-$ns.log" "$MM_TMP/charon-$ns.out"
done
for ns in $A $B; do
	check "charon in $ns answers on its VICI socket" wait_for 30 charon_up "$ns"
	expect_exit 0 "swanctl --load-all in $ns" swan "$ns" --load-all --noprompt
	contains "$OUT" "successfully loaded 2 connections" "connections loaded in $ns"
done

# Our policies, as mmtrustd will add them: the templates name the reqid the
# child was given, so charon's SAs are the ones they use.
policies() {
	local ns=$1
	ip -n "$ns" -batch - <<-EOF
		xfrm policy add src $4 dst $5 dir out tmpl src $2 dst $3 proto esp reqid $REQID mode tunnel
		xfrm policy add src $5 dst $4 dir in tmpl src $3 dst $2 proto esp reqid $REQID mode tunnel
	EOF
}
check "our policies in $A" policies $A $OA $OB $NA $NB
check "our policies in $B" policies $B $OB $OA $NB $NA

vm_step "initiate"
expect_exit 0 "swanctl --initiate from $A" swan $A --initiate --ike mm --child mm --timeout 60
[ "$MM_FAILS" -eq 0 ] || echo "$OUT"

# sas NS: "SRC DST SPI" of each ESP SA with our reqid, sorted.
sas() { vm_sa_stats "$1" reqid $REQID | cut -d' ' -f1-3; }
# policy_count NS: SPD entries (charon's per-socket bypass entries aside).
policy_count() {
	ip -n "$1" xfrm policy list | grep -cE '^[[:space:]]*dir (in|out|fwd) '
}
sa_a=$(sas $A)
sa_b=$(sas $B)
echo "SAs with reqid $REQID in $A:"
echo "$sa_a"
check "$A has exactly two ESP SAs with reqid $REQID" [ "$(echo "$sa_a" | grep -c .)" -eq 2 ]
same() { [ -n "$1" ] && [ "$1" = "$2" ]; }
check "both sides installed the same two SAs" same "$sa_a" "$sa_b"
contains "$sa_a" "$OA $OB " "an SA $OA -> $OB"
contains "$sa_a" "$OB $OA " "an SA $OB -> $OA"
check "charon added no policy in $A (policies = no)" [ "$(policy_count $A)" -eq 2 ]
check "charon added no policy in $B (policies = no)" [ "$(policy_count $B)" -eq 2 ]
list=$(swan $B --list-sas 2>&1)
contains "$list" "reqid $REQID, INSTALLED, TUNNEL" "$B lists the child installed with reqid $REQID"
contains "$list" "$DA" "$B authenticated $DA"

vm_step "traffic"
before_a=$(vm_sa_stats $A reqid $REQID)
before_b=$(vm_sa_stats $B reqid $REQID)
check "UDP receiver in $A" vm_udp_listen $A $IA $PORT "$MM_TMP/rx-a"
check "UDP receiver in $B" vm_udp_listen $B $IB $PORT "$MM_TMP/rx-b"
check "ping $IA -> $IB" vm_ping $A $IA $IB 3
check "ping $IB -> $IA" vm_ping $B $IB $IA 2
vm_udp_send $A $IA $IB $PORT "ike a-to-b"
vm_udp_send $B $IB $IA $PORT "ike b-to-a"
check "UDP $IA -> $IB delivered" wait_for 10 vm_got "$MM_TMP/rx-b" "ike a-to-b"
check "UDP $IB -> $IA delivered" wait_for 10 vm_got "$MM_TMP/rx-a" "ike b-to-a"
after_a=$(vm_sa_stats $A reqid $REQID)
after_b=$(vm_sa_stats $B reqid $REQID)
printf 'SAs in %s (src dst spi bytes packets):\n%s\n' $A "$after_a"
check "both SAs' bytes and packets rose in $A" vm_sa_rose "$before_a" "$after_a"
check "both SAs' bytes and packets rose in $B" vm_sa_rose "$before_b" "$after_b"

# A connection that wants the peer to be another domain gets no SA: the
# peer has no identity $WRONG to authenticate as, and says so.
vm_step "wrong peer id"
initiate_fails() { ! swan $A --initiate --ike wrong-id --child wrong-id --timeout 30 >"$MM_TMP/wrong.out" 2>&1; }
check "initiating with remote id $WRONG fails" initiate_fails
check "no SA for that connection" [ -z "$(vm_sa_stats $A reqid $((REQID + 1)))" ]
check "the peer refused the authentication" grep -q "received AUTHENTICATION_FAILED notify" \
	"$MM_TMP/charon-$A.log"

vm_step "stop"
for ns in $A $B; do
	vm_stop "${CHARON[$ns]}" 10
done
check "charon removed its SAs when it stopped" [ -z "$(sas $A)" ]

vm_step "done"
vm_finish
