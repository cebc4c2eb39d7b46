/* SPDX-License-Identifier: MIT */
/*
 * rundir.c — see rundir.h. The lock is an flock(2) on the pid file: it
 * dies with the process, so a crashed daemon never blocks the next one,
 * and the file's content (the holder's pid) is only a message.
 */
#include "daemon/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int
mkdir_parents(const char *dir)
{
	char buf[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int
rundir_lock(const char *dir, pid_t *ret_holder, char **ret_why)
{
	char path[PATH_MAX], pidbuf[32] = "";
	struct stat st;
	ssize_t n;
	int fd, r;

	*ret_why = NULL;
	*ret_holder = 0;
	if (dir[0] != '/') {
		if (asprintf(ret_why, "runtime directory %s is not an absolute path",
			     dir) < 0)
			*ret_why = NULL;
		return -EINVAL;
	}
	r = mkdir_parents(dir);
	if (r < 0 || stat(dir, &st) < 0) {
		r = r < 0 ? r : -errno;
		if (asprintf(ret_why, "runtime directory %s: %s", dir, strerror(-r)) < 0)
			*ret_why = NULL;
		return r;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		if (asprintf(ret_why,
			     "runtime directory %s must be a directory owned by uid %u "
			     "and not writable by group or others (it is uid %u, mode "
			     "%04o): others could replace the daemon's sockets",
			     dir, (unsigned)geteuid(), (unsigned)st.st_uid,
			     (unsigned)(st.st_mode & 07777)) < 0)
			*ret_why = NULL;
		return -EPERM;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/fltmgrd.pid", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		if (asprintf(ret_why, "%s: %s", path, strerror(errno)) < 0)
			*ret_why = NULL;
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		n = pread(fd, pidbuf, sizeof(pidbuf) - 1, 0);
		if (n > 0) {
			pidbuf[n] = '\0';
			*ret_holder = (pid_t)atoi(pidbuf);
		}
		close(fd);
		if (asprintf(ret_why,
			     "another fltmgrd (pid %d) is running with runtime directory "
			     "%s",
			     (int)*ret_holder, dir) < 0)
			*ret_why = NULL;
		return r;
	}
	return fd;
}

int
rundir_write_pid(int lock_fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (ftruncate(lock_fd, 0) < 0 || pwrite(lock_fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

void
rundir_unlock(int lock_fd)
{
	/* The file stays: deleting it would let two later daemons lock two
	 * different files. Emptied, it names no one. */
	if (lock_fd < 0)
		return;
	if (ftruncate(lock_fd, 0) < 0) {
		/* only a stale pid left behind */
	}
	close(lock_fd);
}
