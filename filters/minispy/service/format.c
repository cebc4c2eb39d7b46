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
 * JSON: built with json-c, which escapes quotes, backslashes and control
 * characters but passes bytes >= 0x80 through as they are. Strings that
 * are not well-formed UTF-8 would then make invalid JSON, so each string
 * member is checked (utf8.c): a valid one is written as it is; an invalid
 * one as its text with U+FFFD for each ill-formed sequence, plus a member
 * NAME_bytes holding the exact bytes in base64. Consumers that need the
 * exact name use NAME_bytes when present, NAME otherwise.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spy.h"

#define NS_PER_S 1000000000LL

static void
split_time(int64_t time_ns, time_t *ret_s, long *ret_ns)
{
	int64_t s = time_ns / NS_PER_S, ns = time_ns % NS_PER_S;

	if (ns < 0) { /* before 1970: floor, so ns stays in [0, 1e9) */
		s--;
		ns += NS_PER_S;
	}
	*ret_s = (time_t)s;
	*ret_ns = (long)ns;
}

void
spy_format_time_rfc3339(int64_t time_ns, char *buf, size_t size)
{
	struct tm tm;
	time_t s;
	long ns;
	size_t n;

	split_time(time_ns, &s, &ns);
	if (!gmtime_r(&s, &tm) ||
	    (n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, size, "invalid");
		return;
	}
	snprintf(buf + n, size - n, ".%09ldZ", ns);
}

void
spy_format_time_local(int64_t time_ns, char *buf, size_t size)
{
	struct tm tm;
	time_t s;
	long ns;
	size_t n;

	split_time(time_ns, &s, &ns);
	if (!localtime_r(&s, &tm) || (n = strftime(buf, size, "%H:%M:%S", &tm)) == 0) {
		snprintf(buf, size, "??:??:??");
		return;
	}
	snprintf(buf + n, size - n, ".%06ld", ns / 1000);
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

static int
add(struct json_object *o, const char *key, struct json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* key: s as a JSON string, null if s is NULL; and key_bytes (base64 of
 * the exact bytes) if s is not well-formed UTF-8. */
static int
add_name(struct json_object *o, const char *key, const char *s)
{
	size_t len;
	char *clean, *b64, bkey[32];
	int r;

	if (!s)
		return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
	len = strlen(s);
	if (spy_utf8_valid(s, len))
		return add(o, key, json_object_new_string_len(s, (int)len));
	clean = spy_utf8_sanitize(s, len);
	b64 = spy_base64(s, len);
	snprintf(bkey, sizeof(bkey), "%s_bytes", key);
	r = clean && b64 ? add(o, key, json_object_new_string(clean)) : -ENOMEM;
	if (r == 0)
		r = add(o, bkey, json_object_new_string(b64));
	free(clean);
	free(b64);
	return r;
}

static int
json_event(struct json_object *o, const struct minispy_event *e)
{
	bool verified = e->flags & MINISPY_F_VERIFIED;
	char t[64];
	int r = 0;

	spy_format_time_rfc3339(e->time_ns, t, sizeof(t));
	r |= add(o, "seq", json_object_new_uint64(e->seq));
	r |= add(o, "time", json_object_new_string(t));
	r |= add(o, "op", json_object_new_string(minispy_op_name(e->op)));
	r |= add_name(o, "path", e->path);
	if (e->new_path)
		r |= add_name(o, "new_path", e->new_path);
	r |= add(o, "pid", json_object_new_int(e->pid));
	if (verified && e->uid != MINISPY_UID_UNKNOWN)
		r |= add(o, "uid", json_object_new_int64(e->uid));
	else
		r |= json_object_object_add(o, "uid", NULL);
	r |= add_name(o, "exe", e->exe);
	r |= add_name(o, "comm", e->comm);
	r |= add(o, "dir", json_object_new_boolean(e->flags & MINISPY_F_DIR));
	r |= add(o, "dev", json_object_new_uint64(e->dev));
	r |= add(o, "ino", json_object_new_uint64(e->ino));
	r |= add(o, "event_seq", json_object_new_uint64(e->event_seq));
	if (e->flags & MINISPY_F_TRUNCATED)
		r |= add(o, "truncated", json_object_new_boolean(1));
	return r ? -ENOMEM : 0;
}

static int
json_loss(struct json_object *o, const struct minispy_loss *l)
{
	char t[64];
	int r = 0;

	spy_format_time_rfc3339(l->time_ns, t, sizeof(t));
	r |= add(o, "op", json_object_new_string("lost"));
	r |= add(o, "count", json_object_new_uint64(l->count));
	r |= add(o, "first_seq", json_object_new_uint64(l->first_seq));
	r |= add(o, "last_seq", json_object_new_uint64(l->last_seq));
	r |= add(o, "cause", json_object_new_string(cause_name(l->cause)));
	if (l->cause == MINISPY_LOSS_KERNEL)
		r |= add(o, "seq", json_object_new_uint64(l->seq));
	r |= add(o, "time", json_object_new_string(t));
	return r ? -ENOMEM : 0;
}

static int
json_record(FILE *f, const struct minispy_record *rec)
{
	struct json_object *o = json_object_new_object();
	int r;

	if (!o)
		return -ENOMEM;
	r = rec->type == MINISPY_REC_EVENT ? json_event(o, &rec->event)
					   : json_loss(o, &rec->loss);
	if (r == 0) {
		fputs(json_object_to_json_string_ext(
			      o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
		      f);
		fputc('\n', f);
	}
	json_object_put(o);
	return r;
}

int
spy_format_record(FILE *f, const struct minispy_record *r, bool json)
{
	if (json)
		return json_record(f, r);
	if (r->type == MINISPY_REC_EVENT)
		text_event(f, &r->event);
	else
		text_loss(f, &r->loss);
	return 0;
}
