/* SPDX-License-Identifier: MIT */
/*
 * proc_cache.h — the engine's cache of process details (exe, comm,
 * credentials), so that the events of one process do not each read /proc.
 *
 * The cache only stores and checks; resolve.c decides what the key and
 * the checks are (docs/engine.md section 2.3):
 *   key      the pid and the inode of the process's pidfd on pidfs, which
 *            names one process for the whole boot (a recycled pid gets a
 *            new inode, so it can never find the old process's entry);
 *   exe_id   the identity of the program file (/proc/PID/exe stat'ed) when
 *            the entry was filled: a lookup with a different one means the
 *            process has exec'd, and drops the entry (an invalidation);
 *   ttl      entries older than PROC_CACHE_TTL_MS are not returned, which
 *            bounds how stale comm (prctl, or an exec of the same file
 *            under another name) and, without PIDFD_GET_INFO, the
 *            credentials can be.
 *
 * Fixed size: PROC_CACHE_SETS sets of PROC_CACHE_WAYS entries, LRU within
 * a set, one mutex per set, never held across a system call. The exe
 * strings are allocated (and freed) outside the locks.
 */
#ifndef FLTMGR_PROC_CACHE_H
#define FLTMGR_PROC_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROC_CACHE_SETS   64
#define PROC_CACHE_WAYS   4
#define PROC_CACHE_TTL_MS 50

struct proc_key {
	pid_t pid;
	uint64_t ino; /* of the process's pidfd (pidfs) */
};

/* The program file as stat(/proc/PID/exe) sees it. The ctime guards
 * against a freed inode number reused by a new file. */
struct proc_exe_id {
	uint64_t dev, ino;
	int64_t ctime_sec;
	long ctime_nsec;
};

struct proc_details {
	struct proc_exe_id exe_id;
	uid_t uid, euid;
	gid_t gid, egid;
	char comm[17];
};

enum proc_lookup {
	PROC_MISS,  /* no entry, or an expired one */
	PROC_HIT,   /* *out and exe filled */
	PROC_STALE, /* an entry with another exe_id: dropped (exec) */
};

struct proc_cache_stats {
	uint64_t hits, misses, invalidations, evictions;
};

struct proc_cache;

struct proc_cache *proc_cache_new(void);
void proc_cache_free(struct proc_cache *pc);

/* With exe_id the program the process runs now, and now_ns from
 * CLOCK_MONOTONIC. On a hit, copies the details to *out and the exe path
 * to exe (cap bytes, NUL terminated; a longer one is a miss). Counts
 * invalidations only; hits and misses are counted by the caller with
 * proc_cache_count(), once it knows whether it used the entry. */
enum proc_lookup proc_cache_lookup(struct proc_cache *pc, const struct proc_key *key,
				   const struct proc_exe_id *exe_id, int64_t now_ns,
				   struct proc_details *out, char *exe, size_t cap);

/* Stores (or replaces) the entry for key; now_ns must be taken before the
 * details were read, so the age limit covers the reading. Takes a free or
 * expired entry of the key's set, else evicts its least recently used. */
void proc_cache_insert(struct proc_cache *pc, const struct proc_key *key, int64_t now_ns,
		       const struct proc_details *d, const char *exe);

/* The set a key belongs to (tests use it to fill one set). */
size_t proc_cache_set_index(const struct proc_key *key);

/* One resolution: served from the cache (hit) or read from /proc. */
void proc_cache_count(struct proc_cache *pc, bool hit);
void proc_cache_get_stats(struct proc_cache *pc, struct proc_cache_stats *ret);

#endif /* FLTMGR_PROC_CACHE_H */
