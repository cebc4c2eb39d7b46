/* SPDX-License-Identifier: MIT */
/*
 * minispy_format_check.c — see minispy_format_check.h. Parses the line with
 * json-c in strict mode with UTF-8 validation, then compares member by
 * member with the record; a name's exact bytes come from NAME_bytes
 * (decoded here) when present, else from NAME. The member set must be
 * exactly the expected one, and the line must equal the json-c reference
 * encoder's output byte for byte.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format_jsonc.h"
#include "minispy_format_check.h"
#include "spy.h"

static char why[512];

__attribute__((format(printf, 1, 2))) static const char *
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return why;
}

bool
check_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t cp, min;
		size_t n;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 2, cp = s[i] & 0x1f, min = 0x80;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 3, cp = s[i] & 0x0f, min = 0x800;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 4, cp = s[i] & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i < n)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* Decodes standard padded base64; -1 if s is not that. */
static long
b64_decode(const char *s, unsigned char *out, size_t cap)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(s), n = 0;

	if (len % 4)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;
		int pad = 0;

		for (int k = 0; k < 4; k++) {
			const char *p = s[i + k] ? strchr(abc, s[i + k]) : NULL;

			if (s[i + k] == '=' && i + 4 == len && k >= 2) {
				pad++;
				v <<= 6;
				continue;
			}
			if (!p || pad)
				return -1;
			v = v << 6 | (uint32_t)(p - abc);
		}
		if (n + 3 - (size_t)pad > cap)
			return -1;
		out[n++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[n++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[n++] = (unsigned char)v;
	}
	return (long)n;
}

static struct json_object *
member(struct json_object *o, const char *key, bool *present)
{
	struct json_object *v = NULL;

	*present = json_object_object_get_ex(o, key, &v);
	return v;
}

static const char *
check_u64(struct json_object *o, const char *key, uint64_t want, int *members)
{
	bool present;
	struct json_object *v = member(o, key, &present);

	if (!present || !json_object_is_type(v, json_type_int))
		return fail("%s: missing or not an integer", key);
	/* json-c keeps integers above INT64_MAX as uint64 */
	if (json_object_get_uint64(v) != want)
		return fail("%s: %" PRIu64 ", want %" PRIu64, key,
			    json_object_get_uint64(v), want);
	(*members)++;
	return NULL;
}

static const char *
check_i64(struct json_object *o, const char *key, int64_t want, int *members)
{
	bool present;
	struct json_object *v = member(o, key, &present);

	if (!present || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != want)
		return fail("%s: want %" PRId64, key, want);
	(*members)++;
	return NULL;
}

static const char *
check_str(struct json_object *o, const char *key, const char *want, int *members)
{
	bool present;
	struct json_object *v = member(o, key, &present);

	if (!present || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), want))
		return fail("%s: want \"%s\"", key, want);
	(*members)++;
	return NULL;
}

static const char *
check_null(struct json_object *o, const char *key, int *members)
{
	bool present;
	struct json_object *v = member(o, key, &present);

	if (!present || v)
		return fail("%s: want null", key);
	(*members)++;
	return NULL;
}

/* A name: null for NULL; well-formed UTF-8 as the exact string and no
 * KEY_bytes; else KEY the sanitized text with U+FFFD in it and KEY_bytes
 * decoding to the exact bytes. */
static const char *
check_name(struct json_object *o, const char *key, const char *want, int *members)
{
	char bkey[64];
	bool present, has_bytes;
	struct json_object *v = member(o, key, &present), *b;
	size_t len;

	if (!want)
		return check_null(o, key, members);
	snprintf(bkey, sizeof(bkey), "%s_bytes", key);
	b = member(o, bkey, &has_bytes);
	if (!present || !json_object_is_type(v, json_type_string))
		return fail("%s: missing or not a string", key);
	(*members)++;
	len = strlen(want);
	if (check_utf8_valid((const unsigned char *)want, len)) {
		if (has_bytes)
			return fail("%s: well-formed UTF-8 but has %s", key, bkey);
		if ((size_t)json_object_get_string_len(v) != len ||
		    memcmp(json_object_get_string(v), want, len))
			return fail("%s: not the exact name", key);
		return NULL;
	}
	if (!has_bytes || !json_object_is_type(b, json_type_string))
		return fail("%s: not UTF-8 but no %s", key, bkey);
	(*members)++;
	{
		unsigned char *raw = malloc(len + 4);
		long n = raw ? b64_decode(json_object_get_string(b), raw, len + 3) : -1;
		bool same = n == (long)len && memcmp(raw, want, len) == 0;
		char *clean = spy_jsonc_sanitize(want, len);
		bool text_ok = clean && !strcmp(clean, json_object_get_string(v)) &&
			       strstr(clean, "\xef\xbf\xbd");

		free(raw);
		free(clean);
		if (!same)
			return fail("%s: does not decode to the exact bytes", bkey);
		if (!text_ok)
			return fail("%s: not the U+FFFD-sanitized name", key);
	}
	return NULL;
}

/* notices: absent for none, else the names of the bits, in bit order
 * (bits without a name are not written). */
static const char *
check_notices(struct json_object *o, uint32_t notices, int *members)
{
	static const char *const names[] = { "kernel", "engine" };
	bool present;
	struct json_object *v = member(o, "notices", &present);
	size_t n = 0;

	if (!(notices & (MINISPY_NOTICE_KERNEL | MINISPY_NOTICE_ENGINE)))
		return present ? fail("notices: present for none") : NULL;
	if (!present || !json_object_is_type(v, json_type_array))
		return fail("notices: missing or not an array");
	for (unsigned bit = 0; bit < 2; bit++) {
		struct json_object *item;

		if (!(notices & (1u << bit)))
			continue;
		item = json_object_array_get_idx(v, n++);
		if (!item || !json_object_is_type(item, json_type_string) ||
		    strcmp(json_object_get_string(item), names[bit]))
			return fail("notices: want \"%s\" at %zu", names[bit], n - 1);
	}
	if (json_object_array_length(v) != n)
		return fail("notices: %zu names, want %zu", json_object_array_length(v),
			    n);
	(*members)++;
	return NULL;
}

static const char *
check_members(struct json_object *o, const struct minispy_record *r)
{
	char t[64];
	const char *bad = NULL;
	int members = 0;

	if (r->type == MINISPY_REC_EVENT) {
		const struct minispy_event *e = &r->event;
		bool verified = e->flags & MINISPY_F_VERIFIED;
		/* an unknown path is null (a rename's new path too), and the
		 * flag is path_unknown:true */
		bool unknown = e->flags & MINISPY_F_PATH_UNKNOWN;
		bool new_path_unknown = unknown && e->op == MINISPY_OP_RENAME &&
					(!e->new_path || !*e->new_path);

		spy_jsonc_time_rfc3339(e->time_ns, t, sizeof(t));
		(void)((bad = check_u64(o, "seq", e->seq, &members)) ||
		       (bad = check_str(o, "time", t, &members)) ||
		       (bad = check_str(o, "op", minispy_op_name(e->op), &members)) ||
		       (bad = check_name(o, "path", unknown && !*e->path ? NULL : e->path,
					 &members)) ||
		       (new_path_unknown &&
			(bad = check_null(o, "new_path", &members))) ||
		       (!new_path_unknown && e->new_path &&
			(bad = check_name(o, "new_path", e->new_path, &members))) ||
		       (bad = check_i64(o, "pid", e->pid, &members)) ||
		       (bad = verified && e->uid != MINISPY_UID_UNKNOWN
				      ? check_u64(o, "uid", e->uid, &members)
				      : check_null(o, "uid", &members)) ||
		       (bad = check_name(o, "exe", e->exe, &members)) ||
		       (bad = check_name(o, "comm", e->comm, &members)) ||
		       (bad = check_u64(o, "dev", e->dev, &members)) ||
		       (bad = check_u64(o, "ino", e->ino, &members)) ||
		       (bad = check_u64(o, "event_seq", e->event_seq, &members)));
		if (bad)
			return bad;
		{
			bool present;
			struct json_object *v = member(o, "dir", &present);

			if (!present || !json_object_is_type(v, json_type_boolean) ||
			    json_object_get_boolean(v) != !!(e->flags & MINISPY_F_DIR))
				return fail("dir: wrong");
			members++;
			v = member(o, "truncated", &present);
			if (present != !!(e->flags & MINISPY_F_TRUNCATED) ||
			    (present && (!json_object_is_type(v, json_type_boolean) ||
					 !json_object_get_boolean(v))))
				return fail("truncated: wrong");
			members += present;
			v = member(o, "path_unknown", &present);
			if (present != unknown ||
			    (present && (!json_object_is_type(v, json_type_boolean) ||
					 !json_object_get_boolean(v))))
				return fail("path_unknown: wrong");
			members += present;
		}
	} else {
		const struct minispy_loss *l = &r->loss;

		spy_jsonc_time_rfc3339(l->time_ns, t, sizeof(t));
		(void)((bad = check_str(o, "op", "lost", &members)) ||
		       (bad = check_u64(o, "count", l->count, &members)) ||
		       (bad = check_u64(o, "first_seq", l->first_seq, &members)) ||
		       (bad = check_u64(o, "last_seq", l->last_seq, &members)) ||
		       (bad = check_str(o, "cause", spy_loss_cause_name(l->cause),
					&members)) ||
		       (minispy_loss_is_notice(l->cause) &&
			(bad = check_u64(o, "seq", l->seq, &members))) ||
		       (bad = check_str(o, "time", t, &members)));
		if (bad)
			return bad;
		if ((bad = check_notices(o, l->notices, &members)))
			return bad;
	}
	if (json_object_object_length(o) != members)
		return fail("%d members, want %d", json_object_object_length(o), members);
	return NULL;
}

const char *
check_json_line(const struct minispy_record *r, const char *line, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o, *ref;
	const char *bad = NULL, *ref_text;

	if (len < 3 || line[len - 1] != '\n')
		return fail("not one line ending in a newline");
	for (size_t i = 0; i + 1 < len; i++)
		if ((unsigned char)line[i] < 0x20)
			return fail("a raw control character 0x%02x at %zu",
				    (unsigned char)line[i], i);
	tok = json_tokener_new();
	if (!tok)
		return fail("json_tokener_new failed");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, line, (int)len - 1);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    (size_t)tok->char_offset != len - 1 ||
	    !json_object_is_type(o, json_type_object))
		bad = fail("not one strict JSON object in UTF-8: %s",
			   json_tokener_error_desc(json_tokener_get_error(tok)));
	json_tokener_free(tok);
	if (!bad)
		bad = check_members(o, r);
	json_object_put(o);
	if (bad)
		return bad;
	/* the former encoder's line, byte for byte */
	ref = spy_jsonc_record(r);
	if (!ref)
		return fail("the json-c reference is out of memory");
	ref_text = json_object_to_json_string_ext(
		ref, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strlen(ref_text) != len - 1 || memcmp(ref_text, line, len - 1))
		bad = fail("differs from json-c's line: %s", ref_text);
	json_object_put(ref);
	return bad;
}
