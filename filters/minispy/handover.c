/* SPDX-License-Identifier: MIT */
/*
 * handover.c — what a departing minispy connection leaves behind, and
 * where it goes so that nothing is lost without a loss record.
 *
 * A connection that ends may still hold records its service never
 * printed: sent but not confirmed (a confirming service that was
 * killed), taken off a ring but not sent, DEPARTED losses meant for it,
 * the backlog it took over, and its queue (with the loss runs the rings
 * carry). Two cases:
 *
 *  - It was the last service: all of it goes back into the backlog, in
 *    that order, and the next service to connect gets it (redelivery; a
 *    record the dead service printed after its last confirmation may be
 *    seen twice, with the same seq).
 *  - Others are still connected: every one of them has each record made
 *    since it connected. A record older than the oldest remaining
 *    connection's first record (the service being restarted connected
 *    before the old one's disconnect was processed, say) is held by
 *    nobody else, so its seq goes into a DEPARTED loss record for that
 *    oldest connection. Records someone else has are just freed.
 */
#include <errno.h>
#include <stdlib.h>

#include "handover.h"
#include "common/lockdep.h"

/* Lost seq runs, kept in the order found; sorted and merged at the end. */
struct runs {
	struct ms_loss *v;
	size_t n, cap;
	struct ms_loss spill; /* no memory: one inexact run (count exact) */
	uint64_t below;       /* event records held by nobody else */
	uint64_t above;       /* event records the others have */
};

static bool
run_exact(const struct ms_loss *l)
{
	return l->count == l->last - l->first + 1;
}

static void
runs_add(struct runs *rs, const struct ms_loss *l)
{
	struct ms_loss *v, *prev = rs->n ? &rs->v[rs->n - 1] : NULL;

	if (!l->count)
		return;
	if (prev && prev->last + 1 == l->first && run_exact(prev) && run_exact(l)) {
		prev->last = l->last;
		prev->count += l->count;
		prev->notices |= l->notices;
		return;
	}
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;

		v = realloc(rs->v, cap * sizeof(*v));
		if (!v) {
			ms_loss_add(&rs->spill, l);
			return;
		}
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n++] = *l;
}

/* The part of run l with seqs below limit. A run is exact when it names
 * every seq of its range; only an exact one can be cut. A cut run keeps
 * its notices: where in it they were is not known, and one above the
 * limit was delivered to the target anyway (or is in its own run). */
static void
runs_add_below(struct runs *rs, const struct ms_loss *l, uint64_t limit)
{
	struct ms_loss cut = *l;

	if (!l->count || l->first >= limit)
		return;
	if (l->last >= limit && run_exact(l)) {
		cut.count = limit - l->first;
		cut.last = limit - 1;
	}
	runs_add(rs, &cut);
}

/* Takes over the reference to r. */
static void
fold(struct runs *rs, struct ms_rec *r, uint64_t limit)
{
	if (ms_rec_synthetic(r)) {
		runs_add_below(rs, &r->loss, limit);
	} else if (r->seq < limit) {
		struct ms_loss one = { 0 };

		ms_rec_fold(r, &one); /* with its notice kind */
		runs_add(rs, &one);
		rs->below++;
	} else {
		rs->above++;
	}
	ms_rec_unref(r);
}

static void
fold_ring(struct runs *rs, struct ms_ring *q, uint64_t limit)
{
	runs_add_below(rs, &q->before, limit);
	for (uint32_t i = 0; i < q->len; i++) {
		uint32_t k = (q->head + i) % q->cap;

		fold(rs, q->v[k], limit);
		q->v[k] = NULL;
	}
	q->len = 0;
	runs_add_below(rs, &q->after, limit);
	ms_ring_fini(q);
}

static int
cmp_run(const void *a, const void *b)
{
	const struct ms_loss *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Sorted, adjacent exact runs merged. */
static void
runs_normalise(struct runs *rs)
{
	size_t k = 0;

	if (!rs->n)
		return;
	qsort(rs->v, rs->n, sizeof(*rs->v), cmp_run);
	for (size_t i = 1; i < rs->n; i++) {
		struct ms_loss *p = &rs->v[k], *x = &rs->v[i];

		if (run_exact(p) && run_exact(x) && p->last + 1 == x->first) {
			p->last = x->last;
			p->count += x->count;
			p->notices |= x->notices;
		} else {
			rs->v[++k] = *x;
		}
	}
	rs->n = k + 1;
}

/* The oldest remaining connection: the one that has the most. */
static struct ms_conn *
oldest_locked(struct ms_state *st)
{
	lockdep_assert_held(&st->lock);
	struct ms_conn *best = NULL;

	for (struct ms_conn *o = st->conns; o; o = o->next)
		if (!best || o->first_seq < best->first_seq)
			best = o;
	return best;
}

/* One DEPARTED loss record per run for target. False if one could not
 * be made (then that run is logged as lost unreported). */
static void
report_locked(struct ms_state *st, struct ms_conn *target, const struct ms_loss *l)
{
	lockdep_assert_held(&st->lock);
	struct ms_rec *r = ms_rec_loss(MINISPY_LOSS_DEPARTED, l);

	if (r && ms_late_push(&target->late, r) == 0)
		return; /* the disconnect pumps every remaining connection */
	if (r)
		ms_rec_unref(r);
	flt_filter_log(
		st->filter, FLT_LOG_ERROR,
		"out of memory: %llu records (seq %llu-%llu) lost without a loss record",
		(unsigned long long)l->count, (unsigned long long)l->first,
		(unsigned long long)l->last);
}

static const char *
hand_to_others_locked(struct ms_state *st, struct ms_conn *c)
{
	lockdep_assert_held(&st->lock);
	struct ms_conn *target = oldest_locked(st);
	uint64_t limit = target->first_seq;
	struct runs rs = { 0 };
	struct ms_rec *r;

	fold_ring(&rs, &c->unconf, limit);
	for (unsigned i = 0; i < c->n_inflight; i++)
		fold(&rs, *ms_inflight_at(c, i), limit);
	c->n_inflight = c->n_posted = 0;
	while ((r = ms_late_pop(&c->late)))
		fold(&rs, r, limit);
	fold_ring(&rs, &c->head, limit);
	fold_ring(&rs, &c->q, limit);
	runs_normalise(&rs);
	for (size_t i = 0; i < rs.n; i++)
		report_locked(st, target, &rs.v[i]);
	if (rs.spill.count)
		report_locked(st, target, &rs.spill);
	free(rs.v);
	st->ctr.departed += rs.below;
	st->ctr.discarded += rs.above;
	return rs.below || rs.n ? "reported as DEPARTED losses to the oldest service"
				: "freed (the other services have them)";
}

static const char *
return_to_backlog_locked(struct ms_state *st, struct ms_conn *c, uint64_t events)
{
	lockdep_assert_held(&st->lock);
	uint64_t dropped = 0;
	struct ms_rec *r;

	dropped += ms_backlog_append(&st->backlog, &c->unconf);
	for (unsigned i = 0; i < c->n_inflight; i++) {
		struct ms_rec *x = *ms_inflight_at(c, i);
		struct ms_loss self = { 0 };

		ms_rec_fold(x, &self);
		dropped += ms_backlog_push(&st->backlog, x, &self);
		ms_rec_unref(x);
	}
	c->n_inflight = c->n_posted = 0;
	while ((r = ms_late_pop(&c->late))) {
		struct ms_loss self = { 0 };

		ms_rec_fold(r, &self);
		dropped += ms_backlog_push(&st->backlog, r, &self);
		ms_rec_unref(r);
	}
	dropped += ms_backlog_append(&st->backlog, &c->head);
	dropped += ms_backlog_append(&st->backlog, &c->q);
	st->ctr.returned += events;
	st->ctr.backlog_queued += events;
	st->ctr.backlog_dropped += dropped;
	return "returned to the backlog";
}

const char *
ms_handover_locked(struct ms_state *st, struct ms_conn *c)
{
	lockdep_assert_held(&st->lock);
	uint64_t unconf = ms_ring_events(&c->unconf);
	uint64_t events = unconf + ms_ring_events(&c->head) + ms_ring_events(&c->q);

	for (unsigned i = 0; i < c->n_inflight; i++)
		events += !ms_rec_synthetic(*ms_inflight_at(c, i));

	st->ctr.unconfirmed += unconf;
	if (!st->n_conns)
		return return_to_backlog_locked(st, c, events);
	return hand_to_others_locked(st, c);
}
