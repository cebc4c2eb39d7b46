/* SPDX-License-Identifier: MIT */
/*
 * batch.c — taking messages on a port connected with
 * FILTER_CONNECT_BATCHES, where one record on M may hold many messages
 * (MESSAGE_BATCH, docs/ports.md section 3).
 *
 * A record can no longer go straight into one caller's buffer, so the
 * port keeps the record being handed out (rx_buf) and its position. One
 * getter at a time reads M for everyone (the rx_reading role), and only
 * when the held record is used up; the others wait on rx_cond, which the
 * reader broadcasts when it is done, and take the messages it left. So a
 * message the library holds is never stuck behind a thread blocked in
 * recvmsg(). Each message is copied into its caller's buffer under the
 * port lock, before anyone can refill rx_buf.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/frame_io.h"
#include "common/timeutil.h"
#include "common/wire.h"
#include "user/internal.h"
#include "common/lockdep.h"

/* p->lock held, a message held. Decodes the next one without taking it. */
static void
peek_locked(const filter_port *p, size_t *off, struct wire_batch_entry *e,
	    uint32_t *ret_reply)
{
	lockdep_assert_held(&p->lock);
	const struct wire_header *h = &p->rx_h;

	if (h->type == WIRE_MESSAGE) {
		*e = (struct wire_batch_entry){ .id = h->id,
						.sequence = h->aux,
						.length = h->length,
						.data = p->rx_buf + WIRE_HEADER_SIZE };
		*ret_reply = h->aux2;
		return;
	}
	wire_batch_entry_at(h, p->rx_buf + WIRE_HEADER_SIZE, p->rx_next, off, e);
	*ret_reply = 0;
}

/*
 * p->lock held, a message held. Takes it into m (its bytes into buf).
 * Returns its length; or -EMSGSIZE (longer than size) or -ENOMEM (no room
 * to remember its id): the message is consumed, and if it wants a reply
 * *ret_refuse is set to the id the library must answer with that error.
 */
static int
take_locked(filter_port *p, struct filter_message *m, uint8_t *buf, size_t size,
	    uint64_t *ret_refuse)
{
	lockdep_assert_held(&p->lock);
	struct wire_batch_entry e;
	uint32_t reply;
	int fd = p->rx_fd;

	peek_locked(p, &p->rx_off, &e, &reply);
	p->rx_next++;
	p->rx_fd = -1;
	m->header = (struct filter_message_header){
		.message_id = e.id,
		.sequence = e.sequence,
		.reply_length = reply,
		.fd = fd,
	};
	m->data = buf;
	m->length = e.length;
	if (e.length > size || (reply && ids_add_locked(p, e.id, reply) < 0)) {
		if (fd >= 0)
			close(fd);
		m->header.fd = -1;
		if (reply)
			*ret_refuse = e.id;
		return e.length > size ? -EMSGSIZE : -ENOMEM;
	}
	if (e.length)
		memcpy(buf, e.data, e.length);
	return (int)e.length;
}

/* Caller holds the reading role, not p->lock. Receives one record into
 * rx_buf and checks it; on success *h and *fd describe it. */
static int
fill(filter_port *p, int timeout_ms, int64_t deadline, struct wire_header *h, int *fd)
{
	struct iovec iov = { .iov_base = p->rx_buf, .iov_len = WIRE_MAX_FRAME };
	struct frame_rx rx;
	const char *why;
	int r;

	for (;;) {
		int flags = MSG_TRUNC | (timeout_ms >= 0 ? MSG_DONTWAIT : 0);

		r = frame_recv(p->m_fd, &iov, 1, flags, &rx);
		if (r != -EAGAIN || timeout_ms < 0)
			break;
		if (deadline_poll_ms(deadline) == 0)
			return -ETIMEDOUT;
		r = port_wait_fd(p, p->m_fd, POLLIN, deadline_poll_ms(deadline));
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOTCONN;
	r = wire_decode(p->rx_buf, rx.size, rx.truncated,
			WIRE_BIT(WIRE_MESSAGE) | WIRE_BIT(WIRE_MESSAGE_BATCH), h, &why);
	if (r == 0 && h->type == WIRE_MESSAGE_BATCH)
		r = rx.n_fds ? -EPROTO
			     : wire_check_batch(h, p->rx_buf + WIRE_HEADER_SIZE, &why);
	if (r < 0 || rx.n_fds > 1 || rx.fds_dropped) {
		frame_rx_close_fds(&rx);
		port_fail(p, -EPROTO);
		return -EPROTO;
	}
	*fd = rx.n_fds ? rx.fds[0] : -1;
	return 0;
}

/* p->lock held: waits on rx_cond until the deadline (ETIMEDOUT). */
static int
wait_rx(filter_port *p, int64_t deadline)
{
	lockdep_assert_held(&p->lock);
	struct timespec ts;

	if (deadline == DEADLINE_NEVER)
		return pthread_cond_wait(&p->rx_cond, &p->lock);
	ts = deadline_timespec(deadline);
	return pthread_cond_timedwait(&p->rx_cond, &p->lock, &ts);
}

int
batch_get(filter_port *p, struct filter_message *msgs, size_t max, uint8_t *buf,
	  size_t size, int timeout_ms)
{
	int64_t deadline = deadline_from_ms(timeout_ms);
	uint64_t refuse = 0;
	size_t n = 0, used = 0;
	int r, refuse_status = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct wire_header h;
		int fd = -1;

		r = port_error_locked(p);
		if (r < 0)
			break;
		if (p->rx_next < p->rx_count) {
			r = take_locked(p, &msgs[0], buf, size, &refuse);
			if (r >= 0) {
				n = 1;
				used = (size_t)r;
			}
			refuse_status = r;
			break;
		}
		if (p->rx_reading) {
			/* Another getter reads M; it broadcasts when done. */
			if (wait_rx(p, deadline) == ETIMEDOUT && p->rx_reading &&
			    !p->closing && !p->dead) {
				r = -ETIMEDOUT;
				break;
			}
			continue;
		}
		p->rx_reading = true;
		pthread_mutex_unlock(&p->lock);
		r = fill(p, timeout_ms, deadline, &h, &fd);
		pthread_mutex_lock(&p->lock);
		p->rx_reading = false;
		pthread_cond_broadcast(&p->rx_cond);
		if (p->closing) { /* whatever the read saw */
			if (r == 0 && fd >= 0)
				close(fd);
			r = -ECANCELED;
		}
		if (r < 0)
			break;
		p->rx_h = h;
		p->rx_fd = fd;
		p->rx_next = 0;
		p->rx_off = 0;
		p->rx_count = h.type == WIRE_MESSAGE_BATCH ? h.aux2 : 1;
	}
	/* The rest of the held record, as far as it fits: no waiting. */
	while (n > 0 && n < max && p->rx_next < p->rx_count) {
		struct wire_batch_entry e;
		size_t off = p->rx_off;
		uint32_t reply;

		peek_locked(p, &off, &e, &reply);
		if (e.length > size - used)
			break;
		r = take_locked(p, &msgs[n], buf + used, size - used, &refuse);
		if (r < 0)
			break; /* cannot happen: batch entries want no reply */
		used += (size_t)r;
		n++;
	}
	pthread_mutex_unlock(&p->lock);
	if (refuse)
		reply_send_nowait(p, refuse, refuse_status);
	return n ? (int)n : r;
}

void
batch_wake_all_locked(filter_port *p)
{
	lockdep_assert_held(&p->lock);
	if (p->batches)
		pthread_cond_broadcast(&p->rx_cond);
}
