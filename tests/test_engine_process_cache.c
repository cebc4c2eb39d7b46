/* SPDX-License-Identifier: MIT */
/*
 * test_engine_process_cache.c — the process cache (docs/engine.md section 2.3)
 * seen from filters: execs, setuid, name changes within the TTL, hits on
 * repeated events, pid reuse, both readers sharing it, and the fallback
 * without PIDFD_GET_INFO.
 *
 * The engine on real fanotify (root only), in a private mount namespace,
 * on a fresh tmpfs per test, driven by child processes (the test process
 * is the engine's own: its accesses never reach a filter); the recording
 * filter, the children and each test's setup: engine_fixture.h.
 */
#include "engine_fixture.h"

/* ---- the process cache (docs/engine.md section 2.3) ----
 *
 * These children are forks of this program that do a few raw system
 * calls, so one process can act, wait for the test, then change (exec,
 * credentials, name) and act again. Each event's process details are
 * recorded with the monotonic time around flt_get_process(). */

struct prec {
	pid_t pid;
	char path[256];
	char exe[256];
	char comm[17];
	uid_t uid, euid;
	int verified;
	int64_t t_before, t_after; /* ns, around flt_get_process() */
};

#define MAX_PRECS 256

static struct prec precs[MAX_PRECS];
static int n_precs;

/* While set, the OPEN of gate_path holds the notification reader in its
 * callback (at most 10 s), so that what happens meanwhile is queued and
 * read together. */
static char gate_path[PATH_MAX];
static atomic_bool gate_hold, gate_entered;

static void
post_proc(const struct flt_callback_data *d, void *ic, void *cc)
{
	struct prec r = { .pid = d->pid };
	const struct flt_process *p;
	bool at_gate;

	(void)ic;
	(void)cc;
	pthread_mutex_lock(&rec_lock);
	at_gate = d->path && gate_path[0] && !strcmp(d->path, gate_path);
	pthread_mutex_unlock(&rec_lock);
	if (at_gate) {
		int64_t end = tu_now_ms() + 10000;

		atomic_store(&gate_entered, true);
		while (atomic_load(&gate_hold) && tu_now_ms() < end)
			usleep(1000);
	}
	r.t_before = tu_mono_ns();
	p = flt_get_process(d);
	r.t_after = tu_mono_ns();
	if (!p)
		return;
	r.uid = p->uid;
	r.euid = p->euid;
	r.verified = p->verified;
	if (p->exe)
		snprintf(r.exe, sizeof(r.exe), "%s", p->exe);
	if (p->comm)
		snprintf(r.comm, sizeof(r.comm), "%s", p->comm);
	if (d->path)
		snprintf(r.path, sizeof(r.path), "%s", d->path);
	pthread_mutex_lock(&rec_lock);
	if (n_precs < MAX_PRECS)
		precs[n_precs++] = r;
	pthread_mutex_unlock(&rec_lock);
}

/* A copy of the first record of pid for path, waiting up to 3 s. */
static struct prec
wait_prec(const char *path, pid_t pid)
{
	int64_t end = tu_now_ms() + 3000;

	for (;;) {
		pthread_mutex_lock(&rec_lock);
		for (int i = 0; i < n_precs; i++) {
			if (precs[i].pid == pid && !strcmp(precs[i].path, path)) {
				struct prec r = precs[i];

				pthread_mutex_unlock(&rec_lock);
				return r;
			}
		}
		pthread_mutex_unlock(&rec_lock);
		if (tu_now_ms() > end)
			fail_msg("no OPEN event of pid %d for %s", (int)pid, path);
		usleep(1000);
	}
}

static void
proc_spy(void)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, NULL, post_proc },
	};
	struct flt_registration reg = { .name = "procspy",
					.altitude = "360000",
					.operations = ops,
					.n_operations = 1 };
	flt_filter *f = NULL;

	pthread_mutex_lock(&rec_lock);
	n_precs = 0;
	pthread_mutex_unlock(&rec_lock);
	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);
}

static void
make_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
}

/* The children below run raw system calls only, and are made by a raw
 * clone3: this program has threads (and, in the sanitizer builds, runtime
 * locks one of them may hold at the fork), so a child must not call into
 * libc or a sanitizer before it exits or execs. */
struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size;
};

/* Like fork(); with want_pid, the child gets exactly that pid (clone3
 * set_tid). -errno on failure. */
static pid_t
raw_fork(pid_t want_pid)
{
	struct clone_args_v2 ca = { .exit_signal = SIGCHLD };
	pid_t tid = want_pid;
	long pid;

	if (want_pid) {
		ca.set_tid = (uintptr_t)&tid;
		ca.set_tid_size = 1;
	}
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	return pid < 0 ? -errno : (pid_t)pid;
}

static void
raw_exit(int status)
{
	for (;;)
		syscall(SYS_exit_group, status);
}

static void
raw_name(const char *name)
{
	syscall(SYS_prctl, PR_SET_NAME, name, 0, 0, 0);
}

static bool
raw_open_close(const char *path)
{
	long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	syscall(SYS_close, fd);
	return true;
}

static bool
raw_wait_byte(int fd)
{
	char c;

	return syscall(SYS_read, fd, &c, 1) == 1;
}

static void
raw_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	syscall(SYS_nanosleep, &ts, NULL);
}

enum second_step { STEP_EXEC_FSOP, STEP_SETUID, STEP_RENAME };

/* A child that names itself, opens a, waits for a byte on *ret_go, then
 * (after wait_ms) changes as told, opens b and waits for *ret_go to be
 * closed. */
static pid_t
two_step_child(const char *name, const char *a, const char *b, enum second_step step,
	       int wait_ms, int *ret_go)
{
	char *argv[] = { fsop_path, "--hold", "open", (char *)b, NULL };
	int go[2];
	pid_t pid;

	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	pid = raw_fork(0);
	assert_true(pid >= 0);
	if (pid == 0) {
		syscall(SYS_close, go[1]); /* so that the test's close is EOF */
		raw_name(name);
		if (!raw_open_close(a))
			raw_exit(10);
		if (!raw_wait_byte(go[0]))
			raw_exit(11);
		if (wait_ms)
			raw_sleep_ms(wait_ms);
		switch (step) {
		case STEP_EXEC_FSOP:
			/* fsop --hold: exits when its stdin (the go pipe)
			 * closes, like this child below. */
			syscall(SYS_dup3, go[0], STDIN_FILENO, 0);
			syscall(SYS_execve, fsop_path, argv, environ);
			raw_exit(12);
			break;
		case STEP_SETUID:
			if (syscall(SYS_setresgid, 4321, 4321, 4321) < 0 ||
			    syscall(SYS_setresuid, 4321, 4321, 4321) < 0)
				raw_exit(13);
			break;
		case STEP_RENAME:
			raw_name("renamed");
			break;
		}
		if (!raw_open_close(b))
			raw_exit(14);
		/* Alive (so its details can be read) until the test closes
		 * the pipe. */
		raw_wait_byte(go[0]);
		raw_exit(0);
	}
	close(go[0]);
	*ret_go = go[1];
	return pid;
}

static int
child_exit_status(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* One process opens a file, then execs another program, which opens a
 * second file: the second event must carry the new exe and comm, although
 * the first one put the process's details into the cache. */
static void
process_cache_sees_an_exec(void **state)
{
	struct flt_engine_stats s0, s1;
	struct prec ra, rb;
	pid_t pid;
	int go;

	(void)state;
	NEED_ROOT();
	make_file(at("a"));
	make_file(at("b"));
	proc_spy();
	NEED_PIDFD();
	pid = two_step_child("before-exec", at("a"), at("b"), STEP_EXEC_FSOP, 0, &go);
	ra = wait_prec(at("a"), pid);
	assert_int_equal(flt_manager_get_stats(g_m, &s0), 0);
	assert_int_equal(write(go, "g", 1), 1);
	rb = wait_prec(at("b"), pid);
	close(go);
	assert_int_equal(child_exit_status(pid), 0);
	assert_int_equal(flt_manager_get_stats(g_m, &s1), 0);

	assert_true(ra.verified);
	assert_string_equal(ra.exe, self_exe);
	assert_string_equal(ra.comm, "before-exec");
	assert_true(rb.verified);
	assert_string_equal(rb.exe, fsop_path);
	assert_string_equal(rb.comm, "fsop");
	/* Without pidfs (Linux < 6.9) there is no cache: both read /proc. */
	if (!features()->pidfs) {
		assert_int_equal(s1.process_cache_hits, 0);
		assert_int_equal(s1.process_cache_invalidations, 0);
		print_message("no pidfs: the process cache is off; both events read "
			      "/proc\n");
		return;
	}
	/* While the first entry was still fresh, the second lookup must have
	 * found it and dropped it for the new program. */
	if (rb.t_after - ra.t_before < (int64_t)PROC_CACHE_TTL_MS * 1000000)
		assert_true(s1.process_cache_invalidations >
			    s0.process_cache_invalidations);
	else
		print_message("note: the two events were %lld ms apart (> the cache's "
			      "%d ms): the invalidation was not exercised\n",
			      (long long)((rb.t_after - ra.t_before) / 1000000),
			      PROC_CACHE_TTL_MS);
}

/* Credentials changed without an exec: exact with PIDFD_GET_INFO,
 * otherwise at most PROC_CACHE_TTL_MS late (the child waits that long). */
static void
setuid_case(bool exact)
{
	struct prec ra, rb;
	pid_t pid;
	int go;

	make_file(at("a"));
	make_file(at("b"));
	pid = two_step_child("setuid", at("a"), at("b"), STEP_SETUID,
			     exact ? 0 : PROC_CACHE_TTL_MS + 20, &go);
	ra = wait_prec(at("a"), pid);
	assert_int_equal(write(go, "g", 1), 1);
	rb = wait_prec(at("b"), pid);
	close(go);
	assert_int_equal(child_exit_status(pid), 0);
	assert_true(ra.verified && rb.verified);
	assert_int_equal(ra.uid, 0);
	assert_int_equal(rb.uid, 4321);
	assert_int_equal(rb.euid, 4321);
	assert_string_equal(rb.comm, "setuid");
}

static void
process_cache_follows_setuid(void **state)
{
	(void)state;
	NEED_ROOT();
	proc_spy();
	NEED_PIDFD();
	/* Exact with PIDFD_GET_INFO, or when there is no cache at all. */
	setuid_case(features()->pidfd_get_info || !features()->pidfs);
}

/* A name changed without an exec (prctl) shows within PROC_CACHE_TTL_MS. */
static void
process_cache_name_change_within_ttl(void **state)
{
	struct prec ra, rb;
	pid_t pid;
	int go;

	(void)state;
	NEED_ROOT();
	make_file(at("a"));
	make_file(at("b"));
	proc_spy();
	NEED_PIDFD();
	pid = two_step_child("first-name", at("a"), at("b"), STEP_RENAME,
			     PROC_CACHE_TTL_MS + 20, &go);
	ra = wait_prec(at("a"), pid);
	assert_int_equal(write(go, "g", 1), 1);
	rb = wait_prec(at("b"), pid);
	close(go);
	assert_int_equal(child_exit_status(pid), 0);
	assert_string_equal(ra.comm, "first-name");
	assert_string_equal(rb.comm, "renamed");
	assert_string_equal(rb.exe, self_exe);
}

/* Many events of one process: resolved once, then served by the cache,
 * and always with its own details. */
static void
repeated_case(void)
{
	struct flt_engine_stats s0, s1;
	enum { n = 40 };
	char paths[n][PATH_MAX];
	pid_t pid;
	int done = 0;

	for (int i = 0; i < n; i++) {
		snprintf(paths[i], sizeof(paths[i]), "%s/f%d", mnt, i);
		make_file(paths[i]);
	}
	assert_int_equal(flt_manager_get_stats(g_m, &s0), 0);
	pid = raw_fork(0);
	assert_true(pid >= 0);
	if (pid == 0) {
		raw_name("repeater");
		for (int i = 0; i < n; i++)
			if (!raw_open_close(paths[i]))
				raw_exit(1);
		/* Stay until the test has seen every event. */
		syscall(SYS_pause);
		raw_exit(0);
	}
	for (int i = 0; i < n; i++) {
		struct prec r = wait_prec(paths[i], pid);

		assert_true(r.verified);
		assert_string_equal(r.exe, self_exe);
		assert_string_equal(r.comm, "repeater");
		assert_int_equal(r.uid, 0);
		done++;
	}
	kill(pid, SIGKILL);
	assert_int_equal(child_exit_status(pid), 128 + SIGKILL);
	assert_int_equal(flt_manager_get_stats(g_m, &s1), 0);
	assert_int_equal(done, n);
	print_message(
		"%d events: %llu hits, %llu misses\n", n,
		(unsigned long long)(s1.process_cache_hits - s0.process_cache_hits),
		(unsigned long long)(s1.process_cache_misses - s0.process_cache_misses));
	if (!features()->pidfs) {
		/* Linux < 6.9: no cache, every call reads /proc. */
		assert_int_equal(s1.process_cache_hits, 0);
		assert_int_equal(s1.process_cache_misses - s0.process_cache_misses,
				 (uint64_t)n);
		return;
	}
	assert_true(s1.process_cache_hits > s0.process_cache_hits);
	assert_true(s1.process_cache_misses > s0.process_cache_misses);
	assert_true(s1.process_cache_hits + s1.process_cache_misses -
			    s0.process_cache_hits - s0.process_cache_misses <=
		    (uint64_t)n);
}

static void
process_cache_hits_repeated_events(void **state)
{
	(void)state;
	NEED_ROOT();
	proc_spy();
	NEED_PIDFD();
	repeated_case();
}

/* The paths for kernels before 6.13, on this one: credentials from
 * /proc/PID/status and the pidfd_open check on a miss, from the cache
 * (at most PROC_CACHE_TTL_MS old) with a poll of the pidfd on a hit. */
static void
process_cache_without_pidfd_get_info(void **state)
{
	(void)state;
	NEED_ROOT();
	resolve_pidfd_info_override(0);
	proc_spy();
	if (!features()->pidfd)
		resolve_pidfd_info_override(-1);
	NEED_PIDFD();
	repeated_case();
	setuid_case(!features()->pidfs);
	resolve_pidfd_info_override(-1);
}

/* A named child of this program that opens path, then waits for the go
 * byte. With want_pid, it is created with exactly that pid (clone3
 * set_tid): returns -errno if that failed. */
static pid_t
named_opener(const char *name, const char *path, pid_t want_pid, int *ret_go)
{
	int go[2];
	pid_t pid;

	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	pid = raw_fork(want_pid);
	if (pid == 0) {
		bool opened;

		syscall(SYS_close, go[1]);
		raw_name(name);
		opened = raw_open_close(path);
		raw_wait_byte(go[0]);
		raw_exit(opened ? 0 : 1);
	}
	close(go[0]);
	if (pid < 0) {
		close(go[1]);
		return pid;
	}
	*ret_go = go[1];
	return pid;
}

/* A pid reused by another process of the same program right after the
 * first one's details were cached: the second must get its own details
 * (a cache keyed by the pid alone would give it the first one's name). */
static void
process_cache_not_fooled_by_pid_reuse(void **state)
{
	struct prec ra, rb;
	pid_t a = 0, b = -EEXIST;
	int go, tries;

	(void)state;
	NEED_ROOT();
	make_file(at("a"));
	make_file(at("b"));
	proc_spy();
	NEED_PIDFD();
	/* The freed pid can be taken by any process of the machine before
	 * us: try a few times. */
	for (tries = 0; tries < 5 && b == -EEXIST; tries++) {
		a = named_opener("reuse-first", at("a"), 0, &go);
		assert_true(a > 0);
		ra = wait_prec(at("a"), a);
		assert_int_equal(write(go, "g", 1), 1);
		close(go);
		assert_int_equal(child_exit_status(a), 0);
		b = named_opener("reuse-second", at("b"), a, &go);
	}
	if (b < 0) {
		print_message("skipped: cannot create a process with a chosen pid "
			      "(clone3 set_tid): %s\n",
			      strerror(-b));
		skip();
	}
	assert_int_equal(b, a);
	rb = wait_prec(at("b"), b);
	assert_int_equal(write(go, "g", 1), 1);
	close(go);
	assert_int_equal(child_exit_status(b), 0);
	assert_true(ra.verified && rb.verified);
	assert_string_equal(ra.comm, "reuse-first");
	assert_string_equal(rb.comm, "reuse-second");
	assert_string_equal(rb.exe, self_exe);
	if (rb.t_after - ra.t_before >= (int64_t)PROC_CACHE_TTL_MS * 1000000)
		print_message("note: the two events were %lld ms apart (> the cache's "
			      "%d ms): the first entry had expired\n",
			      (long long)((rb.t_after - ra.t_before) / 1000000),
			      PROC_CACHE_TTL_MS);
}

/* path, or "" for none; under rec_lock, as post_proc reads it. */
static void
set_gate(const char *path)
{
	pthread_mutex_lock(&rec_lock);
	snprintf(gate_path, sizeof(gate_path), "%s", path);
	pthread_mutex_unlock(&rec_lock);
}

static int
gate_reached(void *arg)
{
	(void)arg;
	return atomic_load(&gate_entered);
}

static int
fds_at_most(void *arg)
{
	return tu_count_fds() <= *(int *)arg;
}

/* One read holds an event of a process that has exited since and one of
 * a second process given the same pid: the details found for one event
 * of a pid are used for later ones of the same read only once that
 * process was shown to hold the pid after the read, so neither takes the
 * other's (the first is unverified, the second gets its own). The read's
 * pidfds are all closed once it is delivered. */
static void
process_memo_not_fooled_by_pid_reuse_within_a_read(void **state)
{
	struct prec ra, rb;
	pid_t a = 0, b = -EEXIST, g;
	int go, gate_go, tries, fds0;

	(void)state;
	NEED_ROOT();
	make_file(at("a"));
	make_file(at("b"));
	make_file(at("gate"));
	proc_spy();
	NEED_PIDFD();
	fds0 = tu_count_fds();
	set_gate(at("gate"));
	atomic_store(&gate_entered, false);
	atomic_store(&gate_hold, true);
	g = named_opener("memo-gate", at("gate"), 0, &gate_go);
	assert_true(g > 0);
	if (!tu_wait_until(gate_reached, NULL, 5000)) {
		atomic_store(&gate_hold, false);
		fail_msg("the gate's OPEN never reached the filter");
	}
	for (tries = 0; tries < 5 && b == -EEXIST; tries++) {
		a = named_opener("memo-first", at("a"), 0, &go);
		assert_true(a > 0);
		assert_int_equal(write(go, "g", 1), 1);
		close(go);
		assert_int_equal(child_exit_status(a), 0);
		b = named_opener("memo-second", at("b"), a, &go);
	}
	atomic_store(&gate_hold, false);
	assert_int_equal(write(gate_go, "g", 1), 1);
	close(gate_go);
	assert_int_equal(child_exit_status(g), 0);
	if (b < 0) {
		print_message("skipped: cannot create a process with a chosen pid "
			      "(clone3 set_tid): %s\n",
			      strerror(-b));
		set_gate("");
		skip();
	}
	rb = wait_prec(at("b"), b);
	ra = wait_prec(at("a"), a);
	assert_int_equal(write(go, "g", 1), 1);
	close(go);
	assert_int_equal(child_exit_status(b), 0);
	set_gate("");
	print_message("pid %d: first process %s (%s), second %s (%s)\n", (int)a,
		      ra.verified ? "verified" : "unverified", ra.comm,
		      rb.verified ? "verified" : "unverified", rb.comm);
	assert_true(rb.verified);
	assert_string_equal(rb.comm, "memo-second");
	if (ra.verified)
		assert_string_equal(ra.comm, "memo-first");
	if (!tu_wait_until(fds_at_most, &fds0, 5000))
		fail_msg("%d descriptors open after the events, %d before: pidfds left "
			 "open",
			 tu_count_fds(), fds0);
}

/* The permission reader and the notification reader resolve processes
 * at the same time (TSan checks the cache's locking). */
static atomic_int proc_good, proc_bad;

static void
check_proc(const struct flt_callback_data *d)
{
	const struct flt_process *p = flt_get_process(d);

	if (p && p->verified && p->pid == d->pid && p->exe && !strcmp(p->exe, self_exe) &&
	    p->comm && !strcmp(p->comm, "parallel"))
		atomic_fetch_add(&proc_good, 1);
	else
		atomic_fetch_add(&proc_bad, 1);
}

static enum flt_preop_status
pre_check_proc(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)ic;
	(void)cc;
	check_proc(d);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static void
post_check_proc(const struct flt_callback_data *d, void *ic, void *cc)
{
	(void)ic;
	(void)cc;
	check_proc(d);
}

static int
procs_checked(void *arg)
{
	return atomic_load(&proc_good) + atomic_load(&proc_bad) >= *(int *)arg;
}

static void
process_cache_shared_by_both_readers(void **state)
{
	static const struct flt_operation_registration pre_ops[] = {
		{ FLT_OP_OPEN, pre_check_proc, NULL },
	};
	static const struct flt_operation_registration post_ops[] = {
		{ FLT_OP_CLOSE, NULL, post_check_proc },
	};
	struct flt_registration rp = { .name = "procperm",
				       .altitude = "370000",
				       .operations = pre_ops,
				       .n_operations = 1 };
	struct flt_registration rn = { .name = "procnotif",
				       .altitude = "360000",
				       .operations = post_ops,
				       .n_operations = 1 };
	struct flt_engine_stats s0, s1;
	flt_filter *fp = NULL, *fn = NULL;
	enum { CHILDREN = 4, OPENS = 150 };
	pid_t kids[CHILDREN];
	char path[PATH_MAX];
	int want;

	(void)state;
	NEED_ROOT();
	snprintf(path, sizeof(path), "%s", at("p"));
	make_file(path);
	atomic_store(&proc_good, 0);
	atomic_store(&proc_bad, 0);
	assert_int_equal(flt_register_filter(g_m, &rp, &fp), 0);
	assert_int_equal(flt_register_filter(g_m, &rn, &fn), 0);
	assert_int_equal(flt_attach(fp, mnt, FLT_INSTANCE_SUBTREE), 0);
	assert_int_equal(flt_attach(fn, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(fp);
	start_or_skip(fn);
	NEED_PIDFD();
	assert_int_equal(flt_manager_get_stats(g_m, &s0), 0);
	for (int k = 0; k < CHILDREN; k++) {
		kids[k] = raw_fork(0);
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			raw_name("parallel");
			for (int i = 0; i < OPENS; i++)
				if (!raw_open_close(path))
					raw_exit(1);
			/* Alive until the test has checked everything. */
			syscall(SYS_pause);
			raw_exit(0);
		}
	}
	/* Every open is a permission event; the closes that follow may be
	 * merged, so wait for those to stop coming. */
	want = CHILDREN * OPENS;
	tu_wait_until(procs_checked, &want, 20000);
	for (int quiet = 0, last = -1; quiet < 200;) {
		int now = atomic_load(&proc_good) + atomic_load(&proc_bad);

		quiet = now == last ? quiet + 10 : 0;
		last = now;
		usleep(10000);
	}
	for (int k = 0; k < CHILDREN; k++) {
		kill(kids[k], SIGKILL);
		assert_int_equal(child_exit_status(kids[k]), 128 + SIGKILL);
	}
	assert_int_equal(flt_manager_get_stats(g_m, &s1), 0);
	print_message(
		"%d checked, %d wrong; %llu hits, %llu misses\n", atomic_load(&proc_good),
		atomic_load(&proc_bad),
		(unsigned long long)(s1.process_cache_hits - s0.process_cache_hits),
		(unsigned long long)(s1.process_cache_misses - s0.process_cache_misses));
	assert_int_equal(atomic_load(&proc_bad), 0);
	assert_true(atomic_load(&proc_good) >= want);
	/* Linux < 6.9: no cache, so no hits; every call read /proc. */
	if (!features()->pidfs)
		assert_int_equal(s1.process_cache_hits, 0);
	else
		assert_true(s1.process_cache_hits > s0.process_cache_hits);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(process_cache_sees_an_exec),
		T(process_cache_follows_setuid),
		T(process_cache_name_change_within_ttl),
		T(process_cache_hits_repeated_events),
		T(process_cache_not_fooled_by_pid_reuse),
		T(process_cache_shared_by_both_readers),
		/* last: it changes how the library reads credentials */
		T(process_cache_without_pidfd_get_info),
		T(process_memo_not_fooled_by_pid_reuse_within_a_read),
#undef T
	};
	int r;

	r = engine_fixture_init("test_engine_process_cache");
	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
