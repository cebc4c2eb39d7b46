/* SPDX-License-Identifier: MIT */
/*
 * delivery.h — the one way a minispy record travels, behind a handful of
 * calls: published to every connection's ring (or the backlog when none
 * is connected), taken into the connection's window, posted to its
 * service, completed, confirmed, or handed on when its connection
 * leaves. The event callbacks (minispy.c) publish; the port callbacks
 * (port.c) attach, detach, confirm and read counters. Everything else —
 * rings and loss runs (queue.c), the handover (handover.c), the window
 * and the posts — stays inside delivery.c and its helpers.
 */
#ifndef MINISPY_DELIVERY_H
#define MINISPY_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "minispy.h"

/* Queues rec (NULL: it could not be made; its seq is lost the same way)
 * for every connection, or in the backlog when none is connected, gives
 * it its seq and posts what it can. notice: MINISPY_NOTICE_* if rec is
 * (or was to be) a loss notice, else 0, so that a run that loses it says
 * so. Never waits for a service. */
void ms_deliver_publish(struct ms_state *st, struct ms_rec *rec, uint32_t notice);

/* A new connection's rings (c->st, c->port, c->pid already set):
 * 0 or -ENOMEM; ms_deliver_conn_fini() undoes it either way. */
int ms_deliver_conn_init(struct ms_state *st, struct ms_conn *c, bool confirming);
void ms_deliver_conn_fini(struct ms_conn *c);

/* The connection joins: it gets every record from now on, and the
 * backlog if it is the only one (posted before anything newer). Returns
 * how many backlog records it took. */
uint64_t ms_deliver_attach(struct ms_state *st, struct ms_conn *c);
/* The connection left (its disconnect callback: every completion has
 * run): waits for a post in progress, closes c->port, and hands on what
 * it had not delivered. Returns a few words for the log and how many of
 * its records were sent but not confirmed. */
const char *ms_deliver_detach(struct ms_state *st, struct ms_conn *c,
			      uint64_t *ret_unconfirmed);

/* st->lock held. CONFIRM n: the service has handled its first n
 * messages (-ERANGE otherwise); opens the window. */
int ms_deliver_confirm_locked(struct ms_state *st, struct ms_conn *c, uint64_t n);
/* st->lock held. The counters; the connection's too when c is set. */
void ms_deliver_stats_locked(struct ms_state *st, struct ms_conn *c,
			     struct minispy_stats *s);

#endif
