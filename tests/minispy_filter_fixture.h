/* SPDX-License-Identifier: MIT */
/*
 * minispy_filter_fixture.h — what the test_minispy_filter*.c programs
 * share: minispy (filters/minispy/) loaded from minispy.so through its
 * entry point exactly as fltmgrd would, read through libfltuser exactly as
 * its service will (root only); the children that do the file operations;
 * the sentinel recorder that says when everything has been processed; a
 * service in the test process (struct svc) and the checks on what it
 * read; each test's setup and teardown; the start of each program
 * (minispy_filter_fixture_init()).
 *
 * Like test_engine, each program runs in a private mount namespace and each
 * test mounts a fresh tmpfs, so nothing here sees or blocks the rest of the
 * machine. The test process is the engine's own process, whose accesses
 * never reach a filter; every file operation is therefore done by a child:
 * tests/fsop, or the program re-executed in one of its child modes
 * (--gen, --load, --svc-*), which also serve as service processes whose
 * pids the filter must exclude. Children are always exec'ed, never just
 * forked, because the parent is multi-threaded.
 *
 * "Everything has been processed" is made exact by a second, recording
 * filter at a higher altitude attached above minispy's directory: post
 * callbacks run from the lowest altitude up on one reader thread, so once
 * it has seen a sentinel file created after some operations, minispy has
 * published all of them (sync_events()).
 */
#ifndef FLTMGR_MINISPY_FILTER_FIXTURE_H
#define FLTMGR_MINISPY_FILTER_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minispy_record.h"
#include "testutil.h"

/* Whether the program runs as root; fsop next to it; the program itself
 * (for its child modes); the tmpfs of the current test and minispy's
 * instance directory in it (<mnt>/w); the manager and minispy (setup(),
 * load()). */
extern bool have_root;
extern char fsop_path[PATH_MAX];
extern char self_path[PATH_MAX];
extern char mnt[64];
extern char wdir[128];
extern flt_manager *g_m;
extern flt_filter *g_f;

#define WAIT_MS 10000

#define NEED_ROOT()                                                                      \
	do {                                                                             \
		if (!have_root) {                                                        \
			print_message("skipped: fanotify needs root (CAP_SYS_ADMIN)\n"); \
			skip();                                                          \
		}                                                                        \
	} while (0)

/* flt_start_filtering(), or a printed skip on a kernel (or simulated
 * one) without name reporting: minispy's callbacks are all post-only. */
void start_or_skip(flt_filter *f);

/* ---- children ---- */

/* How a --svc-churn service process ends its life. */
enum churn_end {
	CHURN_CLOSE = 0, /* reads a little, closes, exits */
	CHURN_EXIT,      /* reads a little, _exit without closing */
	CHURN_SELF_KILL, /* reads a little, raise(SIGKILL) */
	CHURN_KILLED,    /* reads until the parent SIGKILLs it */
	CHURN_STOPPED,   /* never reads; the parent SIGSTOPs, SIGCONTs, kills */
	CHURN_MODES_
};

struct child {
	pid_t pid;
	int to;   /* its stdin, or -1 */
	int from; /* its stdout, or -1 */
};

/* Runs argv (argv[0] a path) with pipes on stdin and stdout. */
struct child spawn(const char *const *argv);

/* One byte from the child's stdout (0 at EOF); one byte to its stdin. */
char child_hear(struct child *c);
void child_say(struct child *c, char ch);

/* Closes its stdin and waits: its exit status, or 128 + signal. */
int child_wait(struct child *c);

/* fsop with --hold (it stays until child_wait) as uid. */
struct child fsop_hold(uid_t uid, const char *op, const char *a1, const char *a2);

/* fsop's exit status for one operation (a2 may be NULL). */
int fsop(const char *op, const char *a1, const char *a2);

/* Creates wdir/PREFIX00000 ... (n files) from a child, in order. */
void gen(const char *prefix, int n);

/* "<wdir>/rel" (tu_path()). */
char *at(const char *rel);

/* Returns once minispy has published every event of every operation
 * that finished before this call. */
void sync_events(void);

/* ---- loading minispy ---- */

/* kv: key, value, ..., NULL. Returns the entry point's result. */
int try_load(const char *name, const char *const *kv, flt_filter **ret);

/* Loads minispy with these parameters, attached at wdir and started. */
void load(const char *const *kv);

void unload(void);

/* The filter's own view (the counters hook), without a connection. */
uint64_t filter_counter(const char *name);

/* Until minispy counts no connected service. */
void wait_no_connection(void);

/* ---- a service in this process ---- */

struct ev {
	uint16_t type;
	uint64_t seq;
	uint64_t hdr_seq;
	uint64_t event_seq;
	int64_t time_ns;
	uint64_t dev, ino;
	pid_t pid;
	uint32_t uid;
	uint16_t op;
	uint16_t flags;
	uint64_t count, first, last;
	uint32_t cause;
	uint32_t notices;
	char path[256];
	char new_path[256];
	char exe[256];
	char comm[32];
};

struct svc {
	filter_port *p;
	struct ev *v;
	size_t n;
	size_t cap;
};

void svc_open(struct svc *s);
void svc_close(struct svc *s);

/* A service that confirms what it has read (svc_confirm()). */
void svc_open_confirming(struct svc *s);

/* Confirms the first n records; the port call's result. */
int svc_confirm(struct svc *s, uint64_t n);

/* Reads one record into the list: 0, -ETIMEDOUT, -ENOTCONN, ... */
int svc_pump(struct svc *s, int timeout_ms);

/* Decodes one message into the list. */
void svc_add(struct svc *s, const struct filter_message_header *hp, const uint8_t *buf,
	     int len);

/* minispy's counters as seen by this service. */
struct minispy_stats svc_stats(struct svc *s);

/* After sync_events(): reads everything minispy has for this service. */
void svc_drain(struct svc *s);

/* A predicate for tu_wait_until(): arg (a struct svc) sees exactly one
 * connected service, itself. */
int one_connection_left(void *arg);

/* Index of the first matching event, or -1; NULL path or 0 pid: any. */
int find_ev(struct svc *s, uint16_t op, const char *path, const char *new_path,
	    pid_t pid);

/* Reads until a matching event arrives; returns it. */
struct ev *expect_ev(struct svc *s, uint16_t op, const char *path, const char *new_path,
		     pid_t pid);

/* The events read, sentinels left out. */
size_t count_events(const struct svc *s);

/* Checks that every seq is reported exactly once, as an event or inside
 * a loss record's run; the number of records lost. */
uint64_t check_seq_accounting(const struct svc *s, uint64_t first_expected);

/* ---- each test and each program ---- */

/* A fresh tmpfs with wdir in it and a manager; all of it undone. */
int setup(void **state);
int teardown(void **state);

/* The start of main(): runs a child mode and exits if argv names one;
 * else finds fsop and minispy.so (FLTMGR_MINISPY_FILTER) and, as root,
 * enters a private mount namespace. 0, or the status to exit with. */
int minispy_filter_fixture_init(const char *prog, int argc, char **argv);

#endif
