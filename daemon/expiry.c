#include "expiry.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crl.h"
#include "log.h"
#include "mmtrustd.h"
#include "policy/jsonfmt.h"

/* An item that was logged and has stayed in the window since. */
struct expiry_logged {
	enum mm_expiry_what what;
	char *partner;         /* "" for our certificate */
	char *id;              /* the CA's fingerprint, or the file's path */
	int64_t not_after;
	bool expired;
	bool seen;             /* scratch: met by the check running now */
};

/* The logged items, and an index of them by key (open addressing, slot
 * values are positions + 1, 0: empty): a CA many partners share may put
 * thousands of items in the window, each looked up at every check. */
struct expiry {
	sd_event_source *timer;
	struct expiry_logged *v;
	size_t n, cap;
	uint32_t *slot;
	size_t n_slots;        /* a power of two, at least twice cap; 0: none yet */
};

/* Our certificate as the IKE side holds it, parsed. */
struct own_cert {
	char subject[256];
	int64_t not_after;
};

static const char *const what_names[MM_EXPIRY__MAX] = {
	[MM_EXPIRY_PARTNER_CA] = "partner-ca",
	[MM_EXPIRY_PARTNER_CRL] = "partner-crl",
	[MM_EXPIRY_CERTIFICATE] = "certificate",
};

const char *mm_expiry_what_name(enum mm_expiry_what w)
{
	return w < MM_EXPIRY__MAX ? what_names[w] : "?";
}

static int own_cert_parse(const char *pem, size_t len, struct own_cert *ret)
{
	BIO *in = BIO_new_mem_buf(pem, (int)len), *name = NULL;
	X509 *x = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
	struct tm tm = { 0 };
	char *data = NULL;
	long n;
	int r = -EINVAL;

	if (!x || !ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		goto out;
	ret->not_after = timegm(&tm);
	ret->subject[0] = '\0';
	name = BIO_new(BIO_s_mem());
	/* RFC 2253 with escapes: printable ASCII whatever the certificate holds. */
	if (name && X509_NAME_print_ex(name, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_get_mem_data(name, &data)) > 0 && data)
		snprintf(ret->subject, sizeof(ret->subject), "%.*s", (int)n, data);
	r = 0;
out:
	X509_free(x);
	BIO_free(in);
	BIO_free(name);
	return r;
}

static uint64_t key_hash(enum mm_expiry_what what, const char *partner, const char *id)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)what;

	for (const char *s = partner; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;  /* no two (partner, id) splits alike */
	for (const char *s = id; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static const char *item_id(const struct mm_expiry_item *it)
{
	return it->sha256 ? it->sha256 : it->name;
}

/* The slot that holds the item's key, or the empty slot it would go in. */
static uint32_t *slot_of(struct expiry *e, enum mm_expiry_what what, const char *partner,
			 const char *id)
{
	size_t mask = e->n_slots - 1, i = key_hash(what, partner, id) & mask;

	for (;; i = (i + 1) & mask) {
		const struct expiry_logged *l;

		if (!e->slot[i])
			return &e->slot[i];
		l = &e->v[e->slot[i] - 1];
		if (l->what == what && !strcmp(l->partner, partner) && !strcmp(l->id, id))
			return &e->slot[i];
	}
}

/* The index made anew for e->v (after a sweep moved entries, or to grow
 * it for want entries).  -ENOMEM leaves the old one. */
static int index_build(struct expiry *e, size_t want)
{
	size_t n = 16;
	uint32_t *slot;

	while (n < 2 * want)
		n *= 2;
	slot = calloc(n, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	free(e->slot);
	e->slot = slot;
	e->n_slots = n;
	for (size_t i = 0; i < e->n; i++)
		*slot_of(e, e->v[i].what, e->v[i].partner, e->v[i].id) = (uint32_t)(i + 1);
	return 0;
}

static struct expiry_logged *logged_find(struct expiry *e, const struct mm_expiry_item *it)
{
	uint32_t *s;

	if (!e->n_slots)
		return NULL;
	s = slot_of(e, it->what, it->partner ? it->partner : "", item_id(it));
	return *s ? &e->v[*s - 1] : NULL;
}

static struct expiry_logged *logged_add(struct expiry *e, const struct mm_expiry_item *it)
{
	struct expiry_logged *l;

	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 16;
		struct expiry_logged *v = cap > UINT32_MAX - 1 ? NULL : realloc(e->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		e->v = v;
		e->cap = cap;
	}
	if (e->n_slots < 2 * e->cap && index_build(e, e->cap) < 0)
		return NULL;
	l = &e->v[e->n];
	*l = (struct expiry_logged){
		.what = it->what,
		.partner = strdup(it->partner ? it->partner : ""),
		.id = strdup(item_id(it)),
	};
	if (!l->partner || !l->id) {
		free(l->partner);
		free(l->id);
		return NULL;
	}
	*slot_of(e, l->what, l->partner, l->id) = (uint32_t)(e->n + 1);
	e->n++;
	return l;
}

/* A warning naming the item, its end and the days left. */
static void log_item(const struct mm_expiry_item *it, uint32_t window)
{
	char t[MM_TIME_STRLEN] = "?", when[48];
	bool ended = it->days_left < 0;
	const char *verb = ended ? "ended" : "ends";

	mm_time_str(it->not_after, t);
	if (ended)
		snprintf(when, sizeof(when), "EXPIRED");
	else if (it->days_left == 0)
		snprintf(when, sizeof(when), "within a day");
	else
		snprintf(when, sizeof(when), "in %" PRId64 " day%s", it->days_left,
			 it->days_left == 1 ? "" : "s");
	switch (it->what) {
	case MM_EXPIRY_PARTNER_CA:
		log_warn("expiry: partner %s: CA certificate %s (SHA-256 %s) %s %s, %s%s "
			 "([daemon] expiry_warning_days = %u)", it->partner, it->subject, it->sha256,
			 verb, t, when, ended ? ": the partner's certificates no longer verify" : "",
			 window);
		break;
	case MM_EXPIRY_PARTNER_CRL:
		log_warn("expiry: partner %s: CRL file %s: its nextUpdate %s %s, %s%s "
			 "([daemon] expiry_warning_days = %u)", it->partner, it->name,
			 ended ? "was" : "is", t, when,
			 ended ? ": stale, a new CRL is overdue"
			       : ": a re-issued CRL is overdue (is the fetch job running?)", window);
		break;
	default:
		log_warn("expiry: our [ike] certificate %s (%s) %s %s, %s%s "
			 "([daemon] expiry_warning_days = %u)", it->name, it->subject, verb, t, when,
			 ended ? ": partners refuse it, no tunnel can be set up" : "", window);
		break;
	}
}

/* The logging side of one item at a check. */
static void note_item(struct mmtrustd *d, const struct mm_expiry_item *it)
{
	struct expiry *e = d->expiry;
	struct expiry_logged *l = e ? logged_find(e, it) : NULL;
	enum mm_expiry_log what;

	if (!e)
		return;
	what = mm_expiry_transition(l != NULL, l ? l->not_after : 0, l ? l->expired : false, it);
	if (l && it->in_window)
		l->seen = true;
	if (what == MM_EXPIRY_LOG_NONE)
		return;
	log_item(it, d->cfg.expiry_warning_days);
	if (!l)
		l = logged_add(e, it);
	if (l) {
		l->not_after = it->not_after;
		l->expired = it->days_left < 0;
		l->seen = true;
	}
}

static void item_done(struct mmtrustd *d, struct mm_expiry_item *it, int64_t now, int64_t period,
		      void (*fn)(void *arg, const struct mm_expiry_item *it), void *arg)
{
	it->days_left = mm_expiry_days_left(it->not_after, now);
	it->in_window = mm_expiry_in_window(it->not_after, now, d->cfg.expiry_warning_days, period);
	note_item(d, it);
	if (fn)
		fn(arg, it);
}

/* One check: every item in use, each logged as it enters the window and
 * handed to fn (may be NULL); then what left the window is forgotten. */
static void run_check(struct mmtrustd *d, void (*fn)(void *arg, const struct mm_expiry_item *it),
		      void *arg)
{
	struct expiry *e = d->expiry;
	int64_t now = time(NULL);
	const char *pem;
	size_t len = 0, n;

	for (size_t i = 0; e && i < e->n; i++)
		e->v[i].seen = false;
	for (size_t i = 0; d->table && i < d->table->n; i++) {
		const struct mm_partner *p = d->table->partners[i];

		if (!mm_partner_has_tunnel(p))
			continue;
		for (size_t k = 0; k < p->n_cas; k++) {
			struct mm_expiry_item it = {
				.what = MM_EXPIRY_PARTNER_CA,
				.partner = p->domain,
				.name = p->cas[k].info.subject,
				.subject = p->cas[k].info.subject,
				.sha256 = p->cas[k].info.sha256,
				.not_after = p->cas[k].info.not_after,
			};

			item_done(d, &it, now, 0, fn, arg);
		}
		for (size_t k = 0; k < p->n_crls; k++) {
			const struct crl_file *f = ike_crl_file(d, p->crls[k]);
			struct mm_expiry_item it = {
				.what = MM_EXPIRY_PARTNER_CRL,
				.partner = p->domain,
				.name = p->crls[k],
			};

			/* Not read (yet), or no nextUpdate: nothing ends. */
			if (!f || !f->have_info || !f->info.next_update)
				continue;
			it.not_after = f->info.next_update;
			item_done(d, &it, now, f->info.next_update - f->info.this_update, fn, arg);
		}
	}
	pem = ike_certificate_pem(d, &len);
	if (pem) {
		struct own_cert c;

		if (own_cert_parse(pem, len, &c) == 0) {
			struct mm_expiry_item it = {
				.what = MM_EXPIRY_CERTIFICATE,
				.name = d->cfg.ike_certificate,
				.subject = c.subject,
				.not_after = c.not_after,
			};

			item_done(d, &it, now, 0, fn, arg);
		}
	}
	if (!e)
		return;
	n = e->n;
	for (size_t i = 0; i < e->n;) {
		if (e->v[i].seen) {
			i++;
			continue;
		}
		free(e->v[i].partner);
		free(e->v[i].id);
		e->v[i] = e->v[--e->n];
	}
	/* Entries moved: the index follows (failing, it is dropped and
	 * lookups find nothing until it can be made: lines said again
	 * rather than a wrong slot). */
	if (e->n != n && index_build(e, e->cap) < 0) {
		free(e->slot);
		e->slot = NULL;
		e->n_slots = 0;
	}
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	run_check(userdata, NULL, NULL);
	sd_event_source_set_time(s, usec + MM_EXPIRY_CHECK_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

int expiry_start(struct mmtrustd *d)
{
	struct expiry *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	d->expiry = e;
	run_check(d, NULL, NULL);
	r = sd_event_add_time_relative(d->ev, &e->timer, CLOCK_MONOTONIC, MM_EXPIRY_CHECK_USEC,
				       MM_EXPIRY_CHECK_USEC / 60, on_timer, d);
	if (r < 0)
		log_err("expiry: cannot arm the hourly check (%s); it runs at changes and status "
			"only", strerror(-r));
	return r < 0 ? r : 0;
}

void expiry_stop(struct mmtrustd *d)
{
	struct expiry *e = d->expiry;

	if (!e)
		return;
	sd_event_source_disable_unref(e->timer);
	for (size_t i = 0; i < e->n; i++) {
		free(e->v[i].partner);
		free(e->v[i].id);
	}
	free(e->v);
	free(e->slot);
	free(e);
	d->expiry = NULL;
}

void expiry_check(struct mmtrustd *d)
{
	run_check(d, NULL, NULL);
}

void expiry_each(struct mmtrustd *d, void (*fn)(void *arg, const struct mm_expiry_item *it),
		 void *arg)
{
	run_check(d, fn, arg);
}

struct status_ctx {
	const char *domain;
	json_t *list;
};

static void status_item(void *arg, const struct mm_expiry_item *it)
{
	struct status_ctx *x = arg;
	json_t *o;

	if (!it->in_window || (x->domain && it->partner && strcmp(x->domain, it->partner)))
		return;
	o = json_pack("{s:s, s:o, s:o, s:I}", "what", mm_expiry_what_name(it->what), "partner",
		      it->partner ? json_string(it->partner) : json_null(), "not_after",
		      mm_json_time(it->not_after), "days_left", (json_int_t)it->days_left);
	if (!o)
		return;
	if (it->what == MM_EXPIRY_PARTNER_CRL || it->what == MM_EXPIRY_CERTIFICATE)
		json_object_set_new(o, "file", json_string(it->name));
	if (it->subject)
		json_object_set_new(o, "subject", json_string(it->subject));
	if (it->sha256)
		json_object_set_new(o, "sha256", json_string(it->sha256));
	json_array_append_new(x->list, o);
}

void expiry_status(struct mmtrustd *d, const char *domain, json_t *status)
{
	struct status_ctx x = { .domain = domain, .list = json_array() };

	if (!x.list)
		return;
	run_check(d, status_item, &x);
	json_object_set_new(status, "expiry",
			    json_pack("{s:I, s:o}", "window_days",
				      (json_int_t)d->cfg.expiry_warning_days, "warnings", x.list));
}
