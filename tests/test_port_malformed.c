/* SPDX-License-Identifier: MIT */
/*
 * test_port_malformed.c — malformed frames, before and after the
 * handshake and on every channel (bad magic, version, flags or type,
 * lying lengths, oversized records or contexts, descriptors where none
 * belong): that one connection is dropped at once, the reason logged and
 * counted, and nothing else is affected.
 *
 * Suite "ports": each test has its own runtime directory, manager and
 * filter; the fixture, the callbacks and the raw clients that speak the
 * wire protocol by hand: port_fixture.h.
 */
#include "port_fixture.h"

/* ---- helpers ----------------------------------------------------------- */

static void
raw_send(int fd, const void *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

	if (n < 0)
		fail_msg("send of a %zu-byte record: %s", len, strerror(errno));
	assert_int_equal((size_t)n, len);
}

/* Sends one record with descriptor fd attached (SCM_RIGHTS). */
static void
raw_send_fd(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	memset(&control, 0, sizeof(control));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		fail_msg("sendmsg with a descriptor: %s", strerror(errno));
	assert_int_equal((size_t)n, len);
}

/*
 * A pipe whose read end travels to the filter side: once the filter side
 * has closed its copy (and we ours), writing fails with EPIPE.
 */
struct stray {
	int rd, wr;
};

static void
stray_open(struct fixture *fx, struct stray *st)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	raw_register(fx, p[0]);
	raw_register(fx, p[1]);
	st->rd = p[0];
	st->wr = p[1];
}

/* After the read end was sent: drop ours, then wait up to WAIT_MS for the
 * filter side's copy to be closed too. */
static void
stray_check_closed(struct fixture *fx, struct stray *st)
{
	int64_t end = tu_now_ms() + WAIT_MS;
	ssize_t n;

	raw_close(fx, st->rd);
	while ((n = write(st->wr, "x", 1)) == 1 && tu_now_ms() < end)
		usleep(1000);
	if (n == 1)
		fail_msg("a descriptor sent to the filter side is still open "
			 "after %d ms",
			 WAIT_MS);
	assert_int_equal(errno, EPIPE);
	raw_close(fx, st->wr);
}

static void
put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* Builds a record: header of `type` claiming `length`, then `size - 40`
 * payload bytes. Returns size. */
static size_t
build_record(uint8_t *buf, uint16_t type, uint32_t length, size_t size)
{
	struct wire_header h = { .type = type, .length = length };

	wire_encode_header(buf, &h);
	for (size_t i = WIRE_HEADER_SIZE; i < size; i++)
		buf[i] = (uint8_t)('a' + i % 26);
	return size;
}

static void
put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/*
 * A raw client sends `rec` as its first record on M (with a descriptor
 * attached if `with_fd`). It must be answered with a CONNECT_REPLY of
 * status `want_status` (any negative status if 0) and dropped within a
 * second without ever reaching the connect callback; that counts as one
 * malformed frame and one refused connection, with `reason` in the log
 * (unless NULL). A library client on the same port keeps working.
 */
static void
check_pre_handshake_drop(struct fixture *fx, const void *rec, size_t len, int with_fd,
			 const char *reason, int want_status)
{
	struct flt_port_stats st0, st;
	struct stray stray = { -1, -1 };
	filter_port *good = NULL;
	struct conn *gc;
	int fd, calls0, status = 1;

	create_default_port(fx, 8);
	assert_int_equal(lib_connect(fx, "good", &good), 0);
	gc = find_conn(fx, "good");
	assert_non_null(gc);
	/* counters may trail the connect by a moment */
	assert_true(WAIT_STAT(fx, connections_accepted, 1) == 1);
	st0 = server_stats(fx);
	calls0 = atomic_load(&fx->connect_calls);

	fd = raw_connect(fx);
	if (with_fd) {
		stray_open(fx, &stray);
		raw_send_fd(fd, rec, len, stray.rd);
	} else {
		raw_send(fd, rec, len);
	}
	if (!wait_eof(fd, WAIT_MS, &status))
		fail_msg("raw connection not dropped within %d ms", WAIT_MS);
	if (status == 1)
		fail_msg("dropped without a CONNECT_REPLY");
	if (want_status ? status != want_status : status >= 0)
		fail_msg("CONNECT_REPLY status %d, expected %d", status, want_status);
	assert_true(WAIT_STAT(fx, malformed_frames, st0.malformed_frames + 1) ==
		    st0.malformed_frames + 1);
	assert_true(WAIT_STAT(fx, connections_refused, st0.connections_refused + 1) ==
		    st0.connections_refused + 1);
	assert_int_equal(atomic_load(&fx->connect_calls), calls0);
	assert_logged(fx, reason);
	if (with_fd)
		stray_check_closed(fx, &stray);

	exchange(fx, good, gc);

	st = server_stats(fx);
	assert_true(st.malformed_frames == st0.malformed_frames + 1);
	assert_true(st.connections_accepted == st0.connections_accepted);
	assert_int_equal(wait_current(fx, 1), 1);
	assert_int_equal(atomic_load(&fx->disconnects), 0);

	raw_close(fx, fd);
	lib_close(fx, good);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

/* CH_R_IDLE: the reply channel while no sender waits for a reply. */
enum channel { CH_M, CH_R, CH_C, CH_R_IDLE };

/*
 * A raw client completes the handshake, then writes `rec` on the given
 * channel (with a descriptor attached if `with_fd`). The whole connection
 * (M, R and C) must be shut down (at once; waited for up to WAIT_MS), the
 * disconnect callback
 * must run for it, one malformed frame be counted with `reason` in the log
 * (unless NULL), and a library client on the same port must keep working.
 *
 * For CH_R a sender is made to wait for a reply first; it must then fail
 * with -ENOTCONN, counted in disconnect_failures. A record of at least 24
 * bytes sent on R gets the id of that sender's message. CH_R_IDLE writes
 * on R while no sender waits: the connection thread watches R then
 * (docs/ports.md, section 2, "Who reads replies"), so the drop is just
 * as prompt.
 */
static void
check_post_handshake_drop(struct fixture *fx, enum channel ch, const void *rec,
			  size_t len, int with_fd, const char *reason)
{
	struct sender s = { .fx = fx, .timeout_ms = IO_TIMEOUT_MS };
	struct stray stray = { -1, -1 };
	struct flt_port_stats st0, st;
	struct wire_header h;
	filter_port *good = NULL;
	struct conn *gc, *rc;
	uint8_t copy[256];
	char buf[16];
	pthread_t t;
	int m, r, c, to;

	assert_true(len <= sizeof(copy));
	memcpy(copy, rec, len);
	create_default_port(fx, 8);
	assert_int_equal(lib_connect(fx, "good", &good), 0);
	gc = find_conn(fx, "good");
	assert_non_null(gc);
	raw_handshake(fx, "raw", &m, &r, &c);
	rc = find_conn(fx, "raw");
	assert_non_null(rc);
	assert_int_equal(wait_current(fx, 2), 2);
	assert_true(WAIT_STAT(fx, connections_accepted, 2) == 2);
	st0 = server_stats(fx);

	if (ch == CH_R) {
		s.c = rc;
		assert_int_equal(pthread_create(&t, NULL, sender_thread, &s), 0);
		raw_recv(m, WIRE_BIT(WIRE_MESSAGE), &h, buf, sizeof(buf), NULL, 0);
		if (len >= 24)
			put64(copy + 16, h.id);
	}
	to = ch == CH_M ? m : ch == CH_C ? c : r;
	if (with_fd) {
		stray_open(fx, &stray);
		raw_send_fd(to, copy, len, stray.rd);
	} else {
		raw_send(to, copy, len);
	}
	if (ch == CH_R) {
		pthread_join(t, NULL);
		assert_int_equal(s.result, -ENOTCONN);
	}
	if (!wait_eof(m, WAIT_MS, NULL))
		fail_msg("M not shut down within %d ms", WAIT_MS);
	if (!wait_eof(r, WAIT_MS, NULL))
		fail_msg("R not shut down within %d ms", WAIT_MS);
	if (!wait_eof(c, WAIT_MS, NULL))
		fail_msg("C not shut down within %d ms", WAIT_MS);
	assert_int_equal(wait_int(&rc->disconnected, 1, WAIT_MS), 1);
	assert_true(WAIT_STAT(fx, malformed_frames, st0.malformed_frames + 1) ==
		    st0.malformed_frames + 1);
	assert_logged(fx, reason);
	if (with_fd)
		stray_check_closed(fx, &stray);

	exchange(fx, good, gc);

	st = server_stats(fx);
	assert_true(st.malformed_frames == st0.malformed_frames + 1);
	if (ch == CH_R && st.disconnect_failures != st0.disconnect_failures + 1)
		fail_msg("disconnect_failures went from %llu to %llu, expected "
			 "+1 for the sender that got -ENOTCONN",
			 (unsigned long long)st0.disconnect_failures,
			 (unsigned long long)st.disconnect_failures);
	assert_int_equal(wait_current(fx, 1), 1);
	assert_int_equal(atomic_load(&fx->disconnects), 1);
	assert_int_equal(atomic_load(&gc->disconnected), 0);

	raw_close(fx, m);
	raw_close(fx, r);
	raw_close(fx, c);
	lib_close(fx, good);
	assert_int_equal(wait_int(&fx->disconnects, 2, WAIT_MS), 2);
}

/* ---- malformed frames before the handshake ------------------------------ */

static void
malformed_truncated_header(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE];

	build_record(rec, WIRE_CONNECT, 0, WIRE_HEADER_SIZE);
	check_pre_handshake_drop(*state, rec, 10, 0, "truncated header", -EPROTO);
}

static void
malformed_oversized_record(void **state)
{
	static uint8_t rec[WIRE_MAX_FRAME + 1];

	build_record(rec, WIRE_CONNECT, WIRE_MAX_PAYLOAD + 1, sizeof(rec));
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0,
				 "frame larger than the protocol maximum", -EMSGSIZE);
}

static void
malformed_bad_magic(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, WIRE_CONNECT, 4, sizeof(rec));
	memcpy(rec, "PTLF", 4);
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0, "bad magic", -EPROTO);
}

static void
malformed_bad_version(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, WIRE_CONNECT, 4, sizeof(rec));
	put16(rec + 4, WIRE_VERSION + 1);
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0,
				 "unsupported protocol version", -EPROTO);
}

static void
malformed_nonzero_flags(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, WIRE_CONNECT, 4, sizeof(rec));
	put32(rec + 8, 1);
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0, "unknown flags", -EPROTO);
}

static void
malformed_unknown_type(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, 0x7f, 4, sizeof(rec));
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0, "unknown frame type",
				 -EPROTO);
}

static void
malformed_lying_length(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 20];

	build_record(rec, WIRE_CONNECT, 10, sizeof(rec));
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0, "lying length", -EPROTO);
}

static void
malformed_wrong_type_instead_of_connect(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, WIRE_REPLY, 4, sizeof(rec));
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0,
				 "frame type not allowed on this channel", -EPROTO);
}

static void
malformed_oversized_context(void **state)
{
	static uint8_t rec[WIRE_HEADER_SIZE + WIRE_MAX_CONTEXT + 1];

	build_record(rec, WIRE_CONNECT, WIRE_MAX_CONTEXT + 1, sizeof(rec));
	check_pre_handshake_drop(*state, rec, sizeof(rec), 0,
				 "frame larger than the protocol maximum", -EMSGSIZE);
}

static void
malformed_descriptor_on_connect(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	/* A valid CONNECT but for the descriptor; the status is not pinned
	 * down (docs/ports.md names no errno for this case). */
	build_record(rec, WIRE_CONNECT, 4, sizeof(rec));
	check_pre_handshake_drop(*state, rec, sizeof(rec), 1, NULL, 0);
}

/* ---- malformed frames after the handshake ------------------------------- */

static void
malformed_frame_on_m_after_handshake(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 3];

	/* A well-formed CONNECT: the only type a service ever writes on M,
	 * and only once. */
	build_record(rec, WIRE_CONNECT, 3, sizeof(rec));
	check_post_handshake_drop(*state, CH_M, rec, sizeof(rec), 0, NULL);
}

static void
malformed_garbage_on_r(void **state)
{
	check_post_handshake_drop(*state, CH_R, "garbage!", 8, 0, "truncated header");
}

static void
malformed_bad_magic_on_r(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, WIRE_REPLY, 4, sizeof(rec));
	put32(rec, 0xdeadbeef);
	check_post_handshake_drop(*state, CH_R, rec, sizeof(rec), 0, "bad magic");
}

static void
malformed_wrong_type_on_r(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, WIRE_CALL, 4, sizeof(rec));
	check_post_handshake_drop(*state, CH_R, rec, sizeof(rec), 0,
				  "frame type not allowed on this channel");
}

static void
malformed_garbage_on_c(void **state)
{
	check_post_handshake_drop(*state, CH_C, "garbage!", 8, 0, "truncated header");
}

static void
malformed_lying_length_on_c(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 8];

	build_record(rec, WIRE_CALL, 100, sizeof(rec));
	check_post_handshake_drop(*state, CH_C, rec, sizeof(rec), 0, "lying length");
}

static void
malformed_wrong_type_on_c(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];

	build_record(rec, WIRE_REPLY, 4, sizeof(rec));
	check_post_handshake_drop(*state, CH_C, rec, sizeof(rec), 0,
				  "frame type not allowed on this channel");
}

static void
malformed_descriptor_on_call(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 3];
	struct wire_header h = { .type = WIRE_CALL, .length = 3, .id = 5, .aux2 = 64 };

	wire_encode_header(rec, &h);
	memcpy(rec + WIRE_HEADER_SIZE, "abc", 3);
	check_post_handshake_drop(*state, CH_C, rec, sizeof(rec), 1, NULL);
}

static void
malformed_descriptor_on_reply(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];
	struct wire_header h = { .type = WIRE_REPLY, .length = 4, .id = 1 };

	/* A valid REPLY to the waiting sender's message (id patched in) but
	 * for the descriptor. */
	wire_encode_header(rec, &h);
	memcpy(rec + WIRE_HEADER_SIZE, "pong", 4);
	check_post_handshake_drop(*state, CH_R, rec, sizeof(rec), 1, NULL);
}

static void
malformed_descriptor_on_idle_reply_channel(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 4];
	struct wire_header h = { .type = WIRE_REPLY, .length = 4, .id = 1 };

	/* No sender waits: nothing would read R on its behalf, yet the
	 * descriptor must not stay in flight there (a socket end sent this
	 * way keeps the connection alive after its process died). */
	wire_encode_header(rec, &h);
	memcpy(rec + WIRE_HEADER_SIZE, "pong", 4);
	check_post_handshake_drop(
		*state, CH_R_IDLE, rec, sizeof(rec), 1,
		"malformed frame on reply channel: descriptor attached");
}

static void
malformed_garbage_on_idle_reply_channel(void **state)
{
	check_post_handshake_drop(*state, CH_R_IDLE, "garbage!", 8, 0,
				  "malformed frame on reply channel: truncated header");
}

static void
malformed_descriptor_on_message_channel(void **state)
{
	uint8_t rec[WIRE_HEADER_SIZE + 3];

	build_record(rec, WIRE_CONNECT, 3, sizeof(rec));
	check_post_handshake_drop(
		*state, CH_M, rec, sizeof(rec), 1,
		"malformed frame on message channel: descriptor attached");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(malformed_truncated_header),
		T(malformed_oversized_record),
		T(malformed_bad_magic),
		T(malformed_bad_version),
		T(malformed_nonzero_flags),
		T(malformed_unknown_type),
		T(malformed_lying_length),
		T(malformed_wrong_type_instead_of_connect),
		T(malformed_oversized_context),
		T(malformed_descriptor_on_connect),
		T(malformed_frame_on_m_after_handshake),
		T(malformed_garbage_on_r),
		T(malformed_bad_magic_on_r),
		T(malformed_wrong_type_on_r),
		T(malformed_garbage_on_c),
		T(malformed_lying_length_on_c),
		T(malformed_wrong_type_on_c),
		T(malformed_descriptor_on_call),
		T(malformed_descriptor_on_reply),
		T(malformed_descriptor_on_idle_reply_channel),
		T(malformed_garbage_on_idle_reply_channel),
		T(malformed_descriptor_on_message_channel),
	};

	port_fixture_init();
	return cmocka_run_group_tests_name("ports", tests, NULL, NULL);
}
