/* SPDX-License-Identifier: MIT */
/*
 * test_proc_cache.c — the engine's process-details cache on its own, with
 * injected keys, program identities and clocks (no root, no /proc): a
 * recycled pid never finds the old process's entry, an exec drops the
 * entry, entries expire, a set is bounded and evicts its least recently
 * used entry, and concurrent lookups and fills never return details mixed
 * from two fills (run under TSan with the concurrency suite).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#include "engine/proc_cache.h"

#define MS 1000000ll

static struct proc_exe_id
exe_id(uint64_t ino, int64_t ctime)
{
	return (struct proc_exe_id){ .dev = 8, .ino = ino, .ctime_sec = ctime };
}

static struct proc_details
details(uint64_t exe_ino, uid_t uid, const char *comm)
{
	struct proc_details d = { .exe_id = exe_id(exe_ino, 1000),
				  .uid = uid,
				  .euid = uid,
				  .gid = uid + 1,
				  .egid = uid + 1 };

	snprintf(d.comm, sizeof(d.comm), "%s", comm);
	return d;
}

static void
hit_returns_what_was_stored(void **state)
{
	struct proc_cache *pc = proc_cache_new();
	struct proc_key k = { .pid = 100, .ino = 7 };
	struct proc_details d = details(55, 1000, "bash"), out;
	struct proc_exe_id id = exe_id(55, 1000);
	char exe[64];

	(void)state;
	assert_non_null(pc);
	assert_int_equal(proc_cache_lookup(pc, &k, &id, 10 * MS, &out, exe, sizeof(exe)),
			 PROC_MISS);
	proc_cache_insert(pc, &k, 10 * MS, &d, "/usr/bin/bash");
	memset(&out, 0, sizeof(out));
	assert_int_equal(proc_cache_lookup(pc, &k, &id, 11 * MS, &out, exe, sizeof(exe)),
			 PROC_HIT);
	assert_string_equal(exe, "/usr/bin/bash");
	assert_string_equal(out.comm, "bash");
	assert_int_equal(out.uid, 1000);
	assert_int_equal(out.egid, 1001);
	assert_true(out.exe_id.ino == id.ino && out.exe_id.dev == id.dev &&
		    out.exe_id.ctime_sec == id.ctime_sec);
	/* A buffer too small for the path: a miss, never a cut path. */
	assert_int_equal(proc_cache_lookup(pc, &k, &id, 11 * MS, &out, exe, 5),
			 PROC_MISS);
	proc_cache_free(pc);
}

/* The same pid with another pidfs inode is another process: it must not
 * get the first one's details, even running the same program. */
static void
recycled_pid_never_finds_the_old_process(void **state)
{
	struct proc_cache *pc = proc_cache_new();
	struct proc_key old = { .pid = 4242, .ino = 900 },
			new = { .pid = 4242, .ino = 901 };
	struct proc_details d_old = details(55, 1000, "old"),
			    d_new = details(55, 0, "new");
	struct proc_exe_id id = exe_id(55, 1000);
	struct proc_details out;
	struct proc_cache_stats st;
	char exe[64];

	(void)state;
	proc_cache_insert(pc, &old, 1 * MS, &d_old, "/bin/prog");
	assert_int_equal(proc_cache_lookup(pc, &new, &id, 2 * MS, &out, exe, sizeof(exe)),
			 PROC_MISS);
	proc_cache_insert(pc, &new, 2 * MS, &d_new, "/bin/prog");
	assert_int_equal(proc_cache_lookup(pc, &new, &id, 3 * MS, &out, exe, sizeof(exe)),
			 PROC_HIT);
	assert_string_equal(out.comm, "new");
	assert_int_equal(out.uid, 0);
	/* The old entry is still the old process's own. */
	assert_int_equal(proc_cache_lookup(pc, &old, &id, 3 * MS, &out, exe, sizeof(exe)),
			 PROC_HIT);
	assert_string_equal(out.comm, "old");
	proc_cache_get_stats(pc, &st);
	assert_int_equal(st.invalidations, 0);
	proc_cache_free(pc);
}

/* After an exec the process runs another file (or a new file with a
 * reused inode number, which has another ctime): the entry is dropped. */
static void
exec_drops_the_entry(void **state)
{
	struct proc_cache *pc = proc_cache_new();
	struct proc_key k = { .pid = 100, .ino = 7 };
	struct proc_details d = details(55, 1000, "sh"), out;
	struct proc_exe_id same = exe_id(55, 1000), other = exe_id(56, 1000),
			   reused = exe_id(55, 2000);
	struct proc_cache_stats st;
	char exe[64];

	(void)state;
	proc_cache_insert(pc, &k, 1 * MS, &d, "/bin/sh");
	assert_int_equal(
		proc_cache_lookup(pc, &k, &other, 2 * MS, &out, exe, sizeof(exe)),
		PROC_STALE);
	/* Dropped: not even the old program finds it any more. */
	assert_int_equal(proc_cache_lookup(pc, &k, &same, 2 * MS, &out, exe, sizeof(exe)),
			 PROC_MISS);
	proc_cache_insert(pc, &k, 3 * MS, &d, "/bin/sh");
	assert_int_equal(
		proc_cache_lookup(pc, &k, &reused, 4 * MS, &out, exe, sizeof(exe)),
		PROC_STALE);
	proc_cache_get_stats(pc, &st);
	assert_int_equal(st.invalidations, 2);
	proc_cache_free(pc);
}

static void
entries_expire_after_the_ttl(void **state)
{
	struct proc_cache *pc = proc_cache_new();
	struct proc_key k = { .pid = 100, .ino = 7 };
	struct proc_details d = details(55, 1000, "x"), out;
	struct proc_exe_id id = exe_id(55, 1000);
	const int64_t t0 = 5000 * MS, ttl = PROC_CACHE_TTL_MS * MS;
	char exe[64];

	(void)state;
	proc_cache_insert(pc, &k, t0, &d, "/x");
	assert_int_equal(
		proc_cache_lookup(pc, &k, &id, t0 + ttl - 1, &out, exe, sizeof(exe)),
		PROC_HIT);
	assert_int_equal(proc_cache_lookup(pc, &k, &id, t0 + ttl, &out, exe, sizeof(exe)),
			 PROC_MISS);
	/* Details read earlier than the stored ones do not replace them. */
	proc_cache_insert(pc, &k, t0 + ttl, &d, "/new");
	proc_cache_insert(pc, &k, t0 + 1, &d, "/older");
	assert_int_equal(
		proc_cache_lookup(pc, &k, &id, t0 + ttl + 1, &out, exe, sizeof(exe)),
		PROC_HIT);
	assert_string_equal(exe, "/new");
	proc_cache_free(pc);
}

/* Keys of one set: the set holds PROC_CACHE_WAYS of them and evicts the
 * one used least recently. */
static void
a_full_set_evicts_its_least_recently_used(void **state)
{
	struct proc_cache *pc = proc_cache_new();
	struct proc_key keys[PROC_CACHE_WAYS + 1];
	struct proc_details d = details(55, 1, "k"), out;
	struct proc_exe_id id = exe_id(55, 1000);
	struct proc_cache_stats st;
	size_t n = 0, target;
	int hits = 0;
	char exe[64];

	(void)state;
	keys[0] = (struct proc_key){ .pid = 1, .ino = 1 };
	target = proc_cache_set_index(&keys[0]);
	n = 1;
	for (uint64_t ino = 2; n < PROC_CACHE_WAYS + 1 && ino < 1000000; ino++) {
		struct proc_key k = { .pid = 1, .ino = ino };

		if (proc_cache_set_index(&k) == target)
			keys[n++] = k;
	}
	assert_int_equal(n, PROC_CACHE_WAYS + 1);
	for (size_t i = 0; i < PROC_CACHE_WAYS; i++)
		proc_cache_insert(pc, &keys[i], 1 * MS, &d, "/k");
	/* Use the first: the second is now the least recently used. */
	assert_int_equal(
		proc_cache_lookup(pc, &keys[0], &id, 2 * MS, &out, exe, sizeof(exe)),
		PROC_HIT);
	proc_cache_insert(pc, &keys[PROC_CACHE_WAYS], 3 * MS, &d, "/k");
	assert_int_equal(
		proc_cache_lookup(pc, &keys[1], &id, 4 * MS, &out, exe, sizeof(exe)),
		PROC_MISS);
	for (size_t i = 0; i < PROC_CACHE_WAYS + 1; i++)
		hits += proc_cache_lookup(pc, &keys[i], &id, 4 * MS, &out, exe,
					  sizeof(exe)) == PROC_HIT;
	assert_int_equal(hits, PROC_CACHE_WAYS);
	proc_cache_get_stats(pc, &st);
	assert_int_equal(st.evictions, 1);
	proc_cache_free(pc);
}

/* However many processes, the cache holds at most SETS * WAYS. */
static void
the_cache_is_bounded(void **state)
{
	struct proc_cache *pc = proc_cache_new();
	struct proc_details d = details(55, 1, "k"), out;
	struct proc_exe_id id = exe_id(55, 1000);
	struct proc_cache_stats st;
	const int n = 20000;
	int hits = 0;
	char exe[64];

	(void)state;
	for (int i = 0; i < n; i++) {
		struct proc_key k = { .pid = 1000 + i, .ino = 5000 + (uint64_t)i };

		proc_cache_insert(pc, &k, 1 * MS, &d, "/k");
	}
	for (int i = 0; i < n; i++) {
		struct proc_key k = { .pid = 1000 + i, .ino = 5000 + (uint64_t)i };

		hits += proc_cache_lookup(pc, &k, &id, 2 * MS, &out, exe, sizeof(exe)) ==
			PROC_HIT;
	}
	assert_true(hits <= PROC_CACHE_SETS * PROC_CACHE_WAYS);
	assert_true(hits >= PROC_CACHE_SETS * PROC_CACHE_WAYS / 2);
	proc_cache_get_stats(pc, &st);
	assert_int_equal(st.evictions, (uint64_t)(n - hits));
	proc_cache_free(pc);
}

/* ---- concurrency ---- */

#define THREADS 4
#define KEYS    300
#define ROUNDS  60000

static struct proc_cache *g_pc;
static atomic_int g_mixed, g_hits;

/* Everything about (key, program) is derived from both, so a hit that
 * mixes two fills, or another key's, shows. */
static void
fill_for(int key, int prog, struct proc_details *d, char *exe, size_t cap)
{
	*d = details(100 + (uint64_t)prog, (uid_t)(key * 10 + prog), "");
	snprintf(d->comm, sizeof(d->comm), "k%d-p%d", key, prog);
	snprintf(exe, cap, "/bin/prog-%d-%d%.*s", key, prog, key % 40,
		 "........................................");
}

static bool
same_details(const struct proc_details *a, const struct proc_details *b)
{
	return a->exe_id.dev == b->exe_id.dev && a->exe_id.ino == b->exe_id.ino &&
	       a->exe_id.ctime_sec == b->exe_id.ctime_sec &&
	       a->exe_id.ctime_nsec == b->exe_id.ctime_nsec && a->uid == b->uid &&
	       a->euid == b->euid && a->gid == b->gid && a->egid == b->egid &&
	       !strcmp(a->comm, b->comm);
}

static void *
hammer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (int i = 0; i < ROUNDS; i++) {
		int key = rand_r(&seed) % KEYS, prog = rand_r(&seed) % 2;
		struct proc_key k = { .pid = key + 1, .ino = 77 + (uint64_t)key };
		struct proc_details want, got;
		char want_exe[128], got_exe[128];
		struct proc_exe_id id = exe_id(100 + (uint64_t)prog, 1000);

		fill_for(key, prog, &want, want_exe, sizeof(want_exe));
		switch (proc_cache_lookup(g_pc, &k, &id, tu_mono_ns(), &got, got_exe,
					  sizeof(got_exe))) {
		case PROC_HIT:
			atomic_fetch_add(&g_hits, 1);
			if (!same_details(&got, &want) || strcmp(got_exe, want_exe))
				atomic_fetch_add(&g_mixed, 1);
			break;
		default:
			proc_cache_insert(g_pc, &k, tu_mono_ns(), &want, want_exe);
			break;
		}
	}
	return NULL;
}

static void
concurrent_lookups_and_fills_never_mix(void **state)
{
	pthread_t t[THREADS];
	struct proc_cache_stats st;

	(void)state;
	g_pc = proc_cache_new();
	assert_non_null(g_pc);
	atomic_store(&g_mixed, 0);
	atomic_store(&g_hits, 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(
			pthread_create(&t[i], NULL, hammer, (void *)(uintptr_t)(i + 1)),
			0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	proc_cache_get_stats(g_pc, &st);
	print_message("%d hits, %llu invalidations, %llu evictions\n",
		      atomic_load(&g_hits), (unsigned long long)st.invalidations,
		      (unsigned long long)st.evictions);
	assert_int_equal(atomic_load(&g_mixed), 0);
	/* The workload alternates programs per key: both outcomes happen. */
	assert_true(atomic_load(&g_hits) > 0);
	assert_true(st.invalidations > 0);
	proc_cache_free(g_pc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hit_returns_what_was_stored),
		cmocka_unit_test(recycled_pid_never_finds_the_old_process),
		cmocka_unit_test(exec_drops_the_entry),
		cmocka_unit_test(entries_expire_after_the_ttl),
		cmocka_unit_test(a_full_set_evicts_its_least_recently_used),
		cmocka_unit_test(the_cache_is_bounded),
		cmocka_unit_test(concurrent_lookups_and_fills_never_mix),
	};

	return cmocka_run_group_tests_name("proc_cache", tests, NULL, NULL);
}
