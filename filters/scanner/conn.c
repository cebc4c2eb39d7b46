/* SPDX-License-Identifier: MIT */
/*
 * conn.c — the scanner filter's services: the connect and disconnect
 * callbacks of its server port, the sender threads of each connection,
 * and the calls a service makes
 * (stats, flush after a rule reload).
 *
 * Each connection gets `window` sender threads (the service's threads x
 * outstanding requests, from its connect context, at most
 * param.max_window). A sender takes one request at a time from the
 * shared queue and waits for its verdict, so a connection never has more
 * than `window` requests outstanding, and a stopped service holds up only
 * its own senders' requests (each until its deadline).
 *
 * The only copy of a client port is c->port: read by c's senders through
 * flt_send_message(&c->port), cleared by flt_close_client_port() in the
 * disconnect callback after those senders have been joined. A connection
 * object is freed at the end of its disconnect callback; libfltmgr runs
 * no callback for it afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner.h"
#define PROF_TAG "filter"
#include "prof.h"

/* ---- senders ---- */

static void *
sender_main(void *arg)
{
	struct sc_conn *c = arg;
	struct sc_state *st = c->st;
	char tname[16];

	snprintf(tname, sizeof(tname), "scanner-%d", (int)c->pid);
	pthread_setname_np(pthread_self(), tname);
	pthread_mutex_lock(&st->lock);
	for (;;) {
		struct sc_req *r;

		while (!c->stop && !c->dead && !st->head)
			pthread_cond_wait(&st->work, &st->lock);
		if (c->stop || c->dead)
			break;
		r = st->head;
		st->head = r->next;
		if (!st->head)
			st->tail = NULL;
		sc_in_flight_enter_locked(st);
		c->busy++;
		pthread_mutex_unlock(&st->lock);
		PROF_MARK(r->key.ino, PROF_SENDER_TOOK);
		(void)sc_serve(c, r); /* r is no longer ours */
		pthread_mutex_lock(&st->lock);
		st->in_flight--;
		c->busy--;
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

/* ---- connect and disconnect ---- */

static void
conn_free(struct sc_conn *c)
{
	free(c->senders);
	free(c);
}

/* The window the service asked for; -EPROTO for a context that is not
 * ours. */
static int
parse_context(const void *context, size_t len, unsigned *ret)
{
	const uint8_t *p = context;

	if (len == 0) {
		*ret = SCANNER_DEFAULT_WINDOW;
		return 0;
	}
	if (len != SCANNER_CONTEXT_SIZE || flt_get32(p) != SCANNER_MAGIC ||
	    flt_get32(p + 4) != SCANNER_VERSION || flt_get32(p + 8) > SCANNER_MAX_WINDOW)
		return -EPROTO;
	*ret = flt_get32(p + 8);
	return 0;
}

/* Stops and joins c's senders (none may be blocked: c is down or was
 * never announced). st->lock not held. */
static void
senders_stop(struct sc_conn *c)
{
	pthread_mutex_lock(&c->st->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->st->work);
	pthread_mutex_unlock(&c->st->lock);
	for (unsigned i = 0; i < c->n_senders; i++)
		pthread_join(c->senders[i], NULL);
	c->n_senders = 0;
}

int
sc_on_connect(flt_port client_port, void *server_cookie, const void *context,
	      size_t context_len, const struct flt_peer *peer, void **ret_cookie)
{
	struct sc_state *st = server_cookie;
	struct sc_conn *c;
	unsigned window;
	int r;

	r = parse_context(context, context_len, &window);
	if (r < 0) {
		flt_filter_log(
			st->filter, FLT_LOG_WARNING,
			"refusing pid %d: its connection context is not a scanner's",
			(int)peer->pid);
		return r;
	}
	if (window > st->set.max_window)
		window = st->set.max_window;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->st = st;
	c->port = client_port;
	c->pid = peer->pid;
	c->window = window;
	if (window) {
		c->senders = calloc(window, sizeof(*c->senders));
		if (!c->senders) {
			conn_free(c);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&st->lock);
	r = st->closing ? -ESHUTDOWN : 0;
	pthread_mutex_unlock(&st->lock);
	/* A service's own opens are not scanned while it is connected: it
	 * reads the files it scans (libfltmgr ends this with the connection,
	 * refused or not). A monitor is not excluded. */
	if (r == 0 && window && st->set.exclude_services && peer->pid > 0)
		r = flt_exclude_connection_process(st->filter, &client_port);
	for (unsigned i = 0; r == 0 && i < window; i++) {
		r = -pthread_create(&c->senders[i], NULL, sender_main, c);
		if (r == 0)
			c->n_senders++;
	}
	if (r < 0) {
		senders_stop(c);
		flt_filter_log(st->filter, FLT_LOG_WARNING, "refusing service pid %d: %s",
			       (int)peer->pid, strerror(-r));
		conn_free(c);
		return r;
	}
	pthread_mutex_lock(&st->lock);
	c->next = st->conns;
	if (st->conns)
		st->conns->prev = c;
	st->conns = c;
	c->number = ++st->n_accepted;
	if (window)
		st->n_live++;
	pthread_mutex_unlock(&st->lock);
	if (window)
		sc_count(st, SCANNER_CTR_connections);
	flt_filter_log(st->filter, FLT_LOG_INFO,
		       "%s pid %d connected (connection %llu, window %u)",
		       window ? "service" : "monitor", (int)peer->pid,
		       (unsigned long long)c->number, window);
	*ret_cookie = c; /* c belongs to the connection until its disconnect */
	return 0;
}

void
sc_on_disconnect(void *cookie)
{
	struct sc_conn *c = cookie;
	struct sc_state *st = c->st;

	/* The connection is down: its blocked senders have been failed with
	 * -ENOTCONN (and moved or answered their requests), and so has a pre
	 * callback sending on it inline, which we wait for: it still uses c. */
	pthread_mutex_lock(&st->lock);
	sc_conn_dead_locked(c);
	while (c->n_inline)
		pthread_cond_wait(&st->inline_done, &st->lock);
	pthread_mutex_unlock(&st->lock);
	senders_stop(c);
	flt_close_client_port(st->filter, &c->port); /* as on Windows */
	sc_drain_if_no_service(st);

	pthread_mutex_lock(&st->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		st->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&st->lock);
	flt_filter_log(st->filter, FLT_LOG_INFO,
		       "%s pid %d disconnected (connection %llu)",
		       c->window ? "service" : "monitor", (int)c->pid,
		       (unsigned long long)c->number);
	conn_free(c);
}

/* ---- calls from services ---- */

void
sc_counters_snapshot(struct sc_state *st, uint64_t v[SCANNER_CTR_COUNT_])
{
	for (int i = 0; i < SCANNER_CTR_COUNT_; i++)
		v[i] = atomic_load_explicit(&st->ctr[i], memory_order_relaxed);
}

size_t
sc_counters_hook(void *cookie, struct flt_counter *out, size_t cap)
{
	struct sc_state *st = cookie;

	for (size_t i = 0; i < SCANNER_CTR_COUNT_ && i < cap; i++) {
		out[i].name = scanner_counter_names[i];
		out[i].value = atomic_load_explicit(&st->ctr[i], memory_order_relaxed);
	}
	return SCANNER_CTR_COUNT_;
}

int
sc_on_message(void *cookie, const void *in, size_t in_len, void *out, size_t out_cap,
	      size_t *ret_out_len)
{
	struct sc_conn *c = cookie;
	struct sc_state *st = c->st;
	uint64_t v[SCANNER_CTR_COUNT_];
	uint8_t *o = out;
	uint32_t cmd;
	int r;

	if (in_len != SCANNER_CMD_SIZE || flt_get32(in) != SCANNER_MAGIC)
		return -EINVAL;
	cmd = flt_get32((const uint8_t *)in + 4);
	switch (cmd) {
	case SCANNER_CMD_STATS:
		if (out_cap < SCANNER_STATS_SIZE)
			return -EMSGSIZE;
		sc_counters_snapshot(st, v);
		flt_put32(o, SCANNER_MAGIC);
		flt_put32(o + 4, SCANNER_CTR_COUNT_);
		for (int i = 0; i < SCANNER_CTR_COUNT_; i++)
			flt_put64(o + 8 + 8 * i, v[i]);
		*ret_out_len = SCANNER_STATS_SIZE;
		return 0;
	case SCANNER_CMD_FLUSH:
		/* The user-space cache first: a verdict in flight under the
		 * old rules then stays out of both caches. */
		sc_cache_flush(&st->cache);
		r = flt_flush_verdict_cache(st->mgr);
		sc_count(st, SCANNER_CTR_flushes);
		flt_filter_log(st->filter, FLT_LOG_INFO,
			       "verdict caches flushed for service pid %d%s%s",
			       (int)c->pid, r < 0 ? ": the kernel cache: " : "",
			       r < 0 ? strerror(-r) : "");
		*ret_out_len = 0;
		return r < 0 ? r : 0;
	}
	return -EOPNOTSUPP;
}
