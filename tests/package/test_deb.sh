#!/bin/bash
# The Debian packages and make install (make deb-check):
# - make install DESTDIR=... PREFIX=/usr puts every file where it belongs
#   (programs, library, header, mmtrust.pc, unit, sysusers.d, tmpfiles.d,
#   sample configuration 0640, documentation), the unit names the installed
#   paths; PREFIX=/opt/... keeps everything under the prefix; nothing lands
#   outside DESTDIR; an existing configuration is never overwritten;
# - dpkg-buildpackage -us -uc -b in a scratch copy of the tree (the tree
#   itself stays as it is) builds mmtrust, libmmtrust1 and libmmtrust-dev
#   without running scripts/deps.sh; lintian reports no error;
# - installed with apt-get: the files of each package, the user mmtrust,
#   the modes of /etc/mmtrust, the conffile, the unit enabled (not
#   started), systemd-analyze verify and its security exposure;
# - a C program builds with `pkg-config --cflags --libs mmtrust` and runs;
# - the installed mmtrustd runs as the unit runs it (user mmtrust, only
#   CAP_NET_ADMIN, no new privileges) in a namespace of the test's own and
#   programs XFRM policies there; it cannot without the capability, and a
#   user neither root nor mmtrust is refused on the admin socket;
# - apt-get purge removes the packages, the configuration and the unit.
# Root; installs on this machine and purges afterwards.
# Usage: bash tests/package/test_deb.sh (from anywhere in the tree).
set -u
ROOT=$(realpath "$(dirname "$0")/../..")
cd "$ROOT" || exit 1
. tests/lib/common.sh

PKGS="mmtrust libmmtrust1 libmmtrust-dev"
MM_TMP=$(mktemp -d /tmp/mmtrust-deb-XXXXXX)
NS=mmtrust-deb-$$
DPID=
INSTALLED=0
T0=$(date +%s)
T=$T0
step() {
	local now
	now=$(date +%s)
	echo "== $1 ($((now - T)) s; $((now - T0)) s in all)"
	T=$now
}
cleanup() {
	mm_kill "$DPID"
	ip netns del "$NS" 2>/dev/null
	getent group mmtrust-deb-cscf >/dev/null && groupdel mmtrust-deb-cscf
	if [ "$INSTALLED" = 1 ]; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $PKGS >/dev/null 2>&1
	fi
	rm -rf "$MM_TMP"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
	echo "test_deb: needs root (it installs the packages, then purges them)" >&2
	exit 1
fi
for p in $PKGS; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		echo "test_deb: $p is installed on this machine; this test installs and purges" \
			"its own build: remove it first (apt-get purge $PKGS)" >&2
		exit 1
	fi
done

# --- a scratch copy of the tree: what git tracks and what it would ---------------
SRC=$MM_TMP/src
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$ROOT" ls-files -z -c -o --exclude-standard |
		grep -zv -e '^build/' -e '^build-asan/' | tar -cf - --null -T - | tar -xf - -C "$SRC"
else
	tar -cf - --exclude=./build --exclude=./build-asan --exclude=./debian/tmp . | tar -xf - -C "$SRC"
fi
check "the scratch copy has debian/rules" test -x "$SRC/debian/rules"
check "the scratch copy has no build directory" test ! -e "$SRC/build"
step "scratch copy"

# --- the packages ------------------------------------------------------------------
# nocheck: no test suite in the build; noddebs: no debug symbol packages.
export DEB_BUILD_OPTIONS="nocheck noddebs parallel=2"
if (cd "$SRC" && dpkg-buildpackage -us -uc -b >"$MM_TMP/build.log" 2>&1); then
	pass "dpkg-buildpackage -us -uc -b"
else
	fail "dpkg-buildpackage failed; the end of its log:"
	tail -30 "$MM_TMP/build.log" >&2
	summary "test_deb"
	exit 1
fi
VERSION=$(cd "$SRC" && dpkg-parsechangelog -S Version)
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for p in $PKGS; do
	check "built: ${p}_${VERSION}_$ARCH.deb" test -f "$MM_TMP/${p}_${VERSION}_$ARCH.deb"
done
# The build installs nothing (NO_DEPS=1) and runs no test.
check "the package build did not run scripts/deps.sh" \
	sh -c "! grep -q 'scripts/deps.sh' '$MM_TMP/build.log'"
check "the package build ran no test (no test binary built)" \
	test ! -e "$SRC/build/tests/unit"
check "the package build made no debug symbol packages" \
	sh -c "! ls '$MM_TMP'/*.ddeb '$MM_TMP'/*dbgsym* 2>/dev/null | grep -q ."
step "dpkg-buildpackage"

# --- lintian: no error; warnings listed ------------------------------------------------
lintian "$MM_TMP/mmtrust_${VERSION}_$ARCH.changes" >"$MM_TMP/lintian.out" 2>&1
grep -v '^running with root privileges' "$MM_TMP/lintian.out" | sed 's/^/lintian: /'
if grep -q '^E:' "$MM_TMP/lintian.out"; then
	fail "lintian reports errors: $(grep '^E:' "$MM_TMP/lintian.out" | tr '\n' ' ')"
else
	pass "lintian: no error"
fi
step "lintian"

# --- make install into DESTDIR (the scratch copy's build, from the package) -------------
D=$MM_TMP/root
# A marker for "nothing lands outside DESTDIR": no file named *mmtrust* on
# the system changes during the installs.
touch "$MM_TMP/marker"
sleep 1
expect_exit 0 "make install DESTDIR=... PREFIX=/usr" \
	make -C "$SRC" --no-print-directory NO_DEPS=1 install DESTDIR="$D" PREFIX=/usr
for f in usr/sbin/mmtrustd usr/bin/mmtrustctl usr/lib/libmmtrust.so.1 usr/lib/libmmtrust.a \
	usr/include/mmtrust.h usr/lib/pkgconfig/mmtrust.pc etc/mmtrust/mmtrustd.conf \
	lib/systemd/system/mmtrustd.service usr/lib/sysusers.d/mmtrust.conf \
	usr/lib/tmpfiles.d/mmtrust.conf usr/share/doc/mmtrust/README.md \
	usr/share/doc/mmtrust/operations.md usr/share/doc/mmtrust/install.md \
	usr/share/doc/mmtrust/examples/mmtrustd.conf; do
	check "make install: /$f" test -f "$D/$f"
done
check "make install: libmmtrust.so -> libmmtrust.so.1" \
	test "$(readlink "$D/usr/lib/libmmtrust.so")" = libmmtrust.so.1
check "make install: mmtrustd.conf mode 0640" \
	test "$(stat -c %a "$D/etc/mmtrust/mmtrustd.conf")" = 640
check "make install: mmtrustd.conf is examples/mmtrustd.conf" \
	cmp -s examples/mmtrustd.conf "$D/etc/mmtrust/mmtrustd.conf"
check "make install: the unit runs /usr/sbin/mmtrustd with /etc/mmtrust/mmtrustd.conf" \
	grep -qx 'ExecStart=/usr/sbin/mmtrustd --foreground --config /etc/mmtrust/mmtrustd.conf' \
	"$D/lib/systemd/system/mmtrustd.service"
for m in "$SRC"/build/man/*.[1-8]; do
	[ -f "$m" ] || continue
	check "make install: manual page ${m##*/}" test -f "$D/usr/share/man/man${m##*.}/${m##*/}"
done
if [ -f dist/bash-completion/mmtrustctl ]; then
	check "make install: bash completion" \
		test -f "$D/usr/share/bash-completion/completions/mmtrustctl"
fi
echo "# edited" >>"$D/etc/mmtrust/mmtrustd.conf"
expect_exit 0 "make install again over an edited configuration" \
	make -C "$SRC" --no-print-directory NO_DEPS=1 install DESTDIR="$D" PREFIX=/usr
contains "$OUT" "mmtrustd.conf exists, kept" "make install says it keeps the configuration"
check "make install never overwrites an existing configuration" \
	grep -qx '# edited' "$D/etc/mmtrust/mmtrustd.conf"
O=$MM_TMP/opt
expect_exit 0 "make install DESTDIR=... PREFIX=/opt/mmtrust" \
	make -C "$SRC" --no-print-directory NO_DEPS=1 install DESTDIR="$O" PREFIX=/opt/mmtrust
outside=$(cd "$O" && find . -mindepth 1 -not -type d | grep -v '^\./opt/mmtrust/')
check "PREFIX=/opt/mmtrust: every file under the prefix${outside:+ (not: $outside)}" \
	test -z "$outside"
check "PREFIX=/opt/mmtrust: the unit in PREFIX/lib/systemd/system names the prefix's paths" \
	grep -qx 'ExecStart=/opt/mmtrust/sbin/mmtrustd --foreground --config /opt/mmtrust/etc/mmtrust/mmtrustd.conf' \
	"$O/opt/mmtrust/lib/systemd/system/mmtrustd.service"
check "PREFIX=/opt/mmtrust: the configuration in PREFIX/etc" \
	test -f "$O/opt/mmtrust/etc/mmtrust/mmtrustd.conf"
check "PREFIX=/opt/mmtrust: tmpfiles.d names PREFIX/etc/mmtrust" \
	grep -q '^d /opt/mmtrust/etc/mmtrust 0750 root mmtrust' "$O/opt/mmtrust/lib/tmpfiles.d/mmtrust.conf"
stray=$(find /etc /usr /var/lib /opt -xdev -newer "$MM_TMP/marker" -name '*mmtrust*' 2>/dev/null)
check "make install DESTDIR=...: nothing outside DESTDIR${stray:+ (found: $stray)}" test -z "$stray"
step "make install DESTDIR"

# --- install the packages ------------------------------------------------------------------
INSTALLED=1
if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	"$MM_TMP/mmtrust_${VERSION}_$ARCH.deb" "$MM_TMP/libmmtrust1_${VERSION}_$ARCH.deb" \
	"$MM_TMP/libmmtrust-dev_${VERSION}_$ARCH.deb" >"$MM_TMP/apt.log" 2>&1; then
	pass "apt-get install ./mmtrust*.deb"
else
	fail "apt-get install: $(tail -5 "$MM_TMP/apt.log")"
fi
step "apt-get install"

listed() { dpkg -L "$1" 2>/dev/null | grep -qx "$2"; }
for f in /usr/sbin/mmtrustd /usr/bin/mmtrustctl /etc/mmtrust/mmtrustd.conf \
	/lib/systemd/system/mmtrustd.service /usr/lib/sysusers.d/mmtrust.conf \
	/usr/lib/tmpfiles.d/mmtrust.conf /usr/lib/$MA/lua/5.1/mmtrust.so \
	/usr/share/doc/mmtrust/copyright /usr/share/doc/mmtrust/examples/mmtrustd.conf; do
	check "dpkg -L mmtrust: $f" listed mmtrust "$f"
done
for m in "$SRC"/build/man/*.[1-8]; do
	[ -f "$m" ] || continue
	check "dpkg -L mmtrust: manual page ${m##*/}" \
		listed mmtrust "/usr/share/man/man${m##*.}/${m##*/}.gz"
done
if [ -f dist/bash-completion/mmtrustctl ]; then
	check "dpkg -L mmtrust: bash completion" \
		listed mmtrust /usr/share/bash-completion/completions/mmtrustctl
fi
check "dpkg -L libmmtrust1: libmmtrust.so.1" listed libmmtrust1 "/usr/lib/$MA/libmmtrust.so.1"
check "libmmtrust1 holds the library only (no header, no .so link)" \
	sh -c "! dpkg -L libmmtrust1 | grep -q -e '\.h\$' -e 'libmmtrust\.so\$' -e '\.a\$'"
for f in /usr/include/mmtrust.h "/usr/lib/$MA/libmmtrust.so" "/usr/lib/$MA/libmmtrust.a" \
	"/usr/lib/$MA/pkgconfig/mmtrust.pc"; do
	check "dpkg -L libmmtrust-dev: $f" listed libmmtrust-dev "$f"
done
check "mmtrust ships no header or static library" \
	sh -c "! dpkg -L mmtrust | grep -q -e '\.h\$' -e '\.a\$'"
check "the conffile is in mmtrust.conffiles" \
	grep -qx /etc/mmtrust/mmtrustd.conf /var/lib/dpkg/info/mmtrust.conffiles
check "the unit file is not a conffile" \
	sh -c "! grep -q mmtrustd.service /var/lib/dpkg/info/mmtrust.conffiles"

# The user and the modes (sysusers and tmpfiles in postinst).
check "user mmtrust exists" sh -c "getent passwd mmtrust >/dev/null"
check "group mmtrust exists" sh -c "getent group mmtrust >/dev/null"
check "user mmtrust has no login shell" \
	sh -c "getent passwd mmtrust | cut -d: -f7 | grep -qx -e /usr/sbin/nologin -e /sbin/nologin"
check "user mmtrust is a system user (uid < 1000)" test "$(id -u mmtrust)" -lt 1000
check "/etc/mmtrust: root:mmtrust 0750" test "$(stat -c '%U:%G %a' /etc/mmtrust)" = "root:mmtrust 750"
check "/etc/mmtrust/mmtrustd.conf: root:mmtrust 0640" \
	test "$(stat -c '%U:%G %a' /etc/mmtrust/mmtrustd.conf)" = "root:mmtrust 640"
check "/var/lib/mmtrust: mmtrust:mmtrust 0750" \
	test "$(stat -c '%U:%G %a' /var/lib/mmtrust)" = "mmtrust:mmtrust 750"
check "the unit is enabled (multi-user.target.wants)" \
	test -L /etc/systemd/system/multi-user.target.wants/mmtrustd.service
check "the installed unit: ExecStart /usr/sbin/mmtrustd" \
	grep -qx 'ExecStart=/usr/sbin/mmtrustd --foreground --config /etc/mmtrust/mmtrustd.conf' \
	/lib/systemd/system/mmtrustd.service

# systemd-analyze: the unit as installed.  Its Documentation= names the
# manual pages: checked when the package has them.
MANCHECK=--man=no
dpkg -L mmtrust | grep -q '/man8/mmtrustd.8.gz$' && MANCHECK=--man=yes
expect_exit 0 "systemd-analyze verify $MANCHECK /lib/systemd/system/mmtrustd.service" \
	systemd-analyze verify "$MANCHECK" /lib/systemd/system/mmtrustd.service
systemd-analyze security --offline=yes /lib/systemd/system/mmtrustd.service \
	>"$MM_TMP/security.out" 2>&1
score=$(grep -o 'Overall exposure level for mmtrustd.service: .*' "$MM_TMP/security.out")
echo "systemd-analyze security: $score"
case "$score" in
*": "[0-9]*" SAFE"* | *": "[0-9]*" OK"*) pass "security exposure OK or better" ;;
*) fail "security exposure worse than OK: $score" ;;
esac

# The programs and the version.
expect_exit 0 "mmtrustd --help (installed)" /usr/sbin/mmtrustd --help
contains "$OUT" "Usage: mmtrustd" "mmtrustd --help prints its usage"
expect_exit 0 "mmtrustd --version (installed)" /usr/sbin/mmtrustd --version
check "mmtrustd --version is the package's upstream version (${VERSION%-*})" \
	test "$OUT" = "mmtrustd ${VERSION%-*}"
expect_exit 2 "mmtrustd refuses an unknown option" /usr/sbin/mmtrustd --no-such-option
expect_exit 0 "mmtrustctl --help (installed)" /usr/bin/mmtrustctl --help

# A CSCF's program against the packaged library, through pkg-config.
CLIENT=$MM_TMP/client
# shellcheck disable=SC2046
expect_exit 0 "cc client.c \$(pkg-config --cflags --libs mmtrust)" \
	cc -Wall -Wextra -Werror -o "$CLIENT" tests/package/client.c $(pkg-config --cflags --libs mmtrust)
lib=$(ldd "$CLIENT" | awk '$1 == "libmmtrust.so.1" { print $3 }')
check "the client links the packaged libmmtrust.so.1 (${lib:-not found})" \
	test -n "$lib" -a "$(realpath "$lib")" = "$(realpath "/usr/lib/$MA/libmmtrust.so.1")"
expect_exit 1 "the client without a daemon: fails closed" "$CLIENT" "$MM_TMP/none.sock" 192.0.2.1 10.10.0.1
contains "$OUT" "connect: No such file or directory" "the client says the socket is missing"
step "installed files"

# --- the installed daemon as the unit runs it, in a namespace of our own ----------------------
ip netns add "$NS"
R=$MM_TMP/run
mkdir -p "$R"
chown mmtrust:mmtrust "$R"
chmod 0750 "$R"
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $R/mmtrust.db
admin_socket = $R/admin.sock
query_socket = $R/query.sock
[local]
cscf = 10.10.0.0/24
tunnel = 198.51.100.1
CONF
chgrp mmtrust "$MM_TMP/mmtrustd.conf"
chmod 0640 "$MM_TMP/mmtrustd.conf"
chmod 0755 "$MM_TMP"
make_ca "$MM_TMP" ca
chmod 0644 "$MM_TMP/ca.pem"
# setpriv as systemd does it for User=mmtrust, AmbientCapabilities= and
# CapabilityBoundingSet=CAP_NET_ADMIN, NoNewPrivileges=yes.  Run in the
# background as `as_unit CAPS PROGRAM... &`: exec, so that $! is the program.
as_unit() {
	local caps=$1
	shift
	exec ip netns exec "$NS" setpriv --reuid=mmtrust --regid=mmtrust --init-groups \
		--inh-caps="-all${caps:+,+$caps}" --ambient-caps="-all${caps:+,+$caps}" \
		--bounding-set="-all${caps:+,+$caps}" --no-new-privs "$@"
}
export MMTRUST_ADMIN_SOCKET=$R/admin.sock

# Without CAP_NET_ADMIN: the kernel is out of reach, and mmtrustd says why.
as_unit "" /usr/sbin/mmtrustd --foreground --config "$MM_TMP/mmtrustd.conf" \
	2>"$MM_TMP/nocap.log" &
DPID=$!
wait_for 10 test -S "$R/admin.sock" || fail "mmtrustd (no capability) did not create its socket"
wait_for 10 grep -q CAP_NET_ADMIN "$MM_TMP/nocap.log"
check "without CAP_NET_ADMIN mmtrustd logs that it lacks it" grep -q "lacks CAP_NET_ADMIN" "$MM_TMP/nocap.log"
mm_kill "$DPID"
DPID=
rm -f "$R/admin.sock" "$R/query.sock"

as_unit net_admin /usr/sbin/mmtrustd --foreground --config "$MM_TMP/mmtrustd.conf" \
	2>"$MM_TMP/daemon.log" &
DPID=$!
wait_for 10 test -S "$R/admin.sock" || fail "mmtrustd (user mmtrust) did not create its socket"
wait_for 10 /usr/bin/mmtrustctl partner list >/dev/null || fail "mmtrustd (user mmtrust) does not answer"
check "mmtrustd runs as user mmtrust" test "$(ps -o user= -p "$DPID")" = mmtrust
check "mmtrustd's capabilities: CAP_NET_ADMIN only (effective 0x1000)" \
	grep -q '^CapEff:.*0000000000001000$' "/proc/$DPID/status"
check "the store belongs to mmtrust" test "$(stat -c %U "$R/mmtrust.db")" = mmtrust
check "the admin socket: mmtrust's, mode 0600" test "$(stat -c '%U %a' "$R/admin.sock")" = "mmtrust 600"
expect_exit 0 "root adds a tunnel partner" /usr/bin/mmtrustctl partner add ims.a.example \
	--kind ims --agreement yes --range 192.0.2.0/25 --gateway 198.51.100.10 --ca "$MM_TMP/ca.pem"
expect_exit 0 "root adds a seg partner" /usr/bin/mmtrustctl partner add seg.b.example \
	--kind ims --agreement yes --path seg --range 203.0.113.0/24 --gateway 198.51.100.20 \
	--ca "$MM_TMP/ca.pem"
wait_for 10 sh -c "ip -n '$NS' xfrm policy | grep -q '192.0.2.0/25'"
n=$(ip -n "$NS" xfrm policy | grep -c '^src')
check "mmtrustd (user mmtrust, CAP_NET_ADMIN) programmed the partner's XFRM policies ($n)" \
	test "$n" -ge 2
expect_exit 3 "a user neither root nor mmtrust is refused on the admin socket" \
	setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/mmtrustctl partner list
before=$(ip -n "$NS" xfrm policy | md5sum)
setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/mmtrustctl partner del ims.a.example \
	>/dev/null 2>&1
check "... and changes nothing" test "$(ip -n "$NS" xfrm policy | md5sum)" = "$before"
chmod 0755 "$R"
expect_exit 0 "the packaged library asks mmtrustd (as root)" "$CLIENT" "$R/query.sock" 203.0.113.5 10.10.0.1
contains "$OUT" "partner=seg.b.example pai=keep reason=seg-trusted source=" \
	"the answer: the seg partner, keep"
expect_exit 1 "a user not in the query group is refused on the query socket" \
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$CLIENT" "$R/query.sock" 203.0.113.5 10.10.0.1
contains "$OUT" "connect: Permission denied" "... by the socket's mode (no query_group)"
mm_kill "$DPID"
DPID=
check "mmtrustd stopped cleanly (its sockets removed)" test ! -e "$R/admin.sock"

# query_group: mmtrustd gives its query socket to the CSCF's group, which
# it may only as a member (the unit's SupplementaryGroups=, docs/install.md).
groupadd -f mmtrust-deb-cscf
sed -i 's/^\[daemon\]$/[daemon]\nquery_group = mmtrust-deb-cscf/' "$MM_TMP/mmtrustd.conf"
(as_unit net_admin /usr/sbin/mmtrustd --foreground --config "$MM_TMP/mmtrustd.conf" \
	2>"$MM_TMP/nogroup.log") &
DPID=$!
wait_for 10 sh -c "! kill -0 $DPID" || fail "mmtrustd without the query group's membership kept running"
wait "$DPID"
rc=$?
DPID=
check "query_group without membership: mmtrustd exits non-zero ($rc)" test "$rc" -ne 0
check "... and says why, naming the socket" grep -q "query.sock" "$MM_TMP/nogroup.log"
check "... and leaves no query socket behind" test ! -e "$R/query.sock"
# As a member (what SupplementaryGroups= gives), the socket is the group's.
as_unit_grp() {
	exec ip netns exec "$NS" setpriv --reuid=mmtrust --regid=mmtrust \
		--groups="$(getent group mmtrust-deb-cscf | cut -d: -f3)" \
		--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
		--bounding-set=-all,+net_admin --no-new-privs "$@"
}
as_unit_grp /usr/sbin/mmtrustd --foreground --config "$MM_TMP/mmtrustd.conf" 2>"$MM_TMP/group.log" &
DPID=$!
wait_for 10 test -S "$R/query.sock" || fail "mmtrustd (member of the query group) did not create its query socket"
check "query_group as a member: the query socket is mmtrust:mmtrust-deb-cscf 0660" \
	test "$(stat -c '%U:%G %a' "$R/query.sock")" = "mmtrust:mmtrust-deb-cscf 660"
mm_kill "$DPID"
DPID=
groupdel mmtrust-deb-cscf
step "installed daemon as the unit runs it"

# --- purge -------------------------------------------------------------------------------------------
if DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $PKGS >"$MM_TMP/purge.log" 2>&1; then
	pass "apt-get purge $PKGS"
	INSTALLED=0
else
	fail "apt-get purge: $(tail -5 "$MM_TMP/purge.log")"
fi
check "purged: /usr/sbin/mmtrustd gone" test ! -e /usr/sbin/mmtrustd
check "purged: the unit gone" test ! -e /lib/systemd/system/mmtrustd.service
check "purged: the enable link gone" test ! -e /etc/systemd/system/multi-user.target.wants/mmtrustd.service
check "purged: /etc/mmtrust/mmtrustd.conf gone" test ! -e /etc/mmtrust/mmtrustd.conf
check "purged: mmtrust.pc gone" test ! -e "/usr/lib/$MA/pkgconfig/mmtrust.pc"
step "apt-get purge"

summary "test_deb"
