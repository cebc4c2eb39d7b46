/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_trust.c — what fltmgrd refuses to start with or load:
 * configuration errors, filter objects and configuration files others
 * could change, a cut-short object, an unsafe runtime directory, a
 * second daemon on the same runtime directory.
 *
 * The real fltmgrd and fltmc in a private mount namespace, root only;
 * the daemon, the paths of each test and its setup: daemon_fixture.h.
 */
#include "daemon_fixture.h"

/* ---- configuration errors, writable objects, a second daemon ---- */

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

/* ---- the runtime directory ---- */

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

/* ---- cut-short objects, untrusted paths ---- */

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writable_object_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_second_daemon_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_runtime_directory_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_truncated_object_refused_daemon_stays_up, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_untrusted_config_and_object_paths_refused, setup, teardown),
	};
	int r;

	r = daemon_fixture_init("test_daemon_trust");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	daemon_fixture_fini();
	return r;
}
