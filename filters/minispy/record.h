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

/* A run of lost records: count of them, seq first..last. count 0: none. */
struct ms_loss {
	uint64_t count;
	uint64_t first;
	uint64_t last;
};

struct ms_rec {
	atomic_uint refs;
	uint16_t type;       /* MINISPY_REC_EVENT or MINISPY_REC_LOSS */
	uint16_t cause;      /* LOSS: enum minispy_loss_cause */
	uint64_t seq;        /* 0: a synthetic (QUEUE/BACKLOG) loss record */
	struct ms_loss loss; /* LOSS, QUEUE/BACKLOG: what it stands for */
	uint32_t len;
	uint8_t data[];
};

/* Adds the run (n, first, last) to l; runs must be adjacent or in order. */
void ms_loss_add(struct ms_loss *l, uint64_t n, uint64_t first, uint64_t last);

/* The record for an event; seq is set later. p may be NULL (no process
 * details). NULL when out of memory. One reference, the caller's. */
struct ms_rec *ms_rec_event(const struct flt_callback_data *d,
			    const struct flt_process *p);

/* A KERNEL loss notice (seq set later): lost events, 0 if unknown. */
struct ms_rec *ms_rec_kernel_loss(const struct flt_callback_data *d);

/* A QUEUE or BACKLOG loss record standing for l (count >= 1). */
struct ms_rec *ms_rec_loss(enum minispy_loss_cause cause, const struct ms_loss *l);

/* Stamps the record's seq; only before it is published. */
void ms_rec_set_seq(struct ms_rec *r, uint64_t seq);

/* Folds what the record stands for into l: one record with its seq, or
 * for a synthetic loss record the run it reported. */
void ms_rec_fold(const struct ms_rec *r, struct ms_loss *l);

static inline bool
ms_rec_synthetic(const struct ms_rec *r)
{
	return r->type == MINISPY_REC_LOSS && r->cause != MINISPY_LOSS_KERNEL;
}

static inline struct ms_rec *
ms_rec_ref(struct ms_rec *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
	return r;
}

void ms_rec_unref(struct ms_rec *r);

#endif
