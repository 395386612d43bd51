/* VICI client connection over a unix socket in an sd-event loop.  See
 * vici_client.h for the contract. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vici-plugins/vici_client.h"
#include "policy/grow.h"

enum op_kind {
	OP_REQUEST,
	OP_REGISTER,
	OP_UNREGISTER,
};

struct op {
	struct op *next;
	enum op_kind kind;
	uint8_t *frame;
	size_t len;
	/* REQUEST: the streamed event or NULL; (UN)REGISTER: the event. */
	char *event;
	/* REGISTER of a streamed request: that request, which follows it in
	 * the queue and so outlives this op. */
	struct op *stream_req;
	int stream_error; /* REQUEST: the stream's registration failed */
	vici_reply_fn on_reply;
	vici_event_fn on_event;
	void *userdata;
	vici_destroy_fn destroy;
};

struct sub {
	struct sub *next;
	char *event;
	vici_event_fn on_event;
	vici_status_fn on_registered;
	void *userdata;
};

enum state {
	ST_IDLE,       /* not started */
	ST_WAITING,    /* back-off timer armed */
	ST_CONNECTING, /* connect() in progress */
	ST_CONNECTED,
};

struct vici_client {
	unsigned ref;
	bool freed;
	sd_event *event;
	struct sockaddr_un sa;
	socklen_t sa_len;
	struct vici_client_callbacks cbs;
	void *userdata;

	enum state state;
	int fd;
	sd_event_source *io;
	sd_event_source *retry_timer;
	sd_event_source *cmd_timer;
	uint64_t backoff_min, backoff_max, backoff_cur;
	uint64_t timeout;
	int last_error;
	unsigned connect_count;

	struct op *head, *tail; /* head is in flight once fully written */
	size_t n_ops, queued_bytes;
	size_t tx_off;
	bool head_sent;

	uint8_t *rx;
	size_t rx_len, rx_cap;

	struct sub *subs;
	size_t n_subs;
};

static void op_free(struct op *op)
{
	if (!op)
		return;
	if (op->frame) {
		/* Frames may carry private keys (load-key). */
		explicit_bzero(op->frame, op->len);
		free(op->frame);
	}
	free(op->event);
	if (op->destroy)
		op->destroy(op->userdata);
	free(op);
}

static struct sub *sub_find(struct vici_client *c, const char *event)
{
	for (struct sub *s = c->subs; s; s = s->next)
		if (strcmp(s->event, event) == 0)
			return s;
	return NULL;
}

static void client_ref(struct vici_client *c)
{
	c->ref++;
}

static void client_unref(struct vici_client *c)
{
	if (--c->ref > 0)
		return;
	free(c);
}

static void update_io_events(struct vici_client *c)
{
	uint32_t ev = EPOLLIN;

	if (!c->io)
		return;
	if (c->state == ST_CONNECTING || (c->head && !c->head_sent))
		ev |= EPOLLOUT;
	(void)sd_event_source_set_io_events(c->io, ev);
}

/* Detaches the socket and the whole queue; the caller completes the ops. */
static struct op *close_socket(struct vici_client *c)
{
	struct op *ops = c->head;

	c->io = sd_event_source_disable_unref(c->io);
	if (c->cmd_timer)
		(void)sd_event_source_set_enabled(c->cmd_timer, SD_EVENT_OFF);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->head = c->tail = NULL;
	c->n_ops = c->queued_bytes = 0;
	c->tx_off = 0;
	c->head_sent = false;
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;
	return ops;
}

static void schedule_retry(struct vici_client *c)
{
	uint64_t delay = c->backoff_cur;

	c->backoff_cur = c->backoff_cur > c->backoff_max / 2 ? c->backoff_max : c->backoff_cur * 2;
	c->state = ST_WAITING;
	if (sd_event_source_set_time_relative(c->retry_timer, delay) < 0 ||
	    sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT) < 0) {
		/* Re-arming an existing timer fails only on ENOMEM inside
		 * sd-event.  Idle is the one state the owner can see
		 * (vici_client_last_error() == -ENOMEM) and leave again with
		 * vici_client_start(). */
		c->state = ST_IDLE;
		c->last_error = -ENOMEM;
	}
}

/* Completes every op of the detached list `ops` with `error`.  Returns
 * false if the client was freed by a callback. */
static bool fail_ops(struct vici_client *c, struct op *ops, int error)
{
	while (ops) {
		struct op *op = ops;
		struct sub *s;

		ops = op->next;
		if (!c->freed) {
			if (op->kind == OP_REQUEST && op->on_reply)
				op->on_reply(c, error, NULL, op->userdata);
			else if (op->kind == OP_REGISTER && !op->stream_req &&
				 (s = sub_find(c, op->event)) && s->on_registered)
				s->on_registered(c, error, s->userdata);
		}
		op_free(op);
	}
	return !c->freed;
}

/* Drops the connection: pending ops fail with `error`, the owner hears it,
 * a reconnect is scheduled.  Called with a reference held. */
static void disconnect(struct vici_client *c, int error)
{
	bool was_connected = c->state == ST_CONNECTED;
	struct op *ops = close_socket(c);

	c->last_error = error;
	c->state = ST_IDLE;
	if (!fail_ops(c, ops, error))
		return;
	if (was_connected && c->cbs.disconnected) {
		c->cbs.disconnected(c, error, c->userdata);
		if (c->freed)
			return;
	}
	if (c->state == ST_IDLE)
		schedule_retry(c);
}

static int enqueue(struct vici_client *c, struct op *op)
{
	if (c->n_ops >= VICI_CLIENT_QUEUE_MAX || op->len > VICI_CLIENT_QUEUE_BYTES - c->queued_bytes)
		return -ENOBUFS;
	if (c->tail)
		c->tail->next = op;
	else
		c->head = op;
	c->tail = op;
	c->n_ops++;
	c->queued_bytes += op->len;
	update_io_events(c);
	return 0;
}

static struct op *op_new(enum op_kind kind, const char *event)
{
	struct op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->kind = kind;
	if (event) {
		op->event = strdup(event);
		if (!op->event) {
			free(op);
			return NULL;
		}
	}
	return op;
}

/* An EVENT_REGISTER or EVENT_UNREGISTER op for `event`. */
static struct op *op_new_reg(enum op_kind kind, const char *event)
{
	struct vici_builder *b = NULL;
	const uint8_t *frame;
	struct op *op;
	size_t len;

	op = op_new(kind, event);
	if (!op)
		return NULL;
	if (vici_builder_new(kind == OP_REGISTER ? VICI_EVENT_REGISTER : VICI_EVENT_UNREGISTER,
			     event, &b) < 0 ||
	    vici_builder_finish(b, &frame, &len) < 0 || !(op->frame = malloc(len))) {
		vici_builder_free(b);
		op_free(op);
		return NULL;
	}
	memcpy(op->frame, frame, len);
	op->len = len;
	vici_builder_free(b);
	return op;
}

static int queue_register(struct vici_client *c, enum op_kind kind, const char *event,
			  struct op *stream_req)
{
	struct op *op = op_new_reg(kind, event);
	int r;

	if (!op)
		return -ENOMEM;
	op->stream_req = stream_req;
	r = enqueue(c, op);
	if (r < 0)
		op_free(op);
	return r;
}

static void pop_head(struct vici_client *c)
{
	struct op *op = c->head;

	c->head = op->next;
	if (!c->head)
		c->tail = NULL;
	c->n_ops--;
	c->queued_bytes -= op->len;
	c->tx_off = 0;
	c->head_sent = false;
	if (c->cmd_timer)
		(void)sd_event_source_set_enabled(c->cmd_timer, SD_EVENT_OFF);
	update_io_events(c);
}

static void arm_cmd_timer(struct vici_client *c)
{
	if (c->timeout == 0 || !c->cmd_timer)
		return;
	if (sd_event_source_set_time_relative(c->cmd_timer, c->timeout) >= 0)
		(void)sd_event_source_set_enabled(c->cmd_timer, SD_EVENT_ONESHOT);
}

static void on_connected(struct vici_client *c)
{
	c->state = ST_CONNECTED;
	c->backoff_cur = c->backoff_min;
	c->last_error = 0;
	c->connect_count++;
	update_io_events(c);
	for (struct sub *s = c->subs; s; s = s->next) {
		int r = queue_register(c, OP_REGISTER, s->event, NULL);

		if (r < 0) {
			disconnect(c, r);
			return;
		}
	}
	if (c->cbs.connected)
		c->cbs.connected(c, c->userdata);
}

/* ---- receiving --------------------------------------------------------- */

static void deliver_event(struct vici_client *c, const struct vici_packet *pkt)
{
	char name[VICI_NAME_MAX + 1];
	struct vici_msg *msg = NULL;
	struct op *head = c->head;
	struct sub *s;
	int r;

	memcpy(name, pkt->name, pkt->name_len);
	name[pkt->name_len] = '\0';
	r = vici_msg_parse(pkt->body, pkt->body_len, &msg);
	if (r < 0)
		r = -EBADMSG;

	if (head && head->kind == OP_REQUEST && c->head_sent && head->event &&
	    strcmp(head->event, name) == 0) {
		/* Streamed data is progress: a long list-sas must not time
		 * out while charon is still sending. */
		arm_cmd_timer(c);
		head->on_event(c, r, name, msg, head->userdata);
		if (c->freed)
			goto out;
	}
	/* Looked up after the stream callback, which may have unsubscribed. */
	s = sub_find(c, name);
	if (s && s->on_event)
		s->on_event(c, r, name, msg, s->userdata);
out:
	vici_msg_free(msg);
}

static void complete_request(struct vici_client *c, const struct vici_packet *pkt)
{
	struct op *op = c->head;
	struct vici_msg *msg = NULL;
	int r = 0;

	pop_head(c);
	if (pkt->type == VICI_CMD_UNKNOWN)
		r = -EOPNOTSUPP;
	else if (op->stream_error)
		r = op->stream_error;
	else if (vici_msg_parse(pkt->body, pkt->body_len, &msg) < 0)
		r = -EBADMSG;
	if (op->on_reply)
		op->on_reply(c, r, r < 0 ? NULL : msg, op->userdata);
	vici_msg_free(msg);
	op_free(op);
}

static void complete_register(struct vici_client *c, const struct vici_packet *pkt)
{
	struct op *op = c->head;
	int r = pkt->type == VICI_EVENT_CONFIRM ? 0 : -ENOENT;
	struct sub *s;

	pop_head(c);
	if (op->kind == OP_REGISTER) {
		if (op->stream_req)
			op->stream_req->stream_error = r;
		else if ((s = sub_find(c, op->event)) && s->on_registered)
			s->on_registered(c, r, s->userdata);
	}
	/* An unregistration that charon refuses leaves nothing to undo. */
	op_free(op);
}

/* One packet; returns 0 or the error that must drop the connection. */
static int dispatch(struct vici_client *c, const uint8_t *payload, size_t len)
{
	struct vici_packet pkt;
	struct op *head = c->head;

	if (vici_packet_parse(payload, len, &pkt) < 0)
		return -EPROTO;
	switch (pkt.type) {
	case VICI_EVENT:
		deliver_event(c, &pkt);
		return 0;
	case VICI_CMD_RESPONSE:
	case VICI_CMD_UNKNOWN:
		if (!head || !c->head_sent || head->kind != OP_REQUEST)
			return -EPROTO;
		complete_request(c, &pkt);
		return 0;
	case VICI_EVENT_CONFIRM:
	case VICI_EVENT_UNKNOWN:
		if (!head || !c->head_sent || head->kind == OP_REQUEST)
			return -EPROTO;
		complete_register(c, &pkt);
		return 0;
	default:
		return -EPROTO;
	}
}

/* Room for need bytes, but never more than one whole frame. */
static int rx_reserve(struct vici_client *c, size_t need)
{
	const size_t max = VICI_FRAME_HDR + VICI_PACKET_MAX;

	return mm_grow_max((void **)&c->rx, &c->rx_cap, need < max ? need : max, 1, max);
}

/* Dispatches every complete frame in rx.  Returns 0, or the error that
 * must drop the connection; 1 if the client changed under us (freed, or
 * disconnected by a callback) and the caller must stop. */
static int process_rx(struct vici_client *c)
{
	size_t off = 0;
	int r = 0;

	while (c->rx_len - off >= VICI_FRAME_HDR) {
		size_t flen;
		uint8_t *frame = c->rx + off;

		r = vici_frame_len(frame, &flen);
		if (r < 0)
			break;
		if (c->rx_len - off - VICI_FRAME_HDR < flen) {
			r = rx_reserve(c, VICI_FRAME_HDR + flen);
			break;
		}
		r = dispatch(c, frame + VICI_FRAME_HDR, flen);
		if (r < 0)
			break;
		if (c->freed || c->state != ST_CONNECTED)
			return 1;
		off += VICI_FRAME_HDR + flen;
	}
	if (off > 0) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
	/* One large frame must not pin half a megabyte for the life of the
	 * connection. */
	if (r == 0 && c->rx_len == 0 && c->rx_cap > 65536) {
		free(c->rx);
		c->rx = NULL;
		c->rx_cap = 0;
	}
	return r;
}

static int do_read(struct vici_client *c)
{
	ssize_t n;
	int r;

	if (c->rx_len == c->rx_cap) {
		r = rx_reserve(c, c->rx_len + 4096);
		if (r < 0)
			return r;
	}
	n = read(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	c->rx_len += (size_t)n;
	return process_rx(c);
}

/* ---- sending ----------------------------------------------------------- */

static int do_write(struct vici_client *c)
{
	struct op *op = c->head;
	ssize_t n;

	if (!op || c->head_sent)
		return 0;
	n = send(c->fd, op->frame + c->tx_off, op->len - c->tx_off, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	c->tx_off += (size_t)n;
	if (c->tx_off == op->len) {
		c->head_sent = true;
		arm_cmd_timer(c);
		update_io_events(c);
	}
	return 0;
}

/* ---- event sources ----------------------------------------------------- */

static int finish_connect(struct vici_client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err)
		return -err;
	on_connected(c);
	return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct vici_client *c = userdata;
	int r = 0;

	(void)s;
	(void)fd;
	client_ref(c);
	if (c->state == ST_CONNECTING) {
		r = finish_connect(c);
		if (r < 0) {
			struct op *ops = close_socket(c);

			c->last_error = r;
			fail_ops(c, ops, r);
			if (!c->freed)
				schedule_retry(c);
		}
		goto out;
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		r = do_read(c);
		if (r == 1 || c->freed)
			goto out;
		if (r < 0) {
			disconnect(c, r);
			goto out;
		}
	}
	if (revents & EPOLLOUT) {
		r = do_write(c);
		if (r < 0)
			disconnect(c, r);
	}
out:
	client_unref(c);
	return 0;
}

static void try_connect(struct vici_client *c)
{
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (connect(fd, (struct sockaddr *)&c->sa, c->sa_len) < 0 && errno != EINPROGRESS) {
		/* EAGAIN on a unix socket means charon's backlog is full:
		 * retried like any other failure. */
		r = -errno;
		close(fd);
		goto fail;
	}
	c->fd = fd;
	r = sd_event_add_io(c->event, &c->io, fd, EPOLLIN | EPOLLOUT, on_io, c);
	if (r < 0) {
		close(fd);
		c->fd = -1;
		goto fail;
	}
	/* Completion (immediate for unix sockets) is read from SO_ERROR in
	 * the loop, so that `connected` never runs inside a timer callback
	 * that the owner did not expect either. */
	c->state = ST_CONNECTING;
	return;
fail:
	c->last_error = r;
	schedule_retry(c);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct vici_client *c = userdata;

	(void)s;
	(void)usec;
	if (c->state == ST_WAITING)
		try_connect(c);
	return 0;
}

static int on_cmd_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct vici_client *c = userdata;

	(void)s;
	(void)usec;
	client_ref(c);
	if (c->state == ST_CONNECTED && c->head && c->head_sent)
		disconnect(c, -ETIMEDOUT);
	client_unref(c);
	return 0;
}

/* ---- public ------------------------------------------------------------- */

int vici_client_new(sd_event *e, const char *socket_path, const struct vici_client_callbacks *cbs,
		    void *userdata, struct vici_client **ret)
{
	struct vici_client *c;
	size_t plen;
	int r;

	if (!e || !socket_path || !ret)
		return -EINVAL;
	plen = strlen(socket_path);
	if (plen == 0)
		return -EINVAL;
	if (plen >= sizeof(c->sa.sun_path))
		return -ENAMETOOLONG;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ref = 1;
	c->fd = -1;
	c->event = sd_event_ref(e);
	c->sa.sun_family = AF_UNIX;
	memcpy(c->sa.sun_path, socket_path, plen + 1);
	c->sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
	if (cbs)
		c->cbs = *cbs;
	c->userdata = userdata;
	c->backoff_min = c->backoff_cur = VICI_CLIENT_BACKOFF_MIN_USEC;
	c->backoff_max = VICI_CLIENT_BACKOFF_MAX_USEC;
	c->timeout = VICI_CLIENT_TIMEOUT_USEC;

	/* Accuracy 1 ms: sd-event's default (0) would be 250 ms. */
	r = sd_event_add_time_relative(e, &c->retry_timer, CLOCK_MONOTONIC, 0, 1000, on_retry, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->retry_timer, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_time_relative(e, &c->cmd_timer, CLOCK_MONOTONIC, 0, 1000,
					       on_cmd_timeout, c);
	if (r >= 0)
		r = sd_event_source_set_enabled(c->cmd_timer, SD_EVENT_OFF);
	if (r < 0) {
		vici_client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void vici_client_free(struct vici_client *c)
{
	struct op *ops;

	if (!c || c->freed)
		return;
	c->freed = true;
	ops = close_socket(c);
	while (ops) {
		struct op *op = ops;

		ops = op->next;
		op_free(op);
	}
	while (c->subs) {
		struct sub *s = c->subs;

		c->subs = s->next;
		free(s->event);
		free(s);
	}
	c->retry_timer = sd_event_source_disable_unref(c->retry_timer);
	c->cmd_timer = sd_event_source_disable_unref(c->cmd_timer);
	c->event = sd_event_unref(c->event);
	client_unref(c);
}

int vici_client_start(struct vici_client *c)
{
	if (!c)
		return -EINVAL;
	if (c->state != ST_IDLE)
		return -EALREADY;
	c->state = ST_WAITING;
	if (sd_event_source_set_time_relative(c->retry_timer, 0) < 0)
		return -ENOMEM;
	return sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT);
}

int vici_client_set_backoff(struct vici_client *c, uint64_t min_usec, uint64_t max_usec)
{
	const uint64_t hour = 3600ull * 1000 * 1000;

	if (!c || min_usec < 1000 || min_usec > max_usec || max_usec > hour)
		return -EINVAL;
	c->backoff_min = c->backoff_cur = min_usec;
	c->backoff_max = max_usec;
	return 0;
}

int vici_client_set_timeout(struct vici_client *c, uint64_t usec)
{
	if (!c)
		return -EINVAL;
	c->timeout = usec;
	return 0;
}

bool vici_client_is_connected(const struct vici_client *c)
{
	return c && c->state == ST_CONNECTED;
}

int vici_client_last_error(const struct vici_client *c)
{
	return c ? c->last_error : -EINVAL;
}

unsigned vici_client_connect_count(const struct vici_client *c)
{
	return c ? c->connect_count : 0;
}

int vici_client_call(struct vici_client *c, struct vici_builder *req, const char *stream_event,
		     vici_event_fn on_event, vici_reply_fn on_reply, void *userdata)
{
	return vici_client_call_full(c, req, stream_event, on_event, on_reply, userdata, NULL);
}

int vici_client_call_full(struct vici_client *c, struct vici_builder *req, const char *stream_event,
			  vici_event_fn on_event, vici_reply_fn on_reply, void *userdata,
			  vici_destroy_fn destroy)
{
	struct vici_packet pkt;
	const uint8_t *frame;
	struct op *op;
	size_t len;
	bool stream_reg;
	int r;

	if (!c || !req || (stream_event && !on_event))
		return -EINVAL;
	if (c->freed || c->state != ST_CONNECTED)
		return -ENOTCONN;
	r = vici_builder_finish(req, &frame, &len);
	if (r < 0)
		return r;
	r = vici_packet_parse(frame + VICI_FRAME_HDR, len - VICI_FRAME_HDR, &pkt);
	if (r < 0 || pkt.type != VICI_CMD_REQUEST)
		return -EINVAL;
	/* A persistent subscription already has charon send these events;
	 * registering again and unregistering after the command would end
	 * that subscription. */
	stream_reg = stream_event && !sub_find(c, stream_event);
	if (c->n_ops + 1 + 2 * stream_reg > VICI_CLIENT_QUEUE_MAX)
		return -ENOBUFS;

	op = op_new(OP_REQUEST, stream_event);
	if (!op)
		return -ENOMEM;
	op->frame = malloc(len);
	if (!op->frame) {
		op_free(op);
		return -ENOMEM;
	}
	memcpy(op->frame, frame, len);
	op->len = len;
	op->on_reply = on_reply;
	op->on_event = on_event;
	op->userdata = userdata;

	if (stream_reg) {
		r = queue_register(c, OP_REGISTER, stream_event, op);
		if (r < 0) {
			op_free(op);
			return r;
		}
	}
	r = enqueue(c, op);
	if (r < 0) {
		/* The registration just queued stays: it is harmless, and
		 * pulling it back out of the queue is not worth the code.
		 * Its stream_req must not dangle, though. */
		c->tail->stream_req = NULL;
		op_free(op);
		return r;
	}
	/* If this cannot be queued the command still runs, and charon keeps
	 * sending an event that nobody listens to until the next reconnect:
	 * better than failing a command that is already queued. */
	op->destroy = destroy;
	if (stream_reg)
		(void)queue_register(c, OP_UNREGISTER, stream_event, NULL);
	return 0;
}

int vici_client_call_simple(struct vici_client *c, const char *cmd, vici_reply_fn on_reply,
			    void *userdata)
{
	struct vici_builder *b = NULL;
	int r;

	r = vici_builder_new(VICI_CMD_REQUEST, cmd, &b);
	if (r >= 0)
		r = vici_client_call(c, b, NULL, NULL, on_reply, userdata);
	vici_builder_free(b);
	return r;
}

int vici_client_subscribe(struct vici_client *c, const char *event, vici_event_fn on_event,
			  vici_status_fn on_registered, void *userdata)
{
	struct sub *s;
	size_t n;
	int r;

	if (!c || !event || !on_event)
		return -EINVAL;
	n = strlen(event);
	if (n == 0 || n > VICI_NAME_MAX)
		return -EINVAL;
	if (sub_find(c, event))
		return -EEXIST;
	if (c->n_subs >= VICI_CLIENT_SUBS_MAX)
		return -ENOBUFS;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->event = strdup(event);
	if (!s->event) {
		free(s);
		return -ENOMEM;
	}
	s->on_event = on_event;
	s->on_registered = on_registered;
	s->userdata = userdata;
	if (c->state == ST_CONNECTED) {
		r = queue_register(c, OP_REGISTER, event, NULL);
		if (r < 0) {
			free(s->event);
			free(s);
			return r;
		}
	}
	s->next = c->subs;
	c->subs = s;
	c->n_subs++;
	return 0;
}

int vici_client_unsubscribe(struct vici_client *c, const char *event)
{
	struct sub **pp, *s;

	if (!c || !event)
		return -EINVAL;
	for (pp = &c->subs; (s = *pp); pp = &s->next)
		if (strcmp(s->event, event) == 0)
			break;
	if (!s)
		return -ENOENT;
	*pp = s->next;
	c->n_subs--;
	free(s->event);
	free(s);
	/* Best effort: if it cannot be queued, charon keeps sending events
	 * that find no subscriber and are dropped, until the next reconnect. */
	if (c->state == ST_CONNECTED)
		(void)queue_register(c, OP_UNREGISTER, event, NULL);
	return 0;
}
