/* SPDX-License-Identifier: MIT */
/* efd.h — eventfd as a wake-up flag: signal makes it readable (and it
 * stays readable until drained), which wakes every poller at once. */
#ifndef FLTMGR_EFD_H
#define FLTMGR_EFD_H

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

static inline int
eventfd_signal(int efd)
{
	uint64_t one = 1;

	return write(efd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

static inline void
eventfd_drain(int efd)
{
	uint64_t v;

	if (read(efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing to drain */
	}
}

#endif
