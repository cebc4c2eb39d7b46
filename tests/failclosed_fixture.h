/* SPDX-License-Identifier: MIT */
/*
 * failclosed_fixture.h — what the test_failclosed_*.c programs share:
 * file contents with and without the marker, how often the filters were
 * asked per inode, the test filters, the attacker's children, each
 * test's setup, and the start of each program (failclosed_fixture_init()).
 *
 * The tests: an unprivileged user must not get a file past a
 * filter whose verdict is deny (root only).
 *
 * The attacker is uid/gid 65534 in a forked child (no exec), allowed to
 * create user and mount namespaces, write, mmap, rename and nest files
 * anywhere it may write, and race the engine. The test filter reads each
 * file through the event's descriptor and denies it when the content holds
 * MARKER; its default verdict is deny and it opts in to the kernel verdict
 * cache. Each test asserts behaviour: the marked file was never opened (and
 * its content read) nor executed, and, where that is the point, that the
 * filter was asked. Figures go to the log with print_message().
 *
 * The program runs in a private mount namespace of its own (made by
 * failclosed_fixture_init(), before any thread exists) and every test mounts a fresh tmpfs. The test
 * process is the engine's process, whose accesses are never filtered: it
 * prepares files itself, and every access under test is made by a child.
 */
#ifndef FLTMGR_FAILCLOSED_FIXTURE_H
#define FLTMGR_FAILCLOSED_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <linux/btrfs.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MARKER       "FLTMGR-TEST-MARKER"
#define MARKER_LEN   (sizeof(MARKER) - 1)
#define NOBODY       65534
#define DEADLINE_MS  1500
#define SCAN_MAX     (16u << 20)
#define KID_WAIT_MS  30000
#define FILLER_BYTES 8192

/* ---- children's results, and the state of each test ---- */

/* Exit codes of the children (a byte). R_WIN is what the attacker wants:
 * the marked content was read, or the marked program ran. */
#define R_WIN            0
#define R_CLEAN          1 /* opened; no marker in what was read */
#define R_ERRNO(e)       (2 + ((e) < 190 ? (e) : 190))
#define KID_UNSUPPORTED  200 /* the kernel refused a feature: skip */
#define KID_SETUP_FAILED 201

/* Whether the program runs as root; its executable; the tmpfs and the
 * manager of the current test (setup()). */
extern bool have_root;
extern char self_exe[PATH_MAX];
extern char scratch[64];
extern flt_manager *g_m;

/* A path under scratch. */
const char *at(const char *rel);

/* A child's exit code in words, for messages. */
const char *code_str(int code);

/* A denial reaches the opener as EPERM (docs/engine.md 3.5); EACCES is
 * accepted too. */
bool denied(int code);

/* Results children hand back beyond their exit code. */
struct shared {
	atomic_int setup_err; /* errno of a failed namespace or mount step */
	atomic_int variant;
	atomic_int open_code, exec_code;
	atomic_long open_attempts, opened, marked, exec_attempts, exec_ran;
	atomic_long renames, rename_errors;
};

extern struct shared *shm;

/* ---- file contents ---- */

/* A program: /bin/true, then filler up to a block boundary, then two
 * blocks of filler. With split, the second-to-last block ends with the
 * first part of MARKER and the last block begins with the rest, a junk
 * block in between (for FALLOC_FL_COLLAPSE_RANGE). prog_spare() is the
 * offset of the first whole filler block after the program. */
off_t prog_spare(void);

/* The size of such a program. */
size_t prog_size(void);

/* Frees what prog_content() returned. */
void content_free(unsigned char *b, size_t n);

/* Builds the content in a content_alloc() buffer (children too: no cmocka). */
unsigned char *prog_content(bool marked, bool split, size_t *ret_len);

/* Writes a file at dfd/name (created or truncated); 0 or -errno. */
int write_at(int dfd, const char *name, const void *buf, size_t len, mode_t mode);

enum content { C_TEXT, C_TEXT_MARKED, C_PROG, C_PROG_MARKED, C_PROG_SPLIT };

/* Writes content c to dfd/name: 0 or -errno (children too). */
int put_at(int dfd, const char *name, enum content c, mode_t mode);

/* In the test process (its own accesses are never filtered). */
void put(const char *path, enum content c, uid_t owner);

/* mkdir, then exactly mode and owner (uid and gid); asserts. */
void mkdir_mode(const char *path, mode_t mode, uid_t owner);

/* ---- how often the filters were asked, per inode ---- */

/* Calls of marker_pre, its denials, and calls of the passthrough filters. */
extern atomic_int marker_calls, marker_denies, passthrough_calls;

/* Counts one question about the inode; how many it had. */
void asked_add(dev_t dev, ino_t ino);
int asked_ino(dev_t dev, ino_t ino);

/* How often the marker filter was asked about the file at path. */
int asked(const char *path);

/* ---- the test filters ---- */

/* One-shot hook for write_during_scan_is_not_cached_as_clean: after the
 * scan of this inode found it clean, the callback tells the attacker (one
 * byte on hook_go) and waits up to 1 s for its write (one byte back on
 * hook_done) before returning its allow. */
extern atomic_ulong hook_ino;
extern atomic_int hook_go_w, hook_done_r;
extern atomic_int hook_fired;
extern int hook_pipes[4]; /* go r/w, done r/w; teardown closes */

/* Denies content with MARKER (or that cannot be read), allows the rest. */
enum flt_preop_status marker_pre(struct flt_callback_data *d, void *ic, void **cc);

/* A started filter with pre on opens and execs, attached to path. */
flt_filter *start_filter_ex(const char *name, const char *altitude, flt_pre_operation pre,
			    int deadline_ms, int default_verdict, unsigned flags,
			    const char *path, enum flt_instance_kind kind);

/* Default verdict deny. */
flt_filter *start_filter(const char *name, const char *altitude, flt_pre_operation pre,
			 int deadline_ms, unsigned flags, const char *path,
			 enum flt_instance_kind kind);

/* The filter of the brief: marker check, default deny, a short deadline,
 * kernel verdict cache. */
flt_filter *marker_filter(const char *path, enum flt_instance_kind kind);

/* ---- children (forks of this process: see failclosed_fixture.c) ---- */

struct kid {
	pid_t pid;
	int ready_fd, go_fd;
};

typedef int (*kid_fn)(void *arg);

#define MAX_KIDS 256

/* A child running fn(arg) (as uid 65534 if nobody); it exits with
 * fn's result. */
struct kid kid_start(bool nobody, kid_fn fn, void *arg);

/* In the child. */
void kid_rendezvous(void);

/* Waits for the child's rendezvous: true, or false if it exited first
 * (other children hold copies of the pipe, so exit is checked too). */
bool kid_wait_ready(struct kid *k, int timeout_ms);

/* Lets the child on from its rendezvous. */
void kid_go(struct kid *k);

/* Waits for the child and returns its exit code (128 + signal if killed). */
int kid_finish(struct kid *k, int timeout_ms);

/* kid_start() and kid_finish() within KID_WAIT_MS. */
int run_kid(bool nobody, kid_fn fn, void *arg);

/* Opens dfd/path and reads it: R_WIN if MARKER was read. */
int open_code_at(int dfd, const char *path);

/* Executes dfd/path in a new child and waits: R_WIN if it ran. */
int exec_code_at(int dfd, const char *path);

/* kid_fn: open_code_at() of path. */
int kid_open(void *path);

/* An open or exec by a child as root: its code. */
int root_open(const char *path);
int root_exec(const char *path);

/* ---- each test ---- */

/* A fresh tmpfs at scratch (with watched/ and side/, 0777), a runtime
 * directory and a manager; teardown() kills the stuck service and the
 * children first, then undoes it. Nothing without root. */
int setup(void **state);
int teardown(void **state);

/* all_readers_stuck_gives_default_not_allow's service (teardown kills it). */
extern pid_t stuck_service_pid;

#define NEED_ROOT()                                                                      \
	do {                                                                             \
		if (!have_root) {                                                        \
			print_message("skipped: fanotify needs root (CAP_SYS_ADMIN)\n"); \
			skip();                                                          \
		}                                                                        \
	} while (0)

/* An image of fstype (made by mkfs.<fstype> with mkfs_opts) in the
 * scratch tmpfs, loop-mounted at dir; false if that cannot be done here. */
bool image_mount(const char *fstype, const char *mkfs_opts, const char *size,
		 const char *dir);

/* The marked file must be refused at the door: the filter works on the
 * plain path before any trick is tried. */
void expect_plain_denial(const char *file, const char *prog);

/* What each program does before its tests: maps the memory shared with
 * the children, reads /bin/true, sets the umask to 022, and as root enters
 * a private mount namespace (not root: says that every test is skipped).
 * prog names the program in messages. 0, or the exit status to return. */
int failclosed_fixture_init(const char *prog);

#endif
