/* libmmtrust's in-process answers from mmtrustd's snapshot: snapshot.h
 * here says how the files are read, policy/snapshot.h what they hold. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"
#include "policy/snapshot.h"

/* Tries of the files: while the state in use is superseded (a new one
 * comes within the daemon's loop iteration) and while none is usable. */
#define RETRY_SUPERSEDED_MS 2
#define RETRY_MS 200
/* Larger files are not read: no table the daemon writes comes near. */
#define MAX_FILE (1ull << 30)

struct file {
	void *buf;             /* private copy, 8-aligned (malloc) */
	size_t len;
	dev_t dev;
	ino_t ino;
};

struct mmtrust_snap {
	char path[108], table_path[120];
	uid_t owner;
	bool owner_known;
	int max_age_ms;        /* 0: off */
	struct file table, state;
	struct mm_snap_table t;
	struct mm_snap_state s;
	bool ready;            /* t and s are checked and go together */
	const struct mm_snap_state_hdr *live;  /* the state file's header, shared */
	uint64_t next_try_ms;
	char last_dst[MM_ADDR_STRLEN];  /* parse_dst's cache */
	struct mm_addr last_dst_addr;
	char last_dst_echo[MM_ADDR_STRLEN];
	bool last_dst_ok;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct mmtrust_snap *mmtrust__snap_new(void)
{
	struct mmtrust_snap *s = calloc(1, sizeof(*s));

	if (s)
		s->max_age_ms = MMTRUST_SNAPSHOT_MAX_AGE_MS;
	return s;
}

static void file_clear(struct file *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

static void table_clear(struct mmtrust_snap *s)
{
	file_clear(&s->table);
	free(s->t.v4_start);
	free(s->t.v6_start);
	memset(&s->t, 0, sizeof(s->t));
}

static void drop(struct mmtrust_snap *s)
{
	if (s->live)
		munmap((void *)s->live, sizeof(*s->live));
	s->live = NULL;
	s->ready = false;
	file_clear(&s->state);
}

void mmtrust__snap_free(struct mmtrust_snap *s)
{
	if (!s)
		return;
	drop(s);
	table_clear(s);
	free(s);
}

void mmtrust__snap_set_path(struct mmtrust_snap *s, const char *path, uid_t owner)
{
	if (!path)
		path = "";
	if (strcmp(path, s->path) || s->owner != owner || !s->owner_known) {
		drop(s);
		table_clear(s);
		s->next_try_ms = 0;
	}
	if (strlen(path) + 7 > sizeof(s->path))
		path = "";  /* not one the daemon writes */
	snprintf(s->path, sizeof(s->path), "%s", path);
	snprintf(s->table_path, sizeof(s->table_path), "%s.table", path);
	s->owner = owner;
	s->owner_known = true;
}

void mmtrust__snap_set_max_age(struct mmtrust_snap *s, int max_age_ms)
{
	s->max_age_ms = max_age_ms < 0 ? MMTRUST_SNAPSHOT_MAX_AGE_MS : max_age_ms;
	if (!s->max_age_ms)
		drop(s);
}

int mmtrust__snap_enabled(const struct mmtrust_snap *s)
{
	return s->max_age_ms != 0;
}

int mmtrust__snap_has_path(const struct mmtrust_snap *s)
{
	return s->owner_known;
}

uint64_t mmtrust__snap_generation(const struct mmtrust_snap *s)
{
	return s->ready ? s->s.generation : 0;
}

/* Open path as one of the daemon's files: a regular file owned by the
 * daemon's user, writable by nobody else.  With ret_map, its header
 * (hdr bytes) is mapped shared into *ret_map.  -errno. */
static int read_file(const struct mmtrust_snap *s, const char *path, size_t hdr,
		     struct file *ret, const void **ret_map)
{
	struct stat st;
	struct file f = { 0 };
	size_t done = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_uid != s->owner || (st.st_mode & 022))
		r = -EPERM;
	else if ((uint64_t)st.st_size < hdr || (uint64_t)st.st_size > MAX_FILE)
		r = -EBADMSG;
	if (r == 0) {
		f.len = st.st_size;
		f.buf = malloc(f.len);
		f.dev = st.st_dev;
		f.ino = st.st_ino;
		if (!f.buf)
			r = -ENOMEM;
	}
	while (r == 0 && done < f.len) {
		ssize_t n = pread(fd, (char *)f.buf + done, f.len - done, done);

		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n == 0)
			r = -EBADMSG;  /* shorter than fstat said: not what we checked */
		else if (n > 0)
			done += n;
	}
	if (r == 0 && ret_map) {
		void *m = mmap(NULL, hdr, PROT_READ, MAP_SHARED, fd, 0);

		if (m == MAP_FAILED)
			r = -errno;
		else
			*ret_map = m;
	}
	close(fd);
	if (r < 0) {
		free(f.buf);
		return r;
	}
	*ret = f;
	return 0;
}

static bool fresh(const struct mmtrust_snap *s, const struct mm_snap_state_hdr *h, uint64_t now)
{
	uint64_t hb = __atomic_load_n(&h->heartbeat_ms, __ATOMIC_ACQUIRE);

	/* Older than the bound, or ahead of our clock by more than it (the
	 * coarse clock lags the daemon's by a tick; more is no heartbeat of
	 * this host's clock). */
	return hb + (uint64_t)s->max_age_ms >= now && hb <= now + (uint64_t)s->max_age_ms;
}

static bool current(const struct mm_snap_state_hdr *h)
{
	return __atomic_load_n(&h->state, __ATOMIC_ACQUIRE) == MM_SNAP_CURRENT;
}

/* Read the files again.  0 when a checked, current and fresh pair is in
 * use afterwards. */
static int reload(struct mmtrust_snap *s, uint64_t now)
{
	struct file st = { 0 }, tb = { 0 };
	const void *map = NULL;
	struct mm_snap_table t;
	struct mm_snap_state ss;
	uint64_t table_id;
	int r;

	r = read_file(s, s->path, sizeof(struct mm_snap_state_hdr), &st, &map);
	if (r < 0)
		goto fail;
	if (s->ready && st.dev == s->state.dev && st.ino == s->state.ino) {
		/* The same file: nothing newer yet. */
		munmap((void *)map, sizeof(struct mm_snap_state_hdr));
		file_clear(&st);
		r = -EAGAIN;
		goto fail;
	}
	memcpy(&table_id, (char *)st.buf + offsetof(struct mm_snap_state_hdr, table_id),
	       sizeof(table_id));
	if (!s->table.buf || s->t.table_id != table_id) {
		r = read_file(s, s->table_path, sizeof(struct mm_snap_table_hdr), &tb, NULL);
		if (r == 0)
			r = mm_snap_table_load(tb.buf, tb.len, &t, NULL);
		if (r == 0)
			r = mm_snap_table_index(&t);
		if (r < 0)
			goto fail_state;
		table_clear(s);
		s->table = tb;
		s->t = t;
		tb.buf = NULL;
		s->ready = false;
	}
	r = mm_snap_state_load(st.buf, st.len, &s->t, &ss, NULL);
	if (r < 0)
		goto fail_state;
	if (!current(map) || !fresh(s, map, now)) {
		r = -EAGAIN;
		goto fail_state;
	}
	drop(s);
	s->state = st;
	s->s = ss;
	s->live = map;
	s->ready = true;
	return 0;
fail_state:
	munmap((void *)map, sizeof(struct mm_snap_state_hdr));
	file_clear(&st);
	file_clear(&tb);
fail:
	if (s->ready && (!current(s->live) || !fresh(s, s->live, now)))
		drop(s);
	return r;
}

/* Whether answers may come from the pair in use now. */
static bool usable(struct mmtrust_snap *s)
{
	uint64_t now;
	bool superseded;

	if (!s->max_age_ms || !s->path[0])
		return false;
	now = now_ms();
	if (s->ready && current(s->live) && fresh(s, s->live, now))
		return true;
	if (now < s->next_try_ms)
		return false;
	/* Superseded by a live daemon: the next state is a moment away.
	 * Stale or absent: the daemon is gone or busy; look now and then. */
	superseded = s->ready && !current(s->live) && fresh(s, s->live, now);
	if (reload(s, now) == 0)
		return true;
	s->next_try_ms = now + (superseded ? RETRY_SUPERSEDED_MS : RETRY_MS);
	return false;
}

/* snprintf's "%s" without its cost (most of an answer's time was
 * formatting): at most size - 1 bytes, always terminated.  src is always
 * terminated (static words, and strings the loader checked). */
static void copy(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n > size - 1)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void partner_facts(struct mmtrust_answer *a, const struct mm_snap_answer *x)
{
	const struct mm_snap_partner *p = x->partner;

	if (!p)
		return;
	copy(a->partner, sizeof(a->partner), p->domain);
	copy(a->kind, sizeof(a->kind), mm_kind_name(p->kind));
	copy(a->path, sizeof(a->path), mm_path_name(p->path));
	a->agreement = p->agreement;
	a->enabled = p->enabled;
}

/* Every member of the answer set, without clearing all of its kilobyte
 * (a string is "" by its first byte; bytes after a NUL are not part of
 * it). */
static void blank(struct mmtrust_answer *a)
{
	a->pai = MMTRUST_PAI_STRIP;
	a->reason[0] = a->partner[0] = a->kind[0] = a->path[0] = a->tunnel[0] = '\0';
	a->remote_id[0] = a->direction[0] = a->dst[0] = a->src[0] = a->domain[0] = '\0';
	a->agreement = a->enabled = a->protected_ = a->trusted = 0;
	a->reqid = a->spi_in = a->spi_out = 0;
}

static void decision(struct mmtrust_answer *a, const struct mm_snap_answer *x)
{
	a->pai = x->dec.pai == MM_PAI_KEEP ? MMTRUST_PAI_KEEP : MMTRUST_PAI_STRIP;
	copy(a->reason, sizeof(a->reason), x->dec.reason);
	memcpy(a->source, "snapshot", sizeof("snapshot"));
}

/* The canonical text of an address the daemon echoes: IPv4 text that
 * parsed is already canonical (inet_pton takes only the dotted quad), so
 * it is copied; anything else is formatted (daemon/query.c addr_text). */
static void echo(char *dst, size_t size, const char *given, const struct mm_addr *a)
{
	char buf[MM_ADDR_STRLEN];

	if (a->family == AF_INET && !strchr(given, ':'))
		copy(dst, size, given);
	else
		copy(dst, size, mm_addr_str(a, buf));
}

/* The CSCF asks about the same few local addresses all the time: the
 * last dst is kept parsed. */
static int parse_dst(struct mmtrust_snap *s, const char *dst, struct mm_addr *ret)
{
	size_t n = strnlen(dst, sizeof(s->last_dst));

	if (n < sizeof(s->last_dst) && s->last_dst_ok && !memcmp(dst, s->last_dst, n + 1)) {
		*ret = s->last_dst_addr;
		return 0;
	}
	s->last_dst_ok = false;
	if (mm_addr_parse(dst, ret, "dst", NULL) < 0)
		return -EINVAL;
	if (n < sizeof(s->last_dst)) {
		memcpy(s->last_dst, dst, n + 1);
		s->last_dst_addr = *ret;
		echo(s->last_dst_echo, sizeof(s->last_dst_echo), dst, ret);
		s->last_dst_ok = true;
	}
	return 0;
}

int mmtrust__snap_inbound(struct mmtrust_snap *s, const char *src, const char *dst, uint32_t spi,
			  struct mmtrust_answer *ret)
{
	struct mm_addr sa, da;
	struct mm_snap_answer x;

	/* Anything the daemon would refuse, it refuses itself. */
	if (!s || !src || mm_addr_parse(src, &sa, "src", NULL) < 0 ||
	    (dst && parse_dst(s, dst, &da) < 0) || !usable(s) ||
	    mm_snap_inbound(&s->t, &s->s, &sa, dst ? &da : NULL, spi, &x) < 0)
		return -EAGAIN;
	blank(ret);
	decision(ret, &x);
	partner_facts(ret, &x);
	ret->protected_ = x.dec.protected_;
	if (x.tunnel) {
		ret->reqid = x.tunnel->reqid;
		ret->spi_in = x.tunnel->spi_in;
		ret->spi_out = x.tunnel->spi_out;
		copy(ret->remote_id, sizeof(ret->remote_id), x.tunnel->remote_id);
	}
	echo(ret->src, sizeof(ret->src), src, &sa);
	if (dst && s->last_dst_ok)
		copy(ret->dst, sizeof(ret->dst), s->last_dst_echo);
	else if (dst)
		echo(ret->dst, sizeof(ret->dst), dst, &da);
	return 0;
}

int mmtrust__snap_outbound(struct mmtrust_snap *s, const char *domain, const char *dst,
			   int privacy_id, struct mmtrust_answer *ret)
{
	char canon[MM_DOMAIN_MAX + 1], buf[MM_ADDR_STRLEN];
	struct mm_addr da;
	struct mm_snap_answer x;
	const char *tunnel;

	if (!s || !domain == !dst || (domain && mm_domain_canon(domain, canon, "domain", NULL) < 0) ||
	    (dst && mm_addr_parse(dst, &da, "dst", NULL) < 0) || !usable(s) ||
	    mm_snap_outbound(&s->t, &s->s, domain ? canon : NULL, dst ? &da : NULL, privacy_id != 0,
			     &x) < 0)
		return -EAGAIN;
	blank(ret);
	decision(ret, &x);
	partner_facts(ret, &x);
	ret->trusted = x.dec.trusted;
	tunnel = !x.partner || x.partner->path == MM_PATH_SEG ? "none" : x.tunnel ? "up" : "down";
	copy(ret->tunnel, sizeof(ret->tunnel), tunnel);
	if (domain)
		copy(ret->domain, sizeof(ret->domain), canon);
	else
		copy(ret->dst, sizeof(ret->dst), mm_addr_str(&da, buf));
	return 0;
}
