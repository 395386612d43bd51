#!/bin/bash
# The shrink guard: a start, a reload or an apply that would delete more
# than [spd] shrink_limit percent of the kernel policies mmtrustd holds is
# refused, changes nothing (kernel, table, store), and says how to go
# ahead; confirmed (--allow-shrink), it goes ahead.  Single-partner
# commands are not guarded.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup shrink
CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/run/admin.sock
# conf STORE [LIMIT]: the configuration, with shrink_limit LIMIT if given.
conf() {
	cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $1
admin_socket = $MM_TMP/run/admin.sock
query_socket = $MM_TMP/run/query.sock
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
[reqid]
min = 7000
max = 7099
[spd]
${2:+shrink_limit = $2}
CONF
}
conf "$MM_TMP/a.db"
make_ca "$MM_TMP" ca
ours() { ip -n "$NS" -s xfrm policy | grep -c 'uid 1835889778' || true; }
policies() { ip -n "$NS" -s xfrm policy | grep -v 'use\|add 20\|lifetime\|limit\|bytes' | sort; }
# table FILE DOMAIN...: a table file with these partners (pN.example,
# range 192.0.N.0/24); ENABLED=false disables them.
table() {
	local f=$1 n
	shift
	echo "partners:" >"$f"
	for n in "$@"; do
		cat >>"$f" <<YAML
  - domain: p$n.example
    kind: ims
    agreement: true
    ranges: [192.0.$n.0/24]
    gateways: [203.0.113.$n]
    ca_file: ca.pem
    enabled: ${ENABLED:-true}
YAML
	done
}
# unchanged WHAT: kernel, table and store are as in the last snapshot.
snap() {
	S_POL=$(policies)
	S_TAB=$("$CTL" --json partner list | jq -c '[.partners[] | {domain, enabled}]')
	S_DB=$(sqlite3 "$STORE" 'SELECT domain, enabled FROM partners ORDER BY domain')
}
unchanged() {
	check "$1: the kernel's policies are unchanged" test "$(policies)" = "$S_POL"
	check "$1: the table is unchanged" \
		test "$("$CTL" --json partner list | jq -c '[.partners[] | {domain, enabled}]')" = "$S_TAB"
	check "$1: the store is unchanged" \
		test "$(sqlite3 "$STORE" 'SELECT domain, enabled FROM partners ORDER BY domain')" = "$S_DB"
}
STORE=$MM_TMP/a.db

mm_start_daemon 5 "$MMTRUST_ADMIN_SOCKET" answer
table "$MM_TMP/t4.yaml" 1 2 3 4
check "four partners" "$CTL" apply "$MM_TMP/t4.yaml"
wait_for 5 test "$(ours)" -eq 8 || fail "four partners' policies were not programmed ($(ours))"

# --- apply
table "$MM_TMP/t1.yaml" 1
snap
expect_exit 1 "apply: a table that deletes 6 of 8 policies is refused" "$CTL" apply "$MM_TMP/t1.yaml"
contains "$ERR" "spd.shrink_limit" "apply: the refusal names spd.shrink_limit"
contains "$ERR" "6 of the 8" "apply: the refusal says how many"
contains "$ERR" "--allow-shrink" "apply: the refusal says how to confirm"
unchanged "apply refused"
expect_exit 1 "apply --dry-run: refused the same way" "$CTL" apply --dry-run "$MM_TMP/t1.yaml"
contains "$ERR" "spd.shrink_limit" "apply --dry-run: names the guard"
ENABLED=false table "$MM_TMP/t4off.yaml" 1 2 3 4
expect_exit 1 "apply: disabling every partner is refused too" "$CTL" apply "$MM_TMP/t4off.yaml"
unchanged "apply of disabled partners refused"
# Foreign policies are not ours and do not count.
for i in 1 2 3 4 5 6 7 8 9; do
	ip -n "$NS" xfrm policy add src 10.99.$i.0/24 dst 10.98.0.0/24 dir out priority 5000 \
		tmpl src 198.51.100.9 dst 203.0.113.99 proto esp reqid 99 mode tunnel
done
table "$MM_TMP/t2.yaml" 1 2
expect_exit 0 "apply: deleting exactly half (4 of 8) is allowed" "$CTL" apply "$MM_TMP/t2.yaml"
wait_for 5 test "$(ours)" -eq 4 || fail "two partners' policies were not removed ($(ours))"
check "foreign policies are untouched" test "$(ip -n "$NS" xfrm policy | grep -c 'reqid 99 ')" -eq 9
check "restore four partners" "$CTL" apply "$MM_TMP/t4.yaml"
wait_for 5 test "$(ours)" -eq 8 || fail "four partners again ($(ours))"
expect_exit 0 "apply --allow-shrink: confirmed" "$CTL" apply --allow-shrink "$MM_TMP/t1.yaml"
wait_for 5 test "$(ours)" -eq 2 || fail "the confirmed apply did not remove the policies ($(ours))"
contains "$("$CTL" partner list)" "p1.example" "the confirmed apply kept p1"
check "single-partner delete is not guarded (the last partner)" "$CTL" partner del p1.example
wait_for 5 test "$(ours)" -eq 0 || fail "the last partner's policies are still there"
check "restore four partners" "$CTL" apply "$MM_TMP/t4.yaml"
wait_for 5 test "$(ours)" -eq 8 || fail "four partners again ($(ours))"

# --- a new [local] cscf replaces every selector, but every partner keeps
# its policies: no enforcement is taken away, so the guard lets it pass
sed -i 's|^cscf = .*|cscf = 10.30.0.0/24|' "$MM_TMP/mmtrustd.conf"
check "a reload onto another cscf prefix is not refused" "$CTL" reload
moved() { ip -n "$NS" xfrm policy | grep -q 'src 10.30.0.0/24' && ! ip -n "$NS" xfrm policy | grep -q '10.10.0.0/24'; }
wait_for 5 moved || fail "the policies did not move to the new cscf prefix"
check "still 8 policies of ours" test "$(ours)" -eq 8
sed -i 's|^cscf = .*|cscf = 10.10.0.0/24|' "$MM_TMP/mmtrustd.conf"
check "and back" "$CTL" reload

# --- reload onto another store with one partner
sqlite3 "$MM_TMP/a.db" ".backup '$MM_TMP/b.db'"
sqlite3 "$MM_TMP/b.db" "DELETE FROM partners WHERE domain != 'p1.example'"
conf "$MM_TMP/b.db"
snap
: >"$MM_TMP/daemon.log"
kill -HUP "$DPID"
wait_for 5 grep -q "reload refused" "$MM_TMP/daemon.log" || fail "SIGHUP: no refusal logged"
contains "$(cat "$MM_TMP/daemon.log")" "mmtrustctl reload --allow-shrink" \
	"SIGHUP: the log says how to confirm"
unchanged "SIGHUP refused"
expect_exit 1 "mmtrustctl reload: refused" "$CTL" reload
contains "$ERR" "6 of the 8" "mmtrustctl reload: says how many"
unchanged "mmtrustctl reload refused"
check "the daemon still takes changes on its store" "$CTL" partner set p4.example --disable
wait_for 5 test "$(ours)" -eq 6 || fail "p4 was not disabled ($(ours))"
check "... and back" "$CTL" partner set p4.example --enable
wait_for 5 test "$(ours)" -eq 8 || fail "p4 was not enabled again ($(ours))"
expect_exit 0 "mmtrustctl reload --allow-shrink: confirmed" "$CTL" reload --allow-shrink
wait_for 5 test "$(ours)" -eq 2 || fail "the confirmed reload did not go ahead ($(ours))"
STORE=$MM_TMP/b.db
contains "$("$CTL" status --json | jq -r .store.path)" "b.db" "the daemon now runs on the other store"

# --- start on an emptied store: refused, the kernel left alone
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
conf "$MM_TMP/a.db"
ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf" \
	2>>"$MM_TMP/daemon.log" &
DPID=$!
wait_for 5 "$CTL" partner list >/dev/null || fail "restart on a.db"
wait_for 5 test "$(ours)" -eq 8 || fail "a.db's four partners are back ($(ours))"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
mv "$MM_TMP/a.db" "$MM_TMP/a.db.away"
before=$(policies)
expect_exit 1 "start on a missing store (an empty table) is refused" \
	timeout 20 ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf"
contains "$ERR" "refusing to start" "start: says it refuses"
contains "$ERR" "8 of the 8" "start: says how many"
contains "$ERR" "--allow-shrink" "start: says how to confirm"
check "start refused: the kernel's policies are untouched" test "$(policies)" = "$before"
# A store file whose partners were deleted: the same.
sqlite3 "$MM_TMP/a.db" 'DELETE FROM partners'
expect_exit 1 "start on a store without partners is refused" \
	timeout 20 ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf"
check "start refused again: the kernel's policies are untouched" test "$(policies)" = "$before"
# The limit is the operator's: 100 turns the guard off.
conf "$MM_TMP/a.db" 100
ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf" \
	2>>"$MM_TMP/daemon.log" &
DPID=$!
wait_for 5 "$CTL" partner list >/dev/null || fail "start with shrink_limit = 100"
wait_for 5 test "$(ours)" -eq 0 || fail "shrink_limit = 100: the policies were not deleted ($(ours))"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
# --allow-shrink at start: the restored store, started; then emptied, confirmed.
mv "$MM_TMP/a.db.away" "$MM_TMP/a.db"
rm -f "$MM_TMP/a.db-wal" "$MM_TMP/a.db-shm"
conf "$MM_TMP/a.db"
mm_start_daemon 5 "$MMTRUST_ADMIN_SOCKET" answer
wait_for 5 test "$(ours)" -eq 8 || fail "the restored store's policies ($(ours))"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
sqlite3 "$MM_TMP/a.db" 'DELETE FROM partners'
ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --allow-shrink --config "$MM_TMP/mmtrustd.conf" \
	2>>"$MM_TMP/daemon.log" &
DPID=$!
wait_for 5 "$CTL" partner list >/dev/null || fail "start --allow-shrink"
wait_for 5 test "$(ours)" -eq 0 || fail "start --allow-shrink: the policies were not deleted ($(ours))"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# --- shrink_limit = 0: any deletion by a whole-table step is refused
conf "$MM_TMP/a.db" 0
mm_start_daemon 5 "$MMTRUST_ADMIN_SOCKET" answer
check "four partners" "$CTL" apply "$MM_TMP/t4.yaml"
wait_for 5 test "$(ours)" -eq 8 || fail "four partners ($(ours))"
table "$MM_TMP/t3.yaml" 1 2 3
expect_exit 1 "shrink_limit = 0: deleting one of four is refused" "$CTL" apply "$MM_TMP/t3.yaml"
check "shrink_limit = 0: adding is not" "$CTL" apply "$MM_TMP/t4.yaml"

# --- the setting is checked
conf "$MM_TMP/a.db" 101
expect_exit 1 "shrink_limit = 101 is refused by --check-config" \
	"$BUILD/mmtrustd" --check-config --config "$MM_TMP/mmtrustd.conf"
contains "$ERR" "spd.shrink_limit" "the refusal names spd.shrink_limit"

summary test_shrink
