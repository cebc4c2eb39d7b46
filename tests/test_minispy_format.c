/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_format.c — the minispy service's formatting on its own (no
 * daemon, no root): the JSON encoder (filters/minispy/service/format.c +
 * json_writer.c) against hand-written expectations, and differentially
 * against the json-c encoder it replaced (format_jsonc.c) over many
 * generated records whose names hold every control character, quotes,
 * backslashes, 2-, 3- and 4-byte UTF-8 and every kind of ill-formed
 * sequence (stray continuation bytes, overlong forms, encoded surrogates,
 * code points above U+10FFFF, sequences cut short). Every line must parse
 * strictly with json-c, give back each field (names to the exact byte,
 * through NAME_bytes when not UTF-8) and equal json-c's line byte for
 * byte (tests/minispy_format_check.c); the time must equal strftime's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format_jsonc.h"
#include "minispy_format_check.h"
#include "spy.h"
#include "testutil.h"

/* ---- generated names and records ---- */

static uint64_t
rnd64(unsigned *seed)
{
	uint64_t v = 0;

	for (int i = 0; i < 3; i++)
		v = v << 22 ^ (uint64_t)rand_r(seed);
	return v;
}

static size_t
put_cp(unsigned char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (unsigned char)(0xc0 | cp >> 6);
		p[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (unsigned char)(0xe0 | cp >> 12);
		p[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		p[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	p[0] = (unsigned char)(0xf0 | cp >> 18);
	p[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	p[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	p[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

static unsigned char
cont(unsigned *seed)
{
	return (unsigned char)(0x80 + rand_r(seed) % 0x40);
}

/* One piece of a name (1-4 bytes, no NUL) at p; its length. With
 * well_formed, only pieces that are UTF-8. */
static size_t
atom(unsigned *seed, unsigned char *p, bool well_formed)
{
	uint32_t cp;

	switch (rand_r(seed) % (well_formed ? 11 : 18)) {
	case 0:
	case 1:
	case 2:
	case 3:
	case 4:
	case 5: /* printable ASCII */
		p[0] = (unsigned char)(0x20 + rand_r(seed) % 0x5f);
		return 1;
	case 6: /* a control character, DEL included */
		p[0] = (unsigned char)(rand_r(seed) % 33);
		p[0] = p[0] ? p[0] : 0x7f;
		return 1;
	case 7:
		p[0] = (unsigned char)"\"\\/"[rand_r(seed) % 3];
		return 1;
	case 8: /* well-formed 2-byte */
		return put_cp(p, 0x80 + (uint32_t)rand_r(seed) % (0x800 - 0x80));
	case 9: /* well-formed 3-byte, no surrogate */
		do
			cp = 0x800 + (uint32_t)rand_r(seed) % (0x10000 - 0x800);
		while (cp >= 0xd800 && cp <= 0xdfff);
		return put_cp(p, cp);
	case 10: /* well-formed 4-byte */
		return put_cp(p, 0x10000 + (uint32_t)rand_r(seed) % (0x110000 - 0x10000));
	case 11: /* a byte that never starts a sequence */
		p[0] = (unsigned char)"\x80\xbf\xc0\xc1\xf5\xf8\xfe\xff"[rand_r(seed) %
									 8];
		if (p[0] == 0x80)
			p[0] = cont(seed);
		return 1;
	case 12: /* overlong */
		switch (rand_r(seed) % 3) {
		case 0:
			p[0] = (unsigned char)(0xc0 + rand_r(seed) % 2);
			p[1] = cont(seed);
			return 2;
		case 1:
			p[0] = 0xe0;
			p[1] = (unsigned char)(0x80 + rand_r(seed) % 0x20);
			p[2] = cont(seed);
			return 3;
		default:
			p[0] = 0xf0;
			p[1] = (unsigned char)(0x80 + rand_r(seed) % 0x10);
			p[2] = cont(seed);
			p[3] = cont(seed);
			return 4;
		}
	case 13: /* an encoded surrogate */
		p[0] = 0xed;
		p[1] = (unsigned char)(0xa0 + rand_r(seed) % 0x20);
		p[2] = cont(seed);
		return 3;
	case 14: /* above U+10FFFF */
		p[0] = 0xf4;
		p[1] = (unsigned char)(0x90 + rand_r(seed) % 0x30);
		p[2] = cont(seed);
		p[3] = cont(seed);
		return 4;
	case 15: { /* a well-formed sequence cut short */
		unsigned char full[4];
		size_t n = put_cp(full, 0x80 + (uint32_t)rand_r(seed) % 0xf000);

		n = n > 1 ? 1 + (size_t)rand_r(seed) % (n - 1) : 1;
		memcpy(p, full, n);
		return n;
	}
	case 16: /* any byte */
		p[0] = (unsigned char)(1 + rand_r(seed) % 255);
		return 1;
	default: { /* any byte from 0x80 up, then 1-3 continuation bytes */
		size_t n = 2 + (size_t)rand_r(seed) % 3;

		p[0] = (unsigned char)(0x80 + rand_r(seed) % 0x80);
		for (size_t i = 1; i < n; i++)
			p[i] = cont(seed);
		return n;
	}
	}
}

/* A generated name in buf (MINISPY_STRING_MAX + 1 bytes): 7 in 10 made
 * of UTF-8 pieces only, the others of any pieces. */
static const char *
gen_name(unsigned *seed, char *buf)
{
	size_t max = rand_r(seed) % 50 == 0 ? MINISPY_STRING_MAX : 80;
	size_t atoms = 1 + (size_t)rand_r(seed) % (max == 80 ? 24 : 1500), n = 0;
	bool well_formed = rand_r(seed) % 10 < 7;

	for (size_t i = 0; i < atoms; i++) {
		unsigned char a[4];
		size_t k = atom(seed, a, well_formed);

		if (n + k > max)
			break;
		memcpy(buf + n, a, k);
		n += k;
	}
	if (n == 0)
		buf[n++] = 'x';
	buf[n] = '\0';
	return buf;
}

static char names[4][MINISPY_STRING_MAX + 1];

static void
gen_record(unsigned *seed, struct minispy_record *r)
{
	memset(r, 0, sizeof(*r));
	if (rand_r(seed) % 20 == 0) {
		r->type = MINISPY_REC_LOSS;
		r->loss.seq = rnd64(seed);
		r->loss.time_ns = (int64_t)rnd64(seed);
		r->loss.count = rnd64(seed);
		r->loss.first_seq = rnd64(seed);
		r->loss.last_seq = rnd64(seed);
		r->loss.cause = (uint32_t)rand_r(seed) % 7; /* 0 and 6: unknown */
		r->loss.notices = rand_r(seed) % 2 ? (uint32_t)rand_r(seed) % 8 : 0;
		return;
	}
	r->type = MINISPY_REC_EVENT;
	r->event.seq = rnd64(seed);
	r->event.event_seq = rnd64(seed);
	r->event.time_ns = (int64_t)rnd64(seed);
	r->event.dev = rnd64(seed);
	r->event.ino = rnd64(seed);
	r->event.pid = (int32_t)rnd64(seed);
	r->event.uid = rand_r(seed) % 4 ? (uint32_t)rnd64(seed) : MINISPY_UID_UNKNOWN;
	r->event.op = (uint16_t)(rand_r(seed) % (MINISPY_OP_COUNT_ + 2));
	r->event.flags = (uint16_t)(rand_r(seed) % 16); /* PATH_UNKNOWN too */
	r->event.path = gen_name(seed, names[0]);
	if (r->event.op == MINISPY_OP_RENAME)
		r->event.new_path = gen_name(seed, names[1]);
	if (r->event.flags & MINISPY_F_PATH_UNKNOWN) {
		/* as decoded: the unknown one is "" (new_path: NULL) */
		switch (rand_r(seed) % 3) {
		case 0:
			r->event.path = "";
			break;
		case 1:
			r->event.new_path = NULL;
			break;
		default:
			r->event.path = "";
			r->event.new_path = NULL;
		}
	}
	r->event.exe = rand_r(seed) % 8 ? gen_name(seed, names[2]) : NULL;
	r->event.comm = rand_r(seed) % 8 ? gen_name(seed, names[3]) : NULL;
}

static struct minispy_record
event_with_path(const char *path)
{
	struct minispy_record r = { .type = MINISPY_REC_EVENT };

	r.event.seq = 31;
	r.event.event_seq = 900;
	r.event.time_ns = 1795512067512230114; /* 2026-11-24T09:21:07.512230114Z */
	r.event.dev = 2049;
	r.event.ino = 131090;
	r.event.pid = 24117;
	r.event.uid = 1000;
	r.event.op = MINISPY_OP_CREATE;
	r.event.flags = MINISPY_F_VERIFIED;
	r.event.path = path;
	r.event.exe = "/usr/bin/touch";
	r.event.comm = "touch";
	return r;
}

static const char *
encode(struct json_writer *w, const struct minispy_record *r)
{
	assert_int_equal(spy_format_json(w, r), 0);
	assert_non_null(w->buf);
	return w->buf;
}

static void
assert_line_checks(const struct minispy_record *r, const struct json_writer *w)
{
	const char *bad = check_json_line(r, w->buf, w->len);

	if (bad)
		fail_msg("%s\nline: %.*s", bad, (int)w->len, w->buf);
}

/* Every line the service writes is at most SPY_JSON_LINE_MAX bytes, also
 * for the worst names a user can make: a rename between two names of
 * 4095 control characters, or of bytes that are not UTF-8 (each escaped
 * as six bytes, or given twice: replaced and in base64), by a program
 * whose path is as bad. Cut fields are marked, the line stays one valid
 * JSON object with its schema and host, and what is kept of a name is
 * its exact beginning. */
static void
hostile_names_make_bounded_lines(void **state)
{
	static const unsigned char fills[] = { 0x01, 0x1f, 0xff, '"', 0xc3, 'a' };
	static char a[MINISPY_STRING_MAX + 1], b[MINISPY_STRING_MAX + 1],
		x[MINISPY_STRING_MAX + 1];
	struct json_writer w = { 0 };
	size_t longest_before = 0, longest_after = 0;

	(void)state;
	spy_set_host("host.example");
	for (size_t i = 0; i < sizeof(fills); i++) {
		for (size_t j = 0; j < sizeof(fills); j++) {
			struct minispy_record r = event_with_path("/x");
			struct json_object *o, *v;
			const char *p;

			memset(a, fills[i], MINISPY_STRING_MAX);
			memset(b, fills[j], MINISPY_STRING_MAX);
			memset(x, fills[(i + j) % sizeof(fills)], MINISPY_STRING_MAX);
			a[0] = b[0] = x[0] = '/';
			r.event.op = MINISPY_OP_RENAME;
			r.event.path = a;
			r.event.new_path = b;
			r.event.exe = x;
			assert_int_equal(spy_format_json(&w, &r), 0);
			if (w.len > longest_before)
				longest_before = w.len;
			assert_int_equal(spy_format_json_line(&w, &r), 0);
			if (w.len > longest_after)
				longest_after = w.len;
			assert_true(w.len <= SPY_JSON_LINE_MAX);
			assert_int_equal(w.buf[w.len - 1], '\n');
			assert_null(memchr(w.buf, '\n', w.len - 1));
			o = json_tokener_parse(w.buf);
			assert_non_null(o);
			assert_true(json_object_object_get_ex(o, "schema", &v));
			assert_int_equal(json_object_get_int(v), SPY_JSON_SCHEMA);
			assert_true(json_object_object_get_ex(o, "host", &v));
			assert_string_equal(json_object_get_string(v), "host.example");
			if (fills[i] == 'a' && fills[j] == 'a' &&
			    fills[(i + j) % sizeof(fills)] == 'a') {
				json_object_put(o);
				continue;
			}
			assert_true(json_object_object_get_ex(o, "truncated", &v));
			assert_true(json_object_get_boolean(v));
			assert_true(json_object_object_get_ex(o, "truncated_fields", &v));
			assert_true(json_object_array_length(v) >= 1);
			/* what is kept of a valid name is its exact beginning */
			if (fills[i] < 0x80 && json_object_object_get_ex(o, "path", &v) &&
			    (p = json_object_get_string(v)) != NULL) {
				if (strlen(p) < 100)
					fail_msg("path kept %zu bytes (fills %02x %02x): "
						 "%s",
						 strlen(p), fills[i], fills[j], w.buf);
				assert_memory_equal(p, a, strlen(p));
			}
			json_object_put(o);
		}
	}
	printf("longest line on hostile names: %zu bytes unbounded, %zu bytes "
	       "written (limit %d)\n",
	       longest_before, longest_after, SPY_JSON_LINE_MAX);
	jw_free(&w);
	spy_set_host(NULL);
}

/* A short record is written whole, its envelope first. */
static void
line_carries_schema_and_host(void **state)
{
	struct minispy_record r = event_with_path("/srv/a.txt");
	struct json_writer w = { 0 };

	(void)state;
	spy_set_host("h1");
	assert_int_equal(spy_format_json_line(&w, &r), 0);
	assert_memory_equal(w.buf, "{\"schema\":1,\"host\":\"h1\",\"seq\":", 30);
	assert_null(strstr(w.buf, "truncated"));
	jw_free(&w);
	spy_set_host(NULL);
}

/* ---- tests ---- */

/* The computed RFC 3339 time equals gmtime_r + strftime over the whole
 * int64_t range, leap days and the ends included. */
static void
time_matches_strftime(void **state)
{
	static const int64_t fixed[] = {
		0,
		-1,
		1,
		999999999,
		-1000000000,
		-1000000001,
		INT64_MIN,
		INT64_MAX,
		INT64_MIN + 1,
		951782400LL * 1000000000,       /* 2000-02-29 */
		951868800LL * 1000000000 - 1,   /* 2000-02-29T23:59:59.999999999 */
		4107542400LL * 1000000000,      /* 2100-03-01 */
		-2203891200LL * 1000000000,     /* 1900-03-01 */
		-2208988800LL * 1000000000 - 1, /* 1899-12-31T23:59:59.999999999 */
		1795512067512230114,
	};
	unsigned seed = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 200000; i++) {
		int64_t t = i < sizeof(fixed) / sizeof(fixed[0]) ? fixed[i]
								 : (int64_t)rnd64(&seed);
		char want[64], got[SPY_RFC3339_SIZE];
		size_t n;

		/* every few, a time near now, where most records are */
		if (i % 4 == 0 && i >= sizeof(fixed) / sizeof(fixed[0]))
			t = 1700000000LL * 1000000000 +
			    (int64_t)(rnd64(&seed) % (1ULL << 60));
		spy_jsonc_time_rfc3339(t, want, sizeof(want));
		n = spy_format_time_rfc3339(t, got);
		if (strcmp(want, got) || n != strlen(want) || n != 30)
			fail_msg("time %" PRId64 ": '%s', strftime says '%s'", t, got,
				 want);
	}
}

/* Each byte 0x01-0xff between two letters: exactly the escape RFC 8259
 * and the former output call for. */
static void
every_byte_escaped_exactly(void **state)
{
	struct json_writer w = JSON_WRITER_INIT;

	(void)state;
	for (int b = 1; b < 256; b++) {
		char path[4] = { 'a', (char)b, 'z', '\0' }, want[64];
		struct minispy_record r = event_with_path(path);

		switch (b) {
		case '"':
			snprintf(want, sizeof(want), "\"path\":\"a\\\"z\",");
			break;
		case '\\':
			snprintf(want, sizeof(want), "\"path\":\"a\\\\z\",");
			break;
		case '\b':
			snprintf(want, sizeof(want), "\"path\":\"a\\bz\",");
			break;
		case '\t':
			snprintf(want, sizeof(want), "\"path\":\"a\\tz\",");
			break;
		case '\n':
			snprintf(want, sizeof(want), "\"path\":\"a\\nz\",");
			break;
		case '\f':
			snprintf(want, sizeof(want), "\"path\":\"a\\fz\",");
			break;
		case '\r':
			snprintf(want, sizeof(want), "\"path\":\"a\\rz\",");
			break;
		default:
			if (b < 0x20) /* the other controls: \u00xx, lower case */
				snprintf(want, sizeof(want), "\"path\":\"a\\u%04xz\",",
					 b);
			else if (b < 0x80) /* printable, '/' and DEL: as they are */
				snprintf(want, sizeof(want), "\"path\":\"a%cz\",", b);
			else /* alone, never UTF-8: U+FFFD and the bytes */
				snprintf(want, sizeof(want),
					 "\"path\":\"a\xef\xbf\xbdz\",\"path_bytes\":\"");
		}
		encode(&w, &r);
		if (!strstr(w.buf, want))
			fail_msg("byte 0x%02x: no '%s' in %.*s", b, want, (int)w.len,
				 w.buf);
		assert_line_checks(&r, &w);
	}
	jw_free(&w);
}

/* Whether a name is UTF-8 decides between the exact string and U+FFFD +
 * NAME_bytes: the encoder's judgement against check_utf8_valid() (which
 * decodes code points instead of matching byte ranges) for every 1- and
 * 2-byte sequence, and 3- and 4-byte ones over the bytes where the
 * ranges change. */
static void
utf8_judgement_matches_decoding(void **state)
{
	static const unsigned char edge[] = { 0x01, 0x41, 0x7f, 0x80, 0x81, 0x8f, 0x90,
					      0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
					      0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff };
	const size_t ne = sizeof(edge);
	struct json_writer w = JSON_WRITER_INIT;
	unsigned char s[4];
	long checked = 0;

	(void)state;
	for (unsigned len = 1; len <= 4; len++) {
		size_t n1 = len <= 2 ? 255 : 128,
		       n2 = len >= 2 ? (len == 2 ? 255 : ne) : 1;
		size_t n3 = len >= 3 ? ne : 1, n4 = len == 4 ? ne : 1;

		for (size_t a = 0; a < n1; a++)
			for (size_t b = 0; b < n2; b++)
				for (size_t c = 0; c < n3; c++)
					for (size_t d = 0; d < n4; d++) {
						bool got, want;

						s[0] = (unsigned char)(n1 == 255
									       ? 1 + a
									       : 0x80 + a);
						s[1] = n2 == 255 ? (unsigned char)(1 + b)
								 : edge[b];
						s[2] = edge[c];
						s[3] = edge[d];
						jw_begin(&w);
						got = jw_string(&w, "p", (const char *)s,
								len);
						want = check_utf8_valid(s, len);
						if (got != want)
							fail_msg("%u bytes %02x %02x "
								 "%02x %02x: "
								 "encoder says %s",
								 len, s[0], s[1], s[2],
								 s[3],
								 got ? "UTF-8"
								     : "not UTF-8");
						/* UTF-8 above ASCII is copied as it is
						 * (0x01, the one control in edge[], is
						 * escaped) */
						if (got && s[0] >= 0x80 &&
						    !memchr(s, 0x01, len) &&
						    memcmp(w.buf + 6, s, len))
							fail_msg("%02x...: not copied",
								 s[0]);
						checked++;
					}
	}
	print_message("%ld sequences judged\n", checked);
	jw_free(&w);
}

/* One U+FFFD per maximal subpart (Unicode ch. 3, "U+FFFD Substitution of
 * Maximal Subparts"), the cases of its table 3-8 and a few more. */
static void
one_replacement_per_maximal_subpart(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "a\xc0\xafz", "a\xef\xbf\xbd\xef\xbf\xbdz" }, /* overlong: 2 */
		{ "a\xe0\x80\xafz", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz" }, /* 3 */
		{ "a\xed\xa0\x80z",
		  "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz" }, /* surrogate: 3 */
		{ "a\xf4\x90\x80\x80z", "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf"
					"\xbdz" },      /* > U+10FFFF: 4 */
		{ "a\xf0\x9f\x98z", "a\xef\xbf\xbdz" }, /* cut 4-byte: 1 */
		{ "a\xe2\x82", "a\xef\xbf\xbd" },       /* cut at the end: 1 */
		{ "\xf1\x80\x80\xe1\x80\xc2", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\x80\xbf\xf5\xff",
		  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	};
	struct json_writer w = JSON_WRITER_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].out);

		jw_begin(&w);
		assert_false(jw_string(&w, "p", cases[i].in, strlen(cases[i].in)));
		assert_int_equal(jw_end(&w), 0);
		/* {"p":"OUT"}\n */
		if (w.len != 9 + n || memcmp(w.buf + 6, cases[i].out, n))
			fail_msg("case %zu: %s", i, w.buf);
	}
	jw_free(&w);
}

/* Whole lines, written out by hand: the documented examples. */
static void
known_lines(void **state)
{
	struct json_writer w = JSON_WRITER_INIT;
	struct minispy_record r = event_with_path("/srv/report\n\"final\"\\\xff.txt");
	struct minispy_record loss = { .type = MINISPY_REC_LOSS };

	(void)state;
	assert_string_equal(
		encode(&w, &r),
		"{\"seq\":31,\"time\":\"2026-11-24T09:21:07.512230114Z\",\"op\":"
		"\"create\","
		"\"path\":\"/srv/report\\n\\\"final\\\"\\\\\xef\xbf\xbd.txt\","
		"\"path_bytes\":\"L3Nydi9yZXBvcnQKImZpbmFsIlz/LnR4dA==\",\"pid\":24117,"
		"\"uid\":1000,\"exe\":\"/usr/bin/"
		"touch\",\"comm\":\"touch\",\"dir\":false,"
		"\"dev\":2049,\"ino\":131090,\"event_seq\":900}\n");
	assert_line_checks(&r, &w);

	r = event_with_path("/srv/a.txt");
	r.event.op = MINISPY_OP_RENAME;
	r.event.new_path = "/srv/b\xc3\xa9\xf0\x9f\x98\x80";
	r.event.flags = MINISPY_F_DIR | MINISPY_F_TRUNCATED; /* not verified */
	r.event.exe = NULL;
	r.event.comm = NULL;
	r.event.pid = -7;
	assert_string_equal(
		encode(&w, &r),
		"{\"seq\":31,\"time\":\"2026-11-24T09:21:07.512230114Z\",\"op\":"
		"\"rename\","
		"\"path\":\"/srv/a.txt\",\"new_path\":\"/srv/b\xc3\xa9\xf0\x9f\x98\x80\","
		"\"pid\":-7,\"uid\":null,\"exe\":null,\"comm\":null,\"dir\":true,"
		"\"dev\":2049,\"ino\":131090,\"event_seq\":900,\"truncated\":true}\n");
	assert_line_checks(&r, &w);

	/* a deleted file's event, its path unknown; dev and ino kept */
	r = event_with_path("");
	r.event.op = MINISPY_OP_DELETE;
	r.event.flags = MINISPY_F_VERIFIED | MINISPY_F_PATH_UNKNOWN;
	assert_string_equal(encode(&w, &r),
			    "{\"seq\":31,\"time\":\"2026-11-24T09:21:07.512230114Z\","
			    "\"op\":\"delete\",\"path\":null,\"path_unknown\":true,"
			    "\"pid\":24117,\"uid\":1000,\"exe\":\"/usr/bin/touch\","
			    "\"comm\":\"touch\",\"dir\":false,\"dev\":2049,"
			    "\"ino\":131090,\"event_seq\":900}\n");
	assert_line_checks(&r, &w);
	/* a rename whose new name is unknown */
	r = event_with_path("/srv/a.txt");
	r.event.op = MINISPY_OP_RENAME;
	r.event.flags = MINISPY_F_PATH_UNKNOWN;
	assert_non_null(strstr(encode(&w, &r),
			       ",\"path\":\"/srv/a.txt\","
			       "\"new_path\":null,\"path_unknown\":true,"));
	assert_line_checks(&r, &w);

	loss.loss.time_ns = 1795512069020114387;
	loss.loss.count = 17;
	loss.loss.first_seq = 212;
	loss.loss.last_seq = 228;
	loss.loss.cause = MINISPY_LOSS_QUEUE;
	assert_string_equal(encode(&w, &loss),
			    "{\"op\":\"lost\",\"count\":17,\"first_seq\":212,"
			    "\"last_seq\":228,\"cause\":\"queue\","
			    "\"time\":\"2026-11-24T09:21:09.020114387Z\"}\n");
	assert_line_checks(&loss, &w);
	loss.loss.cause = MINISPY_LOSS_KERNEL;
	loss.loss.count = 0;
	loss.loss.first_seq = loss.loss.last_seq = 0;
	loss.loss.seq = UINT64_MAX;
	assert_string_equal(encode(&w, &loss),
			    "{\"op\":\"lost\",\"count\":0,\"first_seq\":0,\"last_seq\":0,"
			    "\"cause\":\"kernel\",\"seq\":18446744073709551615,"
			    "\"time\":\"2026-11-24T09:21:09.020114387Z\"}\n");
	assert_line_checks(&loss, &w);
	loss.loss.cause = MINISPY_LOSS_ENGINE;
	loss.loss.count = 3;
	loss.loss.seq = 40;
	assert_string_equal(encode(&w, &loss),
			    "{\"op\":\"lost\",\"count\":3,\"first_seq\":0,\"last_seq\":0,"
			    "\"cause\":\"engine\",\"seq\":40,"
			    "\"time\":\"2026-11-24T09:21:09.020114387Z\"}\n");
	assert_line_checks(&loss, &w);
	loss.loss.cause = MINISPY_LOSS_QUEUE;
	loss.loss.count = 5;
	loss.loss.first_seq = 41;
	loss.loss.last_seq = 45;
	loss.loss.notices = MINISPY_NOTICE_KERNEL | MINISPY_NOTICE_ENGINE;
	assert_string_equal(encode(&w, &loss),
			    "{\"op\":\"lost\",\"count\":5,\"first_seq\":41,"
			    "\"last_seq\":45,\"cause\":\"queue\","
			    "\"notices\":[\"kernel\",\"engine\"],"
			    "\"time\":\"2026-11-24T09:21:09.020114387Z\"}\n");
	assert_line_checks(&loss, &w);
	loss.loss.notices = MINISPY_NOTICE_ENGINE;
	encode(&w, &loss);
	assert_non_null(strstr(w.buf, ",\"notices\":[\"engine\"],"));
	assert_line_checks(&loss, &w);
	for (uint32_t c = 0; c < 7; c++) {
		loss.loss.cause = c;
		encode(&w, &loss);
		assert_line_checks(&loss, &w);
	}
	jw_free(&w);
}

/* The differential test: many generated records, each line judged by
 * check_json_line() (strict parse, exact values and bytes, json-c's line). */
static void
generated_records_match_jsonc(void **state)
{
	struct json_writer w = JSON_WRITER_INIT;
	unsigned seed = 20261124;
	const char *e = getenv("FLTMGR_FORMAT_RECORDS");
	long n = e && atol(e) > 0 ? atol(e) : 20000;
	long invalid = 0, long_names = 0;

	(void)state;
	for (long i = 0; i < n; i++) {
		struct minispy_record r;

		gen_record(&seed, &r);
		encode(&w, &r);
		assert_line_checks(&r, &w);
		invalid += strstr(w.buf, "_bytes\":") != NULL;
		long_names += w.len > 1000;
	}
	print_message("%ld records, %ld with a name that is not UTF-8, %ld lines over "
		      "1000 bytes; writer buffer %zu bytes\n",
		      n, invalid, long_names, w.cap);
	/* the generator reached both kinds of name, and long ones */
	assert_true(invalid > n / 10 && invalid < n);
	assert_true(long_names > 0);
	jw_free(&w);
}

/* The largest record (four 4095-byte names of control characters, each
 * six bytes escaped) grows the buffer; a short one after it is whole. */
static void
largest_record_then_a_short_one(void **state)
{
	struct json_writer w = JSON_WRITER_INIT;
	struct minispy_record r;

	(void)state;
	for (int i = 0; i < 4; i++) {
		memset(names[i], 0x01, MINISPY_STRING_MAX);
		names[i][MINISPY_STRING_MAX] = '\0';
	}
	r = event_with_path(names[0]);
	r.event.op = MINISPY_OP_RENAME;
	r.event.new_path = names[1];
	r.event.exe = names[2];
	r.event.comm = names[3];
	encode(&w, &r);
	assert_true(w.len > 4 * 6 * MINISPY_STRING_MAX);
	assert_line_checks(&r, &w);
	r = event_with_path("/x");
	encode(&w, &r);
	assert_true(w.len < 300);
	assert_line_checks(&r, &w);
	jw_free(&w);
}

/* The text format still escapes what a terminal would act on. */
static void
text_line_is_escaped(void **state)
{
	struct minispy_record r = event_with_path("/srv/a\nb\\c\x01\xff\xc3\xa9");
	struct json_writer w = JSON_WRITER_INIT;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	assert_int_equal(spy_format_record(f, &w, &r, false), 0);
	fclose(f);
	assert_non_null(strstr(text, " touch             24117 create      "
				     "/srv/a\\nb\\\\c\\x01\\xff\xc3\xa9\n"));
	assert_int_equal(strchr(text, '\n') - text, (long)len - 1);
	free(text);
	assert_null(w.buf); /* text needs no JSON buffer */
}

/* An unknown path is a placeholder no real path can be (they start with
 * '/'), with the inode when known; engine losses and notices are named. */
static void
text_line_unknown_path_and_losses(void **state)
{
	struct minispy_record r = event_with_path("");
	struct minispy_record loss = { .type = MINISPY_REC_LOSS };
	struct json_writer w = JSON_WRITER_INIT;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	r.event.op = MINISPY_OP_DELETE;
	r.event.flags = MINISPY_F_PATH_UNKNOWN;
	assert_int_equal(spy_format_record(f, &w, &r, false), 0);
	r = event_with_path("/srv/a");
	r.event.op = MINISPY_OP_RENAME;
	r.event.flags = MINISPY_F_PATH_UNKNOWN;
	assert_int_equal(spy_format_record(f, &w, &r, false), 0);
	loss.loss.cause = MINISPY_LOSS_ENGINE;
	loss.loss.count = 4;
	assert_int_equal(spy_format_record(f, &w, &loss, false), 0);
	loss.loss.cause = MINISPY_LOSS_QUEUE;
	loss.loss.first_seq = 7;
	loss.loss.last_seq = 10;
	loss.loss.notices = MINISPY_NOTICE_KERNEL;
	assert_int_equal(spy_format_record(f, &w, &loss, false), 0);
	fclose(f);
	assert_non_null(
		strstr(text, " delete      <unknown path> (dev 2049 ino 131090)\n"));
	assert_non_null(
		strstr(text, " rename      /srv/a \xe2\x86\x92 <unknown path>\n"));
	assert_non_null(strstr(text, " -- LOST 4 events: the engine read them but "
				     "could not deliver them\n"));
	assert_non_null(strstr(text,
			       " -- LOST 4 records (seq 7-10): this service's "
			       "queue was full; among them a loss notice: kernel\n"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(time_matches_strftime),
		cmocka_unit_test(hostile_names_make_bounded_lines),
		cmocka_unit_test(line_carries_schema_and_host),
		cmocka_unit_test(every_byte_escaped_exactly),
		cmocka_unit_test(utf8_judgement_matches_decoding),
		cmocka_unit_test(one_replacement_per_maximal_subpart),
		cmocka_unit_test(known_lines),
		cmocka_unit_test(generated_records_match_jsonc),
		cmocka_unit_test(largest_record_then_a_short_one),
		cmocka_unit_test(text_line_is_escaped),
		cmocka_unit_test(text_line_unknown_path_and_losses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
