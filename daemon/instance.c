#include "instance.h"
#include "policy/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_LOCKS 8

struct instance {
	int fd[MAX_LOCKS];       /* flock'ed lock files */
	char *what[MAX_LOCKS];   /* their paths */
	size_t n;
	int ns_fd;               /* the abstract socket claiming the namespace's tag */
	char squatter[256];      /* why the namespace claim was skipped; "" if it was not */
};

int instance_mkdir_parent(const char *path, mode_t mode)
{
	char dir[4096];

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	for (char *s = strchr(dir + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(dir, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

static void write_pid(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) != n)
		return;  /* the pid is a courtesy to the operator; the lock is what counts */
}

static long holder_pid(int fd)
{
	char buf[32] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* flock LOCKFILE (beside path); what says what it protects, for errors. */
static int lock_beside(struct instance *inst, const char *path, const char *what,
		       struct mm_err *err)
{
	char lock[4200];
	int fd, r;
	long pid;

	if (inst->n == MAX_LOCKS)
		return mm_err_set(err, MM_ERR_INTERNAL, what, "too many locks");
	r = instance_mkdir_parent(path, 0755);
	if (r < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, what, "cannot create the directory of %s: %s",
				  path, strerror(-r));
	/* Beside the file as the directory really is: two spellings of one
	 * path (a symlink, "..") must meet on one lock. */
	const char *base = strrchr(path, '/');
	char dir[4096], *real;

	snprintf(dir, sizeof(dir), "%.*s", base ? (int)(base - path) : 1, base ? path : ".");
	if (base && base == path)
		snprintf(dir, sizeof(dir), "/");
	real = realpath(dir, NULL);
	if (!real)
		return mm_err_set(err, MM_ERR_INTERNAL, what, "cannot resolve the directory of %s: %s",
				  path, strerror(errno));
	snprintf(lock, sizeof(lock), "%s/%s.lock", strcmp(real, "/") ? real : "",
		 base ? base + 1 : path);
	free(real);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	/* A lock file we may read but not write (left by an earlier run as
	 * another user) still locks when opened read-only: flock(2) needs no
	 * write access.  Lock files are 0600, so no other user can take them
	 * and keep mmtrustd from starting. */
	if (fd < 0 && (errno == EACCES || errno == EROFS))
		fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, what, "cannot open the lock %s: %s", lock,
				  strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		pid = holder_pid(fd);
		close(fd);
		if (r == -EWOULDBLOCK) {
			char by[48] = "";

			if (pid > 0)
				snprintf(by, sizeof(by), " (pid %ld)", pid);
			mm_err_set(err, MM_ERR_CONFLICT, what,
				   "%s is in use by another mmtrustd%s: %s is locked; one "
				   "mmtrustd per store and per socket",
				   path, by, lock);
			return -EBUSY;
		}
		return mm_err_set(err, MM_ERR_INTERNAL, what, "cannot lock %s: %s", lock,
				  strerror(-r));
	}
	write_pid(fd);
	inst->fd[inst->n] = fd;
	inst->what[inst->n] = strdup(path);
	inst->n++;
	return 0;
}

/* A socket file that answers is a live daemon's; one that refuses is dead
 * and may be replaced; no file is fine. */
static int socket_dead_or_absent(const char *path, const char *what, struct mm_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : mm_err_set(err, MM_ERR_INTERNAL, what, "%s: %s", path,
							 strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return mm_err_set(err, MM_ERR_CONFLICT, what,
				  "%s exists and is not a socket; not replacing it", path);
	if (strlen(path) >= sizeof(sa.sun_path))
		return mm_err_set(err, MM_ERR_INVALID, what, "%s: path too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, what, "socket: %s", strerror(errno));
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	if (r == 0) {
		mm_err_set(err, MM_ERR_CONFLICT, what,
			   "%s answers: another mmtrustd is serving it; not replacing a live "
			   "socket",
			   path);
		return -EBUSY;
	}
	return 0;
}

/* The namespace's claim is an abstract socket, and abstract names carry no
 * permissions: any local user could bind ours first.  So a name held by a
 * process of another user (neither root nor us) is not taken for another
 * mmtrustd: it is logged by the caller and the claim goes on without it
 * (the store and socket locks still hold). */
static int claim_namespace(struct instance *inst, uint32_t tag, struct mm_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred = { 0 };
	socklen_t len, cl = sizeof(cred);
	int fd, n, r;

	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "mmtrustd-xfrm-%u", tag);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return mm_err_set(err, MM_ERR_INTERNAL, "spd.tag", "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, len) == 0 && listen(fd, 1) == 0) {
		inst->ns_fd = fd;
		return 0;
	}
	r = -errno;
	close(fd);
	if (r != -EADDRINUSE)
		return mm_err_set(err, MM_ERR_INTERNAL, "spd.tag", "bind: %s", strerror(-r));
	/* Who holds it? */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, len) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.uid != 0 &&
	    cred.uid != geteuid()) {
		close(fd);
		snprintf(inst->squatter, sizeof(inst->squatter),
			 "the abstract socket @mmtrustd-xfrm-%u is held by uid %u (pid %d), not by "
			 "root or our user; the namespace claim is skipped (the store and socket "
			 "locks still hold)",
			 tag, (unsigned)cred.uid, (int)cred.pid);
		return 0;
	}
	if (fd >= 0)
		close(fd);
	char by[32] = "";

	if (cred.pid > 0)
		snprintf(by, sizeof(by), ", pid %d", (int)cred.pid);
	mm_err_set(err, MM_ERR_CONFLICT, "spd.tag",
		   "another mmtrustd programs this network namespace's XFRM policies with tag %u "
		   "(it holds the abstract socket @mmtrustd-xfrm-%u%s, see `ss -xlp`); one "
		   "mmtrustd per namespace and tag",
		   tag, tag, by);
	return -EBUSY;
}

int instance_claim_store(struct instance *inst, const char *store, struct mm_err *err)
{
	/* A shared store (PostgreSQL) is shared by design. */
	if (mm_store_spec_is_postgresql(store))
		return 0;
	for (size_t i = 0; i < inst->n; i++)
		if (!strcmp(inst->what[i], store))
			return 0;
	return lock_beside(inst, store, "daemon.store", err);
}

int instance_claim_snapshot(struct instance *inst, const char *path, struct mm_err *err)
{
	return path[0] ? lock_beside(inst, path, "daemon.query_snapshot", err) : 0;
}

int instance_claim(const char *store, const char *admin_socket, const char *query_socket,
		   uint32_t spd_tag, struct instance **ret, struct mm_err *err)
{
	struct instance *inst = calloc(1, sizeof(*inst));
	int r;

	if (!inst)
		return mm_err_set(err, MM_ERR_INTERNAL, "", "out of memory");
	inst->ns_fd = -1;
	r = mm_store_spec_is_postgresql(store) ? 0 : lock_beside(inst, store, "daemon.store", err);
	if (r == 0)
		r = lock_beside(inst, admin_socket, "daemon.admin_socket", err);
	if (r == 0)
		r = socket_dead_or_absent(admin_socket, "daemon.admin_socket", err);
	if (r == 0)
		r = lock_beside(inst, query_socket, "daemon.query_socket", err);
	if (r == 0)
		r = socket_dead_or_absent(query_socket, "daemon.query_socket", err);
	if (r == 0)
		r = claim_namespace(inst, spd_tag, err);
	if (r < 0) {
		instance_release(inst);
		return r;
	}
	*ret = inst;
	return 0;
}

const char *instance_warning(const struct instance *inst)
{
	return inst && inst->squatter[0] ? inst->squatter : NULL;
}

void instance_note_pid(struct instance *inst)
{
	for (size_t i = 0; inst && i < inst->n; i++)
		write_pid(inst->fd[i]);
}

void instance_release(struct instance *inst)
{
	if (!inst)
		return;
	for (size_t i = 0; i < inst->n; i++) {
		close(inst->fd[i]);
		free(inst->what[i]);
	}
	if (inst->ns_fd >= 0)
		close(inst->ns_fd);
	free(inst);
}
