/* A tiny HTTP/1.x server for GET /metrics, inside the daemon's loop.
 *
 * One short request per connection, answered with Connection: close.
 * Nothing here blocks: every socket is non-blocking, a connection has
 * MM_HTTP_HEAD_TIMEOUT_USEC to send its whole request head and lives at
 * most MM_HTTP_TIMEOUT_USEC (a client that sends nothing, or does not read
 * its answer, is dropped then), its request head is at most
 * MM_HTTP_HEAD_MAX bytes, and at most MM_HTTP_MAX_CONN are open at once:
 * while full, a new one takes the place of the oldest that has not sent a
 * whole request yet, or waits in the listen backlog when every one has.
 * Out of file descriptors (EMFILE, ENFILE), the listener rests for
 * MM_HTTP_ACCEPT_PAUSE_USEC instead of waking the loop again at once. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the request parser (pure) ---- */

static bool tchar(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The end of the head: the offset after the blank line, 0 when not yet. */
static size_t head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

int mm_http_parse(const char *buf, size_t len)
{
	size_t m, t0, t1, v0, eol, i;
	bool metrics;

	if (len > MM_HTTP_HEAD_MAX)
		len = MM_HTTP_HEAD_MAX;
	if (!head_end(buf, len))
		return len >= MM_HTTP_HEAD_MAX ? 431 : 0;
	/* The request line: METHOD SP TARGET SP HTTP/1.x (CR)LF. */
	for (eol = 0; buf[eol] != '\n'; eol++)
		;
	if (eol && buf[eol - 1] == '\r')
		eol--;
	for (m = 0; m < eol && tchar(buf[m]); m++)
		;
	if (m == 0 || m >= eol || buf[m] != ' ')
		return 400;
	t0 = m + 1;
	for (t1 = t0; t1 < eol && buf[t1] > ' ' && buf[t1] < 0x7f; t1++)
		;
	if (t1 == t0 || t1 >= eol || buf[t1] != ' ')
		return 400;
	v0 = t1 + 1;
	if (eol - v0 != 8 || memcmp(buf + v0, "HTTP/1.", 7) != 0)
		return eol - v0 >= 5 && !memcmp(buf + v0, "HTTP/", 5) ? 505 : 400;
	if (buf[v0 + 7] != '0' && buf[v0 + 7] != '1')
		return 505;
	/* The header lines: no control characters but tab (CR only before LF). */
	for (i = eol; i < len && !(buf[i] == '\n' && (buf[i + 1] == '\n' || buf[i + 1] == '\r'));
	     i++) {
		unsigned char c = (unsigned char)buf[i];

		if ((c < ' ' && c != '\t' && c != '\r' && c != '\n') || c == 0x7f ||
		    (c == '\r' && buf[i + 1] != '\n'))
			return 400;
	}
	if (buf[t0] != '/')
		return 400;
	metrics = t1 - t0 >= 8 && !memcmp(buf + t0, "/metrics", 8) &&
		  (t1 - t0 == 8 || buf[t0 + 8] == '?');
	if (m != 3 || memcmp(buf, "GET", 3) != 0)
		return 405;
	return metrics ? 200 : 404;
}

/* ---- the server ---- */

struct conn {
	struct mm_http *h;
	int fd;
	sd_event_source *io, *timer;
	char in[MM_HTTP_HEAD_MAX];
	size_t n_in;
	char *out;
	size_t n_out, sent;
	uint64_t opened;  /* CLOCK_MONOTONIC usec of the accept */
	bool draining;  /* answered: read and drop what comes until EOF */
};

struct mm_http {
	sd_event *ev;
	int fd;
	sd_event_source *listen_src;
	sd_event_source *pause_src;  /* the listener resting after EMFILE/ENFILE */
	mm_http_render_fn render;
	void *userdata;
	struct conn *conn[MM_HTTP_MAX_CONN];
	size_t n_conn;
};

static void conn_free(struct conn *c)
{
	struct mm_http *h = c->h;

	for (size_t i = 0; i < h->n_conn; i++)
		if (h->conn[i] == c) {
			h->conn[i] = h->conn[--h->n_conn];
			break;
		}
	sd_event_source_disable_unref(c->io);
	sd_event_source_disable_unref(c->timer);
	close(c->fd);
	free(c->out);
	free(c);
	/* Room again: accept what waits in the backlog (unless resting). */
	if (h->listen_src && !h->pause_src)
		sd_event_source_set_enabled(h->listen_src, SD_EVENT_ON);
}

static const struct {
	int status;
	const char *text;
} status_texts[] = {
	{ 200, "OK" },
	{ 400, "Bad Request" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 505, "HTTP Version Not Supported" },
};

static const char *status_text(int status)
{
	for (size_t i = 0; i < sizeof(status_texts) / sizeof(status_texts[0]); i++)
		if (status_texts[i].status == status)
			return status_texts[i].text;
	return "Bad Request";
}

static void respond(struct conn *c, int status)
{
	char *body = NULL, *out = NULL;
	const char *type = "text/plain; charset=utf-8";
	int n;

	if (status == 200) {
		body = c->h->render(c->h->userdata);
		if (!body)
			status = 500;
		else
			type = "text/plain; version=0.0.4; charset=utf-8";
	}
	if (!body && asprintf(&body, "%d %s\n", status, status_text(status)) < 0)
		body = NULL;
	n = asprintf(&out,
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n%s",
		     status, status_text(status), type, body ? strlen(body) : 0,
		     status == 405 ? "Allow: GET\r\n" : "", body ? body : "");
	free(body);
	if (n < 0) {
		conn_free(c);
		return;
	}
	c->out = out;
	c->n_out = (size_t)n;
	c->sent = 0;
	sd_event_source_set_io_events(c->io, EPOLLOUT);
}

static int on_conn(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct conn *c = userdata;
	ssize_t r;

	(void)s;
	if (c->draining) {
		/* Closing with unread bytes would reset the connection, and the
		 * client could lose the answer: they are read until the client
		 * closes (or the connection's time is up). */
		r = recv(fd, c->in, sizeof(c->in), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			conn_free(c);
		return 0;
	}
	if (c->out) {
		r = send(fd, c->out + c->sent, c->n_out - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (r <= 0) {
			conn_free(c);
		} else if ((c->sent += (size_t)r) == c->n_out) {
			c->draining = true;
			shutdown(fd, SHUT_WR);
			sd_event_source_set_io_events(c->io, EPOLLIN);
		}
		return 0;
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		int status;

		r = recv(fd, c->in + c->n_in, sizeof(c->in) - c->n_in, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (r <= 0) {  /* closed or failed before a whole request */
			conn_free(c);
			return 0;
		}
		c->n_in += (size_t)r;
		status = mm_http_parse(c->in, c->n_in);
		if (status) {
			/* The head is in: from now the connection's whole life
			 * counts, not the head's time. */
			(void)sd_event_source_set_time(c->timer, c->opened + MM_HTTP_TIMEOUT_USEC);
			respond(c, status);
		}
	}
	return 0;
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s;
	(void)usec;
	conn_free(userdata);
	return 0;
}

/* The oldest connection that has not sent a whole request head yet; NULL
 * when every one has (they are answered, and end soon). */
static struct conn *oldest_idle(struct mm_http *h)
{
	struct conn *best = NULL;

	for (size_t i = 0; i < h->n_conn; i++)
		if (!h->conn[i]->out && (!best || h->conn[i]->opened < best->opened))
			best = h->conn[i];
	return best;
}

static int on_pause_end(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mm_http *h = userdata;

	(void)usec;
	(void)s;
	h->pause_src = sd_event_source_disable_unref(h->pause_src);
	sd_event_source_set_enabled(h->listen_src, SD_EVENT_ON);
	return 0;
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct mm_http *h = userdata;
	uint64_t now;

	(void)revents;
	for (;;) {
		struct conn *c, *victim = NULL;
		int cfd;

		if (h->n_conn >= MM_HTTP_MAX_CONN && !(victim = oldest_idle(h)))
			break;
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The connection stays in the backlog, and the
				 * listener would wake the loop again at once:
				 * it rests a while (only with a timer to wake
				 * it: never off for good). */
				if (!h->pause_src)
					(void)sd_event_add_time_relative(h->ev, &h->pause_src,
									 CLOCK_MONOTONIC,
									 MM_HTTP_ACCEPT_PAUSE_USEC,
									 0, on_pause_end, h);
				if (h->pause_src)
					sd_event_source_set_enabled(s, SD_EVENT_OFF);
			}
			return 0;  /* EAGAIN, or an aborted connection: nothing to do */
		}
		/* Full: the oldest that has not asked yet makes room. */
		if (victim)
			conn_free(victim);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(cfd);
			return 0;
		}
		c->h = h;
		c->fd = cfd;
		if (sd_event_now(h->ev, CLOCK_MONOTONIC, &now) < 0 ||
		    sd_event_add_io(h->ev, &c->io, cfd, EPOLLIN, on_conn, c) < 0 ||
		    sd_event_add_time(h->ev, &c->timer, CLOCK_MONOTONIC,
				      now + MM_HTTP_HEAD_TIMEOUT_USEC, 0, on_conn_timeout, c) < 0) {
			sd_event_source_disable_unref(c->io);
			close(cfd);
			free(c);
			return 0;
		}
		c->opened = now;
		h->conn[h->n_conn++] = c;
	}
	/* Full of answered ones: the next wait in the backlog until one closes. */
	sd_event_source_set_enabled(s, SD_EVENT_OFF);
	return 0;
}

int mm_http_new(sd_event *ev, const struct mm_addr *addr, uint16_t port,
		mm_http_render_fn render, void *userdata, struct mm_http **ret)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct mm_http *h;
	int one = 1, r;

	if (addr->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, addr->bytes, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, addr->bytes, 16);
		sl = sizeof(*s6);
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->ev = ev;
	h->render = render;
	h->userdata = userdata;
	h->fd = socket(addr->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (h->fd < 0) {
		r = -errno;
		free(h);
		return r;
	}
	(void)setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(h->fd, (struct sockaddr *)&ss, sl) < 0 || listen(h->fd, 64) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(ev, &h->listen_src, h->fd, EPOLLIN, on_listen, h);
	if (r < 0)
		goto fail;
	*ret = h;
	return 0;
fail:
	close(h->fd);
	free(h);
	return r;
}

void mm_http_free(struct mm_http *h)
{
	if (!h)
		return;
	h->listen_src = sd_event_source_disable_unref(h->listen_src);
	h->pause_src = sd_event_source_disable_unref(h->pause_src);
	while (h->n_conn)
		conn_free(h->conn[0]);
	close(h->fd);
	free(h);
}
