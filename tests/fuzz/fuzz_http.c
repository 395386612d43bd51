/* libFuzzer target for the metrics endpoint's request parser
 * (mm_http_parse, daemon/metrics_http.c): the bytes a client sent so far,
 * in a buffer of exactly their size (an over-read is ASan's finding).
 *
 * Invariants: the answer is 0 (read more) or one of 200, 400, 404, 405,
 * 431, 505; 0 only while the head is shorter than MM_HTTP_HEAD_MAX and has
 * no blank line yet; 431 only at MM_HTTP_HEAD_MAX without one; 200 only
 * for "GET /metrics" followed by a space or '?'; once decided, more bytes
 * after the head change nothing; an incomplete head ended by a blank line
 * is decided. */
#include "fuzz.h"

#include "daemon/metrics.h"

static int parse_copy(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	int r;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	r = mm_http_parse(buf, size);
	free(buf);
	return r;
}

static bool has_blank_line(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (d[i] == '\n' && (d[i + 1] == '\n' ||
				     (d[i + 1] == '\r' && i + 2 < n && d[i + 2] == '\n')))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size > MM_HTTP_HEAD_MAX ? MM_HTTP_HEAD_MAX : size;
	int r = parse_copy(data, n);
	bool blank = has_blank_line(data, n);

	FUZZ_ASSERT(r == 0 || r == 200 || r == 400 || r == 404 || r == 405 || r == 431 || r == 505,
		    "answer %d", r);
	FUZZ_ASSERT((r == 0) == (!blank && n < MM_HTTP_HEAD_MAX), "answer %d, blank %d, n %zu", r,
		    blank, n);
	FUZZ_ASSERT((r == 431) == (!blank && n >= MM_HTTP_HEAD_MAX), "answer %d, n %zu", r, n);
	if (r == 200)
		FUZZ_ASSERT(n > 12 && !memcmp(data, "GET /metrics", 12) &&
				    (data[12] == ' ' || data[12] == '?'),
			    "200 for %.40s", (const char *)data);
	if (r != 0 && r != 431 && n < MM_HTTP_HEAD_MAX) {
		/* More bytes after a decided head: the same answer. */
		uint8_t *more = malloc(n + 16);

		if (!more)
			abort();
		memcpy(more, data, n);
		memcpy(more + n, "X\r\n\r\nGET / HTTP", 16);
		FUZZ_ASSERT(parse_copy(more, n + 16 > MM_HTTP_HEAD_MAX ? MM_HTTP_HEAD_MAX : n + 16) ==
				    r,
			    "answer changed by bytes after the head");
		free(more);
	}
	if (r == 0 && n + 4 <= MM_HTTP_HEAD_MAX) {
		uint8_t *done = malloc(n + 4);
		int d;

		if (!done)
			abort();
		memcpy(done, data, n);
		memcpy(done + n, "\r\n\r\n", 4);
		d = parse_copy(done, n + 4);
		FUZZ_ASSERT(d != 0 && d != 431, "a head ended by a blank line undecided: %d", d);
		free(done);
	}
	return 0;
}
