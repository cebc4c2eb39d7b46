/* SPDX-License-Identifier: MIT */
/*
 * fuzz_minispy_json.c — libFuzzer target: any bytes as a minispy record
 * (fixed fields from the first 52 bytes, then up to four NUL-separated
 * names: path, new_path, exe, comm) through the service's JSON encoder
 * (format.c, json_writer.c). The line must parse strictly with json-c,
 * give back every field and each name's exact bytes, and equal the
 * former json-c encoder's line (tests/minispy_format_check.c); anything
 * else aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "minispy_format_check.h"
#include "spy.h"

#define FIXED 52

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
get(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	memcpy(&v, p, n); /* host order, like the record itself */
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct json_writer w = JSON_WRITER_INIT; /* reused, as in the service */
	uint8_t fixed[FIXED] = { 0 };
	struct minispy_record r = { 0 };
	char *names, *name[4] = { NULL, NULL, NULL, NULL };
	size_t rest = size > FIXED ? size - FIXED : 0;
	const char *bad;

	memcpy(fixed, data, size < FIXED ? size : FIXED);
	/* the names, NUL-terminated; one more NUL ends the last */
	names = malloc(rest + 1);
	if (!names)
		return 0;
	if (rest)
		memcpy(names, data + FIXED, rest);
	names[rest] = '\0';
	for (size_t i = 0, k = 0; k < 4 && i < rest + 1; k++) {
		name[k] = names + i;
		i += strlen(names + i) + 1;
		if (i > rest + 1)
			break;
	}
	if (fixed[51] & 1) {
		r.type = MINISPY_REC_LOSS;
		r.loss.seq = get(fixed, 8);
		r.loss.time_ns = (int64_t)get(fixed + 8, 8);
		r.loss.count = get(fixed + 16, 8);
		r.loss.first_seq = get(fixed + 24, 8);
		r.loss.last_seq = get(fixed + 32, 8);
		r.loss.cause = (uint32_t)get(fixed + 40, 4);
	} else {
		r.type = MINISPY_REC_EVENT;
		r.event.seq = get(fixed, 8);
		r.event.event_seq = get(fixed + 8, 8);
		r.event.time_ns = (int64_t)get(fixed + 16, 8);
		r.event.dev = get(fixed + 24, 8);
		r.event.ino = get(fixed + 32, 8);
		r.event.pid = (int32_t)get(fixed + 40, 4);
		r.event.uid = (uint32_t)get(fixed + 44, 4);
		r.event.op = fixed[48];
		r.event.flags = fixed[49];
		/* fixed[50]: which names are absent (NULL) */
		r.event.path = name[0] ? name[0] : "";
		r.event.new_path = fixed[50] & 1 ? NULL : name[1];
		r.event.exe = fixed[50] & 2 ? NULL : name[2];
		r.event.comm = fixed[50] & 4 ? NULL : name[3];
	}
	if (spy_format_json(&w, &r) < 0)
		abort(); /* out of memory for one record: not expected here */
	bad = check_json_line(&r, w.buf, w.len);
	if (bad) {
		fprintf(stderr, "fuzz_minispy_json: %s\nline: %.*s\n", bad, (int)w.len,
			w.buf);
		abort();
	}
	free(names);
	return 0;
}
