/* SPDX-License-Identifier: MIT */
/*
 * exclude.h — the one part of the engine the ports call: a connection's
 * hold on the exclusion of its peer process (flt_exclude_connection_process(),
 * exclude.c). Kept apart from engine.h so the ports see this and nothing
 * else of the engine; the engine never calls the ports.
 */
#ifndef FLTMGR_ENGINE_EXCLUDE_H
#define FLTMGR_ENGINE_EXCLUDE_H

#include <stdint.h>
#include <sys/types.h>

#include <fltmgr/filter.h>

/* A connection's hold on the exclusion of its peer: pid, the process
 * behind pidfd (duplicated; -1: pidfd_open(pid)). Returns the entry's id
 * (> 0) for exclusion_release(), or -ESRCH (that process has exited),
 * -ENOMEM, -EINVAL. */
int64_t exclusion_hold(flt_filter *f, pid_t pid, int pidfd);
/* Drops a hold; the exclusion ends with its last hold unless
 * flt_exclude_process() asked for it too. A hold whose process has exited
 * (its entry gone) is nothing to drop. */
void exclusion_release(flt_filter *f, uint64_t id);

#endif
