#!/bin/bash
# A fleet on PostgreSQL against one host on SQLite, measured in this run:
# the time from a committed change (mmtrustctl has returned) until every
# kernel holds it, for one partner added (REPEAT times: min, median, max)
# and for an apply of N partners (1,000) to an empty table; the same change on one SQLite
# host as the baseline, and the ratios.  Three mmtrustd h1 h2 h3 in
# network namespaces of their own share a private PostgreSQL cluster
# (tests/lib/pg.sh); the change is made on h1.  Convergence: each
# namespace's SPD policy count (XFRM_MSG_GETSPDINFO, what `ip xfrm policy
# count` asks) read over netlink every POLL_MS (1) ms until every count is
# the expected one -- resolution POLL_MS plus three netlink round trips.
# Runs as root.  bash bench/fleet.sh [BUILD] [N] [REPEAT]
set -u
BUILD=$(realpath "${1:-build}")
N=${2:-1000}
REPEAT=${3:-5}
POLL_MS=${POLL_MS:-1}
. "$(dirname "$0")/../tests/lib/common.sh"
. "$(dirname "$0")/../tests/lib/pg.sh"
mm_setup bench-fleet
NSH=() DPIDS=()
mm_cleanup_hook() {
	local i
	for i in 1 2 3; do
		mm_kill "${DPIDS[$i]:-}"
		ip netns del "${NSH[$i]:-none}" 2>/dev/null
	done
	pg_down
}
CTL="$BUILD/mmtrustctl"
pg_up "$MM_TMP/pg" || { echo "bench fleet: no PostgreSQL cluster" >&2; exit 1; }
make_ca "$MM_TMP" ca
bulk_table "$MM_TMP/bulk.yaml" "$N" ca.pem

conf() { # conf DIR STORE LINES I
	mkdir -p "$1"
	cat >"$1/mmtrustd.conf" <<CONF
[daemon]
store = $2
$3
admin_socket = $1/admin.sock
query_socket = $1/query.sock
[reqid]
min = 2000
max = 19999
[local]
cscf = 10.10.$4.0/24
tunnel = 198.51.100.$4
[ike]
enabled = no
CONF
}
start() { # start DIR NS: the daemon's PID in $STARTED
	ip netns exec "$2" "$BUILD/mmtrustd" --foreground --config "$1/mmtrustd.conf" 2>>"$1/daemon.log" &
	STARTED=$!
	wait_for 10 "$CTL" -s "$1/admin.sock" partner list >/dev/null ||
		{ echo "bench fleet: the daemon in $2 does not answer: $(tail -3 "$1/daemon.log")" >&2; exit 1; }
}
for i in 1 2 3; do
	NSH[$i]=mmtrust-bfleet$i-$$
	ip netns add "${NSH[$i]}"
	conf "$MM_TMP/h$i" "$PG_URI" "store_password_file = $PG_PASSWORD_FILE
host_name = h$i" "$i"
	start "$MM_TMP/h$i" "${NSH[$i]}"
	DPIDS[$i]=$STARTED
done
conf "$MM_TMP/lite" "$MM_TMP/lite/store.db" "" 1
start "$MM_TMP/lite" "$NS"
DPID=$STARTED

# measure.py OUT "NS..." TARGET -- COMMAND...: runs COMMAND, then reads the
# policy counts of every NS until all are TARGET; writes
# {"ret_ms", "conv_ms", "total_ms"} (conv_ms: from COMMAND's return).
cat >"$MM_TMP/measure.py" <<'PY'
import ctypes, json, os, socket, struct, subprocess, sys, time
out, names, target, poll = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), float(sys.argv[4])
cmd = sys.argv[sys.argv.index("--") + 1:]
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, NETLINK_XFRM, GETSPDINFO, NEWSPDINFO, SPD_INFO = 0x40000000, 6, 37, 36, 1

def nl_socket(ns):
    """A NETLINK_XFRM socket in namespace ns (a socket stays in the
    namespace it was made in)."""
    home, fd = os.open("/proc/self/ns/net", os.O_RDONLY), os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
        s.bind((0, 0))
    finally:
        libc.setns(home, CLONE_NEWNET)
        os.close(fd), os.close(home)
    return s

seq = 0
def count(s):
    global seq
    seq += 1
    s.send(struct.pack("=IHHIII", 20, GETSPDINFO, 1, seq, 0, 0xffffffff))
    data = s.recv(65536)
    ln, typ = struct.unpack_from("=IH", data)
    if typ != NEWSPDINFO:
        raise RuntimeError(f"netlink answer type {typ}")
    off = 20
    while off + 4 <= ln:
        alen, atype = struct.unpack_from("=HH", data, off)
        if atype == SPD_INFO:
            return sum(struct.unpack_from("=3I", data, off + 4))   # in, out, fwd
        off += (alen + 3) & ~3
    raise RuntimeError("no XFRMA_SPD_INFO")

socks = [nl_socket(n) for n in names]
t0 = time.monotonic()
r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
t1 = time.monotonic()
if r.returncode:
    sys.exit(f"measure: {' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
while any(count(s) != target for s in socks):
    if time.monotonic() - t1 > 120:
        sys.exit(f"measure: not converged in 120 s: {[count(s) for s in socks]} != {target}")
    time.sleep(poll / 1000)
t2 = time.monotonic()
json.dump({"ret_ms": (t1 - t0) * 1000, "conv_ms": (t2 - t1) * 1000, "total_ms": (t2 - t0) * 1000},
          open(out, "w"))
PY
FLEET="${NSH[*]}"
measure() { # measure OUT "NS..." TARGET COMMAND...
	local out=$1 nss=$2 target=$3
	shift 3
	python3 "$MM_TMP/measure.py" "$MM_TMP/$out.json" "$nss" "$target" "$POLL_MS" -- "$@" || exit 1
}
add_args() { # add_args K: partner add's arguments for partner K
	ADD=(partner add "a$1.bench.example" --kind ims --agreement yes --range "192.0.$1.0/24"
		--gateway 203.0.113.10 --ca "$MM_TMP/ca.pem")
}
for k in $(seq "$REPEAT"); do
	add_args "$k"
	measure "fleet-add$k" "$FLEET" $((2 * k)) "$CTL" -s "$MM_TMP/h1/admin.sock" "${ADD[@]}"
	measure "lite-add$k" "$NS" $((2 * k)) "$CTL" -s "$MM_TMP/lite/admin.sock" "${ADD[@]}"
done
# from an empty table (so that no count passes the target on its way)
echo "partners: []" >"$MM_TMP/empty.yaml"
measure fleet-empty "$FLEET" 0 "$CTL" -s "$MM_TMP/h1/admin.sock" apply --allow-shrink "$MM_TMP/empty.yaml"
measure lite-empty "$NS" 0 "$CTL" -s "$MM_TMP/lite/admin.sock" apply --allow-shrink "$MM_TMP/empty.yaml"
measure fleet-apply "$FLEET" $((2 * N)) "$CTL" -s "$MM_TMP/h1/admin.sock" apply --allow-shrink "$MM_TMP/bulk.yaml"
measure lite-apply "$NS" $((2 * N)) "$CTL" -s "$MM_TMP/lite/admin.sock" apply --allow-shrink "$MM_TMP/bulk.yaml"

python3 - "$MM_TMP" "$N" "$REPEAT" "$POLL_MS" <<'PY'
import json, statistics, sys
d, n, rep, poll = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def load(name): return json.load(open(f"{d}/{name}.json"))
def ratio(a, b): return f"{a / b:.1f}x" if b >= 1 else "n/a (baseline below 1 ms)"
print(f"fleet: 3 hosts on PostgreSQL 15 (private cluster, Unix socket, fsync off) vs 1 host on SQLite;")
print(f"  convergence = every namespace's SPD count as expected, polled every {poll} ms over netlink")
print(f"  {'':40} {'commit (ctl)':>12} {'+ converged':>12} {'total':>10}")
row = lambda what, r, extra="": print(f"  {what:<40} {r['ret_ms']:9.1f} ms {r['conv_ms']:9.1f} ms "
                                      f"{r['total_ms']:7.1f} ms{extra}")
rows = {}
for kind, label in (("fleet", "PostgreSQL, 3 kernels"), ("lite", "SQLite, 1 kernel")):
    adds = [load(f"{kind}-add{k}") for k in range(1, rep + 1)]
    med = {m: statistics.median(a[m] for a in adds) for m in ("ret_ms", "conv_ms", "total_ms")}
    rows[kind, "add"] = med
    row(f"1 partner add, {label}", med, f"  (median of {rep}; total min "
        f"{min(a['total_ms'] for a in adds):.1f}, max {max(a['total_ms'] for a in adds):.1f})")
    rows[kind, "apply"] = load(f"{kind}-apply")
    row(f"{n} partners apply, {label}", rows[kind, "apply"])
for what in ("add", "apply"):
    f, l = rows["fleet", what], rows["lite", what]
    print(f"  ratio fleet/SQLite, {what}: total {ratio(f['total_ms'], l['total_ms'])}, "
          f"commit {ratio(f['ret_ms'], l['ret_ms'])}, after commit {f['conv_ms']:.1f} vs {l['conv_ms']:.1f} ms")
PY
