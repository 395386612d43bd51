/* A CSCF's smallest use of the installed libmmtrust (tests/package/test_deb.sh):
 * built with `cc client.c $(pkg-config --cflags --libs mmtrust)` against the
 * packaged header, library and mmtrust.pc.
 *   client SOCKET SRC DST: asks mmtrustd at SOCKET about a message from SRC
 *   to our DST and prints "partner=... pai=... reason=... source=...".
 *   Exit 0 when answered, 1 otherwise (the fail-closed answer is printed too). */
#include <mmtrust.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct mmtrust_answer a;
	struct mmtrust *m = NULL;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: client SOCKET SRC DST\n");
		return 2;
	}
	r = mmtrust_connect(argv[1], 2000, &m);
	if (r < 0) {
		printf("connect: %s\n", strerror(-r));
		return 1;
	}
	r = mmtrust_inbound(m, argv[2], argv[3], 0, &a);
	printf("partner=%s pai=%s reason=%s source=%s\n", a.partner,
	       a.pai == MMTRUST_PAI_KEEP ? "keep" : "strip", a.reason, a.source);
	if (r < 0)
		printf("error: %s\n", mmtrust_last_error(m));
	mmtrust_close(m);
	return r < 0;
}
