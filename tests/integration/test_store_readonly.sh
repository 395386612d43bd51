#!/bin/bash
# A store mmtrustd can read but not write (an immutable file, a read-only
# mount): the daemon starts, serves and enforces the table it holds, and
# says at start (log), in status and in --check-config that every change
# will be refused; a change is refused with the reason and changes nothing.
# Made writable and reloaded, it takes changes again.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup rostore
CTL="$BUILD/mmtrustctl"
SDIR=$MM_TMP/state
export MMTRUST_ADMIN_SOCKET=$MM_TMP/run/admin.sock
mm_cleanup_hook() {
	chattr -i "$SDIR/store.db" 2>/dev/null
	mm_kill "${MPID:-}"
}
mkdir -p "$SDIR"
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $SDIR/store.db
admin_socket = $MM_TMP/run/admin.sock
query_socket = $MM_TMP/run/query.sock
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
[reqid]
min = 7000
max = 7099
CONF
make_ca "$MM_TMP" ca
policies() { ip -n "$NS" xfrm policy | grep -c '^src'; }

mm_start_daemon 5 "$MMTRUST_ADMIN_SOCKET" answer
for i in 1 2; do
	check "add partner p$i" "$CTL" partner add "p$i.example" --kind ims --agreement yes \
		--range "192.0.$i.0/24" --gateway "203.0.113.$i" --ca "$MM_TMP/ca.pem"
done
wait_for 5 test "$(policies)" -eq 4 || fail "the partners' policies were not programmed"
check "a writable store says so in status" \
	sh -c "\"$CTL\" status --json | jq -e '.store.writable == true and .store.problem == null' >/dev/null"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# ro_checks HOW: the daemon runs on the read-only store.
ro_checks() {
	local how=$1 sum before st
	wait_for 5 "$CTL" partner list >/dev/null || fail "$how: the daemon does not answer"
	contains "$(cat "$MM_TMP/daemon.log")" "store $SDIR/store.db is read-only" \
		"$how: the start-up log says the store is read-only"
	st=$("$CTL" status --json)
	check "$how: status says the store is not writable, and why" \
		sh -c "echo '$st' | jq -e '.store.writable == false and (.store.problem | length > 0)' >/dev/null"
	contains "$("$CTL" status)" "READ-ONLY" "$how: the text status says READ-ONLY"
	check "$how: the table is served" "$CTL" partner show p2.example
	check "$how: lookup answers from it" sh -c "\"$CTL\" lookup 192.0.1.7 | grep -q p1.example"
	check "$how: its policies are enforced" test "$(policies)" -eq 4
	sum=$(sha256sum <"$SDIR/store.db")
	before=$(ip -n "$NS" xfrm policy | sort)
	expect_exit 1 "$how: a change is refused" \
		"$CTL" partner add p3.example --kind ims --agreement yes --range 192.0.3.0/24 \
		--gateway 203.0.113.3 --ca "$MM_TMP/ca.pem"
	contains "$ERR" "read-only" "$how: the refusal says the store is read-only"
	expect_exit 1 "$how: a delete is refused" "$CTL" partner del p1.example
	check "$how: the refused changes left the store as it was" \
		test "$(sha256sum <"$SDIR/store.db")" = "$sum"
	check "$how: ... and the kernel" test "$(ip -n "$NS" xfrm policy | sort)" = "$before"
	check "$how: ... and the table" "$CTL" partner show p1.example
}

# --- an immutable store file
chattr +i "$SDIR/store.db" || fail "chattr +i is not available here"
expect_exit 0 "--check-config on an immutable store succeeds" \
	"$BUILD/mmtrustd" --check-config --config "$MM_TMP/mmtrustd.conf"
contains "$OUT" "READ-ONLY" "--check-config says the store is read-only"
contains "$OUT" "2 partners" "--check-config still reads the table"
: >"$MM_TMP/daemon.log"
mm_start_daemon 5 "$MMTRUST_ADMIN_SOCKET"
ro_checks immutable
# Made writable again: a reload takes changes.
chattr -i "$SDIR/store.db"
kill -HUP "$DPID"
ok() { "$CTL" status --json | jq -e '.store.writable == true' >/dev/null; }
wait_for 5 ok && pass "writable again after a reload" || fail "the reload did not see a writable store"
check "a change is taken again" "$CTL" partner add p3.example --kind ims --agreement yes \
	--range 192.0.3.0/24 --gateway 203.0.113.3 --ca "$MM_TMP/ca.pem"
wait_for 5 test "$(policies)" -eq 6 || fail "p3's policies were not programmed"
check "remove p3 again" "$CTL" partner del p3.example
wait_for 5 test "$(policies)" -eq 4 || fail "p3's policies were not removed"

kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# --- a read-only mount of the store's directory (a mount namespace of the
# test's own)
: >"$MM_TMP/daemon.log"
unshare -m sh -c "mount --bind '$SDIR' '$SDIR' && mount -o remount,bind,ro '$SDIR' &&
	exec ip netns exec '$NS' '$BUILD/mmtrustd' --foreground --config '$MM_TMP/mmtrustd.conf'" \
	2>>"$MM_TMP/daemon.log" &
MPID=$!
wait_for 5 test -S "$MMTRUST_ADMIN_SOCKET" || fail "read-only mount: no admin socket: $(cat "$MM_TMP/daemon.log")"
ro_checks "read-only mount"
contains "$("$CTL" status --json | jq -r .store.problem)" "Read-only file system" \
	"read-only mount: the reason names the read-only file system"
mm_kill "$MPID"
MPID=

summary test_store_readonly
