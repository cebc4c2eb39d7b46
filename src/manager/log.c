/* SPDX-License-Identifier: MIT */
/*
 * log.c — one line per record, to the manager's log function or stderr.
 * Formatting happens into a stack buffer; a single write() keeps lines
 * from different threads whole.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "manager/manager.h"
#include "ports/internal.h"

static const char *
level_name(int level)
{
	switch (level) {
	case FLT_LOG_ERROR:
		return "error";
	case FLT_LOG_WARNING:
		return "warning";
	case FLT_LOG_NOTICE:
		return "notice";
	case FLT_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void
flt_log(flt_manager *m, int level, const char *fmt, ...)
{
	char msg[512];
	char line[600];
	va_list ap;
	int n;

	if (m && level > m->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m && m->log_func) {
		m->log_func(m->log_userdata, level, msg);
		return;
	}
	/* Under systemd, a <N> prefix gives journald the priority. */
	if (getenv("JOURNAL_STREAM"))
		n = snprintf(line, sizeof(line), "<%d>%s: %s\n", level, level_name(level),
			     msg);
	else
		n = snprintf(line, sizeof(line), "fltmgr[%d]: %s: %s\n", (int)getpid(),
			     level_name(level), msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

void
flt_manager_log(flt_manager *manager, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (manager && level > manager->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	flt_log(manager, level, "%s", msg);
}

void
flt_log_limited(flt_manager *m, struct log_limit *limit, int level, const char *fmt, ...)
{
	long long now = now_ns(), next = atomic_load(&limit->next_ns);
	unsigned long held;
	char msg[512];
	va_list ap;

	if (m && level > m->log_level)
		return;
	if (now < next ||
	    !atomic_compare_exchange_strong(&limit->next_ns, &next, now + 1000000000LL)) {
		atomic_fetch_add(&limit->held, 1);
		return;
	}
	held = atomic_exchange(&limit->held, 0);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (held)
		flt_log(m, level, "%s (%lu more like it since the last report)", msg,
			held);
	else
		flt_log(m, level, "%s", msg);
}

void
flt_manager_set_decision_log(flt_manager *manager, flt_decision_func func, void *userdata)
{
	if (!manager)
		return;
	manager->decision_func = func;
	manager->decision_userdata = userdata;
}

void
flt_log_decision(flt_manager *m, int level, const struct flt_decision *d)
{
	char more[80] = "", msg[1400];

	if (!d || (m && level > m->log_level))
		return;
	if (d->suppressed)
		snprintf(more, sizeof(more), " (%lu more like it since the last report)",
			 d->suppressed);
	snprintf(msg, sizeof(msg), "%s%s%s%s of %s by pid %d (%s) %s: %s%s%s%s",
		 d->filter ? "filter " : "", d->filter ? d->filter : "",
		 d->filter ? ": " : "", flt_operation_name(d->op),
		 d->path ? d->path : "(unknown path)", (int)d->pid,
		 d->exe ? d->exe : "exe unknown", d->verdict == 0 ? "ALLOWED" : "denied",
		 d->reason ? d->reason : "?", d->detail ? " (" : "",
		 d->detail ? d->detail : "", d->detail ? ")" : "");
	if (m && m->decision_func) {
		char line[1500];

		snprintf(line, sizeof(line), "%s%s", msg, more);
		m->decision_func(m->decision_userdata, level, d, line);
		return;
	}
	flt_log(m, level, "%s%s", msg, more);
}

void
flt_log_decision_limited(flt_manager *m, struct log_limit *limit, int level,
			 const struct flt_decision *d_in, int fd)
{
	long long now = now_ns(), next = atomic_load(&limit->next_ns);
	struct flt_decision d = *d_in;
	char path[1024], exe[512], link[64];
	ssize_t n;

	if (m && level > m->log_level)
		return;
	if (now < next ||
	    !atomic_compare_exchange_strong(&limit->next_ns, &next, now + 1000000000LL)) {
		atomic_fetch_add(&limit->held, 1);
		return;
	}
	d.suppressed = atomic_exchange(&limit->held, 0);
	if (!d.path && fd >= 0) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof(path) - 1);
		if (n > 0) {
			path[n] = '\0';
			d.path = path;
		}
	}
	if (!d.exe && d.pid > 0) {
		snprintf(link, sizeof(link), "/proc/%d/exe", (int)d.pid);
		n = readlink(link, exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = '\0';
			d.exe = exe;
		}
	}
	flt_log_decision(m, level, &d);
}
