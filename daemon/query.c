/* The CSCF query socket: which partner sent this, is it protected by an
 * authenticated SA, keep or strip P-Asserted-Identity.  Read-only; every
 * answer comes from memory, never from netlink, VICI or the store.
 * Protocol: docs/protocol.md; decisions: policy/privacy.c, docs/privacy.md.
 *
 * Threads: the socket is served by a thread with its own event loop, so a
 * long admin request (an apply of a large table) in the main loop never
 * delays an answer.  The daemon core builds each view's input (query.h)
 * and publishes it here; the view is immutable (a reference to the
 * table, copies of the tunnels that are up with whether the kernel
 * enforces each partner's in-policies, the untrusted-next-hop mode, our
 * [local] cscf prefixes and whether inbound must name dst); the query
 * thread takes a reference to the current view per request under a mutex
 * held only for that pointer copy: it never reads the main thread's
 * state, and this file reads no other part of the daemon.
 * Events for subscribers cross over through a queue and an eventfd. */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "jsonl.h"
#include "query.h"
#include "version.h"
#include "policy/jsonfmt.h"
#include "policy/privacy.h"
#include "policy/spi.h"

struct view {
	unsigned refs;                /* atomic */
	struct mm_table *table;       /* one reference */
	struct mm_tunnel_info *up;    /* tunnels that are up, sorted by domain */
	bool *enforced;               /* per up[i]: query_view_input.enforced */
	bool *out_enforced;           /* per up[i]: query_view_input.out_enforced */
	size_t n_up;
	int untrusted;                /* enum mm_untrusted_mode */
	struct mm_prefix cscf[MM_CONFIG_MAX_LOCAL];  /* the in-policy's dst side */
	unsigned cscf_kinds[MM_CONFIG_MAX_LOCAL];    /* the kinds each faces */
	struct mm_cscf_set cscf_set;                 /* the two above */
	bool require_dst;
	unsigned tunnel_addrs;        /* query_view_input.tunnel_addrs */
	/* Atomic.  Set when a newer view could not be built (no memory): the
	 * facts this view holds may be stale, so it no longer vouches that
	 * the kernel enforces anything (fail closed until the next view). */
	bool withdrawn;
};

/* Per partner domain: an open-addressing hash table, grown by doubling up
 * to OTHER_KIND_SLOTS_MAX slots (at most half full); partners beyond that
 * are counted in the total only (and in `untracked`). */
#define OTHER_KIND_SLOTS_MAX 8192
struct other_kind_slot {
	char domain[MM_DOMAIN_MAX + 1];  /* "" : free */
	uint64_t n;
};
struct other_kind_counts {
	uint64_t total, untracked;
	struct other_kind_slot *slot;
	size_t n_slots, used;
};

struct mm_query {
	pthread_t thread;
	bool running;
	sd_event *ev;                 /* the query thread's loop */
	struct mm_jsonl_server *srv;
	sd_event_source *wake_src;
	int wake_fd;
	gid_t gid;
	char snapshot[108];           /* the snapshot's path, told by ping; "" none */
	pthread_mutex_t lock;         /* guards: view, events, stop */
	struct view *view;
	char **events;
	size_t n_events, cap_events;
	bool stop;
	/* Inbound answers "dst-other-kind" (status): counted by the query
	 * thread, read by the main thread's status, under count_lock. */
	pthread_mutex_t count_lock;
	struct other_kind_counts other_kind;
	/* Every decision answered, by direction, pai and reason (a static
	 * string: the set is small and fixed), same lock. */
	struct decision_count {
		const char *reason;
		bool outbound;
		enum mm_pai pai;
		uint64_t n;
	} decisions[64];
	size_t n_decisions;
};

static void view_unref(struct view *v)
{
	if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	mm_table_free(v->table);
	free(v->up);
	free(v->enforced);
	free(v->out_enforced);
	free(v);
}

static struct view *view_get(struct mm_query *q)
{
	struct view *v;

	pthread_mutex_lock(&q->lock);
	v = q->view;
	if (v)
		__atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&q->lock);
	return v;
}

/* The partner's up tunnel's place in v->up, or v->n_up. */
static size_t view_find(const struct view *v, const char *domain)
{
	size_t lo = 0, hi = v->n_up;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->up[mid].domain, domain);

		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return v->n_up;
}

static json_t *invalid(const char *field, const char *msg)
{
	return mm_jsonl_error("invalid", field, "%s", msg);
}

/* The member `field` as an SPI (policy/spi.h); 0 when absent or null. */
static json_t *spi_member(const json_t *req, const char *field, bool required, uint32_t *ret)
{
	const json_t *v = json_object_get(req, field);
	struct mm_err err = { 0 };

	*ret = 0;
	if (!required && (!v || json_is_null(v)))
		return NULL;
	if (mm_spi_from_json(v, ret, field, &err) < 0)
		return invalid(field, err.msg);
	return NULL;
}

/* An address member; NULL when absent (allowed unless required). */
static json_t *addr_member(const json_t *req, const char *field, bool required,
			   struct mm_addr *ret, bool *ret_given)
{
	const json_t *v = json_object_get(req, field);

	*ret_given = v && !json_is_null(v);
	if (!*ret_given && !required)
		return NULL;
	if (!*ret_given)
		return invalid(field, "is required ([query] require_dst = yes): the local address "
			       "the message arrived on");
	if (mm_addr_parse(json_string_value(v), ret, field, NULL) < 0)
		return invalid(field, "must be an IPv4 or IPv6 address string");
	return NULL;
}

static void partner_facts(json_t *o, const struct mm_partner *p)
{
	json_object_set_new(o, "partner", p ? json_string(p->domain) : json_null());
	json_object_set_new(o, "kind", p ? json_string(mm_kind_name(p->kind)) : json_null());
	json_object_set_new(o, "agreement", json_boolean(p && p->agreement));
	json_object_set_new(o, "path", p ? json_string(mm_path_name(p->path)) : json_null());
	json_object_set_new(o, "enabled", json_boolean(p && p->enabled));
}

/* Answers to the hot questions are written as text, not built as a tree
 * and encoded (that was two thirds of a query's cost).  Every string put
 * in unquoted-checked here is safe by construction: canonical domains
 * ([a-z0-9.-]), inet_ntop output, hex, ISO times, and our static words. */
struct sb {
	char buf[1536];
	size_t len;
	bool overflow;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->len + n >= sizeof(b->buf)) {
		b->overflow = true;
		return;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

static void sb_lit(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* ,"key":"value" or ,"key":null */
static void sb_str(struct sb *b, const char *key, const char *value)
{
	sb_lit(b, ",\"");
	sb_lit(b, key);
	if (!value) {
		sb_lit(b, "\":null");
		return;
	}
	sb_lit(b, "\":\"");
	sb_lit(b, value);
	sb_lit(b, "\"");
}

static void sb_bool(struct sb *b, const char *key, bool v)
{
	sb_lit(b, ",\"");
	sb_lit(b, key);
	sb_lit(b, v ? "\":true" : "\":false");
}

static void sb_partner(struct sb *b, const struct mm_partner *p)
{
	sb_str(b, "partner", p ? p->domain : NULL);
	sb_str(b, "kind", p ? mm_kind_name(p->kind) : NULL);
	sb_bool(b, "agreement", p && p->agreement);
	sb_str(b, "path", p ? mm_path_name(p->path) : NULL);
	sb_bool(b, "enabled", p && p->enabled);
}

static void sb_sa(struct sb *b, const struct mm_tunnel_info *t)
{
	char v[64];

	sb_lit(b, ",\"sa\":{");
	snprintf(v, sizeof(v), "\"reqid\":%" PRIu32, t->reqid);
	sb_lit(b, v);
	sb_str(b, "spi_in", mm_spi_str(t->spi_in, v));
	sb_str(b, "spi_out", mm_spi_str(t->spi_out, v));
	sb_str(b, "remote_id", mm_plain_text(t->remote_id));
	sb_str(b, "remote_host", mm_plain_text(t->remote_host));
	sb_str(b, "established", mm_time_str(t->since, v));
	sb_lit(b, "}");
}

/* Whether we hold a usable tunnel address for p (policy/privacy.h). */
static enum mm_tunnel_addr tunnel_addr(const struct view *v, const struct mm_partner *p)
{
	return p ? mm_tunnel_addr_of(v->tunnel_addrs, mm_partner_gateway_families(p))
		 : MM_TUNNEL_ADDR_UNKNOWN;
}

/* Every fact of an inbound decision, here and nowhere else: the partner
 * holding src, its tunnel from the view and whether the kernel enforces
 * its in-policies, the SPI, and dst against the view's cscf prefixes (the
 * in-policy's rule, policy/privacy.h). */
static void inbound_facts(const struct view *v, const struct mm_addr *src,
			  const struct mm_addr *dst, uint32_t spi,
			  struct mm_inbound_facts *ret, const struct mm_tunnel_info **ret_tunnel)
{
	const struct mm_partner *p = mm_table_lookup(v->table, src, NULL);
	const struct mm_tunnel_info *tp = NULL;
	struct mm_sa_view sa;

	if (p) {
		size_t i = view_find(v, p->domain);

		if (i < v->n_up) {
			tp = &v->up[i];
			sa = (struct mm_sa_view){
				.spi_in = tp->spi_in,
				.in_enforced = v->enforced[i] &&
					       !__atomic_load_n(&v->withdrawn, __ATOMIC_ACQUIRE),
			};
		}
	}
	mm_inbound_assemble(p, tp ? &sa : NULL, &v->cscf_set, src, dst, spi, tunnel_addr(v, p),
			    ret);
	*ret_tunnel = tp;
}

/* inet_pton accepts only the canonical dotted quad, so an IPv4 address is
 * echoed as given; IPv6 (and a mapped IPv4, when mm_addr_parse turns it
 * into IPv4) is written canonically. */
static const char *addr_text(const json_t *given, const struct mm_addr *a,
			     char buf[MM_ADDR_STRLEN])
{
	const char *s = json_string_value(given);

	return a->family == AF_INET && strchr(s, ':') == NULL ? s : mm_addr_str(a, buf);
}

static uint64_t hash_domain(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;  /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

/* The slot of domain in c (n_slots a power of two, never full), or the
 * free slot where it goes. */
static struct other_kind_slot *other_kind_slot(struct other_kind_counts *c, const char *domain)
{
	size_t i = hash_domain(domain) & (c->n_slots - 1);

	while (c->slot[i].domain[0] && strcmp(c->slot[i].domain, domain))
		i = (i + 1) & (c->n_slots - 1);
	return &c->slot[i];
}

static bool other_kind_grow(struct other_kind_counts *c)
{
	struct other_kind_counts bigger = *c;

	if (c->n_slots >= OTHER_KIND_SLOTS_MAX)
		return false;
	bigger.n_slots = c->n_slots ? c->n_slots * 2 : 16;
	bigger.slot = calloc(bigger.n_slots, sizeof(*bigger.slot));
	if (!bigger.slot)
		return false;
	for (size_t i = 0; i < c->n_slots; i++)
		if (c->slot[i].domain[0])
			*other_kind_slot(&bigger, c->slot[i].domain) = c->slot[i];
	free(c->slot);
	*c = bigger;
	return true;
}

/* A partner's message answered "dst-other-kind": count it (status). */
static void count_other_kind(struct mm_query *q, const char *domain)
{
	struct other_kind_counts *c = &q->other_kind;
	struct other_kind_slot *s = NULL;

	pthread_mutex_lock(&q->count_lock);
	c->total++;
	if (c->n_slots)
		s = other_kind_slot(c, domain);
	if ((!s || !s->domain[0]) && (c->used + 1) * 2 > c->n_slots)
		s = other_kind_grow(c) ? other_kind_slot(c, domain) : NULL;
	if (!s) {
		c->untracked++;
	} else {
		if (!s->domain[0]) {
			snprintf(s->domain, sizeof(s->domain), "%s", domain);
			c->used++;
		}
		s->n++;
	}
	pthread_mutex_unlock(&q->count_lock);
}

static void count_decision(struct mm_query *q, bool outbound, const struct mm_decision *dec)
{
	size_t i;

	pthread_mutex_lock(&q->count_lock);
	for (i = 0; i < q->n_decisions; i++) {
		const struct decision_count *c = &q->decisions[i];

		/* The reasons are privacy.h's constants: the pointer almost
		 * always tells; strcmp only when it does not. */
		if (c->outbound == outbound && c->pai == dec->pai &&
		    (c->reason == dec->reason || !strcmp(c->reason, dec->reason)))
			break;
	}
	if (i == q->n_decisions && i < sizeof(q->decisions) / sizeof(q->decisions[0]))
		q->decisions[q->n_decisions++] = (struct decision_count){
			.reason = dec->reason, .outbound = outbound, .pai = dec->pai };
	if (i < q->n_decisions)
		q->decisions[i].n++;
	pthread_mutex_unlock(&q->count_lock);
}

void query_status(struct mm_query *q, json_t *status)
{
	json_t *partners = json_object_get(status, "partners"), *o;
	struct other_kind_counts *c;
	size_t i;

	if (!q)
		return;
	c = &q->other_kind;
	pthread_mutex_lock(&q->count_lock);
	json_object_set_new(status, "answers",
			    json_pack("{s:{s:I, s:I}}", "dst_other_kind", "total",
				      (json_int_t)c->total, "untracked", (json_int_t)c->untracked));
	o = json_array();
	for (i = 0; i < q->n_decisions; i++)
		json_array_append_new(o, json_pack("{s:s, s:s, s:s, s:I}", "direction",
						   q->decisions[i].outbound ? "outbound" : "inbound",
						   "pai", mm_pai_name(q->decisions[i].pai),
						   "reason", q->decisions[i].reason, "count",
						   (json_int_t)q->decisions[i].n));
	json_object_set_new(json_object_get(status, "answers"), "decisions", o);
	json_array_foreach(partners, i, o) {
		const char *domain = json_string_value(json_object_get(o, "domain"));
		uint64_t n = 0;

		if (domain && c->n_slots) {
			const struct other_kind_slot *s = other_kind_slot(c, domain);

			n = s->domain[0] ? s->n : 0;
		}
		json_object_set_new(o, "dst_other_kind", json_integer((json_int_t)n));
	}
	pthread_mutex_unlock(&q->count_lock);
}

static json_t *op_inbound(struct mm_query *q, const struct view *v, struct mm_jsonl_client *c,
			  const json_t *req)
{
	const json_t *srcv = json_object_get(req, "src"), *dstv = json_object_get(req, "dst");
	struct mm_inbound_facts f;
	const struct mm_tunnel_info *tp;
	struct mm_decision dec;
	struct mm_addr src, dst;
	char sbuf[MM_ADDR_STRLEN], dbuf[MM_ADDR_STRLEN];
	bool dst_given;
	uint32_t spi_v;
	struct sb b = { .len = 0 };
	json_t *err;

	if (mm_addr_parse(json_string_value(srcv), &src, "src", NULL) < 0)
		return invalid("src", "must be an IPv4 or IPv6 address string");
	if ((err = addr_member(req, "dst", v->require_dst, &dst, &dst_given)) ||
	    (err = spi_member(req, "spi", false, &spi_v)))
		return err;
	/* One IP header carries both: a mixed pair is the caller's mistake. */
	if (dst_given && dst.family != src.family)
		return invalid("dst", "must be of the same address family as src");
	inbound_facts(v, &src, dst_given ? &dst : NULL, spi_v, &f, &tp);
	mm_decide_inbound(&f, &dec);
	count_decision(q, false, &dec);
	if (f.partner && !strcmp(dec.reason, MM_REASON_DST_OTHER_KIND))
		count_other_kind(q, f.partner->domain);
	sb_lit(&b, "{\"src\":\"");
	sb_lit(&b, addr_text(srcv, &src, sbuf));
	sb_lit(&b, "\"");
	sb_str(&b, "dst", dst_given ? addr_text(dstv, &dst, dbuf) : NULL);
	sb_partner(&b, f.partner);
	sb_bool(&b, "protected", dec.protected_);
	if (tp)
		sb_sa(&b, tp);
	else
		sb_lit(&b, ",\"sa\":null");
	sb_str(&b, "pai", mm_pai_name(dec.pai));
	sb_str(&b, "reason", dec.reason);
	sb_lit(&b, "}");
	if (b.overflow || mm_jsonl_client_reply_raw(c, b.buf, b.len, json_object_get(req, "id")) < 0)
		return mm_jsonl_error("internal", NULL, "answer too large");
	return NULL;
}

static bool privacy_has_id(const json_t *privacy, json_t **ret_err)
{
	size_t i;
	json_t *v;

	*ret_err = NULL;
	if (!privacy || json_is_null(privacy))
		return false;
	if (json_is_string(privacy)) {
		/* The header's text, e.g. "id; user": values separated by ';'. */
		char copy[256], *save = NULL, *tok;

		snprintf(copy, sizeof(copy), "%s", json_string_value(privacy));
		for (tok = strtok_r(copy, "; \t", &save); tok; tok = strtok_r(NULL, "; \t", &save))
			if (strcasecmp(tok, "id") == 0)
				return true;
		return false;
	}
	if (!json_is_array(privacy)) {
		*ret_err = invalid("privacy", "must be a list of Privacy header values or a string");
		return false;
	}
	json_array_foreach(privacy, i, v) {
		if (!json_is_string(v)) {
			*ret_err = invalid("privacy", "must be a list of strings");
			return false;
		}
		if (strcasecmp(json_string_value(v), "id") == 0)
			return true;
	}
	return false;
}

static json_t *op_outbound(struct mm_query *q, const struct view *v, const json_t *req)
{
	const json_t *dv = json_object_get(req, "domain"), *tv = json_object_get(req, "dst");
	const char *domain = json_string_value(dv), *dst = json_string_value(tv);
	struct mm_outbound_facts f = { .mode = v->untrusted };
	struct mm_sa_view sa, *sap = NULL;
	struct mm_addr next_hop;
	bool have_next_hop = false;
	char canon[MM_DOMAIN_MAX + 1], buf[MM_ADDR_STRLEN];
	struct mm_decision dec;
	json_t *o, *err;

	if (dv && !json_is_string(dv))
		return invalid("domain", "must be a domain name string");
	if (tv && !json_is_string(tv))
		return invalid("dst", "must be an IPv4 or IPv6 address string");
	f.privacy_id = privacy_has_id(json_object_get(req, "privacy"), &err);
	if (err)
		return err;
	if (!!domain == !!dst)
		return invalid(domain ? "dst" : "domain", "give exactly one of domain and dst");
	if (domain) {
		if (mm_domain_canon(domain, canon, "domain", NULL) < 0)
			return invalid("domain", "must be a fully qualified domain name");
		f.partner = mm_table_find(v->table, canon);
		o = json_pack("{s:s}", "domain", canon);
	} else {
		struct mm_addr a;

		if (mm_addr_parse(dst, &a, "dst", NULL) < 0)
			return invalid("dst", "must be an IPv4 or IPv6 address string");
		f.partner = mm_table_lookup(v->table, &a, NULL);
		next_hop = a;
		have_next_hop = true;
		o = json_pack("{s:s}", "dst", mm_addr_str(&a, buf));
	}
	if (f.partner) {
		size_t i = view_find(v, f.partner->domain);

		if (i < v->n_up) {
			sa = (struct mm_sa_view){
				.spi_in = v->up[i].spi_in,
				.out_enforced = v->out_enforced[i] &&
						!__atomic_load_n(&v->withdrawn, __ATOMIC_ACQUIRE),
			};
			sap = &sa;
		}
	}
	mm_outbound_assemble(f.partner, sap, &v->cscf_set, have_next_hop ? &next_hop : NULL,
			     f.privacy_id, v->untrusted, tunnel_addr(v, f.partner), &f);
	mm_decide_outbound(&f, &dec);
	count_decision(q, true, &dec);
	partner_facts(o, f.partner);
	json_object_set_new(o, "trusted", json_boolean(dec.trusted));
	json_object_set_new(o, "tunnel", json_string(!f.partner ? "none" :
						     f.partner->path == MM_PATH_SEG ? "none" :
						     f.sa_up ? "up" : "down"));
	json_object_set_new(o, "pai", json_string(mm_pai_name(dec.pai)));
	json_object_set_new(o, "reason", json_string(dec.reason));
	return mm_jsonl_ok(o);
}

static json_t *op_spi(const struct view *v, const json_t *req)
{
	const struct mm_tunnel_info *t = NULL;
	uint32_t spi;
	json_t *o;

	if ((o = spi_member(req, "spi", true, &spi)))
		return o;
	for (size_t i = 0; i < v->n_up && !t; i++)
		if (v->up[i].spi_in == spi || v->up[i].spi_out == spi)
			t = &v->up[i];
	o = json_pack("{s:o, s:o}", "spi", mm_json_spi(spi), "partner",
		      t ? json_string(t->domain) : json_null());
	if (t) {
		json_object_set_new(o, "direction", json_string(t->spi_in == spi ? "in" : "out"));
		json_object_set_new(o, "reqid", json_integer(t->reqid));
		json_object_set_new(o, "remote_id", json_string(t->remote_id));
	}
	return mm_jsonl_ok(o);
}

static json_t *dispatch(struct mm_query *q, const struct view *v,
			struct mm_jsonl_client *client, const json_t *req)
{
	const char *op = json_string_value(json_object_get(req, "op"));

	if (!op)
		return mm_jsonl_error("invalid-request", "op", "every request needs an \"op\" string");
	if (!strcmp(op, "inbound"))
		return op_inbound(q, v, client, req);
	if (!strcmp(op, "outbound"))
		return op_outbound(q, v, req);
	if (!strcmp(op, "spi"))
		return op_spi(v, req);
	if (!strcmp(op, "subscribe")) {
		mm_jsonl_client_subscribe(client);
		return mm_jsonl_ok(json_pack("{s:b}", "subscribed", 1));
	}
	if (!strcmp(op, "ping")) {
		/* The library learns where the snapshot is from here (it reads
		 * nothing of our configuration). */
		return mm_jsonl_ok(json_pack("{s:s, s:I, s:o}", "version", MMTRUST_VERSION, "partners",
					     (json_int_t)v->table->n, "snapshot",
					     q->snapshot[0] ? json_string(q->snapshot)
								 : json_null()));
	}
	return mm_jsonl_error("unknown-op", "op", "unknown operation '%s' (inbound, outbound, "
				      "spi, subscribe, ping)", op);
}

static json_t *query_handle(void *userdata, struct mm_jsonl_client *client,
			    const struct mm_jsonl_peer *peer, const json_t *req)
{
	struct view *v = view_get(userdata);
	json_t *answer;

	(void)peer;
	if (!v)
		return mm_jsonl_error("internal", NULL, "not ready");
	answer = dispatch(userdata, v, client, req);
	view_unref(v);
	return answer;
}

static int query_authorize(void *userdata, const struct mm_jsonl_peer *peer)
{
	struct mm_query *q = userdata;

	return mm_jsonl_peer_allowed(peer, q->gid) ? 0 : -EPERM;
}

/* ---- the main thread's side ---- */

int query_publish(struct mm_query *q, const struct query_view_input *in)
{
	struct view *v, *old;
	size_t n = in->n_up ? in->n_up : 1;

	if (!q)
		return 0;
	v = calloc(1, sizeof(*v));
	if (v) {
		v->up = malloc(n * sizeof(*v->up));
		v->enforced = malloc(n * sizeof(*v->enforced));
		v->out_enforced = malloc(n * sizeof(*v->out_enforced));
	}
	if (!v || !v->up || !v->enforced || !v->out_enforced) {
		if (v) {
			free(v->up);
			free(v->enforced);
			free(v->out_enforced);
		}
		free(v);
		pthread_mutex_lock(&q->lock);
		if (q->view)
			__atomic_store_n(&q->view->withdrawn, true, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&q->lock);
		return -ENOMEM;
	}
	memcpy(v->up, in->up, in->n_up * sizeof(*v->up));
	memcpy(v->enforced, in->enforced, in->n_up * sizeof(*v->enforced));
	memcpy(v->out_enforced, in->out_enforced, in->n_up * sizeof(*v->out_enforced));
	v->n_up = in->n_up;
	v->refs = 1;
	v->table = mm_table_ref(in->table);
	v->untrusted = in->untrusted;
	v->cscf_set.n = in->cscf.n < MM_CONFIG_MAX_LOCAL ? in->cscf.n : MM_CONFIG_MAX_LOCAL;
	memcpy(v->cscf, in->cscf.prefix, sizeof(v->cscf[0]) * v->cscf_set.n);
	memcpy(v->cscf_kinds, in->cscf.kinds, sizeof(v->cscf_kinds[0]) * v->cscf_set.n);
	v->cscf_set.prefix = v->cscf;
	v->cscf_set.kinds = v->cscf_kinds;
	v->require_dst = in->require_dst;
	v->tunnel_addrs = in->tunnel_addrs;
	pthread_mutex_lock(&q->lock);
	old = q->view;
	q->view = v;
	pthread_mutex_unlock(&q->lock);
	view_unref(old);
	return 0;
}

static void wake(struct mm_query *q)
{
	uint64_t one = 1;

	if (write(q->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("query: cannot wake the query thread: %s", strerror(errno));
}

void query_notify(struct mm_query *q, const char *event, const char *domain,
		  const struct mm_tunnel_info *t)
{
	json_t *e;
	char *text;

	if (!q)
		return;
	e = json_pack("{s:s, s:s}", "event", event, "partner", domain);
	if (e && t && t->up) {
		json_object_set_new(e, "spi_in", mm_json_spi(t->spi_in));
		json_object_set_new(e, "spi_out", mm_json_spi(t->spi_out));
	}
	text = e ? json_dumps(e, JSON_COMPACT) : NULL;
	json_decref(e);
	if (!text)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->n_events == q->cap_events) {
		size_t cap = q->cap_events ? q->cap_events * 2 : 64;
		char **n = cap <= 65536 ? realloc(q->events, cap * sizeof(*n)) : NULL;

		if (!n) {
			/* The query thread is far behind: drop the event and say so
			 * once per overflow rather than grow without bound. */
			pthread_mutex_unlock(&q->lock);
			free(text);
			log_warn("query: event queue full; event %s for %s dropped", event, domain);
			return;
		}
		q->events = n;
		q->cap_events = cap;
	}
	q->events[q->n_events++] = text;
	pthread_mutex_unlock(&q->lock);
	wake(q);
}

/* ---- the query thread ---- */

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mm_query *q = userdata;
	char **events;
	size_t n;
	uint64_t count;
	bool stop;

	(void)s;
	(void)revents;
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return 0;
	pthread_mutex_lock(&q->lock);
	events = q->events;
	n = q->n_events;
	q->events = NULL;
	q->n_events = q->cap_events = 0;
	stop = q->stop;
	pthread_mutex_unlock(&q->lock);
	for (size_t i = 0; i < n; i++) {
		mm_jsonl_server_broadcast(q->srv, events[i], strlen(events[i]));
		free(events[i]);
	}
	free(events);
	if (stop)
		sd_event_exit(q->ev, 0);
	return 0;
}

static void *query_thread(void *arg)
{
	struct mm_query *q = arg;
	int r = sd_event_loop(q->ev);

	if (r < 0)
		log_err("query thread: event loop failed: %s", strerror(-r));
	return NULL;
}

static void query_free(struct mm_query *q)
{
	if (!q)
		return;
	mm_jsonl_server_free(q->srv);
	sd_event_source_disable_unref(q->wake_src);
	sd_event_unref(q->ev);
	if (q->wake_fd >= 0)
		close(q->wake_fd);
	for (size_t i = 0; i < q->n_events; i++)
		free(q->events[i]);
	free(q->events);
	view_unref(q->view);
	free(q->other_kind.slot);
	pthread_mutex_destroy(&q->count_lock);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int query_start(const struct mm_config *cfg, struct mm_query **ret)
{
	struct mm_jsonl_limits lim = {
		.max_line = 4096,
		.max_out = 1u << 20,
		.max_clients = cfg->query_max_clients,
	};
	mode_t mode = cfg->query_gid == (gid_t)-1 ? 0600 : 0660;
	struct mm_query *q;
	int r;

	*ret = NULL;
	if (!cfg->query_socket[0])
		return 0;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->gid = cfg->query_gid;
	mm_config_snapshot_path(cfg, q->snapshot);
	q->wake_fd = -1;
	pthread_mutex_init(&q->lock, NULL);
	pthread_mutex_init(&q->count_lock, NULL);
	q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_new(&q->ev);
	if (r < 0)
		goto fail;
	r = mm_jsonl_server_new(q->ev, cfg->query_socket, mode, cfg->query_gid, &lim,
				query_handle, query_authorize, q, &q->srv);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(q->ev, &q->wake_src, q->wake_fd, EPOLLIN, on_wake, q);
	if (r < 0)
		goto fail;
	/* The thread inherits the main thread's blocked signals: signals stay
	 * with the main loop. */
	r = -pthread_create(&q->thread, NULL, query_thread, q);
	if (r < 0)
		goto fail;
	q->running = true;
	*ret = q;
	return 0;
fail:
	query_free(q);
	return r;
}

void query_stop(struct mm_query *q)
{
	if (!q)
		return;
	if (q->running) {
		pthread_mutex_lock(&q->lock);
		q->stop = true;
		pthread_mutex_unlock(&q->lock);
		wake(q);
		pthread_join(q->thread, NULL);
	}
	query_free(q);
}
