/* The snapshot's writer (policy/snapshot.h has the format): mmtrustd
 * writes each view it publishes to the query socket as the two snapshot
 * files too, so that libmmtrust answers inside the CSCF's process.
 *
 * The rules that keep an in-process answer never ahead of the daemon's:
 * - snapw_supersede() is called the moment anything a view holds changes
 *   (mmtrustd_view_changed): one atomic store into the live state file,
 *   after which readers ask the socket until the next state file is in
 *   place;
 * - files are written aside and renamed into place, never changed after,
 *   except the live words (state, heartbeat);
 * - a view that cannot be written leaves the old state superseded;
 * - the heartbeat (every MM_SNAP_HEARTBEAT_MS from the main loop) says
 *   the daemon is alive; readers treat an older one as no snapshot. */
#ifndef MMTRUSTD_SNAPSHOT_H
#define MMTRUSTD_SNAPSHOT_H

#include <jansson.h>
#include <sys/types.h>

#include "query.h"

#define MM_SNAP_HEARTBEAT_MS 250

struct snapw;

/* A writer for path (and path.table), files readable by gid ((gid_t)-1:
 * owner only).  path "": *ret NULL, 0. */
int snapw_new(const char *path, gid_t gid, struct snapw **ret);
/* Supersede the live state file and take both files away; accepts NULL. */
void snapw_free(struct snapw *w);
/* Mark the live state superseded (readers ask the socket); accepts NULL. */
void snapw_supersede(struct snapw *w);
/* Write the view in (the table file only when the table or a setting
 * changed).  -errno with the old state left superseded. */
int snapw_publish(struct snapw *w, const struct query_view_input *in);
/* Store now into the live heartbeat; accepts NULL. */
void snapw_heartbeat(struct snapw *w);
/* For status: {"path", "current", "generation", "partners", "tunnels_up"}
 * (w NULL: JSON null). */
json_t *snapw_status(const struct snapw *w);

#endif
