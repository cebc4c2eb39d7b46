/* SPDX-License-Identifier: MIT */
/*
 * ctl_client.h — fltmc's side of the control socket (docs/control.md):
 * connect to <runtime_dir>/control, send one request packet, read and
 * parse the one reply packet. Prints nothing and never exits; errors are
 * negative errno values that fltmc.c turns into messages and exit codes.
 */
#ifndef FLTMGR_CTL_CLIENT_H
#define FLTMGR_CTL_CLIENT_H

#include <stddef.h>

#include <json-c/json.h>

/* A request is one packet of at most this many bytes (docs/control.md). */
#define CTL_REQUEST_MAX 4096
/* Replies bigger than this are refused as a protocol error rather than
 * allocated: no real reply comes near it (the daemon's socket buffer is far
 * smaller), so one this big means something else is on the socket. */
#define CTL_REPLY_MAX (16u << 20)
/* How long to wait to be accepted, to send, and for the reply: `unload`
 * may wait for a filter's deadline before it answers. */
#define CTL_TIMEOUT_MS 60000

/* Connects a SOCK_SEQPACKET socket to path, with CTL_TIMEOUT_MS send and
 * receive timeouts. On success *ret_fd is a CLOEXEC descriptor the caller
 * owns and closes. Errors: -ENAMETOOLONG (path does not fit a sockaddr_un),
 * -ETIMEDOUT (the listener's backlog stayed full), or connect(2)'s error:
 * -ENOENT/-ENOTDIR (no socket), -ECONNREFUSED (nobody listening),
 * -EACCES/-EPERM (the caller may not use it), ... */
int ctl_connect(const char *path, int *ret_fd);

/* Sends request (len bytes, 1..CTL_REQUEST_MAX) as one packet on fd and
 * reads the one reply. On success *ret_reply is a JSON object with a
 * boolean "ok" member; the caller owns it (json_object_put). Errors:
 * -EMSGSIZE  bad request length, or a reply over CTL_REPLY_MAX / truncated
 * -ETIMEDOUT no reply within CTL_TIMEOUT_MS
 * -ENODATA   the daemon closed the connection without replying
 * -EPROTO    the reply is not one JSON object
 * -EBADMSG   the reply object has no boolean "ok"
 * -ENOMEM, or another send/recv error. fd stays open either way. */
int ctl_call(int fd, const char *request, size_t len, json_object **ret_reply);

#endif
