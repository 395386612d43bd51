/* Partner table file codec: YAML (libyaml events) <-> JSON (jansson).
 * Contracts in tablefile.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "tablefile.h"
#include "policy/grow.h"

#define TAG_STR  "tag:yaml.org,2002:str"
#define TAG_BOOL "tag:yaml.org,2002:bool"
#define TAG_SEQ  "tag:yaml.org,2002:seq"
#define TAG_MAP  "tag:yaml.org,2002:map"

#define EXPORT_HEADER "# mmtrust partner table, exported by mmtrustctl\n"

enum ftype { F_STRING, F_BOOL, F_LIST, F_CA_PEM, F_CA_FILE };

struct field {
	const char *key;     /* in the file */
	const char *member;  /* in the JSON object */
	enum ftype type;
};

/* The first N_WRITTEN entries, in this order, are what tablefile_write
 * writes; ca_file exists only on the way in. */
static const struct field fields[] = {
	{ "domain",    "domain",    F_STRING },
	{ "kind",      "kind",      F_STRING },
	{ "agreement", "agreement", F_BOOL },
	{ "ranges",    "ranges",    F_LIST },
	{ "gateways",  "gateways",  F_LIST },
	{ "esp",       "esp",       F_STRING },
	{ "path",      "path",      F_STRING },
	{ "enabled",   "enabled",   F_BOOL },
	{ "crls",      "crls",      F_LIST },
	{ "revocation", "revocation", F_STRING },
	{ "ca",        "ca",        F_CA_PEM },
	{ "ca_file",   "ca",        F_CA_FILE },
};
#define N_FIELDS  (sizeof(fields) / sizeof(fields[0]))
#define N_WRITTEN 11
#define F_CRLS    8
#define F_REVOCATION 9
#define F_CA      10
#define F_CAFILE  11

static const struct {
	const char *word;
	bool value;
} bool_words[] = {
	{ "true", true }, { "yes", true }, { "on", true },
	{ "false", false }, { "no", false }, { "off", false },
};

/* Copy src into dst for a message: control characters become '?' (a key
 * or tag may hold anything) and long text is cut on a character boundary. */
static void sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t max = dstlen - 4, i;

	for (i = 0; i < srclen && i < max; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	if (i < srclen) {
		while (i > 0 && ((unsigned char)dst[i] & 0xc0) == 0x80)
			i--;
		memcpy(dst + i, "...", 3);
		i += 3;
	}
	dst[i] = '\0';
}

static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* Read all of fd, refusing more than max bytes with -EFBIG. */
static int read_fd(int fd, size_t max, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r;

	for (;;) {
		ssize_t n;

		if (len == cap) {
			/* one byte over max tells "too large" from "exactly max" */
			if (len > max) {
				r = -EFBIG;
				goto out;
			}
			r = mm_grow_max((void **)&buf, &cap, len + 4096 < max + 1 ? len + 4096 : max + 1,
					1, max + 1);
			if (r < 0)
				goto out;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	return r;
}

static int read_path(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = read_fd(fd, max, ret_buf, ret_len);
	close(fd);
	return r;
}

/* ---- CA certificate files ---------------------------------------------- */

/* One DER encoding spanning the whole file: an ASN.1 SEQUENCE (0x30) with
 * a definite length that ends exactly at the end.  Only the framing: the
 * daemon judges the certificate. */
static bool der_framed(const unsigned char *b, size_t len)
{
	size_t hdr = 2, body = 0;

	if (len < 2 || b[0] != 0x30)
		return false;
	if (b[1] < 0x80) {
		body = b[1];
	} else {
		size_t n = b[1] & 0x7f;

		if (n == 0 || n > 4 || len < 2 + n)
			return false;
		for (size_t i = 0; i < n; i++)
			body = body << 8 | b[2 + i];
		hdr += n;
	}
	return hdr + body == len;
}

/* DER as PEM, the way OpenSSL writes it: base64 in lines of 64. */
static char *der_to_pem(const unsigned char *der, size_t len)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char head[] = "-----BEGIN CERTIFICATE-----\n";
	static const char tail[] = "-----END CERTIFICATE-----\n";
	size_t chars = (len + 2) / 3 * 4, col = 0;
	char *pem = malloc(sizeof(head) + chars + chars / 64 + 1 + sizeof(tail));
	char *o = pem;

	if (!pem)
		return NULL;
	o = stpcpy(o, head);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)der[i + 1] << 8;
		if (i + 2 < len)
			v |= der[i + 2];
		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? b64[v & 63] : '=';
		if ((col += 4) == 64 || i + 3 >= len) {
			*o++ = '\n';
			col = 0;
		}
	}
	stpcpy(o, tail);
	return pem;
}

int tablefile_ca_read(const char *path, const char *base_dir, json_t **ret_value, char *errbuf,
		      size_t errlen)
{
	char *full = NULL, *buf = NULL, *pem = NULL, shown[256];
	size_t len = 0;
	json_t *v = NULL;
	int r = 0;

	if (path[0] != '/' && base_dir && base_dir[0])
		r = asprintf(&full, "%s/%s", base_dir, path) < 0 ? -ENOMEM : 0;
	else if (!(full = strdup(path)))
		r = -ENOMEM;
	if (r < 0) {
		full = NULL;
		snprintf(shown, sizeof(shown), "%s", "(path)");
		goto out;
	}
	sanitize(shown, sizeof(shown), full, strlen(full));
	r = read_path(full, TABLEFILE_CA_MAX, &buf, &len);
	if (r < 0)
		goto out;
	if (der_framed((const unsigned char *)buf, len)) {
		pem = der_to_pem((const unsigned char *)buf, len);
		v = pem ? json_string(pem) : NULL;
		r = 1;
	} else if (memchr(buf, '\0', len) || !utf8_valid((const unsigned char *)buf, len)) {
		r = -EINVAL;
		goto out;
	} else {
		v = json_stringn(buf, len);
	}
	if (!v) {
		r = -ENOMEM;
		goto out;
	}
	*ret_value = v;
out:
	if (r == -EFBIG && errbuf && errlen)
		snprintf(errbuf, errlen, "%s: larger than %u bytes; a CA certificate is a few kilobytes",
			 shown, TABLEFILE_CA_MAX);
	else if (r < 0 && errbuf && errlen)
		snprintf(errbuf, errlen, "%s: %s", shown,
			 r == -EINVAL ? "binary data that is not one DER-encoded certificate (a CA file is PEM text or DER)"
				      : strerror(-r));
	free(pem);
	free(buf);
	free(full);
	return r;
}

/* ---- parsing ---------------------------------------------------------- */

struct pctx {
	yaml_parser_t parser;
	yaml_event_t ev;     /* the current event */
	const char *fname;
	const char *text;    /* the input, to place reader errors */
	size_t len;
	const char *base_dir;
	char *errbuf;
	size_t errlen;
	/* where we are, for messages: partners[idx].key[item] */
	bool in_partners;
	size_t idx, item;    /* SIZE_MAX: not inside one */
	char key[48];        /* "": not inside one */
};

static void path_fmt(const struct pctx *c, char *buf, size_t len)
{
	if (!c->in_partners)
		buf[0] = '\0';
	else if (c->idx == SIZE_MAX)
		snprintf(buf, len, "partners");
	else if (!c->key[0])
		snprintf(buf, len, "partners[%zu]", c->idx);
	else if (c->item == SIZE_MAX)
		snprintf(buf, len, "partners[%zu].%s", c->idx, c->key);
	else
		snprintf(buf, len, "partners[%zu].%s[%zu]", c->idx, c->key, c->item);
}

__attribute__((format(printf, 4, 5)))
static int perr(struct pctx *c, const yaml_mark_t *m, int rc, const char *fmt, ...)
{
	char path[128], msg[512];
	va_list ap;

	if (!c->errbuf || !c->errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	path_fmt(c, path, sizeof(path));
	snprintf(c->errbuf, c->errlen, "%s:%zu:%zu: %s%s%s", c->fname, m->line + 1,
		 m->column + 1, path, path[0] ? ": " : "", msg);
	return rc;
}

static int parser_error(struct pctx *c)
{
	const yaml_parser_t *p = &c->parser;
	char ctx[160] = "";

	if (p->error == YAML_MEMORY_ERROR) {
		if (c->errbuf && c->errlen)
			snprintf(c->errbuf, c->errlen, "%s: out of memory", c->fname);
		return -ENOMEM;
	}
	if (p->error == YAML_READER_ERROR) {
		/* the reader (encoding errors) knows a byte offset, not a line */
		yaml_mark_t m = { 0 };

		for (size_t i = 0; i < p->problem_offset && i < c->len; i++) {
			if (c->text[i] == '\n')
				m.line++, m.column = 0;
			else
				m.column++;
		}
		c->in_partners = false;
		return perr(c, &m, -EINVAL, "%s", p->problem ? p->problem : "unreadable input");
	}
	if (p->context)
		snprintf(ctx, sizeof(ctx), " (%s at line %zu)", p->context,
			 p->context_mark.line + 1);
	/* a syntax error is not inside the path we track: the scanner runs
	 * ahead of the events */
	c->in_partners = false;
	return perr(c, &p->problem_mark, -EINVAL, "syntax error: %s%s",
		    p->problem ? p->problem : "invalid YAML", ctx);
}

static const char *ev_what(const yaml_event_t *e)
{
	switch (e->type) {
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_SCALAR_EVENT:
		return "a scalar";
	default:
		return "nothing";
	}
}

static const yaml_char_t *ev_tag(const yaml_event_t *e)
{
	switch (e->type) {
	case YAML_SCALAR_EVENT:
		return e->data.scalar.tag;
	case YAML_SEQUENCE_START_EVENT:
		return e->data.sequence_start.tag;
	case YAML_MAPPING_START_EVENT:
		return e->data.mapping_start.tag;
	default:
		return NULL;
	}
}

/* Advance to the next event.  Anchors and aliases are refused here, on every
 * event: a shared node would make one edit change several partners. */
static int next(struct pctx *c)
{
	const yaml_char_t *anchor = NULL;

	yaml_event_delete(&c->ev);
	if (!yaml_parser_parse(&c->parser, &c->ev))
		return parser_error(c);
	switch (c->ev.type) {
	case YAML_ALIAS_EVENT:
		return perr(c, &c->ev.start_mark, -EINVAL,
			    "aliases (*name) are not supported");
	case YAML_SCALAR_EVENT:
		anchor = c->ev.data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = c->ev.data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = c->ev.data.mapping_start.anchor;
		break;
	default:
		break;
	}
	if (anchor)
		return perr(c, &c->ev.start_mark, -EINVAL,
			    "anchors (&name) are not supported");
	return 0;
}

/* An explicit tag is allowed only when it names the type the schema
 * expects; anything else (!!int, local tags) would be silently retyped. */
static int check_tag(struct pctx *c, const char *want)
{
	const char *tag = (const char *)ev_tag(&c->ev);
	char s[64];

	if (!tag || strcmp(tag, want) == 0)
		return 0;
	sanitize(s, sizeof(s), tag, strlen(tag));
	return perr(c, &c->ev.start_mark, -EINVAL, "unsupported tag %s", s);
}

static bool is_null_plain(const yaml_event_t *e)
{
	const char *v = (const char *)e->data.scalar.value;
	size_t n = e->data.scalar.length;

	if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || e->data.scalar.tag)
		return false;
	return n == 0 || (n == 1 && v[0] == '~') ||
	       (n == 4 && (!strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL")));
}

/* The current event as a string value; the pointer lives until next(). */
static int want_string(struct pctx *c, const char **ret, size_t *ret_len)
{
	const yaml_event_t *e = &c->ev;
	int r;

	if (e->type != YAML_SCALAR_EVENT)
		return perr(c, &e->start_mark, -EINVAL, "expected a string, found %s",
			    ev_what(e));
	r = check_tag(c, TAG_STR);
	if (r < 0)
		return r;
	if (is_null_plain(e))
		return perr(c, &e->start_mark, -EINVAL,
			    "expected a string, found an empty value");
	/* "\0" in a double-quoted scalar; C strings downstream would cut it */
	if (memchr(e->data.scalar.value, '\0', e->data.scalar.length))
		return perr(c, &e->start_mark, -EINVAL, "contains a NUL character");
	*ret = (const char *)e->data.scalar.value;
	*ret_len = e->data.scalar.length;
	return 0;
}

static int parse_string(struct pctx *c, json_t **ret)
{
	const char *v = NULL;
	size_t n = 0;
	json_t *s;
	int r;

	r = want_string(c, &v, &n);
	if (r < 0)
		return r;
	/* libyaml hands out valid UTF-8 only, so NULL means ENOMEM */
	s = json_stringn(v, n);
	if (!s)
		return perr(c, &c->ev.start_mark, -ENOMEM, "out of memory");
	*ret = s;
	return 0;
}

static int parse_bool(struct pctx *c, json_t **ret)
{
	const yaml_event_t *e = &c->ev;
	const char *v;
	char s[40];
	int r;

	if (e->type != YAML_SCALAR_EVENT)
		return perr(c, &e->start_mark, -EINVAL, "expected true or false, found %s",
			    ev_what(e));
	r = check_tag(c, TAG_BOOL);
	if (r < 0)
		return r;
	v = (const char *)e->data.scalar.value;
	/* quoting is how a YAML author says "string"; honour that, unless an
	 * explicit !!bool overrides it */
	if (!e->data.scalar.tag && e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return perr(c, &e->start_mark, -EINVAL,
			    "expected true or false, found a quoted string");
	if (strlen(v) == e->data.scalar.length) {
		for (size_t i = 0; i < sizeof(bool_words) / sizeof(bool_words[0]); i++) {
			if (strcasecmp(v, bool_words[i].word) == 0) {
				*ret = json_boolean(bool_words[i].value);
				return 0;
			}
		}
	}
	sanitize(s, sizeof(s), v, e->data.scalar.length);
	return perr(c, &e->start_mark, -EINVAL, "expected true or false, found \"%s\"", s);
}

/* A sequence whose items parse_item turns into JSON; *cursor tracks the
 * item index for error paths (set before next(): an anchor on the item is
 * reported there). */
static int parse_seq(struct pctx *c, size_t *cursor, const char *empty_hint,
		     int (*parse_item)(struct pctx *c, json_t **ret), json_t **ret)
{
	json_t *arr = NULL, *item = NULL;
	int r;

	if (c->ev.type != YAML_SEQUENCE_START_EVENT) {
		if (c->ev.type == YAML_SCALAR_EVENT && is_null_plain(&c->ev))
			return perr(c, &c->ev.start_mark, -EINVAL, "must be a list (%s)",
				    empty_hint);
		return perr(c, &c->ev.start_mark, -EINVAL, "must be a list, found %s",
			    ev_what(&c->ev));
	}
	r = check_tag(c, TAG_SEQ);
	if (r < 0)
		return r;
	arr = json_array();
	if (!arr)
		return perr(c, &c->ev.start_mark, -ENOMEM, "out of memory");
	for (size_t i = 0;; i++) {
		*cursor = i;
		r = next(c);
		if (r < 0)
			goto out;
		if (c->ev.type == YAML_SEQUENCE_END_EVENT)
			break;
		r = parse_item(c, &item);
		if (r < 0)
			goto out;
		if (json_array_append_new(arr, item) < 0) {
			r = perr(c, &c->ev.start_mark, -ENOMEM, "out of memory");
			goto out;
		}
	}
	*cursor = SIZE_MAX;
	*ret = arr;
	arr = NULL;
	r = 0;
out:
	json_decref(arr);
	return r;
}

static int parse_list(struct pctx *c, json_t **ret)
{
	return parse_seq(c, &c->item, "write [] for an empty one", parse_string, ret);
}

static int parse_ca_file_one(struct pctx *c, json_t **ret)
{
	const char *name = NULL;
	char msg[512];
	size_t n = 0;
	int r;

	r = want_string(c, &name, &n);
	if (r < 0)
		return r;
	r = tablefile_ca_read(name, c->base_dir, ret, msg, sizeof(msg));
	if (r < 0)
		return perr(c, &c->ev.start_mark, r, "%s", msg);
	return 0;
}

/* ca and ca_file: one value, or a list (the old and the new CA of a
 * rollover; how many is the daemon's to judge). */
static int parse_ca_pem(struct pctx *c, json_t **ret)
{
	if (c->ev.type == YAML_SEQUENCE_START_EVENT)
		return parse_seq(c, &c->item, "give one CA or two", parse_string, ret);
	return parse_string(c, ret);
}

static int parse_ca_file(struct pctx *c, json_t **ret)
{
	if (c->ev.type == YAML_SEQUENCE_START_EVENT)
		return parse_seq(c, &c->item, "give one file or two", parse_ca_file_one, ret);
	return parse_ca_file_one(c, ret);
}

/* The next key of a mapping: 1 with the key's scalar event current and
 * *ret_mark set, 0 at the end of the mapping, or a negative error. */
static int next_key(struct pctx *c, yaml_mark_t *ret_mark)
{
	int r = next(c);

	if (r < 0)
		return r;
	if (c->ev.type == YAML_MAPPING_END_EVENT)
		return 0;
	*ret_mark = c->ev.start_mark;
	if (c->ev.type != YAML_SCALAR_EVENT)
		return perr(c, ret_mark, -EINVAL, "keys must be strings, found %s",
			    ev_what(&c->ev));
	r = check_tag(c, TAG_STR);
	return r < 0 ? r : 1;
}

static int parse_partner(struct pctx *c, json_t **ret)
{
	yaml_mark_t first[N_FIELDS] = { { 0 } };
	bool seen[N_FIELDS] = { false };
	json_t *obj = NULL, *v = NULL;
	int r;

	if (c->ev.type != YAML_MAPPING_START_EVENT)
		return perr(c, &c->ev.start_mark, -EINVAL, "expected a mapping, found %s",
			    ev_what(&c->ev));
	r = check_tag(c, TAG_MAP);
	if (r < 0)
		return r;
	obj = json_object();
	if (!obj)
		return perr(c, &c->ev.start_mark, -ENOMEM, "out of memory");
	for (;;) {
		const struct field *f = NULL;
		const char *k;
		yaml_mark_t km;
		size_t i, klen;

		r = next_key(c, &km);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		k = (const char *)c->ev.data.scalar.value;
		klen = c->ev.data.scalar.length;
		for (i = 0; i < N_FIELDS; i++) {
			if (strlen(fields[i].key) == klen && memcmp(fields[i].key, k, klen) == 0) {
				f = &fields[i];
				break;
			}
		}
		if (!f) {
			char allowed[160] = "";
			size_t off = 0;

			for (size_t j = 0; j < N_FIELDS; j++)
				off += (size_t)snprintf(allowed + off, sizeof(allowed) - off, "%s%s",
							j == 0 ? "" : j == N_FIELDS - 1 ? " or " : ", ",
							fields[j].key);
			sanitize(c->key, sizeof(c->key), k, klen);
			r = perr(c, &km, -EINVAL, "unknown key (expected %s)", allowed);
			goto out;
		}
		snprintf(c->key, sizeof(c->key), "%s", f->key);
		if (seen[i]) {
			r = perr(c, &km, -EINVAL, "duplicate key (first at line %zu)",
				 first[i].line + 1);
			goto out;
		}
		if ((i == F_CA && seen[F_CAFILE]) || (i == F_CAFILE && seen[F_CA])) {
			size_t o = i == F_CA ? F_CAFILE : F_CA;

			r = perr(c, &km, -EINVAL,
				 "ca and ca_file are mutually exclusive (%s at line %zu)",
				 fields[o].key, first[o].line + 1);
			goto out;
		}
		seen[i] = true;
		first[i] = km;

		r = next(c);
		if (r < 0)
			goto out;
		switch (f->type) {
		case F_STRING:
			r = parse_string(c, &v);
			break;
		case F_BOOL:
			r = parse_bool(c, &v);
			break;
		case F_LIST:
			r = parse_list(c, &v);
			break;
		case F_CA_PEM:
			r = parse_ca_pem(c, &v);
			break;
		case F_CA_FILE:
			r = parse_ca_file(c, &v);
			break;
		}
		if (r < 0)
			goto out;
		/* json_object_set_new releases v on failure too */
		if (json_object_set_new(obj, f->member, v) < 0) {
			v = NULL;
			r = perr(c, &km, -ENOMEM, "out of memory");
			goto out;
		}
		v = NULL;
		c->key[0] = '\0';
	}
	*ret = obj;
	obj = NULL;
	r = 0;
out:
	json_decref(obj);
	return r;
}

static int parse_partners(struct pctx *c, json_t **ret)
{
	return parse_seq(c, &c->idx, "an empty table is written partners: []", parse_partner,
			 ret);
}

static int parse_top(struct pctx *c, json_t **ret)
{
	yaml_mark_t start = c->ev.start_mark, seen_at = { 0 };
	json_t *partners = NULL;
	int r;

	if (c->ev.type != YAML_MAPPING_START_EVENT) {
		if (c->ev.type == YAML_SCALAR_EVENT && is_null_plain(&c->ev))
			return perr(c, &start, -EINVAL,
				    "expected a mapping with the key partners, found an empty document");
		return perr(c, &start, -EINVAL,
			    "expected a mapping with the key partners, found %s", ev_what(&c->ev));
	}
	r = check_tag(c, TAG_MAP);
	if (r < 0)
		return r;
	for (;;) {
		yaml_mark_t km;

		r = next_key(c, &km);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		if (c->ev.data.scalar.length != 8 ||
		    memcmp(c->ev.data.scalar.value, "partners", 8) != 0) {
			char k[48];

			sanitize(k, sizeof(k), (const char *)c->ev.data.scalar.value,
				 c->ev.data.scalar.length);
			r = perr(c, &km, -EINVAL,
				 "unknown key \"%s\" (a table file has the single key partners)", k);
			goto out;
		}
		c->in_partners = true;
		if (partners) {
			r = perr(c, &km, -EINVAL, "duplicate key (first at line %zu)",
				 seen_at.line + 1);
			goto out;
		}
		seen_at = km;
		r = next(c);
		if (r < 0)
			goto out;
		r = parse_partners(c, &partners);
		if (r < 0)
			goto out;
		c->in_partners = false;
	}
	if (!partners) {
		r = perr(c, &start, -EINVAL, "missing key partners");
		goto out;
	}
	*ret = partners;
	partners = NULL;
	r = 0;
out:
	json_decref(partners);
	return r;
}

static int parse_stream(struct pctx *c, json_t **ret)
{
	json_t *partners = NULL;
	int r;

	r = next(c);                               /* STREAM-START */
	if (r < 0)
		return r;
	r = next(c);
	if (r < 0)
		return r;
	/* an empty or comment-only file has no document at all */
	if (c->ev.type != YAML_DOCUMENT_START_EVENT)
		return perr(c, &c->ev.start_mark, -EINVAL,
			    "empty file: expected a mapping with the key partners");
	r = next(c);
	if (r < 0)
		return r;
	r = parse_top(c, &partners);
	if (r < 0)
		return r;
	r = next(c);                               /* DOCUMENT-END */
	if (r < 0)
		goto out;
	r = next(c);
	if (r < 0)
		goto out;
	if (c->ev.type != YAML_STREAM_END_EVENT) {
		r = perr(c, &c->ev.start_mark, -EINVAL,
			 "more than one YAML document (a table file holds one)");
		goto out;
	}
	*ret = partners;
	partners = NULL;
	r = 0;
out:
	json_decref(partners);
	return r;
}

int tablefile_parse(const char *text, size_t len, const char *filename_for_messages,
		    const char *base_dir, json_t **ret_partners, char *errbuf, size_t errlen)
{
	struct pctx c = {
		.fname = filename_for_messages ? filename_for_messages : "<input>",
		.text = text,
		.len = len,
		.base_dir = base_dir,
		.errbuf = errbuf,
		.errlen = errlen,
		.idx = SIZE_MAX,
		.item = SIZE_MAX,
	};
	json_t *partners = NULL;
	int r;

	if (!yaml_parser_initialize(&c.parser)) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s: out of memory", c.fname);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&c.parser, (const unsigned char *)text, len);
	r = parse_stream(&c, &partners);
	yaml_event_delete(&c.ev);
	yaml_parser_delete(&c.parser);
	if (r < 0)
		return r;
	*ret_partners = partners;
	return 0;
}

int tablefile_read(const char *path, json_t **ret_partners, char *errbuf, size_t errlen)
{
	const char *slash;
	char *text = NULL, *dir = NULL;
	size_t len = 0;
	int r;

	if (strcmp(path, "-") == 0) {
		r = read_fd(STDIN_FILENO, TABLEFILE_MAX, &text, &len);
		path = "<stdin>";
	} else {
		r = read_path(path, TABLEFILE_MAX, &text, &len);
	}
	if (r < 0) {
		if (r == -EFBIG && errbuf && errlen)
			snprintf(errbuf, errlen,
				 "%s: larger than %u bytes, the table file limit (ca_file: keeps the certificates out of the file)",
				 path, TABLEFILE_MAX);
		else if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s: %s", path, strerror(-r));
		goto out;
	}
	slash = strcmp(path, "<stdin>") ? strrchr(path, '/') : NULL;
	if (slash) {
		/* "/t.yaml" lives in "/", not in "" (the current directory) */
		dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
		if (!dir) {
			r = -ENOMEM;
			if (errbuf && errlen)
				snprintf(errbuf, errlen, "%s: out of memory", path);
			goto out;
		}
	}
	r = tablefile_parse(text, len, path, dir, ret_partners, errbuf, errlen);
out:
	free(dir);
	free(text);
	return r;
}

/* ---- writing ---------------------------------------------------------- */

struct wctx {
	yaml_emitter_t em;
	char *buf;           /* the whole output, written to FILE only at the end */
	size_t len, cap;
	bool oom;
	char *errbuf;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int werr(struct wctx *w, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!w->errbuf || !w->errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(w->errbuf, w->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int buf_put(struct wctx *w, const void *data, size_t n)
{
	if (n > SIZE_MAX - w->len || mm_grow((void **)&w->buf, &w->cap, w->len + n, 1) < 0) {
		w->oom = true;
		return -ENOMEM;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
	return 0;
}

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
	return buf_put(data, buffer, size) == 0;
}

/* yaml_emitter_emit owns ev from here on, whether it succeeds or not. */
static int emit(struct wctx *w, yaml_event_t *ev)
{
	if (yaml_emitter_emit(&w->em, ev))
		return 0;
	if (w->oom || w->em.error == YAML_MEMORY_ERROR)
		return werr(w, -ENOMEM, "out of memory");
	return werr(w, -EINVAL, "YAML emitter: %s",
		    w->em.problem ? w->em.problem : "unknown error");
}

static int emit_scalar(struct wctx *w, const char *s, size_t len, yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (len > INT_MAX)
		return werr(w, -EINVAL, "string too long");
	/* both implicit flags: whichever style the emitter settles on, it
	 * needs no tag, so none is ever written */
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)len,
					  1, 1, style))
		return werr(w, -ENOMEM, "out of memory");
	return emit(w, &ev);
}

static int emit_str(struct wctx *w, const char *s)
{
	return emit_scalar(w, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
}

static int emit_collection(struct wctx *w, yaml_event_type_t type)
{
	yaml_event_t ev;
	int ok;

	switch (type) {
	case YAML_MAPPING_START_EVENT:
		ok = yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							 YAML_BLOCK_MAPPING_STYLE);
		break;
	case YAML_MAPPING_END_EVENT:
		ok = yaml_mapping_end_event_initialize(&ev);
		break;
	case YAML_SEQUENCE_START_EVENT:
		/* the emitter writes an empty one as [] by itself */
		ok = yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							  YAML_BLOCK_SEQUENCE_STYLE);
		break;
	default:
		ok = yaml_sequence_end_event_initialize(&ev);
		break;
	}
	if (!ok)
		return werr(w, -ENOMEM, "out of memory");
	return emit(w, &ev);
}

static bool is_alnum(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Plain only when no YAML reader could take the text for anything but a
 * string: names, IPv4 prefixes, enum words.  This is stricter than what
 * our own schema-aware parser needs, so that other tools (yq, PyYAML) read
 * the export the same way. */
static bool plain_safe(const char *s, size_t len)
{
	static const char *const special[] = {
		"y", "n", "yes", "no", "true", "false", "on", "off", "null",
	};
	bool numeric = true;
	size_t dots = 0;

	if (len == 0 || !is_alnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!is_alnum(ch) && ch != '.' && ch != '_' && ch != '/' && ch != '-')
			return false;
		if (ch == '.')
			dots++;
		if (!(ch >= '0' && ch <= '9') && !strchr("._eE+-", ch))
			numeric = false;
	}
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (strcasecmp(s, special[i]) == 0)
			return false;
	/* ints, floats, dates (2001-12-14); a dotted quad is not a number */
	if (s[0] >= '0' && s[0] <= '9' && numeric && dots <= 1)
		return false;
	/* 0x1f, 0o17, 0b101 */
	if (s[0] == '0' && len > 1 && strchr("xXoObB", s[1]))
		return false;
	return true;
}

/* A literal block keeps a PEM readable; it holds only printable ASCII and
 * LF, since CR, tabs and Unicode line separators would not come back as
 * they went in.  The emitter itself still falls back to double quotes when
 * a line ends in blanks. */
static bool literal_ok(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch != '\n' && (ch < 0x20 || ch > 0x7e))
			return false;
	}
	return true;
}

static int get_string(struct wctx *w, const json_t *v, size_t idx, const char *member,
		      size_t item, const char **ret, size_t *ret_len)
{
	char path[96];
	size_t n;

	if (item == SIZE_MAX)
		snprintf(path, sizeof(path), "partners[%zu].%s", idx, member);
	else
		snprintf(path, sizeof(path), "partners[%zu].%s[%zu]", idx, member, item);
	if (!json_is_string(v))
		return werr(w, -EINVAL, "%s: expected a string", path);
	n = json_string_length(v);
	if (strlen(json_string_value(v)) != n)
		return werr(w, -EINVAL, "%s: contains a NUL character", path);
	*ret = json_string_value(v);
	*ret_len = n;
	return 0;
}

static int emit_member(struct wctx *w, const struct field *f, const json_t *v, size_t idx)
{
	const char *s = NULL;
	size_t n = 0;
	int r;

	switch (f->type) {
	case F_BOOL:
		if (!json_is_boolean(v))
			return werr(w, -EINVAL, "partners[%zu].%s: expected true or false", idx,
				    f->member);
		return emit_str(w, json_is_true(v) ? "true" : "false");
	case F_LIST:
		if (!json_is_array(v))
			return werr(w, -EINVAL, "partners[%zu].%s: expected an array", idx,
				    f->member);
		r = emit_collection(w, YAML_SEQUENCE_START_EVENT);
		for (size_t i = 0; r >= 0 && i < json_array_size(v); i++) {
			r = get_string(w, json_array_get(v, i), idx, f->member, i, &s, &n);
			if (r >= 0)
				r = emit_scalar(w, s, n, plain_safe(s, n) ? YAML_PLAIN_SCALAR_STYLE :
					       YAML_DOUBLE_QUOTED_SCALAR_STYLE);
		}
		if (r < 0)
			return r;
		return emit_collection(w, YAML_SEQUENCE_END_EVENT);
	case F_CA_PEM:
		if (!json_is_array(v))
			break;
		r = emit_collection(w, YAML_SEQUENCE_START_EVENT);
		for (size_t i = 0; r >= 0 && i < json_array_size(v); i++) {
			r = get_string(w, json_array_get(v, i), idx, f->member, i, &s, &n);
			if (r >= 0)
				r = emit_scalar(w, s, n, literal_ok(s, n) ? YAML_LITERAL_SCALAR_STYLE
									 : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
		}
		if (r < 0)
			return r;
		return emit_collection(w, YAML_SEQUENCE_END_EVENT);
	default:
		break;
	}
	{
		r = get_string(w, v, idx, f->member, SIZE_MAX, &s, &n);
		if (r < 0)
			return r;
		if (f == &fields[F_CA] && literal_ok(s, n))
			return emit_scalar(w, s, n, YAML_LITERAL_SCALAR_STYLE);
		return emit_scalar(w, s, n, plain_safe(s, n) ? YAML_PLAIN_SCALAR_STYLE :
				   YAML_DOUBLE_QUOTED_SCALAR_STYLE);
	}
}

struct sorted {
	const json_t *p;
	const char *domain;
	size_t idx;          /* in the input, for messages */
};

static int cmp_sorted(const void *a, const void *b)
{
	const struct sorted *x = a, *y = b;

	return strcmp(x->domain, y->domain);
}

static int emit_table(struct wctx *w, const struct sorted *v, size_t n)
{
	yaml_event_t ev;
	int r;

	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING))
		return werr(w, -ENOMEM, "out of memory");
	r = emit(w, &ev);
	if (r < 0)
		return r;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1))
		return werr(w, -ENOMEM, "out of memory");
	r = emit(w, &ev);
	if (r >= 0)
		r = emit_collection(w, YAML_MAPPING_START_EVENT);
	if (r >= 0)
		r = emit_str(w, "partners");
	if (r >= 0)
		r = emit_collection(w, YAML_SEQUENCE_START_EVENT);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		r = emit_collection(w, YAML_MAPPING_START_EVENT);
		for (size_t f = 0; r >= 0 && f < N_WRITTEN; f++) {
			const json_t *m = json_object_get(v[i].p, fields[f].member);

			/* Defaults are left out: a table that uses neither CRLs nor
			 * another revocation mode exports as it did before them. */
			if (!m || (f == F_CRLS && json_is_array(m) && json_array_size(m) == 0) ||
			    (f == F_REVOCATION && json_is_string(m) &&
			     strcmp(json_string_value(m), "ifuri") == 0))
				continue;
			r = emit_str(w, fields[f].key);
			if (r >= 0)
				r = emit_member(w, &fields[f], m, v[i].idx);
		}
		if (r >= 0)
			r = emit_collection(w, YAML_MAPPING_END_EVENT);
	}
	if (r >= 0)
		r = emit_collection(w, YAML_SEQUENCE_END_EVENT);
	if (r >= 0)
		r = emit_collection(w, YAML_MAPPING_END_EVENT);
	if (r < 0)
		return r;
	if (!yaml_document_end_event_initialize(&ev, 1))
		return werr(w, -ENOMEM, "out of memory");
	r = emit(w, &ev);
	if (r < 0)
		return r;
	if (!yaml_stream_end_event_initialize(&ev))
		return werr(w, -ENOMEM, "out of memory");
	return emit(w, &ev);
}

int tablefile_write(FILE *out, const json_t *partners, char *errbuf, size_t errlen)
{
	struct wctx w = { .errbuf = errbuf, .errlen = errlen };
	struct sorted *v = NULL;
	bool em_init = false;
	size_t n = 0;
	int r;

	if (!json_is_array(partners))
		return werr(&w, -EINVAL, "partners: expected an array");
	n = json_array_size(partners);
	if (n) {
		v = calloc(n, sizeof(*v));
		if (!v)
			return werr(&w, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *p = json_array_get(partners, i);
		const json_t *d = json_object_get(p, "domain");

		if (!json_is_object(p)) {
			r = werr(&w, -EINVAL, "partners[%zu]: expected an object", i);
			goto out;
		}
		if (!json_is_string(d)) {
			r = werr(&w, -EINVAL, "partners[%zu].domain: expected a string", i);
			goto out;
		}
		v[i] = (struct sorted){ .p = p, .domain = json_string_value(d), .idx = i };
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_sorted);
	/* two partners with one domain would make the order depend on the
	 * input, and the daemon refuses such a table anyway */
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i - 1].domain, v[i].domain) == 0) {
			r = werr(&w, -EINVAL, "partners[%zu].domain: duplicate %s (also partners[%zu])",
				 v[i].idx, v[i].domain, v[i - 1].idx);
			goto out;
		}
	}

	r = buf_put(&w, EXPORT_HEADER, strlen(EXPORT_HEADER));
	if (r < 0) {
		r = werr(&w, r, "out of memory");
		goto out;
	}
	if (!yaml_emitter_initialize(&w.em)) {
		r = werr(&w, -ENOMEM, "out of memory");
		goto out;
	}
	em_init = true;
	yaml_emitter_set_output(&w.em, write_handler, &w);
	yaml_emitter_set_unicode(&w.em, 1);
	/* -1: never fold long scalars over several lines */
	yaml_emitter_set_width(&w.em, -1);
	yaml_emitter_set_indent(&w.em, 2);
	r = emit_table(&w, v, n);
	if (r < 0)
		goto out;

	errno = 0;
	if (fwrite(w.buf, 1, w.len, out) != w.len || fflush(out) != 0) {
		r = errno ? -errno : -EIO;
		werr(&w, r, "write: %s", strerror(-r));
		goto out;
	}
	r = 0;
out:
	if (em_init)
		yaml_emitter_delete(&w.em);
	free(w.buf);
	free(v);
	return r;
}
