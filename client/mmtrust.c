#include "mmtrust.h"
#include "snapshot.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct mmtrust {
	int fd;
	int timeout_ms;
	char error[256];    /* the daemon's last refusal */
	char *buf;      /* bytes received after the last answer */
	size_t len, cap;
	struct mmtrust_snap *snap;  /* in-process answers (snapshot.h) */
};

int mmtrust_connect(const char *path, int timeout_ms, struct mmtrust **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct mmtrust *m;
	int r;

	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->fd = -1;
	m->timeout_ms = timeout_ms;
	m->snap = mmtrust__snap_new();
	m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0) {
		r = -errno;
		free(m);
		return r;
	}
	if (connect(m->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
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

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int wait_fd(struct mmtrust *m, short events, long long deadline)
{
	struct pollfd p = { .fd = m->fd, .events = events };
	int left = -1, r;

	if (m->timeout_ms > 0) {
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
	}
	do
		r = poll(&p, 1, left);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

int mmtrust_call(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		 char **ret_answer)
{
	long long deadline = now_ms() + m->timeout_ms;
	size_t sent = 0, scanned = 0;
	char *nl;
	int r;

	if (request && memchr(request, '\n', len))
		return -EINVAL;
	if (!max_answer)
		max_answer = 1u << 30;
	while (request && sent <= len) {
		struct iovec iov[2] = {
			{ .iov_base = (char *)request + (sent < len ? sent : len),
			  .iov_len = sent < len ? len - sent : 0 },
			{ .iov_base = "\n", .iov_len = 1 },
		};
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t n;

		r = wait_fd(m, POLLOUT, deadline);
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
	for (;;) {
		ssize_t n;

		nl = m->buf ? memchr(m->buf + scanned, '\n', m->len - scanned) : NULL;
		if (nl)
			break;
		scanned = m->len;
		if (m->len >= max_answer)
			return -EMSGSIZE;
		if (m->cap - m->len < 65536) {
			size_t cap = m->cap ? m->cap * 2 : 65536;
			char *b = realloc(m->buf, cap);

			if (!b)
				return -ENOMEM;
			m->buf = b;
			m->cap = cap;
		}
		r = wait_fd(m, POLLIN, deadline);
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
	{
		size_t alen = nl - m->buf;
		char *answer = malloc(alen + 1);

		if (!answer)
			return -ENOMEM;
		memcpy(answer, m->buf, alen);
		answer[alen] = '\0';
		m->len -= alen + 1;
		memmove(m->buf, nl + 1, m->len);
		*ret_answer = answer;
	}
	return 0;
}

const char *mmtrust_last_error(const struct mmtrust *m)
{
	return m->error;
}

/* For query.c: set the refusal text. */
void mmtrust__set_error(struct mmtrust *m, const char *text);
void mmtrust__set_error(struct mmtrust *m, const char *text)
{
	snprintf(m->error, sizeof(m->error), "%s", text ? text : "");
}

/* For query.c: wait up to timeout_ms (< 0: for ever) for one line. */
int mmtrust__read_line(struct mmtrust *m, int timeout_ms, char **ret);
int mmtrust__read_line(struct mmtrust *m, int timeout_ms, char **ret)
{
	int saved = m->timeout_ms, r;

	m->timeout_ms = timeout_ms < 0 ? 0 : timeout_ms ? timeout_ms : 1;
	r = mmtrust_call(m, NULL, 0, 0, ret);
	m->timeout_ms = saved;
	return r;
}

int mmtrust_set_snapshot(struct mmtrust *m, int max_age_ms)
{
	if (!m->snap)
		return -ENOMEM;
	mmtrust__snap_set_max_age(m->snap, max_age_ms);
	return 0;
}

/* For query.c: the handle's snapshot reader, told where the daemon
 * writes the files and which user owns them the first time (ping's
 * "snapshot", SO_PEERCRED of this connection).  NULL: none. */
struct mmtrust_snap *mmtrust__snap(struct mmtrust *m);
struct mmtrust_snap *mmtrust__snap(struct mmtrust *m)
{
	static const char ping[] = "{\"op\":\"ping\"}";
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char *answer = NULL, *p, *e;

	if (!m->snap)
		return NULL;
	if (mmtrust__snap_has_path(m->snap))
		return m->snap;
	if (getsockopt(m->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    mmtrust_call(m, ping, sizeof(ping) - 1, 4096, &answer) < 0)
		return NULL;
	/* The daemon writes "snapshot":"<path>" or "snapshot":null; a path
	 * holds no '"' (the daemon's own configuration). */
	p = strstr(answer, "\"snapshot\":\"");
	if (p) {
		p += strlen("\"snapshot\":\"");
		e = strchr(p, '"');
		if (e)
			*e = '\0';
	}
	mmtrust__snap_set_path(m->snap, p && e ? p : "", cred.uid);
	free(answer);
	return m->snap;
}
