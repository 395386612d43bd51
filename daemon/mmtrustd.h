/* mmtrustd's state, shared by its parts (one event loop, one thread). */
#ifndef MMTRUSTD_H
#define MMTRUSTD_H

#include <systemd/sd-event.h>

#include "config.h"
#include "jsonl.h"
#include "policy/store.h"
#include "policy/table.h"

#define MMTRUST_VERSION "0.1.0"

struct mmtrustd {
	sd_event *ev;
	struct mm_config cfg;
	char config_path[4096];    /* "" when running on built-in defaults */
	struct mm_store *store;
	struct mm_table *table;    /* the live table; replaced, never edited */
	struct mm_jsonl_server *admin;
	time_t started;
};

/* The admin socket's request handler and access check (admin.c). */
json_t *admin_handle(void *userdata, const struct mm_jsonl_peer *peer, const json_t *req);
int admin_authorize(void *userdata, const struct mm_jsonl_peer *peer);

/* Swap in a new table after the store committed it (mmtrustd.c): later
 * parts (SPD, VICI) hook in here. */
void mmtrustd_table_changed(struct mmtrustd *d, struct mm_table *newt,
			    const struct mm_change *changes, size_t n);

#endif
