/* The shared store's connection, its notifications and the table-syncs
 * they start (fleet.h). */
#include "fleet.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "mmtrustd.h"
#include "policy/jsonfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECONNECT_FIRST_US (500 * 1000ULL)
#define RECONNECT_MAX_US (10 * 1000 * 1000ULL)
/* Connected, the store's version is read this often too: a notification
 * lost without the connection noticing (a half-open TCP connection) is
 * caught here, and such a connection found dead. */
#define CHECK_INTERVAL_US (30 * 1000 * 1000ULL)
/* ... and whether another call (an event write) found it broken. */
#define TICK_US (1000 * 1000ULL)
/* A reconnect that has no answer by then is given up (and tried again
 * after the back-off). */
#define CONNECT_DEADLINE_US (5 * 1000 * 1000ULL)
#define CONNECT_DEADLINE_TEXT "5 s"

struct fleet {
	struct mmtrustd *d;
	sd_event_source *io, *timer;
	sd_event_source *conn_io; /* a reconnect under way: its socket */
	bool connecting;
	bool connected;
	time_t since;             /* unreachable since */
	uint64_t delay;           /* the next reconnect's wait */
	uint64_t reconnects, catchups;
	uint64_t next_check;      /* CLOCK_MONOTONIC us of the next version check */
	char error[512];
	uint64_t refused_version; /* the newest version not taken, 0: none */
	char refused[512];        /* why */
};

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);
static int connect_wait(struct fleet *f, int fd, int events);

static bool shared(const struct mmtrustd *d)
{
	return d->store && mm_store_backend(d->store) == MM_STORE_POSTGRESQL;
}

static void arm(struct fleet *f, uint64_t after)
{
	uint64_t now;

	sd_event_now(f->d->ev, CLOCK_MONOTONIC, &now);
	sd_event_source_set_time(f->timer, now + after);
	sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT);
}

/* Watch the connection's socket (a new one after every reconnect) through
 * a duplicate of our own: libpq closes its descriptor when it finds the
 * connection broken, on any call (an event write, a status read), and
 * the number may then be reused by another file while still registered
 * here.  Ours stays open until we drop it, and reads as EOF. */
static int watch(struct fleet *f)
{
	int fd = mm_store_fd(f->d->store), r;

	f->io = sd_event_source_disable_unref(f->io);
	if (fd < 0)
		return -ENOTCONN;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	r = sd_event_add_io(f->d->ev, &f->io, fd, EPOLLIN, on_io, f);
	if (r < 0) {
		close(fd);
		return r;
	}
	sd_event_source_set_io_fd_own(f->io, true);
	return 0;
}

static void lost(struct fleet *f)
{
	const char *why = mm_store_unreachable(f->d->store);

	f->io = sd_event_source_disable_unref(f->io);
	snprintf(f->error, sizeof(f->error), "%s", why ? why : "the connection was lost");
	if (f->connected) {
		f->connected = false;
		f->since = time(NULL);
		log_event(MM_EVENT_STORE_LOST, LOG_ERR, NULL,
			  "store: the shared store %s is unreachable: %s; this host keeps "
			  "enforcing table version %" PRIu64 " and refuses changes until it is back",
			  mm_store_name(f->d->store), f->error, f->d->table->version);
	}
	f->delay = RECONNECT_FIRST_US;
	arm(f, f->delay);
}

/* A version this host does not take: keep ours, say why once per version. */
static int refuse(struct fleet *f, uint64_t v, struct mm_err *err)
{
	if (v != f->refused_version)
		log_err("store: this host does not take table version %" PRIu64
			" of %s and keeps enforcing version %" PRIu64 ": %s%s%s",
			v, mm_store_name(f->d->store), f->d->table->version, err->field,
			err->field[0] ? ": " : "", err->msg);
	f->refused_version = v;
	snprintf(f->refused, sizeof(f->refused), "%.100s%s%.400s", err->field,
		 err->field[0] ? ": " : "", err->msg);
	return -EPERM;
}

static void taken(struct fleet *f)
{
	f->refused_version = 0;
	f->refused[0] = '\0';
}

/* Version v could not be taken (r, err): the store gone, a failure to read
 * it (a timeout: tried again later), or the table found wrong (refused). */
static int not_taken(struct fleet *f, int r, uint64_t v, struct mm_err *err)
{
	if (mm_store_unreachable(f->d->store)) {
		lost(f);
		return r;
	}
	if (err->code == MM_ERR_INTERNAL) {
		log_warn("store: cannot read table version %" PRIu64 " of the shared store: "
			 "%s: %s; trying again", v, err->field, err->msg);
		return r;
	}
	return refuse(f, v, err);
}

/* Every reqid of t in this host's [reqid] range: a partner outside it
 * would be programmed, yet its SAs would not count as ours here. */
static int check_reqids(const struct mmtrustd *d, const struct mm_table *t,
			struct mm_err *err)
{
	for (size_t i = 0; i < t->n; i++)
		if (!mm_reqid_ours(t, t->partners[i]->reqid))
			return mm_err_set(err, MM_ERR_INVALID, "reqid",
					  "partner %s has reqid %u, outside this host's [reqid] "
					  "range %u-%u: every host of a fleet needs the same range",
					  t->partners[i]->domain, t->partners[i]->reqid,
					  d->cfg.reqid_min, d->cfg.reqid_max);
	return 0;
}

/* Load the store's table and take it if it is newer than ours.  Refused
 * (kept until an operator reloads): a table this host's [local] or
 * [reqid] cannot take, a version that goes back (a restored or another
 * database), and versions not committed by mmtrust (no audit rows) that
 * would take away more than the shrink guard allows. */
static int catch_up(struct fleet *f, struct mm_err *err)
{
	struct mmtrustd *d = f->d;
	struct mm_table *t = NULL;
	struct mm_change *delta = NULL;
	size_t n = 0;
	uint64_t was = d->table->version, v = 0;
	char names[256] = "";
	bool audited = false;
	int r;

	r = mmtrustd_load_table(&d->cfg, d->store, &t, err);
	if (r == 0)
		r = check_reqids(d, t, err);
	if (r < 0) {
		mm_table_free(t);
		(void)mm_store_version(d->store, &v, NULL);
		return not_taken(f, r, v, err);
	}
	v = t->version;
	if (v == was) {
		mm_table_free(t);
		taken(f);
		return 0;
	}
	if (v < was) {
		mm_table_free(t);
		mm_err_set(err, MM_ERR_CONFLICT, "store",
			   "the shared table went back from version %" PRIu64 " to %" PRIu64
			   " (a restored or another database); if that is intended, `mmtrustctl "
			   "reload` takes it, under the shrink guard", was, v);
		return refuse(f, v, err);
	}
	r = mm_store_audited(d->store, was, v, &audited, err);
	if (r == 0 && !audited)
		r = shrink_check(d, &d->cfg, t, "versions without audit rows were written around "
				 "mmtrust; if the table is right, `mmtrustctl reload --allow-shrink` "
				 "takes it", err);
	if (r < 0) {
		mm_table_free(t);
		return not_taken(f, r, v, err);
	}
	taken(f);
	r = mmtrustd_table_sync(d, t, &delta, &n);
	if (r < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, "store", "table-sync: %s", strerror(-r));
	f->catchups++;
	for (size_t i = 0, len = 0; i < n && i < 4 && len < sizeof(names); i++) {
		const struct mm_partner *p = delta[i].after ? delta[i].after : delta[i].before;

		len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s %s",
					i ? ", " : ": ", mm_change_op_name(delta[i].op), p->domain);
	}
	log_event(MM_EVENT_TABLE_SYNC, LOG_NOTICE, NULL,
		  "store: took table version %" PRIu64 " (this host had %" PRIu64
		  "): %zu partners changed%s%s%s",
		  d->table->version, was, n, names, n > 4 ? ", ..." : "",
		  audited ? "" : " (versions without audit rows: the shrink guard passed it)");
	mm_changes_free(delta, n);
	return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct fleet *f = userdata;
	struct mm_err err = { 0 };
	uint64_t v = 0;

	(void)s;
	(void)fd;
	(void)revents;
	if (mm_store_poll(f->d->store, &v) < 0) {
		lost(f);
		return 0;
	}
	if (v > f->d->table->version)
		(void)catch_up(f, &err);
	return 0;
}

/* The reconnect failed (err, or the store's own words): the next one
 * after the back-off, doubled up to its cap. */
static void retry_later(struct fleet *f, const struct mm_err *err)
{
	const char *why = mm_store_unreachable(f->d->store);

	f->conn_io = sd_event_source_disable_unref(f->conn_io);
	f->connecting = false;
	snprintf(f->error, sizeof(f->error), "%s", why ? why : err->msg);
	f->delay = f->delay * 2 > RECONNECT_MAX_US ? RECONNECT_MAX_US : f->delay * 2;
	log_debug("store: %s still unreachable (%s); next try in %" PRIu64 " ms",
		  mm_store_name(f->d->store), f->error, f->delay / 1000);
	arm(f, f->delay);
}

/* Connected again: watch it, say so, catch up. */
static void back(struct fleet *f)
{
	struct mmtrustd *d = f->d;
	struct mm_err err = { 0 };
	uint64_t now;

	f->conn_io = sd_event_source_disable_unref(f->conn_io);
	f->connecting = false;
	if (watch(f) < 0) {
		retry_later(f, &err);
		return;
	}
	f->connected = true;
	f->reconnects++;
	f->error[0] = '\0';
	log_event(MM_EVENT_STORE_BACK, LOG_NOTICE, NULL,
		  "store: the shared store %s is reachable again after %ld s",
		  mm_store_name(d->store), (long)(time(NULL) - f->since));
	f->since = 0;
	/* Notifications sent while we were away are lost: compare. */
	if (catch_up(f, &err) < 0 && !f->connected)
		return;
	sd_event_now(d->ev, CLOCK_MONOTONIC, &now);
	f->next_check = now + CHECK_INTERVAL_US;
	arm(f, TICK_US);
}

static int on_connect(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct fleet *f = userdata;
	struct mm_err err = { 0 };
	int events, r;

	(void)s;
	(void)revents;
	r = mm_store_reconnect_poll(f->d->store, &fd, &events, &err);
	if (r == 0 && connect_wait(f, fd, events) < 0)
		r = -EIO;
	if (r < 0)
		retry_later(f, &err);
	else if (r == 1)
		back(f);
	return 0;
}

/* Wait for the connection under way: a duplicate of its socket again
 * (libpq may close it and open another, for the next address). */
static int connect_wait(struct fleet *f, int fd, int events)
{
	int r;

	f->conn_io = sd_event_source_disable_unref(f->conn_io);
	if (fd < 0)
		return -EBADF;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	r = sd_event_add_io(f->d->ev, &f->conn_io, fd,
			    (events & POLLOUT) ? EPOLLOUT : EPOLLIN, on_connect, f);
	if (r < 0) {
		close(fd);
		return r;
	}
	sd_event_source_set_io_fd_own(f->conn_io, true);
	return 0;
}

/* Connected: the periodic check.  Not: the next reconnect. */
static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct fleet *f = userdata;
	struct mmtrustd *d = f->d;
	struct mm_err err = { 0 };
	uint64_t v = 0;

	(void)s;
	if (f->connected) {
		/* Another call (an event write, a status read) may have found
		 * the connection broken, or read a notification off the
		 * socket, which then wakes nobody: look each tick. */
		if (mm_store_unreachable(d->store) || mm_store_poll(d->store, &v) < 0) {
			lost(f);
			return 0;
		}
		if (v > d->table->version)
			(void)catch_up(f, &err);
		if (f->connected && usec >= f->next_check) {
			f->next_check = usec + CHECK_INTERVAL_US;
			if (mm_store_version(d->store, &v, &err) < 0 &&
			    mm_store_unreachable(d->store)) {
				lost(f);
				return 0;
			}
			if (v != d->table->version)
				(void)catch_up(f, &err);
		}
		if (f->connected)
			arm(f, TICK_US);
		return 0;
	}
	if (f->connecting) {
		/* The attempt's deadline: libpq leaves it to us when it is
		 * driven by an event loop. */
		mm_store_reconnect_cancel(d->store, "no answer within "
					  CONNECT_DEADLINE_TEXT);
		retry_later(f, &err);
		return 0;
	}
	{
		int fd, events;

		if (mm_store_reconnect_start(d->store, &fd, &events, &err) < 0 ||
		    connect_wait(f, fd, events) < 0) {
			retry_later(f, &err);
			return 0;
		}
	}
	f->connecting = true;
	arm(f, CONNECT_DEADLINE_US);
	return 0;
}

int fleet_start(struct mmtrustd *d)
{
	struct fleet *f;
	int r;

	if (!shared(d))
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->d = d;
	f->connected = true;
	r = sd_event_add_time(d->ev, &f->timer, CLOCK_MONOTONIC, 0, 100 * 1000, on_timer, f);
	if (r < 0) {
		free(f);
		return r;
	}
	d->fleet = f;
	if (watch(f) < 0) {
		lost(f);
		return 0;
	}
	sd_event_now(d->ev, CLOCK_MONOTONIC, &f->next_check);
	f->next_check += CHECK_INTERVAL_US;
	arm(f, TICK_US);
	/* A commit between our load and LISTEN would go unnoticed. */
	{
		struct mm_err err = { 0 };
		uint64_t v = 0;

		if (mm_store_version(d->store, &v, &err) < 0 && mm_store_unreachable(d->store))
			lost(f);
		else if (v != d->table->version)
			(void)catch_up(f, &err);
	}
	return 0;
}

void fleet_stop(struct mmtrustd *d)
{
	struct fleet *f = d->fleet;

	if (!f)
		return;
	sd_event_source_disable_unref(f->io);
	sd_event_source_disable_unref(f->conn_io);
	sd_event_source_disable_unref(f->timer);
	free(f);
	d->fleet = NULL;
}

void fleet_store_changed(struct mmtrustd *d)
{
	fleet_stop(d);
	(void)fleet_start(d);
}

/* f->error is the store's words, with since when. */
static int unreachable_error(struct fleet *f, struct mm_err *err)
{
	return mm_err_set(err, MM_ERR_INTERNAL, "store",
			  "the shared store %s is unreachable (%s): nothing was changed and "
			  "nothing is queued; this host keeps enforcing table version %" PRIu64
			  "; retry when it is back (mmtrustctl status)",
			  mm_store_name(f->d->store), f->error, f->d->table->version);
}

int fleet_sync(struct mmtrustd *d, struct mm_err *err)
{
	struct fleet *f = d->fleet;
	uint64_t v = 0;
	int r;

	if (!f)
		return 0;
	if (!f->connected)
		return unreachable_error(f, err);
	r = mm_store_version(d->store, &v, err);
	if (r < 0) {
		if (mm_store_unreachable(d->store)) {
			lost(f);
			memset(err, 0, sizeof(*err));
			return unreachable_error(f, err);
		}
		return r;
	}
	if (v == d->table->version)
		return 0;
	r = catch_up(f, err);
	if (r < 0 && !f->connected) {
		memset(err, 0, sizeof(*err));
		return unreachable_error(f, err);
	}
	if (r < 0 && f->refused_version) {
		char why[sizeof(f->refused)];

		snprintf(why, sizeof(why), "%s", f->refused);
		memset(err, 0, sizeof(*err));
		return mm_err_set(err, MM_ERR_CONFLICT, "store",
				  "this host does not take the shared table's version %" PRIu64
				  " (%s), so it cannot change it: nothing was changed",
				  f->refused_version, why);
	}
	if (r < 0)
		return r;  /* the store's words: it could not be read now */
	return 0;
}

void fleet_commit_failed(struct mmtrustd *d, const struct mm_err *err)
{
	struct fleet *f = d->fleet;
	struct mm_err e = { 0 };

	if (!f || !f->connected)
		return;
	if (mm_store_unreachable(d->store))
		lost(f);
	else if (err->code == MM_ERR_CONFLICT)
		(void)catch_up(f, &e);
}

void fleet_stats(struct mmtrustd *d, struct fleet_stats *st)
{
	struct fleet *f = d->fleet;

	memset(st, 0, sizeof(*st));
	st->version = d->table ? d->table->version : 0;
	if (!f) {
		st->connected = true;
		return;
	}
	st->shared = true;
	st->connected = f->connected;
	st->reconnects = f->reconnects;
	st->catchups = f->catchups;
	st->since = f->connected ? 0 : f->since;
	st->refused_version = f->refused_version;
	snprintf(st->error, sizeof(st->error), "%s", f->connected ? f->refused : f->error);
}

void fleet_status(struct mmtrustd *d, json_t *o)
{
	struct fleet_stats st;

	fleet_stats(d, &st);
	json_object_set_new(o, "backend", json_string(st.shared ? "postgresql" : "sqlite"));
	json_object_set_new(o, "name", json_string(d->store ? mm_store_name(d->store) : ""));
	json_object_set_new(o, "version", json_integer((json_int_t)st.version));
	json_object_set_new(o, "connected", json_boolean(st.connected));
	json_object_set_new(o, "since", st.since ? mm_json_time(st.since) : json_null());
	json_object_set_new(o, "error", st.error[0] ? json_string(st.error) : json_null());
	if (st.shared) {
		json_object_set_new(o, "host", json_string(mm_store_host(d->store)));
		json_object_set_new(o, "reconnects", json_integer((json_int_t)st.reconnects));
		json_object_set_new(o, "table_syncs", json_integer((json_int_t)st.catchups));
		json_object_set_new(o, "refused_version",
				    st.refused_version ? json_integer((json_int_t)st.refused_version)
						       : json_null());
	}
}
