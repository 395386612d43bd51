#!/bin/bash
# libmmtrust under failure (client/mmtrust.h, "Failure"), one handle driven
# by tests/client/failclient while the test stops, pauses and restarts the
# real mmtrustd underneath it:
# - daemon paused (SIGSTOP): the call times out and fails closed, calls
#   during the back-off fail at once, and after SIGCONT the daemon's late
#   answer ("keep" for 198.18.0.7) is never returned for a later question
#   (10.1.2.3, unknown-source): the stale-answer case of issue 10;
# - daemon stopped: every call fails closed at once (no back-off, no wait);
# - daemon restarted: the same handle reconnects by itself, and the first
#   call after the restart is answered;
# and, against fault_query_server.py (a fault-injection fake: what the real
# daemon never does), answers out of order or with another id (discarded),
# without id, garbage, for another subject, without result, half a line
# (fail closed, connection reset), a connection closed before the answer
# (one retry on a new connection for the typed calls, none for a raw call
# whose request went out), two answers to one request, and a listen
# backlog that stays full (timeout_ms bounds connect).
# MM_FAILCLIENT runs another driver build (e.g. one against an older
# library, see tests/client/failclient.c).
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
FAULT=$(realpath "$(dirname "$0")/fault_query_server.py")
FAILCLIENT=${MM_FAILCLIENT:-$BUILD/tests/client/failclient}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
[ -x "$FAILCLIENT" ] || { echo "no $FAILCLIENT (make $BUILD/tests/client/failclient)" >&2; exit 1; }

mm_setup client-failure
FPID=
mm_cleanup_hook() {
	mm_kill "$FPID"
	[ -n "$DPID" ] && kill -CONT "$DPID" 2>/dev/null
	[ -n "${FC[1]:-}" ] && exec {FC[1]}>&-
	[ -n "${DRIVER_PID:-}" ] && mm_kill "$DRIVER_PID"
}

CTL="$BUILD/mmtrustctl"
SOCK=$MM_TMP/query.sock
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
TIMEOUT=$((300 * MM_SLOW))    # the handle's timeout_ms
BACKOFF=$((1500 * MM_SLOW))   # its back-off
FAST=$((100 * MM_SLOW))       # "at once"
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $SOCK
[spd]
enabled = no
CONF

# The driver: one handle for the whole test, commands in, JSON lines out.
coproc FC { "$FAILCLIENT"; }
# bash unsets FC_PID once the coprocess is reaped: keep it apart.
DRIVER_PID=$FC_PID
# fc COMMAND...: run one command; its answer in $R ({} when none came).
fc() {
	R='{}'
	[ -n "${FC[1]:-}" ] || { fail "the driver is gone (command: $*)"; return; }
	echo "$*" >&"${FC[1]}"
	IFS= read -r -t $((30 * MM_SLOW)) R <&"${FC[0]}" || R='{}'
}
# expect DESCRIPTION JQ-FILTER: the last answer must satisfy the filter.
expect() {
	if jq -e "$2" <<<"$R" >/dev/null 2>&1; then pass "$1"; else fail "$1: $2 <- $R"; fi
}
# The fail-closed strip answer of a typed call that returned RC.
strip_on() {
	echo ".rc == \"$1\" and .pai == \"strip\" and (.reason | startswith(\"error: \")) and .source == \"error\""
}
daemon_stop() { mm_kill "$DPID"; DPID=; }
# Every thread of the daemon stopped (state T): SIGSTOP takes effect a
# moment after kill returns, and a request sent in that moment is answered.
all_stopped() {
	local t
	for t in /proc/"$DPID"/task/*/stat; do
		[ "$(awk '{ print $3 }' "$t")" = T ] || return 1
	done
}
daemon_pause() {
	kill -STOP "$DPID"
	wait_for 5 all_stopped || fail "the daemon did not stop on SIGSTOP"
}

make_ca "$MM_TMP" ca-s
mm_start_daemon 5 "$SOCK" answer
expect_exit 0 "add seg partner S (agreement: its sources are answered keep)" "$CTL" partner add \
	ims.partner-s.example --kind ims --agreement yes --path seg --range 198.18.0.0/24 \
	--range 2001:db8:5::/48 --gateway 198.51.100.11 --ca "$MM_TMP/ca-s.pem"

# --- answers, and the subject they name -------------------------------------
fc connect "$SOCK" "$TIMEOUT"
expect "connect" '.rc == "0"'
fc backoff "$BACKOFF"
fc inbound 198.18.0.7
expect "inbound from S: keep, from the socket, naming its src" \
	'.rc == "0" and .pai == "keep" and .reason == "seg-trusted" and .source == "socket" and .src == "198.18.0.7" and .partner == "ims.partner-s.example"'
fc inbound 10.1.2.3 10.0.0.5
expect "inbound from no partner: strip, unknown-source, src and dst named" \
	'.rc == "0" and .pai == "strip" and .reason == "unknown-source" and .src == "10.1.2.3" and .dst == "10.0.0.5"'
fc inbound 2001:DB8:5:0:0:0:0:1
expect "inbound IPv6 in capitals: the daemon's canonical src is the one asked" \
	'.rc == "0" and .pai == "keep" and .src == "2001:db8:5::1"'
fc inbound ::ffff:198.18.0.7
expect "inbound IPv4-mapped: answered for 198.18.0.7" '.rc == "0" and .pai == "keep" and .src == "198.18.0.7"'
fc outbound IMS.Partner-S.Example.
expect "outbound by domain: keep, naming the canonical domain" \
	'.rc == "0" and .pai == "keep" and .domain == "ims.partner-s.example" and .source == "socket"'
fc outbound-dst 198.18.0.9
expect "outbound by next hop: keep, naming it" '.rc == "0" and .pai == "keep" and .dst == "198.18.0.9" and .domain == ""'
fc spi 0x1234
expect "spi no SA has: answered, no partner" '.rc == "0" and .partner == "" and .source == "socket"'
fc inbound not-an-address
expect "a refused request fails closed: EPROTO, strip, the daemon's reason" \
	"$(strip_on EPROTO) and (.reason | startswith(\"error: invalid\")) and (.last_error | contains(\"src\"))"
fc inbound 198.18.0.7
expect "after a refusal the handle answers" '.rc == "0" and .pai == "keep"'

# --- paused daemon: timeout, back-off, and no stale answer -------------------
daemon_pause
fc inbound 198.18.0.7
expect "paused daemon: the call times out after timeout_ms and fails closed" \
	"$(strip_on ETIMEDOUT) and .reason == \"error: timeout\" and .ms >= $((TIMEOUT - 20)) and .ms < $((TIMEOUT + 1000))"
fc inbound 198.18.0.7
expect "in the back-off: the next call fails at once with EAGAIN, strip" \
	"$(strip_on EAGAIN) and .reason == \"error: back-off\" and .ms < $FAST"
fc outbound ims.partner-s.example
expect "in the back-off: outbound too fails at once" "$(strip_on EAGAIN) and .ms < $FAST"
fc spi 0x1234
expect "in the back-off: spi too fails at once" "$(strip_on EAGAIN) and .ms < $FAST"
kill -CONT "$DPID"
# Let the daemon answer the question it was paused on (to a connection the
# handle has closed), and the back-off run out.
printf -v nap '%d.%03d' $(((BACKOFF + 300) / 1000)) $(((BACKOFF + 300) % 1000))
sleep "$nap"
fc inbound 10.1.2.3
expect "stale answer: after SIGCONT a later question (10.1.2.3) gets its own answer, not the late keep" \
	'.rc == "0" and .pai == "strip" and .reason == "unknown-source"'
expect "stale answer: the answer names the src asked" '.src == "10.1.2.3" and .source == "socket"'
fc inbound 198.18.0.7
expect "after the back-off the handle answers again" '.rc == "0" and .pai == "keep" and .src == "198.18.0.7"'

# Back-off off: every call waits for its timeout.
fc backoff 0
daemon_pause
fc inbound 198.18.0.7
expect "back-off 0, paused: timeout" "$(strip_on ETIMEDOUT)"
fc inbound 198.18.0.7
expect "back-off 0: the next call waits its timeout again (no EAGAIN)" \
	"$(strip_on ETIMEDOUT) and .ms >= $((TIMEOUT - 20))"
kill -CONT "$DPID"
sleep 0.3
fc inbound 10.1.2.3
expect "back-off 0: after SIGCONT, still no stale answer" \
	'.rc == "0" and .pai == "strip" and .reason == "unknown-source" and .src == "10.1.2.3"'
fc backoff "$BACKOFF"

# --- stopped daemon: fail closed at once ------------------------------------
daemon_stop
nofast=0
for i in 1 2 3 4 5; do
	fc inbound 198.18.0.7
	jq -e "(.rc == \"ENOENT\" or .rc == \"ECONNREFUSED\") and .pai == \"strip\" and .source == \"error\" and .ms < $FAST" \
		<<<"$R" >/dev/null || { nofast=1; echo "    call $i: $R"; }
done
check "daemon stopped: 5 calls each fail closed at once (ENOENT/ECONNREFUSED, strip, no back-off)" \
	test $nofast -eq 0
expect "daemon stopped: the reason says no daemon" '.reason | startswith("error: no daemon")'
fc outbound ims.partner-s.example
expect "daemon stopped: outbound strips" '(.rc == "ENOENT" or .rc == "ECONNREFUSED") and .pai == "strip" and .domain == "ims.partner-s.example"'
fc spi 0x1234
expect "daemon stopped: spi strips" '(.rc == "ENOENT" or .rc == "ECONNREFUSED") and .pai == "strip"'
fc call '{"op":"ping"}'
expect "daemon stopped: a raw call fails, no answer" '(.rc == "ENOENT" or .rc == "ECONNREFUSED") and (has("answer") | not)'

# --- restarted daemon: the handle reconnects by itself ----------------------
mm_start_daemon 5 "$SOCK" answer
fc inbound 198.18.0.7
expect "daemon back: the same handle reconnects and answers" '.rc == "0" and .pai == "keep" and .src == "198.18.0.7"'
fc inbound 10.1.2.3
expect "daemon back: next answer right too" '.rc == "0" and .reason == "unknown-source"'
# A live connection, then the daemon restarts under it.
daemon_stop
mm_start_daemon 5 "$SOCK" answer
fc inbound 198.18.0.7
expect "daemon restarted under a live connection: the first call is answered" \
	'.rc == "0" and .pai == "keep" and .src == "198.18.0.7"'
fc call '{"op":"ping","id":"raw"}'
expect "daemon restarted: the raw call works" '.rc == "0" and (.answer | fromjson | .ok and .id == "raw")'
fc close
daemon_stop
fc connect "$SOCK" "$TIMEOUT"
expect "connect with no daemon: ENOENT or ECONNREFUSED" '.rc == "ENOENT" or .rc == "ECONNREFUSED"'

# --- the fault-injection fake -------------------------------------------------
FSOCK=$MM_TMP/fault.sock
FLOG=$MM_TMP/fault.log
# fault MODE: a fresh fake in MODE and a fresh handle on it (back-off off).
fault() {
	mm_kill "$FPID"
	rm -f "$FLOG"
	"$PY" "$FAULT" "$FSOCK" "$1" "$FLOG" &
	FPID=$!
	wait_for 5 grep -qx ready "$FLOG" || fail "the fault-injection server ($1) did not start"
	[ "$1" = backlog-full ] && return 0
	fc connect "$FSOCK" "$TIMEOUT"
	fc backoff 0
}
# logged PATTERN DESCRIPTION: the fake's log has a line matching PATTERN.
logged() {
	if grep -qE "$1" "$FLOG"; then pass "$2"; else fail "$2: no '$1' in: $(tr '\n' ';' <"$FLOG")"; fi
}
conns() { grep -c "^conn=$1 " "$FLOG"; }

fault out-of-order
fc inbound 10.1.2.3
expect "out of order: the answer with another id (keep) is discarded; strip, unknown-source" \
	'.rc == "0" and .pai == "strip" and .reason == "unknown-source" and .src == "10.1.2.3"'
fc outbound other.example
expect "out of order: outbound gets its own answer" '.rc == "0" and .domain == "other.example" and .pai == "strip"'
logged "^conn=1 id=2 op=outbound action=late-then-right" "out of order: both on one connection"

fault wrong-id-only
fc inbound 10.1.2.3
expect "only answers with another id: all discarded, timeout, strip" "$(strip_on ETIMEDOUT)"

fault no-id
fc inbound 198.18.0.7
expect "answers without id: discarded, timeout, strip" "$(strip_on ETIMEDOUT)"

fault garbage
fc inbound 198.18.0.7
expect "garbage answer: EBADMSG, strip" "$(strip_on EBADMSG) and (.reason | contains(\"bad answer\"))"
fc inbound 198.18.0.7
expect "after garbage: the next call is answered" '.rc == "0" and .pai == "keep"'
logged "^conn=2 id=2 op=inbound action=right" "after garbage: the handle was reset (the next request on a new connection)"

fault other-subject
fc inbound 10.1.2.3
expect "an answer for another src (keep): EBADMSG, strip" \
	"$(strip_on EBADMSG) and .reason == \"error: answer for another subject\" and .src == \"10.1.2.3\""
fc inbound 10.1.2.3
expect "after another subject: the next call is answered, right" '.rc == "0" and .reason == "unknown-source"'
logged "^conn=2 id=2 " "after another subject: the handle was reset"
fault other-subject
fc outbound other.example
expect "an answer for another domain (keep): EBADMSG, strip" "$(strip_on EBADMSG) and .domain == \"other.example\""
fault other-subject
fc outbound-dst 10.1.2.3
expect "an answer for another next hop (keep): EBADMSG, strip" "$(strip_on EBADMSG)"
fault other-subject
fc spi 0x1234
expect "an answer for another SPI: EBADMSG, strip" "$(strip_on EBADMSG)"
fault other-dst
fc inbound 10.1.2.3 10.0.0.5
expect "an answer for the src asked but another dst: EBADMSG, strip" "$(strip_on EBADMSG)"

fault no-result
fc inbound 10.1.2.3
expect "ok without result: EBADMSG, strip" "$(strip_on EBADMSG)"

fault half-line
fc inbound 198.18.0.7
expect "half an answer, then nothing: timeout, strip" "$(strip_on ETIMEDOUT)"
fc inbound 198.18.0.7
expect "after half a line: the next call is answered (the half line was dropped)" '.rc == "0" and .pai == "keep"'
logged "^conn=2 id=2 " "after half a line: the handle was reset"

fault close-once
fc inbound 198.18.0.7
expect "connection closed before the answer: one retry on a new connection, answered" \
	'.rc == "0" and .pai == "keep"'
logged "^conn=1 id=1 op=inbound action=close" "close-once: the first connection got the request"
logged "^conn=2 id=1 op=inbound action=right" "close-once: the retry, same request, on a new connection"
fault close-once
fc call '{"op":"ping","id":1}'
expect "raw call whose request went out, connection closed: ECONNRESET, not sent again" \
	'.rc == "ECONNRESET" and (has("answer") | not)'
check "raw call: only one connection made" test "$(grep -c '^conn=' "$FLOG")" -eq 1

fault close-always
fc inbound 198.18.0.7
expect "every connection closed: ECONNRESET after one retry, strip" "$(strip_on ECONNRESET)"
check "close-always: exactly two connections (one retry, no more)" \
	test "$(conns 1)" -eq 1 -a "$(conns 2)" -eq 1 -a "$(grep -c '^conn=' "$FLOG")" -eq 2

fault double
fc call '{"op":"ping","id":1}'
expect "two answers to one request: the first is taken" '.rc == "0" and (.answer | fromjson | .id == 1)'
fc call '{"op":"ping","id":2}'
expect "two answers: the next raw call gets its own answer, not the duplicate" \
	'.rc == "0" and (.answer | fromjson | .id == 2)'
logged "^conn=2 id=2 " "two answers: the connection with an unasked line was replaced"
fc inbound 10.1.2.3
expect "two answers: typed calls answered right" '.rc == "0" and .reason == "unknown-source"'

fault backlog-full
fc connect "$FSOCK" "$TIMEOUT"
expect "listen backlog full: connect times out after timeout_ms" \
	".rc == \"ETIMEDOUT\" and .ms >= $((TIMEOUT - 20)) and .ms < $((TIMEOUT + 1000))"

# Last: the library before issue 10 crashed on a NULL handle.
fc null-inbound 198.18.0.7
expect "no handle (NULL): ENOTCONN, strip" "$(strip_on ENOTCONN) and .src == \"198.18.0.7\""

[ -n "${FC[1]:-}" ] && exec {FC[1]}>&-
# Bounded: a driver stuck in a call (a library without timeouts) fails the
# test and is killed on exit (mm_cleanup_hook).
if wait_for 10 eval '! kill -0 "$DRIVER_PID"'; then
	wait "$DRIVER_PID"
	rc=$?
	DRIVER_PID=
else
	rc=stuck
fi
check "the driver exits 0 at the end of its input" test "$rc" = 0
summary test_client_failure
