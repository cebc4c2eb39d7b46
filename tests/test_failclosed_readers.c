/* SPDX-License-Identifier: MIT */
/*
 * test_failclosed_readers.c — every reader of the engine held: by filters
 * stuck in their pre callback, by slow but timely scans, and a slow
 * filter above with an allowing default; the events must get the
 * strictest default, never an allow (docs/security.md section 11: rows
 * 4 and 4b; docs/faults.md).
 *
 * An unprivileged user (uid/gid 65534, in a forked child) must not get a
 * marked file past a filter whose verdict is deny; root only. The test
 * filter, the attacker's children and each test's setup:
 * failclosed_fixture.h.
 */
#include "failclosed_fixture.h"

/* ==== 5. every reader stuck ==== */

static flt_port g_client; /* the connect callback's, under the port lock */
static _Atomic(flt_filter *) stuck_f;
static atomic_int stuck_entered, stuck_returned, stuck_timedout, stuck_other;
static atomic_llong stuck_last_entry_ms, stuck_max_ms;

static int
stuck_connect(flt_port client, void *sc, const void *ctx, size_t ctx_len,
	      const struct flt_peer *peer, void **ret_cookie)
{
	(void)sc;
	(void)ctx;
	(void)ctx_len;
	(void)peer;
	(void)ret_cookie;
	g_client = client;
	return 0;
}

static void
stuck_disconnect(void *cookie)
{
	(void)cookie;
	flt_close_client_port(atomic_load(&stuck_f), &g_client);
}

static int
stuck_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
	      size_t *ret_out_len)
{
	(void)cookie;
	(void)in;
	(void)in_len;
	(void)out;
	(void)out_cap;
	*ret_out_len = 0;
	return 0;
}

/* Asks the service and waits for ever (FLT_INFINITE); the service never
 * reads. Allows only on the service's explicit "a". */
static enum flt_preop_status
stuck_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	char reply[16];
	size_t rlen = sizeof(reply);
	int64_t t0 = tu_now_ms(), dt;
	long long prev;
	int r;

	(void)ic;
	(void)cc;
	atomic_fetch_add(&stuck_entered, 1);
	atomic_store(&stuck_last_entry_ms, t0);
	r = flt_send_message(atomic_load(&stuck_f), &g_client, "scan", 4, reply, &rlen,
			     FLT_INFINITE);
	dt = tu_now_ms() - t0;
	prev = atomic_load(&stuck_max_ms);
	while (dt > prev && !atomic_compare_exchange_weak(&stuck_max_ms, &prev, dt))
		;
	if (r == -ETIMEDOUT)
		atomic_fetch_add(&stuck_timedout, 1);
	else if (r != 0)
		atomic_fetch_add(&stuck_other, 1);
	atomic_fetch_add(&stuck_returned, 1);
	if (r == 0 && rlen >= 1 && reply[0] == 'a')
		return FLT_PREOP_SUCCESS_NO_CALLBACK;
	d->status = -EPERM;
	return FLT_PREOP_COMPLETE;
}

/* The service: connects, says so on stdout, then never reads. */
static int
stuck_service_main(const char *port_path)
{
	filter_port *p = NULL;
	int r = filter_connect_communication_port(port_path, 0, NULL, 0, &p);

	if (r < 0) {
		fprintf(stderr, "stuck service: connect %s: %s\n", port_path,
			strerror(-r));
		return 1;
	}
	if (write(STDOUT_FILENO, "c", 1) != 1)
		return 1;
	for (;;)
		pause();
}

static int
kid_open_at_go(void *path)
{
	int fd;

	kid_rendezvous();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return R_ERRNO(errno);
	close(fd);
	return R_CLEAN; /* opened: the file is clean, so any open is a success */
}

#define STUCK_OPENERS 12

static void
all_readers_stuck_gives_default_not_allow(void **state)
{
	const struct flt_operation_registration op = { FLT_OP_OPEN, stuck_pre, NULL };
	struct flt_registration reg = { .name = "stuck",
					.altitude = "300000",
					.operations = &op,
					.n_operations = 1,
					.deadline_ms = DEADLINE_MS,
					.default_verdict = -EPERM };
	struct flt_port_attributes pa = { .name = "fc-stuck", .mode = 0600 };
	struct flt_engine_stats es;
	struct flt_filter_stats fs;
	struct kid k[STUCK_OPENERS];
	char port_path[PATH_MAX], c;
	flt_port server = FLT_PORT_NULL;
	flt_filter *f = NULL;
	int out[2], codes[STUCK_OPENERS], opened = 0, ents, rets;
	int64_t t0, t_opens;
	struct pollfd p;
	bool all_returned;

	(void)state;
	NEED_ROOT();
	put(at("watched/clean"), C_TEXT, 0);
	atomic_store(&stuck_entered, 0);
	atomic_store(&stuck_returned, 0);
	atomic_store(&stuck_timedout, 0);
	atomic_store(&stuck_other, 0);
	atomic_store(&stuck_max_ms, 0);
	g_client = FLT_PORT_NULL;
	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	atomic_store(&stuck_f, f);
	assert_int_equal(flt_create_communication_port(f, &server, &pa, NULL,
						       stuck_connect, stuck_disconnect,
						       stuck_message, 1),
			 0);
	snprintf(port_path, sizeof(port_path), "%s/fc-stuck",
		 flt_manager_runtime_dir(g_m));

	/* The service, a fresh process (exec of this program). */
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	stuck_service_pid = fork();
	assert_true(stuck_service_pid >= 0);
	if (stuck_service_pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(self_exe, self_exe, "--stuck-service", port_path, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	p = (struct pollfd){ .fd = out[0], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 20000), 1);
	assert_int_equal(read(out[0], &c, 1), 1);
	close(out[0]);

	assert_int_equal(flt_attach(f, at("watched"), FLT_INSTANCE_SUBTREE), 0);
	assert_int_equal(flt_start_filtering(f), 0);
	for (int i = 0; i < STUCK_OPENERS; i++)
		k[i] = kid_start(false, kid_open_at_go, (void *)at("watched/clean"));
	for (int i = 0; i < STUCK_OPENERS; i++)
		assert_true(kid_wait_ready(&k[i], KID_WAIT_MS));
	t0 = tu_now_ms();
	for (int i = 0; i < STUCK_OPENERS; i++)
		kid_go(&k[i]);
	for (int i = 0; i < STUCK_OPENERS; i++) {
		codes[i] = kid_finish(&k[i], KID_WAIT_MS);
		opened += codes[i] == R_CLEAN || codes[i] == R_WIN;
	}
	t_opens = tu_now_ms() - t0;
	/* The callbacks must come back once the deadline has cut their
	 * sends: within deadline + 2 s of the last one's entry. */
	do {
		ents = atomic_load(&stuck_entered);
		rets = atomic_load(&stuck_returned);
		all_returned = ents > 0 && rets == ents;
		if (all_returned)
			break;
		usleep(10000);
	} while (tu_now_ms() < atomic_load(&stuck_last_entry_ms) + DEADLINE_MS + 2000);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	assert_int_equal(flt_filter_get_stats(f, &fs), 0);
	print_message("%d concurrent opens of a clean file: %d succeeded, %d denied, all "
		      "answered after %lld ms (deadline %d)\n",
		      STUCK_OPENERS, opened, STUCK_OPENERS - opened, (long long)t_opens,
		      DEADLINE_MS);
	print_message("callbacks: %d entered, %d returned by deadline + 2 s (%d with "
		      "-ETIMEDOUT, %d with another error; longest send %lld ms)\n",
		      ents, rets, atomic_load(&stuck_timedout), atomic_load(&stuck_other),
		      (long long)atomic_load(&stuck_max_ms));
	print_message(
		"engine: emergency_answers %llu, allowed %llu, denied %llu, "
		"deadline_defaults %llu, readers %u; filter: deadline_defaults %llu, "
		"timeouts_capped %llu\n",
		(unsigned long long)es.emergency_answers, (unsigned long long)es.allowed,
		(unsigned long long)es.denied, (unsigned long long)es.deadline_defaults,
		es.readers, (unsigned long long)fs.deadline_defaults,
		(unsigned long long)fs.timeouts_capped);
	/* Release the senders before asserting (teardown would too). */
	kill(stuck_service_pid, SIGKILL);
	(void)waitpid(stuck_service_pid, NULL, 0);
	stuck_service_pid = 0;
	assert_int_equal(opened, 0);
	assert_true(all_returned);
}

/* ==== 5b. every reader busy with slow (but timely) scans ==== */

#define SLOW_MS      2500
#define SLOW_OPENERS 12

static enum flt_preop_status
slow_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)ic;
	(void)cc;
	asked_add(d->dev, d->ino);
	if (tu_fd_contains(d->fd, MARKER, SCAN_MAX) != 0) {
		d->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	if (tu_fd_contains(d->fd, "SLOW-SCAN", SCAN_MAX) == 1)
		usleep(SLOW_MS * 1000); /* a big file: slow, within the deadline */
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static void
all_readers_busy_does_not_let_a_marked_file_through(void **state)
{
	struct flt_engine_stats es;
	struct kid k[SLOW_OPENERS];
	char name[64];
	int wins = 0, tries = 0, codes[8], nm;
	uint32_t readers = 0;
	int64_t t0;

	(void)state;
	NEED_ROOT();
	for (int i = 0; i < SLOW_OPENERS; i++) {
		snprintf(name, sizeof(name), "watched/slow%d", i);
		assert_int_equal(write_at(AT_FDCWD, at(name), "SLOW-SCAN\n", 10, 0644),
				 0);
	}
	put(at("watched/marked"), C_TEXT_MARKED, 0);
	start_filter("slowscan", "300000", slow_pre, 3 * SLOW_MS, 0, at("watched"),
		     FLT_INSTANCE_SUBTREE);
	expect_plain_denial(at("watched/marked"), NULL);
	nm = asked(at("watched/marked"));

	/* uid 65534 keeps the filter busy with slow files... */
	t0 = tu_now_ms();
	for (int i = 0; i < SLOW_OPENERS; i++) {
		snprintf(name, sizeof(name), "watched/slow%d", i);
		k[i] = kid_start(true, kid_open, (void *)at(name));
	}
	do {
		assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
		readers = es.readers;
		if (readers >= 8)
			break;
		usleep(5000);
	} while (tu_now_ms() - t0 < SLOW_MS / 2);
	usleep(50000); /* the last reader's takeover delay */
	/* ...while root opens the marked file, well within the slow scans. */
	do {
		codes[tries] = root_open(at("watched/marked"));
		wins += codes[tries++] == R_WIN;
	} while (tries < 8 && tu_now_ms() - t0 < SLOW_MS - 500);
	for (int i = 0; i < SLOW_OPENERS; i++)
		(void)kid_finish(&k[i], KID_WAIT_MS);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message(
		"%d slow opens by uid %d (readers: %u); root's %d opens of the marked "
		"file: %d read it (first: %s); filter asked %d time(s) about it; "
		"emergency_answers %llu\n",
		SLOW_OPENERS, NOBODY, readers, tries, wins,
		tries ? code_str(codes[0]) : "-", asked(at("watched/marked")) - nm,
		(unsigned long long)es.emergency_answers);
	assert_true(tries > 0);
	assert_int_equal(wins, 0);
}

/* ==== a slow filter above, whose default is allow ==== */

#define BIG_BYTES              (2u << 20)
#define SLOW_ALLOW_DEADLINE_MS 300

/* A scanner that is slow on big files (past its deadline) and allows by
 * default: the attacker chooses the size. */
static enum flt_preop_status
slow_on_big_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	struct stat st;

	(void)ic;
	(void)cc;
	atomic_fetch_add(&passthrough_calls, 1);
	if (fstat(d->fd, &st) == 0 && st.st_size >= (off_t)BIG_BYTES)
		usleep(3 * SLOW_ALLOW_DEADLINE_MS * 1000);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

/* The attacker writes its marked program, then makes it big (zeros after
 * the end; truncate() by path opens nothing). */
static int
atk_make_big(void *arg)
{
	int r = put_at(AT_FDCWD, arg, C_PROG_MARKED, 0755);

	if (r < 0)
		return R_ERRNO(-r);
	return truncate(arg, (off_t)BIG_BYTES) < 0 ? R_ERRNO(errno) : 0;
}

static void
slow_allowing_filter_above_does_not_skip_a_denying_one(void **state)
{
	struct flt_engine_stats es;
	int o, e, n0, n1, pt;
	int64_t t0, el;

	(void)state;
	NEED_ROOT();
	put(at("watched/small"), C_PROG_MARKED, 0);
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	start_filter_ex("slowallow", "400000", slow_on_big_pre, SLOW_ALLOW_DEADLINE_MS, 0,
			0, scratch, FLT_INSTANCE_FILESYSTEM);
	expect_plain_denial(at("watched/small"), at("watched/small"));

	/* uid 65534 makes a big marked program. */
	assert_int_equal(run_kid(true, atk_make_big, (void *)at("watched/prog")), 0);
	n0 = asked(at("watched/prog"));
	pt = atomic_load(&passthrough_calls);
	t0 = tu_now_ms();
	o = root_open(at("watched/prog"));
	e = root_exec(at("watched/prog"));
	el = tu_now_ms() - t0;
	n1 = asked(at("watched/prog"));
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message(
		"%u-byte marked program: root's open %s, exec %s (%lld ms); the slow "
		"filter (default allow, deadline %d ms) asked %d time(s), the marker "
		"filter (default deny) %d; engine deadline_defaults %llu\n",
		BIG_BYTES, code_str(o), code_str(e), (long long)el,
		SLOW_ALLOW_DEADLINE_MS, atomic_load(&passthrough_calls) - pt, n1 - n0,
		(unsigned long long)es.deadline_defaults);
	assert_true(denied(o));
	assert_true(denied(e));
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(all_readers_stuck_gives_default_not_allow),
		T(all_readers_busy_does_not_let_a_marked_file_through),
		T(slow_allowing_filter_above_does_not_skip_a_denying_one),
#undef T
	};
	int r;

	if (argc == 3 && !strcmp(argv[1], "--stuck-service"))
		return stuck_service_main(argv[2]);
	if (argc == 2) /* a pattern: run only the tests it matches */
		cmocka_set_test_filter(argv[1]);
	r = failclosed_fixture_init("test_failclosed_readers");
	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("failclosed", tests, NULL, NULL);
}
