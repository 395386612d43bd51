#!/bin/bash
# ESP on a real kernel, keyed by hand: two namespaces joined by veth, tunnel
# mode SAs and policies with a reqid (the shape mmtrustd gives the kernel),
# in two variants: AES-GCM-128 (rfc4106) and integrity only (null encryption
# + HMAC-SHA256-128). Ping and UDP cross in both directions and every SA's
# counters rise; cleartext from the peer's inner address, and ESP for which
# no SA is left, are dropped by the inbound policy.
. "$(dirname "$0")/lib.sh"
vm_init esp_smoke

A=esp-a B=esp-b
OA=192.0.2.1 OB=192.0.2.2		# outer (veth) addresses
IA=10.1.0.1 IB=10.2.0.1			# inner addresses, on lo
NA=10.1.0.0/24 NB=10.2.0.0/24
REQID=7
PORT=5001

vm_step "namespaces"
check "two namespaces joined by veth" vm_netns_pair $A $B $OA/24 $OB/24
check "inner address and route in $A" vm_inner $A $IA $NB $OB
check "inner address and route in $B" vm_inner $B $IB $NA $OA
check "UDP receiver in $A" vm_udp_listen $A $IA $PORT "$MM_TMP/rx-a"
check "UDP receiver in $B" vm_udp_listen $B $IB $PORT "$MM_TMP/rx-b"

# install NS SPI_AB SPI_BA ALGO_AB ALGO_BA: both SAs (the same in each
# namespace, as manual keying wants) and this side's two policies.
install() {
	local ns=$1 here there nhere nthere
	if [ "$ns" = $A ]; then
		here=$OA there=$OB nhere=$NA nthere=$NB
	else
		here=$OB there=$OA nhere=$NB nthere=$NA
	fi
	ip -n "$ns" -batch - <<-EOF
		xfrm state flush
		xfrm policy flush
		xfrm state add src $OA dst $OB proto esp spi $2 reqid $REQID mode tunnel $4
		xfrm state add src $OB dst $OA proto esp spi $3 reqid $REQID mode tunnel $5
		xfrm policy add src $nhere dst $nthere dir out tmpl src $here dst $there proto esp reqid $REQID mode tunnel
		xfrm policy add src $nthere dst $nhere dir in tmpl src $there dst $here proto esp reqid $REQID mode tunnel
	EOF
}

# counters NS: vm_sa_stats of our SAs ("SRC DST SPI BYTES PACKETS").
counters() { vm_sa_stats "$1" reqid $REQID; }
# untouched STATS: two SAs, neither has counted anything.
untouched() { [ "$(grep -c ' 0 0$' <<<"$1")" -eq 2 ]; }

# variant NAME SPI_AB SPI_BA ALGO_AB ALGO_BA
variant() {
	local v=$1 ns before_a before_b after_a after_b
	SPI_BA=$3
	vm_step "$v: SAs and policies"
	for ns in $A $B; do
		check "$v: SAs and policies in $ns" install "$ns" "$2" "$3" "$4" "$5"
	done
	before_a=$(counters $A)
	before_b=$(counters $B)
	check "$v: two fresh SAs with reqid $REQID in $A" untouched "$before_a"
	check "$v: two fresh SAs with reqid $REQID in $B" untouched "$before_b"

	vm_step "$v: traffic"
	check "$v: ping $IA -> $IB" vm_ping $A $IA $IB 3
	check "$v: ping $IB -> $IA" vm_ping $B $IB $IA 2
	vm_udp_send $A $IA $IB $PORT "$v a-to-b"
	vm_udp_send $B $IB $IA $PORT "$v b-to-a"
	check "$v: UDP $IA -> $IB delivered" wait_for 10 vm_got "$MM_TMP/rx-b" "$v a-to-b"
	check "$v: UDP $IB -> $IA delivered" wait_for 10 vm_got "$MM_TMP/rx-a" "$v b-to-a"

	after_a=$(counters $A)
	after_b=$(counters $B)
	printf '%s: SAs in %s (src dst spi bytes packets):\n%s\n' "$v" $A "$after_a"
	check "$v: both SAs' bytes and packets rose in $A" vm_sa_rose "$before_a" "$after_a"
	check "$v: both SAs' bytes and packets rose in $B" vm_sa_rose "$before_b" "$after_b"
}

variant gcm 0x1001 0x2001 \
	"aead rfc4106(gcm(aes)) 0x0101010101010101010101010101010101010101 128" \
	"aead rfc4106(gcm(aes)) 0x0202020202020202020202020202020202020202 128"
variant null-hmac 0x1002 0x2002 \
	"enc cipher_null \"\" auth-trunc hmac(sha256) 0x0303030303030303030303030303030303030303030303030303030303030303 128" \
	"enc cipher_null \"\" auth-trunc hmac(sha256) 0x0404040404040404040404040404040404040404040404040404040404040404 128"

# Inbound enforcement: the peer stops using ESP (its outbound policy goes);
# its cleartext reaches our veth and our inbound policy drops it.
vm_step "cleartext from $IB"
check "$B sends in clear" ip -n $B xfrm policy delete src $NB dst $NA dir out
mismatch=$(vm_xfrm_stat $A XfrmInTmplMismatch)
rx=$(vm_ifstat $A $VM_IF rx_packets)
vm_udp_send $B $IB $IA $PORT "cleartext"
check "the cleartext datagram reached $A's veth" wait_for 10 \
	vm_ifstat_rose $A $VM_IF rx_packets "$rx"
check "$A counted it in XfrmInTmplMismatch" wait_for 10 vm_stat_rose $A XfrmInTmplMismatch "$mismatch"
check "$A's receiver did not get the cleartext" vm_not vm_got "$MM_TMP/rx-a" "cleartext"

# Positive control: with the peer's policy back, the same path delivers.
check "$B's outbound policy back" ip -n $B xfrm policy add src $NB dst $NA dir out \
	tmpl src $OB dst $OA proto esp reqid $REQID mode tunnel
vm_udp_send $B $IB $IA $PORT "esp again"
check "ESP from $IB delivered again" wait_for 10 vm_got "$MM_TMP/rx-a" "esp again"

# ESP for an SA we no longer have is dropped too.
vm_step "ESP without an inbound SA"
check "$A deletes its inbound SA" ip -n $A xfrm state delete src $OB dst $OA proto esp spi "$SPI_BA"
nostates=$(vm_xfrm_stat $A XfrmInNoStates)
vm_udp_send $B $IB $IA $PORT "no state"
check "$A counted it in XfrmInNoStates" wait_for 10 vm_stat_rose $A XfrmInNoStates "$nostates"
check "$A's receiver did not get it" vm_not vm_got "$MM_TMP/rx-a" "no state"

vm_step "done"
vm_finish
