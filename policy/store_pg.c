/* The PostgreSQL backend: not written yet (every call refuses). */
#include <errno.h>
#include "store_int.h"

#define NOPG(err) mm_err_set(err, MM_ERR_INTERNAL, "store", "PostgreSQL stores are not supported yet")
int mm_store_pg_open(const char *uri, const struct mm_store_opts *opts, struct mm_store_pg **ret, struct mm_err *err)
{ (void)uri; (void)opts; (void)ret; return NOPG(err); }
void mm_store_pg_close(struct mm_store_pg *s) { (void)s; }
const char *mm_store_pg_name(const struct mm_store_pg *s) { (void)s; return ""; }
const char *mm_store_pg_host(const struct mm_store_pg *s) { (void)s; return ""; }
int mm_store_pg_schema_version(struct mm_store_pg *s) { (void)s; return -EIO; }
int mm_store_pg_version(struct mm_store_pg *s, uint64_t *ret, struct mm_err *err) { (void)s; (void)ret; return NOPG(err); }
int mm_store_pg_load(struct mm_store_pg *s, uint32_t a, uint32_t b, struct mm_table **ret, struct mm_err *err) { (void)s; (void)a; (void)b; (void)ret; return NOPG(err); }
int mm_store_pg_commit(struct mm_store_pg *s, const struct mm_change *c, size_t n, struct mm_table *next, const struct mm_actor *a, struct mm_err *err) { (void)s; (void)c; (void)n; (void)next; (void)a; return NOPG(err); }
int mm_store_pg_audit(struct mm_store_pg *s, const char *d, unsigned l, json_t **ret, struct mm_err *err) { (void)s; (void)d; (void)l; (void)ret; return NOPG(err); }
int mm_store_pg_changes(struct mm_store_pg *s, const struct mm_store_filter *f, json_t **ret, struct mm_err *err) { (void)s; (void)f; (void)ret; return NOPG(err); }
int mm_store_pg_events_write(struct mm_store_pg *s, const struct mm_store_event *ev, size_t n, uint32_t keep, struct mm_err *err) { (void)s; (void)ev; (void)n; (void)keep; return NOPG(err); }
int mm_store_pg_events(struct mm_store_pg *s, const struct mm_store_filter *f, json_t **ret, struct mm_err *err) { (void)s; (void)f; (void)ret; return NOPG(err); }
int mm_store_pg_dump(struct mm_store_pg *s, char **ret) { (void)s; (void)ret; return -EIO; }
int mm_store_pg_fd(const struct mm_store_pg *s) { (void)s; return -1; }
int mm_store_pg_poll(struct mm_store_pg *s, uint64_t *v) { (void)s; (void)v; return -ENOTCONN; }
const char *mm_store_pg_unreachable(const struct mm_store_pg *s) { (void)s; return "not supported"; }
int mm_store_pg_reconnect(struct mm_store_pg *s, struct mm_err *err) { (void)s; return NOPG(err); }
