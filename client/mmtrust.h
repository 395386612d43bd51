/* libmmtrust: talk to mmtrustd over its Unix sockets.
 *
 * The wire format is newline-delimited JSON, one request object per line
 * and one answer per request, in order (docs/admin-protocol.md).  This
 * layer moves lines; callers build and read the JSON with the library of
 * their choice.
 *
 * Threads: a handle is not thread-safe.  Use one handle per thread, or
 * serialise calls on a shared handle with a mutex.
 * Errors: functions return 0 or a negative errno; nothing is printed. */
#ifndef MMTRUST_H
#define MMTRUST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMTRUST_ADMIN_SOCKET "/run/mmtrust/admin.sock"
#define MMTRUST_QUERY_SOCKET "/run/mmtrust/query.sock"

struct mmtrust;

/* Connect to the socket at path.  -ENOENT/-ECONNREFUSED: no daemon there;
 * -EACCES: not allowed.  timeout_ms bounds every later request (0: none). */
int mmtrust_connect(const char *path, int timeout_ms, struct mmtrust **ret);
void mmtrust_close(struct mmtrust *m);  /* accepts NULL */

/* Send one request line (len bytes, without the newline; must not contain
 * one) and wait for one answer line.  *ret_answer is a NUL-terminated
 * malloc'd string without the newline, which the caller frees.
 * -ETIMEDOUT, -ECONNRESET (the daemon closed the connection), -EMSGSIZE
 * (an answer longer than max_answer, 0 = 1 GiB), -ENOMEM. */
int mmtrust_call(struct mmtrust *m, const char *request, size_t len, size_t max_answer,
		 char **ret_answer);

#ifdef __cplusplus
}
#endif
#endif
