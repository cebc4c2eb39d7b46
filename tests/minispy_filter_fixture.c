/* SPDX-License-Identifier: MIT */
/* minispy_filter_fixture.c — see minispy_filter_fixture.h. */
#include <dlfcn.h>

#include "minispy_filter_fixture.h"

bool have_root;
char fsop_path[PATH_MAX];
char self_path[PATH_MAX];
char mnt[64];
char wdir[128]; /* minispy's instance: <mnt>/w */
flt_manager *g_m;
flt_filter *g_f;          /* minispy */
static flt_filter *g_rec; /* the sentinel recorder */
static flt_filter_entry_fn entry;
static const char *prog_name = "test_minispy_filter";

/* flt_start_filtering(), or a printed skip on a kernel (or simulated
 * one) without name reporting: minispy's callbacks are all post-only. */
void
start_or_skip(flt_filter *f)
{
	int r = flt_start_filtering(f);

	if (r == -EOPNOTSUPP)
		TU_NEED_KERNEL("names");
	assert_int_equal(r, 0);
}

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
	fprintf(stderr, "%s: bad child mode\n", prog_name);
	return 100;
}

/* Runs argv (argv[0] a path) with pipes on stdin and stdout. */
struct child
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

char
child_hear(struct child *c)
{
	char ch;

	return read(c->from, &ch, 1) == 1 ? ch : 0;
}

void
child_say(struct child *c, char ch)
{
	assert_int_equal(write(c->to, &ch, 1), 1);
}

/* Closes its stdin and waits: its exit status, or 128 + signal. */
int
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
struct child
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

int
fsop(const char *op, const char *a1, const char *a2)
{
	const char *argv[] = { fsop_path, op, a1, a2, NULL };
	struct child c = spawn(argv);

	return child_wait(&c);
}

void
gen(const char *prefix, int n)
{
	char nbuf[16];
	const char *argv[] = { self_path, "--gen", wdir, prefix, nbuf, NULL };
	struct child c;

	snprintf(nbuf, sizeof(nbuf), "%d", n);
	c = spawn(argv);
	assert_int_equal(child_wait(&c), 0);
}

char *
at(const char *rel)
{
	return tu_path(wdir, rel);
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
void
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
int
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
void
load(const char *const *kv)
{
	assert_int_equal(try_load("minispy", kv, &g_f), 0);
	assert_non_null(g_f);
	assert_int_equal(flt_attach(g_f, wdir, FLT_INSTANCE_SUBTREE), 0);
	start_or_skip(g_f);
}

void
unload(void)
{
	flt_unregister_filter(g_f);
	g_f = NULL;
}

void
svc_open(struct svc *s)
{
	*s = (struct svc){ 0 };
	assert_int_equal(filter_connect_communication_port("minispy", 0, NULL, 0, &s->p),
			 0);
}

void
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

/* Reads one record into the list: 0, -ETIMEDOUT, -ENOTCONN, ... */
int
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
void
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

struct minispy_stats
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
void
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

int
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
struct ev *
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

size_t
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
uint64_t
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

/* ---- the filter's counters, connections, confirmation ---- */

/* The filter's own view (the counters hook), without a connection. */
uint64_t
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

void
wait_no_connection(void)
{
	if (!tu_wait_until(no_connection_left, NULL, WAIT_MS))
		fail_msg("minispy still counts %llu connected services",
			 (unsigned long long)filter_counter("connections_now"));
}

int
one_connection_left(void *arg)
{
	return svc_stats(arg).connections_now == 1;
}

void
svc_open_confirming(struct svc *s)
{
	uint32_t ctx[2] = { MINISPY_RECORD_MAGIC, MINISPY_CONNECT_CONFIRM };

	*s = (struct svc){ 0 };
	assert_int_equal(
		filter_connect_communication_port("minispy", 0, ctx, sizeof(ctx), &s->p),
		0);
}

int
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

/* ---- fixture ---- */

int
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

int
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

int
minispy_filter_fixture_init(const char *prog, int argc, char **argv)
{
	const char *so = getenv("FLTMGR_MINISPY_FILTER");
	char *slash;
	void *dl;
	ssize_t n;

	prog_name = prog;
	n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n <= 0)
		return 1;
	self_path[n] = '\0';
	if (argc >= 2 && !strncmp(argv[1], "--", 2))
		exit(child_main(argc, argv));
	snprintf(fsop_path, sizeof(fsop_path), "%s", self_path);
	slash = strrchr(fsop_path, '/');
	snprintf(slash + 1, sizeof(fsop_path) - (size_t)(slash + 1 - fsop_path), "fsop");

	if (!so) {
		fprintf(stderr,
			"%s: set FLTMGR_MINISPY_FILTER to minispy.so (meson test does)\n",
			prog);
		return 1;
	}
	/* Stays loaded until the program exits. */
	dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "%s: %s\n", prog, dlerror());
		return 1;
	}
	entry = (flt_filter_entry_fn)dlsym(dl, FLT_FILTER_ENTRY_SYMBOL);
	if (!entry) {
		fprintf(stderr, "%s: %s has no %s\n", prog, so, FLT_FILTER_ENTRY_SYMBOL);
		return 1;
	}
	/* Everything below happens in a mount namespace of our own. */
	return tu_root_private_ns(prog, &have_root);
}
