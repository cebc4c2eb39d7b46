/* SPDX-License-Identifier: MIT */
/*
 * frame_io.c — sendmsg/recvmsg wrappers for port frames. Every received
 * descriptor is close-on-exec and owned by exactly one party: the caller,
 * or (when something is wrong with the control data) nobody — it is closed
 * here before returning.
 */
#include "frame_io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* iov[0] is the encoded header; sends iov[0..n) as one record. */
static int
send_record(int sock, struct iovec *iov, size_t n, const int *fds, size_t n_fds,
	    int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * FRAME_MAX_FDS)];
		struct cmsghdr align;
	} control;
	struct msghdr mh;
	ssize_t r;

	if (n_fds > FRAME_MAX_FDS)
		return -EINVAL;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = n;
	if (n_fds) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	/* SOCK_SEQPACKET sends whole records or nothing. */
	return 0;
}

int
frame_send(int sock, const struct wire_header *h, const void *payload, const int *fds,
	   size_t n_fds, int flags)
{
	uint8_t hdr[WIRE_HEADER_SIZE];
	struct iovec iov[2];

	wire_encode_header(hdr, h);
	iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
	iov[1] = (struct iovec){ .iov_base = (void *)payload, .iov_len = h->length };
	return send_record(sock, iov, h->length ? 2 : 1, fds, n_fds, flags);
}

int
frame_sendv(int sock, const struct wire_header *h, const struct iovec *payload,
	    size_t n_iov, const int *fds, size_t n_fds, int flags)
{
	uint8_t hdr[WIRE_HEADER_SIZE];
	struct iovec iov[FRAME_MAX_IOV + 1];

	if (n_iov <= 1) /* one piece: no need for the large array */
		return frame_send(sock, h, n_iov ? payload[0].iov_base : NULL, fds, n_fds,
				  flags);
	if (n_iov > FRAME_MAX_IOV)
		return -EINVAL;
	wire_encode_header(hdr, h);
	iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
	memcpy(iov + 1, payload, n_iov * sizeof(*iov));
	return send_record(sock, iov, 1 + n_iov, fds, n_fds, flags);
}

void
frame_rx_close_fds(struct frame_rx *rx)
{
	for (size_t i = 0; i < rx->n_fds; i++)
		close(rx->fds[i]);
	rx->n_fds = 0;
}

int
frame_recv(int sock, const struct iovec *iov, size_t iovcnt, int flags,
	   struct frame_rx *rx)
{
	union {
		/* room for more than we accept, so excess is seen, not lost */
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} control;
	struct msghdr mh;
	ssize_t n;

	memset(rx, 0, sizeof(*rx));
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = (struct iovec *)iov;
	mh.msg_iovlen = iovcnt;
	mh.msg_control = control.buf;
	mh.msg_controllen = sizeof(control.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t count;
		int tmp[16];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (count > 16)
			count = 16;
		memcpy(tmp, CMSG_DATA(cm), count * sizeof(int));
		for (size_t i = 0; i < count; i++) {
			if (rx->n_fds < FRAME_MAX_FDS && !rx->fds_dropped)
				rx->fds[rx->n_fds++] = tmp[i];
			else {
				close(tmp[i]);
				rx->fds_dropped = 1;
			}
		}
	}
	if (rx->fds_dropped || (mh.msg_flags & MSG_CTRUNC)) {
		rx->fds_dropped = 1;
		frame_rx_close_fds(rx);
	}
	rx->size = (size_t)n;
	rx->truncated = (mh.msg_flags & MSG_TRUNC) != 0;
	return n == 0 && !rx->truncated ? 0 : 1;
}
