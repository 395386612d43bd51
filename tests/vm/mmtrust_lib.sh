# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by the test scripts
# shellcheck disable=SC2016 # jq programs are in single quotes on purpose
# Helpers for the end-to-end tests of mmtrust's strongSwan integration
# (tests/vm/test_mmtrust_*.sh); it sources lib.sh itself:
#
#   . "$(dirname "$0")/mmtrust_lib.sh"
#   mm_init mmtrust_x                 # vm_init, names, tools
#   mm_pki_ca home-ca "mmtrust VM home CA"; mm_pki_cert home home-ca ims.home.example
#   mm_topology 198.51.100.10 ...     # namespaces $MM (ours) and $PEER
#   mm_peer_conn ...; mm_peer_prepare # the partner's swanctl.conf
#   mm_strongswan_conf $MM; mm_charons_start; mm_daemon_start
#
# Topology (inside the guest):
#   $MM   (ours)    mm0 198.51.100.1/24, CSCF 10.10.0.1 on lo; mmtrustd and our
#                   charon (VICI socket $MM_VICI), no swanctl.conf: mmtrustd
#                   loads everything over VICI.
#   $PEER (partner) mm0 198.51.100.10/24 (+ more gateway addresses), SIP
#                   addresses on lo; its own charon with a normal swanctl.conf
#                   (policies = yes), loaded with swanctl --load-all.
# Everything is removed by vm_cleanup (lib.sh); the logs and a final dump of
# the XFRM state, charon's SAs and mmtrustctl status go to the artifacts.

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MM_BUILD=${MMTRUST_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/build
MMTRUSTD=$MM_BUILD/mmtrustd
MMTRUSTCTL=$MM_BUILD/mmtrustctl

HOME_ID=ims.home.example	# our IKE identity ([ike] local_id)
TUN=198.51.100.1		# our tunnel address ([local] tunnel)
CSCF=10.10.0.1			# our CSCF address
CSCF_NET=10.10.0.0/24		# [local] cscf
SPD_TAG=1835889778		# the uid of mmtrust's policies (default [spd] tag)

# mm_init NAME: vm_init, the namespace names, the tools' configuration.
mm_init() {
	vm_init "$1"
	MM=$1-mm
	PEER=$1-peer
	PKI=$MM_TMP/pki
	MM_VICI=$MM_TMP/$MM.vici
	MM_LOG=$MM_TMP/mmtrustd.log
	MM_CONF=$MM_TMP/mmtrustd.conf
	MM_DUMP=$MM_TMP/dump.txt
	PEER_CONNS=
	PEER_NCONNS=0
	mkdir -p "$PKI"
	export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
	# Fewer plugins: pki and swanctl start in about a third of the time.
	cat >"$MM_TMP/tools.conf" <<-EOF
		pki { load = random pem pkcs1 pkcs8 x509 pubkey openssl }
		swanctl { load = pem pkcs1 pkcs8 x509 pubkey openssl }
	EOF
	: >"$MM_DUMP"
	vm_keep "$MM_DUMP" "$MM_LOG" "$MM_CONF"
	# The final dump runs before vm_cleanup stops the processes.
	trap 'mm_exit $?' EXIT
	local t
	for t in mmtrustd mmtrustctl; do
		require "$MM_BUILD/$t exists (make on the host)" test -x "$MM_BUILD/$t"
	done
}

mm_exit() {
	local rc=$1
	mm_dump "at exit (status $rc)" 2>/dev/null
	(exit "$rc")
	vm_cleanup
}

# require DESCRIPTION COMMAND...: like check, but what follows makes no
# sense without it: on failure the test ends here (its checks so far count).
require() {
	local fails=$MM_FAILS
	# check returns 0 either way: a failure shows in the count.
	check "$@"
	[ "$MM_FAILS" -eq "$fails" ] && return 0
	echo "ending the test: a prerequisite failed" >&2
	vm_finish
	exit 1
}

# --- certificates (pki) ------------------------------------------------------

pki() { STRONGSWAN_CONF=$MM_TMP/tools.conf command pki "$@"; }

# Keys and certificates are kept for the boot in $MM_PKI_CACHE (the guest's
# /tmp, gone at power-off): every test that wants the same one (same name,
# arguments and issuer) copies it instead of spending a second on pki.
MM_PKI_CACHE=/tmp/mmvm-mmtrust-pki

# pki_cached NAME KEY CMD...: $PKI/NAME.{key,pem} from the cache when it
# holds NAME made with KEY, else made by CMD and put in the cache.
pki_cached() {
	local n=$1 key=$2 c=$MM_PKI_CACHE
	shift 2
	mkdir -p "$c" || return 1
	if [ -f "$c/$n.pem" ] && [ "$(cat "$c/$n.id" 2>/dev/null)" = "$key" ]; then
		cp "$c/$n.key" "$c/$n.pem" "$PKI/" && return 0
	fi
	"$@" || return 1
	cp "$PKI/$n.key" "$PKI/$n.pem" "$c/" && echo "$key" >"$c/$n.id"
}

# mm_pki_ca NAME CN: $PKI/NAME.key, $PKI/NAME.pem, a self-signed CA.
mm_pki_ca() { pki_cached "$1" "ca $2" make_ca "$@"; }
make_ca() {
	pki --gen --type ecdsa --size 256 --outform pem >"$PKI/$1.key" &&
		pki --self --ca --lifetime 30 --in "$PKI/$1.key" --type ecdsa \
			--dn "CN=$2" --outform pem >"$PKI/$1.pem"
}

# mm_pki_cert NAME CA SAN: $PKI/NAME.key, $PKI/NAME.pem, a host certificate
# with subject CN=SAN and subjectAltName dNSName SAN, signed by CA.
mm_pki_cert() { pki_cached "$1" "cert $3 by $(cksum <"$PKI/$2.pem")" make_cert "$@"; }
make_cert() {
	pki --gen --type ecdsa --size 256 --outform pem >"$PKI/$1.key" &&
		pki --issue --lifetime 30 --in "$PKI/$1.key" --type priv \
			--cacert "$PKI/$2.pem" --cakey "$PKI/$2.key" \
			--dn "CN=$3" --san "$3" --outform pem >"$PKI/$1.pem"
}

# mm_pki SPEC...: several at once, each "ca|NAME|CN" or "cert|NAME|CA|SAN":
# the CAs side by side, then the certificates side by side (pki is CPU-bound
# and the guest has two CPUs).
mm_pki() {
	local spec kind n a b pids=() p rc=0 pass
	for pass in ca cert; do
		pids=()
		for spec in "$@"; do
			IFS='|' read -r kind n a b <<<"$spec"
			[ "$kind" = "$pass" ] || continue
			if [ "$kind" = ca ]; then mm_pki_ca "$n" "$a" & else mm_pki_cert "$n" "$a" "$b" & fi
			pids+=("$!")
		done
		for p in "${pids[@]}"; do wait "$p" || rc=1; done
		[ $rc -eq 0 ] || return 1
	done
}

# --- network -----------------------------------------------------------------

# mm_topology GW [GW...]: $MM and $PEER joined by veth; our tunnel address
# and CSCF address in $MM; the gateway addresses in $PEER.
mm_topology() {
	local gw cmds=()
	vm_netns_pair "$MM" "$PEER" "$TUN/24" "$1/24" || return 1
	shift
	for gw in "$@"; do cmds+=("addr add $gw/24 dev $VM_IF"); done
	cmds+=("route add $CSCF_NET via $TUN")
	vm_batch "$PEER" "${cmds[@]}" &&
		vm_batch "$MM" "addr add $CSCF/32 dev lo"
}

# mm_partner_net RANGE GW ADDR: the partner's SIP address ADDR (in RANGE) on
# lo in $PEER.  Our route to RANGE is mmtrustd's ([local] routes = yes, in
# table $MM_RT_TABLE with the CSCF address as source: mm_route_ours); the
# peer's route to our CSCF network (mm_topology) stays by hand: the peer is
# not an mmtrust host.
mm_partner_net() {
	vm_batch "$PEER" "addr add $3/32 dev lo"
}

# mm_route_ours RANGE: mmtrustd's route to RANGE is in $MM (our table and
# protocol, src the CSCF address) and the rule that looks the table up.
MM_RT_TABLE=6770 MM_RT_PROTO=77
mm_route_ours() {
	ip -n "$MM" route show table $MM_RT_TABLE proto $MM_RT_PROTO | grep -q "^$1 .*src $CSCF" &&
		ip -n "$MM" rule show | grep -q "lookup $MM_RT_TABLE proto $MM_RT_PROTO"
}

# --- strongSwan --------------------------------------------------------------

uri() { echo "unix://$MM_TMP/$1.vici"; }

# swan NS ARGS...: swanctl against the charon of namespace NS.
swan() {
	local ns=$1
	shift
	STRONGSWAN_CONF=$MM_TMP/tools.conf swanctl "$@" --uri "$(uri "$ns")"
}
charon_up() { swan "$1" --stats >/dev/null 2>&1; }

# mm_strongswan_conf NS: /etc/netns/NS/strongswan.conf (ip netns exec binds
# it over /etc/strongswan.conf): trimmed plugins, no routes, VICI socket
# under $MM_TMP, a file log with the IKE_SA name on every line.
mm_strongswan_conf() {
	local ns=$1 dir=/etc/netns/$1
	mkdir -p "$dir" || return 1
	VM_DIRS+=("$dir")
	cat >"$dir/strongswan.conf" <<-EOF
		charon {
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
					ike_name = yes
					default = 1
					ike = 2
					cfg = 2
					knl = 2
					chd = 2
					flush_line = yes
				}
			}
		}
		swanctl {
			load = pem pkcs1 pkcs8 x509 pubkey openssl
		}
	EOF
}

declare -A CHARON

# mm_charon_spawn NS: charon in NS (a private /run for its pid file). Its
# PID is ${CHARON[NS]}. mm_charon_start NS: that, and waits until its VICI
# socket answers.
mm_charon_spawn() {
	local ns=$1
	vm_spawn "$MM_TMP/charon-$ns.out" ip netns exec "$ns" \
		sh -c 'mount -t tmpfs tmpfs /run && exec /usr/lib/ipsec/charon'
	CHARON[$ns]=$VM_PID
	vm_keep "$MM_TMP/charon-$ns.log" "$MM_TMP/charon-$ns.out"
}
mm_charon_start() {
	mm_charon_spawn "$1" && wait_for 30 charon_up "$1"
}

# mm_charons_start: both charons (configured with mm_peer_prepare and
# mm_strongswan_conf), started side by side; then the partner's
# swanctl --load-all.
mm_charons_start() {
	mm_charon_spawn "$PEER" && mm_charon_spawn "$MM" &&
		wait_for 30 charon_up "$PEER" && wait_for 30 charon_up "$MM" || return 1
	local out
	# ip netns exec: swanctl reads the namespace's /etc/swanctl.
	out=$(ip netns exec "$PEER" swanctl --load-all --noprompt --uri "$(uri "$PEER")" 2>&1)
	echo "$out" >"$MM_TMP/peer-load.out"
	vm_keep "$MM_TMP/peer-load.out"
	case "$out" in
	*"successfully loaded $PEER_NCONNS connections"*) return 0 ;;
	*) echo "$out" >&2; return 1 ;;
	esac
}

# mm_peer_conn NAME GATEWAY LOCAL_ID CERT RANGE REQID ESP [POLICIES]: one
# connection of the partner's charon: a normal strongSwan configuration
# (policies = yes unless POLICIES says no; waits for us: start_action =
# none), its identity LOCAL_ID with the certificate $PKI/CERT.pem, trusting
# our CA (home-ca) for $HOME_ID.
mm_peer_conn() {
	PEER_NCONNS=$((PEER_NCONNS + 1))
	PEER_CONNS+="
	$1 {
		version = 2
		local_addrs = $2
		remote_addrs = $TUN
		local {
			auth = pubkey
			certs = $4.pem
			id = $3
		}
		remote {
			auth = pubkey
			id = $HOME_ID
			cacerts = home-ca.pem
		}
		children {
			$1 {
				mode = tunnel
				local_ts = $5
				remote_ts = $CSCF_NET
				esp_proposals = $7
				reqid = $6
				policies = ${8:-yes}
				start_action = none
			}
		}
	}"
}

# mm_peer_prepare CERT... : the partner's strongswan.conf and swanctl/
# (every CA of $PKI as x509ca; the named certificates and their keys;
# swanctl.conf with the mm_peer_conn connections).
mm_peer_prepare() {
	local dir=/etc/netns/$PEER/swanctl c
	mm_strongswan_conf "$PEER" || return 1
	mkdir -p "$dir/x509" "$dir/x509ca" "$dir/private" || return 1
	for c in "$PKI"/*-ca.pem; do cp "$c" "$dir/x509ca/" || return 1; done
	for c in "$@"; do
		cp "$PKI/$c.pem" "$dir/x509/" && cp "$PKI/$c.key" "$dir/private/" || return 1
	done
	printf 'connections {%s\n}\n' "$PEER_CONNS" >"$dir/swanctl.conf"
	cp "$dir/swanctl.conf" "$MM_TMP/peer-swanctl.conf"
	vm_keep "$MM_TMP/peer-swanctl.conf"
}

# mm_one_partner: the set-up of the tests with one partner $A (gateway
# $GW_A, range $NET_A, SIP address $SIP_A): the home and partner CAs, our
# certificate and A's, both namespaces with A's network, the partner's
# charon with one connection for A (reqid 101, AES-GCM), our charon, and
# mmtrustd connected to it.  A failed step ends the test.
mm_one_partner() {
	vm_step "certificates"
	require "CAs and certificates made with pki" mm_pki "ca|home-ca|mmtrust VM home CA" \
		"ca|partner-ca|mmtrust VM partner CA" "cert|home|home-ca|$HOME_ID" \
		"cert|peer-a|partner-ca|$A"
	vm_step "namespaces, charons, mmtrustd"
	require "namespaces $MM and $PEER joined by veth" mm_topology "$GW_A"
	check "partner A's network" mm_partner_net "$NET_A" "$GW_A" "$SIP_A"
	mm_peer_conn partner-a "$GW_A" "$A" peer-a "$NET_A" 101 aes128gcm16
	require "the partner's charon configuration" mm_peer_prepare peer-a
	require "our charon's configuration" mm_strongswan_conf "$MM"
	require "both charons answer, the partner's swanctl.conf loaded" mm_charons_start
	require "mmtrustd answers on its admin socket" mm_daemon_start
	require "mmtrustd connected to our charon" wait_for 20 mm_ike_connected
}

# --- mmtrustd ----------------------------------------------------------------

ctl() { "$MMTRUSTCTL" "$@"; }

# mm_daemon_conf: the configuration the contract describes.
mm_daemon_conf() {
	cat >"$MM_CONF" <<-EOF
		[daemon]
		store = $MM_TMP/store.db
		admin_socket = $MM_TMP/admin.sock
		query_socket = $MM_TMP/query.sock
		[local]
		cscf = $CSCF_NET
		tunnel = $TUN
		forward = no
		routes = yes
		[ike]
		enabled = yes
		vici_socket = $MM_VICI
		certificate = $PKI/home.pem
		private_key = $PKI/home.key
		local_id = $HOME_ID
		dpd_delay = 10
	EOF
}

# mm_daemon_start: mmtrustd --foreground in $MM, its stderr in $MM_LOG;
# waits until the admin socket answers. PID in $MM_PID.
mm_daemon_start() {
	[ -f "$MM_CONF" ] || mm_daemon_conf
	vm_spawn "$MM_LOG" ip netns exec "$MM" "$MMTRUSTD" --foreground --config "$MM_CONF"
	MM_PID=$VM_PID
	wait_for 20 ctl partner list >/dev/null || { tail -n 20 "$MM_LOG" >&2; return 1; }
}

# mm_status: `mmtrustctl --json status` into $MM_TMP/status.json.
mm_status() { ctl --json status >"$MM_TMP/status.json" 2>"$MM_TMP/status.err"; }

# mm_jq FILTER [ARGS...]: jq -r over the last mm_status.
mm_jq() {
	local f=$1
	shift
	jq -r "$@" "$f" "$MM_TMP/status.json"
}

# mm_ike_connected: status says mmtrustd is connected to charon.
mm_ike_connected() {
	mm_status && [ "$(mm_jq '.ike.connected')" = true ]
}
mm_ike_disconnected() {
	mm_status && [ "$(mm_jq '.ike.connected')" = false ]
}

# mm_tunnel DOMAIN: reads the partner's tunnel object from a fresh status
# into T_STATE T_IKE T_RID T_RHOST T_REQID T_SPI_IN T_SPI_OUT T_SINCE
# (JSON null is "null"); fails when the partner is not listed.
mm_tunnel() {
	local line
	mm_status || return 1
	line=$(mm_jq '.partners[] | select(.domain == $d) | .tunnel
		| [.state, .ike_state, .remote_id, .remote_host, .reqid, .spi_in, .spi_out, .since]
		| map(tostring) | join(" ")' --arg d "$1") || return 1
	[ -n "$line" ] || return 1
	read -r T_STATE T_IKE T_RID T_RHOST T_REQID T_SPI_IN T_SPI_OUT T_SINCE <<<"$line"
}

# mm_tunnel_up DOMAIN: status shows the tunnel up with both SPIs.
mm_tunnel_up() {
	mm_tunnel "$1" && [ "$T_STATE" = up ] && [ "$T_SPI_IN" != null ] && [ "$T_SPI_OUT" != null ]
}

# mm_tunnel_up_new DOMAIN OLD_SPI_IN: up, with another inbound SPI than OLD.
mm_tunnel_up_new() {
	mm_tunnel_up "$1" && [ "$(spi_hex "$T_SPI_IN")" != "$(spi_hex "$2")" ]
}

# is_utc TEXT: an ISO 8601 UTC time as status writes "since".
is_utc() { [[ $1 =~ ^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\.[0-9]+)?Z$ ]]; }

# mm_partner_absent DOMAIN: status answers and does not list the partner.
mm_partner_absent() {
	mm_status && [ -z "$(mm_jq '.partners[] | select(.domain == $d) | .domain' --arg d "$1")" ]
}

# mm_reqid DOMAIN: the partner's reqid (partner show).
mm_reqid() { ctl --json partner show "$1" | jq -r .reqid; }

# mm_log_has ERE: a line of mmtrustd's log matches.
mm_log_has() { grep -qE -- "$1" "$MM_LOG"; }

# charon_log_has NS ERE: a line of that charon's log matches.
charon_log_has() { grep -qE -- "$2" "$MM_TMP/charon-$1.log"; }

# --- XFRM --------------------------------------------------------------------

# spi_hex SPI: 0x%08x (for comparing SPIs written differently); "null" stays.
spi_hex() {
	case "$1" in
	null | "") echo null ;;
	*) printf '0x%08x\n' "$(($1))" ;;
	esac
}

# sa_spis NS SRC DST REQID: the SPIs (0x%08x) of the ESP SAs SRC -> DST with
# that reqid, one a line, sorted.
sa_spis() {
	local s
	for s in $(ip -n "$1" xfrm state list src "$2" dst "$3" proto esp reqid "$4" |
		awk '$1 == "proto" && $2 == "esp" && $3 == "spi" { sub(/\(.*/, "", $4); print $4 }'); do
		spi_hex "$s"
	done | sort
}

# sa_count NS REQID: ESP SAs with that reqid.
sa_count() {
	ip -n "$1" xfrm state list reqid "$2" | grep -c '^src '
}

# pol_count NS REQID: policies whose template carries that reqid.
pol_count() {
	ip -n "$1" xfrm policy list | grep -cE "reqid $2([ (]|\$)"
}

# pol_tagged NS REQID: policies with that reqid that carry mmtrust's tag
# (uid $SPD_TAG in `ip -s xfrm policy`).
pol_tagged() {
	ip -n "$1" -s xfrm policy list | awk -v r="$2" -v t="$SPD_TAG" '
		/^src / { uid = ""; for (i = 1; i < NF; i++) if ($i == "uid") uid = $(i + 1) }
		{ for (i = 1; i < NF; i++) if ($i == "reqid") { q = $(i + 1); sub(/\(.*/, "", q); if (q == r && uid == t) n++ } }
		END { print n + 0 }'
}

# no_sa NS REQID / no_pol NS REQID: none left.
no_sa() { [ "$(sa_count "$1" "$2")" -eq 0 ]; }
no_pol() { [ "$(pol_count "$1" "$2")" -eq 0 ]; }

# xfrm_monitor: `ip xfrm monitor` of $MM into $MM_TMP/xfrm-monitor.log for
# the rest of the test (to prove an SA was never installed, not only that
# none is left).
xfrm_monitor() {
	vm_spawn "$MM_TMP/xfrm-monitor.log" ip -n "$MM" xfrm monitor
	vm_keep "$MM_TMP/xfrm-monitor.log"
}

# mm_dump LABEL: XFRM state and policies of both namespaces, both charons'
# SAs and mmtrustctl status, appended to $MM_DUMP (an artifact).
mm_dump() {
	local ns
	{
		echo "===== $1 ($(date +%T))"
		for ns in "$MM" "$PEER"; do
			[ -e "/run/netns/$ns" ] || continue
			echo "--- ip -s xfrm state ($ns)"
			ip -n "$ns" -s xfrm state
			echo "--- ip -s xfrm policy ($ns)"
			ip -n "$ns" -s xfrm policy
			echo "--- swanctl --list-sas ($ns)"
			timeout 10 swan "$ns" --list-sas 2>&1
		done
		echo "--- mmtrustctl --json status"
		timeout 10 "$MMTRUSTCTL" --json status 2>&1
	} >>"$MM_DUMP" 2>&1
}

# ms_since T0: milliseconds since T0 (an ${EPOCHREALTIME/./} value).
now_us() { echo "${EPOCHREALTIME/./}"; }
ms_since() { echo $((($(now_us) - $1) / 1000)); }
secs() { printf '%d.%01d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# --- traffic -----------------------------------------------------------------

# mm_traffic TAG SRC_NS SRC DST_NS DST PORT: ping SRC -> DST and back, one
# UDP datagram each way; the receivers must be listening on PORT (files
# $MM_TMP/rx-SRC / rx-DST, see vm_udp_listen).
mm_traffic() {
	local tag=$1 ns1=$2 ip1=$3 ns2=$4 ip2=$5 port=$6
	check "$tag: ping $ip1 -> $ip2" vm_ping "$ns1" "$ip1" "$ip2" 3
	check "$tag: ping $ip2 -> $ip1" vm_ping "$ns2" "$ip2" "$ip1" 2
	vm_udp_send "$ns1" "$ip1" "$ip2" "$port" "$tag $ip1-to-$ip2"
	vm_udp_send "$ns2" "$ip2" "$ip1" "$port" "$tag $ip2-to-$ip1"
	check "$tag: UDP $ip1 -> $ip2 delivered" wait_for 10 vm_got "$MM_TMP/rx-$ip2" "$tag $ip1-to-$ip2"
	check "$tag: UDP $ip2 -> $ip1 delivered" wait_for 10 vm_got "$MM_TMP/rx-$ip1" "$tag $ip2-to-$ip1"
}

# --- a VICI client of the test's own ---------------------------------------------

# vici_call SOCKET COMMAND JSON: one VICI request (JSON object: strings,
# lists of strings, nested objects; a string "@file:PATH" is PATH's
# contents), the answer printed as JSON; fails unless it says success yes.
# For what mmtrustd must not be the only one able to do: e.g. load into our
# charon a connection mmtrustd did not make.
vici_call() {
	python3 - "$@" <<-'PY'
		import json, socket, struct, sys
		path, cmd, msg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
		def val(v):
		    if v.startswith("@file:"):
		        return open(v[6:], "rb").read()
		    return v.encode()
		def enc(d):
		    out = b""
		    for k, v in d.items():
		        kb = k.encode()
		        if isinstance(v, dict):
		            out += bytes([1, len(kb)]) + kb + enc(v) + bytes([2])
		        elif isinstance(v, list):
		            out += bytes([4, len(kb)]) + kb
		            for i in v:
		                ib = val(str(i))
		                out += bytes([5]) + struct.pack(">H", len(ib)) + ib
		            out += bytes([6])
		        else:
		            vb = val(str(v))
		            out += bytes([3, len(kb)]) + kb + struct.pack(">H", len(vb)) + vb
		    return out
		def dec(b):
		    root = {}; stack = [root]; lst = None; i = 0
		    while i < len(b):
		        t = b[i]; i += 1
		        if t in (1, 3, 4):
		            n = b[i]; name = b[i + 1:i + 1 + n].decode(); i += 1 + n
		        if t == 1:
		            new = {}; stack[-1][name] = new; stack.append(new)
		        elif t == 2:
		            stack.pop()
		        elif t in (3, 5):
		            n = struct.unpack(">H", b[i:i + 2])[0]; v = b[i + 2:i + 2 + n].decode("utf-8", "replace"); i += 2 + n
		            if t == 3: stack[-1][name] = v
		            else: lst.append(v)
		        elif t == 4:
		            lst = []; stack[-1][name] = lst
		        elif t == 6:
		            lst = None
		    return root
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.connect(path)
		body = bytes([0, len(cmd)]) + cmd.encode() + enc(msg)
		s.sendall(struct.pack(">I", len(body)) + body)
		def recv(n):
		    b = b""
		    while len(b) < n:
		        c = s.recv(n - len(b))
		        if not c: raise SystemExit("vici: connection closed")
		        b += c
		    return b
		while True:
		    n = struct.unpack(">I", recv(4))[0]
		    pkt = recv(n)
		    if pkt[0] == 1:   # CMD_RESPONSE
		        r = dec(pkt[1:]); print(json.dumps(r))
		        sys.exit(0 if r.get("success", "yes") == "yes" else 1)
		    if pkt[0] == 2:   # CMD_UNKNOWN
		        raise SystemExit("vici: unknown command " + cmd)
	PY
}
