/* SPDX-License-Identifier: MIT */
/*
 * loader.h — loading a filter from its shared object, the fltmgrd
 * counterpart of the Windows service control manager starting a driver:
 * check who may have written it, load exactly the file that was checked,
 * call its entry point.
 */
#ifndef FLTMGR_LOADER_H
#define FLTMGR_LOADER_H

#include <fltmgr/filter.h>

#include "daemon/config.h"

#include <stdbool.h>
#include <sys/stat.h>

struct loaded_filter {
	void *dl;
	flt_filter *filter;
	char *path;
	struct stat st; /* of the file that was loaded */
};

/*
 * Opens path and checks it may be trusted by a root daemon: a regular
 * file, owned by root, not writable by group or others, in a directory
 * with the same properties. Returns an open descriptor of exactly the
 * checked file, or a negative errno with *ret_why set (free() it).
 */
int filter_object_open(const char *path, char **ret_why);

/*
 * Loads cf's object (cf->object, relative to filter_dir unless absolute),
 * calls its entry point, and checks the filter it registered. On failure
 * nothing stays loaded and *ret_why says why (free() it).
 */
int filter_load(flt_manager *m, const char *filter_dir, const struct cfg_filter *cf,
		struct loaded_filter *ret, char **ret_why);

/* The file at lf->path is no longer the one that was loaded (replaced by
 * a rename, or rewritten): a reload restarts the filter with it. */
bool filter_object_replaced(const struct loaded_filter *lf);

/* Unregisters the filter (waits for its callbacks) and unloads it. */
void filter_unload(struct loaded_filter *lf);

#endif
