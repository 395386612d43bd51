#!/bin/bash
# A reload (SIGHUP, mmtrustctl reload) of the same configuration and table
# changes no answer: a partner whose tunnel is up and whose policies stay
# is never withdrawn (answered "not enforced", strip) while the reload's
# kernel step runs -- with thousands of partners that step takes long
# enough for a CSCF to strip P-Asserted-Identity of every partner at every
# reload.  Only partners that changed leave the answers for the step.  The
# control: a reload that does change partner A is seen by the same probe.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup reloadans
A=ims.partner-a.example
fc_conf yes yes 20999 10.0.0.0/24
fc_start

expect_exit 0 "add tunnel partner A" "$CTL" partner add $A --kind ims --agreement yes \
	--range 192.0.2.0/24 --gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
"$CTL" export >"$MM_TMP/small.yaml" || fail "export"
bulk_table "$MM_TMP/bulk.yaml" 3000 "$MM_TMP/ca-a.pem"
{
	echo "partners:"
	grep -v "^partners:" "$MM_TMP/small.yaml" | sed "s/^/  /"
	tail -n +2 "$MM_TMP/bulk.yaml" | sed "s/203\.0\.113\./198.18.0./"
} >"$MM_TMP/big.yaml"
expect_exit 0 "apply A and 3000 bulk partners" "$CTL" apply "$MM_TMP/big.yaml"
ask() { "$PY" "$QC" ask "$SOCK" '{"op":"inbound","src":"192.0.2.10","dst":"10.0.0.5"}'; }
keep() { ask | jq -e '.result.pai == "keep"' >/dev/null; }
wait_for 60 keep && pass "A keeps PAI with the big table" || fail "A is not kept: $(ask)"

# probe OUT STOP: ask about A without pause until STOP exists; count the
# answers and those that are not keep.
probe() {
	"$PY" - "$SOCK" "$1" "$2" <<'PY' &
import json, os, socket, sys
sock, out, stop = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
f = s.makefile("rwb", buffering=0)
n = bad = 0
first = None
open(out + ".ready", "w").close()
while not os.path.exists(stop):
    f.write(b'{"op":"inbound","src":"192.0.2.10","dst":"10.0.0.5"}\n')
    a = json.loads(f.readline())
    n += 1
    if a.get("result", {}).get("pai") != "keep":
        bad += 1
        first = first or a
json.dump({"n": n, "bad": bad, "first": first}, open(out, "w"))
PY
	PROBE=$!
	wait_for 10 test -e "$1.ready" || fail "the probe did not start"
}
more_reloaded() { test "$(grep -c "reloaded:" "$MM_TMP/daemon.log")" -gt "$1"; }
# reloads N: N reloads, each waited for in the log.
reloads() {
	local i k
	for i in $(seq "$1"); do
		k=$(grep -c "reloaded:" "$MM_TMP/daemon.log")
		kill -HUP "$DPID"
		wait_for 60 more_reloaded "$k" || fail "reload $i did not finish: $(tail -3 "$MM_TMP/daemon.log")"
	done
}

probe "$MM_TMP/same.json" "$MM_TMP/same.stop"
reloads 5
check "mmtrustctl reload of the same table" "$CTL" reload
touch "$MM_TMP/same.stop"
wait "$PROBE"
n=$(jq .n "$MM_TMP/same.json") bad=$(jq .bad "$MM_TMP/same.json")
check "the probe was answered throughout ($n answers)" test "$n" -ge 100
check "six reloads of the same table: every answer about A is keep ($bad of $n were not: $(jq -c .first "$MM_TMP/same.json"))" \
	test "$bad" -eq 0

# The control: A changed in the store, then a reload: the probe sees it.
sqlite3 "$MM_TMP/store.db" "UPDATE partners SET agreement = 0 WHERE domain = '$A'"
probe "$MM_TMP/changed.json" "$MM_TMP/changed.stop"
reloads 1
wait_for 10 sh -c "! '$PY' '$QC' ask '$SOCK' '{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"10.0.0.5\"}' | jq -e '.result.pai == \"keep\"' >/dev/null"
touch "$MM_TMP/changed.stop"
wait "$PROBE"
check "control: a reload that changes A is seen by the probe ($(jq -c . "$MM_TMP/changed.json"))" \
	test "$(jq .bad "$MM_TMP/changed.json")" -gt 0

summary test_reload_answers
