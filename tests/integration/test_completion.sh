#!/bin/bash
# The bash completion of mmtrustctl (dist/bash-completion/mmtrustctl),
# loaded after bash-completion's helpers as bash-completion loads it, with
# COMP_WORDS/COMP_CWORD set as readline sets them: the commands, a group's
# subcommands, every command's options (exactly those of its --help), the
# fixed values of --kind, --agreement, --esp, --path, --revocation, file
# names for --ca, --crl and -o, and the partners' domains from a real
# mmtrustd.  Without a daemon, or with one that never answers, a domain
# completes to nothing, quickly, and nothing is printed.
set -u
BUILD=$(realpath "${1:-build}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"

mm_setup completion
chmod 755 "$MM_TMP"
CTL=$BUILD/mmtrustctl
unset MMTRUST_ADMIN_SOCKET MMTRUST_QUERY_SOCKET
ADMIN=$MM_TMP/admin.sock
cat >"$MM_TMP/mmtrustd.conf" <<CONF
[daemon]
store = $MM_TMP/store.db
admin_socket = $ADMIN
query_socket = $MM_TMP/query.sock
CONF

# The shell the completions run in: bash-completion's helpers, then the
# file.  It reads one case a line (the words typed, each followed by a
# \x1f; the last is the one under the cursor), sets COMP_WORDS and COMP_CWORD as
# readline does ("--opt=x" split at '='), and prints, per case, what the
# completion offers (on one line).  One shell runs a batch of
# cases: bash-completion takes a while to load.
cat >"$MM_TMP/complete.sh" <<'SH'
source /usr/share/bash-completion/bash_completion
source "$1"
while IFS=$'\x1f' read -r -a typed; do
	COMP_WORDS=()
	for w in "${typed[@]}"; do
		case $w in
		--*=*) COMP_WORDS+=("${w%%=*}" "=" "${w#*=}") ;;
		*) COMP_WORDS+=("$w") ;;
		esac
	done
	[[ ${COMP_WORDS[-1]} == "" && ${COMP_WORDS[-2]:-} == "=" ]] && unset 'COMP_WORDS[-1]'
	COMP_LINE="${typed[*]}"
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_mmtrustctl "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	echo "${COMPREPLY[*]}"
done
SH

# q MODE WANT WORD...: queue a case: TAB after "mmtrustctl WORD..." (the
# last word is the one being completed, "" for a new one) must offer
# exactly the words of WANT (MODE exact), all of them (has) or none of them
# (lacks).  run: complete the queued cases in one shell and check them,
# and that the shell printed nothing on stderr.
Q_CASES=() Q_MODE=() Q_WANT=()
q() {
	local mode=$1 want=$2 line
	shift 2
	printf -v line '%s\x1f' "$CTL" "$@"
	Q_CASES+=("$line") Q_MODE+=("$mode") Q_WANT+=("$want")
}
run() {
	local i got want w ok what
	local -a out
	printf '%s\n' "${Q_CASES[@]}" >"$MM_TMP/cases"
	mapfile -t out < <(cd "$MM_TMP" && bash --norc --noprofile "$MM_TMP/complete.sh" \
		"$ROOT/dist/bash-completion/mmtrustctl" <"$MM_TMP/cases" 2>"$MM_TMP/comp.err")
	if [ -s "$MM_TMP/comp.err" ]; then
		fail "completion printed on stderr: $(cat "$MM_TMP/comp.err")"
	else
		pass "completion printed nothing on stderr (${#Q_CASES[@]} cases)"
	fi
	for i in "${!Q_CASES[@]}"; do
		got=" ${out[i]:-} "
		what=${Q_CASES[i]#"$CTL"$'\x1f'}
		what="'${what//$'\x1f'/ }'"
		want=${Q_WANT[i]//$'\n'/ }
		ok=true
		# exact: the same words, in any order, none twice
		case ${Q_MODE[i]} in
		exact | has) for w in $want; do [[ $got == *" $w "* ]] || ok=false; done ;;
		lacks) for w in $want; do [[ $got != *" $w "* ]] || ok=false; done ;;
		esac
		if [ "${Q_MODE[i]}" = exact ]; then
			# shellcheck disable=SC2206
			local -a g=(${out[i]:-}) v=($want)
			[ ${#g[@]} -eq ${#v[@]} ] || ok=false
		fi
		if $ok; then pass "$what ${Q_MODE[i]} [$want]"; else
			fail "$what offers [${out[i]:-}], want ${Q_MODE[i]} [$want]"; fi
	done
	Q_CASES=() Q_MODE=() Q_WANT=()
}

# --- commands: those of mmtrustctl --help, groups once
"$CTL" --help | sed -n '/^Commands:/,/^$/p' | grep -E '^  [a-z]' >"$MM_TMP/commands"
sed -E 's/^  ([a-z]+( [a-z]+)?)( {2,}.*)?$/\1/' "$MM_TMP/commands" >"$MM_TMP/cmds"
check "mmtrustctl --help lists commands" grep -qx "partner add" "$MM_TMP/cmds"
q exact "$(awk '{print $1}' "$MM_TMP/cmds" | sort -u)" ""
q has "partner query apply export status log reload lookup audit" ""
q exact partner pa
q exact "add del list set show" partner ""
q exact "set show" partner s
q exact "inbound outbound spi watch" query ""
q exact "--socket --query-socket --json --help --version" --
q has "-s -j -h -V --socket" -
q exact apply --json ap
q exact "" partner add-no-such ""

# --- options: exactly each command's --help, nothing of another command
long_opts() {
	local l on=false re='^  (-[A-Za-z], |    )(--[a-z][a-z-]*)'
	while IFS= read -r l; do
		case $l in Options*) on=true ;; "") on=false ;; esac
		$on && [[ $l =~ $re ]] && echo "${BASH_REMATCH[2]}"
	done
}
q has "--range --gateway --kind --agreement --ca" partner add --
q lacks "--add-range --spi --output --allow-shrink" partner add --
while read -r c; do
	# shellcheck disable=SC2086
	q exact "$("$CTL" $c --help | long_opts)" $c --
done <"$MM_TMP/cmds"
q exact --dry-run partner add --dr
q exact "--add-range --add-gateway --add-crl" partner set x --add
q exact "-o" export -o

# --- option values
q exact "ims non-ims" partner add --kind ""
q exact non-ims partner add --kind n
q exact "ims non-ims" partner add --kind=
q exact non-ims partner set x --kind=no
q exact "yes no" partner add --agreement ""
q exact "encrypt integrity-only" partner add --esp ""
q exact "tunnel seg" partner set x --path ""
q exact "strict ifuri relaxed" partner add --revocation ""
q exact ifuri partner set x --revocation=i
touch "$MM_TMP/ca-partner.pem" "$MM_TMP/crl-partner.crl"
q exact "$MM_TMP/ca-partner.pem" partner add --ca "$MM_TMP/ca-"
q exact "$MM_TMP/crl-partner.crl" partner add --crl "$MM_TMP/crl-"
q exact "$MM_TMP/crl-partner.crl" partner set x --add-crl "$MM_TMP/crl-"
q exact "$MM_TMP/ca-partner.pem" export -o "$MM_TMP/ca-"
q exact "$MM_TMP/ca-partner.pem" export --output="$MM_TMP/ca-"
q exact "$MM_TMP/ca-partner.pem" apply "$MM_TMP/ca-"
q exact "" partner add --range ""
q exact "" query inbound ""
q exact "" partner add ""
run

# --- no daemon: no domains, nothing printed, no waiting
q exact "" partner show ""
q exact "" --socket "$ADMIN" partner del ""
q exact "" status ""
t0=$(date +%s%N)
run
ms=$((($(date +%s%N) - t0) / 1000000))
check "without a daemon domains complete at once ($ms ms)" test "$ms" -lt $((3000 * MM_SLOW))

# --- a daemon that accepts but never answers: nothing, within about a second
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
held = []
while True:
    held.append(s.accept())
' "$MM_TMP/hung.sock" &
HUNG=$!
mm_cleanup_hook() { mm_kill "$HUNG"; }
wait_for 5 test -S "$MM_TMP/hung.sock" || fail "the silent socket did not appear"
q exact "" --socket "$MM_TMP/hung.sock" partner show ""
t0=$(date +%s%N)
run
ms=$((($(date +%s%N) - t0) / 1000000))
check "a daemon that never answers costs about a second ($ms ms)" test "$ms" -lt $((3000 * MM_SLOW))
mm_kill "$HUNG"
HUNG=

# --- a real daemon with two partners
make_ca "$MM_TMP" ca
mm_start_daemon 5 "$ADMIN"
wait_for 5 "$CTL" --socket "$ADMIN" partner list >/dev/null || fail "daemon does not answer"
A=ims.partner-a.example
B=voice.partner-b.example
"$CTL" --socket "$ADMIN" partner add $A --kind ims --agreement yes --range 192.0.2.0/24 \
	--gateway 203.0.113.1 --ca "$MM_TMP/ca.pem" >/dev/null || fail "partner add $A"
"$CTL" --socket "$ADMIN" partner add $B --kind non-ims --agreement no --range 198.51.100.0/24 \
	--gateway 203.0.113.2 --ca "$MM_TMP/ca.pem" >/dev/null || fail "partner add $B"
q exact "$A $B" --socket "$ADMIN" partner show ""
q exact "$B" --socket "$ADMIN" partner set v
q exact "$A $B" partner del --socket "$ADMIN" ""
q exact "$A $B" -s "$ADMIN" status ""
q exact "$A $B" --socket="$ADMIN" log --domain ""
q exact "$A $B" --socket "$ADMIN" query outbound ""
q exact "" --socket "$ADMIN" partner show $A ""
q exact "" --socket "$ADMIN" partner add ""
q exact "ims non-ims" --socket "$ADMIN" partner set $A --kind ""
run
export MMTRUST_ADMIN_SOCKET=$ADMIN
q exact "$A $B" partner show ""
q exact "$A" partner show i
run
unset MMTRUST_ADMIN_SOCKET
q exact "" partner show ""
run

summary test_completion
