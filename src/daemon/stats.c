/* SPDX-License-Identifier: MIT */
/*
 * stats.c — the stats reply (docs/control.md): the engine's, each
 * filter's, each server port's and the daemon's counters, with the list
 * of which are gauges. fltmc stats shows it and metrics_file renders it;
 * the ports listing (fltmc ports) shares its per-port part.
 */
#include "daemon/stats.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/json_put.h"

/* The filters sorted by altitude, highest first (fltmc's order). */
static int
cmp_altitude(const void *a, const void *b)
{
	const struct running_filter *x = *(struct running_filter *const *)a;
	const struct running_filter *y = *(struct running_filter *const *)b;
	long double ax = strtold(x->cf.altitude, NULL),
		    ay = strtold(y->cf.altitude, NULL);

	return ax < ay ? 1 : ax > ay ? -1 : strcmp(x->cf.name, y->cf.name);
}

struct running_filter **
sorted_filters(struct daemon *d)
{
	struct running_filter **v = calloc(d->fs.n + 1, sizeof(*v));

	if (!v)
		return NULL;
	memcpy(v, d->fs.v, d->fs.n * sizeof(*v));
	qsort(v, d->fs.n, sizeof(*v), cmp_altitude);
	return v;
}

static void
put_port_counters(struct json_object *x, const struct flt_port_stats *s)
{
	put_u64(x, "messages_sent", s->messages_sent);
	put_u64(x, "replies_received", s->replies_received);
	put_u64(x, "timeouts", s->timeouts);
}

static struct json_object *
client_json(const struct flt_port_info *p)
{
	struct json_object *c = json_object_new_object();
	char link[64], exe[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)p->peer.pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	if (n >= 0)
		exe[n] = '\0';
	json_object_object_add(c, "pid", json_object_new_int(p->peer.pid));
	put_u64(c, "uid", p->peer.uid);
	put_u64(c, "gid", p->peer.gid);
	put_str(c, "exe", n >= 0 ? exe : NULL);
	put_port_counters(c, &p->stats);
	put_u64(c, "pending_replies", p->stats.pending_replies);
	put_u64(c, "queued_bytes", p->stats.queued_bytes);
	return c;
}

/* One JSON object per server port: its totals (full = every counter, for
 * stats) and, for ports, its clients. */
/* The server port's post queues (flt_post_message), all connections. */
static void
add_post_counters(struct json_object *sp, flt_filter *f, const flt_port *server)
{
	struct flt_post_stats ps = { 0 };

	if (flt_port_get_post_stats(f, server, &ps, sizeof(ps)) < 0)
		return;
	put_u64(sp, "posted", ps.posted);
	put_u64(sp, "post_refused", ps.refused);
	put_u64(sp, "post_cancelled", ps.cancelled);
	put_u64(sp, "post_queued", ps.queued);
}

void
stats_add_ports(struct daemon *d, struct json_object *a, bool full)
{
	struct running_filter **v = sorted_filters(d);

	for (size_t i = 0; v && i < d->fs.n; i++) {
		struct flt_port_info *p = NULL;
		struct json_object *sp = NULL, *clients = NULL;
		size_t n = 0;

		if (!v[i]->lf.filter ||
		    flt_filter_list_ports(v[i]->lf.filter, &p, &n) < 0)
			continue;
		for (size_t k = 0; k < n; k++) {
			const struct flt_port_stats *s = &p[k].stats;

			if (p[k].client.value) {
				if (clients)
					json_object_array_add(clients,
							      client_json(&p[k]));
				continue;
			}
			sp = json_object_new_object();
			put_str(sp, "filter", v[i]->cf.name);
			put_str(sp, "name", p[k].name);
			put_u64(sp, "connections", s->connections_current);
			put_u64(sp, "accepted", s->connections_accepted);
			put_u64(sp, "refused", s->connections_refused);
			put_u64(sp, "malformed", s->malformed_frames);
			put_port_counters(sp, s);
			if (full) {
				put_u64(sp, "disconnect_failures",
					s->disconnect_failures);
				put_u64(sp, "late_replies", s->late_replies);
				put_u64(sp, "service_messages", s->service_messages);
				put_u64(sp, "pending_replies", s->pending_replies);
				put_u64(sp, "blocked_senders", s->blocked_senders);
				put_u64(sp, "queued_bytes", s->queued_bytes);
				add_post_counters(sp, v[i]->lf.filter, &p[k].server);
				clients = NULL;
			} else {
				json_object_object_add(
					sp, "max_connections",
					json_object_new_int(p[k].max_connections));
				clients = json_object_new_array();
				json_object_object_add(sp, "clients", clients);
			}
			json_object_array_add(a, sp);
		}
		free(p);
	}
	free(v);
}

static void
add_filter_counters(struct json_object *f, flt_filter *filter)
{
	struct flt_counter c[FLT_FILTER_MAX_COUNTERS];
	struct json_object *o;
	size_t n = 0;

	if (flt_filter_get_counters(filter, c, FLT_FILTER_MAX_COUNTERS, &n) < 0 || !n)
		return;
	o = json_object_new_object();
	for (size_t i = 0; i < n; i++)
		put_u64(o, c[i].name, c[i].value);
	json_object_object_add(f, "counters", o);
}

/* Which numbers of the stats reply are gauges (a level that goes up and
 * down); every other one is a counter (only ever goes up, from 0 at the
 * daemon's start). Per section; "filters" has none. */
static const char *const engine_gauges[] = { "pending", "readers", NULL };
static const char *const port_gauges[] = { "connections",     "pending_replies",
					   "blocked_senders", "queued_bytes",
					   "post_queued",     NULL };

static struct json_object *
name_list(const char *const *names)
{
	struct json_object *a = json_object_new_array();

	for (; *names; names++)
		json_object_array_add(a, json_object_new_string(*names));
	return a;
}

struct json_object *
stats_reply(struct daemon *d)
{
	struct json_object *gauges = json_object_new_object();
	struct json_object *o = ok_reply(), *e = json_object_new_object();
	struct json_object *fa = json_object_new_array(), *pa = json_object_new_array();
	struct json_object *dm = json_object_new_object();
	struct flt_engine_stats es = { 0 };

	(void)flt_manager_get_stats(d->mgr, &es);
	put_u64(e, "permission_events", es.permission_events);
	put_u64(e, "notification_events", es.notification_events);
	put_u64(e, "self_events", es.self_events);
	put_u64(e, "allowed", es.allowed);
	put_u64(e, "denied", es.denied);
	put_u64(e, "deadline_defaults", es.deadline_defaults);
	put_u64(e, "scope_uncertain", es.scope_uncertain);
	put_u64(e, "overflows", es.overflows);
	put_u64(e, "dropped", es.dropped);
	put_u64(e, "notif_ignored", es.notif_ignored);
	put_u64(e, "notif_resolved", es.notif_resolved);
	put_u64(e, "notif_unresolved", es.notif_unresolved);
	put_u64(e, "notif_lost", es.notif_lost);
	put_u64(e, "read_errors", es.read_errors);
	put_u64(e, "process_cache_hits", es.process_cache_hits);
	put_u64(e, "process_cache_misses", es.process_cache_misses);
	put_u64(e, "process_cache_invalidations", es.process_cache_invalidations);
	put_u64(e, "process_cache_evictions", es.process_cache_evictions);
	put_u64(e, "cache_inserts", es.cache_inserts);
	put_u64(e, "cache_flushes", es.cache_flushes);
	put_u64(e, "cache_refused", es.cache_refused);
	put_u64(e, "emergency_answers", es.emergency_answers);
	put_u64(e, "mount_changes", es.mount_changes);
	put_u64(e, "instance_reattaches", es.instance_reattaches);
	put_u64(e, "volumes_attached", es.volumes_attached);
	put_u64(e, "volumes_detached", es.volumes_detached);
	put_u64(e, "volumes_declined", es.volumes_declined);
	put_u64(e, "pending", es.pending);
	put_u64(e, "readers", es.readers);
	json_object_object_add(o, "engine", e);

	for (size_t i = 0; i < d->fs.n; i++) {
		struct json_object *f;
		struct flt_filter_stats s = { 0 };

		if (!d->fs.v[i]->lf.filter) /* held: nothing runs */
			continue;
		f = json_object_new_object();
		(void)flt_filter_get_stats(d->fs.v[i]->lf.filter, &s);
		put_str(f, "name", d->fs.v[i]->cf.name);
		put_u64(f, "seen", s.seen);
		put_u64(f, "delivered", s.delivered);
		put_u64(f, "allowed", s.allowed);
		put_u64(f, "denied", s.denied);
		put_u64(f, "pended", s.pended);
		put_u64(f, "deadline_defaults", s.deadline_defaults);
		put_u64(f, "late_completions", s.late_completions);
		put_u64(f, "timeouts_capped", s.timeouts_capped);
		put_u64(f, "excluded", s.excluded);
		add_filter_counters(f, d->fs.v[i]->lf.filter);
		json_object_array_add(fa, f);
	}
	json_object_object_add(o, "filters", fa);
	stats_add_ports(d, pa, true);
	json_object_object_add(o, "ports", pa);

	put_u64(dm, "reloads", d->ctr.reloads);
	put_u64(dm, "reload_failures", d->ctr.reload_failures);
	put_u64(dm, "control_requests", d->ctr.control_requests);
	put_u64(dm, "control_refused", d->ctr.control_refused);
	put_u64(dm, "control_busy", d->ctr.control_busy);
	put_u64(dm, "control_malformed", d->ctr.control_malformed);
	put_u64(dm, "control_timeouts", d->ctr.control_timeouts);
	put_u64(dm, "control_accept_errors", d->ctr.control_accept_errors);
	put_u64(dm, "watchdog_pings", d->ctr.watchdog_pings);
	put_u64(dm, "watchdog_withheld", d->ctr.watchdog_withheld);
	json_object_object_add(o, "daemon", dm);

	json_object_object_add(gauges, "engine", name_list(engine_gauges));
	json_object_object_add(gauges, "filters", json_object_new_array());
	json_object_object_add(gauges, "ports", name_list(port_gauges));
	json_object_object_add(gauges, "daemon", json_object_new_array());
	json_object_object_add(o, "gauges", gauges);
	return o;
}
