/* SPDX-License-Identifier: MIT */
/*
 * handle_table.c — flt_port values: (generation << 32) | (index + 1).
 *
 * The table is the only way from a handle to an object. Lookups validate
 * range, kind and generation under the table lock and take a reference
 * before the lock is dropped, so a stale or forged value yields an error
 * and never a pointer. Removing an entry bumps the slot's generation; the
 * slot is reused only with the new generation. Generations skip 0 so no
 * valid handle equals FLT_PORT_NULL. (A slot would have to be reused 2^32
 * times for a stale copy to alias a new handle.)
 */
#include <errno.h>
#include <stdlib.h>

#include "core/handle_table.h"
#include "common/lockdep.h"

#define HT_MAX_SLOTS (1u << 22)

static uint32_t
port_index(flt_port p)
{
	return (uint32_t)(p.value & 0xffffffffu);
}

static uint32_t
port_gen(flt_port p)
{
	return (uint32_t)(p.value >> 32);
}

int
ht_init(struct handle_table *ht)
{
	*ht = (struct handle_table){ 0 };
	return -pthread_mutex_init(&ht->lock, NULL);
}

void
ht_fini(struct handle_table *ht)
{
	free(ht->slots);
	pthread_mutex_destroy(&ht->lock);
}

int
ht_insert(struct handle_table *ht, enum handle_kind kind, struct obj *obj,
	  flt_port *ret_port)
{
	struct handle_slot *s;
	uint32_t idx;

	pthread_mutex_lock(&ht->lock);
	if (ht->free_head) {
		idx = ht->free_head - 1;
		ht->free_head = ht->slots[idx].next_free;
	} else {
		if (ht->n_slots == ht->cap) {
			uint32_t ncap = ht->cap ? ht->cap * 2 : 64;
			struct handle_slot *n;

			if (ncap > HT_MAX_SLOTS) {
				pthread_mutex_unlock(&ht->lock);
				return -ENFILE;
			}
			n = realloc(ht->slots, ncap * sizeof(*n));
			if (!n) {
				pthread_mutex_unlock(&ht->lock);
				return -ENOMEM;
			}
			ht->slots = n;
			ht->cap = ncap;
		}
		idx = ht->n_slots++;
		ht->slots[idx] = (struct handle_slot){ .gen = 1 };
	}
	s = &ht->slots[idx];
	s->kind = (uint8_t)kind;
	s->obj = obj;
	s->next_free = 0;
	obj_ref(obj);
	ret_port->value = ((uint64_t)s->gen << 32) | (uint64_t)(idx + 1);
	pthread_mutex_unlock(&ht->lock);
	return 0;
}

/* Caller holds ht->lock. */
static struct handle_slot *
lookup_locked(struct handle_table *ht, flt_port port, enum handle_kind kind, int *ret_err)
{
	lockdep_assert_held(&ht->lock);
	uint32_t idx = port_index(port);
	struct handle_slot *s;

	if (port.value == 0) {
		*ret_err = -ENOTCONN;
		return NULL;
	}
	if (idx == 0 || idx > ht->n_slots || port_gen(port) == 0) {
		*ret_err = -EINVAL;
		return NULL;
	}
	s = &ht->slots[idx - 1];
	if (s->gen != port_gen(port) || s->kind == HK_FREE) {
		/* A dead generation: the object it named is gone. */
		*ret_err = -ENOTCONN;
		return NULL;
	}
	if (s->kind != kind) {
		*ret_err = -EINVAL;
		return NULL;
	}
	return s;
}

struct obj *
ht_ref(struct handle_table *ht, flt_port port, enum handle_kind kind, int *ret_err)
{
	struct handle_slot *s;
	struct obj *o = NULL;

	pthread_mutex_lock(&ht->lock);
	s = lookup_locked(ht, port, kind, ret_err);
	if (s) {
		o = s->obj;
		obj_ref(o);
	}
	pthread_mutex_unlock(&ht->lock);
	return o;
}

bool
ht_remove(struct handle_table *ht, flt_port port, enum handle_kind kind)
{
	struct handle_slot *s;
	struct obj *o = NULL;
	int err;

	pthread_mutex_lock(&ht->lock);
	s = lookup_locked(ht, port, kind, &err);
	if (s) {
		o = s->obj;
		s->obj = NULL;
		s->kind = HK_FREE;
		s->gen = s->gen + 1 ? s->gen + 1 : 1;
		s->next_free = ht->free_head;
		ht->free_head = (uint32_t)(s - ht->slots) + 1;
	}
	pthread_mutex_unlock(&ht->lock);
	obj_unref(o);
	return o != NULL;
}

uint32_t
ht_count(struct handle_table *ht, enum handle_kind kind)
{
	uint32_t n = 0;

	pthread_mutex_lock(&ht->lock);
	for (uint32_t i = 0; i < ht->n_slots; i++)
		n += ht->slots[i].kind == kind;
	pthread_mutex_unlock(&ht->lock);
	return n;
}
