/* SPDX-License-Identifier: MIT */
/*
 * mounts.c — the daemon's mount table and the thread that keeps it
 * current (see mounts.h).
 *
 * How changes are noticed, chosen at start and logged:
 *   - kernel mount notifications (Linux 6.15+): a fanotify group with
 *     FAN_REPORT_MNT and a FAN_MARK_MNTNS mark on this mount namespace
 *     (and on the initial one, below) reports every attach and detach;
 *   - otherwise /proc/self/mountinfo, which polls POLLPRI when a mount is
 *     added, removed or moved in the namespace (every kernel fltmgr
 *     supports). FLTMGR_MOUNT_WATCH=poll forces this path (for tests), as
 *     does FLTMGR_KERNEL_FEATURES naming a release before 6.15.
 * Either way the watcher then re-reads mountinfo whole: it gives every
 * fact a volume callback needs in one read, on every kernel. On each
 * change it swaps the table that readers consult, asks the engine to
 * re-resolve its path-following instances and to set up or tear down the
 * automatic ones (volumes.c). It also re-checks the instances once a
 * second: a stale instance whose path comes back without a mount change
 * (a directory re-created) is picked up too.
 *
 * Mount ids are global to the machine; a mount of another namespace (a
 * user namespace's bind mount, overlayfs's private clone of its layers,
 * a container's mounts) is in neither table. The mounts of the initial
 * mount namespace (pid 1's) are taken for placing events: under systemd
 * the daemon runs in a namespace of its own (ProtectSystem=) that copies
 * the host's tree, so the accesses it filters go through the host's
 * mounts, whose paths read the same. Only root can add mounts there.
 * Volumes (automatic attachment) come from the daemon's own namespace.
 */
#include "engine/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/efd.h"
#include "engine/engine.h"
#include "engine/fanotify_compat.h"
#include "engine/kernel.h"
#include "engine/statx_compat.h"

#define MOUNTS_RECHECK_MS 1000

#define MOUNTS_MAX_NS 32

/* Another process's mount namespace whose volumes a policy asked for (a
 * container's): its table, read from /proc/PID/mountinfo, which polls
 * POLLPRI on changes there. Entries are never removed while the engine
 * runs (at most MOUNTS_MAX_NS); one whose process exited has an empty
 * table. */
struct nsw {
	pid_t pid;
	int pidfd; /* readable once the process has exited */
	int fd;    /* /proc/PID/mountinfo */
	bool gone;
	struct mount_table *tab; /* under mounts.lock */
};

struct mounts {
	pthread_rwlock_t lock;
	struct mount_table *self;     /* this namespace: volumes come from it */
	struct mount_table *init;     /* pid 1's, if another; for placing events */
	int fd;                       /* /proc/self/mountinfo */
	int init_fd;                  /* /proc/1/mountinfo, or -1 */
	int notify_fd;                /* fanotify mount notifications, or -1 */
	int wake_fd;                  /* eventfd: the set of namespaces changed */
	struct nsw ns[MOUNTS_MAX_NS]; /* [0, n_ns) under lock */
	size_t n_ns;
	pthread_t thread;
	bool started;
};

/* Reads both tables; the old ones go to *ret_old_self (the caller frees
 * it after comparing) and are freed here. */
static int
reload(struct engine *e, struct mount_table **ret_old_self)
{
	struct mounts *mt = e->mounts;
	struct mount_table *self = NULL, *init = NULL, *old_init;
	int r = mounttab_read_fd(mt->fd, 0, &self);

	if (r < 0)
		return r;
	if (mt->init_fd >= 0 && mounttab_read_fd(mt->init_fd, MOUNT_INIT_NS, &init) < 0)
		init = NULL; /* keep placing by our own table */
	pthread_rwlock_wrlock(&mt->lock);
	*ret_old_self = mt->self;
	mt->self = self;
	old_init = NULL;
	if (init) {
		old_init = mt->init;
		mt->init = init;
	}
	pthread_rwlock_unlock(&mt->lock);
	mounttab_free(old_init);
	return 0;
}

bool
mounts_lookup(struct engine *e, uint64_t mnt_id, dev_t *ret_dev)
{
	struct mounts *mt = e->mounts;
	const struct mount_entry *m;

	if (!mt)
		return false;
	pthread_rwlock_rdlock(&mt->lock);
	m = mounttab_find(mt->self, mnt_id);
	if (!m)
		m = mounttab_find(mt->init, mnt_id);
	if (m && ret_dev)
		*ret_dev = m->dev;
	pthread_rwlock_unlock(&mt->lock);
	return m != NULL;
}

static struct nsw *
ns_find(struct mounts *mt, pid_t pid)
{
	for (size_t i = 0; i < mt->n_ns; i++)
		if (mt->ns[i].pid == pid)
			return &mt->ns[i];
	return NULL;
}

bool
mounts_lookup_foreign(struct engine *e, uint64_t mnt_id, dev_t *ret_dev, pid_t *ret_pid)
{
	struct mounts *mt = e->mounts;
	const struct mount_entry *m = NULL;

	if (!mt)
		return false;
	pthread_rwlock_rdlock(&mt->lock);
	for (size_t i = 0; i < mt->n_ns && !m; i++) {
		m = mounttab_find(mt->ns[i].tab, mnt_id);
		if (m && ret_pid)
			*ret_pid = mt->ns[i].pid;
	}
	if (m && ret_dev)
		*ret_dev = m->dev;
	pthread_rwlock_unlock(&mt->lock);
	return m != NULL;
}

int
mounts_snapshot(struct engine *e, pid_t ns_pid, struct mount_table **ret)
{
	struct mounts *mt = e->mounts;
	struct mount_table empty = { 0 }, *t = NULL;
	int r;

	if (!mt)
		return mounttab_merge(&empty, &empty, ret);
	pthread_rwlock_rdlock(&mt->lock);
	if (!ns_pid) {
		t = mt->self;
	} else {
		struct nsw *w = ns_find(mt, ns_pid);

		t = w ? w->tab : NULL;
	}
	r = mounttab_merge(t ? t : &empty, &empty, ret);
	pthread_rwlock_unlock(&mt->lock);
	return r;
}

size_t
mounts_watched(struct engine *e, pid_t *ret, size_t max)
{
	struct mounts *mt = e->mounts;
	size_t n = 0;

	if (!mt)
		return 0;
	pthread_rwlock_rdlock(&mt->lock);
	for (size_t i = 0; i < mt->n_ns && n < max; i++)
		if (!mt->ns[i].gone)
			ret[n++] = mt->ns[i].pid;
	pthread_rwlock_unlock(&mt->lock);
	return n;
}

int
mounts_watch_ns(struct engine *e, pid_t pid)
{
	struct mounts *mt = e->mounts;
	struct mount_table *tab = NULL;
	char path[64];
	int pidfd, fd, r;

	if (!mt || pid <= 0)
		return -EINVAL;
	pthread_rwlock_rdlock(&mt->lock);
	r = ns_find(mt, pid) ? 1 : 0;
	pthread_rwlock_unlock(&mt->lock);
	if (r)
		return 0;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (r = mounttab_read_fd(fd, MOUNT_FOREIGN_NS, &tab)) < 0) {
		r = fd < 0 ? -errno : r;
		if (fd >= 0)
			close(fd);
		close(pidfd);
		return r;
	}
	pthread_rwlock_wrlock(&mt->lock);
	if (ns_find(mt, pid)) {
		r = 0; /* raced with another caller */
	} else if (mt->n_ns == MOUNTS_MAX_NS) {
		r = -EMFILE;
	} else {
		mt->ns[mt->n_ns++] =
			(struct nsw){ .pid = pid, .pidfd = pidfd, .fd = fd, .tab = tab };
		tab = NULL;
		pidfd = fd = -1;
	}
	pthread_rwlock_unlock(&mt->lock);
	if (fd >= 0)
		close(fd);
	if (pidfd >= 0)
		close(pidfd);
	mounttab_free(tab);
	if (r == 0) {
		eventfd_signal(mt->wake_fd);
		log_info(e->mgr, "mount table: watching the mount namespace of pid %d",
			 (int)pid);
	}
	return r;
}

static dev_t
fs_dev_at(int dirfd, const char *path, int flags)
{
	struct mount_table *t = NULL;
	const struct mount_entry *m;
	struct flt_statx st;
	dev_t dev;
	int fd;

	if (flt_statx(dirfd, path, flags, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0)
		return 0;
	dev = flt_statx_dev(&st);
	if (!(st.stx_mask & FLT_STATX_MNT_ID))
		return dev;
	fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dev;
	if (mounttab_read_fd(fd, 0, &t) == 0 && (m = mounttab_find(t, st.stx_mnt_id)))
		dev = m->dev;
	close(fd);
	mounttab_free(t);
	return dev;
}

dev_t
mounts_fs_dev_of_path(const char *path)
{
	return fs_dev_at(AT_FDCWD, path, 0);
}

dev_t
mounts_fs_dev_of_path_cached(struct engine *e, const char *path, uint64_t *ret_mnt_id)
{
	struct flt_statx st;
	dev_t dev;

	if (ret_mnt_id)
		*ret_mnt_id = 0;
	if (flt_statx(AT_FDCWD, path, 0, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0)
		return 0;
	dev = flt_statx_dev(&st);
	if (!(st.stx_mask & FLT_STATX_MNT_ID))
		return dev;
	if (ret_mnt_id)
		*ret_mnt_id = st.stx_mnt_id;
	if (!mounts_lookup(e, st.stx_mnt_id, &dev))
		return mounts_fs_dev_of_path(path); /* newer than the table */
	return dev;
}

dev_t
mounts_fs_dev_of_fd(struct engine *e, int fd)
{
	struct flt_statx st;
	dev_t dev;

	if (flt_statx(fd, "", AT_EMPTY_PATH, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0)
		return 0;
	dev = flt_statx_dev(&st);
	if ((st.stx_mask & FLT_STATX_MNT_ID) && !mounts_lookup(e, st.stx_mnt_id, &dev) &&
	    !mounts_lookup_foreign(e, st.stx_mnt_id, &dev, NULL))
		return fs_dev_at(fd, "", AT_EMPTY_PATH); /* newer than the table */
	return dev;
}

uint64_t
mounts_id_of_path(const char *path)
{
	struct flt_statx st;

	if (flt_statx(AT_FDCWD, path, 0, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0 ||
	    !(st.stx_mask & FLT_STATX_MNT_ID))
		return 0;
	return st.stx_mnt_id;
}

/* Empties the notification group's queue; returns whether it overflowed
 * or failed (then the table is read anyway, as after any change). */
static void
drain_notifications(int fd)
{
	uint8_t buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void
changed(struct engine *e)
{
	struct mount_table *old = NULL;
	int r = reload(e, &old);

	atomic_fetch_add(&e->ctr.mount_changes, 1);
	if (r < 0) {
		log_error(e->mgr, "mount table: cannot read it: %s", strerror(-r));
		return;
	}
	volumes_changed(e, 0, old);
	mounttab_free(old);
}

/* A watched namespace changed (or its process exited: every volume of
 * it is gone). */
static void
ns_changed(struct engine *e, size_t i, bool exited)
{
	struct mounts *mt = e->mounts;
	struct mount_table *tab = NULL, *old;
	struct mount_table empty = { 0 };
	pid_t pid;
	int r = 0;

	pthread_rwlock_rdlock(&mt->lock);
	pid = mt->ns[i].pid;
	pthread_rwlock_unlock(&mt->lock);
	if (exited)
		r = mounttab_merge(&empty, &empty, &tab);
	else
		r = mounttab_read_fd(mt->ns[i].fd, MOUNT_FOREIGN_NS, &tab);
	if (r < 0) { /* the process is gone: read as empty */
		if (mounttab_merge(&empty, &empty, &tab) < 0)
			return;
		exited = true;
	}
	pthread_rwlock_wrlock(&mt->lock);
	old = mt->ns[i].tab;
	mt->ns[i].tab = tab;
	if (exited)
		mt->ns[i].gone = true;
	pthread_rwlock_unlock(&mt->lock);
	atomic_fetch_add(&e->ctr.mount_changes, 1);
	if (exited)
		log_info(e->mgr,
			 "mount table: pid %d exited; its namespace's volumes are gone",
			 (int)pid);
	volumes_changed(e, pid, old);
	mounttab_free(old);
}

static void *
watcher_main(void *arg)
{
	struct engine *e = arg;
	struct mounts *mt = e->mounts;
	bool again = false;

	pthread_setname_np(pthread_self(), "flt-mounts");
	/* The volumes present at start. */
	volumes_changed(e, 0, NULL);
	while (!atomic_load(&e->stopping)) {
		/* stop, wake, 1-3 for this namespace, 2 per watched one */
		struct pollfd p[5 + 2 * MOUNTS_MAX_NS] = {
			{ .fd = e->stop_efd, .events = POLLIN },
			{ .fd = mt->wake_fd, .events = POLLIN },
		};
		nfds_t n = 2, first_ns;
		size_t n_ns;
		bool own = false;
		int r;

		if (mt->notify_fd >= 0) {
			p[n++] = (struct pollfd){ .fd = mt->notify_fd, .events = POLLIN };
		} else {
			p[n++] = (struct pollfd){ .fd = mt->fd, .events = POLLPRI };
			if (mt->init_fd >= 0)
				p[n++] = (struct pollfd){ .fd = mt->init_fd,
							  .events = POLLPRI };
		}
		first_ns = n;
		pthread_rwlock_rdlock(&mt->lock);
		n_ns = mt->n_ns;
		for (size_t i = 0; i < n_ns; i++) {
			bool gone = mt->ns[i].gone;

			p[n++] = (struct pollfd){ .fd = gone ? -1 : mt->ns[i].fd,
						  .events = POLLPRI };
			p[n++] = (struct pollfd){ .fd = gone ? -1 : mt->ns[i].pidfd,
						  .events = POLLIN };
		}
		pthread_rwlock_unlock(&mt->lock);
		r = poll(p, n, again ? 5 : MOUNTS_RECHECK_MS);
		if (r < 0 && errno != EINTR) {
			log_error(e->mgr, "mount table: poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents)
			eventfd_drain(mt->wake_fd);
		for (nfds_t k = 2; r > 0 && k < first_ns; k++)
			own |= (p[k].revents & (POLLIN | POLLPRI | POLLERR)) != 0;
		if (own) {
			if (mt->notify_fd >= 0)
				drain_notifications(mt->notify_fd);
			changed(e);
		}
		for (size_t i = 0; r > 0 && i < n_ns; i++) {
			struct pollfd *mi = &p[first_ns + 2 * i], *pf = mi + 1;

			if (pf->revents & POLLIN)
				ns_changed(e, i, true);
			else if (mi->revents & (POLLPRI | POLLERR))
				ns_changed(e, i, false);
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

/* A fanotify group reporting mount attach/detach in this namespace (and
 * pid 1's), or -1: the kernel is older than 6.15, or it was turned off. */
static int
open_notifications(struct engine *e, const char **ret_why)
{
	const char *force = getenv("FLTMGR_MOUNT_WATCH");
	const char *ns[2] = { "/proc/self/ns/mnt", "/proc/1/ns/mnt" };
	int fd;

	if (force && !strcmp(force, "poll")) {
		*ret_why = "FLTMGR_MOUNT_WATCH=poll";
		return -1;
	}
	/* Behaving as an older kernel (FLTMGR_KERNEL_FEATURES): as it would. */
	if (e->feat.simulated && e->feat.kernel < FLT_KV(6, 15)) {
		*ret_why = "no FAN_REPORT_MNT in the simulated kernel (Linux 6.15+)";
		return -1;
	}
	fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_MNT | FAN_CLOEXEC | FAN_NONBLOCK,
			   0);
	if (fd < 0) {
		*ret_why = "no FAN_REPORT_MNT (Linux 6.15+)";
		return -1;
	}
	for (int i = 0; i < (e->mounts->init_fd >= 0 ? 2 : 1); i++) {
		int nsfd = open(ns[i], O_RDONLY | O_CLOEXEC);

		if (nsfd < 0 ||
		    fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MNTNS,
				  FAN_MNT_ATTACH | FAN_MNT_DETACH, nsfd, NULL) < 0) {
			*ret_why = "FAN_MARK_MNTNS refused";
			if (nsfd >= 0)
				close(nsfd);
			close(fd);
			return -1;
		}
		close(nsfd);
	}
	return fd;
}

int
mounts_start(struct engine *e)
{
	struct mounts *mt = calloc(1, sizeof(*mt));
	struct mount_table *old = NULL;
	const char *why = NULL;
	int r;

	if (!mt)
		return -ENOMEM;
	pthread_rwlock_init(&mt->lock, NULL);
	mt->init_fd = mt->notify_fd = -1;
	mt->fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	mt->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (mt->fd < 0 || mt->wake_fd < 0) {
		r = -errno;
		if (mt->fd >= 0)
			close(mt->fd);
		if (mt->wake_fd >= 0)
			close(mt->wake_fd);
		pthread_rwlock_destroy(&mt->lock);
		free(mt);
		return r;
	}
	if (!same_mount_ns("/proc/self/ns/mnt", "/proc/1/ns/mnt"))
		mt->init_fd = open("/proc/1/mountinfo", O_RDONLY | O_CLOEXEC);
	e->mounts = mt;
	mt->notify_fd = open_notifications(e, &why);
	if (mt->notify_fd >= 0)
		log_info(e->mgr,
			 "mount table: watched through kernel mount notifications");
	else
		log_info(e->mgr, "mount table: watched by polling mountinfo (%s)", why);
	r = reload(e, &old);
	mounttab_free(old);
	if (r == 0)
		r = -pthread_create(&mt->thread, NULL, watcher_main, e);
	if (r < 0) {
		mounts_stop(e);
		return r;
	}
	mt->started = true;
	return 0;
}

bool
mounts_kernel_notifications(struct engine *e)
{
	return e->mounts && e->mounts->notify_fd >= 0;
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
	if (mt->notify_fd >= 0)
		close(mt->notify_fd);
	close(mt->wake_fd);
	for (size_t i = 0; i < mt->n_ns; i++) {
		close(mt->ns[i].fd);
		close(mt->ns[i].pidfd);
		mounttab_free(mt->ns[i].tab);
	}
	mounttab_free(mt->self);
	mounttab_free(mt->init);
	pthread_rwlock_destroy(&mt->lock);
	free(mt);
}
