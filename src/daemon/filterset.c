/* SPDX-License-Identifier: MIT */
/*
 * filterset.c — see filterset.h. Every change goes through the library's
 * own operations (flt_attach, flt_detach, flt_unregister_filter), so a
 * reload is exactly the sequence of changes an administrator could have
 * made by hand with fltmc, in the order that never leaves an unchanged
 * instance unprotected, plus the gate that holds a fail-closed filter's
 * instances while it is restarted.
 */
#include "daemon/filterset.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
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
find_index(struct filterset *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (!strcmp(fs->v[i]->cf.name, name))
			return (ssize_t)i;
	return -1;
}

/* ---- problems ---- */

static void
problems_clear(struct filterset *fs)
{
	for (size_t i = 0; i < fs->n_problems; i++) {
		free(fs->problems[i].name);
		free(fs->problems[i].cause);
		free(fs->problems[i].message);
	}
	free(fs->problems);
	fs->problems = NULL;
	fs->n_problems = 0;
}

/* Records and logs (at error level) a problem of filter name: message is
 * "filter NAME: <outcome>: <cause>". */
static void __attribute__((format(printf, 4, 5)))
problem_add(struct filterset *fs, const char *name, const char *cause, const char *fmt,
	    ...)
{
	struct filter_problem *n, p = { 0 };
	char *outcome = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&outcome, fmt, ap) < 0)
		outcome = NULL;
	va_end(ap);
	if (!cause)
		cause = "out of memory";
	if (asprintf(&p.message, "filter %s: %s: %s", name, outcome ? outcome : "failed",
		     cause) < 0)
		p.message = NULL;
	free(outcome);
	dlog(FLT_LOG_ERROR, "%s", p.message ? p.message : cause);
	p.name = strdup(name);
	p.cause = strdup(cause);
	n = realloc(fs->problems, (fs->n_problems + 1) * sizeof(*n));
	if (!n || !p.name || !p.cause || !p.message) {
		free(p.name);
		free(p.cause);
		free(p.message);
		if (n)
			fs->problems = n;
		return;
	}
	fs->problems = n;
	fs->problems[fs->n_problems++] = p;
}

/* ---- instances ---- */

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
	    asprintf(ret_why, "cannot attach filter %s to %s (%s): %s", rf->cf.name, path,
		     cfg_kind_name(kind), strerror(-r)) < 0)
		*ret_why = NULL;
	return r;
}

static void
running_free(struct running_filter *rf)
{
	cfg_filter_free(&rf->cf);
	free(rf);
}

/* ---- starting one ---- */

/* Sets the filter's automatic attachment policy to a (off when a has
 * none). On failure the filter keeps the policy it had, the problem is
 * recorded, and -errno returned. */
static int
apply_auto(struct filterset *fs, struct running_filter *rf, const struct cfg_auto *a)
{
	struct flt_auto_attach policy;
	char msg[256] = "", *what;
	int r;

	r = cfg_auto_policy(a, &policy, msg, sizeof(msg));
	if (r >= 0) {
		r = flt_set_auto_attach(rf->lf.filter, &policy);
		if (r < 0)
			snprintf(msg, sizeof(msg),
				 "cannot set automatic attachment: %s%s", strerror(-r),
				 r == -ESRCH ? " (no process with the auto_attach_pid)"
					     : "");
	}
	if (r < 0) {
		char line[48] = "";

		if (a->line)
			snprintf(line, sizeof(line), " (configuration line %d)", a->line);
		problem_add(fs, rf->cf.name, msg,
			    "running without its automatic attachment%s", line);
		return r;
	}
	what = cfg_auto_describe(a);
	dlog(FLT_LOG_NOTICE, "filter %s: automatic attachment: %s", rf->cf.name,
	     what ? what : "set");
	free(what);
	return 0;
}

/*
 * Loads img with cf's settings, attaches cf's instances and starts
 * filtering. strict: any instance that cannot be attached fails the whole
 * start (a restart then falls back to the previous filter); otherwise it
 * is recorded as a problem and left out. On failure nothing of it stays
 * and img is the caller's again; on success img is emptied.
 */
static int
start_filter(struct filterset *fs, const struct cfg_filter *cf, struct filter_image *img,
	     bool strict, struct running_filter **ret, char **ret_why)
{
	struct running_filter *rf;
	int r;

	*ret_why = NULL;
	rf = calloc(1, sizeof(*rf));
	if (!rf || cfg_filter_copy(cf, &rf->cf) < 0) {
		free(rf);
		return -ENOMEM;
	}
	rf->lf.img.fd = -1;
	/* The copy's instance list is rebuilt from what really attaches. */
	for (size_t i = 0; i < rf->cf.n_instances; i++)
		free(rf->cf.instances[i].path);
	rf->cf.n_instances = 0;

	r = filter_load_image(fs->mgr, cf, img, &rf->lf, ret_why);
	if (r < 0) {
		running_free(rf);
		return r;
	}
	if (!rf->cf.altitude) { /* its own default altitude */
		rf->cf.altitude = strdup(flt_filter_altitude(rf->lf.filter));
		if (!rf->cf.altitude) {
			r = -ENOMEM;
			goto fail;
		}
	}
	for (size_t i = 0; i < cf->n_instances; i++) {
		const struct cfg_instance *in = &cf->instances[i];
		char *why = NULL;

		r = attach_one(rf, in->path, in->kind, in->line, &why);
		if (r < 0 && strict) {
			*ret_why = why;
			goto fail;
		}
		if (r < 0) {
			char line[48] = "";

			if (in->line)
				snprintf(line, sizeof(line), " (configuration line %d)",
					 in->line);
			problem_add(fs, cf->name, why ? why : "attach failed",
				    "running without an instance%s", line);
		}
		free(why);
	}
	if (cfg_auto_enabled(&cf->automatic))
		(void)apply_auto(fs, rf, &cf->automatic);
	r = flt_start_filtering(rf->lf.filter);
	if (r < 0) {
		if (asprintf(ret_why, "filter %s: cannot start filtering: %s%s", cf->name,
			     strerror(-r),
			     r == -EPERM ? " (fanotify needs root / CAP_SYS_ADMIN)"
					 : "") < 0)
			*ret_why = NULL;
		goto fail;
	}
	*ret = rf;
	return 0;
fail:
	filter_unload_keep_image(&rf->lf, img);
	running_free(rf);
	return r;
}

static int
append(struct filterset *fs, struct running_filter *rf)
{
	struct running_filter **nv = realloc(fs->v, (fs->n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	fs->v = nv;
	fs->v[fs->n++] = rf;
	return 0;
}

static void
log_loaded(const struct running_filter *rf, const char *verb)
{
	dlog(FLT_LOG_NOTICE, "filter %s %s at altitude %s from %s (%zu instance%s)",
	     rf->cf.name, verb, rf->cf.altitude, rf->lf.img.path, rf->cf.n_instances,
	     rf->cf.n_instances == 1 ? "" : "s");
}

int
filterset_load(struct filterset *fs, const struct cfg_filter *cf, bool configured,
	       char **ret_why)
{
	struct filter_image img = { .fd = -1 };
	struct running_filter *rf = NULL;
	int r;

	*ret_why = NULL;
	if (filterset_find(fs, cf->name)) {
		if (asprintf(ret_why, "filter %s is already loaded", cf->name) < 0)
			*ret_why = NULL;
		return -EEXIST;
	}
	r = filter_image_open(fs->filter_dir, cf, &img, ret_why);
	if (r < 0)
		return r;
	r = start_filter(fs, cf, &img, false, &rf, ret_why);
	filter_image_close(&img);
	if (r < 0)
		return r;
	rf->configured = configured;
	if (append(fs, rf) < 0) {
		filter_unload(&rf->lf);
		running_free(rf);
		return -ENOMEM;
	}
	log_loaded(rf, "loaded");
	return 0;
}

static void
running_stop(struct running_filter *rf)
{
	if (rf->lf.filter)
		filter_unload(&rf->lf);
	else
		filter_image_close(&rf->lf.img);
	gate_release(rf->held);
	rf->held = NULL;
}

int
filterset_unload(struct filterset *fs, const char *name)
{
	ssize_t i = find_index(fs, name);
	struct running_filter *rf;

	if (i < 0)
		return -ENOENT;
	rf = fs->v[i];
	memmove(&fs->v[i], &fs->v[i + 1], (fs->n - (size_t)i - 1) * sizeof(fs->v[0]));
	fs->n--;
	running_stop(rf);
	dlog(FLT_LOG_NOTICE, "filter %s unloaded", name);
	running_free(rf);
	return 0;
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
	problems_clear(fs);
}

static struct running_filter *
find_running(struct filterset *fs, const char *name, char **ret_why, int *ret_err)
{
	struct running_filter *rf = filterset_find(fs, name);

	*ret_err = 0;
	if (!rf) {
		if (asprintf(ret_why, "no filter named %s is loaded", name) < 0)
			*ret_why = NULL;
		*ret_err = -ENOENT;
		return NULL;
	}
	if (!rf->lf.filter) {
		if (asprintf(ret_why,
			     "filter %s is not running (its instances are held shut "
			     "after a failed restart); fix it and reload",
			     name) < 0)
			*ret_why = NULL;
		*ret_err = -EBUSY;
		return NULL;
	}
	return rf;
}

int
filterset_attach(struct filterset *fs, const char *name, const char *path,
		 enum flt_instance_kind kind, char **ret_why)
{
	struct running_filter *rf;
	int r;

	*ret_why = NULL;
	rf = find_running(fs, name, ret_why, &r);
	if (!rf)
		return r;
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
	struct running_filter *rf;
	ssize_t i;
	int r;

	*ret_why = NULL;
	rf = find_running(fs, name, ret_why, &r);
	if (!rf)
		return r;
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
apply_instances(struct filterset *fs, struct running_filter *rf,
		const struct cfg_filter *want, struct apply_result *res)
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
			problem_add(fs, want->name, why ? why : "attach failed",
				    "running without an instance (configuration line %d)",
				    in->line);
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

/* Same settings, another automatic attachment policy: set in place (the
 * engine attaches and detaches the volumes that differ). */
static void
apply_policy_change(struct filterset *fs, struct running_filter *rf,
		    const struct cfg_filter *want, struct apply_result *res)
{
	struct cfg_auto copy;

	if (cfg_auto_copy(&want->automatic, &copy) < 0) {
		problem_add(fs, want->name, "out of memory",
			    "automatic attachment unchanged");
		res->failed++;
		return;
	}
	if (apply_auto(fs, rf, &want->automatic) < 0) {
		cfg_auto_free(&copy);
		res->failed++;
		return;
	}
	cfg_auto_free(&rf->cf.automatic);
	rf->cf.automatic = copy;
}

/*
 * Restarts fs->v[i] with want (see the top of filterset.h for the order
 * and the fallbacks).
 */
static void
restart(struct filterset *fs, size_t i, const struct cfg_filter *want,
	struct apply_result *res)
{
	struct running_filter *rf = fs->v[i], *nrf = NULL;
	struct filter_image img = { .fd = -1 }, old_img = { .fd = -1 };
	struct cfg_filter old_cf;
	struct gate *gate = NULL;
	char *why = NULL, *why_old = NULL;
	int64_t held_ns = 0;
	int r;

	/* The new object first: a refused one leaves everything as it is. */
	r = filter_image_open(fs->filter_dir, want, &img, &why);
	if (r < 0) {
		problem_add(fs, want->name, why,
			    "not restarted, still running as it was");
		res->failed++;
		free(why);
		return;
	}
	if (rf->cf.default_verdict != 0) {
		r = gate_hold(fs->mgr, rf->lf.filter, &gate, &why);
		if (r < 0) {
			problem_add(fs, want->name, why,
				    "not restarted, still running as it was");
			res->failed++;
			free(why);
			filter_image_close(&img);
			return;
		}
		held_ns = now_ns();
	}
	old_cf = rf->cf;
	rf->cf = (struct cfg_filter){ 0 };
	filter_unload_keep_image(&rf->lf, &old_img);
	r = start_filter(fs, want, &img, true, &nrf, &why);
	filter_image_close(&img);
	if (r == 0) {
		nrf->configured = true;
		fs->v[i] = nrf;
		gate_release(gate);
		log_loaded(nrf, "restarted");
		if (gate)
			dlog(FLT_LOG_INFO,
			     "filter %s: its instances were held shut (default verdict "
			     "deny) for %.1f ms while it restarted",
			     nrf->cf.name, (double)(now_ns() - held_ns) / 1e6);
		res->restarted++;
		filter_image_close(&old_img);
		cfg_filter_free(&old_cf);
		free(rf);
		return;
	}
	/* The new one cannot run: the old one again, as it was. */
	r = start_filter(fs, &old_cf, &old_img, false, &nrf, &why_old);
	filter_image_close(&old_img);
	if (r == 0) {
		nrf->configured = rf->configured;
		fs->v[i] = nrf;
		gate_release(gate);
		problem_add(fs, want->name, why ? why : "cannot start",
			    "not restarted, started again with its previous object and "
			    "settings");
		log_loaded(nrf, "started again");
		res->failed++;
		cfg_filter_free(&old_cf);
		free(rf);
		free(why);
		return;
	}
	/* Neither runs. With a gate, its instances stay shut (its default
	 * verdict, deny); without one (default allow) it is simply gone. */
	{
		char *both = NULL;

		if (asprintf(&both, "%s; and its previous object and settings: %s",
			     why ? why : "cannot start",
			     why_old ? why_old : "cannot start") < 0)
			both = NULL;
		free(why_old);
		why_old = both;
	}
	rf->cf = old_cf;
	rf->held = gate;
	if (gate) {
		problem_add(fs, want->name, why_old,
			    "not running; its instances are held shut (default "
			    "verdict deny)");
	} else {
		problem_add(fs, want->name, why_old, "not running");
		memmove(&fs->v[i], &fs->v[i + 1], (fs->n - i - 1) * sizeof(fs->v[0]));
		fs->n--;
		running_free(rf);
	}
	res->failed++;
	free(why);
	free(why_old);
}

/* A held filter: load want; on success the gate goes. */
static void
retry_held(struct filterset *fs, size_t i, const struct cfg_filter *want,
	   struct apply_result *res)
{
	struct running_filter *rf = fs->v[i], *nrf = NULL;
	struct filter_image img = { .fd = -1 };
	char *why = NULL;
	int r;

	r = filter_image_open(fs->filter_dir, want, &img, &why);
	if (r == 0) {
		r = start_filter(fs, want, &img, false, &nrf, &why);
		filter_image_close(&img);
	}
	if (r < 0) {
		problem_add(fs, want->name, why,
			    "still not running; its instances stay held shut");
		res->failed++;
		free(why);
		return;
	}
	nrf->configured = true;
	fs->v[i] = nrf;
	running_stop(rf);
	running_free(rf);
	log_loaded(nrf, "loaded");
	res->loaded++;
}

int
filterset_apply(struct filterset *fs, const struct cfg *c, struct apply_result *res)
{
	*res = (struct apply_result){ 0 };
	problems_clear(fs);
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
		ssize_t k = find_index(fs, want->name);
		struct running_filter *rf = k >= 0 ? fs->v[k] : NULL;
		size_t before;
		char *why = NULL;

		if (rf && !rf->lf.filter) {
			retry_held(fs, (size_t)k, want, res);
			continue;
		}
		if (rf && cfg_filter_same_settings(&rf->cf, want) &&
		    !filter_object_replaced(&rf->lf)) {
			rf->configured = true;
			apply_instances(fs, rf, want, res);
			if (!cfg_auto_same(&rf->cf.automatic, &want->automatic))
				apply_policy_change(fs, rf, want, res);
			continue;
		}
		if (rf) {
			dlog(FLT_LOG_NOTICE, "filter %s: %s (line %d); restarting it",
			     want->name,
			     cfg_filter_same_settings(&rf->cf, want)
				     ? "its object file was replaced"
				     : "settings changed",
			     want->line);
			restart(fs, (size_t)k, want, res);
			continue;
		}
		before = fs->n_problems;
		if (filterset_load(fs, want, true, &why) < 0) {
			char line[48];

			snprintf(line, sizeof(line), "%s:%d", c->file, want->line);
			problem_add(fs, want->name, why ? why : "cannot load",
				    "not running (%s)", line);
			res->failed++;
		} else {
			res->loaded++;
			/* instances it runs without */
			res->failed += (unsigned)(fs->n_problems - before);
		}
		free(why);
	}
	return res->failed ? -EIO : 0;
}

/* "; "-joined causes recorded for name, or NULL. */
static char *
causes(struct filterset *fs, const char *name)
{
	char *s = NULL;

	for (size_t i = 0; i < fs->n_problems; i++) {
		char *n;

		if (strcmp(fs->problems[i].name, name))
			continue;
		if (asprintf(&n, "%s%s%s", s ? s : "", s ? "; " : "",
			     fs->problems[i].cause) < 0) {
			free(s);
			return NULL;
		}
		free(s);
		s = n;
	}
	return s;
}

char *
filterset_mismatch(struct filterset *fs, const struct cfg_filter *want)
{
	struct running_filter *rf = filterset_find(fs, want->name);
	char *state = NULL, *why, *out = NULL;

	if (!rf) {
		state = strdup("not running");
	} else if (!rf->lf.filter) {
		state = strdup("not running; its instances are held shut by its default "
			       "verdict (deny)");
	} else if (!cfg_filter_same_settings(&rf->cf, want)) {
		state = strdup("running its previous settings, not the configured ones");
	} else if (filter_object_replaced(&rf->lf)) {
		if (asprintf(&state,
			     "running the object it loaded before; the file now at %s is "
			     "not loaded",
			     rf->lf.img.path) < 0)
			state = NULL;
	} else {
		for (size_t i = 0; i < want->n_instances && !state; i++) {
			ssize_t k = instance_index(&rf->cf, want->instances[i].path);

			if (k >= 0 && rf->cf.instances[k].kind == want->instances[i].kind)
				continue;
			if (asprintf(&state, "not attached to %s (%s)",
				     want->instances[i].path,
				     cfg_kind_name(want->instances[i].kind)) < 0)
				state = NULL;
		}
		if (!state)
			return NULL;
	}
	why = causes(fs, want->name);
	if (state && asprintf(&out, "%s%s%s", state, why ? ": " : "", why ? why : "") < 0)
		out = NULL;
	free(state);
	free(why);
	return out ? out : strdup("not running as configured");
}
