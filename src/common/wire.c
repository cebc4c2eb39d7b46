/* SPDX-License-Identifier: MIT */
/*
 * wire.c — encode and strictly validate port frames (layout in wire.h).
 * Pure functions: no I/O, no allocation, safe to fuzz.
 */
#include "wire.h"

#include <errno.h>
#include <string.h>

#include <fltmgr/bytes.h>

void
wire_encode_header(uint8_t buf[WIRE_HEADER_SIZE], const struct wire_header *h)
{
	flt_put32(buf + 0, WIRE_MAGIC);
	flt_put16(buf + 4, WIRE_VERSION);
	flt_put16(buf + 6, h->type);
	flt_put32(buf + 8, h->flags);
	flt_put32(buf + 12, h->length);
	flt_put64(buf + 16, h->id);
	flt_put64(buf + 24, h->aux);
	flt_put32(buf + 32, h->aux2);
	flt_put32(buf + 36, (uint32_t)h->status);
}

const char *
wire_type_name(unsigned type)
{
	static const char *const names[WIRE_TYPE_MAX_] = {
		[WIRE_CONNECT] = "CONNECT",
		[WIRE_CONNECT_REPLY] = "CONNECT_REPLY",
		[WIRE_MESSAGE] = "MESSAGE",
		[WIRE_REPLY] = "REPLY",
		[WIRE_REPLY_ACK] = "REPLY_ACK",
		[WIRE_CALL] = "CALL",
		[WIRE_CALL_RESULT] = "CALL_RESULT",
		[WIRE_MESSAGE_BATCH] = "MESSAGE_BATCH",
	};
	if (type == 0 || type >= WIRE_TYPE_MAX_)
		return "unknown";
	return names[type];
}

/* Per-type rules beyond the common header checks. */
static int
check_type_rules(const struct wire_header *h, const char **ret_reason)
{
	switch (h->type) {
	case WIRE_CONNECT:
		if (h->length > WIRE_MAX_CONTEXT) {
			*ret_reason = "connection context too large";
			return -EMSGSIZE;
		}
		if (h->id || h->aux || h->aux2 || h->status)
			goto reserved;
		return 0;
	case WIRE_CONNECT_REPLY:
		if (h->length != 0) {
			*ret_reason = "CONNECT_REPLY with payload";
			return -EPROTO;
		}
		if (h->status > 0 || h->id || h->aux || h->aux2)
			goto reserved;
		return 0;
	case WIRE_MESSAGE:
		if (h->status || h->aux2 > WIRE_MAX_PAYLOAD)
			goto reserved;
		break;
	case WIRE_REPLY:
	case WIRE_CALL_RESULT:
		if (h->status > 0 || h->aux || h->aux2)
			goto reserved;
		break;
	case WIRE_REPLY_ACK:
		if (h->length != 0) {
			*ret_reason = "REPLY_ACK with payload";
			return -EPROTO;
		}
		if (h->aux || h->aux2)
			goto reserved;
		if (h->status != 0 && h->status != -ENOENT && h->status != -EMSGSIZE) {
			*ret_reason = "REPLY_ACK status not 0, -ENOENT or -EMSGSIZE";
			return -EPROTO;
		}
		break;
	case WIRE_CALL:
		if (h->status || h->aux || h->aux2 > WIRE_MAX_PAYLOAD)
			goto reserved;
		break;
	case WIRE_MESSAGE_BATCH:
		if (h->status || h->aux)
			goto reserved;
		if (h->aux2 == 0 || h->aux2 > h->length / WIRE_BATCH_ENTRY_SIZE) {
			*ret_reason = "batch count 0 or more entries than fit";
			return -EPROTO;
		}
		if (h->id > UINT64_MAX - (h->aux2 - 1)) {
			*ret_reason = "batch ids wrap around";
			return -EPROTO;
		}
		break;
	default:
		*ret_reason = "unknown frame type";
		return -EPROTO;
	}
	if (h->id == 0) {
		*ret_reason = "zero message id";
		return -EPROTO;
	}
	return 0;
reserved:
	*ret_reason = "reserved or out-of-range header field";
	return -EPROTO;
}

int
wire_decode(const uint8_t *buf, size_t size, int truncated, unsigned expect,
	    struct wire_header *ret_header, const char **ret_reason)
{
	struct wire_header h;
	int r;

	if (truncated || size > WIRE_MAX_FRAME) {
		*ret_reason = "frame larger than the protocol maximum";
		return -EMSGSIZE;
	}
	if (size < WIRE_HEADER_SIZE) {
		*ret_reason = "truncated header";
		return -EPROTO;
	}
	if (flt_get32(buf) != WIRE_MAGIC) {
		*ret_reason = "bad magic";
		return -EPROTO;
	}
	if (flt_get16(buf + 4) != WIRE_VERSION) {
		*ret_reason = "unsupported protocol version";
		return -EPROTO;
	}
	h.type = flt_get16(buf + 6);
	h.flags = flt_get32(buf + 8);
	if (h.flags & ~(h.type == WIRE_REPLY     ? WIRE_FLAG_NO_ACK
			: h.type == WIRE_CONNECT ? WIRE_FLAG_BATCHES
						 : 0u)) {
		*ret_reason = "unknown flags";
		return -EPROTO;
	}
	h.length = flt_get32(buf + 12);
	h.id = flt_get64(buf + 16);
	h.aux = flt_get64(buf + 24);
	h.aux2 = flt_get32(buf + 32);
	h.status = (int32_t)flt_get32(buf + 36);

	if (h.type == 0 || h.type >= WIRE_TYPE_MAX_) {
		*ret_reason = "unknown frame type";
		return -EPROTO;
	}
	if (!(expect & WIRE_BIT(h.type))) {
		*ret_reason = "frame type not allowed on this channel";
		return -EPROTO;
	}
	if (h.length > WIRE_MAX_PAYLOAD) {
		*ret_reason = "payload length above the protocol maximum";
		return -EMSGSIZE;
	}
	if ((size_t)h.length != size - WIRE_HEADER_SIZE) {
		*ret_reason = "lying length: header and record size disagree";
		return -EPROTO;
	}
	r = check_type_rules(&h, ret_reason);
	if (r < 0)
		return r;
	*ret_header = h;
	return 0;
}

void
wire_encode_batch_entry(uint8_t buf[WIRE_BATCH_ENTRY_SIZE], uint64_t sequence,
			uint32_t length)
{
	flt_put64(buf + 0, sequence);
	flt_put32(buf + 8, length);
	flt_put32(buf + 12, 0);
}

int
wire_check_batch(const struct wire_header *h, const uint8_t *payload,
		 const char **ret_reason)
{
	size_t off = 0;

	if (h->type != WIRE_MESSAGE_BATCH) {
		*ret_reason = "not a batch";
		return -EPROTO;
	}
	for (uint32_t i = 0; i < h->aux2; i++) {
		uint32_t len;

		if (h->length - off < WIRE_BATCH_ENTRY_SIZE) {
			*ret_reason = "batch entry header beyond the payload";
			return -EPROTO;
		}
		len = flt_get32(payload + off + 8);
		if (flt_get32(payload + off + 12) != 0) {
			*ret_reason = "reserved batch entry field";
			return -EPROTO;
		}
		off += WIRE_BATCH_ENTRY_SIZE;
		if (len > h->length - off) {
			*ret_reason = "batch entry longer than the payload";
			return -EPROTO;
		}
		off += len;
	}
	if (off != h->length) {
		*ret_reason = "bytes after the last batch entry";
		return -EPROTO;
	}
	return 0;
}

void
wire_batch_entry_at(const struct wire_header *h, const uint8_t *payload, uint32_t index,
		    size_t *offset, struct wire_batch_entry *ret)
{
	const uint8_t *p = payload + *offset;

	ret->id = h->id + index;
	ret->sequence = flt_get64(p);
	ret->length = flt_get32(p + 8);
	ret->data = p + WIRE_BATCH_ENTRY_SIZE;
	*offset += WIRE_BATCH_ENTRY_SIZE + ret->length;
}
