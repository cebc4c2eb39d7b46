/* SPDX-License-Identifier: MIT */
/*
 * runtime_dir.h — where fltmgr's sockets live (the control socket, every
 * port), by one rule for the daemon, both libraries, fltmc and the
 * services.
 */
#ifndef FLTMGR_RUNTIME_DIR_H
#define FLTMGR_RUNTIME_DIR_H

#define RUNTIME_DIR_DEFAULT "/run/fltmgr"

/* The first of: given (a command-line option, an API field) if not NULL;
 * $FLTMGR_RUNTIME_DIR if set and not empty; configured (fltmgrd's
 * runtime_dir; NULL elsewhere) if not NULL; RUNTIME_DIR_DEFAULT. Never
 * NULL. Whether a given value is usable (not empty, absolute, short
 * enough) is the caller's to say. */
const char *runtime_dir_resolve(const char *given, const char *configured);

#endif
