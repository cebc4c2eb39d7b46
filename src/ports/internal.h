/* SPDX-License-Identifier: MIT */
/*
 * internal.h — the filter-side objects of libfltmgr and the rules that tie
 * them together. Nothing here is visible to filters.
 *
 * Objects and owners (flt_manager and flt_filter are defined in
 * core/core.h, the handle table and struct obj in core/handle_table.h):
 *   flt_manager   owns the handle table, the filter list and the list of
 *                 finished threads waiting to be joined.
 *   flt_filter    owns its server ports and connections (lists), and the
 *                 recursive port lock that guards the filter's own
 *                 flt_port variables (see flt_send_message()). Only the
 *                 ports walk those lists; the manager's unregister hands
 *                 them over through ports_filter_teardown() (ports.h).
 *   server_port   a listening socket and its accept thread.
 *   conn          one accepted connection: three sockets, a thread, the
 *                 requests waiting for replies.
 * server_port and conn are reference counted (struct obj first). The handle
 * table holds one reference while an object is published; every user of a
 * handle takes its own reference under the table lock, so a handle can
 * never lead to freed memory.
 *
 * Lock order (outer first); the table lock is a leaf:
 *   filter->port_lock -> filter->lock -> sp->lock -> conn->lock
 *   manager->lock is taken alone.
 */
#ifndef FLTMGR_PORTS_INTERNAL_H
#define FLTMGR_PORTS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <fltmgr/filter.h>

#include "common/efd.h"
#include "common/frame_io.h"
#include "common/wire.h"
#include "core/core.h"

/* ---- server ports (server_port.c) ---- */

struct conn_counters {
	atomic_uint_fast64_t sent;
	atomic_uint_fast64_t replied;
	atomic_uint_fast64_t timeouts;
	atomic_uint_fast64_t disconnect_failures;
	atomic_uint_fast64_t late_replies;
	atomic_uint_fast64_t service_messages;
	/* flt_post_message() (post.c); sent and cancelled posts also count
	 * in sent and disconnect_failures. */
	atomic_uint_fast64_t posted;
	atomic_uint_fast64_t post_refused;
	atomic_uint_fast64_t post_sent;
	atomic_uint_fast64_t post_cancelled;
	atomic_uint_fast64_t post_frames;
};

struct server_port {
	struct obj obj;
	flt_filter *filter;
	struct server_port *next; /* filter->ports */
	flt_port handle;
	char name[FLT_PORT_NAME_MAX + 1];
	char *path;
	int listen_fd;
	int lock_fd;
	int close_efd;
	pthread_t accept_thread;
	bool thread_started;

	void *cookie;
	flt_connect_notify on_connect;
	flt_disconnect_notify on_disconnect;
	flt_message_notify on_message;
	int max_connections;
	uid_t *uids;
	size_t n_uids;
	gid_t *gids;
	size_t n_gids;

	pthread_mutex_t lock;
	int n_slots; /* connections holding a max_connections slot */
	bool closed;
	struct conn *conns;        /* every connection not yet freed (sp_next) */
	struct conn_counters done; /* sums of connections already freed */
	atomic_uint_fast64_t accepted;
	atomic_uint_fast64_t refused;
	atomic_uint_fast64_t malformed;
};

/* A counted reference on f's client port (*ret_c) or server port
 * (*ret_sp; the other is NULL): 0, or -ENOTCONN / -EINVAL as for a send. */
struct conn;
int port_ref_either(flt_filter *f, const flt_port *port, struct conn **ret_c,
		    struct server_port **ret_sp);

/* Releases a connection's max_connections slot. */
void sp_release_slot(struct server_port *sp);
void sp_close(struct server_port *sp);

/* ---- connections (connection.c, send.c) ---- */

enum conn_state {
	CONN_HANDSHAKE = 0,
	CONN_CONNECTED,
	CONN_CLOSING,
};

/*
 * Who reads R. Somebody always does while the connection is up: a sender
 * waiting for its reply (the leader), or else the connection thread, so
 * that a frame nobody waits for (a late reply, garbage, a descriptor, the
 * end of the connection) is seen at once. The thread watches R in its
 * epoll set while it is THREAD_IDLE; a sender entering its wait loop takes
 * the role from it at once (it only disarms R in the thread's epoll set:
 * no wake-up, no hand-over), and gives it back when it leaves with no
 * other sender waiting.
 */
enum reader_role {
	READER_NONE = 0,    /* passing between holders (transient) */
	READER_SENDER,      /* a sender reads R (read_as_leader) */
	READER_THREAD,      /* the connection thread is reading R now */
	READER_THREAD_IDLE, /* the thread watches R; a sender may take it */
};

/* What the connection thread's epoll set reports (epoll_event.data.u32). */
enum conn_ev {
	CONN_EV_C = 0,
	CONN_EV_M,
	CONN_EV_R,
	CONN_EV_CLOSE,
	CONN_EV_PID,
	CONN_EV_POST
};

enum request_state {
	REQ_WAITING = 0,
	REQ_ANSWERED,
	REQ_FAILED,
};

/* A sender waiting for a reply; lives on the sender's stack. */
struct request {
	struct request *next;
	struct request *prev;
	uint64_t id;
	void *buf;
	size_t cap;
	size_t len;
	int status;
	enum request_state state;
	bool in_wait; /* the sender is in its wait loop (can take the role) */
	pthread_cond_t cond;
};

struct cancelled_id {
	uint64_t id;
	int64_t expires_ns;
};

struct conn {
	struct obj obj;
	flt_filter *filter;
	struct server_port *sp; /* reference held */
	struct conn *next;      /* filter->conns: until its thread ends */
	struct conn *prev;
	struct conn *sp_next; /* sp->conns: until freed, for exact stats */
	struct conn *sp_prev;
	bool on_sp_list;
	flt_port handle;
	bool published;
	bool kill_requested; /* guarded by filter->lock */

	int m_fd;      /* MESSAGE out, CONNECT in */
	int r_fd;      /* REPLY in, REPLY_ACK out */
	int c_fd;      /* CALL in, CALL_RESULT out */
	int close_efd; /* readable once CLOSING */
	int ep_fd;     /* the connection thread's epoll set */
	int pidfd;     /* the peer process (SO_PEERPIDFD), or -1 */
	pthread_t thread;
	struct flt_peer peer;
	void *cookie;
	bool accepted;
	/* flt_exclude_connection_process(): the engine's exclusion entry
	 * this connection holds (0: none); under lock, dropped once the
	 * connection is CLOSING, before the disconnect callback. */
	uint64_t exclusion;
	bool batches; /* the service takes MESSAGE_BATCH (set before publishing) */

	pthread_mutex_t lock;
	pthread_cond_t state_cond;
	enum conn_state state;
	const char *close_reason;
	uint64_t next_id;
	uint64_t next_seq;
	struct request *waiting;
	uint32_t n_waiting;
	enum reader_role reader;
	bool serving; /* R is in ep_fd: the thread can take the R role */
	struct cancelled_id *cancelled;
	size_t n_cancelled;
	size_t cap_cancelled;
	uint8_t *r_buf; /* owned by whoever holds the reader role */

	/* The post queue (post.c), under lock: a ring of pq_len entries
	 * from pq_head; posters append, only the thread takes off. */
	struct post_entry *pq;
	uint32_t pq_cap;
	uint32_t pq_head;
	uint32_t pq_len;
	size_t pq_bytes;
	bool post_kicked;       /* post_efd signalled, or the thread will look */
	bool post_holding;      /* the first entry is held for company */
	int post_efd;           /* readable: look at the post queue */
	bool post_room_watched; /* EPOLLOUT armed on M (thread only) */

	struct conn_counters ctr;
	atomic_uint blocked_senders;
};

/* Reads *var under f->port_lock and turns it into a counted reference on
 * f's connection: 0, or -ENOTCONN / -EINVAL as for a send. */
int conn_lookup(flt_filter *f, const flt_port *var, struct conn **ret);
/* Takes fd whatever happens: on failure (-ENOMEM, -EMFILE, ...) the peer
 * is sent a CONNECT_REPLY with that status and fd is closed. */
int conn_new(struct server_port *sp, int fd, const struct flt_peer *peer,
	     struct conn **ret);
int conn_start(struct conn *c);
/* Moves to CLOSING once: fails waiters, wakes pollers, shuts sockets,
 * unpublishes the handle. Idempotent; any reference holder may call it. */
void conn_disconnect(struct conn *c, const char *reason);
void conn_malformed(struct conn *c, const char *channel, const char *reason);
/* Takes a request off the waiting list. Caller holds c->lock. */
void conn_unlink_request_locked(struct conn *c, struct request *r);
/* Caller holds c->lock and the reader role is free (READER_NONE): hands
 * it to a sender in its wait loop, else back to the connection thread. */
void conn_pass_reader_role_locked(struct conn *c);
/* Caller holds c->lock: arms (on) or disarms R in the connection
 * thread's epoll set (one-shot; disarming never wakes the thread). */
void conn_watch_replies_locked(struct conn *c, bool on);
/* Reads the REPLYs available on R without blocking (reader role held),
 * until R is empty or `until` (if not NULL) is no longer waiting.
 * Returns 0, or -ENOTCONN when the connection went away. */
int conn_drain_replies(struct conn *c, const struct request *until);
/* Marks the calling thread as running c's connect callback (NULL: done);
 * a send to c from that thread returns -EDEADLK instead of hanging. */
void conn_set_handshaking(struct conn *c);
/* Caller holds c->lock. Waits out the handshake; returns 0 once the
 * connection is CONNECTED, else the error (-EDEADLK, -ETIMEDOUT,
 * -ENOTCONN; the last two counted). */
int conn_wait_connected_locked(struct conn *c, int64_t deadline);
/* Queues one frame on M, its payload in n_iov pieces (frame_sendv()),
 * waiting for room until the deadline: 0, -ETIMEDOUT, -ENOTCONN or
 * another negative errno. Not counted. */
/* Batch frames (send_batch.c), for flt_send_message_batch() and posts.
 * Each message takes an entry header and its data: two iovec pieces. */
#define BATCH_MAX_MESSAGES (FRAME_MAX_IOV / 2)
/* How many of the leading msgs travel in one frame (1 to a service
 * without batches, or for a message too long for an entry). */
size_t batch_frame_fits(bool batches, const struct flt_batch_message *msgs, size_t n);
/* Fills h's type, length, aux/aux2 and iov for the first k of msgs (one
 * MESSAGE when k is 1, else a MESSAGE_BATCH with its entry headers in
 * entries); a sequence of 0 takes ++*next_seq. Returns the iovec count.
 * h's id is the caller's. */
size_t batch_frame_build(const struct flt_batch_message *msgs, size_t k,
			 uint64_t *next_seq, uint8_t (*entries)[WIRE_BATCH_ENTRY_SIZE],
			 struct iovec *iov, struct wire_header *h);
int conn_queue_frame(struct conn *c, const struct wire_header *h, const struct iovec *iov,
		     size_t n_iov, int fd, int64_t deadline);
void conn_fill_stats(struct conn *c, struct flt_port_stats *s);
/* The connection thread sends what the post queue holds (post.c) until
 * it is empty or M is full (then EPOLLOUT is armed on M); returns when
 * a held message must go (CLOCK_MONOTONIC ns), or DEADLINE_NEVER. */
int64_t conn_post_run(struct conn *c);
/* At the end of the connection, before the disconnect callback: what is
 * still queued is completed with -ENOTCONN, in order. */
void conn_post_cancel_all(struct conn *c);
void counters_add(struct conn_counters *into, const struct conn_counters *from);
void counters_to_stats(const struct conn_counters *c, struct flt_port_stats *s);

static inline struct conn *
conn_of(struct obj *o)
{
	return (struct conn *)o;
}

static inline struct server_port *
sp_of(struct obj *o)
{
	return (struct server_port *)o;
}

#endif /* FLTMGR_PORTS_INTERNAL_H */
