/* SPDX-License-Identifier: MIT */
/*
 * <fltmgr/user.h> — the service-side API (library libfltuser).
 *
 * The counterpart of Windows' FilterXxx functions (fltlib): connect to a
 * filter's named communication port, take messages, reply, and call the
 * filter. Needs no privilege beyond the port's access rules and links
 * nothing of the engine.
 *
 * Every function returns a non-negative value on success and a negative
 * errno value on failure. All functions except filter_close_port() may be
 * called from many threads at once on the same port.
 */
#ifndef FLTMGR_USER_H
#define FLTMGR_USER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct filter_port filter_port;

struct filter_message_header {
	uint64_t message_id;
	uint64_t sequence;
	uint32_t reply_length; /* 0: no reply wanted; else the sender's capacity */
	uint32_t flags;
	int fd; /* -1 or a descriptor the caller now owns */
};

/* filter_connect_communication_port() flags. */
#define FILTER_CONNECT_BATCHES 0x1u

/*
 * flags: 0, or FILTER_CONNECT_BATCHES: the filter may send several
 * messages that want no reply in one record (flt_send_message_batch());
 * the library hands them out one at a time through filter_get_message()
 * or many at a time through filter_get_messages(). Messages of a record
 * the library has already read do not make filter_port_fd() readable: a
 * service that polls it reads with timeout 0 until -ETIMEDOUT before it
 * polls again. port_name is a port name ([A-Za-z0-9._-]{1,64}) looked up in
 * $FLTMGR_RUNTIME_DIR (default /run/fltmgr), or a path containing '/'.
 * Errors: -ENOENT / -ECONNREFUSED no such port or the daemon is not running;
 * -EACCES refused by file mode or the port's uid/gid list; -EUSERS the port
 * is at its connection limit; -ETIMEDOUT no answer within 10 s; -EMSGSIZE
 * context longer than FLT_PORT_MAX_CONTEXT (4096); -EINVAL bad name or
 * flags; -ENAMETOOLONG; -ECONNRESET the filter side hung up; -EPROTO a
 * malformed answer; -ECONNABORTED the filter closed the connection inside
 * its connect callback; any negative errno the connect callback returned.
 */
int filter_connect_communication_port(const char *port_name, unsigned flags,
				      const void *context, size_t context_len,
				      filter_port **ret_port);

/*
 * Waits for the next message (timeout_ms: -1 forever, 0 poll). Each message
 * goes to exactly one caller. Returns the payload length, or:
 *   -ETIMEDOUT   nothing arrived in time
 *   -ENOTCONN    the filter side closed the connection
 *   -ECANCELED   filter_close_port() was called on this port
 *   -EMSGSIZE    payload larger than buf_size; *ret_header is filled, the
 *                message is consumed, and if it wanted a reply the library
 *                has answered the filter with -EMSGSIZE itself
 *   -EPROTO      the filter sent a malformed frame; the port is shut down
 *                and every later call fails
 */
int filter_get_message(filter_port *port, struct filter_message_header *ret_header,
		       void *buf, size_t buf_size, int timeout_ms);

/* One message taken by filter_get_messages(). */
struct filter_message {
	struct filter_message_header header;
	void *data; /* its bytes, in the caller's buffer */
	size_t length;
};

/*
 * Waits for a message as filter_get_message() does (same timeout and
 * errors; for -EMSGSIZE msgs[0].header is filled), then takes without
 * waiting the further messages the library already holds from the same
 * record, up to max_msgs and while each fits in what is left of buf (one
 * that does not fit stays for the next call). Returns how many (>= 1);
 * msgs[i].data points into buf. On a port connected without
 * FILTER_CONNECT_BATCHES it takes one message.
 */
int filter_get_messages(filter_port *port, struct filter_message *msgs, size_t max_msgs,
			void *buf, size_t buf_size, int timeout_ms);

/*
 * Answers message_id. status is 0 or a negative errno the sender receives
 * as its result. Returns 0 when the waiting sender took the reply;
 * -ENOENT when nobody waits for it any more (it timed out, or the id is
 * unknown, or no reply was wanted); -EMSGSIZE when reply_len exceeds the
 * sender's capacity (the sender keeps waiting); -ENOTCONN when disconnected.
 */
int filter_reply_message(filter_port *port, uint64_t message_id, int status,
			 const void *reply, size_t reply_len);

/* filter_reply_message_ex() flags. */
#define FILTER_REPLY_NO_ACK 0x1u

/*
 * filter_reply_message() with flags. FILTER_REPLY_NO_ACK: returns as soon
 * as the reply is sent, without waiting for the filter's answer (one
 * wake-up less per reply, and the filter side does not send one). The
 * cost: whether the sender still waited is not known. Returns 0 once the
 * reply is on its way, even if its sender has timed out meanwhile (the
 * filter then drops it and counts it in late_replies); -ENOENT for an id
 * the library never delivered with a reply wanted or has already
 * answered; -EMSGSIZE, checked here, when reply_len exceeds the sender's
 * capacity (the sender keeps waiting and the id stays answerable);
 * -ENOTCONN. Without the flag, exactly filter_reply_message().
 */
int filter_reply_message_ex(filter_port *port, uint64_t message_id, int status,
			    const void *reply, size_t reply_len, unsigned flags);

/*
 * Calls the filter's message callback with in and returns its output
 * (at most out_cap bytes, length in *ret_out_len). Works while other
 * threads wait in filter_get_message(). Returns 0 or the callback's
 * negative result, -EOPNOTSUPP if the port has no message callback,
 * -ENOTCONN, -ECANCELED.
 */
int filter_send_message(filter_port *port, const void *in, size_t in_len, void *out,
			size_t out_cap, size_t *ret_out_len);

/* Readable (POLLIN) when a message waits; POLLHUP when disconnected. */
int filter_port_fd(filter_port *port);

/*
 * Closes the connection. Threads blocked in this port's functions return
 * promptly (-ECANCELED) and this call waits for them to leave before it
 * frees the port. No thread may start a new call on it afterwards. NULL is
 * a no-op.
 */
void filter_close_port(filter_port *port);

#ifdef __cplusplus
}
#endif

#endif /* FLTMGR_USER_H */
