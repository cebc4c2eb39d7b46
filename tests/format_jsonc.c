/* SPDX-License-Identifier: MIT */
/*
 * format_jsonc.c — the json-c encoder the minispy service used before
 * json_writer.c (see format_jsonc.h), unchanged but for its names, the
 * members record version 2 added (path_unknown, the "engine" cause,
 * notices), which it writes exactly as format.c does, and the cause names,
 * which it takes from the service (spy_loss_cause_name): a json-c object
 * tree per record; each string member checked for UTF-8 first, because
 * json-c copies bytes >= 0x80 through, and an ill-formed one written as
 * its U+FFFD-sanitized text plus NAME_bytes (base64 of the exact bytes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format_jsonc.h"
#include "spy.h"

#define NS_PER_S 1000000000LL

void
spy_jsonc_time_rfc3339(int64_t time_ns, char *buf, size_t size)
{
	int64_t sec = time_ns / NS_PER_S, ns = time_ns % NS_PER_S;
	struct tm tm;
	time_t s;
	size_t n;

	if (ns < 0) { /* before 1970: floor, so ns stays in [0, 1e9) */
		sec--;
		ns += NS_PER_S;
	}
	s = (time_t)sec;
	if (!gmtime_r(&s, &tm) ||
	    (n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm)) == 0) {
		snprintf(buf, size, "invalid");
		return;
	}
	snprintf(buf + n, size - n, ".%09ldZ", (long)ns);
}

bool
spy_jsonc_utf8_valid(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		bool ok;

		i += spy_utf8_scan(s + i, len - i, &ok);
		if (!ok)
			return false;
	}
	return true;
}

char *
spy_jsonc_sanitize(const char *s, size_t len)
{
	/* Worst case: every byte becomes the 3 bytes of U+FFFD. */
	char *out = malloc(3 * len + 1), *o = out;
	size_t i = 0;

	if (!out)
		return NULL;
	while (i < len) {
		bool ok;
		size_t k = spy_utf8_scan(s + i, len - i, &ok);

		if (ok) {
			memcpy(o, s + i, k);
			o += k;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
		}
		i += k;
	}
	*o = '\0';
	return out;
}

char *
spy_jsonc_base64(const void *s, size_t len)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = s;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		*o++ = abc[(v >> 6) & 63];
		*o++ = abc[v & 63];
	}
	if (len - i == 1) {
		*o++ = abc[p[i] >> 2];
		*o++ = abc[(p[i] & 3) << 4];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];

		*o++ = abc[v >> 10];
		*o++ = abc[(v >> 4) & 63];
		*o++ = abc[(v & 15) << 2];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

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
	if (spy_jsonc_utf8_valid(s, len))
		return add(o, key, json_object_new_string_len(s, (int)len));
	clean = spy_jsonc_sanitize(s, len);
	b64 = spy_jsonc_base64(s, len);
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
	bool unknown = e->flags & MINISPY_F_PATH_UNKNOWN;
	char t[64];
	int r = 0;

	spy_jsonc_time_rfc3339(e->time_ns, t, sizeof(t));
	r |= add(o, "seq", json_object_new_uint64(e->seq));
	r |= add(o, "time", json_object_new_string(t));
	r |= add(o, "op", json_object_new_string(minispy_op_name(e->op)));
	if (unknown && !*e->path)
		r |= json_object_object_add(o, "path", NULL) < 0 ? -ENOMEM : 0;
	else
		r |= add_name(o, "path", e->path);
	if (unknown && e->op == MINISPY_OP_RENAME && (!e->new_path || !*e->new_path))
		r |= json_object_object_add(o, "new_path", NULL) < 0 ? -ENOMEM : 0;
	else if (e->new_path)
		r |= add_name(o, "new_path", e->new_path);
	if (unknown)
		r |= add(o, "path_unknown", json_object_new_boolean(1));
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
add_notices(struct json_object *o, uint32_t notices)
{
	struct json_object *a = json_object_new_array();
	int r = 0;

	if (!a)
		return -ENOMEM;
	if (notices & MINISPY_NOTICE_KERNEL)
		r |= json_object_array_add(a, json_object_new_string("kernel"));
	if (notices & MINISPY_NOTICE_ENGINE)
		r |= json_object_array_add(a, json_object_new_string("engine"));
	if (r) {
		json_object_put(a);
		return -ENOMEM;
	}
	return add(o, "notices", a);
}

static int
json_loss(struct json_object *o, const struct minispy_loss *l)
{
	char t[64];
	int r = 0;

	spy_jsonc_time_rfc3339(l->time_ns, t, sizeof(t));
	r |= add(o, "op", json_object_new_string("lost"));
	r |= add(o, "count", json_object_new_uint64(l->count));
	r |= add(o, "first_seq", json_object_new_uint64(l->first_seq));
	r |= add(o, "last_seq", json_object_new_uint64(l->last_seq));
	r |= add(o, "cause", json_object_new_string(spy_loss_cause_name(l->cause)));
	if (minispy_loss_is_notice(l->cause))
		r |= add(o, "seq", json_object_new_uint64(l->seq));
	if (l->notices & (MINISPY_NOTICE_KERNEL | MINISPY_NOTICE_ENGINE))
		r |= add_notices(o, l->notices);
	r |= add(o, "time", json_object_new_string(t));
	return r ? -ENOMEM : 0;
}

struct json_object *
spy_jsonc_record(const struct minispy_record *rec)
{
	struct json_object *o = json_object_new_object();
	int r;

	if (!o)
		return NULL;
	r = rec->type == MINISPY_REC_EVENT ? json_event(o, &rec->event)
					   : json_loss(o, &rec->loss);
	if (r < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int
spy_jsonc_format_record(FILE *f, const struct minispy_record *rec)
{
	struct json_object *o = spy_jsonc_record(rec);

	if (!o)
		return -ENOMEM;
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE),
	      f);
	fputc('\n', f);
	json_object_put(o);
	return 0;
}
