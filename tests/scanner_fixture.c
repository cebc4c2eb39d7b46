/* SPDX-License-Identifier: MIT */
/* scanner_fixture.c — see scanner_fixture.h. */
#include "scanner_fixture.h"

const char *fltmgrd_bin, *scanner_bin, *scanner_so, *fltmc_bin;
char scratch[] = "/tmp/fltmgr-scan.XXXXXX";
char self_for_others[PATH_MAX];

char rundir[128], fdir[128], watch[128], conf[128], dlog[128], sout[128], slog[128],
	rules[160];

pid_t daemon_pid, svc_pid;

/* ---- files ---- */

char *
at(const char *rel)
{
	return tu_path(watch, rel);
}

void
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

int
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

void
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

void
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

void
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

uint64_t
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

void
svc_stop_signal(void)
{
	assert_int_equal(kill(svc_pid, SIGSTOP), 0);
	assert_true(tu_wait_until(all_threads_stopped, &svc_pid, WAIT_MS));
}

/* ---- fixtures ---- */

int
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

int
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

/* ---- a daemon with other parameters; files of a given size ---- */

void
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

void
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

/* ---- uid 65534 ---- */

int
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

/* ---- the start of each program ---- */

int
scanner_fixture_init(const char *prog)
{
	int r;

	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	scanner_bin = getenv("FLTMGR_TEST_SCANNER");
	scanner_so = getenv("FLTMGR_TEST_SCANNER_SO");
	fltmc_bin = getenv("FLTMGR_TEST_FLTMC");
	if (geteuid() != 0) {
		printf("%s: SKIP: needs root (fanotify, root-owned filter "
		       "objects)\n",
		       prog);
		return 77;
	}
	if (!fltmgrd_bin || !scanner_bin || !scanner_so || !fltmc_bin) {
		printf("%s: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_SCANNER, "
		       "FLTMGR_TEST_SCANNER_SO and FLTMGR_TEST_FLTMC must be set "
		       "(meson test sets them)\n",
		       prog);
		return 1;
	}
	r = tu_private_scratch(prog, scratch, "fltmgr-scan", 256);
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
			printf("%s: cannot copy itself for uid 65534: %s\n", prog,
			       strerror(r < 0 ? -r : errno));
			tu_private_scratch_remove(scratch);
			return 1;
		}
	}
	unsetenv("FLTMGR_RUNTIME_DIR");
	if (getenv("FLTMGR_TEST_ONLY"))
		cmocka_set_test_filter(getenv("FLTMGR_TEST_ONLY"));
	return 0;
}

void
scanner_fixture_fini(void)
{
	tu_private_scratch_remove(scratch);
}
