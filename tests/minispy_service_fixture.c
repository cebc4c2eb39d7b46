/* SPDX-License-Identifier: MIT */
/* minispy_service_fixture.c — see minispy_service_fixture.h. */
#include "minispy_service_fixture.h"

static const char *fltmgrd_bin, *spy_bin, *minispy_so, *fltmc_bin;
char fsop_bin[PATH_MAX];
char scratch[] = "/tmp/fltmgr-spysvc.XXXXXX";
char rundir[128], fdir[128], watch[128], conf[128], dlog[128], out[128], slog[128];
pid_t daemon_pid, spy_pid;

/* ---- files ---- */

char *
at(const char *rel)
{
	return tu_path(watch, rel);
}

/* ---- the daemon and the service ---- */

void
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

int
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

pid_t
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

void
spy_start(void)
{
	spy_pid = spy_start_args(NULL, true);
}

/* ---- the JSON output ---- */

struct json_object *
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

struct json_object *
records_read(const char *path)
{
	return records_read_live(path, false);
}

struct json_object *
member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

const char *
str(struct json_object *o, const char *key)
{
	struct json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
							     : NULL;
}

int64_t
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

const char *
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

struct json_object *
wait_record(const char *op, const char *path, pid_t pid)
{
	return wait_record_from(out, op, path, pid);
}

/* ---- fixtures ---- */

int
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

int
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

/* ---- delivery, and a create-only configuration ---- */

void
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

void
make_files(const char *prefix, int count)
{
	char name[64];

	for (int i = 0; i < count; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		tu_write_file(at(name), "x");
	}
}

void
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

/* ---- fltmc stats ---- */

struct json_object *
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

struct json_object *
fltmc_stats(void)
{
	return fltmc_json_cmd("stats");
}

int64_t
engine_counter(const char *name)
{
	struct json_object *o = fltmc_stats();
	int64_t v = num(member(o, "engine"), name);

	json_object_put(o);
	return v;
}

/* ---- the start of each program ---- */

int
minispy_service_fixture_init(const char *prog)
{
	const char *fsop = getenv("FLTMGR_TEST_FSOP");
	int r;

	fltmgrd_bin = getenv("FLTMGR_TEST_FLTMGRD");
	fltmc_bin = getenv("FLTMGR_TEST_FLTMC");
	spy_bin = getenv("FLTMGR_TEST_MINISPY");
	minispy_so = getenv("FLTMGR_TEST_MINISPY_SO");
	if (geteuid() != 0) {
		printf("%s: SKIP: needs root (fanotify, root-owned "
		       "filter objects)\n",
		       prog);
		return 77;
	}
	if (!fltmgrd_bin || !fltmc_bin || !spy_bin || !minispy_so || !fsop ||
	    !realpath(fsop, fsop_bin)) {
		printf("%s: FLTMGR_TEST_FLTMGRD, FLTMGR_TEST_FLTMC, "
		       "FLTMGR_TEST_MINISPY, FLTMGR_TEST_MINISPY_SO and FLTMGR_TEST_FSOP "
		       "must be set (meson test sets them)\n",
		       prog);
		return 1;
	}
	/* A private mount namespace with a scratch tmpfs: the daemon's marks
	 * never see the rest of the machine's activity. */
	r = tu_private_scratch(prog, scratch, "fltmgr-spysvc", 64);
	if (r != 0)
		return r;
	unsetenv("FLTMGR_RUNTIME_DIR");
	return 0;
}

void
minispy_service_fixture_fini(void)
{
	tu_private_scratch_remove(scratch);
}
