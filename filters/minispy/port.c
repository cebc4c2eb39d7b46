/* SPDX-License-Identifier: MIT */
/*
 * port.c — minispy's server port: the connect callback (the connect
 * context, the service's exclusion, attaching it to delivery), the
 * disconnect callback (detaching it), the calls a service makes (stats,
 * CONFIRM) and the counters fltmc shows. How records reach a service is
 * delivery.c's (delivery.h).
 *
 * A connection object belongs to its connection from the connect
 * callback to the end of its disconnect callback, which frees it;
 * libfltmgr runs no callback for that connection afterwards, so nothing
 * touches it later (the seed bug's stale client port cannot happen: see
 * delivery.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"

/* ---- connect and disconnect ---- */

static void
conn_free(struct ms_conn *c)
{
	ms_deliver_conn_fini(c);
	free(c);
}

/* The connect context: none, or { MAGIC, flags }. */
static int
parse_context(const void *context, size_t len, bool *ret_confirming)
{
	uint32_t magic, flags;

	*ret_confirming = false;
	if (!len)
		return 0;
	if (len != 8)
		return -EINVAL;
	memcpy(&magic, context, 4);
	memcpy(&flags, (const char *)context + 4, 4);
	if (magic != MINISPY_RECORD_MAGIC || (flags & ~MINISPY_CONNECT_CONFIRM))
		return -EINVAL;
	*ret_confirming = flags & MINISPY_CONNECT_CONFIRM;
	return 0;
}

int
ms_on_connect(flt_port client_port, void *server_cookie, const void *context,
	      size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	struct ms_state *st = server_cookie;
	uint64_t from_backlog;
	bool confirming;
	struct ms_conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->st = st;
	c->port = client_port;
	c->pid = peer->pid;
	r = parse_context(context, context_len, &confirming);
	/* Made whatever the context said, so that conn_free() undoes it. */
	if (ms_deliver_conn_init(st, c, r == 0 && confirming) < 0 && r == 0)
		r = -ENOMEM;
	/* Its own file accesses are not reported while it is connected
	 * (libfltmgr undoes it when the connection ends, refused or not). A
	 * peer from another pid namespace has no pid to name here. */
	if (r == 0 && st->set.exclude_services && c->pid > 0)
		r = flt_exclude_connection_process(st->filter, &client_port);
	if (r < 0)
		goto fail;
	from_backlog = ms_deliver_attach(st, c);
	flt_filter_log(st->filter, FLT_LOG_INFO,
		       "service pid %d connected (connection %llu%s), %llu backlog "
		       "records for it",
		       (int)peer->pid, (unsigned long long)c->number,
		       c->confirming ? ", confirming" : "",
		       (unsigned long long)from_backlog);
	*ret_cookie = c; /* c belongs to the connection until its disconnect */
	return 0;

fail:
	flt_filter_log(st->filter, FLT_LOG_WARNING, "refusing service pid %d: %s",
		       (int)peer->pid, strerror(-r));
	conn_free(c);
	return r;
}

void
ms_on_disconnect(void *cookie)
{
	struct ms_conn *c = cookie;
	struct ms_state *st = c->st;
	uint64_t unconfirmed;
	const char *fate;

	fate = ms_deliver_detach(st, c, &unconfirmed);
	flt_filter_log(st->filter, FLT_LOG_INFO,
		       "service pid %d disconnected (connection %llu): %llu sent (%llu "
		       "of them unconfirmed), %llu dropped, %llu loss records; "
		       "undelivered records %s",
		       (int)c->pid, (unsigned long long)c->number,
		       (unsigned long long)c->sent, (unsigned long long)unconfirmed,
		       (unsigned long long)c->dropped, (unsigned long long)c->loss_sent,
		       fate);
	conn_free(c);
}

/* ---- the stats call ---- */

int
ms_on_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
	      size_t *ret_out_len)
{
	struct ms_conn *c = cookie;
	struct ms_state *st = c->st;
	struct minispy_stats s = { .size = sizeof(s) };
	uint32_t magic = 0, cmd = 0;
	uint64_t n = 0;
	size_t len;
	int r = -EINVAL;

	if (in_len >= 8) {
		memcpy(&magic, in, 4);
		memcpy(&cmd, (const char *)in + 4, 4);
	}
	pthread_mutex_lock(&st->lock);
	if (in_len < 8 || magic != MINISPY_RECORD_MAGIC) {
		r = -EINVAL;
	} else if (cmd == MINISPY_CMD_STATS) {
		r = in_len == 8 ? 0 : -EINVAL;
		if (r == 0)
			ms_deliver_stats_locked(st, c, &s);
	} else if (cmd == MINISPY_CMD_CONFIRM) {
		if (in_len == 16) {
			memcpy(&n, (const char *)in + 8, 8);
			r = ms_deliver_confirm_locked(st, c, n);
		}
	} else {
		r = -EOPNOTSUPP;
	}
	if (r < 0)
		st->ctr.bad_calls++;
	pthread_mutex_unlock(&st->lock);
	if (r < 0 || cmd != MINISPY_CMD_STATS) {
		*ret_out_len = 0;
		return r;
	}
	len = out_cap < sizeof(s) ? out_cap : sizeof(s);
	s.size = len;
	memcpy(out, &s, len);
	*ret_out_len = len;
	return 0;
}

/* The flt_registration.counters hook: what `fltmc stats` shows. */
size_t
ms_counters(void *cookie, struct flt_counter *out, size_t cap)
{
	struct ms_state *st = cookie;
	struct minispy_stats s = { 0 };
	size_t n = 0;

	pthread_mutex_lock(&st->lock);
	ms_deliver_stats_locked(st, NULL, &s);
	pthread_mutex_unlock(&st->lock);
#define PUT(f)                                                                     \
	do {                                                                       \
		if (n < cap)                                                       \
			out[n] = (struct flt_counter){ .name = #f, .value = s.f }; \
		n++;                                                               \
	} while (0)
	PUT(records);
	PUT(queued);
	PUT(sent);
	PUT(dropped);
	PUT(loss_records_sent);
	PUT(discarded);
	PUT(backlog_queued);
	PUT(backlog_dropped);
	PUT(backlog_delivered);
	PUT(returned);
	PUT(kernel_overflows);
	PUT(connections);
	PUT(connections_now);
	PUT(backlog_now);
	PUT(confirmed);
	PUT(unconfirmed);
	PUT(departed);
	PUT(bad_calls);
	PUT(unknown_paths);
	PUT(engine_losses);
#undef PUT
	return n;
}
