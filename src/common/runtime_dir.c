/* SPDX-License-Identifier: MIT */
/* runtime_dir.c — see runtime_dir.h. */
#include "runtime_dir.h"

#include <stdlib.h>

const char *
runtime_dir_resolve(const char *given, const char *configured)
{
	const char *env = getenv("FLTMGR_RUNTIME_DIR");

	if (given)
		return given;
	if (env && *env)
		return env;
	return configured ? configured : RUNTIME_DIR_DEFAULT;
}
