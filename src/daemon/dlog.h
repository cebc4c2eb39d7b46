/* SPDX-License-Identifier: MIT */
/*
 * dlog.h — fltmgrd's log: one line per record with its level, to stderr
 * (with journald's <N> priority prefix when stderr is the journal) or to
 * syslog once the daemon has detached. libfltmgr's messages come through
 * the same sink (dlog_sink as the manager's log function).
 */
#ifndef FLTMGR_DLOG_H
#define FLTMGR_DLOG_H

#include <fltmgr/filter.h>

void dlog_set_level(int level);
int dlog_level(void);
/* From now on, log to syslog (after detaching from the terminal). */
void dlog_use_syslog(void);

void dlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dlog_sink(void *userdata, int level, const char *message);

/*
 * The manager's decision log (flt_manager_set_decision_log): when stderr is
 * the journal (JOURNAL_STREAM names it), one journal entry with MESSAGE
 * and the fields FILTER, OPERATION, PATH, PID, EXE, VERDICT, REASON,
 * DETAIL, SUPPRESSED and MESSAGE_ID=DLOG_DECISION_MESSAGE_ID
 * (sd_journal_send); otherwise the message as a dlog_sink line.
 */
#define DLOG_DECISION_MESSAGE_ID "c3b5b1b7e3a54f4f9a1e0f6d2b8c7a61"
void dlog_decision(void *userdata, int level, const struct flt_decision *d,
		   const char *message);

/* "error" .. "debug" -> FLT_LOG_*, or -1. */
int dlog_parse_level(const char *name);

#endif
