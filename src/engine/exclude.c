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
 *
 * An entry is kept by flt_exclude_process() (until flt_include_process())
 * and by the connections that hold it (flt_exclude_connection_process(),
 * until each ends): it goes when neither keeps it, or when its process
 * exits. A hold names its entry by id, never by pid, so a connection whose
 * process is gone cannot drop the exclusion of a later process given the
 * same pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/engine.h"
#include "common/lockdep.h"

/* Index of pid in fe->excluded, or -1. Caller holds fe->excl_lock. */
static ssize_t
index_locked(const struct filter_engine *fe, pid_t pid)
{
	lockdep_assert_held(&fe->excl_lock);
	for (size_t i = 0; i < fe->n_excluded; i++)
		if (fe->excluded[i].pid == pid)
			return (ssize_t)i;
	return -1;
}

static void
remove_locked(struct filter_engine *fe, size_t i)
{
	lockdep_assert_held(&fe->excl_lock);
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

/*
 * The live entry of pid's process, made if there is none, kept by a
 * manual exclusion or by one more hold; takes pidfd (-1: none) whatever
 * happens. Returns the entry's id, or -ESRCH / -ENOMEM.
 */
static int64_t
keep(struct filter_engine *fe, pid_t pid, int pidfd, bool manual)
{
	struct exclusion *n, *x;
	uint64_t id;
	ssize_t i;

	if (exited(pidfd)) {
		close(pidfd);
		return -ESRCH; /* gone already: nothing to exclude */
	}
	pthread_mutex_lock(&fe->excl_lock);
	i = index_locked(fe, pid);
	if (i >= 0 && exited(fe->excluded[i].pidfd)) {
		remove_locked(fe, (size_t)i); /* that process is gone */
		i = -1;
	}
	if (i >= 0) {
		/* Still the same process: a live pid is never reused. */
		x = &fe->excluded[i];
		if (pidfd >= 0)
			close(pidfd);
	} else {
		n = realloc(fe->excluded, (fe->n_excluded + 1) * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&fe->excl_lock);
			if (pidfd >= 0)
				close(pidfd);
			return -ENOMEM;
		}
		fe->excluded = n;
		x = &fe->excluded[fe->n_excluded++];
		*x = (struct exclusion){ .pid = pid,
					 .pidfd = pidfd,
					 .id = ++fe->last_exclusion_id };
		atomic_store(&fe->n_excluded_hint, fe->n_excluded);
	}
	if (manual)
		x->manual = true;
	else
		x->holds++;
	id = x->id;
	pthread_mutex_unlock(&fe->excl_lock);
	return (int64_t)id;
}

int
flt_exclude_process(flt_filter *filter, pid_t pid)
{
	int64_t r;
	int pidfd;

	if (!filter || !filter->eng || pid <= 0)
		return -EINVAL;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 && errno != ENOSYS)
		return -errno; /* ESRCH: no such process, nothing to exclude */
	r = keep(filter->eng, pid, pidfd, true);
	return r < 0 ? (int)r : 0;
}

int
flt_include_process(flt_filter *filter, pid_t pid)
{
	struct filter_engine *fe;
	bool had = false;
	ssize_t i;

	if (!filter || !filter->eng || pid <= 0)
		return -EINVAL;
	fe = filter->eng;
	pthread_mutex_lock(&fe->excl_lock);
	i = index_locked(fe, pid);
	if (i >= 0 && fe->excluded[i].manual) {
		/* Ends what flt_exclude_process() began; connections that
		 * hold the entry keep it until they end. */
		had = true;
		fe->excluded[i].manual = false;
		if (!fe->excluded[i].holds)
			remove_locked(fe, (size_t)i);
	}
	pthread_mutex_unlock(&fe->excl_lock);
	return had ? 0 : -ENOENT;
}

int64_t
exclusion_hold(flt_filter *f, pid_t pid, int pidfd)
{
	int fd;

	if (!f || !f->eng || pid <= 0)
		return -EINVAL;
	if (pidfd >= 0)
		fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
	else
		fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0 && (pidfd >= 0 || errno != ENOSYS))
		return -errno;
	return keep(f->eng, pid, fd, false);
}

void
exclusion_release(flt_filter *f, uint64_t id)
{
	struct filter_engine *fe;

	if (!f || !f->eng || !id)
		return;
	fe = f->eng;
	pthread_mutex_lock(&fe->excl_lock);
	for (size_t i = 0; i < fe->n_excluded; i++) {
		struct exclusion *x = &fe->excluded[i];

		if (x->id != id)
			continue;
		if (x->holds && !--x->holds && !x->manual)
			remove_locked(fe, i);
		break;
	}
	pthread_mutex_unlock(&fe->excl_lock);
}

void
exclusions_free(struct filter_engine *fe)
{
	while (fe->n_excluded)
		remove_locked(fe, 0);
	free(fe->excluded);
	fe->excluded = NULL;
}
