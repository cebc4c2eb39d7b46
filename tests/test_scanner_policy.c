/* SPDX-License-Identifier: MIT */
/*
 * test_scanner_policy.c — what the scanner does with a match, end to
 * end: the real fltmgrd with scanner.so on a watched directory and the
 * real `scanner` service (root: fanotify). Actions by rule metadata,
 * report-only, external variables defined from the request, the verdicts
 * of the time and size limits (never cached), the log line of each
 * decision and the JSON stream, per-rule counters (`scanner --stats`),
 * and `scanner --self-test`.
 *
 * Like test_scanner.c (whose fixture this follows), the program runs in
 * a private mount namespace on a scratch tmpfs, each test with its own
 * runtime, filter and watched directories; every wait is bounded. Rule
 * strings are written in hex, so that no rule file matches itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include <fltmgr/scanner.h>

#include "testutil.h"

#define WAIT_MS       10000
#define SCAN_DEADLINE 30000

extern char **environ;

static const char *fltmgrd_bin, *scanner_bin, *scanner_so;
static char scratch[] = "/tmp/fltmgr-policy.XXXXXX";
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

/* `{ 41 42 ... }`: s as a YARA hex string. */
static const char *
hex(const char *s)
{
	static char buf[8][700];
	static int i;
	size_t n = 0;

	i = (i + 1) % 8;
	n += (size_t)snprintf(buf[i], sizeof(buf[i]), "{ ");
	for (size_t k = 0; s[k] && n + 4 < sizeof(buf[i]); k++)
		n += (size_t)snprintf(buf[i] + n, sizeof(buf[i]) - n, "%02x ",
				      (unsigned char)s[k]);
	snprintf(buf[i] + n, sizeof(buf[i]) - n, "}");
	return buf[i];
}

/* open(path, O_RDONLY): 0 or the errno. */
static int
try_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = fd < 0 ? errno : 0;

	if (fd >= 0)
		close(fd);
	return err;
}

#define EXPECT_LOG(path, needle)                                                 \
	do {                                                                     \
		if (!tu_wait_in_file((path), (needle), 1, WAIT_MS))              \
			fail_msg("expected \"%s\" in %s:\n%s", (needle), (path), \
				 tu_slurp(path));                                \
	} while (0)

/* ---- processes ---- */

/* fltmgrd with scanner.so on the watched directory. Requests go through
 * the filter's sender threads only (param.inline_ms = 0): a request sent
 * from the pre callback that outlasts inline_ms is sent again by a
 * sender, and the service then scans the file twice (seen under TSan),
 * which would make the per-scan counts checked here inexact. */
static void
daemon_start(bool deny_by_default)
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
		 "altitude = 325000\ndeadline_ms = %d\ndefault_verdict = %s\n"
		 "attach = %s\nparam.inline_ms = 0\n%s",
		 fdir, SCAN_DEADLINE, deny_by_default ? "deny" : "allow", watch,
		 tu_kernel_lacks("names") ? "param.invalidate = false\n" : "");
	tu_write_file(conf, text);
	daemon_pid = tu_spawn(argv, "/dev/null", dlog);
	if (!tu_wait_daemon_ready(rundir, "scanner", WAIT_MS))
		fail_msg("fltmgrd did not start: %s", tu_slurp(dlog));
}

/* scanner --rules rules --log stderr [extra]; waits until connected. */
static void
svc_start(const char *const extra[])
{
	char *argv[32] = { (char *)scanner_bin,
			   "--rules",
			   rules,
			   "--runtime-dir",
			   rundir,
			   "--log",
			   "stderr" };
	int n = 7, before = tu_count_in_file(slog, "connected to ");

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
	int n = tu_count_in_file(slog, "scanner: stats: ");
	char key[64], *s, *p, *last = NULL;
	uint64_t v;

	kill(svc_pid, SIGUSR1);
	if (!tu_wait_in_file(slog, "scanner: stats: ", n + 1, WAIT_MS))
		fail_msg("no stats line from the service: %s", tu_slurp(slog));
	s = tu_slurp(slog);
	for (p = s; (p = strstr(p, "scanner: stats: ")); p++)
		last = p;
	snprintf(key, sizeof(key), " %s=", name);
	p = strstr(last, key);
	if (!p)
		fail_msg("the service prints no counter %s", name);
	v = strtoull(p + strlen(key), NULL, 10);
	free(s);
	return v;
}

/* Runs argv to its end; its exit status, its stdout in *ret_out. */
static int
run(char *const argv[], char **ret_out)
{
	char out[200];
	int rc;

	snprintf(out, sizeof(out), "%s/run.out", scratch);
	(void)unlink(out);
	rc = tu_expect_exit(tu_spawn(argv, out, slog), WAIT_MS);
	*ret_out = tu_slurp(out);
	return rc;
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
	assert_int_equal(mkdir(watch, 0755), 0);
	snprintf(cmd, sizeof(cmd),
		 "cp '%s' '%s/scanner.so' && chmod 0644 '%s/scanner.so'", scanner_so,
		 fdir, fdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int
teardown(void **state)
{
	int rc = 0;

	(void)state;
	if (svc_pid > 0) {
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

/* ---- actions by metadata ---- */

/* Six rules, one marker each; the policy: --default-action report,
 * --deny-tag malware, --deny-score 70. */
static void
write_policy_rules(void)
{
	char text[8192];

	snprintf(text, sizeof(text),
		 "rule by_action_deny { meta: action = \"deny\" score = 10\n"
		 "  strings: $m = %s condition: $m }\n"
		 "rule by_action_report : malware { meta: action = \"report\"\n"
		 "  strings: $m = %s condition: $m }\n"
		 "rule by_score_high { meta: score = 80 description = \"a \\\"quoted\\\" "
		 "word\"\n"
		 "  strings: $m = %s condition: $m }\n"
		 "rule by_score_low { meta: score = 40\n"
		 "  strings: $m = %s condition: $m }\n"
		 "rule by_tag : malware trojan {\n"
		 "  strings: $m = %s condition: $m }\n"
		 "rule by_default {\n"
		 "  strings: $m = %s condition: $m }\n",
		 hex("MARK-ACTION-DENY"), hex("MARK-ACTION-REPORT"),
		 hex("MARK-SCORE-HIGH"), hex("MARK-SCORE-LOW"), hex("MARK-TAG-MALWARE"),
		 hex("MARK-DEFAULT"));
	tu_write_file(rules, text);
}

static const char *const policy_args[] = { "--default-action", "report",
					   "--deny-tag",       "malware",
					   "--deny-score",     "70",
					   "--json",           NULL };

/* Explicit meta action first, then tags, then score, then the default;
 * each decision is logged with its verdict; `scanner --stats` counts
 * matches per rule. */
static void
actions_follow_rule_metadata(void **state)
{
	char *stats_argv[] = { (char *)scanner_bin, "--stats", "--runtime-dir", rundir,
			       NULL };
	char *out;

	(void)state;
	write_policy_rules();
	tu_write_file(at("f-action-deny"), "xx MARK-ACTION-DENY xx");
	tu_write_file(at("f-action-report"), "xx MARK-ACTION-REPORT xx");
	tu_write_file(at("f-score-high"), "xx MARK-SCORE-HIGH xx");
	tu_write_file(at("f-score-low"), "xx MARK-SCORE-LOW xx");
	tu_write_file(at("f-tag"), "xx MARK-TAG-MALWARE xx");
	tu_write_file(at("f-default"), "xx MARK-DEFAULT xx");
	daemon_start(true);
	svc_start(policy_args);
	assert_int_equal(try_open(at("f-action-deny")), EPERM);
	assert_int_equal(try_open(at("f-action-report")), 0); /* meta beats tag */
	assert_int_equal(try_open(at("f-score-high")), EPERM);
	assert_int_equal(try_open(at("f-score-low")), 0);
	assert_int_equal(try_open(at("f-tag")), EPERM);
	assert_int_equal(try_open(at("f-default")), 0);
	EXPECT_LOG(slog, "verdict=deny rule=by_action_deny ");
	EXPECT_LOG(slog, "verdict=report rule=by_action_report ");
	EXPECT_LOG(slog, "verdict=deny rule=by_score_high ");
	EXPECT_LOG(slog, "verdict=report rule=by_score_low ");
	EXPECT_LOG(slog, "verdict=deny rule=by_tag ");
	EXPECT_LOG(slog, "verdict=report rule=by_default ");
	assert_int_equal(svc_stat("infected"), 3);
	assert_int_equal(svc_stat("reported"), 3);
	/* The per-rule counters, from the running service. */
	assert_int_equal(run(stats_argv, &out), 0);
	if (!strstr(out, ":by_action_deny deny 1"))
		fail_msg("no per-rule counter in scanner --stats:\n%s", out);
	if (!strstr(out, ":by_default report 1"))
		fail_msg("no per-rule counter in scanner --stats:\n%s", out);
	if (!strstr(out, "service.infected 3"))
		fail_msg("no service counters in scanner --stats:\n%s", out);
	free(out);
}

/* --report-only: everything allowed, the matches that would have denied
 * logged as would-deny and counted. */
static void
report_only_denies_nothing(void **state)
{
	const char *extra[] = { "--deny-tag", "malware",       "--deny-score",
				"70",         "--report-only", NULL };
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	write_policy_rules();
	tu_write_file(at("f-action-deny"), "xx MARK-ACTION-DENY xx");
	tu_write_file(at("f-score-high"), "xx MARK-SCORE-HIGH xx");
	tu_write_file(at("f-tag"), "xx MARK-TAG-MALWARE xx");
	tu_write_file(at("f-default"), "xx MARK-DEFAULT xx");
	daemon_start(true);
	svc_start(extra);
	assert_int_equal(try_open(at("f-action-deny")), 0);
	assert_int_equal(try_open(at("f-score-high")), 0);
	assert_int_equal(try_open(at("f-tag")), 0);
	assert_int_equal(try_open(at("f-default")), 0);
	EXPECT_LOG(slog, "verdict=would-deny rule=by_action_deny ");
	EXPECT_LOG(slog, "verdict=would-deny rule=by_tag ");
	/* --default-action deny: a plain rule would deny too */
	EXPECT_LOG(slog, "verdict=would-deny rule=by_default ");
	assert_int_equal(svc_stat("would_deny"), 4);
	assert_int_equal(svc_stat("infected"), 0);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_infected], 0);
}

/* A broken rule file among good ones: the service starts with the rest
 * (saying so), scans with it, and counts the file left out. */
static void
broken_rule_file_is_counted_and_the_rest_scans(void **state)
{
	char path[PATH_MAX];

	(void)state;
	assert_int_equal(mkdir(rules, 0755), 0);
	snprintf(path, sizeof(path), "%s/good.yar", rules);
	tu_write_file(path, "rule good { strings: $m = { 4d 41 52 4b 2d 47 4f 4f 44 } "
			    "condition: $m }\n");
	snprintf(path, sizeof(path), "%s/bad.yar", rules);
	tu_write_file(path, "rule bad { condition: nonsense }\n");
	tu_write_file(at("f"), "xx MARK-GOOD xx");
	daemon_start(true);
	svc_start(NULL);
	EXPECT_LOG(slog, "1 of 2 files FAILED and are left out");
	assert_int_equal(try_open(at("f")), EPERM);
	assert_int_equal(svc_stat("rule_files_failed"), 1);
	assert_int_equal(svc_stat("rules"), 2); /* good, and the built-in EICAR rule */
}

/* ---- the log ---- */

/* One line per decision on stderr, keys in a fixed order, values quoted
 * and escaped when they must be; the same decision as a JSON line on
 * stdout with the rule's metadata and tags. */
static void
log_line_and_json_name_rule_path_process_and_metadata(void **state)
{
	char expect[PATH_MAX * 2], self[PATH_MAX];
	char *text, *line;
	struct json_object *o, *v, *meta;
	ssize_t n;

	(void)state;
	write_policy_rules();
	tu_write_file(at("with space \"q\""), "xx MARK-SCORE-HIGH xx");
	daemon_start(true);
	svc_start(policy_args);
	assert_int_equal(try_open(at("with space \"q\"")), EPERM);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	snprintf(expect, sizeof(expect),
		 "scanner: detection verdict=deny rule=by_score_high namespace=%s "
		 "path=\"%s/with space \\\"q\\\"\" op=open pid=%d exe=%s "
		 "meta=\"score=80 description=\\\"a \\\\\\\"quoted\\\\\\\" word\\\"\"\n",
		 strrchr(rules, '/') + 1, watch, (int)getpid(), self);
	EXPECT_LOG(slog, expect);
	/* JSON */
	EXPECT_LOG(sout, "\"rule\":\"by_score_high\"");
	text = tu_slurp(sout);
	line = strstr(text, "{");
	assert_non_null(line);
	*strchr(line, '\n') = '\0';
	o = json_tokener_parse(line);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "verdict", &v));
	assert_string_equal(json_object_get_string(v), "deny");
	assert_true(json_object_object_get_ex(o, "path", &v));
	assert_string_equal(json_object_get_string(v), at("with space \"q\""));
	assert_true(json_object_object_get_ex(o, "pid", &v));
	assert_int_equal(json_object_get_int(v), getpid());
	assert_true(json_object_object_get_ex(o, "exe", &v));
	assert_string_equal(json_object_get_string(v), self);
	assert_true(json_object_object_get_ex(o, "meta", &meta));
	assert_true(json_object_object_get_ex(meta, "score", &v));
	assert_int_equal(json_object_get_int(v), 80);
	json_object_put(o);
	free(text);
}

/* Under systemd: sd_journal_send() with structured fields. The journal's
 * socket is played by this test, on a tmpfs mounted over /run/systemd in
 * the test's private mount namespace. */
static void
journal_gets_structured_fields(void **state)
{
	const char *extra[] = { "--deny-tag", "malware", "--log", "journal", NULL };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[8192], field[PATH_MAX + 64], self[PATH_MAX];
	struct pollfd pf;
	ssize_t n;
	int fd;

	(void)state;
	if (access("/run/systemd", F_OK) < 0 ||
	    mount("fltmgr-journal", "/run/systemd", "tmpfs", 0, "size=1m") < 0) {
		print_message("skipped: cannot mount a tmpfs on /run/systemd: %s\n",
			      strerror(errno));
		skip();
	}
	assert_int_equal(mkdir("/run/systemd/journal", 0755), 0);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/run/systemd/journal/socket");
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	write_policy_rules();
	tu_write_file(at("tagged"), "xx MARK-TAG-MALWARE xx");
	daemon_start(true);
	svc_start(extra);
	assert_int_equal(try_open(at("tagged")), EPERM);
	pf = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, WAIT_MS), 1);
	buf[0] = '\n'; /* every field then follows a newline */
	n = recv(fd, buf + 1, sizeof(buf) - 2, 0);
	assert_true(n > 0);
	buf[n + 1] = '\0';
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
#define FIELD(...)                                                                   \
	do {                                                                         \
		snprintf(field, sizeof(field), __VA_ARGS__);                         \
		if (!strstr(buf, field))                                             \
			fail_msg("no \"%s\" in the journal entry:\n%s", field, buf); \
	} while (0)
	FIELD("\nMESSAGE=scanner: detection verdict=deny rule=by_tag ");
	FIELD("\nPRIORITY=4\n");
	FIELD("\nSCANNER_EVENT=detection\n");
	FIELD("\nSCANNER_VERDICT=deny\n");
	FIELD("\nSCANNER_RULE=by_tag\n");
	FIELD("\nSCANNER_NAMESPACE=%s\n", strrchr(rules, '/') + 1);
	FIELD("\nSCANNER_PATH=%s\n", at("tagged"));
	FIELD("\nSCANNER_OP=open\n");
	FIELD("\nSCANNER_PID=%d\n", (int)getpid());
	FIELD("\nSCANNER_EXE=%s\n", self);
	FIELD("\nSCANNER_TAGS=malware,trojan\n");
#undef FIELD
	/* nothing on stderr for it */
	assert_int_equal(tu_count_in_file(slog, "scanner: detection"), 0);
	/* The journal gone: the line goes to stderr, and is counted. */
	close(fd);
	assert_int_equal(unlink("/run/systemd/journal/socket"), 0);
	tu_write_file(at("tagged2"), "yy MARK-TAG-MALWARE yy");
	assert_int_equal(try_open(at("tagged2")), EPERM);
	snprintf(field, sizeof(field),
		 "scanner: detection verdict=deny rule=by_tag namespace=%s path=%s ",
		 strrchr(rules, '/') + 1, at("tagged2"));
	EXPECT_LOG(slog, field);
	assert_int_equal(svc_stat("log_errors"), 1);
	assert_int_equal(umount2("/run/systemd", MNT_DETACH), 0);
}

/* ---- external variables ---- */

/* filename, filepath, extension, filetype and owner come from the
 * request and the file: a rule on them matches only the file they name. */
static void
external_variables_come_from_the_request(void **state)
{
	char text[2048];

	(void)state;
	snprintf(text, sizeof(text),
		 "rule by_name { condition: filename == \"evil.PHP\" and extension == "
		 "\".php\" and filepath == \"%s\" and owner == \"root\" and "
		 "filetype == \"PHP\" }\n"
		 "rule by_type { condition: filetype == \"PDF\" and filename != "
		 "\"evil.PHP\" }\n"
		 "rule by_define { condition: level > 2 and filename == \"lvl\" }\n",
		 watch);
	tu_write_file(rules, text);
	tu_write_file(at("evil.PHP"), "<?php echo 1; ?>");
	tu_write_file(at("evil.txt"), "<?php echo 1; ?>");
	tu_write_file(at("fake.txt"), "%PDF-1.4 not really");
	tu_write_file(at("plain.pdf"), "not a pdf at all");
	tu_write_file(at("mz.pdf"), "MZ but named .pdf");
	tu_write_file(at("lvl"), "level");
	daemon_start(true);
	{
		const char *extra[] = { "-d", "level=3", NULL };

		svc_start(extra);
	}
	assert_int_equal(try_open(at("evil.PHP")), EPERM);
	assert_int_equal(try_open(at("evil.txt")), 0);
	/* filetype: by magic bytes, else by extension */
	assert_int_equal(try_open(at("fake.txt")), EPERM);
	assert_int_equal(try_open(at("plain.pdf")), EPERM);
	assert_int_equal(try_open(at("mz.pdf")), 0); /* "EXE" */
	assert_int_equal(try_open(at("lvl")), EPERM);
	EXPECT_LOG(slog, "rule=by_name ");
	EXPECT_LOG(slog, "rule=by_type ");
}

/* ---- limits ---- */

/* A rule that takes far longer than a second on 30 kB. */
static void
write_slow_rule(void)
{
	tu_write_file(rules,
		      "rule slow { condition: for all i in (0..filesize) : ( for "
		      "all j in (0..filesize) : ( uint8(i) + uint8(j) < 600 ) ) }\n");
}

static void
write_sized(const char *path, size_t size)
{
	char *body = malloc(size + 1);

	assert_non_null(body);
	memset(body, 'q', size);
	body[size] = '\0';
	tu_write_file(path, body);
	free(body);
}

/* --timeout-verdict deny: a scan over --scan-timeout denies (with a
 * default verdict of allow), is logged with path, size and time, and is
 * never cached: the next open is scanned again. */
static void
scan_timeout_gets_its_verdict_uncached_and_logged(void **state)
{
	const char *extra[] = { "--scan-timeout", "1", "--timeout-verdict", "deny",
				NULL };
	uint64_t v[SCANNER_CTR_COUNT_];
	char expect[512];

	(void)state;
	write_slow_rule();
	write_sized(at("slow"), 30000);
	daemon_start(false);
	svc_start(extra);
	assert_int_equal(try_open(at("slow")), EPERM);
	assert_int_equal(try_open(at("slow")), EPERM);
	/* at least once per open */
	assert_true(svc_stat("timeouts") >= 2);
	snprintf(expect, sizeof(expect),
		 "scanner: unscanned limit=timeout verdict=deny path=%s size=30000 ms=",
		 at("slow"));
	EXPECT_LOG(slog, expect);
	EXPECT_LOG(slog, "cached=no");
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_policy_verdicts], 2);
	assert_int_equal(v[SCANNER_CTR_cache_hits], 0);
}

/* By default a timeout gets the filter's default verdict (deny here). */
static void
scan_timeout_defaults_to_the_filters_default(void **state)
{
	const char *extra[] = { "--scan-timeout", "1", NULL };
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	write_slow_rule();
	write_sized(at("slow"), 30000);
	daemon_start(true);
	svc_start(extra);
	assert_int_equal(try_open(at("slow")), EPERM);
	EXPECT_LOG(slog, "limit=timeout verdict=default");
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_service_errors], 1);
	assert_int_equal(v[SCANNER_CTR_policy_verdicts], 0);
}

/* --oversize allow (an operator's explicit choice, with default deny):
 * allowed each time, scanned each time, logged each time. */
static void
oversize_allow_is_never_cached_and_logged(void **state)
{
	const char *extra[] = { "--max-size", "1K", "--oversize", "allow", NULL };
	uint64_t v[SCANNER_CTR_COUNT_];
	char expect[512];

	(void)state;
	tu_write_file(rules, "rule any_q { strings: $q = \"qqqq\" condition: $q }\n");
	write_sized(at("big"), 4096);
	daemon_start(true);
	svc_start(extra);
	assert_int_equal(try_open(at("big")), 0);
	assert_int_equal(try_open(at("big")), 0);
	assert_int_equal(svc_stat("oversize"), 2);
	snprintf(expect, sizeof(expect),
		 "scanner: unscanned limit=oversize verdict=allow path=%s size=4096 ms=0 "
		 "op=open",
		 at("big"));
	assert_true(tu_wait_in_file(slog, expect, 2, WAIT_MS));
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_policy_verdicts], 2);
	assert_int_equal(v[SCANNER_CTR_cache_hits], 0);
}

/* ---- self-test ---- */

/* --self-test passes through the running daemon, filter and service
 * with any rule set (the service's built-in EICAR rule), and says why it
 * fails: a directory not watched, no rule for EICAR (--no-eicar and none
 * loaded), no daemon. */
static void
self_test_reports_pass_and_each_failure(void **state)
{
	char *argv[] = { (char *)scanner_bin,
			 "--self-test",
			 "--runtime-dir",
			 rundir,
			 "--scratch",
			 watch,
			 NULL };
	const char *no_eicar[] = { "--no-eicar", NULL };
	char *out;
	int rc;

	(void)state;
	/* no daemon */
	assert_int_equal(run(argv, &out), 3);
	free(out);
	tu_write_file(rules, "rule nothing { condition: false }\n");
	daemon_start(true);
	svc_start(NULL);
	EXPECT_LOG(slog, "and the built-in EICAR test rule");
	assert_int_equal(run(argv, &out), 0);
	if (!strstr(out, "self-test: PASS"))
		fail_msg("%s", out);
	free(out);
	/* a directory the filter does not watch */
	argv[5] = scratch;
	assert_int_equal(run(argv, &out), 6);
	if (!strstr(out, "the filter saw no open"))
		fail_msg("%s", out);
	free(out);
	argv[5] = watch;
	/* no rule for EICAR at all */
	kill(svc_pid, SIGTERM);
	rc = tu_expect_exit(svc_pid, WAIT_MS);
	svc_pid = 0;
	assert_int_equal(rc, 0);
	svc_start(no_eicar);
	assert_int_equal(run(argv, &out), 6);
	if (!strstr(out, "found it clean"))
		fail_msg("%s", out);
	free(out);
}

/* ---- the protocol ---- */

/* A reply's flags: NO_CACHE decodes, an unknown flag makes the reply
 * malformed (the filter's default verdict, never a more permissive one). */
static void
reply_with_an_unknown_flag_is_malformed(void **state)
{
	uint8_t buf[SCANNER_REPLY_SIZE];

	(void)state;
	scanner_reply_encode_flags(SCANNER_CLEAN, SCANNER_REPLY_NO_CACHE, buf);
	assert_int_equal(scanner_reply_decode(buf, sizeof(buf)), SCANNER_CLEAN);
	assert_int_equal(scanner_reply_flags(buf), SCANNER_REPLY_NO_CACHE);
	scanner_reply_encode(SCANNER_INFECTED, buf);
	assert_int_equal(scanner_reply_decode(buf, sizeof(buf)), SCANNER_INFECTED);
	assert_int_equal(scanner_reply_flags(buf), 0);
	buf[5] = 0x80;
	assert_int_equal(scanner_reply_decode(buf, sizeof(buf)), -1);
	buf[5] = 0;
	buf[6] = 1;
	assert_int_equal(scanner_reply_decode(buf, sizeof(buf)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reply_with_an_unknown_flag_is_malformed),
		cmocka_unit_test_setup_teardown(actions_follow_rule_metadata, setup,
						teardown),
		cmocka_unit_test_setup_teardown(report_only_denies_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			broken_rule_file_is_counted_and_the_rest_scans, setup, teardown),
		cmocka_unit_test_setup_teardown(
			log_line_and_json_name_rule_path_process_and_metadata, setup,
			teardown),
		cmocka_unit_test_setup_teardown(journal_gets_structured_fields, setup,
						teardown),
		cmocka_unit_test_setup_teardown(external_variables_come_from_the_request,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			scan_timeout_gets_its_verdict_uncached_and_logged, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			scan_timeout_defaults_to_the_filters_default, setup, teardown),
		cmocka_unit_test_setup_teardown(oversize_allow_is_never_cached_and_logged,
						setup, teardown),
		cmocka_unit_test_setup_teardown(self_test_reports_pass_and_each_failure,
						setup, teardown),
	};
	int r;

	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	scanner_bin = getenv("FLTMGR_TEST_SCANNER");
	scanner_so = getenv("FLTMGR_TEST_SCANNER_SO");
	if (geteuid() != 0) {
		printf("test_scanner_policy: SKIP: needs root (fanotify, root-owned "
		       "filter objects)\n");
		return 77;
	}
	if (!fltmgrd_bin || !scanner_bin || !scanner_so) {
		printf("test_scanner_policy: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_SCANNER "
		       "and FLTMGR_TEST_SCANNER_SO must be set (meson test sets "
		       "them)\n");
		return 1;
	}
	r = tu_private_scratch("test_scanner_policy", scratch, "fltmgr-policy", 64);
	if (r != 0)
		return r;
	unsetenv("FLTMGR_RUNTIME_DIR");
	unsetenv("JOURNAL_STREAM");
	if (getenv("FLTMGR_TEST_ONLY"))
		cmocka_set_test_filter(getenv("FLTMGR_TEST_ONLY"));
	r = cmocka_run_group_tests(tests, NULL, NULL);
	tu_private_scratch_remove(scratch);
	return r;
}
