/* SPDX-License-Identifier: MIT */
/*
 * test_features.c — the engine on the kernel it has (root only): what the
 * feature probe found, and each degraded mode as that kernel makes it
 * (docs/engine.md section 1.2). Run natively, under qemu on an older
 * kernel (scripts/test-kernel), and with FLTMGR_KERNEL_FEATURES set to the
 * feature sets of older kernels (scripts/test): every case asserts what
 * is reported, what is not, and what is logged, for the feature set the
 * engine has.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "engine/engine.h"
#include "engine/kernel.h"

static bool have_root;
static char fsop_path[PATH_MAX];
static char scratch[64] = "/tmp/fltmgr-feat.XXXXXX";
static char mnt[128];
static flt_manager *g_m;

static int n_recs; /* recorded events (below), under rec_lock */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- the log, captured ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[32768];
static size_t log_len;

static void
log_capture(void *userdata, int level, const char *message)
{
	(void)userdata;
	pthread_mutex_lock(&log_lock);
	log_len += (size_t)snprintf(log_text + log_len, sizeof(log_text) - log_len,
				    "<%d>%s\n", level, message);
	if (log_len >= sizeof(log_text))
		log_len = sizeof(log_text) - 1;
	pthread_mutex_unlock(&log_lock);
}

static bool
logged(const char *what)
{
	bool r;

	pthread_mutex_lock(&log_lock);
	r = strstr(log_text, what) != NULL;
	pthread_mutex_unlock(&log_lock);
	return r;
}

/* ---- fixture ---- */

static int
setup(void **state)
{
	struct flt_manager_options o = { .log_level = FLT_LOG_DEBUG,
					 .log_func = log_capture };

	(void)state;
	if (!have_root)
		return 0;
	snprintf(mnt, sizeof(mnt), "%s/fs.XXXXXX", scratch);
	assert_non_null(mkdtemp(mnt));
	assert_int_equal(mount("fltmgr-test", mnt, "tmpfs", 0, "mode=1777,size=16m"), 0);
	o.runtime_dir = tu_runtime_dir_create();
	log_len = 0;
	log_text[0] = '\0';
	pthread_mutex_lock(&rec_lock);
	n_recs = 0;
	pthread_mutex_unlock(&rec_lock);
	assert_int_equal(flt_manager_new(&o, &g_m), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	flt_manager_free(g_m);
	g_m = NULL;
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	tu_runtime_dir_remove();
	return 0;
}

#define NEED_ROOT()                                                                      \
	do {                                                                             \
		if (!have_root) {                                                        \
			print_message("skipped: fanotify needs root (CAP_SYS_ADMIN)\n"); \
			skip();                                                          \
		}                                                                        \
	} while (0)

/* A path under mnt. */
static char *
at(const char *rel)
{
	return tu_path(mnt, rel);
}

static int
run_fsop(const char *op, const char *a1, const char *a2)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		execl(fsop_path, fsop_path, op, a1, a2, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- recording ---- */

struct rec {
	enum flt_operation op;
	pid_t pid;
	int verified;
	uid_t uid;
	char exe[256];
	char path[256];
	char new_path[256];
};

/* Written by the engine's threads, read by the test: under rec_lock. A
 * record is never changed once added, so a pointer to one stays valid. */
static struct rec recs[256];

static void
record(const struct flt_callback_data *d)
{
	const struct flt_process *p = flt_get_process(d);
	struct rec r = { .op = d->op, .pid = d->pid };

	r.verified = p->verified;
	r.uid = p->uid;
	if (p->exe)
		snprintf(r.exe, sizeof(r.exe), "%s", p->exe);
	if (d->path)
		snprintf(r.path, sizeof(r.path), "%s", d->path);
	if (d->new_path)
		snprintf(r.new_path, sizeof(r.new_path), "%s", d->new_path);
	pthread_mutex_lock(&rec_lock);
	if (n_recs < (int)(sizeof(recs) / sizeof(recs[0])))
		recs[n_recs++] = r;
	pthread_mutex_unlock(&rec_lock);
}

static const struct rec *
find(enum flt_operation op, const char *path)
{
	const struct rec *r = NULL;

	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < n_recs && !r; i++)
		if (recs[i].op == op && !strcmp(recs[i].path, path))
			r = &recs[i];
	pthread_mutex_unlock(&rec_lock);
	return r;
}

static int
count(enum flt_operation op, const char *path)
{
	int n = 0;

	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < n_recs; i++)
		n += recs[i].op == op && !strcmp(recs[i].path, path);
	pthread_mutex_unlock(&rec_lock);
	return n;
}

static const struct rec *
wait_for(enum flt_operation op, const char *path, int ms)
{
	const struct rec *r;
	int64_t end = tu_now_ms() + ms;

	while (!(r = find(op, path)) && tu_now_ms() < end)
		usleep(2000);
	return r;
}

static enum flt_preop_status
pre_rec(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)ic;
	(void)cc;
	record(d);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static void
post_rec(const struct flt_callback_data *d, void *ic, void *cc)
{
	(void)ic;
	(void)cc;
	record(d);
}

static flt_filter *
filter_with(const char *name, const struct flt_operation_registration *ops, size_t n)
{
	struct flt_registration reg = {
		.name = name, .altitude = "300000", .operations = ops, .n_operations = n
	};
	flt_filter *f = NULL;

	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, mnt, FLT_INSTANCE_SUBTREE), 0);
	return f;
}

static const struct fan_features *
features(void)
{
	struct engine *e = engine_of(g_m);

	assert_non_null(e);
	return &e->feat;
}

static const char *
yn(bool b)
{
	return b ? "yes" : "no";
}

/* ---- the probe ---- */

/* The first release with each feature (kernel.h's table in probe.c). */
static void
check_feature(const char *name, bool has, unsigned since, const struct fan_features *f)
{
	bool newer = f->kernel && f->kernel < since;

	if (f->simulated) {
		/* The override's kernel: exactly what that release has. A
		 * feature this machine lacks stays off either way. */
		if (newer)
			assert_false(has);
		return;
	}
	if (!newer && f->kernel && !has)
		fail_msg("Linux %u.%u should have %s", FLT_KV_MAJOR(f->kernel),
			 FLT_KV_MINOR(f->kernel), name);
	if (newer && has)
		print_message("note: %s is newer than Linux %u.%u (a backport)\n", name,
			      FLT_KV_MAJOR(f->kernel), FLT_KV_MINOR(f->kernel));
}

static void
probe_matches_the_kernel(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_rec, NULL },
	};
	const struct fan_features *f;
	flt_filter *flt;

	(void)state;
	NEED_ROOT();
	flt = filter_with("probe", ops, 1);
	(void)flt_start_filtering(flt);
	f = features();
	print_message("Linux %u.%u%s: unlimited queue %s, pidfd %s, names %s, rename %s, "
		      "evictable %s, ignore %s, pidfs %s, PIDFD_GET_INFO %s\n",
		      FLT_KV_MAJOR(f->kernel), FLT_KV_MINOR(f->kernel),
		      f->simulated ? " (simulated)" : "", yn(f->unlimited_queue),
		      yn(f->pidfd), yn(f->dfid_name_target), yn(f->rename),
		      yn(f->evictable), yn(f->mark_ignore), yn(f->pidfs),
		      yn(f->pidfd_get_info));
	assert_true(f->kernel == flt_kernel_effective());
	assert_true(f->overridden == (getenv(FLT_KERNEL_FEATURES_ENV) &&
				      *getenv(FLT_KERNEL_FEATURES_ENV)));
	check_feature("FAN_REPORT_PIDFD", f->pidfd, FLT_KV(5, 15), f);
	check_feature("FAN_REPORT_DFID_NAME_TARGET", f->dfid_name_target, FLT_KV(5, 17),
		      f);
	check_feature("FAN_RENAME", f->rename, FLT_KV(5, 17), f);
	check_feature("FAN_MARK_EVICTABLE", f->evictable, FLT_KV(5, 19), f);
	check_feature("FAN_MARK_IGNORE", f->mark_ignore, FLT_KV(6, 0), f);
	check_feature("pidfs", f->pidfs, FLT_KV(6, 9), f);
	check_feature("PIDFD_GET_INFO", f->pidfd_get_info, FLT_KV(6, 13), f);
	/* Names and renames come and go together. */
	assert_true(f->rename == f->dfid_name_target);
}

/* Every missing feature is named at start, with what degrades; the
 * override is logged as one. */
static void
missing_features_are_logged(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_rec, NULL },
	};
	const struct fan_features *f;
	int r;

	(void)state;
	NEED_ROOT();
	r = flt_start_filtering(filter_with("log", ops, 1));
	f = features();
	assert_true(logged("fanotify on Linux "));
	assert_true(logged("FLTMGR_KERNEL_FEATURES=") == f->overridden);
	assert_true(logged("no unlimited queue") == !f->unlimited_queue);
	assert_true(logged("no FAN_REPORT_PIDFD") == !f->pidfd);
	assert_true(logged("no name reporting") == !f->dfid_name_target);
	assert_true(logged("no evictable marks") == !f->evictable);
	assert_true(logged("no FAN_MARK_IGNORE") == (f->evictable && !f->mark_ignore));
	assert_true(logged("no pidfs (Linux < 6.9)") == !f->pidfs);
	assert_true(logged("no PIDFD_GET_INFO (Linux < 6.13)") == !f->pidfd_get_info);
	/* The pre-content probe is made on the filesystem attached, when
	 * it is marked. */
	assert_true(logged("pre-content events on the filesystem of ") == (r == 0));
}

/* ---- each degraded mode ---- */

/* Post-only callbacks need the notification group (name reporting,
 * 5.17); renames need FAN_RENAME (5.17). */
static void
notifications_as_the_kernel_gives_them(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_CREATE, NULL, post_rec },
		{ FLT_OP_RENAME, NULL, post_rec },
	};
	const struct fan_features *f;
	flt_filter *flt;
	int r;

	(void)state;
	NEED_ROOT();
	flt = filter_with("notif", ops, 2);
	r = flt_start_filtering(flt);
	f = features();
	if (!f->dfid_name_target) {
		/* As before Linux 5.17: no notification group at all. */
		assert_int_equal(r, -EOPNOTSUPP);
		assert_true(engine_of(g_m)->notif_fd < 0);
		print_message("no name reporting: a post-only filter does not start "
			      "(-EOPNOTSUPP)\n");
		return;
	}
	assert_int_equal(r, 0);
	assert_int_equal(run_fsop("create", at("a"), NULL), 0);
	assert_int_equal(run_fsop("rename", at("a"), at("b")), 0);
	assert_non_null(wait_for(FLT_OP_CREATE, at("a"), 15000));
	if (f->rename) {
		const struct rec *rn = wait_for(FLT_OP_RENAME, at("a"), 15000);

		assert_non_null(rn);
		assert_string_equal(rn->new_path, at("b"));
	} else {
		/* Created after the rename: once it is seen, a rename
		 * would have been seen too. */
		assert_int_equal(run_fsop("create", at("c"), NULL), 0);
		assert_non_null(wait_for(FLT_OP_CREATE, at("c"), 15000));
		assert_null(find(FLT_OP_RENAME, at("a")));
	}
}

/* Pre callbacks need an unlimited permission queue. */
static void
permission_events_as_the_kernel_gives_them(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_rec, NULL },
	};
	struct flt_engine_stats es;
	const struct fan_features *f;
	const struct rec *rc;
	flt_filter *flt;
	int r;

	(void)state;
	NEED_ROOT();
	flt = filter_with("perm", ops, 1);
	r = flt_start_filtering(flt);
	f = features();
	if (!f->unlimited_queue) {
		/* A bounded permission queue would fail open: none at all. */
		assert_int_equal(r, -EOPNOTSUPP);
		assert_true(engine_of(g_m)->perm_fd < 0);
		return;
	}
	assert_int_equal(r, 0);
	assert_int_equal(run_fsop("create", at("p"), NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_fsop("open", at("p"), NULL), 0);
	rc = wait_for(FLT_OP_OPEN, at("p"), 15000);
	assert_non_null(rc);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	if (!f->pidfd) {
		/* Before Linux 5.15: the pid only, nothing attributed, and
		 * nothing read (no cache look-up either). */
		assert_true(rc->pid > 0);
		assert_false(rc->verified);
		assert_int_equal(rc->uid, (uid_t)-1);
		assert_string_equal(rc->exe, "");
		assert_int_equal(es.process_cache_hits, 0);
		print_message("no pidfd: pid %d only\n", (int)rc->pid);
		return;
	}
	assert_true(rc->verified);
	assert_int_equal(rc->uid, 0);
	assert_string_equal(rc->exe, fsop_path);
	/* Four opens by four processes of one program: a cache of
	 * processes is keyed by process, so each is a miss; without pidfs
	 * there is no cache at all, so never a hit. */
	assert_true(es.process_cache_misses >= 1);
	if (!f->pidfs)
		assert_int_equal(es.process_cache_hits, 0);
}

/* The kernel verdict cache needs evictable (5.19) ignore (6.0) marks. */
static void
kernel_cache_as_the_kernel_allows(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_rec, NULL },
	};
	struct flt_registration reg = { .name = "cache",
					.altitude = "300000",
					.operations = ops,
					.n_operations = 1,
					.flags = FLT_REGISTRATION_CACHE_VERDICTS };
	struct flt_engine_stats es;
	const struct fan_features *f;
	flt_filter *flt = NULL;
	int r, opens;

	(void)state;
	NEED_ROOT();
	/* Root's own file, as the cache requires (docs/engine.md 4). */
	assert_int_equal(run_fsop("write", at("c"), "x"), 0);
	assert_int_equal(chmod(at("c"), 0644), 0);
	assert_int_equal(flt_register_filter(g_m, &reg, &flt), 0);
	assert_int_equal(flt_attach(flt, mnt, FLT_INSTANCE_SUBTREE), 0);
	r = flt_start_filtering(flt);
	f = features();
	if (!f->unlimited_queue) {
		assert_int_equal(r, -EOPNOTSUPP);
		print_message("skipped: pre callbacks need FAN_UNLIMITED_QUEUE\n");
		skip();
	}
	assert_int_equal(r, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(run_fsop("open", at("c"), NULL), 0);
	opens = count(FLT_OP_OPEN, at("c"));
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	if (f->evictable && f->mark_ignore) {
		assert_int_equal(opens, 1); /* the others: the kernel's cache */
		assert_true(es.cache_inserts >= 1);
	} else {
		assert_int_equal(opens, 3); /* no cache: every open asked */
		assert_int_equal(es.cache_inserts, 0);
	}
}

/* ---- the override itself ---- */

static void
versions_parse(void **state)
{
	(void)state;
	assert_int_equal(flt_kernel_parse_version("6.1.0-28-amd64"), FLT_KV(6, 1));
	assert_int_equal(flt_kernel_parse_version("5.14.0-427.el9.x86_64"),
			 FLT_KV(5, 14));
	assert_int_equal(flt_kernel_parse_version("6.18.44-fc"), FLT_KV(6, 18));
	assert_int_equal(flt_kernel_parse_version("-pidfs"), 0);
	assert_int_equal(flt_kernel_parse_version("6"), 0);
	assert_int_equal(flt_kernel_parse_version(""), 0);
	assert_true(flt_kernel_running() >= FLT_KV(5, 0));
}

/* With a value set here (and restored): named features go, unknown
 * values leave nothing on. */
static void
override_values(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_rec, NULL },
	};
	const char *was = getenv(FLT_KERNEL_FEATURES_ENV);
	char *saved = was ? strdup(was) : NULL;
	const struct fan_features *f;
	flt_filter *flt;

	(void)state;
	NEED_ROOT();
	setenv(FLT_KERNEL_FEATURES_ENV, "-rename,-pidfs", 1);
	flt = filter_with("o1", ops, 1);
	(void)flt_start_filtering(flt);
	f = features();
	assert_true(f->overridden);
	assert_false(f->rename);
	assert_false(f->dfid_name_target); /* they go together */
	assert_false(f->pidfs);
	assert_true(logged("turned off by the override"));
	flt_manager_free(g_m);

	setenv(FLT_KERNEL_FEATURES_ENV, "5.1x,bogus", 1);
	{
		struct flt_manager_options o = { .log_level = FLT_LOG_DEBUG,
						 .log_func = log_capture,
						 .runtime_dir =
							 getenv("FLTMGR_RUNTIME_DIR") };

		assert_int_equal(flt_manager_new(&o, &g_m), 0);
	}
	flt = filter_with("o2", ops, 1);
	assert_int_equal(flt_start_filtering(flt), -EOPNOTSUPP);
	assert_true(logged("is not understood"));
	if (saved)
		setenv(FLT_KERNEL_FEATURES_ENV, saved, 1);
	else
		unsetenv(FLT_KERNEL_FEATURES_ENV);
	free(saved);
}

/* ---- fltmgrd ---- */

static int
run_daemon(const char *features_env, char *out, size_t cap, bool stop_when_up)
{
	const char *bin = getenv("FLTMGR_TEST_FLTMGRD"),
		   *minispy = getenv("FLTMGR_TEST_MINISPY");
	char fdir[128], rdir[128], log[128], ctl[160], cmd[PATH_MAX + 512];
	int st, fd;
	pid_t pid;
	ssize_t n;

	assert_non_null(bin);
	assert_non_null(minispy);
	snprintf(fdir, sizeof(fdir), "%s/filters", scratch);
	snprintf(rdir, sizeof(rdir), "%s/run", scratch);
	snprintf(log, sizeof(log), "%s/fltmgrd.log", scratch);
	snprintf(ctl, sizeof(ctl), "%s/control", rdir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s && cp '%s' %s/minispy.so && chmod 644 %s/*", fdir, minispy,
		 fdir, fdir);
	assert_int_equal(system(cmd), 0);
	unlink(log);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		dup2(fd, STDERR_FILENO);
		if (features_env)
			setenv(FLT_KERNEL_FEATURES_ENV, features_env, 1);
		execl(bin, bin, "--foreground", "--runtime-dir", rdir, "--filter-dir",
		      fdir, "--attach", mnt, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 10000 && waitpid(pid, &st, WNOHANG) == 0; i++) {
		if (stop_when_up && access(ctl, F_OK) == 0) {
			kill(pid, SIGTERM);
			assert_int_equal(waitpid(pid, &st, 0), pid);
			break;
		}
		usleep(1000);
	}
	if (kill(pid, 0) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		fail_msg("fltmgrd neither started nor stopped");
	}
	fd = open(log, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, out, cap - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Below the minimum kernel fltmgrd refuses to start, saying why. */
static void
fltmgrd_refuses_an_older_kernel(void **state)
{
	char out[8192];

	(void)state;
	NEED_ROOT();
	assert_int_equal(run_daemon("4.19", out, sizeof(out), true), 1);
	print_message("%s", out);
	assert_non_null(strstr(out, "Linux 4.19 (simulated by FLTMGR_KERNEL_FEATURES) "
				    "is older than 5.10"));
}

/* fltmgrd, as configured by default (minispy), on this feature set: it
 * names every missing feature at start; without name reporting minispy
 * cannot run, and fltmgrd says so and stops. */
static void
fltmgrd_names_what_is_missing(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_rec, NULL },
	};
	const struct fan_features *f;
	char out[16384];
	int code;

	(void)state;
	NEED_ROOT();
	(void)flt_start_filtering(filter_with("ref", ops, 1));
	f = features(); /* what the daemon will find too */
	code = run_daemon(NULL, out, sizeof(out), true);
	assert_true((strstr(out, "no pidfs (Linux < 6.9)") != NULL) == (!f->pidfs));
	assert_true((strstr(out, "no PIDFD_GET_INFO (Linux < 6.13)") != NULL) ==
		    !f->pidfd_get_info);
	assert_true((strstr(out, "no FAN_REPORT_PIDFD") != NULL) == (!f->pidfd));
	assert_true((strstr(out, "no name reporting") != NULL) == (!f->dfid_name_target));
	assert_true((strstr(out, "no evictable marks") != NULL) == (!f->evictable));
	if (!f->dfid_name_target) {
		assert_int_equal(code, 1);
		assert_non_null(strstr(out, "could not be started"));
	} else {
		if (code != 0)
			fail_msg("fltmgrd exited %d:\n%s", code, out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(probe_matches_the_kernel),
		T(missing_features_are_logged),
		T(notifications_as_the_kernel_gives_them),
		T(permission_events_as_the_kernel_gives_them),
		T(kernel_cache_as_the_kernel_allows),
		cmocka_unit_test(versions_parse),
		T(override_values),
		T(fltmgrd_refuses_an_older_kernel),
		T(fltmgrd_names_what_is_missing),
#undef T
	};
	char self[PATH_MAX - 16], *slash;
	ssize_t n;
	int r;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		*slash = '\0';
		snprintf(fsop_path, sizeof(fsop_path), "%s/fsop", self);
	}
	have_root = geteuid() == 0;
	if (have_root) {
		r = tu_private_scratch("test_features", scratch, "fltmgr-feat", 64);
		if (r)
			return r;
	} else {
		printf("test_features: not root: every test is skipped (fanotify needs "
		       "CAP_SYS_ADMIN)\n");
	}
	r = cmocka_run_group_tests_name("features", tests, NULL, NULL);
	if (have_root)
		tu_private_scratch_remove(scratch);
	return r;
}
