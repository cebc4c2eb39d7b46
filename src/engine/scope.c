/* SPDX-License-Identifier: MIT */
/*
 * scope.c — which instance an event falls in, and what an event's path
 * and identity are for permission events.
 *
 * A filesystem mark reports every access on a filesystem; SUBTREE and
 * MOUNT instances are narrowed here. For permission events the rule is
 * fail-closed: an event is outside a filter's instances only when the
 * engine can show it. Three things make a path lie, and each makes the
 * event "uncertain" (FLT_EVENT_SCOPE_UNCERTAIN, counted in
 * scope_uncertain), which is treated as inside the filter's first
 * instance on that filesystem:
 *
 *   - no path at all: readlink of the event descriptor fails (a file
 *     nested deeper than PATH_MAX: ENAMETOOLONG);
 *   - a path of another mount namespace: the access went through a mount
 *     that is not in the daemon's mount table (a bind mount in a user
 *     namespace, overlayfs's private clone of its lower layer, a
 *     container). The file is then looked up again by its file handle
 *     through the daemon's own mount of that filesystem and the path
 *     found there is used, if it names the same inode; otherwise there is
 *     no path;
 *   - a path that may just have changed: the path is read after the
 *     opener looked the file up, so a directory renamed in between moves
 *     the file out of (or into) the subtree under our eyes. A rename sets
 *     the moved inode's ctime, the moved inode is on the file's path, and
 *     its new parent must be writable by whoever moved it; so an event is
 *     proved outside only if no element of its path that sits in a
 *     directory writable by someone other than root changed within
 *     SCOPE_SETTLE_MS before the check (path_settled()).
 *
 * Events inside an instance cost what they always did (one statx in
 * place of the fstat, one readlink, a look-up in the mount table). The
 * proof of "outside" costs one statx per directory on the path; it is
 * made only for events on a filesystem with a SUBTREE or MOUNT instance
 * that fall outside all of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/mounts.h"
#include "engine/statx_compat.h"

/* A directory or file whose ctime is younger than this may just have
 * been renamed: its path proves nothing. */
#define SCOPE_SETTLE_MS 1000

enum {
	SCOPE_NONE = 0, /* not worked out yet */
	SCOPE_TRUSTED,  /* d->path is where the file is, as seen here */
	SCOPE_NO_PATH,  /* no trustworthy path */
};

/* Filesystems on which a rename sets the moved inode's ctime (and
 * ownership is enforced), so a settled ctime proves no rename. */
bool
scope_fs_type_known(long f_type)
{
	switch ((unsigned long)f_type) {
	case 0xEF53:     /* ext2, ext3, ext4 */
	case 0x58465342: /* xfs */
	case 0x9123683E: /* btrfs */
	case 0x01021994: /* tmpfs */
	case 0xF2F52010: /* f2fs */
		return true;
	default:
		return false;
	}
}

/* ---- identity: one statx of the event descriptor ---- */

static void
ensure_stat(struct flt_callback_data *d)
{
	struct flt_event_priv *pv = d->priv;
	struct flt_statx st;

	if (pv->stat_done)
		return;
	pv->stat_done = true;
	if (d->fd < 0 || flt_statx(d->fd, "", AT_EMPTY_PATH,
				   FLT_STATX_BASIC_STATS | FLT_STATX_MNT_ID, &st) < 0)
		return;
	d->dev = flt_statx_dev(&st);
	d->ino = st.stx_ino;
	if (S_ISDIR(st.stx_mode))
		d->flags |= FLT_EVENT_DIR;
	pv->mode = st.stx_mode;
	pv->uid = st.stx_uid;
	pv->nlink = st.stx_nlink;
	pv->ctime_ns = flt_statx_ctime_ns(&st);
	pv->mnt_id_known = (st.stx_mask & FLT_STATX_MNT_ID) != 0;
	pv->mnt_id = st.stx_mnt_id;
	/* The filesystem by its superblock, as instances are attached: a
	 * btrfs subvolume's files have a device number of their own. */
	pv->fs_dev = d->dev;
	pv->mount_ours =
		!pv->mnt_id_known || mounts_lookup(pv->e, pv->mnt_id, &pv->fs_dev);
	/* A mount of a namespace a policy watches (a container's): its
	 * filesystem is known, its paths are not the daemon's. */
	if (!pv->mount_ours)
		(void)mounts_lookup_foreign(pv->e, pv->mnt_id, &pv->fs_dev, &pv->ns_pid);
	pv->identity_ok = true;
}

dev_t
event_fs_dev(struct engine *e, int fd)
{
	struct flt_statx st;
	dev_t dev;

	if (fd < 0 ||
	    flt_statx(fd, "", AT_EMPTY_PATH, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0)
		return 0;
	dev = flt_statx_dev(&st);
	if (st.stx_mask & FLT_STATX_MNT_ID)
		(void)mounts_lookup(e, st.stx_mnt_id, &dev);
	return dev;
}

/* ---- the path, if it can be trusted ---- */

/* The file looked up again by handle through the daemon's own mount of
 * its filesystem; the path found there, if it names the same inode. */
static char *
path_by_handle(struct engine *e, struct flt_callback_data *d)
{
	struct {
		struct file_handle h;
		unsigned char bytes[128];
	} fh;
	struct flt_statx st;
	char *path = NULL;
	int mnt;

	fh.h.handle_bytes = sizeof(fh.bytes);
	if (name_to_handle_at(d->fd, "", &fh.h, &mnt, AT_EMPTY_PATH) < 0)
		return NULL;
	if (marks_path_by_handle(e, d->priv->fs_dev, &fh.h, &path) < 0)
		return NULL;
	/* A disconnected dentry, or one outside what the daemon's mount
	 * shows, reads as a path that names something else, or nothing. */
	if (path && (flt_statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW,
			       FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0 ||
		     flt_statx_dev(&st) != d->dev || st.stx_ino != (uint64_t)d->ino ||
		     !mounts_lookup(e, st.stx_mnt_id, NULL))) {
		free(path);
		path = NULL;
	}
	return path;
}

/* An access through a mount of a watched namespace: the path read back
 * is that namespace's; through /proc/PID/root it names the file here,
 * if it names the same inode on the same mount. */
static char *
path_in_watched_ns(struct flt_callback_data *d, const char *ns_path)
{
	struct flt_event_priv *pv = d->priv;
	struct flt_statx st;
	char *path;

	if (ns_path[0] != '/' ||
	    asprintf(&path, "/proc/%d/root%s", (int)pv->ns_pid, ns_path) < 0)
		return NULL;
	if (flt_statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW,
		      FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0 ||
	    st.stx_ino != (uint64_t)d->ino || st.stx_mnt_id != pv->mnt_id) {
		free(path);
		return NULL;
	}
	return path;
}

static void
ensure_scope(struct flt_callback_data *d)
{
	struct flt_event_priv *pv = d->priv;

	if (pv->scope != SCOPE_NONE)
		return;
	ensure_stat(d);
	pv->scope = SCOPE_NO_PATH;
	if (d->path) { /* notifications bring theirs */
		pv->scope = SCOPE_TRUSTED;
		return;
	}
	if (d->fd < 0 || resolve_fd_path(d->fd, &pv->path_buf) < 0) {
		d->flags |= FLT_EVENT_PATH_UNKNOWN;
		return;
	}
	/* Without a mount id (before Linux 5.8, below the minimum) the path
	 * is taken as it reads. */
	if (!pv->mount_ours) {
		char *p = pv->ns_pid ? path_in_watched_ns(d, pv->path_buf) : NULL;

		free(pv->path_buf);
		pv->path_buf = p ? p : path_by_handle(pv->e, d);
		if (!pv->path_buf) {
			d->flags |= FLT_EVENT_PATH_UNKNOWN;
			return;
		}
	}
	d->path = pv->path_buf;
	pv->scope = SCOPE_TRUSTED;
}

void
event_fill_identity(struct flt_callback_data *d)
{
	ensure_stat(d);
	ensure_scope(d);
}

void
event_fill_stat(struct flt_callback_data *d)
{
	ensure_stat(d);
}

const char *
flt_event_path(const struct flt_callback_data *data)
{
	/* The event is not const (the engine's), only the callback's view
	 * of it; as flt_get_process(), this fills in what it resolves. */
	struct flt_callback_data *d = (struct flt_callback_data *)data;

	if (!d)
		return NULL;
	/* Notifications bring their paths; only a permission event may
	 * still be waiting for its own. */
	if (d->priv && d->priv->perm)
		ensure_scope(d);
	return d->path;
}

/* ---- "outside" must be settled ---- */

static int64_t
realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Only root can write (create, remove or rename entries in) it: owned by
 * root, no group or other write bit. With a POSIX ACL the group bits
 * are the ACL's mask, which bounds every named user and group, so an ACL
 * cannot grant anyone else writing without setting S_IWGRP. */
static bool
root_only(uint32_t uid, uint16_t mode)
{
	return uid == 0 && !(mode & (S_IWGRP | S_IWOTH));
}

/*
 * Whether the event's path can have moved under our eyes. A rename of
 * M into a directory P needs write permission on P, and sets M's ctime.
 * So for every link of the path, from the file up to "/": if the parent
 * P is writable by someone other than root, the child must not have
 * changed within SCOPE_SETTLE_MS (a ctime in the future counts as
 * recent). Links under root-only directories need no look at the clock:
 * only root can have moved anything there. On a filesystem whose ctime
 * on rename is not known to be kept, any link under a user-writable
 * directory makes the path unsettled.
 */
static bool
path_settled(struct flt_callback_data *d, bool ctime_on_rename)
{
	int64_t since = realtime_ns() - (int64_t)SCOPE_SETTLE_MS * 1000000;
	struct flt_event_priv *pv = d->priv;
	size_t len = strlen(d->path);
	int64_t child_ctime = pv->ctime_ns;
	uint64_t child_mnt = pv->mnt_id;
	char *buf;
	bool ok = true;

	if (!pv->identity_ok)
		return false;
	buf = malloc(len + 1);
	if (!buf)
		return false;
	memcpy(buf, d->path, len + 1);
	while (ok) {
		char *slash = strrchr(buf, '/');
		struct flt_statx st;

		if (!slash)
			break;
		if (slash == buf)
			slash[1] = '\0'; /* "/" itself, last */
		else
			*slash = '\0';
		if (flt_statx(AT_FDCWD, buf, AT_SYMLINK_NOFOLLOW,
			      FLT_STATX_CTIME | FLT_STATX_MODE | FLT_STATX_UID |
				      FLT_STATX_MNT_ID,
			      &st) < 0) {
			ok = false; /* the path changed: it names nothing now */
			break;
		}
		if (!root_only(st.stx_uid, st.stx_mode) && child_mnt == st.stx_mnt_id)
			ok = ctime_on_rename && child_ctime <= since;
		/* A child on another mount is that mount's root: its ctime is
		 * the mounted directory's, and the directory it is mounted on
		 * cannot be renamed in this namespace (EBUSY). */
		child_ctime = flt_statx_ctime_ns(&st);
		child_mnt = st.stx_mnt_id;
		if (slash == buf)
			break;
	}
	free(buf);
	return ok;
}

static bool
path_under(const char *p, const char *root, size_t len)
{
	if (!p)
		return false;
	if (len == 1 && root[0] == '/')
		return p[0] == '/';
	return !strncmp(p, root, len) && (p[len] == '/' || p[len] == '\0');
}

static const struct dt_instance *
uncertain(struct flt_callback_data *d, const struct dt_instance *in)
{
	if (!(d->flags & FLT_EVENT_SCOPE_UNCERTAIN)) {
		d->flags |= FLT_EVENT_SCOPE_UNCERTAIN;
		atomic_fetch_add(&d->priv->e->ctr.scope_uncertain, 1);
	}
	return in;
}

/* Whether any filter of t has an instance on dev: events come only from
 * marked filesystems, so a device no instance names is one the engine
 * cannot place (a subvolume reached through a mount of another
 * namespace). */
static bool
dev_known(const struct dtable *t, dev_t dev)
{
	for (size_t i = 0; i < t->n; i++)
		for (size_t j = 0; j < t->f[i].n_inst; j++)
			if (t->f[i].inst[j].dev == dev)
				return true;
	return false;
}

const struct dt_instance *
instance_match(const struct dtable *t, const struct dt_filter *df,
	       struct flt_callback_data *d, bool *ret_on_dev)
{
	struct flt_event_priv *pv = d->priv;
	const struct dt_instance *first = NULL;
	bool perm = pv->perm != NULL, on_dev = false;
	dev_t dev;

	ensure_stat(d);
	dev = perm ? pv->fs_dev : d->dev;
	for (size_t i = 0; i < df->n_inst; i++) {
		const struct dt_instance *in = &df->inst[i];

		if (in->dev != dev)
			continue;
		on_dev = true;
		if (in->kind == FLT_INSTANCE_FILESYSTEM)
			return in;
		/* A MOUNT instance and an access through one of the daemon's
		 * mounts: the mount ids say it, exactly (no path needed, and
		 * no rename can move a file to another mount). */
		if (in->kind == FLT_INSTANCE_MOUNT && perm && in->mnt_id &&
		    pv->mnt_id_known && (pv->mount_ours || pv->ns_pid)) {
			if (pv->mnt_id == in->mnt_id)
				return in;
			continue;
		}
		if (!first)
			first = in;
		if (perm)
			ensure_scope(d);
		if (path_under(d->path, in->path, in->len) ||
		    path_under(d->new_path, in->path, in->len))
			return in;
	}
	if (ret_on_dev)
		*ret_on_dev = on_dev;
	if (!perm)
		return NULL; /* notifications: notif.c decides on unknown paths */
	if (on_dev && !first)
		return NULL; /* only MOUNT instances, surely not this mount */
	if (!first) {
		/* No instance of df on this filesystem, unless the engine
		 * cannot tell which filesystem it is. */
		if (pv->dev_known == 0)
			pv->dev_known = pv->identity_ok && dev_known(t, dev) ? 1 : 2;
		if (pv->dev_known == 1 || df->n_inst == 0)
			return NULL;
		if (ret_on_dev)
			*ret_on_dev = true;
		return uncertain(d, &df->inst[0]);
	}
	if (pv->scope != SCOPE_TRUSTED)
		return uncertain(d, first);
	if (pv->settled == 0)
		pv->settled =
			path_settled(d, scope_fs_type_known(first->fs_type)) ? 1 : 2;
	return pv->settled == 1 ? NULL : uncertain(d, first);
}
