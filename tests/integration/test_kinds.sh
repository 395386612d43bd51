#!/bin/bash
# The first level of protection (docs/privacy.md, docs/operations.md "IMS
# and non-IMS CSCF addresses"): our CSCF prefixes split by the kind of peer
# they face.  A partner's kernel policies pair its ranges only with the
# prefixes of its kind and the shared ones; `inbound` strips with
# dst-other-kind when a partner's message arrived at the other kind's
# address -- tunnel or seg partner, SA up or not, agreement or not; the
# socket and libmmtrust (in-process answers from the snapshot, which
# leave exactly these to the daemon) answer alike; status counts them per
# partner and in total; a reload that only moves a prefix to another key
# re-pairs the policies and the answers.  The tunnels are fake_charon.py's
# (no ESP here; tests/vm has real ones).
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"
SC="$BUILD/tests/integration/snapclient"
[ -x "$SC" ] || { echo "no $SC (make $SC)" >&2; exit 1; }
SEED=${KINDS_SEED:-$(date +%s)}
echo "seed $SEED (KINDS_SEED=$SEED to repeat)"

fc_setup kinds
A=ims.partner-a.example N=sip.provider-n.example S=ims.partner-s.example
# The addresses snapclient's `compare` asks about fall on every kind:
# 10.0.0.5 shared, 10.0.0.255 non-IMS, 10.0.1.0 IMS, 2001:db8:10::5 IMS,
# 2001:db8:11::5 non-IMS, 198.51.100.1 (our tunnel address) none.
SPLIT=$'10.0.0.0/25\ncscf_ims = 10.0.1.0/24, 2001:db8:10::/64\ncscf_non_ims = 10.0.0.128/25, 2001:db8:11::/64'
fc_conf yes yes 2999 "$SPLIT"
export FAKE_CHARON_CONNS=$MM_TMP/conns.jsonl
fc_start

expect_exit 0 "add IMS tunnel partner A (agreement)" "$CTL" partner add $A --kind ims \
	--agreement yes --range 192.0.2.0/24 --range 2001:db8:a::/48 --gateway 198.51.100.10 \
	--ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add non-IMS tunnel partner N (agreement)" "$CTL" partner add $N --kind non-ims \
	--agreement yes --range 203.0.113.0/25 --gateway 198.51.100.20 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add IMS seg partner S (agreement)" "$CTL" partner add $S --kind ims \
	--agreement yes --path seg --range 198.18.0.0/24 --gateway 198.51.100.11 \
	--ca "$MM_TMP/ca-a.pem"
reqid() { "$CTL" --json partner list | jq -r ".partners[] | select(.domain == \"$1\") | .reqid"; }
RA=$(reqid $A) RN=$(reqid $N)
SPI_IN=$(printf '0x%08x' $((0xc1000000 + RA % 65536)))

q() { "$PY" "$QC" ask "$SOCK" "$@"; }
row() {
	local a
	a=$(q "$2" 2>&1)
	if jq -e "$3" <<<"$a" >/dev/null 2>&1; then pass "$1"; else fail "$1: $2 -> $a"; fi
}
in_q() { printf '{"op":"inbound","src":"%s","dst":"%s"%s}' "$1" "$2" "${3:+,\"spi\":\"$3\"}"; }
tunnel_up() { q "$(in_q "$1" "$2")" | jq -e '.result.sa != null' >/dev/null; }
wait_for 10 tunnel_up 192.0.2.10 10.0.0.5 || fail "A's tunnel did not come up (fake charon)"
wait_for 10 tunnel_up 203.0.113.5 10.0.0.5 || fail "N's tunnel did not come up (fake charon)"
protected_now() { q "$(in_q 192.0.2.10 10.0.0.5)" | jq -e '.result.protected' >/dev/null; }
wait_for 10 protected_now || fail "A is not protected at the shared address"

# --- the kernel: each partner's policies use the prefixes of its kind ------------
# "dir local-prefix" of every policy of a reqid (out: src is ours; in/fwd: dst).
locals_of() {
	ip -n "$NS" xfrm policy | awk -v r="$1" '
		/^src /  { s = $2; d = $4 }
		/^\tdir / { dir = $2 }
		/reqid/  { for (i = 1; i < NF; i++) if ($i == "reqid" && $(i + 1) == r)
				print dir, (dir == "out" ? s : d) }' | sort -u
}
kernel_ok() {  # REQID WANT-LOCALS...: exactly these local prefixes, in and out
	local got want
	got=$(locals_of "$1" | awk '{print $2}' | sort -u | tr '\n' ' ')
	shift
	want=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ')
	[ "$got" = "$want" ]
}
check "A (IMS): policies with the shared and the IMS prefixes only" \
	wait_for 10 kernel_ok "$RA" 10.0.0.0/25 10.0.1.0/24 2001:db8:10::/64
check "N (non-IMS): policies with the shared and the non-IMS IPv4 prefixes only" \
	kernel_ok "$RN" 10.0.0.0/25 10.0.0.128/25
never=$(locals_of "$RA" | grep -E ' (10\.0\.0\.128/25|2001:db8:11::/64)$')
[ -z "$never" ] && pass "no policy of A names a non-IMS prefix" || fail "A's policies: $never"
never=$(locals_of "$RN" | grep -E ' (10\.0\.1\.0/24|2001:db8:10::/64)$')
[ -z "$never" ] && pass "no policy of N names an IMS prefix" || fail "N's policies: $never"
check "A: in and out for each of its prefixes" \
	test "$(locals_of "$RA" | grep -c -E '^(in|out) ')" = 6
check "status: A in sync with 6 policies" jq -e \
	".partners[] | select(.domain == \"$A\") | .state == \"in-sync\" and .policies.expected == 6" \
	<<<"$("$CTL" --json status)"

# charon's connection offers the same prefixes as its local traffic selectors.
local_ts() { jq -c -s "[.[] | select(.name == \"$1\")] | last | .local_ts | sort" "$FAKE_CHARON_CONNS"; }
contains "$(local_ts $A)" '["10.0.0.0/25","10.0.1.0/24","2001:db8:10::/64"]' \
	"charon: A's local_ts are the shared and the IMS prefixes"
contains "$(local_ts $N)" '["10.0.0.0/25","10.0.0.128/25","2001:db8:11::/64"]' \
	"charon: N's local_ts are the shared and the non-IMS prefixes"

# --- the answers, through the socket ----------------------------------------------
status_json() { "$CTL" --json status; }
count_of() { jq -r ".partners[] | select(.domain == \"$2\") | .dst_other_kind" <<<"$1"; }
before=$(status_json)
check "status has the dst-other-kind counter, 0 at start" \
	jq -e '.answers.dst_other_kind.total == 0 and .answers.dst_other_kind.untracked == 0' <<<"$before"
check "status has a per-partner dst-other-kind counter, 0 at start" \
	jq -e '[.partners[].dst_other_kind] == [0, 0, 0]' <<<"$before"

# The must-nevers: the other kind's address strips, SA up, SPI its own.
row "A (IMS) at the non-IMS address, SA up, its SPI: strip, dst-other-kind" \
	"$(in_q 192.0.2.10 10.0.0.200 "$SPI_IN")" \
	".ok and (.result | .partner == \"$A\" and .pai == \"strip\" and .protected == false and .reason == \"dst-other-kind\" and .sa != null)"
row "A (IMS) at the non-IMS IPv6 address: dst-other-kind" \
	"$(in_q 2001:db8:a::1 2001:db8:11::5)" \
	'.result | .pai == "strip" and .protected == false and .reason == "dst-other-kind"'
row "N (non-IMS) at the IMS address: dst-other-kind" \
	"$(in_q 203.0.113.5 10.0.1.5)" \
	'.result | .pai == "strip" and .protected == false and .reason == "dst-other-kind"'
row "S (IMS, seg, agreement) at the non-IMS address: strip, dst-other-kind" \
	"$(in_q 198.18.0.7 10.0.0.130)" \
	'.result | .pai == "strip" and .protected == false and .reason == "dst-other-kind"'
# Its own kind's and the shared addresses: as before.
row "A at the IMS address: protected, keep" "$(in_q 192.0.2.10 10.0.1.5 "$SPI_IN")" \
	'.result | .pai == "keep" and .protected and .reason == "protected"'
row "A at the shared address: protected, keep" "$(in_q 192.0.2.10 10.0.0.5)" \
	'.result | .pai == "keep" and .protected and .reason == "protected"'
row "A at the IMS IPv6 address: protected, keep" "$(in_q 2001:db8:a::1 2001:db8:10::5)" \
	'.result | .pai == "keep" and .protected'
row "N at the non-IMS address: protected, keep" "$(in_q 203.0.113.5 10.0.0.200)" \
	'.result | .pai == "keep" and .protected and .reason == "protected"'
row "N at the shared address: protected, keep" "$(in_q 203.0.113.5 10.0.0.5)" \
	'.result | .pai == "keep" and .protected'
row "S at the IMS address: keep, seg-trusted" "$(in_q 198.18.0.7 10.0.1.5)" \
	'.result | .pai == "keep" and .reason == "seg-trusted"'
row "S at our tunnel address (no CSCF's): keep, seg-trusted (as before)" "$(in_q 198.18.0.7 $TUN)" \
	'.result | .pai == "keep" and .reason == "seg-trusted"'
row "A at our tunnel address: dst-not-cscf (as before)" "$(in_q 192.0.2.10 $TUN)" \
	'.result | .pai == "strip" and .reason == "dst-not-cscf"'
row "an unknown source at the IMS address: unknown-source" "$(in_q 10.9.9.9 10.0.1.5)" \
	'.result | .pai == "strip" and .reason == "unknown-source"'
row "outbound to A by domain: every range has an IMS-facing prefix, keep" \
	"{\"op\":\"outbound\",\"domain\":\"$A\"}" '.result | .pai == "keep" and .reason == "protected"'
row "outbound to N's next hop: keep" '{"op":"outbound","dst":"203.0.113.5"}' \
	'.result | .pai == "keep" and .reason == "protected"'

# --- the same answers in-process (libmmtrust), dst-other-kind from the daemon ----
ask() { "$SC" ask "$SOCK" inbound "$1" "$2"; }
in_process_keep() { [ "$(ask 192.0.2.10 10.0.1.5)" = "snapshot keep protected" ]; }
wait_for 10 in_process_keep || fail "A at the IMS address is not answered keep in-process: $(ask 192.0.2.10 10.0.1.5)"
contains "$(ask 192.0.2.10 10.0.0.5)" "snapshot keep protected" "libmmtrust: A at the shared address, in-process"
contains "$(ask 203.0.113.5 10.0.0.200)" "snapshot keep protected" "libmmtrust: N at the non-IMS address, in-process"
contains "$(ask 198.18.0.7 10.0.1.5)" "snapshot keep seg-trusted" "libmmtrust: S at the IMS address, in-process"
contains "$(ask 192.0.2.10 10.0.0.200)" "socket strip dst-other-kind" \
	"libmmtrust: A at the non-IMS address: strip, dst-other-kind, answered by the daemon"
contains "$(ask 203.0.113.5 10.0.1.5)" "socket strip dst-other-kind" \
	"libmmtrust: N at the IMS address: strip, dst-other-kind, answered by the daemon"
contains "$(ask 198.18.0.7 10.0.0.130)" "socket strip dst-other-kind" \
	"libmmtrust: S at the non-IMS address: strip, dst-other-kind, answered by the daemon"

# --- counted: 2 A, 1 N, 1 S through the socket, and 1 A, 1 N, 1 S through
# libmmtrust, each of which snapclient `ask` asks twice on its handle -----------
after=$(status_json)
for who in "$A 4" "$N 3" "$S 3"; do
	set -- $who
	d=$(( $(count_of "$after" "$1") - $(count_of "$before" "$1") ))
	[ "$d" = "$2" ] && pass "status: $1 counted $2 dst-other-kind answers" ||
		fail "status: $1 counted $d dst-other-kind answers, want $2"
done
check "status: 10 in total" jq -e '.answers.dst_other_kind.total == 10' <<<"$after"
q "$(in_q 192.0.2.10 10.0.1.5)" >/dev/null
q "$(in_q 10.9.9.9 10.0.0.200)" >/dev/null  # not a partner: not this reason
check "other answers are not counted" jq -e '.answers.dst_other_kind.total == 10' <<<"$(status_json)"

# --- in-process answers equal the socket's for random questions ------------------
out=$("$SC" compare "$SOCK" "$SEED" 600 $A $N $S 2>&1)
rc=$?
echo "    ${out##*$'\n'}"
[ $rc -eq 0 ] && pass "in-process answers equal the socket's with split prefixes" ||
	{ fail "in-process and socket answers differ"; echo "$out" | head -20; }
n_in=$(sed -n 's/.*in-process \([0-9]*\), compared \([0-9]*\).*/\1/p' <<<"$out")
[ "${n_in:-0}" -ge 200 ] || fail "only ${n_in:-0} of 600 answers in-process"
check "the daemon counted the ones libmmtrust left to it" \
	jq -e '.answers.dst_other_kind.total > 10' <<<"$(status_json)"

# --- a reload that only changes which key a prefix is under ----------------------
# cscf_ims becomes cscf: the same prefixes in the same order, now shared.
sed -i -e '/^cscf_ims = /d' \
	-e 's|^cscf = 10.0.0.0/25$|cscf = 10.0.0.0/25, 10.0.1.0/24, 2001:db8:10::/64|' "$MM_TMP/mmtrustd.conf"
kill -HUP "$DPID"
n_ok() { q "$(in_q 203.0.113.5 10.0.1.5)" | jq -e '.result.protected' >/dev/null; }
check "after the reload N at 10.0.1.5 (now shared) is protected" wait_for 10 n_ok
check "after the reload N's policies include 10.0.1.0/24" \
	wait_for 10 kernel_ok "$RN" 10.0.0.0/25 10.0.0.128/25 10.0.1.0/24
check "A's policies are unchanged" kernel_ok "$RA" 10.0.0.0/25 10.0.1.0/24 2001:db8:10::/64
row "A at the non-IMS address still strips" "$(in_q 192.0.2.10 10.0.0.200)" \
	'.result | .reason == "dst-other-kind"'
contains "$(ask 203.0.113.5 10.0.1.5)" "snapshot keep protected" "libmmtrust follows the reload in-process"
ts_moved() { [ "$(local_ts $N)" = '["10.0.0.0/25","10.0.0.128/25","10.0.1.0/24","2001:db8:10::/64","2001:db8:11::/64"]' ]; }
check "charon: N's connection is loaded again with the now shared prefixes" wait_for 10 ts_moved

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "daemon stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
summary "test_kinds"
