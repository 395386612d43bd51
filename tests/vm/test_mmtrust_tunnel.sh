#!/bin/bash
# mmtrust end to end, the tunnel's life: mmtrustd provisions a partner and
# makes our charon (loaded over VICI, policies = no, the partner's reqid)
# negotiate IKEv2 with the partner's own charon; mmtrustd's policies carry
# the traffic (ping and UDP, ESP counters rise both ways), cleartext from the
# partner's range is dropped by the kernel, the SA table (mmtrustctl status)
# names the partner with the kernel's SPIs. Then an integrity-only partner
# (null encryption, HMAC-SHA-256), and the removal of the first partner: its
# connection, SAs and policies go, the other partner stays up; its
# metrics (tunnel, SAs, bytes and packets as the kernel counted them, no
# errors) are what the kernel and status say.  Between them, A's SAs deleted
# from the kernel behind charon's back: down at once, up again on new SAs.
. "$(dirname "$0")/mmtrust_lib.sh"
mm_init mmtrust_tunnel

A=ims.partner-a.example GW_A=198.51.100.10 NET_A=192.0.2.0/24 SIP_A=192.0.2.10
B=sip.partner-b.example GW_B=198.51.100.11 NET_B=203.0.113.0/24 SIP_B=203.0.113.10
PORT=5060
UP_BOUND=60	# seconds from partner add to the tunnel up in status

vm_step "certificates"
certs() {
	mm_pki "ca|home-ca|mmtrust VM home CA" "ca|partner-ca|mmtrust VM partner CA" \
		"cert|home|home-ca|$HOME_ID" "cert|peer-a|partner-ca|$A" "cert|peer-b|partner-ca|$B"
}
require "CAs and certificates made with pki" certs

vm_step "namespaces"
require "namespaces $MM and $PEER joined by veth" mm_topology $GW_A $GW_B
check "partner A's network" mm_partner_net $NET_A $GW_A $SIP_A
check "partner B's network" mm_partner_net $NET_B $GW_B $SIP_B

vm_step "charons"
mm_peer_conn partner-a $GW_A $A peer-a $NET_A 101 aes128gcm16
mm_peer_conn partner-b $GW_B $B peer-b $NET_B 102 null-sha256
require "the partner's charon configuration" mm_peer_prepare peer-a peer-b
require "our charon's configuration" mm_strongswan_conf "$MM"
require "both charons answer, the partner's swanctl.conf loaded" mm_charons_start

vm_step "mmtrustd"
# The VM's certificates live 30 days: a shorter warning window keeps
# `status --check` about the tunnels.
mm_daemon_conf
sed -i 's/^\[daemon\]$/&\nexpiry_warning_days = 7/' "$MM_CONF"
export MMTRUST_QUERY_SOCKET=$MM_TMP/query.sock
require "mmtrustd answers on its admin socket" mm_daemon_start
require "mmtrustd connected to our charon (status ike.connected)" wait_for 20 mm_ike_connected
check "status names the VICI socket" [ "$(mm_jq .ike.socket)" = "$MM_VICI" ]
check "charon connected is logged" wait_for 5 mm_log_has "charon connected"

# --- 1. the tunnel comes up ----------------------------------------------------
# Both partners are added at once (their tunnels come up in parallel); each
# part below runs only when its tunnel came up.
vm_step "partners A and B: add"
t0=$(now_us)
expect_exit 0 "partner add $A" ctl partner add $A --kind ims --agreement yes \
	--range $NET_A --gateway $GW_A --ca "$PKI/partner-ca.pem"
expect_exit 0 "partner add $B --esp integrity-only" ctl partner add $B --kind non-ims \
	--agreement no --range $NET_B --gateway $GW_B --ca "$PKI/partner-ca.pem" --esp integrity-only
RA=$(mm_reqid $A)
RB=$(mm_reqid $B)
check "$A has a reqid ($RA)" [ "${RA:-null}" != null ]
check "$B has another reqid ($RB)" [ "${RB:-null}" != null -a "$RB" != "$RA" ]
check "mmtrustd's route to A's range (src the CSCF address), none by hand" wait_for 5 mm_route_ours $NET_A
check "mmtrustd's route to B's range" wait_for 5 mm_route_ours $NET_B
check "no route of ours in main (the test adds none)" sh -c "! ip -n $MM route show | grep -q '^$NET_A '"
up_a=0 up_b=0
if wait_for $UP_BOUND mm_tunnel_up $A; then
	up_a=1
	pass "tunnel to $A up in status"
	vm_step "tunnel to $A up, $(secs "$(ms_since "$t0")") s after partner add"
else
	fail "tunnel to $A not up within $UP_BOUND s (status: $(cat "$MM_TMP/status.json"))"
fi
if wait_for $UP_BOUND mm_tunnel_up $B; then
	up_b=1
	pass "tunnel to $B up in status"
	vm_step "tunnel to $B up, $(secs "$(ms_since "$t0")") s after partner add"
else
	fail "tunnel to $B not up within $UP_BOUND s (status: $(cat "$MM_TMP/status.json"))"
fi
check "UDP receiver on $CSCF" vm_udp_listen "$MM" $CSCF $PORT "$MM_TMP/rx-$CSCF"

part_a() {
	mm_tunnel $A
	check "status: ike_state ESTABLISHED" [ "$T_IKE" = ESTABLISHED ]
	check "status: remote_id is the partner's domain" [ "$T_RID" = $A ]
	check "status: remote_host is the partner's gateway" [ "$T_RHOST" = $GW_A ]
	check "status: tunnel reqid is the partner's" [ "$T_REQID" = "$RA" ]
	check "status: since is a UTC time ($T_SINCE)" is_utc "$T_SINCE"
	check "'tunnel up' logged with domain and reqid" wait_for 5 mm_log_has "tunnel up: partner $A \(reqid $RA\)"

	in_a=$(sa_spis "$MM" $GW_A $TUN "$RA")
	out_a=$(sa_spis "$MM" $TUN $GW_A "$RA")
	echo "kernel SAs with reqid $RA: in $in_a, out $out_a; status: in $T_SPI_IN, out $T_SPI_OUT"
	check "exactly one inbound SA $GW_A -> $TUN with reqid $RA" [ "$(grep -c . <<<"$in_a")" -eq 1 ]
	check "exactly one outbound SA $TUN -> $GW_A with reqid $RA" [ "$(grep -c . <<<"$out_a")" -eq 1 ]
	check "status spi_in is the kernel's inbound SA" [ "$(spi_hex "$T_SPI_IN")" = "$in_a" ]
	check "status spi_out is the kernel's outbound SA" [ "$(spi_hex "$T_SPI_OUT")" = "$out_a" ]
	check "the SAs are AES-GCM-128 (esp: encrypt)" [ "$(ip -n "$MM" xfrm state list reqid "$RA" |
		grep -c 'aead rfc4106(gcm(aes)) .* 128')" -eq 2 ]
	check "only mmtrustd's policies carry reqid $RA (in, out: charon added none)" \
		[ "$(pol_count "$MM" "$RA")" -eq 2 ]
	check "both carry mmtrust's tag (uid $SPD_TAG)" [ "$(pol_tagged "$MM" "$RA")" -eq 2 ]
	contains "$(swan "$PEER" --list-sas --ike partner-a 2>&1)" "$HOME_ID" \
		"the partner's charon authenticated $HOME_ID"

	vm_step "partner A: traffic"
	check "UDP receiver on $SIP_A" vm_udp_listen "$PEER" $SIP_A $PORT "$MM_TMP/rx-$SIP_A"
	local before after
	before=$(vm_sa_stats "$MM" reqid "$RA")
	mm_traffic A "$MM" $CSCF "$PEER" $SIP_A $PORT
	after=$(vm_sa_stats "$MM" reqid "$RA")
	printf 'SAs of %s in %s (src dst spi bytes packets):\n%s\n' $A "$MM" "$after"
	check "ESP counters rose in both directions (reqid $RA)" vm_sa_rose "$before" "$after"

	# The partner stops protecting its traffic (its outbound policy goes):
	# the cleartext reaches our veth and our inbound policy (level
	# required) drops it.
	vm_step "partner A: cleartext from $SIP_A"
	check "the partner sends in clear" ip -n "$PEER" xfrm policy delete src $NET_A dst $CSCF_NET dir out
	local mismatch nostates rx
	mismatch=$(vm_xfrm_stat "$MM" XfrmInTmplMismatch)
	nostates=$(vm_xfrm_stat "$MM" XfrmInNoStates)
	rx=$(vm_ifstat "$MM" "$VM_IF" rx_packets)
	vm_udp_send "$PEER" $SIP_A $CSCF $PORT "cleartext"
	check "the cleartext datagram reached $MM's veth" wait_for 10 vm_ifstat_rose "$MM" "$VM_IF" rx_packets "$rx"
	dropped() {
		vm_stat_rose "$MM" XfrmInTmplMismatch "$mismatch" || vm_stat_rose "$MM" XfrmInNoStates "$nostates"
	}
	check "$MM's kernel dropped it (XfrmInTmplMismatch or XfrmInNoStates rose)" wait_for 10 dropped
	echo "XfrmInTmplMismatch $mismatch -> $(vm_xfrm_stat "$MM" XfrmInTmplMismatch)," \
		"XfrmInNoStates $nostates -> $(vm_xfrm_stat "$MM" XfrmInNoStates)"
	check "the CSCF's receiver did not get the cleartext" vm_not vm_got "$MM_TMP/rx-$CSCF" "cleartext"
	check "the partner protects again" ip -n "$PEER" xfrm policy add src $NET_A dst $CSCF_NET dir out \
		tmpl src $GW_A dst $TUN proto esp reqid 101 mode tunnel
	vm_udp_send "$PEER" $SIP_A $CSCF $PORT "esp again"
	check "ESP from $SIP_A delivered again" wait_for 10 vm_got "$MM_TMP/rx-$CSCF" "esp again"
}

# --- 6. integrity-only partner -----------------------------------------------------
part_b() {
	vm_step "partner B (integrity-only)"
	mm_tunnel $B
	check "status: $B's remote_id" [ "$T_RID" = $B ]
	check "status: $B's reqid" [ "$T_REQID" = "$RB" ]
	check "status: $B's spi_in is the kernel's" [ "$(spi_hex "$T_SPI_IN")" = "$(sa_spis "$MM" $GW_B $TUN "$RB")" ]
	check "status: $B's spi_out is the kernel's" [ "$(spi_hex "$T_SPI_OUT")" = "$(sa_spis "$MM" $TUN $GW_B "$RB")" ]
	local states before after
	states=$(ip -n "$MM" xfrm state list reqid "$RB")
	echo "$states"
	check "two SAs with reqid $RB" [ "$(grep -c '^src ' <<<"$states")" -eq 2 ]
	check "both use null encryption (enc ecb(cipher_null))" [ "$(grep -c 'enc ecb(cipher_null)' <<<"$states")" -eq 2 ]
	check "both use HMAC-SHA-256 (auth-trunc hmac(sha256) ... 128)" \
		[ "$(grep -c 'auth-trunc hmac(sha256) .* 128' <<<"$states")" -eq 2 ]
	check "no AEAD on them" vm_not grep -q aead <<<"$states"

	vm_step "partner B: traffic"
	check "UDP receiver on $SIP_B" vm_udp_listen "$PEER" $SIP_B $PORT "$MM_TMP/rx-$SIP_B"
	before=$(vm_sa_stats "$MM" reqid "$RB")
	mm_traffic B "$MM" $CSCF "$PEER" $SIP_B $PORT
	after=$(vm_sa_stats "$MM" reqid "$RB")
	printf 'SAs of %s in %s (src dst spi bytes packets):\n%s\n' $B "$MM" "$after"
	check "ESP counters rose in both directions (reqid $RB)" vm_sa_rose "$before" "$after"
}

# --- 5. SAs deleted behind charon's back ----------------------------------------------
# Someone deletes the kernel's SAs of A's tunnel (`ip xfrm state deleteall
# reqid`): charon still counts the CHILD_SA installed, but the kernel drops
# A's traffic (the policies require ESP) until the next rekey.  mmtrustd
# says "down" at once (status, the check, metrics, the query's protected,
# subscribers), has charon negotiate anew, and says "up" with the new SPIs.
# What it must never do: touch B's tunnel, or call the policies out of sync.
protected() { ctl --json query inbound $SIP_A --dst $CSCF | jq -r .protected; }
metric_now() { ctl metrics | awk -v k="$1" '$1 == k { print $2 }'; }
# sampler CMD...: CMD's output, one a line, until $MM_TMP/stop-sampling
# exists (the down time is short: charon negotiates anew at once, and each
# mmtrustctl call takes a while under TCG).
sampler() {
	while [ ! -e "$MM_TMP/stop-sampling" ]; do
		echo "$("$@" 2>/dev/null)"
		sleep 0.1
	done
}
check_rc() { ctl status --check >/dev/null 2>&1; echo $?; }
# protected_sampler: the query's "protected" for $SIP_A -> $CSCF, one a
# line, until $MM_TMP/stop-sampling exists, asked over one connection as a
# CSCF asks (a question every 20 ms: the down time can be as short as a
# second, less than one mmtrustctl call and jq under TCG take).  A question
# not answered is a line "error".
protected_sampler() {
	python3 - "$MM_TMP/query.sock" "$SIP_A" "$CSCF" "$MM_TMP/stop-sampling" <<'PY'
import json, os, socket, sys, time
path, src, dst, stop = sys.argv[1:]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(path)
f = sock.makefile("rwb")
while not os.path.exists(stop):
    f.write(json.dumps({"op": "inbound", "src": src, "dst": dst}).encode() + b"\n")
    f.flush()
    try:
        answer = json.loads(f.readline())
        ok = answer.get("ok") is True
        print(json.dumps(answer["result"]["protected"]) if ok else "error", flush=True)
    except (ValueError, KeyError):
        print("error", flush=True)
    time.sleep(0.02)
PY
}
part_flush() {
	vm_step "partner A: its SAs deleted behind charon's back"
	local in_old out_old spis_b t0 in_new out_new pids=() p
	expect_exit 0 "status --check: every tunnel up (exit 0)" ctl status --check
	check "query: inbound from $SIP_A protected" [ "$(protected)" = true ]
	mm_tunnel $A
	in_old=$(spi_hex "$T_SPI_IN") out_old=$(spi_hex "$T_SPI_OUT")
	spis_b=$(vm_sa_stats "$MM" reqid "$RB" | cut -d' ' -f1-3)
	vm_spawn "$MM_TMP/events.out" "$MMTRUSTCTL" --json query watch
	pids+=("$VM_PID")
	vm_keep "$MM_TMP/events.out"
	check "the subscription is live" wait_for 10 grep -q '"subscribed": true' "$MM_TMP/events.out"
	rm -f "$MM_TMP/stop-sampling"
	vm_spawn "$MM_TMP/check.samples" sampler check_rc
	pids+=("$VM_PID")
	vm_spawn "$MM_TMP/metric.samples" sampler \
		metric_now "mmtrust_partner_tunnel_up{partner=\"$A\"}"
	pids+=("$VM_PID")
	vm_spawn "$MM_TMP/query.samples" protected_sampler
	pids+=("$VM_PID")
	check "samplers running" wait_for 10 sh -c "grep -q . '$MM_TMP/check.samples' &&
		grep -q . '$MM_TMP/metric.samples' && grep -qx true '$MM_TMP/query.samples'"

	# charon negotiates anew within a second or so: too short a down time
	# for samplers that each start mmtrustctl under TCG.  A blackhole
	# route to A's gateway holds the new IKE_SA back until every sampler
	# has seen the tunnel down; charon's retransmission gets through after.
	check "A's gateway unreachable for now (blackhole route $GW_A/32)" \
		ip -n "$MM" route add blackhole "$GW_A/32"
	t0=$(now_us)
	check "ip xfrm state deleteall reqid $RA (A's SAs only)" ip -n "$MM" xfrm state deleteall reqid "$RA"
	# Down, or up again already on new SAs (the samplers saw it down).
	a_gone() { mm_tunnel $A && { [ "$T_STATE" = down ] || [ "$(spi_hex "$T_SPI_IN")" != "$in_old" ]; }; }
	if wait_for 5 a_gone; then
		pass "status: $A's tunnel no longer up on the deleted SAs ($T_STATE)"
		vm_step "$A $T_STATE in status $(secs "$(ms_since "$t0")") s after the SAs were deleted"
	else
		fail "status still says $A up on the deleted SAs: $(cat "$MM_TMP/status.json")"
	fi
	local re="tunnel down: partner $A \\(reqid $RA\\): its SA ($in_old|$out_old) was deleted from the kernel behind charon"
	check "'tunnel down' logged with the reason" wait_for 5 mm_log_has "$re"
	grep -E "tunnel down: partner $A|of its tunnel was deleted|told to terminate" "$MM_LOG" | tail -n 4
	local at ms
	at=$(grep -E -- "$re" "$MM_LOG" | tail -n 1 | cut -d' ' -f1)
	ms=$(($(date -d "${at:-never}" +%s%3N 2>/dev/null || echo 0) - t0 / 1000))
	check "down $ms ms after the SAs were deleted (the log's time; within 2 s)" [ "$ms" -ge 0 -a "$ms" -lt 2000 ]
	check "subscribers heard sa-down $A" wait_for 5 grep -q "\"sa-down\", \"partner\": \"$A\"" "$MM_TMP/events.out"

	check "every sampler saw $A down (check exit 5, tunnel_up 0, protected false)" \
		wait_for 20 sh -c "grep -qx 5 '$MM_TMP/check.samples' &&
		grep -qx 0 '$MM_TMP/metric.samples' && grep -qx false '$MM_TMP/query.samples'"
	check "A's gateway reachable again" ip -n "$MM" route del blackhole "$GW_A/32"

	vm_step "partner A: a new CHILD_SA"
	if wait_for 30 mm_tunnel_up_new $A "$in_old"; then
		pass "$A up again with a new inbound SPI"
		vm_step "$A up again $(secs "$(ms_since "$t0")") s after the SAs were deleted"
	else
		fail "$A not up again within 30 s: $(cat "$MM_TMP/status.json")"
	fi
	touch "$MM_TMP/stop-sampling"
	for p in "${pids[@]:1}"; do wait_for 10 vm_gone "$p"; done
	echo "status --check exit codes sampled: $(sort "$MM_TMP/check.samples" | uniq -c | xargs)"
	echo "tunnel_up sampled: $(sort "$MM_TMP/metric.samples" | uniq -c | xargs)"
	echo "protected sampled: $(sort "$MM_TMP/query.samples" | uniq -c | xargs)"
	check "status --check exited 5 (tunnel down) while it was down" grep -qx 5 "$MM_TMP/check.samples"
	check "status --check exited only 0 or 5 (never 6: policies in sync)" \
		vm_not grep -qvx '[05]' "$MM_TMP/check.samples"
	check "metrics: $A's tunnel_up was 0 while it was down" grep -qx 0 "$MM_TMP/metric.samples"
	check "query: inbound from $SIP_A was not protected while it was down" \
		grep -qx false "$MM_TMP/query.samples"
	check "query: every question answered (true or false)" \
		vm_not grep -qvx 'true\|false' "$MM_TMP/query.samples"
	if [ "$up_b" = 1 ]; then
		check "$B's SAs untouched" [ "$(vm_sa_stats "$MM" reqid "$RB" | cut -d' ' -f1-3)" = "$spis_b" ]
		check "$B still up in status" mm_tunnel_up $B
	fi
	mm_tunnel_up $A || return
	in_new=$(spi_hex "$T_SPI_IN") out_new=$(spi_hex "$T_SPI_OUT")
	echo "SPIs of $A: in $in_old -> $in_new, out $out_old -> $out_new"
	check "a new outbound SPI too" [ "$out_new" != "$out_old" ]
	check "status spi_in is the kernel's new inbound SA" [ "$(sa_spis "$MM" $GW_A $TUN "$RA")" = "$in_new" ]
	check "status spi_out is the kernel's new outbound SA" [ "$(sa_spis "$MM" $TUN $GW_A "$RA")" = "$out_new" ]
	contains "$(swan "$MM" --list-sas --ike $A 2>&1)" "${in_new#0x}" "our charon lists the new CHILD_SA"
	mm_traffic A-again "$MM" $CSCF "$PEER" $SIP_A $PORT
	is_protected() { [ "$(protected)" = true ]; }
	check "query: inbound from $SIP_A protected again" wait_for 5 is_protected
	expect_exit 0 "status --check: every tunnel up again (exit 0)" ctl status --check
	check "metrics: $A's tunnel up again" \
		[ "$(metric_now "mmtrust_partner_tunnel_up{partner=\"$A\"}")" = 1 ]
	kill "${pids[0]}" 2>/dev/null
}

# A rekey (ours, then the partner's) deletes the old SAs from the kernel
# too, after charon reported the new ones: never a tunnel down.
part_rekey() {
	vm_step "partner A: rekeys are no SAs deleted behind charon's back"
	local downs side ns child in_old
	downs=$(grep -c "tunnel down: partner $A" "$MM_LOG")
	downs_more() { [ "$(grep -c "tunnel down: partner $A" "$MM_LOG")" -gt "$downs" ]; }
	two_sas() { [ "$(sa_count "$MM" "$RA")" -eq 2 ]; }
	for side in "$MM:$A" "$PEER:partner-a"; do
		ns=${side%%:*} child=${side#*:}
		mm_tunnel_up $A || { fail "$A not up before the rekey in $ns"; return; }
		in_old=$(spi_hex "$T_SPI_IN")
		expect_exit 0 "swanctl --rekey --child $child ($ns)" swan "$ns" --rekey --child "$child"
		check "rekeyed by $ns: $A up with a new inbound SPI" wait_for 20 mm_tunnel_up_new $A "$in_old"
		check "charon deleted the old SAs" wait_for 20 two_sas
		check "no tunnel down for the rekey (1 s after the old SAs went)" vm_not wait_for 1 downs_more
	done
	check "the rekeys logged as such" mm_log_has "tunnel up: partner $A \\(reqid $RA\\): rekeyed"
	expect_exit 0 "status --check: every tunnel up (exit 0)" ctl status --check
}

# --- 4. partner removed --------------------------------------------------------------
part_del() {
	vm_step "partner A: delete"
		local spis_b t0
	spis_b=$(vm_sa_stats "$MM" reqid "$RB" | cut -d' ' -f1-3)
	t0=$(now_us)
	expect_exit 0 "partner del $A" ctl partner del $A
	gone() { no_sa "$MM" "$RA" && no_pol "$MM" "$RA"; }
	if wait_for 20 gone; then
		pass "$A's SAs and policies are gone from $MM"
		vm_step "SAs and policies of $A gone $(secs "$(ms_since "$t0")") s after partner del"
	else
		fail "$A's SAs or policies remain: $(ip -n "$MM" xfrm state list reqid "$RA") $(ip -n "$MM" xfrm policy | grep -B3 "reqid $RA")"
	fi
	conn_gone() { ! swan "$MM" --list-conns 2>/dev/null | grep -q "^$A:"; }
	check "$A's connection unloaded from our charon" wait_for 10 conn_gone
	check "the IKE_SA with $A is gone from our charon" vm_not grep -q "^$A:" <(swan "$MM" --list-sas 2>/dev/null)
	peer_gone() { ! swan "$PEER" --list-sas 2>/dev/null | grep -q '^partner-a:'; }
	check "the partner's charon was told (its IKE_SA is gone)" wait_for 10 peer_gone
	check "'tunnel down' logged for $A" wait_for 5 mm_log_has "tunnel down: partner $A"
	check "$A is no longer in status" mm_partner_absent $A
	if [ "$up_b" = 1 ]; then
		check "$B's SAs untouched" [ "$(vm_sa_stats "$MM" reqid "$RB" | cut -d' ' -f1-3)" = "$spis_b" ]
		check "$B still up in status" mm_tunnel_up $B
	fi
	check "$B's policies still there" [ "$(pol_count "$MM" "$RB")" -eq 2 ]
}

if [ $up_a = 1 ]; then part_a; else fail "part A (status, SPIs, traffic, cleartext) skipped: no tunnel"; fi
if [ $up_b = 1 ]; then part_b; else fail "part B (integrity-only) skipped: no tunnel"; fi
if [ $up_a = 1 ]; then
	part_flush
	part_rekey
else
	fail "part 5 (SAs deleted behind charon, rekeys) skipped: no tunnel"
fi
part_del

# --- metrics: what the kernel counted, as `mmtrustctl metrics` says it -----------------
# B's tunnel carried traffic (part B); A is gone.  Bytes and packets are
# the sums over B's SAs of what `ip -s xfrm state` shows (equal while no
# SA of B was rekeyed away; with rekeys the gone SAs' counts are added,
# so at least that).
metric() {
	local k=$1
	[ -n "${2:-}" ] && k="$1{$2}"
	awk -v k="$k" '$1 == k { print $2 }' "$MM_TMP/metrics.prom"
}
part_metrics() {
	vm_step "metrics"
	local P="partner=\"$B\"" stats want got rekeys dir e
	expect_exit 0 "mmtrustctl metrics" ctl metrics
	printf '%s\n' "$OUT" >"$MM_TMP/metrics.prom"
	grep "$B" "$MM_TMP/metrics.prom"
	check "metrics: $B's tunnel up" [ "$(metric mmtrust_partner_tunnel_up "$P")" = 1 ]
	check "metrics: $B has at least 2 SAs" [ "$(metric mmtrust_partner_sas "$P")" -ge 2 ]
	stats=$(vm_sa_stats "$MM" reqid "$RB")
	rekeys=$(metric mmtrust_partner_rekeys_total "$P")
	echo "SAs of $B (src dst spi bytes packets), rekeys ${rekeys:-?}:"
	echo "$stats"
	for dir in in out; do
		want=$(awk -v t=$TUN -v d=$dir '(d == "in" ? $2 : $1) == t { b += $4; p += $5 }
			END { print b + 0, p + 0 }' <<<"$stats")
		got="$(metric mmtrust_partner_sa_bytes_total "$P,direction=\"$dir\"")"
		got="$got $(metric mmtrust_partner_sa_packets_total "$P,direction=\"$dir\"")"
		check "metrics: $B's bytes and packets $dir ($got) > 0" \
			[ "${got% *}" -gt 0 -a "${got#* }" -gt 0 ]
		if [ "${rekeys:-0}" = 0 ]; then
			check "metrics: $B's bytes and packets $dir are the kernel's ($want)" \
				[ "$got" = "$want" ]
		else
			check "metrics: $B's bytes and packets $dir at least the current SAs' ($want)" \
				[ "${got% *}" -ge "${want% *}" -a "${got#* }" -ge "${want#* }" ]
		fi
	done
	for e in replay_window replay integrity_failed; do
		check "metrics: no $e errors on $B's SAs" \
			[ "$(metric mmtrust_partner_sa_errors_total "$P,error=\"$e\"")" = 0 ]
	done
	check "metrics: $B's policies in sync" [ "$(metric mmtrust_partner_policies_in_sync "$P")" = \
		"$(metric mmtrust_partner_policies_expected "$P")" ]
	check "metrics: one partner left" [ "$(metric mmtrust_partners)" = 1 ]
	check "metrics: nothing of the removed $A" vm_not grep -q "partner=\"$A\"" "$MM_TMP/metrics.prom"
	check "metrics: charon connected" [ "$(metric mmtrust_ike_connected)" = 1 ]
}
if [ $up_b = 1 ]; then part_metrics; else fail "metrics skipped: no tunnel to $B"; fi

# --- a flush: the kernel names no SA ---------------------------------------------------
# `ip xfrm state flush` (only B's SAs are left in this namespace): the
# kernel reports a flush, not the SAs; mmtrustd reads the SAD, finds B's
# current SAs (seen there before) missing, and it goes as in part 5.
part_flush_all() {
	vm_step "partner B: every SA flushed"
	local in_old t0
	mm_tunnel $B
	in_old=$(spi_hex "$T_SPI_IN")
	check "only $B's SAs are left in $MM" [ "$(ip -n "$MM" xfrm state list | grep -c '^src ')" -eq \
		"$(sa_count "$MM" "$RB")" ]
	t0=$(now_us)
	check "ip xfrm state flush" ip -n "$MM" xfrm state flush
	check "'tunnel down' logged for $B with the reason" wait_for 5 mm_log_has \
		"tunnel down: partner $B \\(reqid $RB\\): its SA 0x[0-9a-f]{8} was deleted from the kernel behind charon"
	grep -E "tunnel down: partner $B|missing from the kernel" "$MM_LOG" | tail -n 3
	if wait_for 30 mm_tunnel_up_new $B "$in_old"; then
		pass "$B up again with a new inbound SPI"
		vm_step "$B up again $(secs "$(ms_since "$t0")") s after the flush"
	else
		fail "$B not up again within 30 s: $(cat "$MM_TMP/status.json")"
		return
	fi
	check "status spi_in is the kernel's new inbound SA" [ "$(sa_spis "$MM" $GW_B $TUN "$RB")" = "$(spi_hex "$T_SPI_IN")" ]
	check "B: ping $CSCF -> $SIP_B again" vm_ping "$MM" $CSCF $SIP_B 3
	expect_exit 0 "status --check: every tunnel up again (exit 0)" ctl status --check
}
if [ $up_b = 1 ]; then part_flush_all; else fail "flush part skipped: no tunnel to $B"; fi

vm_step "done"
vm_finish
