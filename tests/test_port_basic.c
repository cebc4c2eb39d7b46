/* SPDX-License-Identifier: MIT */
/*
 * test_port_basic.c — communication-port semantics, both sides in one
 * process: messages with and without replies, service calls, descriptor
 * passing, many waiters, timeouts, late and oversized replies, and every
 * way a connection can end. One test per behaviour.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

/* A bound on waits that end as soon as their condition holds; generous
 * for a loaded machine under a sanitizer. */
#define WAIT_MS 10000

struct fx {
	flt_manager *m;
	flt_filter *f;
	flt_port server;
	flt_port client; /* written by on_connect, cleared on disconnect */
	atomic_int connects;
	atomic_int disconnects;
	int fds_before;
};

static struct fx *g_fx;

static int
on_connect(flt_port client_port, void *server_cookie, const void *context,
	   size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	struct fx *fx = server_cookie;

	(void)context;
	(void)context_len;
	(void)peer;
	fx->client = client_port; /* the seed's plain assignment */
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

/* Service -> filter: answers with the input upper-cased. */
static int
on_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
	   size_t *ret_out_len)
{
	(void)cookie;
	if (in_len > out_cap)
		return -ENOSPC;
	for (size_t i = 0; i < in_len; i++) {
		char ch = ((const char *)in)[i];

		((char *)out)[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
	}
	*ret_out_len = in_len;
	return 0;
}

static int
setup(void **state)
{
	struct flt_port_attributes attr = { .name = "basic" };
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	tu_filter_up("basic", &fx->fds_before, &fx->m, &fx->f);
	assert_int_equal(flt_create_communication_port(fx->f, &fx->server, &attr, fx,
						       on_connect, on_disconnect,
						       on_message, 4),
			 0);
	g_fx = fx;
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
connect_service(void)
{
	filter_port *p = NULL;

	assert_int_equal(filter_connect_communication_port("basic", 0, "hi", 2, &p), 0);
	assert_non_null(p);
	return p;
}

static int
connected(void *arg)
{
	struct fx *fx = arg;

	return atomic_load(&fx->connects) > atomic_load(&fx->disconnects);
}

static int
disconnected(void *arg)
{
	struct fx *fx = arg;

	return atomic_load(&fx->connects) == atomic_load(&fx->disconnects);
}

/* A service thread that answers `count` messages with "re:" + payload. */
struct echo {
	filter_port *p;
	int count;
	int errors;
};

static void *
echo_thread(void *arg)
{
	struct echo *e = arg;

	for (int i = 0; i < e->count; i++) {
		struct filter_message_header h;
		char buf[256], out[300];
		int n = filter_get_message(e->p, &h, buf, sizeof(buf), 5000);

		if (n < 0) {
			e->errors++;
			break;
		}
		if (h.reply_length == 0)
			continue;
		memcpy(out, "re:", 3);
		memcpy(out + 3, buf, (size_t)n);
		if (filter_reply_message(e->p, h.message_id, 0, out, (size_t)n + 3) != 0)
			e->errors++;
	}
	return NULL;
}

/* A flt_send_message() running in its own thread. */
struct async_send {
	struct fx *fx;
	flt_port *var;
	char rep[64];
	size_t len;
	int timeout;
	int r;
	int64_t elapsed;
	pthread_t t;
};

static void *
async_send_run(void *arg)
{
	struct async_send *a = arg;
	int64_t t0 = tu_now_ms();

	a->r = flt_send_message(a->fx->f, a->var, "m", 1, a->rep, &a->len, a->timeout);
	a->elapsed = tu_now_ms() - t0;
	return NULL;
}

static void
async_send_start(struct async_send *a, struct fx *fx, size_t cap, int timeout)
{
	*a = (struct async_send){
		.fx = fx, .var = &fx->client, .len = cap, .timeout = timeout, .r = 1
	};
	assert_int_equal(pthread_create(&a->t, NULL, async_send_run, a), 0);
}

static void
send_with_reply(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct echo e = { .p = p, .count = 1 };
	struct flt_port_stats st;
	char reply[64];
	size_t len = sizeof(reply);
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, echo_thread, &e), 0);
	assert_int_equal(
		flt_send_message(fx->f, &fx->client, "ping", 4, reply, &len, 5000), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(reply, "re:ping", 7);
	pthread_join(t, NULL);
	assert_int_equal(e.errors, 0);
	assert_int_equal(flt_port_get_stats(fx->f, &fx->server, &st), 0);
	assert_int_equal(st.messages_sent, 1);
	assert_int_equal(st.replies_received, 1);
	assert_int_equal(st.connections_current, 1);
	filter_close_port(p);
	assert_true(tu_wait_until(disconnected, fx, WAIT_MS));
}

static void
send_without_reply(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	char buf[64];

	assert_int_equal(flt_send_message(fx->f, &fx->client, "one", 3, NULL, NULL, 1000),
			 0);
	assert_int_equal(flt_send_message(fx->f, &fx->client, "two", 3, NULL, NULL, 1000),
			 0);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 3);
	assert_memory_equal(buf, "one", 3);
	assert_int_equal(h.reply_length, 0);
	assert_int_equal(h.fd, -1);
	assert_int_equal(h.sequence, 1);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 3);
	assert_memory_equal(buf, "two", 3);
	assert_int_equal(h.sequence, 2);
	/* A reply to a message that wanted none is refused locally. */
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "x", 1), -ENOENT);
	filter_close_port(p);
}

static void
service_to_filter_message(void **state)
{
	(void)state;
	filter_port *p = connect_service();
	char out[16];
	size_t out_len = 0;

	assert_int_equal(filter_send_message(p, "hello", 5, out, sizeof(out), &out_len),
			 0);
	assert_int_equal(out_len, 5);
	assert_memory_equal(out, "HELLO", 5);
	/* The callback's own error comes back as the result. */
	assert_int_equal(filter_send_message(p, "toolong", 7, out, 3, &out_len), -ENOSPC);
	filter_close_port(p);
}

static void
service_message_while_others_wait(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct echo e = { .p = p, .count = 1 };
	char out[16];
	size_t out_len = 0, len;
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, echo_thread, &e), 0);
	usleep(50000); /* the echo thread is now blocked in get_message */
	assert_int_equal(filter_send_message(p, "abc", 3, out, sizeof(out), &out_len), 0);
	assert_memory_equal(out, "ABC", 3);
	len = sizeof(out);
	assert_int_equal(flt_send_message(fx->f, &fx->client, "x", 1, out, &len, 5000),
			 0);
	pthread_join(t, NULL);
	assert_int_equal(e.errors, 0);
	filter_close_port(p);
}

static void
fd_passing(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct flt_send_options o = { .fd = -1 };
	struct filter_message_header h;
	char path[] = "/tmp/fltmgr-fd.XXXXXX", buf[32];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "contents", 8), 8);
	o.fd = fd;
	assert_int_equal(
		flt_send_message_ex(fx->f, &fx->client, "f", 1, NULL, NULL, 1000, &o), 0);
	close(fd); /* the sender keeps ownership of its own descriptor */
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 1);
	assert_true(h.fd >= 0);
	assert_true(fcntl(h.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(pread(h.fd, buf, sizeof(buf), 0), 8);
	assert_memory_equal(buf, "contents", 8);
	close(h.fd);
	filter_close_port(p);
}

#define WAITERS  8
#define MESSAGES 10000
#define SENDERS  2

static atomic_uchar seen[MESSAGES + 1];
static atomic_int replies_done;

struct waiter {
	filter_port *p;
	int got;
	int bad;
};

static void *
waiter_thread(void *arg)
{
	struct waiter *w = arg;

	for (;;) {
		struct filter_message_header h;
		uint32_t v;
		int n = filter_get_message(w->p, &h, &v, sizeof(v), -1);

		if (n == -ECANCELED || n == -ENOTCONN)
			return NULL;
		if (n != sizeof(v) || v == 0 || v > MESSAGES) {
			w->bad++;
			continue;
		}
		atomic_fetch_add(&seen[v], 1);
		w->got++;
		if (filter_reply_message(w->p, h.message_id, 0, &v, sizeof(v)) != 0)
			w->bad++;
		atomic_fetch_add(&replies_done, 1);
	}
}

struct sender {
	struct fx *fx;
	uint32_t first;
	int bad;
};

static void *
sender_thread(void *arg)
{
	struct sender *s = arg;

	for (uint32_t v = s->first; v <= MESSAGES; v += SENDERS) {
		uint32_t r = 0;
		size_t len = sizeof(r);

		if (flt_send_message(s->fx->f, &s->fx->client, &v, sizeof(v), &r, &len,
				     10000) != 0 ||
		    len != sizeof(r) || r != v)
			s->bad++;
	}
	return NULL;
}

static void
eight_waiters_each_message_once(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct waiter w[WAITERS] = { 0 };
	struct sender s[SENDERS];
	pthread_t wt[WAITERS], st[SENDERS];
	int total = 0, busy = 0;

	memset(seen, 0, sizeof(seen));
	atomic_store(&replies_done, 0);
	for (int i = 0; i < WAITERS; i++) {
		w[i].p = p;
		assert_int_equal(pthread_create(&wt[i], NULL, waiter_thread, &w[i]), 0);
	}
	for (int i = 0; i < SENDERS; i++) {
		s[i] = (struct sender){ .fx = fx, .first = (uint32_t)i + 1 };
		assert_int_equal(pthread_create(&st[i], NULL, sender_thread, &s[i]), 0);
	}
	for (int i = 0; i < SENDERS; i++) {
		pthread_join(st[i], NULL);
		assert_int_equal(s[i].bad, 0);
	}
	/* A sender has its reply before the replier has its ack: let every
	 * filter_reply_message() return before closing. */
	for (int i = 0; i < 5000 && atomic_load(&replies_done) < MESSAGES; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&replies_done), MESSAGES);
	filter_close_port(p); /* also proves close wakes 8 blocked getters */
	for (int i = 0; i < WAITERS; i++) {
		pthread_join(wt[i], NULL);
		assert_int_equal(w[i].bad, 0);
		total += w[i].got;
		busy += w[i].got > 0;
	}
	assert_int_equal(total, MESSAGES);
	for (int v = 1; v <= MESSAGES; v++)
		assert_int_equal(atomic_load(&seen[v]), 1);
	assert_true(busy >= 2); /* the work really was shared */
}

static void
timeout_while_service_not_reading(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	static char big[60000];
	struct flt_port_stats st;
	int64_t t0 = 0, elapsed = 0;
	int r = 0, sent = 0;

	/* Fill the queue; the send that finds no room waits out its timeout. */
	for (int i = 0; i < 1000; i++) {
		t0 = tu_now_ms();
		r = flt_send_message(fx->f, &fx->client, big, sizeof(big), NULL, NULL,
				     200);
		elapsed = tu_now_ms() - t0;
		if (r != 0)
			break;
		sent++;
	}
	assert_int_equal(r, -ETIMEDOUT);
	assert_true(sent > 0);
	/* Not before its timeout; after it only by scheduling (loose). */
	assert_true(elapsed >= 190 && elapsed < 10000);
	assert_int_equal(flt_port_get_stats(fx->f, &fx->client, &st), 0);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.blocked_senders, 0);
	assert_true(st.queued_bytes > 0);
	/* With a reply wanted, the one timeout also covers the queueing. */
	{
		char rep[8];
		size_t len = sizeof(rep);

		t0 = tu_now_ms();
		r = flt_send_message(fx->f, &fx->client, big, sizeof(big), rep, &len,
				     200);
		elapsed = tu_now_ms() - t0;
		assert_int_equal(r, -ETIMEDOUT);
		assert_true(elapsed >= 190 && elapsed < 10000);
	}
	filter_close_port(p);
}

static void
timeout_waiting_for_reply_then_late_reply_refused(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	struct flt_port_stats st;
	struct echo e = { .p = p, .count = 1 };
	char buf[16], rep[16];
	size_t len = sizeof(rep);
	int64_t t0;
	pthread_t t;

	t0 = tu_now_ms();
	assert_int_equal(flt_send_message(fx->f, &fx->client, "q", 1, rep, &len, 200),
			 -ETIMEDOUT);
	assert_true(tu_now_ms() - t0 >= 190);
	assert_true(tu_now_ms() - t0 < 10000); /* loose: scheduling only */

	/* The service took it but answers after the sender gave up. */
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 1000), 1);
	assert_int_equal(h.reply_length, sizeof(rep));
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "late", 4), -ENOENT);
	/* Answering twice is refused too (locally). */
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "late", 4), -ENOENT);
	assert_int_equal(flt_port_get_stats(fx->f, &fx->server, &st), 0);
	assert_int_equal(st.late_replies, 1);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.replies_received, 0);

	/* The connection is fine afterwards. */
	assert_int_equal(pthread_create(&t, NULL, echo_thread, &e), 0);
	len = sizeof(rep);
	assert_int_equal(flt_send_message(fx->f, &fx->client, "ok", 2, rep, &len, 5000),
			 0);
	assert_memory_equal(rep, "re:ok", 5);
	pthread_join(t, NULL);
	filter_close_port(p);
}

static void
reply_larger_than_capacity_refused_sender_keeps_waiting(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	struct async_send a;
	char buf[16];

	async_send_start(&a, fx, 4, 5000);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
	assert_int_equal(h.reply_length, 4);
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "too long", 8),
			 -EMSGSIZE);
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "fit", 3), 0);
	pthread_join(a.t, NULL);
	assert_int_equal(a.r, 0);
	assert_int_equal(a.len, 3);
	assert_memory_equal(a.rep, "fit", 3);
	filter_close_port(p);
}

/* FILTER_REPLY_NO_ACK: the reply reaches its sender; the id is then
 * answered; a reply too long for the sender is refused locally and the
 * sender keeps waiting. */
static void
reply_without_ack_reaches_the_sender(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	struct flt_port_stats st;
	struct async_send a;
	char buf[16];

	async_send_start(&a, fx, 4, 5000);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
	assert_int_equal(filter_reply_message_ex(p, h.message_id, 0, "too long", 8,
						 FILTER_REPLY_NO_ACK),
			 -EMSGSIZE);
	assert_int_equal(filter_reply_message_ex(p, h.message_id, -EPERM, "fit", 3,
						 FILTER_REPLY_NO_ACK),
			 0);
	pthread_join(a.t, NULL);
	assert_int_equal(a.r, -EPERM);
	assert_int_equal(a.len, 3);
	assert_memory_equal(a.rep, "fit", 3);
	/* Answered: a second reply is refused locally, either way. */
	assert_int_equal(
		filter_reply_message_ex(p, h.message_id, 0, NULL, 0, FILTER_REPLY_NO_ACK),
		-ENOENT);
	assert_int_equal(filter_reply_message(p, h.message_id, 0, NULL, 0), -ENOENT);
	assert_int_equal(filter_reply_message_ex(p, h.message_id, 0, NULL, 0, 0x2),
			 -EINVAL);
	assert_int_equal(flt_port_get_stats(fx->f, &fx->server, &st), 0);
	assert_int_equal(st.replies_received, 1);
	assert_int_equal(st.late_replies, 0);
	/* The connection is intact: a normal round trip still works. */
	async_send_start(&a, fx, 8, 5000);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "ok", 2), 0);
	pthread_join(a.t, NULL);
	assert_int_equal(a.r, 0);
	filter_close_port(p);
}

static int
late_reply_counted(void *arg)
{
	struct fx *fx = arg;
	struct flt_port_stats st;

	return flt_port_get_stats(fx->f, &fx->server, &st) == 0 && st.late_replies == 1;
}

/* A reply without ack to a sender that has timed out: 0 for the service
 * (it asked not to know), dropped and counted by the filter. */
static void
late_reply_without_ack_is_counted_by_the_filter(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	struct async_send a;
	char buf[16];

	async_send_start(&a, fx, 8, 50);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
	pthread_join(a.t, NULL);
	assert_int_equal(a.r, -ETIMEDOUT);
	assert_int_equal(filter_reply_message_ex(p, h.message_id, 0, "late", 4,
						 FILTER_REPLY_NO_ACK),
			 0);
	assert_true(tu_wait_until(late_reply_counted, fx, WAIT_MS));
	filter_close_port(p);
}

/* A message too big for the caller's buffer is consumed and answered by
 * the library itself (-EMSGSIZE to the sender, no ack awaited). Many of
 * them must not wear the connection down. */
static void
oversized_message_answered_by_library(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	struct async_send a;
	char small[2], buf[16];

	for (int i = 0; i < 1000; i++) {
		async_send_start(&a, fx, 8, 5000);
		assert_int_equal(filter_get_message(p, &h, small, 0, 2000), -EMSGSIZE);
		assert_int_not_equal(h.message_id, 0);
		pthread_join(a.t, NULL);
		/* Answered by the library: -EMSGSIZE, never the sender's
		 * -ETIMEDOUT (the clock is no proof on a loaded machine). */
		assert_int_equal(a.r, -EMSGSIZE);
	}
	/* Still connected and working. */
	async_send_start(&a, fx, 8, 5000);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
	assert_int_equal(filter_reply_message(p, h.message_id, 0, "ok", 2), 0);
	pthread_join(a.t, NULL);
	assert_int_equal(a.r, 0);
	(void)small;
	filter_close_port(p);
}

static void *
send_then_close_run(void *arg)
{
	struct async_send *a = arg;

	async_send_run(a);
	flt_close_client_port(a->fx->f, &a->fx->client); /* at once */
	return NULL;
}

/* The ack for a taken reply and the end of the connection can arrive
 * together; the service must still learn that its reply was taken. */
static void
reply_taken_then_filter_closes_reports_success(void **state)
{
	struct fx *fx = *state;

	for (int i = 0; i < 200; i++) {
		filter_port *p = connect_service();
		struct filter_message_header h;
		struct async_send a = {
			.fx = fx, .var = &fx->client, .len = 8, .timeout = 5000, .r = 1
		};
		char buf[16];

		assert_true(tu_wait_until(connected, fx, WAIT_MS));
		assert_int_equal(pthread_create(&a.t, NULL, send_then_close_run, &a), 0);
		assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
		assert_int_equal(filter_reply_message(p, h.message_id, 0, "ok", 2), 0);
		pthread_join(a.t, NULL);
		assert_int_equal(a.r, 0);
		filter_close_port(p);
		assert_true(tu_wait_until(disconnected, fx, WAIT_MS));
	}
}

static void
reply_status_becomes_send_result(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	struct async_send a;
	char buf[16];

	async_send_start(&a, fx, 8, 5000);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
	assert_int_equal(filter_reply_message(p, h.message_id, -EIO, NULL, 0), 0);
	pthread_join(a.t, NULL);
	assert_int_equal(a.r, -EIO);
	/* Positive statuses are not errno values: refused. */
	assert_int_equal(filter_reply_message(p, 1, 5, NULL, 0), -EINVAL);
	filter_close_port(p);
}

static void
service_disconnect_wakes_blocked_senders_at_once(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct async_send a[4];
	struct flt_port_stats st;
	struct filter_message_header h;
	char buf[16];

	for (int i = 0; i < 4; i++)
		async_send_start(&a[i], fx, 8, 10000);
	for (int i = 0; i < 4; i++)
		assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), 1);
	filter_close_port(p); /* the service goes away without answering */
	for (int i = 0; i < 4; i++) {
		pthread_join(a[i].t, NULL);
		assert_int_equal(a[i].r, -ENOTCONN); /* not -ETIMEDOUT at 10 s */
		assert_true(a[i].elapsed < 8000);
	}
	assert_true(tu_wait_until(disconnected, fx, WAIT_MS));
	assert_int_equal(atomic_load(&fx->disconnects), 1);
	assert_int_equal(fx->client.value, 0); /* the callback closed it */
	assert_int_equal(flt_port_get_stats(fx->f, &fx->server, &st), 0);
	assert_int_equal(st.disconnect_failures, 4);
	assert_int_equal(st.connections_current, 0);
}

static void
service_close_wakes_its_own_waiters(void **state)
{
	(void)state;
	filter_port *p = connect_service();
	struct waiter w[4] = { 0 };
	pthread_t t[4];
	int64_t t0;

	for (int i = 0; i < 4; i++) {
		w[i].p = p;
		assert_int_equal(pthread_create(&t[i], NULL, waiter_thread, &w[i]), 0);
	}
	usleep(100000);
	t0 = tu_now_ms();
	filter_close_port(p);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_true(tu_now_ms() - t0 < 8000); /* loose: they wait forever */
	for (int i = 0; i < 4; i++)
		assert_int_equal(w[i].got + w[i].bad, 0);
}

static void *
timed_get_run(void *arg)
{
	filter_port *p = arg;
	struct filter_message_header h;
	char b[8];

	return (void *)(intptr_t)filter_get_message(p, &h, b, sizeof(b), 10000);
}

static void
service_close_wakes_timed_waiters_with_ecanceled(void **state)
{
	(void)state;
	filter_port *p = connect_service();
	pthread_t t[2];
	void *r;
	int64_t t0;

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, timed_get_run, p), 0);
	usleep(100000);
	t0 = tu_now_ms();
	filter_close_port(p);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], &r);
		assert_int_equal((int)(intptr_t)r, -ECANCELED); /* not -ETIMEDOUT */
	}
	assert_true(tu_now_ms() - t0 < 8000); /* loose: their timeout is 10 s */
}

static void
filter_close_client_port_disconnects_service(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	char buf[8], out[8];
	size_t out_len;
	flt_port mine, copy;

	assert_true(tu_wait_until(connected, fx, WAIT_MS));
	/* The filter's own variable is written by the disconnect callback
	 * too (under the port lock): the test closes through copies and
	 * reads fx->client only once that callback has run. */
	mine = copy = fx->client;
	flt_close_client_port(fx->f, &mine);
	assert_int_equal(mine.value, 0);     /* cleared by the call */
	flt_close_client_port(fx->f, &mine); /* harmless twice */
	flt_close_client_port(fx->f, &copy); /* and through another copy */
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), -ENOTCONN);
	assert_int_equal(filter_send_message(p, "x", 1, out, sizeof(out), &out_len),
			 -ENOTCONN);
	assert_true(tu_wait_until(disconnected, fx, WAIT_MS));
	assert_int_equal(atomic_load(&fx->disconnects), 1);
	assert_int_equal(fx->client.value, 0); /* the callback closed it */
	filter_close_port(p);
}

static void
bad_handles_are_errors_not_crashes(void **state)
{
	struct fx *fx = *state;
	flt_port null = FLT_PORT_NULL, forged = { 0xdeadbeef00001234ull };
	flt_port server = fx->server, zero_gen = { 0x1 };
	char rep[4];
	size_t len = sizeof(rep);

	assert_int_equal(flt_send_message(fx->f, &null, "x", 1, NULL, NULL, 0),
			 -ENOTCONN);
	assert_int_equal(flt_send_message(fx->f, &forged, "x", 1, NULL, NULL, 0),
			 -EINVAL);
	assert_int_equal(flt_send_message(fx->f, &zero_gen, "x", 1, NULL, NULL, 0),
			 -EINVAL);
	assert_int_equal(flt_send_message(fx->f, &server, "x", 1, NULL, NULL, 0),
			 -EINVAL);
	for (uint64_t i = 0; i < 4096; i++) {
		flt_port any = { i * 0x9e3779b97f4a7c15ull };
		int r = flt_send_message(fx->f, &any, "x", 1, rep, &len, 0);

		assert_true(r == -EINVAL || r == -ENOTCONN);
	}
	assert_int_equal(flt_send_message(fx->f, &null, "x", 1, rep, NULL, 0), -EINVAL);
	assert_int_equal(flt_send_message(NULL, &null, "x", 1, NULL, NULL, 0), -EINVAL);
	assert_int_equal(flt_send_message(fx->f, &null, "x", FLT_PORT_MAX_MESSAGE + 1,
					  NULL, NULL, 0),
			 -EMSGSIZE);
	assert_int_equal(flt_send_message(fx->f, &null, "x", 1, NULL, NULL, -2), -EINVAL);
	flt_close_client_port(fx->f, &forged);
	flt_close_communication_port(fx->f, &forged);
}

static void
close_server_port_keeps_connections(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service(), *p2 = NULL;
	struct echo e = { .p = p, .count = 1 };
	char rep[16];
	size_t len = sizeof(rep);
	pthread_t t;

	flt_close_communication_port(fx->f, &fx->server);
	assert_int_equal(fx->server.value, 0);
	flt_close_communication_port(fx->f, &fx->server); /* idempotent */
	assert_int_equal(filter_connect_communication_port("basic", 0, NULL, 0, &p2),
			 -ENOENT);
	assert_int_equal(pthread_create(&t, NULL, echo_thread, &e), 0);
	assert_int_equal(
		flt_send_message(fx->f, &fx->client, "still", 5, rep, &len, 5000), 0);
	pthread_join(t, NULL);
	filter_close_port(p);
	assert_true(tu_wait_until(disconnected, fx, WAIT_MS));
}

static void
unregister_disconnects_services(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct filter_message_header h;
	char buf[8];
	struct flt_registration reg = { .name = "basic", .altitude = "370000" };
	struct flt_port_attributes attr = { .name = "basic" };

	assert_true(tu_wait_until(connected, fx, WAIT_MS));
	flt_unregister_filter(fx->f);
	assert_int_equal(atomic_load(&fx->disconnects), 1);
	assert_int_equal(filter_get_message(p, &h, buf, sizeof(buf), 2000), -ENOTCONN);
	filter_close_port(p);
	/* Re-register so teardown has something to unregister; the name
	 * and the port name are free again. */
	assert_int_equal(flt_register_filter(fx->m, &reg, &fx->f), 0);
	assert_int_equal(flt_create_communication_port(fx->f, &fx->server, &attr, fx,
						       on_connect, on_disconnect, NULL,
						       1),
			 0);
}

/* A filter in the usual shape: its services are excluded while connected
 * (the disconnect callback includes them again) and its unload callback
 * frees the state those callbacks use. Unregistering must run every
 * disconnect callback before unload, with the exclusion list still alive
 * (ASan catches a use after free). */
struct ordered {
	flt_filter *f;
	flt_port client;
	char trail[8]; /* 'c' connect, 'd' disconnect, 'u' unload */
	atomic_int n;
};

static struct ordered *g_ordered;

static int
ordered_connect(flt_port client_port, void *server_cookie, const void *context,
		size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	struct ordered *o = server_cookie;

	(void)context;
	(void)context_len;
	o->client = client_port;
	assert_int_equal(flt_exclude_process(o->f, peer->pid), 0);
	o->trail[atomic_fetch_add(&o->n, 1)] = 'c';
	*ret_cookie = (void *)(intptr_t)peer->pid;
	return 0;
}

static void
ordered_disconnect(void *cookie)
{
	struct ordered *o = g_ordered;

	flt_close_client_port(o->f, &o->client);
	(void)flt_include_process(o->f, (pid_t)(intptr_t)cookie);
	o->trail[atomic_fetch_add(&o->n, 1)] = 'd';
}

static void
ordered_unload(flt_filter *filter, void *cookie)
{
	struct ordered *o = cookie;

	(void)filter;
	o->trail[atomic_fetch_add(&o->n, 1)] = 'u';
}

static int
ordered_connected(void *arg)
{
	return atomic_load(&((struct ordered *)arg)->n) >= 1;
}

static void
unload_runs_after_disconnect_callbacks(void **state)
{
	struct fx *fx = *state;
	struct ordered o = { 0 };
	struct flt_registration reg = { .name = "ordered",
					.altitude = "360000",
					.unload = ordered_unload,
					.cookie = &o };
	struct flt_port_attributes attr = { .name = "ordered" };
	flt_port server;
	filter_port *p = NULL;

	g_ordered = &o;
	assert_int_equal(flt_register_filter(fx->m, &reg, &o.f), 0);
	assert_int_equal(flt_create_communication_port(o.f, &server, &attr, &o,
						       ordered_connect,
						       ordered_disconnect, NULL, 1),
			 0);
	assert_int_equal(filter_connect_communication_port("ordered", 0, NULL, 0, &p), 0);
	assert_true(tu_wait_until(ordered_connected, &o, WAIT_MS));
	flt_unregister_filter(o.f);
	assert_int_equal(atomic_load(&o.n), 3);
	assert_memory_equal(o.trail, "cdu", 3);
	filter_close_port(p);
}

static int
connect_sends_to_itself(flt_port client_port, void *server_cookie, const void *context,
			size_t context_len, const struct flt_peer *peer,
			void **ret_cookie)
{
	struct fx *fx = server_cookie;
	int r;

	(void)context;
	(void)context_len;
	(void)peer;
	*ret_cookie = fx;
	r = flt_send_message(fx->f, &client_port, "early", 5, NULL, NULL, 1000);
	return r == -EDEADLK ? 0 : -EPROTO;
}

static void
send_inside_connect_callback_is_edeadlk(void **state)
{
	struct fx *fx = *state;
	struct flt_port_attributes attr = { .name = "selfsend" };
	flt_port sp;
	filter_port *p = NULL;

	assert_int_equal(flt_create_communication_port(fx->f, &sp, &attr, fx,
						       connect_sends_to_itself,
						       on_disconnect, NULL, 1),
			 0);
	/* The callback returns 0 only if its own send said -EDEADLK. */
	assert_int_equal(filter_connect_communication_port("selfsend", 0, NULL, 0, &p),
			 0);
	filter_close_port(p);
	flt_close_communication_port(fx->f, &sp);
}

static void
counters_match_traffic(void **state)
{
	struct fx *fx = *state;
	filter_port *p = connect_service();
	struct echo e = { .p = p, .count = 10 };
	struct flt_port_stats st;
	char rep[16];
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, echo_thread, &e), 0);
	for (int i = 0; i < 5; i++) {
		size_t len = sizeof(rep);

		assert_int_equal(
			flt_send_message(fx->f, &fx->client, "r", 1, rep, &len, 5000), 0);
		assert_int_equal(
			flt_send_message(fx->f, &fx->client, "n", 1, NULL, NULL, 5000),
			0);
	}
	pthread_join(t, NULL);
	{
		char out[4];
		size_t ol;

		assert_int_equal(filter_send_message(p, "a", 1, out, sizeof(out), &ol),
				 0);
	}
	assert_int_equal(flt_port_get_stats(fx->f, &fx->client, &st), 0);
	assert_int_equal(st.messages_sent, 10);
	assert_int_equal(st.replies_received, 5);
	assert_int_equal(st.service_messages, 1);
	assert_int_equal(st.timeouts + st.late_replies + st.disconnect_failures, 0);
	assert_int_equal(st.pending_replies, 0);
	filter_close_port(p);
	assert_true(tu_wait_until(disconnected, fx, WAIT_MS));
	/* Folded into the server port's totals after the connection ended. */
	assert_int_equal(flt_port_get_stats(fx->f, &fx->server, &st), 0);
	assert_int_equal(st.messages_sent, 10);
	assert_int_equal(st.replies_received, 5);
	assert_int_equal(st.connections_accepted, 1);
	assert_int_equal(st.connections_current, 0);
}

/* ---- a filter's own counters (flt_registration.counters) ---- */

static size_t
three_counters(void *cookie, struct flt_counter *out, size_t cap)
{
	const struct flt_counter all[] = {
		{ "records", 7 },
		{ "Bad Name", 8 },
		{ "cache_hits", *(uint64_t *)cookie },
	};

	for (size_t i = 0; i < cap && i < 3; i++)
		out[i] = all[i];
	return 3;
}

static void
filter_counters_reported_and_names_checked(void **state)
{
	struct fx *fx = *state;
	uint64_t hits = 42;
	struct flt_registration reg = { .name = "counting",
					.altitude = "370001",
					.counters = three_counters,
					.cookie = &hits };
	struct flt_counter c[4];
	flt_filter *f;
	size_t n = 99;

	/* A filter without the hook has none. */
	assert_int_equal(flt_filter_get_counters(fx->f, c, 4, &n), 0);
	assert_int_equal(n, 0);

	assert_int_equal(flt_register_filter(fx->m, &reg, &f), 0);
	assert_int_equal(flt_filter_get_counters(f, c, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(c[0].name, "records");
	assert_int_equal(c[0].value, 7);
	assert_string_equal(c[1].name, "invalid"); /* not [a-z0-9_] */
	assert_int_equal(c[1].value, 8);
	assert_string_equal(c[2].name, "cache_hits");
	assert_int_equal(c[2].value, 42);
	/* Fewer slots than counters: only that many, never more. */
	assert_int_equal(flt_filter_get_counters(f, c, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(flt_filter_get_counters(f, NULL, 1, &n), -EINVAL);
	assert_int_equal(flt_filter_get_counters(NULL, c, 4, &n), -EINVAL);
	flt_unregister_filter(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(send_with_reply),
		T(send_without_reply),
		T(service_to_filter_message),
		T(service_message_while_others_wait),
		T(fd_passing),
		T(eight_waiters_each_message_once),
		T(timeout_while_service_not_reading),
		T(timeout_waiting_for_reply_then_late_reply_refused),
		T(reply_larger_than_capacity_refused_sender_keeps_waiting),
		T(reply_without_ack_reaches_the_sender),
		T(late_reply_without_ack_is_counted_by_the_filter),
		T(oversized_message_answered_by_library),
		T(reply_taken_then_filter_closes_reports_success),
		T(reply_status_becomes_send_result),
		T(service_disconnect_wakes_blocked_senders_at_once),
		T(service_close_wakes_its_own_waiters),
		T(service_close_wakes_timed_waiters_with_ecanceled),
		T(filter_close_client_port_disconnects_service),
		T(bad_handles_are_errors_not_crashes),
		T(close_server_port_keeps_connections),
		T(unregister_disconnects_services),
		T(unload_runs_after_disconnect_callbacks),
		T(send_inside_connect_callback_is_edeadlk),
		T(counters_match_traffic),
		T(filter_counters_reported_and_names_checked),
#undef T
	};

	(void)g_fx;
	return cmocka_run_group_tests_name("port_basic", tests, NULL, NULL);
}
