/* SPDX-License-Identifier: MIT */
/*
 * call.c — filter_send_message(): a CALL on the C socket, answered by the
 * filter's message callback with a CALL_RESULT. Calls on one port are
 * serialised (one in flight); they never block filter_get_message().
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "common/frame_io.h"
#include "common/wire.h"
#include "user/internal.h"
#include "common/lockdep.h"

static int
call_locked(filter_port *p, const void *in, size_t in_len, void *out, size_t out_cap,
	    size_t *ret_out_len)
{
	lockdep_assert_held(&p->call_lock);
	struct wire_header h = {
		.type = WIRE_CALL,
		.id = ++p->next_call,
		.length = (uint32_t)in_len,
		.aux2 = (uint32_t)(out_cap < WIRE_MAX_PAYLOAD ? out_cap
							      : WIRE_MAX_PAYLOAD),
	};
	struct iovec iov = { .iov_base = p->call_buf, .iov_len = WIRE_MAX_FRAME };
	struct wire_header res;
	struct frame_rx rx;
	const char *why;
	int r;

	r = port_send_frame(p, p->c_fd, &h, in);
	if (r < 0)
		return r;
	for (;;) {
		r = port_wait_fd(p, p->c_fd, POLLIN, -1);
		if (r < 0)
			return r;
		r = frame_recv(p->c_fd, &iov, 1, MSG_DONTWAIT | MSG_TRUNC, &rx);
		if (r != -EAGAIN)
			break;
	}
	if (r < 0)
		return r;
	if (r == 0)
		return -ENOTCONN;
	frame_rx_close_fds(&rx);
	if (wire_decode(p->call_buf, rx.size, rx.truncated, WIRE_BIT(WIRE_CALL_RESULT),
			&res, &why) < 0 ||
	    res.id != h.id || res.length > h.aux2)
		return -EPROTO;
	if (res.length)
		memcpy(out, p->call_buf + WIRE_HEADER_SIZE, res.length);
	if (ret_out_len)
		*ret_out_len = res.length;
	return res.status;
}

int
filter_send_message(filter_port *port, const void *in, size_t in_len, void *out,
		    size_t out_cap, size_t *ret_out_len)
{
	int r;

	if (!port || (in_len && !in) || (out_cap && !out))
		return -EINVAL;
	if (in_len > WIRE_MAX_PAYLOAD)
		return -EMSGSIZE;
	r = port_enter(port);
	if (r < 0)
		return r;
	pthread_mutex_lock(&port->call_lock);
	pthread_mutex_lock(&port->lock);
	r = port_error_locked(port);
	pthread_mutex_unlock(&port->lock);
	if (r == 0) {
		r = call_locked(port, in, in_len, out, out_cap, ret_out_len);
		if (r == -ENOTCONN || r == -EPROTO)
			port_fail(port, r);
	}
	pthread_mutex_unlock(&port->call_lock);
	port_leave(port);
	return r;
}
