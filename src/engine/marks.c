/* SPDX-License-Identifier: MIT */
/*
 * marks.c — one filesystem mark per filesystem that has instances, in each
 * group, carrying the union of what the started filters on it need. The
 * kernel offers no recursive directory marks, and mount marks cannot carry
 * create/delete/rename, so instances of every kind are served by a
 * filesystem mark and narrowed in user space (resolve.c: instance_match).
 * Caller holds engine->lock throughout.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/anchor.h"
#include "engine/mounts.h"
#include "engine/mounttab.h"
#include "engine/fanotify_compat.h"
#include "common/lockdep.h"

static uint64_t
perm_mask(uint32_t ops)
{
	uint64_t m = 0;

	if (ops & op_bit(FLT_OP_OPEN))
		m |= FAN_OPEN_PERM;
	if (ops & op_bit(FLT_OP_EXEC))
		m |= FAN_OPEN_EXEC_PERM;
	if (ops & op_bit(FLT_OP_READ))
		m |= FAN_ACCESS_PERM;
	return m;
}

static uint64_t
notif_mask(uint32_t ops, bool rename_ok)
{
	static const struct {
		enum flt_operation op;
		uint64_t m;
	} map[] = {
		{ FLT_OP_OPEN, FAN_OPEN },
		{ FLT_OP_EXEC, FAN_OPEN_EXEC },
		{ FLT_OP_READ, FAN_ACCESS },
		{ FLT_OP_WRITE, FAN_MODIFY },
		{ FLT_OP_CLOSE_WRITE, FAN_CLOSE_WRITE },
		{ FLT_OP_CLOSE, FAN_CLOSE_NOWRITE },
		{ FLT_OP_ATTRIB, FAN_ATTRIB },
		{ FLT_OP_CREATE, FAN_CREATE },
		{ FLT_OP_DELETE, FAN_DELETE },
		{ FLT_OP_RENAME, FAN_RENAME },
	};
	uint64_t m = 0;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (ops & op_bit(map[i].op))
			m |= map[i].m;
	/* Directory renames are always watched when anything is: they are
	 * what keeps the directory-path cache honest (resolve.c). */
	if (m && rename_ok)
		m |= FAN_RENAME;
	if (!rename_ok)
		m &= ~(uint64_t)FAN_RENAME;
	if (m & (FAN_ATTRIB | FAN_CREATE | FAN_DELETE | FAN_RENAME))
		m |= FAN_ONDIR;
	return m;
}

static int
apply(int group, int dir_fd, uint64_t old_mask, uint64_t new_mask)
{
	uint64_t add = new_mask & ~old_mask, del = old_mask & ~new_mask;

	/* FAN_ONDIR is a flag, not an event: re-add it with the events. */
	if (group < 0)
		return new_mask ? -EOPNOTSUPP : 0;
	if (add && fanotify_mark(group, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
				 add | (new_mask & FAN_ONDIR), dir_fd, NULL) < 0)
		return -errno;
	if (del &&
	    fanotify_mark(group, FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, del, dir_fd,
			  NULL) < 0 &&
	    errno != ENOENT)
		return -errno;
	return 0;
}

struct fsmark *
marks_find_fsid_locked(struct engine *e, uint64_t fsid)
{
	lockdep_assert_held(&e->lock);
	for (struct fsmark *mk = e->marks; mk; mk = mk->next)
		if (mk->fsid == fsid)
			return mk;
	return NULL;
}

static struct fsmark *
find_dev(struct engine *e, dev_t dev)
{
	for (struct fsmark *mk = e->marks; mk; mk = mk->next)
		if (mk->dev == dev)
			return mk;
	return NULL;
}

int
marks_path_by_handle(struct engine *e, dev_t dev, struct file_handle *fh, char **ret_path)
{
	char prefix[PATH_MAX] = "";
	struct fsmark *mk;
	int fd, r;

	pthread_mutex_lock(&e->lock);
	mk = find_dev(e, dev);
	fd = !mk ? -ENODEV : open_by_handle_at(mk->dir_fd, fh, O_PATH | O_CLOEXEC);
	if (fd == -1)
		fd = -errno;
	if (fd >= 0 && mk->prefix)
		snprintf(prefix, sizeof(prefix), "%s", mk->prefix);
	pthread_mutex_unlock(&e->lock);
	if (fd < 0)
		return fd;
	r = anchor_path(fd, prefix[0] ? prefix : NULL, ret_path);
	close(fd);
	return r;
}

/* The anchors whose cloned mount is gone (unmounted, while another mount
 * of the filesystem is still filtered): cloned again from a mount of the
 * filesystem that is still there, so the paths read through them have a
 * prefix that exists. The paths are opened without e->lock (a hung mount
 * must not stall event resolution). */
void
marks_reanchor(struct engine *e)
{
	struct stale_anchor {
		dev_t dev;
		uint64_t old_id;
	} want[16];
	struct mount_table *t = NULL;
	size_t n = 0;

	pthread_mutex_lock(&e->lock);
	for (struct fsmark *mk = e->marks; mk && n < 16; mk = mk->next)
		if (mk->anchor_mnt_id && !mounts_lookup(e, mk->anchor_mnt_id, NULL))
			want[n++] = (struct stale_anchor){ mk->dev, mk->anchor_mnt_id };
	pthread_mutex_unlock(&e->lock);
	if (!n || mounts_snapshot(e, 0, &t) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		struct anchor a = { .fd = -1 };

		for (size_t k = 0; k < t->n && a.fd < 0; k++) {
			const struct mount_entry *me = &t->v[k];
			int fd;

			if (me->dev != want[i].dev)
				continue;
			fd = open(me->point, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				continue;
			if (mounts_fs_dev_of_fd(e, fd) != want[i].dev ||
			    anchor_open(fd, &a) < 0)
				anchor_close(&a);
			close(fd);
		}
		if (a.fd < 0)
			continue; /* no mount of it left: its instances go */
		pthread_mutex_lock(&e->lock);
		for (struct fsmark *mk = e->marks; mk; mk = mk->next) {
			if (mk->dev != want[i].dev || mk->anchor_mnt_id != want[i].old_id)
				continue;
			log_info(e->mgr,
				 "marks: the filesystem of %s is now reached through %s "
				 "(the mount it was found on is gone)",
				 mk->path, a.prefix);
			/* The marks are the superblock's: nothing to mark again. */
			{
				struct anchor old = { .fd = mk->dir_fd,
						      .prefix = mk->prefix,
						      .mnt_id = mk->anchor_mnt_id };

				mk->dir_fd = a.fd;
				mk->prefix = a.prefix;
				mk->anchor_mnt_id = a.mnt_id;
				a = old;
			}
			break;
		}
		pthread_mutex_unlock(&e->lock);
		anchor_close(&a); /* the old one, or the unused new one */
	}
	mounttab_free(t);
}

static void
mark_free(struct engine *e, struct fsmark *mk)
{
	(void)apply(e->perm_fd, mk->dir_fd, mk->perm_mask, 0);
	(void)apply(e->notif_fd, mk->dir_fd, mk->notif_mask, 0);
	close(mk->dir_fd);
	free(mk->prefix);
	free(mk->path);
	free(mk);
}

/*
 * Where do this filesystem's file handles keep the inode number? Handles
 * are opaque, but the common encodings are known: the kernel's generic
 * FILEID_INO32_GEN (type 1, 8 bytes: u32 inode, u32 generation: ext2/3/4
 * and most others), tmpfs's own type 1 (12 bytes: u32 generation, u64
 * inode) and FILEID_INO64_GEN (type 0x81, 12 bytes: u64 inode, u32
 * generation). The layout is used only if decoding the marked directory's
 * own handle gives its st_ino; otherwise notifications fall back to an
 * fstatat per event.
 */
/* size bytes at off in a handle as a number: copied into the low bytes
 * of a zeroed u64, which is right on a little-endian host; elsewhere the
 * check against st_ino below fails and no layout is used. */
static uint64_t
handle_number(const struct file_handle *fh, unsigned off, unsigned size)
{
	uint64_t v = 0;

	memcpy(&v, fh->f_handle + off, size);
	return v;
}

static void
learn_handle_layout(struct fsmark *mk)
{
	static const struct {
		int type;
		uint32_t bytes;
		uint8_t off, size;
	} known[] = {
		{ 1, 8, 0, 4 },
		{ 1, 12, 4, 8 },
		{ 0x81, 12, 0, 8 },
	};
	struct {
		struct file_handle h;
		unsigned char bytes[128];
	} fh;
	struct stat st;
	int mnt;

	fh.h.handle_bytes = sizeof(fh.bytes);
	if (name_to_handle_at(mk->dir_fd, "", &fh.h, &mnt, AT_EMPTY_PATH) < 0 ||
	    fstat(mk->dir_fd, &st) < 0)
		return;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (fh.h.handle_type != known[i].type ||
		    fh.h.handle_bytes != known[i].bytes)
			continue;
		if (handle_number(&fh.h, known[i].off, known[i].size) !=
		    (uint64_t)st.st_ino)
			return; /* not the layout we think: do not guess */
		mk->ino_handle_type = known[i].type;
		mk->ino_handle_bytes = known[i].bytes;
		mk->ino_off = known[i].off;
		mk->ino_size = known[i].size;
		return;
	}
}

ino_t
marks_ino_from_handle(const struct fsmark *mk, const struct file_handle *fh)
{
	if (!mk->ino_size || fh->handle_type != mk->ino_handle_type ||
	    fh->handle_bytes != mk->ino_handle_bytes)
		return 0;
	return (ino_t)handle_number(fh, mk->ino_off, mk->ino_size);
}

static struct fsmark *
mark_new(struct engine *e, const char *path, dev_t dev)
{
	struct fsmark *mk = calloc(1, sizeof(*mk));
	struct statfs sfs;
	struct anchor a;
	int fd, r;

	if (!mk)
		return NULL;
	mk->dev = dev;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	mk->path = strdup(path);
	if (fd < 0 || !mk->path || fstatfs(fd, &sfs) < 0 ||
	    mounts_fs_dev_of_fd(e, fd) != dev) {
		/* The last: the path names another filesystem than the one
		 * the instance was placed on (a mount came in between). A
		 * mark there would be filed under the wrong device, and its
		 * removal would strip the other one's bits from that
		 * superblock; the mount watcher places the instance again. */
		int err = fd < 0 || !mk->path ? errno : ESTALE;

		if (fd >= 0)
			close(fd);
		free(mk->path);
		free(mk);
		errno = err;
		return NULL;
	}
	r = anchor_open(fd, &a);
	if (r == 0) {
		close(fd);
		mk->dir_fd = a.fd;
		mk->prefix = a.prefix;
		mk->anchor_mnt_id = a.mnt_id;
	} else {
		mk->dir_fd = fd;
		log_notice(e->mgr,
			   "marks: cannot clone the mount of %s (%s): the engine holds "
			   "it open, and unmounting it is refused (busy) while it is "
			   "filtered",
			   path, strerror(-r));
	}
	memcpy(&mk->fsid, &sfs.f_fsid, sizeof(mk->fsid));
	learn_handle_layout(mk);
	fan_probe_filesystem(e, mk->dir_fd, path);
	log_info(e->mgr, "marking the filesystem of %s: inode numbers %s", path,
		 mk->ino_size ? "read from file handles"
			      : "by fstatat (unknown handle layout)");
	mk->next = e->marks;
	e->marks = mk;
	return mk;
}

int
marks_sync_locked(struct engine *e, const struct dtable *t)
{
	lockdep_assert_held(&e->lock);
	int r = 0;

	for (struct fsmark *mk = e->marks; mk; mk = mk->next)
		mk->refs = 0;
	/* What each filesystem needs now. */
	for (size_t i = 0; i < t->n; i++) {
		const struct dt_filter *df = &t->f[i];

		for (size_t j = 0; j < df->n_inst; j++) {
			const struct dt_instance *in = &df->inst[j];
			struct fsmark *mk = find_dev(e, in->dev);

			if (!mk)
				mk = mark_new(e, in->path, in->dev);
			if (!mk && errno == ESTALE) {
				log_notice(
					e->mgr,
					"%s names another filesystem than its instance's "
					"now (a mount came in between): placed again "
					"shortly",
					in->path);
				r = r ? r : -ESTALE;
				continue;
			}
			if (!mk) {
				log_error(e->mgr, "cannot mark the filesystem of %s: %s",
					  in->path, strerror(errno));
				r = r ? r : -errno;
				continue;
			}
			mk->refs++;
		}
	}
	for (struct fsmark **pp = &e->marks; *pp;) {
		struct fsmark *mk = *pp;
		uint32_t pre = 0, notif = 0;
		uint64_t pm, nm;
		int r2;

		if (mk->refs == 0) {
			*pp = mk->next;
			mark_free(e, mk);
			continue;
		}
		for (size_t i = 0; i < t->n; i++)
			for (size_t j = 0; j < t->f[i].n_inst; j++)
				if (t->f[i].inst[j].dev == mk->dev) {
					pre |= t->f[i].pre_ops;
					notif |= t->f[i].notif_ops;
				}
		pm = perm_mask(pre);
		nm = notif_mask(notif, e->feat.rename);
		r2 = apply(e->perm_fd, mk->dir_fd, mk->perm_mask, pm);
		if (r2 == 0)
			mk->perm_mask = pm;
		else
			log_error(e->mgr, "fanotify: permission mark on %s: %s", mk->path,
				  strerror(-r2));
		if (r2 == 0) {
			r2 = apply(e->notif_fd, mk->dir_fd, mk->notif_mask, nm);
			if (r2 == 0)
				mk->notif_mask = nm;
			else
				log_error(e->mgr, "fanotify: notification mark on %s: %s",
					  mk->path, strerror(-r2));
		}
		if (r2 < 0 && !r)
			r = r2;
		pp = &mk->next;
	}
	return r;
}

void
marks_free_all_locked(struct engine *e)
{
	lockdep_assert_held(&e->lock);
	while (e->marks) {
		struct fsmark *mk = e->marks;

		e->marks = mk->next;
		mark_free(e, mk);
	}
}
