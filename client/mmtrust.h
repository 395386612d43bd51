/* libmmtrust: talk to mmtrustd over its Unix sockets.
 *
 * The wire format is newline-delimited JSON, one request object per line
 * and one answer per request, in order (docs/protocol.md,
 * docs/admin-protocol.md).
 *
 * The typed calls below (mmtrust_inbound, ...) build and parse the JSON
 * themselves; mmtrust_call() is the raw line transport (mmtrustctl uses it
 * for the admin socket).
 *
 * Failure (docs/protocol.md, "Client library"):
 * - A handle keeps the socket's path.  After a timeout or a transport error
 *   (connection lost, a bad or oversized answer) its connection is reset:
 *   closed, buffered bytes dropped, and a new connection made on the next
 *   call.  A reset connection is never read from again, so a late answer
 *   can never be taken for the answer to a later question.
 * - Each typed request carries an "id" (a per-handle counter); an answer
 *   with another id is discarded.  The answer must also name the subject
 *   asked about (src, domain, dst, spi); an answer for another subject is a
 *   bad answer (-EBADMSG, connection reset).
 * - A call that finds its connection closed by the daemon (ECONNRESET,
 *   EPIPE) or the socket missing or refusing (ENOENT, ECONNREFUSED: a
 *   daemon restarting) reconnects and tries once more, at once, on a new
 *   connection, within the same timeout.  mmtrust_call() does so only when
 *   its request cannot have reached the daemon (it may change state).
 * - timeout_ms bounds the whole call: connecting (also when the daemon's
 *   listen backlog is full), sending, and waiting for the answer.
 * - After a timeout the handle backs off (mmtrust_set_backoff): calls fail
 *   at once with -EAGAIN until the back-off ends, so a hung daemon costs a
 *   worker one timeout per back-off period instead of one per message.
 * - Fail closed: on any error the typed calls still fill *ret, with
 *   pai = MMTRUST_PAI_STRIP, reason "error: <why>" and source "error".  A
 *   caller that looks only at ret->pai strips P-Asserted-Identity.
 *
 * Threads: a handle is not thread-safe.  Use one handle per thread, or
 * serialise calls on a shared handle with a mutex.
 * Errors: functions return 0 or a negative errno; nothing is printed;
 * mmtrust_last_error() says what went wrong. */
#ifndef MMTRUST_H
#define MMTRUST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMTRUST_ADMIN_SOCKET "/run/mmtrust/admin.sock"
#define MMTRUST_QUERY_SOCKET "/run/mmtrust/query.sock"

/* The back-off a new handle starts with, in ms.  One second: a worker
 * facing a hung daemon then waits at most one timeout per second (with a
 * 100 ms timeout, under a tenth of its time) and strips meanwhile, and a
 * daemon that recovers is asked again within a second. */
#define MMTRUST_DEFAULT_BACKOFF_MS 1000

struct mmtrust;

/* Connect to the socket at path and return a handle (*ret, only on
 * success).  timeout_ms bounds this connect and every later call (0:
 * none).  -ENOENT/-ECONNREFUSED: no daemon there; -EACCES: not allowed;
 * -ETIMEDOUT: the daemon did not accept in time (its backlog stayed full);
 * -ENAMETOOLONG, -ENOMEM. */
int mmtrust_connect(const char *path, int timeout_ms, struct mmtrust **ret);
void mmtrust_close(struct mmtrust *m);  /* accepts NULL */

/* After a timeout, calls during the next ms milliseconds fail at once
 * with -EAGAIN (reason "error: back-off"); 0 turns back-off off, a
 * negative ms counts as 0.  Default MMTRUST_DEFAULT_BACKOFF_MS.  Accepts
 * NULL. */
void mmtrust_set_backoff(struct mmtrust *m, int ms);

/* Send one request line (len bytes, without the newline; must not contain
 * one: -EINVAL) and wait for one answer line.  *ret_answer (set only on
 * success) is a NUL-terminated malloc'd string without the newline, which
 * the caller frees.  The request carries whatever id the caller put in it;
 * this call does not check ids, but its connection is fresh after any
 * reset, and a connection with bytes nobody asked for (or closed by the
 * daemon) is replaced before the request is sent.
 * -ETIMEDOUT (connection reset, back-off started), -EAGAIN (in back-off),
 * -ECONNRESET (the daemon closed the connection; reset), -ENOENT or
 * -ECONNREFUSED (no daemon on reconnect), -EMSGSIZE (an answer longer than
 * max_answer, 0 = 1 GiB; reset), -ENOMEM (reset). */
int mmtrust_call(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		 char **ret_answer);

/* ---- The CSCF's questions (query socket, docs/protocol.md) ---- */

enum { MMTRUST_PAI_STRIP = 0, MMTRUST_PAI_KEEP = 1 };

/* One answer.  Strings are empty when the daemon sent null. */
struct mmtrust_answer {
	int pai;                 /* MMTRUST_PAI_KEEP or MMTRUST_PAI_STRIP */
	char reason[64];         /* docs/privacy.md: "protected", "unknown-source", ...;
				  * "error: ..." when the call failed */
	char partner[254];       /* the partner's domain, "" when none */
	char kind[16];           /* "ims", "non-ims" */
	char path[16];           /* "tunnel", "seg" */
	int agreement;
	int enabled;
	int protected_;          /* inbound: over the partner's authenticated SA */
	int trusted;             /* outbound: the next hop is inside the trust domain */
	char tunnel[8];          /* outbound: "up", "down", "none" */
	uint32_t reqid;          /* inbound/spi: of the partner's SA, 0 when none */
	uint32_t spi_in, spi_out;
	char remote_id[256];     /* the SA's authenticated remote identity */
	char direction[4];       /* spi: "in" or "out" */
	char dst[46];            /* the dst asked about (inbound: our local address; outbound:
				  * the next hop), canonical; "" when not given */
	char src[46];            /* inbound: the src asked about, canonical as the daemon
				  * echoes it; "" for outbound and spi */
	char domain[254];        /* outbound: the domain asked about, canonical (lower
				  * case, no trailing dot); "" when asked by dst */
	char source[12];         /* who answered: "snapshot" (in-process, from the
				  * daemon's snapshot), "socket" (mmtrustd over the
				  * query socket) or "error" (the call failed; pai strip) */
};

/* A message received from the previous hop at address src, on our local
 * address dst (both IPv4/IPv6 text; dst is what Kamailio calls $Ri);
 * spi: the SA it arrived on, 0 when unknown.  Only with dst can the answer
 * say protected: the kernel enforces a partner's SA only towards our CSCF
 * prefixes, so dst NULL answers protected 0 and, for a tunnel partner
 * whose SA is up, reason "dst-not-given" with PAI stripped (or is refused
 * when the daemon has [query] require_dst = yes).  docs/privacy.md.
 * Returns 0 and fills *ret from the daemon's answer (ret->src: src in the
 * daemon's canonical form).  Any error also fills *ret, as a strip answer:
 * pai MMTRUST_PAI_STRIP, reason "error: <why>", source "error", src and
 * dst as given.  Errors: -EPROTO when the daemon refused the request
 * (mmtrust_last_error says why; the connection stays), -EBADMSG (an
 * answer that is not JSON, lacks its result, or names another src or dst;
 * connection reset), -ENOTCONN (m is NULL), -EINVAL (ret is NULL: nothing
 * filled), -ENOMEM, or a transport error as mmtrust_call(): -ETIMEDOUT,
 * -EAGAIN (back-off), -ECONNRESET, -ENOENT, -ECONNREFUSED, -EACCES. */
int mmtrust_inbound(struct mmtrust *m, const char *src, const char *dst, uint32_t spi,
		    struct mmtrust_answer *ret);
/* Before forwarding to the next hop: give its domain (or NULL and dst, an
 * address); privacy_id: the message carries "Privacy: id".  Returns 0 and
 * fills *ret (ret->domain: the domain canonical, or ret->dst the next
 * hop).  Any error fills *ret as a strip answer (reason "error: <why>",
 * source "error", domain and dst as given), with the errors of
 * mmtrust_inbound(); -EBADMSG also when the answer names another domain
 * or dst. */
int mmtrust_outbound(struct mmtrust *m, const char *domain, const char *dst, int privacy_id,
		     struct mmtrust_answer *ret);
/* Which partner's SA has this SPI (0 is no SPI: the daemon refuses it,
 * -EPROTO).  Any error fills *ret as a strip answer (reason "error:
 * <why>", source "error"), with the errors of mmtrust_inbound(); -EBADMSG
 * also when the answer names another SPI. */
int mmtrust_spi(struct mmtrust *m, uint32_t spi, struct mmtrust_answer *ret);

/* In-process answers.  mmtrustd writes its view as a snapshot (docs/
 * protocol.md, "In-process answers"); mmtrust_inbound and
 * mmtrust_outbound answer from it, without a round trip, while it is
 * current and its heartbeat is at most max_age_ms old, and ask the socket
 * otherwise (answer.source says which).  The files are found with the
 * daemon's ping the first time and must be owned by the daemon's user.
 * max_age_ms: 0 turns in-process answers off for this handle, < 0 the
 * default (1000 ms).  0 or -ENOMEM. */
int mmtrust_set_snapshot(struct mmtrust *m, int max_age_ms);

/* What the last failed call of this handle ran into: the daemon's message
 * after -EPROTO ("invalid: src: ..."), otherwise a short text ("timeout",
 * "back-off", "connection lost", "answer for another subject", ...); ""
 * after a call that succeeded.  Accepts NULL ("no handle"). */
const char *mmtrust_last_error(const struct mmtrust *m);

/* ---- Change events ---- */

struct mmtrust_event {
	char event[32];          /* "sa-up", "sa-down", "partner-added", "partner-changed",
				  * "partner-removed", "table-reloaded" */
	char partner[254];       /* "*" for table-reloaded */
	uint32_t spi_in, spi_out;  /* sa-up */
};

/* Turn this handle into an event stream (use another handle for queries:
 * answers and events would interleave, and a typed call discards the
 * events it reads while it waits for its answer).  Errors as
 * mmtrust_inbound() (nothing filled).  Then call mmtrust_next_event() in a
 * loop; timeout_ms < 0 waits for ever, 0 polls.  -ETIMEDOUT when no event
 * came in time (the stream stays as it is: no reset, no back-off);
 * -ECONNRESET when the daemon closed the stream (it does so to a
 * subscriber that stops reading), -EBADMSG for a line that is not JSON:
 * then the connection is reset, events were lost, and further calls return
 * -ENOTCONN until mmtrust_subscribe() is called again (it reconnects):
 * drop every cached answer then. */
int mmtrust_subscribe(struct mmtrust *m);
int mmtrust_next_event(struct mmtrust *m, int timeout_ms, struct mmtrust_event *ret);

#ifdef __cplusplus
}
#endif
#endif
