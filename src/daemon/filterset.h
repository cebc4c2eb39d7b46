/* SPDX-License-Identifier: MIT */
/*
 * filterset.h — the filters fltmgrd is running, and the one operation that
 * changes them to match a configuration (reload): filters that are gone
 * are unloaded, new ones loaded, changed ones restarted, and filters whose
 * settings did not change keep running untouched — their services stay
 * connected and their unchanged instances never stop filtering — while
 * their instances are brought in line one attach or detach at a time.
 */
#ifndef FLTMGR_FILTERSET_H
#define FLTMGR_FILTERSET_H

#include <stdbool.h>

#include "daemon/config.h"
#include "daemon/loader.h"

struct running_filter {
	struct cfg_filter cf; /* settings it was loaded with; instances: the
				 attach points currently in effect */
	struct loaded_filter lf;
	bool configured; /* named by the configuration (not only fltmc load) */
};

struct filterset {
	flt_manager *mgr;
	char *filter_dir;
	struct running_filter **v;
	size_t n;
};

struct apply_result {
	unsigned loaded, unloaded, restarted, attached, detached, failed;
};

/* Logging goes through the manager's log function. */
void filterset_init(struct filterset *fs, flt_manager *mgr);
int filterset_set_dir(struct filterset *fs, const char *filter_dir);

struct running_filter *filterset_find(struct filterset *fs, const char *name);

/* Loads cf, attaches its instances, starts filtering. An instance that
 * cannot be attached is logged (with its config line) and left out; the
 * filter runs with the others. *ret_why explains a failure (free() it). */
int filterset_load(struct filterset *fs, const struct cfg_filter *cf, bool configured,
		   char **ret_why);
/* Unregisters (pending events get the default verdict, callbacks in flight
 * finish, services are disconnected) and unloads. -ENOENT if not loaded. */
int filterset_unload(struct filterset *fs, const char *name);
void filterset_unload_all(struct filterset *fs);

int filterset_attach(struct filterset *fs, const char *name, const char *path,
		     enum flt_instance_kind kind, char **ret_why);
int filterset_detach(struct filterset *fs, const char *name, const char *path,
		     char **ret_why);

/* Brings the running filters in line with c (see the top of this file).
 * Returns 0, or -EIO when something could not be done (counted in
 * res->failed and logged); the rest is applied regardless. */
int filterset_apply(struct filterset *fs, const struct cfg *c, struct apply_result *res);

#endif
