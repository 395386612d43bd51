#!/bin/bash
# The CSCF query socket (docs/protocol.md) of the real daemon: every row of
# the inbound and outbound decision tables that needs no tunnel (the rows
# with a tunnel up, and dst, are test_query_dst.sh's, with a stand-in for
# charon; a real SA is tests/vm's), canonical spellings,
# wrong types, pipelining with ids, events for subscribers, and hostile
# clients (invalid JSON, 1 MB lines, half lines, 500 idle connections, a
# subscriber that never reads, more clients than max_clients) while a
# well-behaved client keeps being answered within 100 ms; who may connect.
# The hostile clients are in query_clients.py.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
QC=$(realpath "$(dirname "$0")/query_clients.py")
# The system python: the permission checks run it as nobody.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

mm_setup query
chmod 755 "$MM_TMP"
PROBE=
mm_cleanup_hook() { mm_kill "$PROBE"; }

CTL="$BUILD/mmtrustctl"
SOCK=$MM_TMP/query.sock
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
MAX_CLIENTS=600
LATENCY_MS=$((100 * MM_SLOW))
# The query group: one that nobody is not in.
QGROUP=
for g in daemon bin sys adm; do
	getent group "$g" >/dev/null && ! id -nG nobody | grep -qw "$g" && { QGROUP=$g; break; }
done
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $SOCK
query_group = $QGROUP
[spd]
enabled = no
[query]
max_clients = $MAX_CLIENTS
CONF

# An address of each family on the host ([local] tunnel is empty: any
# usable one may carry a tunnel), so a tunnel partner without an SA is
# `unprotected`; with none, the answers would say tunnel-address-missing
# (test_host.sh's rows).
ip -n "$NS" link add mmq0 type veth peer name mmq1 &&
	ip -n "$NS" addr add 198.51.100.2/24 dev mmq0 &&
	ip -n "$NS" addr add 2001:db8:fffe::2/64 dev mmq0 nodad && ip -n "$NS" link set mmq1 up &&
	ip -n "$NS" link set mmq0 up ||
	fail "the host's addresses"
start_daemon() { mm_start_daemon 5 "$SOCK" answer; }

# q REQUEST...: the answers, one line each.
q() { "$PY" "$QC" ask "$SOCK" "$@"; }
# row DESCRIPTION REQUEST JQ-FILTER: the answer must satisfy the filter.
row() {
	local a
	a=$(q "$2" 2>&1)
	if jq -e "$3" <<<"$a" >/dev/null 2>&1; then pass "$1"; else fail "$1: $2 -> $a"; fi
}
# The "PASS what"/"FAIL what" lines of a query_clients.py scenario.
results() {
	local line
	while IFS= read -r line; do
		case $line in
		"PASS "*) pass "${line#PASS }" ;;
		"FAIL "*) fail "${line#FAIL }" ;;
		"") ;;
		*) echo "    $line" ;;
		esac
	done <<<"$1"
	return 0
}

# A well-behaved client asking all the time (the seg partner: keep) while
# a hostile one does its worst; every answer must come within LATENCY_MS.
probe_start() {
	rm -f "$MM_TMP"/probe.*
	"$PY" "$QC" probe "$SOCK" "$MM_TMP/probe.json" "$MM_TMP/probe.stop" "$MM_TMP/probe.ready" \
		198.18.0.7 keep &
	PROBE=$!
	wait_for 5 test -e "$MM_TMP/probe.ready" || fail "the probe did not start"
}
probe_stop() {
	local s
	touch "$MM_TMP/probe.stop"
	wait "$PROBE"
	PROBE=
	s=$(cat "$MM_TMP/probe.json" 2>/dev/null)
	if jq -e ".errors == 0 and .n >= 20 and .max_ms < $LATENCY_MS" <<<"$s" >/dev/null 2>&1; then
		pass "$1: meanwhile a well-behaved client was answered within $LATENCY_MS ms"
		echo "    $1: well-behaved client $(jq -r '"\(.n) queries, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms"' <<<"$s")"
	else
		fail "$1: the well-behaved client was not served throughout: ${s:-no figures}"
	fi
}
# scenario NAME SUBCOMMAND ARGS...: a query_clients.py scenario under the probe.
scenario() {
	local name=$1 out rc
	shift
	probe_start
	out=$("$PY" "$QC" "$1" "$SOCK" "${@:2}" 2>&1) && rc=0 || rc=$?
	probe_stop "$name"
	results "$out"
	[ $rc -eq 0 ] || fail "$name: the client failed (exit $rc): $(tail -3 <<<"$out")"
}

make_ca "$MM_TMP" ca-a
make_ca "$MM_TMP" ca-s
make_ca "$MM_TMP" ca-n
start_daemon

# --- permissions -----------------------------------------------------------
P='{"op":"ping"}'
if [ -n "$QGROUP" ] && id nobody >/dev/null 2>&1; then
	check "query socket is 0660, group $QGROUP" \
		test "$(stat -c %a:%G "$SOCK")" = "660:$QGROUP"
	expect_exit 3 "nobody outside $QGROUP cannot connect" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$PY" "$QC" ask "$SOCK" "$P"
	# Past the file's mode (CAP_DAC_OVERRIDE): the daemon's own check closes it.
	expect_exit 4 "nobody past the file mode: the daemon closes the connection unanswered" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		--inh-caps=+dac_override --ambient-caps=+dac_override "$PY" "$QC" ask "$SOCK" "$P"
	contains "$(cat "$MM_TMP/daemon.log")" "uid $(id -u nobody) (pid" "the refusal is logged with the uid"
	expect_exit 0 "a process whose group is $QGROUP can query" \
		setpriv --reuid=nobody --regid="$QGROUP" --clear-groups "$PY" "$QC" ask "$SOCK" "$P"
	contains "$OUT" '"ok":true' "the group member gets an answer"
	# systemd's SupplementaryGroups=: in the group without /etc/group saying so.
	expect_exit 0 "a process with $QGROUP as a supplementary group can query" \
		setpriv --reuid=nobody --regid=nogroup --groups="$QGROUP" "$PY" "$QC" ask "$SOCK" "$P"
else
	echo "    (no group for the permission checks; skipped)"
fi

# --- provisioning ------------------------------------------------------------
expect_exit 0 "add ims partner A (agreement, tunnel)" "$CTL" partner add ims.partner-a.example \
	--kind ims --agreement yes --range 192.0.2.0/24 --range 2001:db8:a::/48 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add ims partner S (agreement, seg)" "$CTL" partner add ims.partner-s.example \
	--kind ims --agreement yes --path seg --range 198.18.0.0/24 --range 2001:db8:5::/48 \
	--gateway 198.51.100.11 --ca "$MM_TMP/ca-s.pem"
expect_exit 0 "add non-ims partner N (no agreement)" "$CTL" partner add sip.provider-n.example \
	--kind non-ims --agreement no --range 203.0.113.0/25 --gateway 198.51.100.20 \
	--ca "$MM_TMP/ca-n.pem"
expect_exit 0 "add disabled partner D (agreement, seg)" "$CTL" partner add ims.partner-d.example \
	--kind ims --agreement yes --path seg --disable --range 203.0.113.128/25 \
	--gateway 198.51.100.30 --ca "$MM_TMP/ca-s.pem"

row "ping counts the partners" "$P" '.ok and .result.partners == 4 and (.result.version | type) == "string"'

# --- inbound -------------------------------------------------------------------
NONE='.partner == null and .kind == null and .agreement == false and .path == null and .enabled == false'
row "inbound from no partner's range: strip, unknown-source" \
	'{"op":"inbound","src":"10.1.2.3"}' \
	".ok and (.result | $NONE and .src == \"10.1.2.3\" and .protected == false and .sa == null and .pai == \"strip\" and .reason == \"unknown-source\")"
row "inbound IPv6 from no partner's range: unknown-source" \
	'{"op":"inbound","src":"2001:db8:ffff::1"}' '.result.reason == "unknown-source" and .result.pai == "strip"'
row "inbound from a tunnel partner without an SA: strip, unprotected" \
	'{"op":"inbound","src":"192.0.2.10"}' \
	'.result | .partner == "ims.partner-a.example" and .kind == "ims" and .agreement and .path == "tunnel" and .enabled and .protected == false and .sa == null and .pai == "strip" and .reason == "unprotected"'
row "inbound IPv6 spelled in capitals with zeros: canonical src, longest match A" \
	'{"op":"inbound","src":"2001:DB8:A:0:0:0:0:1"}' \
	'.result | .src == "2001:db8:a::1" and .partner == "ims.partner-a.example" and .reason == "unprotected"'
row "inbound naming an SPI no SA has: still strip, unprotected" \
	'{"op":"inbound","src":"192.0.2.10","spi":"0xc1a2b3c4"}' \
	'.result | .protected == false and .pai == "strip" and .reason == "unprotected"'
row "inbound SPI as a number is accepted" \
	'{"op":"inbound","src":"192.0.2.10","spi":3249714116}' '.ok and .result.pai == "strip"'
row "inbound from a seg partner with agreement: keep, seg-trusted" \
	'{"op":"inbound","src":"198.18.0.7"}' \
	'.result | .partner == "ims.partner-s.example" and .path == "seg" and .protected == false and .sa == null and .pai == "keep" and .reason == "seg-trusted"'
row "inbound from a seg partner naming an SPI: keep (SPIs concern tunnel partners)" \
	'{"op":"inbound","src":"2001:db8:5::9","spi":"0x1"}' '.result.pai == "keep" and .result.reason == "seg-trusted"'
row "inbound from a partner without agreement: strip, no-agreement" \
	'{"op":"inbound","src":"203.0.113.5"}' \
	'.result | .partner == "sip.provider-n.example" and .kind == "non-ims" and .agreement == false and .pai == "strip" and .reason == "no-agreement"'
row "inbound from a disabled partner (agreement, seg): strip, partner-disabled" \
	'{"op":"inbound","src":"203.0.113.200"}' \
	'.result | .partner == "ims.partner-d.example" and .enabled == false and .pai == "strip" and .reason == "partner-disabled"'
row "range boundary: 203.0.113.127 is N's" '{"op":"inbound","src":"203.0.113.127"}' '.result.partner == "sip.provider-n.example"'
row "range boundary: 203.0.113.128 is D's" '{"op":"inbound","src":"203.0.113.128"}' '.result.partner == "ims.partner-d.example"'

# --- outbound ------------------------------------------------------------------
row "outbound to a non-partner domain: strip, not-a-partner" \
	'{"op":"outbound","domain":"other.example"}' \
	".result | $NONE and .domain == \"other.example\" and .trusted == false and .tunnel == \"none\" and .pai == \"strip\" and .reason == \"not-a-partner\""
row "outbound to a tunnel partner without an SA: strip, tunnel down" \
	'{"op":"outbound","domain":"ims.partner-a.example"}' \
	'.result | .partner == "ims.partner-a.example" and .trusted == false and .tunnel == "down" and .pai == "strip" and .reason == "unprotected"'
row "outbound to a seg partner: keep, trusted, tunnel none" \
	'{"op":"outbound","domain":"ims.partner-s.example"}' \
	'.result | .trusted and .tunnel == "none" and .pai == "keep" and .reason == "seg-trusted"'
row "outbound to a partner without agreement: strip" \
	'{"op":"outbound","domain":"sip.provider-n.example"}' '.result | .trusted == false and .pai == "strip" and .reason == "no-agreement"'
row "outbound to a disabled partner: strip, partner-disabled" \
	'{"op":"outbound","domain":"ims.partner-d.example"}' '.result | .trusted == false and .pai == "strip" and .reason == "partner-disabled"'
row "outbound domain in capitals with a trailing dot: canonical, found" \
	'{"op":"outbound","domain":"IMS.Partner-S.Example."}' \
	'.result | .domain == "ims.partner-s.example" and .partner == "ims.partner-s.example" and .pai == "keep"'
row "outbound with dst in a seg partner's range: keep" \
	'{"op":"outbound","dst":"198.18.0.9"}' '.result | .dst == "198.18.0.9" and .partner == "ims.partner-s.example" and .pai == "keep"'
row "outbound with an IPv6 dst: canonical" \
	'{"op":"outbound","dst":"2001:DB8:5:0::1"}' '.result | .dst == "2001:db8:5::1" and .partner == "ims.partner-s.example"'
row "outbound with dst in no range: strip, not-a-partner" \
	'{"op":"outbound","dst":"10.1.2.3"}' '.result | .partner == null and .pai == "strip" and .reason == "not-a-partner"'
row "outbound with Privacy: id to a trusted partner: keep" \
	'{"op":"outbound","domain":"ims.partner-s.example","privacy":["id"]}' '.result.pai == "keep"'
row "outbound untrusted without Privacy (strip-always, the default): strip" \
	'{"op":"outbound","domain":"other.example","privacy":["none"]}' '.result.pai == "strip" and .result.reason == "not-a-partner"'

# --- spi, ids on errors, wrong types, unknown op ------------------------------
row "spi of no SA: partner null, canonical hex" '{"op":"spi","spi":"0xC1A2B3C4"}' \
	'.ok and .result.spi == "0xc1a2b3c4" and .result.partner == null'
row "spi as a number" '{"op":"spi","spi":255}' '.result.spi == "0x000000ff"'
row "an error answer echoes the id" '{"op":"inbound","src":5,"id":"e1"}' '.ok == false and .id == "e1"'
invalid() { row "$1: invalid, field $2" "$3" ".ok == false and .error.code == \"invalid\" and .error.field == \"$2\" and (.error.message | length) > 0"; }
invalid "inbound src a number" src '{"op":"inbound","src":5}'
invalid "inbound without src" src '{"op":"inbound"}'
invalid "inbound src not an address" src '{"op":"inbound","src":"300.1.1.1"}'
invalid "inbound src a prefix" src '{"op":"inbound","src":"192.0.2.0/24"}'
invalid "inbound spi not hex" spi '{"op":"inbound","src":"192.0.2.1","spi":"0xzz"}'
invalid "inbound spi negative" spi '{"op":"inbound","src":"192.0.2.1","spi":-1}'
invalid "inbound spi over 32 bits" spi '{"op":"inbound","src":"192.0.2.1","spi":4294967296}'
invalid "inbound spi a bool" spi '{"op":"inbound","src":"192.0.2.1","spi":true}'
invalid "outbound with neither domain nor dst" domain '{"op":"outbound"}'
invalid "outbound with both domain and dst" dst '{"op":"outbound","domain":"a.example","dst":"192.0.2.1"}'
invalid "outbound domain not a domain" domain '{"op":"outbound","domain":"not a domain"}'
invalid "outbound dst not an address" dst '{"op":"outbound","dst":"ims.partner-a.example"}'
invalid "outbound domain a number" domain '{"op":"outbound","domain":5}'
invalid "outbound domain a number next to a valid dst (not silently ignored)" domain \
	'{"op":"outbound","domain":5,"dst":"198.18.0.9"}'
invalid "outbound privacy a number" privacy '{"op":"outbound","domain":"a.example","privacy":5}'
invalid "outbound privacy a list of numbers" privacy '{"op":"outbound","domain":"a.example","privacy":[1]}'
invalid "spi without spi" spi '{"op":"spi"}'
row "unknown op: unknown-op, field op, names it" '{"op":"frobnicate","id":1}' \
	'.ok == false and .error.code == "unknown-op" and .error.field == "op" and (.error.message | contains("frobnicate")) and .id == 1'
row "op not a string: invalid-request" '{"op":["inbound"]}' '.error.code == "invalid-request" and .error.field == "op"'

# --- pipelining ----------------------------------------------------------------
out=$("$PY" "$QC" pipeline "$SOCK" 100 198.18.0.7 2>&1) || fail "pipeline client: $out"
results "$out"

# --- events for a subscriber that reads ----------------------------------------
E=ims.partner-e.example
out=$("$PY" "$QC" events "$SOCK" 3 "'$CTL' partner add $E --kind ims --agreement no \
	--range 192.0.3.0/24 --gateway 198.51.100.40 --ca '$MM_TMP/ca-a.pem' &&
	'$CTL' partner set $E --agreement yes && '$CTL' partner del $E" 2>&1) ||
	fail "events client: $out"
check "subscriber: partner-added, partner-changed, partner-removed in order" \
	test "$(jq -sc '[.[:3][] | [.event, .partner]]' <<<"$out" 2>/dev/null)" = \
	"[[\"partner-added\",\"$E\"],[\"partner-changed\",\"$E\"],[\"partner-removed\",\"$E\"]]"
check "events carry no id and no ok" test "$(jq -s '[.[:3][] | select(has("id") or has("ok"))] | length' <<<"$out" 2>/dev/null)" = 0
check "a subscriber's requests are still answered" \
	test "$(jq -s '.[3] | .ok and .id == "still"' <<<"$out" 2>/dev/null)" = true

# --- hostile clients, a well-behaved one alongside -----------------------------
scenario "invalid JSON" invalid-json 198.18.0.7
scenario "1 MB lines" long-line 198.18.0.7
scenario "half a line then silence" half-line 198.18.0.7 1.5
scenario "500 idle connections" idle 500 "$DPID" 1
scenario "max_clients" max-clients "$MAX_CLIENTS" 1 20 "$DPID"
"$CTL" export >"$MM_TMP/base.yaml"
# Its own well-behaved client, in a pause of the applies that make the
# events (an apply holds the daemon's loop itself; see query_clients.py).
out=$("$PY" "$QC" slow-subscriber "$SOCK" "$CTL" "$MM_TMP/base.yaml" "$MM_TMP/ca-a.pem" \
	"$MM_TMP" 100 198.18.0.7 keep "$LATENCY_MS" 2>&1) || fail "slow subscriber client: $out"
results "$out"
contains "$(cat "$MM_TMP/daemon.log")" "bytes of events unread; disconnected" \
	"the daemon logs the stalled subscriber's disconnection"
check "the table is back to the 4 partners" \
	test "$("$CTL" --json partner list | jq '.partners | length')" = 4
check "daemon still running after the hostile clients" kill -0 "$DPID"

# --- SIGHUP: the privacy mode is re-read; subscribers are told -----------------
sed -i 's/^\[query\]$/[query]\nuntrusted = strip-if-privacy-id/' "$MM_TMP/mmtrustd.conf"
out=$("$PY" "$QC" events "$SOCK" 1 "kill -HUP $DPID" 2>&1)
check "after SIGHUP subscribers get a table-reloaded event" \
	test "$(jq -sc '.[0]' <<<"$out" 2>/dev/null)" = '{"event":"table-reloaded","partner":"*"}'
wait_for 5 sh -c "'$PY' '$QC' ask '$SOCK' '{\"op\":\"outbound\",\"domain\":\"other.example\"}' | grep -q '\"keep\"'" ||
	fail "SIGHUP did not switch to strip-if-privacy-id"
row "strip-if-privacy-id: untrusted, no Privacy: keep" \
	'{"op":"outbound","domain":"other.example"}' '.result.pai == "keep" and .result.reason == "untrusted-no-privacy-requested"'
row "strip-if-privacy-id: untrusted with Privacy: id: strip" \
	'{"op":"outbound","domain":"other.example","privacy":["user","ID"]}' '.result.pai == "strip" and .result.reason == "not-a-partner"'
row "strip-if-privacy-id: Privacy header text \"user; id\": strip" \
	'{"op":"outbound","dst":"192.0.2.1","privacy":"user; id"}' '.result.pai == "strip" and .result.reason == "unprotected"'
row "strip-if-privacy-id: Privacy header text \"none\": keep" \
	'{"op":"outbound","dst":"192.0.2.1","privacy":"none"}' '.result.pai == "keep"'
row "strip-if-privacy-id does not change inbound" '{"op":"inbound","src":"10.1.2.3"}' '.result.pai == "strip"'

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "daemon stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
check "the query socket is removed at stop" test ! -e "$SOCK"
summary "test_query"
