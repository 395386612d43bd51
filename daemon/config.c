#include "config.h"
#include "policy/store.h"
#include "backoff.h"
#include "expiry.h"
#include "spd_desired.h"

#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mm_config_defaults(struct mm_config *c)
{
	*c = (struct mm_config){
		.admin_gid = (gid_t)-1,
		.query_gid = (gid_t)-1,
		.reqid_min = MM_SPD_REQID_MIN_DEFAULT,
		.reqid_max = MM_SPD_REQID_MAX_DEFAULT,
		.spd_enabled = true,
		.spd_prio_base = MM_SPD_PRIO_BASE_DEFAULT,
		.spd_tag = MM_SPD_TAG_DEFAULT,
		.spd_verify_interval = 60,
		.spd_shrink_limit = 50,
		.spd_repair_burst = MM_BACKOFF_BURST_DEFAULT,
		.spd_repair_window = MM_BACKOFF_WINDOW_DEFAULT,
		.spd_repair_backoff_max = MM_BACKOFF_MAX_DEFAULT,
		.ike_dpd_delay = 30,
		.log_events_keep = MM_CONFIG_EVENTS_KEEP_DEFAULT,
		.query_max_clients = 1024,
		.expiry_warning_days = MM_EXPIRY_WINDOW_DEFAULT,
		.route_table = MM_CONFIG_ROUTE_TABLE_DEFAULT,
		.route_protocol = MM_CONFIG_ROUTE_PROTOCOL_DEFAULT,
		.route_rule_priority = MM_CONFIG_ROUTE_RULE_PRIORITY_DEFAULT,
	};
	snprintf(c->ike_vici_socket, sizeof(c->ike_vici_socket), "/var/run/charon.vici");
	snprintf(c->store, sizeof(c->store), "/var/lib/mmtrust/mmtrust.db");
	snprintf(c->admin_socket, sizeof(c->admin_socket), "/run/mmtrust/admin.sock");
	snprintf(c->query_socket, sizeof(c->query_socket), "/run/mmtrust/query.sock");
}

#define MAX_SEEN 64

struct parse_ctx {
	struct mm_config *c;
	unsigned kinds;         /* the cscf key being read: the kinds it serves */
	struct mm_err *err;
	FILE *f;
	int line;               /* the line the reader returned last */
	bool continuation;      /* it began with blanks: inih's multi-line value */
	int too_long;           /* the first line longer than inih's buffer, or 0 */
	int max_len;            /* the longest line the buffer holds */
	char field[160];
	struct { char field[160]; int line; } seen[MAX_SEEN];
	size_t n_seen;
};

/* inih's reader, counting lines so that errors can name them.  A line
 * longer than inih's buffer ends the reading: fgets would hand its tail
 * over as a line of its own, and the tail of a comment would be taken as a
 * setting (";...x" + "enabled = no"). */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *x = stream;
	char *r = fgets(str, num, x->f);
	int next;

	if (r) {
		x->line++;
		x->continuation = str[0] == ' ' || str[0] == '\t';
		if (!strchr(str, '\n') && (next = getc(x->f)) != EOF) {
			ungetc(next, x->f);
			x->too_long = x->line;
			x->max_len = num - 2;
			return NULL;
		}
	}
	return r;
}

/* A key given twice is an error naming both lines: taking the later value
 * silently hides a mistake (two cscf lines, one meant to be the other). */
static int check_once(struct parse_ctx *x)
{
	if (x->continuation)
		return mm_err_set(x->err, MM_ERR_INVALID, x->field,
				  "line %d: a value continued on an indented line; write the whole "
				  "value (a list separated by commas) on one line",
				  x->line);
	for (size_t i = 0; i < x->n_seen; i++)
		if (!strcmp(x->seen[i].field, x->field))
			return mm_err_set(x->err, MM_ERR_INVALID, x->field,
					  "set twice, on lines %d and %d; give it once",
					  x->seen[i].line, x->line);
	if (x->n_seen < MAX_SEEN) {
		snprintf(x->seen[x->n_seen].field, sizeof(x->seen[0].field), "%s", x->field);
		x->seen[x->n_seen++].line = x->line;
	}
	return 0;
}

static int set_string(char *dst, size_t size, const char *value, struct parse_ctx *x)
{
	if (strlen(value) >= size)
		return mm_err_set(x->err, MM_ERR_INVALID, x->field,
				  "value is longer than %zu characters", size - 1);
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

/* A path, or a postgresql:// URI without a password (mm_store_check_spec). */
static int set_store(char *dst, size_t size, const char *value, struct parse_ctx *x)
{
	struct mm_err e = { 0 };

	if (mm_store_check_spec(value, &e) < 0)
		return mm_err_set(x->err, e.code, x->field, "%s", e.msg);
	return set_string(dst, size, value, x);
}

/* A name for the audit trail: 1-63 printable characters, no space. */
static int set_host_name(char *dst, size_t size, const char *value, struct parse_ctx *x)
{
	for (const char *c = value; *c; c++)
		if (*c <= ' ' || *c == 0x7f)
			return mm_err_set(x->err, MM_ERR_INVALID, x->field,
					  "'%s' holds a space or a control character; a host "
					  "name is one word", value);
	return set_string(dst, size, value, x);
}

static int set_u32(uint32_t *dst, const char *value, struct parse_ctx *x)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(value, &end, 0);
	if (!*value || *end || errno || v > UINT32_MAX || value[0] == '-')
		return mm_err_set(x->err, MM_ERR_INVALID, x->field,
				  "'%s' is not a number between 0 and 4294967295", value);
	*dst = v;
	return 0;
}

static int set_bool(bool *dst, const char *value, struct parse_ctx *x)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };

	for (int i = 0; yes[i]; i++)
		if (strcasecmp(value, yes[i]) == 0) {
			*dst = true;
			return 0;
		}
	for (int i = 0; no[i]; i++)
		if (strcasecmp(value, no[i]) == 0) {
			*dst = false;
			return 0;
		}
	return mm_err_set(x->err, MM_ERR_INVALID, x->field, "'%s' is not yes or no", value);
}

/* Comma- or space-separated list; each item handed to fn. */
static int each_item(const char *value, struct parse_ctx *x,
		     int (*fn)(const char *item, struct parse_ctx *x))
{
	char *copy = strdup(value), *save = NULL, *tok;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", \t", &save); tok && r == 0; tok = strtok_r(NULL, ", \t", &save))
		r = fn(tok, x);
	free(copy);
	return r;
}

/* One [local] cscf* item, serving the kinds x->kinds (cscf: both). */
static int add_cscf(const char *item, struct parse_ctx *x)
{
	struct mm_config *c = x->c;
	struct mm_prefix p;
	int r;

	if (c->n_cscf >= MM_CONFIG_MAX_LOCAL)
		return mm_err_set(x->err, MM_ERR_INVALID, x->field,
				  "more than %d prefixes in cscf, cscf_ims and cscf_non_ims together",
				  MM_CONFIG_MAX_LOCAL);
	r = mm_prefix_parse(item, &p, x->field, x->err);
	if (r < 0)
		return r;
	/* An address of ours serves one set of kinds: where prefixes of two
	 * keys overlap, which peers the address is for would depend on which
	 * prefix a lookup met first. */
	for (size_t i = 0; i < c->n_cscf; i++)
		if (c->cscf_kinds[i] != x->kinds && mm_prefix_overlaps(&c->cscf[i], &p)) {
			char a[MM_ADDR_STRLEN], b[MM_ADDR_STRLEN];

			return mm_err_set(x->err, MM_ERR_INVALID, x->field,
					  "%s overlaps %s (%s); each CSCF address faces one set of "
					  "peers: give it under one key only",
					  mm_prefix_str(&p, b), mm_prefix_str(&c->cscf[i], a),
					  mm_kinds_setting(c->cscf_kinds[i]));
		}
	c->cscf_kinds[c->n_cscf] = x->kinds;
	c->cscf[c->n_cscf++] = p;
	return 0;
}

static int add_tunnel(const char *item, struct parse_ctx *x)
{
	struct mm_addr a;
	int r = mm_addr_parse(item, &a, x->field, x->err);

	if (r < 0)
		return r;
	for (size_t i = 0; i < x->c->n_tunnel; i++)
		if (x->c->tunnel[i].family == a.family)
			return mm_err_set(x->err, MM_ERR_INVALID, x->field,
					  "at most one IPv4 and one IPv6 tunnel address");
	x->c->tunnel[x->c->n_tunnel++] = a;
	return 0;
}

static int set_group(char *name, size_t size, gid_t *gid, const char *value,
		     struct parse_ctx *x)
{
	struct group *g;
	int r = set_string(name, size, value, x);

	if (r < 0 || !*value) {
		*gid = (gid_t)-1;
		return r;
	}
	g = getgrnam(value);
	if (!g)
		return mm_err_set(x->err, MM_ERR_INVALID, x->field, "no group named '%s'", value);
	*gid = g->gr_gid;
	return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *x = user;
	struct mm_config *c = x->c;
	int r;

	snprintf(x->field, sizeof(x->field), "%.60s.%.60s", section, name);
	if (check_once(x) < 0)
		return 0;
#define KEY(s, k) (strcmp(section, s) == 0 && strcmp(name, k) == 0)
	if (KEY("daemon", "store"))
		r = set_store(c->store, sizeof(c->store), value, x);
	else if (KEY("daemon", "store_password_file"))
		r = set_string(c->store_password_file, sizeof(c->store_password_file), value, x);
	else if (KEY("daemon", "host_name"))
		r = set_host_name(c->host_name, sizeof(c->host_name), value, x);
	else if (KEY("daemon", "admin_socket"))
		r = set_string(c->admin_socket, sizeof(c->admin_socket), value, x);
	else if (KEY("daemon", "admin_group"))
		r = set_group(c->admin_group, sizeof(c->admin_group), &c->admin_gid, value, x);
	else if (KEY("daemon", "query_socket"))
		r = set_string(c->query_socket, sizeof(c->query_socket), value, x);
	else if (KEY("daemon", "query_snapshot")) {
		r = set_string(c->query_snapshot, sizeof(c->query_snapshot) - 6, value, x);
		c->query_snapshot_set = true;
	} else if (KEY("daemon", "expiry_warning_days"))
		r = set_u32(&c->expiry_warning_days, value, x);
	else if (KEY("daemon", "query_group"))
		r = set_group(c->query_group, sizeof(c->query_group), &c->query_gid, value, x);
	else if (KEY("reqid", "min"))
		r = set_u32(&c->reqid_min, value, x);
	else if (KEY("reqid", "max"))
		r = set_u32(&c->reqid_max, value, x);
	else if (KEY("local", "cscf") || KEY("local", "cscf_ims") || KEY("local", "cscf_non_ims")) {
		x->kinds = !strcmp(name, "cscf") ? MM_KINDS_ALL :
			   !strcmp(name, "cscf_ims") ? MM_KIND_BIT(MM_KIND_IMS) :
			   MM_KIND_BIT(MM_KIND_NON_IMS);
		r = each_item(value, x, add_cscf);
	}
	else if (KEY("local", "tunnel"))
		r = each_item(value, x, add_tunnel);
	else if (KEY("local", "forward"))
		r = set_bool(&c->forward, value, x);
	else if (KEY("local", "routes"))
		r = set_bool(&c->routes, value, x);
	else if (KEY("local", "route_table"))
		r = set_u32(&c->route_table, value, x);
	else if (KEY("local", "route_protocol"))
		r = set_u32(&c->route_protocol, value, x);
	else if (KEY("local", "route_rule_priority"))
		r = set_u32(&c->route_rule_priority, value, x);
	else if (KEY("spd", "enabled"))
		r = set_bool(&c->spd_enabled, value, x);
	else if (KEY("spd", "priority_base"))
		r = set_u32(&c->spd_prio_base, value, x);
	else if (KEY("spd", "tag"))
		r = set_u32(&c->spd_tag, value, x);
	else if (KEY("spd", "verify_interval"))
		r = set_u32(&c->spd_verify_interval, value, x);
	else if (KEY("spd", "shrink_limit"))
		r = set_u32(&c->spd_shrink_limit, value, x);
	else if (KEY("spd", "repair_burst"))
		r = set_u32(&c->spd_repair_burst, value, x);
	else if (KEY("spd", "repair_window"))
		r = set_u32(&c->spd_repair_window, value, x);
	else if (KEY("spd", "repair_backoff_max"))
		r = set_u32(&c->spd_repair_backoff_max, value, x);
	else if (KEY("query", "untrusted")) {
		r = 0;
		if (!strcmp(value, "strip-always"))
			c->query_untrusted = 0;
		else if (!strcmp(value, "strip-if-privacy-id"))
			c->query_untrusted = 1;
		else
			r = mm_err_set(x->err, MM_ERR_INVALID, x->field,
				       "'%s' is not strip-always or strip-if-privacy-id", value);
	} else if (KEY("query", "max_clients"))
		r = set_u32(&c->query_max_clients, value, x);
	else if (KEY("query", "require_dst"))
		r = set_bool(&c->query_require_dst, value, x);
	else if (KEY("ike", "enabled"))
		r = set_bool(&c->ike_enabled, value, x);
	else if (KEY("ike", "vici_socket"))
		r = set_string(c->ike_vici_socket, sizeof(c->ike_vici_socket), value, x);
	else if (KEY("ike", "certificate"))
		r = set_string(c->ike_certificate, sizeof(c->ike_certificate), value, x);
	else if (KEY("ike", "private_key"))
		r = set_string(c->ike_private_key, sizeof(c->ike_private_key), value, x);
	else if (KEY("ike", "local_id"))
		r = set_string(c->ike_local_id, sizeof(c->ike_local_id), value, x);
	else if (KEY("ike", "dpd_delay"))
		r = set_u32(&c->ike_dpd_delay, value, x);
	else if (KEY("log", "events_keep"))
		r = set_u32(&c->log_events_keep, value, x);
	else if (KEY("metrics", "listen")) {
		r = mm_config_metrics_listen(value, &c->metrics_addr, &c->metrics_port, x->field,
					     x->err);
		if (r == 0)
			r = set_string(c->metrics_listen, sizeof(c->metrics_listen), value, x);
	}
	else
		r = mm_err_set(x->err, MM_ERR_INVALID, x->field, "unknown setting");
#undef KEY
	return r == 0;
}

int mm_config_metrics_listen(const char *value, struct mm_addr *ret_addr, uint16_t *ret_port,
			     const char *field, struct mm_err *err)
{
	char host[64];
	const char *colon, *h = value;
	size_t hl;
	unsigned long port;
	char *end;
	struct mm_addr a;

	*ret_port = 0;
	memset(ret_addr, 0, sizeof(*ret_addr));
	if (!*value)
		return 0;
	if (*value == '[') {
		const char *close = strchr(value, ']');

		if (!close || close[1] != ':')
			goto bad;
		h = value + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(value, ':');
		if (!colon || strchr(value, ':') != colon)
			goto bad;
		hl = (size_t)(colon - value);
	}
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port < 1 || port > 65535 || colon[1] == '+' ||
	    colon[1] == '-' || colon[1] == ' ')
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s': the port must be a number from 1 to 65535", value);
	if (mm_addr_parse(host, &a, field, NULL) < 0 || (*value == '[') != (a.family == AF_INET6))
		goto bad;
	if (a.family == AF_INET ? a.bytes[0] != 127 :
	    memcmp(a.bytes, (const uint8_t[16]){ [15] = 1 }, 16) != 0)
		return mm_err_set(err, MM_ERR_INVALID, field,
				  "'%s' is not a loopback address: the metrics are served on "
				  "127.0.0.0/8 or [::1] only", value);
	*ret_addr = a;
	*ret_port = (uint16_t)port;
	return 0;
bad:
	return mm_err_set(err, MM_ERR_INVALID, field,
			  "'%s' is not ADDRESS:PORT (127.0.0.1:9477 or [::1]:9477)", value);
}

void mm_config_snapshot_path(const struct mm_config *c, char out[108])
{
	size_t n = strlen(c->query_socket);

	if (c->query_snapshot_set || !n) {
		snprintf(out, 108, "%s", c->query_snapshot_set ? c->query_snapshot : "");
		return;
	}
	if (n > 5 && !strcmp(c->query_socket + n - 5, ".sock"))
		n -= 5;
	/* ".table" is appended for the second file: room is left for it;
	 * a path that would not fit gives none rather than a cut one. */
	if (n + 5 + 6 >= 108)
		out[0] = '\0';
	else
		snprintf(out, 108, "%.*s.snap", (int)n, c->query_socket);
}

int mm_config_load(const char *path, struct mm_config *ret, struct mm_err *err)
{
	struct mm_config c;
	struct parse_ctx x = { .c = &c, .err = err };
	FILE *f;
	int r;

	mm_config_defaults(&c);
	snprintf(c.path, sizeof(c.path), "%s", path);
	f = fopen(path, "re");
	if (!f)
		return mm_err_set(err, MM_ERR_INVALID, path, "cannot read: %s", strerror(errno));
	x.f = f;
	r = ini_parse_stream(read_line, &x, handler, &x);
	fclose(f);
	if (r > 0) {
		/* inih returns the first refused line; a syntax error calls no handler. */
		char where[sizeof(err->field)];

		if (!err || err->code == MM_ERR_NONE)
			return mm_err_set(err, MM_ERR_INVALID, path, "line %d: syntax error", r);
		snprintf(where, sizeof(where), "%.80s:%d", path, r);
		mm_err_prefix(err, where);
		return -EINVAL;
	}
	if (r < 0)
		return mm_err_set(err, MM_ERR_INVALID, path, "cannot parse (error %d)", r);
	if (x.too_long)
		return mm_err_set(err, MM_ERR_INVALID, path,
				  "line %d: longer than %d characters", x.too_long, x.max_len);
	if (c.reqid_min == 0 || c.reqid_min > c.reqid_max)
		return mm_err_set(err, MM_ERR_INVALID, "reqid",
				  "%s: reqid range %u-%u must be non-empty and start above 0",
				  path, c.reqid_min, c.reqid_max);
	if (c.ike_enabled && (!c.ike_certificate[0] || !c.ike_private_key[0]))
		return mm_err_set(err, MM_ERR_INVALID, "ike.certificate",
				  "%s: [ike] enabled needs certificate and private_key", path);
	/* Without a tunnel address every SA charon installs would be judged
	 * "wrong-ends" (policy/sa.h), deleted and initiated again, forever. */
	if (c.ike_enabled && c.n_tunnel == 0)
		return mm_err_set(err, MM_ERR_INVALID, "local.tunnel",
				  "%s: [ike] enabled needs [local] tunnel (our IKE and ESP "
				  "endpoint address)", path);
	/* The checks the daemon would otherwise only meet at start (the SPD
	 * engine, the query socket): --check-config, start and reload share
	 * this one validation. */
	if ((uint64_t)c.spd_prio_base + MM_SPD_PRIO_SPAN - 1 > UINT32_MAX)
		return mm_err_set(err, MM_ERR_INVALID, "spd.priority_base",
				  "%s: the band %u..%u+256 wraps past 4294967295; at most %u", path,
				  c.spd_prio_base, c.spd_prio_base,
				  (unsigned)(UINT32_MAX - (MM_SPD_PRIO_SPAN - 1)));
	if (c.expiry_warning_days > MM_EXPIRY_WINDOW_MAX)
		return mm_err_set(err, MM_ERR_INVALID, "daemon.expiry_warning_days",
				  "%s: %u days is out of range; 0 to %u (0: no expiry warnings)",
				  path, c.expiry_warning_days, MM_EXPIRY_WINDOW_MAX);
	if (c.query_max_clients == 0)
		return mm_err_set(err, MM_ERR_INVALID, "query.max_clients",
				  "%s: 0 would refuse every CSCF; at least 1", path);
	if (c.spd_shrink_limit > 100)
		return mm_err_set(err, MM_ERR_INVALID, "spd.shrink_limit",
				  "%s: %u is not a share: 0 to 100 (percent; 100 turns the guard off)",
				  path, c.spd_shrink_limit);
	if (c.log_events_keep == 0)
		return mm_err_set(err, MM_ERR_INVALID, "log.events_keep",
				  "%s: 0 would keep no event history; at least 1 (rows)", path);
	if (c.spd_repair_window == 0)
		return mm_err_set(err, MM_ERR_INVALID, "spd.repair_window",
				  "%s: 0 would count no repairs; at least 1 (seconds)", path);
	if (c.spd_repair_backoff_max == 0 || c.spd_repair_backoff_max > MM_CONFIG_BACKOFF_MAX_LIMIT)
		return mm_err_set(err, MM_ERR_INVALID, "spd.repair_backoff_max",
				  "%s: %u s is out of range; 1 to %u seconds (a repair is never "
				  "given up)", path, c.spd_repair_backoff_max,
				  MM_CONFIG_BACKOFF_MAX_LIMIT);
	/* Tables 0 and 253-255 are the kernel's (unspec, default, main,
	 * local): routes of ours there would mix with everyone's. */
	if (c.route_table == 0 || (c.route_table >= 253 && c.route_table <= 255))
		return mm_err_set(err, MM_ERR_INVALID, "local.route_table",
				  "%s: table %u is the kernel's own (0, 253 default, 254 main, "
				  "255 local); pick a table of mmtrust's own", path, c.route_table);
	/* 0-4 are the kernel's route protocols (unspec, redirect, kernel,
	 * boot, static); above 255 does not fit rtm_protocol. */
	if (c.route_protocol < 5 || c.route_protocol > 255)
		return mm_err_set(err, MM_ERR_INVALID, "local.route_protocol",
				  "%s: %u is not a route protocol of our own: 5 to 255 (0-4 are the "
				  "kernel's)", path, c.route_protocol);
	if (c.route_rule_priority == 0)
		return mm_err_set(err, MM_ERR_INVALID, "local.route_rule_priority",
				  "%s: 0 is the priority of the kernel's 'lookup local' rule; "
				  "at least 1", path);
	if (c.spd_tag == 0)
		return mm_err_set(err, MM_ERR_INVALID, "spd.tag",
				  "%s: the tag must not be 0 (0 is every other program's policies)",
				  path);
	*ret = c;
	return 0;
}
