/* libmmtrust: the typed CSCF calls over the query socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mmtrust.h"
#include "snapshot.h"
#include "transport.h"

static void copy_str(char *dst, size_t size, const json_t *v)
{
	snprintf(dst, size, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static uint32_t hex_u32(const json_t *v)
{
	return json_is_string(v) ? (uint32_t)strtoul(json_string_value(v), NULL, 16) : 0;
}

/* What a request asked about: the answer must name the same. */
struct subject {
	const char *src, *domain, *dst;   /* NULL: not asked */
	uint32_t spi;                     /* 0: not asked */
	bool dst_echoed;                  /* inbound echoes dst, null when not given */
};

/* One request's wait: its id, its subject, the answer found. */
struct pending {
	int64_t id;
	const struct subject *subject;
	json_t *answer;
};

/* Two address texts name one address (the daemon writes IPv6 canonically
 * and ::ffff:a.b.c.d as a.b.c.d). */
static bool same_addr(const char *a, const char *b)
{
	unsigned char x[16], y[16];
	int fx, fy;

	if (!a || !b)
		return false;
	fx = inet_pton(AF_INET, a, x) == 1 ? AF_INET : inet_pton(AF_INET6, a, x) == 1 ? AF_INET6 : 0;
	fy = inet_pton(AF_INET, b, y) == 1 ? AF_INET : inet_pton(AF_INET6, b, y) == 1 ? AF_INET6 : 0;
	if (!fx || !fy)
		return strcasecmp(a, b) == 0;
	if (fx == AF_INET6 && fy == AF_INET)
		return memcmp(x, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 && memcmp(x + 12, y, 4) == 0;
	if (fx == AF_INET && fy == AF_INET6)
		return memcmp(y, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 && memcmp(y + 12, x, 4) == 0;
	return fx == fy && memcmp(x, y, fx == AF_INET ? 4 : 16) == 0;
}

/* Domains match after case folding and one trailing dot. */
static bool same_domain(const char *a, const char *b)
{
	size_t la, lb;

	if (!a || !b)
		return false;
	la = strlen(a);
	lb = strlen(b);
	if (la > 1 && a[la - 1] == '.')
		la--;
	if (lb > 1 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static bool spi_is(const json_t *v, uint32_t spi)
{
	if (json_is_integer(v))
		return json_integer_value(v) == (json_int_t)spi;
	return json_is_string(v) && strncmp(json_string_value(v), "0x", 2) == 0 &&
	       hex_u32(v) == spi;
}

static bool names_subject(const json_t *res, const struct subject *s)
{
	const json_t *dst = json_object_get(res, "dst");

	if (s->src && !same_addr(s->src, json_string_value(json_object_get(res, "src"))))
		return false;
	if (s->domain && !same_domain(s->domain, json_string_value(json_object_get(res, "domain"))))
		return false;
	if (s->dst && !same_addr(s->dst, json_string_value(dst)))
		return false;
	if (!s->dst && s->dst_echoed && dst && !json_is_null(dst))
		return false;
	return !s->spi || spi_is(json_object_get(res, "spi"), s->spi);
}

/* mmtrust__match_fn: the answer with this request's id, for its subject. */
static int match_answer(struct mmtrust *m, const char *line, void *userdata)
{
	struct pending *p = userdata;
	json_t *a = json_loads(line, 0, NULL);
	const json_t *id, *res;

	if (!json_is_object(a)) {
		json_decref(a);
		mmtrust__set_error(m, "bad answer (not a JSON object)");
		return -EBADMSG;
	}
	id = json_object_get(a, "id");
	if (!json_is_integer(id) || json_integer_value(id) != p->id) {
		json_decref(a);  /* a late answer, or an event */
		return 0;
	}
	if (json_is_true(json_object_get(a, "ok"))) {
		res = json_object_get(a, "result");
		if (!json_is_object(res)) {
			json_decref(a);
			mmtrust__set_error(m, "bad answer (no result)");
			return -EBADMSG;
		}
		if (p->subject && !names_subject(res, p->subject)) {
			json_decref(a);
			mmtrust__set_error(m, "answer for another subject");
			return -EBADMSG;
		}
	}
	p->answer = a;
	return 1;
}

/* Send req (stolen) with the next id, wait for its answer; 0 with
 * *ret_result (new ref). */
static int ask(struct mmtrust *m, json_t *req, const struct subject *subject, json_t **ret_result)
{
	struct pending p = { .subject = subject };
	char *text = NULL, *line = NULL;
	int r;

	if (!m) {
		json_decref(req);
		return -ENOTCONN;
	}
	p.id = mmtrust__next_id(m);
	if (req && json_object_set_new(req, "id", json_integer(p.id)) == 0)
		text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text) {
		mmtrust__set_error(m, "out of memory");
		return -ENOMEM;
	}
	r = mmtrust__exchange(m, text, strlen(text), 1u << 20, true, match_answer, &p, &line);
	free(text);
	free(line);
	if (r < 0)
		return r;
	if (!json_is_true(json_object_get(p.answer, "ok"))) {
		const json_t *e = json_object_get(p.answer, "error");
		char msg[256];

		snprintf(msg, sizeof(msg), "%s: %s%s%s",
			 json_string_value(json_object_get(e, "code")) ?: "error",
			 json_string_value(json_object_get(e, "field")) ?: "",
			 json_object_get(e, "field") ? ": " : "",
			 json_string_value(json_object_get(e, "message")) ?: "");
		mmtrust__set_error(m, msg);
		json_decref(p.answer);
		return -EPROTO;
	}
	*ret_result = json_incref(json_object_get(p.answer, "result"));
	json_decref(p.answer);
	return 0;
}

static void fill(const json_t *r, struct mmtrust_answer *a)
{
	const json_t *sa = json_object_get(r, "sa");

	memset(a, 0, sizeof(*a));
	a->pai = json_is_string(json_object_get(r, "pai")) &&
			 strcmp(json_string_value(json_object_get(r, "pai")), "keep") == 0
		 ? MMTRUST_PAI_KEEP : MMTRUST_PAI_STRIP;
	copy_str(a->reason, sizeof(a->reason), json_object_get(r, "reason"));
	copy_str(a->partner, sizeof(a->partner), json_object_get(r, "partner"));
	copy_str(a->kind, sizeof(a->kind), json_object_get(r, "kind"));
	copy_str(a->path, sizeof(a->path), json_object_get(r, "path"));
	copy_str(a->tunnel, sizeof(a->tunnel), json_object_get(r, "tunnel"));
	copy_str(a->direction, sizeof(a->direction), json_object_get(r, "direction"));
	copy_str(a->dst, sizeof(a->dst), json_object_get(r, "dst"));
	copy_str(a->src, sizeof(a->src), json_object_get(r, "src"));
	copy_str(a->domain, sizeof(a->domain), json_object_get(r, "domain"));
	snprintf(a->source, sizeof(a->source), "socket");
	a->agreement = json_is_true(json_object_get(r, "agreement"));
	a->enabled = json_is_true(json_object_get(r, "enabled"));
	a->protected_ = json_is_true(json_object_get(r, "protected"));
	a->trusted = json_is_true(json_object_get(r, "trusted"));
	if (json_is_object(sa)) {
		a->reqid = json_integer_value(json_object_get(sa, "reqid"));
		a->spi_in = hex_u32(json_object_get(sa, "spi_in"));
		a->spi_out = hex_u32(json_object_get(sa, "spi_out"));
		copy_str(a->remote_id, sizeof(a->remote_id), json_object_get(sa, "remote_id"));
	} else {
		a->reqid = json_integer_value(json_object_get(r, "reqid"));
		copy_str(a->remote_id, sizeof(a->remote_id), json_object_get(r, "remote_id"));
	}
}

static int ask_fill(struct mmtrust *m, json_t *req, const struct subject *subject,
		    struct mmtrust_answer *ret)
{
	json_t *res;
	int r;

	if (!req) {
		if (m)
			mmtrust__set_error(m, "out of memory");
		return -ENOMEM;
	}
	r = ask(m, req, subject, &res);
	if (r < 0)
		return r;
	fill(res, ret);
	json_decref(res);
	return 0;
}

/* Fail closed: the strip answer every failed typed call leaves in *ret. */
static int strip_answer(const struct mmtrust *m, int r, const struct subject *s,
			struct mmtrust_answer *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->pai = MMTRUST_PAI_STRIP;
	snprintf(ret->reason, sizeof(ret->reason), "error: %s",
		 m ? mmtrust_last_error(m) : "no handle");
	snprintf(ret->src, sizeof(ret->src), "%s", s->src ? s->src : "");
	snprintf(ret->domain, sizeof(ret->domain), "%s", s->domain ? s->domain : "");
	snprintf(ret->dst, sizeof(ret->dst), "%s", s->dst ? s->dst : "");
	snprintf(ret->source, sizeof(ret->source), "error");
	return r;
}

/* The round trips to mmtrustd over the query socket.  The public calls
 * below turn their errors into strip answers; another answer path tried
 * before the socket calls these the same way. */

/* SPIs go out as JSON numbers (docs/protocol.md): no text form to agree on. */
static int inbound_socket(struct mmtrust *m, const struct subject *s, uint32_t spi,
			  struct mmtrust_answer *ret)
{
	json_t *req = json_pack("{s:s, s:s}", "op", "inbound", "src", s->src ? s->src : "");

	if (req && s->dst)
		json_object_set_new(req, "dst", json_string(s->dst));
	if (req && spi)
		json_object_set_new(req, "spi", json_integer(spi));
	return ask_fill(m, req, s, ret);
}

static int outbound_socket(struct mmtrust *m, const struct subject *s, int privacy_id,
			   struct mmtrust_answer *ret)
{
	json_t *req = json_pack("{s:s}", "op", "outbound");

	if (req && s->domain)
		json_object_set_new(req, "domain", json_string(s->domain));
	if (req && s->dst)
		json_object_set_new(req, "dst", json_string(s->dst));
	if (req && privacy_id)
		json_object_set_new(req, "privacy", json_pack("[s]", "id"));
	return ask_fill(m, req, s, ret);
}

static int spi_socket(struct mmtrust *m, const struct subject *s, struct mmtrust_answer *ret)
{
	return ask_fill(m, json_pack("{s:s, s:I}", "op", "spi", "spi", (json_int_t)s->spi), s, ret);
}

/* The handle's snapshot reader, told the first time where the daemon
 * writes the files (ping's "snapshot") and which user owns them (the
 * peer of this connection).  NULL: no in-process answer now; *ret_err:
 * the ping's transport error, which the question would meet too (a
 * refusal of ping is not one: the question goes to the socket). */
static struct mmtrust_snap *snapshot_of(struct mmtrust *m, int *ret_err)
{
	struct mmtrust_snap *s = mmtrust__snap_of(m);
	const struct subject none = { .src = NULL };
	const char *path;
	json_t *res;
	uid_t uid;
	int r;

	*ret_err = 0;
	if (!s || !mmtrust__snap_enabled(s))
		return NULL;
	if (mmtrust__snap_has_path(s))
		return s;
	r = ask(m, json_pack("{s:s}", "op", "ping"), &none, &res);
	if (r < 0) {
		*ret_err = r == -EPROTO ? 0 : r;
		return NULL;
	}
	path = json_string_value(json_object_get(res, "snapshot"));
	if (mmtrust__peer_uid(m, &uid) == 0)
		mmtrust__snap_set_path(s, path ? path : "", uid);
	json_decref(res);
	return mmtrust__snap_has_path(s) ? s : NULL;
}

int mmtrust_inbound(struct mmtrust *m, const char *src, const char *dst, uint32_t spi,
		    struct mmtrust_answer *ret)
{
	const struct subject s = { .src = src ? src : "", .dst = dst, .dst_echoed = true };
	int r;

	if (!ret)
		return -EINVAL;
	if (m) {
		struct mmtrust_snap *snap = snapshot_of(m, &r);

		if (r < 0)
			return strip_answer(m, r, &s, ret);
		if (mmtrust__snap_inbound(snap, src, dst, spi, ret) == 0)
			return 0;
	}
	r = inbound_socket(m, &s, spi, ret);
	return r < 0 ? strip_answer(m, r, &s, ret) : 0;
}

int mmtrust_outbound(struct mmtrust *m, const char *domain, const char *dst, int privacy_id,
		     struct mmtrust_answer *ret)
{
	const struct subject s = { .domain = domain, .dst = dst };
	int r;

	if (!ret)
		return -EINVAL;
	if (m) {
		struct mmtrust_snap *snap = snapshot_of(m, &r);

		if (r < 0)
			return strip_answer(m, r, &s, ret);
		if (mmtrust__snap_outbound(snap, domain, dst, privacy_id, ret) == 0)
			return 0;
	}
	r = outbound_socket(m, &s, privacy_id, ret);
	return r < 0 ? strip_answer(m, r, &s, ret) : 0;
}

int mmtrust_spi(struct mmtrust *m, uint32_t spi, struct mmtrust_answer *ret)
{
	const struct subject s = { .spi = spi };
	int r;

	if (!ret)
		return -EINVAL;
	r = spi_socket(m, &s, ret);
	return r < 0 ? strip_answer(m, r, &s, ret) : 0;
}

int mmtrust_subscribe(struct mmtrust *m)
{
	json_t *res;
	int r = ask(m, json_pack("{s:s}", "op", "subscribe"), NULL, &res);

	if (r < 0)
		return r;
	json_decref(res);
	mmtrust__set_subscribed(m);
	return 0;
}

int mmtrust_next_event(struct mmtrust *m, int timeout_ms, struct mmtrust_event *ret)
{
	char *line = NULL;
	json_t *e;
	int r;

	if (!m)
		return -ENOTCONN;
	for (;;) {
		r = mmtrust__read_event_line(m, timeout_ms, &line);
		if (r < 0)
			return r;
		e = json_loads(line, 0, NULL);
		free(line);
		if (!json_is_object(e)) {
			json_decref(e);
			mmtrust__reset(m);
			mmtrust__set_error(m, "bad event (not a JSON object)");
			return -EBADMSG;
		}
		if (json_is_string(json_object_get(e, "event")))
			break;
		json_decref(e);  /* a late answer, not an event */
	}
	memset(ret, 0, sizeof(*ret));
	copy_str(ret->event, sizeof(ret->event), json_object_get(e, "event"));
	copy_str(ret->partner, sizeof(ret->partner), json_object_get(e, "partner"));
	ret->spi_in = hex_u32(json_object_get(e, "spi_in"));
	ret->spi_out = hex_u32(json_object_get(e, "spi_out"));
	json_decref(e);
	return 0;
}
