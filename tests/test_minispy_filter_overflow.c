/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_filter_overflow.c — the kernel's own losses: an overflowed
 * fanotify queue becomes a loss record, and its KERNEL notice stays named
 * by the loss run when it is lost in a full service queue or dropped from
 * the backlog (a blocking filter below minispy on a small kernel queue).
 *
 * minispy on real fanotify (root only), loaded from minispy.so through its
 * entry point as fltmgrd would and read through libfltuser as its service
 * will, in a private mount namespace on a fresh tmpfs per test; the
 * children, the sentinel recorder, the in-process service and each test's
 * setup: minispy_filter_fixture.h.
 */
#include "minispy_filter_fixture.h"

/* ---- the kernel's own losses ---- */

static atomic_int block_first;

static void
blocking_post(const struct flt_callback_data *d, void *ic, void *cc)
{
	(void)d;
	(void)ic;
	(void)cc;
	/* Holds the notification reader until released (bounded). */
	for (int i = 0; i < WAIT_MS && atomic_load(&block_first) == 1; i++)
		usleep(1000);
}

static int
write_sysctl(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * A filter below minispy whose CREATE callback holds the notification
 * reader while block_first is 1, on a notification group whose kernel
 * queue holds only 64 events: creating more files than that while it
 * blocks makes the kernel overflow. Skips if the knob cannot be set.
 */
static flt_filter *
blocker_on_small_kernel_queue(void)
{
	static const char knob[] = "/proc/sys/fs/fanotify/max_queued_events";
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_CREATE, NULL, blocking_post },
	};
	struct flt_registration reg = { .name = "blocker",
					.altitude = "100000",
					.operations = ops,
					.n_operations = 1 };
	char old[32] = { 0 };
	flt_filter *blocker = NULL;
	int fd, r;

	fd = open(knob, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, old, sizeof(old) - 1) <= 0) {
		print_message("skipped: cannot read %s\n", knob);
		skip();
	}
	close(fd);
	/* The queue limit is taken when the group is made, i.e. when the
	 * first filter starts: lower it just for that moment. */
	if (write_sysctl(knob, "64") < 0) {
		print_message("skipped: cannot lower %s\n", knob);
		skip();
	}
	/* Nothing may fail out of the test before the knob is restored. */
	r = flt_register_filter(g_m, &reg, &blocker);
	if (r == 0)
		r = flt_attach(blocker, wdir, FLT_INSTANCE_SUBTREE);
	if (r == 0)
		r = flt_start_filtering(blocker);
	assert_int_equal(write_sysctl(knob, old), 0);
	if (r == -EOPNOTSUPP)
		TU_NEED_KERNEL("names");
	assert_int_equal(r, 0);
	return blocker;
}

/* 300 creates while the reader is held: the kernel keeps 64 and
 * overflows; minispy then makes about 64 records and a KERNEL notice. */
static void
overflow_the_kernel_queue(void)
{
	atomic_store(&block_first, 1);
	gen("g", 300);
	atomic_store(&block_first, 0);
	sync_events();
}

static void
kernel_overflow_becomes_a_loss_record(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	flt_filter *blocker;
	struct minispy_stats st;
	struct svc s;
	int kernel = -1;

	(void)state;
	NEED_ROOT();
	blocker = blocker_on_small_kernel_queue();
	load(kv);
	svc_open(&s);
	overflow_the_kernel_queue();
	svc_drain(&s);
	for (size_t i = 0; i < s.n; i++)
		if (s.v[i].type == MINISPY_REC_LOSS &&
		    s.v[i].cause == MINISPY_LOSS_KERNEL)
			kernel = (int)i;
	if (kernel < 0)
		fail_msg("no KERNEL loss record among %zu records", s.n);
	assert_true(s.v[kernel].seq > 0);
	assert_true(count_events(&s) < 300);
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	st = svc_stats(&s);
	assert_true(st.kernel_overflows >= 1);
	svc_close(&s);
	flt_unregister_filter(blocker);
}

/* Reads and confirms until the filter holds nothing for s. */
static void
svc_drain_confirming(struct svc *s)
{
	int64_t end = tu_now_ms() + WAIT_MS;

	for (;;) {
		struct minispy_stats st;

		while (svc_pump(s, 0) == 0)
			;
		assert_int_equal(svc_confirm(s, s->n), 0);
		st = svc_stats(s);
		if (st.conn_pending == 0 && st.conn_unconfirmed == 0)
			break;
		if (tu_now_ms() > end)
			fail_msg("minispy still holds %llu records for this service",
				 (unsigned long long)st.conn_pending);
		(void)svc_pump(s, 5);
	}
	while (svc_pump(s, 0) == 0)
		;
}

/* The loss records of s whose run names a KERNEL notice; the index of
 * the last one in *ret_i. */
static int
runs_naming_kernel(const struct svc *s, size_t *ret_i)
{
	int n = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct ev *e = &s->v[i];

		assert_false(e->type == MINISPY_REC_LOSS &&
			     e->cause == MINISPY_LOSS_KERNEL);
		if (e->type == MINISPY_REC_LOSS && (e->notices & MINISPY_NOTICE_KERNEL)) {
			*ret_i = i;
			n++;
		}
	}
	return n;
}

/*
 * The kernel overflows while a service's queue is full: the KERNEL notice
 * is lost with the records around it, but the QUEUE loss record for that
 * run says a kernel-overflow notice was among them. Deterministic: a
 * confirming service that does not confirm holds queue_size records sent
 * and queue_size queued (here 1 and 1), and everything after is dropped.
 */
static void
kernel_overflow_lost_in_a_full_queue_is_named_by_the_run(void **state)
{
	const char *kv[] = { "ops", "create", "queue_size", "1", NULL };
	flt_filter *blocker;
	struct minispy_stats st;
	struct svc s;
	size_t i = 0;

	(void)state;
	NEED_ROOT();
	blocker = blocker_on_small_kernel_queue();
	load(kv);
	svc_open_confirming(&s);
	overflow_the_kernel_queue();
	st = svc_stats(&s);
	assert_true(st.kernel_overflows >= 1);
	/* At most 2 kept (1 if the sender was slow to take the first); the
	 * notice, the last record, is not among them. */
	assert_true(st.records > 2);
	assert_true(st.conn_dropped >= st.records - 2);

	svc_drain_confirming(&s);
	assert_true(runs_naming_kernel(&s, &i) >= 1);
	assert_int_equal(s.v[i].cause, MINISPY_LOSS_QUEUE);
	assert_int_equal(s.v[i].last, st.records);
	assert_int_equal(check_seq_accounting(&s, 1), st.conn_dropped);
	svc_close(&s);
	flt_unregister_filter(blocker);
}

/* The same for the backlog: with no service connected, the KERNEL notice
 * is pushed out of a full backlog, and the BACKLOG run that the next
 * service gets says so. */
static void
kernel_overflow_lost_from_the_backlog_is_named_by_the_run(void **state)
{
	const char *kv[] = { "ops", "create", "backlog", "8", NULL };
	flt_filter *blocker;
	struct minispy_stats st;
	struct svc s;
	size_t i = 0;

	(void)state;
	NEED_ROOT();
	blocker = blocker_on_small_kernel_queue();
	load(kv);
	overflow_the_kernel_queue();
	gen("h", 20); /* pushes the notice out of the backlog */
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	st = svc_stats(&s);
	assert_true(st.kernel_overflows >= 1);
	assert_int_equal(runs_naming_kernel(&s, &i), 1);
	assert_int_equal(i, 0);
	assert_int_equal(s.v[0].cause, MINISPY_LOSS_BACKLOG);
	assert_int_equal(s.v[0].first, 1);
	assert_int_equal(s.v[0].last, st.records - 8);
	assert_int_equal(s.n, 9);
	assert_int_equal(check_seq_accounting(&s, 1), st.records - 8);
	svc_close(&s);
	flt_unregister_filter(blocker);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(kernel_overflow_becomes_a_loss_record),
		T(kernel_overflow_lost_in_a_full_queue_is_named_by_the_run),
		T(kernel_overflow_lost_from_the_backlog_is_named_by_the_run),
#undef T
	};
	int r = minispy_filter_fixture_init("test_minispy_filter_overflow", argc, argv);

	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("minispy_filter", tests, NULL, NULL);
}
