/* Inside the store: what its two backends share.  store.c holds the
 * public functions and the SQLite backend; store_pg.c the PostgreSQL one,
 * to which every public function hands a store opened on a postgresql://
 * URI.  Both read and write the same rows through the text forms below,
 * so a partner means the same in either. */
#ifndef MM_STORE_INT_H
#define MM_STORE_INT_H

#include "store.h"

/* The partner row's columns, in this order, in both schemas. */
#define MM_STORE_PARTNER_COLUMNS                                                      \
	"domain, reqid, kind, agreement, esp, path, enabled, ranges, gateways, ca_pem, " \
	"ca_sha256, ca_subject, ca_not_before, ca_not_after, created, updated, "        \
	"ca2_pem, ca2_sha256, ca2_subject, ca2_not_before, ca2_not_after, crls, revocation"
#define MM_STORE_N_PARTNER_COLUMNS 23

/* A partner row as text, one string per column (integers in decimal). */
struct mm_store_row {
	char *col[MM_STORE_N_PARTNER_COLUMNS];
};

/* p's row (caller frees with mm_store_row_free); -ENOMEM. */
int mm_store_row_from_partner(const struct mm_partner *p, struct mm_store_row *row);
void mm_store_row_free(struct mm_store_row *row);
/* The partner a row describes; NULL columns read as "".  -EINVAL when a
 * column does not parse, -ENOMEM. */
int mm_store_row_to_partner(const char *const *col, struct mm_partner **ret);

/* The audit's view of a partner (NULL for NULL): everything but the PEM,
 * whose fingerprint says which CA it was.  Caller frees. */
char *mm_store_audit_text(const struct mm_partner *p);

/* An audit row as JSON from its columns as text: id, time, txn, host,
 * uid, user, pid, request, action, domain, before, after (before and
 * after NULL when none). */
json_t *mm_store_audit_json(const char *const *col);

/* MM_ERR_CONFLICT for a change set computed from table version `from`
 * when the store holds `now`: names the partners. */
int mm_store_conflict(const struct mm_change *changes, size_t n, uint64_t from, uint64_t now,
		      struct mm_err *err);

/* Whether f selects entries of kind (all kinds when it lists none). */
bool mm_store_filter_kind(const struct mm_store_filter *f, const char *kind);

/* The acting host: opts' host_name, else gethostname(). */
void mm_store_set_host(char *host, size_t size, const struct mm_store_opts *opts);

/* The PostgreSQL backend (store_pg.c): the same contracts as the public
 * functions of the same names in store.h. */
struct mm_store_pg;
int mm_store_pg_open(const char *uri, const struct mm_store_opts *opts,
		     struct mm_store_pg **ret, struct mm_err *err);
void mm_store_pg_close(struct mm_store_pg *s);
const char *mm_store_pg_name(const struct mm_store_pg *s);
const char *mm_store_pg_host(const struct mm_store_pg *s);
int mm_store_pg_schema_version(struct mm_store_pg *s);
int mm_store_pg_version(struct mm_store_pg *s, uint64_t *ret, struct mm_err *err);
int mm_store_pg_audited(struct mm_store_pg *s, uint64_t from, uint64_t to, bool *ret,
			struct mm_err *err);
int mm_store_pg_load(struct mm_store_pg *s, uint32_t reqid_min, uint32_t reqid_max,
		     struct mm_table **ret, struct mm_err *err);
int mm_store_pg_commit(struct mm_store_pg *s, const struct mm_change *changes, size_t n,
		       struct mm_table *next, const struct mm_actor *actor, struct mm_err *err);
int mm_store_pg_audit(struct mm_store_pg *s, const char *domain, unsigned limit,
		      json_t **ret, struct mm_err *err);
int mm_store_pg_changes(struct mm_store_pg *s, const struct mm_store_filter *f, json_t **ret,
			struct mm_err *err);
int mm_store_pg_events_write(struct mm_store_pg *s, const struct mm_store_event *ev, size_t n,
			     uint32_t keep, struct mm_err *err);
int mm_store_pg_events(struct mm_store_pg *s, const struct mm_store_filter *f, json_t **ret,
		       struct mm_err *err);
int mm_store_pg_dump(struct mm_store_pg *s, char **ret);
int mm_store_pg_fd(const struct mm_store_pg *s);
int mm_store_pg_poll(struct mm_store_pg *s, uint64_t *version);
const char *mm_store_pg_unreachable(const struct mm_store_pg *s);
int mm_store_pg_reconnect(struct mm_store_pg *s, struct mm_err *err);
int mm_store_pg_reconnect_start(struct mm_store_pg *s, int *fd, int *events,
				struct mm_err *err);
int mm_store_pg_reconnect_poll(struct mm_store_pg *s, int *fd, int *events,
			       struct mm_err *err);
void mm_store_pg_reconnect_cancel(struct mm_store_pg *s, const char *why);
/* For tests only: mm_store_pg_open, migrating no further than
 * schema_version (1..MM_STORE_SCHEMA_VERSION), so that a test can make a
 * store as an older mmtrust left it. */
int mm_store_pg_open_at(const char *uri, const struct mm_store_opts *opts, int schema_version,
			struct mm_store_pg **ret, struct mm_err *err);

#endif
