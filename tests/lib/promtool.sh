# promtool (`promtool check metrics`) for the tests, from Debian's
# prometheus package: the package is downloaded (apt-get download), never
# installed (installing it starts a Prometheus server); only the promtool
# binary is kept, as build/tools/promtool of the source tree, whatever the
# build directory under test (make asan's too): fetched once.  Sourced after
# common.sh.
#
#   promtool_get          sets PROMTOOL; returns 1 (and says why) when it
#                         cannot be had
PROMTOOL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/tools
promtool_get() {
	local tmp
	PROMTOOL=$PROMTOOL_DIR/promtool
	[ -x "$PROMTOOL" ] && return 0
	mkdir -p "$PROMTOOL_DIR" && tmp=$(mktemp -d "$PROMTOOL_DIR/prometheus-XXXXXX") || return 1
	# The package itself is not kept: its tree (init.d, ...) has names
	# the Makefile's search for *.d files would take for dependencies.
	if (cd "$tmp" && apt-get download prometheus >download.log 2>&1) &&
		dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root" &&
		mv "$tmp/root/usr/bin/promtool" "$PROMTOOL"; then
		rm -rf "$tmp"
		return 0
	fi
	echo "promtool: cannot fetch it with apt-get download prometheus:" \
		"$(tail -n 3 "$tmp/download.log" 2>/dev/null)" >&2
	rm -rf "$tmp"
	return 1
}
