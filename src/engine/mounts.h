/* SPDX-License-Identifier: MIT */
/*
 * mounts.h — the daemon's own mount table, kept current by a watcher
 * thread: which mount ids belong to the daemon's mount namespace (a path
 * read from an event descriptor means something here only if the access
 * went through one of them), the volumes automatic attachment works from,
 * and the trigger that re-resolves instances when mounts change
 * (engine.c: engine_revalidate_instances; volumes.c: volumes_changed).
 */
#ifndef FLTMGR_MOUNTS_H
#define FLTMGR_MOUNTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/mounttab.h"

struct engine;
struct mounts;

/* Reads the table and starts the watcher (thread "flt-mounts"). */
int mounts_start(struct engine *e);
/* Stops the watcher (e->stop_efd must be signalled first) and frees. */
void mounts_stop(struct engine *e);
/* Whether changes come from kernel mount notifications (else polling). */
bool mounts_kernel_notifications(struct engine *e);
/* Whether mnt_id (statx STATX_MNT_ID) is a mount of this process's mount
 * namespace (or the initial one) as of the last read of the table; if so
 * *ret_dev (may be NULL) is its filesystem's device. */
bool mounts_lookup(struct engine *e, uint64_t mnt_id, dev_t *ret_dev);
/* A copy of this namespace's table (mounttab_free() it). */
int mounts_snapshot(struct engine *e, struct mount_table **ret);
/* The device of the filesystem (superblock) holding path, as the mount
 * table names it: on btrfs, a subvolume's files have a device number of
 * their own (st_dev), but one superblock, one mark. Reads the table
 * (for attach and re-resolution, not events); 0 if path is not there. */
dev_t mounts_fs_dev_of_path(const char *path);
dev_t mounts_fs_dev_of_fd(int fd);
/* The same through the watcher's table (no read of mountinfo), falling
 * back to a read when the path's mount is newer than the table; the
 * path's mount id in *ret_mnt_id (may be NULL; 0 if unknown). */
dev_t mounts_fs_dev_of_path_cached(struct engine *e, const char *path,
				   uint64_t *ret_mnt_id);
/* The id of the mount path is on (0 if unknown). */
uint64_t mounts_id_of_path(const char *path);

#endif
