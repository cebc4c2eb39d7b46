/* SPDX-License-Identifier: MIT */
/*
 * anchor.c — see anchor.h. Finds the root of the mount a directory is on
 * (walking ".." until the mount changes), names it as this namespace does,
 * and clones that one mount, detached, into the anchor.
 */
#include "engine/anchor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/statx_compat.h"

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif

static int
mount_and_inode(int fd, uint64_t *ret_mnt, uint64_t *ret_ino, uint64_t *ret_dev)
{
	struct flt_statx st;

	if (flt_statx(fd, "", AT_EMPTY_PATH, FLT_STATX_INO | FLT_STATX_MNT_ID, &st) < 0)
		return -errno;
	if (!(st.stx_mask & FLT_STATX_MNT_ID))
		return -EOPNOTSUPP;
	*ret_mnt = st.stx_mnt_id;
	*ret_ino = st.stx_ino;
	*ret_dev = (uint64_t)flt_statx_dev(&st);
	return 0;
}

/* The root directory of the mount fd is on, as a new fd. */
static int
mount_root(int fd, uint64_t *ret_mnt_id)
{
	uint64_t mnt, ino, dev;
	int cur, r;

	r = mount_and_inode(fd, &mnt, &ino, &dev);
	if (r < 0)
		return r;
	cur = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	for (int depth = 0; depth < PATH_MAX / 2; depth++) {
		uint64_t m2, i2, d2;
		int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (up < 0)
			break;
		/* another mount above, or the root (its ".." is itself) */
		if (mount_and_inode(up, &m2, &i2, &d2) < 0 || m2 != mnt ||
		    (i2 == ino && d2 == dev)) {
			close(up);
			break;
		}
		close(cur);
		cur = up;
		ino = i2;
		dev = d2;
	}
	*ret_mnt_id = mnt;
	return cur;
}

int
anchor_open(int fd, struct anchor *ret)
{
	char link[64], point[PATH_MAX];
	uint64_t mnt_id = 0;
	int root, tree, dir, err;
	ssize_t n;

	*ret = (struct anchor){ .fd = -1 };
	root = mount_root(fd, &mnt_id);
	if (root < 0)
		return root;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", root);
	n = readlink(link, point, sizeof(point) - 1);
	if (n <= 0 || point[0] != '/') {
		err = n < 0 ? errno : ENOENT;
		close(root);
		return -err;
	}
	point[n] = '\0';
	tree = (int)syscall(SYS_open_tree, root, "",
			    AT_EMPTY_PATH | OPEN_TREE_CLONE | O_CLOEXEC);
	err = errno;
	close(root);
	if (tree < 0)
		return -err;
	/* open_tree gives an O_PATH file, which neither open_by_handle_at
	 * nor fanotify_mark accepts: open the clone's root for real. */
	dir = openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = errno;
	close(tree);
	if (dir < 0)
		return -err;
	ret->prefix = strdup(point);
	if (!ret->prefix) {
		close(dir);
		return -ENOMEM;
	}
	ret->fd = dir;
	ret->mnt_id = mnt_id;
	return 0;
}

void
anchor_close(struct anchor *a)
{
	if (a->fd >= 0)
		close(a->fd);
	free(a->prefix);
	*a = (struct anchor){ .fd = -1 };
}

int
anchor_path(int fd, const char *prefix, char **ret_path)
{
	char link[64], buf[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (!prefix || !strcmp(prefix, "/")) {
		*ret_path = strdup(buf);
	} else if (buf[0] != '/') {
		return -ENOENT; /* not a path (an anonymous file) */
	} else if (!strcmp(buf, "/")) {
		*ret_path = strdup(prefix);
	} else if (asprintf(ret_path, "%s%s", prefix, buf) < 0) {
		*ret_path = NULL;
	}
	return *ret_path ? 0 : -ENOMEM;
}
