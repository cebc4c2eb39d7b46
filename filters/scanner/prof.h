/* SPDX-License-Identifier: MIT */
/*
 * prof.h — stage timestamps for profiling the scanner's first-open path
 * (bench only). Compiled out unless SCANNER_PROFILE is defined, e.g.
 *   meson setup build-prof --buildtype=release -Dc_args=-DSCANNER_PROFILE
 * and then active only in processes started with SCANNER_PROFILE_DIR in
 * their environment.
 *
 * PROF_MARK(key, stage) records (key, stage, CLOCK_MONOTONIC ns) in a
 * buffer private to the object file that includes this header; at exit
 * the buffer is written to $SCANNER_PROFILE_DIR/TAG.PID.ADDR, one "key stage
 * ns" line per record. The key is the file's inode number, which ties
 * together the marks the opener, the filter and the service make for one
 * open; bench/scanner-prof joins them.
 */
#ifndef SCANNER_PROF_H
#define SCANNER_PROF_H

enum prof_stage {
	PROF_OPEN_START = 0,  /* opener: before open() */
	PROF_ENGINE_READ,     /* engine reader: read() returned the event */
	PROF_PRE_ENTER,       /* scanner pre callback entered */
	PROF_PRE_SEND,        /* pre callback: about to send inline */
	PROF_PRE_QUEUED,      /* pre callback: queued, returning PENDING */
	PROF_SENDER_TOOK,     /* a sender thread took the request */
	PROF_SEND_CALL,       /* before flt_send_message_ex */
	PROF_SVC_GOT,         /* service: filter_get_message returned */
	PROF_SVC_READ,        /* service: file read */
	PROF_SVC_SCANNED,     /* service: YARA done */
	PROF_SVC_REPLY_SENT,  /* service: filter_reply_message returned */
	PROF_SEND_RETURNED,   /* filter: flt_send_message_ex returned */
	PROF_COMPLETE_CALL,   /* filter: before the completion */
	PROF_COMPLETED,       /* filter: completion returned (answer written) */
	PROF_OPEN_END,        /* opener: open() returned */
	PROF_ENGINE_IDENT,    /* engine: path and stat of the event filled */
	PROF_ENGINE_MARKED,   /* engine: kernel cache mark inserted */
	PROF_ENGINE_ANSWERED, /* engine: response written */
	PROF_STAGE_COUNT_,
};

#ifdef SCANNER_PROFILE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef PROF_TAG
#define PROF_TAG "prof"
#endif
#define PROF_CAP (1 << 20)

struct prof_rec {
	uint64_t key;
	int64_t ns;
	int stage;
};

static struct prof_rec *prof_buf;
static atomic_uint prof_n;

__attribute__((constructor)) static void
prof_init(void)
{
	if (getenv("SCANNER_PROFILE_DIR"))
		prof_buf = calloc(PROF_CAP, sizeof(*prof_buf));
}

__attribute__((destructor)) static void
prof_dump(void)
{
	const char *dir = getenv("SCANNER_PROFILE_DIR");
	char path[512];
	unsigned n = atomic_load(&prof_n);
	FILE *f;

	if (!prof_buf || !dir)
		return;
	snprintf(path, sizeof(path), "%s/%s.%d.%p", dir, PROF_TAG, (int)getpid(),
		 (void *)prof_buf);
	f = fopen(path, "we");
	if (!f)
		return;
	if (n > PROF_CAP)
		n = PROF_CAP;
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%llu %d %lld\n", (unsigned long long)prof_buf[i].key,
			prof_buf[i].stage, (long long)prof_buf[i].ns);
	fclose(f);
}

static inline void
prof_mark_at(uint64_t key, int stage, int64_t ns)
{
	unsigned i;

	if (!prof_buf)
		return;
	i = atomic_fetch_add_explicit(&prof_n, 1, memory_order_relaxed);
	if (i < PROF_CAP)
		prof_buf[i] = (struct prof_rec){ .key = key, .ns = ns, .stage = stage };
}

static inline int64_t
prof_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define PROF_MARK(key, stage)        prof_mark_at((uint64_t)(key), (stage), prof_now())
#define PROF_MARK_AT(key, stage, ns) prof_mark_at((uint64_t)(key), (stage), (ns))
#else
#define PROF_MARK(key, stage)        ((void)0)
#define PROF_MARK_AT(key, stage, ns) ((void)0)
#endif

#endif
