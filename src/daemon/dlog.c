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
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

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

/* Is stderr the journal? JOURNAL_STREAM is "DEV:INO" of the stream
 * systemd connected; a child whose stderr was redirected keeps the
 * variable, so the descriptor is compared with it (sd_journal_stream_fd(3)). */
static bool
stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return env && sscanf(env, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void
dlog_decision(void *userdata, int level, const struct flt_decision *d,
	      const char *message)
{
	char verdict[16];

	(void)userdata;
	if (level > atomic_load(&log_level))
		return;
	if (!atomic_load(&to_syslog) && stderr_is_journal()) {
		if (d->verdict == 0)
			snprintf(verdict, sizeof(verdict), "allow");
		else
			snprintf(verdict, sizeof(verdict), "deny");
		if (sd_journal_send("MESSAGE=%s", message, "PRIORITY=%d", level,
				    "SYSLOG_IDENTIFIER=fltmgrd",
				    "MESSAGE_ID=" DLOG_DECISION_MESSAGE_ID, "FILTER=%s",
				    d->filter ? d->filter : "", "OPERATION=%s",
				    flt_operation_name(d->op), "PATH=%s",
				    d->path ? d->path : "", "PID=%d", (int)d->pid,
				    "EXE=%s", d->exe ? d->exe : "", "VERDICT=%s", verdict,
				    "REASON=%s", d->reason ? d->reason : "", "DETAIL=%s",
				    d->detail ? d->detail : "", "SUPPRESSED=%lu",
				    d->suppressed, NULL) >= 0)
			return;
	}
	dlog_sink(NULL, level, message);
}
