/* A CSCF-like program linked against an installed libmmtrust, shared or
 * static (tests/client/test_package.sh): it must link through pkg-config
 * alone, and run: no daemon at PATH, so connect fails with ENOENT and a
 * typed call on no handle fails closed.  Exit 0 when all holds. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mmtrust.h>

int main(int argc, char **argv)
{
	struct mmtrust *m = NULL;
	struct mmtrust_answer a;
	int r;

	if (argc != 2)
		return 2;
	r = mmtrust_connect(argv[1], 100, &m);
	if (r != -ENOENT || m) {
		fprintf(stderr, "linkcheck: connect %s: %d, want -ENOENT\n", argv[1], r);
		return 1;
	}
	mmtrust_set_backoff(m, 0);
	r = mmtrust_outbound(m, "ims.example", NULL, 0, &a);
	if (r != -ENOTCONN || a.pai != MMTRUST_PAI_STRIP || strcmp(a.source, "error") != 0 ||
	    strcmp(a.domain, "ims.example") != 0) {
		fprintf(stderr, "linkcheck: outbound on no handle: %d, pai %d, %s, %s\n", r, a.pai,
			a.reason, a.source);
		return 1;
	}
	printf("linkcheck: %s\n", a.reason);
	return 0;
}
