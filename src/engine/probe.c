/* SPDX-License-Identifier: MIT */
/*
 * probe.c — what the running kernel's fanotify can do. Each feature is
 * tried for real (fanotify_init/fanotify_mark on the runtime directory)
 * and the result logged once, with what degrades when it is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/fanotify_compat.h"

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
mark_ok(unsigned init_flags, unsigned mark_flags, uint64_t mask, const char *path)
{
	int fd = fanotify_init(init_flags | FAN_CLOEXEC, O_RDONLY);
	bool ok;

	if (fd < 0)
		return false;
	ok = fanotify_mark(fd, FAN_MARK_ADD | mark_flags, mask, AT_FDCWD, path) == 0;
	close(fd);
	return ok;
}

void
fan_probe(flt_manager *m, struct fan_features *f)
{
	const char *dir = m->runtime_dir;

	*f = (struct fan_features){ 0 };
	f->unlimited_queue = init_ok(FAN_CLASS_CONTENT | FAN_UNLIMITED_QUEUE, O_RDONLY);
	f->pidfd = init_ok(FAN_CLASS_CONTENT | FAN_REPORT_PIDFD, O_RDONLY);
	f->dfid_name_target =
		init_ok(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME_TARGET, O_RDONLY);
	f->rename = f->dfid_name_target && mark_ok(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME,
						   FAN_MARK_FILESYSTEM, FAN_RENAME, dir);
	f->evictable = mark_ok(FAN_CLASS_CONTENT, FAN_MARK_EVICTABLE, FAN_OPEN_PERM, dir);
	f->mark_ignore =
		mark_ok(FAN_CLASS_CONTENT, FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY,
			FAN_OPEN_PERM, dir);
	f->pre_content = init_ok(FAN_CLASS_PRE_CONTENT, O_RDONLY) &&
			 mark_ok(FAN_CLASS_PRE_CONTENT, 0, FAN_PRE_ACCESS, dir);

	log_info(m,
		 "fanotify: unlimited queue %s, pidfd %s, dfid+name+target %s, "
		 "rename %s, evictable marks %s, ignore marks %s, pre-content %s "
		 "(a \"no\" may also mean missing privilege)",
		 f->unlimited_queue ? "yes" : "NO", f->pidfd ? "yes" : "no",
		 f->dfid_name_target ? "yes" : "NO", f->rename ? "yes" : "no",
		 f->evictable ? "yes" : "no", f->mark_ignore ? "yes" : "no",
		 f->pre_content ? "yes (unused)" : "no");
	if (!f->unlimited_queue)
		log_warning(m, "fanotify: no unlimited queue: a full permission queue "
			       "fails open; refusing to filter permission events");
	if (!f->pidfd)
		log_notice(m, "fanotify: no FAN_REPORT_PIDFD (Linux < 5.15 or no "
			      "privilege): process details cannot be verified and are "
			      "not reported (pid only)");
	if (!f->dfid_name_target)
		log_warning(m, "fanotify: no name reporting (Linux < 5.17 or no "
			       "FAN_REPORT_DFID_NAME_TARGET): no create/delete/rename "
			       "notifications");
	else if (!f->rename)
		log_notice(m, "fanotify: no FAN_RENAME (Linux < 5.17): renames are "
			      "not reported");
	if (!f->evictable || !f->mark_ignore)
		log_notice(m,
			   "fanotify: no evictable %s marks (Linux < %s): the kernel "
			   "verdict cache is off",
			   f->evictable ? "ignore" : "", f->evictable ? "6.0" : "5.19");
}
