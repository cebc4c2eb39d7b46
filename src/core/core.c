/* SPDX-License-Identifier: MIT */
/*
 * core.c — what every part of libfltmgr may ask of the manager and filter
 * objects (core.h) without calling the manager: their plain accessors,
 * and the list of finished threads that are joined later by someone who
 * is not one of them (the reaper). Creation, registration and teardown
 * are the manager's (manager/manager.c).
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

const char *
flt_manager_runtime_dir(const flt_manager *manager)
{
	return manager ? manager->runtime_dir : NULL;
}

void
mgr_add_zombie(flt_manager *m, pthread_t t)
{
	pthread_mutex_lock(&m->lock);
	if (m->n_zombies == m->cap_zombies) {
		size_t ncap = m->cap_zombies ? m->cap_zombies * 2 : 16;
		pthread_t *n = realloc(m->zombies, ncap * sizeof(*n));

		if (!n) {
			/* Cannot record it: let it clean up after itself. */
			pthread_detach(t);
			pthread_mutex_unlock(&m->lock);
			return;
		}
		m->zombies = n;
		m->cap_zombies = ncap;
	}
	m->zombies[m->n_zombies++] = t;
	pthread_mutex_unlock(&m->lock);
}

void
mgr_reap(flt_manager *m)
{
	for (;;) {
		pthread_t t;

		pthread_mutex_lock(&m->lock);
		if (m->n_zombies == 0) {
			pthread_mutex_unlock(&m->lock);
			return;
		}
		t = m->zombies[--m->n_zombies];
		pthread_mutex_unlock(&m->lock);
		pthread_join(t, NULL);
	}
}

const char *
flt_filter_name(const flt_filter *filter)
{
	return filter ? filter->name : NULL;
}

const char *
flt_filter_altitude(const flt_filter *filter)
{
	return filter ? filter->altitude : NULL;
}

const char *
flt_config_param(const struct flt_filter_config *config, const char *key)
{
	if (!config || !key)
		return NULL;
	for (size_t i = 0; i < config->n_params; i++)
		if (!strcmp(config->param_keys[i], key))
			return config->param_values[i];
	return NULL;
}
