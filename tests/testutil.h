/* SPDX-License-Identifier: MIT */
/*
 * testutil.h — helpers shared by the test programs: a private runtime
 * directory per test (so tests never touch /run/fltmgr or each other),
 * descriptor counting for leak checks, a quiet manager, the private
 * mount namespace with a scratch tmpfs the end-to-end programs run in,
 * files (paths, writing, reading, waiting for a line), and child
 * programs (started with redirected output, waited for with a bound).
 */
#ifndef FLTMGR_TESTUTIL_H
#define FLTMGR_TESTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include <fltmgr/filter.h>
#include <fltmgr/user.h>

/* Creates a fresh directory under /tmp, exports FLTMGR_RUNTIME_DIR to it
 * and returns it (static storage, valid until tu_runtime_dir_remove()). */
const char *tu_runtime_dir_create(void);
void tu_runtime_dir_remove(void);

/* A manager on the current runtime dir with logging at warning level
 * (FLTMGR_LOG_LEVEL overrides). Asserts on failure. */
flt_manager *tu_manager_new(void);

/* One filter named name (altitude 370000) in a new manager on a new
 * runtime directory; *fds_before: this process's descriptors before any
 * of it. Asserts on failure. */
void tu_filter_up(const char *name, int *fds_before, flt_manager **m, flt_filter **f);
/* Unregisters and frees them, waits (10 s at most) until no more
 * descriptors are open than before, removes the runtime directory. */
void tu_filter_down(flt_manager *m, flt_filter *f, int fds_before);

/* Number of open descriptors of this process (/proc/self/fd). */
int tu_count_fds(void);

/* A predicate for tu_wait_until(): whether at most *(int *)arg
 * descriptors are open. */
int tu_fds_at_most(void *arg);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t tu_now_ms(void);

/* Nanoseconds on CLOCK_MONOTONIC. */
int64_t tu_mono_ns(void);

/* Nanoseconds on CLOCK_REALTIME (the clock of records' timestamps). */
int64_t tu_realtime_ns(void);

/* Polls pred(arg) every millisecond until it is true or timeout_ms passes;
 * returns the last value of pred. */
int tu_wait_until(int (*pred)(void *), void *arg, int timeout_ms);

/* A predicate for tu_wait_until(): whether the path arg exists. */
int tu_file_exists(void *path);

/* Waits until the fltmgrd on runtime directory rundir is ready: its
 * control socket (rundir/control, made once every instance is attached)
 * exists and, if port is not NULL, the port rundir/PORT too. 1 when they
 * do, 0 if they did not within timeout_ms. */
int tu_wait_daemon_ready(const char *rundir, const char *port, int timeout_ms);

/* ---- files ---- */

/* "dir/rel" in one of 16 static buffers used in turn: valid until the
 * 16th call after it. */
char *tu_path(const char *dir, const char *rel);

/* Writes text to path (created with mode 0644 less the umask, or
 * truncated) and closes it. Asserts on failure. */
void tu_write_file(const char *path, const char *text);

/* The same, but the file is created with mode and then given exactly
 * mode (fchmod), whether or not it existed. */
void tu_write_file_mode(const char *path, const char *text, mode_t mode);

/* The whole file, NUL-terminated, in memory the caller frees; "" if it
 * cannot be opened. */
char *tu_slurp(const char *path);

/* Occurrences of needle in the file (0 if it cannot be read). */
int tu_count_in_file(const char *path, const char *needle);

/* Polls (every 2 ms) until needle occurs at least n times in the file:
 * true, or false if it did not within timeout_ms. */
bool tu_wait_in_file(const char *path, const char *needle, int n, int timeout_ms);

/* ---- child programs ---- */

/* Forks and executes argv[0] (argv, this environment) with stdin from
 * /dev/null, stdout appended to out and stderr appended to err (each
 * created 0644 if missing; "/dev/null" discards). Returns the pid at once;
 * the child exits 127 if a file cannot be opened or the exec fails. */
pid_t tu_spawn(char *const argv[], const char *out, const char *err);

/* Waits up to timeout_ms for the child pid to exit: its exit status,
 * 128 + the signal that killed it, or -1 (not exited in time, which
 * leaves it running, or waitpid() failed). */
int tu_wait_exit(pid_t pid, int timeout_ms);

/* The same, but a child still running after timeout_ms fails the test,
 * after it is killed (SIGKILL) and reaped; a waitpid() failure fails it
 * too. Returns its exit status or 128 + signal. */
int tu_expect_exit(pid_t pid, int timeout_ms);

/* For the programs that run the real daemon: enters a private mount
 * namespace (so nothing mounted or watched is seen outside it) and mounts a
 * tmpfs of size_mb MiB named fsname on a new directory made from dir, a
 * mkdtemp() template that is updated in place. Returns 0; 77 (skip) when
 * the namespace cannot be made; 1 when the tmpfs cannot be mounted. Both
 * failures print one line naming prog and the cause. */
int tu_private_scratch(const char *prog, char *dir, const char *fsname, unsigned size_mb);

/* For the programs that drive the engine in-process: sets *have_root and,
 * when root, enters a private mount namespace (so nothing mounted or
 * watched is seen outside it); when not, prints that every test will be
 * skipped. Returns 0, or 1 (with one line on stderr naming prog) when the
 * namespace cannot be made. */
int tu_root_private_ns(const char *prog, bool *have_root);

/* Unmounts and removes what tu_private_scratch() made. */
void tu_private_scratch_remove(const char *dir);

/* In a forked child of a root process: drops every supplementary group,
 * then gid and uid (real, effective, saved) to the given ones, and makes
 * the process dumpable again (so it can still write its own /proc files,
 * e.g. the uid_map of a user namespace it creates). Returns 0 or -errno. */
int tu_become_user(uid_t uid, gid_t gid);

/* Whether the file behind fd contains needle, read with pread() from
 * offset 0 (the file offset is not moved) up to max_bytes: 1 yes, 0 no,
 * -errno on a read error (-EINVAL: a needle over 256 bytes). No cmocka
 * calls and no allocation, so usable in a child forked from threads. */
int tu_fd_contains(int fd, const char *needle, size_t max_bytes);

/* This test program, copied where any user can run it: the checkout may
 * lie in a directory other users cannot enter (/root/src/...), and a test
 * that re-executes itself as uid 65534 must not depend on that. Copies
 * /proc/self/exe to DIR/tests/ and the project's libraries it finds
 * through its RUNPATH ($ORIGIN/../src/libflt*.so*) to DIR/src/, all root's
 * and 0755 (DIR itself must be reachable). Writes the copy's path into
 * ret (cap bytes). Returns 0 or -errno. */
int tu_copy_self_for_others(const char *dir, char *ret, size_t cap);

/* Whether the engine lacks a feature on this kernel, as its feature
 * probe finds it (FLTMGR_KERNEL_FEATURES included; docs/engine.md
 * section 1.2): a reason to print with a skip, or NULL if it has it.
 * feature: "names" (post-only callbacks), "pidfd" (process details),
 * "unlimited_queue" (pre callbacks), "cache" (the kernel verdict
 * cache), "pidfs" (the process cache). */
const char *tu_kernel_lacks(const char *feature);

/* Skips the current test, printing why, when tu_kernel_lacks(feature). */
#define TU_NEED_KERNEL(feature)                               \
	do {                                                  \
		const char *why_ = tu_kernel_lacks(feature);  \
		if (why_) {                                   \
			print_message("skipped: %s\n", why_); \
			skip();                               \
		}                                             \
	} while (0)

#endif
