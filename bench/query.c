/* bench/query: the CSCF query socket of the real mmtrustd with 100k
 * prefixes (50,000 partners x 2 ranges, one IPv4 /24 and one IPv6 /64
 * each), against a bare Unix-socket server with the same framing measured
 * in the same run.
 *
 * The store is written directly with the policy library (one shared CA
 * made with OpenSSL, the partners built in memory, mm_table_apply and one
 * mm_store_commit), then build/mmtrustd starts on it in a fresh network
 * namespace (a forked child unshares CLONE_NEWNET; [spd] and [ike] off),
 * and the bench waits until `ping` reports every partner.
 *
 * The baseline ("echo server", a forked child) is a single-threaded poll
 * loop that reads up to 64 KiB at a time, answers every newline-terminated
 * line with one fixed JSON line the size of a real `inbound` answer, and
 * writes them out: the framing and system calls of the daemon, without
 * JSON, lookups or the event library.
 *
 * One client, for each server:
 *   ping-pong: one `inbound` request, wait for its answer, repeat
 *              (p50/p99 over PINGPONG requests after a warm-up);
 *   pipelined: PIPELINED `inbound` requests with ids and random sources,
 *              half inside some partner's range (1 in 4 of them IPv6),
 *              written in chunks with at most WINDOW unanswered while the
 *              answers are read; queries/s from the first write to the
 *              last answer.  The daemon's answers are then checked: in
 *              order, the id echoed, the partner the one expected.
 * Rounds are interleaved (echo, daemon, echo, daemon, ...) and the median
 * round decides PASS/FAIL; the best is shown too (this machine is shared).
 *
 *   build/bench/query [-n PARTNERS] [-r ROUNDS] [-p PINGPONG] [-q PIPELINED]
 *                     [-w WINDOW] [-k]     (-k: keep the temp dir, and the
 *                                           daemon running until Enter)
 *
 * Then libmmtrust, as a CSCF calls it, in the same run (ROUNDS rounds):
 *   over the socket (in-process answers off): p50/p99 of mmtrust_inbound;
 *   in-process (the snapshot the daemon writes): p50/p99 of each call
 *              timed alone, and answers/s of a tight loop on one thread,
 *              every answer checked against the partner its address was
 *              drawn from and that it came in-process;
 *   the floor: the daemon's LPM index (policy/lpm.c) over the same 100k
 *              prefixes, looked up with the address already parsed, and
 *              with the text parsed first (what any answer to a text
 *              question must do at least).
 *
 * Targets: daemon ping-pong p50 within 1.5x of the echo server's; pipelined
 * >= 300k queries/s; in-process inbound p50 under 1 us, >= 5 M answers/s
 * on one core, within 3x of the bare lookup of the same question (parse +
 * LPM; the ratio to the lookup of a parsed address is printed too).  Exit status 0 unless something failed to run or an
 * answer was wrong (a missed target is reported as FAIL, not an error). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "client/mmtrust.h"
#include "policy/addr.h"
#include "policy/ca.h"
#include "policy/lpm.h"
#include "policy/partner.h"
#include "policy/store.h"
#include "policy/table.h"

#define DEF_PARTNERS 50000
#define DEF_ROUNDS 3
#define DEF_PINGPONG 20000
#define DEF_PIPELINED 200000
#define DEF_WINDOW 4096
#define WARMUP 2000
#define NPP_REQ 8192          /* distinct ping-pong requests, cycled */
#define CHUNK (64 * 1024)     /* bytes per write, pipelined */
#define REQID_MIN 1000000u
#define TARGET_RATIO 1.5
#define TARGET_QPS 300000.0
#define TARGET_INPROC_P50_US 1.0
#define TARGET_INPROC_RATE 5e6
#define TARGET_INPROC_RATIO 3.0
#define INPROC_RATE_N 5000000
#define SEED UINT64_C(0x71756572792d6263)
/* Our CSCF prefixes, outside every partner's range, and the addresses the
 * requests arrive on. */
#define CSCF_PREFIXES "10.0.0.0/24, fd00:10::/64"
#define CSCF_V4_ADDR "10.0.0.5"
#define CSCF_V6_ADDR "fd00:10::5"

/* What the echo server answers: the size of a real inbound answer. */
static const char echo_answer[] =
	"{\"ok\":true,\"result\":{\"src\":\"20.17.42.9\",\"dst\":\"10.0.0.5\","
	"\"partner\":\"p04242.bench.example\","
	"\"kind\":\"ims\",\"agreement\":true,\"path\":\"seg\",\"enabled\":true,\"protected\":false,"
	"\"sa\":null,\"pai\":\"keep\",\"reason\":\"seg-trusted\"},\"id\":123456}\n";

static uint64_t rng_state = SEED;
static char tmpdir[] = "/tmp/mmtrust-bench-query-XXXXXX";
static pid_t daemon_pid, echo_pid;
static bool keep;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* ---- the store ---------------------------------------------------------- */

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* One self-signed EC P-256 CA, PEM (malloc'd). */
static char *make_ca_pem(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIO *bio = NULL;
	char *pem = NULL, *data;
	X509_NAME *name;
	long len;

	if (!key || !x)
		goto out;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)"bench-query-ca", -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key) ||
	    add_ext(x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(x, NID_subject_key_identifier, "hash") < 0 || !X509_sign(x, key, EVP_sha256()))
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (!bio || !PEM_write_bio_X509(bio, x))
		goto out;
	len = BIO_get_mem_data(bio, &data);
	pem = len > 0 ? strndup(data, (size_t)len) : NULL;
out:
	BIO_free(bio);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return pem;
}

/* Partner i: p%05d.bench.example, 20.x.y.0/24 (the i-th /24 from 20.0.0.0)
 * and 2001:db8:(i>>16):(i&0xffff)::/64.  Kinds, agreements and paths
 * vary so that the answers do. */
static void partner_v4(size_t i, struct mm_addr *a)
{
	uint32_t v = (20u << 24) + (uint32_t)i * 256;

	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	a->bytes[0] = v >> 24;
	a->bytes[1] = v >> 16;
	a->bytes[2] = v >> 8;
}

static void partner_v6(size_t i, struct mm_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET6;
	a->bytes[0] = 0x20;
	a->bytes[1] = 0x01;
	a->bytes[2] = 0x0d;
	a->bytes[3] = 0xb8;
	a->bytes[4] = (uint8_t)(i >> 24);
	a->bytes[5] = (uint8_t)(i >> 16);
	a->bytes[6] = (uint8_t)(i >> 8);
	a->bytes[7] = (uint8_t)i;
}

static struct mm_partner *make_partner(size_t i, const char *pem, const struct mm_ca_info *ca)
{
	struct mm_partner *p = mm_partner_new();

	if (!p)
		return NULL;
	snprintf(p->domain, sizeof(p->domain), "p%05zu.bench.example", i);
	p->kind = i % 4 == 3 ? MM_KIND_NON_IMS : MM_KIND_IMS;
	p->agreement = i % 3 != 0;
	p->path = p->kind == MM_KIND_IMS && i % 2 ? MM_PATH_SEG : MM_PATH_TUNNEL;
	p->enabled = i % 50 != 0;
	p->ranges = calloc(2, sizeof(*p->ranges));
	p->gateways = calloc(1, sizeof(*p->gateways));
	p->cas[0].pem = strdup(pem);
	p->n_cas = p->cas[0].pem ? 1 : 0;
	if (!p->ranges || !p->gateways || !p->cas[0].pem) {
		mm_partner_unref(p);
		return NULL;
	}
	p->n_ranges = 2;
	partner_v4(i, &p->ranges[0].addr);
	p->ranges[0].len = 24;
	partner_v6(i, &p->ranges[1].addr);
	p->ranges[1].len = 64;
	p->n_gateways = 1;
	if (mm_addr_parse("198.51.100.1", &p->gateways[0], "gateway", NULL) < 0) {
		mm_partner_unref(p);
		return NULL;
	}
	p->cas[0].info = *ca;
	return p;
}

static int write_store(const char *path, size_t n)
{
	struct mm_actor actor = { .uid = 0, .pid = getpid() };
	struct mm_table *empty = NULL, *t = NULL;
	struct mm_change *changes = NULL;
	struct mm_store *store = NULL;
	struct mm_ca_info ca;
	struct mm_err err = { 0 };
	char *pem = make_ca_pem();
	int r = -1;

	snprintf(actor.user, sizeof(actor.user), "bench");
	snprintf(actor.request, sizeof(actor.request), "bench.query");
	if (!pem || mm_ca_check(pem, time(NULL), &ca, "ca", &err) < 0) {
		fprintf(stderr, "query bench: CA: %s\n", pem ? err.msg : "cannot make one");
		goto out;
	}
	changes = calloc(n, sizeof(*changes));
	if (!changes)
		goto out;
	for (size_t i = 0; i < n; i++) {
		changes[i].op = MM_CHANGE_ADD;
		changes[i].after = make_partner(i, pem, &ca);
		if (!changes[i].after)
			goto out;
	}
	if (mm_table_new(REQID_MIN, REQID_MIN + 99999, &empty) < 0 ||
	    mm_table_apply(empty, changes, n, time(NULL), &t, &err) < 0 ||
	    mm_store_open(path, &store, &err) < 0 ||
	    mm_store_commit(store, changes, n, t, &actor, &err) < 0) {
		fprintf(stderr, "query bench: store: %s%s%s\n", err.field, err.field[0] ? ": " : "",
			err.msg);
		goto out;
	}
	r = 0;
out:
	mm_store_close(store);
	mm_table_free(t);
	mm_table_free(empty);
	mm_changes_free(changes, changes ? n : 0);
	free(pem);
	return r;
}

/* ---- processes ---------------------------------------------------------- */

static int unix_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct echo_client {
	int fd;
	char *out;
	size_t len, pos, cap;
};

/* The baseline server: read, answer each line with echo_answer, write. */
static void echo_serve(int lfd)
{
	enum { MAXC = 16 };
	struct echo_client c[MAXC];
	struct pollfd pfd[MAXC + 1];
	static char chunk[65536];
	const size_t alen = sizeof(echo_answer) - 1;

	for (int i = 0; i < MAXC; i++)
		c[i] = (struct echo_client){ .fd = -1 };
	for (;;) {
		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < MAXC; i++)
			pfd[i + 1] = (struct pollfd){
				.fd = c[i].fd,
				.events = (short)(POLLIN | (c[i].len > c[i].pos ? POLLOUT : 0)),
			};
		if (poll(pfd, MAXC + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			for (int i = 0; fd >= 0 && i <= MAXC; i++) {
				if (i == MAXC) {
					close(fd);
				} else if (c[i].fd < 0) {
					c[i] = (struct echo_client){ .fd = fd };
					break;
				}
			}
		}
		for (int i = 0; i < MAXC; i++) {
			struct echo_client *e = &c[i];
			bool dead = false;

			if (e->fd < 0 || !pfd[i + 1].revents)
				continue;
			if (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = recv(e->fd, chunk, sizeof(chunk), MSG_DONTWAIT);

				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
					dead = true;
				for (ssize_t k = 0; k < n; k++) {
					if (chunk[k] != '\n')
						continue;
					if (e->len + alen > e->cap) {
						size_t cap = e->cap ? e->cap * 2 : 65536;
						char *d;

						while (cap < e->len + alen)
							cap *= 2;
						d = realloc(e->out, cap);
						if (!d)
							_exit(1);
						e->out = d;
						e->cap = cap;
					}
					memcpy(e->out + e->len, echo_answer, alen);
					e->len += alen;
				}
			}
			while (!dead && e->pos < e->len) {
				ssize_t n = send(e->fd, e->out + e->pos, e->len - e->pos,
						 MSG_DONTWAIT | MSG_NOSIGNAL);

				if (n < 0) {
					dead = errno != EAGAIN && errno != EINTR;
					break;
				}
				e->pos += (size_t)n;
			}
			if (e->pos == e->len)
				e->pos = e->len = 0;
			if (dead) {
				close(e->fd);
				free(e->out);
				*e = (struct echo_client){ .fd = -1 };
			}
		}
	}
}

static pid_t start_echo(const char *path)
{
	int lfd = unix_listen(path);
	pid_t pid;

	if (lfd < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		echo_serve(lfd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

static pid_t start_daemon(const char *exe, const char *conf, const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		if (unshare(CLONE_NEWNET) < 0) {
			fprintf(stderr, "query bench: unshare(CLONE_NEWNET): %s\n", strerror(errno));
			_exit(127);
		}
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		execl(exe, exe, "--foreground", "--config", conf, (char *)NULL);
		fprintf(stderr, "query bench: exec %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	return pid;
}

static void stop(pid_t *pid)
{
	int status;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			return;
		}
		usleep(10000);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = 0;
}

/* The temp files, named once so that the signal handler can remove them. */
static const char *const tmp_names[] = {
	"store.db", "store.db-wal", "store.db-shm", "mmtrustd.conf", "daemon.log",
	"query.sock", "admin.sock", "echo.sock",
};
#define NTMP (sizeof(tmp_names) / sizeof(tmp_names[0]))
static char tmp_paths[NTMP][256];

static void remove_tmp(void)
{
	for (size_t i = 0; i < NTMP; i++)
		unlink(tmp_paths[i]);
	rmdir(tmpdir);
}

static void cleanup(void)
{
	stop(&daemon_pid);
	stop(&echo_pid);
	if (keep)
		printf("kept %s\n", tmpdir);
	else
		remove_tmp();
}

/* Interrupted: stop what we started (by PID), remove the files, go. */
static void on_signal(int sig)
{
	(void)sig;
	if (daemon_pid > 0)
		kill(daemon_pid, SIGTERM);
	if (echo_pid > 0)
		kill(echo_pid, SIGTERM);
	usleep(200000);
	remove_tmp();
	_exit(130);
}

/* ---- the client --------------------------------------------------------- */

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* One request, its answer (into buf, NUL-terminated, without the newline). */
static int roundtrip(int fd, const char *req, size_t len, char *buf, size_t size)
{
	size_t have = 0;

	if (send_all(fd, req, len) < 0)
		return -1;
	for (;;) {
		ssize_t k = recv(fd, buf + have, size - 1 - have, 0);

		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return -1;
		}
		have += (size_t)k;
		if (buf[have - 1] == '\n') {
			buf[have - 1] = '\0';
			return 0;
		}
		if (have == size - 1)
			return -1;
	}
}

struct reqs {
	char *data;         /* every request line, back to back */
	size_t *off;        /* n+1 offsets */
	int *partner;       /* the partner expected, -1: none */
	char (*src)[MM_ADDR_STRLEN];  /* each request's src as text */
	struct mm_addr *addr;         /* ... and parsed */
	bool *v6;
	size_t n;
};

/* n inbound requests with ids, half inside a random partner's range, each
 * arriving on a CSCF address ([local] cscf, CSCF_V4/CSCF_V6) of its family. */
static int make_reqs(struct reqs *r, size_t n, size_t partners)
{
	size_t cap = n * 100 + 1, len = 0;

	r->data = malloc(cap);
	r->off = malloc((n + 1) * sizeof(*r->off));
	r->partner = malloc(n * sizeof(*r->partner));
	r->src = malloc(n * sizeof(*r->src));
	r->addr = malloc(n * sizeof(*r->addr));
	r->v6 = malloc(n * sizeof(*r->v6));
	r->n = n;
	if (!r->data || !r->off || !r->partner || !r->src || !r->addr || !r->v6)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct mm_addr a;
		char src[MM_ADDR_STRLEN];
		uint64_t x = rng();
		bool v6 = x % 4 == 0, hit = (x >> 8) & 1;

		r->partner[i] = -1;
		if (hit) {
			size_t p = (size_t)(rng() % partners);

			r->partner[i] = (int)p;
			if (v6) {
				partner_v6(p, &a);
				for (int b = 8; b < 16; b++)
					a.bytes[b] = (uint8_t)rng();
			} else {
				partner_v4(p, &a);
				a.bytes[3] = (uint8_t)rng();
			}
		} else if (v6) {   /* 2001:db9::/32: no partner's */
			memset(&a, 0, sizeof(a));
			a.family = AF_INET6;
			a.bytes[0] = 0x20, a.bytes[1] = 0x01, a.bytes[2] = 0x0d, a.bytes[3] = 0xb9;
			for (int b = 4; b < 16; b++)
				a.bytes[b] = (uint8_t)rng();
		} else {           /* 100.64.0.0/10: no partner's */
			uint32_t v = (100u << 24) | (64u << 16) | (uint32_t)(rng() & 0x3fffff);

			memset(&a, 0, sizeof(a));
			a.family = AF_INET;
			a.bytes[0] = v >> 24, a.bytes[1] = v >> 16, a.bytes[2] = v >> 8, a.bytes[3] = v;
		}
		r->off[i] = len;
		len += (size_t)snprintf(r->data + len, cap - len,
					"{\"op\":\"inbound\",\"src\":\"%s\",\"dst\":\"%s\","
					"\"id\":%zu}\n",
					mm_addr_str(&a, src), v6 ? CSCF_V6_ADDR : CSCF_V4_ADDR, i);
		memcpy(r->src[i], src, sizeof(src));
		r->addr[i] = a;
		r->v6[i] = v6;
	}
	r->off[n] = len;
	return 0;
}

static void reqs_free(struct reqs *r)
{
	free(r->src);
	free(r->addr);
	free(r->v6);
	free(r->data);
	free(r->off);
	free(r->partner);
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* p50 and p99 in microseconds; -1 on error. */
static int pingpong(const char *sock, const struct reqs *r, size_t count, double *p50,
		    double *p99)
{
	double *lat = malloc(count * sizeof(*lat));
	char buf[4096];
	int fd = unix_connect(sock), rc = -1;

	if (fd < 0 || !lat)
		goto out;
	for (size_t i = 0; i < WARMUP + count; i++) {
		size_t k = i % r->n;
		double t = now();

		if (roundtrip(fd, r->data + r->off[k], r->off[k + 1] - r->off[k], buf,
			      sizeof(buf)) < 0)
			goto out;
		if (i >= WARMUP)
			lat[i - WARMUP] = (now() - t) * 1e6;
	}
	qsort(lat, count, sizeof(*lat), dbl_cmp);
	*p50 = lat[count / 2];
	*p99 = lat[(size_t)((double)count * 0.99)];
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(lat);
	return rc;
}

struct answers {
	char *data;   /* every answer line, NUL-terminated */
	size_t len, cap;
};

/* All requests, at most `window` unanswered; the answers kept in *a
 * (its buffer reused from run to run, so that page faults of a fresh
 * one are not timed).  Queries/s, or -1. */
static double pipelined(const char *sock, const struct reqs *r, size_t window,
			struct answers *a)
{
	size_t sent = 0, nsent = 0, answers = 0, len = 0, cap = a->cap;
	char *ans = a->data;
	int fd = unix_connect(sock);
	double t, qps = -1;

	if (fd < 0 || !ans || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		goto out;
	t = now();
	while (answers < r->n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		size_t limit = r->off[answers + window < r->n ? answers + window : r->n];

		if (sent < limit)
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, 10000) <= 0) {
			fprintf(stderr, "query bench: no progress for 10 s (%zu answers)\n", answers);
			goto out;
		}
		if (pfd.revents & POLLOUT) {
			size_t n = limit - sent < CHUNK ? limit - sent : CHUNK;
			ssize_t k = send(fd, r->data + sent, n, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (k < 0 && errno != EAGAIN && errno != EINTR)
				goto out;
			if (k > 0)
				sent += (size_t)k;
			while (nsent < r->n && r->off[nsent + 1] <= sent)
				nsent++;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t k;

			if (cap - len < 65536 + 1) {
				char *d = realloc(ans, cap * 2);

				if (!d)
					goto out;
				ans = d;
				cap *= 2;
			}
			k = recv(fd, ans + len, 65536, MSG_DONTWAIT);
			if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
				fprintf(stderr, "query bench: connection closed after %zu answers\n",
					answers);
				goto out;
			}
			for (ssize_t i = 0; i < k; i++)
				answers += ans[len + (size_t)i] == '\n';
			if (k > 0)
				len += (size_t)k;
		}
	}
	qps = (double)r->n / (now() - t);
	ans[len] = '\0';
out:
	a->data = ans;
	a->cap = cap;
	a->len = len;
	if (fd >= 0)
		close(fd);
	return qps;
}

/* Every answer in order, with its id and the partner expected. */
static size_t check_answers(const struct reqs *r, const char *ans)
{
	size_t bad = 0;
	const char *line = ans;

	for (size_t i = 0; i < r->n; i++) {
		const char *end = strchr(line, '\n'), *p;
		char want[64], id[40];
		bool ok;

		if (!end)
			return bad + r->n - i;
		snprintf(id, sizeof(id), ",\"id\":%zu}", i);
		if (r->partner[i] < 0)
			snprintf(want, sizeof(want), "\"partner\":null,");
		else
			snprintf(want, sizeof(want), "\"partner\":\"p%05d.bench.example\",",
				 r->partner[i]);
		p = strstr(line, want);
		ok = p && p < end && (size_t)(end - line) > strlen(id) &&
		     !memcmp(end - strlen(id), id, strlen(id)) &&
		     !strncmp(line, "{\"ok\":true,", 11);
		if (!ok && bad++ < 3)
			fprintf(stderr, "query bench: answer %zu: %.*s\n", i, (int)(end - line), line);
		line = end + 1;
	}
	return bad;
}

/* Wait until the daemon answers ping with every partner loaded. */
static int wait_ready(const char *sock, size_t partners, double timeout)
{
	char want[64], buf[4096];
	double deadline = now() + timeout;
	static const char ping[] = "{\"op\":\"ping\"}\n";

	snprintf(want, sizeof(want), "\"partners\":%zu", partners);
	while (now() < deadline) {
		int fd = unix_connect(sock), status;

		if (fd >= 0) {
			int r = roundtrip(fd, ping, sizeof(ping) - 1, buf, sizeof(buf));

			close(fd);
			if (r == 0 && strstr(buf, want))
				return 0;
			if (r == 0) {
				fprintf(stderr, "query bench: ping answered %s\n", buf);
				return -1;
			}
		}
		if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
			daemon_pid = 0;
			fprintf(stderr, "query bench: mmtrustd exited (status %d)\n", status);
			return -1;
		}
		usleep(20000);
	}
	fprintf(stderr, "query bench: mmtrustd not ready after %.0f s\n", timeout);
	return -1;
}

static long vmrss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* User + system CPU seconds of a process so far. */
static double cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	/* after "pid (comm)": state is field 3, utime 14, stime 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void daemon_path(char *buf, size_t size)
{
	const char *env = getenv("MMTRUSTD");
	char exe[4000];
	ssize_t n;
	char *slash;

	if (env) {
		snprintf(buf, size, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	/* build/bench/query -> build/mmtrustd */
	for (int i = 0; i < 2 && (slash = strrchr(exe, '/')); i++)
		*slash = '\0';
	snprintf(buf, size, "%s/mmtrustd", exe[0] ? exe : "build");
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), dbl_cmp);
	return v[n / 2];
}

static double best_min(const double *v, int n)
{
	double b = v[0];

	for (int i = 1; i < n; i++)
		b = v[i] < b ? v[i] : b;
	return b;
}

static double best_max(const double *v, int n)
{
	double b = v[0];

	for (int i = 1; i < n; i++)
		b = v[i] > b ? v[i] : b;
	return b;
}

/* ---- in-process answers (libmmtrust's snapshot) ---- */

struct inproc {
	double sock50, sock99;      /* libmmtrust over the socket, us */
	double in50, in99;          /* libmmtrust in-process, us */
	double in_rate;             /* in-process answers/s, one core */
	double lpm_ns, parse_lpm_ns;  /* the floors, ns per lookup */
	size_t wrong, not_inproc;
};

static double ns_per(double t0, size_t n)
{
	return (now() - t0) * 1e9 / (double)n;
}

static const char *expected_domain(int p, char buf[64])
{
	if (p < 0)
		return "";
	snprintf(buf, 64, "p%05d.bench.example", p);
	return buf;
}

static int inprocess(const char *sock, const struct reqs *r, size_t partners, size_t npp,
		     size_t nrate, struct inproc *ret)
{
	struct mmtrust *in = NULL, *net = NULL;
	struct mmtrust_answer a;
	struct mm_lpm_entry *e = calloc(partners * 2, sizeof(*e));
	struct mm_lpm *lpm = NULL;
	double *lat = malloc(npp * sizeof(*lat)), t0;
	volatile uintptr_t sink = 0;
	char dom[64];
	int rc = -1;

	memset(ret, 0, sizeof(*ret));
	if (!e || !lat || mmtrust_connect(sock, 5000, &in) < 0 ||
	    mmtrust_connect(sock, 5000, &net) < 0)
		goto out;
	mmtrust_set_snapshot(net, 0);
	/* The socket through the library, as a CSCF without the snapshot. */
	for (size_t i = 0; i < WARMUP + npp; i++) {
		size_t k = i % r->n;
		double t = now();

		if (mmtrust_inbound(net, r->src[k], r->v6[k] ? CSCF_V6_ADDR : CSCF_V4_ADDR, 0, &a) < 0)
			goto out;
		if (i >= WARMUP)
			lat[i - WARMUP] = (now() - t) * 1e6;
	}
	qsort(lat, npp, sizeof(*lat), dbl_cmp);
	ret->sock50 = lat[npp / 2];
	ret->sock99 = lat[(size_t)((double)npp * 0.99)];
	/* In-process: each answer timed, then checked against the partner
	 * the address was drawn from. */
	for (size_t i = 0; i < WARMUP + npp; i++) {
		size_t k = i % r->n;
		double t = now();
		int x = mmtrust_inbound(in, r->src[k], r->v6[k] ? CSCF_V6_ADDR : CSCF_V4_ADDR, 0, &a);

		if (i >= WARMUP)
			lat[i - WARMUP] = (now() - t) * 1e6;
		if (x < 0)
			goto out;
		if (i < WARMUP)
			continue;
		ret->not_inproc += strcmp(a.source, "snapshot") != 0;
		ret->wrong += strcmp(a.partner, expected_domain(r->partner[k], dom)) != 0;
	}
	qsort(lat, npp, sizeof(*lat), dbl_cmp);
	ret->in50 = lat[npp / 2];
	ret->in99 = lat[(size_t)((double)npp * 0.99)];
	/* Answers/s on this one thread, untimed per call. */
	t0 = now();
	for (size_t i = 0; i < nrate; i++) {
		size_t k = i % r->n;

		if (mmtrust_inbound(in, r->src[k], r->v6[k] ? CSCF_V6_ADDR : CSCF_V4_ADDR, 0, &a) < 0)
			goto out;
		sink += (uintptr_t)a.pai;
	}
	ret->in_rate = (double)nrate / (now() - t0);
	/* The floors: the daemon's own LPM index over the same prefixes,
	 * looked up with the address already parsed, and parsed from text. */
	for (size_t i = 0; i < partners; i++) {
		partner_v4(i, &e[2 * i].prefix.addr);
		e[2 * i].prefix.len = 24;
		partner_v6(i, &e[2 * i + 1].prefix.addr);
		e[2 * i + 1].prefix.len = 64;
		e[2 * i].value = e[2 * i + 1].value = (void *)(uintptr_t)(i + 1);
	}
	if (mm_lpm_new(e, partners * 2, &lpm) < 0)
		goto out;
	t0 = now();
	for (size_t i = 0; i < nrate; i++)
		sink += (uintptr_t)mm_lpm_lookup(lpm, &r->addr[i % r->n], NULL);
	ret->lpm_ns = ns_per(t0, nrate);
	t0 = now();
	for (size_t i = 0; i < nrate; i++) {
		struct mm_addr x;

		if (mm_addr_parse(r->src[i % r->n], &x, "src", NULL) == 0)
			sink += (uintptr_t)mm_lpm_lookup(lpm, &x, NULL);
	}
	ret->parse_lpm_ns = ns_per(t0, nrate);
	(void)sink;
	rc = 0;
out:
	mm_lpm_free(lpm);
	mmtrust_close(in);
	mmtrust_close(net);
	free(lat);
	free(e);
	return rc;
}

int main(int argc, char **argv)
{
	size_t partners = DEF_PARTNERS, npp = DEF_PINGPONG, npipe = DEF_PIPELINED;
	size_t window = DEF_WINDOW;
	int rounds = DEF_ROUNDS, c, rc = 1;
	char exe[4096], store[256], conf[256], log[256], qsock[256], esock[256], asock[256];
	struct reqs pp = { 0 }, pipe_reqs = { 0 };
	struct answers ans = { 0 };
	double t, store_s, start_s, load[3] = { 0 };
	double e50[16], e99[16], d50[16], d99[16], eq[16], dq[16], dcpu[16], ecpu[16];
	size_t bad = 0;
	FILE *f;

	while ((c = getopt(argc, argv, "n:r:p:q:w:k")) != -1) {
		switch (c) {
		case 'n': partners = strtoul(optarg, NULL, 10); break;
		case 'r': rounds = atoi(optarg); break;
		case 'p': npp = strtoul(optarg, NULL, 10); break;
		case 'q': npipe = strtoul(optarg, NULL, 10); break;
		case 'w': window = strtoul(optarg, NULL, 10); break;
		case 'k': keep = true; break;
		default:
			fprintf(stderr, "usage: %s [-n PARTNERS] [-r ROUNDS] [-p PINGPONG] "
				"[-q PIPELINED] [-w WINDOW] [-k]\n", argv[0]);
			return 2;
		}
	}
	if (partners < 1 || partners > 100000 || rounds < 1 || rounds > 16 || npp < 100 ||
	    npipe < 1000 || window < 1) {
		fprintf(stderr, "query bench: PARTNERS 1..100000, ROUNDS 1..16, PINGPONG >= 100, "
			"PIPELINED >= 1000, WINDOW >= 1\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	daemon_path(exe, sizeof(exe));
	if (access(exe, X_OK) < 0) {
		fprintf(stderr, "query bench: %s: %s (run make first, or set MMTRUSTD)\n", exe,
			strerror(errno));
		return 1;
	}
	if (!mkdtemp(tmpdir)) {
		perror("query bench: mkdtemp");
		return 1;
	}
	for (size_t i = 0; i < NTMP; i++)
		path_in(tmp_paths[i], sizeof(tmp_paths[i]), tmp_names[i]);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	path_in(store, sizeof(store), "store.db");
	path_in(conf, sizeof(conf), "mmtrustd.conf");
	path_in(log, sizeof(log), "daemon.log");
	path_in(qsock, sizeof(qsock), "query.sock");
	path_in(asock, sizeof(asock), "admin.sock");
	path_in(esock, sizeof(esock), "echo.sock");
	f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = -1;
		fclose(f);
	}
	printf("query bench: %zu partners x 2 ranges (%zu prefixes), %ld CPUs, load %.2f; "
	       "%d rounds of %zu ping-pong and %zu pipelined (window %zu) per server\n",
	       partners, partners * 2, sysconf(_SC_NPROCESSORS_ONLN), load[0], rounds, npp, npipe,
	       window);
	fflush(stdout);

	t = now();
	if (write_store(store, partners) < 0)
		return 1;
	store_s = now() - t;
	f = fopen(conf, "we");
	if (!f)
		return 1;
	fprintf(f, "[daemon]\nstore = %s\nadmin_socket = %s\nquery_socket = %s\n"
		"[reqid]\nmin = %u\nmax = %u\n[local]\ncscf = %s\n[spd]\nenabled = no\n"
		"[ike]\nenabled = no\n",
		store, asock, qsock, REQID_MIN, REQID_MIN + 99999, CSCF_PREFIXES);
	fclose(f);
	t = now();
	daemon_pid = start_daemon(exe, conf, log);
	if (daemon_pid < 0 || wait_ready(qsock, partners, 300) < 0) {
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "tail -5 '%s' >&2", log);
		if (system(cmd) != 0)
			fprintf(stderr, "query bench: no daemon log\n");
		return 1;
	}
	start_s = now() - t;
	printf("    store written in %.1f s; mmtrustd (pid %d, own network namespace) ready in "
	       "%.1f s, RSS %.1f MB\n", store_s, (int)daemon_pid, start_s,
	       (double)vmrss_kb(daemon_pid) / 1024);
	echo_pid = start_echo(esock);
	if (echo_pid < 0) {
		perror("query bench: echo server");
		return 1;
	}
	if (make_reqs(&pp, NPP_REQ, partners) < 0 || make_reqs(&pipe_reqs, npipe, partners) < 0)
		return 1;
	fflush(stdout);

	ans.cap = npipe * 256 + 65537;
	ans.data = malloc(ans.cap);
	if (!ans.data)
		return 1;
	memset(ans.data, 0, ans.cap);
	/* Warm-up (not timed): each server's buffers and heap at full size once. */
	if (pipelined(esock, &pipe_reqs, window, &ans) < 0 ||
	    pipelined(qsock, &pipe_reqs, window, &ans) < 0) {
		fprintf(stderr, "query bench: pipelined warm-up failed\n");
		goto out;
	}
	for (int i = 0; i < rounds; i++) {
		if (pingpong(esock, &pp, npp, &e50[i], &e99[i]) < 0 ||
		    pingpong(qsock, &pp, npp, &d50[i], &d99[i]) < 0) {
			fprintf(stderr, "query bench: ping-pong failed\n");
			goto out;
		}
		ecpu[i] = cpu_s(echo_pid);
		eq[i] = pipelined(esock, &pipe_reqs, window, &ans);
		ecpu[i] = (cpu_s(echo_pid) - ecpu[i]) * 1e6 / (double)npipe;
		dcpu[i] = cpu_s(daemon_pid);
		dq[i] = pipelined(qsock, &pipe_reqs, window, &ans);
		dcpu[i] = (cpu_s(daemon_pid) - dcpu[i]) * 1e6 / (double)npipe;
		if (eq[i] < 0 || dq[i] < 0) {
			fprintf(stderr, "query bench: pipelined failed\n");
			goto out;
		}
		bad += check_answers(&pipe_reqs, ans.data);
		printf("    round %d: ping-pong p50/p99 echo %.1f/%.1f us, mmtrustd %.1f/%.1f us; "
		       "pipelined echo %.0fk/s, mmtrustd %.0fk/s (answers %.1f MB); "
		       "server CPU per query: echo %.2f us, mmtrustd %.2f us (busy %.0f%%)\n",
		       i + 1, e50[i], e99[i], d50[i], d99[i], eq[i] / 1e3, dq[i] / 1e3,
		       (double)ans.len / 1e6, ecpu[i], dcpu[i], dcpu[i] * dq[i] / 1e4);
		fflush(stdout);
	}
	{
		double ratios[16], ratio, qps, ratio_best, qps_best;

		for (int i = 0; i < rounds; i++)
			ratios[i] = d50[i] / e50[i];
		ratio_best = best_min(ratios, rounds);
		qps_best = best_max(dq, rounds);
		ratio = median(ratios, rounds);
		qps = median(dq, rounds);
		printf("ping-pong (median of %d rounds): echo server p50 %.1f us p99 %.1f us; "
		       "mmtrustd p50 %.1f us p99 %.1f us; ratio %.2fx (best round %.2fx)\n",
		       rounds, median(e50, rounds), median(e99, rounds), median(d50, rounds),
		       median(d99, rounds), ratio, ratio_best);
		printf("pipelined (median): mmtrustd %.0f queries/s (best %.0f), echo server %.0f "
		       "lines/s; mmtrustd at %.0f%% of the echo server\n",
		       qps, qps_best, median(eq, rounds), 100.0 * qps / median(eq, rounds));
		printf("mmtrustd CPU per pipelined query (median): %.2f us, i.e. at most ~%.0fk "
		       "queries/s on one core; echo server %.2f us\n", median(dcpu, rounds),
		       1e3 / median(dcpu, rounds), median(ecpu, rounds));
		printf("answers checked: %zu pipelined answers, %zu wrong\n", npipe * (size_t)rounds,
		       bad);
		printf("target: ping-pong p50 within %.1fx of the echo server: %s (%.2fx)\n",
		       TARGET_RATIO, ratio <= TARGET_RATIO ? "PASS" : "FAIL", ratio);
		printf("target: pipelined >= %.0fk queries/s: %s (%.0fk/s)\n", TARGET_QPS / 1e3,
		       qps >= TARGET_QPS ? "PASS" : "FAIL", qps / 1e3);
	}
	{
		struct inproc ip[16];
		double s50[16], s99[16], i50[16], i99[16], rate[16], lpm[16], plpm[16], ratio, r50;
		size_t wrong = 0, not_in = 0;

		for (int i = 0; i < rounds; i++) {
			if (inprocess(qsock, &pp, partners, npp * 10, INPROC_RATE_N, &ip[i]) < 0) {
				fprintf(stderr, "query bench: in-process run failed\n");
				goto out;
			}
			s50[i] = ip[i].sock50, s99[i] = ip[i].sock99;
			i50[i] = ip[i].in50, i99[i] = ip[i].in99;
			rate[i] = ip[i].in_rate, lpm[i] = ip[i].lpm_ns, plpm[i] = ip[i].parse_lpm_ns;
			wrong += ip[i].wrong;
			not_in += ip[i].not_inproc;
			printf("    in-process round %d: libmmtrust over the socket p50/p99 %.1f/%.1f us; "
			       "in-process p50/p99 %.3f/%.3f us, %.2f M answers/s; floor: LPM %.0f ns, "
			       "parse + LPM %.0f ns\n", i + 1, s50[i], s99[i], i50[i], i99[i],
			       rate[i] / 1e6, lpm[i], plpm[i]);
			fflush(stdout);
		}
		r50 = median(i50, rounds);
		ratio = 1e9 / median(rate, rounds) / median(lpm, rounds);
		printf("in-process (median of %d rounds, %zu prefixes): libmmtrust over the socket "
		       "p50 %.1f us p99 %.1f us; in-process p50 %.3f us p99 %.3f us, %.2f M "
		       "answers/s on one core (%.0f ns each); bare LPM lookup %.0f ns (parse + "
		       "lookup %.0f ns); in-process at %.2fx the bare lookup, %.2fx parse + lookup; "
		       "%.0fx faster than the socket\n", rounds, partners * 2, median(s50, rounds),
		       median(s99, rounds), r50, median(i99, rounds), median(rate, rounds) / 1e6,
		       1e9 / median(rate, rounds), median(lpm, rounds), median(plpm, rounds), ratio,
		       1e9 / median(rate, rounds) / median(plpm, rounds),
		       median(s50, rounds) / r50);
		printf("in-process answers checked: %zu, %zu wrong, %zu not in-process\n",
		       npp * 10 * (size_t)rounds, wrong, not_in);
		printf("target: in-process inbound p50 under %.1f us: %s (%.3f us)\n",
		       TARGET_INPROC_P50_US, r50 < TARGET_INPROC_P50_US ? "PASS" : "FAIL", r50);
		printf("target: at least %.0f M in-process answers/s on one core: %s (%.2f M/s)\n",
		       TARGET_INPROC_RATE / 1e6,
		       median(rate, rounds) >= TARGET_INPROC_RATE ? "PASS" : "FAIL",
		       median(rate, rounds) / 1e6);
		{
			double pratio = 1e9 / median(rate, rounds) / median(plpm, rounds);

			printf("target: in-process within %.0fx of the bare lookup of the same question "
			       "(its text address parsed, then the LPM index): %s (%.2fx; against the "
			       "lookup of an address already parsed %.1fx)\n", TARGET_INPROC_RATIO,
			       pratio <= TARGET_INPROC_RATIO ? "PASS" : "FAIL", pratio, ratio);
		}
		bad += wrong + not_in;
	}
	rc = bad ? 1 : 0;
	if (keep) {
		printf("mmtrustd pid %d still running on %s; Enter to stop\n", (int)daemon_pid, qsock);
		fflush(stdout);
		getchar();
	}
out:
	free(ans.data);
	reqs_free(&pp);
	reqs_free(&pipe_reqs);
	return rc;
}
