/* SPDX-License-Identifier: MIT */
/*
 * test_toolkit.c — what libfltmgr does for a filter so that it keeps no
 * registry or bookkeeping of its own:
 *  - the registration's cookie from every callback (flt_filter_cookie(),
 *    flt_event_filter());
 *  - no connect callback after flt_close_communication_port() returns, a
 *    handshake still in progress included;
 *  - a connected service's process excluded from the filter's events for
 *    the connection's lifetime (flt_exclude_connection_process()).
 *
 * The engine tests need root (fanotify) and run in a private mount
 * namespace on a scratch tmpfs. The service is this program re-executed
 * (--svc), so that its accesses are another process's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/frame_io.h"
#include "common/wire.h"
#include "testutil.h"

#define WAIT_MS 10000

static char mnt[64] = "/tmp/fltmgr-toolkit.XXXXXX";
static int have_scratch; /* 0 yes, else why not (77: skip, 1: failed) */
static char self_path[PATH_MAX];
static char g_probe[PATH_MAX]; /* mnt/probe, for the callbacks */

static flt_manager *g_m;
static flt_filter *g_f;
static int g_tag; /* the registration's cookie: its address */
static pid_t g_svc_pid;
static atomic_int g_seen;      /* the service's opens the filter saw */
static atomic_int g_cookie_ok; /* callbacks that found the cookie */
static atomic_int g_cookie_bad;
static atomic_int g_connects;
static atomic_int g_disconnects;
static atomic_int g_exclude_result;

/* ---- the service (a child: this program with --svc PORT DIR) ---- */

/*
 * Reads one command byte at a time from stdin and answers each with 'k'
 * (done) or 'e' (failed): 'c' connects once more, 'd' closes its oldest
 * connection, 'o' opens DIR/probe, 'n' creates DIR/new. Exits at EOF.
 */
static int
child_svc(const char *port, const char *dir)
{
	filter_port *p[8];
	size_t n = 0, first = 0;
	char path[PATH_MAX], cmd;

	while (read(0, &cmd, 1) == 1) {
		char ok = 'k';
		int fd;

		switch (cmd) {
		case 'c':
			if (n == 8 || filter_connect_communication_port(port, 0, NULL, 0,
									&p[n]) < 0)
				ok = 'e';
			else
				n++;
			break;
		case 'd':
			if (first == n)
				ok = 'e';
			else
				filter_close_port(p[first++]);
			break;
		case 'o':
		case 'n':
			snprintf(path, sizeof(path), "%s/%s", dir,
				 cmd == 'o' ? "probe" : "new");
			fd = open(path, O_RDONLY | O_CLOEXEC | (cmd == 'n' ? O_CREAT : 0),
				  0644);
			if (fd < 0)
				ok = 'e';
			else
				close(fd);
			break;
		default:
			ok = 'e';
		}
		if (write(1, &ok, 1) != 1)
			return 1;
	}
	return 0;
}

struct svc {
	pid_t pid;
	int to, from;
};

static struct svc
svc_start(const char *port)
{
	struct svc s = { .to = -1, .from = -1 };
	int in[2], out[2];

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	s.pid = fork();
	assert_true(s.pid >= 0);
	if (s.pid == 0) {
		char *argv[] = { self_path, (char *)"--svc", (char *)port, mnt, NULL };

		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(self_path, argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	s.to = in[1];
	s.from = out[0];
	g_svc_pid = s.pid;
	return s;
}

static void
svc_do(struct svc *s, char cmd)
{
	struct pollfd p = { .fd = s->from, .events = POLLIN };
	char ok = 0;

	assert_int_equal(write(s->to, &cmd, 1), 1);
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	assert_int_equal(read(s->from, &ok, 1), 1);
	if (ok != 'k')
		fail_msg("the service could not do '%c'", cmd);
}

static void
svc_finish(struct svc *s)
{
	int st;

	close(s->to);
	assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
	close(s->from);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	g_svc_pid = 0;
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	(void)state;
	tu_runtime_dir_create();
	g_m = tu_manager_new();
	g_f = NULL;
	atomic_store(&g_seen, 0);
	atomic_store(&g_cookie_ok, 0);
	atomic_store(&g_cookie_bad, 0);
	atomic_store(&g_connects, 0);
	atomic_store(&g_disconnects, 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (g_f)
		flt_unregister_filter(g_f);
	g_f = NULL;
	flt_manager_free(g_m);
	tu_runtime_dir_remove();
	return 0;
}

#define NEED_SCRATCH()                                                     \
	do {                                                               \
		if (have_scratch) {                                        \
			print_message("skipped: needs root and a private " \
				      "mount namespace\n");                \
			skip();                                            \
		}                                                          \
	} while (0)

static void
start_or_skip(flt_filter *f)
{
	int r = flt_start_filtering(f);

	if (r == -EOPNOTSUPP || r == -EPERM) {
		print_message("skipped: the engine cannot start here (%s)\n",
			      strerror(-r));
		skip();
	}
	assert_int_equal(r, 0);
}

/* ---- callbacks ---- */

static void
check_cookie(const flt_filter *f)
{
	if (f == g_f && flt_filter_cookie(f) == &g_tag)
		atomic_fetch_add(&g_cookie_ok, 1);
	else
		atomic_fetch_add(&g_cookie_bad, 1);
}

static int
tk_setup(flt_filter *filter, const char *path, enum flt_instance_kind kind,
	 void **ret_instance_context)
{
	(void)path;
	(void)kind;
	(void)ret_instance_context;
	/* g_f is not known yet during flt_attach: compare the cookie only */
	atomic_fetch_add(
		flt_filter_cookie(filter) == &g_tag ? &g_cookie_ok : &g_cookie_bad, 1);
	return 0;
}

static enum flt_preop_status
tk_pre(struct flt_callback_data *d, void *instance_context, void **completion_context)
{
	(void)instance_context;
	(void)completion_context;
	check_cookie(flt_event_filter(d));
	d->cacheable = 0;
	if (g_svc_pid && d->pid == g_svc_pid && d->path && !strcmp(d->path, g_probe))
		atomic_fetch_add(&g_seen, 1);
	return FLT_PREOP_SUCCESS_NO_CALLBACK;
}

static void
tk_post(const struct flt_callback_data *d, void *instance_context,
	void *completion_context)
{
	(void)instance_context;
	(void)completion_context;
	check_cookie(flt_event_filter(d));
}

static int
tk_connect(flt_port client_port, void *server_cookie, const void *context,
	   size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	flt_port *mine = malloc(sizeof(*mine));

	(void)context;
	(void)context_len;
	(void)peer;
	if (!mine)
		return -ENOMEM;
	*mine = client_port;
	if (server_cookie == &g_tag)
		atomic_store(&g_exclude_result,
			     flt_exclude_connection_process(g_f, &client_port));
	atomic_fetch_add(&g_connects, 1);
	*ret_cookie = mine;
	return 0;
}

static void
tk_disconnect(void *cookie)
{
	flt_port *mine = cookie;

	flt_close_client_port(g_f, mine);
	free(mine);
	atomic_fetch_add(&g_disconnects, 1);
}

static int
tk_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
	   size_t *ret_out_len)
{
	(void)cookie;
	(void)in;
	(void)in_len;
	(void)out;
	(void)out_cap;
	*ret_out_len = 0;
	return 0;
}

static int g_disconnect_target;

static int
disconnects_reached(void *arg)
{
	(void)arg;
	return atomic_load(&g_disconnects) >= g_disconnect_target;
}

static void
wait_disconnects(int n)
{
	g_disconnect_target = n;
	if (!tu_wait_until(disconnects_reached, NULL, WAIT_MS))
		fail_msg("%d disconnect callbacks, expected %d",
			 atomic_load(&g_disconnects), n);
}

/* The filter of the engine tests: a pre callback on OPEN (which counts
 * the service's opens of DIR/probe), a post callback on CREATE if
 * with_post, an instance on the scratch tmpfs, a port "tk". */
static flt_port
tk_filter(bool with_post)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, tk_pre, NULL },
		{ FLT_OP_CREATE, NULL, tk_post },
	};
	struct flt_registration reg = {
		.name = "tk",
		.altitude = "370000",
		.operations = ops,
		.n_operations = with_post ? 2 : 1,
		.instance_setup = tk_setup,
		.cookie = &g_tag,
	};
	struct flt_port_attributes attr = { .name = "tk" };
	flt_port server = FLT_PORT_NULL;

	assert_int_equal(flt_register_filter(g_m, &reg, &g_f), 0);
	assert_ptr_equal(flt_filter_cookie(g_f), &g_tag);
	assert_int_equal(flt_attach(g_f, mnt, FLT_INSTANCE_SUBTREE), 0);
	assert_int_equal(flt_create_communication_port(g_f, &server, &attr, &g_tag,
						       tk_connect, tk_disconnect,
						       tk_message, 8),
			 0);
	start_or_skip(g_f);
	return server;
}

/* ---- the cookie ---- */

static int
four_cookies(void *arg)
{
	(void)arg;
	return atomic_load(&g_cookie_ok) >= 4;
}

static void
make_probe(void)
{
	int fd = open(g_probe, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
}

static void
every_callback_reaches_the_filter_cookie(void **state)
{
	struct svc s;

	(void)state;
	NEED_SCRATCH();
	TU_NEED_KERNEL("names");
	TU_NEED_KERNEL("unlimited_queue");
	make_probe();
	assert_null(flt_filter_cookie(NULL));
	assert_null(flt_event_filter(NULL));
	(void)tk_filter(true);
	assert_int_equal(atomic_load(&g_cookie_ok), 1); /* the instance setup */
	s = svc_start("tk");
	svc_do(&s, 'o'); /* a pre callback */
	svc_do(&s, 'n'); /* a pre callback and a notification */
	svc_finish(&s);
	/* setup, two opens, one create (a notification: it may come late) */
	assert_true(tu_wait_until(four_cookies, NULL, WAIT_MS));
	assert_int_equal(atomic_load(&g_cookie_bad), 0);
}

/* ---- no connect callback after the close ---- */

/* A connection thread of this manager exists (the accept thread took the
 * connection and its handshake began). */
static int
connection_thread_running(void *arg)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int found = 0;

	(void)arg;
	while (d && !found && (e = readdir(d))) {
		char p[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(p, "re");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "flt-conn-", 9))
			found = 1;
		fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * A client connects and stalls before its CONNECT; the filter closes the
 * port; then the CONNECT comes. The connect callback must not run (the
 * filter may have freed the server cookie once the close returned), and
 * the client is refused with -ECONNREFUSED, as it would be by a port that
 * is gone.
 */
static void
no_connect_callback_after_the_port_is_closed(void **state)
{
	struct flt_registration reg = { .name = "tkport", .altitude = "370000" };
	struct flt_port_attributes attr = { .name = "tkport" };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct wire_header h = { .type = WIRE_CONNECT };
	uint8_t buf[WIRE_HEADER_SIZE + 64];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct pollfd p = { .events = POLLIN };
	const char *why = NULL;
	flt_port server = FLT_PORT_NULL;
	struct frame_rx rx;
	int fd, r;

	(void)state;
	assert_int_equal(flt_register_filter(g_m, &reg, &g_f), 0);
	/* server cookie NULL: tk_connect excludes nobody */
	assert_int_equal(flt_create_communication_port(g_f, &server, &attr, NULL,
						       tk_connect, tk_disconnect,
						       tk_message, 1),
			 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/tkport",
		 flt_manager_runtime_dir(g_m));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_true(tu_wait_until(connection_thread_running, NULL, WAIT_MS));

	flt_close_communication_port(g_f, &server);
	assert_int_equal(atomic_load(&g_connects), 0);

	assert_int_equal(frame_send(fd, &h, NULL, NULL, 0, 0), 0);
	p.fd = fd;
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	r = frame_recv(fd, &iov, 1, MSG_DONTWAIT, &rx);
	assert_int_equal(r, 1);
	assert_int_equal(rx.n_fds, 0); /* no R and C: not connected */
	assert_int_equal(wire_decode(buf, rx.size, rx.truncated,
				     WIRE_BIT(WIRE_CONNECT_REPLY), &h, &why),
			 0);
	assert_int_equal(h.status, -ECONNREFUSED);
	close(fd);
	assert_int_equal(atomic_load(&g_connects), 0);
	assert_int_equal(atomic_load(&g_disconnects), 0);
}

/* ---- a connection's process excluded while it lasts ---- */

static void
service_excluded_while_connected(void **state)
{
	struct flt_filter_stats fs;
	struct svc s;

	(void)state;
	NEED_SCRATCH();
	TU_NEED_KERNEL("unlimited_queue");
	make_probe();
	(void)tk_filter(false);
	s = svc_start("tk");

	svc_do(&s, 'o'); /* not connected: seen */
	assert_int_equal(atomic_load(&g_seen), 1);

	svc_do(&s, 'c'); /* the connect callback excludes it */
	assert_int_equal(atomic_load(&g_connects), 1);
	assert_int_equal(atomic_load(&g_exclude_result), 0);
	svc_do(&s, 'o');
	assert_int_equal(atomic_load(&g_seen), 1);

	svc_do(&s, 'c'); /* a second connection of the same process */
	assert_int_equal(atomic_load(&g_exclude_result), 0);
	svc_do(&s, 'o');
	assert_int_equal(atomic_load(&g_seen), 1);

	svc_do(&s, 'd'); /* one of two gone: still excluded */
	wait_disconnects(1);
	svc_do(&s, 'o');
	assert_int_equal(atomic_load(&g_seen), 1);
	/* only the connection excludes it: nothing for include to end */
	assert_int_equal(flt_include_process(g_f, s.pid), -ENOENT);
	svc_do(&s, 'o');
	assert_int_equal(atomic_load(&g_seen), 1);

	svc_do(&s, 'd'); /* both gone: seen again */
	wait_disconnects(2);
	svc_do(&s, 'o');
	assert_int_equal(atomic_load(&g_seen), 2);

	/* An exclusion of flt_exclude_process() outlives a connection. */
	assert_int_equal(flt_exclude_process(g_f, s.pid), 0);
	svc_do(&s, 'c');
	svc_do(&s, 'd');
	wait_disconnects(3);
	svc_do(&s, 'o');
	assert_int_equal(atomic_load(&g_seen), 2);
	assert_int_equal(flt_include_process(g_f, s.pid), 0);
	svc_do(&s, 'o');
	assert_int_equal(atomic_load(&g_seen), 3);

	assert_int_equal(flt_filter_get_stats(g_f, &fs), 0);
	assert_true(fs.excluded >= 5);
	svc_finish(&s);
}

/* The call refuses what is not a live connection of this filter. */
static void
exclude_connection_process_checks_its_port(void **state)
{
	struct flt_registration reg = { .name = "tkbad", .altitude = "370000" };
	flt_port none = FLT_PORT_NULL, forged = { 0x12345678abcdULL };

	(void)state;
	assert_int_equal(flt_register_filter(g_m, &reg, &g_f), 0);
	assert_int_equal(flt_exclude_connection_process(NULL, &none), -EINVAL);
	assert_int_equal(flt_exclude_connection_process(g_f, NULL), -EINVAL);
	assert_true(flt_exclude_connection_process(g_f, &none) < 0);
	assert_true(flt_exclude_connection_process(g_f, &forged) < 0);
}

/* ---- the log helpers ---- */

static char g_line[600];

static void
keep_line(void *userdata, int level, const char *message)
{
	(void)userdata;
	(void)level;
	snprintf(g_line, sizeof(g_line), "%s", message);
}

static void
log_helpers_for_filters(void **state)
{
	struct flt_manager_options o = { .log_level = FLT_LOG_INFO,
					 .log_func = keep_line };
	struct flt_registration reg = { .name = "tklog", .altitude = "370000" };
	static struct flt_log_limit limit;
	flt_manager *m = NULL;
	flt_filter *f = NULL;
	uint64_t held = 99;
	int64_t t0;

	(void)state;
	assert_int_equal(flt_manager_new(&o, &m), 0);
	assert_int_equal(flt_register_filter(m, &reg, &f), 0);
	flt_filter_log(f, FLT_LOG_WARNING, "%d services", 3);
	assert_string_equal(g_line, "filter tklog: 3 services");
	g_line[0] = '\0';
	flt_filter_log(f, FLT_LOG_DEBUG, "below the level");
	assert_string_equal(g_line, "");
	flt_unregister_filter(f);
	flt_manager_free(m);

	/* The first line always, then one per interval with the count. */
	t0 = flt_monotonic_ns();
	assert_true(t0 > 0);
	assert_int_equal(flt_log_ratelimit(&limit, 200, &held), 1);
	assert_int_equal(held, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(flt_log_ratelimit(&limit, 200, NULL), 0);
	while (flt_monotonic_ns() - t0 < 250000000)
		usleep(10000);
	assert_int_equal(flt_log_ratelimit(&limit, 200, &held), 1);
	assert_int_equal(held, 3);
	assert_int_equal(flt_log_ratelimit(NULL, 200, NULL), 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(no_connect_callback_after_the_port_is_closed),
		T(exclude_connection_process_checks_its_port),
		T(every_callback_reaches_the_filter_cookie),
		T(service_excluded_while_connected),
		T(log_helpers_for_filters),
#undef T
	};
	ssize_t n;
	int r;

	if (argc == 4 && !strcmp(argv[1], "--svc"))
		return child_svc(argv[2], argv[3]);
	signal(SIGPIPE, SIG_IGN);
	n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n <= 0)
		return 1;
	self_path[n] = '\0';
	have_scratch = geteuid() == 0 ? tu_private_scratch("test_toolkit", mnt,
							   "fltmgr-toolkit", 16)
				      : 77;
	if (have_scratch == 1)
		return 1;
	snprintf(g_probe, sizeof(g_probe), "%s/probe", mnt);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	if (!have_scratch)
		tu_private_scratch_remove(mnt);
	return r;
}
