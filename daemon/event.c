#include "event.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"

#define FLUSH_DELAY_USEC MM_USEC_PER_SEC

struct held {
	int64_t time_ms;
	enum mm_event kind;
	char *domain;
	uint32_t reqid, spi, suppressed;
	char *message;
};

/* A bounded FIFO of held events (the oldest dropped when full). */
struct fifo {
	struct held *e;
	size_t cap, head, n;
};

static struct {
	bool running;
	sd_event_source *timer;
	bool armed;
	struct mm_store *store;
	uint32_t keep;
	struct fifo pending;  /* not written yet */
	struct fifo ring;     /* read-only store: kept here instead */
	uint64_t dropped;
	bool write_failed;    /* said once */
} E;

static void held_free(struct held *h)
{
	free(h->domain);
	free(h->message);
	memset(h, 0, sizeof(*h));
}

static struct held *fifo_at(struct fifo *f, size_t i)
{
	return &f->e[(f->head + i) % f->cap];
}

/* Append (taking h's strings); the oldest goes when full. */
static void fifo_push(struct fifo *f, struct held *h)
{
	if (!f->e)
		return;
	if (f->n == f->cap) {
		held_free(fifo_at(f, 0));
		f->head = (f->head + 1) % f->cap;
		f->n--;
		E.dropped++;
	}
	*fifo_at(f, f->n) = *h;
	f->n++;
	memset(h, 0, sizeof(*h));
}

static void fifo_clear(struct fifo *f)
{
	for (size_t i = 0; f->e && i < f->n; i++)
		held_free(fifo_at(f, i));
	f->head = f->n = 0;
}

static int fifo_init(struct fifo *f, size_t cap)
{
	f->e = calloc(cap, sizeof(*f->e));
	f->cap = cap;
	f->head = f->n = 0;
	return f->e ? 0 : -ENOMEM;
}

static void fifo_free(struct fifo *f)
{
	fifo_clear(f);
	free(f->e);
	memset(f, 0, sizeof(*f));
}

static struct mm_store_event as_store_event(const struct held *h)
{
	return (struct mm_store_event){
		.time_ms = h->time_ms,
		.kind = mm_event_name(h->kind),
		.domain = h->domain,
		.reqid = h->reqid,
		.spi = h->spi,
		.suppressed = h->suppressed,
		.message = h->message,
	};
}

void events_flush(void)
{
	struct mm_store_event *batch;
	struct mm_err err = { 0 };
	size_t n = E.pending.n;

	if (!n)
		return;
	if (E.store && !mm_store_readonly(E.store) && (batch = calloc(n, sizeof(*batch)))) {
		int r;

		for (size_t i = 0; i < n; i++)
			batch[i] = as_store_event(fifo_at(&E.pending, i));
		r = mm_store_events_write(E.store, batch, n, E.keep, &err);
		free(batch);
		if (r == 0) {
			fifo_clear(&E.pending);
			E.write_failed = false;
			return;
		}
		if (!E.write_failed)
			log_warn("event history: cannot write %zu events to the store (%s); kept "
				 "in memory instead", n, err.msg);
		E.write_failed = true;
	}
	/* No store to write to: the ring holds them. */
	for (size_t i = 0; i < n; i++)
		fifo_push(&E.ring, fifo_at(&E.pending, i));
	E.pending.head = E.pending.n = 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s;
	(void)usec;
	(void)userdata;
	E.armed = false;
	events_flush();
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sink(void *userdata, enum mm_event ev, int prio, const struct mm_event_ctx *ctx,
		 const char *msg, uint32_t suppressed)
{
	struct held h = {
		.time_ms = now_ms(),
		.kind = ev,
		.suppressed = suppressed,
	};

	(void)userdata;
	(void)prio;
	if (!E.running)
		return;
	if (ctx) {
		h.domain = ctx->partner && ctx->partner[0] ? strdup(ctx->partner) : NULL;
		h.reqid = ctx->reqid;
		h.spi = ctx->spi;
	}
	h.message = strdup(msg);
	if (!h.message) {
		held_free(&h);
		E.dropped++;
		return;
	}
	fifo_push(&E.pending, &h);
	if (!E.armed && E.timer &&
	    sd_event_source_set_time_relative(E.timer, FLUSH_DELAY_USEC) >= 0 &&
	    sd_event_source_set_enabled(E.timer, SD_EVENT_ONESHOT) >= 0)
		E.armed = true;
}

int events_start(sd_event *ev, struct mm_store *store, uint32_t keep)
{
	int r;

	if (fifo_init(&E.pending, EVENTS_PENDING_MAX) < 0 || fifo_init(&E.ring, EVENTS_RING_MAX) < 0)
		return -ENOMEM;
	E.store = store;
	E.keep = keep;
	if (ev) {
		r = sd_event_add_time_relative(ev, &E.timer, CLOCK_MONOTONIC, FLUSH_DELAY_USEC,
					       MM_USEC_PER_SEC / 10, on_timer, NULL);
		if (r < 0)
			return r;
		sd_event_source_set_enabled(E.timer, SD_EVENT_OFF);
	}
	E.running = true;
	log_set_event_sink(sink, NULL);
	return 0;
}

void events_set_store(struct mm_store *store, uint32_t keep)
{
	events_flush();
	E.store = store;
	E.keep = keep;
	E.write_failed = false;
}

void events_stop(void)
{
	if (!E.running)
		return;
	events_flush();
	log_set_event_sink(NULL, NULL);
	E.timer = sd_event_source_disable_unref(E.timer);
	E.armed = false;
	E.running = false;
	E.store = NULL;
	fifo_free(&E.pending);
	fifo_free(&E.ring);
}

static bool selected(const struct mm_store_filter *f, const struct held *h)
{
	bool kind = !f->n_kinds;

	if (f->domain && (!h->domain || strcmp(f->domain, h->domain)))
		return false;
	if (h->time_ms < f->since_ms || h->time_ms > f->until_ms)
		return false;
	for (size_t i = 0; !kind && i < f->n_kinds; i++)
		kind = !strcmp(f->kinds[i], mm_event_name(h->kind));
	return kind;
}

/* Append the held events f selects to arr. */
static void add_held(json_t *arr, struct fifo *fi, const struct mm_store_filter *f)
{
	for (size_t i = 0; i < fi->n; i++) {
		const struct held *h = fifo_at(fi, i);
		struct mm_store_event e;

		if (!selected(f, h))
			continue;
		e = as_store_event(h);
		json_array_append_new(arr, mm_store_event_json(&e));
	}
}

int events_query(const struct mm_store_filter *f, json_t **ret, bool *ret_memory,
		 uint64_t *ret_dropped, struct mm_err *err)
{
	bool memory = !E.store || mm_store_readonly(E.store) || E.write_failed;
	json_t *arr = NULL;
	int r;

	if (memory) {
		arr = json_array();
		if (!arr)
			return mm_err_set(err, MM_ERR_INTERNAL, "events", "out of memory");
		add_held(arr, &E.ring, f);
	} else {
		r = mm_store_events(E.store, f, &arr, err);
		if (r < 0)
			return r;
	}
	add_held(arr, &E.pending, f);
	/* The last `limit` only. */
	if (f->limit && json_array_size(arr) > f->limit) {
		json_t *tail = json_array();
		size_t n = json_array_size(arr);

		for (size_t i = n - f->limit; tail && i < n; i++)
			json_array_append(tail, json_array_get(arr, i));
		json_decref(arr);
		if (!tail)
			return mm_err_set(err, MM_ERR_INTERNAL, "events", "out of memory");
		arr = tail;
	}
	*ret = arr;
	*ret_memory = memory;
	*ret_dropped = E.dropped;
	return 0;
}
