/* Shared by the libFuzzer targets (tests/fuzz/README.md): the entry point's
 * prototype and the invariant check.  A broken invariant prints what broke
 * and aborts, which libFuzzer reports as a finding with the input saved. */
#ifndef MM_FUZZ_H
#define MM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond, ...)                                                        \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__,    \
				__LINE__, #cond);                                     \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* data[0..size) as a NUL-terminated string (cut at the first NUL), at most
 * max bytes; free() it. */
static inline char *fuzz_str(const uint8_t *data, size_t size, size_t max)
{
	size_t n = strnlen((const char *)data, size < max ? size : max);
	char *s = malloc(n + 1);

	if (!s)
		abort();
	memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

#endif
