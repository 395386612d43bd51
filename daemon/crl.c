#include "crl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/jsonfmt.h"

/* One byte past what charon takes, to tell "too big" from "just fits". */
#define CRL_READ_MAX (65535 + 1)

/* The field stays the field (crls[i]); the file goes into the message. */
static void path_in_msg(struct mm_err *err, const char *path)
{
	char msg[sizeof(err->msg)];

	snprintf(msg, sizeof(msg), "%.200s: %.300s", path, err->msg);
	memcpy(err->msg, msg, sizeof(msg));
}

int crl_file_read(const char *path, const char *field, void **ret_data, size_t *ret_len,
		  struct mm_crl_info *ret_info, struct stat *ret_st, struct mm_err *err)
{
	struct mm_crl_info info;
	struct stat st;
	unsigned char *buf = NULL;
	size_t len = 0;
	ssize_t k;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		mm_err_set(err, MM_ERR_INVALID, field, "%s: %s%s", path, strerror(-r),
			   r == -ENOENT ? " (put the CRL file in place first)" : "");
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		mm_err_set(err, MM_ERR_INVALID, field, "%s: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;
		mm_err_set(err, MM_ERR_INVALID, field, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_size >= CRL_READ_MAX) {
		r = -EFBIG;
		mm_err_set(err, MM_ERR_INVALID, field,
			   "%s is %lld bytes, larger than %d bytes: charon takes no more over "
			   "VICI (convert it to DER, or let charon fetch it from the "
			   "certificates' CRL URI)", path, (long long)st.st_size, CRL_READ_MAX - 1);
		goto out;
	}
	buf = malloc(CRL_READ_MAX);
	if (!buf) {
		r = mm_err_set(err, MM_ERR_INTERNAL, field, "out of memory");
		goto out;
	}
	while (len < CRL_READ_MAX && (k = read(fd, buf + len, CRL_READ_MAX - len)) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			mm_err_set(err, MM_ERR_INVALID, field, "%s: %s", path, strerror(-r));
			goto out;
		}
		len += (size_t)k;
	}
	r = mm_crl_check(buf, len, &info, field, err);
	if (r < 0) {
		path_in_msg(err, path);
		goto out;
	}
	if (ret_data) {
		*ret_data = buf;
		buf = NULL;
	}
	if (ret_len)
		*ret_len = len;
	if (ret_info)
		*ret_info = info;
	if (ret_st)
		*ret_st = st;
out:
	free(buf);
	close(fd);
	return r;
}

static bool path_listed(const struct mm_partner *p, const char *path)
{
	for (size_t i = 0; p && i < p->n_crls; i++)
		if (strcmp(p->crls[i], path) == 0)
			return true;
	return false;
}

static bool same_cas(const struct mm_partner *a, const struct mm_partner *b)
{
	if (!a || !b || a->n_cas != b->n_cas)
		return false;
	for (size_t i = 0; i < a->n_cas; i++)
		if (strcmp(a->cas[i].pem, b->cas[i].pem) != 0)
			return false;
	return true;
}

static size_t partner_ca_pems(const struct mm_partner *p, const char *pems[MM_PARTNER_CA_MAX])
{
	for (size_t i = 0; i < p->n_cas; i++)
		pems[i] = p->cas[i].pem;
	return p->n_cas;
}

int crl_verify_for(const void *data, size_t len, const struct mm_partner *p, const char *field,
		   struct mm_err *err)
{
	const char *pems[MM_PARTNER_CA_MAX];

	return mm_crl_issued_by(data, len, pems, partner_ca_pems(p, pems), field, err);
}

int crl_check_changes(const struct mm_change *changes, size_t n, time_t now, struct mm_err *err)
{
	struct mm_crl_info info;
	char field[32];
	void *data;
	size_t len;
	int r;

	for (size_t i = 0; i < n; i++) {
		const struct mm_partner *a = changes[i].after, *b = changes[i].before;
		/* New CAs judge every CRL the partner lists, old paths too. */
		bool all = !same_cas(a, b);

		for (size_t k = 0; a && k < a->n_crls; k++) {
			if (!all && path_listed(b, a->crls[k]))
				continue;
			snprintf(field, sizeof(field), "crls[%zu]", k);
			data = NULL;
			r = crl_file_read(a->crls[k], field, &data, &len, &info, NULL, err);
			if (r >= 0)
				r = crl_verify_for(data, len, a, field, err);
			if (r >= 0)
				r = mm_crl_current(&info, now, field, err);
			free(data);
			if (r < 0) {
				/* crl_file_read's messages start with the path already. */
				if (strncmp(err->msg, a->crls[k], strlen(a->crls[k])) != 0)
					path_in_msg(err, a->crls[k]);
				mm_err_prefix(err, a->domain);
				return r;
			}
		}
	}
	return 0;
}

static void file_free(struct crl_file *f)
{
	free(f->path);
	free(f->data);
}

struct crl_file *crl_set_find(const struct crl_set *s, const char *path)
{
	for (size_t i = 0; path && i < s->n; i++)
		if (strcmp(s->f[i].path, path) == 0)
			return &s->f[i];
	return NULL;
}

int crl_set_sync(struct crl_set *s, const struct mm_table *t)
{
	struct crl_file *f = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < s->n; i++)
		s->f[i].used = false;
	for (size_t i = 0; t && i < t->n; i++)
		for (size_t k = 0; k < t->partners[i]->n_crls; k++) {
			struct crl_file *old = crl_set_find(s, t->partners[i]->crls[k]);

			if (old)
				old->used = true;
			else
				cap++;
		}
	for (size_t i = 0; i < s->n; i++)
		cap += s->f[i].used;
	f = calloc(cap ? cap : 1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		if (s->f[i].used)
			f[n++] = s->f[i];
	for (size_t i = 0; t && i < t->n; i++)
		for (size_t k = 0; k < t->partners[i]->n_crls; k++) {
			const char *path = t->partners[i]->crls[k];
			bool known = false;

			for (size_t j = 0; j < n && !known; j++)
				known = strcmp(f[j].path, path) == 0;
			if (known)
				continue;
			f[n].path = strdup(path);
			if (!f[n].path) {
				for (size_t j = 0; j < n; j++)
					if (!crl_set_find(s, f[j].path))
						file_free(&f[j]);
				free(f);
				return -ENOMEM;
			}
			f[n].reauth_first = s->started;
			f[n++].state = CRL_UNREAD;
		}
	for (size_t i = 0; i < s->n; i++)
		if (!s->f[i].used)
			file_free(&s->f[i]);
	free(s->f);
	s->f = f;
	s->n = n;
	return 0;
}

void crl_set_clear(struct crl_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		file_free(&s->f[i]);
	free(s->f);
	s->f = NULL;
	s->n = 0;
}

static bool stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool crl_file_poll(struct crl_file *f, bool force)
{
	enum crl_state was = f->state;
	struct mm_err err = { 0 };
	struct mm_crl_info info;
	struct stat st;
	void *data = NULL;
	size_t len = 0;
	int r;

	if (stat(f->path, &st) < 0) {
		r = errno;
		f->have_st = false;
		f->state = r == ENOENT ? CRL_MISSING : CRL_BAD;
		snprintf(f->error, sizeof(f->error), "%s", strerror(r));
		return f->state != was;
	}
	if (!force && f->have_st && stat_same(&st, &f->st) && f->state != CRL_UNREAD)
		return false;
	r = crl_file_read(f->path, "crl", &data, &len, &info, &st, &err);
	f->st = st;
	f->have_st = true;
	if (r < 0) {
		f->state = r == -ENOENT ? CRL_MISSING : CRL_BAD;
		snprintf(f->error, sizeof(f->error), "%s", err.msg);
		return true;
	}
	f->state = CRL_OK;
	f->error[0] = '\0';
	if (f->have_info && strcmp(info.sha256, f->info.sha256) == 0) {
		free(data);
		return was != CRL_OK;
	}
	/* Only a serial revoked anew makes up tunnels re-authenticate: CAs
	 * re-issue CRLs hourly or daily with the same entries. */
	if (f->have_info ? mm_crl_revokes_more(f->data, f->len, data, len) != 0
			 : f->reauth_first && info.n_revoked > 0)
		f->newly_revoked = true;
	free(f->data);
	f->data = data;
	f->len = len;
	f->info = info;
	f->have_info = true;
	f->changed = true;
	return true;
}

bool crl_file_age(struct crl_file *f, time_t now)
{
	bool past = f->have_info && f->info.next_update && (int64_t)now > f->info.next_update;

	if (f->state == CRL_OK && past) {
		f->state = CRL_STALE;
		return true;
	}
	if (f->state == CRL_STALE && !past) {
		f->state = CRL_OK;
		return true;
	}
	return false;
}

size_t crl_set_poll(struct crl_set *s, bool force)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += crl_file_poll(&s->f[i], force);
	return n;
}

json_t *crl_file_json(const struct crl_file *f, const char *path, const struct mm_partner *p)
{
	static const char *const states[] = {
		[CRL_UNREAD] = "unread", [CRL_OK] = "ok", [CRL_MISSING] = "missing",
		[CRL_BAD] = "bad", [CRL_STALE] = "stale",
	};
	struct mm_err err = { 0 };
	char stale[600] = "";
	const char *state, *error;
	bool loaded;
	json_t *o;

	if (!f)
		return json_pack("{s:s, s:s, s:s, s:b}", "path", path, "state", "unread", "error",
				 "not read yet", "loaded", 0);
	state = states[f->state];
	error = f->error[0] ? f->error : f->charon_error[0] ? f->charon_error : NULL;
	/* Judged for this partner: a file several partners list may be one
	 * partner's CA's CRL and not another's. */
	if (p && f->have_info && f->state != CRL_BAD &&
	    crl_verify_for(f->data, f->len, p, "", &err) < 0) {
		state = "bad";
		error = err.msg;
	} else if (f->state == CRL_STALE) {
		mm_crl_current(&f->info, (time_t)f->info.next_update + 1, "", &err);
		snprintf(stale, sizeof(stale), "%s", err.msg);
		error = stale;
	}
	loaded = f->have_info && strcmp(f->charon_sha256, f->info.sha256) == 0;
	o = json_pack("{s:s, s:s, s:o, s:b}", "path", f->path, "state", state, "error",
		      error ? json_string(error) : json_null(), "loaded", loaded);
	if (o && f->have_info) {
		json_object_set_new(o, "sha256", json_string(f->info.sha256));
		json_object_set_new(o, "issuer", json_string(f->info.issuer));
		json_object_set_new(o, "this_update", mm_json_time(f->info.this_update));
		json_object_set_new(o, "next_update", f->info.next_update
							 ? mm_json_time(f->info.next_update)
							 : json_null());
		json_object_set_new(o, "revoked", json_integer(f->info.n_revoked));
	}
	if (o)
		json_object_set_new(o, "loaded_at", f->loaded_at ? mm_json_time(f->loaded_at)
								 : json_null());
	return o;
}
