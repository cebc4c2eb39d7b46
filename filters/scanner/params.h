/* SPDX-License-Identifier: MIT */
/*
 * params.h — the scanner filter's parameters (param.NAME in fltmgrd's
 * configuration), checked once when the filter loads; see scanner(8) and
 * docs/scanner.md:
 *
 *   param.port = scanner            param.port_mode = 0600
 *   param.max_connections = 4       param.max_window = 64
 *   param.cache_size = 65536        param.ops = open,exec
 *   param.exclude_services = true   param.invalidate = true
 *   param.inline_ms = 10            param.inline_max_size = 262144
 */
#ifndef SCANNER_PARAMS_H
#define SCANNER_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fltmgr/filter.h>

struct sc_settings {
	char port[FLT_PORT_NAME_MAX + 1];
	mode_t port_mode;
	int max_connections;
	unsigned max_window; /* sender threads per service, at most */
	size_t cache_size;   /* user-space cache entries; 0: none */
	bool scan_open, scan_exec;
	bool exclude_services;
	bool invalidate; /* watch writes, close-after-write and renames */
	/* Sending from the pre callback (docs/scanner.md section 3): how
	 * long the engine's reader may wait for the verdict before the
	 * request is pended and sent again (0: never send inline), and the
	 * largest file sent that way. */
	unsigned inline_ms;
	uint64_t inline_max_size;
};

/* Reads cfg's parameters into *ret. On a bad one returns -EINVAL and
 * writes one line naming it and what is allowed into err. */
int sc_settings_parse(const struct flt_filter_config *cfg, struct sc_settings *ret,
		      char *err, size_t err_size);

#endif
