/* SPDX-License-Identifier: MIT */
/*
 * record.c — encoding minispy records (layout in minispy_record.h) and
 * their reference counts. Runs in the event path: one malloc per event,
 * no locks, no system calls.
 */
#include "record.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fltmgr/bytes.h>

_Static_assert(MINISPY_OP_OPEN == (int)FLT_OP_OPEN &&
		       MINISPY_OP_EXEC == (int)FLT_OP_EXEC &&
		       MINISPY_OP_READ == (int)FLT_OP_READ &&
		       MINISPY_OP_WRITE == (int)FLT_OP_WRITE &&
		       MINISPY_OP_CLOSE_WRITE == (int)FLT_OP_CLOSE_WRITE &&
		       MINISPY_OP_CLOSE == (int)FLT_OP_CLOSE &&
		       MINISPY_OP_ATTRIB == (int)FLT_OP_ATTRIB &&
		       MINISPY_OP_CREATE == (int)FLT_OP_CREATE &&
		       MINISPY_OP_DELETE == (int)FLT_OP_DELETE &&
		       MINISPY_OP_RENAME == (int)FLT_OP_RENAME,
	       "minispy ops follow enum flt_operation");
_Static_assert(MINISPY_RECORD_MAX <= FLT_PORT_MAX_MESSAGE, "a record fits a message");

/* version: the lowest that can express the record (minispy_record.h). */
static struct ms_rec *
rec_alloc(uint16_t type, uint16_t version, size_t len)
{
	struct ms_rec *r = calloc(1, sizeof(*r) + len);

	if (!r)
		return NULL;
	atomic_init(&r->refs, 1);
	r->type = type;
	r->len = (uint32_t)len;
	flt_put32(r->data, MINISPY_RECORD_MAGIC);
	flt_put16(r->data + 4, version);
	flt_put16(r->data + 6, type);
	flt_put32(r->data + 8, (uint32_t)len);
	return r;
}

static int64_t
ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(&ts);
}

/* Length of s as stored: at most MINISPY_STRING_MAX; NULL is empty. */
static uint16_t
str_len(const char *s, uint16_t *flags)
{
	size_t n = s ? strlen(s) : 0;

	if (n > MINISPY_STRING_MAX) {
		*flags |= MINISPY_F_TRUNCATED;
		n = MINISPY_STRING_MAX;
	}
	return (uint16_t)n;
}

struct ms_rec *
ms_rec_event(const struct flt_callback_data *d, const struct flt_process *p)
{
	bool known = p && p->verified;
	const char *s[4] = { d->path, d->new_path, known ? p->exe : NULL,
			     known ? p->comm : NULL };
	uint16_t flags = 0, lens[4];
	size_t len = MINISPY_EVENT_FIXED, off = MINISPY_EVENT_FIXED;
	struct ms_rec *r;
	uint8_t *b;

	for (int i = 0; i < 4; i++) {
		lens[i] = str_len(s[i], &flags);
		len += (size_t)lens[i] + 1;
	}
	if (d->flags & FLT_EVENT_DIR)
		flags |= MINISPY_F_DIR;
	if (known)
		flags |= MINISPY_F_VERIFIED;
	/* What the engine could not resolve is NULL (FLT_EVENT_PATH_UNKNOWN)
	 * and stored empty: an empty string is never a path (version 2). */
	if (!lens[0] || (d->op == FLT_OP_RENAME && !lens[1]))
		flags |= MINISPY_F_PATH_UNKNOWN;
	r = rec_alloc(MINISPY_REC_EVENT, (flags & MINISPY_F_PATH_UNKNOWN) ? 2 : 1, len);
	if (!r)
		return NULL;
	b = r->data;
	flt_put64(b + 24, d->sequence);
	flt_put64(b + 32, (uint64_t)ts_ns(&d->time));
	flt_put64(b + 40, (uint64_t)d->dev);
	flt_put64(b + 48, (uint64_t)d->ino);
	flt_put32(b + 56, (uint32_t)d->pid);
	flt_put32(b + 60, known ? (uint32_t)p->uid : MINISPY_UID_UNKNOWN);
	flt_put16(b + 64, (uint16_t)d->op);
	flt_put16(b + 66, flags);
	for (int i = 0; i < 4; i++) {
		flt_put16(b + 68 + 2 * i, lens[i]);
		if (lens[i])
			memcpy(b + off, s[i], lens[i]);
		off += (size_t)lens[i] + 1; /* the NUL is already there */
	}
	return r;
}

static struct ms_rec *
loss_rec(enum minispy_loss_cause cause, int64_t time_ns, const struct ms_loss *l)
{
	bool v2 = cause == MINISPY_LOSS_ENGINE || l->notices;
	struct ms_rec *r = rec_alloc(MINISPY_REC_LOSS, v2 ? 2 : 1, MINISPY_LOSS_SIZE);

	if (!r)
		return NULL;
	r->cause = (uint16_t)cause;
	r->loss = *l;
	flt_put64(r->data + 24, (uint64_t)time_ns);
	flt_put64(r->data + 32, l->count);
	flt_put64(r->data + 40, l->first);
	flt_put64(r->data + 48, l->last);
	flt_put32(r->data + 56, (uint32_t)cause);
	flt_put32(r->data + 60, l->notices);
	return r;
}

uint32_t
ms_notice_kind(const struct flt_callback_data *d)
{
	/* No cause given (an older engine): it was the kernel. */
	if (!(d->flags & FLT_EVENT_LOSS_MASK) || (d->flags & FLT_EVENT_LOSS_KERNEL))
		return MINISPY_NOTICE_KERNEL;
	return MINISPY_NOTICE_ENGINE;
}

struct ms_rec *
ms_rec_notice(const struct flt_callback_data *d)
{
	struct ms_loss l = { .count = d->lost };

	return loss_rec(ms_notice_kind(d) == MINISPY_NOTICE_KERNEL ? MINISPY_LOSS_KERNEL
								   : MINISPY_LOSS_ENGINE,
			ts_ns(&d->time), &l);
}

struct ms_rec *
ms_rec_loss(enum minispy_loss_cause cause, const struct ms_loss *l)
{
	return loss_rec(cause, now_ns(), l);
}

void
ms_rec_set_seq(struct ms_rec *r, uint64_t seq)
{
	r->seq = seq;
	flt_put64(r->data + 16, seq);
}

void
ms_loss_add(struct ms_loss *l, const struct ms_loss *run)
{
	if (!run->count)
		return;
	if (!l->count) {
		l->first = run->first;
		l->last = run->last;
	} else {
		if (run->first < l->first)
			l->first = run->first;
		if (run->last > l->last)
			l->last = run->last;
	}
	l->count += run->count;
	l->notices |= run->notices;
}

void
ms_rec_fold(const struct ms_rec *r, struct ms_loss *l)
{
	struct ms_loss one;

	if (ms_rec_synthetic(r)) {
		ms_loss_add(l, &r->loss);
		return;
	}
	one = ms_loss_one(r->seq, 0);
	if (r->type == MINISPY_REC_LOSS)
		one.notices = r->cause == MINISPY_LOSS_KERNEL ? MINISPY_NOTICE_KERNEL
							      : MINISPY_NOTICE_ENGINE;
	ms_loss_add(l, &one);
}

void
ms_rec_unref(struct ms_rec *r)
{
	if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
		free(r);
}
