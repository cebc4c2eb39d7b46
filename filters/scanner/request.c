/* SPDX-License-Identifier: MIT */
/*
 * request.c — the scanner filter's pended requests: the queue the pre
 * callback fills and the senders empty, one send per request with the
 * event fd attached, and the completion that answers the pended event
 * exactly once (a verdict, or the default verdict on a deadline, a
 * disconnect, a malformed reply or an error).
 *
 * A request is owned by the queue (st->lock) until a sender takes it, and
 * then by that sender alone; every path ends in complete(), which frees
 * it. An inline request (r->on_reader, sent by the pre callback itself)
 * is owned by that callback: complete() only records the answer for it to
 * return, and a request that has to wait longer is put in the queue like
 * any other. Nothing here holds st->lock across a send, a completion or a
 * log.
 *
 * Deadline: the engine's watchdog answers an event when the filter's
 * deadline passes. The sender's timeout is what is left of it minus a
 * small margin, so that normally the scanner answers (and counts) the
 * default itself; a request that waited in the queue past that point is
 * answered at once without being sent.
 *
 * Disconnect: libfltmgr fails every sender blocked on a connection with
 * -ENOTCONN as soon as it goes down. The request then moves to another
 * live service if there is one and time is left, or gets the default
 * verdict at once; the sender that finds no live service left also
 * answers everything still queued (sc_drain_if_no_service).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scanner.h"
#define PROF_TAG "filter"
#include "prof.h"

/* Takes r out of the caller's hands: answers the event, frees r. An
 * inline request instead keeps the answer for its pre callback. */
static void
complete(struct sc_req *r, enum flt_preop_status status, int error)
{
	struct flt_callback_data *d = r->data;

	if (r->on_reader) {
		r->status = status;
		r->error = error;
		return;
	}
	free(r);
	flt_complete_pended_preoperation(d, status, error);
}

void
sc_complete_default(struct sc_state *st, struct sc_req *r, enum scanner_counter ctr)
{
	sc_count(st, ctr);
	r->data->cacheable = 0; /* a default is no verdict on the file */
	if (st->default_verdict < 0)
		complete(r, FLT_PREOP_COMPLETE, st->default_verdict);
	else
		complete(r, FLT_PREOP_SUCCESS_NO_CALLBACK, 0);
}

/* A service's verdict: cached if the file did not change while it was
 * scanned and the rules did not change either. */
static void
complete_verdict(struct sc_state *st, struct sc_req *r, int verdict)
{
	struct stat sb;
	struct sc_key now;
	bool same = false;

	if (fstat(r->data->fd, &sb) == 0) {
		sc_key_from_stat(&sb, &now);
		same = sc_key_equal(&now, &r->key);
	}
	PROF_MARK(r->key.ino, PROF_COMPLETE_CALL);
	if (!same || !sc_cache_put(&st->cache, &r->key, verdict, &r->ticket)) {
		sc_count(st, SCANNER_CTR_uncached);
		r->data->cacheable = 0;
	}
	if (verdict == SCANNER_CLEAN) {
		sc_count(st, SCANNER_CTR_clean);
		complete(r, FLT_PREOP_SUCCESS_NO_CALLBACK, 0);
	} else {
		sc_count(st, SCANNER_CTR_infected);
		complete(r, FLT_PREOP_COMPLETE, -EPERM);
	}
}

bool
sc_enqueue(struct sc_state *st, struct sc_req *r)
{
	bool ok;

	r->next = NULL;
	pthread_mutex_lock(&st->lock);
	ok = st->n_live > 0 && !st->closing;
	if (ok) {
		if (st->tail)
			st->tail->next = r;
		else
			st->head = r;
		st->tail = r;
		pthread_cond_signal(&st->work);
	}
	pthread_mutex_unlock(&st->lock);
	return ok;
}

void
sc_in_flight_enter_locked(struct sc_state *st)
{
	uint64_t max = atomic_load_explicit(&st->ctr[SCANNER_CTR_in_flight_max],
					    memory_order_relaxed);

	st->in_flight++;
	if (st->in_flight > max)
		atomic_store_explicit(&st->ctr[SCANNER_CTR_in_flight_max], st->in_flight,
				      memory_order_relaxed);
}

struct sc_conn *
sc_inline_take(struct sc_state *st, uint64_t size)
{
	struct sc_conn *c = NULL;

	if (!st->set.inline_ms || size > st->set.inline_max_size)
		return NULL;
	pthread_mutex_lock(&st->lock);
	/* Never ahead of queued requests, one at a time, and only to a
	 * service that has nothing outstanding, so that the wait is one
	 * scan of a small file. */
	if (!st->closing && !st->inline_busy && !st->head &&
	    (!st->inline_paused_until || sc_now_ns() >= st->inline_paused_until)) {
		for (c = st->conns; c; c = c->next)
			if (c->window && !c->dead && !c->stop && !c->busy)
				break;
	}
	if (c) {
		st->inline_busy = true;
		c->busy++;
		c->n_inline++;
		sc_in_flight_enter_locked(st);
	}
	pthread_mutex_unlock(&st->lock);
	return c;
}

void
sc_inline_release(struct sc_conn *c, int64_t rtt_ns)
{
	struct sc_state *st = c->st;

	pthread_mutex_lock(&st->lock);
	if (rtt_ns > SC_INLINE_SLOW_NS && ++st->inline_slow_run >= SC_INLINE_SLOW_RUN) {
		/* Try again after the pause, from a new run. */
		st->inline_paused_until = sc_now_ns() + SC_INLINE_PAUSE_NS;
		st->inline_slow_run = 0;
		sc_count(st, SCANNER_CTR_inline_pauses);
	} else if (rtt_ns > 0 && rtt_ns <= SC_INLINE_SLOW_NS) {
		st->inline_slow_run = 0;
	}
	st->inline_busy = false;
	st->in_flight--;
	c->busy--;
	if (--c->n_inline == 0)
		pthread_cond_broadcast(&st->inline_done);
	pthread_mutex_unlock(&st->lock);
}

/* st->lock held. From here on r is the queue's, even if it was inline. */
static void
requeue_front_locked(struct sc_state *st, struct sc_req *r)
{
	r->on_reader = false;
	r->next = st->head;
	st->head = r;
	if (!st->tail)
		st->tail = r;
	pthread_cond_signal(&st->work);
}

void
sc_conn_dead_locked(struct sc_conn *c)
{
	if (c->dead || !c->window)
		return;
	c->dead = true;
	c->st->n_live--;
}

void
sc_drain_if_no_service(struct sc_state *st)
{
	struct sc_req *r = NULL;

	pthread_mutex_lock(&st->lock);
	if (st->n_live == 0) {
		r = st->head;
		st->head = st->tail = NULL;
	}
	pthread_mutex_unlock(&st->lock);
	while (r) {
		struct sc_req *next = r->next;

		sc_complete_default(st, r, SCANNER_CTR_disconnect_defaults);
		r = next;
	}
}

/* A malformed reply: logged (the first few), counted, default. */
static void
bad_reply(struct sc_conn *c, struct sc_req *r, size_t len)
{
	struct sc_state *st = c->st;
	bool log;

	pthread_mutex_lock(&st->lock);
	log = st->bad_logged < 5;
	st->bad_logged += log;
	pthread_mutex_unlock(&st->lock);
	sc_complete_default(st, r, SCANNER_CTR_errors);
	if (log)
		sc_log(st, FLT_LOG_WARNING,
		       "service pid %d sent a malformed reply (%zu bytes); default "
		       "verdict given",
		       (int)c->pid, len);
}

bool
sc_serve(struct sc_conn *c, struct sc_req *r)
{
	struct sc_state *st = c->st;
	struct flt_callback_data *d = r->data;
	uint8_t msg[SCANNER_REQ_MAX], reply[SCANNER_REPLY_SIZE + 8];
	struct flt_send_options o = { .fd = d->fd, .sequence = d->sequence };
	struct scanner_request q = {
		.op = r->op,
		.pid = (uint32_t)d->pid,
		.dev = r->key.dev,
		.ino = r->key.ino,
		.size = r->key.size,
		.path = d->path ? d->path : "",
		.path_len = d->path ? (uint32_t)strlen(d->path) : 0,
	};
	size_t len = scanner_request_encode(&q, msg), rlen = sizeof(reply);
	int64_t t0 = sc_now_ns(), left = r->deadline_ns - st->margin_ns - t0;
	int64_t wait = left;
	int err, v;
	uint64_t ino = r->key.ino;

	(void)ino;
	if (left <= 0) {
		sc_complete_default(st, r, SCANNER_CTR_deadline_defaults);
		return true;
	}
	if (r->on_reader) {
		sc_count(st, SCANNER_CTR_inline_sends);
		if (wait > (int64_t)st->set.inline_ms * 1000000)
			wait = (int64_t)st->set.inline_ms * 1000000;
	}
	sc_count(st, SCANNER_CTR_requests);
	PROF_MARK(ino, PROF_SEND_CALL);
	err = flt_send_message_ex(st->filter, &c->port, msg, len, reply, &rlen,
				  (int)((wait + 999999) / 1000000), &o);
	PROF_MARK(ino, PROF_SEND_RETURNED);
	if (err == 0) {
		if (r->on_reader)
			r->rtt_ns = sc_now_ns() - t0;
		v = scanner_reply_decode(reply, rlen);
		if (v < 0)
			bad_reply(c, r, rlen);
		else if (v == SCANNER_ERROR)
			sc_complete_default(st, r, SCANNER_CTR_service_errors);
		else
			complete_verdict(st, r, v);
		PROF_MARK(ino, PROF_COMPLETED);
		return true;
	}
	if (err == -ETIMEDOUT && wait < left) {
		/* Inline, and the verdict is slow: give the reader back and
		 * let a sender send it again with the rest of the deadline.
		 * The service may scan the file twice; its late reply to this
		 * send is refused. */
		bool queued;

		sc_count(st, SCANNER_CTR_inline_pauses);
		pthread_mutex_lock(&st->lock);
		st->inline_paused_until = sc_now_ns() + SC_INLINE_PAUSE_NS;
		queued = st->n_live > 0 && !st->closing;
		if (queued)
			requeue_front_locked(st, r); /* it was the oldest */
		pthread_mutex_unlock(&st->lock);
		if (queued) {
			sc_count(st, SCANNER_CTR_inline_timeouts);
			return false;
		}
		sc_complete_default(st, r, SCANNER_CTR_disconnect_defaults);
		return true;
	}
	if (err == -ETIMEDOUT) {
		sc_complete_default(st, r, SCANNER_CTR_deadline_defaults);
		return true;
	}
	if (err == -ENOTCONN) {
		bool resend;

		pthread_mutex_lock(&st->lock);
		sc_conn_dead_locked(c);
		resend = st->n_live > 0 && !st->closing &&
			 r->deadline_ns - st->margin_ns > sc_now_ns();
		if (resend)
			requeue_front_locked(st, r);
		pthread_mutex_unlock(&st->lock);
		if (resend) {
			sc_count(st, SCANNER_CTR_resent);
			return false;
		}
		sc_complete_default(st, r, SCANNER_CTR_disconnect_defaults);
		sc_drain_if_no_service(st);
		return true;
	}
	/* -EMSGSIZE (a service with a small buffer), a negative status the
	 * service replied with, -EBADF: this request cannot be scanned. */
	sc_complete_default(st, r, SCANNER_CTR_errors);
	if (err == -EMSGSIZE || err == -EBADF || err == -EINVAL)
		sc_log(st, FLT_LOG_WARNING,
		       "sending a request to service pid %d failed: %s; default "
		       "verdict given",
		       (int)c->pid, strerror(-err));
	return true;
}
