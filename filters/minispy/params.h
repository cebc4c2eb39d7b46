/* SPDX-License-Identifier: MIT */
/*
 * params.h — minispy's parameters (param.NAME in fltmgrd's configuration)
 * and what they become per instance: an operation mask and path
 * include/exclude patterns. The scheme is documented in
 * docs/minispy-filter.md; in short:
 *
 *   param.port = minispy                 param.max_connections = 8
 *   param.queue_size = 4096              param.backlog = 8192
 *   param.exclude_services = true        param.process = true
 *   param.port_mode = 0600
 *   param.ops = open,write,...|all       (defaults for every instance)
 *   param.include = /srv,*.conf,...      param.exclude = *.swp,...
 *   param.instance.LABEL.path = /srv/www (names the instance attached there)
 *   param.instance.LABEL.ops / .include / .exclude   (override the defaults)
 *
 * Everything is checked when the filter loads (ms_settings_parse), so an
 * instance setup can fail only for want of memory or an ambiguous label.
 */
#ifndef MINISPY_PARAMS_H
#define MINISPY_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fltmgr/filter.h>

#define MS_OPS_ALL ((1u << FLT_OP_OVERFLOW) - 1) /* OPEN..RENAME */

struct ms_label {
	char *name;
	char *path; /* as written */
	char *ops;  /* NULL: the default */
	char *include;
	char *exclude;
};

struct ms_settings {
	char port[FLT_PORT_NAME_MAX + 1];
	int max_connections;
	uint32_t queue_size;
	uint32_t backlog;
	bool exclude_services;
	bool process;
	mode_t port_mode;
	/* The port may hold a record up to this long for more to share its
	 * frame, unless a full frame is waiting (0: sent at once). */
	uint32_t coalesce_us;
	char *ops; /* defaults, NULL: all operations, no patterns */
	char *include;
	char *exclude;
	struct ms_label *labels;
	size_t n_labels;
};

/* What one instance reports. */
struct ms_match {
	uint32_t ops; /* bit (1 << enum flt_operation) */
	char **include;
	size_t n_include;
	char **exclude;
	size_t n_exclude;
	char *label; /* NULL: the defaults */
};

/*
 * Reads and checks cfg's parameters into *ret (free with
 * ms_settings_free). On a bad value returns -EINVAL (or -ENOMEM) and
 * writes one line naming the parameter and what is allowed into err.
 */
int ms_settings_parse(const struct flt_filter_config *cfg, struct ms_settings *ret,
		      char *err, size_t err_size);
void ms_settings_free(struct ms_settings *s);

/*
 * The match for the instance at canonical path `path`: the defaults,
 * overridden by the label whose path names it (compared after realpath).
 * -EINVAL (err set) when two labels name it; -ENOMEM.
 */
int ms_match_new(const struct ms_settings *s, const char *path, struct ms_match **ret,
		 char *err, size_t err_size);
void ms_match_free(struct ms_match *m);

/* Does the instance report this path? (include, then exclude) */
bool ms_match_path(const struct ms_match *m, const char *path);

/* "open,write" for a mask, into buf. */
void ms_ops_format(uint32_t ops, char *buf, size_t size);

#endif
