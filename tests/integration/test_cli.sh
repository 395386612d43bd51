#!/bin/bash
# mmtrustctl against the real daemon: CA files as bytes (DER converted,
# binary and text around the PEM block refused, naming partner.ca, nothing
# changed), per-command options (an option of another command is a usage
# error), --opt=VALUE for every option, --json output that jq reads,
# --help for every command, requests that carry what the user typed (a
# stand-in query socket records them), the table file's size limit.
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"

mm_setup cli
chmod 755 "$MM_TMP"

CTL="$BUILD/mmtrustctl"
# Options, not the environment, must name the sockets below.
unset MMTRUST_ADMIN_SOCKET MMTRUST_QUERY_SOCKET
ADMIN=$MM_TMP/admin.sock
QUERY=$MM_TMP/query.sock
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $ADMIN
query_socket = $QUERY
CONF

ctl() { "$CTL" --socket "$ADMIN" "$@"; }
jq_ok() { jq -e "$1" >/dev/null <<<"$2"; }
table_is() { cmp -s <(ctl export) "$1"; }

make_ca "$MM_TMP" ca-a
make_ca "$MM_TMP" ca-b
openssl x509 -in "$MM_TMP/ca-a.pem" -outform DER -out "$MM_TMP/ca-a.der"

mm_start_daemon 5 "$ADMIN"
wait_for 5 ctl partner list >/dev/null || fail "daemon does not answer"

add() { # add DOMAIN RANGE CA-FILE [more options]
	local d=$1 r=$2 ca=$3
	shift 3
	ctl partner add "$d" --kind ims --agreement yes --range "$r" --gateway 198.51.100.10 \
		--ca "$ca" "$@"
}

# --- CA files: DER is converted to the PEM OpenSSL writes
expect_exit 0 "--ca with a DER file" add der.example 192.0.2.0/24 "$MM_TMP/ca-a.der"
fp=$(openssl x509 -in "$MM_TMP/ca-a.pem" -noout -fingerprint -sha256 | cut -d= -f2)
check "the DER file's certificate is stored" \
	test "$(ctl --json partner show der.example | jq -r .ca_sha256)" = "$fp"
ctl export >"$MM_TMP/der.yaml"
check "exported as the PEM openssl writes, line for line" \
	test "$(sed 's/^ *//' "$MM_TMP/der.yaml" | grep -cxFf "$MM_TMP/ca-a.pem")" = \
	"$(wc -l <"$MM_TMP/ca-a.pem")"
expect_exit 0 "setting the same CA as PEM changes nothing" \
	ctl partner set der.example --ca "$MM_TMP/ca-a.pem"
contains "$OUT" "no changes" "DER and PEM of one certificate are one value"

# --- CA files refused: each names partner.ca and the reason, nothing changes
ctl export >"$MM_TMP/before.yaml"
printf '\000\377' >"$MM_TMP/garbage.bin"
head -c 600 /dev/urandom >>"$MM_TMP/garbage.bin"
echo "hello, not a certificate" >"$MM_TMP/hello.txt"
{ cat "$MM_TMP/ca-b.pem"; echo "this line was pasted too"; } >"$MM_TMP/trailing.pem"
{ echo "subject=CN = ca-b"; cat "$MM_TMP/ca-b.pem"; } >"$MM_TMP/leading.pem"
cat "$MM_TMP/ca-a.pem" "$MM_TMP/ca-b.pem" >"$MM_TMP/two.pem"
cat "$MM_TMP/ca-b.pem" "$MM_TMP/ca-b.key" >"$MM_TMP/with-key.pem"
: >"$MM_TMP/empty.pem"
head -c 200 "$MM_TMP/ca-a.der" >"$MM_TMP/cut.der"
refused_ca() { # refused_ca WHAT FILE REASON
	expect_exit 1 "--ca $1: refused" add bad.example 203.0.113.0/24 "$2"
	contains "$ERR" "partner.ca" "--ca $1: names partner.ca"
	contains "$ERR" "$3" "--ca $1: says why"
}
refused_ca "binary garbage" "$MM_TMP/garbage.bin" "binary data that is not one DER-encoded certificate"
refused_ca "a cut DER file" "$MM_TMP/cut.der" "binary data that is not one DER-encoded certificate"
refused_ca "text" "$MM_TMP/hello.txt" "no '-----BEGIN CERTIFICATE-----' block found"
refused_ca "PEM and text after it" "$MM_TMP/trailing.pem" "text after the '-----END CERTIFICATE-----' line"
refused_ca "text before the PEM" "$MM_TMP/leading.pem" "text before the '-----BEGIN CERTIFICATE-----' line"
refused_ca "two certificates" "$MM_TMP/two.pem" "holds 2 certificates"
refused_ca "a private key beside it" "$MM_TMP/with-key.pem" "private key"
refused_ca "an empty file" "$MM_TMP/empty.pem" "empty"
refused_ca "a missing file" "$MM_TMP/nonexistent.pem" "No such file or directory"
expect_exit 1 "set --ca with trailing text: refused" \
	ctl partner set der.example --ca "$MM_TMP/trailing.pem"
contains "$ERR" "ca: has text after" "set --ca names ca and says why"
check "refused CAs changed nothing" table_is "$MM_TMP/before.yaml"

# --- the table file: ca_file follows the same rule, ca: is judged alike
cat >"$MM_TMP/t.yaml" <<YAML
partners:
  - domain: der.example
    kind: ims
    agreement: true
    ranges: [192.0.2.0/24]
    gateways: [198.51.100.10]
    ca_file: ca-a.der
YAML
expect_exit 0 "apply: ca_file with a DER file" ctl apply "$MM_TMP/t.yaml"
contains "$OUT" "no changes" "a DER ca_file is the same value as the PEM"
sed 's/ca-a.der/garbage.bin/' "$MM_TMP/t.yaml" >"$MM_TMP/t-bin.yaml"
expect_exit 1 "apply: ca_file with binary garbage refused" ctl apply "$MM_TMP/t-bin.yaml"
contains "$ERR" "partners[0].ca_file" "names the ca_file"
contains "$ERR" "binary data" "says why"
sed 's/ca-a.der/trailing.pem/' "$MM_TMP/t.yaml" >"$MM_TMP/t-trail.yaml"
expect_exit 1 "apply: a PEM with text after it refused" ctl apply "$MM_TMP/t-trail.yaml"
contains "$ERR" "ca: has text after the '-----END CERTIFICATE-----' line" "names ca and says why"
check "refused applies changed nothing" table_is "$MM_TMP/before.yaml"

# --- the table file's size limit: refused before anything is sent
{ cat "$MM_TMP/t.yaml"; head -c $((16 * 1024 * 1024)) /dev/zero | tr '\0' '#'; } >"$MM_TMP/big.yaml"
expect_exit 1 "apply of a file over 16 MiB refused" ctl apply "$MM_TMP/big.yaml"
contains "$ERR" "larger than 16777216 bytes, the table file limit" "says the limit"
check "the oversized file changed nothing" table_is "$MM_TMP/before.yaml"

# --- per-command options
expect_exit 2 "partner del --spi: usage error" ctl partner del der.example --spi 1
contains "$ERR" "partner del" "names the command"
contains "$ERR" "'--spi'" "names the option"
expect_exit 2 "partner del --spi=1: usage error" ctl partner del der.example --spi=1
contains "$ERR" "'--spi'" "names the option without its value"
check "the partner was not deleted" table_is "$MM_TMP/before.yaml"
expect_exit 2 "--range on partner show" ctl partner show der.example --range 10.0.0.0/8
expect_exit 2 "--socket on a query command" "$CTL" query inbound 192.0.2.1 --socket "$ADMIN"
expect_exit 2 "--query-socket on an admin command" ctl partner list --query-socket "$QUERY"
expect_exit 2 "--json on export (YAML)" ctl --json export
expect_exit 2 "a flag given a value" ctl partner list --json=yes
contains "$ERR" "option '--json' takes no value" "says so"
expect_exit 2 "an option without its value" ctl partner set der.example --kind
contains "$ERR" "option '--kind' needs a value" "says so"
expect_exit 2 "a single-valued option given twice" \
	ctl partner set der.example --kind ims --kind non-ims
contains "$ERR" "'--kind' given twice" "says so, rather than keep one silently"
expect_exit 2 "--enable with --disable" ctl partner set der.example --enable --disable
expect_exit 2 "an argument that is not UTF-8" ctl partner show $'\xff.example'
check "usage errors changed nothing" table_is "$MM_TMP/before.yaml"

# --- --opt VALUE and --opt=VALUE, before and after the command
expect_exit 0 "--socket=PATH before the command" "$CTL" --socket="$ADMIN" partner list
expect_exit 0 "--socket=PATH after the command" "$CTL" partner list --socket="$ADMIN"
expect_exit 0 "-s PATH after the command" "$CTL" partner list -s "$ADMIN"
expect_exit 0 "--query-socket=PATH before the command" \
	"$CTL" --query-socket="$QUERY" query inbound 192.0.2.1
contains "$OUT" "partner der.example" "answered over that socket"
expect_exit 0 "--query-socket=PATH after the command" \
	"$CTL" query inbound 192.0.2.1 --query-socket="$QUERY"
expect_exit 0 "--query-socket PATH after the command" \
	"$CTL" query outbound der.example --query-socket "$QUERY"
expect_exit 0 "--kind=VALUE" ctl partner set der.example --kind=non-ims --dry-run
contains "$OUT" "kind: ims -> non-ims" "the value after '=' is used"
expect_exit 3 "a wrong --query-socket= is used, not the default" \
	"$CTL" --query-socket="$MM_TMP/nothing.sock" query inbound 192.0.2.1
contains "$ERR" "$MM_TMP/nothing.sock" "names the socket it tried"

# --- --json: the daemon's answers, whole, read by jq
json_ok() { # json_ok WHAT JQ-TEST COMMAND...
	local what=$1 test=$2
	shift 2
	expect_exit 0 "$what" "$@"
	if jq -e "$test" >/dev/null 2>&1 <<<"$OUT"; then pass "$what: jq reads it"; else
		fail "$what: jq '$test' on: $OUT"; fi
}
json_ok "partner list --json" '.partners[0].domain == "der.example"' ctl --json partner list
json_ok "partner show --json" '.reqid > 0' ctl partner show der.example --json
json_ok "partner set --dry-run --json" '.applied == false' ctl --json partner set der.example --esp integrity-only --dry-run
json_ok "apply --dry-run --json" '.changes == []' ctl --json apply --dry-run "$MM_TMP/t.yaml"
json_ok "lookup --json" '.partner == "der.example"' ctl --json lookup 192.0.2.7
json_ok "log --json" '.entries | length > 0' ctl --json log -n 2
json_ok "status --json" '.partners | length == 1' ctl --json status
# no [spd] here: the daemon refuses audit, and says so in JSON
expect_exit 1 "audit --json without a kernel side" ctl --json audit
check "audit --json: the refusal is JSON" jq_ok '.error.code == "unavailable"' "$OUT"
q() { "$CTL" --query-socket "$QUERY" "$@"; }
json_ok "query inbound --json: every member of the answer" \
	'.src == "192.0.2.1" and .partner == "der.example" and has("sa") and has("enabled") and .pai == "strip"' \
	q --json query inbound 192.0.2.1
json_ok "query outbound --json" '.domain == "der.example" and has("tunnel")' q --json query outbound der.example
json_ok "query outbound --dst --json" '.dst == "192.0.2.9"' q --json query outbound --dst 192.0.2.9
json_ok "query spi --json" '.partner == null and .spi == "0x00001234"' q --json query spi 0x1234
# the daemon parses SPIs (one rule, docs/protocol.md); the CLI has none of its own
expect_exit 1 "query spi in a spelling the daemon refuses" q query spi 1234
contains "$ERR" "spi: " "the daemon's refusal names spi"
expect_exit 1 "a refusal with --json" ctl --json partner show nobody.example
check "the refusal is JSON on stdout" jq_ok '.ok == false and .error.code == "not-found"' "$OUT"
"$CTL" --json --query-socket "$QUERY" query watch >"$MM_TMP/watch.out" 2>/dev/null &
WATCH=$!
mm_cleanup_hook() { mm_kill "${WATCH:-}"; }
check "watch --json: live" wait_for 5 grep -q '"subscribed": true' "$MM_TMP/watch.out"
ctl partner set der.example --agreement no >/dev/null
check "watch --json: the change event" wait_for 5 grep -q '"partner-changed"' "$MM_TMP/watch.out"
mm_kill "$WATCH"
WATCH=
check "watch --json: every line is JSON" jq -e . "$MM_TMP/watch.out" >/dev/null

# --- what the user typed reaches the daemon as typed: a stand-in query
# socket records the request and answers like the daemon
python3 - "$MM_TMP/fake.sock" "$MM_TMP/fake.req" <<'PY' &
import json, os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
s.settimeout(10)  # a client that never comes must not hang the test
with open(out, "w") as f:
    for _ in range(2):
        c, _ = s.accept()
        line = c.makefile().readline()
        f.write(line)
        f.flush()
        c.sendall(b'{"ok": true, "result": {"src": "192.0.2.1", "partner": null, "kind": null, '
                  b'"agreement": false, "path": null, "enabled": false, "protected": false, '
                  b'"sa": null, "pai": "strip", "reason": "unknown-source", "future": [1, 2]}}\n')
        c.close()
PY
FAKE=$!
mm_cleanup_hook() { mm_kill "${WATCH:-}"; mm_kill "${FAKE:-}"; }
wait_for 5 test -S "$MM_TMP/fake.sock"
expect_exit 0 "inbound --dst --spi through the stand-in" \
	"$CTL" --json --query-socket "$MM_TMP/fake.sock" query inbound 192.0.2.1 --dst 10.0.0.1 --spi " 0xAbC"
req1=$(sed -n 1p "$MM_TMP/fake.req")
check "request: dst as given" jq_ok '.dst == "10.0.0.1"' "$req1"
check "request: the SPI text as typed, for the daemon to parse" \
	jq_ok '.spi == " 0xAbC" and .src == "192.0.2.1" and .op == "inbound"' "$req1"
check "answer: a member the CLI does not know is printed, not dropped" jq_ok '.future == [1, 2]' "$OUT"
expect_exit 0 "inbound without --dst through the stand-in" \
	"$CTL" --query-socket="$MM_TMP/fake.sock" query inbound 192.0.2.1
check "request: no dst member when none was given" \
	jq_ok 'has("dst") | not' "$(sed -n 2p "$MM_TMP/fake.req")"
wait "$FAKE" 2>/dev/null
FAKE=

# --- --help for every command (and the groups), generated from the parser's table
for c in "" "partner" "query" "partner add" "partner set" "partner del" "partner show" \
	"partner list" apply export lookup log status audit "query inbound" "query outbound" \
	"query spi" "query watch"; do
	expect_exit 0 "mmtrustctl $c --help" "$CTL" $c --help
	contains "$OUT" "Usage: mmtrustctl" "mmtrustctl $c --help: a usage line"
	contains "$OUT" "Exit status" "mmtrustctl $c --help: exit status"
done
expect_exit 0 "query inbound --help documents --dst" "$CTL" query inbound --help
contains "$OUT" "--dst ADDRESS" "--dst listed"
expect_exit 0 "apply --help states the size limit" "$CTL" apply --help
contains "$OUT" "16 MiB" "the limit"
expect_exit 0 "partner del --help lists only its options" "$CTL" partner del --help
case "$OUT" in *--spi* | *--range*) fail "partner del --help lists options it refuses" ;;
*) pass "partner del --help lists only its options" ;; esac

summary "test_cli"
