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

struct engine;
struct mounts;

/* Reads the table and starts the watcher (thread "flt-mounts"). */
int mounts_start(struct engine *e);
/* Stops the watcher (e->stop_efd must be signalled first) and frees. */
void mounts_stop(struct engine *e);
/* Whether mnt_id (statx STATX_MNT_ID) is a mount of this process's mount
 * namespace as of the last read of the table. */
bool mounts_is_ours(struct engine *e, uint64_t mnt_id);
/* Parses mountinfo text into a sorted array of mount ids (malloc'ed);
 * returns the count or -errno. For the watcher and for tests. */
long mounts_parse_ids(const char *text, uint64_t **ret_ids);

#endif
