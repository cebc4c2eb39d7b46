/* SPDX-License-Identifier: MIT */
/*
 * mounttab.h — a mount table as /proc/PID/mountinfo lists it, parsed into
 * an immutable snapshot sorted by mount id: the facts an instance setup
 * callback is given about a volume, and what the engine needs to place an
 * event (mount id -> filesystem device). Pure: no engine state, no I/O
 * beyond reading the file it is given.
 */
#ifndef FLTMGR_MOUNTTAB_H
#define FLTMGR_MOUNTTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MOUNT_READ_ONLY  0x1u /* mounted ro (per-mount option) */
#define MOUNT_INIT_NS    0x2u /* listed by pid 1, not by this process */
#define MOUNT_FOREIGN_NS 0x4u /* listed by a watched process (a container) */

struct mount_entry {
	uint64_t id, parent;
	dev_t dev;         /* the filesystem's (MAJOR:MINOR) */
	const char *root;  /* the filesystem's directory mounted here */
	const char *point; /* where, in the namespace that lists it */
	const char *fstype;
	const char *source;
	uint32_t flags; /* MOUNT_* */
};

struct mount_table {
	size_t n;
	struct mount_entry *v; /* sorted by id, ids unique */
	char *strings;         /* owns every string of v */
};

/* Parses mountinfo text; flags are or'ed into every entry. A line that
 * does not parse is skipped. Returns 0 or -ENOMEM; *ret is freed with
 * mounttab_free(). */
int mounttab_parse(const char *text, uint32_t flags, struct mount_table **ret);
/* Reads and parses a mountinfo file from its start (re-arming POLLPRI). */
int mounttab_read_fd(int fd, uint32_t flags, struct mount_table **ret);
/* a + b (ids in both: a's entry). Frees neither. */
int mounttab_merge(const struct mount_table *a, const struct mount_table *b,
		   struct mount_table **ret);
void mounttab_free(struct mount_table *t);
const struct mount_entry *mounttab_find(const struct mount_table *t, uint64_t id);

/* Pseudo file systems (proc, sysfs, cgroup2, devpts, ...): no files a
 * filter scans; attached automatically only if named. */
bool mounttab_fstype_is_pseudo(const char *fstype);

#endif
