/* SPDX-License-Identifier: MIT */
/*
 * reload.c — applying a configuration to a running daemon (daemon.h):
 * daemon_reload() for SIGHUP and `fltmc reload`, the [fltmgrd] settings
 * that change without a restart, and the rules both start and reload use
 * to pick the built-in configuration, the filter and runtime directories
 * and the control group (the command line's choices win: struct
 * daemon_cli). Also daemon_progressing(), the engine's health as the
 * watchdog and `fltmc status` see it. Called by the main file (fltmgrd.c)
 * and the command handlers (commands.c); calls neither.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "common/runtime_dir.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "daemon/dlog.h"
#include "daemon/metrics.h"
#include "daemon/trust.h"

#define BUILTIN_FILTER   "minispy"
#define BUILTIN_ALTITUDE "385100"

/* The built-in default: minispy on the --attach paths. Built as text and
 * parsed, so it obeys exactly the rules a file would. */
int
daemon_builtin_config(const struct daemon_cli *o, struct cfg **ret)
{
	char *text = NULL, *errors = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int r;

	if (!f)
		return -ENOMEM;
	fprintf(f, "[filter " BUILTIN_FILTER "]\naltitude = " BUILTIN_ALTITUDE "\n");
	for (size_t i = 0; i < (o->n_attach ? o->n_attach : 1); i++) {
		const char *p = o->n_attach ? o->attach[i] : DAEMON_DEFAULT_ATTACH;
		char abs[PATH_MAX];

		if (!realpath(p, abs)) {
			dlog(FLT_LOG_ERROR, "--attach %s: %s", p, strerror(errno));
			fclose(f);
			free(text);
			return -ENOENT;
		}
		if (strpbrk(abs, " \t\n")) {
			dlog(FLT_LOG_ERROR,
			     "--attach %s: paths with white space cannot be attached "
			     "from the command line; use a config file",
			     abs);
			fclose(f);
			free(text);
			return -EINVAL;
		}
		fprintf(f, "attach = %s\n", abs);
	}
	fclose(f);
	r = cfg_parse_string("<built-in>", text, ret, &errors);
	if (r < 0)
		fprintf(stderr, "%s", errors ? errors : "fltmgrd: out of memory\n");
	free(errors);
	free(text);
	return r;
}

const char *
daemon_filter_dir(const struct daemon_cli *o, const struct cfg *c)
{
	if (o->filter_dir)
		return o->filter_dir;
	if (c->filter_dir)
		return c->filter_dir;
	return o->default_filter_dir;
}

const char *
daemon_runtime_dir(const struct daemon_cli *o, const struct cfg *c)
{
	return runtime_dir_resolve(o->runtime_dir, c->runtime_dir);
}

int
daemon_resolve_group(const char *name, gid_t *ret)
{
	struct group *g;

	*ret = (gid_t)-1;
	if (!name)
		return 0;
	errno = 0;
	g = getgrnam(name);
	if (!g)
		return errno ? -errno : -ENOENT;
	*ret = g->gr_gid;
	return 0;
}

bool
daemon_progressing(struct daemon *d)
{
	return flt_manager_check_progress(d->mgr, DAEMON_PROGRESS_GRACE_MS) == 0;
}

void
daemon_apply_notification_hold(struct daemon *d, const struct cfg *c)
{
	unsigned us = c->notification_hold_set ? c->notification_hold_us
					       : CFG_NOTIFICATION_HOLD_US;

	(void)flt_manager_set_notification_hold(d->mgr, us); /* checked when parsed */
}

/* Settings of [fltmgrd] that can change without a restart. */
static void
apply_daemon_settings(struct daemon *d, const struct cfg *c)
{
	gid_t gid;

	daemon_apply_notification_hold(d, c);
	if (!d->cli.log_level)
		dlog_set_level(c->log_level ? c->log_level : FLT_LOG_NOTICE);
	if (!d->cli.filter_dir && strcmp(daemon_filter_dir(&d->cli, c), d->filter_dir)) {
		char *n = strdup(daemon_filter_dir(&d->cli, c));

		if (n && filterset_set_dir(&d->fs, n) == 0) {
			free(d->filter_dir);
			d->filter_dir = n;
		} else {
			free(n);
		}
	}
	if (strcmp(daemon_runtime_dir(&d->cli, c), d->runtime_dir))
		dlog(FLT_LOG_WARNING,
		     "runtime_dir changed to %s; it takes effect at the next start "
		     "(still using %s)",
		     daemon_runtime_dir(&d->cli, c), d->runtime_dir);
	if (daemon_resolve_group(c->control_group, &gid) < 0) {
		dlog(FLT_LOG_ERROR,
		     "control_group '%s' does not exist; keeping the old one",
		     c->control_group);
	} else if (gid != d->control_gid) {
		d->control_gid = gid;
		if (d->ctl)
			control_set_group(d->ctl, gid);
	}
}

int
daemon_reload(struct daemon *d, struct apply_result *res, char **ret_errors)
{
	struct cfg *c = NULL;
	char *errors = NULL;
	int r;

	*res = (struct apply_result){ 0 };
	*ret_errors = NULL;
	d->ctr.reloads++;
	sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
	if (d->config_path) {
		r = cfg_load_trusted(d->config_path, &c, &errors);
		if (r < 0) {
			char *save = NULL, *copy = errors ? strdup(errors) : NULL;

			dlog(FLT_LOG_ERROR,
			     "reload: %s rejected; the running filters are "
			     "unchanged:",
			     d->config_path);
			for (char *l = strtok_r(copy, "\n", &save); l;
			     l = strtok_r(NULL, "\n", &save))
				dlog(FLT_LOG_ERROR, "  %s", l);
			if (!errors)
				dlog(FLT_LOG_ERROR, "  %s: %s", d->config_path,
				     strerror(-r));
			free(copy);
			if (!errors && asprintf(&errors, "%s: %s\n", d->config_path,
						strerror(-r)) < 0)
				errors = NULL;
			*ret_errors = errors; /* "FILE:LINE: ...\n" lines */
			d->ctr.reload_failures++;
			sd_notify(0,
				  "READY=1\nSTATUS=Reload rejected; running the previous "
				  "configuration");
			return -EINVAL;
		}
	} else if (daemon_builtin_config(&d->cli, &c) < 0) {
		d->ctr.reload_failures++;
		sd_notify(0, "READY=1");
		return -EINVAL;
	}
	apply_daemon_settings(d, c);
	/* Every instance against the mount table now, not when the engine
	 * next notices: the reload, and any gate it puts up, then work from
	 * the instances' current filesystems. */
	(void)flt_manager_recheck_instances(d->mgr);
	r = filterset_apply(&d->fs, c, res);
	cfg_free(d->cfg);
	d->cfg = c;
	metrics_arm(d);
	if (r < 0)
		d->ctr.reload_failures++;
	dlog(r < 0 ? FLT_LOG_ERROR : FLT_LOG_NOTICE,
	     "reloaded %s: %u loaded, %u unloaded, %u restarted, %u attached, %u "
	     "detached, %u failed",
	     d->config_path ? d->config_path : "the built-in configuration", res->loaded,
	     res->unloaded, res->restarted, res->attached, res->detached, res->failed);
	sd_notifyf(0, "READY=1\nSTATUS=Filtering with %zu filter%s%s", d->fs.n,
		   d->fs.n == 1 ? "" : "s",
		   r < 0 ? "; the last reload failed in part (fltmc status)" : "");
	return r;
}
