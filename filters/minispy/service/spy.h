/* SPDX-License-Identifier: MIT */
/*
 * spy.h — the pieces of the minispy service (filters/minispy/service/)
 * and how they fit: options.c reads the command line into struct
 * spy_options; session.c connects to the filter's port and runs the
 * event loop (signals, reconnects); format.c turns one decoded record
 * into one line of text or JSON, the JSON with json_writer.c; utf8.c
 * checks UTF-8 for both; output.c owns the output stream (stdout or
 * --output FILE, its reopening on SIGHUP, flushing, a broken pipe).
 *
 * Every fallible function returns 0 or a negative errno value.
 */
#ifndef MINISPY_SERVICE_SPY_H
#define MINISPY_SERVICE_SPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json_writer.h"
#include "minispy_record.h"

/* Exit statuses, the same as fltmc's where they mean the same. */
enum spy_exit {
	SPY_EXIT_OK = 0,
	SPY_EXIT_FAIL = 1,       /* lost the daemon with --no-reconnect; output error */
	SPY_EXIT_USAGE = 2,      /* bad command line */
	SPY_EXIT_NO_DAEMON = 3,  /* no such port, or nobody listening */
	SPY_EXIT_PERMISSION = 4, /* refused by the port's file mode or uid list */
};

struct spy_options {
	const char *port;        /* name, or a path containing '/' */
	const char *runtime_dir; /* NULL: $FLTMGR_RUNTIME_DIR or /run/fltmgr */
	const char *output;      /* NULL: stdout */
	uint32_t ops;            /* bit (1 << enum minispy_op) per op shown */
	uint64_t count;          /* stop after this many events; 0: never */
	bool json;
	bool reconnect;
	bool quiet; /* no state-change lines on stderr */
};

/* Fills *o from argv; on a usage error prints it and returns
 * -SPY_EXIT_USAGE; -1 (after printing) for --help/--version, which exit 0. */
int spy_parse_options(int argc, char **argv, struct spy_options *o);

/* The socket path of the port the options name, in buf. */
int spy_port_path(const struct spy_options *o, char *buf, size_t size);

/* ---- output.c ---- */

struct spy_output;

/* Opens o->output for appending (created 0640), or takes stdout. */
int spy_output_open(const char *path, struct spy_output **ret);
/* The stream to write the next line to. */
FILE *spy_output_stream(struct spy_output *out);
/* Flushes; -EPIPE when the reader went away, another -errno on error. */
int spy_output_flush(struct spy_output *out);
/* Reopens the file by name (log rotation). On failure the old stream is
 * kept and the error returned. A no-op for stdout. */
int spy_output_reopen(struct spy_output *out);
void spy_output_close(struct spy_output *out);

/* ---- format.c ---- */

/* Writes one line (with its '\n') for record r to f: text columns, or
 * with json a JSON object encoded in w (reused from call to call). */
int spy_format_record(FILE *f, struct json_writer *w, const struct minispy_record *r,
		      bool json);
/* Encodes r as one JSON line (with its '\n') in w->buf[0..w->len).
 * 0 or -ENOMEM. */
int spy_format_json(struct json_writer *w, const struct minispy_record *r);

/* What the service writes (docs/minispy.md): spy_format_json's members
 * after "schema":SPY_JSON_SCHEMA and "host", in a line of at most
 * SPY_JSON_LINE_MAX bytes (the newline included): longer lines have path,
 * new_path and exe cut, longest first, marked "truncated":true and
 * "truncated_fields":[...]. */
#define SPY_JSON_SCHEMA   1
#define SPY_JSON_LINE_MAX 8192
int spy_format_json_line(struct json_writer *w, const struct minispy_record *r);
/* The host name written in every line (gethostname() at start). */
void spy_set_host(const char *host);
/* The name a loss record's cause is written with ("queue", "backlog",
 * "kernel", "departed", "engine"; "unknown" for any other value). */
const char *spy_loss_cause_name(uint32_t cause);
/* "HH:MM:SS.uuuuuu" in local time. */
void spy_format_time_local(int64_t time_ns, char *buf, size_t size);
/* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (RFC 3339, UTC, nanoseconds) in buf,
 * which has room for SPY_RFC3339_SIZE bytes; returns its length (30, for
 * every int64_t: 1677-09-21 to 2262-04-11). */
#define SPY_RFC3339_SIZE 31
size_t spy_format_time_rfc3339(int64_t time_ns, char buf[SPY_RFC3339_SIZE]);

/* ---- utf8.c ---- */

/* Scans one sequence at s (n >= 1) against RFC 3629 (no overlongs, no
 * surrogates, nothing above U+10FFFF): well-formed, sets *ok and returns
 * its length; else clears *ok and returns the bytes one U+FFFD stands for
 * (the Unicode "maximal subpart" practice). */
size_t spy_utf8_scan(const char *s, size_t n, bool *ok);

/* ---- session.c ---- */

/* Connects, prints records until a stop signal, --count, or a lost
 * connection with --no-reconnect. Returns an enum spy_exit. */
int spy_run(const struct spy_options *o);

#endif /* MINISPY_SERVICE_SPY_H */
