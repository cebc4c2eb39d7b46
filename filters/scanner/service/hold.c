/* SPDX-License-Identifier: MIT */
/*
 * hold.c — keeps the files of answered execs open for a while, so that
 * the read lease a worker took on each (worker.c) outlives the answer.
 *
 * Why. The lease makes any open for writing wait, holding write access,
 * for as long as some copy of the leased file is open. The filter side
 * closes its copy as soon as it has answered the kernel; the exec then
 * goes on to deny writes to the file (deny_write_access), but only after
 * its thread has run again, and, if its FAN_OPEN_PERM event was not
 * skipped by a cached verdict, after that event is answered too. A writer
 * released at the filter side's close could write and close in between,
 * and the program that runs would not be the one scanned. Held here, the
 * lease keeps such a writer waiting: the exec denies writes first, or
 * fails with ETXTBSY because the waiting writer holds write access. Both
 * are safe.
 *
 * How long. --exec-hold milliseconds (default 250) after the answer; the
 * answer to the same process's next open of the same file (the exec's
 * FAN_OPEN_PERM) starts the time again. An exec whose thread does not run
 * for that long after its last answer is not covered (docs/scanner.md
 * section 4). A writer of a file that was executed within that time waits
 * at most that long.
 *
 * One keeper thread owns the held descriptors (a FIFO: every hold lasts
 * the same time) and closes each when its time is up, all at stop. At
 * most SVC_HOLD_MAX are held: past that the oldest is closed early
 * (counted in hold_evictions), so that a user who executes files fast
 * cannot exhaust the service's descriptors.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "svc.h"

struct held {
	int fd;
	uint32_t pid;
	uint64_t dev, ino;
	int64_t until_ns;
};

struct svc_hold {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct held *v; /* ring buffer */
	size_t head, n, cap;
	bool stop;
	pthread_t thread;
	int64_t hold_ns;
};

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *
keeper_main(void *arg)
{
	struct svc_hold *h = arg;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		int64_t now = mono_ns();

		while (h->n && (h->stop || h->v[h->head].until_ns <= now)) {
			int fd = h->v[h->head].fd;

			h->head = (h->head + 1) % h->cap;
			h->n--;
			close(fd); /* no lock needed, but nothing blocks here */
		}
		if (h->stop)
			break;
		if (!h->n) {
			pthread_cond_wait(&h->cond, &h->lock);
		} else {
			int64_t t = h->v[h->head].until_ns;
			struct timespec ts = { .tv_sec = t / 1000000000,
					       .tv_nsec = t % 1000000000 };

			pthread_cond_timedwait(&h->cond, &h->lock, &ts);
		}
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int
svc_hold_start(struct service *s)
{
	struct svc_hold *h;
	pthread_condattr_t ca;
	int r;

	if (!s->o->exec_hold_ms)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->hold_ns = (int64_t)s->o->exec_hold_ms * 1000000;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&h->thread, NULL, keeper_main, h);
	if (r < 0) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return r;
	}
	s->hold = h;
	return 0;
}

void
svc_hold_stop(struct service *s)
{
	struct svc_hold *h = s->hold;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->v);
	free(h);
	s->hold = NULL;
}

void
svc_hold(struct service *s, int fd, const struct scanner_request *q)
{
	struct svc_hold *h = s->hold;
	bool ok = false;

	if (h) {
		pthread_mutex_lock(&h->lock);
		if (h->n == SVC_HOLD_MAX) { /* the oldest goes early */
			close(h->v[h->head].fd);
			h->head = (h->head + 1) % h->cap;
			h->n--;
			atomic_fetch_add(&s->ctr.hold_evictions, 1);
		}
		if (h->n == h->cap) {
			size_t ncap = h->cap ? h->cap * 2 : 64;
			struct held *nv = malloc(ncap * sizeof(*nv));

			if (nv) { /* unroll the ring into the new array */
				for (size_t i = 0; i < h->n; i++)
					nv[i] = h->v[(h->head + i) % h->cap];
				free(h->v);
				h->v = nv;
				h->head = 0;
				h->cap = ncap;
			}
		}
		if (h->n < h->cap && !h->stop) {
			h->v[(h->head + h->n) % h->cap] = (struct held){
				.fd = fd,
				.pid = q->pid,
				.dev = q->dev,
				.ino = q->ino,
				.until_ns = mono_ns() + h->hold_ns,
			};
			if (h->n++ == 0)
				pthread_cond_signal(&h->cond);
			ok = true;
		}
		pthread_mutex_unlock(&h->lock);
	}
	if (!ok) {
		if (h)
			atomic_fetch_add(&s->ctr.hold_failures, 1);
		close(fd);
	}
}

void
svc_hold_extend(struct service *s, const struct scanner_request *q)
{
	struct svc_hold *h = s->hold;
	int64_t until;

	if (!h)
		return;
	until = mono_ns() + h->hold_ns;
	pthread_mutex_lock(&h->lock);
	/* The entries are in expiry order; an extended one keeps its place,
	 * so the keeper may close it up to one hold late: never early. */
	for (size_t i = 0; i < h->n; i++) {
		struct held *e = &h->v[(h->head + i) % h->cap];

		if (e->pid == q->pid && e->dev == q->dev && e->ino == q->ino &&
		    e->until_ns < until)
			e->until_ns = until;
	}
	pthread_mutex_unlock(&h->lock);
}
