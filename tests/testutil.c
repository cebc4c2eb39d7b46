/* SPDX-License-Identifier: MIT */
/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char runtime_dir[256];

const char *
tu_runtime_dir_create(void)
{
	snprintf(runtime_dir, sizeof(runtime_dir), "/tmp/fltmgr-test.XXXXXX");
	assert_non_null(mkdtemp(runtime_dir));
	assert_int_equal(setenv("FLTMGR_RUNTIME_DIR", runtime_dir, 1), 0);
	return runtime_dir;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tu_runtime_dir_remove(void)
{
	if (runtime_dir[0])
		nftw(runtime_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	runtime_dir[0] = '\0';
}

flt_manager *
tu_manager_new(void)
{
	struct flt_manager_options o = { .log_level = FLT_LOG_WARNING };
	flt_manager *m = NULL;

	assert_int_equal(flt_manager_new(&o, &m), 0);
	assert_non_null(m);
	return m;
}

int
tu_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own descriptor */
}

int
tu_fds_at_most(void *arg)
{
	return tu_count_fds() <= *(int *)arg;
}

void
tu_filter_up(const char *name, int *fds_before, flt_manager **m, flt_filter **f)
{
	struct flt_registration reg = { .name = name, .altitude = "370000" };

	tu_runtime_dir_create();
	*fds_before = tu_count_fds();
	*m = tu_manager_new();
	assert_int_equal(flt_register_filter(*m, &reg, f), 0);
}

void
tu_filter_down(flt_manager *m, flt_filter *f, int fds_before)
{
	flt_unregister_filter(f);
	flt_manager_free(m);
	/* Every descriptor the test made is gone again. */
	assert_true(tu_wait_until(tu_fds_at_most, &fds_before, 10000));
	tu_runtime_dir_remove();
}

int64_t
tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
tu_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
tu_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
tu_wait_until(int (*pred)(void *), void *arg, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int v;

	while (!(v = pred(arg)) && tu_now_ms() < end)
		usleep(1000);
	return v;
}

int
tu_file_exists(void *path)
{
	return access(path, F_OK) == 0;
}

struct daemon_paths {
	char control[PATH_MAX], port[PATH_MAX];
};

static int
daemon_ready(void *arg)
{
	struct daemon_paths *p = arg;

	return access(p->control, F_OK) == 0 &&
	       (!p->port[0] || access(p->port, F_OK) == 0);
}

int
tu_wait_daemon_ready(const char *rundir, const char *port, int timeout_ms)
{
	struct daemon_paths p = { .port = "" };

	snprintf(p.control, sizeof(p.control), "%s/control", rundir);
	if (port)
		snprintf(p.port, sizeof(p.port), "%s/%s", rundir, port);
	return tu_wait_until(daemon_ready, &p, timeout_ms);
}

char *
tu_path(const char *dir, const char *rel)
{
	static char bufs[16][PATH_MAX];
	static int i;
	char *b = bufs[i++ % 16];

	snprintf(b, PATH_MAX, "%s/%s", dir, rel);
	return b;
}

void
tu_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

void
tu_write_file_mode(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

char *
tu_slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (f) {
		for (;;) {
			if (len + 4096 + 1 > cap) {
				cap = (len + 4096 + 1) * 2;
				buf = realloc(buf, cap);
				assert_non_null(buf);
			}
			n = fread(buf + len, 1, 4096, f);
			len += n;
			if (n == 0)
				break;
		}
		fclose(f);
	}
	if (!buf)
		buf = calloc(1, 1);
	buf[len] = '\0';
	return buf;
}

int
tu_count_in_file(const char *path, const char *needle)
{
	char *s = tu_slurp(path), *p = s;
	int n = 0;

	while ((p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	free(s);
	return n;
}

bool
tu_wait_in_file(const char *path, const char *needle, int n, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;

	while (tu_now_ms() < end) {
		if (tu_count_in_file(path, needle) >= n)
			return true;
		usleep(2000);
	}
	return false;
}

pid_t
tu_spawn(char *const argv[], const char *out, const char *err)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int efd = open(err, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int ofd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (efd < 0 || ofd < 0 || null < 0)
			_exit(127);
		dup2(null, STDIN_FILENO);
		dup2(ofd, STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		execve(argv[0], argv, environ);
		_exit(127);
	}
	return pid;
}

int
tu_wait_exit(pid_t pid, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		if (r < 0 || tu_now_ms() > end)
			return -1;
		usleep(2000);
	}
}

int
tu_expect_exit(pid_t pid, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int st;

	while (tu_now_ms() < end) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		assert_true(r >= 0);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(2000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	fail_msg("process %d did not exit within %d ms", (int)pid, timeout_ms);
	return -1;
}

/* A mount namespace of our own, with nothing propagating out of it. */
static int
private_mount_ns(void)
{
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -errno;
	return 0;
}

int
tu_root_private_ns(const char *prog, bool *have_root)
{
	int r;

	*have_root = geteuid() == 0;
	if (!*have_root) {
		printf("%s: not root: every test is skipped (fanotify needs "
		       "CAP_SYS_ADMIN)\n",
		       prog);
		return 0;
	}
	r = private_mount_ns();
	if (r < 0) {
		fprintf(stderr, "%s: cannot make a private mount namespace: %s\n", prog,
			strerror(-r));
		return 1;
	}
	return 0;
}

int
tu_private_scratch(const char *prog, char *dir, const char *fsname, unsigned size_mb)
{
	char opts[64];
	int r = private_mount_ns();

	if (r < 0) {
		printf("%s: SKIP: cannot make a private mount namespace: %s\n", prog,
		       strerror(-r));
		return 77;
	}
	snprintf(opts, sizeof(opts), "mode=0755,size=%um", size_mb);
	if (!mkdtemp(dir) || mount(fsname, dir, "tmpfs", 0, opts) < 0) {
		printf("%s: cannot mount a scratch tmpfs: %s\n", prog, strerror(errno));
		return 1;
	}
	return 0;
}

void
tu_private_scratch_remove(const char *dir)
{
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

int
tu_become_user(uid_t uid, gid_t gid)
{
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return -errno;
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

int
tu_fd_contains(int fd, const char *needle, size_t max_bytes)
{
	/* On the stack, never malloc(): a child forked from the threaded
	 * test process calls this, and malloc there can wait forever on an
	 * allocator lock another thread held at fork (seen under ASan: a
	 * child of test_failclosed hung in the allocator's refill). */
	enum { CHUNK = 16384, NEEDLE_MAX = 256 };
	char buf[CHUNK + NEEDLE_MAX];
	const size_t chunk = CHUNK, nlen = strlen(needle);
	size_t keep = 0, total = 0;
	int r = 0;

	if (nlen == 0)
		return 1;
	if (nlen > NEEDLE_MAX)
		return -EINVAL;
	while (total < max_bytes) {
		ssize_t n = pread(fd, buf + keep, chunk, (off_t)total);
		size_t have, tail;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		have = keep + (size_t)n;
		if (memmem(buf, have, needle, nlen)) {
			r = 1;
			break;
		}
		/* The needle may straddle two chunks: keep its length - 1. */
		tail = have < nlen - 1 ? have : nlen - 1;
		memmove(buf, buf + have - tail, tail);
		keep = tail;
		total += (size_t)n;
	}
	return r;
}

static int
copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out, r = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			r = -EIO;
			break;
		}
	if (n < 0)
		r = -errno;
	close(in);
	if (close(out) < 0 && !r)
		r = -errno;
	if (!r && chmod(to, 0755) < 0)
		r = -errno;
	return r;
}

int
tu_copy_self_for_others(const char *dir, char *ret, size_t cap)
{
	char self[PATH_MAX], src[PATH_MAX], path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	const char *base;
	char *slash;
	DIR *d;
	struct dirent *de;
	int r;

	if (n <= 0)
		return -errno;
	self[n] = '\0';
	base = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
	if ((size_t)snprintf(path, sizeof(path), "%s/tests", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(path, sizeof(path), "%s/src", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(path, sizeof(path), "%s/tests/%s", dir, base) >=
	    sizeof(path))
		return -ENAMETOOLONG;
	r = copy_file(self, path);
	if (r < 0)
		return r;
	if ((size_t)snprintf(ret, cap, "%s", path) >= cap)
		return -ENAMETOOLONG;
	/* $ORIGIN/../src of the original */
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(src, sizeof(src), "%s/../src", self) >= sizeof(src))
		return -ENAMETOOLONG;
	d = opendir(src);
	if (!d)
		return 0; /* installed or static: nothing to bring */
	while ((de = readdir(d))) {
		char from[PATH_MAX], to[PATH_MAX];

		struct stat sb;

		if (strncmp(de->d_name, "libflt", 6) || !strstr(de->d_name, ".so") ||
		    fstatat(dirfd(d), de->d_name, &sb, 0) < 0 || !S_ISREG(sb.st_mode))
			continue; /* object directories (NAME.so.p) too */
		if ((size_t)snprintf(from, sizeof(from), "%s/%s", src, de->d_name) >=
			    sizeof(from) ||
		    (size_t)snprintf(to, sizeof(to), "%s/src/%s", dir, de->d_name) >=
			    sizeof(to)) {
			r = -ENAMETOOLONG;
			break;
		}
		r = copy_file(from, to);
		if (r < 0)
			break;
	}
	closedir(d);
	return r < 0 ? r : 0;
}

const char *
tu_kernel_lacks(const char *feature)
{
	static uint32_t f;
	static bool probed;

	if (!probed) {
		struct flt_manager_options o = { .runtime_dir = "/tmp",
						 .log_level = FLT_LOG_ERROR };
		flt_manager *m = NULL;

		if (flt_manager_new(&o, &m) < 0)
			return "the engine's feature probe could not run";
		f = flt_manager_kernel_features(m);
		flt_manager_free(m);
		probed = true;
	}
	if (!strcmp(feature, "names") && !(f & FLT_KF_NAMES))
		return "post-only callbacks (minispy) need name reporting "
		       "(FAN_REPORT_DFID_NAME_TARGET, Linux 5.17)";
	if (!strcmp(feature, "pidfd") && !(f & FLT_KF_PIDFD))
		return "process details need FAN_REPORT_PIDFD (Linux 5.15)";
	if (!strcmp(feature, "unlimited_queue") && !(f & FLT_KF_UNLIMITED_QUEUE))
		return "pre callbacks need FAN_UNLIMITED_QUEUE";
	if (!strcmp(feature, "cache") &&
	    !((f & FLT_KF_EVICTABLE) && (f & FLT_KF_MARK_IGNORE)))
		return "the kernel verdict cache needs evictable ignore marks (Linux "
		       "6.0)";
	if (!strcmp(feature, "pidfs") && !(f & FLT_KF_PIDFS))
		return "the process cache needs pidfs (Linux 6.9)";
	return NULL;
}
