/* SPDX-License-Identifier: MIT */
/*
 * test_filter.c — a minimal filter shared object for the loader tests: it
 * registers itself from its entry point, or refuses with the errno given
 * in param.refuse.
 */
#include <stdlib.h>

#include <fltmgr/filter.h>

int fltmgr_filter_entry(flt_manager *m, const struct flt_filter_config *cfg,
			flt_filter **ret);

int
fltmgr_filter_entry(flt_manager *m, const struct flt_filter_config *cfg, flt_filter **ret)
{
	struct flt_registration reg = { .name = cfg->name, .altitude = cfg->altitude };
	const char *refuse = flt_config_param(cfg, "refuse");

	if (refuse)
		return -atoi(refuse);
	return flt_register_filter(m, &reg, ret);
}
