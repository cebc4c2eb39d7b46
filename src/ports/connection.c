/* SPDX-License-Identifier: MIT */
/*
 * connection.c — one accepted connection: its handshake, its thread, the
 * dispatch of replies to waiting senders, and its close protocol.
 *
 * The connection thread owns the handshake and the C socket (service calls
 * into the filter's message callback), watches M (any record there, or
 * its end), the peer process (its pidfd: the connection ends when the
 * process that made it exits, whoever else holds its sockets), runs the
 * disconnect callback exactly once, and finally releases the connection's
 * slot. Senders (send.c) read the R socket while they wait for replies;
 * whenever none does, the thread watches R itself, so that whatever the
 * service writes there (a late reply, a malformed frame, a descriptor) or
 * its hang-up is seen at once (see docs/ports.md, "Who reads replies").
 * Every record is received with MSG_CMSG_CLOEXEC, and a descriptor where
 * none belongs is closed on receipt and ends the connection: a socket end
 * left in flight in one of our queues would keep the connection alive
 * after its process died.
 *
 * Closing is two-phase (conn_disconnect): under the lock, refuse new work
 * and fail every waiting request exactly once; then wake every poller (the
 * close eventfd stays readable), shut the sockets down so the service sees
 * EOF, and unpublish the handle. Descriptors are closed only in
 * conn_destroy(), when the last reference is gone, so no thread can ever
 * use a descriptor number that was reused.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "common/frame_io.h"
#include "common/timeutil.h"
#include "engine/exclude.h"
#include "core/fault.h"
#include "ports/internal.h"
#include "common/lockdep.h"

#define HANDSHAKE_TIMEOUT_MS 5000

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

static void
conn_destroy(struct obj *o)
{
	struct conn *c = conn_of(o);
	int fds[] = { c->m_fd,  c->r_fd,  c->c_fd,    c->close_efd,
		      c->ep_fd, c->pidfd, c->post_efd };

	/* First leave the port's list (and fold the counters) under its
	 * lock, so a concurrent stats walk never sees a half-freed
	 * connection; only then tear the object down. */
	pthread_mutex_lock(&c->sp->lock);
	if (c->on_sp_list) {
		if (c->sp_prev)
			c->sp_prev->sp_next = c->sp_next;
		else
			c->sp->conns = c->sp_next;
		if (c->sp_next)
			c->sp_next->sp_prev = c->sp_prev;
		counters_add(&c->sp->done, &c->ctr);
	}
	pthread_mutex_unlock(&c->sp->lock);

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->state_cond);
	free(c->cancelled);
	free(c->r_buf);
	free(c->pq); /* empty: cancelled before the disconnect callback */
	obj_unref(&c->sp->obj);
	free(c);
}

/* Refuses the peer before its connection exists: no callback ran. */
static void
refuse_early(int fd, int status)
{
	struct wire_header h = { .type = WIRE_CONNECT_REPLY, .status = status };

	(void)frame_send(fd, &h, NULL, NULL, 0, MSG_DONTWAIT);
}

/*
 * A pidfd of the process that connected: SO_PEERPIDFD names exactly that
 * process (Linux 6.5). Older kernels: pidfd_open() of the pid SO_PEERCRED
 * gave, which names a stranger if the client died and its pid was reused
 * between connect() and now; watching a stranger only keeps the connection
 * up as long as the client's sockets are (as without a pidfd). -1 if
 * neither works.
 */
static int
peer_pidfd(int fd, const struct flt_peer *peer)
{
	socklen_t len = sizeof(int);
	int pidfd = -1;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0)
		return pidfd;
	if (peer->pid <= 0)
		return -1;
	pidfd = (int)syscall(SYS_pidfd_open, peer->pid, 0);
	return pidfd >= 0 ? pidfd : -1;
}

/* Has the process that connected exited (its pidfd is readable)? */
static bool
peer_exited(const struct conn *c)
{
	struct pollfd p = { .fd = c->pidfd, .events = POLLIN };

	return c->pidfd >= 0 && poll(&p, 1, 0) > 0;
}

int
conn_new(struct server_port *sp, int fd, const struct flt_peer *peer, struct conn **ret)
{
	pthread_condattr_t ca;
	struct conn *c;
	int r;

	c = fault_alloc_fails(FAULT_CONNECTION) ? NULL : calloc(1, sizeof(*c));
	if (!c) {
		refuse_early(fd, -ENOMEM);
		close(fd);
		return -ENOMEM;
	}
	atomic_init(&c->obj.refs, 1);
	c->obj.destroy = conn_destroy;
	c->ep_fd = -1;
	c->post_efd = -1;
	c->filter = sp->filter;
	c->sp = sp;
	obj_ref(&sp->obj);
	c->m_fd = fd;
	c->r_fd = c->c_fd = -1;
	c->pidfd = peer_pidfd(fd, peer);
	c->peer = *peer;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->state_cond, &ca);
	pthread_condattr_destroy(&ca);
	c->close_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = c->close_efd < 0 ? -errno : 0;
	c->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (c->ep_fd < 0 && r == 0)
		r = -errno;
	c->post_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->post_efd < 0 && r == 0)
		r = -errno;
	c->r_buf = malloc(WIRE_MAX_FRAME);
	if (r < 0 || !c->r_buf) {
		refuse_early(fd, r < 0 ? r : -ENOMEM);
		obj_unref(&c->obj); /* closes fd */
		return r < 0 ? r : -ENOMEM;
	}
	pthread_mutex_lock(&sp->lock);
	c->on_sp_list = true;
	c->sp_next = sp->conns;
	if (sp->conns)
		sp->conns->sp_prev = c;
	sp->conns = c;
	pthread_mutex_unlock(&sp->lock);
	*ret = c;
	return 0;
}

void
counters_add(struct conn_counters *into, const struct conn_counters *from)
{
#define ADD(f) atomic_fetch_add(&into->f, atomic_load(&from->f))
	ADD(sent);
	ADD(replied);
	ADD(timeouts);
	ADD(disconnect_failures);
	ADD(late_replies);
	ADD(service_messages);
	ADD(posted);
	ADD(post_refused);
	ADD(post_sent);
	ADD(post_cancelled);
	ADD(post_frames);
#undef ADD
}

void
counters_to_stats(const struct conn_counters *c, struct flt_port_stats *s)
{
	s->messages_sent += atomic_load(&c->sent);
	s->replies_received += atomic_load(&c->replied);
	s->timeouts += atomic_load(&c->timeouts);
	s->disconnect_failures += atomic_load(&c->disconnect_failures);
	s->late_replies += atomic_load(&c->late_replies);
	s->service_messages += atomic_load(&c->service_messages);
}

void
conn_fill_stats(struct conn *c, struct flt_port_stats *s)
{
	int outq = 0;

	counters_to_stats(&c->ctr, s);
	s->blocked_senders += atomic_load(&c->blocked_senders);
	pthread_mutex_lock(&c->lock);
	s->pending_replies += c->n_waiting;
	if (c->accepted && c->state != CONN_CLOSING)
		s->connections_current++;
	pthread_mutex_unlock(&c->lock);
	if (ioctl(c->m_fd, SIOCOUTQ, &outq) == 0 && outq > 0)
		s->queued_bytes += (uint32_t)outq;
}

/* ---- closing ---- */

void
conn_disconnect(struct conn *c, const char *reason)
{
	uint32_t failed = 0;
	bool published;
	int r_fd, c_fd;

	pthread_mutex_lock(&c->lock);
	if (c->state == CONN_CLOSING) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	assert_transition(c->state, CONN_CLOSING,
			  STATE_BIT(CONN_HANDSHAKE) | STATE_BIT(CONN_CONNECTED));
	c->state = CONN_CLOSING;
	published = c->published;
	r_fd = c->r_fd;
	c_fd = c->c_fd;
	c->close_reason = reason;
	for (struct request *r = c->waiting; r; r = r->next) {
		assert_transition(r->state, REQ_FAILED, STATE_BIT(REQ_WAITING));
		r->state = REQ_FAILED;
		pthread_cond_signal(&r->cond);
		failed++;
	}
	c->waiting = NULL;
	c->n_waiting = 0;
	pthread_cond_broadcast(&c->state_cond);
	pthread_mutex_unlock(&c->lock);

	eventfd_signal(c->close_efd);
	shutdown(c->m_fd, SHUT_RDWR);
	if (r_fd >= 0)
		shutdown(r_fd, SHUT_RDWR);
	if (c_fd >= 0)
		shutdown(c_fd, SHUT_RDWR);
	if (published)
		ht_remove(&c->filter->mgr->ht, c->handle, HK_CONN);
	log_info(c->filter->mgr, "port %s: connection of pid %d closed: %s%s",
		 c->sp->name, (int)c->peer.pid, reason,
		 failed ? " (waiting senders failed with ENOTCONN)" : "");
}

void
conn_malformed(struct conn *c, const char *channel, const char *reason)
{
	atomic_fetch_add(&c->sp->malformed, 1);
	log_warning(c->filter->mgr,
		    "port %s: dropping connection of pid %d: malformed frame on %s "
		    "channel: %s",
		    c->sp->name, (int)c->peer.pid, channel, reason);
	conn_disconnect(c, "malformed frame");
}

/* ---- replies (R socket) ---- */

/* Caller holds c->lock. */
static bool
take_cancelled(struct conn *c, uint64_t id)
{
	lockdep_assert_held(&c->lock);
	int64_t now = now_ns();
	bool found = false;
	size_t j = 0;

	for (size_t i = 0; i < c->n_cancelled; i++) {
		if (c->cancelled[i].id == id)
			found = true;
		else if (c->cancelled[i].expires_ns > now)
			c->cancelled[j++] = c->cancelled[i];
	}
	c->n_cancelled = j;
	return found;
}

static void
dispatch_reply(struct conn *c, const struct wire_header *h, const uint8_t *payload)
{
	struct wire_header ack = { .type = WIRE_REPLY_ACK, .id = h->id };
	bool want_ack = !(h->flags & WIRE_FLAG_NO_ACK);
	struct request *r;
	int sr = 0;

	pthread_mutex_lock(&c->lock);
	for (r = c->waiting; r && r->id != h->id; r = r->next)
		;
	if (r && h->length > r->cap) {
		ack.status = -EMSGSIZE; /* the sender keeps waiting */
	} else if (r) {
		if (h->length)
			memcpy(r->buf, payload, h->length);
		r->len = h->length;
		r->status = h->status;
		assert_transition(r->state, REQ_ANSWERED, STATE_BIT(REQ_WAITING));
		r->state = REQ_ANSWERED;
		conn_unlink_request_locked(c, r);
		/* The ack goes out before the sender can run: a sender that
		 * closes the connection as soon as it has its answer must not
		 * leave the service without the ack that says its reply was
		 * taken. (The send does not block; c->lock is held for one
		 * syscall.) */
		if (want_ack)
			sr = frame_send(c->r_fd, &ack, NULL, NULL, 0, MSG_DONTWAIT);
		want_ack = false;
		pthread_cond_signal(&r->cond);
		atomic_fetch_add_explicit(&c->ctr.replied, 1, memory_order_relaxed);
	} else {
		bool late = take_cancelled(c, h->id);

		ack.status = -ENOENT;
		atomic_fetch_add(&c->ctr.late_replies, 1);
		log_debug(c->filter->mgr, "port %s: %s reply %llu refused", c->sp->name,
			  late ? "late" : "unknown", (unsigned long long)h->id);
	}
	pthread_mutex_unlock(&c->lock);

	/* The library answered by itself (NO_ACK) and waits for nothing. */
	if (want_ack)
		sr = frame_send(c->r_fd, &ack, NULL, NULL, 0, MSG_DONTWAIT);
	if (sr == -EAGAIN) {
		/* Every reply gets one ack and a correct service waits for
		 * it; a full buffer means the service floods replies. */
		conn_malformed(c, "reply", "service does not read reply acks");
	}
}

void
conn_unlink_request_locked(struct conn *c, struct request *r)
{
	lockdep_assert_held(&c->lock);
	if (r->prev)
		r->prev->next = r->next;
	else
		c->waiting = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	c->n_waiting--;
}

/*
 * Reads one frame of type `type` from fd (R or C) without blocking into
 * buf (WIRE_MAX_FRAME bytes). Returns 1 with *h filled, 0 when nothing is
 * there, or -ENOTCONN when the connection is gone — closed by the service,
 * or dropped here for a malformed frame (logged and counted).
 */
static int
recv_checked(struct conn *c, int fd, uint8_t *buf, enum wire_type type,
	     const char *channel, struct wire_header *h)
{
	struct iovec iov = { .iov_base = buf, .iov_len = WIRE_MAX_FRAME };
	struct frame_rx rx;
	const char *why;
	int r;

	r = frame_recv(fd, &iov, 1, MSG_DONTWAIT | MSG_TRUNC, &rx);
	if (r == -EAGAIN)
		return 0;
	if (r <= 0) {
		conn_disconnect(c, "service closed the connection");
		return -ENOTCONN;
	}
	if (rx.n_fds || rx.fds_dropped) {
		frame_rx_close_fds(&rx);
		conn_malformed(c, channel, "descriptor attached");
		return -ENOTCONN;
	}
	r = wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(type), h, &why);
	if (r < 0) {
		conn_malformed(c, channel, why);
		return -ENOTCONN;
	}
	return 1;
}

int
conn_drain_replies(struct conn *c, const struct request *until)
{
	for (;;) {
		struct wire_header h;
		int r = recv_checked(c, c->r_fd, c->r_buf, WIRE_REPLY, "reply", &h);

		if (r <= 0)
			return r;
		dispatch_reply(c, &h, c->r_buf + WIRE_HEADER_SIZE);
		if (until) {
			bool done;

			/* Stop at our own reply: no extra read that would only
			 * say EAGAIN. The next leader reads the rest. */
			pthread_mutex_lock(&c->lock);
			done = until->state != REQ_WAITING;
			pthread_mutex_unlock(&c->lock);
			if (done)
				return 0;
		}
	}
}

/* ---- service calls (C socket) ---- */

static int
serve_call(struct conn *c, uint8_t *in, uint8_t *out)
{
	struct wire_header h, res = { .type = WIRE_CALL_RESULT };
	size_t out_len = 0;
	int r, status;

	r = recv_checked(c, c->c_fd, in, WIRE_CALL, "call", &h);
	if (r <= 0)
		return r;
	if (!c->sp->on_message) {
		status = -EOPNOTSUPP;
	} else {
		size_t cap = h.aux2;

		status = c->sp->on_message(c->cookie, in + WIRE_HEADER_SIZE, h.length,
					   out, cap, &out_len);
		if (status > 0)
			status = 0;
		if (out_len > cap) {
			log_error(c->filter->mgr,
				  "filter %s: message callback wrote %zu bytes into %zu",
				  c->filter->name, out_len, cap);
			out_len = cap;
		}
		if (status < 0)
			out_len = 0;
	}
	atomic_fetch_add(&c->ctr.service_messages, 1);
	res.id = h.id;
	res.status = status;
	res.length = (uint32_t)out_len;
	r = frame_send(c->c_fd, &res, out, NULL, 0, MSG_DONTWAIT);
	if (r == -EAGAIN) {
		conn_malformed(c, "call", "service does not read call results");
		return -ENOTCONN;
	}
	return 0;
}

/* ---- handshake ---- */

static void
reply_status(int fd, int status, const int *fds, size_t n_fds)
{
	struct wire_header h = { .type = WIRE_CONNECT_REPLY, .status = status };

	(void)frame_send(fd, &h, NULL, fds, n_fds, MSG_DONTWAIT);
}

/* Returns 0 when the connection is established, else < 0 (refused). */
static int
handshake(struct conn *c)
{
	struct server_port *sp = c->sp;
	flt_filter *f = c->filter;
	uint8_t buf[WIRE_HEADER_SIZE + WIRE_MAX_CONTEXT];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct pollfd p[3] = {
		{ .fd = c->m_fd, .events = POLLIN },
		{ .fd = c->close_efd, .events = POLLIN },
		{ .fd = c->pidfd, .events = POLLIN },
	};
	int r_pair[2] = { -1, -1 }, c_pair[2] = { -1, -1 };
	struct wire_header h;
	struct frame_rx rx;
	const char *why;
	void *cookie = NULL;
	bool port_closed;
	int r;

	r = poll(p, c->pidfd >= 0 ? 3 : 2, HANDSHAKE_TIMEOUT_MS);
	if (r == 0) {
		log_notice(f->mgr, "port %s: pid %d sent no CONNECT within %d ms",
			   sp->name, (int)c->peer.pid, HANDSHAKE_TIMEOUT_MS);
		atomic_fetch_add(&sp->refused, 1);
		return -ETIMEDOUT;
	}
	if (r < 0 || p[1].revents) {
		atomic_fetch_add(&sp->refused, 1);
		return -ECONNABORTED;
	}
	if (!p[0].revents) { /* the process exited, its CONNECT never came */
		log_notice(f->mgr, "port %s: pid %d exited before sending CONNECT",
			   sp->name, (int)c->peer.pid);
		atomic_fetch_add(&sp->refused, 1);
		return -ECONNRESET;
	}
	r = frame_recv(c->m_fd, &iov, 1, MSG_DONTWAIT | MSG_TRUNC, &rx);
	if (r <= 0) {
		atomic_fetch_add(&sp->refused, 1);
		return -ECONNRESET;
	}
	if (rx.n_fds || rx.fds_dropped) {
		frame_rx_close_fds(&rx);
		atomic_fetch_add(&sp->malformed, 1);
		atomic_fetch_add(&sp->refused, 1);
		log_warning(f->mgr, "port %s: pid %d: descriptor attached to CONNECT",
			    sp->name, (int)c->peer.pid);
		reply_status(c->m_fd, -EPROTO, NULL, 0);
		return -EPROTO;
	}
	r = wire_decode(buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CONNECT), &h, &why);
	if (r < 0) {
		atomic_fetch_add(&sp->malformed, 1);
		atomic_fetch_add(&sp->refused, 1);
		log_warning(f->mgr, "port %s: pid %d: malformed CONNECT: %s", sp->name,
			    (int)c->peer.pid, why);
		reply_status(c->m_fd, r, NULL, 0);
		return r;
	}
	if (peer_exited(c)) {
		/* Nobody to serve, and its pid may be reused: no callback. */
		log_notice(f->mgr,
			   "port %s: pid %d exited before its connection "
			   "was accepted",
			   sp->name, (int)c->peer.pid);
		atomic_fetch_add(&sp->refused, 1);
		reply_status(c->m_fd, -ESRCH, NULL, 0);
		return -ESRCH;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r_pair) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c_pair) < 0) {
		r = -errno;
		goto refuse;
	}
	r = ht_insert(&f->mgr->ht, HK_CONN, &c->obj, &c->handle);
	if (r < 0)
		goto refuse;
	pthread_mutex_lock(&c->lock);
	c->r_fd = r_pair[0];
	c->c_fd = c_pair[0];
	c->batches = (h.flags & WIRE_FLAG_BATCHES) != 0;
	c->published = true;
	if (c->state == CONN_CLOSING) {
		/* Disconnected (filter unregistering) before we published. */
		pthread_mutex_unlock(&c->lock);
		ht_remove(&f->mgr->ht, c->handle, HK_CONN);
		r = -ECONNABORTED;
		goto refuse;
	}
	pthread_mutex_unlock(&c->lock);

	/* The callback runs under the port lock: its plain store of the
	 * handle is ordered with every sender's locked read. A server port
	 * closed by now (sp_close marks it under this lock) runs no more
	 * connect callbacks: the filter may free the server cookie as soon
	 * as flt_close_communication_port() returns. */
	pthread_mutex_lock(&f->port_lock);
	pthread_mutex_lock(&sp->lock);
	port_closed = sp->closed;
	pthread_mutex_unlock(&sp->lock);
	if (port_closed) {
		r = -ECONNREFUSED;
	} else {
		conn_set_handshaking(c);
		r = sp->on_connect(c->handle, sp->cookie, buf + WIRE_HEADER_SIZE,
				   h.length, &c->peer, &cookie);
		conn_set_handshaking(NULL);
	}
	if (r > 0) {
		log_error(f->mgr,
			  "filter %s: connect callback returned %d; treating as -EINVAL",
			  f->name, r);
		r = -EINVAL;
	}
	pthread_mutex_lock(&c->lock);
	if (r == 0) {
		c->accepted = true;
		c->cookie = cookie;
		if (c->state == CONN_HANDSHAKE) {
			int peer_fds[2] = { r_pair[1], c_pair[1] };

			c->state = CONN_CONNECTED;
			reply_status(c->m_fd, 0, peer_fds, 2);
		} else {
			/* Closed from inside the callback. */
			reply_status(c->m_fd, -ECONNABORTED, NULL, 0);
		}
	}
	pthread_cond_broadcast(&c->state_cond);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&f->port_lock);
	close(r_pair[1]);
	close(c_pair[1]);
	if (r == 0) {
		atomic_fetch_add(&sp->accepted, 1);
		log_info(f->mgr, "port %s: connected pid %d uid %u", sp->name,
			 (int)c->peer.pid, (unsigned)c->peer.uid);
		return 0;
	}
	atomic_fetch_add(&sp->refused, 1);
	if (port_closed)
		log_info(f->mgr,
			 "port %s: closed before the connection of pid %d was accepted",
			 sp->name, (int)c->peer.pid);
	else
		log_info(f->mgr, "port %s: connect callback refused pid %d: %s", sp->name,
			 (int)c->peer.pid, strerror(-r));
	reply_status(c->m_fd, r, NULL, 0);
	return r;

refuse:
	/* Our ends belong to the connection once stored in it. */
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < 2; i++) {
		if (r_pair[i] >= 0 && r_pair[i] != c->r_fd)
			close(r_pair[i]);
		if (c_pair[i] >= 0 && c_pair[i] != c->c_fd)
			close(c_pair[i]);
	}
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&sp->refused, 1);
	reply_status(c->m_fd, r, NULL, 0);
	return r;
}

/* ---- the connection thread ---- */

/* Caller holds c->lock. */
static bool
any_in_wait(struct conn *c)
{
	for (struct request *r = c->waiting; r; r = r->next)
		if (r->in_wait)
			return true;
	return false;
}

void
conn_watch_replies_locked(struct conn *c, bool on)
{
	lockdep_assert_held(&c->lock);
	struct epoll_event e = {
		.events = EPOLLONESHOT | (on ? EPOLLIN : 0u),
		.data.u32 = CONN_EV_R,
	};

	/* MOD allocates nothing, so it cannot fail on a registered R. */
	if (c->serving)
		(void)epoll_ctl(c->ep_fd, EPOLL_CTL_MOD, c->r_fd, &e);
}

static int
ep_add(struct conn *c, int fd, uint32_t events, uint32_t tag)
{
	struct epoll_event e = { .events = events, .data.u32 = tag };

	return epoll_ctl(c->ep_fd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

/* R was readable (or hung up) while the thread watched it: read what is
 * there, unless a sender has taken the role over since. */
static void
serve_replies(struct conn *c)
{
	bool take;

	pthread_mutex_lock(&c->lock);
	take = c->reader == READER_THREAD_IDLE;
	if (take)
		c->reader = READER_THREAD;
	pthread_mutex_unlock(&c->lock);
	if (!take)
		return;
	(void)conn_drain_replies(c, NULL);
	pthread_mutex_lock(&c->lock);
	c->reader = READER_NONE;
	take_cancelled(c, 0); /* expire old cancellations */
	conn_pass_reader_role_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* M is readable: the service's end of it (EOF, reset), or a record the
 * service must never write there. Either way the connection ends. */
static void
watch_messages(struct conn *c)
{
	uint8_t buf[WIRE_HEADER_SIZE];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct frame_rx rx;
	int r = frame_recv(c->m_fd, &iov, 1, MSG_DONTWAIT | MSG_TRUNC, &rx);
	bool fds = rx.n_fds || rx.fds_dropped;

	frame_rx_close_fds(&rx);
	if (r == -EAGAIN || r == -EINTR)
		return;
	if (r > 0)
		conn_malformed(c, "message",
			       fds ? "descriptor attached"
				   : "service wrote on the message channel");
	else
		conn_disconnect(c, "service closed the connection");
}

/* epoll_wait() until a CLOCK_MONOTONIC deadline (DEADLINE_NEVER: none),
 * to the microsecond where the kernel has epoll_pwait2 (5.11), else
 * rounded up to the millisecond. */
static int
epoll_wait_until(int ep, struct epoll_event *ev, int n, int64_t deadline)
{
	static atomic_bool no_pwait2;
	int64_t left;
	int r;

	if (deadline == DEADLINE_NEVER)
		return epoll_wait(ep, ev, n, -1);
	left = deadline - now_ns();
	if (left < 0)
		left = 0;
	if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
		struct timespec ts = { .tv_sec = left / 1000000000,
				       .tv_nsec = left % 1000000000 };

		r = epoll_pwait2(ep, ev, n, &ts, NULL);
		if (r >= 0 || errno != ENOSYS)
			return r;
		atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
	}
	return epoll_wait(ep, ev, n, (int)((left + 999999) / 1000000));
}

static void
serve(struct conn *c)
{
	uint8_t *in = malloc(WIRE_MAX_FRAME), *out = malloc(WIRE_MAX_PAYLOAD);
	int r;

	if (!in || !out) {
		conn_disconnect(c, "out of memory");
		goto done;
	}
	/* R one-shot and disarmed: armed whenever the thread holds the R
	 * role, disarmed (by a sender, without waking us) when taken. */
	r = ep_add(c, c->close_efd, EPOLLIN, CONN_EV_CLOSE);
	if (r == 0)
		r = ep_add(c, c->m_fd, EPOLLIN, CONN_EV_M);
	if (r == 0)
		r = ep_add(c, c->c_fd, EPOLLIN, CONN_EV_C);
	if (r == 0)
		r = ep_add(c, c->r_fd, EPOLLONESHOT, CONN_EV_R);
	if (r == 0 && c->pidfd >= 0)
		r = ep_add(c, c->pidfd, EPOLLIN, CONN_EV_PID);
	if (r == 0)
		r = ep_add(c, c->post_efd, EPOLLIN, CONN_EV_POST);
	if (r < 0) {
		log_warning(c->filter->mgr,
			    "port %s: cannot watch the connection of pid %d: %s",
			    c->sp->name, (int)c->peer.pid, strerror(-r));
		conn_disconnect(c, "cannot watch the connection");
		goto done;
	}
	pthread_mutex_lock(&c->lock);
	c->serving = true;
	pthread_mutex_unlock(&c->lock);

	for (;;) {
		struct epoll_event ev[6];
		int64_t hold;
		uint32_t m_events = 0;
		unsigned got = 0;
		int n;

		pthread_mutex_lock(&c->lock);
		if (c->state == CONN_CLOSING) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		/* Nobody reads R: we do (late replies, garbage, hang-up). */
		if (c->reader == READER_NONE && !any_in_wait(c)) {
			c->reader = READER_THREAD_IDLE;
			conn_watch_replies_locked(c, true);
		}
		pthread_mutex_unlock(&c->lock);

		/* Posted messages: sent until the socket is full (then M
		 * wakes us when it has room) or one is held for company. */
		hold = conn_post_run(c);
		n = epoll_wait_until(c->ep_fd, ev, 6, hold);
		for (int i = 0; i < n; i++) {
			got |= 1u << ev[i].data.u32;
			if (ev[i].data.u32 == CONN_EV_M)
				m_events = ev[i].events;
		}
		if (got & (1u << CONN_EV_CLOSE))
			break;
		/* R first: what the service wrote there before it went is
		 * judged (and counted) before its end is. */
		if (got & (1u << CONN_EV_R))
			serve_replies(c);
		if (m_events & ~(uint32_t)EPOLLOUT)
			watch_messages(c);
		if (got & (1u << CONN_EV_POST))
			eventfd_drain(c->post_efd);
		if (got & (1u << CONN_EV_PID))
			conn_disconnect(c, "service process exited");
		if ((got & (1u << CONN_EV_C)) && serve_call(c, in, out) < 0)
			break;
	}
done:
	free(in);
	free(out);
}

static void *
conn_thread(void *arg)
{
	struct conn *c = arg;
	flt_filter *f = c->filter;
	flt_manager *m = f->mgr;
	uint64_t exclusion;
	char tname[16];

	snprintf(tname, sizeof(tname), "flt-conn-%d", (int)c->peer.pid);
	pthread_setname_np(pthread_self(), tname);

	if (handshake(c) == 0)
		serve(c);
	conn_disconnect(c, "connection refused");
	conn_post_cancel_all(c);
	/* CLOSING: no hold can be added any more. The process is seen
	 * again before the disconnect callback runs. */
	pthread_mutex_lock(&c->lock);
	exclusion = c->exclusion;
	c->exclusion = 0;
	pthread_mutex_unlock(&c->lock);
	exclusion_release(f, exclusion);

	/* Exactly once per accepted connection; no lock held. */
	if (c->accepted)
		c->sp->on_disconnect(c->cookie);
	sp_release_slot(c->sp);

	pthread_mutex_lock(&f->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		f->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&f->lock);
	obj_unref(&c->obj); /* the thread's reference */

	mgr_add_zombie(m, pthread_self());
	pthread_mutex_lock(&f->lock);
	f->n_threads--;
	pthread_cond_broadcast(&f->threads_done);
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int
flt_exclude_connection_process(flt_filter *filter, const flt_port *client_port)
{
	struct conn *c;
	int64_t id;
	int r;

	if (!filter || !client_port)
		return -EINVAL;
	r = conn_lookup(filter, client_port, &c);
	if (r < 0)
		return r;
	/* Under c->lock, so that the hold is either taken before the
	 * connection is CLOSING (and dropped by its thread) or not at all. */
	pthread_mutex_lock(&c->lock);
	if (c->state == CONN_CLOSING) {
		r = -ENOTCONN;
	} else if (c->exclusion) {
		r = 0; /* once per connection */
	} else if (c->peer.pid <= 0) {
		r = -ESRCH; /* no pid to name in our pid namespace */
	} else {
		id = exclusion_hold(filter, c->peer.pid, c->pidfd);
		if (id > 0)
			c->exclusion = (uint64_t)id;
		r = id < 0 ? (int)id : 0;
	}
	pthread_mutex_unlock(&c->lock);
	obj_unref(&c->obj);
	return r;
}

int
conn_start(struct conn *c)
{
	flt_filter *f = c->filter;
	int r;

	pthread_mutex_lock(&f->lock);
	if (f->closing) {
		pthread_mutex_unlock(&f->lock);
		return -ESHUTDOWN;
	}
	obj_ref(&c->obj); /* the thread's */
	r = -pthread_create(&c->thread, NULL, conn_thread, c);
	if (r < 0) {
		pthread_mutex_unlock(&f->lock);
		obj_unref(&c->obj);
		return r;
	}
	c->next = f->conns;
	if (f->conns)
		f->conns->prev = c;
	f->conns = c;
	f->n_threads++;
	pthread_mutex_unlock(&f->lock);
	obj_unref(&c->obj); /* the creator's; the thread owns it now */
	return 0;
}
