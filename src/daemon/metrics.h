/* SPDX-License-Identifier: MIT */
/*
 * metrics.h — metrics_file: the stats reply (commands.h) in the
 * Prometheus text format, rewritten every metrics_interval seconds
 * (metrics.c). Main thread only.
 */
#ifndef FLTMGR_METRICS_H
#define FLTMGR_METRICS_H

#include "daemon/daemon.h"

/* (Re)arms the timer for the configuration now in force (d->cfg) and
 * writes the file at once; disarms it if there is no metrics_file. */
void metrics_arm(struct daemon *d);
/* Writes the file now (the timer fired). */
void metrics_write(struct daemon *d);
/* The timer to poll; -1 until a metrics_file was first configured. */
int metrics_timer_fd(void);

#endif
