#!/bin/bash
# Install the Debian 12 packages mmtrust needs to build, test and demo.
# Idempotent and quiet when everything is present; needs root otherwise.
set -euo pipefail

PKGS=(
	build-essential pkg-config
	libjansson-dev libsqlite3-dev libssl-dev openssl
	libmnl-dev libnl-3-dev libnl-route-3-dev libsystemd-dev libinih-dev libyaml-dev check
	iproute2 sqlite3 procps jq util-linux python3
	libpq-dev postgresql socat
	clang libclang-rt-14-dev
	liblua5.1-0-dev lua5.1 python3-dev
	strongswan-charon strongswan-swanctl strongswan-pki libstrongswan-standard-plugins
	libstrongswan-extra-plugins
	kamailio kamailio-lua-modules sip-tester
	scdoc groff-base man-db bash-completion
	dpkg-dev debhelper lintian fakeroot systemd
	postgresql libpq-dev
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages and not root: run 'sudo bash scripts/deps.sh'" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
