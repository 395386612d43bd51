# Shared helpers for mmtrust's shell-level tests (sourced, not run).
# Every test works in its own temporary directory and stops only the
# processes it started, by PID.

MM_FAILS=0
MM_CHECKS=0
# How many times slower than a plain build the programs under test run
# (make asan sets 3): wait_for stretches its deadlines by it, and a test
# with a latency bound scales the bound.
MM_SLOW=${MM_SLOW:-1}

fail() {
	MM_FAILS=$((MM_FAILS + 1))
	echo "FAIL: $*" >&2
}

pass() {
	MM_CHECKS=$((MM_CHECKS + 1))
	[ -n "${MM_VERBOSE:-}" ] && echo "ok: $*"
	return 0
}

# check DESCRIPTION COMMAND...: the command must succeed.
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what (command: $*)"; fi
}

# expect_exit CODE DESCRIPTION COMMAND...: the command must exit with CODE;
# its stdout and stderr are kept in $OUT and $ERR.
expect_exit() {
	local want=$1 what=$2 rc
	shift 2
	OUT=$("$@" 2>"$MM_TMP/stderr") && rc=0 || rc=$?
	ERR=$(cat "$MM_TMP/stderr")
	if [ "$rc" -eq "$want" ]; then
		pass "$what"
	else
		fail "$what: exit $rc, want $want; stdout: $OUT; stderr: $ERR"
	fi
}

# contains HAYSTACK NEEDLE DESCRIPTION
contains() {
	case "$1" in
	*"$2"*) pass "$3" ;;
	*) fail "$3: '$2' not in: $1" ;;
	esac
}

# wait_for SECONDS COMMAND...: poll until the command succeeds (for
# SECONDS times MM_SLOW).
wait_for() {
	local deadline=$(($(date +%s%N) / 1000000 + $1 * 1000 * MM_SLOW))
	shift
	while ! "$@" 2>/dev/null; do
		[ $(($(date +%s%N) / 1000000)) -ge $deadline ] && return 1
		sleep 0.05
	done
}

# make_ca DIR NAME [DAYS]: a CA certificate DIR/NAME.pem made with openssl.
make_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1/$2.key" -out "$1/$2.pem" -days "${3:-365}" -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

# make_leaf DIR NAME: a certificate that is not a CA.
make_leaf() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1/$2.key" -out "$1/$2.pem" -days 30 -subj "/CN=$2" \
		-addext basicConstraints=critical,CA:FALSE 2>/dev/null
}

# mm_setup NAME: a fresh $MM_TMP (/tmp/mmtrust-NAME-*), a network namespace
# $NS of the test's own (the daemon programs XFRM: never in the host's) and
# an EXIT trap that undoes both and stops the daemon ($DPID) if it runs.
# A test with more to stop defines mm_cleanup_hook, called first.
mm_setup() {
	MM_TMP=$(mktemp -d "/tmp/mmtrust-$1-XXXXXX")
	NS=mmtrust-$1-$$
	ip netns add "$NS"
	DPID=
	trap mm_cleanup EXIT
}

mm_cleanup() {
	declare -F mm_cleanup_hook >/dev/null && mm_cleanup_hook
	mm_kill "$DPID"
	ip netns del "$NS" 2>/dev/null
	rm -rf "$MM_TMP"
}

# mm_kill PID: stop a process this test started, if PID is set.
mm_kill() {
	[ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null
}

# mm_start_daemon SECONDS SOCKET [answer]: mmtrustd from $BUILD in $NS with
# $MM_TMP/mmtrustd.conf, logging to $MM_TMP/daemon.log, its PID in $DPID;
# waits up to SECONDS for SOCKET and, with "answer", for mmtrustctl ($CTL)
# to be answered.
mm_start_daemon() {
	ip netns exec "$NS" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/mmtrustd.conf" \
		2>>"$MM_TMP/daemon.log" &
	DPID=$!
	wait_for "$1" test -S "$2" || fail "daemon did not create $2"
	[ "${3:-}" = answer ] || return 0
	wait_for "$1" "$CTL" partner list >/dev/null || fail "daemon does not answer"
}

summary() {
	echo "$1: $MM_CHECKS checks passed, $MM_FAILS failed"
	[ "$MM_FAILS" -eq 0 ]
}

# bulk_table FILE COUNT CA_FILE [RANGES]: a table file of COUNT non-IMS
# partners p0.bulk.example ... with one /32 range each from 100.64.0.0/11
# (two with RANGES=2: the second from 100.96.0.0/11), gateways in
# 203.0.113.0/24, all signed by CA_FILE (relative to FILE's directory).
bulk_table() {
	python3 - "$1" "$2" "$3" "${4:-1}" <<'PY'
import sys
path, count, ca, per = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open(path, "w") as f:
    f.write("partners:\n")
    for i in range(count):
        a, b = divmod(i, 250)
        ranges = [f"100.{64 + a // 256}.{a % 256}.{b}/32", f"100.{96 + a // 256}.{a % 256}.{b}/32"]
        f.write(f"  - domain: p{i}.bulk.example\n    kind: non-ims\n    agreement: false\n"
                f"    ranges: [{', '.join(ranges[:per])}]\n"
                f"    gateways: [203.0.113.{1 + i % 250}]\n    ca_file: {ca}\n")
PY
}
