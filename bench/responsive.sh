#!/bin/bash
# The admin socket during a long apply (issue 9): ping latency idle and
# during the kernel step of an apply that deletes N partners (12 policies
# each), and the apply's wall time, all measured in this run; ratios
# against the idle baseline.  Runs mmtrustd in a network namespace of its
# own (root).  bash bench/responsive.sh [BUILD] [N]
set -u
BUILD=$(realpath "${1:-build}")
N=${2:-5000}
. "$(dirname "$0")/../tests/lib/common.sh"
DRV=$(realpath "$(dirname "$0")/../tests/integration/responsive.py")
mm_setup bench-responsive
export MMTRUST_ADMIN_SOCKET=$MM_TMP/admin.sock
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $MM_TMP/admin.sock
query_socket = $MM_TMP/query.sock
[reqid]
min = 2000
max = 19999
[local]
cscf = 10.10.0.0/24, 10.20.0.0/24
forward = yes
tunnel = 198.51.100.1
CONF
make_ca "$MM_TMP" ca
CTL="$BUILD/mmtrustctl"
mm_start_daemon 10 "$MM_TMP/admin.sock" answer
python3 "$DRV" table x "$N" "$MM_TMP/ca.pem" "$MM_TMP/add.json"
echo '{"op":"apply","partners":[],"allow_shrink":true}' >"$MM_TMP/del.json"
xp() { ip netns exec "$NS" "$@"; }
# One pinger (fresh connection per ping, as mmtrustctl) and a sampler of
# the kernel's own policy count (every 20 ms): the kernel step is the time
# from the count's first move to its final value; "during" counts pings
# asked and answered inside it.
cat >"$MM_TMP/measure.py" <<'PY'
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
from responsive import Conn, kernel_count
sock, req, out = sys.argv[2], sys.argv[3], sys.argv[4]
samples, stop = [], threading.Event()
def sampler():
    while not stop.is_set():
        samples.append((time.monotonic(), kernel_count()))
        time.sleep(0.02)
before = kernel_count()
th = threading.Thread(target=sampler); th.start()
t0 = time.monotonic()
a = Conn(sock); a.send(open(req).read())
pings, done = [], None
while done is None:
    s0 = time.monotonic()
    b = Conn(sock); b.send({"op": "ping"})
    while True:
        ans = b.answer(0.002)
        if done is None and a.answer(0) is not None:
            done = time.monotonic()
        if ans is not None:
            break
    b.close()
    pings.append((s0, time.monotonic()))
stop.set(); th.join()
after = kernel_count()
moved = [t for t, c in samples if c != before]
final = [t for t, c in samples if c == after and (not moved or t >= moved[0])]
w0, w1 = (moved[0] if moved else done), (final[0] if final else done)
json.dump({"wall": done - t0, "step": w1 - w0, "policies": abs(after - before),
           "during": [(e - s) * 1000 for s, e in pings if w0 <= s and e <= w1]}, open(out, "w"))
PY
xp python3 "$MM_TMP/measure.py" "$(dirname "$DRV")" "$MM_TMP/admin.sock" "$MM_TMP/add.json" "$MM_TMP/r-add.json"
python3 "$DRV" pings "$MM_TMP/admin.sock" 300 "$MM_TMP/idle.json"
xp python3 "$MM_TMP/measure.py" "$(dirname "$DRV")" "$MM_TMP/admin.sock" "$MM_TMP/del.json" "$MM_TMP/r-del.json"
python3 - "$MM_TMP" "$N" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float("nan")
idle = json.load(open(d + "/idle.json"))
print("ping latency idle: p50 %.2f ms, p99 %.2f ms (%d pings)" % (pct(idle, 50), pct(idle, 99), len(idle)))
for name in ("add", "del"):
    r = json.load(open(d + "/r-%s.json" % name))
    dur = r["during"]
    print("apply that %s %d partners (%d policies): wall %.2f s, kernel step %.2f s, %d pings in it"
          % ("adds" if name == "add" else "deletes", n, r["policies"], r["wall"], r["step"], len(dur)))
    print("  during the kernel step: p50 %.2f ms (%.1fx idle), p99 %.2f ms (%.1fx idle), max %.2f ms"
          % (pct(dur, 50), pct(dur, 50) / pct(idle, 50), pct(dur, 99), pct(dur, 99) / pct(idle, 99),
             max(dur or [float("nan")])))
PY
grep -o 'spd change of.*' "$MM_TMP/daemon.log"
