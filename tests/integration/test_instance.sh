#!/bin/bash
# One mmtrustd per store, per socket and per network namespace's policy
# tag; a store file that is not a store is refused; a signal during
# start-up never kills the daemon.  Every refusal must leave the running
# daemon, its sockets and the kernel's policies exactly as they were.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup inst
NS2=mmtrust-inst2-$$
ip netns add "$NS2"
mm_cleanup_hook() {
	mm_kill "${D2:-}"
	ip netns del "$NS2" 2>/dev/null
}
CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock

# conf NAME STORE SOCKETDIR: a configuration programming the kernel.
conf() {
	mkdir -p "$3"
	cat >"$MM_TMP/$1.conf" <<CONF
[daemon]
store = $2
admin_socket = $3/admin.sock
query_socket = $3/query.sock
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
[reqid]
min = 7000
max = 7099
CONF
}
conf a "$MM_TMP/a/store.db" "$MM_TMP/run-a"
conf samesock "$MM_TMP/b/store.db" "$MM_TMP/run-a"
conf other "$MM_TMP/b/store.db" "$MM_TMP/run-b"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/run-a/admin.sock
cp "$MM_TMP/a.conf" "$MM_TMP/mmtrustd.conf"

make_ca "$MM_TMP" ca
policies() { ip -n "$1" xfrm policy | grep -c '^src'; }
snapshot() { ip -n "$NS" -s xfrm policy | sort; }
# second NAME NS: start another mmtrustd in NS with NAME.conf; it must
# refuse within 10 s (exit 1) and leave everything as it was.
second() {
	local before after
	before=$(snapshot)
	expect_exit 1 "$1: the second mmtrustd refuses to start" \
		timeout 10 ip netns exec "$2" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/$1.conf"
	after=$(snapshot)
	check "$1: the kernel's policies are untouched" test "$before" = "$after"
	check "$1: the first daemon's admin socket is still there" test -S "$MM_TMP/run-a/admin.sock"
	check "$1: the first daemon's query socket is still there" test -S "$MM_TMP/run-a/query.sock"
	check "$1: the first daemon still answers" sh -c "\"$CTL\" partner show p1.example >/dev/null"
	check "$1: the first daemon still runs" kill -0 "$DPID"
}

mm_start_daemon 5 "$MM_TMP/run-a/admin.sock" answer
check "add a partner" "$CTL" partner add p1.example --kind ims --agreement yes \
	--range 192.0.2.0/24 --gateway 203.0.113.1 --ca "$MM_TMP/ca.pem"
wait_for 5 test "$(policies "$NS")" -eq 2 || fail "the partner's policies were not programmed"

# --- a second instance, three ways
second a "$NS"
contains "$ERR" "in use by another mmtrustd (pid $DPID)" "same store: says which pid holds it"
second samesock "$NS"
contains "$ERR" "admin.sock is in use by another mmtrustd" "same sockets: names the socket"
second other "$NS"
contains "$ERR" "network namespace" "same namespace and tag: says so"
contains "$ERR" "1835889778" "same namespace and tag: names the tag"
check "nothing of the refused daemons was left in run-b" test ! -e "$MM_TMP/run-b/admin.sock"
# The same store spelt through a symlink, from another namespace with
# sockets of its own: still the same store, still refused.
ln -s "$MM_TMP/a" "$MM_TMP/alias"
conf alias "$MM_TMP/alias/store.db" "$MM_TMP/run-c"
expect_exit 1 "the same store through a symlink, another namespace: refused" \
	timeout 10 ip netns exec "$NS2" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/alias.conf"
contains "$ERR" "in use by another mmtrustd" "the symlinked store: says it is in use"

# --- another namespace, another store and sockets: allowed
ip netns exec "$NS2" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/other.conf" \
	2>>"$MM_TMP/daemon2.log" &
D2=$!
wait_for 5 test -S "$MM_TMP/run-b/admin.sock" && pass "a daemon of its own in another namespace starts" ||
	fail "a daemon in another namespace did not start: $(cat "$MM_TMP/daemon2.log")"
mm_kill "$D2"
D2=

# --- abstract names carry no permissions: a squatter of another user must
# not keep mmtrustd from starting (logged, the claim goes on without it)
ip netns exec "$NS2" setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind("\0mmtrustd-xfrm-1835889778"); s.listen(1)
time.sleep(30)' &
SQ=$!
squatting() { ip netns exec "$NS2" ss -xl | grep -q mmtrustd-xfrm; }
wait_for 5 squatting || fail "the squatter did not start"
: >"$MM_TMP/daemon2.log"
ip netns exec "$NS2" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/other.conf" \
	2>>"$MM_TMP/daemon2.log" &
D2=$!
wait_for 5 test -S "$MM_TMP/run-b/admin.sock" && pass "a squatter of another user does not stop mmtrustd" ||
	fail "a squatter of uid nobody kept mmtrustd from starting: $(cat "$MM_TMP/daemon2.log")"
contains "$(cat "$MM_TMP/daemon2.log")" "held by uid 65534" "the squatter is logged"
mm_kill "$D2"
D2=
kill "$SQ"; wait "$SQ" 2>/dev/null
check "lock files are the owner's only (0600)" test "$(stat -c %a "$MM_TMP/a/store.db.lock")" = 600

# --- a live socket without a lock (a daemon of another version, any
# program): never unlinked
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(4)
open(sys.argv[2], "w").close(); time.sleep(30)' "$MM_TMP/run-b/admin.sock" "$MM_TMP/py.ready" &
PY=$!
wait_for 20 test -e "$MM_TMP/py.ready" || fail "the socket holder did not start"
expect_exit 1 "a live socket of another program: refused" \
	timeout 10 ip netns exec "$NS2" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/other.conf"
contains "$ERR" "answers" "the refusal says the socket answers"
check "the live socket was not unlinked" test -S "$MM_TMP/run-b/admin.sock"
kill "$PY"; wait "$PY" 2>/dev/null

# --- a dead daemon's socket files are replaced
before=$(policies "$NS")
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
check "a killed daemon leaves its socket file" test -S "$MM_TMP/run-a/admin.sock"
mm_start_daemon 5 "$MM_TMP/run-a/admin.sock" answer
check "restarted over the dead socket: the partner is there" "$CTL" partner show p1.example
check "restarted: the policies are the same" test "$(policies "$NS")" -eq "$before"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=

# --- a store file that is not a store: refused, nothing deleted
for what in empty garbage foreign; do
	case $what in
	empty) : >"$MM_TMP/bad.db" ;;
	garbage) head -c 5000 /dev/urandom >"$MM_TMP/bad.db" ;;
	foreign) rm -f "$MM_TMP/bad.db"; sqlite3 "$MM_TMP/bad.db" 'CREATE TABLE t(x); PRAGMA user_version = 1' ;;
	esac
	sum=$(sha256sum <"$MM_TMP/bad.db")
	sed "s|^store = .*|store = $MM_TMP/bad.db|" "$MM_TMP/a.conf" >"$MM_TMP/bad.conf"
	before=$(snapshot)
	expect_exit 1 "$what store file: refused" \
		timeout 10 ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/bad.conf"
	contains "$ERR" "$MM_TMP/bad.db" "$what store file: the refusal names the path"
	check "$what store file: the kernel's policies are untouched" test "$before" = "$(snapshot)"
	check "$what store file: the file is unchanged" test "$sum" = "$(sha256sum <"$MM_TMP/bad.db")"
done
contains "$ERR" "not an mmtrust store" "a foreign database: says it is not an mmtrust store"

# --- SIGHUP while the store loads: blocked from the first instruction
bulk_table "$MM_TMP/big.yaml" 3000 ca.pem
sed -i "s/^max = .*/max = 10999/" "$MM_TMP/a.conf"
cp "$MM_TMP/a.conf" "$MM_TMP/mmtrustd.conf"
mm_start_daemon 5 "$MM_TMP/run-a/admin.sock" answer
"$CTL" apply --allow-shrink "$MM_TMP/big.yaml" >/dev/null || fail "apply of 3,000 partners"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
for i in 1 2 3; do
	ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/a.conf" \
		2>>"$MM_TMP/daemon.log" &
	DPID=$!
	# The moment the daemon has the store open, SIGHUP must be blocked.
	blocked=
	for _ in $(seq 2000); do
		if ls -l "/proc/$DPID/fd" 2>/dev/null | grep -q 'a/store.db'; then
			blocked=$(awk '/^SigBlk/ { print $2 }' "/proc/$DPID/status")
			kill -HUP "$DPID"
			break
		fi
	done
	if [ -z "$blocked" ]; then
		fail "start $i: never saw the daemon open its store"
	else
		check "start $i: SIGHUP is blocked while the store loads (SigBlk $blocked)" \
			test $((0x$blocked & 1)) -eq 1
	fi
	wait_for 20 "$CTL" partner show p0.bulk.example >/dev/null ||
		fail "start $i: the daemon does not answer after a SIGHUP during start-up"
	contains "$(tail -3 "$MM_TMP/daemon.log")" "reloaded" "start $i: the SIGHUP was handled as a reload"
	check "start $i: the daemon survived a SIGHUP during start-up" kill -0 "$DPID"
	kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
done

# --- a reload that names a store another mmtrustd holds: refused, and the
# daemon goes on with its own
ip netns exec "$NS2" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/other.conf" \
	2>>"$MM_TMP/daemon2.log" &
D2=$!
wait_for 5 test -S "$MM_TMP/run-b/admin.sock" || fail "the daemon on store b did not start"
cp "$MM_TMP/a.conf" "$MM_TMP/reload.conf"
: >"$MM_TMP/daemon.log"
ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/reload.conf" \
	2>>"$MM_TMP/daemon.log" &
DPID=$!
wait_for 20 "$CTL" partner show p0.bulk.example >/dev/null || fail "the daemon on store a did not start"
sed -i "s|^store = .*|store = $MM_TMP/b/store.db|" "$MM_TMP/reload.conf"
kill -HUP "$DPID"
reload_refused() { grep -q "reload refused" "$MM_TMP/daemon.log"; }
check "a reload onto a store another mmtrustd holds is refused" wait_for 10 reload_refused
contains "$(cat "$MM_TMP/daemon.log")" "in use by another mmtrustd (pid $D2)" "the refusal names the holder"
check "after the refused reload it still serves its own table" sh -c "\"$CTL\" partner show p0.bulk.example >/dev/null"
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null; DPID=
mm_kill "$D2"
D2=

summary test_instance
