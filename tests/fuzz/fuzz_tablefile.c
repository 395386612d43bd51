/* libFuzzer target for the partner table file (cli/tablefile.c, YAML read
 * with libyaml).
 *
 * Input: the file's text.  ca_file names reach open(): this binary is
 * linked with -Wl,--wrap=open and only opens files inside a private
 * directory holding ca.pem and ca.der (the same CA as text and as DER), so
 * no input reads the machine's files or blocks on a FIFO or a terminal.
 *
 * Invariants: a refusal leaves the result untouched and says why in one
 * line naming the file; an accepted file is an array of partner objects
 * whose members are among the nine of tablefile.h (ca_file became ca);
 * when tablefile_write takes it (it refuses duplicate domains, NUL bytes
 * and wrong types), what it writes parses back to the same partners, and
 * writing those again gives the same bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "fuzz_ca.h"
#include "cli/tablefile.h"

#define NAME "fuzz.yaml"

static char dir[64];

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

int __wrap_open(const char *path, int flags, ...)
{
	size_t n = strlen(dir);
	mode_t mode = 0;
	va_list ap;

	va_start(ap, flags);
	if (flags & O_CREAT)
		mode = va_arg(ap, mode_t);
	va_end(ap);
	if (n && (strncmp(path, dir, n) || path[n] != '/' || strstr(path, "/.."))) {
		errno = EACCES;
		return -1;
	}
	return __real_open(path, flags, mode);
}

static void put(const char *name, const void *data, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	FUZZ_ASSERT(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "%s", path);
}

static void cleanup(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ca.der", dir);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/mmtrust-fuzz-XXXXXX");
	FUZZ_ASSERT(mkdtemp(dir), "mkdtemp");
	put("ca.pem", FUZZ_CA_PEM, strlen(FUZZ_CA_PEM));
	put("ca.der", fuzz_ca_der, sizeof(fuzz_ca_der));
	atexit(cleanup);
	return 0;
}

static int by_domain(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(*(json_t *const *)a, "domain"));
	const char *y = json_string_value(json_object_get(*(json_t *const *)b, "domain"));

	return strcmp(x ? x : "", y ? y : "");
}

/* The partners sorted by domain, as tablefile_write orders them, without
 * the members it leaves out as defaults (crls: [], revocation: ifuri). */
static json_t *sorted(const json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = calloc(n + 1, sizeof(*v)), *out = json_array();

	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(arr, i);
	qsort(v, n, sizeof(*v), by_domain);
	for (size_t i = 0; i < n; i++) {
		json_t *c = json_copy(v[i]), *m;

		m = json_object_get(c, "crls");
		if (json_is_array(m) && json_array_size(m) == 0)
			json_object_del(c, "crls");
		m = json_object_get(c, "revocation");
		if (json_is_string(m) && strcmp(json_string_value(m), "ifuri") == 0)
			json_object_del(c, "revocation");
		json_array_append_new(out, c);
	}
	free(v);
	return out;
}

static char *write_text(const json_t *partners, size_t *len, int *r)
{
	char err[512] = "", *text = NULL;
	FILE *f = open_memstream(&text, len);

	FUZZ_ASSERT(f, "open_memstream");
	*r = tablefile_write(f, partners, err, sizeof(err));
	fclose(f);
	FUZZ_ASSERT(*r == 0 || (*r < 0 && err[0] && !strchr(err, '\n')), "write: %d '%s'", *r,
		    err);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = { "domain", "kind", "agreement", "ranges", "gateways",
					    "esp", "path", "enabled", "ca", "crls", "revocation" };
	const size_t n_keys = sizeof(keys) / sizeof(keys[0]);
	json_t *sentinel = json_null(), *parts = sentinel, *back = NULL;
	char err[512] = "", err2[512] = "", *text, *text2;
	size_t len, len2;
	size_t i;
	json_t *p;
	int r, w;

	r = tablefile_parse((const char *)data, size, NAME, dir, &parts, err, sizeof(err));
	if (r < 0) {
		FUZZ_ASSERT(parts == sentinel, "result set on failure %d", r);
		FUZZ_ASSERT(!strncmp(err, NAME ":", strlen(NAME) + 1) || strstr(err, dir),
			    "message '%s'", err);
		FUZZ_ASSERT(!strchr(err, '\n'), "message of two lines '%s'", err);
		return 0;
	}
	FUZZ_ASSERT(r == 0 && json_is_array(parts), "r=%d", r);
	json_array_foreach(parts, i, p) {
		const char *key;
		json_t *v;

		FUZZ_ASSERT(json_is_object(p), "partners[%zu]", i);
		json_object_foreach(p, key, v) {
			size_t k = 0;

			while (k < n_keys && strcmp(keys[k], key))
				k++;
			FUZZ_ASSERT(k < n_keys, "partners[%zu].%s", i, key);
		}
	}
	text = write_text(parts, &len, &w);
	if (w == 0) {
		json_t *want = sorted(parts);

		r = tablefile_parse(text, len, NAME, dir, &back, err2, sizeof(err2));
		FUZZ_ASSERT(r == 0, "written table refused: %s\n%s", err2, text);
		FUZZ_ASSERT(json_equal(back, want), "written table reads back different:\n%s", text);
		text2 = write_text(back, &len2, &w);
		FUZZ_ASSERT(w == 0 && len2 == len && !memcmp(text, text2, len),
			    "second write differs:\n%s\n---\n%s", text, text2);
		free(text2);
		json_decref(want);
		json_decref(back);
	}
	free(text);
	json_decref(parts);
	return 0;
}
