/* SPDX-License-Identifier: MIT */
/*
 * <fltmgr/scanner.h> — the messages between the scanner filter (scanner.so,
 * inside fltmgrd) and its user-mode service, shared by both and installed
 * with the development files, so that a vendor's own scanning service
 * (its own engine) can replace the bundled YARA one: connect to the port
 * with the context below, take requests with filter_get_message(), answer
 * each with filter_reply_message() (docs/scanner.md, "Writing your own
 * service"). Nothing here owns state: fixed layouts (host byte order,
 * <fltmgr/bytes.h>) with encode and decode helpers, so that neither side
 * ever trusts a raw struct.
 *
 * Filter -> service, one per scan (flt_send_message_ex, the event's fd
 * attached with SCM_RIGHTS, a reply wanted):
 *
 *   off size field
 *     0    4 magic SCANNER_MAGIC
 *     4    2 version SCANNER_VERSION
 *     6    2 type SCANNER_MSG_SCAN
 *     8    4 op (0 open, 1 exec)
 *    12    4 pid of the opener
 *    16    8 dev          24 8 ino          32 8 size
 *    40    4 path length (bytes, no NUL), then the path
 *
 * Service -> filter, the reply (filter_reply_message), exactly 8 bytes:
 * magic (4), verdict (1, enum scanner_verdict), flags (1, SCANNER_REPLY_*),
 * reserved 0 (2). SCANNER_REPLY_NO_CACHE: give this verdict once, keep it
 * out of every cache (a verdict of policy, not of content: a scan that
 * ran out of time, a file over the size limit). A filter that predates a
 * flag takes the reply as malformed: its default verdict, never a more
 * permissive one.
 *
 * Service -> filter calls (filter_send_message), exactly 8 bytes: magic
 * (4), command (4). SCANNER_CMD_STATS answers struct scanner_stats_wire;
 * SCANNER_CMD_FLUSH empties both verdict caches (after a rule reload).
 *
 * Connect context, exactly 12 bytes: magic (4), version (4), window (4):
 * how many requests the filter may keep outstanding on this connection
 * (threads x outstanding of the service). Window 0 makes a monitor
 * connection: it gets no scan requests and is not excluded (scanner
 * --stats, tests). No context at all means window SCANNER_DEFAULT_WINDOW.
 */
#ifndef FLTMGR_SCANNER_H
#define FLTMGR_SCANNER_H

#include <stdint.h>
#include <string.h>

#include <fltmgr/bytes.h>

#define SCANNER_MAGIC          0x4e435353u /* "SSCN" */
#define SCANNER_VERSION        1
#define SCANNER_MSG_SCAN       1
#define SCANNER_REQ_HEADER     44
#define SCANNER_PATH_MAX       4096
#define SCANNER_REQ_MAX        (SCANNER_REQ_HEADER + SCANNER_PATH_MAX)
#define SCANNER_REPLY_SIZE     8
#define SCANNER_CMD_SIZE       8
#define SCANNER_CONTEXT_SIZE   12
#define SCANNER_DEFAULT_WINDOW 8
#define SCANNER_MAX_WINDOW     256
/* param.inline_ms: below the engine's 20 ms reader takeover, so that a
 * reader waiting inline never makes the engine start another. */
#define SCANNER_INLINE_MS_DEFAULT 10
#define SCANNER_INLINE_MS_MAX     15

enum scanner_verdict {
	SCANNER_CLEAN = 0,
	SCANNER_INFECTED = 1,
	SCANNER_ERROR = 2, /* could not scan: the filter's default verdict */
	/* An exec's file (op 1) was open for writing when the service went
	 * to read it: what the exec will run may be written after any scan,
	 * until the kernel denies writes to it. The filter denies the exec.
	 * (Given instead of CLEAN; an infected file is still INFECTED.) */
	SCANNER_WRITERS = 3,
	SCANNER_VERDICT_COUNT_,
};

/* Flags of a reply (byte 5). */
#define SCANNER_REPLY_NO_CACHE 0x01u
#define SCANNER_REPLY_FLAGS_   SCANNER_REPLY_NO_CACHE

enum scanner_cmd {
	SCANNER_CMD_STATS = 1,
	SCANNER_CMD_FLUSH = 2,
};

/* The filter's counters, in wire order. Names are what `fltmc stats` and
 * `scanner --stats` print. */
#define SCANNER_COUNTERS(X)                                                              \
	X(events)              /* pre callbacks (open, exec) */                          \
	X(skipped)             /* not a regular file: allowed unscanned */               \
	X(requests)            /* sent to a service */                                   \
	X(clean)               /* clean verdicts from a service */                       \
	X(infected)            /* infected verdicts (denied) */                          \
	X(cache_hits)          /* answered from the user-space cache */                  \
	X(cache_denies)        /* ...of which infected */                                \
	X(no_service_defaults) /* no service connected */                                \
	X(deadline_defaults)   /* the deadline passed before a verdict */                \
	X(disconnect_defaults) /* the service went away with the request */              \
	X(service_errors)      /* the service could not scan (SCANNER_ERROR) */          \
	X(errors)              /* malformed replies, failed sends */                     \
	X(resent)              /* moved to another service after a disconnect */         \
	X(uncached)            /* verdicts kept out of the caches (changed file) */      \
	X(invalidations)       /* cache entries dropped by write/close/rename */         \
	X(flushes)             /* SCANNER_CMD_FLUSH */                                   \
	X(connections)         /* services accepted */                                   \
	X(in_flight_max)       /* most requests outstanding at once */                   \
	X(inline_sends)        /* sent from the pre callback, not pended */              \
	X(inline_timeouts)     /* ...that ran out of param.inline_ms: pended, resent */  \
	X(inline_pauses)       /* inline path paused 1 s (a timeout, slow scans) */      \
	X(changed_during_scan) /* the file changed while it was scanned */               \
	X(rescans)             /* ...and was scanned again */                            \
	X(changed_denies)      /* ...denied: still changing after the last rescan */     \
	X(exec_writer_denies)  /* execs denied: the file was open for writing */         \
	X(exec_always_scanned) /* execs of files others than root can write: no cache */ \
	X(writable_rescans)    /* opens of such files, clean in the cache: scanned */    \
	X(default_allows)      /* default verdicts that allowed (fail-open) */           \
	X(policy_verdicts)     /* verdicts marked SCANNER_REPLY_NO_CACHE: uncached */

enum scanner_counter {
#define SCANNER_X_ENUM(n) SCANNER_CTR_##n,
	SCANNER_COUNTERS(SCANNER_X_ENUM)
#undef SCANNER_X_ENUM
		SCANNER_CTR_COUNT_,
};

static const char *const scanner_counter_names[SCANNER_CTR_COUNT_] = {
#define SCANNER_X_NAME(n) #n,
	SCANNER_COUNTERS(SCANNER_X_NAME)
#undef SCANNER_X_NAME
};

/* The stats answer: magic (4), count (4), then count u64 values. A newer
 * filter may send more counters; a reader uses the ones it knows. */
#define SCANNER_STATS_SIZE (8 + 8 * SCANNER_CTR_COUNT_)

struct scanner_request {
	uint32_t op;
	uint32_t pid;
	uint64_t dev;
	uint64_t ino;
	uint64_t size;
	const char *path; /* not NUL-terminated on decode */
	uint32_t path_len;
};

/* Encodes r into buf (at least SCANNER_REQ_MAX bytes); returns the length.
 * A longer path is cut (it is only for the log). */
static inline size_t
scanner_request_encode(const struct scanner_request *r, uint8_t *buf)
{
	uint32_t n = r->path_len > SCANNER_PATH_MAX ? SCANNER_PATH_MAX : r->path_len;

	flt_put32(buf, SCANNER_MAGIC);
	buf[4] = SCANNER_VERSION;
	buf[5] = 0;
	buf[6] = SCANNER_MSG_SCAN;
	buf[7] = 0;
	flt_put32(buf + 8, r->op);
	flt_put32(buf + 12, r->pid);
	flt_put64(buf + 16, r->dev);
	flt_put64(buf + 24, r->ino);
	flt_put64(buf + 32, r->size);
	flt_put32(buf + 40, n);
	memcpy(buf + SCANNER_REQ_HEADER, r->path, n);
	return SCANNER_REQ_HEADER + n;
}

/* 0, or -1 for anything that is not exactly one well-formed request. */
static inline int
scanner_request_decode(const uint8_t *buf, size_t len, struct scanner_request *ret)
{
	uint32_t n;

	if (len < SCANNER_REQ_HEADER || flt_get32(buf) != SCANNER_MAGIC ||
	    buf[4] != SCANNER_VERSION || buf[5] || buf[6] != SCANNER_MSG_SCAN || buf[7])
		return -1;
	n = flt_get32(buf + 40);
	if (n > SCANNER_PATH_MAX || len != SCANNER_REQ_HEADER + (size_t)n)
		return -1;
	ret->op = flt_get32(buf + 8);
	ret->pid = flt_get32(buf + 12);
	ret->dev = flt_get64(buf + 16);
	ret->ino = flt_get64(buf + 24);
	ret->size = flt_get64(buf + 32);
	ret->path = (const char *)buf + SCANNER_REQ_HEADER;
	ret->path_len = n;
	return ret->op <= 1 ? 0 : -1;
}

static inline void
scanner_reply_encode_flags(enum scanner_verdict v, unsigned flags,
			   uint8_t buf[SCANNER_REPLY_SIZE])
{
	flt_put32(buf, SCANNER_MAGIC);
	buf[4] = (uint8_t)v;
	buf[5] = (uint8_t)(flags & SCANNER_REPLY_FLAGS_);
	buf[6] = buf[7] = 0;
}

static inline void
scanner_reply_encode(enum scanner_verdict v, uint8_t buf[SCANNER_REPLY_SIZE])
{
	scanner_reply_encode_flags(v, 0, buf);
}

/* The verdict, or -1 for a malformed reply (unknown flags included). */
static inline int
scanner_reply_decode(const uint8_t *buf, size_t len)
{
	if (len != SCANNER_REPLY_SIZE || flt_get32(buf) != SCANNER_MAGIC ||
	    (buf[5] & ~SCANNER_REPLY_FLAGS_) || buf[6] || buf[7] ||
	    buf[4] >= SCANNER_VERDICT_COUNT_)
		return -1;
	return buf[4];
}

/* The flags of a reply scanner_reply_decode() accepted. */
static inline unsigned
scanner_reply_flags(const uint8_t *buf)
{
	return buf[5];
}

static inline void
scanner_cmd_encode(enum scanner_cmd cmd, uint8_t buf[SCANNER_CMD_SIZE])
{
	flt_put32(buf, SCANNER_MAGIC);
	flt_put32(buf + 4, (uint32_t)cmd);
}

static inline void
scanner_context_encode(uint32_t window, uint8_t buf[SCANNER_CONTEXT_SIZE])
{
	flt_put32(buf, SCANNER_MAGIC);
	flt_put32(buf + 4, SCANNER_VERSION);
	flt_put32(buf + 8, window);
}

/* Decodes a stats answer into v[SCANNER_CTR_COUNT_] (missing ones 0). */
static inline int
scanner_stats_decode(const uint8_t *buf, size_t len, uint64_t *v)
{
	uint32_t n;

	if (len < 8 || flt_get32(buf) != SCANNER_MAGIC)
		return -1;
	n = flt_get32(buf + 4);
	if (len != 8 + 8 * (size_t)n)
		return -1;
	for (uint32_t i = 0; i < SCANNER_CTR_COUNT_; i++)
		v[i] = i < n ? flt_get64(buf + 8 + 8 * i) : 0;
	return 0;
}

#endif /* FLTMGR_SCANNER_H */
