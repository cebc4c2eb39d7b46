/* SPDX-License-Identifier: MIT */
/*
 * config.h — fltmgrd's configuration file (INI, parsed with libinih):
 *
 *   [fltmgrd]
 *   runtime_dir = /run/fltmgr
 *   filter_dir = /usr/lib/x86_64-linux-gnu/fltmgr/filters
 *   log_level = notice            ; error warning notice info debug
 *   control_group = adm           ; may use fltmc's read-only commands
 *   metrics_file = /var/lib/prometheus/node-exporter/fltmgr.prom
 *   metrics_interval = 15         ; seconds, 1 to 3600
 *   notification_hold_us = 0      ; 0 to 100000: batch a trickle of events
 *
 *   [filter minispy]
 *   altitude = 385100             ; required
 *   object = minispy.so           ; default NAME.so, in filter_dir
 *   deadline_ms = 5000
 *   default_verdict = allow       ; or deny
 *   attach = /home                ; PATH [subtree|mount|filesystem]; repeatable
 *   auto_attach = ext4 xfs        ; volumes attached as they mount
 *                                 ; (the auto_attach_* keys: config_auto.h)
 *   param.queue_size = 4096       ; the filter's own parameters
 *
 * Every error names the file and line. The whole file is checked and every
 * error reported, not just the first. Lines are limited to what libinih
 * buffers (199 characters in Debian's build); a longer line is an error,
 * never silently cut.
 */
#ifndef FLTMGR_CONFIG_H
#define FLTMGR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <fltmgr/filter.h>

#include "daemon/config_auto.h"

#define CFG_MAX_LINE 1024

struct cfg_instance {
	char *path;
	enum flt_instance_kind kind;
	int line;
};

struct cfg_param {
	char *key; /* without the "param." prefix */
	char *value;
	int line;
};

struct cfg_filter {
	char *name;
	char *object; /* as written; resolved against filter_dir by the loader */
	char *altitude;
	int deadline_ms;     /* 0: the engine's default */
	int default_verdict; /* 0 or -EPERM */
	struct cfg_instance *instances;
	size_t n_instances;
	struct cfg_param *params;
	size_t n_params;
	struct cfg_auto automatic; /* auto_attach policy (config_auto.h) */
	int line;                  /* of the [filter NAME] header */
	bool bad_altitude;         /* parsing: one was given and refused (said once) */
};

/* The daemon's notification hold unless the file says otherwise: off.
 * A hold batches a steady trickle (less CPU per event), but a process
 * that exits within it is gone before its details are read, so most
 * events of short-lived processes lose them (docs/operations.md). */
#define CFG_NOTIFICATION_HOLD_US 0

struct cfg {
	char *file;             /* as given, for messages */
	char *runtime_dir;      /* NULL: the default */
	char *filter_dir;       /* NULL: the default */
	char *control_group;    /* NULL: the control socket is root-only */
	char *metrics_file;     /* NULL: none; else Prometheus text, rewritten */
	int metrics_interval_s; /* every this many seconds (default 15) */
	int log_level;          /* 0: the default */
	/* flt_manager_set_notification_hold(); not set: CFG_NOTIFICATION_HOLD_US */
	bool notification_hold_set;
	unsigned notification_hold_us;
	struct cfg_filter *filters;
	size_t n_filters;
};

/*
 * Parses `text` (or the file at `path`). On success *ret_cfg is set and 0
 * returned. On failure returns -EINVAL (-errno if the file cannot be read)
 * and *ret_errors holds every problem, one "FILE:LINE: message" per line
 * (free() it).
 */
int cfg_parse_string(const char *name, const char *text, struct cfg **ret_cfg,
		     char **ret_errors);
int cfg_load(const char *path, struct cfg **ret_cfg, char **ret_errors);
/* The same from an open file, read to its end; name is for messages. A
 * file with nothing but blank lines and comments is an error. */
int cfg_load_fd(int fd, const char *name, struct cfg **ret_cfg, char **ret_errors);
/* fltmgrd reads its file with cfg_load_trusted() (trust.h). */
void cfg_free(struct cfg *c);

const struct cfg_filter *cfg_find_filter(const struct cfg *c, const char *name);
/* Same object, altitude, deadline, verdict, parameters (instances and the
 * automatic attachment policy aside: both change in place). */
bool cfg_filter_same_settings(const struct cfg_filter *a, const struct cfg_filter *b);
bool cfg_filter_same_instances(const struct cfg_filter *a, const struct cfg_filter *b);

const char *cfg_kind_name(enum flt_instance_kind kind);
/* "subtree", "mount", "filesystem" -> kind; -EINVAL otherwise. */
int cfg_kind_parse(const char *name);

/* Deep copy (0 or -ENOMEM; on failure dst is empty) and its release. */
int cfg_filter_copy(const struct cfg_filter *src, struct cfg_filter *dst);
void cfg_filter_free(struct cfg_filter *f);

#endif
