/* For the targets of the two JSON-lines protocols (query, admin): the
 * daemon's own line handling (daemon/jsonl.c, included for its static
 * client_line) over a client without a socket, and the checks every
 * answer must pass whatever the protocol. */
#ifndef MM_FUZZ_JSONL_H
#define MM_FUZZ_JSONL_H

#include "fuzz.h"

#include "daemon/jsonl.c"

/* Called with each request line (trimmed as client_line trims it; req is
 * its JSON or NULL) and the answer object, after the common checks. */
typedef void (*fuzz_answer_fn)(const json_t *req, const json_t *answer, void *userdata);

static inline const char *fuzz_str_member(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Feed data[0..size) to a fresh client of s, line by line.  Checks: no
 * answer to a blank line, exactly one answer line to any other, valid
 * JSON, an object with "ok" true or false, the request's "id" echoed; a
 * refusal carries an error code and a message; only an object is ever
 * accepted. */
static inline void fuzz_jsonl_lines(struct mm_jsonl_server *s, const uint8_t *data, size_t size,
				    fuzz_answer_fn fn, void *userdata)
{
	struct mm_jsonl_client c = { .server = s, .fd = -1 };
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t len = (nl ? nl : end) - p, before = c.out.len, tlen = len, alen;
		const char *ans;
		json_t *req, *a;
		const json_t *ok, *e;
		int r;

		r = client_line(&c, p, len);
		FUZZ_ASSERT(r == 0, "client_line %d", r);
		while (tlen && (p[tlen - 1] == '\r' || p[tlen - 1] == ' '))
			tlen--;
		ans = c.out.data ? c.out.data + before : "";
		alen = c.out.len - before;
		if (!tlen) {
			FUZZ_ASSERT(alen == 0, "an answer to a blank line");
			p += len + 1;
			continue;
		}
		FUZZ_ASSERT(alen > 1 && ans[alen - 1] == '\n' && !memchr(ans, '\n', alen - 1),
			    "not one answer line");
		req = json_loadb(p, tlen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
		a = json_loadb(ans, alen - 1, 0, NULL);
		ok = json_object_get(a, "ok");
		FUZZ_ASSERT(a && json_is_boolean(ok), "answer '%.*s'", (int)alen, ans);
		FUZZ_ASSERT(json_is_object(req) || json_is_false(ok), "non-object accepted");
		if (json_is_object(req) && json_object_get(req, "id"))
			FUZZ_ASSERT(json_equal(json_object_get(req, "id"), json_object_get(a, "id")),
				    "id not echoed: '%.*s'", (int)alen, ans);
		e = json_object_get(a, "error");
		if (json_is_false(ok))
			FUZZ_ASSERT(fuzz_str_member(e, "code") && fuzz_str_member(e, "message") &&
				    fuzz_str_member(e, "message")[0], "refusal '%.*s'", (int)alen, ans);
		fn(json_is_object(req) ? req : NULL, a, userdata);
		json_decref(req);
		json_decref(a);
		p += len + 1;
	}
	free(c.in.data);
	free(c.out.data);
}

#endif
