/* SPDX-License-Identifier: MIT */
/*
 * send.c — flt_send_message() and flt_close_client_port(): the two calls
 * that take a pointer to the filter's client-port variable.
 *
 * The variable is read (send) and cleared (close) under the filter's port
 * lock, and the handle read from it is turned into a counted reference
 * under the table lock before the port lock is dropped. From then on the
 * sender works on its own reference: a concurrent close makes it fail with
 * -ENOTCONN, never touch freed memory.
 *
 * Waiting for a reply uses a leader/follower scheme on the R socket: the
 * first waiting sender becomes the reader, reads replies (its own or other
 * senders', which it hands over by id and wakes), and passes the role on
 * when it leaves: to another waiting sender, or back to the connection
 * thread, which watches R whenever no sender does. Taking the role from
 * the idle thread only disarms R in the thread's epoll set, so a single
 * sender still pays exactly the two wake-ups of a raw ping-pong. Request
 * state only changes under the connection lock.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/frame_io.h"
#include "common/timeutil.h"
#include "ports/internal.h"
#include "common/lockdep.h"

#define CANCELLED_TTL_NS (30LL * 1000000000LL)

/* Set on a connection thread while its connect callback runs. */
static __thread struct conn *tls_handshaking;

void
conn_set_handshaking(struct conn *c)
{
	tls_handshaking = c;
}

int
conn_lookup(flt_filter *f, const flt_port *var, struct conn **ret)
{
	struct obj *o;
	int err;

	pthread_mutex_lock(&f->port_lock);
	o = ht_ref(&f->mgr->ht, *var, HK_CONN, &err);
	pthread_mutex_unlock(&f->port_lock);
	if (!o)
		return err;
	if (conn_of(o)->filter != f) {
		obj_unref(o);
		return -EINVAL;
	}
	*ret = conn_of(o);
	return 0;
}

/* Caller holds c->lock. Returns ETIMEDOUT or 0. */
static int
wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline)
{
	lockdep_assert_held(lock);
	struct timespec ts;

	if (deadline == DEADLINE_NEVER)
		return pthread_cond_wait(cond, lock);
	ts = deadline_timespec(deadline);
	return pthread_cond_timedwait(cond, lock, &ts);
}

int
conn_wait_connected_locked(struct conn *c, int64_t deadline)
{
	lockdep_assert_held(&c->lock);
	while (c->state == CONN_HANDSHAKE) {
		if (tls_handshaking == c)
			return -EDEADLK;
		if (wait_until(&c->state_cond, &c->lock, deadline) == ETIMEDOUT &&
		    c->state == CONN_HANDSHAKE) {
			atomic_fetch_add(&c->ctr.timeouts, 1);
			return -ETIMEDOUT;
		}
	}
	if (c->state == CONN_CLOSING) {
		atomic_fetch_add(&c->ctr.disconnect_failures, 1);
		return -ENOTCONN;
	}
	return 0;
}

/* Caller holds c->lock; the reader role is free. Wake whoever should read
 * replies next: a sender waiting in the loop, else give R back to the
 * connection thread (armed in its epoll set: it wakes only if something
 * is there to read). */
void
conn_pass_reader_role_locked(struct conn *c)
{
	lockdep_assert_held(&c->lock);
	if (c->reader != READER_NONE)
		return;
	for (struct request *r = c->waiting; r; r = r->next) {
		if (r->in_wait) {
			pthread_cond_signal(&r->cond);
			return;
		}
	}
	if (c->serving && c->state != CONN_CLOSING) {
		c->reader = READER_THREAD_IDLE;
		conn_watch_replies_locked(c, true);
	}
}

/* Caller holds c->lock. Drops cancellations past their time. */
static void
expire_cancelled(struct conn *c)
{
	lockdep_assert_held(&c->lock);
	int64_t now = now_ns();
	size_t j = 0;

	for (size_t i = 0; i < c->n_cancelled; i++)
		if (c->cancelled[i].expires_ns > now)
			c->cancelled[j++] = c->cancelled[i];
	c->n_cancelled = j;
}

static void
remember_cancelled(struct conn *c, uint64_t id)
{
	if (c->n_cancelled == c->cap_cancelled)
		expire_cancelled(c);
	if (c->n_cancelled == c->cap_cancelled) {
		size_t ncap = c->cap_cancelled ? c->cap_cancelled * 2 : 8;
		struct cancelled_id *n = realloc(c->cancelled, ncap * sizeof(*n));

		if (!n)
			return; /* the late reply will be refused as unknown */
		c->cancelled = n;
		c->cap_cancelled = ncap;
	}
	c->cancelled[c->n_cancelled++] =
		(struct cancelled_id){ .id = id,
				       .expires_ns = now_ns() + CANCELLED_TTL_NS };
}

int
conn_queue_frame(struct conn *c, const struct wire_header *h, const struct iovec *iov,
		 size_t n_iov, int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->m_fd, .events = POLLOUT },
			{ .fd = c->close_efd, .events = POLLIN },
		};
		int r, n;

		r = frame_sendv(c->m_fd, h, iov, n_iov, fd >= 0 ? &fd : NULL, fd >= 0,
				MSG_DONTWAIT);
		if (r == -EPIPE || r == -ECONNRESET)
			return -ENOTCONN;
		if (r != -EAGAIN)
			return r;
		atomic_fetch_add(&c->blocked_senders, 1);
		n = poll(p, 2, deadline_poll_ms(deadline));
		atomic_fetch_sub(&c->blocked_senders, 1);
		if (n == 0)
			return -ETIMEDOUT;
		if (n > 0 && p[1].revents)
			return -ENOTCONN;
	}
}

static int
queue_message(struct conn *c, const struct wire_header *h, const void *msg, int fd,
	      int64_t deadline)
{
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = h->length };

	return conn_queue_frame(c, h, &iov, h->length ? 1 : 0, fd, deadline);
}

/* Holds the reader role; reads R until req is settled or time runs out. */
static int
read_as_leader(struct conn *c, struct request *req, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->r_fd, .events = POLLIN },
			{ .fd = c->close_efd, .events = POLLIN },
		};
		bool done;
		int n, r;

		n = poll(p, 2, deadline_poll_ms(deadline));
		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0)
			continue;
		if (p[1].revents)
			return -ENOTCONN;
		r = conn_drain_replies(c, req);
		pthread_mutex_lock(&c->lock);
		done = req->state != REQ_WAITING;
		pthread_mutex_unlock(&c->lock);
		if (done)
			return 0; /* even if the connection ended right after */
		if (r < 0)
			return r;
	}
}

static int
conn_send(struct conn *c, const void *msg, size_t len, void *reply, size_t *reply_len,
	  int64_t deadline, const struct flt_send_options *o)
{
	struct wire_header h = { .type = WIRE_MESSAGE, .length = (uint32_t)len };
	struct request req = { .state = REQ_WAITING };
	bool want = reply != NULL;
	int fd = o ? o->fd : -1;
	int r;

	pthread_mutex_lock(&c->lock);
	r = conn_wait_connected_locked(c, deadline);
	if (r < 0) {
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	h.id = ++c->next_id;
	h.aux = o && o->sequence ? o->sequence : ++c->next_seq;
	if (want) {
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&req.cond, &ca);
		pthread_condattr_destroy(&ca);
		req.id = h.id;
		req.buf = reply;
		req.cap = *reply_len < WIRE_MAX_PAYLOAD ? *reply_len : WIRE_MAX_PAYLOAD;
		h.aux2 = (uint32_t)req.cap;
		/* Registered before the message leaves, so a fast reply finds it. */
		req.next = c->waiting;
		if (c->waiting)
			c->waiting->prev = &req;
		c->waiting = &req;
		c->n_waiting++;
	}
	pthread_mutex_unlock(&c->lock);

	r = queue_message(c, &h, msg, fd, deadline);
	pthread_mutex_lock(&c->lock);
	if (r < 0) {
		if (want && req.state == REQ_WAITING)
			conn_unlink_request_locked(c, &req);
		if (req.state == REQ_FAILED || c->state == CONN_CLOSING)
			r = -ENOTCONN;
		if (want)
			conn_pass_reader_role_locked(c);
		pthread_mutex_unlock(&c->lock);
		if (want)
			pthread_cond_destroy(&req.cond);
		if (r == -ETIMEDOUT)
			atomic_fetch_add(&c->ctr.timeouts, 1);
		else if (r == -ENOTCONN)
			atomic_fetch_add(&c->ctr.disconnect_failures, 1);
		return r;
	}
	atomic_fetch_add_explicit(&c->ctr.sent, 1, memory_order_relaxed);
	if (!want) {
		pthread_mutex_unlock(&c->lock);
		return 0;
	}

	req.in_wait = true;
	for (;;) {
		if (req.state != REQ_WAITING)
			break;
		if (c->reader == READER_NONE || c->reader == READER_THREAD_IDLE) {
			/* From the idle thread: disarm R in its epoll set. */
			if (c->reader == READER_THREAD_IDLE)
				conn_watch_replies_locked(c, false);
			c->reader = READER_SENDER;
			pthread_mutex_unlock(&c->lock);
			r = read_as_leader(c, &req, deadline);
			pthread_mutex_lock(&c->lock);
			c->reader = READER_NONE;
			if (r == -ETIMEDOUT)
				break;
			continue;
		}
		/* Another sender reads, or the thread is reading right now:
		 * either wakes us when it leaves the role. */
		if (wait_until(&req.cond, &c->lock, deadline) == ETIMEDOUT)
			break;
	}
	switch (req.state) {
	case REQ_ANSWERED:
		r = req.status;
		*reply_len = req.len;
		break;
	case REQ_FAILED:
		r = -ENOTCONN;
		atomic_fetch_add(&c->ctr.disconnect_failures, 1);
		break;
	case REQ_WAITING:
		conn_unlink_request_locked(c, &req);
		remember_cancelled(c, req.id);
		atomic_fetch_add(&c->ctr.timeouts, 1);
		r = -ETIMEDOUT;
		break;
	}
	conn_pass_reader_role_locked(c);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&req.cond);
	return r;
}

int
flt_send_message_ex(flt_filter *filter, const flt_port *client_port, const void *msg,
		    size_t msg_len, void *reply, size_t *reply_len, int timeout_ms,
		    const struct flt_send_options *options)
{
	struct conn *c = NULL;
	int64_t deadline;
	int r;

	if (!filter || !client_port || (!msg && msg_len) || timeout_ms < FLT_INFINITE)
		return -EINVAL;
	if (reply && (!reply_len || *reply_len == 0))
		return -EINVAL;
	if (msg_len > WIRE_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (options && options->fd < -1)
		return -EBADF;
	/* From a pre callback: never past the event's deadline. */
	deadline = callback_scope_cap(deadline_from_ms(timeout_ms));
	r = conn_lookup(filter, client_port, &c);
	if (r < 0)
		return r;
	r = conn_send(c, msg, msg_len, reply, reply_len, deadline, options);
	obj_unref(&c->obj);
	return r;
}

int
flt_send_message(flt_filter *filter, const flt_port *client_port, const void *msg,
		 size_t msg_len, void *reply, size_t *reply_len, int timeout_ms)
{
	return flt_send_message_ex(filter, client_port, msg, msg_len, reply, reply_len,
				   timeout_ms, NULL);
}

void
flt_close_client_port(flt_filter *filter, flt_port *client_port)
{
	struct obj *o;
	flt_port h;
	int err;

	if (!filter || !client_port)
		return;
	pthread_mutex_lock(&filter->port_lock);
	h = *client_port;
	*client_port = FLT_PORT_NULL;
	o = h.value ? ht_ref(&filter->mgr->ht, h, HK_CONN, &err) : NULL;
	pthread_mutex_unlock(&filter->port_lock);
	if (!o)
		return; /* already closed, or never connected: harmless */
	if (conn_of(o)->filter == filter)
		conn_disconnect(conn_of(o), "closed by the filter");
	obj_unref(o);
}

int
flt_port_get_peer(flt_filter *filter, const flt_port *client_port,
		  struct flt_peer *ret_peer)
{
	struct conn *c = NULL;
	int r;

	if (!filter || !client_port || !ret_peer)
		return -EINVAL;
	r = conn_lookup(filter, client_port, &c);
	if (r < 0)
		return r;
	*ret_peer = c->peer;
	obj_unref(&c->obj);
	return 0;
}
