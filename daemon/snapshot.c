/* The snapshot's writer: daemon/snapshot.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "snapshot.h"
#include "policy/snapshot.h"

struct snapw {
	char path[108], table_path[120], tmp_path[120];
	gid_t gid;
	/* the table file in place: its bytes, checked view, and what it was
	 * built from (a reference, so that a new table can never take the
	 * old one's address and pass for it) */
	void *table_buf;
	size_t table_len;
	struct mm_snap_table table;
	struct mm_table *built_from;
	struct mm_prefix cscf[MM_CONFIG_MAX_LOCAL];
	unsigned cscf_kinds[MM_CONFIG_MAX_LOCAL];
	size_t n_cscf;
	int untrusted;
	bool require_dst;
	uint64_t generation;
	struct mm_snap_state_hdr *live;  /* the state file in place, mapped */
	size_t live_len;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int snapw_new(const char *path, gid_t gid, struct snapw **ret)
{
	struct snapw *w;
	struct timespec ts;

	*ret = NULL;
	if (!path[0])
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	snprintf(w->path, sizeof(w->path), "%s", path);
	snprintf(w->table_path, sizeof(w->table_path), "%s.table", path);
	snprintf(w->tmp_path, sizeof(w->tmp_path), "%s.tmp", path);
	w->gid = gid;
	/* Generations grow across restarts too. */
	clock_gettime(CLOCK_REALTIME, &ts);
	w->generation = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	*ret = w;
	return 0;
}

static void unmap_live(struct snapw *w)
{
	if (w->live)
		munmap(w->live, w->live_len);
	w->live = NULL;
}

void snapw_supersede(struct snapw *w)
{
	if (w && w->live)
		__atomic_store_n(&w->live->state, MM_SNAP_SUPERSEDED, __ATOMIC_RELEASE);
}

void snapw_heartbeat(struct snapw *w)
{
	if (w && w->live)
		__atomic_store_n(&w->live->heartbeat_ms, now_ms(), __ATOMIC_RELEASE);
}

void snapw_free(struct snapw *w)
{
	if (!w)
		return;
	snapw_supersede(w);
	unmap_live(w);
	unlink(w->path);
	unlink(w->table_path);
	unlink(w->tmp_path);
	free(w->table_buf);
	mm_table_free(w->built_from);
	free(w);
}

/* Write len bytes as a new file aside, then rename it to dest.  With
 * ret_map, the new file's header is mapped writable into *ret_map. */
static int write_file(struct snapw *w, const char *dest, const void *buf, size_t len,
		      void **ret_map)
{
	const char *p = buf;
	size_t done = 0;
	int fd, r = 0;

	unlink(w->tmp_path);
	fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  w->gid == (gid_t)-1 ? 0600 : 0640);
	if (fd < 0)
		return -errno;
	if (w->gid != (gid_t)-1 && fchown(fd, (uid_t)-1, w->gid) < 0)
		r = -errno;
	while (r == 0 && done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0)
			done += n;
	}
	if (r == 0 && ret_map) {
		void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (m == MAP_FAILED)
			r = -errno;
		else
			*ret_map = m;
	}
	close(fd);
	if (r == 0 && rename(w->tmp_path, dest) < 0) {
		r = -errno;
		if (ret_map)
			munmap(*ret_map, len);
	}
	if (r < 0)
		unlink(w->tmp_path);
	return r;
}

static bool table_current(const struct snapw *w, const struct query_view_input *in)
{
	return w->table_buf && w->built_from == in->table && w->n_cscf == in->cscf.n &&
	       !memcmp(w->cscf, in->cscf.prefix, in->cscf.n * sizeof(*in->cscf.prefix)) &&
	       !memcmp(w->cscf_kinds, in->cscf.kinds, in->cscf.n * sizeof(*in->cscf.kinds)) &&
	       w->untrusted == in->untrusted && w->require_dst == in->require_dst;
}

static int publish_table(struct snapw *w, const struct query_view_input *in)
{
	struct mm_err err = { 0 };
	uint64_t id;
	void *buf;
	struct mm_cscf_set cscf = in->cscf;
	size_t len;
	int r;

	if (getrandom(&id, sizeof(id), 0) != sizeof(id))
		return -errno;
	if (cscf.n > MM_CONFIG_MAX_LOCAL)
		cscf.n = MM_CONFIG_MAX_LOCAL;
	r = mm_snap_table_build(in->table, &cscf, in->untrusted, in->require_dst, id, &buf, &len);
	if (r < 0)
		return r;
	/* What a reader will check, checked here first: a file the library
	 * would refuse is never written. */
	r = mm_snap_table_load(buf, len, &w->table, &err);
	if (r == 0)
		r = write_file(w, w->table_path, buf, len, NULL);
	if (r < 0) {
		free(buf);
		free(w->table_buf);
		w->table_buf = NULL;
		mm_table_free(w->built_from);
		w->built_from = NULL;
		return r;
	}
	free(w->table_buf);
	w->table_buf = buf;
	w->table_len = len;
	mm_table_free(w->built_from);
	w->built_from = mm_table_ref(in->table);
	memcpy(w->cscf, cscf.prefix, cscf.n * sizeof(*cscf.prefix));
	memcpy(w->cscf_kinds, cscf.kinds, cscf.n * sizeof(*cscf.kinds));
	w->n_cscf = cscf.n;
	w->untrusted = in->untrusted;
	w->require_dst = in->require_dst;
	return 0;
}

int snapw_publish(struct snapw *w, const struct query_view_input *in)
{
	struct mm_snap_tunnel_in *up;
	void *buf = NULL, *map = NULL;
	size_t len;
	int r = 0;

	if (!w)
		return 0;
	snapw_supersede(w);
	if (!table_current(w, in))
		r = publish_table(w, in);
	if (r < 0)
		return r;
	up = calloc(in->n_up ? in->n_up : 1, sizeof(*up));
	if (!up)
		return -ENOMEM;
	for (size_t i = 0; i < in->n_up; i++)
		up[i] = (struct mm_snap_tunnel_in){
			.domain = in->up[i].domain,
			.reqid = in->up[i].reqid,
			.spi_in = in->up[i].spi_in,
			.spi_out = in->up[i].spi_out,
			.in_enforced = in->enforced[i],
			.out_enforced = in->out_enforced[i],
			.since = in->up[i].since,
			.remote_id = in->up[i].remote_id,
		};
	r = mm_snap_state_build(&w->table, ++w->generation, (uint32_t)getpid(),
				MM_SNAP_HEARTBEAT_MS, now_ms(), up, in->n_up, in->tunnel_addrs, &buf,
				&len);
	free(up);
	if (r == 0)
		r = write_file(w, w->path, buf, len, &map);
	free(buf);
	if (r < 0)
		return r;
	unmap_live(w);
	w->live = map;
	w->live_len = len;
	return 0;
}

json_t *snapw_status(const struct snapw *w)
{
	bool current;

	if (!w)
		return json_null();
	current = w->live && __atomic_load_n(&w->live->state, __ATOMIC_ACQUIRE) == MM_SNAP_CURRENT;
	return json_pack("{s:s, s:b, s:I, s:I, s:I}", "path", w->path, "current", current,
			 "generation", (json_int_t)(w->live ? w->live->generation : 0),
			 "partners", (json_int_t)w->table.n_partners, "tunnels_up",
			 (json_int_t)(w->live ? w->live->n_up : 0));
}
