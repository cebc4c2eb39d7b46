/* SPDX-License-Identifier: MIT */
/*
 * test_failclosed_paths.c — paths that hide a file from a SUBTREE
 * instance: a path deeper than PATH_MAX (also with the path on request),
 * renames out of the subtree and back racing the engine, a hard link
 * outside the subtree planting a cache entry (docs/security.md section
 * 11: rows 1 and 11, and the hard link row).
 *
 * An unprivileged user (uid/gid 65534, in a forked child) must not get a
 * marked file past a filter whose verdict is deny; root only. The test
 * filter, the attacker's children and each test's setup:
 * failclosed_fixture.h.
 */
#include "failclosed_fixture.h"

/* ---- the test filters ---- */

static enum flt_preop_status
passthrough_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)d;
	(void)ic;
	(void)cc;
	atomic_fetch_add(&passthrough_calls, 1);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

/* ==== 1. a path longer than PATH_MAX ==== */

#define DEEP_LEVELS   24
#define DEEP_NAME_LEN 200

/* The directory DEEP_LEVELS below base (created with mkdirat when asked),
 * reached one component at a time: its full path cannot be passed. */
static int
deep_dir(const char *base, bool create)
{
	char name[DEEP_NAME_LEN + 1];
	int dfd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);

	memset(name, 'd', DEEP_NAME_LEN);
	name[DEEP_NAME_LEN] = '\0';
	for (int i = 0; i < DEEP_LEVELS && dfd >= 0; i++) {
		int nd;

		if (create && mkdirat(dfd, name, 0777) < 0 && errno != EEXIST) {
			close(dfd);
			return -1;
		}
		nd = openat(dfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		close(dfd);
		dfd = nd;
	}
	return dfd;
}

static int
atk_build_deep(void *arg)
{
	int dfd = deep_dir(arg, true), r;

	if (dfd < 0)
		return R_ERRNO(errno);
	r = put_at(dfd, "file", C_TEXT_MARKED, 0644);
	if (r == 0)
		r = put_at(dfd, "prog", C_PROG_MARKED, 0755);
	close(dfd);
	return r < 0 ? R_ERRNO(-r) : 0;
}

static int
kid_open_deep(void *arg)
{
	int dfd = deep_dir(arg, false), r;

	if (dfd < 0)
		return R_ERRNO(errno);
	r = open_code_at(dfd, "file");
	close(dfd);
	return r;
}

static int
kid_exec_deep(void *arg)
{
	int dfd = deep_dir(arg, false);
	char *argv[] = { "prog", NULL };
	char *envp[] = { NULL };

	if (dfd < 0)
		return R_ERRNO(errno);
	syscall(SYS_execveat, dfd, "prog", argv, envp, 0);
	return R_ERRNO(errno);
}

static void
long_path_inside_subtree_is_filtered(void **state)
{
	const char *w = at("watched");
	struct stat sf, sp;
	int dfd, o, e, nf, np;
	size_t len = strlen(w) + (size_t)DEEP_LEVELS * (DEEP_NAME_LEN + 1) + 5;

	(void)state;
	NEED_ROOT();
	marker_filter(w, FLT_INSTANCE_SUBTREE);
	put(at("watched/plain"), C_TEXT_MARKED, 0);
	expect_plain_denial(at("watched/plain"), NULL);

	assert_int_equal(run_kid(true, atk_build_deep, (void *)w), 0);
	dfd = deep_dir(w, false);
	assert_true(dfd >= 0);
	assert_int_equal(fstatat(dfd, "file", &sf, 0), 0);
	assert_int_equal(fstatat(dfd, "prog", &sp, 0), 0);
	close(dfd);
	assert_int_equal(sf.st_uid, NOBODY);

	o = run_kid(false, kid_open_deep, (void *)w);
	e = run_kid(false, kid_exec_deep, (void *)w);
	nf = asked_ino(sf.st_dev, sf.st_ino);
	np = asked_ino(sp.st_dev, sp.st_ino);
	print_message("path length %zu (> PATH_MAX %d): root's open %s, exec %s; filter "
		      "asked %d time(s) about the file, %d about the program\n",
		      len, PATH_MAX, code_str(o), code_str(e), nf, np);
	assert_true(denied(o));
	assert_true(denied(e));
	assert_true(nf > 0);
	assert_true(np > 0);
}

/* The same file through a filter that takes its path on request
 * (FLT_REGISTRATION_PATH_ON_REQUEST): flt_event_path() finds no path and
 * says so (FLT_EVENT_PATH_UNKNOWN), as the eager path did, and the file
 * is still filtered, on a FILESYSTEM instance (no scope needs the path)
 * and on a SUBTREE one (the scope cannot place it: uncertain, inside). */
static atomic_int lazy_calls, lazy_null_unknown;

static enum flt_preop_status
lazy_marker_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	const char *p = flt_event_path(d);

	atomic_fetch_add(&lazy_calls, 1);
	if (!p && (d->flags & FLT_EVENT_PATH_UNKNOWN))
		atomic_fetch_add(&lazy_null_unknown, 1);
	return marker_pre(d, ic, cc);
}

static void
long_path_on_request(enum flt_instance_kind kind)
{
	const char *w = at("watched");
	struct stat sf;
	int dfd, o, e, nf;

	atomic_store(&lazy_calls, 0);
	atomic_store(&lazy_null_unknown, 0);
	start_filter("marker", "300000", lazy_marker_pre, DEADLINE_MS,
		     FLT_REGISTRATION_CACHE_VERDICTS | FLT_REGISTRATION_PATH_ON_REQUEST,
		     w, kind);
	put(at("watched/plain"), C_TEXT_MARKED, 0);
	expect_plain_denial(at("watched/plain"), NULL);
	assert_int_equal(run_kid(true, atk_build_deep, (void *)w), 0);
	dfd = deep_dir(w, false);
	assert_true(dfd >= 0);
	assert_int_equal(fstatat(dfd, "file", &sf, 0), 0);
	close(dfd);
	atomic_store(&lazy_calls, 0);
	atomic_store(&lazy_null_unknown, 0);
	o = run_kid(false, kid_open_deep, (void *)w);
	e = run_kid(false, kid_exec_deep, (void *)w);
	nf = asked_ino(sf.st_dev, sf.st_ino);
	print_message("%s instance, path on request: open %s, exec %s; %d callback(s), "
		      "%d with no path and FLT_EVENT_PATH_UNKNOWN\n",
		      kind == FLT_INSTANCE_SUBTREE ? "SUBTREE" : "FILESYSTEM",
		      code_str(o), code_str(e), atomic_load(&lazy_calls),
		      atomic_load(&lazy_null_unknown));
	assert_true(denied(o));
	assert_true(denied(e));
	assert_true(nf > 0);
	/* Every callback here was about the deep file or program. */
	assert_true(atomic_load(&lazy_calls) > 0);
	assert_int_equal(atomic_load(&lazy_null_unknown), atomic_load(&lazy_calls));
}

static void
long_path_on_request_filesystem_instance_is_filtered(void **state)
{
	(void)state;
	NEED_ROOT();
	long_path_on_request(FLT_INSTANCE_FILESYSTEM);
}

static void
long_path_on_request_subtree_instance_is_filtered(void **state)
{
	(void)state;
	NEED_ROOT();
	long_path_on_request(FLT_INSTANCE_SUBTREE);
}

/* ==== 6. renaming out of the subtree and back ==== */

#define RACE_MS 2500

struct race_job {
	int n;                                  /* pairs renamed back and forth */
	char in[2][PATH_MAX], out[2][PATH_MAX]; /* watched/..., side/... */
	char file[PATH_MAX], prog[PATH_MAX];    /* what root opens, executes */
	int64_t end;
};

static int
atk_rename_loop(void *arg)
{
	struct race_job *j = arg;

	while (tu_now_ms() < j->end) {
		for (int dir = 0; dir < 2; dir++) {
			for (int i = 0; i < j->n; i++) {
				const char *from = dir ? j->out[i] : j->in[i];
				const char *to = dir ? j->in[i] : j->out[i];

				if (rename(from, to) == 0)
					atomic_fetch_add(&shm->renames, 1);
				else
					atomic_fetch_add(&shm->rename_errors, 1);
			}
		}
	}
	return 0;
}

static int
kid_open_loop(void *arg)
{
	struct race_job *j = arg;

	while (tu_now_ms() < j->end) {
		int r = open_code_at(AT_FDCWD, j->file);

		atomic_fetch_add(&shm->open_attempts, 1);
		if (r == R_WIN || r == R_CLEAN)
			atomic_fetch_add(&shm->opened, 1);
		if (r == R_WIN)
			atomic_fetch_add(&shm->marked, 1);
	}
	return 0;
}

static int
kid_exec_loop(void *arg)
{
	struct race_job *j = arg;

	while (tu_now_ms() < j->end) {
		atomic_fetch_add(&shm->exec_attempts, 1);
		if (exec_code_at(AT_FDCWD, j->prog) == R_WIN)
			atomic_fetch_add(&shm->exec_ran, 1);
	}
	return 0;
}

/* uid 65534 renames while two root processes open j->file and one
 * executes j->prog, by their paths inside watched/, for RACE_MS. */
static void
rename_race(struct race_job *j, const char *what)
{
	struct kid k[4];

	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	expect_plain_denial(j->file, j->prog);
	j->end = tu_now_ms() + RACE_MS;
	k[0] = kid_start(true, atk_rename_loop, j);
	k[1] = kid_start(false, kid_open_loop, j);
	k[2] = kid_start(false, kid_open_loop, j);
	k[3] = kid_start(false, kid_exec_loop, j);
	for (int i = 0; i < 4; i++)
		assert_int_equal(kid_finish(&k[i], KID_WAIT_MS), 0);
	print_message(
		"%d ms of renames of %s by uid %d (%ld done, %ld failed): root's "
		"opens %ld, opened %ld, marker read %ld; execs %ld, ran %ld; filter "
		"denied %d\n",
		RACE_MS, what, NOBODY, atomic_load(&shm->renames),
		atomic_load(&shm->rename_errors), atomic_load(&shm->open_attempts),
		atomic_load(&shm->opened), atomic_load(&shm->marked),
		atomic_load(&shm->exec_attempts), atomic_load(&shm->exec_ran),
		atomic_load(&marker_denies));
	assert_true(atomic_load(&shm->renames) > 0);
	assert_int_equal(atomic_load(&shm->marked), 0);
	assert_int_equal(atomic_load(&shm->exec_ran), 0);
}

static void
rename_race_out_of_subtree_is_filtered(void **state)
{
	static struct race_job j; /* static: see new_ns_job() */

	(void)state;
	NEED_ROOT();
	memset(&j, 0, sizeof(j));
	j.n = 1;
	snprintf(j.in[0], PATH_MAX, "%s", at("watched/d"));
	snprintf(j.out[0], PATH_MAX, "%s", at("side/d"));
	snprintf(j.file, PATH_MAX, "%s", at("watched/d/file"));
	snprintf(j.prog, PATH_MAX, "%s", at("watched/d/prog"));
	mkdir_mode(j.in[0], 0755, NOBODY);
	put(j.file, C_TEXT_MARKED, 0);
	put(j.prog, C_PROG_MARKED, 0);
	rename_race(&j, "watched/d <-> side/d");
}

/* The same with the files themselves renamed, no directory on their path
 * changing. */
static void
file_rename_race_out_of_subtree_is_filtered(void **state)
{
	static struct race_job j; /* static: see new_ns_job() */

	(void)state;
	NEED_ROOT();
	memset(&j, 0, sizeof(j));
	j.n = 2;
	snprintf(j.in[0], PATH_MAX, "%s", at("watched/file"));
	snprintf(j.out[0], PATH_MAX, "%s", at("side/file"));
	snprintf(j.in[1], PATH_MAX, "%s", at("watched/prog"));
	snprintf(j.out[1], PATH_MAX, "%s", at("side/prog"));
	snprintf(j.file, PATH_MAX, "%s", at("watched/file"));
	snprintf(j.prog, PATH_MAX, "%s", at("watched/prog"));
	put(j.file, C_TEXT_MARKED, NOBODY);
	put(j.prog, C_PROG_MARKED, NOBODY);
	rename_race(&j, "watched/{file,prog} <-> side/{file,prog}");
}

/* ==== 8. a hard link outside the subtree ==== */

struct two_paths {
	char a[PATH_MAX], b[PATH_MAX];
};

static int
atk_link(void *arg)
{
	struct two_paths *p = arg;

	return link(p->a, p->b) < 0 ? R_ERRNO(errno) : 0;
}

static void
hard_link_outside_cannot_plant_a_cache_entry(void **state)
{
	struct flt_engine_stats es0, es;
	struct two_paths p;
	int ol, o, e, n0, n1, pt;

	(void)state;
	NEED_ROOT();
	snprintf(p.a, PATH_MAX, "%s", at("watched/prog"));
	snprintf(p.b, PATH_MAX, "%s", at("side/link"));
	put(p.a, C_PROG_MARKED, NOBODY);
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE); /* A */
	start_filter("passthrough", "200000", passthrough_pre, DEADLINE_MS,
		     FLT_REGISTRATION_CACHE_VERDICTS, scratch, FLT_INSTANCE_FILESYSTEM);
	expect_plain_denial(p.a, p.a);

	assert_int_equal(run_kid(true, atk_link, &p), 0);
	assert_int_equal(flt_manager_get_stats(g_m, &es0), 0);
	pt = atomic_load(&passthrough_calls);
	ol = root_open(p.b); /* outside A's subtree: B alone decides */
	n0 = asked(p.a);
	o = root_open(p.a);
	e = root_exec(p.a);
	n1 = asked(p.a);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message(
		"root's open of side/link: %s (pass-through asked %d time(s), cache "
		"inserts +%llu); then watched/prog: open %s, exec %s; marker filter "
		"asked %d time(s)\n",
		code_str(ol), atomic_load(&passthrough_calls) - pt,
		(unsigned long long)(es.cache_inserts - es0.cache_inserts), code_str(o),
		code_str(e), n1 - n0);
	assert_true(denied(o));
	assert_true(denied(e));
	assert_true(n1 > n0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(long_path_inside_subtree_is_filtered),
		T(long_path_on_request_filesystem_instance_is_filtered),
		T(long_path_on_request_subtree_instance_is_filtered),
		T(rename_race_out_of_subtree_is_filtered),
		T(file_rename_race_out_of_subtree_is_filtered),
		T(hard_link_outside_cannot_plant_a_cache_entry),
#undef T
	};
	int r;

	if (argc == 2) /* a pattern: run only the tests it matches */
		cmocka_set_test_filter(argv[1]);
	r = failclosed_fixture_init("test_failclosed_paths");
	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("failclosed", tests, NULL, NULL);
}
