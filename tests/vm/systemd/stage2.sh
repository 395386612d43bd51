#!/bin/bash
# Stage 2 of the VM tier's systemd boot (tests/vm/run.sh --systemd): PID 1
# after init.sh's switch_root, on the guest's overlay of the host's root.
# Installs what a package would (mmtrustd in /usr/sbin, the unit, the
# sysusers.d user, a configuration), a target that starts only the journal
# and the checks (check.sh, which pulls in mmtrustd.service), then becomes
# systemd: exec keeps PID 1. The host sees none of these writes.
# When something here fails the guest writes the result and powers off.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/run/mmvm
HERE=$(cd "$(dirname "$0")" && pwd)
NAME=systemd_mmtrustd
LOG=$R/logs/$NAME.log

fatal() {
	echo "mmvm-systemd: $*" | tee -a "$LOG" >&2
	printf 'FAIL  %-28s  stage 2: %s\n' "$NAME" "$*" >>"$R/summary"
	echo 1 >"$R/rc"
	sync
	busybox poweroff -f
	sleep 5
	exit 1
}

read -r up _ </proc/uptime
echo "$up" >"$R/boot-uptime"
mkdir -p "$R/logs" "$R/artifacts/$NAME"
: >"$R/summary"
# shellcheck disable=SC1091 # written by run.sh
. "$R/job" || fatal "cannot read the job file"
B=$MMVM_REPO/build
for f in mmtrustd mmtrustctl; do
	[ -x "$B/$f" ] || fatal "$B/$f is missing (make on the host)"
done
[ -x /lib/systemd/systemd ] || fatal "/lib/systemd/systemd is missing (Debian package systemd)"

# The packaged files when the tree has them, else this folder's copies.
pick() { if [ -f "$MMVM_REPO/$1" ]; then echo "$MMVM_REPO/$1"; else echo "$HERE/$2"; fi; }
unit=$(pick dist/systemd/mmtrustd.service mmtrustd.service)
users=$(pick dist/sysusers.d/mmtrust.conf sysusers.conf)
tmpfiles=$MMVM_REPO/dist/tmpfiles.d/mmtrust.conf
printf 'unit=%s\nsysusers=%s\n' "$unit" "$users" >"$R/artifacts/$NAME/sources"

# Each program start costs 0.1-0.3 s under TCG: text files are copied
# with bash, the links made by one perl.
put() { printf '%s\n' "$2" >"$1" || fatal "cannot write $1"; }
E=/etc/systemd/system
mkdir -p /etc/mmtrust "$E/mmtrustd.service.d" /etc/systemd/system-generators \
	/etc/systemd/system-environment-generators || fatal "cannot make the directories"
# The daemon where the unit expects it (whatever path ExecStart names, it
# is this build's binary).
cp "$B/mmtrustd" /usr/sbin/mmtrustd || fatal "cannot install mmtrustd"
text=$(<"$unit") out='' found=0
while IFS= read -r line; do
	if [[ $line =~ ^(ExecStart=[-@:+!]*)[^\ ]*/mmtrustd(\ .*)?$ ]]; then
		line=${BASH_REMATCH[1]}/usr/sbin/mmtrustd${BASH_REMATCH[2]}
		found=1
	fi
	out+=$line$'\n'
done <<<"$text"
[ "$found" = 1 ] || fatal "no ExecStart=.../mmtrustd in $unit"
put /lib/systemd/system/mmtrustd.service "${out%$'\n'}"
put /usr/lib/sysusers.d/mmtrust.conf "$(<"$users")"
systemd-sysusers /usr/lib/sysusers.d/mmtrust.conf >>"$LOG" 2>&1 ||
	fatal "systemd-sysusers $users failed"
if [ -f "$tmpfiles" ]; then
	echo "tmpfiles=$tmpfiles" >>"$R/artifacts/$NAME/sources"
	put /usr/lib/tmpfiles.d/mmtrust.conf "$(<"$tmpfiles")"
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/mmtrust.conf >>"$LOG" 2>&1 ||
		fatal "systemd-tmpfiles --create $tmpfiles failed"
fi
install -m 0640 -o root -g mmtrust "$HERE/mmtrustd.conf" /etc/mmtrust/mmtrustd.conf ||
	fatal "cannot install the configuration"
put "$E/mmtrustd.service.d/vmtest.conf" "$(<"$HERE/mmtrustd-vmtest.conf")"
put "$E/mmtrust-vmtest.target" "$(<"$HERE/mmtrust-vmtest.target")"
text=$(<"$HERE/mmtrust-vmtest.service")
put "$E/mmtrust-vmtest.service" "${text//@REPO@/$MMVM_REPO}"

# default.target is the test's target. Generators would only add units
# this boot never starts, at a program start each: a link to /dev/null
# disables one. The host's container marker would make systemd believe it
# runs in a container (it skips units and settings then); the guest is a VM.
perl -e '
	symlink("mmtrust-vmtest.target", "/etc/systemd/system/default.target") or die "default.target: $!\n";
	for my $d ("system-generators", "system-environment-generators") {
		for my $g (glob("/usr/lib/systemd/$d/* /lib/systemd/$d/*")) {
			(my $n = $g) =~ s|.*/||;
			my $l = "/etc/systemd/$d/$n";
			next if -l $l;
			symlink("/dev/null", $l) or die "$l: $!\n";
		}
	}
	unlink("/.dockerenv");
' || fatal "cannot link the units"

read -r up _ </proc/uptime
echo "$up" >"$R/systemd-exec-uptime"
echo "mmvm-systemd: $up s: exec /lib/systemd/systemd (default target mmtrust-vmtest.target)"
# Status lines of failures only: no progress animation on the log.
# shellcheck disable=SC2093 # when exec fails, say so
exec /lib/systemd/systemd --show-status=error
fatal "cannot exec /lib/systemd/systemd"
