#!/bin/bash
# The metrics (docs/metrics.md) of the real daemon: a known state (tunnel,
# seg and disabled partners, no charon), known query answers, then the text
# from `mmtrustctl metrics` and from the [metrics] listen endpoint: valid by
# `promtool check metrics`, and exact values (partners, each partner's
# policy gauges as status says them, the answers by direction, pai and
# reason as they were given, every tunnel down, each partner's state, two
# CAs of one subject told apart by their fingerprint).  The endpoint: a
# port taken at start does not stop the daemon (status says why; it
# listens once the port is free); GET /metrics only (other paths 404,
# other methods 405), a huge head refused, a client that sends nothing
# dropped after its head timeout while the daemon answers meanwhile, idle
# connections never keep a scrape out; a listen address that is not
# loopback refused at load naming the field; no endpoint when listen is
# empty.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/promtool.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)

mm_setup metrics
CTL="$BUILD/mmtrustctl"
SOCK=$MM_TMP/query.sock
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
export MMTRUST_QUERY_SOCKET=$SOCK
PORT=9477
make_ca "$MM_TMP" ca
mkdir "$MM_TMP/renewed" && make_ca "$MM_TMP/renewed" ca 30  # a rollover: CN=ca again

conf() {  # conf [METRICS-LINES]
	cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $SOCK
[local]
cscf = 10.0.0.0/24
tunnel = 198.51.100.1
[ike]
enabled = no
${1:-}
CONF
}

# --- the listen setting: loopback only, refused naming the field ----------------
for bad in 0.0.0.0:$PORT 192.0.2.1:$PORT "[::]:$PORT" localhost:$PORT 127.0.0.1 \
	127.0.0.1:65536 "::1:$PORT"; do
	conf "[metrics]
listen = $bad"
	expect_exit 1 "listen = $bad refused" "$BUILD/mmtrustd" --check-config \
		--config "$MM_TMP/mmtrustd.conf"
	contains "$OUT$ERR" "metrics.listen" "listen = $bad: the error names metrics.listen"
done
for good in "[::1]:$PORT" 127.0.0.2:1; do
	conf "[metrics]
listen = $good"
	expect_exit 0 "listen = $good accepted" "$BUILD/mmtrustd" --check-config \
		--config "$MM_TMP/mmtrustd.conf"
done

# --- a known state --------------------------------------------------------------
ip -n "$NS" link set lo up
ip -n "$NS" link add mmm0 type veth peer name mmm1 &&
	ip -n "$NS" addr add 198.51.100.1/24 dev mmm0 && ip -n "$NS" link set mmm0 up &&
	ip -n "$NS" link set mmm1 up || fail "the tunnel address"
conf "[metrics]
listen = 127.0.0.1:$PORT"
# Someone holds the port first: the daemon starts anyway, says why, and
# listens once the port is free.
ip netns exec "$NS" python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("held", flush=True)
time.sleep(60)' $PORT >"$MM_TMP/holder.out" 2>&1 &
HOLDER=$!
mm_cleanup_hook() { mm_kill "${HOLDER:-}"; mm_kill "${SILENT:-}"; mm_kill "${IDLE:-}"; }
wait_for 5 grep -q held "$MM_TMP/holder.out" || fail "the port holder did not start"
mm_start_daemon 5 "$SOCK" answer
kill -0 "$DPID" 2>/dev/null && pass "the port taken: mmtrustd runs anyway" ||
	fail "the port taken: mmtrustd did not start"
# Known questions: the answers are counted as given (below).
ANSWERS=$MM_TMP/answers.jsonl
: >"$ANSWERS"
"$CTL" --json query inbound 192.0.2.10 --dst 10.0.0.5 >>"$ANSWERS" &&
	pass "the port taken: the daemon answers queries" || fail "the port taken: no query answer"
expect_exit 0 "the port taken: status" "$CTL" --json status
jq -e --arg l "127.0.0.1:$PORT" '.metrics | .listen == $l and .listening == false and
	(.problem | test("in use"))' <<<"$OUT" >/dev/null &&
	pass "status: metrics not listening, and why" || fail "status metrics: $(jq -c .metrics <<<"$OUT")"
expect_exit 4 "the port taken: status --check is a WARNING" "$CTL" status --check
contains "$OUT" "WARNING  - metrics: [metrics] listen 127.0.0.1:$PORT: not listening:" \
	"status --check names the endpoint and why"
[ "$(grep -c "\[metrics\] listen 127.0.0.1:$PORT: Address already in use" "$MM_TMP/daemon.log")" = 1 ] &&
	pass "one error line naming the address and why" ||
	fail "log: $(grep metrics "$MM_TMP/daemon.log")"
mm_kill "$HOLDER"
HOLDER=
listening() { "$CTL" --json status | jq -e '.metrics | .listening == true and
	(has("problem") | not)' >/dev/null; }
check "the port free again: listening within 12 s" wait_for 12 listening
check "the port free again: no metrics problem in status --check" \
	sh -c "! '$CTL' status --check | grep -q metrics"
HDR=$(ip netns exec "$NS" curl -sS --max-time 5 -D - -o /dev/null "http://127.0.0.1:$PORT/metrics")
contains "$HDR" "HTTP/1.1 200" "the port free again: a scrape answered"
[ "$(grep -c "\[metrics\] listen 127.0.0.1:$PORT:" "$MM_TMP/daemon.log")" = 1 ] &&
	pass "the same reason not logged again while retrying" ||
	fail "log: $(grep metrics "$MM_TMP/daemon.log")"

T1=ims.tunnel-one.example T2=ims.tunnel-two.example S=ims.seg.example D=ims.disabled.example
expect_exit 0 "add tunnel partner T1" "$CTL" partner add $T1 --kind ims --agreement yes \
	--range 192.0.2.0/25 --gateway 198.51.100.10 --ca "$MM_TMP/ca.pem"
expect_exit 0 "add tunnel partner T2" "$CTL" partner add $T2 --kind ims --agreement yes \
	--range 203.0.113.0/25 --range 2001:db8:2::/48 --gateway 198.51.100.20 --ca "$MM_TMP/ca.pem" \
	--ca "$MM_TMP/renewed/ca.pem"
expect_exit 0 "add seg partner S" "$CTL" partner add $S --kind ims --agreement yes --path seg \
	--range 198.18.0.0/24 --gateway 198.51.100.11 --ca "$MM_TMP/ca.pem"
expect_exit 0 "add disabled tunnel partner D" "$CTL" partner add $D --kind ims --agreement yes \
	--range 100.64.0.0/24 --gateway 198.51.100.30 --ca "$MM_TMP/ca.pem" --disable

# Known questions: (count, arguments); the answers are counted as given.
ask() {  # N ARGS...: ask N times, keep the answers
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$CTL" --json query "$@" >>"$ANSWERS" || fail "query $*"
	done
}
ask 3 inbound 192.0.2.10 --dst 10.0.0.5      # T1, no SA: strip unprotected
ask 2 inbound 198.18.0.7 --dst 10.0.0.5      # S: keep seg-trusted
ask 1 inbound 100.64.0.9 --dst 10.0.0.5      # D: strip partner-disabled
ask 4 inbound 192.0.2.200 --dst 10.0.0.5     # no partner
ask 2 outbound $S                            # S: keep
ask 1 outbound nobody.example                # not a partner: strip
jq -e -s 'map(select(.pai == "strip" and .reason == "unprotected")) | length == 3' \
	"$ANSWERS" >/dev/null && pass "T1's answers: strip unprotected" ||
	fail "T1's answers: $(cat "$ANSWERS")"
jq -e -s 'map(select(.pai == "keep" and .reason == "seg-trusted")) | length >= 2' \
	"$ANSWERS" >/dev/null && pass "S's answers: keep seg-trusted" ||
	fail "S's answers: $(cat "$ANSWERS")"
jq -e -s 'map(select(.reason == "partner-disabled")) | length == 1' "$ANSWERS" >/dev/null &&
	pass "D's answer: partner-disabled" || fail "D's answer: $(cat "$ANSWERS")"

# --- the text, from the admin socket and from HTTP ------------------------------
expect_exit 0 "mmtrustctl metrics" "$CTL" metrics
TEXT=$OUT
printf '%s\n' "$TEXT" >"$MM_TMP/ctl.prom"
expect_exit 2 "mmtrustctl metrics takes no argument" "$CTL" metrics extra
expect_exit 0 "mmtrustctl --json metrics" "$CTL" --json metrics
jq -e '.text | startswith("# HELP mmtrust_")' <<<"$OUT" >/dev/null &&
	pass "--json: the text in .text" || fail "--json: $OUT"

http() {  # http ARGS...: curl in the namespace
	ip netns exec "$NS" curl -sS --max-time 5 "$@"
}
HDR=$(http -D - -o "$MM_TMP/http.prom" "http://127.0.0.1:$PORT/metrics")
contains "$HDR" "HTTP/1.1 200" "GET /metrics: 200"
contains "$HDR" "Content-Type: text/plain; version=0.0.4" "GET /metrics: the 0.0.4 text type"
contains "$HDR" "Connection: close" "GET /metrics: Connection: close"
HDR=$(http -0 -D - -o /dev/null "http://127.0.0.1:$PORT/metrics?x=1")
contains "$HDR" " 200" "HTTP/1.0 GET /metrics?query: 200"

if promtool_get; then
	for f in ctl http; do
		if R=$("$PROMTOOL" check metrics <"$MM_TMP/$f.prom" 2>&1); then
			pass "promtool check metrics ($f): $R"
		else
			fail "promtool check metrics ($f): $R"
		fi
	done
	# the alerting rules of docs/operations.md: valid, and firing on what
	# they must only (tests/integration/prometheus/alerts_test.yml)
	check "promtool check rules examples/prometheus/mmtrust-alerts.yml" \
		"$PROMTOOL" check rules "$SRC/examples/prometheus/mmtrust-alerts.yml" >/dev/null
	check "promtool test rules: the alerts fire when they must, not otherwise" \
		sh -c "cd '$SRC/tests/integration/prometheus' && '$PROMTOOL' test rules alerts_test.yml >/dev/null"
else
	fail "no promtool"
fi

# metric NAME LABELS: the sample's value ("" when absent).  LABELS as in the text.
metric() {
	local k=$1
	[ -n "${2:-}" ] && k="$1{$2}"
	awk -v k="$k" '$1 == k { print $2 }' "$MM_TMP/${3:-ctl}.prom"
}
# is DESCRIPTION NAME LABELS WANT [FILE]
is() {
	local got
	got=$(metric "$2" "$3" "${5:-ctl}")
	[ "$got" = "$4" ] && pass "$1" || fail "$1: $2{$3} = '$got', want '$4'"
}
for f in ctl http; do
	is "$f: 4 partners" mmtrust_partners "" 4 $f
	is "$f: build info" mmtrust_build_info "version=\"$("$BUILD/mmtrustd" --version |
		awk '{print $NF}')\"" 1 $f
done
VERSION_LINE=$(grep '^mmtrust_build_info' "$MM_TMP/ctl.prom")
contains "$("$BUILD/mmtrustd" --version)" "$(sed 's/.*version="\([^"]*\)".*/\1/' <<<"$VERSION_LINE")" \
	"build info names the version mmtrustd --version says"
START=$(metric mmtrust_start_time_seconds)
NOW=$(date +%s)
[ -n "$START" ] && [ "$START" -le "$NOW" ] && [ "$START" -gt $((NOW - 120)) ] &&
	pass "start time within the last two minutes" || fail "start time '$START' (now $NOW)"
is "the kernel is programmed" mmtrust_kernel_programmed "" 1
is "no charon: ike not connected" mmtrust_ike_connected "" 0
is "the store is writable" mmtrust_store_writable "" 1
for p in $T1 $T2; do
	is "$p: tunnel up 0 (no charon)" mmtrust_partner_tunnel_up "partner=\"$p\"" 0
done
[ -z "$(metric mmtrust_partner_tunnel_up "partner=\"$S\"")" ] &&
	pass "seg partner: no tunnel_up series" || fail "seg partner has a tunnel_up series"
[ -z "$(metric mmtrust_partner_tunnel_up "partner=\"$D\"")" ] &&
	pass "disabled partner: no tunnel_up series" || fail "disabled partner has a tunnel_up series"
# Each partner's state as status says it: 1 for its own, 0 for the others.
for ps in "$T1 in-sync" "$T2 in-sync" "$S seg" "$D disabled"; do
	set -- $ps
	is "$1: state $2" mmtrust_partner_state "partner=\"$1\",state=\"$2\"" 1
	[ "$(grep -c "^mmtrust_partner_state{partner=\"$1\",.*} 1$" "$MM_TMP/ctl.prom")" = 1 ] &&
		pass "$1: one state only" || fail "$1: states $(grep "partner_state{partner=\"$1\"" "$MM_TMP/ctl.prom")"
done
is "T1: state error 0" mmtrust_partner_state "partner=\"$T1\",state=\"error\"" 0
# Two CAs of one subject (T2's rollover): two series, told apart by sha256.
for f in mmtrust_expiry_timestamp_seconds mmtrust_expiry_warning; do
	n=$(grep -c "^$f{what=\"partner-ca\",partner=\"$T2\",name=\"CN=ca\",sha256=\"[0-9A-F:]\{95\}\"}" \
		"$MM_TMP/ctl.prom")
	[ "$n" = 2 ] && pass "$f: T2's two CN=ca CAs, two series" || fail "$f: T2 has $n series"
done
ends=$(grep "^mmtrust_expiry_timestamp_seconds{what=\"partner-ca\",partner=\"$T2\"" "$MM_TMP/ctl.prom" |
	awk '{print $NF}' | sort -u | wc -l)
[ "$ends" = 2 ] && pass "T2's two CAs: their two ends" || fail "T2's CAs: $ends ends"
[ -z "$(grep '^mmtrust_expiry' "$MM_TMP/ctl.prom" | awk '{print $1}' | sort | uniq -d)" ] &&
	pass "no duplicate expiry series" || fail "duplicate expiry series"
is "T1 info" mmtrust_partner_info \
	"partner=\"$T1\",reqid=\"$("$CTL" --json partner show $T1 | jq .reqid)\",path=\"tunnel\",enabled=\"true\"" 1
is "D info: disabled" mmtrust_partner_info \
	"partner=\"$D\",reqid=\"$("$CTL" --json partner show $D | jq .reqid)\",path=\"tunnel\",enabled=\"false\"" 1
# The policy gauges are what status says.
STATUS=$("$CTL" --json status)
for p in $T1 $T2 $S $D; do
	for k in expected present in_sync missing foreign_conflicts; do
		want=$(jq -r --arg d "$p" --arg k "$k" \
			'.partners[] | select(.domain == $d) | .policies[$k]' <<<"$STATUS")
		is "$p: policies $k = status's" "mmtrust_partner_policies_$k" "partner=\"$p\"" "$want"
	done
	want=$(jq -r --arg d "$p" '.partners[] | select(.domain == $d) | .sas' <<<"$STATUS")
	is "$p: sas = status's" mmtrust_partner_sas "partner=\"$p\"" "$want"
	for dir in in out; do
		is "$p: bytes $dir 0" mmtrust_partner_sa_bytes_total "partner=\"$p\",direction=\"$dir\"" 0
		is "$p: packets $dir 0" mmtrust_partner_sa_packets_total \
			"partner=\"$p\",direction=\"$dir\"" 0
	done
	for e in replay_window replay integrity_failed; do
		is "$p: $e errors 0" mmtrust_partner_sa_errors_total "partner=\"$p\",error=\"$e\"" 0
	done
	is "$p: no rekeys" mmtrust_partner_rekeys_total "partner=\"$p\"" 0
	is "$p: no drift repairs" mmtrust_partner_drift_repairs_total "partner=\"$p\"" 0
done
E1=$(metric mmtrust_partner_policies_expected "partner=\"$T1\"")
[ "${E1:-0}" -gt 0 ] && pass "T1 expects policies ($E1)" || fail "T1 expects '$E1' policies"
is "T1: all in sync" mmtrust_partner_policies_in_sync "partner=\"$T1\"" "$E1"
is "D (disabled): none expected" mmtrust_partner_policies_expected "partner=\"$D\"" 0
# Every answer given is counted under its direction, pai and reason, and
# nothing else is.
want=$(jq -r -s '
	map({d: (if has("src") then "inbound" else "outbound" end), pai, reason})
	| group_by([.d, .pai, .reason])[]
	| "mmtrust_query_answers_total{direction=\"\(.[0].d)\",pai=\"\(.[0].pai)\",reason=\"\(.[0].reason)\"} \(length)"' \
	"$ANSWERS" | sort)
got=$(grep '^mmtrust_query_answers_total' "$MM_TMP/ctl.prom" | sort)
[ -n "$want" ] && [ "$want" = "$got" ] && pass "query answers counted as given ($(wc -l <<<"$got") series)" ||
	fail "query answers: want
$want
got
$got"
# Store commits: the four adds.
is "4 store commits" mmtrust_store_commit_duration_seconds_count "" 4
is "4 commits in +Inf" mmtrust_store_commit_duration_seconds_bucket 'le="+Inf"' 4
R=$(metric mmtrust_reconciles_total 'step="change"')
[ "${R:-0}" -ge 4 ] && pass "reconcile steps counted ($R changes)" || fail "reconciles: '$R'"
[ -n "$(metric mmtrust_reconcile_last_duration_seconds 'step="change"')" ] &&
	pass "last change step's duration" || fail "no last change duration"
# Each family's HELP and TYPE, every name mmtrust_*, counters *_total.
bad=$(awk '$1 == "#" && $2 == "TYPE" && ($3 !~ /^mmtrust_/ || ($4 == "counter" && $3 !~ /_total$/))' \
	"$MM_TMP/ctl.prom")
[ -z "$bad" ] && pass "names mmtrust_*, counters *_total" || fail "names: $bad"
[ "$(grep -c '^# HELP' "$MM_TMP/ctl.prom")" = "$(grep -c '^# TYPE' "$MM_TMP/ctl.prom")" ] &&
	pass "a HELP for every TYPE" || fail "HELP/TYPE counts differ"

# --- the endpoint refuses what is not GET /metrics ------------------------------
HDR=$(http -D - -o /dev/null "http://127.0.0.1:$PORT/")
contains "$HDR" "HTTP/1.1 404" "GET /: 404"
HDR=$(http -D - -o /dev/null "http://127.0.0.1:$PORT/metricsx")
contains "$HDR" "HTTP/1.1 404" "GET /metricsx: 404"
HDR=$(http -D - -o /dev/null -X POST --data x=1 "http://127.0.0.1:$PORT/metrics")
contains "$HDR" "HTTP/1.1 405" "POST /metrics: 405"
contains "$HDR" "Allow: GET" "405 says Allow: GET"
HDR=$(http -D - -o /dev/null -X DELETE "http://127.0.0.1:$PORT/metrics")
contains "$HDR" "HTTP/1.1 405" "DELETE /metrics: 405"

# raw/slow clients, in python: a huge head, nothing at all, garbage.
cat >"$MM_TMP/clients.py" <<'PY'
import socket, sys, time
port = int(sys.argv[2])

def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s

def answer(s):
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except ConnectionResetError:
        data += b"<reset>"
    return data

what = sys.argv[1]
if what == "huge":
    s = conn()
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    a = answer(s)
    ok = a.startswith(b"HTTP/1.1 431") or a in (b"", b"<reset>")
    print("PASS huge head refused" if ok and b"mmtrust_" not in a else "FAIL huge head: %r" % a[:200])
elif what == "garbage":
    s = conn()
    s.sendall(b"\x00\x01 GARBAGE\r\n\r\n")
    a = answer(s)
    print("PASS garbage: 400" if a.startswith(b"HTTP/1.1 400") else "FAIL garbage: %r" % a[:200])
    s = conn()
    s.sendall(b"GET /metrics HTTP/2.0\r\n\r\n")
    a = answer(s)
    print("PASS HTTP/2.0: 505" if a.startswith(b"HTTP/1.1 505") else "FAIL HTTP/2.0: %r" % a[:200])
elif what == "silent":
    # Opens, sends half a head; the daemon must drop it after its head
    # timeout (1 s).  Prints when it is connected, then how long until closed.
    s = conn()
    s.sendall(b"GET /metrics HTTP/1.1\r\n")   # half a head, never finished
    print("connected", flush=True)
    t = time.monotonic()
    a = answer(s)
    print("closed %.1f %d" % (time.monotonic() - t, len(a)), flush=True)
elif what == "idle":
    # Opens N connections that send nothing, holds them for S seconds.
    n, secs = int(sys.argv[3]), float(sys.argv[4])
    held = [conn() for _ in range(n)]
    print("open %d" % len(held), flush=True)
    time.sleep(secs)
PY
PYNS() { ip netns exec "$NS" python3 "$MM_TMP/clients.py" "$@"; }
results() {
	local line
	while IFS= read -r line; do
		case $line in
		"PASS "*) pass "${line#PASS }" ;;
		"FAIL "*) fail "${line#FAIL }" ;;
		esac
	done
}
results < <(PYNS huge $PORT 2>&1)
results < <(PYNS garbage $PORT 2>&1)

# A silent client, and the daemon answers meanwhile.
PYNS silent $PORT >"$MM_TMP/silent.out" 2>&1 &
SILENT=$!
wait_for 5 grep -q connected "$MM_TMP/silent.out" || fail "the silent client did not connect"
t0=$(date +%s%N)
expect_exit 0 "a query answered while a metrics client is silent" "$CTL" query inbound 192.0.2.10 \
	--dst 10.0.0.5
HDR=$(http -D - -o /dev/null "http://127.0.0.1:$PORT/metrics")
contains "$HDR" "HTTP/1.1 200" "another scrape answered while a client is silent"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt $((2000 * MM_SLOW)) ] && pass "both within ${ms} ms" || fail "took $ms ms"
wait "$SILENT"
SILENT=
read -r _ secs len < <(grep closed "$MM_TMP/silent.out")
awk -v s="${secs:-99}" 'BEGIN { exit !(s >= 0.5 && s <= 3) }' &&
	pass "the silent client dropped after ${secs}s (head timeout 1 s), nothing sent to it (${len} bytes)" ||
	fail "silent client: $(cat "$MM_TMP/silent.out")"
[ "${len:-1}" = 0 ] || fail "the silent client got $len bytes"
kill -0 "$DPID" 2>/dev/null && pass "daemon still running" || fail "daemon died"

# 40 idle connections (16 slots): a real scrape still gets in at once.
ip netns exec "$NS" python3 "$MM_TMP/clients.py" idle $PORT 40 8 >"$MM_TMP/idle.out" 2>&1 &
IDLE=$!
wait_for 5 grep -q "open 40" "$MM_TMP/idle.out" || fail "idle clients: $(cat "$MM_TMP/idle.out")"
t0=$(date +%s%N)
HDR=$(http -D - -o "$MM_TMP/idle.prom" "http://127.0.0.1:$PORT/metrics")
ms=$((($(date +%s%N) - t0) / 1000000))
contains "$HDR" "HTTP/1.1 200" "a scrape among 40 idle connections answered"
grep -q '^mmtrust_partners 4$' "$MM_TMP/idle.prom" && pass "... with the whole text" ||
	fail "the scrape among idle connections: $(head -c 200 "$MM_TMP/idle.prom")"
[ "$ms" -lt $((2000 * MM_SLOW)) ] && pass "... within ${ms} ms" || fail "the scrape took $ms ms"
mm_kill "$IDLE"
IDLE=
sleep 2  # the daemon has closed its side of them

# Out of file descriptors: the listener rests instead of spinning the loop.
cpu() { awk '{ print $14 + $15 }' "/proc/$DPID/stat"; }  # utime + stime, ticks
NOFILE=$(prlimit --pid "$DPID" --nofile --noheadings --output SOFT)
# the lowest free descriptor: one more connection fits, then EMFILE
free=$(ls "/proc/$DPID/fd" | sort -n | awk '$1 != NR - 1 { print NR - 1; f = 1; exit }
	END { if (!f) print NR }')
check "the daemon's file limit lowered to one free descriptor ($((free + 1)))" \
	prlimit --pid "$DPID" --nofile=$((free + 1)):
ip netns exec "$NS" python3 "$MM_TMP/clients.py" idle $PORT 6 4 >"$MM_TMP/emfile.out" 2>&1 &
IDLE=$!
wait_for 5 grep -q "open 6" "$MM_TMP/emfile.out" || fail "EMFILE clients: $(cat "$MM_TMP/emfile.out")"
c0=$(cpu)
sleep 2
c1=$(cpu)
[ $((c1 - c0)) -lt $((30 * MM_SLOW)) ] && pass "EMFILE: no busy loop ($((c1 - c0)) ticks of CPU in 2 s)" ||
	fail "EMFILE: the daemon spins ($((c1 - c0)) ticks of CPU in 2 s)"
mm_kill "$IDLE"
IDLE=
check "the file limit back to $NOFILE" prlimit --pid "$DPID" --nofile="$NOFILE:"
scraped() { http -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics" | grep -q 200; }
check "a scrape answered again after EMFILE" wait_for 5 scraped

# --- a drift repair and a foreign conflict, per partner --------------------------
scrape() { "$CTL" metrics >"$MM_TMP/ctl.prom"; }
RT1=$("$CTL" --json partner show $T1 | jq .reqid)
# ip cannot name a tagged policy by selector: by its index.
idx=$(ip -n "$NS" -s xfrm policy list dir in | awk -v r="$RT1" '
	{ for (i = 1; i < NF; i++) {
		if ($i == "index") ix = $(i + 1)
		if ($i == "reqid" && $(i + 1) + 0 == r) { print ix; exit } } }')
R0=$(metric mmtrust_reconciles_total 'step="repair"')
check "T1's inbound policy deleted by hand (index ${idx:-?})" \
	ip -n "$NS" xfrm policy delete index "${idx:-0}" dir in
repaired() { scrape && [ "$(metric mmtrust_partner_drift_repairs_total "partner=\"$T1\"")" = 1 ]; }
check "T1's drift repair counted" wait_for 5 repaired
is "T2: no drift repair" mmtrust_partner_drift_repairs_total "partner=\"$T2\"" 0
R1=$(metric mmtrust_reconciles_total 'step="repair"')
[ "${R1:-0}" -gt "${R0:-0}" ] && pass "repair step counted ($R0 -> $R1)" || fail "repairs $R0 -> $R1"
is "T1 in sync again" mmtrust_partner_policies_in_sync "partner=\"$T1\"" "$E1"
check "a foreign policy on T2's outbound selector" ip -n "$NS" xfrm policy add src 10.0.0.0/24 \
	dst 203.0.113.0/25 dir out priority 10 tmpl src 198.51.100.1 dst 198.51.100.99 proto esp \
	reqid 9 mode tunnel
conflict() { scrape && [ "$(metric mmtrust_partner_policies_foreign_conflicts "partner=\"$T2\"")" = 1 ]; }
check "T2's foreign conflict in the metrics" wait_for 5 conflict
is "T1: no conflict" mmtrust_partner_policies_foreign_conflicts "partner=\"$T1\"" 0
ip -n "$NS" xfrm policy delete src 10.0.0.0/24 dst 203.0.113.0/25 dir out
noconflict() { scrape && [ "$(metric mmtrust_partner_policies_foreign_conflicts "partner=\"$T2\"")" = 0 ]; }
check "T2's conflict gone with the foreign policy" wait_for 5 noconflict

# --- a partner in error: its state says so --------------------------------------
E=ims.v6-only.example
expect_exit 0 "add a partner whose only gateway is IPv6 (our tunnel address: IPv4)" "$CTL" \
	partner add $E --kind ims --agreement yes --range 192.0.2.128/25 --gateway 2001:db8::10 \
	--ca "$MM_TMP/ca.pem"
STATE=$("$CTL" --json status | jq -r --arg d $E '.partners[] | select(.domain == $d) | .state')
[ "$STATE" = error ] && pass "status: E is in error" || fail "status: E is '$STATE'"
scrape
is "E: state error 1" mmtrust_partner_state "partner=\"$E\",state=\"error\"" 1
is "E: state in-sync 0" mmtrust_partner_state "partner=\"$E\",state=\"in-sync\"" 0
is "E: state missing 0" mmtrust_partner_state "partner=\"$E\",state=\"missing\"" 0
is "T1 still in-sync" mmtrust_partner_state "partner=\"$T1\",state=\"in-sync\"" 1
expect_exit 0 "delete E" "$CTL" partner del $E

# --- listen empty: no endpoint; the kernel not programmed: states stay ----------
mm_kill "$DPID"
DPID=
conf "[spd]
enabled = no"
mm_start_daemon 5 "$SOCK" answer
expect_exit 0 "mmtrustctl metrics without listen" "$CTL" metrics
contains "$OUT" "mmtrust_partners 4" "the admin op answers without listen"
printf '%s\n' "$OUT" >"$MM_TMP/ctl.prom"
is "not programmed: kernel_programmed 0" mmtrust_kernel_programmed "" 0
is "not programmed: T1's state series stay (unknown 1)" mmtrust_partner_state \
	"partner=\"$T1\",state=\"unknown\"" 1
is "not programmed: T1 not in-sync" mmtrust_partner_state "partner=\"$T1\",state=\"in-sync\"" 0
[ -z "$(metric mmtrust_partner_policies_expected "partner=\"$T1\"")" ] &&
	pass "not programmed: no policy gauges" || fail "not programmed: policy gauges present"
expect_exit 0 "status without listen" "$CTL" --json status
jq -e '.metrics == {"listen": "", "listening": false}' <<<"$OUT" >/dev/null &&
	pass "status: metrics off (listen \"\")" || fail "status metrics off: $(jq -c .metrics <<<"$OUT")"
if ip netns exec "$NS" curl -sS --max-time 3 -o /dev/null "http://127.0.0.1:$PORT/metrics" 2>/dev/null; then
	fail "an endpoint without [metrics] listen"
else
	pass "no endpoint without [metrics] listen"
fi
grep -q "metrics on http" "$MM_TMP/daemon.log" && pass "the endpoint was logged when set" ||
	fail "no 'metrics on' log line"

mm_kill "$DPID"
DPID=
expect_exit 3 "mmtrustctl metrics: daemon unreachable" "$CTL" metrics
[ -z "$OUT" ] && pass "nothing on stdout when unreachable" || fail "stdout: $OUT"

summary test_metrics
