/* SPDX-License-Identifier: MIT */
/*
 * test_scanner.c — the scanner filter and its service as an operator
 * runs them: marked files and programs denied, clean ones opened, the
 * verdict cache and its invalidation, deadlines and the default verdict
 * when the service is stopped, killed or absent, parallel scans, rule
 * reloads, malformed replies and rule errors, the counters in fltmc
 * stats, and which clients are excluded or may connect at all.
 *
 * The real fltmgrd loading scanner.so and the real scanner service, in a
 * private mount namespace, root only; the daemon, the service, the paths
 * of each test and its setup: scanner_fixture.h.
 */
#include "scanner_fixture.h"

#define CONNECT_ARG "--connect-attacker"

/* ---- verdicts ---- */

static void
marker_file_is_denied_and_clean_file_opens(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	/* Written before anyone watches: no notification of these writes
	 * can come after the first verdict and drop it from the caches (a
	 * rescan, never a stale verdict, but then the cache would not be
	 * what answers below). */
	tu_write_file(at("clean.txt"), CLEANTXT "\n");
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	assert_int_equal(try_open(at("clean.txt"), NULL), 0);
	/* The cached denial stays a denial, answered by the cache. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	filter_stats(v);
	assert_true(v[SCANNER_CTR_infected] >= 1);
	assert_true(v[SCANNER_CTR_cache_denies] >= 1);
	assert_int_equal(v[SCANNER_CTR_no_service_defaults], 0);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
	/* The detection was logged with the path, rule and process. */
	assert_true(tu_wait_in_file(slog, "rule=test_marker", 1, WAIT_MS));
	{
		char *log = tu_slurp(slog);
		bool named = strstr(log, at("bad.txt")) != NULL;

		free(log);
		assert_true(named);
	}
}

/* fork + execv: 0 if the program ran (and exited 0), else its errno. */
static int
try_exec(const char *path)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { (char *)path, NULL };

		execve(path, argv, environ);
		_exit(errno == EPERM ? 100 : 101);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st) == 0 ? 0 : WEXITSTATUS(st) == 100 ? EPERM : -1;
}

static void
marked_executable_cannot_run(void **state)
{
	char cmd[1024];

	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	/* /bin/true with the marker appended: still a valid ELF. */
	snprintf(cmd, sizeof(cmd),
		 "cp /bin/true '%s' && cp /bin/true '%s' && printf '%s' >> '%s' && "
		 "chmod 0755 '%s' '%s'",
		 at("good"), at("bad"), MARKER, at("bad"), at("good"), at("bad"));
	assert_int_equal(system(cmd), 0);
	assert_int_equal(try_exec(at("good")), 0);
	assert_int_equal(try_exec(at("bad")), EPERM);
}

/* ---- cache and invalidation ---- */

static void
clean_file_rewritten_with_marker_is_denied(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("f"), CLEANTXT);
	assert_int_equal(try_open(at("f"), NULL), 0);
	assert_int_equal(try_open(at("f"), NULL), 0); /* now in both caches */
	tu_write_file(at("f"), MARKER);               /* same size, right away */
	assert_int_equal(try_open(at("f"), NULL), EPERM);
}

/* The opener's own write right after a clean verdict: the kernel cache
 * entry for the empty file must not survive it. */
static void
file_written_right_after_create_is_scanned(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "new%d", i);
		tu_write_file(at(name), MARKER);
		assert_int_equal(try_open(at(name), NULL), EPERM);
	}
}

static void
denied_file_rewritten_clean_is_allowed(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("f"), MARKER);
	assert_int_equal(try_open(at("f"), NULL), EPERM);
	assert_int_equal(try_open(at("f"), NULL), EPERM);
	/* The writer's own open is allowed: O_WRONLY of an infected file is
	 * scanned like any open, so rewrite through truncate + append. */
	assert_int_equal(truncate(at("f"), 0), 0);
	tu_write_file(at("g"), CLEANTXT);
	assert_int_equal(rename(at("g"), at("f")), 0);
	assert_int_equal(try_open(at("f"), NULL), 0);
	/* And rewritten in place, without a rename. */
	tu_write_file(at("h"), MARKER);
	assert_int_equal(try_open(at("h"), NULL), EPERM);
	assert_int_equal(truncate(at("h"), 0), 0);
	assert_int_equal(try_open(at("h"), NULL), 0);
}

static void
infected_file_renamed_over_clean_name_is_denied(void **state)
{
	(void)state;
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("doc"), CLEANTXT);
	assert_int_equal(try_open(at("doc"), NULL), 0);
	assert_int_equal(try_open(at("doc"), NULL), 0); /* cached clean */
	tu_write_file(at("doc.tmp"), MARKER);
	assert_int_equal(rename(at("doc.tmp"), at("doc")), 0);
	assert_int_equal(try_open(at("doc"), NULL), EPERM);
}

static void
unchanged_clean_file_second_open_skips_service(void **state)
{
	uint64_t a[SCANNER_CTR_COUNT_], b[SCANNER_CTR_COUNT_], scanned;

	(void)state;
	/* Written before anyone watches: no notification of that write can
	 * come late and drop the first verdict from the caches (which would
	 * be right, a rescan, but not what this test is about). */
	tu_write_file(at("f"), CLEANTXT);
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	assert_int_equal(try_open(at("f"), NULL), 0);
	filter_stats(a);
	scanned = svc_stat("scanned");
	for (int i = 0; i < 5; i++)
		assert_int_equal(try_open(at("f"), NULL), 0);
	filter_stats(b);
	/* Not scanned again. */
	assert_int_equal(svc_stat("scanned"), scanned);
	assert_int_equal(b[SCANNER_CTR_requests], a[SCANNER_CTR_requests]);
	assert_true(a[SCANNER_CTR_clean] >= 1);
	if (tu_kernel_lacks("cache")) {
		/* No kernel cache (before Linux 6.0): every open reaches the
		 * filter, which answers from its own cache. */
		print_message("%s: the filter's own cache answered\n",
			      tu_kernel_lacks("cache"));
		assert_int_equal(b[SCANNER_CTR_events], a[SCANNER_CTR_events] + 5);
		return;
	}
	/* Not even asked: the kernel cache answered. */
	assert_int_equal(b[SCANNER_CTR_events], a[SCANNER_CTR_events]);
}

/* ---- deadlines and defaults ---- */

static void
stopped_service_gets_default_within_deadline(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	int64_t ms;

	(void)state;
	daemon_start(DEADLINE, true); /* deny: the default is visible */
	svc_start(NULL);
	tu_write_file(at("f"), CLEANTXT);
	tu_write_file(at("g"), CLEANTXT "2");
	assert_int_equal(try_open(at("g"), NULL), 0); /* a clean scan works */
	svc_stop_signal();
	assert_int_equal(try_open(at("f"), &ms), EPERM);
	/* The target is deadline + 100 ms; on a loaded CI machine the
	 * scheduler alone has added more, so the bound is loose and the
	 * latency is printed for the log instead. */
	print_message("scanner: stopped service, default verdict after %lld ms "
		      "(deadline %d ms)\n",
		      (long long)ms, DEADLINE);
	assert_true(ms >= DEADLINE - 100);
	assert_true(ms <= DEADLINE + 10000);
	filter_stats(v);
	assert_true(v[SCANNER_CTR_deadline_defaults] >= 1);
	assert_int_equal(kill(svc_pid, SIGCONT), 0);
	/* Nothing of the default was cached: the file is clean. */
	assert_int_equal(try_open(at("f"), &ms), 0);
	assert_true(ms < DEADLINE);
}

struct opener {
	const char *path;
	int err;
	int64_t done_ms;
	pthread_barrier_t *go;
};

static void *
opener_main(void *arg)
{
	struct opener *o = arg;

	if (o->go)
		pthread_barrier_wait(o->go);
	o->err = try_open(o->path, NULL);
	o->done_ms = tu_now_ms();
	return NULL;
}

static void
killed_service_pending_opens_answered_at_once(void **state)
{
	enum { N = 4, LONG_DEADLINE = 10000 };
	struct opener o[N];
	pthread_t t[N];
	uint64_t v[SCANNER_CTR_COUNT_];
	int64_t t_kill, t0;

	(void)state;
	daemon_start(LONG_DEADLINE, true);
	svc_start(NULL);
	for (int i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		tu_write_file(at(name), CLEANTXT);
		o[i] = (struct opener){ .path = strdup(at(name)) };
	}
	svc_stop_signal();
	t0 = tu_now_ms();
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, opener_main, &o[i]), 0);
	/* Wait until every open has been sent to the stopped service. */
	do {
		usleep(10000);
		filter_stats(v);
	} while (v[SCANNER_CTR_in_flight_max] < N &&
		 tu_now_ms() - t0 < LONG_DEADLINE / 2);
	assert_true(v[SCANNER_CTR_in_flight_max] >= N);
	t_kill = tu_now_ms();
	assert_int_equal(kill(svc_pid, SIGKILL), 0);
	for (int i = 0; i < N; i++) /* all joined before any is judged */
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].err, EPERM); /* the default verdict */
		/* At once, not at the deadline (which is seconds away): the
		 * counters below say which; the clock is a loose bound. */
		assert_true(o[i].done_ms - t_kill < LONG_DEADLINE / 2);
		free((char *)o[i].path);
	}
	assert_true(tu_now_ms() - t0 < LONG_DEADLINE - 1000);
	assert_int_equal(tu_expect_exit(svc_pid, WAIT_MS), 128 + SIGKILL);
	svc_pid = 0;
	filter_stats(v);
	assert_true(v[SCANNER_CTR_disconnect_defaults] >= N);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
}

static void
no_service_gives_default_verdict(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	int64_t ms;

	(void)state;
	tu_write_file(at("f"), CLEANTXT); /* before anyone watches */
	daemon_start(DEADLINE, true);
	assert_int_equal(try_open(at("f"), &ms), EPERM);
	assert_true(ms < DEADLINE); /* at once, not at the deadline */
	filter_stats(v);
	assert_true(v[SCANNER_CTR_no_service_defaults] >= 1);
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
	assert_int_equal(v[SCANNER_CTR_requests], 0);
	/* A service arrives: the same file is scanned and allowed. */
	svc_start(NULL);
	assert_int_equal(try_open(at("f"), NULL), 0);
}

/* ---- parallelism ---- */

static void
twenty_concurrent_openers_are_scanned_in_parallel(void **state)
{
	enum { N = 20, SIZE = 2 << 20 };
	const char *extra[] = { "--threads", "4", "--outstanding", "2", NULL };
	struct opener o[N];
	pthread_t t[N];
	pthread_barrier_t go;
	uint64_t v[SCANNER_CTR_COUNT_];
	char *body = malloc(SIZE + 1);

	(void)state;
	assert_non_null(body);
	daemon_start(SCAN_DEADLINE, false);
	svc_start(extra);
	for (int i = 0; i < N; i++) {
		char name[16];

		snprintf(name, sizeof(name), "big%d", i);
		memset(body, 'a' + i % 26, SIZE);
		if (i % 5 == 0) /* every fifth is infected, at the very end */
			memcpy(body + SIZE - strlen(MARKER), MARKER, strlen(MARKER));
		body[SIZE] = '\0';
		tu_write_file(at(name), body);
		o[i] = (struct opener){ .path = strdup(at(name)), .go = &go };
	}
	free(body);
	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_create(&t[i], NULL, opener_main, &o[i]), 0);
	/* All joined before any is judged: a failed assertion must not
	 * leave openers running on this stack. */
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].err, i % 5 == 0 ? EPERM : 0);
		free((char *)o[i].path);
	}
	pthread_barrier_destroy(&go);
	filter_stats(v);
	/* Real verdicts for every open: no default, no error. */
	assert_int_equal(v[SCANNER_CTR_deadline_defaults], 0);
	assert_int_equal(v[SCANNER_CTR_errors], 0);
	assert_int_equal(v[SCANNER_CTR_infected], N / 5);
	assert_true(v[SCANNER_CTR_in_flight_max] >= 2);
	/* The service scanned more than one at a time. */
	assert_true(svc_stat("max_concurrent") >= 2);
}

/* ---- rule reloads ---- */

static void
sighup_reload_applies_to_next_open(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];

	(void)state;
	/* The rules live in the watched tree: the service reads them there
	 * on reload (it is excluded, so that read waits for nobody). */
	snprintf(rules, sizeof(rules), "%s/rules.yar", watch);
	write_rules(rules, MARKER);
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("f"), "harmless today, NEWLY-BAD tomorrow");
	assert_int_equal(try_open(at("f"), NULL), 0);
	assert_int_equal(try_open(at("f"), NULL), 0); /* cached in the kernel */
	write_rules(rules, "NEWLY-BAD");
	assert_int_equal(kill(svc_pid, SIGHUP), 0);
	assert_true(tu_wait_in_file(slog, "rules reloaded", 1, WAIT_MS));
	assert_int_equal(try_open(at("f"), NULL), EPERM);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_flushes], 1);
	/* A reload with an error keeps the rules in force. */
	tu_write_file(rules, "rule broken {\n condition:\n nonsense\n}\n");
	assert_int_equal(kill(svc_pid, SIGHUP), 0);
	assert_true(tu_wait_in_file(slog, "keeping the current ones", 1, WAIT_MS));
	assert_int_equal(try_open(at("f"), NULL), EPERM);
}

/* ---- bad input ---- */

static void
malformed_reply_is_counted_and_defaulted(void **state)
{
	uint8_t ctx[SCANNER_CONTEXT_SIZE], buf[SCANNER_REQ_MAX];
	struct filter_message_header h;
	uint64_t v[SCANNER_CTR_COUNT_];
	filter_port *p = NULL;
	char path[300];
	pid_t child;
	int r, st;

	(void)state;
	tu_write_file(at("f"), CLEANTXT); /* before anyone watches */
	daemon_start(DEADLINE * 3, true);
	/* This process plays a broken service; a child opens. */
	snprintf(path, sizeof(path), "%s/scanner", rundir);
	scanner_context_encode(1, ctx);
	assert_int_equal(filter_connect_communication_port(path, 0, ctx, sizeof(ctx), &p),
			 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(try_open(at("f"), NULL));
	r = filter_get_message(p, &h, buf, sizeof(buf), WAIT_MS);
	assert_true(r > 0);
	assert_true(h.fd >= 0); /* the event's fd came with it */
	close(h.fd);
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "bad", 3), 0);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), EPERM); /* the default (deny) */
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_errors], 1);
	assert_int_equal(v[SCANNER_CTR_clean] + v[SCANNER_CTR_infected], 0);
	filter_close_port(p);
}

static void
rule_error_names_file_and_line(void **state)
{
	char *argv[] = { (char *)scanner_bin, "--rules", rules,
			 "--runtime-dir",     rundir,    NULL };
	char *err;

	(void)state;
	tu_write_file(rules, "rule ok { condition: true }\n\nrule bad {\n  condition:\n"
			     "    $undefined\n}\n");
	assert_int_equal(tu_expect_exit(tu_spawn(argv, sout, slog), WAIT_MS), 5);
	err = tu_slurp(slog);
	if (!strstr(err, rules) || !strstr(err, ":6: error"))
		fail_msg("no FILE:LINE in: %s", err);
	free(err);
}

/* `fltmc stats --json` shows the filter's counters (the counters hook)
 * under filters[].counters, the same values the monitor connection reads. */
static void
fltmc_stats_shows_the_filters_counters(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	struct json_object *o, *filters, *f = NULL, *c, *val;
	char cmd[700], path[300];
	char *text;

	(void)state;
	daemon_start(DEADLINE, false);
	svc_start(NULL);
	tu_write_file(at("clean.txt"), CLEANTXT "\n");
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
	assert_int_equal(try_open(at("clean.txt"), NULL), 0);
	filter_stats(v);
	snprintf(path, sizeof(path), "%s/stats.json", scratch);
	snprintf(cmd, sizeof(cmd), "'%s' --runtime-dir '%s' --json stats > '%s'",
		 fltmc_bin, rundir, path);
	assert_int_equal(system(cmd), 0);
	text = tu_slurp(path);
	o = json_tokener_parse(text);
	if (!o)
		fail_msg("fltmc stats --json printed no JSON: %s", text);
	free(text);
	assert_true(json_object_object_get_ex(o, "filters", &filters));
	for (size_t i = 0; i < json_object_array_length(filters); i++) {
		struct json_object *e = json_object_array_get_idx(filters, i), *name;

		if (json_object_object_get_ex(e, "name", &name) &&
		    !strcmp(json_object_get_string(name), "scanner"))
			f = e;
	}
	assert_non_null(f);
	assert_true(json_object_object_get_ex(f, "counters", &c));
	for (int i = 0; i < SCANNER_CTR_COUNT_; i++)
		if (!json_object_object_get_ex(c, scanner_counter_names[i], &val))
			fail_msg("fltmc stats has no scanner counter %s",
				 scanner_counter_names[i]);
	/* Decisions already made do not change between the two reads. */
	assert_true(json_object_object_get_ex(c, "infected", &val));
	assert_int_equal((uint64_t)json_object_get_int64(val), v[SCANNER_CTR_infected]);
	assert_true(v[SCANNER_CTR_infected] >= 1);
	assert_true(json_object_object_get_ex(c, "clean", &val));
	assert_int_equal((uint64_t)json_object_get_int64(val), v[SCANNER_CTR_clean]);
	assert_true(v[SCANNER_CTR_clean] >= 1);
	json_object_put(o);
}

/* ---- who may connect ---- */

/* Another user cannot connect to the scanner's port (mode 0600, root's):
 * to be excluded from scanning, or to answer verdicts. The kernel refuses
 * the connect; the filter sees nothing. */
static void
nobody_cannot_connect_to_the_scanners_port(void **state)
{
	uint64_t v[SCANNER_CTR_COUNT_];
	char path[300];

	(void)state;
	daemon_start(SCAN_DEADLINE, true);
	assert_int_equal(chmod(rundir, 0755), 0); /* let it reach the socket */
	snprintf(path, sizeof(path), "%s/scanner", rundir);
	assert_int_equal(run_as_nobody(CONNECT_ARG, path), EACCES);
	filter_stats(v);
	assert_int_equal(v[SCANNER_CTR_connections], 0);
}

/* ---- a client that leaves its connection behind ---- */

/* struct clone_args up to set_tid (CLONE_ARGS_SIZE_VER1), spelled out:
 * <linux/sched.h> clashes with <sched.h>. */
struct clone_args_v1 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size;
};

/* A child with exactly pid `want` (clone3 set_tid: root) that opens path
 * and exits with 0 or the errno; returns its exit status. */
static int
open_as_pid(pid_t want, const char *path)
{
	struct clone_args_v1 ca = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&want,
		.set_tid_size = 1,
	};
	long r = syscall(SYS_clone3, &ca, sizeof(ca));
	int st;

	if (r == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		_exit(fd >= 0 ? 0 : errno);
	}
	if (r < 0)
		fail_msg("clone3 with pid %d: %s", (int)want, strerror(errno));
	assert_int_equal(waitpid((pid_t)r, &st, 0), (pid_t)r);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* A forked child connects to the scanner's port as a service (window 1:
 * the filter excludes its pid), sends its own three sockets inside a
 * REPLY on the reply channel, and exits. Returns its pid, reaped. */
static pid_t
client_leaves_its_sockets_in_flight(void)
{
	char path[300];
	pid_t pid;
	int st;

	snprintf(path, sizeof(path), "%s/scanner", rundir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		struct wire_header h = { .type = WIRE_CONNECT,
					 .length = SCANNER_CONTEXT_SIZE };
		uint8_t ctx[SCANNER_CONTEXT_SIZE], buf[WIRE_HEADER_SIZE + 16],
			hdr[WIRE_HEADER_SIZE];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		union {
			char buf[CMSG_SPACE(3 * sizeof(int))];
			struct cmsghdr align;
		} control;
		struct iovec riov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
		struct msghdr mh = { .msg_iov = &riov,
				     .msg_iovlen = 1,
				     .msg_control = control.buf,
				     .msg_controllen = sizeof(control.buf) };
		struct cmsghdr *cm;
		struct frame_rx rx;
		const char *why;
		int fds[3];

		alarm(9);
		strcpy(sa.sun_path, path);
		scanner_context_encode(1, ctx);
		fds[0] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fds[0] < 0 ||
		    connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    frame_send(fds[0], &h, ctx, NULL, 0, 0) < 0 ||
		    frame_recv(fds[0], &iov, 1, 0, &rx) != 1 ||
		    wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CONNECT_REPLY),
				&h, &why) < 0 ||
		    h.status != 0 || rx.n_fds != 2)
			_exit(1);
		fds[1] = rx.fds[0];
		fds[2] = rx.fds[1];
		h = (struct wire_header){ .type = WIRE_REPLY, .id = 1 };
		wire_encode_header(hdr, &h);
		memset(&control, 0, sizeof(control));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		_exit(sendmsg(fds[1], &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(hdr) ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	return pid;
}

/* A port client that sends its own sockets in a reply and exits must not
 * leave its connection (and with it the exclusion of its pid) behind: a
 * new process that gets the same pid is scanned, and its open of an
 * infected file is denied. Default allow, so that the denial can only
 * come from a scan. */
static void
dead_clients_exclusion_does_not_pass_to_its_pid(void **state)
{
	char line[128];
	int64_t t0;
	pid_t pid;
	bool gone;

	(void)state;
	tu_write_file(at("bad.txt"), "header " MARKER " trailer\n");
	daemon_start(SCAN_DEADLINE, false);
	svc_start(NULL);
	pid = client_leaves_its_sockets_in_flight();
	t0 = tu_now_ms();
	snprintf(line, sizeof(line), "service pid %d disconnected", (int)pid);
	gone = tu_wait_in_file(dlog, line, 1, WAIT_MS);
	print_message("scanner: dead client's connection %s after %lld ms\n",
		      gone ? "ended" : "still there", (long long)(tu_now_ms() - t0));
	assert_int_equal(open_as_pid(pid, at("bad.txt")), EPERM);
	assert_true(gone);
	/* And any other process too. */
	assert_int_equal(try_open(at("bad.txt"), NULL), EPERM);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			marker_file_is_denied_and_clean_file_opens, setup, teardown),
		cmocka_unit_test_setup_teardown(marked_executable_cannot_run, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			clean_file_rewritten_with_marker_is_denied, setup, teardown),
		cmocka_unit_test_setup_teardown(
			file_written_right_after_create_is_scanned, setup, teardown),
		cmocka_unit_test_setup_teardown(denied_file_rewritten_clean_is_allowed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			infected_file_renamed_over_clean_name_is_denied, setup, teardown),
		cmocka_unit_test_setup_teardown(
			unchanged_clean_file_second_open_skips_service, setup, teardown),
		cmocka_unit_test_setup_teardown(
			stopped_service_gets_default_within_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(
			killed_service_pending_opens_answered_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(no_service_gives_default_verdict, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			twenty_concurrent_openers_are_scanned_in_parallel, setup,
			teardown),
		cmocka_unit_test_setup_teardown(sighup_reload_applies_to_next_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(malformed_reply_is_counted_and_defaulted,
						setup, teardown),
		cmocka_unit_test_setup_teardown(rule_error_names_file_and_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(fltmc_stats_shows_the_filters_counters,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			dead_clients_exclusion_does_not_pass_to_its_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(
			nobody_cannot_connect_to_the_scanners_port, setup, teardown),
	};
	int r;

	if (argc == 3 && strcmp(argv[1], CONNECT_ARG) == 0) {
		uint8_t ctx[SCANNER_CONTEXT_SIZE];
		filter_port *p = NULL;
		int e;

		/* A service's connect: it would be excluded, and be asked for
		 * verdicts. Exit status: the errno, or 0 if it was let in. */
		scanner_context_encode(1, ctx);
		e = filter_connect_communication_port(argv[2], 0, ctx, sizeof(ctx), &p);
		if (e == 0)
			filter_close_port(p);
		return -e;
	}
	r = scanner_fixture_init("test_scanner");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	scanner_fixture_fini();
	return r;
}
