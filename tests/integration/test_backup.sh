#!/bin/bash
# Backup, restore and upgrade of the store, as docs/operations.md tells an
# operator to do them: SQLite's online backup (sqlite3 .backup) taken while
# mmtrustd runs and writes, restored under a stopped daemon with every
# reqid (and so every kernel policy) unchanged; `mmtrustctl export` applied
# to an empty store gives the same table; a store of a newer schema than
# the binary knows (a downgrade) is refused and left as it was; an older
# store is copied to STORE.schemaN.bak before its migration, and not
# migrated at all when the copy cannot be written.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup backup

CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
STORE=$MM_TMP/store.db
write_conf() { # write_conf STORE
	cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $1
admin_socket = $MM_TMP/admin.sock
query_socket = $MM_TMP/query.sock
[reqid]
min = 3000
max = 39999
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
CONF
}
start_daemon() { mm_start_daemon 10 "$MM_TMP/admin.sock" answer; }
stop_daemon() {
	kill -TERM "$DPID" && wait "$DPID"
	DPID=
	rm -f "$MM_TMP/admin.sock" "$MM_TMP/query.sock"
}
# "domain reqid" of every partner, as the daemon lists them
reqids() { "$CTL" --json partner list | jq -r '.partners[] | "\(.domain) \(.reqid)"' | sort; }
# "reqid src dst dir" of every kernel policy
kernel() {
	ip netns exec "$NS" ip xfrm policy | awk '
		/^src/ { s = $2; d = $4 } / dir / { dir = $2 }
		/reqid/ { for (i = 1; i < NF; i++) if ($i == "reqid") print $(i+1), s, d, dir }' | sort
}

write_conf "$STORE"
make_ca "$MM_TMP" ca
bulk_table "$MM_TMP/t.yaml" 40 ca.pem
start_daemon
check "40 partners applied" sh -c "\"$CTL\" apply \"$MM_TMP/t.yaml\" >/dev/null"
# gaps in the reqids: a restore that re-allocated them would show
for i in 3 7 11; do "$CTL" partner del "p$i.bulk.example" >/dev/null; done
"$CTL" partner add late.example --kind ims --agreement yes --range 192.0.2.0/24 \
	--gateway 198.51.100.77 --ca "$MM_TMP/ca.pem" >/dev/null
wait_for 5 test "$(kernel | wc -l)" -gt 0 || fail "no kernel policies"

# --- online backup while the daemon writes (20 adds: a backup without
# any of them still holds 38 of 58 partners, within the shrink guard)
( for i in $(seq 100 119); do
	"$CTL" partner add "w$i.example" --kind non-ims --agreement no --range "198.18.$((i - 100)).0/24" \
		--gateway 203.0.113.9 --ca "$MM_TMP/ca.pem" >/dev/null || exit 1
done ) &
writer=$!
sleep 0.3
check "sqlite3 .backup while mmtrustd writes" sqlite3 "$STORE" ".backup '$MM_TMP/backup.db'"
wait "$writer" || fail "the writer's adds failed during the backup"
check "the backup passes SQLite's integrity check" \
	test "$(sqlite3 "$MM_TMP/backup.db" 'PRAGMA integrity_check')" = ok
in_backup=$(sqlite3 "$MM_TMP/backup.db" 'SELECT domain || " " || reqid FROM partners' | sort)
n_backup=$(wc -l <<<"$in_backup")
check "the backup holds a state the daemon had: 38 old + 0..20 new partners ($n_backup)" \
	test "$n_backup" -ge 38 -a "$n_backup" -le 58
check "the backup's audit trail is there" \
	test "$(sqlite3 "$MM_TMP/backup.db" 'SELECT count(*) FROM audit')" -ge "$n_backup"
"$CTL" export >"$MM_TMP/export.yaml"
before_reqids=$(reqids)

# --- restore: stop, copy, start; the partners' reqids are the backup's
stop_daemon
kernel >"$MM_TMP/kernel.full"
cp "$MM_TMP/backup.db" "$STORE"
rm -f "$STORE-wal" "$STORE-shm"
start_daemon
check "restored: the table is the backup's, reqids included" test "$(reqids)" = "$in_backup"
wait_for 10 sh -c "test \"\$(ip netns exec $NS ip xfrm policy | grep -c reqid)\" -gt 0"
# every policy in the kernel now belongs to a partner of the backup, with
# the reqid it had before the backup
bad=$(kernel | while read -r r _; do grep -q " $r\$" <<<"$in_backup" || echo "$r"; done | sort -u)
check "restored: every kernel policy carries a reqid of the backup's table (${bad:-none} not)" \
	test -z "$bad"
old_policies=$(grep -cwf <(awk '{print $2}' <<<"$in_backup" | sed 's/^/^/') "$MM_TMP/kernel.full")
check "restored: the backup's partners kept their policies, unchanged" \
	test "$(kernel | grep -cwf <(awk '{print $2}' <<<"$in_backup" | sed 's/^/^/'))" = "$old_policies"

# --- upgrade: a store of the previous schema (2) is copied as it is to
# STORE.schema2.bak before it is migrated; without the copy, no migration
old2() { # old2 FILE: FILE made a schema-2 store (what mmtrust 0.12 wrote)
	cp "$MM_TMP/backup.db" "$1"
	sqlite3 "$1" "DROP TABLE events; ALTER TABLE audit DROP COLUMN time_ms; ALTER TABLE audit DROP COLUMN host; DELETE FROM meta WHERE key = 'version'; PRAGMA user_version = 2"
}
stop_daemon
old2 "$MM_TMP/old.db"
mkdir "$MM_TMP/old.db.schema2.bak.tmp"   # the copy cannot be written
sum=$(sha256sum <"$MM_TMP/old.db")
write_conf "$MM_TMP/old.db"
expect_exit 1 "no copy of the old store: the migration is refused" \
	ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf"
contains "$ERR" "refusing to migrate $MM_TMP/old.db from schema 2 to" "the refusal says why"
check "the old store is left as it was" test "$(sha256sum <"$MM_TMP/old.db")" = "$sum"
check "and still schema 2" test "$(sqlite3 "$MM_TMP/old.db" 'PRAGMA user_version')" = 2
rmdir "$MM_TMP/old.db.schema2.bak.tmp"
start_daemon
check "migrated: the daemon runs on the old store's table" test "$(reqids)" = "$in_backup"
check "the copy beside it is the old store, schema 2, byte for byte its table" sh -c "
	test \"\$(sqlite3 '$MM_TMP/old.db.schema2.bak' 'PRAGMA user_version')\" = 2 &&
	test \"\$(sqlite3 '$MM_TMP/old.db.schema2.bak' 'PRAGMA integrity_check')\" = ok"
check "the copy holds every partner" test "$(sqlite3 "$MM_TMP/old.db.schema2.bak" \
	'SELECT domain || " " || reqid FROM partners' | sort)" = "$in_backup"
check "the copy is one file (no WAL beside it)" test ! -e "$MM_TMP/old.db.schema2.bak-wal"
check "no temporary file left" test ! -e "$MM_TMP/old.db.schema2.bak.tmp"
stop_daemon
start_daemon
check "a second start (schema current): no new copy" test "$(ls "$MM_TMP" | grep -c 'schema.*bak')" = 1
stop_daemon
write_conf "$STORE"
start_daemon

# --- export/apply into an empty store on this host: the shrink guard
# refuses to start (the new table would delete every policy the old one
# programmed), leaving the kernel as it was
stop_daemon
kernel >"$MM_TMP/kernel.before"
write_conf "$MM_TMP/fresh.db"
expect_exit 1 "an empty store on a host with our policies: refused" \
	ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf"
contains "$ERR" "spd.shrink_limit" "the refusal names the shrink guard"
check "the kernel's policies are untouched" cmp -s <(kernel) "$MM_TMP/kernel.before"

# --- export/apply on a replacement host (its own namespace): the same
# table (the reqids are the new store's own)
NS_OLD=$NS
NS=mmtrust-backup2-$$
ip netns add "$NS"
mm_cleanup_hook() { ip netns del "$NS_OLD" 2>/dev/null; }
rm -f "$MM_TMP/fresh.db"
start_daemon
check "the export applies to an empty store" sh -c "\"$CTL\" apply \"$MM_TMP/export.yaml\" >/dev/null"
check "the same table as exported" cmp -s <("$CTL" export) "$MM_TMP/export.yaml"
check "the same partners as before the backup" \
	test "$(reqids | awk '{print $1}')" = "$(awk '{print $1}' <<<"$before_reqids")"

# --- downgrade: a store of a newer schema is refused and not touched
stop_daemon
cp "$MM_TMP/backup.db" "$MM_TMP/newer.db"
sqlite3 "$MM_TMP/newer.db" 'PRAGMA user_version = 99'
sum=$(sha256sum <"$MM_TMP/newer.db")
write_conf "$MM_TMP/newer.db"
expect_exit 1 "a store of schema 99 is refused" \
	ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf"
contains "$ERR" "schema version 99 is newer than this mmtrust understands" "the refusal says why"
check "the newer store is left as it was" test "$(sha256sum <"$MM_TMP/newer.db")" = "$sum"
expect_exit 1 "--check-config refuses it too" \
	"$BUILD/mmtrustd" --check-config --config "$MM_TMP/mmtrustd.conf"

summary test_backup
