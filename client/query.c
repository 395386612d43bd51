/* libmmtrust: the typed CSCF calls over the query socket. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmtrust.h"
#include "snapshot.h"

void mmtrust__set_error(struct mmtrust *m, const char *text);
int mmtrust__read_line(struct mmtrust *m, int timeout_ms, char **ret);
struct mmtrust_snap *mmtrust__snap(struct mmtrust *m);

static void copy_str(char *dst, size_t size, const json_t *v)
{
	snprintf(dst, size, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static uint32_t hex_u32(const json_t *v)
{
	return json_is_string(v) ? (uint32_t)strtoul(json_string_value(v), NULL, 16) : 0;
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

/* Send req (stolen), parse the answer; 0 with *ret_result (new ref). */
static int ask(struct mmtrust *m, json_t *req, json_t **ret_result)
{
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL, *line = NULL;
	json_t *a = NULL;
	int r;

	json_decref(req);
	if (!text)
		return -ENOMEM;
	mmtrust__set_error(m, NULL);
	r = mmtrust_call(m, text, strlen(text), 1u << 20, &line);
	free(text);
	if (r < 0)
		return r;
	a = json_loads(line, 0, NULL);
	free(line);
	if (!json_is_object(a)) {
		json_decref(a);
		return -EBADMSG;
	}
	if (!json_is_true(json_object_get(a, "ok"))) {
		const json_t *e = json_object_get(a, "error");
		char msg[256];

		snprintf(msg, sizeof(msg), "%s: %s%s%s",
			 json_string_value(json_object_get(e, "code")) ?: "error",
			 json_string_value(json_object_get(e, "field")) ?: "",
			 json_object_get(e, "field") ? ": " : "",
			 json_string_value(json_object_get(e, "message")) ?: "");
		mmtrust__set_error(m, msg);
		json_decref(a);
		return -EPROTO;
	}
	*ret_result = json_incref(json_object_get(a, "result"));
	json_decref(a);
	return *ret_result ? 0 : -EBADMSG;
}

static int ask_fill(struct mmtrust *m, json_t *req, struct mmtrust_answer *ret)
{
	json_t *res;
	int r;

	if (!req)
		return -ENOMEM;
	r = ask(m, req, &res);
	if (r < 0)
		return r;
	fill(res, ret);
	json_decref(res);
	return 0;
}

/* SPIs go out as JSON numbers (docs/protocol.md): no text form to agree on. */
int mmtrust_inbound(struct mmtrust *m, const char *src, const char *dst, uint32_t spi,
		    struct mmtrust_answer *ret)
{
	json_t *req;

	if (mmtrust__snap_inbound(mmtrust__snap(m), src, dst, spi, ret) == 0)
		return 0;
	req = json_pack("{s:s, s:s}", "op", "inbound", "src", src ? src : "");
	if (req && dst)
		json_object_set_new(req, "dst", json_string(dst));
	if (req && spi)
		json_object_set_new(req, "spi", json_integer(spi));
	return ask_fill(m, req, ret);
}

int mmtrust_outbound(struct mmtrust *m, const char *domain, const char *dst, int privacy_id,
		     struct mmtrust_answer *ret)
{
	json_t *req;

	if (mmtrust__snap_outbound(mmtrust__snap(m), domain, dst, privacy_id, ret) == 0)
		return 0;
	req = json_pack("{s:s}", "op", "outbound");
	if (!req)
		return -ENOMEM;
	if (domain)
		json_object_set_new(req, "domain", json_string(domain));
	if (dst)
		json_object_set_new(req, "dst", json_string(dst));
	if (privacy_id)
		json_object_set_new(req, "privacy", json_pack("[s]", "id"));
	return ask_fill(m, req, ret);
}

int mmtrust_spi(struct mmtrust *m, uint32_t spi, struct mmtrust_answer *ret)
{
	json_t *req = json_pack("{s:s, s:I}", "op", "spi", "spi", (json_int_t)spi);

	return ask_fill(m, req, ret);
}

int mmtrust_subscribe(struct mmtrust *m)
{
	json_t *res;
	int r = ask(m, json_pack("{s:s}", "op", "subscribe"), &res);

	if (r == 0)
		json_decref(res);
	return r;
}

int mmtrust_next_event(struct mmtrust *m, int timeout_ms, struct mmtrust_event *ret)
{
	char *line = NULL;
	json_t *e;
	int r;

	for (;;) {
		r = mmtrust__read_line(m, timeout_ms, &line);
		if (r < 0)
			return r;
		e = json_loads(line, 0, NULL);
		free(line);
		if (json_is_object(e) && json_is_string(json_object_get(e, "event")))
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
