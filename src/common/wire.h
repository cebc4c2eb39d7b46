/* SPDX-License-Identifier: MIT */
/*
 * wire.h — the port protocol's frame format, shared by libfltmgr and
 * libfltuser. Owns nothing but encoding, decoding and validation; it never
 * touches sockets. docs/ports.md describes the same layout; keep them equal.
 *
 * A frame is one SOCK_SEQPACKET record: a 40-byte header followed by exactly
 * `length` payload bytes. Fields are fixed-width, host byte order (AF_UNIX
 * never leaves the machine), serialised field by field — never a raw struct.
 *
 *   off size field
 *     0    4 magic    "FLTP" (0x50544c46 read as a little-endian u32)
 *     4    2 version  1
 *     6    2 type     enum wire_type
 *     8    4 flags    0, except WIRE_FLAG_NO_ACK on REPLY and
 *                     WIRE_FLAG_BATCHES on CONNECT
 *    12    4 length   payload bytes that follow the header
 *    16    8 id       message / call id (0 for CONNECT, CONNECT_REPLY)
 *    24    8 aux      MESSAGE: sequence; else 0
 *    32    4 aux2     MESSAGE: reply capacity (0: no reply wanted);
 *                     CALL: output capacity; MESSAGE_BATCH: count; else 0
 *    36    4 status   signed; replies/acks/results; else 0
 *
 * A MESSAGE_BATCH carries `count` messages that want no reply, with the
 * ids id, id + 1, ..., id + count - 1. Its payload is `count` entries back
 * to back, each a 16-byte entry header and `length` bytes (no padding):
 *
 *   off size field
 *     0    8 sequence
 *     8    4 length   the message's payload bytes that follow
 *    12    4 reserved 0
 */
#ifndef FLTMGR_WIRE_H
#define FLTMGR_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC       0x50544c46u
#define WIRE_VERSION     1
#define WIRE_HEADER_SIZE 40
#define WIRE_MAX_PAYLOAD 65536
#define WIRE_MAX_CONTEXT 4096
#define WIRE_MAX_FRAME   (WIRE_HEADER_SIZE + WIRE_MAX_PAYLOAD)

/* On a REPLY: the service library answered by itself (message too big for
 * the caller's buffer, out of memory) and will not wait for an ack, so the
 * filter sends none. */
#define WIRE_FLAG_NO_ACK 0x1u
/* On a CONNECT: the service takes MESSAGE_BATCH frames. Without it the
 * filter side sends every message in a MESSAGE of its own. */
#define WIRE_FLAG_BATCHES 0x2u

#define WIRE_BATCH_ENTRY_SIZE 16
/* The largest message that fits in a batch entry. */
#define WIRE_BATCH_MAX_ENTRY (WIRE_MAX_PAYLOAD - WIRE_BATCH_ENTRY_SIZE)

/* Which channel a frame travels on and in which direction:
 *   M (msg socket):   CONNECT c->s, CONNECT_REPLY s->c, MESSAGE and
 *                     MESSAGE_BATCH s->c
 *   R (reply socket): REPLY c->s, REPLY_ACK s->c
 *   C (call socket):  CALL c->s, CALL_RESULT s->c
 * ("s" is the filter side, "c" the service side.) */
enum wire_type {
	WIRE_CONNECT = 1,       /* payload: context (<= WIRE_MAX_CONTEXT) */
	WIRE_CONNECT_REPLY = 2, /* status; on 0 carries 2 fds (R, C) */
	WIRE_MESSAGE = 3,       /* id; payload; aux = sequence; aux2 = reply
				   cap; may carry 1 fd */
	WIRE_REPLY = 4,         /* id; status <= 0; payload = reply */
	WIRE_REPLY_ACK = 5,     /* id; status 0 / -ENOENT / -EMSGSIZE */
	WIRE_CALL = 6,          /* id; aux2 = output capacity; payload = input */
	WIRE_CALL_RESULT = 7,   /* id; status; payload = output */
	WIRE_MESSAGE_BATCH = 8, /* id of the first; aux2 = count; payload =
				   entries; never a descriptor */
	WIRE_TYPE_MAX_ = 9,
};

struct wire_header {
	uint16_t type;
	uint32_t flags;
	uint32_t length;
	uint64_t id;
	uint64_t aux;
	uint32_t aux2;
	int32_t status;
};

/* Writes the 40-byte header for h into buf. */
void wire_encode_header(uint8_t buf[WIRE_HEADER_SIZE], const struct wire_header *h);

/*
 * Validates a received record of `size` bytes (its real size, as returned
 * with MSG_TRUNC; buf holds at least its first min(size, 40) bytes;
 * truncated: the record exceeded the receiver's buffer of WIRE_MAX_FRAME)
 * and decodes its header. Ids of MESSAGE, REPLY, REPLY_ACK, CALL and
 * CALL_RESULT are never 0. `expect` is a bitmask of acceptable
 * types (1u << type) for the channel and direction. On failure returns a
 * negative errno and sets *ret_reason to a static human-readable reason
 * ("bad magic", "lying length", ...).
 */
int wire_decode(const uint8_t *buf, size_t size, int truncated, unsigned expect,
		struct wire_header *ret_header, const char **ret_reason);

const char *wire_type_name(unsigned type);

/* One message of a MESSAGE_BATCH. */
struct wire_batch_entry {
	uint64_t id;
	uint64_t sequence;
	uint32_t length;
	const uint8_t *data; /* points into the payload */
};

/* Writes an entry header for a message of `length` bytes at buf. */
void wire_encode_batch_entry(uint8_t buf[WIRE_BATCH_ENTRY_SIZE], uint64_t sequence,
			     uint32_t length);

/*
 * Checks the payload of a decoded MESSAGE_BATCH h (h->length bytes at
 * payload): exactly h->aux2 entries, each within the payload, reserved
 * fields 0, nothing left over. Returns 0 or -EPROTO with *ret_reason set.
 * Once it has passed, wire_batch_entry_at() walks it without checks.
 */
int wire_check_batch(const struct wire_header *h, const uint8_t *payload,
		     const char **ret_reason);

/* Decodes the entry at *offset of a checked batch (entry number index,
 * counting from 0) and advances *offset past it. */
void wire_batch_entry_at(const struct wire_header *h, const uint8_t *payload,
			 uint32_t index, size_t *offset, struct wire_batch_entry *ret);

#define WIRE_BIT(t) (1u << (t))

#endif /* FLTMGR_WIRE_H */
