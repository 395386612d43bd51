/* failclient: drives one libmmtrust handle from a test script, so the
 * script can stop, pause and restart the daemon between the calls of one
 * handle (tests/integration/test_client_failure.sh).
 *
 * Reads commands from stdin, one per line, and writes one JSON object per
 * command to stdout:
 *   connect PATH TIMEOUT_MS      mmtrust_connect (closes the handle before)
 *   backoff MS                   mmtrust_set_backoff
 *   inbound SRC [DST]            mmtrust_inbound (spi 0)
 *   outbound DOMAIN              mmtrust_outbound by domain
 *   outbound-dst ADDRESS         mmtrust_outbound by next hop
 *   spi SPI                      mmtrust_spi (decimal or 0x hex)
 *   null-inbound SRC             mmtrust_inbound on a NULL handle
 *   call JSON                    mmtrust_call (raw line)
 *   close                        mmtrust_close
 * Output: {"cmd", "rc" (0 or the errno's name, "ETIMEDOUT"), "ms" (how
 * long the call took), "last_error", and for the typed calls "pai"
 * ("keep"/"strip"), "reason", "partner", "src", "domain", "dst",
 * "source"; "answer" for call}.
 *
 * Built with -DFAILCLIENT_OLD_API it uses only what libmmtrust.so.0 had
 * (no subject or source in the answer, no back-off), to run the same
 * script against the old library. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/mmtrust.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static const char *err_name(int r)
{
	const char *n;

	if (r == 0)
		return "0";
	n = strerrorname_np(-r);
	return n ? n : "E?";
}

/* A field the library left unwritten (no NUL in it) shows as such. */
static json_t *field(const char *buf, size_t size)
{
	return json_string(memchr(buf, '\0', size) ? buf : "<unfilled>");
}

#define FIELD(a, f) field((a)->f, sizeof((a)->f))

static void put_answer(json_t *o, const struct mmtrust_answer *a)
{
	json_object_set_new(o, "pai", json_string(a->pai == MMTRUST_PAI_KEEP ? "keep" :
						  a->pai == MMTRUST_PAI_STRIP ? "strip" : "?"));
	json_object_set_new(o, "reason", FIELD(a, reason));
	json_object_set_new(o, "partner", FIELD(a, partner));
	json_object_set_new(o, "dst", FIELD(a, dst));
#ifndef FAILCLIENT_OLD_API
	json_object_set_new(o, "src", FIELD(a, src));
	json_object_set_new(o, "domain", FIELD(a, domain));
	json_object_set_new(o, "source", FIELD(a, source));
#endif
}

int main(void)
{
	struct mmtrust *m = NULL;
	char line[8192];

	while (fgets(line, sizeof(line), stdin)) {
		struct mmtrust_answer a;
		char *cmd, *arg1, *arg2, *answer = NULL;
		long long t0;
		json_t *o;
		int r = 0;
		bool typed = false;

		line[strcspn(line, "\n")] = '\0';
		cmd = strtok(line, " ");
		if (!cmd)
			continue;
		arg1 = strtok(NULL, " ");
		arg2 = strtok(NULL, "");
		memset(&a, 0x5a, sizeof(a));  /* what a failed call leaves must be written */
		t0 = now_ms();
		if (strcmp(cmd, "connect") == 0 && arg1 && arg2) {
			mmtrust_close(m);
			m = NULL;
			r = mmtrust_connect(arg1, atoi(arg2), &m);
#ifndef FAILCLIENT_OLD_API
			/* The socket transport is what this driver tests: in-process
			 * answers (the snapshot) and how they stop are
			 * test_snapshot.sh's. */
			if (r == 0)
				mmtrust_set_snapshot(m, 0);
#endif
		} else if (strcmp(cmd, "backoff") == 0 && arg1) {
#ifndef FAILCLIENT_OLD_API
			mmtrust_set_backoff(m, atoi(arg1));
#endif
		} else if (strcmp(cmd, "inbound") == 0 && arg1) {
			r = mmtrust_inbound(m, arg1, arg2, 0, &a);
			typed = true;
		} else if (strcmp(cmd, "null-inbound") == 0 && arg1) {
			r = mmtrust_inbound(NULL, arg1, NULL, 0, &a);
			typed = true;
		} else if (strcmp(cmd, "outbound") == 0 && arg1) {
			r = mmtrust_outbound(m, arg1, NULL, 0, &a);
			typed = true;
		} else if (strcmp(cmd, "outbound-dst") == 0 && arg1) {
			r = mmtrust_outbound(m, NULL, arg1, 0, &a);
			typed = true;
		} else if (strcmp(cmd, "spi") == 0 && arg1) {
			r = mmtrust_spi(m, (uint32_t)strtoul(arg1, NULL, 0), &a);
			typed = true;
		} else if (strcmp(cmd, "call") == 0 && arg1) {
			char req[8192];

			snprintf(req, sizeof(req), "%s%s%s", arg1, arg2 ? " " : "", arg2 ? arg2 : "");
			r = mmtrust_call(m, req, strlen(req), 0, &answer);
		} else if (strcmp(cmd, "close") == 0) {
			mmtrust_close(m);
			m = NULL;
		} else {
			fprintf(stderr, "failclient: unknown command or missing argument: %s\n", cmd);
			return 2;
		}
		o = json_pack("{s:s, s:s, s:I, s:s}", "cmd", cmd, "rc", err_name(r), "ms",
			      (json_int_t)(now_ms() - t0), "last_error",
			      m ? mmtrust_last_error(m) : "");
		if (!o)
			return 1;
		if (typed)
			put_answer(o, &a);
		if (answer)
			json_object_set_new(o, "answer", json_string(answer));
		free(answer);
		if (json_dumpf(o, stdout, JSON_COMPACT) < 0)
			return 1;
		json_decref(o);
		putchar('\n');
		fflush(stdout);
	}
	mmtrust_close(m);
	return 0;
}
