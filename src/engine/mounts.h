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
/* A copy of the table of the daemon's namespace (ns_pid 0) or of a
 * watched namespace (mounttab_free() it; empty if not watched). */
int mounts_snapshot(struct engine *e, pid_t ns_pid, struct mount_table **ret);
/* Watches the mount namespace of process pid (/proc/PID/mountinfo) from
 * now on: its volumes can be attached automatically. 0 (also if already
 * watched), -ESRCH, -EMFILE (MOUNTS_MAX_NS namespaces already). */
int mounts_watch_ns(struct engine *e, pid_t pid);
/* The watched namespaces' processes, at most max; returns how many. */
#define MOUNTS_MAX_NS_LISTED 32
size_t mounts_watched(struct engine *e, pid_t *ret, size_t max);
/* Whether mnt_id is a mount of a watched namespace; its device and the
 * watched process then (either may be NULL). */
bool mounts_lookup_foreign(struct engine *e, uint64_t mnt_id, dev_t *ret_dev,
			   pid_t *ret_pid);
/* The device of the filesystem (superblock) holding path, as the mount
 * table names it: on btrfs, a subvolume's files have a device number of
 * their own (st_dev), but one superblock, one mark. Reads the table
 * (for attach and re-resolution, not events); 0 if path is not there. */
dev_t mounts_fs_dev_of_path(const char *path);
dev_t mounts_fs_dev_of_fd(struct engine *e, int fd);
/* The same through the watcher's table (no read of mountinfo), falling
 * back to a read when the path's mount is newer than the table; the
 * path's mount id in *ret_mnt_id (may be NULL; 0 if unknown). */
dev_t mounts_fs_dev_of_path_cached(struct engine *e, const char *path,
				   uint64_t *ret_mnt_id);
/* The id of the mount path is on (0 if unknown). */
uint64_t mounts_id_of_path(const char *path);

#endif
