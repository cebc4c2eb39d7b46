/* SPDX-License-Identifier: MIT */
/*
 * test_minispy_service.c — the minispy service (filters/minispy/service/)
 * end to end, as an operator runs it: the real fltmgrd with its built-in
 * default (minispy at 385100 on a watched directory) or a small config,
 * and the real `minispy --json --output FILE`, whose output the test
 * parses with json-c in strict mode with UTF-8 validation. Root only
 * (fanotify, root-owned filter objects).
 *
 * Like test_daemon.c, the program runs in a private mount namespace on a
 * scratch tmpfs, and each test has its own runtime directory, filter
 * directory (root-owned 0755, holding a 0644 copy of minispy.so: the
 * loader refuses anything else) and watched directory. File operations
 * whose process the test checks are done by tests/fsop, held open with
 * --hold so that its pid, uid and exe are still there to be verified.
 * Every wait is bounded (WAIT_MS).
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* Each wait ends as soon as its condition holds; the bound is for the
 * TSan build on a loaded 2-core machine, where a service life has taken
 * over 10 s to connect. */
#define WAIT_MS 30000

extern char **environ;

static const char *fltmgrd_bin, *spy_bin, *minispy_so, *fltmc_bin;
static char fsop_bin[PATH_MAX];
static char scratch[] = "/tmp/fltmgr-spysvc.XXXXXX";
static char rundir[128], fdir[128], watch[128], conf[128], dlog[128], out[128], slog[128];
static pid_t daemon_pid, spy_pid;

/* ---- files and processes ---- */

/* A path under watch. */
static char *
at(const char *rel)
{
	return tu_path(watch, rel);
}

/* ---- the daemon and the service ---- */

/* fltmgrd -f: the built-in default on the watched directory, or conf. */
static void
daemon_start(bool with_conf)
{
	char *argv[] = { (char *)fltmgrd_bin,
			 "--foreground",
			 "--runtime-dir",
			 rundir,
			 with_conf ? "--config" : "--filter-dir",
			 with_conf ? conf : fdir,
			 with_conf ? NULL : "--attach",
			 watch,
			 NULL };

	daemon_pid = tu_spawn(argv, "/dev/null", dlog);
	if (!tu_wait_daemon_ready(rundir, "minispy", WAIT_MS))
		fail_msg("fltmgrd did not start: %s", tu_slurp(dlog));
}

static int
daemon_stop(void)
{
	int rc;

	if (daemon_pid <= 0)
		return -1;
	kill(daemon_pid, SIGTERM);
	rc = tu_expect_exit(daemon_pid, WAIT_MS);
	daemon_pid = 0;
	return rc;
}

/* minispy --json --output out --runtime-dir rundir [extra...]; waits for
 * its n-th "connected to" line when wait_connected. */
static pid_t
spy_start_args(const char *const extra[], bool wait_connected)
{
	char *argv[16] = { (char *)spy_bin, "--json", "--output", out,
			   "--runtime-dir", rundir };
	int n = 6, before = tu_count_in_file(slog, "connected to ");
	pid_t pid;

	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	pid = tu_spawn(argv, "/dev/null", slog);
	if (wait_connected &&
	    !tu_wait_in_file(slog, "connected to ", before + 1, WAIT_MS))
		fail_msg("minispy did not connect: %s", tu_slurp(slog));
	return pid;
}

static void
spy_start(void)
{
	spy_pid = spy_start_args(NULL, true);
}

static int
spy_stop(int sig)
{
	int rc;

	kill(spy_pid, sig);
	rc = tu_expect_exit(spy_pid, WAIT_MS);
	spy_pid = 0;
	return rc;
}

/* ---- the JSON output ---- */

/* Every line of the output file, each parsed strictly (RFC 8259, UTF-8
 * validated): a line that is not valid JSON fails the test. Returns a
 * JSON array the caller puts. While the service runs, the last line may
 * still be half written (a long record takes more than one write(2));
 * polling callers pass live = true to leave it for the next look. */
static struct json_object *
records_read_live(const char *path, bool live)
{
	struct json_object *all = json_object_new_array();
	char *text = tu_slurp(path), *line = text, *nl;

	while ((nl = strchr(line, '\n'))) {
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o;

		json_tokener_set_flags(tok,
				       JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
		*nl = '\0';
		o = json_tokener_parse_ex(tok, line, (int)strlen(line));
		if (!o || json_tokener_get_error(tok) != json_tokener_success ||
		    tok->char_offset != (int)strlen(line))
			fail_msg("not one valid JSON object: '%s'", line);
		json_tokener_free(tok);
		json_object_array_add(all, o);
		line = nl + 1;
	}
	if (!live)
		assert_int_equal(*line, '\0'); /* no partial line left */
	free(text);
	return all;
}

static struct json_object *
records_read(const char *path)
{
	return records_read_live(path, false);
}

static struct json_object *
member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *
str(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
							     : NULL;
}

static int64_t
num(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	if (!v || !json_object_is_type(v, json_type_int))
		fail_msg("no integer %s in %s", key, json_object_to_json_string(o));
	return json_object_get_int64(v);
}

static size_t
b64_decode(const char *s, unsigned char *buf, size_t cap)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t v = 0;
	size_t n = 0;
	int bits = 0;

	for (; *s && *s != '='; s++) {
		const char *p = strchr(abc, *s);

		assert_non_null(p);
		v = v << 6 | (uint32_t)(p - abc);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			assert_true(n < cap);
			buf[n++] = (unsigned char)(v >> bits);
		}
	}
	return n;
}

/* The exact bytes of string member key ("path"...): key_bytes if there
 * is one, else the string itself. Static storage. */
static const char *
name_of(struct json_object *o, const char *key)
{
	static char buf[2][PATH_MAX + 1];
	static int i;
	char bkey[64];
	const char *b, *s;
	size_t n;

	i = !i;
	snprintf(bkey, sizeof(bkey), "%s_bytes", key);
	b = str(o, bkey);
	s = str(o, key);
	if (!b)
		return s;
	assert_non_null(s);
	/* the readable text marks where the bytes were not UTF-8 */
	assert_non_null(strstr(s, "\xef\xbf\xbd"));
	n = b64_decode(b, (unsigned char *)buf[i], PATH_MAX);
	buf[i][n] = '\0';
	assert_int_equal(strlen(buf[i]), n);
	return buf[i];
}

/* The first record with this op and path (and pid, if > 0), waiting for
 * it to appear; a new reference. */
static struct json_object *
wait_record_from(const char *file, const char *op, const char *path, pid_t pid)
{
	int64_t end = tu_now_ms() + WAIT_MS;

	do {
		struct json_object *all = records_read_live(file, true);

		for (size_t i = 0; i < json_object_array_length(all); i++) {
			struct json_object *o = json_object_array_get_idx(all, i);
			const char *p = name_of(o, "path");

			if (str(o, "op") && !strcmp(str(o, "op"), op) && p &&
			    !strcmp(p, path) && (pid <= 0 || num(o, "pid") == pid)) {
				json_object_get(o);
				json_object_put(all);
				return o;
			}
		}
		json_object_put(all);
		usleep(5000);
	} while (tu_now_ms() < end);
	fail_msg("no %s record for %s (pid %d) in: %s", op, path, (int)pid,
		 tu_slurp(file));
	return NULL;
}

static struct json_object *
wait_record(const char *op, const char *path, pid_t pid)
{
	return wait_record_from(out, op, path, pid);
}

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

/* ---- fixtures ---- */

static int
setup(void **state)
{
	static int n;
	char cmd[1024];

	(void)state;
	snprintf(rundir, sizeof(rundir), "%s/run%d", scratch, n);
	snprintf(fdir, sizeof(fdir), "%s/filters%d", scratch, n);
	snprintf(watch, sizeof(watch), "%s/watch%d", scratch, n);
	snprintf(conf, sizeof(conf), "%s/fltmgr%d.conf", scratch, n);
	snprintf(dlog, sizeof(dlog), "%s/daemon%d.log", scratch, n);
	snprintf(out, sizeof(out), "%s/spy%d.json", scratch, n);
	snprintf(slog, sizeof(slog), "%s/spy%d.log", scratch, n);
	n++;
	assert_int_equal(mkdir(fdir, 0755), 0);
	assert_int_equal(chmod(fdir, 0755), 0);
	assert_int_equal(mkdir(watch, 0777), 0);
	assert_int_equal(chmod(watch, 0777), 0); /* fsop --uid 65534 writes here */
	snprintf(cmd, sizeof(cmd),
		 "cp '%s' '%s/minispy.so' && chmod 0644 '%s/minispy.so'", minispy_so,
		 fdir, fdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (spy_pid > 0) {
		kill(spy_pid, SIGKILL);
		waitpid(spy_pid, NULL, 0);
		spy_pid = 0;
	}
	if (daemon_pid > 0 && daemon_stop() != 0)
		fail_msg("fltmgrd did not exit cleanly: %s", tu_slurp(dlog));
	return 0;
}

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

/* Wait until the filter has been given n events (fltmc stats). */
static void
wait_delivered(int64_t n)
{
	int64_t end = tu_now_ms() + WAIT_MS, got = -1;
	char cmd[600];

	snprintf(cmd, sizeof(cmd),
		 "'%s' --runtime-dir '%s' --json stats > '%s/stats.json'", fltmc_bin,
		 rundir, scratch);
	while (tu_now_ms() < end) {
		struct json_object *o, *f;
		char path[300];
		char *text;

		assert_int_equal(system(cmd), 0);
		snprintf(path, sizeof(path), "%s/stats.json", scratch);
		text = tu_slurp(path);
		o = json_tokener_parse(text);
		free(text);
		assert_non_null(o);
		f = json_object_array_get_idx(member(o, "filters"), 0);
		assert_non_null(f);
		got = num(f, "delivered");
		json_object_put(o);
		if (got >= n)
			return;
		usleep(10000);
	}
	fail_msg("the filter saw %lld events, not %lld", (long long)got, (long long)n);
}

/* Creates count files named prefix0, prefix1, ... from this process. */
static void
make_files(const char *prefix, int count)
{
	char name[64];

	for (int i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		tu_write_file(at(name), "x");
	}
}

/* Only creates are reported (param.ops), so one file is one record. */
static void
write_create_only_conf(const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "[fltmgrd]\nfilter_dir = %s\n\n"
		 "[filter minispy]\naltitude = 385100\nattach = %s\n"
		 "param.ops = create\n%s",
		 fdir, watch, extra);
	tu_write_file(conf, text);
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

static struct json_object *minispy_counters(void);

/* Waits until the minispy filter's counter name reaches n (fltmc stats). */
static void
wait_minispy_counter(const char *name, int64_t n)
{
	int64_t end = tu_now_ms() + WAIT_MS, got;

	for (;;) {
		struct json_object *c = minispy_counters();

		got = num(c, name);
		json_object_put(c);
		if (got >= n)
			return;
		if (tu_now_ms() > end)
			fail_msg("minispy's %s stays at %lld, not %lld", name,
				 (long long)got, (long long)n);
		usleep(10000);
	}
}

/* Records already waiting on the connection when SIGTERM comes are
 * written and flushed, and the exit status is 0: the service is stopped
 * (SIGSTOP) while 50 records are sent to it, then terminated. */
static void
sigterm_flushes_and_exits_zero(void **state)
{
	struct json_object *all;

	(void)state;
	write_create_only_conf("");
	daemon_start(true);
	spy_start();
	assert_int_equal(kill(spy_pid, SIGSTOP), 0);
	make_files("t", 50);
	wait_delivered(50);
	/* The filter's sender has put all of them into the socket. */
	wait_minispy_counter("sent", 50);
	assert_int_equal(kill(spy_pid, SIGTERM), 0);
	assert_int_equal(kill(spy_pid, SIGCONT), 0);
	assert_int_equal(tu_expect_exit(spy_pid, WAIT_MS), 0);
	spy_pid = 0;
	all = records_read(out);
	assert_int_equal(json_object_array_length(all), 50);
	for (int i = 0; i < 50; i++)
		assert_int_equal(num(json_object_array_get_idx(all, (size_t)i), "seq"),
				 i + 1);
	json_object_put(all);
}

/* SIGHUP reopens --output by name: after a rename (log rotation), new
 * records go to a new file, none to the old one. */
static void
sighup_reopens_output(void **state)
{
	char rotated[160];
	struct json_object *o;

	(void)state;
	snprintf(rotated, sizeof(rotated), "%s.1", out);
	daemon_start(false);
	spy_start();
	tu_write_file(at("before"), "x");
	json_object_put(wait_record("create", at("before"), getpid()));
	/* Its last record too: one still on its way at the SIGHUP would
	 * rightly go to the new file, where the test looks for none. */
	json_object_put(wait_record("close_write", at("before"), getpid()));
	assert_int_equal(rename(out, rotated), 0);
	assert_int_equal(kill(spy_pid, SIGHUP), 0);
	assert_true(tu_wait_until(tu_file_exists, out, WAIT_MS));
	tu_write_file(at("after"), "x");
	o = wait_record("create", at("after"), getpid());
	json_object_put(o);
	assert_int_equal(tu_count_in_file(rotated, at("after")), 0);
	assert_int_equal(tu_count_in_file(out, at("before")), 0);
	assert_int_equal(spy_stop(SIGTERM), 0);
}

/* The daemon stops: one line says so, the service keeps trying (without
 * a line per attempt) and reconnects when the daemon is back. */
static void
reconnects_when_daemon_returns(void **state)
{
	(void)state;
	daemon_start(false);
	spy_start();
	assert_int_equal(daemon_stop(), 0);
	assert_true(tu_wait_in_file(slog, "lost the connection to", 1, WAIT_MS));
	usleep(1500000); /* several attempts (backoff 100, 200, 400, 800 ms) */
	assert_int_equal(kill(spy_pid, 0), 0);
	daemon_start(false);
	assert_true(tu_wait_in_file(slog, "reconnected to", 1, WAIT_MS));
	tu_write_file(at("back"), "x");
	json_object_put(wait_record("create", at("back"), getpid()));
	assert_int_equal(tu_count_in_file(slog, "minispy:"), 3); /* connected, lost,
								reconnected */
	assert_int_equal(spy_stop(SIGINT), 0);
}

/* With --no-reconnect, losing the daemon ends the service with status 1
 * and one line naming the port. */
static void
no_reconnect_exits_nonzero(void **state)
{
	char port[200];

	(void)state;
	snprintf(port, sizeof(port), "%s/minispy", rundir);
	daemon_start(false);
	spy_pid = spy_start_args((const char *const[]){ "--no-reconnect", NULL }, true);
	assert_int_equal(daemon_stop(), 0);
	assert_int_equal(tu_expect_exit(spy_pid, WAIT_MS), 1);
	spy_pid = 0;
	assert_int_equal(tu_count_in_file(slog, "lost the connection to"), 1);
	assert_int_equal(tu_count_in_file(slog, port), 2); /* connected, lost */
}

/* No daemon: exactly one line, naming the port's path and the cause;
 * exit status 3. */
static void
missing_daemon_is_one_line(void **state)
{
	char port[200], *text;

	(void)state;
	snprintf(port, sizeof(port), "%s/minispy", rundir);
	spy_pid = spy_start_args(NULL, false);
	assert_int_equal(tu_expect_exit(spy_pid, WAIT_MS), 3);
	spy_pid = 0;
	text = tu_slurp(slog);
	assert_non_null(strstr(text, port));
	assert_non_null(strstr(text, "no such port"));
	assert_non_null(strchr(text, '\n'));
	assert_string_equal(strchr(text, '\n'), "\n"); /* one line */
	free(text);
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

/* ---- the seed: the service stopped and started under load ---- */

/* A set of seqs (1-based), grown on demand. */
struct seqset {
	uint8_t *bit;
	uint64_t bytes;
};

static void
seqset_add(struct seqset *s, uint64_t seq)
{
	if (seq / 8 >= s->bytes) {
		uint64_t bytes = (seq / 8 + 1) * 2;

		s->bit = realloc(s->bit, bytes);
		assert_non_null(s->bit);
		memset(s->bit + s->bytes, 0, bytes - s->bytes);
		s->bytes = bytes;
	}
	s->bit[seq / 8] |= (uint8_t)(1u << (seq % 8));
}

static bool
seqset_has(const struct seqset *s, uint64_t seq)
{
	return seq / 8 < s->bytes && (s->bit[seq / 8] >> (seq % 8)) & 1;
}

/* What the load generator saw: operations done, and the slowest one. */
struct loadgen {
	pid_t pid;
	int from; /* its report: "OPS MAX_US MAX_OWN_US\n" at exit */
};

/* Nanoseconds this thread has spent runnable but waiting for a CPU (the
 * second field of /proc/thread-self/schedstat), or -1. */
static int64_t
runqueue_wait_ns(int fd)
{
	char buf[128];
	unsigned long long run, wait;
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
		return -1;
	return (int64_t)wait;
}

static volatile sig_atomic_t loadgen_stop;

static void
on_loadgen_term(int sig)
{
	(void)sig;
	loadgen_stop = 1;
}

/* Creates, writes, renames and deletes files in dir as fast as it can
 * until SIGTERM; times every call. Also the slowest create-write-rename-
 * delete cycle less the time it waited for a CPU: on a loaded 2-CPU CI
 * machine under a sanitizer a runnable process can wait seconds for a
 * CPU, which says nothing about fltmgr; time blocked in a call does. */
static struct loadgen
loadgen_start(const char *dir)
{
	struct loadgen g;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	g.pid = fork();
	assert_true(g.pid >= 0);
	if (g.pid == 0) {
		uint64_t ops = 0, max_ns = 0;
		int64_t max_own_ns = 0, wait0, wait1;
		char a[PATH_MAX], b[PATH_MAX], rep[96];
		int n, sched = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);

		signal(SIGTERM, on_loadgen_term);
		wait0 = runqueue_wait_ns(sched);
		for (uint64_t i = 0; !loadgen_stop; i++) {
			int64_t t[5];
			int fd;

			snprintf(a, sizeof(a), "%s/f%llu", dir, (unsigned long long)i);
			snprintf(b, sizeof(b), "%s/g%llu", dir, (unsigned long long)i);
			t[0] = tu_mono_ns();
			fd = open(a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
			t[1] = tu_mono_ns();
			if (fd < 0 || write(fd, "seed", 4) != 4)
				_exit(2);
			close(fd);
			t[2] = tu_mono_ns();
			if (rename(a, b) < 0)
				_exit(3);
			t[3] = tu_mono_ns();
			if (unlink(b) < 0)
				_exit(4);
			t[4] = tu_mono_ns();
			for (int k = 1; k < 5; k++)
				if ((uint64_t)(t[k] - t[k - 1]) > max_ns)
					max_ns = (uint64_t)(t[k] - t[k - 1]);
			wait1 = runqueue_wait_ns(sched);
			if (wait0 >= 0 && wait1 >= 0 &&
			    t[4] - t[0] - (wait1 - wait0) > max_own_ns)
				max_own_ns = t[4] - t[0] - (wait1 - wait0);
			if (wait1 < 0)
				max_own_ns = -1000; /* no schedstat: report -1 */
			wait0 = wait1;
			ops += 4;
		}
		n = snprintf(rep, sizeof(rep), "%llu %llu %lld\n",
			     (unsigned long long)ops, (unsigned long long)(max_ns / 1000),
			     (long long)(max_own_ns / 1000));
		_exit(write(p[1], rep, (size_t)n) == n ? 0 : 5);
	}
	close(p[1]);
	g.from = p[0];
	return g;
}

/* max_own_us: the slowest cycle less its wait for a CPU; -1 when the
 * kernel has no schedstat. */
static void
loadgen_stop_and_report(struct loadgen *g, uint64_t *ret_ops, uint64_t *ret_max_us,
			int64_t *ret_max_own_us)
{
	char rep[96] = { 0 };
	unsigned long long ops = 0, max_us = 0;
	long long own = 0;

	assert_int_equal(kill(g->pid, SIGTERM), 0);
	assert_int_equal(tu_expect_exit(g->pid, WAIT_MS), 0);
	assert_true(read(g->from, rep, sizeof(rep) - 1) > 0);
	close(g->from);
	assert_int_equal(sscanf(rep, "%llu %llu %lld", &ops, &max_us, &own), 3);
	*ret_ops = ops;
	*ret_max_us = max_us;
	*ret_max_own_us = own;
}

/* One service's output, checked on its own and added to the totals. */
struct books {
	struct seqset delivered; /* seqs printed by some service */
	struct seqset lost;      /* seqs named by a loss record */
	uint64_t printed;        /* event lines, duplicates included */
	uint64_t loss_records;
	uint64_t departed_records;
	uint64_t notice_losses; /* KERNEL or ENGINE loss notices: events that
				   never became records, so never had a seq */
	uint64_t max_seq;
};

/* A KERNEL or ENGINE loss: a notice in the record stream, with a seq of
 * its own (the other causes name a run of lost seqs). */
static bool
loss_is_notice(struct json_object *o)
{
	const char *cause = str(o, "cause");

	assert_non_null(cause);
	return !strcmp(cause, "kernel") || !strcmp(cause, "engine");
}

/*
 * Per connection: event seqs strictly increase, and from its first event
 * to its last every seq was either printed or named by one of its loss
 * records: generated = delivered + reported lost for that connection. A
 * SIGKILLed service may have left a half-written last line: ignored.
 */
static void
books_add_output(struct books *bk, const char *path, int life)
{
	struct json_object *all = records_read_live(path, true);
	struct seqset mine = { 0 };
	uint64_t first = 0, last = 0;

	for (size_t i = 0; i < json_object_array_length(all); i++) {
		struct json_object *o = json_object_array_get_idx(all, i);
		const char *op = str(o, "op");

		assert_non_null(op);
		if (!strcmp(op, "lost") && !loss_is_notice(o)) {
			uint64_t a = (uint64_t)num(o, "first_seq");
			uint64_t b = (uint64_t)num(o, "last_seq");
			uint64_t n = (uint64_t)num(o, "count");

			/* exact runs: count names every seq of the range */
			if (n != b - a + 1)
				fail_msg("life %d: loss record count %llu for seq "
					 "%llu-%llu",
					 life, (unsigned long long)n,
					 (unsigned long long)a, (unsigned long long)b);
			for (uint64_t q = a; q <= b; q++) {
				seqset_add(&bk->lost, q);
				seqset_add(&mine, q);
			}
			bk->loss_records++;
			if (!strcmp(str(o, "cause"), "departed"))
				bk->departed_records++;
			if (b > bk->max_seq)
				bk->max_seq = b;
			continue;
		}
		if (!strcmp(op, "lost"))
			bk->notice_losses++; /* a record with its own seq, below */
		{
			uint64_t q = (uint64_t)num(o, "seq");

			if (q <= last)
				fail_msg("life %d: seq %llu after %llu", life,
					 (unsigned long long)q, (unsigned long long)last);
			if (!first)
				first = q;
			last = q;
			seqset_add(&bk->delivered, q);
			seqset_add(&mine, q);
			bk->printed += !!strcmp(op, "lost");
			if (q > bk->max_seq)
				bk->max_seq = q;
		}
	}
	for (uint64_t q = first; first && q <= last; q++)
		if (!seqset_has(&mine, q))
			fail_msg("life %d (%s): seq %llu neither delivered nor reported "
				 "lost "
				 "(its records ran %llu-%llu)",
				 life, path, (unsigned long long)q,
				 (unsigned long long)first, (unsigned long long)last);
	free(mine.bit);
	json_object_put(all);
}

/* The highest seq in a JSON Lines output: of an event, or the last one
 * named by a loss record. */
static uint64_t
max_seq_in(const char *path)
{
	struct json_object *all = records_read_live(path, true);
	uint64_t max = 0;

	for (size_t i = 0; i < json_object_array_length(all); i++) {
		struct json_object *o = json_object_array_get_idx(all, i);
		uint64_t q = member(o, "seq") ? (uint64_t)num(o, "seq")
					      : (uint64_t)num(o, "last_seq");

		if (q > max)
			max = q;
	}
	json_object_put(all);
	return max;
}

/* fltmc --json CMD [ARG...] against the daemon, parsed (a new
 * reference). */
static struct json_object *
fltmc_json_cmd(const char *args)
{
	struct json_object *o;
	char cmd[800], path[300];
	char *text;

	snprintf(path, sizeof(path), "%s/fltmc.json", scratch);
	snprintf(cmd, sizeof(cmd), "'%s' --runtime-dir '%s' --json %s > '%s'", fltmc_bin,
		 rundir, args, path);
	assert_int_equal(system(cmd), 0);
	text = tu_slurp(path);
	o = json_tokener_parse(text);
	assert_non_null(o);
	free(text);
	return o;
}

/* fltmc stats --json, parsed (a new reference). */
static struct json_object *
fltmc_stats(void)
{
	return fltmc_json_cmd("stats");
}

/* One counter of the daemon's engine (fltmc stats). */
static int64_t
engine_counter(const char *name)
{
	struct json_object *o = fltmc_stats();
	int64_t v = num(member(o, "engine"), name);

	json_object_put(o);
	return v;
}

/* fltmc stats --json: the minispy filter's own counters (a new reference). */
static struct json_object *
minispy_counters(void)
{
	struct json_object *o = fltmc_stats(), *f, *c;

	f = json_object_array_get_idx(member(o, "filters"), 0);
	assert_non_null(f);
	assert_string_equal(str(f, "name"), "minispy");
	c = member(f, "counters");
	assert_non_null(c);
	json_object_get(c);
	json_object_put(o);
	return c;
}

static int
seed_cycles(void)
{
	const char *e = getenv("FLTMGR_SEED_CYCLES");

	return e && atoi(e) > 0 ? atoi(e) : 200;
}

enum seed_stop { SEED_TERM, SEED_KILL, SEED_STOP_CONT_TERM, SEED_STOP_KILL, SEED_MODES_ };

/*
 * The forum thread the product grew from: while a load generator creates, writes,
 * renames and deletes files as fast as it can, the real minispy service is
 * started and stopped again and again with SIGTERM, SIGKILL and SIGSTOP /
 * SIGCONT, each life writing its own output file; the next life starts
 * without waiting for the daemon to notice the last one's end. Then:
 * the daemon still serves and exits 0 (under ASan and TSan in CI); no
 * file operation of the generator stalled; each life's books balance; and
 * over all lives every record the filter made (fltmc stats) was printed
 * or reported lost, with no more reported lost than the filter dropped.
 */
static void
seed_service_restarted_under_load(void **state)
{
	const int cycles = seed_cycles();
	struct books bk = { 0 };
	struct json_object *c;
	struct loadgen g;
	char churn[160], outs[160], path[200];
	int lives[SEED_MODES_] = { 0 };
	uint64_t ops, max_us, records, missing = 0, lost_n = 0;
	int64_t max_own_us;
	unsigned seed = 20261124;

	(void)state;
	/* Small queues, so that stopped services overflow theirs and the
	 * backlog overflows between lives: every loss path runs. */
	tu_write_file(conf, "");
	{
		char text[1024];

		snprintf(text, sizeof(text),
			 "[fltmgrd]\nfilter_dir = %s\n\n"
			 "[filter minispy]\naltitude = 385100\nattach = %s\n"
			 "param.ops = create,write,rename,delete\n"
			 "param.queue_size = 256\nparam.backlog = 1024\n",
			 fdir, watch);
		tu_write_file(conf, text);
	}
	snprintf(churn, sizeof(churn), "%s/churn", watch);
	snprintf(outs, sizeof(outs), "%s/lives", scratch);
	assert_int_equal(mkdir(churn, 0755), 0);
	assert_int_equal(mkdir(outs, 0755), 0);
	daemon_start(true);
	g = loadgen_start(churn);

	for (int i = 0; i < cycles; i++) {
		const char *extra[] = { "--output", path, NULL };
		enum seed_stop mode = (enum seed_stop)(rand_r(&seed) % SEED_MODES_);
		int rc, want = mode == SEED_TERM || mode == SEED_STOP_CONT_TERM
				       ? 0
				       : 128 + SIGKILL;
		pid_t pid;

		snprintf(path, sizeof(path), "%s/life%d.json", outs, i);
		pid = spy_start_args(extra, true);
		usleep(rand_r(&seed) % 5000);
		switch (mode) {
		case SEED_TERM:
			kill(pid, SIGTERM);
			break;
		case SEED_KILL:
			kill(pid, SIGKILL);
			break;
		case SEED_STOP_CONT_TERM:
			kill(pid, SIGSTOP);
			usleep(rand_r(&seed) % 5000);
			kill(pid, SIGCONT);
			kill(pid, SIGTERM);
			break;
		case SEED_STOP_KILL:
		default:
			kill(pid, SIGSTOP);
			usleep(rand_r(&seed) % 5000);
			kill(pid, SIGKILL);
			break;
		}
		rc = tu_expect_exit(pid, WAIT_MS);
		if (rc != want)
			fail_msg("life %d: minispy exited %d, not %d: %s", i, rc, want,
				 tu_slurp(slog));
		lives[mode]++;
		books_add_output(&bk, path, i);
		unlink(path); /* keep the scratch tmpfs small */
	}
	loadgen_stop_and_report(&g, &ops, &max_us, &max_own_us);

	/* A last service takes everything still held (the backlog, losses
	 * included). Once the engine has drained the kernel's queue (the
	 * record count stands still) and the service has printed or been
	 * told about the last record, it stops cleanly. */
	snprintf(path, sizeof(path), "%s/final.json", outs);
	{
		const char *extra[] = { "--output", path, NULL };
		int64_t end = tu_now_ms() + 3 * WAIT_MS, before = -1;

		spy_pid = spy_start_args(extra, true);
		for (;;) {
			c = minispy_counters();
			records = (uint64_t)num(c, "records");
			if ((int64_t)records == before &&
			    num(c, "connections_now") == 1 &&
			    num(c, "backlog_now") == 0 && max_seq_in(path) == records)
				break;
			before = (int64_t)records;
			json_object_put(c);
			if (tu_now_ms() > end)
				fail_msg("the last service did not catch up: %llu "
					 "records, "
					 "it has %llu",
					 (unsigned long long)records,
					 (unsigned long long)max_seq_in(path));
			usleep(200000);
		}
		json_object_put(c);
		assert_int_equal(spy_stop(SIGTERM), 0);
	}
	books_add_output(&bk, path, cycles);
	c = minispy_counters();
	records = (uint64_t)num(c, "records");

	/* Every record: printed by some life, or named by a loss record. */
	for (uint64_t q = 1; q <= records; q++) {
		missing += !seqset_has(&bk.delivered, q) && !seqset_has(&bk.lost, q);
		lost_n += seqset_has(&bk.lost, q);
	}
	print_message(
		"seed: %d lives (term %d, kill %d, stop+cont+term %d, stop+kill %d); "
		"load generator %llu ops, slowest %llu us (%lld us not waiting for a "
		"CPU); %llu records, %llu "
		"printed, %llu reported lost in %llu loss records (%llu departed); "
		"filter: dropped %lld, backlog dropped %lld, departed %lld, "
		"unconfirmed %lld, confirmed %lld\n",
		cycles, lives[0], lives[1], lives[2], lives[3], (unsigned long long)ops,
		(unsigned long long)max_us, (long long)max_own_us,
		(unsigned long long)records, (unsigned long long)bk.printed,
		(unsigned long long)lost_n, (unsigned long long)bk.loss_records,
		(unsigned long long)bk.departed_records, (long long)num(c, "dropped"),
		(long long)num(c, "backlog_dropped"), (long long)num(c, "departed"),
		(long long)num(c, "unconfirmed"), (long long)num(c, "confirmed"));
	assert_int_equal(missing, 0);
	assert_int_equal(bk.max_seq, records); /* nothing printed that was not made */
	/* Reported losses are real: no more than the filter dropped. */
	assert_true(lost_n <= (uint64_t)(num(c, "dropped") + num(c, "backlog_dropped") +
					 num(c, "departed")));
	/* The filter's own books. */
	assert_int_equal(num(c, "sent") + num(c, "discarded") + num(c, "departed") +
				 num(c, "returned") - num(c, "unconfirmed"),
			 num(c, "queued") + num(c, "backlog_delivered"));
	assert_int_equal(num(c, "backlog_queued"), num(c, "backlog_dropped") +
							   num(c, "backlog_delivered") +
							   num(c, "backlog_now"));
	assert_int_equal(num(c, "connections"), cycles + 1);
	assert_int_equal(num(c, "bad_calls"), 0);
	json_object_put(c);
	/* The generator never waited on the filter (minispy only observes):
	 * no permission event was answered by a deadline or unseen, and no
	 * cycle of calls spent the default permission deadline (5 s) running
	 * or blocked. Time spent waiting for a CPU is excluded (schedstat):
	 * a loaded CI machine has kept the generator runnable but off-CPU
	 * for 5 s, which is scheduling, not fltmgr. */
	assert_int_equal(engine_counter("deadline_defaults"), 0);
	assert_int_equal(engine_counter("emergency_answers"), 0);
	if (max_own_us >= 0)
		assert_true(max_own_us < 5000000);
	else
		print_message("seed: no /proc/thread-self/schedstat: the generator's "
			      "blocked time is not measured, only its wall time\n");
	assert_true(ops > 0);
	free(bk.delivered.bit);
	free(bk.lost.bit);
	/* The daemon is alive and stops cleanly (a sanitizer report would
	 * make it exit non-zero). */
	assert_int_equal(kill(daemon_pid, 0), 0);
	assert_int_equal(daemon_stop(), 0);
}

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
		cmocka_unit_test_setup_teardown(sigterm_flushes_and_exits_zero, setup,
						teardown),
		cmocka_unit_test_setup_teardown(sighup_reopens_output, setup, teardown),
		cmocka_unit_test_setup_teardown(reconnects_when_daemon_returns, setup,
						teardown),
		cmocka_unit_test_setup_teardown(no_reconnect_exits_nonzero, setup,
						teardown),
		cmocka_unit_test_setup_teardown(missing_daemon_is_one_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(ops_filters_client_side, setup, teardown),
		cmocka_unit_test_setup_teardown(unlinked_and_replaced_files_are_reported,
						setup, teardown),
		cmocka_unit_test_setup_teardown(seed_service_restarted_under_load, setup,
						teardown),
		cmocka_unit_test_setup_teardown(auto_attached_volume_reaches_the_service,
						setup, teardown),
	};
	const char *fsop = getenv("FLTMGR_TEST_FSOP");
	int r;

	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	fltmc_bin = getenv("FLTMGR_TEST_FLTMC");
	spy_bin = getenv("FLTMGR_TEST_MINISPY");
	minispy_so = getenv("FLTMGR_TEST_MINISPY_SO");
	if (geteuid() != 0) {
		printf("test_minispy_service: SKIP: needs root (fanotify, root-owned "
		       "filter objects)\n");
		return 77;
	}
	if (!fltmgrd_bin || !fltmc_bin || !spy_bin || !minispy_so || !fsop ||
	    !realpath(fsop, fsop_bin)) {
		printf("test_minispy_service: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_FLTMC, "
		       "FLTMGR_TEST_MINISPY, FLTMGR_TEST_MINISPY_SO and FLTMGR_TEST_FSOP "
		       "must be set (meson test sets them)\n");
		return 1;
	}
	/* A private mount namespace with a scratch tmpfs: the daemon's marks
	 * never see the rest of the machine's activity. */
	r = tu_private_scratch("test_minispy_service", scratch, "fltmgr-spysvc", 64);
	if (r != 0)
		return r;
	unsetenv("FLTMGR_RUNTIME_DIR");
	r = cmocka_run_group_tests(tests, NULL, NULL);
	tu_private_scratch_remove(scratch);
	return r;
}
