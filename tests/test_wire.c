/* SPDX-License-Identifier: MIT */
/*
 * test_wire.c — unit tests of the port protocol's frame codec (wire.c).
 *
 * Pure functions only: every frame is built in memory with
 * wire_encode_header() (then poked where a test needs a bad field) and fed
 * to wire_decode(). One test per behaviour: the round trip of every frame
 * type, the byte layout documented in wire.h (and docs/ports.md, section
 * 3), and each rejection rule with its errno and a non-empty reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/wire.h"

#define ALL_TYPES                                                                   \
	(WIRE_BIT(WIRE_CONNECT) | WIRE_BIT(WIRE_CONNECT_REPLY) |                    \
	 WIRE_BIT(WIRE_MESSAGE) | WIRE_BIT(WIRE_REPLY) | WIRE_BIT(WIRE_REPLY_ACK) | \
	 WIRE_BIT(WIRE_CALL) | WIRE_BIT(WIRE_CALL_RESULT) |                         \
	 WIRE_BIT(WIRE_MESSAGE_BATCH))

/* Room for the largest legal record plus one byte. */
static uint8_t frame[WIRE_MAX_FRAME + 1];

/* A header that is valid for its type, with `length` payload bytes. */
static struct wire_header
valid_header(uint16_t type, uint32_t length)
{
	struct wire_header h = { .type = type, .length = length };

	switch (type) {
	case WIRE_CONNECT_REPLY:
		h.status = -EPERM;
		break;
	case WIRE_MESSAGE:
		h.id = 0x1122334455667788ull;
		h.aux = 0x99aabbccddeeff00ull;
		h.aux2 = WIRE_MAX_PAYLOAD;
		break;
	case WIRE_REPLY:
	case WIRE_CALL_RESULT:
		h.id = 42;
		h.status = -ENOSPC;
		break;
	case WIRE_REPLY_ACK:
		h.id = 43;
		h.status = -ENOENT;
		break;
	case WIRE_CALL:
		h.id = 44;
		h.aux2 = 1000;
		break;
	case WIRE_MESSAGE_BATCH: /* the header alone: one entry fits */
		h.id = 45;
		h.aux2 = 1;
		break;
	default:
		break;
	}
	return h;
}

/* Encodes h into `frame` followed by h->length payload bytes; returns the
 * record size. */
static size_t
build(const struct wire_header *h)
{
	wire_encode_header(frame, h);
	for (uint32_t i = 0; i < h->length && i < WIRE_MAX_PAYLOAD + 1; i++)
		frame[WIRE_HEADER_SIZE + i] = (uint8_t)(i * 7 + 1);
	return WIRE_HEADER_SIZE + h->length;
}

static void
put16(size_t off, uint16_t v)
{
	memcpy(frame + off, &v, sizeof(v));
}

static void
put32(size_t off, uint32_t v)
{
	memcpy(frame + off, &v, sizeof(v));
}

static void
put64(size_t off, uint64_t v)
{
	memcpy(frame + off, &v, sizeof(v));
}

/* Decodes `frame` and asserts the result is error `err` with a reason. */
static void
expect_reject_ex(size_t size, int truncated, unsigned expect, int err)
{
	struct wire_header h;
	const char *reason = NULL;

	memset(&h, 0xa5, sizeof(h));
	assert_int_equal(wire_decode(frame, size, truncated, expect, &h, &reason), err);
	assert_non_null(reason);
	assert_true(reason[0] != '\0');
}

static void
expect_reject(size_t size, int err)
{
	expect_reject_ex(size, 0, ALL_TYPES, err);
}

static void
expect_accept(size_t size)
{
	struct wire_header h;
	const char *reason = NULL;
	int r;

	r = wire_decode(frame, size, 0, ALL_TYPES, &h, &reason);
	if (r != 0)
		fail_msg("rejected (%d): %s", r, reason ? reason : "(no reason)");
}

static void
round_trip_every_type(void **state)
{
	(void)state;
	for (uint16_t t = WIRE_CONNECT; t < WIRE_TYPE_MAX_; t++) {
		uint32_t lens[] = { 0, 1, 100, WIRE_MAX_CONTEXT, WIRE_MAX_PAYLOAD };

		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			struct wire_header in, out;
			const char *reason = NULL;
			size_t size;
			int r;

			if ((t == WIRE_CONNECT_REPLY || t == WIRE_REPLY_ACK) &&
			    lens[i] != 0)
				continue;
			if (t == WIRE_CONNECT && lens[i] > WIRE_MAX_CONTEXT)
				continue;
			if (t == WIRE_MESSAGE_BATCH && lens[i] < WIRE_BATCH_ENTRY_SIZE)
				continue;
			in = valid_header(t, lens[i]);
			if (t == WIRE_REPLY && i % 2)
				in.flags = WIRE_FLAG_NO_ACK;
			if (t == WIRE_CONNECT && i % 2)
				in.flags = WIRE_FLAG_BATCHES;
			size = build(&in);
			memset(&out, 0, sizeof(out));
			r = wire_decode(frame, size, 0, WIRE_BIT(t), &out, &reason);
			if (r != 0)
				fail_msg("type %u length %u rejected (%d): %s", t,
					 lens[i], r, reason ? reason : "?");
			assert_int_equal(out.type, in.type);
			assert_int_equal(out.flags, in.flags);
			assert_int_equal(out.length, in.length);
			assert_true(out.id == in.id);
			assert_true(out.aux == in.aux);
			assert_int_equal(out.aux2, in.aux2);
			assert_int_equal(out.status, in.status);
		}
	}
}

static void
encoded_layout_matches_spec(void **state)
{
	struct wire_header h = {
		.type = WIRE_REPLY,
		.flags = WIRE_FLAG_NO_ACK,
		.length = 0x01020304,
		.id = 0x0a0b0c0d0e0f1011ull,
		.aux = 0x2122232425262728ull,
		.aux2 = 0x31323334,
		.status = -2,
	};
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;
	int32_t s32;

	(void)state;
	memset(frame, 0xee, WIRE_HEADER_SIZE);
	wire_encode_header(frame, &h);
	assert_memory_equal(frame, "FLTP", 4);
	memcpy(&v32, frame + 0, 4);
	assert_int_equal(v32, WIRE_MAGIC);
	memcpy(&v16, frame + 4, 2);
	assert_int_equal(v16, WIRE_VERSION);
	memcpy(&v16, frame + 6, 2);
	assert_int_equal(v16, WIRE_REPLY);
	memcpy(&v32, frame + 8, 4);
	assert_int_equal(v32, WIRE_FLAG_NO_ACK);
	memcpy(&v32, frame + 12, 4);
	assert_int_equal(v32, 0x01020304);
	memcpy(&v64, frame + 16, 8);
	assert_true(v64 == 0x0a0b0c0d0e0f1011ull);
	memcpy(&v64, frame + 24, 8);
	assert_true(v64 == 0x2122232425262728ull);
	memcpy(&v32, frame + 32, 4);
	assert_int_equal(v32, 0x31323334);
	memcpy(&s32, frame + 36, 4);
	assert_int_equal(s32, -2);
}

static void
type_names(void **state)
{
	(void)state;
	assert_string_equal(wire_type_name(WIRE_CONNECT), "CONNECT");
	assert_string_equal(wire_type_name(WIRE_CONNECT_REPLY), "CONNECT_REPLY");
	assert_string_equal(wire_type_name(WIRE_MESSAGE), "MESSAGE");
	assert_string_equal(wire_type_name(WIRE_REPLY), "REPLY");
	assert_string_equal(wire_type_name(WIRE_REPLY_ACK), "REPLY_ACK");
	assert_string_equal(wire_type_name(WIRE_CALL), "CALL");
	assert_string_equal(wire_type_name(WIRE_CALL_RESULT), "CALL_RESULT");
	assert_string_equal(wire_type_name(0), "unknown");
	assert_string_equal(wire_type_name(WIRE_TYPE_MAX_), "unknown");
	assert_string_equal(wire_type_name(0xffffu), "unknown");
}

static void
truncated_header_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_CONNECT, 0);

	(void)state;
	build(&h);
	for (size_t size = 0; size < WIRE_HEADER_SIZE; size++)
		expect_reject(size, -EPROTO);
	expect_accept(WIRE_HEADER_SIZE);
}

static void
bad_magic_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_MESSAGE, 8);
	size_t size;

	(void)state;
	size = build(&h);
	put32(0, 0x46544c50u); /* "PLTF": byte-swapped */
	expect_reject(size, -EPROTO);
	put32(0, 0);
	expect_reject(size, -EPROTO);
	put32(0, WIRE_MAGIC ^ 1u);
	expect_reject(size, -EPROTO);
}

static void
bad_version_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_CALL, 3);
	uint16_t versions[] = { 0, WIRE_VERSION + 1, 0x0100, 0xffff };
	size_t size;

	(void)state;
	size = build(&h);
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		put16(4, versions[i]);
		expect_reject(size, -EPROTO);
	}
}

static void
nonzero_flags_rejected(void **state)
{
	(void)state;
	for (uint16_t t = WIRE_CONNECT; t < WIRE_TYPE_MAX_; t++) {
		struct wire_header h = valid_header(t, 0);
		size_t size = build(&h);

		for (unsigned bit = 0; bit < 32; bit++) {
			/* NO_ACK only on REPLY, BATCHES only on CONNECT */
			if (t == WIRE_REPLY && (1u << bit) == WIRE_FLAG_NO_ACK)
				continue;
			if (t == WIRE_CONNECT && (1u << bit) == WIRE_FLAG_BATCHES)
				continue;
			put32(8, 1u << bit);
			expect_reject(size, -EPROTO);
		}
		put32(8, UINT32_MAX);
		expect_reject(size, -EPROTO);
	}
}

static void
no_ack_flag_only_on_reply(void **state)
{
	(void)state;
	for (uint16_t t = WIRE_CONNECT; t < WIRE_TYPE_MAX_; t++) {
		struct wire_header h = valid_header(t, 0);
		size_t size;

		h.flags = WIRE_FLAG_NO_ACK;
		size = build(&h);
		if (t == WIRE_REPLY)
			expect_accept(size);
		else
			expect_reject(size, -EPROTO);
	}
	{
		struct wire_header h = valid_header(WIRE_REPLY, 0);
		size_t size;

		h.flags = WIRE_FLAG_NO_ACK | 0x4u;
		size = build(&h);
		expect_reject(size, -EPROTO);
	}
}

static void
type_zero_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_CONNECT, 0);
	size_t size;

	(void)state;
	size = build(&h);
	put16(6, 0);
	expect_reject_ex(size, 0, ~0u, -EPROTO);
}

static void
type_at_or_above_max_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_CONNECT, 0);
	uint16_t types[] = { WIRE_TYPE_MAX_, WIRE_TYPE_MAX_ + 1, 31, 32, 0xffff };
	size_t size;

	(void)state;
	size = build(&h);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		put16(6, types[i]);
		/* even a mask claiming to accept everything */
		expect_reject_ex(size, 0, ~0u, -EPROTO);
	}
}

static void
type_not_in_expect_mask_rejected(void **state)
{
	(void)state;
	for (uint16_t t = WIRE_CONNECT; t < WIRE_TYPE_MAX_; t++) {
		struct wire_header h = valid_header(t, 0);
		size_t size = build(&h);

		expect_reject_ex(size, 0, ALL_TYPES & ~WIRE_BIT(t), -EPROTO);
		expect_reject_ex(size, 0, 0, -EPROTO);
	}
	/* The channel masks of wire.h: a REPLY on M, a CALL on R. */
	{
		struct wire_header h = valid_header(WIRE_REPLY, 0);
		size_t size = build(&h);

		expect_reject_ex(size, 0, WIRE_BIT(WIRE_CONNECT), -EPROTO);
	}
	{
		struct wire_header h = valid_header(WIRE_CALL, 0);
		size_t size = build(&h);

		expect_reject_ex(size, 0, WIRE_BIT(WIRE_REPLY), -EPROTO);
	}
}

static void
length_above_max_payload_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_MESSAGE, 0);

	(void)state;
	build(&h);
	put32(12, WIRE_MAX_PAYLOAD + 1);
	expect_reject(WIRE_HEADER_SIZE, -EMSGSIZE);
	put32(12, UINT32_MAX);
	expect_reject(WIRE_HEADER_SIZE, -EMSGSIZE);
}

static void
length_larger_than_record_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_MESSAGE, 100);
	size_t size;

	(void)state;
	size = build(&h);
	put32(12, 101);
	expect_reject(size, -EPROTO);
	put32(12, WIRE_MAX_PAYLOAD);
	expect_reject(size, -EPROTO);
}

static void
length_smaller_than_record_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_MESSAGE, 100);
	size_t size;

	(void)state;
	size = build(&h);
	put32(12, 99);
	expect_reject(size, -EPROTO);
	put32(12, 0);
	expect_reject(size, -EPROTO);
}

static void
truncated_flag_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_MESSAGE, 16);
	size_t size;

	(void)state;
	size = build(&h);
	expect_accept(size);
	expect_reject_ex(size, 1, ALL_TYPES, -EMSGSIZE);
	/* a truncated record is rejected even when it is only a header */
	h = valid_header(WIRE_CALL, 0);
	size = build(&h);
	expect_reject_ex(size, 1, ALL_TYPES, -EMSGSIZE);
	/* with MSG_TRUNC the size is the record's real one, beyond the
	 * buffer; only the header was received */
	h = valid_header(WIRE_MESSAGE, 0);
	build(&h);
	expect_reject_ex(WIRE_MAX_FRAME + 1000, 1, ALL_TYPES, -EMSGSIZE);
}

static void
record_above_max_frame_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_MESSAGE, WIRE_MAX_PAYLOAD);
	size_t size;

	(void)state;
	size = build(&h);
	assert_int_equal(size, WIRE_MAX_FRAME);
	expect_accept(size);
	put32(12, WIRE_MAX_PAYLOAD + 1);
	frame[WIRE_MAX_FRAME] = 0;
	expect_reject(WIRE_MAX_FRAME + 1, -EMSGSIZE);
}

static void
connect_context_too_large_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_CONNECT, WIRE_MAX_CONTEXT);
	size_t size;

	(void)state;
	size = build(&h);
	expect_accept(size);
	h = valid_header(WIRE_CONNECT, WIRE_MAX_CONTEXT + 1);
	size = build(&h);
	expect_reject(size, -EMSGSIZE);
	h = valid_header(WIRE_CONNECT, WIRE_MAX_PAYLOAD);
	size = build(&h);
	expect_reject(size, -EMSGSIZE);
}

static void
connect_reply_with_payload_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_CONNECT_REPLY, 1);
	size_t size;

	(void)state;
	size = build(&h);
	expect_reject(size, -EPROTO);
	h = valid_header(WIRE_CONNECT_REPLY, 64);
	size = build(&h);
	expect_reject(size, -EPROTO);
}

static void
reply_ack_with_payload_rejected(void **state)
{
	struct wire_header h = valid_header(WIRE_REPLY_ACK, 1);
	size_t size;

	(void)state;
	size = build(&h);
	expect_reject(size, -EPROTO);
	h = valid_header(WIRE_REPLY_ACK, 64);
	size = build(&h);
	expect_reject(size, -EPROTO);
}

static void
positive_status_rejected(void **state)
{
	/* Types whose status is "0 or a negative errno". */
	uint16_t types[] = { WIRE_REPLY, WIRE_CALL_RESULT, WIRE_CONNECT_REPLY };

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct wire_header h = valid_header(types[i], 0);
		size_t size;

		h.status = 0;
		size = build(&h);
		expect_accept(size);
		h.status = -EIO;
		size = build(&h);
		expect_accept(size);
		h.status = 1;
		size = build(&h);
		expect_reject(size, -EPROTO);
		h.status = INT32_MAX;
		size = build(&h);
		expect_reject(size, -EPROTO);
	}
}

static void
reply_ack_status_restricted(void **state)
{
	const int32_t ok[] = { 0, -ENOENT, -EMSGSIZE };
	const int32_t bad[] = { 1, INT32_MAX, -EIO, -EPROTO, -ENOTCONN, INT32_MIN };

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct wire_header h = valid_header(WIRE_REPLY_ACK, 0);
		size_t size;

		h.status = ok[i];
		size = build(&h);
		expect_accept(size);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wire_header h = valid_header(WIRE_REPLY_ACK, 0);
		size_t size;

		h.status = bad[i];
		size = build(&h);
		expect_reject(size, -EPROTO);
	}
}

static void
zero_id_rejected(void **state)
{
	const uint16_t types[] = { WIRE_MESSAGE, WIRE_REPLY, WIRE_REPLY_ACK, WIRE_CALL,
				   WIRE_CALL_RESULT };

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct wire_header h = valid_header(types[i], 0);
		size_t size;

		size = build(&h);
		expect_accept(size);
		h.id = 0;
		size = build(&h);
		expect_reject(size, -EPROTO);
	}
}

/* One header field set to a nonzero / out-of-range value. */
struct field_case {
	uint16_t type;
	size_t off;
	int width;
	uint64_t value;
};

static void
reserved_fields_nonzero_rejected(void **state)
{
	static const struct field_case cases[] = {
		{ WIRE_CONNECT, 16, 8, 1 },            /* id */
		{ WIRE_CONNECT, 24, 8, 1 },            /* aux */
		{ WIRE_CONNECT, 32, 4, 1 },            /* aux2 */
		{ WIRE_CONNECT, 36, 4, (uint32_t)-1 }, /* status */
		{ WIRE_CONNECT_REPLY, 16, 8, 1 },
		{ WIRE_CONNECT_REPLY, 24, 8, 1 },
		{ WIRE_CONNECT_REPLY, 32, 4, WIRE_MAX_PAYLOAD },
		{ WIRE_MESSAGE, 36, 4, 1 },
		{ WIRE_MESSAGE, 36, 4, (uint32_t)-1 },
		{ WIRE_REPLY, 24, 8, 1 },
		{ WIRE_REPLY, 32, 4, 1 },
		{ WIRE_REPLY_ACK, 24, 8, 1 },
		{ WIRE_REPLY_ACK, 32, 4, 1 },
		{ WIRE_CALL, 24, 8, 1 },
		{ WIRE_CALL, 36, 4, 1 },
		{ WIRE_CALL, 36, 4, (uint32_t)-1 },
		{ WIRE_CALL_RESULT, 24, 8, 1 },
		{ WIRE_CALL_RESULT, 32, 4, 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct field_case *c = &cases[i];
		struct wire_header h = valid_header(c->type, 0);
		size_t size = build(&h);

		expect_accept(size);
		if (c->width == 8)
			put64(c->off, c->value);
		else
			put32(c->off, (uint32_t)c->value);
		expect_reject(size, -EPROTO);
	}
}

static void
capacity_above_max_payload_rejected(void **state)
{
	uint16_t types[] = { WIRE_MESSAGE, WIRE_CALL };

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct wire_header h = valid_header(types[i], 0);
		size_t size;

		h.aux2 = WIRE_MAX_PAYLOAD;
		size = build(&h);
		expect_accept(size);
		h.aux2 = WIRE_MAX_PAYLOAD + 1;
		size = build(&h);
		expect_reject(size, -EPROTO);
	}
}

/* A batch of three entries ("ab", "", "cde") with sequences 7, 8, 9;
 * returns the record size. */
static size_t
build_batch(uint64_t id)
{
	static const char *const data[] = { "ab", "", "cde" };
	struct wire_header h = { .type = WIRE_MESSAGE_BATCH, .id = id, .aux2 = 3 };
	size_t off = WIRE_HEADER_SIZE;

	for (int i = 0; i < 3; i++) {
		uint32_t len = (uint32_t)strlen(data[i]);

		wire_encode_batch_entry(frame + off, 7 + (uint64_t)i, len);
		memcpy(frame + off + WIRE_BATCH_ENTRY_SIZE, data[i], len);
		off += WIRE_BATCH_ENTRY_SIZE + len;
	}
	h.length = (uint32_t)(off - WIRE_HEADER_SIZE);
	wire_encode_header(frame, &h);
	return off;
}

static int
check_batch(size_t size, const char **reason)
{
	struct wire_header h;
	int r = wire_decode(frame, size, 0, ALL_TYPES, &h, reason);

	return r < 0 ? r : wire_check_batch(&h, frame + WIRE_HEADER_SIZE, reason);
}

static void
batch_entries_walk_in_order(void **state)
{
	static const char *const data[] = { "ab", "", "cde" };
	size_t size = build_batch(100), off = 0;
	const char *reason = NULL;
	struct wire_header h;

	(void)state;
	assert_int_equal(size, WIRE_HEADER_SIZE + 3 * WIRE_BATCH_ENTRY_SIZE + 5);
	assert_int_equal(
		wire_decode(frame, size, 0, WIRE_BIT(WIRE_MESSAGE_BATCH), &h, &reason),
		0);
	assert_int_equal(wire_check_batch(&h, frame + WIRE_HEADER_SIZE, &reason), 0);
	for (uint32_t i = 0; i < 3; i++) {
		struct wire_batch_entry e;

		wire_batch_entry_at(&h, frame + WIRE_HEADER_SIZE, i, &off, &e);
		assert_true(e.id == 100 + i);
		assert_true(e.sequence == 7 + i);
		assert_int_equal(e.length, strlen(data[i]));
		assert_memory_equal(e.data, data[i], e.length);
	}
	assert_int_equal(off, h.length);
	/* Only where the channel allows it: it is not a MESSAGE. */
	expect_reject_ex(size, 0, WIRE_BIT(WIRE_MESSAGE), -EPROTO);
	assert_string_equal(wire_type_name(WIRE_MESSAGE_BATCH), "MESSAGE_BATCH");
}

/* The entry header's bytes are where wire.h and docs/ports.md put them. */
static void
batch_entry_layout_matches_spec(void **state)
{
	uint8_t e[WIRE_BATCH_ENTRY_SIZE];
	uint64_t seq = 0x0102030405060708ull, seq_out;
	uint32_t len_out, reserved;

	(void)state;
	memset(e, 0xa5, sizeof(e));
	wire_encode_batch_entry(e, seq, 0x11223344u);
	memcpy(&seq_out, e + 0, 8);
	memcpy(&len_out, e + 8, 4);
	memcpy(&reserved, e + 12, 4);
	assert_true(seq_out == seq);
	assert_int_equal(len_out, 0x11223344u);
	assert_int_equal(reserved, 0);
	assert_int_equal(WIRE_BATCH_ENTRY_SIZE, 16);
	assert_int_equal(WIRE_BATCH_MAX_ENTRY, WIRE_MAX_PAYLOAD - 16);
}

static void
batch_header_rules(void **state)
{
	size_t size;

	(void)state;
	size = build_batch(100);
	put32(32, 0); /* count 0 */
	expect_reject(size, -EPROTO);
	put32(32, 5); /* more entries than 53 bytes can hold (3) */
	expect_reject(size, -EPROTO);
	size = build_batch(UINT64_MAX - 1); /* ids ...fe, ...ff, 0 */
	expect_reject(size, -EPROTO);
	size = build_batch(UINT64_MAX - 2); /* the last id is UINT64_MAX */
	expect_accept(size);
	size = build_batch(0);
	expect_reject(size, -EPROTO);
	size = build_batch(1);
	put64(24, 1); /* aux */
	expect_reject(size, -EPROTO);
	size = build_batch(1);
	put32(36, (uint32_t)-1); /* status */
	expect_reject(size, -EPROTO);
}

static void
batch_entries_checked(void **state)
{
	const char *reason;
	size_t size;

	(void)state;
	/* count 2 of 3: bytes after the last entry */
	size = build_batch(1);
	put32(32, 2);
	reason = NULL;
	assert_int_equal(check_batch(size, &reason), -EPROTO);
	assert_non_null(reason);
	/* an entry longer than what is left */
	size = build_batch(1);
	put32(WIRE_HEADER_SIZE + WIRE_BATCH_ENTRY_SIZE + 2 + 8, 1000);
	reason = NULL;
	assert_int_equal(check_batch(size, &reason), -EPROTO);
	assert_non_null(reason);
	/* a reserved entry field */
	size = build_batch(1);
	put32(WIRE_HEADER_SIZE + 12, 1);
	reason = NULL;
	assert_int_equal(check_batch(size, &reason), -EPROTO);
	assert_non_null(reason);
	/* the last entry's header cut short by a shorter record */
	size = build_batch(1);
	put32(WIRE_HEADER_SIZE + 8, 2 + 16 + 3 + 5); /* swallows the rest */
	reason = NULL;
	assert_int_equal(check_batch(size, &reason), -EPROTO);
	assert_non_null(reason);
	/* intact, it passes */
	size = build_batch(1);
	assert_int_equal(check_batch(size, &reason), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_every_type),
		cmocka_unit_test(encoded_layout_matches_spec),
		cmocka_unit_test(type_names),
		cmocka_unit_test(truncated_header_rejected),
		cmocka_unit_test(bad_magic_rejected),
		cmocka_unit_test(bad_version_rejected),
		cmocka_unit_test(nonzero_flags_rejected),
		cmocka_unit_test(no_ack_flag_only_on_reply),
		cmocka_unit_test(type_zero_rejected),
		cmocka_unit_test(type_at_or_above_max_rejected),
		cmocka_unit_test(type_not_in_expect_mask_rejected),
		cmocka_unit_test(length_above_max_payload_rejected),
		cmocka_unit_test(length_larger_than_record_rejected),
		cmocka_unit_test(length_smaller_than_record_rejected),
		cmocka_unit_test(truncated_flag_rejected),
		cmocka_unit_test(record_above_max_frame_rejected),
		cmocka_unit_test(connect_context_too_large_rejected),
		cmocka_unit_test(connect_reply_with_payload_rejected),
		cmocka_unit_test(reply_ack_with_payload_rejected),
		cmocka_unit_test(positive_status_rejected),
		cmocka_unit_test(reply_ack_status_restricted),
		cmocka_unit_test(zero_id_rejected),
		cmocka_unit_test(reserved_fields_nonzero_rejected),
		cmocka_unit_test(capacity_above_max_payload_rejected),
		cmocka_unit_test(batch_entries_walk_in_order),
		cmocka_unit_test(batch_entry_layout_matches_spec),
		cmocka_unit_test(batch_header_rules),
		cmocka_unit_test(batch_entries_checked),
	};

	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
