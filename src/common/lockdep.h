/*
 * Checked preconditions: "caller holds X" and "this transition is legal"
 * as statements the program verifies, not comments it trusts.
 *
 * lockdep_assert_held(m) aborts unless the calling thread holds the
 * pthread mutex m. glibc (checked on 2.36 for default, normal, recursive
 * and errorcheck mutexes, statically or dynamically initialised, and after
 * pthread_cond_*wait returns) keeps the owner's kernel thread id in
 * m->__data.__owner while the mutex is locked and 0 otherwise; a recursive
 * mutex keeps it through nested locks until the last unlock. So the check
 * is one load and gettid(), no bookkeeping in lock or unlock, and it
 * catches both "nobody holds it" and "another thread holds it". It does
 * not apply to robust, priority-inheritance or priority-protect mutexes
 * (none here) nor to rwlocks or spinlocks.
 *
 * assert_transition(var, to, from_mask) aborts unless var's current value
 * is one of the states in from_mask (built with STATE_BIT); it is written
 * on the line before the assignment of `to`, under whatever lock guards
 * var.
 *
 * Both report file:line, the function and the expression (the lock's name
 * as written at the call) on stderr and call abort(), so a test or a
 * sanitizer run stops at the first broken precondition with a core.
 *
 * They are on unless NDEBUG is defined, the same switch as assert(3).
 * meson defines NDEBUG with b_ndebug=if-release for buildtype=release
 * (bench/run's builds); debian/rules sets b_ndebug=true because debhelper
 * configures buildtype=plain. Those builds get no code at all: the
 * operand is only named inside sizeof, so it is type-checked and counts as
 * used but never evaluated. The developer and CI builds (debugoptimized,
 * and the ASan and TSan configurations of scripts/test) check.
 */
#ifndef FLT_LOCKDEP_H
#define FLT_LOCKDEP_H

#include <pthread.h>

#ifdef NDEBUG
#define FLT_LOCKDEP 0
#else
#define FLT_LOCKDEP 1
#endif

#define STATE_BIT(s) (1u << (unsigned)(s))

#if FLT_LOCKDEP

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noreturn, cold)) static inline void
lockdep_fail_held(const pthread_mutex_t *m, const char *name, const char *file, int line,
		  const char *func)
{
	fprintf(stderr, "%s:%d: %s: lock %s not held by this thread (tid %d, owner %d)\n",
		file, line, func, name, (int)gettid(),
		__atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED));
	abort();
}

static inline void
lockdep_check_held(const pthread_mutex_t *m, const char *name, const char *file, int line,
		   const char *func)
{
	if (__atomic_load_n(&m->__data.__owner, __ATOMIC_RELAXED) != (int)gettid())
		lockdep_fail_held(m, name, file, line, func);
}

__attribute__((noreturn, cold)) static inline void
lockdep_fail_transition(const char *var, unsigned from, unsigned to, unsigned from_mask,
			const char *file, int line, const char *func)
{
	fprintf(stderr,
		"%s:%d: %s: %s: transition %u -> %u from an unexpected state "
		"(allowed from mask %#x)\n",
		file, line, func, var, from, to, from_mask);
	abort();
}

#define lockdep_assert_held(m) lockdep_check_held((m), #m, __FILE__, __LINE__, __func__)

#define assert_transition(var, to, from_mask)                                        \
	do {                                                                         \
		unsigned lockdep_from_ = (unsigned)(var);                            \
		if (lockdep_from_ >= 32 || !((from_mask)&STATE_BIT(lockdep_from_)))  \
			lockdep_fail_transition(#var, lockdep_from_, (unsigned)(to), \
						(from_mask), __FILE__, __LINE__,     \
						__func__);                           \
	} while (0)

#else /* NDEBUG: no code */

#define lockdep_assert_held(m)                ((void)sizeof((m)->__data.__owner))
#define assert_transition(var, to, from_mask) ((void)sizeof((var) + (to) + (from_mask)))

#endif

#endif
