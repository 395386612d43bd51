#!/bin/bash
# Health checks and expiry warnings (docs/health.md), against the real
# daemon in a namespace of the test's own with tests/integration/fake_charon.py
# standing in for charon (every connection it is given comes up):
#  - [daemon] expiry_warning_days: 0..3650 accepted, 3651, -1 and words
#    refused naming the setting;
#  - `mmtrustctl status --check` walks every exit status: 0 all in sync and
#    up; 4 a partner CA ending within the window (not with a shorter window,
#    not with window 0), a CRL whose re-issue is overdue (a fresh one of the
#    same validity is not a warning); 6 a foreign policy on a partner's
#    selector, and with a warning at once still 6; 5 the tunnel address gone
#    (per partner) and charon gone; 6 [spd] enabled = no, 5 [ike] enabled = no;
#    1 a DOMAIN not in the table; 2 a bad option; 3 a wrong socket and a
#    stopped daemon; --nagios maps each (0, 1, 2, 3) with performance data;
#    --json gives state, code and the problems;
#  - DOMAIN judges that partner (another's warnings and conflicts are not its
#    problems) plus what bears on every partner (our certificate);
#  - the status's expiry list: what, partner, subject or file, not_after in
#    ISO 8601 UTC, days_left; a disabled partner's CA is never in it;
#  - the log says an item entering the window once: not again at a reload
#    or SIGHUP, again after it left the window and came back.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup health
A=a.health.example B=b.health.example D=d.health.example
N() { ip -n "$NS" "$@"; }
# Our own certificate, valid a year (fc_setup's ends within 30 days).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$MM_TMP/home.key" \
	-out "$MM_TMP/home.pem" -days 365 -subj "/CN=home" \
	-addext basicConstraints=critical,CA:FALSE 2>/dev/null || fail "our certificate"
make_ca "$MM_TMP" ca-soon 10   # ends in 10 days
sleep 1  # from here on less than 10 (and 365) whole days are left: days_left 9 (364)
conf() { # conf WINDOW [SPD] [IKE]
	fc_conf "${2:-yes}" "${3:-yes}" 2999 10.10.1.0/24
	printf '[daemon]\nexpiry_warning_days = %s\n' "$1" >>"$MM_TMP/mmtrustd.conf"
}
# chk WANT_EXIT DESCRIPTION [ARGS...]: status --check ARGS.
chk() { local want=$1 what=$2; shift 2; expect_exit "$want" "$what" "$CTL" status --check "$@"; }
cj() { "$CTL" --json status --check "$@" 2>/dev/null; }
st() { "$CTL" --json status "$@" | jq -c '.expiry'; }
up_in_sync() {
	"$CTL" --json status | jq -e '[.partners[] | select(.enabled and .path == "tunnel") |
		.state == "in-sync" and .tunnel.state == "up"] | all and length == 2' >/dev/null
}
code_is() { cj "${@:2}" | jq -e ".code == $1" >/dev/null; }
log_lines() { grep -c "$1" "$MM_TMP/daemon.log"; }

# --- the setting ------------------------------------------------------------------------
for v in 0 1 30 3650; do
	conf "$v"
	expect_exit 0 "expiry_warning_days = $v accepted" "$BUILD/mmtrustd" --check-config \
		--config "$MM_TMP/mmtrustd.conf"
done
for v in 3651 -1 thirty 4294967296; do
	conf "$v"
	expect_exit 1 "expiry_warning_days = $v refused" "$BUILD/mmtrustd" --check-config \
		--config "$MM_TMP/mmtrustd.conf"
	contains "$ERR" "expiry_warning_days" "the refusal of $v names the setting"
done
check "nothing was created by the refused starts" test ! -e "$MM_TMP/store.db"

# --- 0: everything in sync and up -------------------------------------------------------------
N link add cscf0 type veth peer name cscf1 && N addr add 10.10.1.5/24 dev cscf0 &&
	N link set cscf0 up && N link set cscf1 up || fail "cscf0"
conf 30
fc_start
chk 4 "an empty table enforces nothing: 4 WARNING"
contains "$OUT" "WARNING  - table: the partner table is empty: nothing is enforced" "and says so"
expect_exit 0 "add A" "$CTL" partner add $A --kind ims --agreement yes --range 10.20.1.0/24 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add B" "$CTL" partner add $B --kind non-ims --agreement no --range 10.30.1.0/24 \
	--gateway 198.51.100.11 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add D, disabled, with a CA that ends in 10 days" "$CTL" partner add $D \
	--kind non-ims --agreement no --range 10.40.1.0/24 --gateway 198.51.100.12 \
	--ca "$MM_TMP/ca-soon.pem" --disable
check "A and B in sync and up" wait_for 10 up_in_sync
chk 0 "0 OK: both in sync and up"
contains "$OUT" "mmtrust OK: 2 enabled tunnel partners in sync and up" "the OK summary"
check "OK: no problem lines" test "$(printf '%s\n' "$OUT" | wc -l)" -eq 1
chk 0 "--nagios: OK is 0" --nagios
contains "$OUT" "mmtrust OK: 2 enabled tunnel partners in sync and up | partners=2 tunnels_up=2 policies_in_sync=2 warnings=0" \
	"--nagios: the summary with performance data"
expect_exit 0 "--nagios alone implies --check" "$CTL" status --nagios
check "--json: state OK, code 0, no problems" sh -c "$(declare -f cj); CTL=$CTL cj | jq -e \
	'.state == \"OK\" and .code == 0 and .problems == [] and .partners == 2 and .tunnels_up == 2 and .policies_in_sync == 2 and .warnings == 0' >/dev/null"
check "expiry: window 30, no warning (the disabled partner's CA is not in use)" \
	test "$(st)" = '{"window_days":30,"warnings":[]}'
check "the disabled partner's CA was never logged" test "$(log_lines "expiry: partner $D")" -eq 0
expect_exit 0 "plain status still answers 0" "$CTL" status

# --- 1, 2, 3 -------------------------------------------------------------------------------------
chk 1 "1: a DOMAIN not in the table" nope.example
contains "$OUT" "mmtrust UNKNOWN: refused (not-found): domain: no partner nope.example" \
	"the summary says why"
chk 3 "--nagios: a refusal is UNKNOWN (3)" --nagios nope.example
check "--json: state UNKNOWN, code 1" sh -c "$(declare -f cj); CTL=$CTL cj nope.example | jq -e \
	'.state == \"UNKNOWN\" and .code == 1 and (.problems[0].why | test(\"nope.example\"))' >/dev/null"
chk 2 "2: an unknown option" --bogus
contains "$ERR" "unknown option '--bogus'" "the usage error names the option"
chk 2 "2: two DOMAINs" $A $B
chk 3 "--nagios: a usage error is UNKNOWN (3)" --nagios --bogus
contains "$OUT" "mmtrust UNKNOWN" "--nagios: a usage error still says UNKNOWN on stdout"
expect_exit 3 "--nagios with --json: UNKNOWN (3)" "$CTL" --json status --nagios
chk 3 "3: a socket where no daemon listens" --socket "$MM_TMP/nothing.sock"
contains "$OUT" "mmtrust UNKNOWN: cannot reach mmtrustd at $MM_TMP/nothing.sock" "the summary says why"
chk 3 "--nagios: unreachable is UNKNOWN (3)" --nagios --socket "$MM_TMP/nothing.sock"
check "--json: unreachable is code 3" sh -c "$(declare -f cj); CTL=$CTL cj --socket $MM_TMP/nothing.sock | jq -e '.code == 3 and .state == \"UNKNOWN\"' >/dev/null"

# --- 4: a partner CA within the window -----------------------------------------------------------
expect_exit 0 "A: a CA rollover to a CA that ends in 10 days" "$CTL" partner set $A \
	--ca "$MM_TMP/ca-a.pem" --ca "$MM_TMP/ca-soon.pem"
check "A up again" wait_for 10 up_in_sync
chk 4 "4 WARNING: A's new CA ends within 30 days"
contains "$OUT" "mmtrust WARNING: 2 enabled tunnel partners in sync and up; 1 warning" "the WARNING summary"
contains "$OUT" "WARNING  $A partner-ca: CA CN=ca-soon ends" "the problem line names partner, what, CA"
contains "$OUT" "(9 days left)" "and the days left"
chk 1 "--nagios: WARNING is 1" --nagios
contains "$OUT" "| partners=2 tunnels_up=2 policies_in_sync=2 warnings=1" "--nagios: warnings=1"
check "expiry list: A's CA, subject, ISO 8601 UTC end, 9 days left" sh -c "\"$CTL\" --json status | jq -e '
	.expiry.warnings | length == 1 and (.[0] | .what == \"partner-ca\" and .partner == \"$A\" and
	.subject == \"CN=ca-soon\" and .days_left == 9 and (.not_after | test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$\")) and
	(.sha256 | length) == 95)' >/dev/null"
metric() { "$CTL" metrics | grep -v '^#' | grep -F "$1" | awk '{print $NF}'; }
check "metrics: A's soon-ending CA is a warning (1), its end in unix seconds" sh -c "
	test \"\$(\"$CTL\" metrics | grep -F 'mmtrust_expiry_warning{what=\"partner-ca\",partner=\"$A\",name=\"CN=ca-soon\",sha256=\"' | awk '{print \$NF}')\" = 1"
soon_end=$(date -d "$(openssl x509 -in "$MM_TMP/ca-soon.pem" -noout -enddate | cut -d= -f2)" +%s)
check "metrics: the CA's end is its notAfter ($soon_end)" \
	test "$(metric "mmtrust_expiry_timestamp_seconds{what=\"partner-ca\",partner=\"$A\",name=\"CN=ca-soon\",sha256=\"")" = "$soon_end"
check "metrics: A's other CA (a year) is listed, not a warning" \
	test "$(metric "mmtrust_expiry_warning{what=\"partner-ca\",partner=\"$A\",name=\"CN=ca-a\",sha256=\"")" = 0
check "metrics: one warning in all" test "$(metric "mmtrust_expiry_warnings ")" = 1
chk 0 "DOMAIN B: A's CA is not B's problem" $B
contains "$OUT" "mmtrust OK: partner $B: policies in sync, tunnel up" "the summary names the partner"
check "status B: A's CA is not in B's expiry list" test "$(st $B)" = '{"window_days":30,"warnings":[]}'
chk 4 "DOMAIN A: 4" $A
chk 4 "DOMAIN D (disabled): a partner watched by name that lost its enforcement is a warning" $D
contains "$OUT" "WARNING  $D partner: disabled: no policies and no tunnel" "and says so"
check "the log says it once" test "$(log_lines "expiry: partner $A: CA certificate CN=ca-soon")" -eq 1
contains "$(grep "expiry: partner $A" "$MM_TMP/daemon.log")" "in 9 days ([daemon] expiry_warning_days = 30)" \
	"the log line says the days left and the setting"
expect_exit 0 "reload" "$CTL" reload
kill -HUP "$DPID"
chk 4 "still 4 after reload and SIGHUP"
check "not logged again at reload or SIGHUP" test "$(log_lines "expiry: partner $A: CA certificate CN=ca-soon")" -eq 1

# --- 6, and 6 with 4 at once: a foreign policy on A's selector -----------------------------------
N xfrm policy add src 10.10.1.0/24 dst 10.20.1.0/24 dir out priority 10 \
	tmpl src 198.51.100.1 dst 198.51.100.99 proto esp reqid 7 mode tunnel || fail "foreign policy"
check "A's state: conflict" wait_for 3 sh -c "\"$CTL\" --json status $A | jq -e '.partners[0].state == \"conflict\"' >/dev/null"
chk 6 "6 POLICIES NOT IN SYNC (with the CA warning at once: 6 wins)"
contains "$OUT" "mmtrust CRITICAL: POLICIES NOT IN SYNC: 1 of 2 enabled tunnel partners not in sync, 0 tunnels down; 1 warning" \
	"the summary"
contains "$OUT" "CRITICAL $A policies: conflict" "the problem line names A's conflict"
contains "$OUT" "1 foreign policies on our selectors" "and how many"
contains "$OUT" "WARNING  $A partner-ca" "the warning is listed too"
chk 2 "--nagios: 6 is CRITICAL (2)" --nagios
check "--json: code 6 and both problems" sh -c "$(declare -f cj); CTL=$CTL cj | jq -e \
	'.state == \"POLICIES NOT IN SYNC\" and .code == 6 and ([.problems[].code] | sort) == [4, 6] and .policies_in_sync == 1' >/dev/null"
chk 0 "DOMAIN B: A's conflict is not B's problem" $B
sleep 0.3
check "the foreign policy is never removed" sh -c "ip -n $NS xfrm policy list dir out | grep -A3 'dst 10.20.1.0/24' | grep -q 'reqid 7 '"
N xfrm policy delete src 10.10.1.0/24 dst 10.20.1.0/24 dir out || fail "delete the foreign policy"
check "back to 4 without the foreign policy" wait_for 3 code_is 4

# --- the window: shorter, off, back ----------------------------------------------------------------
conf 5
expect_exit 0 "reload with a 5-day window" "$CTL" reload
chk 0 "window 5: the CA with 9 days left is no warning"
check "expiry: window 5, no warning" test "$(st)" = '{"window_days":5,"warnings":[]}'
conf 0
expect_exit 0 "reload with window 0" "$CTL" reload
chk 0 "window 0: no expiry warnings"
check "expiry: window 0, no warning" test "$(st)" = '{"window_days":0,"warnings":[]}'
check "metrics: window 0, no warning" test "$(metric "mmtrust_expiry_warnings ")" = 0
conf 30
expect_exit 0 "reload with window 30 again" "$CTL" reload
chk 4 "window 30: 4 again"
check "back in the window: logged a second time (it had left)" \
	test "$(log_lines "expiry: partner $A: CA certificate CN=ca-soon")" -eq 2
conf 3650
expect_exit 0 "reload with window 3650" "$CTL" reload
check "window 3650: our certificate is listed, no partner, its file and subject" sh -c "\"$CTL\" --json status | jq -e \
	'.expiry.warnings | any(.what == \"certificate\" and .partner == null and .file == \"$MM_TMP/home.pem\" and .subject == \"CN=home\" and .days_left == 364)' >/dev/null"
check "DOMAIN B: its own CA and our certificate, not A's" sh -c "\"$CTL\" --json status $B | jq -e \
	'[.expiry.warnings[] | [.what, .partner]] | sort == [[\"certificate\", null], [\"partner-ca\", \"$B\"]]' >/dev/null"
contains "$(grep 'expiry: our \[ike\] certificate' "$MM_TMP/daemon.log")" "(CN=home) ends" "our certificate logged"
conf 30
expect_exit 0 "window 30; A's CA back to one that ends in a year" "$CTL" partner set $A --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "reload" "$CTL" reload
check "up and 0 again" wait_for 10 code_is 0

# --- 4: a CRL whose re-issue is overdue; a fresh one of the same validity is fine -----------------------
now=$(date +%s)
crl() { # crl OUT THIS_UPDATE NEXT_UPDATE (unix seconds)
	pki --signcrl --cacert "$MM_TMP/ca-a.pem" --cakey "$MM_TMP/ca-a.key" -D %s -F "$2" -T "$3" \
		--outform pem >"$1.tmp" 2>/dev/null && mv "$1.tmp" "$1"
}
crl "$MM_TMP/b.crl" $((now - 6 * 86400)) $((now + 86400 - 60)) || fail "pki --signcrl"
expect_exit 0 "B lists a 7-day CRL issued 6 days ago" "$CTL" partner set $B --crl "$MM_TMP/b.crl"
check "4: its nextUpdate is a day away" wait_for 5 code_is 4
OUT=$("$CTL" status --check)
contains "$OUT" "WARNING  $B partner-crl: CRL $MM_TMP/b.crl: its nextUpdate" "the CRL problem line"
contains "$OUT" "re-issued CRL is overdue" "and says why"
EXP=$(st)
check "expiry list: the CRL, its file, 0 days left ($EXP)" jq -e \
	".warnings == [.warnings[0]] and (.warnings[0] | .what == \"partner-crl\" and .partner == \"$B\" and .file == \"$MM_TMP/b.crl\" and .days_left == 0)" <<<"$EXP" >/dev/null
crl "$MM_TMP/b.crl" "$now" $((now + 7 * 86400)) || fail "pki --signcrl (fresh)"
check "a fresh 7-day CRL (within the 30-day window) is no warning: 0" wait_for 5 code_is 0
check "the CRL was logged once" test "$(log_lines "expiry: partner $B: CRL file")" -eq 1

# --- 5: tunnels down -------------------------------------------------------------------------------------
N addr del "$TUN/24" dev mmtun0 || fail "remove our tunnel address"
check "5 TUNNEL DOWN: our tunnel address is gone" wait_for 5 code_is 5
OUT=$("$CTL" status --check)
contains "$OUT" "mmtrust CRITICAL: TUNNEL DOWN: 0 of 2 enabled tunnel partners not in sync, 2 tunnels down; 1 warning" "the summary"
contains "$OUT" "CRITICAL $A tunnel: down" "A's tunnel line"
contains "$OUT" "WARNING  - tunnel-address: $TUN" "the missing address, daemon-wide"
expect_exit 2 "--nagios: 5 is CRITICAL (2)" "$CTL" status --nagios
contains "$OUT" "tunnels_up=0 policies_in_sync=2" "--nagios: tunnels_up=0"
N addr add "$TUN/24" dev mmtun0 || fail "our tunnel address back"
check "address back: 0" wait_for 10 code_is 0
mm_kill "$CHARON"
CHARON=
check "5: charon gone" wait_for 5 code_is 5
OUT=$("$CTL" status --check $B)
contains "$OUT" "CRITICAL - ike: charon is not connected" "the charon line"
contains "$OUT" "1 tunnels down" "DOMAIN B: counts B only"
rm -f "$MM_TMP/charon.ready"
"$PY" "$FAKE" "$MM_TMP/charon.vici" "$MM_TMP/charon.ready" &
CHARON=$!
check "charon back: 0" wait_for 15 code_is 0

# --- [spd] enabled = no: 6; [ike] enabled = no: 5 --------------------------------------------------------
conf 30 no yes
expect_exit 0 "reload with [spd] enabled = no" "$CTL" reload --allow-shrink
chk 6 "6: nothing enforced with the SPD side off"
contains "$OUT" "CRITICAL - kernel: policies NOT programmed (disabled in the configuration): 2 enabled tunnel partners not enforced" \
	"the kernel line"
conf 30 yes no
expect_exit 0 "reload with [spd] on, [ike] enabled = no" "$CTL" reload
check "policies in sync again" wait_for 5 sh -c "\"$CTL\" --json status | jq -e '.kernel.in_sync == 4' >/dev/null"
chk 5 "5: no tunnel can be up with the IKE side off"
contains "$OUT" "CRITICAL - ike: [ike] enabled = no: no tunnel can be up (2 enabled tunnel partners)" "the ike line"
check "IKE off: no certificate or CRL item (charon's, unused)" test "$(st)" = '{"window_days":30,"warnings":[]}'

# --- 3: the daemon stopped -------------------------------------------------------------------------------------
mm_kill "$DPID"
DPID=
chk 3 "3: the daemon stopped"
chk 3 "--nagios: 3" --nagios
summary test_health
