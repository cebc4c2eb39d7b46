/* SPDX-License-Identifier: MIT */
/*
 * frame_io.h — send and receive one port frame (one SOCK_SEQPACKET record)
 * with optional SCM_RIGHTS descriptors. No protocol knowledge beyond the
 * header size: validation is wire.c's job.
 */
#ifndef FLTMGR_FRAME_IO_H
#define FLTMGR_FRAME_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "wire.h"

#define FRAME_MAX_FDS 2

/*
 * Sends header + payload as one record, with n_fds descriptors (not
 * consumed). flags are added to MSG_NOSIGNAL (e.g. MSG_DONTWAIT).
 * Returns 0 or a negative errno (-EAGAIN, -EPIPE, ...).
 */
int frame_send(int sock, const struct wire_header *h, const void *payload, const int *fds,
	       size_t n_fds, int flags);

/* As frame_send(), with the payload gathered from n_iov pieces (at most
 * FRAME_MAX_IOV) whose lengths add up to h->length. */
#define FRAME_MAX_IOV 1023
int frame_sendv(int sock, const struct wire_header *h, const struct iovec *payload,
		size_t n_iov, const int *fds, size_t n_fds, int flags);

struct frame_rx {
	size_t size;   /* bytes of the record that fit into the iovecs */
	int truncated; /* the record was larger than the iovecs (MSG_TRUNC) */
	int fds[FRAME_MAX_FDS];
	size_t n_fds;    /* descriptors received, now owned by the caller */
	int fds_dropped; /* more descriptors than FRAME_MAX_FDS were sent; all
			    were closed and n_fds is 0 */
};

/*
 * Receives one record into iov (MSG_CMSG_CLOEXEC always). Returns 1 on a
 * record, 0 on end of stream, or a negative errno. On any return the
 * caller owns rx->fds[0..n_fds).
 */
int frame_recv(int sock, const struct iovec *iov, size_t iovcnt, int flags,
	       struct frame_rx *rx);

/* Closes every descriptor in rx and clears the count. */
void frame_rx_close_fds(struct frame_rx *rx);

#endif /* FLTMGR_FRAME_IO_H */
