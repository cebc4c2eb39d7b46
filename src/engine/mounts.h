/* SPDX-License-Identifier: MIT */
/*
 * mounts.h — the daemon's own mount table, kept current by a watcher
 * thread: which mount ids belong to the daemon's mount namespace (a path
 * read from an event descriptor means something here only if the access
 * went through one of them), and the trigger that re-resolves instances
 * when mounts change (engine.c: engine_revalidate_instances).
 */
#ifndef FLTMGR_MOUNTS_H
#define FLTMGR_MOUNTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct engine;
struct mounts;

/* Reads the table and starts the watcher (thread "flt-mounts"). */
int mounts_start(struct engine *e);
/* Stops the watcher (e->stop_efd must be signalled first) and frees. */
void mounts_stop(struct engine *e);
struct mount_id {
	uint64_t id;
	dev_t dev; /* the superblock's (mountinfo's MAJOR:MINOR) */
};

/* Whether mnt_id (statx STATX_MNT_ID) is a mount of this process's mount
 * namespace (or the initial one) as of the last read of the table; if so
 * *ret_dev (may be NULL) is its filesystem's device. */
bool mounts_lookup(struct engine *e, uint64_t mnt_id, dev_t *ret_dev);
/* The device of the filesystem (superblock) holding path, as the mount
 * table names it: on btrfs, a subvolume's files have a device number of
 * their own (st_dev), but one superblock, one mark. Reads the table
 * (for attach and re-resolution, not events); 0 if path is not there. */
dev_t mounts_fs_dev_of_path(const char *path);
dev_t mounts_fs_dev_of_fd(int fd);
/* The same through the watcher's table (no read of mountinfo), falling
 * back to a read when the path's mount is newer than the table. */
dev_t mounts_fs_dev_of_path_cached(struct engine *e, const char *path);
/* Parses mountinfo text into an array sorted by id (malloc'ed); returns
 * the count or -errno. For the watcher and for tests. */
long mounts_parse_ids(const char *text, struct mount_id **ret_ids);

#endif
