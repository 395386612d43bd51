#!/bin/bash
# The VM test tier: boot Debian's stock kernel under qemu over the host's
# root file system and run every kernel-level test (ESP, IKEv2) in one boot.
#
#   bash tests/vm/run.sh [--shell] [--prepare] [TEST_SCRIPT...]
#   bash tests/vm/run.sh --systemd
#
# Without TEST_SCRIPT the guest runs every tests/vm/test_*.sh, and then a
# second boot runs the systemd check (below; MMTRUST_VM_SYSTEMD=0 skips it).
# --shell drops into a guest shell on the serial console after the tests
# (leave it with `exit`, or Ctrl-A x). --prepare installs, downloads and
# builds what the tier needs and stops before booting. --systemd boots only
# the systemd check: systemd as PID 1 starts mmtrustd.service
# (tests/vm/systemd/; results in build/vm-results-systemd/, deadline
# MMTRUST_VM_SYSTEMD_TIMEOUT, default 240 s). Exits with the tests' exit
# code; 1 also when the VM did not boot or finish within MMTRUST_VM_TIMEOUT
# seconds.
#
# Environment: MMTRUST_VM_CACHE (default <repo>/build/vm-cache),
# MMTRUST_VM_TIMEOUT (whole boot, default 960), MMTRUST_VM_TEST_TIMEOUT (each
# test, default 180), MMTRUST_VM_ACCEL (kvm or tcg; default: kvm only when
# /dev/kvm is writable and the CPU shows vmx/svm), MMTRUST_VM_MEM (512M),
# MMTRUST_VM_SMP (2), MMTRUST_VM_KERNEL (a cached kernel version to use
# instead of asking apt, e.g. offline), MMTRUST_VM_EXTRA_PKGS (more Debian
# packages for the guest, e.g. "tcpdump" for debugging).
set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
CACHE=${MMTRUST_VM_CACHE:-$REPO/build/vm-cache}
RESULTS=$REPO/build/vm-results
TIMEOUT=${MMTRUST_VM_TIMEOUT:-960}
TEST_TIMEOUT=${MMTRUST_VM_TEST_TIMEOUT:-180}
MEM=${MMTRUST_VM_MEM:-512M}
SMP=${MMTRUST_VM_SMP:-2}

# Modules the initramfs loads before it can mount the host's root (their
# dependencies are added by modprobe --show-depends, in load order).
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p overlay)
# Module trees no test here needs (hardware the guest does not have): left
# out of the cache, about 300 of its 430 MB.
PRUNE=(sound drivers/gpu drivers/media drivers/infiniband drivers/scsi
	drivers/usb drivers/iio drivers/hwmon drivers/staging drivers/bluetooth
	drivers/input drivers/hid drivers/mmc drivers/mtd drivers/isdn
	drivers/net/wireless drivers/net/ethernet drivers/net/can drivers/net/usb
	drivers/video drivers/comedi drivers/target drivers/nvme drivers/ata
	drivers/thunderbolt drivers/firewire drivers/platform drivers/mfd)
OPT_MODULES=(virtio_rng)

PKGS=(qemu-system-x86 busybox-static cpio kmod xz-utils iproute2 iputils-ping
	strongswan-charon strongswan-swanctl libstrongswan-standard-plugins libstrongswan-extra-plugins
	strongswan-pki socat kamailio kamailio-lua-modules sip-tester)

SHELL_MODE=0
PREPARE_ONLY=0
SYSTEMD_MODE=0
TESTS=()

say() { echo "vm: $*"; }
die() { echo "vm: $*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { local ms=$1; printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)); }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
	exit "${1:-2}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--shell) SHELL_MODE=1 ;;
	--prepare) PREPARE_ONLY=1 ;;
	--systemd) SYSTEMD_MODE=1 ;;
	-h | --help) usage 0 ;;
	--) shift; TESTS+=("$@"); break ;;
	-*) echo "vm: unknown option $1" >&2; usage 2 ;;
	*) TESTS+=("$1") ;;
	esac
	shift
done
if [ "$SHELL_MODE" -eq 1 ] && ! { [ -t 0 ] && [ -t 1 ]; }; then
	die "--shell needs a terminal"
fi
STAGE2=$VM_DIR/guest.sh
if [ "$SYSTEMD_MODE" -eq 1 ]; then
	if [ "$SHELL_MODE" -eq 1 ] || [ ${#TESTS[@]} -gt 0 ]; then
		die "--systemd takes neither --shell nor test scripts"
	fi
	STAGE2=$VM_DIR/systemd/stage2.sh
	PKGS+=(systemd)	# the guest's PID 1, journald, systemd-sysusers
	RESULTS=$REPO/build/vm-results-systemd
	TIMEOUT=${MMTRUST_VM_SYSTEMD_TIMEOUT:-240}
fi

# --- packages ---------------------------------------------------------------


APT_UPDATED=0
apt_update() {
	[ "$APT_UPDATED" -eq 1 ] && return 0
	say "apt-get update"
	apt-get update -qq >"$CACHE/apt.log" 2>&1 || { cat "$CACHE/apt.log" >&2; return 1; }
	APT_UPDATED=1
}

ensure_packages() {
	local p have missing=() want=("${PKGS[@]}")
	# shellcheck disable=SC2206
	want+=(${MMTRUST_VM_EXTRA_PKGS:-})
	have=$'\n'$(dpkg-query -W -f='${Package} ${Status}\n' "${want[@]}" 2>/dev/null |
		awk '/ install ok installed$/ { print $1 }' || true)$'\n'
	for p in "${want[@]}"; do
		[[ $have == *$'\n'$p$'\n'* ]] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root (or install them)"
	say "installing ${missing[*]}"
	apt_update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >"$CACHE/apt.log" 2>&1 || { cat "$CACHE/apt.log" >&2; die "apt-get install failed"; }
}

# --- kernel -----------------------------------------------------------------

# The ABI of Debian's generic kernel changes with point releases: ask apt.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}

resolve_kernel() {
	local pkg
	if [ -n "${MMTRUST_VM_KERNEL:-}" ]; then
		KVER=$MMTRUST_VM_KERNEL
		return 0
	fi
	pkg=$(kernel_package)
	if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
		apt_update || true
		pkg=$(kernel_package)
	fi
	if [ -z "$pkg" ]; then
		# Offline: the newest kernel already in the cache, if any.
		KVER=$(find "$CACHE/kernel" -mindepth 2 -maxdepth 2 -name .complete -printf '%T@ %h\n' 2>/dev/null |
			sort -rn | head -n1 | sed 's|.*/||')
		[ -n "$KVER" ] || die "apt-cache names no linux-image-*-amd64 and no kernel is cached"
		say "apt names no kernel; using cached $KVER"
		return 0
	fi
	KVER=${pkg#linux-image-}
}

ensure_kernel() {
	local kdir=$CACHE/kernel/$KVER tmp deb t0 m
	KDIR=$kdir
	[ -e "$kdir/.complete" ] && return 0
	[ -z "${MMTRUST_VM_KERNEL:-}" ] || die "kernel $KVER is not in $CACHE/kernel"
	t0=$(now_ms)
	mkdir -p "$CACHE/kernel"
	tmp=$(mktemp -d "$CACHE/kernel/.fetch.XXXXXX")
	TMP_DIRS+=("$tmp")
	say "downloading linux-image-$KVER"
	# apt's sandbox user (_apt) cannot write into the cache: stay root.
	local sandbox=()
	[ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
	(cd "$tmp" && apt-get download -q=2 "${sandbox[@]}" "linux-image-$KVER") ||
		die "apt-get download linux-image-$KVER failed"
	deb=$(ls "$tmp"/*.deb)
	mkdir "$tmp/root"
	dpkg -x "$deb" "$tmp/root"
	rm -f "$deb"
	[ -f "$tmp/root/boot/vmlinuz-$KVER" ] || die "no boot/vmlinuz-$KVER in the package"
	for m in "${PRUNE[@]}"; do rm -rf "$tmp/root/lib/modules/$KVER/kernel/$m"; done
	# The .deb ships no modules.dep.
	depmod -b "$tmp/root" "$KVER"
	# Booting the uncompressed ELF saves qemu's decompression (about 2.5 s
	# under TCG); keep bzImage booting as the fall-back.
	if ! bash "$VM_DIR/extract-vmlinux.sh" "$tmp/root/boot/vmlinuz-$KVER" "$tmp/root/vmlinux"; then
		say "could not extract vmlinux; booting vmlinuz"
		rm -f "$tmp/root/vmlinux"
	fi
	touch "$tmp/root/.complete"
	rm -rf "$kdir"
	mv "$tmp/root" "$kdir"
	rm -rf "$tmp"
	# Keep one kernel: older ABIs are not needed again.
	find "$CACHE/kernel" -mindepth 1 -maxdepth 1 ! -name "$KVER" ! -name '.fetch.*' \
		-exec rm -rf {} +
	find "$CACHE" -maxdepth 1 -name 'initramfs-*' ! -name "initramfs-$KVER.cpio*" -delete
	say "kernel $KVER ready in $(secs $(($(now_ms) - t0))) s"
}

# --- initramfs --------------------------------------------------------------

module_list() {
	local m
	for m in "$@"; do
		modprobe -d "$KDIR" -S "$KVER" --show-depends "$m"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

ensure_initramfs() {
	local out=$CACHE/initramfs-$KVER.cpio stamp mods opt_mods hash tmp m f
	INITRD=$out
	mods=$(module_list "${BOOT_MODULES[@]}")
	[ -n "$mods" ] || die "modprobe found none of ${BOOT_MODULES[*]} in $KDIR"
	opt_mods=$(module_list "${OPT_MODULES[@]}" 2>/dev/null | grep -vxF "$mods" || true)
	hash=$({
		echo "$KVER"
		printf '%s\n' "$mods" "$opt_mods"
		echo "layout 1"	# bump when the image's layout changes
		sha256sum "$VM_DIR/init.sh" /bin/busybox
	} | sha256sum | cut -d' ' -f1)
	stamp=$out.stamp
	if [ -f "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
		return 0
	fi
	say "building initramfs"
	tmp=$(mktemp -d "$CACHE/.initramfs.XXXXXX")
	TMP_DIRS+=("$tmp")
	mkdir -p "$tmp/root"/{bin,dev,proc,sys,mnt,newroot,modules}
	cp /bin/busybox "$tmp/root/bin/busybox"
	file_is_static /bin/busybox || die "/bin/busybox is not static (install busybox-static)"
	install -m 0755 "$VM_DIR/init.sh" "$tmp/root/init"
	: >"$tmp/root/modules/order"
	for m in $mods $opt_mods; do
		f=$(basename "$m")
		# busybox insmod wants plain ELF: undo any module compression.
		case "$f" in
		*.ko.xz) xz -dc "$m" >"$tmp/root/modules/${f%.xz}"; f=${f%.xz} ;;
		*.ko.zst) zstd -qdc "$m" >"$tmp/root/modules/${f%.zst}"; f=${f%.zst} ;;
		*.ko.gz) gzip -dc "$m" >"$tmp/root/modules/${f%.gz}"; f=${f%.gz} ;;
		*) cp "$m" "$tmp/root/modules/$f" ;;
		esac
		if printf '%s\n' "$mods" | grep -qxF "$m"; then
			echo "$f" >>"$tmp/root/modules/order"
		else
			echo "$f" >>"$tmp/root/modules/optional"
		fi
	done
	# The kernel's built-in initramfs has /dev/console too; this one is
	# for when it does not.
	[ "$(id -u)" -eq 0 ] && mknod -m 600 "$tmp/root/dev/console" c 5 1
	# Uncompressed: the guest unpacks it faster than it could decompress.
	(cd "$tmp/root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$tmp/initramfs.cpio"
	mv "$tmp/initramfs.cpio" "$out"
	echo "$hash" >"$stamp"
	rm -rf "$tmp"
}

file_is_static() {
	# A static ELF has no PT_INTERP, so no "ld-linux" string in its header.
	! head -c 4096 "$1" | grep -qa 'ld-linux'
}

# --- run --------------------------------------------------------------------

TMP_DIRS=()
QEMU_PID=
RUN=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local d
	if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill -TERM "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
	fi
	for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done
	[ -n "$RUN" ] && [ -d "$RUN" ] && rm -rf "$RUN"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

use_kvm() {
	case "${MMTRUST_VM_ACCEL:-}" in
	kvm) return 0 ;;
	tcg) return 1 ;;
	esac
	[ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo
}

T_START=$(now_ms)
mkdir -p "$CACHE" "$REPO/build"
# One preparer at a time (apt, the kernel cache, the initramfs).
exec 9>"$CACHE/.lock"
flock 9
ensure_packages
resolve_kernel
ensure_kernel
ensure_initramfs
flock -u 9
exec 9>&-
T_READY=$(now_ms)
say "kernel $KVER, setup $(secs $((T_READY - T_START))) s"
[ "$PREPARE_ONLY" -eq 1 ] && exit 0

# Test paths as the guest sees them: the host's root is the guest's root.
GUEST_TESTS=()
for t in "${TESTS[@]}"; do GUEST_TESTS+=("$(realpath -m -- "$t")"); done

RUN=$(mktemp -d "$REPO/build/vm-run.XXXXXX")
mkdir -p "$RUN/logs" "$RUN/artifacts"
# The guest reads these from the writable share (the kernel command line
# would mangle words with dots): boot for init.sh, job for guest.sh.
printf 'stage2=%s\nkver=%s\nkdir=%s\n' "$STAGE2" "$KVER" "$KDIR" >"$RUN/boot"
{
	printf 'MMVM_REPO=%q\n' "$REPO"
	printf 'MMVM_KVER=%q\n' "$KVER"
	printf 'MMVM_KDIR=%q\n' "$KDIR"
	printf 'MMVM_SHELL=%q\n' "$SHELL_MODE"
	printf 'MMVM_TEST_TIMEOUT=%q\n' "$TEST_TIMEOUT"
	printf 'MMVM_TERM=%q\n' "${TERM:-vt100}"
	printf 'MMVM_STTY=%q\n' "$(if [ -t 0 ]; then stty size 2>/dev/null; fi)"
	printf 'MMVM_TESTS=('
	for t in "${GUEST_TESTS[@]}"; do printf ' %q' "$t"; done
	printf ' )\n'
} >"$RUN/job"

if [ -f "$KDIR/vmlinux" ]; then KERNEL=$KDIR/vmlinux; else KERNEL=$KDIR/boot/vmlinuz-$KVER; fi
if use_kvm; then
	ACCEL=(-accel kvm -cpu host)
	ACCEL_NAME=kvm
else
	# Without tb-size qemu's translation cache grows past 1 GB.
	# shellcheck disable=SC2054 # commas belong to qemu options
	ACCEL=(-accel tcg,tb-size=128 -cpu max)
	ACCEL_NAME=tcg
fi
# cryptomgr.notests: the kernel's crypto self-tests check the kernel, not
# us, and cost about a second of boot under TCG.
# shellcheck disable=SC2054
QEMU=(qemu-system-x86_64 "${ACCEL[@]}" -m "$MEM" -smp "$SMP"
	-nodefaults -no-user-config -display none -no-reboot
	-kernel "$KERNEL" -initrd "$INITRD"
	-append "console=ttyS0 quiet panic=-1 rdinit=/init cryptomgr.notests"
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$RUN,mount_tag=results,security_model=none"
	-device virtio-rng-pci)

if [ "$SHELL_MODE" -eq 1 ]; then dl="no deadline"; else dl="deadline ${TIMEOUT}s"; fi
say "booting ($ACCEL_NAME, $MEM, $SMP cpus, $dl)"
T_BOOT=$(now_ms)
if [ "$SHELL_MODE" -eq 1 ]; then
	echo "vm: the serial console is this terminal; Ctrl-A x ends qemu"
	# Interactive: the terminal belongs to qemu; no deadline.
	"${QEMU[@]}" -serial mon:stdio && qrc=0 || qrc=$?
else
	# In the background so that a signal to this script ends qemu at once;
	# timeout ends qemu when the deadline passes.
	: >"$RUN/console.log"
	timeout -k 10 "$TIMEOUT" "${QEMU[@]}" -serial stdio </dev/null >>"$RUN/console.log" 2>&1 &
	QEMU_PID=$!
	tail -s 0.2 -n +1 -f --pid="$QEMU_PID" "$RUN/console.log" | tr -d '\r' &
	TAIL_PID=$!
	wait "$QEMU_PID" && qrc=0 || qrc=$?
	QEMU_PID=
	wait "$TAIL_PID" || true
fi
T_END=$(now_ms)

rc=1
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	say "FAIL: the VM did not finish within ${TIMEOUT}s"
elif [ ! -s "$RUN/rc" ]; then
	say "FAIL: the VM stopped (qemu exit $qrc) without a result"
else
	rc=$(cat "$RUN/rc")
	case "$rc" in '' | *[!0-9]*) say "FAIL: bad result '$rc'"; rc=1 ;; esac
fi

if [ ! -s "$RUN/rc" ]; then
	# Show what the guest was doing: logs of tests that have no summary line.
	for f in "$RUN"/logs/*.log; do
		[ -e "$f" ] || continue
		n=${f##*/}
		n=${n%.log}
		grep -q " $n " "$RUN/summary" 2>/dev/null && continue
		say "$n was running; the end of its output:"
		tail -n 40 "$f" | sed 's/^/  | /'
	done
fi

echo
if [ -s "$RUN/summary" ]; then
	say "summary:"
	sed 's/^/  /' "$RUN/summary"
fi
boot=$(cat "$RUN/boot-uptime" 2>/dev/null || echo '?')
say "timings: setup $(secs $((T_READY - T_START))) s, guest boot to stage 2 ${boot} s," \
	"VM wall $(secs $((T_END - T_BOOT))) s, total $(secs $((T_END - T_START))) s"

rm -rf "$RESULTS"
mv "$RUN" "$RESULTS"
RUN=
say "results in ${RESULTS#"$REPO"/}/ (console.log, summary, logs/)"
if [ "$rc" -eq 0 ]; then say "PASS"; else say "FAIL (exit $rc)"; fi
# The whole tier: a second boot, systemd as PID 1 (its failure fails the tier).
if [ "$SYSTEMD_MODE" -eq 0 ] && [ ${#TESTS[@]} -eq 0 ] && [ "$SHELL_MODE" -eq 0 ] &&
	[ "${MMTRUST_VM_SYSTEMD:-1}" != 0 ]; then
	echo
	say "second boot: systemd as PID 1 (tests/vm/systemd/)"
	bash "$VM_DIR/run.sh" --systemd || rc=1
	if [ "$rc" -eq 0 ]; then say "tier PASS (both boots)"; else say "tier FAIL (exit $rc)"; fi
fi
exit "$rc"
