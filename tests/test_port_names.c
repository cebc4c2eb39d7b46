/* SPDX-License-Identifier: MIT */
/*
 * test_port_names.c — port names and the socket file: stale sockets and
 * lock files replaced, a live name held and refused, names reused after
 * close, invalid names and limits rejected, connecting to missing,
 * stale or explicit paths, unknown flags.
 *
 * Suite "ports": each test has its own runtime directory, manager and
 * filter; the fixture, the callbacks and the raw clients that speak the
 * wire protocol by hand: port_fixture.h.
 */
#include "port_fixture.h"

/* ---- helpers ----------------------------------------------------------- */

/* Leaves a socket file with nobody listening at path. */
static void
make_stale_socket(const char *path)
{
	close(unix_socket_at(path, 1));
}

/* ---- names and the socket file ------------------------------------------ */

static void
connect_and_exchange_once(struct fixture *fx, const char *ctx)
{
	filter_port *p = NULL;
	struct conn *c;
	int before = atomic_load(&fx->disconnects);

	assert_int_equal(lib_connect(fx, ctx, &p), 0);
	c = find_conn(fx, ctx);
	exchange(fx, p, c);
	lib_close(fx, p);
	assert_int_equal(wait_int(&c->disconnected, 1, WAIT_MS), 1);
	assert_int_equal(wait_int(&fx->disconnects, before + 1, WAIT_MS), before + 1);
}

static void
stale_socket_replaced(void **state)
{
	struct fixture *fx = *state;

	port_path(fx, PORT_NAME);
	make_stale_socket(fx->path);
	create_default_port(fx, 4);
	connect_and_exchange_once(fx, "after-stale");
}

static void
stale_socket_and_lock_file_replaced(void **state)
{
	struct fixture *fx = *state;
	char lock[PATH_MAX];
	int fd;

	port_path(fx, PORT_NAME);
	make_stale_socket(fx->path);
	snprintf(lock, sizeof(lock), "%s/." PORT_NAME ".lock", fx->dir);
	fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	create_default_port(fx, 4);
	connect_and_exchange_once(fx, "after-stale");
}

static void
held_lock_means_live_name(void **state)
{
	struct fixture *fx = *state;
	flt_port sp = { 12345 };
	char lock[PATH_MAX];
	struct stat sb;

	/* Someone else owns the name: holds the lock, has a socket file. */
	port_path(fx, PORT_NAME);
	make_stale_socket(fx->path);
	snprintf(lock, sizeof(lock), "%s/." PORT_NAME ".lock", fx->dir);
	fx->lock_fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fx->lock_fd >= 0);
	assert_int_equal(flock(fx->lock_fd, LOCK_EX | LOCK_NB), 0);

	assert_int_equal(
		try_create_port(fx, fx->f, &sp, PORT_NAME, 0, NULL, 0, NULL, 0, 4),
		-EEXIST);
	assert_true(sp.value == 12345);
	/* The owner's socket file is left alone. */
	assert_int_equal(lstat(fx->path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));

	/* Once the owner is gone the name is free. */
	close(fx->lock_fd);
	fx->lock_fd = -1;
	create_default_port(fx, 4);
	connect_and_exchange_once(fx, "after-owner");
}

static void
duplicate_live_name_refused(void **state)
{
	struct fixture *fx = *state;
	struct flt_registration reg2 = { .name = "ptest2", .altitude = "385101" };
	struct flt_registration reg3 = { .name = "ptest", .altitude = "385100" };
	flt_filter *f3 = NULL;
	flt_port sp = { 12345 };

	create_default_port(fx, 4);
	/* same filter */
	assert_int_equal(
		try_create_port(fx, fx->f, &sp, PORT_NAME, 0, NULL, 0, NULL, 0, 4),
		-EEXIST);
	assert_true(sp.value == 12345);
	/* another filter of the same manager */
	assert_int_equal(flt_register_filter(fx->m, &reg2, &fx->f2), 0);
	assert_int_equal(
		try_create_port(fx, fx->f2, &sp, PORT_NAME, 0, NULL, 0, NULL, 0, 4),
		-EEXIST);
	assert_true(sp.value == 12345);
	/* another manager on the same runtime dir (another daemon) */
	fx->m2 = tu_manager_new();
	assert_int_equal(flt_register_filter(fx->m2, &reg3, &f3), 0);
	assert_int_equal(try_create_port(fx, f3, &sp, PORT_NAME, 0, NULL, 0, NULL, 0, 4),
			 -EEXIST);
	assert_true(sp.value == 12345);
	flt_unregister_filter(f3);

	/* The first one still works. */
	connect_and_exchange_once(fx, "first");
	assert_true(server_stats(fx).connections_accepted == 1);
}

static void
closed_name_can_be_reused(void **state)
{
	struct fixture *fx = *state;
	struct stat sb;

	create_default_port(fx, 4);
	flt_close_communication_port(fx->f, &fx->server);
	assert_true(fx->server.value == FLT_PORT_NULL.value);
	flt_close_communication_port(fx->f, &fx->server); /* idempotent */
	assert_int_equal(lstat(fx->path, &sb), -1);
	assert_int_equal(errno, ENOENT);
	create_default_port(fx, 4);
	connect_and_exchange_once(fx, "again");
}

static void
invalid_port_names_rejected(void **state)
{
	struct fixture *fx = *state;
	char long_name[FLT_PORT_NAME_MAX + 2];
	const char *bad[] = { "",         "a/b",       long_name,
			      "bad name", "tab\tname", "caf\xc3\xa9",
			      "star*",    ".",         ".." };
	flt_port sp = { 12345 };

	memset(long_name, 'x', FLT_PORT_NAME_MAX + 1);
	long_name[FLT_PORT_NAME_MAX + 1] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = try_create_port(fx, fx->f, &sp, bad[i], 0, NULL, 0, NULL, 0, 4);

		if (r != -EINVAL)
			fail_msg("name \"%s\": got %d, expected -EINVAL", bad[i], r);
		assert_true(sp.value == 12345);
	}
	/* 64 characters from the whole alphabet are fine. */
	memset(long_name, 'x', FLT_PORT_NAME_MAX);
	memcpy(long_name, "Az09._-", 7);
	long_name[FLT_PORT_NAME_MAX] = '\0';
	assert_int_equal(
		try_create_port(fx, fx->f, &sp, long_name, 0, NULL, 0, NULL, 0, 4), 0);
	flt_close_communication_port(fx->f, &sp);
}

static void
invalid_max_connections_rejected(void **state)
{
	struct fixture *fx = *state;
	flt_port sp = { 12345 };

	assert_int_equal(
		try_create_port(fx, fx->f, &sp, PORT_NAME, 0, NULL, 0, NULL, 0, 0),
		-EINVAL);
	assert_int_equal(
		try_create_port(fx, fx->f, &sp, PORT_NAME, 0, NULL, 0, NULL, 0, -1),
		-EINVAL);
	assert_true(sp.value == 12345);
}

static void
connect_to_nonexistent_port(void **state)
{
	filter_port *p = NULL;

	(void)state;
	assert_int_equal(filter_connect_communication_port("nosuchport", 0, NULL, 0, &p),
			 -ENOENT);
	assert_null(p);
}

static void
connect_to_stale_socket(void **state)
{
	struct fixture *fx = *state;
	filter_port *p = NULL;
	int r;

	port_path(fx, "ghost");
	make_stale_socket(fx->path);
	r = filter_connect_communication_port("ghost", 0, NULL, 0, &p);
	/* docs/ports.md: a stale file gives ECONNREFUSED, returned as is. */
	assert_int_equal(r, -ECONNREFUSED);
	assert_null(p);
}

static void
connect_with_unknown_flags_rejected(void **state)
{
	struct fixture *fx = *state;
	filter_port *p = NULL;

	create_default_port(fx, 4);
	/* FILTER_CONNECT_BATCHES is the one flag. */
	assert_int_equal(filter_connect_communication_port(
				 PORT_NAME, FILTER_CONNECT_BATCHES << 1, NULL, 0, &p),
			 -EINVAL);
	assert_int_equal(
		filter_connect_communication_port(PORT_NAME, 0x80000000u, NULL, 0, &p),
		-EINVAL);
	assert_null(p);
	assert_int_equal(atomic_load(&fx->connect_calls), 0);
}

static void
connect_by_path(void **state)
{
	struct fixture *fx = *state;
	filter_port *p = NULL;
	struct conn *c;

	create_default_port(fx, 4);
	assert_int_equal(filter_connect_communication_port(fx->path, 0, "bypath", 6, &p),
			 0);
	fx->clients[0] = p;
	c = find_conn(fx, "bypath");
	exchange(fx, p, c);
	lib_close(fx, p);
	assert_int_equal(wait_int(&fx->disconnects, 1, WAIT_MS), 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(stale_socket_replaced),
		T(stale_socket_and_lock_file_replaced),
		T(held_lock_means_live_name),
		T(duplicate_live_name_refused),
		T(closed_name_can_be_reused),
		T(invalid_port_names_rejected),
		T(invalid_max_connections_rejected),
		T(connect_to_nonexistent_port),
		T(connect_to_stale_socket),
		T(connect_with_unknown_flags_rejected),
		T(connect_by_path),
	};

	port_fixture_init();
	return cmocka_run_group_tests_name("ports", tests, NULL, NULL);
}
