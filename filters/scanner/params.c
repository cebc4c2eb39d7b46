/* SPDX-License-Identifier: MIT */
/*
 * params.c — see params.h. A pure function of the configuration.
 */
#include "params.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fltmgr/scanner.h>

static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool
parse_ulong(const char *s, int base, unsigned long min, unsigned long max,
	    unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

static bool
parse_bool(const char *s, bool *ret)
{
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1")) {
		*ret = true;
		return true;
	}
	if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0")) {
		*ret = false;
		return true;
	}
	return false;
}

static int
parse_ops(const char *v, struct sc_settings *s, char *err, size_t size)
{
	char buf[64], *save = NULL;

	if (strlen(v) >= sizeof(buf))
		return fail(err, size, "param.ops: too long");
	strcpy(buf, v);
	s->scan_open = s->scan_exec = false;
	for (char *w = strtok_r(buf, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
		if (!strcmp(w, "open"))
			s->scan_open = true;
		else if (!strcmp(w, "exec"))
			s->scan_exec = true;
		else
			return fail(err, size,
				    "param.ops: unknown operation '%s' (open, exec)", w);
	}
	if (!s->scan_open && !s->scan_exec)
		return fail(err, size, "param.ops: no operation given (open, exec)");
	return 0;
}

int
sc_settings_parse(const struct flt_filter_config *cfg, struct sc_settings *ret, char *err,
		  size_t err_size)
{
	struct sc_settings s = {
		.port = "scanner",
		.port_mode = 0600,
		.max_connections = 4,
		.max_window = 64,
		.cache_size = 65536,
		.scan_open = true,
		.scan_exec = true,
		.exclude_services = true,
		.invalidate = true,
		.inline_ms = SCANNER_INLINE_MS_DEFAULT,
		.inline_max_size = 256 * 1024,
	};

	for (size_t i = 0; i < cfg->n_params; i++) {
		const char *k = cfg->param_keys[i], *v = cfg->param_values[i];
		unsigned long n;
		int r;

		if (!strcmp(k, "port")) {
			size_t len = strlen(v);

			if (!len || len > FLT_PORT_NAME_MAX ||
			    strspn(v,
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789._-") != len ||
			    !strcmp(v, ".") || !strcmp(v, ".."))
				return fail(err, err_size,
					    "param.port: '%s' is not a port name "
					    "([A-Za-z0-9._-]{1,64})",
					    v);
			memcpy(s.port, v, len + 1);
		} else if (!strcmp(k, "port_mode")) {
			if (!parse_ulong(v, 8, 1, 0777, &n))
				return fail(err, err_size,
					    "param.port_mode: '%s' is not an octal mode "
					    "such as 0600",
					    v);
			s.port_mode = (mode_t)n;
		} else if (!strcmp(k, "max_connections")) {
			if (!parse_ulong(v, 10, 1, 64, &n))
				return fail(
					err, err_size,
					"param.max_connections: must be 1..64, not '%s'",
					v);
			s.max_connections = (int)n;
		} else if (!strcmp(k, "max_window")) {
			if (!parse_ulong(v, 10, 1, SCANNER_MAX_WINDOW, &n))
				return fail(err, err_size,
					    "param.max_window: must be 1..%d, not '%s'",
					    SCANNER_MAX_WINDOW, v);
			s.max_window = (unsigned)n;
		} else if (!strcmp(k, "cache_size")) {
			if (!parse_ulong(v, 10, 0, 1ul << 24, &n))
				return fail(err, err_size,
					    "param.cache_size: must be 0..16777216 "
					    "entries, not '%s'",
					    v);
			s.cache_size = n;
		} else if (!strcmp(k, "ops")) {
			r = parse_ops(v, &s, err, err_size);
			if (r < 0)
				return r;
		} else if (!strcmp(k, "exclude_services")) {
			if (!parse_bool(v, &s.exclude_services))
				return fail(err, err_size,
					    "param.exclude_services: true or false, not "
					    "'%s'",
					    v);
		} else if (!strcmp(k, "invalidate")) {
			if (!parse_bool(v, &s.invalidate))
				return fail(err, err_size,
					    "param.invalidate: true or false, not '%s'",
					    v);
		} else if (!strcmp(k, "inline_ms")) {
			if (!parse_ulong(v, 10, 0, SCANNER_INLINE_MS_MAX, &n))
				return fail(err, err_size,
					    "param.inline_ms: must be 0..%d (0: never "
					    "send from the pre callback), not '%s'",
					    SCANNER_INLINE_MS_MAX, v);
			s.inline_ms = (unsigned)n;
		} else if (!strcmp(k, "inline_max_size")) {
			if (!parse_ulong(v, 10, 0, 1ul << 30, &n))
				return fail(
					err, err_size,
					"param.inline_max_size: must be 0..1073741824 "
					"bytes, not '%s'",
					v);
			s.inline_max_size = n;
		} else {
			return fail(err, err_size,
				    "unknown parameter param.%s (port, port_mode, "
				    "max_connections, max_window, cache_size, ops, "
				    "exclude_services, invalidate, inline_ms, "
				    "inline_max_size)",
				    k);
		}
	}
	*ret = s;
	return 0;
}
