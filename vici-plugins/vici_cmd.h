/* vici_cmd: the plumbing shared by the cmd_*.c wrappers.  Internal to
 * vici-plugins/. */
#ifndef MM_VICI_CMD_H
#define MM_VICI_CMD_H

#include "vici-plugins/vici.h"

/* Sends the request in `b` (borrowed) and calls done(c, error, errmsg,
 * userdata) with the outcome of its { success, errmsg } reply. */
int vici_cmd_call_done(struct vici_client *c, struct vici_builder *b, vici_done_fn done,
		       void *userdata);
/* The same, and frees `b` (taken) whatever the outcome. */
int vici_cmd_send_done(struct vici_client *c, struct vici_builder *b, vici_done_fn done,
		       void *userdata);

/* Finishes the request in `b` (taken): on success *ret gets it, on failure
 * it is freed and the error returned. */
int vici_cmd_finish(struct vici_builder *b, struct vici_builder **ret);

/* load-cert and load-key: { type, [flag,] data }; flag may be NULL. */
int vici_cmd_load_build(const char *cmd, const char *type, const char *flag, const void *data,
			size_t len, struct vici_builder **ret);

#endif
