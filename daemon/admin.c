/* The admin socket: every provisioning change goes through here, so that
 * validation, the store transaction and the audit row happen in one place.
 * Protocol: docs/admin-protocol.md. */
#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crl.h"
#include "expiry.h"
#include "event.h"
#include "fleet.h"
#include "log.h"
#include "mmtrustd.h"

static json_t *err_answer(const struct mm_err *e)
{
	return mm_jsonl_error(mm_err_code_name(e->code), e->field, "%s", e->msg);
}

static void actor_fill(struct mm_actor *a, const struct mm_jsonl_peer *peer, const char *op)
{
	a->uid = peer->uid;
	a->pid = peer->pid;
	if (mm_jsonl_peer_user(peer, a->user, sizeof(a->user), NULL) < 0)
		snprintf(a->user, sizeof(a->user), "%u", (unsigned)peer->uid);
	snprintf(a->request, sizeof(a->request), "%s", op);
}

int admin_authorize(void *userdata, const struct mm_jsonl_peer *peer)
{
	struct mmtrustd *d = userdata;

	/* The socket's mode already keeps others out; this is the second lock. */
	return mm_jsonl_peer_allowed(peer, d->cfg.admin_gid) ? 0 : -EPERM;
}

static const char *str_member(const json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

/* An optional member of JSON type 'b' (int *ret) or 's' (const char
 * **ret), left as it is when absent.  Any other type is refused, never
 * taken for "absent": "dry_run": "yes" read as false would commit the
 * change, "domain": 5 would log every partner.  Returns NULL, or the
 * error answer. */
static json_t *opt_member(const json_t *req, const char *key, char type, void *ret)
{
	const char fmt[] = { '{', 's', '?', type, '}', '\0' };
	json_error_t jerr;

	if (json_unpack_ex((json_t *)req, &jerr, 0, fmt, key, ret) < 0)
		return mm_jsonl_error("invalid", key, "must be %s",
				      type == 'b' ? "true or false" : "a string");
	return NULL;
}

static json_t *flag_member(const json_t *req, const char *key, bool *ret)
{
	int b = 0;
	json_t *bad = opt_member(req, key, 'b', &b);

	*ret = b;
	return bad;
}

/* A partner in a change report: everything but the PEM, whose fingerprint
 * says which CA it is (an apply of a large table would otherwise answer
 * with every certificate again). */
static json_t *partner_summary(const struct mm_partner *p)
{
	json_t *o = mm_partner_to_json(p, MM_JSON_FULL);

	json_object_del(o, "ca");
	return o;
}

static json_t *change_json(const struct mm_change *c)
{
	json_t *o = json_pack("{s:s, s:s}", "action", mm_change_op_name(c->op), "domain",
			      (c->after ? c->after : c->before)->domain);
	json_t *fields;

	if (!o)
		return NULL;
	if (c->before)
		json_object_set_new(o, "before", partner_summary(c->before));
	if (c->after)
		json_object_set_new(o, "after", partner_summary(c->after));
	if (c->op == MM_CHANGE_SET) {
		json_t *b = mm_partner_to_json(c->before, MM_JSON_CONFIG);
		json_t *a = mm_partner_to_json(c->after, MM_JSON_CONFIG);
		const char *key;
		json_t *v;

		fields = json_array();
		json_object_foreach(a, key, v)
			if (!json_equal(v, json_object_get(b, key)))
				json_array_append_new(fields, json_string(key));
		json_object_set_new(o, "fields", fields);
		json_decref(a);
		json_decref(b);
	}
	return o;
}

/* Validate, commit and swap: the one path every change takes.  The change
 * set's `after` partners get their reqids from mm_table_apply. */
static json_t *commit_changes(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			      const char *op, struct mm_change *changes, size_t n, bool dry_run,
			      bool guard)
{
	struct mm_table *newt = NULL;
	struct mm_err err = { 0 };
	struct mm_actor actor = { 0 };
	json_t *list;
	int r;

	r = mm_table_apply(d->table, changes, n, time(NULL), &newt, &err);
	if (r < 0)
		return err_answer(&err);
	/* CRL files named anew must be CRLs now: a typo would silently leave
	 * the partner unchecked. */
	r = crl_check_changes(changes, n, time(NULL), &err);
	if (r < 0) {
		mm_table_free(newt);
		return err_answer(&err);
	}
	/* Only a change that removes or changes a partner can shrink what
	 * the kernel enforces; a dry run answers as the change would. */
	for (size_t i = 0; guard && i < n; i++)
		if (changes[i].op != MM_CHANGE_ADD) {
			r = shrink_check(d, &d->cfg, newt, "repeat it with --allow-shrink", &err);
			break;
		}
	if (r < 0) {
		mm_table_free(newt);
		return err_answer(&err);
	}
	list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, change_json(&changes[i]));
	if (dry_run || n == 0) {
		mm_table_free(newt);
		return mm_jsonl_ok(json_pack("{s:o, s:b}", "changes", list, "applied", 0));
	}
	actor_fill(&actor, peer, op);
	{
		uint64_t t0 = metrics_now_usec();

		r = mm_store_commit(d->store, changes, n, newt, &actor, &err);
		if (r >= 0)
			metrics_store_commit(metrics_now_usec() - t0);
	}
	if (r < 0) {
		log_err("%s by %s (uid %u): store commit failed: %s: %s", op,
			actor.user, (unsigned)actor.uid, err.field, err.msg);
		fleet_commit_failed(d, &err);
		mm_table_free(newt);
		json_decref(list);
		return err_answer(&err);
	}
	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *p = changes[i].after ? changes[i].after : changes[i].before;

		log_event(MM_EVENT_CHANGE, LOG_NOTICE, &(struct mm_event_ctx){ p->domain, p->reqid, 0 },
			  "%s: partner %s %s (reqid %u) by %s (uid %u, pid %d)", op, p->domain,
			  changes[i].op == MM_CHANGE_ADD ? "added"
			  : changes[i].op == MM_CHANGE_SET ? "changed" : "deleted",
			  p->reqid, actor.user, (unsigned)actor.uid, (int)actor.pid);
	}
	mmtrustd_table_changed(d, newt, changes, n);
	return mm_jsonl_ok(json_pack("{s:o, s:b}", "changes", list, "applied", 1));
}

static json_t *op_partner_add(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			      const json_t *req)
{
	struct mm_change c = { .op = MM_CHANGE_ADD };
	struct mm_err err = { 0 };
	json_t *answer;
	bool dry_run = false;

	answer = flag_member(req, "dry_run", &dry_run);
	if (answer)
		return answer;
	if (mm_partner_from_json(json_object_get(req, "partner"), time(NULL), &c.after, &err) < 0) {
		mm_err_prefix(&err, "partner");
		return err_answer(&err);
	}
	answer = commit_changes(d, peer, "partner.add", &c, 1, dry_run, false);
	mm_partner_unref(c.after);
	return answer;
}

static struct mm_partner *find_named(struct mmtrustd *d, const json_t *req, struct mm_err *err)
{
	char domain[MM_DOMAIN_MAX + 1];
	struct mm_partner *p;

	if (!str_member(req, "domain")) {
		mm_err_set(err, MM_ERR_INVALID, "domain", "is required (a string)");
		return NULL;
	}
	if (mm_domain_canon(str_member(req, "domain"), domain, "domain", err) < 0)
		return NULL;
	p = mm_table_find(d->table, domain);
	if (!p)
		mm_err_set(err, MM_ERR_NOT_FOUND, "domain", "no partner %s in the table", domain);
	return p;
}

static json_t *op_partner_set(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			      const json_t *req)
{
	struct mm_change c = { .op = MM_CHANGE_SET };
	struct mm_err err = { 0 };
	json_t *answer;
	bool dry_run = false;

	answer = flag_member(req, "dry_run", &dry_run);
	if (answer)
		return answer;
	c.before = find_named(d, req, &err);
	if (!c.before)
		return err_answer(&err);
	if (mm_partner_update(c.before, json_object_get(req, "set"), json_object_get(req, "add"),
			      json_object_get(req, "remove"), time(NULL), &c.after, &err) < 0)
		return err_answer(&err);
	if (mm_partner_config_equal(c.before, c.after)) {
		mm_partner_unref(c.after);
		return mm_jsonl_ok(json_pack("{s:[], s:b}", "changes", "applied", 0));
	}
	mm_partner_ref(c.before);
	answer = commit_changes(d, peer, "partner.set", &c, 1, dry_run, false);
	mm_partner_unref(c.before);
	mm_partner_unref(c.after);
	return answer;
}

static json_t *op_partner_del(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			      const json_t *req)
{
	struct mm_change c = { .op = MM_CHANGE_DEL };
	struct mm_err err = { 0 };
	json_t *answer;
	bool dry_run = false;

	answer = flag_member(req, "dry_run", &dry_run);
	if (answer)
		return answer;
	c.before = find_named(d, req, &err);
	if (!c.before)
		return err_answer(&err);
	mm_partner_ref(c.before);
	answer = commit_changes(d, peer, "partner.del", &c, 1, dry_run, false);
	mm_partner_unref(c.before);
	return answer;
}

static json_t *op_partner_show(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			       const json_t *req)
{
	struct mm_err err = { 0 };
	struct mm_partner *p = find_named(d, req, &err);

	(void)peer;
	if (!p)
		return err_answer(&err);
	return mm_jsonl_ok(mm_partner_to_json(p, MM_JSON_FULL));
}

static json_t *op_partner_list(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			       const json_t *req)
{
	json_t *list, *bad;
	bool config = false;

	(void)peer;
	bad = flag_member(req, "config", &config);
	if (bad)
		return bad;
	list = json_array();
	for (size_t i = 0; list && i < d->table->n; i++)
		json_array_append_new(list, mm_partner_to_json(d->table->partners[i],
							       config ? MM_JSON_CONFIG : MM_JSON_FULL));
	return mm_jsonl_ok(json_pack("{s:o, s:{s:I, s:I, s:I}}", "partners", list, "reqid_range",
				     "min", (json_int_t)d->table->reqid_min, "max",
				     (json_int_t)d->table->reqid_max, "next",
				     (json_int_t)d->table->reqid_next));
}

static json_t *op_apply(struct mmtrustd *d, const struct mm_jsonl_peer *peer, const json_t *req)
{
	const json_t *arr = json_object_get(req, "partners"), *v;
	struct mm_partner **want;
	struct mm_change *changes = NULL;
	size_t n = 0, n_changes = 0, i;
	struct mm_err err = { 0 };
	time_t now = time(NULL);
	json_t *answer = NULL;
	bool dry_run = false, allow_shrink = false;

	answer = flag_member(req, "dry_run", &dry_run);
	if (!answer)
		answer = flag_member(req, "allow_shrink", &allow_shrink);
	if (answer)
		return answer;
	if (!json_is_array(arr))
		return mm_jsonl_error("invalid", "partners", "must be a list of partners");
	want = calloc(json_array_size(arr) + 1, sizeof(*want));
	if (!want)
		return mm_jsonl_error("internal", NULL, "out of memory");
	json_array_foreach(arr, i, v) {
		char where[96];
		const char *dom = json_string_value(json_object_get(v, "domain"));

		/* Reading thousands of partners (CA checks) takes seconds:
		 * other clients' read-only requests are answered meanwhile,
		 * as between the kernel step's slices. */
		if (i % 64 == 63)
			(void)mm_jsonl_server_poll(d->admin);
		if (mm_partner_from_json(v, now, &want[n], &err) < 0) {
			if (dom)
				snprintf(where, sizeof(where), "partners[%zu](%.40s)", i, dom);
			else
				snprintf(where, sizeof(where), "partners[%zu]", i);
			mm_err_prefix(&err, where);
			answer = err_answer(&err);
			goto out;
		}
		n++;
	}
	if (mm_table_diff(d->table, want, n, &changes, &n_changes, &err) < 0) {
		answer = err_answer(&err);
		goto out;
	}
	answer = commit_changes(d, peer, "apply", changes, n_changes, dry_run, !allow_shrink);
out:
	mm_changes_free(changes, n_changes);
	for (i = 0; i < n; i++)
		mm_partner_unref(want[i]);
	free(want);
	return answer;
}

static json_t *op_lookup(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			 const json_t *req)
{
	const struct mm_prefix *range = NULL;
	struct mm_partner *p;
	struct mm_err err = { 0 };
	struct mm_addr a;
	char buf[MM_ADDR_STRLEN];
	json_t *o;

	(void)peer;
	if (mm_addr_parse(str_member(req, "address"), &a, "address", &err) < 0)
		return err_answer(&err);
	p = mm_table_lookup(d->table, &a, &range);
	o = json_pack("{s:s}", "address", mm_addr_str(&a, buf));
	if (!p) {
		json_object_set_new(o, "partner", json_null());
		return mm_jsonl_ok(o);
	}
	json_object_set_new(o, "partner", json_string(p->domain));
	json_object_set_new(o, "range", json_string(mm_prefix_str(range, buf)));
	json_object_set_new(o, "reqid", json_integer(p->reqid));
	json_object_set_new(o, "kind", json_string(mm_kind_name(p->kind)));
	json_object_set_new(o, "agreement", json_boolean(p->agreement));
	json_object_set_new(o, "path", json_string(mm_path_name(p->path)));
	json_object_set_new(o, "enabled", json_boolean(p->enabled));
	return mm_jsonl_ok(o);
}

/* A time bound of the log request: milliseconds since the epoch. */
static json_t *time_member(const json_t *req, const char *key, int64_t *ret)
{
	const json_t *v = json_object_get(req, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return mm_jsonl_error("invalid", key,
				      "must be a time in milliseconds since 1970-01-01T00:00:00Z");
	*ret = json_integer_value(v);
	return NULL;
}

static int64_t entry_time(const json_t *e)
{
	return json_integer_value(json_object_get(e, "time_ms"));
}

#define LOG_KINDS_MAX 32
#define LOG_STR_(x) #x
#define LOG_STR(x) LOG_STR_(x)

/* Provisioning changes (the audit trail) merged with the daemon's events,
 * in time order; a change comes before an event of the same millisecond. */
static json_t *op_log(struct mmtrustd *d, const struct mm_jsonl_peer *peer, const json_t *req)
{
	const json_t *lim = json_object_get(req, "limit"), *kinds = json_object_get(req, "kinds");
	const char *kind_names[LOG_KINDS_MAX];
	char domain[MM_DOMAIN_MAX + 1];
	struct mm_store_filter f = { .since_ms = 0, .until_ms = INT64_MAX };
	const char *dom = NULL;
	struct mm_err err = { 0 };
	json_t *changes, *events, *entries, *bad;
	uint64_t dropped = 0;
	bool memory = false;
	size_t i = 0, j = 0, skip;

	(void)peer;
	bad = opt_member(req, "domain", 's', &dom);
	if (!bad)
		bad = time_member(req, "since", &f.since_ms);
	if (!bad)
		bad = time_member(req, "until", &f.until_ms);
	if (bad)
		return bad;
	if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0 ||
		    json_integer_value(lim) > UINT32_MAX))
		return mm_jsonl_error("invalid", "limit", "must be a non-negative integer");
	if (kinds && !json_is_null(kinds)) {
		const json_t *k;

		if (!json_is_array(kinds) || json_array_size(kinds) > LOG_KINDS_MAX)
			return mm_jsonl_error("invalid", "kinds",
					      "must be an array of at most %d event kinds",
					      LOG_KINDS_MAX);
		json_array_foreach(kinds, i, k) {
			enum mm_event ev;

			if (!json_is_string(k) || mm_event_parse(json_string_value(k), &ev) < 0)
				return mm_jsonl_error("invalid", "kinds",
						      "%s is not an event kind (change, tunnel-up, "
						      "tunnel-down, ...: docs/operations.md, "
						      "\"Events and the journal\")",
						      json_is_string(k) ? json_string_value(k)
									: "an entry");
			kind_names[i] = mm_event_name(ev);
		}
		f.kinds = kind_names;
		f.n_kinds = json_array_size(kinds);
	}
	if (dom && mm_domain_canon(dom, domain, "domain", &err) < 0)
		return err_answer(&err);
	f.domain = dom ? domain : NULL;
	f.limit = lim ? (unsigned)json_integer_value(lim) : 0;
	if (mm_store_changes(d->store, &f, &changes, &err) < 0)
		return err_answer(&err);
	if (events_query(&f, &events, &memory, &dropped, &err) < 0) {
		json_decref(changes);
		return err_answer(&err);
	}
	/* Merge; then only the last `limit`. */
	entries = json_array();
	skip = json_array_size(changes) + json_array_size(events);
	skip = f.limit && skip > f.limit ? skip - f.limit : 0;
	i = 0;
	while (entries && (i < json_array_size(changes) || j < json_array_size(events))) {
		json_t *c = json_array_get(changes, i), *e = json_array_get(events, j);
		json_t *next = !e || (c && entry_time(c) <= entry_time(e)) ? c : e;

		if (next == c)
			i++;
		else
			j++;
		if (skip)
			skip--;
		else
			json_array_append(entries, next);
	}
	json_decref(changes);
	json_decref(events);
	if (!entries)
		return mm_jsonl_error("internal", "log", "out of memory");
	return mm_jsonl_ok(json_pack("{s:o, s:b, s:I, s:s?}", "entries", entries,
				     "events_in_memory", memory, "events_dropped",
				     (json_int_t)dropped, "note",
				     memory ? "the store is read-only: events since start are kept "
					      "in memory only (the newest " LOG_STR(EVENTS_RING_MAX)
					      "), and lost at stop" : NULL));
}

static json_t *op_ping(struct mmtrustd *d, const struct mm_jsonl_peer *peer, const json_t *req)
{
	(void)peer;
	(void)req;
	return mm_jsonl_ok(json_pack("{s:s, s:I, s:I, s:s, s:i}", "version", MMTRUST_VERSION,
				     "pid", (json_int_t)getpid(), "partners",
				     (json_int_t)d->table->n, "store", d->cfg.store,
				     "schema", mm_store_schema_version(d->store)));
}

static json_t *op_status(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			 const json_t *req)
{
	char domain[MM_DOMAIN_MAX + 1];
	const char *dom = NULL;
	struct mm_err err = { 0 };
	json_t *bad;

	(void)peer;
	bad = opt_member(req, "domain", 's', &dom);
	if (bad)
		return bad;
	if (dom) {
		if (mm_domain_canon(dom, domain, "domain", &err) < 0)
			return err_answer(&err);
		if (!mm_table_find(d->table, domain))
			return mm_jsonl_error("not-found", "domain", "no partner %s in the table",
					      domain);
	}
	{
		json_t *st = kernel_status(d, dom ? domain : NULL);
		const char *ro = mm_store_readonly(d->store);

		ike_status(d, st);
		query_status(d->query, st);
		host_status(d, st);
		expiry_status(d, dom ? domain : NULL, st);
		json_t *so = json_pack("{s:s, s:b, s:s?}", "path", d->cfg.store, "writable", !ro,
				       "problem", ro);

		fleet_status(d, so);
		json_object_set_new(st, "store", so);
		json_object_set_new(st, "snapshot", snapw_status(d->snap));
		metrics_status(d, st);
		return mm_jsonl_ok(st);
	}
}

static json_t *op_metrics(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			  const json_t *req)
{
	char *text;
	json_t *o;

	(void)peer;
	(void)req;
	text = metrics_text(d);
	if (!text)
		return mm_jsonl_error("internal", NULL, "out of memory");
	o = json_pack("{s:s}", "text", text);
	free(text);
	return mm_jsonl_ok(o);
}

static json_t *op_reload(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			 const json_t *req)
{
	struct mm_err err = { 0 };
	bool allow_shrink = false;
	json_t *bad = flag_member(req, "allow_shrink", &allow_shrink);

	if (bad)
		return bad;
	log_notice("reload asked by uid %u (pid %d)%s", (unsigned)peer->uid, (int)peer->pid,
		   allow_shrink ? ", shrink guard waived" : "");
	if (mmtrustd_reload(d, allow_shrink, &err) < 0)
		return err_answer(&err);
	return mm_jsonl_ok(json_pack("{s:I, s:s}", "partners", (json_int_t)d->table->n, "store",
				     d->cfg.store));
}

static json_t *op_audit(struct mmtrustd *d, const struct mm_jsonl_peer *peer,
			const json_t *req)
{
	(void)peer;
	(void)req;
	return kernel_audit(d);
}

/* readonly: changes nothing and costs little, so it may be answered
 * between the slices of a long step (an apply, a repair; jsonl.h
 * mm_jsonl_server_poll).  The others wait for the step: the writes
 * (serialized, in order), a dry run (it validates a whole table) and
 * audit (a dump of the whole SPD and SAD). */
static const struct {
	const char *name;
	json_t *(*fn)(struct mmtrustd *d, const struct mm_jsonl_peer *peer, const json_t *req);
	bool readonly;
	bool changes;  /* prepares a change of the table: on the store's current one */
} ops[] = {
	{ "ping", op_ping, true, false },
	{ "partner.add", op_partner_add, false, true },
	{ "partner.set", op_partner_set, false, true },
	{ "partner.del", op_partner_del, false, true },
	{ "partner.show", op_partner_show, true, false },
	{ "partner.list", op_partner_list, true, false },
	{ "apply", op_apply, false, true },
	{ "lookup", op_lookup, true, false },
	{ "log", op_log, true, false },
	{ "status", op_status, true, false },
	{ "metrics", op_metrics, true, false },
	{ "audit", op_audit, false, false },
	{ "reload", op_reload, false, false },
};

bool admin_readonly(void *userdata, const json_t *req)
{
	const char *op = str_member(req, "op");

	(void)userdata;
	for (size_t i = 0; op && i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strcmp(op, ops[i].name) == 0)
			return ops[i].readonly;
	return true;  /* no such op: the answer is an error, nothing changes */
}

json_t *admin_handle(void *userdata, struct mm_jsonl_client *client,
		     const struct mm_jsonl_peer *peer, const json_t *req)
{
	(void)client;
	const char *op = str_member(req, "op");

	if (!op)
		return mm_jsonl_error("invalid-request", "op", "every request needs an \"op\" string");
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct mm_err err = { 0 };

		if (strcmp(op, ops[i].name) != 0)
			continue;
		/* A fleet: the change is prepared on the store's current table
		 * (caught up here), or refused when the store is away. */
		if (ops[i].changes && fleet_sync(userdata, &err) < 0)
			return err_answer(&err);
		return ops[i].fn(userdata, peer, req);
	}
	return mm_jsonl_error("unknown-op", "op", "unknown operation '%s'", op);
}
