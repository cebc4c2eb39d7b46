/* SPDX-License-Identifier: MIT */
/*
 * probe.c — what the running kernel can do for the engine. Each feature is
 * tried for real (fanotify_init/fanotify_mark on the runtime directory, a
 * pidfd of our own) and the result logged once, with what degrades when
 * it is missing. Pre-content events depend on the filesystem too: they
 * are probed on each filesystem as it is marked (fan_probe_filesystem).
 *
 * FLTMGR_KERNEL_FEATURES (kernel.h; for testing only) turns features off
 * as an older kernel lacks them. It is applied here, so that every part
 * of the engine sees the same feature set, and logged as an override.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/fanotify_compat.h"
#include "engine/kernel.h"
#include "engine/pidfd_compat.h"

/* Each probed feature, its name in FLTMGR_KERNEL_FEATURES and the first
 * Linux release that has it (0: every supported one). */
static const struct feature {
	const char *name;
	size_t off;
	unsigned since;
} features[] = {
	{ "unlimited_queue", offsetof(struct fan_features, unlimited_queue), 0 },
	{ "pidfd", offsetof(struct fan_features, pidfd), FLT_KV(5, 15) },
	{ "names", offsetof(struct fan_features, dfid_name_target), FLT_KV(5, 17) },
	{ "rename", offsetof(struct fan_features, rename), FLT_KV(5, 17) },
	{ "evictable", offsetof(struct fan_features, evictable), FLT_KV(5, 19) },
	{ "ignore", offsetof(struct fan_features, mark_ignore), FLT_KV(6, 0) },
	{ "pidfs", offsetof(struct fan_features, pidfs), FLT_KV(6, 9) },
	{ "pidfd_get_info", offsetof(struct fan_features, pidfd_get_info),
	  FLT_KV(6, 13) },
	{ "pre_content", offsetof(struct fan_features, pre_content), FLT_KV(6, 14) },
};
#define N_FEATURES (sizeof(features) / sizeof(features[0]))

static bool *
feature_flag(struct fan_features *f, size_t i)
{
	return (bool *)((char *)f + features[i].off);
}

static bool
init_ok(unsigned flags, unsigned ev_flags)
{
	int fd = fanotify_init(flags | FAN_CLOEXEC, ev_flags);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static bool
mark_ok(unsigned init_flags, unsigned mark_flags, uint64_t mask, int dirfd,
	const char *path)
{
	int fd = fanotify_init(init_flags | FAN_CLOEXEC, O_RDONLY);
	bool ok;

	if (fd < 0)
		return false;
	ok = fanotify_mark(fd, FAN_MARK_ADD | mark_flags, mask, dirfd, path) == 0;
	close(fd);
	return ok;
}

/* pidfs (6.9) and PIDFD_GET_INFO (6.13), on a pidfd of our own. */
static void
probe_pidfd(struct fan_features *f)
{
	struct pidfd_info_v0 info = { .mask = FLT_PIDFD_INFO_CREDS };
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	struct statfs sfs;

	if (fd < 0)
		return;
	f->pidfs = fstatfs(fd, &sfs) == 0 && sfs.f_type == FLT_PIDFS_MAGIC;
	f->pidfd_get_info = ioctl(fd, FLT_PIDFD_GET_INFO, &info) == 0;
	close(fd);
}

/* The features a "-NAME" turns off. FAN_RENAME and name reporting come
 * together (5.17), and neither goes alone: the directory-path cache relies
 * on seeing every directory rename (resolve.c). */
static unsigned
named_features(const char *name, size_t len)
{
	const unsigned names_bits = 1u << 2 | 1u << 3; /* "names", "rename" */
	unsigned bits = 0;

	for (size_t i = 0; i < N_FEATURES; i++)
		if (len == strlen(features[i].name) &&
		    !strncmp(name, features[i].name, len))
			bits |= 1u << i;
	return bits & names_bits ? bits | names_bits : bits;
}

/*
 * FLTMGR_KERNEL_FEATURES: turns off what the named kernel lacks, and each
 * "-NAME". Returns false for a value it does not understand. *ret_off
 * gets a bit per feature the override turned off that the kernel had.
 */
static bool
apply_override(const char *spec, struct fan_features *f, unsigned *ret_off)
{
	const char *s = spec;

	*ret_off = 0;
	while (*s) {
		size_t len = strcspn(s, ",");
		unsigned v = flt_kernel_parse_version(s), off = 0;

		if (v) {
			for (size_t i = 0; i < N_FEATURES; i++)
				if (features[i].since > v)
					off |= 1u << i;
		} else if (s[0] == '-' && len > 1) {
			off = named_features(s + 1, len - 1);
			if (!off)
				return false;
		} else {
			return false;
		}
		for (size_t i = 0; i < N_FEATURES; i++) {
			if ((off & (1u << i)) && *feature_flag(f, i)) {
				*feature_flag(f, i) = false;
				*ret_off |= 1u << i;
			}
		}
		s += len;
		if (*s == ',')
			s++;
	}
	return true;
}

void
fan_probe(flt_manager *m, struct fan_features *f)
{
	const char *dir = m->runtime_dir;
	const char *spec = getenv(FLT_KERNEL_FEATURES_ENV);
	unsigned kv = flt_kernel_running(), sim = 0, turned_off = 0;

	*f = (struct fan_features){ 0 };
	f->unlimited_queue = init_ok(FAN_CLASS_CONTENT | FAN_UNLIMITED_QUEUE, O_RDONLY);
	f->pidfd = init_ok(FAN_CLASS_CONTENT | FAN_REPORT_PIDFD, O_RDONLY);
	f->dfid_name_target =
		init_ok(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME_TARGET, O_RDONLY);
	f->rename = f->dfid_name_target &&
		    mark_ok(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME, FAN_MARK_FILESYSTEM,
			    FAN_RENAME, AT_FDCWD, dir);
	f->evictable = mark_ok(FAN_CLASS_CONTENT, FAN_MARK_EVICTABLE, FAN_OPEN_PERM,
			       AT_FDCWD, dir);
	f->mark_ignore =
		mark_ok(FAN_CLASS_CONTENT, FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY,
			FAN_OPEN_PERM, AT_FDCWD, dir);
	/* The class only: whether a filesystem takes pre-content events is
	 * known when it is marked (fan_probe_filesystem). */
	f->pre_content = init_ok(FAN_CLASS_PRE_CONTENT, O_RDONLY);
	probe_pidfd(f);

	if (spec && *spec) {
		if (!apply_override(spec, f, &turned_off)) {
			log_error(m,
				  "fanotify: %s=\"%s\" is not understood (a list of X.Y "
				  "and -NAME): every feature is off, nothing can be "
				  "filtered",
				  FLT_KERNEL_FEATURES_ENV, spec);
			*f = (struct fan_features){ 0 };
		}
		f->overridden = true;
		sim = flt_kernel_simulated();
	}
	f->kernel = sim && (!kv || sim < kv) ? sim : kv;
	f->simulated = sim && f->kernel == sim;

	log_info(m,
		 "fanotify on Linux %u.%u%s: unlimited queue %s, pidfd %s, "
		 "dfid+name+target %s, rename %s, evictable marks %s, ignore marks "
		 "%s, pidfs %s, PIDFD_GET_INFO %s, pre-content %s "
		 "(a \"no\" may also mean missing privilege)",
		 FLT_KV_MAJOR(f->kernel), FLT_KV_MINOR(f->kernel),
		 f->simulated ? " (simulated)" : "", f->unlimited_queue ? "yes" : "NO",
		 f->pidfd ? "yes" : "no", f->dfid_name_target ? "yes" : "NO",
		 f->rename ? "yes" : "no", f->evictable ? "yes" : "no",
		 f->mark_ignore ? "yes" : "no", f->pidfs ? "yes" : "no",
		 f->pidfd_get_info ? "yes" : "no",
		 f->pre_content ? "per filesystem (unused)" : "no");
	if (f->overridden) {
		char names[256] = "";
		size_t n = 0;

		for (size_t i = 0; i < N_FEATURES; i++)
			if (turned_off & (1u << i))
				n += (size_t)snprintf(names + n, sizeof(names) - n,
						      "%s%s", n ? ", " : "",
						      features[i].name);
		log_warning(m,
			    "fanotify: %s=\"%s\" (for testing only): behaving as "
			    "Linux %u.%u%s; turned off by the override: %s",
			    FLT_KERNEL_FEATURES_ENV, spec, FLT_KV_MAJOR(f->kernel),
			    FLT_KV_MINOR(f->kernel),
			    f->simulated ? "" : " (the running kernel)",
			    n ? names : "nothing this kernel has");
	}
	if (f->kernel && f->kernel < FLT_KERNEL_MIN)
		log_warning(m,
			    "Linux %u.%u is older than %u.%u, the oldest kernel fltmgr "
			    "supports",
			    FLT_KV_MAJOR(f->kernel), FLT_KV_MINOR(f->kernel),
			    FLT_KV_MAJOR(FLT_KERNEL_MIN), FLT_KV_MINOR(FLT_KERNEL_MIN));
	if (!f->unlimited_queue)
		log_warning(m, "fanotify: no unlimited queue: a full permission queue "
			       "fails open; refusing to filter permission events (no "
			       "pre callbacks)");
	if (!f->pidfd)
		log_notice(m, "fanotify: no FAN_REPORT_PIDFD (Linux < 5.15 or no "
			      "privilege): process details cannot be verified and are "
			      "not reported (pid only)");
	if (!f->dfid_name_target)
		log_warning(m, "fanotify: no name reporting (Linux < 5.17 or no "
			       "FAN_REPORT_DFID_NAME_TARGET): no notifications at all "
			       "(no post-only callbacks: create, delete, rename, write, "
			       "close, attrib)");
	else if (!f->rename)
		log_notice(m, "fanotify: no FAN_RENAME (Linux < 5.17): renames are "
			      "not reported");
	if (!f->evictable || !f->mark_ignore)
		log_notice(m,
			   "fanotify: no %s (Linux < %s): the kernel verdict cache is "
			   "off (every access goes to user space)",
			   !f->evictable ? "evictable marks" : "FAN_MARK_IGNORE",
			   !f->evictable ? "5.19" : "6.0");
	if (!f->pidfs)
		log_notice(m, "no pidfs (Linux < 6.9): %s",
			   f->pidfd ? "the process cache is off (process details are "
				      "read from /proc for every event), and a process "
				      "that has exited is reported unverified"
				    : "unused without FAN_REPORT_PIDFD");
	if (!f->pidfd_get_info)
		log_notice(m, "no PIDFD_GET_INFO (Linux < 6.13): %s",
			   !f->pidfd  ? "unused without FAN_REPORT_PIDFD"
			   : f->pidfs ? "credentials are read from /proc/PID/status and "
					"may be up to 50 ms old (process cache)"
				      : "credentials are read from /proc/PID/status");
}

void
fan_probe_filesystem(struct engine *e, int dir_fd, const char *path)
{
	bool ok = e->feat.pre_content &&
		  mark_ok(FAN_CLASS_PRE_CONTENT, 0, FAN_PRE_ACCESS, dir_fd, NULL);

	log_info(e->mgr, "fanotify: pre-content events on the filesystem of %s: %s", path,
		 ok                    ? "yes (unused)"
		 : e->feat.pre_content ? "no (Linux < 6.14, or not this filesystem)"
				       : "no");
}
