/* SPDX-License-Identifier: MIT */
/*
 * test_volumes.c — automatic attachment (flt_set_auto_attach): instances
 * that follow the machine's mounts, and MOUNT instances matched by mount
 * id (root only).
 *
 * The program runs in its own private mount namespace on a scratch tmpfs;
 * every test mounts what it needs below <scratch>/vols, so the engine's
 * mount watcher sees exactly those changes. A filter with an auto-attach
 * policy for the mount points <scratch>/vols/(anything) denies opens of files holding a marker
 * (read through the event's descriptor) and records every volume setup
 * and instance teardown. Opens are made by forked children: the test
 * process is the engine's own process, which is never filtered. Each
 * test runs with the kernel's mount notifications where the kernel has
 * them, and the polling tests force mountinfo polling
 * (FLTMGR_MOUNT_WATCH=poll).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "engine/statx_compat.h"

#define MARKER      "FLTMGR-VOLUME-MARKER"
#define SETTLE_MS   10000 /* a bound for failures: waits end when met */
#define MAX_RECORDS 64

static bool have_root;
static char scratch[] = "/tmp/fltmgr-vol.XXXXXX";
static flt_manager *g_m;
static flt_filter *g_f;

struct setup_rec {
	enum flt_setup_reason reason;
	uint64_t mount_id;
	char fs_type[32];
	char point[PATH_MAX];
	uint32_t flags;
};

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct setup_rec setups[MAX_RECORDS];
static int n_setups;
static atomic_int n_teardowns;
static char decline_type[32]; /* the volume setup callback declines it */

#define NEED_ROOT()                                                        \
	do {                                                               \
		if (!have_root) {                                          \
			print_message("skipped: needs root (fanotify)\n"); \
			skip();                                            \
		}                                                          \
	} while (0)

/* A path under scratch. */
static const char *
at(const char *rel)
{
	return tu_path(scratch, rel);
}

/* ---- the filter ---- */

static enum flt_preop_status
pre_open(struct flt_callback_data *d, void *ictx, void **cctx)
{
	(void)ictx;
	(void)cctx;
	if (tu_fd_contains(d->fd, MARKER, 1 << 16) == 1) {
		d->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static int
volume_setup(flt_filter *f, const struct flt_volume *v, enum flt_setup_reason why,
	     enum flt_instance_kind *kind, void **ctx)
{
	(void)f;
	(void)kind;
	*ctx = NULL;
	pthread_mutex_lock(&rec_lock);
	if (n_setups < MAX_RECORDS) {
		struct setup_rec *r = &setups[n_setups++];

		r->reason = why;
		r->mount_id = v->mount_id;
		r->flags = v->flags;
		snprintf(r->fs_type, sizeof(r->fs_type), "%s", v->fs_type);
		snprintf(r->point, sizeof(r->point), "%s", v->mount_point);
	}
	pthread_mutex_unlock(&rec_lock);
	return decline_type[0] && !strcmp(v->fs_type, decline_type) ? -EPERM : 0;
}

static void
teardown_cb(flt_filter *f, void *ctx)
{
	(void)f;
	(void)ctx;
	atomic_fetch_add(&n_teardowns, 1);
}

/* The filter, with a policy for tmpfs-like fs_type volumes mounted at
 * <scratch>/vols/(anything), in the mount namespace of ns_pid (0: ours). */
static flt_filter *
start_filter_ns(const char *fs_type, enum flt_instance_kind kind, pid_t ns_pid)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_open, NULL },
	};
	struct flt_registration reg = {
		.name = "vol",
		.altitude = "300000",
		.operations = ops,
		.n_operations = 1,
		.volume_setup = volume_setup,
		.instance_teardown = teardown_cb,
		.default_verdict = -EPERM,
		.deadline_ms = 3000,
	};
	const char *types[] = { fs_type, NULL };
	char pattern[PATH_MAX];
	const char *points[] = { pattern, NULL };
	struct flt_auto_attach policy = {
		.fs_types = types, .mount_points = points, .kind = kind, .ns_pid = ns_pid
	};
	flt_filter *f = NULL;

	snprintf(pattern, sizeof(pattern), "%s/vols/*", scratch);
	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_set_auto_attach(f, &policy), 0);
	assert_int_equal(flt_start_filtering(f), 0);
	g_f = f;
	return f;
}

static flt_filter *
start_filter(const char *fs_type, enum flt_instance_kind kind)
{
	return start_filter_ns(fs_type, kind, 0);
}

/* ---- helpers ---- */

/* A child opens path and exits 0 or with the errno. */
static int
child_open(const char *path)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		_exit(fd >= 0 ? 0 : errno);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void
mount_tmpfs(const char *dir, const char *name)
{
	mkdir(dir, 0755);
	assert_int_equal(mount(name, dir, "tmpfs", 0, "mode=0755,size=4m"), 0);
}

static uint64_t
mount_id_of(const char *path)
{
	struct flt_statx stx;

	if (flt_statx(AT_FDCWD, path, 0, FLT_STATX_MNT_ID, &stx) < 0)
		return 0;
	return stx.stx_mask & FLT_STATX_MNT_ID ? stx.stx_mnt_id : 0;
}

/* Opens path (a marked file) every millisecond until it is denied;
 * returns the milliseconds that took, or -1 after SETTLE_MS. */
static int64_t
ms_until_denied(const char *path, int64_t t0)
{
	while (tu_now_ms() - t0 < SETTLE_MS) {
		if (child_open(path) == EPERM)
			return tu_now_ms() - t0;
		usleep(1000);
	}
	return -1;
}

/* The number of instances of g_f at path (automatic ones only, if so). */
static int
instances_at(const char *path, bool automatic_only)
{
	struct flt_instance_info *info = NULL;
	size_t n = 0;
	int k = 0;

	if (flt_filter_list_instances(g_f, &info, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(info[i].path, path) && (!automatic_only || info[i].automatic))
			k++;
	free(info);
	return k;
}

static int
an_instance_at(void *path)
{
	return instances_at(path, true) == 1;
}

static int
no_instance_at(void *path)
{
	return instances_at(path, false) == 0;
}

static int
setup_count(void)
{
	int n;

	pthread_mutex_lock(&rec_lock);
	n = n_setups;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

static int
some_setup(void *want)
{
	return setup_count() >= *(int *)want;
}

static struct setup_rec
setup_at(int i)
{
	struct setup_rec r;

	pthread_mutex_lock(&rec_lock);
	r = setups[i];
	pthread_mutex_unlock(&rec_lock);
	return r;
}

static dev_t
dev_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_dev;
}

/* umount(path), retried while it is busy for up to SETTLE_MS: right after
 * an access the engine may still hold that event's file descriptor
 * (the kernel opens one on the mount for each permission event) for the
 * moment it takes to answer and close it. 0 or -1 (errno set). */
static int
umount_soon(const char *path)
{
	int64_t end = tu_now_ms() + SETTLE_MS;
	int r;

	while ((r = umount(path)) < 0 && errno == EBUSY && tu_now_ms() < end)
		usleep(2000);
	return r;
}

/* How many of this process's open files are on the filesystem dev. */
static int
fds_on_dev(dev_t dev)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char link[300];
		struct stat st;

		/* stat through the magic link, not fstat(): the engine's threads
		 * own these descriptors and may close one meanwhile (a race
		 * ThreadSanitizer would rightly report on an fstat). */
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d) &&
		    stat(link, &st) == 0 && st.st_dev == dev)
			n++;
	}
	closedir(d);
	return n;
}

static int
no_fd_on_dev(void *dev)
{
	return fds_on_dev(*(dev_t *)dev) == 0;
}

/* What the engine sees and what the filter was asked, for a failure
 * message. */
static void
print_volumes_and_setups(void)
{
	struct flt_volume *v = NULL;
	size_t n = 0;

	if (flt_manager_list_volumes(g_m, &v, &n) >= 0)
		for (size_t i = 0; i < n; i++)
			if (strstr(v[i].mount_point, scratch))
				print_message("  volume %s %s mount %llu dev %u:%u\n",
					      v[i].mount_point, v[i].fs_type,
					      (unsigned long long)v[i].mount_id,
					      major(v[i].dev), minor(v[i].dev));
	free(v);
	for (int i = 0; i < setup_count(); i++) {
		struct setup_rec r = setup_at(i);

		print_message("  setup %d: %s mount %llu reason %d\n", i, r.point,
			      (unsigned long long)r.mount_id, (int)r.reason);
	}
	print_message("  instances at the path: %d\n", instances_at(at("vols/r"), false));
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	tu_runtime_dir_create();
	pthread_mutex_lock(&rec_lock);
	n_setups = 0;
	pthread_mutex_unlock(&rec_lock);
	atomic_store(&n_teardowns, 0);
	decline_type[0] = '\0';
	assert_int_equal(mkdir(at("vols"), 0755), 0);
	g_m = tu_manager_new();
	g_f = NULL;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[PATH_MAX + 64];

	(void)state;
	if (!have_root)
		return 0;
	flt_manager_free(g_m);
	g_m = NULL;
	unsetenv("FLTMGR_MOUNT_WATCH");
	/* Everything mounted below vols, innermost first. */
	snprintf(cmd, sizeof(cmd),
		 "grep -o ' %s/vols/[^ ]*' /proc/self/mountinfo | sort -r | "
		 "xargs -r -n1 umount -l 2>/dev/null; rm -rf %s/vols %s/b",
		 scratch, scratch, scratch);
	if (system(cmd) != 0) {
		/* best effort */
	}
	tu_runtime_dir_remove();
	return 0;
}

/* ---- tests ---- */

static void
newly_mounted(bool poll_only)
{
	const char *vol = at("vols/a");
	int64_t t0, ms;
	struct setup_rec r;
	struct flt_engine_stats es;
	int one = 1;
	dev_t dev;

	NEED_ROOT();
	if (poll_only)
		setenv("FLTMGR_MOUNT_WATCH", "poll", 1);
	start_filter("tmpfs", FLT_INSTANCE_FILESYSTEM);
	mount_tmpfs(vol, "fltmgr-vol-a");
	t0 = tu_now_ms();
	tu_write_file(at("vols/a/bad"), "x " MARKER " y\n");
	tu_write_file(at("vols/a/good"), "clean\n");
	ms = ms_until_denied(at("vols/a/bad"), t0);
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	r = setup_at(0);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message(
		"%s: a tmpfs mounted at vols/a was filtered %lld ms after the mount "
		"(setup: %s, %s, mount %llu); volumes_attached %llu\n",
		poll_only ? "mountinfo polling" : "the kernel's choice", (long long)ms,
		r.reason == FLT_SETUP_NEWLY_MOUNTED ? "newly mounted" : "present",
		r.fs_type, (unsigned long long)r.mount_id,
		(unsigned long long)es.volumes_attached);
	assert_true(ms >= 0);
	assert_int_equal(r.reason, FLT_SETUP_NEWLY_MOUNTED);
	assert_string_equal(r.fs_type, "tmpfs");
	assert_string_equal(r.point, vol);
	assert_int_equal(r.mount_id, mount_id_of(vol));
	assert_int_equal(child_open(at("vols/a/good")), 0);
	assert_int_equal(instances_at(vol, true), 1);

	/* Unmounted, plainly (the engine holds a detached clone of the
	 * mount, not the mount): torn down, gone from the instances,
	 * counted, and nothing of the filesystem left open. */
	dev = dev_of(vol);
	assert_true(fds_on_dev(dev) >= 1); /* the anchor */
	assert_int_equal(umount_soon(vol), 0);
	assert_true(tu_wait_until(no_instance_at, (void *)vol, SETTLE_MS));
	assert_true(tu_wait_until(no_fd_on_dev, &dev, SETTLE_MS));
	assert_int_equal(atomic_load(&n_teardowns), 1);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	assert_int_equal(es.volumes_detached, 1);
}

static void
newly_mounted_tmpfs_is_filtered_and_torn_down(void **state)
{
	(void)state;
	newly_mounted(false);
}

static void
newly_mounted_tmpfs_is_filtered_and_torn_down_polling(void **state)
{
	(void)state;
	newly_mounted(true);
}

static void
volumes_present_at_start_are_set_up(void **state)
{
	const char *vol = at("vols/p");
	struct setup_rec r;
	int one = 1;

	(void)state;
	NEED_ROOT();
	mount_tmpfs(vol, "fltmgr-vol-p");
	tu_write_file(at("vols/p/bad"), MARKER);
	start_filter("tmpfs", FLT_INSTANCE_MOUNT);
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	r = setup_at(0);
	assert_int_equal(r.reason, FLT_SETUP_AUTOMATIC);
	assert_int_equal(child_open(at("vols/p/bad")), EPERM);
	/* Only the selected volumes: not the scratch tmpfs itself. */
	assert_int_equal(setup_count(), 1);
}

static void
mounted_again_at_the_same_path_gets_a_new_instance(void **state)
{
	const char *vol = at("vols/r");
	uint64_t first, second;
	int one = 1, two = 2;

	(void)state;
	NEED_ROOT();
	start_filter("tmpfs", FLT_INSTANCE_MOUNT);
	mount_tmpfs(vol, "fltmgr-vol-r1");
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	/* The setup callback runs before the instance is placed: unmounting
	 * in between makes the placing fail (the mount changed under it),
	 * and the first filesystem is freed at once, so the second mount
	 * may get both its mount id and its device number, and look like
	 * the same volume to a reader of mountinfo (Linux < 6.15). */
	assert_true(tu_wait_until(an_instance_at, (void *)vol, SETTLE_MS));
	first = setup_at(0).mount_id;
	assert_int_equal(umount2(vol, MNT_DETACH), 0);
	mount_tmpfs(vol, "fltmgr-vol-r2");
	tu_write_file(at("vols/r/bad"), MARKER);
	if (!tu_wait_until(some_setup, &two, SETTLE_MS)) {
		print_volumes_and_setups();
		fail_msg("the second mount at %s was not set up", vol);
	}
	second = setup_at(1).mount_id;
	/* Mount ids are reused once freed: the new mount may have the old
	 * one's number, on another filesystem. */
	print_message("mount ids: %llu, then %llu\n", (unsigned long long)first,
		      (unsigned long long)second);
	assert_int_equal(setup_at(1).reason, FLT_SETUP_NEWLY_MOUNTED);
	assert_true(ms_until_denied(at("vols/r/bad"), tu_now_ms()) >= 0);
	assert_true(atomic_load(&n_teardowns) >= 1);
	assert_int_equal(instances_at(vol, true), 1);
}

/* A bind mount of the volume is a volume of its own; one of a directory
 * inside it is flagged FLT_VOLUME_BIND. */
static void
bind_mounts_get_their_own_mount_instances(void **state)
{
	const char *a = at("vols/a"), *b = at("vols/b"), *sub = at("vols/sub");
	int one = 1, two = 2, three = 3;

	(void)state;
	NEED_ROOT();
	start_filter("tmpfs", FLT_INSTANCE_MOUNT);
	mount_tmpfs(a, "fltmgr-vol-a");
	tu_write_file(at("vols/a/bad"), MARKER);
	assert_int_equal(mkdir(at("vols/a/d"), 0755), 0);
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	mkdir(b, 0755);
	assert_int_equal(mount(a, b, NULL, MS_BIND, NULL), 0);
	assert_true(tu_wait_until(some_setup, &two, SETTLE_MS));
	assert_int_equal(setup_at(1).flags & FLT_VOLUME_BIND, 0);
	assert_int_equal(instances_at(a, true), 1);
	assert_int_equal(instances_at(b, true), 1);
	assert_int_equal(child_open(at("vols/b/bad")), EPERM);
	assert_int_equal(child_open(at("vols/a/bad")), EPERM);
	mkdir(sub, 0755);
	assert_int_equal(mount(at("vols/a/d"), sub, NULL, MS_BIND, NULL), 0);
	assert_true(tu_wait_until(some_setup, &three, SETTLE_MS));
	assert_true(setup_at(2).flags & FLT_VOLUME_BIND);
}

static void
moved_mount_is_set_up_at_its_new_place(void **state)
{
	const char *a = at("vols/a"), *c = at("vols/c");
	uint64_t id;
	int one = 1, two = 2;

	(void)state;
	NEED_ROOT();
	start_filter("tmpfs", FLT_INSTANCE_MOUNT);
	mount_tmpfs(a, "fltmgr-vol-a");
	tu_write_file(at("vols/a/bad"), MARKER);
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	id = setup_at(0).mount_id;
	mkdir(c, 0755);
	assert_int_equal(mount(a, c, NULL, MS_MOVE, NULL), 0);
	assert_true(tu_wait_until(some_setup, &two, SETTLE_MS));
	assert_int_equal(setup_at(1).mount_id, id); /* a move keeps the id */
	assert_string_equal(setup_at(1).point, c);
	assert_true(tu_wait_until(no_instance_at, (void *)a, SETTLE_MS));
	assert_int_equal(instances_at(c, true), 1);
	assert_int_equal(child_open(at("vols/c/bad")), EPERM);
}

static void
ext4_image_on_a_loop_device_is_attached(void **state)
{
	const char *vol = at("vols/e");
	char cmd[PATH_MAX * 2];
	int one = 1;

	(void)state;
	NEED_ROOT();
	snprintf(cmd, sizeof(cmd),
		 "truncate -s 32M %s/e4.img && mkfs.ext4 -q -F %s/e4.img >/dev/null 2>&1 "
		 "&& "
		 "mkdir -p %s && mount -o loop %s/e4.img %s",
		 scratch, scratch, vol, scratch, vol);
	if (system(cmd) != 0) {
		print_message("skipped: cannot make and loop-mount an ext4 image here\n");
		skip();
	}
	start_filter("ext4", FLT_INSTANCE_FILESYSTEM);
	tu_write_file(at("vols/e/bad"), MARKER);
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	assert_string_equal(setup_at(0).fs_type, "ext4");
	assert_int_equal(child_open(at("vols/e/bad")), EPERM);
}

static void
a_volume_the_filter_declines_is_left_alone(void **state)
{
	const char *vol = at("vols/d");
	struct flt_engine_stats es;
	int one = 1;

	(void)state;
	NEED_ROOT();
	snprintf(decline_type, sizeof(decline_type), "tmpfs");
	start_filter("tmpfs", FLT_INSTANCE_FILESYSTEM);
	mount_tmpfs(vol, "fltmgr-vol-d");
	tu_write_file(at("vols/d/bad"), MARKER);
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	assert_int_equal(instances_at(vol, false), 0);
	assert_int_equal(child_open(at("vols/d/bad")), 0);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	assert_int_equal(es.volumes_declined, 1);
}

static void
pseudo_file_systems_only_when_named(void **state)
{
	const char *pv = at("vols/proc"), *tv = at("vols/t");
	int one = 1;

	(void)state;
	NEED_ROOT();
	mkdir(pv, 0755);
	assert_int_equal(mount("proc", pv, "proc", 0, NULL), 0);
	start_filter("*", FLT_INSTANCE_MOUNT);
	mount_tmpfs(tv, "fltmgr-vol-t");
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	usleep(100000);
	for (int i = 0; i < setup_count(); i++)
		assert_string_not_equal(setup_at(i).fs_type, "proc");
	assert_int_equal(instances_at(pv, false), 0);
	assert_int_equal(instances_at(tv, true), 1);
}

/* A MOUNT instance attached by path covers accesses through its own
 * mount, found by mount id (a path longer than PATH_MAX included), and not
 * those through another mount of the daemon's namespace. */
static void
mount_instance_is_matched_by_mount_id(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_open, NULL },
	};
	struct flt_registration reg = { .name = "bymount",
					.altitude = "300000",
					.operations = ops,
					.n_operations = 1,
					.default_verdict = -EPERM };
	const char *a = at("vols/a"), *b = at("b");
	flt_filter *f = NULL;

	(void)state;
	NEED_ROOT();
	mount_tmpfs(a, "fltmgr-vol-a");
	tu_write_file(at("vols/a/bad"), MARKER);
	mkdir(b, 0755);
	assert_int_equal(mount(a, b, NULL, MS_BIND, NULL), 0);
	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, a, FLT_INSTANCE_MOUNT), 0);
	assert_int_equal(flt_start_filtering(f), 0);
	assert_int_equal(child_open(at("vols/a/bad")), EPERM);
	/* root's own bind mount elsewhere in this namespace: another mount */
	assert_int_equal(child_open(at("b/bad")), 0);
	umount2(b, MNT_DETACH);
}

/* A container-like mount namespace: a process of its own namespace mounts
 * a tmpfs the daemon's namespace never sees. A policy naming that
 * process's namespace (ns_pid) gets the volume, reached through
 * /proc/PID/root, and the namespace's own accesses to it are filtered;
 * when it is unmounted there, the instance goes. */
static void
container_namespace_volumes_are_attached(void **state)
{
	char path[PATH_MAX + 32], c = 0;
	const char *vol = at("vols/ctr");
	int go[2], ready[2], st, one = 1, opened;
	struct setup_rec r;
	pid_t pid;

	(void)state;
	NEED_ROOT();
	assert_int_equal(mkdir(vol, 0755), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd, res;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("fltmgr-ctr", vol, "tmpfs", 0, "mode=0755,size=4m") < 0)
			_exit(2);
		fd = open(at("vols/ctr/bad"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, MARKER, strlen(MARKER)) < 0 || close(fd) < 0)
			_exit(3);
		/* ready; wait; open the marked file; report; wait; unmount */
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(4);
		fd = open(at("vols/ctr/bad"), O_RDONLY | O_CLOEXEC);
		res = fd >= 0 ? 0 : errno;
		if (fd >= 0)
			close(fd);
		c = (char)res;
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(5);
		if (umount2(vol, MNT_DETACH) < 0 || write(ready[1], "u", 1) != 1 ||
		    read(go[0], &c, 1) != 1)
			_exit(6);
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	start_filter_ns("tmpfs", FLT_INSTANCE_MOUNT, pid);
	assert_true(tu_wait_until(some_setup, &one, SETTLE_MS));
	r = setup_at(0);
	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, vol);
	print_message("the namespace of pid %d: %s at %s (mount %llu), instance at %s\n",
		      (int)pid, r.fs_type, r.point, (unsigned long long)r.mount_id, path);
	assert_string_equal(r.point, vol);
	assert_int_equal(instances_at(path, true), 1);
	assert_int_equal(instances_at(vol, false), 0); /* not here */
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(read(ready[0], &c, 1), 1);
	opened = c;
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(read(ready[0], &c, 1), 1); /* unmounted there */
	assert_true(tu_wait_until(no_instance_at, path, SETTLE_MS));
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	assert_int_equal(opened, EPERM);
	assert_int_equal(atomic_load(&n_teardowns), 1);
}

/* A volume attached by hand (flt_attach, as fltmc attach or the
 * configuration does) does not keep its filesystem from being unmounted:
 * the instance goes stale, and once the engine has dropped its mark
 * nothing of the filesystem stays open here. Mounted again at the same
 * path, it is filtered again. */
static void
hand_attached_volume_unmounts_and_is_released(void **state)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre_open, NULL },
	};
	struct flt_registration reg = {
		.name = "hand",
		.altitude = "300000",
		.operations = ops,
		.n_operations = 1,
		.default_verdict = -EPERM,
		.deadline_ms = 3000,
	};
	const char *vol = at("vols/h");
	dev_t dev;

	(void)state;
	NEED_ROOT();
	mount_tmpfs(vol, "fltmgr-vol-h");
	tu_write_file(at("vols/h/bad"), MARKER);
	assert_int_equal(flt_register_filter(g_m, &reg, &g_f), 0);
	assert_int_equal(flt_attach(g_f, vol, FLT_INSTANCE_FILESYSTEM), 0);
	assert_int_equal(flt_start_filtering(g_f), 0);
	assert_int_equal(child_open(at("vols/h/bad")), EPERM);
	dev = dev_of(vol);
	assert_true(fds_on_dev(dev) >= 1);

	assert_int_equal(umount_soon(vol), 0);
	(void)flt_manager_recheck_instances(g_m);
	assert_true(tu_wait_until(no_fd_on_dev, &dev, SETTLE_MS));

	mount_tmpfs(vol, "fltmgr-vol-h2");
	tu_write_file(at("vols/h/bad"), MARKER);
	(void)flt_manager_recheck_instances(g_m);
	assert_int_equal(child_open(at("vols/h/bad")), EPERM);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(newly_mounted_tmpfs_is_filtered_and_torn_down),
		T(newly_mounted_tmpfs_is_filtered_and_torn_down_polling),
		T(volumes_present_at_start_are_set_up),
		T(mounted_again_at_the_same_path_gets_a_new_instance),
		T(bind_mounts_get_their_own_mount_instances),
		T(moved_mount_is_set_up_at_its_new_place),
		T(ext4_image_on_a_loop_device_is_attached),
		T(a_volume_the_filter_declines_is_left_alone),
		T(pseudo_file_systems_only_when_named),
		T(mount_instance_is_matched_by_mount_id),
		T(container_namespace_volumes_are_attached),
		T(hand_attached_volume_unmounts_and_is_released),
#undef T
	};
	int r;

	have_root = geteuid() == 0;
	if (have_root) {
		r = tu_private_scratch("test_volumes", scratch, "fltmgr-vol", 128);
		if (r == 77)
			have_root = false;
		else if (r != 0)
			return r;
	} else {
		printf("test_volumes: SKIP: not root (fanotify needs CAP_SYS_ADMIN)\n");
	}
	r = cmocka_run_group_tests(tests, NULL, NULL);
	if (have_root)
		tu_private_scratch_remove(scratch);
	return r;
}
