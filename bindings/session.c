/* bindings/session.c: a libmmtrust query handle that answers fail-closed
 * and connects anew after a connection error (session.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bindings/session.h"

struct session {
	struct mmtrust *m;   /* NULL: connect at the next question */
	pid_t pid;           /* the process that made m */
	char *path;
	int timeout_ms;
	int closed;
	char error[512];
};

/* The reasons of answers that did not come from the daemon. */
static const struct {
	int err;
	const char *reason;
} fail_reasons[] = {
	{ EPROTO, "query-refused" },        /* the daemon refused the question */
	{ ETIMEDOUT, "query-timeout" },
	{ ECONNRESET, "query-disconnected" },
	{ EPIPE, "query-disconnected" },
	{ ENOENT, "query-no-daemon" },      /* connecting again found no socket */
	{ ECONNREFUSED, "query-no-daemon" },
	{ EACCES, "query-not-allowed" },
	{ EPERM, "query-not-allowed" },
	{ EBADMSG, "query-bad-answer" },
	{ EMSGSIZE, "query-bad-answer" },
	{ EINVAL, "query-invalid-argument" },
	{ EBADF, "query-closed" },          /* the script closed the handle */
};

static const char *fail_reason(int err)
{
	for (size_t i = 0; i < sizeof(fail_reasons) / sizeof(fail_reasons[0]); i++)
		if (fail_reasons[i].err == err)
			return fail_reasons[i].reason;
	return "query-failed";
}

static const char *op_name(enum session_op op)
{
	static const char *const names[] = {
		[SESSION_INBOUND] = "inbound", [SESSION_OUTBOUND] = "outbound", [SESSION_SPI] = "spi",
	};

	return names[op];
}

int session_new(const char *path, int timeout_ms, struct session **ret)
{
	struct session *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->path = strdup(path ? path : MMTRUST_QUERY_SOCKET);
	s->timeout_ms = timeout_ms;
	if (!s->path) {
		free(s);
		return -ENOMEM;
	}
	r = mmtrust_connect(s->path, s->timeout_ms, &s->m);
	if (r < 0) {
		session_free(s);
		return r;
	}
	s->pid = getpid();
	*ret = s;
	return 0;
}

void session_close(struct session *s)
{
	mmtrust_close(s->m);
	s->m = NULL;
	s->closed = 1;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	mmtrust_close(s->m);
	free(s->path);
	free(s);
}

int session_is_closed(const struct session *s)
{
	return s->closed;
}

const char *session_path(const struct session *s)
{
	return s->path;
}

const char *session_error(const struct session *s)
{
	return s->error;
}

/* A string the script gave must reach the daemon whole. */
static int whole(const char *p, size_t len)
{
	return !p || strlen(p) == len;
}

static int ask(struct session *s, const struct session_query *q, struct mmtrust_answer *ret)
{
	int r;

	if (s->closed)
		return -EBADF;
	if (!whole(q->src, q->src_len) || !whole(q->dst, q->dst_len) ||
	    !whole(q->domain, q->domain_len))
		return -EINVAL;
	/* A handle inherited over fork() (Kamailio forks its workers after
	 * loading the script): the connection is the parent's too, and two
	 * processes reading one socket would take each other's answers.
	 * Closing frees this process's copy only. */
	if (s->m && s->pid != getpid()) {
		mmtrust_close(s->m);
		s->m = NULL;
	}
	if (!s->m) {
		r = mmtrust_connect(s->path, s->timeout_ms, &s->m);
		if (r < 0)
			return r;
		s->pid = getpid();
	}
	switch (q->op) {
	case SESSION_INBOUND:
		r = mmtrust_inbound(s->m, q->src, q->dst, q->spi, ret);
		break;
	case SESSION_OUTBOUND:
		r = mmtrust_outbound(s->m, q->domain, q->dst, q->privacy_id, ret);
		break;
	case SESSION_SPI:
		r = mmtrust_spi(s->m, q->spi, ret);
		break;
	default:
		r = -EINVAL;
	}
	/* A refusal concerns one request; anything else may leave a late
	 * answer or half a line on the connection. */
	if (r < 0 && r != -EPROTO) {
		mmtrust_close(s->m);
		s->m = NULL;
	}
	return r;
}

int session_ask(struct session *s, const struct session_query *q, struct mmtrust_answer *ret)
{
	int r = ask(s, q, ret);

	if (r == 0) {
		s->error[0] = '\0';
		return 0;
	}
	memset(ret, 0, sizeof(*ret));
	ret->pai = MMTRUST_PAI_STRIP;
	snprintf(ret->reason, sizeof(ret->reason), "%s", fail_reason(-r));
	if (r == -EPROTO)
		snprintf(s->error, sizeof(s->error), "%s: mmtrustd refused the request: %s",
			 op_name(q->op), s->m ? mmtrust_last_error(s->m) : "");
	else if (r == -EINVAL)
		snprintf(s->error, sizeof(s->error), "%s: an argument contains a NUL byte",
			 op_name(q->op));
	else if (r == -EBADF)
		snprintf(s->error, sizeof(s->error), "%s: the handle is closed", op_name(q->op));
	else
		snprintf(s->error, sizeof(s->error), "%s: %s (%s)", op_name(q->op), strerror(-r),
			 s->path);
	return r;
}
