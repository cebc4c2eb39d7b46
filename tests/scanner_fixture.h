/* SPDX-License-Identifier: MIT */
/*
 * scanner_fixture.h — what the test_scanner*.c programs share: the paths
 * of each test, fltmgrd and the service started and stopped, their
 * counters, the setup and teardown of every test, and the start of each
 * program (scanner_fixture_init()).
 *
 * The scanner filter (filters/scanner/) and its service
 * (filters/scanner/service/) end to end, as an operator runs them: the
 * real fltmgrd loading scanner.so from a config (deadline 1000 ms unless
 * a test needs another), and the real `scanner --rules FILE` with a rule
 * that matches a marker string. Root only (fanotify, root-owned filter
 * objects).
 *
 * Like test_minispy_service.c, each program runs in a private mount
 * namespace on a scratch tmpfs; each test has its own runtime directory,
 * filter directory and watched directory. The filter's counters are read
 * through a monitor connection (window 0: it gets no requests), the
 * service's from the line it prints on SIGUSR1. Opens whose verdict is
 * checked are made by this process (it is not excluded; only services
 * are) or by forked children; every wait is bounded.
 */
#ifndef FLTMGR_SCANNER_FIXTURE_H
#define FLTMGR_SCANNER_FIXTURE_H

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-c/json.h>
#include <fltmgr/scanner.h>

#include "common/frame_io.h"
#include "common/wire.h"
#include "testutil.h"

#define WAIT_MS  10000
#define DEADLINE 1000

/* Tests that are not about deadlines: one that no scan reaches, even on a
 * loaded machine under a sanitizer (a verdict is never a default there). */
#define SCAN_DEADLINE 30000
#define MARKER        "X5O-FLTMGR-SCANNER-TEST-MARKER-7f3a"

/* Same length as MARKER: a rewrite keeps the size. */
#define CLEANTXT "just-an-ordinary-clean-file-0123456"

extern char **environ;

/* The binaries meson names, and the scratch tmpfs (scanner_fixture_init()). */
extern const char *fltmgrd_bin, *scanner_bin, *scanner_so, *fltmc_bin;
extern char scratch[];

/* This program, where uid 65534 can run it (scanner_fixture_init()). */
extern char self_for_others[PATH_MAX];
/* The paths of the current test (setup()), the daemon and the service. */
extern char rundir[128], fdir[128], watch[128], conf[128], dlog[128], sout[128],
	slog[128], rules[160];

extern pid_t daemon_pid, svc_pid;

/* A path under watch. */
char *at(const char *rel);

/* A rule matching needle, written as a hex string so that the rules
 * file does not itself contain the needle (it may be in the watched
 * tree). */
void write_rules(const char *path, const char *needle);

/* open(path, O_RDONLY): 0, or the errno; *ret_ms how long it took. */
int try_open(const char *path, int64_t *ret_ms);

/* fltmgrd with scanner.so on the watched directory. */
void daemon_start(int deadline_ms, bool deny_by_default);

/* scanner --rules rules [extra]; waits until it is connected. */
void svc_start(const char *const extra[]);

/* The filter's counters, through a monitor connection. */
void filter_stats(uint64_t v[SCANNER_CTR_COUNT_]);

/* One counter of the service's SIGUSR1 line ("scanned", ...). */
uint64_t svc_stat(const char *name);

/* SIGSTOP, and wait until it has taken effect in every thread: kill()
 * returns before a busy thread on another CPU has stopped. */
void svc_stop_signal(void);

/* Each test's own paths: a filter directory holding scanner.so, a
 * watched directory, the rules (matching MARKER), and the names of the
 * runtime directory, conf and logs. teardown() stops the service and the
 * daemon, failing the test if either did not exit cleanly. */
int setup(void **state);
int teardown(void **state);

/* fltmgrd with scanner.so and extra `param.` lines (params: "k = v\n"...). */
void daemon_start_params(int deadline_ms, bool deny_by_default, const char *params);

/* Writes size bytes of filler (marker at the end if infected). */
void write_sized(const char *path, size_t size, bool infected);

/* Runs this program as uid 65534 in `mode` with `arg`; its exit status. */
int run_as_nobody(const char *mode, const char *arg);

/* What each program does before its tests: checks for root and the
 * paths meson gives (FLTMGR_TEST_*), enters a private mount namespace
 * with a scratch tmpfs, copies itself where uid 65534 can run it
 * (self_for_others), and applies FLTMGR_TEST_ONLY=PATTERN (run only the
 * matching tests). prog names the program in messages. 0, or the exit
 * status to return (77: skip). */
int scanner_fixture_init(const char *prog);

/* After the tests: removes the scratch tmpfs. */
void scanner_fixture_fini(void);

#endif
