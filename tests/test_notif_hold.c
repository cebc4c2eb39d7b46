/* SPDX-License-Identifier: MIT */
/*
 * test_notif_hold.c — flt_manager_set_notification_hold(): after a small
 * read of notification events the reader waits the hold before it reads
 * again, so an event that comes meanwhile is delivered no earlier than
 * the hold after the read before it (a lower bound the code guarantees,
 * not a speed claim). Root: fanotify, in a private mount namespace on a
 * scratch tmpfs. Files are created by forked children, since the test
 * process is the engine's own and never filtered.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 10000
#define HOLD_US 100000 /* the largest hold: 100 ms */

static bool have_root;
static char scratch[] = "/tmp/fltmgr-hold.XXXXXX";

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[32];
	struct timespec time;
} seen[16];
static int n_seen;

static void
post_create(const struct flt_callback_data *d, void *ictx, void *cctx)
{
	const char *slash = d->path ? strrchr(d->path, '/') : NULL;

	(void)ictx;
	(void)cctx;
	if (!slash)
		return;
	pthread_mutex_lock(&rec_lock);
	if (n_seen < 16) {
		snprintf(seen[n_seen].name, sizeof(seen[n_seen].name), "%s", slash + 1);
		seen[n_seen].time = d->time;
		n_seen++;
	}
	pthread_mutex_unlock(&rec_lock);
}

/* The time the engine read the event for name, once it came. */
static int
seen_time(const char *name, struct timespec *t)
{
	int found = 0;

	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < n_seen && !found; i++) {
		if (!strcmp(seen[i].name, name)) {
			*t = seen[i].time;
			found = 1;
		}
	}
	pthread_mutex_unlock(&rec_lock);
	return found;
}

static int
seen_pred(void *arg)
{
	struct timespec t;

	return seen_time(arg, &t);
}

/* A child creates each named file in the scratch directory. */
static void
create_in_child(const char *const *names, size_t n)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		for (size_t i = 0; i < n; i++) {
			char path[PATH_MAX];
			int fd;

			snprintf(path, sizeof(path), "%s/%s", scratch, names[i]);
			fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
			if (fd < 0)
				_exit(1);
			close(fd);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int64_t
ns_between(const struct timespec *a, const struct timespec *b)
{
	return (int64_t)(b->tv_sec - a->tv_sec) * 1000000000 + (b->tv_nsec - a->tv_nsec);
}

static void
an_event_after_a_small_read_waits_out_the_hold(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ .operation = FLT_OP_CREATE, .post = post_create },
	};
	struct flt_registration reg = {
		.name = "hold",
		.altitude = "385100",
		.operations = ops,
		.n_operations = 1,
	};
	const char *first[] = { "a" }, *then[] = { "b", "c" };
	struct timespec ta, tb, tc;
	flt_manager *m;
	flt_filter *f;
	int r;

	(void)state;
	if (!have_root) {
		print_message("skipped: needs root (fanotify)\n");
		skip();
	}
	m = tu_manager_new();
	assert_int_equal(flt_manager_set_notification_hold(m, HOLD_US), 0);
	assert_int_equal(flt_register_filter(m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, scratch, FLT_INSTANCE_SUBTREE), 0);
	r = flt_start_filtering(f);
	if (r == -EOPNOTSUPP) {
		/* Post-only callbacks need name reporting (Linux 5.17). */
		print_message("skipped: this kernel cannot report file names "
			      "(FAN_REPORT_DFID_NAME_TARGET, Linux 5.17)\n");
		flt_unregister_filter(f);
		flt_manager_free(m);
		skip();
	}
	assert_int_equal(r, 0);

	create_in_child(first, 1);
	assert_true(tu_wait_until(seen_pred, (void *)"a", WAIT_MS));
	/* a's read is handled: the reader now holds before its next read,
	 * so b and c, made now, are read no earlier than the hold after a. */
	create_in_child(then, 2);
	assert_true(tu_wait_until(seen_pred, (void *)"b", WAIT_MS));
	assert_true(tu_wait_until(seen_pred, (void *)"c", WAIT_MS));
	assert_true(seen_time("a", &ta) && seen_time("b", &tb) && seen_time("c", &tc));
	print_message("a -> b %lld us, a -> c %lld us (hold %d us)\n",
		      (long long)ns_between(&ta, &tb) / 1000,
		      (long long)ns_between(&ta, &tc) / 1000, HOLD_US);
	assert_true(ns_between(&ta, &tb) >= (int64_t)HOLD_US * 1000);
	assert_true(ns_between(&ta, &tc) >= (int64_t)HOLD_US * 1000);

	/* Stopping does not wait for a hold to end (the test's timeout
	 * would catch a reader that never stops). */
	flt_unregister_filter(f);
	flt_manager_free(m);
}

static void
bad_holds_are_refused(void **state)
{
	flt_manager *m = tu_manager_new();

	(void)state;
	assert_int_equal(flt_manager_set_notification_hold(NULL, 0), -EINVAL);
	assert_int_equal(flt_manager_set_notification_hold(m, 100001), -EINVAL);
	assert_int_equal(flt_manager_set_notification_hold(m, 100000), 0);
	assert_int_equal(flt_manager_set_notification_hold(m, 0), 0);
	flt_manager_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_event_after_a_small_read_waits_out_the_hold),
		cmocka_unit_test(bad_holds_are_refused),
	};
	int r;

	have_root = geteuid() == 0;
	tu_runtime_dir_create();
	if (have_root) {
		r = tu_private_scratch("test_notif_hold", scratch, "fltmgr-hold", 16);
		if (r == 77)
			have_root = false;
		else if (r != 0)
			return r;
	} else {
		printf("test_notif_hold: SKIP: not root (fanotify needs "
		       "CAP_SYS_ADMIN)\n");
	}
	r = cmocka_run_group_tests(tests, NULL, NULL);
	if (have_root)
		tu_private_scratch_remove(scratch);
	tu_runtime_dir_remove();
	return r;
}
