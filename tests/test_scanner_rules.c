/* SPDX-License-Identifier: MIT */
/*
 * test_scanner_rules.c — how the scanner service loads a rule set
 * (filters/scanner/service/rules.c, externals.c), through the real
 * `scanner --rules PATH --check`: no daemon, no root. Rule files are
 * written by each test into its own directory under a scratch directory;
 * a compiled file is made with libyara's own compiler API (what yarac
 * does), so that no test depends on the yara tools being installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yara.h>

#include "testutil.h"

static const char *scanner_bin;
static char scratch[] = "/tmp/fltmgr-rules.XXXXXX";
static char dir[PATH_MAX];

static void
write_file(const char *rel, const char *text)
{
	char path[PATH_MAX * 2], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	/* parents */
	for (slash = strchr(path + strlen(dir) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		(void)mkdir(path, 0755);
		*slash = '/';
	}
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Runs `scanner --check --rules dir/rel extra...`; its exit status, and
 * what it printed on stderr in *ret_err (the caller frees it). */
static int
check(const char *rel, const char *const extra[], char **ret_err)
{
	char rules[PATH_MAX * 2], errpath[PATH_MAX * 2];
	const char *argv[24] = { scanner_bin, "--check", "--rules", rules };
	int n = 4, st;
	pid_t pid;

	snprintf(rules, sizeof(rules), "%s%s%s", dir, *rel ? "/" : "", rel);
	snprintf(errpath, sizeof(errpath), "%s.err", dir);
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execv(scanner_bin, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	{
		FILE *f = fopen(errpath, "re");
		char *buf = calloc(1, 1 << 16);

		assert_non_null(f);
		assert_non_null(buf);
		(void)!fread(buf, 1, (1 << 16) - 1, f);
		fclose(f);
		*ret_err = buf;
	}
	return WEXITSTATUS(st);
}

#define EXPECT_IN(text, needle)                                                \
	do {                                                                   \
		if (!strstr((text), (needle)))                                 \
			fail_msg("expected \"%s\" in:\n%s", (needle), (text)); \
	} while (0)
#define EXPECT_NOT_IN(text, needle)                                                  \
	do {                                                                         \
		if (strstr((text), (needle)))                                        \
			fail_msg("did not expect \"%s\" in:\n%s", (needle), (text)); \
	} while (0)

static int
setup(void **state)
{
	static int n;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/t%d", scratch, n++);
	assert_int_equal(mkdir(dir, 0755), 0);
	return 0;
}

/* ---- namespaces ---- */

/* Two vendors' files both define rule `dup`: each file is a namespace of
 * its own, so both load. */
static void
colliding_rule_names_in_two_files_both_load(void **state)
{
	char *err;

	(void)state;
	write_file("vendor-a.yar", "rule dup { strings: $a = \"aaaa\" condition: $a }\n");
	write_file("vendor-b.yar", "rule dup { strings: $b = \"bbbb\" condition: $b }\n");
	assert_int_equal(check("", NULL, &err), 0);
	EXPECT_IN(err, "loaded 2 rules from 2 of 2 files");
	EXPECT_NOT_IN(err, "error");
	free(err);
}

/* --namespace folder: files of one top-level folder share a namespace
 * (rules of one file may use private rules of another), so the same
 * collision there is an error in the second file, which is left out;
 * two folders do not collide. */
static void
folder_namespace_shares_within_a_folder_only(void **state)
{
	const char *folder[] = { "--namespace", "folder", NULL };
	char *err;

	(void)state;
	write_file("a/1-common.yar", "private rule is_x { condition: true }\n");
	write_file("a/2-uses.yar", "rule uses { condition: is_x }\n");
	write_file("b/dup.yar", "rule uses { condition: true }\n");
	assert_int_equal(check("", folder, &err), 0);
	EXPECT_IN(err, "loaded 3 rules from 3 of 3 files");
	free(err);
	/* Per file, the private rule of another file is out of reach. */
	assert_int_equal(check("", NULL, &err), 0);
	EXPECT_IN(err, "2-uses.yar:1: error: undefined identifier \"is_x\"");
	EXPECT_IN(err, "1 of 3 files FAILED");
	free(err);
	/* Colliding within one folder. */
	write_file("b/dup2.yar", "rule uses { condition: false }\n");
	assert_int_equal(check("", folder, &err), 0);
	EXPECT_IN(err, "dup2.yar:1: error: duplicated identifier \"uses\"");
	EXPECT_IN(err, "left out: ");
	EXPECT_IN(err, "loaded 3 rules from 3 of 4 files");
	free(err);
}

/* --namespace folder after a failure: each later file is tried alone
 * first, but one whose only errors alone are undefined identifiers may
 * use a private rule of an earlier file of its folder, and still loads;
 * every bad file is reported. */
static void
folder_namespace_failures_keep_private_rules_of_siblings(void **state)
{
	const char *folder[] = { "--namespace", "folder", NULL };
	char *err;

	(void)state;
	write_file("a/0-bad.yar", "rule bad0 { condition: true and }\n");
	write_file("a/1-common.yar", "private rule is_x { condition: true }\n");
	write_file("a/2-uses.yar", "rule uses { condition: is_x }\n");
	write_file("a/3-module.yar",
		   "import \"no_such_module\"\nrule m { condition: true }\n");
	write_file("a/4-undef.yar", "rule u { condition: no_such_rule }\n");
	write_file("a/5-last.yar", "rule last { condition: false }\n");
	assert_int_equal(check("", folder, &err), 0);
	EXPECT_IN(err, "0-bad.yar:1: error");
	EXPECT_IN(err, "3-module.yar:1: error: unknown module");
	EXPECT_IN(err, "4-undef.yar:1: error: undefined identifier \"no_such_rule\"");
	EXPECT_NOT_IN(err, "2-uses.yar");
	EXPECT_IN(err, "loaded 3 rules from 3 of 6 files");
	free(err);
}

/* An index file (only include directives): each included file becomes
 * a unit of its own, with its own namespace. */
static void
index_file_includes_load_each_in_its_namespace(void **state)
{
	char *err;

	(void)state;
	write_file("set/x/one.yar", "rule dup { condition: false }\n");
	write_file("set/y/two.yar", "rule dup { condition: false }\n");
	write_file("set/index.yar", "/* generated */\ninclude \"./x/one.yar\"\n"
				    "// the second\ninclude \"y/two.yar\"\n");
	assert_int_equal(check("set/index.yar", NULL, &err), 0);
	EXPECT_IN(err, "loaded 2 rules from 2 of 2 files");
	free(err);
}

/* A directory is read recursively; index files in it are skipped (the
 * files they include are in the tree), dot-files and other names too. */
static void
directory_tree_is_read_recursively(void **state)
{
	char *err;

	(void)state;
	write_file("top.yar", "rule top { condition: false }\n");
	write_file("d1/d2/d3/deep.yara", "rule deep { condition: false }\n");
	write_file("d1/index.yar", "include \"d2/d3/deep.yara\"\n");
	write_file("d1/.hidden.yar", "this is not yara\n");
	write_file("d1/README.md", "this is not yara either\n");
	{
		/* a link back up is not followed */
		char link[PATH_MAX * 2];

		snprintf(link, sizeof(link), "%s/d1/d2/up", dir);
		assert_int_equal(symlink("../..", link), 0);
	}
	assert_int_equal(check("", NULL, &err), 0);
	EXPECT_IN(err, "loaded 2 rules from 2 of 2 files");
	EXPECT_IN(err, "1 index files skipped");
	EXPECT_IN(err, "d2/up: a link back to a directory above; not read");
	free(err);
}

/* ---- failures ---- */

/* Every failing file is named in one pass with its error, the rest is
 * loaded, and the summary says so; --strict-rules refuses to start. */
static void
broken_files_among_good_ones_are_all_reported(void **state)
{
	const char *strict[] = { "--strict-rules", NULL };
	char *err;

	(void)state;
	write_file("a-good.yar", "rule good_a { condition: false }\n");
	write_file("b-syntax.yar", "rule b {\n  condition:\n    false and and\n}\n");
	write_file("c-good.yar", "rule good_c { condition: false }\n");
	write_file("d-undef.yar", "rule d {\n  condition:\n    $nope\n}\n");
	write_file("e-good.yar", "rule good_e { condition: false }\n");
	assert_int_equal(check("", NULL, &err), 0);
	EXPECT_IN(err, "b-syntax.yar:3: error");
	EXPECT_IN(err, "d-undef.yar:4: error: undefined string");
	EXPECT_IN(err, "loaded 3 rules from 3 of 5 files");
	EXPECT_IN(err, "2 of 5 files FAILED and are left out");
	EXPECT_IN(err, "left out: ");
	free(err);
	assert_int_equal(check("", strict, &err), 5);
	EXPECT_IN(err, "b-syntax.yar:3: error");
	EXPECT_IN(err, "d-undef.yar:4: error: undefined string");
	EXPECT_IN(err, "nothing is loaded (--strict-rules)");
	free(err);
}

/* Nothing loadable: exit 5, whatever the mode. */
static void
no_loadable_rule_refuses_to_start(void **state)
{
	char *err;

	(void)state;
	write_file("only.yar", "rule x { condition: $a }\n");
	assert_int_equal(check("only.yar", NULL, &err), 5);
	EXPECT_IN(err, "only.yar:1: error");
	EXPECT_IN(err, "no rule loaded");
	free(err);
	write_file("empty/README", "no rules here\n");
	assert_int_equal(check("empty", NULL, &err), 5);
	EXPECT_IN(err, "no rule files");
	free(err);
	/* a FIFO would block the first read for ever */
	{
		char fifo[PATH_MAX * 2];

		snprintf(fifo, sizeof(fifo), "%s/fifo.yar", dir);
		assert_int_equal(mkfifo(fifo, 0600), 0);
	}
	assert_int_equal(check("fifo.yar", NULL, &err), 5);
	EXPECT_IN(err, "fifo.yar: not a regular file or a directory");
	free(err);
}

/* Warnings: one summary line, each one only with --rule-warnings. */
static void
warnings_are_summarised_unless_asked_for(void **state)
{
	const char *verbose[] = { "--rule-warnings", NULL };
	char *err;

	(void)state;
	/* a one-byte string: "may slow down scanning" */
	write_file("slow.yar", "rule slow { strings: $a = \"a\" condition: $a }\n");
	assert_int_equal(check("slow.yar", NULL, &err), 0);
	EXPECT_IN(err, "1 compiler warnings (--rule-warnings prints them)");
	EXPECT_NOT_IN(err, "warning:");
	free(err);
	assert_int_equal(check("slow.yar", verbose, &err), 0);
	EXPECT_IN(err, "slow.yar:1: warning:");
	free(err);
}

/* ---- externals ---- */

/* The built-in external variables compile without any definition, -d
 * ones are typed by their value, and one not defined is an error. */
static void
external_variables_are_declared(void **state)
{
	const char *defs[] = { "-d", "level=3",  "-d", "strict=true",
			       "-d", "site=lab", NULL };
	const char *builtin[] = { "-d", "filename=x", NULL };
	char *err;

	(void)state;
	write_file("ext.yar",
		   "rule thor_style { condition: filename == \"a.exe\" and filepath "
		   "contains \"/tmp\" and extension == \".exe\" and filetype == "
		   "\"EXE\" and owner == \"root\" }\n"
		   "rule user_defined { condition: level > 2 and strict and site == "
		   "\"lab\" }\n");
	assert_int_equal(check("ext.yar", defs, &err), 0);
	EXPECT_IN(err, "loaded 2 rules from 1 of 1 files");
	free(err);
	assert_int_equal(check("ext.yar", NULL, &err), 5);
	EXPECT_IN(err, "undefined identifier \"level\"");
	free(err);
	assert_int_equal(check("ext.yar", builtin, &err), 2);
	EXPECT_IN(err, "defined per scan from the file");
	free(err);
}

/* ---- compiled rules ---- */

/* What yarac does: compile with libyara and save. */
static void
compile_to(const char *rel, const char *source)
{
	char path[PATH_MAX * 2];
	YR_COMPILER *c;
	YR_RULES *r;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(yr_compiler_create(&c), ERROR_SUCCESS);
	assert_int_equal(yr_compiler_define_string_variable(c, "filename", ""),
			 ERROR_SUCCESS);
	assert_int_equal(yr_compiler_add_string(c, source, "compiled_ns"), 0);
	assert_int_equal(yr_compiler_get_rules(c, &r), ERROR_SUCCESS);
	assert_int_equal(yr_rules_save(r, path), ERROR_SUCCESS);
	yr_rules_destroy(r);
	yr_compiler_destroy(c);
}

/* A yarac-compiled file is told by its header, whatever its name, alone
 * or beside source files; a corrupt one is reported and left out. */
static void
compiled_rules_are_detected_and_loaded(void **state)
{
	char *err;

	(void)state;
	compile_to("rules.bin", "rule c1 { condition: filename == \"x\" }\n"
				"rule c2 { condition: false }\n");
	assert_int_equal(check("rules.bin", NULL, &err), 0);
	EXPECT_IN(err, "loaded 2 rules from 1 of 1 files");
	EXPECT_IN(err, "(1 compiled)");
	EXPECT_NOT_IN(err, "syntax error");
	free(err);
	write_file("set/b.yar", "rule c1 { condition: false }\n");
	compile_to("set/a.yarc", "rule c1 { condition: false }\n");
	write_file("set/c.yc", "YARA but not really compiled rules");
	assert_int_equal(check("set", NULL, &err), 0);
	EXPECT_IN(err, "loaded 2 rules from 2 of 3 files");
	EXPECT_IN(err, "c.yc: a compiled rule file this libyara");
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(colliding_rule_names_in_two_files_both_load,
				       setup),
		cmocka_unit_test_setup(folder_namespace_shares_within_a_folder_only,
				       setup),
		cmocka_unit_test_setup(
			folder_namespace_failures_keep_private_rules_of_siblings, setup),
		cmocka_unit_test_setup(index_file_includes_load_each_in_its_namespace,
				       setup),
		cmocka_unit_test_setup(directory_tree_is_read_recursively, setup),
		cmocka_unit_test_setup(broken_files_among_good_ones_are_all_reported,
				       setup),
		cmocka_unit_test_setup(no_loadable_rule_refuses_to_start, setup),
		cmocka_unit_test_setup(warnings_are_summarised_unless_asked_for, setup),
		cmocka_unit_test_setup(external_variables_are_declared, setup),
		cmocka_unit_test_setup(compiled_rules_are_detected_and_loaded, setup),
	};
	char cmd[PATH_MAX + 32];
	int r;

	scanner_bin = getenv("FLTMGR_TEST_SCANNER");
	if (!scanner_bin) {
		printf("test_scanner_rules: FLTMGR_TEST_SCANNER must be set (meson test "
		       "sets it)\n");
		return 1;
	}
	if (!mkdtemp(scratch)) {
		printf("test_scanner_rules: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	if (yr_initialize() != ERROR_SUCCESS)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	yr_finalize();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	if (system(cmd) != 0)
		printf("test_scanner_rules: could not remove %s\n", scratch);
	return r;
}
