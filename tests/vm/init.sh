#!/bin/busybox sh
# shellcheck shell=dash
# Stage 1 of the VM tier: /init of the initramfs that tests/vm/run.sh builds.
# Loads the virtio and 9p modules; mounts the host's root read-only over 9p
# under a tmpfs overlay (the guest may write anywhere, the host sees none of
# it), a fresh tmpfs on /run and the writable results share on /run/mmvm;
# prepares /dev and /lib/modules; switches to stage 2 (tests/vm/guest.sh,
# named by the share's boot file).
/bin/busybox --install -s /bin
export PATH=/bin

die() {
	echo "mmvm-init: $*" >&2
	poweroff -f
	sleep 5
	exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r m; do
	insmod "/modules/$m" || die "insmod $m failed"
done </modules/order
if [ -f /modules/optional ]; then
	while read -r m; do insmod "/modules/$m" 2>/dev/null; done </modules/optional
fi

mkdir -p /mnt/lower /mnt/rw
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /mnt/lower ||
	die "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw
mkdir /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \
	overlay /newroot || die "cannot mount the overlay root"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run
mkdir -p /newroot/run/mmvm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /newroot/run/mmvm ||
	die "cannot mount the results share (9p tag results)"
# The share's boot file: stage2=PATH, kver=VERSION, kdir=DIR (one a line).
[ -f /newroot/run/mmvm/boot ] || die "no boot file in the results share"
while IFS='=' read -r k v; do
	case "$k" in
	stage2) stage2=$v ;;
	kver) kver=$v ;;
	kdir) kdir=$v ;;
	esac
done </newroot/run/mmvm/boot
[ -f "/newroot$stage2" ] || die "stage 2 $stage2 not found in the host root"

# What stage 2 expects of a system, done here with busybox: a static binary
# starts several times faster than the host's dynamic programs under TCG.
for d in proc sys dev; do mount --move "/$d" "/newroot/$d"; done
cd /newroot || die "no /newroot"
mkdir -p dev/pts dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts dev/pts
ln -sf pts/ptmx dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs dev/shm
ln -sf /proc/self/fd dev/fd
ln -sf /proc/self/fd/0 dev/stdin
ln -sf /proc/self/fd/1 dev/stdout
ln -sf /proc/self/fd/2 dev/stderr
# On-demand module loading (esp4, xfrm_user, gcm, veth...) looks here.
mkdir -p lib/modules
ln -sfn "$kdir/lib/modules/$kver" "lib/modules/$kver"
# The kernel runs its modprobe helper for each name it looks up (some 25 for
# the first GCM SA, most of them in vain); busybox's static modprobe does
# each in a fraction of kmod's time here, about 2.5 s less per boot.
if [ -x bin/busybox ]; then
	mkdir -p run/mmvm-bin
	ln -s /bin/busybox run/mmvm-bin/modprobe
	echo /run/mmvm-bin/modprobe >proc/sys/kernel/modprobe
fi
ip link set lo up
hostname mmvm
cd /
exec switch_root /newroot /bin/bash "$stage2"
