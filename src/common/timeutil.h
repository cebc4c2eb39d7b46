/* SPDX-License-Identifier: MIT */
/*
 * timeutil.h — monotonic deadlines for the one-timeout-covers-everything
 * rule: a call computes its deadline once and every wait inside it uses
 * what is left.
 */
#ifndef FLTMGR_TIMEUTIL_H
#define FLTMGR_TIMEUTIL_H

#include <stdint.h>
#include <time.h>

#define DEADLINE_NEVER INT64_MAX

int64_t now_ns(void);
/* timeout_ms < 0: DEADLINE_NEVER. */
int64_t deadline_from_ms(int timeout_ms);
/* Milliseconds left for poll(): -1 for never, 0 when passed (rounded up). */
int deadline_poll_ms(int64_t deadline);
/* CLOCK_MONOTONIC timespec for pthread_cond_timedwait (condattr set to it). */
struct timespec deadline_timespec(int64_t deadline);

#endif /* FLTMGR_TIMEUTIL_H */
