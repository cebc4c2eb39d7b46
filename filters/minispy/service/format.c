/* SPDX-License-Identifier: MIT */
/*
 * format.c — one decoded minispy record as one line: human-readable
 * columns, or a JSON object (JSON Lines). Both formats keep one event on
 * one line whatever its file names contain.
 *
 * Text: time (local, microseconds), process name, pid, operation, path
 * and "→ new path" for renames. Bytes a terminal would act on (control
 * characters), backslashes and bytes that are not UTF-8 are written as
 * C-style escapes (\n, \t, \\, \xNN), so the line is unambiguous.
 *
 * JSON: encoded by json_writer.c straight into one reused buffer, then
 * written with one fwrite (no object tree, no allocation per record; see
 * bench/json_bench.c for what that saves against json-c). Strings are
 * escaped as RFC 8259 requires; a string that is not well-formed UTF-8 is
 * written with U+FFFD for each ill-formed sequence, plus a member
 * NAME_bytes holding its exact bytes in base64. Consumers that need the
 * exact name use NAME_bytes when present, NAME otherwise. The members and
 * their order are those of the json-c encoder this replaced
 * (format_jsonc.c), byte for byte.
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

static const char *
cause_name(uint32_t cause)
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
	}
	return "unknown";
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
	put_escaped(f, e->path);
	if (e->new_path) {
		fputs(" \xe2\x86\x92 ", f); /* → */
		put_escaped(f, e->new_path);
	}
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
	}
	return "unknown cause";
}

static void
text_loss(FILE *f, const struct minispy_loss *l)
{
	char t[64];

	spy_format_time_local(l->time_ns, t, sizeof(t));
	if (l->cause == MINISPY_LOSS_KERNEL)
		fprintf(f,
			"%s -- LOST: the kernel's event queue overflowed; "
			"an unknown number of events is missing here\n",
			t);
	else
		fprintf(f, "%s -- LOST %llu records (seq %llu-%llu): %s\n", t,
			(unsigned long long)l->count, (unsigned long long)l->first_seq,
			(unsigned long long)l->last_seq, loss_reason(l->cause));
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
	put_name(w, "path", "path_bytes", e->path);
	if (e->new_path)
		put_name(w, "new_path", "new_path_bytes", e->new_path);
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
	put_literal(w, "op", "lost");
	jw_u64(w, "count", l->count);
	jw_u64(w, "first_seq", l->first_seq);
	jw_u64(w, "last_seq", l->last_seq);
	put_literal(w, "cause", cause_name(l->cause));
	if (l->cause == MINISPY_LOSS_KERNEL)
		jw_u64(w, "seq", l->seq);
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

int
spy_format_record(FILE *f, struct json_writer *w, const struct minispy_record *r,
		  bool json)
{
	if (json) {
		int err = spy_format_json(w, r);

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
