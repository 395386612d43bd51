/* A non-blocking Unix-socket server speaking newline-delimited JSON, one
 * request object per line, one answer per request, in order.  Used for the
 * admin socket (main loop) and the CSCF query socket (its own thread).
 *
 * Each client has bounded buffers: a request line longer than max_line is
 * answered with a "line-too-long" error and the rest of that line is
 * discarded (the connection stays usable); a client whose unread answers
 * exceed max_out is disconnected, so a client that never reads blocks no
 * one.  At most max_clients connections; more are closed at once. */
#ifndef MMTRUSTD_JSONL_H
#define MMTRUSTD_JSONL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct mm_jsonl_server;
struct mm_jsonl_client;

#define MM_JSONL_PEER_GROUPS 64

struct mm_jsonl_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	gid_t groups[MM_JSONL_PEER_GROUPS];  /* SO_PEERGROUPS: supplementary groups */
	int n_groups;
};

/* Called for every request object.  Returns the answer (a new reference,
 * without "id": the server echoes the request's "id" itself), or NULL when
 * it already queued the answer with mm_jsonl_client_reply_raw() (the fast
 * path for hot queries).  `peer` is the client's SO_PEERCRED. */
typedef json_t *(*mm_jsonl_handler)(void *userdata, struct mm_jsonl_client *client,
				    const struct mm_jsonl_peer *peer, const json_t *request);

/* Called on accept: return 0 to keep the client, negative to refuse it
 * (it is closed without an answer). */
typedef int (*mm_jsonl_authorize)(void *userdata, const struct mm_jsonl_peer *peer);

struct mm_jsonl_limits {
	size_t max_line;     /* bytes per request line */
	size_t max_out;      /* bytes of unread answers per client */
	unsigned max_clients;
};

/* Listen on path (an existing socket file is replaced) with the given mode
 * and group (-1: leave the group).  -errno on failure. */
int mm_jsonl_server_new(sd_event *ev, const char *path, mode_t mode, gid_t gid,
			const struct mm_jsonl_limits *limits, mm_jsonl_handler handler,
			mm_jsonl_authorize authorize, void *userdata,
			struct mm_jsonl_server **ret);
/* Serving during a long piece of work.  The loop cannot be re-entered
 * from a callback, so a callback that works long (the SPD engine's kernel
 * step, a whole apply) calls mm_jsonl_server_poll() now and then, without
 * blocking: it accepts waiting connections, reads what each client sent
 * (once per call) and answers the client's next request at once when
 * readonly() says it changes nothing (a line that is no JSON object is
 * answered with its error) -- at most one request per client per call, so
 * a call costs at most max_clients answers.  A client whose next request
 * may change something is parked: nothing more is read from it until the
 * loop runs again, which then handles its requests normally, in the order
 * sent (writes are serialized, never interleaved, never lost).  The
 * client whose request is being handled is left alone.  Without a
 * readonly callback every request waits.  The answers go to the same
 * handler, which must be safe to call from inside the long work for the
 * requests readonly() lets through.  No-op when s is NULL or when called
 * from inside itself. */
typedef bool (*mm_jsonl_readonly)(void *userdata, const json_t *request);
void mm_jsonl_server_set_readonly(struct mm_jsonl_server *s, mm_jsonl_readonly readonly);
int mm_jsonl_server_poll(struct mm_jsonl_server *s);

/* Close every client and the listening socket; unlink the path. */
void mm_jsonl_server_free(struct mm_jsonl_server *s);
unsigned mm_jsonl_server_clients(const struct mm_jsonl_server *s);

/* Queue {"ok":true,"result":<result>,"id":<id>} where result is len bytes
 * of JSON text the caller built and vouches for (no tree, no re-encoding).
 * id (may be NULL) is the request's "id".  Returns 0 or -errno. */
int mm_jsonl_client_reply_raw(struct mm_jsonl_client *c, const char *result, size_t len,
			      const json_t *id);

/* Mark a client as a subscriber: from now on it receives every object
 * given to mm_jsonl_server_broadcast(), interleaved with its answers.  A
 * subscriber that does not read is disconnected when its unread output
 * passes max_out, like any client. */
void mm_jsonl_client_subscribe(struct mm_jsonl_client *c);
/* Queue one line of JSON text (len bytes, no newline; the caller encoded
 * it once) to every subscriber. */
void mm_jsonl_server_broadcast(struct mm_jsonl_server *s, const char *line, size_t len);

/* The peer's login name (into name, size bytes) and primary group
 * (ret_gid may be NULL) from the user database; safe on any thread
 * (getpwuid_r).  0, -ENOENT (no such user), -ERANGE (name longer than
 * size), -ENOMEM, or another -errno of the lookup. */
int mm_jsonl_peer_user(const struct mm_jsonl_peer *peer, char *name, size_t size,
		       gid_t *ret_gid);

/* Root, the daemon's own user, or a process in group gid (its primary
 * group, a supplementary group it holds (SO_PEERGROUPS), or one the user
 * is listed in; (gid_t)-1: no group) may use a socket. */
bool mm_jsonl_peer_allowed(const struct mm_jsonl_peer *peer, gid_t gid);

/* {"ok": false, "error": {"code": code, "message": ..., "field": ...}} */
json_t *mm_jsonl_error(const char *code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* {"ok": true, "result": result} (steals result; NULL means no result) */
json_t *mm_jsonl_ok(json_t *result);

#endif
