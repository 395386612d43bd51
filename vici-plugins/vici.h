/* vici: what mmtrust says to and hears from strongSwan's charon.
 *
 * This is the public header of vici-plugins/ (with vici_client.h and
 * vici_msg.h).  Each command and event lives in its own file:
 *   cmd_load_conn.c cmd_unload_conn.c cmd_get_conns.c cmd_load_cert.c
 *   cmd_load_key.c cmd_initiate.c cmd_terminate.c cmd_rekey.c cmd_list_sas.c
 *   cmd_flush_certs.c
 *   evt_child_updown.c evt_child_rekey.c evt_ike_updown.c evt_ike_rekey.c
 *
 * Commands come in two layers:
 *   vici_X_build() - a pure function producing the request frame in a
 *                    vici_builder the caller frees (testable without charon);
 *   vici_X()       - queues that request on a connected vici_client and calls
 *                    a completion callback with the decoded result.
 * Events: vici_X_decode() turns a received event message into an owned
 * struct freed with the matching vici_X_free() (which accepts NULL).
 *
 * Ownership: configuration structs passed in (vici_conn_conf, ...) are
 * borrowed for the duration of the call only; the request is serialised
 * before the call returns.  Decoded structs own all their strings and arrays.
 * String arrays ("strv") are NULL-terminated.
 *
 * Errors: negative errno.  -EREMOTEIO means charon answered success = no;
 * the completion callback then gets charon's errmsg (or NULL).  Decoders
 * return -EBADMSG when a field that is present does not parse (a missing
 * field is left 0/NULL, charon omits many of them depending on state). */
#ifndef MM_VICI_H
#define MM_VICI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vici-plugins/vici_client.h"
#include "vici-plugins/vici_msg.h"

/* Event names, as charon spells them. */
#define VICI_EVT_CHILD_UPDOWN "child-updown"
#define VICI_EVT_CHILD_REKEY "child-rekey"
#define VICI_EVT_IKE_UPDOWN "ike-updown"
#define VICI_EVT_IKE_REKEY "ike-rekey"
#define VICI_EVT_LIST_SA "list-sa"

/* Completion of a command whose reply is { success, errmsg }.  error is 0,
 * -EREMOTEIO (charon refused; errmsg is its reason or NULL), or a transport
 * error from vici_client (-ECONNRESET, -ETIMEDOUT, -EBADMSG, -EOPNOTSUPP).
 * errmsg is borrowed for the duration of the call. */
typedef void (*vici_done_fn)(struct vici_client *c, int error, const char *errmsg, void *userdata);

/* ---- load-conn (cmd_load_conn.c) -------------------------------------- */

struct vici_child_conf {
	const char *name;                 /* CHILD_SA config name */
	const char *const *local_ts;      /* e.g. "10.0.0.0/24"; NULL: charon's dynamic */
	const char *const *remote_ts;
	const char *const *esp_proposals; /* NULL: charon's default */
	uint32_t reqid;                   /* fixed reqid; 0 is refused (see below) */
};

/* One IKE connection as mmtrust loads it.  Fixed by design (DESIGN.md), so
 * not fields: version = 2, local.auth = remote.auth = pubkey, and on every
 * child mode = tunnel, policies = no, start_action = start,
 * close_action = start, dpd_action = restart.  A non-zero reqid is
 * required because with policies = no the SAs match the daemon's policy
 * templates only through it. */
struct vici_conn_conf {
	const char *name;                  /* IKE config name, 1..255 bytes */
	const char *const *local_addrs;    /* NULL: %any */
	const char *const *remote_addrs;   /* partner IKE gateway(s); required */
	uint16_t local_port, remote_port;  /* 0: charon's default (500) */
	const char *const *proposals;      /* IKE proposals; NULL: default */
	const char *local_id;              /* NULL: the certificate's subject */
	/* Our certificate as PEM or DER data (VICI wants data, not paths);
	 * NULL: charon picks a loaded certificate (load-cert) matching
	 * local_id. */
	const void *local_cert;
	size_t local_cert_len;
	const char *remote_id;             /* partner domain; required */
	const char *const *remote_cacerts; /* PEM data of the CA(s) that must sign */
	/* remote.revocation: "strict", "ifuri" or "relaxed"; NULL: charon's
	 * default (relaxed).  Checked only when an IKE_SA authenticates. */
	const char *remote_revocation;
	uint32_t dpd_delay;                /* seconds; 0: no DPD */
	const struct vici_child_conf *children;
	size_t n_children;                 /* >= 1 */
};

/* -EINVAL for a missing name, remote_addrs, remote_id, child name, a zero
 * reqid or no child; -EMSGSIZE if a value or the whole message is too big. */
int vici_load_conn_build(const struct vici_conn_conf *conf, struct vici_builder **ret);
int vici_load_conn(struct vici_client *c, const struct vici_conn_conf *conf, vici_done_fn done,
		   void *userdata);

/* ---- unload-conn (cmd_unload_conn.c) ---------------------------------- */

int vici_unload_conn_build(const char *name, struct vici_builder **ret);
int vici_unload_conn(struct vici_client *c, const char *name, vici_done_fn done, void *userdata);

/* ---- get-conns (cmd_get_conns.c) ---------------------------------------- */

/* Names of the connections loaded over VICI (by anyone), to find and unload
 * stale ones after a restart.  conns is a NULL-terminated array borrowed for
 * the duration of the callback; NULL when error < 0. */
typedef void (*vici_get_conns_fn)(struct vici_client *c, int error, char *const *conns,
				  void *userdata);
int vici_get_conns_build(struct vici_builder **ret);
/* The reply's conns list as an owned NULL-terminated array (free with
 * vici_strv_free()); -EBADMSG if it is missing or not a list of strings. */
int vici_get_conns_decode(const struct vici_msg *reply, char ***ret);
void vici_strv_free(char **v);
int vici_get_conns(struct vici_client *c, vici_get_conns_fn done, void *userdata);

/* ---- load-cert (cmd_load_cert.c) -------------------------------------- */

enum vici_cert_flag {
	VICI_CERT_FLAG_NONE, /* an end-entity certificate (ours) */
	VICI_CERT_FLAG_CA,
	_VICI_CERT_FLAG_MAX,
};

/* An X.509 certificate, PEM or DER data, 1..65535 bytes. */
int vici_load_cert_build(const void *data, size_t len, enum vici_cert_flag flag,
			 struct vici_builder **ret);
int vici_load_cert(struct vici_client *c, const void *data, size_t len, enum vici_cert_flag flag,
		   vici_done_fn done, void *userdata);

/* A CRL (load-cert type X509_CRL), PEM or DER data, 1..65535 bytes (a
 * VICI value's limit; larger CRLs are for charon to fetch from the
 * certificates' URIs).  charon
 * keeps the newest CRL per issuer; it applies to every connection whose
 * peer's chain has that issuer. */
#define VICI_CRL_MAX VICI_VALUE_MAX
int vici_load_crl_build(const void *data, size_t len, struct vici_builder **ret);
int vici_load_crl(struct vici_client *c, const void *data, size_t len, vici_done_fn done,
		  void *userdata);

/* ---- load-key (cmd_load_key.c) ---------------------------------------- */

enum vici_key_type {
	VICI_KEY_ANY,   /* charon detects the type */
	VICI_KEY_RSA,
	VICI_KEY_ECDSA,
	_VICI_KEY_TYPE_MAX,
};

/* A private key, PEM or DER data, 1..65535 bytes.  The builder and the
 * client wipe their copies of the frame when they free it. */
int vici_load_key_build(const void *data, size_t len, enum vici_key_type type,
			struct vici_builder **ret);
int vici_load_key(struct vici_client *c, const void *data, size_t len, enum vici_key_type type,
		  vici_done_fn done, void *userdata);

/* ---- initiate / terminate (cmd_initiate.c, cmd_terminate.c) ------------- */

/* timeout_ms: charon's semantics, 0 waits for the result without limit
 * (the client's own command timeout still applies, see vici_client.h),
 * -1 returns at once, > 0 waits at most that long. */
struct vici_initiate_args {
	const char *child; /* CHILD_SA config name; required */
	const char *ike;   /* IKE config to find the child under; optional */
	int timeout_ms;
};
int vici_initiate_build(const struct vici_initiate_args *args, struct vici_builder **ret);
int vici_initiate(struct vici_client *c, const struct vici_initiate_args *args, vici_done_fn done,
		  void *userdata);

/* Exactly one of child / ike / child_id / ike_id selects what to terminate
 * (-EINVAL otherwise; ids are 0 when unused). */
struct vici_terminate_args {
	const char *child;
	const char *ike;
	uint32_t child_id; /* charon's terminate "child-id": the CHILD_SA unique id */
	uint32_t ike_id;   /* IKE_SA unique id (list-sas "uniqueid") */
	/* charon destroys the IKE_SA at once (sends DELETE without waiting
	 * for the answer): for an SA already refused, whose peer may not be
	 * reachable where charon thinks it is. */
	bool force;
	int timeout_ms;
};
int vici_terminate_build(const struct vici_terminate_args *args, struct vici_builder **ret);
int vici_terminate(struct vici_client *c, const struct vici_terminate_args *args,
		   vici_done_fn done, void *userdata);

/* ---- flush-certs (cmd_flush_certs.c) ------------------------------------ */

/* Empty charon's certificate cache, of one type ("X509_CRL") or all (NULL).
 * charon caches every CRL it has verified and, checking revocation, uses
 * the first valid cached one it finds: a newer CRL loaded with load-cert is
 * not used until the cached one is gone. */
int vici_flush_certs_build(const char *type, struct vici_builder **ret);
int vici_flush_certs(struct vici_client *c, const char *type, vici_done_fn done, void *userdata);

/* ---- rekey (cmd_rekey.c) ------------------------------------------------ */

/* Exactly one of ike / ike_id selects the IKE_SA (-EINVAL otherwise).
 * reauth: a new IKE_SA authenticates from scratch (certificates and their
 * revocation checked again) instead of a rekey that keeps the
 * authentication. */
struct vici_rekey_args {
	const char *ike;
	uint32_t ike_id;
	bool reauth;
};
int vici_rekey_build(const struct vici_rekey_args *args, struct vici_builder **ret);
int vici_rekey(struct vici_client *c, const struct vici_rekey_args *args, vici_done_fn done,
	       void *userdata);

/* ---- SAs: list-sas (cmd_list_sas.c) and the events ---------------------- */

struct vici_child_sa {
	char *name;        /* CHILD_SA config name */
	uint32_t uniqueid;
	uint32_t reqid;
	char *state;       /* "INSTALLED", "REKEYED", ... (charon's text) */
	char *mode;        /* "TUNNEL", "TRANSPORT", "BEET" */
	char *protocol;    /* "ESP" or "AH" */
	bool encap;        /* UDP encapsulation */
	uint32_t spi_in;   /* host byte order; 0 if not reported */
	uint32_t spi_out;
	uint64_t install_time; /* seconds since installed */
	char **local_ts;   /* NULL-terminated, never NULL */
	char **remote_ts;
};

struct vici_ike_sa {
	char *name;        /* IKE config name */
	uint32_t uniqueid;
	char *state;       /* "ESTABLISHED", "CONNECTING", ... */
	char *local_host;
	uint16_t local_port;
	char *local_id;
	char *remote_host;
	uint16_t remote_port;
	char *remote_id;
	bool established_known; /* charon reports it only once established */
	uint64_t established;   /* seconds since established */
	struct vici_child_sa *children;
	size_t n_children;
};

void vici_ike_sa_free(struct vici_ike_sa *sa);
void vici_ike_sa_array_free(struct vici_ike_sa **sas, size_t n);

/* One list-sa event ({ <ike name> = { ... child-sas = { ... } } }). */
int vici_list_sa_decode(const struct vici_msg *m, struct vici_ike_sa **ret);
int vici_list_sas_build(const char *ike_filter, struct vici_builder **ret);

/* Completion of vici_list_sas(): sas[0..n) borrowed for the duration of the
 * callback (NULL, 0 when error < 0).  A list-sa event that does not decode
 * fails the whole listing with -EBADMSG: a partial SA map is worse than
 * none. */
typedef void (*vici_list_sas_fn)(struct vici_client *c, int error, struct vici_ike_sa *const *sas,
				 size_t n, void *userdata);
/* Streams list-sas (ike_filter NULL: all IKE_SAs) and collects the events;
 * at most VICI_LIST_SAS_MAX SAs, more fail the listing with -E2BIG. */
#define VICI_LIST_SAS_MAX 65536u
int vici_list_sas(struct vici_client *c, const char *ike_filter, vici_list_sas_fn done,
		  void *userdata);

/* child-updown: the IKE_SA with only the affected CHILD_SA in children
 * (ike.n_children == 1 from charon; the decoder accepts any number). */
struct vici_child_updown {
	bool up;
	struct vici_ike_sa ike;
};
int vici_child_updown_decode(const struct vici_msg *m, struct vici_child_updown **ret);
void vici_child_updown_free(struct vici_child_updown *e);

/* child-rekey: the IKE_SA (its children left empty) and the CHILD_SA before
 * and after the rekeying. */
struct vici_child_rekey {
	struct vici_ike_sa ike;
	struct vici_child_sa old_sa;
	struct vici_child_sa new_sa;
};
int vici_child_rekey_decode(const struct vici_msg *m, struct vici_child_rekey **ret);
void vici_child_rekey_free(struct vici_child_rekey *e);

/* ike-updown: the IKE_SA (children empty). */
struct vici_ike_updown {
	bool up;
	struct vici_ike_sa ike;
};
int vici_ike_updown_decode(const struct vici_msg *m, struct vici_ike_updown **ret);
void vici_ike_updown_free(struct vici_ike_updown *e);

/* ike-rekey: the IKE_SA before and after (both named after the config). */
struct vici_ike_rekey {
	struct vici_ike_sa old_sa;
	struct vici_ike_sa new_sa;
};
int vici_ike_rekey_decode(const struct vici_msg *m, struct vici_ike_rekey **ret);
void vici_ike_rekey_free(struct vici_ike_rekey *e);

#endif
