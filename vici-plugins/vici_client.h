/* vici_client: one non-blocking VICI connection to charon in an sd-event loop.
 *
 * One object = one connection.  mmtrustd keeps two: one for commands (load,
 * unload, list-sas) and one for events (child-updown, ...), so that a slow
 * command never delays an event and an event flood never delays a command.
 *
 * Life cycle: vici_client_new() then vici_client_start(); the client
 * connects in the loop and calls `connected` each time a connection is up
 * (first time and after every reconnect): the owner reloads charon's
 * configuration there, since a restarted charon has forgotten it.  When the
 * connection drops (EOF, error, protocol violation, command timeout) every
 * pending command completes with the error, `disconnected` is called, and
 * the client reconnects with exponential back-off (default 100 ms doubling
 * to 5 s; reset by a successful connect).  It never gives up.
 *
 * Commands (vici_client_call) are sent strictly one at a time in the order
 * they were queued: VICI has no request ids, so a response belongs to the
 * one request in flight.  Streamed commands (list-sas, list-conns) name
 * their event: the client registers for it, sends the request, hands each
 * such event to on_event, completes with the CMD_RESPONSE, and unregisters.
 *
 * Subscriptions (vici_client_subscribe) are persistent: the client
 * registers them on every connection, before `connected` runs.
 *
 * Bounds: at most VICI_CLIENT_QUEUE_MAX queued commands holding at most
 * VICI_CLIENT_QUEUE_BYTES of frames (-ENOBUFS past that); receive buffer at
 * most one frame (4 + VICI_PACKET_MAX bytes); a frame announcing more is a
 * protocol error (-EMSGSIZE) and drops the connection.
 *
 * Callbacks run from the event loop, never from inside the call that queued
 * them.  They may queue commands, subscribe, and free the client
 * (vici_client_free() is safe inside a callback; no callback runs after it).
 * Messages passed to callbacks are borrowed for the duration of the call.
 *
 * Errors given to callbacks: -ECONNRESET (charon closed the connection),
 * -EPIPE etc. (socket errors), -EPROTO (charon sent something the protocol
 * does not allow here), -EMSGSIZE (oversized frame), -ETIMEDOUT (no
 * answer within the command timeout), -EOPNOTSUPP (CMD_UNKNOWN: charon has
 * no such command), -ENOENT (EVENT_UNKNOWN: no such event), -EBADMSG (a
 * malformed message; the connection stays up).  vici_client_free() drops
 * pending commands without calling them. */
#ifndef MM_VICI_CLIENT_H
#define MM_VICI_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "vici-plugins/vici_msg.h"

#define VICI_CLIENT_QUEUE_MAX 4096u
#define VICI_CLIENT_QUEUE_BYTES (16u * 1024u * 1024u)
#define VICI_CLIENT_SUBS_MAX 64u

#define VICI_CLIENT_BACKOFF_MIN_USEC (100 * 1000ull)
#define VICI_CLIENT_BACKOFF_MAX_USEC (5 * 1000 * 1000ull)
/* Default command timeout: charon answers configuration commands in
 * milliseconds; a minute without an answer means it hangs, and since a late
 * answer could not be matched to its request the connection is dropped. */
#define VICI_CLIENT_TIMEOUT_USEC (60 * 1000 * 1000ull)

struct vici_client;

struct vici_client_callbacks {
	/* Up (again).  Subscriptions are already queued for registration. */
	void (*connected)(struct vici_client *c, void *userdata);
	/* Down, with the reason; pending commands have been completed with
	 * the same error.  Not called for failed connection attempts. */
	void (*disconnected)(struct vici_client *c, int error, void *userdata);
};

/* error == 0: reply is charon's CMD_RESPONSE message (which may itself say
 * success = no: see vici_msg_check_success()).  error < 0: reply is NULL. */
typedef void (*vici_reply_fn)(struct vici_client *c, int error, const struct vici_msg *reply,
			      void *userdata);
/* An event `event` (NUL-terminated).  error == -EBADMSG: the message did
 * not parse, msg is NULL (the event is reported, not silently dropped). */
typedef void (*vici_event_fn)(struct vici_client *c, int error, const char *event,
			      const struct vici_msg *msg, void *userdata);
/* Result of a registration: 0 (EVENT_CONFIRM), -ENOENT (EVENT_UNKNOWN) or a
 * connection error. */
typedef void (*vici_status_fn)(struct vici_client *c, int error, void *userdata);

/* `e` is referenced (sd_event_ref) until vici_client_free().  socket_path is
 * copied; -ENAMETOOLONG if it does not fit a sockaddr_un.  cbs may be NULL;
 * *cbs is copied. */
int vici_client_new(sd_event *e, const char *socket_path, const struct vici_client_callbacks *cbs,
		    void *userdata, struct vici_client **ret);
/* Closes the connection, drops pending commands without calling them,
 * frees.  NULL is fine. */
void vici_client_free(struct vici_client *c);

/* Starts connecting (from the loop, at once).  -EALREADY if started.
 * Also restarts a client that stopped retrying because sd-event ran out of
 * memory (not connected, last_error -ENOMEM, the only way it stops). */
int vici_client_start(struct vici_client *c);

/* Back-off bounds for reconnects, 1 ms <= min <= max <= 1 h (-EINVAL). */
int vici_client_set_backoff(struct vici_client *c, uint64_t min_usec, uint64_t max_usec);
/* Command timeout (0: none).  Must exceed any timeout passed to charon. */
int vici_client_set_timeout(struct vici_client *c, uint64_t usec);

bool vici_client_is_connected(const struct vici_client *c);
/* Why the last connection attempt or connection failed (negative errno), 0
 * if none has. */
int vici_client_last_error(const struct vici_client *c);
/* How many times `connected` has fired. */
unsigned vici_client_connect_count(const struct vici_client *c);

/* Queues the CMD_REQUEST built in `req` (its frame is copied: the caller
 * still frees req).  stream_event: NULL for a plain command, else the event
 * that charon streams (e.g. "list-sa") and on_event gets them.  on_reply is
 * called exactly once, unless the client is freed first.
 * Errors (nothing queued, no callback): -ENOTCONN (not connected: the
 * owner re-issues from `connected`), -EINVAL (req not a finished
 * CMD_REQUEST, stream_event without on_event), -ENOBUFS (queue full). */
int vici_client_call(struct vici_client *c, struct vici_builder *req, const char *stream_event,
		     vici_event_fn on_event, vici_reply_fn on_reply, void *userdata);
/* The same, with destroy(userdata) called once when the command is gone:
 * after on_reply, or when vici_client_free() drops it.  For callers whose
 * userdata is allocated per command.  Not called when this returns < 0. */
typedef void (*vici_destroy_fn)(void *userdata);
int vici_client_call_full(struct vici_client *c, struct vici_builder *req, const char *stream_event,
			  vici_event_fn on_event, vici_reply_fn on_reply, void *userdata,
			  vici_destroy_fn destroy);
/* Shorthand for a command without arguments, e.g. "version". */
int vici_client_call_simple(struct vici_client *c, const char *cmd, vici_reply_fn on_reply,
			    void *userdata);

/* Subscribes to `event` on this and every later connection.  on_registered
 * (may be NULL) reports each registration's result.  Works connected or
 * not.  -EEXIST if already subscribed, -ENOBUFS past VICI_CLIENT_SUBS_MAX. */
int vici_client_subscribe(struct vici_client *c, const char *event, vici_event_fn on_event,
			  vici_status_fn on_registered, void *userdata);
/* Stops the subscription (no callback for it runs after this returns);
 * -ENOENT if there is none. */
int vici_client_unsubscribe(struct vici_client *c, const char *event);

#endif
