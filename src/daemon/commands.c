/* SPDX-License-Identifier: MIT */
/*
 * commands.c — see commands.h. Read-only commands take snapshots through
 * libfltmgr's introspection calls; changing commands go through the
 * filterset, the same path a reload takes.
 */
#include "daemon/commands.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/names.h"
#include "common/timeutil.h"
#include "daemon/dlog.h"
#include "daemon/json_put.h"
#include "daemon/stats.h"

#ifndef FLTMGR_VERSION
#define FLTMGR_VERSION "unknown"
#endif

struct json_object *
command_error(int err, const char *fmt, ...)
{
	struct json_object *o = json_object_new_object();
	const char *name = strerrorname_np(err < 0 ? -err : err);
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	put_str(o, "errno", name ? name : "EIO");
	put_str(o, "error", msg ? msg : "out of memory");
	free(msg);
	return o;
}

static void
put_problem(struct json_object *a, const char *filter, const char *problem)
{
	struct json_object *p = json_object_new_object();

	put_str(p, "filter", filter);
	put_str(p, "problem", problem);
	json_object_array_add(a, p);
}

/* Why the daemon is not healthy: the engine is stuck, or a configured
 * filter does not run as configured (filterset_mismatch). */
static struct json_object *
problems_json(struct daemon *d)
{
	struct json_object *a = json_object_new_array();

	if (!daemon_progressing(d))
		put_problem(a, NULL,
			    "the engine is not making progress (a permission event is "
			    "far past its deadline, or every reader is blocked)");
	for (size_t i = 0; d->cfg && i < d->cfg->n_filters; i++) {
		char *m = filterset_mismatch(&d->fs, &d->cfg->filters[i]);

		if (m)
			put_problem(a, d->cfg->filters[i].name, m);
		free(m);
	}
	return a;
}

static struct json_object *
cmd_status(struct daemon *d)
{
	struct json_object *o = ok_reply(), *problems = problems_json(d);

	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	put_str(o, "version", FLTMGR_VERSION);
	put_str(o, "config", d->config_path);
	put_str(o, "runtime_dir", d->runtime_dir);
	put_str(o, "filter_dir", d->filter_dir);
	put_u64(o, "uptime_ms", (uint64_t)(now_ns() - d->started_ns) / 1000000);
	put_u64(o, "filters", d->fs.n);
	json_object_object_add(
		o, "healthy",
		json_object_new_boolean(json_object_array_length(problems) == 0));
	json_object_object_add(o, "problems", problems);
	return o;
}

static struct json_object *
cmd_filters(struct daemon *d)
{
	struct running_filter **v = sorted_filters(d);
	struct json_object *o, *a;

	if (!v)
		return command_error(ENOMEM, "out of memory");
	o = ok_reply();
	a = json_object_new_array();
	for (size_t i = 0; i < d->fs.n; i++) {
		struct json_object *f = json_object_new_object();

		put_str(f, "name", v[i]->cf.name);
		put_str(f, "altitude", v[i]->cf.altitude);
		put_u64(f, "instances", v[i]->cf.n_instances);
		put_str(f, "state", v[i]->lf.filter ? "running" : "held");
		put_str(f, "object",
			v[i]->lf.filter ? v[i]->lf.img.path : v[i]->cf.object);
		json_object_object_add(f, "deadline_ms",
				       json_object_new_int(v[i]->cf.deadline_ms
								   ? v[i]->cf.deadline_ms
								   : 5000));
		put_str(f, "default_verdict",
			v[i]->cf.default_verdict ? "deny" : "allow");
		json_object_object_add(f, "configured",
				       json_object_new_boolean(v[i]->configured));
		json_object_array_add(a, f);
	}
	json_object_object_add(o, "filters", a);
	free(v);
	return o;
}

static const char *
instance_state_name(enum flt_instance_state st)
{
	switch (st) {
	case FLT_INSTANCE_ATTACHED:
		return "attached";
	case FLT_INSTANCE_REATTACHED:
		return "reattached";
	case FLT_INSTANCE_STALE:
		return "stale";
	}
	return "unknown";
}

/* ISO-8601 UTC to the second ("2026-12-07T03:04:05Z"); null if unset. */
static void
put_time(struct json_object *o, const char *key, const struct timespec *ts)
{
	char buf[32];
	struct tm tm;

	if (ts->tv_sec <= 0 || !gmtime_r(&ts->tv_sec, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
		json_object_object_add(o, key, NULL);
		return;
	}
	put_str(o, key, buf);
}

/* The instances of a running or held filter (a held one's are its
 * gate's), oldest first; -errno. */
static int
filter_instances(struct running_filter *rf, struct flt_instance_info **ret_in,
		 size_t *ret_n)
{
	return flt_filter_list_instances(
		rf->lf.filter ? rf->lf.filter : gate_filter(rf->held), ret_in, ret_n);
}

static struct json_object *
cmd_instances(struct daemon *d, const char *only)
{
	struct running_filter **v;
	struct json_object *o, *a;

	if (only && !filterset_find(&d->fs, only))
		return command_error(ENOENT, "no filter named %s is loaded", only);
	v = sorted_filters(d);
	if (!v)
		return command_error(ENOMEM, "out of memory");
	o = ok_reply();
	a = json_object_new_array();
	for (size_t i = 0; i < d->fs.n; i++) {
		struct flt_instance_info *in = NULL;
		size_t n = 0;

		if (only && strcmp(v[i]->cf.name, only))
			continue;
		if (filter_instances(v[i], &in, &n) < 0)
			continue;
		for (size_t k = n; k-- > 0;) { /* oldest first */
			struct json_object *x = json_object_new_object();

			put_str(x, "filter", v[i]->cf.name);
			put_str(x, "altitude", v[i]->cf.altitude);
			put_str(x, "path", in[k].path);
			put_str(x, "kind", cfg_kind_name(in[k].kind));
			put_str(x, "state",
				!v[i]->lf.filter ? "held"
						 : instance_state_name(in[k].state));
			put_time(x, "state_time", &in[k].state_time);
			put_u64(x, "reattaches", in[k].reattaches);
			put_u64(x, "events", in[k].events);
			put_u64(x, "denied", in[k].denied);
			put_u64(x, "mount_id", in[k].mount_id);
			json_object_object_add(x, "automatic",
					       json_object_new_boolean(in[k].automatic));
			json_object_array_add(a, x);
		}
		free(in);
	}
	json_object_object_add(o, "instances", a);
	free(v);
	return o;
}

/* Whether instance in covers volume vol: a FILESYSTEM instance every
 * mount of its filesystem, the others the mount they are on. */
static bool
instance_covers(const struct flt_instance_info *in, const struct flt_volume *vol)
{
	if (in->kind == FLT_INSTANCE_FILESYSTEM)
		return in->dev == vol->dev;
	return in->mount_id && in->mount_id == vol->mount_id;
}

/* fltmc volumes: every mount the engine sees (its own namespace's, then
 * the watched ones'), and the filters with an instance on each. */
static struct json_object *
cmd_volumes(struct daemon *d)
{
	struct running_filter **v = sorted_filters(d);
	struct flt_instance_info **ins;
	struct flt_volume *vol = NULL;
	struct json_object *o, *a;
	size_t n_vol = 0, *n_in;
	int r;

	if (!v)
		return command_error(ENOMEM, "out of memory");
	ins = calloc(d->fs.n + 1, sizeof(*ins));
	n_in = calloc(d->fs.n + 1, sizeof(*n_in));
	r = flt_manager_list_volumes(d->mgr, &vol, &n_vol);
	if (!ins || !n_in || r < 0) {
		free(ins);
		free(n_in);
		free(v);
		return r < 0 ? command_error(-r, "cannot list the volumes: %s",
					     strerror(-r))
			     : command_error(ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < d->fs.n; i++)
		if (filter_instances(v[i], &ins[i], &n_in[i]) < 0)
			n_in[i] = 0;
	o = ok_reply();
	a = json_object_new_array();
	for (size_t k = 0; k < n_vol; k++) {
		struct json_object *x = json_object_new_object(),
				   *fl = json_object_new_array();

		put_u64(x, "mount_id", vol[k].mount_id);
		put_str(x, "mount_point", vol[k].mount_point);
		put_str(x, "fs_type", vol[k].fs_type);
		put_str(x, "source", vol[k].source);
		put_str(x, "root", vol[k].root);
		put_u64(x, "dev_major", major(vol[k].dev));
		put_u64(x, "dev_minor", minor(vol[k].dev));
		json_object_object_add(
			x, "read_only",
			json_object_new_boolean(vol[k].flags & FLT_VOLUME_READ_ONLY));
		json_object_object_add(
			x, "bind",
			json_object_new_boolean(vol[k].flags & FLT_VOLUME_BIND));
		json_object_object_add(
			x, "pseudo",
			json_object_new_boolean(vol[k].flags & FLT_VOLUME_PSEUDO));
		put_u64(x, "ns_pid", (uint64_t)vol[k].ns_pid);
		for (size_t i = 0; i < d->fs.n; i++) {
			for (size_t j = 0; j < n_in[i]; j++) {
				struct json_object *f;

				if (!instance_covers(&ins[i][j], &vol[k]))
					continue;
				f = json_object_new_object();
				put_str(f, "name", v[i]->cf.name);
				put_str(f, "kind", cfg_kind_name(ins[i][j].kind));
				put_str(f, "path", ins[i][j].path);
				json_object_object_add(
					f, "automatic",
					json_object_new_boolean(ins[i][j].automatic));
				json_object_array_add(fl, f);
			}
		}
		json_object_object_add(x, "filters", fl);
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "volumes", a);
	for (size_t i = 0; i < d->fs.n; i++)
		free(ins[i]);
	free(ins);
	free(n_in);
	free(vol);
	free(v);
	return o;
}

static struct json_object *
cmd_ports(struct daemon *d)
{
	struct json_object *o = ok_reply(), *a = json_object_new_array();

	stats_add_ports(d, a, false);
	json_object_object_add(o, "ports", a);
	return o;
}

/* The filter's own counters, if it has any, as "counters": {...}. */
static struct json_object *
why_reply(int r, char *why, const char *fallback)
{
	struct json_object *o = command_error(r, "%s", why ? why : fallback);

	free(why);
	return o;
}

static struct json_object *
cmd_load(struct daemon *d, const struct ctl_request *rq)
{
	const struct cfg_filter *cf = NULL;
	struct cfg_filter adhoc = { 0 };
	char *why = NULL, *object = NULL;
	int r;

	/* Refused with the reason, before anything is opened: the rules of
	 * a [filter NAME] section (fltmgr.conf(5)). */
	if (!name_valid(rq->name))
		return command_error(
			EINVAL, "bad filter name \"%s\": 1 to 64 of A-Z a-z 0-9 . _ -",
			rq->name);
	if (rq->altitude && !altitude_valid(rq->altitude))
		return command_error(
			EINVAL,
			"altitude must be a decimal number such as 385100 or "
			"385100.5, not \"%s\"",
			rq->altitude);
	if (rq->object && (!*rq->object || strstr(rq->object, "..")))
		return command_error(
			EINVAL,
			"bad filter object \"%s\": a file name in the filter "
			"directory or an absolute path, without \"..\"",
			rq->object);
	if (!rq->altitude && !rq->object)
		cf = cfg_find_filter(d->cfg, rq->name);
	if (!cf) {
		/* Not configured: NAME.so (or the object given) with no
		 * parameters and no instances, at the altitude given or else
		 * the filter's own default (loader.h), as Windows takes it
		 * from the filter's INF. */
		if (!rq->object && asprintf(&object, "%s.so", rq->name) < 0)
			return command_error(ENOMEM, "out of memory");
		adhoc.name = rq->name;
		adhoc.altitude = rq->altitude;
		adhoc.object = rq->object ? rq->object : object;
		cf = &adhoc;
	}
	r = filterset_load(&d->fs, cf, cf != &adhoc, &why);
	free(object);
	if (r < 0)
		return why_reply(r, why, "cannot load");
	return ok_reply();
}

/* The last reload's problems, "; "-joined (free() it). */
static char *
join_problems(struct daemon *d)
{
	char *s = NULL;

	for (size_t i = 0; i < d->fs.n_problems; i++) {
		char *n;

		if (asprintf(&n, "%s%s%s", s ? s : "", s ? "; " : "",
			     d->fs.problems[i].message) < 0)
			break;
		free(s);
		s = n;
	}
	return s;
}

static struct json_object *
command_do(struct daemon *d, const struct ctl_request *rq)
{
	struct apply_result res;
	char *why = NULL;
	int r;

	switch (rq->command) {
	case CTL_STATUS:
		return cmd_status(d);
	case CTL_FILTERS:
		return cmd_filters(d);
	case CTL_INSTANCES:
		return cmd_instances(d, rq->name);
	case CTL_VOLUMES:
		return cmd_volumes(d);
	case CTL_PORTS:
		return cmd_ports(d);
	case CTL_STATS:
		return stats_reply(d);
	case CTL_LOAD:
		return cmd_load(d, rq);
	case CTL_UNLOAD:
		if (filterset_unload(&d->fs, rq->name) < 0)
			return command_error(ENOENT, "no filter named %s is loaded",
					     rq->name);
		return ok_reply();
	case CTL_ATTACH:
		r = filterset_attach(&d->fs, rq->name, rq->path, rq->kind, &why);
		return r < 0 ? why_reply(r, why, "cannot attach") : ok_reply();
	case CTL_DETACH:
		r = filterset_detach(&d->fs, rq->name, rq->path, &why);
		return r < 0 ? why_reply(r, why, "cannot detach") : ok_reply();
	case CTL_RELOAD: {
		struct json_object *o, *errors;

		r = daemon_reload(d, &res, &why);
		if (r == -EINVAL) {
			/* every FILE:LINE error: "; "-joined in error (what
			 * fltmc prints), one each in errors (for scripts) */
			char *joined = NULL, *save = NULL;

			errors = json_object_new_array();
			for (char *l = why ? strtok_r(why, "\n", &save) : NULL; l;
			     l = strtok_r(NULL, "\n", &save)) {
				char *n;

				json_object_array_add(errors, json_object_new_string(l));
				if (asprintf(&n, "%s%s%s", joined ? joined : "",
					     joined ? "; " : "", l) < 0)
					break;
				free(joined);
				joined = n;
			}
			o = command_error(EINVAL,
					  "the configuration was rejected, nothing was "
					  "changed: %s",
					  joined ? joined : "see the daemon's log");
			json_object_object_add(o, "errors", errors);
			free(joined);
			free(why);
			return o;
		}
		free(why);
		errors = json_object_new_array();
		for (size_t i = 0; i < d->fs.n_problems; i++)
			json_object_array_add(errors, json_object_new_string(
							      d->fs.problems[i].message));
		if (r < 0) {
			char *all = join_problems(d);

			o = command_error(-r, "reload applied only in part: %s",
					  all ? all : "see the daemon's log");
			free(all);
		} else {
			o = ok_reply();
		}
		put_u64(o, "loaded", res.loaded);
		put_u64(o, "unloaded", res.unloaded);
		put_u64(o, "restarted", res.restarted);
		put_u64(o, "attached", res.attached);
		put_u64(o, "detached", res.detached);
		put_u64(o, "failed", res.failed);
		json_object_object_add(o, "errors", errors);
		return o;
	}
	default:
		return command_error(EINVAL, "unknown command");
	}
}

struct json_object *
command_run(struct daemon *d, const struct ctl_request *rq)
{
	if (!ctl_command_read_only(rq->command))
		dlog(FLT_LOG_NOTICE, "control: %s%s%s%s%s", ctl_command_name(rq->command),
		     rq->name ? " " : "", rq->name ? rq->name : "", rq->path ? " " : "",
		     rq->path ? rq->path : "");
	return command_do(d, rq);
}
