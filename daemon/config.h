/* mmtrustd's configuration file (INI, read with libinih).
 *
 *   [daemon]
 *   store = /var/lib/mmtrust/mmtrust.db     ; SQLite store, or a postgresql://
 *                                           ; URI: a table a fleet shares
 *   store_password_file =                   ; PostgreSQL: the password (else
 *                                           ; libpq's PGPASSWORD, .pgpass)
 *   host_name =                             ; this host in the audit trail
 *                                           ; (default: the host name)
 *   admin_socket = /run/mmtrust/admin.sock  ; provisioning (mmtrustctl)
 *   admin_group =                           ; group allowed besides root
 *   query_socket = /run/mmtrust/query.sock  ; CSCF queries (read-only)
 *   query_group =                           ; the CSCF's group
 *   query_snapshot = /run/mmtrust/query.snap ; in-process answers (empty: none);
 *                                           ; default: query_socket's path with
 *                                           ; .sock replaced by .snap
 *   expiry_warning_days = 30                ; 0..3650; 0: no expiry warnings
 *   [reqid]
 *   min = 1000000                           ; reserved range, inclusive
 *   max = 1099999
 *   [local]
 *   cscf = 10.0.0.0/24, 2001:db8:10::/64    ; our CSCF prefixes (every peer kind)
 *   cscf_ims = 10.0.1.0/24                  ; ... facing IMS peers only
 *   cscf_non_ims = 10.0.2.0/24              ; ... facing non-IMS peers only
 *                                           ; (the three lists must not overlap)
 *   tunnel = 192.0.2.1, 2001:db8:ff::1      ; our tunnel endpoint(s)
 *   forward = no                            ; cscf prefixes are behind us
 *   routes = no                             ; yes: a route per partner range
 *   route_table = 6770                      ; ... in this table of ours
 *   route_protocol = 77                     ; ... tagged with this protocol
 *   route_rule_priority = 6770              ; the rule that looks the table up
 *   [spd]
 *   enabled = yes                           ; program the kernel's SPD
 *   priority_base = 100000                  ; our band: base .. base+256
 *   tag = 0x6d6d7472                        ; selector user field ("uid")
 *   verify_interval = 60                    ; seconds between full checks
 *   shrink_limit = 50                       ; % of our policies a start, reload
 *                                           ; or apply may delete unconfirmed
 *   repair_burst = 5                        ; repairs of a partner per window before
 *                                           ; back-off (a drift fight); 0: never
 *   repair_window = 10                      ; seconds; also the quiet time ending a fight
 *   repair_backoff_max = 60                 ; seconds: the longest wait of a repair
 *   [query]
 *   untrusted = strip-always                ; or strip-if-privacy-id (RFC 3325 minimum)
 *   max_clients = 1024
 *   require_dst = no                        ; yes: inbound without dst is refused
 *   [ike]
 *   enabled = no                            ; drive strongSwan's charon
 *   vici_socket = /var/run/charon.vici      ; charon's VICI socket
 *   certificate = /etc/mmtrust/cert.pem     ; our certificate (PEM)
 *   private_key = /etc/mmtrust/key.pem      ; its private key (PEM)
 *   local_id =                              ; our IKE identity (default: cert subject)
 *   dpd_delay = 30                          ; seconds; 0: no DPD
 *   [log]
 *   events_keep = 100000                    ; rows of event history kept in the
 *                                           ; store (oldest deleted beyond it)
 *
 * Unknown sections or keys are errors that name the line: a misspelt key
 * must not silently fall back to a default. */
#ifndef MMTRUSTD_CONFIG_H
#define MMTRUSTD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy/addr.h"
#include "policy/err.h"
#include "policy/privacy.h"

#define MM_CONFIG_DEFAULT_PATH "/etc/mmtrust/mmtrustd.conf"
#define MM_CONFIG_MAX_LOCAL 64
#define MM_CONFIG_ROUTE_TABLE_DEFAULT 6770
#define MM_CONFIG_ROUTE_PROTOCOL_DEFAULT 77
#define MM_CONFIG_ROUTE_RULE_PRIORITY_DEFAULT 6770
/* A repair never waits longer than an hour, whatever the setting. */
#define MM_CONFIG_BACKOFF_MAX_LIMIT 3600
#define MM_CONFIG_EVENTS_KEEP_DEFAULT 100000

struct mm_config {
	char path[4096];  /* the file read ("" = built-in defaults) */
	char store[4096];
	char store_password_file[4096];
	char host_name[64];  /* "" : gethostname() */
	char admin_socket[108];
	char admin_group[64];
	gid_t admin_gid;  /* (gid_t)-1 when admin_group is empty */
	char query_socket[108];
	char query_group[64];
	gid_t query_gid;
	char query_snapshot[108];        /* as set; query_snapshot_set false: derived */
	bool query_snapshot_set;
	uint32_t expiry_warning_days;    /* daemon/expiry.h; 0: off */
	uint32_t reqid_min, reqid_max;
	struct mm_prefix cscf[MM_CONFIG_MAX_LOCAL];
	unsigned cscf_kinds[MM_CONFIG_MAX_LOCAL];  /* MM_KIND_BIT()s: the peers it faces */
	size_t n_cscf;
	struct mm_addr tunnel[2];
	size_t n_tunnel;
	bool forward;
	bool routes;                   /* [local] routes: host.c installs them */
	uint32_t route_table, route_protocol, route_rule_priority;
	bool spd_enabled;
	uint32_t spd_prio_base;
	uint32_t spd_tag;
	uint32_t spd_verify_interval;  /* seconds; 0: no periodic check */
	uint32_t spd_shrink_limit;     /* percent, 0..100; 100: no guard */
	uint32_t spd_repair_burst;       /* backoff.h; 0: no back-off */
	uint32_t spd_repair_window;      /* seconds, >= 1 */
	uint32_t spd_repair_backoff_max; /* seconds, 1 .. MM_CONFIG_BACKOFF_MAX_LIMIT */
	int query_untrusted;             /* enum mm_untrusted_mode */
	uint32_t query_max_clients;
	bool query_require_dst;          /* inbound must name dst (docs/privacy.md) */
	bool ike_enabled;
	char ike_vici_socket[108];
	char ike_certificate[4096];
	char ike_private_key[4096];
	char ike_local_id[256];
	uint32_t ike_dpd_delay;
	uint32_t log_events_keep;        /* [log] events_keep: rows kept, >= 1 */
	/* [metrics] listen: "" off, else a loopback address and port
	 * ("127.0.0.1:9477", "[::1]:9477"), parsed into metrics_addr/port. */
	char metrics_listen[64];
	struct mm_addr metrics_addr;
	uint16_t metrics_port;
};

void mm_config_defaults(struct mm_config *c);
/* The snapshot's path (policy/snapshot.h) into out: [daemon]
 * query_snapshot, or derived from query_socket ("" when there is no query
 * socket or the setting is empty: no snapshot). */
void mm_config_snapshot_path(const struct mm_config *c, char out[108]);
/* Our CSCF prefixes with the kinds each faces, borrowed from c. */
static inline struct mm_cscf_set mm_config_cscf(const struct mm_config *c)
{
	return (struct mm_cscf_set){ .prefix = c->cscf, .kinds = c->cscf_kinds, .n = c->n_cscf };
}
/* Parse a [metrics] listen value ("" is off: 0, *ret_port 0): a loopback
 * address (127.0.0.0/8 or ::1, IPv6 in brackets) and a port 1..65535.
 * Anything else -EINVAL, err naming field. */
int mm_config_metrics_listen(const char *value, struct mm_addr *ret_addr, uint16_t *ret_port,
			     const char *field, struct mm_err *err);
/* Read path over the defaults.  On error err names "FILE:LINE key". */
int mm_config_load(const char *path, struct mm_config *ret, struct mm_err *err);

#endif
