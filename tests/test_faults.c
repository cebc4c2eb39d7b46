/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c — fault injection against the real fltmgrd. Each test
 * breaks one thing and checks that every opener returns, that the daemon neither crashes nor spins, that the fault is
 * counted and logged, and that everyone else keeps being served:
 *
 *   sigkill_under_permission_load      the daemon killed with openers in
 *                                      flight; the unprotected gap until
 *                                      a restarted daemon denies again
 *   descriptor_exhaustion              RLIMIT_NOFILE lowered to what the
 *                                      daemon already holds, then raised
 *   allocation_failures                FLTMGR_FAULT_ALLOC (src/core/
 *                                      fault.h) on the message path
 *   flooding_and_stalled_clients       a service flooding calls, one not
 *                                      reading its results, clients that
 *                                      stall before or inside a frame
 *   minispy_backlog_overflow           minispy's backlog overflowing, with
 *                                      nothing else affected and memory
 *                                      bounded
 *
 * The real binaries run in a private mount namespace: configurations,
 * logs and runtime directories on one scratch tmpfs, the watched
 * directories on another, so the filesystem marks see only this test's
 * own opens and the engine's counters can be checked exactly. The filter
 * is tests/filters/test_filter.c (denies paths containing "secret", holds
 * paths containing "slow", a port answering "pong"). Root only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/frame_io.h"
#include "common/wire.h"
#include "json_util.h"
#include "minispy_record.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

extern char **environ;

/* Bounds: generous, since the machine is shared and sanitizers are slow.
 * A hang is forever, so any bound tells it apart. */
#define START_MS    30000 /* a daemon becoming ready */
#define RETURN_MS   30000 /* an open, a call */
#define FLTMC_MS    60000 /* fltmc (its own timeout) */
#define SETTLE_MS   30000 /* counters to stop moving */
#define SIGKILL_REP 3

static const char *fltmgrd_bin, *fltmc_bin, *filter_so, *minispy_so;
static char scratch[] = "/tmp/fltmgr-faults.XXXXXX";
static char watchfs[64];
static char rundir[64], fdir[300], conf[300], watch[128], logfile[300];
static pid_t daemon_pid;

/* ---- files ---- */

/* The whole file (up to 4 MiB) in static storage. */
static const char *
read_file(const char *path)
{
	static char buf[4 << 20];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n = 0;

	while (fd >= 0 && len < sizeof(buf) - 1 &&
	       (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	if (fd >= 0)
		close(fd);
	buf[len] = '\0';
	return buf;
}

/* The last part of the daemon's log, for failure messages. */
static const char *
log_tail(void)
{
	const char *s = read_file(logfile);
	size_t n = strlen(s);

	return n > 3000 ? s + n - 3000 : s;
}

static int
count_lines_with(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static void
copy_object(const char *from, const char *name)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s/%s' && chmod 0644 '%s/%s'", from, fdir,
		 name, fdir, name);
	assert_int_equal(system(cmd), 0);
}

static char *
in_watch(const char *name)
{
	static char path[600];

	snprintf(path, sizeof(path), "%s/%s", watch, name);
	return path;
}

/* 0 or -errno of opening NAME in the watched directory. */
static int
try_open(const char *name)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", watch, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* tf on the watched directory, with `tf_extra` in its section; `extra`
 * after it. */
static void
write_conf(const char *tf_extra, const char *extra)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "[fltmgrd]\n"
		 "filter_dir = %s\n"
		 "log_level = notice\n"
		 "\n"
		 "[filter tf]\n"
		 "altitude = 300000\n"
		 "object = tf.so\n"
		 "attach = %s\n"
		 "param.deny = secret\n"
		 "param.port = tfport\n"
		 "%s"
		 "%s",
		 fdir, watch, tf_extra ? tf_extra : "", extra ? extra : "");
	tu_write_file_mode(conf, text, 0644);
}

/* ---- the daemon ---- */

static int
control_ready(void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ok;

	(void)arg;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	/* A stale socket file of a killed daemon refuses. */
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Starts fltmgrd --foreground on the test's configuration, with `env`
 * ("NAME=value") added to the environment if not NULL, and returns at
 * once. Everything the child needs is prepared before fork(): other
 * threads of this process may be running. */
static pid_t
daemon_spawn(const char *env)
{
	char *argv[] = { (char *)fltmgrd_bin,
			 "--foreground",
			 "--runtime-dir",
			 rundir,
			 "--config",
			 conf,
			 NULL };
	static char *envp[512];
	size_t n = 0;
	pid_t pid;

	for (char **e = environ; *e && n < 510; e++)
		envp[n++] = *e;
	if (env)
		envp[n++] = (char *)env;
	envp[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	return pid;
}

static void
daemon_start_env(const char *env)
{
	daemon_pid = daemon_spawn(env);
	if (!tu_wait_until(control_ready, NULL, START_MS))
		fail_msg("fltmgrd did not start: %s", log_tail());
}

static void
daemon_start(void)
{
	daemon_start_env(NULL);
}

/* SIGTERM; returns the exit status (SIGKILL and -1 after 60 s). */
static int
daemon_stop(void)
{
	pid_t pid = daemon_pid;
	int rc;

	daemon_pid = 0;
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	rc = tu_wait_exit(pid, 60000);
	if (rc < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return rc;
}

/* ---- fltmc ---- */

/* Runs fltmc --runtime-dir RUNDIR ARGS... with its output into out;
 * returns its exit status, or -1 if it took longer than timeout_ms (it is
 * killed then). Safe while other threads run (no allocation after fork). */
static int
fltmc_run(char *out, size_t cap, int timeout_ms, const char *a1, const char *a2)
{
	char *argv[] = { (char *)fltmc_bin, "--runtime-dir", rundir,
			 (char *)a1,        (char *)a2,      NULL };
	char path[400];
	pid_t pid;
	int rc;

	snprintf(path, sizeof(path), "%s/fltmc.%d.out", scratch, (int)gettid());
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execve(argv[0], argv, environ);
		_exit(127);
	}
	rc = tu_wait_exit(pid, timeout_ms);
	if (rc < 0) {
		char p2[64], comm[64] = "?", wchan[64] = "?";
		int fd;
		ssize_t n;

		snprintf(p2, sizeof(p2), "/proc/%d/comm", (int)pid);
		if ((fd = open(p2, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = read(fd, comm, sizeof(comm) - 1);
			comm[n > 0 ? n - 1 : 0] = '\0';
			close(fd);
		}
		snprintf(p2, sizeof(p2), "/proc/%d/wchan", (int)pid);
		if ((fd = open(p2, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = read(fd, wchan, sizeof(wchan) - 1);
			wchan[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		fprintf(stderr,
			"fltmc_run: child %d still running after %d ms: %s in %s\n",
			(int)pid, timeout_ms, comm, wchan);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (out) {
		/* Not read_file(): this may run on two threads at once. */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		size_t len = 0;
		ssize_t n;

		while (fd >= 0 && len < cap - 1 &&
		       (n = read(fd, out + len, cap - 1 - len)) > 0)
			len += (size_t)n;
		if (fd >= 0)
			close(fd);
		out[len] = '\0';
	}
	unlink(path);
	return rc;
}

/* The element of array `key` whose "name" is name. */
static struct json_object *
jnamed(struct json_object *o, const char *key, const char *name)
{
	struct json_object *a = jget(o, key);

	for (size_t i = 0; i < json_object_array_length(a); i++) {
		struct json_object *e = json_object_array_get_idx(a, i);

		if (!strcmp(json_object_get_string(jget(e, "name")), name))
			return e;
	}
	fail_msg("no %s named %s", key, name);
	return NULL;
}

/* fltmc --json stats, which must answer within FLTMC_MS (caller puts). */
static struct json_object *
stats(void)
{
	static char out[1 << 16];
	struct json_object *o;
	int rc = fltmc_run(out, sizeof(out), FLTMC_MS, "--json", "stats");

	if (rc != 0)
		fail_msg("fltmc stats: exit %d: %s; daemon log: %s", rc, out, log_tail());
	o = json_tokener_parse(out);
	if (!o)
		fail_msg("fltmc stats: not JSON: %s", out);
	return o;
}

static int64_t
engine_counter(const char *key)
{
	struct json_object *o = stats();
	int64_t v = jint(jget(o, "engine"), key);

	json_object_put(o);
	return v;
}

/* ---- the daemon process from outside ---- */

static long
daemon_rss_kib(void)
{
	char path[64];
	const char *s, *p;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)daemon_pid);
	s = read_file(path);
	p = strstr(s, "VmRSS:");
	assert_non_null(p);
	return strtol(p + 6, NULL, 10);
}

/* The lowest descriptor number the daemon does not use: with its soft
 * RLIMIT_NOFILE there, it cannot open anything. */
static int
daemon_lowest_free_fd(void)
{
	static bool used[65536];
	struct dirent *e;
	char path[64];
	int lowest = 0;
	DIR *d;

	memset(used, 0, sizeof(used));
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon_pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd >= 0 &&
		    fd < (int)(sizeof(used) / sizeof(used[0])))
			used[fd] = true;
	}
	closedir(d);
	while (used[lowest])
		lowest++;
	return lowest;
}

/* Each thread of the daemon: name, state and where it sleeps, for a
 * failure message when something took too long. */
static void
daemon_threads(char *out, size_t cap)
{
	struct dirent *e;
	char path[400];
	size_t len = 0;
	DIR *d;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/task", (int)daemon_pid);
	d = opendir(path);
	while (d && (e = readdir(d)) && len + 128 < cap) {
		char comm[64] = "?", wchan[64] = "?", stat[512] = "";
		const char *st;
		int fd;
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)daemon_pid,
			 e->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = read(fd, comm, sizeof(comm) - 1);
			comm[n > 0 ? n - 1 : 0] = '\0';
			close(fd);
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%s/wchan", (int)daemon_pid,
			 e->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = read(fd, wchan, sizeof(wchan) - 1);
			wchan[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)daemon_pid,
			 e->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			n = read(fd, stat, sizeof(stat) - 1);
			stat[n > 0 ? n : 0] = '\0';
			close(fd);
		}
		st = strrchr(stat, ')');
		len += (size_t)snprintf(out + len, cap - len, "%s[%s %c %s] ", comm,
					e->d_name, st && st[1] ? st[2] : '?', wchan);
	}
	if (d)
		closedir(d);
}

/* ---- services ---- */

static char *
port_path(const char *name)
{
	static char path[400];

	snprintf(path, sizeof(path), "%s/%s", rundir, name);
	return path;
}

static int
connect_tf(filter_port **ret)
{
	return filter_connect_communication_port(port_path("tfport"), 0, NULL, 0, ret);
}

/* connect_tf() that must succeed; if it does not, the failure says what
 * the daemon's threads were doing and what it last logged. */
static void
connect_tf_ok(filter_port **ret)
{
	static char threads[8192];
	int r = connect_tf(ret);

	if (r == 0)
		return;
	daemon_threads(threads, sizeof(threads));
	fail_msg("connecting to tfport: %s; the daemon's threads: %s; its log "
		 "ends: %s",
		 strerror(-r), threads, log_tail());
}

/* 0 if the filter answered "pong", else the error. */
static int
ping(filter_port *p)
{
	char reply[16] = "";
	size_t len = 0;
	int r = filter_send_message(p, "ping", 4, reply, sizeof(reply), &len);

	if (r == 0 && (len != 4 || memcmp(reply, "pong", 4)))
		return -EPROTO;
	return r;
}

/* ---- openers: threads opening one file in a loop ---- */

struct opener {
	pthread_t thread;
	char name[64];
	int expect; /* the right answer: 0 or -EPERM */
	int once;   /* open once and stop */
	int pause_us;
	atomic_bool stop, done;
	atomic_int n, wrong, last, first_wrong;
	atomic_llong max_ms, end_ms;
};

static void *
opener_main(void *arg)
{
	struct opener *o = arg;

	do {
		int64_t t0 = tu_now_ms(), dt;
		int r = try_open(o->name);

		dt = tu_now_ms() - t0;
		if (dt > atomic_load(&o->max_ms))
			atomic_store(&o->max_ms, dt);
		atomic_store(&o->last, r);
		if (r != o->expect && atomic_fetch_add(&o->wrong, 1) == 0)
			atomic_store(&o->first_wrong, r);
		atomic_fetch_add(&o->n, 1);
		if (o->pause_us)
			usleep((useconds_t)o->pause_us);
	} while (!o->once && !atomic_load(&o->stop));
	atomic_store(&o->end_ms, tu_now_ms());
	atomic_store(&o->done, true);
	return NULL;
}

static void
opener_start(struct opener *o, const char *name, int expect, int once, int pause_us)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->expect = expect;
	o->once = once;
	o->pause_us = pause_us;
	assert_int_equal(pthread_create(&o->thread, NULL, opener_main, o), 0);
}

static int
opener_done(void *arg)
{
	return atomic_load(&((struct opener *)arg)->done);
}

/* Stops it; fails if it does not return within timeout_ms (a hang). */
static void
opener_stop(struct opener *o, int timeout_ms)
{
	atomic_store(&o->stop, true);
	if (!tu_wait_until(opener_done, o, timeout_ms))
		fail_msg("an open of %s has not returned after %d ms", o->name,
			 timeout_ms);
	pthread_join(o->thread, NULL);
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	static int n;

	(void)state;
	snprintf(rundir, sizeof(rundir), "%s/run%d", scratch, n);
	snprintf(fdir, sizeof(fdir), "%s/filters%d", scratch, n);
	snprintf(conf, sizeof(conf), "%s/fltmgr%d.conf", scratch, n);
	snprintf(logfile, sizeof(logfile), "%s/daemon%d.log", scratch, n);
	snprintf(watch, sizeof(watch), "%s/w%d", watchfs, n);
	n++;
	assert_int_equal(mkdir(fdir, 0755), 0);
	assert_int_equal(mkdir(watch, 0777), 0);
	copy_object(filter_so, "tf.so");
	tu_write_file_mode(in_watch("secret.txt"), "s\n", 0644);
	tu_write_file_mode(in_watch("plain.txt"), "p\n", 0644);
	tu_write_file_mode(in_watch("slow.txt"), "h\n", 0644);
	write_conf(NULL, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (daemon_pid > 0) {
		int rc = daemon_stop();

		if (rc != 0)
			fail_msg("fltmgrd exited %d: %s", rc, log_tail());
	}
	return 0;
}

/* ---- the daemon killed under permission load ---- */

/* Opens secret.txt in a loop: before kill_ms each open must be denied;
 * after it, opens may be allowed until, for opens started after
 * reaped_ms (the old daemon is gone), the first denial comes back; after
 * that, each must be denied again. */
struct gap_probe {
	pthread_t thread;
	atomic_bool stop;
	atomic_llong kill_ms, reaped_ms; /* 0: not yet */
	atomic_llong denied_at_ms;       /* end of that first denied open */
	atomic_int allowed_after;        /* opens allowed: unprotected */
	atomic_int wrong_before;         /* allowed before the kill */
	atomic_int wrong_later;          /* allowed after the denial came back */
	atomic_llong max_ms;
};

static void *
gap_probe_main(void *arg)
{
	struct gap_probe *g = arg;

	while (!atomic_load(&g->stop)) {
		int64_t reaped = atomic_load(&g->reaped_ms), t0 = tu_now_ms(), t1, killed;
		int r = try_open("secret.txt");

		/* Not killed yet when the open returned: the daemon decided. */
		killed = atomic_load(&g->kill_ms);
		t1 = tu_now_ms();
		if (t1 - t0 > atomic_load(&g->max_ms))
			atomic_store(&g->max_ms, t1 - t0);
		if (killed == 0) {
			if (r != -EPERM)
				atomic_fetch_add(&g->wrong_before, 1);
		} else if (r != -EPERM) {
			if (atomic_load(&g->denied_at_ms))
				atomic_fetch_add(&g->wrong_later, 1);
			else
				atomic_fetch_add(&g->allowed_after, 1);
		} else if (reaped && t0 >= reaped && !atomic_load(&g->denied_at_ms)) {
			atomic_store(&g->denied_at_ms, t1);
		}
		usleep(200);
	}
	return NULL;
}

static int
gap_closed(void *arg)
{
	return atomic_load(&((struct gap_probe *)arg)->denied_at_ms) != 0;
}

static int
two_pending(void *arg)
{
	(void)arg;
	return engine_counter("pending") >= 2;
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/*
 * SIGKILL while two opens are held in a pre callback and others run, then
 * an immediate restart (what Restart= does, without RestartSec=): the
 * held opens return at once, allowed (the kernel fails open when the
 * group closes), nothing ever hangs, and the restarted daemon denies
 * again. Prints the unprotected gap: from the kill to the first open the
 * restarted daemon denied.
 */
static void
sigkill_under_permission_load(void **state)
{
	long long gap[SIGKILL_REP], reap[SIGKILL_REP], start[SIGKILL_REP];
	long long released[SIGKILL_REP];

	(void)state;
	/* Held far longer than RETURN_MS: only the kill can release them. */
	write_conf("param.hold = slow\nparam.hold_ms = 120000\ndeadline_ms = 300000\n",
		   NULL);
	for (int rep = 0; rep < SIGKILL_REP; rep++) {
		struct opener held[2], load[2];
		struct gap_probe g = { 0 };
		int64_t t_kill, t_reaped, t_spawn;
		int rc;

		daemon_start();
		assert_int_equal(try_open("secret.txt"), -EPERM);
		for (int i = 0; i < 2; i++) {
			opener_start(&held[i], "slow.txt", 0, 1, 0);
			opener_start(&load[i], "plain.txt", 0, 0, 100);
		}
		assert_int_equal(pthread_create(&g.thread, NULL, gap_probe_main, &g), 0);
		if (!tu_wait_until(two_pending, NULL, RETURN_MS))
			fail_msg("the held opens never reached the filter");
		usleep(50000);
		assert_false(atomic_load(&held[0].done) || atomic_load(&held[1].done));

		t_kill = tu_now_ms();
		atomic_store(&g.kill_ms, t_kill);
		assert_int_equal(kill(daemon_pid, SIGKILL), 0);
		rc = tu_wait_exit(daemon_pid, RETURN_MS);
		t_reaped = tu_now_ms();
		assert_int_equal(rc, 128 + SIGKILL);
		/* From here nothing of the old daemon is left. */
		atomic_store(&g.reaped_ms, t_reaped);
		t_spawn = tu_now_ms();
		daemon_pid = daemon_spawn(NULL);

		/* The held opens come back at once, allowed by the kernel. */
		for (int i = 0; i < 2; i++) {
			if (!tu_wait_until(opener_done, &held[i], RETURN_MS))
				fail_msg("a held open did not return %d ms after the "
					 "kill",
					 RETURN_MS);
			pthread_join(held[i].thread, NULL);
			assert_int_equal(atomic_load(&held[i].last), 0);
		}
		released[rep] =
			atomic_load(&held[0].end_ms) > atomic_load(&held[1].end_ms)
				? atomic_load(&held[0].end_ms)
				: atomic_load(&held[1].end_ms);
		released[rep] -= t_kill;
		if (!tu_wait_until(gap_closed, &g, START_MS))
			fail_msg("the restarted daemon never denied: %s", log_tail());
		usleep(100000); /* and it keeps denying */
		atomic_store(&g.stop, true);
		pthread_join(g.thread, NULL);
		for (int i = 0; i < 2; i++) {
			opener_stop(&load[i], RETURN_MS);
			if (atomic_load(&load[i].wrong))
				fail_msg("%d of %d opens of %s failed, the first with %s",
					 atomic_load(&load[i].wrong),
					 atomic_load(&load[i].n), load[i].name,
					 strerror(-atomic_load(&load[i].first_wrong)));
			assert_true(atomic_load(&load[i].max_ms) < RETURN_MS);
		}
		assert_int_equal(atomic_load(&g.wrong_before), 0);
		assert_int_equal(atomic_load(&g.wrong_later), 0);
		assert_true(atomic_load(&g.max_ms) < RETURN_MS);

		gap[rep] = atomic_load(&g.denied_at_ms) - t_kill;
		reap[rep] = t_reaped - t_kill;
		start[rep] = atomic_load(&g.denied_at_ms) - t_spawn;
		printf("# sigkill run %d: unprotected gap %lld ms (kill to reaped %lld "
		       "ms; restart to first denial %lld ms; %d opens allowed "
		       "unfiltered); held opens released %lld ms after the kill\n",
		       rep + 1, gap[rep], reap[rep], start[rep],
		       atomic_load(&g.allowed_after), released[rep]);
		if (!tu_wait_until(control_ready, NULL, START_MS))
			fail_msg("the restarted daemon has no control socket");
		rc = daemon_stop();
		if (rc != 0)
			fail_msg("the restarted fltmgrd exited %d: %s", rc, log_tail());
	}
	qsort(gap, SIGKILL_REP, sizeof(gap[0]), cmp_ll);
	qsort(start, SIGKILL_REP, sizeof(start[0]), cmp_ll);
	printf("# sigkill: unprotected gap with an immediate restart: median %lld ms "
	       "(min %lld, max %lld; restart to first denial median %lld ms)%s\n",
	       gap[SIGKILL_REP / 2], gap[0], gap[SIGKILL_REP - 1], start[SIGKILL_REP / 2],
	       SANITIZED ? " [sanitizer build]" : "");
}

/* ---- descriptor exhaustion ---- */

struct bg_connect {
	pthread_t thread;
	filter_port *port;
	atomic_int result;
	atomic_bool done;
};

static void *
bg_connect_main(void *arg)
{
	struct bg_connect *b = arg;

	atomic_store(&b->result, connect_tf(&b->port));
	atomic_store(&b->done, true);
	return NULL;
}

static int
bg_connect_done(void *arg)
{
	return atomic_load(&((struct bg_connect *)arg)->done);
}

struct bg_fltmc {
	pthread_t thread;
	char out[1 << 16];
	atomic_int rc;
	atomic_bool done;
};

static void *
bg_fltmc_main(void *arg)
{
	struct bg_fltmc *b = arg;

	atomic_store(&b->rc,
		     fltmc_run(b->out, sizeof(b->out), FLTMC_MS, "--json", "stats"));
	atomic_store(&b->done, true);
	return NULL;
}

static int
bg_fltmc_done(void *arg)
{
	return atomic_load(&((struct bg_fltmc *)arg)->done);
}

/*
 * The daemon's soft RLIMIT_NOFILE lowered to the lowest descriptor it
 * does not use: it can open nothing. The kernel then cannot give it the
 * descriptor of a permission event and denies the access itself: every
 * open returns EPERM at once (fail closed), each counted in
 * engine.dropped and logged (rate-limited). A connected service keeps
 * being served; a new one and fltmc wait in the listen queues without
 * the daemon spinning, and are served once the limit is raised again.
 */
static void
descriptor_exhaustion(void **state)
{
	struct bg_connect late = { 0 };
	struct bg_fltmc ctl = { 0 };
	struct rlimit old, low;
	struct json_object *o;
	filter_port *svc = NULL;
	int64_t dropped0, t0;
	int opens = 0, plain_denied = 0;
	const char *log;

	(void)state;
	daemon_start();
	assert_int_equal(connect_tf(&svc), 0);
	assert_int_equal(ping(svc), 0);
	assert_int_equal(try_open("plain.txt"), 0);
	dropped0 = engine_counter("dropped");

	assert_int_equal(prlimit(daemon_pid, RLIMIT_NOFILE, NULL, &old), 0);
	low = old;
	/* Until no descriptor below the limit has come free meanwhile (the
	 * daemon closes fltmc's connection after fltmc has gone). */
	do {
		low.rlim_cur = (rlim_t)daemon_lowest_free_fd();
		assert_int_equal(prlimit(daemon_pid, RLIMIT_NOFILE, &low, NULL), 0);
		usleep(100000);
	} while ((rlim_t)daemon_lowest_free_fd() < low.rlim_cur);
	t0 = tu_now_ms();

	for (int i = 0; i < 20; i++) {
		int64_t t = tu_now_ms();
		int r = try_open("plain.txt");

		assert_true(tu_now_ms() - t < RETURN_MS);
		assert_true(r == 0 || r == -EPERM);
		plain_denied += r == -EPERM;
		/* Never allowed, whatever else fails. */
		assert_int_equal(try_open("secret.txt"), -EPERM);
		opens += 2;
	}
	/* Nothing could be read: the kernel denied every one. */
	assert_int_equal(plain_denied, 20);
	assert_int_equal(ping(svc), 0); /* calls need no descriptor */
	assert_int_equal(pthread_create(&late.thread, NULL, bg_connect_main, &late), 0);
	assert_int_equal(pthread_create(&ctl.thread, NULL, bg_fltmc_main, &ctl), 0);
	usleep(500000);
	assert_int_equal(ping(svc), 0);

	assert_int_equal(prlimit(daemon_pid, RLIMIT_NOFILE, &old, NULL), 0);
	printf("# descriptor exhaustion: %d opens denied by the kernel in %lld ms\n",
	       opens, (long long)(tu_now_ms() - t0));
	if (!tu_wait_until(bg_connect_done, &late, RETURN_MS))
		fail_msg("a service connecting during the exhaustion was not served");
	pthread_join(late.thread, NULL);
	assert_int_equal(atomic_load(&late.result), 0);
	assert_int_equal(ping(late.port), 0);
	if (!tu_wait_until(bg_fltmc_done, &ctl, FLTMC_MS + 5000))
		fail_msg("fltmc started during the exhaustion was not served");
	pthread_join(ctl.thread, NULL);
	assert_int_equal(atomic_load(&ctl.rc), 0);

	o = json_tokener_parse(ctl.out);
	assert_non_null(o);
	assert_true(jint(jget(o, "daemon"), "control_accept_errors") >= 1);
	json_object_put(o);
	o = stats();
	assert_int_equal(jint(jget(o, "engine"), "dropped") - dropped0, opens);
	assert_int_equal(jint(jnamed(o, "ports", "tfport"), "refused"), 0);
	json_object_put(o);

	/* Filtering is back, and the log said what happened, briefly. */
	assert_int_equal(try_open("secret.txt"), -EPERM);
	assert_int_equal(try_open("plain.txt"), 0);
	log = read_file(logfile);
	assert_non_null(strstr(log, "cannot read a permission event: Too many open "
				    "files"));
	assert_true(count_lines_with(log, "cannot read a permission event") <= 5);
	assert_true(count_lines_with(log, "control: accept") <= 5);
	assert_true(count_lines_with(log, "port tfport: accept") <= 5);
	filter_close_port(late.port);
	filter_close_port(svc);
}

/* ---- allocation failures ---- */

/*
 * FLTMGR_FAULT_ALLOC=perm:4,conn:2: every 4th permission event and every
 * 2nd connection cannot be allocated. A permission event without memory
 * is allowed unfiltered (as the kernel allows everything when the daemon
 * dies), counted in engine.dropped and logged; a connection without
 * memory is refused with ENOMEM, counted in the port's refused. Every
 * open returns and the daemon stops cleanly (no leak under ASan).
 */
static void
allocation_failures(void **state)
{
	filter_port *p[4] = { NULL };
	struct json_object *o, *f;
	int allowed = 0, denied = 0;
	const char *log;

	(void)state;
	daemon_start_env("FLTMGR_FAULT_ALLOC=perm:4,conn:2");
	for (int i = 0; i < 40; i++) {
		int r = try_open("secret.txt");

		assert_true(r == 0 || r == -EPERM);
		allowed += r == 0;
		denied += r == -EPERM;
	}
	assert_int_equal(allowed, 10);
	assert_int_equal(denied, 30);
	for (int i = 0; i < 4; i++) {
		int r = connect_tf(&p[i]);

		assert_int_equal(r, i % 2 ? -ENOMEM : 0);
		if (r == 0)
			assert_int_equal(ping(p[i]), 0);
	}

	o = stats();
	assert_int_equal(jint(jget(o, "engine"), "dropped"), 10);
	assert_int_equal(jint(jget(o, "engine"), "denied"), 30);
	assert_int_equal(jint(jget(o, "engine"), "pending"), 0);
	f = jnamed(o, "filters", "tf");
	assert_int_equal(jint(f, "denied"), 30);
	f = jnamed(o, "ports", "tfport");
	assert_int_equal(jint(f, "accepted"), 2);
	assert_int_equal(jint(f, "refused"), 2);
	assert_int_equal(jint(f, "connections"), 2);
	json_object_put(o);
	for (int i = 0; i < 4; i += 2)
		filter_close_port(p[i]);
	log = read_file(logfile);
	assert_non_null(strstr(log, "out of memory for a permission event"));
	assert_non_null(strstr(log, "cannot start a connection for pid"));
	assert_non_null(strstr(log, strerror(ENOMEM)));
}

/*
 * FLTMGR_FAULT_ALLOC=wake:1: the engine cannot make its wake-up file, so
 * its permission readers poll before each read, as they did before reads
 * blocked. Every open is answered as configured, and the daemon still
 * stops cleanly on SIGTERM.
 */
static void
readers_poll_without_a_wake_file(void **state)
{
	const char *log;

	(void)state;
	daemon_start_env("FLTMGR_FAULT_ALLOC=wake:1");
	for (int i = 0; i < 20; i++) {
		assert_int_equal(try_open("secret.txt"), -EPERM);
		assert_int_equal(try_open("plain.txt"), 0);
	}
	log = read_file(logfile);
	assert_non_null(strstr(log, "permission readers poll before each read"));
	assert_int_equal(daemon_stop(), 0);
}

/* ---- flooding and stalled clients ---- */

struct flooder {
	pthread_t thread;
	filter_port *port;
	atomic_bool stop;
	atomic_long calls, errors;
};

/*
 * A flooder runs at nice 19. What is tested is the daemon: that one
 * service's calls do not hold up another's, fltmc or the permission path
 * (no shared lock, queue or thread). Four threads calling flat out at the
 * default priority on two cores also test the kernel's scheduler, and on
 * 6.18 it loses: unrelated runnable processes (fltmc, a shell loop reading
 * /proc/stat) went unscheduled for seconds, 41 s once, with no steal
 * time, whatever the daemon did. Niced, the flooders still make as many calls (the daemon
 * serves them at the default priority), and the measurements below are
 * the daemon's.
 */
static void *
flooder_main(void *arg)
{
	struct flooder *fl = arg;

	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	while (!atomic_load(&fl->stop)) {
		if (ping(fl->port) == 0)
			atomic_fetch_add(&fl->calls, 1);
		else
			atomic_fetch_add(&fl->errors, 1);
	}
	return NULL;
}

static int
raw_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) <
		    (int)sizeof(sa.sun_path));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* The client half of the port handshake by hand: M, and C. R is left
 * open (never read): a client that closes R has hung up, and the daemon
 * ends its connection as a disconnect at once. */
static void
raw_handshake(int *m, int *c)
{
	uint8_t buf[WIRE_HEADER_SIZE];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct wire_header h = { .type = WIRE_CONNECT };
	struct pollfd pf;
	struct frame_rx rx;
	const char *why;

	*m = raw_socket(port_path("tfport"));
	assert_int_equal(frame_send(*m, &h, NULL, NULL, 0, 0), 0);
	pf = (struct pollfd){ .fd = *m, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, RETURN_MS), 1);
	assert_int_equal(frame_recv(*m, &iov, 1, MSG_DONTWAIT, &rx), 1);
	assert_int_equal(wire_decode(buf, rx.size, rx.truncated,
				     WIRE_BIT(WIRE_CONNECT_REPLY), &h, &why),
			 0);
	assert_int_equal(h.status, 0);
	assert_int_equal(rx.n_fds, 2);
	*c = rx.fds[1];
}

/* Waits until the peer of fd is gone; 1 if it went within timeout_ms. */
static int
peer_gone(int fd, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;

	while (tu_now_ms() < end) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char buf[256];
		ssize_t n;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
		if (pf.revents & (POLLHUP | POLLERR))
			return 1;
	}
	return 0;
}

/* Only the victim and the idle service are left. */
static int
two_connections(void *arg)
{
	struct json_object *o = stats();
	int64_t n = jint(jnamed(o, "ports", "tfport"), "connections");

	(void)arg;
	json_object_put(o);
	return n == 2;
}

/*
 * Against one daemon at once: four services flooding calls; a raw client
 * that sends calls but never reads their results; one that connects and
 * sends nothing (no CONNECT); one that sends half a CONNECT header and
 * stalls; a connected service that never reads or writes; a control
 * client that sends nothing and one whose request is half a JSON object.
 * Meanwhile another service's round trips, fltmc stats and permission
 * decisions stay correct and prompt; each misbehaving client is dropped
 * and counted.
 */
static void
flooding_and_stalled_clients(void **state)
{
	struct flooder fl[4];
	struct opener deny, allow;
	filter_port *victim = NULL, *idle = NULL;
	int silent, half, rm, rc, ctl_idle, ctl_half;
	struct wire_header h = { .type = WIRE_CONNECT, .length = 0 };
	uint8_t hdr[WIRE_HEADER_SIZE], frame[WIRE_HEADER_SIZE + 4];
	int64_t max_ping = 0, max_stats = 0, t_end;
	int ping_errors = 0, stats_failures = 0;
	static char stats_diag[8192];
	bool raw_dropped = false;
	long sent_calls = 0;
	struct json_object *o, *port;
	char buf[4096];
	ssize_t n;

	(void)state;
	daemon_start();
	connect_tf_ok(&victim);
	connect_tf_ok(&idle);

	/* Stall before and inside the first frame. */
	silent = raw_socket(port_path("tfport"));
	half = raw_socket(port_path("tfport"));
	wire_encode_header(hdr, &h);
	assert_int_equal(send(half, hdr, WIRE_HEADER_SIZE / 2, MSG_NOSIGNAL),
			 WIRE_HEADER_SIZE / 2);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
		ctl_idle = raw_socket(sa.sun_path);
		ctl_half = raw_socket(sa.sun_path);
		assert_int_equal(send(ctl_half, "{\"command\":", 11, MSG_NOSIGNAL), 11);
	}
	/* A service that calls and never reads what comes back. */
	raw_handshake(&rm, &rc);
	h = (struct wire_header){ .type = WIRE_CALL, .length = 4, .aux2 = 64 };

	/* All connected before any floods: a failed connect then leaves no
	 * thread calling behind it. */
	for (int i = 0; i < 4; i++) {
		memset(&fl[i], 0, sizeof(fl[i]));
		connect_tf_ok(&fl[i].port);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(
			pthread_create(&fl[i].thread, NULL, flooder_main, &fl[i]), 0);
	opener_start(&deny, "secret.txt", -EPERM, 0, 500);
	opener_start(&allow, "plain.txt", 0, 0, 500);

	t_end = tu_now_ms() + 7000; /* past the 5 s handshake timeout */
	/* Nothing may fail_msg() in here: the flooders must be stopped
	 * first. Failures are noted and asserted after. */
	while (tu_now_ms() < t_end) {
		int64_t t = tu_now_ms();

		if (ping(victim) != 0)
			ping_errors++;
		if (tu_now_ms() - t > max_ping)
			max_ping = tu_now_ms() - t;
		if (!raw_dropped) {
			/* Calls until its socket is full and the daemon drops it. */
			for (int i = 0; i < 64; i++) {
				h.id = (uint64_t)++sent_calls;
				wire_encode_header(frame, &h);
				memcpy(frame + WIRE_HEADER_SIZE, "ping", 4);
				n = send(rc, frame, sizeof(frame),
					 MSG_DONTWAIT | MSG_NOSIGNAL);
				if (n < 0 && errno != EAGAIN) {
					raw_dropped = true;
					break;
				}
			}
		}
		if (t % 1000 < 100) {
			t = tu_now_ms();
			if (fltmc_run(NULL, 0, FLTMC_MS, "--json", "stats") != 0 &&
			    !stats_failures++)
				daemon_threads(stats_diag, sizeof(stats_diag));
			if (tu_now_ms() - t > max_stats)
				max_stats = tu_now_ms() - t;
		}
		usleep(20000);
	}
	for (int i = 0; i < 4; i++) {
		atomic_store(&fl[i].stop, true);
		pthread_join(fl[i].thread, NULL);
		assert_true(atomic_load(&fl[i].calls) > 0);
		assert_int_equal(atomic_load(&fl[i].errors), 0);
		filter_close_port(fl[i].port);
	}
	opener_stop(&deny, RETURN_MS);
	opener_stop(&allow, RETURN_MS);
	if (stats_failures)
		fail_msg("%d fltmc stats failed or took over %d ms; the daemon's "
			 "threads then: %s",
			 stats_failures, FLTMC_MS, stats_diag);
	assert_int_equal(ping_errors, 0);
	printf("# flood: %ld+%ld+%ld+%ld calls by the flooders in 7 s; other "
	       "service's slowest round trip %lld ms, slowest fltmc stats %lld ms, "
	       "slowest open %lld ms\n",
	       atomic_load(&fl[0].calls), atomic_load(&fl[1].calls),
	       atomic_load(&fl[2].calls), atomic_load(&fl[3].calls), (long long)max_ping,
	       (long long)max_stats,
	       (long long)(atomic_load(&deny.max_ms) > atomic_load(&allow.max_ms)
				   ? atomic_load(&deny.max_ms)
				   : atomic_load(&allow.max_ms)));
	assert_true(max_ping < RETURN_MS);
	assert_true(max_stats < FLTMC_MS);
	assert_int_equal(atomic_load(&deny.wrong), 0);
	assert_int_equal(atomic_load(&allow.wrong), 0);
	assert_true(atomic_load(&deny.n) > 10 && atomic_load(&allow.n) > 10);
	assert_true(atomic_load(&deny.max_ms) < RETURN_MS);
	assert_true(atomic_load(&allow.max_ms) < RETURN_MS);

	/* Each misbehaving client was dropped. */
	assert_true(raw_dropped || peer_gone(rc, RETURN_MS));
	assert_true(peer_gone(silent, RETURN_MS));
	assert_true(peer_gone(half, RETURN_MS));
	assert_true(peer_gone(ctl_idle, RETURN_MS));
	n = recv(ctl_half, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "\"ok\":false"));
	assert_int_equal(ping(idle), 0); /* idle, not dropped */
	assert_int_equal(ping(victim), 0);

	if (!tu_wait_until(two_connections, NULL, RETURN_MS))
		fail_msg("the flooders' connections are still counted");
	o = stats();
	port = jnamed(o, "ports", "tfport");
	/* silent (no CONNECT in time) and half (malformed CONNECT) */
	assert_true(jint(port, "refused") >= 2);
	/* half, and the one not reading its call results */
	assert_true(jint(port, "malformed") >= 2);
	assert_int_equal(jint(port, "connections"), 2); /* victim, idle */
	assert_true(jint(jget(o, "daemon"), "control_timeouts") >= 1);
	assert_true(jint(jget(o, "daemon"), "control_malformed") >= 1);
	json_object_put(o);
	assert_non_null(strstr(read_file(logfile), "does not read call results"));
	close(silent);
	close(half);
	close(rm);
	close(rc);
	close(ctl_idle);
	close(ctl_half);
	filter_close_port(idle);
	filter_close_port(victim);
}

/* ---- minispy's backlog overflowing ---- */

/* Creates, writes, closes and deletes n files with long names: six
 * records each for minispy (on 6.18), one permission event each for tf. */
static void
churn(int n)
{
	char name[300], pad[201];

	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < n; i++) {
		int fd;

		snprintf(name, sizeof(name), "churn-%s-%06d", pad, i);
		fd = open(in_watch(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "x", 1), 1);
		close(fd);
		assert_int_equal(unlink(in_watch(name)), 0);
	}
}

static int64_t
minispy_counter(struct json_object *o, const char *key)
{
	return jint(jget(jnamed(o, "filters", "minispy"), "counters"), key);
}

/* Until minispy's record count and the engine's notification count have
 * not moved for three readings in a row (the notification queue is
 * drained); returns the stats then (caller puts). */
static struct json_object *
minispy_settled(void)
{
	int64_t end = tu_now_ms() + SETTLE_MS, last = -1;
	int same = 0;

	for (;;) {
		struct json_object *o = stats();
		int64_t now = minispy_counter(o, "records") +
			      jint(jget(o, "engine"), "notification_events");

		same = now == last ? same + 1 : 0;
		if (same == 2)
			return o;
		if (tu_now_ms() > end)
			fail_msg("minispy's counters kept moving for %d ms", SETTLE_MS);
		last = now;
		json_object_put(o);
		usleep(200000);
	}
}

/*
 * minispy (backlog 256) with no service connected, next to tf: two waves
 * of 3000 churned files (18000 records each) overflow its backlog. The
 * loss is counted and reported in-band to the service that connects
 * afterwards (one BACKLOG loss record first); tf keeps denying and
 * answering its port; fltmc keeps answering; and the daemon's memory
 * stays bounded: the second wave, as big as the first, adds (almost)
 * nothing. Under sanitizers the RSS is printed but not checked (their
 * allocators keep freed memory in quarantine).
 */
static void
minispy_backlog_overflow(void **state)
{
	char extra[1024], buf[MINISPY_RECORD_MAX];
	struct opener deny;
	struct json_object *o;
	struct filter_message_header mh;
	struct minispy_record rec;
	filter_port *svc = NULL, *spy = NULL;
	long rss0, rss1, rss2;
	int64_t dropped, queued, delivered, now_n, got_events = 0;
	int r;

	(void)state;
	copy_object(minispy_so, "minispy.so");
	snprintf(extra, sizeof(extra),
		 "\n[filter minispy]\n"
		 "altitude = 385100\n"
		 "object = minispy.so\n"
		 "attach = %s\n"
		 "param.backlog = 256\n"
		 "param.process = false\n",
		 watch);
	write_conf(NULL, extra);
	daemon_start();
	assert_int_equal(connect_tf(&svc), 0);
	opener_start(&deny, "secret.txt", -EPERM, 0, 2000);

	churn(500); /* the backlog full once: its steady state */
	json_object_put(minispy_settled());
	rss0 = daemon_rss_kib();
	churn(3000);
	o = minispy_settled();
	rss1 = daemon_rss_kib();
	json_object_put(o);
	assert_int_equal(ping(svc), 0);
	churn(3000);
	o = minispy_settled();
	rss2 = daemon_rss_kib();
	assert_int_equal(ping(svc), 0);
	opener_stop(&deny, RETURN_MS);
	assert_true(atomic_load(&deny.n) > 5);
	assert_int_equal(atomic_load(&deny.wrong), 0);
	assert_true(atomic_load(&deny.max_ms) < RETURN_MS);
	json_object_put(o);
	o = stats(); /* after the last open */

	dropped = minispy_counter(o, "backlog_dropped");
	queued = minispy_counter(o, "backlog_queued");
	delivered = minispy_counter(o, "backlog_delivered");
	now_n = minispy_counter(o, "backlog_now");
	printf("# minispy backlog: %lld records, %lld dropped from the backlog; "
	       "daemon RSS %ld KiB after filling it, %ld after wave 1 (+%ld), %ld "
	       "after wave 2 (+%ld)%s\n",
	       (long long)minispy_counter(o, "records"), (long long)dropped, rss0, rss1,
	       rss1 - rss0, rss2, rss2 - rss1,
	       SANITIZED ? " [sanitizer build: not checked]" : "");
	assert_true(dropped > 20000);
	assert_int_equal(now_n, 256);
	assert_int_equal(delivered, 0);
	assert_int_equal(queued, dropped + delivered + now_n);
	assert_int_equal(jint(jnamed(o, "filters", "tf"), "denied"),
			 (int64_t)atomic_load(&deny.n));
	json_object_put(o);
	if (!SANITIZED) {
		/* Unbounded, each wave would keep 18000 records of ~300
		 * bytes: over 4 MiB. */
		assert_true(rss2 - rss1 < 4096);
		assert_true(rss1 - rss0 < 8192);
	}

	/* The first service to connect is told: one BACKLOG loss record,
	 * then the 256 newest records. */
	r = filter_connect_communication_port(port_path("minispy"), 0, NULL, 0, &spy);
	assert_int_equal(r, 0);
	r = filter_get_message(spy, &mh, buf, sizeof(buf), RETURN_MS);
	assert_true(r > 0);
	assert_int_equal(minispy_record_decode(buf, (size_t)r, &rec), 0);
	assert_int_equal(rec.type, MINISPY_REC_LOSS);
	assert_int_equal(rec.loss.cause, MINISPY_LOSS_BACKLOG);
	assert_int_equal((int64_t)rec.loss.count, dropped);
	while (got_events < 256 &&
	       (r = filter_get_message(spy, &mh, buf, sizeof(buf), RETURN_MS)) > 0) {
		assert_int_equal(minispy_record_decode(buf, (size_t)r, &rec), 0);
		assert_int_equal(rec.type, MINISPY_REC_EVENT);
		got_events++;
	}
	assert_int_equal(got_events, 256);
	filter_close_port(spy);
	filter_close_port(svc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(sigkill_under_permission_load, setup,
						teardown),
		cmocka_unit_test_setup_teardown(descriptor_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(allocation_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(readers_poll_without_a_wake_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(flooding_and_stalled_clients, setup,
						teardown),
		cmocka_unit_test_setup_teardown(minispy_backlog_overflow, setup,
						teardown),
	};
	int r;

	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	fltmc_bin = getenv("FLTMGR_TEST_FLTMC");
	filter_so = getenv("FLTMGR_TEST_FILTER");
	minispy_so = getenv("FLTMGR_TEST_MINISPY_SO");
	if (geteuid() != 0) {
		printf("test_faults: SKIP: needs root (fanotify, root-owned filter "
		       "objects)\n");
		return 77;
	}
	if (!fltmgrd_bin || !fltmc_bin || !filter_so || !minispy_so) {
		printf("test_faults: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_FLTMC, "
		       "FLTMGR_TEST_FILTER and FLTMGR_TEST_MINISPY_SO must be set "
		       "(meson test sets them)\n");
		return 1;
	}
	r = tu_private_scratch("test_faults", scratch, "fltmgr-faults", 64);
	if (r != 0)
		return r;
	snprintf(watchfs, sizeof(watchfs), "%s/watchfs", scratch);
	if (mkdir(watchfs, 0755) < 0 ||
	    mount("fltmgr-faults-watch", watchfs, "tmpfs", 0, "mode=0755,size=64m") < 0) {
		printf("test_faults: cannot mount the watched tmpfs: %s\n",
		       strerror(errno));
		return 1;
	}
	if (getenv("TEST_FAULTS_ONLY")) /* for debugging: one test by name */
		cmocka_set_test_filter(getenv("TEST_FAULTS_ONLY"));
	unsetenv("FLTMGR_RUNTIME_DIR");
	unsetenv("FLTMGR_FAULT_ALLOC");
	signal(SIGPIPE, SIG_IGN);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	umount2(watchfs, MNT_DETACH);
	tu_private_scratch_remove(scratch);
	return r;
}
