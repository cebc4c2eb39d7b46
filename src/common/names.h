/* SPDX-License-Identifier: MIT */
/*
 * names.h — what a filter's name, a port's name and an altitude may be,
 * for everyone who takes one: the manager (flt_register_filter), the
 * service library (a port to connect to), fltmgrd's configuration and
 * control requests.
 */
#ifndef FLTMGR_NAMES_H
#define FLTMGR_NAMES_H

#include <stdbool.h>

/* A filter's or a port's name: 1 to FLT_PORT_NAME_MAX (64) of
 * [A-Za-z0-9._-], not "." or "..": it becomes a file name in the runtime
 * directory. NULL is not a name. */
bool name_valid(const char *s);

/* An altitude, as on Windows: a decimal string, digits with at most one
 * '.', which is neither first nor last, and under 32 characters. NULL is
 * not an altitude. */
bool altitude_valid(const char *s);

#endif
