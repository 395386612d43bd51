/* bench/reconcile: cold start of the SPD reconciler, to converged, against
 * two baselines loading the same policies:
 *   (a) ip -batch with one "xfrm policy add" line per policy;
 *   (b) a minimal libmnl loader: NEWPOLICY in 256-message acked batches,
 *       nothing else, the acks read one recv at a time as libmnl's
 *       examples do (the target); a tuned variant that reads a batch's
 *       acks with one recvmmsg is shown too, as the closer estimate of
 *       what the kernel alone can do.
 * Every measurement runs in a fresh network namespace (a forked child
 * unshares CLONE_NEWNET), so the kernel's hash tables start small each
 * time, as on a real cold start.  Rounds are interleaved and the median
 * decides PASS/FAIL (the best round is shown too: this machine is shared).
 * Then half the partners leave: the time to delete their policies (half
 * of the table) with the reconciler (one sync: deletes by the indexes its
 * dump read) against ip -batch deleting the same policies by selector
 * (what an operator writes; the kernel walks the policy's inexact bin
 * after each such delete) and by index (read from a dump beforehand).
 * Loading the table is not timed there.
 * Then the reconciler's peak RSS (VmHWM) is measured at 100k and at 200k
 * kernel policies.
 *
 *   build/bench/reconcile [-n PARTNERS] [-r ROUNDS] [-d DELETE_ROUNDS]
 *                         [-m RSS_PARTNERS]
 *
 * Exit status: 0 unless something failed to run (targets missed are
 * reported as FAIL, not as an error). */
#include <errno.h>
#include <getopt.h>
#include <libmnl/libmnl.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/spd.h"

#define RANGES 2
#define TARGET_VS_IP 3.0
#define TARGET_VS_LOADER 1.3
#define TARGET_RSS_KB (100 * 1024)

struct result {
	int error;            /* 0 or -errno */
	double seconds;       /* wall clock */
	double cpu;           /* user + system of the process doing the work */
	size_t policies;      /* the kernel's count afterwards */
	long vmhwm_kb;
	size_t index_bytes;   /* the reconciler's own index */
	char what[160];
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_of(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long vmhwm_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- the table: partner i owns 10.x.y.z/27 ranges 2i and 2i+1 ---- */

static void range_of(size_t j, struct mm_prefix *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->addr.family = AF_INET;
	ret->addr.bytes[0] = 10;
	ret->addr.bytes[1] = (uint8_t)(j >> 11);
	ret->addr.bytes[2] = (uint8_t)(j >> 3);
	ret->addr.bytes[3] = (uint8_t)((j & 7) << 5);
	ret->len = 27;
}

static void gateway_of(size_t i, struct mm_addr *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = AF_INET;
	ret->bytes[0] = 100;
	ret->bytes[1] = (uint8_t)(64 + (i >> 16));
	ret->bytes[2] = (uint8_t)(i >> 8);
	ret->bytes[3] = (uint8_t)i;
}

static void free_table(struct mm_partner **t, size_t n)
{
	for (size_t i = 0; t && i < n; i++) {
		if (!t[i])
			continue;
		free(t[i]->ranges);
		free(t[i]->gateways);
		free(t[i]);
	}
	free(t);
}

/* Built by hand: the table's constructors live in policy/ and are not
 * what is measured here. */
static struct mm_partner **make_table(size_t n)
{
	struct mm_partner **t = calloc(n, sizeof(*t));

	if (!t)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		struct mm_partner *p = calloc(1, sizeof(*p));

		if (!p || !(p->ranges = calloc(RANGES, sizeof(*p->ranges))) ||
		    !(p->gateways = calloc(1, sizeof(*p->gateways)))) {
			if (p)
				free(p->ranges);
			free(p);
			free_table(t, n);
			return NULL;
		}
		t[i] = p;
		p->refs = 1;
		snprintf(p->domain, sizeof(p->domain), "partner%zu.example.net", i);
		p->kind = MM_KIND_IMS;
		p->enabled = true;
		p->path = MM_PATH_TUNNEL;
		p->reqid = MM_SPD_REQID_MIN_DEFAULT + 1 + (uint32_t)i;
		for (size_t k = 0; k < RANGES; k++)
			range_of(RANGES * i + k, &p->ranges[k]);
		p->n_ranges = RANGES;
		gateway_of(i, &p->gateways[0]);
		p->n_gateways = 1;
	}
	return t;
}

static struct mm_spd_local local;

static void config(struct mm_spd_config *cfg)
{
	mm_spd_config_init(cfg);
	memset(&local, 0, sizeof(local));
	mm_prefix_parse("198.51.100.10/32", &local.prefix, "local", NULL);
	local.kinds = MM_KINDS_ALL;
	cfg->locals = &local;
	cfg->n_locals = 1;
	mm_addr_parse("192.0.2.1", &cfg->tunnel4, "tunnel4", NULL);
}

/* ---- counting what the kernel holds ---- */

static int count_one(const struct mm_xfrm_policy *p, void *data)
{
	(void)p;
	(*(size_t *)data)++;
	return 0;
}

static void count_reset(void *data)
{
	*(size_t *)data = 0;
}

static int kernel_count(size_t *ret)
{
	struct mm_nl *nl;
	size_t n = 0;
	int r = mm_nl_open(&nl);

	if (r < 0)
		return r;
	r = mm_xfrm_policy_dump(nl, count_one, count_reset, &n, NULL, NULL);
	mm_nl_free(nl);
	if (r < 0)
		return r;
	*ret = n;
	return 0;
}

/* ---- (r) the reconciler ---- */

struct rec_arg {
	size_t partners;
};

/* The engine as the daemon runs it: its own echoes dropped in the kernel,
 * the monitor read for it between batches. */
struct engine {
	struct mm_nl *nl;
	struct mm_xfrm_monitor *mon;
	struct mm_spd *spd;
};

static int engine_drain(void *data)
{
	struct engine *e = data;

	return mm_spd_read_monitor(e->spd, e->mon);
}

static int engine_open(struct engine *e, const struct mm_spd_config *cfg)
{
	int r;

	if ((r = mm_nl_open(&e->nl)) < 0 || (r = mm_xfrm_monitor_open(&e->mon)) < 0)
		return r;
	mm_xfrm_monitor_ignore_portid(e->mon, mm_nl_portid(e->nl));
	return mm_spd_new(cfg, e->nl, engine_drain, e, NULL, NULL, &e->spd);
}

static void engine_close(struct engine *e)
{
	mm_spd_free(e->spd);
	mm_xfrm_monitor_free(e->mon);
	mm_nl_free(e->nl);
}

static int run_reconciler(void *data, struct result *res)
{
	const struct rec_arg *a = data;
	struct mm_partner **table = make_table(a->partners);
	struct engine eng = { 0 };
	struct mm_spd_report rep = { 0 };
	struct mm_spd_config cfg;
	double t0, c0;
	int r;

	if (!table)
		return -ENOMEM;
	config(&cfg);
	c0 = cpu_of(RUSAGE_SELF);
	t0 = now();
	if ((r = engine_open(&eng, &cfg)) < 0)
		goto out;
	r = mm_spd_sync(eng.spd, (const struct mm_partner *const *)table, a->partners, &rep);
	if (r < 0)
		goto out;
	/* Converged: every request acknowledged; drain what the monitor
	 * still holds, as the daemon's loop would. */
	(void)engine_drain(&eng);
	res->seconds = now() - t0;
	res->cpu = cpu_of(RUSAGE_SELF) - c0;
	res->vmhwm_kb = vmhwm_kb();
	res->index_bytes = mm_spd_memory(eng.spd);
	if (rep.failed) {
		snprintf(res->what, sizeof(res->what), "%zu requests failed", rep.failed);
		r = -EIO;
		goto out;
	}
	r = kernel_count(&res->policies);
out:
	mm_spd_report_done(&rep);
	engine_close(&eng);
	free_table(table, a->partners);
	return r;
}

/* ---- (a) ip -batch ---- */

static int write_batch(const struct mm_spd_desired *d, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	for (size_t i = 0; i < d->n_want; i++) {
		const struct mm_spd_want *w = &d->want[i];
		char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN], ts[MM_ADDR_STRLEN], td[MM_ADDR_STRLEN];

		/* ip cannot set the selector's user field; everything else
		 * is the same policy. */
		fprintf(f, "xfrm policy add src %s dst %s dir %s priority %u "
			   "tmpl src %s dst %s proto esp reqid %u mode tunnel level required\n",
			mm_prefix_str(&w->src, s), mm_prefix_str(&w->dst, t), mm_xfrm_dir_name(w->dir),
			w->priority, mm_addr_str(&w->tsrc, ts), mm_addr_str(&w->tdst, td), w->reqid);
	}
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

static int run_ipbatch(void *data, struct result *res)
{
	const char *path = data;
	double t0 = now();
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("ip", "ip", "-batch", path, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	res->seconds = now() - t0;
	res->cpu = cpu_of(RUSAGE_CHILDREN);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(res->what, sizeof(res->what), "ip -batch exited with status %d",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	return kernel_count(&res->policies);
}

/* ---- (b) the minimal libmnl loader ---- */

struct loader_arg {
	const struct mm_spd_desired *d;
	uint32_t tag;
	bool mmsg;  /* acks with one recvmmsg per batch, not one recv per ack */
};

static void put_policy(char *buf, const struct mm_spd_want *w, uint32_t tag, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct xfrm_userpolicy_info pi = { 0 };
	struct xfrm_user_tmpl t = { 0 };
	size_t alen = w->src.addr.family == AF_INET ? 4 : 16;

	nlh->nlmsg_type = XFRM_MSG_NEWPOLICY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	nlh->nlmsg_seq = seq;
	pi.sel.family = w->src.addr.family;
	memcpy(&pi.sel.saddr, w->src.addr.bytes, alen);
	memcpy(&pi.sel.daddr, w->dst.addr.bytes, alen);
	pi.sel.prefixlen_s = w->src.len;
	pi.sel.prefixlen_d = w->dst.len;
	pi.sel.user = tag;
	pi.lft.soft_byte_limit = pi.lft.hard_byte_limit = XFRM_INF;
	pi.lft.soft_packet_limit = pi.lft.hard_packet_limit = XFRM_INF;
	pi.priority = w->priority;
	pi.dir = w->dir;
	/* Copied in: messages in a batch are only 4-byte aligned. */
	memcpy(mnl_nlmsg_put_extra_header(nlh, sizeof(pi)), &pi, sizeof(pi));
	t.family = w->tsrc.family;
	memcpy(&t.saddr, w->tsrc.bytes, w->tsrc.family == AF_INET ? 4 : 16);
	memcpy(&t.id.daddr, w->tdst.bytes, w->tdst.family == AF_INET ? 4 : 16);
	t.id.proto = IPPROTO_ESP;
	t.mode = XFRM_MODE_TUNNEL;
	t.reqid = w->reqid;
	t.aalgos = t.ealgos = t.calgos = ~0u;
	mnl_attr_put(nlh, XFRMA_TMPL, sizeof(t), &t);
}

static int run_loader(void *data, struct result *res)
{
	const struct loader_arg *a = data;
	size_t per = 1024, failed = 0;
	char *buf = malloc(256 * per);
	static char rbuf[256 * 512] __attribute__((aligned(8)));
	static struct mmsghdr msgs[256];
	static struct iovec iov[256];
	struct mnl_socket *sock = NULL;
	double c0 = cpu_of(RUSAGE_SELF), t0 = now();
	uint32_t seq = 1;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (int m = 0; m < 256; m++) {
		iov[m] = (struct iovec){ rbuf + m * 512, 512 };
		msgs[m].msg_hdr = (struct msghdr){ .msg_iov = &iov[m], .msg_iovlen = 1 };
	}
	sock = mnl_socket_open(NETLINK_XFRM);
	if (!sock || mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	for (size_t base = 0; base < a->d->n_want; base += 256) {
		size_t count = a->d->n_want - base < 256 ? a->d->n_want - base : 256, off = 0;
		size_t acked = 0;
		uint32_t seq0 = seq;

		for (size_t k = 0; k < count; k++) {
			put_policy(buf + off, &a->d->want[base + k], a->tag, seq++);
			off += NLMSG_ALIGN(((struct nlmsghdr *)(buf + off))->nlmsg_len);
		}
		if (mnl_socket_sendto(sock, buf, off) < 0) {
			r = -errno;
			goto out;
		}
		while (acked < count) {
			/* All acks of a send are queued when it returns: the
			 * tuned loader takes them with one call. */
			int got = a->mmsg ? recvmmsg(mnl_socket_get_fd(sock), msgs,
						     (unsigned)(count - acked), MSG_WAITFORONE, NULL)
					  : 1;

			if (!a->mmsg) {
				ssize_t n = mnl_socket_recvfrom(sock, rbuf, 512);

				msgs[0].msg_len = (unsigned)n;
				got = n < 0 ? -1 : 1;
			}
			if (got < 0) {
				r = -errno;
				goto out;
			}
			for (int m = 0; m < got; m++) {
				const struct nlmsghdr *nlh = (const struct nlmsghdr *)(rbuf + m * 512);
				int len = (int)msgs[m].msg_len;

				for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
					const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

					if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq < seq0)
						continue;
					acked++;
					if (e->error)
						failed++;
				}
			}
		}
	}
	res->seconds = now() - t0;
	res->cpu = cpu_of(RUSAGE_SELF) - c0;
	if (failed) {
		snprintf(res->what, sizeof(res->what), "%zu requests failed", failed);
		r = -EIO;
		goto out;
	}
	r = kernel_count(&res->policies);
out:
	if (sock)
		mnl_socket_close(sock);
	free(buf);
	return r;
}

/* ---- deleting half the table ---- */

enum { HALF_RECONCILER, HALF_IP_SELECTOR, HALF_IP_INDEX };

struct half_arg {
	const struct mm_spd_desired *d;  /* the whole table */
	size_t partners;                 /* the second half leaves */
	const char *sel_path;            /* ip batch: delete by selector */
	int how;
};

static int half_reconciler(const struct half_arg *a, struct result *res)
{
	struct mm_partner **table = make_table(a->partners);
	struct engine eng = { 0 };
	struct mm_spd_report rep = { 0 };
	struct mm_spd_config cfg;
	size_t keep = a->partners / 2;
	double t0, c0;
	int r;

	if (!table)
		return -ENOMEM;
	config(&cfg);
	if ((r = engine_open(&eng, &cfg)) < 0)
		goto out;
	r = mm_spd_sync(eng.spd, (const struct mm_partner *const *)table, a->partners, &rep);
	mm_spd_report_done(&rep);
	if (r < 0)
		goto out;
	(void)engine_drain(&eng);
	/* A reload with a table that lost its second half. */
	c0 = cpu_of(RUSAGE_SELF);
	t0 = now();
	r = mm_spd_sync(eng.spd, (const struct mm_partner *const *)table, keep, &rep);
	if (r < 0)
		goto out;
	(void)engine_drain(&eng);
	res->seconds = now() - t0;
	res->cpu = cpu_of(RUSAGE_SELF) - c0;
	if (rep.failed || rep.deleted != a->d->n_want - a->d->n_want * keep / a->partners) {
		snprintf(res->what, sizeof(res->what), "%zu deleted, %zu failed", rep.deleted,
			 rep.failed);
		r = -EIO;
		goto out;
	}
	r = kernel_count(&res->policies);
out:
	mm_spd_report_done(&rep);
	engine_close(&eng);
	free_table(table, a->partners);
	return r;
}

struct index_file {
	FILE *f;
	uint32_t first_gone;  /* reqids from here on leave */
};

static int write_index_del(const struct mm_xfrm_policy *p, void *data)
{
	struct index_file *x = data;

	if (p->n_tmpl && p->tmpl[0].reqid >= x->first_gone)
		fprintf(x->f, "xfrm policy del index %u dir %s\n", p->index,
			mm_xfrm_dir_name(p->dir));
	return 0;
}

static int half_ip(const struct half_arg *a, struct result *res)
{
	struct loader_arg load = { a->d, 0, true };  /* uid 0: ip can name them */
	char path[] = "/tmp/mmtrust-bench-del-XXXXXX";
	struct index_file x = { 0 };
	struct result ignored;
	struct mm_nl *nl;
	int fd, r;

	r = run_loader(&load, &ignored);
	if (r < 0)
		return r;
	if (a->how == HALF_IP_SELECTOR)
		return run_ipbatch((void *)a->sel_path, res);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	x.f = fdopen(fd, "w");
	x.first_gone = MM_SPD_REQID_MIN_DEFAULT + 1 + (uint32_t)(a->partners / 2);
	if (!x.f) {
		r = -errno;
		close(fd);
		goto out;
	}
	if ((r = mm_nl_open(&nl)) == 0) {
		r = mm_xfrm_policy_dump(nl, write_index_del, NULL, &x, NULL, NULL);
		mm_nl_free(nl);
	}
	if (fclose(x.f) != 0 && r == 0)
		r = -errno;
	if (r == 0)
		r = run_ipbatch(path, res);
out:
	unlink(path);
	return r;
}

static int run_half(void *data, struct result *res)
{
	const struct half_arg *a = data;

	return a->how == HALF_RECONCILER ? half_reconciler(a, res) : half_ip(a, res);
}

/* ip -batch lines deleting the second half's policies by selector. */
static int write_del_batch(const struct mm_spd_desired *d, size_t keep, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	for (size_t i = 0; i < d->n_want; i++) {
		const struct mm_spd_want *w = &d->want[i];
		char s[MM_ADDR_STRLEN], t[MM_ADDR_STRLEN];

		if (w->partner < keep)
			continue;
		fprintf(f, "xfrm policy del src %s dst %s dir %s\n", mm_prefix_str(&w->src, s),
			mm_prefix_str(&w->dst, t), mm_xfrm_dir_name(w->dir));
	}
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

/* ---- running in a fresh namespace ---- */

static int in_fresh_netns(int (*fn)(void *, struct result *), void *arg, struct result *res)
{
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct result r = { 0 };

		close(fds[0]);
		if (unshare(CLONE_NEWNET) < 0) {
			r.error = -errno;
			snprintf(r.what, sizeof(r.what), "unshare(CLONE_NEWNET): %s", strerror(errno));
		} else {
			r.error = fn(arg, &r);
		}
		n = write(fds[1], &r, sizeof(r));
		_exit(n == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(fds[1]);
	n = read(fds[0], res, sizeof(*res));
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (n != (ssize_t)sizeof(*res))
		return -EIO;
	/* The namespace dies with the child; the kernel frees its policies
	 * in a worker.  Give it time, so it does not run during the next
	 * measurement. */
	usleep(700 * 1000);
	return res->error;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

struct method {
	const char *name;
	int (*fn)(void *, struct result *);
	void *arg;
	double rate[32], crate[32];  /* policies per wall / CPU second */
	double median, best, cpu_median;
	size_t work;                 /* policies the rates count; 0: expect */
};

/* Rounds are interleaved (one of each method per round), so a change in
 * the machine's load during the run hits every method alike. */
static int measure(struct method *m, size_t n_m, int rounds, size_t expect)
{
	struct result res;

	for (int i = 0; i < rounds; i++) {
		for (size_t k = 0; k < n_m; k++) {
			int r = in_fresh_netns(m[k].fn, m[k].arg, &res);

			if (r < 0) {
				fprintf(stderr, "reconcile: %s: %s%s%s\n", m[k].name, strerror(-r),
					res.what[0] ? ": " : "", res.what);
				return r;
			}
			if (res.policies != expect) {
				fprintf(stderr, "reconcile: %s: the kernel holds %zu policies, "
						"expected %zu\n", m[k].name, res.policies, expect);
				return -EIO;
			}
			size_t work = m[k].work ? m[k].work : expect;

			m[k].rate[i] = (double)work / res.seconds;
			m[k].crate[i] = res.cpu > 0 ? (double)work / res.cpu : 0;
			printf("  round %d  %-24s %7.3f s %9.0f policies/s   cpu %6.3f s\n", i + 1,
			       m[k].name, res.seconds, m[k].rate[i], res.cpu);
			fflush(stdout);
		}
	}
	for (size_t k = 0; k < n_m; k++) {
		qsort(m[k].rate, rounds, sizeof(double), cmp_double);
		qsort(m[k].crate, rounds, sizeof(double), cmp_double);
		m[k].median = m[k].rate[rounds / 2];
		m[k].best = m[k].rate[rounds - 1];
		m[k].cpu_median = m[k].crate[rounds / 2];
	}
	return 0;
}

static int measure_rss(size_t partners, struct result *res)
{
	struct rec_arg a = { partners };
	int r = in_fresh_netns(run_reconciler, &a, res);

	if (r < 0)
		fprintf(stderr, "reconcile: RSS run (%zu partners): %s%s%s\n", partners, strerror(-r),
			res->what[0] ? ": " : "", res->what);
	return r;
}

int main(int argc, char **argv)
{
	size_t partners = 10000, rss_partners = 50000;
	int del_rounds = 3;
	double r_rec, r_ip, r_mnl;
	struct mm_partner **table = NULL;
	struct mm_spd_desired *d = NULL;
	char path[] = "/tmp/mmtrust-bench-XXXXXX";
	struct result rss100, rss200;
	struct mm_spd_config cfg;
	int rounds = 7, fd, c, r, fails = 0;

	while ((c = getopt(argc, argv, "n:r:d:m:")) != -1) {
		switch (c) {
		case 'n':
			partners = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'd':
			del_rounds = atoi(optarg);
			break;
		case 'm':
			rss_partners = strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: %s [-n partners] [-r rounds] [-d delete-rounds] "
					"[-m rss-partners]\n", argv[0]);
			return 2;
		}
	}
	if (rounds < 1 || rounds > 31 || del_rounds < 0 || del_rounds > 31 || partners < 2 ||
	    rss_partners < 2) {
		fprintf(stderr, "reconcile: bad arguments\n");
		return 2;
	}
	if (mm_nl_have_net_admin() != 1) {
		fprintf(stderr, "reconcile: needs CAP_NET_ADMIN (to create network namespaces "
				"and program their SPD)\n");
		return 1;
	}
	config(&cfg);
	table = make_table(partners);
	if (!table || mm_spd_compute(&cfg, (const struct mm_partner *const *)table, partners, &d) < 0) {
		fprintf(stderr, "reconcile: cannot build the table\n");
		return 1;
	}
	fd = mkstemp(path);
	if (fd < 0) {
		perror("reconcile: mkstemp");
		return 1;
	}
	close(fd);
	r = write_batch(d, path);
	if (r < 0) {
		fprintf(stderr, "reconcile: writing %s: %s\n", path, strerror(-r));
		goto fail;
	}
	printf("cold start: %zu partners x %d IPv4 ranges, 1 local prefix: %zu policies "
	       "(in + out), %d rounds each in a fresh namespace\n",
	       partners, RANGES, d->n_want, rounds);
	{
		struct rec_arg ra = { partners };
		struct loader_arg plain = { d, cfg.tag, false }, tuned = { d, cfg.tag, true };
		struct method m[4] = {
			{ .name = "mmtrust reconciler", .fn = run_reconciler, .arg = &ra },
			{ .name = "ip -batch", .fn = run_ipbatch, .arg = path },
			{ .name = "libmnl loader", .fn = run_loader, .arg = &plain },
			{ .name = "libmnl loader, recvmmsg", .fn = run_loader, .arg = &tuned },
		};
		if (measure(m, 4, rounds, d->n_want) < 0)
			goto fail;
		printf("\npolicies/s               median(wall)  best(wall)  median(cpu)\n");
		for (int k = 0; k < 4; k++)
			printf("  %-24s %11.0f %11.0f %12.0f\n", m[k].name, m[k].median, m[k].best,
			       m[k].cpu_median);
		r_rec = m[0].median;
		r_ip = m[1].median;
		r_mnl = m[2].median;
		printf("\nratios (medians, wall clock; by CPU time in brackets):\n");
		printf("  reconciler vs ip -batch:             %5.2fx faster [%5.2fx] (target >= %.1fx)"
		       "  %s\n", r_rec / r_ip, m[0].cpu_median / m[1].cpu_median, TARGET_VS_IP,
		       r_rec / r_ip >= TARGET_VS_IP ? "PASS" : "FAIL");
		printf("  minimal libmnl loader vs reconciler: %5.2fx        [%5.2fx] (target <= %.1fx)"
		       "  %s\n", r_mnl / r_rec, m[2].cpu_median / m[0].cpu_median, TARGET_VS_LOADER,
		       r_mnl / r_rec <= TARGET_VS_LOADER ? "PASS" : "FAIL");
		/* Not one of the targets, shown so the margin is honest: the
		 * tuned loader is closer to what the kernel alone can do. */
		printf("  tuned loader (recvmmsg) vs reconciler: %5.2fx      [%5.2fx] (same 1.3x bound:"
		       " %s)\n", m[3].median / r_rec, m[3].cpu_median / m[0].cpu_median,
		       m[3].median / r_rec <= TARGET_VS_LOADER ? "within" : "outside");
		fails += r_rec / r_ip < TARGET_VS_IP;
		fails += r_mnl / r_rec > TARGET_VS_LOADER;
	}

	if (del_rounds) {
		size_t keep = partners / 2, gone = d->n_want - d->n_want * keep / partners;
		struct half_arg hr = { d, partners, path, HALF_RECONCILER };
		struct half_arg hs = { d, partners, path, HALF_IP_SELECTOR };
		struct half_arg hi = { d, partners, path, HALF_IP_INDEX };
		struct method m[3] = {
			{ .name = "reconciler (by index)", .fn = run_half, .arg = &hr, .work = gone },
			{ .name = "ip -batch, by selector", .fn = run_half, .arg = &hs, .work = gone },
			{ .name = "ip -batch, by index", .fn = run_half, .arg = &hi, .work = gone },
		};

		r = write_del_batch(d, keep, path);
		if (r < 0) {
			fprintf(stderr, "reconcile: writing %s: %s\n", path, strerror(-r));
			goto fail;
		}
		printf("\ndelete half: %zu of %zu partners leave, %zu of %zu policies deleted "
		       "(loading not timed), %d rounds each in a fresh namespace\n",
		       partners - keep, partners, gone, d->n_want, del_rounds);
		if (measure(m, 3, del_rounds, d->n_want - gone) < 0)
			goto fail;
		printf("\ndelete half    median(wall)   deletes/s  median(cpu)\n");
		for (int k = 0; k < 3; k++)
			printf("  %-24s %8.3f s %11.0f %10.3f s\n", m[k].name,
			       (double)gone / m[k].median, m[k].median, (double)gone / m[k].cpu_median);
		printf("  reconciler vs ip -batch by selector: %6.1fx faster\n",
		       m[0].median / m[1].median);
		printf("  reconciler vs ip -batch by index:    %6.1fx faster\n", m[0].median / m[2].median);
	}
	unlink(path);
	path[0] = '\0';

	printf("\npeak RSS (VmHWM) of a reconciler process, table included:\n");
	if (measure_rss(rss_partners / 2, &rss100) < 0 || measure_rss(rss_partners, &rss200) < 0)
		goto fail;
	printf("  %6zu partners: %7zu policies  VmHWM %6ld kB  (index %zu kB, %.0f policies/s)\n",
	       rss_partners / 2, rss100.policies, rss100.vmhwm_kb, rss100.index_bytes / 1024,
	       (double)rss100.policies / rss100.seconds);
	printf("  %6zu partners: %7zu policies  VmHWM %6ld kB  (index %zu kB, %.0f policies/s)\n",
	       rss_partners, rss200.policies, rss200.vmhwm_kb, rss200.index_bytes / 1024,
	       (double)rss200.policies / rss200.seconds);
	printf("RSS at %zu policies: %ld kB (target < %d kB)  %s\n", rss200.policies,
	       rss200.vmhwm_kb, TARGET_RSS_KB, rss200.vmhwm_kb < TARGET_RSS_KB ? "PASS" : "FAIL");
	fails += rss200.vmhwm_kb >= TARGET_RSS_KB;
	printf("\n%s: %d of 3 targets missed\n", fails ? "FAIL" : "PASS", fails);
	mm_spd_desired_free(d);
	free_table(table, partners);
	return 0;
fail:
	if (path[0])
		unlink(path);
	mm_spd_desired_free(d);
	free_table(table, partners);
	return 1;
}
