/* SPDX-License-Identifier: MIT */
/*
 * metrics.c — metrics_file (metrics.h): the stats reply rendered for
 * Prometheus on a timer. The timer is armed at start and after each
 * reload (reload.c); the main loop (fltmgrd.c) polls it and writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ctl/prom.h"
#include "daemon/stats.h"
#include "daemon/dlog.h"
#include "daemon/metrics.h"

static int metrics_fd = -1; /* timerfd of metrics_file; -1: none yet */
static bool metrics_failed; /* the last write failed (logged once) */

int
metrics_timer_fd(void)
{
	return metrics_fd;
}

/*
 * metrics_file: the stats reply in the Prometheus text format
 * (src/ctl/prom.c), for node_exporter's textfile collector, rewritten
 * every metrics_interval seconds: written to a temporary file beside it
 * and renamed over it, so a reader never sees half a file. A failure is
 * logged once, and again after a success.
 */
void
metrics_write(struct daemon *d)
{
	const char *path = d->cfg ? d->cfg->metrics_file : NULL;
	struct json_object *stats;
	char tmp[PATH_MAX];
	FILE *f;
	int fd, r = 0;

	if (!path)
		return;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		r = -ENAMETOOLONG;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		goto out;
	}
	stats = stats_reply(d);
	r = prom_render(f, stats);
	json_object_put(stats);
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
out:
	if (r < 0 && !metrics_failed)
		dlog(FLT_LOG_ERROR,
		     "metrics_file %s: cannot write it: %s (under systemd it needs "
		     "ReadWritePaths= for its directory)",
		     path, strerror(-r));
	else if (r == 0 && metrics_failed)
		dlog(FLT_LOG_NOTICE, "metrics_file %s: written again", path);
	metrics_failed = r < 0;
}

/* (Re)arms the metrics timer for the configuration now in force, and
 * writes the file at once. */
void
metrics_arm(struct daemon *d)
{
	struct itimerspec its = { 0 };

	if (d->cfg && d->cfg->metrics_file) {
		int s = d->cfg->metrics_interval_s > 0 ? d->cfg->metrics_interval_s : 15;

		if (metrics_fd < 0)
			metrics_fd = timerfd_create(CLOCK_MONOTONIC,
						    TFD_CLOEXEC | TFD_NONBLOCK);
		its.it_interval.tv_sec = s;
		its.it_value.tv_sec = s;
		metrics_write(d);
	}
	if (metrics_fd >= 0)
		(void)timerfd_settime(metrics_fd, 0, &its, NULL);
}
