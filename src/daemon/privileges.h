/* SPDX-License-Identifier: MIT */
/*
 * privileges.h — fltmgrd gives up every capability it does not need at run
 * time, once, before it creates any thread or opens anything. See
 * docs/security.md section 5 for the set and the reasons.
 */
#ifndef FLTMGR_PRIVILEGES_H
#define FLTMGR_PRIVILEGES_H

#include <stdint.h>

/* The capabilities fltmgrd keeps, as a mask of (1 << CAP_*). */
uint64_t privileges_kept_mask(void);

/*
 * Reduces the calling thread (and so every thread created later) to the
 * kept set: effective and permitted to those of the kept capabilities it
 * has, inheritable and ambient empty, the bounding set to the kept set
 * (when CAP_SETPCAP allows; otherwise the bounding set is only checked and
 * any extra capability is logged), SECBIT_NOROOT locked (same condition)
 * and no_new_privs. Logs what it kept, at notice level, and each kept
 * capability that was missing, with its consequence, at warning level.
 * Call it before any other thread exists: capabilities are per thread.
 * Returns 0, or a negative errno if a step failed (then the process may
 * hold any subset of what it had, never more).
 */
int privileges_drop(void);

#endif
