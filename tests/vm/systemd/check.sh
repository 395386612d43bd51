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

MM_VERBOSE=1	# the log lists every check that passed too
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

# Under TCG each program start costs 0.1-0.5 s (systemctl, journalctl and
# jq more): one `systemctl show` reads every property, one journalctl and
# one jq answer each question.

# props WHEN: the unit's properties into P[NAME] (and $ART/show-WHEN.txt).
declare -A P
props() {
	local k v
	P=()
	systemctl show "$UNIT" >"$MM_TMP/show.txt" || return 1
	while IFS='=' read -r k v; do P[$k]=$v; done <"$MM_TMP/show.txt"
	cp "$MM_TMP/show.txt" "$ART/show-$1.txt"
}

# is PROPERTY VALUE: the last props read PROPERTY as VALUE.
is() { [ "${P[$1]}" = "$2" ]; }

# state: "ActiveState/SubState" of the last props.
state() { echo "${P[ActiveState]}/${P[SubState]}"; }

# said REGEX: the daemon logged a line that matches (grep -E; a plain line
# has a time and level before the message, a structured entry has not).
said() { journalctl --no-pager -q -o cat SYSLOG_IDENTIFIER=mmtrustd | grep -qE -- "$1"; }

# mount_opt PID PATH ro|rw: the topmost mount on PATH in PID's namespace
# is read-only or writable.
mount_opt() {
	awk -v p="$2" '$5 == p { split($6, o, ","); m = o[1] } END { exit m != "'"$3"'" }' "/proc/$1/mountinfo"
}

# policies: the kernel's XFRM policies for the partner's range.
policies() { ip xfrm policy list | grep -c "$RANGE" || true; }

# policies_at_least N: for wait_for (counts anew each time).
policies_at_least() { [ "$(policies)" -ge "$1" ]; }

# boot_times: when each part of the boot ended (guest uptime, s; after
# props).
boot_times() {
	local t k v
	t="stage 2 $(<"$R/boot-uptime"), exec systemd $(<"$R/systemd-exec-uptime")"
	while IFS='=' read -r k v; do
		t+=$(printf ', %s %d.%02d' "${k%TimestampMonotonic}" $((v / 1000000)) $((v / 10000 % 100)))
	done < <(systemctl show -p GeneratorsStartTimestampMonotonic,GeneratorsFinishTimestampMonotonic \
		-p UnitsLoadStartTimestampMonotonic,UnitsLoadFinishTimestampMonotonic)
	v=${P[ActiveEnterTimestampMonotonic]:-0}
	printf 'boot: %s, %s active %d.%02d\n' "$t" "$UNIT" $((v / 1000000)) $((v / 10000 % 100))
}

# require_pid PID: the checks on the process make no sense without one.
require_pid() {
	if [ -n "$1" ] && [ "$1" != 0 ] && [ -d "/proc/$1" ]; then return 0; fi
	fail "$UNIT has no main process"
	systemctl status --no-pager "$UNIT" 2>&1 | tail -n 20
	journalctl --no-pager -b -o short-monotonic | tail -n 40
	return 1
}

main() {
	local pid c st

	step "systemd started $UNIT"
	sed 's/^/files under test: /' "$ART/sources"
	props started
	boot_times
	# shellcheck disable=SC2086 # DropInPaths is a list
	cat "${P[FragmentPath]}" ${P[DropInPaths]} >"$ART/unit.txt" 2>&1
	st=$(state)
	# Type=notify: active/running only after READY=1; a daemon that never
	# says it is ready times out as failed.
	check "$UNIT is active/running after start (is $st)" test "$st" = active/running
	check "$UNIT is Type=notify (is ${P[Type]})" is Type notify
	check "$UNIT NotifyAccess=main (is ${P[NotifyAccess]})" is NotifyAccess main
	check "$UNIT started on the first attempt (NRestarts=${P[NRestarts]})" is NRestarts 0
	echo "StatusText='${P[StatusText]}'"
	pid=${P[MainPID]}
	require_pid "$pid" || return 0

	step "readiness came from the daemon"
	# systemd's start job ends (JOB_RESULT=done) after the daemon's "ready"
	# line: the unit waited for READY=1, not only for the process.
	local ready='' started=''
	wait_for 10 said " ready: " || fail "the journal has no 'ready' line of mmtrustd"
	journalctl --no-pager -q -o json SYSLOG_IDENTIFIER=mmtrustd + \
		_PID=1 UNIT="$UNIT" JOB_TYPE=start JOB_RESULT=done >"$MM_TMP/ready.json"
	read -r ready started < <(jq -rs '[(.[] | select(.SYSLOG_IDENTIFIER == "mmtrustd" and
		((.MESSAGE | strings) | contains(" ready: "))) | .__MONOTONIC_TIMESTAMP | tonumber),
		(.[] | select(.JOB_RESULT == "done") | .__MONOTONIC_TIMESTAMP | tonumber)] |
		"\(.[0] // 0) \(.[-1] // 0)"' "$MM_TMP/ready.json")
	echo "daemon ready at ${ready:-?} us, systemd's start job done at ${started:-?} us (monotonic)"
	check "systemd's start job ended after the daemon's ready line" \
		test "${ready:-0}" -gt 0 -a "${started:-0}" -gt "${ready:-0}"

	step "the main process: user, capabilities, sandbox"
	cp "/proc/$pid/status" "$ART/status.txt"
	local uid gid
	uid=$(id -u mmtrust) gid=$(id -g mmtrust)
	check "user mmtrust exists (uid $uid) and is not root" test -n "$uid" -a "$uid" != 0
	check "runs as mmtrust: real, effective, saved, fs uid $uid" \
		grep -qx "Uid:	$uid	$uid	$uid	$uid" "$ART/status.txt"
	check "runs as group mmtrust: gid $gid" \
		grep -qx "Gid:	$gid	$gid	$gid	$gid" "$ART/status.txt"
	# CAP_NET_ADMIN is bit 12: 0x1000, and nothing else.
	for c in CapEff CapPrm CapBnd CapAmb; do
		check "$c is CAP_NET_ADMIN only ($(sed -n "s/^$c:\t//p" "$ART/status.txt"))" \
			grep -qx "$c:	0000000000001000" "$ART/status.txt"
	done
	check "NoNewPrivs set" grep -qx "NoNewPrivs:	1" "$ART/status.txt"
	check "a seccomp filter is on (SystemCallFilter)" grep -qx "Seccomp:	2" "$ART/status.txt"
	check "a mount namespace of its own" \
		test "$(readlink "/proc/$pid/ns/mnt")" != "$(readlink /proc/1/ns/mnt)"
	# ProtectSystem=strict: / read-only in the daemon's namespace; its state
	# directory writable.
	check "/ is read-only for the daemon (ProtectSystem=strict)" mount_opt "$pid" / ro
	check "/var/lib/mmtrust is writable for the daemon" mount_opt "$pid" /var/lib/mmtrust rw
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
	local reqid before
	reqid=$(sed -n 's/^reqid: *//p' <<<"$OUT")
	echo "reqid $reqid"
	check "the daemon (uid mmtrust, CAP_NET_ADMIN) programmed the partner's policies" \
		wait_for 10 policies_at_least 2
	ip xfrm policy list >"$ART/xfrm-policy.txt"
	check "its policies carry the partner's reqid $reqid" grep -q "reqid $reqid " "$ART/xfrm-policy.txt"
	before=$(policies)
	# Refused: a user other than root and mmtrust may not provision.
	expect_exit 3 "nobody cannot reach the admin socket" setpriv --reuid=nobody --regid=nogroup \
		--clear-groups "$CTL" partner add other.example --kind ims --agreement yes \
		--range 10.30.0.0/24 --gateway 198.51.100.20 --ca "$MM_TMP/partner-ca.pem"
	contains "$ERR" "Permission denied" "nobody: permission denied"
	# Refused: a bad range names its field; nothing changes.
	expect_exit 1 "a bad range is refused" "$CTL" partner add bad.example --kind ims \
		--agreement yes --range 10.40.0.0/33 --gateway 198.51.100.30 --ca "$MM_TMP/partner-ca.pem"
	contains "$ERR" "range" "the refusal names the range"
	expect_exit 1 "bad.example was not added" "$CTL" partner show bad.example
	check "nothing changed: $before policies" test "$(policies)" = "$before"

	step "systemctl reload"
	expect_exit 0 "systemctl reload $UNIT" systemctl reload "$UNIT"
	check "reloaded: the daemon said so" wait_for 10 said "(^|: )reloaded: 1 partners"
	props reloaded
	check "after reload active/running (is $(state))" test "$(state)" = active/running
	check "after reload the same main PID" is MainPID "$pid"
	check "after reload the policies are there" test "$(policies)" = "$before"
	# A configuration the daemon refuses: the reload keeps the old one.
	cp "$CONF" "$MM_TMP/conf.good"
	printf '[daemon]\nno_such_key = 1\n' >>"$CONF"
	expect_exit 0 "systemctl reload with a bad configuration (the signal is sent)" \
		systemctl reload "$UNIT"
	check "the daemon refused the bad configuration" wait_for 10 said "(^|: )reload refused"
	props refused
	check "after the refused reload still active/running (is $(state))" test "$(state)" = active/running
	check "after the refused reload the same main PID" is MainPID "$pid"
	check "after the refused reload the policies are there" test "$(policies)" = "$before"
	cp "$MM_TMP/conf.good" "$CONF"

	step "the journal"
	local n k v
	local -A J=()
	journalctl --no-pager -q -o json SYSLOG_IDENTIFIER=mmtrustd >"$ART/journal-mmtrustd.json"
	jq -rs --arg u "$UNIT" '
		"n \(length)",
		"unit \(map(select(._SYSTEMD_UNIT == $u)) | length)",
		"prio \(map(select(.PRIORITY != null)) | length)",
		"prios \([.[].PRIORITY] | unique | join(","))",
		"fields \([.[] | keys[] | select(startswith("_") | not)] | unique | join(" "))",
		"ids \([.[] | select(.MESSAGE_ID) | "\(.MMTRUST_EVENT // "")=\(.MESSAGE_ID)"] | unique | join(" "))"' \
		"$ART/journal-mmtrustd.json" >"$MM_TMP/jsum"
	while read -r k v; do J[$k]=$v; done <"$MM_TMP/jsum"
	check "the journal has entries of mmtrustd with SYSLOG_IDENTIFIER=mmtrustd (${J[n]})" \
		test "${J[n]:-0}" -gt 0
	check "all come from the unit (_SYSTEMD_UNIT=$UNIT: ${J[unit]})" test "${J[unit]}" = "${J[n]}"
	check "all have a PRIORITY (${J[prios]})" test "${J[prio]}" = "${J[n]}"
	echo "journal: fields of mmtrustd's entries: ${J[fields]}"
	check "the events carry a MESSAGE_ID (${J[ids]:-none})" test -n "${J[ids]}"
	check "start has its fixed MESSAGE_ID" \
		sh -c "echo '${J[ids]}' | grep -qw start=75718863e7b84a858a0f50a85d472105"
	journalctl --no-pager -q -o json PARTNER="$DOMAIN" >"$ART/journal-partner.json"
	n=$(wc -l <"$ART/journal-partner.json")
	check "journalctl PARTNER=$DOMAIN finds its entries ($n)" test "$n" -gt 0
	jq -r '"  \(.SYSLOG_IDENTIFIER) \(.MESSAGE_ID // "-") REQID=\(.REQID // "-") \(.MESSAGE)"' \
		"$ART/journal-partner.json"
	check "PARTNER= entries are mmtrustd's" \
		test "$(grep -c '"SYSLOG_IDENTIFIER":"mmtrustd"' "$ART/journal-partner.json")" = "$n"
	check "REQID= of PARTNER=$DOMAIN is its reqid $reqid" \
		grep -q "\"REQID\":\"$reqid\"" "$ART/journal-partner.json"
	# Never key material: no private key or certificate body.
	check "no PEM block in the journal" \
		sh -c '! journalctl --no-pager -q -o cat | grep -q -- "-----BEGIN"'

	step "systemctl stop"
	expect_exit 0 "systemctl stop $UNIT" systemctl stop "$UNIT"
	props stopped
	check "stopped: inactive/dead (is $(state))" test "$(state)" = inactive/dead
	check "Result=success (is ${P[Result]})" is Result success
	check "the main process exited with 0 (code ${P[ExecMainCode]}, status ${P[ExecMainStatus]})" \
		test "${P[ExecMainCode]}/${P[ExecMainStatus]}" = 1/0
	check "the daemon logged its clean stop (after STOPPING=1)" wait_for 10 said "(^|: )stopped$"
	check "the main process is gone" test ! -e "/proc/$pid"
	check "the runtime directory went with the unit" test ! -e /run/mmtrust
	echo "policies for $RANGE after the stop: $(policies)"
}

# The log, and on the console as it goes.
{
	main
	step "done"
	summary "$NAME"
} 2>&1 | tee "$LOG" >/dev/console
rc=${PIPESTATUS[0]}
journalctl --no-pager -b -o short-monotonic >"$ART/journal.txt" 2>&1
dt=$(($(ms) - T0))
if [ "$rc" -eq 0 ]; then res=PASS; else res=FAIL; fi
printf '%s  %-28s %3d.%01d s\n' "$res" "$NAME" $((dt / 1000)) $((dt % 1000 / 100)) >>"$R/summary"
echo "$rc" >"$R/rc.tmp" && mv "$R/rc.tmp" "$R/rc"
rm -rf "$MM_TMP"
sync
exit "$rc"
