/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wire.c — libFuzzer target: any byte string as a received port
 * frame, checked against every channel's expectations. wire_decode() must
 * reject or accept without reading past the buffer, and what it accepts
 * must be self-consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned channels[] = {
		WIRE_BIT(WIRE_CONNECT),     WIRE_BIT(WIRE_CONNECT_REPLY),
		WIRE_BIT(WIRE_MESSAGE),     WIRE_BIT(WIRE_REPLY),
		WIRE_BIT(WIRE_REPLY_ACK),   WIRE_BIT(WIRE_CALL),
		WIRE_BIT(WIRE_CALL_RESULT), ~0u,
	};
	/* A private copy exactly `size` long, so ASan sees any overread. */
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++) {
		struct wire_header h;
		const char *why = NULL;
		int r = wire_decode(buf, size, 0, channels[i], &h, &why);

		if (r < 0) {
			if (!why)
				abort(); /* every rejection has a reason */
			continue;
		}
		if ((size_t)h.length + WIRE_HEADER_SIZE != size ||
		    h.length > WIRE_MAX_PAYLOAD || !(channels[i] & WIRE_BIT(h.type)))
			abort();
		{
			/* Re-encoding an accepted header gives the same bytes. */
			uint8_t again[WIRE_HEADER_SIZE];

			wire_encode_header(again, &h);
			if (memcmp(again, buf, WIRE_HEADER_SIZE))
				abort();
		}
	}
	free(buf);
	return 0;
}
