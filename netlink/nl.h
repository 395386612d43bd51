/* The XFRM request socket: batched acknowledged requests, dumps, probes.
 *
 * One struct mm_nl wraps one NETLINK_XFRM socket used only for requests
 * and their replies (events come on a separate socket, xfrm_monitor.h).
 * Extended ACKs are enabled (NETLINK_EXT_ACK) and error replies are capped
 * (NETLINK_CAP_ACK), so every failure carries the kernel's own text.
 *
 * Every request this layer sends carries NLM_F_ACK, a sequence number of
 * its own and, in nlmsg_pid, the socket's port id: the kernel copies that
 * port id into the multicast notification the change causes, which lets an
 * event listener tell our own changes from everybody else's.
 *
 * Errors: functions return 0 (or a count) on success and -errno on
 * failure; nothing here prints.  The caller owns the struct and frees it
 * with mm_nl_free().  Not thread-safe: one user at a time. */
#ifndef MM_NL_H
#define MM_NL_H

#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Acked requests per send.  With more, the acks of one send can overflow
 * the default receive buffer (ENOBUFS) and the answers are lost. */
#define MM_NL_BATCH_MAX 256
/* The largest single request an encoder may write. */
#define MM_NL_MSG_MAX 2048
/* Whether a whole message starts at nlh, len bytes being left: what
 * mnl_nlmsg_ok() should say.  libmnl 1.0.4 compares (int)nlmsg_len, so a
 * length of 2^31 or more passes, and one of 0xfffffffd or more aligns to
 * 0 in mnl_nlmsg_next(), which then returns the same message for ever.
 * Every loop over received messages uses this one. */
static inline bool mm_nl_msg_ok(const struct nlmsghdr *nlh, int len)
{
	return len >= (int)sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) &&
	       nlh->nlmsg_len <= (unsigned)len;
}

/* How often a dump interrupted by a concurrent change (NLM_F_DUMP_INTR)
 * or a lost reply (ENOBUFS) is started again before giving up. */
#define MM_NL_DUMP_RETRIES 5
/* Room for the kernel's extended-ACK message, with the NUL. */
#define MM_NL_EXTACK_MAX 256

struct mm_nl;

/* The kernel's answer to one request. */
struct mm_nl_result {
	int error;                      /* 0 or -errno */
	char extack[MM_NL_EXTACK_MAX];  /* extended-ACK text, "" when none */
};

/* Open a NETLINK_XFRM request socket.  -EPROTONOSUPPORT when the kernel has
 * no XFRM netlink, -ENOMEM, or the socket call's -errno. */
int mm_nl_open(struct mm_nl **ret);
void mm_nl_free(struct mm_nl *nl);  /* accepts NULL */

/* The port id the kernel assigned (copied into our events' nlmsg_pid). */
uint32_t mm_nl_portid(const struct mm_nl *nl);

/* Writes request number i into buf as one netlink message, starting with
 * mnl_nlmsg_put_header(buf) (buf is not cleared; it holds MM_NL_MSG_MAX
 * bytes and is only 4-byte aligned, so copy structs in with memcpy): type,
 * flags other than REQUEST/ACK, payload.  Return 0, or -errno to fail this
 * request without sending it (done() then gets that error and an empty
 * extack).  Sequence number, port id, NLM_F_REQUEST and NLM_F_ACK are set
 * by mm_nl_batch(). */
typedef int (*mm_nl_encode_fn)(void *buf, size_t i, void *userdata);
/* Called once for every request, in order, with the kernel's answer. */
typedef void (*mm_nl_done_fn)(size_t i, const struct mm_nl_result *res, void *userdata);
/* Called between sends (may be NULL): a chance to drain an event socket so
 * that the notifications our own changes cause do not overflow it. */
typedef void (*mm_nl_pause_fn)(void *userdata);

/* Send n requests in sends of at most MM_NL_BATCH_MAX messages, each acked;
 * done() reports every answer.  Returns the number of requests the kernel
 * refused (>= 0), or -errno when the exchange itself failed (send error,
 * lost acks): then requests without an answer are reported to done() with
 * that error and the caller must re-read the kernel's state. */
int mm_nl_batch(struct mm_nl *nl, size_t n, mm_nl_encode_fn encode, mm_nl_done_fn done,
		mm_nl_pause_fn pause, void *userdata);

/* One request; replies other than the ack go to reply() (may be NULL).
 * Returns 0, the kernel's -errno, or a transport -errno; ret (may be NULL)
 * receives the answer including the extack text either way, because a
 * refusal's text is what the caller wants to report. */
typedef int (*mm_nl_msg_fn)(const struct nlmsghdr *nlh, void *userdata);
int mm_nl_request(struct mm_nl *nl, void *msg, mm_nl_msg_fn reply, void *userdata,
		  struct mm_nl_result *ret);

/* Dump: send a NLM_F_DUMP request of the given type and fixed-size payload
 * and pass every reply message to each(), which copies out what it needs
 * (the buffer is reused) and returns 0, or -errno to stop (the rest of the
 * dump is read and dropped, and that -errno is returned).  When the kernel
 * flags the dump as interrupted (NLM_F_DUMP_INTR) or replies are lost
 * (ENOBUFS), reset() (may be NULL) is called so the caller drops what it
 * collected, and the dump starts again, at most MM_NL_DUMP_RETRIES times:
 * then -EAGAIN.  A kernel refusal is its -errno with the text in ret. */
typedef void (*mm_nl_reset_fn)(void *userdata);
int mm_nl_dump(struct mm_nl *nl, uint16_t type, const void *payload, size_t len,
	       mm_nl_msg_fn each, mm_nl_reset_fn reset, void *userdata,
	       struct mm_nl_result *ret);

/* Ask the kernel a harmless question (XFRM_MSG_GETSPDINFO).  Every XFRM
 * request needs CAP_NET_ADMIN over the socket's network namespace, so this
 * returns -EPERM exactly when the process may not program the SPD; 0 when it
 * may.  Checked with the kernel rather than capget() because only the
 * kernel knows which namespace the capability must cover. */
int mm_nl_probe(struct mm_nl *nl);

/* True when this process has CAP_NET_ADMIN in its effective set (capget). */
int mm_nl_have_net_admin(void);

/* Parse the extended ACK of an NLMSG_ERROR message into res. */
void mm_nl_parse_ack(const struct nlmsghdr *nlh, struct mm_nl_result *res);

#endif
