/* SPDX-License-Identifier: MIT */
/* daemon_fixture.c — see daemon_fixture.h. */
#include "daemon_fixture.h"

extern char **environ;
const char *fltmgrd_bin, *fltmc_bin, *filter_so;
char scratch[] = "/tmp/fltmgr-daemon.XXXXXX";
char rundir[64], fdir[256], conf[256], watch[256], logfile[256];
char fltmc_nobody[300];

/* ---- small helpers ---- */

char *
read_file(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

void
copy_filter(const char *name)
{
	char cmd[2048], to[512];

	snprintf(to, sizeof(to), "%s/%s", fdir, name);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0644 '%s'", filter_so, to, to);
	assert_int_equal(system(cmd), 0);
}

void
write_conf2(const char *daemon_extra, const char *extra)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "[fltmgrd]\n"
		 "filter_dir = %s\n"
		 "log_level = info\n"
		 "%s"
		 "\n"
		 "[filter tf]\n"
		 "altitude = 300000\n"
		 "object = tf.so\n"
		 "attach = %s\n"
		 "param.deny = secret\n"
		 "param.port = tfport\n"
		 "%s",
		 fdir, daemon_extra ? daemon_extra : "", watch, extra ? extra : "");
	tu_write_file_mode(conf, text, 0644);
}

void
write_conf(const char *extra)
{
	write_conf2(NULL, extra);
}

int
run_as(char *out, size_t out_len, uid_t uid, gid_t gid, char *const argv[])
{
	char path[300];
	int fd, status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/run.out", scratch);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(127);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (uid != (uid_t)-1 &&
		    (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
			_exit(126);
		execve(argv[0], argv, environ);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* A longer output is cut: the tests look for short phrases. */
	if (out && snprintf(out, out_len, "%s", read_file(path)) >= (int)out_len)
		out[out_len - 1] = '\0';
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct json_object *
fltmc_json(const char *cmd, const char *arg1, const char *arg2)
{
	static char out[65536];
	struct json_object *o;
	int rc;

	rc = run_as(out, sizeof(out), (uid_t)-1, 0,
		    (char *const[]){ (char *)fltmc_bin, "--runtime-dir", rundir, "--json",
				     (char *)cmd, (char *)arg1, (char *)arg2, NULL });
	o = json_tokener_parse(out);
	if (!o)
		fail_msg("fltmc %s: exit %d, not JSON: %s", cmd, rc, out);
	return o;
}

/* ---- the daemon ---- */

pid_t daemon_pid;
uint64_t start_bounding_keep;

static int
cap_last(void)
{
	int n = atoi(read_file("/proc/sys/kernel/cap_last_cap"));

	return n > 0 && n < 64 ? n : 40;
}

/* In a child before execve: drops every capability not in keep from the
 * bounding set. */
static int
bounding_keep_only(uint64_t keep)
{
	for (int c = 0; c <= cap_last(); c++)
		if (!(keep & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return -1;
	return 0;
}

pid_t
daemon_start_args(char *const extra[])
{
	char *argv[16] = { (char *)fltmgrd_bin, "--foreground", "--runtime-dir", rundir };
	int n = 4;
	pid_t pid;

	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fd, STDERR_FILENO);
		if (start_bounding_keep && bounding_keep_only(start_bounding_keep) < 0)
			_exit(126);
		execve(argv[0], argv, environ);
		_exit(127);
	}
	if (!tu_wait_daemon_ready(rundir, NULL, 10000))
		fail_msg("fltmgrd did not start: %s", read_file(logfile));
	return pid;
}

void
daemon_start(void)
{
	daemon_pid = daemon_start_args((char *const[]){ "--config", conf, NULL });
}

int
daemon_stop(void)
{
	int status;

	if (daemon_pid <= 0)
		return -1;
	kill(daemon_pid, SIGTERM);
	assert_int_equal(waitpid(daemon_pid, &status, 0), daemon_pid);
	daemon_pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- fixtures ---- */

int
setup(void **state)
{
	static int n;

	(void)state;
	start_bounding_keep = 0;
	snprintf(rundir, sizeof(rundir), "%s/run%d", scratch, n);
	snprintf(fdir, sizeof(fdir), "%s/filters%d", scratch, n);
	snprintf(watch, sizeof(watch), "%s/watch%d", scratch, n);
	snprintf(conf, sizeof(conf), "%s/fltmgr%d.conf", scratch, n);
	snprintf(logfile, sizeof(logfile), "%s/daemon%d.log", scratch, n);
	n++;
	assert_int_equal(mkdir(fdir, 0755), 0);
	assert_int_equal(mkdir(watch, 0777), 0);
	copy_filter("tf.so");
	tu_write_file_mode(strcat(strcpy((char[512]){ 0 }, watch), "/secret.txt"), "s\n",
			   0644);
	tu_write_file_mode(strcat(strcpy((char[512]){ 0 }, watch), "/plain.txt"), "p\n",
			   0644);
	write_conf(NULL);
	return 0;
}

int
teardown(void **state)
{
	(void)state;
	if (daemon_pid > 0) {
		int rc = daemon_stop();

		if (rc != 0)
			fail_msg("fltmgrd exited %d: %s", rc, read_file(logfile));
	}
	return 0;
}

int
try_open(const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", watch, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* ---- a service on the test filter's port ---- */

void
service_connect(struct service *s)
{
	char path[300];
	int r;

	snprintf(path, sizeof(path), "%s/tfport", rundir);
	r = filter_connect_communication_port(path, 0, NULL, 0, &s->port);
	if (r < 0)
		fail_msg("connect %s: %s", path, strerror(-r));
	s->connected = 1;
}

/* ---- filter objects, and the daemon's health ---- */

void
copy_file_mode(const char *from, const char *to, mode_t mode)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod %04o '%s'", from, to,
		 (unsigned)mode, to);
	assert_int_equal(system(cmd), 0);
}

bool
daemon_alive(void)
{
	int status;

	return daemon_pid > 0 && waitpid(daemon_pid, &status, WNOHANG) == 0;
}

/* The text of status's problem for filter name, or NULL. */
static const char *
status_problem(struct json_object *st, const char *name)
{
	struct json_object *a = NULL;

	if (!json_object_object_get_ex(st, "problems", &a) ||
	    !json_object_is_type(a, json_type_array))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *p = json_object_array_get_idx(a, i), *f = NULL;

		if (json_object_object_get_ex(p, "filter", &f) && f &&
		    !strcmp(json_object_get_string(f), name))
			return json_object_get_string(jget(p, "problem"));
	}
	return NULL;
}

void
expect_health(bool healthy, const char *name, const char *want)
{
	struct json_object *o = fltmc_json("status", NULL, NULL);
	const char *p = status_problem(o, name);

	if (json_object_get_boolean(jget(o, "healthy")) != healthy ||
	    (want && (!p || !strstr(p, want))) || (healthy && p))
		fail_msg("expected healthy %d%s%s: %s", healthy, want ? " with " : "",
			 want ? want : "", json_object_to_json_string(o));
	json_object_put(o);
}

void
expect_tf_running(int instances)
{
	struct json_object *o = fltmc_json("filters", NULL, NULL);
	struct json_object *f = json_object_array_get_idx(jget(o, "filters"), 0);

	if (json_object_array_length(jget(o, "filters")) != 1 || !f ||
	    strcmp(json_object_get_string(jget(f, "name")), "tf") ||
	    strcmp(json_object_get_string(jget(f, "state")), "running") ||
	    jint(f, "instances") != instances)
		fail_msg("tf is not running with %d instance(s): %s", instances,
			 json_object_to_json_string(o));
	json_object_put(o);
	assert_int_equal(try_open("secret.txt"), -EPERM);
}

void
install_object(mode_t mode, uid_t owner)
{
	char from[300], to[300];

	copy_filter(".tf.so.new");
	snprintf(from, sizeof(from), "%s/.tf.so.new", fdir);
	snprintf(to, sizeof(to), "%s/tf.so", fdir);
	assert_int_equal(chmod(from, mode), 0);
	assert_int_equal(chown(from, owner, owner), 0);
	assert_int_equal(rename(from, to), 0);
}

/* ---- the start of each program ---- */

int
daemon_fixture_init(const char *prog)
{
	int r;

	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	fltmc_bin = getenv("FLTMGR_TEST_FLTMC");
	filter_so = getenv("FLTMGR_TEST_FILTER");
	if (geteuid() != 0) {
		printf("%s: SKIP: needs root (fanotify, root-owned filter "
		       "objects)\n",
		       prog);
		return 77;
	}
	if (!fltmgrd_bin || !fltmc_bin || !filter_so) {
		printf("%s: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_FLTMC and "
		       "FLTMGR_TEST_FILTER must be set (meson test sets them)\n",
		       prog);
		return 1;
	}
	/* A private mount namespace with a scratch tmpfs: the daemon's
	 * filesystem marks never see the rest of the machine's activity. */
	r = tu_private_scratch(prog, scratch, "fltmgr-daemon", 64);
	if (r != 0)
		return r;
	unsetenv("FLTMGR_RUNTIME_DIR");
	/* What uid 65534 runs is copied into the scratch (0755): the
	 * checkout may be in a directory that user cannot enter. */
	snprintf(fltmc_nobody, sizeof(fltmc_nobody), "%s/bin", scratch);
	if (mkdir(fltmc_nobody, 0755) < 0)
		return 1;
	snprintf(fltmc_nobody, sizeof(fltmc_nobody), "%s/bin/fltmc", scratch);
	{
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0755 '%s'", fltmc_bin,
			 fltmc_nobody, fltmc_nobody);
		if (system(cmd) != 0)
			return 1;
	}
	/* FLTMGR_TEST_ONLY=PATTERN runs the matching tests only (debugging). */
	if (getenv("FLTMGR_TEST_ONLY"))
		cmocka_set_test_filter(getenv("FLTMGR_TEST_ONLY"));
	return 0;
}

void
daemon_fixture_fini(void)
{
	tu_private_scratch_remove(scratch);
}
