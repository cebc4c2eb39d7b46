/* SPDX-License-Identifier: MIT */
/*
 * ctl_client.c — fltmc's side of the control socket: connecting, one
 * request packet out, one reply packet in, and turning the reply into a
 * json-c object. It owns nothing past a call: the descriptor from
 * ctl_connect() and the reply object from ctl_call() belong to the caller.
 *
 * The reply is read whole: a MSG_PEEK|MSG_TRUNC probe gives the packet's
 * real size, so replies of any size up to CTL_REPLY_MAX are read in one
 * buffer and a truncated read is detected, never parsed.
 */
#include "ctl/ctl_client.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int
set_timeouts(int fd)
{
	struct timeval tv = {
		.tv_sec = CTL_TIMEOUT_MS / 1000,
		.tv_usec = (CTL_TIMEOUT_MS % 1000) * 1000,
	};

	/* SO_SNDTIMEO also bounds a connect(2) that waits for room in the
	 * listener's backlog. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

int
ctl_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd, r;

	if (len == 0 || len >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, len + 1);

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = set_timeouts(fd);
	if (r < 0)
		goto fail;
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		goto fail;
	}
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}

/* Receives one packet into a fresh NUL-terminated buffer (owned by the
 * caller on success). -ENODATA on end-of-file. */
static int
recv_packet(int fd, char **ret_buf, size_t *ret_len)
{
	bool retried_reset = false;
	struct msghdr mh = { 0 };
	struct iovec iov;
	ssize_t n, m;
	char probe;
	char *buf;

	for (;;) {
		n = recv(fd, &probe, 1, MSG_PEEK | MSG_TRUNC);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		/* A peer that closes with our request unread leaves a
		 * pending ECONNRESET that is reported before the packets
		 * still queued for us (its reply, if it wrote one); the
		 * error is cleared by reporting it, so look once more. */
		if (errno == ECONNRESET && !retried_reset) {
			retried_reset = true;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -ETIMEDOUT;
		if (errno == ECONNRESET)
			return -ENODATA;
		return -errno;
	}
	/* On a SOCK_SEQPACKET socket an empty packet reads like end-of-file;
	 * it would be no valid reply either. */
	if (n == 0)
		return -ENODATA;
	if ((size_t)n > CTL_REPLY_MAX)
		return -EMSGSIZE;

	buf = malloc((size_t)n + 1);
	if (!buf)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = (size_t)n + 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	do
		m = recvmsg(fd, &mh, 0);
	while (m < 0 && errno == EINTR);
	if (m < 0) {
		int r = errno == EAGAIN ? -ETIMEDOUT : -errno;

		free(buf);
		return r;
	}
	if (m != n || (mh.msg_flags & MSG_TRUNC)) {
		free(buf);
		return -EMSGSIZE;
	}
	buf[m] = '\0';
	*ret_buf = buf;
	*ret_len = (size_t)m;
	return 0;
}

static bool
only_whitespace(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* Parses buf as exactly one JSON object with a boolean "ok". */
static int
parse_reply(const char *buf, size_t len, json_object **ret_reply)
{
	json_object *obj, *ok;
	json_tokener *tok;
	size_t end;
	int r = 0;

	if (len > (size_t)INT32_MAX)
		return -EMSGSIZE;
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_ALLOW_TRAILING_CHARS |
					    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(obj, json_type_object) || end > len ||
	    !only_whitespace(buf + end, len - end))
		r = -EPROTO;
	else if (!json_object_object_get_ex(obj, "ok", &ok) ||
		 !json_object_is_type(ok, json_type_boolean))
		r = -EBADMSG;
	json_tokener_free(tok);
	if (r < 0) {
		json_object_put(obj);
		return r;
	}
	*ret_reply = obj;
	return 0;
}

int
ctl_call(int fd, const char *request, size_t len, json_object **ret_reply)
{
	size_t reply_len = 0;
	char *reply = NULL;
	ssize_t n;
	int r;

	if (len == 0 || len > CTL_REQUEST_MAX)
		return -EMSGSIZE;
	do
		n = send(fd, request, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		/* The daemon may refuse a caller (EACCES, EBUSY) by writing
		 * its reply and closing before reading anything: the reply
		 * is still queued for us, so go and read it. */
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -ETIMEDOUT;
		if (errno != EPIPE && errno != ECONNRESET)
			return -errno;
	} else if ((size_t)n != len) {
		return -EMSGSIZE; /* cannot happen on SOCK_SEQPACKET */
	}

	r = recv_packet(fd, &reply, &reply_len);
	if (r < 0)
		return r;
	r = parse_reply(reply, reply_len, ret_reply);
	free(reply);
	return r;
}
