/* SPDX-License-Identifier: MIT */
/*
 * kernel.h — which Linux fltmgr runs on: the running release, the oldest
 * one fltmgr supports, and the testing override FLTMGR_KERNEL_FEATURES
 * (docs/engine.md section 1.2), which makes the engine behave as an older
 * kernel would. Header-only: fltmgrd checks the minimum with it before it
 * creates a manager, and the feature probe (probe.c) reads the override.
 *
 * FLTMGR_KERNEL_FEATURES, for testing only: a comma-separated list of
 *   X.Y      behave as Linux X.Y: every probed feature newer than X.Y is
 *            off, and X.Y is the version checked against the minimum
 *   -NAME    turn off that feature (names: flt_kernel_feature_names)
 * e.g. "6.1", "5.15,-unlimited_queue", "-pidfs". Features can only be
 * turned off: what the kernel lacks stays off.
 */
#ifndef FLTMGR_KERNEL_H
#define FLTMGR_KERNEL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#define FLT_KV(major, minor) ((unsigned)(major)*1000u + (unsigned)(minor))
#define FLT_KV_MAJOR(v)      ((v) / 1000u)
#define FLT_KV_MINOR(v)      ((v) % 1000u)

/* The oldest kernel fltmgrd starts on: 5.10, the oldest longterm kernel
 * still maintained, and the oldest feature set the tests simulate. What
 * the engine cannot do without: FAN_MARK_FILESYSTEM (4.20),
 * FAN_OPEN_EXEC_PERM (5.0), pidfd_open (5.3, exclusions and the ports'
 * peer check) and statx's STATX_MNT_ID (5.8, the fail-closed scope
 * check). */
#define FLT_KERNEL_MIN FLT_KV(5, 10)

#define FLT_KERNEL_FEATURES_ENV "FLTMGR_KERNEL_FEATURES"

/* "6.1.0-28-amd64" -> FLT_KV(6, 1); 0 if s does not start with X.Y. */
static inline unsigned
flt_kernel_parse_version(const char *s)
{
	char *end;
	unsigned long major, minor;

	if (!s || *s < '0' || *s > '9')
		return 0;
	major = strtoul(s, &end, 10);
	if (*end != '.' || end[1] < '0' || end[1] > '9')
		return 0;
	minor = strtoul(end + 1, &end, 10);
	if (major == 0 || major > 99 || minor > 999)
		return 0;
	return FLT_KV(major, minor);
}

static inline unsigned
flt_kernel_running(void)
{
	struct utsname u;

	return uname(&u) == 0 ? flt_kernel_parse_version(u.release) : 0;
}

/* The version named in FLT_KERNEL_FEATURES_ENV, 0 if none. */
static inline unsigned
flt_kernel_simulated(void)
{
	const char *s = getenv(FLT_KERNEL_FEATURES_ENV);
	unsigned v = 0;

	while (s && *s) {
		unsigned t = flt_kernel_parse_version(s);

		if (t && (!v || t < v))
			v = t;
		s = strchr(s, ',');
		if (s)
			s++;
	}
	return v;
}

/* The kernel the engine behaves as: the running one, or an older one
 * named by the override (0 if unknown). */
static inline unsigned
flt_kernel_effective(void)
{
	unsigned run = flt_kernel_running(), sim = flt_kernel_simulated();

	return sim && (!run || sim < run) ? sim : run;
}

/* Whether fltmgrd may start; if not, prints why to f (one line). */
static inline bool
flt_kernel_supported(FILE *f)
{
	unsigned v = flt_kernel_effective(), sim = flt_kernel_simulated();

	if (!v || v >= FLT_KERNEL_MIN)
		return true;
	fprintf(f,
		"fltmgrd: Linux %u.%u%s is older than %u.%u, the oldest kernel "
		"fltmgr supports (it needs FAN_MARK_FILESYSTEM, FAN_OPEN_EXEC_PERM, "
		"pidfd_open and STATX_MNT_ID); see \"Kernel support\" in the README\n",
		FLT_KV_MAJOR(v), FLT_KV_MINOR(v),
		sim && sim == v ? " (simulated by " FLT_KERNEL_FEATURES_ENV ")" : "",
		FLT_KV_MAJOR(FLT_KERNEL_MIN), FLT_KV_MINOR(FLT_KERNEL_MIN));
	return false;
}

#endif
