/* SPDX-License-Identifier: MIT */
/*
 * daemon_fixture.h — what the test_daemon*.c programs share: the paths
 * of one test (runtime directory, filter directory, configuration,
 * watched directory, log), the daemon started and stopped, fltmc run and
 * its JSON read, the setup and teardown of every test, and the start of
 * each program (daemon_fixture_init()).
 *
 * fltmgrd and fltmc end to end, as an administrator uses them: the real
 * binaries, in a private mount namespace on a scratch tmpfs, each test
 * with its own runtime directory, filter directory and configuration.
 * The filter is tests/filters/test_filter.c (denies opens of paths
 * containing "secret", offers a port that answers "pong").
 * Root only (fanotify, ownership checks).
 */
#ifndef FLTMGR_DAEMON_FIXTURE_H
#define FLTMGR_DAEMON_FIXTURE_H

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/privileges.h"
#include "json_util.h"
#include "testutil.h"

/* The binaries and the test filter meson names (daemon_fixture_init()),
 * the scratch tmpfs, and the paths of the current test (setup()). */
extern const char *fltmgrd_bin, *fltmc_bin, *filter_so;
extern char scratch[];
extern char rundir[64], fdir[256], conf[256], watch[256], logfile[256];

/* fltmc copied where uid 65534 can run it (the checkout may not be
 * reachable for that user). */
extern char fltmc_nobody[300];

/* ---- small helpers ---- */

/* The file (its first 64 KiB) in static storage: valid until the next
 * call. */
char *read_file(const char *path);

/* The test filter copied to fdir/NAME, 0644. */
void copy_filter(const char *name);

/* The configuration every test starts from: tf on the watch directory;
 * daemon_extra goes into [fltmgrd], extra at the end. */
void write_conf2(const char *daemon_extra, const char *extra);

/* write_conf2(NULL, extra). */
void write_conf(const char *extra);

/* Runs argv with stdout+stderr into out (if not NULL); returns the exit
 * status, or 128+signal. uid: -1 to keep ours. */
int run_as(char *out, size_t out_len, uid_t uid, gid_t gid, char *const argv[]);

#define RUN(out, ...) \
	run_as(out, sizeof(out), (uid_t)-1, 0, (char *const[]){ __VA_ARGS__, NULL })

/* fltmc --json ...; returns the parsed reply (caller puts it). */
struct json_object *fltmc_json(const char *cmd, const char *arg1, const char *arg2);

/* ---- the daemon ---- */

/* The running fltmgrd (0: none). */
extern pid_t daemon_pid;

/* Nonzero: the daemon is started with only these capabilities in its
 * bounding set (as systemd's CapabilityBoundingSet= does). */
extern uint64_t start_bounding_keep;

/* Starts fltmgrd -f with extra arguments; waits until it is ready. */
pid_t daemon_start_args(char *const extra[]);

/* fltmgrd on conf. */
void daemon_start(void);

/* SIGTERM and wait; returns the exit status. */
int daemon_stop(void);

/* ---- each test ---- */

/* Each test's own paths: a filter directory holding tf.so, a watched
 * directory with secret.txt and plain.txt, conf (write_conf(NULL)), and
 * the names of its runtime directory and log; start_bounding_keep reset.
 * teardown() stops the daemon, failing the test if it did not exit 0. */
int setup(void **state);
int teardown(void **state);

/* 0 or -errno of opening NAME in the watched directory. */
int try_open(const char *name);

/* A service connected to the test filter's port. */
struct service {
	filter_port *port;
	int connected;
};

/* Connects s to tf's port (tfport); fails the test if it cannot. */
void service_connect(struct service *s);

/* ---- filter objects, and the daemon's health ---- */

/* cp from to, then chmod mode. */
void copy_file_mode(const char *from, const char *to, mode_t mode);

/* Runs fltmc (as root) with argv; out gets stdout+stderr. */
#define FLTMC(out, ...)                                                                  \
	run_as(out, sizeof(out), (uid_t)-1, 0,                                           \
	       (char *const[]){ (char *)fltmc_bin, "--runtime-dir", rundir, __VA_ARGS__, \
				NULL })

/* Whether daemon_pid is still running. */
bool daemon_alive(void);

/* healthy, and (if want is not NULL) filter name's problem holds want. */
void expect_health(bool healthy, const char *name, const char *want);

/* tf is loaded, running, attached to `instances` paths, and denies. */
void expect_tf_running(int instances);

/* Installs a fresh tf.so by rename (the documented upgrade), with mode and
 * owner. */
void install_object(mode_t mode, uid_t owner);

/* What each program does before its tests: checks for root and the
 * paths meson gives (FLTMGR_TEST_*), enters a private mount namespace
 * with a scratch tmpfs, copies fltmc where uid 65534 can run it, and
 * applies FLTMGR_TEST_ONLY=PATTERN (run only the matching tests). prog
 * names the program in messages. 0, or the exit status to return (77:
 * skip). */
int daemon_fixture_init(const char *prog);

/* After the tests: removes the scratch tmpfs. */
void daemon_fixture_fini(void);

#endif
