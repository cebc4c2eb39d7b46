/* SPDX-License-Identifier: MIT */
/*
 * test_scanner_inline.c — the inline path: small files answered from
 * the pre callback, big ones pended; inline_ms = 0; a stopped or slow
 * service pausing the inline path.
 *
 * The real fltmgrd loading scanner.so and the real scanner service, in a
 * private mount namespace, root only; the daemon, the service, the paths
 * of each test and its setup: scanner_fixture.h.
 */
#include "scanner_fixture.h"

/* ---- the inline path (sent from the pre callback) ---- */

/* With an idle service, small files get their verdict from the pre
 * callback itself; a file over param.inline_max_size goes through a
 * sender. The verdicts are the same either way. */
static void
small_files_are_answered_inline_big_ones_pended(void **state)
{
	uint64_t a[SCANNER_CTR_COUNT_], b[SCANNER_CTR_COUNT_], c[SCANNER_CTR_COUNT_];

	(void)state;
	daemon_start_params(5000, false, "param.inline_max_size = 65536\n");
	svc_start(NULL);
	write_sized(at("small-clean"), 1000, false);
	write_sized(at("small-bad"), 1000, true);
	write_sized(at("big-clean"), 65537, false);
	write_sized(at("big-bad"), 65537, true);
	usleep(100000); /* let the writes' notifications pass */
	filter_stats(a);
	assert_int_equal(try_open(at("small-clean"), NULL), 0);
	assert_int_equal(try_open(at("small-bad"), NULL), EPERM);
	filter_stats(b);
	assert_int_equal(try_open(at("big-clean"), NULL), 0);
	assert_int_equal(try_open(at("big-bad"), NULL), EPERM);
	filter_stats(c);
	/* Both small ones inline (each send is counted, even one that ran
	 * out of time), neither big one. Unless a loaded machine made inline
	 * sends slow or run out of time, which pauses the path for a second. */
	if (c[SCANNER_CTR_inline_pauses] == 0)
		assert_int_equal(
			b[SCANNER_CTR_inline_sends] - a[SCANNER_CTR_inline_sends], 2);
	else
		printf("note: an inline send ran out of time; inline path paused\n");
	assert_int_equal(c[SCANNER_CTR_inline_sends], b[SCANNER_CTR_inline_sends]);
	assert_true(c[SCANNER_CTR_requests] - b[SCANNER_CTR_requests] >= 2);
	assert_int_equal(c[SCANNER_CTR_infected] - a[SCANNER_CTR_infected], 2);
	assert_int_equal(c[SCANNER_CTR_deadline_defaults], 0);
	assert_int_equal(c[SCANNER_CTR_errors], 0);
	/* A verdict given inline is cached like any other. */
	assert_int_equal(try_open(at("small-bad"), NULL), EPERM);
	filter_stats(b);
	assert_true(b[SCANNER_CTR_cache_denies] >= 1);
}

/* param.inline_ms = 0: every request is pended and sent by a sender. */
static void
inline_ms_zero_pends_every_request(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	daemon_start_params(DEADLINE, false, "param.inline_ms = 0\n");
	svc_start(NULL);
	tu_write_file(at("clean.txt"), CLEANTXT);
	tu_write_file(at("bad.txt"), MARKER);
	assert_int_equal(try_open(at("clean.txt"), NULL), 0);
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_inline_sends], 0);
	assert_true(v[SCANNER_CTR_requests] >= 2);
	assert_int_equal(v[SCANNER_CTR_infected], 1);
}

/* A stopped service holds the engine's reader for param.inline_ms only:
 * the request is then pended (sent again through a sender) and answered
 * by default at the deadline, as without the inline path; the next
 * second sends nothing inline. */
static void
stopped_service_inline_wait_is_pended(void **state)
{
	uint64_t a[SCANNER_CTR_COUNT_], v[SCANNER_CTR_COUNT_];
	int64_t ms;

	(void)state;
	daemon_start(DEADLINE, true);
	svc_start(NULL);
	tu_write_file(at("f"), CLEANTXT); /* its own open was scanned too */
	svc_stop_signal();
	filter_stats(a);
	/* A loaded machine may have made an earlier inline send slow or run
	 * out of time, which pauses the inline path for a second: let it
	 * pass. */
	if (a[SCANNER_CTR_inline_pauses])
		usleep(1100000);
	assert_int_equal(try_open(at("f"), &ms), EPERM);
	assert_true(ms >= DEADLINE - 100);
	assert_true(ms <= DEADLINE + 100);
	/* On a loaded machine the engine's watchdog may answer first; the
	 * sender still counts its own default a moment later. */
	for (int64_t end = tu_now_ms() + WAIT_MS;;) {
		filter_stats(v);
		if (v[SCANNER_CTR_deadline_defaults] > a[SCANNER_CTR_deadline_defaults] ||
		    tu_now_ms() > end)
			break;
		usleep(10000);
	}
	assert_int_equal(v[SCANNER_CTR_inline_sends] - a[SCANNER_CTR_inline_sends], 1);
	assert_int_equal(v[SCANNER_CTR_inline_timeouts] - a[SCANNER_CTR_inline_timeouts],
			 1);
	assert_true(v[SCANNER_CTR_inline_pauses] - a[SCANNER_CTR_inline_pauses] >= 1);
	/* inline, then resent by a sender */
	assert_int_equal(v[SCANNER_CTR_requests] - a[SCANNER_CTR_requests], 2);
	assert_int_equal(
		v[SCANNER_CTR_deadline_defaults] - a[SCANNER_CTR_deadline_defaults], 1);
	assert_int_equal(kill(svc_pid, SIGCONT), 0);
	/* The service scans both copies; the late reply is refused, and the
	 * file is allowed once asked again. */
	assert_int_equal(try_open(at("f"), &ms), 0);
	assert_true(ms < DEADLINE);
}

/* A service whose scans take milliseconds (large rule sets) gets its
 * requests through the senders, where they can be scanned in parallel:
 * after eight slow inline exchanges in a row the inline path pauses.
 * This process plays the slow service; a child opens. */
static void
slow_service_pauses_inline_path(void **state)
{
	enum { N = 16 };
	uint8_t ctx[SCANNER_CONTEXT_SIZE], buf[SCANNER_REQ_MAX],
		reply[SCANNER_REPLY_SIZE];
	struct filter_message_header h;
	uint64_t v[SCANNER_CTR_COUNT_];
	filter_port *p = NULL;
	char path[300];
	pid_t child;
	int st, served = 0;
	int64_t t0;

	(void)state;
	for (int i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		tu_write_file(at(name), CLEANTXT); /* before anyone watches */
	}
	daemon_start(DEADLINE * 3, false);
	snprintf(path, sizeof(path), "%s/scanner", rundir);
	scanner_context_encode(1, ctx);
	assert_int_equal(filter_connect_communication_port(path, 0, ctx, sizeof(ctx), &p),
			 0);
	t0 = tu_now_ms();
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		for (int i = 0; i < N; i++) {
			char name[16];

			snprintf(name, sizeof(name), "s%d", i);
			if (try_open(at(name), NULL) != 0)
				_exit(1);
		}
		_exit(0);
	}
	scanner_reply_encode(SCANNER_CLEAN, reply);
	for (;;) { /* serve until the child is done */
		int r = filter_get_message(p, &h, buf, sizeof(buf), 200);

		if (r == -ETIMEDOUT) {
			if (waitpid(child, &st, WNOHANG) == child)
				break;
			assert_true(tu_now_ms() - t0 < WAIT_MS);
			continue;
		}
		assert_true(r > 0);
		if (h.fd >= 0)
			close(h.fd);
		usleep(3000); /* a slow scan */
		r = filter_reply_message(p, h.message_id, 0, reply, sizeof(reply));
		/* -ENOENT: on a loaded machine the scan outlasted the inline
		 * wait, and the request came again through a sender. */
		assert_true(r == 0 || r == -ENOENT);
		served++;
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_requests], N + v[SCANNER_CTR_inline_timeouts]);
	assert_int_equal(served, (int)v[SCANNER_CTR_requests]);
	assert_int_equal(v[SCANNER_CTR_clean], N);
	assert_true(v[SCANNER_CTR_inline_pauses] >= 1);
	assert_true(v[SCANNER_CTR_inline_sends] < N);
	/* Eight slow exchanges in a row (over 1 ms each) before each pause,
	 * and the rest of its second through the sender. */
	assert_true(v[SCANNER_CTR_inline_sends] <=
		    8 * (1 + (uint64_t)(tu_now_ms() - t0) / 1000));
	filter_close_port(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			small_files_are_answered_inline_big_ones_pended, setup, teardown),
		cmocka_unit_test_setup_teardown(inline_ms_zero_pends_every_request, setup,
						teardown),
		cmocka_unit_test_setup_teardown(stopped_service_inline_wait_is_pended,
						setup, teardown),
		cmocka_unit_test_setup_teardown(slow_service_pauses_inline_path, setup,
						teardown),
	};
	int r;

	r = scanner_fixture_init("test_scanner_inline");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	scanner_fixture_fini();
	return r;
}
