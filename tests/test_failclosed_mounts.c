/* SPDX-License-Identifier: MIT */
/*
 * test_failclosed_mounts.c — other mounts of the watched files: a btrfs
 * subvolume made inside the subtree, bind mounts, a detached mount and
 * overlayfs in a user namespace, and a filesystem unmounted and mounted
 * again at the instance (docs/security.md section 11: rows 2, 2b and 9).
 *
 * An unprivileged user (uid/gid 65534, in a forked child) must not get a
 * marked file past a filter whose verdict is deny; root only. The test
 * filter, the attacker's children and each test's setup:
 * failclosed_fixture.h.
 */
#include "failclosed_fixture.h"

/* ==== a btrfs subvolume made by the user inside the subtree ==== */

/* Its own st_dev, on the same filesystem (and so under the same mark). */
static int
atk_subvolume(void *arg)
{
	struct btrfs_ioctl_vol_args va;
	int dfd = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC), sv, r;

	if (dfd < 0)
		return R_ERRNO(errno);
	memset(&va, 0, sizeof(va));
	snprintf(va.name, sizeof(va.name), "sv");
	if (ioctl(dfd, BTRFS_IOC_SUBVOL_CREATE, &va) < 0) {
		r = errno;
		close(dfd);
		return r == EPERM || r == EACCES ? KID_UNSUPPORTED : R_ERRNO(r);
	}
	sv = openat(dfd, "sv", O_PATH | O_DIRECTORY | O_CLOEXEC);
	close(dfd);
	if (sv < 0)
		return R_ERRNO(errno);
	r = put_at(sv, "file", C_TEXT_MARKED, 0644);
	if (r == 0)
		r = put_at(sv, "prog", C_PROG_MARKED, 0755);
	close(sv);
	return r < 0 ? R_ERRNO(-r) : 0;
}

/* The instance: a SUBTREE at b/watched, or a FILESYSTEM at b. */
static void
subvolume_case(enum flt_instance_kind kind)
{
	char w[256], sv[300], file[320], prog[320];
	struct stat sw, ss;
	int r, o, e, nf, np;

	if (!image_mount("btrfs", "-q -f", "160M", at("b"))) {
		print_message("skipped: cannot make and loop-mount a btrfs image here "
			      "(no loop device or mkfs.btrfs: package btrfs-progs)\n");
		skip();
	}
	snprintf(w, sizeof(w), "%s", at("b/watched"));
	snprintf(sv, sizeof(sv), "%s/sv", w);
	snprintf(file, sizeof(file), "%s/file", sv);
	snprintf(prog, sizeof(prog), "%s/prog", sv);
	mkdir_mode(w, 0777, 0);
	put(at("b/watched/plain"), C_TEXT_MARKED, 0);
	marker_filter(kind == FLT_INSTANCE_FILESYSTEM ? at("b") : w, kind);
	expect_plain_denial(at("b/watched/plain"), NULL);

	/* uid 65534 makes a subvolume (no privilege needed on btrfs). */
	r = run_kid(true, atk_subvolume, w);
	if (r == KID_UNSUPPORTED) {
		print_message("skipped: uid %d may not create a btrfs subvolume here\n",
			      NOBODY);
		skip();
	}
	assert_int_equal(r, 0);
	assert_int_equal(stat(w, &sw), 0);
	assert_int_equal(stat(sv, &ss), 0);
	o = root_open(file);
	e = root_exec(prog);
	nf = asked(file);
	np = asked(prog);
	print_message(
		"subvolume st_dev %u:%u, the instance's %u:%u: root's open %s, exec "
		"%s; filter asked %d time(s) about the file, %d about the program\n",
		major(ss.st_dev), minor(ss.st_dev), major(sw.st_dev), minor(sw.st_dev),
		code_str(o), code_str(e), nf, np);
	assert_true(denied(o));
	assert_true(denied(e));
}

static void
subvolume_inside_subtree_is_filtered(void **state)
{
	(void)state;
	NEED_ROOT();
	subvolume_case(FLT_INSTANCE_SUBTREE);
}

static void
subvolume_inside_filesystem_instance_is_filtered(void **state)
{
	(void)state;
	NEED_ROOT();
	subvolume_case(FLT_INSTANCE_FILESYSTEM);
}

/* ==== 2, 3. other mounts of the watched files, in a user namespace ==== */

static int
write_proc(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

/* The attacker becomes root of a user namespace of its own (mapped to
 * its uid) with a private copy of the mounts. */
static int
enter_userns(void)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];
	int r;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return -errno;
	if ((r = write_proc("/proc/self/setgroups", "deny")) < 0)
		return r;
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
	if ((r = write_proc("/proc/self/uid_map", map)) < 0)
		return r;
	snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
	if ((r = write_proc("/proc/self/gid_map", map)) < 0)
		return r;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	return 0;
}

enum ns_kind { NS_BIND, NS_OVERLAY, NS_OPEN_TREE };

struct ns_job {
	enum ns_kind kind;
	char src[PATH_MAX]; /* what is mounted again */
	char dst[PATH_MAX]; /* where (overlay: the merged directory) */
	char upper[PATH_MAX], work[PATH_MAX], empty[PATH_MAX]; /* overlay */
	char file[PATH_MAX];                                   /* then opened */
	char prog[PATH_MAX];                                   /* and executed */
};

static int
atk_ns(void *arg)
{
	struct ns_job *j = arg;
	char opts[4 * PATH_MAX + 64];
	int r = enter_userns(), dfd = AT_FDCWD;

	if (r < 0) {
		atomic_store(&shm->setup_err, -r);
		return KID_SETUP_FAILED;
	}
	switch (j->kind) {
	case NS_BIND:
		if (mount(j->src, j->dst, NULL, MS_BIND | MS_REC, NULL) < 0) {
			atomic_store(&shm->setup_err, errno);
			return KID_SETUP_FAILED;
		}
		break;
	case NS_OVERLAY:
		if (mkdir(j->upper, 0755) < 0 || mkdir(j->work, 0755) < 0 ||
		    mkdir(j->empty, 0755) < 0 || mkdir(j->dst, 0755) < 0) {
			atomic_store(&shm->setup_err, errno);
			return KID_SETUP_FAILED;
		}
		/* Writable first (upper and work outside the subtree), else
		 * read-only with a second, empty lower layer. */
		snprintf(opts, sizeof(opts),
			 "lowerdir=%s,upperdir=%s,workdir=%s,userxattr", j->src, j->upper,
			 j->work);
		atomic_store(&shm->variant, 1);
		if (mount("overlay", j->dst, "overlay", 0, opts) < 0) {
			int e1 = errno;

			snprintf(opts, sizeof(opts), "lowerdir=%s:%s", j->src, j->empty);
			atomic_store(&shm->variant, 2);
			if (mount("overlay", j->dst, "overlay", 0, opts) < 0) {
				atomic_store(&shm->setup_err, e1);
				atomic_store(&shm->variant, errno);
				return KID_UNSUPPORTED;
			}
		}
		break;
	case NS_OPEN_TREE:
		/* A detached copy of the mount, reached only by descriptor. */
		dfd = open_tree(AT_FDCWD, j->src,
				OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (dfd < 0) {
			atomic_store(&shm->setup_err, errno);
			return KID_UNSUPPORTED;
		}
		break;
	}
	atomic_store(&shm->open_code, open_code_at(dfd, j->file));
	atomic_store(&shm->exec_code, exec_code_at(dfd, j->prog));
	return 0;
}

/* Static: a failed assertion leaves the test by longjmp, and nothing may
 * leak then. */
static struct ns_job *
new_ns_job(void)
{
	static struct ns_job job;

	memset(&job, 0, sizeof(job));
	return &job;
}

/* Marked file and program in watched/sub; the job reaches them anew. */
static void
userns_case(struct ns_job *j, const char *what)
{
	int r, o, e, nf, np;

	mkdir_mode(at("watched/sub"), 0755, 0);
	put(at("watched/sub/file"), C_TEXT_MARKED, 0);
	put(at("watched/sub/prog"), C_PROG_MARKED, 0);
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	expect_plain_denial(at("watched/sub/file"), at("watched/sub/prog"));
	nf = asked(at("watched/sub/file"));
	np = asked(at("watched/sub/prog"));

	r = run_kid(true, atk_ns, j);
	if (r == KID_UNSUPPORTED) {
		print_message("skipped: %s refused in a user namespace: %s (then %s)\n",
			      what, strerror(atomic_load(&shm->setup_err)),
			      strerror(atomic_load(&shm->variant)));
		skip();
	}
	if (r != 0)
		fail_msg("uid %d could not set up %s: %s (%s)", NOBODY, what, code_str(r),
			 strerror(atomic_load(&shm->setup_err)));
	o = atomic_load(&shm->open_code);
	e = atomic_load(&shm->exec_code);
	nf = asked(at("watched/sub/file")) - nf;
	np = asked(at("watched/sub/prog")) - np;
	print_message(
		"uid %d through %s: open %s, exec %s; filter asked %d time(s) about "
		"the file, %d about the program\n",
		NOBODY, what, code_str(o), code_str(e), nf, np);
	if (j->kind == NS_OVERLAY)
		print_message("(overlay mounted %s)\n",
			      atomic_load(&shm->variant) == 1
				      ? "writable: upper and work in side/"
				      : "read-only: two lower layers");
	assert_true(denied(o));
	assert_true(denied(e));
}

static void
bind_mount_in_user_namespace_is_filtered(void **state)
{
	struct ns_job *j = new_ns_job();

	(void)state;
	NEED_ROOT();
	mkdir_mode(at("side/view"), 0777, 0);
	j->kind = NS_BIND;
	snprintf(j->src, PATH_MAX, "%s", at("watched"));
	snprintf(j->dst, PATH_MAX, "%s", at("side/view"));
	snprintf(j->file, PATH_MAX, "%s", at("side/view/sub/file"));
	snprintf(j->prog, PATH_MAX, "%s", at("side/view/sub/prog"));
	userns_case(j, "a bind mount of watched/ at side/view");
}

static void
bind_mount_of_a_subdirectory_in_user_namespace_is_filtered(void **state)
{
	struct ns_job *j = new_ns_job();

	(void)state;
	NEED_ROOT();
	mkdir_mode(at("side/view"), 0777, NOBODY);
	j->kind = NS_BIND;
	snprintf(j->src, PATH_MAX, "%s", at("watched/sub"));
	snprintf(j->dst, PATH_MAX, "%s", at("side/view"));
	snprintf(j->file, PATH_MAX, "%s", at("side/view/file"));
	snprintf(j->prog, PATH_MAX, "%s", at("side/view/prog"));
	userns_case(j, "a bind mount of watched/sub at side/view");
}

static void
detached_mount_in_user_namespace_is_filtered(void **state)
{
	struct ns_job *j = new_ns_job();

	(void)state;
	NEED_ROOT();
	j->kind = NS_OPEN_TREE;
	snprintf(j->src, PATH_MAX, "%s", at("watched"));
	snprintf(j->file, PATH_MAX, "sub/file");
	snprintf(j->prog, PATH_MAX, "sub/prog");
	userns_case(j, "a detached copy of watched/ (open_tree OPEN_TREE_CLONE)");
}

/*
 * Whether this kernel reports an open made through overlayfs to a
 * filesystem mark on its lower layer, as a raw permission group sees it.
 * Linux 6.1 does not: overlayfs opens the lower file with the overlay's
 * path ("fake path"), and the permission event goes to the overlay's
 * superblock only; later kernels report the lower file (6.18 does).
 */
static bool
kernel_reports_overlay_opens(void)
{
	char opts[3 * PATH_MAX];
	struct stat want;
	bool seen = false;
	int64_t end;
	pid_t kid;
	int g, st;

	mkdir_mode(at("ovl-probe"), 0755, 0);
	mkdir_mode(at("ovl-probe/lower"), 0755, 0);
	mkdir_mode(at("ovl-probe/upper"), 0755, 0);
	mkdir_mode(at("ovl-probe/work"), 0755, 0);
	mkdir_mode(at("ovl-probe/merged"), 0755, 0);
	put(at("ovl-probe/lower/f"), C_TEXT, 0);
	assert_int_equal(stat(at("ovl-probe/lower/f"), &want), 0);
	snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s",
		 at("ovl-probe/lower"), at("ovl-probe/upper"), at("ovl-probe/work"));
	/* Mounted before the mark: the mount itself opens files in work/
	 * (on the same filesystem), which nobody would answer. */
	assert_int_equal(mount("overlay", at("ovl-probe/merged"), "overlay", 0, opts), 0);
	g = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
			  O_RDONLY | O_CLOEXEC);
	assert_true(g >= 0);
	assert_int_equal(fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
				       FAN_OPEN_PERM, AT_FDCWD, at("ovl-probe/lower")),
			 0);
	kid = fork();
	assert_true(kid >= 0);
	if (kid == 0)
		_exit(open(at("ovl-probe/merged/f"), O_RDONLY | O_CLOEXEC) < 0);
	end = tu_now_ms() + 5000;
	while (tu_now_ms() < end && waitpid(kid, &st, WNOHANG) == 0) {
		struct pollfd pf = { .fd = g, .events = POLLIN };
		char buf[4096] __attribute__((aligned(8)));
		ssize_t n;

		if (poll(&pf, 1, 50) <= 0)
			continue;
		n = read(g, buf, sizeof(buf));
		for (struct fanotify_event_metadata *m = (void *)buf;
		     n > 0 && FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			struct fanotify_response r = { .fd = m->fd,
						       .response = FAN_ALLOW };
			struct stat got;

			if (m->fd < 0)
				continue;
			seen |= fstat(m->fd, &got) == 0 && got.st_ino == want.st_ino &&
				got.st_dev == want.st_dev;
			assert_int_equal(write(g, &r, sizeof(r)), (ssize_t)sizeof(r));
			close(m->fd);
		}
	}
	if (waitpid(kid, &st, WNOHANG) == 0) {
		kill(kid, SIGKILL);
		waitpid(kid, &st, 0);
	}
	close(g);
	umount2(at("ovl-probe/merged"), MNT_DETACH);
	return seen;
}

static void
overlay_in_user_namespace_is_filtered(void **state)
{
	struct ns_job *j = new_ns_job();

	(void)state;
	NEED_ROOT();
	if (!kernel_reports_overlay_opens()) {
		struct utsname u;

		uname(&u);
		print_message("skipped: Linux %s does not report an open made through "
			      "overlayfs to a filesystem mark on its lower layer: "
			      "files reached through an overlay that a user mounts in "
			      "a user namespace are NOT filtered on this kernel (README, "
			      "\"Kernel support\")\n",
			      u.release);
		skip();
	}
	j->kind = NS_OVERLAY;
	snprintf(j->src, PATH_MAX, "%s", at("watched"));
	snprintf(j->dst, PATH_MAX, "%s", at("side/merged"));
	snprintf(j->upper, PATH_MAX, "%s", at("side/upper"));
	snprintf(j->work, PATH_MAX, "%s", at("side/work"));
	snprintf(j->empty, PATH_MAX, "%s", at("side/empty"));
	snprintf(j->file, PATH_MAX, "%s", at("side/merged/sub/file"));
	snprintf(j->prog, PATH_MAX, "%s", at("side/merged/sub/prog"));
	userns_case(j, "an overlayfs with watched/ as its lower layer");
}

/* ==== 7. a filesystem unmounted and mounted again at the instance ==== */

static const char *
state_name(enum flt_instance_state s)
{
	switch (s) {
	case FLT_INSTANCE_ATTACHED:
		return "ATTACHED";
	case FLT_INSTANCE_REATTACHED:
		return "REATTACHED";
	case FLT_INSTANCE_STALE:
		return "STALE";
	}
	return "?";
}

static void
remount_case(enum flt_instance_kind kind)
{
	const char *vol = at("vol");
	struct flt_instance_info *info = NULL;
	enum flt_instance_state st = FLT_INSTANCE_STALE;
	struct flt_engine_stats es;
	uint32_t re = 0;
	size_t n = 0;
	flt_filter *f;
	int plain, o, tries = 0;
	int64_t t0, t_deny = -1;

	mkdir_mode(vol, 0755, 0);
	assert_int_equal(mount("fltmgr-fc-vol1", vol, "tmpfs", 0, "mode=0755,size=8m"),
			 0);
	put(at("vol/before"), C_TEXT_MARKED, 0);
	f = marker_filter(vol, kind);
	expect_plain_denial(at("vol/before"), NULL);

	/* The admin replaces the filesystem. */
	plain = umount(vol) < 0 ? errno : 0;
	if (plain)
		assert_int_equal(umount2(vol, MNT_DETACH), 0);
	assert_int_equal(mount("fltmgr-fc-vol2", vol, "tmpfs", 0, "mode=0755,size=8m"),
			 0);
	t0 = tu_now_ms();
	put(at("vol/file"), C_TEXT_MARKED, 0);
	do {
		o = root_open(at("vol/file"));
		tries++;
		if (denied(o)) {
			t_deny = tu_now_ms() - t0;
			break;
		}
		usleep(10000);
	} while (tu_now_ms() - t0 < 1000);
	assert_true(flt_filter_list_instances(f, &info, &n) >= 0);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message("plain umount: %s; after umount2(MNT_DETACH) and a new tmpfs: %d "
		      "open(s) in 1 s, last %s, first denial after %lld ms\n",
		      plain ? strerror(plain) : "succeeded", tries, code_str(o),
		      (long long)t_deny);
	if (n >= 1) {
		st = info[0].state;
		re = info[0].reattaches;
		print_message(
			"instance %s: state %s, reattaches %u; engine mount_changes "
			"%llu, instance_reattaches %llu\n",
			info[0].path, state_name(st), re,
			(unsigned long long)es.mount_changes,
			(unsigned long long)es.instance_reattaches);
	}
	free(info);
	assert_int_equal(n, 1);
	assert_true(denied(o));
	assert_int_equal(st, FLT_INSTANCE_REATTACHED);
	/* Once or twice: between the unmount and the mount the path names
	 * the directory underneath, on the parent filesystem, and the
	 * watcher may see that state on its own (and cover it). */
	assert_in_range(re, 1, 2);
	umount2(vol, MNT_DETACH);
}

static void
remounted_filesystem_is_filtered_again(void **state)
{
	(void)state;
	NEED_ROOT();
	remount_case(FLT_INSTANCE_SUBTREE);
}

static void
remounted_filesystem_is_filtered_again_mount_instance(void **state)
{
	(void)state;
	NEED_ROOT();
	remount_case(FLT_INSTANCE_MOUNT);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(subvolume_inside_subtree_is_filtered),
		T(subvolume_inside_filesystem_instance_is_filtered),
		T(bind_mount_in_user_namespace_is_filtered),
		T(bind_mount_of_a_subdirectory_in_user_namespace_is_filtered),
		T(detached_mount_in_user_namespace_is_filtered),
		T(overlay_in_user_namespace_is_filtered),
		T(remounted_filesystem_is_filtered_again),
		T(remounted_filesystem_is_filtered_again_mount_instance),
#undef T
	};
	int r;

	if (argc == 2) /* a pattern: run only the tests it matches */
		cmocka_set_test_filter(argv[1]);
	r = failclosed_fixture_init("test_failclosed_mounts");
	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("failclosed", tests, NULL, NULL);
}
