/* SPDX-License-Identifier: MIT */
/*
 * manager.c — flt_manager and flt_filter: creation, registration, and the
 * ordered teardown (engine stopped, the ports' share handed to the ports,
 * threads joined, memory freed). It orchestrates: the objects themselves,
 * their accessors and the reaper are the core's (core/core.h); what the
 * engine and the ports do for a filter is theirs (engine/engine.h,
 * ports/ports.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/names.h"
#include "common/runtime_dir.h"
#include "core/core.h"
#include "engine/engine.h"
#include "ports/ports.h"

static int
mkdir_p(const char *path, mode_t mode)
{
	char *tmp = strdup(path);
	struct stat st;

	if (!tmp)
		return -ENOMEM;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST) {
			int r = -errno;

			free(tmp);
			return r;
		}
		*p = '/';
	}
	free(tmp);
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int
flt_manager_new(const struct flt_manager_options *options, flt_manager **ret_manager)
{
	const char *dir, *env;
	flt_manager *m;
	int r;

	if (!ret_manager)
		return -EINVAL;
	dir = runtime_dir_resolve(options ? options->runtime_dir : NULL, NULL);
	if (dir[0] != '/' || strlen(dir) > 80)
		return -EINVAL; /* sun_path must hold dir + "/" + name */

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->log_level =
		options && options->log_level ? options->log_level : FLT_LOG_NOTICE;
	if ((env = getenv("FLTMGR_LOG_LEVEL")) && env[0] >= '3' && env[0] <= '7' &&
	    !env[1])
		m->log_level = env[0] - '0';
	if (options) {
		m->log_func = options->log_func;
		m->log_userdata = options->log_userdata;
	}
	m->runtime_dir = strdup(dir);
	if (!m->runtime_dir) {
		free(m);
		return -ENOMEM;
	}
	r = mkdir_p(dir, 0755);
	if (r < 0) {
		log_error(m, "runtime directory %s: %s", dir, strerror(-r));
		free(m->runtime_dir);
		free(m);
		return r;
	}
	ht_init(&m->ht);
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->engine_lock, NULL);
	*ret_manager = m;
	return 0;
}

void
flt_manager_free(flt_manager *manager)
{
	if (!manager)
		return;
	for (;;) {
		flt_filter *f;

		pthread_mutex_lock(&manager->lock);
		f = manager->filters;
		pthread_mutex_unlock(&manager->lock);
		if (!f)
			break;
		flt_unregister_filter(f);
	}
	engine_free(engine_of(manager));
	mgr_reap(manager);
	ht_fini(&manager->ht);
	pthread_mutex_destroy(&manager->lock);
	pthread_mutex_destroy(&manager->engine_lock);
	free(manager->zombies);
	free(manager->runtime_dir);
	free(manager);
}

int
flt_register_filter(flt_manager *manager, const struct flt_registration *registration,
		    flt_filter **ret_filter)
{
	pthread_mutexattr_t attr;
	pthread_condattr_t cattr;
	flt_filter *f;

	if (!manager || !registration || !ret_filter)
		return -EINVAL;
	if (!name_valid(registration->name) || !altitude_valid(registration->altitude))
		return -EINVAL;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->mgr = manager;
	strcpy(f->name, registration->name);
	strcpy(f->altitude, registration->altitude);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&f->port_lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->threads_done, &cattr);
	pthread_condattr_destroy(&cattr);
	{
		int r = engine_filter_init(f, registration);

		if (r < 0) {
			pthread_mutex_destroy(&f->port_lock);
			pthread_mutex_destroy(&f->lock);
			pthread_cond_destroy(&f->threads_done);
			free(f);
			return r;
		}
	}

	pthread_mutex_lock(&manager->lock);
	for (flt_filter *o = manager->filters; o; o = o->next) {
		if (!strcmp(o->name, f->name)) {
			pthread_mutex_unlock(&manager->lock);
			f->eng->unload = NULL; /* never registered */
			engine_filter_free(f);
			pthread_mutex_destroy(&f->port_lock);
			pthread_mutex_destroy(&f->lock);
			pthread_cond_destroy(&f->threads_done);
			free(f);
			return -EEXIST;
		}
	}
	f->next = manager->filters;
	manager->filters = f;
	pthread_mutex_unlock(&manager->lock);
	log_info(manager, "filter %s registered at altitude %s", f->name, f->altitude);
	*ret_filter = f;
	return 0;
}

void
flt_unregister_filter(flt_filter *filter)
{
	flt_manager *m;

	if (!filter)
		return;
	m = filter->mgr;

	/* Phase 0: no more file-system events; pends answered; callbacks
	 * in flight drained; instances torn down. */
	engine_filter_stop(filter);

	/* Phases 1-4: the ports refuse new work, stop listening, disconnect
	 * every connection and wait for the connection threads' callbacks. */
	ports_filter_teardown(filter);
	mgr_reap(m);

	/* Phase 5: no callback of this filter can run any more; its unload
	 * callback frees what they used, then its engine state goes. */
	engine_filter_free(filter);

	pthread_mutex_lock(&m->lock);
	for (flt_filter **pp = &m->filters; *pp; pp = &(*pp)->next) {
		if (*pp == filter) {
			*pp = filter->next;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	log_info(m, "filter %s unregistered", filter->name);
	pthread_mutex_destroy(&filter->port_lock);
	pthread_mutex_destroy(&filter->lock);
	pthread_cond_destroy(&filter->threads_done);
	free(filter);
}

size_t
flt_manager_list_filters(flt_manager *manager, flt_filter **ret, size_t n)
{
	size_t k = 0;

	if (!manager)
		return 0;
	pthread_mutex_lock(&manager->lock);
	for (flt_filter *f = manager->filters; f; f = f->next, k++)
		if (k < n)
			ret[k] = f;
	pthread_mutex_unlock(&manager->lock);
	return k;
}

void *
flt_filter_cookie(const flt_filter *filter)
{
	return filter && filter->eng ? filter->eng->cookie : NULL;
}
