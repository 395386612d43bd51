/* The snapshot: the query view as bytes, for answers inside the CSCF's
 * own process (libmmtrust) without a round trip to mmtrustd.
 *
 * Two files, each replaced whole by rename and never changed after,
 * except for three words of the state file's header (docs/architecture.md,
 * "The snapshot"):
 *   <path>.table  the partner table as the answers need it (domains, kind,
 *                 agreement, path, enabled, ranges, gateways' families, a sorted interval
 *                 index per family), our [local] cscf prefixes (with the
 *                 kinds of peer each faces) and the
 *                 [query] settings; rewritten when any of them changes.
 *   <path>        the state: which partners' tunnels are up (SPIs, the
 *                 authenticated identity, whether the kernel enforces the
 *                 partner's policies), the families of our
 *                 usable tunnel addresses, the table it goes with (table_id),
 *                 a generation, and in its header the live words: `state`
 *                 (current / superseded) and the heartbeat.
 *
 * This file owns the format: building it (mmtrustd), checking it and
 * answering from it (libmmtrust, the fuzzer).  A reader trusts nothing it
 * has not checked: every size, offset, count, index, string, order and
 * the checksum are verified by mm_snap_*_load before a lookup, and a
 * file that fails any check is refused (the caller asks the daemon over
 * the socket instead).  Native byte order and layout: the file is read on
 * the host that wrote it, by the library of the same release; byte_order
 * and version refuse anything else. */
#ifndef MM_SNAPSHOT_H
#define MM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "err.h"
#include "partner.h"
#include "privacy.h"
#include "table.h"

/* 2: the cscf prefixes carry the kinds of peer each faces (a reader of
 * version 1 would answer without them: refused by the version check).
 * 3: a partner carries its gateways' families, the state our tunnel
 * addresses (tunnel-address-missing); a reader of 2 would answer
 * "unprotected" where the daemon says which address is missing. */
#define MM_SNAP_VERSION 3
#define MM_SNAP_BYTE_ORDER 0x01020304u
/* At most this many cscf prefixes (mmtrustd's [local] holds 64). */
#define MM_SNAP_CSCF_MAX 64
#define MM_SNAP_NONE UINT32_MAX

/* state word of the state file */
enum { MM_SNAP_CURRENT = 0, MM_SNAP_SUPERSEDED = 1 };

struct mm_snap_table_hdr {
	char magic[8];                /* "MMTSNAPT" */
	uint32_t version, byte_order;
	uint32_t hdr_size, layout;    /* sizeof this header; mm_snap_layout() */
	uint64_t size;                /* of the whole file */
	uint64_t checksum;            /* mm_snap_checksum(), this field as 0 */
	uint64_t table_id;            /* random: which state files go with it */
	uint32_t untrusted;           /* enum mm_untrusted_mode */
	uint32_t require_dst;         /* 0 or 1 */
	uint32_t n_partners, n_ranges, n_v4, n_v6, n_cscf, reserved;
	uint64_t off_partners, off_ranges, off_v4, off_v6, off_cscf;
	uint64_t off_cscf_kinds;      /* n_cscf uint32_t: MM_KIND_BIT()s, per cscf prefix */
};

struct mm_snap_partner {
	char domain[256];             /* canonical (mm_domain_canon), NUL-padded */
	uint32_t reqid;
	uint32_t range_first, n_ranges;  /* its ranges: ranges[first .. first+n) */
	uint8_t kind, agreement, path, enabled;
	uint8_t gateway_families;     /* MM_FAMILY_ bits of its gateways (privacy.h) */
	uint8_t reserved[3];          /* 0 */
};

/* One range of one partner as an interval; the intervals of a family are
 * sorted and disjoint (partner ranges never overlap). */
struct mm_snap_v4 {
	uint32_t lo, hi;              /* host byte order, inclusive */
	uint32_t partner;             /* index into partners */
};

struct mm_snap_v6 {
	uint64_t lo[2], hi[2];        /* [0]: the high 64 bits, inclusive */
	uint32_t partner, reserved;
};

struct mm_snap_state_hdr {
	char magic[8];                /* "MMTSNAPS" */
	uint32_t version, byte_order;
	uint32_t hdr_size, layout;
	uint64_t size;
	uint64_t checksum;            /* with checksum, state and heartbeat_ms as 0 */
	uint64_t generation;          /* changes on every change the answers see */
	uint64_t table_id;            /* the table file it goes with */
	uint32_t state;               /* live: MM_SNAP_CURRENT / MM_SNAP_SUPERSEDED */
	uint32_t heartbeat_interval_ms;
	uint64_t heartbeat_ms;        /* live: CLOCK_MONOTONIC milliseconds */
	uint32_t pid;                 /* the daemon's */
	uint32_t n_up;
	uint64_t off_up;
	/* MM_TUNNEL_ADDRS_ bits (privacy.h): our [local] tunnel addresses,
	 * 0 when not known (the daemon does not watch the host) */
	uint32_t tunnel_addrs;
	uint32_t reserved;            /* 0 */
};

/* A tunnel that is up; sorted by partner index, one per partner. */
struct mm_snap_tunnel {
	uint32_t partner;
	uint32_t reqid, spi_in, spi_out;
	uint8_t in_enforced, out_enforced, reserved[6];
	int64_t since;                /* unix seconds */
	char remote_id[256];          /* NUL-terminated */
};

/* A checked table file (pointers into the caller's buffer). */
struct mm_snap_table {
	const struct mm_snap_table_hdr *h;
	const struct mm_snap_partner *partners;
	const struct mm_prefix *ranges;
	const struct mm_snap_v4 *v4;
	const struct mm_snap_v6 *v6;
	const struct mm_prefix *cscf;
	const unsigned *cscf_kinds;   /* per cscf prefix: the kinds it faces */
	struct mm_cscf_set cscf_set;  /* the two above, as the decisions take them */
	size_t n_partners, n_ranges, n_v4, n_v6, n_cscf;
	uint64_t table_id;
	enum mm_untrusted_mode untrusted;
	bool require_dst;
	/* Optional (mm_snap_table_index): v4_start[k], k < 65536, is the
	 * first IPv4 interval whose lo has the high 16 bits k or more;
	 * v4_start[65536] is n_v4.  NULL: plain binary search. */
	uint32_t *v4_start;
	/* The same for IPv6, keyed on the 16 bits after the prefix all
	 * intervals share (v6_shift of them); NULL: plain binary search. */
	uint32_t *v6_start;
	unsigned v6_shift;
};

/* A checked state file, against the table it was checked with. */
struct mm_snap_state {
	const struct mm_snap_state_hdr *h;
	const struct mm_snap_tunnel *up;
	size_t n_up;
	uint64_t generation, table_id;
	unsigned tunnel_addrs;        /* MM_TUNNEL_ADDRS_ bits */
};

uint32_t mm_snap_layout(void);
/* The checksum of len bytes whose header is hdr_size bytes long, with the
 * header's live words (given as byte offsets, UINT32_MAX: none) as 0. */
uint64_t mm_snap_checksum(const void *buf, size_t len, size_t hdr_size, const size_t *zero,
			  size_t n_zero);

/* Check buf (len bytes) as a table file; on success fill *ret (pointers
 * into buf) and return 0, else -EBADMSG (or -EPROTO: another version or
 * byte order) with err saying what is wrong. */
int mm_snap_table_load(const void *buf, size_t len, struct mm_snap_table *ret,
		       struct mm_err *err);
/* Build t's first-level indexes (t->v4_start, t->v6_start, malloc'd; the
 * caller frees them): a lookup then searches only the intervals of its
 * bucket.  -ENOMEM (neither built). */
int mm_snap_table_index(struct mm_snap_table *t);

/* Check buf as a state file that goes with t; -ESTALE: it goes with
 * another table file. */
int mm_snap_state_load(const void *buf, size_t len, const struct mm_snap_table *t,
		       struct mm_snap_state *ret, struct mm_err *err);

/* Build a table file (malloc'd, *ret_len bytes): the partners of tb, the
 * cscf prefixes with their kinds, and settings.  -EINVAL when two
 * partners' ranges overlap (the table never allows it; the snapshot index
 * relies on it), or a cscf prefix faces no known kind or overlaps one
 * facing other kinds, -ENOMEM. */
int mm_snap_table_build(const struct mm_table *tb, const struct mm_cscf_set *cscf,
			enum mm_untrusted_mode untrusted, bool require_dst, uint64_t table_id,
			void **ret, size_t *ret_len);

struct mm_snap_tunnel_in {
	const char *domain;
	uint32_t reqid, spi_in, spi_out;
	bool in_enforced, out_enforced;
	int64_t since;
	const char *remote_id;
};
/* Build a state file for table t (checked): up[0..n_up) (any order; a
 * domain t does not hold is left out), tunnel_addrs (MM_TUNNEL_ADDRS_
 * bits; -EINVAL for others or a family without KNOWN).  heartbeat: now,
 * CLOCK_MONOTONIC ms. */
int mm_snap_state_build(const struct mm_snap_table *t, uint64_t generation, uint32_t pid,
			uint32_t heartbeat_interval_ms, uint64_t heartbeat_ms,
			const struct mm_snap_tunnel_in *up, size_t n_up, unsigned tunnel_addrs,
			void **ret, size_t *ret_len);

/* Lookups on a checked table: the partner holding a, the partner named
 * domain (canonical), or NULL. */
const struct mm_snap_partner *mm_snap_lookup(const struct mm_snap_table *t,
					     const struct mm_addr *a);
const struct mm_snap_partner *mm_snap_find(const struct mm_snap_table *t, const char *domain);
/* The tunnel up for partner p, or NULL. */
const struct mm_snap_tunnel *mm_snap_tunnel_of(const struct mm_snap_table *t,
					       const struct mm_snap_state *s,
					       const struct mm_snap_partner *p);

/* One answer from the snapshot: the facts and the decision, through
 * policy/privacy.c like the daemon's. */
struct mm_snap_answer {
	const struct mm_snap_partner *partner;  /* NULL: none */
	const struct mm_snap_tunnel *tunnel;    /* NULL: none up */
	struct mm_decision dec;
};
/* -EAGAIN: the snapshot does not answer this question; the daemon must
 * (it refuses it: dst required and not given, src and dst of different
 * families; or it counts the answer: a partner's message at our address
 * for the other kind of peer, "dst-other-kind", which *ret then holds
 * all the same). */
int mm_snap_inbound(const struct mm_snap_table *t, const struct mm_snap_state *s,
		    const struct mm_addr *src, const struct mm_addr *dst, uint32_t spi,
		    struct mm_snap_answer *ret);
/* domain (canonical) or next_hop: exactly one, else -EAGAIN. */
int mm_snap_outbound(const struct mm_snap_table *t, const struct mm_snap_state *s,
		     const char *domain, const struct mm_addr *next_hop, bool privacy_id,
		     struct mm_snap_answer *ret);

#endif
