/* SPDX-License-Identifier: MIT */
/*
 * daemon.h — the state of one fltmgrd: its manager, the running filters,
 * the configuration they came from, and the daemon's own counters. Shared
 * by the main loop (fltmgrd.c), the control socket (control.c), the
 * command handlers (commands.c), reloads (reload.c) and metrics_file
 * (metrics.c); all run on the main thread.
 */
#ifndef FLTMGR_DAEMON_H
#define FLTMGR_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/config.h"
#include "daemon/filterset.h"

struct daemon_counters {
	uint64_t reloads, reload_failures;
	uint64_t control_requests, control_refused, control_malformed, control_timeouts;
	uint64_t control_busy; /* refused by the limits (also in control_refused) */
	uint64_t control_accept_errors;
	uint64_t watchdog_pings, watchdog_withheld;
};

/* How far past its deadline an unanswered event may be before the engine
 * counts as stuck (the watchdog thread answers on time, to 5 ms). */
#define DAEMON_PROGRESS_GRACE_MS 1000
/* Where the built-in configuration attaches minispy without --attach. */
#define DAEMON_DEFAULT_ATTACH "/tmp"

/* What the command line chose (fltmgrd.c fills it once): a reload keeps
 * these over the configuration file's values. */
struct daemon_cli {
	const char *const *attach; /* the built-in configuration's paths */
	size_t n_attach;
	const char *runtime_dir; /* NULL: not given */
	const char *filter_dir;  /* NULL: not given */
	int log_level;           /* 0: not given */
	/* Without --filter-dir or filter_dir: the installed directory, or
	 * this build tree's filters when run from it (fltmgrd.c). */
	const char *default_filter_dir;
};

struct control;

struct daemon {
	flt_manager *mgr;
	struct filterset fs;
	struct cfg *cfg;         /* what the filters were last reconciled to */
	const char *config_path; /* NULL: the built-in default */
	char *runtime_dir;
	char *filter_dir;
	gid_t control_gid; /* (gid_t)-1: root only */
	int64_t started_ns;
	struct daemon_counters ctr;
	struct daemon_cli cli;
	struct control *ctl; /* NULL before the control socket is open */
};

/* ---- reload.c ---- */

/* Reads the configuration again and applies it (SIGHUP, fltmc reload). A
 * configuration with errors (or a file that cannot be trusted) is
 * rejected whole and the running state kept. Returns 0, -EINVAL (errors,
 * logged, and one per line in *ret_errors: free() it), or -EIO (partly
 * applied: d->fs.problems says what failed). */
int daemon_reload(struct daemon *d, struct apply_result *res, char **ret_errors);

/* The engine is making progress (what the systemd watchdog checks). Being
 * healthy (fltmc status) also needs every configured filter to run as
 * configured (filterset_mismatch). */
bool daemon_progressing(struct daemon *d);

/* The built-in default configuration: minispy on cli->attach. Built as
 * text and parsed, so it obeys exactly the rules a file would. */
int daemon_builtin_config(const struct daemon_cli *cli, struct cfg **ret);
/* The directories in force: the command line's, else the file's, else
 * the default. */
const char *daemon_filter_dir(const struct daemon_cli *cli, const struct cfg *c);
const char *daemon_runtime_dir(const struct daemon_cli *cli, const struct cfg *c);
/* name's gid in *ret ((gid_t)-1 for NULL: root only); -ENOENT if none. */
int daemon_resolve_group(const char *name, gid_t *ret);
/* The configuration's notification hold (or the default) on d->mgr. */
void daemon_apply_notification_hold(struct daemon *d, const struct cfg *c);

#endif
