/* bindings/session.h: what the Lua and Python bindings share below their
 * language's API: a query handle that answers fail-closed.
 *
 * A session is a libmmtrust handle plus the path and timeout it was made
 * with.  session_ask() always fills the answer: on any error it is a
 * zeroed answer with pai MMTRUST_PAI_STRIP and reason one of the
 * "query-*" texts below (never a reason the daemon gives), so a caller
 * that reads only pai can never keep P-Asserted-Identity on an error.
 *
 * After an error of the connection (anything but the daemon's refusal of
 * one request, -EPROTO) the session drops the libmmtrust handle and the
 * next question connects anew: an answer that arrives after its request
 * timed out is then never read as the answer to a later question, and a
 * restarted daemon is found again without the script doing anything.
 * A session used in a child process after fork() connects anew there too
 * (the inherited connection stays the parent's).
 *
 * Not thread-safe (nor is libmmtrust's handle): the Python binding holds
 * its own lock around every call on a session.  Functions return 0 or a
 * negative errno. */
#ifndef MMTRUST_BINDINGS_SESSION_H
#define MMTRUST_BINDINGS_SESSION_H

#include <stdint.h>

#include "client/mmtrust.h"

/* What the bindings use when the script gives no timeout: a SIP worker
 * waits at most this long for an answer before it strips. */
#define SESSION_DEFAULT_TIMEOUT_MS 500

struct session;

enum session_op { SESSION_INBOUND, SESSION_OUTBOUND, SESSION_SPI };

/* One question.  Strings are borrowed for the call; len_* are their
 * lengths as the script gave them (a string with a NUL byte before its
 * length is refused with reason "query-invalid-argument", never cut). */
struct session_query {
	enum session_op op;
	const char *src, *dst, *domain;   /* NULL: not given */
	size_t src_len, dst_len, domain_len;
	uint32_t spi;                     /* 0: not given */
	int privacy_id;
};

/* Connect to path (NULL: MMTRUST_QUERY_SOCKET) with timeout_ms for every
 * later request (0: wait for ever, as libmmtrust).  -ENOMEM, or
 * mmtrust_connect()'s error: there is no session without a daemon. */
int session_new(const char *path, int timeout_ms, struct session **ret);
/* Close the connection; every later question answers reason
 * "query-closed".  Idempotent. */
void session_close(struct session *s);
void session_free(struct session *s);  /* accepts NULL */
int session_is_closed(const struct session *s);
const char *session_path(const struct session *s);

/* Ask q.  Always fills *ret (see above).  Returns 0 for the daemon's
 * answer, or the negative errno of the failure, whose text is then
 * session_error(). */
int session_ask(struct session *s, const struct session_query *q, struct mmtrust_answer *ret);
/* The last failure in words: "inbound: mmtrustd refused the request:
 * invalid: src: ...", "outbound: Connection timed out", ... */
const char *session_error(const struct session *s);

#endif
