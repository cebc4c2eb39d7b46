/* SPDX-License-Identifier: MIT */
/*
 * cache.c — see cache.h. Owns the slot array; callers hold no lock of
 * theirs while calling in, and nothing here calls out.
 */
#include "cache.h"

#include <errno.h>
#include <stdlib.h>

void
sc_key_from_stat(const struct stat *st, struct sc_key *ret)
{
	ret->dev = (uint64_t)st->st_dev;
	ret->ino = (uint64_t)st->st_ino;
	ret->size = (uint64_t)st->st_size;
	ret->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	ret->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

bool
sc_key_equal(const struct sc_key *a, const struct sc_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

int
sc_cache_init(struct sc_cache *c, size_t entries)
{
	size_t n = 1;

	pthread_mutex_init(&c->lock, NULL);
	c->slots = NULL;
	c->mask = 0;
	c->gen = 1;
	c->clock = 0;
	if (!entries)
		return 0;
	while (n < entries)
		n <<= 1;
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots)
		return -ENOMEM;
	c->mask = n - 1;
	return 0;
}

void
sc_cache_fini(struct sc_cache *c)
{
	free(c->slots);
	c->slots = NULL;
	pthread_mutex_destroy(&c->lock);
}

static struct sc_slot *
slot_of(struct sc_cache *c, uint64_t dev, uint64_t ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull ^ dev * 0xc2b2ae3d27d4eb4full;

	h ^= h >> 29;
	return &c->slots[h & c->mask];
}

struct sc_ticket
sc_cache_ticket(struct sc_cache *c)
{
	struct sc_ticket t;

	pthread_mutex_lock(&c->lock);
	t.gen = c->gen;
	t.clock = c->clock;
	pthread_mutex_unlock(&c->lock);
	return t;
}

bool
sc_cache_flushed_since(struct sc_cache *c, const struct sc_ticket *t)
{
	bool r;

	pthread_mutex_lock(&c->lock);
	r = c->gen != t->gen;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int
sc_cache_get(struct sc_cache *c, const struct sc_key *k)
{
	struct sc_slot *s;
	int v = -1;

	if (!c->slots)
		return -1;
	pthread_mutex_lock(&c->lock);
	s = slot_of(c, k->dev, k->ino);
	if (s->gen == c->gen && sc_key_equal(&s->key, k))
		v = s->verdict;
	pthread_mutex_unlock(&c->lock);
	return v;
}

bool
sc_cache_put(struct sc_cache *c, const struct sc_key *k, int verdict,
	     const struct sc_ticket *t)
{
	struct sc_slot *s;
	bool ok;

	pthread_mutex_lock(&c->lock);
	ok = t->gen == c->gen;
	if (ok && c->slots) {
		s = slot_of(c, k->dev, k->ino);
		if (s->key.dev == k->dev && s->key.ino == k->ino &&
		    s->changed > t->clock) {
			ok = false; /* written while it was being scanned */
		} else {
			s->key = *k;
			s->gen = t->gen;
			s->changed = 0;
			s->verdict = verdict;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return ok;
}

bool
sc_cache_invalidate(struct sc_cache *c, uint64_t dev, uint64_t ino)
{
	struct sc_slot *s;
	bool hit = false;

	if (!c->slots)
		return false;
	pthread_mutex_lock(&c->lock);
	s = slot_of(c, dev, ino);
	hit = s->gen && s->key.dev == dev && s->key.ino == ino;
	s->key = (struct sc_key){ .dev = dev, .ino = ino };
	s->gen = 0;
	s->changed = ++c->clock;
	pthread_mutex_unlock(&c->lock);
	return hit;
}

void
sc_cache_flush(struct sc_cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->gen++;
	pthread_mutex_unlock(&c->lock);
}
