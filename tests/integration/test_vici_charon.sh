#!/bin/bash
# vici-plugins against a real charon (tests/integration/vici_charon.c):
# the client in a real sd-event loop, load-conn, list-sas, events, a
# reconnect after charon is killed.  charon runs in private network and
# mount namespaces the test makes; root and strongswan-charon are needed
# (it fails, never skips, without them).
set -u
BUILD=$(realpath "${1:-build}")
BIN=$BUILD/tests/integration/vici_charon
if [ ! -x "$BIN" ]; then
	echo "FAIL: $BIN missing (make integration builds it)" >&2
	exit 1
fi
CK_FORK=yes "$BIN"
