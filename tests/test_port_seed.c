/* SPDX-License-Identifier: MIT */
/*
 * test_port_seed.c — the forum thread this product grew from, as tests.
 *
 * The filter follows the Windows samples' pattern exactly: the connect
 * callback stores the client port in a global with a plain assignment,
 * sender threads pass &global to flt_send_message(), and the disconnect
 * callback calls flt_close_client_port(&global). No lock of the filter's
 * own. A service process connects and disconnects thousands of times —
 * cleanly, by _exit() without closing, and by SIGKILL — while senders run.
 * The seed's bug on purpose: a sender that kept its own stale copy of the
 * client port.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static flt_filter *g_filter;
static flt_port g_client; /* the seed's global */
static atomic_int g_connects;
static atomic_int g_disconnects;
static atomic_bool g_stop;

static int
seed_connect(flt_port client_port, void *server_cookie, const void *context,
	     size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	(void)server_cookie;
	(void)context;
	(void)context_len;
	(void)peer;
	(void)ret_cookie;
	g_client = client_port; /* plain assignment, as in the samples */
	atomic_fetch_add(&g_connects, 1);
	return 0;
}

static void
seed_disconnect(void *cookie)
{
	(void)cookie;
	flt_close_client_port(g_filter, &g_client);
	atomic_fetch_add(&g_disconnects, 1);
}

/* ---- the service process side ---- */

enum end_mode {
	END_CLOSE = 0, /* filter_close_port, then exit */
	END_EXIT,      /* _exit without closing */
	END_SELF_KILL, /* raise(SIGKILL) mid-conversation */
	END_KILLED,    /* the spawner SIGKILLs it at a random moment */
	END_MODES_
};

static int
connect_retrying(filter_port **p)
{
	for (int i = 0; i < 20000; i++) {
		int r = filter_connect_communication_port("seed", 0, NULL, 0, p);

		/* -EUSERS: the previous connection's disconnect callback has
		 * not finished yet (max_connections is 1, as in the samples). */
		if (r != -EUSERS)
			return r;
		usleep(200);
	}
	return -ETIMEDOUT;
}

/* Answers up to `n` messages, or until disconnected. */
static void
converse(filter_port *p, int n)
{
	for (int i = 0; i < n; i++) {
		struct filter_message_header h;
		char buf[64];
		int len = filter_get_message(p, &h, buf, sizeof(buf), 20);

		if (len == -ETIMEDOUT)
			continue;
		if (len < 0)
			return;
		if (h.reply_length)
			(void)filter_reply_message(p, h.message_id, 0, buf, (size_t)len);
	}
}

static void
service_child(int cycles, enum end_mode mode, unsigned seed, int ready_fd)
{
	for (int c = 0; c < cycles; c++) {
		filter_port *p = NULL;
		bool last = c == cycles - 1;

		int r = connect_retrying(&p);

		if (r < 0) {
			fprintf(stderr, "service child: connect: %s\n", strerror(-r));
			_exit(3);
		}
		if (last && ready_fd >= 0 && write(ready_fd, "r", 1) != 1)
			_exit(4);
		converse(p, (int)(rand_r(&seed) % 4));
		if (!last) {
			filter_close_port(p);
			continue;
		}
		switch (mode) {
		case END_CLOSE:
			filter_close_port(p);
			_exit(0);
		case END_EXIT:
			_exit(0);
		case END_SELF_KILL:
			raise(SIGKILL);
			break;
		case END_KILLED:
			for (;;)
				converse(p, 1000);
		default:
			break;
		}
	}
	_exit(0);
}

/* Single-threaded: forks the service processes one after another. */
static void
spawner(int children, int cycles_per_child, int go_fd)
{
	unsigned seed = 12345;
	char go;

	if (read(go_fd, &go, 1) != 1)
		_exit(2);
	for (int i = 0; i < children; i++) {
		enum end_mode mode = (enum end_mode)(i % END_MODES_);
		int status, ready[2];
		pid_t pid;

		if (pipe(ready) < 0)
			_exit(2);
		pid = fork();
		if (pid < 0)
			_exit(2);
		if (pid == 0) {
			close(ready[0]);
			service_child(cycles_per_child, mode, seed + (unsigned)i,
				      mode == END_KILLED ? ready[1] : -1);
		}
		close(ready[1]);
		if (mode == END_KILLED) {
			/* Kill it at a random moment of its last conversation. */
			if (read(ready[0], &go, 1) == 1)
				usleep(rand_r(&seed) % 3000);
			kill(pid, SIGKILL);
		}
		close(ready[0]);
		if (waitpid(pid, &status, 0) != pid)
			_exit(2);
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			_exit(10 + WEXITSTATUS(status)); /* a connect failed */
	}
	_exit(0);
}

/* ---- the filter side ---- */

struct sender_stats {
	long ok, notconn, timedout, other;
	int last_other;
};

static void *
sender(void *arg)
{
	struct sender_stats *s = arg;
	unsigned seed = (unsigned)(uintptr_t)arg;
	uint64_t n = 0;

	while (!atomic_load(&g_stop)) {
		char msg[32], rep[64];
		size_t len = sizeof(rep);
		bool want = (n++ & 1) == 0;
		int r;

		snprintf(msg, sizeof(msg), "event %llu", (unsigned long long)n);
		/* &g_client: read under the filter's port lock, racing freely
		 * with the connect and disconnect callbacks. */
		r = flt_send_message(g_filter, &g_client, msg, strlen(msg),
				     want ? rep : NULL, want ? &len : NULL, 50);
		if (r == 0) {
			s->ok++;
			if (want && (len != strlen(msg) || memcmp(rep, msg, len))) {
				s->other++; /* a reply for someone else's message */
				s->last_other = -EBADMSG;
			}
		} else if (r == -ENOTCONN) {
			s->notconn++;
			usleep(rand_r(&seed) % 200); /* leave CPU to the service */
		} else if (r == -ETIMEDOUT) {
			s->timedout++;
		} else {
			s->other++;
			s->last_other = r;
		}
	}
	return NULL;
}

static int
cycles_wanted(void)
{
	const char *e = getenv("FLTMGR_SEED_CYCLES");
	int n = e ? atoi(e) : 0;

	return n > 0 ? n : 10000;
}

static void
seed_connect_disconnect_storm(void **state)
{
	struct flt_registration reg = { .name = "seed", .altitude = "370030" };
	struct flt_port_attributes attr = { .name = "seed" };
	const int per_child = 5, total = cycles_wanted();
	const int children = (total + per_child - 1) / per_child;
	struct sender_stats st[4] = { 0 };
	struct flt_port_stats ps;
	pthread_t t[4];
	flt_manager *m;
	flt_port server;
	int go[2], status, fds_before;
	long ok = 0, notconn = 0, timedout = 0;
	pid_t sp;

	(void)state;
	tu_runtime_dir_create();
	atomic_store(&g_connects, 0);
	atomic_store(&g_disconnects, 0);
	fds_before = tu_count_fds();
	/* Fork while single-threaded; the spawner waits for "go". */
	assert_int_equal(pipe(go), 0);
	sp = fork();
	assert_true(sp >= 0);
	if (sp == 0) {
		close(go[1]);
		spawner(children, per_child, go[0]);
	}
	close(go[0]);

	m = tu_manager_new();
	assert_int_equal(flt_register_filter(m, &reg, &g_filter), 0);
	assert_int_equal(flt_create_communication_port(g_filter, &server, &attr, NULL,
						       seed_connect, seed_disconnect,
						       NULL, 1),
			 0);
	atomic_store(&g_stop, false);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, sender, &st[i]), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	assert_int_equal(waitpid(sp, &status, 0), sp);
	atomic_store(&g_stop, true);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		if (st[i].other)
			fail_msg("sender %d: %ld unexpected results (last %d)", i,
				 st[i].other, st[i].last_other);
		ok += st[i].ok;
		notconn += st[i].notconn;
		timedout += st[i].timedout;
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* Every accepted connection was disconnected exactly once. */
	for (int i = 0;
	     i < 2000 && atomic_load(&g_disconnects) != atomic_load(&g_connects); i++)
		usleep(1000);
	assert_int_equal(atomic_load(&g_connects), children * per_child);
	assert_int_equal(atomic_load(&g_disconnects), atomic_load(&g_connects));
	assert_int_equal(g_client.value, 0);
	assert_int_equal(flt_port_get_stats(g_filter, &server, &ps), 0);
	assert_int_equal(ps.connections_accepted, (uint64_t)(children * per_child));
	assert_int_equal(ps.connections_current, 0);
	assert_int_equal(ps.pending_replies, 0);
	print_message("seed storm: %d connections (%d processes), sends ok=%ld "
		      "notconn=%ld timedout=%ld, port: sent=%llu replied=%llu "
		      "late=%llu disconnect_failures=%llu\n",
		      children * per_child, children, ok, notconn, timedout,
		      (unsigned long long)ps.messages_sent,
		      (unsigned long long)ps.replies_received,
		      (unsigned long long)ps.late_replies,
		      (unsigned long long)ps.disconnect_failures);
	assert_true(ok > 0); /* messages really flowed during the storm */

	flt_unregister_filter(g_filter);
	flt_manager_free(m);
	assert_int_equal(tu_count_fds(), fds_before);
	tu_runtime_dir_remove();
}

/* The forum poster's bug, done on purpose: a sender keeps its own copy of
 * the client port and uses it after the disconnect callback closed the
 * global. It must get -ENOTCONN and touch nothing — also after a new
 * connection has been made, which may reuse the handle table slot. */
static void
stale_copy_after_disconnect_is_enotconn(void **state)
{
	struct flt_registration reg = { .name = "seed", .altitude = "370030" };
	struct flt_port_attributes attr = { .name = "seed" };
	struct filter_message_header h;
	filter_port *p = NULL, *p2 = NULL;
	flt_manager *m;
	flt_port server, stale;
	char buf[16];

	(void)state;
	tu_runtime_dir_create();
	atomic_store(&g_connects, 0);
	atomic_store(&g_disconnects, 0);
	m = tu_manager_new();
	assert_int_equal(flt_register_filter(m, &reg, &g_filter), 0);
	assert_int_equal(flt_create_communication_port(g_filter, &server, &attr, NULL,
						       seed_connect, seed_disconnect,
						       NULL, 1),
			 0);
	assert_int_equal(filter_connect_communication_port("seed", 0, NULL, 0, &p), 0);
	stale = g_client; /* "sendMessage.ClientPort = global.ClientPort" */
	assert_int_not_equal(stale.value, 0);
	assert_int_equal(flt_send_message(g_filter, &stale, "a", 1, NULL, NULL, 1000), 0);

	filter_close_port(p); /* net stop service */
	for (int i = 0; i < 2000 && atomic_load(&g_disconnects) == 0; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&g_disconnects), 1);
	assert_int_equal(g_client.value, 0);
	assert_int_equal(flt_send_message(g_filter, &stale, "b", 1, NULL, NULL, 1000),
			 -ENOTCONN);

	/* A new service connects; the stale copy still names the old one. */
	assert_int_equal(filter_connect_communication_port("seed", 0, NULL, 0, &p2), 0);
	assert_int_not_equal(g_client.value, stale.value);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(
			flt_send_message(g_filter, &stale, "c", 1, NULL, NULL, 0),
			-ENOTCONN);
	flt_close_client_port(g_filter, &stale); /* closes nothing */
	assert_int_equal(flt_send_message(g_filter, &g_client, "d", 1, NULL, NULL, 1000),
			 0);
	assert_int_equal(filter_get_message(p2, &h, buf, sizeof(buf), 1000), 1);
	assert_int_equal(buf[0], 'd'); /* nothing from the stale copy arrived */
	filter_close_port(p2);

	flt_unregister_filter(g_filter);
	flt_manager_free(m);
	tu_runtime_dir_remove();
}

struct closer_args {
	int64_t elapsed;
	int r;
};

static void *
infinite_sender(void *arg)
{
	struct closer_args *a = arg;
	char rep[8];
	size_t len = sizeof(rep);
	int64_t t0 = tu_now_ms();

	a->r = flt_send_message(g_filter, &g_client, "x", 1, rep, &len, FLT_INFINITE);
	a->elapsed = tu_now_ms() - t0;
	return NULL;
}

/* The filter itself closes the client port while senders wait forever on
 * it (the service never answers): they all return -ENOTCONN at once. */
static void
close_client_port_while_sending(void **state)
{
	struct flt_registration reg = { .name = "seed", .altitude = "370030" };
	struct flt_port_attributes attr = { .name = "seed" };
	struct closer_args a[4];
	filter_port *p = NULL;
	pthread_t t[4];
	flt_manager *m;
	flt_port server;
	struct flt_port_stats ps;

	(void)state;
	tu_runtime_dir_create();
	atomic_store(&g_connects, 0);
	atomic_store(&g_disconnects, 0);
	m = tu_manager_new();
	assert_int_equal(flt_register_filter(m, &reg, &g_filter), 0);
	assert_int_equal(flt_create_communication_port(g_filter, &server, &attr, NULL,
						       seed_connect, seed_disconnect,
						       NULL, 1),
			 0);
	assert_int_equal(filter_connect_communication_port("seed", 0, NULL, 0, &p), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, infinite_sender, &a[i]), 0);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(flt_port_get_stats(g_filter, &server, &ps), 0);
		if (ps.pending_replies == 4)
			break;
		usleep(1000);
	}
	assert_int_equal(ps.pending_replies, 4);
	flt_close_client_port(g_filter, &g_client);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].r, -ENOTCONN);
	}
	for (int i = 0; i < 2000 && atomic_load(&g_disconnects) == 0; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&g_disconnects), 1);
	filter_close_port(p);
	flt_unregister_filter(g_filter);
	flt_manager_free(m);
	tu_runtime_dir_remove();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stale_copy_after_disconnect_is_enotconn),
		cmocka_unit_test(close_client_port_while_sending),
		cmocka_unit_test(seed_connect_disconnect_storm),
	};

	return cmocka_run_group_tests_name("port_seed", tests, NULL, NULL);
}
