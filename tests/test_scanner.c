/* SPDX-License-Identifier: MIT */
/*
 * test_scanner.c — the scanner filter (filters/scanner/) and its service
 * (filters/scanner/service/) end to end, as an operator runs them: the
 * real fltmgrd loading scanner.so from a config (deadline 1000 ms unless
 * a test needs another), and the real `scanner --rules FILE` with a rule
 * that matches a marker string. Root only (fanotify, root-owned filter
 * objects).
 *
 * Like test_minispy_service.c, the program runs in a private mount
 * namespace on a scratch tmpfs; each test has its own runtime directory,
 * filter directory and watched directory. The filter's counters are read
 * through a monitor connection (window 0: it gets no requests), the
 * service's from the line it prints on SIGUSR1. Opens whose verdict is
 * checked are made by this process (it is not excluded; only services
 * are) or by forked children; every wait is bounded.
 */
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

#include "common/frame_io.h"
#include "common/wire.h"
#include <fltmgr/scanner.h>
#include "testutil.h"

#define WAIT_MS  10000
#define DEADLINE 1000
/* Tests that are not about deadlines: one that no scan reaches, even on a
 * loaded machine under a sanitizer (a verdict is never a default there). */
#define SCAN_DEADLINE 30000
#define MARKER        "X5O-FLTMGR-SCANNER-TEST-MARKER-7f3a"
/* Same length as MARKER: a rewrite keeps the size. */
#define CLEANTXT "just-an-ordinary-clean-file-0123456"
/* This program re-executed as an unprivileged attacker (see main). */
#define MMAP_ARG    "--mmap-attacker"
#define CONNECT_ARG "--connect-attacker"

extern char **environ;

static const char *fltmgrd_bin, *scanner_bin, *scanner_so, *fltmc_bin;
static char scratch[] = "/tmp/fltmgr-scan.XXXXXX";
/* This program, where uid 65534 can run it (main). */
static char self_for_others[PATH_MAX];
static char rundir[128], fdir[128], watch[128], conf[128], dlog[128], sout[128],
	slog[128], rules[160];
static pid_t daemon_pid, svc_pid;

/* ---- files ---- */

/* A path under watch. */
static char *
at(const char *rel)
{
	return tu_path(watch, rel);
}

/* A rule matching needle, written as a hex string so that the rules
 * file does not itself contain the needle (it may be in the watched
 * tree). */
static void
write_rules(const char *path, const char *needle)
{
	char text[1024], hex[600] = "";

	for (size_t i = 0; needle[i] && i < 190; i++)
		snprintf(hex + 3 * i, 4, "%02x ", (unsigned char)needle[i]);
	snprintf(text, sizeof(text),
		 "rule test_marker\n{\n  strings:\n    $m = { %s}\n  condition:\n    "
		 "$m\n}\n",
		 hex);
	tu_write_file(path, text);
}

/* open(path, O_RDONLY): 0, or the errno; *ret_ms how long it took. */
static int
try_open(const char *path, int64_t *ret_ms)
{
	int64_t t0 = tu_now_ms();
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = fd < 0 ? errno : 0;

	if (ret_ms)
		*ret_ms = tu_now_ms() - t0;
	if (fd >= 0)
		close(fd);
	return err;
}

/* ---- processes ---- */

/* Without name reporting (a kernel before 5.17, or one simulated by
 * FLTMGR_KERNEL_FEATURES) the scanner's invalidation by notifications
 * (post-only write, close_write, rename) cannot start: it runs with
 * param.invalidate = false, and its cache relies on the file's key alone
 * (size, mtime, ctime; docs/scanner.md). */
static const char *
no_names_params(void)
{
	static bool said;

	if (!tu_kernel_lacks("names"))
		return "";
	if (!said)
		print_message(
			"note: %s: the scanner runs with param.invalidate = false\n",
			tu_kernel_lacks("names"));
	said = true;
	return "param.invalidate = false\n";
}

/* fltmgrd with scanner.so on the watched directory. */
static void
daemon_start(int deadline_ms, bool deny_by_default)
{
	char text[1024];
	char *argv[] = { (char *)fltmgrd_bin,
			 "--foreground",
			 "--runtime-dir",
			 rundir,
			 "--config",
			 conf,
			 NULL };

	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\nlog_level = info\n[filter scanner]\n"
		 "altitude = 325000\n"
		 "deadline_ms = %d\ndefault_verdict = %s\nattach = %s\n%s",
		 fdir, deadline_ms, deny_by_default ? "deny" : "allow", watch,
		 no_names_params());
	tu_write_file(conf, text);
	daemon_pid = tu_spawn(argv, "/dev/null", dlog);
	if (!tu_wait_daemon_ready(rundir, "scanner", WAIT_MS))
		fail_msg("fltmgrd did not start: %s", tu_slurp(dlog));
}

/* scanner --rules rules [extra]; waits until it is connected. */
static void
svc_start(const char *const extra[])
{
	char *argv[20] = { (char *)scanner_bin, "--rules", rules, "--runtime-dir",
			   rundir };
	int n = 5, before = tu_count_in_file(slog, "connected to ");

	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	svc_pid = tu_spawn(argv, sout, slog);
	if (!tu_wait_in_file(slog, "connected to ", before + 1, WAIT_MS))
		fail_msg("scanner did not connect: %s", tu_slurp(slog));
}

/* The filter's counters, through a monitor connection. */
static void
filter_stats(uint64_t v[SCANNER_CTR_COUNT_])
{
	uint8_t ctx[SCANNER_CONTEXT_SIZE], cmd[SCANNER_CMD_SIZE], out[1024];
	char path[300];
	filter_port *p = NULL;
	size_t olen = 0;

	snprintf(path, sizeof(path), "%s/scanner", rundir);
	scanner_context_encode(0, ctx);
	/* -EUSERS: the slot of an earlier monitor connection is released
	 * only after its disconnect callback has run; that one is leaving. */
	for (int64_t end = tu_now_ms() + WAIT_MS;;) {
		int r = filter_connect_communication_port(path, 0, ctx, sizeof(ctx), &p);

		if (r == -EUSERS && tu_now_ms() < end) {
			usleep(2000);
			continue;
		}
		assert_int_equal(r, 0);
		break;
	}
	scanner_cmd_encode(SCANNER_CMD_STATS, cmd);
	assert_int_equal(
		filter_send_message(p, cmd, sizeof(cmd), out, sizeof(out), &olen), 0);
	assert_int_equal(scanner_stats_decode(out, olen, v), 0);
	filter_close_port(p);
}

/* One counter of the service's SIGUSR1 line ("scanned", ...). */
static uint64_t
svc_stat(const char *name)
{
	int n = tu_count_in_file(slog, "stats: ");
	char key[64], *s, *p, *last = NULL;
	uint64_t v;

	kill(svc_pid, SIGUSR1);
	if (!tu_wait_in_file(slog, "stats: ", n + 1, WAIT_MS))
		fail_msg("no stats line from the service: %s", tu_slurp(slog));
	s = tu_slurp(slog);
	for (p = s; (p = strstr(p, "stats: ")); p++)
		last = p;
	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(last, key);
	if (!p)
		fail_msg("the service prints no counter %s", name);
	v = strtoull(p + strlen(key), NULL, 10);
	free(s);
	return v;
}

/* Every thread of pid stopped ('T' in /proc/PID/task/TID/stat)? */
static int
all_threads_stopped(void *arg)
{
	char path[64], buf[512];
	pid_t pid = *(pid_t *)arg;
	int stopped = 1, n = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (stopped && (e = readdir(d))) {
		FILE *f;
		char *p;

		if (e->d_name[0] == '.')
			continue;
		snprintf(buf, sizeof(buf), "%s/%s/stat", path, e->d_name);
		f = fopen(buf, "re");
		if (!f || !fgets(buf, sizeof(buf), f) || !(p = strrchr(buf, ')')))
			stopped = 0;
		else
			stopped = p[2] == 'T' || p[2] == 't';
		if (f)
			fclose(f);
		n++;
	}
	closedir(d);
	return stopped && n > 0;
}

/* SIGSTOP, and wait until it has taken effect in every thread: kill()
 * returns before a busy thread on another CPU has stopped. */
static void
svc_stop_signal(void)
{
	assert_int_equal(kill(svc_pid, SIGSTOP), 0);
	assert_true(tu_wait_until(all_threads_stopped, &svc_pid, WAIT_MS));
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	static int n;
	char cmd[1024];

	(void)state;
	snprintf(rundir, sizeof(rundir), "%s/run%d", scratch, n);
	snprintf(fdir, sizeof(fdir), "%s/filters%d", scratch, n);
	snprintf(watch, sizeof(watch), "%s/watch%d", scratch, n);
	snprintf(conf, sizeof(conf), "%s/fltmgr%d.conf", scratch, n);
	snprintf(dlog, sizeof(dlog), "%s/daemon%d.log", scratch, n);
	snprintf(sout, sizeof(sout), "%s/scan%d.out", scratch, n);
	snprintf(slog, sizeof(slog), "%s/scan%d.log", scratch, n);
	snprintf(rules, sizeof(rules), "%s/rules%d.yar", scratch, n);
	n++;
	assert_int_equal(mkdir(fdir, 0755), 0);
	assert_int_equal(chmod(fdir, 0755), 0);
	assert_int_equal(mkdir(watch, 0755), 0);
	snprintf(cmd, sizeof(cmd),
		 "cp '%s' '%s/scanner.so' && chmod 0644 '%s/scanner.so'", scanner_so,
		 fdir, fdir);
	assert_int_equal(system(cmd), 0);
	write_rules(rules, MARKER);
	return 0;
}

static int
teardown(void **state)
{
	int rc = 0;

	(void)state;
	if (svc_pid > 0) {
		kill(svc_pid, SIGCONT);
		kill(svc_pid, SIGTERM);
		rc = tu_expect_exit(svc_pid, WAIT_MS);
		svc_pid = 0;
	}
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		if (tu_expect_exit(daemon_pid, WAIT_MS) != 0)
			fail_msg("fltmgrd did not exit cleanly: %s", tu_slurp(dlog));
		daemon_pid = 0;
	}
	if (rc != 0)
		fail_msg("scanner did not stop cleanly on SIGTERM (%d): %s", rc,
			 tu_slurp(slog));
	return 0;
}

/* ---- verdicts ---- */

static void
marker_file_is_denied_and_clean_file_opens(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	/* Written before anyone watches: no notification of these writes
	 * can come after the first verdict and drop it from the caches (a
	 * rescan, never a stale verdict, but then the cache would not be
	 * what answers below). */
	tu_write_file(at("clean.txt"), CLEANTXT "\n");
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	assert_int_equal(try_open(at("clean.txt"), NULL), 0);
	/* The cached denial stays a denial, answered by the cache. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	filter_stats(v);
	assert_true(v[SCANNER_CTR_infected] >= 1);
	assert_true(v[SCANNER_CTR_cache_denies] >= 1);
	assert_int_equal(v[SCANNER_CTR_no_service_defaults], 0);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
	/* The detection was logged with the path, rule and process. */
	assert_true(tu_wait_in_file(slog, "rule=test_marker", 1, WAIT_MS));
	{
		char *log = tu_slurp(slog);
		bool named = strstr(log, at("bad.txt")) != NULL;

		free(log);
		assert_true(named);
	}
}

/* fork + execv: 0 if the program ran (and exited 0), else its errno. */
static int
try_exec(const char *path)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { (char *)path, NULL };

		execve(path, argv, environ);
		_exit(errno == EPERM ? 100 : 101);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st) == 0 ? 0 : WEXITSTATUS(st) == 100 ? EPERM : -1;
}

static void
marked_executable_cannot_run(void **state)
{
	char cmd[1024];

	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	/* /bin/true with the marker appended: still a valid ELF. */
	snprintf(cmd, sizeof(cmd),
		 "cp /bin/true '%s' && cp /bin/true '%s' && printf '%s' >> '%s' && "
		 "chmod 0755 '%s' '%s'",
		 at("good"), at("bad"), MARKER, at("bad"), at("good"), at("bad"));
	assert_int_equal(system(cmd), 0);
	assert_int_equal(try_exec(at("good")), 0);
	assert_int_equal(try_exec(at("bad")), EPERM);
}

/* ---- cache and invalidation ---- */

static void
clean_file_rewritten_with_marker_is_denied(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("f"), CLEANTXT);
	assert_int_equal(try_open(at("f"), NULL), 0);
	assert_int_equal(try_open(at("f"), NULL), 0); /* now in both caches */
	tu_write_file(at("f"), MARKER);               /* same size, right away */
	assert_int_equal(try_open(at("f"), NULL), EPERM);
}

/* The opener's own write right after a clean verdict: the kernel cache
 * entry for the empty file must not survive it. */
static void
file_written_right_after_create_is_scanned(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "new%d", i);
		tu_write_file(at(name), MARKER);
		assert_int_equal(try_open(at(name), NULL), EPERM);
	}
}

static void
denied_file_rewritten_clean_is_allowed(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("f"), MARKER);
	assert_int_equal(try_open(at("f"), NULL), EPERM);
	assert_int_equal(try_open(at("f"), NULL), EPERM);
	/* The writer's own open is allowed: O_WRONLY of an infected file is
	 * scanned like any open, so rewrite through truncate + append. */
	assert_int_equal(truncate(at("f"), 0), 0);
	tu_write_file(at("g"), CLEANTXT);
	assert_int_equal(rename(at("g"), at("f")), 0);
	assert_int_equal(try_open(at("f"), NULL), 0);
	/* And rewritten in place, without a rename. */
	tu_write_file(at("h"), MARKER);
	assert_int_equal(try_open(at("h"), NULL), EPERM);
	assert_int_equal(truncate(at("h"), 0), 0);
	assert_int_equal(try_open(at("h"), NULL), 0);
}

static void
infected_file_renamed_over_clean_name_is_denied(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("doc"), CLEANTXT);
	assert_int_equal(try_open(at("doc"), NULL), 0);
	assert_int_equal(try_open(at("doc"), NULL), 0); /* cached clean */
	tu_write_file(at("doc.tmp"), MARKER);
	assert_int_equal(rename(at("doc.tmp"), at("doc")), 0);
	assert_int_equal(try_open(at("doc"), NULL), EPERM);
}

static void
unchanged_clean_file_second_open_skips_service(void **state)
{
	uint64_t a[SCANNER_CTR_COUNT_], b[SCANNER_CTR_COUNT_], scanned;

	(void)state;
	/* Written before anyone watches: no notification of that write can
	 * come late and drop the first verdict from the caches (which would
	 * be right, a rescan, but not what this test is about). */
	tu_write_file(at("f"), CLEANTXT);
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	assert_int_equal(try_open(at("f"), NULL), 0);
	filter_stats(a);
	scanned = svc_stat("scanned");
	for (int i = 0; i < 5; i++)
		assert_int_equal(try_open(at("f"), NULL), 0);
	filter_stats(b);
	/* Not scanned again. */
	assert_int_equal(svc_stat("scanned"), scanned);
	assert_int_equal(b[SCANNER_CTR_requests], a[SCANNER_CTR_requests]);
	assert_true(a[SCANNER_CTR_clean] >= 1);
	if (tu_kernel_lacks("cache")) {
		/* No kernel cache (before Linux 6.0): every open reaches the
		 * filter, which answers from its own cache. */
		print_message("%s: the filter's own cache answered\n",
			      tu_kernel_lacks("cache"));
		assert_int_equal(b[SCANNER_CTR_events], a[SCANNER_CTR_events] + 5);
		return;
	}
	/* Not even asked: the kernel cache answered. */
	assert_int_equal(b[SCANNER_CTR_events], a[SCANNER_CTR_events]);
}

/* ---- deadlines and defaults ---- */

static void
stopped_service_gets_default_within_deadline(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	int64_t ms;

	(void)state;
	daemon_start(DEADLINE, true); /* deny: the default is visible */
	svc_start(NULL);
	tu_write_file(at("f"), CLEANTXT);
	tu_write_file(at("g"), CLEANTXT "2");
	assert_int_equal(try_open(at("g"), NULL), 0); /* a clean scan works */
	svc_stop_signal();
	assert_int_equal(try_open(at("f"), &ms), EPERM);
	/* The target is deadline + 100 ms; on a loaded CI machine the
	 * scheduler alone has added more, so the bound is loose and the
	 * latency is printed for the log instead. */
	print_message("scanner: stopped service, default verdict after %lld ms "
		      "(deadline %d ms)\n",
		      (long long)ms, DEADLINE);
	assert_true(ms >= DEADLINE - 100);
	assert_true(ms <= DEADLINE + 10000);
	filter_stats(v);
	assert_true(v[SCANNER_CTR_deadline_defaults] >= 1);
	assert_int_equal(kill(svc_pid, SIGCONT), 0);
	/* Nothing of the default was cached: the file is clean. */
	assert_int_equal(try_open(at("f"), &ms), 0);
	assert_true(ms < DEADLINE);
}

struct opener {
	const char *path;
	int err;
	int64_t done_ms;
	pthread_barrier_t *go;
};

static void *
opener_main(void *arg)
{
	struct opener *o = arg;

	if (o->go)
		pthread_barrier_wait(o->go);
	o->err = try_open(o->path, NULL);
	o->done_ms = tu_now_ms();
	return NULL;
}

static void
killed_service_pending_opens_answered_at_once(void **state)
{
	enum { N = 4, LONG_DEADLINE = 10000 };
	struct opener o[N];
	pthread_t t[N];
	uint64_t v[SCANNER_CTR_COUNT_];
	int64_t t_kill, t0;

	(void)state;
	daemon_start(LONG_DEADLINE, true);
	svc_start(NULL);
	for (int i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		tu_write_file(at(name), CLEANTXT);
		o[i] = (struct opener){ .path = strdup(at(name)) };
	}
	svc_stop_signal();
	t0 = tu_now_ms();
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, opener_main, &o[i]), 0);
	/* Wait until every open has been sent to the stopped service. */
	do {
		usleep(10000);
		filter_stats(v);
	} while (v[SCANNER_CTR_in_flight_max] < N &&
		 tu_now_ms() - t0 < LONG_DEADLINE / 2);
	assert_true(v[SCANNER_CTR_in_flight_max] >= N);
	t_kill = tu_now_ms();
	assert_int_equal(kill(svc_pid, SIGKILL), 0);
	for (int i = 0; i < N; i++) /* all joined before any is judged */
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].err, EPERM); /* the default verdict */
		/* At once, not at the deadline (which is seconds away): the
		 * counters below say which; the clock is a loose bound. */
		assert_true(o[i].done_ms - t_kill < LONG_DEADLINE / 2);
		free((char *)o[i].path);
	}
	assert_true(tu_now_ms() - t0 < LONG_DEADLINE - 1000);
	assert_int_equal(tu_expect_exit(svc_pid, WAIT_MS), 128 + SIGKILL);
	svc_pid = 0;
	filter_stats(v);
	assert_true(v[SCANNER_CTR_disconnect_defaults] >= N);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
}

static void
no_service_gives_default_verdict(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	int64_t ms;

	(void)state;
	tu_write_file(at("f"), CLEANTXT); /* before anyone watches */
	daemon_start(DEADLINE, true);
	assert_int_equal(try_open(at("f"), &ms), EPERM);
	assert_true(ms < DEADLINE); /* at once, not at the deadline */
	filter_stats(v);
	assert_true(v[SCANNER_CTR_no_service_defaults] >= 1);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
	assert_int_equal(v[SCANNER_CTR_requests], 0);
	/* A service arrives: the same file is scanned and allowed. */
	svc_start(NULL);
	assert_int_equal(try_open(at("f"), NULL), 0);
}

/* ---- parallelism ---- */

static void
twenty_concurrent_openers_are_scanned_in_parallel(void **state)
{
	enum { N = 20, SIZE = 2 << 20 };
	const char *extra[] = { "--threads", "4", "--outstanding", "2", NULL };
	struct opener o[N];
	pthread_t t[N];
	pthread_barrier_t go;
	uint64_t v[SCANNER_CTR_COUNT_];
	char *body = malloc(SIZE + 1);

	(void)state;
	assert_non_null(body);
	daemon_start(SCAN_DEADLINE, false);
	svc_start(extra);
	for (int i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "big%d", i);
		memset(body, 'a' + i % 26, SIZE);
		if (i % 5 == 0) /* every fifth is infected, at the very end */
			memcpy(body + SIZE - strlen(MARKER), MARKER, strlen(MARKER));
		body[SIZE] = '\0';
		tu_write_file(at(name), body);
		o[i] = (struct opener){ .path = strdup(at(name)), .go = &go };
	}
	free(body);
	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, opener_main, &o[i]), 0);
	/* All joined before any is judged: a failed assertion must not
	 * leave openers running on this stack. */
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].err, i % 5 == 0 ? EPERM : 0);
		free((char *)o[i].path);
	}
	pthread_barrier_destroy(&go);
	filter_stats(v);
	/* Real verdicts for every open: no default, no error. */
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
	assert_int_equal(v[SCANNER_CTR_errors], 0);
	assert_int_equal(v[SCANNER_CTR_infected], N / 5);
	assert_true(v[SCANNER_CTR_in_flight_max] >= 2);
	/* The service scanned more than one at a time. */
	assert_true(svc_stat("max_concurrent") >= 2);
}

/* ---- rule reloads ---- */

static void
sighup_reload_applies_to_next_open(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	/* The rules live in the watched tree: the service reads them there
	 * on reload (it is excluded, so that read waits for nobody). */
	snprintf(rules, sizeof(rules), "%s/rules.yar", watch);
	write_rules(rules, MARKER);
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("f"), "harmless today, NEWLY-BAD tomorrow");
	assert_int_equal(try_open(at("f"), NULL), 0);
	assert_int_equal(try_open(at("f"), NULL), 0); /* cached in the kernel */
	write_rules(rules, "NEWLY-BAD");
	assert_int_equal(kill(svc_pid, SIGHUP), 0);
	assert_true(tu_wait_in_file(slog, "rules reloaded", 1, WAIT_MS));
	assert_int_equal(try_open(at("f"), NULL), EPERM);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_flushes], 1);
	/* A reload with an error keeps the rules in force. */
	tu_write_file(rules, "rule broken {\n condition:\n nonsense\n}\n");
	assert_int_equal(kill(svc_pid, SIGHUP), 0);
	assert_true(tu_wait_in_file(slog, "keeping the current ones", 1, WAIT_MS));
	assert_int_equal(try_open(at("f"), NULL), EPERM);
}

/* ---- bad input ---- */

static void
malformed_reply_is_counted_and_defaulted(void **state)
{
	uint8_t ctx[SCANNER_CONTEXT_SIZE], buf[SCANNER_REQ_MAX];
	struct filter_message_header h;
	uint64_t v[SCANNER_CTR_COUNT_];
	filter_port *p = NULL;
	char path[300];
	pid_t child;
	int r, st;

	(void)state;
	tu_write_file(at("f"), CLEANTXT); /* before anyone watches */
	daemon_start(DEADLINE * 3, true);
	/* This process plays a broken service; a child opens. */
	snprintf(path, sizeof(path), "%s/scanner", rundir);
	scanner_context_encode(1, ctx);
	assert_int_equal(filter_connect_communication_port(path, 0, ctx, sizeof(ctx), &p),
			 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(try_open(at("f"), NULL));
	r = filter_get_message(p, &h, buf, sizeof(buf), WAIT_MS);
	assert_true(r > 0);
	assert_true(h.fd >= 0); /* the event's fd came with it */
	close(h.fd);
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "bad", 3), 0);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), EPERM); /* the default (deny) */
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_errors], 1);
	assert_int_equal(v[SCANNER_CTR_clean] + v[SCANNER_CTR_infected], 0);
	filter_close_port(p);
}

static void
rule_error_names_file_and_line(void **state)
{
	char *argv[] = { (char *)scanner_bin, "--rules", rules,
			 "--runtime-dir",     rundir,    NULL };
	char *err;

	(void)state;
	tu_write_file(rules, "rule ok { condition: true }\n\nrule bad {\n  condition:\n"
			     "    $undefined\n}\n");
	assert_int_equal(tu_expect_exit(tu_spawn(argv, sout, slog), WAIT_MS), 5);
	err = tu_slurp(slog);
	if (!strstr(err, rules) || !strstr(err, ":6: error"))
		fail_msg("no FILE:LINE in: %s", err);
	free(err);
}

/* `fltmc stats --json` shows the filter's counters (the counters hook)
 * under filters[].counters, the same values the monitor connection reads. */
static void
fltmc_stats_shows_the_filters_counters(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	struct json_object *o, *filters, *f = NULL, *c, *val;
	char cmd[700], path[300];
	char *text;

	(void)state;
	daemon_start(DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("clean.txt"), CLEANTXT "\n");
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	assert_int_equal(try_open(at("clean.txt"), NULL), 0);
	filter_stats(v);
	snprintf(path, sizeof(path), "%s/stats.json", scratch);
	snprintf(cmd, sizeof(cmd), "'%s' --runtime-dir '%s' --json stats > '%s'",
		 fltmc_bin, rundir, path);
	assert_int_equal(system(cmd), 0);
	text = tu_slurp(path);
	o = json_tokener_parse(text);
	if (!o)
		fail_msg("fltmc stats --json printed no JSON: %s", text);
	free(text);
	assert_true(json_object_object_get_ex(o, "filters", &filters));
	for (size_t i = 0; i < json_object_array_length(filters); i++) {
		struct json_object *e = json_object_array_get_idx(filters, i), *name;

		if (json_object_object_get_ex(e, "name", &name) &&
		    !strcmp(json_object_get_string(name), "scanner"))
			f = e;
	}
	assert_non_null(f);
	assert_true(json_object_object_get_ex(f, "counters", &c));
	for (int i = 0; i < SCANNER_CTR_COUNT_; i++)
		if (!json_object_object_get_ex(c, scanner_counter_names[i], &val))
			fail_msg("fltmc stats has no scanner counter %s",
				 scanner_counter_names[i]);
	/* Decisions already made do not change between the two reads. */
	assert_true(json_object_object_get_ex(c, "infected", &val));
	assert_int_equal((uint64_t)json_object_get_int64(val), v[SCANNER_CTR_infected]);
	assert_true(v[SCANNER_CTR_infected] >= 1);
	assert_true(json_object_object_get_ex(c, "clean", &val));
	assert_int_equal((uint64_t)json_object_get_int64(val), v[SCANNER_CTR_clean]);
	assert_true(v[SCANNER_CTR_clean] >= 1);
	json_object_put(o);
}

/* ---- the inline path (sent from the pre callback) ---- */

/* fltmgrd with scanner.so and extra `param.` lines (params: "k = v\n"...). */
static void
daemon_start_params(int deadline_ms, bool deny_by_default, const char *params)
{
	char text[2048];
	char *argv[] = { (char *)fltmgrd_bin,
			 "--foreground",
			 "--runtime-dir",
			 rundir,
			 "--config",
			 conf,
			 NULL };

	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\nlog_level = info\n[filter scanner]\n"
		 "altitude = 325000\n"
		 "deadline_ms = %d\ndefault_verdict = %s\nattach = %s\n%s%s",
		 fdir, deadline_ms, deny_by_default ? "deny" : "allow", watch, params,
		 no_names_params());
	tu_write_file(conf, text);
	daemon_pid = tu_spawn(argv, "/dev/null", dlog);
	if (!tu_wait_daemon_ready(rundir, "scanner", WAIT_MS))
		fail_msg("fltmgrd did not start: %s", tu_slurp(dlog));
}

/* Writes size bytes of filler (marker at the end if infected). */
static void
write_sized(const char *path, size_t size, bool infected)
{
	char *body = malloc(size + 1);

	assert_non_null(body);
	memset(body, 'q', size);
	if (infected)
		memcpy(body + size - strlen(MARKER), MARKER, strlen(MARKER));
	body[size] = '\0';
	tu_write_file(path, body);
	free(body);
}

/* With an idle service, small files get their verdict from the pre
 * callback itself; a file over param.inline_max_size goes through a
 * sender. The verdicts are the same either way. */
static void
small_files_are_answered_inline_big_ones_pended(void **state)
{
	uint64_t a[SCANNER_CTR_COUNT_], b[SCANNER_CTR_COUNT_], c[SCANNER_CTR_COUNT_];

	(void)state;
	daemon_start_params(5000, false, "param.inline_max_size = 65536\n");
	svc_start(NULL);
	write_sized(at("small-clean"), 1000, false);
	write_sized(at("small-bad"), 1000, true);
	write_sized(at("big-clean"), 65537, false);
	write_sized(at("big-bad"), 65537, true);
	usleep(100000); /* let the writes' notifications pass */
	filter_stats(a);
	assert_int_equal(try_open(at("small-clean"), NULL), 0);
	assert_int_equal(try_open(at("small-bad"), NULL), EPERM);
	filter_stats(b);
	assert_int_equal(try_open(at("big-clean"), NULL), 0);
	assert_int_equal(try_open(at("big-bad"), NULL), EPERM);
	filter_stats(c);
	/* Both small ones inline (each send is counted, even one that ran
	 * out of time), neither big one. Unless a loaded machine made inline
	 * sends slow or run out of time, which pauses the path for a second. */
	if (c[SCANNER_CTR_inline_pauses] == 0)
		assert_int_equal(
			b[SCANNER_CTR_inline_sends] - a[SCANNER_CTR_inline_sends], 2);
	else
		printf("note: an inline send ran out of time; inline path paused\n");
	assert_int_equal(c[SCANNER_CTR_inline_sends], b[SCANNER_CTR_inline_sends]);
	assert_true(c[SCANNER_CTR_requests] - b[SCANNER_CTR_requests] >= 2);
	assert_int_equal(c[SCANNER_CTR_infected] - a[SCANNER_CTR_infected], 2);
	assert_int_equal(c[SCANNER_CTR_deadline_defaults], 0);
	assert_int_equal(c[SCANNER_CTR_errors], 0);
	/* A verdict given inline is cached like any other. */
	assert_int_equal(try_open(at("small-bad"), NULL), EPERM);
	filter_stats(b);
	assert_true(b[SCANNER_CTR_cache_denies] >= 1);
}

/* param.inline_ms = 0: every request is pended and sent by a sender. */
static void
inline_ms_zero_pends_every_request(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	daemon_start_params(DEADLINE, false, "param.inline_ms = 0\n");
	svc_start(NULL);
	tu_write_file(at("clean.txt"), CLEANTXT);
	tu_write_file(at("bad.txt"), MARKER);
	assert_int_equal(try_open(at("clean.txt"), NULL), 0);
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_inline_sends], 0);
	assert_true(v[SCANNER_CTR_requests] >= 2);
	assert_int_equal(v[SCANNER_CTR_infected], 1);
}

/* A stopped service holds the engine's reader for param.inline_ms only:
 * the request is then pended (sent again through a sender) and answered
 * by default at the deadline, as without the inline path; the next
 * second sends nothing inline. */
static void
stopped_service_inline_wait_is_pended(void **state)
{
	uint64_t a[SCANNER_CTR_COUNT_], v[SCANNER_CTR_COUNT_];
	int64_t ms;

	(void)state;
	daemon_start(DEADLINE, true);
	svc_start(NULL);
	tu_write_file(at("f"), CLEANTXT); /* its own open was scanned too */
	svc_stop_signal();
	filter_stats(a);
	/* A loaded machine may have made an earlier inline send slow or run
	 * out of time, which pauses the inline path for a second: let it
	 * pass. */
	if (a[SCANNER_CTR_inline_pauses])
		usleep(1100000);
	assert_int_equal(try_open(at("f"), &ms), EPERM);
	assert_true(ms >= DEADLINE - 100);
	assert_true(ms <= DEADLINE + 100);
	/* On a loaded machine the engine's watchdog may answer first; the
	 * sender still counts its own default a moment later. */
	for (int64_t end = tu_now_ms() + WAIT_MS;;) {
		filter_stats(v);
		if (v[SCANNER_CTR_deadline_defaults] > a[SCANNER_CTR_deadline_defaults] ||
		    tu_now_ms() > end)
			break;
		usleep(10000);
	}
	assert_int_equal(v[SCANNER_CTR_inline_sends] - a[SCANNER_CTR_inline_sends], 1);
	assert_int_equal(v[SCANNER_CTR_inline_timeouts] - a[SCANNER_CTR_inline_timeouts],
			 1);
	assert_true(v[SCANNER_CTR_inline_pauses] - a[SCANNER_CTR_inline_pauses] >= 1);
	/* inline, then resent by a sender */
	assert_int_equal(v[SCANNER_CTR_requests] - a[SCANNER_CTR_requests], 2);
	assert_int_equal(
		v[SCANNER_CTR_deadline_defaults] - a[SCANNER_CTR_deadline_defaults], 1);
	assert_int_equal(kill(svc_pid, SIGCONT), 0);
	/* The service scans both copies; the late reply is refused, and the
	 * file is allowed once asked again. */
	assert_int_equal(try_open(at("f"), &ms), 0);
	assert_true(ms < DEADLINE);
}

/* A service whose scans take milliseconds (large rule sets) gets its
 * requests through the senders, where they can be scanned in parallel:
 * after eight slow inline exchanges in a row the inline path pauses.
 * This process plays the slow service; a child opens. */
static void
slow_service_pauses_inline_path(void **state)
{
	enum { N = 16 };
	uint8_t ctx[SCANNER_CONTEXT_SIZE], buf[SCANNER_REQ_MAX],
		reply[SCANNER_REPLY_SIZE];
	struct filter_message_header h;
	uint64_t v[SCANNER_CTR_COUNT_];
	filter_port *p = NULL;
	char path[300];
	pid_t child;
	int st, served = 0;
	int64_t t0;

	(void)state;
	for (int i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		tu_write_file(at(name), CLEANTXT); /* before anyone watches */
	}
	daemon_start(DEADLINE * 3, false);
	snprintf(path, sizeof(path), "%s/scanner", rundir);
	scanner_context_encode(1, ctx);
	assert_int_equal(filter_connect_communication_port(path, 0, ctx, sizeof(ctx), &p),
			 0);
	t0 = tu_now_ms();
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		for (int i = 0; i < N; i++) {
			char name[16];

			snprintf(name, sizeof(name), "s%d", i);
			if (try_open(at(name), NULL) != 0)
				_exit(1);
		}
		_exit(0);
	}
	scanner_reply_encode(SCANNER_CLEAN, reply);
	for (;;) { /* serve until the child is done */
		int r = filter_get_message(p, &h, buf, sizeof(buf), 200);

		if (r == -ETIMEDOUT) {
			if (waitpid(child, &st, WNOHANG) == child)
				break;
			assert_true(tu_now_ms() - t0 < WAIT_MS);
			continue;
		}
		assert_true(r > 0);
		if (h.fd >= 0)
			close(h.fd);
		usleep(3000); /* a slow scan */
		r = filter_reply_message(p, h.message_id, 0, reply, sizeof(reply));
		/* -ENOENT: on a loaded machine the scan outlasted the inline
		 * wait, and the request came again through a sender. */
		assert_true(r == 0 || r == -ENOENT);
		served++;
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_requests], N + v[SCANNER_CTR_inline_timeouts]);
	assert_int_equal(served, (int)v[SCANNER_CTR_requests]);
	assert_int_equal(v[SCANNER_CTR_clean], N);
	assert_true(v[SCANNER_CTR_inline_pauses] >= 1);
	assert_true(v[SCANNER_CTR_inline_sends] < N);
	/* Eight slow exchanges in a row (over 1 ms each) before each pause,
	 * and the rest of its second through the sender. */
	assert_true(v[SCANNER_CTR_inline_sends] <=
		    8 * (1 + (uint64_t)(tu_now_ms() - t0) / 1000));
	filter_close_port(p);
}

/* ---- fail-open verdicts and files that change while scanned ---- */

/* This process as a scanner service (window 1: excluded, so its own
 * opens and writes are not held up); the filter sends it requests. */
static filter_port *
fake_service(void)
{
	uint8_t ctx[SCANNER_CONTEXT_SIZE];
	filter_port *p = NULL;
	char path[300];

	snprintf(path, sizeof(path), "%s/scanner", rundir);
	scanner_context_encode(1, ctx);
	assert_int_equal(filter_connect_communication_port(path, 0, ctx, sizeof(ctx), &p),
			 0);
	return p;
}

/* A child that opens path once; its exit status is 0 or the errno. */
static pid_t
child_open(const char *path)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(try_open(path, NULL));
	return pid;
}

static int
child_result(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Takes the next request (its descriptor closed unless ret_fd). */
static uint64_t
fake_take(filter_port *p, int *ret_fd)
{
	uint8_t buf[SCANNER_REQ_MAX];
	struct filter_message_header h;
	int r = filter_get_message(p, &h, buf, sizeof(buf), WAIT_MS);

	if (r < 0)
		fail_msg("no request for the fake service: %s", strerror(-r));
	assert_true(h.fd >= 0);
	if (ret_fd)
		*ret_fd = h.fd;
	else
		close(h.fd);
	return h.message_id;
}

static void
fake_answer(filter_port *p, uint64_t id, enum scanner_verdict v)
{
	uint8_t reply[SCANNER_REPLY_SIZE];

	scanner_reply_encode(v, reply);
	assert_int_equal(filter_reply_message(p, id, 0, reply, sizeof(reply)), 0);
}

/* Writes text at offset 0 of path (through its name, as another writer). */
static void
overwrite(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, text, strlen(text), 0), (ssize_t)strlen(text));
	close(fd);
}

/*
 * Every default verdict that allows (no service, a service that could not
 * scan, the deadline, a malformed reply, a service gone with the request)
 * is counted, logged at warning level with the path, the pid and the
 * executable, at most once a second per cause with the number left out,
 * and never cached: the next open of the same (infected) file is asked
 * again, and denied.
 */
static void
fail_open_verdicts_are_logged_and_never_cached(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_], id;
	char line[PATH_MAX + 128], self[PATH_MAX];
	int64_t t_first;
	filter_port *p;
	ssize_t n;
	pid_t c;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	/* Before Linux 5.15 (no FAN_REPORT_PIDFD) the engine gives the pid
	 * only: the line says so instead of naming the program. */
	if (tu_kernel_lacks("pidfd"))
		snprintf(self, sizeof(self), "exe unknown");
	/* Infected files, written before anyone watches; each default below
	 * on its own file, since a denial that follows it is cached. */
	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "bad%d.txt", i);
		tu_write_file(at(name), "header " MARKER " trailer\n");
	}
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	daemon_start_params(DEADLINE, false, "param.inline_ms = 0\n");

	/* No service: allowed, logged once for six opens in a row. */
	t_first = tu_now_ms();
	for (int i = 0; i < 6; i++)
		assert_int_equal(try_open(at("bad.txt"), NULL), 0);
	snprintf(line, sizeof(line),
		 "open of %s by pid %d (%s) ALLOWED: no_service_defaults (unscanned, "
		 "default verdict: no service connected)",
		 at("bad.txt"), (int)getpid(), self);
	assert_true(tu_wait_in_file(dlog, line, 1, WAIT_MS));
	assert_int_equal(tu_count_in_file(dlog, "no service connected"), 1);

	p = fake_service();
	/* The service could not scan it. */
	c = child_open(at("bad0.txt"));
	fake_answer(p, fake_take(p, NULL), SCANNER_ERROR);
	assert_int_equal(child_result(c), 0);
	snprintf(line, sizeof(line), "open of %s by pid %d (%s) ALLOWED: service_errors",
		 at("bad0.txt"), (int)c, self);
	assert_true(tu_wait_in_file(dlog, line, 1, WAIT_MS));
	assert_true(tu_wait_in_file(dlog, "the service could not scan it", 1, WAIT_MS));
	/* Not cached: asked again, and this time denied. */
	c = child_open(at("bad0.txt"));
	fake_answer(p, fake_take(p, NULL), SCANNER_INFECTED);
	assert_int_equal(child_result(c), EPERM);

	/* No answer before the deadline. */
	c = child_open(at("bad1.txt"));
	id = fake_take(p, NULL);
	assert_int_equal(child_result(c), 0);
	assert_true(tu_wait_in_file(dlog, "no verdict before the deadline", 1, WAIT_MS));
	/* the late answer is refused */
	{
		uint8_t reply[SCANNER_REPLY_SIZE];

		scanner_reply_encode(SCANNER_CLEAN, reply);
		assert_int_equal(filter_reply_message(p, id, 0, reply, sizeof(reply)),
				 -ENOENT);
	}
	c = child_open(at("bad1.txt"));
	fake_answer(p, fake_take(p, NULL), SCANNER_INFECTED);
	assert_int_equal(child_result(c), EPERM);

	/* A malformed reply. */
	c = child_open(at("bad2.txt"));
	id = fake_take(p, NULL);
	assert_int_equal(filter_reply_message(p, id, 0, "bad", 3), 0);
	assert_int_equal(child_result(c), 0);
	assert_true(tu_wait_in_file(dlog, "sent a malformed reply", 1, WAIT_MS));

	/* The service goes away with the request. */
	c = child_open(at("bad3.txt"));
	(void)fake_take(p, NULL);
	filter_close_port(p);
	assert_int_equal(child_result(c), 0);
	assert_true(tu_wait_in_file(dlog, "the service went away with the request", 1,
				    WAIT_MS));

	/* No service again, more than a second after the first such line:
	 * logged, with the five left out. (Once our own connection is gone:
	 * until then this process is excluded as a service.) */
	snprintf(line, sizeof(line), "service pid %d disconnected", (int)getpid());
	assert_true(tu_wait_in_file(dlog, line, 1, WAIT_MS));
	while (tu_now_ms() - t_first < 1100)
		usleep(10000);
	assert_int_equal(try_open(at("bad.txt"), NULL), 0);
	assert_true(tu_wait_in_file(dlog, "(5 more like it since the last report)", 1,
				    WAIT_MS));

	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_no_service_defaults], 7);
	assert_int_equal(v[SCANNER_CTR_service_errors], 1);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 1);
	assert_int_equal(v[SCANNER_CTR_errors], 1);
	assert_int_equal(v[SCANNER_CTR_disconnect_defaults], 1);
	assert_int_equal(v[SCANNER_CTR_default_allows], 11);
	assert_int_equal(v[SCANNER_CTR_infected], 2);
	assert_int_equal(v[SCANNER_CTR_cache_hits], 0);
}

/*
 * A file written while the service scans it is scanned again (the filter
 * compares its size, mtime and ctime before and after), and a verdict is
 * never given on content that changed: here the fake service rewrites the
 * file while "scanning" it and answers clean; the second scan finds the
 * marker. A file that changes during every scan is denied after
 * SC_MAX_RESCANS (3) rescans, whatever the default verdict.
 */
/*
 * Whether a change right after another one, once the first was looked
 * at, gets a newer mtime (multigrain timestamps, Linux 6.13). Before,
 * timestamps advance once a clock tick (1 to 4 ms): a rewrite of the same
 * size within one tick of the last change leaves the file's key (size,
 * mtime, ctime) as it was, and the scanner cannot tell (README, "Kernel
 * support").
 */
static bool
timestamps_are_coarse(const char *path)
{
	for (int i = 0; i < 5; i++) {
		struct stat a, b;

		tu_write_file(path, "1");
		assert_int_equal(stat(path, &a), 0);
		tu_write_file(path, "2");
		assert_int_equal(stat(path, &b), 0);
		if (a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
		    a.st_mtim.tv_nsec == b.st_mtim.tv_nsec)
			return true;
	}
	return false;
}

static void
file_changed_during_its_scan_is_scanned_again(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_], id;
	char buf[128];
	filter_port *p;
	bool coarse;
	ssize_t n;
	pid_t c;
	int fd;

	(void)state;
	coarse = timestamps_are_coarse(at("tick"));
	tu_write_file(at("f"), CLEANTXT);
	tu_write_file(at("g"), CLEANTXT);
	daemon_start_params(SCAN_DEADLINE, false, "param.inline_ms = 0\n");
	p = fake_service();

	c = child_open(at("f"));
	id = fake_take(p, NULL);
	overwrite(at("f"), MARKER); /* during the scan */
	fake_answer(p, id, SCANNER_CLEAN);
	id = fake_take(p, &fd); /* asked again */
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, MARKER));
	fake_answer(p, id, SCANNER_INFECTED);
	assert_int_equal(child_result(c), EPERM);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_changed_during_scan], 1);
	assert_int_equal(v[SCANNER_CTR_rescans], 1);
	assert_int_equal(v[SCANNER_CTR_clean], 0);
	assert_int_equal(v[SCANNER_CTR_infected], 1);

	/* Changing during every scan: denied, with default allow. On a
	 * kernel with coarse timestamps each change waits out a tick, or it
	 * could not be seen (a residue of such kernels, not tested here). */
	if (coarse)
		print_message("note: coarse file timestamps (Linux < 6.13): each "
			      "rewrite waits 20 ms, a same-size rewrite within one "
			      "clock tick of the last change is not seen\n");
	c = child_open(at("g"));
	for (int i = 0; i <= 3; i++) {
		char text[sizeof(CLEANTXT)];

		id = fake_take(p, NULL);
		if (coarse)
			usleep(20000);
		snprintf(text, sizeof(text), "%s", CLEANTXT);
		text[0] = (char)('a' + i);
		overwrite(at("g"), text);
		fake_answer(p, id, SCANNER_CLEAN);
	}
	assert_int_equal(child_result(c), EPERM);
	assert_true(tu_wait_in_file(
		dlog, "denied: changed_denies (it changed during each of its scans", 1,
		WAIT_MS));
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_changed_denies], 1);
	assert_int_equal(v[SCANNER_CTR_rescans], 1 + 3);
	assert_int_equal(v[SCANNER_CTR_clean], 0);
	assert_int_equal(v[SCANNER_CTR_default_allows], 0);
	filter_close_port(p);
}

/* A file the service will not read (over its --max-size) gets the filter's
 * default verdict: with default deny an unprivileged user cannot pad a
 * file past the limit to have it allowed unscanned (it was "clean" by
 * default). Logged, and not cached. */
static void
oversize_file_gets_the_default_verdict(void **state)
{
	const char *extra[] = { "--max-size", "1K", NULL };
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	write_sized(at("big"), 4096, true); /* before anyone watches */
	tu_write_file(at("small-bad"), MARKER);
	tu_write_file(at("small-clean"), CLEANTXT);
	daemon_start(SCAN_DEADLINE, true);
	svc_start(extra);
	assert_int_equal(try_open(at("big"), NULL), EPERM);
	assert_int_equal(try_open(at("big"), NULL), EPERM);
	assert_int_equal(try_open(at("small-bad"), NULL), EPERM);
	assert_int_equal(try_open(at("small-clean"), NULL), 0);
	assert_true(tu_wait_in_file(dlog,
				    "denied: service_errors (unscanned, default verdict: "
				    "the service could not scan it",
				    1, WAIT_MS));
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_service_errors], 2); /* asked twice */
	assert_int_equal(svc_stat("oversize"), 2);
}

/* Runs this program as uid 65534 in `mode` with `arg`; its exit status. */
static int
run_as_nobody(const char *mode, const char *arg)
{
	char *self = self_for_others;
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "setpriv",
				 "--reuid=65534",
				 "--regid=65534",
				 "--clear-groups",
				 "--",
				 self,
				 (char *)mode,
				 (char *)arg,
				 NULL };

		execvp("setpriv", argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/*
 * A user runs their clean program (its verdict may be cached, in the
 * kernel and in the filter), rewrites it through a shared writable
 * mapping, which makes no FAN_MODIFY event and on tmpfs does not move
 * mtime or ctime, and runs it again: the marked program must not run.
 * Default deny, as a careful administrator would configure.
 */
static void
exec_after_a_write_through_mmap_is_scanned(void **state)
{
	char dir[200], path[256];
	int r;

	(void)state;
	daemon_start(SCAN_DEADLINE, true);
	svc_start(NULL);
	snprintf(dir, sizeof(dir), "%s/u", watch);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/m%d", dir, i);
		r = run_as_nobody(MMAP_ARG, path);
		if (r == 0)
			fail_msg("try %d: the program rewritten through mmap ran", i);
		if (r != 100)
			fail_msg("try %d: attacker status %d", i, r);
	}
}

/* The same for an open. uid 65534 maps its clean file shared and
 * writable and stores into it (the page is now dirty), root opens it (a
 * clean verdict, cached with the file's times), the owner stores the
 * marker through the same mapping (a dirty page takes no fault: no
 * timestamp moves anywhere, the cache key still matches), and root opens
 * it again: that open must be scanned and denied. */
static void
open_after_a_write_through_mmap_is_scanned(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	char path[256], c = 0;
	struct stat a, b;
	int go[2], ready[2], st;
	pid_t pid;

	(void)state;
	daemon_start(SCAN_DEADLINE, true);
	svc_start(NULL);
	snprintf(path, sizeof(path), "%s/doc", watch);
	tu_write_file(path, CLEANTXT "\n" CLEANTXT "\n");
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		size_t n = strlen(MARKER);
		char *map;
		int fd;

		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		fd = open(path, O_RDWR | O_CLOEXEC);
		map = fd < 0 ? MAP_FAILED
			     : mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			_exit(3);
		((volatile char *)map)[n - 1] = map[n - 1]; /* dirty the page now */
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(4);
		memcpy(map, MARKER, n); /* no fault, no timestamp */
		if (write(ready[1], "w", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(5);
		_exit(0); /* the mapping stays until now */
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(try_open(path, NULL), 0);
	assert_int_equal(try_open(path, NULL), 0); /* clean, from the cache */
	assert_int_equal(stat(path, &a), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(stat(path, &b), 0);
	print_message("mtime %s, ctime %s by the store through the dirty mapping\n",
		      a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
				      a.st_mtim.tv_sec == b.st_mtim.tv_sec
			      ? "unchanged"
			      : "changed",
		      a.st_ctim.tv_nsec == b.st_ctim.tv_nsec &&
				      a.st_ctim.tv_sec == b.st_ctim.tv_sec
			      ? "unchanged"
			      : "changed");
	st = try_open(path, NULL);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	{
		int ws;

		assert_int_equal(waitpid(pid, &ws, 0), pid);
		assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	}
	assert_int_equal(st, EPERM);
	filter_stats(v);
	assert_true(v[SCANNER_CTR_writable_rescans] >= 1);
}

/* Another user cannot connect to the scanner's port (mode 0600, root's):
 * to be excluded from scanning, or to answer verdicts. The kernel refuses
 * the connect; the filter sees nothing. */
static void
nobody_cannot_connect_to_the_scanners_port(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	char path[300];

	(void)state;
	daemon_start(SCAN_DEADLINE, true);
	assert_int_equal(chmod(rundir, 0755), 0); /* let it reach the socket */
	snprintf(path, sizeof(path), "%s/scanner", rundir);
	assert_int_equal(run_as_nobody(CONNECT_ARG, path), EACCES);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_connections], 0);
}

/* ---- a client that leaves its connection behind ---- */

/* struct clone_args up to set_tid (CLONE_ARGS_SIZE_VER1), spelled out:
 * <linux/sched.h> clashes with <sched.h>. */
struct clone_args_v1 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size;
};

/* A child with exactly pid `want` (clone3 set_tid: root) that opens path
 * and exits with 0 or the errno; returns its exit status. */
static int
open_as_pid(pid_t want, const char *path)
{
	struct clone_args_v1 ca = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&want,
		.set_tid_size = 1,
	};
	long r = syscall(SYS_clone3, &ca, sizeof(ca));
	int st;

	if (r == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		_exit(fd >= 0 ? 0 : errno);
	}
	if (r < 0)
		fail_msg("clone3 with pid %d: %s", (int)want, strerror(errno));
	assert_int_equal(waitpid((pid_t)r, &st, 0), (pid_t)r);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* A forked child connects to the scanner's port as a service (window 1:
 * the filter excludes its pid), sends its own three sockets inside a
 * REPLY on the reply channel, and exits. Returns its pid, reaped. */
static pid_t
client_leaves_its_sockets_in_flight(void)
{
	char path[300];
	pid_t pid;
	int st;

	snprintf(path, sizeof(path), "%s/scanner", rundir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct wire_header h = { .type = WIRE_CONNECT,
					 .length = SCANNER_CONTEXT_SIZE };
		uint8_t ctx[SCANNER_CONTEXT_SIZE], buf[WIRE_HEADER_SIZE + 16],
			hdr[WIRE_HEADER_SIZE];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		union {
			char buf[CMSG_SPACE(3 * sizeof(int))];
			struct cmsghdr align;
		} control;
		struct iovec riov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
		struct msghdr mh = { .msg_iov = &riov,
				     .msg_iovlen = 1,
				     .msg_control = control.buf,
				     .msg_controllen = sizeof(control.buf) };
		struct cmsghdr *cm;
		struct frame_rx rx;
		const char *why;
		int fds[3];

		alarm(9);
		strcpy(sa.sun_path, path);
		scanner_context_encode(1, ctx);
		fds[0] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fds[0] < 0 ||
		    connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    frame_send(fds[0], &h, ctx, NULL, 0, 0) < 0 ||
		    frame_recv(fds[0], &iov, 1, 0, &rx) != 1 ||
		    wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CONNECT_REPLY),
				&h, &why) < 0 ||
		    h.status != 0 || rx.n_fds != 2)
			_exit(1);
		fds[1] = rx.fds[0];
		fds[2] = rx.fds[1];
		h = (struct wire_header){ .type = WIRE_REPLY, .id = 1 };
		wire_encode_header(hdr, &h);
		memset(&control, 0, sizeof(control));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		_exit(sendmsg(fds[1], &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(hdr) ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	return pid;
}

/* A port client that sends its own sockets in a reply and exits must not
 * leave its connection (and with it the exclusion of its pid) behind: a
 * new process that gets the same pid is scanned, and its open of an
 * infected file is denied. Default allow, so that the denial can only
 * come from a scan. */
static void
dead_clients_exclusion_does_not_pass_to_its_pid(void **state)
{
	char line[128];
	int64_t t0;
	pid_t pid;
	bool gone;

	(void)state;
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	pid = client_leaves_its_sockets_in_flight();
	t0 = tu_now_ms();
	snprintf(line, sizeof(line), "service pid %d disconnected", (int)pid);
	gone = tu_wait_in_file(dlog, line, 1, WAIT_MS);
	print_message("scanner: dead client's connection %s after %lld ms\n",
		      gone ? "ended" : "still there", (long long)(tu_now_ms() - t0));
	assert_int_equal(open_as_pid(pid, at("bad.txt")), EPERM);
	assert_true(gone);
	/* And any other process too. */
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
}

/* ---- content that changes while it is scanned ---- */

/*
 * The attacker's side (this program re-executed under setpriv as uid
 * 65534 with RACE_ARG MODE DIR N [CTL ACK]): N times, it makes DIR/xI, a
 * copy of /bin/true followed by CLEANTXT, opens it for writing, and has it
 * executed: by a child of its own (MODE "self"), or by the test, running
 * as root, which it asks through the descriptor CTL and which answers on
 * ACK when the program has ended (MODE "root"). While the exec waits for
 * the scanner it watches the file's atime, which the scanner's pread()
 * moves: at the first move (the scan of the exec's FAN_OPEN_EXEC_PERM) it
 * rewrites the clean bytes (so that verdict is not cached), at the second
 * (the scan of FAN_OPEN_PERM) it writes MARKER over them, and it closes the
 * file before the verdict, so that the exec's deny_write_access() finds
 * no writer. An exec that succeeds after the marker was written ran the
 * marked program.
 *
 * Prints one line: "race runs=N hits=H marked=M denied=D busy=B clean=C",
 * hits: iterations in which the first scan's read was seen and the file
 * written right then, while the exec waited; marked: the marked program
 * ran (self mode; in root mode the test counts); denied: EPERM; busy:
 * ETXTBSY (a writer was still open when the kernel denied writes).
 */
#define RACE_ARG "--race-attacker"

static bool
atime_moves(const char *path, const struct timespec *from, int timeout_us)
{
	int64_t end = tu_now_ms() * 1000 + timeout_us;
	struct stat sb;

	do {
		if (stat(path, &sb) == 0 && (sb.st_atim.tv_sec != from->tv_sec ||
					     sb.st_atim.tv_nsec != from->tv_nsec))
			return true;
	} while (tu_now_ms() * 1000 < end);
	return false;
}

static int
race_attacker_main(int argc, char **argv)
{
	const char *mode = argv[2], *dir = argv[3];
	int n = atoi(argv[4]), ctl = argc > 6 ? atoi(argv[5]) : -1,
	    ack = argc > 6 ? atoi(argv[6]) : -1;
	int hits = 0, marked = 0, denied = 0, busy = 0, late_ones = 0;
	/* For measuring (docs/scanner.md): how long to wait for the second
	 * atime move, and a delay before the marker is written, to aim past
	 * the scanner's last check. */
	int t2_us = getenv("RACE_T2_US") ? atoi(getenv("RACE_T2_US")) : 20000;
	int delay_us = getenv("RACE_DELAY_US") ? atoi(getenv("RACE_DELAY_US")) : 0;
	/* RACE_REOPEN=1: hold no writer across the exec; open one when the
	 * first scan's read is seen, write the marker, close (measuring). */
	bool reopen = getenv("RACE_REOPEN") != NULL;
	static char body[1 << 20];
	ssize_t len;
	off_t off;
	int fd;

	fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, body, sizeof(body) - 64) : -1;
	if (len <= 0)
		return 2;
	close(fd);
	off = (off_t)len;
	memcpy(body + len, CLEANTXT, strlen(CLEANTXT));
	len += (ssize_t)strlen(CLEANTXT);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat sb;
		bool hit1, late = false, reaped = false, wrote = false;
		int w, st = 0, go[2], res = -1;
		pid_t pid = -1;

		snprintf(path, sizeof(path), "%s/x%d", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
		if (fd < 0 || write(fd, body, (size_t)len) != len || close(fd) < 0)
			return 3;
		w = open(path, O_WRONLY | O_CLOEXEC);
		if (w < 0)
			return 4;
		/* The scan of that open moved atime past mtime, and relatime
		 * moves it again only for a read after a change: rewrite. Then
		 * wait for a later tick of the coarse clock, so that the next
		 * scan's read moves atime visibly. */
		if (pwrite(w, CLEANTXT, strlen(CLEANTXT), off) < 0)
			return 4;
		if (reopen) {
			close(w);
			w = -1;
		}
		usleep(10000);
		if (stat(path, &sb) < 0 || pipe2(go, O_CLOEXEC) < 0)
			return 5;
		if (!strcmp(mode, "self")) {
			pid = fork();
			if (pid < 0)
				return 6;
			if (pid == 0) {
				char *args[] = { path, NULL }, b;

				close(w); /* else our copy makes the exec ETXTBSY */
				if (read(go[0], &b, 1) != 1)
					_exit(103);
				execve(path, args, environ);
				_exit(errno == EPERM     ? 100
				      : errno == ETXTBSY ? 101
							 : 102);
			}
			if (write(go[1], "g", 1) != 1)
				return 7;
		} else if (write(ctl, "g", 1) != 1) {
			return 7;
		}
		hit1 = atime_moves(path, &sb.st_atim, 200000);
		if (w < 0 && hit1) {
			struct pollfd pf = { .fd = ack, .events = POLLIN };

			w = open(path, O_WRONLY | O_CLOEXEC);
			/* The program already ended: what ran was not written. */
			if (w >= 0 && (pid > 0 ? waitpid(pid, &st, WNOHANG) == pid
					       : poll(&pf, 1, 0) > 0)) {
				late = true;
				if (pid > 0)
					reaped = true;
			}
		}
		if (w < 0)
			hit1 = false;
		if (w >= 0 && pwrite(w, CLEANTXT, strlen(CLEANTXT), off) < 0)
			return 8;
		if (stat(path, &sb) < 0)
			return 5;
		if (hit1 && !reopen)
			(void)atime_moves(path, &sb.st_atim, t2_us);
		if (delay_us) {
			struct timespec t0, t;

			clock_gettime(CLOCK_MONOTONIC, &t0);
			do
				clock_gettime(CLOCK_MONOTONIC, &t);
			while ((t.tv_sec - t0.tv_sec) * 1000000 +
				       (t.tv_nsec - t0.tv_nsec) / 1000 <
			       delay_us);
		}
		if (w >= 0) {
			if (pwrite(w, MARKER, strlen(MARKER), off) < 0)
				return 8;
			wrote = true;
			close(w);
		}
		close(go[0]);
		close(go[1]);
		if (pid > 0) {
			if (!reaped && waitpid(pid, &st, 0) != pid)
				return 9;
			res = WIFEXITED(st) ? WEXITSTATUS(st) : 104;
		} else {
			unsigned char r;

			if (read(ack, &r, 1) != 1)
				return 9;
			res = r;
		}
		hits += hit1;
		marked += res == 0 && wrote && !late;
		late_ones += late;
		denied += res == 100;
		busy += res == 101;
		unlink(path);
	}
	printf("race runs=%d hits=%d marked=%d denied=%d busy=%d late=%d\n", n, hits,
	       marked, denied, busy, late_ones);
	fflush(stdout);
	return 0;
}

/*
 * The mmap attacker (RACE_ARG is not involved: MMAP_ARG PATH, as uid
 * 65534): makes PATH, a copy of /bin/true followed by CLEANTXT, runs it
 * (so a clean verdict may be cached), then writes MARKER over the clean
 * bytes through a shared writable mapping (no write() call: no
 * FAN_MODIFY, and tmpfs does not even move mtime), unmaps, closes, and
 * runs it again. Exit status: 0 the marked program ran, 100 EPERM, 101
 * ETXTBSY, 102 another exec error, 2.. setup failures.
 */
static int
run_file(const char *path)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return 103;
	if (pid == 0) {
		char *args[] = { (char *)path, NULL };

		execve(path, args, environ);
		_exit(errno == EPERM ? 100 : errno == ETXTBSY ? 101 : 102);
	}
	if (waitpid(pid, &st, 0) != pid)
		return 104;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 105;
}

static int
mmap_attacker_main(const char *path)
{
	static char body[1 << 20];
	ssize_t len;
	char *map;
	int fd, r;

	fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, body, sizeof(body) - 64) : -1;
	if (len <= 0)
		return 2;
	close(fd);
	memcpy(body + len, CLEANTXT, strlen(CLEANTXT));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (fd < 0 || write(fd, body, (size_t)len + strlen(CLEANTXT)) < 0 ||
	    close(fd) < 0)
		return 3;
	r = run_file(path);
	if (r != 0)
		return 10 + r % 10; /* the clean program must run */
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 4;
	map = mmap(NULL, (size_t)len + strlen(CLEANTXT), PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return 5;
	memcpy(map + len, MARKER, strlen(MARKER));
	munmap(map, (size_t)len + strlen(CLEANTXT));
	close(fd);
	return run_file(path);
}

struct race_result {
	int runs, hits, marked, denied, busy, late;
};

/* Runs the attacker as uid 65534 in `mode` on DIR; in "root" mode this
 * process executes each file when asked. */
static void
run_race(const char *mode, const char *dir, int n, struct race_result *ret)
{
	char self[PATH_MAX], out[300], sn[16], sctl[16], sack[16];
	int ctl[2], ack[2], st, ofd;
	ssize_t len;
	pid_t pid;
	char *text, *p;

	len = (ssize_t)strlen(self_for_others);
	assert_true(len > 0 && (size_t)len < sizeof(self));
	memcpy(self, self_for_others, (size_t)len + 1);
	snprintf(out, sizeof(out), "%s/race-%s.out", scratch, mode);
	snprintf(sn, sizeof(sn), "%d", n);
	assert_int_equal(pipe(ctl), 0);
	assert_int_equal(pipe(ack), 0);
	snprintf(sctl, sizeof(sctl), "%d", ctl[1]);
	snprintf(sack, sizeof(sack), "%d", ack[0]);
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "setpriv",
				 "--reuid=65534",
				 "--regid=65534",
				 "--clear-groups",
				 "--",
				 self,
				 RACE_ARG,
				 (char *)mode,
				 (char *)dir,
				 sn,
				 sctl,
				 sack,
				 NULL };

		ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (ofd < 0)
			_exit(127);
		dup2(ofd, STDOUT_FILENO);
		close(ctl[0]);
		close(ack[1]);
		execvp("setpriv", argv);
		_exit(127);
	}
	close(ctl[1]);
	close(ack[0]);
	*ret = (struct race_result){ 0 };
	for (;;) { /* root mode: execute the user's file when asked */
		char b, *args[2];
		unsigned char r;
		pid_t x;
		int xst;

		if (read(ctl[0], &b, 1) != 1)
			break;
		snprintf(out, sizeof(out), "%s/x%d", dir, ret->runs);
		args[0] = out;
		args[1] = NULL;
		x = fork();
		assert_true(x >= 0);
		if (x == 0) {
			execve(out, args, environ);
			_exit(errno == EPERM ? 100 : errno == ETXTBSY ? 101 : 102);
		}
		assert_int_equal(waitpid(x, &xst, 0), x);
		r = WIFEXITED(xst) ? (unsigned char)WEXITSTATUS(xst) : 104;
		ret->runs++;
		assert_int_equal(write(ack[1], &r, 1), 1);
	}
	close(ctl[0]);
	close(ack[1]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	snprintf(out, sizeof(out), "%s/race-%s.out", scratch, mode);
	text = tu_slurp(out);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !(p = strstr(text, "race ")))
		fail_msg("race attacker (%s) failed, status %#x: %s", mode, (unsigned)st,
			 text);
	assert_int_equal(
		sscanf(p, "race runs=%d hits=%d marked=%d denied=%d busy=%d late=%d",
		       &ret->runs, &ret->hits, &ret->marked, &ret->denied, &ret->busy,
		       &ret->late),
		6);
	free(text);
}

/*
 * The exec of a user's file rewritten while the scanner reads it (clean
 * bytes during the scan of FAN_OPEN_EXEC_PERM, the marker during the scan
 * of FAN_OPEN_PERM, the writer closed before the verdict) must never run
 * the marked program, whether the user or root executes it, and the
 * scanner's counters must show it saw the attack. Default allow: a denial
 * can only come from the scanner's own decision.
 */
static void
exec_of_a_file_rewritten_during_its_scan_never_runs_the_marker(void **state)
{
	int N = getenv("RACE_N") ? atoi(getenv("RACE_N")) : 20;
	struct race_result self, root;
	uint64_t v[SCANNER_CTR_COUNT_];
	char dir[200];

	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	snprintf(dir, sizeof(dir), "%s/u", watch);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	run_race("self", dir, N, &self);
	run_race("root", dir, N, &root);
	filter_stats(v);
	print_message("scanner: rewrite race, uid 65534 executes: %d runs, %d hit, "
		      "%d marked ran, %d denied, %d ETXTBSY, %d written late\n",
		      self.runs, self.hits, self.marked, self.denied, self.busy,
		      self.late);
	print_message("scanner: rewrite race, root executes: %d runs, %d hit, %d "
		      "marked ran, %d denied, %d ETXTBSY, %d written late\n",
		      root.runs, root.hits, root.marked, root.denied, root.busy,
		      root.late);
	print_message("scanner: changed_during_scan %llu, rescans %llu, changed_denies "
		      "%llu, exec_writer_denies %llu, uncached %llu\n",
		      (unsigned long long)v[SCANNER_CTR_changed_during_scan],
		      (unsigned long long)v[SCANNER_CTR_rescans],
		      (unsigned long long)v[SCANNER_CTR_changed_denies],
		      (unsigned long long)v[SCANNER_CTR_exec_writer_denies],
		      (unsigned long long)v[SCANNER_CTR_uncached]);
	assert_int_equal(self.runs, N);
	assert_int_equal(root.runs, N);
	assert_int_equal(self.marked, 0);
	assert_int_equal(root.marked, 0);
	/* The scanner saw every attack it stopped: as a change during a scan,
	 * or as a writer holding the file open (which it refuses first). */
	if (self.hits + root.hits > 0)
		assert_true(v[SCANNER_CTR_changed_during_scan] +
				    v[SCANNER_CTR_exec_writer_denies] >
			    0);
	print_message("scanner: service exec_writers %llu lease_errors %llu "
		      "hold_failures %llu scanned %llu; filter requests %llu "
		      "cache_hits %llu events %llu\n",
		      (unsigned long long)svc_stat("exec_writers"),
		      (unsigned long long)svc_stat("lease_errors"),
		      (unsigned long long)svc_stat("hold_failures"),
		      (unsigned long long)svc_stat("scanned"),
		      (unsigned long long)v[SCANNER_CTR_requests],
		      (unsigned long long)v[SCANNER_CTR_cache_hits],
		      (unsigned long long)v[SCANNER_CTR_events]);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			marker_file_is_denied_and_clean_file_opens, setup, teardown),
		cmocka_unit_test_setup_teardown(marked_executable_cannot_run, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			clean_file_rewritten_with_marker_is_denied, setup, teardown),
		cmocka_unit_test_setup_teardown(
			file_written_right_after_create_is_scanned, setup, teardown),
		cmocka_unit_test_setup_teardown(denied_file_rewritten_clean_is_allowed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			infected_file_renamed_over_clean_name_is_denied, setup, teardown),
		cmocka_unit_test_setup_teardown(
			unchanged_clean_file_second_open_skips_service, setup, teardown),
		cmocka_unit_test_setup_teardown(
			stopped_service_gets_default_within_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(
			killed_service_pending_opens_answered_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(no_service_gives_default_verdict, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			twenty_concurrent_openers_are_scanned_in_parallel, setup,
			teardown),
		cmocka_unit_test_setup_teardown(sighup_reload_applies_to_next_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(malformed_reply_is_counted_and_defaulted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(rule_error_names_file_and_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(fltmc_stats_shows_the_filters_counters,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			small_files_are_answered_inline_big_ones_pended, setup, teardown),
		cmocka_unit_test_setup_teardown(inline_ms_zero_pends_every_request, setup,
						teardown),
		cmocka_unit_test_setup_teardown(stopped_service_inline_wait_is_pended,
						setup, teardown),
		cmocka_unit_test_setup_teardown(slow_service_pauses_inline_path, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			dead_clients_exclusion_does_not_pass_to_its_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(oversize_file_gets_the_default_verdict,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			open_after_a_write_through_mmap_is_scanned, setup, teardown),
		cmocka_unit_test_setup_teardown(
			exec_after_a_write_through_mmap_is_scanned, setup, teardown),
		cmocka_unit_test_setup_teardown(
			nobody_cannot_connect_to_the_scanners_port, setup, teardown),
		cmocka_unit_test_setup_teardown(
			fail_open_verdicts_are_logged_and_never_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(
			file_changed_during_its_scan_is_scanned_again, setup, teardown),
		cmocka_unit_test_setup_teardown(
			exec_of_a_file_rewritten_during_its_scan_never_runs_the_marker,
			setup, teardown),
	};
	int r;

	if (argc >= 5 && strcmp(argv[1], RACE_ARG) == 0)
		return race_attacker_main(argc, argv);
	if (argc == 3 && strcmp(argv[1], MMAP_ARG) == 0)
		return mmap_attacker_main(argv[2]);
	if (argc == 3 && strcmp(argv[1], CONNECT_ARG) == 0) {
		uint8_t ctx[SCANNER_CONTEXT_SIZE];
		filter_port *p = NULL;
		int e;

		/* A service's connect: it would be excluded, and be asked for
		 * verdicts. Exit status: the errno, or 0 if it was let in. */
		scanner_context_encode(1, ctx);
		e = filter_connect_communication_port(argv[2], 0, ctx, sizeof(ctx), &p);
		if (e == 0)
			filter_close_port(p);
		return -e;
	}
	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	scanner_bin = getenv("FLTMGR_TEST_SCANNER");
	scanner_so = getenv("FLTMGR_TEST_SCANNER_SO");
	fltmc_bin = getenv("FLTMGR_TEST_FLTMC");
	if (geteuid() != 0) {
		printf("test_scanner: SKIP: needs root (fanotify, root-owned filter "
		       "objects)\n");
		return 77;
	}
	if (!fltmgrd_bin || !scanner_bin || !scanner_so || !fltmc_bin) {
		printf("test_scanner: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_SCANNER, "
		       "FLTMGR_TEST_SCANNER_SO and FLTMGR_TEST_FLTMC must be set "
		       "(meson test sets them)\n");
		return 1;
	}
	r = tu_private_scratch("test_scanner", scratch, "fltmgr-scan", 256);
	if (r != 0)
		return r;
	/* What uid 65534 re-executes: a copy it can reach, wherever the
	 * checkout lies. */
	{
		char bin[200];

		snprintf(bin, sizeof(bin), "%s/bin", scratch);
		if (mkdir(bin, 0755) < 0 ||
		    (r = tu_copy_self_for_others(bin, self_for_others,
						 sizeof(self_for_others))) < 0) {
			printf("test_scanner: cannot copy itself for uid 65534: %s\n",
			       strerror(r < 0 ? -r : errno));
			tu_private_scratch_remove(scratch);
			return 1;
		}
	}
	unsetenv("FLTMGR_RUNTIME_DIR");
	if (getenv("FLTMGR_TEST_ONLY"))
		cmocka_set_test_filter(getenv("FLTMGR_TEST_ONLY"));
	r = cmocka_run_group_tests(tests, NULL, NULL);
	tu_private_scratch_remove(scratch);
	return r;
}
