#!/bin/bash
# mmtrust end to end, our charon crashes: with a partner's tunnel up, our
# charon is killed (SIGKILL, by its PID) and started again. mmtrustd must see
# the VICI socket go, reconnect (with back-off) when charon is back, load the
# partner's connection again, and rebuild its SA table from list-sas: status
# shows the tunnel up with the SPIs of the new CHILD_SA (the ones charon and
# the kernel have), and traffic flows through them. The time from the restart
# of charon to the tunnel being up again in status is measured and bounded.
. "$(dirname "$0")/mmtrust_lib.sh"
mm_init mmtrust_restart

A=ims.partner-a.example GW_A=198.51.100.10 NET_A=192.0.2.0/24 SIP_A=192.0.2.10
PORT=5060
UP_BOUND=60		# partner add -> tunnel up
DOWN_BOUND=10		# charon killed -> mmtrustd reports it disconnected
RECONNECT_BOUND=30	# charon started again -> tunnel up again in status

mm_one_partner

vm_step "partner A: add"
expect_exit 0 "partner add $A" ctl partner add $A --kind ims --agreement yes \
	--range $NET_A --gateway $GW_A --ca "$PKI/partner-ca.pem"
RA=$(mm_reqid $A)
require "tunnel to $A up in status" wait_for $UP_BOUND mm_tunnel_up $A
mm_tunnel $A
old_in=$(spi_hex "$T_SPI_IN") old_out=$(spi_hex "$T_SPI_OUT")
connects0=$(mm_jq .ike.connects)
echo "before: spi_in $old_in spi_out $old_out, ike.connects $connects0"
check "status spi_in is the kernel's" [ "$old_in" = "$(sa_spis "$MM" $GW_A $TUN "$RA")" ]
check "ike.connects is a number >= 1 ($connects0)" vm_gt "$connects0" 0
check "UDP receiver on $CSCF" vm_udp_listen "$MM" $CSCF $PORT "$MM_TMP/rx-$CSCF"
check "UDP receiver on $SIP_A" vm_udp_listen "$PEER" $SIP_A $PORT "$MM_TMP/rx-$SIP_A"
mm_traffic before "$MM" $CSCF "$PEER" $SIP_A $PORT

# --- 5. charon killed and restarted --------------------------------------------------
vm_step "kill our charon (PID ${CHARON[$MM]})"
t_kill=$(now_us)
kill -KILL "${CHARON[$MM]}"
check "our charon is gone" wait_for 5 vm_gone "${CHARON[$MM]}"
wait "${CHARON[$MM]}" 2>/dev/null
if wait_for $DOWN_BOUND mm_ike_disconnected; then
	pass "status says ike.connected false"
	vm_step "mmtrustd saw charon go after $(secs "$(ms_since "$t_kill")") s"
else
	fail "status still says connected $DOWN_BOUND s after charon died: $(cat "$MM_TMP/status.json")"
fi
check "'charon disconnected' logged" wait_for 5 mm_log_has "charon disconnected"

vm_step "start our charon again"
t_start=$(now_us)
check "our charon answers again" mm_charon_start "$MM"
if wait_for $RECONNECT_BOUND mm_tunnel_up_new $A "$old_in"; then
	ms_start=$(ms_since "$t_start") ms_kill=$(ms_since "$t_kill")
	pass "tunnel to $A up again with new SPIs within $RECONNECT_BOUND s"
	vm_step "RECONNECT: tunnel up again $(secs "$ms_start") s after charon started ($(secs "$ms_kill") s after the kill; bound $RECONNECT_BOUND s)"
else
	fail "tunnel to $A not up again with new SPIs $RECONNECT_BOUND s after charon started (status: $(cat "$MM_TMP/status.json"))"
fi

mm_tunnel $A
new_in=$(spi_hex "$T_SPI_IN") new_out=$(spi_hex "$T_SPI_OUT")
check "status: connected again" [ "$(mm_jq .ike.connected)" = true ]
connects1=$(mm_jq .ike.connects)
check "status: ike.connects rose ($connects0 -> $connects1)" vm_gt "$connects1" "$connects0"
check "'charon connected' logged again" [ "$(grep -c 'charon connected' "$MM_LOG")" -ge 2 ]
check "status: ESTABLISHED, remote_id $A" [ "$T_IKE $T_RID" = "ESTABLISHED $A" ]
check "status: reqid $RA" [ "$T_REQID" = "$RA" ]
check "status: spi_out is new too" [ "$new_out" != "$old_out" ]

# charon's own view of the CHILD_SA (the new charon knows only the new one).
list=$(swan "$MM" --list-sas --ike $A 2>&1)
echo "$list"
c_in=$(awk '$1 == "in" { sub(/,$/, "", $2); print $2 }' <<<"$list")
c_out=$(awk '$1 == "out" { sub(/,$/, "", $2); print $2 }' <<<"$list")
check "our charon has one CHILD_SA for $A" [ "$(grep -c "reqid $RA, INSTALLED" <<<"$list")" -eq 1 ]
check "status spi_in = charon's ($c_in)" [ "$new_in" = "$(spi_hex "0x$c_in")" ]
check "status spi_out = charon's ($c_out)" [ "$new_out" = "$(spi_hex "0x$c_out")" ]
check "the kernel has the inbound SA $new_in" grep -qx "$new_in" <(sa_spis "$MM" $GW_A $TUN "$RA")
check "the kernel has the outbound SA $new_out" grep -qx "$new_out" <(sa_spis "$MM" $TUN $GW_A "$RA")
check "'tunnel up' logged again" [ "$(grep -c "tunnel up: partner $A" "$MM_LOG")" -ge 2 ]

vm_step "traffic after the reconnect"
new_sas() { vm_sa_stats "$MM" reqid "$RA" | grep -E " ($new_in|$new_out) "; }
before=$(new_sas)
mm_traffic after "$MM" $CSCF "$PEER" $SIP_A $PORT
after=$(new_sas)
printf 'the new SAs (src dst spi bytes packets):\n%s\n' "$after"
check "the new SAs' counters rose in both directions" vm_sa_rose "$before" "$after"

# SAs the killed charon left in the kernel under the partner's reqid (the
# new charon does not know them) are deleted by mmtrustd after it rebuilt
# its SA table.
stale_gone() { [ -z "$(vm_sa_stats "$MM" reqid "$RA" | grep -vE " ($new_in|$new_out) ")" ]; }
check "the dead charon's SAs are deleted" wait_for 10 stale_gone
check "the cleanup is logged with the verdict" mm_log_has "charon sweep: deleting SA spi 0x[0-9a-f]+ .* reqid $RA: charon does not know it.*\(charon-lost\)"
# shellcheck disable=SC2016
sas_two() { mm_status && [ "$(mm_jq '.partners[] | select(.domain == $d) | .sas' --arg d $A)" = 2 ]; }
check "status counts exactly the two current SAs" wait_for 10 sas_two

vm_step "done"
vm_finish
