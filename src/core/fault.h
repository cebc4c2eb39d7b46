/* SPDX-License-Identifier: MIT */
/*
 * fault.h — allocation failures on demand, for the fault-injection tests
 * (tests/test_faults.c). Compiled in always and inert unless, when the
 * process starts, its environment holds
 *
 *   FLTMGR_FAULT_ALLOC=SITE:N[,SITE:N]   every N-th allocation at SITE fails
 *
 * with SITE one of "perm" (a permission event, engine/perm.c), "conn"
 * (an accepted connection, ports/connection.c) or "wake" (the engine's
 * wake-up file: its permission readers then poll, engine/perm.c). The variable is read once
 * (secure_getenv: never in a set-id process); when inert, a call costs a
 * pthread_once check and one atomic load. Only root can set a root daemon's environment,
 * and all this can do is make fltmgrd behave as it does when memory runs
 * out.
 */
#ifndef FLTMGR_FAULT_H
#define FLTMGR_FAULT_H

#include <stdbool.h>

enum fault_site {
	FAULT_PERM_EVENT,
	FAULT_CONNECTION,
	FAULT_WAKE_FILE, /* the engine's wake-up file (engine/perm.c) */
	FAULT_N_SITES,
};

/* True if the allocation the caller is about to make must fail. */
bool fault_alloc_fails(enum fault_site site);

#endif
