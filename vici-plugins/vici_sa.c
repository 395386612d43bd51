/* Decoding of IKE_SA / CHILD_SA sections (list-sa, child-updown, ...).
 * Table-driven: each struct field names its key and how to parse it. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "vici-plugins/vici_sa.h"

enum field_kind {
	F_STR,  /* char *, strdup'd */
	F_U16,
	F_U32,
	F_U64,
	F_SPI,  /* uint32_t from charon's "%.8x" hex */
	F_BOOL, /* "yes" / "no" */
	F_STRV, /* char **, from a list */
};

struct field {
	const char *key;
	enum field_kind kind;
	size_t off;
};

#define CHILD(key, kind, member) { key, kind, offsetof(struct vici_child_sa, member) }
static const struct field child_fields[] = {
	CHILD("name", F_STR, name),
	CHILD("uniqueid", F_U32, uniqueid),
	CHILD("reqid", F_U32, reqid),
	CHILD("state", F_STR, state),
	CHILD("mode", F_STR, mode),
	CHILD("protocol", F_STR, protocol),
	CHILD("encap", F_BOOL, encap),
	CHILD("spi-in", F_SPI, spi_in),
	CHILD("spi-out", F_SPI, spi_out),
	CHILD("install-time", F_U64, install_time),
	CHILD("local-ts", F_STRV, local_ts),
	CHILD("remote-ts", F_STRV, remote_ts),
};

#define IKE(key, kind, member) { key, kind, offsetof(struct vici_ike_sa, member) }
static const struct field ike_fields[] = {
	IKE("uniqueid", F_U32, uniqueid),
	IKE("state", F_STR, state),
	IKE("local-host", F_STR, local_host),
	IKE("local-port", F_U16, local_port),
	IKE("local-id", F_STR, local_id),
	IKE("remote-host", F_STR, remote_host),
	IKE("remote-port", F_U16, remote_port),
	IKE("remote-id", F_STR, remote_id),
	IKE("established", F_U64, established),
};

void vici_strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

static int strv_from_list(const struct vici_node *list, char ***ret)
{
	const struct vici_node *it;
	size_t n = 0, i = 0;
	char **v;

	if (vici_node_type(list) != VICI_NODE_LIST)
		return -EBADMSG;
	for (it = vici_node_first(list); it; it = vici_node_next(it))
		n++;
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (it = vici_node_first(list); it; it = vici_node_next(it)) {
		const char *s = vici_node_str(it);

		if (!s) {
			vici_strv_free(v);
			return -EBADMSG;
		}
		v[i] = strdup(s);
		if (!v[i++]) {
			vici_strv_free(v);
			return -ENOMEM;
		}
	}
	*ret = v;
	return 0;
}

static int parse_spi(const struct vici_node *n, uint32_t *ret)
{
	const char *s = vici_node_str(n);
	uint32_t v = 0;
	size_t len;

	if (!s || vici_node_type(n) != VICI_NODE_KV)
		return -EBADMSG;
	len = strlen(s);
	if (len == 0 || len > 8)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		unsigned d;

		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			return -EBADMSG;
		v = v << 4 | d;
	}
	*ret = v;
	return 0;
}

static int decode_field(const struct vici_node *n, const struct field *f, void *base)
{
	char *p = (char *)base + f->off;
	uint64_t u;
	int r;

	if (f->kind != F_STRV && vici_node_type(n) != VICI_NODE_KV)
		return -EBADMSG;
	switch (f->kind) {
	case F_STR: {
		const char *s = vici_node_str(n);

		if (!s)
			return -EBADMSG;
		char *d = strdup(s);
		if (!d)
			return -ENOMEM;
		free(*(char **)p); /* a repeated key: the last one wins */
		*(char **)p = d;
		return 0;
	}
	case F_U16:
	case F_U32:
	case F_U64:
		r = vici_node_uint(n, f->kind == F_U16 ? UINT16_MAX : f->kind == F_U32 ? UINT32_MAX : UINT64_MAX,
				   &u);
		if (r < 0)
			return -EBADMSG;
		if (f->kind == F_U16)
			*(uint16_t *)p = (uint16_t)u;
		else if (f->kind == F_U32)
			*(uint32_t *)p = (uint32_t)u;
		else
			*(uint64_t *)p = u;
		return 0;
	case F_SPI:
		return parse_spi(n, (uint32_t *)p);
	case F_BOOL:
		return vici_node_bool(n, (bool *)p) < 0 ? -EBADMSG : 0;
	case F_STRV: {
		char **v;

		r = strv_from_list(n, &v);
		if (r < 0)
			return r;
		vici_strv_free(*(char ***)p);
		*(char ***)p = v;
		return 0;
	}
	}
	return -EBADMSG;
}

/* Decodes the known keys of section `sec` into `base`; unknown keys are
 * skipped (charon adds fields over versions). */
static int decode_fields(const struct vici_node *sec, const struct field *fields, size_t n_fields,
			 void *base)
{
	for (const struct vici_node *c = vici_node_first(sec); c; c = vici_node_next(c)) {
		const char *name = vici_node_name(c);

		for (size_t i = 0; i < n_fields; i++) {
			if (strcmp(name, fields[i].key) == 0) {
				int r = decode_field(c, &fields[i], base);

				if (r < 0)
					return r;
				break;
			}
		}
	}
	return 0;
}

static int empty_strv(char ***v)
{
	if (*v)
		return 0;
	*v = calloc(1, sizeof(char *));
	return *v ? 0 : -ENOMEM;
}

void vici_child_sa_clear(struct vici_child_sa *sa)
{
	if (!sa)
		return;
	free(sa->name);
	free(sa->state);
	free(sa->mode);
	free(sa->protocol);
	vici_strv_free(sa->local_ts);
	vici_strv_free(sa->remote_ts);
	memset(sa, 0, sizeof(*sa));
}

void vici_ike_sa_clear(struct vici_ike_sa *sa)
{
	if (!sa)
		return;
	free(sa->name);
	free(sa->state);
	free(sa->local_host);
	free(sa->local_id);
	free(sa->remote_host);
	free(sa->remote_id);
	for (size_t i = 0; i < sa->n_children; i++)
		vici_child_sa_clear(&sa->children[i]);
	free(sa->children);
	memset(sa, 0, sizeof(*sa));
}

void vici_ike_sa_free(struct vici_ike_sa *sa)
{
	vici_ike_sa_clear(sa);
	free(sa);
}

void vici_ike_sa_array_free(struct vici_ike_sa **sas, size_t n)
{
	if (!sas)
		return;
	for (size_t i = 0; i < n; i++)
		vici_ike_sa_free(sas[i]);
	free(sas);
}

int vici_sa_decode_child(const struct vici_node *sec, struct vici_child_sa *ret)
{
	struct vici_child_sa sa = { 0 };
	int r;

	if (!sec || !ret || vici_node_type(sec) != VICI_NODE_SECTION || !vici_node_name(sec))
		return -EBADMSG;
	r = decode_fields(sec, child_fields, sizeof(child_fields) / sizeof(child_fields[0]), &sa);
	if (r >= 0 && !sa.name) {
		/* charon names the section "<config>-<uniqueid>" and adds a
		 * "name" key; older versions used the config name only. */
		sa.name = strdup(vici_node_name(sec));
		if (!sa.name)
			r = -ENOMEM;
	}
	if (r >= 0)
		r = empty_strv(&sa.local_ts);
	if (r >= 0)
		r = empty_strv(&sa.remote_ts);
	if (r < 0) {
		vici_child_sa_clear(&sa);
		return r;
	}
	*ret = sa;
	return 0;
}

static int decode_children(const struct vici_node *sec, struct vici_ike_sa *sa)
{
	const struct vici_node *c;
	size_t n = 0;

	if (vici_node_type(sec) != VICI_NODE_SECTION)
		return -EBADMSG;
	for (c = vici_node_first(sec); c; c = vici_node_next(c))
		n++;
	if (n == 0)
		return 0;
	sa->children = calloc(n, sizeof(*sa->children));
	if (!sa->children)
		return -ENOMEM;
	for (c = vici_node_first(sec); c; c = vici_node_next(c)) {
		int r = vici_sa_decode_child(c, &sa->children[sa->n_children]);

		if (r < 0)
			return r;
		sa->n_children++;
	}
	return 0;
}

int vici_sa_decode_ike(const struct vici_node *sec, bool with_children, struct vici_ike_sa *ret)
{
	struct vici_ike_sa sa = { 0 };
	const struct vici_node *children;
	int r;

	if (!sec || !ret || vici_node_type(sec) != VICI_NODE_SECTION || !vici_node_name(sec))
		return -EBADMSG;
	sa.name = strdup(vici_node_name(sec));
	if (!sa.name)
		return -ENOMEM;
	r = decode_fields(sec, ike_fields, sizeof(ike_fields) / sizeof(ike_fields[0]), &sa);
	if (r >= 0) {
		sa.established_known = vici_node_child(sec, "established") != NULL;
		children = vici_node_child(sec, "child-sas");
		if (with_children && children)
			r = decode_children(children, &sa);
	}
	if (r < 0) {
		vici_ike_sa_clear(&sa);
		return r;
	}
	*ret = sa;
	return 0;
}

const struct vici_node *vici_sa_event_section(const struct vici_msg *m)
{
	const struct vici_node *found = NULL;

	for (const struct vici_node *c = vici_node_first(vici_msg_root(m)); c; c = vici_node_next(c)) {
		if (vici_node_type(c) != VICI_NODE_SECTION)
			continue;
		if (found)
			return NULL;
		found = c;
	}
	return found;
}

int vici_sa_decode_updown(const struct vici_msg *m, bool with_children, bool *ret_up,
			  struct vici_ike_sa *ret_ike)
{
	const struct vici_node *up = vici_node_child(vici_msg_root(m), "up");
	const struct vici_node *sec = vici_sa_event_section(m);
	bool is_up = false;
	int r;

	if (!sec)
		return -EBADMSG;
	/* charon sends "up = yes" on up and leaves the key out on down. */
	if (up && vici_node_bool(up, &is_up) < 0)
		return -EBADMSG;
	r = vici_sa_decode_ike(sec, with_children, ret_ike);
	if (r < 0)
		return r;
	*ret_up = is_up;
	return 0;
}
