/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_filter_backlog.c — how records reach services: the backlog
 * kept while none is connected (oldest first, in batches, its overflow as
 * one loss record, unsent records given back when the last service
 * leaves), the coalescing sender, a full service queue and its loss
 * record, two services each getting everything, and services' own
 * processes excluded unless told otherwise.
 *
 * minispy on real fanotify (root only), loaded from minispy.so through its
 * entry point as fltmgrd would and read through libfltuser as its service
 * will, in a private mount namespace on a fresh tmpfs per test; the
 * children, the sentinel recorder, the in-process service and each test's
 * setup: minispy_filter_fixture.h.
 */
#include "minispy_filter_fixture.h"

/* ---- the backlog ---- */

static void
backlog_delivered_oldest_first_on_connect(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	gen("g", 50);
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	assert_int_equal(s.n, 50);
	for (int i = 0; i < 50; i++) {
		char name[16];

		snprintf(name, sizeof(name), "g%05d", i);
		assert_int_equal(s.v[i].type, MINISPY_REC_EVENT);
		assert_int_equal(s.v[i].seq, (uint64_t)i + 1);
		assert_string_equal(s.v[i].path, at(name));
	}
	st = svc_stats(&s);
	assert_int_equal(st.records, 50);
	assert_int_equal(st.backlog_queued, 50);
	assert_int_equal(st.backlog_delivered, 50);
	assert_int_equal(st.backlog_dropped, 0);
	assert_int_equal(st.loss_records_sent, 0);
	assert_int_equal(st.backlog_now, 0);
	assert_int_equal(st.conn_sent, 50);
	svc_close(&s);
}

/* The sender counts a batch as sent when the port call returns, which
 * can be after the service has read it: wait for the counters to settle. */
static struct minispy_stats
svc_stats_settled(struct svc *s, uint64_t sent)
{
	int64_t end = tu_now_ms() + WAIT_MS;
	struct minispy_stats st;

	while ((st = svc_stats(s)).conn_pending != 0 || st.conn_sent < sent) {
		if (tu_now_ms() > end)
			fail_msg("minispy still holds %llu records, %llu sent",
				 (unsigned long long)st.conn_pending,
				 (unsigned long long)st.conn_sent);
		usleep(1000);
	}
	return st;
}

/* A service that takes batches gets the backlog many records to a port
 * record (a frame holds at most 511), every record exactly once and in
 * order. */
static void
backlog_reaches_a_batching_service_in_batches(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	static struct filter_message m[512];
	static uint8_t buf[65536];
	int64_t end = tu_now_ms() + WAIT_MS;
	struct minispy_stats st;
	struct svc s = { 0 };
	int most = 0;

	(void)state;
	NEED_ROOT();
	load(kv);
	gen("g", 600);
	sync_events();
	assert_int_equal(filter_connect_communication_port(
				 "minispy", FILTER_CONNECT_BATCHES, NULL, 0, &s.p),
			 0);
	while (s.n < 600) {
		int n = filter_get_messages(s.p, m, 512, buf, sizeof(buf), 100);

		if (n == -ETIMEDOUT) {
			if (tu_now_ms() > end)
				fail_msg("only %zu of 600 records arrived", s.n);
			continue;
		}
		assert_true(n > 0);
		most = n > most ? n : most;
		for (int i = 0; i < n; i++)
			svc_add(&s, &m[i].header, m[i].data, (int)m[i].length);
	}
	assert_int_equal(s.n, 600);
	assert_true(most > 1);    /* several records in one port record */
	assert_true(most <= 511); /* at most one frame's worth */
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	st = svc_stats_settled(&s, 600);
	assert_int_equal(st.conn_sent, 600);
	assert_int_equal(st.backlog_delivered, 600);
	assert_int_equal(st.conn_pending, 0);
	print_message("600 records in port records of up to %d\n", most);
	svc_close(&s);
}

/* With param.coalesce_us, records still all arrive, once, in order, and
 * a lone record waits at most about that long. */
static void
coalescing_sender_delivers_everything_in_order(void **state)
{
	const char *kv[] = { "ops", "create", "coalesce_us", "2000", NULL };
	static struct filter_message m[512];
	static uint8_t buf[65536];
	int64_t end, t0;
	struct svc s = { 0 };

	(void)state;
	NEED_ROOT();
	load(kv);
	assert_int_equal(filter_connect_communication_port(
				 "minispy", FILTER_CONNECT_BATCHES, NULL, 0, &s.p),
			 0);
	gen("c", 300);
	end = tu_now_ms() + WAIT_MS;
	while (s.n < 300) {
		int n = filter_get_messages(s.p, m, 512, buf, sizeof(buf), 100);

		if (n == -ETIMEDOUT) {
			if (tu_now_ms() > end)
				fail_msg("only %zu of 300 records arrived", s.n);
			continue;
		}
		assert_true(n > 0);
		for (int i = 0; i < n; i++)
			svc_add(&s, &m[i].header, m[i].data, (int)m[i].length);
	}
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	/* A lone record: sent after the 2 ms wait, not held longer. */
	t0 = tu_now_ms();
	gen("lone", 1);
	while (s.n < 301) {
		int n = filter_get_messages(s.p, m, 512, buf, sizeof(buf), WAIT_MS);

		assert_true(n > 0);
		for (int i = 0; i < n; i++)
			svc_add(&s, &m[i].header, m[i].data, (int)m[i].length);
	}
	print_message("a lone record took %lld ms (process start included)\n",
		      (long long)(tu_now_ms() - t0));
	assert_true(tu_now_ms() - t0 < WAIT_MS);
	assert_int_equal(s.n, 301);
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	assert_int_equal(svc_stats_settled(&s, 301).conn_sent, 301);
	svc_close(&s);
}

static void
backlog_overflow_gives_exactly_one_loss_record(void **state)
{
	const char *kv[] = { "ops", "create", "backlog", "8", NULL };
	struct minispy_stats st;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	gen("g", 20);
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	assert_int_equal(s.n, 9);
	assert_int_equal(s.v[0].type, MINISPY_REC_LOSS);
	assert_int_equal(s.v[0].cause, MINISPY_LOSS_BACKLOG);
	assert_int_equal(s.v[0].count, 12);
	assert_int_equal(s.v[0].first, 1);
	assert_int_equal(s.v[0].last, 12);
	for (int i = 1; i < 9; i++) {
		char name[16];

		snprintf(name, sizeof(name), "g%05d", i + 11);
		assert_int_equal(s.v[i].type, MINISPY_REC_EVENT);
		assert_int_equal(s.v[i].seq, (uint64_t)i + 12);
		assert_string_equal(s.v[i].path, at(name));
	}
	st = svc_stats(&s);
	assert_int_equal(st.backlog_dropped, 12);
	assert_int_equal(st.backlog_delivered, 8);
	assert_int_equal(st.loss_records_sent, 1);
	assert_int_equal(st.conn_loss_records_sent, 1);
	/* Connected now: the next record follows with no gap. */
	gen("h", 1);
	sync_events();
	svc_drain(&s);
	assert_int_equal(s.n, 10);
	assert_int_equal(s.v[9].seq, 21);
	assert_int_equal(check_seq_accounting(&s, 1), 12);
	svc_close(&s);
}

/* The last service to leave gives its unsent records back to the backlog;
 * the next one gets them, in order, before anything newer. */
static void
unsent_records_of_the_last_service_return_to_the_backlog(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open(&s);
	/* Far more than its socket holds: most stay in the queue. */
	gen("g", 1500);
	sync_events();
	svc_close(&s);
	wait_no_connection();
	gen("h", 10);
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	st = svc_stats(&s);
	assert_true(st.returned > 0);
	assert_int_equal(st.connections, 2);
	/* The new service gets a gap-free tail ending with the h files, and
	 * it starts right after the last record the first one was sent:
	 * only what sat unread in its socket is gone. */
	assert_true(s.n > 10);
	assert_int_equal(check_seq_accounting(&s, s.v[0].seq), 0);
	assert_int_equal(s.v[s.n - 1].seq, 1510);
	assert_string_equal(s.v[s.n - 1].path, at("h00009"));
	assert_int_equal(s.n, st.backlog_delivered);
	assert_int_equal(s.v[0].seq, st.sent - s.n + 1);
	assert_int_equal(st.dropped + st.backlog_dropped + st.discarded, 0);
	svc_close(&s);
}

/* ---- a slow service ---- */

static void
full_queue_drops_and_reports_the_loss_once_read(void **state)
{
	const char *kv[] = { "ops", "create", "queue_size", "16", NULL };
	const int n = 3000;
	struct minispy_stats st;
	uint64_t lost, losses = 0;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open(&s); /* and does not read */
	gen("g", n);
	sync_events();
	st = svc_stats(&s);
	assert_int_equal(st.records, (uint64_t)n);
	assert_true(st.conn_dropped > 0);
	assert_int_equal(st.dropped, st.conn_dropped);
	assert_int_equal(st.conn_queued + st.conn_dropped, (uint64_t)n);

	svc_drain(&s);
	lost = check_seq_accounting(&s, 1);
	for (size_t i = 0; i < s.n; i++)
		losses += s.v[i].type == MINISPY_REC_LOSS;
	assert_true(losses >= 1);
	assert_int_equal(lost, st.conn_dropped);
	assert_int_equal(count_events(&s) + lost, (uint64_t)n);
	st = svc_stats(&s);
	assert_int_equal(st.conn_loss_records_sent, losses);
	assert_int_equal(st.conn_sent, count_events(&s));

	/* Room again: the next record comes straight after. */
	gen("h", 1);
	sync_events();
	svc_drain(&s);
	assert_int_equal(s.v[s.n - 1].type, MINISPY_REC_EVENT);
	assert_int_equal(s.v[s.n - 1].seq, (uint64_t)n + 1);
	assert_int_equal(check_seq_accounting(&s, 1), lost);
	svc_close(&s);
}

static void
two_services_each_get_every_record(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct svc a, b;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open(&a);
	svc_open(&b);
	gen("g", 200);
	sync_events();
	svc_drain(&a);
	svc_drain(&b);
	assert_int_equal(a.n, 200);
	assert_int_equal(b.n, 200);
	assert_int_equal(check_seq_accounting(&a, 1), 0);
	assert_int_equal(check_seq_accounting(&b, 1), 0);
	for (size_t i = 0; i < 200; i++) {
		assert_int_equal(a.v[i].seq, b.v[i].seq);
		assert_string_equal(a.v[i].path, b.v[i].path);
	}
	assert_int_equal(svc_stats(&a).connections_now, 2);
	svc_close(&a);
	svc_close(&b);
}

/* ---- services' own processes ---- */

static void
run_exclude_service(struct svc *s, const char *dir, bool excluded)
{
	const char *argv[] = { self_path, "--svc-exclude", "minispy", dir, NULL };
	char path[PATH_MAX], control[PATH_MAX];
	struct child c = spawn(argv);

	assert_int_equal(child_hear(&c), 'c');
	assert_int_equal(child_hear(&c), 'x');
	snprintf(path, sizeof(path), "%s/while-connected", dir);
	snprintf(control, sizeof(control), "%s/control", dir);
	assert_int_equal(fsop("create", control, NULL), 0);
	sync_events();
	svc_drain(s);
	assert_true(find_ev(s, MINISPY_OP_CREATE, control, NULL, 0) >= 0);
	if (excluded)
		assert_int_equal(find_ev(s, MINISPY_OP_CREATE, path, NULL, c.pid), -1);
	else
		expect_ev(s, MINISPY_OP_CREATE, path, NULL, c.pid);

	/* Once it has disconnected, it is reported again. */
	child_say(&c, 'g');
	assert_int_equal(child_hear(&c), 'd');
	if (!tu_wait_until(one_connection_left, s, WAIT_MS))
		fail_msg("the service's disconnect callback did not run");
	child_say(&c, 'g');
	assert_int_equal(child_hear(&c), 'y');
	snprintf(path, sizeof(path), "%s/after-close", dir);
	expect_ev(s, MINISPY_OP_CREATE, path, NULL, c.pid);
	assert_int_equal(child_wait(&c), 0);
}

static void
services_own_processes_are_excluded_unless_told_otherwise(void **state)
{
	const char *kv1[] = { "ops", "create", NULL };
	const char *kv2[] = { "ops", "create", "exclude_services", "false", NULL };
	struct svc s;

	(void)state;
	NEED_ROOT();
	assert_int_equal(mkdir(at("1"), 0777), 0);
	assert_int_equal(mkdir(at("2"), 0777), 0);
	load(kv1);
	svc_open(&s);
	run_exclude_service(&s, at("1"), true);
	svc_close(&s);
	unload();

	load(kv2);
	svc_open(&s);
	run_exclude_service(&s, at("2"), false);
	svc_close(&s);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(backlog_delivered_oldest_first_on_connect),
		T(backlog_reaches_a_batching_service_in_batches),
		T(coalescing_sender_delivers_everything_in_order),
		T(backlog_overflow_gives_exactly_one_loss_record),
		T(unsent_records_of_the_last_service_return_to_the_backlog),
		T(full_queue_drops_and_reports_the_loss_once_read),
		T(two_services_each_get_every_record),
		T(services_own_processes_are_excluded_unless_told_otherwise),
#undef T
	};
	int r = minispy_filter_fixture_init("test_minispy_filter_backlog", argc, argv);

	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("minispy_filter", tests, NULL, NULL);
}
