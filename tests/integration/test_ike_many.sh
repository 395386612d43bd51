#!/bin/bash
# Thousands of tunnel partners: every one gets its connection loaded in
# charon and its tunnel up -- when charon connects, when charon comes back
# after a restart, and when one apply adds thousands at once.  The VICI
# client queues at most VICI_CLIENT_QUEUE_MAX commands (-ENOBUFS past it):
# mmtrustd must pace its load-conns (a window outstanding, the rest pending),
# never drop a partner's load.  fake_charon.py stands in for charon (every
# connection loaded comes up at once); the SPD is off (charon's word alone).
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/fake_charon.sh"

fc_setup ike-many
# More than VICI_CLIENT_QUEUE_MAX (4096) each time.  Under the sanitizers
# (MM_SLOW > 1) every tunnel event costs several times more: 4,200 still
# passes the queue's limit at a third of the work of 5,000.
# M: how many the second apply adds (past the queue too, but under the
# sanitizers only past the load window: 8,400 tunnels there take minutes).
if [ "$MM_SLOW" -gt 1 ]; then N=4200 M=600; else N=5000 M=5000; fi
fc_conf no yes 14999 "10.0.0.0/24"
fc_start

# How many partners have their tunnel up, as the daemon says.
ups() { "$CTL" --json status | jq '[.partners[] | select(.tunnel.state == "up")] | length'; }
all_up() { test "$(ups)" -eq "$1"; }
no_cannot_load() {
	local n
	n=$(grep -c "cannot load" "$MM_TMP/daemon.log")
	check "$1: no \"cannot load\" in the log ($n)" test "$n" -eq 0
}

bulk_table "$MM_TMP/t1.yaml" $N "$MM_TMP/ca-a.pem"
expect_exit 0 "apply $N tunnel partners at once" "$CTL" apply "$MM_TMP/t1.yaml"
check "all $N tunnels up after the apply" wait_for 120 all_up $N
echo "    ($(ups) up)"
no_cannot_load "apply of $N"

# --- charon restarts: everything is loaded again --------------------------------
mm_kill "$CHARON"
CHARON=
rm -f "$MM_TMP/charon.ready"
wait_for 10 all_up 0 || fail "tunnels still up with charon gone ($(ups))"
"$PY" "$FAKE" "$MM_TMP/charon.vici" "$MM_TMP/charon.ready" &
CHARON=$!
wait_for 20 test -e "$MM_TMP/charon.ready" || fail "the fake charon did not restart"
check "all $N tunnels up again after charon's restart" wait_for 120 all_up $N
echo "    ($(ups) up)"
no_cannot_load "charon's restart"

# --- one apply adds M more --------------------------------------------------------
bulk_table "$MM_TMP/t2.yaml" $((N + M)) "$MM_TMP/ca-a.pem"
expect_exit 0 "apply $M more tunnel partners at once" "$CTL" apply "$MM_TMP/t2.yaml"
check "all $((N + M)) tunnels up after the second apply" wait_for 120 all_up $((N + M))
echo "    ($(ups) up)"
no_cannot_load "apply of $M more"

# --- a SIGHUP reload loads the whole table again: still nothing dropped ------------
kill -HUP "$DPID"
wait_for 10 grep -q "reload" "$MM_TMP/daemon.log"
check "all $((N + M)) tunnels up after a reload" wait_for 120 all_up $((N + M))
no_cannot_load "reload"

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "daemon stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
summary "test_ike_many"
