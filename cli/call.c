/* mmtrustctl: one request, one answer, over either of mmtrustd's sockets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl.h"
#include "client/mmtrust.h"

/* An apply of a large table may take the daemon a while; a CSCF question
 * is answered at once or not at all. */
#define ADMIN_TIMEOUT_MS 120000
#define QUERY_TIMEOUT_MS 10000

int ctl_call(const struct ctl *ctl, const char *socket, int timeout_ms, json_t *req,
	     json_t **ret_result)
{
	struct mmtrust *m = NULL;
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL, *answer = NULL;
	json_t *a = NULL, *e;
	json_error_t jerr;
	const char *field;
	int r, rc = EXIT_UNREACHABLE;

	if (!req) {
		rc = EXIT_USAGE;  /* ctl_pack said why */
		goto out;
	}
	json_decref(req);
	if (!text) {
		fprintf(stderr, "mmtrustctl: out of memory\n");
		rc = EXIT_REFUSED;
		goto out;
	}
	r = mmtrust_connect(socket, timeout_ms, &m);
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: cannot reach mmtrustd at %s: %s%s\n", socket,
			strerror(-r),
			r == -EACCES ? " (the admin socket is for root and the admin group)" : "");
		goto out;
	}
	r = mmtrust_call(m, text, strlen(text), 0, &answer);
	if (r < 0) {
		fprintf(stderr, "mmtrustctl: no answer from mmtrustd at %s: %s\n", socket,
			r == -ECONNRESET ? "connection closed (not allowed, or the daemon stopped)"
					 : strerror(-r));
		goto out;
	}
	a = json_loads(answer, 0, &jerr);
	if (!json_is_object(a)) {
		fprintf(stderr, "mmtrustctl: unreadable answer from mmtrustd: %s\n",
			a ? "not an object" : jerr.text);
		goto out;
	}
	if (!json_is_true(json_object_get(a, "ok"))) {
		e = json_object_get(a, "error");
		field = json_string_value(json_object_get(e, "field"));
		if (ctl->json)
			ctl_print_json(a, JSON_INDENT(2));
		fprintf(stderr, "mmtrustctl: refused (%s): %s%s%s\n", jstr(e, "code"),
			field ? field : "", field ? ": " : "", jstr(e, "message"));
		rc = EXIT_REFUSED;
		goto out;
	}
	e = json_object_get(a, "result");
	*ret_result = e ? json_incref(e) : json_object();
	rc = EXIT_OK;
out:
	json_decref(a);
	free(answer);
	free(text);
	mmtrust_close(m);
	return rc;
}

int ctl_admin(const struct ctl *ctl, json_t *req, json_t **ret_result)
{
	return ctl_call(ctl, ctl->admin_socket, ADMIN_TIMEOUT_MS, req, ret_result);
}

static int call_show(const struct ctl *ctl, const char *socket, int timeout_ms, json_t *req,
		     void (*human)(const json_t *))
{
	json_t *result;
	int rc = ctl_call(ctl, socket, timeout_ms, req, &result);

	return rc == EXIT_OK ? ctl_show(ctl, result, human) : rc;
}

int ctl_admin_show(const struct ctl *ctl, json_t *req, void (*human)(const json_t *))
{
	return call_show(ctl, ctl->admin_socket, ADMIN_TIMEOUT_MS, req, human);
}

int ctl_query_show(const struct ctl *ctl, json_t *req, void (*human)(const json_t *))
{
	return call_show(ctl, ctl->query_socket, QUERY_TIMEOUT_MS, req, human);
}
