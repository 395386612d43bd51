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

# The daemon where the unit expects it (whatever path ExecStart names,
# it is this build's binary).
install -m 0755 "$B/mmtrustd" /usr/sbin/mmtrustd || fatal "cannot install mmtrustd"
sed -e 's|^\(ExecStart=[-@:+!]*\)[^ ]*/mmtrustd\( \|$\)|\1/usr/sbin/mmtrustd\2|' \
	"$unit" >/lib/systemd/system/mmtrustd.service || fatal "cannot install the unit"
grep -q '^ExecStart=[-@:+!]*/usr/sbin/mmtrustd' /lib/systemd/system/mmtrustd.service ||
	fatal "no ExecStart=.../mmtrustd in $unit"
cp "$users" /usr/lib/sysusers.d/mmtrust.conf
systemd-sysusers /usr/lib/sysusers.d/mmtrust.conf >>"$LOG" 2>&1 ||
	fatal "systemd-sysusers $users failed"
if [ -f "$tmpfiles" ]; then
	echo "tmpfiles=$tmpfiles" >>"$R/artifacts/$NAME/sources"
	cp "$tmpfiles" /usr/lib/tmpfiles.d/mmtrust.conf
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/mmtrust.conf >>"$LOG" 2>&1 ||
		fatal "systemd-tmpfiles --create $tmpfiles failed"
fi
mkdir -p /etc/mmtrust
install -m 0640 -o root -g mmtrust "$HERE/mmtrustd.conf" /etc/mmtrust/mmtrustd.conf ||
	fatal "cannot install the configuration"

# The host's container marker would make systemd believe it runs in a
# container (it skips units and settings then); the guest is a VM.
rm -f /.dockerenv

E=/etc/systemd/system
mkdir -p "$E/mmtrustd.service.d"
cp "$HERE/mmtrustd-vmtest.conf" "$E/mmtrustd.service.d/vmtest.conf"
cp "$HERE/mmtrust-vmtest.target" "$E/"
sed "s|@REPO@|$MMVM_REPO|g" "$HERE/mmtrust-vmtest.service" >"$E/mmtrust-vmtest.service"
ln -sfn mmtrust-vmtest.target "$E/default.target"
# Generators cost a program start each (0.1-0.3 s under TCG) and would
# only add units this boot never starts: a link to /dev/null disables one.
for d in system-generators system-environment-generators; do
	mkdir -p "/etc/systemd/$d"
	for g in /lib/systemd/"$d"/* /usr/lib/systemd/"$d"/*; do
		[ -e "$g" ] && ln -sfn /dev/null "/etc/systemd/$d/${g##*/}"
	done
done

read -r up _ </proc/uptime
echo "$up" >"$R/systemd-exec-uptime"
# shellcheck disable=SC2093 # when exec fails, say so
exec /lib/systemd/systemd --show-status=1
fatal "cannot exec /lib/systemd/systemd"
