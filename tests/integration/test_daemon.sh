#!/bin/bash
# mmtrustd and mmtrustctl together: provisioning, refusals that change
# nothing, restart with the table and audit trail intact, export/apply
# round trip, SIGHUP, exit codes, admin socket permissions.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup it
chmod 755 "$MM_TMP"

CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $MM_TMP/query.sock
[reqid]
min = 7000
max = 7009
CONF

start_daemon() { mm_start_daemon 5 "$MM_TMP/admin.sock"; }
stop_daemon() {
	kill -TERM "$DPID"
	wait "$DPID"
	local rc=$?
	DPID=
	[ $rc -eq 0 ] && pass "daemon stops cleanly on SIGTERM" || fail "daemon exit $rc on SIGTERM"
}

make_ca "$MM_TMP" ca-a
make_ca "$MM_TMP" ca-b
make_leaf "$MM_TMP" leaf

# --- no daemon: exit 3
expect_exit 3 "no daemon: exit 3" "$CTL" partner list
contains "$ERR" "cannot reach mmtrustd" "no daemon: says so"

# --- check-config
expect_exit 0 "mmtrustd --check-config" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/mmtrustd.conf"
printf '[daemon]\nstroe = /x\n' >"$MM_TMP/bad.conf"
expect_exit 1 "misspelt config key refused" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/bad.conf"
contains "$ERR" "daemon.stroe" "config error names the key"
printf '[ike]\nenabled = yes\ncertificate = /x.pem\nprivate_key = /x.key\n' >"$MM_TMP/notunnel.conf"
expect_exit 1 "[ike] without a tunnel address refused" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/notunnel.conf"
contains "$ERR" "local.tunnel" "the refusal names [local] tunnel"
printf '[local]\ncscf = 10.0.0.0/24\ncscf = 10.1.0.0/24\n' >"$MM_TMP/dup.conf"
expect_exit 1 "a key given twice refused" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/dup.conf"
contains "$ERR" "local.cscf: set twice, on lines 2 and 3" "the refusal names the key and both lines"
printf '[local]\ncscf = 10.0.0.0/24,\n  10.1.0.0/24\n' >"$MM_TMP/cont.conf"
expect_exit 1 "a value continued on an indented line refused" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/cont.conf"
contains "$ERR" "line 3" "the refusal names the continued line"
printf '[spd]\npriority_base = 4294967100\n' >"$MM_TMP/wrap.conf"
expect_exit 1 "a priority band that wraps refused by --check-config" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/wrap.conf"
contains "$ERR" "spd.priority_base" "the refusal names priority_base"
printf '[query]\nmax_clients = 0\n' >"$MM_TMP/maxc.conf"
expect_exit 1 "max_clients = 0 refused by --check-config" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/maxc.conf"
contains "$ERR" "query.max_clients" "the refusal names max_clients"
# libinih reads 199 bytes a line: the tail of a longer comment was taken as
# a setting of its own (found by tests/fuzz/fuzz_config.c).
{ printf '[spd]\n;'; printf 'x%.0s' $(seq 198); printf 'enabled = no\n'; } >"$MM_TMP/long.conf"
expect_exit 1 "a line longer than 198 characters refused" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/long.conf"
contains "$ERR" "line 2: longer than 198 characters" "the refusal names the long line"
# [local] CSCF prefixes per kind of peer (cscf: both; cscf_ims, cscf_non_ims)
check_config() {  # WANT-EXIT WHAT CONFIG-TEXT: --check-config on a file holding the text
	printf '%b' "$3" >"$MM_TMP/kinds.conf"
	expect_exit "$1" "$2" ip netns exec "$NS" "$BUILD/mmtrustd" --check-config -c "$MM_TMP/kinds.conf"
}
check_config 0 "cscf, cscf_ims and cscf_non_ims accepted" \
	'[local]\ncscf = 10.0.0.0/24\ncscf_ims = 10.0.1.0/24, 2001:db8:1::/64\ncscf_non_ims = 10.0.2.0/24\n'
contains "$OUT" "cscf 10.0.0.0/24" "--check-config lists the shared prefix"
contains "$OUT" "cscf_ims 2001:db8:1::/64" "--check-config lists an IMS-facing prefix"
contains "$OUT" "cscf_non_ims 10.0.2.0/24" "--check-config lists the non-IMS-facing prefix"
check "each prefix listed once" test "$(grep -c '^cscf' <<<"$OUT")" = 4
check_config 1 "IMS and non-IMS prefixes that overlap refused" \
	'[local]\ncscf_ims = 10.0.1.0/24\ncscf_non_ims = 10.0.1.128/25\n'
contains "$ERR" "local.cscf_non_ims" "the refusal names the key"
contains "$ERR" "10.0.1.128/25 overlaps 10.0.1.0/24 (cscf_ims)" "the refusal names both prefixes and the other key"
check_config 1 "an IMS prefix inside a shared one refused" '[local]\ncscf = 10.0.0.0/16\ncscf_ims = 10.0.1.0/24\n'
contains "$ERR" "10.0.1.0/24 overlaps 10.0.0.0/16 (cscf)" "the refusal names the shared prefix"
check_config 1 "a shared prefix around a non-IMS one refused (either order)" \
	'[local]\ncscf_non_ims = 2001:db8:2::/64\ncscf = 2001:db8::/32\n'
contains "$ERR" "local.cscf:" "the refusal names the later key"
check_config 0 "nested prefixes under one key accepted (as for cscf)" '[local]\ncscf_ims = 10.0.1.0/24, 10.0.1.0/25\n'
check_config 1 "cscf_ims given twice refused" '[local]\ncscf_ims = 10.0.1.0/24\ncscf_ims = 10.0.3.0/24\n'
contains "$ERR" "local.cscf_ims: set twice" "the refusal names cscf_ims"
check_config 1 "a bad cscf_non_ims prefix refused" '[local]\ncscf_non_ims = 10.0.2.0/33\n'
contains "$ERR" "local.cscf_non_ims" "the refusal names cscf_non_ims"
# 22 distinct /16s a key: 66 prefixes, each line under 199 characters
check_config 1 "more than 64 CSCF prefixes over the three keys refused" \
	"[local]\ncscf = $(printf '%x::/16,' $(seq 1 22))\ncscf_ims = $(printf '%x::/16,' $(seq 33 54))\ncscf_non_ims = $(printf '%x::/16,' $(seq 65 86))\n"
contains "$ERR" "more than 64 prefixes in cscf, cscf_ims and cscf_non_ims together" "the refusal says the limit is shared"

start_daemon

# --- provisioning
expect_exit 0 "add ims partner" "$CTL" partner add ims.partner-a.example --kind ims \
	--agreement yes --range 192.0.2.0/24 --range 2001:db8:a::/48 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
contains "$OUT" "reqid 7000" "first reqid from the configured range"
expect_exit 0 "add non-ims partner" "$CTL" partner add SIP.Provider-B.example. --kind non-ims \
	--agreement no --range 203.0.113.0/25 --gateway 198.51.100.20 \
	--gateway 2001:db8:ff::20 --ca "$MM_TMP/ca-b.pem" --esp integrity-only
expect_exit 0 "list --json" "$CTL" --json partner list
check "list has two partners" test "$(jq '.partners | length' <<<"$OUT")" = 2
check "domain stored canonical" test "$(jq -r '.partners[1].domain' <<<"$OUT")" = sip.provider-b.example
check "reqid of B is 7001" test "$(jq '.partners[1].reqid' <<<"$OUT")" = 7001
fp=$(openssl x509 -in "$MM_TMP/ca-a.pem" -noout -fingerprint -sha256 | cut -d= -f2)
check "CA fingerprint stored and shown" test "$(jq -r '.partners[0].ca_sha256' <<<"$OUT")" = "$fp"

expect_exit 0 "lookup inside A" "$CTL" lookup 192.0.2.77
contains "$OUT" "ims.partner-a.example" "lookup names partner A"
expect_exit 0 "lookup v6 --json" "$CTL" lookup 2001:db8:a:ffff::1 --json
check "v6 lookup finds A" test "$(jq -r .partner <<<"$OUT")" = ims.partner-a.example
expect_exit 0 "lookup outside" "$CTL" --json lookup 198.51.100.1
check "no partner is null" test "$(jq -r .partner <<<"$OUT")" = null
expect_exit 1 "lookup of a non-address refused" "$CTL" lookup 300.1.1.1
contains "$ERR" "address" "lookup error names the field"

# --- refusals change nothing
"$CTL" export >"$MM_TMP/before.yaml"
sqlite3 "$MM_TMP/store.db" 'SELECT * FROM partners ORDER BY domain' >"$MM_TMP/before.rows"
refuse() {
	local what=$1 field=$2
	shift 2
	expect_exit 1 "$what: refused" "$CTL" "$@"
	contains "$ERR" "$field" "$what: names $field"
}
refuse "overlap" "ranges[0]" partner add c.example --kind ims --agreement no \
	--range 192.0.2.128/25 --gateway 198.51.100.30 --ca "$MM_TMP/ca-a.pem"
contains "$ERR" "overlaps 192.0.2.0/24 of partner ims.partner-a.example" "overlap names both"
refuse "host bits" "ranges[0]" partner add c.example --kind ims --agreement no \
	--range 198.18.0.1/24 --gateway 198.51.100.30 --ca "$MM_TMP/ca-a.pem"
refuse "leaf as CA" "ca" partner add c.example --kind ims --agreement no \
	--range 198.18.0.0/24 --gateway 198.51.100.30 --ca "$MM_TMP/leaf.pem"
refuse "bad kind" "kind" partner add c.example --kind pstn --agreement no \
	--range 198.18.0.0/24 --gateway 198.51.100.30 --ca "$MM_TMP/ca-a.pem"
refuse "bad gateway" "gateways[0]" partner add c.example --kind ims --agreement no \
	--range 198.18.0.0/24 --gateway gw.example --ca "$MM_TMP/ca-a.pem"
refuse "duplicate" "domain" partner add IMS.partner-a.example --kind ims --agreement no \
	--range 198.18.0.0/24 --gateway 198.51.100.30 --ca "$MM_TMP/ca-a.pem"
refuse "set unknown partner" "domain" partner set nobody.example --agreement yes
refuse "set overlap" "ranges" partner set sip.provider-b.example --add-range 192.0.2.0/28
# A flag that is not a JSON boolean is refused, never read as false
# ("dry_run": "yes" once deleted for real).
raw_admin() {
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n"); print(s.makefile().readline(), end="")' \
		"$MM_TMP/admin.sock" "$1"
}
OUT=$(raw_admin '{"op": "partner.del", "domain": "sip.provider-b.example", "dry_run": "yes"}')
check "dry_run \"yes\" refused, naming dry_run" \
	test "$(jq -r '.ok, .error.field' <<<"$OUT" | tr '\n' ' ')" = "false dry_run "
OUT=$(raw_admin '{"op": "apply", "partners": [], "dry_run": 1}')
check "apply with dry_run 1 refused" test "$(jq -r .error.field <<<"$OUT")" = dry_run
OUT=$(raw_admin '{"op": "partner.list", "config": "yes"}')
check "partner.list config \"yes\" refused" test "$(jq -r .error.field <<<"$OUT")" = config
OUT=$(raw_admin '{"op": "log", "domain": 5}')
check "log with a domain that is not a string refused" \
	test "$(jq -r .error.field <<<"$OUT")" = domain
OUT=$(raw_admin '{"op": "status", "domain": ["x"]}')
check "status with a domain that is not a string refused" \
	test "$(jq -r .error.field <<<"$OUT")" = domain
"$CTL" export >"$MM_TMP/after.yaml"
sqlite3 "$MM_TMP/store.db" 'SELECT * FROM partners ORDER BY domain' >"$MM_TMP/after.rows"
check "refusals left the table unchanged" cmp -s "$MM_TMP/before.yaml" "$MM_TMP/after.yaml"
check "refusals left the store rows unchanged" cmp -s "$MM_TMP/before.rows" "$MM_TMP/after.rows"

# --- usage errors: exit 2
expect_exit 2 "unknown command" "$CTL" frobnicate
expect_exit 2 "missing domain" "$CTL" partner add
expect_exit 2 "bad --agreement" "$CTL" partner add x.example --agreement maybe
expect_exit 0 "--help on a command" "$CTL" partner add --help
contains "$OUT" "--agreement" "add --help documents the fields"
for c in "partner set" "partner del" "partner show" "partner list" apply export lookup log; do
	expect_exit 0 "$c --help" "$CTL" $c --help
done

# --- set, dry run, del
expect_exit 0 "set --dry-run" "$CTL" partner set sip.provider-b.example --agreement yes --dry-run
contains "$OUT" "dry run" "dry run says nothing was applied"
expect_exit 0 "show after dry run" "$CTL" --json partner show sip.provider-b.example
check "dry run changed nothing" test "$(jq .agreement <<<"$OUT")" = false
expect_exit 0 "set agreement" "$CTL" partner set sip.provider-b.example --agreement yes --add-range 203.0.113.128/25
contains "$OUT" "agreement: no -> yes" "set shows the change"

# --- export / apply round trip
"$CTL" export -o "$MM_TMP/table.yaml"
expect_exit 0 "apply of the export" "$CTL" apply "$MM_TMP/table.yaml"
contains "$OUT" "no changes" "export then apply is a no-op"
audit_before=$("$CTL" --json log --kind change | jq '.entries | length')

# an edited file: remove B, add C, change A
cat >"$MM_TMP/c.yaml" <<YAML
partners:
  - domain: ims.partner-a.example
    kind: ims
    agreement: false
    ranges: [192.0.2.0/24, "2001:db8:a::/48"]
    gateways: [198.51.100.10]
    ca_file: ca-a.pem
  - domain: c.example
    kind: ims
    agreement: yes
    ranges: [198.18.0.0/24]
    gateways: [198.51.100.30]
    path: seg
    ca_file: ca-b.pem
YAML
expect_exit 0 "apply --dry-run" "$CTL" apply --dry-run "$MM_TMP/c.yaml"
contains "$OUT" "+ c.example: add" "dry run shows the add"
contains "$OUT" "- sip.provider-b.example: delete" "dry run shows the delete"
contains "$OUT" "agreement: yes -> no" "dry run shows the change"
check "dry run applied nothing" cmp -s <("$CTL" export) "$MM_TMP/table.yaml"
cp "$MM_TMP/c.yaml" "$MM_TMP/c-bad.yaml"
sed -i 's/198.18.0.0\/24/192.0.2.64\/26/' "$MM_TMP/c-bad.yaml"
expect_exit 1 "apply with an overlap" "$CTL" apply "$MM_TMP/c-bad.yaml"
contains "$ERR" "overlaps" "apply refusal names the overlap"
check "refused apply changed nothing" cmp -s <("$CTL" export) "$MM_TMP/table.yaml"
expect_exit 0 "apply" "$CTL" --json apply "$MM_TMP/c.yaml"
check "apply reports 3 changes" test "$(jq '.changes | length' <<<"$OUT")" = 3
check "c.example gets a fresh reqid (B's 7001 is not reused)" \
	test "$(jq '.changes[] | select(.domain=="c.example") | .after.reqid' <<<"$OUT")" = 7002
check "one transaction: one txn number for the apply" \
	test "$("$CTL" --json log --kind change -n 3 | jq '[.entries[].txn] | unique | length')" = 1

# --- restart: table and audit trail intact
"$CTL" --json partner list | jq -S .partners >"$MM_TMP/list-before.json"
"$CTL" --json log --kind change >"$MM_TMP/log-before.json"
stop_daemon
start_daemon
"$CTL" --json partner list | jq -S .partners >"$MM_TMP/list-after.json"
check "table intact across restart" cmp -s "$MM_TMP/list-before.json" "$MM_TMP/list-after.json"
check "audit trail intact across restart" cmp -s "$MM_TMP/log-before.json" <("$CTL" --json log --kind change)
check "audit trail has every change" test "$(jq '.entries | length' "$MM_TMP/log-before.json")" -eq $((audit_before + 3))
check "audit names the user" test "$(jq -r '.entries[0].user' "$MM_TMP/log-before.json")" = root
expect_exit 0 "log --domain" "$CTL" --json log --kind change --domain sip.provider-b.example
check "B has add, set, del" test "$(jq -c '[.entries[].action]' <<<"$OUT")" = '["add","set","del"]'

# --- SIGHUP: re-reads the store (a change made by another writer shows up)
sqlite3 "$MM_TMP/store.db" "UPDATE partners SET enabled = 0 WHERE domain = 'c.example'"
kill -HUP "$DPID"
check "SIGHUP reloaded the store" wait_for 5 sh -c \
	"'$CTL' --json partner show c.example | jq -e '.enabled == false' >/dev/null"
check "daemon still running after SIGHUP" kill -0 "$DPID"

# --- permissions: a user outside root and the admin group cannot connect
if id nobody >/dev/null 2>&1; then
	expect_exit 3 "nobody cannot use the admin socket" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$CTL" partner list
	stat -c %a "$MM_TMP/admin.sock" | grep -qx 600 && pass "admin socket is 0600" ||
		fail "admin socket mode $(stat -c %a "$MM_TMP/admin.sock")"
	stop_daemon
	sed -i '/^\[daemon\]/a admin_group = nogroup' "$MM_TMP/mmtrustd.conf"
	start_daemon
	expect_exit 0 "a member of the admin group can provision" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$CTL" partner set c.example --enable
	expect_exit 0 "log after group change" "$CTL" --json log --kind change -n 1
	check "audit records the group member's uid" \
		test "$(jq '.entries[0].uid' <<<"$OUT")" = "$(id -u nobody)"
fi

stop_daemon
summary "test_daemon"
