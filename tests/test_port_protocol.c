/* SPDX-License-Identifier: MIT */
/*
 * test_port_protocol.c — the communication port protocol spoken by
 * hand (message and reply, calls, late replies, a missing CONNECT), and
 * client processes that exit: the connection ends with the process that
 * connected, whatever happens to its sockets (children re-executed with
 * RAW_CHILD_ARG).
 *
 * Suite "ports": each test has its own runtime directory, manager and
 * filter; the fixture, the callbacks and the raw clients that speak the
 * wire protocol by hand: port_fixture.h.
 */
#include "port_fixture.h"

/* ---- a client process that exits ---------------------------------------- */

/*
 * The child's side, in a fresh process (this program re-executed with
 * RAW_CHILD_ARG MODE PATH): a raw client connects to PATH with context
 * "raw-child", then
 *   exit          exits at once;
 *   own-sockets   sends its own three sockets (M, R, C) with SCM_RIGHTS
 *                 inside a REPLY on R, and exits: if the filter side never
 *                 read them, they would stay in flight in its R socket and
 *                 the connection would never see an end;
 *   fork-holder   forks a grandchild that keeps the sockets, and exits; the
 *                 grandchild waits for the filter side to end the
 *                 connection (EOF on M), at most 3 s.
 * Exit status 0, or CHILD_CALL_FAILED.
 */
#define RAW_CHILD_ARG "--raw-client"

static int
raw_child_main(const char *mode, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct wire_header h = { .type = WIRE_CONNECT, .length = 9 };
	uint8_t buf[WIRE_HEADER_SIZE + 16];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct frame_rx rx;
	const char *why;
	int m, fds[3];

	alarm(9);
	if (strlen(path) >= sizeof(sa.sun_path))
		_exit(CHILD_CALL_FAILED);
	strcpy(sa.sun_path, path);
	m = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (m < 0 || connect(m, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    frame_send(m, &h, "raw-child", NULL, 0, 0) < 0 ||
	    frame_recv(m, &iov, 1, 0, &rx) != 1 ||
	    wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CONNECT_REPLY), &h,
			&why) < 0 ||
	    h.status != 0 || rx.n_fds != 2)
		_exit(CHILD_CALL_FAILED);
	fds[0] = m;
	fds[1] = rx.fds[0];
	fds[2] = rx.fds[1];
	if (strcmp(mode, "own-sockets") == 0) {
		union {
			char buf[CMSG_SPACE(sizeof(fds))];
			struct cmsghdr align;
		} control;
		struct wire_header rep = { .type = WIRE_REPLY, .id = 1 };
		uint8_t hdr[WIRE_HEADER_SIZE];
		struct iovec riov = { .iov_base = hdr, .iov_len = sizeof(hdr) };
		struct msghdr mh = {
			.msg_iov = &riov,
			.msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf),
		};
		struct cmsghdr *cm;

		wire_encode_header(hdr, &rep);
		memset(&control, 0, sizeof(control));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		if (sendmsg(fds[1], &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(hdr))
			_exit(CHILD_CALL_FAILED);
	} else if (strcmp(mode, "fork-holder") == 0) {
		pid_t gc = fork();

		if (gc < 0)
			_exit(CHILD_CALL_FAILED);
		if (gc == 0) {
			struct pollfd pf = { .fd = m, .events = POLLIN };
			char b;

			alarm(3);
			while (poll(&pf, 1, -1) < 0 && errno == EINTR)
				;
			while (recv(m, &b, 1, 0) > 0)
				;
			_exit(0);
		}
	} else if (strcmp(mode, "exit") != 0) {
		_exit(CHILD_CALL_FAILED);
	}
	_exit(0);
}

/* Runs raw_child_main(mode) in a child (fork, then exec of this program)
 * and reaps it; returns tu_now_ms() when it was reaped. */
static int64_t
run_raw_child(struct fixture *fx, const char *mode, pid_t *ret_pid)
{
	char *args[] = { "test_port_protocol", RAW_CHILD_ARG, (char *)mode, fx->path,
			 NULL };
	char self[PATH_MAX];
	ssize_t n;
	int status;
	pid_t pid;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execv(self, args);
		_exit(CHILD_EXEC_FAILED);
	}
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (ret_pid)
		*ret_pid = pid;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("raw child (%s) ended with status %#x", mode, (unsigned)status);
	return tu_now_ms();
}

/* Reaps orphans handed to us (we are their subreaper), for up to 5 s. */
static void
reap_orphans(void)
{
	int64_t end = tu_now_ms() + 5000;

	while (tu_now_ms() < end) {
		pid_t p = waitpid(-1, NULL, WNOHANG);

		if (p < 0)
			return; /* ECHILD: none left */
		if (p == 0)
			usleep(2000);
	}
}

/*
 * A port with max_connections 1; a raw child connects, does `mode` and
 * exits. Its disconnect callback must run at once (within 1 s of its exit
 * on a loaded machine; the time is printed), and the slot must be free
 * again: a library client connects and exchanges.
 */
static void
check_exiting_client(struct fixture *fx, const char *mode, const char *reason)
{
	filter_port *p = NULL;
	struct conn *rc;
	int64_t t_exit, took, end;
	int r;

	create_default_port(fx, 1);
	t_exit = run_raw_child(fx, mode, NULL);
	rc = find_conn(fx, "raw-child");
	assert_non_null(rc);
	wait_int(&rc->disconnected, 1, WAIT_MS);
	took = tu_now_ms() - t_exit;
	reap_orphans();
	if (!atomic_load(&rc->disconnected))
		fail_msg("%s: the connection of a client that exited was not ended "
			 "within %d ms",
			 mode, WAIT_MS);
	print_message("%s: disconnect callback %lld ms after the client was reaped\n",
		      mode, (long long)took);
	if (took > 1000)
		fail_msg("%s: disconnect callback only %lld ms after the client exited",
			 mode, (long long)took);
	assert_logged(fx, reason);
	/* The slot is released right after the callback returns. */
	end = tu_now_ms() + WAIT_MS;
	while ((r = lib_connect(fx, "next", &p)) == -EUSERS && tu_now_ms() < end)
		usleep(1000);
	assert_int_equal(r, 0);
	exchange(fx, p, find_conn(fx, "next"));
	lib_close(fx, p);
	assert_int_equal(wait_int(&fx->disconnects, 2, WAIT_MS), 2);
}

static void
client_sending_its_own_sockets_then_exiting_is_dropped_at_once(void **state)
{
	struct fixture *fx = *state;

	check_exiting_client(fx, "own-sockets", "descriptor");
	assert_true(server_stats(fx).malformed_frames == 1);
}

static void
client_exiting_while_idle_is_disconnected_at_once(void **state)
{
	struct fixture *fx = *state;

	check_exiting_client(fx, "exit", NULL);
	assert_true(server_stats(fx).malformed_frames == 0);
}

static void
connection_ends_with_its_process_though_a_child_keeps_the_sockets(void **state)
{
	struct fixture *fx = *state;

	check_exiting_client(fx, "fork-holder", "process exited");
	assert_true(server_stats(fx).malformed_frames == 0);
}

/* ---- the protocol spoken by hand ---------------------------------------- */

static void
raw_message_reply_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct sender s = { .fx = fx, .timeout_ms = IO_TIMEOUT_MS };
	struct wire_header h, rep;
	struct flt_port_stats st;
	char buf[64];
	pthread_t t;
	int m, r, c;

	create_default_port(fx, 4);
	raw_handshake(fx, "raw", &m, &r, &c);
	s.c = find_conn(fx, "raw");
	assert_non_null(s.c);

	assert_int_equal(pthread_create(&t, NULL, sender_thread, &s), 0);
	assert_int_equal(
		raw_recv(m, WIRE_BIT(WIRE_MESSAGE), &h, buf, sizeof(buf), NULL, 0), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_true(h.aux == 1);                   /* sequence */
	assert_int_equal(h.aux2, sizeof(s.reply)); /* reply capacity */
	rep = (struct wire_header){ .type = WIRE_REPLY, .length = 4, .id = h.id };
	assert_int_equal(frame_send(r, &rep, "pong", NULL, 0, 0), 0);
	assert_int_equal(
		raw_recv(r, WIRE_BIT(WIRE_REPLY_ACK), &rep, buf, sizeof(buf), NULL, 0),
		0);
	pthread_join(t, NULL);
	assert_true(rep.id == h.id);
	assert_int_equal(rep.status, 0);
	assert_int_equal(s.result, 0);
	assert_int_equal(s.reply_len, 4);
	assert_memory_equal(s.reply, "pong", 4);

	/* No reply wanted: capacity 0, next sequence number. */
	assert_int_equal(
		flt_send_message(fx->f, &s.c->port, "x", 1, NULL, NULL, IO_TIMEOUT_MS),
		0);
	assert_int_equal(
		raw_recv(m, WIRE_BIT(WIRE_MESSAGE), &h, buf, sizeof(buf), NULL, 0), 1);
	assert_true(h.aux == 2);
	assert_int_equal(h.aux2, 0);

	memset(&st, 0, sizeof(st));
	assert_int_equal(flt_port_get_stats(fx->f, &s.c->port, &st), 0);
	assert_true(st.messages_sent == 2);
	assert_true(st.replies_received == 1);

	raw_close(fx, m);
	raw_close(fx, r);
	raw_close(fx, c);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
	assert_true(server_stats(fx).malformed_frames == 0);
}

static void
raw_call_gets_result(void **state)
{
	struct fixture *fx = *state;
	struct wire_header h;
	char buf[64];
	int m, r, c;

	create_default_port(fx, 4);
	raw_handshake(fx, "raw", &m, &r, &c);
	h = (struct wire_header){ .type = WIRE_CALL, .length = 3, .id = 77, .aux2 = 64 };
	assert_int_equal(frame_send(c, &h, "abc", NULL, 0, 0), 0);
	assert_int_equal(
		raw_recv(c, WIRE_BIT(WIRE_CALL_RESULT), &h, buf, sizeof(buf), NULL, 0),
		6);
	assert_true(h.id == 77);
	assert_int_equal(h.status, 0);
	assert_memory_equal(buf, "ok:abc", 6);
	assert_int_equal(atomic_load(&fx->messages), 1);
	assert_true(WAIT_STAT(fx, service_messages, 1) == 1);

	raw_close(fx, m);
	raw_close(fx, r);
	raw_close(fx, c);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

static void
late_reply_gets_enoent_ack(void **state)
{
	struct fixture *fx = *state;
	struct wire_header h;
	struct conn *rc;
	char reply[16], buf[16];
	size_t reply_len = sizeof(reply);
	uint64_t id;
	int m, r, c;

	create_default_port(fx, 4);
	raw_handshake(fx, "raw", &m, &r, &c);
	rc = find_conn(fx, "raw");
	assert_non_null(rc);
	assert_int_equal(
		flt_send_message(fx->f, &rc->port, "slow", 4, reply, &reply_len, 100),
		-ETIMEDOUT);
	assert_int_equal(
		raw_recv(m, WIRE_BIT(WIRE_MESSAGE), &h, buf, sizeof(buf), NULL, 0), 4);
	id = h.id;

	h = (struct wire_header){ .type = WIRE_REPLY, .length = 4, .id = id };
	assert_int_equal(frame_send(r, &h, "late", NULL, 0, 0), 0);
	assert_int_equal(
		raw_recv(r, WIRE_BIT(WIRE_REPLY_ACK), &h, buf, sizeof(buf), NULL, 0), 0);
	assert_true(h.id == id);
	assert_int_equal(h.status, -ENOENT);
	assert_true(WAIT_STAT(fx, late_replies, 1) == 1);
	assert_true(server_stats(fx).timeouts == 1);
	assert_true(server_stats(fx).replies_received == 0);

	/* Not a protocol violation: the connection stays. */
	assert_false(wait_eof(m, 200, NULL));
	assert_true(server_stats(fx).malformed_frames == 0);
	assert_int_equal(atomic_load(&fx->disconnects), 0);

	raw_close(fx, m);
	raw_close(fx, r);
	raw_close(fx, c);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

static void
handshake_without_connect_frame(void **state)
{
	struct fixture *fx = *state;
	filter_port *good = NULL;
	int64_t t0, took;
	int fd, status = 1;

	create_default_port(fx, 8);
	t0 = tu_now_ms();
	fd = raw_connect(fx);

	/* Someone else is not held up by the silent client. */
	assert_int_equal(lib_connect(fx, "good", &good), 0);
	took = tu_now_ms() - t0;
	/* Held up, it would take the whole 5 s handshake timeout. */
	if (took > 4000)
		fail_msg("connect took %lld ms behind a silent client", (long long)took);
	exchange(fx, good, find_conn(fx, "good"));

	if (!wait_eof(fd, (int)(5000 + WAIT_MS - (tu_now_ms() - t0)), &status))
		fail_msg("silent client still connected after %d ms", 5000 + WAIT_MS);
	took = tu_now_ms() - t0;
	/* docs/ports.md, section 4: closed without an answer */
	if (status != 1)
		fail_msg("silent client got a CONNECT_REPLY (status %d)", status);
	if (took < 4000)
		fail_msg("silent client dropped after %lld ms, expected ~5 s",
			 (long long)took);
	assert_int_equal(atomic_load(&fx->connect_calls), 1);
	assert_true(WAIT_STAT(fx, connections_refused, 1) == 1);
	assert_true(server_stats(fx).malformed_frames == 0);

	exchange(fx, good, find_conn(fx, "good"));
	raw_close(fx, fd);
	lib_close(fx, good);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(client_sending_its_own_sockets_then_exiting_is_dropped_at_once),
		T(client_exiting_while_idle_is_disconnected_at_once),
		T(connection_ends_with_its_process_though_a_child_keeps_the_sockets),
		T(raw_message_reply_round_trip),
		T(raw_call_gets_result),
		T(late_reply_gets_enoent_ack),
		T(handshake_without_connect_frame),
	};

	if (argc == 4 && strcmp(argv[1], RAW_CHILD_ARG) == 0)
		return raw_child_main(argv[2], argv[3]);
	port_fixture_init();
	return cmocka_run_group_tests_name("ports", tests, NULL, NULL);
}
