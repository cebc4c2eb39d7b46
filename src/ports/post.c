/* SPDX-License-Identifier: MIT */
/*
 * post.c — flt_post_message(): a bounded per-connection queue of messages
 * that want no reply, drained by the connection's own thread.
 *
 * A post appends an entry under the connection lock and, if the thread is
 * not already on its way, makes post_efd readable; it never blocks and
 * never sends. The thread (connection.c calls conn_post_run()) takes as
 * many leading entries as fit in one frame, sends them with MSG_DONTWAIT
 * outside the lock, and only then takes them off the queue and runs their
 * completions, in order, with no lock held. A full socket arms EPOLLOUT on
 * M instead of blocking the thread, which goes on serving the service's
 * calls and replies meanwhile. Only the thread takes entries off, so the
 * bytes it sends from cannot go away under it; posters only append.
 *
 * When the connection ends, conn_post_cancel_all() completes what is left
 * with -ENOTCONN before the disconnect callback runs; a post made after
 * the connection began closing is refused (-ENOTCONN) and gets no
 * completion, so each accepted post is completed exactly once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "common/efd.h"
#include "common/frame_io.h"
#include "common/timeutil.h"
#include "ports/internal.h"
#include "common/lockdep.h"

#define POST_MAX_COALESCE_US 100000

struct post_entry {
	const void *data; /* owned (malloc'ed copy) unless borrowed */
	uint32_t len;
	bool owned;
	uint64_t seq;
	int64_t hold_until; /* coalescing: send by then (0: at once) */
	flt_post_complete complete;
	void *context;
};

struct post_done {
	flt_post_complete complete;
	void *context;
	void *owned;
};

static struct post_entry *
pq_at(struct conn *c, uint32_t i)
{
	return &c->pq[(c->pq_head + i) % c->pq_cap];
}

/* Caller holds c->lock. Room for one more entry (the ring grows by
 * doubling up to FLT_POST_QUEUE_MESSAGES). */
static int
pq_reserve_locked(struct conn *c)
{
	lockdep_assert_held(&c->lock);
	struct post_entry *n;
	uint32_t ncap;

	if (c->pq_len < c->pq_cap)
		return 0;
	ncap = c->pq_cap ? c->pq_cap * 2 : 64;
	if (ncap > FLT_POST_QUEUE_MESSAGES)
		ncap = FLT_POST_QUEUE_MESSAGES;
	n = malloc(ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->pq_len; i++)
		n[i] = *pq_at(c, i);
	free(c->pq);
	c->pq = n;
	c->pq_cap = ncap;
	c->pq_head = 0;
	return 0;
}

static int
post_check(const void *msg, size_t len, const struct flt_post_options *o)
{
	if (!msg && len)
		return -EINVAL;
	if (len > WIRE_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (!o)
		return 0;
	if (o->flags & ~(uint32_t)FLT_POST_BORROW)
		return -EINVAL;
	if ((o->flags & FLT_POST_BORROW) && !o->complete)
		return -EINVAL;
	if (o->coalesce_us > POST_MAX_COALESCE_US)
		return -EINVAL;
	return 0;
}

static int
conn_post(struct conn *c, const void *msg, size_t len, const struct flt_post_options *o)
{
	bool borrow = o && (o->flags & FLT_POST_BORROW);
	struct post_entry e = {
		.data = msg,
		.len = (uint32_t)len,
		.complete = o ? o->complete : NULL,
		.context = o ? o->context : NULL,
	};
	void *copy = NULL;
	bool kick = false;
	int r;

	if (!borrow && len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, msg, len);
		e.data = copy;
		e.owned = true;
	}
	if (o && o->coalesce_us)
		e.hold_until = now_ns() + (int64_t)o->coalesce_us * 1000;

	pthread_mutex_lock(&c->lock);
	if (c->state == CONN_CLOSING) {
		r = -ENOTCONN;
		atomic_fetch_add(&c->ctr.disconnect_failures, 1);
	} else if (c->pq_len >= FLT_POST_QUEUE_MESSAGES ||
		   len > FLT_POST_QUEUE_BYTES - c->pq_bytes) {
		r = -EAGAIN;
		atomic_fetch_add(&c->ctr.post_refused, 1);
	} else {
		r = pq_reserve_locked(c);
	}
	if (r == 0) {
		e.seq = o && o->sequence ? o->sequence : ++c->next_seq;
		*pq_at(c, c->pq_len++) = e;
		c->pq_bytes += len;
		atomic_fetch_add_explicit(&c->ctr.posted, 1, memory_order_relaxed);
		/* Wake the thread once; while it is draining, holding for
		 * company or waiting for room it looks again by itself —
		 * unless a hold is waiting and a full frame is now here. */
		if (!c->post_kicked ||
		    (c->post_holding && c->pq_len == BATCH_MAX_MESSAGES)) {
			c->post_kicked = true;
			kick = true;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (r < 0)
		free(copy);
	else if (kick)
		eventfd_signal(c->post_efd);
	return r;
}

int
flt_post_message(flt_filter *filter, const flt_port *client_port, const void *msg,
		 size_t msg_len, const struct flt_post_options *options)
{
	struct conn *c = NULL;
	int r;

	if (!filter || !client_port)
		return -EINVAL;
	r = post_check(msg, msg_len, options);
	if (r < 0)
		return r;
	r = conn_lookup(filter, client_port, &c);
	if (r < 0)
		return r;
	r = conn_post(c, msg, msg_len, options);
	obj_unref(&c->obj);
	return r;
}

/* ---- the connection thread's side ---- */

/* Thread only: watch M for room (on) or not. */
static void
watch_room(struct conn *c, bool on)
{
	struct epoll_event e = {
		.events = EPOLLIN | (on ? EPOLLOUT : 0u),
		.data.u32 = CONN_EV_M,
	};

	if (c->post_room_watched == on)
		return;
	if (epoll_ctl(c->ep_fd, EPOLL_CTL_MOD, c->m_fd, &e) == 0)
		c->post_room_watched = on;
}

/* Caller holds c->lock. The leading entries, as many as one frame can
 * take, as messages for the frame code batch_frame_fits() and
 * batch_frame_build() that flt_send_message_batch() uses too. */
static size_t
leading_locked(struct conn *c, struct flt_batch_message *m)
{
	lockdep_assert_held(&c->lock);
	size_t n = c->pq_len < BATCH_MAX_MESSAGES ? c->pq_len : BATCH_MAX_MESSAGES;

	if (!c->batches)
		n = n ? 1 : 0; /* one message per frame: look at no more */

	for (size_t i = 0; i < n; i++) {
		const struct post_entry *e = pq_at(c, (uint32_t)i);

		m[i] = (struct flt_batch_message){ .msg = e->data,
						   .len = e->len,
						   .sequence = e->seq };
	}
	return n;
}

/* Sends one frame of the leading entries and completes them: 1 when a
 * frame went, 0 when there is nothing to send now (queue empty, no room
 * on M: EPOLLOUT armed, or the first entry is held for company: *hold
 * set to when it must go), -ENOTCONN when the connection is closing. */
static int
send_one_frame(struct conn *c, int64_t *hold)
{
	uint8_t entries[BATCH_MAX_MESSAGES][WIRE_BATCH_ENTRY_SIZE];
	struct flt_batch_message m[BATCH_MAX_MESSAGES];
	struct iovec iov[FRAME_MAX_IOV];
	struct post_done done[BATCH_MAX_MESSAGES];
	struct wire_header h = { 0 };
	size_t n, n_iov;
	uint32_t k;
	int r;

	pthread_mutex_lock(&c->lock);
	if (c->state == CONN_CLOSING) {
		pthread_mutex_unlock(&c->lock);
		return -ENOTCONN;
	}
	if (!c->pq_len) {
		c->post_kicked = false;
		c->post_holding = false;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	n = leading_locked(c, m);
	k = (uint32_t)batch_frame_fits(c->batches, m, n);
	/* Held for company, unless a full frame is already waiting. */
	if (pq_at(c, 0)->hold_until && k == c->pq_len && k < BATCH_MAX_MESSAGES) {
		int64_t t = pq_at(c, 0)->hold_until;

		if (t > now_ns()) {
			c->post_holding = true;
			pthread_mutex_unlock(&c->lock);
			*hold = t;
			return 0;
		}
	}
	c->post_holding = false;
	h.id = c->next_id + 1;
	c->next_id += k;
	/* Every entry has its sequence: next_seq is not touched. */
	n_iov = batch_frame_build(m, k, &c->next_seq, entries, iov, &h);
	pthread_mutex_unlock(&c->lock);

	/* The entries stay queued while they are sent: only this thread
	 * takes entries off, so their bytes cannot go away. */
	r = frame_sendv(c->m_fd, &h, iov, n_iov, NULL, 0, MSG_DONTWAIT);
	if (r == -EAGAIN) {
		watch_room(c, true);
		return 0;
	}
	if (r < 0) {
		conn_disconnect(c, "service closed the connection");
		return -ENOTCONN;
	}
	watch_room(c, false);

	pthread_mutex_lock(&c->lock);
	for (uint32_t i = 0; i < k; i++) {
		struct post_entry *e = pq_at(c, i);

		done[i] =
			(struct post_done){ .complete = e->complete,
					    .context = e->context,
					    .owned = e->owned ? (void *)e->data : NULL };
		c->pq_bytes -= e->len;
	}
	c->pq_head = (c->pq_head + k) % c->pq_cap;
	c->pq_len -= k;
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add_explicit(&c->ctr.sent, k, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->ctr.post_sent, k, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->ctr.post_frames, 1, memory_order_relaxed);
	for (uint32_t i = 0; i < k; i++) {
		if (done[i].complete)
			done[i].complete(c->cookie, done[i].context, 0);
		free(done[i].owned);
	}
	return 1;
}

int64_t
conn_post_run(struct conn *c)
{
	int64_t hold = DEADLINE_NEVER;

	while (send_one_frame(c, &hold) > 0)
		;
	return hold;
}

void
conn_post_cancel_all(struct conn *c)
{
	void *cookie = c->accepted ? c->cookie : NULL;

	for (;;) {
		struct post_entry e;

		pthread_mutex_lock(&c->lock);
		if (!c->pq_len) {
			pthread_mutex_unlock(&c->lock);
			return;
		}
		e = *pq_at(c, 0);
		c->pq_head = (c->pq_head + 1) % c->pq_cap;
		c->pq_len--;
		c->pq_bytes -= e.len;
		pthread_mutex_unlock(&c->lock);
		atomic_fetch_add(&c->ctr.post_cancelled, 1);
		atomic_fetch_add(&c->ctr.disconnect_failures, 1);
		if (e.complete)
			e.complete(cookie, e.context, -ENOTCONN);
		if (e.owned)
			free((void *)e.data);
	}
}

static void
conn_post_fill_stats(struct conn *c, struct flt_post_stats *s)
{
	s->posted += atomic_load(&c->ctr.posted);
	s->refused += atomic_load(&c->ctr.post_refused);
	s->sent += atomic_load(&c->ctr.post_sent);
	s->cancelled += atomic_load(&c->ctr.post_cancelled);
	s->frames += atomic_load(&c->ctr.post_frames);
	pthread_mutex_lock(&c->lock);
	s->queued += c->pq_len;
	s->queued_bytes += (uint32_t)c->pq_bytes;
	pthread_mutex_unlock(&c->lock);
}

int
flt_port_get_post_stats(flt_filter *filter, const flt_port *port,
			struct flt_post_stats *ret_stats, size_t size)
{
	struct flt_post_stats s = { 0 };
	struct server_port *sp;
	struct conn *c;
	int r;

	if (!filter || !port || !ret_stats || size > sizeof(s))
		return -EINVAL;
	r = port_ref_either(filter, port, &c, &sp);
	if (r < 0)
		return r;
	if (c) {
		conn_post_fill_stats(c, &s);
		obj_unref(&c->obj);
	} else {
		pthread_mutex_lock(&sp->lock);
		s.posted = atomic_load(&sp->done.posted);
		s.refused = atomic_load(&sp->done.post_refused);
		s.sent = atomic_load(&sp->done.post_sent);
		s.cancelled = atomic_load(&sp->done.post_cancelled);
		s.frames = atomic_load(&sp->done.post_frames);
		for (c = sp->conns; c; c = c->sp_next)
			conn_post_fill_stats(c, &s);
		pthread_mutex_unlock(&sp->lock);
		obj_unref(&sp->obj);
	}
	memcpy(ret_stats, &s, size);
	return 0;
}
