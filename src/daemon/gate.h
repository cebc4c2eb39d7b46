/* SPDX-License-Identifier: MIT */
/*
 * gate.h — holding a fail-closed filter's instances shut while it is
 * restarted.
 *
 * A filter's name and its ports' names are taken until it unregisters, so
 * a restarted filter cannot be registered before the old one is gone. In
 * between, nothing would answer for its instances but the kernel's
 * default, which allows. A gate is a small filter of the daemon's own,
 * registered through the public API just above the held filter's altitude
 * (above it, below every filter that is higher) on the same instances,
 * whose pre callbacks for OPEN, EXEC and READ answer deny at once: while
 * it runs, the held filter's instances get exactly what its
 * default_verdict = deny promises when the filter is not there.
 *
 * The daemon cannot see which operations the held filter intercepts (the
 * public API does not say), so the gate takes all three: a filter without
 * a READ callback also has reads in its instances denied during the swap,
 * and a deny filter with no pre callback at all is held as well.
 */
#ifndef FLTMGR_GATE_H
#define FLTMGR_GATE_H

#include <fltmgr/filter.h>

struct gate;

/*
 * Starts a gate over every instance held has now. Returns 0 (*ret is NULL
 * when held has no instance: nothing to hold), or a negative errno with
 * *ret_why set (free() it); then nothing was changed.
 */
int gate_hold(flt_manager *m, flt_filter *held, struct gate **ret, char **ret_why);

/* The gate's own filter (its instances are the held ones). */
flt_filter *gate_filter(struct gate *g);

/* Stops and frees the gate (NULL: nothing). */
void gate_release(struct gate *g);

#endif
