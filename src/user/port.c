/* SPDX-License-Identifier: MIT */
/*
 * port.c — connecting to a filter's port, taking messages, and closing.
 *
 * filter_get_message() threads read the M socket directly: SOCK_SEQPACKET
 * hands each record to exactly one reader, so no user-space queue (and no
 * extra wake-up) stands between the filter and a waiting thread, and the
 * M socket itself is the pollable descriptor.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/frame_io.h"
#include "common/names.h"
#include "common/runtime_dir.h"
#include "common/timeutil.h"
#include "common/wire.h"
#include "user/internal.h"
#include "common/lockdep.h"

#define CONNECT_TIMEOUT_MS 10000

int
port_enter(filter_port *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->closing) {
		pthread_mutex_unlock(&p->lock);
		return -ECANCELED;
	}
	p->users++;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

void
port_leave(filter_port *p)
{
	pthread_mutex_lock(&p->lock);
	if (--p->users == 0 && p->closing)
		pthread_cond_broadcast(&p->idle);
	pthread_mutex_unlock(&p->lock);
}

void
port_fail(filter_port *p, int error)
{
	pthread_mutex_lock(&p->lock);
	if (!p->dead)
		p->dead = error;
	acks_wake_all_locked(p);
	batch_wake_all_locked(p);
	pthread_mutex_unlock(&p->lock);
	/* Tell the filter side: it drops the connection at once. */
	shutdown(p->m_fd, SHUT_RDWR);
	shutdown(p->r_fd, SHUT_RDWR);
	shutdown(p->c_fd, SHUT_RDWR);
}

int
port_error_locked(filter_port *p)
{
	lockdep_assert_held(&p->lock);
	if (p->closing)
		return -ECANCELED;
	return p->dead;
}

int
ids_add_locked(filter_port *p, uint64_t id, uint32_t cap)
{
	lockdep_assert_held(&p->lock);
	if (p->n_ids == p->cap_ids) {
		size_t ncap = p->cap_ids ? p->cap_ids * 2 : 16;
		struct pending_reply *n = realloc(p->ids, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->ids = n;
		p->cap_ids = ncap;
	}
	p->ids[p->n_ids++] = (struct pending_reply){ .id = id, .cap = cap };
	return 0;
}

bool
ids_take_locked(filter_port *p, uint64_t id, uint32_t *ret_cap)
{
	lockdep_assert_held(&p->lock);
	/* Newest first: replies usually follow their message closely. */
	for (size_t i = p->n_ids; i-- > 0;) {
		if (p->ids[i].id == id) {
			if (ret_cap)
				*ret_cap = p->ids[i].cap;
			p->ids[i] = p->ids[--p->n_ids];
			return true;
		}
	}
	return false;
}

int
port_wait_fd(filter_port *p, int fd, short events, int timeout_ms)
{
	int64_t deadline = deadline_from_ms(timeout_ms);

	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = fd, .events = events },
			{ .fd = p->close_efd, .events = POLLIN },
		};
		int n = poll(pf, 2, deadline_poll_ms(deadline));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (pf[1].revents)
			return -ECANCELED;
		if (n == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

int
port_send_frame(filter_port *p, int fd, const void *hdr_struct, const void *payload)
{
	for (;;) {
		int r = frame_send(fd, hdr_struct, payload, NULL, 0, MSG_DONTWAIT);

		if (r == -EPIPE || r == -ECONNRESET)
			return -ENOTCONN;
		if (r != -EAGAIN)
			return r;
		r = port_wait_fd(p, fd, POLLOUT, -1);
		if (r < 0)
			return r;
	}
}

static int
port_path(const char *name, struct sockaddr_un *addr)
{
	const char *dir;
	int n;

	if (strchr(name, '/')) {
		if (strlen(name) >= sizeof(addr->sun_path))
			return -ENAMETOOLONG;
		strcpy(addr->sun_path, name);
		return 0;
	}
	if (!name_valid(name))
		return -EINVAL;
	dir = runtime_dir_resolve(NULL, NULL);
	n = snprintf(addr->sun_path, sizeof(addr->sun_path), "%s/%s", dir, name);
	return n < 0 || (size_t)n >= sizeof(addr->sun_path) ? -ENAMETOOLONG : 0;
}

static bool
is_seqpacket(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
	       type == SOCK_SEQPACKET;
}

static int
port_new(int m_fd, int r_fd, int c_fd, bool batches, filter_port **ret)
{
	pthread_condattr_t ca;
	filter_port *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->m_fd = m_fd;
	p->r_fd = r_fd;
	p->c_fd = c_fd;
	p->batches = batches;
	p->rx_fd = -1;
	p->close_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->call_buf = malloc(WIRE_MAX_FRAME);
	p->rx_buf = batches ? malloc(WIRE_MAX_FRAME) : NULL;
	if (p->close_efd < 0 || !p->call_buf || (batches && !p->rx_buf)) {
		if (p->close_efd >= 0)
			close(p->close_efd);
		free(p->call_buf);
		free(p->rx_buf);
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->call_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->idle, &ca);
	pthread_cond_init(&p->rx_cond, &ca);
	pthread_condattr_destroy(&ca);
	*ret = p;
	return 0;
}

int
filter_connect_communication_port(const char *port_name, unsigned flags,
				  const void *context, size_t context_len,
				  filter_port **ret_port)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct wire_header h = { .type = WIRE_CONNECT };
	uint8_t buf[WIRE_HEADER_SIZE];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct pollfd pf;
	struct frame_rx rx;
	const char *why;
	filter_port *p;
	int fd, r, send_err;

	if (!port_name || !ret_port || (flags & ~FILTER_CONNECT_BATCHES) ||
	    (context_len && !context))
		return -EINVAL;
	if (context_len > WIRE_MAX_CONTEXT)
		return -EMSGSIZE;
	r = port_path(port_name, &addr);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	h.length = (uint32_t)context_len;
	h.flags = flags & FILTER_CONNECT_BATCHES ? WIRE_FLAG_BATCHES : 0;
	/* A refusing server may already have answered and closed; its
	 * answer is still queued for us, so read it even if this fails. */
	send_err = frame_send(fd, &h, context, NULL, 0, 0);

	pf = (struct pollfd){ .fd = fd, .events = POLLIN };
	do
		r = poll(&pf, 1, CONNECT_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		close(fd);
		return -ETIMEDOUT;
	}
	/* A server that refuses us closes its end while our CONNECT is
	 * unread; Linux then reports ECONNRESET once, before the refusal
	 * that is still queued for us. Read past it. */
	for (int tries = 0; tries < 2; tries++) {
		r = frame_recv(fd, &iov, 1, MSG_DONTWAIT | MSG_TRUNC, &rx);
		if (r != -ECONNRESET)
			break;
	}
	if (r <= 0) {
		close(fd);
		return send_err < 0 ? send_err : -ECONNRESET;
	}
	r = wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CONNECT_REPLY), &h,
			&why);
	if (r == 0 && h.status < 0)
		r = h.status;
	else if (r == 0 &&
		 (rx.n_fds != 2 || !is_seqpacket(rx.fds[0]) || !is_seqpacket(rx.fds[1])))
		r = -EPROTO;
	if (r < 0) {
		frame_rx_close_fds(&rx);
		close(fd);
		return r;
	}
	r = port_new(fd, rx.fds[0], rx.fds[1], flags & FILTER_CONNECT_BATCHES, &p);
	if (r < 0) {
		frame_rx_close_fds(&rx);
		close(fd);
		return r;
	}
	*ret_port = p;
	return 0;
}

int
filter_port_fd(filter_port *port)
{
	return port ? port->m_fd : -EINVAL;
}

static int
get_one(filter_port *p, struct filter_message_header *ret_header, void *buf,
	size_t buf_size, int timeout_ms, int64_t deadline)
{
	uint8_t hdr[WIRE_HEADER_SIZE];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = buf, .iov_len = buf_size },
	};
	struct wire_header h;
	struct frame_rx rx;
	const char *why;
	int r;

	/* With a timeout, the socket is read without blocking, and polled
	 * (with the close eventfd) only when nothing is queued: a service
	 * that drains a busy port makes one syscall per message, not two.
	 * Without one, a blocking read, which filter_close_port()'s shutdown
	 * ends. */
	for (;;) {
		int flags = MSG_TRUNC | (timeout_ms >= 0 ? MSG_DONTWAIT : 0);

		r = frame_recv(p->m_fd, iov, buf ? 2 : 1, flags, &rx);
		if (r != -EAGAIN || timeout_ms < 0)
			break;
		/* nothing queued, or another thread took it */
		if (deadline_poll_ms(deadline) == 0) {
			pthread_mutex_lock(&p->lock);
			r = p->closing ? -ECANCELED : -ETIMEDOUT;
			pthread_mutex_unlock(&p->lock);
			return r;
		}
		r = port_wait_fd(p, p->m_fd, POLLIN, deadline_poll_ms(deadline));
		if (r < 0)
			return r;
	}
	pthread_mutex_lock(&p->lock);
	if (p->closing) {
		pthread_mutex_unlock(&p->lock);
		frame_rx_close_fds(&rx);
		return -ECANCELED;
	}
	pthread_mutex_unlock(&p->lock);
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOTCONN;
	if (rx.size < WIRE_HEADER_SIZE ||
	    wire_decode(hdr, rx.size, 0, WIRE_BIT(WIRE_MESSAGE), &h, &why) < 0 ||
	    rx.n_fds > 1 || rx.fds_dropped) {
		frame_rx_close_fds(&rx);
		port_fail(p, -EPROTO);
		return -EPROTO;
	}
	*ret_header = (struct filter_message_header){
		.message_id = h.id,
		.sequence = h.aux,
		.reply_length = h.aux2,
		.fd = rx.n_fds ? rx.fds[0] : -1,
	};
	if (h.length > buf_size) {
		frame_rx_close_fds(&rx);
		ret_header->fd = -1;
		if (h.aux2)
			reply_send_nowait(p, h.id, -EMSGSIZE);
		return -EMSGSIZE;
	}
	if (h.aux2) {
		pthread_mutex_lock(&p->lock);
		r = ids_add_locked(p, h.id, h.aux2);
		pthread_mutex_unlock(&p->lock);
		if (r < 0) {
			frame_rx_close_fds(&rx);
			reply_send_nowait(p, h.id, -ENOMEM);
			return r;
		}
	}
	return (int)h.length;
}

int
filter_get_message(filter_port *port, struct filter_message_header *ret_header, void *buf,
		   size_t buf_size, int timeout_ms)
{
	int r;

	if (!port || !ret_header || (!buf && buf_size) || timeout_ms < -1)
		return -EINVAL;
	r = port_enter(port);
	if (r < 0)
		return r;
	if (port->batches) {
		struct filter_message m;

		r = batch_get(port, &m, 1, buf, buf_size, timeout_ms);
		if (r > 0 || r == -EMSGSIZE)
			*ret_header = m.header;
		if (r > 0)
			r = (int)m.length;
		port_leave(port);
		return r;
	}
	pthread_mutex_lock(&port->lock);
	r = port_error_locked(port);
	pthread_mutex_unlock(&port->lock);
	if (r == 0)
		r = get_one(port, ret_header, buf, buf_size, timeout_ms,
			    deadline_from_ms(timeout_ms));
	port_leave(port);
	return r;
}

int
filter_get_messages(filter_port *port, struct filter_message *msgs, size_t max_msgs,
		    void *buf, size_t buf_size, int timeout_ms)
{
	int r;

	if (!port || !msgs || !max_msgs || (!buf && buf_size) || timeout_ms < -1)
		return -EINVAL;
	if (max_msgs > INT_MAX)
		max_msgs = INT_MAX;
	r = port_enter(port);
	if (r < 0)
		return r;
	if (port->batches) {
		r = batch_get(port, msgs, max_msgs, buf, buf_size, timeout_ms);
		port_leave(port);
		return r;
	}
	pthread_mutex_lock(&port->lock);
	r = port_error_locked(port);
	pthread_mutex_unlock(&port->lock);
	if (r == 0)
		r = get_one(port, &msgs[0].header, buf, buf_size, timeout_ms,
			    deadline_from_ms(timeout_ms));
	if (r >= 0) {
		msgs[0].data = buf;
		msgs[0].length = (size_t)r;
		r = 1;
	}
	port_leave(port);
	return r;
}

void
filter_close_port(filter_port *port)
{
	if (!port)
		return;
	pthread_mutex_lock(&port->lock);
	port->closing = true;
	pthread_mutex_unlock(&port->lock);

	/* Wake everyone: pollers via the eventfd, blocking readers via
	 * shutdown (which the filter side sees as our disconnect). */
	{
		uint64_t one = 1;

		if (write(port->close_efd, &one, sizeof(one)) < 0) {
			/* cannot fail on a fresh eventfd */
		}
	}
	shutdown(port->m_fd, SHUT_RDWR);
	shutdown(port->r_fd, SHUT_RDWR);
	shutdown(port->c_fd, SHUT_RDWR);

	pthread_mutex_lock(&port->lock);
	acks_wake_all_locked(port);
	batch_wake_all_locked(port);
	while (port->users > 0)
		pthread_cond_wait(&port->idle, &port->lock);
	pthread_mutex_unlock(&port->lock);

	close(port->m_fd);
	close(port->r_fd);
	close(port->c_fd);
	close(port->close_efd);
	pthread_mutex_destroy(&port->lock);
	pthread_mutex_destroy(&port->call_lock);
	pthread_cond_destroy(&port->idle);
	pthread_cond_destroy(&port->rx_cond);
	if (port->rx_fd >= 0)
		close(port->rx_fd); /* a held message nobody took */
	free(port->rx_buf);
	free(port->ids);
	free(port->call_buf);
	free(port);
}
