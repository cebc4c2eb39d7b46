/* SPDX-License-Identifier: MIT */
/*
 * utf8.c — UTF-8 well-formedness, one sequence at a time. A file name
 * need not be UTF-8 (Linux allows any bytes but '/' and NUL), and JSON
 * text must be: json_writer.c copies each well-formed sequence and writes
 * U+FFFD for each ill-formed one, and format.c then adds the exact bytes
 * in base64 (see docs/minispy.md, "File names that are not UTF-8"). The
 * text format escapes the bytes of an ill-formed sequence instead.
 *
 * A pure function on byte strings.
 */
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
