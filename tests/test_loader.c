/* SPDX-License-Identifier: MIT */
/*
 * test_loader.c — loading filters from shared objects: a root-owned,
 * unwritable object loads and registers; anything others could have
 * written is refused with a message that says why (root only: the checks
 * are about ownership).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/loader.h"
#include "testutil.h"

static char dir[64];
static flt_manager *m;

static void
copy_file(const char *from, const char *to)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

static int
setup(void **state)
{
	char obj[128];

	(void)state;
	if (geteuid() != 0)
		return 0;
	snprintf(dir, sizeof(dir), "/tmp/fltmgr-load.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	snprintf(obj, sizeof(obj), "%s/tf.so", dir);
	copy_file(getenv("FLTMGR_TEST_FILTER"), obj);
	assert_int_equal(chmod(obj, 0644), 0);
	tu_runtime_dir_create();
	m = tu_manager_new();
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (geteuid() != 0)
		return 0;
	flt_manager_free(m);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	tu_runtime_dir_remove();
	return 0;
}

/* Loads [filter tf] with extra config lines; returns the result. */
static int
load(const char *extra, struct loaded_filter *lf, char **why)
{
	char text[512];
	struct cfg *c = NULL;
	char *err = NULL;
	int r;

	snprintf(text, sizeof(text), "[filter tf]\naltitude = 123\n%s", extra);
	assert_int_equal(cfg_parse_string("t.conf", text, &c, &err), 0);
	r = filter_load(m, dir, &c->filters[0], lf, why);
	cfg_free(c);
	return r;
}

static void
expect_refused(const char *extra, int err, const char *reason)
{
	struct loaded_filter lf = { 0 };
	char *why = NULL;

	assert_int_equal(load(extra, &lf, &why), err);
	assert_non_null(why);
	if (!strstr(why, reason))
		fail_msg("expected '%s' in '%s'", reason, why);
	free(why);
	assert_null(lf.filter);
}

#define NEED_ROOT()                                                             \
	do {                                                                    \
		if (geteuid() != 0) {                                           \
			print_message("skipped: ownership checks need root\n"); \
			skip();                                                 \
		}                                                               \
	} while (0)

static void
root_owned_object_loads_and_registers(void **state)
{
	struct loaded_filter lf = { 0 };
	char *why = NULL;

	(void)state;
	NEED_ROOT();
	assert_int_equal(load("object = tf.so\n", &lf, &why), 0);
	assert_null(why);
	assert_non_null(lf.filter);
	assert_string_equal(flt_filter_name(lf.filter), "tf");
	assert_string_equal(flt_filter_altitude(lf.filter), "123");
	filter_unload(&lf);
	assert_null(lf.filter);
}

static void
writable_or_foreign_objects_are_refused(void **state)
{
	char obj[128];

	(void)state;
	NEED_ROOT();
	snprintf(obj, sizeof(obj), "%s/tf.so", dir);
	assert_int_equal(chmod(obj, 0666), 0);
	expect_refused("object = tf.so\n", -EPERM,
		       "is writable by group or others (mode 0666)");
	assert_int_equal(chmod(obj, 0664), 0);
	expect_refused("object = tf.so\n", -EPERM, "(mode 0664)");
	assert_int_equal(chmod(obj, 0644), 0);
	assert_int_equal(chown(obj, 1000, 1000), 0);
	expect_refused("object = tf.so\n", -EPERM,
		       "is not owned by root (owner uid 1000)");
	assert_int_equal(chown(obj, 0, 0), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	expect_refused("object = tf.so\n", -EPERM, "on the path of filter object");
	assert_int_equal(chmod(dir, 01777), 0); /* sticky, and tf.so is root's */
	{
		struct loaded_filter lf = { 0 };
		char *why = NULL;

		assert_int_equal(load("object = tf.so\n", &lf, &why), 0);
		filter_unload(&lf);
	}
	assert_int_equal(chmod(dir, 0755), 0);
}

/* Every directory on the way counts, not only the object's own: a
 * group-writable one above it, or one another user owns. */
static void
ancestors_of_an_object_are_checked(void **state)
{
	char sub[128], obj[160];

	(void)state;
	NEED_ROOT();
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(obj, sizeof(obj), "%s/tf.so", sub);
	copy_file(getenv("FLTMGR_TEST_FILTER"), obj);
	assert_int_equal(chmod(obj, 0644), 0);
	assert_int_equal(chmod(dir, 0775), 0);
	expect_refused("object = sub/tf.so\n", -EPERM, "writable by group or others");
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chown(dir, 1000, 1000), 0);
	expect_refused("object = sub/tf.so\n", -EPERM, "is not owned by root");
	assert_int_equal(chown(dir, 0, 0), 0);
}

/* An object cut short (being copied in place) is refused before dlopen()
 * maps it: this process would die of SIGBUS otherwise. */
static void
cut_short_object_is_refused(void **state)
{
	const char *so = getenv("FLTMGR_TEST_FILTER");
	int in = open(so, O_RDONLY | O_CLOEXEC), out;
	char obj[128], buf[1 << 16];
	Elf64_Ehdr eh;
	off_t cut = 0;

	(void)state;
	NEED_ROOT();
	assert_true(in >= 0);
	assert_int_equal(pread(in, &eh, sizeof(eh), 0), (ssize_t)sizeof(eh));
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		assert_int_equal(
			pread(in, &ph, sizeof(ph),
			      (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize)),
			(ssize_t)sizeof(ph));
		if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
			cut = (off_t)(ph.p_offset + ph.p_filesz / 2);
	}
	assert_true(cut > 0 && cut <= (off_t)sizeof(buf));
	assert_int_equal(pread(in, buf, (size_t)cut, 0), (ssize_t)cut);
	close(in);
	snprintf(obj, sizeof(obj), "%s/cut.so", dir);
	out = open(obj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(out >= 0);
	assert_int_equal(write(out, buf, (size_t)cut), (ssize_t)cut);
	close(out);
	expect_refused("object = cut.so\n", -ENOEXEC, "cut short");
	expect_refused("object = cut.so\n", -ENOEXEC, obj);
}

static void
missing_bad_and_refusing_objects(void **state)
{
	char obj[128];

	(void)state;
	NEED_ROOT();
	expect_refused("object = nothere.so\n", -ENOENT, "cannot open: No such file");
	snprintf(obj, sizeof(obj), "%s/noentry.so", dir);
	copy_file(getenv("FLTMGR_TEST_NOENTRY"), obj);
	assert_int_equal(chmod(obj, 0644), 0);
	expect_refused("object = noentry.so\n", -ENOEXEC, "has no fltmgr_filter_entry");
	snprintf(obj, sizeof(obj), "%s/junk.so", dir);
	{
		int fd = open(obj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "not an ELF object\n", 18), 18);
		close(fd);
	}
	expect_refused("object = junk.so\n", -ENOEXEC, "not a whole shared object");
	expect_refused("object = tf.so\nparam.refuse = 13\n", -EACCES,
		       "filter tf refused to load: Permission denied");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(root_owned_object_loads_and_registers),
		T(writable_or_foreign_objects_are_refused),
		T(missing_bad_and_refusing_objects),
		T(ancestors_of_an_object_are_checked),
		T(cut_short_object_is_refused),
#undef T
	};

	if (!getenv("FLTMGR_TEST_FILTER") || !getenv("FLTMGR_TEST_NOENTRY")) {
		fprintf(stderr,
			"test_loader: FLTMGR_TEST_FILTER and FLTMGR_TEST_NOENTRY are "
			"not set; run it with `meson test test_loader`\n");
		return 1;
	}
	return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
