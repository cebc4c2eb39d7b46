/* SPDX-License-Identifier: MIT */
/*
 * test_failclosed.c — an unprivileged user must not get a file past a
 * filter whose verdict is deny (root only).
 *
 * The attacker is uid/gid 65534 in a forked child (no exec), allowed to
 * create user and mount namespaces, write, mmap, rename and nest files
 * anywhere it may write, and race the engine. The test filter reads each
 * file through the event's descriptor and denies it when the content holds
 * MARKER; its default verdict is deny and it opts in to the kernel verdict
 * cache. Each test asserts behaviour: the marked file was never opened (and
 * its content read) nor executed, and, where that is the point, that the
 * filter was asked. Figures go to the log with print_message().
 *
 * The program runs in a private mount namespace of its own (made in main,
 * before any thread exists) and every test mounts a fresh tmpfs. The test
 * process is the engine's process, whose accesses are never filtered: it
 * prepares files itself, and every access under test is made by a child.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <linux/btrfs.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MARKER       "FLTMGR-TEST-MARKER"
#define MARKER_LEN   (sizeof(MARKER) - 1)
#define NOBODY       65534
#define DEADLINE_MS  1500
#define SCAN_MAX     (16u << 20)
#define KID_WAIT_MS  30000
#define FILLER_BYTES 8192

/* Exit codes of the children (a byte). R_WIN is what the attacker wants:
 * the marked content was read, or the marked program ran. */
#define R_WIN            0
#define R_CLEAN          1 /* opened; no marker in what was read */
#define R_ERRNO(e)       (2 + ((e) < 190 ? (e) : 190))
#define KID_UNSUPPORTED  200 /* the kernel refused a feature: skip */
#define KID_SETUP_FAILED 201

static bool have_root;
static char self_exe[PATH_MAX];
static char scratch[64];
static flt_manager *g_m;

/* /bin/true, read once: a copy with data appended still runs. */
static unsigned char *true_elf;
static size_t true_elf_len;

/* A path under scratch. */
static const char *
at(const char *rel)
{
	return tu_path(scratch, rel);
}

static const char *
code_str(int code)
{
	static char bufs[8][64];
	static int i;
	char *b = bufs[i++ % 8];

	if (code == R_WIN)
		return "SUCCEEDED (marker read / program ran)";
	if (code == R_CLEAN)
		return "opened, clean";
	if (code == KID_UNSUPPORTED)
		return "unsupported";
	if (code == KID_SETUP_FAILED)
		return "child setup failed";
	if (code >= 2 && code < 2 + 190)
		snprintf(b, 64, "failed: %s", strerror(code - 2));
	else
		snprintf(b, 64, "exit %d", code);
	return b;
}

/* A denial reaches the opener as EPERM (docs/engine.md 3.5); EACCES is
 * accepted too. */
static bool
denied(int code)
{
	return code == R_ERRNO(EPERM) || code == R_ERRNO(EACCES);
}

/* Results children hand back beyond their exit code. */
struct shared {
	atomic_int setup_err; /* errno of a failed namespace or mount step */
	atomic_int variant;
	atomic_int open_code, exec_code;
	atomic_long open_attempts, opened, marked, exec_attempts, exec_ran;
	atomic_long renames, rename_errors;
};
static struct shared *shm;

/* ---- file contents ---- */

/* A program: /bin/true, then filler up to a block boundary, then two
 * blocks of filler. With split, the second-to-last block ends with the
 * first part of MARKER and the last block begins with the rest, a junk
 * block in between (for FALLOC_FL_COLLAPSE_RANGE). prog_spare() is the
 * offset of the first whole filler block after the program. */
static off_t
prog_spare(void)
{
	return (off_t)((true_elf_len + 4095) / 4096 * 4096);
}

static size_t
prog_size(void)
{
	return (size_t)prog_spare() + 3 * 4096;
}

/* Memory for the content buffers below: mmap(), not malloc(), because
 * children forked from this threaded process build them too, and malloc
 * there can wait forever on an allocator lock another thread held at the
 * fork (seen under ASan). Freed with content_free(). */
static unsigned char *
content_alloc(size_t n)
{
	void *p =
		mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void
content_free(unsigned char *b, size_t n)
{
	if (b)
		munmap(b, n);
}

/* Builds the content in a content_alloc() buffer (children too: no cmocka). */
static unsigned char *
prog_content(bool marked, bool split, size_t *ret_len)
{
	size_t n = prog_size();
	off_t a = prog_spare();
	unsigned char *b = content_alloc(n);

	if (!b)
		return NULL;
	memcpy(b, true_elf, true_elf_len);
	memset(b + true_elf_len, 'p', n - true_elf_len);
	if (marked)
		memcpy(b + a + 100, MARKER, MARKER_LEN);
	if (split) {
		/* "FLTMGR-TEST-" ends at a + 4096, "MARKER" starts at a + 8192 */
		memcpy(b + a + 4096 - 12, MARKER, 12);
		memset(b + a + 4096, 'j', 4096);
		memcpy(b + a + 8192, &MARKER[12], MARKER_LEN - 12);
	}
	*ret_len = n;
	return b;
}

static unsigned char *
text_content(bool marked, size_t *ret_len)
{
	unsigned char *b = content_alloc(FILLER_BYTES);

	if (!b)
		return NULL;
	for (size_t i = 0; i < FILLER_BYTES; i++)
		b[i] = (i % 64 == 63) ? '\n' : 'c';
	if (marked)
		memcpy(b + 100, MARKER, MARKER_LEN);
	*ret_len = FILLER_BYTES;
	return b;
}

/* Writes a file at dfd/name (created or truncated); 0 or -errno. */
static int
write_at(int dfd, const char *name, const void *buf, size_t len, mode_t mode)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t off = 0;
	int r = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);

		if (n < 0) {
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	close(fd);
	return r;
}

enum content { C_TEXT, C_TEXT_MARKED, C_PROG, C_PROG_MARKED, C_PROG_SPLIT };

static int
put_at(int dfd, const char *name, enum content c, mode_t mode)
{
	unsigned char *b;
	size_t n = 0;
	int r;

	switch (c) {
	case C_TEXT:
	case C_TEXT_MARKED:
		b = text_content(c == C_TEXT_MARKED, &n);
		break;
	default:
		b = prog_content(c == C_PROG_MARKED, c == C_PROG_SPLIT, &n);
		break;
	}
	if (!b)
		return -ENOMEM;
	r = write_at(dfd, name, b, n, mode);
	content_free(b, n);
	return r;
}

/* In the test process (its own accesses are never filtered). */
static void
put(const char *path, enum content c, uid_t owner)
{
	mode_t mode = (c == C_TEXT || c == C_TEXT_MARKED) ? 0644 : 0755;

	assert_int_equal(put_at(AT_FDCWD, path, c, mode), 0);
	assert_int_equal(chown(path, owner, owner), 0);
}

static void
mkdir_mode(const char *path, mode_t mode, uid_t owner)
{
	assert_int_equal(mkdir(path, mode), 0);
	assert_int_equal(chmod(path, mode), 0);
	assert_int_equal(chown(path, owner, owner), 0);
}

static int
file_has_marker(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = tu_fd_contains(fd, MARKER, SCAN_MAX);
	close(fd);
	return r;
}

/* ---- how often the filters were asked, per inode ---- */

struct asked_ent {
	dev_t dev;
	ino_t ino;
	int n;
};

#define MAX_ASKED 1024
static struct asked_ent asked_tab[MAX_ASKED];
static int n_asked;
static pthread_mutex_t asked_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int marker_calls, marker_denies, passthrough_calls;

static void
asked_add(dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&asked_lock);
	for (int i = 0; i < n_asked; i++) {
		if (asked_tab[i].dev == dev && asked_tab[i].ino == ino) {
			asked_tab[i].n++;
			pthread_mutex_unlock(&asked_lock);
			return;
		}
	}
	if (n_asked < MAX_ASKED)
		asked_tab[n_asked++] = (struct asked_ent){ dev, ino, 1 };
	pthread_mutex_unlock(&asked_lock);
}

static int
asked_ino(dev_t dev, ino_t ino)
{
	int n = 0;

	pthread_mutex_lock(&asked_lock);
	for (int i = 0; i < n_asked; i++)
		if (asked_tab[i].dev == dev && asked_tab[i].ino == ino)
			n = asked_tab[i].n;
	pthread_mutex_unlock(&asked_lock);
	return n;
}

/* How often the marker filter was asked about the file at path. */
static int
asked(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return asked_ino(st.st_dev, st.st_ino);
}

static void
asked_reset(void)
{
	pthread_mutex_lock(&asked_lock);
	n_asked = 0;
	pthread_mutex_unlock(&asked_lock);
	atomic_store(&marker_calls, 0);
	atomic_store(&marker_denies, 0);
	atomic_store(&passthrough_calls, 0);
}

/* ---- the test filters ---- */

/* One-shot hook for write_during_scan_is_not_cached_as_clean: after the
 * scan of this inode found it clean, the callback tells the attacker (one
 * byte on hook_go) and waits up to 1 s for its write (one byte back on
 * hook_done) before returning its allow. */
static atomic_ulong hook_ino;
static atomic_int hook_go_w = -1, hook_done_r = -1;
static atomic_int hook_fired;
static int hook_pipes[4] = { -1, -1, -1, -1 }; /* go r/w, done r/w; teardown closes */

static void
scan_hook(ino_t ino)
{
	unsigned long want = (unsigned long)ino;
	struct pollfd p;
	char c;

	if (!ino || !atomic_compare_exchange_strong(&hook_ino, &want, 0))
		return;
	if (write(atomic_load(&hook_go_w), "s", 1) != 1)
		return;
	p = (struct pollfd){ .fd = atomic_load(&hook_done_r), .events = POLLIN };
	if (poll(&p, 1, 1000) == 1 && read(p.fd, &c, 1) == 1)
		atomic_store(&hook_fired, 1);
}

/* Denies content with MARKER (or that cannot be read), allows the rest. */
static enum flt_preop_status
marker_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	int r;

	(void)ic;
	(void)cc;
	atomic_fetch_add(&marker_calls, 1);
	asked_add(d->dev, d->ino);
	r = tu_fd_contains(d->fd, MARKER, SCAN_MAX);
	if (r == 0)
		scan_hook(d->ino);
	if (r != 0) {
		atomic_fetch_add(&marker_denies, 1);
		d->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static enum flt_preop_status
passthrough_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)d;
	(void)ic;
	(void)cc;
	atomic_fetch_add(&passthrough_calls, 1);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static flt_filter *
start_filter_ex(const char *name, const char *altitude, flt_pre_operation pre,
		int deadline_ms, int default_verdict, unsigned flags, const char *path,
		enum flt_instance_kind kind)
{
	const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, pre, NULL },
		{ FLT_OP_EXEC, pre, NULL },
	};
	struct flt_registration reg = { .name = name,
					.altitude = altitude,
					.operations = ops,
					.n_operations = 2,
					.deadline_ms = deadline_ms,
					.default_verdict = default_verdict,
					.flags = flags };
	flt_filter *f = NULL;

	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, path, kind), 0);
	assert_int_equal(flt_start_filtering(f), 0);
	return f;
}

/* Default verdict deny. */
static flt_filter *
start_filter(const char *name, const char *altitude, flt_pre_operation pre,
	     int deadline_ms, unsigned flags, const char *path,
	     enum flt_instance_kind kind)
{
	return start_filter_ex(name, altitude, pre, deadline_ms, -EPERM, flags, path,
			       kind);
}

/* The filter of the brief: marker check, default deny, a short deadline,
 * kernel verdict cache. */
static flt_filter *
marker_filter(const char *path, enum flt_instance_kind kind)
{
	return start_filter("marker", "300000", marker_pre, DEADLINE_MS,
			    FLT_REGISTRATION_CACHE_VERDICTS, path, kind);
}

/* ---- children ----
 *
 * Forks of this process (no exec unless an exec is what is tested): they
 * run a function and _exit() with its result, never a cmocka call. Each
 * has a rendezvous: kid_rendezvous() in the child says "ready" and waits
 * for kid_go() from the test. */

struct kid {
	pid_t pid;
	int ready_fd, go_fd;
};

typedef int (*kid_fn)(void *arg);

#define MAX_KIDS 256
static pid_t kids[MAX_KIDS];
static int n_kids;
static int kid_ready_w = -1, kid_go_r = -1; /* in a child */

static void
kids_forget(pid_t pid)
{
	for (int i = 0; i < n_kids; i++)
		if (kids[i] == pid)
			kids[i] = kids[--n_kids];
}

/* After a failed assertion: no child may outlive its test. */
static void
kids_kill_all(void)
{
	for (int i = 0; i < n_kids; i++) {
		kill(kids[i], SIGKILL);
		(void)waitpid(kids[i], NULL, 0);
	}
	n_kids = 0;
}

static struct kid
kid_start(bool nobody, kid_fn fn, void *arg)
{
	struct kid k = { .ready_fd = -1, .go_fd = -1 };
	int rp[2], gp[2];

	assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
	assert_int_equal(pipe2(gp, O_CLOEXEC), 0);
	k.pid = fork();
	assert_true(k.pid >= 0);
	if (k.pid == 0) {
		close(rp[0]);
		close(gp[1]);
		kid_ready_w = rp[1];
		kid_go_r = gp[0];
		if (nobody && tu_become_user(NOBODY, NOBODY) < 0)
			_exit(KID_SETUP_FAILED);
		/* After the credential change, which clears it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg) & 0xff);
	}
	close(rp[1]);
	close(gp[0]);
	k.ready_fd = rp[0];
	k.go_fd = gp[1];
	assert_true(n_kids < MAX_KIDS);
	kids[n_kids++] = k.pid;
	return k;
}

/* In the child. */
static void
kid_rendezvous(void)
{
	char c;

	if (write(kid_ready_w, "r", 1) != 1 || read(kid_go_r, &c, 1) != 1)
		_exit(KID_SETUP_FAILED);
}

/* Waits for the child's rendezvous: true, or false if it exited first
 * (other children hold copies of the pipe, so exit is checked too). */
static bool
kid_wait_ready(struct kid *k, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	struct pollfd p = { .fd = k->ready_fd, .events = POLLIN };
	char c;

	while (tu_now_ms() < end) {
		if (poll(&p, 1, 10) == 1 && read(k->ready_fd, &c, 1) == 1)
			return true;
		{
			siginfo_t si = { 0 };

			if (waitid(P_PID, (id_t)k->pid, &si,
				   WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == k->pid)
				return false;
		}
	}
	return false;
}

static void
kid_go(struct kid *k)
{
	assert_int_equal(write(k->go_fd, "g", 1), 1);
}

/* Waits for the child and returns its exit code (128 + signal if killed). */
static int
kid_finish(struct kid *k, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	pid_t r;
	int st = 0;

	while ((r = waitpid(k->pid, &st, WNOHANG)) == 0 && tu_now_ms() < end)
		usleep(1000);
	if (r == 0) {
		kill(k->pid, SIGKILL);
		(void)waitpid(k->pid, &st, 0);
		kids_forget(k->pid);
		fail_msg("child %d did not finish within %d ms", (int)k->pid, timeout_ms);
	}
	kids_forget(k->pid);
	close(k->ready_fd);
	close(k->go_fd);
	k->ready_fd = k->go_fd = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int
run_kid(bool nobody, kid_fn fn, void *arg)
{
	struct kid k = kid_start(nobody, fn, arg);

	return kid_finish(&k, KID_WAIT_MS);
}

/* Opens dfd/path and reads it: R_WIN if MARKER was read. */
static int
open_code_at(int dfd, const char *path)
{
	int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return R_ERRNO(errno);
	r = tu_fd_contains(fd, MARKER, SCAN_MAX);
	close(fd);
	return r == 1 ? R_WIN : R_CLEAN;
}

/* Executes dfd/path in a new child and waits: R_WIN if it ran. */
static int
exec_code_at(int dfd, const char *path)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return R_ERRNO(errno);
	if (pid == 0) {
		char *argv[] = { (char *)path, NULL };
		char *envp[] = { NULL };

		syscall(SYS_execveat, dfd, path, argv, envp, 0);
		_exit(R_ERRNO(errno));
	}
	if (waitpid(pid, &st, 0) != pid)
		return R_ERRNO(errno);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int
kid_open(void *path)
{
	return open_code_at(AT_FDCWD, path);
}

/* Opens and closes without reading: only the filter reads the file. */
static int
kid_open_only(void *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return R_ERRNO(errno);
	close(fd);
	return 0;
}

static int
kid_exec(void *path)
{
	char *argv[] = { path, NULL };
	char *envp[] = { NULL };

	execve(path, argv, envp);
	return R_ERRNO(errno);
}

static int
root_open(const char *path)
{
	return run_kid(false, kid_open, (void *)path);
}

static int
root_exec(const char *path)
{
	return run_kid(false, kid_exec, (void *)path);
}

/* ---- fixture ---- */

static void
scratch_mount(void)
{
	snprintf(scratch, sizeof(scratch), "/tmp/fltmgr-fc.XXXXXX");
	assert_non_null(mkdtemp(scratch));
	assert_int_equal(mount("fltmgr-fc", scratch, "tmpfs", 0, "mode=0755,size=512m"),
			 0);
	mkdir_mode(at("watched"), 0777, 0);
	mkdir_mode(at("side"), 0777, 0);
}

static int
setup(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	scratch_mount();
	tu_runtime_dir_create();
	g_m = tu_manager_new();
	asked_reset();
	memset(shm, 0, sizeof(*shm));
	atomic_store(&hook_ino, 0);
	atomic_store(&hook_fired, 0);
	return 0;
}

static pid_t stuck_service_pid; /* all_readers_stuck_gives_default_not_allow */

static int
teardown(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	/* A service that never reads keeps callbacks blocked in
	 * flt_send_message(): it goes first, then the children. */
	if (stuck_service_pid > 0) {
		kill(stuck_service_pid, SIGKILL);
		(void)waitpid(stuck_service_pid, NULL, 0);
		stuck_service_pid = 0;
	}
	kids_kill_all();
	flt_manager_free(g_m);
	g_m = NULL;
	atomic_store(&hook_go_w, -1);
	atomic_store(&hook_done_r, -1);
	for (int i = 0; i < 4; i++) {
		if (hook_pipes[i] >= 0)
			close(hook_pipes[i]);
		hook_pipes[i] = -1;
	}
	umount2(scratch, MNT_DETACH);
	rmdir(scratch);
	tu_runtime_dir_remove();
	return 0;
}

#define NEED_ROOT()                                                                      \
	do {                                                                             \
		if (!have_root) {                                                        \
			print_message("skipped: fanotify needs root (CAP_SYS_ADMIN)\n"); \
			skip();                                                          \
		}                                                                        \
	} while (0)

/* An image of fstype (made by mkfs.<fstype> with mkfs_opts) in the
 * scratch tmpfs, loop-mounted at dir; false if that cannot be done here. */
static bool
image_mount(const char *fstype, const char *mkfs_opts, const char *size, const char *dir)
{
	char cmd[4 * PATH_MAX];

	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(cmd, sizeof(cmd),
		 "truncate -s %s %s/%s.img && "
		 "timeout 60 mkfs.%s %s %s/%s.img >/dev/null 2>&1 && "
		 "timeout 60 mount -o loop %s/%s.img %s 2>/dev/null",
		 size, scratch, fstype, fstype, mkfs_opts, scratch, fstype, scratch,
		 fstype, dir);
	return system(cmd) == 0;
}

static bool
ext4_mount(const char *dir)
{
	return image_mount("ext4", "-q -F", "64M", dir);
}

/* The marked file must be refused at the door: the filter works on the
 * plain path before any trick is tried. */
static void
expect_plain_denial(const char *file, const char *prog)
{
	int o = root_open(file), e = prog ? root_exec(prog) : R_ERRNO(EPERM);

	if (!denied(o) || !denied(e))
		fail_msg("baseline: root's open of %s: %s; exec of %s: %s (both must be "
			 "denied)",
			 file, code_str(o), prog ? prog : "-", code_str(e));
}

/* ==== 1. a path longer than PATH_MAX ==== */

#define DEEP_LEVELS   24
#define DEEP_NAME_LEN 200

/* The directory DEEP_LEVELS below base (created with mkdirat when asked),
 * reached one component at a time: its full path cannot be passed. */
static int
deep_dir(const char *base, bool create)
{
	char name[DEEP_NAME_LEN + 1];
	int dfd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);

	memset(name, 'd', DEEP_NAME_LEN);
	name[DEEP_NAME_LEN] = '\0';
	for (int i = 0; i < DEEP_LEVELS && dfd >= 0; i++) {
		int nd;

		if (create && mkdirat(dfd, name, 0777) < 0 && errno != EEXIST) {
			close(dfd);
			return -1;
		}
		nd = openat(dfd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		close(dfd);
		dfd = nd;
	}
	return dfd;
}

static int
atk_build_deep(void *arg)
{
	int dfd = deep_dir(arg, true), r;

	if (dfd < 0)
		return R_ERRNO(errno);
	r = put_at(dfd, "file", C_TEXT_MARKED, 0644);
	if (r == 0)
		r = put_at(dfd, "prog", C_PROG_MARKED, 0755);
	close(dfd);
	return r < 0 ? R_ERRNO(-r) : 0;
}

static int
kid_open_deep(void *arg)
{
	int dfd = deep_dir(arg, false), r;

	if (dfd < 0)
		return R_ERRNO(errno);
	r = open_code_at(dfd, "file");
	close(dfd);
	return r;
}

static int
kid_exec_deep(void *arg)
{
	int dfd = deep_dir(arg, false);
	char *argv[] = { "prog", NULL };
	char *envp[] = { NULL };

	if (dfd < 0)
		return R_ERRNO(errno);
	syscall(SYS_execveat, dfd, "prog", argv, envp, 0);
	return R_ERRNO(errno);
}

static void
long_path_inside_subtree_is_filtered(void **state)
{
	const char *w = at("watched");
	struct stat sf, sp;
	int dfd, o, e, nf, np;
	size_t len = strlen(w) + (size_t)DEEP_LEVELS * (DEEP_NAME_LEN + 1) + 5;

	(void)state;
	NEED_ROOT();
	marker_filter(w, FLT_INSTANCE_SUBTREE);
	put(at("watched/plain"), C_TEXT_MARKED, 0);
	expect_plain_denial(at("watched/plain"), NULL);

	assert_int_equal(run_kid(true, atk_build_deep, (void *)w), 0);
	dfd = deep_dir(w, false);
	assert_true(dfd >= 0);
	assert_int_equal(fstatat(dfd, "file", &sf, 0), 0);
	assert_int_equal(fstatat(dfd, "prog", &sp, 0), 0);
	close(dfd);
	assert_int_equal(sf.st_uid, NOBODY);

	o = run_kid(false, kid_open_deep, (void *)w);
	e = run_kid(false, kid_exec_deep, (void *)w);
	nf = asked_ino(sf.st_dev, sf.st_ino);
	np = asked_ino(sp.st_dev, sp.st_ino);
	print_message("path length %zu (> PATH_MAX %d): root's open %s, exec %s; filter "
		      "asked %d time(s) about the file, %d about the program\n",
		      len, PATH_MAX, code_str(o), code_str(e), nf, np);
	assert_true(denied(o));
	assert_true(denied(e));
	assert_true(nf > 0);
	assert_true(np > 0);
}

/* The same file through a filter that takes its path on request
 * (FLT_REGISTRATION_PATH_ON_REQUEST): flt_event_path() finds no path and
 * says so (FLT_EVENT_PATH_UNKNOWN), as the eager path did, and the file
 * is still filtered, on a FILESYSTEM instance (no scope needs the path)
 * and on a SUBTREE one (the scope cannot place it: uncertain, inside). */
static atomic_int lazy_calls, lazy_null_unknown;

static enum flt_preop_status
lazy_marker_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	const char *p = flt_event_path(d);

	atomic_fetch_add(&lazy_calls, 1);
	if (!p && (d->flags & FLT_EVENT_PATH_UNKNOWN))
		atomic_fetch_add(&lazy_null_unknown, 1);
	return marker_pre(d, ic, cc);
}

static void
long_path_on_request(enum flt_instance_kind kind)
{
	const char *w = at("watched");
	struct stat sf;
	int dfd, o, e, nf;

	atomic_store(&lazy_calls, 0);
	atomic_store(&lazy_null_unknown, 0);
	start_filter("marker", "300000", lazy_marker_pre, DEADLINE_MS,
		     FLT_REGISTRATION_CACHE_VERDICTS | FLT_REGISTRATION_PATH_ON_REQUEST,
		     w, kind);
	put(at("watched/plain"), C_TEXT_MARKED, 0);
	expect_plain_denial(at("watched/plain"), NULL);
	assert_int_equal(run_kid(true, atk_build_deep, (void *)w), 0);
	dfd = deep_dir(w, false);
	assert_true(dfd >= 0);
	assert_int_equal(fstatat(dfd, "file", &sf, 0), 0);
	close(dfd);
	atomic_store(&lazy_calls, 0);
	atomic_store(&lazy_null_unknown, 0);
	o = run_kid(false, kid_open_deep, (void *)w);
	e = run_kid(false, kid_exec_deep, (void *)w);
	nf = asked_ino(sf.st_dev, sf.st_ino);
	print_message("%s instance, path on request: open %s, exec %s; %d callback(s), "
		      "%d with no path and FLT_EVENT_PATH_UNKNOWN\n",
		      kind == FLT_INSTANCE_SUBTREE ? "SUBTREE" : "FILESYSTEM",
		      code_str(o), code_str(e), atomic_load(&lazy_calls),
		      atomic_load(&lazy_null_unknown));
	assert_true(denied(o));
	assert_true(denied(e));
	assert_true(nf > 0);
	/* Every callback here was about the deep file or program. */
	assert_true(atomic_load(&lazy_calls) > 0);
	assert_int_equal(atomic_load(&lazy_null_unknown), atomic_load(&lazy_calls));
}

static void
long_path_on_request_filesystem_instance_is_filtered(void **state)
{
	(void)state;
	NEED_ROOT();
	long_path_on_request(FLT_INSTANCE_FILESYSTEM);
}

static void
long_path_on_request_subtree_instance_is_filtered(void **state)
{
	(void)state;
	NEED_ROOT();
	long_path_on_request(FLT_INSTANCE_SUBTREE);
}

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

/* ==== 4. a cached clean file changed afterwards ==== */

enum change {
	CH_WRITE,
	CH_PWRITE,
	CH_WRITEV,
	CH_MMAP_KEEP,
	CH_MMAP_UNMAP,
	CH_TRUNCATE_WRITE,
	CH_FTRUNCATE,
	CH_OTRUNC_WRITE,
	CH_PUNCH_HOLE,
	CH_ZERO_RANGE,
	CH_COLLAPSE,
	CH_INSERT,
	CH_COPY_FILE_RANGE,
	CH_SPLICE,
	CH_SENDFILE,
	CH_IO_URING,
	CH_AIO,
};

static const struct change_spec {
	const char *what;
	bool ext4;           /* needs an ext4 image (tmpfs lacks the mode) */
	bool marker;         /* MARKER appears: expect denial; else: asked again */
	enum content before; /* the clean content */
} specs[] = {
	[CH_WRITE] = { "write()", false, true, C_PROG },
	[CH_PWRITE] = { "pwrite()", false, true, C_PROG },
	[CH_WRITEV] = { "writev()", false, true, C_PROG },
	[CH_MMAP_KEEP] = { "a MAP_SHARED store, mapping held", false, true, C_PROG },
	[CH_MMAP_UNMAP] = { "a MAP_SHARED store, then munmap and close", false, true,
			    C_PROG },
	[CH_TRUNCATE_WRITE] = { "truncate() then write()", false, true, C_PROG },
	[CH_FTRUNCATE] = { "ftruncate()", false, false, C_PROG },
	[CH_OTRUNC_WRITE] = { "an O_TRUNC open then write()", false, true, C_PROG },
	[CH_PUNCH_HOLE] = { "fallocate(PUNCH_HOLE)", false, false, C_PROG },
	[CH_ZERO_RANGE] = { "fallocate(ZERO_RANGE) on ext4", true, false, C_PROG },
	[CH_COLLAPSE] = { "fallocate(COLLAPSE_RANGE) on ext4", true, true, C_PROG_SPLIT },
	[CH_INSERT] = { "fallocate(INSERT_RANGE) on ext4", true, false, C_PROG },
	[CH_COPY_FILE_RANGE] = { "copy_file_range()", false, true, C_PROG },
	[CH_SPLICE] = { "splice() from a pipe", false, true, C_PROG },
	[CH_SENDFILE] = { "sendfile()", false, true, C_PROG },
	[CH_IO_URING] = { "an io_uring IORING_OP_WRITE", false, true, C_PROG },
	[CH_AIO] = { "an AIO IOCB_CMD_PWRITE (io_submit)", false, true, C_PROG },
};

struct change_job {
	enum change ch;
	char path[PATH_MAX];
	char src[PATH_MAX]; /* holds exactly MARKER */
	off_t spare;        /* prog_spare() */
};

/* One write through a raw io_uring (no liburing). */
static int
uring_write(int fd, const void *buf, size_t len, off_t off)
{
	struct io_uring_params p;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	size_t sq_sz, cq_sz;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	unsigned tail, idx, head;
	char *sq, *cq;
	int ring, res, r;

	memset(&p, 0, sizeof(p));
	ring = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0)
		return errno == ENOSYS || errno == EPERM || errno == EOPNOTSUPP
			       ? KID_UNSUPPORTED
			       : R_ERRNO(errno);
	sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		sq_sz = cq_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
	sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
		  IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return R_ERRNO(errno);
	cq = (p.features & IORING_FEAT_SINGLE_MMAP)
		     ? sq
		     : mmap(NULL, cq_sz, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (cq == MAP_FAILED || sqes == MAP_FAILED)
		return R_ERRNO(errno);
	sq_tail = (unsigned *)(sq + p.sq_off.tail);
	sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	sq_array = (unsigned *)(sq + p.sq_off.array);
	tail = *sq_tail;
	idx = tail & *sq_mask;
	memset(&sqes[idx], 0, sizeof(sqes[idx]));
	sqes[idx].opcode = IORING_OP_WRITE;
	sqes[idx].fd = fd;
	sqes[idx].addr = (uint64_t)(uintptr_t)buf;
	sqes[idx].len = (uint32_t)len;
	sqes[idx].off = (uint64_t)off;
	sq_array[idx] = idx;
	__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return R_ERRNO(errno);
	cq_head = (unsigned *)(cq + p.cq_off.head);
	cq_tail = (unsigned *)(cq + p.cq_off.tail);
	cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	head = *cq_head;
	if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE))
		return R_ERRNO(EIO);
	res = cqes[head & *cq_mask].res;
	__atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
	close(ring);
	if (res == -EINVAL || res == -EOPNOTSUPP)
		return KID_UNSUPPORTED;
	r = res == (int)len ? 0 : res < 0 ? R_ERRNO(-res) : R_ERRNO(EIO);
	return r;
}

/* One write through Linux AIO (io_setup/io_submit, no libaio). */
static int
aio_write_once(int fd, const void *buf, size_t len, off_t off)
{
	aio_context_t ctx = 0;
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;
	int r;

	if (syscall(SYS_io_setup, 1, &ctx) < 0)
		return errno == ENOSYS || errno == EAGAIN ? KID_UNSUPPORTED
							  : R_ERRNO(errno);
	memset(&cb, 0, sizeof(cb));
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_fildes = (uint32_t)fd;
	cb.aio_buf = (uint64_t)(uintptr_t)buf;
	cb.aio_nbytes = len;
	cb.aio_offset = off;
	if (syscall(SYS_io_submit, ctx, 1, cbs) != 1)
		r = R_ERRNO(errno);
	else if (syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1)
		r = R_ERRNO(errno);
	else
		r = ev.res == (int64_t)len ? 0
		    : ev.res < 0           ? R_ERRNO((int)-ev.res)
					   : R_ERRNO(EIO);
	syscall(SYS_io_destroy, ctx);
	return r;
}

static int
whole(ssize_t n, size_t want)
{
	if (n < 0)
		return R_ERRNO(errno);
	return (size_t)n == want ? 0 : R_ERRNO(EIO);
}

/* The attacker's change, as uid 65534 (it owns the file). */
static int
atk_change(void *arg)
{
	struct change_job *j = arg;
	const off_t mk = j->spare + 100;
	struct iovec iov[2] = { { MARKER, 12 }, { &MARKER[12], MARKER_LEN - 12 } };
	unsigned char *b;
	size_t n = 0;
	char *map;
	int fd = -1, src = -1, pp[2], r = 0;
	loff_t in = 0, out = mk;
	off_t sin = 0;

#define TRY(x)                              \
	do {                                \
		if ((x) < 0) {              \
			r = R_ERRNO(errno); \
			goto out;           \
		}                           \
	} while (0)

	switch (j->ch) {
	case CH_WRITE:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(lseek(fd, mk, SEEK_SET));
		r = whole(write(fd, MARKER, MARKER_LEN), MARKER_LEN);
		break;
	case CH_PWRITE:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = whole(pwrite(fd, MARKER, MARKER_LEN, mk), MARKER_LEN);
		break;
	case CH_WRITEV:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(lseek(fd, mk, SEEK_SET));
		r = whole(writev(fd, iov, 2), MARKER_LEN);
		break;
	case CH_MMAP_KEEP:
	case CH_MMAP_UNMAP:
		TRY(fd = open(j->path, O_RDWR | O_CLOEXEC));
		map = mmap(NULL, prog_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			r = R_ERRNO(errno);
			break;
		}
		memcpy(map + mk, MARKER, MARKER_LEN);
		if (j->ch == CH_MMAP_KEEP) {
			kid_rendezvous(); /* root opens while it is mapped */
		} else {
			munmap(map, prog_size());
			close(fd);
			fd = -1;
		}
		break;
	case CH_TRUNCATE_WRITE:
	case CH_OTRUNC_WRITE:
		b = prog_content(true, false, &n);
		if (!b)
			return R_ERRNO(ENOMEM);
		if (j->ch == CH_TRUNCATE_WRITE) {
			TRY(truncate(j->path, 0));
			TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		} else {
			TRY(fd = open(j->path, O_WRONLY | O_TRUNC | O_CLOEXEC));
		}
		r = whole(write(fd, b, n), n);
		content_free(b, n);
		break;
	case CH_FTRUNCATE:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(ftruncate(fd, (off_t)prog_size() - 4096));
		break;
	case CH_PUNCH_HOLE:
	case CH_ZERO_RANGE:
	case CH_COLLAPSE:
	case CH_INSERT: {
		static const int modes[] = {
			[CH_PUNCH_HOLE] = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			[CH_ZERO_RANGE] = FALLOC_FL_ZERO_RANGE,
			[CH_COLLAPSE] = FALLOC_FL_COLLAPSE_RANGE,
			[CH_INSERT] = FALLOC_FL_INSERT_RANGE,
		};
		/* COLLAPSE removes the junk block between the two halves of
		 * MARKER (C_PROG_SPLIT); the others work on the first spare
		 * block. */
		off_t where = j->ch == CH_COLLAPSE ? j->spare + 4096 : j->spare;

		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		if (fallocate(fd, modes[j->ch], where, 4096) < 0)
			r = errno == EOPNOTSUPP ? KID_UNSUPPORTED : R_ERRNO(errno);
		break;
	}
	case CH_COPY_FILE_RANGE:
		TRY(src = open(j->src, O_RDONLY | O_CLOEXEC));
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = whole(copy_file_range(src, &in, fd, &out, MARKER_LEN, 0), MARKER_LEN);
		break;
	case CH_SPLICE:
		TRY(pipe2(pp, O_CLOEXEC));
		if ((r = whole(write(pp[1], MARKER, MARKER_LEN), MARKER_LEN)) == 0) {
			fd = open(j->path, O_WRONLY | O_CLOEXEC);
			r = fd < 0 ? R_ERRNO(errno)
				   : whole(splice(pp[0], NULL, fd, &out, MARKER_LEN, 0),
					   MARKER_LEN);
		}
		close(pp[0]);
		close(pp[1]);
		break;
	case CH_SENDFILE:
		TRY(src = open(j->src, O_RDONLY | O_CLOEXEC));
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		TRY(lseek(fd, mk, SEEK_SET));
		r = whole(sendfile(fd, src, &sin, MARKER_LEN), MARKER_LEN);
		break;
	case CH_IO_URING:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = uring_write(fd, MARKER, MARKER_LEN, mk);
		break;
	case CH_AIO:
		TRY(fd = open(j->path, O_WRONLY | O_CLOEXEC));
		r = aio_write_once(fd, MARKER, MARKER_LEN, mk);
		break;
	}
#undef TRY
out:
	if (fd >= 0)
		close(fd);
	if (src >= 0)
		close(src);
	return r;
}

static void
change_case(enum change ch)
{
	static struct change_job job; /* static: see new_ns_job() */
	const struct change_spec *s = &specs[ch];
	struct change_job *j = &job;
	char base[256];
	int o, e, n0, n1, n2, n3, r;
	bool cached;
	struct kid k;

	memset(j, 0, sizeof(*j));
	snprintf(base, sizeof(base), "%s", at("watched"));
	if (s->ext4) {
		if (!ext4_mount(at("e4"))) {
			print_message("skipped: cannot make and loop-mount an ext4 image "
				      "here (no loop device or mkfs.ext4)\n");
			skip();
		}
		snprintf(base, sizeof(base), "%s", at("e4/watched"));
		mkdir_mode(base, 0777, 0);
	}
	j->ch = ch;
	j->spare = prog_spare();
	snprintf(j->path, PATH_MAX, "%s/prog", base);
	/* The marked source lies outside the subtree in a directory only root
	 * can write, so the engine can prove the attacker's open of it is
	 * outside (in side/, a fresh file in a user-writable directory, it
	 * would rightly be treated as inside and denied). */
	mkdir_mode(at("rsrc"), 0755, 0);
	snprintf(j->src, PATH_MAX, "%s", at("rsrc/src"));
	put(j->path, s->before, NOBODY);
	assert_int_equal(write_at(AT_FDCWD, j->src, MARKER, MARKER_LEN, 0644), 0);
	assert_int_equal(chown(j->src, NOBODY, NOBODY), 0);
	marker_filter(base, FLT_INSTANCE_SUBTREE);

	/* Clean: allowed, opened and run; then again, maybe from the cache. */
	assert_int_equal(root_open(j->path), R_CLEAN);
	assert_int_equal(root_exec(j->path), R_WIN);
	n0 = asked(j->path);
	assert_true(n0 > 0);
	assert_int_equal(root_open(j->path), R_CLEAN);
	assert_int_equal(root_exec(j->path), R_WIN);
	n1 = asked(j->path);
	cached = n1 == n0;

	k = kid_start(true, atk_change, j);
	if (ch == CH_MMAP_KEEP) {
		if (!kid_wait_ready(&k, KID_WAIT_MS)) {
			r = kid_finish(&k, KID_WAIT_MS);
			fail_msg("uid %d could not map and store: %s", NOBODY,
				 code_str(r));
		}
	} else {
		r = kid_finish(&k, KID_WAIT_MS);
		if (r == KID_UNSUPPORTED) {
			print_message("skipped: %s is not supported here\n", s->what);
			skip();
		}
		if (r != 0)
			fail_msg("uid %d could not change the file by %s: %s", NOBODY,
				 s->what, code_str(r));
	}
	if (s->marker)
		assert_int_equal(file_has_marker(j->path), 1); /* the change is real */
	n2 = asked(j->path);
	o = root_open(j->path);
	e = root_exec(j->path);
	n3 = asked(j->path);
	if (ch == CH_MMAP_KEEP) {
		kid_go(&k);
		assert_int_equal(kid_finish(&k, KID_WAIT_MS), 0);
	}
	print_message("%s: clean verdict cached: %s; after the change root's open %s, "
		      "exec %s; filter asked %d time(s) after the change (%d before)\n",
		      s->what, cached ? "yes" : "no", code_str(o), code_str(e), n3 - n2,
		      n1);
	if (s->marker) {
		assert_true(denied(o));
		assert_true(e != R_WIN);
	} else {
		assert_true(n3 > n2);
	}
}

#define CHANGE_TEST(name, ch)                                                        \
	static void cached_clean_file_changed_by_##name##_is_rescanned(void **state) \
	{                                                                            \
		(void)state;                                                         \
		NEED_ROOT();                                                         \
		change_case(ch);                                                     \
	}

CHANGE_TEST(write, CH_WRITE)
CHANGE_TEST(pwrite, CH_PWRITE)
CHANGE_TEST(writev, CH_WRITEV)
CHANGE_TEST(mmap_store, CH_MMAP_KEEP)
CHANGE_TEST(mmap_store_then_unmap, CH_MMAP_UNMAP)
CHANGE_TEST(truncate_then_write, CH_TRUNCATE_WRITE)
CHANGE_TEST(ftruncate, CH_FTRUNCATE)
CHANGE_TEST(o_trunc_open_then_write, CH_OTRUNC_WRITE)
CHANGE_TEST(fallocate_punch_hole, CH_PUNCH_HOLE)
CHANGE_TEST(fallocate_zero_range, CH_ZERO_RANGE)
CHANGE_TEST(fallocate_collapse_range, CH_COLLAPSE)
CHANGE_TEST(fallocate_insert_range, CH_INSERT)
CHANGE_TEST(copy_file_range, CH_COPY_FILE_RANGE)
CHANGE_TEST(splice, CH_SPLICE)
CHANGE_TEST(sendfile, CH_SENDFILE)
CHANGE_TEST(io_uring, CH_IO_URING)
CHANGE_TEST(aio, CH_AIO)

/* A write that lands while the filter is still scanning: the clean verdict
 * it then gives must not be cached for the new content. */
struct scan_race_job {
	char path[PATH_MAX];
	off_t at;
	int go_r, done_w;
};

static int
atk_write_during_scan(void *arg)
{
	struct scan_race_job *j = arg;
	struct pollfd p = { .fd = j->go_r, .events = POLLIN };
	char c;
	int fd, r;

	if (poll(&p, 1, 20000) != 1 || read(j->go_r, &c, 1) != 1)
		return R_ERRNO(ETIMEDOUT);
	fd = open(j->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return R_ERRNO(errno);
	r = whole(pwrite(fd, MARKER, MARKER_LEN, j->at), MARKER_LEN);
	close(fd);
	if (write(j->done_w, "d", 1) != 1 && r == 0)
		r = R_ERRNO(errno);
	return r;
}

static void
write_during_scan_is_not_cached_as_clean(void **state)
{
	struct scan_race_job j = { .at = prog_spare() + 100 };
	int *go = hook_pipes, *done = hook_pipes + 2, o1, o2, e2, n1, n2, r;
	struct stat st;
	struct kid k;

	(void)state;
	NEED_ROOT();
	snprintf(j.path, sizeof(j.path), "%s", at("watched/prog"));
	put(j.path, C_PROG, NOBODY);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(done, O_CLOEXEC), 0);
	j.go_r = go[0];
	j.done_w = done[1];
	atomic_store(&hook_go_w, go[1]);
	atomic_store(&hook_done_r, done[0]);
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	k = kid_start(true, atk_write_during_scan, &j);
	assert_int_equal(stat(j.path, &st), 0);
	atomic_store(&hook_ino, (unsigned long)st.st_ino);

	o1 = root_open(j.path); /* scanned clean; the write lands meanwhile */
	r = kid_finish(&k, KID_WAIT_MS);
	assert_int_equal(r, 0);
	assert_int_equal(atomic_load(&hook_fired), 1);
	assert_int_equal(file_has_marker(j.path), 1);
	n1 = asked(j.path);
	o2 = root_open(j.path);
	e2 = root_exec(j.path);
	n2 = asked(j.path);
	print_message(
		"open during the write: %s; the next open %s, exec %s; filter asked "
		"%d time(s) after the write\n",
		code_str(o1), code_str(o2), code_str(e2), n2 - n1);
	assert_true(denied(o2));
	assert_true(e2 != R_WIN);
}

/* ==== 5. every reader stuck ==== */

static flt_port g_client; /* the connect callback's, under the port lock */
static _Atomic(flt_filter *) stuck_f;
static atomic_int stuck_entered, stuck_returned, stuck_timedout, stuck_other;
static atomic_llong stuck_last_entry_ms, stuck_max_ms;

static int
stuck_connect(flt_port client, void *sc, const void *ctx, size_t ctx_len,
	      const struct flt_peer *peer, void **ret_cookie)
{
	(void)sc;
	(void)ctx;
	(void)ctx_len;
	(void)peer;
	(void)ret_cookie;
	g_client = client;
	return 0;
}

static void
stuck_disconnect(void *cookie)
{
	(void)cookie;
	flt_close_client_port(atomic_load(&stuck_f), &g_client);
}

static int
stuck_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
	      size_t *ret_out_len)
{
	(void)cookie;
	(void)in;
	(void)in_len;
	(void)out;
	(void)out_cap;
	*ret_out_len = 0;
	return 0;
}

/* Asks the service and waits for ever (FLT_INFINITE); the service never
 * reads. Allows only on the service's explicit "a". */
static enum flt_preop_status
stuck_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	char reply[16];
	size_t rlen = sizeof(reply);
	int64_t t0 = tu_now_ms(), dt;
	long long prev;
	int r;

	(void)ic;
	(void)cc;
	atomic_fetch_add(&stuck_entered, 1);
	atomic_store(&stuck_last_entry_ms, t0);
	r = flt_send_message(atomic_load(&stuck_f), &g_client, "scan", 4, reply, &rlen,
			     FLT_INFINITE);
	dt = tu_now_ms() - t0;
	prev = atomic_load(&stuck_max_ms);
	while (dt > prev && !atomic_compare_exchange_weak(&stuck_max_ms, &prev, dt))
		;
	if (r == -ETIMEDOUT)
		atomic_fetch_add(&stuck_timedout, 1);
	else if (r != 0)
		atomic_fetch_add(&stuck_other, 1);
	atomic_fetch_add(&stuck_returned, 1);
	if (r == 0 && rlen >= 1 && reply[0] == 'a')
		return FLT_PREOP_SUCCESS_NO_CALLBACK;
	d->status = -EPERM;
	return FLT_PREOP_COMPLETE;
}

/* The service: connects, says so on stdout, then never reads. */
static int
stuck_service_main(const char *port_path)
{
	filter_port *p = NULL;
	int r = filter_connect_communication_port(port_path, 0, NULL, 0, &p);

	if (r < 0) {
		fprintf(stderr, "stuck service: connect %s: %s\n", port_path,
			strerror(-r));
		return 1;
	}
	if (write(STDOUT_FILENO, "c", 1) != 1)
		return 1;
	for (;;)
		pause();
}

static int
kid_open_at_go(void *path)
{
	int fd;

	kid_rendezvous();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return R_ERRNO(errno);
	close(fd);
	return R_CLEAN; /* opened: the file is clean, so any open is a success */
}

#define STUCK_OPENERS 12

static void
all_readers_stuck_gives_default_not_allow(void **state)
{
	const struct flt_operation_registration op = { FLT_OP_OPEN, stuck_pre, NULL };
	struct flt_registration reg = { .name = "stuck",
					.altitude = "300000",
					.operations = &op,
					.n_operations = 1,
					.deadline_ms = DEADLINE_MS,
					.default_verdict = -EPERM };
	struct flt_port_attributes pa = { .name = "fc-stuck", .mode = 0600 };
	struct flt_engine_stats es;
	struct flt_filter_stats fs;
	struct kid k[STUCK_OPENERS];
	char port_path[PATH_MAX], c;
	flt_port server = FLT_PORT_NULL;
	flt_filter *f = NULL;
	int out[2], codes[STUCK_OPENERS], opened = 0, ents, rets;
	int64_t t0, t_opens;
	struct pollfd p;
	bool all_returned;

	(void)state;
	NEED_ROOT();
	put(at("watched/clean"), C_TEXT, 0);
	atomic_store(&stuck_entered, 0);
	atomic_store(&stuck_returned, 0);
	atomic_store(&stuck_timedout, 0);
	atomic_store(&stuck_other, 0);
	atomic_store(&stuck_max_ms, 0);
	g_client = FLT_PORT_NULL;
	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	atomic_store(&stuck_f, f);
	assert_int_equal(flt_create_communication_port(f, &server, &pa, NULL,
						       stuck_connect, stuck_disconnect,
						       stuck_message, 1),
			 0);
	snprintf(port_path, sizeof(port_path), "%s/fc-stuck",
		 flt_manager_runtime_dir(g_m));

	/* The service, a fresh process (exec of this program). */
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	stuck_service_pid = fork();
	assert_true(stuck_service_pid >= 0);
	if (stuck_service_pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(self_exe, self_exe, "--stuck-service", port_path, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	p = (struct pollfd){ .fd = out[0], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 20000), 1);
	assert_int_equal(read(out[0], &c, 1), 1);
	close(out[0]);

	assert_int_equal(flt_attach(f, at("watched"), FLT_INSTANCE_SUBTREE), 0);
	assert_int_equal(flt_start_filtering(f), 0);
	for (int i = 0; i < STUCK_OPENERS; i++)
		k[i] = kid_start(false, kid_open_at_go, (void *)at("watched/clean"));
	for (int i = 0; i < STUCK_OPENERS; i++)
		assert_true(kid_wait_ready(&k[i], KID_WAIT_MS));
	t0 = tu_now_ms();
	for (int i = 0; i < STUCK_OPENERS; i++)
		kid_go(&k[i]);
	for (int i = 0; i < STUCK_OPENERS; i++) {
		codes[i] = kid_finish(&k[i], KID_WAIT_MS);
		opened += codes[i] == R_CLEAN || codes[i] == R_WIN;
	}
	t_opens = tu_now_ms() - t0;
	/* The callbacks must come back once the deadline has cut their
	 * sends: within deadline + 2 s of the last one's entry. */
	do {
		ents = atomic_load(&stuck_entered);
		rets = atomic_load(&stuck_returned);
		all_returned = ents > 0 && rets == ents;
		if (all_returned)
			break;
		usleep(10000);
	} while (tu_now_ms() < atomic_load(&stuck_last_entry_ms) + DEADLINE_MS + 2000);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	assert_int_equal(flt_filter_get_stats(f, &fs), 0);
	print_message("%d concurrent opens of a clean file: %d succeeded, %d denied, all "
		      "answered after %lld ms (deadline %d)\n",
		      STUCK_OPENERS, opened, STUCK_OPENERS - opened, (long long)t_opens,
		      DEADLINE_MS);
	print_message("callbacks: %d entered, %d returned by deadline + 2 s (%d with "
		      "-ETIMEDOUT, %d with another error; longest send %lld ms)\n",
		      ents, rets, atomic_load(&stuck_timedout), atomic_load(&stuck_other),
		      (long long)atomic_load(&stuck_max_ms));
	print_message(
		"engine: emergency_answers %llu, allowed %llu, denied %llu, "
		"deadline_defaults %llu, readers %u; filter: deadline_defaults %llu, "
		"timeouts_capped %llu\n",
		(unsigned long long)es.emergency_answers, (unsigned long long)es.allowed,
		(unsigned long long)es.denied, (unsigned long long)es.deadline_defaults,
		es.readers, (unsigned long long)fs.deadline_defaults,
		(unsigned long long)fs.timeouts_capped);
	/* Release the senders before asserting (teardown would too). */
	kill(stuck_service_pid, SIGKILL);
	(void)waitpid(stuck_service_pid, NULL, 0);
	stuck_service_pid = 0;
	assert_int_equal(opened, 0);
	assert_true(all_returned);
}

/* ==== 5b. every reader busy with slow (but timely) scans ==== */

#define SLOW_MS      2500
#define SLOW_OPENERS 12

static enum flt_preop_status
slow_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)ic;
	(void)cc;
	asked_add(d->dev, d->ino);
	if (tu_fd_contains(d->fd, MARKER, SCAN_MAX) != 0) {
		d->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	if (tu_fd_contains(d->fd, "SLOW-SCAN", SCAN_MAX) == 1)
		usleep(SLOW_MS * 1000); /* a big file: slow, within the deadline */
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static void
all_readers_busy_does_not_let_a_marked_file_through(void **state)
{
	struct flt_engine_stats es;
	struct kid k[SLOW_OPENERS];
	char name[64];
	int wins = 0, tries = 0, codes[8], nm;
	uint32_t readers = 0;
	int64_t t0;

	(void)state;
	NEED_ROOT();
	for (int i = 0; i < SLOW_OPENERS; i++) {
		snprintf(name, sizeof(name), "watched/slow%d", i);
		assert_int_equal(write_at(AT_FDCWD, at(name), "SLOW-SCAN\n", 10, 0644),
				 0);
	}
	put(at("watched/marked"), C_TEXT_MARKED, 0);
	start_filter("slowscan", "300000", slow_pre, 3 * SLOW_MS, 0, at("watched"),
		     FLT_INSTANCE_SUBTREE);
	expect_plain_denial(at("watched/marked"), NULL);
	nm = asked(at("watched/marked"));

	/* uid 65534 keeps the filter busy with slow files... */
	t0 = tu_now_ms();
	for (int i = 0; i < SLOW_OPENERS; i++) {
		snprintf(name, sizeof(name), "watched/slow%d", i);
		k[i] = kid_start(true, kid_open, (void *)at(name));
	}
	do {
		assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
		readers = es.readers;
		if (readers >= 8)
			break;
		usleep(5000);
	} while (tu_now_ms() - t0 < SLOW_MS / 2);
	usleep(50000); /* the last reader's takeover delay */
	/* ...while root opens the marked file, well within the slow scans. */
	do {
		codes[tries] = root_open(at("watched/marked"));
		wins += codes[tries++] == R_WIN;
	} while (tries < 8 && tu_now_ms() - t0 < SLOW_MS - 500);
	for (int i = 0; i < SLOW_OPENERS; i++)
		(void)kid_finish(&k[i], KID_WAIT_MS);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message(
		"%d slow opens by uid %d (readers: %u); root's %d opens of the marked "
		"file: %d read it (first: %s); filter asked %d time(s) about it; "
		"emergency_answers %llu\n",
		SLOW_OPENERS, NOBODY, readers, tries, wins,
		tries ? code_str(codes[0]) : "-", asked(at("watched/marked")) - nm,
		(unsigned long long)es.emergency_answers);
	assert_true(tries > 0);
	assert_int_equal(wins, 0);
}

/* ==== a slow filter above, whose default is allow ==== */

#define BIG_BYTES              (2u << 20)
#define SLOW_ALLOW_DEADLINE_MS 300

/* A scanner that is slow on big files (past its deadline) and allows by
 * default: the attacker chooses the size. */
static enum flt_preop_status
slow_on_big_pre(struct flt_callback_data *d, void *ic, void **cc)
{
	struct stat st;

	(void)ic;
	(void)cc;
	atomic_fetch_add(&passthrough_calls, 1);
	if (fstat(d->fd, &st) == 0 && st.st_size >= (off_t)BIG_BYTES)
		usleep(3 * SLOW_ALLOW_DEADLINE_MS * 1000);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

/* The attacker writes its marked program, then makes it big (zeros after
 * the end; truncate() by path opens nothing). */
static int
atk_make_big(void *arg)
{
	int r = put_at(AT_FDCWD, arg, C_PROG_MARKED, 0755);

	if (r < 0)
		return R_ERRNO(-r);
	return truncate(arg, (off_t)BIG_BYTES) < 0 ? R_ERRNO(errno) : 0;
}

static void
slow_allowing_filter_above_does_not_skip_a_denying_one(void **state)
{
	struct flt_engine_stats es;
	int o, e, n0, n1, pt;
	int64_t t0, el;

	(void)state;
	NEED_ROOT();
	put(at("watched/small"), C_PROG_MARKED, 0);
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	start_filter_ex("slowallow", "400000", slow_on_big_pre, SLOW_ALLOW_DEADLINE_MS, 0,
			0, scratch, FLT_INSTANCE_FILESYSTEM);
	expect_plain_denial(at("watched/small"), at("watched/small"));

	/* uid 65534 makes a big marked program. */
	assert_int_equal(run_kid(true, atk_make_big, (void *)at("watched/prog")), 0);
	n0 = asked(at("watched/prog"));
	pt = atomic_load(&passthrough_calls);
	t0 = tu_now_ms();
	o = root_open(at("watched/prog"));
	e = root_exec(at("watched/prog"));
	el = tu_now_ms() - t0;
	n1 = asked(at("watched/prog"));
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message(
		"%u-byte marked program: root's open %s, exec %s (%lld ms); the slow "
		"filter (default allow, deadline %d ms) asked %d time(s), the marker "
		"filter (default deny) %d; engine deadline_defaults %llu\n",
		BIG_BYTES, code_str(o), code_str(e), (long long)el,
		SLOW_ALLOW_DEADLINE_MS, atomic_load(&passthrough_calls) - pt, n1 - n0,
		(unsigned long long)es.deadline_defaults);
	assert_true(denied(o));
	assert_true(denied(e));
}

/* ==== 6. renaming out of the subtree and back ==== */

#define RACE_MS 2500

struct race_job {
	int n;                                  /* pairs renamed back and forth */
	char in[2][PATH_MAX], out[2][PATH_MAX]; /* watched/..., side/... */
	char file[PATH_MAX], prog[PATH_MAX];    /* what root opens, executes */
	int64_t end;
};

static int
atk_rename_loop(void *arg)
{
	struct race_job *j = arg;

	while (tu_now_ms() < j->end) {
		for (int dir = 0; dir < 2; dir++) {
			for (int i = 0; i < j->n; i++) {
				const char *from = dir ? j->out[i] : j->in[i];
				const char *to = dir ? j->in[i] : j->out[i];

				if (rename(from, to) == 0)
					atomic_fetch_add(&shm->renames, 1);
				else
					atomic_fetch_add(&shm->rename_errors, 1);
			}
		}
	}
	return 0;
}

static int
kid_open_loop(void *arg)
{
	struct race_job *j = arg;

	while (tu_now_ms() < j->end) {
		int r = open_code_at(AT_FDCWD, j->file);

		atomic_fetch_add(&shm->open_attempts, 1);
		if (r == R_WIN || r == R_CLEAN)
			atomic_fetch_add(&shm->opened, 1);
		if (r == R_WIN)
			atomic_fetch_add(&shm->marked, 1);
	}
	return 0;
}

static int
kid_exec_loop(void *arg)
{
	struct race_job *j = arg;

	while (tu_now_ms() < j->end) {
		atomic_fetch_add(&shm->exec_attempts, 1);
		if (exec_code_at(AT_FDCWD, j->prog) == R_WIN)
			atomic_fetch_add(&shm->exec_ran, 1);
	}
	return 0;
}

/* uid 65534 renames while two root processes open j->file and one
 * executes j->prog, by their paths inside watched/, for RACE_MS. */
static void
rename_race(struct race_job *j, const char *what)
{
	struct kid k[4];

	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	expect_plain_denial(j->file, j->prog);
	j->end = tu_now_ms() + RACE_MS;
	k[0] = kid_start(true, atk_rename_loop, j);
	k[1] = kid_start(false, kid_open_loop, j);
	k[2] = kid_start(false, kid_open_loop, j);
	k[3] = kid_start(false, kid_exec_loop, j);
	for (int i = 0; i < 4; i++)
		assert_int_equal(kid_finish(&k[i], KID_WAIT_MS), 0);
	print_message(
		"%d ms of renames of %s by uid %d (%ld done, %ld failed): root's "
		"opens %ld, opened %ld, marker read %ld; execs %ld, ran %ld; filter "
		"denied %d\n",
		RACE_MS, what, NOBODY, atomic_load(&shm->renames),
		atomic_load(&shm->rename_errors), atomic_load(&shm->open_attempts),
		atomic_load(&shm->opened), atomic_load(&shm->marked),
		atomic_load(&shm->exec_attempts), atomic_load(&shm->exec_ran),
		atomic_load(&marker_denies));
	assert_true(atomic_load(&shm->renames) > 0);
	assert_int_equal(atomic_load(&shm->marked), 0);
	assert_int_equal(atomic_load(&shm->exec_ran), 0);
}

static void
rename_race_out_of_subtree_is_filtered(void **state)
{
	static struct race_job j; /* static: see new_ns_job() */

	(void)state;
	NEED_ROOT();
	memset(&j, 0, sizeof(j));
	j.n = 1;
	snprintf(j.in[0], PATH_MAX, "%s", at("watched/d"));
	snprintf(j.out[0], PATH_MAX, "%s", at("side/d"));
	snprintf(j.file, PATH_MAX, "%s", at("watched/d/file"));
	snprintf(j.prog, PATH_MAX, "%s", at("watched/d/prog"));
	mkdir_mode(j.in[0], 0755, NOBODY);
	put(j.file, C_TEXT_MARKED, 0);
	put(j.prog, C_PROG_MARKED, 0);
	rename_race(&j, "watched/d <-> side/d");
}

/* The same with the files themselves renamed, no directory on their path
 * changing. */
static void
file_rename_race_out_of_subtree_is_filtered(void **state)
{
	static struct race_job j; /* static: see new_ns_job() */

	(void)state;
	NEED_ROOT();
	memset(&j, 0, sizeof(j));
	j.n = 2;
	snprintf(j.in[0], PATH_MAX, "%s", at("watched/file"));
	snprintf(j.out[0], PATH_MAX, "%s", at("side/file"));
	snprintf(j.in[1], PATH_MAX, "%s", at("watched/prog"));
	snprintf(j.out[1], PATH_MAX, "%s", at("side/prog"));
	snprintf(j.file, PATH_MAX, "%s", at("watched/file"));
	snprintf(j.prog, PATH_MAX, "%s", at("watched/prog"));
	put(j.file, C_TEXT_MARKED, NOBODY);
	put(j.prog, C_PROG_MARKED, NOBODY);
	rename_race(&j, "watched/{file,prog} <-> side/{file,prog}");
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

/* ==== 8. a hard link outside the subtree ==== */

struct two_paths {
	char a[PATH_MAX], b[PATH_MAX];
};

static int
atk_link(void *arg)
{
	struct two_paths *p = arg;

	return link(p->a, p->b) < 0 ? R_ERRNO(errno) : 0;
}

static void
hard_link_outside_cannot_plant_a_cache_entry(void **state)
{
	struct flt_engine_stats es0, es;
	struct two_paths p;
	int ol, o, e, n0, n1, pt;

	(void)state;
	NEED_ROOT();
	snprintf(p.a, PATH_MAX, "%s", at("watched/prog"));
	snprintf(p.b, PATH_MAX, "%s", at("side/link"));
	put(p.a, C_PROG_MARKED, NOBODY);
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE); /* A */
	start_filter("passthrough", "200000", passthrough_pre, DEADLINE_MS,
		     FLT_REGISTRATION_CACHE_VERDICTS, scratch, FLT_INSTANCE_FILESYSTEM);
	expect_plain_denial(p.a, p.a);

	assert_int_equal(run_kid(true, atk_link, &p), 0);
	assert_int_equal(flt_manager_get_stats(g_m, &es0), 0);
	pt = atomic_load(&passthrough_calls);
	ol = root_open(p.b); /* outside A's subtree: B alone decides */
	n0 = asked(p.a);
	o = root_open(p.a);
	e = root_exec(p.a);
	n1 = asked(p.a);
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	print_message(
		"root's open of side/link: %s (pass-through asked %d time(s), cache "
		"inserts +%llu); then watched/prog: open %s, exec %s; marker filter "
		"asked %d time(s)\n",
		code_str(ol), atomic_load(&passthrough_calls) - pt,
		(unsigned long long)(es.cache_inserts - es0.cache_inserts), code_str(o),
		code_str(e), n1 - n0);
	assert_true(denied(o));
	assert_true(denied(e));
	assert_true(n1 > n0);
}

/* ==== main ==== */

static int
load_true(void)
{
	int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	true_elf_len = (size_t)st.st_size;
	true_elf = malloc(true_elf_len);
	if (!true_elf || read(fd, true_elf, true_elf_len) != (ssize_t)true_elf_len)
		return -1;
	close(fd);
	return 0;
}

/*
 * The filter reads the file through the event's descriptor; that read
 * must not move the file's atime, or the file's owner learns when a scan
 * is under way, the moment to rewrite the file (the exec rewrite race).
 */
static void
scan_through_the_event_descriptor_leaves_atime(void **state)
{
	const char *path = at("watched/doc");
	struct timespec ts[2] = { { .tv_sec = 1577836800 }, { .tv_nsec = UTIME_OMIT } };
	struct stat before, after;
	int r;

	(void)state;
	NEED_ROOT();
	marker_filter(at("watched"), FLT_INSTANCE_SUBTREE);
	put(path, C_TEXT, NOBODY);
	/* An atime older than the mtime: relatime would update it on a read. */
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_int_equal(stat(path, &before), 0);
	r = run_kid(false, kid_open_only, (void *)path);
	assert_int_equal(stat(path, &after), 0);
	print_message("open: %s; filter asked %d time(s); atime %lld -> %lld\n",
		      r == 0 ? "opened" : code_str(r), asked(path),
		      (long long)before.st_atime, (long long)after.st_atime);
	assert_int_equal(r, 0);
	assert_true(asked(path) > 0);
	assert_int_equal(after.st_atim.tv_sec, before.st_atim.tv_sec);
	assert_int_equal(after.st_atim.tv_nsec, before.st_atim.tv_nsec);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(long_path_inside_subtree_is_filtered),
		T(long_path_on_request_filesystem_instance_is_filtered),
		T(long_path_on_request_subtree_instance_is_filtered),
		T(scan_through_the_event_descriptor_leaves_atime),
		T(subvolume_inside_subtree_is_filtered),
		T(subvolume_inside_filesystem_instance_is_filtered),
		T(bind_mount_in_user_namespace_is_filtered),
		T(bind_mount_of_a_subdirectory_in_user_namespace_is_filtered),
		T(detached_mount_in_user_namespace_is_filtered),
		T(overlay_in_user_namespace_is_filtered),
		T(cached_clean_file_changed_by_write_is_rescanned),
		T(cached_clean_file_changed_by_pwrite_is_rescanned),
		T(cached_clean_file_changed_by_writev_is_rescanned),
		T(cached_clean_file_changed_by_mmap_store_is_rescanned),
		T(cached_clean_file_changed_by_mmap_store_then_unmap_is_rescanned),
		T(cached_clean_file_changed_by_truncate_then_write_is_rescanned),
		T(cached_clean_file_changed_by_ftruncate_is_rescanned),
		T(cached_clean_file_changed_by_o_trunc_open_then_write_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_punch_hole_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_zero_range_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_collapse_range_is_rescanned),
		T(cached_clean_file_changed_by_fallocate_insert_range_is_rescanned),
		T(cached_clean_file_changed_by_copy_file_range_is_rescanned),
		T(cached_clean_file_changed_by_splice_is_rescanned),
		T(cached_clean_file_changed_by_sendfile_is_rescanned),
		T(cached_clean_file_changed_by_io_uring_is_rescanned),
		T(cached_clean_file_changed_by_aio_is_rescanned),
		T(write_during_scan_is_not_cached_as_clean),
		T(all_readers_stuck_gives_default_not_allow),
		T(all_readers_busy_does_not_let_a_marked_file_through),
		T(slow_allowing_filter_above_does_not_skip_a_denying_one),
		T(rename_race_out_of_subtree_is_filtered),
		T(file_rename_race_out_of_subtree_is_filtered),
		T(remounted_filesystem_is_filtered_again),
		T(remounted_filesystem_is_filtered_again_mount_instance),
		T(hard_link_outside_cannot_plant_a_cache_entry),
#undef T
	};
	ssize_t n;

	if (argc == 3 && !strcmp(argv[1], "--stuck-service"))
		return stuck_service_main(argv[2]);
	if (argc == 2) /* a pattern: run only the tests it matches */
		cmocka_set_test_filter(argv[1]);
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n > 0)
		self_exe[n] = '\0';
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	if (shm == MAP_FAILED || load_true() < 0) {
		fprintf(stderr,
			"test_failclosed: cannot map shared memory or read /bin/true\n");
		return 1;
	}
	umask(022);
	have_root = geteuid() == 0;
	if (have_root) {
		/* Everything below happens in a mount namespace of our own. */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			fprintf(stderr,
				"test_failclosed: cannot make a private mount namespace: "
				"%s\n",
				strerror(errno));
			return 1;
		}
	} else {
		printf("test_failclosed: not root: every test is skipped (fanotify needs "
		       "CAP_SYS_ADMIN)\n");
	}
	return cmocka_run_group_tests_name("failclosed", tests, NULL, NULL);
}
