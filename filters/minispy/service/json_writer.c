/* SPDX-License-Identifier: MIT */
/*
 * json_writer.c — the flat-object JSON encoder of json_writer.h.
 *
 * Each member first reserves the most bytes it can take (a string: 6 per
 * input byte, the \u00xx of a control character), so the loops that fill
 * it never check the buffer's end. The buffer doubles when it must grow
 * and never shrinks: a service's buffer settles at the size of the
 * largest record it has printed (at most a few hundred KiB for four
 * 4095-byte strings of control characters).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"
#include "spy.h"

#define FIRST_CAPACITY 1024
/* ,"key": around a key of klen bytes */
#define KEY_OVERHEAD 4

void
jw_free(struct json_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

/* Room for n more bytes; false (and failed set) if it cannot be had. */
static bool
reserve(struct json_writer *w, size_t n)
{
	size_t cap;
	char *p;

	if (w->failed)
		return false;
	if (n <= w->cap - w->len)
		return true;
	if (n > SIZE_MAX / 4 - w->len) {
		w->failed = true;
		return false;
	}
	cap = w->cap ? w->cap : FIRST_CAPACITY;
	while (cap < w->len + n)
		cap *= 2;
	p = realloc(w->buf, cap);
	if (!p) {
		w->failed = true;
		return false;
	}
	w->buf = p;
	w->cap = cap;
	return true;
}

void
jw_begin(struct json_writer *w)
{
	w->len = 0;
	w->first = true;
	w->failed = false;
	if (reserve(w, 1))
		w->buf[w->len++] = '{';
}

int
jw_end(struct json_writer *w)
{
	if (reserve(w, 3)) {
		w->buf[w->len++] = '}';
		w->buf[w->len++] = '\n';
		w->buf[w->len] = '\0'; /* not counted: for callers that want a C string */
	}
	return w->failed ? -ENOMEM : 0;
}

/* Reserves room for the key and value_max bytes of value, writes the key
 * and returns where the value goes; NULL if out of memory. */
static char *
begin_member(struct json_writer *w, const char *key, size_t value_max)
{
	size_t klen = strlen(key);
	char *p;

	if (!reserve(w, klen + KEY_OVERHEAD + value_max))
		return NULL;
	p = w->buf + w->len;
	if (!w->first)
		*p++ = ',';
	w->first = false;
	*p++ = '"';
	memcpy(p, key, klen);
	p += klen;
	*p++ = '"';
	*p++ = ':';
	return p;
}

static void
end_member(struct json_writer *w, char *p)
{
	w->len = (size_t)(p - w->buf);
}

static char *
put_u64(char *p, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = digits[--n];
	return p;
}

void
jw_u64(struct json_writer *w, const char *key, uint64_t v)
{
	char *p = begin_member(w, key, 20);

	if (p)
		end_member(w, put_u64(p, v));
}

void
jw_i64(struct json_writer *w, const char *key, int64_t v)
{
	char *p = begin_member(w, key, 21);

	if (!p)
		return;
	if (v < 0) {
		*p++ = '-';
		/* in unsigned arithmetic, so that INT64_MIN works too */
		p = put_u64(p, 0 - (uint64_t)v);
	} else {
		p = put_u64(p, (uint64_t)v);
	}
	end_member(w, p);
}

static void
put_literal(struct json_writer *w, const char *key, const char *lit, size_t n)
{
	char *p = begin_member(w, key, n);

	if (!p)
		return;
	memcpy(p, lit, n);
	end_member(w, p + n);
}

void
jw_bool(struct json_writer *w, const char *key, bool v)
{
	if (v)
		put_literal(w, key, "true", 4);
	else
		put_literal(w, key, "false", 5);
}

void
jw_null(struct json_writer *w, const char *key)
{
	put_literal(w, key, "null", 4);
}

/* A byte copied as it is: printable ASCII but '"' and '\\'. */
static inline bool
plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* The escape of an ASCII byte that is not plain. */
static char *
put_escape(char *p, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char short_form = 0;

	switch (c) {
	case '"':
	case '\\':
		short_form = (char)c;
		break;
	case '\b':
		short_form = 'b';
		break;
	case '\t':
		short_form = 't';
		break;
	case '\n':
		short_form = 'n';
		break;
	case '\f':
		short_form = 'f';
		break;
	case '\r':
		short_form = 'r';
		break;
	}
	*p++ = '\\';
	if (short_form) {
		*p++ = short_form;
		return p;
	}
	memcpy(p, "u00", 3);
	p[3] = hex[c >> 4];
	p[4] = hex[c & 15];
	return p + 5;
}

bool
jw_string(struct json_writer *w, const char *key, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	bool well_formed = true;
	size_t i = 0;
	char *p;

	/* 6 bytes per input byte at most (\u00xx), and the quotes */
	if (len > SIZE_MAX / 8 || !(p = begin_member(w, key, 6 * len + 2)))
		return true; /* failed; jw_end() tells */
	*p++ = '"';
	while (i < len) {
		size_t run = i, k;
		bool ok;

		while (run < len && plain(s[run]))
			run++;
		memcpy(p, s + i, run - i);
		p += run - i;
		i = run;
		if (i == len)
			break;
		if (s[i] < 0x80) {
			p = put_escape(p, s[i]);
			i++;
			continue;
		}
		k = spy_utf8_scan(str + i, len - i, &ok);
		if (ok) {
			memcpy(p, s + i, k);
			p += k;
		} else {
			memcpy(p, "\xef\xbf\xbd", 3); /* U+FFFD */
			p += 3;
			well_formed = false;
		}
		i += k;
	}
	*p++ = '"';
	end_member(w, p);
	return well_formed;
}

void
jw_base64(struct json_writer *w, const char *key, const void *s, size_t len)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *b = s;
	size_t i;
	char *p;

	if (len > SIZE_MAX / 2 || !(p = begin_member(w, key, (len + 2) / 3 * 4 + 2)))
		return;
	*p++ = '"';
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];

		*p++ = abc[v >> 18];
		*p++ = abc[(v >> 12) & 63];
		*p++ = abc[(v >> 6) & 63];
		*p++ = abc[v & 63];
	}
	if (len - i == 1) {
		*p++ = abc[b[i] >> 2];
		*p++ = abc[(b[i] & 3) << 4];
		*p++ = '=';
		*p++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)b[i] << 8 | b[i + 1];

		*p++ = abc[v >> 10];
		*p++ = abc[(v >> 4) & 63];
		*p++ = abc[(v & 15) << 2];
		*p++ = '=';
	}
	*p++ = '"';
	end_member(w, p);
}
