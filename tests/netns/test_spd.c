/* netns tests of the SPD reconciler against the real kernel.
 *
 * Every test runs in a network namespace of its own: the checked fixture
 * unshares CLONE_NEWNET first thing (in libcheck's forked child), so the
 * host's XFRM state is never read or written, and run.sh adds a namespace
 * around the whole driver as well.
 *
 * What the kernel holds is checked through iproute2 ("ip -s xfrm policy"
 * parsed as text), never through our own decoder, so an encoder bug that
 * the decoder mirrors cannot pass unnoticed. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/spd.h"
#include "netlink/xfrm_state.h"
#include "tests/unit/mkpartner.h"
#include "tests/unit/spdconfig.h"

#define TAG MM_SPD_TAG_DEFAULT
#define BASE MM_SPD_PRIO_BASE_DEFAULT
#define RQ(n) (MM_SPD_REQID_MIN_DEFAULT + (n))

/* ---- fixture ---- */

static struct mm_nl *nl;
static struct mm_xfrm_monitor *mon;
static struct mm_spd *spd;
static struct mm_spd_local locals[2];
static struct mm_spd_config cfg;

#define MAX_NOTES 256
static struct { enum mm_spd_note_kind kind; char domain[64]; char text[320]; } notes[MAX_NOTES];
static int n_notes;

static void on_note(const struct mm_spd_note *n, void *ud)
{
	(void)ud;
	if (n_notes == MAX_NOTES)
		return;
	notes[n_notes].kind = n->kind;
	snprintf(notes[n_notes].domain, sizeof(notes[0].domain), "%s", n->domain ? n->domain : "");
	snprintf(notes[n_notes].text, sizeof(notes[0].text), "%s | %s", n->policy ? n->policy : "",
		 n->message);
	n_notes++;
}

static int count_notes(enum mm_spd_note_kind kind, const char *domain)
{
	int c = 0;

	for (int i = 0; i < n_notes; i++)
		if (notes[i].kind == kind && (!domain || strcmp(notes[i].domain, domain) == 0))
			c++;
	return c;
}

static void config_default(void)
{
	mm_test_spd_config(&cfg, locals);
}

/* The daemon core's part: read the monitor for the engine. */
static int drain(void *ud)
{
	(void)ud;
	return mon ? mm_spd_read_monitor(spd, mon) : 0;
}

static void open_spd(void)
{
	ck_assert_int_eq(mm_nl_open(&nl), 0);
	ck_assert_int_eq(mm_xfrm_monitor_open(&mon), 0);
	mm_xfrm_monitor_ignore_portid(mon, mm_nl_portid(nl));
	ck_assert_int_eq(mm_spd_new(&cfg, nl, drain, NULL, on_note, NULL, &spd), 0);
}

/* One partner's change, as a change set of one. */
static int change1(const struct mm_partner *before, const struct mm_partner *after,
		   struct mm_spd_report *ret)
{
	struct mm_change c = { .op = !before ? MM_CHANGE_ADD : !after ? MM_CHANGE_DEL : MM_CHANGE_SET,
			       .before = (struct mm_partner *)before,
			       .after = (struct mm_partner *)after };

	return mm_spd_change(spd, &c, 1, ret);
}

static void close_spd(void)
{
	mm_spd_free(spd);
	mm_xfrm_monitor_free(mon);
	mm_nl_free(nl);
	spd = NULL;
	mon = NULL;
	nl = NULL;
}

static void setup(void)
{
	/* A namespace of our own before anything touches XFRM. */
	if (unshare(CLONE_NEWNET) < 0)
		ck_abort_msg("unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
	n_notes = 0;
	config_default();
	open_spd();
}

static void teardown(void)
{
	close_spd();
}

/* ---- partners, built by hand ---- */

/* Three partners: IPv4 with two ranges; mixed ranges with an IPv6 gateway
 * listed first; IPv4 ranges reached through an IPv6-only gateway.  Plus a
 * disabled one and one on the SEG path, which must get nothing. */
static struct mm_partner *three[5];

static void make_three(void)
{
	mm_test_three(MM_SPD_REQID_MIN_DEFAULT, three);
}

static void free_three(void)
{
	mm_test_partners_free(three, 5);
}

#define TABLE(a) ((const struct mm_partner *const *)(a))

/* ---- the kernel, as iproute2 shows it ---- */

struct ipp {
	char dir[8], src[64], dst[64], add[32], tsrc[64], tdst[64], proto[16], mode[16], level[16];
	unsigned long uid, reqid;
	unsigned index, priority;
};

static int ip_policies(struct ipp **ret)
{
	FILE *f = popen("ip -s xfrm policy", "r");
	struct ipp *v = NULL, *cur = NULL;
	int n = 0, cap = 0;
	char line[512];

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		char a[16], b[16];

		if (strncmp(line, "src ", 4) == 0) {
			if (n == cap) {
				struct ipp *nv;

				cap = cap ? cap * 2 : 64;
				nv = realloc(v, cap * sizeof(*v));
				ck_assert_ptr_nonnull(nv);
				v = nv;
			}
			cur = &v[n++];
			memset(cur, 0, sizeof(*cur));
			ck_assert_int_ge(sscanf(line, "src %63s dst %63s uid %lu", cur->src, cur->dst,
						&cur->uid), 2);
		} else if (!cur) {
			continue;
		} else if (sscanf(line, " dir %7s action %*s index %u priority %u", cur->dir,
				  &cur->index, &cur->priority) == 3) {
			continue;
		} else if (sscanf(line, " add %15s %15s", a, b) == 2) {
			snprintf(cur->add, sizeof(cur->add), "%s %s", a, b);
		} else if (sscanf(line, " tmpl src %63s dst %63s", cur->tsrc, cur->tdst) == 2) {
			continue;
		} else if (sscanf(line, " proto %15s spi %*s reqid %lu(%*[^)]) mode %15s", cur->proto,
				  &cur->reqid, cur->mode) == 3) {
			continue;
		} else {
			sscanf(line, " level %15s", cur->level);
		}
	}
	ck_assert_int_eq(pclose(f), 0);
	*ret = v;
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *ipp_line(const struct ipp *p)
{
	char *s;

	ck_assert_int_gt(asprintf(&s, "%s %s -> %s uid %lu prio %u tmpl %s -> %s %s %s reqid %lu %s",
				  p->dir, p->src, p->dst, p->uid, p->priority, p->tsrc, p->tdst,
				  p->proto, p->mode, p->reqid, p->level), 0);
	return s;
}

/* The expected policy, written out the way ip prints it. */
static char *want_line(const char *dir, const char *src, int slen, const char *dst, int dlen,
		       const char *tsrc, const char *tdst, unsigned long reqid)
{
	char *s;

	ck_assert_int_gt(asprintf(&s, "%s %s/%d -> %s/%d uid %lu prio %u tmpl %s -> %s esp tunnel "
				      "reqid %lu required", dir, src, slen, dst, dlen,
				  (unsigned long)TAG, BASE + 256 - slen - dlen, tsrc, tdst, reqid), 0);
	return s;
}

static void expect_pair(char **w, int *n, const char *loc, int llen, const char *rng, int rlen,
			const char *tun, const char *gw, unsigned long reqid, bool fwd)
{
	w[(*n)++] = want_line("out", loc, llen, rng, rlen, tun, gw, reqid);
	w[(*n)++] = want_line("in", rng, rlen, loc, llen, gw, tun, reqid);
	if (fwd)
		w[(*n)++] = want_line("fwd", rng, rlen, loc, llen, gw, tun, reqid);
}

/* Our policies in the kernel (uid == TAG) must be exactly want[0..n). */
static void check_kernel_has(char **want, int n)
{
	struct ipp *v;
	int m = ip_policies(&v), k = 0;
	char **got = calloc(m + 1, sizeof(char *));

	for (int i = 0; i < m; i++)
		if (v[i].uid == TAG)
			got[k++] = ipp_line(&v[i]);
	qsort(got, k, sizeof(char *), cmp_str);
	qsort(want, n, sizeof(char *), cmp_str);
	for (int i = 0; i < n && i < k; i++)
		ck_assert_msg(strcmp(got[i], want[i]) == 0, "kernel: %s\nwanted: %s", got[i], want[i]);
	ck_assert_msg(k == n, "kernel holds %d of our policies, wanted %d", k, n);
	for (int i = 0; i < k; i++)
		free(got[i]);
	free(got);
	free(v);
}

static void expect_three(char **w, int *n)
{
	/* alpha: IPv4 gateway, IPv4 ranges x IPv4 local (forwarded). */
	expect_pair(w, n, "198.51.100.0", 24, "10.1.0.0", 24, "192.0.2.1", "100.64.0.1", RQ(1), true);
	expect_pair(w, n, "198.51.100.0", 24, "10.1.1.0", 25, "192.0.2.1", "100.64.0.1", RQ(1), true);
	/* beta: its first gateway is IPv6 and we have an IPv6 tunnel
	 * address, so both inner families ride IPv6. */
	expect_pair(w, n, "198.51.100.0", 24, "10.2.0.0", 16, "2001:db8:ffff::1", "2001:db8:ff02::2",
		    RQ(2), true);
	expect_pair(w, n, "2001:db8:1::", 64, "2001:db8:20::", 48, "2001:db8:ffff::1",
		    "2001:db8:ff02::2", RQ(2), false);
	/* gamma: IPv4 inside IPv6. */
	expect_pair(w, n, "198.51.100.0", 24, "10.3.3.0", 24, "2001:db8:ffff::1", "2001:db8:ff03::3",
		    RQ(3), true);
}

static void free_lines(char **w, int n)
{
	for (int i = 0; i < n; i++)
		free(w[i]);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

/* Index of the policy ip shows for dir/src/dst with our tag, or 0. */
static unsigned ip_index_of(const char *dir, const char *src, const char *dst, unsigned long uid)
{
	struct ipp *v;
	int n = ip_policies(&v);
	unsigned idx = 0;

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].dir, dir) && !strcmp(v[i].src, src) && !strcmp(v[i].dst, dst) &&
		    v[i].uid == uid)
			idx = v[i].index;
	free(v);
	return idx;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The daemon's loop in miniature: wait for events, handle them, repair
 * when asked, until cond() holds or the time is up.  Returns the seconds
 * it took, or -1; collects the drifted domains. */
static double pump(bool (*cond)(void *), void *arg, double limit, char *drifted, size_t len)
{
	double t0 = now();

	while (now() - t0 < limit) {
		struct pollfd pfd = { .fd = mm_xfrm_monitor_fd(mon), .events = POLLIN };

		(void)poll(&pfd, 1, 20);
		ck_assert_int_ge(drain(NULL), 0);
		if (mm_spd_repair_pending(spd)) {
			struct mm_spd_report rep;

			ck_assert_int_eq(mm_spd_repair(spd, &rep), 0);
			for (size_t i = 0; i < rep.n_drifted; i++) {
				strncat(drifted, rep.drifted[i], len - strlen(drifted) - 1);
				strncat(drifted, " ", len - strlen(drifted) - 1);
			}
			mm_spd_report_done(&rep);
		}
		if (cond(arg))
			return now() - t0;
	}
	return -1;
}

struct look {
	const char *dir, *src, *dst;
	unsigned long reqid;
};

static bool policy_back(void *data)
{
	const struct look *l = data;
	struct ipp *v;
	int n = ip_policies(&v);
	bool ok = false;

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].dir, l->dir) && !strcmp(v[i].src, l->src) &&
		    !strcmp(v[i].dst, l->dst) && v[i].uid == TAG && v[i].reqid == l->reqid)
			ok = true;
	free(v);
	return ok;
}

/* ---- tests ---- */

START_TEST(test_program_three)
{
	struct mm_spd_report rep;
	struct mm_spd_status st;
	char *w[64];
	int n = 0;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	expect_three(w, &n);
	ck_assert_uint_eq(rep.added, (size_t)n);
	ck_assert_uint_eq(rep.failed, 0);
	check_kernel_has(w, n);
	free_lines(w, n);
	mm_spd_report_done(&rep);

	ck_assert_int_eq(mm_spd_status(spd, "alpha.example.net", &st), 0);
	ck_assert_uint_eq(st.expected, 6);
	ck_assert_uint_eq(st.present, 6);
	ck_assert_uint_eq(st.in_sync, 6);
	ck_assert_uint_eq(st.missing, 0);
	ck_assert(st.active);
	ck_assert_int_eq(mm_spd_status(spd, "off.example.net", &st), 0);
	ck_assert(!st.active);
	ck_assert_uint_eq(st.expected, 0);
	ck_assert_int_eq(mm_spd_status(spd, "nobody.example.net", &st), -ENOENT);
	free_three();
}
END_TEST

START_TEST(test_restart_unchanged)
{
	struct mm_spd_report rep;
	struct ipp *before, *after;
	int nb, na;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	nb = ip_policies(&before);
	/* ip shows add times in seconds: wait so any re-add would show. */
	usleep(1200 * 1000);
	/* A restart: new sockets, new reconciler, same table. */
	close_spd();
	open_spd();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	ck_assert_uint_eq(rep.added, 0);
	ck_assert_uint_eq(rep.updated, 0);
	ck_assert_uint_eq(rep.deleted, 0);
	ck_assert_uint_eq(rep.unchanged, (size_t)nb);
	mm_spd_report_done(&rep);
	/* And a periodic verify changes nothing either. */
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);
	ck_assert_uint_eq(rep.added + rep.updated + rep.deleted, 0);
	mm_spd_report_done(&rep);
	na = ip_policies(&after);
	ck_assert_int_eq(na, nb);
	for (int i = 0; i < nb; i++) {
		ck_assert_uint_eq(after[i].index, before[i].index);
		ck_assert_str_eq(after[i].add, before[i].add);
		ck_assert_str_eq(after[i].src, before[i].src);
	}
	free(before);
	free(after);
	free_three();
}
END_TEST

START_TEST(test_drift_deleted_by_index)
{
	struct look l = { "out", "198.51.100.0/24", "10.1.0.0/24", RQ(1) };
	char drifted[512] = "";
	struct mm_spd_report rep;
	unsigned idx;
	double t;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	idx = ip_index_of("out", l.src, l.dst, TAG);
	ck_assert_uint_ne(idx, 0);
	/* The way an operator deletes one of ours (see spd.h). */
	ck_assert_int_eq(sh("ip xfrm policy del index %u dir out", idx), 0);
	ck_assert(!policy_back(&l));
	t = pump(policy_back, &l, 1.0, drifted, sizeof(drifted));
	ck_assert_msg(t >= 0 && t < 1.0, "not restored within a second (%.3f)", t);
	ck_assert_msg(strstr(drifted, "alpha.example.net"), "drifted: '%s'", drifted);
	ck_assert_int_ge(count_notes(MM_SPD_NOTE_DRIFT, "alpha.example.net"), 1);
	/* Restored as a new policy, with everything else untouched. */
	ck_assert_uint_ne(ip_index_of("out", l.src, l.dst, TAG), idx);
	{
		char *w[64];
		int n = 0;

		expect_three(w, &n);
		check_kernel_has(w, n);
		free_lines(w, n);
	}
	free_three();
}
END_TEST

START_TEST(test_drift_deleteall_and_changed)
{
	struct look l = { "in", "10.3.3.0/24", "198.51.100.0/24", RQ(3) };
	struct mm_xfrm_policy p, got;
	struct mm_nl *other;
	char drifted[512] = "";
	struct mm_spd_report rep;
	struct mm_nl_result res;
	double t;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	/* deleteall by selector: ip names each match by its full selector. */
	ck_assert_int_eq(sh("ip xfrm policy deleteall src 10.3.3.0/24 dst 198.51.100.0/24"), 0);
	ck_assert(!policy_back(&l));
	t = pump(policy_back, &l, 1.0, drifted, sizeof(drifted));
	ck_assert_msg(t >= 0 && t < 1.0, "not restored within a second (%.3f)", t);
	ck_assert_msg(strstr(drifted, "gamma.example.com"), "drifted: '%s'", drifted);

	/* Changed by someone else: same identity, other reqid (still in our
	 * range, so still ours by its marks) -> restored. */
	ck_assert_int_eq(mm_nl_open(&other), 0);
	memset(&p, 0, sizeof(p));
	p.sel.family = AF_INET;
	ck_assert_int_eq(mm_prefix_parse("10.1.0.0/24", &p.sel.src, "", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("198.51.100.0/24", &p.sel.dst, "", NULL), 0);
	p.sel.user = TAG;
	p.dir = XFRM_POLICY_IN;
	ck_assert_int_eq(mm_xfrm_policy_get(other, &p, &got, &res), 0);
	got.tmpl[0].reqid = RQ(99);
	ck_assert_int_eq(mm_xfrm_policy_add(other, &got, true, &res), 0);
	drifted[0] = '\0';
	l = (struct look){ "in", "10.1.0.0/24", "198.51.100.0/24", RQ(1) };
	ck_assert(!policy_back(&l));
	t = pump(policy_back, &l, 1.0, drifted, sizeof(drifted));
	ck_assert_msg(t >= 0 && t < 1.0, "not restored within a second (%.3f)", t);
	ck_assert_msg(strstr(drifted, "alpha.example.net"), "drifted: '%s'", drifted);
	mm_nl_free(other);
	free_three();
}
END_TEST

START_TEST(test_foreign_untouched_and_conflict)
{
	struct mm_spd_report rep;
	struct mm_spd_status st;
	struct ipp *v;
	unsigned fidx, cidx;
	int n;

	/* Someone else's policy on an unrelated selector, and one on the
	 * selector of alpha's first out policy. */
	ck_assert_int_eq(sh("ip xfrm policy add src 172.16.0.0/16 dst 172.17.0.0/16 dir out "
			    "priority 500 tmpl src 192.0.2.9 dst 192.0.2.10 proto esp reqid 7 "
			    "mode tunnel"), 0);
	ck_assert_int_eq(sh("ip xfrm policy add src 198.51.100.0/24 dst 10.1.0.0/24 dir out "
			    "priority 10 tmpl src 192.0.2.9 dst 192.0.2.11 proto esp reqid 8 "
			    "mode tunnel"), 0);
	fidx = ip_index_of("out", "172.16.0.0/16", "172.17.0.0/16", 0);
	cidx = ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", 0);
	ck_assert_uint_ne(fidx, 0);
	ck_assert_uint_ne(cidx, 0);
	usleep(1100 * 1000);

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	ck_assert_uint_eq(rep.conflicts, 1);
	ck_assert_uint_eq(rep.deleted, 0);
	mm_spd_report_done(&rep);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_CONFLICT, "alpha.example.net"), 1);
	ck_assert_int_eq(mm_spd_status(spd, "alpha.example.net", &st), 0);
	ck_assert_uint_eq(st.conflicts, 1);
	ck_assert_uint_eq(st.present, st.expected);

	/* Both foreign policies as they were; ours installed beside. */
	n = ip_policies(&v);
	for (int i = 0; i < n; i++) {
		if (v[i].index == fidx) {
			ck_assert_uint_eq(v[i].priority, 500);
			ck_assert_uint_eq(v[i].reqid, 7);
		}
		if (v[i].index == cidx) {
			ck_assert_uint_eq(v[i].priority, 10);
			ck_assert_uint_eq(v[i].reqid, 8);
			ck_assert_uint_eq(v[i].uid, 0);
		}
	}
	free(v);
	ck_assert_uint_eq(ip_index_of("out", "172.16.0.0/16", "172.17.0.0/16", 0), fidx);
	ck_assert_uint_eq(ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", 0), cidx);
	ck_assert_uint_ne(ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", TAG), 0);

	/* A new conflicting policy while running: noted from the event. */
	ck_assert_int_eq(sh("ip xfrm policy add src 10.3.3.0/24 dst 198.51.100.0/24 dir in "
			    "priority 20 tmpl src 192.0.2.12 dst 192.0.2.1 proto esp reqid 9 "
			    "mode tunnel"), 0);
	usleep(50 * 1000);
	ck_assert_int_ge(drain(NULL), 1);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_CONFLICT, "gamma.example.com"), 1);
	ck_assert(!mm_spd_repair_pending(spd));
	/* A periodic verify neither repeats the notes nor touches them. */
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);
	ck_assert_uint_eq(rep.conflicts, 2);
	ck_assert_uint_eq(rep.added + rep.updated + rep.deleted, 0);
	mm_spd_report_done(&rep);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_CONFLICT, NULL), 2);
	/* alpha goes: its conflict goes with it, the foreign policy stays. */
	ck_assert_int_eq(change1(three[0], NULL, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 6);
	ck_assert_uint_eq(rep.conflicts, 1);
	mm_spd_report_done(&rep);
	ck_assert_uint_eq(ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", 0), cidx);
	ck_assert_uint_eq(ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", TAG), 0);
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);
	ck_assert_uint_eq(rep.conflicts, 1);
	ck_assert_uint_eq(rep.added + rep.updated + rep.deleted, 0);
	mm_spd_report_done(&rep);
	free_three();
}
END_TEST

START_TEST(test_tag_squatter_and_stale)
{
	struct mm_xfrm_policy p;
	struct mm_spd_report rep;
	struct mm_nl_result res;
	struct mm_spd_status st;
	struct ipp *v;
	int n;
	bool squatter = false, stale = false;

	/* Our tag but a priority outside the band, on alpha's first in
	 * selector: holds our identity, must not be overwritten. */
	memset(&p, 0, sizeof(p));
	p.sel.family = AF_INET;
	ck_assert_int_eq(mm_prefix_parse("10.1.0.0/24", &p.sel.src, "", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("198.51.100.0/24", &p.sel.dst, "", NULL), 0);
	p.sel.user = TAG;
	p.dir = XFRM_POLICY_IN;
	p.priority = 5;
	ck_assert_int_eq(mm_xfrm_policy_add(nl, &p, false, &res), 0);
	/* Fully ours by its marks, but for no partner: stale, deleted. */
	ck_assert_int_eq(mm_prefix_parse("10.99.0.0/24", &p.sel.src, "", NULL), 0);
	p.priority = BASE + 200;
	p.n_tmpl = 1;
	p.tmpl[0].family = AF_INET;
	ck_assert_int_eq(mm_addr_parse("100.64.9.9", &p.tmpl[0].src, "", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("192.0.2.1", &p.tmpl[0].dst, "", NULL), 0);
	p.tmpl[0].proto = IPPROTO_ESP;
	p.tmpl[0].mode = XFRM_MODE_TUNNEL;
	p.tmpl[0].reqid = RQ(77);
	ck_assert_int_eq(mm_xfrm_policy_add(nl, &p, false, &res), 0);

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 1);
	ck_assert_uint_eq(rep.failed, 0);
	mm_spd_report_done(&rep);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_STALE, NULL), 1);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_CONFLICT, "alpha.example.net"), 1);
	ck_assert_int_eq(mm_spd_status(spd, "alpha.example.net", &st), 0);
	ck_assert_uint_eq(st.missing, 1);
	n = ip_policies(&v);
	for (int i = 0; i < n; i++) {
		if (!strcmp(v[i].src, "10.1.0.0/24") && !strcmp(v[i].dir, "in"))
			squatter |= v[i].priority == 5;
		stale |= !strcmp(v[i].src, "10.99.0.0/24");
	}
	free(v);
	ck_assert(squatter);
	ck_assert(!stale);
	free_three();
}
END_TEST

START_TEST(test_partner_changes)
{
	struct mm_spd_report rep;
	struct mm_partner *changed;
	struct ipp *before, *after;
	int nb, na;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	nb = ip_policies(&before);

	/* gamma gains a range: only its new policies are added. */
	changed = mm_test_partner("gamma.example.com", RQ(3), "10.3.3.0/24 10.3.4.0/24",
				  "2001:db8:ff03::3");
	ck_assert_int_eq(change1(three[2], changed, &rep), 0);
	ck_assert_uint_eq(rep.added, 3);
	ck_assert_uint_eq(rep.updated + rep.deleted, 0);
	ck_assert_uint_eq(rep.unchanged, 3);
	mm_spd_report_done(&rep);
	na = ip_policies(&after);
	ck_assert_int_eq(na, nb + 3);
	for (int i = 0; i < nb; i++) {
		bool same = false;

		for (int j = 0; j < na; j++)
			same |= after[j].index == before[i].index && !strcmp(after[j].add, before[i].add);
		ck_assert_msg(same, "policy index %u was touched", before[i].index);
	}
	free(after);
	mm_partner_unref(three[2]);
	three[2] = changed;

	/* alpha removed: its six policies go, nobody else's. */
	ck_assert_int_eq(change1(three[0], NULL, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 6);
	ck_assert_uint_eq(rep.added + rep.updated, 0);
	mm_spd_report_done(&rep);
	na = ip_policies(&after);
	ck_assert_int_eq(na, nb + 3 - 6);
	for (int j = 0; j < na; j++)
		ck_assert_uint_ne(after[j].reqid, RQ(1));
	free(after);
	{
		struct mm_spd_status st;

		ck_assert_int_eq(mm_spd_status(spd, "alpha.example.net", &st), -ENOENT);
	}

	/* beta disabled: its policies go too. */
	changed = mm_test_partner("beta.example.org", RQ(2), "10.2.0.0/16 2001:db8:20::/48",
				  "2001:db8:ff02::2 100.64.0.2");
	changed->enabled = false;
	ck_assert_int_eq(change1(three[1], changed, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 5);
	mm_spd_report_done(&rep);
	na = ip_policies(&after);
	for (int j = 0; j < na; j++)
		ck_assert_uint_eq(after[j].reqid, RQ(3));
	ck_assert_int_eq(na, 6);
	free(after);
	mm_partner_unref(changed);
	free(before);

	/* A full sync of the resulting table agrees: nothing to do. */
	{
		const struct mm_partner *t[1] = { three[2] };

		ck_assert_int_eq(mm_spd_sync(spd, t, 1, &rep), 0);
		ck_assert_uint_eq(rep.added + rep.updated + rep.deleted, 0);
		mm_spd_report_done(&rep);
	}
	free_three();
}
END_TEST

START_TEST(test_table_shrinks_on_sync)
{
	struct mm_spd_report rep;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	/* Restart with a table that lost beta and gamma: their policies are
	 * stale and go; alpha's stay as they are. */
	close_spd();
	open_spd();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 1, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 5 + 3);
	ck_assert_uint_eq(rep.added + rep.updated, 0);
	ck_assert_uint_eq(rep.unchanged, 6);
	mm_spd_report_done(&rep);
	free_three();
}
END_TEST

START_TEST(test_partner_problems)
{
	struct mm_partner *p[4];
	struct mm_spd_report rep;
	struct mm_spd_status st;

	/* Only an IPv4 tunnel address. */
	close_spd();
	memset(&cfg.tunnel6, 0, sizeof(cfg.tunnel6));
	open_spd();
	p[0] = mm_test_partner("v6gw.example.net", RQ(1), "10.8.0.0/24", "2001:db8:ff08::8");
	p[1] = mm_test_partner("badreqid.example.net", 42, "10.9.0.0/24", "100.64.0.9");
	p[2] = mm_test_partner("ok.example.net", RQ(3), "10.10.0.0/24", "2001:db8::a 100.64.0.10");
	/* IPv6 traffic inside an IPv4 tunnel. */
	p[3] = mm_test_partner("v6in4.example.net", RQ(4), "2001:db8:44::/48", "100.64.0.44");
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(p), 4, &rep), 0);
	ck_assert_uint_eq(rep.added, 5);
	ck_assert_uint_eq(rep.failed, 0);
	mm_spd_report_done(&rep);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_PARTNER_ERROR, "v6gw.example.net"), 1);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_PARTNER_ERROR, "badreqid.example.net"), 1);
	ck_assert_int_eq(mm_spd_status(spd, "v6gw.example.net", &st), 0);
	ck_assert_int_eq(st.error, -ENOENT);
	ck_assert(strstr(st.message, "gateway"));
	ck_assert_uint_eq(st.expected, 0);
	ck_assert_int_eq(mm_spd_status(spd, "badreqid.example.net", &st), 0);
	ck_assert_int_eq(st.error, -ERANGE);
	/* ok: skipped its IPv6 gateway for the IPv4 one. */
	{
		char *w[8];
		int n = 0;

		expect_pair(w, &n, "198.51.100.0", 24, "10.10.0.0", 24, "192.0.2.1", "100.64.0.10",
			    RQ(3), true);
		expect_pair(w, &n, "2001:db8:1::", 64, "2001:db8:44::", 48, "192.0.2.1",
			    "100.64.0.44", RQ(4), false);
		check_kernel_has(w, n);
		free_lines(w, n);
	}
	for (int i = 0; i < 4; i++)
		mm_partner_unref(p[i]);
}
END_TEST

START_TEST(test_flush_and_overflow_resync)
{
	struct mm_spd_report rep;
	int sz = 256;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	/* A flush by someone else: everything of ours back, named as drift. */
	ck_assert_int_eq(sh("ip xfrm policy flush"), 0);
	usleep(50 * 1000);
	(void)drain(NULL);
	ck_assert(mm_spd_repair_pending(spd));
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_RESYNC, NULL), 1);
	ck_assert_int_eq(mm_spd_repair(spd, &rep), 0);
	ck_assert_uint_eq(rep.added, 14);
	ck_assert_uint_eq(rep.n_drifted, 3);
	mm_spd_report_done(&rep);

	/* Lost events: a tiny receive buffer and a burst of foreign changes. */
	ck_assert_int_eq(setsockopt(mm_xfrm_monitor_fd(mon), SOL_SOCKET, SO_RCVBUFFORCE, &sz,
				    sizeof(sz)), 0);
	ck_assert_int_eq(sh("for i in $(seq 1 64); do echo xfrm policy add src 172.20.$i.0/24 "
			    "dst 172.21.0.0/16 dir out priority 900; done | ip -batch -"), 0);
	ck_assert_int_eq(sh("ip xfrm policy del index %u dir out",
			    ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", TAG)), 0);
	ck_assert_int_ge(drain(NULL), 0);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_RESYNC, NULL), 2);
	ck_assert(mm_spd_repair_pending(spd));
	ck_assert_int_eq(mm_spd_repair(spd, &rep), 0);
	ck_assert_uint_eq(rep.added, 1);
	ck_assert_uint_eq(rep.deleted, 0);  /* the 64 foreign ones stay */
	mm_spd_report_done(&rep);
	{
		char *w[64];
		int n = 0;

		expect_three(w, &n);
		check_kernel_has(w, n);
		free_lines(w, n);
	}
	free_three();
}
END_TEST

/* n partners p<i>.example.net with reqid RQ(1 + i), two IPv4 ranges each;
 * with the one IPv4 local prefix, not forwarded, that the caller
 * configures (see one_local()), four policies each. */
static struct mm_partner **many(size_t n)
{
	struct mm_partner **t = calloc(n, sizeof(*t));

	ck_assert_ptr_nonnull(t);
	ck_assert_uint_le(n, 150 * 256);
	for (size_t i = 0; i < n; i++) {
		char d[64], r[64], g[32];

		snprintf(d, sizeof(d), "p%zu.example.net", i);
		snprintf(r, sizeof(r), "10.%zu.%zu.0/25 10.%zu.%zu.128/25", 100 + i / 256, i % 256,
			 100 + i / 256, i % 256);
		snprintf(g, sizeof(g), "100.%zu.%zu.%zu", 64 + i / 65536, (i / 256) % 256, i % 256);
		t[i] = mm_test_partner(d, RQ(1 + i), r, g);
	}
	return t;
}

static void many_free(struct mm_partner **t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mm_partner_unref(t[i]);
	free(t);
}

static void one_local(void)
{
	close_spd();
	cfg.n_locals = 1;
	locals[0].forward = false;
	open_spd();
}

/* "ip xfrm policy count", first line. */
static void ip_count(char *line, size_t len)
{
	FILE *f = popen("ip xfrm policy count", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, (int)len, f));
	pclose(f);
}

START_TEST(test_ten_thousand)
{
	enum { N = 10000 };
	struct mm_partner **t;
	struct mm_spd_report rep;
	struct mm_spd_status st;
	size_t expected, present, in_sync;
	char line[256];
	double t0;

	one_local();
	t = many(N);
	t0 = now();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(t), N, &rep), 0);
	fprintf(stderr, "test_ten_thousand: %zu policies in %.3f s\n", rep.added, now() - t0);
	ck_assert_uint_eq(rep.added, 4 * N);
	ck_assert_uint_eq(rep.failed, 0);
	mm_spd_report_done(&rep);
	mm_spd_counts(spd, &expected, &present, &in_sync);
	ck_assert_uint_eq(expected, 4 * N);
	ck_assert_uint_eq(in_sync, 4 * N);
	/* The kernel's own count, through iproute2. */
	ip_count(line, sizeof(line));
	ck_assert_msg(strstr(line, "SPD IN  20000 OUT 20000 FWD 0"), "ip says: %s", line);
	ck_assert_int_eq(mm_spd_status(spd, "p4711.example.net", &st), 0);
	ck_assert_uint_eq(st.in_sync, 4);
	/* Converged: a second pass, the desired state computed afresh from
	 * the table, has nothing to do. */
	t0 = now();
	ck_assert_int_eq(mm_spd_verify(spd, TABLE(t), N, &rep), 0);
	fprintf(stderr, "test_ten_thousand: verify of %zu policies against the table in %.3f s\n",
		rep.unchanged, now() - t0);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_RESYNC, NULL), 0);
	ck_assert_uint_eq(rep.unchanged, 4 * N);
	ck_assert_uint_eq(rep.added + rep.updated + rep.deleted, 0);
	mm_spd_report_done(&rep);
	many_free(t, N);
}
END_TEST

/* Half the partners leave in one sync.  Their policies are deleted by the
 * indexes the sync's dump read: O(1) each in the kernel, where deletes by
 * selector walk the policy's inexact bin each time (halving 40k policies
 * that way took 8 s). */
START_TEST(test_bulk_removal_by_index)
{
	enum { N = 20000 };
	struct mm_partner **t;
	struct mm_spd_report rep;
	unsigned *per;
	struct ipp *v;
	char line[256];
	double t0, took;
	int n;

	one_local();
	t = many(N);
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(t), N, &rep), 0);
	ck_assert_uint_eq(rep.added, 4 * N);
	mm_spd_report_done(&rep);
	t0 = now();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(t), N / 2, &rep), 0);
	took = now() - t0;
	fprintf(stderr, "test_bulk_removal_by_index: %d partners x 2 ranges, %d policies; "
		"removing %d partners deleted %zu policies in %.3f s\n", N, 4 * N, N / 2,
		rep.deleted, took);
	ck_assert_uint_eq(rep.deleted, 2 * N);
	ck_assert_uint_eq(rep.unchanged, 2 * N);
	ck_assert_uint_eq(rep.added + rep.updated + rep.failed, 0);
	mm_spd_report_done(&rep);
	ck_assert_msg(took < 5.0, "removing half the table took %.3f s", took);
	ck_assert(!mm_spd_repair_pending(spd));

	/* The kernel holds exactly the remaining partners' policies. */
	ip_count(line, sizeof(line));
	ck_assert_msg(strstr(line, "SPD IN  20000 OUT 20000 FWD 0"), "ip says: %s", line);
	per = calloc(N, sizeof(*per));
	n = ip_policies(&v);
	ck_assert_int_eq(n, 2 * N);
	for (int i = 0; i < n; i++) {
		ck_assert_uint_eq(v[i].uid, TAG);
		ck_assert_uint_ge(v[i].reqid, RQ(1));
		ck_assert_uint_lt(v[i].reqid, RQ(1 + N / 2));
		per[v[i].reqid - RQ(1)]++;
	}
	for (int i = 0; i < N / 2; i++)
		ck_assert_msg(per[i] == 4, "partner %d has %u policies", i, per[i]);
	free(per);
	free(v);
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);
	ck_assert_uint_eq(rep.added + rep.updated + rep.deleted, 0);
	mm_spd_report_done(&rep);
	many_free(t, N);
}
END_TEST

/* The identity of alpha's first in policy, as the kernel names it. */
static void alpha_in_identity(struct mm_xfrm_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->sel.family = AF_INET;
	ck_assert_int_eq(mm_prefix_parse("10.1.0.0/24", &p->sel.src, "", NULL), 0);
	ck_assert_int_eq(mm_prefix_parse("198.51.100.0/24", &p->sel.dst, "", NULL), 0);
	p->sel.user = TAG;
	p->dir = XFRM_POLICY_IN;
}

/* Between our dump and alpha's removal, someone else (another socket,
 * whose events we do see) replaces alpha's first in policy with one of
 * theirs on the same identity (our tag, but a priority outside our band:
 * not ours) under a new index, and adds a uid-0 policy on alpha's first
 * out selector.  Alpha's deletes name the indexes of the dump, so both
 * foreign policies survive (a delete by selector would have taken the
 * first).  With a monitor, the events cancel the stale delete before it is
 * sent; without one, the kernel answers ENOENT and a full comparison is
 * scheduled, which leaves them alone too. */
static void foreign_between_dump_and_delete(bool with_monitor)
{
	struct mm_xfrm_policy p, got;
	struct mm_spd_report rep;
	struct mm_nl_result res;
	struct mm_nl *other;
	unsigned old_idx, new_idx, fidx;
	struct ipp *v;
	int n, alpha = 0;

	if (!with_monitor) {
		close_spd();
		ck_assert_int_eq(mm_nl_open(&nl), 0);
		ck_assert_int_eq(mm_spd_new(&cfg, nl, NULL, NULL, on_note, NULL, &spd), 0);
	}
	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	/* The dump that learns the indexes of what the sync added. */
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);
	ck_assert_uint_eq(rep.unchanged, 14);
	mm_spd_report_done(&rep);
	old_idx = ip_index_of("in", "10.1.0.0/24", "198.51.100.0/24", TAG);
	ck_assert_uint_ne(old_idx, 0);

	ck_assert_int_eq(mm_nl_open(&other), 0);
	alpha_in_identity(&p);
	ck_assert_int_eq(mm_xfrm_policy_get(other, &p, &got, &res), 0);
	ck_assert_int_eq(mm_xfrm_policy_del(other, &got, &res), 0);
	got.priority = 5;
	got.index = 0;
	ck_assert_int_eq(mm_xfrm_policy_add(other, &got, false, &res), 0);
	mm_nl_free(other);
	new_idx = ip_index_of("in", "10.1.0.0/24", "198.51.100.0/24", TAG);
	ck_assert_uint_ne(new_idx, 0);
	ck_assert_uint_ne(new_idx, old_idx);
	ck_assert_int_eq(sh("ip xfrm policy add src 198.51.100.0/24 dst 10.1.0.0/24 dir out "
			    "priority 10 tmpl src 192.0.2.9 dst 192.0.2.11 proto esp reqid 8 "
			    "mode tunnel"), 0);
	fidx = ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", 0);
	ck_assert_uint_ne(fidx, 0);

	/* No event handled since the dump: alpha leaves. */
	ck_assert_int_eq(change1(three[0], NULL, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 6);  /* the one already gone counts as deleted */
	ck_assert_uint_eq(rep.failed, 0);
	mm_spd_report_done(&rep);
	ck_assert_uint_eq(ip_index_of("in", "10.1.0.0/24", "198.51.100.0/24", TAG), new_idx);
	ck_assert_uint_eq(ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", 0), fidx);
	n = ip_policies(&v);
	for (int i = 0; i < n; i++)
		alpha += v[i].reqid == RQ(1);
	free(v);
	ck_assert_int_eq(alpha, 1);  /* of alpha's reqid, only the foreign copy is left */
	ck_assert_int_eq(n, 14 - 6 + 2);

	/* By index, ENOENT may mean "re-created under another index": only
	 * a dump can tell, so one is scheduled (without events to say so). */
	ck_assert(mm_spd_repair_pending(spd) == !with_monitor);
	if (!with_monitor) {
		ck_assert_int_eq(mm_spd_repair(spd, &rep), 0);
		ck_assert_uint_eq(rep.added + rep.updated + rep.deleted + rep.failed, 0);
		mm_spd_report_done(&rep);
	}
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);
	ck_assert_uint_eq(rep.added + rep.updated + rep.deleted + rep.failed, 0);
	mm_spd_report_done(&rep);
	ck_assert_uint_eq(ip_index_of("in", "10.1.0.0/24", "198.51.100.0/24", TAG), new_idx);
	ck_assert_uint_eq(ip_index_of("out", "198.51.100.0/24", "10.1.0.0/24", 0), fidx);
	free_three();
}

START_TEST(test_foreign_survives_removal)
{
	foreign_between_dump_and_delete(true);
}
END_TEST

START_TEST(test_foreign_survives_removal_no_monitor)
{
	foreign_between_dump_and_delete(false);
}
END_TEST

/* Stale policies learnt from events wait for mm_spd_repair(), which
 * deletes them by the index the event carried.  Meanwhile one is updated
 * in place by someone else into a policy that is not ours (same index),
 * and another is deleted and its index given to a foreign policy (a
 * creator may ask for a free index): neither foreign policy is deleted. */
START_TEST(test_stale_index_changes_hands)
{
	struct mm_xfrm_policy p;
	struct mm_spd_report rep;
	struct mm_nl_result res;
	struct mm_nl *other;
	unsigned i1, i2, i3;
	const char *src[3] = { "10.99.1.0/24", "10.99.2.0/24", "10.99.3.0/24" };

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	/* Three policies that are ours by their marks, for no partner. */
	ck_assert_int_eq(mm_nl_open(&other), 0);
	memset(&p, 0, sizeof(p));
	p.sel.family = AF_INET;
	ck_assert_int_eq(mm_prefix_parse("198.51.100.0/24", &p.sel.dst, "", NULL), 0);
	p.sel.user = TAG;
	p.dir = XFRM_POLICY_IN;
	p.priority = BASE + 200;
	p.n_tmpl = 1;
	p.tmpl[0].family = AF_INET;
	ck_assert_int_eq(mm_addr_parse("100.64.9.9", &p.tmpl[0].src, "", NULL), 0);
	ck_assert_int_eq(mm_addr_parse("192.0.2.1", &p.tmpl[0].dst, "", NULL), 0);
	p.tmpl[0].proto = IPPROTO_ESP;
	p.tmpl[0].mode = XFRM_MODE_TUNNEL;
	p.tmpl[0].reqid = RQ(77);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(mm_prefix_parse(src[i], &p.sel.src, "", NULL), 0);
		ck_assert_int_eq(mm_xfrm_policy_add(other, &p, false, &res), 0);
	}
	i1 = ip_index_of("in", src[0], "198.51.100.0/24", TAG);
	i2 = ip_index_of("in", src[1], "198.51.100.0/24", TAG);
	i3 = ip_index_of("in", src[2], "198.51.100.0/24", TAG);
	ck_assert(i1 && i2 && i3);
	usleep(50 * 1000);
	ck_assert_int_eq(drain(NULL), 3);
	ck_assert(mm_spd_repair_pending(spd));

	/* 1: updated in place, priority out of our band: not ours now. */
	ck_assert_int_eq(mm_prefix_parse(src[0], &p.sel.src, "", NULL), 0);
	p.priority = 5;
	ck_assert_int_eq(mm_xfrm_policy_add(other, &p, true, &res), 0);
	ck_assert_uint_eq(ip_index_of("in", src[0], "198.51.100.0/24", TAG), i1);
	/* 2: deleted, and its index taken by a foreign policy. */
	ck_assert_int_eq(sh("ip xfrm policy del index %u dir in", i2), 0);
	ck_assert_int_eq(sh("ip xfrm policy add src 172.16.0.0/16 dst 172.17.0.0/16 dir in index %u "
			    "priority 500 tmpl src 192.0.2.9 dst 192.0.2.1 proto esp reqid 7 "
			    "mode tunnel", i2), 0);
	ck_assert_uint_eq(ip_index_of("in", "172.16.0.0/16", "172.17.0.0/16", 0), i2);
	mm_nl_free(other);
	usleep(50 * 1000);
	ck_assert_int_ge(drain(NULL), 3);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_CONFLICT, NULL), 1);  /* the first */

	/* 3, untouched, goes; the other two stay. */
	ck_assert(mm_spd_repair_pending(spd));
	ck_assert_int_eq(mm_spd_repair(spd, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 1);
	ck_assert_uint_eq(rep.failed, 0);
	mm_spd_report_done(&rep);
	ck_assert_uint_eq(ip_index_of("in", src[2], "198.51.100.0/24", TAG), 0);
	ck_assert_uint_eq(ip_index_of("in", src[0], "198.51.100.0/24", TAG), i1);
	ck_assert_uint_eq(ip_index_of("in", "172.16.0.0/16", "172.17.0.0/16", 0), i2);
	ck_assert(!mm_spd_repair_pending(spd));
	free_three();
}
END_TEST

/* The pure part: no kernel involved. */
/* Events were lost: an index read before may have changed hands unseen,
 * so deletes by index wait for the full comparison the loss scheduled,
 * which reads the indexes again and deletes then. */
START_TEST(test_lost_events_hold_index_deletes)
{
	struct mm_spd_report rep;
	struct ipp *v;
	int sz = 256, n, alpha = 0;

	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);  /* indexes known */
	mm_spd_report_done(&rep);
	ck_assert_int_eq(setsockopt(mm_xfrm_monitor_fd(mon), SOL_SOCKET, SO_RCVBUFFORCE, &sz,
				    sizeof(sz)), 0);
	ck_assert_int_eq(sh("for i in $(seq 1 64); do echo xfrm policy add src 172.20.$i.0/24 "
			    "dst 172.21.0.0/16 dir out priority 900; done | ip -batch -"), 0);
	ck_assert_int_ge(drain(NULL), 0);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_RESYNC, NULL), 1);

	ck_assert_int_eq(change1(three[0], NULL, &rep), 0);
	ck_assert_uint_eq(rep.deleted + rep.failed, 0);
	mm_spd_report_done(&rep);
	n = ip_policies(&v);
	for (int i = 0; i < n; i++)
		alpha += v[i].reqid == RQ(1);
	free(v);
	ck_assert_int_eq(alpha, 6);

	ck_assert(mm_spd_repair_pending(spd));
	ck_assert_int_eq(mm_spd_repair(spd, &rep), 0);
	ck_assert_uint_eq(rep.deleted, 6);  /* now stale, by the new dump's indexes */
	ck_assert_uint_eq(rep.added + rep.updated + rep.failed, 0);
	mm_spd_report_done(&rep);
	n = ip_policies(&v);
	alpha = 0;
	for (int i = 0; i < n; i++)
		alpha += v[i].reqid == RQ(1);
	free(v);
	ck_assert_int_eq(alpha, 0);
	ck_assert_int_eq(n, 14 - 6 + 64);
	free_three();
}
END_TEST

/* ---- defect 2: ranges that change owner inside one change set ---- */

/* One change set, in the order mm_table_diff() gives it (by domain), as
 * the daemon applies it. */
static void apply_set(struct mm_partner **before, struct mm_partner **after, size_t n,
		      struct mm_spd_report *ret)
{
	struct mm_change c[8];

	ck_assert_uint_le(n, 8);
	for (size_t i = 0; i < n; i++)
		c[i] = (struct mm_change){ .op = MM_CHANGE_SET, .before = before[i],
					   .after = after[i] };
	ck_assert_int_eq(mm_spd_change(spd, c, n, ret), 0);
}

/* What partners[0..n) need, written out as ip prints it (IPv4 ranges, the
 * first local only, which is forwarded). */
static int expect_partners(struct mm_partner **p, size_t n, char **w)
{
	int k = 0;

	for (size_t i = 0; i < n; i++) {
		char gw[MM_ADDR_STRLEN], rng[MM_ADDR_STRLEN];
		const char *tun;

		if (!p[i]->enabled)
			continue;
		mm_addr_str(&p[i]->gateways[0], gw);
		tun = p[i]->gateways[0].family == AF_INET ? "192.0.2.1" : "2001:db8:ffff::1";
		for (size_t r = 0; r < p[i]->n_ranges; r++)
			expect_pair(w, &k, "198.51.100.0", 24, mm_addr_str(&p[i]->ranges[r].addr, rng),
				    p[i]->ranges[r].len, tun, gw, p[i]->reqid, true);
	}
	return k;
}

/* After a change set: the kernel holds exactly what the new table needs,
 * every partner's status agrees, and a full verify finds nothing to do. */
static void check_owners(struct mm_partner **p, size_t n)
{
	struct mm_spd_report rep;
	char *w[128];
	int k = expect_partners(p, n, w);

	check_kernel_has(w, k);
	free_lines(w, k);
	for (size_t i = 0; i < n; i++) {
		struct mm_spd_status st;

		ck_assert_int_eq(mm_spd_status(spd, p[i]->domain, &st), 0);
		ck_assert_uint_eq(st.expected, p[i]->enabled ? 3 * p[i]->n_ranges : 0);
		ck_assert_msg(st.in_sync == st.expected, "%s: in sync %zu of %zu", p[i]->domain,
			      st.in_sync, st.expected);
	}
	/* With the table: the desired state computed afresh agrees with
	 * the engine's view (no rebuild noted). */
	ck_assert_int_eq(mm_spd_verify(spd, TABLE(p), n, &rep), 0);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_RESYNC, NULL), 0);
	ck_assert_msg(rep.added + rep.updated + rep.deleted == 0,
		      "verify changed %zu/%zu/%zu", rep.added, rep.updated, rep.deleted);
	mm_spd_report_done(&rep);
}

/* Replace the table cur[0..2) by next[0..2) in one change set; checks
 * that each moved selector was updated in place (same kernel index: no
 * moment without a policy, never a delete after an add). */
static void owner_step(struct mm_partner **cur, struct mm_partner **next, const char *moved,
		       size_t want_updated, size_t want_deleted)
{
	unsigned before = ip_index_of("out", "198.51.100.0/24", moved, TAG), after;
	struct mm_spd_report rep;

	ck_assert_uint_ne(before, 0);
	apply_set(cur, next, 2, &rep);
	ck_assert_uint_eq(rep.failed, 0);
	ck_assert_uint_eq(rep.added, 0);
	ck_assert_uint_eq(rep.updated, want_updated);
	ck_assert_uint_eq(rep.deleted, want_deleted);
	after = ip_index_of("out", "198.51.100.0/24", moved, TAG);
	ck_assert_msg(after == before, "%s: index %u became %u (deleted and re-added)", moved,
		      before, after);
	check_owners(next, 2);
	for (int i = 0; i < 2; i++) {
		mm_partner_unref(cur[i]);
		cur[i] = next[i];
	}
}

START_TEST(test_range_changes_owner)
{
	struct mm_partner *cur[2], *next[2];
	struct mm_spd_report rep;

	cur[0] = mm_test_partner("alpha.example.net", RQ(1), "10.1.0.0/24 10.1.1.0/24", "100.64.0.1");
	cur[1] = mm_test_partner("beta.example.org", RQ(2), "10.2.0.0/24", "100.64.0.2");
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(cur), 2, &rep), 0);
	mm_spd_report_done(&rep);
	check_owners(cur, 2);

	/* beta's range moves to alpha (alpha's change comes first). */
	next[0] = mm_test_partner("alpha.example.net", RQ(1), "10.1.0.0/24 10.1.1.0/24 10.2.0.0/24",
				  "100.64.0.1");
	next[1] = mm_test_partner("beta.example.org", RQ(2), "10.3.0.0/24", "100.64.0.2");
	/* beta gains 10.3/24 (added), so count its adds apart. */
	{
		unsigned before = ip_index_of("out", "198.51.100.0/24", "10.2.0.0/24", TAG);

		apply_set(cur, next, 2, &rep);
		ck_assert_uint_eq(rep.failed, 0);
		ck_assert_uint_eq(rep.added, 3);
		ck_assert_uint_eq(rep.updated, 3);
		ck_assert_uint_eq(rep.deleted, 0);
		ck_assert_uint_eq(ip_index_of("out", "198.51.100.0/24", "10.2.0.0/24", TAG), before);
		check_owners(next, 2);
		for (int i = 0; i < 2; i++) {
			mm_partner_unref(cur[i]);
			cur[i] = next[i];
		}
	}

	/* ... and back from alpha to beta (beta's change comes second). */
	next[0] = mm_test_partner("alpha.example.net", RQ(1), "10.1.0.0/24 10.1.1.0/24", "100.64.0.1");
	next[1] = mm_test_partner("beta.example.org", RQ(2), "10.3.0.0/24 10.2.0.0/24", "100.64.0.2");
	owner_step(cur, next, "10.2.0.0/24", 3, 0);

	/* The two swap ranges. */
	next[0] = mm_test_partner("alpha.example.net", RQ(1), "10.3.0.0/24 10.2.0.0/24", "100.64.0.1");
	next[1] = mm_test_partner("beta.example.org", RQ(2), "10.1.0.0/24 10.1.1.0/24", "100.64.0.2");
	owner_step(cur, next, "10.1.0.0/24", 12, 0);

	/* alpha disabled, one of its ranges moves to beta in the same set. */
	next[0] = mm_test_partner("alpha.example.net", RQ(1), "10.3.0.0/24 10.2.0.0/24", "100.64.0.1");
	next[0]->enabled = false;
	next[1] = mm_test_partner("beta.example.org", RQ(2), "10.1.0.0/24 10.1.1.0/24 10.3.0.0/24",
				  "100.64.0.2");
	owner_step(cur, next, "10.3.0.0/24", 3, 3);

	/* alpha enabled again, taking a range of beta's in the same set. */
	next[0] = mm_test_partner("alpha.example.net", RQ(1), "10.2.0.0/24 10.1.1.0/24", "100.64.0.1");
	next[1] = mm_test_partner("beta.example.org", RQ(2), "10.1.0.0/24 10.3.0.0/24", "100.64.0.2");
	{
		unsigned before = ip_index_of("out", "198.51.100.0/24", "10.1.1.0/24", TAG);

		apply_set(cur, next, 2, &rep);
		ck_assert_uint_eq(rep.failed, 0);
		ck_assert_uint_eq(rep.added, 3);    /* 10.2/24 comes back */
		ck_assert_uint_eq(rep.updated, 3);  /* 10.1.1/24 changes owner */
		ck_assert_uint_eq(rep.deleted, 0);
		ck_assert_uint_eq(ip_index_of("out", "198.51.100.0/24", "10.1.1.0/24", TAG), before);
		check_owners(next, 2);
		for (int i = 0; i < 2; i++) {
			mm_partner_unref(cur[i]);
			cur[i] = next[i];
		}
	}

	/* A range moves and the new owner's path (gateway, here of the
	 * other family) changes in the same set: all of it updated. */
	next[0] = mm_test_partner("alpha.example.net", RQ(1), "10.2.0.0/24 10.1.1.0/24 10.3.0.0/24",
				  "2001:db8:ff01::1");
	next[1] = mm_test_partner("beta.example.org", RQ(2), "10.1.0.0/24", "100.64.0.2");
	owner_step(cur, next, "10.3.0.0/24", 9, 0);
	mm_partner_unref(cur[0]);
	mm_partner_unref(cur[1]);
}
END_TEST

/* The periodic verify computes the desired state from the table afresh:
 * should the engine's view ever disagree, it is rebuilt from the table
 * and the kernel follows.  Provoked with a table the table layer would
 * refuse (two partners, one range), where a change set leaves the
 * selector with its current owner but the table's order gives it to the
 * earlier partner. */
START_TEST(test_verify_rebuilds_from_table)
{
	struct mm_partner *t[2], *alpha2;
	struct mm_spd_report rep;

	t[0] = mm_test_partner("alpha.example.net", RQ(1), "10.1.0.0/24", "100.64.0.1");
	t[1] = mm_test_partner("beta.example.org", RQ(2), "10.2.0.0/24", "100.64.0.2");
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(t), 2, &rep), 0);
	mm_spd_report_done(&rep);
	alpha2 = mm_test_partner("alpha.example.net", RQ(1), "10.1.0.0/24 10.2.0.0/24",
				 "100.64.0.1");
	ck_assert_int_eq(change1(t[0], alpha2, &rep), 0);
	mm_spd_report_done(&rep);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_PARTNER_ERROR, "alpha.example.net"), 3);
	mm_partner_unref(t[0]);
	t[0] = alpha2;
	ck_assert(policy_back(&(struct look){ "out", "198.51.100.0/24", "10.2.0.0/24", RQ(2) }));

	ck_assert_int_eq(mm_spd_verify(spd, TABLE(t), 2, &rep), 0);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_RESYNC, NULL), 1);
	ck_assert_uint_eq(rep.updated, 3);
	mm_spd_report_done(&rep);
	ck_assert(policy_back(&(struct look){ "out", "198.51.100.0/24", "10.2.0.0/24", RQ(1) }));
	ck_assert_int_eq(mm_spd_verify(spd, TABLE(t), 2, &rep), 0);
	ck_assert_int_eq(count_notes(MM_SPD_NOTE_RESYNC, NULL), 1);
	ck_assert_uint_eq(rep.added + rep.updated + rep.deleted, 0);
	mm_spd_report_done(&rep);
	mm_partner_unref(t[0]);
	mm_partner_unref(t[1]);
}
END_TEST

/* A foreign allow policy that overlaps one of alpha's selectors (not equal
 * to it) with a priority value <= ours shadows it: alpha is not enforced in
 * that direction, read from the dump and from events; a worse value, a
 * block, another partner's selectors: no effect. */
static bool shadow_event(const char *cmd)
{
	ck_assert_int_eq(sh("%s", cmd), 0);
	usleep(50 * 1000);
	ck_assert_int_ge(drain(NULL), 1);
	return mm_spd_inbound_enforced(spd, "alpha.example.net");
}

START_TEST(test_foreign_shadow)
{
	const char *a = "alpha.example.net", *b = "beta.example.org";
	struct mm_spd_report rep;

	/* There before the engine starts: learnt from the dump. */
	ck_assert_int_eq(sh("ip xfrm policy add src 10.1.0.7/32 dst 198.51.100.5/32 dir in "
			    "priority 1 action allow"), 0);
	make_three();
	ck_assert_int_eq(mm_spd_sync(spd, TABLE(three), 5, &rep), 0);
	mm_spd_report_done(&rep);
	ck_assert(!mm_spd_inbound_enforced(spd, a));
	ck_assert(mm_spd_outbound_enforced(spd, a));
	ck_assert(mm_spd_inbound_enforced(spd, b));
	ck_assert(shadow_event("ip xfrm policy del src 10.1.0.7/32 dst 198.51.100.5/32 dir in"));
	/* Wider and port-specific, from an event; then made worse than our
	 * band by an update, then gone. */
	ck_assert(!shadow_event("ip xfrm policy add src 0.0.0.0/0 dst 198.51.100.0/24 proto udp "
				"dport 5060 dir in priority 1 action allow"));
	ck_assert(!mm_spd_inbound_enforced(spd, b));
	ck_assert(shadow_event("ip xfrm policy update src 0.0.0.0/0 dst 198.51.100.0/24 proto udp "
			       "dport 5060 dir in priority 100257 action allow"));
	ck_assert(mm_spd_inbound_enforced(spd, b));
	/* Equal to beta's /16 -> /24 (base + 256 - 40): may win; worse than
	 * alpha's /24 -> /24 (base + 256 - 48). */
	ck_assert(shadow_event("ip xfrm policy update src 0.0.0.0/0 dst 198.51.100.0/24 proto udp "
			       "dport 5060 dir in priority 100216 action allow"));
	ck_assert(!mm_spd_inbound_enforced(spd, b));
	ck_assert(shadow_event("ip xfrm policy del src 0.0.0.0/0 dst 198.51.100.0/24 proto udp "
			       "dport 5060 dir in"));
	/* A block lets nothing through in clear. */
	ck_assert(shadow_event("ip xfrm policy add src 10.1.0.7/32 dst 198.51.100.5/32 dir in "
			       "priority 1 action block"));
	ck_assert(shadow_event("ip xfrm policy del src 10.1.0.7/32 dst 198.51.100.5/32 dir in"));
	/* Out: what our CSCFs send to alpha; inbound stays enforced. */
	ck_assert(shadow_event("ip xfrm policy add src 198.51.100.5/32 dst 10.1.0.7/32 dir out "
			       "priority 1 action allow"));
	ck_assert(!mm_spd_outbound_enforced(spd, a));
	ck_assert(mm_spd_outbound_enforced(spd, b));
	/* A verify reads it again from the dump. */
	ck_assert_int_eq(mm_spd_verify(spd, NULL, 0, &rep), 0);
	mm_spd_report_done(&rep);
	ck_assert(!mm_spd_outbound_enforced(spd, a));
	ck_assert(shadow_event("ip xfrm policy del src 198.51.100.5/32 dst 10.1.0.7/32 dir out"));
	ck_assert(mm_spd_outbound_enforced(spd, a));
	free_three();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("spd");
	TCase *tc = tcase_create("netns");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_program_three);
	tcase_add_test(tc, test_restart_unchanged);
	tcase_add_test(tc, test_drift_deleted_by_index);
	tcase_add_test(tc, test_drift_deleteall_and_changed);
	tcase_add_test(tc, test_foreign_untouched_and_conflict);
	tcase_add_test(tc, test_foreign_shadow);
	tcase_add_test(tc, test_tag_squatter_and_stale);
	tcase_add_test(tc, test_partner_changes);
	tcase_add_test(tc, test_table_shrinks_on_sync);
	tcase_add_test(tc, test_partner_problems);
	tcase_add_test(tc, test_flush_and_overflow_resync);
	tcase_add_test(tc, test_ten_thousand);
	tcase_add_test(tc, test_bulk_removal_by_index);
	tcase_add_test(tc, test_foreign_survives_removal);
	tcase_add_test(tc, test_foreign_survives_removal_no_monitor);
	tcase_add_test(tc, test_stale_index_changes_hands);
	tcase_add_test(tc, test_lost_events_hold_index_deletes);
	tcase_add_test(tc, test_range_changes_owner);
	tcase_add_test(tc, test_verify_rebuilds_from_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
