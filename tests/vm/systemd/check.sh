#!/bin/bash
# The checks of the VM tier's systemd boot, run by mmtrust-vmtest.service
# once systemd (PID 1) has started mmtrustd.service or given up on it:
# readiness (Type=notify), the sandbox the unit promises (user mmtrust,
# CAP_NET_ADMIN only), provisioning through the admin socket, kernel
# policies programmed by the unprivileged daemon, reload, the journal's
# fields, a clean stop. Writes the log, a summary line and the exit code
# to the results share (/run/mmvm); the unit powers the VM off afterwards.

# shellcheck disable=SC2317 # functions called through check and wait_for
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/run/mmvm
NAME=systemd_mmtrustd
LOG=$R/logs/$NAME.log
ART=$R/artifacts/$NAME
REPO=${MMTRUST_REPO:?}
CTL=$REPO/build/mmtrustctl
UNIT=mmtrustd.service
DOMAIN=partner.example
RANGE=10.20.0.0/24
GW=198.51.100.10
CONF=/etc/mmtrust/mmtrustd.conf
export MMTRUST_ADMIN_SOCKET=/run/mmtrust/admin.sock

# shellcheck source=../../lib/common.sh
. "$REPO/tests/lib/common.sh"
MM_TMP=$(mktemp -d /tmp/mmvm-systemd.XXXXXX)
chmod 0755 "$MM_TMP"	# the CA certificate is for nobody's mmtrustctl too

ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
T0=$(ms)
step() {
	local up
	read -r up _ </proc/uptime
	echo "-- $* (guest uptime $up s)"
}

# prop NAME: one property of the unit.
prop() { systemctl show -P "$1" "$UNIT"; }

# state: "ActiveState/SubState".
state() { echo "$(prop ActiveState)/$(prop SubState)"; }

# journal ARGS...: the unit's entries (the daemon's own and systemd's
# about it) as JSON lines.
journal() { journalctl --no-pager -o json "$@"; }

# has_field FILE FIELD VALUE: a JSON line with FIELD == VALUE.
has_field() { jq -e --arg f "$2" --arg v "$3" 'select(.[$f] == $v)' "$1" >/dev/null; }

# daemon_said TEXT: the daemon logged a MESSAGE containing TEXT.
daemon_said() {
	journal SYSLOG_IDENTIFIER=mmtrustd >"$MM_TMP/j.json" &&
		jq -e --arg t "$1" 'select((.MESSAGE | type) == "string" and (.MESSAGE | contains($t)))' \
			"$MM_TMP/j.json" >/dev/null
}

# mount_opt PID PATH ro|rw: the topmost mount on PATH in PID's namespace
# is read-only or writable.
mount_opt() {
	awk -v p="$2" '$5 == p { split($6, o, ","); m = o[1] } END { exit m != "'"$3"'" }' "/proc/$1/mountinfo"
}

# policies: the kernel's XFRM policies for the partner's range.
policies() { ip xfrm policy list | grep -c "$RANGE" || true; }

main() {
	local pid st

	step "systemd started $UNIT"
	boot_times
	systemctl cat "$UNIT" >"$ART/unit.txt" 2>&1
	systemctl show "$UNIT" >"$ART/show-started.txt" 2>&1
	st=$(state)
	# Type=notify: active/running only after READY=1; a daemon that never
	# says it is ready times out as failed.
	check "$UNIT is active/running after start (is $st)" test "$st" = active/running
	check "$UNIT is Type=notify" test "$(prop Type)" = notify
	check "$UNIT NotifyAccess=main" test "$(prop NotifyAccess)" = main
	check "$UNIT started on the first attempt (NRestarts=$(prop NRestarts))" test "$(prop NRestarts)" = 0
	echo "StatusText='$(prop StatusText)'"
	pid=$(prop MainPID)
	require_pid "$pid" || return 0

	step "readiness came from the daemon"
	# systemd's "Started" (job done) comes after the daemon's "ready" line:
	# the unit waited for READY=1, not for the process to exist.
	local ready started
	wait_for 10 daemon_said " ready: " || fail "the journal has no 'ready' line of mmtrustd"
	ready=$(jq -r 'select((.MESSAGE | type) == "string" and (.MESSAGE | contains(" ready: "))) | .__MONOTONIC_TIMESTAMP' "$MM_TMP/j.json" | head -n1)
	journal _PID=1 UNIT="$UNIT" JOB_TYPE=start JOB_RESULT=done >"$MM_TMP/started.json"
	started=$(jq -r '.__MONOTONIC_TIMESTAMP' "$MM_TMP/started.json" | head -n1)
	echo "daemon ready at ${ready:-?} us, systemd's job done at ${started:-?} us (monotonic)"
	check "systemd's start job ended after the daemon's ready line" \
		test -n "$ready" -a -n "$started" -a "${started:-0}" -gt "${ready:-0}"

	step "the main process: user, capabilities, sandbox"
	cp "/proc/$pid/status" "$ART/status.txt"
	local uid gid
	uid=$(id -u mmtrust) gid=$(id -g mmtrust)
	check "user mmtrust exists (uid $uid) and is not root" test -n "$uid" -a "$uid" != 0
	check "runs as mmtrust: real, effective, saved, fs uid $uid" \
		grep -qx "Uid:	$uid	$uid	$uid	$uid" "/proc/$pid/status"
	check "runs as group mmtrust: gid $gid" \
		grep -qx "Gid:	$gid	$gid	$gid	$gid" "/proc/$pid/status"
	# CAP_NET_ADMIN is bit 12: 0x1000, and nothing else.
	local c
	for c in CapEff CapPrm CapBnd CapAmb; do
		check "$c is CAP_NET_ADMIN only ($(sed -n "s/^$c:\t//p" "/proc/$pid/status"))" \
			grep -qx "$c:	0000000000001000" "/proc/$pid/status"
	done
	check "NoNewPrivs set" grep -qx "NoNewPrivs:	1" "/proc/$pid/status"
	check "a seccomp filter is on (SystemCallFilter)" grep -qx "Seccomp:	2" "/proc/$pid/status"
	check "a mount namespace of its own" \
		test "$(readlink "/proc/$pid/ns/mnt")" != "$(readlink /proc/1/ns/mnt)"
	# ProtectSystem=strict: / read-only in the daemon's namespace; its state
	# and runtime directories writable.
	check "/ is read-only for the daemon (ProtectSystem=strict)" \
		mount_opt "$pid" / ro
	check "/var/lib/mmtrust is writable for the daemon" \
		mount_opt "$pid" /var/lib/mmtrust rw
	check "/var/lib/mmtrust belongs to mmtrust (StateDirectory)" \
		test "$(stat -c %U /var/lib/mmtrust)" = mmtrust
	check "/run/mmtrust belongs to mmtrust (RuntimeDirectory)" \
		test "$(stat -c %U /run/mmtrust)" = mmtrust
	check "the store is in /var/lib/mmtrust" test -f /var/lib/mmtrust/mmtrust.db
	check "the admin socket exists" test -S /run/mmtrust/admin.sock

	step "provisioning through the admin socket"
	ip addr add 198.51.100.1/32 dev lo
	make_ca "$MM_TMP" partner-ca || fail "openssl made no CA"
	expect_exit 0 "root's mmtrustctl: partner add $DOMAIN" "$CTL" partner add "$DOMAIN" \
		--kind ims --agreement yes --range "$RANGE" --gateway "$GW" --ca "$MM_TMP/partner-ca.pem"
	expect_exit 0 "partner show $DOMAIN" "$CTL" partner show "$DOMAIN"
	local reqid
	reqid=$(sed -n 's/^reqid: *//p' <<<"$OUT")
	echo "reqid $reqid"
	check "the daemon (uid mmtrust, CAP_NET_ADMIN) programmed the partner's policies" \
		wait_for 10 test "$(policies)" -ge 2
	ip xfrm policy list >"$ART/xfrm-policy.txt"
	check "its policies carry the partner's reqid $reqid" grep -q "reqid $reqid " "$ART/xfrm-policy.txt"
	local before
	before=$(policies)
	# Refused: a user other than root and mmtrust may not provision.
	expect_exit 3 "nobody cannot reach the admin socket" setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$CTL" partner add other.example --kind ims --agreement yes --range 10.30.0.0/24 \
		--gateway 198.51.100.20 --ca "$MM_TMP/partner-ca.pem"
	contains "$ERR" "Permission denied" "nobody: permission denied"
	[ "$(policies)" = "$before" ] || fail "a refused add changed the policies"
	# Refused: a bad range names its field; nothing changes.
	expect_exit 1 "a bad range is refused" "$CTL" partner add bad.example --kind ims \
		--agreement yes --range 10.40.0.0/33 --gateway 198.51.100.30 --ca "$MM_TMP/partner-ca.pem"
	contains "$ERR" "range" "the refusal names the range"
	check "nothing changed: $before policies" test "$(policies)" = "$before"
	expect_exit 1 "bad.example was not added" "$CTL" partner show bad.example

	step "systemctl reload"
	local n_ok
	expect_exit 0 "systemctl reload $UNIT" systemctl reload "$UNIT"
	check "reloaded: the daemon said so" wait_for 10 daemon_said "reloaded: 1 partners"
	check "after reload active/running" test "$(state)" = active/running
	check "after reload the same main PID" test "$(prop MainPID)" = "$pid"
	check "after reload the policies are there" test "$(policies)" = "$before"
	# A configuration the daemon refuses: reload keeps the old one running.
	cp "$CONF" "$MM_TMP/conf.good"
	printf '[daemon]\nno_such_key = 1\n' >>"$CONF"
	expect_exit 0 "systemctl reload with a bad configuration (the signal is sent)" \
		systemctl reload "$UNIT"
	check "the daemon refused the bad configuration" wait_for 10 daemon_said "reload refused"
	check "after the refused reload still active/running" test "$(state)" = active/running
	check "after the refused reload the same main PID" test "$(prop MainPID)" = "$pid"
	check "after the refused reload the policies are there" test "$(policies)" = "$before"
	cp "$MM_TMP/conf.good" "$CONF"
	n_ok=$(journal SYSLOG_IDENTIFIER=mmtrustd | jq -r '.MESSAGE | strings' | grep -c "reloaded: " || true)
	echo "reloads that worked: $n_ok"

	step "the journal"
	journal _SYSTEMD_UNIT="$UNIT" >"$ART/journal-unit.json"
	journal SYSLOG_IDENTIFIER=mmtrustd >"$MM_TMP/j.json"
	check "the journal has entries of mmtrustd with SYSLOG_IDENTIFIER=mmtrustd" \
		test "$(jq -s 'length' "$MM_TMP/j.json")" -gt 0
	check "the daemon's entries come from the unit (_SYSTEMD_UNIT=$UNIT)" \
		has_field "$MM_TMP/j.json" _SYSTEMD_UNIT "$UNIT"
	check "the daemon's entries have a PRIORITY" \
		jq -e 'select(.PRIORITY != null)' "$MM_TMP/j.json" >/dev/null
	echo "journal: fields of mmtrustd's entries:" \
		"$(jq -r 'keys[] | select(startswith("_") | not)' "$MM_TMP/j.json" | sort -u | tr '\n' ' ')"
	local np
	journal PARTNER="$DOMAIN" >"$MM_TMP/p.json"
	np=$(jq -s 'length' "$MM_TMP/p.json")
	if [ "$np" -gt 0 ]; then
		echo "journal: PARTNER=$DOMAIN on $np entries:"
		jq -r '"  \(.MESSAGE_ID // "-") REQID=\(.REQID // "-") \(.MESSAGE)"' "$MM_TMP/p.json"
		check "PARTNER= entries are the daemon's" has_field "$MM_TMP/p.json" SYSLOG_IDENTIFIER mmtrustd
		if [ -n "$reqid" ] && jq -e 'select(.REQID != null)' "$MM_TMP/p.json" >/dev/null; then
			check "REQID= is the partner's reqid $reqid" has_field "$MM_TMP/p.json" REQID "$reqid"
		else
			echo "journal: REQID field absent"
		fi
	else
		echo "journal: PARTNER field absent"
	fi
	if jq -e 'select(.MESSAGE_ID != null)' "$MM_TMP/j.json" >/dev/null; then
		echo "journal: MESSAGE_IDs of mmtrustd: $(jq -r '.MESSAGE_ID // empty' "$MM_TMP/j.json" | sort | uniq -c | tr -s ' \n' '  ')"
	else
		echo "journal: MESSAGE_ID field absent"
	fi
	# Never key material: no private key or CA body in the journal.
	check "no PEM block in the journal" \
		sh -c '! journalctl --no-pager -o cat | grep -q -- "-----BEGIN"'

	step "systemctl stop"
	expect_exit 0 "systemctl stop $UNIT" systemctl stop "$UNIT"
	check "stopped: inactive/dead (is $(state))" test "$(state)" = inactive/dead
	check "Result=success (is $(prop Result))" test "$(prop Result)" = success
	check "the main process exited with 0 (ExecMainStatus=$(prop ExecMainStatus))" \
		test "$(prop ExecMainStatus)" = 0 -a "$(prop ExecMainCode)" = 1
	check "the daemon logged its clean stop" wait_for 10 daemon_said "stopped"
	check "the main process is gone" test ! -e "/proc/$pid"
	check "the runtime directory went with the unit" test ! -e /run/mmtrust
	echo "policies for $RANGE after the stop: $(policies)"
	journal UNIT="$UNIT" _PID=1 >"$ART/journal-systemd.json"
	journal _SYSTEMD_UNIT="$UNIT" >"$ART/journal-unit.json"
}

# boot_times: how long each part of the boot took (guest uptime, s).
boot_times() {
	local t k
	t="stage 2 $(cat "$R/boot-uptime"), exec systemd $(cat "$R/systemd-exec-uptime")"
	for k in GeneratorsStart GeneratorsFinish UnitsLoadStart UnitsLoadFinish; do
		t+=", $k $(systemctl show -P "${k}TimestampMonotonic" | awk '{ printf "%.2f", $1 / 1e6 }')"
	done
	t+=", $UNIT active $(prop ActiveEnterTimestampMonotonic | awk '{ printf "%.2f", $1 / 1e6 }')"
	echo "boot: $t"
}

# require_pid PID: the checks on the process make no sense without one.
require_pid() {
	if [ -n "$1" ] && [ "$1" != 0 ] && [ -d "/proc/$1" ]; then return 0; fi
	fail "$UNIT has no main process"
	systemctl status --no-pager "$UNIT" 2>&1 | tail -n 20
	journalctl --no-pager -b -o short-monotonic | tail -n 40
	return 1
}

{
	main
	step "done"
	summary "$NAME"
} >"$LOG" 2>&1
rc=$?
cat "$LOG" >/dev/console
journalctl --no-pager -b -o short-monotonic >"$ART/journal.txt" 2>&1
dt=$(($(ms) - T0))
if [ "$rc" -eq 0 ]; then res=PASS; else res=FAIL; fi
printf '%s  %-28s %3d.%01d s\n' "$res" "$NAME" $((dt / 1000)) $((dt % 1000 / 100)) >>"$R/summary"
echo "$rc" >"$R/rc.tmp" && mv "$R/rc.tmp" "$R/rc"
rm -rf "$MM_TMP"
sync
exit "$rc"
