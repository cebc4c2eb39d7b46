/* SPDX-License-Identifier: MIT */
/*
 * fuzz_fan_decode.c — libFuzzer target: any byte string as what read()
 * returned from a fanotify group. fan_decode_next() must walk it without
 * reading outside it, always make progress, and hand out names that are
 * NUL-terminated inside the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_fid(const struct fan_fid *f, const uint8_t *buf, size_t size)
{
	const uint8_t *h = f->handle;

	if (h < buf || h + 8 + f->handle_bytes > buf + size)
		abort();
	if (f->name && (const uint8_t *)f->name + strlen(f->name) >= buf + size)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	size_t off = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	for (;;) {
		struct fan_event ev;
		const char *why = NULL;
		size_t before = off;
		int r = fan_decode_next(buf, size, &off, &ev, &why);

		if (r < 0) {
			if (!why)
				abort();
			break;
		}
		if (r == 0)
			break;
		if (off <= before || off > size)
			abort(); /* no progress, or past the end */
		if (ev.has_fid)
			check_fid(&ev.fid, buf, size);
		if (ev.has_dfid_name)
			check_fid(&ev.dfid_name, buf, size);
		if (ev.has_old)
			check_fid(&ev.old_dfid_name, buf, size);
		if (ev.has_new)
			check_fid(&ev.new_dfid_name, buf, size);
	}
	free(buf);
	return 0;
}
