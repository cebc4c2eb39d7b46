/* SPDX-License-Identifier: MIT */
/*
 * engine.h — the filter manager engine: fanotify event source, dispatch
 * to filters by altitude, permission verdicts with deadlines.
 *
 * Objects:
 *   struct engine      one per manager, started by the first
 *                      flt_start_filtering(): the fanotify groups, the
 *                      reader threads, the watchdog.
 *   struct dtable      an immutable snapshot of who gets what: started
 *                      filters sorted by altitude with copies of their
 *                      instances. Events hold a reference to the table
 *                      they were dispatched with; attach/detach/start/
 *                      unregister publish a new one. A filter is freed
 *                      only after every table naming it is released.
 *   struct fsmark      one per filesystem that has instances: the marks
 *                      and the directory descriptor used to resolve file
 *                      handles.
 *   struct perm_event  one permission event from the kernel, reference
 *                      counted; `answered` goes 0 -> 1 exactly once (CAS)
 *                      and whoever wins writes the kernel's response.
 *
 * Threads: permission readers (normally one; the watchdog adds one when
 * every reader is stuck in a callback), one notification reader, one
 * watchdog (deadlines, takeover, emergency answers).
 *
 * Lock order (outer first): attach_lock (engine.c, attach/detach) ->
 * engine->lock (marks, instances, rebuilds) -> manager->lock, table_lock;
 * pend_lock (the live event list) and readers_lock are leaves. Filter
 * callbacks never run under any of them, except instance setup/teardown,
 * which run under attach_lock (so they must not attach or detach).
 */
#ifndef FLTMGR_ENGINE_H
#define FLTMGR_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <fltmgr/filter.h>

#include "core/core.h"
#include "engine/exclude.h"

struct proc_cache;
struct mounts;

#define ENGINE_DEFAULT_DEADLINE_MS 5000
#define ENGINE_MAX_READERS         8

/* What the kernel can do (probe.c), as every part of the engine sees it:
 * the probe's result, less what FLTMGR_KERNEL_FEATURES turned off. */
struct fan_features {
	bool pidfd;
	bool dfid_name_target;
	bool rename;
	bool evictable;
	bool mark_ignore;
	bool pre_content; /* the class; per filesystem: fan_probe_filesystem() */
	bool unlimited_queue;
	bool pidfs;          /* pidfds have an inode of their own (6.9) */
	bool pidfd_get_info; /* PIDFD_GET_INFO (6.13) */
	bool overridden;     /* FLTMGR_KERNEL_FEATURES was set */
	bool simulated;      /* kernel is the override's version */
	unsigned kernel;     /* FLT_KV() of the kernel behaved as; 0 unknown */
};

/* ---- per-filter engine state (lives in flt_filter) ---- */

struct filter_counters {
	atomic_uint_fast64_t seen, delivered, allowed, denied, pended;
	atomic_uint_fast64_t deadline_defaults, late_completions, excluded;
	atomic_uint_fast64_t timeouts_capped;
};

/* Per instance; dispatch tables point at them, and an instance is freed
 * only once no table naming its filter is in use. */
struct instance_counters {
	atomic_uint_fast64_t events, denied;
};

struct instance {
	struct instance *next;
	enum flt_instance_kind kind;
	char *path;   /* canonical */
	dev_t dev;    /* the filesystem (superblock), mounts_fs_dev_of_path() */
	ino_t ino;    /* of the attach point */
	long fs_type; /* statfs f_type of dev */
	void *context;
	struct instance_counters ctr;
	/* Against the mount table (mounts.c); guarded by engine->lock. */
	enum flt_instance_state state;
	struct timespec state_time;
	uint32_t reattaches;
	uint64_t mnt_id; /* the mount at path: a MOUNT instance matches it */
	/* Attached by the filter's auto-attach policy (volumes.c): bound to
	 * its mount (MOUNT) or filesystem (FILESYSTEM), not to its path; it
	 * goes when that goes. */
	bool automatic;
	pid_t ns_pid; /* automatic, of a watched namespace: its process */
};

struct filter_engine {
	flt_pre_operation pre[FLT_OP_COUNT_];
	flt_post_operation post[FLT_OP_COUNT_];
	flt_instance_setup instance_setup;
	flt_volume_setup volume_setup;
	flt_instance_teardown instance_teardown;
	flt_filter_unload unload;
	flt_filter_counters counters;
	void *cookie;
	int deadline_ms;
	int default_verdict;
	unsigned flags;
	long double altitude;
	bool started;               /* guarded by engine->lock */
	struct instance *instances; /* guarded by engine->lock */
	struct auto_policy *policy; /* volumes.c; guarded by engine_attach_lock */
	pthread_mutex_t excl_lock;
	struct exclusion *excluded; /* exclude.c */
	size_t n_excluded;
	uint64_t last_exclusion_id;
	atomic_size_t n_excluded_hint; /* lock-free "any at all?" */
	struct filter_counters ctr;
};

/* ---- dispatch tables ---- */

struct dt_instance {
	enum flt_instance_kind kind;
	const char *path;
	size_t len;
	dev_t dev;
	long fs_type;
	uint64_t mnt_id;
	void *context;
	struct instance_counters *ctr;
};

struct dt_filter {
	flt_filter *filter;
	uint32_t pre_ops;   /* bit per operation with a pre callback */
	uint32_t post_ops;  /* bit per operation with a post callback */
	uint32_t notif_ops; /* post-only operations, fed by notifications */
	struct dt_instance *inst;
	size_t n_inst;
};

struct dtable {
	atomic_int refs;
	struct dtable *next_retired;
	size_t n;
	uint32_t pre_ops;     /* union */
	uint32_t notif_ops;   /* union */
	struct dt_filter f[]; /* descending altitude */
};

/* ---- events ---- */

/*
 * Process details already looked up during one read of the notification
 * group (notif.c), by pid: an entry is made once its process was shown
 * to hold the pid after the read, so later events of that pid in the
 * same read take them from here with no system call (resolve.c,
 * docs/engine.md section 2.3). Lives with the reader.
 */
#define PROC_MEMO_SLOTS 4
struct proc_memo {
	unsigned next; /* the slot the next new process takes */
	struct {
		bool used;
		pid_t pid;
		uid_t uid, euid;
		gid_t gid, egid;
		bool has_exe, has_comm;
		char exe[4096];
		char comm[17];
	} slot[PROC_MEMO_SLOTS];
};

struct flt_event_priv {
	struct engine *e;
	struct proc_memo *memo;  /* notifications: this read's, else NULL */
	struct perm_event *perm; /* NULL for notifications */
	/* The filter whose callback runs with this event now (set before
	 * each callback; flt_event_filter()). */
	flt_filter *filter;
	int pidfd;
	bool stat_done;
	bool proc_done;
	/* scope.c: the event descriptor's statx, and what its path is worth */
	bool identity_ok;
	bool mnt_id_known;
	bool mount_ours;   /* the access went through a mount we can see */
	uint8_t dev_known; /* 0 not checked, 1 an instance names fs_dev, 2 none */
	dev_t fs_dev;      /* the filesystem (superblock), as instances are */
	pid_t ns_pid;      /* through a mount of this watched namespace */
	uint8_t scope;     /* SCOPE_* */
	uint8_t settled;   /* 0 not checked, 1 settled, 2 changed lately */
	uint16_t mode;
	uint32_t uid, nlink;
	uint64_t mnt_id;
	int64_t ctime_ns;
	char *path_buf;
	char *new_path_buf;
	/* Last, and in this order: a permission event leaves them unzeroed
	 * (perm.c, perm_event_alloc); flt_get_process() writes them first. */
	char exe[4096];
	char comm[17];
	struct flt_process proc;
};

struct perm_event {
	atomic_int refs;
	atomic_int answered;
	struct engine *e;
	struct dtable *t;
	int fd;
	uint64_t mask;
	size_t pos;          /* filter being asked */
	int64_t deadline;    /* guarded by pend_lock */
	int default_verdict; /* of the filter being asked */
	bool in_pending;     /* on the in-flight list (pend_lock) */
	/* Pending, by state (PEND_*): who may finish a pended event. A
	 * completion that arrives while the pre callback is still running
	 * (a worker was quick) is parked and applied when it returns. */
	atomic_int pend_state;
	enum flt_preop_status early_status;
	int early_error;
	bool all_cacheable;
	bool any_cache_opt_in;
	bool engine_veto; /* a filter with an instance here was not asked */
	struct perm_event *pnext, *pprev;
	uint8_t *want_post;              /* [t->n] */
	void **ctx;                      /* [t->n] completion contexts */
	const struct dt_instance **inst; /* [t->n] */
	struct flt_callback_data data;
	struct flt_event_priv priv;
};

enum pend_state {
	PEND_IDLE = 0,    /* no pre callback running, not pended */
	PEND_IN_CALLBACK, /* a pre callback is running */
	PEND_OWNED,       /* pended: the filter owns a reference */
	PEND_EARLY,       /* completed before its callback returned */
	PEND_ABANDONED,   /* its filter unregistered: answered by default;
			     the event lives until the filter completes it */
};

/* ---- marks ---- */

struct fsmark {
	struct fsmark *next;
	dev_t dev;
	uint64_t fsid;          /* statfs f_fsid, as fanotify reports it */
	int dir_fd;             /* a directory on this fs, for open_by_handle_at and
			  the marks: the root of a detached clone of the
			  mount it was found on (anchor.h), so it does not
			  keep that mount from being unmounted */
	char *prefix;           /* the clone's mount point, the prefix of the paths
			  read from files opened through dir_fd (NULL: not
			  a clone, the paths are whole) */
	uint64_t anchor_mnt_id; /* the mount cloned (0: not a clone) */
	char *path;             /* the path marked */
	/* Where this filesystem's file handles keep the inode number,
	 * learned from the marked directory's own handle (ino_size 0: not
	 * known; identity then costs an fstatat). */
	int ino_handle_type;
	uint32_t ino_handle_bytes;
	uint8_t ino_off, ino_size;
	uint64_t perm_mask;  /* applied to the permission group */
	uint64_t notif_mask; /* applied to the notification group */
	int refs;            /* instances */
};

struct reader {
	struct engine *e;
	pthread_t thread;
	atomic_llong busy_since; /* ns; 0 while waiting for events */
	atomic_bool retire;      /* replaced: exit after the current event */
	atomic_bool done;        /* the thread has finished */
};

struct engine {
	flt_manager *mgr;
	struct fan_features feat;
	pid_t self_pid;
	int perm_fd;
	/* Readers block in read() (no poll per event) when this private,
	 * unnamed file could be made and marked FAN_MODIFY in the permission
	 * group: a write to it wakes them (perm_wake_readers). -1: the group
	 * stays non-blocking and readers poll it with stop_efd, as before. */
	int wake_fd;
	/* Held while the permission group is made non-blocking for a drain
	 * (emergency_drain) or for good (perm_wake_readers). */
	pthread_mutex_t drain_lock;
	/* The permission group reports a pidfd per event: unless every
	 * filter with pre callbacks registered when the engine started said
	 * FLT_REGISTRATION_NO_PROCESS_DETAILS (engine.c, open_groups). */
	bool perm_pidfd;
	int notif_fd;
	int stop_efd;
	atomic_bool stopping;
	atomic_bool deny_errno_ok;

	pthread_mutex_t lock;       /* marks, instances, rebuilds */
	pthread_mutex_t table_lock; /* the table pointer, the retired list */
	struct dtable *table;
	struct dtable *retired;
	pthread_cond_t table_released;
	struct fsmark *marks;

	pthread_mutex_t pend_lock;
	pthread_cond_t pend_cond;
	struct perm_event *pending;
	uint32_t n_pending; /* live permission events (answered or not) */
	bool watchdog_idle;

	pthread_mutex_t readers_lock;
	struct reader *readers[ENGINE_MAX_READERS];
	int n_readers;

	pthread_t notif_thread;
	pthread_t watchdog_thread;
	bool notif_started;
	bool watchdog_started;

	struct proc_cache *procs; /* process details (proc_cache.h) */
	struct mounts *mounts;    /* this namespace's mount table (mounts.h) */

	atomic_uint_fast64_t seq;
	struct {
		atomic_uint_fast64_t permission_events, notification_events, self_events;
		atomic_uint_fast64_t allowed, denied, deadline_defaults, overflows,
			dropped;
		atomic_uint_fast64_t cache_inserts, cache_flushes, emergency_answers;
		/* notif.c: where each notification record went */
		atomic_uint_fast64_t notif_ignored, notif_resolved, notif_unresolved,
			notif_lost, read_errors;
		/* scope.c, perm.c, mounts.c: fail-closed decisions */
		atomic_uint_fast64_t scope_uncertain, cache_refused, mount_changes,
			instance_reattaches;
		/* volumes.c */
		atomic_uint_fast64_t volumes_attached, volumes_detached, volumes_declined;
	} ctr;
};

/* engine.c */
int engine_get(flt_manager *m, struct engine **ret);
void engine_free(struct engine *e);
/* Publishes a new dispatch table from the filters' current state and
 * brings the marks in line. Caller holds e->lock. */
int engine_rebuild_locked(struct engine *e);
struct dtable *dtable_acquire(struct engine *e);
void dtable_release(struct engine *e, struct dtable *t);
/* Called from flt_unregister_filter(): first stop (no more events, pends
 * answered, callbacks drained, instances torn down), and once the ports
 * are gone too, free (the unload callback, then the engine state — so
 * disconnect callbacks may still call flt_include_process()). */
void engine_filter_stop(flt_filter *f);
/* Re-resolves every instance's path (mounts.c calls it on every change
 * of the mount table and once a second): an instance whose path now
 * names another filesystem is moved to it, one whose path is gone is
 * marked stale; each change is logged and counted. True when it should
 * run again at once (a mount came in between its look and its marks). */
bool engine_revalidate_instances(struct engine *e);

/* Held while instance lists change (attach, detach, automatic ones, the
 * mount watcher's re-resolution, listing); outer to engine->lock. */
extern pthread_mutex_t engine_attach_lock;
/* A new instance for a directory (canonical path, its stat), not yet
 * inserted; NULL without memory. */
struct instance *instance_new(const char *cpath, const struct stat *st,
			      enum flt_instance_kind kind, void *ctx);
/* Inserts in (already set up) and publishes a new table; on failure
 * tears it down and frees it. Caller holds engine_attach_lock. */
int engine_instance_insert_locked(flt_filter *f, struct instance *in);
/* Unlinks in, publishes, waits for f's callbacks in flight, tears it
 * down and frees it. Caller holds engine_attach_lock. */
void engine_instance_remove_locked(flt_filter *f, struct instance *in);

/* volumes.c: automatic attachment */
struct mount_table;
/* The mount table of the daemon's namespace (ns_pid 0) or of a watched
 * one changed (old: its previous table; NULL at start, when every volume
 * counts as present at start). */
void volumes_changed(struct engine *e, pid_t ns_pid, const struct mount_table *old);
/* f started filtering or changed its policy: apply it to every volume. */
void volumes_apply(struct engine *e, flt_filter *f);
void volumes_policy_free(struct auto_policy *p);
void engine_filter_free(flt_filter *f);
int engine_filter_init(flt_filter *f, const struct flt_registration *reg);

static inline struct engine *
engine_of(flt_manager *m)
{
	return atomic_load(&m->engine);
}

/* probe.c */
void fan_probe(flt_manager *m, struct fan_features *feat);
/* Logs whether the filesystem of dir_fd takes pre-content events. */
void fan_probe_filesystem(struct engine *e, int dir_fd, const char *path);

/* perm.c: blocking reads (see wake_fd) */
void perm_wake_setup(struct engine *e);
void perm_wake_readers(struct engine *e);
/* FAN_MARK_FLUSH of the permission group's inode marks (the verdict
 * cache), keeping the wake-up file's; 0 or -errno. */
int perm_flush_inode_marks(struct engine *e);

/* marks.c: caller holds e->lock */
int marks_sync_locked(struct engine *e, const struct dtable *t);
struct fsmark *marks_find_fsid_locked(struct engine *e, uint64_t fsid);
/* The path of the file a handle names, opened through the anchor of dev's
 * filesystem (takes e->lock); -errno, -ENODEV if dev has no mark. */
struct file_handle;
int marks_path_by_handle(struct engine *e, dev_t dev, struct file_handle *fh,
			 char **ret_path);
/* The inode number inside a handle of mk's filesystem, where the mark
 * learned the layout (fsmark.ino_*) and fh has the learned type and size;
 * 0 otherwise. */
ino_t marks_ino_from_handle(const struct fsmark *mk, const struct file_handle *fh);
/* Anchors whose mount is gone moved to a mount still there (takes
 * e->lock; call without it). */
void marks_reanchor(struct engine *e);
void marks_free_all_locked(struct engine *e);

/* perm.c */
void *perm_reader_main(void *arg);
int perm_reader_spawn(struct engine *e);
void perm_event_unref(struct perm_event *ev);
/* Answers with their default verdict the events f holds (in a callback or
 * pended) and drops the references of f's pends. */
void perm_abandon_filter(struct engine *e, flt_filter *f);
void perm_answer_all_at_shutdown(struct engine *e);
void *watchdog_main(void *arg);

/* notif.c */
void *notif_reader_main(void *arg);

/* resolve.c */
void dir_cache_clear(void);
int resolve_fd_path(int fd, char **ret_path);
/* Path of a directory handle + name. *ret_ino comes from target (the
 * object's own handle, may be NULL) when this filesystem's handle layout
 * is known, else from an fstatat of the name. */
int resolve_fid_path(struct engine *e, uint64_t fsid, const void *handle,
		     const char *name, const void *target, char **ret_path,
		     dev_t *ret_dev, ino_t *ret_ino, bool *ret_is_dir);
/* For tests of the fallbacks: 0 makes flt_get_process() behave as on a
 * kernel without PIDFD_GET_INFO (before 6.13), -1 probes it again. */
void resolve_pidfd_info_override(int works);

/* exclude.c: processes a filter does not see, followed by pidfd */
struct exclusion {
	pid_t pid;
	int pidfd;      /* -1: the kernel has no pidfd_open (then by pid only) */
	uint64_t id;    /* this entry (a hold names it, not the pid) */
	bool manual;    /* flt_exclude_process() made it, include not called */
	unsigned holds; /* connections holding it (exclusion_hold) */
};
bool filter_excludes(flt_filter *f, pid_t pid);
/* exclusion_hold(), exclusion_release(): engine/exclude.h */
void exclusions_free(struct filter_engine *fe);

/* vcache.c: the kernel verdict cache */
bool vcache_file_may_be_cached(const struct flt_callback_data *d);
void vcache_insert(struct engine *e, int fd, enum flt_operation op);

/* scope.c */
/* Fills dev/ino/flags and the path of a permission event (once). */
void event_fill_identity(struct flt_callback_data *d);
/* Only dev/ino/flags (a filter that takes its path through
 * flt_event_path(), which resolves it on first call). */
void event_fill_stat(struct flt_callback_data *d);
/* The instance of df that the event falls in, or NULL. For permission
 * events, an event the engine cannot prove to be outside df's instances
 * on its filesystem gets the first of them, flagged
 * FLT_EVENT_SCOPE_UNCERTAIN. *ret_on_dev (may be NULL) is set when no
 * instance matched: whether df has any instance on the event's
 * filesystem. */
const struct dt_instance *instance_match(const struct dtable *t,
					 const struct dt_filter *df,
					 struct flt_callback_data *data,
					 bool *ret_on_dev);
/* The filesystem device of a permission event's descriptor, as instances
 * name it (mounts.c); 0 if unknown. */
dev_t event_fs_dev(struct engine *e, int fd);
/* Filesystems whose renames set ctime and whose ownership is enforced. */
bool scope_fs_type_known(long f_type);

static inline uint32_t
op_bit(enum flt_operation op)
{
	return 1u << op;
}

#endif /* FLTMGR_ENGINE_H */
