/* SPDX-License-Identifier: MIT */
/*
 * proc_cache.c — a fixed-size, set-associative cache of process details
 * keyed by (pid, pidfs inode), with a check of the running program on
 * every lookup and an age limit. What the key and the checks guarantee is
 * explained in proc_cache.h and docs/engine.md section 2.3.
 *
 * Locks: one mutex per set, a leaf, held only to copy an entry in or out;
 * strings are allocated before and freed after.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/proc_cache.h"
#include "common/lockdep.h"

struct proc_entry {
	bool used;
	struct proc_key key;
	int64_t filled_ns; /* when the details were read (before the reads) */
	uint64_t last_use; /* the set's tick at the last hit or fill */
	struct proc_details d;
	char *exe;
	size_t exe_len;
};

struct proc_set {
	pthread_mutex_t lock;
	uint64_t tick;
	struct proc_entry way[PROC_CACHE_WAYS];
};

struct proc_cache {
	int64_t ttl_ns;
	atomic_uint_fast64_t hits, misses, invalidations, evictions;
	struct proc_set set[PROC_CACHE_SETS];
};

struct proc_cache *
proc_cache_new(void)
{
	struct proc_cache *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return NULL;
	pc->ttl_ns = (int64_t)PROC_CACHE_TTL_MS * 1000000;
	for (size_t i = 0; i < PROC_CACHE_SETS; i++)
		pthread_mutex_init(&pc->set[i].lock, NULL);
	return pc;
}

void
proc_cache_free(struct proc_cache *pc)
{
	if (!pc)
		return;
	for (size_t i = 0; i < PROC_CACHE_SETS; i++) {
		for (size_t w = 0; w < PROC_CACHE_WAYS; w++)
			free(pc->set[i].way[w].exe);
		pthread_mutex_destroy(&pc->set[i].lock);
	}
	free(pc);
}

size_t
proc_cache_set_index(const struct proc_key *key)
{
	/* pidfs inodes count up: spread consecutive ones over the sets. */
	uint64_t h =
		(key->ino ^ ((uint64_t)(uint32_t)key->pid << 29)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 40) % PROC_CACHE_SETS;
}

static struct proc_set *
set_of(struct proc_cache *pc, const struct proc_key *key)
{
	return &pc->set[proc_cache_set_index(key)];
}

static bool
same_key(const struct proc_key *a, const struct proc_key *b)
{
	return a->pid == b->pid && a->ino == b->ino;
}

static bool
same_exe(const struct proc_exe_id *a, const struct proc_exe_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->ctime_sec == b->ctime_sec &&
	       a->ctime_nsec == b->ctime_nsec;
}

static struct proc_entry *
find_locked(struct proc_set *s, const struct proc_key *key)
{
	lockdep_assert_held(&s->lock);
	for (size_t w = 0; w < PROC_CACHE_WAYS; w++)
		if (s->way[w].used && same_key(&s->way[w].key, key))
			return &s->way[w];
	return NULL;
}

/* Empties e; returns its exe string for the caller to free unlocked. */
static char *
drop_locked(struct proc_entry *e)
{
	char *exe = e->exe;

	memset(e, 0, sizeof(*e));
	return exe;
}

enum proc_lookup
proc_cache_lookup(struct proc_cache *pc, const struct proc_key *key,
		  const struct proc_exe_id *exe_id, int64_t now_ns,
		  struct proc_details *out, char *exe, size_t cap)
{
	struct proc_set *s = set_of(pc, key);
	enum proc_lookup r = PROC_MISS;
	struct proc_entry *e;
	char *dropped = NULL;

	pthread_mutex_lock(&s->lock);
	e = find_locked(s, key);
	if (!e) {
		/* miss */
	} else if (!same_exe(&e->d.exe_id, exe_id)) {
		dropped = drop_locked(e);
		r = PROC_STALE;
	} else if (now_ns - e->filled_ns < pc->ttl_ns && e->exe_len < cap) {
		*out = e->d;
		memcpy(exe, e->exe, e->exe_len + 1);
		e->last_use = ++s->tick;
		r = PROC_HIT;
	}
	pthread_mutex_unlock(&s->lock);
	free(dropped);
	if (r == PROC_STALE)
		atomic_fetch_add_explicit(&pc->invalidations, 1, memory_order_relaxed);
	return r;
}

void
proc_cache_insert(struct proc_cache *pc, const struct proc_key *key, int64_t now_ns,
		  const struct proc_details *d, const char *exe)
{
	struct proc_set *s = set_of(pc, key);
	size_t len = strlen(exe);
	char *copy = malloc(len + 1), *old = NULL;
	struct proc_entry *e;
	bool evicted = false;

	if (!copy)
		return;
	memcpy(copy, exe, len + 1);
	pthread_mutex_lock(&s->lock);
	e = find_locked(s, key);
	if (e && e->filled_ns > now_ns) {
		/* Another thread stored details read after ours. */
		pthread_mutex_unlock(&s->lock);
		free(copy);
		return;
	}
	/* Else a free or expired entry, else the least recently used. */
	for (size_t w = 0; w < PROC_CACHE_WAYS && !e; w++)
		if (!s->way[w].used || now_ns - s->way[w].filled_ns >= pc->ttl_ns)
			e = &s->way[w];
	if (!e) {
		e = &s->way[0];
		for (size_t w = 1; w < PROC_CACHE_WAYS; w++)
			if (s->way[w].last_use < e->last_use)
				e = &s->way[w];
		evicted = true;
	}
	old = drop_locked(e);
	e->used = true;
	e->key = *key;
	e->filled_ns = now_ns;
	e->last_use = ++s->tick;
	e->d = *d;
	e->exe = copy;
	e->exe_len = len;
	pthread_mutex_unlock(&s->lock);
	free(old);
	if (evicted)
		atomic_fetch_add_explicit(&pc->evictions, 1, memory_order_relaxed);
}

void
proc_cache_count(struct proc_cache *pc, bool hit)
{
	atomic_fetch_add_explicit(hit ? &pc->hits : &pc->misses, 1, memory_order_relaxed);
}

void
proc_cache_get_stats(struct proc_cache *pc, struct proc_cache_stats *ret)
{
	ret->hits = atomic_load_explicit(&pc->hits, memory_order_relaxed);
	ret->misses = atomic_load_explicit(&pc->misses, memory_order_relaxed);
	ret->invalidations =
		atomic_load_explicit(&pc->invalidations, memory_order_relaxed);
	ret->evictions = atomic_load_explicit(&pc->evictions, memory_order_relaxed);
}
