/* SPDX-License-Identifier: MIT */
/*
 * privileges.c — see privileges.h. libcap-ng does the capability sets;
 * securebits, ambient and no_new_privs are single prctl() calls.
 *
 * Why this runs before start-up rather than after it: a reload, `fltmc
 * load` and `fltmc attach` repeat every privileged step of start-up
 * (fanotify_init when the first filter arrives, filesystem marks, socket
 * files, the control socket's group), so start-up needs nothing that run
 * time does not. And capabilities belong to threads: dropped after the
 * engine and the ports had started their threads, the drop would leave
 * exactly the threads that run filter code with everything.
 */
#include "daemon/privileges.h"

#include <cap-ng.h>
#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "daemon/dlog.h"

static const struct kept_cap {
	unsigned cap;
	const char *name;
	const char *without; /* what stops working if it is missing */
} kept[] = {
	{ CAP_SYS_ADMIN, "CAP_SYS_ADMIN",
	  "fanotify groups and filesystem marks fail: nothing can be filtered" },
	{ CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH",
	  "paths of notification events (open_by_handle_at) and attach points in "
	  "directories root may not search fail" },
	{ CAP_SYS_PTRACE, "CAP_SYS_PTRACE",
	  "the executable of other users' and of privileged processes is hidden "
	  "from filters and fltmc" },
	{ CAP_CHOWN, "CAP_CHOWN", "control_group cannot be given the control socket" },
};

#define N_KEPT (sizeof(kept) / sizeof(kept[0]))

uint64_t
privileges_kept_mask(void)
{
	uint64_t m = 0;

	for (size_t i = 0; i < N_KEPT; i++)
		m |= 1ULL << kept[i].cap;
	return m;
}

/* Threads of this process, from /proc/self/status; 0 if unknown. */
static int
thread_count(void)
{
	char line[128];
	int n = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

static void
append(char *buf, size_t size, const char *word)
{
	size_t n = strlen(buf);

	snprintf(buf + n, size - n, "%s%s", n ? ", " : "", word);
}

int
privileges_drop(void)
{
	char have_list[256] = "", extra[1024] = "";
	bool have[N_KEPT], setpcap;
	int r, threads = thread_count();

	if (threads > 1) {
		dlog(FLT_LOG_ERROR,
		     "capabilities: %d threads already run; refusing to "
		     "drop in one of them only",
		     threads);
		return -EBUSY;
	}
	if (capng_get_caps_process() < 0) {
		r = errno ? -errno : -EIO;
		dlog(FLT_LOG_ERROR, "capabilities: cannot read our own: %s",
		     strerror(-r));
		return r;
	}
	setpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP) == 1;
	for (size_t i = 0; i < N_KEPT; i++)
		have[i] = capng_have_capability(CAPNG_PERMITTED, kept[i].cap) == 1;

	/* The wanted state: only the kept capabilities we have, nothing
	 * inheritable, and the kept set as the bounding set. */
	capng_clear(CAPNG_SELECT_BOTH);
	for (size_t i = 0; i < N_KEPT; i++) {
		capng_update(CAPNG_ADD, CAPNG_BOUNDING_SET, kept[i].cap);
		if (have[i])
			capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED,
				     kept[i].cap);
	}
	/* The bounding set and securebits need CAP_SETPCAP, which the next
	 * step gives up: they go first. */
	if (setpcap) {
		if (capng_apply(CAPNG_SELECT_BOUNDS) < 0) {
			r = errno ? -errno : -EPERM;
			dlog(FLT_LOG_ERROR,
			     "capabilities: cannot reduce the bounding set: %s",
			     strerror(-r));
			return r;
		}
		/* uid 0 gains nothing by executing a program. */
		if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0,
			  0) < 0) {
			r = -errno;
			dlog(FLT_LOG_ERROR, "capabilities: cannot set SECBIT_NOROOT: %s",
			     strerror(-r));
			return r;
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
	    errno != EINVAL) { /* EINVAL: a kernel without ambient sets */
		r = -errno;
		dlog(FLT_LOG_ERROR, "capabilities: cannot clear the ambient set: %s",
		     strerror(-r));
		return r;
	}
	if (capng_apply(CAPNG_SELECT_CAPS) < 0) {
		r = errno ? -errno : -EPERM;
		dlog(FLT_LOG_ERROR, "capabilities: cannot drop: %s", strerror(-r));
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		r = -errno;
		dlog(FLT_LOG_ERROR, "capabilities: cannot set no_new_privs: %s",
		     strerror(-r));
		return r;
	}

	/* Read back what the kernel now says, rather than what we asked. */
	if (capng_get_caps_process() < 0) {
		r = errno ? -errno : -EIO;
		dlog(FLT_LOG_ERROR, "capabilities: cannot read our own: %s",
		     strerror(-r));
		return r;
	}
	for (size_t i = 0; i < N_KEPT; i++) {
		if (capng_have_capability(CAPNG_EFFECTIVE, kept[i].cap) == 1)
			append(have_list, sizeof(have_list), kept[i].name);
		else
			dlog(FLT_LOG_WARNING, "capabilities: %s is missing: %s",
			     kept[i].name, kept[i].without);
	}
	for (unsigned c = 0; c < 64; c++) {
		const char *name;

		if (capng_have_capability(CAPNG_BOUNDING_SET, c) != 1 ||
		    (privileges_kept_mask() & (1ULL << c)))
			continue;
		name = capng_capability_to_name(c);
		append(extra, sizeof(extra), name ? name : "?");
	}
	if (*extra)
		dlog(FLT_LOG_WARNING,
		     "capabilities: the bounding set still holds %s (reducing it needs "
		     "CAP_SETPCAP): not held now, but a program fltmgrd executed "
		     "would get them",
		     extra);
	dlog(FLT_LOG_NOTICE,
	     "capabilities: keeping %s; every other capability, the inheritable "
	     "and ambient sets dropped; %s; no_new_privs set",
	     *have_list ? have_list : "none",
	     *extra ? "bounding set not reduced" : "bounding set reduced to the same");
	return 0;
}
