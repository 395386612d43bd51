/* vici-plugins: the codec (round trips, limits, every malformed-input class),
 * the command builders parsed back, the SA decoders on hand-built events, and
 * vici_client against a fake charon served from the same sd-event loop. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/testmain.h"
#include "vici-plugins/vici.h"
#include "vici-plugins/vici_client.h"
#include "vici-plugins/vici_msg.h"

/* ---- helpers ------------------------------------------------------------ */

/* Finishes b and parses its frame back: the packet into *pkt_out (pointing
 * into b) and its body into a tree. */
static struct vici_msg *reparse(struct vici_builder *b, struct vici_packet *pkt_out)
{
	struct vici_packet pkt;
	struct vici_msg *m = NULL;
	const uint8_t *frame;
	size_t len, plen;

	ck_assert_int_eq(vici_builder_finish(b, &frame, &len), 0);
	ck_assert_int_eq(vici_frame_len(frame, &plen), 0);
	ck_assert_uint_eq(plen + VICI_FRAME_HDR, len);
	ck_assert_int_eq(vici_packet_parse(frame + VICI_FRAME_HDR, plen, &pkt), 0);
	ck_assert_int_eq(vici_msg_parse(pkt.body, pkt.body_len, &m), 0);
	if (pkt_out)
		*pkt_out = pkt;
	return m;
}

static int parse_bytes(const void *p, size_t n)
{
	struct vici_msg *m = NULL;
	int r = vici_msg_parse(p, n, &m);

	if (r == 0)
		ck_assert_ptr_nonnull(m);
	else
		ck_assert_ptr_null(m);
	vici_msg_free(m);
	return r;
}

static size_t list_len(const struct vici_node *list)
{
	size_t n = 0;

	for (const struct vici_node *i = vici_node_first(list); i; i = vici_node_next(i))
		n++;
	return n;
}

static const char *list_item(const struct vici_node *list, size_t idx)
{
	const struct vici_node *i = vici_node_first(list);

	while (i && idx--)
		i = vici_node_next(i);
	return vici_node_str(i);
}

static size_t strv_len(char **v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

/* ---- codec -------------------------------------------------------------- */

/* The encoding example of strongSwan's vici README, byte for byte. */
START_TEST(test_readme_example)
{
	static const uint8_t expect[] = {
		3, 4, 'k', 'e', 'y', '1', 0, 6, 'v', 'a', 'l', 'u', 'e', '1',
		1, 8, 's', 'e', 'c', 't', 'i', 'o', 'n', '1',
		1, 11, 's', 'u', 'b', '-', 's', 'e', 'c', 't', 'i', 'o', 'n',
		3, 4, 'k', 'e', 'y', '2', 0, 6, 'v', 'a', 'l', 'u', 'e', '2',
		2,
		4, 5, 'l', 'i', 's', 't', '1',
		5, 0, 5, 'i', 't', 'e', 'm', '1',
		5, 0, 5, 'i', 't', 'e', 'm', '2',
		6,
		2,
	};
	struct vici_builder *b = NULL;
	struct vici_packet pkt;
	struct vici_msg *m;
	const struct vici_node *root, *list;

	ck_assert_int_eq(vici_builder_new(VICI_CMD_RESPONSE, NULL, &b), 0);
	vici_builder_kv_str(b, "key1", "value1");
	vici_builder_section_start(b, "section1");
	vici_builder_section_start(b, "sub-section");
	vici_builder_kv_str(b, "key2", "value2");
	vici_builder_section_end(b);
	vici_builder_list_start(b, "list1");
	vici_builder_list_item_str(b, "item1");
	vici_builder_list_item_str(b, "item2");
	vici_builder_list_end(b);
	vici_builder_section_end(b);
	m = reparse(b, &pkt);
	ck_assert_int_eq(pkt.type, VICI_CMD_RESPONSE);
	ck_assert_ptr_null(pkt.name);
	ck_assert_uint_eq(pkt.body_len, sizeof(expect));
	ck_assert_mem_eq(pkt.body, expect, sizeof(expect));

	root = vici_msg_root(m);
	ck_assert_str_eq(vici_msg_get_str(m, "key1"), "value1");
	ck_assert_str_eq(vici_msg_get_str(m, "section1/sub-section/key2"), "value2");
	list = vici_node_find(root, "section1/list1");
	ck_assert_int_eq(vici_node_type(list), VICI_NODE_LIST);
	ck_assert_uint_eq(list_len(list), 2);
	ck_assert_str_eq(list_item(list, 0), "item1");
	ck_assert_str_eq(list_item(list, 1), "item2");
	ck_assert_ptr_null(vici_node_name(vici_node_first(list)));
	ck_assert_ptr_null(vici_node_name(root));
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_round_trip_binary)
{
	static const uint8_t bin[] = { 0x30, 0x00, 0xff, 0x00, 0x01 };
	struct vici_builder *b = NULL;
	struct vici_packet pkt;
	struct vici_msg *m;
	const struct vici_node *n, *sec;
	const uint8_t *v;
	size_t len;
	char *big = malloc(VICI_VALUE_MAX);

	memset(big, 'x', VICI_VALUE_MAX);
	ck_assert_int_eq(vici_builder_new(VICI_EVENT, "child-updown", &b), 0);
	ck_assert_int_eq(vici_builder_kv(b, "der", bin, sizeof(bin)), 0);
	ck_assert_int_eq(vici_builder_kv(b, "empty", NULL, 0), 0);
	ck_assert_int_eq(vici_builder_kv(b, "big", big, VICI_VALUE_MAX), 0);
	ck_assert_int_eq(vici_builder_kv_fmt(b, "num", "%u", 4242u), 0);
	ck_assert_int_eq(vici_builder_section_start(b, "s"), 0);
	ck_assert_int_eq(vici_builder_list_start(b, "l"), 0);
	ck_assert_int_eq(vici_builder_list_end(b), 0); /* empty lists are valid */
	ck_assert_int_eq(vici_builder_section_start(b, "inner"), 0);
	ck_assert_int_eq(vici_builder_section_end(b), 0); /* so are empty sections */
	ck_assert_int_eq(vici_builder_section_end(b), 0);
	m = reparse(b, &pkt);
	ck_assert_int_eq(pkt.type, VICI_EVENT);
	ck_assert_uint_eq(pkt.name_len, strlen("child-updown"));
	ck_assert_mem_eq(pkt.name, "child-updown", pkt.name_len);

	n = vici_node_child(vici_msg_root(m), "der");
	v = vici_node_value(n, &len);
	ck_assert_uint_eq(len, sizeof(bin));
	ck_assert_mem_eq(v, bin, sizeof(bin));
	ck_assert_ptr_null(vici_node_str(n)); /* holds a NUL: not a string */

	n = vici_node_child(vici_msg_root(m), "empty");
	ck_assert_ptr_nonnull(vici_node_value(n, &len));
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(vici_node_str(n), "");

	n = vici_node_child(vici_msg_root(m), "big");
	v = vici_node_value(n, &len);
	ck_assert_uint_eq(len, VICI_VALUE_MAX);
	ck_assert_mem_eq(v, big, VICI_VALUE_MAX);
	ck_assert_int_eq(v[len], 0); /* the promised terminator */

	ck_assert_str_eq(vici_msg_get_str(m, "num"), "4242");
	sec = vici_node_child(vici_msg_root(m), "s");
	ck_assert_int_eq(vici_node_type(sec), VICI_NODE_SECTION);
	ck_assert_uint_eq(list_len(vici_node_child(sec, "l")), 0);
	ck_assert_ptr_null(vici_node_first(vici_node_child(sec, "inner")));
	/* Message order is kept. */
	n = vici_node_first(vici_msg_root(m));
	ck_assert_str_eq(vici_node_name(n), "der");
	ck_assert_str_eq(vici_node_name(vici_node_next(n)), "empty");
	vici_msg_free(m);
	vici_builder_free(b);
	free(big);
}
END_TEST

START_TEST(test_empty_message)
{
	struct vici_msg *m = NULL;

	ck_assert_int_eq(vici_msg_parse(NULL, 0, &m), 0);
	ck_assert_ptr_null(vici_node_first(vici_msg_root(m)));
	ck_assert_int_eq(vici_msg_check_success(m), -EBADMSG);
	vici_msg_free(m);
	vici_msg_free(NULL);
	vici_builder_free(NULL);
}
END_TEST

START_TEST(test_paths)
{
	struct vici_builder *b = NULL;
	struct vici_msg *m;
	const struct vici_node *root;

	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_section_start(b, "a");
	vici_builder_section_start(b, "b");
	vici_builder_kv_str(b, "c", "deep");
	vici_builder_section_end(b);
	vici_builder_kv_str(b, "k", "v");
	vici_builder_kv_str(b, "k", "second");
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	root = vici_msg_root(m);
	ck_assert_str_eq(vici_msg_get_str(m, "a/b/c"), "deep");
	ck_assert_str_eq(vici_msg_get_str(m, "a/k"), "v"); /* first of duplicates */
	ck_assert_ptr_null(vici_node_find(root, "a/b/x"));
	ck_assert_ptr_null(vici_node_find(root, "a//b"));
	ck_assert_ptr_null(vici_node_find(root, "/a"));
	ck_assert_ptr_null(vici_node_find(root, "a/"));
	ck_assert_ptr_null(vici_node_find(root, ""));
	ck_assert_ptr_null(vici_node_find(root, "a/k/x")); /* through a key */
	ck_assert_ptr_null(vici_node_find(root, "ab"));
	ck_assert_ptr_null(vici_node_find(NULL, "a"));
	ck_assert_ptr_null(vici_msg_get_str(m, "a/b")); /* a section has no value */
	ck_assert_int_eq(vici_node_type(vici_node_find(root, "a/b")), VICI_NODE_SECTION);
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_numbers_and_bools)
{
	static const struct {
		const char *v;
		uint64_t max;
		int r;
		uint64_t expect;
	} t[] = {
		{ "0", UINT32_MAX, 0, 0 },
		{ "4294967295", UINT32_MAX, 0, 4294967295u },
		{ "4294967296", UINT32_MAX, -ERANGE, 0 },
		{ "18446744073709551615", UINT64_MAX, 0, UINT64_MAX },
		{ "18446744073709551616", UINT64_MAX, -ERANGE, 0 },
		{ "-1", UINT64_MAX, -EBADMSG, 0 },
		{ "+1", UINT64_MAX, -EBADMSG, 0 },
		{ " 1", UINT64_MAX, -EBADMSG, 0 },
		{ "1 ", UINT64_MAX, -EBADMSG, 0 },
		{ "", UINT64_MAX, -EBADMSG, 0 },
		{ "0x10", UINT64_MAX, -EBADMSG, 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct vici_builder *b = NULL;
		struct vici_msg *m;
		uint64_t v = 77;

		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		vici_builder_kv_str(b, "n", t[i].v);
		m = reparse(b, NULL);
		ck_assert_msg(vici_node_uint(vici_node_child(vici_msg_root(m), "n"), t[i].max, &v) ==
				      t[i].r,
			      "'%s'", t[i].v);
		ck_assert_uint_eq(v, t[i].r == 0 ? t[i].expect : 77);
		vici_msg_free(m);
		vici_builder_free(b);
	}

	struct vici_builder *b = NULL;
	struct vici_msg *m;
	bool yes = false, no = true, other = false;
	uint64_t v;

	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "y", "yes");
	vici_builder_kv_str(b, "n", "no");
	vici_builder_kv_str(b, "o", "YES");
	vici_builder_list_start(b, "l");
	vici_builder_list_end(b);
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_node_bool(vici_node_child(vici_msg_root(m), "y"), &yes), 0);
	ck_assert_int_eq(vici_node_bool(vici_node_child(vici_msg_root(m), "n"), &no), 0);
	ck_assert(yes && !no);
	ck_assert_int_eq(vici_node_bool(vici_node_child(vici_msg_root(m), "o"), &other), -EBADMSG);
	ck_assert_int_eq(vici_node_bool(vici_node_child(vici_msg_root(m), "x"), &other), -ENOENT);
	ck_assert_int_eq(vici_node_bool(vici_node_child(vici_msg_root(m), "l"), &other), -EINVAL);
	ck_assert_int_eq(vici_node_uint(vici_node_child(vici_msg_root(m), "l"), 9, &v), -EINVAL);
	ck_assert_int_eq(vici_node_uint(NULL, 9, &v), -ENOENT);
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_success_reply)
{
	struct vici_builder *b = NULL;
	struct vici_msg *m;

	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "success", "yes");
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_msg_check_success(m), 0);
	ck_assert_ptr_null(vici_msg_errmsg(m));
	vici_msg_free(m);
	vici_builder_free(b);

	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "success", "no");
	vici_builder_kv_str(b, "errmsg", "no such thing");
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_msg_check_success(m), -EREMOTEIO);
	ck_assert_str_eq(vici_msg_errmsg(m), "no such thing");
	vici_msg_free(m);
	vici_builder_free(b);

	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "success", "perhaps");
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_msg_check_success(m), -EBADMSG);
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_builder_limits)
{
	struct vici_builder *b = NULL;
	const uint8_t *frame;
	char name[VICI_NAME_MAX + 2];
	char *big;
	size_t len;

	/* Packet headers. */
	ck_assert_int_eq(vici_builder_new(VICI_CMD_REQUEST, NULL, &b), -EINVAL);
	ck_assert_int_eq(vici_builder_new(VICI_CMD_REQUEST, "", &b), -EINVAL);
	ck_assert_int_eq(vici_builder_new(VICI_CMD_RESPONSE, "x", &b), -EINVAL);
	ck_assert_int_eq(vici_builder_new((enum vici_packet_type)8, NULL, &b), -EINVAL);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(vici_builder_new(VICI_EVENT_CONFIRM, NULL, &b), 0);
	ck_assert_int_eq(vici_builder_kv_str(b, "k", "v"), -EINVAL); /* no body allowed */
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_builder_new(VICI_EVENT_REGISTER, "child-updown", &b), 0);
	ck_assert_int_eq(vici_builder_finish(b, &frame, &len), 0);
	ck_assert_uint_eq(len, 4 + 1 + 1 + 12);
	ck_assert_int_eq(frame[4], VICI_EVENT_REGISTER);
	ck_assert_int_eq(frame[5], 12);
	vici_builder_free(b);
	b = NULL;

	/* Names: 1..255 bytes. */
	memset(name, 'n', sizeof(name));
	name[VICI_NAME_MAX] = '\0';
	vici_builder_new(VICI_CMD_REQUEST, name, &b);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(vici_builder_kv_str(b, name, "v"), 0);
	name[VICI_NAME_MAX] = 'n';
	name[VICI_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(vici_builder_kv_str(b, name, "v"), -EINVAL);
	/* The error sticks: later adds fail, finish reports it. */
	ck_assert_int_eq(vici_builder_kv_str(b, "ok", "v"), -EINVAL);
	ck_assert_int_eq(vici_builder_finish(b, &frame, &len), -EINVAL);
	vici_builder_free(b);
	b = NULL;

	vici_builder_new(VICI_CMD_REQUEST, "x", &b);
	ck_assert_int_eq(vici_builder_section_start(b, ""), -EINVAL);
	vici_builder_free(b);
	b = NULL;

	/* Values: up to 65535 bytes. */
	big = calloc(1, VICI_VALUE_MAX + 1);
	vici_builder_new(VICI_CMD_REQUEST, "x", &b);
	ck_assert_int_eq(vici_builder_kv(b, "v", big, VICI_VALUE_MAX + 1), -EMSGSIZE);
	vici_builder_free(b);
	b = NULL;

	/* The whole packet: at most VICI_PACKET_MAX. */
	vici_builder_new(VICI_CMD_REQUEST, "x", &b);
	int r = 0;
	size_t added = 0;
	while (r == 0) {
		r = vici_builder_kv(b, "v", big, VICI_VALUE_MAX);
		if (r == 0)
			added++;
	}
	ck_assert_int_eq(r, -EMSGSIZE);
	ck_assert_uint_eq(added, VICI_PACKET_MAX / (VICI_VALUE_MAX + 5));
	ck_assert_int_eq(vici_builder_finish(b, &frame, &len), -EMSGSIZE);
	vici_builder_free(b);
	b = NULL;
	free(big);

	/* Nesting: VICI_MSG_DEPTH_MAX sections, not one more. */
	vici_builder_new(VICI_CMD_REQUEST, "x", &b);
	for (unsigned i = 0; i < VICI_MSG_DEPTH_MAX; i++)
		ck_assert_int_eq(vici_builder_section_start(b, "s"), 0);
	ck_assert_int_eq(vici_builder_section_start(b, "s"), -EMSGSIZE);
	vici_builder_free(b);
	b = NULL;

	/* Grammar misuse. */
	static const int seqs[][4] = {
		/* 1 section_end at root */ { 1, 0 },
		/* 2 list_end without list */ { 2, 0 },
		/* 3 item outside a list */ { 3, 0 },
		/* 4 kv inside a list */ { 4, 5, 0 },
		/* 5 list inside a list */ { 4, 4, 0 },
		/* 6 section inside a list */ { 4, 6, 0 },
		/* 7 section end inside a list */ { 6, 4, 1, 0 },
	};
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		int last = 0;

		vici_builder_new(VICI_CMD_REQUEST, "x", &b);
		for (size_t j = 0; j < 4 && seqs[i][j]; j++) {
			switch (seqs[i][j]) {
			case 1: last = vici_builder_section_end(b); break;
			case 2: last = vici_builder_list_end(b); break;
			case 3: last = vici_builder_list_item_str(b, "i"); break;
			case 4: last = vici_builder_list_start(b, "l"); break;
			case 5: last = vici_builder_kv_str(b, "k", "v"); break;
			case 6: last = vici_builder_section_start(b, "s"); break;
			}
		}
		ck_assert_msg(last == -EINVAL, "sequence %zu: %d", i + 1, last);
		vici_builder_free(b);
		b = NULL;
	}

	/* Unclosed section or list at finish. */
	vici_builder_new(VICI_CMD_REQUEST, "x", &b);
	vici_builder_section_start(b, "s");
	ck_assert_int_eq(vici_builder_finish(b, &frame, &len), -EINVAL);
	vici_builder_free(b);
	b = NULL;
	vici_builder_new(VICI_CMD_REQUEST, "x", &b);
	vici_builder_list_start(b, "l");
	ck_assert_int_eq(vici_builder_finish(b, &frame, &len), -EINVAL);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_parse_nesting_limit)
{
	uint8_t buf[4 * (VICI_MSG_DEPTH_MAX + 1)];
	size_t n = 0;

	for (unsigned i = 0; i < VICI_MSG_DEPTH_MAX; i++) {
		buf[n++] = VICI_SECTION_START;
		buf[n++] = 1;
		buf[n++] = 's';
	}
	for (unsigned i = 0; i < VICI_MSG_DEPTH_MAX; i++)
		buf[n++] = VICI_SECTION_END;
	ck_assert_int_eq(parse_bytes(buf, n), 0);

	n = 0;
	for (unsigned i = 0; i < VICI_MSG_DEPTH_MAX + 1; i++) {
		buf[n++] = VICI_SECTION_START;
		buf[n++] = 1;
		buf[n++] = 's';
	}
	for (unsigned i = 0; i < VICI_MSG_DEPTH_MAX + 1; i++)
		buf[n++] = VICI_SECTION_END;
	ck_assert_int_eq(parse_bytes(buf, n), -EBADMSG);
}
END_TEST

START_TEST(test_parse_size_limits)
{
	/* VICI_MSG_ELEMS_MAX elements are fine, one more is not: an empty
	 * list of many empty items keeps the message small. */
	size_t n = 3 + 3 * ((size_t)VICI_MSG_ELEMS_MAX - 1) + 1;
	uint8_t *buf = malloc(n + 3);
	size_t off = 0;

	buf[off++] = VICI_LIST_START;
	buf[off++] = 1;
	buf[off++] = 'l';
	for (size_t i = 0; i < VICI_MSG_ELEMS_MAX - 2; i++) {
		buf[off++] = VICI_LIST_ITEM;
		buf[off++] = 0;
		buf[off++] = 0;
	}
	buf[off++] = VICI_LIST_END;
	ck_assert_int_eq(parse_bytes(buf, off), 0);
	memmove(buf + 6, buf + 3, off - 3);
	memcpy(buf + 3, "\x05\x00\x00", 3); /* one more item */
	ck_assert_int_eq(parse_bytes(buf, off + 3), -EMSGSIZE);
	free(buf);

	buf = calloc(1, VICI_PACKET_MAX + 1);
	struct vici_packet pkt;
	ck_assert_int_eq(parse_bytes(buf, VICI_PACKET_MAX + 1), -EMSGSIZE);
	buf[0] = VICI_CMD_RESPONSE;
	ck_assert_int_eq(vici_packet_parse(buf, VICI_PACKET_MAX + 1, &pkt), -EMSGSIZE);
	free(buf);

	/* Frame headers. */
	size_t len = 1;
	ck_assert_int_eq(vici_frame_len((const uint8_t *)"\x00\x08\x00\x00", &len), 0);
	ck_assert_uint_eq(len, VICI_PACKET_MAX);
	ck_assert_int_eq(vici_frame_len((const uint8_t *)"\x00\x08\x00\x01", &len), -EMSGSIZE);
	ck_assert_int_eq(vici_frame_len((const uint8_t *)"\xff\xff\xff\xff", &len), -EMSGSIZE);
	ck_assert_int_eq(vici_frame_len((const uint8_t *)"\x00\x00\x00\x00", &len), -EBADMSG);
	ck_assert_uint_eq(len, VICI_PACKET_MAX); /* untouched on failure */
}
END_TEST

struct bad_case {
	const char *what;
	uint8_t bytes[16];
	size_t len;
};

#define BAD(what, ...) { what, { __VA_ARGS__ }, sizeof((uint8_t[]){ __VA_ARGS__ }) }

START_TEST(test_parse_malformed)
{
	static const struct bad_case cases[] = {
		BAD("unknown element type 0", 0),
		BAD("unknown element type 7", 7),
		BAD("unknown element type 255", 255),
		BAD("section name length missing", 1),
		BAD("section name overruns", 1, 5, 's'),
		BAD("zero-length section name", 1, 0, 2),
		BAD("NUL in a name", 3, 2, 'k', 0, 0, 0),
		BAD("zero-length key", 3, 0, 0, 0),
		BAD("key value length missing", 3, 1, 'k'),
		BAD("key value length truncated", 3, 1, 'k', 0),
		BAD("key value overruns", 3, 1, 'k', 0, 5, 'a', 'b'),
		BAD("key value length 0xffff overruns", 3, 1, 'k', 0xff, 0xff, 'a'),
		BAD("section end at root", 2),
		BAD("section never closed", 1, 1, 's'),
		BAD("one end too many", 1, 1, 's', 2, 2),
		BAD("list never closed", 4, 1, 'l'),
		BAD("zero-length list name", 4, 0, 6),
		BAD("item outside a list", 5, 0, 0),
		BAD("list end outside a list", 6),
		BAD("list inside a list", 4, 1, 'l', 4, 1, 'm', 6, 6),
		BAD("key inside a list", 4, 1, 'l', 3, 1, 'k', 0, 0, 6),
		BAD("section inside a list", 4, 1, 'l', 1, 1, 's', 2, 6),
		BAD("section end inside a list", 1, 1, 's', 4, 1, 'l', 2, 6),
		BAD("item truncated", 4, 1, 'l', 5, 0),
		BAD("item overruns", 4, 1, 'l', 5, 0, 9, 'x', 6),
		BAD("list closed by section end", 4, 1, 'l', 2),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(parse_bytes(cases[i].bytes, cases[i].len) == -EBADMSG, "%s accepted",
			      cases[i].what);
}
END_TEST

START_TEST(test_packet_malformed)
{
	static const struct bad_case cases[] = {
		BAD("unknown packet type 8", 8),
		BAD("unknown packet type 255", 255, 0),
		BAD("request without name length", VICI_CMD_REQUEST),
		BAD("request with empty name", VICI_CMD_REQUEST, 0),
		BAD("request name overruns", VICI_CMD_REQUEST, 4, 'a', 'b'),
		BAD("event name overruns", VICI_EVENT, 200, 'a'),
		BAD("NUL in packet name", VICI_EVENT_REGISTER, 2, 'a', 0),
		BAD("register with a body", VICI_EVENT_REGISTER, 1, 'a', 3),
		BAD("confirm with a body", VICI_EVENT_CONFIRM, 2),
		BAD("cmd-unknown with a body", VICI_CMD_UNKNOWN, 0),
		BAD("event-unknown with a body", VICI_EVENT_UNKNOWN, 0),
	};
	struct vici_packet pkt = { .type = 99 };

	ck_assert_int_eq(vici_packet_parse("", 0, &pkt), -EBADMSG);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(vici_packet_parse(cases[i].bytes, cases[i].len, &pkt) == -EBADMSG,
			      "%s accepted", cases[i].what);
	ck_assert_int_eq(pkt.type, 99); /* never written on failure */

	ck_assert_int_eq(vici_packet_parse("\x05", 1, &pkt), 0);
	ck_assert_int_eq(pkt.type, VICI_EVENT_CONFIRM);
	ck_assert_uint_eq(pkt.body_len, 0);
	ck_assert_int_eq(vici_packet_parse("\x07\x01x", 3, &pkt), 0);
	ck_assert_int_eq(pkt.type, VICI_EVENT);
	ck_assert_ptr_null(pkt.body);
	ck_assert_str_eq(vici_packet_type_to_string(VICI_EVENT_UNKNOWN), "event-unknown");
	ck_assert_ptr_null(vici_packet_type_to_string(8));
}
END_TEST

/* Every cut of a valid message parses only where the cut falls between two
 * top-level elements; everywhere else it is -EBADMSG, never a crash. */
START_TEST(test_parse_every_truncation)
{
	struct vici_builder *b = NULL;
	struct vici_packet pkt;
	struct vici_msg *m;
	size_t ok = 0;

	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "a", "1");
	vici_builder_section_start(b, "s");
	vici_builder_kv_str(b, "b", "2");
	vici_builder_list_start(b, "l");
	vici_builder_list_item_str(b, "x");
	vici_builder_list_end(b);
	vici_builder_section_end(b);
	vici_builder_list_start(b, "top");
	vici_builder_list_item_str(b, "y");
	vici_builder_list_end(b);
	m = reparse(b, &pkt);
	vici_msg_free(m);
	for (size_t cut = 0; cut < pkt.body_len; cut++) {
		int r = parse_bytes(pkt.body, cut);

		ck_assert_msg(r == 0 || r == -EBADMSG, "cut %zu: %d", cut, r);
		ok += r == 0;
	}
	/* The empty prefix, after "a", after the section. */
	ck_assert_uint_eq(ok, 3);
	vici_builder_free(b);
}
END_TEST

/* ---- command builders --------------------------------------------------- */

static const char *const remote_addrs[] = { "198.51.100.10", "198.51.100.11", NULL };
static const char *const local_ts[] = { "10.1.0.0/24", NULL };
static const char *const remote_ts[] = { "192.0.2.0/24", "2001:db8:a::/48", NULL };
static const char *const esp[] = { "aes256gcm16-ecp256", NULL };
static const char *const ike_props[] = { "aes256-sha256-ecp256", NULL };
static const char *const cacerts[] = { "-----BEGIN CERTIFICATE-----\nCA1\n", "CA2", NULL };

static void fill_conf(struct vici_conn_conf *conf, struct vici_child_conf *child)
{
	*child = (struct vici_child_conf){
		.name = "partner-a",
		.local_ts = local_ts,
		.remote_ts = remote_ts,
		.esp_proposals = esp,
		.reqid = 4242,
	};
	*conf = (struct vici_conn_conf){
		.name = "mm-partner-a",
		.remote_addrs = remote_addrs,
		.remote_port = 4500,
		.proposals = ike_props,
		.local_id = "sbc.operator.example",
		.local_cert = "\x30\x82\x00\x01",
		.local_cert_len = 4,
		.remote_id = "ims.partner-a.example",
		.remote_cacerts = cacerts,
		.remote_revocation = "strict",
		.dpd_delay = 30,
		.children = child,
		.n_children = 1,
	};
}

START_TEST(test_load_conn_build)
{
	struct vici_conn_conf conf;
	struct vici_child_conf child;
	struct vici_builder *b = NULL;
	struct vici_packet pkt;
	struct vici_msg *m;
	const struct vici_node *conn, *ch, *n;
	const void *v;
	size_t len;

	fill_conf(&conf, &child);
	ck_assert_int_eq(vici_load_conn_build(&conf, &b), 0);
	m = reparse(b, &pkt);
	ck_assert_int_eq(pkt.type, VICI_CMD_REQUEST);
	ck_assert_mem_eq(pkt.name, "load-conn", pkt.name_len);

	/* One section at the root, named after the connection. */
	conn = vici_node_first(vici_msg_root(m));
	ck_assert_str_eq(vici_node_name(conn), "mm-partner-a");
	ck_assert_ptr_null(vici_node_next(conn));
	ck_assert_str_eq(vici_node_str(vici_node_child(conn, "version")), "2");
	ck_assert_ptr_null(vici_node_child(conn, "local_addrs")); /* not given: charon's %any */
	n = vici_node_child(conn, "remote_addrs");
	ck_assert_uint_eq(list_len(n), 2);
	ck_assert_str_eq(list_item(n, 1), "198.51.100.11");
	ck_assert_ptr_null(vici_node_child(conn, "local_port"));
	ck_assert_str_eq(vici_node_str(vici_node_child(conn, "remote_port")), "4500");
	ck_assert_str_eq(list_item(vici_node_child(conn, "proposals"), 0), "aes256-sha256-ecp256");
	ck_assert_str_eq(vici_node_str(vici_node_child(conn, "dpd_delay")), "30s");
	/* Partners' gateways are fixed: no MOBIKE (charon's default is yes). */
	ck_assert_str_eq(vici_node_str(vici_node_child(conn, "mobike")), "no");

	ck_assert_str_eq(vici_node_str(vici_node_find(conn, "local/auth")), "pubkey");
	ck_assert_str_eq(vici_node_str(vici_node_find(conn, "local/id")), "sbc.operator.example");
	n = vici_node_find(conn, "local/certs");
	ck_assert_uint_eq(list_len(n), 1);
	v = vici_node_value(vici_node_first(n), &len);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(v, "\x30\x82\x00\x01", 4);

	ck_assert_str_eq(vici_node_str(vici_node_find(conn, "remote/auth")), "pubkey");
	ck_assert_str_eq(vici_node_str(vici_node_find(conn, "remote/id")), "ims.partner-a.example");
	n = vici_node_find(conn, "remote/cacerts");
	ck_assert_uint_eq(list_len(n), 2);
	ck_assert_str_eq(list_item(n, 0), cacerts[0]);
	ck_assert_str_eq(list_item(n, 1), cacerts[1]);
	ck_assert_str_eq(vici_node_str(vici_node_find(conn, "remote/revocation")), "strict");
	ck_assert_ptr_null(vici_node_find(conn, "local/revocation"));

	ch = vici_node_find(conn, "children/partner-a");
	ck_assert_int_eq(vici_node_type(ch), VICI_NODE_SECTION);
	ck_assert_str_eq(list_item(vici_node_child(ch, "local_ts"), 0), "10.1.0.0/24");
	ck_assert_uint_eq(list_len(vici_node_child(ch, "remote_ts")), 2);
	ck_assert_str_eq(list_item(vici_node_child(ch, "remote_ts"), 1), "2001:db8:a::/48");
	ck_assert_str_eq(list_item(vici_node_child(ch, "esp_proposals"), 0), "aes256gcm16-ecp256");
	ck_assert_str_eq(vici_node_str(vici_node_child(ch, "mode")), "tunnel");
	ck_assert_str_eq(vici_node_str(vici_node_child(ch, "policies")), "no");
	ck_assert_str_eq(vici_node_str(vici_node_child(ch, "reqid")), "4242");
	ck_assert_str_eq(vici_node_str(vici_node_child(ch, "start_action")), "start");
	ck_assert_str_eq(vici_node_str(vici_node_child(ch, "close_action")), "start");
	ck_assert_str_eq(vici_node_str(vici_node_child(ch, "dpd_action")), "restart");
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_load_conn_refused)
{
	static const char *const none[] = { NULL };
	struct vici_conn_conf conf;
	struct vici_child_conf child;
	struct vici_builder *b = NULL;

	fill_conf(&conf, &child);
	child.reqid = 0;
	ck_assert_int_eq(vici_load_conn_build(&conf, &b), -EINVAL);
	fill_conf(&conf, &child);
	conf.remote_addrs = none;
	ck_assert_int_eq(vici_load_conn_build(&conf, &b), -EINVAL);
	fill_conf(&conf, &child);
	conf.remote_id = NULL;
	ck_assert_int_eq(vici_load_conn_build(&conf, &b), -EINVAL);
	fill_conf(&conf, &child);
	conf.n_children = 0;
	ck_assert_int_eq(vici_load_conn_build(&conf, &b), -EINVAL);
	fill_conf(&conf, &child);
	child.name = "";
	ck_assert_int_eq(vici_load_conn_build(&conf, &b), -EINVAL);
	fill_conf(&conf, &child);
	conf.local_cert_len = 70000; /* over a VICI value */
	conf.local_cert = calloc(1, 70000);
	ck_assert_int_eq(vici_load_conn_build(&conf, &b), -EMSGSIZE);
	free((void *)conf.local_cert);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(vici_load_conn_build(NULL, &b), -EINVAL);
}
END_TEST

START_TEST(test_small_builders)
{
	struct vici_builder *b = NULL;
	struct vici_packet pkt;
	struct vici_msg *m;
	size_t len;

	ck_assert_int_eq(vici_unload_conn_build("mm-partner-a", &b), 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "unload-conn", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "name"), "mm-partner-a");
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_unload_conn_build("", &b), -EINVAL);

	ck_assert_int_eq(vici_load_cert_build("PEM", 3, VICI_CERT_FLAG_CA, &b), 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "load-cert", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "type"), "X509");
	ck_assert_str_eq(vici_msg_get_str(m, "flag"), "CA");
	ck_assert_str_eq(vici_msg_get_str(m, "data"), "PEM");
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_load_cert_build("PEM", 0, VICI_CERT_FLAG_NONE, &b), -EINVAL);
	ck_assert_int_eq(vici_load_cert_build("PEM", 3, _VICI_CERT_FLAG_MAX, &b), -EINVAL);

	ck_assert_int_eq(vici_load_crl_build("CRL", 3, &b), 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "load-cert", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "type"), "X509_CRL");
	ck_assert_ptr_null(vici_msg_get_str(m, "flag"));
	ck_assert_str_eq(vici_msg_get_str(m, "data"), "CRL");
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_load_crl_build("CRL", 0, &b), -EINVAL);
	ck_assert_int_eq(vici_load_crl_build("CRL", VICI_CRL_MAX + 1, &b), -EINVAL);

	ck_assert_int_eq(vici_rekey_build(&(struct vici_rekey_args){ .ike_id = 9, .reauth = true },
					  &b),
			 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "rekey", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "ike-id"), "9");
	ck_assert_str_eq(vici_msg_get_str(m, "reauth"), "yes");
	ck_assert_ptr_null(vici_msg_get_str(m, "ike"));
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_rekey_build(&(struct vici_rekey_args){ .ike = "a.example" }, &b), 0);
	m = reparse(b, NULL);
	ck_assert_str_eq(vici_msg_get_str(m, "ike"), "a.example");
	ck_assert_ptr_null(vici_msg_get_str(m, "reauth"));
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_rekey_build(&(struct vici_rekey_args){ 0 }, &b), -EINVAL);
	ck_assert_int_eq(vici_flush_certs_build("X509_CRL", &b), 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "flush-certs", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "type"), "X509_CRL");
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_flush_certs_build(NULL, &b), 0);
	m = reparse(b, NULL);
	ck_assert_ptr_null(vici_msg_get_str(m, "type"));
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_flush_certs_build("", &b), -EINVAL);
	ck_assert_int_eq(vici_rekey_build(&(struct vici_rekey_args){ .ike = "a", .ike_id = 1 }, &b),
			 -EINVAL);

	ck_assert_int_eq(vici_load_key_build("\x30\x00", 2, VICI_KEY_ECDSA, &b), 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "load-key", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "type"), "ecdsa");
	ck_assert_ptr_nonnull(vici_node_value(vici_node_child(vici_msg_root(m), "data"), &len));
	ck_assert_uint_eq(len, 2);
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_load_key_build("k", 1, VICI_KEY_ANY, &b), 0);
	m = reparse(b, NULL);
	ck_assert_str_eq(vici_msg_get_str(m, "type"), "any");
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;

	ck_assert_int_eq(vici_initiate_build(&(struct vici_initiate_args){ .child = "partner-a",
									  .ike = "mm-partner-a",
									  .timeout_ms = -1 },
					     &b),
			 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "initiate", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "child"), "partner-a");
	ck_assert_str_eq(vici_msg_get_str(m, "ike"), "mm-partner-a");
	ck_assert_str_eq(vici_msg_get_str(m, "timeout"), "-1");
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_initiate_build(&(struct vici_initiate_args){ .ike = "x" }, &b), -EINVAL);

	ck_assert_int_eq(vici_terminate_build(&(struct vici_terminate_args){ .ike_id = 7,
									    .timeout_ms = 500 },
					      &b),
			 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "terminate", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "ike-id"), "7");
	ck_assert_str_eq(vici_msg_get_str(m, "timeout"), "500");
	ck_assert_ptr_null(vici_msg_get_str(m, "child"));
	ck_assert_ptr_null(vici_msg_get_str(m, "force"));
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_terminate_build(&(struct vici_terminate_args){ .ike_id = 7,
									    .force = true,
									    .timeout_ms = -1 },
					      &b),
			 0);
	m = reparse(b, NULL);
	ck_assert_str_eq(vici_msg_get_str(m, "force"), "yes");
	ck_assert_str_eq(vici_msg_get_str(m, "timeout"), "-1");
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	ck_assert_int_eq(vici_terminate_build(&(struct vici_terminate_args){ 0 }, &b), -EINVAL);
	ck_assert_int_eq(vici_terminate_build(&(struct vici_terminate_args){ .child = "a", .ike = "b" },
					      &b),
			 -EINVAL);

	ck_assert_int_eq(vici_list_sas_build("mm-partner-a", &b), 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "list-sas", pkt.name_len);
	ck_assert_str_eq(vici_msg_get_str(m, "ike"), "mm-partner-a");
	ck_assert_ptr_null(vici_msg_get_str(m, "noblock"));
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;

	ck_assert_int_eq(vici_get_conns_build(&b), 0);
	m = reparse(b, &pkt);
	ck_assert_mem_eq(pkt.name, "get-conns", pkt.name_len);
	ck_assert_ptr_null(vici_node_first(vici_msg_root(m)));
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_get_conns_decode)
{
	struct vici_builder *b = NULL;
	struct vici_msg *m;
	char **v = NULL;

	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_list_start(b, "conns");
	vici_builder_list_item_str(b, "mm-a");
	vici_builder_list_item_str(b, "mm-b");
	vici_builder_list_end(b);
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_get_conns_decode(m, &v), 0);
	ck_assert_uint_eq(strv_len(v), 2);
	ck_assert_str_eq(v[1], "mm-b");
	vici_strv_free(v);
	vici_msg_free(m);
	vici_builder_free(b);

	b = NULL;
	v = NULL;
	vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
	vici_builder_kv_str(b, "conns", "not-a-list");
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_get_conns_decode(m, &v), -EBADMSG);
	ck_assert_ptr_null(v);
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

/* ---- SA decoders ---------------------------------------------------------- */

/* A CHILD_SA section as charon 5.9 writes it in list-sa and the events. */
static void add_child_sa(struct vici_builder *b, const char *section, const char *name,
			 unsigned uniqueid, const char *spi_in, const char *spi_out)
{
	vici_builder_section_start(b, section);
	vici_builder_kv_str(b, "name", name);
	vici_builder_kv_fmt(b, "uniqueid", "%u", uniqueid);
	vici_builder_kv_str(b, "reqid", "4242");
	vici_builder_kv_str(b, "state", "INSTALLED");
	vici_builder_kv_str(b, "mode", "TUNNEL");
	vici_builder_kv_str(b, "protocol", "ESP");
	vici_builder_kv_str(b, "encap", "yes");
	vici_builder_kv_str(b, "spi-in", spi_in);
	vici_builder_kv_str(b, "spi-out", spi_out);
	vici_builder_kv_str(b, "encr-alg", "AES_GCM_16");
	vici_builder_kv_str(b, "bytes-in", "0");
	vici_builder_kv_str(b, "install-time", "17");
	vici_builder_list_strv(b, "local-ts", local_ts);
	vici_builder_list_strv(b, "remote-ts", remote_ts);
	vici_builder_section_end(b);
}

/* The IKE_SA keys (without the children section and the closing end). */
static void add_ike_keys(struct vici_builder *b)
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
	vici_builder_kv_str(b, "initiator", "yes");
	vici_builder_kv_str(b, "established", "120");
	vici_builder_list_start(b, "tasks-queued");
	vici_builder_list_end(b);
}

static void check_ike(const struct vici_ike_sa *sa)
{
	ck_assert_str_eq(sa->name, "mm-partner-a");
	ck_assert_uint_eq(sa->uniqueid, 3);
	ck_assert_str_eq(sa->state, "ESTABLISHED");
	ck_assert_str_eq(sa->local_host, "203.0.113.5");
	ck_assert_uint_eq(sa->local_port, 4500);
	ck_assert_str_eq(sa->local_id, "sbc.operator.example");
	ck_assert_str_eq(sa->remote_host, "198.51.100.10");
	ck_assert_uint_eq(sa->remote_port, 4500);
	ck_assert_str_eq(sa->remote_id, "ims.partner-a.example");
	ck_assert(sa->established_known);
	ck_assert_uint_eq(sa->established, 120);
}

static void check_child(const struct vici_child_sa *c, unsigned uniqueid, uint32_t spi_in,
			uint32_t spi_out)
{
	ck_assert_str_eq(c->name, "partner-a");
	ck_assert_uint_eq(c->uniqueid, uniqueid);
	ck_assert_uint_eq(c->reqid, 4242);
	ck_assert_str_eq(c->state, "INSTALLED");
	ck_assert_str_eq(c->mode, "TUNNEL");
	ck_assert_str_eq(c->protocol, "ESP");
	ck_assert(c->encap);
	ck_assert_uint_eq(c->spi_in, spi_in);
	ck_assert_uint_eq(c->spi_out, spi_out);
	ck_assert_uint_eq(c->install_time, 17);
	ck_assert_uint_eq(strv_len(c->local_ts), 1);
	ck_assert_str_eq(c->local_ts[0], "10.1.0.0/24");
	ck_assert_uint_eq(strv_len(c->remote_ts), 2);
	ck_assert_str_eq(c->remote_ts[1], "2001:db8:a::/48");
}

static struct vici_msg *list_sa_event(void)
{
	struct vici_builder *b = NULL;
	struct vici_msg *m;

	vici_builder_new(VICI_EVENT, "list-sa", &b);
	vici_builder_section_start(b, "mm-partner-a");
	add_ike_keys(b);
	vici_builder_section_start(b, "child-sas");
	add_child_sa(b, "partner-a-5", "partner-a", 5, "c0ffee01", "0000beef");
	add_child_sa(b, "partner-a-6", "partner-a", 6, "FFFFFFFF", "1");
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	vici_builder_free(b);
	return m;
}

START_TEST(test_list_sa_decode)
{
	struct vici_msg *m = list_sa_event();
	struct vici_ike_sa *sa = NULL;

	ck_assert_int_eq(vici_list_sa_decode(m, &sa), 0);
	check_ike(sa);
	ck_assert_uint_eq(sa->n_children, 2);
	check_child(&sa->children[0], 5, 0xc0ffee01, 0xbeef);
	check_child(&sa->children[1], 6, 0xffffffff, 1);
	vici_ike_sa_free(sa);
	vici_ike_sa_free(NULL);
	vici_msg_free(m);
}
END_TEST

/* An SA section with one key replaced by `key` = `value` (or `key` as a list
 * when value is NULL): a field that is present but does not parse fails. */
static int decode_with(const char *key, const char *value)
{
	struct vici_builder *b = NULL;
	struct vici_ike_sa *sa = NULL;
	struct vici_msg *m;
	int r;

	vici_builder_new(VICI_EVENT, "list-sa", &b);
	vici_builder_section_start(b, "mm-partner-a");
	vici_builder_section_start(b, "child-sas");
	vici_builder_section_start(b, "partner-a-5");
	if (value)
		vici_builder_kv_str(b, key, value);
	else
		vici_builder_list_strv(b, key, local_ts);
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	r = vici_list_sa_decode(m, &sa);
	if (r == 0) {
		ck_assert_uint_eq(sa->n_children, 1);
		/* No "name" key: the section names the child. */
		ck_assert_str_eq(sa->children[0].name, "partner-a-5");
		ck_assert_ptr_nonnull(sa->children[0].local_ts);
	} else {
		ck_assert_ptr_null(sa);
	}
	vici_ike_sa_free(sa);
	vici_msg_free(m);
	vici_builder_free(b);
	return r;
}

START_TEST(test_sa_decode_malformed)
{
	ck_assert_int_eq(decode_with("reqid", "4242"), 0);
	ck_assert_int_eq(decode_with("reqid", "x"), -EBADMSG);
	ck_assert_int_eq(decode_with("reqid", "4294967296"), -EBADMSG);
	ck_assert_int_eq(decode_with("spi-in", "zz"), -EBADMSG);
	ck_assert_int_eq(decode_with("spi-in", "123456789"), -EBADMSG);
	ck_assert_int_eq(decode_with("spi-in", ""), -EBADMSG);
	ck_assert_int_eq(decode_with("encap", "maybe"), -EBADMSG);
	ck_assert_int_eq(decode_with("local-ts", "10.0.0.0/8"), -EBADMSG); /* not a list */
	ck_assert_int_eq(decode_with("state", NULL), -EBADMSG);            /* not a key */
	ck_assert_int_eq(decode_with("unknown-key", NULL), 0);            /* skipped */
	ck_assert_int_eq(decode_with("unknown-key", "x"), 0);

	/* No SA section, or two of them. */
	struct vici_builder *b = NULL;
	struct vici_ike_sa *sa = NULL;
	struct vici_msg *m;

	vici_builder_new(VICI_EVENT, "list-sa", &b);
	vici_builder_kv_str(b, "up", "yes");
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_list_sa_decode(m, &sa), -EBADMSG);
	vici_msg_free(m);
	vici_builder_free(b);
	b = NULL;
	vici_builder_new(VICI_EVENT, "list-sa", &b);
	vici_builder_section_start(b, "a");
	vici_builder_section_end(b);
	vici_builder_section_start(b, "b");
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_list_sa_decode(m, &sa), -EBADMSG);
	vici_msg_free(m);
	vici_builder_free(b);
	ck_assert_ptr_null(sa);
}
END_TEST

static struct vici_msg *updown_event(const char *event, bool up, bool with_child)
{
	struct vici_builder *b = NULL;
	struct vici_msg *m;

	vici_builder_new(VICI_EVENT, event, &b);
	if (up)
		vici_builder_kv_str(b, "up", "yes");
	vici_builder_section_start(b, "mm-partner-a");
	add_ike_keys(b);
	if (with_child) {
		vici_builder_section_start(b, "child-sas");
		add_child_sa(b, "partner-a-5", "partner-a", 5, "c0ffee01", "0000beef");
		vici_builder_section_end(b);
	}
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	vici_builder_free(b);
	return m;
}

START_TEST(test_child_updown_decode)
{
	struct vici_child_updown *e = NULL;
	struct vici_msg *m;

	m = updown_event(VICI_EVT_CHILD_UPDOWN, true, true);
	ck_assert_int_eq(vici_child_updown_decode(m, &e), 0);
	ck_assert(e->up);
	check_ike(&e->ike);
	ck_assert_uint_eq(e->ike.n_children, 1);
	check_child(&e->ike.children[0], 5, 0xc0ffee01, 0xbeef);
	vici_child_updown_free(e);
	vici_msg_free(m);

	e = NULL;
	m = updown_event(VICI_EVT_CHILD_UPDOWN, false, true);
	ck_assert_int_eq(vici_child_updown_decode(m, &e), 0);
	ck_assert(!e->up); /* charon leaves "up" out on down */
	vici_child_updown_free(e);
	vici_msg_free(m);
	vici_child_updown_free(NULL);
}
END_TEST

START_TEST(test_ike_updown_decode)
{
	struct vici_ike_updown *e = NULL;
	/* charon sends ike-updown with the IKE_SA's child-sas section too:
	 * the decoder must leave them out (children are child-updown's). */
	struct vici_msg *m = updown_event(VICI_EVT_IKE_UPDOWN, true, true);

	ck_assert_int_eq(vici_ike_updown_decode(m, &e), 0);
	ck_assert(e->up);
	check_ike(&e->ike);
	ck_assert_uint_eq(e->ike.n_children, 0);
	vici_ike_updown_free(e);
	vici_ike_updown_free(NULL);
	vici_msg_free(m);
}
END_TEST

START_TEST(test_child_rekey_decode)
{
	struct vici_builder *b = NULL;
	struct vici_child_rekey *e = NULL;
	struct vici_msg *m;

	vici_builder_new(VICI_EVENT, VICI_EVT_CHILD_REKEY, &b);
	vici_builder_section_start(b, "mm-partner-a");
	add_ike_keys(b);
	vici_builder_section_start(b, "child-sas");
	vici_builder_section_start(b, "partner-a-5");
	add_child_sa(b, "old", "partner-a", 5, "c0ffee01", "0000beef");
	add_child_sa(b, "new", "partner-a", 6, "c0ffee02", "0000bef0");
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_child_rekey_decode(m, &e), 0);
	check_ike(&e->ike);
	check_child(&e->old_sa, 5, 0xc0ffee01, 0xbeef);
	check_child(&e->new_sa, 6, 0xc0ffee02, 0xbef0);
	vici_child_rekey_free(e);
	vici_child_rekey_free(NULL);
	vici_msg_free(m);
	vici_builder_free(b);

	/* Without "new". */
	b = NULL;
	e = NULL;
	vici_builder_new(VICI_EVENT, VICI_EVT_CHILD_REKEY, &b);
	vici_builder_section_start(b, "mm-partner-a");
	vici_builder_section_start(b, "child-sas");
	vici_builder_section_start(b, "partner-a-5");
	add_child_sa(b, "old", "partner-a", 5, "1", "2");
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_child_rekey_decode(m, &e), -EBADMSG);
	ck_assert_ptr_null(e);
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

START_TEST(test_ike_rekey_decode)
{
	struct vici_builder *b = NULL;
	struct vici_ike_rekey *e = NULL;
	struct vici_msg *m;

	vici_builder_new(VICI_EVENT, VICI_EVT_IKE_REKEY, &b);
	vici_builder_section_start(b, "mm-partner-a");
	vici_builder_section_start(b, "old");
	add_ike_keys(b);
	vici_builder_section_end(b);
	vici_builder_section_start(b, "new");
	add_ike_keys(b);
	vici_builder_kv_str(b, "uniqueid", "4"); /* a repeated key: the last wins */
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	m = reparse(b, NULL);
	ck_assert_int_eq(vici_ike_rekey_decode(m, &e), 0);
	check_ike(&e->old_sa);
	ck_assert_str_eq(e->new_sa.name, "mm-partner-a");
	ck_assert_uint_eq(e->new_sa.uniqueid, 4);
	vici_ike_rekey_free(e);
	vici_ike_rekey_free(NULL);
	vici_msg_free(m);
	vici_builder_free(b);
}
END_TEST

/* ---- client against a fake charon ----------------------------------------- */

/* A fake charon: a listening unix socket served from the same sd-event loop,
 * answering what the test scripts and logging what it received. */
struct fake {
	sd_event *e;
	char dir[64];
	char path[108];
	int lfd, cfd;
	sd_event_source *lsrc, *csrc;
	uint8_t rx[1 << 20];
	size_t rx_len;
	char log[2048];
	unsigned accepted;
	bool unknown_events; /* answer registrations with EVENT_UNKNOWN */
};

static void fake_log(struct fake *f, const char *what, const char *name, size_t nlen)
{
	size_t l = strlen(f->log);

	snprintf(f->log + l, sizeof(f->log) - l, "%s%s:%.*s", l ? " " : "", what, (int)nlen, name);
}

static void fake_write(struct fake *f, const void *p, size_t n)
{
	ck_assert_int_eq(write(f->cfd, p, n), (ssize_t)n);
}

static void fake_send(struct fake *f, struct vici_builder *b)
{
	const uint8_t *frame;
	size_t len;

	ck_assert_int_eq(vici_builder_finish(b, &frame, &len), 0);
	fake_write(f, frame, len);
	vici_builder_free(b);
}

static void fake_send_type(struct fake *f, enum vici_packet_type t)
{
	struct vici_builder *b = NULL;

	ck_assert_int_eq(vici_builder_new(t, NULL, &b), 0);
	fake_send(f, b);
}

static void fake_close_conn(struct fake *f)
{
	f->csrc = sd_event_source_disable_unref(f->csrc);
	if (f->cfd >= 0)
		close(f->cfd);
	f->cfd = -1;
}

static void fake_send_list_sa(struct fake *f)
{
	struct vici_builder *b = NULL;

	vici_builder_new(VICI_EVENT, "list-sa", &b);
	vici_builder_section_start(b, "mm-partner-a");
	add_ike_keys(b);
	vici_builder_section_start(b, "child-sas");
	add_child_sa(b, "partner-a-5", "partner-a", 5, "c0ffee01", "0000beef");
	vici_builder_section_end(b);
	vici_builder_section_end(b);
	fake_send(f, b);
}

static void fake_handle(struct fake *f, const struct vici_packet *pkt)
{
	struct vici_builder *b = NULL;

	switch (pkt->type) {
	case VICI_EVENT_REGISTER:
	case VICI_EVENT_UNREGISTER:
		fake_log(f, pkt->type == VICI_EVENT_REGISTER ? "reg" : "unreg", pkt->name,
			 pkt->name_len);
		fake_send_type(f, f->unknown_events ? VICI_EVENT_UNKNOWN : VICI_EVENT_CONFIRM);
		return;
	case VICI_CMD_REQUEST:
		fake_log(f, "req", pkt->name, pkt->name_len);
		break;
	default:
		ck_abort_msg("fake charon got packet type %d", pkt->type);
	}
#define IS(s) (pkt->name_len == strlen(s) && memcmp(pkt->name, s, pkt->name_len) == 0)
	if (IS("version") || IS("one") || IS("two")) {
		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		vici_builder_kv_str(b, "daemon", "fake");
		vici_builder_kv(b, "cmd", pkt->name, pkt->name_len);
		fake_send(f, b);
	} else if (IS("list-sas")) {
		fake_send_list_sa(f);
		/* An event nobody asked for in between must not disturb. */
		vici_builder_new(VICI_EVENT, "ike-updown", &b);
		fake_send(f, b);
		fake_send_list_sa(f);
		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		fake_send(f, b);
	} else if (IS("bad-list-sas")) {
		/* A list-sa event whose body does not parse. */
		fake_write(f, "\x00\x00\x00\x0b\x07\x07list-sa\x02", 15);
		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		fake_send(f, b);
	} else if (IS("load-conn") || IS("unload-conn")) {
		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		vici_builder_kv_str(b, "success", IS("load-conn") ? "yes" : "no");
		if (IS("unload-conn"))
			vici_builder_kv_str(b, "errmsg", "connection not found");
		fake_send(f, b);
	} else if (IS("slow")) {
		/* Byte by byte, to exercise reassembly. */
		const uint8_t *frame;
		size_t len;

		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		vici_builder_kv_str(b, "daemon", "slow");
		vici_builder_finish(b, &frame, &len);
		for (size_t i = 0; i < len; i++) {
			fake_write(f, frame + i, 1);
			usleep(100);
		}
		vici_builder_free(b);
	} else if (IS("oversize")) {
		fake_write(f, "\x00\x08\x00\x01", 4);
	} else if (IS("unsolicited")) {
		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		fake_send(f, b);
		vici_builder_new(VICI_CMD_RESPONSE, NULL, &b);
		fake_send(f, b);
	} else if (IS("bye")) {
		fake_close_conn(f);
	} else if (IS("hang")) {
		/* no answer */
	} else {
		fake_send_type(f, VICI_CMD_UNKNOWN);
	}
#undef IS
}

static int fake_on_conn(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct fake *f = userdata;
	ssize_t n;

	(void)s;
	(void)revents;
	n = read(fd, f->rx + f->rx_len, sizeof(f->rx) - f->rx_len);
	if (n <= 0) {
		fake_close_conn(f);
		return 0;
	}
	f->rx_len += (size_t)n;
	while (f->rx_len >= 4 && f->cfd >= 0) {
		struct vici_packet pkt;
		size_t len;

		ck_assert_int_eq(vici_frame_len(f->rx, &len), 0);
		if (f->rx_len < 4 + len)
			break;
		ck_assert_int_eq(vici_packet_parse(f->rx + 4, len, &pkt), 0);
		fake_handle(f, &pkt);
		memmove(f->rx, f->rx + 4 + len, f->rx_len - 4 - len);
		f->rx_len -= 4 + len;
	}
	return 0;
}

static int fake_on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct fake *f = userdata;
	int c;

	(void)s;
	(void)revents;
	c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(c, 0);
	fake_close_conn(f); /* one client at a time */
	f->cfd = c;
	f->rx_len = 0;
	f->accepted++;
	ck_assert_int_ge(sd_event_add_io(f->e, &f->csrc, c, EPOLLIN, fake_on_conn, f), 0);
	return 0;
}

static void fake_listen(struct fake *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	strcpy(sa.sun_path, f->path);
	unlink(f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 4), 0);
	ck_assert_int_ge(sd_event_add_io(f->e, &f->lsrc, f->lfd, EPOLLIN, fake_on_listen, f), 0);
}

static void fake_stop_listening(struct fake *f)
{
	f->lsrc = sd_event_source_disable_unref(f->lsrc);
	if (f->lfd >= 0)
		close(f->lfd);
	f->lfd = -1;
	unlink(f->path);
}

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	f->lfd = f->cfd = -1;
	ck_assert_int_ge(sd_event_new(&f->e), 0);
	strcpy(f->dir, "/tmp/test_vici.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/charon.vici", f->dir);
	fake_listen(f);
	return f;
}

static void fake_free(struct fake *f)
{
	fake_close_conn(f);
	fake_stop_listening(f);
	rmdir(f->dir);
	sd_event_unref(f->e);
	free(f);
}

/* The state a client test watches. */
struct watch {
	unsigned connected, disconnected, replies, events, registered;
	int last_disconnect, last_reply, last_registered, last_event_error;
	char last_daemon[32];
	char last_event[32];
	size_t n_sas;
	bool free_in_reply;
	struct vici_client *client;
};

static void on_connected(struct vici_client *c, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->connected++;
}

static void on_disconnected(struct vici_client *c, int error, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->disconnected++;
	w->last_disconnect = error;
}

static void on_reply(struct vici_client *c, int error, const struct vici_msg *reply, void *userdata)
{
	struct watch *w = userdata;
	const char *d = vici_msg_get_str(reply, "daemon");

	w->replies++;
	w->last_reply = error;
	if (error == 0)
		ck_assert_ptr_nonnull(reply);
	else
		ck_assert_ptr_null(reply);
	snprintf(w->last_daemon, sizeof(w->last_daemon), "%s", d ? d : "");
	if (w->free_in_reply) {
		vici_client_free(c);
		w->client = NULL;
	}
}

static void on_event(struct vici_client *c, int error, const char *event, const struct vici_msg *msg,
		     void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	(void)msg;
	w->events++;
	w->last_event_error = error;
	snprintf(w->last_event, sizeof(w->last_event), "%s", event);
}

static void on_registered(struct vici_client *c, int error, void *userdata)
{
	struct watch *w = userdata;

	(void)c;
	w->registered++;
	w->last_registered = error;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Runs the loop until *counter reaches `target` or `ms` pass. */
static bool run_until(sd_event *e, const unsigned *counter, unsigned target, unsigned ms)
{
	uint64_t end = now_usec() + (uint64_t)ms * 1000;

	while (*counter < target && now_usec() < end)
		ck_assert_int_ge(sd_event_run(e, 10 * 1000), 0);
	return *counter >= target;
}

static void run_for(sd_event *e, unsigned ms)
{
	uint64_t end = now_usec() + (uint64_t)ms * 1000;

	while (now_usec() < end)
		ck_assert_int_ge(sd_event_run(e, 10 * 1000), 0);
}

static struct vici_client *client_for(struct fake *f, struct watch *w)
{
	static const struct vici_client_callbacks cbs = {
		.connected = on_connected,
		.disconnected = on_disconnected,
	};
	struct vici_client *c = NULL;

	ck_assert_int_eq(vici_client_new(f->e, f->path, &cbs, w, &c), 0);
	ck_assert_int_eq(vici_client_set_backoff(c, 10 * 1000, 200 * 1000), 0);
	w->client = c;
	return c;
}

START_TEST(test_client_commands_in_order)
{
	struct fake *f = fake_new();
	struct watch w = { 0 };
	struct vici_client *c = client_for(f, &w);

	ck_assert_int_eq(vici_client_call_simple(c, "version", on_reply, &w), -ENOTCONN);
	ck_assert_int_eq(vici_client_start(c), 0);
	ck_assert_int_eq(vici_client_start(c), -EALREADY);
	ck_assert(run_until(f->e, &w.connected, 1, 2000));
	ck_assert(vici_client_is_connected(c));
	ck_assert_int_eq(vici_client_call_simple(c, "one", on_reply, &w), 0);
	ck_assert_int_eq(vici_client_call_simple(c, "two", on_reply, &w), 0);
	ck_assert_int_eq(vici_client_call_simple(c, "slow", on_reply, &w), 0);
	ck_assert_int_eq(vici_client_call_simple(c, "nope", on_reply, &w), 0);
	ck_assert(run_until(f->e, &w.replies, 4, 5000));
	/* One request at a time, in order, each answered before the next. */
	ck_assert_str_eq(f->log, "req:one req:two req:slow req:nope");
	ck_assert_int_eq(w.last_reply, -EOPNOTSUPP); /* CMD_UNKNOWN */
	ck_assert_uint_eq(w.disconnected, 0);
	vici_client_free(c);
	fake_free(f);
}
END_TEST

struct sas_result {
	unsigned done;
	int error;
	size_t n;
	uint32_t spi_in;
};

static void on_sas(struct vici_client *c, int error, struct vici_ike_sa *const *sas, size_t n,
		   void *userdata)
{
	struct sas_result *res = userdata;

	(void)c;
	res->done++;
	res->error = error;
	res->n = n;
	if (n > 0)
		res->spi_in = sas[0]->children[0].spi_in;
}

struct done_result {
	unsigned done;
	int error;
	char errmsg[64];
};

static void on_done(struct vici_client *c, int error, const char *errmsg, void *userdata)
{
	struct done_result *res = userdata;

	(void)c;
	res->done++;
	res->error = error;
	snprintf(res->errmsg, sizeof(res->errmsg), "%s", errmsg ? errmsg : "");
}

START_TEST(test_client_streamed_and_wrappers)
{
	struct fake *f = fake_new();
	struct watch w = { 0 };
	struct vici_client *c = client_for(f, &w);
	struct sas_result sas = { 0 };
	struct done_result ok = { 0 }, refused = { 0 };
	struct vici_conn_conf conf;
	struct vici_child_conf child;

	vici_client_start(c);
	ck_assert(run_until(f->e, &w.connected, 1, 2000));
	ck_assert_int_eq(vici_list_sas(c, NULL, on_sas, &sas), 0);
	fill_conf(&conf, &child);
	ck_assert_int_eq(vici_load_conn(c, &conf, on_done, &ok), 0);
	ck_assert_int_eq(vici_unload_conn(c, "mm-x", on_done, &refused), 0);
	ck_assert(run_until(f->e, &refused.done, 1, 2000));
	ck_assert_uint_eq(sas.done, 1);
	ck_assert_int_eq(sas.error, 0);
	ck_assert_uint_eq(sas.n, 2);
	ck_assert_uint_eq(sas.spi_in, 0xc0ffee01);
	ck_assert_int_eq(ok.error, 0);
	ck_assert_int_eq(refused.error, -EREMOTEIO);
	ck_assert_str_eq(refused.errmsg, "connection not found");
	/* The stream's registration wraps the command. */
	ck_assert_str_eq(f->log, "reg:list-sa req:list-sas unreg:list-sa req:load-conn "
				 "req:unload-conn");

	/* A malformed list-sa event fails the whole listing. */
	struct vici_builder *b = NULL;
	vici_builder_new(VICI_CMD_REQUEST, "bad-list-sas", &b);
	ck_assert_int_eq(vici_client_call(c, b, "list-sa", on_event, on_reply, &w), 0);
	vici_builder_free(b);
	ck_assert(run_until(f->e, &w.replies, 1, 2000));
	ck_assert_int_eq(w.last_event_error, -EBADMSG);
	ck_assert_str_eq(w.last_event, "list-sa");
	ck_assert_uint_eq(w.disconnected, 0); /* a bad message is not a broken stream */

	/* Streaming needs an event callback; requests must be requests. */
	b = NULL;
	vici_builder_new(VICI_CMD_REQUEST, "x", &b);
	ck_assert_int_eq(vici_client_call(c, b, "list-sa", NULL, on_reply, &w), -EINVAL);
	vici_builder_free(b);
	b = NULL;
	vici_builder_new(VICI_EVENT_REGISTER, "x", &b);
	ck_assert_int_eq(vici_client_call(c, b, NULL, NULL, on_reply, &w), -EINVAL);
	vici_builder_free(b);
	vici_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_client_subscriptions)
{
	struct fake *f = fake_new();
	struct watch w = { 0 };
	struct vici_client *c = client_for(f, &w);
	struct vici_builder *b = NULL;

	/* Subscribed before the first connection: registered on connect. */
	ck_assert_int_eq(vici_client_subscribe(c, "child-updown", on_event, on_registered, &w), 0);
	ck_assert_int_eq(vici_client_subscribe(c, "child-updown", on_event, NULL, &w), -EEXIST);
	vici_client_start(c);
	ck_assert(run_until(f->e, &w.registered, 1, 2000));
	ck_assert_int_eq(w.last_registered, 0);
	ck_assert_uint_eq(w.connected, 1);

	vici_builder_new(VICI_EVENT, "child-updown", &b);
	vici_builder_kv_str(b, "up", "yes");
	fake_send(f, b);
	b = NULL;
	vici_builder_new(VICI_EVENT, "ike-updown", &b); /* not subscribed: dropped */
	fake_send(f, b);
	ck_assert(run_until(f->e, &w.events, 1, 2000));
	run_for(f->e, 50);
	ck_assert_uint_eq(w.events, 1);
	ck_assert_str_eq(w.last_event, "child-updown");
	ck_assert_int_eq(w.last_event_error, 0);

	/* A streamed command on a subscribed event neither registers nor
	 * unregisters it again. */
	b = NULL;
	vici_builder_new(VICI_CMD_REQUEST, "one", &b);
	ck_assert_int_eq(vici_client_call(c, b, "child-updown", on_event, on_reply, &w), 0);
	vici_builder_free(b);
	ck_assert(run_until(f->e, &w.replies, 1, 2000));
	ck_assert_str_eq(f->log, "reg:child-updown req:one");

	/* Subscribing while connected registers at once; charon may refuse. */
	f->unknown_events = true;
	ck_assert_int_eq(vici_client_subscribe(c, "no-such-event", on_event, on_registered, &w), 0);
	ck_assert(run_until(f->e, &w.registered, 2, 2000));
	ck_assert_int_eq(w.last_registered, -ENOENT);
	f->unknown_events = false;

	ck_assert_int_eq(vici_client_unsubscribe(c, "no-such-event"), 0);
	ck_assert_int_eq(vici_client_unsubscribe(c, "no-such-event"), -ENOENT);
	run_for(f->e, 50);
	ck_assert_str_eq(f->log, "reg:child-updown req:one reg:no-such-event unreg:no-such-event");
	vici_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_client_reconnects)
{
	struct fake *f = fake_new();
	struct watch w = { 0 };
	struct vici_client *c = client_for(f, &w);
	uint64_t t0;

	vici_client_subscribe(c, "child-updown", on_event, on_registered, &w);
	vici_client_start(c);
	ck_assert(run_until(f->e, &w.registered, 1, 2000));

	/* charon goes away with a command in flight and one queued. */
	ck_assert_int_eq(vici_client_call_simple(c, "bye", on_reply, &w), 0);
	ck_assert_int_eq(vici_client_call_simple(c, "one", on_reply, &w), 0);
	fake_stop_listening(f);
	ck_assert(run_until(f->e, &w.disconnected, 1, 2000));
	ck_assert_int_eq(w.last_disconnect, -ECONNRESET);
	ck_assert_uint_eq(w.replies, 2);
	ck_assert_int_eq(w.last_reply, -ECONNRESET);
	ck_assert(!vici_client_is_connected(c));
	ck_assert_int_eq(vici_client_call_simple(c, "one", on_reply, &w), -ENOTCONN);

	/* Attempts fail while nobody listens; the back-off is capped at
	 * 200 ms here, so once charon is back the client is too, soon. */
	run_for(f->e, 600);
	ck_assert_int_lt(vici_client_last_error(c), 0);
	fake_listen(f);
	t0 = now_usec();
	ck_assert(run_until(f->e, &w.connected, 2, 2000));
	/* Cap 200 ms; the margin is for slow (valgrind, CI) runs. */
	ck_assert_uint_lt(now_usec() - t0, 200 * 1000 + 500 * 1000);
	ck_assert_uint_eq(vici_client_connect_count(c), 2);
	/* The subscription is registered again on the new connection. */
	ck_assert(run_until(f->e, &w.registered, 2, 2000));
	ck_assert_int_eq(w.last_registered, 0);
	vici_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_client_protocol_errors)
{
	static const struct {
		const char *cmd;
		int error;
	} t[] = {
		{ "oversize", -EMSGSIZE },   /* a frame over 512 KiB */
		{ "unsolicited", -EPROTO },  /* a response nobody asked for */
		{ "hang", -ETIMEDOUT },      /* no answer within the timeout */
	};
	struct fake *f = fake_new();
	struct watch w = { 0 };
	struct vici_client *c = client_for(f, &w);

	vici_client_set_timeout(c, 200 * 1000);
	vici_client_start(c);
	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert(run_until(f->e, &w.connected, i + 1, 2000));
		ck_assert_int_eq(vici_client_call_simple(c, t[i].cmd, on_reply, &w), 0);
		ck_assert(run_until(f->e, &w.disconnected, i + 1, 2000));
		ck_assert_msg(w.last_disconnect == t[i].error, "%s: %d", t[i].cmd, w.last_disconnect);
	}
	/* And it still comes back. */
	ck_assert(run_until(f->e, &w.connected, 4, 2000));
	vici_client_free(c);
	fake_free(f);
}
END_TEST

START_TEST(test_client_free_in_callback)
{
	struct fake *f = fake_new();
	struct watch w = { .free_in_reply = true };
	struct vici_client *c = client_for(f, &w);

	vici_client_start(c);
	ck_assert(run_until(f->e, &w.connected, 1, 2000));
	ck_assert_int_eq(vici_client_call_simple(c, "one", on_reply, &w), 0);
	ck_assert_int_eq(vici_client_call_simple(c, "two", on_reply, &w), 0);
	ck_assert(run_until(f->e, &w.replies, 1, 2000));
	run_for(f->e, 100);
	/* The second command was dropped with the client, silently. */
	ck_assert_uint_eq(w.replies, 1);
	ck_assert_ptr_null(w.client);
	vici_client_free(NULL);
	fake_free(f);
}
END_TEST

START_TEST(test_client_args)
{
	sd_event *e = NULL;
	struct vici_client *c = NULL;
	char longpath[200];

	ck_assert_int_ge(sd_event_new(&e), 0);
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(vici_client_new(e, longpath, NULL, NULL, &c), -ENAMETOOLONG);
	ck_assert_int_eq(vici_client_new(e, "", NULL, NULL, &c), -EINVAL);
	ck_assert_int_eq(vici_client_new(NULL, "/x", NULL, NULL, &c), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(vici_client_new(e, "/nonexistent/charon.vici", NULL, NULL, &c), 0);
	ck_assert_int_eq(vici_client_set_backoff(c, 10, 100), -EINVAL);
	ck_assert_int_eq(vici_client_set_backoff(c, 5000, 1000), -EINVAL);
	ck_assert_int_eq(vici_client_subscribe(c, "", on_event, NULL, NULL), -EINVAL);
	ck_assert_int_eq(vici_client_start(c), 0);
	run_for(e, 50);
	ck_assert_int_eq(vici_client_last_error(c), -ENOENT);
	ck_assert(!vici_client_is_connected(c));
	vici_client_free(c);
	sd_event_unref(e);
}
END_TEST

static Suite *vici_suite(void)
{
	Suite *s = suite_create("vici");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, test_readme_example);
	tcase_add_test(tc, test_round_trip_binary);
	tcase_add_test(tc, test_empty_message);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_numbers_and_bools);
	tcase_add_test(tc, test_success_reply);
	tcase_add_test(tc, test_builder_limits);
	tcase_add_test(tc, test_parse_nesting_limit);
	tcase_add_test(tc, test_parse_size_limits);
	tcase_add_test(tc, test_parse_malformed);
	tcase_add_test(tc, test_packet_malformed);
	tcase_add_test(tc, test_parse_every_truncation);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_add_test(tc, test_load_conn_build);
	tcase_add_test(tc, test_load_conn_refused);
	tcase_add_test(tc, test_small_builders);
	tcase_add_test(tc, test_get_conns_decode);
	suite_add_tcase(s, tc);

	tc = tcase_create("decoders");
	tcase_add_test(tc, test_list_sa_decode);
	tcase_add_test(tc, test_sa_decode_malformed);
	tcase_add_test(tc, test_child_updown_decode);
	tcase_add_test(tc, test_ike_updown_decode);
	tcase_add_test(tc, test_child_rekey_decode);
	tcase_add_test(tc, test_ike_rekey_decode);
	suite_add_tcase(s, tc);

	tc = tcase_create("client");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_client_commands_in_order);
	tcase_add_test(tc, test_client_streamed_and_wrappers);
	tcase_add_test(tc, test_client_subscriptions);
	tcase_add_test(tc, test_client_reconnects);
	tcase_add_test(tc, test_client_protocol_errors);
	tcase_add_test(tc, test_client_free_in_callback);
	tcase_add_test(tc, test_client_args);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mm_test_run(vici_suite());
}
