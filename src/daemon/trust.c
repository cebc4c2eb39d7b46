/* SPDX-License-Identifier: MIT */
/*
 * trust.c — see trust.h. The walk keeps a stack of O_PATH descriptors of
 * the directories it has checked (".." pops one); every entry is opened
 * with O_NOFOLLOW relative to the checked directory above it and judged by
 * fstat() of that very descriptor, and a symbolic link's target is read
 * through its own descriptor and walked like the rest of the path.
 */
#include "daemon/trust.h"

#include "daemon/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINKS 40  /* as the kernel's own limit */
#define MAX_DEPTH 256 /* directories deep */

struct level {
	int fd;
	struct stat st;
	size_t path_len; /* of walk.path up to this directory */
};

struct walk {
	const char *what, *asked; /* for messages */
	char path[2 * PATH_MAX];  /* the real path walked so far */
	struct level stack[MAX_DEPTH];
	int depth; /* stack[0] is "/" */
	char **why;
};

static int __attribute__((format(printf, 3, 4)))
refuse(struct walk *w, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(w->why, fmt, ap) < 0)
		*w->why = NULL;
	va_end(ap);
	return r;
}

static const char *
shown(const struct walk *w)
{
	return w->path[0] ? w->path : "/";
}

static void
pop_to(struct walk *w, int depth)
{
	while (w->depth > depth) {
		close(w->stack[w->depth].fd);
		w->depth--;
	}
	w->path[w->stack[w->depth].path_len] = '\0';
}

/* A directory we are about to walk through (its path is w->path). */
static int
check_dir(struct walk *w, const struct stat *st)
{
	if (st->st_uid != 0)
		return refuse(w, -EPERM,
			      "directory %s on the path of %s %s is not owned by root "
			      "(owner uid %u)",
			      shown(w), w->what, w->asked, (unsigned)st->st_uid);
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(st->st_mode & S_ISVTX))
		return refuse(w, -EPERM,
			      "directory %s on the path of %s %s is writable by group "
			      "or others (mode %04o): they could replace what is in it",
			      shown(w), w->what, w->asked,
			      (unsigned)(st->st_mode & 07777));
	return 0;
}

/* Appends "/name" to w->path. */
static int
path_push(struct walk *w, const char *name, size_t len)
{
	size_t n = strlen(w->path);

	if (n + 1 + len >= sizeof(w->path))
		return refuse(w, -ENAMETOOLONG, "%s %s: path too long", w->what,
			      w->asked);
	w->path[n] = '/';
	memcpy(w->path + n + 1, name, len);
	w->path[n + 1 + len] = '\0';
	return 0;
}

/* The last component, an entry of the directory on top: the file. */
static int
open_final(struct walk *w, int efd, const struct stat *st, const char *name)
{
	struct stat now;
	int fd;

	if (S_ISDIR(st->st_mode))
		return refuse(w, -EINVAL, "%s %s is not a regular file (a directory)",
			      w->what, w->asked);
	if (!S_ISREG(st->st_mode))
		return refuse(w, -EINVAL, "%s %s is not a regular file", w->what,
			      w->asked);
	if (st->st_uid != 0)
		return refuse(
			w, -EPERM, "%s %s%s%s is not owned by root (owner uid %u)",
			w->what, w->asked, strcmp(w->asked, w->path) ? ", which is " : "",
			strcmp(w->asked, w->path) ? w->path : "", (unsigned)st->st_uid);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return refuse(w, -EPERM,
			      "%s %s%s%s is writable by group or others (mode %04o); a "
			      "root daemon does not trust what others can change",
			      w->what, w->asked,
			      strcmp(w->asked, w->path) ? ", which is " : "",
			      strcmp(w->asked, w->path) ? w->path : "",
			      (unsigned)(st->st_mode & 07777));
	/* O_NONBLOCK: never wait on something that is not what fstat saw. */
	fd = openat(w->stack[w->depth].fd, name,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return refuse(w, -errno, "%s %s: cannot open: %s", w->what, w->asked,
			      strerror(errno));
	(void)efd;
	if (fstat(fd, &now) < 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
		close(fd);
		return refuse(w, -EAGAIN, "%s %s changed while it was being checked",
			      w->what, w->asked);
	}
	(void)fcntl(fd, F_SETFL, 0);
	return fd;
}

static int
walk(struct walk *w, char *todo)
{
	char *p = todo, *alloc = NULL;
	int links = 0, r;

	for (;;) {
		char name[NAME_MAX + 1], target[PATH_MAX];
		struct stat st;
		size_t len;
		bool last;
		int efd;
		ssize_t n;

		while (*p == '/')
			p++;
		if (!*p) {
			r = refuse(w, -EINVAL,
				   "%s %s is not a regular file (a directory)", w->what,
				   w->asked);
			break;
		}
		len = strcspn(p, "/");
		if (len > NAME_MAX) {
			r = refuse(w, -ENAMETOOLONG, "%s %s: a name is too long", w->what,
				   w->asked);
			break;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		last = p[strspn(p, "/")] == '\0';
		if (!strcmp(name, ".") && !last)
			continue;
		if (!strcmp(name, "..") && !last) {
			if (w->depth > 0)
				pop_to(w, w->depth - 1);
			continue;
		}
		efd = openat(w->stack[w->depth].fd, name,
			     O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (efd < 0 || fstat(efd, &st) < 0) {
			r = refuse(w, -errno, "%s %s: cannot open: %s", w->what, w->asked,
				   strerror(errno));
			if (efd >= 0)
				close(efd);
			break;
		}
		r = path_push(w, name, len);
		if (r < 0) {
			close(efd);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			char *next;

			/* Its owner could not change its target, but in a
			 * sticky directory could remove and remake it. */
			if (st.st_uid != 0) {
				r = refuse(w, -EPERM,
					   "symbolic link %s on the path of %s %s is not "
					   "owned by root (owner uid %u)",
					   w->path, w->what, w->asked,
					   (unsigned)st.st_uid);
				close(efd);
				break;
			}
			n = readlinkat(efd, "", target, sizeof(target) - 1);
			close(efd);
			if (n <= 0 || ++links > MAX_LINKS) {
				r = refuse(w, n <= 0 ? -EINVAL : -ELOOP, "%s %s: %s",
					   w->what, w->asked,
					   n <= 0 ? "unreadable symbolic link"
						  : "too many symbolic links");
				break;
			}
			target[n] = '\0';
			/* The link's own name leaves the path again. */
			w->path[w->stack[w->depth].path_len] = '\0';
			if (asprintf(&next, "%s/%s", target, p) < 0) {
				r = -ENOMEM;
				break;
			}
			free(alloc);
			alloc = next;
			p = next;
			if (target[0] == '/')
				pop_to(w, 0);
			continue;
		}
		if (last) {
			r = open_final(w, efd, &st, name);
			close(efd);
			break;
		}
		if (!S_ISDIR(st.st_mode)) {
			r = refuse(w, -ENOTDIR, "%s %s: cannot open: %s", w->what,
				   w->asked, strerror(ENOTDIR));
			close(efd);
			break;
		}
		r = check_dir(w, &st);
		if (r < 0 || w->depth + 1 >= MAX_DEPTH) {
			if (r == 0)
				r = refuse(w, -ENAMETOOLONG, "%s %s: too deep", w->what,
					   w->asked);
			close(efd);
			break;
		}
		w->depth++;
		w->stack[w->depth] = (struct level){ .fd = efd,
						     .st = st,
						     .path_len = strlen(w->path) };
	}
	free(alloc);
	return r;
}

int
trusted_open(const char *path, const char *what, char **ret_why)
{
	struct walk *w;
	char *todo = NULL;
	int r;

	*ret_why = NULL;
	if (!path || !*path) {
		if (asprintf(ret_why, "%s: an empty path", what) < 0)
			*ret_why = NULL;
		return -ENOENT;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->what = what;
	w->asked = path;
	w->why = ret_why;
	if (path[0] == '/') {
		todo = strdup(path);
	} else {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) || asprintf(&todo, "%s/%s", cwd, path) < 0)
			todo = NULL;
	}
	w->stack[0].fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!todo || w->stack[0].fd < 0 || fstat(w->stack[0].fd, &w->stack[0].st) < 0) {
		r = todo ? -errno : -ENOMEM;
		if (w->stack[0].fd >= 0)
			close(w->stack[0].fd);
		free(todo);
		free(w);
		return r;
	}
	r = check_dir(w, &w->stack[0].st);
	if (r == 0)
		r = walk(w, todo);
	pop_to(w, 0);
	close(w->stack[0].fd);
	free(todo);
	free(w);
	return r;
}

int
cfg_load_trusted(const char *path, struct cfg **ret_cfg, char **ret_errors)
{
	char *why = NULL;
	int fd, r;

	*ret_errors = NULL;
	fd = trusted_open(path, "configuration file", &why);
	if (fd < 0) {
		if (asprintf(ret_errors, "%s\n", why ? why : strerror(-fd)) < 0)
			*ret_errors = NULL;
		free(why);
		return fd;
	}
	r = cfg_load_fd(fd, path, ret_cfg, ret_errors);
	close(fd);
	return r;
}
