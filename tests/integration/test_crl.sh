#!/bin/bash
# A partner's CRL files and revocation mode, with the daemon driving
# tests/integration/fake_charon.py (which logs every command it gets):
#   - provisioning refuses a relative path, a missing file, a file that is
#     not a CRL, another CA's CRL, a CRL of the CA's name but another key,
#     an expired CRL, two CRLs in one file and a file over 65535 bytes,
#     naming <domain>.crls[i] (the path in the message), and changes nothing;
#   - the CRL goes to charon (load-cert X509_CRL, its exact content) before
#     the partner's connection, which carries remote.revocation;
#   - a new CRL revoking a serial anew (rename over the old one) is loaded
#     within the poll bound and the up tunnel is re-authenticated (rekey
#     reauth); a re-issued CRL with the same entries is loaded and flushed
#     but re-authenticates nothing; the same content again (SIGHUP) neither;
#   - a CRL that goes missing, turns to garbage or to another CA's CRL is
#     reported in status and the log (once), and charon is not given it;
#     one whose nextUpdate passes turns stale, said once;
#   - charon refusing a load: loaded false, retried backing off, logged once;
#   - one file listed by two partners with different CAs is judged per
#     partner; a CA change judges the partner's CRLs again;
#   - a restarted daemon loads the CRL again on start;
#   - with [ike] enabled = no status says the CRLs are not used, and why.
# The real charon's side (revoked certificates get no SA) is the VM tier's:
# tests/vm/test_mmtrust_revocation.sh.
set -u

BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup crl
A=ims.partner-a.example
export FAKE_CHARON_LOG=$MM_TMP/charon.cmds
export FAKE_CHARON_REFUSE_CRL=$MM_TMP/refuse-crl
: >"$FAKE_CHARON_LOG"
fc_conf yes yes 2999 10.0.0.0/24
fc_start

pki_crl() {  # pki_crl OUT [pki --signcrl options...]
	local out=$1
	shift
	pki --signcrl --cacert "$MM_TMP/ca-a.pem" --cakey "$MM_TMP/ca-a.key" --lifetime 2 \
		--outform pem "$@" >"$out.tmp" 2>/dev/null && mv "$out.tmp" "$out"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
n_cmds() { jq -c "select($1)" "$FAKE_CHARON_LOG" | wc -l; }
status_crl() { "$CTL" status --json | jq -c ".partners[] | select(.domain == \"$A\") | .revocation"; }

mkdir -p "$MM_TMP/crl"
pki_crl "$MM_TMP/crl/a.crl" || fail "pki --signcrl"
add() {
	"$CTL" partner add $A --kind ims --agreement yes --range 192.0.2.0/24 \
		--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem" "$@"
}

# Refused at provisioning, nothing changed.
cd "$MM_TMP/crl" || exit 1
expect_exit 1 "a relative CRL path is refused" add --crl a.crl
contains "$ERR" "partner.crls[0]" "the refusal names partner.crls[0]"
contains "$ERR" "relative path" "and says why"
cd - >/dev/null || exit 1
expect_exit 1 "a missing CRL file is refused" add --crl /nonexistent/a.crl
contains "$ERR" "crls[0]" "the refusal names crls[0]"
contains "$ERR" "No such file" "and says the file is missing"
expect_exit 1 "a file that is not a CRL is refused" add --crl "$MM_TMP/crl/a.crl" \
	--crl "$MM_TMP/ca-a.pem"
contains "$ERR" "crls[1]" "the refusal names crls[1]"
contains "$ERR" "is not a CRL" "and says why"
# Not the partner's CA's CRL, expired, two CRLs in one file, too big.
make_ca "$MM_TMP" ca-x
pki --signcrl --cacert "$MM_TMP/ca-x.pem" --cakey "$MM_TMP/ca-x.key" --lifetime 2 \
	--outform pem >"$MM_TMP/crl/x.crl" 2>/dev/null || fail "pki --signcrl ca-x"
expect_exit 1 "a CRL of another CA is refused" add --crl "$MM_TMP/crl/a.crl" \
	--crl "$MM_TMP/crl/x.crl"
contains "$ERR" "$A.crls[1]" "the refusal names $A.crls[1]"
contains "$ERR" "issued by CN=ca-x, not by the partner's CA(s) CN=ca-a" "and says whose it is"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$MM_TMP/ca-a2.key" \
	-out "$MM_TMP/ca-a2.pem" -days 30 -subj "/CN=ca-a" -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
pki --signcrl --cacert "$MM_TMP/ca-a2.pem" --cakey "$MM_TMP/ca-a2.key" --lifetime 2 \
	--outform pem >"$MM_TMP/crl/a2.crl" 2>/dev/null || fail "pki --signcrl ca-a2"
expect_exit 1 "a CRL of the CA's name but another key is refused" add --crl "$MM_TMP/crl/a2.crl"
contains "$ERR" "signature does not verify with CA CN=ca-a" "and says the signature fails"
pki_crl "$MM_TMP/crl/old.crl" --this-update "01.01.20 00:00:00" --next-update "02.01.20 00:00:00" ||
	fail "pki --signcrl expired"
expect_exit 1 "an expired CRL is refused" add --crl "$MM_TMP/crl/old.crl"
contains "$ERR" "$A.crls[0]" "the refusal names crls[0]"
contains "$ERR" "is in the past" "and says its nextUpdate passed"
cat "$MM_TMP/crl/a.crl" "$MM_TMP/crl/a.crl" >"$MM_TMP/crl/two.crl"
expect_exit 1 "two CRLs in one file are refused" add --crl "$MM_TMP/crl/two.crl"
contains "$ERR" "one CRL per file" "and says why"
head -c 70000 /dev/zero | tr '\0' '\n' >"$MM_TMP/crl/big.crl"
expect_exit 1 "a CRL file over 65535 bytes is refused" add --crl "$MM_TMP/crl/big.crl"
contains "$ERR" "$A.crls[0]" "the refusal names $A.crls[0]"
contains "$ERR" "$MM_TMP/crl/big.crl is 70000 bytes, larger than 65535 bytes" "with the file and its size"
check "the field holds no path" sh -c "! printf '%s' \"\$1\" | grep -q 'big.crl.crls'" _ "$ERR"
expect_exit 1 "an unknown revocation mode is refused" add --revocation never
contains "$ERR" "revocation" "the refusal names revocation"
check "nothing was added" sh -c "[ \"\$('$CTL' --json partner list | jq '.partners | length')\" = 0 ]"
check "charon got no CRL from the refused changes" test "$(n_cmds '.cmd == "load-cert" and .type == "X509_CRL"')" -eq 0

# Added with the CRL: loaded before the connection, which carries strict.
expect_exit 0 "partner with a CRL and revocation strict" add --crl "$MM_TMP/crl/a.crl" \
	--revocation strict
SHA1=$(sha "$MM_TMP/crl/a.crl")
loaded() { test "$(n_cmds ".type == \"X509_CRL\" and .sha256 == \"$1\"")" -ge "${2:-1}"; }
wait_for 10 loaded "$SHA1" && pass "the CRL was loaded into charon" ||
	fail "no load-cert X509_CRL of the CRL: $(cat "$FAKE_CHARON_LOG")"
conn_line=$(grep -n '"load-conn"' "$FAKE_CHARON_LOG" | grep "\"$A\"" | head -1 | cut -d: -f1)
crl_line=$(grep -n "$SHA1" "$FAKE_CHARON_LOG" | head -1 | cut -d: -f1)
check "the CRL went to charon before the connection (lines $crl_line, $conn_line)" \
	test "${crl_line:-99}" -lt "${conn_line:-0}"
check "load-conn carries remote revocation strict" \
	test "$(n_cmds ".cmd == \"load-conn\" and .name == \"$A\" and .revocation == \"strict\"")" -ge 1
keep() { "$PY" "$QC" ask "$SOCK" '{"op":"inbound","src":"192.0.2.10","dst":"10.0.0.5"}' | jq -e '.result.pai == "keep"' >/dev/null; }
wait_for 10 keep && pass "the tunnel is up (fake charon)" || fail "A is not kept"
st_ok() { status_crl | jq -e ".mode == \"strict\" and (.crls | length) == 1 and .crls[0].state == \"ok\" and .crls[0].loaded == true and .crls[0].issuer == \"CN=ca-a\" and .crls[0].next_update != null" >/dev/null; }
wait_for 5 st_ok && pass "status: mode strict, the CRL read and loaded" || fail "status: $(status_crl)"
check "mmtrustctl status (text) has no CRL problem line" sh -c "! '$CTL' status | grep -q 'CRL problem'"
check "no re-authentication while nothing changed" test "$(n_cmds '.cmd == "rekey"')" -eq 0

# A new CRL (revoking a serial) replaces the file: loaded, and the up
# tunnel re-authenticated, within the poll bound (1 s) plus slack.
t0=$(date +%s%N)
pki_crl "$MM_TMP/crl/a.crl" --lastcrl "$MM_TMP/crl/a.crl" --serial 0badc0de
SHA2=$(sha "$MM_TMP/crl/a.crl")
reauthed() { test "$(n_cmds '.cmd == "rekey" and .reauth == "yes"')" -ge "$1"; }
wait_for 5 loaded "$SHA2" && pass "the changed CRL was loaded" || fail "changed CRL not loaded: $(tail -3 "$FAKE_CHARON_LOG")"
wait_for 5 reauthed 1 && pass "the tunnel was re-authenticated" || fail "no rekey reauth: $(tail -3 "$FAKE_CHARON_LOG")"
ms=$((($(date +%s%N) - t0) / 1000000))
check "change to re-authentication in ${ms} ms (bound 2500)" test "$ms" -le $((2500 * MM_SLOW))
first() { grep -n "$1" "$FAKE_CHARON_LOG" | tail -1 | cut -d: -f1; }
fl=$(first '"flush-certs", "type": "X509_CRL"') rk=$(first '"rekey"') ld=$(first "$SHA2")
check "charon's CRL cache is flushed after the load and before the re-authentication ($ld < $fl < $rk)" \
	test "${ld:-99}" -lt "${fl:-0}" -a "${fl:-99}" -lt "${rk:-0}"
reqid=$("$CTL" --json partner show $A | jq .reqid)
check "rekey ike-id is the tunnel's IKE_SA ($reqid)" \
	test "$(n_cmds ".cmd == \"rekey\" and .\"ike-id\" == \"$reqid\"")" -ge 1
contains "$(cat "$MM_TMP/daemon.log")" "re-authenticating IKE_SA" "the log says why the tunnel re-authenticates"
st2() { status_crl | jq -e ".crls[0].revoked == 1" >/dev/null; }
wait_for 5 st2 && pass "status shows the new CRL (1 revoked)" || fail "status: $(status_crl)"

# The CRL re-issued (new crlNumber, signature, bytes) with the same
# entries: loaded and charon's cache flushed, but no re-authentication.
r=$(n_cmds '.cmd == "rekey"')
f=$(n_cmds '.cmd == "flush-certs"')
pki_crl "$MM_TMP/crl/a.crl" --lastcrl "$MM_TMP/crl/a.crl"
SHA2=$(sha "$MM_TMP/crl/a.crl")
wait_for 5 loaded "$SHA2" && pass "the re-issued CRL was loaded" || fail "re-issued CRL not loaded"
flushed() { test "$(n_cmds '.cmd == "flush-certs"')" -gt "$f"; }
wait_for 5 flushed && pass "and charon's CRL cache flushed" || fail "no flush-certs after the re-issue"
sleep 1.5
check "a re-issued CRL revoking nothing new re-authenticates nothing" \
	test "$(n_cmds '.cmd == "rekey"')" -eq "$r"
contains "$(cat "$MM_TMP/daemon.log")" "it revokes a serial anew" "the log says the first change revoked anew"

# SIGHUP: read and loaded again, the same content: no re-authentication.
k=$(n_cmds ".sha256 == \"$SHA2\"")
r=$(n_cmds '.cmd == "rekey"')
kill -HUP "$DPID"
wait_for 10 loaded "$SHA2" $((k + 1)) && pass "SIGHUP loads the CRL again" || fail "SIGHUP did not reload the CRL"
sleep 1.5
check "the same content re-authenticates nothing" test "$(n_cmds '.cmd == "rekey"')" -eq "$r"

# Missing, then garbage: reported; charon keeps what it has.
rm "$MM_TMP/crl/a.crl"
missing() { status_crl | jq -e '.crls[0].state == "missing" and (.crls[0].error | test("No such file"))' >/dev/null; }
wait_for 5 missing && pass "status: the CRL is missing" || fail "status: $(status_crl)"
contains "$(cat "$MM_TMP/daemon.log")" "is missing" "the log says the CRL is missing"
contains "$("$CTL" status)" "CRL problem: partner $A: $MM_TMP/crl/a.crl: missing, No such file" \
	"mmtrustctl status (text) names the missing CRL"
k=$(n_cmds '.type == "X509_CRL"')
echo "not a crl" >"$MM_TMP/crl/a.crl"
bad() { status_crl | jq -e '.crls[0].state == "bad" and (.crls[0].error | test("not a CRL"))' >/dev/null; }
wait_for 5 bad && pass "status: the file is not a CRL" || fail "status: $(status_crl)"
sleep 1.5
check "charon was given no garbage" test "$(n_cmds '.type == "X509_CRL"')" -eq "$k"

# Another CA's CRL on disk: bad, said once, charon is not given it.
k=$(n_cmds '.type == "X509_CRL"')
cp "$MM_TMP/crl/x.crl" "$MM_TMP/crl/a.crl.new" && mv "$MM_TMP/crl/a.crl.new" "$MM_TMP/crl/a.crl"
foreign() { status_crl | jq -e '.crls[0].state == "bad" and (.crls[0].error | test("issued by CN=ca-x")) and .crls[0].loaded == false' >/dev/null; }
wait_for 5 foreign && pass "status: another CA's CRL is bad, not loaded" || fail "status: $(status_crl)"
sleep 2
check "charon was not given another CA's CRL" test "$(n_cmds '.type == "X509_CRL"')" -eq "$k"
check "said once in the log" test "$(grep -c 'is not given to charon.*issued by CN=ca-x' "$MM_TMP/daemon.log")" -eq 1
contains "$("$CTL" status)" "CRL problem: partner $A: $MM_TMP/crl/a.crl: bad" "mmtrustctl status (text) says so"

# nextUpdate passes while the daemon runs: stale, said once.
nu=$(date -d "@$(($(date +%s) + 3))" '+%d.%m.%y %T')
pki_crl "$MM_TMP/crl/a.crl" --next-update "$nu" || fail "pki --signcrl short"
stale() { status_crl | jq -e '.crls[0].state == "stale" and (.crls[0].error | test("is in the past"))' >/dev/null; }
wait_for 10 stale && pass "status: the CRL turned stale" || fail "status: $(status_crl)"
contains "$("$CTL" status)" "CRL problem: partner $A: $MM_TMP/crl/a.crl: stale" "mmtrustctl status (text) says stale"
sleep 1.5
check "stale said once in the log" test "$(grep -c "CRL $MM_TMP/crl/a.crl is stale" "$MM_TMP/daemon.log")" -eq 1

# charon refuses the content: not loaded, tried again backing off, said once.
touch "$FAKE_CHARON_REFUSE_CRL"
k=$(n_cmds '.cmd == "load-cert" and .type == "X509_CRL"')
pki_crl "$MM_TMP/crl/a.crl" --serial 0badc0de
SHA4=$(sha "$MM_TMP/crl/a.crl")
refused() { status_crl | jq -e '.crls[0].loaded == false and (.crls[0].error | test("charon refused"))' >/dev/null; }
wait_for 5 refused && pass "status: charon refused it, loaded false" || fail "status: $(status_crl)"
sleep 6
tries=$(($(n_cmds '.cmd == "load-cert" and .type == "X509_CRL"') - k))
check "tried again backing off ($tries loads in ~6 s; every second would be 7)" test "$tries" -ge 2 -a "$tries" -le 4
check "the refusal is logged once" test "$(grep -c "charon refused CRL $MM_TMP/crl/a.crl" "$MM_TMP/daemon.log")" -eq 1
rm "$FAKE_CHARON_REFUSE_CRL"
ok_back() { status_crl | jq -e '.crls[0].state == "ok" and .crls[0].loaded == true and .crls[0].error == null' >/dev/null; }
wait_for 12 ok_back && pass "charon takes it on a later try" || fail "status: $(status_crl)"

# Two CAs (a rollover) through mmtrustctl: the change shows both
# fingerprints, charon's connection gets both, a third is refused.
make_ca "$MM_TMP" ca-b
make_ca "$MM_TMP" ca-c
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | cut -d= -f2; }
expect_exit 0 "partner set --ca old --ca new" "$CTL" partner set $A --ca "$MM_TMP/ca-a.pem" \
	--ca "$MM_TMP/ca-b.pem"
contains "$OUT" "ca sha256: $(fp "$MM_TMP/ca-a.pem") -> $(fp "$MM_TMP/ca-a.pem"), $(fp "$MM_TMP/ca-b.pem")" \
	"the change shows both CAs by fingerprint"
two_cas() { test "$(n_cmds ".cmd == \"load-conn\" and .name == \"$A\" and .cacerts == 2")" -ge 1; }
wait_for 5 two_cas && pass "load-conn carries both CAs" || fail "no load-conn with 2 cacerts: $(tail -3 "$FAKE_CHARON_LOG")"
check "partner show lists two CAs" test "$("$CTL" --json partner show $A | jq '.cas | length')" = 2
expect_exit 1 "a third CA is refused" "$CTL" partner set $A --ca "$MM_TMP/ca-a.pem" \
	--ca "$MM_TMP/ca-b.pem" --ca "$MM_TMP/ca-c.pem"
contains "$ERR" "lists 3 CAs" "the refusal says why"
"$CTL" export >"$MM_TMP/export.yaml" || fail "export"
expect_exit 0 "the export applies back" "$CTL" apply "$MM_TMP/export.yaml"
contains "$OUT" "no changes" "applying the export changes nothing"

# A restart loads the CRL on start.
pki_crl "$MM_TMP/crl/a.crl" --lastcrl /dev/null --serial 0badc0de 2>/dev/null ||
	pki_crl "$MM_TMP/crl/a.crl" --serial 0badc0de
SHA3=$(sha "$MM_TMP/crl/a.crl")
kill "$DPID"
wait "$DPID" 2>/dev/null
mm_start_daemon 10 "$SOCK" answer
wait_for 10 loaded "$SHA3" && pass "a restarted daemon loads the CRL on start" || fail "no CRL load after restart"

# A CRL missing when the daemon starts: it starts (the table is served),
# status and the log say which file is missing.
kill "$DPID"
wait "$DPID" 2>/dev/null
mv "$MM_TMP/crl/a.crl" "$MM_TMP/crl/a.crl.away"
: >"$MM_TMP/daemon.log"
mm_start_daemon 10 "$SOCK" answer
wait_for 5 missing && pass "missing at start: status says so" || fail "status: $(status_crl)"
contains "$(cat "$MM_TMP/daemon.log")" "CRL $MM_TMP/crl/a.crl is missing" "missing at start: logged with its path"
mv "$MM_TMP/crl/a.crl.away" "$MM_TMP/crl/a.crl"
back() { status_crl | jq -e '.crls[0].state == "ok" and .crls[0].loaded == true' >/dev/null; }
wait_for 5 back && pass "the file back in place: read and loaded within the poll" || fail "status: $(status_crl)"

# One file, two partners with different CAs: judged per partner, given to
# charon while one listing partner's CA issued it.
B=ims.partner-b.example
pki_crl "$MM_TMP/crl/s.crl" || fail "pki --signcrl s"
expect_exit 0 "partner B (CAs ca-a and ca-x) lists A's CRL too" "$CTL" partner add $B --kind ims \
	--agreement yes --range 203.0.113.0/24 --gateway 198.51.100.20 --ca "$MM_TMP/ca-a.pem" \
	--ca "$MM_TMP/ca-x.pem" --crl "$MM_TMP/crl/s.crl"
expect_exit 0 "A lists it as well" "$CTL" partner set $A --crl "$MM_TMP/crl/a.crl" \
	--crl "$MM_TMP/crl/s.crl"
k=$(n_cmds '.cmd == "load-cert" and .type == "X509_CRL"')
cp "$MM_TMP/crl/x.crl" "$MM_TMP/crl/s.crl.new" && mv "$MM_TMP/crl/s.crl.new" "$MM_TMP/crl/s.crl"
SHAX=$(sha "$MM_TMP/crl/s.crl")
st_of() { "$CTL" status --json | jq -c ".partners[] | select(.domain == \"$1\") | .revocation.crls[] | select(.path == \"$MM_TMP/crl/s.crl\")"; }
per_partner() { st_of $A | jq -e '.state == "bad" and (.error | test("issued by CN=ca-x"))' >/dev/null &&
	st_of $B | jq -e '.state == "ok" and .error == null and .loaded == true' >/dev/null; }
wait_for 5 per_partner && pass "ca-x's CRL: bad for A, ok and loaded for B" ||
	fail "A: $(st_of $A) B: $(st_of $B)"
check "it went to charon (B's CA issued it)" loaded "$SHAX"
expect_exit 1 "A's CAs changed to ca-b: its CRLs are judged again" "$CTL" partner set $A \
	--ca "$MM_TMP/ca-b.pem"
contains "$ERR" "$A.crls[0]" "the refusal names $A.crls[0]"
contains "$ERR" "not by the partner's CA(s) CN=ca-b" "and says whose CRL it is"

# [ike] enabled = no: the revocation settings are stored, status says
# they are not used and why.
kill "$DPID"
wait "$DPID" 2>/dev/null
fc_conf yes no 2999 10.0.0.0/24
mm_start_daemon 10 "$SOCK" answer
check "ike off: status says revocation is not enforced and why" sh -c \
	"'$CTL' status --json | jq -e '.partners[] | select(.domain == \"$A\") | .revocation | .enforced_by == null and (.why | test(\"enabled = no\")) and .mode == \"strict\"' >/dev/null"
contains "$("$CTL" status)" "CRL problem: partner $A: 2 CRL files not used: [ike] enabled = no" \
	"ike off: mmtrustctl status (text) says the CRL is not used"
check "ike off: no garbage CRL line" sh -c "! '$CTL' status | grep -q 'CRL problem: .*: -'"

[ -n "${MM_VERBOSE:-}" ] && grep -iE "crl|re-auth" "$MM_TMP/daemon.log"
summary test_crl
