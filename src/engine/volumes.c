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
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "engine/mounts.h"
#include "common/lockdep.h"

struct auto_policy {
	char **fs_types; /* NULL-terminated; "*" any non-pseudo */
	char **points;   /* NULL: any */
	char **exclude;
	enum flt_instance_kind kind;
	pid_t ns_pid; /* 0: the daemon's namespace */
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
volume_of(const struct mount_entry *m, pid_t ns_pid, struct flt_volume *v)
{
	*v = (struct flt_volume){
		.ns_pid = ns_pid,
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

/* The path the daemon reaches a volume by: its mount point, or through
 * /proc/PID/root for a watched namespace. */
static void
reach_path(const struct mount_entry *m, pid_t ns_pid, char *buf, size_t size)
{
	if (!ns_pid)
		snprintf(buf, size, "%s", m->point);
	else
		snprintf(buf, size, "/proc/%d/root%s", (int)ns_pid,
			 strcmp(m->point, "/") ? m->point : "");
}

/* Whether f has an automatic instance for m already (or, for a
 * FILESYSTEM kind, any FILESYSTEM instance on m's filesystem). */
static bool
covered(const struct filter_engine *fe, const struct mount_entry *m, const char *path,
	enum flt_instance_kind kind)
{
	for (const struct instance *in = fe->instances; in; in = in->next) {
		if (kind == FLT_INSTANCE_FILESYSTEM &&
		    in->kind == FLT_INSTANCE_FILESYSTEM && in->dev == m->dev)
			return true;
		if (kind == FLT_INSTANCE_MOUNT && in->automatic && in->mnt_id == m->id &&
		    in->dev == m->dev)
			return true;
		if (!in->automatic && in->kind == kind && !strcmp(in->path, path))
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
	pid_t ns_pid = fe->policy->ns_pid;
	struct flt_volume vol;
	struct instance *in;
	char path[PATH_MAX];
	struct stat st;
	void *ctx = NULL;
	int r;

	reach_path(m, ns_pid, path, sizeof(path));
	if (covered(fe, m, path, kind))
		return;
	/* The mount point must still lead to this mount (a mount on top of
	 * it hides it, and is a volume of its own). */
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    mounts_id_of_path(path) != m->id)
		return;
	volume_of(m, ns_pid, &vol);
	if (fe->volume_setup)
		r = fe->volume_setup(f, &vol, why, &kind, &ctx);
	else if (fe->instance_setup)
		r = fe->instance_setup(f, path, kind, &ctx);
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
	if (kind != fe->policy->kind && covered(fe, m, path, kind)) {
		if (fe->instance_teardown)
			fe->instance_teardown(f, ctx);
		return;
	}
	in = instance_new(path, &st, kind, ctx);
	if (!in) {
		if (fe->instance_teardown)
			fe->instance_teardown(f, ctx);
		log_error(e->mgr, "filter %s: no memory to attach to %s", f->name,
			  m->point);
		return;
	}
	in->automatic = true;
	in->ns_pid = ns_pid;
	in->mnt_id = m->id;
	in->dev = m->dev;
	r = engine_instance_insert_locked(f, in);
	if (r == -ESTALE) {
		/* The mount point led elsewhere by the time it was marked: a
		 * mount or unmount came after the table was read, and the
		 * watcher reads the table again for it. */
		log_notice(e->mgr,
			   "filter %s: the volume %s changed while it was being set up; "
			   "placed again from the next mount table",
			   f->name, m->point);
		return;
	}
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

/* The automatic instances of f for namespace ns_pid whose volume is gone
 * or no longer selected (all of them, when the policy is off or names
 * another namespace now). */
static void
detach_gone(struct engine *e, flt_filter *f, pid_t ns_pid, const struct mount_table *now)
{
	struct filter_engine *fe = f->eng;
	const struct auto_policy *p = fe->policy;

	for (;;) {
		struct instance *gone = NULL;

		for (struct instance *in = fe->instances; in && !gone; in = in->next) {
			bool keep = false;

			if (!in->automatic || in->ns_pid != ns_pid)
				continue;
			if (p && p->ns_pid == ns_pid &&
			    in->kind == FLT_INSTANCE_FILESYSTEM) {
				for (size_t i = 0; i < now->n && !keep; i++)
					keep = now->v[i].dev == in->dev &&
					       selects(p, &now->v[i]);
			} else if (p && p->ns_pid == ns_pid) {
				/* A mount moved elsewhere (mount --move keeps its
				 * id) is set up again at its new place. */
				const struct mount_entry *m =
					mounttab_find(now, in->mnt_id);
				char path[PATH_MAX];

				if (m)
					reach_path(m, ns_pid, path, sizeof(path));
				keep = m && m->dev == in->dev &&
				       !strcmp(path, in->path) && selects(p, m);
			}
			if (!keep)
				gone = in;
		}
		if (!gone)
			return;
		log_notice(e->mgr, "filter %s: the volume %s (mount %llu) is gone%s",
			   f->name, gone->path, (unsigned long long)gone->mnt_id,
			   p ? "" : " (automatic attachment turned off)");
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
apply_locked(struct engine *e, flt_filter *f, pid_t ns_pid, const struct mount_table *now,
	     const struct mount_table *old)
{
	lockdep_assert_held(&engine_attach_lock);
	struct filter_engine *fe = f->eng;
	bool started;

	if (!fe)
		return;
	pthread_mutex_lock(&e->lock); /* started is guarded by it */
	started = fe->started;
	pthread_mutex_unlock(&e->lock);
	if (!started)
		return;
	detach_gone(e, f, ns_pid, now);
	if (!fe->policy || fe->policy->ns_pid != ns_pid)
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
volumes_changed(struct engine *e, pid_t ns_pid, const struct mount_table *old)
{
	flt_manager *m = e->mgr;
	struct mount_table *now = NULL;
	flt_filter **v = NULL;
	size_t n = 0;

	if (mounts_snapshot(e, ns_pid, &now) < 0)
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
			apply_locked(e, v[i], ns_pid, now, old);
	pthread_mutex_unlock(&engine_attach_lock);
	free(v);
	mounttab_free(now);
}

/* f started filtering or changed its policy: its automatic instances of
 * the namespace it left, and of the one it names. */
void
volumes_apply(struct engine *e, flt_filter *f)
{
	struct mount_table *now = NULL, empty = { 0 };
	pid_t ns_pid = 0;

	pthread_mutex_lock(&engine_attach_lock);
	if (f->eng) {
		/* Instances of a namespace the policy no longer names. */
		for (;;) {
			pid_t left = -1;

			for (struct instance *in = f->eng->instances; in; in = in->next)
				if (in->automatic &&
				    (!f->eng->policy ||
				     in->ns_pid != f->eng->policy->ns_pid))
					left = in->ns_pid;
			if (left < 0)
				break;
			detach_gone(e, f, left, &empty);
		}
		if (f->eng->policy)
			ns_pid = f->eng->policy->ns_pid;
	}
	pthread_mutex_unlock(&engine_attach_lock);
	if (ns_pid && mounts_watch_ns(e, ns_pid) < 0)
		log_error(e->mgr, "filter %s: cannot watch the mount namespace of pid %d",
			  f->name, (int)ns_pid);
	if (mounts_snapshot(e, ns_pid, &now) < 0)
		return;
	pthread_mutex_lock(&engine_attach_lock);
	if (f->eng)
		apply_locked(e, f, ns_pid, now, NULL);
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
		if (policy->ns_pid < 0 ||
		    (policy->ns_pid > 0 && kill(policy->ns_pid, 0) < 0 && errno == ESRCH))
			return policy->ns_pid < 0 ? -EINVAL : -ESRCH;
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->kind = policy->kind;
		p->ns_pid = policy->ns_pid;
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
	struct mount_table *t[1 + MOUNTS_MAX_NS_LISTED] = { NULL };
	pid_t pid[1 + MOUNTS_MAX_NS_LISTED] = { 0 };
	size_t n_t = 0, total = 0, bytes = 0, k = 0;
	struct flt_volume *v;
	struct engine *e;
	char *w;
	int r = 0;

	if (!manager || !ret || !ret_n)
		return -EINVAL;
	*ret = NULL;
	*ret_n = 0;
	e = engine_of(manager);
	if (!e)
		return 0;
	n_t = 1 + mounts_watched(e, pid + 1, MOUNTS_MAX_NS_LISTED);
	for (size_t i = 0; i < n_t && r >= 0; i++)
		r = mounts_snapshot(e, pid[i], &t[i]);
	for (size_t i = 0; r >= 0 && i < n_t; i++)
		for (size_t j = 0; j < t[i]->n; j++, total++)
			bytes += strlen(t[i]->v[j].point) + strlen(t[i]->v[j].fstype) +
				 strlen(t[i]->v[j].source) + strlen(t[i]->v[j].root) + 4;
	v = r < 0 ? NULL : malloc(total * sizeof(*v) + bytes + 1);
	if (!v) {
		for (size_t i = 0; i < n_t; i++)
			mounttab_free(t[i]);
		return r < 0 ? r : -ENOMEM;
	}
	w = (char *)(v + total);
	for (size_t i = 0; i < n_t; i++) {
		for (size_t j = 0; j < t[i]->n; j++, k++) {
			const char **s[4];

			volume_of(&t[i]->v[j], pid[i], &v[k]);
			s[0] = &v[k].mount_point;
			s[1] = &v[k].fs_type;
			s[2] = &v[k].source;
			s[3] = &v[k].root;
			for (int q = 0; q < 4; q++) {
				size_t len = strlen(*s[q]) + 1;

				memcpy(w, *s[q], len);
				*s[q] = w;
				w += len;
			}
		}
		mounttab_free(t[i]);
	}
	*ret = v;
	*ret_n = total;
	return (int)total;
}
