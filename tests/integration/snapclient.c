/* libmmtrust against the real mmtrustd, for test_snapshot.sh:
 *
 *   snapclient compare SOCK SEED N DOMAIN...   random questions, in-process
 *        answers against the socket's; prints counts, exit 1 on a mismatch
 *   snapclient ask SOCK inbound SRC [DST]     one answer: "source pai reason"
 *   snapclient ask SOCK outbound DOMAIN
 *   snapclient repl SOCK    one handle for ever: questions on stdin, one
 *        answer line "r source pai reason" each
 *   snapclient watch SOCK SRC DST DOMAIN      until a "sa-down" event for
 *        DOMAIN: asks SRC->DST in-process all the time; at the event asks
 *        once more and prints what that answer said and how long the keep
 *        answers lasted after the partner was taken away (see the script)
 *
 * The questions of `compare` are drawn (seeded) from the partners'
 * addresses the script names and odd spellings of them; each one is asked
 * in-process (a), over the socket on a handle with in-process answers off
 * (b), and in-process again (c).  A mismatch counts only when a and c both
 * came from the snapshot and agree with each other but not with b: then
 * nothing changed in between, and the two paths disagreed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/mmtrust.h"

static unsigned long long rng;

static unsigned rnd(unsigned n)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (unsigned)((rng >> 33) % n);
}

static const char *pick(const char *const *v, size_t n)
{
	return v[rnd(n)];
}

/* Addresses around the ranges test_snapshot.sh provisions, in several
 * spellings. */
static const char *const srcs[] = {
	"192.0.2.10", "192.0.2.0", "192.0.2.255", "192.0.3.0", "192.0.1.255",
	"203.0.113.5", "203.0.113.127", "203.0.113.128", "198.18.0.7", "198.18.1.0",
	"2001:db8:a::1", "2001:DB8:A:0::1", "2001:db8:a:ffff:ffff:ffff:ffff:ffff",
	"2001:db8:b::1", "::ffff:192.0.2.10", "::ffff:203.0.113.5", "10.9.9.9",
	"100.64.0.1", "100.64.255.255", "2001:db8:c::5", "198.51.100.10",
	"0.0.0.0", "::", "not-an-address", "192.0.2.10 ", "",
};
static const char *const dsts[] = {
	NULL, "10.0.0.5", "10.0.0.255", "10.0.1.0", "198.51.100.1", "2001:db8:10::5",
	"2001:DB8:10:0::5", "2001:db8:11::5", "::ffff:10.0.0.5", "bogus",
};

static int same(const struct mmtrust_answer *a, const struct mmtrust_answer *b)
{
	return a->pai == b->pai && !strcmp(a->reason, b->reason) &&
	       !strcmp(a->partner, b->partner) && !strcmp(a->kind, b->kind) &&
	       !strcmp(a->path, b->path) && a->agreement == b->agreement &&
	       a->enabled == b->enabled && a->protected_ == b->protected_ &&
	       a->trusted == b->trusted && !strcmp(a->tunnel, b->tunnel) && a->reqid == b->reqid &&
	       a->spi_in == b->spi_in && a->spi_out == b->spi_out &&
	       !strcmp(a->remote_id, b->remote_id) && !strcmp(a->dst, b->dst) &&
	       !strcmp(a->src, b->src) && !strcmp(a->domain, b->domain);
}

static void show(const char *what, int r, const struct mmtrust_answer *a)
{
	fprintf(stderr, "  %s: r=%d source=%s pai=%d reason=%s partner=%s kind=%s path=%s agr=%d "
		"en=%d prot=%d trusted=%d tunnel=%s reqid=%u spi=%x/%x rid=%s dst=%s src=%s "
		"domain=%s\n", what, r, a->source, a->pai, a->reason, a->partner, a->kind, a->path,
		a->agreement, a->enabled, a->protected_, a->trusted, a->tunnel, a->reqid,
		a->spi_in, a->spi_out, a->remote_id, a->dst, a->src, a->domain);
}

typedef int (*ask_fn)(struct mmtrust *m, const void *q, struct mmtrust_answer *ret);

struct question {
	int outbound;
	const char *src, *dst, *domain;
	uint32_t spi;
	int privacy_id;
};

static int ask(struct mmtrust *m, const struct question *q, struct mmtrust_answer *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (q->outbound)
		return mmtrust_outbound(m, q->domain, q->dst, q->privacy_id, ret);
	return mmtrust_inbound(m, q->src, q->dst, q->spi, ret);
}

static int compare(const char *sock, unsigned long long seed, long n, char **domains,
		   int n_domains)
{
	struct mmtrust *snap = NULL, *plain = NULL;
	long from_snap = 0, checked = 0, mismatches = 0, refused = 0;
	char spelled[300];
	int r;

	rng = seed;
	if ((r = mmtrust_connect(sock, 2000, &snap)) < 0 ||
	    (r = mmtrust_connect(sock, 2000, &plain)) < 0) {
		fprintf(stderr, "connect %s: %s\n", sock, strerror(-r));
		return 2;
	}
	mmtrust_set_snapshot(plain, 0);
	for (long i = 0; i < n; i++) {
		struct question q = { .outbound = rnd(2) };
		struct mmtrust_answer a, b, c;
		int ra, rb, rc;

		if (q.outbound) {
			if (rnd(3)) {
				const char *d = domains[rnd(n_domains)];

				/* the domain as configured, in capitals, absolute */
				switch (rnd(4)) {
				case 0:
					snprintf(spelled, sizeof(spelled), "%s.", d);
					break;
				case 1:
					snprintf(spelled, sizeof(spelled), "%s", d);
					for (char *p = spelled; *p; p++)
						if (rnd(2) && *p >= 'a' && *p <= 'z')
							*p -= 32;
					break;
				case 2:
					snprintf(spelled, sizeof(spelled), "x%s", d);
					break;
				default:
					snprintf(spelled, sizeof(spelled), "%s", d);
				}
				q.domain = spelled;
				if (!rnd(10))
					q.dst = "192.0.2.10";  /* both: refused */
			} else {
				q.dst = pick(srcs, sizeof(srcs) / sizeof(srcs[0]));
			}
			q.privacy_id = rnd(2);
		} else {
			q.src = pick(srcs, sizeof(srcs) / sizeof(srcs[0]));
			q.dst = pick(dsts, sizeof(dsts) / sizeof(dsts[0]));
			q.spi = rnd(3) == 0 ? 0xc1000000u + rnd(0x10000) : rnd(4) == 0 ? rnd(100) : 0;
		}
		ra = ask(snap, &q, &a);
		rb = ask(plain, &q, &b);
		rc = ask(snap, &q, &c);
		if (ra == 0 && !strcmp(a.source, "snapshot"))
			from_snap++;
		if (rb == 0 && strcmp(b.source, "socket")) {
			fprintf(stderr, "MISMATCH: a handle with in-process answers off answered "
				"from %s\n", b.source);
			mismatches++;
		}
		if (ra < 0 || rc < 0 || strcmp(a.source, "snapshot") || strcmp(c.source, "snapshot")) {
			/* Not from the snapshot: the daemon refused it (both must say
			 * so), or a change was under way. */
			if (ra == -EPROTO && rb != -EPROTO) {
				fprintf(stderr, "MISMATCH: refused on one path only\n");
				show("in-process", ra, &a);
				show("socket", rb, &b);
				mismatches++;
			}
			refused += ra == -EPROTO;
			continue;
		}
		if (!same(&a, &c))
			continue;  /* a change between a and c */
		checked++;
		if (rb != 0 || !same(&a, &b)) {
			fprintf(stderr, "MISMATCH on %s src=%s dst=%s domain=%s spi=%x privacy=%d\n",
				q.outbound ? "outbound" : "inbound", q.src ? q.src : "-",
				q.dst ? q.dst : "-", q.domain ? q.domain : "-", q.spi, q.privacy_id);
			show("in-process", ra, &a);
			show("socket", rb, &b);
			mismatches++;
		}
	}
	printf("asked %ld, in-process %ld, compared %ld, refused by the daemon %ld, "
	       "mismatches %ld\n", n, from_snap, checked, refused, mismatches);
	mmtrust_close(snap);
	mmtrust_close(plain);
	return mismatches ? 1 : 0;
}

static int ask_one(const char *sock, int argc, char **argv)
{
	struct mmtrust *m;
	struct mmtrust_answer a;
	int r;

	if ((r = mmtrust_connect(sock, 2000, &m)) < 0) {
		printf("error connect:%s\n", strerror(-r));
		return 0;
	}
	memset(&a, 0, sizeof(a));
	if (!strcmp(argv[0], "inbound"))
		r = mmtrust_inbound(m, argv[1], argc > 2 ? argv[2] : NULL, 0, &a);
	else
		r = mmtrust_outbound(m, argv[1], NULL, 0, &a);
	/* Asked twice: the first call of a handle learns where the snapshot
	 * is; the second shows where answers come from in the steady state. */
	if (r == 0) {
		if (!strcmp(argv[0], "inbound"))
			r = mmtrust_inbound(m, argv[1], argc > 2 ? argv[2] : NULL, 0, &a);
		else
			r = mmtrust_outbound(m, argv[1], NULL, 0, &a);
	}
	if (r < 0)
		printf("error %s %s %s\n", strerror(-r), a.pai == MMTRUST_PAI_KEEP ? "keep" : "strip",
		       a.reason);
	else
		printf("%s %s %s\n", a.source, a.pai == MMTRUST_PAI_KEEP ? "keep" : "strip",
		       a.reason);
	mmtrust_close(m);
	return 0;
}

/* One handle kept open: a line "inbound SRC [DST]" or "outbound DOMAIN"
 * on stdin, one line "r source pai reason" on stdout, as a CSCF worker
 * that connected once asks for ever. */
static int repl(const char *sock)
{
	struct mmtrust *m;
	char line[512];
	int r;

	if ((r = mmtrust_connect(sock, 2000, &m)) < 0) {
		printf("error connect:%s\n", strerror(-r));
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char op[16] = "", a1[256] = "", a2[256] = "";
		struct mmtrust_answer a;

		memset(&a, 0, sizeof(a));
		if (sscanf(line, "%15s %255s %255s", op, a1, a2) < 2)
			continue;
		if (!strcmp(op, "inbound"))
			r = mmtrust_inbound(m, a1, a2[0] ? a2 : NULL, 0, &a);
		else
			r = mmtrust_outbound(m, a1, NULL, 0, &a);
		printf("%d %s %s %s\n", r, a.source[0] ? a.source : "-",
		       a.pai == MMTRUST_PAI_KEEP ? "keep" : "strip", a.reason[0] ? a.reason : "-");
	}
	mmtrust_close(m);
	return 0;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Ask src->dst in-process in a loop on one handle while another waits for
 * domain's sa-down; at the event, the very next answer must not keep. */
static int watch(const char *sock, const char *src, const char *dst, const char *domain)
{
	struct mmtrust *m, *ev;
	struct mmtrust_answer a;
	struct mmtrust_event e;
	long long last_keep = 0, asked = 0, in_process = 0;
	int r;

	if ((r = mmtrust_connect(sock, 2000, &m)) < 0 || (r = mmtrust_connect(sock, 2000, &ev)) < 0 ||
	    (r = mmtrust_subscribe(ev)) < 0) {
		fprintf(stderr, "watch: %s\n", strerror(-r));
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		r = mmtrust_inbound(m, src, dst, 0, &a);
		asked++;
		in_process += r == 0 && !strcmp(a.source, "snapshot");
		if (r == 0 && a.pai == MMTRUST_PAI_KEEP)
			last_keep = now_us();
		r = mmtrust_next_event(ev, 0, &e);
		if (r == 0 && !strcmp(e.event, "sa-down") && !strcmp(e.partner, domain))
			break;
		if (r < 0 && r != -ETIMEDOUT) {
			fprintf(stderr, "watch: events: %s\n", strerror(-r));
			return 2;
		}
	}
	{
		long long at = now_us();

		r = mmtrust_inbound(m, src, dst, 0, &a);
		printf("after sa-down: r=%d source=%s pai=%s reason=%s; asked %lld (%lld in-process), "
		       "last keep %lld us before the event was read\n", r, a.source,
		       a.pai == MMTRUST_PAI_KEEP ? "keep" : "strip", a.reason, asked, in_process,
		       last_keep ? at - last_keep : -1);
	}
	mmtrust_close(m);
	mmtrust_close(ev);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 6 && !strcmp(argv[1], "compare"))
		return compare(argv[2], strtoull(argv[3], NULL, 0), atol(argv[4]), argv + 5,
			       argc - 5);
	if (argc >= 5 && !strcmp(argv[1], "ask"))
		return ask_one(argv[2], argc - 3, argv + 3);
	if (argc == 3 && !strcmp(argv[1], "repl"))
		return repl(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "watch"))
		return watch(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr, "usage: snapclient compare SOCK SEED N DOMAIN... | ask SOCK inbound SRC "
		"[DST] | ask SOCK outbound DOMAIN | watch SOCK SRC DST DOMAIN\n");
	return 2;
}
