# promtool (`promtool check metrics`) for the tests, from Debian's
# prometheus package: the package is downloaded (apt-get download), never
# installed (installing it starts a Prometheus server), and unpacked once
# under BUILD/tools/prometheus/.  Sourced after common.sh.
#
#   promtool_get BUILD    sets PROMTOOL to the unpacked binary; returns 1
#                         (and says why) when it cannot be had
promtool_get() {
	local dir=$1/tools/prometheus deb
	PROMTOOL=$dir/root/usr/bin/promtool
	[ -x "$PROMTOOL" ] && return 0
	mkdir -p "$dir" || return 1
	deb=$(ls "$dir"/prometheus_*.deb 2>/dev/null | head -n 1)
	if [ -z "$deb" ]; then
		(cd "$dir" && apt-get download prometheus >"$dir/download.log" 2>&1) || {
			echo "promtool: apt-get download prometheus failed (see $dir/download.log)" >&2
			return 1
		}
		deb=$(ls "$dir"/prometheus_*.deb 2>/dev/null | head -n 1)
	fi
	[ -n "$deb" ] && dpkg-deb -x "$deb" "$dir/root" && [ -x "$PROMTOOL" ] || {
		echo "promtool: cannot unpack ${deb:-the package} into $dir/root" >&2
		return 1
	}
}
