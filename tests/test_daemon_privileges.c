/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_privileges.c — the capabilities fltmgrd keeps (docs/security.md
 * section 5): the drop in every thread, under systemd's bounding set,
 * without CAP_SETPCAP, nothing left for an executed program, and what
 * the kept ones are for (the engine after the drop, other users'
 * directories and services' executables).
 *
 * The real fltmgrd and fltmc in a private mount namespace, root only;
 * the daemon, the paths of each test and its setup: daemon_fixture.h.
 */
#include "daemon_fixture.h"

/* ---- privileges (docs/security.md section 5) ---- */

/* The set docs/security.md documents, spelled out independently of
 * privileges.c. */
#define DOCUMENTED_CAPS                                            \
	((1ULL << CAP_SYS_ADMIN) | (1ULL << CAP_DAC_READ_SEARCH) | \
	 (1ULL << CAP_SYS_PTRACE) | (1ULL << CAP_CHOWN))

/* A "Name:\tHEX" field of a /proc status file. */
static uint64_t
status_hex(const char *status, const char *name)
{
	const char *p = strstr(status, name);

	if (!p)
		fail_msg("no %s in %s", name, status);
	return strtoull(p + strlen(name), NULL, 16);
}

/* Checks every thread of pid: effective and permitted exactly eff,
 * bounding exactly bnd, nothing inheritable or ambient, no_new_privs.
 * Returns the number of threads checked. */
static int
check_thread_caps(pid_t pid, uint64_t eff, uint64_t bnd)
{
	char dir[64], path[384];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		const char *st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
		st = read_file(path);
		if (!*st)
			continue; /* the thread ended meanwhile */
		if (status_hex(st, "CapEff:\t") != eff ||
		    status_hex(st, "CapPrm:\t") != eff ||
		    status_hex(st, "CapBnd:\t") != bnd ||
		    status_hex(st, "CapInh:\t") != 0 ||
		    status_hex(st, "CapAmb:\t") != 0 || !strstr(st, "NoNewPrivs:\t1"))
			fail_msg("thread %s of fltmgrd: expected CapEff/CapPrm %016llx, "
				 "CapBnd %016llx, no inheritable, ambient, "
				 "no_new_privs:\n%s",
				 de->d_name, (unsigned long long)eff,
				 (unsigned long long)bnd, st);
		n++;
	}
	closedir(d);
	return n;
}

/* After start and after a reload that starts new threads (a second
 * filter, ports, engine readers), every thread of fltmgrd holds exactly
 * the documented set, bounding set included, and the log names it. */
static void
test_capabilities_reduced_in_every_thread(void **state)
{
	char extra[512], out[4096];
	int before, after;

	(void)state;
	assert_int_equal(privileges_kept_mask(), DOCUMENTED_CAPS);
	daemon_start();
	before = check_thread_caps(daemon_pid, DOCUMENTED_CAPS, DOCUMENTED_CAPS);
	assert_true(before > 1); /* the engine's threads, not only main */
	assert_non_null(
		strstr(read_file(logfile),
		       "capabilities: keeping CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH, "
		       "CAP_SYS_PTRACE, CAP_CHOWN;"));
	assert_non_null(strstr(read_file(logfile), "bounding set reduced to the same"));

	copy_filter("tf2.so");
	snprintf(extra, sizeof(extra),
		 "\n[filter tf2]\naltitude = 200000\nobject = tf2.so\nattach = %s\n"
		 "param.port = tf2port\n",
		 watch);
	write_conf(extra);
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	after = check_thread_caps(daemon_pid, DOCUMENTED_CAPS, DOCUMENTED_CAPS);
	assert_true(after > before); /* tf2's accept thread at least */
	assert_int_equal(try_open("secret.txt"), -EPERM);
}

/* Started as systemd starts it (bounding set = the unit's
 * CapabilityBoundingSet=, so no CAP_SETPCAP): the same set, no warning. */
static void
test_capabilities_under_the_units_bounding_set(void **state)
{
	(void)state;
	start_bounding_keep = DOCUMENTED_CAPS;
	daemon_start();
	check_thread_caps(daemon_pid, DOCUMENTED_CAPS, DOCUMENTED_CAPS);
	assert_null(strstr(read_file(logfile), "warning: capabilities"));
	assert_int_equal(try_open("secret.txt"), -EPERM);
}

/* Without CAP_SETPCAP and with a wider bounding set, fltmgrd cannot
 * shrink the bounding set: it says so, naming what is left, and still
 * drops its effective and permitted sets. */
static void
test_bounding_set_without_setpcap_is_reported(void **state)
{
	/* Ours may already lack some (a container, a sandboxed CI). */
	uint64_t ours = status_hex(read_file("/proc/self/status"), "CapBnd:\t");

	(void)state;
	start_bounding_keep = ours & ~(1ULL << CAP_SETPCAP);
	daemon_start();
	check_thread_caps(daemon_pid, DOCUMENTED_CAPS, start_bounding_keep);
	assert_non_null(strstr(read_file(logfile), "the bounding set still holds"));
	assert_non_null(strstr(read_file(logfile), "bounding set not reduced"));
	assert_int_equal(try_open("secret.txt"), -EPERM);
}

#define DROP_CHILD_ARG "--drop-and-exec"

/* The child's side of test_drop_leaves_nothing_for_an_executed_program,
 * in a freshly executed copy of this program (a forked one may hold a
 * sanitizer's runtime thread, and the drop refuses to run then). Exits 0,
 * or a code naming the first check that failed. */
static int
drop_child_main(void)
{
	int bits;

	if (privileges_drop() < 0)
		_exit(10);
	bits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (bits < 0 || !(bits & SECBIT_NOROOT) || !(bits & SECBIT_NOROOT_LOCKED))
		_exit(11);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		_exit(12);
	if (status_hex(read_file("/proc/self/status"), "CapEff:\t") != DOCUMENTED_CAPS)
		_exit(13);
	execl("/bin/sh", "sh", "-c",
	      "grep -q '^CapEff:.0000000000000000$' /proc/self/status && "
	      "grep -q '^CapPrm:.0000000000000000$' /proc/self/status",
	      (char *)NULL);
	_exit(14);
}

/* privileges_drop() in a child of ours: securebits locked so that uid 0
 * gains nothing from execve, no_new_privs, and a program it executes runs
 * with no capability at all. */
static void
test_drop_leaves_nothing_for_an_executed_program(void **state)
{
	char self[PATH_MAX];
	int status;
	ssize_t n;
	pid_t pid;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(self, "test_daemon", DROP_CHILD_ARG, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void *
idle_thread(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

/* Capabilities are per thread: with another thread already running, the
 * drop is refused rather than done in one thread only. */
static void
test_drop_refused_once_threads_exist(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, idle_thread, NULL) != 0)
			_exit(10);
		if (privileges_drop() != -EBUSY)
			_exit(11);
		/* nothing was dropped */
		if (!(status_hex(read_file("/proc/self/status"), "CapEff:\t") &
		      (1ULL << CAP_SETPCAP)))
			_exit(12);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* No filter at start, so the engine (fanotify_init, probe, marks) is
 * created only after the drop, by a reload: it works. */
static void
test_engine_created_after_the_drop(void **state)
{
	char text[512], out[4096];

	(void)state;
	snprintf(text, sizeof(text), "[fltmgrd]\nfilter_dir = %s\n", fdir);
	tu_write_file_mode(conf, text, 0644);
	daemon_start();
	assert_int_equal(try_open("secret.txt"), 0);
	write_conf(NULL);
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	check_thread_caps(daemon_pid, DOCUMENTED_CAPS, DOCUMENTED_CAPS);
}

/* ---- what the kept capabilities are for ---- */

static void
test_private_directory_of_another_user_is_filtered(void **state)
{
	char priv[300], inner[320], path[400], out[4096];

	(void)state;
	write_conf("param.deny_content = EVIL\n");
	snprintf(priv, sizeof(priv), "%s/private", watch);
	snprintf(inner, sizeof(inner), "%s/inner", priv);
	assert_int_equal(mkdir(priv, 0700), 0);
	assert_int_equal(mkdir(inner, 0700), 0);
	snprintf(path, sizeof(path), "%s/evil.bin", inner);
	tu_write_file_mode(path, "an EVIL file\n", 0600);
	assert_int_equal(chown(path, 65534, 65534), 0);
	snprintf(path, sizeof(path), "%s/fine.bin", inner);
	tu_write_file_mode(path, "a fine file\n", 0600);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(chown(inner, 65534, 65534), 0);
	assert_int_equal(chown(priv, 65534, 65534), 0);

	daemon_start();
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "detach",
			     "tf", watch),
			 0);
	assert_int_equal(try_open("private/inner/evil.bin"), 0); /* not attached */
	if (RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "attach", "tf", inner) !=
	    0)
		fail_msg("attach %s: %s", inner, out);
	assert_int_equal(try_open("private/inner/evil.bin"), -EPERM);
	assert_int_equal(try_open("private/inner/fine.bin"), 0);
}

struct peer_child {
	pid_t pid;
	int ready, release; /* pipes: child -> us, us -> child */
};

/* A child that connects to tfport as uid 65534 (non-dumpable after the
 * uid change) and stays connected until released. */
static void
peer_child_start(struct peer_child *pc)
{
	int up[2], down[2];

	assert_int_equal(pipe2(up, O_CLOEXEC), 0);
	assert_int_equal(pipe2(down, O_CLOEXEC), 0);
	pc->pid = fork();
	assert_true(pc->pid >= 0);
	if (pc->pid == 0) {
		struct pollfd pf = { .fd = down[0], .events = POLLIN };
		filter_port *p = NULL;
		char path[300], c;

		close(up[0]);
		close(down[1]);
		snprintf(path, sizeof(path), "%s/tfport", rundir);
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0 ||
		    filter_connect_communication_port(path, 0, NULL, 0, &p) < 0)
			_exit(1);
		c = 1;
		/* Until released, or 60 s should the test fail before that. */
		if (write(up[1], &c, 1) != 1 || poll(&pf, 1, 60000) < 0)
			_exit(1);
		filter_close_port(p);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	pc->ready = up[0];
	pc->release = down[1];
	{
		char c;

		assert_int_equal(read(pc->ready, &c, 1), 1);
	}
}

static void
peer_child_stop(struct peer_child *pc)
{
	int status;

	close(pc->release);
	close(pc->ready);
	assert_int_equal(waitpid(pc->pid, &status, 0), pc->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* fltmc ports names the executable of each connected service, also of a
 * fully privileged root process and of another user's non-dumpable one
 * (ptrace read access: CAP_SYS_PTRACE). */
static void
test_exe_of_privileged_and_other_users_services_is_shown(void **state)
{
	struct service svc = { 0 };
	struct peer_child pc;
	struct json_object *o, *clients;
	char self[PATH_MAX];
	ssize_t n;
	int seen = 0;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	daemon_start();
	service_connect(&svc);
	peer_child_start(&pc);

	o = fltmc_json("ports", NULL, NULL);
	clients = jget(json_object_array_get_idx(jget(o, "ports"), 0), "clients");
	assert_int_equal(json_object_array_length(clients), 2);
	for (size_t i = 0; i < 2; i++) {
		struct json_object *c = json_object_array_get_idx(clients, i);
		struct json_object *exe = jget(c, "exe");
		pid_t pid = (pid_t)jint(c, "pid");

		if (!json_object_is_type(exe, json_type_string))
			fail_msg("no exe for pid %d (uid %lld)", (int)pid,
				 (long long)jint(c, "uid"));
		assert_string_equal(json_object_get_string(exe), self);
		seen |= pid == getpid() ? 1 : pid == pc.pid ? 2 : 0;
	}
	assert_int_equal(seen, 3);
	json_object_put(o);
	peer_child_stop(&pc);
	filter_close_port(svc.port);
}

/* Started without one of the kept capabilities (here CAP_SYS_PTRACE, by
 * the bounding set): the daemon names it and what will not work, and runs
 * with the rest. */
static void
test_missing_kept_capability_is_named(void **state)
{
	const uint64_t without = DOCUMENTED_CAPS & ~(1ULL << CAP_SYS_PTRACE);

	(void)state;
	start_bounding_keep = without;
	daemon_start();
	check_thread_caps(daemon_pid, without, without);
	assert_non_null(strstr(read_file(logfile),
			       "warning: capabilities: CAP_SYS_PTRACE is missing: the "
			       "executable of other users'"));
	assert_int_equal(try_open("secret.txt"), -EPERM);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capabilities_reduced_in_every_thread,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_capabilities_under_the_units_bounding_set, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_bounding_set_without_setpcap_is_reported, setup, teardown),
		cmocka_unit_test(test_drop_leaves_nothing_for_an_executed_program),
		cmocka_unit_test(test_drop_refused_once_threads_exist),
		cmocka_unit_test_setup_teardown(test_engine_created_after_the_drop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_private_directory_of_another_user_is_filtered, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_exe_of_privileged_and_other_users_services_is_shown, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_missing_kept_capability_is_named,
						setup, teardown),
	};
	int r;

	if (argc == 2 && !strcmp(argv[1], DROP_CHILD_ARG))
		return drop_child_main();
	r = daemon_fixture_init("test_daemon_privileges");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	daemon_fixture_fini();
	return r;
}
