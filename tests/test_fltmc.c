/* SPDX-License-Identifier: MIT */
/*
 * test_fltmc.c — the fltmc admin tool against a fake fltmgrd: a thread
 * listens on <private runtime dir>/control (SOCK_SEQPACKET), records the
 * request it gets and answers with a canned reply (or misbehaves on
 * purpose); each test runs the built fltmc binary (FLTMGR_TEST_FLTMC) and
 * checks the request it sent, its output and its exit status
 * (docs/control.md). Needs no root except the one test of a non-root
 * caller, which is skipped with a reason without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "testutil.h"

#define NOBODY     65534
#define EXEC_ERROR "test_fltmc: cannot exec"
/* Bigger than a request may be, so an oversized one shows its real size. */
#define REQUEST_BUF 8192

static const char *fltmc;
static const char *dir;
static char socket_path[PATH_MAX];
static int saved_cwd = -1;

/* --- the fake daemon ---------------------------------------------------- */

enum fake_mode {
	FAKE_REPLY,        /* read the request, send the reply */
	FAKE_CLOSE,        /* read the request, close without a reply */
	FAKE_CLOSE_UNREAD, /* close with the request unread */
	FAKE_REPLY_UNREAD, /* reply and close with the request unread (how
			    * fltmgrd turns away a caller it refuses) */
};
/* In the *_UNREAD modes the fake stops fltmc while it closes, so that
 * everything the close leaves for fltmc is waiting when it reads: on
 * Linux the connection reset is then reported before the queued reply. */

struct fake {
	enum fake_mode mode;
	const char *reply;
	size_t reply_len;
	int lfd, stop[2];
	pthread_t thread;
	/* written by the thread, read after fake_join() */
	int accepted;
	bool stopped; /* fltmc was stopped while the fake closed */
	ssize_t sent; /* what send() returned for the reply */
	char request[REQUEST_BUF];
	ssize_t request_len; /* the packet's real size, -1 if none came */
};

/* The fltmc being run, 0 between runs. */
static _Atomic pid_t running_pid;

/* Stops the running fltmc and waits until it is stopped. */
static bool
stop_fltmc(pid_t *ret_pid)
{
	siginfo_t si;
	pid_t pid;

	/* set by the parent right after fork(), long before fltmc connects */
	for (int i = 0; (pid = running_pid) == 0; i++) {
		if (i == 100000)
			return false;
		usleep(100);
	}
	if (kill(pid, SIGSTOP) < 0)
		return false;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WSTOPPED | WNOWAIT) < 0) {
		kill(pid, SIGCONT);
		return false;
	}
	*ret_pid = pid;
	return true;
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p[2] = { { .fd = f->lfd, .events = POLLIN },
			       { .fd = f->stop[0], .events = POLLIN } };
	int c;

	/* Bounded: fltmc either connects at once or never does. */
	if (poll(p, 2, 20000) <= 0 || !(p[0].revents & POLLIN))
		return NULL;
	c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return NULL;
	f->accepted = 1;
	/* A packet must fit the sender's buffer, which accepted sockets do
	 * not inherit; make room for the large canned replies (best effort:
	 * a failed send shows in f->sent). */
	int sz = 1 << 20;
	if (setsockopt(c, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (f->mode == FAKE_CLOSE_UNREAD || f->mode == FAKE_REPLY_UNREAD) {
		struct pollfd q = { .fd = c, .events = POLLIN };

		pid_t pid = 0;

		(void)poll(&q, 1, 20000); /* the request is there, unread */
		f->stopped = stop_fltmc(&pid);
		if (f->mode == FAKE_REPLY_UNREAD)
			f->sent = send(c, f->reply, f->reply_len, MSG_NOSIGNAL);
		close(c);
		if (f->stopped)
			kill(pid, SIGCONT);
		return NULL;
	}
	f->request_len = recv(c, f->request, sizeof(f->request) - 1, MSG_TRUNC);
	if (f->request_len >= 0 && (size_t)f->request_len < sizeof(f->request))
		f->request[f->request_len] = '\0';
	else
		f->request[sizeof(f->request) - 1] = '\0';
	if (f->mode == FAKE_REPLY)
		f->sent = send(c, f->reply, f->reply_len, MSG_NOSIGNAL);
	close(c);
	return NULL;
}

/* Listens on socket_path and serves one connection as mode says. */
static void
fake_start(struct fake *f, enum fake_mode mode, const char *reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->reply = reply ? reply : "";
	f->reply_len = strlen(f->reply);
	f->request_len = -1;
	f->sent = -1;
	strcpy(sa.sun_path, socket_path);
	f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pipe2(f->stop, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void
fake_join(struct fake *f)
{
	assert_int_equal(write(f->stop[1], "x", 1), 1);
	assert_int_equal(pthread_join(f->thread, NULL), 0);
	close(f->stop[0]);
	close(f->stop[1]);
	close(f->lfd);
	assert_int_equal(unlink(socket_path), 0);
}

/* The request must be the one JSON object expected (member order aside). */
static void
assert_request(const struct fake *f, const char *expected)
{
	json_object *got, *want;

	assert_int_equal(f->accepted, 1);
	assert_true(f->request_len > 0);
	assert_true(f->request_len <= 4096);
	got = json_tokener_parse(f->request);
	want = json_tokener_parse(expected);
	assert_non_null(want);
	if (!got || !json_object_equal(got, want))
		fail_msg("request %s, expected %s", f->request, expected);
	json_object_put(got);
	json_object_put(want);
}

/* --- running fltmc ------------------------------------------------------ */

struct run {
	int code; /* exit status, or 128 + signal */
	char *out, *err;
	size_t out_len, err_len;
};

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

static void
append(char **buf, size_t *len, const char *data, size_t n)
{
	char *grown = realloc(*buf, *len + n + 1);

	assert_non_null(grown);
	memcpy(grown + *len, data, n);
	*len += n;
	grown[*len] = '\0';
	*buf = grown;
}

/* Runs fltmc with args (NULL-terminated), as uid NOBODY if drop_root, and
 * collects its output and exit status into *r. */
static void
run_argv(struct run *r, bool drop_root, const char *const *args)
{
	const char *argv[64];
	int out[2], err[2], status;
	size_t n = 0;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	append(&r->out, &r->out_len, "", 0);
	append(&r->err, &r->err_len, "", 0);
	argv[n++] = fltmc;
	for (; *args; args++) {
		assert_true(n < 63);
		argv[n++] = *args;
	}
	argv[n] = NULL;
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		running_pid = pid;
	if (pid == 0) {
		if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(127);
		if (drop_root &&
		    (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0))
			_exit(127);
		execv(fltmc, (char *const *)argv);
		dprintf(2, EXEC_ERROR " %s: %s\n", fltmc, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	struct pollfd p[2] = { { .fd = out[0], .events = POLLIN },
			       { .fd = err[0], .events = POLLIN } };
	int open_fds = 2;
	while (open_fds > 0) {
		char buf[65536];

		assert_true(poll(p, 2, 90000) > 0);
		for (int i = 0; i < 2; i++) {
			ssize_t got;

			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(p[i].fd, buf, sizeof(buf));
			assert_true(got >= 0);
			if (got == 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
			} else if (i == 0) {
				append(&r->out, &r->out_len, buf, (size_t)got);
			} else {
				append(&r->err, &r->err_len, buf, (size_t)got);
			}
		}
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	running_pid = 0;
	r->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (r->code != 0)
		print_message("fltmc exit %d, stderr: %s", r->code, r->err);
}

#define RUN(r, ...) run_argv((r), false, (const char *const[]){ __VA_ARGS__, NULL })

/* fltmc with args against a fake that answers reply; checks the request
 * and leaves the run in *r. */
static void
exchange(struct run *r, const char *reply, const char *expected_request,
	 const char *const *args)
{
	struct fake f;

	fake_start(&f, FAKE_REPLY, reply);
	run_argv(r, false, args);
	fake_join(&f);
	assert_request(&f, expected_request);
	if (f.sent != (ssize_t)f.reply_len)
		fail_msg("the fake could not send its %zu-byte reply: %zd", f.reply_len,
			 f.sent);
}

#define EXCHANGE(r, reply, request, ...) \
	exchange((r), (reply), (request), (const char *const[]){ __VA_ARGS__, NULL })

/* --- reading the output ------------------------------------------------- */

/* A copy of the first line of text that starts with prefix, or NULL. */
static char *
line_starting(const char *text, const char *prefix)
{
	size_t plen = strlen(prefix);

	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len >= plen && strncmp(p, prefix, plen) == 0)
			return strndup(p, len);
		if (!nl)
			break;
		p = nl + 1;
	}
	return NULL;
}

/* The line starting with prefix must split at blanks into exactly the
 * given words (NULL-terminated). */
static void
assert_words_v(const char *text, const char *prefix, const char *const *words)
{
	char *line = line_starting(text, prefix), *save = NULL, *w;
	size_t i = 0;

	if (!line)
		fail_msg("no line starting with \"%s\" in:\n%s", prefix, text);
	for (w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save), i++) {
		if (!words[i])
			fail_msg("extra word \"%s\" in line starting \"%s\"", w, prefix);
		assert_string_equal(w, words[i]);
	}
	if (words[i])
		fail_msg("word \"%s\" missing from line starting \"%s\"", words[i],
			 prefix);
	free(line);
}

#define assert_words(text, prefix, ...) \
	assert_words_v((text), (prefix), (const char *const[]){ __VA_ARGS__, NULL })

static size_t
count_lines(const char *text)
{
	size_t n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* Where each run of dashes in line ends (one past its last dash). */
static size_t
dash_ends(const char *line, size_t *ends, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; line[i] && n < max; i++)
		if (line[i] == '-' && line[i + 1] != '-')
			ends[n++] = i + 1;
	return n;
}

/* --- setup -------------------------------------------------------------- */

static int
setup(void **state)
{
	(void)state;
	dir = tu_runtime_dir_create();
	snprintf(socket_path, sizeof(socket_path), "%s/control", dir);
	saved_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(saved_cwd >= 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	assert_int_equal(fchdir(saved_cwd), 0);
	close(saved_cwd);
	tu_runtime_dir_remove();
	return 0;
}

/* --- tests -------------------------------------------------------------- */

static const char filters_reply[] =
	"{\"ok\": true, \"filters\": ["
	"{\"name\": \"minispy\", \"altitude\": \"385100\", \"instances\": 1,"
	" \"state\": \"running\", \"object\": \"/usr/lib/fltmgr/minispy.so\","
	" \"deadline_ms\": 5000, \"default_verdict\": \"allow\", \"configured\": true},"
	"{\"name\": \"scanner\", \"altitude\": \"320000.5\", \"instances\": 12,"
	" \"state\": \"running\", \"configured\": false, \"future_member\": [1, 2]}]}";

static void
no_command_lists_filters_as_a_table(void **state)
{
	struct run r;

	(void)state;
	exchange(&r, filters_reply, "{\"command\": \"filters\"}",
		 (const char *const[]){ NULL });
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	assert_words(r.out, "Filter Name", "Filter", "Name", "Num", "Instances",
		     "Altitude", "State");
	assert_words(r.out, "minispy", "minispy", "1", "385100", "running");
	assert_words(r.out, "scanner", "scanner", "12", "320000.5", "running");
	assert_int_equal(count_lines(r.out), 4);
	run_free(&r);

	/* and by name, the same */
	EXCHANGE(&r, filters_reply, "{\"command\": \"filters\"}", "filters");
	assert_int_equal(r.code, 0);
	assert_words(r.out, "minispy", "minispy", "1", "385100", "running");
	run_free(&r);
}

static void
long_filter_name_widens_its_column(void **state)
{
	char name[81], reply[512], *rows[3], *dashes;
	size_t ends[8];
	struct run r;

	(void)state;
	memset(name, 'n', 80);
	name[80] = '\0';
	snprintf(reply, sizeof(reply),
		 "{\"ok\": true, \"filters\": [{\"name\": \"%s\", \"altitude\": \"1\","
		 " \"instances\": 123456, \"state\": \"running\"},"
		 "{\"name\": \"a\", \"altitude\": \"4294967295.25\", \"instances\": 0,"
		 " \"state\": \"running\"}]}",
		 name);
	EXCHANGE(&r, reply, "{\"command\": \"filters\"}", "filters");
	assert_int_equal(r.code, 0);
	dashes = line_starting(r.out, "---");
	assert_non_null(dashes);
	assert_int_equal(dash_ends(dashes, ends, 8), 4);
	assert_int_equal(ends[0], 80); /* the whole name fits */
	rows[0] = line_starting(r.out, name);
	rows[1] = line_starting(r.out, "a ");
	rows[2] = line_starting(r.out, "Filter Name");
	assert_non_null(rows[0]);
	assert_non_null(rows[1]);
	assert_non_null(rows[2]);
	/* right-aligned numbers end where their dashes end */
	for (int i = 0; i < 2; i++) {
		assert_true(strlen(rows[i]) > ends[2]);
		assert_true(rows[i][ends[1] - 1] != ' ' && rows[i][ends[1]] == ' ');
		assert_true(rows[i][ends[2] - 1] != ' ' && rows[i][ends[2]] == ' ');
		assert_string_equal(rows[i] + ends[2] + 2, "running");
	}
	assert_words(r.out, name, name, "123456", "1", "running");
	assert_words(r.out, "a ", "a", "0", "4294967295.25", "running");
	for (int i = 0; i < 3; i++)
		free(rows[i]);
	free(dashes);
	run_free(&r);
}

static void
instances_table_shows_each_column_and_the_full_path(void **state)
{
	char path[701], reply[2048];
	struct run r;

	(void)state;
	for (int i = 0; i < 700; i++)
		path[i] = i % 10 == 0 ? '/' : (char)('a' + i % 26);
	path[700] = '\0';
	snprintf(reply, sizeof(reply),
		 "{\"ok\": true, \"instances\": ["
		 "{\"filter\": \"minispy\", \"altitude\": \"385100\", \"path\": \"/srv\","
		 " \"kind\": \"subtree\", \"state\": \"attached\","
		 " \"state_time\": \"2026-12-07T03:04:05Z\", \"reattaches\": 0,"
		 " \"events\": 1042, \"denied\": 0},"
		 "{\"filter\": \"scanner\", \"altitude\": \"320000\", \"path\": \"%s\","
		 " \"kind\": \"filesystem\", \"state\": \"attached\","
		 " \"state_time\": \"2026-12-07T03:04:05Z\", \"reattaches\": 0,"
		 " \"events\": 9007199254740993, \"denied\": 17}]}",
		 path);
	EXCHANGE(&r, reply, "{\"command\": \"instances\"}", "instances");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	assert_words(r.out, "Filter", "Filter", "Altitude", "Kind", "State", "Events",
		     "Denied", "Path");
	assert_words(r.out, "minispy", "minispy", "385100", "subtree", "attached", "1042",
		     "0", "/srv");
	assert_words(r.out, "scanner", "scanner", "320000", "filesystem", "attached",
		     "9007199254740993", "17", path);
	run_free(&r);
}

/* fltmc volumes: a row per mount, the filters on it with (auto) for
 * automatic instances, "-" for none, another namespace's mount point
 * prefixed with its pid. */
static void
volumes_table_lists_mounts_and_their_filters(void **state)
{
	static const char reply[] =
		"{\"ok\": true, \"volumes\": ["
		"{\"mount_id\": 31, \"mount_point\": \"/media/usb\", \"fs_type\": "
		"\"vfat\","
		" \"source\": \"/dev/sdb1\", \"root\": \"/\", \"ns_pid\": 0,"
		" \"filters\": [{\"name\": \"scanner\", \"kind\": \"filesystem\","
		" \"path\": \"/media/usb\", \"automatic\": true},"
		" {\"name\": \"minispy\", \"kind\": \"subtree\","
		" \"path\": \"/media/usb/x\", \"automatic\": false}]},"
		"{\"mount_id\": 2, \"mount_point\": \"/proc\", \"fs_type\": \"proc\","
		" \"source\": \"proc\", \"ns_pid\": 0, \"filters\": []},"
		"{\"mount_id\": 812, \"mount_point\": \"/data\", \"fs_type\": \"ext4\","
		" \"source\": \"/dev/vdb\", \"ns_pid\": 4242, \"filters\": []}]}";
	struct run r;

	(void)state;
	EXCHANGE(&r, reply, "{\"command\": \"volumes\"}", "volumes");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	assert_words(r.out, "Mount", "Mount", "Point", "File", "System", "Mount", "ID",
		     "Source", "Filters");
	assert_words(r.out, "/media/usb", "/media/usb", "vfat", "31", "/dev/sdb1",
		     "scanner", "(auto),", "minispy");
	assert_words(r.out, "/proc", "/proc", "proc", "2", "proc", "-");
	assert_words(r.out, "[pid", "[pid", "4242]", "/data", "ext4", "812", "/dev/vdb",
		     "-");
	run_free(&r);
}

/* fltmc instances -f NAME asks for that filter's only; -f takes a value
 * and is refused by other commands. */
static void
instances_f_names_the_filter(void **state)
{
	struct run r;

	(void)state;
	EXCHANGE(&r, "{\"ok\": true, \"instances\": []}",
		 "{\"command\": \"instances\", \"name\": \"minispy\"}", "instances", "-f",
		 "minispy");
	assert_int_equal(r.code, 0);
	run_free(&r);
	RUN(&r, "filters", "-f", "minispy");
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "filters takes no --filter option"));
	run_free(&r);
	RUN(&r, "instances", "-f");
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "needs a value"));
	run_free(&r);
}

static void
ports_prints_a_line_per_port_and_an_indented_line_per_client(void **state)
{
	static const char reply[] =
		"{\"ok\": true, \"ports\": ["
		"{\"filter\": \"minispy\", \"name\": \"minispy-port\", \"connections\": "
		"2,"
		" \"accepted\": 3, \"refused\": 1, \"malformed\": 4,"
		" \"messages_sent\": 500, \"replies_received\": 6, \"timeouts\": 7,"
		" \"clients\": ["
		"  {\"pid\": 4321, \"uid\": 0, \"gid\": 0, \"exe\": \"/usr/bin/minispy\","
		"   \"messages_sent\": 200, \"replies_received\": 5, \"timeouts\": 1,"
		"   \"pending_replies\": 2, \"queued_bytes\": 8192},"
		"  {\"pid\": 99, \"uid\": 1000, \"gid\": 1000, \"exe\": null,"
		"   \"messages_sent\": 300, \"replies_received\": 1, \"timeouts\": 6,"
		"   \"pending_replies\": 0, \"queued_bytes\": 0}]},"
		"{\"filter\": \"scanner\", \"name\": \"scan\", \"connections\": 0,"
		" \"accepted\": 0, \"refused\": 0, \"malformed\": 0,"
		" \"messages_sent\": 0, \"replies_received\": 0, \"timeouts\": 0,"
		" \"clients\": []}]}";
	char *first, *second;
	struct run r;

	(void)state;
	EXCHANGE(&r, reply, "{\"command\": \"ports\"}", "ports");
	assert_int_equal(r.code, 0);
	assert_words(r.out, "Port Name", "Port", "Name", "Filter", "Connections",
		     "Accepted", "Refused", "Malformed", "Sent", "Replies", "Timeouts");
	assert_words(r.out, "minispy-port", "minispy-port", "minispy", "2", "3", "1", "4",
		     "500", "6", "7");
	assert_words(r.out, "scan ", "scan", "scanner", "0", "0", "0", "0", "0", "0",
		     "0");
	assert_words(r.out, "    pid 4321", "pid", "4321", "uid", "0", "sent", "200",
		     "replied", "5", "timeouts", "1", "pending", "2", "queued", "8192",
		     "bytes", "exe", "/usr/bin/minispy");
	assert_words(r.out, "    pid   99", "pid", "99", "uid", "1000", "sent", "300",
		     "replied", "1", "timeouts", "6", "pending", "0", "queued", "0",
		     "bytes", "exe", "-");
	/* clients follow their own port, before the next one */
	first = strstr(r.out, "    pid 4321");
	second = strstr(r.out, "scan ");
	assert_non_null(first);
	assert_non_null(second);
	assert_true(strstr(r.out, "minispy-port") < first && first < second);
	assert_int_equal(count_lines(r.out), 6);
	run_free(&r);
}

static void
stats_prints_sections_for_engine_filters_ports_and_daemon(void **state)
{
	static const char reply[] =
		"{\"ok\": true,"
		" \"engine\": {\"permission_events\": 7, \"notification_events\": 8,"
		"  \"readers\": 1, \"brand_new_counter\": 42},"
		" \"filters\": [{\"name\": \"minispy\", \"seen\": 11, \"denied\": 2,"
		"  \"counters\": {\"records\": 99, \"departed\": 3}}],"
		" \"ports\": [{\"filter\": \"minispy\", \"name\": \"mp\","
		"  \"queued_bytes\": 123456789, \"connections\": 1}],"
		" \"daemon\": {\"reloads\": 2, \"control_requests\": 30}}";
	char *engine, *filter, *port, *daemon;
	struct run r;

	(void)state;
	EXCHANGE(&r, reply, "{\"command\": \"stats\"}", "stats");
	assert_int_equal(r.code, 0);
	engine = strstr(r.out, "engine\n");
	filter = strstr(r.out, "filter minispy\n");
	port = strstr(r.out, "port mp (filter minispy)\n");
	daemon = strstr(r.out, "daemon\n");
	assert_non_null(engine);
	assert_non_null(filter);
	assert_non_null(port);
	assert_non_null(daemon);
	assert_true(engine < filter && filter < port && port < daemon);
	assert_words(r.out, "  permission_events", "permission_events", "7");
	assert_words(r.out, "  notification_events", "notification_events", "8");
	assert_words(r.out, "  brand_new_counter", "brand_new_counter", "42");
	assert_words(r.out, "  seen", "seen", "11");
	assert_words(r.out, "  queued_bytes", "queued_bytes", "123456789");
	assert_words(r.out, "  reloads", "reloads", "2");
	assert_words(r.out, "  control_requests", "control_requests", "30");
	/* the names title their sections, they are not counters */
	assert_null(strstr(r.out, "  name"));
	assert_null(strstr(r.out, "  filter"));
	/* `denied 2` is in the filter's section */
	assert_true(strstr(r.out, "  denied") > filter &&
		    strstr(r.out, "  denied") < port);
	/* the filter's own counters, indented under "counters" */
	assert_true(strstr(r.out, "  counters") > filter &&
		    strstr(r.out, "  counters") < strstr(r.out, "    records"));
	assert_words(r.out, "    records", "records", "99");
	assert_words(r.out, "    departed", "departed", "3");
	assert_true(strstr(r.out, "    departed") < port);
	run_free(&r);
}

static void
status_prints_key_value_lines(void **state)
{
	static const char reply[] =
		"{\"ok\": true, \"pid\": 1234, \"version\": \"0.1.0\", \"config\": null,"
		" \"runtime_dir\": \"/run/fltmgr\", \"filter_dir\": "
		"\"/usr/lib/fltmgr/filters\","
		" \"uptime_ms\": 93784000, \"filters\": 1, \"healthy\": true}";
	static const char reply2[] =
		"{\"ok\": true, \"pid\": 1, \"config\": \"/etc/fltmgr/fltmgr.conf\","
		" \"uptime_ms\": 5123, \"healthy\": false}";
	struct run r;

	(void)state;
	EXCHANGE(&r, reply, "{\"command\": \"status\"}", "status");
	assert_int_equal(r.code, 0);
	assert_words(r.out, "PID:", "PID:", "1234");
	assert_words(r.out, "Version:", "Version:", "0.1.0");
	assert_words(r.out, "Uptime:", "Uptime:", "1d", "02:03:04");
	assert_words(r.out, "Healthy:", "Healthy:", "yes");
	assert_words(r.out, "Filters:", "Filters:", "1");
	assert_words(r.out, "Config:", "Config:", "(built-in", "default)");
	assert_words(r.out, "Runtime dir:", "Runtime", "dir:", "/run/fltmgr");
	assert_words(r.out, "Filter dir:", "Filter", "dir:", "/usr/lib/fltmgr/filters");
	run_free(&r);

	EXCHANGE(&r, reply2, "{\"command\": \"status\"}", "status");
	assert_int_equal(r.code, 0);
	assert_words(r.out, "Uptime:", "Uptime:", "00:00:05");
	assert_words(r.out, "Healthy:", "Healthy:", "no");
	assert_words(r.out, "Config:", "Config:", "/etc/fltmgr/fltmgr.conf");
	assert_words(r.out, "Version:", "Version:", "-");
	assert_words(r.out, "Filter dir:", "Filter", "dir:", "-");
	run_free(&r);
}

/* An instance's state against the mount table: attached, re-attached at a
 * time, stale since a time, or its filter held shut; a state this fltmc
 * does not know is printed as the daemon wrote it. */
static void
instances_show_their_state(void **state)
{
	static const char reply[] =
		"{\"ok\": true, \"instances\": ["
		"{\"filter\": \"a\", \"altitude\": \"3\", \"path\": \"/a\", \"kind\":"
		" \"subtree\", \"state\": \"reattached\", \"state_time\":"
		" \"2026-12-07T03:04:05Z\", \"reattaches\": 2, \"events\": 1,"
		" \"denied\": 0},"
		"{\"filter\": \"b\", \"altitude\": \"2\", \"path\": \"/b\", \"kind\":"
		" \"mount\", \"state\": \"stale\", \"state_time\":"
		" \"2026-12-08T00:00:01Z\", \"reattaches\": 0, \"events\": 2,"
		" \"denied\": 0},"
		"{\"filter\": \"c\", \"altitude\": \"1\", \"path\": \"/c\", \"kind\":"
		" \"subtree\", \"state\": \"held\", \"state_time\": null,"
		" \"reattaches\": 0, \"events\": 3, \"denied\": 3},"
		"{\"filter\": \"d\", \"altitude\": \"0\", \"path\": \"/d\", \"kind\":"
		" \"subtree\", \"state\": \"sideways\", \"events\": 4, \"denied\": 0}]}";
	struct run r;

	(void)state;
	EXCHANGE(&r, reply, "{\"command\": \"instances\"}", "instances");
	assert_int_equal(r.code, 0);
	assert_words(r.out, "a ", "a", "3", "subtree", "re-attached",
		     "2026-12-07T03:04:05Z", "1", "0", "/a");
	assert_words(r.out, "b ", "b", "2", "mount", "stale", "since",
		     "2026-12-08T00:00:01Z", "2", "0", "/b");
	assert_words(r.out, "c ", "c", "1", "subtree", "held", "3", "3", "/c");
	assert_words(r.out, "d ", "d", "0", "subtree", "sideways", "4", "0", "/d");
	run_free(&r);
}

/* An unhealthy daemon's problems: one line each, naming the filter (or
 * the engine) and why. */
static void
status_prints_each_problem(void **state)
{
	static const char reply[] =
		"{\"ok\": true, \"pid\": 1, \"healthy\": false, \"problems\": ["
		"{\"filter\": \"tf\", \"problem\": \"running the object it loaded "
		"before: filter object /x/tf.so is not owned by root\"},"
		"{\"filter\": null, \"problem\": \"the engine is not making "
		"progress\"}]}";
	struct run r;

	(void)state;
	EXCHANGE(&r, reply, "{\"command\": \"status\"}", "status");
	assert_int_equal(r.code, 0);
	assert_words(r.out, "Healthy:", "Healthy:", "no");
	assert_words(r.out, "Problem:      filter", "Problem:", "filter",
		     "tf:", "running", "the", "object", "it", "loaded",
		     "before:", "filter", "object", "/x/tf.so", "is", "not", "owned",
		     "by", "root");
	assert_words(r.out, "Problem:      engine", "Problem:", "engine:", "the",
		     "engine", "is", "not", "making", "progress");
	run_free(&r);
}

/* --format=prometheus: the text exposition format. Counters end in
 * _total and are typed counter; the reply's "gauges" are typed gauge and
 * keep their name; filters and ports are labelled, label values escaped;
 * each family has one HELP and one TYPE line, before its samples. */
static void
stats_in_prometheus_format(void **state)
{
	static const char reply[] =
		"{\"ok\": true,"
		" \"engine\": {\"denied\": 7, \"pending\": 2},"
		" \"filters\": [{\"name\": \"a\", \"denied\": 3, \"counters\": "
		"{\"records\": 9}},"
		"               {\"name\": \"b\\\"q\\\\\", \"denied\": 4}],"
		" \"ports\": [{\"filter\": \"a\", \"name\": \"ap\", \"connections\": 1,"
		"             \"accepted\": 5}],"
		" \"daemon\": {\"reloads\": 1},"
		" \"gauges\": {\"engine\": [\"pending\"], \"filters\": [],"
		"              \"ports\": [\"connections\"], \"daemon\": []}}";
	static const char *const want[] = {
		"# TYPE fltmgr_engine_denied_total counter\n"
		"fltmgr_engine_denied_total 7\n",
		"# TYPE fltmgr_engine_pending gauge\n"
		"fltmgr_engine_pending 2\n",
		"# TYPE fltmgr_filter_denied_total counter\n"
		"fltmgr_filter_denied_total{filter=\"a\"} 3\n"
		"fltmgr_filter_denied_total{filter=\"b\\\"q\\\\\"} 4\n",
		"# TYPE fltmgr_filter_counter_total counter\n"
		"fltmgr_filter_counter_total{filter=\"a\",counter=\"records\"} 9\n",
		"# TYPE fltmgr_port_connections gauge\n"
		"fltmgr_port_connections{filter=\"a\",port=\"ap\"} 1\n",
		"# TYPE fltmgr_port_accepted_total counter\n"
		"fltmgr_port_accepted_total{filter=\"a\",port=\"ap\"} 5\n",
		"# TYPE fltmgr_daemon_reloads_total counter\n"
		"fltmgr_daemon_reloads_total 1\n",
	};
	struct run r;

	(void)state;
	EXCHANGE(&r, reply, "{\"command\": \"stats\"}", "stats", "--format=prometheus");
	assert_int_equal(r.code, 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(r.out, want[i]))
			fail_msg("no\n%s\nin\n%s", want[i], r.out);
	/* one HELP and one TYPE per family, and only comments and samples */
	assert_null(strstr(strstr(r.out, "# TYPE fltmgr_filter_denied_total") + 1,
			   "# TYPE fltmgr_filter_denied_total"));
	for (const char *l = r.out; *l; l = strchr(l, '\n') + 1) {
		if (strncmp(l, "# HELP fltmgr_", 14) &&
		    strncmp(l, "# TYPE fltmgr_", 14) && strncmp(l, "fltmgr_", 7))
			fail_msg("a line that is neither a comment nor a sample: %s", l);
		if (!strchr(l, '\n'))
			break;
	}
	run_free(&r);
}

/* --format=prometheus is for stats; other values of --format are refused. */
static void
prometheus_format_only_for_stats(void **state)
{
	struct run r;

	(void)state;
	run_argv(&r, false,
		 (const char *const[]){ "filters", "--format=prometheus", NULL });
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "for stats only"));
	run_free(&r);
	run_argv(&r, false, (const char *const[]){ "stats", "--format=xml", NULL });
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "use text, json or prometheus"));
	run_free(&r);
}

static void
missing_and_mistyped_members_print_dashes(void **state)
{
	static const char filters[] =
		"{\"ok\": true, \"filters\": [{\"name\": \"only-a-name\"},"
		" {\"name\": \"typed\", \"instances\": \"x\", \"altitude\": [1],"
		"  \"state\": {\"a\": 1}}, 7, null, [\"x\"]]}";
	static const char *const odd[][2] = {
		{ "ports", "{\"ok\": true, \"ports\": [{\"name\": \"p\", \"clients\": "
			   "\"none\"}, {\"clients\": [5, {\"pid\": \"x\"}]}]}" },
		{ "stats", "{\"ok\": true, \"engine\": 5, \"filters\": {\"a\": 1},"
			   " \"ports\": [3], \"daemon\": {\"x\": {\"y\": 1}}}" },
		{ "status", "{\"ok\": true, \"pid\": [], \"uptime_ms\": \"long\","
			    " \"healthy\": 1, \"config\": 5}" },
		{ "instances", "{\"ok\": true, \"instances\": {\"not\": \"a list\"}}" },
		{ "filters", "{\"ok\": true}" },
		{ "reload", "{\"ok\": true, \"loaded\": \"many\", \"unloaded\": null}" },
	};
	char request[64];
	struct run r;

	(void)state;
	EXCHANGE(&r, filters, "{\"command\": \"filters\"}", "filters");
	assert_int_equal(r.code, 0);
	assert_words(r.out, "only-a-name", "only-a-name", "-", "-", "-");
	assert_words(r.out, "typed", "typed", "x", "-", "-");
	assert_words(r.out, "- ", "-", "-", "-", "-");
	assert_int_equal(count_lines(r.out), 2 + 5);
	run_free(&r);

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		snprintf(request, sizeof(request), "{\"command\": \"%s\"}", odd[i][0]);
		EXCHANGE(&r, odd[i][1], request, odd[i][0]);
		assert_int_equal(r.code, 0);
		assert_string_equal(r.err, "");
		assert_true(r.out_len > 0);
		run_free(&r);
	}
}

/* Each command's request, and its confirmation line. */
static void
requests_carry_the_command_and_its_arguments(void **state)
{
	char here[PATH_MAX], real[PATH_MAX], expect[2 * PATH_MAX], line[2 * PATH_MAX];
	struct run r;

	(void)state;
	assert_int_equal(chdir(dir), 0);
	assert_non_null(getcwd(here, sizeof(here)));
	assert_int_equal(mkdir("sub", 0755), 0);
	assert_int_equal(symlink("sub", "link"), 0);
	assert_non_null(realpath("sub", real));

	EXCHANGE(&r, "{\"ok\": true}", "{\"command\": \"load\", \"name\": \"minispy\"}",
		 "load", "minispy");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "Loaded filter minispy\n");
	run_free(&r);

	/* options before and after the command */
	EXCHANGE(&r, "{\"ok\": true}",
		 "{\"command\": \"load\", \"name\": \"scanner\", \"altitude\": "
		 "\"320000.5\","
		 " \"object\": \"/opt/scanner.so\"}",
		 "--altitude", "320000.5", "load", "scanner", "--object=/opt/scanner.so");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "Loaded filter scanner at altitude 320000.5\n");
	run_free(&r);

	EXCHANGE(&r, "{\"ok\": true}", "{\"command\": \"unload\", \"name\": \"minispy\"}",
		 "unload", "minispy");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "Unloaded filter minispy\n");
	run_free(&r);

	/* an existing relative path is resolved (symlink included) */
	snprintf(expect, sizeof(expect),
		 "{\"command\": \"attach\", \"name\": \"minispy\", \"path\": \"%s\","
		 " \"kind\": \"subtree\"}",
		 real);
	EXCHANGE(&r, "{\"ok\": true}", expect, "attach", "minispy", "link");
	assert_int_equal(r.code, 0);
	snprintf(line, sizeof(line), "Attached filter minispy to %s (subtree)\n", real);
	assert_string_equal(r.out, line);
	run_free(&r);

	/* a missing one is joined to the working directory */
	snprintf(expect, sizeof(expect),
		 "{\"command\": \"attach\", \"name\": \"minispy\", \"path\": "
		 "\"%s/not/yet\","
		 " \"kind\": \"mount\"}",
		 here);
	EXCHANGE(&r, "{\"ok\": true}", expect, "attach", "--kind", "mount", "minispy",
		 "not/yet");
	assert_int_equal(r.code, 0);
	run_free(&r);

	EXCHANGE(&r, "{\"ok\": true}",
		 "{\"command\": \"attach\", \"name\": \"f\", \"path\": \"/no/such/dir\","
		 " \"kind\": \"filesystem\"}",
		 "attach", "f", "/no/such/dir", "--kind=filesystem");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "Attached filter f to /no/such/dir (filesystem)\n");
	run_free(&r);

	/* `--` lets a path start with a dash */
	snprintf(expect, sizeof(expect),
		 "{\"command\": \"detach\", \"name\": \"f\", \"path\": \"%s/-odd\"}",
		 here);
	EXCHANGE(&r, "{\"ok\": true}", expect, "detach", "--", "f", "-odd");
	assert_int_equal(r.code, 0);
	run_free(&r);

	snprintf(expect, sizeof(expect),
		 "{\"command\": \"detach\", \"name\": \"minispy\", \"path\": \"%s\"}",
		 real);
	EXCHANGE(&r, "{\"ok\": true}", expect, "detach", "minispy", "sub/");
	assert_int_equal(r.code, 0);
	snprintf(line, sizeof(line), "Detached filter minispy from %s\n", real);
	assert_string_equal(r.out, line);
	run_free(&r);

	EXCHANGE(&r, "{\"ok\": true}", "{\"command\": \"status\"}", "status");
	assert_int_equal(r.code, 0);
	run_free(&r);
}

static void
reload_prints_its_counts(void **state)
{
	struct run r;

	(void)state;
	EXCHANGE(&r,
		 "{\"ok\": true, \"loaded\": 1, \"unloaded\": 2, \"restarted\": 0,"
		 " \"attached\": 3, \"detached\": 4}",
		 "{\"command\": \"reload\"}", "reload");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.out, "Reloaded the configuration: 1 loaded, 2 unloaded, "
				   "0 restarted, 3 attached, 4 detached\n");
	assert_string_equal(r.err, "");
	run_free(&r);
}

static void
assert_json_stdout_is(const struct run *r, const char *reply)
{
	json_object *got, *want;

	assert_true(r->out_len > 1);
	assert_int_equal(r->out[r->out_len - 1], '\n');
	assert_int_equal(count_lines(r->out), 1);
	got = json_tokener_parse(r->out);
	want = json_tokener_parse(reply);
	assert_non_null(got);
	assert_non_null(want);
	assert_true(json_object_equal(got, want));
	json_object_put(got);
	json_object_put(want);
}

static void
json_prints_the_reply_on_one_line(void **state)
{
	static const char pretty[] = "{\n  \"ok\": true,\n  \"instances\": [\n"
				     "    {\"filter\": \"a/b\", \"path\": \"/x y\","
				     " \"events\": 1.5e3, \"n\": null}\n  ]\n}\n";
	static const char error[] = "{\"ok\": false, \"errno\": \"EEXIST\", \"error\": "
				    "\"minispy is loaded\"}";
	struct run r;

	(void)state;
	EXCHANGE(&r, filters_reply, "{\"command\": \"filters\"}", "--json");
	assert_int_equal(r.code, 0);
	assert_string_equal(r.err, "");
	assert_json_stdout_is(&r, filters_reply);
	run_free(&r);

	EXCHANGE(&r, pretty, "{\"command\": \"instances\"}", "instances", "--json");
	assert_int_equal(r.code, 0);
	assert_json_stdout_is(&r, pretty);
	run_free(&r);

	/* a refusal: the reply on stdout, the exit status as without --json */
	EXCHANGE(&r, error, "{\"command\": \"load\", \"name\": \"minispy\"}", "--json",
		 "load", "minispy");
	assert_int_equal(r.code, 1);
	assert_json_stdout_is(&r, error);
	run_free(&r);
}

static void
runtime_dir_option_beats_the_environment(void **state)
{
	struct run r;

	(void)state;
	assert_int_equal(setenv("FLTMGR_RUNTIME_DIR", "/nonexistent-fltmgr", 1), 0);
	EXCHANGE(&r, filters_reply, "{\"command\": \"filters\"}", "--runtime-dir", dir);
	assert_int_equal(r.code, 0);
	assert_words(r.out, "minispy", "minispy", "1", "385100", "running");
	run_free(&r);

	RUN(&r, "filters");
	assert_int_equal(r.code, 3);
	assert_string_equal(r.err, "fltmc: fltmgrd is not running (no control socket at "
				   "/nonexistent-fltmgr/control)\n");
	run_free(&r);
	assert_int_equal(setenv("FLTMGR_RUNTIME_DIR", dir, 1), 0);
}

static void
no_socket_exits_3(void **state)
{
	char expect[PATH_MAX + 128];
	struct run r;

	(void)state;
	RUN(&r, "status");
	assert_int_equal(r.code, 3);
	snprintf(expect, sizeof(expect),
		 "fltmc: fltmgrd is not running (no control socket at %s)\n",
		 socket_path);
	assert_string_equal(r.err, expect);
	assert_string_equal(r.out, "");
	run_free(&r);
}

static void
stale_socket_nobody_listens_on_exits_3(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char expect[PATH_MAX + 128];
	struct run r;
	int fd;

	(void)state;
	strcpy(sa.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* the file stays, as after a crashed daemon */

	RUN(&r, "filters");
	assert_int_equal(r.code, 3);
	snprintf(expect, sizeof(expect),
		 "fltmc: fltmgrd is not running (nobody is listening on %s)\n",
		 socket_path);
	assert_string_equal(r.err, expect);
	run_free(&r);
}

static void
assert_permission_message(const struct run *r)
{
	char expect[PATH_MAX + 256];

	snprintf(expect, sizeof(expect),
		 "fltmc: permission denied on %s: fltmc needs root (or membership in the "
		 "daemon's control_group for read-only commands)\n",
		 socket_path);
	assert_string_equal(r->err, expect);
}

static void
eacces_reply_exits_4(void **state)
{
	static const char eacces[] = "{\"ok\": false, \"errno\": \"EACCES\","
				     " \"error\": \"reload needs root\"}";
	struct fake f;
	struct run r;

	(void)state;
	EXCHANGE(&r, eacces, "{\"command\": \"reload\"}", "reload");
	assert_int_equal(r.code, 4);
	assert_permission_message(&r);
	assert_string_equal(r.out, "");
	run_free(&r);

	/* refused at the door: the reply comes and the connection closes
	 * with the request unread */
	fake_start(&f, FAKE_REPLY_UNREAD, eacces);
	RUN(&r, "status");
	fake_join(&f);
	assert_int_equal(f.accepted, 1);
	assert_true(f.stopped);
	assert_int_equal(f.sent, (ssize_t)strlen(eacces));
	assert_int_equal(r.code, 4);
	assert_permission_message(&r);
	run_free(&r);
}

static void
non_root_caller_on_a_root_only_socket_exits_4(void **state)
{
	struct fake f;
	struct run r;

	(void)state;
	if (geteuid() != 0) {
		print_message("skipped: needs root to run fltmc as uid %d\n", NOBODY);
		skip();
	}
	assert_int_equal(chmod(dir, 0755), 0);
	/* uid NOBODY may not reach the build tree (a checkout in a 0700
	 * directory): it runs a copy in the test's own directory. */
	{
		static char copy[PATH_MAX];
		char cmd[2 * PATH_MAX + 64];

		snprintf(copy, sizeof(copy), "%s/fltmc", dir);
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0755 '%s'", fltmc, copy,
			 copy);
		assert_int_equal(system(cmd), 0);
		fltmc = copy;
	}
	fake_start(&f, FAKE_REPLY, filters_reply);
	assert_int_equal(chmod(socket_path, 0600), 0);
	run_argv(&r, true, (const char *const[]){ "filters", NULL });
	fake_join(&f);
	fltmc = getenv("FLTMGR_TEST_FLTMC");
	if (r.code == 127 && strstr(r.err, EXEC_ERROR)) {
		print_message("skipped: uid %d cannot run %s\n", NOBODY, fltmc);
		run_free(&r);
		skip();
	}
	assert_int_equal(r.code, 4);
	assert_permission_message(&r);
	assert_int_equal(f.accepted, 0);
	run_free(&r);
}

static void
error_reply_exits_1_with_the_daemons_message(void **state)
{
	struct run r;

	(void)state;
	EXCHANGE(&r,
		 "{\"ok\": false, \"errno\": \"ENOENT\","
		 " \"error\": \"no filter named \\\"x\\\" is loaded\"}",
		 "{\"command\": \"unload\", \"name\": \"x\"}", "unload", "x");
	assert_int_equal(r.code, 1);
	assert_string_equal(r.out, "");
	assert_string_equal(r.err,
			    "fltmc: unload: no filter named \"x\" is loaded (ENOENT)\n");
	run_free(&r);

	/* EBUSY (too many clients) is the daemon's refusal too */
	EXCHANGE(&r,
		 "{\"ok\": false, \"errno\": \"EBUSY\", \"error\": \"too "
		 "many\\nclients\"}",
		 "{\"command\": \"ports\"}", "ports");
	assert_int_equal(r.code, 1);
	assert_string_equal(r.err, "fltmc: ports: too many\\x0aclients (EBUSY)\n");
	run_free(&r);

	/* with the explanation missing or mistyped */
	EXCHANGE(&r, "{\"ok\": false, \"errno\": 5}", "{\"command\": \"reload\"}",
		 "reload");
	assert_int_equal(r.code, 1);
	assert_string_equal(r.err, "fltmc: reload: the daemon gave no reason\n");
	run_free(&r);
}

static void
malformed_replies_exit_5(void **state)
{
	static const char *const replies[] = {
		"not json",
		"{\"ok\": true",
		"[1, 2]",
		"null",
		"\"ok\"",
		"{\"filters\": []}",
		"{\"ok\": \"yes\"}",
		"{\"ok\": true} trailing",
		"{\"ok\": true}{\"ok\": true}",
		"{\"ok\": true, \"s\": \"\xff\xfe\"}",
	};
	struct run r;

	(void)state;
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		EXCHANGE(&r, replies[i], "{\"command\": \"filters\"}", "filters");
		if (r.code != 5)
			fail_msg("reply %s: exit %d, expected 5", replies[i], r.code);
		assert_string_equal(r.out, "");
		assert_non_null(strstr(r.err, "fltmc: protocol error: "));
		assert_int_equal(count_lines(r.err), 1);
		run_free(&r);
	}
	/* trailing blanks are no error */
	EXCHANGE(&r, "{\"ok\": true}\n", "{\"command\": \"reload\"}", "reload");
	assert_int_equal(r.code, 0);
	run_free(&r);
}

static void
closing_without_a_reply_exits_5(void **state)
{
	static const enum fake_mode modes[] = { FAKE_CLOSE, FAKE_CLOSE_UNREAD };
	struct fake f;
	struct run r;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		fake_start(&f, modes[i], NULL);
		RUN(&r, "unload", "minispy");
		fake_join(&f);
		assert_int_equal(f.accepted, 1);
		assert_true(modes[i] != FAKE_CLOSE_UNREAD || f.stopped);
		assert_int_equal(r.code, 5);
		assert_string_equal(
			r.err, "fltmc: fltmgrd closed the connection without replying\n");
		run_free(&r);
	}
	/* an empty packet is no reply either */
	EXCHANGE(&r, "", "{\"command\": \"filters\"}", "filters");
	assert_int_equal(r.code, 5);
	run_free(&r);
}

static void
large_reply_is_read_whole(void **state)
{
	enum { N = 2000 };
	char *reply = NULL, row[160], prefix[80], name[64];
	size_t len = 0;
	struct run r;

	(void)state;
	append(&reply, &len, "{\"ok\": true, \"instances\": [", 27);
	for (int i = 0; i < N; i++) {
		int n = snprintf(
			row, sizeof(row),
			"%s{\"filter\": \"f%d\", \"altitude\": \"%d\","
			" \"path\": \"/srv/data/%08d\", \"kind\": \"subtree\","
			" \"state\": \"attached\", \"events\": %d, \"denied\": 0}",
			i ? "," : "", i, 100000 + i, i, i * 7);
		append(&reply, &len, row, (size_t)n);
	}
	append(&reply, &len, "]}", 2);
	assert_true(len > 200000);
	EXCHANGE(&r, reply, "{\"command\": \"instances\"}", "instances");
	assert_int_equal(r.code, 0);
	assert_int_equal(count_lines(r.out), 2 + N);
	snprintf(name, sizeof(name), "f%d", N - 1);
	snprintf(prefix, sizeof(prefix), "%s ", name);
	snprintf(row, sizeof(row), "/srv/data/%08d", N - 1);
	assert_words(r.out, prefix, name, "101999", "subtree", "attached", "13993", "0",
		     row);
	run_free(&r);
	free(reply);
}

static void
usage_errors_exit_2_without_connecting(void **state)
{
	static const char *const cases[][6] = {
		{ "bogus" },
		{ "load" },
		{ "unload" },
		{ "attach", "minispy" },
		{ "detach" },
		{ "attach", "minispy", "/srv", "--kind", "bogus" },
		{ "filters", "extra" },
		{ "unload", "a", "b" },
		{ "--bogus" },
		{ "-x" },
		{ "--json=yes" },
		{ "unload", "x", "--kind", "mount" },
		{ "status", "--altitude", "1" },
		{ "--runtime-dir" },
		{ "load", "" },
		{ "attach", "x", "" },
	};
	struct fake f;
	struct run r;

	(void)state;
	fake_start(&f, FAKE_REPLY, "{\"ok\": true}");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_argv(&r, false, cases[i]);
		if (r.code != 2)
			fail_msg("fltmc %s: exit %d, expected 2", cases[i][0], r.code);
		assert_string_equal(r.out, "");
		assert_int_equal(strncmp(r.err, "fltmc: ", 7), 0);
		assert_non_null(strstr(r.err, "fltmc --help"));
		assert_int_equal(count_lines(r.err), 1);
		run_free(&r);
	}
	/* a request over 4096 bytes is refused before it is sent */
	char long_path[5001];
	memset(long_path, 'p', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	RUN(&r, "attach", "minispy", long_path);
	assert_int_equal(r.code, 2);
	assert_non_null(strstr(r.err, "4096"));
	run_free(&r);
	fake_join(&f);
	assert_int_equal(f.accepted, 0);
}

static void
help_and_version(void **state)
{
	static const char *const names[] = { "filters", "instances", "ports",  "stats",
					     "status",  "load",      "unload", "attach",
					     "detach",  "reload" };
	const char *version = getenv("FLTMGR_TEST_VERSION");
	char expect[64];
	struct run r;

	(void)state;
	RUN(&r, "--help");
	assert_int_equal(r.code, 0);
	assert_int_equal(strncmp(r.out, "Usage: fltmc ", 13), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_non_null(strstr(r.out, names[i]));
	assert_string_equal(r.err, "");
	run_free(&r);

	assert_non_null(version);
	RUN(&r, "--version");
	assert_int_equal(r.code, 0);
	snprintf(expect, sizeof(expect), "fltmc %s\n", version);
	assert_string_equal(r.out, expect);
	run_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(volumes_table_lists_mounts_and_their_filters),
		T(instances_f_names_the_filter),
		T(no_command_lists_filters_as_a_table),
		T(long_filter_name_widens_its_column),
		T(instances_table_shows_each_column_and_the_full_path),
		T(ports_prints_a_line_per_port_and_an_indented_line_per_client),
		T(stats_prints_sections_for_engine_filters_ports_and_daemon),
		T(stats_in_prometheus_format),
		T(prometheus_format_only_for_stats),
		T(status_prints_key_value_lines),
		T(status_prints_each_problem),
		T(instances_show_their_state),
		T(missing_and_mistyped_members_print_dashes),
		T(requests_carry_the_command_and_its_arguments),
		T(reload_prints_its_counts),
		T(json_prints_the_reply_on_one_line),
		T(runtime_dir_option_beats_the_environment),
		T(no_socket_exits_3),
		T(stale_socket_nobody_listens_on_exits_3),
		T(eacces_reply_exits_4),
		T(non_root_caller_on_a_root_only_socket_exits_4),
		T(error_reply_exits_1_with_the_daemons_message),
		T(malformed_replies_exit_5),
		T(closing_without_a_reply_exits_5),
		T(large_reply_is_read_whole),
		T(usage_errors_exit_2_without_connecting),
		T(help_and_version),
#undef T
	};

	fltmc = getenv("FLTMGR_TEST_FLTMC");
	if (!fltmc) {
		fprintf(stderr, "test_fltmc: FLTMGR_TEST_FLTMC is not set (run it with "
				"meson test)\n");
		return 1;
	}
	return cmocka_run_group_tests_name("fltmc", tests, NULL, NULL);
}
