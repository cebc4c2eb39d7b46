/* SPDX-License-Identifier: MIT */
/*
 * queue.c — see queue.h. The invariant every function keeps: reading a
 * ring as `before`, then the entries oldest first, then `after` gives
 * every record it was handed exactly once, in order, either as itself or
 * inside a loss run; runs that meet are merged.
 */
#include "queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
ms_ring_init(struct ms_ring *q, uint32_t cap)
{
	*q = (struct ms_ring){ .cap = cap };
}

int
ms_ring_alloc(struct ms_ring *q)
{
	if (!q->v && q->cap) {
		q->v = calloc(q->cap, sizeof(*q->v));
		if (!q->v)
			return -ENOMEM;
	}
	return 0;
}

uint64_t
ms_ring_fini(struct ms_ring *q)
{
	uint64_t events = 0;

	for (uint32_t i = 0; i < q->len; i++) {
		struct ms_rec *r = q->v[(q->head + i) % q->cap];

		events += !ms_rec_synthetic(r);
		ms_rec_unref(r);
	}
	free(q->v);
	ms_ring_init(q, q->cap);
	return events;
}

uint64_t
ms_ring_events(const struct ms_ring *q)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < q->len; i++)
		n += !ms_rec_synthetic(q->v[(q->head + i) % q->cap]);
	return n;
}

bool
ms_ring_idle(const struct ms_ring *q)
{
	return !q->len && !q->before.count && !q->after.count;
}

static void
put(struct ms_ring *q, struct ms_rec *r)
{
	q->v[(q->head + q->len) % q->cap] = r;
	q->len++;
}

bool
ms_queue_push(struct ms_ring *q, struct ms_rec *rec, const struct ms_loss *self)
{
	/* The earlier run is reported first, and only with room for the
	 * record behind it too: else the two would alternate forever. */
	if (rec && q->after.count && q->v && q->cap - q->len >= 2) {
		struct ms_rec *l = ms_rec_loss(MINISPY_LOSS_QUEUE, &q->after);

		if (l) {
			put(q, l);
			q->after = (struct ms_loss){ 0 };
		}
	}
	if (!rec || q->after.count || !q->v || q->len == q->cap) {
		ms_loss_add(&q->after, self);
		return false;
	}
	put(q, ms_rec_ref(rec));
	return true;
}

/* Drops the oldest entry into `before`; 1 if it was an event record. */
static uint64_t
evict(struct ms_ring *b)
{
	struct ms_rec *r = b->v[b->head];
	uint64_t n = !ms_rec_synthetic(r);

	b->v[b->head] = NULL;
	b->head = (b->head + 1) % b->cap;
	b->len--;
	ms_rec_fold(r, &b->before);
	ms_rec_unref(r);
	return n;
}

/* A run lost at the current end of the backlog. */
static void
backlog_lose(struct ms_ring *b, const struct ms_loss *l)
{
	if (!b->len && !b->after.count)
		ms_loss_add(&b->before, l);
	else
		ms_loss_add(&b->after, l);
}

/* Takes over the caller's reference to rec (may be NULL: then `lost` is
 * what went missing). Returns event records dropped. */
static uint64_t
backlog_add(struct ms_ring *b, struct ms_rec *rec, const struct ms_loss *lost)
{
	uint64_t dropped = 0;

	if (rec && b->after.count && ms_ring_alloc(b) == 0 && b->v) {
		struct ms_rec *l = ms_rec_loss(MINISPY_LOSS_QUEUE, &b->after);

		if (l) {
			while (b->len >= b->cap)
				dropped += evict(b);
			put(b, l);
			b->after = (struct ms_loss){ 0 };
		}
	}
	if (!rec || b->after.count || ms_ring_alloc(b) < 0 || !b->v) {
		struct ms_loss one = { 0 };

		if (rec) {
			ms_rec_fold(rec, &one);
			dropped += !ms_rec_synthetic(rec);
			ms_rec_unref(rec);
		} else {
			one = *lost;
			dropped += lost->count;
		}
		backlog_lose(b, &one);
		return dropped;
	}
	while (b->len >= b->cap)
		dropped += evict(b);
	put(b, rec);
	return dropped;
}

uint64_t
ms_backlog_push(struct ms_ring *b, struct ms_rec *rec, const struct ms_loss *self)
{
	return backlog_add(b, rec ? ms_rec_ref(rec) : NULL, self);
}

uint64_t
ms_backlog_append(struct ms_ring *b, struct ms_ring *from)
{
	uint64_t dropped = 0;

	if (from->before.count)
		backlog_lose(b, &from->before);
	while (from->len) {
		struct ms_rec *r = from->v[from->head];

		from->v[from->head] = NULL;
		from->head = (from->head + 1) % from->cap;
		from->len--;
		dropped += backlog_add(b, r, NULL);
	}
	if (from->after.count)
		backlog_lose(b, &from->after);
	from->before = from->after = (struct ms_loss){ 0 };
	return dropped;
}

struct ms_rec *
ms_ring_pop(struct ms_ring *q, bool *again)
{
	struct ms_rec *r;

	*again = false;
	if (q->before.count) {
		r = ms_rec_loss(MINISPY_LOSS_BACKLOG, &q->before);
		if (!r)
			goto later;
		q->before = (struct ms_loss){ 0 };
		return r;
	}
	if (q->len) {
		r = q->v[q->head];
		q->v[q->head] = NULL;
		q->head = (q->head + 1) % q->cap;
		q->len--;
		return r;
	}
	if (q->after.count) {
		r = ms_rec_loss(MINISPY_LOSS_QUEUE, &q->after);
		if (!r)
			goto later;
		q->after = (struct ms_loss){ 0 };
		return r;
	}
	return NULL;
later:
	*again = true;
	return NULL;
}

void
ms_ring_put(struct ms_ring *q, struct ms_rec *rec)
{
	put(q, rec);
}

int
ms_late_push(struct ms_late *l, struct ms_rec *rec)
{
	if (l->head + l->len == l->cap) {
		if (l->head) { /* slide down before growing */
			memmove(l->v, l->v + l->head, l->len * sizeof(*l->v));
			l->head = 0;
		} else {
			size_t cap = l->cap ? l->cap * 2 : 8;
			struct ms_rec **v = realloc(l->v, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			l->v = v;
			l->cap = cap;
		}
	}
	l->v[l->head + l->len++] = rec;
	return 0;
}

struct ms_rec *
ms_late_pop(struct ms_late *l)
{
	struct ms_rec *r;

	if (!l->len)
		return NULL;
	r = l->v[l->head++];
	if (!--l->len)
		l->head = 0;
	return r;
}

void
ms_late_fini(struct ms_late *l)
{
	struct ms_rec *r;

	while ((r = ms_late_pop(l)))
		ms_rec_unref(r);
	free(l->v);
	*l = (struct ms_late){ 0 };
}
