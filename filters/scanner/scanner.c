/* SPDX-License-Identifier: MIT */
/*
 * scanner.c — the scanner filter's entry point (the DriverEntry of the
 * Windows scanner sample), its event callbacks and its unload callback. Requests live in request.c,
 * services in conn.c, the verdict cache in cache.c.
 *
 * The pre callback (OPEN, EXEC) runs on an engine reader thread: a
 * non-regular file is allowed, a cached verdict is given at once (a clean
 * one is left cacheable, so the engine puts an ignore mark on the inode
 * and later opens never reach user space), with no service connected the
 * default verdict is given (not cacheable). Otherwise, if a service is
 * idle and the file small, the callback sends the request itself and
 * returns the verdict (waiting at most param.inline_ms); else, or if
 * that wait runs out, the event is pended and queued for a sender
 * thread.
 *
 * The post callbacks (WRITE, CLOSE_WRITE, RENAME; notifications) drop the
 * file's cache entry, so the next open after a write is scanned again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scanner.h"
#define PROF_TAG "filter"
#include "prof.h"

#define EXPORT __attribute__((visibility("default")))

static void
state_free(struct sc_state *st)
{
	sc_cache_fini(&st->cache);
	pthread_cond_destroy(&st->inline_done);
	pthread_cond_destroy(&st->work);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* ---- instances: the context is the state ---- */

static int
sc_instance_setup(flt_filter *filter, const char *path, enum flt_instance_kind kind,
		  void **ret_instance_context)
{
	(void)kind;
	flt_filter_log(filter, FLT_LOG_INFO, "instance at %s", path);
	*ret_instance_context = flt_filter_cookie(filter);
	return 0;
}

/* ---- events ---- */

static enum flt_preop_status
answer_default(struct sc_state *st, struct flt_callback_data *d, enum scanner_counter ctr,
	       const char *reason)
{
	enum flt_preop_status status;
	int error;

	(void)flt_event_path(d); /* for the decision record */
	status = sc_default(st, d, ctr, reason, &error);
	if (status == FLT_PREOP_COMPLETE)
		d->status = error;
	return status;
}

static enum flt_preop_status
sc_pre(struct flt_callback_data *d, void *instance_context, void **completion_context)
{
	struct sc_state *st = instance_context;
	struct sc_conn *c;
	struct sc_req *r;
	struct stat sb;
	int v;

	(void)completion_context;
	if (!st)
		return FLT_PREOP_SUCCESS_NO_CALLBACK;
	sc_count(st, SCANNER_CTR_events);
	PROF_MARK(d->ino, PROF_PRE_ENTER);
	if ((d->op == FLT_OP_OPEN && !st->set.scan_open) ||
	    (d->op == FLT_OP_EXEC && !st->set.scan_exec))
		return FLT_PREOP_SUCCESS_NO_CALLBACK;
	if (fstat(d->fd, &sb) < 0)
		return answer_default(st, d, SCANNER_CTR_errors, "cannot stat the file");
	if (!S_ISREG(sb.st_mode)) {
		sc_count(st, SCANNER_CTR_skipped);
		return FLT_PREOP_SUCCESS_NO_CALLBACK;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return answer_default(st, d, SCANNER_CTR_errors, "out of memory");
	sc_key_from_stat(&sb, &r->key);
	/* The ticket before the lookup: a flush in between makes the verdict
	 * of this request uncacheable rather than stale. */
	r->ticket = sc_cache_ticket(&st->cache);
	/* An exec of a file that others than root can write is always
	 * scanned, and its verdict never becomes a kernel mark: a write
	 * through a shared mapping changes a file without any event, and on
	 * some file systems without moving mtime or ctime, so a cached
	 * verdict may be for other content; and only a scan takes the
	 * service's lease against writers (docs/scanner.md section 4). */
	/* A file others than root can write may have been changed through a
	 * shared mapping, which moves no timestamp on tmpfs and, on a page
	 * already dirty, none anywhere: its key proves nothing. Only a cached
	 * denial stands for it (a deny cannot open anything). */
	r->writable = !sc_root_only_writable(&sb);
	r->always_scan = d->op == FLT_OP_EXEC && r->writable;
	v = r->always_scan ? -1 : sc_cache_get(&st->cache, &r->key);
	if (r->always_scan)
		sc_count(st, SCANNER_CTR_exec_always_scanned);
	if (v == SCANNER_CLEAN && r->writable) {
		sc_count(st, SCANNER_CTR_writable_rescans);
		v = -1;
	}
	if (v >= 0) {
		free(r);
		sc_count(st, SCANNER_CTR_cache_hits);
		if (v == SCANNER_CLEAN)
			return FLT_PREOP_SUCCESS_NO_CALLBACK; /* and cacheable */
		sc_count(st, SCANNER_CTR_cache_denies);
		d->status = -EPERM;
		return FLT_PREOP_COMPLETE;
	}
	/* A scan: the service and the decision records want the path. It is
	 * resolved here, on the reader, before the request can be pended and
	 * read by another thread; a cache hit above never needed it. */
	(void)flt_event_path(d);
	r->data = d;
	r->op = d->op == FLT_OP_EXEC;
	r->deadline_ns = flt_monotonic_ns() + (int64_t)st->deadline_ms * 1000000;
	c = sc_inline_take(st, (uint64_t)sb.st_size);
	if (c) {
		enum flt_preop_status status = FLT_PREOP_PENDING;
		int64_t rtt = 0;

		PROF_MARK(d->ino, PROF_PRE_SEND);
		r->on_reader = true;
		if (sc_serve(c, r)) { /* answered: r is still ours */
			status = r->status;
			if (status == FLT_PREOP_COMPLETE)
				d->status = r->error;
			rtt = r->rtt_ns;
			free(r);
		} /* else queued for the senders: PENDING */
		sc_inline_release(c, rtt);
		return status;
	}
	PROF_MARK(d->ino, PROF_PRE_QUEUED);
	if (!sc_enqueue(st, r)) {
		free(r);
		return answer_default(st, d, SCANNER_CTR_no_service_defaults, NULL);
	}
	return FLT_PREOP_PENDING; /* r belongs to the queue now */
}

/* The file changed (or another file took a name): forget its verdict. */
static void
sc_changed(const struct flt_callback_data *d, void *instance_context,
	   void *completion_context)
{
	struct sc_state *st = instance_context;

	(void)completion_context;
	if (st && d->ino && sc_cache_invalidate(&st->cache, d->dev, d->ino))
		sc_count(st, SCANNER_CTR_invalidations);
}

/* ---- unload ---- */

/*
 * Called by flt_unregister_filter() after every other callback, every
 * disconnect callback included: no sender thread is left. Pended events
 * still in the queue (there should be none: the last disconnect drained
 * it) are completed, which only releases them now.
 */
static void
sc_unload(flt_filter *filter, void *cookie)
{
	struct sc_state *st = cookie;
	uint64_t v[SCANNER_CTR_COUNT_];

	pthread_mutex_lock(&st->lock);
	st->closing = true;
	pthread_mutex_unlock(&st->lock);
	flt_close_communication_port(filter, &st->server);
	sc_drain_if_no_service(st);
	sc_counters_snapshot(st, v);
	flt_filter_log(
		filter, FLT_LOG_INFO,
		"unloading: %llu requests, %llu clean, %llu infected, %llu cache hits, "
		"%llu defaults (no service %llu, deadline %llu, disconnect %llu), "
		"%llu errors",
		(unsigned long long)v[SCANNER_CTR_requests],
		(unsigned long long)v[SCANNER_CTR_clean],
		(unsigned long long)v[SCANNER_CTR_infected],
		(unsigned long long)v[SCANNER_CTR_cache_hits],
		(unsigned long long)(v[SCANNER_CTR_no_service_defaults] +
				     v[SCANNER_CTR_deadline_defaults] +
				     v[SCANNER_CTR_disconnect_defaults]),
		(unsigned long long)v[SCANNER_CTR_no_service_defaults],
		(unsigned long long)v[SCANNER_CTR_deadline_defaults],
		(unsigned long long)v[SCANNER_CTR_disconnect_defaults],
		(unsigned long long)v[SCANNER_CTR_errors]);
	state_free(st);
}

/* ---- the entry point ---- */

/* The default altitude (FSFilter Anti-Virus range, 320000-329999), used by
 * `fltmc load scanner` without a configuration section, like a Windows
 * INF's. */
EXPORT const char fltmgr_filter_altitude[] = "325000";

EXPORT int
fltmgr_filter_entry(flt_manager *manager, const struct flt_filter_config *config,
		    flt_filter **ret_filter)
{
	struct flt_operation_registration ops[5];
	struct flt_registration reg = {
		.operations = ops,
		.instance_setup = sc_instance_setup,
		.unload = sc_unload,
		.counters = sc_counters_hook,
		/* The path only on a scan (flt_event_path): a hit in the
		 * scanner's own cache is decided by inode without it. */
		.flags = FLT_REGISTRATION_CACHE_VERDICTS |
			 FLT_REGISTRATION_PATH_ON_REQUEST,
	};
	struct flt_port_attributes attr = { 0 };
	struct sc_state *st;
	flt_filter *f = NULL;
	size_t n = 0;
	char err[512];
	int64_t margin;
	int r;

	if (!manager || !config || !config->name || !config->altitude || !ret_filter ||
	    (config->n_params && (!config->param_keys || !config->param_values)))
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->mgr = manager;
	snprintf(st->name, sizeof(st->name), "%s", config->name);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->work, NULL);
	pthread_cond_init(&st->inline_done, NULL);
	for (int i = 0; i < SCANNER_CTR_COUNT_; i++)
		atomic_init(&st->ctr[i], 0);
	r = sc_settings_parse(config, &st->set, err, sizeof(err));
	if (r == 0)
		r = sc_cache_init(&st->cache, st->set.cache_size);
	else
		sc_cache_init(&st->cache, 0);
	if (r < 0) {
		flt_manager_log(manager, FLT_LOG_ERROR, "filter %s: refusing to load: %s",
				st->name, r == -ENOMEM ? "out of memory" : err);
		state_free(st);
		return r;
	}
	st->deadline_ms = config->deadline_ms > 0 ? config->deadline_ms : 5000;
	st->default_verdict = config->default_verdict < 0 ? -EPERM : 0;
	/* Senders give up a little before the engine would, so that the
	 * default is the scanner's (counted here) and not a watchdog's. */
	margin = (int64_t)st->deadline_ms * 1000000 / 20;
	st->margin_ns = margin > 25000000 ? 25000000 : margin;

	if (st->set.scan_open)
		ops[n++] =
			(struct flt_operation_registration){ FLT_OP_OPEN, sc_pre, NULL };
	if (st->set.scan_exec)
		ops[n++] =
			(struct flt_operation_registration){ FLT_OP_EXEC, sc_pre, NULL };
	if (st->set.invalidate) {
		ops[n++] = (struct flt_operation_registration){ FLT_OP_WRITE, NULL,
								sc_changed };
		ops[n++] = (struct flt_operation_registration){ FLT_OP_CLOSE_WRITE, NULL,
								sc_changed };
		ops[n++] = (struct flt_operation_registration){ FLT_OP_RENAME, NULL,
								sc_changed };
	}
	reg.n_operations = n;
	reg.name = config->name;
	reg.altitude = config->altitude;
	reg.deadline_ms = st->deadline_ms;
	reg.default_verdict = st->default_verdict;
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
	r = flt_create_communication_port(f, &st->server, &attr, st, sc_on_connect,
					  sc_on_disconnect, sc_on_message,
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
		"loaded: port %s (at most %d services), deadline %d ms, default %s, "
		"cache %zu entries, scanning%s%s",
		st->set.port, st->set.max_connections, st->deadline_ms,
		st->default_verdict ? "deny" : "allow", st->set.cache_size,
		st->set.scan_open ? " open" : "", st->set.scan_exec ? " exec" : "");
	*ret_filter = f;
	return 0;
}
