/* SPDX-License-Identifier: MIT */
/* failclosed_fixture.c — see failclosed_fixture.h. */
#include "failclosed_fixture.h"

bool have_root;
char self_exe[PATH_MAX];
char scratch[64];
flt_manager *g_m;

/* /bin/true, read once: a copy with data appended still runs. */
static unsigned char *true_elf;
static size_t true_elf_len;

const char *
at(const char *rel)
{
	return tu_path(scratch, rel);
}

const char *
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

bool
denied(int code)
{
	return code == R_ERRNO(EPERM) || code == R_ERRNO(EACCES);
}

struct shared *shm;

/* ---- file contents ---- */

off_t
prog_spare(void)
{
	return (off_t)((true_elf_len + 4095) / 4096 * 4096);
}

size_t
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

void
content_free(unsigned char *b, size_t n)
{
	if (b)
		munmap(b, n);
}

unsigned char *
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

int
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

int
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

void
put(const char *path, enum content c, uid_t owner)
{
	mode_t mode = (c == C_TEXT || c == C_TEXT_MARKED) ? 0644 : 0755;

	assert_int_equal(put_at(AT_FDCWD, path, c, mode), 0);
	assert_int_equal(chown(path, owner, owner), 0);
}

void
mkdir_mode(const char *path, mode_t mode, uid_t owner)
{
	assert_int_equal(mkdir(path, mode), 0);
	assert_int_equal(chmod(path, mode), 0);
	assert_int_equal(chown(path, owner, owner), 0);
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
atomic_int marker_calls, marker_denies, passthrough_calls;

void
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

int
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

int
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

atomic_ulong hook_ino;
atomic_int hook_go_w = -1, hook_done_r = -1;
atomic_int hook_fired;
int hook_pipes[4] = { -1, -1, -1, -1 }; /* go r/w, done r/w; teardown closes */

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

enum flt_preop_status
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

flt_filter *
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

flt_filter *
start_filter(const char *name, const char *altitude, flt_pre_operation pre,
	     int deadline_ms, unsigned flags, const char *path,
	     enum flt_instance_kind kind)
{
	return start_filter_ex(name, altitude, pre, deadline_ms, -EPERM, flags, path,
			       kind);
}

flt_filter *
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

struct kid
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

void
kid_rendezvous(void)
{
	char c;

	if (write(kid_ready_w, "r", 1) != 1 || read(kid_go_r, &c, 1) != 1)
		_exit(KID_SETUP_FAILED);
}

bool
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

void
kid_go(struct kid *k)
{
	assert_int_equal(write(k->go_fd, "g", 1), 1);
}

int
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

int
run_kid(bool nobody, kid_fn fn, void *arg)
{
	struct kid k = kid_start(nobody, fn, arg);

	return kid_finish(&k, KID_WAIT_MS);
}

int
open_code_at(int dfd, const char *path)
{
	int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return R_ERRNO(errno);
	r = tu_fd_contains(fd, MARKER, SCAN_MAX);
	close(fd);
	return r == 1 ? R_WIN : R_CLEAN;
}

int
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

int
kid_open(void *path)
{
	return open_code_at(AT_FDCWD, path);
}

static int
kid_exec(void *path)
{
	char *argv[] = { path, NULL };
	char *envp[] = { NULL };

	execve(path, argv, envp);
	return R_ERRNO(errno);
}

int
root_open(const char *path)
{
	return run_kid(false, kid_open, (void *)path);
}

int
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

int
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

pid_t stuck_service_pid; /* all_readers_stuck_gives_default_not_allow */

int
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

bool
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

void
expect_plain_denial(const char *file, const char *prog)
{
	int o = root_open(file), e = prog ? root_exec(prog) : R_ERRNO(EPERM);

	if (!denied(o) || !denied(e))
		fail_msg("baseline: root's open of %s: %s; exec of %s: %s (both must be "
			 "denied)",
			 file, code_str(o), prog ? prog : "-", code_str(e));
}

/* ---- the start of each program ---- */

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

int
failclosed_fixture_init(const char *prog)
{
	ssize_t n;

	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n > 0)
		self_exe[n] = '\0';
	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	if (shm == MAP_FAILED || load_true() < 0) {
		fprintf(stderr, "%s: cannot map shared memory or read /bin/true\n", prog);
		return 1;
	}
	umask(022);
	/* Everything below happens in a mount namespace of our own. */
	return tu_root_private_ns(prog, &have_root);
}
