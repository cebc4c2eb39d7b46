/* SPDX-License-Identifier: MIT */
/*
 * dlog.c — see dlog.h. A record is formatted into one buffer and written
 * with one write(2), so lines from different threads never interleave.
 */
#include "daemon/dlog.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

static atomic_int log_level = FLT_LOG_NOTICE;
static atomic_bool to_syslog;

static const char *const level_names[] = { "error", "warning", "notice", "info",
					   "debug" };

void
dlog_set_level(int level)
{
	atomic_store(&log_level, level);
}

int
dlog_level(void)
{
	return atomic_load(&log_level);
}

void
dlog_use_syslog(void)
{
	openlog("fltmgrd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	atomic_store(&to_syslog, true);
}

int
dlog_parse_level(const char *name)
{
	for (int i = 0; i < 5; i++)
		if (!strcmp(name, level_names[i]))
			return FLT_LOG_ERROR + i;
	return -1;
}

void
dlog_sink(void *userdata, int level, const char *message)
{
	char line[1024];
	int n;

	(void)userdata;
	if (level > atomic_load(&log_level))
		return;
	if (level < FLT_LOG_ERROR)
		level = FLT_LOG_ERROR;
	if (level > FLT_LOG_DEBUG)
		level = FLT_LOG_DEBUG;
	if (atomic_load(&to_syslog)) {
		syslog(level, "%s", message);
		return;
	}
	if (getenv("JOURNAL_STREAM"))
		n = snprintf(line, sizeof(line), "<%d>%s\n", level, message);
	else
		n = snprintf(line, sizeof(line), "fltmgrd[%d]: %s: %s\n", (int)getpid(),
			     level_names[level - FLT_LOG_ERROR], message);
	if (n > (int)sizeof(line) - 1) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to say it */
	}
}

void
dlog(int level, const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	if (level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dlog_sink(NULL, level, msg);
}
