/* SPDX-License-Identifier: MIT */
/*
 * delivery.c — see delivery.h: a record's way from the event callback to
 * each service. The rings (queue.c) hold what waits, the window what is
 * on its way, the port (flt_post_message) carries it, a completion says
 * it arrived, a confirmation that it was handled, and handover.c decides
 * what a departing connection's records become.
 *
 * No thread of minispy's own: a record is posted (the bytes borrowed, the
 * record referenced until its completion) by whoever finds work for a
 * connection — the event thread that published it, or the connection's
 * own thread when a completion or a confirmation makes room. One of them
 * at a time per connection (c->pumping; the others leave a note in
 * c->pump_again), so records go out in order; the posts run without the
 * state lock (posting takes the port lock, which comes first). The port
 * packs what is queued into batch frames and holds a record up to
 * param.coalesce_us for company. A connection takes at most MS_WINDOW
 * records off its rings; a service that stops reading leaves them in the
 * port's queue, its own queue fills, drops, and reports a loss, while the
 * other services carry on.
 *
 * The seed bug cannot happen here: the only copy of a client port is
 * c->port; it is posted to through flt_post_message(&c->port) and closed
 * by ms_deliver_detach() with flt_close_client_port(&c->port) only after
 * every completion has run and no pump is posting.
 */
#include "delivery.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"
#include "common/lockdep.h"

/* Drop warnings: the first one always, then at most one per interval
 * (a service stopped and started all day must not flood the log). */
#define MS_WARN_INTERVAL_MS 10000

static bool
may_warn(struct ms_state *st)
{
	return flt_log_ratelimit(&st->warnings, MS_WARN_INTERVAL_MS, NULL);
}

/* ---- posting ---- */

static void post_done(void *connection_cookie, void *context, int status);

/* st->lock held. Tops c->inflight up from its rings, oldest first (DEPARTED
 * losses, then the backlog part, then the queue), within MS_WINDOW and the
 * confirming window. A ring that cannot make a loss record for lack of
 * memory keeps it for a later pump. */
static void
take_locked(struct ms_conn *c)
{
	lockdep_assert_held(&c->st->lock);
	while (c->n_inflight < MS_WINDOW) {
		struct ms_rec *r;
		bool again = false;

		/* Each record taken ends in c->unconf once it is sent. */
		if (c->confirming && c->unconf.len + c->n_inflight >= c->unconf.cap)
			break; /* the confirming window is full */
		r = ms_late_pop(&c->late);
		if (!r)
			r = ms_ring_pop(&c->head, &again);
		if (!r && !again)
			r = ms_ring_pop(&c->q, &again);
		if (!r)
			break;
		*ms_inflight_at(c, c->n_inflight++) = r;
	}
}

/* st->lock held. True if the caller becomes c's pump (then it must call
 * pump_locked); else the pump at work is told to look again. */
static bool
claim_locked(struct ms_conn *c)
{
	lockdep_assert_held(&c->st->lock);
	if (c->gone)
		return false;
	if (c->pumping) {
		c->pump_again = true;
		return false;
	}
	c->pumping = true;
	return true;
}

/*
 * st->lock held, c claimed. Posts what c has taken off its rings, in
 * order, dropping the lock around the posts. The posted are counted
 * before the post returns (the completion may run first); what a post
 * refused stays in c->inflight: on -EAGAIN (the port's queue is full) for
 * the next pump, which a completion starts; on another error the
 * connection is closed and the disconnect hands it on.
 */
static void
pump_locked(struct ms_state *st, struct ms_conn *c)
{
	lockdep_assert_held(&st->lock);
	struct ms_rec *b[MS_BATCH];

	for (;;) {
		unsigned n = 0, k = 0;
		int err = 0;

		c->pump_again = false;
		if (c->gone)
			break;
		take_locked(c);
		while (c->n_posted + n < c->n_inflight && n < MS_BATCH) {
			b[n] = *ms_inflight_at(c, c->n_posted + n);
			n++;
		}
		if (!n) {
			if (c->pump_again)
				continue;
			break;
		}
		c->n_posted += n;
		pthread_mutex_unlock(&st->lock);
		for (; k < n; k++) {
			struct flt_post_options o = {
				.sequence = b[k]->seq ? b[k]->seq : b[k]->loss.last,
				.complete = post_done,
				.context = b[k],
				.flags = FLT_POST_BORROW,
				.coalesce_us = st->set.coalesce_us,
			};

			err = flt_post_message(st->filter, &c->port, b[k]->data,
					       b[k]->len, &o);
			if (err < 0)
				break;
		}
		pthread_mutex_lock(&st->lock);
		if (k == n)
			continue;
		/* Not posted: the tail of the posted part (completions take
		 * only from its head). */
		c->n_posted -= n - k;
		if (err != -EAGAIN && err != -ENOTCONN) {
			/* No memory, say: end the connection so that its
			 * service sees it and reconnects, rather than stall;
			 * its disconnect hands the records on. Still
			 * claimed, so c cannot go away meanwhile. */
			c->gone = true;
			pthread_mutex_unlock(&st->lock);
			flt_filter_log(st->filter, FLT_LOG_ERROR,
				       "posting to service pid %d failed: %s; closing it",
				       (int)c->pid, strerror(-err));
			flt_close_client_port(st->filter, &c->port);
			pthread_mutex_lock(&st->lock);
		}
		break;
	}
	c->pumping = false;
	if (c->gone)
		pthread_cond_broadcast(&c->idle);
}

/* The port's completion of one posted record (the connection's thread). */
static void
post_done(void *connection_cookie, void *context, int status)
{
	struct ms_conn *c = connection_cookie;
	struct ms_state *st = c->st;
	struct ms_rec *r = context;

	pthread_mutex_lock(&st->lock);
	if (status < 0) {
		/* Not sent: it stays first in c->inflight, and the
		 * disconnect, which comes after every completion, hands it
		 * on. */
		pthread_mutex_unlock(&st->lock);
		return;
	}
	/* Completions come in posting order: r is the oldest posted. */
	c->in_head = (c->in_head + 1) % MS_WINDOW;
	c->n_inflight--;
	c->n_posted--;
	if (ms_rec_synthetic(r)) {
		c->loss_sent++;
		st->ctr.loss_records_sent++;
	} else {
		c->sent++;
		st->ctr.sent++;
	}
	/* Counted as a message the service may confirm only now, when it
	 * is on the socket: the service's CONFIRM is served by this same
	 * thread, after this completion, so it can never name a message
	 * that is not counted yet. */
	c->msgs_sent++;
	if (c->confirming)
		ms_ring_put(&c->unconf, r); /* the window kept room for it */
	else
		ms_rec_unref(r);
	/* Room: refill once half the window is free, not per record. */
	if (c->n_posted <= MS_WINDOW / 2 && claim_locked(c))
		pump_locked(st, c);
	pthread_mutex_unlock(&st->lock);
}

/* st->lock held. Pumps every connection no other thread pumps. */
static void
pump_all_locked(struct ms_state *st)
{
	lockdep_assert_held(&st->lock);
	struct ms_conn *mine[64];
	size_t n = 0;

	/* At most max_connections (64); claimed ones cannot go away. */
	for (struct ms_conn *c = st->conns; c; c = c->next)
		if (n < sizeof(mine) / sizeof(mine[0]) && claim_locked(c))
			mine[n++] = c;
	for (size_t i = 0; i < n; i++)
		pump_locked(st, mine[i]);
}

/* ---- publishing (the event path) ---- */

void
ms_deliver_publish(struct ms_state *st, struct ms_rec *rec, uint32_t notice)
{
	pid_t slow[64];
	size_t n_slow = 0;
	bool backlog_full = false;
	struct ms_loss self;
	uint64_t seq;

	pthread_mutex_lock(&st->lock);
	seq = ++st->seq;
	st->ctr.records++;
	if (rec)
		ms_rec_set_seq(rec, seq);
	self = ms_loss_one(seq, notice); /* what a loss of it reports */
	if (!st->n_conns) {
		uint64_t dropped = ms_backlog_push(&st->backlog, rec, &self);

		st->ctr.backlog_queued++;
		st->ctr.backlog_dropped += dropped;
		if (dropped && !st->backlog_warned && may_warn(st))
			backlog_full = st->backlog_warned = true;
	}
	for (struct ms_conn *c = st->conns; c; c = c->next) {
		if (ms_queue_push(&c->q, rec, &self)) {
			c->queued++;
			st->ctr.queued++;
		} else {
			c->dropped++;
			st->ctr.dropped++;
			if (!c->warned && n_slow < sizeof(slow) / sizeof(slow[0]) &&
			    may_warn(st)) {
				c->warned = true;
				slow[n_slow++] = c->pid;
			}
		}
	}
	pump_all_locked(st);
	pthread_mutex_unlock(&st->lock);

	if (backlog_full)
		flt_filter_log(st->filter, FLT_LOG_WARNING,
			       "no service connected and the backlog of %u records is "
			       "full: dropping the oldest (the next service gets a loss "
			       "record)",
			       st->set.backlog);
	for (size_t i = 0; i < n_slow; i++)
		flt_filter_log(
			st->filter, FLT_LOG_WARNING,
			"service pid %d is not keeping up: its queue of %u records "
			"is full, dropping records (it gets a loss record)",
			(int)slow[i], st->set.queue_size);
}

/* st->lock held. Admits c: the list, and the backlog if it is the only
 * service. */
static void
conn_admit_locked(struct ms_state *st, struct ms_conn *c, uint64_t *ret_from_backlog)
{
	lockdep_assert_held(&st->lock);
	uint64_t from_backlog = 0;

	c->first_seq = st->seq + 1;
	c->next = st->conns;
	if (st->conns)
		st->conns->prev = c;
	st->conns = c;
	st->n_conns++;
	c->number = ++st->n_accepted;
	st->ctr.connections++;
	/* The first service after a time with none takes the backlog over
	 * whole (a pointer swap, so this stays short under the port lock);
	 * it is posted before anything newer (the connect callback pumps;
	 * the port sends once the connection is up). */
	if (st->n_conns == 1 && !ms_ring_idle(&st->backlog)) {
		from_backlog = ms_ring_events(&st->backlog);
		c->head = st->backlog;
		ms_ring_init(&st->backlog, st->set.backlog);
		st->backlog_warned = false;
		st->ctr.backlog_delivered += from_backlog;
	}
	*ret_from_backlog = from_backlog;
}

/* ---- a connection's life ---- */

int
ms_deliver_conn_init(struct ms_state *st, struct ms_conn *c, bool confirming)
{
	int r;

	c->confirming = confirming;
	pthread_cond_init(&c->idle, NULL);
	ms_ring_init(&c->head, 0);
	ms_ring_init(&c->q, st->set.queue_size);
	ms_ring_init(&c->unconf, confirming ? st->set.queue_size : 0);
	r = confirming ? ms_ring_alloc(&c->unconf) : 0;
	if (r == 0)
		r = ms_ring_alloc(&c->q);
	return r;
}

void
ms_deliver_conn_fini(struct ms_conn *c)
{
	ms_ring_fini(&c->unconf);
	ms_late_fini(&c->late);
	ms_ring_fini(&c->head);
	ms_ring_fini(&c->q);
	for (unsigned i = 0; i < c->n_inflight; i++)
		ms_rec_unref(*ms_inflight_at(c, i));
	c->n_inflight = c->n_posted = 0;
	pthread_cond_destroy(&c->idle);
}

uint64_t
ms_deliver_attach(struct ms_state *st, struct ms_conn *c)
{
	uint64_t from_backlog = 0;

	pthread_mutex_lock(&st->lock);
	conn_admit_locked(st, c, &from_backlog);
	if (claim_locked(c))
		pump_locked(st, c); /* the backlog it took, if any */
	pthread_mutex_unlock(&st->lock);
	return from_backlog;
}

const char *
ms_deliver_detach(struct ms_state *st, struct ms_conn *c, uint64_t *ret_unconfirmed)
{
	const char *fate;

	/* The connection is down and every completion has run: a pump
	 * still posting to it gets -ENOTCONN; wait for it to leave. */
	pthread_mutex_lock(&st->lock);
	c->gone = true;
	while (c->pumping)
		pthread_cond_wait(&c->idle, &st->lock);
	pthread_mutex_unlock(&st->lock);
	flt_close_client_port(st->filter, &c->port); /* as on Windows */

	pthread_mutex_lock(&st->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		st->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	st->n_conns--;
	/* Posted but not sent (completed with -ENOTCONN): still in
	 * c->inflight, handed on from there as not sent. */
	c->n_posted = 0;
	*ret_unconfirmed = ms_ring_events(&c->unconf);
	fate = ms_handover_locked(st, c);
	pump_all_locked(st); /* DEPARTED loss records for the others */
	pthread_mutex_unlock(&st->lock);
	return fate;
}

/* ---- confirmations and counters ---- */

int
ms_deliver_confirm_locked(struct ms_state *st, struct ms_conn *c, uint64_t n)
{
	lockdep_assert_held(&st->lock);
	if (!c->confirming || n < c->msgs_confirmed || n > c->msgs_sent)
		return -ERANGE;
	for (; c->msgs_confirmed < n; c->msgs_confirmed++) {
		bool again;
		struct ms_rec *r = ms_ring_pop(&c->unconf, &again);

		if (!ms_rec_synthetic(r)) {
			c->confirmed++;
			st->ctr.confirmed++;
		}
		ms_rec_unref(r);
	}
	if (claim_locked(c))
		pump_locked(st, c); /* the window opened */
	return 0;
}

void
ms_deliver_stats_locked(struct ms_state *st, struct ms_conn *c, struct minispy_stats *s)
{
	lockdep_assert_held(&st->lock);
	s->records = st->ctr.records;
	s->queued = st->ctr.queued;
	s->sent = st->ctr.sent;
	s->dropped = st->ctr.dropped;
	s->loss_records_sent = st->ctr.loss_records_sent;
	s->discarded = st->ctr.discarded;
	s->backlog_queued = st->ctr.backlog_queued;
	s->backlog_dropped = st->ctr.backlog_dropped;
	s->backlog_delivered = st->ctr.backlog_delivered;
	s->returned = st->ctr.returned;
	s->kernel_overflows = st->ctr.kernel_overflows;
	s->connections = st->ctr.connections;
	s->connections_now = st->n_conns;
	s->backlog_now = ms_ring_events(&st->backlog);
	s->confirmed = st->ctr.confirmed;
	s->unconfirmed = st->ctr.unconfirmed;
	s->departed = st->ctr.departed;
	s->bad_calls = st->ctr.bad_calls;
	s->unknown_paths = st->ctr.unknown_paths;
	s->engine_losses = st->ctr.engine_losses;
	if (!c)
		return;
	s->conn_queued = c->queued;
	s->conn_sent = c->sent;
	s->conn_dropped = c->dropped;
	s->conn_loss_records_sent = c->loss_sent;
	s->conn_pending = c->head.len + c->q.len + c->n_inflight + c->late.len +
			  (c->head.before.count != 0) + (c->head.after.count != 0) +
			  (c->q.after.count != 0);
	s->conn_confirmed = c->confirmed;
	s->conn_unconfirmed = c->unconf.len;
}
