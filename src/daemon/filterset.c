/* SPDX-License-Identifier: MIT */
/*
 * filterset.c — see filterset.h. Every change goes through the library's
 * own operations (flt_attach, flt_detach, flt_unregister_filter), so a
 * reload is exactly the sequence of changes an administrator could have
 * made by hand with fltmc, in the order that never leaves an unchanged
 * instance unprotected.
 */
#include "daemon/filterset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/dlog.h"

void
filterset_init(struct filterset *fs, flt_manager *mgr)
{
	*fs = (struct filterset){ .mgr = mgr };
}

int
filterset_set_dir(struct filterset *fs, const char *filter_dir)
{
	char *d = strdup(filter_dir);

	if (!d)
		return -ENOMEM;
	free(fs->filter_dir);
	fs->filter_dir = d;
	return 0;
}

struct running_filter *
filterset_find(struct filterset *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (!strcmp(fs->v[i]->cf.name, name))
			return fs->v[i];
	return NULL;
}

static ssize_t
instance_index(const struct cfg_filter *cf, const char *path)
{
	for (size_t i = 0; i < cf->n_instances; i++)
		if (!strcmp(cf->instances[i].path, path))
			return (ssize_t)i;
	return -1;
}

static void
instance_remove(struct cfg_filter *cf, size_t i)
{
	free(cf->instances[i].path);
	memmove(&cf->instances[i], &cf->instances[i + 1],
		(cf->n_instances - i - 1) * sizeof(cf->instances[0]));
	cf->n_instances--;
}

static int
instance_add(struct cfg_filter *cf, const char *path, enum flt_instance_kind kind,
	     int line)
{
	struct cfg_instance *n =
		realloc(cf->instances, (cf->n_instances + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	cf->instances = n;
	n[cf->n_instances].path = strdup(path);
	if (!n[cf->n_instances].path)
		return -ENOMEM;
	n[cf->n_instances].kind = kind;
	n[cf->n_instances].line = line;
	cf->n_instances++;
	return 0;
}

/* Attaches and records one instance; rf->cf.instances lists only what is
 * really attached. */
static int
attach_one(struct running_filter *rf, const char *path, enum flt_instance_kind kind,
	   int line, char **ret_why)
{
	int r = flt_attach(rf->lf.filter, path, kind);

	if (r == 0) {
		r = instance_add(&rf->cf, path, kind, line);
		if (r < 0)
			(void)flt_detach(rf->lf.filter, path);
	}
	if (r < 0 && ret_why &&
	    asprintf(ret_why, "filter %s: cannot attach to %s (%s): %s", rf->cf.name,
		     path, cfg_kind_name(kind), strerror(-r)) < 0)
		*ret_why = NULL;
	return r;
}

static void
running_free(struct running_filter *rf)
{
	cfg_filter_free(&rf->cf);
	free(rf);
}

int
filterset_load(struct filterset *fs, const struct cfg_filter *cf, bool configured,
	       char **ret_why)
{
	struct running_filter *rf, **nv;
	int r;

	*ret_why = NULL;
	if (filterset_find(fs, cf->name)) {
		if (asprintf(ret_why, "filter %s is already loaded", cf->name) < 0)
			*ret_why = NULL;
		return -EEXIST;
	}
	rf = calloc(1, sizeof(*rf));
	nv = realloc(fs->v, (fs->n + 1) * sizeof(*nv));
	if (nv)
		fs->v = nv;
	if (!rf || !nv || cfg_filter_copy(cf, &rf->cf) < 0) {
		free(rf);
		return -ENOMEM;
	}
	rf->configured = configured;
	/* The copy's instance list is rebuilt from what really attaches. */
	for (size_t i = 0; i < rf->cf.n_instances; i++)
		free(rf->cf.instances[i].path);
	rf->cf.n_instances = 0;

	r = filter_load(fs->mgr, fs->filter_dir, cf, &rf->lf, ret_why);
	if (r < 0) {
		running_free(rf);
		return r;
	}
	for (size_t i = 0; i < cf->n_instances; i++) {
		const struct cfg_instance *in = &cf->instances[i];
		char *why = NULL;

		if (attach_one(rf, in->path, in->kind, in->line, &why) < 0)
			dlog(FLT_LOG_ERROR, "%s (configuration line %d)",
			     why ? why : "attach failed", in->line);
		free(why);
	}
	r = flt_start_filtering(rf->lf.filter);
	if (r < 0) {
		if (asprintf(ret_why, "filter %s: cannot start filtering: %s%s", cf->name,
			     strerror(-r),
			     r == -EPERM ? " (fanotify needs root / CAP_SYS_ADMIN)"
					 : "") < 0)
			*ret_why = NULL;
		filter_unload(&rf->lf);
		running_free(rf);
		return r;
	}
	fs->v[fs->n++] = rf;
	dlog(FLT_LOG_NOTICE, "filter %s loaded at altitude %s from %s (%zu instance%s)",
	     cf->name, cf->altitude, rf->lf.img.path, rf->cf.n_instances,
	     rf->cf.n_instances == 1 ? "" : "s");
	return 0;
}

int
filterset_unload(struct filterset *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++) {
		struct running_filter *rf = fs->v[i];

		if (strcmp(rf->cf.name, name))
			continue;
		memmove(&fs->v[i], &fs->v[i + 1], (fs->n - i - 1) * sizeof(fs->v[0]));
		fs->n--;
		filter_unload(&rf->lf);
		dlog(FLT_LOG_NOTICE, "filter %s unloaded", name);
		running_free(rf);
		return 0;
	}
	return -ENOENT;
}

void
filterset_unload_all(struct filterset *fs)
{
	/* Lowest altitude first is what Windows does at shutdown; the
	 * order only matters for which default verdict answers last. */
	while (fs->n)
		(void)filterset_unload(fs, fs->v[fs->n - 1]->cf.name);
	free(fs->v);
	fs->v = NULL;
	free(fs->filter_dir);
	fs->filter_dir = NULL;
}

int
filterset_attach(struct filterset *fs, const char *name, const char *path,
		 enum flt_instance_kind kind, char **ret_why)
{
	struct running_filter *rf = filterset_find(fs, name);

	*ret_why = NULL;
	if (!rf) {
		if (asprintf(ret_why, "no filter named %s is loaded", name) < 0)
			*ret_why = NULL;
		return -ENOENT;
	}
	if (instance_index(&rf->cf, path) >= 0) {
		if (asprintf(ret_why, "filter %s is already attached to %s", name, path) <
		    0)
			*ret_why = NULL;
		return -EEXIST;
	}
	return attach_one(rf, path, kind, 0, ret_why);
}

int
filterset_detach(struct filterset *fs, const char *name, const char *path, char **ret_why)
{
	struct running_filter *rf = filterset_find(fs, name);
	ssize_t i;
	int r;

	*ret_why = NULL;
	if (!rf) {
		if (asprintf(ret_why, "no filter named %s is loaded", name) < 0)
			*ret_why = NULL;
		return -ENOENT;
	}
	i = instance_index(&rf->cf, path);
	if (i < 0) {
		if (asprintf(ret_why, "filter %s is not attached to %s", name, path) < 0)
			*ret_why = NULL;
		return -ENOENT;
	}
	r = flt_detach(rf->lf.filter, path);
	if (r < 0 && r != -ENOENT) {
		if (asprintf(ret_why, "filter %s: cannot detach from %s: %s", name, path,
			     strerror(-r)) < 0)
			*ret_why = NULL;
		return r;
	}
	instance_remove(&rf->cf, (size_t)i);
	return 0;
}

/* Same settings: only the instances change. Attach first, then detach, so
 * a path that moves from one kind to another is the only one that has a
 * gap (it must: one instance per path). */
static void
apply_instances(struct running_filter *rf, const struct cfg_filter *want,
		struct apply_result *res)
{
	for (size_t i = 0; i < want->n_instances; i++) {
		const struct cfg_instance *in = &want->instances[i];
		ssize_t k = instance_index(&rf->cf, in->path);
		char *why = NULL;

		if (k >= 0 && rf->cf.instances[k].kind == in->kind)
			continue;
		if (k >= 0) {
			(void)flt_detach(rf->lf.filter, in->path);
			instance_remove(&rf->cf, (size_t)k);
			res->detached++;
		}
		if (attach_one(rf, in->path, in->kind, in->line, &why) < 0) {
			dlog(FLT_LOG_ERROR, "%s (configuration line %d)",
			     why ? why : "attach failed", in->line);
			res->failed++;
		} else {
			res->attached++;
		}
		free(why);
	}
	for (size_t i = rf->cf.n_instances; i-- > 0;) {
		const char *path = rf->cf.instances[i].path;
		bool wanted = false;

		for (size_t j = 0; j < want->n_instances && !wanted; j++)
			wanted = !strcmp(want->instances[j].path, path);
		if (wanted)
			continue;
		(void)flt_detach(rf->lf.filter, path);
		dlog(FLT_LOG_INFO, "filter %s: detached from %s", rf->cf.name, path);
		instance_remove(&rf->cf, i);
		res->detached++;
	}
	/* Keep the new configuration's line numbers for messages. */
	for (size_t i = 0; i < rf->cf.n_instances; i++) {
		ssize_t k = instance_index(want, rf->cf.instances[i].path);

		if (k >= 0)
			rf->cf.instances[i].line = want->instances[k].line;
	}
	rf->cf.line = want->line;
}

int
filterset_apply(struct filterset *fs, const struct cfg *c, struct apply_result *res)
{
	*res = (struct apply_result){ 0 };
	/* Filters no longer configured go first: their altitudes and port
	 * names may be reused by the new ones. */
	for (size_t i = fs->n; i-- > 0;) {
		if (cfg_find_filter(c, fs->v[i]->cf.name))
			continue;
		(void)filterset_unload(fs, fs->v[i]->cf.name);
		res->unloaded++;
	}
	for (size_t i = 0; i < c->n_filters; i++) {
		const struct cfg_filter *want = &c->filters[i];
		struct running_filter *rf = filterset_find(fs, want->name);
		char *why = NULL;

		if (rf && cfg_filter_same_settings(&rf->cf, want) &&
		    !filter_object_replaced(&rf->lf)) {
			rf->configured = true;
			apply_instances(rf, want, res);
			continue;
		}
		if (rf) {
			dlog(FLT_LOG_NOTICE, "filter %s: %s (line %d); restarting it",
			     want->name,
			     cfg_filter_same_settings(&rf->cf, want)
				     ? "its object file was replaced"
				     : "settings changed",
			     want->line);
			(void)filterset_unload(fs, want->name);
			res->restarted++;
		} else {
			res->loaded++;
		}
		if (filterset_load(fs, want, true, &why) < 0) {
			dlog(FLT_LOG_ERROR, "%s:%d: %s", c->file, want->line,
			     why ? why : "cannot load filter");
			res->failed++;
			if (rf)
				res->restarted--;
			else
				res->loaded--;
		}
		free(why);
	}
	return res->failed ? -EIO : 0;
}
