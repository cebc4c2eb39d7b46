/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_filter.c — minispy's records: what each operation produces
 * (paths, old and new names, the process, unknown paths after an unlink or
 * a replaced file), the record decoder against hand-made records of every
 * size and version, the per-instance op mask and patterns, and parameters
 * that refuse the load with a message.
 *
 * minispy on real fanotify (root only), loaded from minispy.so through its
 * entry point as fltmgrd would and read through libfltuser as its service
 * will, in a private mount namespace on a fresh tmpfs per test; the
 * children, the sentinel recorder, the in-process service and each test's
 * setup: minispy_filter_fixture.h.
 */
#include "minispy_filter_fixture.h"

/* ---- records: what each operation produces ---- */

static void
check_process(const struct ev *e, pid_t pid, uid_t uid, int64_t t0)
{
	assert_int_equal(e->pid, pid);
	assert_true(e->flags & MINISPY_F_VERIFIED);
	assert_int_equal(e->uid, uid);
	assert_string_equal(e->exe, fsop_path);
	assert_string_equal(e->comm, "fsop");
	assert_true(e->time_ns >= t0 && e->time_ns <= tu_realtime_ns());
	assert_true(e->event_seq > 0);
}

static void
each_operation_produces_a_record_with_path_and_process(void **state)
{
	const uid_t uid = 4321;
	int64_t t0 = tu_realtime_ns();
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
		T(unlink_and_replaced_file_give_records),
#undef T
	};
	int r = minispy_filter_fixture_init("test_minispy_filter", argc, argv);

	if (r != 0)
		return r;
	return cmocka_run_group_tests_name("minispy_filter", tests, NULL, NULL);
}
