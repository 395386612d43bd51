/* libmmtrust's in-process answers: the snapshot reader (internal).
 *
 * One reader per handle.  It holds private copies of the two snapshot
 * files (policy/snapshot.h), checked whole before use, and maps only the
 * live header words of the state file (state, heartbeat) shared.  Copies
 * rather than shared mappings of the bodies: what was checked is what is
 * read, whatever later happens to the files.
 *
 * An answer comes from the snapshot only when the state file in use is
 * current (not superseded) and its heartbeat is at most max_age_ms old;
 * otherwise the reader tries the files again (at most every few
 * milliseconds while superseded, every RETRY_MS while absent or stale) and
 * the caller asks the socket. */
#ifndef MMTRUST_CLIENT_SNAPSHOT_H
#define MMTRUST_CLIENT_SNAPSHOT_H

#include <stdint.h>
#include <sys/types.h>

#include "mmtrust.h"

#define MMTRUST_SNAPSHOT_MAX_AGE_MS 1000

struct mmtrust_snap;

struct mmtrust_snap *mmtrust__snap_new(void);
void mmtrust__snap_free(struct mmtrust_snap *s);
/* Where the daemon writes it (ping's "snapshot"; NULL or "": none) and
 * who must own the files (the daemon's uid from SO_PEERCRED). */
void mmtrust__snap_set_path(struct mmtrust_snap *s, const char *path, uid_t owner);
/* 0: disabled; < 0: the default (MMTRUST_SNAPSHOT_MAX_AGE_MS). */
void mmtrust__snap_set_max_age(struct mmtrust_snap *s, int max_age_ms);
/* Whether in-process answers are on for this handle. */
int mmtrust__snap_enabled(const struct mmtrust_snap *s);
/* Whether a path is known (0: ask the daemon with ping). */
int mmtrust__snap_has_path(const struct mmtrust_snap *s);

/* 0 with *ret filled (source "snapshot"), or -EAGAIN: ask the socket (no
 * fresh snapshot, or a question only the daemon answers: one it refuses). */
int mmtrust__snap_inbound(struct mmtrust_snap *s, const char *src, const char *dst, uint32_t spi,
			  struct mmtrust_answer *ret);
int mmtrust__snap_outbound(struct mmtrust_snap *s, const char *domain, const char *dst,
			   int privacy_id, struct mmtrust_answer *ret);
/* The generation of the state in use, 0 when none (tests, benchmarks). */
uint64_t mmtrust__snap_generation(const struct mmtrust_snap *s);

#endif
