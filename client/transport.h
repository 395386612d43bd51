/* libmmtrust internals shared by mmtrust.c (the transport) and query.c
 * (the typed calls).  Not installed; not exported (client/libmmtrust.map). */
#ifndef MMTRUST_TRANSPORT_H
#define MMTRUST_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mmtrust.h"

/* Decides whether a line read after a request is its answer: 1 yes, 0 not
 * this request's (discarded, the wait goes on), < 0 a bad answer (the
 * call fails with it and the connection is reset). */
typedef int (*mmtrust__match_fn)(struct mmtrust *m, const char *line, void *userdata);

/* One request, one answer, with every rule of mmtrust.h: back-off, lazy
 * reconnect, the one retry (only when the request cannot have reached the
 * daemon unless idempotent), timeout over the whole exchange, reset on
 * failure.  match NULL: the first line is the answer.  *ret_line set only
 * on success (malloc'd, the caller frees). */
int mmtrust__exchange(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		      bool idempotent, mmtrust__match_fn match, void *userdata, char **ret_line);

/* The next request id of this handle (1, 2, ...). */
int64_t mmtrust__next_id(struct mmtrust *m);

/* Set the text mmtrust_last_error() returns (NULL: ""). */
void mmtrust__set_error(struct mmtrust *m, const char *text);

/* The event stream (mmtrust_subscribe/_next_event). */
void mmtrust__set_subscribed(struct mmtrust *m);
/* One line within timeout_ms (< 0: for ever, 0: poll): -ETIMEDOUT leaves
 * the stream as it is; any other error resets it; -ENOTCONN when reset. */
int mmtrust__read_event_line(struct mmtrust *m, int timeout_ms, char **ret_line);
/* Reset the connection after a bad event line. */
void mmtrust__reset(struct mmtrust *m);

/* The handle's snapshot reader (client/snapshot.h), NULL when none. */
struct mmtrust_snap *mmtrust__snap_of(struct mmtrust *m);
/* The uid of the daemon at the other end of the connection; -ENOTCONN. */
int mmtrust__peer_uid(struct mmtrust *m, uid_t *ret);

#endif
