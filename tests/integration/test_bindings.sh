#!/bin/bash
# The Lua and Python modules (bindings/, docs/bindings.md) against the real
# mmtrustd: each binding's answers for the partners of test_query.sh's
# table (agreement, none, seg, disabled), refusals, argument errors that
# must raise, a seeded set of random questions compared with the daemon's
# answers on the socket itself (bindings_reference.py, JSON lines, not
# libmmtrust), the failures of bindings_fault.py's fault-injection sockets
# (hung, garbage, hang-up, late answers), then the daemon stopped: every
# question on a handle made before fails closed (pai "strip", error set,
# no exception, no Lua error), and the same handle answers again once the
# daemon is back.  The checks run in bindings_check.lua and
# bindings_check.py, both at once, in step with this script through files.
# BINDINGS_SEED repeats a run's random questions.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
HERE=$(realpath "$(dirname "$0")")
PY=/usr/bin/python3
LUA=lua5.1
LUA_MOD=$BUILD/bindings/lua/mmtrust.so
PY_MOD=$(ls "$BUILD"/bindings/python/mmtrust*.so 2>/dev/null | head -1)
SEED=${BINDINGS_SEED:-$((RANDOM * 32768 + RANDOM))}
COUNT=300

mm_setup bindings
FAULT_PID= LUA_PID= PYC_PID=
mm_cleanup_hook() { mm_kill "$LUA_PID"; mm_kill "$PYC_PID"; mm_kill "$FAULT_PID"; }

CTL="$BUILD/mmtrustctl"
SOCK=$MM_TMP/query.sock
SYNC=$MM_TMP/sync
FAULT=$MM_TMP/fault
mkdir -p "$SYNC" "$FAULT"
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $SOCK
[spd]
enabled = no
CONF

check "the Lua module is built ($LUA_MOD)" test -f "$LUA_MOD"
check "the Python module is built ($BUILD/bindings/python)" test -n "$PY_MOD"
check "$LUA is installed (scripts/deps.sh)" sh -c "command -v $LUA >/dev/null"
[ "$MM_FAILS" -eq 0 ] || { summary test_bindings; exit 1; }

# A sanitizer build's modules need the sanitizer's runtime loaded first in
# the interpreter: their __asan_* and __ubsan_* symbols are left to the
# program that loads them, and lua5.1 and python3 are not instrumented.
# Leak reports are off for the interpreters only (their own allocations
# at exit are not ours); the daemon keeps the options make asan gives.
INTERP_ENV=()
if nm -u "$LUA_MOD" | grep -q __asan_; then
	PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
	check "the sanitizer runtime for the modules is there" test -f "$PRELOAD"
	INTERP_ENV=(LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
fi
run_lua() { env "${INTERP_ENV[@]}" LUA_CPATH="$BUILD/bindings/lua/?.so" "$LUA" "$@"; }
run_py() { env "${INTERP_ENV[@]}" PYTHONPATH="$BUILD/bindings/python" "$PY" "$@"; }

# The module loads into its interpreter and exports only its entry point.
expect_exit 0 "lua: require \"mmtrust\" loads the module" run_lua -e \
	'local m = require "mmtrust"; assert(type(m.connect) == "function"); print(package.loaded.mmtrust == m)'
contains "$OUT" true "lua: the module is package.loaded.mmtrust"
expect_exit 0 "python: import mmtrust loads the module" run_py -c \
	'import mmtrust; print(mmtrust.__file__)'
contains "$OUT" "$BUILD/bindings/python/mmtrust" "python: the module is the one built"
check "the modules export only luaopen_mmtrust / PyInit_mmtrust (libmmtrust's symbols are local)" \
	test "$(nm -D --defined-only "$LUA_MOD" "$PY_MOD" | awk 'NF == 3 { print $3 }' | sort | tr '\n' ' ')" = \
	"PyInit_mmtrust luaopen_mmtrust "

# An address of each family on the host ([local] tunnel is empty: any
# usable one may carry a tunnel), so a tunnel partner without an SA is
# `unprotected`; with none, the answers say tunnel-address-missing
# (test_host.sh's rows).
ip -n "$NS" link add mmq0 type veth peer name mmq1 &&
	ip -n "$NS" addr add 198.51.100.2/24 dev mmq0 &&
	ip -n "$NS" addr add 2001:db8:fffe::2/64 dev mmq0 nodad && ip -n "$NS" link set mmq1 up &&
	ip -n "$NS" link set mmq0 up ||
	fail "the host's addresses"
start_daemon() { mm_start_daemon 5 "$SOCK" answer; }
make_ca "$MM_TMP" ca-a
make_ca "$MM_TMP" ca-s
make_ca "$MM_TMP" ca-n
start_daemon
expect_exit 0 "add ims partner A (agreement, tunnel)" "$CTL" partner add ims.partner-a.example \
	--kind ims --agreement yes --range 192.0.2.0/24 --range 2001:db8:a::/48 \
	--gateway 198.51.100.10 --ca "$MM_TMP/ca-a.pem"
expect_exit 0 "add ims partner S (agreement, seg)" "$CTL" partner add ims.partner-s.example \
	--kind ims --agreement yes --path seg --range 198.18.0.0/24 --range 2001:db8:5::/48 \
	--gateway 198.51.100.11 --ca "$MM_TMP/ca-s.pem"
expect_exit 0 "add non-ims partner N (no agreement)" "$CTL" partner add sip.provider-n.example \
	--kind non-ims --agreement no --range 203.0.113.0/25 --gateway 198.51.100.20 \
	--ca "$MM_TMP/ca-n.pem"
expect_exit 0 "add disabled partner D (agreement, seg)" "$CTL" partner add ims.partner-d.example \
	--kind ims --agreement yes --path seg --disable --range 203.0.113.128/25 \
	--gateway 198.51.100.30 --ca "$MM_TMP/ca-s.pem"

echo "    seed $SEED (BINDINGS_SEED=$SEED repeats it)"
expect_exit 0 "the reference answers from the socket" \
	"$PY" "$HERE/bindings_reference.py" "$SOCK" "$SEED" "$COUNT" "$MM_TMP/ref.tsv"
echo "    $OUT"
check "$COUNT reference questions" test "$(wc -l <"$MM_TMP/ref.tsv")" -eq "$COUNT"

"$PY" "$HERE/bindings_fault.py" "$FAULT" "$FAULT/ready" 2>"$MM_TMP/fault.log" &
FAULT_PID=$!
wait_for 5 test -e "$FAULT/ready" || fail "the fault-injection sockets did not come up"

run_lua "$HERE/bindings_check.lua" "$SOCK" "$MM_TMP/ref.tsv" "$FAULT" "$SYNC" >"$MM_TMP/lua.out" 2>&1 &
LUA_PID=$!
run_py "$HERE/bindings_check.py" "$SOCK" "$MM_TMP/ref.tsv" "$FAULT" "$SYNC" >"$MM_TMP/py.out" 2>&1 &
PYC_PID=$!

# phase FILE PID: wait for the script to reach FILE (or to end).
phase() { wait_for 60 sh -c "test -e '$SYNC/$1' || ! kill -0 $2"; test -e "$SYNC/$1"; }
check "lua: the checks with the daemon up ran" phase lua.up "$LUA_PID"
check "python: the checks with the daemon up ran" phase py.up "$PYC_PID"

kill -TERM "$DPID"
wait "$DPID"
DPID=
check "the daemon is stopped and its socket gone" test ! -e "$SOCK"
touch "$SYNC/go-dead"
check "lua: the checks with the daemon stopped ran" phase lua.dead "$LUA_PID"
check "python: the checks with the daemon stopped ran" phase py.dead "$PYC_PID"

start_daemon
touch "$SYNC/go-back"
wait "$LUA_PID"
rc=$?
LUA_PID=
check "lua: bindings_check.lua exits 0 (exit $rc)" test $rc -eq 0
wait "$PYC_PID"
rc=$?
PYC_PID=
check "python: bindings_check.py exits 0 (exit $rc)" test $rc -eq 0

# Each script's PASS/FAIL lines count here; anything else is shown.
for f in lua py; do
	n=0
	while IFS= read -r line; do
		case $line in
		"PASS "*) pass "${line#PASS }"; n=$((n + 1)) ;;
		"FAIL "*) fail "${line#FAIL }" ;;
		"DONE "*) ;;
		*) echo "    $f: $line" ;;
		esac
	done <"$MM_TMP/$f.out"
	echo "    $f: $n checks passed"
	check "$f: the script ran to its end" grep -q '^DONE ' "$MM_TMP/$f.out"
	check "$f: more than 50 checks ran ($n)" test "$n" -gt 50
done
check "the daemon still runs after the bindings' questions" kill -0 "$DPID"
summary "test_bindings"
