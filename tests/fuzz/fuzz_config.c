/* libFuzzer target for mmtrustd's configuration file (daemon/config.c,
 * INI read with libinih).  mm_config_load reads a path: the input is
 * written to a memfd and loaded as /proc/self/fd/N, twice.
 *
 * Invariants: a refusal fills the error (code, field, message) and leaves
 * the result untouched; the same text loads the same way twice; an
 * accepted configuration passes the one validation (config.h): a
 * non-empty reqid range starting above 0, a priority band that does not
 * wrap, max_clients and the tag not 0, [ike] enabled only with
 * certificate, key and a tunnel address, at most one tunnel address per
 * family, every string terminated inside its field, every cscf prefix in
 * canonical form parsing back to itself, and no line longer than libinih
 * reads at once (198 characters and the newline). */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "daemon/config.h"
#include "daemon/spd_desired.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fd = memfd_create("mmtrust-fuzz-config", MFD_CLOEXEC);
	FUZZ_ASSERT(fd >= 0, "memfd_create: %s", strerror(errno));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return 0;
}

#define TERMINATED(c, f) FUZZ_ASSERT(strnlen((c)->f, sizeof((c)->f)) < sizeof((c)->f), #f)

static void check(const struct mm_config *c)
{
	FUZZ_ASSERT(c->reqid_min > 0 && c->reqid_min <= c->reqid_max, "reqid %u-%u",
		    c->reqid_min, c->reqid_max);
	FUZZ_ASSERT((uint64_t)c->spd_prio_base + MM_SPD_PRIO_SPAN - 1 <= UINT32_MAX, "band");
	FUZZ_ASSERT(c->query_max_clients > 0 && c->spd_tag != 0, "max_clients, tag");
	FUZZ_ASSERT(!c->ike_enabled || (c->ike_certificate[0] && c->ike_private_key[0] &&
					c->n_tunnel > 0), "ike");
	FUZZ_ASSERT(c->n_cscf <= MM_CONFIG_MAX_LOCAL && c->n_tunnel <= 2, "counts");
	FUZZ_ASSERT(c->n_tunnel < 2 || c->tunnel[0].family != c->tunnel[1].family, "tunnels");
	FUZZ_ASSERT(c->query_untrusted == 0 || c->query_untrusted == 1, "untrusted");
	TERMINATED(c, store);
	TERMINATED(c, admin_socket);
	TERMINATED(c, admin_group);
	TERMINATED(c, query_socket);
	TERMINATED(c, query_group);
	TERMINATED(c, ike_vici_socket);
	TERMINATED(c, ike_certificate);
	TERMINATED(c, ike_private_key);
	TERMINATED(c, ike_local_id);
	FUZZ_ASSERT(!strcmp(c->path, path), "path");
	for (size_t i = 0; i < c->n_cscf; i++) {
		char t[MM_ADDR_STRLEN];
		struct mm_prefix p;

		mm_prefix_str(&c->cscf[i], t);
		FUZZ_ASSERT(mm_prefix_parse(t, &p, "c", NULL) == 0 &&
			    mm_prefix_cmp(&p, &c->cscf[i]) == 0, "cscf %s", t);
		/* each faces a known kind; prefixes of different keys never
		 * overlap (which peers an address serves is never ambiguous) */
		FUZZ_ASSERT(c->cscf_kinds[i] && !(c->cscf_kinds[i] & ~MM_KINDS_ALL), "cscf kinds");
		for (size_t k = 0; k < i; k++)
			FUZZ_ASSERT(c->cscf_kinds[k] == c->cscf_kinds[i] ||
				    !mm_prefix_overlaps(&c->cscf[k], &c->cscf[i]),
				    "cscf %s overlaps one of another key", t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_config a, b;
	struct mm_err e = { 0 }, e2 = { 0 };
	int r, r2;

	FUZZ_ASSERT(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size, "memfd");
	memset(&a, 0xa5, sizeof(a));
	memset(&b, 0xa5, sizeof(b));
	r = mm_config_load(path, &a, &e);
	r2 = mm_config_load(path, &b, &e2);
	FUZZ_ASSERT(r == r2 && e.code == e2.code && !strcmp(e.field, e2.field) &&
		    !strcmp(e.msg, e2.msg), "two loads differ: %d %d", r, r2);
	if (r < 0) {
		struct mm_config untouched;

		memset(&untouched, 0xa5, sizeof(untouched));
		FUZZ_ASSERT(e.code != MM_ERR_NONE && e.field[0] && e.msg[0], "error '%s' '%s'",
			    e.field, e.msg);
		FUZZ_ASSERT(!memcmp(&a, &untouched, sizeof(a)), "result changed on failure");
		return 0;
	}
	FUZZ_ASSERT(r == 0 && e.code == MM_ERR_NONE, "r=%d", r);
	/* libinih's buffer holds 198 characters and the newline: a longer
	 * line would be read as two (the tail of a comment as a setting). */
	for (size_t i = 0, start = 0; i <= size; i++)
		if (i == size || data[i] == '\n') {
			FUZZ_ASSERT(i - start <= 198 || (i == size && i - start == 199),
				    "a line of %zu characters accepted", i - start);
			start = i + 1;
		}
	FUZZ_ASSERT(!memcmp(&a, &b, sizeof(a)), "two loads differ");
	check(&a);
	return 0;
}
