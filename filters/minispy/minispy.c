/* SPDX-License-Identifier: MIT */
/*
 * minispy.c — the minispy filter's entry point (the DriverEntry of the
 * Windows sample), its event callbacks and its unload callback. Connections and sending live in port.c.
 *
 * The event path (ms_post) never waits for anyone: it filters by the
 * instance's operation mask and patterns, encodes one record and hands it
 * to ms_deliver_publish(), which only appends references to bounded rings under
 * the state's lock. Every operation is registered post-only, so no opener
 * ever waits for minispy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery.h"

#define EXPORT __attribute__((visibility("default")))

struct ms_instance {
	struct ms_state *st;
	struct ms_match *match;
};

static void
state_free(struct ms_state *st)
{
	ms_ring_fini(&st->backlog);
	ms_settings_free(&st->set);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* ---- instances ---- */

static int
ms_instance_setup(flt_filter *filter, const char *path, enum flt_instance_kind kind,
		  void **ret_instance_context)
{
	struct ms_state *st = flt_filter_cookie(filter);
	struct ms_instance *in;
	struct ms_match *m = NULL;
	char err[512], ops[128];
	int r;

	(void)kind;
	r = ms_match_new(&st->set, path, &m, err, sizeof(err));
	if (r < 0) {
		flt_filter_log(filter, FLT_LOG_ERROR, "refusing the instance at %s: %s",
			       path, err);
		return r;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		ms_match_free(m);
		return -ENOMEM;
	}
	in->st = st;
	in->match = m;
	ms_ops_format(m->ops, ops, sizeof(ops));
	flt_filter_log(filter, FLT_LOG_INFO,
		       "instance at %s%s%s: ops %s, %zu include and %zu exclude "
		       "patterns",
		       path, m->label ? " labelled " : "", m->label ? m->label : "", ops,
		       m->n_include, m->n_exclude);
	*ret_instance_context = in;
	return 0;
}

static void
ms_instance_teardown(flt_filter *filter, void *instance_context)
{
	struct ms_instance *in = instance_context;

	(void)filter;
	if (!in)
		return;
	ms_match_free(in->match);
	free(in);
}

/* ---- events ---- */

/*
 * Whether the instance reports this event: its patterns match the path,
 * or for a rename either path. A path the engine could not resolve
 * (FLT_EVENT_PATH_UNKNOWN) cannot be ruled out, so such an event is
 * reported, with the path left empty.
 */
static bool
ms_selected(const struct ms_match *m, const struct flt_callback_data *d)
{
	if (!d->path || (d->op == FLT_OP_RENAME && !d->new_path))
		return true;
	return ms_match_path(m, d->path) ||
	       (d->new_path && ms_match_path(m, d->new_path));
}

static void
ms_post(const struct flt_callback_data *d, void *instance_context,
	void *completion_context)
{
	struct ms_instance *in = instance_context;
	const struct flt_process *p = NULL;
	struct ms_rec *rec;

	(void)completion_context;
	if (!in || d->op >= FLT_OP_OVERFLOW || !(in->match->ops & (1u << d->op)))
		return;
	if (!ms_selected(in->match, d))
		return;
	if (in->st->set.process)
		p = flt_get_process(d);
	rec = ms_rec_event(d, p);
	ms_deliver_publish(in->st, rec, 0); /* rec NULL: publishes the loss */
	if (rec)
		ms_rec_unref(rec);
	if (!d->path || (d->op == FLT_OP_RENAME && !d->new_path)) {
		pthread_mutex_lock(&in->st->lock);
		in->st->ctr.unknown_paths++;
		pthread_mutex_unlock(&in->st->lock);
	}
}

/*
 * Events were lost before they reached minispy: the kernel's queue
 * overflowed (a KERNEL notice) or the engine could not deliver them (an
 * ENGINE notice; FLT_EVENT_LOSS_* says why). The engine calls this once
 * per filter that registered OVERFLOW, with no instance: the state is the
 * cookie of the filter it is called for.
 */
static void
ms_overflow(const struct flt_callback_data *d, void *instance_context,
	    void *completion_context)
{
	flt_filter *f = flt_event_filter(d);
	struct ms_state *st = flt_filter_cookie(f);
	uint32_t kind = ms_notice_kind(d);
	struct ms_rec *rec;

	(void)instance_context;
	(void)completion_context;
	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	if (kind == MINISPY_NOTICE_KERNEL)
		st->ctr.kernel_overflows++;
	else
		st->ctr.engine_losses++;
	pthread_mutex_unlock(&st->lock);
	if (kind == MINISPY_NOTICE_KERNEL)
		flt_filter_log(f, FLT_LOG_WARNING,
			       "the kernel's event queue overflowed: events were lost; "
			       "services get a loss record");
	else
		flt_filter_log(f, FLT_LOG_WARNING,
			       "the engine lost %llu event(s)%s; services get a loss "
			       "record",
			       (unsigned long long)d->lost,
			       d->lost ? "" : " (how many is not known)");
	rec = ms_rec_notice(d);
	ms_deliver_publish(st, rec, kind);
	if (rec)
		ms_rec_unref(rec);
}

/* ---- unload ---- */

/*
 * Called by flt_unregister_filter() after every other callback of the
 * filter: the last instance teardown, and every connection's disconnect
 * callback (the last one gave its undelivered records back to the
 * backlog). Nothing uses the state any more.
 */
static void
ms_unload(flt_filter *filter, void *cookie)
{
	struct ms_state *st = cookie;
	struct ms_counters c = st->ctr;

	flt_close_communication_port(filter, &st->server);
	flt_filter_log(filter, FLT_LOG_INFO,
		       "unloading: %llu records, %llu sent, %llu dropped, %llu backlog "
		       "dropped, %llu loss records sent",
		       (unsigned long long)c.records, (unsigned long long)c.sent,
		       (unsigned long long)c.dropped,
		       (unsigned long long)c.backlog_dropped,
		       (unsigned long long)c.loss_records_sent);
	state_free(st);
}

/* ---- the entry point ---- */

/* The default altitude (FSFilter Activity Monitor range), used by `fltmc
 * load minispy` without a configuration section, like a Windows INF's. */
EXPORT const char fltmgr_filter_altitude[] = "385100";

EXPORT int
fltmgr_filter_entry(flt_manager *manager, const struct flt_filter_config *config,
		    flt_filter **ret_filter)
{
	static const struct flt_operation_registration ops[] = {
		{ FLT_OP_OPEN, NULL, ms_post },         { FLT_OP_EXEC, NULL, ms_post },
		{ FLT_OP_READ, NULL, ms_post },         { FLT_OP_WRITE, NULL, ms_post },
		{ FLT_OP_CLOSE_WRITE, NULL, ms_post },  { FLT_OP_CLOSE, NULL, ms_post },
		{ FLT_OP_ATTRIB, NULL, ms_post },       { FLT_OP_CREATE, NULL, ms_post },
		{ FLT_OP_DELETE, NULL, ms_post },       { FLT_OP_RENAME, NULL, ms_post },
		{ FLT_OP_OVERFLOW, NULL, ms_overflow },
	};
	struct flt_registration reg = {
		.operations = ops,
		.n_operations = sizeof(ops) / sizeof(ops[0]),
		.instance_setup = ms_instance_setup,
		.instance_teardown = ms_instance_teardown,
		.unload = ms_unload,
		.counters = ms_counters,
	};
	struct flt_port_attributes attr = { 0 };
	struct ms_state *st;
	flt_filter *f = NULL;
	char err[512];
	int r;

	if (!manager || !config || !config->name || !config->altitude || !ret_filter ||
	    (config->n_params && (!config->param_keys || !config->param_values)))
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	snprintf(st->name, sizeof(st->name), "%s", config->name);
	pthread_mutex_init(&st->lock, NULL);
	r = ms_settings_parse(config, &st->set, err, sizeof(err));
	if (r < 0) {
		flt_manager_log(manager, FLT_LOG_ERROR, "filter %s: refusing to load: %s",
				st->name, err);
		state_free(st);
		return r;
	}
	ms_ring_init(&st->backlog, st->set.backlog);

	reg.name = config->name;
	reg.altitude = config->altitude;
	reg.deadline_ms = config->deadline_ms;
	reg.default_verdict = config->default_verdict;
	reg.cookie = st;
	r = flt_register_filter(manager, &reg, &f);
	if (r < 0) {
		flt_manager_log(manager, FLT_LOG_ERROR, "filter %s: cannot register: %s",
				st->name, strerror(-r));
		state_free(st);
		return r;
	}
	st->filter = f;

	attr.name = st->set.port;
	attr.mode = st->set.port_mode;
	r = flt_create_communication_port(f, &st->server, &attr, st, ms_on_connect,
					  ms_on_disconnect, ms_on_message,
					  st->set.max_connections);
	if (r < 0) {
		flt_filter_log(f, FLT_LOG_ERROR, "cannot create port %s: %s%s",
			       st->set.port, strerror(-r),
			       r == -EEXIST ? " (another live port has that name: set "
					      "param.port)"
					    : "");
		flt_unregister_filter(f); /* the unload callback frees st */
		return r;
	}
	flt_filter_log(
		f, FLT_LOG_INFO,
		"loaded: port %s (at most %d services), queue %u records per service, "
		"backlog %u records, services %s",
		st->set.port, st->set.max_connections, st->set.queue_size,
		st->set.backlog, st->set.exclude_services ? "excluded" : "included");
	*ret_filter = f;
	return 0;
}
