#!/bin/bash
# The shipped Kamailio integration (examples/kamailio/, docs/kamailio.md)
# with a real Kamailio, real SIPp calls and the real daemon, on the cases
# that need no tunnel (tests/vm/test_kamailio_e2e.sh has the ones over ESP):
#   - a source that is no partner: every P-Asserted-Identity stripped;
#   - a seg IMS partner with agreement: kept; one without agreement: stripped;
#   - outbound to the seg partner with agreement: kept; to the one without,
#     and to a domain that is no partner: stripped;
#   - mmtrustd stopped: everything stripped, calls still routed, one log
#     line each saying why; started again: kept again.
# Each verdict is a SIPp UAS's exit code (examples/kamailio/sipp/), and each
# has its control: the opposite verdict on the same call must fail, so a
# check that did not look, or a UAS that did not look, fails the test.
#
# Namespaces: $NS (ours: mmtrustd, Kamailio, the core's UAC and UAS) and
# $PEER (the partners' and strangers' SIP servers), joined by veth.
set -u
BUILD=$(realpath "${1:-build}")
REPO=$(realpath "$(dirname "$0")/../..")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/kamailio.sh"

mm_setup kamailio
kam_setup
CTL="$BUILD/mmtrustctl"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock

S=ims.partner-s.example   # seg partner, agreement
N=ims.partner-n.example   # seg partner, no agreement
SIP_S=198.18.0.10 SIP_N=198.19.0.10 STRANGER=203.0.113.50
kam_topology "$SIP_S $SIP_N $STRANGER" "198.18.0.0/24 198.19.0.0/24 203.0.113.0/24"

cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $KAM_QUERY
[local]
cscf = $KAM_MM_NET
tunnel = $KAM_TUN
forward = no
[ike]
enabled = no
CONF
mm_start_daemon 10 "$KAM_QUERY" answer
make_ca "$MM_TMP" ca
expect_exit 0 "add seg partner $S (agreement)" "$CTL" partner add $S --kind ims --agreement yes \
	--path seg --range 198.18.0.0/24 --gateway 198.51.100.11 --ca "$MM_TMP/ca.pem"
expect_exit 0 "add seg partner $N (no agreement)" "$CTL" partner add $N --kind ims --agreement no \
	--path seg --range 198.19.0.0/24 --gateway 198.51.100.12 --ca "$MM_TMP/ca.pem"

# A site file with a wrong setting stops Kamailio at start, naming it.
kam_site "$S=$SIP_S"
# (timeout: a Kamailio that did start is stopped after 20 s, exit 124)
if timeout 20 ip netns exec "$KAM_NS" env "${KAM_ENV[@]}" kamailio -DD -E \
	-f "$KAM_EX/kamailio.cfg" -m 64 -M 16 -Y "$MM_TMP/kam" -P "$MM_TMP/kam/refused.pid" \
	-A "MM_LISTEN=udp:$KAM_MM:5060" -A "CORE_LISTEN=udp:$KAM_CORE:5060" \
	-A "MMTRUST_EDGE=\"$MM_TMP/kam/mmtrust-edge.lua\"" >"$MM_TMP/refused.log" 2>&1; then
	fail "Kamailio started with a next hop that is not a SIP URI"
elif [ $? -eq 124 ]; then
	fail "Kamailio ran with a next hop that is not a SIP URI"
else
	pass "Kamailio refuses to start with a next hop that is not a SIP URI"
fi
contains "$(cat "$MM_TMP/refused.log")" "MMTRUST_SITE.partners[$S]: want a SIP URI, got $SIP_S" \
	"the refusal names the setting and the value"

kam_site "$S=sip:$SIP_S:5060" "$N=sip:$SIP_N:5060"
kam_start || { summary test_kamailio; exit 1; }

# --- inbound --------------------------------------------------------------------
kam_inbound_case "seg partner $S with agreement" "$SIP_S" kept
kam_inbound_case "seg partner $N without agreement" "$SIP_N" stripped
kam_inbound_case "a source that is no partner" "$STRANGER" stripped
check "the stranger's strip was logged with its reason" \
	kam_log_has "inbound from $STRANGER to $KAM_MM: P-Asserted-Identity removed \\(unknown-source\\)"
check "the no-agreement strip was logged with its reason and partner" \
	kam_log_has "inbound from $SIP_N to $KAM_MM: P-Asserted-Identity removed \\(no-agreement, partner $N\\)"

# --- outbound -------------------------------------------------------------------
kam_outbound_case "to seg partner $S with agreement" $S "$SIP_S" kept
kam_outbound_case "to seg partner $N without agreement" $N "$SIP_N" stripped
kam_outbound_case "to $S with Privacy: id (a trusted next hop keeps it)" $S "$SIP_S" kept id
check "outbound strip logged" kam_log_has "outbound to $SIP_N: P-Asserted-Identity removed \\(no-agreement, partner $N\\)"

# --- mmtrustd stopped ---------------------------------------------------------------
mm_kill "$DPID"
DPID=
kam_inbound_case "mmtrustd stopped: $S" "$SIP_S" stripped
kam_outbound_case "mmtrustd stopped: outbound to $S" $S "$SIP_S" stripped
check "a stripped request without an answer is logged as such" \
	kam_log_has "inbound from $SIP_S to $KAM_MM: no answer \\(query-[a-z-]+: .*\\): P-Asserted-Identity removed"

# --- started again --------------------------------------------------------------
mm_start_daemon 10 "$KAM_QUERY" answer
kam_inbound_case "mmtrustd back: $S kept again" "$SIP_S" kept

summary test_kamailio
