/* libFuzzer target for the admin protocol (daemon/admin.c): request lines
 * through the daemon's line handling (daemon/jsonl.c) into admin_handle,
 * which decodes, validates and builds each change with the real code
 * (mm_partner_from_json, mm_partner_update, mm_table_apply, mm_table_diff).
 * The side effects are replaced at link time by the recording stubs below:
 * the store (mm_store_commit, mm_store_audit: policy/store.c is not linked),
 * the kernel and charon (kernel_status, kernel_audit, ike_status) and the
 * swap of the live table (mmtrustd_table_changed), so admin.c is fuzzed
 * unchanged, decode and validation up to the side effects.
 *
 * Input: one flag byte (bit 0: the store refuses every commit; bit 1: the
 * shrink guard refuses every guarded step; bit 2: the store is read-only), then
 * request lines, run in order against a table that starts with three
 * partners each time (reqid range 1000..1015, so exhaustion is reachable).
 *
 * Invariants: the common answer checks (fuzz_jsonl.h); a change is
 * committed only by partner.add/set/del and apply, never on a dry run,
 * never after a refusal; the table is swapped exactly when the store
 * committed, and the answer says "applied" exactly then; a refused commit
 * leaves the table as it was and is answered with an error; every change
 * set the store is given, and every table swapped in, holds the table's
 * rules: canonical domains in strict order, distinct reqids inside the
 * range, no two ranges of different partners overlapping, no gateway in
 * another partner's range, and each partner's JSON form parsing back to
 * an equal partner. */
#include "fuzz_jsonl.h"

#include "daemon/expiry.h"
#include "daemon/event.h"
#include "daemon/mmtrustd.h"
#include "fuzz_ca.h"

static struct mmtrustd mmd;
static struct mm_table *base;
static struct mm_jsonl_server server;
static bool commit_fails, shrink_refuses, store_readonly, store_away;
static unsigned syncs;
static unsigned commits, swaps, guards;

static void check_table(const struct mm_table *t)
{
	FUZZ_ASSERT(t->reqid_min == 1000 && t->reqid_max == 1015, "reqid range");
	for (size_t i = 0; i < t->n; i++) {
		const struct mm_partner *p = t->partners[i];
		char canon[MM_DOMAIN_MAX + 1];
		struct mm_partner *back = NULL;
		json_t *j = mm_partner_to_json(p, MM_JSON_CONFIG);

		FUZZ_ASSERT(mm_domain_canon(p->domain, canon, "d", NULL) == 0 &&
			    !strcmp(canon, p->domain), "domain '%s'", p->domain);
		FUZZ_ASSERT(i == 0 || strcmp(t->partners[i - 1]->domain, p->domain) < 0, "order");
		FUZZ_ASSERT(p->reqid >= t->reqid_min && p->reqid <= t->reqid_max, "reqid %u",
			    p->reqid);
		FUZZ_ASSERT(mm_partner_from_json(j, time(NULL), &back, NULL) == 0 &&
			    mm_partner_config_equal(p, back), "%s: JSON form does not round trip",
			    p->domain);
		mm_partner_unref(back);
		json_decref(j);
		for (size_t k = 0; k < i; k++) {
			const struct mm_partner *o = t->partners[k];

			FUZZ_ASSERT(o->reqid != p->reqid, "reqid %u twice", p->reqid);
			for (size_t a = 0; a < p->n_ranges; a++)
				for (size_t b = 0; b < o->n_ranges; b++)
					FUZZ_ASSERT(!mm_prefix_overlaps(&p->ranges[a], &o->ranges[b]),
						    "%s and %s overlap", p->domain, o->domain);
		}
		for (size_t k = 0; k < t->n; k++)
			for (size_t g = 0; k != i && g < p->n_gateways; g++)
				FUZZ_ASSERT(mm_table_lookup(t, &p->gateways[g], NULL) != t->partners[k],
					    "%s's gateway in %s", p->domain, t->partners[k]->domain);
	}
}

/* ---- the side effects, replaced ---- */

int mm_store_commit(struct mm_store *s, const struct mm_change *changes, size_t n,
		    struct mm_table *next, const struct mm_actor *actor, struct mm_err *err)
{
	uint32_t reqid_next = next->reqid_next;

	(void)s;
	(void)actor;
	commits++;
	next->version++;
	FUZZ_ASSERT(n > 0 && reqid_next >= 1000 && reqid_next <= 1016, "n %zu next %u", n,
		    reqid_next);
	for (size_t i = 0; i < n; i++) {
		const struct mm_change *c = &changes[i];

		FUZZ_ASSERT(c->op < MM_CHANGE__MAX && (c->before || c->after), "change %zu", i);
		FUZZ_ASSERT((c->op == MM_CHANGE_ADD) == !c->before &&
			    (c->op == MM_CHANGE_DEL) == !c->after, "change %zu", i);
		FUZZ_ASSERT(!c->before || !c->after || !strcmp(c->before->domain, c->after->domain),
			    "a set that renames");
	}
	if (commit_fails)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "disk full (fuzz stub)");
	return 0;
}

const char *mm_store_readonly(const struct mm_store *s)
{
	(void)s;
	return store_readonly ? "read-only (fuzz stub)" : NULL;
}

int shrink_check(struct mmtrustd *d, const struct mm_config *cfg, const struct mm_table *t,
		 const char *confirm, struct mm_err *err)
{
	(void)d;
	(void)cfg;
	check_table(t);
	guards++;
	if (shrink_refuses)
		return mm_err_set(err, MM_ERR_CONFLICT, "spd.shrink_limit", "refused (fuzz stub): %s",
				  confirm);
	return 0;
}

/* A fleet's store (fleet.c): away when the input says so. */
int fleet_sync(struct mmtrustd *d, struct mm_err *err)
{
	(void)d;
	syncs++;
	if (store_away)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "unreachable (fuzz stub)");
	return 0;
}

void fleet_commit_failed(struct mmtrustd *d, const struct mm_err *err)
{
	(void)d;
	(void)err;
}

void fleet_status(struct mmtrustd *d, json_t *o)
{
	(void)d;
	json_object_set_new(o, "connected", json_boolean(!store_away));
}

int mmtrustd_reload(struct mmtrustd *d, bool allow_shrink, struct mm_err *err)
{
	(void)d;
	(void)allow_shrink;
	return mm_err_set(err, MM_ERR_INTERNAL, "", "no reload here (fuzz stub)");
}

int mm_store_audit(struct mm_store *s, const char *domain, unsigned limit, json_t **ret,
		   struct mm_err *err)
{
	(void)s;
	(void)domain;
	(void)limit;
	(void)err;
	*ret = json_array();
	return 0;
}

/* The log's two sources: one entry each, so that the merge runs. */
int mm_store_changes(struct mm_store *s, const struct mm_store_filter *f, json_t **ret,
		     struct mm_err *err)
{
	(void)s;
	(void)f;
	(void)err;
	*ret = json_pack("[{s:s, s:I}]", "type", "change", "time_ms", (json_int_t)2000);
	return 0;
}

int events_query(const struct mm_store_filter *f, json_t **ret, bool *ret_memory,
		 uint64_t *ret_dropped, struct mm_err *err)
{
	(void)f;
	(void)err;
	*ret = json_pack("[{s:s, s:I}, {s:s, s:I}]", "type", "event", "time_ms", (json_int_t)1000,
			 "type", "event", "time_ms", (json_int_t)3000);
	*ret_memory = false;
	*ret_dropped = 0;
	return 0;
}

int mm_store_schema_version(struct mm_store *s)
{
	(void)s;
	return 1;
}

void mmtrustd_table_changed(struct mmtrustd *d, struct mm_table *newt,
			    const struct mm_change *changes, size_t n)
{
	(void)changes;
	(void)n;
	FUZZ_ASSERT(!commit_fails, "swapped after a refused commit");
	swaps++;
	check_table(newt);
	mm_table_free(d->table);
	d->table = newt;
}

json_t *kernel_status(struct mmtrustd *d, const char *domain)
{
	(void)d;
	(void)domain;
	return json_object();
}

json_t *kernel_audit(struct mmtrustd *d)
{
	(void)d;
	return mm_jsonl_ok(json_object());
}

/* The CRL files of changed partners: no file is read here (the fuzzer
 * must not reach the file system); a path that names "missing" is refused
 * as a missing file would be, so the refusal path runs too. */
int crl_check_changes(const struct mm_change *changes, size_t n, time_t now, struct mm_err *err)
{
	(void)now;
	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *a = changes[i].after;

		for (size_t k = 0; a && k < a->n_crls; k++) {
			FUZZ_ASSERT(a->crls[k][0] == '/', "relative CRL path %s passed", a->crls[k]);
			if (strstr(a->crls[k], "missing"))
				return mm_err_set(err, MM_ERR_INVALID, "crls", "%s: missing (fuzz stub)",
						  a->crls[k]);
		}
	}
	return 0;
}

void ike_status(struct mmtrustd *d, json_t *status)
{
	(void)d;
	(void)status;
}

void query_status(struct mm_query *q, json_t *status)
{
	(void)q;
	(void)status;
}

/* The host side (daemon/host.c, libnl) is not linked: no host here. */
void host_status(struct mmtrustd *d, json_t *status)
{
	(void)d;
	(void)status;
}

/* The expiry side (daemon/expiry.c, charon's data) is not linked. */
void expiry_status(struct mmtrustd *d, const char *domain, json_t *status)
{
	(void)d;
	(void)domain;
	(void)status;
}

/* The metrics (daemon/metrics.c) read the daemon's parts, which are not
 * linked: a fixed text, and the hooks count nothing. */
char *metrics_text(struct mmtrustd *d)
{
	(void)d;
	return strdup("# HELP mmtrust_partners Partners in the table.\n"
		      "# TYPE mmtrust_partners gauge\nmmtrust_partners 0\n");
}

uint64_t metrics_now_usec(void)
{
	return 0;
}

void metrics_store_commit(uint64_t usec)
{
	(void)usec;
}

void metrics_status(struct mmtrustd *d, json_t *status)
{
	(void)d;
	(void)status;
}

/* ---- the target ---- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seed[3][3] = {
		{ "alpha.example.net", "10.1.0.0/24", "100.64.0.1" },
		{ "beta.example.org", "2001:db8:b::/48", "2001:db8:ff::2" },
		{ "gamma.example.com", "10.3.0.0/16", "100.64.0.3" },
	};
	struct mm_change c[3] = { { 0 } };

	(void)argc;
	(void)argv;
	FUZZ_ASSERT(mm_table_new(1000, 1015, &base) == 0, "table");
	for (int i = 0; i < 3; i++) {
		json_t *j = json_pack("{s:s, s:s, s:b, s:[s], s:[s], s:s}", "domain", seed[i][0],
				      "kind", "ims", "agreement", i != 1, "ranges", seed[i][1],
				      "gateways", seed[i][2], "ca", FUZZ_CA_PEM);

		c[i].op = MM_CHANGE_ADD;
		FUZZ_ASSERT(mm_partner_from_json(j, time(NULL), &c[i].after, NULL) == 0, "%s",
			    seed[i][0]);
		json_decref(j);
	}
	{
		struct mm_table *t = NULL;

		FUZZ_ASSERT(mm_table_apply(base, c, 3, time(NULL), &t, NULL) == 0, "apply");
		mm_table_free(base);
		base = t;
	}
	for (int i = 0; i < 3; i++)
		mm_partner_unref(c[i].after);
	check_table(base);
	server.handler = admin_handle;
	server.userdata = &mmd;
	server.lim = (struct mm_jsonl_limits){ .max_line = 1 << 20, .max_out = 1 << 24 };
	return 0;
}

static void check(const json_t *req, const json_t *a, void *userdata)
{
	const struct mm_table *before = userdata;
	const char *op = fuzz_str_member(req, "op");
	bool ok = json_is_true(json_object_get(a, "ok"));
	bool changing = op && (!strcmp(op, "partner.add") || !strcmp(op, "partner.set") ||
			       !strcmp(op, "partner.del") || !strcmp(op, "apply"));
	const json_t *applied = json_object_get(json_object_get(a, "result"), "applied");

	FUZZ_ASSERT(commits <= 1 && swaps <= commits, "commits %u swaps %u", commits, swaps);
	FUZZ_ASSERT(changing || commits == 0, "%s committed", op);
	/* Every change is prepared on the store's table: asked first, and
	 * refused while the store is away. */
	FUZZ_ASSERT(!changing || syncs == 1, "%s without a sync (%u)", op, syncs);
	FUZZ_ASSERT(changing || syncs == 0, "%s synced", op);
	FUZZ_ASSERT(!store_away || commits == 0, "committed while the store is away");
	/* Only apply is guarded, and never when confirmed; a refusal by the
	 * guard commits nothing. */
	FUZZ_ASSERT(guards == 0 || (op && !strcmp(op, "apply") &&
				    !json_is_true(json_object_get(req, "allow_shrink"))),
		    "%s consulted the shrink guard", op);
	FUZZ_ASSERT(!(guards && shrink_refuses) || commits == 0, "committed past the shrink guard");
	FUZZ_ASSERT(!json_is_true(json_object_get(req, "dry_run")) || commits == 0,
		    "a dry run committed");
	FUZZ_ASSERT(ok || swaps == 0, "refused, yet swapped");
	FUZZ_ASSERT(swaps == (commits && !commit_fails), "commit %u swap %u", commits, swaps);
	if (changing && ok)
		FUZZ_ASSERT(json_is_boolean(applied) && json_is_true(applied) == (swaps == 1),
			    "applied says %d, swaps %u", json_is_true(applied), swaps);
	if (!swaps)
		FUZZ_ASSERT(mmd.table == before, "the table changed without a swap");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	commit_fails = data[0] & 1;
	shrink_refuses = data[0] & 2;
	store_readonly = data[0] & 4;
	store_away = data[0] & 8;
	mmd.table = mm_table_ref(base);
	/* One line at a time, so that check() knows the table before it. */
	for (size_t i = 1; i < size;) {
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t len = nl ? (size_t)(nl - (data + i)) + 1 : size - i;

		commits = swaps = guards = syncs = 0;
		fuzz_jsonl_lines(&server, data + i, len, check, mmd.table);
		i += len;
	}
	mm_table_free(mmd.table);
	mmd.table = NULL;
	return 0;
}
