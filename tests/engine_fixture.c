/* SPDX-License-Identifier: MIT */
/* engine_fixture.c — see engine_fixture.h. */
#include "engine_fixture.h"

bool have_root;
char fsop_path[PATH_MAX];
char mnt[64];

/* ---- recording events ---- */

struct rec recs[MAX_RECS];
int n_recs;
pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;

void
record(int filter, bool pre, const struct flt_callback_data *d)
{
	const struct flt_process *p = flt_get_process(d);
	struct rec r = { .filter = filter,
			 .pre = pre,
			 .op = d->op,
			 .flags = d->flags,
			 .seq = d->sequence,
			 .pid = d->pid };

	r.ino = d->ino;
	r.dev = d->dev;
	r.lost = d->lost;
	if (p) {
		r.uid = p->uid;
		r.verified = p->verified;
		if (p->exe)
			snprintf(r.exe, sizeof(r.exe), "%s", p->exe);
	}
	if (d->path)
		snprintf(r.path, sizeof(r.path), "%s", d->path);
	if (d->new_path)
		snprintf(r.new_path, sizeof(r.new_path), "%s", d->new_path);
	pthread_mutex_lock(&rec_lock);
	if (n_recs < MAX_RECS)
		recs[n_recs++] = r;
	pthread_mutex_unlock(&rec_lock);
}

void
recs_clear(void)
{
	pthread_mutex_lock(&rec_lock);
	n_recs = 0;
	pthread_mutex_unlock(&rec_lock);
}

int
find_rec(int filter, enum flt_operation op, const char *path, const char *new_path,
	 pid_t pid)
{
	int found = -1;

	pthread_mutex_lock(&rec_lock);
	for (int i = 0; i < n_recs && found < 0; i++) {
		struct rec *r = &recs[i];

		if ((filter < 0 || r->filter == filter) && r->op == op &&
		    (!path || !strcmp(r->path, path)) &&
		    (!new_path || !strcmp(r->new_path, new_path)) &&
		    (!pid || r->pid == pid))
			found = i;
	}
	pthread_mutex_unlock(&rec_lock);
	return found;
}

int
wait_rec(int filter, enum flt_operation op, const char *path, const char *new_path,
	 pid_t pid, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int i;

	while ((i = find_rec(filter, op, path, new_path, pid)) < 0 && tu_now_ms() < end)
		usleep(2000);
	return i;
}

/* ---- children ---- */

struct child
child_start_ex(uid_t uid, bool hold, bool go, const char *op, const char *a1,
	       const char *a2)
{
	struct child c = { .hold_fd = -1 };
	char uidbuf[16];
	const char *argv[10];
	int n = 0, p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	argv[n++] = fsop_path;
	if (uid) {
		snprintf(uidbuf, sizeof(uidbuf), "%u", (unsigned)uid);
		argv[n++] = "--uid";
		argv[n++] = uidbuf;
	}
	if (hold)
		argv[n++] = "--hold";
	if (go)
		argv[n++] = "--go";
	argv[n++] = op;
	argv[n++] = a1;
	if (a2)
		argv[n++] = a2;
	argv[n] = NULL;
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		dup2(p[0], STDIN_FILENO);
		execv(fsop_path, (char **)argv);
		_exit(127);
	}
	close(p[0]);
	c.hold_fd = p[1];
	snprintf(c.what, sizeof(c.what), "%s %s", op, a1);
	return c;
}

struct child
child_start(uid_t uid, bool hold, const char *op, const char *a1, const char *a2)
{
	return child_start_ex(uid, hold, false, op, a1, a2);
}

int
child_finish(struct child *c)
{
	int64_t end = tu_now_ms() + CHILD_WAIT_MS;
	pid_t r;
	int st;

	if (c->hold_fd >= 0)
		close(c->hold_fd);
	c->hold_fd = -1;
	while ((r = waitpid(c->pid, &st, WNOHANG)) == 0 && tu_now_ms() < end)
		usleep(1000);
	if (r == 0) {
		kill(c->pid, SIGKILL);
		(void)waitpid(c->pid, &st, 0);
		fail_msg("fsop %s (pid %d) did not finish within %d ms", c->what,
			 (int)c->pid, CHILD_WAIT_MS);
	}
	assert_int_equal(r, c->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
run_op(uid_t uid, const char *op, const char *a1, const char *a2)
{
	struct child c = child_start(uid, false, op, a1, a2);

	return child_finish(&c);
}

/* ---- fixture: a private tmpfs and a manager ---- */

flt_manager *g_m;
pthread_mutex_t block_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t block_cond = PTHREAD_COND_INITIALIZER;
bool block_release;

void
release_blocked_callbacks(void)
{
	pthread_mutex_lock(&block_lock);
	block_release = true;
	pthread_cond_broadcast(&block_cond);
	pthread_mutex_unlock(&block_lock);
}

int
setup(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	snprintf(mnt, sizeof(mnt), "/tmp/fltmgr-eng.XXXXXX");
	assert_non_null(mkdtemp(mnt));
	assert_int_equal(mount("fltmgr-test", mnt, "tmpfs", 0, "mode=1777,size=64m"), 0);
	tu_runtime_dir_create();
	g_m = tu_manager_new();
	recs_clear();
	return 0;
}

int
teardown(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	/* After a failed assertion too: a reader still blocked in a callback
	 * would keep flt_manager_free() waiting for ever. */
	release_blocked_callbacks();
	flt_manager_free(g_m);
	g_m = NULL;
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	tu_runtime_dir_remove();
	return 0;
}

const struct fan_features *
features(void)
{
	struct engine *e = engine_of(g_m);

	assert_non_null(e);
	return &e->feat;
}

void
start_or_skip(flt_filter *f)
{
	int r = flt_start_filtering(f);

	if (r == -EOPNOTSUPP) {
		const struct fan_features *ft = features();

		print_message("skipped: %s\n",
			      !ft->unlimited_queue
				      ? "pre callbacks need FAN_UNLIMITED_QUEUE"
				      : "post-only callbacks need name reporting "
					"(FAN_REPORT_DFID_NAME_TARGET, Linux 5.17)");
		skip();
	}
	assert_int_equal(r, 0);
}

char *
at(const char *rel)
{
	return tu_path(mnt, rel);
}

/* ---- recording pre and post callbacks ---- */

atomic_int deny_in_middle;

static enum flt_preop_status
pre_rec(int id, struct flt_callback_data *d)
{
	record(id, true, d);
	if (id == 2 && atomic_load(&deny_in_middle)) {
		d->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	return FLT_PREOP_SUCCESS_WITH_CALLBACK;
}

#define PRE_POST(n)                                                                     \
	enum flt_preop_status pre_##n(struct flt_callback_data *d, void *ic, void **cc) \
	{                                                                               \
		(void)ic;                                                               \
		(void)cc;                                                               \
		return pre_rec(n, d);                                                   \
	}                                                                               \
	void post_##n(const struct flt_callback_data *d, void *ic, void *cc)            \
	{                                                                               \
		(void)ic;                                                               \
		(void)cc;                                                               \
		record(n, false, d);                                                    \
	}

PRE_POST(1)
PRE_POST(2)
PRE_POST(3)

/* ---- registering filters ---- */

flt_filter *
reg_one(const char *name, const char *alt, enum flt_operation op, flt_pre_operation pre,
	int deadline_ms, unsigned flags)
{
	struct flt_operation_registration o = { op, pre, NULL };
	struct flt_registration reg = { .name = name,
					.altitude = alt,
					.operations = &o,
					.n_operations = 1,
					.deadline_ms = deadline_ms,
					.flags = flags };
	flt_filter *f = NULL;

	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(f);
	return f;
}

atomic_int cache_calls;

enum flt_preop_status
pre_count(struct flt_callback_data *d, void *ic, void **cc)
{
	(void)d;
	(void)ic;
	(void)cc;
	atomic_fetch_add(&cache_calls, 1);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

flt_filter *
open_filter_reg(const char *name, const char *alt, flt_pre_operation pre, unsigned flags,
		enum flt_instance_kind kind)
{
	struct flt_operation_registration op = { FLT_OP_OPEN, pre, NULL };
	struct flt_registration reg = { .name = name,
					.altitude = alt,
					.operations = &op,
					.n_operations = 1,
					.flags = flags };
	flt_filter *f = NULL;

	assert_int_equal(flt_register_filter(g_m, &reg, &f), 0);
	assert_int_equal(flt_attach(f, mnt, kind), 0);
	return f;
}

flt_filter *
pre_filter_reg(const char *name, const char *alt, flt_pre_operation pre, unsigned flags)
{
	return open_filter_reg(name, alt, pre, flags, FLT_INSTANCE_FILESYSTEM);
}

/* ---- the start of each program ---- */

char self_exe[PATH_MAX];

int
engine_fixture_init(const char *prog)
{
	char self[PATH_MAX - 16], *slash;
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		*slash = '\0';
		snprintf(fsop_path, sizeof(fsop_path), "%s/fsop", self);
	}
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n > 0)
		self_exe[n] = '\0';
	/* Everything below happens in a mount namespace of our own. */
	return tu_root_private_ns(prog, &have_root);
}
