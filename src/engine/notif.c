/* SPDX-License-Identifier: MIT */
/*
 * notif.c — notification events: one reader thread on the file-handle
 * group reads in batches, resolves paths (directory handle + name, and
 * both ends of a rename), and calls post callbacks in ascending altitude.
 * Nobody waits on these, so nothing here needs a deadline; a slow post
 * callback only delays later notifications, and a kernel queue overflow
 * is counted and delivered to filters as FLT_OP_OVERFLOW.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/decode.h"
#include "engine/engine.h"
#include "engine/fanotify_compat.h"

#define NOTIF_BUF (64 * 1024)

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

static void
deliver(struct engine *e, struct dtable *t, struct flt_callback_data *d)
{
	(void)e;
	/* Lowest altitude first. */
	for (size_t i = t->n; i-- > 0;) {
		struct dt_filter *df = &t->f[i];
		struct filter_engine *fe = df->filter->eng;
		const struct dt_instance *in;

		if (!(df->notif_ops & op_bit(d->op)))
			continue;
		in = instance_match(df, d);
		if (!in)
			continue;
		atomic_fetch_add(&fe->ctr.seen, 1);
		if (filter_excludes(df->filter, d->pid)) {
			atomic_fetch_add(&fe->ctr.excluded, 1);
			continue;
		}
		fe->post[d->op](d, in->context, NULL);
		atomic_fetch_add(&fe->ctr.delivered, 1);
		atomic_fetch_add(&in->ctr->events, 1);
	}
}

static void
deliver_overflow(struct engine *e, struct dtable *t)
{
	struct flt_event_priv pv = {
		.e = e, .pidfd = -1, .stat_done = true, .proc_done = true
	};
	struct flt_callback_data d = { .op = FLT_OP_OVERFLOW, .fd = -1, .priv = &pv };

	d.sequence = atomic_fetch_add(&e->seq, 1) + 1;
	clock_gettime(CLOCK_REALTIME, &d.time);
	for (size_t i = t->n; i-- > 0;) {
		struct filter_engine *fe = t->f[i].filter->eng;

		if (fe->post[FLT_OP_OVERFLOW]) {
			fe->post[FLT_OP_OVERFLOW](&d, NULL, NULL);
			atomic_fetch_add(&fe->ctr.delivered, 1);
		}
	}
}

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

static void
handle_event(struct engine *e, struct dtable *t, const struct fan_event *fe)
{
	struct flt_event_priv pv = { .e = e, .pidfd = fe->pidfd, .stat_done = true };
	struct flt_callback_data d = { .fd = -1, .pid = fe->pid, .priv = &pv };
	bool is_dir = (fe->mask & FAN_ONDIR) != 0;
	int r = -ENOENT;

	atomic_fetch_add(&e->ctr.notification_events, 1);
	/* A directory moved: cached directory paths may lie from now on.
	 * First, whoever caused it and whether or not anyone wants it. */
	if (is_dir && (fe->mask & (FAN_RENAME | FAN_MOVED_FROM | FAN_MOVED_TO)))
		dir_cache_clear();
	if (fe->pid == e->self_pid) {
		atomic_fetch_add(&e->ctr.self_events, 1);
		goto out;
	}
	{
		uint32_t wanted = 0;

		for (size_t i = 0; i < sizeof(mask_ops) / sizeof(mask_ops[0]); i++)
			if (fe->mask & mask_ops[i].mask)
				wanted |= op_bit(mask_ops[i].op);
		/* Resolving a path costs three syscalls: only for someone. */
		if (!(wanted & t->notif_ops))
			goto out;
	}
	clock_gettime(CLOCK_REALTIME, &d.time);
	if (is_dir)
		d.flags |= FLT_EVENT_DIR;

	if (fe->mask & FAN_RENAME) {
		if (fe->has_old && fe->has_new) {
			r = resolve_one(e, &fe->old_dfid_name, NULL, &pv.path_buf, &d,
					false);
			if (r == 0)
				r = resolve_one(e, &fe->new_dfid_name,
						fe->has_fid ? &fe->fid : NULL,
						&pv.new_path_buf, &d, true);
		}
	} else if (fe->has_dfid_name) {
		r = resolve_one(e, &fe->dfid_name, fe->has_fid ? &fe->fid : NULL,
				&pv.path_buf, &d, true);
	} else if (fe->has_fid) {
		r = resolve_one(e, &fe->fid, &fe->fid, &pv.path_buf, &d, true);
	}
	if (r < 0) {
		atomic_fetch_add(&e->ctr.dropped, 1);
		log_debug(e->mgr, "notification for pid %d: path not resolved: %s",
			  (int)fe->pid, strerror(-r));
		goto out;
	}
	d.path = pv.path_buf;
	d.new_path = pv.new_path_buf;

	for (size_t i = 0; i < sizeof(mask_ops) / sizeof(mask_ops[0]); i++) {
		enum flt_operation op = mask_ops[i].op;

		if (!(fe->mask & mask_ops[i].mask) || !(t->notif_ops & op_bit(op)))
			continue;
		/* Directory opens/closes/reads are noise (every `ls`). */
		if (is_dir && (op == FLT_OP_OPEN || op == FLT_OP_CLOSE ||
			       op == FLT_OP_READ || op == FLT_OP_EXEC))
			continue;
		d.op = op;
		d.sequence = atomic_fetch_add(&e->seq, 1) + 1;
		deliver(e, t, &d);
	}
out:
	if (fe->pidfd >= 0)
		close(fe->pidfd);
	free(pv.path_buf);
	free(pv.new_path_buf);
}

void *
notif_reader_main(void *arg)
{
	struct engine *e = arg;
	uint8_t *buf = malloc(NOTIF_BUF);

	pthread_setname_np(pthread_self(), "flt-notify");
	while (buf && !atomic_load(&e->stopping)) {
		struct pollfd p[2] = {
			{ .fd = e->notif_fd, .events = POLLIN },
			{ .fd = e->stop_efd, .events = POLLIN },
		};
		struct fan_event fe;
		struct dtable *t;
		const char *why;
		size_t off = 0;
		ssize_t n;
		int r;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		n = read(e->notif_fd, buf, NOTIF_BUF);
		if (n <= 0)
			continue;
		t = dtable_acquire(e);
		while ((r = fan_decode_next(buf, (size_t)n, &off, &fe, &why)) > 0) {
			if (fe.mask & FAN_Q_OVERFLOW) {
				atomic_fetch_add(&e->ctr.overflows, 1);
				log_warning(e->mgr,
					    "fanotify: notification queue overflowed; "
					    "events were lost");
				deliver_overflow(e, t);
				continue;
			}
			handle_event(e, t, &fe);
		}
		if (r < 0) {
			atomic_fetch_add(&e->ctr.dropped, 1);
			log_error(e->mgr, "fanotify: undecodable notification: %s", why);
		}
		dtable_release(e, t);
	}
	free(buf);
	return NULL;
}
