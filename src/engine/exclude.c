/* SPDX-License-Identifier: MIT */
/*
 * exclude.c — flt_exclude_process(): the processes whose events a filter
 * does not see (its own services, typically, excluded in the connect
 * callback).
 *
 * An exclusion follows the process, not its pid number: it holds a pidfd
 * taken when the process was excluded, and ends by itself when that
 * process has exited (the pidfd polls readable), whether or not anyone
 * calls flt_include_process(). A pid reused by a later process is never
 * excluded: while the excluded process lives (a zombie included) its
 * pid cannot be given to another, and once it has exited its entry is
 * dropped at the first event that names the pid.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/engine.h"

/* Index of pid in fe->excluded, or -1. Caller holds fe->excl_lock. */
static ssize_t
index_locked(const struct filter_engine *fe, pid_t pid)
{
	for (size_t i = 0; i < fe->n_excluded; i++)
		if (fe->excluded[i].pid == pid)
			return (ssize_t)i;
	return -1;
}

static void
remove_locked(struct filter_engine *fe, size_t i)
{
	if (fe->excluded[i].pidfd >= 0)
		close(fe->excluded[i].pidfd);
	fe->excluded[i] = fe->excluded[--fe->n_excluded];
	atomic_store(&fe->n_excluded_hint, fe->n_excluded);
}

static bool
exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return pidfd >= 0 && poll(&p, 1, 0) != 0;
}

bool
filter_excludes(flt_filter *f, pid_t pid)
{
	struct filter_engine *fe = f->eng;
	bool found = false;
	ssize_t i;

	pthread_mutex_lock(&fe->excl_lock);
	i = index_locked(fe, pid);
	if (i >= 0) {
		found = !exited(fe->excluded[i].pidfd);
		if (!found)
			remove_locked(fe, (size_t)i); /* that process is gone */
	}
	pthread_mutex_unlock(&fe->excl_lock);
	return found;
}

int
flt_exclude_process(flt_filter *filter, pid_t pid)
{
	struct filter_engine *fe;
	struct exclusion *n;
	ssize_t i;
	int pidfd;

	if (!filter || !filter->eng || pid <= 0)
		return -EINVAL;
	fe = filter->eng;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 && errno != ENOSYS)
		return -errno; /* ESRCH: no such process, nothing to exclude */
	pthread_mutex_lock(&fe->excl_lock);
	i = index_locked(fe, pid);
	if (i >= 0 && !exited(fe->excluded[i].pidfd)) {
		/* Still the same process: a live pid is never reused. */
		pthread_mutex_unlock(&fe->excl_lock);
		if (pidfd >= 0)
			close(pidfd);
		return 0;
	}
	if (i >= 0)
		remove_locked(fe, (size_t)i);
	n = realloc(fe->excluded, (fe->n_excluded + 1) * sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&fe->excl_lock);
		if (pidfd >= 0)
			close(pidfd);
		return -ENOMEM;
	}
	fe->excluded = n;
	fe->excluded[fe->n_excluded++] = (struct exclusion){ .pid = pid, .pidfd = pidfd };
	atomic_store(&fe->n_excluded_hint, fe->n_excluded);
	pthread_mutex_unlock(&fe->excl_lock);
	return 0;
}

int
flt_include_process(flt_filter *filter, pid_t pid)
{
	struct filter_engine *fe;
	ssize_t i;

	if (!filter || !filter->eng || pid <= 0)
		return -EINVAL;
	fe = filter->eng;
	pthread_mutex_lock(&fe->excl_lock);
	i = index_locked(fe, pid);
	if (i >= 0)
		remove_locked(fe, (size_t)i);
	pthread_mutex_unlock(&fe->excl_lock);
	return i >= 0 ? 0 : -ENOENT;
}

void
exclusions_free(struct filter_engine *fe)
{
	while (fe->n_excluded)
		remove_locked(fe, 0);
	free(fe->excluded);
	fe->excluded = NULL;
}
