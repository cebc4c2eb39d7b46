/* SPDX-License-Identifier: MIT */
/*
 * test_daemon_control.c — the control socket: who may connect and
 * change things (file mode, control_group, the peer's credentials),
 * malformed requests, the client limits and the slots kept for root.
 *
 * The real fltmgrd and fltmc in a private mount namespace, root only;
 * the daemon, the paths of each test and its setup: daemon_fixture.h.
 */
#include "daemon_fixture.h"

/* ---- who may connect, and bad requests ---- */

/* fltmc as an unprivileged user: refused, exit 4, a clear message; with
 * control_group set, its members may read but not change. */
static void
test_fltmc_access(void **state)
{
	char out[4096];

	(void)state;
	daemon_start();
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "filters", NULL }),
			 4);
	assert_non_null(strstr(out, "permission denied"));
	assert_int_equal(daemon_stop(), 0);

	/* gid 65534 is "nogroup" on Debian. */
	write_conf2("control_group = nogroup\n", NULL);
	daemon_start();
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "--json", "filters", NULL }),
			 0);
	assert_non_null(strstr(out, "\"tf\""));
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "unload", "tf", NULL }),
			 4);
	assert_int_equal(try_open("secret.txt"), -EPERM); /* still loaded */
}

/* Bad requests on the control socket: an error reply and a counter,
 * never a crash; the daemon keeps serving. */
static void
test_control_bad_requests(void **state)
{
	static const char *const bad[] = {
		"not json",
		"[1,2]",
		"{\"command\":42}",
		"{\"command\":\"attach\",\"name\":\"tf\"}",
		"{\"command\":\"attach\",\"name\":\"tf\",\"path\":\"rel\"}",
		"{\"command\":\"filters\",\"extra\":1}",
		"{\"command\":\"load\",\"name\":\"a\\nb\"}",
		"{\"command\":\"status\"} trailing",
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static char big[8192];
	struct json_object *o;
	char buf[4096];
	int fd;

	(void)state;
	daemon_start();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ssize_t n;

		assert_int_equal(send(fd, bad[i], strlen(bad[i]), 0),
				 (ssize_t)strlen(bad[i]));
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		assert_true(n > 0);
		buf[n] = '\0';
		o = json_tokener_parse(buf);
		assert_non_null(o);
		assert_false(json_object_get_boolean(jget(o, "ok")));
		assert_string_equal(json_object_get_string(jget(o, "errno")), "EINVAL");
		json_object_put(o);
	}
	/* Oversized: refused and that client closed. */
	memset(big, ' ', sizeof(big));
	assert_int_equal(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
	assert_true(recv(fd, buf, sizeof(buf) - 1, 0) > 0);
	assert_non_null(strstr(buf, "EMSGSIZE"));
	assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0);
	close(fd);
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_malformed"),
			 (int64_t)(sizeof(bad) / sizeof(bad[0])) + 1);
	json_object_put(o);
}

/* ---- control_group, the peer's credentials, client limits ---- */

/* control_group set by a reload: the control socket gets the group
 * (CAP_CHOWN) and mode 0660, and members may read. */
static void
test_control_group_given_by_reload(void **state)
{
	char path[300], out[4096];
	struct stat st;

	(void)state;
	daemon_start();
	snprintf(path, sizeof(path), "%s/control", rundir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	write_conf2("control_group = nogroup\n", NULL);
	assert_int_equal(RUN(out, (char *)fltmc_bin, "--runtime-dir", rundir, "reload"),
			 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_gid, 65534);
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_null(strstr(read_file(logfile), "cannot change group"));
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "filters", NULL }),
			 0);
}

/* The file mode is not the only check: with the control socket opened to
 * everyone, a user who is neither root nor in control_group still gets
 * one EACCES reply (fltmc exit 4), counted and logged. */
static void
test_control_peer_checked_even_if_socket_mode_is_opened(void **state)
{
	char path[300], out[4096];
	struct json_object *o;

	(void)state;
	daemon_start();
	snprintf(path, sizeof(path), "%s/control", rundir);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(run_as(out, sizeof(out), 65534, 65534,
				(char *const[]){ fltmc_nobody, "--runtime-dir", rundir,
						 "filters", NULL }),
			 4);
	assert_non_null(strstr(out, "permission denied"));
	assert_non_null(strstr(read_file(logfile), "control: refused pid"));
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_refused"), 1);
	json_object_put(o);
}

/* Control socket bounds: at most 16 clients (the 17th gets EBUSY for its
 * request and is closed; one that sends nothing is closed unanswered); a client that sends nothing is closed after 5 s; the daemon
 * serves the next one. */
static void
test_control_client_limits(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fds[16], extra;
	char buf[4096];
	ssize_t n;
	struct json_object *o;

	(void)state;
	daemon_start();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
	for (int i = 0; i < 16; i++) {
		fds[i] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	/* Each is accepted once the daemon's loop runs; a request on the last
	 * one proves all 16 are in. */
	assert_int_equal(send(fds[15], "{\"command\":\"status\"}", 20, 0), 20);
	assert_true(recv(fds[15], buf, sizeof(buf), 0) > 0);
	/* The 17th: its request is read, then answered EBUSY and closed
	 * (a reply beside an unread request would be a reset on Linux 6.1). */
	extra = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(extra, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(extra, "{\"command\":\"status\"}", 20, 0), 20);
	n = recv(extra, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		fail_msg("the 17th client: %s instead of the EBUSY reply",
			 strerror(errno));
	buf[n] = '\0';
	assert_non_null(strstr(buf, "EBUSY"));
	assert_int_equal(recv(extra, buf, sizeof(buf), 0), 0);
	close(extra);
	/* An 18th that sends nothing is closed after CONTROL_REFUSE_MS,
	 * without a reply. */
	extra = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(extra, (struct sockaddr *)&sa, sizeof(sa)), 0);
	{
		struct timeval tv = { .tv_sec = 30 };

		setsockopt(extra, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	assert_int_equal(recv(extra, buf, sizeof(buf), 0), 0);
	close(extra);
	/* Idle ones are closed after 5 s (generous margin on a busy host). */
	for (int i = 0; i < 16; i++) {
		struct timeval tv = { .tv_sec = 30 };

		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		assert_int_equal(recv(fds[i], buf, sizeof(buf), 0), 0);
		close(fds[i]);
	}
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_timeouts"), 16);
	assert_int_equal(jint(jget(o, "daemon"), "control_busy"), 2);
	json_object_put(o);
}

/* ---- the slots kept for root ---- */

/* What a uid 65534 control_group member got when it tried to hold
 * HOLD_TRIES control connections. */
#define HOLD_TRIES 20

struct holder {
	pid_t pid;
	int up, down; /* child -> us, us -> child */
	int accepted, refused;
	char message[512];
};

static bool
holder_status(int fd, char *reply, size_t len)
{
	static const char req[] = "{\"command\":\"status\"}";
	ssize_t n = -1;

	(void)send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
	/* A refused client may see the reset before the reply it was sent. */
	for (int i = 0; i < 2 && n < 0; i++)
		n = recv(fd, reply, len - 1, 0);
	reply[n > 0 ? n : 0] = '\0';
	return n > 0 && strstr(reply, "\"ok\":true");
}

static void
holder_start(struct holder *h)
{
	int up[2], down[2];

	assert_int_equal(pipe2(up, O_CLOEXEC), 0);
	assert_int_equal(pipe2(down, O_CLOEXEC), 0);
	fflush(stdout);
	h->pid = fork();
	assert_true(h->pid >= 0);
	if (h->pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fds[HOLD_TRIES], n = 0, refused = 0;
		char reply[4096], msg[4096] = "";
		struct pollfd pf = { .fd = down[0], .events = POLLIN };

		close(up[0]);
		close(down[1]);
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(1);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control", rundir);
		for (int i = 0; i < HOLD_TRIES; i++) {
			struct timeval tv = { .tv_sec = 10 };
			int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
				_exit(2);
			if (holder_status(fd, reply, sizeof(reply))) {
				fds[n++] = fd;
			} else {
				if (!refused++)
					snprintf(msg, sizeof(msg), "%s", reply);
				close(fd);
			}
		}
		dprintf(up[1], "%d %d %s\n", n, refused, msg);
		/* Hold them (a request every second keeps them from the idle
		 * timeout) until released, or 60 s. */
		for (int t = 0; t < 60 && poll(&pf, 1, 1000) == 0; t++)
			for (int i = 0; i < n; i++)
				(void)holder_status(fds[i], reply, sizeof(reply));
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	h->up = up[0];
	h->down = down[1];
	{
		char buf[1024];
		ssize_t n = read(h->up, buf, sizeof(buf) - 1);

		assert_true(n > 0);
		buf[n] = '\0';
		assert_int_equal(sscanf(buf, "%d %d", &h->accepted, &h->refused), 2);
		snprintf(h->message, sizeof(h->message), "%s",
			 strchr(strchr(buf, ' ') + 1, ' ') + 1);
	}
}

static void
holder_stop(struct holder *h)
{
	int status;

	close(h->down);
	close(h->up);
	assert_int_equal(waitpid(h->pid, &status, 0), h->pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A control_group member (uid 65534) tries to hold 20 control
 * connections: it gets at most the per-user share, the rest are refused
 * with a reason that says so and counted, and root's fltmc still works
 * (slots are kept for uid 0); the member's own extra fltmc is refused
 * with the same clear error. */
static void
test_control_slots_kept_for_root(void **state)
{
	struct holder h;
	struct json_object *o;
	char out[4096];
	int rc;

	(void)state;
	write_conf2("control_group = nogroup\n", NULL);
	daemon_start();
	holder_start(&h);
	print_message("uid 65534 tried %d control connections: %d accepted, %d "
		      "refused\n",
		      HOLD_TRIES, h.accepted, h.refused);
	rc = FLTMC(out, "status");
	if (rc != 0)
		fail_msg("root's fltmc status exited %d while uid 65534 held %d control "
			 "connections: %s",
			 rc, h.accepted, out);
	assert_int_equal(h.accepted, 4);
	assert_int_equal(h.refused, HOLD_TRIES - 4);
	if (!strstr(h.message, "EBUSY") || !strstr(h.message, "uid 65534"))
		fail_msg("refusal: %s", h.message);
	rc = run_as(out, sizeof(out), 65534, 65534,
		    (char *const[]){ fltmc_nobody, "--runtime-dir", rundir, "filters",
				     NULL });
	if (rc != 1 || !strstr(out, "uid 65534") || !strstr(out, "EBUSY"))
		fail_msg("uid 65534's fifth fltmc: exit %d: %s", rc, out);
	o = fltmc_json("stats", NULL, NULL);
	assert_int_equal(jint(jget(o, "daemon"), "control_busy"), HOLD_TRIES - 4 + 1);
	json_object_put(o);
	holder_stop(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fltmc_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_bad_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_control_group_given_by_reload, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_control_client_limits, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_control_peer_checked_even_if_socket_mode_is_opened, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_control_slots_kept_for_root, setup,
						teardown),
	};
	int r;

	r = daemon_fixture_init("test_daemon_control");
	if (r != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	daemon_fixture_fini();
	return r;
}
