/* SPDX-License-Identifier: MIT */
/*
 * test_lockdep.c — the checked preconditions of common/lockdep.h.
 *
 * lockdep_assert_held() must pass when the calling thread holds the
 * mutex (normal, errorcheck, recursive nested, statically initialised,
 * back from a condition wait) and abort when nobody holds it, when another
 * thread holds it, and after the unlock; assert_transition() must pass a
 * listed state and abort on another. Each abort is run in a forked child
 * whose death by SIGABRT, and whose message naming the lock, the test
 * checks. In a build with NDEBUG the checks compile to nothing: the
 * program says so and exits 77 (skipped).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/lockdep.h"

#if FLT_LOCKDEP

static pthread_mutex_t static_lock = PTHREAD_MUTEX_INITIALIZER;

enum toy_state { TOY_A = 0, TOY_B, TOY_C };

static void
init_typed(pthread_mutex_t *m, int type)
{
	pthread_mutexattr_t a;

	assert_int_equal(pthread_mutexattr_init(&a), 0);
	assert_int_equal(pthread_mutexattr_settype(&a, type), 0);
	assert_int_equal(pthread_mutex_init(m, &a), 0);
	pthread_mutexattr_destroy(&a);
}

/* Runs fn(arg) in a child; true if the child died of SIGABRT with a
 * message on stderr containing `want`. */
static bool
aborts_with(void (*fn)(void *), void *arg, const char *want)
{
	char out[1024] = "";
	size_t n = 0;
	int fds[2], status;
	ssize_t k;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		fn(arg);
		_exit(0); /* not reached if the check fired */
	}
	close(fds[1]);
	while (n < sizeof(out) - 1 &&
	       (k = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	printf("child: %s", n ? out : "(no message)\n");
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(out, want);
}

static void
test_held_passes(void **state)
{
	static const int types[] = { PTHREAD_MUTEX_DEFAULT, PTHREAD_MUTEX_NORMAL,
				     PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_RECURSIVE };
	(void)state;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		pthread_mutex_t m;

		init_typed(&m, types[i]);
		pthread_mutex_lock(&m);
		lockdep_assert_held(&m);
		pthread_mutex_unlock(&m);
		pthread_mutex_destroy(&m);
	}
	pthread_mutex_lock(&static_lock);
	lockdep_assert_held(&static_lock);
	pthread_mutex_unlock(&static_lock);
}

/* The port lock is recursive: still held after an inner unlock. */
static void
test_recursive_nested(void **state)
{
	pthread_mutex_t m;
	(void)state;

	init_typed(&m, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_lock(&m);
	pthread_mutex_lock(&m);
	lockdep_assert_held(&m);
	pthread_mutex_unlock(&m);
	lockdep_assert_held(&m);
	pthread_mutex_unlock(&m);
	pthread_mutex_destroy(&m);
}

/* A condition wait gives the mutex back before it returns. */
static void
test_after_cond_wait(void **state)
{
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct timespec ts;
	(void)state;

	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&m);
	assert_int_equal(pthread_cond_timedwait(&cond, &m, &ts), ETIMEDOUT);
	lockdep_assert_held(&m);
	pthread_mutex_unlock(&m);
}

static void
check_unlocked(void *arg)
{
	pthread_mutex_t *m = arg;

	lockdep_assert_held(m);
}

static void
check_after_unlock(void *arg)
{
	pthread_mutex_t *m = arg;

	pthread_mutex_lock(m);
	pthread_mutex_unlock(m);
	lockdep_assert_held(m);
}

static void
check_recursive_released(void *arg)
{
	pthread_mutex_t m;
	(void)arg;

	init_typed(&m, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_lock(&m);
	pthread_mutex_lock(&m);
	pthread_mutex_unlock(&m);
	pthread_mutex_unlock(&m);
	lockdep_assert_held(&m);
}

static pthread_mutex_t other_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool other_holds;

static void *
holder(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&other_lock);
	pthread_mutex_lock(&gate);
	other_holds = true;
	pthread_cond_signal(&gate_cond);
	pthread_mutex_unlock(&gate);
	pause(); /* holds other_lock until the process dies */
	return NULL;
}

static void
check_other_thread_holds(void *arg)
{
	pthread_t t;
	(void)arg;

	pthread_create(&t, NULL, holder, NULL);
	pthread_mutex_lock(&gate);
	while (!other_holds)
		pthread_cond_wait(&gate_cond, &gate);
	pthread_mutex_unlock(&gate);
	lockdep_assert_held(&other_lock);
}

static void
test_not_held_aborts(void **state)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	(void)state;

	assert_true(aborts_with(check_unlocked, &m, "lock m not held"));
	assert_true(aborts_with(check_after_unlock, &m, "lock m not held"));
	assert_true(aborts_with(check_recursive_released, NULL, "lock &m not held"));
	assert_true(
		aborts_with(check_other_thread_holds, NULL, "lock &other_lock not held"));
	/* The message says where: this file. */
	assert_true(aborts_with(check_unlocked, &m, "test_lockdep.c:"));
}

static void
test_transition_allowed(void **state)
{
	enum toy_state s = TOY_A;
	(void)state;

	assert_transition(s, TOY_B, STATE_BIT(TOY_A));
	s = TOY_B;
	assert_transition(s, TOY_C, STATE_BIT(TOY_A) | STATE_BIT(TOY_B));
	s = TOY_C;
	assert_int_equal(s, TOY_C);
}

static void
check_bad_transition(void *arg)
{
	enum toy_state s = TOY_C;
	(void)arg;

	assert_transition(s, TOY_B, STATE_BIT(TOY_A));
}

static void
test_transition_aborts(void **state)
{
	(void)state;
	assert_true(aborts_with(check_bad_transition, NULL, "s: transition 2 -> 1"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_held_passes),
		cmocka_unit_test(test_recursive_nested),
		cmocka_unit_test(test_after_cond_wait),
		cmocka_unit_test(test_not_held_aborts),
		cmocka_unit_test(test_transition_allowed),
		cmocka_unit_test(test_transition_aborts),
	};

	return cmocka_run_group_tests_name("lockdep", tests, NULL, NULL);
}

#else

int
main(void)
{
	printf("SKIP: lockdep checks are compiled out in this build (NDEBUG is "
	       "defined: buildtype=release or b_ndebug=true)\n");
	return 77;
}

#endif
