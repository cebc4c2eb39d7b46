/* SPDX-License-Identifier: MIT */
/*
 * loader.c — see loader.h. The object is opened once, checked through that
 * descriptor (fstat), and loaded through the same descriptor
 * (/proc/self/fd/N), so it cannot be swapped between the check and the
 * load. Its directory is checked too: a directory others may write to lets
 * them replace the file by renaming.
 */
#include "daemon/loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int __attribute__((format(printf, 3, 4)))
fail(int r, char **ret_why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(ret_why, fmt, ap) < 0)
		*ret_why = NULL;
	va_end(ap);
	return r;
}

static int
check_owner_mode(const struct stat *st, const char *what, const char *path,
		 char **ret_why)
{
	if (st->st_uid != 0)
		return fail(-EPERM, ret_why, "%s %s is not owned by root (owner uid %u)",
			    what, path, (unsigned)st->st_uid);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return fail(-EPERM, ret_why,
			    "%s %s is writable by group or others (mode %04o); a root "
			    "daemon will not load code others can change",
			    what, path, (unsigned)(st->st_mode & 07777));
	return 0;
}

int
filter_object_open(const char *path, char **ret_why)
{
	char dir[PATH_MAX];
	struct stat st;
	int fd, r;

	*ret_why = NULL;
	if (strlen(path) >= sizeof(dir))
		return fail(-ENAMETOOLONG, ret_why, "filter object path too long: %s",
			    path);
	strcpy(dir, path);
	if (stat(dirname(dir), &st) < 0)
		return fail(-errno, ret_why, "filter directory %s: %s", dir,
			    strerror(errno));
	r = check_owner_mode(&st, "filter directory", dir, ret_why);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(-errno, ret_why, "filter object %s: cannot open: %s", path,
			    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(-EINVAL, ret_why, "filter object %s is not a regular file",
			    path);
	}
	r = check_owner_mode(&st, "filter object", path, ret_why);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int
filter_load(flt_manager *m, const char *filter_dir, const struct cfg_filter *cf,
	    struct loaded_filter *ret, char **ret_why)
{
	struct flt_filter_config fc = {
		.name = cf->name,
		.altitude = cf->altitude,
		.deadline_ms = cf->deadline_ms,
		.default_verdict = cf->default_verdict,
		.n_params = cf->n_params,
	};
	const char **keys = NULL, **values = NULL;
	flt_filter_entry_fn entry;
	flt_filter *f = NULL;
	char *path = NULL, proc[64];
	void *dl;
	struct stat st;
	int fd, r;

	*ret_why = NULL;
	if (cf->object[0] == '/')
		path = strdup(cf->object);
	else if (asprintf(&path, "%s/%s", filter_dir, cf->object) < 0)
		path = NULL;
	if (!path)
		return -ENOMEM;
	fd = filter_object_open(path, ret_why);
	if (fd < 0) {
		free(path);
		return fd;
	}
	if (fstat(fd, &st) < 0)
		memset(&st, 0, sizeof(st));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	dl = dlopen(proc, RTLD_NOW | RTLD_LOCAL);
	close(fd);
	if (!dl) {
		r = fail(-ENOEXEC, ret_why, "filter object %s: cannot load: %s", path,
			 dlerror());
		free(path);
		return r;
	}
	entry = (flt_filter_entry_fn)dlsym(dl, FLT_FILTER_ENTRY_SYMBOL);
	if (!entry) {
		r = fail(-ENOEXEC, ret_why, "filter object %s has no %s function", path,
			 FLT_FILTER_ENTRY_SYMBOL);
		goto fail_dl;
	}
	if (cf->n_params) {
		keys = calloc(cf->n_params, sizeof(*keys));
		values = calloc(cf->n_params, sizeof(*values));
		if (!keys || !values) {
			r = -ENOMEM;
			goto fail_dl;
		}
		for (size_t i = 0; i < cf->n_params; i++) {
			keys[i] = cf->params[i].key;
			values[i] = cf->params[i].value;
		}
	}
	fc.param_keys = keys;
	fc.param_values = values;
	r = entry(m, &fc, &f);
	if (r >= 0 && (!f || strcmp(flt_filter_name(f), cf->name))) {
		if (f)
			flt_unregister_filter(f);
		r = fail(-EPROTO, ret_why,
			 "filter object %s: %s did not register filter %s", path,
			 FLT_FILTER_ENTRY_SYMBOL, cf->name);
		goto fail_dl;
	}
	if (r < 0) {
		if (f) /* registered, then failed: do not leave it behind */
			flt_unregister_filter(f);
		r = fail(r, ret_why, "filter %s refused to load: %s", cf->name,
			 strerror(-r));
		goto fail_dl;
	}
	free(keys);
	free(values);
	*ret = (struct loaded_filter){ .dl = dl, .filter = f, .path = path, .st = st };
	return 0;
fail_dl:
	free(keys);
	free(values);
	dlclose(dl);
	free(path);
	return r;
}

void
filter_unload(struct loaded_filter *lf)
{
	if (!lf)
		return;
	flt_unregister_filter(lf->filter); /* waits for its callbacks */
	if (lf->dl)
		dlclose(lf->dl);
	free(lf->path);
	*lf = (struct loaded_filter){ 0 };
}

bool
filter_object_replaced(const struct loaded_filter *lf)
{
	struct stat now;

	if (stat(lf->path, &now) < 0)
		return false; /* gone: the next load will say so */
	return now.st_dev != lf->st.st_dev || now.st_ino != lf->st.st_ino ||
	       now.st_size != lf->st.st_size ||
	       now.st_mtim.tv_sec != lf->st.st_mtim.tv_sec ||
	       now.st_mtim.tv_nsec != lf->st.st_mtim.tv_nsec;
}
