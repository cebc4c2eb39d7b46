/* SPDX-License-Identifier: MIT */
/*
 * config_auto.h — a filter's automatic attachment policy as written in
 * fltmgr.conf (the auto_attach keys of [filter NAME]), its checks, and its
 * translation into the library's struct flt_auto_attach:
 *
 *   auto_attach = ext4 xfs vfat    ; file-system types, or * (any but
 *                                  ; pseudo file systems); none: off
 *   auto_attach_kind = filesystem  ; or mount (one instance per mount)
 *   auto_attach_mounts = /media/?* /srv ; fnmatch patterns (default: any)
 *   auto_attach_exclude = /boot            ; never these mount points
 *   auto_attach_pid = 4242         ; or /run/ctr.pid: the mount namespace
 *                                  ; of that process (a container's)
 *
 * Lists are separated by blanks or commas. The other keys need
 * auto_attach; a kind of subtree is refused (a volume is a mount or a
 * filesystem).
 */
#ifndef FLTMGR_CONFIG_AUTO_H
#define FLTMGR_CONFIG_AUTO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <fltmgr/filter.h>

struct cfg_auto {
	char **fs_types; /* NULL-terminated; NULL: no automatic attachment */
	char **mounts;   /* NULL-terminated; NULL: any mount point */
	char **exclude;  /* NULL-terminated; NULL: none */
	enum flt_instance_kind kind;
	bool kind_given;
	pid_t pid;      /* 0: the daemon's own mount namespace */
	char *pid_file; /* or the pid read from this file when applied */
	int line;       /* of auto_attach (0: not written) */
	int other_line; /* of the first other auto_attach_* key */
};

/* 1: key is not one of ours. 0: taken. -EINVAL: refused, with a message
 * in err. -ENOMEM. */
int cfg_auto_key(struct cfg_auto *a, const char *key, const char *value, int line,
		 char *err, size_t err_size);
/* After the section is read: -EINVAL with a message (and the line it is
 * about in *ret_line) if the keys do not make a policy. */
int cfg_auto_check(const struct cfg_auto *a, char *err, size_t err_size, int *ret_line);

bool cfg_auto_enabled(const struct cfg_auto *a);
bool cfg_auto_same(const struct cfg_auto *a, const struct cfg_auto *b);
int cfg_auto_copy(const struct cfg_auto *src, struct cfg_auto *dst);
void cfg_auto_free(struct cfg_auto *a);

/* The policy for flt_set_auto_attach(): points into a (and pid, which
 * must outlive the call). Reads pid_file: -errno with a message if it
 * holds no pid. A disabled policy gives fs_types NULL (off). */
int cfg_auto_policy(const struct cfg_auto *a, struct flt_auto_attach *policy, char *err,
		    size_t err_size);
/* "ext4 xfs as filesystem instances, mount points /srv/data, in the
 * mount namespace of pid 42" — for log lines. malloc'ed or NULL. */
char *cfg_auto_describe(const struct cfg_auto *a);

#endif
