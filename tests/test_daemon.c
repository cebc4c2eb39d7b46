/* SPDX-License-Identifier: MIT */
/*
 * test_daemon.c — fltmgrd and fltmc end to end, as an administrator uses
 * them: the real binaries, in a private mount namespace on a scratch
 * tmpfs, each test with its own runtime directory, filter directory and
 * configuration. The filter is tests/filters/test_filter.c (denies opens
 * of paths containing "secret", offers a port that answers "pong").
 * Root only (fanotify, ownership checks).
 */
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
#include "testutil.h"

extern char **environ;

static const char *fltmgrd_bin, *fltmc_bin, *filter_so;
static char scratch[] = "/tmp/fltmgr-daemon.XXXXXX";
static char rundir[64], fdir[256], conf[256], watch[256], logfile[256];
/* fltmc copied where uid 65534 can run it (the checkout may not be
 * reachable for that user). */
static char fltmc_nobody[300];

/* ---- small helpers ---- */

static char *
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

static void
copy_filter(const char *name)
{
	char cmd[2048], to[512];

	snprintf(to, sizeof(to), "%s/%s", fdir, name);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0644 '%s'", filter_so, to, to);
	assert_int_equal(system(cmd), 0);
}

/* The configuration every test starts from: tf on the watch directory;
 * daemon_extra goes into [fltmgrd], extra at the end. */
static void
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

static void
write_conf(const char *extra)
{
	write_conf2(NULL, extra);
}

/* Runs argv with stdout+stderr into out (if not NULL); returns the exit
 * status, or 128+signal. uid: -1 to keep ours. */
static int
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

#define RUN(out, ...) \
	run_as(out, sizeof(out), (uid_t)-1, 0, (char *const[]){ __VA_ARGS__, NULL })

/* fltmc --json ...; returns the parsed reply (caller puts it). */
static struct json_object *
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

static struct json_object *
jget(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no member %s in %s", key, json_object_to_json_string(o));
	return v;
}

static int64_t
jint(struct json_object *o, const char *key)
{
	return json_object_get_int64(jget(o, key));
}

/* ---- the daemon ---- */

static pid_t daemon_pid;
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

/* Nonzero: the daemon is started with only these capabilities in its
 * bounding set (as systemd's CapabilityBoundingSet= does). */
static uint64_t start_bounding_keep;

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

/* Starts fltmgrd -f with extra arguments; waits until it is ready. */
static pid_t
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

static void
daemon_start(void)
{
	daemon_pid = daemon_start_args((char *const[]){ "--config", conf, NULL });
}

/* SIGTERM and wait; returns the exit status. */
static int
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

static int
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

static int
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

static int
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

/* A service connected to the test filter's port. */
struct service {
	filter_port *port;
	int connected;
};

static void
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

/* 0 if the filter answered "pong", else the error. */
static int
service_ping(struct service *s)
{
	char reply[16] = "";
	size_t len = 0;
	int r = filter_send_message(s->port, "ping", 4, reply, sizeof(reply), &len);

	if (r == 0 && (len != 4 || memcmp(reply, "pong", 4)))
		return -EPROTO;
	return r;
}

/* Opens in a loop on another thread: how many, and how many went wrong. */
struct prober {
	pthread_t thread;
	const char *name;
	int expect; /* 0 or -EPERM */
	atomic_bool stop;
	atomic_int done, wrong;
};

static void *
prober_main(void *arg)
{
	struct prober *p = arg;

	while (!atomic_load(&p->stop)) {
		if (try_open(p->name) != p->expect)
			atomic_fetch_add(&p->wrong, 1);
		atomic_fetch_add(&p->done, 1);
		usleep(200);
	}
	return NULL;
}

static void
prober_start(struct prober *p, const char *name, int expect)
{
	p->name = name;
	p->expect = expect;
	assert_int_equal(pthread_create(&p->thread, NULL, prober_main, p), 0);
}

/* Lets the prober run until it has made at least n opens (bounded: a
 * loaded machine may starve it for a while). */
static void
prober_wait_done(struct prober *p, int n)
{
	int64_t end = tu_now_ms() + 10000;

	while (atomic_load(&p->done) < n && tu_now_ms() < end)
		usleep(10000);
}

static int
prober_ran(void *arg)
{
	struct prober *p = arg;

	return atomic_load(&p->done) > 0;
}

static void
prober_stop(struct prober *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
}

static int64_t
daemon_counter(const char *name)
{
	struct json_object *o = fltmc_json("stats", NULL, NULL);
	int64_t v = jint(jget(o, "daemon"), name);

	json_object_put(o);
	return v;
}

/* SIGHUP with an added filter and a changed log level: the unchanged
 * filter's service stays connected and its instance denies throughout. */
static void
test_reload_keeps_service_and_protection(void **state)
{
	struct prober deny = { 0 }, allow = { 0 };
	struct service svc = { 0 };
	struct json_object *o;
	char extra[512], out[4096];
	int before;

	(void)state;
	copy_filter("tf2.so");
	daemon_start();
	service_connect(&svc);
	assert_int_equal(service_ping(&svc), 0);
	prober_start(&deny, "secret.txt", -EPERM);
	prober_start(&allow, "plain.txt", 0);
	/* Both probing before the reloads start (no rate is assumed: the
	 * machine may be busy). */
	assert_true(tu_wait_until(prober_ran, &deny, 10000));
	assert_true(tu_wait_until(prober_ran, &allow, 10000));
	before = atomic_load(&deny.done);

	snprintf(extra, sizeof(extra),
		 "\n[filter tf2]\naltitude = 200000\nobject = tf2.so\nattach = %s\n",
		 watch);
	write_conf(extra);
	kill(daemon_pid, SIGHUP);
	for (int i = 0; i < 100 && daemon_counter("reloads") < 1; i++)
		usleep(50000);
	assert_int_equal(daemon_counter("reloads"), 1);
	/* And once more through the control socket. */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	usleep(100000);
	prober_wait_done(&deny, before + 1);
	prober_stop(&deny);
	prober_stop(&allow);

	assert_true(atomic_load(&deny.done) > before); /* it probed across them */
	assert_int_equal(atomic_load(&deny.wrong), 0);
	assert_int_equal(atomic_load(&allow.wrong), 0);
	assert_int_equal(service_ping(&svc), 0); /* still connected */

	o = fltmc_json("filters", NULL, NULL);
	assert_int_equal(json_object_array_length(jget(o, "filters")), 2);
	json_object_put(o);
	o = fltmc_json("ports", NULL, NULL);
	assert_int_equal(
		jint(json_object_array_get_idx(jget(o, "ports"), 0), "connections"), 1);
	json_object_put(o);

	/* A changed setting restarts that filter: its service is told. */
	write_conf("param.extra = 1\n");
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	assert_int_equal(service_ping(&svc), -ENOTCONN);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	o = fltmc_json("filters", NULL, NULL);
	assert_int_equal(json_object_array_length(jget(o, "filters")), 1);
	json_object_put(o);
	filter_close_port(svc.port);
}

/* A configuration with errors is rejected by reload; nothing changes. */
static void
test_reload_rejects_bad_config(void **state)
{
	struct json_object *o;
	char out[4096];

	(void)state;
	daemon_start();
	write_conf("bogus = 1\nattach\n");
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 1);
	assert_non_null(strstr(read_file(logfile), "unknown key 'bogus'"));
	/* fltmc prints every FILE:LINE error; --json has them one by one */
	assert_non_null(strstr(out, "unknown key 'bogus'"));
	assert_non_null(strstr(out, ":12: syntax error"));
	/* the reply is the line that starts with {"ok" (the reason goes to
	 * stderr too, into the same file) */
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "--json", "reload"),
		1);
	{
		char *line = strstr(out, "{\"ok\"");

		assert_non_null(line);
		if (strchr(line, '\n'))
			*strchr(line, '\n') = '\0';
		o = json_tokener_parse(line);
	}
	assert_non_null(o);
	assert_int_equal(json_object_array_length(jget(o, "errors")), 2);
	assert_non_null(strstr(
		json_object_get_string(json_object_array_get_idx(jget(o, "errors"), 0)),
		":11: unknown key 'bogus'"));
	json_object_put(o);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "reload_failures"), 2);
	/* the notification outcome counters are there (jget fails if not) */
	{
		static const char *const outcomes[] = { "notif_ignored", "notif_resolved",
							"notif_unresolved", "notif_lost",
							"read_errors" };

		for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
			assert_true(jint(jget(o, "engine"), outcomes[i]) >= 0);
	}
	json_object_put(o);
}

/* A filter object replaced by a rename (the documented upgrade) is
 * picked up by the next reload: that filter restarts, no other change. */
static void
test_reload_picks_up_replaced_object(void **state)
{
	struct service svc = { 0 };
	struct json_object *o;
	char out[4096], from[300], to[300];

	(void)state;
	daemon_start();
	service_connect(&svc);
	assert_int_equal(service_ping(&svc), 0);
	/* Unchanged file: nothing restarts. */
	o = fltmc_json("reload", NULL, NULL);
	assert_int_equal(jint(o, "restarted"), 0);
	json_object_put(o);
	assert_int_equal(service_ping(&svc), 0);

	copy_filter("tf.so.new");
	snprintf(from, sizeof(from), "%s/tf.so.new", fdir);
	snprintf(to, sizeof(to), "%s/tf.so", fdir);
	assert_int_equal(rename(from, to), 0);
	o = fltmc_json("reload", NULL, NULL);
	assert_true(json_object_get_boolean(jget(o, "ok")));
	assert_int_equal(jint(o, "restarted"), 1);
	json_object_put(o);
	assert_int_equal(service_ping(&svc), -ENOTCONN); /* it was restarted */
	filter_close_port(svc.port);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	assert_non_null(strstr(read_file(logfile), "object file was replaced"));
	(void)out;
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

/* attach, detach, unload, load while opens run; unload with a service
 * connected: the service sees the disconnect, the daemon carries on. */
static void
test_runtime_changes_under_load(void **state)
{
	struct prober allow = { 0 };
	struct service svc = { 0 };
	struct json_object *o;
	char out[4096], other[300];
	int before;

	(void)state;
	snprintf(other, sizeof(other), "%s/other", watch);
	assert_int_equal(mkdir(other, 0777), 0);
	tu_write_file_mode(strcat(strcpy((char[512]){ 0 }, other), "/secret.txt"), "s\n",
			   0644);
	daemon_start();
	service_connect(&svc);
	prober_start(&allow, "plain.txt", 0);
	assert_true(tu_wait_until(prober_ran, &allow, 10000));
	before = atomic_load(&allow.done);

	/* detach the configured instance: nothing denied there any more */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "detach",
			     "tf", watch),
			 0);
	assert_int_equal(try_open("secret.txt"), 0);
	/* attach a subdirectory only */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "attach",
			     "tf", other, "--kind", "subtree"),
			 0);
	assert_int_equal(try_open("other/secret.txt"), -EPERM);
	assert_int_equal(try_open("secret.txt"), 0);
	/* errors are reported, exit 1 */
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "attach",
			     "tf", other),
			 1);
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "unload", "nope"),
		1);

	/* unload with the service connected */
	assert_int_equal(service_ping(&svc), 0);
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "unload", "tf"), 0);
	assert_int_equal(service_ping(&svc), -ENOTCONN);
	filter_close_port(svc.port);
	assert_int_equal(try_open("other/secret.txt"), 0);

	/* load it again from the configuration */
	assert_int_equal(
		RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "load", "tf"), 0);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	service_connect(&svc);
	assert_int_equal(service_ping(&svc), 0);
	filter_close_port(svc.port);

	prober_wait_done(&allow, before + 1);
	prober_stop(&allow);
	assert_true(atomic_load(&allow.done) > before); /* it probed across them */
	assert_int_equal(atomic_load(&allow.wrong), 0);
	o = fltmc_json("status", NULL, NULL);
	assert_true(json_object_get_boolean(jget(o, "healthy")));
	json_object_put(o);
}

/* Each kind of configuration error: FILE:LINE in the message, exit 1,
 * both from --check-config and from a start. */
static void
test_config_errors(void **state)
{
	static const struct {
		const char *text;
		int line;
		const char *msg;
	} cases[] = {
		{ "[fltmgrd]\nbogus = 1\n", 2, "unknown key 'bogus'" },
		{ "[nonsense]\n", 1, "unknown section" },
		{ "[filter x]\naltitude = 12a\n", 2, "altitude must be" },
		{ "[filter x]\n", 1, "has no altitude" },
		{ "[filter x]\naltitude = 1\nattach = relative\n", 3,
		  "must be absolute" },
		{ "[filter x]\naltitude = 1\nattach = /tmp sideways\n", 3,
		  "attach kind" },
		{ "[filter x]\naltitude = 1\ndeadline_ms = 0\n", 3, "deadline_ms" },
		{ "[filter x]\naltitude = 1\ndefault_verdict = maybe\n", 3,
		  "default_verdict" },
		{ "[filter x]\naltitude = 1\nparam.a = 1\nparam.a = 2\n", 4,
		  "already set" },
		{ "[fltmgrd]\nlog_level = loud\n", 2, "log_level" },
		{ "just words\n", 1, "syntax error" },
	};
	char path[300], out[4096], expect[400];

	(void)state;
	snprintf(path, sizeof(path), "%s/bad.conf", scratch);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tu_write_file_mode(path, cases[i].text, 0644);
		snprintf(expect, sizeof(expect), "%s:%d: ", path, cases[i].line);
		assert_int_equal(
			RUN(out, (char *)fltmgrd_bin, "--check-config", "--config", path),
			1);
		if (!strstr(out, expect) || !strstr(out, cases[i].msg))
			fail_msg("case %zu: expected '%s...%s' in: %s", i, expect,
				 cases[i].msg, out);
		assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--foreground",
				     "--runtime-dir", rundir, "--config", path),
				 1);
		assert_non_null(strstr(out, expect));
	}
	/* A missing filter object is found by --check-config, with its line. */
	tu_write_file_mode(path, "[filter ghost]\naltitude = 5\n", 0644);
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--check-config", "--config", path,
			     "--filter-dir", fdir),
			 1);
	snprintf(expect, sizeof(expect), "%s:1: filter ghost:", path);
	assert_non_null(strstr(out, expect));
	/* and the good one passes */
	assert_int_equal(
		RUN(out, (char *)fltmgrd_bin, "--check-config", "--config", conf), 0);
	assert_non_null(strstr(out, "configuration OK"));
	/* usage errors are exit 2 */
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--log-level", "loud"), 2);
	assert_int_equal(
		RUN(out, (char *)fltmgrd_bin, "--config", conf, "--attach", "/tmp"), 2);
}

/* A filter object others could have written is refused, with why. */
static void
test_writable_object_refused(void **state)
{
	char obj[300], out[4096];

	(void)state;
	snprintf(obj, sizeof(obj), "%s/tf.so", fdir);
	assert_int_equal(chmod(obj, 0666), 0);
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--foreground", "--runtime-dir",
			     rundir, "--config", conf),
			 1);
	assert_non_null(strstr(out, "writable by group or others"));
	assert_int_equal(
		RUN(out, (char *)fltmgrd_bin, "--check-config", "--config", conf), 1);
	assert_non_null(strstr(out, "writable by group or others"));
	assert_int_equal(chmod(obj, 0644), 0);
}

/* One daemon per runtime directory. */
static void
test_second_daemon_refused(void **state)
{
	char out[4096], pidtext[32];

	(void)state;
	daemon_start();
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--foreground", "--runtime-dir",
			     rundir, "--config", conf),
			 3);
	snprintf(pidtext, sizeof(pidtext), "pid %d", (int)daemon_pid);
	assert_non_null(strstr(out, "another fltmgrd"));
	assert_non_null(strstr(out, pidtext));
	/* the first one is unaffected */
	assert_int_equal(try_open("secret.txt"), -EPERM);
}

/* fltmc as an unprivileged user: refused, exit 4, a clear message; with
 * control_group set, its members may read but not change. */
static void
test_fltmc_access(void **state)
{
	char out[4096];

	(void)state;
	daemon_start();
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "filters", NULL }),
			 4);
	assert_non_null(strstr(out, "permission denied"));
	assert_int_equal(daemon_stop(), 0);

	/* gid 65534 is "nogroup" on Debian. */
	write_conf2("control_group = nogroup\n", NULL);
	daemon_start();
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "--json", "filters", NULL }),
			 0);
	assert_non_null(strstr(out, "\"tf\""));
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "unload", "tf", NULL }),
			 4);
	assert_int_equal(try_open("secret.txt"), -EPERM); /* still loaded */
}

/* Bad requests on the control socket: an error reply and a counter,
 * never a crash; the daemon keeps serving. */
static void
test_control_bad_requests(void **state)
{
	static const char *const bad[] = {
		"not json",
		"[1,2]",
		"{\"command\":42}",
		"{\"command\":\"attach\",\"name\":\"tf\"}",
		"{\"command\":\"attach\",\"name\":\"tf\",\"path\":\"rel\"}",
		"{\"command\":\"filters\",\"extra\":1}",
		"{\"command\":\"load\",\"name\":\"a\\nb\"}",
		"{\"command\":\"status\"} trailing",
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char big[8192];
	struct json_object *o;
	char buf[4096];
	int fd;

	(void)state;
	daemon_start();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ssize_t n;

		assert_int_equal(send(fd, bad[i], strlen(bad[i]), 0),
				 (ssize_t)strlen(bad[i]));
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		assert_true(n > 0);
		buf[n] = '\0';
		o = json_tokener_parse(buf);
		assert_non_null(o);
		assert_false(json_object_get_boolean(jget(o, "ok")));
		assert_string_equal(json_object_get_string(jget(o, "errno")), "EINVAL");
		json_object_put(o);
	}
	/* Oversized: refused and that client closed. */
	memset(big, ' ', sizeof(big));
	assert_int_equal(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
	assert_true(recv(fd, buf, sizeof(buf) - 1, 0) > 0);
	assert_non_null(strstr(buf, "EMSGSIZE"));
	assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0);
	close(fd);
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_malformed"),
			 (int64_t)(sizeof(bad) / sizeof(bad[0])) + 1);
	json_object_put(o);
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

/* An attach point root may not search (a 0700 directory of another
 * user), and a 0600 file of that user: attached, and the filter reads
 * the file through the event's descriptor (CAP_DAC_READ_SEARCH). */
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

/* control_group set by a reload: the control socket gets the group
 * (CAP_CHOWN) and mode 0660, and members may read. */
static void
test_control_group_given_by_reload(void **state)
{
	char path[300], out[4096];
	struct stat st;

	(void)state;
	daemon_start();
	snprintf(path, sizeof(path), "%s/control", rundir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	write_conf2("control_group = nogroup\n", NULL);
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_null(strstr(read_file(logfile), "cannot change group"));
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "filters", NULL }),
			 0);
}

/* A runtime directory others could write to (and so replace the sockets
 * in), or that another user owns, is refused at start. */
static void
test_unsafe_runtime_directory_refused(void **state)
{
	char out[4096];

	(void)state;
	assert_int_equal(mkdir(rundir, 0755), 0);
	assert_int_equal(chmod(rundir, 0777), 0);
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--foreground", "--runtime-dir",
			     rundir, "--config", conf),
			 1);
	assert_non_null(strstr(out, "not writable by group or others"));
	assert_int_equal(chmod(rundir, 0755), 0);
	assert_int_equal(chown(rundir, 65534, 65534), 0);
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--foreground", "--runtime-dir",
			     rundir, "--config", conf),
			 1);
	assert_non_null(strstr(out, "must be a directory owned by uid 0"));
	assert_int_equal(chown(rundir, 0, 0), 0);
	daemon_start(); /* and a safe one works */
}

/* The file mode is not the only check: with the control socket opened to
 * everyone, a user who is neither root nor in control_group still gets
 * one EACCES reply (fltmc exit 4), counted and logged. */
static void
test_control_peer_checked_even_if_socket_mode_is_opened(void **state)
{
	char path[300], out[4096];
	struct json_object *o;

	(void)state;
	daemon_start();
	snprintf(path, sizeof(path), "%s/control", rundir);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "filters", NULL }),
			 4);
	assert_non_null(strstr(out, "permission denied"));
	assert_non_null(strstr(read_file(logfile), "control: refused pid"));
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_refused"), 1);
	json_object_put(o);
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

/* Control socket bounds: at most 16 clients (the 17th gets EBUSY for its
 * request and is closed; one that sends nothing is closed unanswered); a client that sends nothing is closed after 5 s; the daemon
 * serves the next one. */
static void
test_control_client_limits(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fds[16], extra;
	char buf[4096];
	ssize_t n;
	struct json_object *o;

	(void)state;
	daemon_start();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
	for (int i = 0; i < 16; i++) {
		fds[i] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	/* Each is accepted once the daemon's loop runs; a request on the last
	 * one proves all 16 are in. */
	assert_int_equal(send(fds[15], "{\"command\":\"status\"}", 20, 0), 20);
	assert_true(recv(fds[15], buf, sizeof(buf), 0) > 0);
	/* The 17th: its request is read, then answered EBUSY and closed
	 * (a reply beside an unread request would be a reset on Linux 6.1). */
	extra = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(extra, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(extra, "{\"command\":\"status\"}", 20, 0), 20);
	n = recv(extra, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		fail_msg("the 17th client: %s instead of the EBUSY reply",
			 strerror(errno));
	buf[n] = '\0';
	assert_non_null(strstr(buf, "EBUSY"));
	assert_int_equal(recv(extra, buf, sizeof(buf), 0), 0);
	close(extra);
	/* An 18th that sends nothing is closed after CONTROL_REFUSE_MS,
	 * without a reply. */
	extra = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(extra, (struct sockaddr *)&sa, sizeof(sa)), 0);
	{
		struct timeval tv = { .tv_sec = 30 };

		setsockopt(extra, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	assert_int_equal(recv(extra, buf, sizeof(buf), 0), 0);
	close(extra);
	/* Idle ones are closed after 5 s (generous margin on a busy host). */
	for (int i = 0; i < 16; i++) {
		struct timeval tv = { .tv_sec = 30 };

		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		assert_int_equal(recv(fds[i], buf, sizeof(buf), 0), 0);
		close(fds[i]);
	}
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_timeouts"), 16);
	assert_int_equal(jint(jget(o, "daemon"), "control_busy"), 2);
	json_object_put(o);
}

/* ==== fail-closed reloads, trusted files, control slots, instance state ==== */

static void
copy_file_mode(const char *from, const char *to, mode_t mode)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod %04o '%s'", from, to,
		 (unsigned)mode, to);
	assert_int_equal(system(cmd), 0);
}

/* Runs fltmc (as root) with argv; out gets stdout+stderr. */
#define FLTMC(out, ...)                                                                  \
	run_as(out, sizeof(out), (uid_t)-1, 0,                                           \
	       (char *const[]){ (char *)fltmc_bin, "--runtime-dir", rundir, __VA_ARGS__, \
				NULL })

static bool
daemon_alive(void)
{
	int status;

	return daemon_pid > 0 && waitpid(daemon_pid, &status, WNOHANG) == 0;
}

/* Prober processes: each opens, executes or reads one file in a loop and
 * counts how often that was allowed, in memory shared with us. */
enum probe_kind { PROBE_OPEN, PROBE_EXEC, PROBE_READ };

struct probe_shared {
	atomic_int stop, ready, tries, allowed;
};

struct proc_prober {
	pid_t pid;
	enum probe_kind kind;
	char path[512];
	struct probe_shared *sh;
};

static bool
probe_once(enum probe_kind kind, const char *path, int fd)
{
	char c;
	int status, k;
	pid_t pid;

	switch (kind) {
	case PROBE_OPEN:
		k = open(path, O_RDONLY | O_CLOEXEC);
		if (k < 0)
			return false;
		close(k);
		return true;
	case PROBE_EXEC:
		pid = fork();
		if (pid < 0)
			return false;
		if (pid == 0) {
			execl(path, path, (char *)NULL);
			_exit(99);
		}
		if (waitpid(pid, &status, 0) != pid)
			return false;
		return WIFEXITED(status) && WEXITSTATUS(status) == 0;
	case PROBE_READ:
		return pread(fd, &c, 1, 0) >= 0;
	}
	return false;
}

static void
proc_prober_start(struct proc_prober *p, struct probe_shared *sh, enum probe_kind kind,
		  const char *path)
{
	p->kind = kind;
	p->sh = sh;
	snprintf(p->path, sizeof(p->path), "%s", path);
	fflush(stdout);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		int fd = -1;

		/* The read prober needs the file open first (a permission
		 * event for a read is only made for a file opened while the
		 * filesystem had permission marks). */
		for (int i = 0; kind == PROBE_READ && fd < 0 && i < 10000; i++) {
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				usleep(1000);
		}
		if (kind == PROBE_READ && fd < 0)
			_exit(2);
		atomic_store(&sh->ready, 1);
		while (!atomic_load(&sh->stop)) {
			bool ok = probe_once(kind, path, fd);

			if (ok)
				atomic_fetch_add(&sh->allowed, 1);
			atomic_fetch_add(&sh->tries, 1);
			usleep(200);
		}
		_exit(0);
	}
}

static int
proc_prober_tried(void *arg)
{
	struct proc_prober *p = arg;

	return atomic_load(&p->sh->tries) > 0;
}

static void
proc_prober_stop(struct proc_prober *p)
{
	int status;

	atomic_store(&p->sh->stop, 1);
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Two fail-closed filters: tfo denies opens of secret files in watch/o,
 * tfx denies executions and reads of them in watch/x (no open callback);
 * both have default_verdict = deny. gen_* is a parameter with no effect
 * but to make a reload restart the filter. */
static void
write_deny_conf(int gen_o, int gen_x)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\nlog_level = info\n\n"
		 "[filter tfo]\naltitude = 300000\nobject = tfo.so\n"
		 "default_verdict = deny\nattach = %s/o\nparam.deny = secret\n"
		 "param.port = tfoport\nparam.gen = %d\n\n"
		 "[filter tfx]\naltitude = 290000\nobject = tfx.so\n"
		 "default_verdict = deny\nattach = %s/x\nparam.deny = secret\n"
		 "param.ops = exec,read\nparam.gen = %d\n",
		 fdir, watch, gen_o, watch, gen_x);
	tu_write_file_mode(conf, text, 0644);
}

static void
make_deny_tree(void)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/o", watch);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/x", watch);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/o/secret.txt", watch);
	tu_write_file_mode(p, "s\n", 0644);
	snprintf(p, sizeof(p), "%s/o/plain.txt", watch);
	tu_write_file_mode(p, "p\n", 0644);
	snprintf(p, sizeof(p), "%s/x/secret.txt", watch);
	tu_write_file_mode(p, "s\n", 0644);
	snprintf(p, sizeof(p), "%s/x/secret-true", watch);
	copy_file_mode("/bin/true", p, 0755);
	snprintf(p, sizeof(p), "%s/x/plain-true", watch);
	copy_file_mode("/bin/true", p, 0755);
	copy_filter("tfo.so");
	copy_filter("tfx.so");
}

/* A reload that restarts a fail-closed filter (default_verdict = deny)
 * never lets through what that filter denies: prober processes open,
 * execute and read its denied files throughout eight reloads that change
 * a parameter of both filters, and none succeeds. A reload that changes
 * only the other filter leaves this one alone (its service stays
 * connected). */
static void
test_reload_restart_holds_default_verdict(void **state)
{
	struct probe_shared *sh;
	struct proc_prober pr[3];
	struct service svc = { 0 };
	struct json_object *o;
	char path[3][512], p[512], out[4096];
	int before[3];
	const int reloads = 8;

	(void)state;
	make_deny_tree();
	write_deny_conf(0, 0);
	daemon_start();
	sh = mmap(NULL, 3 * sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, 3 * sizeof(*sh));
	snprintf(path[0], sizeof(path[0]), "%s/o/secret.txt", watch);
	snprintf(path[1], sizeof(path[1]), "%s/x/secret-true", watch);
	snprintf(path[2], sizeof(path[2]), "%s/x/secret.txt", watch);
	/* Denied while nothing reloads: the probes see the filters. */
	assert_false(probe_once(PROBE_OPEN, path[0], -1));
	assert_false(probe_once(PROBE_EXEC, path[1], -1));
	proc_prober_start(&pr[0], &sh[0], PROBE_OPEN, path[0]);
	proc_prober_start(&pr[1], &sh[1], PROBE_EXEC, path[1]);
	proc_prober_start(&pr[2], &sh[2], PROBE_READ, path[2]);
	for (int k = 0; k < 3; k++) {
		assert_true(tu_wait_until(proc_prober_tried, &pr[k], 10000));
		before[k] = atomic_load(&sh[k].tries);
	}
	for (int i = 1; i <= reloads; i++) {
		write_deny_conf(i, i);
		o = fltmc_json("reload", NULL, NULL);
		if (!json_object_get_boolean(jget(o, "ok")) || jint(o, "restarted") != 2)
			fail_msg("reload %d: %s", i, json_object_to_json_string(o));
		json_object_put(o);
	}
	for (int k = 0; k < 3; k++) {
		int64_t end = tu_now_ms() + 10000;

		/* at least one probe after the last reload */
		while (atomic_load(&sh[k].tries) <= before[k] + 1 && tu_now_ms() < end)
			usleep(10000);
		proc_prober_stop(&pr[k]);
	}
	print_message("probes during %d reloads: open %d/%d, exec %d/%d, read %d/%d "
		      "allowed\n",
		      reloads, atomic_load(&sh[0].allowed), atomic_load(&sh[0].tries),
		      atomic_load(&sh[1].allowed), atomic_load(&sh[1].tries),
		      atomic_load(&sh[2].allowed), atomic_load(&sh[2].tries));
	for (int k = 0; k < 3; k++) {
		assert_true(atomic_load(&sh[k].tries) > before[k]);
		if (atomic_load(&sh[k].allowed) != 0)
			fail_msg("%s of %s allowed %d times of %d during the reloads",
				 k == 0   ? "open"
				 : k == 1 ? "exec"
					  : "read",
				 path[k], atomic_load(&sh[k].allowed),
				 atomic_load(&sh[k].tries));
	}
	/* After the swaps, only what the filters deny is denied. */
	snprintf(p, sizeof(p), "%s/o/plain.txt", watch);
	assert_true(probe_once(PROBE_OPEN, p, -1));
	snprintf(p, sizeof(p), "%s/x/plain-true", watch);
	assert_true(probe_once(PROBE_EXEC, p, -1));
	assert_false(probe_once(PROBE_OPEN, path[0], -1));

	/* A reload that changes only tfx does not touch tfo. */
	snprintf(p, sizeof(p), "%s/tfoport", rundir);
	assert_int_equal(filter_connect_communication_port(p, 0, NULL, 0, &svc.port), 0);
	assert_int_equal(service_ping(&svc), 0);
	write_deny_conf(reloads, reloads + 1);
	o = fltmc_json("reload", NULL, NULL);
	assert_true(json_object_get_boolean(jget(o, "ok")));
	assert_int_equal(jint(o, "restarted"), 1);
	json_object_put(o);
	assert_int_equal(service_ping(&svc), 0);
	filter_close_port(svc.port);
	assert_true(daemon_alive());
	munmap(sh, 3 * sizeof(*sh));
	(void)out;
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

/* healthy, and (if want is not NULL) filter name's problem holds want. */
static void
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

/* tf is loaded, running, attached to `instances` paths, and denies. */
static void
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

/* Installs a fresh tf.so by rename (the documented upgrade), with mode and
 * owner. */
static void
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

/* A reload whose new object is refused (mode 0775, another owner), whose
 * entry point refuses, or whose instance cannot be attached keeps the
 * running fail-closed filter; fltmc reload fails with the reason, and
 * status is unhealthy naming the filter and why until a reload works. */
static void
test_reload_failure_keeps_running_filter(void **state)
{
	struct service svc = { 0 };
	char out[8192], obj[300];

	(void)state;
	snprintf(obj, sizeof(obj), "%s/tf.so", fdir);
	write_conf("default_verdict = deny\n");
	daemon_start();
	service_connect(&svc);
	expect_health(true, "tf", NULL);

	install_object(0775, 0);
	assert_int_equal(FLTMC(out, "reload"), 1);
	if (!strstr(out, obj) || !strstr(out, "writable by group or others"))
		fail_msg("reload output: %s", out);
	expect_tf_running(1);
	assert_int_equal(service_ping(&svc), 0); /* not even restarted */
	expect_health(false, "tf", "writable by group or others");
	assert_int_equal(FLTMC(out, "status"), 0);
	if (!strstr(out, "Healthy:") || !strstr(out, "no") || !strstr(out, "tf") ||
	    !strstr(out, "writable by group or others"))
		fail_msg("status output: %s", out);

	install_object(0644, 65534);
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "not owned by root"));
	expect_tf_running(1);
	assert_int_equal(service_ping(&svc), 0);
	expect_health(false, "tf", "not owned by root");

	install_object(0644, 0);
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_tf_running(1);
	expect_health(true, "tf", NULL);
	filter_close_port(svc.port);

	/* The new settings' entry point refuses: the old filter runs on. */
	write_conf("default_verdict = deny\nparam.refuse = 5\n");
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "refused to load"));
	expect_tf_running(1);
	expect_health(false, "tf", "refused to load");

	/* An instance of the new settings cannot be attached. */
	write_conf("default_verdict = deny\nparam.gen = 2\n"
		   "attach = /nonexistent-fltmgr-dir\n");
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "/nonexistent-fltmgr-dir"));
	expect_tf_running(1);
	expect_health(false, "tf", "/nonexistent-fltmgr-dir");

	write_conf("default_verdict = deny\n");
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_tf_running(1);
	expect_health(true, "tf", NULL);
	assert_true(daemon_alive());
}

/* A restart whose new settings fail and whose previous settings fail too
 * (the entry point refuses while a file exists): the fail-closed filter's
 * instances stay held shut, every open there is denied, fltmc shows it
 * held and status says why; a reload that can load it again lets go. */
static void
test_reload_failing_twice_holds_instances_shut(void **state)
{
	struct json_object *o, *f;
	char out[8192], flag[300], extra[512];

	(void)state;
	snprintf(flag, sizeof(flag), "%s/refuse-%s", scratch, strrchr(fdir, '/') + 1);
	snprintf(extra, sizeof(extra), "default_verdict = deny\nparam.refuse_if = %s\n",
		 flag);
	write_conf(extra);
	daemon_start();
	assert_int_equal(try_open("plain.txt"), 0);
	tu_write_file_mode(flag, "x\n", 0644);
	snprintf(extra, sizeof(extra),
		 "default_verdict = deny\nparam.refuse_if = %s\nparam.gen = 2\n", flag);
	write_conf(extra);
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_non_null(strstr(out, "refused to load"));
	assert_true(daemon_alive());
	o = fltmc_json("filters", NULL, NULL);
	f = json_object_array_get_idx(jget(o, "filters"), 0);
	assert_non_null(f);
	assert_string_equal(json_object_get_string(jget(f, "state")), "held");
	json_object_put(o);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(try_open("secret.txt"), -EPERM);
		assert_int_equal(try_open("plain.txt"), -EPERM); /* held shut */
	}
	expect_health(false, "tf", "held shut");
	o = fltmc_json("instances", NULL, NULL);
	assert_string_equal(
		json_object_get_string(jget(
			json_object_array_get_idx(jget(o, "instances"), 0), "state")),
		"held");
	json_object_put(o);
	/* still refusing: still held */
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_int_equal(try_open("plain.txt"), -EPERM);
	/* it can load again: the hold goes */
	unlink(flag);
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_tf_running(1);
	assert_int_equal(try_open("plain.txt"), 0);
	expect_health(true, "tf", NULL);
}

/* Offsets of a shared object to cut it at: inside the program headers,
 * inside its executable PT_LOAD segment, in the middle of .dynamic. */
static void
elf_cut_points(const char *path, off_t cuts[3])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf64_Ehdr eh;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &eh, sizeof(eh), 0), (ssize_t)sizeof(eh));
	assert_int_equal(eh.e_ident[EI_CLASS], ELFCLASS64);
	cuts[0] = (off_t)eh.e_phoff + eh.e_phentsize + eh.e_phentsize / 2;
	cuts[1] = cuts[2] = 0;
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		assert_int_equal(
			pread(fd, &ph, sizeof(ph),
			      (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize)),
			(ssize_t)sizeof(ph));
		if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ph.p_filesz > 2)
			cuts[1] = (off_t)(ph.p_offset + ph.p_filesz / 2);
		if (ph.p_type == PT_DYNAMIC && ph.p_filesz > 2)
			cuts[2] = (off_t)(ph.p_offset + ph.p_filesz / 2);
	}
	close(fd);
	assert_true(cuts[1] > 0 && cuts[2] > 0);
}

/* Writes the first len bytes of the test filter to path (created or
 * truncated in place), root-owned 0644. */
static void
write_truncated(const char *path, off_t len, bool in_place)
{
	int in = open(filter_so, O_RDONLY | O_CLOEXEC);
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	static char buf[1 << 20];
	ssize_t n;

	(void)in_place;
	assert_true(in >= 0 && out >= 0);
	assert_true(len <= (off_t)sizeof(buf));
	n = pread(in, buf, (size_t)len, 0);
	assert_int_equal(n, (ssize_t)len);
	assert_int_equal(write(out, buf, (size_t)len), (ssize_t)len);
	assert_int_equal(fchmod(out, 0644), 0);
	close(in);
	close(out);
}

/* A reload while the filter's object is cut short (being copied in place,
 * or renamed in truncated): the daemon stays up, the old filter keeps
 * filtering, the error names the file. Cutting the loaded object's file
 * in place does not reach the running filter either. */
static void
test_truncated_object_refused_daemon_stays_up(void **state)
{
	static const char *const where[] = { "inside the program headers",
					     "inside a PT_LOAD segment",
					     "in the middle of .dynamic" };
	char out[8192], obj[300], tmp[300];
	off_t cuts[3];

	(void)state;
	elf_cut_points(filter_so, cuts);
	snprintf(obj, sizeof(obj), "%s/tf.so", fdir);
	snprintf(tmp, sizeof(tmp), "%s/.tf.so.part", fdir);
	write_conf("default_verdict = deny\n");
	daemon_start();
	for (int i = 0; i < 3; i++) {
		write_truncated(tmp, cuts[i], false);
		assert_int_equal(rename(tmp, obj), 0);
		assert_int_equal(FLTMC(out, "reload"), 1);
		if (!daemon_alive())
			fail_msg("fltmgrd died on an object cut %s (%lld bytes): %s",
				 where[i], (long long)cuts[i], read_file(logfile));
		if (!strstr(out, obj))
			fail_msg("cut %s: the error does not name %s: %s", where[i], obj,
				 out);
		expect_tf_running(1);
		expect_health(false, "tf", obj);
	}
	/* A good object again, then cut the loaded file in place. */
	install_object(0644, 0);
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_tf_running(1);
	write_truncated(obj, cuts[1], true);
	for (int i = 0; i < 20; i++)
		assert_int_equal(try_open("secret.txt"), -EPERM);
	assert_true(daemon_alive());
	assert_int_equal(FLTMC(out, "reload"), 1);
	assert_true(daemon_alive());
	assert_non_null(strstr(out, obj));
	expect_tf_running(1);
	install_object(0644, 0);
	assert_int_equal(FLTMC(out, "reload"), 0);
	expect_health(true, "tf", NULL);
}

/* What a uid 65534 control_group member got when it tried to hold
 * HOLD_TRIES control connections. */
#define HOLD_TRIES 20

struct holder {
	pid_t pid;
	int up, down; /* child -> us, us -> child */
	int accepted, refused;
	char message[512];
};

static bool
holder_status(int fd, char *reply, size_t len)
{
	static const char req[] = "{\"command\":\"status\"}";
	ssize_t n = -1;

	(void)send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
	/* A refused client may see the reset before the reply it was sent. */
	for (int i = 0; i < 2 && n < 0; i++)
		n = recv(fd, reply, len - 1, 0);
	reply[n > 0 ? n : 0] = '\0';
	return n > 0 && strstr(reply, "\"ok\":true");
}

static void
holder_start(struct holder *h)
{
	int up[2], down[2];

	assert_int_equal(pipe2(up, O_CLOEXEC), 0);
	assert_int_equal(pipe2(down, O_CLOEXEC), 0);
	fflush(stdout);
	h->pid = fork();
	assert_true(h->pid >= 0);
	if (h->pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fds[HOLD_TRIES], n = 0, refused = 0;
		char reply[4096], msg[4096] = "";
		struct pollfd pf = { .fd = down[0], .events = POLLIN };

		close(up[0]);
		close(down[1]);
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(1);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
		for (int i = 0; i < HOLD_TRIES; i++) {
			struct timeval tv = { .tv_sec = 10 };
			int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
				_exit(2);
			if (holder_status(fd, reply, sizeof(reply))) {
				fds[n++] = fd;
			} else {
				if (!refused++)
					snprintf(msg, sizeof(msg), "%s", reply);
				close(fd);
			}
		}
		dprintf(up[1], "%d %d %s\n", n, refused, msg);
		/* Hold them (a request every second keeps them from the idle
		 * timeout) until released, or 60 s. */
		for (int t = 0; t < 60 && poll(&pf, 1, 1000) == 0; t++)
			for (int i = 0; i < n; i++)
				(void)holder_status(fds[i], reply, sizeof(reply));
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	h->up = up[0];
	h->down = down[1];
	{
		char buf[1024];
		ssize_t n = read(h->up, buf, sizeof(buf) - 1);

		assert_true(n > 0);
		buf[n] = '\0';
		assert_int_equal(sscanf(buf, "%d %d", &h->accepted, &h->refused), 2);
		snprintf(h->message, sizeof(h->message), "%s",
			 strchr(strchr(buf, ' ') + 1, ' ') + 1);
	}
}

static void
holder_stop(struct holder *h)
{
	int status;

	close(h->down);
	close(h->up);
	assert_int_equal(waitpid(h->pid, &status, 0), h->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A control_group member (uid 65534) tries to hold 20 control
 * connections: it gets at most the per-user share, the rest are refused
 * with a reason that says so and counted, and root's fltmc still works
 * (slots are kept for uid 0); the member's own extra fltmc is refused
 * with the same clear error. */
static void
test_control_slots_kept_for_root(void **state)
{
	struct holder h;
	struct json_object *o;
	char out[4096];
	int rc;

	(void)state;
	write_conf2("control_group = nogroup\n", NULL);
	daemon_start();
	holder_start(&h);
	print_message("uid 65534 tried %d control connections: %d accepted, %d "
		      "refused\n",
		      HOLD_TRIES, h.accepted, h.refused);
	rc = FLTMC(out, "status");
	if (rc != 0)
		fail_msg("root's fltmc status exited %d while uid 65534 held %d control "
			 "connections: %s",
			 rc, h.accepted, out);
	assert_int_equal(h.accepted, 4);
	assert_int_equal(h.refused, HOLD_TRIES - 4);
	if (!strstr(h.message, "EBUSY") || !strstr(h.message, "uid 65534"))
		fail_msg("refusal: %s", h.message);
	rc = run_as(out, sizeof(out), 65534, 65534,
		    (char *const[]){ fltmc_nobody, "--runtime-dir", rundir, "filters",
				     NULL });
	if (rc != 1 || !strstr(out, "uid 65534") || !strstr(out, "EBUSY"))
		fail_msg("uid 65534's fifth fltmc: exit %d: %s", rc, out);
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_busy"), HOLD_TRIES - 4 + 1);
	json_object_put(o);
	holder_stop(&h);
}

/* --check-config and a start with cfg both exit 1 with each needle in
 * the output. */
static void
expect_refused_config(const char *cfg, const char *needle1, const char *needle2)
{
	char out[8192];
	int rc;

	rc = RUN(out, (char *)fltmgrd_bin, "--check-config", "--config", (char *)cfg);
	if (rc != 1 || !strstr(out, needle1) || (needle2 && !strstr(out, needle2)))
		fail_msg("--check-config --config %s: exit %d, expected 1 with '%s'%s%s: "
			 "%s",
			 cfg, rc, needle1, needle2 ? " and " : "", needle2 ? needle2 : "",
			 out);
	rc = RUN(out, (char *)fltmgrd_bin, "--foreground", "--runtime-dir", rundir,
		 "--config", (char *)cfg);
	if (rc != 1 || !strstr(out, needle1) || (needle2 && !strstr(out, needle2)))
		fail_msg("fltmgrd --config %s: exit %d, expected 1 with '%s': %s", cfg,
			 rc, needle1, out);
}

static void
mkdir_owned(const char *path, mode_t mode, uid_t owner)
{
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(chown(path, owner, owner), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* A config naming filter_dir dir (tf.so in it), written safely. */
static void
conf_with_filter_dir(const char *cfg, const char *dir)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\n\n[filter tf]\naltitude = 300000\n"
		 "object = tf.so\nattach = %s\n",
		 dir, watch);
	tu_write_file_mode(cfg, text, 0644);
}

/* The configuration file and every directory on the way to it and to a
 * filter object (through symbolic links too) must be root's and not
 * writable by group or others (a sticky directory such as /tmp passes
 * when the entry in it is root's); a directory or an empty file is no
 * configuration. Each is refused by --check-config, at start and by a
 * reload, with the offending path. */
static void
test_untrusted_config_and_object_paths_refused(void **state)
{
	char t[300], p[400], q[400], cfg[512], out[8192];

	(void)state;
	snprintf(t, sizeof(t), "%s/trust%s", scratch, strrchr(fdir, '/') + 1);
	mkdir_owned(t, 0755, 0);

	/* the configuration file itself */
	snprintf(cfg, sizeof(cfg), "%s/c1.conf", t);
	tu_write_file_mode(cfg, read_file(conf), 0666);
	expect_refused_config(cfg, cfg, "writable by group or others");
	assert_int_equal(chmod(cfg, 0644), 0);
	assert_int_equal(chown(cfg, 65534, 65534), 0);
	expect_refused_config(cfg, cfg, "not owned by root");
	/* a directory on its path */
	snprintf(p, sizeof(p), "%s/gw", t);
	mkdir_owned(p, 0775, 0);
	snprintf(cfg, sizeof(cfg), "%s/c3.conf", p);
	tu_write_file_mode(cfg, read_file(conf), 0644);
	expect_refused_config(cfg, p, "writable by group or others");
	snprintf(p, sizeof(p), "%s/user", t);
	mkdir_owned(p, 0755, 65534);
	snprintf(cfg, sizeof(cfg), "%s/c4.conf", p);
	tu_write_file_mode(cfg, read_file(conf), 0644);
	expect_refused_config(cfg, p, "not owned by root");
	/* a directory, an empty file, a file of comments only */
	expect_refused_config(t, t, "not a regular file");
	snprintf(cfg, sizeof(cfg), "%s/empty.conf", t);
	tu_write_file_mode(cfg, "", 0644);
	expect_refused_config(cfg, cfg, "empty");
	tu_write_file_mode(cfg, "; nothing\n\n# here\n", 0644);
	expect_refused_config(cfg, cfg, "empty");

	/* the filter object's directories: a group-writable ancestor */
	snprintf(p, sizeof(p), "%s/gw2", t);
	mkdir_owned(p, 0775, 0);
	snprintf(q, sizeof(q), "%s/gw2/filters", t);
	mkdir_owned(q, 0755, 0);
	snprintf(cfg, sizeof(cfg), "%s/tf.so", q);
	copy_file_mode(filter_so, cfg, 0644);
	snprintf(cfg, sizeof(cfg), "%s/o1.conf", t);
	conf_with_filter_dir(cfg, q);
	expect_refused_config(cfg, p, "writable by group or others");
	/* a symbolic link into a world-writable directory */
	snprintf(p, sizeof(p), "%s/ww", t);
	mkdir_owned(p, 0777, 0);
	snprintf(q, sizeof(q), "%s/ww/tf.so", t);
	copy_file_mode(filter_so, q, 0644);
	snprintf(q, sizeof(q), "%s/lnk", t);
	mkdir_owned(q, 0755, 0);
	snprintf(cfg, sizeof(cfg), "%s/lnk/tf.so", t);
	assert_int_equal(symlink("../ww/tf.so", cfg), 0);
	snprintf(cfg, sizeof(cfg), "%s/o2.conf", t);
	conf_with_filter_dir(cfg, q);
	expect_refused_config(cfg, p, "writable by group or others");
	/* a symbolic link to a directory below a group-writable one */
	snprintf(q, sizeof(q), "%s/dl", t);
	snprintf(p, sizeof(p), "%s/gw2/filters", t);
	assert_int_equal(symlink(p, q), 0);
	snprintf(cfg, sizeof(cfg), "%s/o3.conf", t);
	conf_with_filter_dir(cfg, q);
	snprintf(p, sizeof(p), "%s/gw2", t);
	expect_refused_config(cfg, p, "writable by group or others");
	/* sticky: an entry of another user in it is refused, root's passes */
	snprintf(p, sizeof(p), "%s/st", t);
	mkdir_owned(p, 01777, 0);
	snprintf(q, sizeof(q), "%s/st/u", t);
	mkdir_owned(q, 0755, 65534);
	snprintf(cfg, sizeof(cfg), "%s/tf.so", q);
	copy_file_mode(filter_so, cfg, 0644);
	snprintf(cfg, sizeof(cfg), "%s/o4.conf", t);
	conf_with_filter_dir(cfg, q);
	expect_refused_config(cfg, q, "not owned by root");
	snprintf(q, sizeof(q), "%s/st/r", t);
	mkdir_owned(q, 0755, 0);
	snprintf(cfg, sizeof(cfg), "%s/tf.so", q);
	copy_file_mode(filter_so, cfg, 0644);
	snprintf(cfg, sizeof(cfg), "%s/o5.conf", t);
	conf_with_filter_dir(cfg, q);
	assert_int_equal(RUN(out, (char *)fltmgrd_bin, "--check-config", "--config", cfg),
			 0);

	/* a reload of a configuration file that became writable */
	daemon_start();
	assert_int_equal(chmod(conf, 0664), 0);
	assert_int_equal(FLTMC(out, "reload"), 1);
	if (!strstr(out, conf) || !strstr(out, "writable by group or others"))
		fail_msg("reload output: %s", out);
	assert_int_equal(chmod(conf, 0644), 0);
	assert_int_equal(try_open("secret.txt"), -EPERM);
	assert_int_equal(FLTMC(out, "reload"), 0);
}

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
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_status_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_keeps_service_and_protection,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_rejects_bad_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reload_picks_up_replaced_object,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_builtin_default_and_shipped_config,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_changes_under_load, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writable_object_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_second_daemon_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fltmc_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_bad_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_daemonize, setup, teardown),
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
		cmocka_unit_test_setup_teardown(test_control_group_given_by_reload, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_runtime_directory_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_client_limits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_control_peer_checked_even_if_socket_mode_is_opened, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_missing_kept_capability_is_named,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_restart_holds_default_verdict,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_failure_keeps_running_filter,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_reload_failing_twice_holds_instances_shut, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_truncated_object_refused_daemon_stays_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_slots_kept_for_root, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_untrusted_config_and_object_paths_refused, setup, teardown),
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

	if (argc == 2 && !strcmp(argv[1], DROP_CHILD_ARG))
		return drop_child_main();
	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	fltmc_bin = getenv("FLTMGR_TEST_FLTMC");
	filter_so = getenv("FLTMGR_TEST_FILTER");
	if (geteuid() != 0) {
		printf("test_daemon: SKIP: needs root (fanotify, root-owned filter "
		       "objects)\n");
		return 77;
	}
	if (!fltmgrd_bin || !fltmc_bin || !filter_so) {
		printf("test_daemon: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_FLTMC and "
		       "FLTMGR_TEST_FILTER must be set (meson test sets them)\n");
		return 1;
	}
	/* A private mount namespace with a scratch tmpfs: the daemon's
	 * filesystem marks never see the rest of the machine's activity. */
	r = tu_private_scratch("test_daemon", scratch, "fltmgr-daemon", 64);
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
	r = cmocka_run_group_tests(tests, NULL, NULL);
	tu_private_scratch_remove(scratch);
	return r;
}
