/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_filter.c — the minispy filter (filters/minispy/) on real
 * fanotify, loaded from minispy.so through its entry point exactly as
 * fltmgrd would, and read through libfltuser exactly as its service will
 * (root only).
 *
 * Like test_engine, the program runs in a private mount namespace and each
 * test mounts a fresh tmpfs, so nothing here sees or blocks the rest of the
 * machine. The test process is the engine's own process, whose accesses
 * never reach a filter; every file operation is therefore done by a child:
 * tests/fsop, or this program re-executed in one of its child modes
 * (--gen, --load, --svc-*), which also serve as service processes whose
 * pids the filter must exclude. Children are always exec'ed, never just
 * forked, because the parent is multi-threaded.
 *
 * "Everything has been processed" is made exact by a second, recording
 * filter at a higher altitude attached above minispy's directory: post
 * callbacks run from the lowest altitude up on one reader thread, so once
 * it has seen a sentinel file created after some operations, minispy has
 * published all of them.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "minispy_record.h"
#include "testutil.h"

/* flt_start_filtering(), or a printed skip on a kernel (or simulated
 * one) without name reporting: minispy's callbacks are all post-only. */
static void
start_or_skip(flt_filter *f)
{
	int r = flt_start_filtering(f);

	if (r == -EOPNOTSUPP)
		TU_NEED_KERNEL("names");
	assert_int_equal(r, 0);
}

static bool have_root;
static char fsop_path[PATH_MAX];
static char self_path[PATH_MAX];
static char mnt[64];
static char wdir[128]; /* minispy's instance: <mnt>/w */
static flt_filter_entry_fn entry;
static flt_manager *g_m;
static flt_filter *g_f;   /* minispy */
static flt_filter *g_rec; /* the sentinel recorder */

#define WAIT_MS 10000

/* ---- child modes (run in a fresh exec of this program) ---- */

static int
svc_connect_retrying(const char *port, filter_port **p)
{
	for (int i = 0; i < 5000; i++) {
		int r = filter_connect_communication_port(port, 0, NULL, 0, p);

		if (r != -EUSERS)
			return r;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

static void
say(char c)
{
	if (write(STDOUT_FILENO, &c, 1) != 1)
		_exit(90);
}

static char
hear(void)
{
	char c;

	return read(STDIN_FILENO, &c, 1) == 1 ? c : 0;
}

static int
create_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* --gen DIR PREFIX N: creates DIR/PREFIX00000 ... in order. */
static int
child_gen(const char *dir, const char *prefix, int n)
{
	char path[PATH_MAX];

	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s%05d", dir, prefix, i);
		if (create_file(path))
			return 1;
	}
	return 0;
}

/* --load DIR: creates, writes, renames and deletes files until killed. */
static int
child_load(const char *dir)
{
	char a[PATH_MAX], b[PATH_MAX];

	for (unsigned i = 0;; i++) {
		int fd;

		snprintf(a, sizeof(a), "%s/load%u", dir, i % 64);
		snprintf(b, sizeof(b), "%s/moved%u", dir, i % 64);
		fd = open(a, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			if (write(fd, "x", 1) < 0) {
				/* the events are what counts */
			}
			close(fd);
		}
		(void)rename(a, b);
		(void)unlink(b);
	}
	return 0;
}

/*
 * --svc-exclude PORT DIR: a service process. Connects, says 'c'; creates
 * DIR/while-connected, says 'x'; waits for 'g', closes its port, says
 * 'd'; waits for 'g', creates DIR/after-close, says 'y'; exits at EOF.
 */
static int
child_svc_exclude(const char *port, const char *dir)
{
	char path[PATH_MAX];
	filter_port *p = NULL;

	if (svc_connect_retrying(port, &p) < 0)
		return 2;
	say('c');
	snprintf(path, sizeof(path), "%s/while-connected", dir);
	if (create_file(path))
		return 3;
	say('x');
	if (hear() != 'g')
		return 4;
	filter_close_port(p);
	say('d');
	if (hear() != 'g')
		return 5;
	snprintf(path, sizeof(path), "%s/after-close", dir);
	if (create_file(path))
		return 6;
	say('y');
	while (hear())
		;
	return 0;
}

enum churn_end {
	CHURN_CLOSE = 0, /* reads a little, closes, exits */
	CHURN_EXIT,      /* reads a little, _exit without closing */
	CHURN_SELF_KILL, /* reads a little, raise(SIGKILL) */
	CHURN_KILLED,    /* reads until the parent SIGKILLs it */
	CHURN_STOPPED,   /* never reads; the parent SIGSTOPs, SIGCONTs, kills */
	CHURN_MODES_
};

/* --svc-churn PORT MODE SEED: one service life for the seed scenario. */
static int
child_svc_churn(const char *port, int mode, unsigned seed)
{
	uint8_t buf[MINISPY_RECORD_MAX];
	filter_port *p = NULL;
	int n = (int)(rand_r(&seed) % 40);

	if (svc_connect_retrying(port, &p) < 0)
		return 2;
	say('r');
	if (mode == CHURN_STOPPED)
		for (;;)
			pause();
	for (int i = 0; mode == CHURN_KILLED || i < n; i++) {
		struct filter_message_header h;
		struct minispy_record rec;
		int len = filter_get_message(p, &h, buf, sizeof(buf), 20);

		if (len == -ETIMEDOUT)
			continue;
		if (len < 0)
			return len == -ENOTCONN ? 0 : 7;
		if (minispy_record_decode(buf, (size_t)len, &rec) < 0)
			return 8; /* a malformed record is a failure */
	}
	switch (mode) {
	case CHURN_CLOSE:
		filter_close_port(p);
		return 0;
	case CHURN_EXIT:
		_exit(0);
	case CHURN_SELF_KILL:
		raise(SIGKILL);
		break;
	default:
		break;
	}
	return 0;
}

static int
child_main(int argc, char **argv)
{
	const char *mode = argv[1];

	if (!strcmp(mode, "--gen") && argc == 5)
		return child_gen(argv[2], argv[3], atoi(argv[4]));
	if (!strcmp(mode, "--load") && argc == 3)
		return child_load(argv[2]);
	if (!strcmp(mode, "--svc-exclude") && argc == 4)
		return child_svc_exclude(argv[2], argv[3]);
	if (!strcmp(mode, "--svc-churn") && argc == 5)
		return child_svc_churn(argv[2], atoi(argv[3]), (unsigned)atoi(argv[4]));
	fprintf(stderr, "test_minispy_filter: bad child mode\n");
	return 100;
}

/* ---- starting children ---- */

struct child {
	pid_t pid;
	int to;   /* its stdin, or -1 */
	int from; /* its stdout, or -1 */
};

/* Runs argv (argv[0] a path) with pipes on stdin and stdout. */
static struct child
spawn(const char *const *argv)
{
	struct child c = { .to = -1, .from = -1 };
	int in[2], out[2];

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c.to = in[1];
	c.from = out[0];
	return c;
}

static char
child_hear(struct child *c)
{
	char ch;

	return read(c->from, &ch, 1) == 1 ? ch : 0;
}

static void
child_say(struct child *c, char ch)
{
	assert_int_equal(write(c->to, &ch, 1), 1);
}

/* Closes its stdin and waits: its exit status, or 128 + signal. */
static int
child_wait(struct child *c)
{
	int st;

	if (c->to >= 0)
		close(c->to);
	if (c->from >= 0)
		close(c->from);
	c->to = c->from = -1;
	assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* fsop with --hold (it stays until child_wait) as uid. */
static struct child
fsop_hold(uid_t uid, const char *op, const char *a1, const char *a2)
{
	char uidbuf[16];
	const char *argv[10];
	int n = 0;

	snprintf(uidbuf, sizeof(uidbuf), "%u", (unsigned)uid);
	argv[n++] = fsop_path;
	if (uid) {
		argv[n++] = "--uid";
		argv[n++] = uidbuf;
	}
	argv[n++] = "--hold";
	argv[n++] = op;
	argv[n++] = a1;
	if (a2)
		argv[n++] = a2;
	argv[n] = NULL;
	return spawn(argv);
}

static int
fsop(const char *op, const char *a1, const char *a2)
{
	const char *argv[] = { fsop_path, op, a1, a2, NULL };
	struct child c = spawn(argv);

	return child_wait(&c);
}

static void
gen(const char *prefix, int n)
{
	char nbuf[16];
	const char *argv[] = { self_path, "--gen", wdir, prefix, nbuf, NULL };
	struct child c;

	snprintf(nbuf, sizeof(nbuf), "%d", n);
	c = spawn(argv);
	assert_int_equal(child_wait(&c), 0);
}

static char *
at(const char *rel)
{
	static char bufs[8][PATH_MAX];
	static int i;
	char *b = bufs[i++ % 8];

	snprintf(b, PATH_MAX, "%s/%s", wdir, rel);
	return b;
}

/* ---- the sentinel recorder ---- */

static atomic_int sentinel_seen;
static int sentinel_next;

static void
recorder_post(const struct flt_callback_data *d, void *ic, void *cc)
{
	const char *b = d->path ? strrchr(d->path, '/') : NULL;

	(void)ic;
	(void)cc;
	if (b && !strncmp(b + 1, "sentinel.", 9))
		atomic_store(&sentinel_seen, atoi(b + 10));
}

static void
recorder_start(void)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_CREATE, NULL, recorder_post },
	};
	struct flt_registration reg = { .name = "recorder",
					.altitude = "400000",
					.operations = ops,
					.n_operations = 1 };

	assert_int_equal(flt_register_filter(g_m, &reg, &g_rec), 0);
	assert_int_equal(flt_attach(g_rec, mnt, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(g_rec);
}

static int
sentinel_reached(void *arg)
{
	return atomic_load(&sentinel_seen) >= *(int *)arg;
}

/* Returns once minispy has published every event of every operation
 * that finished before this call. A sentinel can itself be lost if the
 * kernel queue is full (a load generator just stopped): then another. */
static void
sync_events(void)
{
	int64_t end = tu_now_ms() + WAIT_MS;

	if (!g_rec)
		recorder_start();
	for (;;) {
		char path[PATH_MAX];
		int n = ++sentinel_next;

		snprintf(path, sizeof(path), "%s/sentinel.%d", mnt, n);
		assert_int_equal(fsop("create", path, NULL), 0);
		if (tu_wait_until(sentinel_reached, &n, 2000))
			return;
		if (tu_now_ms() > end)
			fail_msg("the engine did not deliver sentinel %d", n);
	}
}

/* ---- loading minispy ---- */

/* kv: key, value, ..., NULL. Returns the entry point's result. */
static int
try_load(const char *name, const char *const *kv, flt_filter **ret)
{
	const char *keys[32], *values[32];
	struct flt_filter_config cfg = { .name = name,
					 .altitude = "385100",
					 .param_keys = keys,
					 .param_values = values };

	for (; kv && kv[0]; kv += 2) {
		assert_true(cfg.n_params < 32);
		keys[cfg.n_params] = kv[0];
		values[cfg.n_params++] = kv[1];
	}
	return entry(g_m, &cfg, ret);
}

/* Loads minispy with these parameters, attached at wdir and started. */
static void
load(const char *const *kv)
{
	assert_int_equal(try_load("minispy", kv, &g_f), 0);
	assert_non_null(g_f);
	assert_int_equal(flt_attach(g_f, wdir, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(g_f);
}

static void
unload(void)
{
	flt_unregister_filter(g_f);
	g_f = NULL;
}

/* ---- a service in this process ---- */

struct ev {
	uint16_t type;
	uint64_t seq;
	uint64_t hdr_seq;
	uint64_t event_seq;
	int64_t time_ns;
	uint64_t dev, ino;
	pid_t pid;
	uint32_t uid;
	uint16_t op;
	uint16_t flags;
	uint64_t count, first, last;
	uint32_t cause;
	uint32_t notices;
	char path[256];
	char new_path[256];
	char exe[256];
	char comm[32];
};

struct svc {
	filter_port *p;
	struct ev *v;
	size_t n;
	size_t cap;
};

static void
svc_open(struct svc *s)
{
	*s = (struct svc){ 0 };
	assert_int_equal(filter_connect_communication_port("minispy", 0, NULL, 0, &s->p),
			 0);
}

static void
svc_close(struct svc *s)
{
	filter_close_port(s->p);
	free(s->v);
	*s = (struct svc){ 0 };
}

static void
copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static void svc_add(struct svc *s, const struct filter_message_header *hp,
		    const uint8_t *buf, int len);

/* Reads one record into the list: 0, -ETIMEDOUT, -ENOTCONN, ... */
static int
svc_pump(struct svc *s, int timeout_ms)
{
	static uint8_t buf[MINISPY_RECORD_MAX];
	struct filter_message_header h;
	int len = filter_get_message(s->p, &h, buf, sizeof(buf), timeout_ms);

	if (len < 0)
		return len;
	svc_add(s, &h, buf, len);
	return 0;
}

/* Decodes one message into the list. */
static void
svc_add(struct svc *s, const struct filter_message_header *hp, const uint8_t *buf,
	int len)
{
	const struct filter_message_header h = *hp;
	struct minispy_record r = { 0 };
	struct ev *e;

	assert_int_equal(h.reply_length, 0);
	assert_int_equal(h.fd, -1);
	if (minispy_record_decode(buf, (size_t)len, &r) != 0)
		fail_msg("undecodable record of %d bytes", len);
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		assert_non_null(s->v);
	}
	e = &s->v[s->n++];
	memset(e, 0, sizeof(*e));
	e->type = r.type;
	e->hdr_seq = h.sequence;
	if (r.type == MINISPY_REC_LOSS) {
		e->seq = r.loss.seq;
		e->time_ns = r.loss.time_ns;
		e->count = r.loss.count;
		e->first = r.loss.first_seq;
		e->last = r.loss.last_seq;
		e->cause = r.loss.cause;
		e->notices = r.loss.notices;
		return;
	}
	e->seq = r.event.seq;
	e->event_seq = r.event.event_seq;
	e->time_ns = r.event.time_ns;
	e->dev = r.event.dev;
	e->ino = r.event.ino;
	e->pid = r.event.pid;
	e->uid = r.event.uid;
	e->op = r.event.op;
	e->flags = r.event.flags;
	copy_str(e->path, sizeof(e->path), r.event.path);
	copy_str(e->new_path, sizeof(e->new_path), r.event.new_path);
	copy_str(e->exe, sizeof(e->exe), r.event.exe);
	copy_str(e->comm, sizeof(e->comm), r.event.comm);
}

static struct minispy_stats
svc_stats(struct svc *s)
{
	uint32_t in[2] = { MINISPY_RECORD_MAGIC, MINISPY_CMD_STATS };
	struct minispy_stats st;
	size_t len = 0;

	assert_int_equal(filter_send_message(s->p, in, sizeof(in), &st, sizeof(st), &len),
			 0);
	assert_int_equal(len, sizeof(st));
	assert_int_equal(st.size, sizeof(st));
	return st;
}

/* After sync_events(): reads everything minispy has for this service.
 * Once nothing is pending in the filter, all of it is in the socket. */
static void
svc_drain(struct svc *s)
{
	int64_t end = tu_now_ms() + WAIT_MS;
	int r;

	for (;;) {
		while ((r = svc_pump(s, 0)) == 0)
			;
		assert_int_equal(r, -ETIMEDOUT);
		if (svc_stats(s).conn_pending == 0)
			break;
		if (tu_now_ms() > end)
			fail_msg("minispy still holds %llu records for this service",
				 (unsigned long long)svc_stats(s).conn_pending);
		(void)svc_pump(s, 5);
	}
	while ((r = svc_pump(s, 0)) == 0)
		;
	assert_int_equal(r, -ETIMEDOUT);
}

static int
find_ev(struct svc *s, uint16_t op, const char *path, const char *new_path, pid_t pid)
{
	for (size_t i = 0; i < s->n; i++) {
		struct ev *e = &s->v[i];

		if (e->type == MINISPY_REC_EVENT && e->op == op &&
		    (!path || !strcmp(e->path, path)) &&
		    (!new_path || !strcmp(e->new_path, new_path)) &&
		    (!pid || e->pid == pid))
			return (int)i;
	}
	return -1;
}

/* Reads until a matching event arrives; returns it. */
static struct ev *
expect_ev(struct svc *s, uint16_t op, const char *path, const char *new_path, pid_t pid)
{
	int64_t end = tu_now_ms() + WAIT_MS;
	int i;

	while ((i = find_ev(s, op, path, new_path, pid)) < 0 && tu_now_ms() < end)
		(void)svc_pump(s, 20);
	if (i < 0)
		fail_msg("no %s record for %s (pid %d)", minispy_op_name(op), path,
			 (int)pid);
	return &s->v[i];
}

static size_t
count_events(const struct svc *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += s->v[i].type == MINISPY_REC_EVENT &&
		     !strstr(s->v[i].path, "sentinel.");
	return n;
}

/*
 * The stream's own promise: event seqs (and KERNEL/ENGINE notices' seqs)
 * strictly increase, and every gap is covered exactly, inside it, by
 * loss records (QUEUE/BACKLOG/DEPARTED): one, or several back to back
 * whose runs follow each other when parts of the gap were lost for
 * different reasons (the backlog's oldest dropped, then records only a
 * departed service held). No seq is reported twice or skipped. Returns
 * the number of records lost (sum of loss counts).
 */
static uint64_t
check_seq_accounting(const struct svc *s, uint64_t first_expected)
{
	uint64_t next = first_expected, lost = 0;
	int prev_cause = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct ev *e = &s->v[i];

		if (e->type == MINISPY_REC_LOSS && !minispy_loss_is_notice(e->cause)) {
			if (prev_cause == (int)e->cause)
				fail_msg("two %u loss records in a row at %zu: one run "
					 "split in two",
					 e->cause, i);
			if (e->first != next || e->count != e->last - e->first + 1)
				fail_msg("loss record %zu: count %llu, seq %llu..%llu, "
					 "expected to start at %llu",
					 i, (unsigned long long)e->count,
					 (unsigned long long)e->first,
					 (unsigned long long)e->last,
					 (unsigned long long)next);
			assert_int_equal(e->hdr_seq, e->last);
			next = e->last + 1;
			lost += e->count;
			prev_cause = (int)e->cause;
			continue;
		}
		if (e->seq != next)
			fail_msg("record %zu has seq %llu, expected %llu (an unreported "
				 "gap)",
				 i, (unsigned long long)e->seq, (unsigned long long)next);
		assert_int_equal(e->hdr_seq, e->seq);
		next = e->seq + 1;
		prev_cause = 0;
	}
	return lost;
}

/* ---- fixture ---- */

static int
setup(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	snprintf(mnt, sizeof(mnt), "/tmp/fltmgr-msp.XXXXXX");
	assert_non_null(mkdtemp(mnt));
	assert_int_equal(mount("fltmgr-test", mnt, "tmpfs", 0, "mode=1777,size=64m"), 0);
	snprintf(wdir, sizeof(wdir), "%s/w", mnt);
	assert_int_equal(mkdir(wdir, 0777), 0);
	assert_int_equal(chmod(wdir, 01777), 0); /* fsop --uid writes here */
	tu_runtime_dir_create();
	g_m = tu_manager_new();
	atomic_store(&sentinel_seen, 0);
	sentinel_next = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (!have_root)
		return 0;
	flt_unregister_filter(g_f);
	g_f = NULL;
	flt_unregister_filter(g_rec);
	g_rec = NULL;
	flt_manager_free(g_m);
	g_m = NULL;
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
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

static int64_t
realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- records: what each operation produces ---- */

static void
check_process(const struct ev *e, pid_t pid, uid_t uid, int64_t t0)
{
	assert_int_equal(e->pid, pid);
	assert_true(e->flags & MINISPY_F_VERIFIED);
	assert_int_equal(e->uid, uid);
	assert_string_equal(e->exe, fsop_path);
	assert_string_equal(e->comm, "fsop");
	assert_true(e->time_ns >= t0 && e->time_ns <= realtime_ns());
	assert_true(e->event_seq > 0);
}

static void
each_operation_produces_a_record_with_path_and_process(void **state)
{
	const uid_t uid = 4321;
	int64_t t0 = realtime_ns();
	const char *argv[] = { fsop_path, "exec", NULL, NULL };
	char cmd[2 * PATH_MAX];
	struct svc s;
	struct child c;
	struct stat st;
	struct ev *e;

	(void)state;
	NEED_ROOT();
	load(NULL);
	svc_open(&s);

	c = fsop_hold(uid, "create", at("a"), NULL);
	e = expect_ev(&s, MINISPY_OP_CREATE, at("a"), NULL, c.pid);
	check_process(e, c.pid, uid, t0);
	assert_int_equal(stat(at("a"), &st), 0);
	assert_int_equal(e->ino, st.st_ino);
	assert_int_equal(e->dev, st.st_dev);
	assert_false(e->flags & MINISPY_F_DIR);
	check_process(expect_ev(&s, MINISPY_OP_OPEN, at("a"), NULL, c.pid), c.pid, uid,
		      t0);
	check_process(expect_ev(&s, MINISPY_OP_CLOSE_WRITE, at("a"), NULL, c.pid), c.pid,
		      uid, t0);
	assert_int_equal(child_wait(&c), 0);

	c = fsop_hold(uid, "write", at("a"), "hello");
	check_process(expect_ev(&s, MINISPY_OP_WRITE, at("a"), NULL, c.pid), c.pid, uid,
		      t0);
	assert_int_equal(child_wait(&c), 0);

	c = fsop_hold(uid, "read", at("a"), NULL);
	check_process(expect_ev(&s, MINISPY_OP_READ, at("a"), NULL, c.pid), c.pid, uid,
		      t0);
	check_process(expect_ev(&s, MINISPY_OP_CLOSE, at("a"), NULL, c.pid), c.pid, uid,
		      t0);
	assert_int_equal(child_wait(&c), 0);

	c = fsop_hold(uid, "chmod", at("a"), "600");
	check_process(expect_ev(&s, MINISPY_OP_ATTRIB, at("a"), NULL, c.pid), c.pid, uid,
		      t0);
	assert_int_equal(child_wait(&c), 0);

	c = fsop_hold(uid, "rename", at("a"), at("b"));
	e = expect_ev(&s, MINISPY_OP_RENAME, at("a"), at("b"), c.pid);
	check_process(e, c.pid, uid, t0);
	assert_string_equal(e->new_path, at("b"));
	assert_int_equal(child_wait(&c), 0);

	c = fsop_hold(uid, "unlink", at("b"), NULL);
	check_process(expect_ev(&s, MINISPY_OP_DELETE, at("b"), NULL, c.pid), c.pid, uid,
		      t0);
	assert_int_equal(child_wait(&c), 0);

	c = fsop_hold(uid, "mkdir", at("d"), NULL);
	e = expect_ev(&s, MINISPY_OP_CREATE, at("d"), NULL, c.pid);
	check_process(e, c.pid, uid, t0);
	assert_true(e->flags & MINISPY_F_DIR);
	assert_int_equal(child_wait(&c), 0);

	/* exec: the process becomes the program, so only the pid is known
	 * for certain when the record is made. */
	snprintf(cmd, sizeof(cmd), "cp /bin/true %s && chmod 755 %s", at("t"), at("t"));
	assert_int_equal(system(cmd), 0);
	argv[2] = at("t");
	c = spawn(argv);
	expect_ev(&s, MINISPY_OP_EXEC, at("t"), NULL, c.pid);
	assert_int_equal(child_wait(&c), 0);

	/* Nothing was lost: the seqs so far are 1, 2, 3, ... */
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	svc_close(&s);
}

static void
rename_carries_old_and_new_path(void **state)
{
	struct svc s;
	struct child c;
	struct ev *e;

	(void)state;
	NEED_ROOT();
	assert_int_equal(mkdir(at("d1"), 0777), 0);
	assert_int_equal(mkdir(at("d2"), 0777), 0);
	load(NULL);
	svc_open(&s);
	assert_int_equal(fsop("create", at("d1/f"), NULL), 0);
	c = fsop_hold(0, "rename", at("d1/f"), at("d2/g"));
	e = expect_ev(&s, MINISPY_OP_RENAME, at("d1/f"), NULL, c.pid);
	assert_string_equal(e->new_path, at("d2/g"));
	assert_int_equal(child_wait(&c), 0);
	c = fsop_hold(0, "rename", at("d2"), at("d3"));
	e = expect_ev(&s, MINISPY_OP_RENAME, at("d2"), NULL, c.pid);
	assert_string_equal(e->new_path, at("d3"));
	assert_true(e->flags & MINISPY_F_DIR);
	assert_int_equal(child_wait(&c), 0);
	svc_close(&s);
}

/* param.process = false: the pid only, nothing read from /proc. */
static void
without_process_details_only_the_pid_is_given(void **state)
{
	const char *kv[] = { "ops", "create", "process", "false", NULL };
	struct svc s;
	struct child c;
	struct ev *e;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open(&s);
	c = fsop_hold(4321, "create", at("a"), NULL);
	e = expect_ev(&s, MINISPY_OP_CREATE, at("a"), NULL, c.pid);
	assert_int_equal(e->uid, MINISPY_UID_UNKNOWN);
	assert_false(e->flags & MINISPY_F_VERIFIED);
	assert_string_equal(e->exe, "");
	assert_string_equal(e->comm, "");
	assert_int_equal(child_wait(&c), 0);
	svc_close(&s);
}

static void
put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* An EVENT record for "/a" made by hand from the header's table. */
static size_t
hand_made_event(uint8_t *b)
{
	memset(b, 0, 128);
	put32(b, MINISPY_RECORD_MAGIC);
	put16(b + 4, MINISPY_RECORD_VERSION);
	put16(b + 6, MINISPY_REC_EVENT);
	put32(b + 8, 80 + 2 + 4);
	put32(b + 56, 77);
	put16(b + 64, MINISPY_OP_CREATE);
	put16(b + 68, 2);
	memcpy(b + 80, "/a", 3);
	return 86;
}

/* The decoder services use: exact sizes, terminated strings, known
 * versions and types (no root needed). */
static void
record_decoder_checks_every_size_and_string(void **state)
{
	uint8_t b[128];
	struct minispy_record r = { 0 };
	size_t n;

	(void)state;
	n = hand_made_event(b);
	assert_int_equal(minispy_record_decode(b, n, &r), 0);
	assert_int_equal(r.type, MINISPY_REC_EVENT);
	assert_string_equal(r.event.path, "/a");
	assert_null(r.event.new_path);
	assert_null(r.event.exe);
	assert_int_equal(r.event.pid, 77);

	assert_int_equal(minispy_record_decode(b, n - 1, &r), -EBADMSG); /* size */
	put32(b + 8, (uint32_t)n + 1);
	assert_int_equal(minispy_record_decode(b, n + 1, &r), -EBADMSG); /* strings */
	n = hand_made_event(b);
	b[82] = 'x'; /* path not terminated where its length says */
	assert_int_equal(minispy_record_decode(b, n, &r), -EBADMSG);
	n = hand_made_event(b);
	put16(b + 70, 1); /* new_path "b" ... */
	b[83] = 'b';
	put32(b + 8, (uint32_t)n + 1);
	put16(b + 64, MINISPY_OP_RENAME);
	assert_int_equal(minispy_record_decode(b, n + 1, &r), 0);
	assert_string_equal(r.event.new_path, "b");
	put16(b + 64, MINISPY_OP_CREATE); /* ... is for renames only */
	assert_int_equal(minispy_record_decode(b, n + 1, &r), -EBADMSG);
	n = hand_made_event(b);
	put16(b + 64, MINISPY_OP_COUNT_);
	assert_int_equal(minispy_record_decode(b, n, &r), -EBADMSG);
	n = hand_made_event(b);
	put16(b + 4, MINISPY_RECORD_VERSION + 1);
	assert_int_equal(minispy_record_decode(b, n, &r), -EPROTONOSUPPORT);
	n = hand_made_event(b);
	b[0] ^= 1;
	assert_int_equal(minispy_record_decode(b, n, &r), -EBADMSG);

	/* LOSS: 64 bytes, a run that makes sense. */
	memset(b, 0, 64);
	put32(b, MINISPY_RECORD_MAGIC);
	put16(b + 4, MINISPY_RECORD_VERSION);
	put16(b + 6, MINISPY_REC_LOSS);
	put32(b + 8, 64);
	b[32] = 3; /* count */
	b[40] = 5; /* first */
	b[48] = 7; /* last */
	put32(b + 56, MINISPY_LOSS_QUEUE);
	assert_int_equal(minispy_record_decode(b, 64, &r), 0);
	assert_int_equal(r.loss.count, 3);
	assert_int_equal(r.loss.first_seq, 5);
	assert_int_equal(r.loss.last_seq, 7);
	b[40] = 8; /* first > last */
	assert_int_equal(minispy_record_decode(b, 64, &r), -EBADMSG);
}

/* A LOSS record made by hand: version, cause, count, first, last, notices. */
static void
hand_made_loss(uint8_t *b, uint16_t version, uint32_t cause, uint8_t count, uint8_t first,
	       uint8_t last, uint32_t notices)
{
	memset(b, 0, 64);
	put32(b, MINISPY_RECORD_MAGIC);
	put16(b + 4, version);
	put16(b + 6, MINISPY_REC_LOSS);
	put32(b + 8, 64);
	b[16] = cause == MINISPY_LOSS_KERNEL || cause == MINISPY_LOSS_ENGINE ? 9 : 0;
	b[32] = count;
	b[40] = first;
	b[48] = last;
	put32(b + 56, cause);
	put32(b + 60, notices);
}

/*
 * Version 2 adds unknown paths, the ENGINE cause and loss-run notices;
 * the decoder reads both versions, and a version 1 record must not use
 * what version 2 added (no root needed).
 */
static void
record_decoder_reads_versions_1_and_2(void **state)
{
	uint8_t b[128];
	struct minispy_record r = { 0 };
	size_t n;

	(void)state;
	n = hand_made_event(b);
	put16(b + 4, 1);
	assert_int_equal(minispy_record_decode(b, n, &r), 0); /* as before */
	put16(b + 4, 0);
	assert_int_equal(minispy_record_decode(b, n, &r), -EPROTONOSUPPORT);
	put16(b + 4, 3);
	assert_int_equal(minispy_record_decode(b, n, &r), -EPROTONOSUPPORT);

	/* An unknown path: empty, flagged, version 2 only. */
	memset(b, 0, sizeof(b));
	put32(b, MINISPY_RECORD_MAGIC);
	put16(b + 4, 2);
	put16(b + 6, MINISPY_REC_EVENT);
	put32(b + 8, 84);
	b[48] = 42; /* ino */
	put16(b + 64, MINISPY_OP_ATTRIB);
	put16(b + 66, MINISPY_F_PATH_UNKNOWN);
	assert_int_equal(minispy_record_decode(b, 84, &r), 0);
	assert_string_equal(r.event.path, "");
	assert_true(r.event.flags & MINISPY_F_PATH_UNKNOWN);
	assert_int_equal(r.event.ino, 42);
	put16(b + 4, 1);
	assert_int_equal(minispy_record_decode(b, 84, &r), -EBADMSG);
	put16(b + 4, 2);
	put16(b + 66, 0); /* empty without the flag */
	assert_int_equal(minispy_record_decode(b, 84, &r), -EBADMSG);
	n = hand_made_event(b); /* the flag with a path */
	put16(b + 66, MINISPY_F_PATH_UNKNOWN);
	assert_int_equal(minispy_record_decode(b, n, &r), -EBADMSG);
	put16(b + 64, MINISPY_OP_RENAME); /* a rename's new path unknown */
	assert_int_equal(minispy_record_decode(b, n, &r), 0);
	assert_string_equal(r.event.path, "/a");
	assert_null(r.event.new_path);

	/* ENGINE notices: version 2, a seq of their own, no range. */
	hand_made_loss(b, 2, MINISPY_LOSS_ENGINE, 3, 0, 0, 0);
	assert_int_equal(minispy_record_decode(b, 64, &r), 0);
	assert_int_equal(r.loss.cause, MINISPY_LOSS_ENGINE);
	assert_int_equal(r.loss.seq, 9);
	assert_int_equal(r.loss.count, 3);
	hand_made_loss(b, 1, MINISPY_LOSS_ENGINE, 3, 0, 0, 0);
	assert_int_equal(minispy_record_decode(b, 64, &r), -EBADMSG);
	hand_made_loss(b, 2, MINISPY_LOSS_ENGINE, 3, 1, 3, 0);
	assert_int_equal(minispy_record_decode(b, 64, &r), -EBADMSG);
	hand_made_loss(b, 2, MINISPY_LOSS_KERNEL, 0, 0, 0, MINISPY_NOTICE_KERNEL);
	assert_int_equal(minispy_record_decode(b, 64, &r), -EBADMSG);

	/* Runs name the notices they swallowed: version 2 only. */
	hand_made_loss(b, 2, MINISPY_LOSS_QUEUE, 3, 5, 7, MINISPY_NOTICE_KERNEL);
	assert_int_equal(minispy_record_decode(b, 64, &r), 0);
	assert_int_equal(r.loss.notices, MINISPY_NOTICE_KERNEL);
	hand_made_loss(b, 1, MINISPY_LOSS_QUEUE, 3, 5, 7, MINISPY_NOTICE_KERNEL);
	assert_int_equal(minispy_record_decode(b, 64, &r), -EBADMSG);
	hand_made_loss(b, 2, MINISPY_LOSS_BACKLOG, 3, 5, 7, 0x4);
	assert_int_equal(minispy_record_decode(b, 64, &r), -EBADMSG);
	hand_made_loss(b, 1, MINISPY_LOSS_BACKLOG, 3, 5, 7, 0);
	assert_int_equal(minispy_record_decode(b, 64, &r), 0);
	assert_int_equal(r.loss.notices, 0);
}

/* ---- what is reported: operations and patterns, per instance ---- */

static void
op_mask_and_patterns_select_records_per_instance(void **state)
{
	char include[512];
	const char *kv[] = {
		"ops",
		"create,rename",
		"include",
		include,
		"exclude",
		"*.tmp",
		"instance.two.path",
		at("two"),
		"instance.two.ops",
		"delete",
		"instance.two.include",
		at("two"),
		NULL,
	};
	struct svc s;

	(void)state;
	NEED_ROOT();
	assert_int_equal(mkdir(at("one"), 0777), 0);
	assert_int_equal(mkdir(at("one/keep"), 0777), 0);
	assert_int_equal(mkdir(at("one/other"), 0777), 0);
	assert_int_equal(mkdir(at("two"), 0777), 0);
	snprintf(include, sizeof(include), "%s/one/keep, *.conf", wdir);
	kv[7] = at("two");
	kv[11] = at("two");
	assert_int_equal(try_load("minispy", kv, &g_f), 0);
	assert_int_equal(flt_attach(g_f, at("one"), FLT_INSTANCE_SUBTREE), 0);
	assert_int_equal(flt_attach(g_f, at("two"), FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(g_f);
	svc_open(&s);

	assert_int_equal(fsop("create", at("one/keep/a"), NULL), 0);       /* yes */
	assert_int_equal(fsop("create", at("one/keep/b.tmp"), NULL), 0);   /* excluded */
	assert_int_equal(fsop("create", at("one/other/x.conf"), NULL), 0); /* *.conf */
	assert_int_equal(fsop("create", at("one/other/y"), NULL), 0);  /* not included */
	assert_int_equal(fsop("write", at("one/keep/a"), "hello"), 0); /* not an op */
	/* a rename is reported when either name is */
	assert_int_equal(fsop("rename", at("one/other/y"), at("one/keep/y")), 0);
	assert_int_equal(fsop("rename", at("one/keep/b.tmp"), at("one/other/b2")), 0);
	/* instance two: its own ops and include, the default exclude */
	assert_int_equal(fsop("create", at("two/z"), NULL), 0);
	assert_int_equal(fsop("create", at("two/q.tmp"), NULL), 0);
	assert_int_equal(fsop("unlink", at("two/z"), NULL), 0);
	assert_int_equal(fsop("unlink", at("two/q.tmp"), NULL), 0);
	sync_events();
	svc_drain(&s);

	assert_true(find_ev(&s, MINISPY_OP_CREATE, at("one/keep/a"), NULL, 0) >= 0);
	assert_true(find_ev(&s, MINISPY_OP_CREATE, at("one/other/x.conf"), NULL, 0) >= 0);
	assert_true(find_ev(&s, MINISPY_OP_RENAME, at("one/other/y"), at("one/keep/y"),
			    0) >= 0);
	assert_true(find_ev(&s, MINISPY_OP_DELETE, at("two/z"), NULL, 0) >= 0);
	if (count_events(&s) != 4) {
		for (size_t i = 0; i < s.n; i++)
			print_message("got %s %s %s\n", minispy_op_name(s.v[i].op),
				      s.v[i].path, s.v[i].new_path);
		fail_msg("expected exactly 4 records, got %zu", count_events(&s));
	}
	svc_close(&s);
}

/* Runs fn with stderr going to a file; returns what was written. */
static char *
capture_stderr_of(int (*fn)(void *), void *arg, int *ret)
{
	char *buf = calloc(1, 8192);
	int saved, fd;
	ssize_t n;

	assert_non_null(buf);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	*ret = fn(arg);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, buf, 8191, 0);
	close(fd);
	assert_true(n >= 0);
	return buf;
}

struct load_try {
	const char *name;
	const char *const *kv;
	flt_filter *f;
};

static int
load_try_fn(void *arg)
{
	struct load_try *t = arg;

	return try_load(t->name, t->kv, &t->f);
}

static void
bad_parameters_refuse_the_load_with_a_message(void **state)
{
	static const struct {
		const char *key, *value, *says;
	} bad[] = {
		{ "queue_size", "0", "param.queue_size must be a number" },
		{ "backlog", "lots", "param.backlog must be a number" },
		{ "coalesce_us", "2001", "param.coalesce_us must be a number 0..2000" },
		{ "ops", "open,bogus", "unknown operation 'bogus'" },
		{ "include", "srv/*.conf", "must start with '/'" },
		{ "exclude", "*.swp,,*.tmp", "empty pattern" },
		{ "exclude_services", "maybe",
		  "param.exclude_services must be true or false" },
		{ "port", "a/b", "param.port must be a port name" },
		{ "max_connections", "1000",
		  "param.max_connections must be a number 1..64" },
		{ "port_mode", "0999", "param.port_mode must be an octal mode" },
		{ "instance.web.ops", "open", "param.instance.web.path is missing" },
		{ "instance.web.colour", "red", "unknown instance setting 'colour'" },
		{ "instance.Web.path", "/srv", "LABEL made of a-z 0-9 _ -" },
		{ "frobnicate", "1", "unknown parameter param.frobnicate" },
	};
	const char *kv_port[] = { "port", "minispy", NULL };
	struct load_try t;
	char *out;
	int r;

	(void)state;
	NEED_ROOT();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *kv[] = { bad[i].key, bad[i].value, NULL };

		t = (struct load_try){ .name = "minispy", .kv = kv };
		out = capture_stderr_of(load_try_fn, &t, &r);
		if (r != -EINVAL || t.f || !strstr(out, bad[i].says) ||
		    !strstr(out, "error"))
			fail_msg("param.%s = %s: result %d, log '%s' (expected -EINVAL "
				 "and "
				 "'%s')",
				 bad[i].key, bad[i].value, r, out, bad[i].says);
		free(out);
	}
	/* Nothing was left registered: the name is free, the load works. */
	load(NULL);
	/* A second minispy on a live port's name is refused, and says how
	 * to fix it. */
	t = (struct load_try){ .name = "minispy2", .kv = kv_port };
	out = capture_stderr_of(load_try_fn, &t, &r);
	assert_int_equal(r, -EEXIST);
	assert_null(t.f);
	assert_non_null(strstr(out, "param.port"));
	free(out);
}

/* ---- the backlog ---- */

static void
backlog_delivered_oldest_first_on_connect(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	gen("g", 50);
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	assert_int_equal(s.n, 50);
	for (int i = 0; i < 50; i++) {
		char name[16];

		snprintf(name, sizeof(name), "g%05d", i);
		assert_int_equal(s.v[i].type, MINISPY_REC_EVENT);
		assert_int_equal(s.v[i].seq, (uint64_t)i + 1);
		assert_string_equal(s.v[i].path, at(name));
	}
	st = svc_stats(&s);
	assert_int_equal(st.records, 50);
	assert_int_equal(st.backlog_queued, 50);
	assert_int_equal(st.backlog_delivered, 50);
	assert_int_equal(st.backlog_dropped, 0);
	assert_int_equal(st.loss_records_sent, 0);
	assert_int_equal(st.backlog_now, 0);
	assert_int_equal(st.conn_sent, 50);
	svc_close(&s);
}

/* The sender counts a batch as sent when the port call returns, which
 * can be after the service has read it: wait for the counters to settle. */
static struct minispy_stats
svc_stats_settled(struct svc *s, uint64_t sent)
{
	int64_t end = tu_now_ms() + WAIT_MS;
	struct minispy_stats st;

	while ((st = svc_stats(s)).conn_pending != 0 || st.conn_sent < sent) {
		if (tu_now_ms() > end)
			fail_msg("minispy still holds %llu records, %llu sent",
				 (unsigned long long)st.conn_pending,
				 (unsigned long long)st.conn_sent);
		usleep(1000);
	}
	return st;
}

/* A service that takes batches gets the backlog many records to a port
 * record (a frame holds at most 511), every record exactly once and in
 * order. */
static void
backlog_reaches_a_batching_service_in_batches(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	static struct filter_message m[512];
	static uint8_t buf[65536];
	int64_t end = tu_now_ms() + WAIT_MS;
	struct minispy_stats st;
	struct svc s = { 0 };
	int most = 0;

	(void)state;
	NEED_ROOT();
	load(kv);
	gen("g", 600);
	sync_events();
	assert_int_equal(filter_connect_communication_port(
				 "minispy", FILTER_CONNECT_BATCHES, NULL, 0, &s.p),
			 0);
	while (s.n < 600) {
		int n = filter_get_messages(s.p, m, 512, buf, sizeof(buf), 100);

		if (n == -ETIMEDOUT) {
			if (tu_now_ms() > end)
				fail_msg("only %zu of 600 records arrived", s.n);
			continue;
		}
		assert_true(n > 0);
		most = n > most ? n : most;
		for (int i = 0; i < n; i++)
			svc_add(&s, &m[i].header, m[i].data, (int)m[i].length);
	}
	assert_int_equal(s.n, 600);
	assert_true(most > 1);    /* several records in one port record */
	assert_true(most <= 511); /* at most one frame's worth */
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	st = svc_stats_settled(&s, 600);
	assert_int_equal(st.conn_sent, 600);
	assert_int_equal(st.backlog_delivered, 600);
	assert_int_equal(st.conn_pending, 0);
	print_message("600 records in port records of up to %d\n", most);
	svc_close(&s);
}

/* With param.coalesce_us, records still all arrive, once, in order, and
 * a lone record waits at most about that long. */
static void
coalescing_sender_delivers_everything_in_order(void **state)
{
	const char *kv[] = { "ops", "create", "coalesce_us", "2000", NULL };
	static struct filter_message m[512];
	static uint8_t buf[65536];
	int64_t end, t0;
	struct svc s = { 0 };

	(void)state;
	NEED_ROOT();
	load(kv);
	assert_int_equal(filter_connect_communication_port(
				 "minispy", FILTER_CONNECT_BATCHES, NULL, 0, &s.p),
			 0);
	gen("c", 300);
	end = tu_now_ms() + WAIT_MS;
	while (s.n < 300) {
		int n = filter_get_messages(s.p, m, 512, buf, sizeof(buf), 100);

		if (n == -ETIMEDOUT) {
			if (tu_now_ms() > end)
				fail_msg("only %zu of 300 records arrived", s.n);
			continue;
		}
		assert_true(n > 0);
		for (int i = 0; i < n; i++)
			svc_add(&s, &m[i].header, m[i].data, (int)m[i].length);
	}
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	/* A lone record: sent after the 2 ms wait, not held longer. */
	t0 = tu_now_ms();
	gen("lone", 1);
	while (s.n < 301) {
		int n = filter_get_messages(s.p, m, 512, buf, sizeof(buf), WAIT_MS);

		assert_true(n > 0);
		for (int i = 0; i < n; i++)
			svc_add(&s, &m[i].header, m[i].data, (int)m[i].length);
	}
	print_message("a lone record took %lld ms (process start included)\n",
		      (long long)(tu_now_ms() - t0));
	assert_true(tu_now_ms() - t0 < WAIT_MS);
	assert_int_equal(s.n, 301);
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	assert_int_equal(svc_stats_settled(&s, 301).conn_sent, 301);
	svc_close(&s);
}

static void
backlog_overflow_gives_exactly_one_loss_record(void **state)
{
	const char *kv[] = { "ops", "create", "backlog", "8", NULL };
	struct minispy_stats st;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	gen("g", 20);
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	assert_int_equal(s.n, 9);
	assert_int_equal(s.v[0].type, MINISPY_REC_LOSS);
	assert_int_equal(s.v[0].cause, MINISPY_LOSS_BACKLOG);
	assert_int_equal(s.v[0].count, 12);
	assert_int_equal(s.v[0].first, 1);
	assert_int_equal(s.v[0].last, 12);
	for (int i = 1; i < 9; i++) {
		char name[16];

		snprintf(name, sizeof(name), "g%05d", i + 11);
		assert_int_equal(s.v[i].type, MINISPY_REC_EVENT);
		assert_int_equal(s.v[i].seq, (uint64_t)i + 12);
		assert_string_equal(s.v[i].path, at(name));
	}
	st = svc_stats(&s);
	assert_int_equal(st.backlog_dropped, 12);
	assert_int_equal(st.backlog_delivered, 8);
	assert_int_equal(st.loss_records_sent, 1);
	assert_int_equal(st.conn_loss_records_sent, 1);
	/* Connected now: the next record follows with no gap. */
	gen("h", 1);
	sync_events();
	svc_drain(&s);
	assert_int_equal(s.n, 10);
	assert_int_equal(s.v[9].seq, 21);
	assert_int_equal(check_seq_accounting(&s, 1), 12);
	svc_close(&s);
}

/* The filter's own view (the counters hook), without a connection. */
static uint64_t
filter_counter(const char *name)
{
	struct flt_counter c[FLT_FILTER_MAX_COUNTERS];
	size_t n = 0;

	assert_int_equal(flt_filter_get_counters(g_f, c, FLT_FILTER_MAX_COUNTERS, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(c[i].name, name))
			return c[i].value;
	fail_msg("minispy has no counter named %s", name);
	return 0;
}

static int
no_connection_left(void *arg)
{
	(void)arg;
	return filter_counter("connections_now") == 0;
}

static void
wait_no_connection(void)
{
	if (!tu_wait_until(no_connection_left, NULL, WAIT_MS))
		fail_msg("minispy still counts %llu connected services",
			 (unsigned long long)filter_counter("connections_now"));
}

/* The last service to leave gives its unsent records back to the backlog;
 * the next one gets them, in order, before anything newer. */
static void
unsent_records_of_the_last_service_return_to_the_backlog(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open(&s);
	/* Far more than its socket holds: most stay in the queue. */
	gen("g", 1500);
	sync_events();
	svc_close(&s);
	wait_no_connection();
	gen("h", 10);
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	st = svc_stats(&s);
	assert_true(st.returned > 0);
	assert_int_equal(st.connections, 2);
	/* The new service gets a gap-free tail ending with the h files, and
	 * it starts right after the last record the first one was sent:
	 * only what sat unread in its socket is gone. */
	assert_true(s.n > 10);
	assert_int_equal(check_seq_accounting(&s, s.v[0].seq), 0);
	assert_int_equal(s.v[s.n - 1].seq, 1510);
	assert_string_equal(s.v[s.n - 1].path, at("h00009"));
	assert_int_equal(s.n, st.backlog_delivered);
	assert_int_equal(s.v[0].seq, st.sent - s.n + 1);
	assert_int_equal(st.dropped + st.backlog_dropped + st.discarded, 0);
	svc_close(&s);
}

/* ---- a slow service ---- */

static void
full_queue_drops_and_reports_the_loss_once_read(void **state)
{
	const char *kv[] = { "ops", "create", "queue_size", "16", NULL };
	const int n = 3000;
	struct minispy_stats st;
	uint64_t lost, losses = 0;
	struct svc s;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open(&s); /* and does not read */
	gen("g", n);
	sync_events();
	st = svc_stats(&s);
	assert_int_equal(st.records, (uint64_t)n);
	assert_true(st.conn_dropped > 0);
	assert_int_equal(st.dropped, st.conn_dropped);
	assert_int_equal(st.conn_queued + st.conn_dropped, (uint64_t)n);

	svc_drain(&s);
	lost = check_seq_accounting(&s, 1);
	for (size_t i = 0; i < s.n; i++)
		losses += s.v[i].type == MINISPY_REC_LOSS;
	assert_true(losses >= 1);
	assert_int_equal(lost, st.conn_dropped);
	assert_int_equal(count_events(&s) + lost, (uint64_t)n);
	st = svc_stats(&s);
	assert_int_equal(st.conn_loss_records_sent, losses);
	assert_int_equal(st.conn_sent, count_events(&s));

	/* Room again: the next record comes straight after. */
	gen("h", 1);
	sync_events();
	svc_drain(&s);
	assert_int_equal(s.v[s.n - 1].type, MINISPY_REC_EVENT);
	assert_int_equal(s.v[s.n - 1].seq, (uint64_t)n + 1);
	assert_int_equal(check_seq_accounting(&s, 1), lost);
	svc_close(&s);
}

static void
two_services_each_get_every_record(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct svc a, b;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open(&a);
	svc_open(&b);
	gen("g", 200);
	sync_events();
	svc_drain(&a);
	svc_drain(&b);
	assert_int_equal(a.n, 200);
	assert_int_equal(b.n, 200);
	assert_int_equal(check_seq_accounting(&a, 1), 0);
	assert_int_equal(check_seq_accounting(&b, 1), 0);
	for (size_t i = 0; i < 200; i++) {
		assert_int_equal(a.v[i].seq, b.v[i].seq);
		assert_string_equal(a.v[i].path, b.v[i].path);
	}
	assert_int_equal(svc_stats(&a).connections_now, 2);
	svc_close(&a);
	svc_close(&b);
}

/* ---- services' own processes ---- */

static int
one_connection_left(void *arg)
{
	return svc_stats(arg).connections_now == 1;
}

static void
run_exclude_service(struct svc *s, const char *dir, bool excluded)
{
	const char *argv[] = { self_path, "--svc-exclude", "minispy", dir, NULL };
	char path[PATH_MAX], control[PATH_MAX];
	struct child c = spawn(argv);

	assert_int_equal(child_hear(&c), 'c');
	assert_int_equal(child_hear(&c), 'x');
	snprintf(path, sizeof(path), "%s/while-connected", dir);
	snprintf(control, sizeof(control), "%s/control", dir);
	assert_int_equal(fsop("create", control, NULL), 0);
	sync_events();
	svc_drain(s);
	assert_true(find_ev(s, MINISPY_OP_CREATE, control, NULL, 0) >= 0);
	if (excluded)
		assert_int_equal(find_ev(s, MINISPY_OP_CREATE, path, NULL, c.pid), -1);
	else
		expect_ev(s, MINISPY_OP_CREATE, path, NULL, c.pid);

	/* Once it has disconnected, it is reported again. */
	child_say(&c, 'g');
	assert_int_equal(child_hear(&c), 'd');
	if (!tu_wait_until(one_connection_left, s, WAIT_MS))
		fail_msg("the service's disconnect callback did not run");
	child_say(&c, 'g');
	assert_int_equal(child_hear(&c), 'y');
	snprintf(path, sizeof(path), "%s/after-close", dir);
	expect_ev(s, MINISPY_OP_CREATE, path, NULL, c.pid);
	assert_int_equal(child_wait(&c), 0);
}

static void
services_own_processes_are_excluded_unless_told_otherwise(void **state)
{
	const char *kv1[] = { "ops", "create", NULL };
	const char *kv2[] = { "ops", "create", "exclude_services", "false", NULL };
	struct svc s;

	(void)state;
	NEED_ROOT();
	assert_int_equal(mkdir(at("1"), 0777), 0);
	assert_int_equal(mkdir(at("2"), 0777), 0);
	load(kv1);
	svc_open(&s);
	run_exclude_service(&s, at("1"), true);
	svc_close(&s);
	unload();

	load(kv2);
	svc_open(&s);
	run_exclude_service(&s, at("2"), false);
	svc_close(&s);
}

/* ---- confirmation and DEPARTED losses ---- */

static void
svc_open_confirming(struct svc *s)
{
	uint32_t ctx[2] = { MINISPY_RECORD_MAGIC, MINISPY_CONNECT_CONFIRM };

	*s = (struct svc){ 0 };
	assert_int_equal(
		filter_connect_communication_port("minispy", 0, ctx, sizeof(ctx), &s->p),
		0);
}

static int
svc_confirm(struct svc *s, uint64_t n)
{
	uint8_t in[16];
	uint32_t magic = MINISPY_RECORD_MAGIC, cmd = MINISPY_CMD_CONFIRM;
	size_t len = 0;

	memcpy(in, &magic, 4);
	memcpy(in + 4, &cmd, 4);
	memcpy(in + 8, &n, 8);
	return filter_send_message(s->p, in, sizeof(in), NULL, 0, &len);
}

struct unconf_wait {
	struct svc *s;
	uint64_t n;
};

static int
has_unconfirmed(void *arg)
{
	struct unconf_wait *w = arg;

	return svc_stats(w->s).conn_unconfirmed == w->n;
}

static void
wait_unconfirmed(struct svc *s, uint64_t n)
{
	struct unconf_wait w = { s, n };

	if (!tu_wait_until(has_unconfirmed, &w, WAIT_MS))
		fail_msg("the filter holds %llu unconfirmed records, not %llu",
			 (unsigned long long)svc_stats(s).conn_unconfirmed,
			 (unsigned long long)n);
}

static void
create_files(const char *prefix, int n)
{
	char name[64];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		assert_int_equal(fsop("create", at(name), NULL), 0);
	}
	sync_events();
}

/*
 * A confirming service A reads 2 of 5 records, confirms them and dies
 * after service B connected: the 3 it never confirmed were made before B
 * existed, so B gets one DEPARTED loss record naming exactly them. Bad
 * confirmations are refused and counted.
 */
static void
unconfirmed_records_of_a_departed_service_are_reported(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc a, b;
	int lost = -1;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open_confirming(&a);
	create_files("x", 5); /* seq 1-5 */
	wait_unconfirmed(&a, 5);
	assert_int_equal(svc_pump(&a, WAIT_MS), 0);
	assert_int_equal(svc_pump(&a, WAIT_MS), 0);
	assert_int_equal(a.v[0].seq, 1);
	assert_int_equal(a.v[1].seq, 2);
	assert_int_equal(svc_confirm(&a, 2), 0);
	assert_int_equal(svc_confirm(&a, 1), -ERANGE); /* backwards */
	assert_int_equal(svc_confirm(&a, 6), -ERANGE); /* more than was sent */
	st = svc_stats(&a);
	assert_int_equal(st.conn_confirmed, 2);
	assert_int_equal(st.conn_unconfirmed, 3);
	assert_int_equal(st.bad_calls, 2);

	svc_open(&b);
	create_files("y", 2); /* seq 6-7: both services get them */
	wait_unconfirmed(&a, 5);
	svc_close(&a);
	if (!tu_wait_until(one_connection_left, &b, WAIT_MS))
		fail_msg("A's disconnect callback did not run");
	svc_drain(&b);
	for (size_t i = 0; i < b.n; i++) {
		if (b.v[i].type != MINISPY_REC_LOSS)
			continue;
		assert_int_equal(lost, -1); /* exactly one */
		lost = (int)i;
	}
	assert_true(lost >= 0);
	assert_int_equal(b.v[lost].cause, MINISPY_LOSS_DEPARTED);
	assert_int_equal(b.v[lost].count, 3);
	assert_int_equal(b.v[lost].first, 3);
	assert_int_equal(b.v[lost].last, 5);
	expect_ev(&b, MINISPY_OP_CREATE, at("y0"), NULL, 0);
	expect_ev(&b, MINISPY_OP_CREATE, at("y1"), NULL, 0);
	st = svc_stats(&b);
	assert_int_equal(st.departed, 3);
	assert_int_equal(st.unconfirmed, 5); /* x2-x4, y0, y1 */
	assert_int_equal(st.discarded, 2);   /* y0, y1: B has them */
	svc_close(&b);
}

/* A confirming service that dies alone: what it did not confirm goes
 * back to the backlog and the next service gets it again, same seqs. */
static void
unconfirmed_records_of_the_last_service_are_delivered_again(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	struct minispy_stats st;
	struct svc a, b;

	(void)state;
	NEED_ROOT();
	load(kv);
	svc_open_confirming(&a);
	create_files("z", 3); /* seq 1-3 */
	wait_unconfirmed(&a, 3);
	assert_int_equal(svc_pump(&a, WAIT_MS), 0); /* read, never confirmed */
	svc_close(&a);
	/* B must connect after A's disconnect callback has run, or A is not
	 * the last service and its records are reported departed instead. */
	wait_no_connection();
	svc_open(&b);
	svc_drain(&b);
	assert_int_equal(b.n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(b.v[i].type, MINISPY_REC_EVENT);
		assert_int_equal(b.v[i].seq, i + 1);
	}
	st = svc_stats(&b);
	assert_int_equal(st.unconfirmed, 3);
	assert_int_equal(st.returned, 3);
	assert_int_equal(st.confirmed, 0);
	svc_close(&b);
}

/* ---- the seed: services stopped and started at any moment ---- */

static int
cycles_wanted(void)
{
	const char *e = getenv("FLTMGR_MINISPY_CYCLES");

	return e && atoi(e) > 0 ? atoi(e) : 200;
}

static void
seed_services_killed_and_stopped_while_events_flow(void **state)
{
	const char *load_argv[] = { self_path, "--load", wdir, NULL };
	/* Small queues, so that stopped services overflow theirs and the
	 * backlog overflows between lives: every loss path runs. */
	const char *kv[] = { "queue_size", "256", "backlog", "1024", NULL };
	const int cycles = cycles_wanted();
	unsigned seed = 4242;
	int statuses[CHURN_MODES_] = { 0 };
	struct flt_engine_stats es;
	struct minispy_stats st;
	struct child loadgen;
	struct svc s;
	int own = 0;

	(void)state;
	NEED_ROOT();
	load(kv);
	loadgen = spawn(load_argv);
	for (int i = 0; i < cycles; i++) {
		char modebuf[8], seedbuf[16];
		const char *argv[] = { self_path, "--svc-churn", "minispy",
				       modebuf,   seedbuf,       NULL };
		int mode = i % CHURN_MODES_, status;
		struct child c;

		snprintf(modebuf, sizeof(modebuf), "%d", mode);
		snprintf(seedbuf, sizeof(seedbuf), "%u", rand_r(&seed));
		c = spawn(argv);
		if (child_hear(&c) != 'r')
			fail_msg("cycle %d: the service could not connect (status %d)", i,
				 child_wait(&c));
		if (mode == CHURN_KILLED) {
			usleep(rand_r(&seed) % 3000);
			kill(c.pid, SIGKILL);
		} else if (mode == CHURN_STOPPED) {
			kill(c.pid, SIGSTOP);
			usleep(rand_r(&seed) % 5000);
			if (i & 1)
				kill(c.pid, SIGCONT);
			kill(c.pid, SIGKILL);
		}
		/* Now and then a second service of our own comes and goes. */
		if (i % 10 == 5) {
			svc_open(&s);
			for (int k = 0; k < 20; k++)
				(void)svc_pump(&s, 1);
			svc_close(&s);
			own++;
		}
		status = child_wait(&c);
		if (mode == CHURN_CLOSE || mode == CHURN_EXIT)
			assert_int_equal(status, 0);
		else
			assert_int_equal(status, 128 + SIGKILL);
		statuses[mode]++;
	}
	kill(loadgen.pid, SIGKILL);
	assert_int_equal(child_wait(&loadgen), 128 + SIGKILL);
	sync_events(); /* the kernel queue has drained */

	/* The filter still works, and its books balance. */
	svc_open(&s);
	assert_int_equal(fsop("create", at("final"), NULL), 0);
	expect_ev(&s, MINISPY_OP_CREATE, at("final"), NULL, 0);
	sync_events();
	if (!tu_wait_until(one_connection_left, &s, WAIT_MS))
		fail_msg("services' disconnect callbacks did not all run");
	svc_drain(&s);
	st = svc_stats(&s);
	assert_int_equal(st.connections, (uint64_t)(cycles + own + 1));
	/* Every copy put in a connection was sent or handed on when its
	 * connection ended; sent-but-unconfirmed copies were handed on too. */
	assert_int_equal(st.sent + st.discarded + st.departed + st.returned -
				 st.unconfirmed,
			 st.queued + st.backlog_delivered);
	assert_int_equal(st.backlog_queued,
			 st.backlog_dropped + st.backlog_delivered + st.backlog_now);
	/* Whatever this service got (backlog and new records) has no
	 * unreported gap. */
	(void)check_seq_accounting(&s, s.v[0].type == MINISPY_REC_EVENT ? s.v[0].seq
									: s.v[0].first);
	print_message(
		"seed: %d service lives (close %d, exit %d, self-kill %d, killed %d, "
		"stopped %d) + %d in-process; %llu records, %llu sent, %llu "
		"dropped, %llu discarded, %llu returned, %llu backlog dropped, "
		"%llu loss records\n",
		cycles, statuses[0], statuses[1], statuses[2], statuses[3], statuses[4],
		own, (unsigned long long)st.records, (unsigned long long)st.sent,
		(unsigned long long)st.dropped, (unsigned long long)st.discarded,
		(unsigned long long)st.returned, (unsigned long long)st.backlog_dropped,
		(unsigned long long)st.loss_records_sent);
	/* Nothing the engine read was dropped: every notification was
	 * ignored, delivered (with or without its path) or reported lost. */
	assert_int_equal(flt_manager_get_stats(g_m, &es), 0);
	assert_int_equal(es.notification_events, es.notif_ignored + es.notif_resolved +
							 es.notif_unresolved +
							 es.notif_lost);
	assert_int_equal(es.dropped, 0);
	print_message("seed: engine read %llu notifications: %llu ignored, %llu with "
		      "paths, %llu with unknown paths, %llu lost; minispy made %llu "
		      "records with unknown paths\n",
		      (unsigned long long)es.notification_events,
		      (unsigned long long)es.notif_ignored,
		      (unsigned long long)es.notif_resolved,
		      (unsigned long long)es.notif_unresolved,
		      (unsigned long long)es.notif_lost,
		      (unsigned long long)st.unknown_paths);
	svc_close(&s);
}

/* ---- unloading ---- */

struct blocked_get {
	filter_port *p;
	int result;
};

static void *
get_forever(void *arg)
{
	static uint8_t buf[MINISPY_RECORD_MAX];
	struct blocked_get *g = arg;
	struct filter_message_header h;

	do
		g->result = filter_get_message(g->p, &h, buf, sizeof(buf), -1);
	while (g->result >= 0);
	return NULL;
}

static void
unregister_with_a_service_connected_disconnects_it(void **state)
{
	struct blocked_get g;
	filter_port *p2 = NULL;
	pthread_t t;
	struct svc s;
	int r;

	(void)state;
	NEED_ROOT();
	load(NULL);
	svc_open(&s);
	gen("g", 500); /* records in flight, the sender blocked on the socket */
	sync_events();
	g = (struct blocked_get){ .p = s.p, .result = 0 };
	assert_int_equal(pthread_create(&t, NULL, get_forever, &g), 0);
	unload();
	pthread_join(t, NULL);
	assert_int_equal(g.result, -ENOTCONN);
	r = filter_connect_communication_port("minispy", 0, NULL, 0, &p2);
	assert_true(r == -ENOENT || r == -ECONNREFUSED);
	svc_close(&s);
}

static atomic_bool churn_stop;

static void *
connect_churn(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&churn_stop)) {
		uint8_t buf[MINISPY_RECORD_MAX];
		struct filter_message_header h;
		filter_port *p = NULL;

		if (filter_connect_communication_port("minispy", 0, NULL, 0, &p) < 0) {
			usleep(200);
			continue;
		}
		for (int k = (int)(rand_r(&seed) % 8); k > 0; k--)
			if (filter_get_message(p, &h, buf, sizeof(buf), 1) == -ENOTCONN)
				break;
		filter_close_port(p);
	}
	return NULL;
}

static int
fds_at_most(void *arg)
{
	return tu_count_fds() <= *(int *)arg;
}

static void
unload_races_connects_and_events(void **state)
{
	const char *load_argv[] = { self_path, "--load", wdir, NULL };
	unsigned seed = 99;
	int fds = -1;

	(void)state;
	NEED_ROOT();
	for (int round = 0; round < 15; round++) {
		struct child loadgen;
		pthread_t t[2];

		load(NULL);
		loadgen = spawn(load_argv);
		atomic_store(&churn_stop, false);
		for (int i = 0; i < 2; i++)
			assert_int_equal(
				pthread_create(&t[i], NULL, connect_churn,
					       (void *)(uintptr_t)(round * 2 + i)),
				0);
		usleep(rand_r(&seed) % 30000);
		unload();
		atomic_store(&churn_stop, true);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		kill(loadgen.pid, SIGKILL);
		assert_int_equal(child_wait(&loadgen), 128 + SIGKILL);
		/* Round 0 started the engine; after that, nothing may stay
		 * open across a load and unload. The engine's reader holds
		 * each event's pidfd for a moment, so count once it has
		 * drained the queue, at the quietest moment. */
		sync_events();
		if (round == 0) {
			fds = tu_count_fds();
			for (int i = 0; i < 50; i++, usleep(1000))
				if (tu_count_fds() < fds)
					fds = tu_count_fds();
		} else if (!tu_wait_until(fds_at_most, &fds, WAIT_MS)) {
			fail_msg("round %d: %d descriptors open, %d before", round,
				 tu_count_fds(), fds);
		}
	}
}

/* ---- the kernel's own losses ---- */

static atomic_int block_first;

static void
blocking_post(const struct flt_callback_data *d, void *ic, void *cc)
{
	(void)d;
	(void)ic;
	(void)cc;
	/* Holds the notification reader until released (bounded). */
	for (int i = 0; i < WAIT_MS && atomic_load(&block_first) == 1; i++)
		usleep(1000);
}

static int
write_sysctl(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * A filter below minispy whose CREATE callback holds the notification
 * reader while block_first is 1, on a notification group whose kernel
 * queue holds only 64 events: creating more files than that while it
 * blocks makes the kernel overflow. Skips if the knob cannot be set.
 */
static flt_filter *
blocker_on_small_kernel_queue(void)
{
	static const char knob[] = "/proc/sys/fs/fanotify/max_queued_events";
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_CREATE, NULL, blocking_post },
	};
	struct flt_registration reg = { .name = "blocker",
					.altitude = "100000",
					.operations = ops,
					.n_operations = 1 };
	char old[32] = { 0 };
	flt_filter *blocker = NULL;
	int fd, r;

	fd = open(knob, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, old, sizeof(old) - 1) <= 0) {
		print_message("skipped: cannot read %s\n", knob);
		skip();
	}
	close(fd);
	/* The queue limit is taken when the group is made, i.e. when the
	 * first filter starts: lower it just for that moment. */
	if (write_sysctl(knob, "64") < 0) {
		print_message("skipped: cannot lower %s\n", knob);
		skip();
	}
	/* Nothing may fail out of the test before the knob is restored. */
	r = flt_register_filter(g_m, &reg, &blocker);
	if (r == 0)
		r = flt_attach(blocker, wdir, FLT_INSTANCE_SUBTREE);
	if (r == 0)
		r = flt_start_filtering(blocker);
	assert_int_equal(write_sysctl(knob, old), 0);
	if (r == -EOPNOTSUPP)
		TU_NEED_KERNEL("names");
	assert_int_equal(r, 0);
	return blocker;
}

/* 300 creates while the reader is held: the kernel keeps 64 and
 * overflows; minispy then makes about 64 records and a KERNEL notice. */
static void
overflow_the_kernel_queue(void)
{
	atomic_store(&block_first, 1);
	gen("g", 300);
	atomic_store(&block_first, 0);
	sync_events();
}

static void
kernel_overflow_becomes_a_loss_record(void **state)
{
	const char *kv[] = { "ops", "create", NULL };
	flt_filter *blocker;
	struct minispy_stats st;
	struct svc s;
	int kernel = -1;

	(void)state;
	NEED_ROOT();
	blocker = blocker_on_small_kernel_queue();
	load(kv);
	svc_open(&s);
	overflow_the_kernel_queue();
	svc_drain(&s);
	for (size_t i = 0; i < s.n; i++)
		if (s.v[i].type == MINISPY_REC_LOSS &&
		    s.v[i].cause == MINISPY_LOSS_KERNEL)
			kernel = (int)i;
	if (kernel < 0)
		fail_msg("no KERNEL loss record among %zu records", s.n);
	assert_true(s.v[kernel].seq > 0);
	assert_true(count_events(&s) < 300);
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	st = svc_stats(&s);
	assert_true(st.kernel_overflows >= 1);
	svc_close(&s);
	flt_unregister_filter(blocker);
}

/* Reads and confirms until the filter holds nothing for s. */
static void
svc_drain_confirming(struct svc *s)
{
	int64_t end = tu_now_ms() + WAIT_MS;

	for (;;) {
		struct minispy_stats st;

		while (svc_pump(s, 0) == 0)
			;
		assert_int_equal(svc_confirm(s, s->n), 0);
		st = svc_stats(s);
		if (st.conn_pending == 0 && st.conn_unconfirmed == 0)
			break;
		if (tu_now_ms() > end)
			fail_msg("minispy still holds %llu records for this service",
				 (unsigned long long)st.conn_pending);
		(void)svc_pump(s, 5);
	}
	while (svc_pump(s, 0) == 0)
		;
}

/* The loss records of s whose run names a KERNEL notice; the index of
 * the last one in *ret_i. */
static int
runs_naming_kernel(const struct svc *s, size_t *ret_i)
{
	int n = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct ev *e = &s->v[i];

		assert_false(e->type == MINISPY_REC_LOSS &&
			     e->cause == MINISPY_LOSS_KERNEL);
		if (e->type == MINISPY_REC_LOSS && (e->notices & MINISPY_NOTICE_KERNEL)) {
			*ret_i = i;
			n++;
		}
	}
	return n;
}

/*
 * The kernel overflows while a service's queue is full: the KERNEL notice
 * is lost with the records around it, but the QUEUE loss record for that
 * run says a kernel-overflow notice was among them. Deterministic: a
 * confirming service that does not confirm holds queue_size records sent
 * and queue_size queued (here 1 and 1), and everything after is dropped.
 */
static void
kernel_overflow_lost_in_a_full_queue_is_named_by_the_run(void **state)
{
	const char *kv[] = { "ops", "create", "queue_size", "1", NULL };
	flt_filter *blocker;
	struct minispy_stats st;
	struct svc s;
	size_t i = 0;

	(void)state;
	NEED_ROOT();
	blocker = blocker_on_small_kernel_queue();
	load(kv);
	svc_open_confirming(&s);
	overflow_the_kernel_queue();
	st = svc_stats(&s);
	assert_true(st.kernel_overflows >= 1);
	/* At most 2 kept (1 if the sender was slow to take the first); the
	 * notice, the last record, is not among them. */
	assert_true(st.records > 2);
	assert_true(st.conn_dropped >= st.records - 2);

	svc_drain_confirming(&s);
	assert_true(runs_naming_kernel(&s, &i) >= 1);
	assert_int_equal(s.v[i].cause, MINISPY_LOSS_QUEUE);
	assert_int_equal(s.v[i].last, st.records);
	assert_int_equal(check_seq_accounting(&s, 1), st.conn_dropped);
	svc_close(&s);
	flt_unregister_filter(blocker);
}

/* The same for the backlog: with no service connected, the KERNEL notice
 * is pushed out of a full backlog, and the BACKLOG run that the next
 * service gets says so. */
static void
kernel_overflow_lost_from_the_backlog_is_named_by_the_run(void **state)
{
	const char *kv[] = { "ops", "create", "backlog", "8", NULL };
	flt_filter *blocker;
	struct minispy_stats st;
	struct svc s;
	size_t i = 0;

	(void)state;
	NEED_ROOT();
	blocker = blocker_on_small_kernel_queue();
	load(kv);
	overflow_the_kernel_queue();
	gen("h", 20); /* pushes the notice out of the backlog */
	sync_events();
	svc_open(&s);
	svc_drain(&s);
	st = svc_stats(&s);
	assert_true(st.kernel_overflows >= 1);
	assert_int_equal(runs_naming_kernel(&s, &i), 1);
	assert_int_equal(i, 0);
	assert_int_equal(s.v[0].cause, MINISPY_LOSS_BACKLOG);
	assert_int_equal(s.v[0].first, 1);
	assert_int_equal(s.v[0].last, st.records - 8);
	assert_int_equal(s.n, 9);
	assert_int_equal(check_seq_accounting(&s, 1), st.records - 8);
	svc_close(&s);
	flt_unregister_filter(blocker);
}

/* ---- events whose path the engine could not resolve ---- */

/*
 * An unlink gives its DELETE record and the link-count ATTRIB that the
 * engine used to drop (named by the DELETE, or with an unknown path); a
 * rename over an existing file gives the replaced file's ATTRIB with an
 * unknown path (empty, MINISPY_F_PATH_UNKNOWN) and its inode number. No
 * gap in the seqs.
 */
static void
unlink_and_replaced_file_give_records(void **state)
{
	struct minispy_stats st;
	struct svc s;
	struct child c;
	struct stat sb;
	struct ev *e;
	int i;

	(void)state;
	NEED_ROOT();
	load(NULL);
	assert_int_equal(fsop("create", at("a"), NULL), 0);
	assert_int_equal(fsop("create", at("b"), NULL), 0);
	assert_int_equal(fsop("create", at("c"), NULL), 0);
	assert_int_equal(stat(at("b"), &sb), 0);
	svc_open(&s);

	c = fsop_hold(0, "unlink", at("a"), NULL);
	expect_ev(&s, MINISPY_OP_DELETE, at("a"), NULL, c.pid);
	sync_events();
	svc_drain(&s);
	i = find_ev(&s, MINISPY_OP_ATTRIB, at("a"), NULL, c.pid);
	if (i < 0)
		i = find_ev(&s, MINISPY_OP_ATTRIB, "", NULL, c.pid);
	if (i < 0)
		fail_msg("no ATTRIB record for the unlink of %s", at("a"));
	assert_int_equal(child_wait(&c), 0);

	c = fsop_hold(0, "rename", at("c"), at("b"));
	expect_ev(&s, MINISPY_OP_RENAME, at("c"), at("b"), c.pid);
	e = expect_ev(&s, MINISPY_OP_ATTRIB, "", NULL, c.pid);
	assert_true(e->flags & MINISPY_F_PATH_UNKNOWN);
	assert_int_equal(e->ino, sb.st_ino);
	assert_int_equal(e->dev, sb.st_dev);
	assert_int_equal(child_wait(&c), 0);

	sync_events();
	svc_drain(&s);
	assert_int_equal(check_seq_accounting(&s, 1), 0);
	st = svc_stats(&s);
	assert_true(st.unknown_paths >= 1);
	assert_int_equal(st.engine_losses, 0);
	svc_close(&s);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(each_operation_produces_a_record_with_path_and_process),
		T(rename_carries_old_and_new_path),
		T(without_process_details_only_the_pid_is_given),
		T(record_decoder_checks_every_size_and_string),
		T(record_decoder_reads_versions_1_and_2),
		T(op_mask_and_patterns_select_records_per_instance),
		T(bad_parameters_refuse_the_load_with_a_message),
		T(backlog_delivered_oldest_first_on_connect),
		T(backlog_reaches_a_batching_service_in_batches),
		T(coalescing_sender_delivers_everything_in_order),
		T(backlog_overflow_gives_exactly_one_loss_record),
		T(unsent_records_of_the_last_service_return_to_the_backlog),
		T(full_queue_drops_and_reports_the_loss_once_read),
		T(two_services_each_get_every_record),
		T(services_own_processes_are_excluded_unless_told_otherwise),
		T(unconfirmed_records_of_a_departed_service_are_reported),
		T(unconfirmed_records_of_the_last_service_are_delivered_again),
		T(seed_services_killed_and_stopped_while_events_flow),
		T(unregister_with_a_service_connected_disconnects_it),
		T(unload_races_connects_and_events),
		T(kernel_overflow_becomes_a_loss_record),
		T(kernel_overflow_lost_in_a_full_queue_is_named_by_the_run),
		T(kernel_overflow_lost_from_the_backlog_is_named_by_the_run),
		T(unlink_and_replaced_file_give_records),
#undef T
	};
	const char *so = getenv("FLTMGR_MINISPY_FILTER");
	char *slash;
	void *dl;
	ssize_t n;
	int r;

	n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n <= 0)
		return 1;
	self_path[n] = '\0';
	if (argc >= 2 && !strncmp(argv[1], "--", 2))
		return child_main(argc, argv);
	snprintf(fsop_path, sizeof(fsop_path), "%s", self_path);
	slash = strrchr(fsop_path, '/');
	snprintf(slash + 1, sizeof(fsop_path) - (size_t)(slash + 1 - fsop_path), "fsop");

	if (!so) {
		fprintf(stderr,
			"test_minispy_filter: set FLTMGR_MINISPY_FILTER to minispy.so "
			"(meson test does)\n");
		return 1;
	}
	dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "test_minispy_filter: %s\n", dlerror());
		return 1;
	}
	entry = (flt_filter_entry_fn)dlsym(dl, FLT_FILTER_ENTRY_SYMBOL);
	if (!entry) {
		fprintf(stderr, "test_minispy_filter: %s has no %s\n", so,
			FLT_FILTER_ENTRY_SYMBOL);
		return 1;
	}
	have_root = geteuid() == 0;
	if (have_root) {
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			fprintf(stderr,
				"test_minispy_filter: cannot make a private mount "
				"namespace: "
				"%s\n",
				strerror(errno));
			return 1;
		}
	} else {
		printf("test_minispy_filter: not root: every test is skipped (fanotify "
		       "needs CAP_SYS_ADMIN)\n");
	}
	r = cmocka_run_group_tests_name("minispy_filter", tests, NULL, NULL);
	dlclose(dl);
	return r;
}
