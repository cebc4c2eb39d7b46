/* SPDX-License-Identifier: MIT */
/*
 * cache.h — the scanner filter's user-space verdict cache: the last
 * verdict per file, keyed by file identity (dev, ino) and checked against
 * its change attributes (size, mtime, ctime) and the rules generation.
 *
 * A fixed array of slots, direct-mapped by a hash of (dev, ino), one mutex;
 * a colliding file simply replaces the older entry. Flushing bumps the
 * generation, which makes every entry a miss, in O(1). The cache never
 * allocates after sc_cache_init(); a size of 0 disables it.
 */
#ifndef SCANNER_CACHE_H
#define SCANNER_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct sc_key {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
};

struct sc_slot {
	struct sc_key key;
	uint64_t gen;     /* 0: empty (or only a tombstone) */
	uint64_t changed; /* clock of the last invalidation of key.dev/ino */
	int verdict;      /* enum scanner_verdict: CLEAN or INFECTED */
};

/* When a scan began: a verdict is stored only if neither a flush nor an
 * invalidation of that file came since. */
struct sc_ticket {
	uint64_t gen, clock;
};

struct sc_cache {
	pthread_mutex_t lock;
	struct sc_slot *slots;
	size_t mask; /* slots - 1; slots is a power of two */
	uint64_t gen;
	uint64_t clock; /* counts invalidations */
};

/* The key of an fstat() result. */
void sc_key_from_stat(const struct stat *st, struct sc_key *ret);
bool sc_key_equal(const struct sc_key *a, const struct sc_key *b);

/* At least `entries` slots (rounded up to a power of two); 0 disables. */
int sc_cache_init(struct sc_cache *c, size_t entries);
void sc_cache_fini(struct sc_cache *c);
/* Taken before a scan starts, given back to sc_cache_put(). */
struct sc_ticket sc_cache_ticket(struct sc_cache *c);
/* Whether a flush came since the ticket (the rules changed). */
bool sc_cache_flushed_since(struct sc_cache *c, const struct sc_ticket *t);
/* The cached verdict for exactly this key, or -1. */
int sc_cache_get(struct sc_cache *c, const struct sc_key *k);
/* Stores verdict unless the cache was flushed or the file invalidated
 * since the ticket (then returns false: the verdict may be stale). */
bool sc_cache_put(struct sc_cache *c, const struct sc_key *k, int verdict,
		  const struct sc_ticket *t);
/* Drops the entry for (dev, ino), whatever its attributes, and leaves a
 * tombstone that keeps a scan in flight from storing an older verdict;
 * true if an entry was dropped. */
bool sc_cache_invalidate(struct sc_cache *c, uint64_t dev, uint64_t ino);
void sc_cache_flush(struct sc_cache *c);

#endif
