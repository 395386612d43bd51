#!/bin/bash
# make demo: mmtrust's main job on the embedded defaults, in a throw-away
# network namespace with a temporary store.  Everything it creates (the
# namespace, the directory, the daemon) is removed on exit.
set -euo pipefail
BUILD=$(realpath "${1:-build}")
ROOT=$(realpath "$(dirname "$0")/..")

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (network namespaces); run 'sudo make demo'" >&2
	exit 1
fi

NS=mmtrust-demo-$$
TMP=$(mktemp -d /tmp/mmtrust-demo-XXXXXX)
DPID=
cleanup() {
	if [ -n "$DPID" ]; then
		kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null || true
	fi
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "A throw-away network namespace ($NS) and a temporary store ($TMP)"
ip netns add "$NS"
ip -n "$NS" link set lo up
cat >"$TMP/mmtrustd.conf" <<CONF
# The demo's configuration: everything in the temporary directory.
[daemon]
store = $TMP/mmtrust.db
admin_socket = $TMP/admin.sock
query_socket = $TMP/query.sock
[reqid]
min = 1000000
max = 1099999
[local]
cscf = 10.10.0.0/24, 2001:db8:10::/64
tunnel = 198.51.100.1, 2001:db8:ff::1
CONF
cat "$TMP/mmtrustd.conf"

step "The partners' CA certificates (made with openssl for the demo)"
for ca in ca-partner-a ca-provider-b ca-partner-c; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$TMP/$ca.key" -out "$TMP/$ca.pem" -days 365 -subj "/O=Demo/CN=$ca" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	echo "$TMP/$ca.pem: $(openssl x509 -in "$TMP/$ca.pem" -noout -subject)"
done
cp "$ROOT/examples/partners.yaml" "$TMP/partners.yaml"

step "mmtrustd in the namespace"
ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$TMP/mmtrustd.conf" \
	2>"$TMP/mmtrustd.log" &
DPID=$!
for _ in $(seq 100); do
	[ -S "$TMP/admin.sock" ] && break
	kill -0 "$DPID" 2>/dev/null || { cat "$TMP/mmtrustd.log"; exit 1; }
	sleep 0.05
done
export MMTRUST_ADMIN_SOCKET=$TMP/admin.sock
CTL="$BUILD/mmtrustctl"
cat "$TMP/mmtrustd.log"

step "Provision the example partners from examples/partners.yaml"
run "$CTL" apply --dry-run "$TMP/partners.yaml"
run "$CTL" apply "$TMP/partners.yaml"

step "A refused change names the field and changes nothing"
run "$CTL" partner add rogue.example --kind ims --agreement yes \
	--range 192.0.2.128/25 --gateway 198.51.100.99 --ca "$TMP/ca-partner-a.pem" || true

step "The partner table"
run "$CTL" partner list
run "$CTL" partner show ims.partner-a.example

step "Which partner does an address belong to?"
run "$CTL" lookup 192.0.2.10
run "$CTL" lookup 2001:db8:b::5060
run "$CTL" lookup 198.51.100.1
run "$CTL" --json lookup 203.0.113.7

step "The kernel's SPD in the namespace: what mmtrustd programmed (ip -s xfrm policy)"
ip netns exec "$NS" ip -s xfrm policy | sed -n '1,24p'
echo "... $(ip netns exec "$NS" ip xfrm policy | grep -c '^src') policies in all"
run "$CTL" status

step "Drift: someone deletes one of our policies by hand; mmtrustd restores it"
idx=$(ip netns exec "$NS" ip -s xfrm policy list dir out |
	awk '{ for (i = 1; i < NF; i++) if ($i == "index") { print $(i + 1); exit } }')
run ip netns exec "$NS" ip xfrm policy delete index "$idx" dir out
for _ in $(seq 40); do
	"$CTL" --json status | grep -q '"missing": 0' && ! "$CTL" status | grep -q missing && break
	sleep 0.05
done
grep drift "$TMP/mmtrustd.log" | tail -n 1
run "$CTL" status

step "A policy of another program is left alone, and audit tells whose is what"
run ip netns exec "$NS" ip xfrm policy add src 10.10.0.0/24 dst 198.18.0.0/15 dir out \
	priority 5000 tmpl src 198.51.100.1 dst 198.18.0.1 proto esp reqid 42 mode tunnel
"$CTL" audit | grep -B3 -A0 '# ' | sed -n '1,12p'
echo "..."
"$CTL" audit | grep -B3 '# other'

step "A CSCF asks (query socket, libmmtrust): keep or strip P-Asserted-Identity?"
export MMTRUST_QUERY_SOCKET=$TMP/query.sock
echo "# no charon runs in this demo, so no tunnel is up: a tunnel partner's"
echo "# messages are 'unprotected' (the VM tier shows the protected case)."
echo "# --dst is the local address the message arrived on (Kamailio's \$Ri):"
echo "# protected is only ever said for a pair the kernel's in-policy covers"
run "$CTL" query inbound 192.0.2.10 --dst 10.10.0.5
run "$CTL" query inbound 203.0.113.7 --dst 10.10.0.5
run "$CTL" query inbound 198.18.0.20 --dst 10.10.0.5
run "$CTL" query inbound 100.64.1.1 --dst 10.10.0.5
run "$CTL" query inbound ::ffff:192.0.2.10 --dst 198.51.100.1
run "$CTL" query outbound ims.partner-c.example
run "$CTL" query outbound sip.provider-b.example
run "$CTL" --json query inbound 198.18.0.20 --dst 10.10.0.5

step "The audit trail"
run "$CTL" log

step "export then apply changes nothing"
"$CTL" export >"$TMP/exported.yaml"
run "$CTL" apply "$TMP/exported.yaml"

step "Disable a partner: its policies (and any SAs with its reqid) go"
run "$CTL" partner set sip.provider-b.example --disable
run "$CTL" status

step "Stop (policies stay: a restart must not open a gap; the namespace goes)"
kill -TERM "$DPID"
wait "$DPID" || true
DPID=
tail -n 3 "$TMP/mmtrustd.log"
echo
echo "demo: done; namespace $NS and $TMP removed"
