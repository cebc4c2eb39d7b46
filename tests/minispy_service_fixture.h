/* SPDX-License-Identifier: MIT */
/*
 * minispy_service_fixture.h — what the test_minispy_service*.c programs
 * share: the paths of each test, fltmgrd and the service started and
 * stopped, their JSON records read back, fsop held open, the setup and
 * teardown of every test, and the start of each program
 * (minispy_service_fixture_init()).
 *
 * The minispy service (filters/minispy/service/)
 * end to end, as an operator runs it: the real fltmgrd with its built-in
 * default (minispy at 385100 on a watched directory) or a small config,
 * and the real `minispy --json --output FILE`, whose output the test
 * parses with json-c in strict mode with UTF-8 validation. Root only
 * (fanotify, root-owned filter objects).
 *
 * Like test_daemon.c, each program runs in a private mount namespace on a
 * scratch tmpfs, and each test has its own runtime directory, filter
 * directory (root-owned 0755, holding a 0644 copy of minispy.so: the
 * loader refuses anything else) and watched directory. File operations
 * whose process the test checks are done by tests/fsop, held open with
 * --hold so that its pid, uid and exe are still there to be verified.
 * Every wait is bounded (WAIT_MS).
 */
#ifndef FLTMGR_MINISPY_SERVICE_FIXTURE_H
#define FLTMGR_MINISPY_SERVICE_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* Each wait ends as soon as its condition holds; the bound is for the
 * TSan build on a loaded 2-core machine, where a service life has taken
 * over 10 s to connect. */
#define WAIT_MS 30000

/* fsop (minispy_service_fixture_init()), the scratch tmpfs, and the
 * paths of the current test (setup()), the daemon and the service. */
extern char fsop_bin[PATH_MAX];
extern char scratch[];
extern char rundir[128], fdir[128], watch[128], conf[128], dlog[128], out[128], slog[128];
extern pid_t daemon_pid, spy_pid;

/* A path under watch. */
char *at(const char *rel);

/* fltmgrd -f: the built-in default on the watched directory, or conf. */
void daemon_start(bool with_conf);

/* SIGTERM, and its exit status (tu_expect_exit()). */
int daemon_stop(void);

/* minispy --json --output out --runtime-dir rundir [extra...]; waits for
 * its n-th "connected to" line when wait_connected. */
pid_t spy_start_args(const char *const extra[], bool wait_connected);

/* spy_start_args(NULL, true) as spy_pid. */
void spy_start(void);

/* Every line of the output file, each parsed strictly (RFC 8259, UTF-8
 * validated): a line that is not valid JSON fails the test. Returns a
 * JSON array the caller puts. While the service runs, the last line may
 * still be half written (a long record takes more than one write(2));
 * polling callers pass live = true to leave it for the next look. */
struct json_object *records_read_live(const char *path, bool live);

/* records_read_live(path, false). */
struct json_object *records_read(const char *path);

/* Member key of o (NULL if none); as a string; as an integer. */
struct json_object *member(struct json_object *o, const char *key);
const char *str(struct json_object *o, const char *key);
int64_t num(struct json_object *o, const char *key);

/* The exact bytes of string member key ("path"...): key_bytes if there
 * is one, else the string itself. Static storage. */
const char *name_of(struct json_object *o, const char *key);

/* The first record in out with this op and path (and pid, if > 0),
 * waited for up to WAIT_MS (fails the test then); a new reference. */
struct json_object *wait_record(const char *op, const char *path, pid_t pid);

/* Each test's own paths: a filter directory holding minispy.so, a
 * watched directory any user may write, and the names of the runtime
 * directory, conf, output and logs. teardown() kills the service and
 * stops the daemon, failing the test if it did not exit 0. */
int setup(void **state);
int teardown(void **state);

/* Wait until the filter has been given n events (fltmc stats). */
void wait_delivered(int64_t n);

/* Creates count files named prefix0, prefix1, ... from this process. */
void make_files(const char *prefix, int count);

/* Only creates are reported (param.ops), so one file is one record. */
void write_create_only_conf(const char *extra);

/* fltmc --json CMD [ARG...] against the daemon, parsed (a new
 * reference). */
struct json_object *fltmc_json_cmd(const char *args);

/* fltmc stats --json, parsed (a new reference). */
struct json_object *fltmc_stats(void);

/* One counter of the daemon's engine (fltmc stats). */
int64_t engine_counter(const char *name);

/* What each program does before its tests: checks for root and the
 * paths meson gives (FLTMGR_TEST_*), and enters a private mount
 * namespace with a scratch tmpfs. prog names the program in messages. 0,
 * or the exit status to return (77: skip). */
int minispy_service_fixture_init(const char *prog);

/* After the tests: removes the scratch tmpfs. */
void minispy_service_fixture_fini(void);

#endif
