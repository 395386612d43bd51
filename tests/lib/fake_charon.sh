# Shared set-up for integration tests that need a partner's tunnel "up" on
# this machine's kernel (no ESP): mmtrustd in a namespace of the test's
# own, driving tests/integration/fake_charon.py on its VICI socket (every
# connection it loads comes up at once).  Sourced after common.sh.
#
#   fc_setup NAME          mm_setup, the variables below, a CA and our cert
#   fc_conf SPD IKE REQID_MAX CSCF [LOCAL]
#                          (re)write $MM_TMP/mmtrustd.conf (LOCAL: more
#                          [local] lines)
#   fc_start               start the fake charon and the daemon
#
# Sets CTL, SOCK (the query socket), PY, QC (query_clients.py), FAKE,
# TUN (our tunnel address); kills the fake charon and $SUB (a subscriber a
# test may start) at exit.

FAKE=$(realpath "$(dirname "${BASH_SOURCE[0]}")/../integration/fake_charon.py")
QC=$(realpath "$(dirname "${BASH_SOURCE[0]}")/../integration/query_clients.py")
PY=$(command -v python3)
TUN=198.51.100.1

fc_setup() {
	mm_setup "$1"
	CHARON= SUB=
	mm_cleanup_hook() { mm_kill "$SUB"; mm_kill "$CHARON"; }
	CTL="$BUILD/mmtrustctl"
	SOCK=$MM_TMP/query.sock
	export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
	export MMTRUST_QUERY_SOCKET=$SOCK
	make_ca "$MM_TMP" ca-a
	make_leaf "$MM_TMP" home
}

fc_conf() {
	cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $SOCK
[reqid]
min = 2000
max = $3
[local]
cscf = $4
tunnel = $TUN
${5:-}
[spd]
enabled = $1
[ike]
enabled = $2
vici_socket = $MM_TMP/charon.vici
certificate = $MM_TMP/home.pem
private_key = $MM_TMP/home.key
CONF
}

# fc_start: also gives $NS our tunnel address ($TUN on a dummy mmtun0, unless
# the test made mmtun0 itself): mmtrustd counts a tunnel up only while its
# local end is a usable address of the host.
fc_start() {
	ip -n "$NS" link set lo up
	if ip -n "$NS" link add mmtun0 type veth peer name mmtun1 2>/dev/null; then
		ip -n "$NS" addr add "$TUN/24" dev mmtun0 && ip -n "$NS" link set mmtun0 up && ip -n "$NS" link set mmtun1 up
	fi
	"$PY" "$FAKE" "$MM_TMP/charon.vici" "$MM_TMP/charon.ready" &
	CHARON=$!
	wait_for 20 test -e "$MM_TMP/charon.ready" || fail "the fake charon did not start"
	mm_start_daemon 5 "$SOCK" answer
}
