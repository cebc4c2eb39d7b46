/* SPDX-License-Identifier: MIT */
/*
 * vcache.c — the kernel verdict cache: whether an allow may be kept in
 * the kernel as an ignore mark on the file's inode, and putting it there.
 *
 * An ignore mark is cleared by the kernel only on a modify event. Some
 * writes make none: stores through a shared mmap() change the file with
 * no event at all. So a mark may only be put on a file whose content no
 * unprivileged user can change by any route, and only while nobody has it
 * open for writing:
 *
 *   - a regular file owned by root, with no group or other write bit (a
 *     POSIX ACL's mask is the group bits and bounds every named entry, so
 *     no ACL grants anyone else writing without S_IWGRP);
 *   - on a local filesystem that enforces ownership (scope.c's list;
 *     never FUSE, network or foreign filesystems);
 *   - with no writer now: a read lease can be taken on the event's
 *     descriptor only when nobody has the file open for writing (a
 *     shared writable mapping keeps its writer), and is given back at
 *     once. A writer that comes later must open the file, and only root
 *     can.
 *
 * Everything else is answered from user space every time (the filters'
 * own caches are theirs to keep true). Refusals are counted in
 * cache_refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "engine/engine.h"
#include "engine/fanotify_compat.h"

bool
vcache_file_may_be_cached(const struct flt_callback_data *d)
{
	const struct flt_event_priv *pv = d->priv;
	struct statfs sfs;

	if (!pv->identity_ok || !S_ISREG(pv->mode) || pv->uid != 0 ||
	    (pv->mode & (S_IWGRP | S_IWOTH)))
		return false;
	if (fstatfs(d->fd, &sfs) < 0 || !scope_fs_type_known((long)sfs.f_type))
		return false;
	if (fcntl(d->fd, F_SETLEASE, F_RDLCK) < 0)
		return false; /* EAGAIN: someone has it open for writing */
	(void)fcntl(d->fd, F_SETLEASE, F_UNLCK);
	return true;
}

void
vcache_insert(struct engine *e, int fd, enum flt_operation op)
{
	uint64_t m = op == FLT_OP_EXEC   ? FAN_OPEN_EXEC_PERM
		     : op == FLT_OP_READ ? FAN_ACCESS_PERM
					 : FAN_OPEN_PERM;

	/* Evictable: it goes when the kernel evicts the inode; without
	 * FAN_MARK_IGNORED_SURV_MODIFY it goes on the next modify event. */
	if (fanotify_mark(e->perm_fd, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE,
			  m, fd, NULL) == 0)
		atomic_fetch_add(&e->ctr.cache_inserts, 1);
}
