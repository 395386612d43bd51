/* vici_cmd: the plumbing shared by the cmd_*.c wrappers.  Internal to
 * vici-plugins/. */
#ifndef MM_VICI_CMD_H
#define MM_VICI_CMD_H

#include "vici-plugins/vici.h"

/* Sends the request in `b` (borrowed) and calls done(c, error, errmsg,
 * userdata) with the outcome of its { success, errmsg } reply. */
int vici_cmd_call_done(struct vici_client *c, struct vici_builder *b, vici_done_fn done,
		       void *userdata);

#endif
