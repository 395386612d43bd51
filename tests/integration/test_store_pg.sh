#!/bin/bash
# One mmtrustd on a PostgreSQL store, against a private cluster: what an
# operator sets up and what must never happen.  A password in the URI is
# refused and never echoed; the password file's content appears nowhere
# (logs, status, audit, the cluster's activity view); a wrong password, an
# unreadable password file or a database that is down at start stop the
# daemon with the reason and leave the kernel's policies as they are;
# --check-config connects and reads; status, --check and the metrics say
# what the shared store is; the database going away keeps the kernel and
# the answers, refuses changes, and a restart of the database is caught up
# without a restart of the daemon.  The fleet (three hosts) is
# test_fleet.sh's.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/pg.sh"

mm_setup storepg
mm_cleanup_hook() { pg_down; }
CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
pg_up "$MM_TMP/pg" || { fail "no PostgreSQL cluster"; summary test_store_pg; exit 1; }
PW=$(cat "$PG_PASSWORD_FILE")

write_conf() { # write_conf STORE [PASSWORD_FILE]
	cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $1
store_password_file = ${2:-}
host_name = solo-1
admin_socket = $MM_TMP/admin.sock
query_socket = $MM_TMP/query.sock
[reqid]
min = 7000
max = 7999
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
CONF
}
DAEMON=(ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf")
kernel() { ip -n "$NS" xfrm policy | sort; }
make_ca "$MM_TMP" ca
add() { # add DOMAIN OCTET
	"$CTL" partner add "$1" --kind ims --agreement yes --range "192.0.$2.0/24" \
		--gateway "203.0.113.$2" --ca "$MM_TMP/ca.pem" >/dev/null
}

# --- the URI may not carry a password; it is never echoed
write_conf "$PG_URI&password=sekret-in-uri" ""
expect_exit 1 "a password in the URI: refused" "${DAEMON[@]}" --check-config
contains "$ERR" "daemon.store" "the refusal names daemon.store"
contains "$ERR" "password" "and says why"
check "the password is not echoed" bash -c "! grep -q sekret-in-uri <<<\"\$1\$2\"" _ "$OUT" "$ERR"
write_conf "postgresql://mmtrust:sekret-in-uri@localhost/mmtrust" ""
expect_exit 1 "a password in the URI's user part: refused" "${DAEMON[@]}" --check-config
check "... not echoed either" bash -c "! grep -q sekret-in-uri <<<\"\$1\$2\"" _ "$OUT" "$ERR"

# --- the wrong password, or none readable: no start, the reason given
printf 'not-the-password\n' >"$MM_TMP/wrong.pw"
write_conf "$PG_URI" "$MM_TMP/wrong.pw"
expect_exit 1 "a wrong password: no start" "${DAEMON[@]}"
contains "$ERR" "password authentication failed" "libpq's reason is given"
check "the wrong password is not echoed" bash -c "! grep -q not-the-password <<<\"\$1\$2\"" _ "$OUT" "$ERR"
write_conf "$PG_URI" "$MM_TMP/missing.pw"
expect_exit 1 "a password file that is not there: no start" "${DAEMON[@]}"
contains "$ERR" "daemon.store_password_file" "the refusal names store_password_file"

# --- --check-config connects, migrates, reads
write_conf "$PG_URI" "$PG_PASSWORD_FILE"
expect_exit 0 "--check-config on an empty database" "${DAEMON[@]}" --check-config
contains "$OUT" "schema 4, 0 partners" "it reports the schema and the table"
check "the schema is in the database" test "$(pg_psql "SELECT value FROM meta WHERE key = 'version'")" = 0

# --- a daemon on it
mm_start_daemon 10 "$MM_TMP/admin.sock" answer
add a.example 1
add b.example 2
check "policies programmed" wait_for 5 sh -c "ip -n '$NS' xfrm policy | grep -q 'reqid 7001'"
ST=$("$CTL" --json status)
check "status: backend postgresql" jq -e '.store.backend == "postgresql"' <<<"$ST" >/dev/null
check "status: connected, version 2, host solo-1" \
	jq -e '.store.connected and .store.version == 2 and .store.host == "solo-1"' <<<"$ST" >/dev/null
check "status: the name is the URI" jq -e --arg u "$PG_URI" '.store.name == $u' <<<"$ST" >/dev/null
# (no charon here: the tunnels are down, --check says so; the store is fine)
expect_exit 5 "status --check with the store connected" "$CTL" --json status --check
check "--check: no store problem while connected" \
	jq -e '[.problems[] | select(.what == "store")] == []' <<<"$OUT" >/dev/null
M=$("$CTL" metrics)
contains "$M" "mmtrust_store_shared 1" "metrics: shared"
contains "$M" "mmtrust_store_connected 1" "metrics: connected"
contains "$M" "mmtrust_store_table_version 2" "metrics: the version"
A=$("$CTL" --json log --kind change)
check "audit: host solo-1 and txn = version" \
	jq -e '[.entries[] | .host] == ["solo-1","solo-1"] and ([.entries[] | .txn] == [1,2])' \
	<<<"$A" >/dev/null
check "the database holds the reqids the kernel has" test \
	"$(pg_psql "SELECT string_agg(domain || '=' || reqid, ',' ORDER BY domain) FROM partners")" = \
	"a.example=7000,b.example=7001"

# --- the database goes away: enforcement and answers stay, changes refused
kernel >"$MM_TMP/k.before"
# NOLOGIN holds the daemon off once the cluster is back (its session now
# is not affected), until the change below is in
pg_psql "ALTER ROLE mmtrust NOLOGIN" >/dev/null
pg_stop
check "status says unreachable" wait_for 10 sh -c \
	"'$CTL' --json status | jq -e '.store.connected == false and (.store.error | length > 0)' >/dev/null"
expect_exit 5 "status --check while the store is away" "$CTL" --json status --check
check "--check: the store is a WARNING, saying why" jq -e \
	'[.problems[] | select(.what == "store" and .code == 4 and (.why | contains("unreachable")))] | length == 1' \
	<<<"$OUT" >/dev/null
expect_exit 1 "a change while it is away: refused" add c.example 3
contains "$ERR" "nothing is queued" "the refusal says nothing is queued"
check "the kernel is untouched while it is away" cmp -s <(kernel) "$MM_TMP/k.before"
check "partner list still answers" sh -c "'$CTL' --json partner list | jq -e '.partners | length == 2' >/dev/null"
contains "$("$CTL" metrics)" "mmtrust_store_connected 0" "metrics: not connected"
# A store that accepts and never answers (a server hung, a black hole):
# the reconnects wait for it beside the event loop, never in it -- the
# admin socket keeps answering at once throughout (a blocking connect
# would freeze the daemon for its whole 5 s deadline, every back-off).
python3 - "$PG_SOCK/.s.PGSQL.$PG_PORT" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
PY
HOLE=$!
worst=0
for i in $(seq 24); do
	t0=$(date +%s%N)
	timeout 10 "$CTL" --json status >/dev/null
	t=$((($(date +%s%N) - t0) / 1000000))
	[ "$t" -gt "$worst" ] && worst=$t
	sleep 0.5
done
echo "status answered within $worst ms at worst while the store hung"
check "the daemon answers while its reconnects hang (worst $worst ms < $((1500 * MM_SLOW)) ms)" \
	test "$worst" -lt $((1500 * MM_SLOW))
check "... and says why it is still unreachable" sh -c \
	"'$CTL' --json status | jq -e '.store.connected == false and (.store.error | contains(\"no answer within\"))' >/dev/null"
kill "$HOLE" && wait "$HOLE" 2>/dev/null
rm -f "$PG_SOCK/.s.PGSQL.$PG_PORT"
# a change made behind this host's back while it is away (another host)
pg_start
pg_psql "UPDATE partners SET enabled = 0 WHERE domain = 'b.example'" \
	"UPDATE meta SET value = '3' WHERE key = 'version'" >/dev/null
sleep 1
check "still unreachable while it may not log in" sh -c \
	"'$CTL' --json status | jq -e '.store.connected == false and .store.version == 2' >/dev/null"
pg_psql "ALTER ROLE mmtrust LOGIN" >/dev/null
check "back: reconnected and caught up to version 3 (no notification was heard)" wait_for 20 sh -c \
	"'$CTL' --json status | jq -e '.store.connected and .store.version == 3' >/dev/null"
check "b.example disabled: its policies gone" wait_for 5 sh -c "! ip -n '$NS' xfrm policy | grep -q 'reqid 7001'"
check "a.example kept" sh -c "ip -n '$NS' xfrm policy | grep -q 'reqid 7000'"
check "the reconnect is counted" sh -c "'$CTL' metrics | grep -q '^mmtrust_store_reconnects_total 1'"
check "store-lost and store-back in the log" sh -c \
	"'$CTL' --json log --kind store-lost --kind store-back | jq -e '[.entries[].kind] == [\"store-lost\",\"store-back\"]' >/dev/null"
check "a change works again" add c.example 3

# --- the password appears nowhere
check "not in the daemon's log" sh -c "! grep -qF -- '$PW' '$MM_TMP/daemon.log'"
check "not in status" sh -c "! '$CTL' --json status | grep -qF -- '$PW'"
check "not in the audit trail or the events" sh -c "! '$CTL' --json log | grep -qF -- '$PW'"
ACT=$(pg_psql "SELECT application_name || ' ' || coalesce(query, '') FROM pg_stat_activity")
check "not in the cluster's view of its clients" bash -c "! grep -qF -- \"\$1\" <<<\"\$2\"" _ "$PW" "$ACT"
contains "$ACT" "mmtrustd" "the daemon names itself to the cluster (application_name)"

# --- stopped, then started while the database is down: no start, kernel kept
kill -TERM "$DPID" && wait "$DPID"
DPID=
rm -f "$MM_TMP/admin.sock" "$MM_TMP/query.sock"
kernel >"$MM_TMP/k.before"
check "policies are left at stop" test -s "$MM_TMP/k.before"
pg_stop
expect_exit 1 "a start with the database down: refused" "${DAEMON[@]}"
contains "$ERR" "cannot reach" "it says it cannot reach the store"
check "the kernel is untouched" cmp -s <(kernel) "$MM_TMP/k.before"
pg_start
mm_start_daemon 10 "$MM_TMP/admin.sock" answer
check "started again: the same reqids" sh -c "ip -n '$NS' xfrm policy | grep -q 'reqid 7000'"

# --- a table changed around mmtrust (no audit rows) that would take away
# every policy: not taken, said, the kernel kept; then a table that goes
# back in time (another database): not taken either; a reload takes it
kernel >"$MM_TMP/k.before"
V=$("$CTL" --json status | jq .store.version)
pg_psql "BEGIN; DELETE FROM partners; UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'version'; COMMIT" \
	"NOTIFY mmtrust_table, '$((V + 1))'" >/dev/null
check "an unaudited version that empties the table: refused" wait_for 10 sh -c \
	"'$CTL' --json status | jq -e '.store.refused_version == $((V + 1)) and .store.version == $V' >/dev/null"
check "... the refusal names the shrink guard" sh -c \
	"'$CTL' --json status | jq -e '.store.error | contains(\"shrink_limit\")' >/dev/null"
check "... the kernel is kept" cmp -s <(kernel) "$MM_TMP/k.before"
contains "$("$CTL" metrics)" "mmtrust_store_version_refused 1" "... metrics say so"
expect_exit 5 "... --check" "$CTL" --json status --check
check "... --check warns of the version not taken" jq -e \
	'[.problems[] | select(.what == "store" and .code == 4 and (.why | contains("not taken")))] | length == 1' \
	<<<"$OUT" >/dev/null
expect_exit 1 "... and a change here is refused meanwhile" add d.example 4
contains "$ERR" "does not take" "... saying why"
pg_psql "UPDATE meta SET value = '1' WHERE key = 'version'" "NOTIFY mmtrust_table, '$((V + 5))'" >/dev/null
check "a version that goes back: refused" wait_for 10 sh -c \
	"'$CTL' --json status | jq -e '.store.refused_version == 1 and (.store.error | contains(\"went back\"))' >/dev/null"
check "... the kernel is kept" cmp -s <(kernel) "$MM_TMP/k.before"
expect_exit 0 "a reload with --allow-shrink takes the table as it is" "$CTL" reload --allow-shrink
check "... now at version 1, nothing refused" sh -c \
	"'$CTL' --json status | jq -e '.store.version == 1 and .store.refused_version == null' >/dev/null"
check "... and the policies are gone" wait_for 5 sh -c "! ip -n '$NS' xfrm policy | grep -q reqid"
summary test_store_pg
