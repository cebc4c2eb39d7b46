/* SPDX-License-Identifier: MIT */
/*
 * minispy_record.h — what the minispy filter sends on its port: one record
 * per message, a versioned fixed layout followed by variable strings; and
 * the one call a service can make to it (counters). Shared by the filter
 * (filters/minispy/record.c encodes) and its services, which need nothing
 * but this header and libfltuser: minispy_record_decode() below checks a
 * message and points into it.
 *
 * Encoding rules. Every field has a fixed offset and width and is written
 * field by field (never a struct copy), in host byte order: AF_UNIX never
 * leaves the machine. A record is exactly one port message; its `size`
 * field must equal the message length. Unknown versions are refused, not
 * guessed at: any layout change bumps MINISPY_RECORD_VERSION.
 *
 * Versions. Each record carries the lowest version that can express it,
 * so a service built for an older version keeps reading everything it
 * can and refuses only what it could not understand. Version 2 added, and
 * is used only by records that need them: EVENT records whose path is
 * unknown (MINISPY_F_PATH_UNKNOWN), the ENGINE loss cause, and the
 * `notices` field of LOSS records (nonzero). Everything else is written
 * as version 1, byte for byte as before. minispy_record_decode() reads
 * versions 1 and 2.
 *
 * Common header (all records), 16 bytes:
 *
 *   off size field
 *     0    4 magic      MINISPY_RECORD_MAGIC
 *     4    2 version    1 or 2 (see "Versions")
 *     6    2 type       MINISPY_REC_EVENT or MINISPY_REC_LOSS
 *     8    4 size       bytes of the whole record, this header included
 *    12    4 reserved   0
 *
 * EVENT (type 1): 80 fixed bytes, then the strings.
 *
 *    16    8 seq        the filter's record number: 1, 2, 3, ... over all of
 *                       this filter's records (events and KERNEL/ENGINE
 *                       loss notices), so on one connection every gap is covered
 *                       by a LOSS record (see "Sequence numbers" below)
 *    24    8 event_seq  the engine's global event number (shared by every
 *                       filter; gaps there are normal). For correlation.
 *    32    8 time_ns    CLOCK_REALTIME of the event, ns since the epoch (i64)
 *    40    8 dev        st_dev of the file
 *    48    8 ino        st_ino (0 when unknown)
 *    56    4 pid        the process that did it (thread-group id)
 *    60    4 uid        its real uid, or MINISPY_UID_UNKNOWN
 *    64    2 op         enum minispy_op
 *    66    2 flags      MINISPY_F_*
 *    68    2 path_len       bytes of path (no NUL); 0 only when the path
 *                           is unknown (MINISPY_F_PATH_UNKNOWN, version 2)
 *    70    2 new_path_len   bytes of new_path (only RENAME has one; 0 with
 *                           MINISPY_F_PATH_UNKNOWN when it is unknown)
 *    72    2 exe_len        bytes of exe (0: unknown)
 *    74    2 comm_len       bytes of comm (0: unknown)
 *    76    4 reserved   0
 *    80      path NUL new_path NUL exe NUL comm NUL
 *
 *   Each string is followed by one NUL byte even when it is empty, so
 *   size == 80 + path_len + new_path_len + exe_len + comm_len + 4 exactly,
 *   and a decoded string can be used as a C string in place. No string
 *   contains a NUL of its own. Strings longer than MINISPY_STRING_MAX are
 *   cut to that length and MINISPY_F_TRUNCATED is set. Paths are bytes as
 *   the kernel gave them: not necessarily UTF-8, and may contain newlines.
 *
 * An event whose path could not be resolved (the engine read it after
 * the file, or its directory, was gone; FLT_EVENT_PATH_UNKNOWN) is still
 * reported, as version 2 with MINISPY_F_PATH_UNKNOWN: its unknown path
 * (for a RENAME, path, new_path or both) is empty, and op, pid, process,
 * dev and ino (0 if unknown too) are as usual.
 *
 * LOSS (type 2): 64 bytes, no strings. "count records are missing here."
 *
 *    16    8 seq        0 for QUEUE, BACKLOG and DEPARTED losses (they belong
 *                       to one connection, not to the record stream); for a
 *                       KERNEL or ENGINE loss notice, its own place in the
 *                       stream (like an event)
 *    24    8 time_ns    CLOCK_REALTIME when the loss record was made (a
 *                       notice: when the engine saw the loss)
 *    32    8 count      records lost. KERNEL: events the kernel dropped, 0 if
 *                       the kernel did not say (it never does today).
 *                       ENGINE: events lost, 0 if not known
 *    40    8 first_seq  QUEUE/BACKLOG/DEPARTED: seq of the first and last
 *    48    8 last_seq   record lost (inclusive). KERNEL/ENGINE: 0 and 0
 *                       (lost events never got a number)
 *    56    4 cause      enum minispy_loss_cause
 *    60    4 notices    QUEUE/BACKLOG/DEPARTED: MINISPY_NOTICE_* of the loss
 *                       notices among the records lost (a KERNEL notice
 *                       dropped from a full queue is not forgotten: the
 *                       run says so); 0 for none and in version 1
 *
 * Sequence numbers. On one connection, the seq of EVENT records (and
 * KERNEL losses) strictly increases. Between two consecutive ones, every
 * missing number is accounted for by exactly one QUEUE or BACKLOG loss
 * record that arrives between them; its [first_seq, last_seq] covers them
 * and count == last_seq - first_seq + 1. Records from before a connection
 * existed are not "missing" for it (only the service that finds no other
 * one connected takes over the backlog; see docs/minispy-filter.md).
 * The port message header's sequence (filter_message_header.sequence) is
 * the record's seq; for QUEUE/BACKLOG losses, their last_seq.
 *
 * The stats call: filter_send_message(port, in, 8, out, cap, &len) with in
 * = { u32 MINISPY_RECORD_MAGIC, u32 MINISPY_CMD_STATS } returns
 * struct minispy_stats (only uint64_t fields, so no padding); its first
 * field is the number of bytes the filter filled in, so an older service
 * reading a newer filter (or the reverse) sees which fields are there.
 *
 * Confirmation (optional; see docs/minispy-filter.md "Confirmation"). A
 * service that connects with the 8-byte context { u32 MINISPY_RECORD_MAGIC,
 * u32 MINISPY_CONNECT_CONFIRM } promises to confirm what it has written
 * out: filter_send_message(port, in, 16, NULL, NULL, ...) with in = { u32
 * MAGIC, u32 MINISPY_CMD_CONFIRM, u64 n }, n = messages of this connection
 * handled so far (records and loss records, in the order received; never
 * less than before). The filter keeps each sent message until it is
 * confirmed, at most queue_size of them (then it waits, and its queue
 * drops and reports as usual). If the service dies, what it had not
 * confirmed is handed on exactly like what it had not been sent: back to
 * the backlog, or reported as a DEPARTED loss. So a SIGKILL loses nothing
 * silently; the next service may see again what the dead one printed
 * after its last confirmation (the same seq: duplicates are recognisable).
 */
#ifndef MINISPY_RECORD_H
#define MINISPY_RECORD_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <fltmgr/bytes.h>

#define MINISPY_RECORD_MAGIC       0x5950534du /* "MSPY" on little-endian */
#define MINISPY_RECORD_VERSION     2           /* the newest this header reads */
#define MINISPY_RECORD_VERSION_MIN 1
#define MINISPY_HEADER_SIZE        16
#define MINISPY_EVENT_FIXED        80
#define MINISPY_LOSS_SIZE          64
#define MINISPY_STRING_MAX         4095
/* The largest record: fits a port message (FLT_PORT_MAX_MESSAGE). */
#define MINISPY_RECORD_MAX (MINISPY_EVENT_FIXED + 4 * (MINISPY_STRING_MAX + 1))

#define MINISPY_UID_UNKNOWN 0xffffffffu

enum minispy_record_type {
	MINISPY_REC_EVENT = 1,
	MINISPY_REC_LOSS = 2,
};

/* Operations: the same order as the engine's enum flt_operation. */
enum minispy_op {
	MINISPY_OP_OPEN = 0,
	MINISPY_OP_EXEC = 1,
	MINISPY_OP_READ = 2,
	MINISPY_OP_WRITE = 3,
	MINISPY_OP_CLOSE_WRITE = 4,
	MINISPY_OP_CLOSE = 5, /* closed without having been written */
	MINISPY_OP_ATTRIB = 6,
	MINISPY_OP_CREATE = 7,
	MINISPY_OP_DELETE = 8,
	MINISPY_OP_RENAME = 9, /* path = old, new_path = new */
	MINISPY_OP_COUNT_ = 10,
};

/* Event flags. VERIFIED: uid, exe and comm are of the very process that
 * did it (checked through a pidfd); without it they are unknown. */
#define MINISPY_F_DIR       0x1u /* the object is a directory */
#define MINISPY_F_VERIFIED  0x2u
#define MINISPY_F_TRUNCATED 0x4u /* a string was cut to MINISPY_STRING_MAX */
/* Version 2: path (RENAME: path and/or new_path) unknown, left empty. */
#define MINISPY_F_PATH_UNKNOWN 0x8u

enum minispy_loss_cause {
	MINISPY_LOSS_QUEUE = 1,    /* this connection's queue was full */
	MINISPY_LOSS_BACKLOG = 2,  /* the backlog (no service connected) was
				     full: its oldest records were dropped */
	MINISPY_LOSS_KERNEL = 3,   /* the kernel's event queue overflowed */
	MINISPY_LOSS_DEPARTED = 4, /* held only by a service that
				      disconnected without getting (or
				      confirming) them, while this one was
				      connected but had not existed yet when
				      they were made: may come at any point
				      of the stream, with seqs older than
				      this connection's first record */
	MINISPY_LOSS_ENGINE = 5,   /* version 2: events the engine read but
				      could not deliver (an undecodable or
				      failed read, or events of a file
				      system no longer watched) */
};

/* LOSS `notices`: kinds of loss notice inside a lost run. */
#define MINISPY_NOTICE_KERNEL 0x1u
#define MINISPY_NOTICE_ENGINE 0x2u

/* KERNEL and ENGINE losses are notices with a seq of their own, in the
 * record stream; the others stand for a run of lost seqs. */
static inline int
minispy_loss_is_notice(uint32_t cause)
{
	return cause == MINISPY_LOSS_KERNEL || cause == MINISPY_LOSS_ENGINE;
}

struct minispy_event {
	uint64_t seq;
	uint64_t event_seq;
	int64_t time_ns;
	uint64_t dev;
	uint64_t ino;
	int32_t pid;
	uint32_t uid;
	uint16_t op; /* enum minispy_op */
	uint16_t flags;
	/* Point into the decoded buffer; NUL-terminated. */
	const char *path;     /* "" when unknown (MINISPY_F_PATH_UNKNOWN) */
	const char *new_path; /* NULL unless RENAME (or unknown) */
	const char *exe;      /* NULL if unknown */
	const char *comm;     /* NULL if unknown */
};

struct minispy_loss {
	uint64_t seq;
	int64_t time_ns;
	uint64_t count;
	uint64_t first_seq;
	uint64_t last_seq;
	uint32_t cause;   /* enum minispy_loss_cause */
	uint32_t notices; /* MINISPY_NOTICE_* within a QUEUE/BACKLOG/DEPARTED run */
};

struct minispy_record {
	uint16_t type; /* enum minispy_record_type */
	union {
		struct minispy_event event;
		struct minispy_loss loss;
	};
};

/* The calls a service can make, and the connect context. */
#define MINISPY_CMD_STATS       1
#define MINISPY_CMD_CONFIRM     2
#define MINISPY_CONNECT_CONFIRM 1u

struct minispy_stats {
	uint64_t size; /* bytes of this struct the filter filled in */
	/* filter-wide, since it was loaded */
	uint64_t records;           /* records made (= the last seq) */
	uint64_t queued;            /* record copies put in connection queues */
	uint64_t sent;              /* record copies sent (loss records aside) */
	uint64_t dropped;           /* copies dropped: a connection's queue full */
	uint64_t loss_records_sent; /* QUEUE/BACKLOG loss records sent */
	uint64_t discarded;         /* copies unsent when their connection
				       ended while others were connected */
	uint64_t backlog_queued;    /* records kept while no service was
				       connected (returned ones included) */
	uint64_t backlog_dropped;   /* of those, dropped (backlog full) */
	uint64_t backlog_delivered; /* records handed to a connecting service */
	uint64_t returned;          /* unsent records of the last service to
				       disconnect, put back into the backlog */
	uint64_t kernel_overflows;  /* kernel queue overflows seen */
	uint64_t connections;       /* accepted so far */
	uint64_t connections_now;
	uint64_t backlog_now; /* records in the backlog now */
	/* the calling connection */
	uint64_t conn_queued;
	uint64_t conn_sent;
	uint64_t conn_dropped;
	uint64_t conn_loss_records_sent;
	uint64_t conn_pending; /* records and loss records still to send */
	/* confirmation (filter-wide), then the calling connection */
	uint64_t confirmed;   /* records confirmed by confirming services */
	uint64_t unconfirmed; /* records sent to a confirming service that
				 left without confirming them (handed on) */
	uint64_t departed;    /* records reported in DEPARTED losses */
	uint64_t bad_calls;   /* refused calls (malformed, out of range) */
	uint64_t conn_confirmed;
	uint64_t conn_unconfirmed; /* sent, not confirmed yet */
	/* filter-wide, added later */
	uint64_t unknown_paths; /* event records made with MINISPY_F_PATH_UNKNOWN */
	uint64_t engine_losses; /* ENGINE loss notices made */
};

static inline const char *
minispy_op_name(uint16_t op)
{
	static const char *const names[MINISPY_OP_COUNT_] = {
		"open",  "exec",   "read",   "write",  "close_write",
		"close", "attrib", "create", "delete", "rename",
	};

	return op < MINISPY_OP_COUNT_ ? names[op] : "unknown";
}

/* One string of len bytes at *off, NUL-terminated, no NUL inside. */
static inline int
minispy_string_(const uint8_t *b, size_t size, size_t *off, uint16_t len,
		const char **ret)
{
	if (len > MINISPY_STRING_MAX || *off + len + 1 > size || b[*off + len] != '\0' ||
	    memchr(b + *off, '\0', len))
		return -EBADMSG;
	*ret = (const char *)(b + *off);
	*off += (size_t)len + 1;
	return 0;
}

/*
 * Checks one message and decodes it into *ret, whose strings then point
 * into buf (keep buf alive while using them). Returns 0, -EBADMSG for a
 * malformed record, -EPROTONOSUPPORT for another version or record type.
 * A version 1 record must not use what version 2 added.
 */
static inline int
minispy_record_decode(const void *buf, size_t len, struct minispy_record *ret)
{
	const uint8_t *b = (const uint8_t *)buf;
	struct minispy_record r;
	uint16_t lens[4], version;
	size_t off = MINISPY_EVENT_FIXED;
	const char *s[4];
	int unknown;

	if (!buf || len < MINISPY_HEADER_SIZE || flt_get32(b) != MINISPY_RECORD_MAGIC)
		return -EBADMSG;
	version = flt_get16(b + 4);
	if (version < MINISPY_RECORD_VERSION_MIN || version > MINISPY_RECORD_VERSION)
		return -EPROTONOSUPPORT;
	if (flt_get32(b + 8) != len || flt_get32(b + 12) != 0)
		return -EBADMSG;
	memset(&r, 0, sizeof(r));
	r.type = flt_get16(b + 6);
	if (r.type == MINISPY_REC_LOSS) {
		if (len != MINISPY_LOSS_SIZE)
			return -EBADMSG;
		r.loss.seq = flt_get64(b + 16);
		r.loss.time_ns = (int64_t)flt_get64(b + 24);
		r.loss.count = flt_get64(b + 32);
		r.loss.first_seq = flt_get64(b + 40);
		r.loss.last_seq = flt_get64(b + 48);
		r.loss.cause = flt_get32(b + 56);
		r.loss.notices = flt_get32(b + 60);
		if (r.loss.cause < MINISPY_LOSS_QUEUE ||
		    r.loss.cause > (version == 1 ? MINISPY_LOSS_DEPARTED
						 : MINISPY_LOSS_ENGINE) ||
		    (r.loss.notices & ~(MINISPY_NOTICE_KERNEL | MINISPY_NOTICE_ENGINE)) ||
		    (version == 1 && r.loss.notices))
			return -EBADMSG;
		if (minispy_loss_is_notice(r.loss.cause)
			    ? r.loss.first_seq || r.loss.last_seq || r.loss.notices
			    : !r.loss.count || r.loss.first_seq > r.loss.last_seq)
			return -EBADMSG;
		*ret = r;
		return 0;
	}
	if (r.type != MINISPY_REC_EVENT)
		return -EPROTONOSUPPORT;
	if (len < MINISPY_EVENT_FIXED || flt_get32(b + 76) != 0)
		return -EBADMSG;
	r.event.seq = flt_get64(b + 16);
	r.event.event_seq = flt_get64(b + 24);
	r.event.time_ns = (int64_t)flt_get64(b + 32);
	r.event.dev = flt_get64(b + 40);
	r.event.ino = flt_get64(b + 48);
	r.event.pid = (int32_t)flt_get32(b + 56);
	r.event.uid = flt_get32(b + 60);
	r.event.op = flt_get16(b + 64);
	r.event.flags = flt_get16(b + 66);
	unknown = (r.event.flags & MINISPY_F_PATH_UNKNOWN) != 0;
	if (r.event.op >= MINISPY_OP_COUNT_ || (version == 1 && unknown))
		return -EBADMSG;
	for (int i = 0; i < 4; i++) {
		lens[i] = flt_get16(b + 68 + 2 * i);
		if (minispy_string_(b, len, &off, lens[i], &s[i]) < 0)
			return -EBADMSG;
	}
	if (off != len || (lens[1] && r.event.op != MINISPY_OP_RENAME))
		return -EBADMSG;
	/* An empty path means "unknown", and only then. */
	if (unknown ? lens[0] && (r.event.op != MINISPY_OP_RENAME || lens[1]) : !lens[0])
		return -EBADMSG;
	r.event.path = s[0];
	r.event.new_path = lens[1] ? s[1] : NULL;
	r.event.exe = lens[2] ? s[2] : NULL;
	r.event.comm = lens[3] ? s[3] : NULL;
	*ret = r;
	return 0;
}

#endif /* MINISPY_RECORD_H */
