/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_filter_services.c — services that come and go: confirmed
 * and unconfirmed records of a departed service (DEPARTED losses, or
 * delivered again to the next one), the seed scenario of services killed
 * and stopped while events flow, unregistering with a service connected,
 * and unloads racing connects and events without leaking descriptors.
 *
 * minispy on real fanotify (root only), loaded from minispy.so through its
 * entry point as fltmgrd would and read through libfltuser as its service
 * will, in a private mount namespace on a fresh tmpfs per test; the
 * children, the sentinel recorder, the in-process service and each test's
 * setup: minispy_filter_fixture.h.
 */
#include "minispy_filter_fixture.h"

/* ---- confirmation and DEPARTED losses ---- */

struct unconf_wait {
	struct svc *s;
	uint64_t n;
};

static int
has_unconfirmed(void *arg)
{
	struct unconf_wait *w = arg;

	return svc_stats(w->s).conn_unconfirmed == w->n;
}

static void
wait_unconfirmed(struct svc *s, uint64_t n)
{
	struct unconf_wait w = { s, n };

	if (!tu_wait_until(has_unconfirmed, &w, WAIT_MS))
		fail_msg("the filter holds %llu unconfirmed records, not %llu",
			 (unsigned long long)svc_stats(s).conn_unconfirmed,
			 (unsigned long long)n);
}

static void
create_files(const char *prefix, int n)
{
	char name[64];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		assert_int_equal(fsop("create", at(name), NULL), 0);
	}
	sync_events();
}

/*
 * A confirming service A reads 2 of 5 records, confirms them and dies
 * after service B connected: the 3 it never confirmed were made before B
 * existed, so B gets one DEPARTED loss record naming exactly them. Bad
 * confirmations are refused and counted.
 */
static void
unconfirmed_records_of_a_departed_service_are_reported(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc a, b;
	int lost = -1;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open_confirming(&a);
	create_files("x", 5); /* seq 1-5 */
	wait_unconfirmed(&a, 5);
	assert_int_equal(svc_pump(&a, WAIT_MS), 0);
	assert_int_equal(svc_pump(&a, WAIT_MS), 0);
	assert_int_equal(a.v[0].seq, 1);
	assert_int_equal(a.v[1].seq, 2);
	assert_int_equal(svc_confirm(&a, 2), 0);
	assert_int_equal(svc_confirm(&a, 1), -ERANGE); /* backwards */
	assert_int_equal(svc_confirm(&a, 6), -ERANGE); /* more than was sent */
	st = svc_stats(&a);
	assert_int_equal(st.conn_confirmed, 2);
	assert_int_equal(st.conn_unconfirmed, 3);
	assert_int_equal(st.bad_calls, 2);

	svc_open(&b);
	create_files("y", 2); /* seq 6-7: both services get them */
	wait_unconfirmed(&a, 5);
	svc_close(&a);
	if (!tu_wait_until(one_connection_left, &b, WAIT_MS))
		fail_msg("A's disconnect callback did not run");
	svc_drain(&b);
	for (size_t i = 0; i < b.n; i++) {
		if (b.v[i].type != MINISPY_REC_LOSS)
			continue;
		assert_int_equal(lost, -1); /* exactly one */
		lost = (int)i;
	}
	assert_true(lost >= 0);
	assert_int_equal(b.v[lost].cause, MINISPY_LOSS_DEPARTED);
	assert_int_equal(b.v[lost].count, 3);
	assert_int_equal(b.v[lost].first, 3);
	assert_int_equal(b.v[lost].last, 5);
	expect_ev(&b, MINISPY_OP_CREATE, at("y0"), NULL, 0);
	expect_ev(&b, MINISPY_OP_CREATE, at("y1"), NULL, 0);
	st = svc_stats(&b);
	assert_int_equal(st.departed, 3);
	assert_int_equal(st.unconfirmed, 5); /* x2-x4, y0, y1 */
	assert_int_equal(st.discarded, 2);   /* y0, y1: B has them */
	svc_close(&b);
}

/* A confirming service that dies alone: what it did not confirm goes
 * back to the backlog and the next service gets it again, same seqs. */
static void
unconfirmed_records_of_the_last_service_are_delivered_again(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc a, b;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open_confirming(&a);
	create_files("z", 3); /* seq 1-3 */
	wait_unconfirmed(&a, 3);
	assert_int_equal(svc_pump(&a, WAIT_MS), 0); /* read, never confirmed */
	svc_close(&a);
	/* B must connect after A's disconnect callback has run, or A is not
	 * the last service and its records are reported departed instead. */
	wait_no_connection();
	svc_open(&b);
	svc_drain(&b);
	assert_int_equal(b.n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(b.v[i].type, MINISPY_REC_EVENT);
		assert_int_equal(b.v[i].seq, i + 1);
	}
	st = svc_stats(&b);
	assert_int_equal(st.unconfirmed, 3);
	assert_int_equal(st.returned, 3);
	assert_int_equal(st.confirmed, 0);
	svc_close(&b);
}

/* ---- the seed: services stopped and started at any moment ---- */

static int
cycles_wanted(void)
{
	const char *e = getenv("FLTMGR_MINISPY_CYCLES");

	return e && atoi(e) > 0 ? atoi(e) : 200;
}

static void
seed_services_killed_and_stopped_while_events_flow(void **state)
{
	const char *load_argv[] = { self_path, "--load", wdir, NULL };
	/* Small queues, so that stopped services overflow theirs and the
	 * backlog overflows between lives: every loss path runs. */
	const char *kv[] = { "queue_size", "256", "backlog", "1024", NULL };
	const int cycles = cycles_wanted();
	unsigned seed = 4242;
	int statuses[CHURN_MODES_] = { 0 };
	struct flt_engine_stats es;
	struct minispy_stats st;
	struct child loadgen;
	struct svc s;
	int own = 0;

	(void)state;
	NEED_ROOT();
	load(kv);
	loadgen = spawn(load_argv);
	for (int i = 0; i < cycles; i++) {
		char modebuf[8], seedbuf[16];
		const char *argv[] = { self_path, "--svc-churn", "minispy",
				       modebuf,   seedbuf,       NULL };
		int mode = i % CHURN_MODES_, status;
		struct child c;

		snprintf(modebuf, sizeof(modebuf), "%d", mode);
		snprintf(seedbuf, sizeof(seedbuf), "%u", rand_r(&seed));
		c = spawn(argv);
		if (child_hear(&c) != 'r')
			fail_msg("cycle %d: the service could not connect (status %d)", i,
				 child_wait(&c));
		if (mode == CHURN_KILLED) {
			usleep(rand_r(&seed) % 3000);
			kill(c.pid, SIGKILL);
		} else if (mode == CHURN_STOPPED) {
			kill(c.pid, SIGSTOP);
			usleep(rand_r(&seed) % 5000);
			if (i & 1)
				kill(c.pid, SIGCONT);
			kill(c.pid, SIGKILL);
		}
		/* Now and then a second service of our own comes and goes. */
		if (i % 10 == 5) {
			svc_open(&s);
			for (int k = 0; k < 20; k++)
				(void)svc_pump(&s, 1);
			svc_close(&s);
			own++;
		}
		status = child_wait(&c);
		if (mode == CHURN_CLOSE || mode == CHURN_EXIT)
			assert_int_equal(status, 0);
		else
			assert_int_equal(status, 128 + SIGKILL);
		statuses[mode]++;
	}
	kill(loadgen.pid, SIGKILL);
	assert_int_equal(child_wait(&loadgen), 128 + SIGKILL);
	sync_events(); /* the kernel queue has drained */

	/* The filter still works, and its books balance. */
	svc_open(&s);
	assert_int_equal(fsop("create", at("final"), NULL), 0);
	expect_ev(&s, MINISPY_OP_CREATE, at("final"), NULL, 0);
	sync_events();
	if (!tu_wait_until(one_connection_left, &s, WAIT_MS))
		fail_msg("services' disconnect callbacks did not all run");
	svc_drain(&s);
	st = svc_stats(&s);
	assert_int_equal(st.connections, (uint64_t)(cycles + own + 1));
	/* Every copy put in a connection was sent or handed on when its
	 * connection ended; sent-but-unconfirmed copies were handed on too. */
	assert_int_equal(st.sent + st.discarded + st.departed + st.returned -
				 st.unconfirmed,
			 st.queued + st.backlog_delivered);
	assert_int_equal(st.backlog_queued,
			 st.backlog_dropped + st.backlog_delivered + st.backlog_now);
	/* Whatever this service got (backlog and new records) has no
	 * unreported gap. */
	(void)check_seq_accounting(&s, s.v[0].type == MINISPY_REC_EVENT ? s.v[0].seq
									: s.v[0].first);
	print_message(
		"seed: %d service lives (close %d, exit %d, self-kill %d, killed %d, "
		"stopped %d) + %d in-process; %llu records, %llu sent, %llu "
		"dropped, %llu discarded, %llu returned, %llu backlog dropped, "
		"%llu loss records\n",
		cycles, statuses[0], statuses[1], statuses[2], statuses[3], statuses[4],
		own, (unsigned long long)st.records, (unsigned long long)st.sent,
		(unsigned long long)st.dropped, (unsigned long long)st.discarded,
		(unsigned long long)st.returned, (unsigned long long)st.backlog_dropped,
		(unsigned long long)st.loss_records_sent);
	/* Nothing the engine read was dropped: every notification was
	 * ignored, delivered (with or without its path) or reported lost. */
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	assert_int_equal(es.notification_events, es.notif_ignored + es.notif_resolved +
							 es.notif_unresolved +
							 es.notif_lost);
	assert_int_equal(es.dropped, 0);
	print_message("seed: engine read %llu notifications: %llu ignored, %llu with "
		      "paths, %llu with unknown paths, %llu lost; minispy made %llu "
		      "records with unknown paths\n",
		      (unsigned long long)es.notification_events,
		      (unsigned long long)es.notif_ignored,
		      (unsigned long long)es.notif_resolved,
		      (unsigned long long)es.notif_unresolved,
		      (unsigned long long)es.notif_lost,
		      (unsigned long long)st.unknown_paths);
	svc_close(&s);
}

/* ---- unloading ---- */

struct blocked_get {
	filter_port *p;
	int result;
};

static void *
get_forever(void *arg)
{
	static uint8_t buf[MINISPY_RECORD_MAX];
	struct blocked_get *g = arg;
	struct filter_message_header h;

	do
		g->result = filter_get_message(g->p, &h, buf, sizeof(buf), -1);
	while (g->result >= 0);
	return NULL;
}

static void
unregister_with_a_service_connected_disconnects_it(void **state)
{
	struct blocked_get g;
	filter_port *p2 = NULL;
	pthread_t t;
	struct svc s;
	int r;

	(void)state;
	NEED_ROOT();
	load(NULL);
	svc_open(&s);
	gen("g", 500); /* records in flight, the sender blocked on the socket */
	sync_events();
	g = (struct blocked_get){ .p = s.p, .result = 0 };
	assert_int_equal(pthread_create(&t, NULL, get_forever, &g), 0);
	unload();
	pthread_join(t, NULL);
	assert_int_equal(g.result, -ENOTCONN);
	r = filter_connect_communication_port("minispy", 0, NULL, 0, &p2);
	assert_true(r == -ENOENT || r == -ECONNREFUSED);
	svc_close(&s);
}

static atomic_bool churn_stop;

static void *
connect_churn(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&churn_stop)) {
		uint8_t buf[MINISPY_RECORD_MAX];
		struct filter_message_header h;
		filter_port *p = NULL;

		if (filter_connect_communication_port("minispy", 0, NULL, 0, &p) < 0) {
			usleep(200);
			continue;
		}
		for (int k = (int)(rand_r(&seed) % 8); k > 0; k--)
			if (filter_get_message(p, &h, buf, sizeof(buf), 1) == -ENOTCONN)
				break;
		filter_close_port(p);
	}
	return NULL;
}

static void
unload_races_connects_and_events(void **state)
{
	const char *load_argv[] = { self_path, "--load", wdir, NULL };
	unsigned seed = 99;
	int fds = -1;

	(void)state;
	NEED_ROOT();
	for (int round = 0; round < 15; round++) {
		struct child loadgen;
		pthread_t t[2];

		load(NULL);
		loadgen = spawn(load_argv);
		atomic_store(&churn_stop, false);
		for (int i = 0; i < 2; i++)
			assert_int_equal(
				pthread_create(&t[i], NULL, connect_churn,
					       (void *)(uintptr_t)(round * 2 + i)),
				0);
		usleep(rand_r(&seed) % 30000);
		unload();
		atomic_store(&churn_stop, true);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		kill(loadgen.pid, SIGKILL);
		assert_int_equal(child_wait(&loadgen), 128 + SIGKILL);
		/* Round 0 started the engine; after that, nothing may stay
		 * open across a load and unload. The engine's reader holds
		 * each event's pidfd for a moment, so count once it has
		 * drained the queue, at the quietest moment. */
		sync_events();
		if (round == 0) {
			fds = tu_count_fds();
			for (int i = 0; i < 50; i++, usleep(1000))
				if (tu_count_fds() < fds)
					fds = tu_count_fds();
		} else if (!tu_wait_until(tu_fds_at_most, &fds, WAIT_MS)) {
			fail_msg("round %d: %d descriptors open, %d before", round,
				 tu_count_fds(), fds);
		}
	}
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(unconfirmed_records_of_a_departed_service_are_reported),
		T(unconfirmed_records_of_the_last_service_are_delivered_again),
		T(seed_services_killed_and_stopped_while_events_flow),
		T(unregister_with_a_service_connected_disconnects_it),
		T(unload_races_connects_and_events),
#undef T
	};
	int r = minispy_filter_fixture_init("test_minispy_filter_services", argc, argv);

	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("minispy_filter", tests, NULL, NULL);
}
