/* SPDX-License-Identifier: MIT */
/*
 * engine_fixture.h — what the test_engine*.c programs share: events
 * recorded by a spy filter, child processes (fsop) that do one operation
 * when told, the manager and fresh tmpfs of each test (setup, teardown),
 * kernel feature checks, and the start of each program
 * (engine_fixture_init()).
 *
 * The whole program runs in its own private mount namespace and every test
 * mounts a fresh tmpfs (one test an ext4 image), attaches filters there and
 * drives it with child processes (fsop) whose pid, uid and exe it knows, so
 * nothing here ever sees or blocks the rest of the machine. The test
 * process itself is the engine's process: its own file accesses never
 * reach a filter, which is why every operation is done by a child.
 */
#ifndef FLTMGR_ENGINE_FIXTURE_H
#define FLTMGR_ENGINE_FIXTURE_H

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
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "engine/engine.h"     /* resolve_pidfd_info_override() */
#include "engine/proc_cache.h" /* PROC_CACHE_TTL_MS */

/* Whether the program runs as root (engine_fixture_init()); fsop next to
 * it; the tmpfs of the current test (setup()). */
extern bool have_root;
extern char fsop_path[PATH_MAX];
extern char mnt[64];

/* ---- recording events ---- */

/* One callback seen by a recording filter. */
struct rec {
	int filter;
	bool pre;
	enum flt_operation op;
	uint32_t flags;
	uint64_t seq;
	pid_t pid;
	uid_t uid;
	int verified;
	ino_t ino;
	dev_t dev;
	uint64_t lost;
	char path[256];
	char new_path[256];
	char exe[256];
};

#define MAX_RECS 4096

/* The records so far (under rec_lock). */
extern struct rec recs[MAX_RECS];
extern int n_recs;
extern pthread_mutex_t rec_lock;

/* Records one callback of filter (pre or post). */
void record(int filter, bool pre, const struct flt_callback_data *d);

/* Forgets every record (setup() does). */
void recs_clear(void);

/* Index of the first record matching, or -1. path/new_path NULL: any. */
int find_rec(int filter, enum flt_operation op, const char *path, const char *new_path,
	     pid_t pid);

/* How long an expected event may take to show up: a bound for a loaded
 * machine under a sanitizer, not a speed claim (waits end at the event). */
#define EVENT_WAIT_MS 15000

/* find_rec(), waiting up to timeout_ms for the record to come. */
int wait_rec(int filter, enum flt_operation op, const char *path, const char *new_path,
	     pid_t pid, int timeout_ms);

/* ---- children ---- */

/* A child running fsop (one operation, as uid). */
struct child {
	pid_t pid;
	int hold_fd;
	char what[96]; /* "op path", for a failure message */
};

/* A child that has not exited by then is stuck (an unanswered permission
 * event, a hung filesystem): killed and reported, never waited for until
 * the suite's timeout, which would not say where. */
#define CHILD_WAIT_MS 60000

/* Starts fsop; with hold, it stays alive until child_finish(); with go,
 * it waits for child_go() before its operation. */
struct child child_start_ex(uid_t uid, bool hold, bool go, const char *op, const char *a1,
			    const char *a2);

/* child_start_ex() without the wait for child_go(). */
struct child child_start(uid_t uid, bool hold, const char *op, const char *a1,
			 const char *a2);

/* Lets the child go and returns its exit status (0 or an errno). */
int child_finish(struct child *c);

/* One operation by a child, waited for: its exit status (0 or an errno). */
int run_op(uid_t uid, const char *op, const char *a1, const char *a2);

/* ---- each test: a private tmpfs and a manager ---- */

/* The current test's manager. */
extern flt_manager *g_m;

/* A callback that blocks until released (blocked_callback_...). */
extern pthread_mutex_t block_lock;
extern pthread_cond_t block_cond;
extern bool block_release;

/* Releases every callback blocked on block_cond (teardown() does, even
 * after a failed assertion). */
void release_blocked_callbacks(void);

/* A fresh tmpfs at mnt, a runtime directory and a manager (g_m); undone
 * by teardown(). Nothing without root. */
int setup(void **state);
int teardown(void **state);

#define NEED_ROOT()                                                                      \
	do {                                                                             \
		if (!have_root) {                                                        \
			print_message("skipped: fanotify needs root (CAP_SYS_ADMIN)\n"); \
			skip();                                                          \
		}                                                                        \
	} while (0)

/* The engine's feature set (docs/engine.md section 1.2): what the kernel
 * has, less what FLTMGR_KERNEL_FEATURES turned off. */
const struct fan_features *features(void);

/* flt_start_filtering(), or a printed skip where the kernel (or the
 * simulated one) has no group for the filter's operations. */
void start_or_skip(flt_filter *f);

/* Process details need FAN_REPORT_PIDFD (Linux 5.15): without it only
 * the pid is given (each_operation_... and test_features check that). */
#define NEED_PIDFD()                                                                    \
	do {                                                                            \
		if (!features()->pidfd) {                                               \
			print_message("skipped: process details need FAN_REPORT_PIDFD " \
				      "(Linux 5.15)\n");                                \
			skip();                                                         \
		}                                                                       \
	} while (0)

/* A path under mnt. */
char *at(const char *rel);

/* ---- recording pre and post callbacks; registering filters ---- */

/* Set: pre_2 denies. */
extern atomic_int deny_in_middle;

/* pre_N and post_N (N = 1, 2, 3): record event N (pre_rec(), record());
 * pre_2 denies while deny_in_middle is set. */
enum flt_preop_status pre_1(struct flt_callback_data *d, void *ic, void **cc);
enum flt_preop_status pre_2(struct flt_callback_data *d, void *ic, void **cc);
enum flt_preop_status pre_3(struct flt_callback_data *d, void *ic, void **cc);
void post_1(const struct flt_callback_data *d, void *ic, void *cc);
void post_2(const struct flt_callback_data *d, void *ic, void *cc);
void post_3(const struct flt_callback_data *d, void *ic, void *cc);

/* A started filter with one pre callback on op, attached to mnt as a
 * subtree instance. */
flt_filter *reg_one(const char *name, const char *alt, enum flt_operation op,
		    flt_pre_operation pre, int deadline_ms, unsigned flags);

/* A pre callback that only counts its calls (cache_calls). */
extern atomic_int cache_calls;
enum flt_preop_status pre_count(struct flt_callback_data *d, void *ic, void **cc);

/* A filter with one pre callback on FLT_OP_OPEN, attached to mnt, not
 * started. */
flt_filter *open_filter_reg(const char *name, const char *alt, flt_pre_operation pre,
			    unsigned flags, enum flt_instance_kind kind);

/* open_filter_reg() as a filesystem instance. */
flt_filter *pre_filter_reg(const char *name, const char *alt, flt_pre_operation pre,
			   unsigned flags);

/* ---- the start of each program ---- */

/* This program's executable (engine_fixture_init()). */
extern char self_exe[PATH_MAX];

/* What each program does before its tests: finds fsop next to itself,
 * and, as root, enters a private mount namespace (not root: says that
 * every test is skipped). prog names the program in messages. 0, or the
 * exit status to return. */
int engine_fixture_init(const char *prog);

#endif
