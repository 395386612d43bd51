#!/bin/bash
# A fleet on PostgreSQL (docs/operations.md, "A fleet on PostgreSQL"):
# three mmtrustd, h1 h2 h3, each in a network namespace of its own with its
# own configuration (sockets, [local] addresses, a fake charon) and one
# private PostgreSQL cluster (tests/lib/pg.sh) as their shared store.
#  a. a partner added on h1 is in all three kernels, with the same reqid,
#     within FLEET_BOUND_MS (3 s); deleted on h2, gone from all three as fast;
#  b. the database stopped: every change on every host is refused (exit 1,
#     "unreachable"), nothing queued; status says connected false,
#     `status --check` exits 4, every kernel's policies and the answers stay
#     as they were, byte for byte; a daemon cannot start; the database back:
#     every host reconnects, a change made at once reaches all three;
#  c. h1 and h2 change the same partner 100 times each at once: every change
#     is applied (exit 0) or refused as a conflict (exit 1, "changed on
#     another host", nothing applied); the audit trail holds exactly the
#     applied ones, with their host; all three tables and kernels end equal
#     to the database's;
#  d. the model test (tests/model/model.py) on a PostgreSQL store
#     (test_model.sh with MODEL_STORE=postgresql; FLEET_MODEL_STEPS steps).
set -u
BUILD=$(realpath "${1:-build}")
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/pg.sh"

BOUND_MS=$((${FLEET_BOUND_MS:-3000} * MM_SLOW))
FAKE=$(realpath "$(dirname "$0")/fake_charon.py")
CTL="$BUILD/mmtrustctl"
HOSTS="1 2 3"
mm_setup fleet
NSH=() CHARONS=() DPIDS=()
mm_cleanup_hook() {
	local i
	for i in 1 2 3 4; do
		mm_kill "${DPIDS[$i]:-}"
		mm_kill "${CHARONS[$i]:-}"
		ip netns del "${NSH[$i]:-none}" 2>/dev/null
	done
	pg_down
}
pg_up "$MM_TMP/pg" || { fail "pg_up: no PostgreSQL cluster"; summary test_fleet; exit 1; }
make_ca "$MM_TMP" ca
make_leaf "$MM_TMP" home
bulk_table "$MM_TMP/one.yaml" 1 ca.pem

# C I ARGS...: mmtrustctl on host I
C() { local i=$1; shift; "$CTL" -s "$MM_TMP/h$i/admin.sock" "$@"; }
# write_conf I: host I's configuration (its sockets, addresses, name)
write_conf() {
	local i=$1 d=$MM_TMP/h$1
	mkdir -p "$d"
	cat >"$d/mmtrustd.conf" <<CONF
[daemon]
store = $PG_URI
store_password_file = $PG_PASSWORD_FILE
host_name = h$i
admin_socket = $d/admin.sock
query_socket = $d/query.sock
expiry_warning_days = 0
[reqid]
min = 2000
max = 2999
[local]
cscf = 10.10.$i.0/24
tunnel = 198.51.100.$i
[ike]
enabled = yes
vici_socket = $d/charon.vici
certificate = $MM_TMP/home.pem
private_key = $MM_TMP/home.key
CONF
}
# host_up I: namespace, addresses, a foreign policy, fake charon, daemon
host_up() {
	local i=$1 d=$MM_TMP/h$1 ns=mmtrust-fleet$1-$$
	NSH[$i]=$ns
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" link add mmtun0 type veth peer name mmtun1
	ip -n "$ns" addr add "198.51.100.$i/24" dev mmtun0
	ip -n "$ns" addr add "10.10.$i.5/24" dev mmtun0
	ip -n "$ns" link set mmtun0 up && ip -n "$ns" link set mmtun1 up
	# another program's policy: never touched
	ip -n "$ns" xfrm policy add src 10.10.$i.0/24 dst 100.127.0.0/16 dir out priority 10 \
		tmpl src 198.51.100.$i dst 100.127.0.1 proto esp reqid 7 mode tunnel
	write_conf "$i"
	python3 "$FAKE" "$d/charon.vici" "$d/charon.ready" 2>>"$d/charon.log" &
	CHARONS[$i]=$!
	wait_for 20 test -e "$d/charon.ready" || fail "h$i: the fake charon did not start"
	ip netns exec "$ns" "$BUILD/mmtrustd" --foreground --config "$d/mmtrustd.conf" \
		2>>"$d/daemon.log" &
	DPIDS[$i]=$!
	wait_for 10 C "$i" partner list >/dev/null ||
		{ fail "h$i: the daemon does not answer: $(tail -3 "$d/daemon.log")"; return 1; }
}
# metric I NAME OP VALUE: host I's metric NAME compares so with VALUE
metric() {
	C "$1" metrics | awk -v n="$2" -v op="$3" -v v="$4" '$1 == n {
		ok = op == "==" ? $2 == v : op == ">=" ? $2 >= v : 0 } END { exit !ok }'
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# kernel I: "reqid range dir" for each of mmtrust's policies in host I's
# kernel (the partner's side of the selector), sorted; the foreign policy
# (reqid 7) left out
kernel() {
	ip -n "${NSH[$1]}" xfrm policy | awk '
		/^src/ { s = $2; d = $4 } $1 == "dir" { dir = $2 }
		/reqid/ { for (i = 1; i < NF; i++) if ($i == "reqid" && $(i+1) != 7)
			print $(i+1), (dir == "in" ? s : d), dir }' | sort
}
# want_kernel I: what kernel I must show for host I's table
want_kernel() {
	C "$1" --json partner list | jq -r '.partners[] | select(.enabled and .path == "tunnel") |
		.reqid as $r | .ranges[] | "\($r) \(.) in", "\($r) \(.) out"' | sort
}
# table I: host I's table, one partner a line (no per-host fields)
table() { C "$1" --json partner list | jq -c '.partners | sort_by(.domain) | .[] | del(.state, .policies, .tunnel, .sas)'; }
# the database's own table, domain and reqid and ranges (the store's tables)
db_table() {
	pg_psql "SELECT domain || ' ' || reqid FROM partners ORDER BY domain"
}
foreign_kept() { # foreign_kept I
	ip -n "${NSH[$1]}" xfrm policy | grep -q "reqid 7 mode tunnel"
}
# converged: the three hosts enforce one table version, their tables are
# equal and each kernel is its table
converged() {
	local i v
	v=$(C 1 --json status | jq -r .store.version)
	for i in $HOSTS; do
		[ "$(C "$i" --json status | jq -r .store.version)" = "$v" ] || return 1
		[ "$(table "$i")" = "$(table 1)" ] || return 1
		[ "$(kernel "$i")" = "$(want_kernel "$i")" ] || return 1
	done
}
# in_all_kernels REQID RANGE: the partner's two policies in every kernel
in_all_kernels() {
	local i
	for i in $HOSTS; do in_kernel "$i" "$@" || return 1; done
}
# arrivals COND ARGS...: from $t0, poll `COND I ARGS` for each host every
# 10 ms until it holds on all (at most BOUND_MS + 2 s); sets ARR[I] to the
# ms it took on host I (unset: never), TOOK to the longest and ROUND to
# the longest poll of the hosts (the resolution, with the 10 ms)
# (one `ip xfrm policy` per poll: in_kernel I REQID RANGE, not_in_kernel I RANGE)
in_kernel() {
	local p
	p=$(ip -n "${NSH[$1]}" xfrm policy)
	[[ $p == *"src $3 "*"reqid $2 mode"* && $p == *"dst $3 "*"reqid $2 mode"* ]]
}
not_in_kernel() { [[ $(ip -n "${NSH[$1]}" xfrm policy) != *" $2 "* ]]; }
arrivals() {
	local cond=$1 i n r0
	shift
	ARR=() TOOK=-1 ROUND=0
	while :; do
		r0=$(now_ms)
		n=0
		for i in $HOSTS; do
			[ -z "${ARR[$i]:-}" ] && "$cond" "$i" "$@" && ARR[$i]=$(($(now_ms) - t0))
			[ -n "${ARR[$i]:-}" ] && n=$((n + 1))
		done
		[ $(($(now_ms) - r0)) -gt "$ROUND" ] && ROUND=$(($(now_ms) - r0))
		[ "$n" -eq 3 ] && break
		[ $(($(now_ms) - t0)) -ge $((BOUND_MS + 2000)) ] && return 1
		sleep 0.01
	done
	TOOK=$(printf '%s\n' "${ARR[@]}" | sort -n | tail -1)
}
add() { # add I DOMAIN RANGE GATEWAY [KIND AGREEMENT]
	C "$1" partner add "$2" --kind "${5:-ims}" --agreement "${6:-yes}" --range "$3" \
		--gateway "$4" --ca "$MM_TMP/ca.pem"
}
check_ok() { C "$1" status --check >/dev/null; }

# --- configuration: no password in the URI ---------------------------------------------------
write_conf 1
pw=$(head -1 "$PG_PASSWORD_FILE")
sed "s|^store = postgresql:///|store = postgresql://mmtrust:$pw@/|" "$MM_TMP/h1/mmtrustd.conf" \
	>"$MM_TMP/pwuri.conf"
check "the URI with a password is written as intended" grep -qF ":$pw@/" "$MM_TMP/pwuri.conf"
expect_exit 1 "a password inside the store URI is refused" \
	"$BUILD/mmtrustd" --check-config --config "$MM_TMP/pwuri.conf"
contains "$ERR$OUT" "daemon.store" "the refusal names daemon.store"
check "the refusal does not show the password" sh -c "! printf '%s' \"\$1\" | grep -qF -- '$pw'" _ "$ERR$OUT"
expect_exit 0 "--check-config with the URI and the password file" \
	"$BUILD/mmtrustd" --check-config --config "$MM_TMP/h1/mmtrustd.conf"

# --- three hosts ---------------------------------------------------------------------------------
for i in $HOSTS; do host_up "$i" || { summary test_fleet; exit 1; }; done
store_ok() { # store_ok I
	C "$1" --json status | jq -e --arg h "h$1" '.store.backend == "postgresql" and
		.store.connected == true and .store.error == null and .store.since == null and
		.store.host == $h and (.store.name | test("mmtrust")) and .store.version >= 0' >/dev/null
}
for i in $HOSTS; do
	check "h$i: store backend postgresql, connected, as host h$i" store_ok "$i"
done

# --- a. one change reaches every kernel -----------------------------------------------------------
expect_exit 0 "a: partner added on h1" add 1 a.fleet.example 192.0.2.0/24 203.0.113.10
t0=$(now_ms)
R=$(printf '%s' "$OUT" | grep -o 'reqid [0-9]*' | awk '{print $2}')
check "a: h1 gives it a reqid (${R:=0})" test "$R" -ge 2000 -a "$R" -le 2999
arrivals in_kernel "$R" 192.0.2.0/24
echo "fleet: a partner added on h1 is in all three kernels after $TOOK ms" \
	"(h1 ${ARR[1]:--} h2 ${ARR[2]:--} h3 ${ARR[3]:--} ms after mmtrustctl returned; resolution $((ROUND + 10)) ms)"
check "a: in all three kernels with reqid $R within $BOUND_MS ms (took $TOOK ms)" \
	test "$TOOK" -ge 0 -a "$TOOK" -lt "$BOUND_MS"
for i in $HOSTS; do
	check "a: h$i lists it with reqid $R" \
		test "$(C "$i" --json partner list | jq -r '.partners[] | select(.domain == "a.fleet.example") | .reqid')" = "$R"
	check "a: h$i's kernel holds nothing else of ours" test "$(kernel "$i" | awk '{print $1}' | sort -u)" = "$R"
done
check "a: h1 shows it with that reqid" test "$(C 1 --json partner show a.fleet.example | jq .reqid)" = "$R"
check "a: the database holds it with reqid $R" test "$(db_table)" = "a.fleet.example $R"
expect_exit 0 "a: deleted on h2" C 2 partner del a.fleet.example
t0=$(now_ms)
arrivals not_in_kernel 192.0.2.0/24
echo "fleet: a partner deleted on h2 is gone from all three kernels after $TOOK ms" \
	"(h1 ${ARR[1]:--} h2 ${ARR[2]:--} h3 ${ARR[3]:--} ms; resolution $((ROUND + 10)) ms)"
check "a: gone from all three kernels within $BOUND_MS ms (took $TOOK ms)" \
	test "$TOOK" -ge 0 -a "$TOOK" -lt "$BOUND_MS"
for i in $HOSTS; do
	check "a: h$i's foreign policy untouched" foreign_kept "$i"
	check "a: h$i's table is empty" test -z "$(table "$i")"
done

# --- b. the database away -----------------------------------------------------------------------
expect_exit 0 "b: two partners added on h3" add 3 b1.fleet.example 192.0.2.0/24 203.0.113.11
expect_exit 0 "b: second" add 3 b2.fleet.example 198.18.0.0/24 203.0.113.12 non-ims no
all_ok() { local i; for i in $HOSTS; do check_ok "$i" || return 1; done; }
check "b: converged" wait_for 10 converged
check "b: all three hosts OK (status --check exit 0) before" wait_for 10 all_ok
for i in $HOSTS; do
	ip -s -n "${NSH[$i]}" xfrm policy >"$MM_TMP/h$i/policy.before"
	C "$i" lookup 192.0.2.9 >"$MM_TMP/h$i/lookup.before"
done
v_before=$(C 1 --json status | jq .store.version)
check "pg_stop" pg_stop
t_stop=$(now_ms)
disconnected() { C "$1" --json status | jq -e '.store.connected == false and .store.error != null and .store.since != null' >/dev/null; }
for i in $HOSTS; do
	expect_exit 1 "b: h$i: partner add refused" add "$i" q$i.fleet.example 203.0.113.128/25 203.0.113.13
	contains "$ERR" "unreachable" "b: h$i: the refusal says unreachable"
	contains "$ERR" "nothing is queued" "b: h$i: and that nothing is queued"
	expect_exit 1 "b: h$i: partner set refused" C "$i" partner set b1.fleet.example --range 192.0.3.0/24
	contains "$ERR" "unreachable" "b: h$i: set: unreachable"
	expect_exit 1 "b: h$i: partner disable refused" C "$i" partner set b2.fleet.example --disable
	expect_exit 1 "b: h$i: partner del refused" C "$i" partner del b1.fleet.example
	contains "$ERR" "unreachable" "b: h$i: del: unreachable"
	expect_exit 1 "b: h$i: apply refused" C "$i" apply --allow-shrink "$MM_TMP/one.yaml"
	contains "$ERR" "unreachable" "b: h$i: apply: unreachable"
	check "b: h$i: status says connected false, with the error and since when" wait_for 5 disconnected "$i"
	expect_exit 4 "b: h$i: status --check is a WARNING (4)" C "$i" status --check
	contains "$OUT" "unreachable" "b: h$i: the check says the store is unreachable"
	check "b: h$i: mmtrust_store_connected 0" metric "$i" mmtrust_store_connected == 0
	check "b: h$i: the answers unchanged" cmp -s <(C "$i" lookup 192.0.2.9) "$MM_TMP/h$i/lookup.before"
	check "b: h$i: the table as it was" test "$(C "$i" --json status | jq .store.version)" = "$v_before"
done
# a start while the database is away: refused, and its kernel untouched
NSH[4]=mmtrust-fleet4-$$
ip netns add "${NSH[4]}"
write_conf 4
expect_exit 1 "b: a daemon cannot start while the database is away" timeout 15 \
	ip netns exec "${NSH[4]}" "$BUILD/mmtrustd" --foreground --config "$MM_TMP/h4/mmtrustd.conf"
check "b: it says why (unreachable or cannot connect)" sh -c "printf '%s' \"\$1\" | grep -qiE 'unreachable|connect'" _ "$ERR"
check "b: and left its kernel empty" test -z "$(ip -n "${NSH[4]}" xfrm policy)"
# let the back-off retry a few times, then compare byte for byte
sleep 1.5
for i in $HOSTS; do
	check "b: h$i: every kernel policy byte-identical through the outage" \
		cmp -s <(ip -s -n "${NSH[$i]}" xfrm policy) "$MM_TMP/h$i/policy.before"
	check "b: h$i: the log says unreachable" grep -q "store: .*unreachable" "$MM_TMP/h$i/daemon.log"
done
echo "fleet: the database was away $(($(now_ms) - t_stop)) ms"
check "pg_start" pg_start
t0=$(now_ms)
# a change at once, on the first host that is back
first=
connected() { C "$1" --json status | jq -e '.store.connected == true' >/dev/null; }
any_back() { local i; for i in $HOSTS; do connected "$i" && { echo "$i"; return 0; }; done; return 1; }
for _ in $(seq 300); do first=$(any_back) && break; sleep 0.05; done
check "b: a host is back within 15 s" test -n "$first"
expect_exit 0 "b: a change on h${first:-?} right after the restart" \
	C "${first:-1}" partner set b1.fleet.example --range 192.0.3.0/24
all_back() { local i; for i in $HOSTS; do connected "$i" || return 1; done; }
check "b: every host reconnects (back-off at most 10 s)" wait_for 15 all_back
echo "fleet: all hosts reconnected $(($(now_ms) - t0)) ms after the database came back"
check "b: the change reaches all three kernels" wait_for 5 in_all_kernels \
	"$(C 1 --json partner list | jq -r '.partners[] | select(.domain == "b1.fleet.example") | .reqid')" 192.0.3.0/24
check "b: converged on the database's table" wait_for 5 converged
for i in $HOSTS; do
	check "b: h$i: nothing of the refused changes was queued" \
		test "$(table "$i" | jq -r .domain | tr '\n' ' ')" = "b1.fleet.example b2.fleet.example "
	check "b: h$i: b2 still enabled" \
		test "$(table "$i" | jq -r 'select(.domain == "b2.fleet.example") | .enabled')" = true
	check "b: h$i: OK again" wait_for 5 check_ok "$i"
	check "b: h$i: reconnects counted" metric "$i" mmtrust_store_reconnects_total ">=" 1
	check "b: h$i: mmtrust_store_connected 1" metric "$i" mmtrust_store_connected == 1
	check "b: h$i: the log says it is back" grep -qE "store: .*(reconnected|reachable again)" "$MM_TMP/h$i/daemon.log"
done
check "b: the database's table" test "$(db_table | awk '{print $1}' | tr '\n' ' ')" = "b1.fleet.example b2.fleet.example "

# --- c. two hosts change one partner at once -------------------------------------------------------
expect_exit 0 "c: partner c added on h3" add 3 c.fleet.example 10.200.0.0/24 203.0.113.14
check "c: converged" wait_for 5 converged
last_id=$(C 3 --json log --kind change | jq '[.entries[].id] | max')
writer() { # writer I NET: 100 sets of c's range, one result a line
	local i=$1 k rc
	for k in $(seq 100); do
		C "$i" partner set c.fleet.example --range "10.$2.$k.0/24" >/dev/null 2>"$MM_TMP/w$i.err" &&
			rc=0 || rc=$?
		printf '%s %s %s\n' "$k" "$rc" "$(tr '\n' ' ' <"$MM_TMP/w$i.err")"
	done >"$MM_TMP/w$i.out"
}
t0=$(now_ms)
writer 1 201 &
w1=$!
writer 2 202 &
w2=$!
wait "$w1" "$w2"
echo "fleet: 2 x 100 concurrent changes of one partner in $(($(now_ms) - t0)) ms"
applied=$(for i in 1 2; do awk -v h="h$i" -v n=$((200 + i)) '$2 == 0 { print h, "10." n "." $1 ".0/24" }' "$MM_TMP/w$i.out"; done | sort)
n_applied=$(grep -c . <<<"$applied")
n_conflict=0
for i in 1 2; do
	n=$(awk '$2 == 1' "$MM_TMP/w$i.out" | grep -c "c.fleet.example.*changed on another host")
	n_conflict=$((n_conflict + n))
	other=$(awk '$2 != 0' "$MM_TMP/w$i.out" | grep -v "^[0-9]* 1 .*c.fleet.example.*changed on another host")
	check "c: h$i: every change applied or refused as a conflict naming the partner (${other:-all})" test -z "$other"
	check "c: h$i: a conflict is error code conflict" sh -c "! awk '\$2 == 1' '$MM_TMP/w$i.out' | grep -qv '(conflict)'"
	check "c: h$i: some of its changes applied" grep -q '^[0-9]* 0 ' "$MM_TMP/w$i.out"
done
echo "fleet: $n_applied applied, $n_conflict refused as conflicts"
check "c: 200 outcomes" test $((n_applied + n_conflict)) -eq 200
audit_of() { # audit_of I: "host range" of each set of c after the start, in order
	C "$1" --json log --kind change --domain c.fleet.example |
		jq -r --argjson id "$last_id" '.entries | sort_by(.id) | .[] | select(.id > $id) |
			"\(.host) \(.after.ranges | join(","))"'
}
audit=$(audit_of 3)
check "c: the audit trail holds exactly the applied changes ($(grep -c . <<<"$audit") entries, $n_applied applied)" \
	test "$(sort <<<"$audit")" = "$applied"
check "c: every host shows the same audit trail" test "$(audit_of 1)" = "$audit" -a "$(audit_of 2)" = "$audit"
check "c: the changes were root's" test "$(C 3 --json log --kind change --domain c.fleet.example |
	jq -r --argjson id "$last_id" '[.entries[] | select(.id > $id) | .user] | unique | join(",")')" = root
final=$(tail -1 <<<"$audit" | awk '{print $2}')
check "c: converged after the storm" wait_for 5 converged
for i in $HOSTS; do
	check "c: h$i holds the last applied change ($final)" test "$(table "$i" |
		jq -r 'select(.domain == "c.fleet.example") | .ranges | join(",")')" = "$final"
	check "c: h$i's kernel holds it" wait_for 2 sh -c "ip -n ${NSH[$i]} xfrm policy | grep -q 'dst $final'"
	check "c: h$i's foreign policy untouched" foreign_kept "$i"
done
check "c: the three kernels hold the same partner policies, reqids included" \
	test "$(kernel 1)" = "$(kernel 2)" -a "$(kernel 2)" = "$(kernel 3)" -a -n "$(kernel 1)"
check "c: the database's table is the hosts' table" \
	test "$(db_table)" = "$(C 1 --json partner list | jq -r '.partners | sort_by(.domain) | .[] | "\(.domain) \(.reqid)"')"

# --- d. the model test on a PostgreSQL store ---------------------------------------------------------
for i in $HOSTS; do
	kill -TERM "${DPIDS[$i]}" && wait "${DPIDS[$i]}"
	DPIDS[$i]=
done
pg_down
expect_exit 0 "d: the model test on a PostgreSQL store" env MODEL_STORE=postgresql \
	MODEL_STEPS="${FLEET_MODEL_STEPS:-100}" MODEL_SHRINK_SECONDS=20 \
	bash "$(dirname "$0")/test_model.sh" "$BUILD"
printf '%s\n' "$OUT" | grep "^model:\|^test_model"
[ "$MM_FAILS" -eq 0 ] || printf '%s\n' "$ERR" | tail -20 >&2

summary test_fleet
