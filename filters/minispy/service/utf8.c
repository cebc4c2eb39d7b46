/* SPDX-License-Identifier: MIT */
/*
 * utf8.c — what the JSON output needs beyond json-c: json-c copies every
 * byte >= 0x80 of a string through unchanged, so a file name that is not
 * UTF-8 (Linux allows any bytes but '/' and NUL) would make the line
 * invalid JSON. format.c therefore checks each string here first; an
 * ill-formed one is written as its U+FFFD-sanitized text plus the exact
 * bytes in base64 (see docs/minispy.md, "File names that are not UTF-8").
 *
 * Pure functions on byte strings; nothing here allocates except the two
 * functions that return a new string.
 */
#include <stdlib.h>
#include <string.h>

#include "spy.h"

/*
 * Scans the sequence starting at s (n >= 1 bytes left) against the table of
 * well-formed UTF-8 byte sequences in the Unicode Standard (ch. 3, table
 * 3-7). Well-formed: sets *ok and returns its length. Ill-formed: clears
 * *ok and returns the length of its maximal subpart (the longest prefix
 * that could still have begun a well-formed sequence, at least 1), which
 * is what one U+FFFD replaces.
 */
size_t
spy_utf8_scan(const char *str, size_t n, bool *ok)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	*ok = false;
	if (c < 0x80) {
		*ok = true;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 1;
	if (c == 0xe0)
		lo = 0xa0; /* no overlongs */
	else if (c == 0xed)
		hi = 0x9f; /* no surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* no overlongs */
	else if (c == 0xf4)
		hi = 0x8f; /* nothing above U+10FFFF */
	if (n < 2 || s[1] < lo || s[1] > hi)
		return 1;
	for (i = 2; i < len && i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return i;
	if (i < len)
		return i; /* cut short by the end of the string */
	*ok = true;
	return len;
}

bool
spy_utf8_valid(const char *s, size_t len)
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
spy_utf8_sanitize(const char *s, size_t len)
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
spy_base64(const void *s, size_t len)
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
