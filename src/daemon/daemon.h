/* SPDX-License-Identifier: MIT */
/*
 * daemon.h — the state of one fltmgrd: its manager, the running filters,
 * the configuration they came from, and the daemon's own counters. Shared
 * by the main loop (fltmgrd.c), the control socket (control.c) and the
 * command handlers (commands.c); all run on the main thread.
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
};

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

#endif
