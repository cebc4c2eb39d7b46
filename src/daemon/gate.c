/* SPDX-License-Identifier: MIT */
/*
 * gate.c — see gate.h. The gate's altitude is the shortest decimal that
 * the engine (which compares altitudes as long double) places strictly
 * above the held filter and strictly below the next higher filter, so no
 * filter can sit between the two and every filter above the held one is
 * still asked first.
 */
#include "daemon/gate.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GATE_NAME "fltmgrd-gate"

struct gate {
	flt_filter *filter;
};

static int __attribute__((format(printf, 3, 4)))
fail(int r, char **ret_why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(ret_why, fmt, ap) < 0)
		*ret_why = NULL;
	va_end(ap);
	return r;
}

static enum flt_preop_status
gate_pre(struct flt_callback_data *data, void *instance_context, void **completion)
{
	(void)instance_context;
	(void)completion;
	data->status = -EPERM;
	return FLT_PREOP_COMPLETE;
}

/* The altitude just above held's (see the top of the file) into buf. */
static int
gate_altitude(flt_manager *m, flt_filter *held, char *buf, size_t size)
{
	flt_filter *list[256];
	size_t n = flt_manager_list_filters(m, list, 256);
	long double a = strtold(flt_filter_altitude(held), NULL), next = INFINITY;

	if (n > 256)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		long double x = strtold(flt_filter_altitude(list[i]), NULL);

		if (x > a && x < next)
			next = x;
	}
	for (int decimals = 0; decimals <= 18; decimals++) {
		long double scale = powl(10.0L, decimals);
		long double c = (floorl(a * scale) + 1.0L) / scale, parsed;
		int len = snprintf(buf, size, "%.*Lf", decimals, c);

		if (len <= 0 || (size_t)len >= size || len >= 32)
			break;
		parsed = strtold(buf, NULL);
		if (parsed > a && parsed < next)
			return 0;
	}
	return -ERANGE;
}

int
gate_hold(flt_manager *m, flt_filter *held, struct gate **ret, char **ret_why)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, gate_pre, NULL },
		{ FLT_OP_EXEC, gate_pre, NULL },
		{ FLT_OP_READ, gate_pre, NULL },
	};
	static unsigned serial;
	struct flt_instance_info *in = NULL;
	struct flt_registration reg = {
		.operations = ops,
		.n_operations = sizeof(ops) / sizeof(ops[0]),
		.default_verdict = -EPERM,
		/* It denies everything, asking for neither: it must start on
		 * an engine whose permission group has no pidfds. */
		.flags = FLT_REGISTRATION_PATH_ON_REQUEST |
			 FLT_REGISTRATION_NO_PROCESS_DETAILS,
	};
	char altitude[40], name[FLT_PORT_NAME_MAX + 1];
	struct gate *g;
	size_t n = 0;
	int r;

	*ret = NULL;
	*ret_why = NULL;
	r = flt_filter_list_instances(held, &in, &n);
	if (r < 0)
		return fail(r, ret_why, "cannot list the instances of filter %s: %s",
			    flt_filter_name(held), strerror(-r));
	if (n == 0) {
		free(in);
		return 0;
	}
	r = gate_altitude(m, held, altitude, sizeof(altitude));
	if (r < 0) {
		free(in);
		return fail(r, ret_why,
			    "no altitude is free just above filter %s's (%s) to hold its "
			    "instances during its restart",
			    flt_filter_name(held), flt_filter_altitude(held));
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		free(in);
		return -ENOMEM;
	}
	reg.altitude = altitude;
	reg.name = name;
	/* A configured filter could have the name: take the next. */
	do {
		snprintf(name, sizeof(name), GATE_NAME ".%u", serial++);
		r = flt_register_filter(m, &reg, &g->filter);
	} while (r == -EEXIST);
	if (r < 0) {
		r = fail(r, ret_why,
			 "cannot register a filter to hold filter %s's instances: %s",
			 flt_filter_name(held), strerror(-r));
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		r = flt_attach(g->filter, in[i].path, in[i].kind);
		if (r < 0) {
			r = fail(r, ret_why,
				 "cannot hold filter %s's instance %s during its "
				 "restart: %s",
				 flt_filter_name(held), in[i].path, strerror(-r));
			goto fail;
		}
	}
	r = flt_start_filtering(g->filter);
	if (r < 0) {
		r = fail(r, ret_why, "cannot start holding filter %s's instances: %s",
			 flt_filter_name(held), strerror(-r));
		goto fail;
	}
	free(in);
	*ret = g;
	return 0;
fail:
	if (g->filter)
		flt_unregister_filter(g->filter);
	free(g);
	free(in);
	return r;
}

flt_filter *
gate_filter(struct gate *g)
{
	return g ? g->filter : NULL;
}

void
gate_release(struct gate *g)
{
	if (!g)
		return;
	flt_unregister_filter(g->filter);
	free(g);
}
