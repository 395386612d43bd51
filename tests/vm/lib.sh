# shellcheck shell=bash
# Helpers for the VM tier's test scripts (tests/vm/test_*.sh), sourced.
# Those scripts run inside the guest that tests/vm/run.sh boots, as root, on
# a kernel with ESP; everything they create lives in namespaces and files of
# their own, and vm_cleanup (an EXIT trap set by vm_init) removes it.
#
#   . "$(dirname "$0")/lib.sh"
#   vm_init esp_smoke
#   vm_netns_pair left right 192.0.2.1/24 192.0.2.2/24
#   check "ping" ip netns exec left ping -c1 -W2 192.0.2.2
#   vm_finish               # the last command: prints the tally, sets the exit code
#
# From tests/lib/common.sh: check, expect_exit, contains, wait_for, fail,
# pass, summary. Every wait has a deadline; nothing sleeps a fixed time.

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/common.sh
. "$VM_LIB_DIR/../lib/common.sh"

VM_NAME=
VM_NETNS=()
VM_PIDS=()
VM_DIRS=()
VM_KEEP=()
VM_IF=mm0	# the veth end's name in each namespace of vm_netns_pair

# vm_init NAME: refuse to run outside the VM, make $MM_TMP, set the traps.
vm_init() {
	VM_NAME=$1
	if [ "${MMTRUST_VM:-}" != 1 ]; then
		echo "$VM_NAME: runs inside the VM only: bash tests/vm/run.sh $0" >&2
		exit 1
	fi
	MM_TMP=$(mktemp -d "/tmp/mmvm-$VM_NAME.XXXXXX")
	trap vm_cleanup EXIT
	trap 'exit 130' INT
	trap 'fail "terminated (time-out?)"; exit 143' TERM
}

# vm_finish: the tally; non-zero when a check failed or none ran.
vm_finish() {
	if [ "$MM_CHECKS" -eq 0 ] && [ "$MM_FAILS" -eq 0 ]; then
		fail "no check ran"
	fi
	summary "$VM_NAME"
}

vm_cleanup() {
	local rc=$? p n d
	for p in "${VM_PIDS[@]}"; do vm_stop "$p"; done
	if [ ${#VM_KEEP[@]} -gt 0 ] && [ -n "${MMTRUST_VM_ARTIFACTS:-}" ]; then
		cp -f "${VM_KEEP[@]}" "$MMTRUST_VM_ARTIFACTS/" 2>/dev/null
	fi
	for n in "${VM_NETNS[@]}"; do ip netns delete "$n" 2>/dev/null; done
	for d in "${VM_DIRS[@]}"; do rm -rf "$d"; done
	[ -n "${MM_TMP:-}" ] && rm -rf "$MM_TMP"
	return $rc
}

# vm_step TEXT: a progress line with the seconds since the test began.
VM_T0=${EPOCHREALTIME/./}
vm_step() {
	local now=${EPOCHREALTIME/./} ms
	ms=$(((now - VM_T0) / 1000))
	printf '[%3d.%01d] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

# vm_keep FILE...: when the test ends (after its processes), copy these
# files to the run's artifacts: build/vm-results/artifacts/TEST/ on the host.
vm_keep() { VM_KEEP+=("$@"); }

# --- processes --------------------------------------------------------------

# vm_spawn LOG CMD...: start CMD in the background, output to LOG; it is
# ended by vm_cleanup. Its PID is in $VM_PID.
vm_spawn() {
	local log=$1
	shift
	"$@" </dev/null >"$log" 2>&1 &
	VM_PID=$!
	VM_PIDS+=("$VM_PID")
}

vm_gone() {
	local st
	[ -e "/proc/$1" ] || return 0
	read -r st </proc/"$1"/stat 2>/dev/null || return 0
	# A zombie is gone too; wait reaps it.
	st=${st##*) }
	[ "${st%% *}" = Z ]
}

# vm_stop PID [SECONDS]: TERM, then KILL after the deadline; reap it.
vm_stop() {
	local pid=$1
	vm_gone "$pid" && { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	if ! wait_for "${2:-5}" vm_gone "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		wait_for 2 vm_gone "$pid"
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# --- network ----------------------------------------------------------------

# vm_batch NS COMMAND...: ip commands (without "ip") in one ip process in
# namespace NS ("" for this one): each program start costs 0.1-0.2 s here.
vm_batch() {
	local ns=$1
	shift
	printf '%s\n' "$@" | ip ${ns:+-n "$ns"} -batch -
}

# vm_netns NAME...: new namespaces with lo up, deleted by vm_cleanup.
vm_netns() {
	local n
	for n in "$@"; do
		VM_NETNS+=("$n")
		vm_batch "" "netns add $n" || return 1
		vm_batch "$n" "link set lo up" || return 1
	done
}

# vm_netns_pair A B ADDR_A ADDR_B: two namespaces joined by a veth pair
# ($VM_IF in each) with the given addresses (CIDR), up.
vm_netns_pair() {
	local a=$1 b=$2
	VM_NETNS+=("$a" "$b")
	vm_batch "" "netns add $a" "netns add $b" \
		"link add $VM_IF netns $a type veth peer name $VM_IF netns $b" || return 1
	vm_batch "$a" "link set lo up" "addr add $3 dev $VM_IF" "link set $VM_IF up" &&
		vm_batch "$b" "link set lo up" "addr add $4 dev $VM_IF" "link set $VM_IF up"
}

# vm_inner NS ADDR REMOTE_NET GATEWAY: an inner (tunnelled) address on lo
# and the route to the other side's inner network that uses it as source.
vm_inner() {
	vm_batch "$1" "addr add $2/32 dev lo" "route add $3 via $4 src $2"
}

# vm_ping NS SRC DST COUNT: COUNT echo replies from DST; the statistics
# only when some are missing.
vm_ping() {
	local out
	out=$(ip netns exec "$1" ping -q -c "$4" -i 0.2 -W 3 -I "$2" "$3" 2>&1) && return 0
	echo "$out" | tail -n 3 >&2
	return 1
}

# vm_ifstat NS IF COUNTER: e.g. rx_packets of an interface.
vm_ifstat() {
	ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"
}

# vm_ifstat_rose NS IF COUNTER OLD: the counter is above OLD.
vm_ifstat_rose() { vm_gt "$(vm_ifstat "$1" "$2" "$3")" "$4"; }

# vm_udp_listen NS ADDR PORT FILE: a UDP receiver appending what it gets to
# FILE; returns once the socket is bound.
vm_udp_listen() {
	: >"$4"
	vm_spawn "$4.log" ip netns exec "$1" \
		socat -u "UDP-RECV:$3,bind=$2,reuseaddr" "OPEN:$4,creat,append" || return 1
	wait_for 10 vm_udp_bound "$1" "$2" "$3"
}

vm_udp_bound() {
	[ -n "$(ss -N "$1" -Hnlu "src $2:$3" 2>/dev/null)" ]
}

# vm_udp_send NS SRC DST PORT TEXT: one datagram.
vm_udp_send() {
	echo "$5" | ip netns exec "$1" socat -u - "UDP-SENDTO:$3:$4,bind=$2"
}

# --- xfrm -------------------------------------------------------------------

# vm_sa_stats NS [FILTER...]: one line per ESP SA that `ip xfrm state list
# FILTER` shows, sorted: "SRC DST SPI BYTES PACKETS" (the current lifetime
# counters of `ip -s xfrm state`).
vm_sa_stats() {
	local ns=$1
	shift
	ip -n "$ns" -s xfrm state list "$@" | awk '
		/^src / { s = $2; d = $4 }
		/^[ \t]+proto esp spi / { spi = $4; sub(/\(.*/, "", spi) }
		/^[ \t]+lifetime current:/ {
			getline
			gsub(/\((bytes|packets)\),?/, "")
			print s, d, spi, $1, $2
		}' | sort
}

# vm_sa_rose BEFORE AFTER: two vm_sa_stats outputs of the same SAs, and in
# AFTER every SA's bytes and packets are higher.
vm_sa_rose() {
	local -a b a x y
	local i
	mapfile -t b <<<"$1"
	mapfile -t a <<<"$2"
	[ -n "$1" ] && [ ${#a[@]} -eq ${#b[@]} ] || return 1
	for i in "${!b[@]}"; do
		read -r -a x <<<"${b[$i]}"
		read -r -a y <<<"${a[$i]}"
		[ "${x[*]:0:3}" = "${y[*]:0:3}" ] && [ "${y[3]}" -gt "${x[3]}" ] &&
			[ "${y[4]}" -gt "${x[4]}" ] || return 1
	done
}

# vm_xfrm_stat NS NAME: one counter of /proc/net/xfrm_stat (per namespace).
vm_xfrm_stat() {
	ip netns exec "$1" awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' \
		/proc/net/xfrm_stat
}

# vm_gt A B: numeric A > B (for check).
vm_gt() { [ "${1:-0}" -gt "${2:-0}" ]; }

# vm_not CMD...: CMD must fail (for check).
vm_not() { ! "$@"; }

# vm_stat_rose NS NAME OLD: the xfrm_stat counter is above OLD.
vm_stat_rose() { vm_gt "$(vm_xfrm_stat "$1" "$2")" "$3"; }

# vm_got FILE TEXT: a line TEXT arrived in a vm_udp_listen file.
vm_got() { grep -qxF "$2" "$1"; }
