/* SPDX-License-Identifier: MIT */
/*
 * volumes.c — automatic attachment: instances that follow the machine's
 * mounts, as minifilters get InstanceSetup for every volume on Windows.
 *
 * A filter's policy (flt_set_auto_attach) selects volumes by file-system
 * type and mount point. For every selected volume present when the
 * filter starts (or the policy is set) and every one mounted later, the
 * filter's volume setup callback may decline; otherwise the filter gets
 * an automatic instance there: a MOUNT instance bound to that mount id,
 * or a FILESYSTEM instance bound to the filesystem (one per filesystem,
 * whichever of its mounts comes first). When the mount goes (for a
 * FILESYSTEM instance: the last mount of that filesystem), or the policy
 * stops selecting it, the instance is detached and its teardown callback
 * runs. Instances attached by path (flt_attach) are never touched here.
 *
 * Runs on the mount watcher's thread (volumes_changed) and on the thread
 * that starts a filter or sets its policy (volumes_apply), always under
 * engine_attach_lock, which keeps every filter's engine state, and so the
 * filter, alive while it is held (engine.c).
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "engine/mounts.h"

struct auto_policy {
	char **fs_types; /* NULL-terminated; "*" any non-pseudo */
	char **points;   /* NULL: any */
	char **exclude;
	enum flt_instance_kind kind;
};

static void
strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static int
strv_copy(const char *const *from, char ***ret)
{
	size_t n = 0;
	char **v;

	*ret = NULL;
	if (!from)
		return 0;
	while (from[n])
		n++;
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(v[i] = strdup(from[i]))) {
			strv_free(v);
			return -ENOMEM;
		}
	*ret = v;
	return 0;
}

void
volumes_policy_free(struct auto_policy *p)
{
	if (!p)
		return;
	strv_free(p->fs_types);
	strv_free(p->points);
	strv_free(p->exclude);
	free(p);
}

static bool
any_match(char *const *patterns, const char *s)
{
	for (size_t i = 0; patterns && patterns[i]; i++)
		if (fnmatch(patterns[i], s, 0) == 0)
			return true;
	return false;
}

static bool
selects(const struct auto_policy *p, const struct mount_entry *m)
{
	bool type = false;

	for (size_t i = 0; p->fs_types && p->fs_types[i]; i++)
		if (!strcmp(p->fs_types[i], m->fstype) ||
		    (!strcmp(p->fs_types[i], "*") &&
		     !mounttab_fstype_is_pseudo(m->fstype)))
			type = true;
	if (!type)
		return false;
	if (p->points && !any_match(p->points, m->point))
		return false;
	return !any_match(p->exclude, m->point);
}

static void
volume_of(const struct mount_entry *m, struct flt_volume *v)
{
	*v = (struct flt_volume){
		.mount_id = m->id,
		.dev = m->dev,
		.mount_point = m->point,
		.fs_type = m->fstype,
		.source = m->source,
		.root = m->root,
		.flags = ((m->flags & MOUNT_READ_ONLY) ? FLT_VOLUME_READ_ONLY : 0) |
			 (strcmp(m->root, "/") ? FLT_VOLUME_BIND : 0) |
			 (mounttab_fstype_is_pseudo(m->fstype) ? FLT_VOLUME_PSEUDO : 0),
	};
}

/* Whether f has an automatic instance for m already (or, for a
 * FILESYSTEM kind, any FILESYSTEM instance on m's filesystem). */
static bool
covered(const struct filter_engine *fe, const struct mount_entry *m,
	enum flt_instance_kind kind)
{
	for (const struct instance *in = fe->instances; in; in = in->next) {
		if (kind == FLT_INSTANCE_FILESYSTEM &&
		    in->kind == FLT_INSTANCE_FILESYSTEM && in->dev == m->dev)
			return true;
		if (kind == FLT_INSTANCE_MOUNT && in->automatic && in->mnt_id == m->id &&
		    in->dev == m->dev)
			return true;
		if (!in->automatic && in->kind == kind && !strcmp(in->path, m->point))
			return true;
	}
	return false;
}

static void
attach_one(struct engine *e, flt_filter *f, const struct mount_entry *m,
	   enum flt_setup_reason why)
{
	struct filter_engine *fe = f->eng;
	enum flt_instance_kind kind = fe->policy->kind;
	struct flt_volume vol;
	struct instance *in;
	struct stat st;
	void *ctx = NULL;
	int r;

	if (covered(fe, m, kind))
		return;
	/* The mount point must still lead to this mount (a mount on top of
	 * it hides it, and is a volume of its own). */
	if (stat(m->point, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    mounts_id_of_path(m->point) != m->id)
		return;
	volume_of(m, &vol);
	if (fe->volume_setup)
		r = fe->volume_setup(f, &vol, why, &kind, &ctx);
	else if (fe->instance_setup)
		r = fe->instance_setup(f, m->point, kind, &ctx);
	else
		r = 0;
	if (r != 0) {
		log_info(e->mgr, "filter %s: declined the volume %s (%s, mount %llu): %s",
			 f->name, m->point, m->fstype, (unsigned long long)m->id,
			 strerror(r < 0 ? -r : EPERM));
		atomic_fetch_add(&e->ctr.volumes_declined, 1);
		return;
	}
	if (kind != FLT_INSTANCE_MOUNT)
		kind = FLT_INSTANCE_FILESYSTEM;
	if (kind != fe->policy->kind && covered(fe, m, kind)) {
		if (fe->instance_teardown)
			fe->instance_teardown(f, ctx);
		return;
	}
	in = instance_new(m->point, &st, kind, ctx);
	if (!in) {
		if (fe->instance_teardown)
			fe->instance_teardown(f, ctx);
		log_error(e->mgr, "filter %s: no memory to attach to %s", f->name,
			  m->point);
		return;
	}
	in->automatic = true;
	in->mnt_id = m->id;
	in->dev = m->dev;
	r = engine_instance_insert_locked(f, in);
	if (r < 0) {
		log_error(e->mgr, "filter %s: cannot attach to the volume %s: %s",
			  f->name, m->point, strerror(-r));
		return;
	}
	atomic_fetch_add(&e->ctr.volumes_attached, 1);
	log_notice(e->mgr, "filter %s: attached to the volume %s (%s %s, mount %llu, %s)",
		   f->name, m->point, m->fstype, m->source, (unsigned long long)m->id,
		   why == FLT_SETUP_NEWLY_MOUNTED ? "newly mounted" : "present");
}

/* The automatic instances of f whose volume is gone or no longer
 * selected. */
static void
detach_gone(struct engine *e, flt_filter *f, const struct mount_table *now)
{
	struct filter_engine *fe = f->eng;

	for (;;) {
		struct instance *gone = NULL;

		for (struct instance *in = fe->instances; in && !gone; in = in->next) {
			bool keep = false;

			if (!in->automatic)
				continue;
			if (fe->policy && in->kind == FLT_INSTANCE_FILESYSTEM) {
				for (size_t i = 0; i < now->n && !keep; i++)
					keep = now->v[i].dev == in->dev &&
					       selects(fe->policy, &now->v[i]);
			} else if (fe->policy) {
				/* A mount moved elsewhere (mount --move keeps its
				 * id) is set up again at its new place. */
				const struct mount_entry *m =
					mounttab_find(now, in->mnt_id);

				keep = m && m->dev == in->dev &&
				       !strcmp(m->point, in->path) &&
				       selects(fe->policy, m);
			}
			if (!keep)
				gone = in;
		}
		if (!gone)
			return;
		log_notice(e->mgr, "filter %s: the volume %s (mount %llu) is gone%s",
			   f->name, gone->path, (unsigned long long)gone->mnt_id,
			   fe->policy ? "" : " (automatic attachment turned off)");
		atomic_fetch_add(&e->ctr.volumes_detached, 1);
		engine_instance_remove_locked(f, gone);
	}
}

/* Mount ids are reused once freed: the same mount is the same id on the
 * same filesystem at the same place. */
static bool
was_there(const struct mount_table *old, const struct mount_entry *m)
{
	const struct mount_entry *o = mounttab_find(old, m->id);

	return o && o->dev == m->dev && !strcmp(o->point, m->point);
}

static void
apply_locked(struct engine *e, flt_filter *f, const struct mount_table *now,
	     const struct mount_table *old)
{
	struct filter_engine *fe = f->eng;
	bool started;

	if (!fe)
		return;
	pthread_mutex_lock(&e->lock); /* started is guarded by it */
	started = fe->started;
	pthread_mutex_unlock(&e->lock);
	if (!started)
		return;
	detach_gone(e, f, now);
	if (!fe->policy)
		return;
	for (size_t i = 0; i < now->n; i++) {
		const struct mount_entry *m = &now->v[i];

		if (selects(fe->policy, m))
			attach_one(e, f, m,
				   old && !was_there(old, m) ? FLT_SETUP_NEWLY_MOUNTED
							     : FLT_SETUP_AUTOMATIC);
	}
}

void
volumes_changed(struct engine *e, const struct mount_table *old)
{
	flt_manager *m = e->mgr;
	struct mount_table *now = NULL;
	flt_filter **v = NULL;
	size_t n = 0;

	if (mounts_snapshot(e, &now) < 0)
		return;
	pthread_mutex_lock(&engine_attach_lock);
	pthread_mutex_lock(&m->lock);
	for (flt_filter *f = m->filters; f; f = f->next)
		n++;
	v = calloc(n ? n : 1, sizeof(*v));
	n = 0;
	for (flt_filter *f = m->filters; v && f; f = f->next)
		if (f->eng && (f->eng->policy || f->eng->instances))
			v[n++] = f;
	pthread_mutex_unlock(&m->lock);
	/* Filters stay alive while engine_attach_lock is held (engine.c). */
	for (size_t i = 0; i < n; i++)
		if (v[i]->eng)
			apply_locked(e, v[i], now, old);
	pthread_mutex_unlock(&engine_attach_lock);
	free(v);
	mounttab_free(now);
}

void
volumes_apply(struct engine *e, flt_filter *f)
{
	struct mount_table *now = NULL;

	if (mounts_snapshot(e, &now) < 0)
		return;
	pthread_mutex_lock(&engine_attach_lock);
	if (f->eng)
		apply_locked(e, f, now, NULL);
	pthread_mutex_unlock(&engine_attach_lock);
	mounttab_free(now);
}

int
flt_set_auto_attach(flt_filter *filter, const struct flt_auto_attach *policy)
{
	struct auto_policy *p = NULL, *old;
	struct engine *e;
	int r;

	if (!filter || !filter->eng)
		return -EINVAL;
	if (policy && policy->fs_types && policy->fs_types[0]) {
		if (policy->kind != FLT_INSTANCE_MOUNT &&
		    policy->kind != FLT_INSTANCE_FILESYSTEM)
			return -EINVAL;
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->kind = policy->kind;
		r = strv_copy(policy->fs_types, &p->fs_types);
		if (!r)
			r = strv_copy(policy->mount_points, &p->points);
		if (!r)
			r = strv_copy(policy->exclude, &p->exclude);
		if (r < 0) {
			volumes_policy_free(p);
			return r;
		}
	}
	pthread_mutex_lock(&engine_attach_lock);
	old = filter->eng->policy;
	filter->eng->policy = p;
	pthread_mutex_unlock(&engine_attach_lock);
	volumes_policy_free(old);
	e = engine_of(filter->mgr);
	if (e)
		volumes_apply(e, filter);
	return 0;
}

int
flt_manager_list_volumes(flt_manager *manager, struct flt_volume **ret, size_t *ret_n)
{
	struct mount_table *t = NULL;
	struct flt_volume *v;
	struct engine *e;
	size_t bytes = 0;
	char *w;
	int r;

	if (!manager || !ret || !ret_n)
		return -EINVAL;
	*ret = NULL;
	*ret_n = 0;
	e = engine_of(manager);
	if (!e)
		return 0;
	r = mounts_snapshot(e, &t);
	if (r < 0)
		return r;
	for (size_t i = 0; i < t->n; i++)
		bytes += strlen(t->v[i].point) + strlen(t->v[i].fstype) +
			 strlen(t->v[i].source) + strlen(t->v[i].root) + 4;
	v = malloc(t->n * sizeof(*v) + bytes + 1);
	if (!v) {
		mounttab_free(t);
		return -ENOMEM;
	}
	w = (char *)(v + t->n);
	for (size_t i = 0; i < t->n; i++) {
		const char **s[4];

		volume_of(&t->v[i], &v[i]);
		s[0] = &v[i].mount_point;
		s[1] = &v[i].fs_type;
		s[2] = &v[i].source;
		s[3] = &v[i].root;
		for (int j = 0; j < 4; j++) {
			size_t len = strlen(*s[j]) + 1;

			memcpy(w, *s[j], len);
			*s[j] = w;
			w += len;
		}
	}
	*ret = v;
	*ret_n = t->n;
	r = (int)t->n;
	mounttab_free(t);
	return r;
}
