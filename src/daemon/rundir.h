/* SPDX-License-Identifier: MIT */
/*
 * rundir.h — the runtime directory: created if missing, checked (a root
 * daemon will not put its sockets where others can replace them), and
 * locked, so exactly one fltmgrd runs per runtime directory.
 */
#ifndef FLTMGR_RUNDIR_H
#define FLTMGR_RUNDIR_H

#include <sys/types.h>

/*
 * Creates dir (0755, parents too) if missing, checks it is a directory
 * owned by us and not writable by group or others, and takes the lock
 * <dir>/fltmgrd.pid. Returns the lock descriptor (keep it open), -EBUSY
 * with *ret_holder set when another daemon holds it, or another negative
 * errno; *ret_why explains (free() it).
 */
int rundir_lock(const char *dir, pid_t *ret_holder, char **ret_why);
/* Records our pid in the lock file (after a fork, the child's). */
int rundir_write_pid(int lock_fd);
void rundir_unlock(int lock_fd);

#endif
