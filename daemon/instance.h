/* One mmtrustd per store, per socket and per network namespace's XFRM tag.
 *
 * A second mmtrustd started by mistake must never take over: with the same
 * sockets it would unlink the first one's and bind its own, with another
 * store it would delete the first one's policies, and the two would then
 * repair each other's "drift" without end.  So before it reads the store or
 * touches the kernel the daemon claims:
 *   - the store: flock(2) on STORE.lock beside it;
 *   - each socket: flock(2) on SOCKET.lock beside it (the runtime
 *     directory), and a socket file that still answers a connect(2) is a
 *     live daemon's (perhaps one without these locks): refused, never
 *     unlinked; only a dead socket file is replaced;
 *   - the kernel: an abstract Unix socket "@mmtrustd-xfrm-TAG" bound in the
 *     current network namespace (abstract names are per namespace), so two
 *     daemons with the same policy tag never program one namespace.
 * A refusal names what is held and, where the lock file says, by which pid.
 * The claims last as long as the process (the kernel drops them when it
 * exits, whatever the way). */
#ifndef MMTRUSTD_INSTANCE_H
#define MMTRUSTD_INSTANCE_H

#include <stdint.h>
#include <sys/types.h>

#include "policy/err.h"

struct instance;

/* mkdir -p for the directory holding path.  -errno. */
int instance_mkdir_parent(const char *path, mode_t mode);

/* Claim the store, both sockets and the namespace's tag, in that order.
 * On refusal: -EBUSY (or another -errno) with err naming what is held. */
int instance_claim(const char *store, const char *admin_socket, const char *query_socket,
		   uint32_t spd_tag, struct instance **ret, struct mm_err *err);
/* A reload that names another store claims it too (the old claim is kept
 * until exit).  0 when already held by us. */
int instance_claim_store(struct instance *inst, const char *store, struct mm_err *err);
/* Also the snapshot's files (path "": none): two daemons writing one
 * snapshot would each supersede the other's. */
int instance_claim_snapshot(struct instance *inst, const char *path, struct mm_err *err);
/* Why a claim was skipped (a process of another user holds the
 * namespace's abstract name), to be logged; NULL when all is claimed. */
const char *instance_warning(const struct instance *inst);
/* Write our pid into the lock files again (after daemonizing). */
void instance_note_pid(struct instance *inst);
void instance_release(struct instance *inst);  /* accepts NULL */

#endif
