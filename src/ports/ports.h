/* SPDX-License-Identifier: MIT */
/*
 * ports.h — what the manager asks of the ports (the rest of their
 * interface is public, <fltmgr/filter.h>; their own rules are in
 * ports/internal.h).
 */
#ifndef FLTMGR_PORTS_H
#define FLTMGR_PORTS_H

#include <fltmgr/filter.h>

/* The ports' share of unregistering a filter, in order: refuse new ports
 * and connections (filter->closing), close every server port, disconnect
 * every connection (each connection thread runs the disconnect callback
 * and leaves), and wait until no connection thread of the filter is left.
 * Called once, by flt_unregister_filter(), after the engine has stopped
 * the filter; the finished threads are then the reaper's (core.h). */
void ports_filter_teardown(flt_filter *filter);

#endif
