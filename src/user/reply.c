/* SPDX-License-Identifier: MIT */
/*
 * reply.c — filter_reply_message(): send a REPLY on R and wait for the
 * filter's REPLY_ACK, which says whether a sender took it (0), nobody
 * waits any more (-ENOENT), or it was too big (-EMSGSIZE).
 *
 * Many threads may reply at once. They share R with a leader/follower
 * scheme: one waiting thread reads acks and hands each to its owner by id;
 * when it leaves, it wakes another waiter to take over. Acks for ids no one
 * waits for (the library's own fire-and-forget replies) are dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/frame_io.h"
#include "common/wire.h"
#include "user/internal.h"
#include "common/lockdep.h"

void
acks_wake_all_locked(filter_port *p)
{
	lockdep_assert_held(&p->lock);
	for (struct ack_wait *w = p->ack_waiters; w; w = w->next)
		pthread_cond_signal(&w->cond);
}

void
reply_send_nowait(filter_port *p, uint64_t id, int status)
{
	struct wire_header h = {
		.type = WIRE_REPLY,
		.flags = WIRE_FLAG_NO_ACK,
		.id = id,
		.status = status,
	};

	/* Blocks only while R is full, which the filter drains promptly. */
	(void)port_send_frame(p, p->r_fd, &h, NULL);
}

/* Reads acks until `mine` is settled. Returns 0 once it is (even if the
 * connection ended right after its ack), or a connection error.
 *
 * The leader blocks in recvmsg() without polling first: filter_close_port()
 * shuts the socket down, which ends the wait, so no separate wake-up
 * descriptor is needed, and a reply costs one syscall less. */
static int
read_acks(filter_port *p, struct ack_wait *mine)
{
	uint8_t buf[WIRE_HEADER_SIZE];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };

	for (;;) {
		struct wire_header h;
		struct frame_rx rx;
		const char *why;
		bool done;
		int r;

		r = frame_recv(p->r_fd, &iov, 1, MSG_TRUNC, &rx);
		frame_rx_close_fds(&rx);
		pthread_mutex_lock(&p->lock);
		done = mine->done;
		if (r > 0 && wire_decode(buf, rx.size, rx.truncated,
					 WIRE_BIT(WIRE_REPLY_ACK), &h, &why) == 0) {
			for (struct ack_wait *w = p->ack_waiters; w; w = w->next) {
				if (w->id == h.id && !w->done) {
					w->done = true;
					w->status = h.status;
					if (w != mine)
						pthread_cond_signal(&w->cond);
					break;
				}
			}
			done = mine->done;
			r = 0;
		} else if (r > 0) {
			r = -EPROTO;
		} else if (r == 0) {
			r = p->closing ? -ECANCELED : -ENOTCONN;
		}
		pthread_mutex_unlock(&p->lock);
		if (done)
			return 0; /* our ack arrived, whatever came after it */
		if (r < 0)
			return r;
	}
}

static void
unlink_waiter_locked(filter_port *p, struct ack_wait *w)
{
	lockdep_assert_held(&p->lock);
	for (struct ack_wait **pp = &p->ack_waiters; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
}

/* Sends the REPLY and returns without waiting for its ack: the filter
 * side sends none (WIRE_FLAG_NO_ACK). */
static int
reply_no_ack(filter_port *port, uint64_t message_id, int status, const void *reply,
	     size_t reply_len)
{
	struct wire_header h = {
		.type = WIRE_REPLY,
		.flags = WIRE_FLAG_NO_ACK,
		.id = message_id,
		.status = status,
		.length = (uint32_t)reply_len,
	};
	uint32_t cap = 0;
	int r;

	pthread_mutex_lock(&port->lock);
	r = port_error_locked(port);
	if (r == 0 && !ids_take_locked(port, message_id, &cap))
		r = -ENOENT; /* never delivered with a reply wanted, or answered */
	if (r == 0 && reply_len > cap) {
		/* What the filter would refuse: refused here, and the
		 * sender still waits for a reply that fits. */
		(void)ids_add_locked(port, message_id, cap);
		r = -EMSGSIZE;
	}
	pthread_mutex_unlock(&port->lock);
	if (r < 0)
		return r;
	return port_send_frame(port, port->r_fd, &h, reply);
}

int
filter_reply_message_ex(filter_port *port, uint64_t message_id, int status,
			const void *reply, size_t reply_len, unsigned flags)
{
	struct wire_header h = {
		.type = WIRE_REPLY,
		.id = message_id,
		.status = status,
		.length = (uint32_t)reply_len,
	};
	struct ack_wait w = { .id = message_id };
	uint32_t cap = 0;
	int r;

	if (!port || status > 0 || (reply_len && !reply) ||
	    (flags & ~FILTER_REPLY_NO_ACK))
		return -EINVAL;
	if (reply_len > WIRE_MAX_PAYLOAD)
		return -EMSGSIZE;
	r = port_enter(port);
	if (r < 0)
		return r;
	if (flags & FILTER_REPLY_NO_ACK) {
		r = reply_no_ack(port, message_id, status, reply, reply_len);
		port_leave(port);
		return r;
	}

	pthread_mutex_lock(&port->lock);
	r = port_error_locked(port);
	if (r == 0 && !ids_take_locked(port, message_id, &cap))
		r = -ENOENT; /* never delivered with a reply wanted, or answered */
	if (r < 0) {
		pthread_mutex_unlock(&port->lock);
		port_leave(port);
		return r;
	}
	pthread_cond_init(&w.cond, NULL);
	w.next = port->ack_waiters;
	port->ack_waiters = &w;
	pthread_mutex_unlock(&port->lock);

	r = port_send_frame(port, port->r_fd, &h, reply);

	pthread_mutex_lock(&port->lock);
	w.in_wait = true;
	while (r == 0 && !w.done) {
		r = port_error_locked(port);
		if (r < 0)
			break;
		if (!port->ack_reader) {
			port->ack_reader = true;
			pthread_mutex_unlock(&port->lock);
			r = read_acks(port, &w);
			pthread_mutex_lock(&port->lock);
			port->ack_reader = false;
			if (r < 0 && r != -ECANCELED && !port->dead) {
				pthread_mutex_unlock(&port->lock);
				port_fail(port, r);
				pthread_mutex_lock(&port->lock);
			}
			continue;
		}
		pthread_cond_wait(&w.cond, &port->lock);
	}
	if (r == 0)
		r = w.status;
	unlink_waiter_locked(port, &w);
	if (!port->ack_reader) {
		for (struct ack_wait *o = port->ack_waiters; o; o = o->next) {
			if (o->in_wait) {
				pthread_cond_signal(&o->cond);
				break;
			}
		}
	}
	if (r == -EMSGSIZE && w.done)
		(void)ids_add_locked(port, message_id, cap); /* the sender still waits */
	pthread_mutex_unlock(&port->lock);
	pthread_cond_destroy(&w.cond);
	port_leave(port);
	return r;
}

int
filter_reply_message(filter_port *port, uint64_t message_id, int status,
		     const void *reply, size_t reply_len)
{
	return filter_reply_message_ex(port, message_id, status, reply, reply_len, 0);
}
