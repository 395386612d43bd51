#include "jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "policy/grow.h"

struct buf {
	char *data;
	size_t len, cap;
};

struct mm_jsonl_client {
	struct mm_jsonl_server *server;
	struct mm_jsonl_client *next, **pprev;
	int fd;
	sd_event_source *io;
	struct mm_jsonl_peer peer;
	struct buf in, out;
	size_t out_pos;
	int discarding;  /* inside an over-long line: drop bytes until '\n' */
	bool subscribed;
	bool replied;    /* the handler queued its answer itself */
	bool busy;       /* its handler runs (a long request): not polled */
	bool held;       /* read by mm_jsonl_server_poll(): in may hold complete
			    lines, io is off until the loop resumes it */
	bool parked;     /* held, and its next request waits for the loop */
};

struct mm_jsonl_server {
	sd_event *ev;
	int fd;
	char *path;
	sd_event_source *io;
	struct mm_jsonl_limits lim;
	mm_jsonl_handler handler;
	mm_jsonl_authorize authorize;
	mm_jsonl_readonly readonly;
	void *userdata;
	sd_event_source *resume;   /* the loop takes the held clients back */
	bool polling;              /* inside mm_jsonl_server_poll */
	struct mm_jsonl_client *clients;
	unsigned n_clients;
};

static int buf_append(struct buf *b, const char *data, size_t len)
{
	if (len > SIZE_MAX - b->len ||
	    mm_grow((void **)&b->data, &b->cap, b->len + len, 1) < 0)
		return -ENOMEM;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

int mm_jsonl_peer_user(const struct mm_jsonl_peer *peer, char *name, size_t size,
		       gid_t *ret_gid)
{
	/* getpwuid() returns a static buffer shared by every thread: the
	 * query thread and the main loop both ask, so only the _r form. */
	struct passwd pw, *found = NULL;
	size_t len = 1024;
	char *buf = NULL;
	int r;

	do {
		char *b = len <= (1u << 20) ? realloc(buf, len *= 2) : NULL;

		if (!b) {
			r = -ENOMEM;
			goto out;
		}
		buf = b;
		r = -getpwuid_r(peer->uid, &pw, buf, len, &found);
	} while (r == -ERANGE);
	if (r == 0 && !found)
		r = -ENOENT;
	if (r == 0 && snprintf(name, size, "%s", pw.pw_name) >= (int)size)
		r = -ERANGE;
	if (r == 0 && ret_gid)
		*ret_gid = pw.pw_gid;
out:
	free(buf);
	return r;
}

bool mm_jsonl_peer_allowed(const struct mm_jsonl_peer *peer, gid_t gid)
{
	char name[256];
	gid_t groups[256], pgid;
	int n = 256;

	if (peer->uid == 0 || peer->uid == geteuid())
		return true;
	if (gid == (gid_t)-1)
		return false;
	if (peer->gid == gid)
		return true;
	for (int i = 0; i < peer->n_groups; i++)
		if (peer->groups[i] == gid)
			return true;
	if (mm_jsonl_peer_user(peer, name, sizeof(name), &pgid) == 0 &&
	    getgrouplist(name, pgid, groups, &n) >= 0)
		for (int i = 0; i < n; i++)
			if (groups[i] == gid)
				return true;
	return false;
}

json_t *mm_jsonl_error(const char *code, const char *field, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *e;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (e && field && *field)
		json_object_set_new(e, "field", json_string(field));
	return json_pack("{s:b, s:o}", "ok", 0, "error", e);
}

json_t *mm_jsonl_ok(json_t *result)
{
	json_t *o = json_pack("{s:b}", "ok", 1);

	if (o && result)
		json_object_set_new(o, "result", result);
	else
		json_decref(result);
	return o;
}

static void client_free(struct mm_jsonl_client *c)
{
	if (!c)
		return;
	if (c->pprev) {
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
		c->server->n_clients--;
	}
	sd_event_source_disable_unref(c->io);
	if (c->fd >= 0)
		close(c->fd);
	free(c->in.data);
	free(c->out.data);
	free(c);
}

static int client_update_events(struct mm_jsonl_client *c)
{
	uint32_t ev = 0;

	/* Backpressure: stop reading requests while answers pile up. */
	if (c->out.len - c->out_pos < c->server->lim.max_out / 2)
		ev |= EPOLLIN;
	if (c->out.len > c->out_pos)
		ev |= EPOLLOUT;
	return sd_event_source_set_io_events(c->io, ev);
}

static int client_queue(struct mm_jsonl_client *c, json_t *answer, const json_t *id)
{
	char *text;
	int r;

	if (!answer)
		answer = mm_jsonl_error("internal", NULL, "out of memory");
	if (!answer)
		return -ENOMEM;
	if (id)
		json_object_set(answer, "id", (json_t *)id);
	text = json_dumps(answer, JSON_COMPACT);
	json_decref(answer);
	if (!text)
		return -ENOMEM;
	r = buf_append(&c->out, text, strlen(text));
	if (r == 0)
		r = buf_append(&c->out, "\n", 1);
	free(text);
	if (r == 0 && c->out.len - c->out_pos > c->server->lim.max_out)
		return -ENOBUFS;
	return r;
}

/* Answer one parsed request (steals req). */
static int client_request(struct mm_jsonl_client *c, json_t *req)
{
	const json_t *id;
	json_t *answer;
	int r;

	if (!json_is_object(req)) {
		json_decref(req);
		return client_queue(c, mm_jsonl_error("invalid-request", NULL,
						      "a request must be a JSON object"), NULL);
	}
	id = json_object_get(req, "id");
	c->replied = false;
	c->busy = true;
	answer = c->server->handler(c->server->userdata, c, &c->peer, req);
	c->busy = false;
	if (c->replied && !answer)
		r = c->out.len - c->out_pos > c->server->lim.max_out ? -ENOBUFS : 0;
	else
		r = client_queue(c, answer, id);
	json_decref(req);
	return r;
}

static json_t *parse_line(const char *line, size_t *len, json_error_t *jerr)
{
	while (*len && (line[*len - 1] == '\r' || line[*len - 1] == ' '))
		(*len)--;
	if (*len == 0)
		return NULL;
	return json_loadb(line, *len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, jerr);
}

static int client_line(struct mm_jsonl_client *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = parse_line(line, &len, &jerr);
	int r;

	if (len == 0)
		return 0;
	if (!req)
		return client_queue(c, mm_jsonl_error("invalid-json", NULL,
						      "invalid JSON at column %d: %s",
						      jerr.column, jerr.text), NULL);
	r = client_request(c, req);
	/* A large request (an apply of a whole table) leaves tens of MB of
	 * freed JSON in the heap: give it back rather than hold it for good. */
	if (len > (1u << 20))
		malloc_trim(0);
	return r;
}

static int client_flush(struct mm_jsonl_client *c)
{
	while (c->out_pos < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		c->out_pos += n;
	}
	if (c->out_pos == c->out.len) {
		c->out.len = c->out_pos = 0;
		/* Do not keep a huge answer buffer (a listing) for the connection's life. */
		if (c->out.cap > (1u << 20)) {
			free(c->out.data);
			c->out.data = NULL;
			c->out.cap = 0;
		}
	}
	return 0;
}

static int client_read(struct mm_jsonl_client *c)
{
	char chunk[65536];
	ssize_t n = recv(c->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
	size_t start = 0;
	int r;

	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (size_t i = 0; i < (size_t)n; i++) {
		if (chunk[i] != '\n')
			continue;
		if (c->discarding) {
			c->discarding = 0;
		} else if (c->in.len + (i - start) > c->server->lim.max_line) {
			c->in.len = 0;
			r = client_queue(c, mm_jsonl_error("line-too-long", NULL,
							   "request line exceeds %zu bytes",
							   c->server->lim.max_line), NULL);
			if (r < 0)
				return r;
		} else if (c->in.len) {
			r = buf_append(&c->in, chunk + start, i - start);
			if (r < 0)
				return r;
			r = client_line(c, c->in.data, c->in.len);
			c->in.len = 0;
			if (c->in.cap > (1u << 20)) {
				free(c->in.data);
				c->in.data = NULL;
				c->in.cap = 0;
			}
			if (r < 0)
				return r;
		} else {
			r = client_line(c, chunk + start, i - start);
			if (r < 0)
				return r;
		}
		start = i + 1;
	}
	if (start < (size_t)n && !c->discarding) {
		if (c->in.len + (n - start) > c->server->lim.max_line) {
			c->in.len = 0;
			c->discarding = 1;
			r = client_queue(c, mm_jsonl_error("line-too-long", NULL,
							   "request line exceeds %zu bytes; "
							   "discarded up to the next newline",
							   c->server->lim.max_line), NULL);
			if (r < 0)
				return r;
		} else {
			r = buf_append(&c->in, chunk + start, n - start);
			if (r < 0)
				return r;
		}
	}
	/* A short read drained the socket: skip the recv that would only say
	 * EAGAIN (one syscall less per request for a ping-pong client). */
	return n == sizeof(chunk) ? 2 : 1;
}

static void client_drop(struct mm_jsonl_client *c, int r)
{
	if (r == -ENOBUFS)
		log_warn("client pid %d uid %u: %zu bytes of answers unread; disconnected",
			 (int)c->peer.pid, (unsigned)c->peer.uid, c->out.len - c->out_pos);
	client_free(c);
}

static int client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mm_jsonl_client *c = userdata;
	int r = 0;

	(void)s;
	(void)fd;
	if (revents & EPOLLIN) {
		/* Bounded work per wake-up so one busy client cannot starve others. */
		for (int i = 0; i < 16; i++) {
			r = client_read(c);
			if (r <= 1)
				break;
			if (c->out.len - c->out_pos >= c->server->lim.max_out / 2)
				break;
		}
	}
	if (r >= 0)
		r = client_flush(c);
	if (r >= 0 && (revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN))
		r = -ECONNRESET;
	if (r >= 0)
		r = client_update_events(c);
	if (r < 0)
		client_drop(c, r);
	return 0;
}

/* Accept one connection: 1, or 0 when none was waiting. */
static int accept_one(struct mm_jsonl_server *s)
{
	struct mm_jsonl_client *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int cfd;

	cfd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return 0;
	if (s->n_clients >= s->lim.max_clients) {
		log_warn("%s: client limit %u reached; connection refused", s->path,
			 s->lim.max_clients);
		close(cfd);
		return 0;
	}
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		close(cfd);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return 0;
	}
	c->server = s;
	c->fd = cfd;
	c->peer = (struct mm_jsonl_peer){ .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
	len = sizeof(c->peer.groups);
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERGROUPS, c->peer.groups, &len) == 0)
		c->peer.n_groups = len / sizeof(gid_t);
	if (s->authorize && s->authorize(s->userdata, &c->peer) < 0) {
		log_warn("%s: uid %u (pid %d) is not allowed; connection closed", s->path,
			 (unsigned)cred.uid, (int)cred.pid);
		client_free(c);
		return 0;
	}
	if (sd_event_add_io(s->ev, &c->io, cfd, EPOLLIN, client_io, c) < 0) {
		client_free(c);
		return 0;
	}
	c->next = s->clients;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &s->clients;
	s->clients = c;
	s->n_clients++;
	return 1;
}

static int server_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	(void)src;
	(void)fd;
	(void)revents;
	(void)accept_one(userdata);
	return 0;
}

/* ---- serving during a long piece of work (mm_jsonl_server_poll) ---- */

static void client_hold(struct mm_jsonl_client *c)
{
	if (!c->held) {
		c->held = true;
		sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
	}
	sd_event_source_set_enabled(c->server->resume, SD_EVENT_ONESHOT);
}

/* The first complete line of a held client's input (without its '\n'),
 * or NULL. */
static const char *backlog_line(const struct mm_jsonl_client *c, size_t *ret_len)
{
	const char *nl = c->in.len ? memchr(c->in.data, '\n', c->in.len) : NULL;

	if (!nl)
		return NULL;
	*ret_len = (size_t)(nl - c->in.data);
	return c->in.data;
}

static void backlog_consume(struct mm_jsonl_client *c, size_t len)
{
	memmove(c->in.data, c->in.data + len + 1, c->in.len - len - 1);
	c->in.len -= len + 1;
}

/* The next request of a held client, read-only or not. */
static int client_poll_line(struct mm_jsonl_client *c, const char *line, size_t len)
{
	struct mm_jsonl_server *s = c->server;
	size_t plen = len;
	json_error_t jerr;
	json_t *req;

	if (len > s->lim.max_line) {
		backlog_consume(c, len);
		return client_queue(c, mm_jsonl_error("line-too-long", NULL,
						      "request line exceeds %zu bytes",
						      s->lim.max_line), NULL);
	}
	req = parse_line(line, &plen, &jerr);
	if (req && json_is_object(req) && (!s->readonly || !s->readonly(s->userdata, req))) {
		/* It may change something: in order, after the work under way. */
		json_decref(req);
		c->parked = true;
		return 0;
	}
	backlog_consume(c, len);
	if (plen == 0)
		return 0;
	if (!req)
		return client_queue(c, mm_jsonl_error("invalid-json", NULL,
						      "invalid JSON at column %d: %s",
						      jerr.column, jerr.text), NULL);
	return client_request(c, req);
}

/* One turn of a client during a poll: what it sent is read once (into its
 * backlog, the client held), its next request answered when read-only,
 * else the client parked.  0 or -errno (drop it). */
static int client_poll(struct mm_jsonl_client *c)
{
	const char *line;
	size_t len;
	int r = client_flush(c);

	if (r < 0 || c->parked)
		return r;
	line = backlog_line(c, &len);
	if (!line) {
		char chunk[65536];
		ssize_t n;

		if (c->discarding || c->in.len > c->server->lim.max_line) {
			/* The loop's reader knows what to answer. */
			c->parked = true;
			client_hold(c);
			return 0;
		}
		n = recv(c->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0 && !backlog_line(c, &len))
			return -ECONNRESET;  /* gone, nothing left to do for it */
		client_hold(c);
		if (n == 0) {
			/* Gone: its requests still count, then the loop sees the end. */
			c->parked = true;
			return 0;
		}
		r = buf_append(&c->in, chunk, (size_t)n);
		if (r < 0)
			return r;
		line = backlog_line(c, &len);
	}
	if (line)
		r = client_poll_line(c, line, len);
	if (r == 0)
		r = client_flush(c);
	if (r == 0 && !c->parked && !backlog_line(c, &len)) {
		/* Only a partial line left: the loop's reader continues it. */
		c->held = false;
		r = sd_event_source_set_enabled(c->io, SD_EVENT_ON);
		if (r >= 0)
			r = client_update_events(c);
	}
	return r < 0 ? r : 0;
}

int mm_jsonl_server_poll(struct mm_jsonl_server *s)
{
	struct mm_jsonl_client *c, *next;

	if (!s || s->polling)
		return 0;
	s->polling = true;
	for (unsigned i = 0; i < s->lim.max_clients && accept_one(s) > 0; i++)
		;
	for (c = s->clients; c; c = next) {
		int r;

		next = c->next;
		if (c->busy)
			continue;
		r = client_poll(c);
		if (r < 0)
			client_drop(c, r);
	}
	s->polling = false;
	return 0;
}

static struct mm_jsonl_client *first_held(const struct mm_jsonl_server *s)
{
	struct mm_jsonl_client *c = s->clients;

	while (c && !c->held)
		c = c->next;
	return c;
}

/* Back in the loop: the held clients' requests, in the order each sent
 * them, one client at a time (a request may run long and poll again). */
static int server_resume(sd_event_source *src, void *userdata)
{
	struct mm_jsonl_server *s = userdata;
	struct mm_jsonl_client *c;

	(void)src;
	while ((c = first_held(s))) {
		const char *line;
		size_t len;
		int r = 0;

		c->held = c->parked = false;
		while (r >= 0 && (line = backlog_line(c, &len))) {
			if (len > s->lim.max_line)
				r = client_queue(c, mm_jsonl_error("line-too-long", NULL,
								   "request line exceeds %zu bytes",
								   s->lim.max_line), NULL);
			else
				r = client_line(c, line, len);  /* c is busy: its input stays */
			backlog_consume(c, len);
		}
		if (r >= 0)
			r = client_flush(c);
		if (r >= 0)
			r = sd_event_source_set_enabled(c->io, SD_EVENT_ON);
		if (r >= 0)
			r = client_update_events(c);
		if (r < 0)
			client_drop(c, r);
	}
	return 0;
}

int mm_jsonl_server_new(sd_event *ev, const char *path, mode_t mode, gid_t gid,
			const struct mm_jsonl_limits *limits, mm_jsonl_handler handler,
			mm_jsonl_authorize authorize, void *userdata,
			struct mm_jsonl_server **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mm_jsonl_server *s;
	mode_t old;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->ev = ev;
	s->lim = *limits;
	s->handler = handler;
	s->authorize = authorize;
	s->userdata = userdata;
	s->path = strdup(path);
	if (!s->path) {
		r = -ENOMEM;
		goto fail;
	}
	strcpy(sa.sun_path, path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		r = -errno;
		goto fail;
	}
	unlink(path);
	/* Create the socket file with no access, then open it up: no window in
	 * which anyone else can connect. */
	old = umask(0777);
	r = bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0)
		goto fail;
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0) {
		r = -errno;
		goto fail;
	}
	if (chmod(path, mode) < 0 || listen(s->fd, SOMAXCONN) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(ev, &s->io, s->fd, EPOLLIN, server_accept, s);
	if (r >= 0)
		r = sd_event_add_defer(ev, &s->resume, server_resume, s);
	if (r >= 0)
		r = sd_event_source_set_enabled(s->resume, SD_EVENT_OFF);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	mm_jsonl_server_free(s);
	return r;
}

void mm_jsonl_server_free(struct mm_jsonl_server *s)
{
	if (!s)
		return;
	while (s->clients)
		client_free(s->clients);
	sd_event_source_disable_unref(s->resume);
	sd_event_source_disable_unref(s->io);
	if (s->fd >= 0) {
		close(s->fd);
		unlink(s->path);
	}
	free(s->path);
	free(s);
}

void mm_jsonl_server_set_readonly(struct mm_jsonl_server *s, mm_jsonl_readonly readonly)
{
	s->readonly = readonly;
}

unsigned mm_jsonl_server_clients(const struct mm_jsonl_server *s)
{
	return s->n_clients;
}

int mm_jsonl_client_reply_raw(struct mm_jsonl_client *c, const char *result, size_t len,
			      const json_t *id)
{
	static const char head[] = "{\"ok\":true,\"result\":";
	char *idtext = NULL;
	int r;

	if (id) {
		idtext = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!idtext)
			return -ENOMEM;
	}
	r = buf_append(&c->out, head, sizeof(head) - 1);
	if (r == 0)
		r = buf_append(&c->out, result, len);
	if (r == 0 && idtext) {
		r = buf_append(&c->out, ",\"id\":", 6);
		if (r == 0)
			r = buf_append(&c->out, idtext, strlen(idtext));
	}
	if (r == 0)
		r = buf_append(&c->out, "}\n", 2);
	free(idtext);
	if (r == 0)
		c->replied = true;
	return r;
}

void mm_jsonl_client_subscribe(struct mm_jsonl_client *c)
{
	c->subscribed = true;
}

void mm_jsonl_server_broadcast(struct mm_jsonl_server *s, const char *line, size_t len)
{
	struct mm_jsonl_client *c, *next;

	if (!s)
		return;
	for (c = s->clients; c; c = next) {
		int r;

		next = c->next;
		if (!c->subscribed)
			continue;
		r = buf_append(&c->out, line, len);
		if (r == 0)
			r = buf_append(&c->out, "\n", 1);
		if (r == 0 && c->out.len - c->out_pos > s->lim.max_out)
			r = -ENOBUFS;
		if (r == 0)
			r = client_flush(c);
		if (r == 0)
			r = client_update_events(c);
		if (r < 0) {
			log_warn("subscriber pid %d uid %u: %zu bytes of events unread; disconnected",
				 (int)c->peer.pid, (unsigned)c->peer.uid, c->out.len - c->out_pos);
			client_free(c);
		}
	}
}
