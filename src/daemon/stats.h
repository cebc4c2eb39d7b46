/* SPDX-License-Identifier: MIT */
/*
 * stats.h — the stats reply and the pieces of it other commands share.
 * Depends on the daemon's state only; calls nothing above it.
 */
#ifndef FLTMGR_STATS_H
#define FLTMGR_STATS_H

#include <stdbool.h>

#include <json-c/json.h>

#include "daemon/daemon.h"

/* The stats reply (docs/control.md), also rendered into metrics_file. */
struct json_object *stats_reply(struct daemon *d);
/* The running filters sorted by altitude, highest first (fltmc's
 * order): a malloc'ed array (free() it), NULL without memory. */
struct running_filter **sorted_filters(struct daemon *d);
/* Appends each server port of every filter to the array a: its counters;
 * full: every counter (stats), else its clients and limit (ports). */
void stats_add_ports(struct daemon *d, struct json_object *a, bool full);

#endif
