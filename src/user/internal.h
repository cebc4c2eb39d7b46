/* SPDX-License-Identifier: MIT */
/*
 * internal.h — the service-side port object shared by port.c (connect,
 * get, close), reply.c (replies and their acks) and call.c (calls into the
 * filter). See docs/ports.md for the three sockets.
 *
 * Lifetime: every public call brackets itself with port_enter/port_leave;
 * filter_close_port() refuses new entries, wakes everyone (eventfd +
 * shutdown + broadcast) and frees only after the last caller has left.
 */
#ifndef FLTMGR_USER_INTERNAL_H
#define FLTMGR_USER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <fltmgr/user.h>

#include "common/wire.h"

struct ack_wait {
	struct ack_wait *next;
	uint64_t id;
	int status;
	bool done;
	bool in_wait;
	pthread_cond_t cond;
};

struct pending_reply {
	uint64_t id;
	uint32_t cap;
};

struct filter_port {
	int m_fd;      /* MESSAGE in (pollable) */
	int r_fd;      /* REPLY out, REPLY_ACK in */
	int c_fd;      /* CALL out, CALL_RESULT in */
	int close_efd; /* readable once filter_close_port() started */

	pthread_mutex_t lock;
	pthread_cond_t idle;
	int users;
	bool closing;
	int dead; /* 0, or -ENOTCONN / -EPROTO once the connection failed */

	/* delivered messages that still want a reply: id, sender's capacity */
	struct pending_reply *ids;
	size_t n_ids;
	size_t cap_ids;

	/* reply acks: leader/follower on r_fd */
	bool ack_reader;
	struct ack_wait *ack_waiters;

	/* FILTER_CONNECT_BATCHES (batch.c): the record being handed out */
	bool batches;
	uint8_t *rx_buf; /* WIRE_MAX_FRAME bytes */
	struct wire_header rx_h;
	uint32_t rx_next;  /* messages of it taken */
	uint32_t rx_count; /* messages in it; rx_next == rx_count: none held */
	size_t rx_off;     /* offset of message rx_next in a batch's payload */
	int rx_fd;         /* a MESSAGE's descriptor not yet taken, or -1 */
	bool rx_reading;   /* a getter reads M for everyone */
	pthread_cond_t rx_cond;

	/* calls: one at a time */
	pthread_mutex_t call_lock;
	uint64_t next_call;
	uint8_t *call_buf;
};

int port_enter(filter_port *p);
void port_leave(filter_port *p);
/* Caller holds p->lock. */
int port_error_locked(filter_port *p);
/* Marks the port failed (-ENOTCONN / -EPROTO), wakes waiters, and shuts
 * the sockets down so the filter side sees the disconnect at once. */
void port_fail(filter_port *p, int error);
/* Caller holds p->lock. */
int ids_add_locked(filter_port *p, uint64_t id, uint32_t cap);
/* Takes id off the list; *ret_cap (if not NULL) is the sender's capacity. */
bool ids_take_locked(filter_port *p, uint64_t id, uint32_t *ret_cap);
/* Waits (poll) until fd is ready for events or the port is closing;
 * returns 0, -ECANCELED or -ETIMEDOUT. timeout_ms -1: forever. */
int port_wait_fd(filter_port *p, int fd, short events, int timeout_ms);
/* Sends a frame, waiting for room as long as needed. */
int port_send_frame(filter_port *p, int fd, const void *hdr_struct, const void *payload);
/* Fire-and-forget REPLY (used when the library answers for the caller). */
void reply_send_nowait(filter_port *p, uint64_t id, int status);
void acks_wake_all_locked(filter_port *p);
/* filter_get_messages() on a port with batches: waits for one message
 * (as filter_get_message()), then takes what else the held record has,
 * up to max and as far as buf lasts. Returns the count or an error. */
int batch_get(filter_port *p, struct filter_message *msgs, size_t max, uint8_t *buf,
	      size_t size, int timeout_ms);
/* Caller holds p->lock: wakes getters waiting for the reader. */
void batch_wake_all_locked(filter_port *p);

#endif
