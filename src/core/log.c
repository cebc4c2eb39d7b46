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
#include "core/core.h"

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
flt_filter_log(flt_filter *filter, int level, const char *fmt, ...)
{
	flt_manager *m = filter ? filter->mgr : NULL;
	char msg[512];
	va_list ap;

	if (m && level > m->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	flt_log(m, level, "filter %s: %s", filter ? filter->name : "?", msg);
}

int64_t
flt_monotonic_ns(void)
{
	return now_ns();
}

/* Lock-free: a thread that wins the compare-and-swap on next_ns logs; the
 * others count themselves in held, which the next winner takes. */
int
flt_log_ratelimit(struct flt_log_limit *limit, int interval_ms, uint64_t *ret_held)
{
	int64_t now = now_ns(), next, iv;
	uint64_t held;

	if (!limit)
		return 0;
	iv = (int64_t)(interval_ms > 0 ? interval_ms : 1000) * 1000000;
	next = __atomic_load_n(&limit->next_ns, __ATOMIC_ACQUIRE);
	if (now < next ||
	    !__atomic_compare_exchange_n(&limit->next_ns, &next, now + iv, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		__atomic_fetch_add(&limit->held, 1, __ATOMIC_RELAXED);
		return 0;
	}
	held = __atomic_exchange_n(&limit->held, 0, __ATOMIC_ACQ_REL);
	if (ret_held)
		*ret_held = held;
	return 1;
}

void
flt_log_limited(flt_manager *m, struct flt_log_limit *limit, int level, const char *fmt,
		...)
{
	uint64_t held;
	char msg[512];
	va_list ap;

	if (m && level > m->log_level)
		return;
	if (!flt_log_ratelimit(limit, 1000, &held))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (held)
		flt_log(m, level, "%s (%llu more like it since the last report)", msg,
			(unsigned long long)held);
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
flt_log_decision_limited(flt_manager *m, struct flt_log_limit *limit, int level,
			 const struct flt_decision *d_in, int fd)
{
	struct flt_decision d = *d_in;
	char path[1024], exe[512], link[64];
	uint64_t held;
	ssize_t n;

	if (m && level > m->log_level)
		return;
	if (!flt_log_ratelimit(limit, 1000, &held))
		return;
	d.suppressed = (unsigned long)held;
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
