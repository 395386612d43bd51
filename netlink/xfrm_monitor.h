/* The XFRM event monitor: a second NETLINK_XFRM socket that listens to the
 * kernel's multicast groups for policies, SAs, acquires and expiries.
 *
 * The socket is non-blocking and the caller owns the event loop: it polls
 * mm_xfrm_monitor_fd() for input and calls mm_xfrm_monitor_read(), which
 * decodes what is pending and hands each event to a callback.
 *
 * Lost events are never papered over: when the kernel could not queue an
 * event because the socket's buffer was full, read returns -ENOBUFS and
 * the caller must re-read the kernel's state (a dump), because from then
 * on it cannot know what changed.
 *
 * Events caused by our own requests carry the request socket's port id
 * (see nl.h); mm_xfrm_monitor_ignore_portid() drops them in the kernel (a
 * socket filter), so a bulk delete neither pays twice nor overflows the
 * buffer with its own echoes -- all but the new and updated policies:
 * their events carry the policy's kernel index, which the ack does not,
 * and a requester that deletes by index learns it from them (a bulk load
 * must then read the monitor between its batches; RCVBUF leaves room for
 * many batches). */
#ifndef MM_XFRM_MONITOR_H
#define MM_XFRM_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "xfrm_policy.h"
#include "xfrm_state.h"

enum mm_xfrm_event_type {
	MM_XFRM_EV_POLICY_NEW,
	MM_XFRM_EV_POLICY_UPD,
	MM_XFRM_EV_POLICY_DEL,
	MM_XFRM_EV_POLICY_EXPIRE,  /* hard: the kernel deleted it */
	MM_XFRM_EV_POLICY_FLUSH,   /* many policies gone: no detail */
	MM_XFRM_EV_SA_NEW,
	MM_XFRM_EV_SA_UPD,
	MM_XFRM_EV_SA_DEL,
	MM_XFRM_EV_SA_EXPIRE,
	MM_XFRM_EV_SA_FLUSH,
	MM_XFRM_EV_ACQUIRE,        /* traffic hit a policy without an SA */
	MM_XFRM_EV__MAX
};

/* The kernel asks a key manager for an SA. */
struct mm_xfrm_acquire {
	struct mm_xfrm_sel sel;    /* the packet's flow */
	uint8_t family;            /* outer */
	struct mm_addr src, dst;   /* tunnel endpoints wanted */
	uint8_t proto;
	uint8_t dir;               /* of the policy that matched */
	uint32_t policy_index;
	uint32_t priority;
	uint32_t reqid;            /* of the policy's first template, 0 if none */
	uint32_t seq;              /* the acquire's sequence (for the SA reply) */
};

struct mm_xfrm_event {
	enum mm_xfrm_event_type type;
	uint32_t portid;           /* nlmsg_pid: the requester's port, 0 = kernel */
	uint32_t seq;
	bool hard;                 /* *_EXPIRE: hard (deleted) vs soft (warning) */
	uint8_t flush_proto;       /* SA_FLUSH: protocol flushed, 0 = all */
	uint8_t flush_type;        /* POLICY_FLUSH: policy type flushed */
	union {
		struct mm_xfrm_policy policy;   /* POLICY_NEW/UPD/DEL/EXPIRE */
		struct mm_xfrm_sa sa;           /* SA_NEW/UPD/DEL/EXPIRE */
		struct mm_xfrm_acquire acquire; /* ACQUIRE */
	};
};

struct mm_xfrm_monitor_stats {
	uint64_t events;     /* delivered */
	uint64_t ignored;    /* dropped by the port id check here (not
				counting those the socket filter dropped) */
	uint64_t bad;        /* failed to decode (skipped) */
	uint64_t overflows;  /* -ENOBUFS seen */
};

struct mm_xfrm_monitor;

/* Open, subscribe to XFRMNLGRP_POLICY, _SA, _ACQUIRE and _EXPIRE, set a
 * large receive buffer.  Returns 0 or -errno. */
int mm_xfrm_monitor_open(struct mm_xfrm_monitor **ret);
void mm_xfrm_monitor_free(struct mm_xfrm_monitor *mon);  /* accepts NULL */

/* The non-blocking descriptor to poll for input (owned by the monitor). */
int mm_xfrm_monitor_fd(const struct mm_xfrm_monitor *mon);

/* Drop events whose nlmsg_pid is portid (0: filter off), except new and
 * updated policies (see above): in the kernel by a socket filter, and here
 * as well should attaching the filter fail. */
void mm_xfrm_monitor_ignore_portid(struct mm_xfrm_monitor *mon, uint32_t portid);

/* The callback borrows ev for the duration of the call; it returns 0, or
 * -errno to stop reading (returned by mm_xfrm_monitor_read; events read
 * in the same call but not yet delivered are lost, so treat that like
 * -ENOBUFS). */
typedef int (*mm_xfrm_event_fn)(const struct mm_xfrm_event *ev, void *userdata);

/* Decode and deliver what is pending, at most a few thousand messages per
 * call so that a flood cannot starve the caller's loop (the descriptor
 * stays readable; call again).  Returns the number of events delivered
 * (0: nothing pending), -ENOBUFS when events were lost (re-read the kernel's
 * state; the socket stays usable), or another -errno. */
int mm_xfrm_monitor_read(struct mm_xfrm_monitor *mon, mm_xfrm_event_fn fn, void *userdata);

/* Decode one message of the XFRM multicast groups (also for replaying
 * captured messages in tests).  -EPROTO for a type we do not handle. */
int mm_xfrm_event_decode(const struct nlmsghdr *nlh, struct mm_xfrm_event *ret);

void mm_xfrm_monitor_get_stats(const struct mm_xfrm_monitor *mon,
			       struct mm_xfrm_monitor_stats *ret);

const char *mm_xfrm_event_name(enum mm_xfrm_event_type type);

#endif
