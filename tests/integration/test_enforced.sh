#!/bin/bash
# `protected` only while the kernel enforces the partner's in-policies
# (docs/privacy.md, "not-enforced"): with [spd] enabled = no never; with
# the SPD on, not while one of the partner's in-policies is missing (a
# deleteall by hand: the answers follow the monitor event at once, before
# the repair, and come back after it) or shadowed by a foreign allow
# policy on its selector or overlapping it (narrower, wider, port-specific)
# with a priority value <= ours; never for a partner the engine cannot program.
# Subscribers hear when a partner's enforcement changes, and sa-down for
# every tunnel when a reload turns [ike] off.  The tunnel is charon's
# word: fake_charon.py stands in for charon (this kernel has no ESP); the
# daemon runs in a namespace this test creates and deletes.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup enforced
CSCF4=10.0.0.5
A=ims.partner-a.example R=ims.partner-r.example
conf() { fc_conf "$1" "$2" "$3" 10.0.0.0/24; }  # conf SPD_ENABLED IKE_ENABLED REQID_MAX
conf no yes 2999
fc_start

expect_exit 0 "add tunnel partner A" "$CTL" partner add $A --kind ims --agreement yes \
	--range 192.0.2.0/24 --gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add tunnel partner R" "$CTL" partner add $R --kind ims --agreement yes \
	--range 203.0.113.0/24 --gateway 198.51.100.20 --ca "$MM_TMP/ca-a.pem"
RR=$("$CTL" --json partner list | jq -r ".partners[] | select(.domain == \"$R\") | .reqid")

ask() { "$PY" "$QC" ask "$SOCK" "{\"op\":\"inbound\",\"src\":\"$1\",\"dst\":\"$CSCF4\"}"; }
row() {
	local a
	a=$(ask "$2" 2>&1)
	if jq -e "$3" <<<"$a" >/dev/null 2>&1; then pass "$1"; else fail "$1: $2 -> $a"; fi
}
up() { ask "$1" | jq -e '.result.sa != null' >/dev/null; }
askout() { "$PY" "$QC" ask "$SOCK" "{\"op\":\"outbound\",\"domain\":\"$1\"}"; }
orow() {
	local a
	a=$(askout "$2" 2>&1)
	if jq -e "$3" <<<"$a" >/dev/null 2>&1; then pass "$1"; else fail "$1: $2 -> $a"; fi
}
out_keep() { askout "$1" | jq -e '.result.pai == "keep"' >/dev/null; }
protected() { ask "$1" | jq -e '.result.protected' >/dev/null; }
wait_for 10 up 192.0.2.10 || fail "A's tunnel did not come up (fake charon)"
wait_for 10 up 203.0.113.10 || fail "R's tunnel did not come up (fake charon)"

# --- [spd] enabled = no: the kernel drops nothing ------------------------------
row "SPD off: A over its SA to the CSCF is not protected (not-enforced), strip" 192.0.2.10 \
	'.result | .sa != null and .protected == false and .pai == "strip" and .reason == "not-enforced"'
sleep 0.3
row "SPD off: still not protected a moment later" 192.0.2.10 \
	'.result | .protected == false and .reason == "not-enforced"'
orow "SPD off: outbound to A (tunnel up) strips, not-enforced (our CSCFs' messages may leave in clear)" $A \
	'.result | .tunnel == "up" and .trusted == false and .pai == "strip" and .reason == "not-enforced"'

# --- the SPD on: protected -----------------------------------------------------------
conf yes yes 2999
kill -HUP "$DPID"
check "SPD on after a reload: A protected" wait_for 10 protected 192.0.2.10
row "SPD on: A protected, keep" 192.0.2.10 \
	'.result | .protected and .pai == "keep" and .reason == "protected"'
check "SPD on: outbound to A keeps PAI" wait_for 5 out_keep $A
orow "SPD on: outbound to A trusted, protected" $A \
	'.result | .trusted and .pai == "keep" and .reason == "protected"'
xin() { ip -n "$NS" xfrm policy list dir in src 192.0.2.0/24 dst 10.0.0.0/24; }
check "A's in-policy is in the kernel" sh -c "ip -n $NS xfrm policy list dir in src 192.0.2.0/24 dst 10.0.0.0/24 | grep -q 'reqid'"

# A subscriber from here on: enforcement changes and sa-down are events.
cat >"$MM_TMP/sub.py" <<'PY'
import json, socket, sys
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

# --- an in-policy deleted by hand: not protected until the repair --------------
# One client asks as fast as it can from just before the deleteall until
# the answers say protected again after it; the answers after the first
# "not protected" must stay so until the repair, and then stay protected.
cat >"$MM_TMP/window.py" <<'PY'
import json, socket, subprocess, sys, time
sock, ns, src, dst = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
f = s.makefile("rwb", buffering=0)
req = (json.dumps({"op": "inbound", "src": src, "dst": dst}) + "\n").encode()
def ask():
    f.write(req)
    return json.loads(f.readline())["result"]
before = ask()
subprocess.run(["ip", "-n", ns, "xfrm", "policy", "deleteall", "dir", "in", "src",
                "192.0.2.0/24", "dst", "10.0.0.0/24"], check=True)
t0 = time.monotonic()
seq = []
while time.monotonic() - t0 < 5:
    a = ask()
    seq.append("P" if a["protected"] else "N:" + a["reason"])
    if len(seq) > 1 and seq[-1] == "P" and any(x != "P" for x in seq):
        break
for _ in range(50):  # after the repair: protected, every time
    a = ask()
    seq.append("P" if a["protected"] else "N:" + a["reason"])
print(json.dumps({"before": before["protected"], "seq": seq}))
PY
W=$("$PY" "$MM_TMP/window.py" "$SOCK" "$NS" 192.0.2.10 "$CSCF4")
echo "    window: $(jq -r '.seq | join(" ")' <<<"$W" | sed -E 's/(N:not-enforced ?)+/N:not-enforced... /; s/(P ?){5,}/P... /g')"
jw() { jq -e "$1" <<<"$W" >/dev/null; }
check "deleteall: A protected just before" jw '.before'
check "deleteall: the answers say not protected (not-enforced) before the repair" \
	jw '.seq | index("N:not-enforced") != null'
# P* N+ P+: after the first "not protected", no "protected" until the
# repair, and after it only "protected" (the leading P are answers the
# daemon gave before it read the monitor's event).
check "deleteall: once not protected, protected only after the repair, and then for good" \
	jw '.seq | map(if . == "P" then "P" else "N" end) | join("") | test("^P*N+P+$")'
check "the repair restored A's in-policy" sh -c "ip -n $NS xfrm policy list dir in src 192.0.2.0/24 dst 10.0.0.0/24 | grep -q 'reqid'"
contains "$(cat "$MM_TMP/daemon.log")" "partner $A" "the daemon logged the drift of A"
event() { grep -q "\"event\":\"$1\".*\"partner\":\"$2\"" "$MM_TMP/events"; }
check "subscribers heard not-enforced for A" wait_for 5 event not-enforced $A
check "subscribers heard enforced for A after the repair" wait_for 5 event enforced $A
row "after the repair: A protected again" 192.0.2.10 '.result | .protected and .reason == "protected"'

# --- a foreign policy on A's in selector, better priority, lets cleartext in ----
ip -n "$NS" xfrm policy add dir in src 192.0.2.0/24 dst 10.0.0.0/24 priority 1 action allow ||
	fail "cannot add the foreign policy"
shadowed() { ! protected 192.0.2.10; }
check "a foreign allow policy on A's in selector: not protected" wait_for 5 shadowed
row "shadowed: reason not-enforced, strip" 192.0.2.10 \
	'.result | .protected == false and .pai == "strip" and .reason == "not-enforced"'
ip -n "$NS" xfrm policy del dir in src 192.0.2.0/24 dst 10.0.0.0/24 ||
	fail "cannot delete the foreign policy"
check "the foreign policy gone: A protected again" wait_for 5 protected 192.0.2.10

# --- the same on A's out selector: what our CSCFs send may leave in clear ------
ip -n "$NS" xfrm policy add dir out src 10.0.0.0/24 dst 192.0.2.0/24 priority 1 action allow ||
	fail "cannot add the foreign out policy"
out_strip() { ! out_keep $A; }
check "a foreign allow policy on A's out selector: outbound strips" wait_for 5 out_strip
orow "out shadowed: reason not-enforced" $A \
	'.result | .trusted == false and .pai == "strip" and .reason == "not-enforced"'
row "out shadowed: inbound from A still protected (its in policies are whole)" 192.0.2.10 \
	'.result | .protected and .reason == "protected"'
ip -n "$NS" xfrm policy del dir out src 10.0.0.0/24 dst 192.0.2.0/24 ||
	fail "cannot delete the foreign out policy"
check "the foreign out policy gone: outbound keeps again" wait_for 5 out_keep $A

# --- foreign policies that overlap A's selectors (not equal to them) -------------
# The kernel takes the matching policy with the lowest priority value
# whatever its shape: narrower, wider or port-specific, an allow with a
# value <= ours lets cleartext in (or out); a worse value does not.
shape() {  # shape DESC DIR SELECTOR...: add, not enforced, delete, enforced again
	local d=$1 dir=$2
	shift 2
	ip -n "$NS" xfrm policy add dir "$dir" "$@" priority 1 action allow ||
		{ fail "cannot add the foreign policy ($d)"; return; }
	if [ "$dir" = out ]; then
		check "$d: outbound strips" wait_for 5 out_strip
		orow "$d: reason not-enforced" $A \
			'.result | .trusted == false and .pai == "strip" and .reason == "not-enforced"'
	else
		check "$d: not protected" wait_for 5 shadowed
		row "$d: reason not-enforced, strip" 192.0.2.10 \
			'.result | .protected == false and .pai == "strip" and .reason == "not-enforced"'
	fi
	ip -n "$NS" xfrm policy del dir "$dir" "$@" || fail "cannot delete the foreign policy ($d)"
	if [ "$dir" = out ]; then
		check "$d gone: outbound keeps again" wait_for 5 out_keep $A
	else
		check "$d gone: A protected again" wait_for 5 protected 192.0.2.10
	fi
}
shape "a narrower foreign allow in (/32 -> /32)" in src 192.0.2.10/32 dst 10.0.0.5/32
shape "a wider foreign allow in (0/0 -> the CSCF net)" in src 0.0.0.0/0 dst 10.0.0.0/24
shape "a port-specific foreign allow in (udp 5060)" in src 192.0.2.0/24 dst 10.0.0.0/24 \
	proto udp dport 5060
shape "a narrower foreign allow out (/32 -> /32)" out src 10.0.0.5/32 dst 192.0.2.10/32
# Worse than our whole band (default base 100000 + 256): ours decides.
ip -n "$NS" xfrm policy add dir in src 192.0.2.10/32 dst 10.0.0.5/32 priority 100257 \
	action allow || fail "cannot add the worse foreign policy"
ip -n "$NS" xfrm policy add dir out src 10.0.0.5/32 dst 192.0.2.10/32 priority 100257 \
	action allow || fail "cannot add the worse foreign out policy"
sleep 1
row "a narrower foreign allow with a worse priority: A still protected" 192.0.2.10 \
	'.result | .protected and .reason == "protected"'
orow "a narrower foreign out allow with a worse priority: outbound keeps" $A \
	'.result | .trusted and .pai == "keep"'
ip -n "$NS" xfrm policy del dir in src 192.0.2.10/32 dst 10.0.0.5/32 ||
	fail "cannot delete the worse foreign policy"
ip -n "$NS" xfrm policy del dir out src 10.0.0.5/32 dst 192.0.2.10/32 ||
	fail "cannot delete the worse foreign out policy"

# --- a partner the engine cannot program ---------------------------------------
# R keeps its reqid when the reserved range shrinks below it: the SPD
# engine refuses to program it (a problem), charon's tunnel stays up.
row "before: R protected" 203.0.113.10 '.result | .protected'
conf yes yes $((RR - 1))
kill -HUP "$DPID"
problem() { "$CTL" --json status 2>/dev/null | jq -e ".partners[] | select(.domain == \"$R\") | .error != null and .error != 0" >/dev/null; }
wait_for 10 problem || "$CTL" --json status | jq -c ".partners[] | select(.domain == \"$R\")"
r_unprotected() { ! protected 203.0.113.10; }
check "R not programmable (reqid outside the range): not protected" wait_for 10 r_unprotected
row "R: its SA up, not-enforced" 203.0.113.10 \
	'.result | .sa != null and .protected == false and .reason == "not-enforced"'
row "A (reqid inside the range) still protected" 192.0.2.10 '.result | .protected'

# --- [ike] off on reload: the tunnels leave the view, subscribers hear sa-down -----
conf yes no $((RR - 1))
kill -HUP "$DPID"
down() { ! up 192.0.2.10; }
check "[ike] off: A's tunnel left the view" wait_for 10 down
check "[ike] off: subscribers heard sa-down for A" wait_for 5 event sa-down $A
check "[ike] off: subscribers heard sa-down for R" wait_for 5 event sa-down $R
row "[ike] off: A not protected" 192.0.2.10 '.result | .protected == false'

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "daemon stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
summary "test_enforced"
