/* SPDX-License-Identifier: MIT */
/*
 * teardown.c — the ports' share of unregistering a filter (ports.h): its
 * server ports closed, its connections disconnected, its connection
 * threads waited for. The manager calls it and never walks the filter's
 * port or connection lists itself.
 */
#include "ports/internal.h"
#include "ports/ports.h"

void
ports_filter_teardown(flt_filter *filter)
{
	/* Phase 1: refuse new work. */
	pthread_mutex_lock(&filter->lock);
	filter->closing = true;
	pthread_mutex_unlock(&filter->lock);

	/* Phase 2: stop listening. */
	for (;;) {
		struct server_port *sp;

		pthread_mutex_lock(&filter->lock);
		sp = filter->ports;
		if (sp)
			filter->ports = sp->next;
		pthread_mutex_unlock(&filter->lock);
		if (!sp)
			break;
		sp_close(sp);
		obj_unref(&sp->obj); /* the list's reference */
	}

	/* Phase 3: disconnect every connection; each thread runs its
	 * disconnect callback and leaves. No allocation: pick connections
	 * one at a time (kill_requested is guarded by filter->lock). */
	for (;;) {
		struct conn *c;

		pthread_mutex_lock(&filter->lock);
		for (c = filter->conns; c && c->kill_requested; c = c->next)
			;
		if (c) {
			c->kill_requested = true;
			obj_ref(&c->obj);
		}
		pthread_mutex_unlock(&filter->lock);
		if (!c)
			break;
		conn_disconnect(c, "filter unregistering");
		obj_unref(&c->obj);
	}

	/* Phase 4: wait for callbacks in flight. */
	pthread_mutex_lock(&filter->lock);
	while (filter->n_threads > 0)
		pthread_cond_wait(&filter->threads_done, &filter->lock);
	pthread_mutex_unlock(&filter->lock);
}
