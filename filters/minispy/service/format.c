/* SPDX-License-Identifier: MIT */
/*
 * format.c — one decoded minispy record as one line: human-readable
 * columns, or a JSON object (JSON Lines). Both formats keep one event on
 * one line whatever its file names contain.
 *
 * Text: time (local, microseconds), process name, pid, operation, path
 * and "→ new path" for renames; a path the engine could not resolve
 * (MINISPY_F_PATH_UNKNOWN) is shown as "<unknown path>", followed by the
 * file's "(dev D ino I)" when its inode is known. Bytes a terminal would
 * act on (control characters), backslashes and bytes that are not UTF-8
 * are written as C-style escapes (\n, \t, \\, \xNN), so the line is
 * unambiguous.
 *
 * JSON: encoded by json_writer.c straight into one reused buffer, then
 * written with one fwrite (no object tree, no allocation per record; see
 * bench/json_bench.c for what that saves against json-c). Strings are
 * escaped as RFC 8259 requires; a string that is not well-formed UTF-8 is
 * written with U+FFFD for each ill-formed sequence, plus a member
 * NAME_bytes holding its exact bytes in base64. Consumers that need the
 * exact name use NAME_bytes when present, NAME otherwise. An unknown path
 * is null, with "path_unknown":true. The members and their order are
 * those of the json-c encoder this replaced (tests/format_jsonc.c), byte
 * for byte.
 */
#include <string.h>
#include <time.h>

#include "spy.h"

#define NS_PER_S 1000000000LL

/* Seconds and nanoseconds of time_ns, floored: ns in [0, 1e9) also
 * before 1970. */
static void
split_time(int64_t time_ns, int64_t *ret_s, int64_t *ret_ns)
{
	int64_t s = time_ns / NS_PER_S, ns = time_ns % NS_PER_S;

	if (ns < 0) {
		s--;
		ns += NS_PER_S;
	}
	*ret_s = s;
	*ret_ns = ns;
}

/* The date of day z (days since 1970-01-01, proleptic Gregorian), by
 * counting in 400-year eras of 146097 days that begin on March 1, so that
 * the leap day is the last day of a year; pure integer arithmetic. */
static void
civil_from_days(int64_t z, int64_t *ret_y, unsigned *ret_m, unsigned *ret_d)
{
	int64_t era, y;
	unsigned doe, yoe, doy, mp, m;

	z += 719468; /* days from 0000-03-01 to 1970-01-01 */
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
	mp = (5 * doy + 2) / 153; /* [0, 11], March = 0 */
	m = mp < 10 ? mp + 3 : mp - 9;
	y = (int64_t)yoe + era * 400 + (m <= 2);
	*ret_y = y;
	*ret_m = m;
	*ret_d = doy - (153 * mp + 2) / 5 + 1;
}

static char *
put_digits(char *p, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

/* Computed rather than with gmtime_r + strftime: this runs once per JSON
 * record, and the arithmetic is several times cheaper (bench/json_bench.c);
 * tests/test_minispy_format.c checks it against strftime. */
size_t
spy_format_time_rfc3339(int64_t time_ns, char buf[SPY_RFC3339_SIZE])
{
	int64_t s, ns, days, sod, y;
	unsigned m, d;
	char *p = buf;

	split_time(time_ns, &s, &ns);
	days = s / 86400;
	sod = s % 86400;
	if (sod < 0) {
		days--;
		sod += 86400;
	}
	civil_from_days(days, &y, &m, &d);
	/* int64_t ns spans the years 1677 to 2262: always 4 digits */
	p = put_digits(p, (uint64_t)y, 4);
	*p++ = '-';
	p = put_digits(p, m, 2);
	*p++ = '-';
	p = put_digits(p, d, 2);
	*p++ = 'T';
	p = put_digits(p, (uint64_t)(sod / 3600), 2);
	*p++ = ':';
	p = put_digits(p, (uint64_t)(sod / 60 % 60), 2);
	*p++ = ':';
	p = put_digits(p, (uint64_t)(sod % 60), 2);
	*p++ = '.';
	p = put_digits(p, (uint64_t)ns, 9);
	*p++ = 'Z';
	*p = '\0';
	return (size_t)(p - buf);
}

void
spy_format_time_local(int64_t time_ns, char *buf, size_t size)
{
	struct tm tm;
	int64_t s64, ns;
	time_t s;
	size_t n;

	split_time(time_ns, &s64, &ns);
	s = (time_t)s64;
	if (!localtime_r(&s, &tm) || (n = strftime(buf, size, "%H:%M:%S", &tm)) == 0) {
		snprintf(buf, size, "??:??:??");
		return;
	}
	snprintf(buf + n, size - n, ".%06ld", (long)(ns / 1000));
}

const char *
spy_loss_cause_name(uint32_t cause)
{
	switch (cause) {
	case MINISPY_LOSS_QUEUE:
		return "queue";
	case MINISPY_LOSS_BACKLOG:
		return "backlog";
	case MINISPY_LOSS_KERNEL:
		return "kernel";
	case MINISPY_LOSS_DEPARTED:
		return "departed";
	case MINISPY_LOSS_ENGINE:
		return "engine";
	}
	return "unknown";
}

/* The names of the MINISPY_NOTICE_* bits in notices, in names[]; returns
 * how many. */
static size_t
notice_names(uint32_t notices, const char *names[2])
{
	size_t n = 0;

	if (notices & MINISPY_NOTICE_KERNEL)
		names[n++] = "kernel";
	if (notices & MINISPY_NOTICE_ENGINE)
		names[n++] = "engine";
	return n;
}

/* Whether an event's path (or a rename's new path) is one the engine
 * could not resolve: the decoder leaves it empty (NULL for new_path). */
static bool
path_unknown(const struct minispy_event *e, const char *s)
{
	return (e->flags & MINISPY_F_PATH_UNKNOWN) && (!s || !*s);
}

/* ---- text ---- */

/* s with control characters, '\\' and non-UTF-8 bytes escaped. */
static void
put_escaped(FILE *f, const char *s)
{
	size_t len = strlen(s), i = 0;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		bool ok;
		size_t k;

		if (c == '\\') {
			fputs("\\\\", f);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			if (c == '\n')
				fputs("\\n", f);
			else if (c == '\t')
				fputs("\\t", f);
			else
				fprintf(f, "\\x%02x", c);
			i++;
			continue;
		}
		k = spy_utf8_scan(s + i, len - i, &ok);
		if (ok) {
			fwrite(s + i, 1, k, f);
		} else {
			for (size_t j = 0; j < k; j++)
				fprintf(f, "\\x%02x", (unsigned char)s[i + j]);
		}
		i += k;
	}
}

#define UNKNOWN_PATH_TEXT "<unknown path>"

static void
text_event(FILE *f, const struct minispy_event *e)
{
	char t[64];

	spy_format_time_local(e->time_ns, t, sizeof(t));
	fprintf(f, "%s ", t);
	/* comm is at most 15 bytes (TASK_COMM_LEN); pad to that. */
	if (e->comm) {
		put_escaped(f, e->comm);
		fprintf(f, "%*s", strlen(e->comm) < 15 ? (int)(15 - strlen(e->comm)) : 0,
			"");
	} else {
		fprintf(f, "%-15s", "?");
	}
	fprintf(f, " %7d %-11s ", e->pid, minispy_op_name(e->op));
	/* A real path starts with '/': the placeholder cannot be one. */
	if (path_unknown(e, e->path))
		fputs(UNKNOWN_PATH_TEXT, f);
	else
		put_escaped(f, e->path);
	if (e->op == MINISPY_OP_RENAME && path_unknown(e, e->new_path)) {
		fputs(" \xe2\x86\x92 " UNKNOWN_PATH_TEXT, f);
	} else if (e->new_path) {
		fputs(" \xe2\x86\x92 ", f); /* → */
		put_escaped(f, e->new_path);
	}
	if (path_unknown(e, e->path) && e->ino)
		fprintf(f, " (dev %llu ino %llu)", (unsigned long long)e->dev,
			(unsigned long long)e->ino);
	fputc('\n', f);
}

static const char *
loss_reason(uint32_t cause)
{
	switch (cause) {
	case MINISPY_LOSS_QUEUE:
		return "this service's queue was full";
	case MINISPY_LOSS_BACKLOG:
		return "the backlog was full while no service was connected";
	case MINISPY_LOSS_DEPARTED:
		return "only a service that disconnected had them";
	case MINISPY_LOSS_ENGINE:
		return "the engine read them but could not deliver them";
	}
	return "unknown cause";
}

static void
text_loss(FILE *f, const struct minispy_loss *l)
{
	char t[64];

	const char *names[2];
	size_t n;

	spy_format_time_local(l->time_ns, t, sizeof(t));
	if (l->cause == MINISPY_LOSS_KERNEL) {
		fprintf(f,
			"%s -- LOST: the kernel's event queue overflowed; "
			"an unknown number of events is missing here\n",
			t);
		return;
	}
	if (l->cause == MINISPY_LOSS_ENGINE) {
		if (l->count)
			fprintf(f, "%s -- LOST %llu events: %s\n", t,
				(unsigned long long)l->count, loss_reason(l->cause));
		else
			fprintf(f, "%s -- LOST: an unknown number of events: %s\n", t,
				loss_reason(l->cause));
		return;
	}
	fprintf(f, "%s -- LOST %llu records (seq %llu-%llu): %s", t,
		(unsigned long long)l->count, (unsigned long long)l->first_seq,
		(unsigned long long)l->last_seq, loss_reason(l->cause));
	n = notice_names(l->notices, names);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s",
			i ? " and " : "; among them a loss notice: ", names[i]);
	fputc('\n', f);
}

/* ---- JSON ---- */

/* key: s as a JSON string, null if s is NULL; and bytes_key (base64 of
 * the exact bytes) if s is not well-formed UTF-8. */
static void
put_name(struct json_writer *w, const char *key, const char *bytes_key, const char *s)
{
	size_t len;

	if (!s) {
		jw_null(w, key);
		return;
	}
	len = strlen(s);
	if (!jw_string(w, key, s, len))
		jw_base64(w, bytes_key, s, len);
}

static void
put_time(struct json_writer *w, int64_t time_ns)
{
	char t[SPY_RFC3339_SIZE];

	jw_string(w, "time", t, spy_format_time_rfc3339(time_ns, t));
}

static void
put_literal(struct json_writer *w, const char *key, const char *s)
{
	jw_string(w, key, s, strlen(s));
}

static void
json_event(struct json_writer *w, const struct minispy_event *e)
{
	bool verified = e->flags & MINISPY_F_VERIFIED;

	jw_u64(w, "seq", e->seq);
	put_time(w, e->time_ns);
	put_literal(w, "op", minispy_op_name(e->op));
	if (path_unknown(e, e->path))
		jw_null(w, "path");
	else
		put_name(w, "path", "path_bytes", e->path);
	if (e->op == MINISPY_OP_RENAME && path_unknown(e, e->new_path))
		jw_null(w, "new_path");
	else if (e->new_path)
		put_name(w, "new_path", "new_path_bytes", e->new_path);
	if (e->flags & MINISPY_F_PATH_UNKNOWN)
		jw_bool(w, "path_unknown", true);
	jw_i64(w, "pid", e->pid);
	if (verified && e->uid != MINISPY_UID_UNKNOWN)
		jw_u64(w, "uid", e->uid);
	else
		jw_null(w, "uid");
	put_name(w, "exe", "exe_bytes", e->exe);
	put_name(w, "comm", "comm_bytes", e->comm);
	jw_bool(w, "dir", e->flags & MINISPY_F_DIR);
	jw_u64(w, "dev", e->dev);
	jw_u64(w, "ino", e->ino);
	jw_u64(w, "event_seq", e->event_seq);
	if (e->flags & MINISPY_F_TRUNCATED)
		jw_bool(w, "truncated", true);
}

static void
json_loss(struct json_writer *w, const struct minispy_loss *l)
{
	const char *names[2];
	size_t n = notice_names(l->notices, names);

	put_literal(w, "op", "lost");
	jw_u64(w, "count", l->count);
	jw_u64(w, "first_seq", l->first_seq);
	jw_u64(w, "last_seq", l->last_seq);
	put_literal(w, "cause", spy_loss_cause_name(l->cause));
	if (minispy_loss_is_notice(l->cause))
		jw_u64(w, "seq", l->seq);
	if (n)
		jw_names(w, "notices", names, n);
	put_time(w, l->time_ns);
}

int
spy_format_json(struct json_writer *w, const struct minispy_record *r)
{
	jw_begin(w);
	if (r->type == MINISPY_REC_EVENT)
		json_event(w, &r->event);
	else
		json_loss(w, &r->loss);
	return jw_end(w);
}

static char spy_host[256] = "";

void
spy_set_host(const char *host)
{
	snprintf(spy_host, sizeof(spy_host), "%s", host ? host : "");
}

/* The line with its envelope: "schema" and "host" first, then the
 * record's members, then truncated_fields when some were cut. */
static int
envelope_line(struct json_writer *w, const struct minispy_record *r,
	      const char *const *cut, size_t n_cut)
{
	jw_begin(w);
	jw_u64(w, "schema", SPY_JSON_SCHEMA);
	jw_string(w, "host", spy_host, strlen(spy_host));
	if (r->type == MINISPY_REC_EVENT)
		json_event(w, &r->event);
	else
		json_loss(w, &r->loss);
	if (n_cut)
		jw_names(w, "truncated_fields", cut, n_cut);
	return jw_end(w);
}

/* Where a string may be cut: not inside a well-formed UTF-8 sequence
 * (at most 3 bytes back). */
static size_t
cut_point(const char *s, size_t len)
{
	for (int back = 0; back < 3 && len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80;
	     back++)
		len--;
	return len;
}

int
spy_format_json_line(struct json_writer *w, const struct minispy_record *r)
{
	static const char *const names[] = { "path", "new_path", "exe" };
	char buf[3][MINISPY_STRING_MAX + 1];
	size_t len[3] = { 0 }, n_cut = 0;
	const char *cut[3];
	bool was_cut[3] = { false };
	struct minispy_record fit;
	const char **field[3];
	int err = envelope_line(w, r, NULL, 0);

	if (err < 0 || w->len <= SPY_JSON_LINE_MAX || r->type != MINISPY_REC_EVENT)
		return err;
	/* Too long (names full of control characters or bytes that are not
	 * UTF-8, each written as up to six bytes, twice): cut the longest
	 * of path, new_path and exe until the line fits, each at a character
	 * boundary, and say which were cut. Never dropped, never split. */
	fit = *r;
	field[0] = &fit.event.path;
	field[1] = &fit.event.new_path;
	field[2] = &fit.event.exe;
	for (int i = 0; i < 3; i++) {
		if (!*field[i])
			continue;
		len[i] = strnlen(*field[i], MINISPY_STRING_MAX);
		memcpy(buf[i], *field[i], len[i]);
		buf[i][len[i]] = '\0';
		*field[i] = buf[i];
	}
	fit.event.flags |= MINISPY_F_TRUNCATED;
	while (w->len > SPY_JSON_LINE_MAX) {
		size_t excess = w->len - SPY_JSON_LINE_MAX, step;
		int longest = -1;

		for (int i = 0; i < 3; i++)
			if (len[i] && (longest < 0 || len[i] > len[longest]))
				longest = i;
		if (longest < 0)
			break; /* nothing left to cut (cannot happen: the rest is small) */
		/* a raw byte is written as 1 to about 7.4 bytes */
		step = excess / 8 > 16 ? excess / 8 : 16;
		if (step > len[longest] / 2) /* share the cuts among the fields */
			step = len[longest] / 2 > 16 ? len[longest] / 2 : 16;
		len[longest] = len[longest] > step
				       ? cut_point(buf[longest], len[longest] - step)
				       : 0;
		buf[longest][len[longest]] = '\0';
		was_cut[longest] = true;
		n_cut = 0;
		for (int i = 0; i < 3; i++)
			if (was_cut[i])
				cut[n_cut++] = names[i];
		err = envelope_line(w, &fit, cut, n_cut);
		if (err < 0)
			return err;
	}
	return 0;
}

int
spy_format_record(FILE *f, struct json_writer *w, const struct minispy_record *r,
		  bool json)
{
	if (json) {
		int err = spy_format_json_line(w, r);

		if (err < 0)
			return err;
		fwrite(w->buf, 1, w->len, f); /* errors: spy_output_flush() */
		return 0;
	}
	if (r->type == MINISPY_REC_EVENT)
		text_event(f, &r->event);
	else
		text_loss(f, &r->loss);
	return 0;
}
