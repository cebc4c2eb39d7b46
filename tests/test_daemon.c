/* SPDX-License-Identifier: MIT */
/*
 * test_daemon.c — fltmgrd's life and what the operator sees of it:
 * start, READY, status and stop; the built-in default and the shipped
 * configuration; --daemonize; fltmc load; the metrics file; a daemon run
 * from its build tree; denials in the log and the journal; instance
 * state and counters. Reloads, refusals, the control socket and
 * privileges have programs of their own (test_daemon_*.c).
 *
 * The real fltmgrd and fltmc in a private mount namespace, root only;
 * the daemon, the paths of each test and its setup: daemon_fixture.h.
 */
#include "daemon_fixture.h"

/* ---- the daemon ---- */

static int notify_fd = -1;

static void
notify_socket_open(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", scratch);
	unlink(sa.sun_path);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(notify_fd >= 0);
	assert_int_equal(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
}

/* Waits for a datagram containing `what`; returns 1 if it came. */
static int
notify_wait(const char *what, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;

	while (tu_now_ms() < end) {
		struct timeval tv = { .tv_usec = 100000 };
		char buf[1024];
		ssize_t n;

		setsockopt(notify_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(notify_fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, what))
			return 1;
	}
	return 0;
}

/* ---- tests ---- */

/* Start, READY over NOTIFY_SOCKET, status and filters through fltmc
 * --json, protection in effect, SIGTERM stops it cleanly. */
static void
test_start_status_stop(void **state)
{
	struct json_object *o, *f;
	char path[300];

	(void)state;
	notify_socket_open();
	daemon_start();
	assert_true(notify_wait("READY=1", 10000));

	o = fltmc_json("status", NULL, NULL);
	assert_true(json_object_get_boolean(jget(o, "ok")));
	assert_int_equal(jint(o, "pid"), daemon_pid);
	assert_int_equal(jint(o, "filters"), 1);
	assert_string_equal(json_object_get_string(jget(o, "config")), conf);
	assert_true(json_object_get_boolean(jget(o, "healthy")));
	json_object_put(o);

	o = fltmc_json("filters", NULL, NULL);
	f = json_object_array_get_idx(jget(o, "filters"), 0);
	assert_non_null(f);
	assert_string_equal(json_object_get_string(jget(f, "name")), "tf");
	assert_string_equal(json_object_get_string(jget(f, "altitude")), "300000");
	assert_int_equal(jint(f, "instances"), 1);
	json_object_put(o);

	assert_int_equal(try_open("secret.txt"), -EPERM);
	assert_int_equal(try_open("plain.txt"), 0);
	o = fltmc_json("instances", NULL, NULL);
	f = json_object_array_get_idx(jget(o, "instances"), 0);
	assert_string_equal(json_object_get_string(jget(f, "path")), watch);
	assert_true(jint(f, "denied") >= 1);
	json_object_put(o);

	assert_int_equal(daemon_stop(), 0);
	assert_true(notify_wait("STOPPING=1", 2000));
	snprintf(path, sizeof(path), "%s/control", rundir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/tfport", rundir);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(try_open("secret.txt"), 0); /* no daemon, no filter */
	unsetenv("NOTIFY_SOCKET");
	close(notify_fd);
	notify_fd = -1;
}

/* No configuration: the built-in default, minispy on --attach PATH. Its
 * service gets a record for an open there. And the shipped default
 * configuration passes --check-config. */
static void
test_builtin_default_and_shipped_config(void **state)
{
	const char *minispy = getenv("FLTMGR_TEST_MINISPY");
	const char *shipped = getenv("FLTMGR_TEST_SHIPPED_CONF");
	struct filter_message_header h;
	struct json_object *o, *f;
	char cmd[2048], out[4096], port[300], buf[65536];
	filter_port *p = NULL;
	bool seen = false;

	(void)state;
	TU_NEED_KERNEL("names"); /* minispy */
	assert_non_null(minispy);
	assert_non_null(shipped);
	snprintf(cmd, sizeof(cmd),
		 "cp '%s' '%s/minispy.so' && chmod 0644 '%s/minispy.so'", minispy, fdir,
		 fdir);
	assert_int_equal(system(cmd), 0);

	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--check-config", "--config",
			     (char *)shipped, "--filter-dir", fdir),
			 0);
	assert_non_null(strstr(out, "configuration OK (1 filter)"));

	daemon_pid = daemon_start_args(
		(char *const[]){ "--filter-dir", fdir, "--attach", watch, NULL });
	o = fltmc_json("filters", NULL, NULL);
	f = json_object_array_get_idx(jget(o, "filters"), 0);
	assert_non_null(f);
	assert_string_equal(json_object_get_string(jget(f, "name")), "minispy");
	assert_string_equal(json_object_get_string(jget(f, "altitude")), "385100");
	assert_int_equal(jint(f, "instances"), 1);
	json_object_put(o);
	o = fltmc_json("status", NULL, NULL);
	assert_null(json_object_object_get(o, "config")); /* built-in */
	json_object_put(o);

	snprintf(port, sizeof(port), "%s/minispy", rundir);
	assert_int_equal(filter_connect_communication_port(port, 0, NULL, 0, &p), 0);
	/* The service's own opens are excluded: a child does the open. */
	if (fork() == 0) {
		char path[512];

		snprintf(path, sizeof(path), "%s/plain.txt", watch);
		_exit(open(path, O_RDONLY) < 0);
	}
	wait(NULL);
	for (int i = 0; i < 200 && !seen; i++) {
		int n = filter_get_message(p, &h, buf, sizeof(buf) - 1, 50);

		if (n > 0) {
			buf[n] = '\0';
			/* The record carries the path as a string. */
			seen = memmem(buf, (size_t)n, "plain.txt", 9) != NULL;
		}
	}
	assert_true(seen);
	filter_close_port(p);
}

/* Without --foreground the parent returns once the daemon is filtering. */
static void
test_daemonize(void **state)
{
	char out[4096], pidfile[300];
	int pid;

	(void)state;
	assert_int_equal(
		RUN(out, (char *)fltmgrd_bin, "--runtime-dir", rundir, "--config", conf),
		0);
	assert_int_equal(try_open("secret.txt"), -EPERM); /* already filtering */
	snprintf(pidfile, sizeof(pidfile), "%s/fltmgrd.pid", rundir);
	pid = atoi(read_file(pidfile));
	assert_true(pid > 1);
	assert_int_equal(kill(pid, SIGTERM), 0);
	for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
		usleep(20000);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(try_open("secret.txt"), 0);
}

/* ---- loading filters, the metrics file, a daemon in its build tree ---- */

/* fltmc load without an altitude: the filter's own default (minispy
 * exports 385100), as from a Windows INF. A refusal says why: a second
 * minispy on the same port names the filter holding the port. */
static void
test_load_uses_filters_own_altitude_and_refusals_say_why(void **state)
{
	const char *minispy = getenv("FLTMGR_TEST_MINISPY");
	char cmd[2048], out[4096];
	struct json_object *o;
	bool found = false;

	(void)state;
	TU_NEED_KERNEL("names"); /* minispy */
	assert_non_null(minispy);
	snprintf(cmd, sizeof(cmd),
		 "cp '%s' '%s/minispy.so' && chmod 0644 '%s/minispy.so'", minispy, fdir,
		 fdir);
	assert_int_equal(system(cmd), 0);
	daemon_start();
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "load", "minispy"),
		0);
	o = fltmc_json("filters", NULL, NULL);
	for (size_t i = 0; i < json_object_array_length(jget(o, "filters")); i++) {
		struct json_object *f = json_object_array_get_idx(jget(o, "filters"), i);

		if (!strcmp(json_object_get_string(jget(f, "name")), "minispy")) {
			assert_string_equal(json_object_get_string(jget(f, "altitude")),
					    "385100");
			found = true;
		}
	}
	json_object_put(o);
	assert_true(found);
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "load",
			     "spy2", "--object", "minispy.so"),
			 1);
	if (!strstr(out, "port name minispy is taken by filter minispy; set param.port"))
		fail_msg("fltmc load spy2: %s", out);
	/* tf names no altitude of its own: the refusal says what to give */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "load",
			     "tf9", "--object", "tf.so"),
			 1);
	if (!strstr(out, "names no default altitude") || !strstr(out, "give one"))
		fail_msg("fltmc load tf9: %s", out);
	assert_int_equal(daemon_stop(), 0);
}

/* metrics_file: the counters in the Prometheus text format, written at
 * start and every metrics_interval seconds (renamed into place). */
static int
metrics_has_denials(void *path)
{
	const char *text = read_file(path);

	return strstr(text, "fltmgr_filter_denied_total{filter=\"tf\"} 1\n") != NULL;
}

static void
test_metrics_file_written_on_an_interval(void **state)
{
	char daemon_extra[700], path[600];

	(void)state;
	snprintf(path, sizeof(path), "%s/metrics.prom", scratch);
	unlink(path);
	snprintf(daemon_extra, sizeof(daemon_extra),
		 "metrics_file = %s\nmetrics_interval = 1\n", path);
	write_conf2(daemon_extra, NULL);
	daemon_start();
	/* written at start, just after the control socket appears */
	if (!tu_wait_until(tu_file_exists, path, 5000))
		fail_msg("no %s: %s", path, read_file(logfile));
	assert_non_null(strstr(read_file(path), "# TYPE fltmgr_engine_pending gauge\n"));
	assert_non_null(
		strstr(read_file(path), "# TYPE fltmgr_engine_denied_total counter\n"));
	assert_int_equal(try_open("secret.txt"), -EPERM);
	if (!tu_wait_until(metrics_has_denials, path, 5000))
		fail_msg("no denial in %s after 5 s: %s", path, read_file(path));
	assert_int_equal(daemon_stop(), 0);
}

/* Run from its build tree, fltmgrd finds the filters built beside it
 * (the built-in default loads minispy.so from there); a copy of the same
 * binary elsewhere is "installed" and looks in the compiled-in filter
 * directory only. */
static void
test_uninstalled_daemon_uses_its_build_trees_filters(void **state)
{
	const char *minispy = getenv("FLTMGR_TEST_MINISPY");
	const char *lib = getenv("FLTMGR_TEST_NOENTRY"); /* <build>/src/libfltuser.so */
	char dir[PATH_MAX], libdir[PATH_MAX], copy[600], cmd[2 * PATH_MAX], out[4096];
	struct stat st;

	(void)state;
	assert_non_null(minispy);
	assert_non_null(lib);
	snprintf(dir, sizeof(dir), "%s", minispy);
	*strrchr(dir, '/') = '\0';
	snprintf(libdir, sizeof(libdir), "%s", lib);
	*strrchr(libdir, '/') = '\0';
	if (stat(dir, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		print_message("skipped: the build tree's %s is not root's (0755), so the "
			      "loader would refuse its filters anyway\n",
			      dir);
		skip();
	}
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--check-config"), 0);
	if (!strstr(out, "<built-in>: configuration OK (1 filter)"))
		fail_msg("fltmgrd --check-config from the build tree: %s", out);

	snprintf(copy, sizeof(copy), "%s/fltmgrd-installed", scratch);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", fltmgrd_bin, copy);
	assert_int_equal(system(cmd), 0);
	setenv("LD_LIBRARY_PATH", libdir, 1);
	assert_int_equal(RUN(out, copy, "--check-config"), 1);
	unsetenv("LD_LIBRARY_PATH");
	if (strstr(out, dir) || !strstr(out, "/fltmgr/filters/minispy.so"))
		fail_msg("a copy of fltmgrd looked in the build tree, or not in the "
			 "installed filter directory: %s",
			 out);
}

/* ---- decisions the operator sees ---- */

static int
log_has(void *text)
{
	return strstr(read_file(logfile), text) != NULL;
}

static size_t
log_count(const char *text)
{
	const char *p = read_file(logfile);
	size_t n = 0;

	while ((p = strstr(p, text))) {
		n++;
		p += strlen(text);
	}
	return n;
}

static const char *
self_exe(void)
{
	static char self[512];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	assert_true(n > 0);
	self[n] = '\0';
	return self;
}

/* A denial by a filter's verdict is logged after the answer: the filter,
 * the operation, the path, the pid, the program and the reason; at most
 * one line a second per filter and kind, the next saying how many were
 * held back. */
static void
test_denials_are_logged_with_who_and_why(void **state)
{
	char line[1024];

	(void)state;
	daemon_start();
	for (int i = 0; i < 5; i++)
		assert_int_equal(try_open("secret.txt"), -EPERM);
	snprintf(line, sizeof(line),
		 "filter tf: open of %s/secret.txt by pid %d (%s) denied: verdict", watch,
		 (int)getpid(), self_exe());
	if (!tu_wait_until(log_has, line, 5000))
		fail_msg("no line '%s' in: %s", line, read_file(logfile));
	assert_int_equal(log_count("filter tf: open of"), 1);
	usleep(1100 * 1000);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	if (!tu_wait_until(log_has, "(4 more like it since the last report)", 5000))
		fail_msg("no count of held-back lines in: %s", read_file(logfile));
	/* allows are never logged */
	assert_int_equal(try_open("plain.txt"), 0);
	assert_int_equal(daemon_stop(), 0);
	assert_null(strstr(read_file(logfile), "plain.txt"));
}

/* Has the datagram the field NAME=VALUE (journal native protocol, a
 * value without newlines)? */
static bool
journal_field(const char *dgram, size_t n, const char *name, const char *value)
{
	char want[1200];
	int len = snprintf(want, sizeof(want), "%s=%s\n", name, value);

	for (size_t i = 0; i + (size_t)len <= n; i++)
		if ((i == 0 || dgram[i - 1] == '\n') &&
		    !memcmp(dgram + i, want, (size_t)len))
			return true;
	return false;
}

/* Under systemd (stderr is the journal stream JOURNAL_STREAM names), a
 * denial is one journal entry with a field per item: a journald of our
 * own, a socket at /run/systemd/journal/socket on a tmpfs that only this
 * test's mount namespace sees. */
static void
test_denials_go_to_the_journal_with_fields(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dgram[16384], env[64], path[600], pid[16];
	int64_t end;
	struct stat st;
	bool found = false;
	int j, fd;

	(void)state;
	assert_int_equal(mount("fltmgr-test-run", "/run", "tmpfs", 0, "mode=0755"), 0);
	assert_int_equal(mkdir("/run/systemd", 0755), 0);
	assert_int_equal(mkdir("/run/systemd/journal", 0755), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/run/systemd/journal/socket");
	j = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(j >= 0);
	assert_int_equal(bind(j, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	close(fd);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	daemon_start();
	unsetenv("JOURNAL_STREAM");
	assert_int_equal(try_open("secret.txt"), -EPERM);
	snprintf(path, sizeof(path), "%s/secret.txt", watch);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	end = tu_now_ms() + 5000;
	while (!found && tu_now_ms() < end) {
		struct timeval tv = { .tv_usec = 100000 };
		ssize_t n;

		setsockopt(j, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(j, dgram, sizeof(dgram), 0);
		if (n <= 0 || !journal_field(dgram, (size_t)n, "MESSAGE_ID",
					     "c3b5b1b7e3a54f4f9a1e0f6d2b8c7a61"))
			continue;
		found = true;
		assert_true(journal_field(dgram, (size_t)n, "FILTER", "tf"));
		assert_true(journal_field(dgram, (size_t)n, "OPERATION", "open"));
		assert_true(journal_field(dgram, (size_t)n, "PATH", path));
		assert_true(journal_field(dgram, (size_t)n, "PID", pid));
		assert_true(journal_field(dgram, (size_t)n, "EXE", self_exe()));
		assert_true(journal_field(dgram, (size_t)n, "VERDICT", "deny"));
		assert_true(journal_field(dgram, (size_t)n, "REASON", "verdict"));
		assert_true(journal_field(dgram, (size_t)n, "PRIORITY", "5"));
		assert_true(
			journal_field(dgram, (size_t)n, "SYSLOG_IDENTIFIER", "fltmgrd"));
	}
	assert_int_equal(daemon_stop(), 0);
	close(j);
	umount2("/run", MNT_DETACH);
	if (!found)
		fail_msg("no journal entry for the denial; daemon log: %s",
			 read_file(logfile));
	/* not on stderr as well */
	assert_null(strstr(read_file(logfile), "denied: verdict"));
}

/* ---- instance state ---- */

/* fltmc instances shows each instance's state against the mount table
 * (text and --json: state, state_time in ISO-8601 UTC, reattaches), and
 * fltmc stats the engine's and filters' fail-closed counters. */
static void
test_instance_state_and_new_counters_shown(void **state)
{
	static const char *const engine_keys[] = { "scope_uncertain", "cache_refused",
						   "mount_changes",
						   "instance_reattaches" };
	struct json_object *o, *in, *f;
	const char *when;
	char out[8192];

	(void)state;
	daemon_start();
	o = fltmc_json("instances", NULL, NULL);
	in = json_object_array_get_idx(jget(o, "instances"), 0);
	assert_non_null(in);
	assert_string_equal(json_object_get_string(jget(in, "state")), "attached");
	assert_int_equal(jint(in, "reattaches"), 0);
	when = json_object_get_string(jget(in, "state_time"));
	/* 2026-12-07T03:04:05Z */
	if (strlen(when) != 20 || when[4] != '-' || when[10] != 'T' || when[19] != 'Z')
		fail_msg("state_time %s is not ISO-8601 UTC", when);
	json_object_put(o);
	assert_int_equal(FLTMC(out, "instances"), 0);
	if (!strstr(out, "State") || !strstr(out, "attached"))
		fail_msg("fltmc instances: %s", out);

	o = fltmc_json("stats", NULL, NULL);
	for (size_t i = 0; i < sizeof(engine_keys) / sizeof(engine_keys[0]); i++)
		assert_int_equal(jint(jget(o, "engine"), engine_keys[i]), 0);
	f = json_object_array_get_idx(jget(o, "filters"), 0);
	assert_int_equal(jint(f, "timeouts_capped"), 0);
	json_object_put(o);
	assert_int_equal(FLTMC(out, "stats"), 0);
	for (size_t i = 0; i < sizeof(engine_keys) / sizeof(engine_keys[0]); i++)
		assert_non_null(strstr(out, engine_keys[i]));
	assert_non_null(strstr(out, "timeouts_capped"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_status_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builtin_default_and_shipped_config,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemonize, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_instance_state_and_new_counters_shown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_denials_are_logged_with_who_and_why,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_file_written_on_an_interval,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_uninstalled_daemon_uses_its_build_trees_filters, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_load_uses_filters_own_altitude_and_refusals_say_why, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_denials_go_to_the_journal_with_fields, setup, teardown),
	};
	int r;

	r = daemon_fixture_init("test_daemon");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	daemon_fixture_fini();
	return r;
}
