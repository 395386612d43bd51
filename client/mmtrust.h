/* libmmtrust: talk to mmtrustd over its Unix sockets.
 *
 * The wire format is newline-delimited JSON, one request object per line
 * and one answer per request, in order (docs/admin-protocol.md).  This
 * layer moves lines; callers build and read the JSON with the library of
 * their choice.
 *
 * The typed calls below (mmtrust_inbound, ...) build and parse the JSON
 * themselves; mmtrust_call() is the raw line transport (mmtrustctl uses it
 * for the admin socket).
 *
 * Threads: a handle is not thread-safe.  Use one handle per thread, or
 * serialise calls on a shared handle with a mutex.
 * Errors: functions return 0 or a negative errno; nothing is printed. */
#ifndef MMTRUST_H
#define MMTRUST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMTRUST_ADMIN_SOCKET "/run/mmtrust/admin.sock"
#define MMTRUST_QUERY_SOCKET "/run/mmtrust/query.sock"

struct mmtrust;

/* Connect to the socket at path.  -ENOENT/-ECONNREFUSED: no daemon there;
 * -EACCES: not allowed.  timeout_ms bounds every later request (0: none). */
int mmtrust_connect(const char *path, int timeout_ms, struct mmtrust **ret);
void mmtrust_close(struct mmtrust *m);  /* accepts NULL */

/* Send one request line (len bytes, without the newline; must not contain
 * one) and wait for one answer line.  *ret_answer is a NUL-terminated
 * malloc'd string without the newline, which the caller frees.
 * -ETIMEDOUT, -ECONNRESET (the daemon closed the connection), -EMSGSIZE
 * (an answer longer than max_answer, 0 = 1 GiB), -ENOMEM. */
int mmtrust_call(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		 char **ret_answer);

/* ---- The CSCF's questions (query socket, docs/protocol.md) ---- */

enum { MMTRUST_PAI_STRIP = 0, MMTRUST_PAI_KEEP = 1 };

/* One answer.  Strings are empty when the daemon sent null. */
struct mmtrust_answer {
	int pai;                 /* MMTRUST_PAI_KEEP or MMTRUST_PAI_STRIP */
	char reason[64];         /* docs/privacy.md: "protected", "unknown-source", ... */
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
	char src[46];            /* inbound: the src asked about, canonical */
	char domain[254];        /* outbound: the domain asked about, canonical */
	char source[12];         /* where the answer came from: "snapshot" or "socket" */
};

/* A message received from the previous hop at address src, on our local
 * address dst (both IPv4/IPv6 text; dst is what Kamailio calls $Ri);
 * spi: the SA it arrived on, 0 when unknown.  Only with dst can the answer
 * say protected: the kernel enforces a partner's SA only towards our CSCF
 * prefixes, so dst NULL answers protected 0 and, for a tunnel partner
 * whose SA is up, reason "dst-not-given" with PAI stripped (or is refused
 * when the daemon has [query] require_dst = yes).  docs/privacy.md.
 * Returns 0 and fills *ret, -EPROTO when the daemon refused the request
 * (see mmtrust_last_error), or a transport error as mmtrust_call(). */
int mmtrust_inbound(struct mmtrust *m, const char *src, const char *dst, uint32_t spi,
		    struct mmtrust_answer *ret);
/* Before forwarding to the next hop: give its domain (or NULL and dst, an
 * address); privacy_id: the message carries "Privacy: id". */
int mmtrust_outbound(struct mmtrust *m, const char *domain, const char *dst, int privacy_id,
		     struct mmtrust_answer *ret);
/* Which partner's SA has this SPI (0 is no SPI: the daemon refuses it,
 * -EPROTO). */
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

/* The daemon's message for the last -EPROTO ("invalid: src: ..."), or "". */
const char *mmtrust_last_error(const struct mmtrust *m);

/* ---- Change events ---- */

struct mmtrust_event {
	char event[32];          /* "sa-up", "sa-down", "partner-added", "partner-changed",
				  * "partner-removed", "table-reloaded" */
	char partner[254];       /* "*" for table-reloaded */
	uint32_t spi_in, spi_out;  /* sa-up */
};

/* Turn this handle into an event stream (use another handle for queries:
 * answers and events would interleave).  Then call mmtrust_next_event()
 * in a loop; timeout_ms < 0 waits for ever, 0 polls.  -ETIMEDOUT when no
 * event came in time; -ECONNRESET when the daemon closed the stream (it
 * does so to a subscriber that stops reading). */
int mmtrust_subscribe(struct mmtrust *m);
int mmtrust_next_event(struct mmtrust *m, int timeout_ms, struct mmtrust_event *ret);

#ifdef __cplusplus
}
#endif
#endif
