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
 *
 * A verdict applies to the content the kernel will use: just before it is
 * given, the file's (size, mtime, ctime) is compared with what it was
 * before the scan. A file that changed meanwhile is scanned again (at most
 * SC_MAX_RESCANS times) and never allowed on a scan of other content.
 *
 * Every default verdict is counted by cause, never cached, and logged
 * (rate-limited) with the file and the process: a fail-open is never
 * silent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scanner.h"
#define PROF_TAG "filter"
#include "prof.h"
#include "common/lockdep.h"

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

/* Whether a line for this cause may be logged now; if so, *ret_suppressed
 * is how many were not since the last one. */
static bool
note_allowed(struct sc_state *st, enum scanner_counter why, uint64_t *ret_suppressed)
{
	return flt_log_ratelimit(&st->limit[why], SC_NOTE_INTERVAL_MS, ret_suppressed);
}

/* Logs, rate-limited per cause, what was decided for d without a verdict
 * on its content, as a decision record (flt_log_decision: the journal's
 * FILTER, OPERATION, PATH, PID, EXE, VERDICT, REASON fields under
 * fltmgrd): "exec of PATH by pid N (EXE) ALLOWED: COUNTER (WHY)". REASON
 * is the name of the counter that counts the cause. */
static void
note(struct sc_state *st, const struct flt_callback_data *d, enum scanner_counter why,
     int level, bool allowed, const char *reason)
{
	const struct flt_process *p;
	uint64_t suppressed;

	if (!note_allowed(st, why, &suppressed))
		return;
	p = flt_get_process(d);
	flt_log_decision(
		st->mgr, level,
		&(struct flt_decision){ .filter = st->name,
					.op = d->op,
					.path = d->path,
					.pid = d->pid,
					.exe = p ? p->exe : NULL,
					.verdict = allowed ? 0 : -EPERM,
					.reason = scanner_counter_names[why],
					.detail = reason,
					.suppressed = (unsigned long)suppressed });
}

static const char *
default_reason(enum scanner_counter why)
{
	switch (why) {
	case SCANNER_CTR_no_service_defaults:
		return "no service connected";
	case SCANNER_CTR_deadline_defaults:
		return "no verdict before the deadline";
	case SCANNER_CTR_disconnect_defaults:
		return "the service went away with the request";
	case SCANNER_CTR_service_errors:
		return "the service could not scan it (read error, scan timeout, or "
		       "larger than its --max-size)";
	default:
		return "error";
	}
}

enum flt_preop_status
sc_default(struct sc_state *st, struct flt_callback_data *d, enum scanner_counter why,
	   const char *reason, int *ret_error)
{
	bool allow = st->default_verdict == 0;

	sc_count(st, why);
	d->cacheable = 0; /* a default is no verdict on the file */
	if (allow)
		sc_count(st, SCANNER_CTR_default_allows);
	{
		char detail[512];

		snprintf(detail, sizeof(detail), "unscanned, default verdict: %s",
			 reason ? reason : default_reason(why));
		note(st, d, why, allow ? FLT_LOG_WARNING : FLT_LOG_NOTICE, allow, detail);
	}
	*ret_error = allow ? 0 : st->default_verdict;
	return allow ? FLT_PREOP_SUCCESS_NO_CALLBACK : FLT_PREOP_COMPLETE;
}

/* A file that changed during a scan and cannot be scanned again (changed
 * every time, or no time or service left): denied, counted, logged. */
static void
deny_changed(struct sc_state *st, struct sc_req *r, const char *reason)
{
	sc_count(st, SCANNER_CTR_changed_denies);
	r->data->cacheable = 0;
	note(st, r->data, SCANNER_CTR_changed_denies, FLT_LOG_WARNING, false, reason);
	complete(r, FLT_PREOP_COMPLETE, -EPERM);
}

static void
complete_default_why(struct sc_state *st, struct sc_req *r, enum scanner_counter ctr,
		     const char *reason)
{
	enum flt_preop_status status;
	int error;

	if (r->rescans && st->default_verdict == 0) {
		/* It changed during a scan: what it holds now was never
		 * scanned, and a fail-open would allow it on the old scan. */
		sc_count(st, ctr);
		deny_changed(st, r,
			     "it changed during its scan and could not be scanned "
			     "again");
		return;
	}
	status = sc_default(st, r->data, ctr, reason, &error);
	complete(r, status, error);
}

void
sc_complete_default(struct sc_state *st, struct sc_req *r, enum scanner_counter ctr)
{
	complete_default_why(st, r, ctr, NULL);
}

/* The file as it is now; false if that cannot be told. */
static bool
key_now(const struct sc_req *r, struct sc_key *now)
{
	struct stat sb;

	if (fstat(r->data->fd, &sb) < 0)
		return false;
	sc_key_from_stat(&sb, now);
	return true;
}

/*
 * A service's verdict. Given only if the file did not change while it was
 * scanned (its key now is the key it had before the scan), and then cached
 * unless the rules or the file changed meanwhile. Returns false when the
 * file changed and r should be scanned again: r is still the caller's,
 * with the new key and a new ticket. The comparison is the last thing
 * before the completion, so that the verdict applies to what the kernel
 * will use, up to the microseconds between the two (docs/scanner.md).
 */
static bool
complete_verdict(struct sc_state *st, struct sc_req *r, int verdict, bool nocache)
{
	struct sc_key now;
	bool same = key_now(r, &now) && sc_key_equal(&now, &r->key);

	if (!same)
		sc_count(st, SCANNER_CTR_changed_during_scan);
	if (verdict == SCANNER_WRITERS && r->op == 1) {
		/* Someone holds the file open for writing: whatever a scan
		 * finds, the writer may change what runs until the kernel
		 * denies writes, which it does only after our answer. */
		sc_count(st, SCANNER_CTR_exec_writer_denies);
		r->data->cacheable = 0;
		note(st, r->data, SCANNER_CTR_exec_writer_denies, FLT_LOG_WARNING, false,
		     "the file is open for writing");
		complete(r, FLT_PREOP_COMPLETE, -EPERM);
		return true;
	}
	if (verdict == SCANNER_WRITERS)
		verdict = SCANNER_CLEAN; /* only execs are asked about writers */
	if (!same) {
		r->data->cacheable = 0;
		if (verdict == SCANNER_INFECTED) {
			/* Infected content was read: deny, cache nothing. */
			sc_count(st, SCANNER_CTR_uncached);
			sc_count(st, SCANNER_CTR_infected);
			complete(r, FLT_PREOP_COMPLETE, -EPERM);
			return true;
		}
		if (r->rescans < SC_MAX_RESCANS) {
			r->rescans++;
			sc_count(st, SCANNER_CTR_rescans);
			r->key = now;
			r->ticket = sc_cache_ticket(&st->cache);
			return false;
		}
		deny_changed(st, r, "it changed during each of its scans");
		return true;
	}
	PROF_MARK(r->key.ino, PROF_COMPLETE_CALL);
	if (nocache) {
		/* A verdict of policy (the service's time or size limit),
		 * not of the content: given once, never cached. */
		sc_count(st, SCANNER_CTR_policy_verdicts);
		r->data->cacheable = 0;
	} else if (!sc_cache_put(&st->cache, &r->key, verdict, &r->ticket)) {
		sc_count(st, SCANNER_CTR_uncached);
		r->data->cacheable = 0;
	}
	/* Others than root can write it: never a kernel mark, and its
	 * user-space entry serves only denials. */
	if (r->writable)
		r->data->cacheable = 0;
	if (verdict == SCANNER_CLEAN) {
		sc_count(st, SCANNER_CTR_clean);
		complete(r, FLT_PREOP_SUCCESS_NO_CALLBACK, 0);
	} else {
		sc_count(st, SCANNER_CTR_infected);
		complete(r, FLT_PREOP_COMPLETE, -EPERM);
	}
	return true;
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
	lockdep_assert_held(&st->lock);
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
	    (!st->inline_paused_until || flt_monotonic_ns() >= st->inline_paused_until)) {
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
		st->inline_paused_until = flt_monotonic_ns() + SC_INLINE_PAUSE_NS;
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
	lockdep_assert_held(&st->lock);
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
	lockdep_assert_held(&c->st->lock);
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

/* A malformed reply: counted, logged (rate-limited), default. */
static void
bad_reply(struct sc_conn *c, struct sc_req *r, size_t len)
{
	char why[96];

	snprintf(why, sizeof(why), "service pid %d sent a malformed reply (%zu bytes)",
		 (int)c->pid, len);
	complete_default_why(c->st, r, SCANNER_CTR_errors, why);
}

/* st->lock not held. Puts r back at the head of the queue for a sender
 * (r may have been inline); false, r still the caller's, if no service is
 * left to take it. */
static bool
requeue(struct sc_state *st, struct sc_req *r)
{
	bool queued;

	pthread_mutex_lock(&st->lock);
	queued = st->n_live > 0 && !st->closing;
	if (queued)
		requeue_front_locked(st, r);
	pthread_mutex_unlock(&st->lock);
	return queued;
}

bool
sc_serve(struct sc_conn *c, struct sc_req *r)
{
	struct sc_state *st = c->st;
	struct flt_callback_data *d = r->data;
	uint8_t msg[SCANNER_REQ_MAX], reply[SCANNER_REPLY_SIZE + 8];
	struct flt_send_options o = { .fd = d->fd, .sequence = d->sequence };
	uint64_t ino = r->key.ino;
	int64_t left, wait;
	int err, v;

	(void)ino;
	for (;;) { /* once, and again for each rescan of a changed file */
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
		int64_t t0 = flt_monotonic_ns();

		left = r->deadline_ns - st->margin_ns - t0;
		wait = left;
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
		if (err != 0)
			break;
		if (r->on_reader)
			r->rtt_ns = flt_monotonic_ns() - t0;
		v = scanner_reply_decode(reply, rlen);
		if (v < 0) {
			bad_reply(c, r, rlen);
		} else if (v == SCANNER_ERROR) {
			sc_complete_default(st, r, SCANNER_CTR_service_errors);
		} else if (!complete_verdict(st, r, v,
					     scanner_reply_flags(reply) &
						     SCANNER_REPLY_NO_CACHE)) {
			/* The file changed during the scan: again. From the pre
			 * callback through a sender (the reader must not wait
			 * longer); a sender sends it again itself. */
			if (!r->on_reader)
				continue;
			if (requeue(st, r))
				return false;
			deny_changed(st, r,
				     "it changed during its scan and no service is "
				     "left to scan it again");
		}
		PROF_MARK(ino, PROF_COMPLETED);
		return true;
	}
	if (err == -ETIMEDOUT && wait < left) {
		/* Inline, and the verdict is slow: give the reader back and
		 * let a sender send it again with the rest of the deadline.
		 * The service may scan the file twice; its late reply to this
		 * send is refused. */
		sc_count(st, SCANNER_CTR_inline_pauses);
		pthread_mutex_lock(&st->lock);
		st->inline_paused_until = flt_monotonic_ns() + SC_INLINE_PAUSE_NS;
		pthread_mutex_unlock(&st->lock);
		if (requeue(st, r)) { /* it was the oldest */
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
			 r->deadline_ns - st->margin_ns > flt_monotonic_ns();
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
	{
		char why[96];

		snprintf(why, sizeof(why), "sending it to service pid %d failed: %s",
			 (int)c->pid, strerror(-err));
		complete_default_why(st, r, SCANNER_CTR_errors, why);
	}
	return true;
}
