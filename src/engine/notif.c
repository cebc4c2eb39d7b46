/* SPDX-License-Identifier: MIT */
/*
 * notif.c — notification events: one reader thread on the file-handle
 * group reads in batches, resolves paths (directory handle + name, and
 * both ends of a rename), and calls post callbacks in ascending altitude.
 * Nobody waits on these, so nothing here needs a deadline; a slow post
 * callback only delays later notifications.
 *
 * Nothing read is dropped silently. Every record ends as exactly one of:
 * ignored (the engine's own, or no filter wants it), delivered with its
 * paths, delivered with FLT_EVENT_PATH_UNKNOWN (the file or its directory
 * was gone), or reported lost in-band (FLT_OP_OVERFLOW with
 * FLT_EVENT_LOSS_UNRESOLVED: not even its file system is known). What
 * never became a record — a kernel queue overflow, an undecodable rest of
 * a read, a failed read — is reported in-band the same way, with its own
 * FLT_EVENT_LOSS_* cause. Each outcome has its engine counter
 * (docs/engine.md sections 3.8 and 6).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/decode.h"
#include "engine/engine.h"
#include "engine/fanotify_compat.h"

#define NOTIF_BUF (64 * 1024)
/* How many records past a handle-only record to look for the DELETE that
 * names the same file (an unlink queues the two back to back). */
#define LOOKAHEAD_RECORDS 16
/* After a failed read, before the next try. */
#define READ_RETRY_MS 10
#ifndef SYS_close_range
#define SYS_close_range 436 /* Linux 5.9, the same number on every architecture */
#endif
/* The most records one read can hold (the smallest is the metadata). */
#define MAX_RECORDS (NOTIF_BUF / FAN_EVENT_METADATA_LEN)

static const struct {
	uint64_t mask;
	enum flt_operation op;
} mask_ops[] = {
	{ FAN_OPEN, FLT_OP_OPEN },           { FAN_OPEN_EXEC, FLT_OP_EXEC },
	{ FAN_ACCESS, FLT_OP_READ },         { FAN_MODIFY, FLT_OP_WRITE },
	{ FAN_ATTRIB, FLT_OP_ATTRIB },       { FAN_CLOSE_WRITE, FLT_OP_CLOSE_WRITE },
	{ FAN_CLOSE_NOWRITE, FLT_OP_CLOSE }, { FAN_CREATE, FLT_OP_CREATE },
	{ FAN_DELETE, FLT_OP_DELETE },       { FAN_RENAME, FLT_OP_RENAME },
};

/* One read's worth of records, processed under one dispatch table. */
struct batch {
	struct engine *e;
	struct dtable *t;
	const uint8_t *buf;
	size_t len;
	size_t next;            /* offset of the record after the current one */
	uint64_t unresolved;    /* records to report lost, not yet reported */
	struct proc_memo *memo; /* process details looked up in this read */
	int *pidfds;            /* the read's pidfds, closed after it */
	size_t n_pidfds;
};

/* No path says which instance such an event falls in: the first one of
 * the filter on its filesystem takes it. */
static const struct dt_instance *
instance_on_dev(const struct dt_filter *df, dev_t dev)
{
	for (size_t i = 0; i < df->n_inst; i++)
		if (df->inst[i].dev == dev)
			return &df->inst[i];
	return NULL;
}

static void
deliver(struct dtable *t, struct flt_callback_data *d)
{
	/* Lowest altitude first. */
	for (size_t i = t->n; i-- > 0;) {
		struct dt_filter *df = &t->f[i];
		struct filter_engine *fe = df->filter->eng;
		const struct dt_instance *in;

		if (!(df->notif_ops & op_bit(d->op)))
			continue;
		in = instance_match(t, df, d, NULL);
		if (!in && (d->flags & FLT_EVENT_PATH_UNKNOWN))
			in = instance_on_dev(df, d->dev);
		if (!in)
			continue;
		atomic_fetch_add(&fe->ctr.seen, 1);
		if (filter_excludes(df->filter, d->pid)) {
			atomic_fetch_add(&fe->ctr.excluded, 1);
			continue;
		}
		d->priv->filter = df->filter;
		fe->post[d->op](d, in->context, NULL);
		atomic_fetch_add(&fe->ctr.delivered, 1);
		atomic_fetch_add(&in->ctr->events, 1);
	}
}

/* An in-band loss report: FLT_OP_OVERFLOW to every started filter that
 * registered it, whatever its instances, lowest altitude first. why is
 * one FLT_EVENT_LOSS_*; lost the number of events, 0 if unknown. */
static void
deliver_loss(struct engine *e, struct dtable *t, uint32_t why, uint64_t lost)
{
	struct flt_event_priv pv = {
		.e = e, .pidfd = -1, .stat_done = true, .proc_done = true
	};
	struct flt_callback_data d = {
		.op = FLT_OP_OVERFLOW, .flags = why, .fd = -1, .lost = lost, .priv = &pv
	};

	d.sequence = atomic_fetch_add(&e->seq, 1) + 1;
	clock_gettime(CLOCK_REALTIME, &d.time);
	for (size_t i = t->n; i-- > 0;) {
		struct filter_engine *fe = t->f[i].filter->eng;

		if (fe->post[FLT_OP_OVERFLOW]) {
			pv.filter = t->f[i].filter;
			fe->post[FLT_OP_OVERFLOW](&d, NULL, NULL);
			atomic_fetch_add(&fe->ctr.delivered, 1);
		}
	}
}

/* Reports the records found lost so far, before anything newer. */
static void
flush_unresolved(struct batch *b)
{
	uint64_t n = b->unresolved;

	if (!n)
		return;
	b->unresolved = 0;
	log_warning(b->e->mgr,
		    "fanotify: %llu notification(s) of a file system no longer "
		    "marked: reported to filters as lost",
		    (unsigned long long)n);
	deliver_loss(b->e, b->t, FLT_EVENT_LOSS_UNRESOLVED, n);
}

/* Resolves one directory handle + name (or one object handle) into
 * *ret_path; with take_identity, also d's dev and ino. */
static int
resolve_one(struct engine *e, const struct fan_fid *fid, const struct fan_fid *target,
	    char **ret_path, struct flt_callback_data *d, bool take_identity)
{
	dev_t dev = 0;
	ino_t ino = 0;
	bool is_dir = false;
	int r;

	r = resolve_fid_path(e, fid->fsid, fid->handle, fid->name,
			     target ? target->handle : NULL, ret_path, &dev, &ino,
			     &is_dir);
	if (r == 0 && take_identity) {
		d->dev = dev;
		d->ino = ino;
	}
	return r;
}

/*
 * What is known of an object whose path could not be resolved: its
 * filesystem, from the mark with this fsid, and its inode number from its
 * own handle (target, may be NULL) where the layout is known, else 0.
 * False if no mark has this fsid any more.
 */
static bool
identify(struct engine *e, uint64_t fsid, const struct fan_fid *target,
	 struct flt_callback_data *d)
{
	struct fsmark *mk;

	pthread_mutex_lock(&e->lock);
	mk = marks_find_fsid_locked(e, fsid);
	if (mk) {
		d->dev = mk->dev;
		d->ino = target ? marks_ino_from_handle(mk, target->handle) : 0;
	}
	pthread_mutex_unlock(&e->lock);
	return mk != NULL;
}

static bool
same_object(const struct fan_fid *a, const struct fan_fid *b)
{
	return a->fsid == b->fsid && a->handle_bytes == b->handle_bytes &&
	       a->handle_type == b->handle_type &&
	       !memcmp(a->handle, b->handle, 8 + (size_t)a->handle_bytes);
}

/*
 * Unlinking a file's last name queues a handle-only ATTRIB (its link
 * count) and then the DELETE of the name, which carries the same handle.
 * By the time the ATTRIB is read the file is gone and its handle opens
 * nothing, but a DELETE of the same process and handle a few records on
 * names it. Returns 0 with the path, or -ENOENT.
 */
static int
path_from_later_delete(struct batch *b, const struct fan_event *ev,
		       struct flt_callback_data *d, char **ret_path)
{
	size_t off = b->next;
	struct fan_event later;
	const char *why;

	for (int i = 0; i < LOOKAHEAD_RECORDS &&
			fan_decode_next(b->buf, b->len, &off, &later, &why) > 0;
	     i++) {
		if ((later.mask & FAN_DELETE) && later.pid == ev->pid && later.has_fid &&
		    later.has_dfid_name && same_object(&later.fid, &ev->fid))
			return resolve_one(b->e, &later.dfid_name, &ev->fid, ret_path, d,
					   true);
	}
	return -ENOENT;
}

/* The operations of ev that someone wants, without directory noise. */
static uint32_t
deliverable_ops(const struct dtable *t, const struct fan_event *ev)
{
	bool is_dir = (ev->mask & FAN_ONDIR) != 0;
	uint32_t ops = 0;

	for (size_t i = 0; i < sizeof(mask_ops) / sizeof(mask_ops[0]); i++) {
		enum flt_operation op = mask_ops[i].op;

		if (!(ev->mask & mask_ops[i].mask) || !(t->notif_ops & op_bit(op)))
			continue;
		/* Directory opens/closes/reads are noise (every `ls`). */
		if (is_dir && (op == FLT_OP_OPEN || op == FLT_OP_CLOSE ||
			       op == FLT_OP_READ || op == FLT_OP_EXEC))
			continue;
		ops |= op_bit(op);
	}
	return ops;
}

/*
 * Resolves the record's path(s) into pv, and the object's dev and ino into
 * d (*ret_identified). Returns 0 when every path is known, else the first
 * error, with *ret_fsid the filesystem the record names.
 */
static int
resolve_record(struct batch *b, const struct fan_event *ev, struct flt_callback_data *d,
	       struct flt_event_priv *pv, uint64_t *ret_fsid, bool *ret_identified)
{
	const struct fan_fid *target = ev->has_fid ? &ev->fid : NULL;
	int r = -ENOENT, r_new = -ENOENT;

	*ret_fsid = target ? target->fsid : 0;
	*ret_identified = false;
	if (ev->mask & FAN_RENAME) {
		/* The identity is the object's, at its new name. */
		if (ev->has_old) {
			*ret_fsid = ev->old_dfid_name.fsid;
			r = resolve_one(b->e, &ev->old_dfid_name, NULL, &pv->path_buf, d,
					false);
		}
		if (ev->has_new) {
			*ret_fsid = ev->new_dfid_name.fsid;
			r_new = resolve_one(b->e, &ev->new_dfid_name, target,
					    &pv->new_path_buf, d, true);
			*ret_identified = r_new == 0;
		}
		return r < 0 ? r : r_new;
	}
	if (ev->has_dfid_name) {
		*ret_fsid = ev->dfid_name.fsid;
		r = resolve_one(b->e, &ev->dfid_name, target, &pv->path_buf, d, true);
	} else if (ev->has_fid) {
		/* An unlink's link-count ATTRIB: its DELETE, a few records
		 * on, names it; looked for first, since the handle of a file
		 * that lost its last name opens nothing (a failing
		 * open_by_handle_at per unlink). */
		r = path_from_later_delete(b, ev, d, &pv->path_buf);
		if (r < 0)
			r = resolve_one(b->e, &ev->fid, &ev->fid, &pv->path_buf, d, true);
	}
	*ret_identified = r == 0;
	return r;
}

static void
handle_event(struct batch *b, const struct fan_event *ev)
{
	struct engine *e = b->e;
	struct flt_event_priv pv = {
		.e = e, .memo = b->memo, .pidfd = ev->pidfd, .stat_done = true
	};
	struct flt_callback_data d = { .fd = -1, .pid = ev->pid, .priv = &pv };
	bool is_dir = (ev->mask & FAN_ONDIR) != 0;
	bool identified = false;
	uint64_t fsid = 0;
	uint32_t ops;
	int r;

	atomic_fetch_add(&e->ctr.notification_events, 1);
	/* A directory moved: cached directory paths may lie from now on.
	 * First, whoever caused it and whether or not anyone wants it. */
	if (is_dir && (ev->mask & (FAN_RENAME | FAN_MOVED_FROM | FAN_MOVED_TO)))
		dir_cache_clear();
	if (ev->pid == e->self_pid) {
		atomic_fetch_add(&e->ctr.self_events, 1);
		atomic_fetch_add(&e->ctr.notif_ignored, 1);
		goto out;
	}
	/* Resolving a path costs three syscalls: only for someone. */
	ops = deliverable_ops(b->t, ev);
	if (!ops) {
		atomic_fetch_add(&e->ctr.notif_ignored, 1);
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &d.time);
	if (is_dir)
		d.flags |= FLT_EVENT_DIR;

	r = resolve_record(b, ev, &d, &pv, &fsid, &identified);
	if (r < 0) {
		const struct fan_fid *target = ev->has_fid ? &ev->fid : NULL;

		/* Whatever did resolve stays. Without a file system there is
		 * no instance to give it to: then it is a loss. */
		if (!identified && !identify(e, fsid, target, &d)) {
			atomic_fetch_add(&e->ctr.notif_lost, 1);
			b->unresolved++;
			log_debug(e->mgr,
				  "notification for pid %d: no marked file system: %s",
				  (int)ev->pid, strerror(-r));
			goto out;
		}
		d.flags |= FLT_EVENT_PATH_UNKNOWN;
		atomic_fetch_add(&e->ctr.notif_unresolved, 1);
		log_debug(e->mgr, "notification for pid %d: path not resolved: %s",
			  (int)ev->pid, strerror(-r));
	} else {
		atomic_fetch_add(&e->ctr.notif_resolved, 1);
	}
	d.path = pv.path_buf;
	d.new_path = pv.new_path_buf;

	flush_unresolved(b); /* earlier losses first */
	for (size_t i = 0; i < sizeof(mask_ops) / sizeof(mask_ops[0]); i++) {
		if (!(ops & op_bit(mask_ops[i].op)))
			continue;
		d.op = mask_ops[i].op;
		d.sequence = atomic_fetch_add(&e->seq, 1) + 1;
		deliver(b->t, &d);
	}
out:
	if (ev->pidfd >= 0)
		b->pidfds[b->n_pidfds++] = ev->pidfd;
	free(pv.path_buf);
	free(pv.new_path_buf);
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Closes fds[0..n), each a descriptor of ours: one close_range() per run
 * of consecutive numbers (every number in a run is in the list, so
 * nothing else is closed). Sorts fds. */
static void
close_all(int *fds, size_t n)
{
	static atomic_bool no_close_range;

	qsort(fds, n, sizeof(*fds), cmp_int);
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && fds[j + 1] == fds[j] + 1)
			j++;
		if (j == i ||
		    atomic_load_explicit(&no_close_range, memory_order_relaxed) ||
		    syscall(SYS_close_range, (unsigned)fds[i], (unsigned)fds[j], 0) < 0) {
			if (j > i && errno == ENOSYS)
				atomic_store(&no_close_range, true);
			for (size_t k = i; k <= j; k++)
				close(fds[k]);
		}
		i = j + 1;
	}
}

static void
handle_batch(struct engine *e, const uint8_t *buf, size_t len, struct proc_memo *memo,
	     int *pidfds)
{
	struct batch b = { .e = e,
			   .t = dtable_acquire(e),
			   .buf = buf,
			   .len = len,
			   .memo = memo,
			   .pidfds = pidfds };
	struct fan_event ev;
	const char *why = NULL;
	size_t off = 0;
	int r;

	while ((r = fan_decode_next(buf, len, &off, &ev, &why)) > 0) {
		b.next = off;
		if (ev.mask & FAN_Q_OVERFLOW) {
			flush_unresolved(&b);
			atomic_fetch_add(&e->ctr.overflows, 1);
			log_warning(e->mgr, "fanotify: notification queue overflowed; "
					    "events were lost");
			deliver_loss(e, b.t, FLT_EVENT_LOSS_KERNEL, 0);
			continue;
		}
		handle_event(&b, &ev);
	}
	flush_unresolved(&b);
	if (r < 0) {
		atomic_fetch_add(&e->ctr.dropped, 1);
		log_error(e->mgr,
			  "fanotify: undecodable notification: %s; the rest of the "
			  "read is reported to filters as lost",
			  why);
		deliver_loss(e, b.t, FLT_EVENT_LOSS_UNDECODABLE, 0);
	}
	dtable_release(e, b.t);
	/* Once the read is delivered: no callback holds a pidfd any more. */
	close_all(b.pidfds, b.n_pidfds);
	memo->next = 0;
	for (unsigned i = 0; i < PROC_MEMO_SLOTS; i++)
		memo->slot[i].used = false; /* the next read looks again */
}

/* Sleeps up to ms, waking at once if the engine stops. */
static void
pause_unless_stopping(struct engine *e, int ms)
{
	struct pollfd p = { .fd = e->stop_efd, .events = POLLIN };

	(void)poll(&p, 1, ms);
}

/*
 * A read that failed (not EAGAIN or EINTR): when fanotify cannot copy an
 * event out, it discards it and the read returns the error. Each run of
 * failures is reported once, then retried every READ_RETRY_MS.
 */
static void
read_failed(struct engine *e, int err, bool *failing)
{
	struct dtable *t;

	atomic_fetch_add(&e->ctr.read_errors, 1);
	if (!*failing) {
		*failing = true;
		log_error(e->mgr,
			  "fanotify: reading notifications failed: %s; reported to "
			  "filters as a loss",
			  strerror(err));
		t = dtable_acquire(e);
		deliver_loss(e, t, FLT_EVENT_LOSS_READ, 0);
		dtable_release(e, t);
	}
	pause_unless_stopping(e, READ_RETRY_MS);
}

/*
 * After a read that was far from full: wait up to the manager's hold for
 * more events to come and be read with the next ones (stopping ends the
 * wait at once). A fuller read means a backlog: no wait.
 */
static void
hold_for_more(struct engine *e)
{
	unsigned us = atomic_load_explicit(&e->mgr->notif_hold_us, memory_order_relaxed);
	struct pollfd p = { .fd = e->stop_efd, .events = POLLIN };
	struct timespec ts = { .tv_sec = us / 1000000,
			       .tv_nsec = (long)(us % 1000000) * 1000 };

	if (us)
		(void)ppoll(&p, 1, &ts, NULL);
}

int
flt_manager_set_notification_hold(flt_manager *manager, unsigned hold_us)
{
	if (!manager || hold_us > 100000)
		return -EINVAL;
	atomic_store(&manager->notif_hold_us, hold_us);
	return 0;
}

void *
notif_reader_main(void *arg)
{
	struct engine *e = arg;
	uint8_t *buf = NULL;
	bool failing = false, warned = false;
	struct proc_memo *memo = calloc(1, sizeof(*memo));
	int *pidfds = NULL;

	pthread_setname_np(pthread_self(), "flt-notify");
	while (!atomic_load(&e->stopping)) {
		struct pollfd p[2] = {
			{ .fd = e->notif_fd, .events = POLLIN },
			{ .fd = e->stop_efd, .events = POLLIN },
		};
		ssize_t n;

		if ((!buf && !(buf = malloc(NOTIF_BUF))) ||
		    (!memo && !(memo = calloc(1, sizeof(*memo)))) ||
		    (!pidfds && !(pidfds = calloc(MAX_RECORDS, sizeof(*pidfds))))) {
			/* The kernel queues meanwhile (and reports overflow). */
			if (!warned)
				log_error(e->mgr, "notification reader: out of memory; "
						  "retrying every second");
			warned = true;
			pause_unless_stopping(e, 1000);
			continue;
		}
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		n = read(e->notif_fd, buf, NOTIF_BUF);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				read_failed(e, errno, &failing);
			continue;
		}
		failing = false;
		if (n > 0)
			handle_batch(e, buf, (size_t)n, memo, pidfds);
		if (n > 0 && (size_t)n < NOTIF_BUF / 2)
			hold_for_more(e);
	}
	free(pidfds);
	free(memo);
	free(buf);
	return NULL;
}
