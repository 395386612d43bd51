/* libFuzzer target for the CSCF query protocol (daemon/query.c): request
 * lines through the same path a client's bytes take (jsonl.c's
 * client_line: JSON decode, the handler, the answer's encoding) on a fixed
 * view, so that every decision runs.  No socket: the client's output buffer
 * is read back.
 *
 * Input: one flag byte (bit 0: [query] require_dst; bit 1: untrusted mode
 * strip-if-privacy-id; bit 2: the view is withdrawn), then request lines.
 *
 * The view (built once): six partners.
 *   trusted.example.net  agreement, SA up, in and out policies enforced
 *   trusted-nonims.example.net  the same, of kind non-ims
 *   loose.example.org    agreement, SA up, nothing enforced
 *   noagree.example.com  no agreement, SA up, enforced
 *   down.example.net     agreement, no SA
 *   seg.example.net      agreement, seg path
 * cscf prefixes 10.0.0.0/24 and 2001:db8:10::/64 (every kind), and
 * 10.0.1.0/24 (IMS only).
 *
 * Invariants, per request line: exactly one answer line, valid JSON, an
 * object with "ok" true or false and the request's "id"; a refusal has an
 * error code and a message; an inbound or outbound answer has "pai" keep
 * or strip and a reason; inbound keeps PAI only for seg.example.net (a seg
 * partner is trusted on connectivity, docs/privacy.md) or for
 * trusted.example.net or trusted-nonims.example.net, protected, over a
 * view not withdrawn, with dst given inside a cscf prefix of src's family
 * facing the partner's kind (never 10.0.1.0/24 for the non-ims one) and
 * the SPI, when given, the partner's SA's; the answer's src and partner
 * are what the table says of the request's src; outbound keeps PAI only
 * for a trusted partner (either trusted one while not withdrawn, or
 * seg.example.net) or, in strip-if-privacy-id mode, when no
 * Privacy: id was asked; an spi answer names the tunnel holding the SPI. */
#include "fuzz_jsonl.h"

#include "daemon/query.c"

#define TRUSTED "trusted.example.net"
#define NONIMS "trusted-nonims.example.net"
#define SEG "seg.example.net"

static struct mm_query views[8];
static struct mm_jsonl_server server;
static struct mm_table *table;

static struct mm_partner *partner(const char *domain, bool agreement, enum mm_path path,
				  uint32_t reqid, const char *r1, const char *r2)
{
	struct mm_partner *p = mm_partner_new();

	FUZZ_ASSERT(p, "no memory");
	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	p->kind = MM_KIND_IMS;
	p->agreement = agreement;
	p->path = path;
	p->enabled = true;
	p->reqid = reqid;
	p->ranges = calloc(2, sizeof(*p->ranges));
	p->gateways = calloc(1, sizeof(*p->gateways));
	FUZZ_ASSERT(p->ranges && p->gateways, "no memory");
	FUZZ_ASSERT(mm_prefix_parse(r1, &p->ranges[p->n_ranges++], "r", NULL) == 0, "%s", r1);
	if (r2)
		FUZZ_ASSERT(mm_prefix_parse(r2, &p->ranges[p->n_ranges++], "r", NULL) == 0, "%s", r2);
	FUZZ_ASSERT(mm_addr_parse("100.64.0.1", &p->gateways[p->n_gateways++], "g", NULL) == 0,
		    "gateway");
	return p;
}

static struct mm_tunnel_info tunnel(const char *domain, uint32_t reqid, uint32_t in, uint32_t out)
{
	struct mm_tunnel_info t = { .up = true, .reqid = reqid, .spi_in = in, .spi_out = out,
				    .since = 1700000000 };

	snprintf(t.domain, sizeof(t.domain), "%s", domain);
	snprintf(t.remote_id, sizeof(t.remote_id), "%s", domain);
	snprintf(t.remote_host, sizeof(t.remote_host), "100.64.0.1");
	return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mm_partner *p[6];
	/* sorted by domain, as the view wants them */
	struct mm_tunnel_info up[4] = {
		tunnel("loose.example.org", 1002, 0xc0ffee02, 0xbeef02),
		tunnel("noagree.example.com", 1003, 0xc0ffee03, 0xbeef03),
		tunnel(NONIMS, 1006, 0xc0ffee06, 0xbeef06),
		tunnel(TRUSTED, 1001, 0xc0ffee01, 0xbeef01),
	};
	bool in_enf[4] = { false, true, true, true }, out_enf[4] = { false, true, true, true };
	struct mm_prefix cscf[3];
	/* shared, and an IMS-facing one (dst-other-kind for non-IMS partners) */
	static const unsigned cscf_kinds[3] = { MM_KINDS_ALL, MM_KINDS_ALL,
						MM_KIND_BIT(MM_KIND_IMS) };

	(void)argc;
	(void)argv;
	p[0] = partner(TRUSTED, true, MM_PATH_TUNNEL, 1001, "10.1.0.0/24", "2001:db8:a::/48");
	p[1] = partner("loose.example.org", true, MM_PATH_TUNNEL, 1002, "10.2.0.0/16", NULL);
	p[2] = partner("noagree.example.com", false, MM_PATH_TUNNEL, 1003, "10.3.3.0/24", NULL);
	p[3] = partner("down.example.net", true, MM_PATH_TUNNEL, 1004, "10.4.0.0/24", NULL);
	p[4] = partner(SEG, true, MM_PATH_SEG, 1005, "10.5.0.0/24", "2001:db8:5::/48");
	p[5] = partner(NONIMS, true, MM_PATH_TUNNEL, 1006, "10.6.0.0/24", "2001:db8:6::/48");
	p[5]->kind = MM_KIND_NON_IMS;
	FUZZ_ASSERT(mm_table_build(p, 6, 1000, 1999, 1007, &table, NULL) == 0, "table");
	for (int i = 0; i < 6; i++)
		mm_partner_unref(p[i]);
	FUZZ_ASSERT(mm_prefix_parse("10.0.0.0/24", &cscf[0], "c", NULL) == 0 &&
		    mm_prefix_parse("2001:db8:10::/64", &cscf[1], "c", NULL) == 0 &&
		    mm_prefix_parse("10.0.1.0/24", &cscf[2], "c", NULL) == 0, "cscf");
	for (int f = 0; f < 8; f++) {
		struct query_view_input in = {
			.table = table, .up = up, .n_up = 4, .enforced = in_enf,
			.out_enforced = out_enf,
			.cscf = { .prefix = cscf, .kinds = cscf_kinds, .n = 3 },
			.untrusted = f & 2 ? MM_UNTRUSTED_STRIP_PRIVACY_ID
					   : MM_UNTRUSTED_STRIP_ALWAYS,
			.require_dst = f & 1,
		};

		pthread_mutex_init(&views[f].lock, NULL);
		FUZZ_ASSERT(query_publish(&views[f], &in) == 0, "publish");
		views[f].view->withdrawn = f & 4;
	}
	server.handler = query_handle;
	server.lim = (struct mm_jsonl_limits){ .max_line = 1 << 20, .max_out = 1 << 24 };
	return 0;
}

#define str fuzz_str_member

/* Whether dst is inside one of the view's cscf prefixes that faces the
 * partner's kind: the fixed prefixes are 10.0.0.0/24 and 2001:db8:10::/64
 * (every kind) and 10.0.1.0/24 (IMS only).  Written out from the set-up
 * above, not asked of query.c's own cscf-set code. */
static bool cscf_faces(const struct mm_addr *dst, enum mm_kind kind)
{
	static const struct { const char *prefix; bool ims_only; } faces[] = {
		{ "10.0.0.0/24", false }, { "2001:db8:10::/64", false }, { "10.0.1.0/24", true },
	};

	for (size_t i = 0; i < sizeof(faces) / sizeof(faces[0]); i++) {
		struct mm_prefix c;

		FUZZ_ASSERT(mm_prefix_parse(faces[i].prefix, &c, "c", NULL) == 0, "cscf");
		if (c.addr.family == dst->family && mm_prefix_contains(&c, dst) &&
		    (!faces[i].ims_only || kind == MM_KIND_IMS))
			return true;
	}
	return false;
}

static void check_inbound(const struct view *v, const json_t *req, const json_t *res)
{
	const char *pai = str(res, "pai"), *partner = str(res, "partner");
	const json_t *prot = json_object_get(res, "protected");
	struct mm_addr src, echoed, dst;
	struct mm_partner *p;
	bool dst_given = mm_addr_parse(str(req, "dst"), &dst, "dst", NULL) == 0;

	FUZZ_ASSERT(mm_addr_parse(str(req, "src"), &src, "src", NULL) == 0, "src accepted");
	FUZZ_ASSERT(mm_addr_parse(str(res, "src"), &echoed, "src", NULL) == 0 &&
		    mm_addr_cmp(&src, &echoed) == 0, "src echoed as '%s'", str(res, "src"));
	p = mm_table_lookup(v->table, &src, NULL);
	FUZZ_ASSERT(p ? partner && !strcmp(partner, p->domain) : json_is_null(json_object_get(res,
		    "partner")), "partner '%s' for src '%s'", partner, str(req, "src"));
	FUZZ_ASSERT(json_is_boolean(prot) && json_is_object(json_object_get(res, "sa")) ==
		    (p && view_find(v, p->domain) < v->n_up), "protected/sa");
	FUZZ_ASSERT(!json_is_true(prot) || json_is_object(json_object_get(res, "sa")),
		    "protected without an SA");
	/* A seg partner's PAI is kept on connectivity alone (docs/privacy.md). */
	if (pai && !strcmp(pai, "keep") && !(p && p->path == MM_PATH_SEG && p->agreement)) {
		uint32_t spi = 0;
		bool nonims = p && !strcmp(p->domain, NONIMS);

		FUZZ_ASSERT(json_is_true(prot) && p && (!strcmp(p->domain, TRUSTED) || nonims) &&
			    !v->withdrawn, "PAI kept for %s", partner);
		FUZZ_ASSERT(dst_given && dst.family == src.family && cscf_faces(&dst, p->kind),
			    "PAI kept for dst '%s'", str(req, "dst"));
		if (mm_spi_from_json(json_object_get(req, "spi"), &spi, "spi", NULL) == 0)
			FUZZ_ASSERT(spi == (nonims ? 0xc0ffee06 : 0xc0ffee01),
				    "PAI kept over SPI %#x", spi);
	}
	FUZZ_ASSERT(!v->withdrawn || !json_is_true(prot), "protected by a withdrawn view");
}

static void check_outbound(const struct view *v, const json_t *req, const json_t *res)
{
	const char *pai = str(res, "pai"), *partner = str(res, "partner");
	const json_t *privacy = json_object_get(req, "privacy");
	bool trusted = json_is_true(json_object_get(res, "trusted"));

	FUZZ_ASSERT(json_is_boolean(json_object_get(res, "trusted")), "trusted");
	if (trusted)
		FUZZ_ASSERT(partner && (!strcmp(partner, SEG) ||
					((!strcmp(partner, TRUSTED) || !strcmp(partner, NONIMS)) &&
					 !v->withdrawn)),
			    "trusted: %s", partner);
	if (!strcmp(pai, "keep") && !trusted) {
		json_t *err = NULL;

		FUZZ_ASSERT(v->untrusted == MM_UNTRUSTED_STRIP_PRIVACY_ID &&
			    !privacy_has_id(privacy, &err), "PAI kept, untrusted");
		json_decref(err);
	}
}

static void check_spi(const struct view *v, const json_t *req, const json_t *res)
{
	uint32_t spi;
	const char *partner = str(res, "partner");

	FUZZ_ASSERT(mm_spi_from_json(json_object_get(req, "spi"), &spi, "spi", NULL) == 0,
		    "spi accepted");
	for (size_t i = 0; i < v->n_up; i++)
		if (v->up[i].spi_in == spi || v->up[i].spi_out == spi) {
			FUZZ_ASSERT(partner && !strcmp(partner, v->up[i].domain), "spi %#x", spi);
			return;
		}
	FUZZ_ASSERT(!partner, "spi %#x: %s", spi, partner);
}

static void check(const json_t *req, const json_t *a, void *userdata)
{
	const struct view *v = userdata;
	const json_t *res = json_object_get(a, "result");
	const char *op = str(req, "op");

	if (!json_is_true(json_object_get(a, "ok")) || !op)
		return;
	if (!strcmp(op, "inbound") || !strcmp(op, "outbound")) {
		const char *pai = str(res, "pai"), *reason = str(res, "reason");

		FUZZ_ASSERT(pai && (!strcmp(pai, "keep") || !strcmp(pai, "strip")) && reason &&
			    reason[0], "decision without pai or reason");
		if (!strcmp(op, "inbound"))
			check_inbound(v, req, res);
		else
			check_outbound(v, req, res);
	} else if (!strcmp(op, "spi")) {
		check_spi(v, req, res);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_query *q;

	if (size < 1)
		return 0;
	q = &views[data[0] & 7];
	server.userdata = q;
	fuzz_jsonl_lines(&server, data + 1, size - 1, check, q->view);
	return 0;
}
