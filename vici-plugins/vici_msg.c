/* VICI codec: frame builder, packet parser and message tree.  See vici_msg.h
 * for the grammar and the limits. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vici-plugins/vici_msg.h"

static const char *const packet_type_names[_VICI_PACKET_TYPE_MAX] = {
	[VICI_CMD_REQUEST] = "cmd-request",
	[VICI_CMD_RESPONSE] = "cmd-response",
	[VICI_CMD_UNKNOWN] = "cmd-unknown",
	[VICI_EVENT_REGISTER] = "event-register",
	[VICI_EVENT_UNREGISTER] = "event-unregister",
	[VICI_EVENT_CONFIRM] = "event-confirm",
	[VICI_EVENT_UNKNOWN] = "event-unknown",
	[VICI_EVENT] = "event",
};

const char *vici_packet_type_to_string(int type)
{
	if (type < 0 || type >= _VICI_PACKET_TYPE_MAX)
		return NULL;
	return packet_type_names[type];
}

static bool packet_type_named(int type)
{
	return type == VICI_CMD_REQUEST || type == VICI_EVENT_REGISTER ||
	       type == VICI_EVENT_UNREGISTER || type == VICI_EVENT;
}

static bool packet_type_has_body(int type)
{
	return type == VICI_CMD_REQUEST || type == VICI_CMD_RESPONSE || type == VICI_EVENT;
}

/* ---- builder ---------------------------------------------------------- */

struct vici_builder {
	uint8_t *buf;
	size_t len, cap;
	unsigned depth;
	unsigned elems;
	bool in_list;
	bool has_body;
	int err; /* first error, sticky */
};

static int builder_fail(struct vici_builder *b, int r)
{
	if (b->err == 0)
		b->err = r;
	return r;
}

/* Room for n more bytes, within the packet limit (the frame header is not
 * part of it). */
static int builder_reserve(struct vici_builder *b, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (n > VICI_FRAME_HDR + VICI_PACKET_MAX - b->len)
		return -EMSGSIZE;
	need = b->len + n;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > VICI_FRAME_HDR + VICI_PACKET_MAX)
		cap = VICI_FRAME_HDR + VICI_PACKET_MAX;
	/* Not realloc(): the old buffer may hold key material and must be
	 * wiped, which realloc would not do when it moves the block. */
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	if (b->buf) {
		memcpy(p, b->buf, b->len);
		explicit_bzero(b->buf, b->cap);
		free(b->buf);
	}
	b->buf = p;
	b->cap = cap;
	return 0;
}

static void put(struct vici_builder *b, const void *data, size_t n)
{
	if (n)
		memcpy(b->buf + b->len, data, n);
	b->len += n;
}

static void put_u8(struct vici_builder *b, uint8_t v)
{
	b->buf[b->len++] = v;
}

static int check_name(const char *name, size_t *ret_len)
{
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	if (n == 0 || n > VICI_NAME_MAX)
		return -EINVAL;
	*ret_len = n;
	return 0;
}

/* One element: type, optional name, optional value (value_len < 0: none). */
static int builder_elem(struct vici_builder *b, uint8_t type, const char *name, const void *value,
			long value_len)
{
	size_t nlen = 0, total = 1;
	int r;

	if (b->err)
		return b->err;
	if (!b->has_body)
		return builder_fail(b, -EINVAL);
	if (b->elems >= VICI_MSG_ELEMS_MAX)
		return builder_fail(b, -EMSGSIZE);
	if (name) {
		r = check_name(name, &nlen);
		if (r < 0)
			return builder_fail(b, r);
		total += 1 + nlen;
	}
	if (value_len >= 0) {
		if ((unsigned long)value_len > VICI_VALUE_MAX)
			return builder_fail(b, -EMSGSIZE);
		if (value_len > 0 && !value)
			return builder_fail(b, -EINVAL);
		total += 2 + (size_t)value_len;
	}
	r = builder_reserve(b, total);
	if (r < 0)
		return builder_fail(b, r);
	put_u8(b, type);
	if (name) {
		put_u8(b, (uint8_t)nlen);
		put(b, name, nlen);
	}
	if (value_len >= 0) {
		put_u8(b, (uint8_t)(value_len >> 8));
		put_u8(b, (uint8_t)value_len);
		put(b, value, (size_t)value_len);
	}
	b->elems++;
	return 0;
}

int vici_builder_new(enum vici_packet_type type, const char *name, struct vici_builder **ret)
{
	struct vici_builder *b;
	size_t nlen = 0;
	int r;

	if (!ret || (int)type < 0 || type >= _VICI_PACKET_TYPE_MAX)
		return -EINVAL;
	if (packet_type_named(type)) {
		r = check_name(name, &nlen);
		if (r < 0)
			return r;
	} else if (name) {
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	r = builder_reserve(b, VICI_FRAME_HDR + 2 + nlen);
	if (r < 0) {
		free(b);
		return r;
	}
	put(b, "\0\0\0\0", VICI_FRAME_HDR);
	put_u8(b, (uint8_t)type);
	if (packet_type_named(type)) {
		put_u8(b, (uint8_t)nlen);
		put(b, name, nlen);
	}
	b->has_body = packet_type_has_body(type);
	*ret = b;
	return 0;
}

void vici_builder_free(struct vici_builder *b)
{
	if (!b)
		return;
	if (b->buf) {
		explicit_bzero(b->buf, b->cap);
		free(b->buf);
	}
	free(b);
}

int vici_builder_section_start(struct vici_builder *b, const char *name)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (b->in_list || !name)
		return builder_fail(b, -EINVAL);
	if (b->depth >= VICI_MSG_DEPTH_MAX)
		return builder_fail(b, -EMSGSIZE);
	int r = builder_elem(b, VICI_SECTION_START, name, NULL, -1);
	if (r == 0)
		b->depth++;
	return r;
}

int vici_builder_section_end(struct vici_builder *b)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (b->in_list || b->depth == 0)
		return builder_fail(b, -EINVAL);
	int r = builder_elem(b, VICI_SECTION_END, NULL, NULL, -1);
	if (r == 0)
		b->depth--;
	return r;
}

int vici_builder_kv(struct vici_builder *b, const char *key, const void *value, size_t len)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (b->in_list || !key)
		return builder_fail(b, -EINVAL);
	if (len > VICI_VALUE_MAX)
		return builder_fail(b, -EMSGSIZE);
	return builder_elem(b, VICI_KEY_VALUE, key, value, (long)len);
}

int vici_builder_kv_str(struct vici_builder *b, const char *key, const char *value)
{
	if (!b)
		return -EINVAL;
	if (!value)
		return builder_fail(b, -EINVAL);
	return vici_builder_kv(b, key, value, strlen(value));
}

int vici_builder_kv_fmt(struct vici_builder *b, const char *key, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n, r;

	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (!fmt)
		return builder_fail(b, -EINVAL);
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return builder_fail(b, -ENOMEM);
	r = vici_builder_kv(b, key, s, (size_t)n);
	free(s);
	return r;
}

int vici_builder_list_start(struct vici_builder *b, const char *name)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (b->in_list || !name)
		return builder_fail(b, -EINVAL);
	int r = builder_elem(b, VICI_LIST_START, name, NULL, -1);
	if (r == 0)
		b->in_list = true;
	return r;
}

int vici_builder_list_item(struct vici_builder *b, const void *value, size_t len)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (!b->in_list)
		return builder_fail(b, -EINVAL);
	if (len > VICI_VALUE_MAX)
		return builder_fail(b, -EMSGSIZE);
	return builder_elem(b, VICI_LIST_ITEM, NULL, value, (long)len);
}

int vici_builder_list_item_str(struct vici_builder *b, const char *value)
{
	if (!b)
		return -EINVAL;
	if (!value)
		return builder_fail(b, -EINVAL);
	return vici_builder_list_item(b, value, strlen(value));
}

int vici_builder_list_end(struct vici_builder *b)
{
	if (!b)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (!b->in_list)
		return builder_fail(b, -EINVAL);
	int r = builder_elem(b, VICI_LIST_END, NULL, NULL, -1);
	if (r == 0)
		b->in_list = false;
	return r;
}

int vici_builder_list_strv(struct vici_builder *b, const char *name, const char *const *items)
{
	int r = vici_builder_list_start(b, name);

	for (size_t i = 0; r == 0 && items && items[i]; i++)
		r = vici_builder_list_item_str(b, items[i]);
	if (r == 0)
		r = vici_builder_list_end(b);
	return r;
}

int vici_builder_finish(struct vici_builder *b, const uint8_t **ret_frame, size_t *ret_len)
{
	size_t plen;

	if (!b || !ret_frame || !ret_len)
		return -EINVAL;
	if (b->err)
		return b->err;
	if (b->depth || b->in_list)
		return builder_fail(b, -EINVAL);
	plen = b->len - VICI_FRAME_HDR;
	b->buf[0] = (uint8_t)(plen >> 24);
	b->buf[1] = (uint8_t)(plen >> 16);
	b->buf[2] = (uint8_t)(plen >> 8);
	b->buf[3] = (uint8_t)plen;
	*ret_frame = b->buf;
	*ret_len = b->len;
	return 0;
}

/* ---- packet ----------------------------------------------------------- */

int vici_frame_len(const uint8_t hdr[VICI_FRAME_HDR], size_t *ret_len)
{
	uint32_t n;

	if (!hdr || !ret_len)
		return -EINVAL;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n > VICI_PACKET_MAX)
		return -EMSGSIZE;
	if (n == 0)
		return -EBADMSG;
	*ret_len = n;
	return 0;
}

int vici_packet_parse(const void *payload, size_t len, struct vici_packet *ret)
{
	const uint8_t *p = payload;
	struct vici_packet pkt = { 0 };
	size_t off = 1;

	if (!ret || (!p && len))
		return -EINVAL;
	if (len > VICI_PACKET_MAX)
		return -EMSGSIZE;
	if (len == 0 || p[0] >= _VICI_PACKET_TYPE_MAX)
		return -EBADMSG;
	pkt.type = p[0];
	if (packet_type_named(pkt.type)) {
		if (off >= len)
			return -EBADMSG;
		pkt.name_len = p[off++];
		if (pkt.name_len == 0 || pkt.name_len > len - off)
			return -EBADMSG;
		pkt.name = (const char *)p + off;
		if (memchr(pkt.name, '\0', pkt.name_len))
			return -EBADMSG;
		off += pkt.name_len;
	}
	if (off < len) {
		if (!packet_type_has_body(pkt.type))
			return -EBADMSG;
		pkt.body = p + off;
		pkt.body_len = len - off;
	}
	*ret = pkt;
	return 0;
}

/* ---- message tree ------------------------------------------------------ */

struct vici_node {
	enum vici_node_type type;
	const char *name;
	const char *value;
	size_t value_len;
	struct vici_node *first, *last, *next;
};

struct vici_msg {
	struct vici_node *nodes; /* nodes[0] is the root */
	size_t n_nodes;
	char *arena; /* names and values, each NUL-terminated */
};

/* The state of one walk over a message.  walk() runs twice over the same
 * bytes: first with build == false to validate and size the tree, then to
 * fill the allocation; the second pass cannot fail. */
struct walk {
	const uint8_t *p;
	size_t len, off;
	bool build;
	struct vici_msg *m;
	size_t n_nodes, arena_len, elems;
};

static int walk_name(struct walk *w, const char **ret_name, size_t *ret_len)
{
	size_t n;

	if (w->off >= w->len)
		return -EBADMSG;
	n = w->p[w->off++];
	if (n == 0 || n > w->len - w->off)
		return -EBADMSG;
	if (memchr(w->p + w->off, '\0', n))
		return -EBADMSG;
	*ret_name = (const char *)w->p + w->off;
	*ret_len = n;
	w->off += n;
	return 0;
}

static int walk_value(struct walk *w, const char **ret_value, size_t *ret_len)
{
	size_t n;

	if (w->len - w->off < 2)
		return -EBADMSG;
	n = (size_t)w->p[w->off] << 8 | w->p[w->off + 1];
	w->off += 2;
	if (n > w->len - w->off)
		return -EBADMSG;
	*ret_value = (const char *)w->p + w->off;
	*ret_len = n;
	w->off += n;
	return 0;
}

static const char *arena_put(struct walk *w, const char *s, size_t n)
{
	char *d;

	if (!w->build) {
		w->arena_len += n + 1;
		return NULL;
	}
	d = w->m->arena + w->arena_len;
	memcpy(d, s, n);
	d[n] = '\0';
	w->arena_len += n + 1;
	return d;
}

static struct vici_node *node_add(struct walk *w, struct vici_node *parent, enum vici_node_type type)
{
	struct vici_node *n;

	if (!w->build) {
		w->n_nodes++;
		return NULL;
	}
	n = &w->m->nodes[w->n_nodes++];
	n->type = type;
	if (parent->last)
		parent->last->next = n;
	else
		parent->first = n;
	parent->last = n;
	return n;
}

/* node_add() with the name (sections, keys, lists) and the value (keys,
 * items) copied into the arena; the sizing pass only counts them. */
static struct vici_node *node_add_copy(struct walk *w, struct vici_node *parent,
				       enum vici_node_type type, const char *name, size_t nlen,
				       const char *value, size_t vlen)
{
	struct vici_node *n = node_add(w, parent, type);
	const char *ns = NULL, *vs = NULL;

	if (type != VICI_NODE_ITEM)
		ns = arena_put(w, name, nlen);
	if (type == VICI_NODE_KV || type == VICI_NODE_ITEM)
		vs = arena_put(w, value, vlen);
	if (n) {
		n->name = ns;
		n->value = vs;
		n->value_len = vs ? vlen : 0;
	}
	return n;
}

static int walk(struct walk *w)
{
	struct vici_node *stack[VICI_MSG_DEPTH_MAX + 1];
	struct vici_node *list = NULL, *n;
	const char *name, *value;
	size_t nlen, vlen;
	unsigned depth = 0;
	bool in_list = false;
	int r;

	w->off = 0;
	w->n_nodes = 1; /* the root */
	w->arena_len = 0;
	w->elems = 0;
	stack[0] = w->build ? &w->m->nodes[0] : NULL;
	if (w->build)
		stack[0]->type = VICI_NODE_SECTION;

	while (w->off < w->len) {
		uint8_t type = w->p[w->off++];

		if (++w->elems > VICI_MSG_ELEMS_MAX)
			return -EMSGSIZE;
		switch (type) {
		case VICI_SECTION_START:
			if (in_list || depth >= VICI_MSG_DEPTH_MAX)
				return -EBADMSG;
			r = walk_name(w, &name, &nlen);
			if (r < 0)
				return r;
			n = node_add_copy(w, stack[depth], VICI_NODE_SECTION, name, nlen, NULL, 0);
			stack[++depth] = n;
			break;
		case VICI_SECTION_END:
			if (in_list || depth == 0)
				return -EBADMSG;
			depth--;
			break;
		case VICI_KEY_VALUE:
			if (in_list)
				return -EBADMSG;
			r = walk_name(w, &name, &nlen);
			if (r < 0)
				return r;
			r = walk_value(w, &value, &vlen);
			if (r < 0)
				return r;
			node_add_copy(w, stack[depth], VICI_NODE_KV, name, nlen, value, vlen);
			break;
		case VICI_LIST_START:
			if (in_list)
				return -EBADMSG;
			r = walk_name(w, &name, &nlen);
			if (r < 0)
				return r;
			list = node_add_copy(w, stack[depth], VICI_NODE_LIST, name, nlen, NULL, 0);
			in_list = true;
			break;
		case VICI_LIST_ITEM:
			if (!in_list)
				return -EBADMSG;
			r = walk_value(w, &value, &vlen);
			if (r < 0)
				return r;
			node_add_copy(w, list, VICI_NODE_ITEM, NULL, 0, value, vlen);
			break;
		case VICI_LIST_END:
			if (!in_list)
				return -EBADMSG;
			in_list = false;
			list = NULL;
			break;
		default:
			return -EBADMSG;
		}
	}
	if (depth != 0 || in_list)
		return -EBADMSG;
	return 0;
}

int vici_msg_parse(const void *data, size_t len, struct vici_msg **ret)
{
	struct walk w = { .p = data, .len = len };
	struct vici_msg *m;
	int r;

	if (!ret || (!data && len))
		return -EINVAL;
	if (len > VICI_PACKET_MAX)
		return -EMSGSIZE;
	r = walk(&w);
	if (r < 0)
		return r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->nodes = calloc(w.n_nodes, sizeof(*m->nodes));
	m->arena = malloc(w.arena_len ? w.arena_len : 1);
	if (!m->nodes || !m->arena) {
		vici_msg_free(m);
		return -ENOMEM;
	}
	m->n_nodes = w.n_nodes;
	w.m = m;
	w.build = true;
	r = walk(&w);
	if (r < 0) { /* cannot happen: the first pass accepted the same bytes */
		vici_msg_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

void vici_msg_free(struct vici_msg *m)
{
	if (!m)
		return;
	free(m->nodes);
	free(m->arena);
	free(m);
}

const struct vici_node *vici_msg_root(const struct vici_msg *m)
{
	return m ? &m->nodes[0] : NULL;
}

enum vici_node_type vici_node_type(const struct vici_node *n)
{
	return n ? n->type : VICI_NODE_SECTION;
}

const char *vici_node_name(const struct vici_node *n)
{
	return n ? n->name : NULL;
}

const struct vici_node *vici_node_first(const struct vici_node *n)
{
	return n ? n->first : NULL;
}

const struct vici_node *vici_node_next(const struct vici_node *n)
{
	return n ? n->next : NULL;
}

static const struct vici_node *child_n(const struct vici_node *n, const char *name, size_t len)
{
	if (!n || n->type != VICI_NODE_SECTION)
		return NULL;
	for (const struct vici_node *c = n->first; c; c = c->next)
		if (c->name && strncmp(c->name, name, len) == 0 && c->name[len] == '\0')
			return c;
	return NULL;
}

const struct vici_node *vici_node_child(const struct vici_node *n, const char *name)
{
	if (!name)
		return NULL;
	return child_n(n, name, strlen(name));
}

const struct vici_node *vici_node_find(const struct vici_node *n, const char *path)
{
	if (!path)
		return NULL;
	for (;;) {
		const char *slash = strchr(path, '/');
		size_t len = slash ? (size_t)(slash - path) : strlen(path);

		if (len == 0)
			return NULL;
		n = child_n(n, path, len);
		if (!n || !slash)
			return n;
		path = slash + 1;
	}
}

const void *vici_node_value(const struct vici_node *n, size_t *ret_len)
{
	if (!n || (n->type != VICI_NODE_KV && n->type != VICI_NODE_ITEM))
		return NULL;
	if (ret_len)
		*ret_len = n->value_len;
	return n->value;
}

const char *vici_node_str(const struct vici_node *n)
{
	size_t len;
	const char *v = vici_node_value(n, &len);

	if (!v || memchr(v, '\0', len))
		return NULL;
	return v;
}

int vici_node_uint(const struct vici_node *n, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	size_t len;
	const char *s;

	if (!n)
		return -ENOENT;
	s = vici_node_value(n, &len);
	if (!s)
		return -EINVAL;
	if (len == 0)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int vici_node_bool(const struct vici_node *n, bool *ret)
{
	const char *s;

	if (!n)
		return -ENOENT;
	if (n->type != VICI_NODE_KV && n->type != VICI_NODE_ITEM)
		return -EINVAL;
	s = vici_node_str(n);
	if (s && strcmp(s, "yes") == 0)
		*ret = true;
	else if (s && strcmp(s, "no") == 0)
		*ret = false;
	else
		return -EBADMSG;
	return 0;
}

const char *vici_msg_get_str(const struct vici_msg *m, const char *path)
{
	return vici_node_str(vici_node_find(vici_msg_root(m), path));
}

int vici_msg_check_success(const struct vici_msg *m)
{
	const struct vici_node *n = vici_node_child(vici_msg_root(m), "success");
	bool ok;

	if (!n || n->type != VICI_NODE_KV || vici_node_bool(n, &ok) < 0)
		return -EBADMSG;
	return ok ? 0 : -EREMOTEIO;
}

const char *vici_msg_errmsg(const struct vici_msg *m)
{
	return vici_msg_get_str(m, "errmsg");
}
