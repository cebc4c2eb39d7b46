/* SPDX-License-Identifier: MIT */
/*
 * anchor.h — a directory the engine holds open on each marked filesystem
 * (for open_by_handle_at and the filesystem's fanotify marks) without
 * pinning the mount it was found through.
 *
 * Any open file on a mount makes umount(2) fail with EBUSY: an engine
 * holding the marked directory itself would refuse every unmount of a
 * filtered volume (a USB disk, a data volume). The anchor is instead the
 * root of a private, detached clone of that mount (open_tree(2) with
 * OPEN_TREE_CLONE, Linux 5.2): the original unmounts normally, the mount
 * watcher then tears the instances down, and the filesystem is released
 * when the last anchor on it closes. Paths the kernel shows for files
 * opened through the clone are relative to the mount's root; the mount
 * point it was cloned from is their prefix.
 */
#ifndef FLTMGR_ANCHOR_H
#define FLTMGR_ANCHOR_H

#include <stdint.h>

struct anchor {
	int fd;          /* O_RDONLY directory: the clone's root, or (fallback)
			   the directory itself, which pins its mount */
	char *prefix;    /* the cloned mount's point; NULL when fd is no clone */
	uint64_t mnt_id; /* the mount cloned (0: unknown) */
};

/* An anchor for the filesystem of the directory fd (which stays the
 * caller's). -errno if no clone could be made (old kernel, no privilege):
 * the caller then holds the directory itself. */
int anchor_open(int fd, struct anchor *ret);
void anchor_close(struct anchor *a);

/* The path of fd, a file opened by handle through an anchor with this
 * prefix (NULL: the kernel's path is already whole), as malloc'ed text. */
int anchor_path(int fd, const char *prefix, char **ret_path);

#endif
