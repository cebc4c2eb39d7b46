/* SPDX-License-Identifier: MIT */
/*
 * test_config.c — fltmgrd's configuration parser: a full file parses into
 * the right values, and every kind of mistake is reported with its file
 * and line, all of them in one pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "testutil.h"

static void
full_config_parses(void **state)
{
	const char *text = "; fltmgrd test configuration\n"
			   "[fltmgrd]\n"
			   "runtime_dir = /run/fltmgr-test\n"
			   "log_level = info\n"
			   "\n"
			   "[filter minispy]\n"
			   "altitude = 385100\n"
			   "attach = /home\n"
			   "attach = /srv mount\n"
			   "param.queue_size = 4096\n"
			   "\n"
			   "[filter scanner]\n"
			   "  altitude = 320000.5   ; indented keys are fine\n"
			   "object = libscanner.so\n"
			   "deadline_ms = 3000\n"
			   "default_verdict = deny\n"
			   "attach = / filesystem\n";
	const struct cfg_filter *f;
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string("test.conf", text, &c, &err), 0);
	assert_null(err);
	assert_string_equal(c->runtime_dir, "/run/fltmgr-test");
	assert_null(c->filter_dir);
	assert_int_equal(c->log_level, FLT_LOG_INFO);
	assert_int_equal(c->n_filters, 2);
	f = cfg_find_filter(c, "minispy");
	assert_non_null(f);
	assert_string_equal(f->altitude, "385100");
	assert_string_equal(f->object, "minispy.so");
	assert_int_equal(f->deadline_ms, 0);
	assert_int_equal(f->default_verdict, 0);
	assert_int_equal(f->n_instances, 2);
	assert_string_equal(f->instances[0].path, "/home");
	assert_int_equal(f->instances[0].kind, FLT_INSTANCE_SUBTREE);
	assert_int_equal(f->instances[0].line, 8);
	assert_string_equal(f->instances[1].path, "/srv");
	assert_int_equal(f->instances[1].kind, FLT_INSTANCE_MOUNT);
	assert_int_equal(f->n_params, 1);
	assert_string_equal(f->params[0].key, "queue_size");
	assert_string_equal(f->params[0].value, "4096");
	f = cfg_find_filter(c, "scanner");
	assert_non_null(f);
	assert_string_equal(f->altitude, "320000.5");
	assert_string_equal(f->object, "libscanner.so");
	assert_int_equal(f->deadline_ms, 3000);
	assert_int_equal(f->default_verdict, -EPERM);
	assert_int_equal(f->instances[0].kind, FLT_INSTANCE_FILESYSTEM);
	assert_int_equal(f->line, 12);
	assert_null(cfg_find_filter(c, "nope"));
	cfg_free(c);
}

/* Parses text that must fail and checks `expect` (a "FILE:LINE: ..."
 * fragment) is among the errors. */
static void
expect_error(const char *text, const char *expect)
{
	struct cfg *c = NULL;
	char *err = NULL;

	assert_int_equal(cfg_parse_string("t.conf", text, &c, &err), -EINVAL);
	assert_null(c);
	assert_non_null(err);
	if (!strstr(err, expect))
		fail_msg("expected '%s' in:\n%s", expect, err);
	free(err);
}

static void
each_error_names_file_and_line(void **state)
{
	(void)state;
	expect_error("[fltmgrd]\nbogus = 1\n",
		     "t.conf:2: unknown key 'bogus' in [fltmgrd]");
	expect_error("[fltmgrd]\nlog_level = loud\n", "t.conf:2: log_level must be");
	expect_error("[fltmgrd]\nruntime_dir = run\n",
		     "t.conf:2: runtime_dir must be an absolute");
	expect_error("[weird]\nx = 1\n", "t.conf:1: unknown section [weird]");
	expect_error("x = 1\n", "t.conf:1: 'x' is outside any section");
	expect_error("[filter bad/name]\naltitude = 1\n",
		     "t.conf:1: bad filter name 'bad/name'");
	expect_error("[filter a]\naltitude = 1\n[filter a]\naltitude = 2\n",
		     "t.conf:3: filter a is already defined (line 1)");
	expect_error("[filter a]\naltitude = high\n",
		     "t.conf:2: altitude must be a decimal");
	expect_error("[filter a]\nobject = x.so\n", "t.conf:1: filter a has no altitude");
	expect_error("[filter a]\naltitude = 1\ndeadline_ms = 0\n",
		     "t.conf:3: deadline_ms must be 1..3600000");
	expect_error("[filter a]\naltitude = 1\ndeadline_ms = 5s\n",
		     "t.conf:3: deadline_ms must be 1..3600000");
	expect_error("[filter a]\naltitude = 1\ndefault_verdict = maybe\n",
		     "t.conf:3: default_verdict must be allow or deny");
	expect_error("[filter a]\naltitude = 1\nattach = /x sideways\n",
		     "t.conf:3: attach kind must be subtree, mount or filesystem");
	expect_error("[filter a]\naltitude = 1\nattach = home\n",
		     "t.conf:3: attach path must be absolute");
	expect_error("[filter a]\naltitude = 1\nattach = /x subtree extra\n",
		     "t.conf:3: attach takes PATH");
	expect_error("[filter a]\naltitude = 1\nattach = /x\nattach = /x mount\n",
		     "t.conf:4: filter a is already attached to /x (line 3)");
	expect_error(
		"[filter a]\naltitude = 1\naltitdue = 2\n",
		"t.conf:3: unknown key 'altitdue' in [filter a] (a filter's own settings "
		"are written param.NAME)");
	expect_error("[filter a]\naltitude = 1\nparam.q = 1\nparam.q = 2\n",
		     "t.conf:4: param.q is already set (line 3)");
	expect_error("[filter a]\naltitude = 1\nparam.Q! = 1\n",
		     "t.conf:3: bad parameter name");
	expect_error("[filter a]\naltitude =\n", "t.conf:2: altitude has no value");
	expect_error("[filter a]\naltitude = 1\nobject = ../../evil.so\n",
		     "t.conf:3: bad filter object");
	expect_error("[filter a]\naltitude = 1\nthis line has no equals sign\n",
		     "t.conf:3: syntax error");
}

/* A path with blanks is written in double quotes (\" and \\ inside);
 * unquoted, the error says how. */
/* Syntax errors too are all reported in one pass (libinih alone stops
 * reporting at the first). */
static void
every_syntax_error_in_one_pass(void **state)
{
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(
		cfg_parse_string("t.conf",
				 "[fltmgrd\nlog_level notice\n[filter a]\naltitude = 1\n"
				 "junk line ; with a comment\n; fine\n# fine\n"
				 "[filter b\nattach\n",
				 &c, &err),
		-EINVAL);
	assert_non_null(strstr(err, "t.conf:1: syntax error: a section is [NAME], not "
				    "'[fltmgrd'"));
	assert_non_null(strstr(err, "t.conf:2: syntax error: expected [section] or key = "
				    "value, not 'log_level notice'"));
	assert_non_null(strstr(err, "t.conf:5: syntax error"));
	assert_non_null(strstr(err, "t.conf:8: syntax error: a section is [NAME]"));
	assert_non_null(strstr(err, "t.conf:9: syntax error"));
	assert_null(strstr(err, "t.conf:6:"));
	assert_null(strstr(err, "t.conf:7:"));
	free(err);
}

static void
attach_path_with_blanks_in_quotes(void **state)
{
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string("t.conf",
					  "[filter a]\naltitude = 1\n"
					  "attach = \"/srv/my dir\" mount\n"
					  "attach = \"/srv/a \\\"b\\\" \\\\c\"\n",
					  &c, &err),
			 0);
	assert_int_equal(c->filters[0].n_instances, 2);
	assert_string_equal(c->filters[0].instances[0].path, "/srv/my dir");
	assert_int_equal(c->filters[0].instances[0].kind, FLT_INSTANCE_MOUNT);
	assert_string_equal(c->filters[0].instances[1].path, "/srv/a \"b\" \\c");
	assert_int_equal(c->filters[0].instances[1].kind, FLT_INSTANCE_SUBTREE);
	cfg_free(c);
	c = NULL;
	assert_int_equal(
		cfg_parse_string("t.conf",
				 "[filter a]\naltitude = 1\nattach = /srv/my dir\n"
				 "attach = \"/srv/open\n",
				 &c, &err),
		-EINVAL);
	assert_non_null(strstr(err,
			       "t.conf:3: attach kind must be subtree, mount or "
			       "filesystem, not 'dir' (a path with blanks is written "
			       "in double quotes"));
	assert_non_null(
		strstr(err, "t.conf:4: attach path '\"/srv/open' has no closing"));
	free(err);
}

static void
all_errors_reported_in_one_pass(void **state)
{
	struct cfg *c = NULL;
	char *err = NULL;
	int lines = 0;

	(void)state;
	assert_int_equal(cfg_parse_string("t.conf",
					  "[fltmgrd]\nlog_level = x\n[filter a]\n"
					  "altitude = y\ndefault_verdict = z\n",
					  &c, &err),
			 -EINVAL);
	for (char *p = err; (p = strchr(p, '\n')); p++)
		lines++;
	/* log_level, altitude, verdict; a bad altitude is not also "missing" */
	assert_int_equal(lines, 3);
	assert_non_null(strstr(err, "t.conf:2:"));
	assert_non_null(strstr(err, "t.conf:4:"));
	assert_non_null(strstr(err, "t.conf:5:"));
	assert_null(strstr(err, "has no altitude"));
	free(err);
}

static void
long_lines_are_errors_not_truncated(void **state)
{
	char text[4096];

	(void)state;
	/* libinih's line buffer is 199 characters in Debian's build: a 300
	 * character path is an error that says so, never a truncated path. */
	snprintf(text, sizeof(text), "[filter a]\naltitude = 1\nattach = /%0300d\n", 0);
	expect_error(text, "t.conf:3: line longer than 199 characters");
	snprintf(text, sizeof(text), "[filter a]\naltitude = 1\nattach = /%0150d\n", 0);
	{
		struct cfg *c = NULL;
		char *err = NULL;

		assert_int_equal(cfg_parse_string("t.conf", text, &c, &err), 0);
		assert_int_equal(strlen(c->filters[0].instances[0].path), 151);
		cfg_free(c);
	}
	/* A bad value is an error even after a good one. */
	expect_error("[fltmgrd]\nlog_level = info\nlog_level = loud\n",
		     "t.conf:3: log_level must be");
	/* The boundary: 199 characters is the longest line, whole. */
	snprintf(text, sizeof(text), "[filter a]\naltitude = 1\nattach = /%0189d\n", 0);
	assert_int_equal(strlen(strchr(text + 24, 'a')), 200); /* 199 + newline */
	{
		struct cfg *c = NULL;
		char *err = NULL;

		assert_int_equal(cfg_parse_string("t.conf", text, &c, &err), 0);
		assert_int_equal(strlen(c->filters[0].instances[0].path), 190);
		cfg_free(c);
	}
	snprintf(text, sizeof(text), "[filter a]\naltitude = 1\nattach = /%0190d\n", 0);
	expect_error(text, "t.conf:3: line longer than 199 characters");
}

static void
comparing_filters_for_reload(void **state)
{
	struct cfg *a = NULL, *b = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string("a",
					  "[filter f]\naltitude = 1\nattach = /x\n"
					  "param.k = v\n",
					  &a, &err),
			 0);
	assert_int_equal(cfg_parse_string("b",
					  "[filter f]\naltitude = 1\nattach = /y\n"
					  "param.k = v\n",
					  &b, &err),
			 0);
	assert_true(cfg_filter_same_settings(&a->filters[0], &b->filters[0]));
	assert_false(cfg_filter_same_instances(&a->filters[0], &b->filters[0]));
	cfg_free(b);
	assert_int_equal(cfg_parse_string("b",
					  "[filter f]\naltitude = 1\nattach = /x\n"
					  "param.k = w\n",
					  &b, &err),
			 0);
	assert_false(cfg_filter_same_settings(&a->filters[0], &b->filters[0]));
	assert_true(cfg_filter_same_instances(&a->filters[0], &b->filters[0]));
	cfg_free(a);
	cfg_free(b);
}

static void
load_reports_unreadable_and_binary_files(void **state)
{
	char path[] = "/tmp/fltmgr-cfg.XXXXXX";
	struct cfg *c = NULL;
	char *err = NULL;
	int fd;

	(void)state;
	assert_int_equal(cfg_load("/nonexistent/fltmgr.conf", &c, &err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/fltmgr.conf: cannot open"));
	free(err);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[fltmgrd]\n\0x", 12), 12);
	close(fd);
	assert_int_equal(cfg_load(path, &c, &err), -EINVAL);
	assert_non_null(strstr(err, "not a text file"));
	free(err);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "[filter ok]\naltitude = 5\n", 25), 25);
	close(fd);
	assert_int_equal(cfg_load(path, &c, &err), 0);
	assert_string_equal(c->file, path);
	cfg_free(c);
	unlink(path);
}

/* The automatic attachment keys: what they parse to, what the library is
 * given, and each refusal with its line. */
static void
auto_attach_policy_parses(void **state)
{
	struct flt_auto_attach pol;
	struct cfg *c = NULL;
	const struct cfg_auto *a;
	char *err = NULL, msg[256], *what;

	(void)state;
	assert_int_equal(cfg_parse_string("t.conf",
					  "[filter a]\naltitude = 1\n"
					  "auto_attach = ext4, xfs vfat\n"
					  "auto_attach_kind = mount\n"
					  "auto_attach_mounts = /media/?* /srv\n"
					  "auto_attach_exclude = /boot\n"
					  "auto_attach_pid = 42\n",
					  &c, &err),
			 0);
	a = &c->filters[0].automatic;
	assert_true(cfg_auto_enabled(a));
	assert_int_equal(a->line, 3);
	assert_string_equal(a->fs_types[0], "ext4");
	assert_string_equal(a->fs_types[1], "xfs");
	assert_string_equal(a->fs_types[2], "vfat");
	assert_null(a->fs_types[3]);
	assert_string_equal(a->mounts[1], "/srv");
	assert_string_equal(a->exclude[0], "/boot");
	assert_int_equal(cfg_auto_policy(a, &pol, msg, sizeof(msg)), 0);
	assert_int_equal(pol.kind, FLT_INSTANCE_MOUNT);
	assert_int_equal(pol.ns_pid, 42);
	assert_string_equal(pol.fs_types[1], "xfs");
	assert_string_equal(pol.mount_points[0], "/media/?*");
	what = cfg_auto_describe(a);
	assert_string_equal(what, "ext4 xfs vfat as instances per mount, mount points "
				  "/media/?* /srv, except /boot, in the mount namespace "
				  "of pid 42");
	free(what);
	cfg_free(c);

	/* The default kind is filesystem; none is off; * is any. */
	assert_int_equal(
		cfg_parse_string("t.conf",
				 "[filter a]\naltitude = 1\nauto_attach = *\n"
				 "[filter b]\naltitude = 2\nauto_attach = none\n",
				 &c, &err),
		0);
	assert_int_equal(
		cfg_auto_policy(&c->filters[0].automatic, &pol, msg, sizeof(msg)), 0);
	assert_int_equal(pol.kind, FLT_INSTANCE_FILESYSTEM);
	assert_string_equal(pol.fs_types[0], "*");
	assert_false(cfg_auto_enabled(&c->filters[1].automatic));
	assert_int_equal(
		cfg_auto_policy(&c->filters[1].automatic, &pol, msg, sizeof(msg)), 0);
	assert_null(pol.fs_types);
	/* A change of policy is not a change of settings (no restart). */
	assert_true(cfg_filter_same_settings(&c->filters[0], &c->filters[0]));
	assert_false(cfg_auto_same(&c->filters[0].automatic, &c->filters[1].automatic));
	cfg_free(c);

	expect_error("[filter a]\naltitude = 1\nauto_attach = ext4 subtree!\n",
		     "t.conf:3: auto_attach takes file-system types");
	expect_error("[filter a]\naltitude = 1\nauto_attach = ext4\n"
		     "auto_attach_kind = subtree\n",
		     "t.conf:4: auto_attach_kind must be filesystem or mount");
	expect_error("[filter a]\naltitude = 1\nauto_attach = ext4\n"
		     "auto_attach_mounts = media/*\n",
		     "t.conf:4: auto_attach_mounts takes absolute mount-point patterns");
	expect_error("[filter a]\naltitude = 1\nauto_attach = ext4\n"
		     "auto_attach_pid = -3\n",
		     "t.conf:4: auto_attach_pid takes a process id");
	expect_error("[filter a]\naltitude = 1\nauto_attach_kind = mount\n",
		     "t.conf:3: auto_attach_* settings without auto_attach");
	expect_error("[filter a]\naltitude = 1\nauto_attachh = ext4\n",
		     "t.conf:3: unknown key 'auto_attachh'");
}

/* auto_attach_pid as a file: read when the policy is applied. */
static void
auto_attach_pid_file(void **state)
{
	char path[] = "/tmp/fltmgr-test-pid.XXXXXX", msg[256];
	struct flt_auto_attach pol;
	struct cfg *c = NULL;
	char *err = NULL, *text;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "4242\n", 5), 5);
	close(fd);
	assert_true(asprintf(&text,
			     "[filter a]\naltitude = 1\nauto_attach = ext4\n"
			     "auto_attach_pid = %s\n",
			     path) > 0);
	assert_int_equal(cfg_parse_string("t.conf", text, &c, &err), 0);
	assert_int_equal(
		cfg_auto_policy(&c->filters[0].automatic, &pol, msg, sizeof(msg)), 0);
	assert_int_equal(pol.ns_pid, 4242);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "none\n", 5), 5);
	close(fd);
	assert_int_equal(
		cfg_auto_policy(&c->filters[0].automatic, &pol, msg, sizeof(msg)),
		-EINVAL);
	assert_non_null(strstr(msg, "does not hold a process id"));
	unlink(path);
	assert_true(cfg_auto_policy(&c->filters[0].automatic, &pol, msg, sizeof(msg)) ==
		    -ENOENT);
	assert_non_null(strstr(msg, "cannot open"));
	cfg_free(c);
	free(text);
}

static void
notification_hold_is_checked_and_defaults_when_absent(void **state)
{
	const char *bad[] = { "-1", "100001", "1ms", "1e3" };
	struct cfg *c = NULL;
	char *err = NULL, text[128];

	(void)state;
	assert_int_equal(
		cfg_parse_string("t.conf", "[fltmgrd]\nlog_level = info\n", &c, &err), 0);
	assert_false(c->notification_hold_set); /* the daemon's default applies */
	cfg_free(c);
	c = NULL;
	assert_int_equal(cfg_parse_string("t.conf",
					  "[fltmgrd]\nnotification_hold_us = 0\n", &c,
					  &err),
			 0);
	assert_true(c->notification_hold_set);
	assert_int_equal(c->notification_hold_us, 0);
	cfg_free(c);
	c = NULL;
	assert_int_equal(cfg_parse_string("t.conf",
					  "[fltmgrd]\nnotification_hold_us = 100000\n",
					  &c, &err),
			 0);
	assert_int_equal(c->notification_hold_us, 100000);
	cfg_free(c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = NULL;
		err = NULL;
		snprintf(text, sizeof(text), "[fltmgrd]\nnotification_hold_us = %s\n",
			 bad[i]);
		assert_true(cfg_parse_string("t.conf", text, &c, &err) < 0);
		assert_null(c);
		assert_non_null(err);
		if (!strstr(err, "t.conf:2: notification_hold_us must be 0 to 100000"))
			fail_msg("'%s': %s", bad[i], err);
		free(err);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(full_config_parses),
		cmocka_unit_test(notification_hold_is_checked_and_defaults_when_absent),
		cmocka_unit_test(each_error_names_file_and_line),
		cmocka_unit_test(all_errors_reported_in_one_pass),
		cmocka_unit_test(attach_path_with_blanks_in_quotes),
		cmocka_unit_test(every_syntax_error_in_one_pass),
		cmocka_unit_test(long_lines_are_errors_not_truncated),
		cmocka_unit_test(comparing_filters_for_reload),
		cmocka_unit_test(load_reports_unreadable_and_binary_files),
		cmocka_unit_test(auto_attach_policy_parses),
		cmocka_unit_test(auto_attach_pid_file),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
