/* SPDX-License-Identifier: MIT */
/*
 * filterset.h — the filters fltmgrd is running, and the one operation that
 * changes them to match a configuration (reload): filters that are gone
 * are unloaded, new ones loaded, changed ones restarted, and filters whose
 * settings did not change keep running untouched — their services stay
 * connected and their unchanged instances never stop filtering — while
 * their instances are brought in line one attach or detach at a time.
 *
 * A restart never loosens what a filter enforces:
 *  - its new object is opened and checked (trust, a whole ELF) before the
 *    running filter is touched; a refused object leaves it running as is;
 *  - a filter with default_verdict = deny has its instances held shut by
 *    a gate (gate.h) from before it is stopped until its successor runs,
 *    so every open, execution and read there is denied meanwhile, as its
 *    default verdict promises;
 *  - if the successor fails (its entry point refuses, an instance cannot
 *    be attached, it cannot start), the filter is started again from its
 *    previous object and settings; should even that fail, the gate stays
 *    (default deny) and the filter shows as held.
 * Every failure is recorded per filter: fltmc reload reports them, and
 * fltmc status is unhealthy, naming the filter and why, while a
 * configured filter does not run as configured.
 */
#ifndef FLTMGR_FILTERSET_H
#define FLTMGR_FILTERSET_H

#include <stdbool.h>

#include "daemon/config.h"
#include "daemon/gate.h"
#include "daemon/loader.h"

struct running_filter {
	struct cfg_filter cf;    /* settings it was loaded with; instances: the
				 attach points currently in effect */
	struct loaded_filter lf; /* lf.filter is NULL while held */
	struct gate *held;       /* neither the new nor the old could run:
				    its instances are held shut */
	bool configured;         /* named by the configuration (not only fltmc load) */
};

/* Something that went wrong for a filter, recorded by the last reload
 * (or start) and by fltmc load. */
struct filter_problem {
	char *name;    /* the filter */
	char *cause;   /* why, e.g. "filter object /x.so is not owned by root" */
	char *message; /* the whole sentence for logs and replies */
};

struct filterset {
	flt_manager *mgr;
	char *filter_dir;
	struct running_filter **v;
	size_t n;
	struct filter_problem *problems;
	size_t n_problems;
};

struct apply_result {
	unsigned loaded, unloaded, restarted, attached, detached, failed;
};

/* Logging goes through the manager's log function. */
void filterset_init(struct filterset *fs, flt_manager *mgr);
int filterset_set_dir(struct filterset *fs, const char *filter_dir);

struct running_filter *filterset_find(struct filterset *fs, const char *name);

/* Loads cf, attaches its instances, starts filtering. An instance that
 * cannot be attached is logged (with its config line), recorded as a
 * problem, and left out; the filter runs with the others. *ret_why
 * explains a failure (free() it). */
int filterset_load(struct filterset *fs, const struct cfg_filter *cf, bool configured,
		   char **ret_why);
/* Unregisters (pending events get the default verdict, callbacks in flight
 * finish, services are disconnected) and unloads; a held filter's gate is
 * released. -ENOENT if not loaded. */
int filterset_unload(struct filterset *fs, const char *name);
void filterset_unload_all(struct filterset *fs);

int filterset_attach(struct filterset *fs, const char *name, const char *path,
		     enum flt_instance_kind kind, char **ret_why);
int filterset_detach(struct filterset *fs, const char *name, const char *path,
		     char **ret_why);

/* Brings the running filters in line with c (see the top of this file).
 * Returns 0, or -EIO when something could not be done (counted in
 * res->failed, logged, and in fs->problems); the rest is applied
 * regardless. The problems of the previous apply are forgotten first. */
int filterset_apply(struct filterset *fs, const struct cfg *c, struct apply_result *res);

/* Why the configured filter want does not run as configured (not loaded,
 * held, other settings, another object than the file now at its path, an
 * instance missing), with the recorded causes; NULL if it does. free() it. */
char *filterset_mismatch(struct filterset *fs, const struct cfg_filter *want);

#endif
