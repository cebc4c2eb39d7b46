/* SPDX-License-Identifier: MIT */
/*
 * record.h — encoded minispy records in memory (struct ms_rec): built once
 * per event, shared by reference between every connection queue and the
 * backlog, freed by the last holder. The bytes follow minispy_record.h.
 *
 * A record is immutable once published (ms_rec_set_seq() is called before
 * anyone else can see it), so senders read its bytes without a lock.
 */
#ifndef MINISPY_RECORD_MEM_H
#define MINISPY_RECORD_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <fltmgr/filter.h>

#include "minispy_record.h"

/* A run of lost records: count of them, seq first..last. count 0: none.
 * notices: MINISPY_NOTICE_* of the loss notices among them, so that a
 * KERNEL notice lost in a full queue still reaches the service. */
struct ms_loss {
	uint64_t count;
	uint64_t first;
	uint64_t last;
	uint32_t notices;
};

struct ms_rec {
	atomic_uint refs;
	uint16_t type;       /* MINISPY_REC_EVENT or MINISPY_REC_LOSS */
	uint16_t cause;      /* LOSS: enum minispy_loss_cause */
	uint64_t seq;        /* 0: a synthetic (QUEUE/BACKLOG/DEPARTED) loss */
	struct ms_loss loss; /* LOSS, synthetic: what it stands for */
	uint32_t len;
	uint8_t data[];
};

/* Adds the run to l (its notices too); runs must be adjacent or in order. */
void ms_loss_add(struct ms_loss *l, const struct ms_loss *run);

/* The run one record stands for when it is lost: its seq, and its notice
 * kind (MINISPY_NOTICE_*, 0 for an event). */
static inline struct ms_loss
ms_loss_one(uint64_t seq, uint32_t notice)
{
	return (struct ms_loss){
		.count = 1, .first = seq, .last = seq, .notices = notice
	};
}

/* The record for an event; seq is set later. p may be NULL (no process
 * details). NULL when out of memory. One reference, the caller's. */
struct ms_rec *ms_rec_event(const struct flt_callback_data *d,
			    const struct flt_process *p);

/* The loss notice for an FLT_OP_OVERFLOW (seq set later): KERNEL for the
 * kernel's queue overflow, ENGINE for the engine's own losses; count: the
 * events lost, 0 if unknown. */
struct ms_rec *ms_rec_notice(const struct flt_callback_data *d);

/* The notice kind (MINISPY_NOTICE_*) an FLT_OP_OVERFLOW becomes. */
uint32_t ms_notice_kind(const struct flt_callback_data *d);

/* A QUEUE or BACKLOG loss record standing for l (count >= 1). */
struct ms_rec *ms_rec_loss(enum minispy_loss_cause cause, const struct ms_loss *l);

/* Stamps the record's seq; only before it is published. */
void ms_rec_set_seq(struct ms_rec *r, uint64_t seq);

/* Folds what the record stands for into l: one record with its seq, or
 * for a synthetic loss record the run it reported. */
void ms_rec_fold(const struct ms_rec *r, struct ms_loss *l);

/* A loss record standing for a run (not a notice with a seq of its own). */
static inline bool
ms_rec_synthetic(const struct ms_rec *r)
{
	return r->type == MINISPY_REC_LOSS && !minispy_loss_is_notice(r->cause);
}

static inline struct ms_rec *
ms_rec_ref(struct ms_rec *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
	return r;
}

void ms_rec_unref(struct ms_rec *r);

#endif
