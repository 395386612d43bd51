#!/bin/bash
# The manual pages (doc/man/*.scd, make man) against the programs they
# describe: each page renders with groff and man without a warning and
# within 80 columns, has its sections, mmtrustd.conf(5) names every key the
# configuration parser accepts (read from daemon/config.c, checked against
# mmtrustd --check-config) and no key it refuses, and mmtrustctl(8) has a
# section for every command `mmtrustctl --help` lists, naming every option
# that command's --help lists.  The checks must fail on a page with a key,
# a command, an option missing or a roff error: they run on broken copies
# too.
set -u
BUILD=$(realpath "${1:-build}")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/common.sh"

MM_TMP=$(mktemp -d /tmp/mmtrust-manpages-XXXXXX)
trap 'rm -rf "$MM_TMP"' EXIT
CTL=$BUILD/mmtrustctl
DAEMON=$BUILD/mmtrustd
MAN=$BUILD/man
PAGES="mmtrustd.8 mmtrustctl.8 mmtrustd.conf.5 mmtrust-protocol.7"
export LC_ALL=C.UTF-8

make -s -C "$ROOT" BUILD="$BUILD" man >"$MM_TMP/make.log" 2>&1 ||
	{ cat "$MM_TMP/make.log" >&2; fail "make man"; summary test_manpages; exit 1; }
for p in $PAGES; do
	check "make man built $p" test -s "$MAN/$p"
done

# render_check PAGE: groff and man render PAGE without a word on stderr
# (every groff warning on: -ww), and no line is wider than 80 columns.
# Prints what is wrong; fails if anything is.
render_check() {
	local page=$1 bad=0 out
	out=$(groff -ww -man -Tutf8 -z "$page" 2>&1)
	[ -z "$out" ] || { echo "groff -ww: $out"; bad=1; }
	out=$(MANWIDTH=80 MANPAGER=cat PAGER=cat man --warnings -l "$page" 2>&1 >"$MM_TMP/render.txt")
	[ -z "$out" ] || { echo "man -l: $out"; bad=1; }
	[ -s "$MM_TMP/render.txt" ] || { echo "man -l printed nothing"; bad=1; }
	out=$(awk 'length > 80' "$MM_TMP/render.txt")
	[ -z "$out" ] || { echo "wider than 80 columns: $out"; bad=1; }
	return $bad
}

# text PAGE: the page as plain text, one paragraph a line (no line breaks,
# so no hyphenation, inside a paragraph), for the content checks.
text() {
	groff -man -Tutf8 -rLL=2000n -rHY=0 -P-cbou "$1" 2>/dev/null
}

for p in $PAGES; do
	if why=$(render_check "$MAN/$p"); then pass "$p renders cleanly"; else fail "$p: $why"; fi
	text "$MAN/$p" >"$MM_TMP/$p.txt"
	heads="NAME SYNOPSIS DESCRIPTION"
	case $p in *.8) heads="$heads EXIT STATUS" ;; esac
	body=$'\n'$(<"$MM_TMP/$p.txt")$'\n'
	for h in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" "SEE ALSO"; do
		case " $heads SEE ALSO " in *" $h "*) ;; *) continue ;; esac
		case $body in *$'\n'"$h"$'\n'*) pass "$p has $h" ;; *) fail "$p has no $h section" ;; esac
	done
done

# --- the configuration keys: read from the parser's table, each one
# confirmed by the parser itself (a bogus value is refused for its value,
# not as an unknown setting), and a made-up key refused as unknown, so the
# list below is the parser's.
grep -oE 'KEY\("[a-z_]+", *"[a-z_]+"\)' "$ROOT/daemon/config.c" |
	sed -E 's/KEY\("([a-z_]+)", *"([a-z_]+)"\)/\1.\2/' | sort -u >"$MM_TMP/keys"
nkeys=$(wc -l <"$MM_TMP/keys")
check "daemon/config.c's key table read ($nkeys keys)" test "$nkeys" -ge 30

# known SECTION.KEY: does mmtrustd's parser take the key (whatever it says
# of the value)?
# (The store a --check-config names is only looked for, in $MM_TMP.)
known() {
	local out
	printf '[%s]\n%s = zz-not-a-value\n' "${1%%.*}" "${1#*.}" >"$MM_TMP/one.conf"
	out=$(cd "$MM_TMP" && "$DAEMON" --check-config --config "$MM_TMP/one.conf" 2>&1)
	[[ $out != *"unknown setting"* ]]
}
if known daemon.no_such_key; then
	fail "mmtrustd takes a made-up key: the key check below would prove nothing"
else
	pass "the parser refuses a made-up key as unknown"
fi
while read -r k; do
	known "$k" || fail "$k, read from daemon/config.c, is refused by mmtrustd as unknown"
done <"$MM_TMP/keys"

# conf_keys TEXT: the SECTION.KEY terms of mmtrustd.conf(5): a key is a
# term line "       key = ..." under a subsection "   [section]".
conf_keys() {
	awk '/^   \[[a-z_]+\]$/ { s = substr($1, 2, length($1) - 2); next }
	     /^[^ ]/ { s = "" }
	     s != "" && /^       [a-z_]+ = / { print s "." $1 }' "$1" | sort -u
}

# conf_check TEXT: every parser key is in the page, every key of the page
# is the parser's.  Prints what is wrong.
conf_check() {
	local bad=0 k
	conf_keys "$1" >"$MM_TMP/page-keys"
	for k in $(comm -23 "$MM_TMP/keys" "$MM_TMP/page-keys"); do
		echo "mmtrustd.conf(5) does not describe $k"
		bad=1
	done
	for k in $(comm -13 "$MM_TMP/keys" "$MM_TMP/page-keys"); do
		if ! known "$k"; then echo "mmtrustd.conf(5) describes $k, which mmtrustd refuses"; bad=1; fi
	done
	return $bad
}
if why=$(conf_check "$MM_TMP/mmtrustd.conf.5.txt"); then
	pass "mmtrustd.conf(5) describes every key"
else
	fail "$why"
fi

# --- mmtrustctl's commands and options, from its own help.
"$CTL" --help >"$MM_TMP/help" 2>&1
sed -n '/^Commands:/,/^$/p' "$MM_TMP/help" | grep -E '^  [a-z]' |
	sed -E 's/^  ([a-z]+( [a-z]+)?)( {2,}.*)?$/\1/' >"$MM_TMP/commands"
check "mmtrustctl --help lists commands ($(wc -l <"$MM_TMP/commands"))" \
	test "$(wc -l <"$MM_TMP/commands")" -ge 10
# opts_of HELP: the long options of the help's option blocks, one a line.
opts_of() {
	local l on=false re='^  (-[A-Za-z], |    )(--[a-z][a-z-]*)'
	while IFS= read -r l; do
		case $l in Options*) on=true ;; "") on=false ;; esac
		$on && [[ $l =~ $re ]] && echo "${BASH_REMATCH[2]}"
	done <<<"$1"
}
# The options before the command, which every command shares.
opts_of "$(<"$MM_TMP/help")" >"$MM_TMP/global"
check "mmtrustctl --help lists the global options" grep -qx -- --socket "$MM_TMP/global"
declare -A GLOBAL=()
while read -r o; do GLOBAL[$o]=1; done <"$MM_TMP/global"

# Each command's own options (its --help, less the global ones), once.
while read -r c; do
	# shellcheck disable=SC2086
	opts_of "$("$CTL" $c --help)" | while read -r o; do
		[ -n "${GLOBAL[$o]:-}" ] || echo "$o"
	done >"$MM_TMP/opts-${c/ /-}"
done <"$MM_TMP/commands"

# has_word TEXT WORD: WORD appears, not as part of a longer option
# (--range is not --add-range).
has_word() {
	local re="(^|[^a-z-])$2([^a-z-]|\$)"
	[[ $1 =~ $re ]]
}

# sections TEXTFILE: the subsections of COMMANDS into SEC[NAME] (the text
# from "   NAME" up to the next heading).
declare -A SEC
sections() {
	local line name="" on=0
	SEC=()
	while IFS= read -r line; do
		if [[ $line == COMMANDS ]]; then on=1; continue; fi
		((on)) || continue
		[[ $line == [^\ ]* ]] && break
		if [[ $line == "   "[^\ ]* ]]; then name=${line#   }; SEC[$name]=" "; continue; fi
		[ -n "$name" ] && SEC[$name]+="$line"$'\n'
	done <"$1"
}

# ctl_check TEXT: a section per command naming each of its options, the
# global options under OPTIONS, and no section for a command mmtrustctl
# does not have.  Prints what is wrong.
ctl_check() {
	local bad=0 c o sec opts
	opts=$(awk '/^OPTIONS$/ { on = 1; next } on && /^[^ ]/ { exit } on' "$1")
	for o in $(cat "$MM_TMP/global"); do
		has_word "$opts" "$o" || { echo "mmtrustctl(8) OPTIONS does not describe $o"; bad=1; }
	done
	sections "$1"
	while read -r c; do
		sec=${SEC[$c]:-}
		if [ -z "$sec" ]; then
			echo "mmtrustctl(8) has no section for the command '$c'"
			bad=1
			continue
		fi
		while read -r o; do
			has_word "$sec" "$o" || { echo "mmtrustctl(8) '$c' does not describe $o"; bad=1; }
		done <"$MM_TMP/opts-${c/ /-}"
	done <"$MM_TMP/commands"
	for c in "${!SEC[@]}"; do
		grep -qx "$c" "$MM_TMP/commands" ||
			{ echo "mmtrustctl(8) describes '$c', which mmtrustctl --help does not list"; bad=1; }
	done
	return $bad
}
if why=$(ctl_check "$MM_TMP/mmtrustctl.8.txt"); then
	pass "mmtrustctl(8) describes every command and option"
else
	fail "$why"
fi

# --- the checks fail on broken pages: a copy of a page without one line.
# broken SCD PATTERN: the page of doc/man/SCD without the first line that
# matches PATTERN, built and rendered as text into $MM_TMP/broken.txt.
broken() {
	local n
	n=$(grep -n -m1 -- "$2" "$ROOT/doc/man/$1" | cut -d: -f1)
	[ -n "$n" ] || { fail "no line '$2' in doc/man/$1 to remove"; return 1; }
	sed "${n}d" "$ROOT/doc/man/$1" | scdoc >"$MM_TMP/broken.roff" &&
		text "$MM_TMP/broken.roff" >"$MM_TMP/broken.txt"
}
if broken mmtrustd.conf.5.scd '^\*dpd_delay\*'; then
	why=$(conf_check "$MM_TMP/broken.txt") && fail "a page without dpd_delay passes"
	contains "$why" "does not describe ike.dpd_delay" "a missing key is found and named"
fi
if broken mmtrustctl.8.scd '^## query spi$'; then
	why=$(ctl_check "$MM_TMP/broken.txt") && fail "a page without 'query spi' passes"
	contains "$why" "no section for the command 'query spi'" "a missing command is found and named"
fi
if broken mmtrustctl.8.scd '^\*--add-crl\*'; then
	why=$(ctl_check "$MM_TMP/broken.txt") && fail "a page without --add-crl passes"
	contains "$why" "'partner set' does not describe --add-crl" "a missing option is found and named"
fi
if broken mmtrustctl.8.scd '^\*-V\*, \*--version\*'; then
	why=$(ctl_check "$MM_TMP/broken.txt") && fail "a page without --version passes"
	contains "$why" "OPTIONS does not describe --version" "a missing global option is found and named"
fi
# a key the parser does not know, described as if it were one
sed 's/^\*dpd_delay\* = /*dpd_delay_typo* = /' "$ROOT/doc/man/mmtrustd.conf.5.scd" | scdoc |
	text /dev/stdin >"$MM_TMP/broken.txt"
why=$(conf_check "$MM_TMP/broken.txt") && fail "a page with a key mmtrustd refuses passes"
contains "$why" "describes ike.dpd_delay_typo, which mmtrustd refuses" "a key of the page's own is found"
# a roff error, and a line too wide
{ cat "$MAN/mmtrustd.8"; echo '\*[no-such-string]'; } >"$MM_TMP/bad.8"
why=$(render_check "$MM_TMP/bad.8") && fail "a page with a roff warning renders cleanly"
contains "$why" "no-such-string" "a roff warning is found"
{ cat "$MAN/mmtrustd.8"; printf '.nf\n%090d\n.fi\n' 0; } >"$MM_TMP/wide.8"
why=$(render_check "$MM_TMP/wide.8") && fail "a page wider than 80 columns passes"
contains "$why" "wider than 80 columns" "a line over 80 columns is found"

summary test_manpages
