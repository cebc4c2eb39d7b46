/* SPDX-License-Identifier: MIT */
/*
 * queue.h — bounded rings of records with exact loss accounting, used
 * two ways:
 *
 *  - a connection's queue (ms_queue_push): keeps the oldest records and
 *    drops new ones while full. The dropped run is remembered in `after`
 *    and becomes one QUEUE loss record, queued in front of the first
 *    record that finds room again (room for both), or sent by itself when
 *    the ring has drained;
 *  - the backlog (ms_backlog_*), used while no service is connected: keeps
 *    the newest records and drops the oldest into `before`, which becomes
 *    one BACKLOG loss record at the head when a service takes it over.
 *
 * Nothing here locks: every ring belongs to one minispy state and is used
 * under its lock. A ring holds one reference to each record in it.
 */
#ifndef MINISPY_QUEUE_H
#define MINISPY_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "record.h"

struct ms_ring {
	struct ms_rec **v; /* cap slots; allocated on first use */
	uint32_t cap;
	uint32_t head;
	uint32_t len;
	struct ms_loss before; /* lost before every entry (oldest dropped) */
	struct ms_loss after;  /* lost after every entry (newest dropped) */
};

void ms_ring_init(struct ms_ring *q, uint32_t cap);
/* Allocates the slots now (a connection's queue, at connect): 0 or -ENOMEM. */
int ms_ring_alloc(struct ms_ring *q);
/* Drops every reference and the slots; the ring is empty afterwards.
 * Returns the number of event records (not loss records) it held. */
uint64_t ms_ring_fini(struct ms_ring *q);
/* Event records (not loss records) among the entries. */
uint64_t ms_ring_events(const struct ms_ring *q);
/* Nothing to send: no entries and no loss to report. */
bool ms_ring_idle(const struct ms_ring *q);

/*
 * Queue policy. Puts a new reference to rec (seq already stamped) at the
 * end, or, if the ring is full or still reporting an earlier run that has
 * no room yet, adds `self` (the run rec stands for when lost: its seq and
 * notice kind, ms_loss_one()) to the run lost in `after`. rec NULL (it
 * could not be allocated) counts as lost the same way. Returns true if
 * queued.
 */
bool ms_queue_push(struct ms_ring *q, struct ms_rec *rec, const struct ms_loss *self);

/*
 * Backlog policy. Puts a new reference to rec at the end, dropping the
 * oldest entries into `before` while full; rec NULL loses `self`. Returns
 * the number of event records dropped (loss records folded into `before`
 * are not counted again: their records were counted when they were lost).
 */
uint64_t ms_backlog_push(struct ms_ring *b, struct ms_rec *rec,
			 const struct ms_loss *self);

/* Appends everything in `from`, in order, to the backlog b (the same
 * policy), leaving `from` empty. Returns event records dropped. */
uint64_t ms_backlog_append(struct ms_ring *b, struct ms_ring *from);

/*
 * The next thing to send, oldest first: a BACKLOG loss record for
 * `before`, then the entries, then (only once they are gone) a QUEUE loss
 * record for `after`. Returns a reference the caller owns, or NULL: nothing
 * to send, or (*again set) a loss record could not be allocated yet.
 */
struct ms_rec *ms_ring_pop(struct ms_ring *q, bool *again);

/* Puts rec at the end, taking over the caller's reference; the caller has
 * checked that there is room (len < cap, slots allocated). */
void ms_ring_put(struct ms_ring *q, struct ms_rec *rec);

/* An unbounded FIFO of records: a connection's DEPARTED loss records
 * (few, and only when services overlap). */
struct ms_late {
	struct ms_rec **v;
	size_t head, len, cap;
};

/* Appends (taking over the reference): 0 or -ENOMEM (rec kept). */
int ms_late_push(struct ms_late *l, struct ms_rec *rec);
/* The oldest, the caller's reference; NULL if empty. */
struct ms_rec *ms_late_pop(struct ms_late *l);
void ms_late_fini(struct ms_late *l);

#endif
