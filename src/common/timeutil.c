/* SPDX-License-Identifier: MIT */
/* timeutil.c — CLOCK_MONOTONIC arithmetic; see timeutil.h. */
#include "timeutil.h"

int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
deadline_from_ms(int timeout_ms)
{
	if (timeout_ms < 0)
		return DEADLINE_NEVER;
	return now_ns() + (int64_t)timeout_ms * 1000000;
}

int
deadline_poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline == DEADLINE_NEVER)
		return -1;
	left = deadline - now_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

struct timespec
deadline_timespec(int64_t deadline)
{
	struct timespec ts;

	ts.tv_sec = deadline / 1000000000;
	ts.tv_nsec = deadline % 1000000000;
	return ts;
}
