#!/bin/bash
# Addresses have one meaning in every spelling, and nonsense never reaches
# the kernel (docs/admin-protocol.md, "Addresses").  Against the real
# daemon: IPv4-mapped IPv6 in lookup, inbound, outbound, ranges (overlap
# check), gateways and list edits; every refused range and gateway named
# with field and reason and changing nothing (table, store, kernel SPD);
# the [local] settings checked against the stored table at start and at
# reload (a refused reload keeps the old settings).
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup addr
chmod 755 "$MM_TMP"

CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
export MMTRUST_QUERY_SOCKET=$MM_TMP/query.sock
# write_conf CSCF: the configuration with that [local] cscf list.
write_conf() {
	cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $MM_TMP/query.sock
[reqid]
min = 7000
max = 7099
[local]
cscf = $1
tunnel = 198.51.100.1, 2001:db8:ff::1
CONF
}
write_conf "10.10.0.0/24, 2001:db8:10::/64"
start_daemon() { mm_start_daemon 5 "$MM_TMP/admin.sock" answer; }

make_ca "$MM_TMP" ca
start_daemon

add() { "$CTL" partner add "$@" --kind ims --agreement yes --ca "$MM_TMP/ca.pem"; }
expect_exit 0 "add partner A" add a.example --range 192.0.2.0/24 --range 2001:db8:a::/48 \
	--gateway 198.51.100.10

# --- IPv4-mapped IPv6 means the IPv4 address
expect_exit 0 "lookup mapped" "$CTL" --json lookup ::ffff:192.0.2.10
check "lookup ::ffff:192.0.2.10 finds A" test "$(jq -r .partner <<<"$OUT")" = a.example
check "lookup answers in IPv4 form" test "$(jq -r .address <<<"$OUT")" = 192.0.2.10
expect_exit 0 "lookup mapped, hex form" "$CTL" --json lookup 0:0:0:0:0:ffff:c000:20a
check "lookup ::ffff:c000:20a finds A" test "$(jq -r .partner <<<"$OUT")" = a.example
expect_exit 0 "inbound v4" "$CTL" --json query inbound 192.0.2.10
v4=$(jq -c '{partner, pai, reason}' <<<"$OUT")
expect_exit 0 "inbound mapped" "$CTL" --json query inbound ::ffff:192.0.2.10
check "inbound answers alike in both spellings ($v4)" \
	test "$(jq -c '{partner, pai, reason}' <<<"$OUT")" = "$v4"
contains "$v4" "a.example" "inbound names the partner"
expect_exit 0 "outbound to mapped dst" "$CTL" --json query outbound --dst ::ffff:192.0.2.10
contains "$OUT" "a.example" "outbound to a mapped address names the partner"

"$CTL" export >"$MM_TMP/before.yaml"
sqlite3 "$MM_TMP/store.db" 'SELECT * FROM partners ORDER BY domain' >"$MM_TMP/before.rows"
ip -n "$NS" xfrm policy >"$MM_TMP/before.spd"
# refuse WHAT FIELD REASON ARGS...: mmtrustctl ARGS exits 1 naming FIELD and REASON.
refuse() {
	local what=$1 field=$2 reason=$3
	shift 3
	expect_exit 1 "$what: refused" "$CTL" "$@"
	contains "$ERR" "$field" "$what: names $field"
	contains "$ERR" "$reason" "$what: says '$reason'"
}
refuse "mapped range overlapping A" "ranges[0]" "overlaps 192.0.2.0/24 of partner a.example" \
	partner add b.example --kind ims --agreement no --range ::ffff:192.0.2.0/120 \
	--gateway 198.51.100.20 --ca "$MM_TMP/ca.pem"
contains "$ERR" "b.example" "mapped overlap names the new partner too"

# --- ranges that are not a partner's
bad_range() { refuse "range $1" "ranges[0]" "$2" partner add b.example --kind ims --agreement no \
	--range "$1" --gateway 198.51.100.20 --ca "$MM_TMP/ca.pem"; }
bad_range 0.0.0.0/0 "every IPv4 address"
bad_range ::/0 "every IPv6 address"
bad_range ::ffff:0:0/96 "every IPv4 address"
bad_range ::/64 "IPv4-mapped"
bad_range 127.0.0.0/8 loopback
bad_range ::1/128 loopback
bad_range 0.0.0.0/8 unspecified
bad_range 224.0.0.0/4 multicast
bad_range ff02::/16 multicast
bad_range 169.254.0.0/16 link-local
bad_range fe80::/64 link-local
bad_range 255.255.255.255 broadcast
bad_range 192.0.0.0/8 "overlaps 192.0.2.0/24 of partner a.example"
bad_range 198.18.0.0/024 "leading zero"
# ... and ours
bad_range 10.10.0.0/24 "[local] cscf prefix 10.10.0.0/24"
bad_range 10.10.0.128/25 "[local] cscf prefix 10.10.0.0/24"
bad_range 10.0.0.0/8 "[local] cscf prefix 10.10.0.0/24"
bad_range ::ffff:10.10.0.0/120 "[local] cscf prefix 10.10.0.0/24"
bad_range 2001:db8:10::/48 "[local] cscf prefix 2001:db8:10::/64"
bad_range 198.51.100.0/30 "tunnel address 198.51.100.1"
bad_range 198.51.100.8/29 "gateway 198.51.100.10 of partner a.example"

# --- gateways that are not a partner's
bad_gw() { refuse "gateway $1" "gateways[0]" "$2" partner add b.example --kind ims \
	--agreement no --range 198.18.0.0/24 --gateway "$1" --ca "$MM_TMP/ca.pem"; }
bad_gw 0.0.0.0 unspecified
bad_gw :: unspecified
bad_gw 224.0.0.1 multicast
bad_gw ff02::1 multicast
bad_gw 255.255.255.255 broadcast
bad_gw 127.0.0.1 loopback
bad_gw ::1 loopback
bad_gw 169.254.1.1 link-local
bad_gw fe80::1 link-local
bad_gw 198.51.100.1 "tunnel address"
bad_gw ::ffff:198.51.100.1 "tunnel address"
bad_gw 2001:db8:ff::1 "tunnel address"
bad_gw 10.10.0.5 "[local] cscf prefix 10.10.0.0/24"
bad_gw 192.0.2.77 "192.0.2.0/24 of partner a.example"
bad_gw ::ffff:192.0.2.77 "192.0.2.0/24 of partner a.example"
refuse "mapped gateway listed twice" "gateways[1]" "listed twice" partner add b.example \
	--kind ims --agreement no --range 198.18.0.0/24 --gateway 198.51.100.20 \
	--gateway ::ffff:198.51.100.20 --ca "$MM_TMP/ca.pem"
refuse "set: a range over our cscf prefix" "ranges" "[local] cscf" \
	partner set a.example --add-range 10.10.0.0/16
cat >"$MM_TMP/bad.yaml" <<YAML
partners:
  - domain: a.example
    kind: ims
    agreement: true
    ranges: [192.0.2.0/24, "2001:db8:a::/48", 198.51.100.0/24]
    gateways: [198.51.100.10]
    ca_file: ca.pem
YAML
refuse "apply: range holding the tunnel address" "ranges" "tunnel address 198.51.100.1" \
	apply "$MM_TMP/bad.yaml"
check "refusals left the table unchanged" cmp -s "$MM_TMP/before.yaml" <("$CTL" export)
sqlite3 "$MM_TMP/store.db" 'SELECT * FROM partners ORDER BY domain' >"$MM_TMP/after.rows"
check "refusals left the store unchanged" cmp -s "$MM_TMP/before.rows" "$MM_TMP/after.rows"
check "refusals left the kernel SPD unchanged" cmp -s "$MM_TMP/before.spd" \
	<(ip -n "$NS" xfrm policy)

# --- accepted spellings, stored canonical
expect_exit 0 "mapped range and gateway accepted" add b.example \
	--range ::ffff:198.18.0.0/120 --gateway ::ffff:198.51.100.20
expect_exit 0 "show B" "$CTL" --json partner show b.example
check "mapped range stored as IPv4" test "$(jq -c .ranges <<<"$OUT")" = '["198.18.0.0/24"]'
check "mapped gateway stored as IPv4" test "$(jq -c .gateways <<<"$OUT")" = '["198.51.100.20"]'
expect_exit 0 "lookup inside B" "$CTL" --json lookup 198.18.0.5
check "B owns 198.18.0.5" test "$(jq -r .partner <<<"$OUT")" = b.example
expect_exit 0 "bare address is a host range" "$CTL" partner set b.example --add-range 198.18.1.7
expect_exit 0 "del-range in mapped spelling" "$CTL" partner set b.example \
	--del-range ::ffff:198.18.1.7/128
expect_exit 0 "show B" "$CTL" --json partner show b.example
check "B's ranges after add and mapped del" test "$(jq -c .ranges <<<"$OUT")" = '["198.18.0.0/24"]'
# The partner's own gateway inside its own range is allowed (host-to-host).
expect_exit 0 "gateway inside the partner's own range" add c.example --range 203.0.113.10/32 \
	--gateway 203.0.113.10

# --- [local] against the stored table: reload and start
write_conf "10.10.0.0/24, 192.0.2.0/25"
kill -HUP "$DPID"
wait_for 5 grep -q "reload refused" "$MM_TMP/daemon.log" || fail "reload was not refused"
contains "$(grep "reload refused" "$MM_TMP/daemon.log")" \
	"192.0.2.0/24 of partner a.example overlaps our own [local] cscf prefix 192.0.2.0/25" \
	"refused reload names partner, range and setting"
refuse "old [local] kept after a refused reload" "ranges" "[local] cscf prefix 10.10.0.0/24" \
	partner set c.example --add-range 10.10.0.0/28
expect_exit 0 "daemon answers after the refused reload" "$CTL" lookup 192.0.2.1
kill -TERM "$DPID"
wait "$DPID"
DPID=
expect_exit 1 "start refused: [local] cscf overlaps a partner" \
	timeout 10 ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf"
contains "$ERR" "ranges[0]: 192.0.2.0/24 of partner a.example overlaps our own [local] cscf" \
	"start refusal names partner, field and reason"
write_conf "10.10.0.0/24"
sqlite3 "$MM_TMP/store.db" "UPDATE partners SET gateways = '[\"0.0.0.0\"]' WHERE domain = 'c.example'"
expect_exit 1 "start refused: a stored unspecified gateway" \
	timeout 10 ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf"
contains "$ERR" "gateways[0]: 0.0.0.0 of partner c.example is unspecified" \
	"stored nonsense refused with partner, field and reason"
check "no daemon left running" test -z "$(ip netns pids "$NS")"

summary test_addresses
