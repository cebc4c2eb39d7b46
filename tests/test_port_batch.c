/* SPDX-License-Identifier: MIT */
/*
 * test_port_batch.c — batched delivery: flt_send_message_batch() on the
 * filter side, FILTER_CONNECT_BATCHES, filter_get_message() and
 * filter_get_messages() on the service side. Both sides in one process,
 * plus a hand-written filter side for frames libfltmgr never sends.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/frame_io.h"
#include "common/wire.h"
#include "testutil.h"

#define WAIT_MS 10000

struct fx {
	flt_manager *m;
	flt_filter *f;
	flt_port server;
	flt_port client;
	atomic_int connects;
	atomic_int disconnects;
	int fds_before;
};

static int
on_connect(flt_port client_port, void *server_cookie, const void *context,
	   size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	struct fx *fx = server_cookie;

	(void)context;
	(void)context_len;
	(void)peer;
	fx->client = client_port;
	atomic_fetch_add(&fx->connects, 1);
	*ret_cookie = fx;
	return 0;
}

static void
on_disconnect(void *cookie)
{
	struct fx *fx = cookie;

	flt_close_client_port(fx->f, &fx->client);
	atomic_fetch_add(&fx->disconnects, 1);
}

static int
setup(void **state)
{
	struct flt_port_attributes attr = { .name = "batch" };
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	tu_filter_up("batch", &fx->fds_before, &fx->m, &fx->f);
	assert_int_equal(flt_create_communication_port(fx->f, &fx->server, &attr, fx,
						       on_connect, on_disconnect, NULL,
						       4),
			 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	tu_filter_down(fx->m, fx->f, fx->fds_before);
	free(fx);
	return 0;
}

static filter_port *
connect_service(unsigned flags)
{
	filter_port *p = NULL;

	assert_int_equal(filter_connect_communication_port("batch", flags, NULL, 0, &p),
			 0);
	assert_non_null(p);
	return p;
}

static uint64_t
sent_count(struct fx *fx)
{
	struct flt_port_stats st;

	assert_int_equal(flt_port_get_stats(fx->f, &fx->server, &st), 0);
	return st.messages_sent;
}

static int
readable(filter_port *p)
{
	struct pollfd pf = { .fd = filter_port_fd(p), .events = POLLIN };

	return poll(&pf, 1, 0) == 1 && (pf.revents & POLLIN);
}

/* Five texts "m0".."m4" as a batch; sequences from the connection. */
static void
five(struct flt_batch_message *b, char text[][4])
{
	for (int i = 0; i < 5; i++) {
		snprintf(text[i], 4, "m%d", i);
		b[i] = (struct flt_batch_message){ .msg = text[i], .len = 2 };
	}
}

static void
batch_travels_as_one_record_and_is_handed_out_one_by_one(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES);
	struct flt_batch_message b[5];
	struct filter_message_header h;
	char text[5][4], buf[16];
	uint64_t first_id = 0;

	five(b, text);
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 5, 1000), 5);
	assert_int_equal(sent_count(fx), 5);
	assert_true(readable(p));
	for (int i = 0; i < 5; i++) {
		assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 2);
		assert_memory_equal(buf, text[i], 2);
		assert_int_equal(h.sequence, (uint64_t)i + 1);
		assert_int_equal(h.reply_length, 0);
		assert_int_equal(h.fd, -1);
		if (i == 0)
			first_id = h.message_id;
		assert_int_equal(h.message_id, first_id + (uint64_t)i);
		/* One record: taking the first emptied the socket. */
		assert_false(readable(p));
	}
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 0), -ETIMEDOUT);
	/* A message wanting no reply cannot be answered. */
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "x", 1), -ENOENT);
	filter_close_port(p);
}

static void
service_without_the_flag_gets_one_message_per_record(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(0);
	struct flt_batch_message b[5];
	struct filter_message_header h;
	char text[5][4], buf[16];
	size_t done = 0;

	five(b, text);
	while (done < 5) {
		int r = flt_send_message_batch(fx->f, &fx->client, b + done, 5 - done,
					       1000);

		assert_int_equal(r, 1);
		done += (size_t)r;
	}
	assert_int_equal(sent_count(fx), 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 2);
		assert_memory_equal(buf, text[i], 2);
		assert_int_equal(h.sequence, (uint64_t)i + 1);
	}
	filter_close_port(p);
}

static void
get_messages_takes_the_record_as_far_as_the_buffer_lasts(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES);
	struct flt_batch_message b[5];
	struct filter_message m[8];
	char text[5][4], buf[64];

	five(b, text);
	b[2].sequence = 1000; /* the filter's own number travels too */
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 5, 1000), 5);
	/* Room for 3 by bytes. */
	assert_int_equal(filter_get_messages(p, m, 8, buf, 6, 1000), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(m[i].length, 2);
		assert_memory_equal(m[i].data, text[i], 2);
		assert_ptr_equal(m[i].data, buf + 2 * i);
	}
	assert_int_equal(m[0].header.sequence, 1);
	assert_int_equal(m[1].header.sequence, 2);
	assert_int_equal(m[2].header.sequence, 1000);
	/* Room for 1 by count. */
	assert_int_equal(filter_get_messages(p, m, 1, buf, sizeof(buf), 1000), 1);
	assert_memory_equal(m[0].data, "m3", 2);
	assert_int_equal(m[0].header.sequence, 3);
	assert_int_equal(filter_get_messages(p, m, 8, buf, sizeof(buf), 1000), 1);
	assert_memory_equal(m[0].data, "m4", 2);
	assert_int_equal(filter_get_messages(p, m, 8, buf, sizeof(buf), 0), -ETIMEDOUT);
	filter_close_port(p);
}

static void
get_messages_on_a_port_without_batches_takes_one(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(0);
	struct filter_message m[4];
	char buf[64];

	assert_int_equal(flt_send_message(fx->f, &fx->client, "a", 1, NULL, NULL, 1000),
			 0);
	assert_int_equal(flt_send_message(fx->f, &fx->client, "b", 1, NULL, NULL, 1000),
			 0);
	assert_int_equal(filter_get_messages(p, m, 4, buf, sizeof(buf), 1000), 1);
	assert_memory_equal(m[0].data, "a", 1);
	assert_int_equal(filter_get_messages(p, m, 4, buf, sizeof(buf), 1000), 1);
	assert_memory_equal(m[0].data, "b", 1);
	filter_close_port(p);
}

static void
entry_too_big_for_the_buffer_is_consumed_the_rest_delivered(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES);
	struct flt_batch_message b[3] = {
		{ .msg = "short", .len = 5 },
		{ .msg = "much longer", .len = 11 },
		{ .msg = "end", .len = 3 },
	};
	struct filter_message_header h;
	char buf[8];

	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 3, 1000), 3);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 5);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), -EMSGSIZE);
	assert_int_equal(h.sequence, 2);
	assert_int_equal(h.fd, -1);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 3);
	assert_memory_equal(buf, "end", 3);
	assert_int_equal(h.sequence, 3);
	filter_close_port(p);
}

static void
replies_and_descriptors_still_travel_alone_on_a_batch_port(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES);
	struct flt_send_options o = { .fd = STDIN_FILENO };
	struct flt_batch_message b[2] = { { .msg = "x", .len = 1 },
					  { .msg = "y", .len = 1 } };
	struct filter_message_header h;
	char buf[16];

	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 2, 1000), 2);
	assert_int_equal(
		flt_send_message_ex(fx->f, &fx->client, "fd", 2, NULL, NULL, 1000, &o),
		0);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 1);
	assert_int_equal(h.sequence, 1);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 1);
	assert_int_equal(h.sequence, 2);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 2);
	assert_int_equal(h.sequence, 3);
	assert_true(h.fd >= 0);
	close(h.fd);
	filter_close_port(p);
}

static void
limits_split_batches(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES);
	static struct flt_batch_message b[600];
	static char big[FLT_PORT_MAX_MESSAGE + 1];
	struct filter_message_header h;
	size_t done = 0;
	int calls = 0;

	/* Empty messages: at most 511 per record. */
	for (int i = 0; i < 600; i++)
		b[i] = (struct flt_batch_message){ .msg = NULL, .len = 0 };
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 600, 1000), 511);
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 89, 1000), 89);
	for (int i = 0; i < 600; i++) {
		assert_int_equal(filter_get_message(p, &h, NULL, 0, 1000), 0);
		assert_int_equal(h.sequence, (uint64_t)i + 1);
	}
	/* By bytes: three of 30000 do not fit in 65536 with their headers. */
	for (int i = 0; i < 3; i++)
		b[i] = (struct flt_batch_message){ .msg = big, .len = 30000 };
	while (done < 3) {
		int r = flt_send_message_batch(fx->f, &fx->client, b + done, 3 - done,
					       1000);

		assert_true(r > 0);
		done += (size_t)r;
		calls++;
	}
	assert_int_equal(calls, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(filter_get_message(p, &h, big, sizeof(big), 1000),
				 30000);
	/* A message too long for an entry goes alone; one too long at all
	 * is refused, and nothing is queued. */
	b[0] = (struct flt_batch_message){ .msg = big, .len = FLT_PORT_MAX_MESSAGE };
	b[1] = (struct flt_batch_message){ .msg = "z", .len = 1 };
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 2, 1000), 1);
	assert_int_equal(filter_get_message(p, &h, big, sizeof(big), 1000),
			 FLT_PORT_MAX_MESSAGE);
	b[0].len = FLT_PORT_MAX_MESSAGE + 1;
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 2, 1000),
			 -EMSGSIZE);
	assert_int_equal(filter_get_message(p, &h, big, sizeof(big), 0), -ETIMEDOUT);
	filter_close_port(p);
}

static void
bad_arguments_are_einval(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES), *q = NULL;
	struct flt_batch_message b[2] = { { .msg = "a", .len = 1 },
					  { .msg = NULL, .len = 1 } };
	struct filter_message m[1];
	char buf[4];

	assert_int_equal(flt_send_message_batch(NULL, &fx->client, b, 1, 0), -EINVAL);
	assert_int_equal(flt_send_message_batch(fx->f, NULL, b, 1, 0), -EINVAL);
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, NULL, 1, 0), -EINVAL);
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 0, 0), -EINVAL);
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 2, 0), -EINVAL);
	assert_int_equal(flt_send_message_batch(fx->f, &fx->client, b, 1, -2), -EINVAL);
	assert_int_equal(sent_count(fx), 0);
	assert_int_equal(filter_get_messages(NULL, m, 1, buf, 4, 0), -EINVAL);
	assert_int_equal(filter_get_messages(p, NULL, 1, buf, 4, 0), -EINVAL);
	assert_int_equal(filter_get_messages(p, m, 0, buf, 4, 0), -EINVAL);
	assert_int_equal(filter_get_messages(p, m, 1, NULL, 4, 0), -EINVAL);
	assert_int_equal(filter_get_messages(p, m, 1, buf, 4, -2), -EINVAL);
	assert_int_equal(filter_connect_communication_port("batch", 0x2, NULL, 0, &q),
			 -EINVAL);
	assert_null(q);
	filter_close_port(p);
}

/* Four getters on one batch port: every message exactly once. */
#define STORM_MESSAGES 20000
struct storm {
	filter_port *p;
	atomic_int got;
	atomic_uchar seen[STORM_MESSAGES + 1];
	atomic_int dup;
	atomic_int bad;
};

static void *
storm_getter(void *arg)
{
	struct storm *s = arg;

	while (atomic_load(&s->got) < STORM_MESSAGES) {
		struct filter_message_header h;
		uint32_t v;
		int r = filter_get_message(s->p, &h, &v, sizeof(v), 200);

		if (r == -ETIMEDOUT)
			continue;
		if (r != 4 || v != h.sequence || h.sequence == 0 ||
		    h.sequence > STORM_MESSAGES) {
			atomic_fetch_add(&s->bad, 1);
			break;
		}
		if (atomic_exchange(&s->seen[h.sequence], 1))
			atomic_fetch_add(&s->dup, 1);
		atomic_fetch_add(&s->got, 1);
	}
	return NULL;
}

static void
four_getters_each_message_exactly_once(void **state)
{
	struct fx *fx = *state;
	static struct storm s;
	static uint32_t vals[STORM_MESSAGES];
	static struct flt_batch_message b[STORM_MESSAGES];
	pthread_t t[4];
	size_t done = 0;

	memset(&s, 0, sizeof(s));
	s.p = connect_service(FILTER_CONNECT_BATCHES);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, storm_getter, &s), 0);
	for (uint32_t i = 0; i < STORM_MESSAGES; i++) {
		vals[i] = i + 1;
		b[i] = (struct flt_batch_message){ .msg = &vals[i], .len = 4 };
	}
	while (done < STORM_MESSAGES) {
		/* Varying batch sizes, as a filter's read batches vary. */
		size_t want = 1 + done % 97;
		int r;

		if (want > STORM_MESSAGES - done)
			want = STORM_MESSAGES - done;
		r = flt_send_message_batch(fx->f, &fx->client, b + done, want, 5000);
		assert_true(r > 0);
		done += (size_t)r;
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&s.bad), 0);
	assert_int_equal(atomic_load(&s.dup), 0);
	assert_int_equal(atomic_load(&s.got), STORM_MESSAGES);
	assert_int_equal(sent_count(fx), STORM_MESSAGES);
	filter_close_port(s.p);
}

/* A getter blocked reading M and one waiting for it both end on close. */
struct blocked {
	filter_port *p;
	int timeout;
	int r;
};

static void *
blocked_get(void *arg)
{
	struct blocked *b = arg;
	struct filter_message_header h;
	char buf[8];

	b->r = filter_get_message(b->p, &h, buf, sizeof(buf), b->timeout);
	return NULL;
}

static void
close_wakes_the_reader_and_those_waiting_for_it(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES);
	struct blocked b[3] = { { p, -1, 1 }, { p, -1, 1 }, { p, 60000, 1 } };
	pthread_t t[3];

	(void)fx;
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, blocked_get, &b[i]), 0);
	usleep(100 * 1000);
	filter_close_port(p);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(b[i].r, -ECANCELED);
	}
}

static int
disconnected(void *arg)
{
	struct fx *fx = arg;

	return atomic_load(&fx->disconnects) == atomic_load(&fx->connects);
}

static void
filter_close_ends_getters_with_enotconn(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(FILTER_CONNECT_BATCHES);
	struct blocked b[2] = { { p, -1, 1 }, { p, 60000, 1 } };
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, blocked_get, &b[i]), 0);
	usleep(100 * 1000);
	flt_close_client_port(fx->f, &fx->client);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(b[i].r, -ENOTCONN);
	}
	assert_true(tu_wait_until(disconnected, fx, WAIT_MS));
	filter_close_port(p);
}

/* ---- a hand-written filter side, for frames libfltmgr never sends ---- */

struct fake {
	int listen_fd;
	int m_fd;
	int r_pair[2];
	int c_pair[2];
	uint32_t connect_flags;
};

static void *
fake_accept(void *arg)
{
	struct fake *fk = arg;
	uint8_t buf[WIRE_HEADER_SIZE + WIRE_MAX_CONTEXT];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct wire_header h;
	struct frame_rx rx;
	const char *why;
	int fds[2];

	fk->m_fd = accept4(fk->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fk->m_fd < 0 || frame_recv(fk->m_fd, &iov, 1, MSG_TRUNC, &rx) != 1 ||
	    wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CONNECT), &h, &why) < 0)
		return NULL;
	fk->connect_flags = h.flags;
	socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fk->r_pair);
	socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fk->c_pair);
	fds[0] = fk->r_pair[1];
	fds[1] = fk->c_pair[1];
	h = (struct wire_header){ .type = WIRE_CONNECT_REPLY };
	frame_send(fk->m_fd, &h, NULL, fds, 2, 0);
	close(fk->r_pair[1]);
	close(fk->c_pair[1]);
	return NULL;
}

static filter_port *
fake_connect(struct fake *fk, unsigned flags)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	filter_port *p = NULL;
	pthread_t t;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s/fake", tu_runtime_dir_create());
	unlink(a.sun_path);
	fk->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fk->listen_fd >= 0);
	assert_int_equal(bind(fk->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fk->listen_fd, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, fake_accept, fk), 0);
	assert_int_equal(filter_connect_communication_port("fake", flags, NULL, 0, &p),
			 0);
	pthread_join(t, NULL);
	unlink(a.sun_path);
	return p;
}

static void
fake_close(struct fake *fk)
{
	close(fk->m_fd);
	close(fk->r_pair[0]);
	close(fk->c_pair[0]);
	close(fk->listen_fd);
}

static int
send_raw(struct fake *fk, const struct wire_header *h, const void *payload, int fd)
{
	return frame_send(fk->m_fd, h, payload, fd >= 0 ? &fd : NULL, fd >= 0, 0);
}

static void
service_asks_for_batches_in_its_connect(void **state)
{
	struct fake fk = { 0 };
	filter_port *p;

	(void)state;
	p = fake_connect(&fk, FILTER_CONNECT_BATCHES);
	assert_int_equal(fk.connect_flags, WIRE_FLAG_BATCHES);
	filter_close_port(p);
	fake_close(&fk);
	p = fake_connect(&fk, 0);
	assert_int_equal(fk.connect_flags, 0);
	filter_close_port(p);
	fake_close(&fk);
}

/* Payload of a batch: entries "ab" (seq 7) and "cde" (seq 8). */
static size_t
good_batch(uint8_t *payload)
{
	wire_encode_batch_entry(payload, 7, 2);
	memcpy(payload + 16, "ab", 2);
	wire_encode_batch_entry(payload + 18, 8, 3);
	memcpy(payload + 34, "cde", 3);
	return 37;
}

static void
malformed_batches_fail_the_port(void **state)
{
	enum { BAD_ENTRY, WITH_FD, NOT_ASKED, N_CASES };

	(void)state;
	for (int c = 0; c < N_CASES; c++) {
		struct fake fk = { 0 };
		filter_port *p =
			fake_connect(&fk, c == NOT_ASKED ? 0 : FILTER_CONNECT_BATCHES);
		uint8_t payload[64];
		struct wire_header h = { .type = WIRE_MESSAGE_BATCH, .id = 1, .aux2 = 2 };
		struct filter_message_header mh;
		char buf[16], eof;

		h.length = (uint32_t)good_batch(payload);
		if (c == BAD_ENTRY)
			wire_encode_batch_entry(payload + 18, 8,
						4); /* one byte too long */
		assert_int_equal(
			send_raw(&fk, &h, payload, c == WITH_FD ? STDIN_FILENO : -1), 0);
		assert_int_equal(filter_get_message(p, &mh, buf, sizeof(buf), 1000),
				 -EPROTO);
		/* The port is shut down: the filter side sees it at once. */
		assert_int_equal(recv(fk.m_fd, &eof, 1, MSG_DONTWAIT), 0);
		assert_int_equal(filter_get_message(p, &mh, buf, sizeof(buf), 0),
				 -EPROTO);
		filter_close_port(p);
		fake_close(&fk);
	}
}

static void
well_formed_raw_batch_is_delivered(void **state)
{
	struct fake fk = { 0 };
	filter_port *p;
	uint8_t payload[64];
	struct wire_header h = { .type = WIRE_MESSAGE_BATCH, .id = 41, .aux2 = 2 };
	struct filter_message m[4];
	char buf[16];

	(void)state;
	p = fake_connect(&fk, FILTER_CONNECT_BATCHES);
	h.length = (uint32_t)good_batch(payload);
	assert_int_equal(send_raw(&fk, &h, payload, -1), 0);
	assert_int_equal(filter_get_messages(p, m, 4, buf, sizeof(buf), 1000), 2);
	assert_int_equal(m[0].header.message_id, 41);
	assert_int_equal(m[0].header.sequence, 7);
	assert_int_equal(m[0].length, 2);
	assert_memory_equal(m[0].data, "ab", 2);
	assert_int_equal(m[1].header.message_id, 42);
	assert_int_equal(m[1].header.sequence, 8);
	assert_memory_equal(m[1].data, "cde", 3);
	filter_close_port(p);
	fake_close(&fk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(batch_travels_as_one_record_and_is_handed_out_one_by_one),
		T(service_without_the_flag_gets_one_message_per_record),
		T(get_messages_takes_the_record_as_far_as_the_buffer_lasts),
		T(get_messages_on_a_port_without_batches_takes_one),
		T(entry_too_big_for_the_buffer_is_consumed_the_rest_delivered),
		T(replies_and_descriptors_still_travel_alone_on_a_batch_port),
		T(limits_split_batches),
		T(bad_arguments_are_einval),
		T(four_getters_each_message_exactly_once),
		T(close_wakes_the_reader_and_those_waiting_for_it),
		T(filter_close_ends_getters_with_enotconn),
		T(service_asks_for_batches_in_its_connect),
		T(malformed_batches_fail_the_port),
		T(well_formed_raw_batch_is_delivered),
#undef T
	};

	return cmocka_run_group_tests_name("port_batch", tests, NULL, NULL);
}
