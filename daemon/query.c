/* The CSCF query socket: which partner sent this, is it protected by an
 * authenticated SA, keep or strip P-Asserted-Identity.  Read-only; every
 * answer comes from memory (the table, its address index, the SA table),
 * never from netlink, VICI or the store.  Protocol: docs/protocol.md;
 * decisions: policy/privacy.c and docs/privacy.md. */
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
#include <unistd.h>

#include "log.h"
#include "mmtrustd.h"
#include "policy/jsonfmt.h"
#include "policy/privacy.h"

static json_t *invalid(const char *field, const char *msg)
{
	return mm_jsonl_error("invalid", field, "%s", msg);
}

/* "0xc1a2b3c4", "c1a2b3c4" or a JSON number. */
static int parse_spi(const json_t *v, uint32_t *ret)
{
	unsigned long long x;
	const char *s;
	char *end;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
			return -EINVAL;
		*ret = json_integer_value(v);
		return 0;
	}
	s = json_string_value(v);
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	x = strtoull(s, &end, 16);
	if (*end || errno || x > UINT32_MAX || *s == '-')
		return -EINVAL;
	*ret = x;
	return 0;
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

/* A string the SA table holds from charon: only plain printable text goes
 * out unescaped; anything else is dropped rather than trusted. */
static const char *safe(const char *s)
{
	for (const char *c = s; *c; c++)
		if (*c < 0x20 || *c > 0x7e || *c == '"' || *c == '\\')
			return "?";
	return s;
}

static void sb_sa(struct sb *b, const struct mm_tunnel_info *t)
{
	char v[64];
	struct tm tm;
	time_t since = t->since;

	sb_lit(b, ",\"sa\":{");
	snprintf(v, sizeof(v), "\"reqid\":%" PRIu32, t->reqid);
	sb_lit(b, v);
	snprintf(v, sizeof(v), "0x%08" PRIx32, t->spi_in);
	sb_str(b, "spi_in", v);
	snprintf(v, sizeof(v), "0x%08" PRIx32, t->spi_out);
	sb_str(b, "spi_out", v);
	sb_str(b, "remote_id", safe(t->remote_id));
	sb_str(b, "remote_host", safe(t->remote_host));
	if (since && gmtime_r(&since, &tm)) {
		strftime(v, sizeof(v), "%Y-%m-%dT%H:%M:%SZ", &tm);
		sb_str(b, "established", v);
	} else {
		sb_str(b, "established", NULL);
	}
	sb_lit(b, "}");
}

static json_t *op_inbound(struct mmtrustd *d, struct mm_jsonl_client *c, const json_t *req)
{
	const json_t *spi = json_object_get(req, "spi"), *srcv = json_object_get(req, "src");
	struct mm_inbound_facts f = { 0 };
	struct mm_tunnel_info t = { 0 };
	struct mm_decision dec;
	struct mm_addr src;
	char abuf[MM_ADDR_STRLEN];
	const char *src_text;
	uint32_t spi_v = 0;
	struct sb b = { .len = 0 };

	if (mm_addr_parse(json_string_value(srcv), &src, "src", NULL) < 0)
		return invalid("src", "must be an IPv4 or IPv6 address string");
	if (spi && !json_is_null(spi)) {
		if (parse_spi(spi, &spi_v) < 0)
			return invalid("spi", "must be a 32-bit SPI, hex string or number");
		f.spi_given = true;
	}
	f.partner = mm_table_lookup(d->table, &src, NULL);
	if (f.partner && ike_tunnel_info(d, f.partner->domain, &t) && t.up) {
		f.sa_up = true;
		f.sa_identity_ok = true;
		f.spi_matches = spi_v == t.spi_in;
	}
	mm_decide_inbound(&f, &dec);
	/* inet_pton accepts only the canonical dotted quad, so an IPv4 source
	 * is echoed as given; IPv6 is canonicalised. */
	src_text = src.family == AF_INET ? json_string_value(srcv) : mm_addr_str(&src, abuf);
	sb_lit(&b, "{\"src\":\"");
	sb_lit(&b, src_text);
	sb_lit(&b, "\"");
	sb_partner(&b, f.partner);
	sb_bool(&b, "protected", dec.protected_);
	if (f.sa_up)
		sb_sa(&b, &t);
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

static json_t *op_outbound(struct mmtrustd *d, const json_t *req)
{
	const json_t *dv = json_object_get(req, "domain"), *tv = json_object_get(req, "dst");
	const char *domain = json_string_value(dv), *dst = json_string_value(tv);
	struct mm_outbound_facts f = { .mode = d->cfg.query_untrusted };
	struct mm_tunnel_info t = { 0 };
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
		f.partner = mm_table_find(d->table, canon);
		o = json_pack("{s:s}", "domain", canon);
	} else {
		struct mm_addr a;

		if (mm_addr_parse(dst, &a, "dst", NULL) < 0)
			return invalid("dst", "must be an IPv4 or IPv6 address string");
		f.partner = mm_table_lookup(d->table, &a, NULL);
		o = json_pack("{s:s}", "dst", mm_addr_str(&a, buf));
	}
	if (f.partner && ike_tunnel_info(d, f.partner->domain, &t) && t.up)
		f.sa_up = f.sa_identity_ok = true;
	mm_decide_outbound(&f, &dec);
	partner_facts(o, f.partner);
	json_object_set_new(o, "trusted", json_boolean(dec.trusted));
	json_object_set_new(o, "tunnel", json_string(!f.partner ? "none" :
						     f.partner->path == MM_PATH_SEG ? "none" :
						     f.sa_up ? "up" : "down"));
	json_object_set_new(o, "pai", json_string(mm_pai_name(dec.pai)));
	json_object_set_new(o, "reason", json_string(dec.reason));
	return mm_jsonl_ok(o);
}

static json_t *op_spi(struct mmtrustd *d, const json_t *req)
{
	struct mm_tunnel_info t = { 0 };
	const char *owner;
	bool inbound = false;
	uint32_t spi;
	json_t *o;

	if (parse_spi(json_object_get(req, "spi"), &spi) < 0)
		return invalid("spi", "must be a 32-bit SPI, hex string or number");
	owner = ike_spi_owner(d, spi, &inbound);
	o = json_pack("{s:o, s:o}", "spi", mm_json_spi(spi), "partner",
		      owner ? json_string(owner) : json_null());
	if (owner && ike_tunnel_info(d, owner, &t)) {
		json_object_set_new(o, "direction", json_string(inbound ? "in" : "out"));
		json_object_set_new(o, "reqid", json_integer(t.reqid));
		json_object_set_new(o, "remote_id", json_string(t.remote_id));
	}
	return mm_jsonl_ok(o);
}

static json_t *query_handle(void *userdata, struct mm_jsonl_client *client,
			    const struct mm_jsonl_peer *peer, const json_t *req)
{
	struct mmtrustd *d = userdata;
	const char *op = json_string_value(json_object_get(req, "op"));

	(void)peer;
	if (!op)
		return mm_jsonl_error("invalid-request", "op", "every request needs an \"op\" string");
	if (!strcmp(op, "inbound"))
		return op_inbound(d, client, req);
	if (!strcmp(op, "outbound"))
		return op_outbound(d, req);
	if (!strcmp(op, "spi"))
		return op_spi(d, req);
	if (!strcmp(op, "subscribe")) {
		mm_jsonl_client_subscribe(client);
		return mm_jsonl_ok(json_pack("{s:b}", "subscribed", 1));
	}
	if (!strcmp(op, "ping"))
		return mm_jsonl_ok(json_pack("{s:s, s:I}", "version", MMTRUST_VERSION, "partners",
					     (json_int_t)d->table->n));
	return mm_jsonl_error("unknown-op", "op", "unknown operation '%s' (inbound, outbound, "
				      "spi, subscribe, ping)", op);
}

static int query_authorize(void *userdata, const struct mm_jsonl_peer *peer)
{
	struct mmtrustd *d = userdata;

	return mm_jsonl_peer_allowed(peer, d->cfg.query_gid) ? 0 : -EPERM;
}

int query_start(struct mmtrustd *d)
{
	struct mm_jsonl_limits lim = {
		.max_line = 4096,
		.max_out = 1u << 20,
		.max_clients = d->cfg.query_max_clients,
	};
	mode_t mode = d->cfg.query_gid == (gid_t)-1 ? 0600 : 0660;
	int r;

	if (!d->cfg.query_socket[0])
		return 0;
	r = mm_jsonl_server_new(d->ev, d->cfg.query_socket, mode, d->cfg.query_gid, &lim,
				query_handle, query_authorize, d, &d->query);
	if (r < 0)
		log_err("query socket %s: %s", d->cfg.query_socket, strerror(-r));
	return r;
}

void query_stop(struct mmtrustd *d)
{
	mm_jsonl_server_free(d->query);
	d->query = NULL;
}

void query_notify(struct mmtrustd *d, const char *event, const char *domain,
		  const struct mm_tunnel_info *t)
{
	json_t *e;

	if (!d->query)
		return;
	e = json_pack("{s:s, s:s}", "event", event, "partner", domain);
	if (e && t && t->up) {
		json_object_set_new(e, "spi_in", mm_json_spi(t->spi_in));
		json_object_set_new(e, "spi_out", mm_json_spi(t->spi_out));
	}
	if (e)
		mm_jsonl_server_broadcast(d->query, e);
	json_decref(e);
}
