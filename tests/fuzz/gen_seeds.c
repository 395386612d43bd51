/* Writes the seed inputs of fuzz_xfrm, fuzz_vici and fuzz_snapshot that
 * are built with the project's own encoders (and, for what only the kernel
 * or charon writes, by hand in their layout).  Not part of `make fuzz`:
 * run it when a format changes, from the top of the tree:
 *
 *   cc -D_GNU_SOURCE -I. tests/fuzz/gen_seeds.c netlink/[a-z]*.c vici-plugins/[a-z]*.c \
 *       policy/addr.c policy/err.c policy/grow.c policy/snapshot.c policy/privacy.c \
 *       policy/names.c policy/jsonfmt.c policy/spi.c \
 *       -lmnl -ljansson $(pkg-config --libs libsystemd) -o /tmp/gen_seeds
 *   /tmp/gen_seeds tests/fuzz/corpus
 */
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netlink/xfrm_policy.h"
#include "policy/snapshot.h"
#include "vici-plugins/vici_msg.h"

static const char *out;

static void put(const char *dir, const char *name, const void *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", out, dir, name);
	f = fopen(path, "w");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- xfrm ---- */

static struct mm_xfrm_policy policy(int family)
{
	struct mm_xfrm_policy p = { .dir = XFRM_POLICY_OUT, .action = XFRM_POLICY_ALLOW,
				    .priority = 100100, .index = 0x41a, .n_tmpl = 1 };

	p.sel.family = family;
	if (family == AF_INET) {
		mm_prefix_parse("10.0.0.0/24", &p.sel.src, "s", NULL);
		mm_prefix_parse("192.0.2.0/24", &p.sel.dst, "d", NULL);
		mm_addr_parse("203.0.113.5", &p.tmpl[0].src, "t", NULL);
		mm_addr_parse("198.51.100.10", &p.tmpl[0].dst, "t", NULL);
	} else {
		mm_prefix_parse("2001:db8:10::/64", &p.sel.src, "s", NULL);
		mm_prefix_parse("2001:db8:a::/48", &p.sel.dst, "d", NULL);
		mm_addr_parse("2001:db8:ff::1", &p.tmpl[0].src, "t", NULL);
		mm_addr_parse("2001:db8:ffa::10", &p.tmpl[0].dst, "t", NULL);
		p.sel.proto = 17;
		p.sel.dport = 5060;
		p.sel.dport_mask = 0xffff;
		p.has_mark = true;
		p.mark = 7;
		p.mark_mask = 0xff;
		p.if_id = 3;
	}
	p.sel.user = 0x6d6d7472;
	p.tmpl[0].family = family;
	p.tmpl[0].proto = IPPROTO_ESP;
	p.tmpl[0].mode = XFRM_MODE_TUNNEL;
	p.tmpl[0].reqid = 1000001;
	p.tmpl[0].aalgos = p.tmpl[0].ealgos = p.tmpl[0].calgos = ~0u;
	return p;
}

static size_t sa_msg(void *buf, uint16_t type, int family, bool expire)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct xfrm_user_expire e = { 0 };
	struct xfrm_usersa_info *i = expire ? &e.state : &(struct xfrm_usersa_info){ 0 };
	struct mm_addr a;
	struct xfrm_mark m = { .v = 1, .m = 0xffffffff };

	nlh->nlmsg_type = type;
	i->family = family;
	mm_addr_parse(family == AF_INET ? "198.51.100.10" : "2001:db8:ffa::10", &a, "a", NULL);
	memcpy(&i->saddr, a.bytes, 16);
	mm_addr_parse(family == AF_INET ? "203.0.113.5" : "2001:db8:ff::1", &a, "a", NULL);
	memcpy(&i->id.daddr, a.bytes, 16);
	i->id.spi = htonl(0xc0ffee01);
	i->id.proto = IPPROTO_ESP;
	i->mode = XFRM_MODE_TUNNEL;
	i->reqid = 1000001;
	i->curlft.bytes = 1234;
	i->curlft.add_time = 1700000000;
	if (expire) {
		e.hard = 1;
		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(e)), &e, sizeof(e));
	} else {
		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(*i)), i, sizeof(*i));
	}
	mnl_attr_put(nlh, XFRMA_MARK, sizeof(m), &m);
	return nlh->nlmsg_len;
}

static void xfrm(void)
{
	static char buf[8192], one[MM_NL_MSG_MAX];
	struct mm_xfrm_policy p4 = policy(AF_INET), p6 = policy(AF_INET6);
	struct nlmsghdr *nlh;
	size_t len = 0, n;

	mm_xfrm_policy_encode_add(one, &p4, false);
	put("xfrm", "newpolicy4", one, ((struct nlmsghdr *)one)->nlmsg_len);
	memcpy(buf, one, ((struct nlmsghdr *)one)->nlmsg_len);
	len += ((struct nlmsghdr *)one)->nlmsg_len;
	mm_xfrm_policy_encode_add(one, &p6, true);
	put("xfrm", "updpolicy6", one, ((struct nlmsghdr *)one)->nlmsg_len);
	memcpy(buf + len, one, ((struct nlmsghdr *)one)->nlmsg_len);
	len += ((struct nlmsghdr *)one)->nlmsg_len;

	/* DELPOLICY event: the id, the policy in XFRMA_POLICY. */
	{
		struct xfrm_userpolicy_id id = { .dir = XFRM_POLICY_IN, .index = 0x419 };
		char inner[MM_NL_MSG_MAX];

		mm_xfrm_policy_encode_add(inner, &p4, false);
		nlh = mnl_nlmsg_put_header(one);
		nlh->nlmsg_type = XFRM_MSG_DELPOLICY;
		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(id)), &id, sizeof(id));
		mnl_attr_put(nlh, XFRMA_POLICY, sizeof(struct xfrm_userpolicy_info),
			     mnl_nlmsg_get_payload((struct nlmsghdr *)inner));
		put("xfrm", "delpolicy", one, nlh->nlmsg_len);
		memcpy(buf + len, one, nlh->nlmsg_len);
		len += nlh->nlmsg_len;
	}
	/* POLEXPIRE: the policy info first, then hard. */
	{
		struct xfrm_user_polexpire pe = { .hard = 1 };
		char inner[MM_NL_MSG_MAX];

		mm_xfrm_policy_encode_add(inner, &p4, false);
		memcpy(&pe.pol, mnl_nlmsg_get_payload((struct nlmsghdr *)inner), sizeof(pe.pol));
		nlh = mnl_nlmsg_put_header(one);
		nlh->nlmsg_type = XFRM_MSG_POLEXPIRE;
		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(pe)), &pe, sizeof(pe));
		put("xfrm", "polexpire", one, nlh->nlmsg_len);
	}
	n = sa_msg(one, XFRM_MSG_NEWSA, AF_INET, false);
	put("xfrm", "newsa4", one, n);
	memcpy(buf + len, one, n);
	len += n;
	n = sa_msg(one, XFRM_MSG_EXPIRE, AF_INET6, true);
	put("xfrm", "expire6", one, n);
	memcpy(buf + len, one, n);
	len += n;
	/* ACQUIRE with the policy's template. */
	{
		struct xfrm_user_acquire acq = { .aalgos = ~0u, .ealgos = ~0u, .seq = 9 };
		struct xfrm_user_tmpl ut = { .family = AF_INET, .reqid = 1000001, .mode = 1 };
		char inner[MM_NL_MSG_MAX];

		mm_xfrm_policy_encode_add(inner, &p4, false);
		memcpy(&acq.policy, mnl_nlmsg_get_payload((struct nlmsghdr *)inner),
		       sizeof(acq.policy));
		acq.sel = acq.policy.sel;
		acq.id.proto = IPPROTO_ESP;
		nlh = mnl_nlmsg_put_header(one);
		nlh->nlmsg_type = XFRM_MSG_ACQUIRE;
		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(acq)), &acq, sizeof(acq));
		mnl_attr_put(nlh, XFRMA_TMPL, sizeof(ut), &ut);
		put("xfrm", "acquire", one, nlh->nlmsg_len);
	}
	/* FLUSHSA, then a DONE that ends a dump. */
	{
		struct xfrm_usersa_flush f = { .proto = IPPROTO_ESP };

		nlh = mnl_nlmsg_put_header(buf + len);
		nlh->nlmsg_type = XFRM_MSG_FLUSHSA;
		memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(f)), &f, sizeof(f));
		len += nlh->nlmsg_len;
		nlh = mnl_nlmsg_put_header(buf + len);
		nlh->nlmsg_type = NLMSG_DONE;
		len += nlh->nlmsg_len;
	}
	put("xfrm", "stream", buf, len);
}

/* ---- vici ---- */

static void vici_put(const char *name, struct vici_builder *b)
{
	const uint8_t *frame;
	size_t len;

	if (vici_builder_finish(b, &frame, &len) < 0) {
		fprintf(stderr, "%s: builder failed\n", name);
		exit(1);
	}
	put("vici", name, frame + VICI_FRAME_HDR, len - VICI_FRAME_HDR);
	vici_builder_free(b);
}

static void child(struct vici_builder *b, const char *section, const char *spi_in)
{
	static const char *const lts[] = { "10.0.0.0/24", NULL };
	static const char *const rts[] = { "192.0.2.0/24", "2001:db8:a::/48", NULL };

	vici_builder_section_start(b, section);
	vici_builder_kv_str(b, "name", "partner-a");
	vici_builder_kv_str(b, "uniqueid", "5");
	vici_builder_kv_str(b, "reqid", "1000001");
	vici_builder_kv_str(b, "state", "INSTALLED");
	vici_builder_kv_str(b, "mode", "TUNNEL");
	vici_builder_kv_str(b, "protocol", "ESP");
	vici_builder_kv_str(b, "encap", "yes");
	vici_builder_kv_str(b, "spi-in", spi_in);
	vici_builder_kv_str(b, "spi-out", "0000beef");
	vici_builder_kv_str(b, "install-time", "17");
	vici_builder_list_strv(b, "local-ts", lts);
	vici_builder_list_strv(b, "remote-ts", rts);
	vici_builder_section_end(b);
}

static void ike_keys(struct vici_builder *b)
{
	vici_builder_kv_str(b, "uniqueid", "3");
	vici_builder_kv_str(b, "version", "2");
	vici_builder_kv_str(b, "state", "ESTABLISHED");
	vici_builder_kv_str(b, "local-host", "203.0.113.5");
	vici_builder_kv_str(b, "local-port", "4500");
	vici_builder_kv_str(b, "local-id", "sbc.operator.example");
	vici_builder_kv_str(b, "remote-host", "198.51.100.10");
	vici_builder_kv_str(b, "remote-port", "4500");
	vici_builder_kv_str(b, "remote-id", "ims.partner-a.example");
	vici_builder_kv_str(b, "established", "120");
}

static struct vici_builder *event(const char *name, bool up)
{
	struct vici_builder *b = NULL;

	vici_builder_new(VICI_EVENT, name, &b);
	if (up)
		vici_builder_kv_str(b, "up", "yes");
	vici_builder_section_start(b, "mm-partner-a");
	return b;
}

static void vici(void)
{
	static const char *const conns[] = { "mm-partner-a", "mm-partner-b", "other", NULL };
	struct vici_builder *b;

	b = event("list-sa", false);
	ike_keys(b);
	vici_builder_section_start(b, "child-sas");
	child(b, "partner-a-5", "c0ffee01");
	child(b, "partner-a-6", "FFFFFFFF");
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_put("list-sa", b);

	b = event("child-updown", true);
	ike_keys(b);
	vici_builder_section_start(b, "child-sas");
	child(b, "partner-a-5", "c0ffee01");
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_put("child-updown", b);

	b = event("child-rekey", false);
	ike_keys(b);
	vici_builder_section_start(b, "child-sas");
	vici_builder_section_start(b, "partner-a-5");
	child(b, "old", "c0ffee01");
	child(b, "new", "c0ffee02");
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_put("child-rekey", b);

	b = event("ike-updown", false);
	ike_keys(b);
	vici_builder_section_end(b);
	vici_put("ike-updown", b);

	b = event("ike-rekey", false);
	vici_builder_section_start(b, "old");
	ike_keys(b);
	vici_builder_section_end(b);
	vici_builder_section_start(b, "new");
	ike_keys(b);
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_put("ike-rekey", b);

	b = NULL;
	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_list_strv(b, "conns", conns);
	vici_put("get-conns", b);

	b = NULL;
	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "success", "no");
	vici_builder_kv_str(b, "errmsg", "loading connection 'mm-x' failed");
	vici_put("cmd-failed", b);

	b = NULL;
	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "success", "yes");
	vici_builder_kv_str(b, "matches", "1");
	vici_put("cmd-ok", b);
}

/* ---- snapshot ----
 *
 * fuzz_snapshot's input: a flags byte (0: the target makes size and
 * checksums right; 3: as given), the table and state lengths (32-bit
 * little endian), the table file, the state file, then 40-byte question
 * records (tests/fuzz/fuzz_snapshot.c).  The files are mm_snap_*_build's,
 * so the seeds are valid pairs of this host's layout. */

static void le32_put(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static struct mm_partner *snap_partner(const char *domain, uint32_t reqid, const char *ranges,
				       int kind, bool agreement, int path, bool enabled)
{
	struct mm_partner *p = calloc(1, sizeof(*p));
	char buf[256], *tok, *save;

	snprintf(p->domain, sizeof(p->domain), "%s", domain);
	p->reqid = reqid;
	p->kind = kind;
	p->agreement = agreement;
	p->path = path;
	p->enabled = enabled;
	p->ranges = calloc(8, sizeof(*p->ranges));
	snprintf(buf, sizeof(buf), "%s", ranges);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (mm_prefix_parse(tok, &p->ranges[p->n_ranges++], "r", NULL) < 0)
			exit(1);
	return p;
}

static void snap_put(const char *name, uint8_t flags, const struct mm_table *tb,
		     const char *cscf, enum mm_untrusted_mode mode, bool require_dst,
		     const struct mm_snap_tunnel_in *up, size_t n_up, unsigned tunnel_addrs,
		     const unsigned char *q, size_t qlen)
{
	struct mm_prefix c[4];
	unsigned kinds[4];
	size_t n_c = 0, tl, sl;
	struct mm_snap_table t;
	char buf[128], *tok, *save;
	void *tf, *sf;
	unsigned char *all;

	snprintf(buf, sizeof(buf), "%s", cscf);
	/* "ims:P" and "non-ims:P" face one kind, "P" both */
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		const char *text = tok;

		kinds[n_c] = MM_KINDS_ALL;
		if (!strncmp(tok, "ims:", 4)) {
			kinds[n_c] = MM_KIND_BIT(MM_KIND_IMS);
			text = tok + 4;
		} else if (!strncmp(tok, "non-ims:", 8)) {
			kinds[n_c] = MM_KIND_BIT(MM_KIND_NON_IMS);
			text = tok + 8;
		}
		if (mm_prefix_parse(text, &c[n_c++], "c", NULL) < 0)
			exit(1);
	}
	if (mm_snap_table_build(tb, &(struct mm_cscf_set){ .prefix = c, .kinds = kinds, .n = n_c },
				mode, require_dst, 0x5eed0000 + tb->n, &tf, &tl) ||
	    mm_snap_table_load(tf, tl, &t, NULL) ||
	    mm_snap_state_build(&t, 42, 4242, 1000, 5000, up, n_up, tunnel_addrs, &sf, &sl)) {
		fprintf(stderr, "snapshot %s: build failed\n", name);
		exit(1);
	}
	all = malloc(9 + tl + sl + qlen);
	all[0] = flags;
	le32_put(all + 1, (uint32_t)tl);
	le32_put(all + 5, (uint32_t)sl);
	memcpy(all + 9, tf, tl);
	memcpy(all + 9 + tl, sf, sl);
	memcpy(all + 9 + tl + sl, q, qlen);
	put("snapshot", name, all, 9 + tl + sl + qlen);
	free(all);
	free(tf);
	free(sf);
}

static void snapshot(void)
{
	struct mm_partner *p[5] = {
		snap_partner("a.example.net", 1001, "10.1.0.0/16 10.2.0.0/24 2a00:1::/32",
			     MM_KIND_IMS, true, MM_PATH_TUNNEL, true),
		snap_partner("b.example.net", 1002, "10.3.0.0/16 2a00:2::/48", MM_KIND_NON_IMS,
			     false, MM_PATH_TUNNEL, true),
		snap_partner("c.example.net", 1003, "10.4.0.0/24", MM_KIND_IMS, true,
			     MM_PATH_TUNNEL, false),
		snap_partner("seg.example.org", 1004, "198.18.0.0/15 2a00:4::/64", MM_KIND_IMS,
			     true, MM_PATH_SEG, true),
		snap_partner("x.example.com", 1005, "203.0.113.7/32", MM_KIND_IMS, true,
			     MM_PATH_TUNNEL, true),
	};
	struct mm_snap_tunnel_in up[] = {
		{ .domain = "a.example.net", .reqid = 1001, .spi_in = 0xc0000001,
		  .spi_out = 0xc0000002, .in_enforced = true, .out_enforced = true,
		  .since = 1764500000, .remote_id = "a.example.net" },
		{ .domain = "b.example.net", .reqid = 1002, .spi_in = 0xc0000003,
		  .spi_out = 0xc0000004, .in_enforced = true, .remote_id = "b.example.net" },
		{ .domain = "x.example.com", .reqid = 1005, .spi_in = 0xc0000005,
		  .spi_out = 0xc0000006, .out_enforced = true, .remote_id = "x.example.com" },
	};
	/* Questions: src from a range edge (flag 4), dst from a cscf edge
	 * (flag 8), the SPI of the tunnel (0x30), IPv6 (1); the bytes after
	 * the flag are also a domain. */
	unsigned char q[4 * 40] = { 0 };
	struct mm_table tb = { .partners = p, .n = 5 };
	/* gateways: a (IPv4 and IPv6), b and x IPv4, c IPv6, seg none */
	static const char *const gws[5] = { "192.0.2.1 2001:db8:1::1", "192.0.2.2",
					    "2001:db8:3::1", "", "192.0.2.5" };

	for (int i = 0; i < 5; i++) {
		char buf[64], *tok, *save;

		p[i]->gateways = calloc(2, sizeof(*p[i]->gateways));
		snprintf(buf, sizeof(buf), "%s", gws[i]);
		for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
			if (mm_addr_parse(tok, &p[i]->gateways[p[i]->n_gateways++], "g", NULL) < 0)
				exit(1);
	}

	q[0] = 0x04 | 0x08;
	memcpy(q + 1, "a.example.net", 14);
	q[40] = 0x01 | 0x04 | 0x08 | 0x30;
	le32_put(q + 40 + 33, 2);
	memcpy(q + 41, "seg.example.org", 16);
	q[80] = 0x04 | 0x10 | 0x40;
	le32_put(q + 80 + 33, 5);
	q[120] = 0x00;
	q[121] = 10, q[122] = 1, q[123] = 2, q[124] = 3;
	/* our tunnel addresses: IPv4 only, none (tunnel-address-missing),
	 * not known (no host watcher), IPv6 only */
	snap_put("five", 3, &tb, "10.9.0.0/24 2a00:9::/64", MM_UNTRUSTED_STRIP_ALWAYS, false,
		 up, 3, MM_TUNNEL_ADDRS_KNOWN | MM_FAMILY_V4, q, sizeof(q));
	snap_put("five-split", 3, &tb, "10.9.0.0/24 ims:10.9.1.0/24 non-ims:2a00:9::/64",
		 MM_UNTRUSTED_STRIP_ALWAYS, false, up, 3, MM_TUNNEL_ADDRS_KNOWN, q, sizeof(q));
	snap_put("five-reseal", 0, &tb, "10.9.0.0/24", MM_UNTRUSTED_STRIP_PRIVACY_ID, true, up,
		 3, 0, q, sizeof(q));
	tb.n = 1;
	snap_put("one-v6-cscf", 3, &tb, "2a00:9::/64", MM_UNTRUSTED_STRIP_ALWAYS, false, up, 1,
		 MM_TUNNEL_ADDRS_KNOWN | MM_FAMILY_V6, q, 40);
	tb.n = 0;
	snap_put("empty", 3, &tb, "", MM_UNTRUSTED_STRIP_ALWAYS, true, NULL, 0, 0, NULL, 0);
	for (int i = 0; i < 5; i++) {
		free(p[i]->gateways);
		free(p[i]->ranges);
		free(p[i]);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	out = argv[1];
	xfrm();
	vici();
	snapshot();
	return 0;
}
