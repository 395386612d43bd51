#!/bin/bash
# The event history and `mmtrustctl log` with the real daemon in a
# namespace this test creates and deletes: provisioning changes, a drift
# repair and a stop/start appear in order; the domain, time and kind
# filters; bad times and kinds are refused naming the option; a drift
# storm writes a bounded number of rows; [log] events_keep trims; a store
# of schema 2 migrates to 3 and keeps its audit trail; a read-only store
# still answers, from memory, and says so.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup events
mm_cleanup_hook() { chattr -i "$MM_TMP/store.db" 2>/dev/null; }

CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
STORE=$MM_TMP/store.db
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $STORE
admin_socket = $MM_TMP/admin.sock
query_socket = $MM_TMP/query.sock
[reqid]
min = 2000
max = 2999
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
[spd]
priority_base = 200000
CONF

start_daemon() { mm_start_daemon 10 "$MM_TMP/admin.sock" answer; }
stop_daemon() {
	kill -TERM "$DPID" && wait "$DPID"
	DPID=
	rm -f "$MM_TMP/admin.sock"
}
xp() { ip netns exec "$NS" ip "$@"; }
kinds() { "$CTL" --json log "$@" | jq -c '[.entries[].kind]'; }
rows() { sqlite3 "$STORE" "SELECT count(*) FROM events $*"; }
jqe() { jq -e "$@" >/dev/null; }

# Our addresses on a link: no address-lost at start.
xp link set lo up
xp addr add 198.51.100.1/32 dev lo
xp addr add 10.10.0.1/24 dev lo

A=ims.a.example
B=sip.b.example
for ca in a b; do make_ca "$MM_TMP" "ca-$ca"; done
start_daemon
"$CTL" partner add $A --kind ims --agreement yes --range 192.0.2.0/24 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem" >/dev/null || fail "add A"
"$CTL" partner add $B --kind non-ims --agreement no --range 203.0.113.0/24 \
	--gateway 198.51.100.20 --ca "$MM_TMP/ca-b.pem" >/dev/null || fail "add B"
"$CTL" partner set $A --agreement no >/dev/null || fail "set A"
wait_for 5 sh -c "'$CTL' --json status | jq -e '.kernel.in_sync == .kernel.expected' >/dev/null"

# --- drift: one of A's policies deleted by hand, repaired
idx=$(xp -s xfrm policy list dir out | awk '/^src 10.10.0.0\/24 dst 192.0.2.0\/24/ { a = 1 } a { for (i = 1; i < NF; i++) if ($i == "index") { print $(i+1); exit } }')
xp xfrm policy delete index "$idx" dir out
check "drift repaired and recorded" wait_for 3 sh -c \
	"'$CTL' --json log --kind drift-repair | jq -e '.entries | length == 1' >/dev/null"
contains "$(cat "$MM_TMP/daemon.log")" "event=drift-repair partner=" \
	"the log line carries event= and partner= for grep"

# --- our tunnel address lost and back
xp addr del 198.51.100.1/32 dev lo
check "address lost recorded" wait_for 3 sh -c \
	"'$CTL' --json log --kind address-lost | jq -e '.entries | length == 1' >/dev/null"
xp addr add 198.51.100.1/32 dev lo
check "address back recorded" wait_for 3 sh -c \
	"'$CTL' --json log --kind address-back | jq -e '.entries | length == 1' >/dev/null"
contains "$(cat "$MM_TMP/daemon.log")" "198.51.100.1 is missing: not an address of this host; no tunnel of this family is up or initiated on this host event=address-lost" \
	"the address-lost line"

# --- stop and start: both recorded, everything in order
T_STOP=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
stop_daemon
sleep 1
start_daemon
T_START=$(date +%s%3N)
expect_exit 0 "log" "$CTL" --json log
check "changes, drift repair, stop and start in time order" test \
	"$(jq -c '[.entries[] | if .type == "change" then .action else .kind end]' <<<"$OUT")" = \
	'["start","add","add","set","drift-repair","address-lost","address-back","stop","start"]'
check "entries are sorted by time" jqe '[.entries[].time_ms] | . == sort' <<<"$OUT"
check "each entry says its type" test \
	"$(jq -c '[.entries[].type] | unique' <<<"$OUT")" = '["change","event"]'
check "the drift repair names its partner" test \
	"$(jq -r '.entries[] | select(.kind == "drift-repair") | .domain' <<<"$OUT")" = $A
expect_exit 0 "log (text)" "$CTL" log
contains "$OUT" "  $A  change  set by root (uid 0, pid " "a change line: time, partner, kind, who"
contains "$OUT" "agreement: yes -> no" "a change line: what changed"
contains "$OUT" "  $A  drift-repair  drift: policies of partner $A" "an event line: time, partner, kind, message"
contains "$OUT" "  -  stop  stopped" "an event without partner: -"

# --- filters
check "--domain: only A's entries" test "$(kinds --domain $A)" = '["change","change","drift-repair"]'
check "--kind twice: those kinds only" test "$(kinds --kind stop --kind start)" = '["start","stop","start"]'
check "--kind change: the audit trail only" test "$(kinds --kind change)" = '["change","change","change"]'
check "-n 2: the last two" test "$(kinds -n 2)" = '["stop","start"]'
check "--since in the future: nothing" test "$(kinds --since 2999-01-01)" = '[]'
expect_exit 0 "log --since in the future (text)" "$CTL" log --since 2999-01-01T00:00:00Z
contains "$OUT" "(no entries)" "an empty answer says so"
check "--until before the first stop: no stop" test \
	"$(kinds --until "$T_STOP" --kind stop --kind start)" = '["start"]'
check "--since relative (-1h): everything" test "$(kinds --since -1h | jq length)" = 9
check "--until today's date: the whole day, so everything" \
	test "$(kinds --until "$(date -u +%F)" | jq length)" = 9
check "--until yesterday's date: nothing" \
	test "$(kinds --until "$(date -u -d yesterday +%F)")" = '[]'
check "--since and --until the same date: that day" \
	test "$(kinds --since "$(date -u +%F)" --until "$(date -u +%F)" | jq length)" = 9
check "--since the restart (ms): the last start only" test \
	"$("$CTL" --json log --since "$(date -u -d @$(( (T_START - 500) / 1000 )) +%Y-%m-%dT%H:%M:%SZ)" --kind start | jq '.entries | length')" = 1
for bad in yesterday 2026-13-01 2026-02-30 -5x -h 2026-12-01T25:00:00Z 2026-12-01T10:00:00+01:00; do
	expect_exit 2 "--since '$bad' is a usage error" "$CTL" log --since "$bad"
	contains "$ERR" "--since: '$bad' is not a time" "the error names --since ($bad)"
done
expect_exit 2 "--until bad" "$CTL" log --until 12:00
contains "$ERR" "--until: '12:00' is not a time" "the error names --until"
expect_exit 1 "an unknown kind is refused" "$CTL" log --kind tunnel_up
contains "$ERR" "kinds" "the refusal names kinds"
OUT=$(printf '%s\n' '{"op": "log", "since": "yesterday"}' | socat - UNIX-CONNECT:"$MMTRUST_ADMIN_SOCKET" 2>/dev/null)
check "since that is not a number refused by the daemon" test "$(jq -r .error.field <<<"$OUT")" = since

# --- a drift storm writes a bounded number of rows
sleep 1.2
before=$(rows "WHERE kind = 'drift-repair'")
for i in $(seq 300); do echo "xfrm policy flush"; done >"$MM_TMP/storm"
ip netns exec "$NS" ip -batch "$MM_TMP/storm" 2>/dev/null
for i in $(seq 30); do xp xfrm policy flush; sleep 0.02; done
sleep 1.5
after=$(rows "WHERE kind = 'drift-repair'")
repairs=$("$CTL" --json status | jq '.kernel.counters.drift_repairs')
check "drift storm: the daemon repaired many times ($repairs)" test "$repairs" -ge 5
check "drift storm: at most a burst of rows ($((after - before)))" test $((after - before)) -le 12
check "drift storm: some recorded ($((after - before)))" test $((after - before)) -ge 1
check "drift storm: repaired in the end" wait_for 15 sh -c \
	"'$CTL' --json status | jq -e '.kernel.in_sync == .kernel.expected' >/dev/null"

# --- events_keep trims the history
printf '[log]\nevents_keep = 10\n' >>"$MM_TMP/mmtrustd.conf"
for i in $(seq 15); do "$CTL" reload >/dev/null || fail "reload $i"; done
sleep 1.5
check "events_keep = 10: 10 rows kept ($(rows))" test "$(rows)" = 10
check "the newest kept" test "$(kinds -n 1)" = '["reload"]'
check "the audit trail is not trimmed" test "$(kinds --kind change | jq length)" = 3
printf '[log]\nevents_keep = 0\n' >"$MM_TMP/bad.conf"
expect_exit 1 "events_keep = 0 refused" "$BUILD/mmtrustd" --check-config --config "$MM_TMP/bad.conf"
contains "$ERR$OUT" "log.events_keep" "the refusal names log.events_keep"
sed -i '/^\[log\]/,$d' "$MM_TMP/mmtrustd.conf"

# --- schema 2 -> 4: the audit trail stays
stop_daemon
sqlite3 "$STORE" "DROP TABLE events; ALTER TABLE audit DROP COLUMN time_ms; ALTER TABLE audit DROP COLUMN host; DELETE FROM meta WHERE key = 'version'; PRAGMA user_version = 2"
start_daemon
OUT=$(printf '%s\n' '{"op": "ping"}' | socat - UNIX-CONNECT:"$MMTRUST_ADMIN_SOCKET" 2>/dev/null)
check "migrated to schema 4" test "$(jq .result.schema <<<"$OUT")" = 4
check "schema 4: the table version is the last change's txn" test \
	"$("$CTL" --json status | jq .store.version)" = "$(sqlite3 "$STORE" 'SELECT MAX(txn) FROM audit')"
check "the audit trail survived the migration" test "$(kinds --kind change)" = '["change","change","change"]'
check "old audit rows keep their order and time" jqe '[.entries[].time_ms] | . == sort' \
	<<<"$("$CTL" --json log)"

# --- read-only store: answers from memory, says so
stop_daemon
chattr +i "$STORE" || fail "chattr +i is not available here"
start_daemon
xp xfrm policy flush
check "read-only: drift repaired" wait_for 5 sh -c \
	"'$CTL' --json log --kind drift-repair | jq -e '.entries | length >= 1' >/dev/null"
expect_exit 0 "read-only: log" "$CTL" --json log
check "read-only: events in memory" jqe '.events_in_memory == true' <<<"$OUT"
check "read-only: the changes still come from the store" test \
	"$(jq -c '[.entries[] | select(.type == "change")] | length' <<<"$OUT")" = 3
check "read-only: the start event is there" jqe '[.entries[].kind] | index("start")' <<<"$OUT"
sleep 1.2
expect_exit 0 "read-only: log (text)" "$CTL" log
contains "$OUT" "note: the store is read-only" "the text answer says so"
chattr -i "$STORE"

# --- the journal: systemd-journald started by hand in a mount namespace
# of its own (a private /run and /var/log/journal) and a network namespace;
# mmtrustd's stderr is the journal stream (systemd-cat, $JOURNAL_STREAM
# as systemd sets it), so it sends each line with its fields.
JD=$(command -v /lib/systemd/systemd-journald /usr/lib/systemd/systemd-journald | head -1)
if [ -z "$JD" ] || ! command -v systemd-cat >/dev/null || ! command -v journalctl >/dev/null; then
	fail "journal: systemd-journald, systemd-cat or journalctl missing (Debian's systemd package)"
else
	J=$MM_TMP/j
	mkdir -p "$J"
	sed -e "s|$MM_TMP/|$J/|g" "$MM_TMP/mmtrustd.conf" >"$J/mmtrustd.conf"
	cat >"$J/run.sh" <<SH
set -u
mount -t tmpfs tmpfs /run
[ -d /var/log/journal ] && mount -t tmpfs tmpfs /var/log/journal
ip link set lo up
ip addr add 198.51.100.1/32 dev lo
ip addr add 10.10.0.1/24 dev lo
"$JD" 2>"$J/journald.log" &
JP=\$!
for i in \$(seq 50); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.1; done
[ -S /run/systemd/journal/stdout ] || { echo nojournal >"$J/result"; kill \$JP; exit 0; }
systemd-cat -t mmtrustd sh -c 'JOURNAL_STREAM=\$(stat -L -c %d:%i /proc/self/fd/2) exec "$BUILD/mmtrustd" --foreground --config "$J/mmtrustd.conf"' &
DP=\$!
export MMTRUST_ADMIN_SOCKET=$J/admin.sock
for i in \$(seq 50); do "$CTL" partner list >/dev/null 2>&1 && break; sleep 0.1; done
"$CTL" partner add $A --kind ims --agreement yes --range 192.0.2.0/24 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem" >/dev/null
sleep 0.3
ip xfrm policy flush
sleep 1.5
kill -TERM \$DP; wait \$DP
journalctl --no-pager -o json PARTNER=$A MESSAGE_ID=562286cb41b54498a489f66a1191beb3 >"$J/drift.json"
journalctl --no-pager -o json MMTRUST_EVENT=change PARTNER=$A >"$J/change.json"
journalctl --no-pager -o json SYSLOG_IDENTIFIER=mmtrustd MMTRUST_EVENT=start >"$J/start.json"
journalctl --no-pager -o json SYSLOG_IDENTIFIER=mmtrustd >"$J/all.json"
journalctl --no-pager -o json _TRANSPORT=stdout >"$J/stdout.json"
kill \$JP; wait \$JP
echo done >"$J/result"
SH
	timeout 30 unshare -m -n --propagation private bash "$J/run.sh" >"$J/run.out" 2>&1
	if [ "$(cat "$J/result" 2>/dev/null)" = nojournal ]; then
		fail "journal: systemd-journald did not start here: $(tail -n 3 "$J/journald.log" 2>/dev/null)"
	else
		check "journal: the run finished" test "$(cat "$J/result" 2>/dev/null)" = done
		check "journal: journalctl PARTNER= MESSAGE_ID= finds the drift repair" \
			jqe -s 'length >= 1' "$J/drift.json"
		check "journal: the drift repair's fields" jqe -s \
			'.[0] | .PRIORITY == "4" and .SYSLOG_IDENTIFIER == "mmtrustd" and
			 .MMTRUST_EVENT == "drift-repair" and (.MESSAGE | startswith("drift: policies of partner"))' \
			"$J/drift.json"
		check "journal: a change with PARTNER and REQID" jqe -s \
			'.[0] | .REQID == "2000" and .MESSAGE_ID == "71b9f9f9fd4d42ec9c6a7196297ba1d0"' \
			"$J/change.json"
		check "journal: start has no PARTNER, REQID or SPI" jqe -s \
			'length == 1 and (.[0] | has("PARTNER") or has("REQID") or has("SPI") | not)' \
			"$J/start.json"
		check "journal: plain lines have no MESSAGE_ID" jqe -s \
			'[.[] | select(.MMTRUST_EVENT == null) | has("MESSAGE_ID")] | any | not' "$J/all.json"
		check "journal: one entry per line, none also through the stream" jqe -s \
			'[.[] | select(.SYSLOG_IDENTIFIER == "mmtrustd")] | length == 0' "$J/stdout.json"
		check "journal: no plain-text context in the message" jqe -s \
			'[.[] | .MESSAGE | contains(" event=")] | any | not' "$J/all.json"
	fi
fi

summary test_events
