/* SPDX-License-Identifier: MIT */
/*
 * port_fixture.h — what test_port_access.c, test_port_malformed.c,
 * test_port_protocol.c and test_port_names.c share: the communication
 * port protocol seen from the outside (suite "ports").
 *
 * Each test gets its own runtime directory, manager and filter (setup) and
 * tears all of it down again (teardown), checking that the process has as
 * many descriptors afterwards as before. Services are either real
 * libfltuser clients or "raw" clients that speak the wire protocol by hand
 * (wire_encode_header / frame_send / frame_recv), which is how malformed
 * frames, a missing CONNECT, and frames on the wrong channel are produced.
 * Tests of uid/gid access rules run children (this program re-executed
 * with CHILD_ARG) that drop privileges; they need root and are skipped
 * otherwise. The manager logs through capture_log() so that tests can check
 * that a dropped connection's reason was logged.
 *
 * Rules used throughout: cmocka assertions only on the main thread (helper
 * threads record results, the main thread checks them after joining), and
 * every child ends in _exit() and is reaped by the parent.
 */
#ifndef FLTMGR_PORT_FIXTURE_H
#define FLTMGR_PORT_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "common/frame_io.h"
#include "common/wire.h"

#define PORT_NAME   "proto"
#define MAX_CONNS   32
#define MAX_CLIENTS 8
#define MAX_RAW     16

/* Bounds on waits that end as soon as what they wait for happens:
 * generous, for a loaded machine under a sanitizer. */
#define IO_TIMEOUT_MS 10000
#define WAIT_MS       10000

struct fixture;

/* One connection as seen by the filter's callbacks. */
struct conn {
	struct fixture *fx;
	flt_port port; /* touched only under the filter's port lock */
	char ctx[FLT_PORT_MAX_CONTEXT + 1];
	size_t ctx_len;
	struct flt_peer peer;
	atomic_int disconnected;
};

struct fixture {
	int fds_before;
	const char *dir;
	flt_manager *m;
	flt_filter *f;
	flt_port server;
	char path[PATH_MAX];

	pthread_mutex_t mu;
	struct conn conns[MAX_CONNS];
	int n_conns;

	atomic_int connect_result; /* what on_connect returns */
	atomic_int connect_calls;
	atomic_int disconnects;
	atomic_int messages;

	/* Left open by a failing test: closed by teardown. */
	filter_port *clients[MAX_CLIENTS];
	int raw[MAX_RAW];
	flt_manager *m2;
	flt_filter *f2;
	int lock_fd;

	/* Everything the manager logged (see capture_log). */
	pthread_mutex_t log_mu;
	char log[65536];
	size_t log_len;
};

/* The reason for dropping a connection must be in the log (unless
 * $FLTMGR_LOG_LEVEL overrides our debug level). */
void assert_logged(struct fixture *fx, const char *reason);

/* A runtime directory, a manager logging into the fixture (capture_log)
 * and a registered filter, as *state; teardown() closes what a test left
 * open and fails it if descriptors leaked. */
int setup(void **state);
int teardown(void **state);

/* fx->path: the socket file of port name in the runtime directory. */
void port_path(struct fixture *fx, const char *name);

/* flt_create_communication_port() on fx->m with these rules; create_port()
 * asserts it works, for PORT_NAME on fx->f; create_default_port()
 * with the default mode and no uid or gid lists. */
int try_create_port(struct fixture *fx, flt_filter *f, flt_port *ret_port,
		    const char *name, mode_t mode, const uid_t *uids, size_t n_uids,
		    const gid_t *gids, size_t n_gids, int max_connections);

void create_port(struct fixture *fx, mode_t mode, const uid_t *uids, size_t n_uids,
		 const gid_t *gids, size_t n_gids, int max_connections);

void create_default_port(struct fixture *fx, int max_connections);

/* The server port's counters. */
struct flt_port_stats server_stats(struct fixture *fx);

/* Waits up to WAIT_MS for a uint64_t counter of the server port to reach want;
 * returns its value then. */
uint64_t wait_stat_off(struct fixture *fx, size_t off, uint64_t want);

#define WAIT_STAT(fx, field, want) \
	wait_stat_off((fx), offsetof(struct flt_port_stats, field), (want))

/* Waits up to timeout_ms for *p == want; returns the value then. */
int wait_int(atomic_int *p, int want, int timeout_ms);

/* Waits up to WAIT_MS for the port to have want connections. */
uint32_t wait_current(struct fixture *fx, uint32_t want);

/* The most recent accepted connection whose context is the string ctx. */
struct conn *find_conn(struct fixture *fx, const char *ctx);

/* Connects a libfltuser client with a string context; remembered for
 * teardown on success. */
int lib_connect(struct fixture *fx, const char *ctx, filter_port **ret_port);

/* Closes a client lib_connect() made (and forgets it). */
void lib_close(struct fixture *fx, filter_port *p);

/* A full exchange on a working connection: the filter sends a message and
 * gets the service's reply; the service calls the filter. */
void exchange(struct fixture *fx, filter_port *p, struct conn *c);

/* A raw socket closed by teardown() unless raw_close() closed it. */
void raw_register(struct fixture *fx, int fd);
void raw_close(struct fixture *fx, int fd);

/* An AF_UNIX SOCK_SEQPACKET socket bound or connected to path (fails the
 * test if it cannot be). */
int unix_socket_at(const char *path, int do_bind);

/* A raw SOCK_SEQPACKET connection to the port: socket "M". */
int raw_connect(struct fixture *fx);

/* Receives one frame (waiting up to IO_TIMEOUT_MS) and validates it with
 * wire_decode() against `expect`. Descriptors received go to fds (if
 * given, else closed). Returns the payload length. */
size_t raw_recv(int fd, unsigned expect, struct wire_header *h, void *payload, size_t cap,
		int *fds, size_t n_fds_expected);

/* Does the client half of the handshake by hand; returns M, R and C. */
void raw_handshake(struct fixture *fx, const char *ctx, int *m, int *r, int *c);

/*
 * Waits until the peer of fd has gone (end of stream or reset), reading
 * and discarding any frames before it. If ret_status is given, it is set
 * to the status of each valid CONNECT_REPLY among them (and left alone if
 * there is none). Returns 1 on end of stream, 0 on timeout.
 */
int wait_eof(int fd, int timeout_ms, int *ret_status);

/* A thread that sends a message on c and waits for the reply
 * (sender_thread()): its result and the reply. */
struct sender {
	struct fixture *fx;
	struct conn *c;
	int timeout_ms;
	int result;
	char reply[32];
	size_t reply_len;
};

void *sender_thread(void *arg);

/* Exit codes of the re-executed children (test_port_access.c,
 * test_port_protocol.c). */
#define CHILD_CALL_FAILED 201
#define CHILD_EXEC_FAILED 202

/* What each program does before its tests: SIGPIPE ignored, this process
 * made the reaper of its children's orphans, and FLTMGR_TEST_ONLY=PATTERN
 * applied (run only the matching tests). */
void port_fixture_init(void);

#endif
