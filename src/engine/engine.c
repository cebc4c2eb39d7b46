/* SPDX-License-Identifier: MIT */
/*
 * engine.c — the engine's life cycle (started by the first
 * flt_start_filtering(), stopped by flt_manager_free()), the dispatch
 * tables, and the public calls that change who gets what: start, attach,
 * detach, exclusions, the verdict cache, statistics.
 *
 * Ports never need any of this: a manager that no filter starts never
 * opens a fanotify group.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/efd.h"
#include "engine/engine.h"
#include "engine/fanotify_compat.h"
#include "engine/mounts.h"
#include "engine/proc_cache.h"
#include "common/lockdep.h"

const char *
flt_operation_name(enum flt_operation op)
{
	static const char *const names[FLT_OP_COUNT_] = {
		[FLT_OP_OPEN] = "open",
		[FLT_OP_EXEC] = "exec",
		[FLT_OP_READ] = "read",
		[FLT_OP_WRITE] = "write",
		[FLT_OP_CLOSE_WRITE] = "close_write",
		[FLT_OP_CLOSE] = "close",
		[FLT_OP_ATTRIB] = "attrib",
		[FLT_OP_CREATE] = "create",
		[FLT_OP_DELETE] = "delete",
		[FLT_OP_RENAME] = "rename",
		[FLT_OP_OVERFLOW] = "overflow",
	};

	return (unsigned)op < FLT_OP_COUNT_ ? names[op] : "unknown";
}

/* ---- per-filter state ---- */

int
engine_filter_init(flt_filter *f, const struct flt_registration *reg)
{
	struct filter_engine *fe;

	for (size_t i = 0; i < reg->n_operations; i++) {
		const struct flt_operation_registration *o = &reg->operations[i];

		if ((unsigned)o->operation >= FLT_OP_COUNT_ || (!o->pre && !o->post))
			return -EINVAL;
		if (o->pre && o->operation != FLT_OP_OPEN &&
		    o->operation != FLT_OP_EXEC && o->operation != FLT_OP_READ)
			return -EINVAL; /* only these can be intercepted */
	}
	if (reg->n_operations && !reg->operations)
		return -EINVAL;
	if (reg->deadline_ms < 0 ||
	    (reg->default_verdict != 0 && reg->default_verdict != -EPERM))
		return -EINVAL;
	fe = calloc(1, sizeof(*fe));
	if (!fe)
		return -ENOMEM;
	for (size_t i = 0; i < reg->n_operations; i++) {
		const struct flt_operation_registration *o = &reg->operations[i];

		if (o->pre)
			fe->pre[o->operation] = o->pre;
		if (o->post)
			fe->post[o->operation] = o->post;
	}
	fe->instance_setup = reg->instance_setup;
	fe->volume_setup = reg->volume_setup;
	fe->instance_teardown = reg->instance_teardown;
	fe->unload = reg->unload;
	fe->counters = reg->counters;
	fe->cookie = reg->cookie;
	fe->deadline_ms =
		reg->deadline_ms ? reg->deadline_ms : ENGINE_DEFAULT_DEADLINE_MS;
	fe->default_verdict = reg->default_verdict;
	fe->flags = reg->flags;
	fe->altitude = strtold(reg->altitude, NULL);
	pthread_mutex_init(&fe->excl_lock, NULL);
	for (int op = 0; op < FLT_OP_COUNT_; op++)
		f->has_pre |= fe->pre[op] != NULL;
	f->pre_needs_process =
		f->has_pre && !(reg->flags & FLT_REGISTRATION_NO_PROCESS_DETAILS);
	f->eng = fe;
	return 0;
}

pthread_mutex_t engine_attach_lock = PTHREAD_MUTEX_INITIALIZER;

/* Under attach_lock, like every change of an instance list (the mount
 * watcher reads the lists under it). */
static void
filter_instances_teardown(flt_filter *f)
{
	struct filter_engine *fe = f->eng;

	pthread_mutex_lock(&engine_attach_lock);
	while (fe && fe->instances) {
		struct instance *in = fe->instances;

		fe->instances = in->next;
		if (fe->instance_teardown)
			fe->instance_teardown(f, in->context);
		free(in->path);
		free(in);
	}
	pthread_mutex_unlock(&engine_attach_lock);
}

void
engine_filter_free(flt_filter *f)
{
	struct filter_engine *fe = f->eng;

	if (!fe)
		return;
	filter_instances_teardown(f);
	if (fe->unload)
		fe->unload(f, fe->cookie);
	/* Whoever holds attach_lock (the mount watcher, a listing) and saw
	 * f->eng set may use it until it lets go. */
	pthread_mutex_lock(&engine_attach_lock);
	f->eng = NULL;
	pthread_mutex_unlock(&engine_attach_lock);
	exclusions_free(fe);
	volumes_policy_free(fe->policy);
	pthread_mutex_destroy(&fe->excl_lock);
	free(fe);
}

/* ---- dispatch tables ---- */

static void
dtable_free(struct dtable *t)
{
	for (size_t i = 0; i < t->n; i++) {
		for (size_t j = 0; j < t->f[i].n_inst; j++)
			free((char *)t->f[i].inst[j].path);
		free(t->f[i].inst);
	}
	free(t);
}

struct dtable *
dtable_acquire(struct engine *e)
{
	struct dtable *t;

	pthread_mutex_lock(&e->table_lock);
	t = e->table;
	atomic_fetch_add(&t->refs, 1);
	pthread_mutex_unlock(&e->table_lock);
	return t;
}

void
dtable_release(struct engine *e, struct dtable *t)
{
	if (atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	pthread_mutex_lock(&e->table_lock);
	for (struct dtable **pp = &e->retired; *pp; pp = &(*pp)->next_retired) {
		if (*pp == t) {
			*pp = t->next_retired;
			break;
		}
	}
	pthread_cond_broadcast(&e->table_released);
	pthread_mutex_unlock(&e->table_lock);
	dtable_free(t);
}

static int
cmp_altitude_desc(const void *a, const void *b)
{
	const struct dt_filter *x = a, *y = b;
	long double ax = x->filter->eng->altitude, ay = y->filter->eng->altitude;

	return ax < ay ? 1 : ax > ay ? -1 : strcmp(x->filter->name, y->filter->name);
}

static struct dtable *
dtable_build(struct engine *e)
{
	flt_manager *m = e->mgr;
	struct dtable *t;
	size_t n = 0, k = 0;

	pthread_mutex_lock(&m->lock);
	for (flt_filter *f = m->filters; f; f = f->next)
		n += f->eng && f->eng->started;
	t = calloc(1, sizeof(*t) + n * sizeof(struct dt_filter));
	if (!t) {
		pthread_mutex_unlock(&m->lock);
		return NULL;
	}
	atomic_init(&t->refs, 1);
	for (flt_filter *f = m->filters; f && k < n; f = f->next) {
		struct filter_engine *fe = f->eng;
		struct dt_filter *df;
		size_t ni = 0;

		if (!fe || !fe->started)
			continue;
		df = &t->f[k++];
		df->filter = f;
		for (int op = 0; op < FLT_OP_COUNT_; op++) {
			if (fe->pre[op])
				df->pre_ops |= op_bit(op);
			if (fe->post[op])
				df->post_ops |= op_bit(op);
			if (fe->post[op] && !fe->pre[op] && op != FLT_OP_OVERFLOW)
				df->notif_ops |= op_bit(op);
		}
		for (struct instance *in = fe->instances; in; in = in->next)
			ni++;
		df->inst = calloc(ni ? ni : 1, sizeof(*df->inst));
		if (!df->inst)
			goto oom;
		for (struct instance *in = fe->instances; in; in = in->next) {
			struct dt_instance *di = &df->inst[df->n_inst];

			di->path = strdup(in->path);
			if (!di->path)
				goto oom;
			df->n_inst++;
			di->kind = in->kind;
			di->len = strlen(in->path);
			di->dev = in->dev;
			di->fs_type = in->fs_type;
			di->mnt_id = in->mnt_id;
			di->context = in->context;
			di->ctr = &in->ctr;
		}
		t->pre_ops |= df->pre_ops;
		t->notif_ops |= df->notif_ops;
	}
	pthread_mutex_unlock(&m->lock);
	t->n = k;
	qsort(t->f, t->n, sizeof(t->f[0]), cmp_altitude_desc);
	return t;
oom:
	pthread_mutex_unlock(&m->lock);
	t->n = k;
	dtable_free(t);
	return NULL;
}

int
engine_rebuild_locked(struct engine *e)
{
	lockdep_assert_held(&e->lock);
	struct dtable *t = dtable_build(e), *old;
	int r;

	if (!t)
		return -ENOMEM;
	r = marks_sync_locked(e, t);
	pthread_mutex_lock(&e->table_lock);
	old = e->table;
	e->table = t;
	old->next_retired = e->retired;
	e->retired = old;
	pthread_mutex_unlock(&e->table_lock);
	dtable_release(e, old); /* the "current" reference */
	/* Who gets what changed: cached verdicts may no longer hold. */
	if (e->perm_fd >= 0 && perm_flush_inode_marks(e) == 0)
		atomic_fetch_add(&e->ctr.cache_flushes, 1);
	return r;
}

/* Waits until no table naming f is still in use (callbacks of f in
 * flight, or events holding an instance context of f). Other filters'
 * slow callbacks do not hold this up. */
static void
wait_filter_drained(struct engine *e, flt_filter *f)
{
	pthread_mutex_lock(&e->table_lock);
	for (;;) {
		bool busy = false;

		for (struct dtable *t = e->retired; t && !busy; t = t->next_retired)
			for (size_t i = 0; i < t->n && !busy; i++)
				busy = t->f[i].filter == f;
		if (!busy)
			break;
		pthread_cond_wait(&e->table_released, &e->table_lock);
	}
	pthread_mutex_unlock(&e->table_lock);
}

/* ---- life cycle ---- */

/*
 * Whether the permission group needs FAN_REPORT_PIDFD: the kernel makes a
 * pidfd (a new file) for every event, and we close it, only so that
 * flt_get_process() can prove who the process was. Decided once, when
 * the group is made, from the filters registered then: it is left out
 * only if there is at least one filter with pre callbacks and every one
 * of them registered FLT_REGISTRATION_NO_PROCESS_DETAILS. A group cannot
 * gain it later, so a filter without the flag that starts afterwards is
 * refused (flt_start_filtering), never silently given no details.
 */
static bool
perm_needs_pidfd(flt_manager *m)
{
	bool any_pre = false, need = false;

	pthread_mutex_lock(&m->lock);
	for (struct flt_filter *f = m->filters; f && !need; f = f->next) {
		any_pre |= f->has_pre;
		need = f->pre_needs_process;
	}
	pthread_mutex_unlock(&m->lock);
	return need || !any_pre;
}

static int
open_groups(struct engine *e)
{
	unsigned common = FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_MARKS;
	unsigned perm_pidfd = 0;

	if (e->feat.pidfd) {
		common |= FAN_REPORT_PIDFD; /* notifications: always */
		e->perm_pidfd = perm_needs_pidfd(e->mgr);
		if (!e->perm_pidfd)
			log_info(e->mgr,
				 "fanotify: the permission group reports no "
				 "pidfds: every filter with pre callbacks "
				 "registered FLT_REGISTRATION_NO_PROCESS_DETAILS");
	}
	if (e->perm_pidfd)
		perm_pidfd = FAN_REPORT_PIDFD;
	if (e->feat.unlimited_queue) {
		/* A bounded permission queue fails open when it overflows.
		 * O_NOATIME: reading a file through its event descriptor
		 * (a scan) must not tell its owner, by a moving atime, that
		 * the scan is under way, the moment to rewrite it. */
		e->perm_fd =
			fanotify_init(FAN_CLASS_CONTENT | FAN_UNLIMITED_QUEUE |
					      (common & ~FAN_REPORT_PIDFD) | perm_pidfd,
				      O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NOATIME);
		if (e->perm_fd < 0)
			return -errno;
	}
	if (e->feat.dfid_name_target) {
		e->notif_fd = fanotify_init(FAN_CLASS_NOTIF |
						    FAN_REPORT_DFID_NAME_TARGET | common,
					    O_RDONLY | O_LARGEFILE | O_CLOEXEC);
		if (e->notif_fd < 0)
			return -errno;
	}
	return 0;
}

void
engine_free(struct engine *e)
{
	if (!e)
		return;
	atomic_store(&e->stopping, true);
	if (e->stop_efd >= 0)
		eventfd_signal(e->stop_efd);
	pthread_mutex_lock(&e->pend_lock);
	pthread_cond_broadcast(&e->pend_cond);
	pthread_mutex_unlock(&e->pend_lock);
	if (e->perm_fd >= 0) {
		perm_wake_readers(e);
		perm_answer_all_at_shutdown(e);
	}
	if (e->watchdog_started)
		pthread_join(e->watchdog_thread, NULL);
	if (e->notif_started)
		pthread_join(e->notif_thread, NULL);
	/* All joined before any is freed: a reader still finishing its last
	 * event looks at the others (reader_retire_if_spare). */
	for (int i = 0; i < e->n_readers; i++)
		pthread_join(e->readers[i]->thread, NULL);
	for (int i = 0; i < e->n_readers; i++)
		free(e->readers[i]);
	mounts_stop(e);
	pthread_mutex_lock(&e->lock);
	marks_free_all_locked(e);
	pthread_mutex_unlock(&e->lock);
	if (e->table)
		dtable_release(e, e->table);
	if (e->perm_fd >= 0)
		close(e->perm_fd);
	if (e->wake_fd >= 0)
		close(e->wake_fd);
	if (e->notif_fd >= 0)
		close(e->notif_fd);
	if (e->stop_efd >= 0)
		close(e->stop_efd);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->table_lock);
	pthread_mutex_destroy(&e->pend_lock);
	pthread_mutex_destroy(&e->readers_lock);
	pthread_mutex_destroy(&e->drain_lock);
	pthread_cond_destroy(&e->pend_cond);
	pthread_cond_destroy(&e->table_released);
	proc_cache_free(e->procs);
	free(e);
}

int
engine_get(flt_manager *m, struct engine **ret)
{
	struct engine *e;
	int r;

	pthread_mutex_lock(&m->engine_lock);
	if (engine_of(m)) {
		*ret = engine_of(m);
		pthread_mutex_unlock(&m->engine_lock);
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&m->engine_lock);
		return -ENOMEM;
	}
	e->mgr = m;
	e->self_pid = getpid();
	e->perm_fd = e->notif_fd = e->wake_fd = -1;
	atomic_init(&e->deny_errno_ok, true);
	pthread_mutex_init(&e->drain_lock, NULL);
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->table_lock, NULL);
	pthread_mutex_init(&e->pend_lock, NULL);
	pthread_mutex_init(&e->readers_lock, NULL);
	pthread_cond_init(&e->pend_cond, NULL);
	pthread_cond_init(&e->table_released, NULL);
	e->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	e->table = calloc(1, sizeof(struct dtable));
	e->procs = proc_cache_new();
	if (e->stop_efd < 0 || !e->table || !e->procs) {
		r = -ENOMEM;
		goto fail;
	}
	atomic_init(&e->table->refs, 1);
	fan_probe(m, &e->feat);
	r = open_groups(e);
	if (r < 0) {
		log_error(m, "fanotify: cannot create a group: %s%s", strerror(-r),
			  r == -EPERM ? " (needs CAP_SYS_ADMIN)" : "");
		goto fail;
	}
	if (e->perm_fd >= 0) {
		perm_wake_setup(e);
		r = perm_reader_spawn(e);
		if (r < 0)
			goto fail;
		r = -pthread_create(&e->watchdog_thread, NULL, watchdog_main, e);
		if (r < 0)
			goto fail;
		e->watchdog_started = true;
	}
	if (e->notif_fd >= 0) {
		r = -pthread_create(&e->notif_thread, NULL, notif_reader_main, e);
		if (r < 0)
			goto fail;
		e->notif_started = true;
	}
	r = mounts_start(e);
	if (r < 0) {
		log_error(m, "cannot watch the mount table: %s", strerror(-r));
		goto fail;
	}
	atomic_store(&m->engine, e);
	pthread_mutex_unlock(&m->engine_lock);
	log_info(m, "engine started (pid %d)", (int)e->self_pid);
	*ret = e;
	return 0;
fail:
	pthread_mutex_unlock(&m->engine_lock);
	engine_free(e);
	return r;
}

/* ---- public calls ---- */

int
flt_start_filtering(flt_filter *filter)
{
	struct filter_engine *fe;
	struct engine *e;
	bool wants_pre = false, wants_notif = false;
	int r;

	if (!filter || !filter->eng)
		return -EINVAL;
	fe = filter->eng;
	for (int op = 0; op < FLT_OP_COUNT_; op++) {
		wants_pre |= fe->pre[op] != NULL;
		wants_notif |= fe->post[op] && !fe->pre[op] && op != FLT_OP_OVERFLOW;
	}
	r = engine_get(filter->mgr, &e);
	if (r < 0)
		return r;
	if ((wants_pre && e->perm_fd < 0) || (wants_notif && e->notif_fd < 0)) {
		log_error(filter->mgr, "filter %s: cannot start: %s", filter->name,
			  wants_pre && e->perm_fd < 0
				  ? "its pre callbacks need FAN_UNLIMITED_QUEUE (see the "
				    "fanotify warnings above)"
				  : "its post-only callbacks need name reporting (Linux "
				    "5.17, FAN_REPORT_DFID_NAME_TARGET)");
		return -EOPNOTSUPP;
	}
	if (wants_pre && e->feat.pidfd && !e->perm_pidfd &&
	    !(fe->flags & FLT_REGISTRATION_NO_PROCESS_DETAILS)) {
		log_error(filter->mgr,
			  "filter %s: cannot start: it may ask for process details, "
			  "and the permission group was made without pidfds because "
			  "every filter registered before it said "
			  "FLT_REGISTRATION_NO_PROCESS_DETAILS (register every filter "
			  "before starting any)",
			  filter->name);
		return -EOPNOTSUPP;
	}
	pthread_mutex_lock(&e->lock);
	if (fe->started) {
		pthread_mutex_unlock(&e->lock);
		return -EALREADY;
	}
	fe->started = true;
	r = engine_rebuild_locked(e);
	if (r < 0) {
		fe->started = false;
		(void)engine_rebuild_locked(e);
	}
	pthread_mutex_unlock(&e->lock);
	if (r == 0) {
		log_info(filter->mgr, "filter %s: filtering", filter->name);
		volumes_apply(e, filter); /* its automatic instances, if any */
	}
	return r;
}

static int
canonical(const char *path, char **ret, struct stat *st)
{
	char buf[PATH_MAX];

	if (!realpath(path, buf))
		return -errno;
	if (stat(buf, st) < 0)
		return -errno;
	*ret = strdup(buf);
	return *ret ? 0 : -ENOMEM;
}

static long
fs_type_of(const char *path)
{
	struct statfs sfs;

	return statfs(path, &sfs) == 0 ? (long)sfs.f_type : 0;
}

struct instance *
instance_new(const char *cpath, const struct stat *st, enum flt_instance_kind kind,
	     void *ctx)
{
	struct instance *in = calloc(1, sizeof(*in));

	if (!in || !(in->path = strdup(cpath))) {
		free(in);
		return NULL;
	}
	in->kind = kind;
	in->dev = mounts_fs_dev_of_path(cpath);
	if (!in->dev)
		in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->fs_type = fs_type_of(cpath);
	in->mnt_id = mounts_id_of_path(cpath);
	in->context = ctx;
	in->state = FLT_INSTANCE_ATTACHED;
	clock_gettime(CLOCK_REALTIME, &in->state_time);
	return in;
}

static const char *
kind_name(enum flt_instance_kind kind)
{
	return kind == FLT_INSTANCE_SUBTREE ? "subtree"
	       : kind == FLT_INSTANCE_MOUNT ? "mount"
					    : "filesystem";
}

int
engine_instance_insert_locked(flt_filter *filter, struct instance *in)
{
	lockdep_assert_held(&engine_attach_lock);
	struct filter_engine *fe = filter->eng;
	struct engine *e = engine_of(filter->mgr);
	int r = 0;

	if (e)
		pthread_mutex_lock(&e->lock);
	in->next = fe->instances;
	fe->instances = in;
	if (e && fe->started) {
		r = engine_rebuild_locked(e);
		if (r < 0) {
			fe->instances = in->next;
			(void)engine_rebuild_locked(e);
		}
	}
	if (e)
		pthread_mutex_unlock(&e->lock);
	if (r < 0) {
		if (e)
			wait_filter_drained(e, filter);
		if (fe->instance_teardown)
			fe->instance_teardown(filter, in->context);
		free(in->path);
		free(in);
		return r;
	}
	log_info(filter->mgr, "filter %s: attached to %s (%s%s)", filter->name, in->path,
		 kind_name(in->kind), in->automatic ? ", automatic" : "");
	return 0;
}

void
engine_instance_remove_locked(flt_filter *filter, struct instance *in)
{
	lockdep_assert_held(&engine_attach_lock);
	struct filter_engine *fe = filter->eng;
	struct engine *e = engine_of(filter->mgr);

	if (e)
		pthread_mutex_lock(&e->lock);
	for (struct instance **pp = &fe->instances; *pp; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	if (e && fe->started)
		(void)engine_rebuild_locked(e);
	if (e)
		pthread_mutex_unlock(&e->lock);
	/* Callbacks in flight may still use the instance context. */
	if (e)
		wait_filter_drained(e, filter);
	if (fe->instance_teardown)
		fe->instance_teardown(filter, in->context);
	log_info(filter->mgr, "filter %s: detached from %s%s", filter->name, in->path,
		 in->automatic ? " (automatic)" : "");
	free(in->path);
	free(in);
}

int
flt_attach(flt_filter *filter, const char *path, enum flt_instance_kind kind)
{
	struct filter_engine *fe;
	struct instance *in;
	struct stat st;
	char *cpath = NULL;
	void *ctx = NULL;
	int r;

	if (!filter || !filter->eng || !path || (unsigned)kind > FLT_INSTANCE_FILESYSTEM)
		return -EINVAL;
	fe = filter->eng;
	r = canonical(path, &cpath, &st);
	if (r < 0)
		return r;
	if (!S_ISDIR(st.st_mode)) {
		free(cpath);
		return -ENOTDIR;
	}
	pthread_mutex_lock(&engine_attach_lock);
	for (struct instance *o = fe->instances; o; o = o->next) {
		if (!strcmp(o->path, cpath) && !o->automatic) {
			pthread_mutex_unlock(&engine_attach_lock);
			free(cpath);
			return -EEXIST;
		}
	}
	if (fe->instance_setup) {
		r = fe->instance_setup(filter, cpath, kind, &ctx);
		if (r != 0) {
			pthread_mutex_unlock(&engine_attach_lock);
			free(cpath);
			return r < 0 ? r : -EPERM;
		}
	}
	in = instance_new(cpath, &st, kind, ctx);
	free(cpath);
	if (!in) {
		if (fe->instance_teardown)
			fe->instance_teardown(filter, ctx);
		pthread_mutex_unlock(&engine_attach_lock);
		return -ENOMEM;
	}
	r = engine_instance_insert_locked(filter, in);
	pthread_mutex_unlock(&engine_attach_lock);
	return r;
}

int
flt_detach(flt_filter *filter, const char *path)
{
	struct filter_engine *fe;
	struct instance *in = NULL;
	struct stat st;
	char *cpath = NULL;

	if (!filter || !filter->eng || !path)
		return -EINVAL;
	fe = filter->eng;
	if (canonical(path, &cpath, &st) < 0)
		cpath = strdup(path); /* the directory may be gone */
	if (!cpath)
		return -ENOMEM;
	pthread_mutex_lock(&engine_attach_lock);
	for (in = fe->instances; in; in = in->next)
		if (!strcmp(in->path, cpath) && !in->automatic)
			break;
	free(cpath);
	if (!in) {
		pthread_mutex_unlock(&engine_attach_lock);
		return -ENOENT;
	}
	engine_instance_remove_locked(filter, in);
	pthread_mutex_unlock(&engine_attach_lock);
	return 0;
}

/* ---- instances against the mount table ---- */

struct reval {
	flt_filter *filter;
	struct instance *in;
	int err; /* of stat(in->path), 0 if it worked */
	struct stat st;
	dev_t dev; /* its filesystem's, mounts_fs_dev_of_path() */
	uint64_t mnt_id;
};

static const char *
state_name(enum flt_instance_state s)
{
	return s == FLT_INSTANCE_REATTACHED ? "re-attached"
	       : s == FLT_INSTANCE_STALE    ? "stale"
					    : "attached";
}

bool
engine_revalidate_instances(struct engine *e)
{
	flt_manager *m = e->mgr;
	struct reval *v = NULL;
	size_t n = 0, cap = 0;
	bool moved = false, again = false;

	marks_reanchor(e);
	/* attach_lock: no instance, no filter's engine state and so no
	 * filter is freed while we hold it (filter_instances_teardown and
	 * engine_filter_free take it). The paths are stat'ed without
	 * e->lock (a hung mount must not stall event resolution, which
	 * takes e->lock). */
	pthread_mutex_lock(&engine_attach_lock);
	pthread_mutex_lock(&m->lock);
	for (flt_filter *f = m->filters; f; f = f->next) {
		if (!f->eng)
			continue;
		for (struct instance *in = f->eng->instances; in; in = in->next) {
			if (in->automatic)
				continue; /* bound to its volume: volumes.c */
			if (n == cap) {
				struct reval *nv =
					realloc(v, (cap ? 2 * cap : 8) * sizeof(*v));

				if (!nv)
					break;
				v = nv;
				cap = cap ? 2 * cap : 8;
			}
			v[n++] = (struct reval){ .filter = f, .in = in };
		}
	}
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < n; i++) {
		v[i].err = stat(v[i].in->path, &v[i].st) < 0 ? errno : 0;
		if (!v[i].err)
			v[i].dev = mounts_fs_dev_of_path_cached(e, v[i].in->path,
								&v[i].mnt_id);
		if (!v[i].err && !v[i].dev)
			v[i].dev = v[i].st.st_dev;
	}
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < n; i++) {
		struct instance *in = v[i].in;
		enum flt_instance_state was = in->state;
		const char *fname = v[i].filter->name;

		if (v[i].err) {
			if (was == FLT_INSTANCE_STALE)
				continue;
			in->state = FLT_INSTANCE_STALE;
			clock_gettime(CLOCK_REALTIME, &in->state_time);
			log_warning(
				m,
				"filter %s: instance %s: the path is gone (%s); it keeps "
				"the filesystem it had (%u:%u) until the path comes back",
				fname, in->path, strerror(v[i].err), major(in->dev),
				minor(in->dev));
			continue;
		}
		if (v[i].dev != in->dev) {
			log_warning(m,
				    "filter %s: instance %s now names another filesystem "
				    "(%u:%u, was %u:%u): re-attached to it",
				    fname, in->path, major(v[i].dev), minor(v[i].dev),
				    major(in->dev), minor(in->dev));
			in->dev = v[i].dev;
			in->ino = v[i].st.st_ino;
			in->mnt_id = v[i].mnt_id;
			in->fs_type = fs_type_of(in->path);
			in->state = FLT_INSTANCE_REATTACHED;
			in->reattaches++;
			clock_gettime(CLOCK_REALTIME, &in->state_time);
			atomic_fetch_add(&e->ctr.instance_reattaches, 1);
			moved = true;
		} else if (v[i].mnt_id && v[i].mnt_id != in->mnt_id) {
			/* The same filesystem, another mount (mounted again, a
			 * bind mount on top): a MOUNT instance follows it. */
			in->mnt_id = v[i].mnt_id;
			moved = true;
			if (was == FLT_INSTANCE_STALE) {
				in->state = in->reattaches ? FLT_INSTANCE_REATTACHED
							   : FLT_INSTANCE_ATTACHED;
				clock_gettime(CLOCK_REALTIME, &in->state_time);
			}
		} else if (was == FLT_INSTANCE_STALE) {
			in->state = in->reattaches ? FLT_INSTANCE_REATTACHED
						   : FLT_INSTANCE_ATTACHED;
			in->ino = v[i].st.st_ino;
			clock_gettime(CLOCK_REALTIME, &in->state_time);
			log_notice(m, "filter %s: instance %s: the path is back (%s)",
				   fname, in->path, state_name(in->state));
		}
	}
	if (moved) {
		int r = engine_rebuild_locked(e);

		if (r == -ESTALE)
			again = true; /* a mount came in between: once more */
		else if (r < 0)
			log_error(m, "re-attaching instances: cannot mark every "
				     "filesystem; see the errors above");
	}
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_unlock(&engine_attach_lock);
	free(v);
	return again;
}

uint32_t
flt_manager_kernel_features(flt_manager *manager)
{
	struct fan_features f;
	struct engine *e;
	uint32_t bits = 0;

	if (!manager)
		return 0;
	e = engine_of(manager);
	if (e)
		f = e->feat;
	else
		fan_probe(manager, &f);
	bits |= f.pidfd ? FLT_KF_PIDFD : 0;
	bits |= f.dfid_name_target ? FLT_KF_NAMES : 0;
	bits |= f.rename ? FLT_KF_RENAME : 0;
	bits |= f.evictable ? FLT_KF_EVICTABLE : 0;
	bits |= f.mark_ignore ? FLT_KF_MARK_IGNORE : 0;
	bits |= f.pre_content ? FLT_KF_PRE_CONTENT : 0;
	bits |= f.unlimited_queue ? FLT_KF_UNLIMITED_QUEUE : 0;
	bits |= f.pidfs ? FLT_KF_PIDFS : 0;
	bits |= f.pidfd_get_info ? FLT_KF_PIDFD_GET_INFO : 0;
	return bits;
}

int
flt_manager_recheck_instances(flt_manager *manager)
{
	struct engine *e;

	if (!manager)
		return -EINVAL;
	e = engine_of(manager);
	for (int i = 0; e && i < 10 && engine_revalidate_instances(e); i++)
		;
	return 0;
}

int
flt_filter_list_instances(flt_filter *filter, struct flt_instance_info **ret_info,
			  size_t *ret_n)
{
	struct flt_instance_info *info;
	size_t n = 0, bytes = 0;
	char *strings;

	if (!filter || !filter->eng || !ret_info || !ret_n)
		return -EINVAL;
	/* attach_lock: the list and the paths stay put while we copy. */
	pthread_mutex_lock(&engine_attach_lock);
	if (!filter->eng) {
		pthread_mutex_unlock(&engine_attach_lock);
		return -EINVAL;
	}
	for (struct instance *in = filter->eng->instances; in; in = in->next) {
		n++;
		bytes += strlen(in->path) + 1;
	}
	info = malloc(n * sizeof(*info) + bytes + 1);
	if (!info) {
		pthread_mutex_unlock(&engine_attach_lock);
		return -ENOMEM;
	}
	strings = (char *)(info + n);
	n = 0;
	for (struct instance *in = filter->eng->instances; in; in = in->next, n++) {
		size_t len = strlen(in->path) + 1;

		memcpy(strings, in->path, len);
		info[n] = (struct flt_instance_info){
			.path = strings,
			.kind = in->kind,
			.events = atomic_load(&in->ctr.events),
			.denied = atomic_load(&in->ctr.denied),
			.state = in->state,
			.state_time = in->state_time,
			.reattaches = in->reattaches,
			.mount_id = in->mnt_id,
			.dev = in->dev,
			.automatic = in->automatic,
		};
		strings += len;
	}
	pthread_mutex_unlock(&engine_attach_lock);
	*ret_info = info;
	*ret_n = n;
	return (int)n;
}

void
engine_filter_stop(flt_filter *f)
{
	flt_manager *m = f->mgr;
	struct engine *e = engine_of(m);

	if (!f->eng)
		return;
	if (e && f->eng->started) {
		pthread_mutex_lock(&e->lock);
		f->eng->started = false;
		(void)engine_rebuild_locked(e);
		pthread_mutex_unlock(&e->lock);
		perm_abandon_filter(e, f);
		/* Waits for callbacks in flight: every event dispatched with
		 * a table naming f holds that table. */
		wait_filter_drained(e, f);
	}
	filter_instances_teardown(f);
}

int
flt_flush_verdict_cache(flt_manager *manager)
{
	struct engine *e;
	int r;

	if (!manager)
		return -EINVAL;
	e = engine_of(manager);
	if (!e || e->perm_fd < 0)
		return 0;
	r = perm_flush_inode_marks(e);
	if (r < 0)
		return r;
	atomic_fetch_add(&e->ctr.cache_flushes, 1);
	return 0;
}

int
flt_filter_get_stats(flt_filter *filter, struct flt_filter_stats *ret)
{
	struct filter_counters *c;

	if (!filter || !filter->eng || !ret)
		return -EINVAL;
	c = &filter->eng->ctr;
	*ret = (struct flt_filter_stats){
		.seen = atomic_load(&c->seen),
		.delivered = atomic_load(&c->delivered),
		.allowed = atomic_load(&c->allowed),
		.denied = atomic_load(&c->denied),
		.pended = atomic_load(&c->pended),
		.deadline_defaults = atomic_load(&c->deadline_defaults),
		.late_completions = atomic_load(&c->late_completions),
		.excluded = atomic_load(&c->excluded),
		.timeouts_capped = atomic_load(&c->timeouts_capped),
	};
	return 0;
}

/* [a-z0-9_]{1,63}: fits a JSON key and a table cell as it is. */
static bool
valid_counter_name(const char *s)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++)
		if (n >= 63 || !((s[n] >= 'a' && s[n] <= 'z') ||
				 (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
			return false;
	return n > 0;
}

int
flt_filter_get_counters(flt_filter *filter, struct flt_counter *out, size_t cap,
			size_t *ret_n)
{
	size_t n;

	if (!filter || !filter->eng || (!out && cap) || !ret_n)
		return -EINVAL;
	if (!filter->eng->counters) {
		*ret_n = 0;
		return 0;
	}
	n = filter->eng->counters(filter->eng->cookie, out, cap);
	if (n > cap)
		n = cap;
	for (size_t i = 0; i < n; i++)
		if (!valid_counter_name(out[i].name))
			out[i].name = "invalid";
	*ret_n = n;
	return 0;
}

int
flt_manager_get_stats(flt_manager *manager, struct flt_engine_stats *ret)
{
	struct engine *e;

	if (!manager || !ret)
		return -EINVAL;
	*ret = (struct flt_engine_stats){ 0 };
	e = engine_of(manager);
	if (!e)
		return 0;
	ret->permission_events = atomic_load(&e->ctr.permission_events);
	ret->notification_events = atomic_load(&e->ctr.notification_events);
	ret->self_events = atomic_load(&e->ctr.self_events);
	ret->allowed = atomic_load(&e->ctr.allowed);
	ret->denied = atomic_load(&e->ctr.denied);
	ret->deadline_defaults = atomic_load(&e->ctr.deadline_defaults);
	ret->overflows = atomic_load(&e->ctr.overflows);
	ret->dropped = atomic_load(&e->ctr.dropped);
	ret->cache_inserts = atomic_load(&e->ctr.cache_inserts);
	ret->cache_flushes = atomic_load(&e->ctr.cache_flushes);
	ret->emergency_answers = atomic_load(&e->ctr.emergency_answers);
	ret->notif_ignored = atomic_load(&e->ctr.notif_ignored);
	ret->notif_resolved = atomic_load(&e->ctr.notif_resolved);
	ret->notif_unresolved = atomic_load(&e->ctr.notif_unresolved);
	ret->notif_lost = atomic_load(&e->ctr.notif_lost);
	ret->read_errors = atomic_load(&e->ctr.read_errors);
	ret->scope_uncertain = atomic_load(&e->ctr.scope_uncertain);
	ret->cache_refused = atomic_load(&e->ctr.cache_refused);
	ret->mount_changes = atomic_load(&e->ctr.mount_changes);
	ret->instance_reattaches = atomic_load(&e->ctr.instance_reattaches);
	ret->volumes_attached = atomic_load(&e->ctr.volumes_attached);
	ret->volumes_detached = atomic_load(&e->ctr.volumes_detached);
	ret->volumes_declined = atomic_load(&e->ctr.volumes_declined);
	if (e->procs) {
		struct proc_cache_stats ps;

		proc_cache_get_stats(e->procs, &ps);
		ret->process_cache_hits = ps.hits;
		ret->process_cache_misses = ps.misses;
		ret->process_cache_invalidations = ps.invalidations;
		ret->process_cache_evictions = ps.evictions;
	}
	pthread_mutex_lock(&e->pend_lock);
	for (struct perm_event *ev = e->pending; ev; ev = ev->pnext)
		ret->pending += !atomic_load(&ev->answered);
	pthread_mutex_unlock(&e->pend_lock);
	pthread_mutex_lock(&e->readers_lock);
	ret->readers = (uint32_t)e->n_readers;
	pthread_mutex_unlock(&e->readers_lock);
	return 0;
}
