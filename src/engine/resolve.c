/* SPDX-License-Identifier: MIT */
/*
 * resolve.c — turning what fanotify reports into what filters read: paths
 * (from an event fd, or from a directory file handle plus a name), file
 * identity, the process behind an event (checked through its pidfd), and
 * whether an event falls inside a filter's instances.
 *
 * Everything here is done lazily, on first need, so a pass-through filter
 * on a whole filesystem pays for none of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/anchor.h"
#include "engine/fanotify_compat.h"
#include "engine/pidfd_compat.h"
#include "engine/proc_cache.h"

int
resolve_fd_path(int fd, char **ret_path)
{
	return anchor_path(fd, NULL, ret_path); /* the kernel's path, whole */
}

/* ---- directory handles -> paths, with a small cache ----
 *
 * The cache lets events be resolved after their directory is gone (a
 * delete inside a directory that was removed right after). It is keyed by
 * the handle bytes; a renamed or deleted directory makes the affected
 * entries stale, so the notification reader clears the cache on every
 * directory rename (dir_cache_clear) — cheap, and always correct. */

#define DIR_CACHE_SLOTS 1024

struct dir_cache_entry {
	uint64_t fsid;
	uint32_t len;
	uint8_t handle[136];
	char *path;
};

static struct dir_cache_entry dir_cache[DIR_CACHE_SLOTS];
static pthread_mutex_t dir_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t
hash_bytes(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t h = 1469598103934665603ull ^ seed;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return (uint32_t)(h ^ (h >> 32));
}

static void
dir_cache_put(uint64_t fsid, const uint8_t *fh, uint32_t len, const char *path)
{
	struct dir_cache_entry *e;
	char *copy;

	if (len > sizeof(e->handle))
		return;
	copy = strdup(path);
	if (!copy)
		return;
	pthread_mutex_lock(&dir_cache_lock);
	e = &dir_cache[hash_bytes(fh, len, fsid) % DIR_CACHE_SLOTS];
	free(e->path);
	e->fsid = fsid;
	e->len = len;
	memcpy(e->handle, fh, len);
	e->path = copy;
	pthread_mutex_unlock(&dir_cache_lock);
}

static char *
dir_cache_get(uint64_t fsid, const uint8_t *fh, uint32_t len)
{
	struct dir_cache_entry *e;
	char *r = NULL;

	if (len > sizeof(e->handle))
		return NULL;
	pthread_mutex_lock(&dir_cache_lock);
	e = &dir_cache[hash_bytes(fh, len, fsid) % DIR_CACHE_SLOTS];
	if (e->path && e->fsid == fsid && e->len == len && !memcmp(e->handle, fh, len))
		r = strdup(e->path);
	pthread_mutex_unlock(&dir_cache_lock);
	return r;
}

void
dir_cache_clear(void)
{
	pthread_mutex_lock(&dir_cache_lock);
	for (size_t i = 0; i < DIR_CACHE_SLOTS; i++) {
		free(dir_cache[i].path);
		dir_cache[i].path = NULL;
	}
	pthread_mutex_unlock(&dir_cache_lock);
}

/* dir + "/" + name in one allocation (asprintf's format parsing cost
 * about 900 instructions per event). */
static char *
join_path(const char *dir, const char *name)
{
	size_t dl, nl;
	bool slash;
	char *p;

	if (!name || !*name || !strcmp(name, "."))
		return strdup(dir);
	dl = strlen(dir);
	nl = strlen(name);
	slash = strcmp(dir, "/") != 0;
	p = malloc(dl + slash + nl + 1);
	if (!p)
		return NULL;
	memcpy(p, dir, dl);
	if (slash)
		p[dl] = '/';
	memcpy(p + dl + slash, name, nl + 1);
	return p;
}

int
resolve_fid_path(struct engine *e, uint64_t fsid, const void *handle, const char *name,
		 const void *target, char **ret_path, dev_t *ret_dev, ino_t *ret_ino,
		 bool *ret_is_dir)
{
	const struct file_handle *fh = handle;
	uint32_t hlen = 8 + fh->handle_bytes;
	char *dir = NULL, prefix[PATH_MAX] = "";
	struct fsmark *mk;
	struct stat st;
	int fd = -1, r;

	*ret_ino = 0;
	*ret_is_dir = false;
	pthread_mutex_lock(&e->lock);
	mk = marks_find_fsid_locked(e, fsid);
	if (mk) {
		*ret_dev = mk->dev;
		if (target)
			*ret_ino = marks_ino_from_handle(mk, target);
		/* The cache is trusted first only while every directory
		 * rename on this filesystem reaches us (it clears the cache);
		 * a hit saves open_by_handle_at + readlink + close. */
		if ((mk->notif_mask & (FAN_RENAME | FAN_ONDIR)) ==
			    (FAN_RENAME | FAN_ONDIR) &&
		    (*ret_ino || !target))
			dir = dir_cache_get(fsid, handle, hlen);
		if (!dir) {
			fd = open_by_handle_at(mk->dir_fd, (struct file_handle *)fh,
					       O_PATH | O_CLOEXEC);
			r = fd < 0 ? -errno : 0;
			if (fd >= 0 && mk->prefix) /* through an anchor */
				snprintf(prefix, sizeof(prefix), "%s", mk->prefix);
		} else {
			r = 0;
		}
	} else {
		r = -ENODEV;
	}
	pthread_mutex_unlock(&e->lock);
	if (r == -ENODEV)
		return r;

	if (dir) {
		/* from the cache */
	} else if (fd >= 0) {
		r = anchor_path(fd, prefix[0] ? prefix : NULL, &dir);
		if (r == 0) {
			/* " (deleted)" on an object with no link left means it
			 * is gone (a directory removed, a file replaced by a
			 * rename while its event waited): prefer the cached
			 * path it had. A live file named "x (deleted)" has
			 * links. */
			size_t n = strlen(dir);

			if (n > 10 && !strcmp(dir + n - 10, " (deleted)") &&
			    fstat(fd, &st) == 0 && st.st_nlink == 0) {
				char *c = dir_cache_get(fsid, handle, hlen);

				/* No name leads to it any more: the path it had,
				 * if known, else none (never "... (deleted)"). */
				free(dir);
				dir = c;
				if (!dir)
					r = -ENOENT;
			} else {
				dir_cache_put(fsid, handle, hlen, dir);
			}
		}
	} else {
		dir = dir_cache_get(fsid, handle, hlen);
		r = dir ? 0 : r;
	}
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	/* Only when the handle could not tell us: an fstatat takes the
	 * directory's lock, which a busy writer in it also needs. */
	if (!*ret_ino && fd >= 0) {
		if (name && *name && strcmp(name, ".") &&
		    fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			*ret_ino = st.st_ino;
			*ret_is_dir = S_ISDIR(st.st_mode);
		} else if ((!name || !*name || !strcmp(name, ".")) &&
			   fstat(fd, &st) == 0) {
			*ret_ino = st.st_ino;
			*ret_is_dir = S_ISDIR(st.st_mode);
		}
	}
	if (fd >= 0)
		close(fd);
	*ret_path = join_path(dir, name);
	free(dir);
	return *ret_path ? 0 : -ENOMEM;
}

/* ---- the process behind an event ---- */

/* What this kernel's pidfds are, learned from the first one: -1 unknown.
 * The engine's feature set (probe.c) comes first: a feature it has off
 * (an older kernel, or FLTMGR_KERNEL_FEATURES) is never used. */
static atomic_int pidfds_on_pidfs = -1;
static atomic_int pidfd_get_info_works = -1;

void
resolve_pidfd_info_override(int works)
{
	atomic_store(&pidfd_get_info_works, works);
}

static bool
pidfd_on_pidfs(const struct engine *e, int pidfd)
{
	int v = atomic_load_explicit(&pidfds_on_pidfs, memory_order_relaxed);
	struct statfs sfs;

	if (e && !e->feat.pidfs)
		return false;
	if (v < 0) {
		if (fstatfs(pidfd, &sfs) < 0)
			return false;
		v = sfs.f_type == FLT_PIDFS_MAGIC;
		atomic_store_explicit(&pidfds_on_pidfs, v, memory_order_relaxed);
	}
	return v == 1;
}

/*
 * Does pid still name the process that pidfd refers to? On pidfs (Linux
 * 6.9+) every process has its own inode, so comparing the inode of a fresh
 * pidfd_open(pid) with the event's pidfd is exact, also for a process that
 * has exited but not been reaped. Elsewhere, fall back to "the event's
 * process is still running" (a pidfd polls readable once it exits).
 */
static bool
pid_still_names(const struct engine *e, pid_t pid, int pidfd)
{
	struct stat a, b;
	struct pollfd pf = { .fd = pidfd, .events = POLLIN };
	bool same = false;
	int fd;

	if (pidfd_on_pidfs(e, pidfd)) {
		fd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (fd < 0)
			return false;
		same = fstat(fd, &a) == 0 && fstat(pidfd, &b) == 0 &&
		       a.st_ino == b.st_ino && a.st_dev == b.st_dev;
		close(fd);
		return same;
	}
	return poll(&pf, 1, 0) == 0;
}

/*
 * The credentials of pidfd's process, from the kernel through the pidfd:
 * 1 read; 0 the process has been reaped (or is not in our pid namespace);
 * -1 this kernel has no PIDFD_GET_INFO. Success also proves the pid was
 * not yet free, so /proc/PID read before the call was this process.
 */
static int
pidfd_creds(const struct engine *e, int pidfd, struct flt_process *p)
{
	struct pidfd_info_v0 in = { .mask = FLT_PIDFD_INFO_CREDS };

	if ((e && !e->feat.pidfd_get_info) ||
	    atomic_load_explicit(&pidfd_get_info_works, memory_order_relaxed) == 0)
		return -1;
	if (ioctl(pidfd, FLT_PIDFD_GET_INFO, &in) < 0) {
		if (errno == ENOTTY || errno == EINVAL) {
			atomic_store_explicit(&pidfd_get_info_works, 0,
					      memory_order_relaxed);
			return -1;
		}
		return 0;
	}
	atomic_store_explicit(&pidfd_get_info_works, 1, memory_order_relaxed);
	if (!(in.mask & FLT_PIDFD_INFO_CREDS))
		return 0;
	p->uid = in.ruid;
	p->euid = in.euid;
	p->gid = in.rgid;
	p->egid = in.egid;
	return 1;
}

static void
read_status_ids(pid_t pid, struct flt_process *p)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned a, b;

		if (sscanf(line, "Uid:\t%u\t%u", &a, &b) == 2) {
			p->uid = a;
			p->euid = b;
		} else if (sscanf(line, "Gid:\t%u\t%u", &a, &b) == 2) {
			p->gid = a;
			p->egid = b;
		}
	}
	fclose(f);
}

static void
read_comm(pid_t pid, struct flt_event_priv *pv, struct flt_process *p)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, pv->comm, sizeof(pv->comm) - 1);
	if (n > 0) {
		if (pv->comm[n - 1] == '\n')
			n--;
		pv->comm[n] = '\0';
		p->comm = pv->comm;
	}
	close(fd);
}

/*
 * Reads everything from /proc, then proves the pid still named the
 * event's process after the reads: through PIDFD_GET_INFO, which also
 * gives the credentials (so /proc/PID/status is not needed), or else
 * through pid_still_names(). Without a pidfd nothing could be proved, so
 * nothing is read.
 */
static bool
read_process(pid_t pid, struct flt_event_priv *pv, struct flt_process *p)
{
	bool pidfs, status_read = false;
	char path[64];
	ssize_t n;
	int r = -1;

	if (pv->pidfd < 0)
		return false;
	pidfs = pidfd_on_pidfs(pv->e, pv->pidfd);
	if (!pidfs || (pv->e && !pv->e->feat.pidfd_get_info) ||
	    atomic_load_explicit(&pidfd_get_info_works, memory_order_relaxed) != 1) {
		read_status_ids(pid, p);
		status_read = true;
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, pv->exe, sizeof(pv->exe) - 1);
	if (n >= 0) {
		pv->exe[n] = '\0';
		p->exe = pv->exe;
	}
	read_comm(pid, pv, p);
	if (pidfs)
		r = pidfd_creds(pv->e, pv->pidfd, p);
	if (r >= 0)
		return r == 1;
	if (!status_read)
		read_status_ids(pid, p);
	return pid_still_names(pv->e, pid, pv->pidfd);
}

static int64_t
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * The cached path (pidfs only): the key is the pid with the pidfd's inode,
 * so a recycled pid cannot reach another process's entry. The program file
 * is stat'ed first, then the entry is taken only if it was filled for the
 * same file (else the process has exec'd: the entry is dropped), and only
 * if afterwards the process is shown to still hold the pid (so the stat
 * was of it): PIDFD_GET_INFO, which also gives current credentials, or
 * else a pidfd that does not poll readable (still running).
 */
static bool
process_from_cache(struct proc_cache *pc, const struct proc_key *key,
		   const struct proc_exe_id *exe_id, int64_t now,
		   struct flt_event_priv *pv, struct flt_process *p)
{
	struct pollfd pf = { .fd = pv->pidfd, .events = POLLIN };
	struct proc_details d;
	int r;

	if (proc_cache_lookup(pc, key, exe_id, now, &d, pv->exe, sizeof(pv->exe)) !=
	    PROC_HIT)
		return false;
	r = pidfd_creds(pv->e, pv->pidfd, p);
	if (r == 0 || (r == -1 && poll(&pf, 1, 0) != 0))
		return false;
	if (r == -1) {
		p->uid = d.uid;
		p->euid = d.euid;
		p->gid = d.gid;
		p->egid = d.egid;
	}
	memcpy(pv->comm, d.comm, sizeof(pv->comm));
	p->exe = pv->exe;
	p->comm = pv->comm;
	return true;
}

/*
 * Details of the process with this pid found earlier in this read. Exact
 * without looking at the event's own pidfd: an entry is made only once
 * its process was shown to hold the pid after the read (the checks of
 * process_from_cache() and read_process()), and it held it since its own
 * event, so every later record of the read with that pid, queued in
 * between, is the same process (a pid is not given back to a process
 * that left it).
 */
static bool
process_from_memo(struct proc_memo *m, pid_t pid, struct flt_event_priv *pv,
		  struct flt_process *p)
{
	for (unsigned i = 0; i < PROC_MEMO_SLOTS; i++) {
		if (!m->slot[i].used || m->slot[i].pid != pid)
			continue;
		p->uid = m->slot[i].uid;
		p->euid = m->slot[i].euid;
		p->gid = m->slot[i].gid;
		p->egid = m->slot[i].egid;
		if (m->slot[i].has_exe) {
			memcpy(pv->exe, m->slot[i].exe, sizeof(pv->exe));
			p->exe = pv->exe;
		}
		if (m->slot[i].has_comm) {
			memcpy(pv->comm, m->slot[i].comm, sizeof(pv->comm));
			p->comm = pv->comm;
		}
		p->verified = 1;
		return true;
	}
	return false;
}

/* Only after the process was shown to hold pid after the read. */
static void
memo_put(struct proc_memo *m, pid_t pid, const struct flt_process *p)
{
	unsigned i = m->next++ % PROC_MEMO_SLOTS;

	m->slot[i].used = true;
	m->slot[i].pid = pid;
	m->slot[i].uid = p->uid;
	m->slot[i].euid = p->euid;
	m->slot[i].gid = p->gid;
	m->slot[i].egid = p->egid;
	m->slot[i].has_exe = p->exe != NULL;
	m->slot[i].has_comm = p->comm != NULL;
	if (p->exe)
		snprintf(m->slot[i].exe, sizeof(m->slot[i].exe), "%s", p->exe);
	if (p->comm)
		snprintf(m->slot[i].comm, sizeof(m->slot[i].comm), "%s", p->comm);
}

flt_filter *
flt_event_filter(const struct flt_callback_data *data)
{
	return data && data->priv ? data->priv->filter : NULL;
}

const struct flt_process *
flt_get_process(const struct flt_callback_data *data)
{
	struct flt_event_priv *pv;
	struct proc_cache *pc;
	struct flt_process *p;
	struct proc_exe_id exe_id;
	struct proc_key key = { 0 };
	bool cacheable = false;
	int64_t now = 0;
	struct stat st;

	if (!data || !data->priv)
		return NULL;
	pv = data->priv;
	p = &pv->proc;
	if (pv->proc_done)
		return p;
	pv->proc_done = true;
	/* uid/gid -1 until read: never a false "root". */
	*p = (struct flt_process){ .pid = data->pid,
				   .uid = (uid_t)-1,
				   .euid = (uid_t)-1,
				   .gid = (gid_t)-1,
				   .egid = (gid_t)-1 };
	if (data->pid <= 0)
		return p;
	pc = pv->e ? pv->e->procs : NULL;
	if (pc && pv->pidfd >= 0 && pidfd_on_pidfs(pv->e, pv->pidfd) && pv->memo &&
	    process_from_memo(pv->memo, data->pid, pv, p)) {
		/* The same process earlier in this read: its details then,
		 * without a system call. */
		proc_cache_count(pc, true); /* not read from /proc: a hit */
		return p;
	}
	if (pc && pv->pidfd >= 0 && pidfd_on_pidfs(pv->e, pv->pidfd) &&
	    fstat(pv->pidfd, &st) == 0) {
		char path[64];

		key = (struct proc_key){ .pid = data->pid, .ino = st.st_ino };
		now = monotonic_ns();
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)data->pid);
		if (stat(path, &st) == 0) {
			exe_id = (struct proc_exe_id){ .dev = st.st_dev,
						       .ino = st.st_ino,
						       .ctime_sec = st.st_ctim.tv_sec,
						       .ctime_nsec = st.st_ctim.tv_nsec };
			cacheable = true;
			if (process_from_cache(pc, &key, &exe_id, now, pv, p)) {
				p->verified = 1;
				proc_cache_count(pc, true);
				if (pv->memo)
					memo_put(pv->memo, data->pid, p);
				return p;
			}
		}
	}
	if (pc)
		proc_cache_count(pc, false);
	/* What we read belongs to the event's process only if the pid still
	 * names that process after the reads. */
	p->verified = read_process(data->pid, pv, p);
	if (!p->verified) {
		/* Possibly a recycled pid: attribute nothing. */
		p->exe = NULL;
		p->comm = NULL;
		p->uid = p->euid = (uid_t)-1;
		p->gid = p->egid = (gid_t)-1;
		return p;
	}
	/* The program stat'ed before the reads, the details read after it:
	 * an exec in between leaves an entry whose exe_id is the old one,
	 * which the next lookup drops. */
	if (cacheable && p->exe && p->comm) {
		struct proc_details d = { .exe_id = exe_id,
					  .uid = p->uid,
					  .euid = p->euid,
					  .gid = p->gid,
					  .egid = p->egid };

		memcpy(d.comm, pv->comm, sizeof(d.comm));
		proc_cache_insert(pc, &key, now, &d, pv->exe);
		if (pv->memo)
			memo_put(pv->memo, data->pid, p);
	}
	return p;
}
