/* SPDX-License-Identifier: MIT */
/*
 * test_port_access.c — who may connect to a port and what the connect
 * callback gets: uid and gid rules (children re-executed with CHILD_ARG
 * drop privileges; root only, skipped otherwise), the socket file's
 * mode, max_connections, an error from the connect callback, the
 * connection context and the peer's credentials.
 *
 * Suite "ports": each test has its own runtime directory, manager and
 * filter; the fixture, the callbacks and the raw clients that speak the
 * wire protocol by hand: port_fixture.h.
 */
#include "port_fixture.h"

/* ---- access control (root only) ---------------------------------------- */

#define CHILD_SETID_FAILED 200
#define CHILD_ARG          "--connect-as"

static void
require_root(void)
{
	if (geteuid() != 0) {
		print_message("skipped: needs root to setuid/setgid a child "
			      "(euid is %u)\n",
			      (unsigned)geteuid());
		skip();
	}
}

/*
 * The child's side, in a fresh process (this program re-executed with
 * CHILD_ARG uid gid groups): take the credentials, connect with context
 * "child" and call the filter once. Exit status: 0, the errno of a failed
 * connect, or one of the CHILD_* codes.
 */
static int
child_main(char **argv)
{
	gid_t groups[8];
	size_t n_groups = 0;
	uid_t uid = (uid_t)strtoul(argv[0], NULL, 10);
	gid_t gid = (gid_t)strtoul(argv[1], NULL, 10);
	filter_port *p = NULL;
	char out[16], *g = argv[2], *end;
	size_t out_len = 0;
	int r;

	alarm(9);
	while (*g && n_groups < 8) {
		groups[n_groups++] = (gid_t)strtoul(g, &end, 10);
		g = *end == ',' ? end + 1 : end;
	}
	if (setgroups(n_groups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		_exit(CHILD_SETID_FAILED);
	r = filter_connect_communication_port(PORT_NAME, 0, "child", 5, &p);
	if (r < 0)
		_exit(-r & 0xff);
	r = filter_send_message(p, "hi", 2, out, sizeof(out), &out_len);
	filter_close_port(p);
	if (r < 0 || out_len != 5 || memcmp(out, "ok:hi", 5) != 0)
		_exit(CHILD_CALL_FAILED);
	_exit(0);
}

/*
 * Runs child_main() with the given credentials in a child process (fork,
 * then exec of this program, so the child starts single-threaded, which
 * matters under TSan) and reaps it. Returns its exit status; skips the test
 * if the credentials could not be taken.
 */
static int
run_child(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, pid_t *ret_pid)
{
	char a_uid[16], a_gid[16], a_groups[128] = "";
	char *args[] = { "test_port_protocol", CHILD_ARG, a_uid, a_gid, a_groups, NULL };
	char self[PATH_MAX];
	ssize_t n;
	int status;
	pid_t pid;

	/* The path, not /proc/self/exe itself: under valgrind the link reads
	 * as this program, but executing it would start valgrind's tool. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';

	snprintf(a_uid, sizeof(a_uid), "%u", (unsigned)uid);
	snprintf(a_gid, sizeof(a_gid), "%u", (unsigned)gid);
	for (size_t i = 0; i < n_groups; i++) {
		size_t len = strlen(a_groups);

		snprintf(a_groups + len, sizeof(a_groups) - len, "%s%u", i ? "," : "",
			 (unsigned)groups[i]);
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execv(self, args);
		_exit(CHILD_EXEC_FAILED);
	}
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (ret_pid)
		*ret_pid = pid;
	if (!WIFEXITED(status))
		fail_msg("child died with status %#x", (unsigned)status);
	if (WEXITSTATUS(status) == CHILD_EXEC_FAILED)
		fail_msg("could not re-execute /proc/self/exe");
	if (WEXITSTATUS(status) == CHILD_SETID_FAILED) {
		print_message("skipped: cannot change credentials here\n");
		skip();
	}
	return WEXITSTATUS(status);
}

/* The child runs as another user: the runtime dir must be searchable. */
static void
open_runtime_dir(struct fixture *fx)
{
	assert_int_equal(chmod(fx->dir, 0755), 0);
}

static void
expect_refused_child(struct fixture *fx, uid_t uid, gid_t gid, const gid_t *groups,
		     size_t n_groups)
{
	assert_int_equal(run_child(uid, gid, groups, n_groups, NULL), EACCES);
	assert_int_equal(atomic_load(&fx->connect_calls), 0);
	assert_true(WAIT_STAT(fx, connections_refused, 1) == 1);
	assert_true(server_stats(fx).connections_accepted == 0);
	assert_int_equal(server_stats(fx).connections_current, 0);
}

static void
expect_accepted_child(struct fixture *fx, uid_t uid, gid_t gid, const gid_t *groups,
		      size_t n_groups)
{
	struct conn *c;
	pid_t pid;

	assert_int_equal(run_child(uid, gid, groups, n_groups, &pid), 0);
	assert_int_equal(atomic_load(&fx->connect_calls), 1);
	c = find_conn(fx, "child");
	assert_non_null(c);
	assert_int_equal(c->peer.pid, pid);
	assert_int_equal(c->peer.uid, uid);
	assert_int_equal(c->peer.gid, gid);
	assert_int_equal(atomic_load(&fx->messages), 1);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
	assert_true(server_stats(fx).connections_refused == 0);
}

static void
unauthorised_uid_refused_before_connect_callback(void **state)
{
	struct fixture *fx = *state;
	const uid_t uids[] = { 4242 };

	require_root();
	open_runtime_dir(fx);
	create_port(fx, 0666, uids, 1, NULL, 0, 4);
	expect_refused_child(fx, 65534, 65534, NULL, 0);
}

static void
unlisted_gid_refused_before_connect_callback(void **state)
{
	struct fixture *fx = *state;
	const gid_t gids[] = { 4343 };
	const gid_t groups[] = { 4344, 4345 };

	require_root();
	open_runtime_dir(fx);
	create_port(fx, 0666, NULL, 0, gids, 1, 4);
	expect_refused_child(fx, 65534, 65534, groups, 2);
}

static void
allowed_uid_connects(void **state)
{
	struct fixture *fx = *state;
	const uid_t uids[] = { 1, 4242 };

	require_root();
	open_runtime_dir(fx);
	create_port(fx, 0666, uids, 2, NULL, 0, 4);
	expect_accepted_child(fx, 4242, 65534, NULL, 0);
}

static void
allowed_primary_gid_connects(void **state)
{
	struct fixture *fx = *state;
	const uid_t uids[] = { 4242 };
	const gid_t gids[] = { 4343 };

	require_root();
	open_runtime_dir(fx);
	create_port(fx, 0666, uids, 1, gids, 1, 4);
	expect_accepted_child(fx, 65534, 4343, NULL, 0);
}

static void
allowed_supplementary_gid_connects(void **state)
{
	struct fixture *fx = *state;
	const uid_t uids[] = { 4242 };
	const gid_t gids[] = { 4000, 4344 };
	const gid_t groups[] = { 4343, 4344 };

	require_root();
	open_runtime_dir(fx);
	create_port(fx, 0666, uids, 1, gids, 2, 4);
	expect_accepted_child(fx, 65534, 65534, groups, 2);
}

/* The default mode 0600: another user is refused by the kernel at
 * connect(), before the accept thread or any callback sees anything. */
static void
default_mode_refuses_other_users_in_the_kernel(void **state)
{
	struct fixture *fx = *state;
	struct stat st;

	require_root();
	open_runtime_dir(fx);
	create_default_port(fx, 4);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(run_child(65534, 65534, NULL, 0, NULL), EACCES);
	assert_int_equal(atomic_load(&fx->connect_calls), 0);
	assert_int_equal(server_stats(fx).connections_refused, 0); /* never accepted */
	assert_int_equal(server_stats(fx).connections_accepted, 0);
}

/* ---- connection limit and connect callback ------------------------------ */

static void
max_connections_enforced(void **state)
{
	struct fixture *fx = *state;
	filter_port *a = NULL, *b = NULL, *c = NULL;
	struct conn *ca;
	int64_t end;
	int r;

	create_default_port(fx, 2);
	assert_int_equal(lib_connect(fx, "a", &a), 0);
	assert_int_equal(lib_connect(fx, "b", &b), 0);
	assert_int_equal(server_stats(fx).connections_current, 2);
	assert_int_equal(lib_connect(fx, "c", &c), -EUSERS);
	assert_int_equal(atomic_load(&fx->connect_calls), 2);
	assert_true(WAIT_STAT(fx, connections_refused, 1) == 1);

	ca = find_conn(fx, "a");
	assert_non_null(ca);
	lib_close(fx, a);
	assert_int_equal(wait_int(&ca->disconnected, 1, WAIT_MS), 1);
	/* The slot is released after the callback returns: allow a moment. */
	end = tu_now_ms() + WAIT_MS;
	while ((r = lib_connect(fx, "c", &c)) == -EUSERS && tu_now_ms() < end)
		usleep(10000);
	assert_int_equal(r, 0);
	assert_int_equal(server_stats(fx).connections_current, 2);
	exchange(fx, c, find_conn(fx, "c"));
	exchange(fx, b, find_conn(fx, "b"));

	lib_close(fx, b);
	lib_close(fx, c);
	assert_int_equal(wait_int(&fx->disconnects, 3, WAIT_MS), 3);
}

static void
connect_callback_error_reaches_client(void **state)
{
	struct fixture *fx = *state;
	filter_port *p = NULL;
	struct flt_port_stats st;

	create_default_port(fx, 4);
	atomic_store(&fx->connect_result, -EPERM);
	assert_int_equal(lib_connect(fx, "x", &p), -EPERM);
	atomic_store(&fx->connect_result, -ENOSPC);
	assert_int_equal(lib_connect(fx, "y", &p), -ENOSPC);
	assert_int_equal(atomic_load(&fx->connect_calls), 2);
	assert_true(WAIT_STAT(fx, connections_refused, 2) == 2);
	usleep(300 * 1000);
	assert_int_equal(atomic_load(&fx->disconnects), 0);
	st = server_stats(fx);
	assert_true(st.connections_accepted == 0);
	assert_int_equal(wait_current(fx, 0), 0);

	/* The port itself is fine. */
	atomic_store(&fx->connect_result, 0);
	assert_int_equal(lib_connect(fx, "z", &p), 0);
	exchange(fx, p, find_conn(fx, "z"));
	lib_close(fx, p);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

/* ---- connection context and peer ------------------------------------------ */

static void
context_and_peer_reach_connect_callback(void **state)
{
	struct fixture *fx = *state;
	unsigned char ctx[300];
	struct flt_peer peer;
	filter_port *p = NULL;
	struct conn *c;

	for (size_t i = 0; i < sizeof(ctx); i++)
		ctx[i] = (unsigned char)(i * 13); /* includes NUL bytes */
	create_default_port(fx, 4);
	assert_int_equal(
		filter_connect_communication_port(PORT_NAME, 0, ctx, sizeof(ctx), &p), 0);
	fx->clients[0] = p;
	assert_int_equal(atomic_load(&fx->connect_calls), 1);
	pthread_mutex_lock(&fx->mu);
	c = fx->n_conns == 1 ? &fx->conns[0] : NULL;
	pthread_mutex_unlock(&fx->mu);
	assert_non_null(c);
	assert_int_equal(c->ctx_len, sizeof(ctx));
	assert_memory_equal(c->ctx, ctx, sizeof(ctx));
	assert_int_equal(c->peer.pid, getpid());
	assert_int_equal(c->peer.uid, getuid());
	assert_int_equal(c->peer.gid, getgid());

	memset(&peer, 0, sizeof(peer));
	assert_int_equal(flt_port_get_peer(fx->f, &c->port, &peer), 0);
	assert_int_equal(peer.pid, getpid());
	assert_int_equal(peer.uid, getuid());
	assert_int_equal(peer.gid, getgid());

	lib_close(fx, p);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

static void
empty_context_reaches_callback(void **state)
{
	struct fixture *fx = *state;
	filter_port *p = NULL;
	struct conn *c;

	create_default_port(fx, 4);
	assert_int_equal(filter_connect_communication_port(PORT_NAME, 0, NULL, 0, &p), 0);
	fx->clients[0] = p;
	c = find_conn(fx, "");
	assert_non_null(c);
	assert_int_equal(c->ctx_len, 0);
	lib_close(fx, p);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

static void
max_size_context_accepted(void **state)
{
	struct fixture *fx = *state;
	static unsigned char ctx[FLT_PORT_MAX_CONTEXT];
	filter_port *p = NULL;
	struct conn *c;

	for (size_t i = 0; i < sizeof(ctx); i++)
		ctx[i] = (unsigned char)(i ^ (i >> 8));
	create_default_port(fx, 4);
	assert_int_equal(
		filter_connect_communication_port(PORT_NAME, 0, ctx, sizeof(ctx), &p), 0);
	fx->clients[0] = p;
	pthread_mutex_lock(&fx->mu);
	c = fx->n_conns == 1 ? &fx->conns[0] : NULL;
	pthread_mutex_unlock(&fx->mu);
	assert_non_null(c);
	assert_int_equal(c->ctx_len, FLT_PORT_MAX_CONTEXT);
	assert_memory_equal(c->ctx, ctx, sizeof(ctx));
	lib_close(fx, p);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

static void
oversized_context_refused_by_client(void **state)
{
	struct fixture *fx = *state;
	static unsigned char ctx[FLT_PORT_MAX_CONTEXT + 1];
	filter_port *p = NULL;

	create_default_port(fx, 4);
	assert_int_equal(
		filter_connect_communication_port(PORT_NAME, 0, ctx, sizeof(ctx), &p),
		-EMSGSIZE);
	assert_null(p);
	assert_int_equal(atomic_load(&fx->connect_calls), 0);
	assert_true(server_stats(fx).malformed_frames == 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		T(unauthorised_uid_refused_before_connect_callback),
		T(default_mode_refuses_other_users_in_the_kernel),
		T(unlisted_gid_refused_before_connect_callback),
		T(allowed_uid_connects),
		T(allowed_primary_gid_connects),
		T(allowed_supplementary_gid_connects),
		T(max_connections_enforced),
		T(connect_callback_error_reaches_client),
		T(context_and_peer_reach_connect_callback),
		T(empty_context_reaches_callback),
		T(max_size_context_accepted),
		T(oversized_context_refused_by_client),
	};

	if (argc == 5 && strcmp(argv[1], CHILD_ARG) == 0)
		return child_main(argv + 2);
	port_fixture_init();
	return cmocka_run_group_tests_name("ports", tests, NULL, NULL);
}
