/* SPDX-License-Identifier: MIT */
/*
 * minispy.h — the minispy filter's state, shared by minispy.c (entry
 * point, event callbacks, unload), port.c (connections and posting to
 * them) and handover.c.
 *
 * Lifetime. A struct ms_state is made by the entry point and freed by the
 * unload callback, which libfltmgr runs after every other callback of the
 * filter has returned: instance teardowns, and every connection's
 * completions and disconnect callback (flt_unregister_filter() waits for
 * every connection thread first). Every callback reaches the state
 * through libfltmgr: instance setup and the loss callback by
 * flt_filter_cookie() (the latter through flt_event_filter()), the port
 * callbacks by their cookies, the server cookie being the state itself:
 * no connect callback runs after flt_close_communication_port() returns.
 *
 * Locks, outer first: the filter's port lock (held by libfltmgr around the
 * connect callback) -> st->lock. st->lock is never held across a
 * port call: a pump takes records under it and posts them without it
 * (flt_post_message takes the port lock, which comes first).
 */
#ifndef MINISPY_H
#define MINISPY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <fltmgr/filter.h>

#include "minispy_record.h"
#include "params.h"
#include "queue.h"
#include "record.h"

/* Records a connection may hold taken off its rings and not yet
 * delivered (posted to the port, or waiting to be): about four port
 * frames' worth (records are ~100-300 bytes, a frame holds 64 KiB). */
#define MS_WINDOW 1024
/* Records one pump round posts before it looks at its rings again. */
#define MS_BATCH 256

/* One accepted connection: its rings and what is on its way. */
struct ms_conn {
	struct ms_state *st;
	struct ms_conn *next;
	struct ms_conn *prev;
	uint64_t number; /* 1, 2, ... per filter, for logs */
	/* Written in the connect callback (port lock held), read by
	 * flt_post_message() and cleared by flt_close_client_port() under
	 * that same lock. */
	flt_port port;
	pid_t pid;
	/* Under st->lock: */
	bool gone;           /* disconnecting: nothing more is posted */
	bool pumping;        /* a thread is posting for it (port.c, pump) */
	bool pump_again;     /* more came while it posted: look again */
	pthread_cond_t idle; /* pumping ended (the disconnect waits for it) */
	bool warned;
	struct ms_ring head; /* the backlog, if this connection took it */
	struct ms_ring q;    /* records since it connected */
	/* Taken off the rings, oldest first (a ring of MS_WINDOW from
	 * in_head): the leading n_posted are posted to the port and wait
	 * for their completion; the rest wait to be posted. */
	struct ms_rec *inflight[MS_WINDOW];
	unsigned in_head;
	unsigned n_inflight;
	unsigned n_posted;
	struct ms_late late;   /* DEPARTED losses for it, sent first */
	bool confirming;       /* its service confirms (connect context) */
	struct ms_ring unconf; /* confirming: sent, not confirmed yet */
	uint64_t first_seq;    /* the first record made after it came */
	uint64_t queued;
	uint64_t sent;
	uint64_t dropped;
	uint64_t loss_sent;
	uint64_t msgs_sent; /* every message, loss records included */
	uint64_t msgs_confirmed;
	uint64_t confirmed; /* records (not loss records) confirmed */
};

struct ms_counters {
	uint64_t records;
	uint64_t queued;
	uint64_t sent;
	uint64_t dropped;
	uint64_t loss_records_sent;
	uint64_t discarded;
	uint64_t backlog_queued;
	uint64_t backlog_dropped;
	uint64_t backlog_delivered;
	uint64_t returned;
	uint64_t kernel_overflows;
	uint64_t connections;
	uint64_t confirmed;
	uint64_t unconfirmed;
	uint64_t departed;
	uint64_t bad_calls;
	uint64_t unknown_paths;
	uint64_t engine_losses;
};

struct ms_state {
	flt_filter *filter; /* set once registered */
	char name[FLT_PORT_NAME_MAX + 1];
	struct ms_settings set; /* read-only after the entry point */
	flt_port server;

	pthread_mutex_t lock;
	uint64_t seq; /* the last record number given */
	struct ms_conn *conns;
	unsigned n_conns;
	uint64_t n_accepted;
	struct ms_ring backlog;        /* used while n_conns == 0, else empty */
	bool backlog_warned;           /* since the backlog was last taken over */
	struct flt_log_limit warnings; /* drop warnings (port.c) */
	struct ms_counters ctr;
};

/* ---- minispy.c ---- */

/* The entry point fltmgrd calls (FLT_FILTER_ENTRY_SYMBOL). */
int fltmgr_filter_entry(flt_manager *manager, const struct flt_filter_config *config,
			flt_filter **ret_filter);

/* ---- handover.c ---- */

/* The record i places after the oldest that c took off its rings. */
static inline struct ms_rec **
ms_inflight_at(struct ms_conn *c, unsigned i)
{
	return &c->inflight[(c->in_head + i) % MS_WINDOW];
}

/* ---- port.c ---- */

int ms_on_connect(flt_port client_port, void *server_cookie, const void *context,
		  size_t context_len, const struct flt_peer *peer, void **ret_cookie);
void ms_on_disconnect(void *cookie);
int ms_on_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
		  size_t *ret_out_len);
/* flt_registration.counters (cookie: the state). */
size_t ms_counters(void *cookie, struct flt_counter *out, size_t cap);

#endif
