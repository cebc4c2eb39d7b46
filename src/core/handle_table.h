/* SPDX-License-Identifier: MIT */
/*
 * handle_table.h — reference-counted objects and the table that turns
 * flt_port values into references (handle_table.c).
 */
#ifndef FLTMGR_HANDLE_TABLE_H
#define FLTMGR_HANDLE_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <fltmgr/filter.h>

struct obj {
	atomic_int refs;
	void (*destroy)(struct obj *o);
};

static inline void
obj_ref(struct obj *o)
{
	atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
}

static inline void
obj_unref(struct obj *o)
{
	if (o && atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
		o->destroy(o);
}

/* ---- handle table (handle_table.c) ---- */

enum handle_kind {
	HK_FREE = 0,
	HK_SERVER = 1,
	HK_CONN = 2,
};

struct handle_slot {
	uint32_t gen; /* never 0 */
	uint8_t kind;
	uint32_t next_free;
	struct obj *obj;
};

struct handle_table {
	pthread_mutex_t lock;
	struct handle_slot *slots;
	uint32_t n_slots;
	uint32_t cap;
	uint32_t free_head; /* index + 1; 0 = none */
};

int ht_init(struct handle_table *ht);
void ht_fini(struct handle_table *ht);
/* Publishes obj; the table takes a reference. */
int ht_insert(struct handle_table *ht, enum handle_kind kind, struct obj *obj,
	      flt_port *ret_port);
/* Returns a new reference, or NULL with *ret_err = -ENOTCONN (stale
 * generation / null) or -EINVAL (out of range, wrong kind). */
struct obj *ht_ref(struct handle_table *ht, flt_port port, enum handle_kind kind,
		   int *ret_err);
/* Unpublishes: bumps the generation, drops the table's reference.
 * Returns true if this call removed it. */
bool ht_remove(struct handle_table *ht, flt_port port, enum handle_kind kind);
uint32_t ht_count(struct handle_table *ht, enum handle_kind kind);

#endif
