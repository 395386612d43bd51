#!/bin/bash
# `inbound` with a partner's tunnel up (docs/privacy.md): `protected` only
# for a (src, dst) pair our in-policy covers -- src in the partner's range,
# dst in one of the [local] cscf prefixes of src's family.  The kernel
# delivers a partner's cleartext to any other local address (our tunnel
# address, a management address), so there the answer must never say
# protected, nor without dst; [query] require_dst = yes refuses a query
# without dst.  The tunnel is charon's word: fake_charon.py stands in for
# charon on the VICI socket (this kernel has no ESP; tests/vm has the real
# one), and every connection mmtrustd loads comes up at once.  The SPD
# is on: without our in-policies in the kernel nothing is protected
# (test_enforced.sh).
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup query-dst
CSCF4=10.0.0.5 CSCF6=2001:db8:10::5
MGMT=192.168.77.1        # some other local address ($TUN: our tunnel, outside cscf)
A=ims.partner-a.example N=sip.provider-n.example S=ims.partner-s.example
fc_conf yes yes 2999 "10.0.0.0/24, 2001:db8:10::/64"
fc_start

expect_exit 0 "add tunnel partner A (agreement)" "$CTL" partner add $A --kind ims \
	--agreement yes --range 192.0.2.0/24 --range 2001:db8:a::/48 --gateway 198.51.100.10 \
	--ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add tunnel partner N (no agreement)" "$CTL" partner add $N --kind non-ims \
	--agreement no --range 203.0.113.0/25 --gateway 198.51.100.20 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add seg partner S (agreement)" "$CTL" partner add $S --kind ims \
	--agreement yes --path seg --range 198.18.0.0/24 --gateway 198.51.100.11 \
	--ca "$MM_TMP/ca-a.pem"
RA=$("$CTL" --json partner list | jq -r ".partners[] | select(.domain == \"$A\") | .reqid")
SPI_IN=$(printf '0x%08x' $((0xc1000000 + RA % 65536)))

q() { "$PY" "$QC" ask "$SOCK" "$@"; }
row() {
	local a
	a=$(q "$2" 2>&1)
	if jq -e "$3" <<<"$a" >/dev/null 2>&1; then pass "$1"; else fail "$1: $2 -> $a"; fi
}
tunnel_up() { q "{\"op\":\"inbound\",\"src\":\"$1\",\"dst\":\"$CSCF4\"}" | jq -e '.result.sa != null' >/dev/null; }
wait_for 10 tunnel_up 192.0.2.10 || fail "A's tunnel did not come up (fake charon)"
wait_for 10 tunnel_up 203.0.113.5 || fail "N's tunnel did not come up (fake charon)"
contains "$(cat "$MM_TMP/daemon.log")" "tunnel up: partner $A" "the daemon took A's tunnel as up"

# --- the pair the in-policy covers: protected ----------------------------------
row "A over its SA, dst in cscf: protected, keep" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\"}" \
	".ok and (.result | .dst == \"$CSCF4\" and .protected and .pai == \"keep\" and .reason == \"protected\" and .sa.spi_in == \"$SPI_IN\")"
row "A over its SA, IPv6 pair in cscf: protected" \
	'{"op":"inbound","src":"2001:db8:a::1","dst":"2001:DB8:10:0::5"}' \
	'.result | .dst == "2001:db8:10::5" and .protected and .pai == "keep"'
row "A with the SA's own SPI: protected" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\",\"spi\":\"$SPI_IN\"}" \
	'.result | .protected and .pai == "keep" and .reason == "protected"'
row "A with the SA's SPI as a number: protected" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\",\"spi\":$((SPI_IN))}" \
	'.result | .protected and .pai == "keep"'

# --- what must never be protected ------------------------------------------------
row "A to our tunnel address (outside cscf): not protected, strip, dst-not-cscf" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$TUN\"}" \
	".ok and (.result | .dst == \"$TUN\" and .protected == false and .pai == \"strip\" and .reason == \"dst-not-cscf\" and .sa != null)"
row "A to a management address: not protected, strip, dst-not-cscf" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$MGMT\"}" \
	'.result | .protected == false and .pai == "strip" and .reason == "dst-not-cscf"'
row "A to the address just past 10.0.0.0/24: dst-not-cscf" \
	'{"op":"inbound","src":"192.0.2.10","dst":"10.0.1.0"}' \
	'.result | .protected == false and .reason == "dst-not-cscf"'
row "A over IPv6 to an IPv6 address outside cscf: dst-not-cscf" \
	'{"op":"inbound","src":"2001:db8:a::1","dst":"2001:db8:11::5"}' \
	'.result | .protected == false and .pai == "strip" and .reason == "dst-not-cscf"'
row "A outside cscf with the SA's own SPI: still not protected" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$TUN\",\"spi\":\"$SPI_IN\"}" \
	'.result | .protected == false and .reason == "dst-not-cscf"'
row "A without dst: not protected, strip, dst-not-given" \
	'{"op":"inbound","src":"192.0.2.10"}' \
	'.ok and (.result | .dst == null and .protected == false and .pai == "strip" and .reason == "dst-not-given" and .sa != null)'
row "A with dst null: as without" \
	'{"op":"inbound","src":"192.0.2.10","dst":null}' '.result.reason == "dst-not-given"'
row "A with a foreign SPI, dst in cscf: spi-mismatch" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\",\"spi\":\"0x0badc0de\"}" \
	'.result | .protected == false and .pai == "strip" and .reason == "spi-mismatch"'
row "N (no agreement) over its SA, dst in cscf: protected, still strip" \
	"{\"op\":\"inbound\",\"src\":\"203.0.113.5\",\"dst\":\"$CSCF4\"}" \
	'.result | .protected and .pai == "strip" and .reason == "no-agreement"'
row "N over its SA, dst outside cscf: not protected" \
	"{\"op\":\"inbound\",\"src\":\"203.0.113.5\",\"dst\":\"$TUN\"}" \
	'.result | .protected == false and .reason == "no-agreement"'
row "N over its SA, no dst: not protected" \
	'{"op":"inbound","src":"203.0.113.5"}' '.result | .protected == false and .reason == "no-agreement"'
# A mapped IPv4 spelling is the IPv4 address (mm_addr_parse normalises it):
# never a way past the dst rule.
row "A to our tunnel address spelt ::ffff:: never protected" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"::ffff:$TUN\"}" \
	'(.ok | not) or (.result.protected == false)'
if q '{"op":"inbound","src":"::ffff:192.0.2.10"}' | jq -e '.result.partner != null' >/dev/null 2>&1; then
	row "A to the CSCF spelt ::ffff:: is the CSCF: protected" \
		"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"::ffff:$CSCF4\"}" \
		".result | .protected and .dst == \"$CSCF4\""
	row "A spelt ::ffff:: to our tunnel address spelt ::ffff::: dst-not-cscf" \
		"{\"op\":\"inbound\",\"src\":\"::ffff:192.0.2.10\",\"dst\":\"::ffff:$TUN\"}" \
		'.result | .protected == false and .reason == "dst-not-cscf"'
else
	echo "    SKIP: mm_addr_parse does not normalise ::ffff:a.b.c.d on this tree (2 checks)"
fi

# --- seg partners: the SEG protects them, not our in-policy -------------------
for d in "\"dst\":\"$CSCF4\"" "\"dst\":\"$TUN\"" '"dst":null'; do
	row "S (seg) with $d: keep, seg-trusted, protected false" \
		"{\"op\":\"inbound\",\"src\":\"198.18.0.7\",$d}" \
		'.result | .protected == false and .pai == "keep" and .reason == "seg-trusted"'
done

# --- refused ------------------------------------------------------------------
invalid() { row "$1: invalid, field $2" "$3" ".ok == false and .error.code == \"invalid\" and .error.field == \"$2\" and (.error.message | length) > 0"; }
invalid "dst not an address" dst '{"op":"inbound","src":"192.0.2.10","dst":"300.1.1.1"}'
invalid "dst a prefix" dst '{"op":"inbound","src":"192.0.2.10","dst":"10.0.0.0/24"}'
invalid "dst a number" dst '{"op":"inbound","src":"192.0.2.10","dst":5}'
invalid "dst with a blank" dst '{"op":"inbound","src":"192.0.2.10","dst":" 10.0.0.5"}'
invalid "dst of the other family than src" dst '{"op":"inbound","src":"192.0.2.10","dst":"2001:db8:10::5"}'
invalid "spi 0 (means nothing)" spi "{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\",\"spi\":0}"
invalid "spi \"0x0\"" spi "{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\",\"spi\":\"0x0\"}"
invalid "spi \"abc\" (hex without 0x)" spi "{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\",\"spi\":\"abc\"}"
invalid "spi \" 0x1\" (blank)" spi "{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\",\"spi\":\" 0x1\"}"
invalid "spi op: spi 0" spi '{"op":"spi","spi":0}'
invalid "spi op: bare hex" spi '{"op":"spi","spi":"c1a2b3c4"}'
row "spi op: the SA's inbound SPI names A" "{\"op\":\"spi\",\"spi\":\"$SPI_IN\"}" \
	".result | .spi == \"$SPI_IN\" and .partner == \"$A\" and .direction == \"in\""

# --- libmmtrust (through mmtrustctl query, which passes --dst) -----------------
check "libmmtrust: inbound to the CSCF is protected" \
	sh -c "'$CTL' --json query inbound 192.0.2.10 --dst $CSCF4 | jq -e '.protected == true' >/dev/null"
check "libmmtrust: inbound to our tunnel address is not" \
	sh -c "'$CTL' --json query inbound 192.0.2.10 --dst $TUN | jq -e '.protected == false and .pai == \"strip\"' >/dev/null"

# --- [query] require_dst = yes --------------------------------------------------
printf '[query]\nrequire_dst = yes\n' >>"$MM_TMP/mmtrustd.conf"
kill -HUP "$DPID"
refused() { q '{"op":"inbound","src":"192.0.2.10"}' | jq -e '.ok == false' >/dev/null; }
wait_for 5 refused || fail "SIGHUP did not turn require_dst on"
invalid "require_dst: inbound without dst" dst '{"op":"inbound","src":"192.0.2.10"}'
invalid "require_dst: inbound with dst null" dst '{"op":"inbound","src":"198.18.0.7","dst":null}'
row "require_dst: with dst still answered" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\"}" '.result | .protected and .pai == "keep"'
contains "$(q '{"op":"inbound","src":"192.0.2.10"}')" "require_dst" "the refusal names the setting"

# --- the cscf prefixes the answers use follow a reload ---------------------------
sed -i 's|^cscf = .*|cscf = 10.0.9.0/24|' "$MM_TMP/mmtrustd.conf"
kill -HUP "$DPID"
moved() { q '{"op":"inbound","src":"192.0.2.10","dst":"10.0.9.5"}' | jq -e '.result.protected' >/dev/null; }
check "after a reload to cscf 10.0.9.0/24: 10.0.9.5 is protected" wait_for 10 moved
row "after the reload: the old cscf address is outside" \
	"{\"op\":\"inbound\",\"src\":\"192.0.2.10\",\"dst\":\"$CSCF4\"}" \
	'.result | .protected == false and .reason == "dst-not-cscf"'
row "after the reload: IPv6 cscf gone, no IPv6 dst is covered" \
	'{"op":"inbound","src":"2001:db8:a::1","dst":"2001:db8:10::5"}' \
	'.result | .protected == false and .reason == "dst-not-cscf"'
# Outbound with only an IPv4 cscf: A's IPv6 range has no out policy at all
# (the SPD pairs cscf prefixes and ranges of one family), so a message to
# it leaves in clear text: never keep.
row "outbound to A's IPv4 next hop: out policies cover it, keep" \
	'{"op":"outbound","dst":"192.0.2.10"}' '.result | .pai == "keep" and .reason == "protected"'
row "outbound to A's IPv6 next hop without an IPv6 cscf: strip, not-enforced" \
	'{"op":"outbound","dst":"2001:db8:a::1"}' \
	'.result | .pai == "strip" and .trusted == false and .reason == "not-enforced"'
row "outbound to A by domain, part of it uncovered: strip, not-enforced" \
	"{\"op\":\"outbound\",\"domain\":\"$A\"}" \
	'.result | .pai == "strip" and .reason == "not-enforced"'

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "daemon stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
summary "test_query_dst"
