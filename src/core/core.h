/* SPDX-License-Identifier: MIT */
/*
 * core.h — the leaf of libfltmgr: flt_manager and flt_filter, the objects
 * every part hangs off (the handle table and filter list of the manager,
 * and per filter its registration, port lists and engine state), the
 * reaper of finished threads, logging, and the pre callback running on
 * this thread. The engine and the ports include this, never the manager;
 * nothing here calls the engine, the ports or the manager (core.c,
 * log.c, callback.c, fault.c, handle_table.c).
 */
#ifndef FLTMGR_CORE_H
#define FLTMGR_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <fltmgr/filter.h>

#include "core/handle_table.h"

struct engine;
struct server_port;
struct conn;
struct instance;
struct filter_engine;

/* For a condition that can recur thousands of times a second (a full
 * descriptor table, no memory, a flood of denials): at most one line per
 * second per limit (struct flt_log_limit, <fltmgr/filter.h>: the one
 * filters use too), telling how many occurrences it stands for. A limit
 * is zero-initialised, usually static at the call site. */

/* The kinds of decision logged per filter, each with its own limit. */
enum decision_kind {
	DECISION_DENIED,        /* by the filter's verdict */
	DECISION_DEFAULT_ALLOW, /* its default verdict allowed (fail-open) */
	DECISION_DEFAULT_DENY,  /* its default verdict denied */
	DECISION_KINDS,
};

struct flt_manager {
	char *runtime_dir;
	int log_level;
	flt_log_func log_func;
	void *log_userdata;
	flt_decision_func decision_func;
	void *decision_userdata;
	struct handle_table ht;

	pthread_mutex_t lock;
	struct flt_filter *filters;
	pthread_mutex_t engine_lock;   /* creating the engine */
	struct engine *_Atomic engine; /* NULL until a filter starts */
	atomic_uint notif_hold_us;     /* flt_manager_set_notification_hold() */
	pthread_t *zombies;            /* finished threads, joined by mgr_reap() */
	size_t n_zombies;
	size_t cap_zombies;
};

struct flt_filter {
	flt_manager *mgr;
	char name[FLT_PORT_NAME_MAX + 1];
	char altitude[32];
	struct flt_filter *next;

	/* Recursive: callbacks run under it may call port functions. */
	pthread_mutex_t port_lock;

	pthread_mutex_t lock;
	pthread_cond_t threads_done;
	bool closing;
	struct server_port *ports;
	struct conn *conns;
	int n_threads; /* live connection threads */

	struct filter_engine *eng; /* operations, instances, counters */
	/* Set once before the filter is on the manager's list, and read
	 * under manager->lock (engine.c, perm_needs_pidfd), where eng may
	 * be going away: whether it has pre callbacks, and whether it has
	 * them without FLT_REGISTRATION_NO_PROCESS_DETAILS. */
	bool has_pre;
	bool pre_needs_process;

	struct flt_log_limit decision_limit[DECISION_KINDS];
};

/* ---- the reaper (core.c) ---- */

/* Adds the calling thread to the manager's join list; its last touch of
 * shared memory. */
void mgr_add_zombie(flt_manager *m, pthread_t t);
/* Joins every finished thread. Must not be called by a thread that may be
 * on the list itself. */
void mgr_reap(flt_manager *m);

/* ---- logging (log.c) ---- */

void flt_log(flt_manager *m, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define log_error(m, ...)   flt_log(m, FLT_LOG_ERROR, __VA_ARGS__)
#define log_warning(m, ...) flt_log(m, FLT_LOG_WARNING, __VA_ARGS__)
#define log_notice(m, ...)  flt_log(m, FLT_LOG_NOTICE, __VA_ARGS__)
#define log_info(m, ...)    flt_log(m, FLT_LOG_INFO, __VA_ARGS__)
#define log_debug(m, ...)   flt_log(m, FLT_LOG_DEBUG, __VA_ARGS__)

void flt_log_limited(flt_manager *m, struct flt_log_limit *limit, int level,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A decision (struct flt_decision), at most one a second per limit, with
 * the count held back. Called after the kernel has its answer, never on
 * an allow by a filter's verdict. path NULL: read from fd (-1: unknown);
 * exe NULL: read from /proc/PID/exe. Both are read only when a line is
 * written (a log line, not proof). */
void flt_log_decision_limited(flt_manager *m, struct flt_log_limit *limit, int level,
			      const struct flt_decision *d, int fd);

/* ---- the pre callback running on this thread (callback.c) ----
 *
 * The engine sets it around each pre callback: the event's deadline
 * (now_ns() clock) and where to count a send cut to it. The ports cut
 * every flt_send_message() timeout made inside the callback to that
 * deadline, FLT_INFINITE included, so a filter cannot hold an engine
 * reader past the moment its event has been answered by default. */
struct callback_scope {
	int64_t deadline_ns; /* 0: not in a pre callback */
	const char *filter_name;
	flt_manager *mgr;
	atomic_uint_fast64_t *capped;
};
void callback_scope_enter(const struct callback_scope *scope);
void callback_scope_leave(void);
/* deadline (DEADLINE_NEVER for none), or the callback's deadline if that
 * comes first: then counted and logged (at most once a second). */
int64_t callback_scope_cap(int64_t deadline);

#endif
