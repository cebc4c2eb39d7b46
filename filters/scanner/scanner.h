/* SPDX-License-Identifier: MIT */
/*
 * scanner.h — the scanner filter's state, shared by scanner.c (entry
 * point, event callbacks, unload), request.c (the queue of pended
 * requests and their completion) and conn.c (services and their sender
 * threads).
 *
 * The request path. A pre callback (on an engine reader thread) answers
 * from the cache, answers the default when no service is connected, or
 * queues a request and returns FLT_PREOP_PENDING. Each connected service
 * has `window` sender threads of its own; a sender takes the oldest
 * request, sends it with flt_send_message_ex() (the event fd attached,
 * the timeout being what is left of the deadline) and completes the
 * pended event with the verdict.
 *
 * The inline path. When nothing is queued, no other request is being
 * sent inline, a service has nothing outstanding and the file is small
 * (param.inline_max_size), the pre callback sends the request itself and
 * returns the verdict without pending: no hand-off to a sender, no
 * completion from another thread. It waits at most param.inline_ms
 * (below the engine's reader takeover); a request not answered by then
 * is queued for the senders (sent again) and pended, as if it had never
 * been inline, and no request is sent inline for the next
 * SC_INLINE_PAUSE_NS, so that a slow service costs one such wait a second
 * at most. The same pause follows SC_INLINE_SLOW_RUN inline exchanges in
 * a row that took over SC_INLINE_SLOW_NS. docs/scanner.md section 3
 * explains both.
 *
 * Lifetime. The state is made by the entry point and freed by the unload
 * callback, which libfltmgr runs after every other callback of the filter
 * (pre, post, connect, disconnect, message) has returned, after every
 * disconnect callback, and so after every sender thread has been joined.
 * A connection (struct sc_conn) belongs to its connection from the connect
 * callback to the end of its disconnect callback, which joins its senders.
 * A request (struct sc_req) belongs to the queue while queued and to one
 * sender once taken; whoever completes it frees it, exactly once. An
 * inline request belongs to its pre callback, which frees it after
 * reading the answer, unless it was queued (then it is the queue's). A
 * connection used inline is kept alive by c->n_inline: the disconnect
 * callback waits for it to drop to 0 (the send fails at once on a
 * connection that is down).
 *
 * Locks, outer first: the filter's port lock (held by libfltmgr around the
 * connect callback) -> st->lock -> the cache's lock. st->lock is never held
 * across a send, a completion or a log call.
 */
#ifndef SCANNER_H
#define SCANNER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdint.h>

#include <fltmgr/filter.h>

#include "cache.h"
#include "params.h"
#include <fltmgr/scanner.h>

#define SC_INLINE_PAUSE_NS 1000000000LL
/* Inline exchanges that all take longer than this mean scans that are
 * not cheap (large rule sets): the hand-off that inline saves is then
 * negligible, while scanning on the reader serialises concurrent opens
 * that the senders would scan in parallel. Pause the inline path. A run
 * of them, not an average: one exchange that waited for a CPU on a busy
 * machine says nothing about the scans. */
#define SC_INLINE_SLOW_NS  1000000LL
#define SC_INLINE_SLOW_RUN 8
/* A file that changed while it was scanned is scanned again, at most this
 * many times; still changing after that, it is denied (docs/scanner.md
 * section 4, "A write during a scan"). */
#define SC_MAX_RESCANS 3
/* Default verdicts and denials of changing files are logged at most once
 * a second per cause, with the number suppressed since. */
#define SC_NOTE_INTERVAL_MS 1000

struct sc_req {
	struct sc_req *next;
	struct flt_callback_data *data; /* pended; valid until completed */
	struct sc_key key;              /* the file as it was when asked */
	struct sc_ticket ticket;
	int64_t deadline_ns; /* flt_monotonic_ns(): answer by then */
	uint32_t op;         /* 0 open, 1 exec */
	unsigned rescans;    /* scanned again because the file changed */
	bool always_scan;    /* an exec others than root can write: no cache */
	bool writable;       /* others than root can write the file */
	/* Sent from the pre callback: "completing" stores the answer here
	 * for the callback to return, and frees nothing. */
	bool on_reader;
	enum flt_preop_status status;
	int error;
	int64_t rtt_ns; /* inline and answered: send to reply */
};

struct sc_conn {
	struct sc_state *st;
	struct sc_conn *next, *prev;
	/* Written in the connect callback (port lock held), read by
	 * flt_send_message() and cleared by flt_close_client_port() under
	 * that lock. */
	flt_port port;
	pid_t pid;
	uint64_t number;
	unsigned window; /* sender threads; 0: a monitor connection */
	pthread_t *senders;
	unsigned n_senders;
	/* Under st->lock: */
	bool stop;         /* the disconnect callback runs: senders leave */
	bool dead;         /* known to be down: no longer counted in n_live */
	unsigned busy;     /* requests being sent on it (senders and inline) */
	unsigned n_inline; /* pre callbacks sending on it now */
};

struct sc_state {
	flt_manager *mgr;
	flt_filter *filter;
	char name[FLT_PORT_NAME_MAX + 1];
	struct sc_settings set; /* read-only after the entry point */
	int deadline_ms;
	int default_verdict; /* 0 or -EPERM */
	int64_t margin_ns;   /* senders answer this long before the engine */
	flt_port server;
	struct sc_cache cache;

	pthread_mutex_t lock;
	pthread_cond_t work;        /* senders wait on it for requests or stop */
	pthread_cond_t inline_done; /* a pre callback's inline send ended */
	struct sc_req *head, *tail;
	struct sc_conn *conns;
	unsigned n_live;             /* connections with senders, not known dead */
	unsigned in_flight;          /* requests being sent now (senders and inline) */
	bool inline_busy;            /* a pre callback is sending inline */
	int64_t inline_paused_until; /* flt_monotonic_ns(): after a timeout */
	unsigned inline_slow_run;    /* inline exchanges in a row over SLOW_NS */
	uint64_t n_accepted;
	bool closing;
	/* Logged defaults and denials, by the cause's counter (request.c). */
	struct flt_log_limit limit[SCANNER_CTR_COUNT_];

	_Atomic uint64_t ctr[SCANNER_CTR_COUNT_];
};

static inline void
sc_count(struct sc_state *st, enum scanner_counter c)
{
	atomic_fetch_add_explicit(&st->ctr[c], 1, memory_order_relaxed);
}

/* ---- scanner.c ---- */

int fltmgr_filter_entry(flt_manager *manager, const struct flt_filter_config *config,
			flt_filter **ret_filter);

/* Only root can write the file: owned by uid 0, no write bit for group or
 * others (with POSIX ACLs the group bits are the mask, so a named entry
 * that grants write sets them). */
static inline bool
sc_root_only_writable(const struct stat *sb)
{
	return sb->st_uid == 0 && !(sb->st_mode & (S_IWGRP | S_IWOTH));
}

/* ---- request.c ---- */

/* Queues r for the senders; false (r not taken) when no service is
 * connected or the filter is closing. */
bool sc_enqueue(struct sc_state *st, struct sc_req *r);
/* Sends r to the service on c and completes it, or puts it back in the
 * queue (for another service, or, inline, for the senders): false then,
 * and r is no longer the caller's. Called with no lock held, by c's
 * sender or (r->on_reader) by a pre callback that took c with
 * sc_inline_take(). */
bool sc_serve(struct sc_conn *c, struct sc_req *r);
/* For the pre callback: a connection to send r on inline, or NULL (send
 * through the queue). Counts the send as in flight. */
struct sc_conn *sc_inline_take(struct sc_state *st, uint64_t size);
/* The inline send on c is over: c may go. rtt_ns: how long the answer
 * took (0: there was none). */
void sc_inline_release(struct sc_conn *c, int64_t rtt_ns);
/* st->lock held: one more request in flight (in_flight_max). */
void sc_in_flight_enter_locked(struct sc_state *st);
/*
 * The default verdict for an event no verdict could be had for: counted
 * under why (and in default_allows if it allows), never cacheable, and
 * logged (at most once a second per cause) with the file, the process and
 * `reason` (NULL: the cause's usual words); fail-open at warning level.
 * Returns the status to give the event, the errno in *ret_error. Called
 * before the event is completed (it reads data).
 */
enum flt_preop_status sc_default(struct sc_state *st, struct flt_callback_data *d,
				 enum scanner_counter why, const char *reason,
				 int *ret_error);
/* Completes r with sc_default(); frees r. If r's file changed during an
 * earlier scan of it, the verdict is a denial whatever the default: a file
 * is never allowed on a scan of other content. */
void sc_complete_default(struct sc_state *st, struct sc_req *r, enum scanner_counter ctr);
/* With no live service left, completes every queued request with the
 * default verdict at once (counted as disconnect defaults). */
void sc_drain_if_no_service(struct sc_state *st);
/* st->lock held: marks c down (once). */
void sc_conn_dead_locked(struct sc_conn *c);

/* ---- conn.c ---- */

int sc_on_connect(flt_port client_port, void *server_cookie, const void *context,
		  size_t context_len, const struct flt_peer *peer, void **ret_cookie);
void sc_on_disconnect(void *cookie);
int sc_on_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
		  size_t *ret_out_len);
/* Copies the counters (for the stats call and fltmc). */
void sc_counters_snapshot(struct sc_state *st, uint64_t v[SCANNER_CTR_COUNT_]);
/* flt_registration.counters: the same, by name, for `fltmc stats`. */
size_t sc_counters_hook(void *cookie, struct flt_counter *out, size_t cap);

#endif
