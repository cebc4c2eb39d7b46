/* SPDX-License-Identifier: MIT */
/* port_fixture.c — see port_fixture.h. */
#include "port_fixture.h"

/* ---- filter callbacks ---------------------------------------------- */

static int
on_connect(flt_port client_port, void *server_cookie, const void *context,
	   size_t context_len, const struct flt_peer *peer, void **ret_connection_cookie)
{
	struct fixture *fx = server_cookie;
	int r = atomic_load(&fx->connect_result);
	struct conn *c;

	atomic_fetch_add(&fx->connect_calls, 1);
	if (r)
		return r;
	pthread_mutex_lock(&fx->mu);
	if (fx->n_conns == MAX_CONNS) {
		pthread_mutex_unlock(&fx->mu);
		return -ENOMEM;
	}
	c = &fx->conns[fx->n_conns++];
	c->fx = fx;
	c->port = client_port;
	c->ctx_len = context_len;
	if (context_len > FLT_PORT_MAX_CONTEXT + 1)
		context_len = FLT_PORT_MAX_CONTEXT + 1;
	if (context_len)
		memcpy(c->ctx, context, context_len);
	c->peer = *peer;
	pthread_mutex_unlock(&fx->mu);
	*ret_connection_cookie = c;
	return 0;
}

static void
on_disconnect(void *connection_cookie)
{
	struct conn *c = connection_cookie;

	flt_close_client_port(c->fx->f, &c->port);
	atomic_store(&c->disconnected, 1);
	atomic_fetch_add(&c->fx->disconnects, 1);
}

/* Answers "ok:" followed by the input. */
static int
on_message(void *connection_cookie, const void *in, size_t in_len, void *out,
	   size_t out_cap, size_t *ret_out_len)
{
	struct conn *c = connection_cookie;

	atomic_fetch_add(&c->fx->messages, 1);
	if (in_len + 3 > out_cap)
		return -ENOSPC;
	memcpy(out, "ok:", 3);
	memcpy((char *)out + 3, in, in_len);
	*ret_out_len = in_len + 3;
	return 0;
}

/* ---- fixture --------------------------------------------------------- */

/* Keeps every record for log_contains() and shows warnings and errors on
 * stderr like the default logger does. */
static void
capture_log(void *userdata, int level, const char *message)
{
	struct fixture *fx = userdata;
	size_t len = strlen(message);

	if (level <= FLT_LOG_WARNING)
		fprintf(stderr, "fltmgr[%d]: %d: %s\n", (int)getpid(), level, message);
	pthread_mutex_lock(&fx->log_mu);
	if (fx->log_len + len + 2 <= sizeof(fx->log)) {
		memcpy(fx->log + fx->log_len, message, len);
		fx->log_len += len;
		fx->log[fx->log_len++] = '\n';
		fx->log[fx->log_len] = '\0';
	}
	pthread_mutex_unlock(&fx->log_mu);
}

static int
log_contains(struct fixture *fx, const char *text)
{
	int found;

	pthread_mutex_lock(&fx->log_mu);
	found = fx->log_len && strstr(fx->log, text) != NULL;
	pthread_mutex_unlock(&fx->log_mu);
	return found;
}

void
assert_logged(struct fixture *fx, const char *reason)
{
	const char *env = getenv("FLTMGR_LOG_LEVEL");
	int64_t end = tu_now_ms() + WAIT_MS;

	if (!reason || (env && *env))
		return;
	while (!log_contains(fx, reason) && tu_now_ms() < end)
		usleep(1000);
	if (!log_contains(fx, reason))
		fail_msg("no log record mentions \"%s\"; log was:\n%s", reason, fx->log);
}

int
setup(void **state)
{
	struct flt_registration reg = { .name = "ptest", .altitude = "385100" };
	struct flt_manager_options o = { .log_level = FLT_LOG_DEBUG };
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->fds_before = tu_count_fds();
	for (int i = 0; i < MAX_RAW; i++)
		fx->raw[i] = -1;
	fx->lock_fd = -1;
	pthread_mutex_init(&fx->mu, NULL);
	pthread_mutex_init(&fx->log_mu, NULL);
	fx->dir = tu_runtime_dir_create();
	/* tu_manager_new(), but with the log captured. */
	o.log_func = capture_log;
	o.log_userdata = fx;
	assert_int_equal(flt_manager_new(&o, &fx->m), 0);
	assert_non_null(fx->m);
	assert_int_equal(flt_register_filter(fx->m, &reg, &fx->f), 0);
	assert_non_null(fx->f);
	*state = fx;
	return 0;
}

static int
fds_back(void *arg)
{
	struct fixture *fx = arg;

	return tu_count_fds() == fx->fds_before;
}

int
teardown(void **state)
{
	struct fixture *fx = *state;
	int before, now;

	for (int i = 0; i < MAX_CLIENTS; i++)
		if (fx->clients[i])
			filter_close_port(fx->clients[i]);
	for (int i = 0; i < MAX_RAW; i++)
		if (fx->raw[i] >= 0)
			close(fx->raw[i]);
	if (fx->lock_fd >= 0)
		close(fx->lock_fd);
	if (fx->f2)
		flt_unregister_filter(fx->f2);
	flt_manager_free(fx->m2);
	flt_unregister_filter(fx->f);
	flt_manager_free(fx->m);
	tu_runtime_dir_remove();
	pthread_mutex_destroy(&fx->mu);
	pthread_mutex_destroy(&fx->log_mu);

	tu_wait_until(fds_back, fx, WAIT_MS);
	now = tu_count_fds();
	before = fx->fds_before;
	free(fx);
	if (now != before)
		fail_msg("descriptor leak: %d open before the test, %d after teardown",
			 before, now);
	return 0;
}

/* ---- helpers ----------------------------------------------------------- */

void
port_path(struct fixture *fx, const char *name)
{
	snprintf(fx->path, sizeof(fx->path), "%s/%s", flt_manager_runtime_dir(fx->m),
		 name);
}

int
try_create_port(struct fixture *fx, flt_filter *f, flt_port *ret_port, const char *name,
		mode_t mode, const uid_t *uids, size_t n_uids, const gid_t *gids,
		size_t n_gids, int max_connections)
{
	struct flt_port_attributes attr = {
		.name = name,
		.mode = mode,
		.allowed_uids = uids,
		.n_allowed_uids = n_uids,
		.allowed_gids = gids,
		.n_allowed_gids = n_gids,
	};

	return flt_create_communication_port(f, ret_port, &attr, fx, on_connect,
					     on_disconnect, on_message, max_connections);
}

void
create_port(struct fixture *fx, mode_t mode, const uid_t *uids, size_t n_uids,
	    const gid_t *gids, size_t n_gids, int max_connections)
{
	int r;

	r = try_create_port(fx, fx->f, &fx->server, PORT_NAME, mode, uids, n_uids, gids,
			    n_gids, max_connections);
	assert_int_equal(r, 0);
	port_path(fx, PORT_NAME);
}

void
create_default_port(struct fixture *fx, int max_connections)
{
	create_port(fx, 0, NULL, 0, NULL, 0, max_connections);
}

struct flt_port_stats
server_stats(struct fixture *fx)
{
	struct flt_port_stats st;

	memset(&st, 0, sizeof(st));
	assert_int_equal(flt_port_get_stats(fx->f, &fx->server, &st), 0);
	return st;
}

struct stat_wait {
	struct fixture *fx;
	size_t off;
	uint64_t want;
};

static int
stat_reached(void *arg)
{
	struct stat_wait *w = arg;
	struct flt_port_stats st;
	uint64_t v;

	memset(&st, 0, sizeof(st));
	if (flt_port_get_stats(w->fx->f, &w->fx->server, &st) < 0)
		return 0;
	memcpy(&v, (const char *)&st + w->off, sizeof(v));
	return v == w->want;
}

uint64_t
wait_stat_off(struct fixture *fx, size_t off, uint64_t want)
{
	struct stat_wait w = { fx, off, want };
	struct flt_port_stats st;
	uint64_t v;

	tu_wait_until(stat_reached, &w, WAIT_MS);
	st = server_stats(fx);
	memcpy(&v, (const char *)&st + off, sizeof(v));
	return v;
}

struct int_wait {
	atomic_int *p;
	int want;
};

static int
int_reached(void *arg)
{
	struct int_wait *w = arg;

	return atomic_load(w->p) == w->want;
}

int
wait_int(atomic_int *p, int want, int timeout_ms)
{
	struct int_wait w = { p, want };

	tu_wait_until(int_reached, &w, timeout_ms);
	return atomic_load(p);
}

static int
current_is(void *arg)
{
	struct stat_wait *w = arg;
	struct flt_port_stats st;

	memset(&st, 0, sizeof(st));
	if (flt_port_get_stats(w->fx->f, &w->fx->server, &st) < 0)
		return 0;
	return st.connections_current == w->want;
}

uint32_t
wait_current(struct fixture *fx, uint32_t want)
{
	struct stat_wait w = { fx, 0, want };

	tu_wait_until(current_is, &w, WAIT_MS);
	return server_stats(fx).connections_current;
}

struct conn *
find_conn(struct fixture *fx, const char *ctx)
{
	struct conn *found = NULL;
	size_t len = strlen(ctx);

	pthread_mutex_lock(&fx->mu);
	for (int i = 0; i < fx->n_conns; i++)
		if (fx->conns[i].ctx_len == len &&
		    memcmp(fx->conns[i].ctx, ctx, len) == 0)
			found = &fx->conns[i];
	pthread_mutex_unlock(&fx->mu);
	return found;
}

int
lib_connect(struct fixture *fx, const char *ctx, filter_port **ret_port)
{
	filter_port *p = NULL;
	int r;

	r = filter_connect_communication_port(PORT_NAME, 0, ctx, strlen(ctx), &p);
	if (r < 0)
		return r;
	assert_non_null(p);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (!fx->clients[i]) {
			fx->clients[i] = p;
			*ret_port = p;
			return r;
		}
	fail_msg("too many clients");
	return -ENOMEM;
}

void
lib_close(struct fixture *fx, filter_port *p)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (fx->clients[i] == p)
			fx->clients[i] = NULL;
	filter_close_port(p);
}

/* Service thread of exchange(): takes one message and replies "re:"+msg. */
struct svc {
	filter_port *p;
	int get_result;
	int reply_result;
	struct filter_message_header hdr;
	char buf[256];
};

static void *
svc_thread(void *arg)
{
	struct svc *s = arg;
	char reply[300];
	int n;

	n = filter_get_message(s->p, &s->hdr, s->buf, sizeof(s->buf) - 1, IO_TIMEOUT_MS);
	s->get_result = n;
	if (n < 0)
		return NULL;
	if (s->hdr.fd >= 0)
		close(s->hdr.fd);
	memcpy(reply, "re:", 3);
	memcpy(reply + 3, s->buf, (size_t)n);
	s->reply_result =
		filter_reply_message(s->p, s->hdr.message_id, 0, reply, (size_t)n + 3);
	return NULL;
}

void
exchange(struct fixture *fx, filter_port *p, struct conn *c)
{
	struct svc s = { .p = p, .get_result = -1, .reply_result = -1 };
	char reply[64], out[64];
	size_t reply_len = sizeof(reply), out_len = 0;
	pthread_t t;
	int r;

	assert_non_null(c);
	assert_int_equal(pthread_create(&t, NULL, svc_thread, &s), 0);
	r = flt_send_message(fx->f, &c->port, "ping", 4, reply, &reply_len,
			     IO_TIMEOUT_MS);
	pthread_join(t, NULL);
	assert_int_equal(s.get_result, 4);
	assert_memory_equal(s.buf, "ping", 4);
	assert_int_equal(s.hdr.reply_length, sizeof(reply));
	assert_int_equal(s.reply_result, 0);
	assert_int_equal(r, 0);
	assert_int_equal(reply_len, 7);
	assert_memory_equal(reply, "re:ping", 7);

	r = filter_send_message(p, "call", 4, out, sizeof(out), &out_len);
	assert_int_equal(r, 0);
	assert_int_equal(out_len, 7);
	assert_memory_equal(out, "ok:call", 7);
}

void
raw_register(struct fixture *fx, int fd)
{
	for (int i = 0; i < MAX_RAW; i++)
		if (fx->raw[i] < 0) {
			fx->raw[i] = fd;
			return;
		}
	close(fd);
	fail_msg("too many raw descriptors");
}

void
raw_close(struct fixture *fx, int fd)
{
	for (int i = 0; i < MAX_RAW; i++)
		if (fx->raw[i] == fd)
			fx->raw[i] = -1;
	close(fd);
}

int
unix_socket_at(const char *path, int do_bind)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (do_bind)
		r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	else
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0) {
		int e = errno;

		close(fd);
		fail_msg("%s %s: %s", do_bind ? "bind" : "connect", path, strerror(e));
	}
	return fd;
}

int
raw_connect(struct fixture *fx)
{
	int fd = unix_socket_at(fx->path, 0);

	raw_register(fx, fd);
	return fd;
}

static int
poll_in(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n > 0;
}

size_t
raw_recv(int fd, unsigned expect, struct wire_header *h, void *payload, size_t cap,
	 int *fds, size_t n_fds_expected)
{
	static uint8_t buf[WIRE_MAX_FRAME];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	const char *reason = NULL;
	struct frame_rx rx;
	int r;

	if (!poll_in(fd, IO_TIMEOUT_MS))
		fail_msg("no frame within %d ms", IO_TIMEOUT_MS);
	r = frame_recv(fd, &iov, 1, MSG_DONTWAIT, &rx);
	if (r != 1) {
		frame_rx_close_fds(&rx);
		fail_msg("expected a frame, frame_recv gave %d", r);
	}
	r = wire_decode(buf, rx.size, rx.truncated, expect, h, &reason);
	if (r < 0) {
		frame_rx_close_fds(&rx);
		fail_msg("library sent a bad frame (%d): %s", r, reason);
	}
	if (fds && rx.n_fds == n_fds_expected) {
		memcpy(fds, rx.fds, rx.n_fds * sizeof(int));
	} else {
		size_t got = rx.n_fds;

		frame_rx_close_fds(&rx);
		if (got != n_fds_expected)
			fail_msg("%s frame (status %d) carried %zu descriptors, "
				 "expected %zu",
				 wire_type_name(h->type), h->status, got, n_fds_expected);
	}
	assert_true(h->length <= cap);
	memcpy(payload, buf + WIRE_HEADER_SIZE, h->length);
	return h->length;
}

void
raw_handshake(struct fixture *fx, const char *ctx, int *m, int *r, int *c)
{
	struct wire_header h = { .type = WIRE_CONNECT, .length = (uint32_t)strlen(ctx) };
	int fds[2];
	char none[1];

	*m = raw_connect(fx);
	assert_int_equal(frame_send(*m, &h, ctx, NULL, 0, 0), 0);
	raw_recv(*m, WIRE_BIT(WIRE_CONNECT_REPLY), &h, none, 0, fds, 2);
	raw_register(fx, fds[0]);
	raw_register(fx, fds[1]);
	assert_int_equal(h.status, 0);
	*r = fds[0];
	*c = fds[1];
}

int
wait_eof(int fd, int timeout_ms, int *ret_status)
{
	int64_t end = tu_now_ms() + timeout_ms;

	for (;;) {
		uint8_t buf[WIRE_HEADER_SIZE + 64];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = end - tu_now_ms();
		struct wire_header h;
		const char *reason;
		struct frame_rx rx;
		int n, r;

		n = poll(&pfd, 1, left > 0 ? (int)left : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		r = frame_recv(fd, &iov, 1, MSG_DONTWAIT, &rx);
		frame_rx_close_fds(&rx);
		if (r == -EAGAIN) {
			if (pfd.revents & (POLLHUP | POLLERR))
				return 1;
			continue;
		}
		if (r <= 0)
			return 1; /* 0, -ECONNRESET, ... */
		if (ret_status &&
		    wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CONNECT_REPLY),
				&h, &reason) == 0)
			*ret_status = h.status;
	}
}

void *
sender_thread(void *arg)
{
	struct sender *s = arg;

	s->reply_len = sizeof(s->reply);
	s->result = flt_send_message(s->fx->f, &s->c->port, "ping", 4, s->reply,
				     &s->reply_len, s->timeout_ms);
	return NULL;
}

/* ---- the start of each program ---- */

void
port_fixture_init(void)
{
	signal(SIGPIPE, SIG_IGN);
	/* Orphans of our children (fork-holder's grandchild) come to us. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (getenv("FLTMGR_TEST_ONLY"))
		cmocka_set_test_filter(getenv("FLTMGR_TEST_ONLY"));
}
