#!/bin/bash
# No window in which an answer says more than the kernel and charon hold:
# (1) an apply that disables tunnel partner A (and deletes 8,000 others, a
# long kernel step): once A's in-policy is gone from the kernel, no answer
# says A is protected -- during the apply and after it; (2) A's gateway
# moved (`partner set --gateway`) while its tunnel is up: the SAs it holds
# are between the wrong ends now, so the tunnel goes down at once
# (subscribers hear sa-down, the answer is not protected) and comes up on
# the new gateway.  fake_charon.py stands in for charon (this kernel has no
# ESP); the daemon runs in a namespace this test creates and deletes.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup window
CSCF4=10.0.0.5
A=ims.partner-a.example R=ims.partner-r.example
fc_conf yes yes 20999 10.0.0.0/24
fc_start

expect_exit 0 "add tunnel partner A" "$CTL" partner add $A --kind ims --agreement yes \
	--range 192.0.2.0/24 --gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add tunnel partner R" "$CTL" partner add $R --kind ims --agreement yes \
	--range 203.0.113.0/24 --gateway 198.51.100.20 --ca "$MM_TMP/ca-a.pem"

ask() { "$PY" "$QC" ask "$SOCK" "{\"op\":\"inbound\",\"src\":\"$1\",\"dst\":\"$CSCF4\"}"; }
protected() { ask "$1" | jq -e '.result.protected' >/dev/null; }
check "A protected" wait_for 10 protected 192.0.2.10
check "R protected" wait_for 10 protected 203.0.113.10

# A subscriber from here on.
cat >"$MM_TMP/sub.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
f.write(b'{"op":"subscribe"}\n')
f.readline()
open(sys.argv[2], "w").close()
with open(sys.argv[3], "a") as out:
    for line in f:
        out.write(line.decode())
        out.flush()
PY
"$PY" "$MM_TMP/sub.py" "$SOCK" "$MM_TMP/sub.ready" "$MM_TMP/events" &
SUB=$!
wait_for 5 test -e "$MM_TMP/sub.ready" || fail "the subscriber did not start"
event() { grep -q "\"event\":\"$1\".*\"partner\":\"$2\"" "$MM_TMP/events"; }

# --- (1) an apply that disables A while a client asks for A --------------------
"$CTL" export >"$MM_TMP/small.yaml" || fail "export"
bulk_table "$MM_TMP/bulk.yaml" 8000 "$MM_TMP/ca-a.pem"
{  # the export lists partners at the margin, bulk_table indents them
	echo "partners:"
	grep -v "^partners:" "$MM_TMP/small.yaml" | sed "s/^/  /"
	tail -n +2 "$MM_TMP/bulk.yaml" | sed "s/203\.0\.113\./198.18.0./"
} >"$MM_TMP/big.yaml"
expect_exit 0 "apply A, R and 8000 bulk partners" "$CTL" apply "$MM_TMP/big.yaml"
check "A protected with the big table" wait_for 30 protected 192.0.2.10
# A disabled, the bulk partners deleted, R as it was.
python3 - "$MM_TMP/small.yaml" "$A" >"$MM_TMP/small-a-off.yaml" <<'PY' || fail "no table with A disabled"
import sys
lines, inside = open(sys.argv[1]).read().split("\n"), False
for l in lines:
    if l.lstrip().startswith("- domain:"):
        inside = l.split(":", 1)[1].strip() == sys.argv[2]
    if inside and l.strip() == "enabled: true":
        l = l.replace("true", "false")
    print(l)
PY
grep -q "enabled: false" "$MM_TMP/small-a-off.yaml" || fail "the export names no enabled: for A"

# One thread asks for A as fast as it can, one watches the kernel for A's
# in-policy, the main thread runs the apply; all on one clock.
cat >"$MM_TMP/window.py" <<'PY'
import json, socket, subprocess, sys, threading, time
sock, ns, ctl, table, src, dst = sys.argv[1:7]
stop = threading.Event()
answers, gone = [], []

def asker():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    f = s.makefile("rwb", buffering=0)
    req = (json.dumps({"op": "inbound", "src": src, "dst": dst}) + "\n").encode()
    while not stop.is_set():
        t = time.monotonic()
        f.write(req)
        answers.append((t, json.loads(f.readline())["result"]["protected"]))

def watcher():
    while not stop.is_set() and not gone:
        out = subprocess.run(["ip", "-n", ns, "xfrm", "policy", "list", "dir", "in", "src",
                              "192.0.2.0/24", "dst", "10.0.0.0/24"],
                             capture_output=True, text=True).stdout
        if "reqid" not in out:
            gone.append(time.monotonic())  # gone by now (at the latest)

threads = [threading.Thread(target=asker), threading.Thread(target=watcher)]
for t in threads:
    t.start()
time.sleep(0.2)
t_apply = time.monotonic()
# Deleting 8000 partners: confirmed past the shrink guard.
rc = subprocess.run([ctl, "apply", "--allow-shrink", table], stdout=subprocess.DEVNULL).returncode
t_done = time.monotonic()
time.sleep(0.5)
stop.set()
for t in threads:
    t.join()
g = gone[0] if gone else None
print(json.dumps({
    "rc": rc, "apply_s": round(t_done - t_apply, 3),
    "before": sum(1 for t, p in answers if t < t_apply and p),
    "gone_during": g is not None and g < t_done,
    "after_gone": sum(1 for t, p in answers if g is not None and t > g),
    "after_gone_protected": sum(1 for t, p in answers if g is not None and t > g and p),
    "after_done_protected": sum(1 for t, p in answers if t > t_done and p),
    "after_done": sum(1 for t, p in answers if t > t_done),
}))
PY
W=$("$PY" "$MM_TMP/window.py" "$SOCK" "$NS" "$CTL" "$MM_TMP/small-a-off.yaml" 192.0.2.10 "$CSCF4")
echo "    $W"
jw() { jq -e "$1" <<<"$W" >/dev/null; }
check "apply with A disabled succeeded" jw '.rc == 0'
check "A protected before the apply" jw '.before > 0'
check "A's in-policy left the kernel during the apply" jw '.gone_during'
check "answers asked after A's in-policy was gone were seen" jw '.after_gone > 0'
check "no answer asked after A's in-policy was gone says protected" jw '.after_gone_protected == 0'
check "no answer after the apply says protected" jw '.after_done > 0 and .after_done_protected == 0'
check "R still protected after the apply" protected 203.0.113.10

# --- (2) A's gateway moved while its tunnel is up ------------------------------
expect_exit 0 "enable A again" "$CTL" partner set $A --enable
check "A protected again" wait_for 10 protected 192.0.2.10
host() { ask 192.0.2.10 | jq -r '.result.sa.remote_host // empty'; }
contains "$(host)" 198.51.100.10 "A's SA is on its gateway 198.51.100.10"
: >"$MM_TMP/events"
expect_exit 0 "move A's gateway to 198.51.100.11" "$CTL" partner set $A --gateway 198.51.100.11
a=$(ask 192.0.2.10)
if jq -e '.result.protected == false or .result.sa.remote_host == "198.51.100.11"' \
	<<<"$a" >/dev/null; then
	pass "right after the move: no answer says protected over the old gateway's SAs"
else
	fail "right after the move: $a"
fi
check "subscribers heard sa-down for A (its SAs were between the wrong ends)" \
	wait_for 5 event sa-down $A
on_new() { [ "$(host)" = 198.51.100.11 ] && protected 192.0.2.10; }
check "A's tunnel came up again on the new gateway, protected" wait_for 10 on_new
contains "$(cat "$MM_TMP/daemon.log")" "partner $A: its tunnel's SAs" \
	"the daemon logged the refusal of A's old SAs"

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "daemon stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
summary "test_window"
