/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_service.c — what the minispy service writes: each
 * operation's record and fields, renames with both paths, odd file names
 * round-tripped, the backlog delivered on connect and its overflow as one
 * loss record, --ops filtering, unlinked and replaced files, and a volume
 * attached automatically.
 *
 * The real fltmgrd and the real `minispy --json`, in a private mount
 * namespace, root only; the daemon, the service, their JSON records and
 * each test's setup: minispy_service_fixture.h.
 */
#include "minispy_service_fixture.h"

/* ---- fsop, held ---- */

struct child {
	pid_t pid;
	int to; /* its stdin: closing it lets a --hold fsop exit */
};

static struct child
fsop_hold(uid_t uid, const char *op, const char *a1, const char *a2)
{
	char uidbuf[16];
	const char *argv[10];
	struct child c;
	int n = 0, in[2];

	snprintf(uidbuf, sizeof(uidbuf), "%u", (unsigned)uid);
	argv[n++] = fsop_bin;
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
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		dup2(in[0], STDIN_FILENO);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(in[0]);
	c.to = in[1];
	return c;
}

static int
child_done(struct child *c)
{
	close(c->to);
	return tu_expect_exit(c->pid, WAIT_MS);
}

/* ---- a record's process and time ---- */

static int64_t
realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "2026-11-24T10:00:00.123456789Z" -> ns since the epoch; fails the test
 * on any other shape. */
static int64_t
rfc3339_ns(const char *s)
{
	struct tm tm = { 0 };
	const char *p;
	long ns = 0;

	assert_non_null(s);
	assert_int_equal(strlen(s), 30);
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(p);
	assert_int_equal(*p, '.');
	for (int i = 1; i <= 9; i++) {
		assert_true(p[i] >= '0' && p[i] <= '9');
		ns = ns * 10 + (p[i] - '0');
	}
	assert_string_equal(p + 10, "Z");
	return (int64_t)timegm(&tm) * 1000000000 + ns;
}

/* The process members of a record made by fsop --hold of pid as uid. */
static void
check_process(struct json_object *o, pid_t pid, uid_t uid, int64_t t0)
{
	int64_t t = rfc3339_ns(str(o, "time"));

	assert_int_equal(num(o, "pid"), pid);
	assert_int_equal(num(o, "uid"), uid);
	assert_string_equal(str(o, "exe"), fsop_bin);
	assert_string_equal(str(o, "comm"), "fsop");
	assert_true(t >= t0 && t <= realtime_ns());
	assert_true(num(o, "seq") > 0);
	assert_true(num(o, "event_seq") > 0);
}

/* ---- tests ---- */

/* Every operation, done by a process whose pid, uid (65534 for most)
 * and exe the test knows, appears with the right members. */
static void
each_operation_has_its_fields(void **state)
{
	const uid_t nobody = 65534;
	int64_t t0 = realtime_ns();
	struct json_object *o;
	struct child c;
	struct stat st;
	char cmd[2 * PATH_MAX];

	(void)state;
	daemon_start(false);
	spy_start();

	c = fsop_hold(nobody, "create", at("a"), NULL);
	o = wait_record("create", at("a"), c.pid);
	check_process(o, c.pid, nobody, t0);
	assert_int_equal(stat(at("a"), &st), 0);
	assert_int_equal(num(o, "ino"), st.st_ino);
	assert_int_equal(num(o, "dev"), st.st_dev);
	assert_false(json_object_get_boolean(member(o, "dir")));
	assert_null(member(o, "new_path")); /* renames only */
	json_object_put(o);
	o = wait_record("close_write", at("a"), c.pid);
	check_process(o, c.pid, nobody, t0);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	c = fsop_hold(nobody, "write", at("a"), "hello");
	o = wait_record("write", at("a"), c.pid);
	check_process(o, c.pid, nobody, t0);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	c = fsop_hold(0, "open", at("a"), NULL);
	o = wait_record("open", at("a"), c.pid);
	check_process(o, c.pid, 0, t0);
	json_object_put(o);
	o = wait_record("close", at("a"), c.pid);
	check_process(o, c.pid, 0, t0);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	c = fsop_hold(nobody, "read", at("a"), NULL);
	o = wait_record("read", at("a"), c.pid);
	check_process(o, c.pid, nobody, t0);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	c = fsop_hold(nobody, "chmod", at("a"), "600");
	o = wait_record("attrib", at("a"), c.pid);
	check_process(o, c.pid, nobody, t0);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	c = fsop_hold(0, "unlink", at("a"), NULL);
	o = wait_record("delete", at("a"), c.pid);
	check_process(o, c.pid, 0, t0);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	c = fsop_hold(nobody, "mkdir", at("d"), NULL);
	o = wait_record("create", at("d"), c.pid);
	check_process(o, c.pid, nobody, t0);
	assert_true(json_object_get_boolean(member(o, "dir")));
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	/* exec: the process becomes the program; its pid is certain. */
	snprintf(cmd, sizeof(cmd), "cp /bin/true %s && chmod 755 %s", at("t"), at("t"));
	assert_int_equal(system(cmd), 0);
	c = fsop_hold(0, "exec", at("t"), NULL);
	o = wait_record("exec", at("t"), c.pid);
	assert_int_equal(num(o, "pid"), c.pid);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	/* Nothing lost, in order: seqs strictly increase. */
	o = records_read(out);
	for (size_t i = 1; i < json_object_array_length(o); i++)
		assert_true(num(json_object_array_get_idx(o, i), "seq") >
			    num(json_object_array_get_idx(o, i - 1), "seq"));
	for (size_t i = 0; i < json_object_array_length(o); i++)
		assert_string_not_equal(str(json_object_array_get_idx(o, i), "op"),
					"lost");
	json_object_put(o);
}

/* A rename carries the old path in path and the new one in new_path. */
static void
rename_carries_both_paths(void **state)
{
	struct json_object *o;
	struct child c;

	(void)state;
	assert_int_equal(mkdir(at("d1"), 0777), 0);
	assert_int_equal(mkdir(at("d2"), 0777), 0);
	assert_int_equal(chmod(at("d1"), 0777), 0); /* for uid 65534 */
	assert_int_equal(chmod(at("d2"), 0777), 0);
	tu_write_file(at("d1/f"), "x");
	daemon_start(false);
	spy_start();
	c = fsop_hold(65534, "rename", at("d1/f"), at("d2/g"));
	o = wait_record("rename", at("d1/f"), c.pid);
	assert_string_equal(str(o, "new_path"), at("d2/g"));
	check_process(o, c.pid, 65534, 0);
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);
}

/* The first attrib record of pid about inode ino, waiting for it to
 * appear (its path may be known or not); a new reference. */
static struct json_object *
wait_attrib_of(pid_t pid, ino_t ino)
{
	int64_t end = tu_now_ms() + WAIT_MS;

	do {
		struct json_object *all = records_read_live(out, true);

		for (size_t i = 0; i < json_object_array_length(all); i++) {
			struct json_object *o = json_object_array_get_idx(all, i);

			if (str(o, "op") && !strcmp(str(o, "op"), "attrib") &&
			    num(o, "pid") == pid && num(o, "ino") == (int64_t)ino) {
				json_object_get(o);
				json_object_put(all);
				return o;
			}
		}
		json_object_put(all);
		usleep(5000);
	} while (tu_now_ms() < end);
	fail_msg("no attrib record of pid %d for inode %llu in: %s", (int)pid,
		 (unsigned long long)ino, tu_slurp(out));
	return NULL;
}

/* path is JSON null and path_unknown is true. */
static void
assert_path_unknown(struct json_object *o)
{
	struct json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, "path", &v));
	assert_null(v); /* present, and null */
	v = member(o, "path_unknown");
	assert_non_null(v);
	assert_true(json_object_is_type(v, json_type_boolean) &&
		    json_object_get_boolean(v));
}

/*
 * Removing a file's last name: a delete record with its path, and the
 * link-count attrib of the same inode, named when the engine could (the
 * DELETE in the same read), else with path null and path_unknown. A
 * rename over an existing file: the rename with both paths, and the
 * replaced file's attrib, whose path nothing names any more: null, with
 * path_unknown, and the replaced file's dev and ino.
 */
static void
unlinked_and_replaced_files_are_reported(void **state)
{
	struct json_object *o;
	struct child c;
	struct stat f, victim;

	(void)state;
	tu_write_file(at("f"), "x");
	tu_write_file(at("old"), "y");
	tu_write_file(at("victim"), "z");
	assert_int_equal(stat(at("f"), &f), 0);
	assert_int_equal(stat(at("victim"), &victim), 0);
	daemon_start(false);
	spy_start();

	c = fsop_hold(0, "unlink", at("f"), NULL);
	o = wait_record("delete", at("f"), c.pid);
	check_process(o, c.pid, 0, 0);
	assert_null(member(o, "path_unknown"));
	json_object_put(o);
	o = wait_attrib_of(c.pid, f.st_ino);
	check_process(o, c.pid, 0, 0);
	assert_int_equal(num(o, "dev"), f.st_dev);
	if (member(o, "path_unknown"))
		assert_path_unknown(o);
	else
		assert_string_equal(str(o, "path"), at("f"));
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);

	c = fsop_hold(0, "rename", at("old"), at("victim"));
	o = wait_record("rename", at("old"), c.pid);
	assert_string_equal(str(o, "new_path"), at("victim"));
	assert_null(member(o, "path_unknown"));
	json_object_put(o);
	o = wait_attrib_of(c.pid, victim.st_ino);
	check_process(o, c.pid, 0, 0);
	assert_path_unknown(o);
	assert_int_equal(num(o, "dev"), victim.st_dev);
	assert_null(member(o, "new_path"));
	json_object_put(o);
	assert_int_equal(child_done(&c), 0);
}

/* File names with a newline, quotes, a backslash, control characters,
 * valid non-ASCII UTF-8 and bytes that are not UTF-8 come out as valid
 * JSON (records_read() parses strictly) and decode to the exact bytes. */
static void
odd_names_round_trip(void **state)
{
	static const char *const names[] = {
		"new\nline",
		"quo\"te'",
		"back\\slash",
		"tab\there\x01\x1f\x7f",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", /* valid UTF-8 */
		"bad\xff\xfe",
		"cut\xc3",
		"surrogate\xed\xa0\x80",
		"overlong\xc0\xaf",
		"mixed\n\"\\\x80\xe2\x82",
	};
	const size_t n = sizeof(names) / sizeof(names[0]);
	struct json_object *o;

	(void)state;
	daemon_start(false);
	spy_start();
	for (size_t i = 0; i < n; i++)
		tu_write_file(at(names[i]), "x");
	assert_int_equal(rename(at(names[0]), at(names[5])), 0);
	for (size_t i = 0; i < n; i++) {
		const char *valid_utf8 = i < 5 ? at(names[i]) : NULL;

		o = wait_record("create", at(names[i]), getpid());
		if (valid_utf8) { /* plain strings, no _bytes member */
			assert_string_equal(str(o, "path"), valid_utf8);
			assert_null(member(o, "path_bytes"));
		} else {
			assert_non_null(member(o, "path_bytes"));
		}
		json_object_put(o);
	}
	o = wait_record("rename", at(names[0]), getpid());
	assert_string_equal(name_of(o, "new_path"), at(names[5]));
	assert_non_null(member(o, "new_path_bytes"));
	assert_null(member(o, "path_bytes"));
	json_object_put(o);
}

/* Events made while no service is connected wait in the backlog and
 * arrive, oldest first and without a loss record, when one connects. */
static void
backlog_arrives_on_connect(void **state)
{
	struct json_object *all;
	char name[64];

	(void)state;
	write_create_only_conf("");
	daemon_start(true);
	make_files("early", 5);
	wait_delivered(5);
	spy_start();
	(void)json_object_put(wait_record("create", at("early4"), getpid()));
	all = records_read(out);
	assert_int_equal(json_object_array_length(all), 5);
	for (int i = 0; i < 5; i++) {
		struct json_object *o = json_object_array_get_idx(all, (size_t)i);

		snprintf(name, sizeof(name), "early%d", i);
		assert_string_equal(str(o, "op"), "create");
		assert_string_equal(str(o, "path"), at(name));
		assert_int_equal(num(o, "seq"), i + 1);
	}
	json_object_put(all);
}

/* A backlog of 4 and 10 events: exactly one loss record, for the 6
 * oldest (seq 1-6), then the 4 newest. */
static void
backlog_overflow_is_one_loss_record(void **state)
{
	struct json_object *all, *o;
	char name[64];

	(void)state;
	write_create_only_conf("param.backlog = 4\n");
	daemon_start(true);
	make_files("f", 10);
	wait_delivered(10);
	spy_start();
	(void)json_object_put(wait_record("create", at("f9"), getpid()));
	all = records_read(out);
	assert_int_equal(json_object_array_length(all), 5);
	o = json_object_array_get_idx(all, 0);
	assert_string_equal(str(o, "op"), "lost");
	assert_string_equal(str(o, "cause"), "backlog");
	assert_int_equal(num(o, "count"), 6);
	assert_int_equal(num(o, "first_seq"), 1);
	assert_int_equal(num(o, "last_seq"), 6);
	rfc3339_ns(str(o, "time"));
	for (int i = 0; i < 4; i++) {
		o = json_object_array_get_idx(all, (size_t)i + 1);
		snprintf(name, sizeof(name), "f%d", i + 6);
		assert_string_equal(str(o, "path"), at(name));
		assert_int_equal(num(o, "seq"), i + 7);
	}
	json_object_put(all);
}

/* --ops shows only the operations named; loss records stay. */
static void
ops_filters_client_side(void **state)
{
	struct json_object *all;

	(void)state;
	daemon_start(false);
	spy_pid = spy_start_args((const char *const[]){ "--ops", "delete,rename", NULL },
				 true);
	tu_write_file(at("x"), "x");
	assert_int_equal(rename(at("x"), at("y")), 0);
	assert_int_equal(unlink(at("y")), 0);
	json_object_put(wait_record("delete", at("y"), getpid()));
	all = records_read(out);
	assert_int_equal(json_object_array_length(all), 2);
	assert_string_equal(str(json_object_array_get_idx(all, 0), "op"), "rename");
	json_object_put(all);
}

/* ---- a volume attached automatically ---- */

/* The filters fltmc volumes lists on the mount at point ("" if none, or
 * NULL if fltmc does not list the mount). */
static char *
volume_filters(const char *point)
{
	struct json_object *o = fltmc_json_cmd("volumes"), *vols = member(o, "volumes");
	char *found = NULL;

	for (size_t i = 0; vols && i < json_object_array_length(vols); i++) {
		struct json_object *v = json_object_array_get_idx(vols, i), *fl;
		char names[256] = "";

		if (strcmp(str(v, "mount_point"), point))
			continue;
		fl = member(v, "filters");
		for (size_t k = 0; fl && k < json_object_array_length(fl); k++) {
			struct json_object *f = json_object_array_get_idx(fl, k);

			snprintf(names + strlen(names), sizeof(names) - strlen(names),
				 "%s%s%s", k ? "," : "", str(f, "name"),
				 json_object_get_boolean(member(f, "automatic"))
					 ? "(auto)"
					 : "");
		}
		found = strdup(names);
	}
	json_object_put(o);
	return found;
}

static int
volume_unlisted(void *point)
{
	char *f = volume_filters(point);

	free(f);
	return f == NULL;
}

/* A tmpfs mounted while fltmgrd runs, matching minispy's auto_attach
 * policy in the configuration, is filtered with no fltmc command: the
 * service sees a file created on it. fltmc volumes and instances -f list
 * it as automatic; a mount the policy does not match is left alone;
 * unmounted (plainly: nothing holds it busy), it is torn down, counted. */
static void
auto_attached_volume_reaches_the_service(void **state)
{
	char text[1024], vol[300], other[300], file[320], file2[320];
	char *f;
	struct json_object *o, *ins;
	int64_t t0;
	int fd;

	(void)state;
	snprintf(vol, sizeof(vol), "%s/vol-a", scratch);
	snprintf(other, sizeof(other), "%s/other", scratch);
	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\n\n"
		 "[filter minispy]\naltitude = 385100\nparam.ops = create\n"
		 "auto_attach = tmpfs\nauto_attach_kind = mount\n"
		 "auto_attach_mounts = %s/vol-*\n",
		 fdir, scratch);
	tu_write_file(conf, text);
	daemon_start(true);
	spy_start();
	assert_true(mkdir(vol, 0755) == 0 || errno == EEXIST);
	assert_true(mkdir(other, 0755) == 0 || errno == EEXIST);
	t0 = tu_now_ms();
	assert_int_equal(mount("fltmgr-auto", vol, "tmpfs", 0, "size=1m"), 0);
	assert_int_equal(mount("fltmgr-other", other, "tmpfs", 0, "size=1m"), 0);

	/* The instance appears within milliseconds of the mount, not at
	 * once: the file is made once the daemon counts it attached. */
	snprintf(file, sizeof(file), "%s/new", vol);
	snprintf(file2, sizeof(file2), "%s/new", other);
	fd = open(file2, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	for (int i = 0; i < 400 && engine_counter("volumes_attached") < 1; i++)
		usleep(5000);
	fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	json_object_put(wait_record("create", file, getpid()));
	print_message("auto_attach: a tmpfs was attached, and a file made on it "
		      "reached minispy, %lld ms after the mount\n",
		      (long long)(tu_now_ms() - t0));

	f = volume_filters(vol);
	assert_non_null(f);
	assert_string_equal(f, "minispy(auto)");
	free(f);
	f = volume_filters(other); /* no match: listed, nothing on it */
	assert_non_null(f);
	assert_string_equal(f, "");
	free(f);
	o = fltmc_json_cmd("instances -f minispy");
	ins = member(o, "instances");
	assert_int_equal(json_object_array_length(ins), 1);
	assert_string_equal(str(json_object_array_get_idx(ins, 0), "path"), vol);
	assert_string_equal(str(json_object_array_get_idx(ins, 0), "kind"), "mount");
	assert_true(json_object_get_boolean(
		member(json_object_array_get_idx(ins, 0), "automatic")));
	json_object_put(o);
	/* nothing from the mount the policy does not match */
	o = records_read_live(out, true);
	for (size_t i = 0; i < json_object_array_length(o); i++) {
		const char *p = name_of(json_object_array_get_idx(o, i), "path");

		assert_false(p && !strcmp(p, file2));
	}
	json_object_put(o);

	assert_int_equal(umount(vol), 0);
	assert_true(tu_wait_until(volume_unlisted, vol, WAIT_MS));
	o = fltmc_json_cmd("instances -f minispy");
	assert_int_equal(json_object_array_length(member(o, "instances")), 0);
	json_object_put(o);
	assert_int_equal(engine_counter("volumes_detached"), 1);
	f = tu_slurp(dlog);
	assert_non_null(strstr(f, "filter minispy: attached to the volume"));
	free(f);

	/* The policy changes with a reload, in place (no restart): to the
	 * other mount point pattern, which attaches the mount there. */
	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\n\n"
		 "[filter minispy]\naltitude = 385100\nparam.ops = create\n"
		 "auto_attach = tmpfs\nauto_attach_kind = mount\n"
		 "auto_attach_mounts = %s/oth*\n",
		 fdir, scratch);
	tu_write_file(conf, text);
	json_object_put(fltmc_json_cmd("reload"));
	f = volume_filters(other);
	assert_non_null(f);
	assert_string_equal(f, "minispy(auto)");
	free(f);
	assert_int_equal(engine_counter("volumes_attached"), 2);
	f = tu_slurp(dlog);
	assert_non_null(strstr(f, "automatic attachment: tmpfs as instances per mount, "
				  "mount points"));
	assert_null(strstr(f, "restarting"));
	free(f);
	assert_int_equal(umount(other), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(each_operation_has_its_fields, setup,
						teardown),
		cmocka_unit_test_setup_teardown(rename_carries_both_paths, setup,
						teardown),
		cmocka_unit_test_setup_teardown(odd_names_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(backlog_arrives_on_connect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(backlog_overflow_is_one_loss_record,
						setup, teardown),
		cmocka_unit_test_setup_teardown(ops_filters_client_side, setup, teardown),
		cmocka_unit_test_setup_teardown(unlinked_and_replaced_files_are_reported,
						setup, teardown),
		cmocka_unit_test_setup_teardown(auto_attached_volume_reaches_the_service,
						setup, teardown),
	};
	int r;

	r = minispy_service_fixture_init("test_minispy_service");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	minispy_service_fixture_fini();
	return r;
}
