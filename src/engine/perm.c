/* SPDX-License-Identifier: MIT */
/*
 * perm.c — permission events: read, dispatch, answer exactly once.
 *
 * A reader thread reads one event and runs the pre callbacks itself, in
 * descending altitude, with no hand-off to another thread (a cross-CPU
 * wake-up costs tens of microseconds here). Every event in flight is on
 * the engine's pending list with the deadline of the filter now holding
 * it. The watchdog thread answers overdue events with that filter's
 * default verdict, starts another reader when every reader has been stuck
 * in a callback for TAKEOVER_MS (so events for other files keep flowing,
 * and a callback that opens a watched file by path gets its own event
 * answered), and, if ENGINE_MAX_READERS are all stuck, answers events
 * unseen (counted) rather than let the machine hang.
 *
 * `answered` flips 0 -> 1 once, by CAS; only the winner writes the
 * response, always before logging or running post callbacks. Its counters
 * go up just before the write, so whoever saw an access return (the
 * process itself, or a test reading stats after it) finds it counted. The
 * event's
 * descriptor is closed only when its last reference is dropped, so a
 * callback still running after the deadline never reads a reused fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "engine/decode.h"
#include "engine/engine.h"
#include "engine/fanotify_compat.h"
#include "core/fault.h"
#include "common/lockdep.h"

#define TAKEOVER_MS         20
#define WATCHDOG_TICK_MS    5
#define WATCHDOG_IDLE_TICKS 40

static enum flt_operation
perm_op(uint64_t mask)
{
	if (mask & FAN_OPEN_EXEC_PERM)
		return FLT_OP_EXEC;
	if (mask & FAN_ACCESS_PERM)
		return FLT_OP_READ;
	return FLT_OP_OPEN;
}

static void
respond(struct engine *e, int fd, int verdict)
{
	struct fanotify_response r = { .fd = fd, .response = FAN_ALLOW };

	if (verdict < 0) {
		r.response = FAN_DENY;
		if (verdict != -EPERM && atomic_load(&e->deny_errno_ok))
			r.response = FAN_DENY_ERRNO(-verdict);
	}
	if (write(e->perm_fd, &r, sizeof(r)) == sizeof(r))
		return;
	if (errno == EINVAL && r.response != FAN_DENY && r.response != FAN_ALLOW) {
		/* No custom errno for this group: deny with EPERM, answer
		 * first, log after. */
		atomic_store(&e->deny_errno_ok, false);
		r.response = FAN_DENY;
		if (write(e->perm_fd, &r, sizeof(r)) == sizeof(r)) {
			log_info(e->mgr, "fanotify: custom deny errno not accepted; "
					 "denials show EPERM");
			return;
		}
	}
	log_error(e->mgr, "fanotify: cannot answer a permission event: %s",
		  strerror(errno));
}

/* ---- the in-flight list ---- */

static void
pending_add(struct engine *e, struct perm_event *ev)
{
	pthread_mutex_lock(&e->pend_lock);
	ev->pnext = e->pending;
	if (e->pending)
		e->pending->pprev = ev;
	e->pending = ev;
	ev->in_pending = true;
	e->n_pending++;
	if (e->watchdog_idle)
		pthread_cond_signal(&e->pend_cond);
	pthread_mutex_unlock(&e->pend_lock);
}

/* Caller holds pend_lock. */
static void
pending_remove_locked(struct engine *e, struct perm_event *ev)
{
	lockdep_assert_held(&e->pend_lock);
	if (!ev->in_pending)
		return;
	if (ev->pprev)
		ev->pprev->pnext = ev->pnext;
	else
		e->pending = ev->pnext;
	if (ev->pnext)
		ev->pnext->pprev = ev->pprev;
	ev->pnext = ev->pprev = NULL;
	ev->in_pending = false;
	e->n_pending--;
}

void
perm_event_unref(struct perm_event *ev)
{
	struct engine *e;

	if (atomic_fetch_sub(&ev->refs, 1) != 1)
		return;
	e = ev->e;
	pthread_mutex_lock(&e->pend_lock);
	pending_remove_locked(e, ev);
	pthread_mutex_unlock(&e->pend_lock);
	if (ev->fd >= 0)
		close(ev->fd);
	if (ev->priv.pidfd >= 0)
		close(ev->priv.pidfd);
	free(ev->priv.path_buf);
	free(ev->priv.new_path_buf);
	if (ev->t)
		dtable_release(e, ev->t);
	free(ev);
}

static struct filter_engine *
fe_at(struct perm_event *ev, size_t i)
{
	return ev->t->f[i].filter->eng;
}

/*
 * The engine's own answer for an event no filter could be asked about
 * (every reader held, no memory, shutdown): never more permissive than
 * the strictest default verdict among the filters that could own it,
 * i.e. those with a pre callback for its operation and an instance on
 * its filesystem (any instance, when the filesystem is unknown).
 */
static bool
covers(const struct dt_filter *df, enum flt_operation op, dev_t dev, bool dev_known)
{
	if (!(df->pre_ops & op_bit(op)))
		return false;
	for (size_t j = 0; j < df->n_inst; j++)
		if (!dev_known || df->inst[j].dev == dev)
			return true;
	return false;
}

/* dev is known (non-zero) and some instance of t names it. */
static bool
dev_placed(const struct dtable *t, dev_t dev)
{
	for (size_t i = 0; dev && t && i < t->n; i++)
		for (size_t j = 0; j < t->f[i].n_inst; j++)
			if (t->f[i].inst[j].dev == dev)
				return true;
	return false;
}

static int
fallback_verdict(struct engine *e, const struct dtable *t, enum flt_operation op, int fd)
{
	dev_t dev = event_fs_dev(e, fd);
	bool known = dev_placed(t, dev);

	for (size_t i = 0; t && i < t->n; i++)
		if (t->f[i].filter->eng->default_verdict < 0 &&
		    covers(&t->f[i], op, dev, known))
			return -EPERM;
	return 0;
}

/*
 * When the filter holding an event lets it go by an allowing default
 * (its deadline, or unregistering), the filters below it were never
 * asked: they get theirs. The event is answered with the strictest
 * default verdict among them (those with a pre callback for the
 * operation and an instance on the event's filesystem, not excluded for
 * its process), so a slow filter above cannot carry a file past a
 * fail-closed one below. Filled in before the first callback (identity),
 * so it is read here without racing the reader.
 */
static int
below_default(struct perm_event *ev, size_t pos)
{
	const struct dtable *t = ev->t;
	dev_t dev = ev->priv.identity_ok ? ev->priv.fs_dev : 0;
	bool known = dev_placed(t, dev);

	for (size_t i = pos + 1; t && i < t->n; i++) {
		const struct dt_filter *df = &t->f[i];

		if (df->filter->eng->default_verdict == 0 ||
		    !covers(df, ev->data.op, dev, known))
			continue;
		if (atomic_load(&df->filter->eng->n_excluded_hint) &&
		    filter_excludes(df->filter, ev->data.pid))
			continue;
		return -EPERM;
	}
	return 0;
}

/* Answers with verdict (0 allow, -errno deny); decided_by is the filter
 * index or SIZE_MAX when the chain simply ran out. */
static void
finish(struct perm_event *ev, int verdict, size_t decided_by)
{
	struct engine *e = ev->e;
	struct dtable *t = ev->t;
	int expected = 0;

	if (!atomic_compare_exchange_strong(&ev->answered, &expected, 1)) {
		if (decided_by != SIZE_MAX)
			atomic_fetch_add(&fe_at(ev, decided_by)->ctr.late_completions, 1);
		return;
	}
	if (verdict == 0 && ev->all_cacheable && ev->any_cache_opt_in &&
	    e->feat.evictable && e->feat.mark_ignore) {
		/* Only what the cache can keep true (vcache.c). Before the
		 * answer, not after: the opener may write the file as soon as
		 * its open returns (O_CREAT, O_TRUNC), and only a mark that is
		 * already there is cleared by that write. An insert after the
		 * answer could land after the write and cache the verdict for
		 * content nobody checked. Only while the table that decided is
		 * still current: a rebuild swaps tables under table_lock and
		 * flushes after, so an insert made here is never older than
		 * the last flush. */
		if (ev->engine_veto || !vcache_file_may_be_cached(&ev->data)) {
			atomic_fetch_add(&e->ctr.cache_refused, 1);
		} else {
			pthread_mutex_lock(&e->table_lock);
			if (e->table == t)
				vcache_insert(e, ev->fd, ev->data.op);
			pthread_mutex_unlock(&e->table_lock);
		}
	}
	atomic_fetch_add(verdict == 0 ? &e->ctr.allowed : &e->ctr.denied, 1);
	if (decided_by != SIZE_MAX) {
		struct filter_engine *fe = fe_at(ev, decided_by);

		atomic_fetch_add(verdict == 0 ? &fe->ctr.allowed : &fe->ctr.denied, 1);
		if (verdict != 0 && ev->inst[decided_by])
			atomic_fetch_add(&ev->inst[decided_by]->ctr->denied, 1);
	}
	respond(e, ev->fd, verdict); /* then the kernel, before any log */
	if (verdict != 0) {
		/* The record names the path an eager filter would have had,
		 * also if the deciding filter took it on request and never
		 * asked (resolved now, after the answer). */
		if (decided_by != SIZE_MAX)
			(void)flt_event_path(&ev->data);
		if (decided_by != SIZE_MAX) /* a denial: the operator sees it */
			flt_log_decision_limited(
				e->mgr,
				&t->f[decided_by].filter->decision_limit[DECISION_DENIED],
				FLT_LOG_NOTICE,
				&(struct flt_decision){
					.filter = t->f[decided_by].filter->name,
					.op = ev->data.op,
					.path = ev->data.path,
					.pid = ev->data.pid,
					.verdict = verdict,
					.reason = "verdict" },
				ev->fd);
		return;
	}
	/* Post callbacks, lowest altitude first. */
	for (size_t i = t->n; i-- > 0;) {
		if (!ev->want_post[i])
			continue;
		ev->priv.filter = t->f[i].filter;
		t->f[i].filter->eng->post[ev->data.op](&ev->data, ev->inst[i]->context,
						       ev->ctx[i]);
		atomic_fetch_add(&fe_at(ev, i)->ctr.delivered, 1);
	}
}

/* Runs the pre callbacks from ev->pos on. */
static void
run_chain(struct perm_event *ev)
{
	struct engine *e = ev->e;
	struct dtable *t = ev->t;
	enum flt_operation op = ev->data.op;

	for (size_t i = ev->pos; i < t->n; i++) {
		struct dt_filter *df = &t->f[i];
		struct filter_engine *fe = df->filter->eng;
		const struct dt_instance *in;
		enum flt_preop_status st;
		bool late, on_dev = false;
		int64_t deadline;

		if (!(df->pre_ops & op_bit(op)))
			continue;
		in = instance_match(t, df, &ev->data, &on_dev);
		if (!in) {
			/* Not asked for this path to the file: an inode cache
			 * entry would hide other paths to it from the filter
			 * (a hard link inside its subtree). */
			if (on_dev)
				ev->engine_veto = true;
			continue;
		}
		atomic_fetch_add(&fe->ctr.seen, 1);
		if (atomic_load(&fe->n_excluded_hint) &&
		    filter_excludes(df->filter, ev->data.pid)) {
			atomic_fetch_add(&fe->ctr.excluded, 1);
			/* It was not asked: caching the inode would hide the
			 * file from it for every other process too. */
			ev->all_cacheable = false;
			continue;
		}
		pthread_mutex_lock(&e->pend_lock);
		if (atomic_load(&ev->answered)) {
			pthread_mutex_unlock(&e->pend_lock);
			return;
		}
		ev->pos = i;
		deadline = now_ns() + (int64_t)fe->deadline_ms * 1000000;
		ev->deadline = deadline;
		ev->default_verdict = fe->default_verdict;
		pthread_mutex_unlock(&e->pend_lock);

		ev->inst[i] = in;
		/* dev, ino: once; the path too, unless the filter asks for it
		 * through flt_event_path() (a readlink saved). */
		if (fe->flags & FLT_REGISTRATION_PATH_ON_REQUEST)
			event_fill_stat(&ev->data);
		else
			event_fill_identity(&ev->data);
		ev->data.status = 0;
		ev->data.cacheable = 1;
		assert_transition(atomic_load(&ev->pend_state), PEND_IN_CALLBACK,
				  STATE_BIT(PEND_IDLE));
		atomic_store(&ev->pend_state, PEND_IN_CALLBACK);
		callback_scope_enter(&(struct callback_scope){
			.deadline_ns = deadline,
			.filter_name = df->filter->name,
			.mgr = e->mgr,
			.capped = &fe->ctr.timeouts_capped,
		});
		ev->priv.filter = df->filter;
		st = fe->pre[op](&ev->data, in->context, &ev->ctx[i]);
		callback_scope_leave();
		atomic_fetch_add(&fe->ctr.delivered, 1);
		atomic_fetch_add(&in->ctr->events, 1);
		if (st == FLT_PREOP_PENDING) {
			int expected = PEND_IN_CALLBACK;

			atomic_fetch_add(&fe->ctr.pended, 1);
			atomic_fetch_add(&ev->refs, 1); /* owned by the pend */
			if (atomic_compare_exchange_strong(&ev->pend_state, &expected,
							   PEND_OWNED))
				return; /* completed later, from any thread */
			/* Already completed (PEND_EARLY) while we were still in
			 * the callback: apply that completion here. */
			atomic_fetch_sub(&ev->refs, 1);
			st = ev->early_status;
			if (st == FLT_PREOP_COMPLETE)
				ev->data.status = ev->early_error;
		}
		atomic_store(&ev->pend_state, PEND_IDLE);
		if (!ev->data.cacheable || !(fe->flags & FLT_REGISTRATION_CACHE_VERDICTS))
			ev->all_cacheable = false;
		else
			ev->any_cache_opt_in = true;

		late = atomic_load(&ev->answered);
		switch (st) {
		case FLT_PREOP_SUCCESS_WITH_CALLBACK:
			if (!late && df->post_ops & op_bit(op))
				ev->want_post[i] = 1;
			/* fall through */
		case FLT_PREOP_SUCCESS_NO_CALLBACK:
			if (late) {
				atomic_fetch_add(&fe->ctr.late_completions, 1);
				return;
			}
			atomic_fetch_add(&fe->ctr.allowed, 1);
			continue;
		case FLT_PREOP_COMPLETE:
			finish(ev, ev->data.status < 0 ? ev->data.status : 0, i);
			return;
		default:
			/* A filter bug: its default verdict, as if it had not
			 * answered at all (fail closed), logged after. */
			if (late)
				return;
			finish(ev, fe->default_verdict, i);
			log_error(e->mgr,
				  "filter %s: pre callback returned %d, not a status; "
				  "answered its default verdict (%s)",
				  df->filter->name, (int)st,
				  fe->default_verdict ? "deny" : "allow");
			return;
		}
	}
	finish(ev, 0, SIZE_MAX);
}

void
flt_complete_pended_preoperation(struct flt_callback_data *data,
				 enum flt_preop_status status, int error)
{
	struct perm_event *ev;
	int expected;
	size_t pos;

	if (!data || !data->priv || !data->priv->perm)
		return;
	ev = data->priv->perm;
	if (status != FLT_PREOP_SUCCESS_WITH_CALLBACK &&
	    status != FLT_PREOP_SUCCESS_NO_CALLBACK && status != FLT_PREOP_COMPLETE) {
		/* A filter bug: its default verdict (fail closed). */
		log_error(ev->e->mgr,
			  "flt_complete_pended_preoperation: %d is not a completion; "
			  "the filter's default verdict is given",
			  (int)status);
		status = FLT_PREOP_COMPLETE;
		error = fe_at(ev, ev->pos)->default_verdict;
	}
	/* A worker may finish before the pre callback has even returned
	 * FLT_PREOP_PENDING: park the result for run_chain to apply. */
	ev->early_status = status;
	ev->early_error = error;
	expected = PEND_IN_CALLBACK;
	if (atomic_compare_exchange_strong(&ev->pend_state, &expected, PEND_EARLY))
		return;
	/* The normal case: the pend's reference passes to us. If
	 * unregistering the filter reclaimed it, the event may be gone: the
	 * filter broke the rule to finish its pends before unregistering. */
	expected = PEND_ABANDONED;
	if (atomic_compare_exchange_strong(&ev->pend_state, &expected, PEND_IDLE)) {
		/* Its filter is gone; the event was answered by default. */
		perm_event_unref(ev);
		return;
	}
	expected = PEND_OWNED;
	if (!atomic_compare_exchange_strong(&ev->pend_state, &expected, PEND_IDLE))
		return; /* not pended at all: a filter bug, ignored */
	pos = ev->pos;  /* stable: nothing runs the chain while it is pended */
	/* The filter's cache veto, as run_chain applies it to a callback
	 * that answers without pending: a pended allow may be cached too. */
	if (!ev->data.cacheable ||
	    !(fe_at(ev, pos)->flags & FLT_REGISTRATION_CACHE_VERDICTS))
		ev->all_cacheable = false;
	else
		ev->any_cache_opt_in = true;
	switch (status) {
	case FLT_PREOP_COMPLETE:
		finish(ev, error < 0 ? error : 0, pos);
		break;
	default:
		if (atomic_load(&ev->answered)) {
			atomic_fetch_add(&fe_at(ev, pos)->ctr.late_completions, 1);
			break;
		}
		if (status == FLT_PREOP_SUCCESS_WITH_CALLBACK &&
		    ev->t->f[pos].post_ops & op_bit(ev->data.op))
			ev->want_post[pos] = 1;
		atomic_fetch_add(&fe_at(ev, pos)->ctr.allowed, 1);
		/* Nobody holds it until the next filter is asked. */
		pthread_mutex_lock(&ev->e->pend_lock);
		ev->pos = pos + 1;
		ev->deadline = INT64_MAX;
		pthread_mutex_unlock(&ev->e->pend_lock);
		run_chain(ev);
		break;
	}
	perm_event_unref(ev); /* the pend's reference */
}

/* After a default answer: one line, at most one a second per kind (with
 * the count of those held back). An allow by default is a fail-open
 * decision: a warning. */
static void
log_default(struct perm_event *ev, int verdict, size_t pos, const char *reason,
	    const char *why)
{
	struct flt_filter *f = ev->t->f[pos].filter;

	flt_log_decision_limited(ev->e->mgr,
				 &f->decision_limit[verdict == 0 ? DECISION_DEFAULT_ALLOW
								 : DECISION_DEFAULT_DENY],
				 verdict == 0 ? FLT_LOG_WARNING : FLT_LOG_NOTICE,
				 &(struct flt_decision){ .filter = f->name,
							 .op = ev->data.op,
							 .pid = ev->data.pid,
							 .verdict = verdict,
							 .reason = reason,
							 .detail = why },
				 ev->fd);
}

/* The deadline passed (or the filter was unregistered while holding the
 * event): the filter holding it loses it. */
static void
answer_default(struct perm_event *ev, int verdict, size_t pos, const char *why)
{
	struct engine *e = ev->e;
	int expected = 0;
	bool below = false;

	if (atomic_load(&ev->answered))
		return;
	if (verdict == 0) {
		verdict = below_default(ev, pos);
		below = verdict != 0;
	}
	if (!atomic_compare_exchange_strong(&ev->answered, &expected, 1))
		return;
	atomic_fetch_add(&e->ctr.deadline_defaults, 1);
	atomic_fetch_add(verdict == 0 ? &e->ctr.allowed : &e->ctr.denied, 1);
	atomic_fetch_add(&fe_at(ev, pos)->ctr.deadline_defaults, 1);
	respond(e, ev->fd, verdict);
	log_default(ev, verdict, pos, why[0] == 'd' ? "deadline" : "unregistered",
		    below ? (why[0] == 'd'
				     ? "deadline passed; a filter below, never asked, "
				       "denies by default"
				     : "unregistered while holding it; a filter below, "
				       "never asked, denies by default")
			  : (why[0] == 'd' ? "deadline passed: its default verdict"
					   : "unregistered while holding it: its default "
					     "verdict"));
}

/*
 * An event with room for n filters, zeroed except for the process
 * details' buffers at the end of flt_event_priv (exe, comm, proc: about
 * 4 KiB), which flt_get_process() writes before anything reads them.
 * Zeroing them cost more instructions than the rest of the event's
 * handling together (a calloc's memset per event).
 */
static struct perm_event *
perm_event_alloc(size_t n)
{
	const size_t head =
		offsetof(struct perm_event, priv) + offsetof(struct flt_event_priv, exe);
	const size_t tail = n * (1 + sizeof(void *) + sizeof(void *));
	struct perm_event *ev = malloc(sizeof(*ev) + tail);

	if (!ev)
		return NULL;
	memset(ev, 0, head);
	memset(ev + 1, 0, tail);
	return ev;
}

/* Not a permission event: the stop's wake-up (a write to wake_fd), which
 * has nothing to answer. */
static bool
skip_non_perm(const struct fan_event *fe)
{
	if (fe->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_ACCESS_PERM))
		return false;
	if (fe->fd >= 0)
		close(fe->fd);
	if (fe->pidfd >= 0)
		close(fe->pidfd);
	return true;
}

static void
handle_event(struct engine *e, const struct fan_event *fe)
{
	struct perm_event *ev;
	struct dtable *t;
	enum flt_operation op;
	size_t n;

	if (skip_non_perm(fe))
		return;
	if (fe->fd < 0) {
		atomic_fetch_add(&e->ctr.dropped, 1);
		return;
	}
	atomic_fetch_add(&e->ctr.permission_events, 1);
	if (fe->pid == e->self_pid) {
		/* Our own access (a callback opening a watched file): never
		 * reaches a filter, never waits. Counted first: the access
		 * returns as soon as the answer is written. */
		atomic_fetch_add(&e->ctr.self_events, 1);
		atomic_fetch_add(&e->ctr.allowed, 1);
		respond(e, fe->fd, 0);
		close(fe->fd);
		if (fe->pidfd >= 0)
			close(fe->pidfd);
		return;
	}
	op = perm_op(fe->mask);
	t = dtable_acquire(e);
	n = t->n;
	ev = fault_alloc_fails(FAULT_PERM_EVENT) ? NULL : perm_event_alloc(n);
	if (!ev || !(t->pre_ops & op_bit(op))) {
		static struct flt_log_limit oom_limit;
		int v = ev ? 0 : fallback_verdict(e, t, op, fe->fd);

		/* Counted before the answer, like every answer path: the
		 * access that returns finds it counted. */
		atomic_fetch_add(v == 0 ? &e->ctr.allowed : &e->ctr.denied, 1);
		if (!ev)
			atomic_fetch_add(&e->ctr.dropped, 1);
		respond(e, fe->fd, v);
		if (!ev)
			flt_log_decision_limited(
				e->mgr, &oom_limit, FLT_LOG_ERROR,
				&(struct flt_decision){
					.op = op,
					.pid = fe->pid,
					.verdict = v,
					.reason = "out_of_memory",
					.detail =
						"out of memory for a permission event: "
						"the "
						"strictest default verdict of the "
						"filters "
						"there, unfiltered; counted in dropped" },
				fe->fd);
		close(fe->fd);
		if (fe->pidfd >= 0)
			close(fe->pidfd);
		free(ev);
		dtable_release(e, t);
		return;
	}
	atomic_init(&ev->refs, 1);
	atomic_init(&ev->answered, 0);
	ev->e = e;
	ev->t = t;
	ev->fd = fe->fd;
	ev->mask = fe->mask;
	ev->deadline = INT64_MAX;
	ev->all_cacheable = true;
	ev->ctx = (void **)(ev + 1);
	ev->inst = (const struct dt_instance **)(ev->ctx + n);
	ev->want_post = (uint8_t *)(ev->inst + n);
	ev->priv.e = e;
	ev->priv.perm = ev;
	ev->priv.pidfd = fe->pidfd;
	ev->data.op = op;
	ev->data.flags = FLT_EVENT_PERMISSION;
	ev->data.sequence = atomic_fetch_add(&e->seq, 1) + 1;
	clock_gettime(CLOCK_REALTIME, &ev->data.time);
	ev->data.pid = fe->pid;
	ev->data.fd = fe->fd;
	ev->data.priv = &ev->priv;
	pending_add(e, ev);
	run_chain(ev);
	perm_event_unref(ev);
}

/* ---- readers ---- */

/*
 * The kernel could not hand us the event: it failed to open the event's
 * descriptor in this process (EMFILE, ENFILE, ENOMEM, ...). It has then
 * already denied that access itself, and the read consumed it (unlike
 * EINVAL, a buffer too small, which leaves the event queued). Count it
 * and say why, at most once a second; every following read gets the
 * next event, so nothing waits.
 */
static void
read_failed(struct engine *e, int err)
{
	static struct flt_log_limit limit;

	atomic_fetch_add(&e->ctr.dropped, 1);
	flt_log_limited(e->mgr, &limit, FLT_LOG_ERROR,
			"fanotify: cannot read a permission event: %s; the kernel "
			"denied that access (counted in dropped)%s",
			strerror(err),
			err == EMFILE || err == ENFILE
				? "; raise the descriptor limit (LimitNOFILE=)"
				: "");
}

static void
reader_retire_if_spare(struct engine *e, struct reader *rd)
{
	int idle = 0;

	pthread_mutex_lock(&e->readers_lock);
	for (int i = 0; i < e->n_readers; i++) {
		struct reader *o = e->readers[i];

		if (o != rd && !atomic_load(&o->retire) && !atomic_load(&o->done) &&
		    atomic_load(&o->busy_since) == 0)
			idle++;
	}
	if (idle > 0)
		atomic_store(&rd->retire, true); /* someone else is reading */
	pthread_mutex_unlock(&e->readers_lock);
}

/* ---- blocking reads, and waking them ----
 *
 * A reader used to poll the permission group together with stop_efd
 * before each read: one syscall per event spent only so that the stop
 * could wake it. Now the group is blocking, and what wakes a reader
 * blocked in read() is an event: perm_wake_setup() makes a private
 * unnamed file (O_TMPFILE in the runtime directory) and marks it
 * FAN_MODIFY in the permission group; perm_wake_readers() first makes
 * the group non-blocking for good, then writes to that file. The kernel
 * wakes every reader waiting in read() for the one event (they wait
 * non-exclusively); the one that gets it drops it (skip_non_perm), the
 * others find the queue empty and, the group being non-blocking, return
 * EAGAIN. A reader that enters read() later returns at once. Either way
 * it sees `stopping` and exits. A drain (emergency_drain) makes the group
 * non-blocking only while it drains, under drain_lock; a reader that gets
 * EAGAIN in between polls, as before. Without the file (no O_TMPFILE
 * there, a mark refused, FLTMGR_FAULT_ALLOC=wake:1) the group stays
 * non-blocking and readers poll.
 */

void
perm_wake_setup(struct engine *e)
{
	const char *dir = flt_manager_runtime_dir(e->mgr);
	int fd = -1, fl;

	if (!fault_alloc_fails(FAULT_WAKE_FILE) && dir)
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 &&
	    fanotify_mark(e->perm_fd, FAN_MARK_ADD, FAN_MODIFY, fd, NULL) < 0) {
		close(fd);
		fd = -1;
	}
	fl = fd >= 0 ? fcntl(e->perm_fd, F_GETFL) : -1;
	if (fl < 0 || fcntl(e->perm_fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		if (fd >= 0) {
			(void)fanotify_mark(e->perm_fd, FAN_MARK_REMOVE, FAN_MODIFY, fd,
					    NULL);
			close(fd);
		}
		log_notice(e->mgr, "permission readers poll before each read: no "
				   "wake-up file in the runtime directory");
		return;
	}
	e->wake_fd = fd;
}

/* Caller holds drain_lock. */
static void
set_nonblocking_locked(struct engine *e, bool on)
{
	lockdep_assert_held(&e->drain_lock);
	int fl = fcntl(e->perm_fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(e->perm_fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Caller holds drain_lock. The mark may already be there. */
static int
wake_mark_locked(struct engine *e)
{
	lockdep_assert_held(&e->drain_lock);
	int err;

	if (fanotify_mark(e->perm_fd, FAN_MARK_ADD, FAN_MODIFY, e->wake_fd, NULL) == 0)
		return 0;
	err = errno;
	log_error(e->mgr, "cannot mark the wake-up file: %s", strerror(err));
	return -err;
}

/* FAN_MARK_FLUSH (the kernel verdict cache's flush) drops every inode
 * mark of the group, the wake-up file's too: it is put back at once,
 * under drain_lock, so perm_wake_readers() never writes while it is
 * missing (and marks it again itself, in case this failed). */
int
perm_flush_inode_marks(struct engine *e)
{
	int r = 0;

	pthread_mutex_lock(&e->drain_lock);
	if (fanotify_mark(e->perm_fd, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL) < 0)
		r = -errno;
	if (e->wake_fd >= 0)
		(void)wake_mark_locked(e);
	pthread_mutex_unlock(&e->drain_lock);
	return r;
}

void
perm_wake_readers(struct engine *e)
{
	if (e->wake_fd < 0)
		return; /* they poll stop_efd */
	pthread_mutex_lock(&e->drain_lock);
	set_nonblocking_locked(e, true); /* for good: `stopping` is set */
	if (wake_mark_locked(e) == 0 && pwrite(e->wake_fd, "w", 1, 0) != 1)
		log_error(e->mgr,
			  "cannot wake the permission readers blocked in "
			  "read(): %s",
			  strerror(errno));
	pthread_mutex_unlock(&e->drain_lock);
}

void *
perm_reader_main(void *arg)
{
	struct reader *rd = arg;
	struct engine *e = rd->e;
	size_t cap = sizeof(struct fanotify_event_metadata) +
		     (e->perm_pidfd ? sizeof(struct fanotify_event_info_pidfd) : 0);
	uint8_t *buf = malloc(4096);
	bool poll_next = false;

	pthread_setname_np(pthread_self(), "flt-perm");
	while (buf && !atomic_load(&rd->retire) && !atomic_load(&e->stopping)) {
		struct pollfd p[2] = {
			{ .fd = e->perm_fd, .events = POLLIN },
			{ .fd = e->stop_efd, .events = POLLIN },
		};
		struct fan_event fe;
		const char *why;
		size_t off = 0;
		ssize_t n;

		atomic_store(&rd->busy_since, 0);
		/* Blocking reads (see perm_wake_setup) need no poll, except
		 * when a drain or the stop made the group non-blocking. */
		if (e->wake_fd < 0 || poll_next) {
			poll_next = false;
			if (poll(p, 2, -1) < 0)
				continue;
			if (p[1].revents)
				break;
		}
		/* Exactly one event per read: an event read is an event this
		 * thread must dispatch, and a stuck callback must not strand
		 * others behind it in a private buffer. */
		n = read(e->perm_fd, buf, cap);
		if (n < 0 && errno == EAGAIN && e->wake_fd >= 0) {
			poll_next = true;
			continue;
		}
		if (n < 0 && errno == EINVAL && cap < 4096) {
			cap *= 2; /* an event larger than expected */
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR && errno != EINVAL)
			read_failed(e, errno);
		if (n <= 0)
			continue;
		atomic_store(&rd->busy_since, now_ns());
		while (fan_decode_next(buf, (size_t)n, &off, &fe, &why) > 0)
			handle_event(e, &fe);
		if (off < (size_t)n) {
			atomic_fetch_add(&e->ctr.dropped, 1);
			log_error(e->mgr, "fanotify: undecodable permission event: %s",
				  why);
		}
		reader_retire_if_spare(e, rd);
	}
	free(buf);
	atomic_store(&rd->busy_since, 0);
	atomic_store(&rd->done, true);
	return NULL;
}

int
perm_reader_spawn(struct engine *e)
{
	struct reader *rd;
	int r;

	pthread_mutex_lock(&e->readers_lock);
	if (e->n_readers >= ENGINE_MAX_READERS) {
		pthread_mutex_unlock(&e->readers_lock);
		return -EAGAIN;
	}
	rd = calloc(1, sizeof(*rd));
	if (!rd) {
		pthread_mutex_unlock(&e->readers_lock);
		return -ENOMEM;
	}
	rd->e = e;
	r = -pthread_create(&rd->thread, NULL, perm_reader_main, rd);
	if (r < 0) {
		free(rd);
		pthread_mutex_unlock(&e->readers_lock);
		return r;
	}
	e->readers[e->n_readers++] = rd;
	pthread_mutex_unlock(&e->readers_lock);
	return 0;
}

/* Joins readers that have finished. */
static void
readers_reap(struct engine *e)
{
	pthread_mutex_lock(&e->readers_lock);
	for (int i = 0; i < e->n_readers;) {
		struct reader *rd = e->readers[i];

		if (atomic_load(&rd->done)) {
			pthread_join(rd->thread, NULL);
			free(rd);
			e->readers[i] = e->readers[--e->n_readers];
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&e->readers_lock);
}

/* Answers, unseen, what the kernel has queued: every reader is held in a
 * callback, or the engine is stopping. Each event gets the strictest
 * default verdict of the filters that could own it (fallback_verdict). */
static void
emergency_drain(struct engine *e, bool stopping)
{
	static struct flt_log_limit allow_limit, deny_limit;
	struct dtable *t = dtable_acquire(e);
	uint8_t buf[4096];
	ssize_t n;

	/* The readers block in read(): non-blocking while this drains (a
	 * reader that gets EAGAIN meanwhile polls), and for good once the
	 * engine is stopping. */
	pthread_mutex_lock(&e->drain_lock);
	if (e->wake_fd >= 0)
		set_nonblocking_locked(e, true);
	while ((n = read(e->perm_fd, buf, sizeof(buf))) > 0) {
		struct fan_event fe;
		const char *why;
		size_t off = 0;

		while (fan_decode_next(buf, (size_t)n, &off, &fe, &why) > 0) {
			int v;

			if (skip_non_perm(&fe) || fe.fd < 0)
				continue;
			v = fe.pid == e->self_pid
				    ? 0
				    : fallback_verdict(e, t, perm_op(fe.mask), fe.fd);
			atomic_fetch_add(&e->ctr.emergency_answers, 1);
			atomic_fetch_add(v == 0 ? &e->ctr.allowed : &e->ctr.denied, 1);
			respond(e, fe.fd, v);
			if (fe.pid != e->self_pid && (v == 0 || !stopping))
				flt_log_decision_limited(
					e->mgr, v == 0 ? &allow_limit : &deny_limit,
					v == 0 ? FLT_LOG_WARNING : FLT_LOG_NOTICE,
					&(struct flt_decision){
						.op = perm_op(fe.mask),
						.pid = fe.pid,
						.verdict = v,
						.reason = stopping ? "stopping"
								   : "emergency",
						.detail =
							stopping
								? "stopping: unseen by "
								  "any "
								  "filter, the strictest "
								  "default verdict of "
								  "the "
								  "filters there"
								: "every permission "
								  "reader "
								  "is held in a "
								  "callback: "
								  "unseen by any filter, "
								  "the "
								  "strictest default "
								  "verdict "
								  "of the filters there; "
								  "counted in "
								  "emergency_answers" },
					fe.fd);
			close(fe.fd);
			if (fe.pidfd >= 0)
				close(fe.pidfd);
		}
	}
	if (e->wake_fd >= 0 && !atomic_load(&e->stopping))
		set_nonblocking_locked(e, false);
	pthread_mutex_unlock(&e->drain_lock);
	dtable_release(e, t);
}

static void
check_readers(struct engine *e)
{
	int64_t now = now_ns();
	bool all_stuck = true;
	int n;

	readers_reap(e);
	pthread_mutex_lock(&e->readers_lock);
	n = e->n_readers;
	for (int i = 0; i < n; i++) {
		struct reader *rd = e->readers[i];
		long long since = atomic_load(&rd->busy_since);

		if (atomic_load(&rd->retire) || atomic_load(&rd->done))
			continue;
		if (since == 0 || now - since < (int64_t)TAKEOVER_MS * 1000000)
			all_stuck = false;
	}
	pthread_mutex_unlock(&e->readers_lock);
	if (!all_stuck || atomic_load(&e->stopping))
		return;
	if (perm_reader_spawn(e) == 0) {
		log_info(e->mgr,
			 "every permission reader is busy in a callback for %d ms; "
			 "started another",
			 TAKEOVER_MS);
		return;
	}
	emergency_drain(e, false);
}

int
flt_manager_check_progress(flt_manager *manager, int grace_ms)
{
	struct engine *e;
	int64_t now = now_ns(), grace;
	int stuck_readers = 0, r = 0;

	if (!manager || grace_ms < 0)
		return -EINVAL;
	e = engine_of(manager);
	if (!e)
		return 0;
	grace = (int64_t)grace_ms * 1000000;
	pthread_mutex_lock(&e->pend_lock);
	for (struct perm_event *ev = e->pending; ev; ev = ev->pnext)
		if (!atomic_load(&ev->answered) && ev->deadline != INT64_MAX &&
		    now - ev->deadline > grace)
			r = -ETIMEDOUT;
	pthread_mutex_unlock(&e->pend_lock);
	pthread_mutex_lock(&e->readers_lock);
	for (int i = 0; i < e->n_readers; i++) {
		long long since = atomic_load(&e->readers[i]->busy_since);

		if (since != 0 && now - since > grace)
			stuck_readers++;
	}
	if (e->n_readers == ENGINE_MAX_READERS && stuck_readers == ENGINE_MAX_READERS)
		r = -ETIMEDOUT;
	pthread_mutex_unlock(&e->readers_lock);
	return r;
}

void *
watchdog_main(void *arg)
{
	struct engine *e = arg;
	int idle_ticks = 0;

	pthread_setname_np(pthread_self(), "flt-watchdog");
	while (!atomic_load(&e->stopping)) {
		struct perm_event *due[64];
		int verdict[64];
		size_t pos[64], n_due = 0;
		struct timespec ts;
		int64_t now;

		pthread_mutex_lock(&e->pend_lock);
		if (e->n_pending == 0 && ++idle_ticks > WATCHDOG_IDLE_TICKS) {
			/* Nothing in flight for a while: sleep until there is. */
			e->watchdog_idle = true;
			while (e->n_pending == 0 && !atomic_load(&e->stopping))
				pthread_cond_wait(&e->pend_cond, &e->pend_lock);
			e->watchdog_idle = false;
			idle_ticks = 0;
		}
		if (e->n_pending)
			idle_ticks = 0;
		now = now_ns();
		for (struct perm_event *ev = e->pending; ev && n_due < 64;
		     ev = ev->pnext) {
			if (ev->deadline <= now && !atomic_load(&ev->answered) && ev->t &&
			    ev->pos < ev->t->n) {
				atomic_fetch_add(&ev->refs, 1);
				verdict[n_due] = ev->default_verdict;
				pos[n_due] = ev->pos;
				due[n_due++] = ev;
			}
		}
		pthread_mutex_unlock(&e->pend_lock);
		for (size_t i = 0; i < n_due; i++) {
			answer_default(due[i], verdict[i], pos[i], "deadline passed");
			perm_event_unref(due[i]);
		}
		check_readers(e);
		ts = deadline_timespec(now_ns() + (int64_t)WATCHDOG_TICK_MS * 1000000);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	return NULL;
}

void
perm_abandon_filter(struct engine *e, flt_filter *f)
{
	for (;;) {
		struct perm_event *ev = NULL;
		int verdict = 0, owned = PEND_OWNED;
		size_t pos = 0;

		pthread_mutex_lock(&e->pend_lock);
		for (struct perm_event *x = e->pending; x; x = x->pnext) {
			if (!x->t || x->pos >= x->t->n || x->t->f[x->pos].filter != f ||
			    x->deadline == INT64_MAX)
				continue;
			if (atomic_load(&x->answered) &&
			    atomic_load(&x->pend_state) != PEND_OWNED)
				continue;
			ev = x;
			atomic_fetch_add(&ev->refs, 1);
			verdict = ev->default_verdict;
			pos = ev->pos;
			ev->deadline = INT64_MAX;
			break;
		}
		pthread_mutex_unlock(&e->pend_lock);
		if (!ev)
			return;
		answer_default(ev, verdict, pos, "unregistered while holding it");
		if (atomic_compare_exchange_strong(&ev->pend_state, &owned,
						   PEND_ABANDONED)) {
			/* The filter may still complete it later (a worker that
			 * has not noticed): the event stays valid for that, but
			 * lets go of the dispatch table now, so unregistering
			 * does not wait for it. */
			struct dtable *t;

			pthread_mutex_lock(&e->pend_lock);
			t = ev->t;
			ev->t = NULL;
			pthread_mutex_unlock(&e->pend_lock);
			dtable_release(e, t);
		}
		perm_event_unref(ev);
	}
}

void
perm_answer_all_at_shutdown(struct engine *e)
{
	/* Answer everything still unanswered, then what is still queued in
	 * the kernel: by the holder's default verdict, or else the strictest
	 * default of the filters still there (allow once none is left:
	 * what the kernel does when the group closes). */
	for (;;) {
		struct perm_event *ev = NULL;
		int expected = 0;

		pthread_mutex_lock(&e->pend_lock);
		for (struct perm_event *x = e->pending; x; x = x->pnext) {
			if (!atomic_load(&x->answered)) {
				ev = x;
				atomic_fetch_add(&ev->refs, 1);
				break;
			}
		}
		pthread_mutex_unlock(&e->pend_lock);
		if (!ev)
			break;
		if (atomic_compare_exchange_strong(&ev->answered, &expected, 1)) {
			int v;

			pthread_mutex_lock(&e->pend_lock);
			v = ev->deadline != INT64_MAX ? ev->default_verdict : 0;
			pthread_mutex_unlock(&e->pend_lock);
			if (v == 0)
				v = fallback_verdict(e, ev->t, ev->data.op, ev->fd);
			atomic_fetch_add(v == 0 ? &e->ctr.allowed : &e->ctr.denied, 1);
			respond(e, ev->fd, v);
		}
		perm_event_unref(ev);
	}
	emergency_drain(e, true);
}
