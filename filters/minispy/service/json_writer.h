/* SPDX-License-Identifier: MIT */
/*
 * json_writer.h — a streaming encoder for flat JSON objects (members whose
 * values are strings, integers, booleans or null), written into one
 * buffer that is reused from one object to the next: once the buffer has
 * grown to the largest object, encoding allocates nothing. It owns the
 * JSON syntax only (separators, numbers, RFC 8259 string escaping); which
 * members make a minispy record is format.c's business.
 *
 * Strings are byte strings (Linux file names are any bytes but NUL):
 *   - well-formed UTF-8 (RFC 3629, utf8.c) is copied as it is, except
 *   - '"' and '\\' are escaped with a backslash, and the control characters
 *     U+0000..U+001F as \b \t \n \f \r or \u00xx (lower-case hex), so no
 *     raw newline ever reaches the output; DEL (0x7f) and '/' are copied;
 *   - each ill-formed subsequence becomes U+FFFD (the "maximal subpart"
 *     rule, spy_utf8_scan()), and jw_string() says so, so the caller can
 *     add the exact bytes (jw_base64()).
 * These are the escapes json-c makes with JSON_C_TO_STRING_NOSLASHESCAPE,
 * which the service used before this encoder: its output is unchanged
 * byte for byte (tests/test_minispy_format.c compares the two).
 *
 * Errors are sticky: when the buffer cannot grow, the writer is marked
 * failed, later calls write nothing, and jw_end() returns -ENOMEM.
 */
#ifndef MINISPY_SERVICE_JSON_WRITER_H
#define MINISPY_SERVICE_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_writer {
	char *buf;   /* after jw_end(): the object and its '\n', buf[0..len) */
	size_t len;  /* bytes used */
	size_t cap;  /* bytes allocated */
	bool first;  /* no member written yet in the current object */
	bool failed; /* the buffer could not grow: the object is incomplete */
};

#define JSON_WRITER_INIT                \
	{                               \
		NULL, 0, 0, true, false \
	}

void jw_free(struct json_writer *w);

/* Starts a new object in place of whatever the buffer held. */
void jw_begin(struct json_writer *w);
/* Closes the object and ends the line ("}\n"), followed by a NUL that
 * len does not count. Returns 0, or -ENOMEM if a call since jw_begin()
 * could not grow the buffer. */
int jw_end(struct json_writer *w);

/* One member each. key: plain ASCII that needs no escaping (the callers
 * pass string literals). */
void jw_u64(struct json_writer *w, const char *key, uint64_t v);
void jw_i64(struct json_writer *w, const char *key, int64_t v);
void jw_bool(struct json_writer *w, const char *key, bool v);
void jw_null(struct json_writer *w, const char *key);
/* s[0..len) as a JSON string (rules above). Returns false if s was not
 * well-formed UTF-8, i.e. it was written with U+FFFD in it. */
bool jw_string(struct json_writer *w, const char *key, const char *s, size_t len);
/* s[0..len) in standard base64 (RFC 4648, padded) as a JSON string. */
void jw_base64(struct json_writer *w, const char *key, const void *s, size_t len);

#endif /* MINISPY_SERVICE_JSON_WRITER_H */
