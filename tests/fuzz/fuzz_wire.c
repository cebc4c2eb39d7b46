/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wire.c — libFuzzer target: any byte string as a received port
 * frame, checked against every channel's expectations. wire_decode() must
 * reject or accept without reading past the buffer, and what it accepts
 * must be self-consistent. An accepted MESSAGE_BATCH is also checked
 * entry by entry (wire_check_batch()), and a batch that passes is walked
 * to its end, which must be the end of the payload.
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
		WIRE_BIT(WIRE_CONNECT),
		WIRE_BIT(WIRE_CONNECT_REPLY),
		WIRE_BIT(WIRE_MESSAGE),
		WIRE_BIT(WIRE_REPLY),
		WIRE_BIT(WIRE_REPLY_ACK),
		WIRE_BIT(WIRE_CALL),
		WIRE_BIT(WIRE_CALL_RESULT),
		WIRE_BIT(WIRE_MESSAGE_BATCH),
		~0u,
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
		if (h.type == WIRE_MESSAGE_BATCH) {
			const uint8_t *payload = buf + WIRE_HEADER_SIZE;
			size_t off = 0;

			why = NULL;
			if (wire_check_batch(&h, payload, &why) < 0) {
				if (!why)
					abort();
				continue;
			}
			for (uint32_t k = 0; k < h.aux2; k++) {
				struct wire_batch_entry e;

				wire_batch_entry_at(&h, payload, k, &off, &e);
				if (e.id != h.id + k ||
				    e.data + e.length > payload + h.length)
					abort();
			}
			if (off != h.length)
				abort();
		}
	}
	free(buf);
	return 0;
}
