/* SPDX-License-Identifier: MIT */
/*
 * mounts.c — the daemon's mount table (see mounts.h).
 *
 * /proc/self/mountinfo polls POLLPRI whenever a mount is added, removed
 * or moved in this mount namespace (every kernel fltmgr supports). The
 * watcher thread re-reads it then, replaces the set of mount ids that
 * readers consult, and asks the engine to re-resolve its instances, so
 * that an instance whose path came to name another filesystem (unmount
 * and mount, a mount on top) is attached to that one. It also re-checks
 * the instances once a second: a stale instance whose path comes back
 * without a mount change (a directory re-created) is picked up too.
 *
 * Mount ids are global to the machine; a mount of another namespace
 * (a user namespace's bind mount, overlayfs's private clone of its
 * layers, a container's mounts) is never in the set. The mounts of the
 * initial mount namespace (pid 1's) are taken too: under systemd the
 * daemon runs in a namespace of its own (ProtectSystem=) that copies
 * the host's tree, so the accesses it filters go through the host's
 * mounts, whose paths read the same. Only root can add mounts there.
 */
#include "engine/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/statx_compat.h"

#define MOUNTS_RECHECK_MS 1000

struct mounts {
	pthread_rwlock_t lock;
	struct mount_id *ids; /* sorted by id */
	size_t n;
	int fd;      /* /proc/self/mountinfo */
	int init_fd; /* /proc/1/mountinfo, or -1 (same namespace, or denied) */
	pthread_t thread;
	bool started;
};

static int
cmp_id(const void *a, const void *b)
{
	uint64_t x = ((const struct mount_id *)a)->id,
		 y = ((const struct mount_id *)b)->id;

	return x < y ? -1 : x > y;
}

/* One line: "ID PARENT MAJOR:MINOR ROOT POINT ..." */
static bool
parse_line(const char *p, struct mount_id *ret)
{
	unsigned long long id, parent;
	unsigned maj, min;

	if (sscanf(p, "%llu %llu %u:%u ", &id, &parent, &maj, &min) != 4)
		return false;
	ret->id = id;
	ret->dev = makedev(maj, min);
	return true;
}

long
mounts_parse_ids(const char *text, struct mount_id **ret_ids)
{
	size_t n = 0, cap = 64;
	struct mount_id *ids = malloc(cap * sizeof(*ids));
	const char *p = text;

	if (!ids)
		return -ENOMEM;
	while (*p) {
		const char *eol = strchr(p, '\n');
		struct mount_id m;

		if (parse_line(p, &m)) {
			if (n == cap) {
				struct mount_id *v = realloc(ids, 2 * cap * sizeof(*ids));

				if (!v) {
					free(ids);
					return -ENOMEM;
				}
				ids = v;
				cap *= 2;
			}
			ids[n++] = m;
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	qsort(ids, n, sizeof(*ids), cmp_id);
	*ret_ids = ids;
	return (long)n;
}

/* The whole file, read from the start (which also re-arms POLLPRI). */
static char *
read_all(int fd)
{
	size_t cap = 16384, len = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return NULL;
	for (;;) {
		ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			char *b = realloc(buf, 2 * cap + 1);

			if (!b) {
				free(buf);
				return NULL;
			}
			buf = b;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	return buf;
}

static int
reload(struct engine *e)
{
	struct mounts *mt = e->mounts;
	struct mount_id *ids = NULL, *more = NULL, *old;
	char *text = read_all(mt->fd);
	long n, m = 0;

	if (!text)
		return -errno;
	n = mounts_parse_ids(text, &ids);
	free(text);
	if (n < 0)
		return (int)n;
	if (mt->init_fd >= 0) {
		text = read_all(mt->init_fd);
		m = text ? mounts_parse_ids(text, &more) : 0;
		free(text);
		if (m > 0) {
			struct mount_id *all =
				realloc(ids, (size_t)(n + m) * sizeof(*ids));

			if (all) {
				ids = all;
				memcpy(ids + n, more, (size_t)m * sizeof(*ids));
				n += m;
				qsort(ids, (size_t)n, sizeof(*ids), cmp_id);
			}
		}
		free(more);
	}
	pthread_rwlock_wrlock(&mt->lock);
	old = mt->ids;
	mt->ids = ids;
	mt->n = (size_t)n;
	pthread_rwlock_unlock(&mt->lock);
	free(old);
	return 0;
}

bool
mounts_lookup(struct engine *e, uint64_t mnt_id, dev_t *ret_dev)
{
	struct mounts *mt = e->mounts;
	struct mount_id key = { .id = mnt_id }, *m = NULL;

	if (!mt)
		return false;
	pthread_rwlock_rdlock(&mt->lock);
	if (mt->n)
		m = bsearch(&key, mt->ids, mt->n, sizeof(*mt->ids), cmp_id);
	if (m && ret_dev)
		*ret_dev = m->dev;
	pthread_rwlock_unlock(&mt->lock);
	return m != NULL;
}

static dev_t
fs_dev_at(int dirfd, const char *path, int flags)
{
	struct flt_statx st;
	dev_t dev;
	char *text;
	int fd;

	if (flt_statx(dirfd, path, flags, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0)
		return 0;
	dev = flt_statx_dev(&st);
	if (!(st.stx_mask & FLT_STATX_MNT_ID))
		return dev;
	fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dev;
	text = read_all(fd);
	close(fd);
	for (const char *p = text; p && *p;) {
		const char *eol = strchr(p, '\n');
		struct mount_id m;

		if (parse_line(p, &m) && m.id == st.stx_mnt_id) {
			dev = m.dev;
			break;
		}
		p = eol ? eol + 1 : "";
	}
	free(text);
	return dev;
}

dev_t
mounts_fs_dev_of_path(const char *path)
{
	return fs_dev_at(AT_FDCWD, path, 0);
}

dev_t
mounts_fs_dev_of_path_cached(struct engine *e, const char *path)
{
	struct flt_statx st;
	dev_t dev;

	if (flt_statx(AT_FDCWD, path, 0, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0)
		return 0;
	dev = flt_statx_dev(&st);
	if ((st.stx_mask & FLT_STATX_MNT_ID) && !mounts_lookup(e, st.stx_mnt_id, &dev))
		return mounts_fs_dev_of_path(path); /* newer than the table */
	return dev;
}

dev_t
mounts_fs_dev_of_fd(int fd)
{
	return fs_dev_at(fd, "", AT_EMPTY_PATH);
}

static void *
watcher_main(void *arg)
{
	struct engine *e = arg;
	struct mounts *mt = e->mounts;

	pthread_setname_np(pthread_self(), "flt-mounts");
	bool again = false;

	while (!atomic_load(&e->stopping)) {
		struct pollfd p[3] = {
			{ .fd = e->stop_efd, .events = POLLIN },
			{ .fd = mt->fd, .events = POLLPRI },
			{ .fd = mt->init_fd, .events = POLLPRI },
		};
		int n = poll(p, mt->init_fd >= 0 ? 3 : 2, again ? 5 : MOUNTS_RECHECK_MS);

		if (n < 0 && errno != EINTR) {
			log_error(e->mgr, "mount table: poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			break;
		if (n > 0 && ((p[1].revents | p[2].revents) & (POLLPRI | POLLERR))) {
			int r = reload(e);

			atomic_fetch_add(&e->ctr.mount_changes, 1);
			if (r < 0)
				log_error(e->mgr, "mount table: cannot read it: %s",
					  strerror(-r));
		}
		again = engine_revalidate_instances(e);
	}
	return NULL;
}

/* Whether two namespace files name the same namespace; an unreadable
 * one (no ptrace access to pid 1) counts as the same: nothing to add. */
static bool
same_mount_ns(const char *a, const char *b)
{
	struct stat x, y;

	if (stat(a, &x) < 0 || stat(b, &y) < 0)
		return true;
	return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int
mounts_start(struct engine *e)
{
	struct mounts *mt = calloc(1, sizeof(*mt));
	int r;

	if (!mt)
		return -ENOMEM;
	pthread_rwlock_init(&mt->lock, NULL);
	mt->fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (mt->fd < 0) {
		r = -errno;
		pthread_rwlock_destroy(&mt->lock);
		free(mt);
		return r;
	}
	mt->init_fd = -1;
	if (!same_mount_ns("/proc/self/ns/mnt", "/proc/1/ns/mnt"))
		mt->init_fd = open("/proc/1/mountinfo", O_RDONLY | O_CLOEXEC);
	e->mounts = mt;
	r = reload(e);
	if (r == 0)
		r = -pthread_create(&mt->thread, NULL, watcher_main, e);
	if (r < 0) {
		mounts_stop(e);
		return r;
	}
	mt->started = true;
	return 0;
}

void
mounts_stop(struct engine *e)
{
	struct mounts *mt = e->mounts;

	if (!mt)
		return;
	if (mt->started)
		pthread_join(mt->thread, NULL);
	e->mounts = NULL;
	close(mt->fd);
	if (mt->init_fd >= 0)
		close(mt->init_fd);
	free(mt->ids);
	pthread_rwlock_destroy(&mt->lock);
	free(mt);
}
