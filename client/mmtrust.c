/* libmmtrust: the line transport (mmtrust.h: failure rules). */
#include "mmtrust.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"
#include "transport.h"

/* Lines a typed call discards (other ids, events) before it gives up. */
#define MAX_DISCARDED 1024

struct mmtrust {
	int fd;                 /* -1: reset, connected again on the next call */
	int timeout_ms;
	int backoff_ms;
	long long backoff_until;  /* CLOCK_MONOTONIC ms; calls before it: -EAGAIN */
	int64_t last_id;
	bool subscribed;        /* an event stream: unasked lines are events */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char error[256];        /* mmtrust_last_error() */
	char *buf;              /* bytes received after the last line taken */
	size_t len, cap;
	pid_t pid;              /* the process the connection belongs to */
	struct mmtrust_snap *snap;  /* in-process answers (snapshot.h) */
};

static const struct {
	int err;
	const char *text;
} error_texts[] = {
	{ ETIMEDOUT, "timeout" },
	{ EAGAIN, "back-off" },
	{ ECONNRESET, "connection lost" },
	{ EPIPE, "connection lost" },
	{ ENOENT, "no daemon (no socket)" },
	{ ECONNREFUSED, "no daemon (connection refused)" },
	{ EACCES, "permission denied" },
	{ EBADMSG, "bad answer" },
	{ EMSGSIZE, "answer too long" },
	{ ENOMEM, "out of memory" },
	{ ENOTCONN, "not connected" },
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The deadline of a call starting now; 0: none. */
static long long deadline_of(int timeout_ms)
{
	return timeout_ms > 0 ? now_ms() + timeout_ms : 0;
}

/* Milliseconds left before deadline: -1 for none, 0 when past. */
static int left_ms(long long deadline)
{
	long long left;

	if (!deadline)
		return -1;
	left = deadline - now_ms();
	return left > 0 ? (int)left : 0;
}

void mmtrust__set_error(struct mmtrust *m, const char *text)
{
	snprintf(m->error, sizeof(m->error), "%s", text ? text : "");
}

static void set_errno_text(struct mmtrust *m, int r)
{
	for (size_t i = 0; i < sizeof(error_texts) / sizeof(error_texts[0]); i++)
		if (error_texts[i].err == -r) {
			mmtrust__set_error(m, error_texts[i].text);
			return;
		}
	mmtrust__set_error(m, strerror(-r));
}

void mmtrust__reset(struct mmtrust *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	m->len = 0;
	m->subscribed = false;
}

/* A new connection to m->path within deadline.  SO_SNDTIMEO bounds an
 * AF_UNIX connect: when the listener's backlog is full the kernel waits
 * that long for room (a non-blocking connect would fail with EAGAIN at
 * once, and poll() cannot wait for room), then fails with EAGAIN. */
static int reconnect(struct mmtrust *m, long long deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	mmtrust__reset(m);
	memcpy(sa.sun_path, m->path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		int left = left_ms(deadline);
		struct timeval tv = { .tv_sec = left / 1000, .tv_usec = left % 1000 * 1000 };

		if (left == 0) {
			r = -ETIMEDOUT;
			break;
		}
		if (left > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
			r = -errno;
			break;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			m->fd = fd;
			return 0;
		}
		r = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
		if (r != -EINTR)
			break;
	}
	close(fd);
	return r;
}

static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&p, 1, left_ms(deadline));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/* The request and its newline, all of it, or an error.  -ECONNRESET when
 * the daemon had closed the connection (EPIPE): then nothing arrived, a
 * stream socket's peer cannot read after close. */
static int send_line(struct mmtrust *m, const char *request, size_t len, long long deadline)
{
	size_t sent = 0;
	int r;

	while (sent <= len) {
		struct iovec iov[2] = {
			{ .iov_base = (char *)request + (sent < len ? sent : len),
			  .iov_len = sent < len ? len - sent : 0 },
			{ .iov_base = "\n", .iov_len = 1 },
		};
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t n;

		r = wait_fd(m->fd, POLLOUT, deadline);
		if (r < 0)
			return r;
		n = sendmsg(m->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return errno == EPIPE ? -ECONNRESET : -errno;
		}
		sent += n;
	}
	return 0;
}

/* One line from the connection (without its newline, malloc'd). */
static int recv_line(struct mmtrust *m, size_t max, long long deadline, char **ret)
{
	size_t scanned = 0, alen;
	char *nl, *line;
	int r;

	for (;;) {
		ssize_t n;

		nl = m->len ? memchr(m->buf + scanned, '\n', m->len - scanned) : NULL;
		if (nl)
			break;
		scanned = m->len;
		if (m->len >= max)
			return -EMSGSIZE;
		if (m->cap - m->len < 65536) {
			size_t cap = m->cap ? m->cap * 2 : 65536;
			char *b = realloc(m->buf, cap);

			if (!b)
				return -ENOMEM;
			m->buf = b;
			m->cap = cap;
		}
		r = wait_fd(m->fd, POLLIN, deadline);
		if (r < 0)
			return r;
		n = recv(m->fd, m->buf + m->len, m->cap - m->len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		m->len += n;
	}
	alen = nl - m->buf;
	line = malloc(alen + 1);
	if (!line)
		return -ENOMEM;
	memcpy(line, m->buf, alen);
	line[alen] = '\0';
	m->len -= alen + 1;
	memmove(m->buf, nl + 1, m->len);
	*ret = line;
	return 0;
}

/* Bytes nobody asked for, or the daemon's close, on a connection that is
 * not an event stream: it is out of step (or dead), so it is replaced
 * before a request goes out rather than read. */
static bool out_of_step(struct mmtrust *m)
{
	struct pollfd p = { .fd = m->fd, .events = POLLIN };

	if (m->subscribed)
		return false;
	return m->len > 0 || (poll(&p, 1, 0) > 0 && p.revents);
}

/* One attempt on the current (or a new) connection.  *delivered: the
 * whole request went out, so the daemon may have acted on it. */
static int attempt(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		   mmtrust__match_fn match, void *userdata, long long deadline, bool *delivered,
		   char **ret_line)
{
	unsigned discarded = 0;
	char *line;
	int r;

	*delivered = false;
	if (m->fd >= 0 && out_of_step(m))
		mmtrust__reset(m);
	if (m->fd < 0) {
		r = reconnect(m, deadline);
		if (r < 0)
			return r;
	}
	r = send_line(m, request, len, deadline);
	if (r < 0)
		return r;
	*delivered = true;
	for (;;) {
		r = recv_line(m, max_answer, deadline, &line);
		if (r < 0)
			return r;
		r = match ? match(m, line, userdata) : 1;
		if (r > 0)
			break;
		free(line);
		if (r < 0)
			return r;
		if (++discarded > MAX_DISCARDED)
			return -EBADMSG;
	}
	*ret_line = line;
	return 0;
}

int mmtrust__exchange(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		      bool idempotent, mmtrust__match_fn match, void *userdata, char **ret_line)
{
	long long deadline;
	bool delivered;
	int r;

	if (!request || memchr(request, '\n', len))
		return -EINVAL;
	mmtrust__set_error(m, NULL);
	/* A handle used after fork(): the connection is the parent's too, and
	 * the two would read each other's answers.  The child gets its own. */
	if (m->pid != getpid()) {
		if (m->fd >= 0)
			close(m->fd);
		m->fd = -1;
		m->len = 0;
		m->subscribed = false;
		m->pid = getpid();
	}
	if (m->backoff_until && now_ms() < m->backoff_until) {
		r = -EAGAIN;
		goto fail;
	}
	m->backoff_until = 0;
	if (!max_answer)
		max_answer = 1u << 30;
	deadline = deadline_of(m->timeout_ms);
	for (int tries = 0;; tries++) {
		r = attempt(m, request, len, max_answer, match, userdata, deadline, &delivered,
			    ret_line);
		if (r == 0)
			return 0;
		/* Whatever the error, this connection is not read again. */
		mmtrust__reset(m);
		if (r == -ETIMEDOUT) {
			if (m->backoff_ms > 0)
				m->backoff_until = now_ms() + m->backoff_ms;
			break;
		}
		if (tries > 0 || (delivered && !idempotent))
			break;
		if (r != -ECONNRESET && r != -EPIPE && r != -ENOENT && r != -ECONNREFUSED)
			break;
	}
fail:
	if (!m->error[0])
		set_errno_text(m, r);
	return r;
}

int mmtrust_connect(const char *path, int timeout_ms, struct mmtrust **ret)
{
	struct mmtrust *m;
	int r;

	if (!path || strlen(path) >= sizeof(m->path))
		return -ENAMETOOLONG;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->fd = -1;
	m->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	m->backoff_ms = MMTRUST_DEFAULT_BACKOFF_MS;
	m->pid = getpid();
	m->snap = mmtrust__snap_new();
	strcpy(m->path, path);
	r = reconnect(m, deadline_of(m->timeout_ms));
	if (r < 0) {
		mmtrust_close(m);
		return r;
	}
	*ret = m;
	return 0;
}

void mmtrust_close(struct mmtrust *m)
{
	if (!m)
		return;
	if (m->fd >= 0)
		close(m->fd);
	mmtrust__snap_free(m->snap);
	free(m->buf);
	free(m);
}

int mmtrust_set_snapshot(struct mmtrust *m, int max_age_ms)
{
	if (!m || !m->snap)
		return -ENOMEM;
	mmtrust__snap_set_max_age(m->snap, max_age_ms);
	return 0;
}

struct mmtrust_snap *mmtrust__snap_of(struct mmtrust *m)
{
	return m ? m->snap : NULL;
}

int mmtrust__peer_uid(struct mmtrust *m, uid_t *ret)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (m->fd < 0 || getsockopt(m->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -ENOTCONN;
	*ret = cred.uid;
	return 0;
}

void mmtrust_set_backoff(struct mmtrust *m, int ms)
{
	if (!m)
		return;
	m->backoff_ms = ms > 0 ? ms : 0;
	if (!m->backoff_ms)
		m->backoff_until = 0;
}

int mmtrust_call(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		 char **ret_answer)
{
	if (!m)
		return -ENOTCONN;
	return mmtrust__exchange(m, request, len, max_answer, false, NULL, NULL, ret_answer);
}

const char *mmtrust_last_error(const struct mmtrust *m)
{
	return m ? m->error : "no handle";
}

int64_t mmtrust__next_id(struct mmtrust *m)
{
	return ++m->last_id;
}

void mmtrust__set_subscribed(struct mmtrust *m)
{
	m->subscribed = true;
}

int mmtrust__read_event_line(struct mmtrust *m, int timeout_ms, char **ret_line)
{
	int r;

	if (m->fd < 0 || !m->subscribed) {
		mmtrust__set_error(m, "not subscribed (subscribe again)");
		return -ENOTCONN;
	}
	mmtrust__set_error(m, NULL);
	r = recv_line(m, 1u << 20, timeout_ms < 0 ? 0 : now_ms() + timeout_ms, ret_line);
	/* poll() with 0 left: a zero timeout polls once. */
	if (r == -ETIMEDOUT)
		return r;
	if (r < 0) {
		mmtrust__reset(m);
		set_errno_text(m, r);
	}
	return r;
}
