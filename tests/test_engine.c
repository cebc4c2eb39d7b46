/* SPDX-License-Identifier: MIT */
/*
 * test_engine.c — what the engine delivers to a post callback: each
 * operation with its path and process, deletes and link counts,
 * replaced and renamed files, events lost with a detached filesystem,
 * nothing from outside the instance, the counters, ext4 renames.
 *
 * The engine on real fanotify (root only), in a private mount namespace,
 * on a fresh tmpfs per test, driven by child processes (the test process
 * is the engine's own: its accesses never reach a filter); the recording
 * filter, the children and each test's setup: engine_fixture.h.
 */
#include "engine_fixture.h"

/* ---- children ---- */

static void
child_go(struct child *c)
{
	assert_int_equal(write(c->hold_fd, "g", 1), 1);
}

/* ---- a recording filter ---- */

static void
post_rec0(const struct flt_callback_data *d, void *ic, void *cc)
{
	(void)ic;
	(void)cc;
	record(0, false, d);
}

static flt_filter *
spy_filter(const char *name, const char *altitude)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, NULL, post_rec0 },
		{ FLT_OP_WRITE, NULL, post_rec0 },
		{ FLT_OP_CLOSE_WRITE, NULL, post_rec0 },
		{ FLT_OP_CLOSE, NULL, post_rec0 },
		{ FLT_OP_ATTRIB, NULL, post_rec0 },
		{ FLT_OP_CREATE, NULL, post_rec0 },
		{ FLT_OP_DELETE, NULL, post_rec0 },
		{ FLT_OP_RENAME, NULL, post_rec0 },
	};
	struct flt_registration reg = { .name = name,
					.altitude = altitude,
					.operations = ops,
					.n_operations = sizeof(ops) / sizeof(ops[0]) };
	flt_filter *f = NULL;

	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	return f;
}

static void
expect_event(enum flt_operation op, const char *path, const char *new_path,
	     struct child *c, uid_t uid)
{
	int i = wait_rec(0, op, path, new_path, c->pid, EVENT_WAIT_MS);

	if (i < 0)
		fail_msg("no %s event for %s (pid %d)", flt_operation_name(op), path,
			 (int)c->pid);
	if (!features()->pidfd) {
		/* As before Linux 5.15: the pid, and nothing attributed. */
		assert_int_equal(recs[i].uid, (uid_t)-1);
		assert_false(recs[i].verified);
		assert_string_equal(recs[i].exe, "");
		return;
	}
	assert_int_equal(recs[i].uid, uid);
	assert_true(recs[i].verified);
	assert_string_equal(recs[i].exe, fsop_path);
}

/* The event's dev/ino are the file's (decoded from its file handle where
 * the filesystem's layout is known, else stat'ed). */
static void
expect_identity(enum flt_operation op, const char *path, pid_t pid)
{
	struct stat st;
	int i = find_rec(0, op, path, NULL, pid);

	assert_true(i >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(recs[i].ino, st.st_ino);
	assert_int_equal(recs[i].dev, st.st_dev);
}

static void
each_operation_reports_path_and_process(void **state)
{
	flt_filter *f;
	struct child c;
	const uid_t uid = 4321;

	(void)state;
	NEED_ROOT();
	f = spy_filter("spy", "360000");
	assert_int_equal(flt_attach(f, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);

	c = child_start(uid, true, "create", at("a"), NULL);
	expect_event(FLT_OP_CREATE, at("a"), NULL, &c, uid);
	expect_event(FLT_OP_OPEN, at("a"), NULL, &c, uid);
	expect_event(FLT_OP_CLOSE_WRITE, at("a"), NULL, &c, uid);
	expect_identity(FLT_OP_CREATE, at("a"), c.pid);
	expect_identity(FLT_OP_CLOSE_WRITE, at("a"), c.pid);
	assert_int_equal(child_finish(&c), 0);

	c = child_start(uid, true, "write", at("a"), "hello");
	expect_event(FLT_OP_WRITE, at("a"), NULL, &c, uid);
	expect_event(FLT_OP_CLOSE_WRITE, at("a"), NULL, &c, uid);
	assert_int_equal(child_finish(&c), 0);

	c = child_start(uid, true, "read", at("a"), NULL);
	expect_event(FLT_OP_OPEN, at("a"), NULL, &c, uid);
	expect_event(FLT_OP_CLOSE, at("a"), NULL, &c, uid);
	assert_int_equal(child_finish(&c), 0);

	c = child_start(uid, true, "chmod", at("a"), "600");
	expect_event(FLT_OP_ATTRIB, at("a"), NULL, &c, uid);
	assert_int_equal(child_finish(&c), 0);

	c = child_start(uid, true, "rename", at("a"), at("b"));
	expect_event(FLT_OP_RENAME, at("a"), at("b"), &c, uid);
	assert_int_equal(child_finish(&c), 0);

	c = child_start(uid, true, "unlink", at("b"), NULL);
	expect_event(FLT_OP_DELETE, at("b"), NULL, &c, uid);
	assert_int_equal(child_finish(&c), 0);

	c = child_start(uid, true, "mkdir", at("d"), NULL);
	expect_event(FLT_OP_CREATE, at("d"), NULL, &c, uid);
	assert_true(recs[find_rec(0, FLT_OP_CREATE, at("d"), NULL, c.pid)].flags &
		    FLT_EVENT_DIR);
	assert_int_equal(child_finish(&c), 0);

	c = child_start(uid, true, "rmdir", at("d"), NULL);
	expect_event(FLT_OP_DELETE, at("d"), NULL, &c, uid);
	assert_true(recs[find_rec(0, FLT_OP_DELETE, at("d"), NULL, c.pid)].flags &
		    FLT_EVENT_DIR);
	assert_int_equal(child_finish(&c), 0);
}

/* ---- nothing read is dropped silently ---- */

static int
notif_books_balance(void *arg)
{
	struct flt_engine_stats *es = arg;

	if (flt_manager_get_stats(g_m, es) < 0)
		return 0;
	return es->notification_events == es->notif_ignored + es->notif_resolved +
						  es->notif_unresolved + es->notif_lost;
}

/* Every notification record read ended as exactly one of ignored,
 * resolved, unresolved or lost, and none was dropped. */
static struct flt_engine_stats
expect_notif_books_balance(void)
{
	struct flt_engine_stats es = { 0 };

	if (!tu_wait_until(notif_books_balance, &es, 3000))
		fail_msg("notification books: %llu read, %llu ignored + %llu resolved + "
			 "%llu unresolved + %llu lost",
			 (unsigned long long)es.notification_events,
			 (unsigned long long)es.notif_ignored,
			 (unsigned long long)es.notif_resolved,
			 (unsigned long long)es.notif_unresolved,
			 (unsigned long long)es.notif_lost);
	assert_int_equal(es.dropped, 0);
	assert_int_equal(es.read_errors, 0);
	assert_true(es.notification_events > 0);
	return es;
}

/* The first record of filter 0 for op by pid with a path (NULL: any) or
 * with FLT_EVENT_PATH_UNKNOWN, waiting up to timeout_ms; -1 if none. */
static int
wait_attrib(pid_t pid, const char *path, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int found = -1;

	do {
		pthread_mutex_lock(&rec_lock);
		for (int i = 0; i < n_recs && found < 0; i++)
			if (recs[i].filter == 0 && recs[i].op == FLT_OP_ATTRIB &&
			    recs[i].pid == pid &&
			    (path ? !strcmp(recs[i].path, path)
				  : (recs[i].flags & FLT_EVENT_PATH_UNKNOWN) != 0))
				found = i;
		pthread_mutex_unlock(&rec_lock);
	} while (found < 0 && tu_now_ms() < end && usleep(2000) == 0);
	return found;
}

/*
 * Unlinking a file's last name queues a handle-only ATTRIB (the link
 * count) before the DELETE; by the time it is read the file is gone. It
 * used to be dropped (counted only); now it reaches the filter, named
 * from the DELETE that follows it, or else with FLT_EVENT_PATH_UNKNOWN
 * and the file's identity.
 */
static void
unlink_delivers_delete_and_link_count_change(void **state)
{
	flt_filter *f;
	struct stat st;
	struct child c;
	int i;

	(void)state;
	NEED_ROOT();
	f = spy_filter("spy", "360000");
	assert_int_equal(flt_attach(f, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);
	assert_int_equal(run_op(0, "create", at("f"), NULL), 0);
	assert_int_equal(stat(at("f"), &st), 0);

	c = child_start(0, true, "unlink", at("f"), NULL);
	expect_event(FLT_OP_DELETE, at("f"), NULL, &c, 0);
	i = wait_attrib(c.pid, at("f"), 0);
	if (i < 0)
		i = wait_attrib(c.pid, NULL, EVENT_WAIT_MS);
	if (i < 0)
		fail_msg("the unlink's link-count change (ATTRIB) was not delivered");
	assert_int_equal(recs[i].dev, st.st_dev);
	if (recs[i].flags & FLT_EVENT_PATH_UNKNOWN) {
		assert_string_equal(recs[i].path, "");
		assert_int_equal(recs[i].ino, st.st_ino);
	}
	print_message("the unlink's ATTRIB came %s\n",
		      recs[i].flags & FLT_EVENT_PATH_UNKNOWN ? "with an unknown path"
							     : "named by its DELETE");
	/* The ATTRIB comes first, as the kernel queued it. */
	assert_true(recs[i].seq <
		    recs[find_rec(0, FLT_OP_DELETE, at("f"), NULL, c.pid)].seq);
	assert_int_equal(child_finish(&c), 0);
	expect_notif_books_balance();
}

/* Prints filter 0's records of pid (what the engine did deliver), for a
 * failure message. */
static void
print_records_of(pid_t pid)
{
	struct flt_engine_stats es = { 0 };

	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < n_recs; i++)
		if (recs[i].filter == 0 && recs[i].pid == pid)
			print_message("  %s %s flags %#x dev %lu ino %lu\n",
				      flt_operation_name(recs[i].op), recs[i].path,
				      recs[i].flags, (unsigned long)recs[i].dev,
				      (unsigned long)recs[i].ino);
	pthread_mutex_unlock(&rec_lock);
	(void)flt_manager_get_stats(g_m, &es);
	print_message("  notif_resolved %llu unresolved %llu lost %llu ignored %llu\n",
		      (unsigned long long)es.notif_resolved,
		      (unsigned long long)es.notif_unresolved,
		      (unsigned long long)es.notif_lost,
		      (unsigned long long)es.notif_ignored);
}

/*
 * A rename over an existing file drops the replaced file's link count: a
 * handle-only ATTRIB of a file that no name leads to any more, and no
 * DELETE to name it. It is delivered with FLT_EVENT_PATH_UNKNOWN (path
 * NULL), the replaced file's dev and ino (tmpfs handles carry the inode
 * number), to the subtree instance on that filesystem, and counted.
 */
static void
replaced_file_is_delivered_with_unknown_path(void **state)
{
	struct flt_engine_stats es;
	flt_filter *f;
	struct stat st;
	struct child c;
	int i;

	(void)state;
	NEED_ROOT();
	assert_int_equal(mkdir(at("sub"), 0777), 0);
	f = spy_filter("spy", "360000");
	assert_int_equal(flt_attach(f, at("sub"), FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);
	assert_int_equal(run_op(0, "create", at("sub/a"), NULL), 0);
	assert_int_equal(run_op(0, "create", at("sub/b"), NULL), 0);
	assert_int_equal(stat(at("sub/b"), &st), 0);

	c = child_start(0, true, "rename", at("sub/a"), at("sub/b"));
	expect_event(FLT_OP_RENAME, at("sub/a"), at("sub/b"), &c, 0);
	i = wait_attrib(c.pid, NULL, EVENT_WAIT_MS);
	if (i < 0) {
		print_records_of(c.pid);
		fail_msg("the replaced file's ATTRIB was not delivered");
	}
	assert_string_equal(recs[i].path, "");
	assert_int_equal(recs[i].dev, st.st_dev);
	assert_int_equal(recs[i].ino, st.st_ino);
	assert_true(recs[i].verified); /* the process is known as usual */
	assert_int_equal(child_finish(&c), 0);
	es = expect_notif_books_balance();
	assert_true(es.notif_unresolved >= 1);
}

/* A CREATE post callback that holds the notification reader while
 * reader_hold is 1 (bounded), saying when it has started to. */
static atomic_int reader_hold, reader_held;

static void
post_hold(const struct flt_callback_data *d, void *ic, void *cc)
{
	(void)d;
	(void)ic;
	(void)cc;
	for (int i = 0; i < 10000 && atomic_load(&reader_hold); i++) {
		atomic_store(&reader_held, 1);
		usleep(1000);
	}
}

static int
reader_is_held(void *arg)
{
	(void)arg;
	return atomic_load(&reader_held);
}

static int
fanotify_marks_dev(void *arg)
{
	/* fdinfo shows a filesystem mark as "fanotify sdev:<kernel dev_t>". */
	const struct stat *st = arg;
	unsigned want = (major(st->st_dev) << 20) | minor(st->st_dev), sdev;
	struct dirent *de;
	int found = 0;
	DIR *d = opendir("/proc/self/fd");

	while (d && (de = readdir(d)) && !found) {
		char link[300], target[64], line[256];
		ssize_t n;
		FILE *f;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, "anon_inode:[fanotify]"))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fdinfo/%s", de->d_name);
		f = fopen(link, "re");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "fanotify sdev:%x", &sdev) == 1 && sdev == want)
				found = 1;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

static int
no_fanotify_mark_on_dev(void *arg)
{
	return !fanotify_marks_dev(arg);
}

struct detach_job {
	flt_filter *f;
	const char *path;
	int result;
};

static void *
detach_main(void *arg)
{
	struct detach_job *j = arg;

	j->result = flt_detach(j->f, j->path);
	return NULL;
}

static uint64_t
lost_reported(uint32_t why)
{
	uint64_t n = 0;

	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < n_recs; i++)
		if (recs[i].op == FLT_OP_OVERFLOW && (recs[i].flags & why))
			n += recs[i].lost;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

static int
three_lost_reported(void *arg)
{
	(void)arg;
	return lost_reported(FLT_EVENT_LOSS_UNRESOLVED) >= 3;
}

/*
 * Events queued for a filesystem whose last instance is detached before
 * the reader gets to them find no mark: nothing can say where they were,
 * so they are reported as a loss (FLT_EVENT_LOSS_UNRESOLVED, lost = how
 * many) to every filter with an OVERFLOW callback, and counted.
 */
static void
events_of_a_detached_filesystem_are_reported_lost(void **state)
{
	static const struct flt_operation_registration hold_ops[] = {
		{ FLT_OP_CREATE, NULL, post_hold },
	};
	static const struct flt_operation_registration watch_ops[] = {
		{ FLT_OP_CREATE, NULL, post_rec0 },
		{ FLT_OP_OVERFLOW, NULL, post_rec0 },
	};
	struct flt_registration hold = { .name = "hold",
					 .altitude = "100000",
					 .operations = hold_ops,
					 .n_operations = 1 };
	struct flt_registration watch = { .name = "watch",
					  .altitude = "200000",
					  .operations = watch_ops,
					  .n_operations = 2 };
	char other[64] = "/tmp/fltmgr-other.XXXXXX", p[PATH_MAX];
	struct detach_job job;
	struct flt_engine_stats es;
	flt_filter *fh = NULL, *fw = NULL;
	struct stat ost;
	pthread_t t;

	(void)state;
	NEED_ROOT();
	assert_non_null(mkdtemp(other));
	assert_int_equal(mount("fltmgr-test", other, "tmpfs", 0, "mode=1777"), 0);
	assert_int_equal(stat(other, &ost), 0);
	assert_int_equal(flt_register_filter(g_m, &hold, &fh), 0);
	assert_int_equal(flt_attach(fh, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(fh);
	assert_int_equal(flt_register_filter(g_m, &watch, &fw), 0);
	assert_int_equal(flt_attach(fw, mnt, FLT_INSTANCE_SUBTREE), 0);
	assert_int_equal(flt_attach(fw, other, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(fw);
	assert_true(fanotify_marks_dev(&ost));

	/* Hold the reader, queue three creates on the other filesystem. */
	atomic_store(&reader_hold, 1);
	atomic_store(&reader_held, 0);
	assert_int_equal(run_op(0, "create", at("hold"), NULL), 0);
	assert_true(tu_wait_until(reader_is_held, NULL, 5000));
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/f%d", other, i);
		assert_int_equal(run_op(0, "create", p, NULL), 0);
	}
	/* The detach removes the mark at once, then waits for the reader. */
	job = (struct detach_job){ .f = fw, .path = other };
	assert_int_equal(pthread_create(&t, NULL, detach_main, &job), 0);
	if (!tu_wait_until(no_fanotify_mark_on_dev, &ost, 5000)) {
		atomic_store(&reader_hold, 0);
		pthread_join(t, NULL);
		fail_msg("the detach did not remove the filesystem mark");
	}
	atomic_store(&reader_hold, 0);
	pthread_join(t, NULL);
	assert_int_equal(job.result, 0);

	if (!tu_wait_until(three_lost_reported, NULL, 3000))
		fail_msg("%llu events reported lost, not 3",
			 (unsigned long long)lost_reported(FLT_EVENT_LOSS_UNRESOLVED));
	assert_int_equal(lost_reported(FLT_EVENT_LOSS_UNRESOLVED), 3);
	assert_int_equal(lost_reported(FLT_EVENT_LOSS_KERNEL), 0);
	assert_true(find_rec(0, FLT_OP_CREATE, p, NULL, 0) < 0);
	es = expect_notif_books_balance();
	assert_int_equal(es.notif_lost, 3);
	umount2(other, MNT_DETACH);
	rmdir(other);
}

/* Directory paths are cached; a directory rename must refresh them even
 * when no filter asked for renames. */
static void
directory_rename_refreshes_paths(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_CREATE, NULL, post_rec0 },
	};
	struct flt_registration reg = { .name = "creates",
					.altitude = "360000",
					.operations = ops,
					.n_operations = 1 };
	flt_filter *f = NULL;
	struct child c;

	(void)state;
	NEED_ROOT();
	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);
	assert_int_equal(run_op(0, "mkdir", at("A"), NULL), 0);
	assert_int_equal(run_op(0, "mkdir", at("A/sub"), NULL), 0);
	c = child_start(0, true, "create", at("A/sub/f"), NULL);
	expect_event(FLT_OP_CREATE, at("A/sub/f"), NULL, &c, 0);
	assert_int_equal(child_finish(&c), 0);
	assert_int_equal(run_op(0, "rename", at("A"), at("B")), 0);
	c = child_start(0, true, "create", at("B/sub/g"), NULL);
	expect_event(FLT_OP_CREATE, at("B/sub/g"), NULL, &c, 0);
	assert_int_equal(child_finish(&c), 0);
	assert_true(find_rec(0, FLT_OP_CREATE, at("A/sub/g"), NULL, 0) < 0);
}

static void
events_in_directories_created_after_attach(void **state)
{
	flt_filter *f;
	struct child c;

	(void)state;
	NEED_ROOT();
	f = spy_filter("spy", "360000");
	assert_int_equal(flt_attach(f, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);
	assert_int_equal(run_op(0, "mkdir", at("l1"), NULL), 0);
	assert_int_equal(run_op(0, "mkdir", at("l1/l2"), NULL), 0);
	assert_int_equal(run_op(0, "mkdir", at("l1/l2/l3"), NULL), 0);
	assert_int_equal(run_op(0, "mkdir", at("l1/l2/l3/l4"), NULL), 0);
	c = child_start(0, true, "write", at("l1/l2/l3/l4/deep"), "x");
	expect_event(FLT_OP_CREATE, at("l1/l2/l3/l4/deep"), NULL, &c, 0);
	expect_event(FLT_OP_WRITE, at("l1/l2/l3/l4/deep"), NULL, &c, 0);
	assert_int_equal(child_finish(&c), 0);
	c = child_start(0, true, "rename", at("l1/l2/l3/l4/deep"), at("l1/moved"));
	expect_event(FLT_OP_RENAME, at("l1/l2/l3/l4/deep"), at("l1/moved"), &c, 0);
	assert_int_equal(child_finish(&c), 0);
}

static void
nothing_from_outside_the_instance(void **state)
{
	char other[64] = "/tmp/fltmgr-other.XXXXXX";
	flt_filter *f;
	struct child c;

	(void)state;
	NEED_ROOT();
	assert_int_equal(mkdir(at("in"), 0777), 0);
	assert_int_equal(mkdir(at("out"), 0777), 0);
	assert_non_null(mkdtemp(other));
	assert_int_equal(mount("fltmgr-test", other, "tmpfs", 0, "mode=1777"), 0);
	f = spy_filter("spy", "360000");
	assert_int_equal(flt_attach(f, at("in"), FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);

	assert_int_equal(run_op(0, "write", at("out/x"), "1"), 0);
	assert_int_equal(run_op(0, "write", at("outside-in"), "1"), 0); /* a sibling */
	{
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/y", other);
		assert_int_equal(run_op(0, "write", p, "1"), 0);
	}
	/* A positive control, after the others: once it is seen, the
	 * others would have been seen too. */
	c = child_start(0, true, "write", at("in/x"), "1");
	expect_event(FLT_OP_CLOSE_WRITE, at("in/x"), NULL, &c, 0);
	assert_int_equal(child_finish(&c), 0);
	usleep(100000);
	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < n_recs; i++)
		if (strncmp(recs[i].path, at("in/"), strlen(at("in/"))))
			fail_msg("event outside the instance: %s %s",
				 flt_operation_name(recs[i].op), recs[i].path);
	pthread_mutex_unlock(&rec_lock);
	umount2(other, MNT_DETACH);
	rmdir(other);
}

/* ---- the counters ---- */

static void
counters_match_generated_events(void **state)
{
	struct flt_filter_stats fs;
	struct flt_engine_stats es0, es;
	flt_filter *f;

	(void)state;
	NEED_ROOT();
	assert_int_equal(run_op(0, "write", at("f"), "x"), 0);
	atomic_store(&cache_calls, 0);
	f = reg_one("counter", "250000", FLT_OP_OPEN, pre_count, 5000, 0);
	assert_int_equal(flt_manager_get_stats(g_m, &es0), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(run_op(0, "open", at("f"), NULL), 0);
	assert_int_equal(flt_filter_get_stats(f, &fs), 0);
	assert_int_equal(fs.seen, 20);
	assert_int_equal(fs.delivered, 20);
	assert_int_equal(fs.allowed, 20);
	assert_int_equal(fs.denied + fs.pended + fs.deadline_defaults, 0);
	assert_int_equal(atomic_load(&cache_calls), 20);
	/* An answer is counted before it is given, but the event leaves
	 * the pending list only after it: let the last one settle. */
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
		if (es.allowed - es0.allowed >= 20 && es.pending == 0)
			break;
		usleep(1000);
	}
	assert_int_equal(es.permission_events - es0.permission_events, 20);
	assert_int_equal(es.allowed - es0.allowed, 20);
	assert_int_equal(es.pending, 0);
	/* An excluded process: seen, counted as excluded, not delivered. */
	{
		struct child c = child_start_ex(0, false, true, "open", at("f"), NULL);

		assert_int_equal(flt_exclude_process(f, c.pid), 0);
		child_go(&c);
		assert_int_equal(child_finish(&c), 0);
		assert_int_equal(flt_include_process(f, c.pid), 0);
		assert_int_equal(flt_include_process(f, c.pid), -ENOENT);
	}
	assert_int_equal(flt_filter_get_stats(f, &fs), 0);
	assert_int_equal(fs.seen, 21);
	assert_int_equal(fs.excluded, 1);
	assert_int_equal(fs.delivered, 20);
	assert_int_equal(atomic_load(&cache_calls), 20);
}

/* ---- ext4 ---- */

/* The same operations on ext4, whose file handles (inode + generation)
 * and directory removal differ from tmpfs: a delete inside a directory
 * that is removed right after must still carry the full path. */
static void
ext4_rename_across_dirs_and_delete_in_removed_dir(void **state)
{
	char cmd[3 * PATH_MAX];
	char e4[PATH_MAX];
	flt_filter *f;
	struct child c;

	(void)state;
	NEED_ROOT();
	snprintf(e4, sizeof(e4), "%s/e4", mnt);
	assert_int_equal(mkdir(e4, 0755), 0);
	snprintf(cmd, sizeof(cmd),
		 "truncate -s 32M %s/img && "
		 "timeout 60 mkfs.ext4 -q -F %s/img >/dev/null 2>&1 && "
		 "timeout 60 mount -o loop %s/img %s 2>/dev/null && chmod 1777 %s",
		 mnt, mnt, mnt, e4, e4);
	if (system(cmd) != 0) {
		print_message(
			"skipped: cannot make and loop-mount an ext4 image here "
			"(no loop device or mkfs.ext4, or either took over 60 s)\n");
		skip();
	}
	f = spy_filter("spy", "360000");
	assert_int_equal(flt_attach(f, e4, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);
	assert_int_equal(run_op(0, "mkdir", at("e4/d1"), NULL), 0);
	assert_int_equal(run_op(0, "mkdir", at("e4/d2"), NULL), 0);
	c = child_start(0, true, "write", at("e4/d1/f"), "x");
	expect_event(FLT_OP_CLOSE_WRITE, at("e4/d1/f"), NULL, &c, 0);
	expect_identity(FLT_OP_CLOSE_WRITE, at("e4/d1/f"), c.pid);
	expect_identity(FLT_OP_CREATE, at("e4/d1/f"), c.pid);
	assert_int_equal(child_finish(&c), 0);
	c = child_start(0, true, "rename", at("e4/d1/f"), at("e4/d2/g"));
	expect_event(FLT_OP_RENAME, at("e4/d1/f"), at("e4/d2/g"), &c, 0);
	assert_int_equal(child_finish(&c), 0);
	/* Remove the file, then at once its directory. */
	assert_int_equal(run_op(0, "unlink", at("e4/d2/g"), NULL), 0);
	assert_int_equal(run_op(0, "rmdir", at("e4/d2"), NULL), 0);
	if (wait_rec(0, FLT_OP_DELETE, at("e4/d2/g"), NULL, 0, EVENT_WAIT_MS) < 0)
		fail_msg("no delete event with the full path of e4/d2/g");
	if (wait_rec(0, FLT_OP_DELETE, at("e4/d2"), NULL, 0, EVENT_WAIT_MS) < 0)
		fail_msg("no delete event for e4/d2");
	assert_int_equal(flt_detach(f, e4), 0);
	umount2(e4, MNT_DETACH);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(each_operation_reports_path_and_process),
		T(unlink_delivers_delete_and_link_count_change),
		T(replaced_file_is_delivered_with_unknown_path),
		T(events_of_a_detached_filesystem_are_reported_lost),
		T(events_in_directories_created_after_attach),
		T(directory_rename_refreshes_paths),
		T(nothing_from_outside_the_instance),
		T(counters_match_generated_events),
		T(ext4_rename_across_dirs_and_delete_in_removed_dir),
#undef T
	};
	int r;

	r = engine_fixture_init("test_engine");
	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
