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
echo '{"op":"apply","partners":[]}' >"$MM_TMP/del.json"
xp() { ip netns exec "$NS" "$@"; }
xp python3 "$DRV" run "$MM_TMP/admin.sock" "$MM_TMP/add.json" "$MM_TMP/r-add.json"
python3 "$DRV" pings "$MM_TMP/admin.sock" 300 "$MM_TMP/idle.json"
xp python3 "$DRV" run "$MM_TMP/admin.sock" "$MM_TMP/del.json" "$MM_TMP/r-del.json"
python3 - "$MM_TMP" "$N" <<'PY'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float("nan")
idle = json.load(open(d + "/idle.json"))
for name in ("add", "del"):
    r = json.load(open(d + "/r-%s.json" % name))
    lo, hi = sorted((r["count_before"], r["count_after"]))
    during = [a["latency_ms"] for a in r["answers"]
              if not a["long_done"] and lo < a["kernel_count"] < hi]
    what = "adds" if name == "add" else "deletes"
    print("apply that %s %d partners (%d policies): wall time %.2f s; %d pings answered "
          "during its kernel step" % (what, n, hi - lo, r["long_answer_at"], len(during)))
    print("  ping latency idle p50 %.2f ms p99 %.2f ms; during p50 %.2f ms p99 %.2f ms max %.2f ms"
          % (pct(idle, 50), pct(idle, 99), pct(during, 50), pct(during, 99),
             max(during or [float("nan")])))
    print("  ratio during/idle: p50 %.1fx, p99 %.1fx" % (pct(during, 50) / pct(idle, 50),
                                                       pct(during, 99) / pct(idle, 99)))
PY
grep -o 'spd change of.*' "$MM_TMP/daemon.log"
